/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonscan.h - a strict JSON reader that works in place on the caller's
 * buffer, for answers too large to copy cheaply: a Key container of
 * 100 KiB of key material is 137 KB of base64 text, and a DOM parser
 * (jansson) spends most of an SAE's CPU copying and re-validating it
 * character by character, and leaves copies of key text on its heap.
 *
 * Use it in two steps.  js_validate() checks a whole document once, as
 * strictly as jansson with JSON_REJECT_DUPLICATES (RFC 8259 grammar,
 * UTF-8, escapes and surrogate pairs, no \u0000, no duplicate member
 * names at any depth, integers that fit in 64 bits, finite reals, an
 * object or array at the top, nesting at most JS_MAX_DEPTH).  Then walk
 * the valid document with the cursor functions, which return views into
 * the buffer (js_str) and skip values at memchr speed; strings are
 * decoded only when a caller asks (js_str_decode), so key text is never
 * copied but by the base64 decoder into its final, locked buffer.
 *
 * The cursor functions are bounds-checked and fail cleanly on any input,
 * but they report JSON errors precisely only in js_validate().
 */
#ifndef QC_JSONSCAN_H
#define QC_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* Nesting bound: the validator recurses once per level (a few hundred bytes
 * of stack each), and libqkd014 runs in its caller's threads, whose stacks
 * may be small.  ETSI answers nest three levels; extensions a few more. */
#define JS_MAX_DEPTH 128

/* A string as it appears between its quotes. */
typedef struct js_str {
    const char *raw;
    size_t len;
    bool escaped; /* contains backslash escapes: decode before use */
} js_str;

typedef struct js_error {
    int line, column;  /* 1-based position of the error */
    const char *why;   /* a constant description */
} js_error;

/* Whole-document check; false fills *e. */
bool js_validate(const char *buf, size_t len, js_error *e);

/* A cursor over a document that js_validate() accepted. */
typedef struct jscan {
    const char *p, *end;
} jscan;

typedef struct js_iter {
    bool started;
} js_iter;

void js_init(jscan *s, const char *buf, size_t len);
/* Next non-blank character without consuming it, '\0' at the end. */
char js_peek(jscan *s);
/* Consume '{' or '['; false if the next value is not one. */
bool js_object_begin(jscan *s, js_iter *it);
bool js_array_begin(jscan *s, js_iter *it);
/* Next member: 1 with *name set and the cursor at its value, 0 after the
 * closing '}', -1 on malformed input. */
int js_member(jscan *s, js_iter *it, js_str *name);
/* Next element: 1 with the cursor at it, 0 after the closing ']', -1. */
int js_element(jscan *s, js_iter *it);
/* Read a string value; false if the next value is not a string. */
bool js_string(jscan *s, js_str *out);
/* Read an integer value (no fraction or exponent) that fits in int64_t;
 * false otherwise. */
bool js_int64(jscan *s, long long *out);
/* Skip any value. */
bool js_skip(jscan *s);

/* Decode a string into dst (room for s->len bytes; the decoded text is
 * never longer); returns its length. */
size_t js_str_decode(const js_str *s, char *dst);
/* Does the decoded string equal the NUL-terminated lit? */
bool js_str_is(const js_str *s, const char *lit);

#endif
