/*
 * driver.c - the driver registry: every driver cdm knows, by DriverID.
 */
#include "cdm_int.h"

#ifdef CDM_TEST_DRIVER
/* tests/fault_driver.c: in the test library only, never installed. */
extern const struct cdm_driver cdm__driver_fault;
#endif

const struct cdm_driver *const cdm__drivers[] = {
    &cdm__driver_sqlite,
    &cdm__driver_pg,
    &cdm__driver_mysql,
#ifdef CDM_TEST_DRIVER
    &cdm__driver_fault,
#endif
    NULL
};

