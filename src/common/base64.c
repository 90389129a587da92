/*
 * base64.c - strict RFC 4648 base64 for key material, on top of libsodium.
 *
 * libsodium does the constant-time alphabet work.  On decode we add what it
 * leaves to the caller: the length must be a multiple of 4 and the whole
 * input must be consumed (sodium_base642bin stops at the first padding and
 * reports success for "Zg==Zg=="), and the bits a short final group does not
 * use must be zero, so that every byte string has exactly one accepted
 * encoding.  libsodium 1.0.18 checks those bits too; we check them again so
 * the guarantee does not rest on one library version.
 */
#include "common/base64.h"

#include <sodium.h>

size_t b64_encoded_len(size_t n)
{
    return (n / 3 + (n % 3 != 0)) * 4;
}

size_t b64_max_decoded_len(size_t len)
{
    return len / 4 * 3;
}

void b64_encode(const uint8_t *in, size_t n, char *out)
{
    sodium_bin2base64(out, b64_encoded_len(n) + 1, in, n,
                      sodium_base64_VARIANT_ORIGINAL);
}

/* Constant-time byte comparisons: 0xff when true, 0 when false.  The last
 * data character of a group is key material, so no branch may depend on it. */
static unsigned ct_lt(unsigned x, unsigned y) { return ((x - y) >> 8) & 0xffU; }
static unsigned ct_ge(unsigned x, unsigned y) { return ct_lt(x, y) ^ 0xffU; }
static unsigned ct_eq(unsigned x, unsigned y)
{
    return (((0U - (x ^ y)) >> 8) & 0xffU) ^ 0xffU;
}

/* The 6-bit value of an alphabet character (already validated by libsodium). */
static unsigned b64_char_value(unsigned char c)
{
    unsigned v = 0;
    v |= (ct_ge(c, 'A') & ct_lt(c, 'Z' + 1)) & (unsigned)(c - 'A');
    v |= (ct_ge(c, 'a') & ct_lt(c, 'z' + 1)) & (unsigned)(c - 'a' + 26);
    v |= (ct_ge(c, '0') & ct_lt(c, '9' + 1)) & (unsigned)(c - '0' + 52);
    v |= ct_eq(c, '+') & 62U;
    v |= ct_eq(c, '/') & 63U;
    return v & 63U;
}

/* A final group "xx==" encodes one byte and leaves 4 bits of its second
 * character unused; "xxx=" leaves 2 bits of its third.  Those must be 0. */
static int unused_bits_are_zero(const char *in, size_t len)
{
    size_t pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    if (pad == 0)
        return 1;
    unsigned last = b64_char_value((unsigned char)in[len - 1 - pad]);
    unsigned mask = pad == 2 ? 0x0fU : 0x03U;
    return (last & mask) == 0;
}

int b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap,
               size_t *outlen)
{
    size_t got = 0;
    const char *end = NULL;

    if (len % 4 != 0)
        return -1;
    if (len == 0) {
        *outlen = 0;
        return 0;
    }
    if (sodium_base642bin(out, outcap, in, len, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0
        || end != in + len || !unused_bits_are_zero(in, len)) {
        /* do not leave half-decoded key material behind */
        size_t written = b64_max_decoded_len(len);
        sodium_memzero(out, written < outcap ? written : outcap);
        return -1;
    }
    *outlen = got;
    return 0;
}
