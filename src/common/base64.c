/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64.c - strict RFC 4648 base64 for key material.
 *
 * Both directions run in time independent of the data: every character is
 * mapped with branch-free arithmetic (no table indexed by a secret, no
 * branch on one), as libsodium's coder does, but in runs of 256 characters
 * whose mapping loop the compiler vectorizes: the ~137 KB of a 100 KiB
 * Level 1 pad decode in about a third of sodium_base642bin's time (which
 * was a fifth of a QuMail message's CPU time in the client, twice per
 * message), and encode in about 40%.  The decoder is strict:
 * the length must be a multiple of 4, only the last group may carry '='
 * padding ("xx==" or "xxx="), and the bits a short final group does not use
 * must be zero, so that every byte string has exactly one accepted
 * encoding.  Only the validity of the whole input is branched on, once.
 */
#include "common/base64.h"

#include <sodium.h>
#include <string.h>

size_t b64_encoded_len(size_t n)
{
    return (n / 3 + (n % 3 != 0)) * 4;
}

size_t b64_max_decoded_len(size_t len)
{
    return len / 4 * 3;
}

/* Constant-time byte comparisons: 0xff when true, 0 when false. */
static inline unsigned ct_lt(unsigned x, unsigned y) { return ((x - y) >> 8) & 0xffU; }
static inline unsigned ct_ge(unsigned x, unsigned y) { return ct_lt(x, y) ^ 0xffU; }
static inline unsigned ct_eq(unsigned x, unsigned y)
{
    return (((0U - (x ^ y)) >> 8) & 0xffU) ^ 0xffU;
}

/* The alphabet character of a 6-bit value. */
static inline char b64_char(unsigned v)
{
    unsigned c = 0;
    c |= ct_lt(v, 26) & (v + 'A');
    c |= ct_ge(v, 26) & ct_lt(v, 52) & (v - 26 + 'a');
    c |= ct_ge(v, 52) & ct_lt(v, 62) & (v - 52 + '0');
    c |= ct_eq(v, 62) & (unsigned)'+';
    c |= ct_eq(v, 63) & (unsigned)'/';
    return (char)c;
}

/* The run loops below, compiled twice on x86-64: for AVX2 (16 lanes of 16
 * bits) and the baseline (SSE2, 8 lanes), chosen at load time by the CPU.
 * Same arithmetic in both, so both are branch-free. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* Branch-free arithmetic on 16-bit lanes (values below 256): 0xff when
 * true, 0 when false.  Loops over runs of these vectorise (8 or 16 lanes
 * per instruction) where the 32-bit forms above do not as well. */
static inline uint16_t lt16(uint16_t x, uint16_t y) { return (uint16_t)((uint16_t)(x - y) >> 8); }
static inline uint16_t in16(uint16_t c, uint16_t lo, uint16_t hi)
{
    return (uint16_t)(lt16(c, (uint16_t)(hi + 1)) & (lt16(c, lo) ^ 0xffU));
}

/* b64_char over a run of n 6-bit values. */
VECTOR_CLONES
static void chars_run(const uint8_t *vals, char *out, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint16_t v = vals[k], c = 0;
        c |= in16(v, 0, 25) & (uint16_t)(v + 'A');
        c |= in16(v, 26, 51) & (uint16_t)(v - 26 + 'a');
        c |= in16(v, 52, 61) & (uint16_t)(v - 52 + '0');
        c |= in16(v, 62, 62) & (uint16_t)'+';
        c |= in16(v, 63, 63) & (uint16_t)'/';
        out[k] = (char)c;
    }
}

#define B64_RUN 256 /* characters mapped per run (a multiple of 4) */

void b64_encode(const uint8_t *in, size_t n, char *out)
{
    /* whole groups in runs: split into 6-bit values, then map them (a
     * loop the compiler turns into vector code) */
    uint8_t vals[B64_RUN];
    size_t i = 0;
    while (n - i >= 3) {
        size_t run = (n - i) / 3 < B64_RUN / 4 ? (n - i) / 3 : B64_RUN / 4;
        for (size_t k = 0; k < run * 4; k += 4, i += 3) {
            unsigned w = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
            vals[k] = (uint8_t)(w >> 18);
            vals[k + 1] = (uint8_t)((w >> 12) & 63U);
            vals[k + 2] = (uint8_t)((w >> 6) & 63U);
            vals[k + 3] = (uint8_t)(w & 63U);
        }
        chars_run(vals, out, run * 4);
        out += run * 4;
    }
    sodium_memzero(vals, sizeof vals);
    if (n - i == 1) {
        unsigned w = (unsigned)in[i] << 16;
        out[0] = b64_char(w >> 18);
        out[1] = b64_char((w >> 12) & 63U);
        out[2] = out[3] = '=';
        out += 4;
    } else if (n - i == 2) {
        unsigned w = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[0] = b64_char(w >> 18);
        out[1] = b64_char((w >> 12) & 63U);
        out[2] = b64_char((w >> 6) & 63U);
        out[3] = '=';
        out += 4;
    }
    *out = '\0';
}

