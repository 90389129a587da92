/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_http_answer.c - the HTTPS client's answer reader without a socket
 * (src/common/http_answer.c): heads a hostile server may send (ambiguous
 * framing, folding, odd status lines, overlong values) are refused with a
 * precise message; honest ones are read exactly; chunk-size lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/http_answer.h"

static http_answer_code parse(const char *head, http_answer_head *f, const char **why)
{
    return http_answer_parse_head(head, strlen(head), f, why);
}

/* The message a refused head gets. */
static const char *refusal(const char *head)
{
    http_answer_head f;
    const char *why = NULL;
    assert_int_not_equal(parse(head, &f, &why), HTTP_ANSWER_OK);
    assert_non_null(why);
    return why;
}

static void test_head_end(void **state)
{
    (void)state;
    static const char crlf[] = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
    static const char lf[] = "HTTP/1.1 200 OK\nA: b\n\nbody";
    assert_int_equal(http_answer_head_end(crlf, strlen(crlf), 0), strlen(crlf) - 4);
    assert_int_equal(http_answer_head_end(lf, strlen(lf), 0), strlen(lf) - 4);
    /* an empty trailer section is only a blank line */
    assert_int_equal(http_answer_head_end("\r\nX", 3, 0), 2);
    assert_int_equal(http_answer_head_end("\nX", 2, 0), 1);
    /* incomplete: no blank line yet, or a CR without its LF */
    assert_int_equal(http_answer_head_end(crlf, 20, 0), 0);
    assert_int_equal(http_answer_head_end(crlf, strlen(crlf) - 5, 0), 0);
    assert_int_equal(http_answer_head_end("\r", 1, 0), 0);
    assert_int_equal(http_answer_head_end("", 0, 0), 0);
}

/* A head arriving byte by byte, resumed as httpsc.c resumes: the same end
 * as in one piece, and a line end at the resume point is no blank line. */
static void test_head_end_resumed(void **state)
{
    (void)state;
    static const char head[] = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\nbody";
    size_t scanned = 0, found = 0;
    for (size_t n = 1; n <= strlen(head) && !found; n++) {
        found = http_answer_head_end(head, n, scanned > 2 ? scanned - 2 : 0);
        scanned = n;
    }
    assert_int_equal(found, strlen(head) - 4);
}

static void test_honest_heads(void **state)
{
    (void)state;
    http_answer_head f;
    const char *why;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                           "Content-Type: application/json; charset=utf-8\r\n"
                           "Connection: Keep-Alive , close\r\n\r\n", &f, &why), HTTP_ANSWER_OK);
    assert_int_equal(f.status, 200);
    assert_int_equal(f.minor, 1);
    assert_true(f.has_len && f.len == 12 && !f.chunked);
    assert_true(f.close && f.keep_alive);
    assert_true(f.has_content_type);
    assert_string_equal(f.content_type, "application/json; charset=utf-8");
    assert_int_equal(parse("HTTP/1.0 503\n\n", &f, &why), HTTP_ANSWER_OK);
    assert_true(f.status == 503 && f.minor == 0 && !f.has_len && !f.has_content_type);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\ntransfer-encoding:CHUNKED\r\n\r\n", &f, &why),
                     HTTP_ANSWER_OK);
    assert_true(f.chunked);
    assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\n", &f, &why), HTTP_ANSWER_OK);
    assert_int_equal(f.status, 100);
}

static void test_not_http(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "\r\n", "HTTP/1.1 20", "HTTP/1.2 200 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "SSH-2.0-OpenSSH\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        http_answer_head f;
        const char *why;
        assert_int_equal(parse(bad[i], &f, &why), HTTP_ANSWER_NOT_HTTP);
        assert_string_equal(why, "the answer is not HTTP/1.x");
    }
}

static void test_ambiguous_framing(void **state)
{
    (void)state;
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
                        "answer has two Content-Length fields");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
                        "answer has both Content-Length and Transfer-Encoding");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
                        "answer has both Content-Length and Transfer-Encoding");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
                        "answer has a Transfer-Encoding other than chunked");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
                        "answer has a Transfer-Encoding other than chunked");
    static const char *const lengths[] = { "", "-1", "+5", "5 5", "0x10", "5,5",
                                           "12345678901234567890" };
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        char head[128];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", lengths[i]);
        assert_string_equal(refusal(head), "answer has an invalid Content-Length");
    }
}

static void test_malformed_fields(void **state)
{
    (void)state;
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nA: b\r\n continued\r\n\r\n"),
                        "answer header uses line folding");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"),
                        "malformed header line in the answer");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\n: 5\r\n\r\n"),
                        "malformed header line in the answer");
    assert_string_equal(refusal("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
                        "malformed header line in the answer");
}

static void test_long_content_type(void **state)
{
    (void)state;
    char head[600];
    char value[HTTP_ANSWER_CT_MAX + 1];
    memset(value, 'a', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    memcpy(value, "application/json;", 17); /* cut short it would pass */
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", value);
    http_answer_head f;
    const char *why;
    assert_int_equal(parse(head, &f, &why), HTTP_ANSWER_OK);
    assert_string_equal(f.content_type, "(too long)");
}

static void test_chunk_size(void **state)
{
    (void)state;
    uint64_t size = 0;
    assert_true(http_answer_chunk_size("1a", 2, &size) && size == 0x1a);
    assert_true(http_answer_chunk_size("FF ; ext=1", 10, &size) && size == 0xff);
    assert_true(http_answer_chunk_size("0", 1, &size) && size == 0);
    assert_true(http_answer_chunk_size("fffffffffffffff", 15, &size) && size == 0xfffffffffffffffu);
    static const char *const bad[] = { "", ";", " 1", "0x10", "1 2", "g", "-1", "1000000000000000" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(http_answer_chunk_size(bad[i], strlen(bad[i]), &size));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_end),
        cmocka_unit_test(test_head_end_resumed),
        cmocka_unit_test(test_honest_heads),
        cmocka_unit_test(test_not_http),
        cmocka_unit_test(test_ambiguous_framing),
        cmocka_unit_test(test_malformed_fields),
        cmocka_unit_test(test_long_content_type),
        cmocka_unit_test(test_chunk_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
