/* SPDX-License-Identifier: Apache-2.0 */
/*
 * multipart.c - a streaming, bounded multipart/form-data reader
 * (multipart.h).
 *
 * The body is read as if it began with CRLF, so that every delimiter,
 * the first one too, is "\r\n--BOUNDARY"; a preamble before the first
 * one is skipped (and counted).  The delimiter is searched for byte by
 * byte with a Knuth-Morris-Pratt table, so a delimiter split across
 * pieces is found, and the bytes of a partial match that turns out not to
 * be one go back into the data as they were.  After a delimiter come
 * either "--" (the end) or CRLF and a header section ending in an empty
 * line.
 */
#include "web/multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/secret.h"

enum { ST_PREAMBLE, ST_AFTER_DELIM, ST_AFTER_DASH, ST_AFTER_CR, ST_HEADERS, ST_DATA, ST_END };

static bool bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("'()+_,-./:=? ", c));
}

/* The value of parameter `want` in "type; a=b; c=\"d\"" (one at most):
 * 1 found (copied to out), 0 absent, -1 malformed, given twice or too long. */
static int param(const char *s, const char *want, char *out, size_t cap)
{
    int found = 0;
    size_t wl = strlen(want);
    const char *p = strchr(s, ';');
    while (p) {
        p++;
        p += strspn(p, " \t");
        const char *eq = strchr(p, '=');
        if (!eq)
            return -1;
        bool match = (size_t)(eq - p) == wl && strncasecmp(p, want, wl) == 0;
        const char *v = eq + 1, *end;
        size_t vl;
        if (*v == '"') {
            end = strchr(v + 1, '"');
            if (!end)
                return -1;
            vl = (size_t)(end - v - 1);
            v++;
            end++;
        } else {
            vl = strcspn(v, ";");
            end = v + vl;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
        }
        if (match) {
            if (found || vl >= cap)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            found = 1;
        }
        end += strspn(end, " \t");
        if (*end && *end != ';')
            return -1;
        p = *end ? end : NULL;
    }
    return found;
}

web_mp_err web_mp_boundary(const char *ct, char *out, size_t cap)
{
    static const char want[] = "multipart/form-data";
    char b[WEB_MP_MAX_BOUNDARY + 2];
    if (!ct || strncasecmp(ct, want, sizeof want - 1) != 0 ||
        (ct[sizeof want - 1] != ';' && ct[sizeof want - 1] != ' '))
        return WEB_MP_BAD_BOUNDARY;
    if (param(ct + sizeof want - 1, "boundary", b, sizeof b) != 1)
        return WEB_MP_BAD_BOUNDARY;
    size_t n = strlen(b);
    if (n == 0 || n > WEB_MP_MAX_BOUNDARY || b[n - 1] == ' ' || n >= cap)
        return WEB_MP_BAD_BOUNDARY;
    for (size_t i = 0; i < n; i++)
        if (!bchar(b[i]))
            return WEB_MP_BAD_BOUNDARY;
    memcpy(out, b, n + 1);
    return WEB_MP_OK;
}

void web_mp_init(web_multipart *m, const char *boundary, const char *const *names,
                 const char *repeatable)
{
    memset(m, 0, sizeof *m);
    m->names = names;
    m->repeatable = repeatable;
    m->dlen = (size_t)snprintf(m->delim, sizeof m->delim, "\r\n--%s", boundary);
    if (m->dlen >= sizeof m->delim)
        m->dlen = sizeof m->delim - 1;
    for (size_t i = 1, k = 0; i < m->dlen; i++) {   /* KMP failure table */
        while (k && m->delim[i] != m->delim[k])
            k = m->fail[k - 1];
        if (m->delim[i] == m->delim[k])
            k++;
        m->fail[i] = k;
    }
    m->matched = 2;   /* the CRLF we pretend came first */
    m->state = ST_PREAMBLE;
}

/* ------------------------------------------------------------ parts */

static web_mp_err append(web_mp_part *p, const char *d, size_t n, size_t max)
{
    if (n > max - p->len)
        return WEB_MP_TOO_LARGE;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n + 1)
            cap *= 2;
        uint8_t *g = malloc(cap);
        if (!g)
            return WEB_MP_NO_MEMORY;
        if (p->data) {   /* not realloc: the old block is wiped first */
            memcpy(g, p->data, p->len);
            secret_wipe(p->data, p->cap);
            free(p->data);
        }
        p->data = g;
        p->cap = cap;
    }
    memcpy(p->data + p->len, d, n);
    p->len += n;
    p->data[p->len] = '\0';
    return WEB_MP_OK;
}

