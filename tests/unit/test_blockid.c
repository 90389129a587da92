/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_blockid.c - the text form of QKD link block IDs: 16 hex digits
 * exactly, either case read, lower case written, round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/blockid.h"

static void test_round_trip(void **state)
{
    (void)state;
    const uint64_t ids[] = { 0, 1, 0x0123456789abcdefULL, UINT64_MAX };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char s[BLOCK_ID_STR_LEN + 1];
        uint64_t back = 42;
        block_id_format(ids[i], s);
        assert_int_equal(strlen(s), 16);
        assert_int_equal(block_id_parse(s, strlen(s), &back), 0);
        assert_true(back == ids[i]);
    }
    char s[BLOCK_ID_STR_LEN + 1];
    block_id_format(0xABCDEF0123456789ULL, s);
    assert_string_equal(s, "abcdef0123456789");
}

static void test_either_case(void **state)
{
    (void)state;
    uint64_t a, b;
    assert_int_equal(block_id_parse("00000000DEADBEEF", 16, &a), 0);
    assert_int_equal(block_id_parse("00000000deadbeef", 16, &b), 0);
    assert_true(a == 0xdeadbeefULL && a == b);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "0", "000000000000000", "00000000000000000", "000000000000000g",
        " 000000000000000", "0x00000000000000", "-000000000000001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(block_id_parse(bad[i], strlen(bad[i]), &v), -1);
        assert_true(v == 7); /* untouched on failure */
    }
    uint64_t v;
    assert_int_equal(block_id_parse(NULL, 16, &v), -1);
    /* a NUL inside the 16 characters is not a digit */
    assert_int_equal(block_id_parse("00000000\0" "0000000", 16, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_either_case),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
