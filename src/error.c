/*
 * error.c - status code texts and the per-thread detail message.
 */
#include "cdm_int.h"

#include <stdio.h>
#include <string.h>

/* CDM_MSG_MAX is big enough for a path, a definition, a key and a database
 * message; longer messages are cut, never overrun. */
static _Thread_local char msg[CDM_MSG_MAX];

const char *cdm_strerror(int status)
{
    switch (status) {
#define CDM_STATUS_TEXT_(name, value, text) case name: return text;
    CDM_STATUS_MAP(CDM_STATUS_TEXT_)
#undef CDM_STATUS_TEXT_
    }
    return "unknown status";
}

const char *cdm_errmsg(void)
{
    return msg;
}

int cdm__vfail(int status, const char *fmt, va_list ap)
{
    char text[CDM_MSG_MAX];

    vsnprintf(text, sizeof text, fmt, ap);
    cdm__oneline(msg, sizeof msg, text);
    return status;
}

int cdm__fail(int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cdm__vfail(status, fmt, ap);
    va_end(ap);
    return status;
}

void cdm__errmsg_save(char buf[CDM_MSG_MAX])
{
    memcpy(buf, msg, CDM_MSG_MAX);
}

void cdm__errmsg_restore(const char buf[CDM_MSG_MAX])
{
    memcpy(msg, buf, CDM_MSG_MAX);
}

int cdm__nomem(void)
{
    /* No formatting: this must work when nothing can be allocated. */
    strcpy(msg, "out of memory");
    return CDM_ERR_NOMEM;
}

void cdm__errprefix(const char *fmt, ...)
{
    char old[CDM_MSG_MAX], text[CDM_MSG_MAX];
    va_list ap;
    int n;

    memcpy(old, msg, sizeof old);
    va_start(ap, fmt);
    n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, "%s", old);
    cdm__oneline(msg, sizeof msg, text);
}
