/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_uuid.c - key IDs: random v4 generation, time-ordered v7 generation, strict 8-4-4-4-12 parsing in
 * either case and of any version, lower-case formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/uuid.h"

static void test_generate_sets_version_and_variant(void **state)
{
    (void)state;
    for (int i = 0; i < 64; i++) {
        uint8_t id[16];
        memset(id, 0xff, sizeof id);
        uuid_generate_v4(id);
        assert_int_equal(id[6] >> 4, 4);
        assert_int_equal(id[8] >> 6, 2);
        memset(id, 0x00, sizeof id);
        uuid_generate_v4(id);
        assert_int_equal(id[6] >> 4, 4);
        assert_int_equal(id[8] >> 6, 2);
    }
}

/* v7: version and variant, the milliseconds in the first 48 bits (so IDs
 * of later milliseconds sort after earlier ones, bytewise), random rest. */
static void test_generate_v7(void **state)
{
    (void)state;
    const uint64_t ms = UINT64_C(0x0123456789ab);
    uint8_t a[16], b[16], c[16];
    uuid_generate_v7(a, ms);
    uuid_generate_v7(b, ms);
    uuid_generate_v7(c, ms + 1);
    static const uint8_t stamp[6] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab };
    assert_memory_equal(a, stamp, 6);
    assert_int_equal(a[6] >> 4, 7);
    assert_int_equal(a[8] >> 6, 2);
    assert_memory_not_equal(a + 6, b + 6, 10);
    assert_true(memcmp(a, c, 16) < 0 && memcmp(b, c, 16) < 0);
    char text[UUID_STR_LEN + 1];
    uint8_t back[16];
    uuid_format(c, text);
    assert_int_equal(uuid_parse(text, UUID_STR_LEN, back), 0);
    assert_memory_equal(back, c, 16);
}

static void test_generate_differs(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    uuid_generate_v4(a);
    uuid_generate_v4(b);
    assert_memory_not_equal(a, b, 16);
}

static void test_format_lower_case(void **state)
{
    (void)state;
    const uint8_t id[16] = { 0xbc, 0x49, 0x04, 0x19, 0x7d, 0x60, 0x48, 0x7f,
                             0xad, 0xc1, 0x4d, 0xdc, 0xc1, 0x77, 0xc1, 0x39 };
    char text[UUID_STR_LEN + 1];
    memset(text, 'X', sizeof text);
    uuid_format(id, text);
    assert_string_equal(text, "bc490419-7d60-487f-adc1-4ddcc177c139");
}

static void test_parse_round_trip(void **state)
{
    (void)state;
    uint8_t id[16], back[16];
    char text[UUID_STR_LEN + 1];
    uuid_generate_v4(id);
    uuid_format(id, text);
    assert_int_equal(strlen(text), UUID_STR_LEN);
    assert_int_equal(uuid_parse(text, strlen(text), back), 0);
    assert_memory_equal(id, back, 16);
}

static void test_parse_either_case_and_any_version(void **state)
{
    (void)state;
    uint8_t lower[16], upper[16], v1[16];
    char text[UUID_STR_LEN + 1];
    assert_int_equal(uuid_parse("550e8400-e29b-41d4-a716-446655440000", 36, lower), 0);
    assert_int_equal(uuid_parse("550E8400-E29B-41D4-A716-446655440000", 36, upper), 0);
    assert_memory_equal(lower, upper, 16);
    assert_int_equal(lower[0], 0x55);
    assert_int_equal(lower[15], 0x00);
    /* version 1 and the nil UUID are UUIDs too */
    assert_int_equal(uuid_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8", 36, v1), 0);
    uuid_format(v1, text);
    assert_string_equal(text, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert_int_equal(uuid_parse("00000000-0000-0000-0000-000000000000", 36, v1), 0);
}

static void test_parse_needs_no_terminator(void **state)
{
    (void)state;
    uint8_t id[16];
    const char *text = "550e8400-e29b-41d4-a716-446655440000trailing";
    assert_int_equal(uuid_parse(text, 36, id), 0);
    assert_int_equal(uuid_parse(text, strlen(text), id), -1);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "non-uuid",
        "550e8400-e29b-41d4-a716-44665544000",     /* 35 */
        "550e8400-e29b-41d4-a716-4466554400000",   /* 37 */
        "550e8400e29b-41d4-a716-4466554400000",    /* hyphen missing */
        "550e840-0e29b-41d4-a716-446655440000",    /* hyphen misplaced */
        "550e8400-e29b-41d4-a716_446655440000",    /* wrong separator */
        "550g8400-e29b-41d4-a716-446655440000",    /* not hex */
        "{50e8400-e29b-41d4-a716-44665544000}",    /* braces */
        "550e8400-e29b-41d4-a716-44665544000 ",    /* trailing space */
        " 50e8400-e29b-41d4-a716-446655440000",    /* leading space */
        "550e8400-e29b-41d4-a716-4466+5440000",    /* sign */
        "550e8400-e29b-41d4-a716-446655440000+550e8400-e29b-41d4-a716-446655440000",
    };
    uint8_t id[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(id, 0x5a, sizeof id);
        if (uuid_parse(bad[i], strlen(bad[i]), id) != -1) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
        assert_int_equal(id[0], 0x5a); /* untouched */
    }
    assert_int_equal(uuid_parse(NULL, 36, id), -1);
    assert_int_equal(uuid_parse("550e8400-e29b-41d4-a716-44665544" "\0" "000", 36, id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_sets_version_and_variant),
        cmocka_unit_test(test_generate_differs),
        cmocka_unit_test(test_generate_v7),
        cmocka_unit_test(test_format_lower_case),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_parse_either_case_and_any_version),
        cmocka_unit_test(test_parse_needs_no_terminator),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
