/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pct.c - strict percent-decoding of path segments and query parts,
 * and percent-encoding of one path segment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/pct.h"

static void expect_decoded(const char *in, const char *want)
{
    char *out = NULL;
    assert_int_equal(pct_decode(in, strlen(in), &out), 0);
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void test_decode_valid(void **state)
{
    (void)state;
    expect_decoded("", "");
    expect_decoded("SAE_B", "SAE_B");
    expect_decoded("SAE%20B", "SAE B");
    expect_decoded("a%2Fb", "a/b");
    expect_decoded("a%2fb", "a/b");          /* lower-case hex */
    expect_decoded("a+b", "a+b");            /* '+' is not a space in a path */
    expect_decoded("%25", "%");
    expect_decoded("%25%32%30", "%20");      /* decoded once only */
    expect_decoded("%C3%A9t%C3%A9", "\xc3\xa9t\xc3\xa9");
    expect_decoded("100%41", "100A");
}

static void test_decode_uses_len_only(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(pct_decode("abc%2", 3, &out), 0);
    assert_string_equal(out, "abc");
    free(out);
    /* an escape cut by len is malformed even though more text follows */
    assert_int_equal(pct_decode("ab%41", 4, &out), -1);
    assert_null(out);
}

static void expect_malformed(const char *in, size_t len)
{
    char *out = (char *)"sentinel";
    if (pct_decode(in, len, &out) != -1) {
        print_error("accepted \"%.*s\"\n", (int)len, in);
        fail();
    }
    assert_null(out);
}

static void test_decode_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "%", "%2", "a%", "a%4", "%zz", "%G0", "%0G", "%%41", "% 20",
        "%00", "a%00b", "%+1", "%-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_malformed(bad[i], strlen(bad[i]));
    expect_malformed("a\0b", 3); /* raw NUL */
}

static void expect_encoded(const char *in, const char *want)
{
    char *out = pct_encode(in);
    assert_non_null(out);
    assert_string_equal(out, want);
    char *back = NULL;
    assert_int_equal(pct_decode(out, strlen(out), &back), 0);
    assert_string_equal(back, in);
    free(out);
    free(back);
}

static void test_encode(void **state)
{
    (void)state;
    expect_encoded("", "");
    expect_encoded("SAE_B-1.x~", "SAE_B-1.x~");
    expect_encoded("SAE B", "SAE%20B");
    expect_encoded("a/b", "a%2Fb");
    expect_encoded("a+b&c=d?e#f%", "a%2Bb%26c%3Dd%3Fe%23f%25");
    expect_encoded("\xc3\xa9", "%C3%A9");
    expect_encoded("..", "..");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_uses_len_only),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
