/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http_framing.c - libFuzzer target for the listener's framing rule
 * (src/kme/http_framing.c): the input is a header block, one "Name: value"
 * per line, fed header by header as libmicrohttpd hands them over.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kme/http_framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_framing f = { 0 };
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon)
            http_framing_add(&f, p, (size_t)(colon - p), colon + 1, (size_t)(line_end - colon - 1));
        p = eol ? eol + 1 : end;
    }
    const char *why = http_framing_refusal(&f);
    if (why && strlen(why) == 0)
        __builtin_trap(); /* a refusal always says why */
    return 0;
}
