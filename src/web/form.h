/* SPDX-License-Identifier: Apache-2.0 */
/*
 * form.h - the bodies of our own HTML forms, application/x-www-form-urlencoded
 * (the WHATWG URL standard's parser, strictly): name=value pairs joined by
 * '&', '+' for space, %XX escapes.
 *
 * A body comes from the browser, or from any local program that found the
 * port, so everything is bounded and checked: at most WEB_FORM_MAX_BODY
 * bytes, WEB_FORM_MAX_FIELDS fields, names of [a-z0-9_] only (ours), no
 * name twice, no malformed escape, no NUL.  Values are kept as decoded
 * bytes (NUL-terminated).
 */
#ifndef QUMAIL_WEB_FORM_H
#define QUMAIL_WEB_FORM_H

#include <stddef.h>

#define WEB_FORM_MAX_BODY (64 * 1024)
#define WEB_FORM_MAX_FIELDS 32
#define WEB_FORM_MAX_NAME 32

typedef enum {
    WEB_FORM_OK = 0,
    WEB_FORM_TOO_LARGE,   /* body or number of fields past the bounds */
    WEB_FORM_BAD_NAME,    /* empty, too long, or not [a-z0-9_] */
    WEB_FORM_DUPLICATE,   /* a name given twice */
    WEB_FORM_BAD_ESCAPE,  /* % not followed by two hex digits, or %00 */
    WEB_FORM_NO_MEMORY,
} web_form_err;

typedef struct web_form {
    size_t n;
    char name[WEB_FORM_MAX_FIELDS][WEB_FORM_MAX_NAME + 1];
    char *value[WEB_FORM_MAX_FIELDS];   /* into arena */
    char *arena;
    size_t arena_len;
} web_form;

/* Parse len bytes of body into f (which must be freed with web_form_free
 * whatever the result). */
web_form_err web_form_parse(const char *body, size_t len, web_form *f);

/* The value of field name, or NULL. */
const char *web_form_get(const web_form *f, const char *name);

/* Free and wipe (values may be a message being written). */
void web_form_free(web_form *f);

/* Words for an error (for the 400 page). */
const char *web_form_strerror(web_form_err e);

#endif
