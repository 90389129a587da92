/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonw.h - a small JSON text writer for documents whose shape the program
 * fixes (the KME-to-KME reservations): strings are escaped, integers
 * printed, everything else is appended as the caller spells it.  Building
 * the same text through a DOM (jansson's json_pack + json_dumps) cost a
 * KME about 7 % of its CPU per reservation, in allocations and copies.
 *
 * The writer never fails midway in a way the caller must check at every
 * step: an allocation failure sets `failed`, later calls do nothing, and
 * jw_finish() returns NULL.  Not for secrets: the buffer grows by realloc.
 */
#ifndef QC_JSONW_H
#define QC_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jsonw {
    char *buf;
    size_t len, cap;
    bool failed;
} jsonw;

/* Start with room for about `hint` bytes (0: a small default). */
void jw_init(jsonw *w, size_t hint);
/* Append text as it is (punctuation, member names the caller knows to be
 * plain ASCII without quotes or backslashes). */
void jw_raw(jsonw *w, const char *text, size_t len);
void jw_lit(jsonw *w, const char *text);
/* Append a JSON string: quotes added, '"', '\\' and control characters
 * escaped, other bytes (UTF-8) as they are. */
void jw_str(jsonw *w, const char *s);
void jw_int(jsonw *w, int64_t v);
/* The NUL-terminated text (the caller frees it) and its length, or NULL
 * after a failure (everything freed). */
char *jw_finish(jsonw *w, size_t *len);
/* Drop the text (when the caller gives up halfway). */
void jw_free(jsonw *w);

#endif
