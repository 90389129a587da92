/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_termsafe.c - text made safe for a terminal (src/common/termsafe.c):
 * each class of unsafe input (C0, DEL, C1 in UTF-8, bidi overrides,
 * malformed UTF-8) is replaced, everything else is kept byte for byte,
 * and a truncated copy never cuts a character in half.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/termsafe.h"

static void expect_copy(const char *in, size_t len, termsafe_mode mode, const char *want)
{
    char out[256];
    size_t n = termsafe_copy(out, sizeof out, in, len, mode);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
    /* the stream writer gives the same bytes */
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    assert_non_null(f);
    assert_int_equal(termsafe_write(f, in, len, mode), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(blen, strlen(want));
    assert_memory_equal(buf, want, blen);
    free(buf);
}

#define LINE(in, want) expect_copy(in, sizeof(in) - 1, TERMSAFE_LINE, want)
#define TEXT(in, want) expect_copy(in, sizeof(in) - 1, TERMSAFE_TEXT, want)

static void test_plain_kept(void **state)
{
    (void)state;
    LINE("Lunch on Friday <alice@example.org> ~!", "Lunch on Friday <alice@example.org> ~!");
    LINE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0");
    LINE("\xef\xbf\xbd \xf4\x8f\xbf\xbf", "\xef\xbf\xbd \xf4\x8f\xbf\xbf"); /* U+FFFD, U+10FFFF */
    LINE("", "");
}

static void test_escapes_replaced(void **state)
{
    (void)state;
    /* OSC title, CSI erase line and cursor up, the attack of issue 11 */
    LINE("\x1b]0;pwned\x07Hi", "?]0;pwned?Hi");
    LINE("\x1b[2K\x1b[1A[NOT PROTECTED]", "?[2K?[1A[NOT PROTECTED]");
    LINE("a\x7f" "b\x00" "c", "a?b?c");
    LINE("tab\there\r\nnl", "tab?here??nl");
    /* C1 in UTF-8: U+009B is CSI on its own, U+0085 NEL; U+00A0 is kept */
    LINE("\xc2\x9b" "31m\xc2\x85\xc2\x80\xc2\x9f\xc2\xa0", "?31m???\xc2\xa0");
    /* C1 as single bytes are not UTF-8 at all */
    LINE("\x9b" "2J\x84", "?2J?");
}

static void test_bidi_replaced(void **state)
{
    (void)state;
    LINE("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad\xe2\x80\xae", "?????");
    LINE("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", "????");
    /* neighbours are ordinary characters */
    LINE("\xe2\x80\xa9\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa",
         "\xe2\x80\xa9\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa");
}

static void test_malformed_utf8(void **state)
{
    (void)state;
    LINE("\xc0\xaf", "??");                 /* overlong '/' */
    LINE("\xe0\x80\xaf", "???");            /* overlong, 3 bytes */
    LINE("\xed\xa0\x80", "???");            /* surrogate U+D800 */
    LINE("\xf4\x90\x80\x80", "????");       /* past U+10FFFF */
    LINE("\xf5\x80\x80\x80", "????");
    LINE("\xe2\x82", "??");                 /* truncated at the end */
    LINE("\xe2\x82x", "??x");               /* truncated inside */
    LINE("\x80\xbf\xfe\xff", "????");       /* lone continuation, never-valid */
    /* ISO-8859-1 text: each high byte replaced, never combined */
    LINE("caf\xe9 cr\xe8me", "caf? cr?me");
}

static void test_text_mode(void **state)
{
    (void)state;
    TEXT("Subject: a\r\n\r\nline\tone\nline two\n", "Subject: a\r\n\r\nline\tone\nline two\n");
    /* a lone CR would let a later text overwrite the line */
    TEXT("visible\rhidden\r", "visible?hidden?");
    TEXT("\x1b]0;t\x07\x1b[31mred\x0c\x08", "?]0;t??[31mred??");
}

static void test_truncation(void **state)
{
    (void)state;
    char out[6];
    /* "ab" + euro (3 bytes) fits in 5 + NUL; one more byte does not */
    assert_int_equal(termsafe_copy(out, sizeof out, "ab\xe2\x82\xac" "c", 6, TERMSAFE_LINE), 5);
    assert_string_equal(out, "ab\xe2\x82\xac");
    /* never half a character */
    assert_int_equal(termsafe_copy(out, 5, "ab\xe2\x82\xac", 5, TERMSAFE_LINE), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(termsafe_copy(out, 1, "abc", 3, TERMSAFE_LINE), 0);
    assert_string_equal(out, "");
    assert_int_equal(termsafe_copy(out, 0, "abc", 3, TERMSAFE_LINE), 0);
}

/* Every single byte and every 2-byte sequence: what comes out is either
 * the input or '?', and never a control or a C1. */
static void test_exhaustive_pairs(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            unsigned char in[2] = { (unsigned char)a, (unsigned char)b };
            char out[8];
            size_t n = termsafe_copy(out, sizeof out, in, 2, TERMSAFE_LINE);
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)out[i];
                assert_true(c >= 0x20 && c != 0x7f);
            }
            assert_false(n >= 2 && (unsigned char)out[0] == 0xc2 && (unsigned char)out[1] < 0xa0);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_kept),
        cmocka_unit_test(test_escapes_replaced),
        cmocka_unit_test(test_bidi_replaced),
        cmocka_unit_test(test_malformed_utf8),
        cmocka_unit_test(test_text_mode),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_exhaustive_pairs),
    };
    return cmocka_run_group_tests_name("termsafe", tests, NULL, NULL);
}
