/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_block.c - the readers of the link simulator's bodies
 * (src/kme/link_block.c): hostile block headers and ID lists are refused
 * with a reason and return nothing; honest ones are read exactly.  The
 * QBER reports of issue 13 (alone and as a block trailer): hostile ones
 * (NaN-like, out of range, wrong types, unknown members, control bytes)
 * are refused; a body without a trailer still reads as before.
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

static const char good_report[] =
    "{\"state\":\"aborted\",\"qber\":0.28,\"bound\":0.0625,\"model\":\"decoy-bb84\","
    "\"distance_km\":25,\"time_scale\":1000,\"secret_bits\":0,\"reason\":\"QBER above the bound\"}";

static void test_report_honest(void **state)
{
    (void)state;
    link_report r;
    char why[200];
    assert_int_equal(link_parse_report(good_report, strlen(good_report), &r, why, sizeof why), 0);
    assert_int_equal(r.state, LINK_REPORT_ABORTED);
    assert_true(r.has_qber && r.qber == 0.28 && r.has_bound && r.bound == 0.0625);
    assert_true(r.model == 1 && r.has_distance && r.distance_km == 25 && r.time_scale == 1000);
    assert_string_equal(r.reason, "QBER above the bound");
    static const char fixed[] = "{\"state\":\"distilling\",\"qber\":null,\"bound\":null,\"model\":\"fixed\","
                                "\"distance_km\":null,\"time_scale\":1,\"secret_bits\":524288}";
    assert_int_equal(link_parse_report(fixed, strlen(fixed), &r, why, sizeof why), 0);
    assert_true(!r.has_qber && !r.has_bound && !r.has_distance && r.model == 0);
    assert_int_equal(r.secret_bits, 524288);
    static const char nokey[] = "{\"state\":\"no key at this distance\",\"qber\":0.5,\"bound\":0.07,"
                                "\"model\":\"decoy-bb84\",\"distance_km\":300,\"time_scale\":1,\"secret_bits\":0}";
    assert_int_equal(link_parse_report(nokey, strlen(nokey), &r, why, sizeof why), 0);
    assert_string_equal(link_report_state_name(r.state), "no key at this distance");
}

static void test_report_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"state\":\"distilling\"}",                               /* members missing */
        "{\"state\":\"pwned\",\"qber\":0.1,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":-0.1,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":1.5,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":1e999,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":NaN,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":\"0.1\",\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":null,\"bound\":0.1,\"model\":\"decoy-bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"bb84\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":0,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":-1}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":1.5}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":99999999999}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0,\"alarm\":false}",
        "{\"state\":\"aborted\",\"state\":\"distilling\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":0.1,\"bound\":0.1,\"model\":\"fixed\",\"distance_km\":1,\"time_scale\":1,\"secret_bits\":0,\"reason\":\"a\\nb\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        link_report r;
        char why[200] = "";
        if (link_parse_report(bad[i], strlen(bad[i]), &r, why, sizeof why) != -1)
            fail_msg("case %zu accepted: %s", i, bad[i]);
        assert_true(why[0] != '\0' && !strchr(why, '\n'));
    }
    char big[LINK_REPORT_MAX + 64];
    memset(big, ' ', sizeof big);
    memcpy(big, good_report, strlen(good_report));
    link_report r;
    char why[200];
    assert_int_equal(link_parse_report(big, sizeof big, &r, why, sizeof why), -1);
}

static void test_block_trailer(void **state)
{
    (void)state;
    uint8_t b[LINK_HEADER + 64 + 512];
    size_t n = make_block(b, 7, 1, 64, 64);
    uint64_t id;
    int owner;
    uint32_t blen;
    const char *rep = (const char *)1;
    size_t rlen = 99;
    char why[160];
    /* the old body: no trailer */
    assert_int_equal(link_parse_block_ex((const char *)b, n, &id, &owner, &blen, &rep, &rlen, why, sizeof why), 0);
    assert_true(rep == NULL && rlen == 0 && blen == 64 && owner == 1 && id == 7);
    /* with a trailer */
    memcpy(b + n, LINK_TRAILER_MAGIC, 2);
    memcpy(b + n + 2, good_report, strlen(good_report));
    size_t m = n + 2 + strlen(good_report);
    assert_int_equal(link_parse_block_ex((const char *)b, m, &id, &owner, &blen, &rep, &rlen, why, sizeof why), 0);
    assert_true(rep == (const char *)b + n + 2 && rlen == strlen(good_report) && blen == 64);
    /* bytes after the block that are no trailer */
    b[n] = 'X';
    assert_int_equal(link_parse_block_ex((const char *)b, m, &id, &owner, &blen, &rep, &rlen, why, sizeof why), -1);
    assert_non_null(strstr(why, "do not start a report"));
    assert_true(rep == NULL && rlen == 0);
    /* one stray byte, a trailer on a bad header */
    assert_int_equal(link_parse_block_ex((const char *)b, n + 1, &id, &owner, &blen, &rep, &rlen, why, sizeof why), -1);
    b[n] = 'R';
    b[8] = 2;
    assert_int_equal(link_parse_block_ex((const char *)b, m, &id, &owner, &blen, &rep, &rlen, why, sizeof why), -1);
    assert_true(rep == NULL);
    /* the old reader still refuses a trailer (an old KME's 400) */
    b[8] = 0;
    assert_int_equal(read_block(b, m, why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_honest),
        cmocka_unit_test(test_block_hostile),
        cmocka_unit_test(test_ids_honest),
        cmocka_unit_test(test_ids_hostile),
        cmocka_unit_test(test_report_honest),
        cmocka_unit_test(test_report_hostile),
        cmocka_unit_test(test_block_trailer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
