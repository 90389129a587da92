/* SPDX-License-Identifier: Apache-2.0 */
/*
 * termsafe.c - replace what a terminal would obey in text from outside
 * (termsafe.h): controls, C1, bidi overrides and malformed UTF-8.
 */
#include "common/termsafe.h"

#include <string.h>
#include <unistd.h>

static bool continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* U+202A..U+202E (embeddings, overrides, PDF) and U+2066..U+2069
 * (isolates): they reorder what the terminal shows after them. */
static bool bidi_control(unsigned cp)
{
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

static size_t ascii_len(const unsigned char *p, size_t n, termsafe_mode mode)
{
    unsigned char c = p[0];
    if (c >= 0x20 && c != 0x7F)
        return 1;
    if (mode != TERMSAFE_TEXT)
        return 0;
    if (c == '\n' || c == '\t')
        return 1;
    /* a lone CR returns the cursor to overwrite the line: only CRLF */
    return c == '\r' && n > 1 && p[1] == '\n' ? 1 : 0;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: shortest
 * form, no surrogates, at most U+10FFFF), or 0; its code point in *cp. */
static size_t utf8_len(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    unsigned v = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if (!continuation(p[i]))
            return 0;
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    *cp = v;
    return len;
}

/* The unit at p: how many bytes it spans (a well-formed character, or one
 * byte of malformed UTF-8) and whether it may be printed as it is. */
static size_t unit_at(const unsigned char *p, size_t n, termsafe_mode mode, bool *safe)
{
    if (p[0] < 0x80) {
        *safe = ascii_len(p, n, mode) == 1;
        return 1;
    }
    unsigned cp = 0;
    size_t len = utf8_len(p, n, &cp);
    *safe = len > 0 && !(cp >= 0x80 && cp <= 0x9F) && !bidi_control(cp);
    return len ? len : 1;
}

size_t termsafe_char_len(const unsigned char *p, size_t n, termsafe_mode mode)
{
    bool safe;
    if (n == 0)
        return 0;
    size_t len = unit_at(p, n, mode, &safe);
    return safe ? len : 0;
}

size_t termsafe_copy(char *out, size_t cap, const void *in, size_t len, termsafe_mode mode)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    if (cap == 0)
        return 0;
    while (i < len) {
        bool safe;
        size_t k = unit_at(p + i, len - i, mode, &safe), need = safe ? k : 1;
        if (o + need >= cap)
            break;
        if (safe)
            memcpy(out + o, p + i, k);
        else
            out[o] = TERMSAFE_REPLACEMENT;
        o += need;
        i += k;
    }
    out[o] = '\0';
    return o;
}

int termsafe_write(FILE *f, const void *in, size_t len, termsafe_mode mode)
{
    const unsigned char *p = in;
    size_t run = 0, i = 0; /* run: start of the safe bytes not yet written */
    while (i < len) {
        bool safe;
        size_t k = unit_at(p + i, len - i, mode, &safe);
        if (safe) {
            i += k;
            continue;
        }
        if ((i > run && fwrite(p + run, 1, i - run, f) != i - run)
            || fputc(TERMSAFE_REPLACEMENT, f) == EOF)
            return -1;
        i += k;
        run = i;
    }
    if (i > run && fwrite(p + run, 1, i - run, f) != i - run)
        return -1;
    return 0;
}

bool termsafe_is_tty(FILE *f)
{
    int fd = fileno(f);
    return fd >= 0 && isatty(fd) == 1;
}