static bool name_allowed(const web_multipart *m, const char *name)
{
    for (const char *const *n = m->names; n && *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

/* The last path component of a browser's file name, checked. */
static web_mp_err clean_filename(const char *raw, char **out)
{
    const char *base = raw;
    for (const char *p = raw; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return WEB_MP_BAD_FILENAME;
        if (*p == '/' || *p == '\\')
            base = p + 1;
    }
    if (strlen(base) > WEB_MP_MAX_FILENAME)
        return WEB_MP_BAD_FILENAME;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        base = "";
    *out = strdup(base);
    return *out ? WEB_MP_OK : WEB_MP_NO_MEMORY;
}

/* Content-Disposition of the part being opened. */
static web_mp_err disposition(web_multipart *m, web_mp_part *p, const char *v, bool *seen_fn)
{
    char name[WEB_MP_MAX_NAME + 2], fn[WEB_MP_MAX_FILENAME * 4 + 2];
    if (strncasecmp(v, "form-data", 9) != 0 || (v[9] != ';' && v[9] != ' ' && v[9]))
        return WEB_MP_MALFORMED;
    int has_name = param(v + 9, "name", name, sizeof name);
    int has_fn = param(v + 9, "filename", fn, sizeof fn);
    if (has_name < 0 || has_fn < 0)
        return has_fn < 0 && has_name >= 0 ? WEB_MP_BAD_FILENAME : WEB_MP_MALFORMED;
    if (has_name == 0 || strlen(name) > WEB_MP_MAX_NAME || !name_allowed(m, name))
        return WEB_MP_BAD_NAME;
    bool repeat = m->repeatable && strcmp(name, m->repeatable) == 0;
    if (repeat != (has_fn == 1))   /* files under the repeatable name, nothing else */
        return WEB_MP_BAD_NAME;
    if (!repeat)
        for (size_t i = 0; i + 1 < m->n; i++)
            if (strcmp(m->parts[i].name, name) == 0)
                return WEB_MP_DUPLICATE;
    memcpy(p->name, name, strlen(name) + 1);   /* at most WEB_MP_MAX_NAME bytes: checked */
    *seen_fn = has_fn == 1;
    return has_fn == 1 ? clean_filename(fn, &p->filename) : WEB_MP_OK;
}

/* The header section of the part just begun (m->header, m->hlen bytes
 * through the empty line). */
static web_mp_err part_headers(web_multipart *m)
{
    web_mp_part *p = &m->parts[m->n - 1];
    bool has_disp = false, has_fn = false;
    if (memchr(m->header, '\0', m->hlen))
        return WEB_MP_MALFORMED;
    m->header[m->hlen] = '\0';
    char *line = m->header, *end;
    while ((end = strstr(line, "\r\n")) != NULL && end != line) {
        *end = '\0';
        char *colon = strchr(line, ':');
        if (!colon || line[0] == ' ' || line[0] == '\t' || strchr(line, '\r') || strchr(line, '\n'))
            return WEB_MP_MALFORMED;
        *colon = '\0';
        char *v = colon + 1 + strspn(colon + 1, " \t");
        if (strcasecmp(line, "Content-Disposition") == 0) {
            if (has_disp)
                return WEB_MP_MALFORMED;
            has_disp = true;
            web_mp_err e = disposition(m, p, v, &has_fn);
            if (e != WEB_MP_OK)
                return e;
        } else if (strcasecmp(line, "Content-Type") == 0) {
            if (strlen(v) >= sizeof p->content_type)
                return WEB_MP_MALFORMED;
            snprintf(p->content_type, sizeof p->content_type, "%s", v);
        }
        line = end + 2;
    }
    return has_disp ? WEB_MP_OK : WEB_MP_MALFORMED;
}

static void drop_part(web_mp_part *p)
{
    if (p->data) {
        secret_wipe(p->data, p->cap);
        free(p->data);
    }
    free(p->filename);
    memset(p, 0, sizeof *p);
}

/* The part just ended: an empty file part (no file chosen) is dropped. */
static void part_done(web_multipart *m)
{
    web_mp_part *p = &m->parts[m->n - 1];
    if (p->filename && p->len == 0 && !*p->filename) {
        drop_part(p);
        m->n--;
    }
}

/* ------------------------------------------------------------ the machine */

static web_mp_err data_bytes(web_multipart *m, const char *d, size_t n)
{
    if (m->state != ST_DATA || n == 0)
        return WEB_MP_OK;   /* the preamble is skipped */
    web_mp_part *p = &m->parts[m->n - 1];
    return append(p, d, n, p->filename ? WEB_MP_MAX_BODY : WEB_MP_MAX_FIELD);
}

/* One byte in ST_PREAMBLE or ST_DATA: the delimiter search. */
static web_mp_err search_byte(web_multipart *m, char c)
{
    size_t k = m->matched;
    while (k && c != m->delim[k]) {
        size_t back = m->fail[k - 1];
        web_mp_err e = data_bytes(m, m->delim, k - back);   /* not a delimiter after all */
        if (e != WEB_MP_OK)
            return e;
        k = back;
    }
    if (c == m->delim[k]) {
        k++;
    } else {
        web_mp_err e = data_bytes(m, &c, 1);
        if (e != WEB_MP_OK)
            return e;
    }
    m->matched = k;
    if (k == m->dlen) {
        if (m->state == ST_DATA)
            part_done(m);
        m->matched = 0;
        m->state = ST_AFTER_DELIM;
    }
    return WEB_MP_OK;
}

static web_mp_err header_byte(web_multipart *m, char c)
{
    if (m->hlen == WEB_MP_MAX_HEADER)
        return WEB_MP_TOO_LARGE;
    m->header[m->hlen++] = c;
    if (m->hlen == 2 && memcmp(m->header, "\r\n", 2) == 0)
        return WEB_MP_MALFORMED;   /* no Content-Disposition */
    if (m->hlen >= 4 && memcmp(m->header + m->hlen - 4, "\r\n\r\n", 4) == 0) {
        m->state = ST_DATA;
        return part_headers(m);
    }
    return WEB_MP_OK;
}

static web_mp_err open_part(web_multipart *m)
{
    if (m->n == WEB_MP_MAX_PARTS)
        return WEB_MP_TOO_MANY_PARTS;
    memset(&m->parts[m->n++], 0, sizeof m->parts[0]);
    m->hlen = 0;
    m->state = ST_HEADERS;
    return WEB_MP_OK;
}

static web_mp_err step(web_multipart *m, char c)
{
    switch (m->state) {
    case ST_PREAMBLE:
    case ST_DATA:
        return search_byte(m, c);
    case ST_AFTER_DELIM:
        m->state = c == '-' ? ST_AFTER_DASH : c == '\r' ? ST_AFTER_CR : -1;
        return m->state < 0 ? WEB_MP_MALFORMED : WEB_MP_OK;
    case ST_AFTER_DASH:
        m->state = ST_END;
        return c == '-' ? WEB_MP_OK : WEB_MP_MALFORMED;
    case ST_AFTER_CR:
        return c == '\n' ? open_part(m) : WEB_MP_MALFORMED;
    case ST_HEADERS:
        return header_byte(m, c);
    default:
        return WEB_MP_OK;   /* the epilogue is ignored */
    }
}

web_mp_err web_mp_feed(web_multipart *m, const char *data, size_t n)
{
    if (n > WEB_MP_MAX_BODY - m->total) {
        m->total = WEB_MP_MAX_BODY;
        if (m->err == WEB_MP_OK)
            m->err = WEB_MP_TOO_LARGE;
        return m->err;
    }
    m->total += n;
    for (size_t i = 0; i < n && m->err == WEB_MP_OK && m->state != ST_END; i++)
        m->err = step(m, data[i]);
    return m->err;
}

web_mp_err web_mp_finish(web_multipart *m)
{
    if (m->err == WEB_MP_OK && m->state != ST_END)
        m->err = WEB_MP_TRUNCATED;
    return m->err;
}

const web_mp_part *web_mp_field(const web_multipart *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!m->parts[i].filename && strcmp(m->parts[i].name, name) == 0)
            return &m->parts[i];
    return NULL;
}

void web_mp_free(web_multipart *m)
{
    for (size_t i = 0; i < m->n; i++)
        drop_part(&m->parts[i]);
    m->n = 0;
    secret_wipe(m->header, sizeof m->header);
}

const char *web_mp_strerror(web_mp_err e)
{
    switch (e) {
    case WEB_MP_OK: return "no error";
    case WEB_MP_TOO_LARGE: return "the form, or one of its fields, is larger than allowed";
    case WEB_MP_TOO_MANY_PARTS: return "the form has too many parts";
    case WEB_MP_BAD_BOUNDARY: return "the form's Content-Type has no usable boundary";
    case WEB_MP_MALFORMED: return "the form is not well-formed multipart/form-data";
    case WEB_MP_BAD_NAME: return "the form holds a field this page does not have";
    case WEB_MP_DUPLICATE: return "a field of the form is given twice";
    case WEB_MP_BAD_FILENAME: return "an attachment's file name holds control characters or is too long";
    case WEB_MP_TRUNCATED: return "the form ended early";
    case WEB_MP_NO_MEMORY: return "out of memory";
    }
    return "unknown error";
}
