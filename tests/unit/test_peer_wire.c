/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_peer_wire.c - the peer client's readers of KME-to-KME answers
 * (src/kme/peer_wire.c): what a batch answer and a state answer mean for
 * each reservation, and that an answer of another shape, or about another
 * reservation, is never taken for "applied".  (The listener's strict
 * readers are tested against the real daemon in tests/peer and fuzzed.)
 * Also the peer's rendering of the KME's one error carrier (kme_err).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/secret.h"
#include "kme/peer_wire.h"

#define ID1 "01234567-89ab-4def-8123-456789abcdef"
#define ID2 "fedcba98-7654-4210-8edc-ba9876543210"

static const uint8_t id1[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4d, 0xef,
                                0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
static const uint8_t id2[16] = {0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x42, 0x10,
                                0x8e, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

static void test_state_answer(void **state)
{
    (void)state;
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID1 "\",\"status\":\"applied\"}", id1), 1);
    assert_int_equal(pw_state_applied("{\"status\":\"voided\",\"reservation_ID\":\"" ID1 "\"}", id1), 0);
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID1 "\",\"status\":\"unknown\",\"x\":[1]}", id1), 0);
    /* about another reservation, no ID, an unknown word, a number, not JSON */
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID2 "\",\"status\":\"applied\"}", id1), -1);
    assert_int_equal(pw_state_applied("{\"status\":\"applied\"}", id1), -1);
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID1 "\",\"status\":\"done\"}", id1), -1);
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID1 "\",\"status\":200}", id1), -1);
    assert_int_equal(pw_state_applied("{\"reservation_ID\":\"" ID1 "\",\"status\":\"applied\"", id1), -1);
    assert_int_equal(pw_state_applied(NULL, id1), -1);
}

static void test_batch_answer(void **state)
{
    (void)state;
    uint8_t ids[2][16];
    memcpy(ids[0], id1, 16);
    memcpy(ids[1], id2, 16);
    peer_answer res[2];
    pw_batch_results("{\"results\":[{\"reservation_ID\":\"" ID1 "\",\"status\":\"applied\"},"
                     "{\"reservation_ID\":\"" ID2 "\",\"type\":\"segments-unusable\",\"status\":409,"
                     "\"message\":\"used\\nbefore\"}]}", 2, (const uint8_t (*)[16])ids, res);
    assert_int_equal(res[0].http, 200);
    assert_int_equal(res[1].http, 409);
    assert_string_equal(res[1].type, "segments-unusable");
    assert_non_null(strstr(res[1].reason, "HTTP 409: used"));

    /* results in another order: neither is taken for the other */
    pw_batch_results("{\"results\":[{\"reservation_ID\":\"" ID2 "\",\"status\":\"applied\"},"
                     "{\"reservation_ID\":\"" ID1 "\",\"status\":\"applied\"}]}", 2, (const uint8_t (*)[16])ids, res);
    assert_int_equal(res[0].http, 0);
    assert_int_equal(res[1].http, 0);
    /* one result too few, a status out of range, no results member */
    static const char *const bad[] = {
        "{\"results\":[{\"reservation_ID\":\"" ID1 "\",\"status\":\"applied\"}]}",
        "{\"results\":[{\"reservation_ID\":\"" ID1 "\",\"status\":700},"
        "{\"reservation_ID\":\"" ID2 "\",\"status\":200}]}",
        "{\"answers\":[]}",
        "[]",
    };
    for (size_t i = 0; i < 4; i++) {
        pw_batch_results(bad[i], 2, (const uint8_t (*)[16])ids, res);
        if (i != 1)
            assert_int_equal(res[0].http, 0);
        assert_int_equal(res[1].http, 0);
        assert_true(res[1].reason[0] != '\0');
    }
}

