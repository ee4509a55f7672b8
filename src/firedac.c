/*
 * firedac.c - what FireDAC knows: its driver IDs, the connection-definition
 * parameter names of each, and the mistakes people make writing them.
 *
 * Data only, in one place, so that a file written for FireDAC reads in
 * cdm without noise: a key of a FireDAC driver cdm lacks is accepted
 * silently in a definition of that driver, a FireDAC key cdm does not use
 * is ignored, and "did you mean" suggests only keys valid for the
 * definition's driver.
 *
 * Where the names come from (names only; no text copied):
 *  - the common keys: RAD Studio docwiki "Common Connection Parameters
 *    (FireDAC)" and "Defining Connection (FireDAC)" (pooling: Pooled,
 *    POOL_CleanupTimeout, POOL_ExpireTimeout, POOL_MaximumItems);
 *  - each driver's keys: the published properties of its
 *    TFDPhys<ID>ConnectionDefParams class (units FireDAC.Phys.<ID>Def,
 *    RAD Studio 10.1 Berlin, 2016), which are what the per-driver docwiki
 *    pages "Connect to ... (FireDAC)" list; FB from "Connect to Firebird
 *    (FireDAC)": the IB keys without InstanceName and SEPassword, plus
 *    CharLenMode and GUIDEndian.  CreateDatabase is the older spelling of
 *    OpenMode=Create that the IB/FB drivers still read;
 *  - FireDAC.Stan.Consts (S_FD_ConnParam_*) adds ADS's DateFormat,
 *    Decimals, DefaultPath, SearchPath, ShowDeleted, Epoch, Exact and
 *    ODBC's DSN.
 *  - VendorLib and VendorHome are driver-link settings (FDDrivers.ini);
 *    they turn up in definitions and mean nothing to a definition, so they
 *    are known and ignored like the rest.
 * Keys newer than the list are reported as unknown, with a suggestion:
 * a warning, never an error.
 */
#include "cdm_int.h"

#include <string.h>
#include <strings.h>

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Valid in a definition of any FireDAC driver. */
const char *const cdm__fd_common[] = {
    "DriverID", "ConnectionDef", "Database", "User_Name", "Password",
    "NewPassword", "MonitorBy", "Pooled", "POOL_CleanupTimeout",
    "POOL_ExpireTimeout", "POOL_MaximumItems", "MetaDefCatalog",
    "MetaDefSchema", "MetaCurCatalog", "MetaCurSchema",
    "VendorLib", "VendorHome",
    NULL
};

/* Every FireDAC base driver ID, with the DBMS it is for, the cdm driver
 * that serves it (NULL: none) and its keys beyond the common ones. */
