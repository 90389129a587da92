/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pct.c - strict percent-decoding of URL path segments and query parts, and
 * percent-encoding of one path segment (RFC 3986).
 */
#include "common/pct.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/hex.h"

int pct_decode(const char *in, size_t len, char **out)
{
    *out = NULL;
    if (len == SIZE_MAX)
        return -2;
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return -2;

    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3)
                goto malformed;
            int h = hex_value((unsigned char)in[i + 1]);
            int l = hex_value((unsigned char)in[i + 2]);
            if (h < 0 || l < 0)
                goto malformed;
            c = (unsigned char)(h << 4 | l);
            i += 2;
        }
        /* a NUL, raw or escaped, would silently cut the C string short */
        if (c == '\0')
            goto malformed;
        buf[o++] = (char)c;
    }
    buf[o] = '\0';
    *out = buf;
    return 0;

malformed:
    free(buf);
    return -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
        || c == '~';
}

char *pct_encode(const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = strlen(s);

    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(3 * n + 1);
    if (out == NULL)
        return NULL;

    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 0x0f];
        }
    }
    out[o] = '\0';
    return out;
}
