/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonw.c - the JSON text writer (jsonw.h): one growing buffer, escaping
 * done in runs of plain bytes.
 */
#include "common/jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jsonw *w, size_t hint)
{
    w->len = 0;
    w->cap = hint > 64 ? hint : 64;
    w->buf = malloc(w->cap);
    w->failed = w->buf == NULL;
}

/* Room for n more bytes and a NUL; false (and failed) if there is none. */
static bool room(jsonw *w, size_t n)
{
    if (w->failed)
        return false;
    if (n < w->cap - w->len)
        return true;
    size_t cap = w->cap;
    while (n >= cap - w->len) {
        if (cap > SIZE_MAX / 2) {
            jw_free(w);
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(w->buf, cap);
    if (p == NULL) {
        jw_free(w);
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

void jw_raw(jsonw *w, const char *text, size_t len)
{
    if (!room(w, len))
        return;
    memcpy(w->buf + w->len, text, len);
    w->len += len;
}

void jw_lit(jsonw *w, const char *text)
{
    jw_raw(w, text, strlen(text));
}

static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static void put_escape(jsonw *w, unsigned char c)
{
    char e[7];
    switch (c) {
    case '"': jw_raw(w, "\\\"", 2); return;
    case '\\': jw_raw(w, "\\\\", 2); return;
    case '\n': jw_raw(w, "\\n", 2); return;
    case '\r': jw_raw(w, "\\r", 2); return;
    case '\t': jw_raw(w, "\\t", 2); return;
    default:
        snprintf(e, sizeof e, "\\u%04x", c);
        jw_raw(w, e, 6);
    }
}

void jw_str(jsonw *w, const char *s)
{
    jw_raw(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *run = p;
        while (*p && !needs_escape(*p))
            p++;
        jw_raw(w, (const char *)run, (size_t)(p - run));
        if (*p)
            put_escape(w, *p++);
    }
    jw_raw(w, "\"", 1);
}

void jw_int(jsonw *w, int64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%" PRId64, v);
    jw_raw(w, d, (size_t)n);
}

char *jw_finish(jsonw *w, size_t *len)
{
    if (w->failed || !room(w, 0))
        return NULL;
    w->buf[w->len] = '\0';
    if (len)
        *len = w->len;
    char *text = w->buf;
    w->buf = NULL;
    w->failed = true; /* the writer is spent */
    return text;
}

void jw_free(jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
    w->failed = true;
}