static void test_error_answer(void **state)
{
    (void)state;
    peer_answer a = {.http = 403};
    const char *t = "{\"type\":\"no-link\",\"status\":403,\"message\":\"KME X shares no QKD link\"}";
    pw_answer_reason(t, strlen(t), &a);
    assert_string_equal(a.type, "no-link");
    assert_string_equal(a.reason, "HTTP 403: KME X shares no QKD link");
    assert_string_equal(a.message, "KME X shares no QKD link"); /* alone, for an SAE */
    peer_answer b = {.http = 502};
    pw_answer_reason("<html>", 6, &b);
    assert_string_equal(b.type, "");
    assert_string_equal(b.reason, "HTTP 502: no message");
    assert_string_equal(b.message, "");
    /* a per-slave limit in a batch: its message is what the master's SAE reads */
    peer_answer r[1];
    pw_batch_results("{\"results\":[{\"reservation_ID\":\"" ID1 "\",\"type\":\"slave-limit\","
                     "\"status\":429,\"message\":\"per-SAE limit sae_unfetched_bits (8 bits) reached "
                     "for slave SAE S; retry after 1 s\"}]}", 1, (const uint8_t (*)[16])id1, r);
    assert_int_equal(r[0].http, 429);
    assert_string_equal(r[0].type, "slave-limit");
    assert_string_equal(r[0].message, "per-SAE limit sae_unfetched_bits (8 bits) reached for slave "
                                      "SAE S; retry after 1 s");
}

/* The one error carrier (kme_error.h) rendered as a peer problem: a
 * refusal set with a problem type keeps it; one set the SAE API's way
 * (no type) still answers valid JSON with a type, never a null. */
static void expect_problem(const kme_err *e, const char *want)
{
    kme_reply out;
    memset(&out, 0, sizeof out);
    pw_reply_problem(&out, e);
    assert_int_equal(out.http, e->http);
    assert_int_equal(out.body.len, strlen(want));
    assert_memory_equal(out.body.data, want, strlen(want));
    secret_free(&out.body);
}

static void test_problem_from_kme_err(void **state)
{
    (void)state;
    kme_err e;
    assert_int_equal(kme_err_problem(&e, 409, "key-conflict", "key %d", 7), -1);
    assert_string_equal(e.type, "key-conflict");
    assert_null(e.details);
    expect_problem(&e, "{\"type\":\"key-conflict\",\"status\":409,\"message\":\"key 7\"}");
    kme_err_set(&e, 503, "store \"down\"");
    assert_null(e.type);
    expect_problem(&e, "{\"type\":\"internal\",\"status\":503,\"message\":\"store \\\"down\\\"\"}");
    kme_err_clear(&e);
    assert_int_equal(e.http, 0);
}

/* A void's segments: an empty array is a void that burns nothing here (a
 * relay voiding a reservation its downstream applied); a missing or
 * malformed one is still refused. */
static void test_void_reader(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"reservation_ID\":\"" ID1 "\",\"segments\":{}}",
        "{\"reservation_ID\":\"" ID1 "\",\"segments\":\"\"}",
        "{\"reservation_ID\":\"" ID1 "\"}",
        "{\"reservation_ID\":\"" ID1 "\",\"segments\":[[]]}",
    };
    const char *empty = "{\"reservation_ID\":\"" ID1 "\",\"segments\":[]}";
    const char *one = "{\"reservation_ID\":\"" ID1 "\",\"segments\":[[\"00000000000000ff\",8,16]]}";
    pw_doc d;
    kme_err e;
    uint8_t id[16];
    ks_segment *segs = (ks_segment *)&id; /* must be reset */
    size_t n = 99;
    assert_int_equal(pw_doc_open(&d, empty, strlen(empty), &e), 0);
    assert_int_equal(pw_read_void(&d, id, &segs, &n, &e), 0);
    assert_memory_equal(id, id1, 16);
    assert_null(segs);
    assert_int_equal(n, 0);
    pw_doc_close(&d);
    assert_int_equal(pw_doc_open(&d, one, strlen(one), &e), 0);
    assert_int_equal(pw_read_void(&d, id, &segs, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(segs[0].block_id, 255);
    assert_int_equal(segs[0].offset, 8);
    assert_int_equal(segs[0].length, 16);
    free(segs);
    pw_doc_close(&d);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pw_doc_open(&d, bad[i], strlen(bad[i]), &e) != 0)
            continue; /* refused by the parser already */
        assert_int_equal(pw_read_void(&d, id, &segs, &n, &e), -1);
        assert_int_equal(e.http, 400);
        assert_null(segs);
        kme_err_clear(&e);
        pw_doc_close(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_answer),
        cmocka_unit_test(test_batch_answer),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_problem_from_kme_err),
        cmocka_unit_test(test_void_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
