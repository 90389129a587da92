/* SPDX-License-Identifier: Apache-2.0 */
/*
 * form.c - strict application/x-www-form-urlencoded bodies (form.h).  Each
 * value is decoded into one arena as large as the body (decoding never
 * grows), so a hostile body costs at most twice its bounded size.
 */
#include "web/form.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/secret.h"

/* Decode in[0..len) to out (NUL-terminated); returns the decoded length or
 * -1 for a malformed escape or a NUL. */
static long decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* One name=value pair (no '&' inside) into f. */
static web_form_err add_pair(web_form *f, const char *p, size_t len, char **arena)
{
    const char *eq = memchr(p, '=', len);
    size_t nlen = eq ? (size_t)(eq - p) : len;
    char name[WEB_FORM_MAX_NAME + 1];
    if (nlen > WEB_FORM_MAX_NAME)
        return WEB_FORM_BAD_NAME;
    if (decode(p, nlen, name) < 0 || !name_ok(name))
        return WEB_FORM_BAD_NAME;
    if (web_form_get(f, name))
        return WEB_FORM_DUPLICATE;
    if (f->n == WEB_FORM_MAX_FIELDS)
        return WEB_FORM_TOO_LARGE;
    const char *v = eq ? eq + 1 : p + len;
    long vlen = decode(v, (size_t)(p + len - v), *arena);
    if (vlen < 0)
        return WEB_FORM_BAD_ESCAPE;
    memcpy(f->name[f->n], name, strlen(name) + 1);
    f->value[f->n++] = *arena;
    *arena += vlen + 1;
    return WEB_FORM_OK;
}

web_form_err web_form_parse(const char *body, size_t len, web_form *f)
{
    memset(f, 0, sizeof *f);
    if (len > WEB_FORM_MAX_BODY)
        return WEB_FORM_TOO_LARGE;
    /* Each value takes at most its encoded length plus a NUL. */
    f->arena_len = len + WEB_FORM_MAX_FIELDS + 1;
    if (!(f->arena = malloc(f->arena_len)))
        return WEB_FORM_NO_MEMORY;
    char *arena = f->arena;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t plen = amp ? (size_t)(amp - (body + i)) : len - i;
        if (plen > 0) {   /* "a=1&&b=2": empty sequences are skipped (WHATWG) */
            web_form_err e = add_pair(f, body + i, plen, &arena);
            if (e != WEB_FORM_OK)
                return e;
        }
        i += plen + 1;
    }
    return WEB_FORM_OK;
}

const char *web_form_get(const web_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->name[i], name) == 0)
            return f->value[i];
    return NULL;
}

void web_form_free(web_form *f)
{
    if (f->arena) {
        secret_wipe(f->arena, f->arena_len);
        free(f->arena);
    }
    memset(f, 0, sizeof *f);
}

const char *web_form_strerror(web_form_err e)
{
    switch (e) {
    case WEB_FORM_OK: return "no error";
    case WEB_FORM_TOO_LARGE: return "the form is too large";
    case WEB_FORM_BAD_NAME: return "a field name is not one of this page's";
    case WEB_FORM_DUPLICATE: return "a field is given twice";
    case WEB_FORM_BAD_ESCAPE: return "a field holds a malformed %-escape or a NUL";
    case WEB_FORM_NO_MEMORY: return "out of memory";
    }
    return "malformed form";
}
