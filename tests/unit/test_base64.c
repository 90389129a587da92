/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_base64.c - strict base64: RFC 4648 test vectors, round trips, and
 * every kind of non-canonical text the decoder must refuse, and the coder
 * against libsodium's (which it replaced for speed) on random input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sodium.h>

#include "common/base64.h"

static const struct { const char *bin, *text; } rfc4648[] = {
    { "", "" },           { "f", "Zg==" },          { "fo", "Zm8=" },
    { "foo", "Zm9v" },    { "foob", "Zm9vYg==" },   { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" },
};

static void test_lengths(void **state)
{
    (void)state;
    assert_int_equal(b64_encoded_len(0), 0);
    assert_int_equal(b64_encoded_len(1), 4);
    assert_int_equal(b64_encoded_len(3), 4);
    assert_int_equal(b64_encoded_len(4), 8);
    assert_int_equal(b64_encoded_len(32), 44);
    assert_int_equal(b64_max_decoded_len(0), 0);
    assert_int_equal(b64_max_decoded_len(4), 3);
    assert_int_equal(b64_max_decoded_len(44), 33);
}

static void test_encode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        char out[16];
        size_t n = strlen(rfc4648[i].bin);
        memset(out, 'X', sizeof out);
        b64_encode((const uint8_t *)rfc4648[i].bin, n, out);
        assert_string_equal(out, rfc4648[i].text);
        assert_int_equal(strlen(out), b64_encoded_len(n));
    }
}

static void test_decode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        uint8_t out[16];
        size_t outlen = 99;
        const char *t = rfc4648[i].text;
        assert_int_equal(b64_decode(t, strlen(t), out, sizeof out, &outlen), 0);
        assert_int_equal(outlen, strlen(rfc4648[i].bin));
        assert_memory_equal(out, rfc4648[i].bin, outlen);
    }
}

/* The 256-bit key of the spec's Key container example. */
static void test_spec_key_round_trip(void **state)
{
    (void)state;
    const char *key = "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s=";
    uint8_t bin[33];
    size_t n = 0;
    char again[45];

    assert_int_equal(b64_decode(key, strlen(key), bin, sizeof bin, &n), 0);
    assert_int_equal(n, 32);
    b64_encode(bin, n, again);
    assert_string_equal(again, key);
}

static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    uint8_t in[200], out[200];
    char text[300];

    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t got = 0;
        b64_encode(in, n, text);
        assert_int_equal(strlen(text), b64_encoded_len(n));
        assert_int_equal(b64_decode(text, strlen(text), out, sizeof out, &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(in, out, n);
    }
}

static void expect_reject(const char *text, size_t len)
{
    uint8_t out[64];
    size_t outlen = 12345;
    if (b64_decode(text, len, out, sizeof out, &outlen) != -1) {
        print_error("accepted non-canonical base64 \"%.*s\"\n", (int)len, text);
        fail();
    }
    assert_int_equal(outlen, 12345); /* untouched on failure */
}

static void test_decode_rejects_non_canonical(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",         /* missing padding */
        "Zg=",        /* length not a multiple of 4 */
        "Zm9vY",      /* length not a multiple of 4 */
        "Zh==",       /* unused bits set (h = 100001) */
        "Zm9=",       /* unused bits set (9 = 111101) */
        "Z===",       /* one character cannot carry a byte */
        "====",       /* padding only */
        "Zg==Zg==",   /* padding in the middle */
        "Zm=v",       /* padding in the middle of a group */
        "Zg=a",       /* data after padding */
        " Zg=",       /* whitespace */
        "Zg==\n   ",  /* trailing newline */
        "Zm 9",       /* inner space */
        "Zm9\t",      /* tab */
        "Zm9-",       /* base64url alphabet */
        "Zm9_",       /* base64url alphabet */
        "Zm9*",       /* not in any alphabet */
        "Zm9v\r\nYmFy", /* line break */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], strlen(bad[i]));
    expect_reject("Zm\0v", 4);      /* embedded NUL */
}

static void test_decode_zero_bits_accepted(void **state)
{
    (void)state;
    uint8_t out[4];
    size_t n = 0;
    /* "Zg==" and "Zm8=" are the canonical forms next to Zh== / Zm9= */
    assert_int_equal(b64_decode("Zm8=", 4, out, sizeof out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(b64_decode("AA==", 4, out, sizeof out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(b64_decode("//8=", 4, out, sizeof out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[1], 0xff);
}

static void test_decode_respects_capacity(void **state)
{
    (void)state;
    uint8_t out[6];
    size_t n = 0;
    assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
    assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(b64_decode("Zg==", 4, out, 0, &n), -1);
}

static void test_decode_only_reads_len(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t n = 0;
    /* the first 4 characters are a complete encoding by themselves */
    assert_int_equal(b64_decode("Zm9vgarbage", 4, out, sizeof out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "foo", 3);
}

/* Canonical per libsodium: it decodes all of the text and encodes the
 * result back to exactly the text. */
static int sodium_canonical(const char *t, size_t len, uint8_t *bin, size_t *n)
{
    const char *end = NULL;
    char again[64];
    if (len % 4 != 0 || sodium_base642bin(bin, 48, t, len, NULL, n, &end,
                                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != t + len)
        return 0;
    sodium_bin2base64(again, sizeof again, bin, *n, sodium_base64_VARIANT_ORIGINAL);
    return strlen(again) == len && memcmp(again, t, len) == 0;
}

static void test_same_as_libsodium(void **state)
{
    (void)state;
    /* mostly alphabet characters, so that many texts are valid */
    static const char chars[] = "ABCDQZafgz0189+/==== -_\n";
    uint8_t bin[48], ref[48], in[40];
    char text[64], ours[64], theirs[64];
    for (int i = 0; i < 200000; i++) {
        size_t len = 4 * (1 + randombytes_uniform(3));
        for (size_t k = 0; k < len; k++)
            text[k] = chars[randombytes_uniform(sizeof chars - 1)];
        text[len] = '\0';
        size_t n = 0, rn = 0;
        int ok = b64_decode(text, len, bin, sizeof bin, &n) == 0;
        int rok = sodium_canonical(text, len, ref, &rn);
        if (ok != rok)
            fail_msg("\"%s\": ours %d, libsodium %d", text, ok, rok);
        if (ok) {
            assert_int_equal(n, rn);
            assert_memory_equal(bin, ref, n);
        }
    }
    for (size_t n = 0; n <= sizeof in; n++) {
        randombytes_buf(in, n);
        b64_encode(in, n, ours);
        sodium_bin2base64(theirs, sizeof theirs, in, n, sodium_base64_VARIANT_ORIGINAL);
        assert_string_equal(ours, theirs);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_encode_rfc4648_vectors),
        cmocka_unit_test(test_decode_rfc4648_vectors),
        cmocka_unit_test(test_spec_key_round_trip),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_decode_rejects_non_canonical),
        cmocka_unit_test(test_decode_zero_bits_accepted),
        cmocka_unit_test(test_decode_respects_capacity),
        cmocka_unit_test(test_decode_only_reads_len),
        cmocka_unit_test(test_same_as_libsodium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
