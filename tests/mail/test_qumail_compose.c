/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_compose.c - a new inner message from typed fields
 * (src/mail/compose.c): what GMime reads back (subject, recipients), and
 * typed text that tries to add headers or parts: CR/LF in the subject, a
 * content type and file names with line ends, quotes and paths, a body
 * line that looks like our boundary, long lines, bad addresses.
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
#include "mail/compose.h"
#include "mail/mime.h"

static const char *const to[] = { "bob@example.org" };
static const char *const cc[] = { "carol@example.org", "dave@example.org" };

static char *build(const qm_compose *c, size_t *len)
{
    uint8_t *out = NULL;
    assert_int_equal(qm_compose_build(c, &out, len), QM_OK);
    return (char *)out;
}

static void test_round_trip(void **state)
{
    (void)state;
    static const uint8_t bin[] = { 0, 1, 2, 0xff, '\r', '\n', '-', '-' };
    qm_attachment att[] = {
        { "r\xC3\xA9sum\xC3\xA9 \"final\".pdf", "application/pdf", bin, sizeof bin },
        { NULL, "text/html\r\nX-Injected: yes", bin, 3 },
    };
    const char *subject = "Gr\xC3\xBC\xC3\x9F" "e aus Wien, \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
                          "and a rather long tail that goes past seventy characters";
    qm_compose c = { .from = "alice@example.org", .to = to, .n_to = 1, .cc = cc, .n_cc = 2,
                     .subject = subject, .text = "Hi Bob,\r\n--=_qumail_0\r\nbye\r\n",
                     .text_len = 28, .attachments = att, .n_attachments = 2,
                     .in_reply_to = "abc@example.org" };
    size_t len = 0;
    char *m = build(&c, &len);
    qm_inner_summary s;
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)m, len, &s), QM_OK);
    assert_string_equal(s.subject, subject);
    assert_string_equal(s.from, "alice@example.org");
    assert_int_equal(s.n_to, 3);
    assert_string_equal(s.to[0], "bob@example.org");
    assert_string_equal(s.to[2], "dave@example.org");
    qm_inner_summary_free(&s);
    assert_null(strstr(m, "X-Injected"));
    assert_non_null(strstr(m, "Content-Type: application/octet-stream; name=\"attachment-2\""));
    assert_non_null(strstr(m, "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"));
    assert_non_null(strstr(m, "In-Reply-To: <abc@example.org>\n"));
    assert_non_null(strstr(m, "Content-Transfer-Encoding: 8bit\n\nHi Bob,\n--=_qumail_0\nbye\n"));
    assert_null(strchr(m, '\r'));
    secret_wipe(m, len);
    free(m);
}

static void test_hostile_fields(void **state)
{
    (void)state;
    size_t len = 0;
    qm_compose c = { .from = "alice@example.org", .to = to, .n_to = 1,
                     .subject = "hi\r\nBcc: eve@evil.example\r\n\r\nbody", .text = "x", .text_len = 1 };
    char *m = build(&c, &len);
    assert_null(strstr(m, "\nBcc:"));
    qm_inner_summary s;
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)m, len, &s), QM_OK);
    assert_string_equal(s.subject, "hi  Bcc: eve@evil.example    body");
    qm_inner_summary_free(&s);
    free(m);
    /* a line past 998 bytes, a NUL: the body goes as base64 */
    char *long_line = malloc(2000);
    memset(long_line, 'a', 1999);
    long_line[1999] = '\0';
    c.subject = "long";
    c.text = long_line;
    c.text_len = 1999;
    m = build(&c, &len);
    assert_non_null(strstr(m, "Content-Transfer-Encoding: base64"));
    free(m);
    free(long_line);
    /* bad addresses, a subject too long, a reference with spaces */
    const char *const bad_to[] = { "bob@example.org\r\nBcc: eve@evil.example" };
    uint8_t *out = NULL;
    qm_compose b = c;
    b.to = bad_to;
    assert_int_equal(qm_compose_build(&b, &out, &len), QM_E_USAGE);
    b = c;
    b.from = "alice";
    assert_int_equal(qm_compose_build(&b, &out, &len), QM_E_USAGE);
    b = c;
    b.in_reply_to = "a b@c";
    assert_int_equal(qm_compose_build(&b, &out, &len), QM_E_USAGE);
    b = c;
    b.n_to = 0;
    assert_int_equal(qm_compose_build(&b, &out, &len), QM_E_USAGE);
    char big[QM_COMPOSE_MAX_SUBJECT + 2];
    memset(big, 's', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    b = c;
    b.subject = big;
    assert_int_equal(qm_compose_build(&b, &out, &len), QM_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_hostile_fields),
    };
    if (secret_process_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
