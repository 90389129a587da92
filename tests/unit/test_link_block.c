/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_block.c - the readers of the link simulator's bodies
 * (src/kme/link_block.c): hostile block headers and ID lists are refused
 * with a reason and return nothing; honest ones are read exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kme/link_block.h"

/* A block body: id, owner, declared length, then `follow` bytes. */
static size_t make_block(uint8_t *b, uint64_t id, uint8_t owner, uint32_t declared, size_t follow)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(id >> (56 - 8 * i));
    b[8] = owner;
    for (int i = 0; i < 4; i++)
        b[9 + i] = (uint8_t)(declared >> (24 - 8 * i));
    memset(b + LINK_HEADER, 0xa5, follow);
    return LINK_HEADER + follow;
}

static int read_block(const uint8_t *b, size_t len, char *why)
{
    uint64_t id;
    int owner;
    uint32_t blen;
    return link_parse_block((const char *)b, len, &id, &owner, &blen, why, 160);
}

static void test_block_honest(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t len = make_block(b, 0x0102030405060708u, 1, 20, 20);
    uint64_t id;
    int owner;
    uint32_t blen;
    char why[160];
    assert_int_equal(link_parse_block((const char *)b, len, &id, &owner, &blen, why, sizeof why), 0);
    assert_true(id == 0x0102030405060708u);
    assert_int_equal(owner, 1);
    assert_int_equal(blen, 20);
}

static void test_block_hostile(void **state)
{
    (void)state;
    static uint8_t b[LINK_HEADER + 64];
    char why[160];
    for (size_t short_len = 0; short_len < LINK_HEADER; short_len++) {
        make_block(b, 1, 0, 1, 0);
        assert_int_equal(read_block(b, short_len, why), -1);
        assert_non_null(strstr(why, "shorter than the 13-byte block header"));
    }
    assert_int_equal(read_block(b, make_block(b, 1, 2, 4, 4), why), -1);
    assert_non_null(strstr(why, "owner byte is 2"));
    assert_int_equal(read_block(b, make_block(b, 1, 0, 0, 0), why), -1);
    assert_non_null(strstr(why, "outside 1.."));
    assert_int_equal(read_block(b, make_block(b, 1, 0, LINK_MAX_BLOCK + 1, 8), why), -1);
    assert_non_null(strstr(why, "outside 1.."));
    assert_int_equal(read_block(b, make_block(b, 1, 0, 0xffffffffu, 8), why), -1);
    /* the declared length must be exactly what follows, in both directions */
    assert_int_equal(read_block(b, make_block(b, 1, 0, 9, 8), why), -1);
    assert_non_null(strstr(why, "says 9 bytes but 8 follow"));
    assert_int_equal(read_block(b, make_block(b, 1, 0, 7, 8), why), -1);
    assert_non_null(strstr(why, "says 7 bytes but 8 follow"));
}

static int read_ids(const char *body, uint64_t **ids, size_t *n, char *why)
{
    *ids = (uint64_t *)1;
    *n = 99;
    return link_parse_ids(body, strlen(body), ids, n, why, 200);
}

static void test_ids_honest(void **state)
{
    (void)state;
    uint64_t *ids;
    size_t n;
    char why[200];
    assert_int_equal(read_ids("{\"block_IDs\":[\"00000000000000ff\",\"FFFFFFFFFFFFFFFF\"]}", &ids, &n, why), 0);
    assert_int_equal(n, 2);
    assert_true(ids[0] == 0xff && ids[1] == UINT64_MAX);
    free(ids);
    assert_int_equal(read_ids("{\"block_IDs\":[]}", &ids, &n, why), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
}

static void test_ids_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "[]", "null", "{\"block_IDs\":\"00000000000000ff\"}",
        "{\"block_IDs\":[],\"extra\":1}", "{\"block_IDs\":[],\"block_IDs\":[]}",
        "{\"block_IDs\":[\"00000000000000ff\",1]}", "{\"block_IDs\":[\"0ff\"]}",
        "{\"block_IDs\":[\"00000000000000fg\"]}", "{\"block_IDs\":[\"000000000000000ff\"]}",
        "{\"block_IDs\":[\"00000000000000f\\u0000\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t *ids;
        size_t n;
        char why[200] = "";
        /* a bad body is LINK_PARSE_BAD (400), never the kind of our own
         * lack of memory (503) */
        assert_int_equal(read_ids(bad[i], &ids, &n, why), LINK_PARSE_BAD);
        assert_null(ids);
        assert_int_equal(n, 0);
        assert_true(why[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_honest),
        cmocka_unit_test(test_block_hostile),
        cmocka_unit_test(test_ids_honest),
        cmocka_unit_test(test_ids_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
