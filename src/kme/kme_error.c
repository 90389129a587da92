/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kme_error.c - setting and clearing the KME's error carrier (kme_error.h).
 * Pure: linked into the request parser, the peer wire format and their
 * fuzz targets alike.
 */
#include "kme/kme_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_message(kme_err *err, const char *fmt, va_list ap)
{
    vsnprintf(err->message, sizeof err->message, fmt, ap);
}

void kme_err_set(kme_err *err, int http, const char *fmt, ...)
{
    va_list ap;

    /* *err is output only: callers may hand in an uninitialised one */
    err->http = http;
    err->type = NULL;
    err->details = NULL;
    va_start(ap, fmt);
    set_message(err, fmt, ap);
    va_end(ap);
}

int kme_err_problem(kme_err *err, int http, const char *type, const char *fmt, ...)
{
    va_list ap;

    err->http = http;
    err->type = type;
    err->details = NULL;
    va_start(ap, fmt);
    set_message(err, fmt, ap);
    va_end(ap);
    return -1;
}

void kme_err_clear(kme_err *err)
{
    if (err == NULL)
        return;
    json_decref(err->details);
    memset(err, 0, sizeof *err);
}
