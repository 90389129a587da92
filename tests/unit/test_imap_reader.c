/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_imap_reader.c - qumail's IMAP response reader without a server
 * (src/mail/imap_reader.c): what a hostile server may send (literals over
 * the limit, another message's body, endless lines, bad SEARCH results, a
 * connection that ends early) is refused or dropped; honest responses give
 * exactly our body and our UIDs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mail/imap_reader.h"

typedef struct stream {
    const char *p;
    size_t n;
} stream;

/* Three bytes per read: every line and literal crosses reads. */
static qm_err serve(void *ctx, uint8_t *dst, size_t room, size_t *got)
{
    stream *s = ctx;
    if (s->n == 0)
        return QM_E_TRANSPORT;
    size_t k = s->n < 3 ? s->n : 3;
    k = k < room ? k : room;
    memcpy(dst, s->p, k);
    s->p += k;
    s->n -= k;
    *got = k;
    return QM_OK;
}

static imap_reader rd;
static char detail[256];

/* The server's bytes read as the answer to "q1"; r as the command set it. */
static qm_err answer(const char *bytes, size_t n, imap_result *r, bool *refused)
{
    static stream s;
    s = (stream){ bytes, n };
    detail[0] = '\0';
    rd = (imap_reader){ .fill = serve, .ctx = &s, .shown = "imap://test:143",
                        .detail = detail, .cap = sizeof detail };
    return imap_read_responses(&rd, "q1", r, refused);
}

#define ANSWER(text, r, refused) answer(text, sizeof text - 1, r, refused)

static void release(imap_result *r)
{
    free(r->body);
    free(r->uids);
}

static void test_fetch_keeps_only_our_body(void **state)
{
    (void)state;
    imap_result r = { .want_uid = "42" };
    bool refused;
    assert_int_equal(ANSWER("* 2 FETCH (UID 41 BODY[] {5}\r\nother)\r\n"
                            "* 3 FETCH (UID 42 BODY[] {9}\r\nline\r\n}{1}\r\n FLAGS ())\r\n"
                            "q1 OK done\r\n", &r, &refused), QM_OK);
    assert_false(refused);
    assert_true(r.have_body);
    assert_int_equal(r.body_len, 9);
    assert_memory_equal(r.body, "line\r\n}{1", 9);
    release(&r);
}

static void test_prefix_over_its_limit(void **state)
{
    (void)state;
    imap_result r = { .want_uid = "42", .max_body = 4 };
    bool refused;
    assert_int_equal(ANSWER("* 3 FETCH (UID 42 BODY[]<0> {5}\r\nhello)\r\nq1 OK done\r\n",
                            &r, &refused), QM_E_TRANSPORT);
    assert_non_null(strstr(detail, "a literal of 5 bytes is beyond our limit"));
    assert_false(r.have_body);
    release(&r);
}

static void test_literal_over_the_limit(void **state)
{
    (void)state;
    imap_result r = { .want_uid = "42" };
    bool refused;
    assert_int_equal(ANSWER("* 3 FETCH (UID 42 BODY[] {999999999999}\r\n", &r, &refused),
                     QM_E_TRANSPORT);
    assert_non_null(strstr(detail, "beyond our limit"));
    release(&r);
}

static void test_endless_line(void **state)
{
    (void)state;
    size_t n = IMAP_LINE_MAX + 16;
    char *flood = malloc(n);
    assert_non_null(flood);
    memset(flood, 'A', n);
    bool refused;
    assert_int_equal(answer(flood, n, NULL, &refused), QM_E_TRANSPORT);
    assert_non_null(strstr(detail, "a response line is too long"));
    free(flood);
}

static void test_search(void **state)
{
    (void)state;
    imap_result r = { 0 };
    bool refused;
    assert_int_equal(ANSWER("* SEARCH 3 1 4294967295\r\n* SEARCH\r\nq1 OK\r\n", &r, &refused), QM_OK);
    assert_int_equal(r.n_uids, 3);
    assert_true(r.uids[0] == 3 && r.uids[1] == 1 && r.uids[2] == UINT32_MAX);
    release(&r);
    static const char *const bad[] = { "* SEARCH 0\r\nq1 OK\r\n", "* SEARCH 4294967296\r\nq1 OK\r\n",
                                       "* SEARCH 1,2\r\nq1 OK\r\n", "* SEARCH -1\r\nq1 OK\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        imap_result b = { 0 };
        assert_int_equal(answer(bad[i], strlen(bad[i]), &b, &refused), QM_E_TRANSPORT);
        assert_non_null(strstr(detail, "malformed SEARCH response"));
        release(&b);
    }
}

static void test_refusal_and_early_end(void **state)
{
    (void)state;
    bool refused;
    assert_int_equal(ANSWER("* BYE\r\nq1 NO [NONEXISTENT] no\x1b[2Jsuch mailbox\r\n", NULL, &refused), QM_OK);
    assert_true(refused);
    assert_non_null(strstr(detail, "IMAP imap://test:143: NO [NONEXISTENT]"));
    assert_null(strchr(detail, '\x1b'));
    /* a literal cut short by the end of the connection */
    imap_result r = { .want_uid = "42" };
    assert_int_equal(ANSWER("* 3 FETCH (UID 42 BODY[] {50}\r\nshort", &r, &refused), QM_E_TRANSPORT);
    assert_false(r.have_body);
    release(&r);
    /* "q10" is not the tag "q1" */
    assert_int_equal(ANSWER("q10 OK\r\n", NULL, &refused), QM_E_TRANSPORT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_keeps_only_our_body),
        cmocka_unit_test(test_prefix_over_its_limit),
        cmocka_unit_test(test_literal_over_the_limit),
        cmocka_unit_test(test_endless_line),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_refusal_and_early_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
