/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_http_framing.c - the listener's rule of one framing per request
 * body (src/kme/http_framing.c): hostile header sets are refused, the two
 * honest framings pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "kme/http_framing.h"

/* The verdict on headers given as "Name: value" strings. */
static const char *verdict(const char *const *headers, size_t n)
{
    http_framing f = { 0 };
    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(headers[i], ':');
        assert_non_null(colon);
        const char *v = colon + 1;
        http_framing_add(&f, headers[i], (size_t)(colon - headers[i]), v, strlen(v));
    }
    return http_framing_refusal(&f);
}

#define VERDICT(...) verdict((const char *const[]){ __VA_ARGS__ }, \
                             sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

static void test_single_framings_pass(void **state)
{
    (void)state;
    assert_null(VERDICT("Host: x"));
    assert_null(VERDICT("Content-Length: 12", "Host: x"));
    assert_null(VERDICT("Transfer-Encoding: chunked"));
    assert_null(VERDICT("transfer-encoding:  CHUNKED "));
    assert_null(VERDICT("content-length: 0"));
}

static void test_repeated_content_length(void **state)
{
    (void)state;
    assert_string_equal(VERDICT("Content-Length: 12", "Content-Length: 12"),
                        "request has more than one Content-Length header");
    assert_string_equal(VERDICT("content-length: 12", "CONTENT-LENGTH: 40"),
                        "request has more than one Content-Length header");
}

static void test_length_and_coding(void **state)
{
    (void)state;
    const char *want = "request has both Content-Length and Transfer-Encoding";
    assert_string_equal(VERDICT("Content-Length: 12", "Transfer-Encoding: chunked"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: chunked", "Content-Length: 12"), want);
}

static void test_unknown_codings(void **state)
{
    (void)state;
    const char *want = "unsupported Transfer-Encoding: only a single 'chunked' is accepted";
    assert_string_equal(VERDICT("Transfer-Encoding: gzip, chunked"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: chunked, identity"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: identity"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: xchunked"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: chunked;q=1"), want);
    assert_string_equal(VERDICT("Transfer-Encoding:"), want);
    assert_string_equal(VERDICT("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), want);
}

/* Names that only resemble the framing headers are other headers. */
static void test_lookalike_names(void **state)
{
    (void)state;
    assert_null(VERDICT("Content-Length2: 1", "Content-Length: 3"));
    assert_null(VERDICT("X-Transfer-Encoding: gzip"));
    assert_null(VERDICT("Content-Lengt: 1", "Content-Length: 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_framings_pass),
        cmocka_unit_test(test_repeated_content_length),
        cmocka_unit_test(test_length_and_coding),
        cmocka_unit_test(test_unknown_codings),
        cmocka_unit_test(test_lookalike_names),
    };
    return cmocka_run_group_tests_name("http framing", tests, NULL, NULL);
}
