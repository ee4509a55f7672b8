/*
 * pg.c - the PostgreSQL driver (libpq).  The parameter table is always
 * built so that PG definitions can be checked; the operations come with
 * the libpq implementation.
 */
#include "../cdm_int.h"

#include <limits.h>

static const char *const pg_aliases[] = { "PostgreSQL", "Postgres", NULL };

static const struct cdm_param_spec pg_params[] = {
    { "Server",          NULL,   CDM_P_STRING, 0, 0, NULL, 0 },
    { "Port",            "5432", CDM_P_INT, 1, 65535, NULL, 0 },
    { "User_Name",       NULL,   CDM_P_STRING, 0, 0, NULL, 0 },
    { "Password",        NULL,   CDM_P_STRING, 0, 0, NULL, CDM_PF_SECRET },
    { "LoginTimeout",    NULL,   CDM_P_INT, 0, INT_MAX, NULL, 0 },
    { "CharacterSet",    NULL,   CDM_P_STRING, 0, 0, NULL, 0 },
    { "ApplicationName", NULL,   CDM_P_STRING, 0, 0, NULL, 0 },
    { "PGAdvanced",      NULL,   CDM_P_STRING, 0, 0, NULL, 0 },
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0 }
};

const struct cdm_driver cdm__driver_pg = {
    .id = "PG",
    .aliases = pg_aliases,
    .params = pg_params,
    .configure_flag = "--with-postgresql",
};
