/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_termsafe.c - text made safe for a terminal (src/common/termsafe.c):
 * whatever the input, the output holds no C0 control (but LF, TAB and the
 * CR of CRLF in text mode), no DEL, no C1, no bidi override and only
 * well-formed UTF-8; the copy and the stream writer agree; sanitising
 * twice changes nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/termsafe.h"

static void check_safe(const unsigned char *p, size_t n, termsafe_mode mode)
{
    for (size_t i = 0; i < n;) {
        size_t k = termsafe_char_len(p + i, n - i, mode);
        if (k == 0)
            abort(); /* something unsafe came through */
        i += k;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    termsafe_mode mode = data[0] & 1 ? TERMSAFE_TEXT : TERMSAFE_LINE;
    data++;
    size--;
    size_t cap = 4 * size + 1;
    char *out = malloc(cap), *again = malloc(cap), *stream = NULL;
    size_t slen = 0;
    if (out == NULL || again == NULL)
        abort();
    size_t n = termsafe_copy(out, cap, data, size, mode);
    check_safe((const unsigned char *)out, n, mode);
    if (termsafe_copy(again, cap, out, n, mode) != n || memcmp(again, out, n) != 0)
        abort();
    FILE *f = open_memstream(&stream, &slen);
    if (f == NULL || termsafe_write(f, data, size, mode) != 0 || fclose(f) != 0)
        abort();
    if (slen != n || memcmp(stream, out, n) != 0)
        abort();
    free(stream);
    free(out);
    free(again);
    return 0;
}
