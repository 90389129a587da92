/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_multipart.c - the Compose form's multipart/form-data reader
 * (src/web/multipart.c), which reads what any local program sends to
 * `qumail web`.  Input: a Content-Type value, a newline, then the body.
 * The body is read twice, whole and in pieces of sizes taken from the
 * input, and both readings must agree (the reader streams: a delimiter
 * cut between pieces must not change anything).  Every part kept must
 * have a name of the set, file names only under the repeatable name and
 * free of path separators and control characters, and stay in bounds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/multipart.h"

static const char *const names[] = { "csrf", "to", "cc", "subject", "message", "level",
                                     "confirm", "attachments", NULL };

static void check_parts(const web_multipart *m)
{
    if (m->n > WEB_MP_MAX_PARTS || m->total > WEB_MP_MAX_BODY)
        abort();
    for (size_t i = 0; i < m->n; i++) {
        const web_mp_part *p = &m->parts[i];
        bool known = false;
        for (const char *const *n = names; *n; n++)
            known |= strcmp(*n, p->name) == 0;
        if (!known || p->len > p->cap || (p->data && p->data[p->len] != '\0'))
            abort();
        if (p->filename) {
            if (strcmp(p->name, "attachments") != 0 || strchr(p->filename, '/') ||
                strchr(p->filename, '\\') || strlen(p->filename) > WEB_MP_MAX_FILENAME)
                abort();
            for (const char *c = p->filename; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    abort();
        } else if (p->len > WEB_MP_MAX_FIELD) {
            abort();
        }
    }
}

static bool same(const web_multipart *a, const web_multipart *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const web_mp_part *p = &a->parts[i], *q = &b->parts[i];
        if (strcmp(p->name, q->name) != 0 || p->len != q->len ||
            (p->len && memcmp(p->data, q->data, p->len) != 0) || !p->filename != !q->filename ||
            (p->filename && strcmp(p->filename, q->filename) != 0))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || nl - data > 200)
        return 0;
    char ct[201], boundary[WEB_MP_MAX_BOUNDARY + 1];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = '\0';
    if (web_mp_boundary(ct, boundary, sizeof boundary) != WEB_MP_OK)
        return 0;
    const char *body = (const char *)nl + 1;
    size_t len = size - (size_t)(nl - data) - 1;
    static web_multipart whole, pieces;
    web_mp_init(&whole, boundary, names, "attachments");
    web_mp_feed(&whole, body, len);
    web_mp_err e1 = web_mp_finish(&whole);
    web_mp_init(&pieces, boundary, names, "attachments");
    for (size_t i = 0, k = 0; i < len; k++) {
        size_t step = 1 + (size_t)(unsigned char)body[k % len] % 7;
        step = step < len - i ? step : len - i;
        web_mp_feed(&pieces, body + i, step);
        i += step;
    }
    web_mp_err e2 = web_mp_finish(&pieces);
    if (e1 == WEB_MP_OK) {   /* after an error the last part may be half-read */
        check_parts(&whole);
        check_parts(&pieces);
    }
    if (e1 != e2 || (e1 == WEB_MP_OK && !same(&whole, &pieces)))
        abort();
    web_mp_free(&whole);
    web_mp_free(&pieces);
    return 0;
}