/* The 6-bit value of a character; *bad gets bits set when it is not in
 * the alphabet ('=' included: padding is handled by the caller). */
static inline unsigned b64_value(unsigned char ch, unsigned *bad)
{
    unsigned c = ch, v = 0, ok = 0, m;
    m = ct_ge(c, 'A') & ct_lt(c, 'Z' + 1);
    v |= m & (c - 'A');
    ok |= m;
    m = ct_ge(c, 'a') & ct_lt(c, 'z' + 1);
    v |= m & (c - 'a' + 26);
    ok |= m;
    m = ct_ge(c, '0') & ct_lt(c, '9' + 1);
    v |= m & (c - '0' + 52);
    ok |= m;
    m = ct_eq(c, '+');
    v |= m & 62U;
    ok |= m;
    m = ct_eq(c, '/');
    v |= m & 63U;
    ok |= m;
    *bad |= ok ^ 0xffU;
    return v & 63U;
}

/* Decode one group of four characters into a 24-bit word. */
static inline unsigned b64_group(const char *in, unsigned *bad)
{
    return b64_value((unsigned char)in[0], bad) << 18 |
           b64_value((unsigned char)in[1], bad) << 12 |
           b64_value((unsigned char)in[2], bad) << 6 | b64_value((unsigned char)in[3], bad);
}

/* The 6-bit values of n characters into vals; returns non-zero if any is
 * not in the alphabet.  The same arithmetic as b64_value on 16-bit lanes,
 * with the flag OR-ed across the run, so that the compiler maps 8 or 16
 * characters per vector instruction (2-3x faster than b64_value one at a
 * time; a Key container of 100 KiB is 137 KB of text). */
VECTOR_CLONES
static unsigned map_run(const unsigned char *p, uint8_t *vals, size_t n)
{
    uint16_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        uint16_t c = p[k], m, v = 0, ok = 0;
        m = in16(c, 'A', 'Z');
        v |= m & (uint16_t)(c - 'A');
        ok |= m;
        m = in16(c, 'a', 'z');
        v |= m & (uint16_t)(c - 'a' + 26);
        ok |= m;
        m = in16(c, '0', '9');
        v |= m & (uint16_t)(c - '0' + 52);
        ok |= m;
        m = in16(c, '+', '+');
        v |= m & 62U;
        ok |= m;
        m = in16(c, '/', '/');
        v |= m & 63U;
        ok |= m;
        bad |= (uint16_t)(ok ^ 0xffU);
        vals[k] = (uint8_t)(v & 63U);
    }
    return bad;
}

int b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap,
               size_t *outlen)
{
    if (len % 4 != 0)
        return -1;
    if (len == 0) {
        *outlen = 0;
        return 0;
    }
    /* padding is public: where it is, not what the key bytes are */
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t n = len / 4 * 3 - pad;
    if (n > outcap)
        return -1;
    unsigned bad = 0;
    size_t groups = len / 4 - 1, o = 0;
    /* all groups but the last, in runs mapped first (a loop the compiler
     * turns into vector code) and packed second */
    uint8_t vals[B64_RUN];
    for (size_t g = 0; g < groups;) {
        size_t run = groups - g < B64_RUN / 4 ? groups - g : B64_RUN / 4;
        const unsigned char *p = (const unsigned char *)in + g * 4;
        bad |= map_run(p, vals, run * 4);
        for (size_t k = 0; k < run * 4; k += 4, o += 3) {
            unsigned w = (unsigned)vals[k] << 18 | (unsigned)vals[k + 1] << 12 |
                         (unsigned)vals[k + 2] << 6 | vals[k + 3];
            out[o] = (uint8_t)(w >> 16);
            out[o + 1] = (uint8_t)(w >> 8);
            out[o + 2] = (uint8_t)w;
        }
        g += run;
    }
    sodium_memzero(vals, sizeof vals);
    /* the last group: '=' stands for 'A' (zero bits), whose bits must then
     * be unused; a character before the padding that is '=' is refused */
    char last[4];
    memcpy(last, in + len - 4, 4);
    for (size_t k = 4 - pad; k < 4; k++)
        last[k] = 'A';
    unsigned w = b64_group(last, &bad);
    sodium_memzero(last, sizeof last);
    unsigned unused = pad == 2 ? w & 0xffffU : pad == 1 ? w & 0xffU : 0;
    bad |= (unused | (0U - unused)) >> 31; /* 1 unless unused is 0 */
    uint8_t tail[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
    memcpy(out + o, tail, 3 - pad);
    sodium_memzero(tail, sizeof tail);
    if (bad != 0) {
        /* do not leave half-decoded key material behind */
        sodium_memzero(out, n);
        return -1;
    }
    *outlen = n;
    return 0;
}
