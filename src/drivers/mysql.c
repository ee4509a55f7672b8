/*
 * mysql.c - the MySQL / MariaDB driver (libmysqlclient or MariaDB
 * Connector/C).  The parameter table is always built so that MySQL
 * definitions can be checked; the operations come with the client
 * implementation.
 */
#include "../cdm_int.h"

#include <limits.h>

static const char *const mysql_aliases[] = { "MariaDB", NULL };

static const struct cdm_param_spec mysql_params[] = {
    { "Server",       NULL,      CDM_P_STRING, 0, 0, NULL, 0 },
    { "Port",         "3306",    CDM_P_INT, 1, 65535, NULL, 0 },
    { "User_Name",    NULL,      CDM_P_STRING, 0, 0, NULL, 0 },
    { "Password",     NULL,      CDM_P_STRING, 0, 0, NULL, CDM_PF_SECRET },
    { "LoginTimeout", NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0 },
    { "ReadTimeout",  NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0 },
    { "WriteTimeout", NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0 },
    { "CharacterSet", "utf8mb4", CDM_P_STRING, 0, 0, NULL, 0 },
    { "UseSSL",       "False",   CDM_P_BOOL, 0, 0, NULL, 0 },
    { "Compress",     "False",   CDM_P_BOOL, 0, 0, NULL, 0 },
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0 }
};

const struct cdm_driver cdm__driver_mysql = {
    .id = "MySQL",
    .aliases = mysql_aliases,
    .params = mysql_params,
    .configure_flag = "--with-mysql",
};