const struct cdm_fd_driver cdm__fd_drivers[] = {
    { "ADS", "Advantage Database Server", NULL,
      KEYS("Alias", "ServerTypes", "Protocol", "Server", "Port",
           "CharacterSet", "Compress", "TableType", "TablePassword",
           "Locking", "ADSAdvanced", "DateFormat", "Decimals", "DefaultPath",
           "SearchPath", "ShowDeleted", "Epoch", "Exact") },
    { "ASA", "SAP SQL Anywhere", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "Server", "DatabaseFile",
           "OSAuthent", "Compress", "Encrypt", "ApplicationName") },
    { "DB2", "IBM DB2", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "Alias", "Server", "Port",
           "Protocol", "OSAuthent", "StringFormat", "ExtendedMetadata",
           "TxSupported") },
    { "DS", "DataSnap", NULL,
      KEYS("DBXAdvanced", "Protocol", "IPImplementationID",
           "CommunicationIPVersion", "Server", "Port", "BufferKBSize",
           "Filters", "LoginTimeout", "CommunicationTimeout", "URLPath",
           "DatasnapContext", "DSProxyHost", "DSProxyPort",
           "DSProxyUsername", "DSProxyPassword", "DSAuthenticationScheme") },
    { "FB", "Firebird", NULL,
      KEYS("OSAuthent", "Protocol", "Server", "Port", "SQLDialect",
           "RoleName", "CharacterSet", "ExtendedMetadata", "OpenMode",
           "PageSize", "DropDatabase", "IBAdvanced", "CharLenMode",
           "GUIDEndian", "CreateDatabase") },
    { "IB", "InterBase", NULL,
      KEYS("OSAuthent", "Protocol", "Server", "Port", "SQLDialect",
           "RoleName", "CharacterSet", "ExtendedMetadata", "OpenMode",
           "PageSize", "DropDatabase", "IBAdvanced", "InstanceName",
           "SEPassword", "CreateDatabase") },
    { "IBLite", "InterBase Lite", NULL,
      KEYS("CharacterSet", "ExtendedMetadata", "OpenMode", "PageSize",
           "DropDatabase", "IBAdvanced", "CreateDatabase") },
    { "Infx", "Informix", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "Server", "CharacterSet",
           "DBCharacterSet", "StringFormat", "ReadTimeout", "WriteTimeout",
           "TxSupported", "TxRetainLocks", "TxLastCommitted") },
    { "Mongo", "MongoDB", NULL,
      KEYS("Server", "Port", "MoreHosts", "UseSSL", "LoginTimeout",
           "ReadTimeout", "MongoAdvanced") },
    { "MSAcc", "Microsoft Access", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "SystemDB", "ReadOnly",
           "StringFormat") },
    { "MSSQL", "Microsoft SQL Server", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "Server", "Network", "Address",
           "OSAuthent", "MARS", "Workstation", "Language", "Encrypt",
           "VariantFormat", "ExtendedMetadata", "ApplicationName",
           "MetaCaseIns", "MetaCaseInsCat") },
    { "MySQL", "MySQL", "MySQL",
      KEYS("Server", "Port", "Compress", "UseSSL", "LoginTimeout",
           "ReadTimeout", "WriteTimeout", "ResultMode", "CharacterSet",
           "TinyIntFormat", "SSL_key", "SSL_cert", "SSL_ca", "SSL_capath",
           "SSL_cipher") },
    { "ODBC", "ODBC data source", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "ODBCDriver", "DataSource",
           "DSN", "NumericFormat", "ODBCVersion", "RDBMS") },
    { "Ora", "Oracle", NULL,
      KEYS("OSAuthent", "AuthMode", "ReadTimeout", "WriteTimeout",
           "CharacterSet", "BooleanFormat", "ApplicationName",
           "OracleAdvanced") },
    { "PG", "PostgreSQL", "PG",
      KEYS("Server", "Port", "LoginTimeout", "CharacterSet",
           "ExtendedMetadata", "OidAsBlob", "UnknownFormat",
           "ArrayScanSample", "ApplicationName", "PGAdvanced") },
    { "SQLite", "SQLite", "SQLite",
      KEYS("OpenMode", "Encrypt", "BusyTimeout", "CacheSize", "SharedCache",
           "LockingMode", "Synchronous", "JournalMode", "ForeignKeys",
           "StringFormat", "GUIDFormat", "DateTimeFormat", "Extensions",
           "SQLiteAdvanced") },
    { "TData", "Teradata", NULL,
      KEYS("ODBCAdvanced", "LoginTimeout", "Server", "OSAuthent",
           "CharacterSet", "SessionMode", "Encrypt", "ExtendedMetadata") },
    { "TDBX", "dbExpress", NULL,
      KEYS("DBXAdvanced", "DriverName", "RDBMS") },
    { NULL, NULL, NULL, NULL }
};

/* Keys people write for another: what other libraries call it, or what
 * FireDAC's name is misremembered as.  Offered only where the right key
 * is valid for the definition's driver. */
static const struct { const char *wrong, *right; } mistakes[] = {
    { "Pooling",            "Pooled" },
    { "Pool",               "Pooled" },
    { "User",               "User_Name" },
    { "UserName",           "User_Name" },
    { "UserID",             "User_Name" },
    { "User_ID",            "User_Name" },
    { "Uid",                "User_Name" },
    { "Pwd",                "Password" },
    { "Passwd",             "Password" },
    { "POOL_MaxItems",      "POOL_MaximumItems" },
    { "POOL_MaxSize",       "POOL_MaximumItems" },
    { "POOL_MaxPoolSize",   "POOL_MaximumItems" },
    { "MaxPoolSize",        "POOL_MaximumItems" },
    { "POOL_MinItems",      "POOL_MinimumItems" },
    { "POOL_MinSize",       "POOL_MinimumItems" },
    { "MinPoolSize",        "POOL_MinimumItems" },
    { "Host",               "Server" },
    { "HostName",           "Server" },
    { "DBName",             "Database" },
    { "DatabaseName",       "Database" },
    { "Charset",            "CharacterSet" },
    { "ConnectTimeout",     "LoginTimeout" },
    { "ConnectionTimeout",  "LoginTimeout" },
    { "Driver",             "DriverID" },
    { NULL, NULL }
};

bool cdm__fd_has_key(const struct cdm_fd_driver *fd, const char *key)
{
    const struct cdm_keyinfo *k = cdm__keyinfo(key);

    return k && (k->fd_common ||
                 (fd && (k->fd >> (fd - cdm__fd_drivers) & 1)));
}

bool cdm__fd_any_key(const char *key)
{
    const struct cdm_keyinfo *k = cdm__keyinfo(key);

    return k && (k->fd_common || k->fd);
}

const char *cdm__fd_mistake(const char *key)
{
    for (size_t i = 0; mistakes[i].wrong; i++)
        if (cdm__streq_nocase(mistakes[i].wrong, key))
            return mistakes[i].right;
    return NULL;
}

bool cdm__fd_secret(const char *key)
{
    static const char word[] = "password";
    size_t n = strlen(key), w = sizeof word - 1;

    /* Password, NewPassword, SEPassword, TablePassword, DSProxyPassword:
     * FireDAC's secrets all say so in their name. */
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(key + i, word, w) == 0)
            return true;
    return false;
}
