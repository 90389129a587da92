/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_jsonscan.c - libFuzzer target for the in-place JSON reader
 * (src/common/jsonscan.c) that libqkd014 uses for Key containers.
 *
 * Differential: js_validate() must accept exactly what jansson accepts
 * with JSON_REJECT_DUPLICATES, with two tolerated differences where we are
 * stricter: jansson allows deeper nesting than JS_MAX_DEPTH, and its input
 * stream silently drops NUL bytes ("[0\0]" loads), which RFC 8259 does not
 * allow anywhere.  An accepted document
 * must then be walkable to its end with the cursor, and every string the
 * walk meets must decode to no more bytes than its raw form.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonscan.h"

static void walk(jscan *s, int depth)
{
    js_iter it;
    js_str str;
    char c = js_peek(s);
    if (depth > JS_MAX_DEPTH)
        abort();
    if (c == '{') {
        int r;
        js_object_begin(s, &it);
        while ((r = js_member(s, &it, &str)) == 1)
            walk(s, depth + 1);
        if (r != 0)
            abort();
    } else if (c == '[') {
        int r;
        js_array_begin(s, &it);
        while ((r = js_element(s, &it)) == 1)
            walk(s, depth + 1);
        if (r != 0)
            abort();
    } else if (c == '"') {
        if (!js_string(s, &str))
            abort();
        char *buf = malloc(str.len + 1);
        if (buf == NULL || js_str_decode(&str, buf) > str.len)
            abort();
        free(buf);
    } else if (!js_skip(s)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;
    js_error e;
    bool ours = js_validate(doc, size, &e);
    json_error_t je;
    json_t *j = json_loadb(doc, size, JSON_REJECT_DUPLICATES, &je);
    bool theirs = j != NULL;
    json_decref(j);
    bool stricter = !ours && theirs && (strstr(e.why, "depth") != NULL || memchr(doc, 0, size) != NULL);
    if (ours != theirs && !stricter)
        abort();
    if (ours) {
        jscan s;
        js_init(&s, doc, size);
        walk(&s, 0);
        if (js_peek(&s) != '\0')
            abort();
    }
    return 0;
}
