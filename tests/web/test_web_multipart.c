/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_web_multipart.c - the Compose form's multipart/form-data reader
 * (src/web/multipart.c), offline (cmocka): a browser's body in pieces of
 * every size, then hostile bodies: no or a doubled boundary, a boundary
 * inside the data, a truncated body, 1,000 tiny parts, huge headers,
 * NUL and unknown names, file names with paths and CR/LF, duplicates,
 * the size bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "web/multipart.h"

static const char *const names[] = { "csrf", "to", "subject", "message", "attachments", NULL };
#define B "----WebKitFormBoundaryAbC123"

static char *field(const char *name, const char *value)
{
    char *s = NULL;
    assert_true(asprintf(&s, "--" B "\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                         name, value) > 0);
    return s;
}

/* Feed body in pieces of step bytes; the result of finish. */
static web_mp_err run(const char *body, size_t len, size_t step, web_multipart *m)
{
    web_mp_init(m, B, names, "attachments");
    for (size_t i = 0; i < len; i += step)
        web_mp_feed(m, body + i, len - i < step ? len - i : step);
    return web_mp_finish(m);
}

static web_mp_err run_str(const char *body, web_multipart *m)
{
    return run(body, strlen(body), strlen(body) + 1, m);
}

static const char browser_body[] =
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"subject\"\r\n\r\nGr\xC3\xBC\xC3\x9F" "e\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"message\"\r\n\r\nline 1\r\nx--" B " is data\r\n\r\n\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"attachments\"; filename=\"C:\\Users\\a\\r\xC3\xA9sum\xC3\xA9.pdf\"\r\n"
    "Content-Type: application/pdf\r\n\r\n\x00\x01\r\n\r-" B "\xff\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"attachments\"; filename=\"\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"attachments\"; filename=\"/etc/passwd\"\r\n\r\nroot\r\n"
    "--" B "--\r\nepilogue";

static void check_browser_body(web_multipart *m)
{
    assert_int_equal(m->n, 5);   /* the empty file part is dropped */
    assert_string_equal((char *)web_mp_field(m, "csrf")->data, "abc");
    assert_string_equal((char *)web_mp_field(m, "subject")->data, "Gr\xC3\xBC\xC3\x9F" "e");
    const web_mp_part *msg = web_mp_field(m, "message");
    assert_int_equal(msg->len, strlen("line 1\r\nx--" B " is data\r\n\r\n"));
    assert_memory_equal(msg->data, "line 1\r\nx--" B " is data\r\n\r\n", msg->len);
    assert_null(web_mp_field(m, "attachments"));
    assert_string_equal(m->parts[3].filename, "r\xC3\xA9sum\xC3\xA9.pdf");
    assert_string_equal(m->parts[3].content_type, "application/pdf");
    assert_int_equal(m->parts[3].len, 7 + strlen(B));
    assert_memory_equal(m->parts[3].data, "\x00\x01\r\n\r-" B "\xff", 7 + strlen(B));
    assert_string_equal(m->parts[4].filename, "passwd");
    assert_string_equal((char *)m->parts[4].data, "root");
}

static void test_browser_body_in_pieces(void **state)
{
    (void)state;
    web_multipart *m = malloc(sizeof *m);
    size_t len = sizeof browser_body - 1;
    for (size_t step = 1; step <= len; step += step < 80 ? 1 : 97) {
        assert_int_equal(run(browser_body, len, step, m), WEB_MP_OK);
        check_browser_body(m);
        web_mp_free(m);
    }
    free(m);
}

static void test_boundary_header(void **state)
{
    char b[WEB_MP_MAX_BOUNDARY + 1];
    (void)state;
    assert_int_equal(web_mp_boundary("multipart/form-data; boundary=" B, b, sizeof b), WEB_MP_OK);
    assert_string_equal(b, B);
    assert_int_equal(web_mp_boundary("multipart/form-data; boundary=\"a b:c\"", b, sizeof b),
                     WEB_MP_OK);
    assert_string_equal(b, "a b:c");
    const char *bad[] = {
        "multipart/form-data", "multipart/form-data;", "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"", "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=a; boundary=b", "multipart/mixed; boundary=a",
        "application/x-www-form-urlencoded", "multipart/form-data; boundary=a<b",
        "multipart/form-data; boundary=\"unterminated", "multipart/form-databoundary=a",
        "multipart/form-data; boundary=\"ends with space \"",
        "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(web_mp_boundary(bad[i], b, sizeof b), WEB_MP_BAD_BOUNDARY);
    assert_int_equal(web_mp_boundary(NULL, b, sizeof b), WEB_MP_BAD_BOUNDARY);
}

static void test_hostile_structure(void **state)
{
    web_multipart *m = malloc(sizeof *m);
    (void)state;
    /* no delimiter at all, only the opening one, no close */
    assert_int_equal(run_str("just text", m), WEB_MP_TRUNCATED);
    web_mp_free(m);
    assert_int_equal(run_str("", m), WEB_MP_TRUNCATED);
    web_mp_free(m);
    char *f = field("csrf", "abc");
    f[strlen(f) - 4] = '\0';   /* cut inside the value */
    assert_int_equal(run_str(f, m), WEB_MP_TRUNCATED);
    web_mp_free(m);
    free(f);
    /* a delimiter followed by anything but CRLF or "--" */
    assert_int_equal(run_str("--" B "X\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n"
                             "a\r\n--" B "--", m), WEB_MP_MALFORMED);
    web_mp_free(m);
    assert_int_equal(run_str("--" B "\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n"
                             "a\r\n--" B "-x", m), WEB_MP_MALFORMED);
    web_mp_free(m);
    /* a part without Content-Disposition, or not form-data, or a header line without ':' */
    const char *bad_heads[] = {
        "Content-Type: text/plain\r\n", "Content-Disposition: attachment; name=\"to\"\r\n",
        "Content-Disposition form-data; name=\"to\"\r\n", "",
        "Content-Disposition: form-data; name=\"to\"\r\nContent-Disposition: form-data; name=\"to\"\r\n",
        "Content-Disposition: form-data; name=\"to\r\n", " folded: x\r\n",
        "Content-Disposition: form-data; name=\"to\"\nX: bare LF\r\n",
    };
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++) {
        char *s = NULL;
        assert_true(asprintf(&s, "--" B "\r\n%s\r\nvalue\r\n--" B "--\r\n", bad_heads[i]) > 0);
        web_mp_err e = run_str(s, m);
        assert_true(e == WEB_MP_MALFORMED || e == WEB_MP_BAD_NAME);
        web_mp_free(m);
        free(s);
    }
    free(m);
}

static void test_hostile_names(void **state)
{
    web_multipart *m = malloc(sizeof *m);
    (void)state;
    struct { const char *disp; web_mp_err want; } cases[] = {
        { "form-data; name=\"evil\"", WEB_MP_BAD_NAME },
        { "form-data; name=\"\"", WEB_MP_BAD_NAME },
        { "form-data", WEB_MP_BAD_NAME },
        { "form-data; name=\"subject\"; filename=\"x.txt\"", WEB_MP_BAD_NAME },
        { "form-data; name=\"attachments\"", WEB_MP_BAD_NAME },
        { "form-data; name=\"attachments\"; filename=\"a\x01.txt\"", WEB_MP_BAD_FILENAME },
        { "form-data; name=\"attachments\"; filename=\"a\"; filename=\"b\"", WEB_MP_BAD_FILENAME },
        { "form-data; name=\"to\"; name=\"subject\"", WEB_MP_MALFORMED },
        { "form-data; name=\"csrfcsrfcsrfcsrfcsrfcsrfcsrfcsrfcsrf\"", WEB_MP_MALFORMED },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = NULL;
        assert_true(asprintf(&s, "--" B "\r\nContent-Disposition: %s\r\n\r\nv\r\n--" B "--",
                             cases[i].disp) > 0);
        assert_int_equal(run_str(s, m), cases[i].want);
        web_mp_free(m);
        free(s);
    }
    /* a NUL in a name (and anywhere in a header section) */
    static const char nul[] = "--" B "\r\nContent-Disposition: form-data; name=\"to\0x\"\r\n\r\n"
                              "v\r\n--" B "--";
    assert_int_equal(run(nul, sizeof nul - 1, 5, m), WEB_MP_MALFORMED);
    web_mp_free(m);
    /* CR LF inside a file name breaks the header line: refused */
    assert_int_equal(run_str("--" B "\r\nContent-Disposition: form-data; name=\"attachments\"; "
                             "filename=\"a\r\nContent-Type: text/html\r\n\r\nx\r\n--" B "--", m) ==
                     WEB_MP_OK, 0);
    web_mp_free(m);
    /* paths: only the last component, never "..": ".." itself becomes "" */
    assert_int_equal(run_str("--" B "\r\nContent-Disposition: form-data; name=\"attachments\"; "
                             "filename=\"../../..\"\r\n\r\nx\r\n--" B "--", m), WEB_MP_OK);
    assert_string_equal(m->parts[0].filename, "");
    web_mp_free(m);
    /* the same field twice; attachments twice is fine */
    char *a = field("to", "a"), *b = field("to", "b"), *s = NULL;
    assert_true(asprintf(&s, "%s%s--" B "--", a, b) > 0);
    assert_int_equal(run_str(s, m), WEB_MP_DUPLICATE);
    web_mp_free(m);
    free(a), free(b), free(s);
    free(m);
}

static void test_bounds(void **state)
{
    web_multipart *m = malloc(sizeof *m);
    (void)state;
    /* 1,000 tiny parts */
    size_t cap = 1000 * 120 + 64, len = 0;
    char *body = malloc(cap);
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(body + len, cap - len, "--" B "\r\nContent-Disposition: "
                                "form-data; name=\"attachments\"; filename=\"f\"\r\n\r\nx\r\n");
    len += (size_t)snprintf(body + len, cap - len, "--" B "--");
    assert_int_equal(run(body, len, 4096, m), WEB_MP_TOO_MANY_PARTS);
    assert_int_equal(m->n, WEB_MP_MAX_PARTS);
    web_mp_free(m);
    free(body);
    /* a huge header section */
    body = malloc(20000);
    len = (size_t)snprintf(body, 20000, "--" B "\r\nContent-Disposition: form-data; name=\"to\"\r\nX: ");
    memset(body + len, 'a', 10000);
    len += 10000;
    len += (size_t)snprintf(body + len, 20000 - len, "\r\n\r\nv\r\n--" B "--");
    assert_int_equal(run(body, len, 1000, m), WEB_MP_TOO_LARGE);
    web_mp_free(m);
    free(body);
    /* a field past WEB_MP_MAX_FIELD; a file may be larger */
    size_t big = WEB_MP_MAX_FIELD + 10;
    body = malloc(big + 400);
    for (int file = 0; file < 2; file++) {
        len = (size_t)snprintf(body, 400, "--" B "\r\nContent-Disposition: form-data; %s\r\n\r\n",
                               file ? "name=\"attachments\"; filename=\"big\"" : "name=\"message\"");
        memset(body + len, 'm', big);
        len += big;
        len += (size_t)snprintf(body + len, 400, "\r\n--" B "--");
        assert_int_equal(run(body, len, 65536, m), file ? WEB_MP_OK : WEB_MP_TOO_LARGE);
        web_mp_free(m);
    }
    free(body);
    /* the whole body past WEB_MP_MAX_BODY: refused however it is cut, nothing kept past it */
    web_mp_init(m, B, names, "attachments");
    char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    web_mp_feed(m, "--" B "\r\nContent-Disposition: form-data; name=\"attachments\"; "
                   "filename=\"z\"\r\n\r\n", strlen("--" B "\r\nContent-Disposition: form-data; "
                   "name=\"attachments\"; filename=\"z\"\r\n\r\n"));
    for (size_t sent = 0; sent <= WEB_MP_MAX_BODY; sent += sizeof chunk)
        web_mp_feed(m, chunk, sizeof chunk);
    assert_int_equal(web_mp_finish(m), WEB_MP_TOO_LARGE);
    assert_true(m->parts[0].len <= WEB_MP_MAX_BODY);
    web_mp_free(m);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browser_body_in_pieces), cmocka_unit_test(test_boundary_header),
        cmocka_unit_test(test_hostile_structure),      cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_bounds),
    };
    if (secret_process_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
