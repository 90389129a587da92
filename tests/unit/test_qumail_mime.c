/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_mime.c - the outer QuMail message and the inner summary
 * (src/mail/mime.c) against docs/qumail-format.md §1.
 *
 * Outer messages for the rejection cases are written here from the format
 * page (spec_message below, with a fixed boundary), not by the builder, so
 * the parser is checked against the document; each case changes one thing.
 * The builder's output is checked line by line: header set and order, the
 * constant Subject, fresh Message-IDs and boundaries, 76-character base64
 * lines, and a round trip through the parser for 0 B, 1 B and 1 MiB.
 * The bounds of header sections (lines and bytes, exactly at and one past
 * them) and the inbox listing read from the header section and the
 * envelope header only (levels, Level 4 subject, plain mail, hostile
 * headers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/base64.h"
#include "mail/envelope.h"
#include "mail/mime.h"

/* ---- helpers ------------------------------------------------------------ */

/* s with the first occurrence of a replaced by b (a must occur). */
static char *replace(const char *s, const char *a, const char *b)
{
    const char *p = strstr(s, a);
    assert_non_null(p);
    size_t n = strlen(s) - strlen(a) + strlen(b);
    char *r = malloc(n + 1);
    assert_non_null(r);
    size_t pre = (size_t)(p - s);
    memcpy(r, s, pre);
    strcpy(r + pre, b);
    strcat(r, p + strlen(a));
    return r;
}

static char *to_crlf(const char *s, size_t len, size_t *out_len)
{
    char *r = malloc(2 * len + 1);
    assert_non_null(r);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n')
            r[j++] = '\r';
        r[j++] = s[i];
    }
    r[j] = '\0';
    *out_len = j;
    return r;
}

/* "QUMAIL" + 7 bytes, base64 = "UVVNQUlMAQECAwQFBg==" */
static const uint8_t small_env[] = { 'Q', 'U', 'M', 'A', 'I', 'L', 1, 1, 2, 3, 4, 5, 6 };
#define SMALL_B64 "UVVNQUlMAQECAwQFBg=="

static const char spec_headers[] =
    "From: alice@example.org\n"
    "To: bob@example.org,\n carol@example.org\n"
    "Cc: dave@example.org\n"
    "Date: Wed, 25 Nov 2026 23:00:00 +0000\n"
    "Message-ID: <0123abcd@example.org>\n"
    "Subject: QuMail encrypted message\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/encrypted; protocol=\"application/x-qumail-envelope\";\n"
    " boundary=\"BOUND\"\n"
    "\n";
static const char spec_control[] =
    "--BOUND\n"
    "Content-Type: application/x-qumail-envelope\n"
    "\n"
    "Version: 1\n"
    "\n";
static const char spec_data[] =
    "--BOUND\n"
    "Content-Type: application/octet-stream; name=\"qumail.bin\"\n"
    "Content-Disposition: inline; filename=\"qumail.bin\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    SMALL_B64 "\n";
static const char spec_end[] = "--BOUND--\n";

/* The §1 example around small_env, written from the format page. */
static char *spec_message(void)
{
    size_t n = strlen(spec_headers) + strlen(spec_control) + strlen(spec_data)
               + strlen(spec_end);
    char *m = malloc(n + 1);
    assert_non_null(m);
    strcpy(m, spec_headers);
    strcat(m, spec_control);
    strcat(m, spec_data);
    strcat(m, spec_end);
    return m;
}

static qm_err parse_str(const char *m)
{
    uint8_t *env = (uint8_t *)"x";
    size_t env_len = 99;
    qm_outer_info info;
    qm_err err = qm_mime_parse((const uint8_t *)m, strlen(m), &env, &env_len, &info);
    if (err == QM_OK) {
        assert_int_equal(env_len, sizeof small_env);
        assert_memory_equal(env, small_env, sizeof small_env);
        free(env);
        qm_outer_info_free(&info);
    } else {
        /* nothing is handed out on failure */
        assert_null(env);
        assert_int_equal(env_len, 0);
        assert_null(info.from);
        assert_null(info.to);
        assert_int_equal(info.n_to, 0);
    }
    return err;
}

/* Parse the spec message with a replaced by b; expect err. */
static void expect_mutation(const char *a, const char *b, qm_err err)
{
    char *m = spec_message();
    char *r = replace(m, a, b);
    qm_err got = parse_str(r);
    if (got != err)
        fail_msg("replacing [%s] by [%s]: got %d, want %d", a, b, got, err);
    free(r);
    free(m);
}

/* ---- the spec message ----------------------------------------------------- */

static void test_spec_message_parses(void **state)
{
    (void)state;
    char *m = spec_message();
    uint8_t *env;
    size_t env_len;
    qm_outer_info info;
    assert_int_equal(qm_mime_parse((const uint8_t *)m, strlen(m), &env, &env_len, &info), QM_OK);
    assert_int_equal(env_len, sizeof small_env);
    assert_memory_equal(env, small_env, sizeof small_env);
    assert_string_equal(info.from, "alice@example.org");
    assert_int_equal(info.n_to, 3);
    assert_string_equal(info.to[0], "bob@example.org");
    assert_string_equal(info.to[1], "carol@example.org");
    assert_string_equal(info.to[2], "dave@example.org");
    assert_string_equal(info.date, "Wed, 25 Nov 2026 23:00:00 +0000");
    assert_string_equal(info.message_id, "0123abcd@example.org");
    free(env);
    qm_outer_info_free(&info);
    qm_outer_info_free(&info);   /* twice is safe */
    /* info may be NULL */
    assert_int_equal(qm_mime_parse((const uint8_t *)m, strlen(m), &env, &env_len, NULL), QM_OK);
    free(env);
    free(m);
}

static void test_crlf_accepted(void **state)
{
    (void)state;
    char *m = spec_message();
    size_t n;
    char *c = to_crlf(m, strlen(m), &n);
    assert_int_equal(parse_str(c), QM_OK);
    free(c);
    free(m);
}

/* What mail transport adds on the way is no reason to reject. */
static void test_transport_additions_accepted(void **state)
{
    (void)state;
    char *m = spec_message();
    char *r = replace(m, "From:", "Return-Path: <alice@example.org>\n"
                      "Received: from a.example.org by b.example.org; Wed, 25 Nov 2026\n"
                      "Delivered-To: bob@example.org\n"
                      "X-Spam-Status: No\n"
                      "From:");
    assert_int_equal(parse_str(r), QM_OK);
    char *r2 = replace(r, "--BOUND\n", "This is an encrypted message.\n--BOUND\n");
    assert_int_equal(parse_str(r2), QM_OK);
    free(r2);
    free(r);
    /* no To at all (e.g. Bcc delivery): accepted, no addresses */
    char *r3 = replace(m, "To: bob@example.org,\n carol@example.org\nCc: dave@example.org\n", "");
    uint8_t *env;
    size_t env_len;
    qm_outer_info info;
    assert_int_equal(qm_mime_parse((uint8_t *)r3, strlen(r3), &env, &env_len, &info), QM_OK);
    assert_int_equal(info.n_to, 0);
    free(env);
    qm_outer_info_free(&info);
    free(r3);
    free(m);
}

/* Variants the format page allows. */
static void test_tolerated_variants(void **state)
{
    (void)state;
    expect_mutation("Version: 1\n", "\n  Version:1  \n\n", QM_OK);
    expect_mutation("Version: 1\n", "version: 1", QM_OK);
    expect_mutation("Content-Type: application/x-qumail-envelope\n",
                    "Content-Type: application/x-qumail-envelope\n"
                    "Content-Transfer-Encoding: 7bit\n", QM_OK);
    expect_mutation("multipart/encrypted; protocol=\"application/x-qumail-envelope\"",
                    "Multipart/Encrypted; PROTOCOL=\"Application/X-QuMail-Envelope\"", QM_OK);
    expect_mutation("Content-Transfer-Encoding: base64\n",
                    "Content-Transfer-Encoding: BASE64\n", QM_OK);
    expect_mutation("MIME-Version: 1.0\n",
                    "MIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\n", QM_OK);
    expect_mutation("Subject: QuMail encrypted message\n", "", QM_OK);
    expect_mutation(spec_end, "--BOUND--\nepilogue\n", QM_OK);
}

/* ---- rejections ------------------------------------------------------------ */

static void test_reject_top_level(void **state)
{
    (void)state;
    expect_mutation("multipart/encrypted", "multipart/mixed", QM_E_MIME);
    expect_mutation("multipart/encrypted", "text/plain", QM_E_MIME);
    expect_mutation("protocol=\"application/x-qumail-envelope\"",
                    "protocol=\"application/pgp-encrypted\"", QM_E_MIME);
    expect_mutation("protocol=\"application/x-qumail-envelope\";\n", "", QM_E_MIME);
    expect_mutation("MIME-Version: 1.0\n", "", QM_E_MIME);
    expect_mutation("MIME-Version: 1.0\n", "MIME-Version: 2.0\n", QM_E_MIME);
    expect_mutation("From: alice@example.org\n", "", QM_E_MIME);
    expect_mutation("From: alice@example.org\n", "From: alice@example.org, eve@example.org\n",
                    QM_E_MIME);
    expect_mutation("From: alice@example.org\n",
                    "From: alice@example.org\nFrom: eve@example.org\n", QM_E_MIME);
    expect_mutation("MIME-Version: 1.0\n",
                    "MIME-Version: 1.0\nContent-Type: text/plain\n", QM_E_MIME);
    expect_mutation("MIME-Version: 1.0\n",
                    "MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n", QM_E_MIME);
    expect_mutation("Date: Wed", "Date: Thu, 26 Nov 2026 00:00:00 +0000\nDate: Wed", QM_E_MIME);
}

static void test_reject_parts(void **state)
{
    (void)state;
    /* missing control part, missing data part, a third part */
    expect_mutation(spec_control, "", QM_E_MIME);
    char *m = spec_message();
    char *no_data = replace(m, spec_data, "");
    assert_int_equal(parse_str(no_data), QM_E_MIME);
    char *extra = replace(m, spec_end, "--BOUND\nContent-Type: text/plain\n\nhello\n--BOUND--\n");
    assert_int_equal(parse_str(extra), QM_E_MIME);
    /* parts in the wrong order */
    size_t n = strlen(spec_headers) + strlen(spec_control) + strlen(spec_data) + strlen(spec_end);
    char *swapped = malloc(n + 1);
    assert_non_null(swapped);
    strcpy(swapped, spec_headers);
    strcat(swapped, spec_data);
    strcat(swapped, spec_control);
    strcat(swapped, spec_end);
    assert_int_equal(parse_str(swapped), QM_E_MIME);
    free(swapped);
    free(extra);
    free(no_data);
    free(m);
    /* no closing boundary: truncated */
    expect_mutation(spec_end, "", QM_E_MIME);
    /* a nested multipart instead of the data part */
    expect_mutation("Content-Type: application/octet-stream; name=\"qumail.bin\"\n",
                    "Content-Type: multipart/mixed; boundary=\"INNER\"\n", QM_E_MIME);
    /* an attached message instead of the data part */
    expect_mutation("Content-Type: application/octet-stream; name=\"qumail.bin\"\n",
                    "Content-Type: message/rfc822\n", QM_E_MIME);
}

static void test_reject_part_types(void **state)
{
    (void)state;
    expect_mutation("Content-Type: application/x-qumail-envelope\n",
                    "Content-Type: text/plain\n", QM_E_MIME);
    expect_mutation("Content-Type: application/x-qumail-envelope\n",
                    "Content-Type: application/pgp-encrypted\n", QM_E_MIME);
    expect_mutation("Content-Type: application/x-qumail-envelope\n", "", QM_E_MIME);
    expect_mutation("Content-Type: application/octet-stream; name=\"qumail.bin\"\n",
                    "Content-Type: text/plain\n", QM_E_MIME);
    expect_mutation("Content-Type: application/octet-stream; name=\"qumail.bin\"\n", "",
                    QM_E_MIME);
    expect_mutation("Content-Transfer-Encoding: base64\n", "", QM_E_MIME);
    expect_mutation("Content-Transfer-Encoding: base64\n",
                    "Content-Transfer-Encoding: quoted-printable\n", QM_E_MIME);
    expect_mutation("Content-Transfer-Encoding: base64\n",
                    "Content-Transfer-Encoding: base64\nContent-Transfer-Encoding: 7bit\n",
                    QM_E_MIME);
    expect_mutation("Content-Type: application/x-qumail-envelope\n",
                    "Content-Type: application/x-qumail-envelope\n"
                    "Content-Transfer-Encoding: base64\n", QM_E_MIME);
}

static void test_reject_bad_base64(void **state)
{
    (void)state;
    expect_mutation(SMALL_B64, "UVVNQUlMAQECAwQFBg=", QM_E_MIME);      /* short padding */
    expect_mutation(SMALL_B64, "UVVNQUlMAQECAwQFBg", QM_E_MIME);       /* no padding */
    expect_mutation(SMALL_B64, "UVVNQUlMAQECAwQFBh==", QM_E_MIME);     /* non-zero bits */
    expect_mutation(SMALL_B64, "UVVNQUlM*QECAwQFBg==", QM_E_MIME);     /* alphabet */
    expect_mutation(SMALL_B64, "UVVNQUlM AQECAwQFBg==", QM_E_MIME);    /* space */
    expect_mutation(SMALL_B64, "UVVNQUlM\tAQECAwQFBg==", QM_E_MIME);   /* tab */
    expect_mutation(SMALL_B64, "UVVN==QUlMAQECAwQFBg==", QM_E_MIME);   /* padding inside */
    expect_mutation(SMALL_B64, SMALL_B64 "AAAA", QM_E_MIME);           /* data after padding */
    expect_mutation(SMALL_B64, "UVVNQUlMAQECAwQFBg==\n=", QM_E_MIME);
    expect_mutation(SMALL_B64, "UVVNQUlMAQECAwQFBg-_", QM_E_MIME);     /* URL alphabet */
    /* line breaks between quartets are fine; a line over 998 characters is not */
    expect_mutation(SMALL_B64, "UVVN\nQUlM\nAQECAwQFBg==", QM_OK);
    char longline[1100];
    memset(longline, 'A', 1000);
    strcpy(longline + 1000, "AAAA");
    expect_mutation(SMALL_B64, longline, QM_E_MIME);
}

/* Text in lines of 76 characters (no final newline). */
static char *wrap76(const char *t)
{
    size_t n = strlen(t), j = 0;
    char *r = malloc(n + n / 76 + 1);
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && i % 76 == 0)
            r[j++] = '\n';
        r[j++] = t[i];
    }
    r[j] = '\0';
    return r;
}

/* The data part is decoded in chunks of 64 KiB: padding just before a
 * chunk boundary must not end the text early; a long line is fine up to
 * 998 characters; CR only before LF. */
static void test_base64_long_and_chunked(void **state)
{
    (void)state;
    enum { N = 49150 };   /* 65536 characters, ending in "==" */
    uint8_t *bin = malloc(N);
    char *b64 = malloc(b64_encoded_len(N) + 100);
    assert_non_null(bin);
    assert_non_null(b64);
    randombytes_buf(bin, N);
    b64_encode(bin, N, b64);
    assert_int_equal(strlen(b64), 65536);
    assert_string_equal(b64 + 65534, "==");
    strcat(b64, "AAAAAAAAAAAAAAAAAAAA");
    char *lines = wrap76(b64);
    expect_mutation(SMALL_B64, lines, QM_E_MIME);
    free(lines);

    /* one line of 996 characters decodes (747 bytes) */
    b64_encode(bin, 747, b64);
    assert_int_equal(strlen(b64), 996);
    char *m = spec_message();
    char *r = replace(m, SMALL_B64, b64);
    uint8_t *env;
    size_t env_len;
    assert_int_equal(qm_mime_parse((uint8_t *)r, strlen(r), &env, &env_len, NULL), QM_OK);
    assert_int_equal(env_len, 747);
    assert_memory_equal(env, bin, 747);
    free(env);
    free(r);
    free(m);

    expect_mutation(SMALL_B64, "UVVNQUlM\rAQECAwQFBg==", QM_E_MIME);     /* lone CR */
    expect_mutation(SMALL_B64, "UVVNQUlM\r\r\nAQECAwQFBg==", QM_E_MIME);
    expect_mutation(SMALL_B64, "UVVNQUlM\r\nAQECAwQFBg==", QM_OK);
    free(b64);
    free(bin);
}

static void test_reject_control_version(void **state)
{
    (void)state;
    expect_mutation("Version: 1\n", "Version: 2\n", QM_E_VERSION);
    expect_mutation("Version: 1\n", "Version: 10\n", QM_E_VERSION);
    expect_mutation("Version: 1\n", "Version: 0\n", QM_E_VERSION);
    expect_mutation("Version: 1\n", "Version: 1.0\n", QM_E_MIME);
    expect_mutation("Version: 1\n", "Version: x\n", QM_E_MIME);
    expect_mutation("Version: 1\n", "Version:\n", QM_E_MIME);
    expect_mutation("Version: 1\n", "", QM_E_MIME);
    expect_mutation("Version: 1\n", "Version: 1\nExtra: 2\n", QM_E_MIME);
    expect_mutation("Version: 1\n", "Verzion: 1\n", QM_E_MIME);
    expect_mutation("Version: 1\n", "Version: 99999999999999999999\n", QM_E_MIME);
}

static void test_reject_garbage(void **state)
{
    (void)state;
    uint8_t *env;
    size_t env_len;
    const char *garbage[] = { "", "hello", "\n\n\n", "From: a@b\n\nbody\n",
                              "Content-Type: multipart/encrypted\n\n" };
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++)
        assert_int_equal(qm_mime_parse((const uint8_t *)garbage[i], strlen(garbage[i]),
                                       &env, &env_len, NULL), QM_E_MIME);
    /* the size limit is checked before a byte is read */
    assert_int_equal(qm_mime_parse((const uint8_t *)"x", QM_MIME_MAX_MESSAGE + 1,
                                   &env, &env_len, NULL), QM_E_MIME);
    assert_int_equal(qm_mime_parse(NULL, 1, &env, &env_len, NULL), QM_E_USAGE);
    assert_int_equal(qm_mime_parse((const uint8_t *)"x", 1, NULL, &env_len, NULL), QM_E_USAGE);
}

/* Every proper prefix that cuts into the structure fails cleanly. */
static void test_truncations(void **state)
{
    (void)state;
    char *m = spec_message();
    size_t len = strlen(m), end = len - strlen(spec_end);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, m, n);
        uint8_t *env;
        size_t env_len;
        qm_err err = qm_mime_parse(cut, n, &env, &env_len, NULL);
        if (n <= end && err != QM_E_MIME)
            fail_msg("prefix of %zu bytes: %d", n, err);
        if (err == QM_OK)
            free(env);
        free(cut);
    }
    free(m);
}

/* ---- the builder ------------------------------------------------------------ */

static const char *const rcpts[] = { "bob@example.org", "carol@example.net" };

static void build(const uint8_t *env, size_t env_len, const char *date, char **out, size_t *n)
{
    uint8_t *o;
    assert_int_equal(qm_mime_build("alice@example.org", rcpts, 2, date, env, env_len, &o, n),
                     QM_OK);
    *out = malloc(*n + 1);
    assert_non_null(*out);
    memcpy(*out, o, *n);
    (*out)[*n] = '\0';
    assert_int_equal(strlen(*out), *n);   /* text, no NUL */
    free(o);
}

static void round_trip(size_t env_len)
{
    uint8_t *env = malloc(env_len ? env_len : 1);
    assert_non_null(env);
    randombytes_buf(env, env_len);
    char *m;
    size_t n;
    build(env, env_len, "Wed, 25 Nov 2026 23:00:00 +0000", &m, &n);
    uint8_t *got;
    size_t got_len;
    qm_outer_info info;
    assert_int_equal(qm_mime_parse((uint8_t *)m, n, &got, &got_len, &info), QM_OK);
    assert_int_equal(got_len, env_len);
    if (env_len)
        assert_memory_equal(got, env, env_len);
    assert_string_equal(info.from, "alice@example.org");
    assert_int_equal(info.n_to, 2);
    assert_string_equal(info.to[0], "bob@example.org");
    assert_string_equal(info.to[1], "carol@example.net");
    assert_string_equal(info.date, "Wed, 25 Nov 2026 23:00:00 +0000");
    assert_non_null(info.message_id);
    assert_non_null(strchr(info.message_id, '@'));
    assert_null(strchr(info.message_id, '<'));
    free(got);
    qm_outer_info_free(&info);
    /* the same with CRLF line endings */
    size_t cn;
    char *c = to_crlf(m, n, &cn);
    assert_int_equal(qm_mime_parse((uint8_t *)c, cn, &got, &got_len, NULL), QM_OK);
    assert_int_equal(got_len, env_len);
    if (env_len)
        assert_memory_equal(got, env, env_len);
    free(got);
    free(c);
    free(m);
    free(env);
}

static void test_round_trip_0(void **state) { (void)state; round_trip(0); }
static void test_round_trip_1(void **state) { (void)state; round_trip(1); }
static void test_round_trip_2_3_57(void **state)
{
    (void)state;
    round_trip(2);
    round_trip(3);
    round_trip(57);   /* exactly one 76-character line */
    round_trip(58);
}
static void test_round_trip_1mib(void **state) { (void)state; round_trip(1u << 20); }

/* The header block of a built message: exactly these headers, in this
 * order, and nothing about the inner message. */
static void test_build_headers(void **state)
{
    (void)state;
    char *m;
    size_t n;
    build(small_env, sizeof small_env, "Wed, 25 Nov 2026 23:00:00 +0000", &m, &n);
    char *body = strstr(m, "\n\n");
    assert_non_null(body);
    *body = '\0';
    const char *want[] = { "From: alice@example.org", "To: bob@example.org,",
                           " carol@example.net", "Date: Wed, 25 Nov 2026 23:00:00 +0000",
                           "Message-ID: <", "Subject: QuMail encrypted message",
                           "MIME-Version: 1.0",
                           "Content-Type: multipart/encrypted; "
                           "protocol=\"application/x-qumail-envelope\";",
                           " boundary=\"" };
    char *save, *line = strtok_r(m, "\n", &save);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++, line = strtok_r(NULL, "\n", &save)) {
        assert_non_null(line);
        if (strncmp(line, want[i], strlen(want[i])) != 0)
            fail_msg("header line %zu: [%s], want [%s...]", i, line, want[i]);
    }
    assert_null(line);
    free(m);
}

static void test_build_body_layout(void **state)
{
    (void)state;
    uint8_t env[1000];
    randombytes_buf(env, sizeof env);
    char *m;
    size_t n;
    build(env, sizeof env, NULL, &m, &n);
    char *b = strstr(m, "boundary=\"");
    assert_non_null(b);
    b += strlen("boundary=\"");
    char boundary[100];
    size_t bl = strcspn(b, "\"");
    assert_true(bl > 0 && bl < 70);
    memcpy(boundary, b, bl);
    boundary[bl] = '\0';
    char expect[1024];
    snprintf(expect, sizeof expect,
             "\n\n--%s\nContent-Type: application/x-qumail-envelope\n\nVersion: 1\n\n--%s\n"
             "Content-Type: application/octet-stream; name=\"qumail.bin\"\n"
             "Content-Disposition: inline; filename=\"qumail.bin\"\n"
             "Content-Transfer-Encoding: base64\n\n", boundary, boundary);
    char *p = strstr(m, expect);
    assert_non_null(p);
    p += strlen(expect);
    /* 1000 bytes = 1336 characters: 17 lines of 76 and one of 44 */
    for (int i = 0; i < 18; i++) {
        size_t len = strcspn(p, "\n");
        assert_int_equal(len, i < 17 ? 76 : 44);
        p += len + 1;
    }
    snprintf(expect, sizeof expect, "--%s--\n", boundary);
    assert_string_equal(p, expect);
    /* the default date is there, in UTC */
    assert_non_null(strstr(m, "\nDate: "));
    assert_non_null(strstr(m, " +0000\n"));
    free(m);
}

static void test_build_fresh_ids(void **state)
{
    (void)state;
    char *a, *b;
    size_t an, bn;
    build(small_env, sizeof small_env, "x", &a, &an);
    build(small_env, sizeof small_env, "x", &b, &bn);
    char *ma = strstr(a, "Message-ID: <"), *mb = strstr(b, "Message-ID: <");
    assert_non_null(ma);
    assert_non_null(mb);
    assert_true(strncmp(ma, mb, strcspn(ma, "\n")) != 0);
    char *ba = strstr(a, "boundary=\""), *bb = strstr(b, "boundary=\"");
    assert_true(strncmp(ba, bb, strcspn(ba, "\n")) != 0);
    free(a);
    free(b);
}

static void test_build_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t *o;
    size_t n;
    const char *bad_to[] = { "bob@example.org\nBcc: eve@example.org" };
    const char *bad_to2[] = { "Bob <bob@example.org>" };
    const char *bad_to3[] = { "bob" };
    assert_int_equal(qm_mime_build("alice@example.org", rcpts, 0, NULL, small_env, 1, &o, &n),
                     QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", bad_to, 1, NULL, small_env, 1, &o, &n),
                     QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", bad_to2, 1, NULL, small_env, 1, &o, &n),
                     QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", bad_to3, 1, NULL, small_env, 1, &o, &n),
                     QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice", rcpts, 2, NULL, small_env, 1, &o, &n), QM_E_USAGE);
    assert_int_equal(qm_mime_build(NULL, rcpts, 2, NULL, small_env, 1, &o, &n), QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", rcpts, 2, "now\nX-Leak: 1", small_env,
                                   1, &o, &n), QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", rcpts, 2, NULL, NULL, 1, &o, &n),
                     QM_E_USAGE);
    assert_int_equal(qm_mime_build("alice@example.org", rcpts, 2, NULL, small_env, 1, NULL, &n),
                     QM_E_USAGE);
}

/* ---- inner summary ---------------------------------------------------------- */

static const char inner_msg[] =
    "From: Alice Example <alice@example.org>\n"
    "To: Bob <bob@example.org>, \"Carol, C.\" <carol@example.net>\n"
    "Cc: dave@example.org, friends: erin@example.org, frank@example.org;\n"
    "Subject: =?UTF-8?B?R3LDvMOfZSDinJM=?= und mehr\n"
    "Date: Wed, 25 Nov 2026 22:00:00 +0100\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"mix\"\n"
    "\n"
    "--mix\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hallo Bob.\n"
    "--mix\n"
    "Content-Type: application/pdf; name=\"a.pdf\"\n"
    "Content-Disposition: attachment; filename=\"a.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--mix--\n";

static void check_inner(const char *msg, size_t len)
{
    char *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, msg, len);
    qm_inner_summary s;
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)msg, len, &s), QM_OK);
    assert_memory_equal(copy, msg, len);     /* bytes unchanged */
    assert_string_equal(s.from, "alice@example.org");
    assert_int_equal(s.n_to, 5);
    const char *want[] = { "bob@example.org", "carol@example.net", "dave@example.org",
                           "erin@example.org", "frank@example.org" };
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(s.to[i], want[i]);
    assert_string_equal(s.subject, "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93 und mehr");
    assert_string_equal(s.date, "Wed, 25 Nov 2026 22:00:00 +0100");
    qm_inner_summary_free(&s);
    qm_inner_summary_free(&s);
    free(copy);
}

static void test_inner_summary(void **state)
{
    (void)state;
    check_inner(inner_msg, strlen(inner_msg));
    size_t n;
    char *c = to_crlf(inner_msg, strlen(inner_msg), &n);
    check_inner(c, n);
    free(c);
}

static void test_inner_summary_sparse(void **state)
{
    (void)state;
    qm_inner_summary s;
    /* headers only, no blank line, no Subject or Date */
    const char *m = "To: bob@example.org";
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)m, strlen(m), &s), QM_OK);
    assert_null(s.from);
    assert_null(s.subject);
    assert_null(s.date);
    assert_int_equal(s.n_to, 1);
    assert_string_equal(s.to[0], "bob@example.org");
    qm_inner_summary_free(&s);
    /* body only: nothing found, not an error */
    const char *b = "\nJust a body.\nFrom: not-a-header@example.org\n";
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)b, strlen(b), &s), QM_OK);
    assert_null(s.from);
    assert_int_equal(s.n_to, 0);
    qm_inner_summary_free(&s);
    /* empty message */
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)"", 0, &s), QM_OK);
    assert_int_equal(s.n_to, 0);
    qm_inner_summary_free(&s);
    /* a plain ASCII subject, headers after the body are not read */
    const char *p = "Subject: hello\n\nTo: eve@example.org\n";
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)p, strlen(p), &s), QM_OK);
    assert_string_equal(s.subject, "hello");
    assert_int_equal(s.n_to, 0);
    qm_inner_summary_free(&s);
    assert_int_equal(qm_mime_inner_summary(NULL, 1, &s), QM_E_USAGE);
    assert_int_equal(qm_mime_inner_summary((const uint8_t *)"x", 1, NULL), QM_E_USAGE);
}

/* ---- header-section bounds ------------------------------------------------ */

/* n copies of line, then tail; *len its length. */
static uint8_t *repeat(const char *line, size_t n, const char *tail, size_t *len)
{
    size_t ll = strlen(line), tl = strlen(tail);
    uint8_t *b = malloc(ll * n + tl + 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        memcpy(b + i * ll, line, ll);
    memcpy(b + ll * n, tail, tl + 1);
    *len = ll * n + tl;
    return b;
}

static void expect_section(const char *m, size_t len, qm_err want, size_t want_len)
{
    size_t h = 12345;
    assert_int_equal(qm_mime_header_section((const uint8_t *)m, len, &h), want);
    if (want == QM_OK)
        assert_int_equal(h, want_len);
}

static void test_header_section_shapes(void **state)
{
    (void)state;
    expect_section("A: b\n\nbody\n", 11, QM_OK, 6);
    expect_section("A: b\r\n\r\nbody", 12, QM_OK, 8);
    expect_section("A: b\n c\n\n", 9, QM_OK, 9);
    expect_section("A: b\n", 5, QM_OK, 5);       /* no body: all of it */
    expect_section("A: b", 4, QM_OK, 4);
    expect_section("\nbody", 5, QM_OK, 1);
    expect_section("\r\nbody", 6, QM_OK, 2);
    expect_section("", 0, QM_OK, 0);
    expect_section("A: b\r\rc\n\n", 9, QM_OK, 9);  /* a lone CR ends nothing */
}

static void test_header_section_line_bound(void **state)
{
    (void)state;
    size_t len;
    uint8_t *m = repeat("X-H: v\n", QM_MIME_MAX_HEADER_LINES, "\nbody", &len);
    expect_section((char *)m, len, QM_OK, 7 * QM_MIME_MAX_HEADER_LINES + 1);
    free(m);
    m = repeat("X-H: v\n", QM_MIME_MAX_HEADER_LINES + 1, "\nbody", &len);
    expect_section((char *)m, len, QM_E_TOO_BIG, 0);
    free(m);
    /* folded continuation lines count: 500 headers of 2 lines + 1 */
    m = repeat("X-H: v\n w\n", QM_MIME_MAX_HEADER_LINES / 2, "Y: 1\n\n", &len);
    expect_section((char *)m, len, QM_E_TOO_BIG, 0);
    free(m);
    /* header-only (no empty line): the same bound */
    m = repeat("X-H: v\n", QM_MIME_MAX_HEADER_LINES + 1, "", &len);
    expect_section((char *)m, len, QM_E_TOO_BIG, 0);
    free(m);
    m = repeat("X-H: v\r\n", QM_MIME_MAX_HEADER_LINES, "\r\n", &len);
    expect_section((char *)m, len, QM_OK, len);
    free(m);
}

static void test_header_section_byte_bound(void **state)
{
    (void)state;
    const size_t max = QM_MIME_MAX_HEADER_BYTES;
    char *m = malloc(max + 16);
    assert_non_null(m);
    /* one header line of exactly max bytes with its LF, then the end */
    memset(m, 'a', max + 16);
    memcpy(m, "X: ", 3);
    m[max - 1] = '\n';
    m[max] = '\n';
    expect_section(m, max + 16, QM_OK, max + 1);
    /* one byte more */
    m[max - 1] = 'a';
    m[max] = '\n';
    m[max + 1] = '\n';
    expect_section(m, max + 16, QM_E_TOO_BIG, 0);
    /* no line end at all: exactly max bytes is a header-only message,
     * one more is too much */
    memset(m, 'a', max + 16);
    expect_section(m, max, QM_OK, max);
    expect_section(m, max + 1, QM_E_TOO_BIG, 0);
    /* the bytes of all lines count: 512 lines of 512 bytes are exactly
     * the bound, one byte more in the last line is past it */
    char *lines = malloc(max + 8);
    assert_non_null(lines);
    for (size_t i = 0; i < 512; i++) {
        memset(lines + i * 512, 'h', 511);
        memcpy(lines + i * 512, "X-H: ", 5);
        lines[i * 512 + 511] = '\n';
    }
    assert_int_equal(512 * 512, max);
    memcpy(lines + max, "\nbody", 5);
    expect_section(lines, max + 5, QM_OK, max + 1);
    lines[max - 1] = 'h';
    memcpy(lines + max, "\n\nbody", 6);
    expect_section(lines, max + 6, QM_E_TOO_BIG, 0);
    free(lines);
    free(m);
}

/* The outer parser refuses a message past the bounds before GMime (and
 * accepts one exactly at them). */
static void test_parse_header_bounds(void **state)
{
    (void)state;
    char *spec = spec_message();
    /* spec_headers is 10 lines (2 folded) */
    for (size_t extra = QM_MIME_MAX_HEADER_LINES - 10; extra <= QM_MIME_MAX_HEADER_LINES - 9;
         extra++) {
        size_t plen;
        uint8_t *pad = repeat("Received: x\n", extra, "From: alice", &plen);
        char *m = replace(spec, "From: alice", (char *)pad);
        uint8_t *env = NULL;
        size_t env_len = 0;
        qm_err want = extra + 10 <= QM_MIME_MAX_HEADER_LINES ? QM_OK : QM_E_MIME;
        assert_int_equal(qm_mime_parse((uint8_t *)m, strlen(m), &env, &env_len, NULL), want);
        free(env);
        free(m);
        free(pad);
    }
    /* a data part's header section: 3 lines of its own */
    for (size_t extra = QM_MIME_MAX_HEADER_LINES - 3; extra <= QM_MIME_MAX_HEADER_LINES - 2;
         extra++) {
        size_t plen;
        uint8_t *pad = repeat("X-Pad: y\n", extra, "Content-Type: application/octet-stream",
                              &plen);
        char *m = replace(spec, "Content-Type: application/octet-stream", (char *)pad);
        uint8_t *env = NULL;
        size_t env_len = 0;
        qm_err want = extra + 3 <= QM_MIME_MAX_HEADER_LINES ? QM_OK : QM_E_MIME;
        assert_int_equal(qm_mime_parse((uint8_t *)m, strlen(m), &env, &env_len, NULL), want);
        free(env);
        free(m);
        free(pad);
    }
    /* part sections: the message has 3 boundary lines; "--" lines in the
     * preamble open sections too */
    for (size_t extra = QM_MIME_MAX_PART_SECTIONS - 3; extra <= QM_MIME_MAX_PART_SECTIONS - 2;
         extra++) {
        size_t plen;
        uint8_t *pad = repeat("--not-ours\n\n", extra, "--BOUND\nContent-Type: application/x",
                              &plen);
        char *m = replace(spec, "--BOUND\nContent-Type: application/x", (char *)pad);
        uint8_t *env = NULL;
        size_t env_len = 0;
        qm_err want = extra + 3 <= QM_MIME_MAX_PART_SECTIONS ? QM_OK : QM_E_MIME;
        assert_int_equal(qm_mime_parse((uint8_t *)m, strlen(m), &env, &env_len, NULL), want);
        free(env);
        free(m);
        free(pad);
    }
    /* the inner summary: the same bound */
    size_t len;
    qm_inner_summary sum;
    uint8_t *inner = repeat("X-H: v\n", QM_MIME_MAX_HEADER_LINES + 1, "Subject: s\n\nbody", &len);
    assert_int_equal(qm_mime_inner_summary(inner, len, &sum), QM_E_TOO_BIG);
    free(inner);
    free(spec);
}

/* ---- the inbox listing ------------------------------------------------------ */

/* A Level 4 envelope (docs/qumail-format.md §2) around plain, for two
 * recipients. */
static uint8_t *level4_envelope(const char *plain, size_t *len)
{
    qm_envelope e;
    uint8_t group, hdr[1024];
    size_t hlen, plen = strlen(plain);
    assert_int_equal(qm_envelope_init(&e, 4, "SAE_A1", plen), QM_OK);
    assert_int_equal(qm_envelope_add_group(&e, NULL, 0, NULL, &group), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(&e, "SAE_B1", group, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(&e, "SAE_B2", group, NULL), QM_OK);
    assert_int_equal(qm_header_write(&e, hdr, sizeof hdr, &hlen), QM_OK);
    qm_envelope_free(&e);
    uint8_t *env = malloc(hlen + plen);
    assert_non_null(env);
    memcpy(env, hdr, hlen);
    memcpy(env + hlen, plain, plen);
    *len = hlen + plen;
    return env;
}

static void list(const char *m, size_t len, qm_mime_listing *l)
{
    assert_int_equal(qm_mime_listing_read((const uint8_t *)m, len, l), QM_OK);
}

static void test_listing_qumail(void **state)
{
    (void)state;
    qm_mime_listing l;
    char *spec = spec_message();   /* small_env: level 1 */
    list(spec, strlen(spec), &l);
    assert_true(l.qumail);
    assert_int_equal(l.level, 1);
    assert_string_equal(l.from, "alice@example.org");
    assert_string_equal(l.date, "Wed, 25 Nov 2026 23:00:00 +0000");
    assert_string_equal(l.message_id, "0123abcd@example.org");
    assert_null(l.subject);   /* the constant outer one is not shown */
    qm_mime_listing_free(&l);
    qm_mime_listing_free(&l); /* twice is safe */
    /* level 2 and an unknown level in the same place */
    char *l2 = replace(spec, SMALL_B64, "UVVNQUlMAQICAwQFBg==");
    list(l2, strlen(l2), &l);
    assert_int_equal(l.level, 2);
    qm_mime_listing_free(&l);
    char *l3 = replace(spec, SMALL_B64, "UVVNQUlMAQMCAwQFBg==");
    list(l3, strlen(l3), &l);
    assert_true(l.qumail);
    assert_int_equal(l.level, 0);
    qm_mime_listing_free(&l);
    /* a 1 MiB envelope: the first QM_MIME_LIST_PREFIX bytes are enough */
    uint8_t *big = malloc(1u << 20);
    assert_non_null(big);
    randombytes_buf(big, 1u << 20);
    memcpy(big, small_env, 8);
    char *m;
    size_t n;
    build(big, 1u << 20, NULL, &m, &n);
    list(m, QM_MIME_LIST_PREFIX, &l);
    assert_int_equal(l.level, 1);
    assert_string_equal(l.from, "alice@example.org");
    qm_mime_listing_free(&l);
    free(m);
    free(big);
    free(l2);
    free(l3);
    free(spec);
}

static void test_listing_level4(void **state)
{
    (void)state;
    qm_mime_listing l;
    size_t elen, n;
    char *m;
    uint8_t *env = level4_envelope("From: alice@example.org\nSubject: Lunch =?utf-8?q?caf=C3=A9?=\n"
                                   "\nThe body.\n", &elen);
    build(env, elen, NULL, &m, &n);
    list(m, n, &l);
    assert_true(l.qumail);
    assert_int_equal(l.level, 4);
    assert_string_equal(l.subject, "Lunch caf\xc3\xa9");
    qm_mime_listing_free(&l);
    free(m);
    free(env);
    /* the inner Subject beyond the first 4 KiB of the data part: level 4,
     * no subject */
    size_t plen;
    uint8_t *pad = repeat("X-Long: 0123456789012345678901234567890123456789\n", 100,
                          "Subject: far away\n\nbody\n", &plen);
    env = level4_envelope((char *)pad, &elen);
    build(env, elen, NULL, &m, &n);
    list(m, n, &l);
    assert_int_equal(l.level, 4);
    assert_null(l.subject);
    qm_mime_listing_free(&l);
    free(m);
    free(env);
    free(pad);
}

static void test_listing_plain_and_hostile(void **state)
{
    (void)state;
    qm_mime_listing l;
    /* not a QuMail message: its own Subject, unprotected */
    const char *plain = "From: Eve <eve@example.net>\nSubject: \x1b]0;pwned\x07 hi\n"
                        "Date: Mon, 7 Dec 2026 03:00:00 +0000\n\nbody\n";
    list(plain, strlen(plain), &l);
    assert_false(l.qumail);
    assert_int_equal(l.level, 0);
    assert_string_equal(l.from, "eve@example.net");
    assert_non_null(l.subject);
    assert_non_null(strstr(l.subject, "pwned"));  /* raw here: the caller sanitises */
    qm_mime_listing_free(&l);
    /* header only */
    list("Subject: x", 10, &l);
    assert_string_equal(l.subject, "x");
    qm_mime_listing_free(&l);
    /* no header at all */
    assert_int_equal(qm_mime_listing_read((const uint8_t *)"", 0, &l), QM_E_MIME);
    assert_int_equal(qm_mime_listing_read((const uint8_t *)"\nbody", 5, &l), QM_E_MIME);
    assert_int_equal(qm_mime_listing_read((const uint8_t *)"\r\nbody", 6, &l), QM_E_MIME);
    /* past the header bounds: QM_E_TOO_BIG, nothing parsed */
    size_t len;
    uint8_t *m = repeat("X-H: v\n", QM_MIME_MAX_HEADER_LINES + 1, "\nbody", &len);
    assert_int_equal(qm_mime_listing_read(m, len, &l), QM_E_TOO_BIG);
    assert_null(l.from);
    free(m);
    /* a data part with a huge header section: only QM_MIME_PEEK_BODY of
     * the body is read, so it is listed (level unknown) */
    char *spec = spec_message();
    uint8_t *pad = repeat("X-Pad: y\n", 50000, "Content-Type: application/octet-stream", &len);
    char *h = replace(spec, "Content-Type: application/octet-stream", (char *)pad);
    list(h, strlen(h), &l);
    assert_true(l.qumail);
    assert_int_equal(l.level, 0);
    qm_mime_listing_free(&l);
    free(h);
    free(pad);
    free(spec);
    assert_int_equal(qm_mime_listing_read(NULL, 1, &l), QM_E_USAGE);
    assert_int_equal(qm_mime_listing_read((const uint8_t *)"x", 1, NULL), QM_E_USAGE);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_message_parses),
        cmocka_unit_test(test_crlf_accepted),
        cmocka_unit_test(test_transport_additions_accepted),
        cmocka_unit_test(test_tolerated_variants),
        cmocka_unit_test(test_reject_top_level),
        cmocka_unit_test(test_reject_parts),
        cmocka_unit_test(test_reject_part_types),
        cmocka_unit_test(test_reject_bad_base64),
        cmocka_unit_test(test_base64_long_and_chunked),
        cmocka_unit_test(test_reject_control_version),
        cmocka_unit_test(test_reject_garbage),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_round_trip_0),
        cmocka_unit_test(test_round_trip_1),
        cmocka_unit_test(test_round_trip_2_3_57),
        cmocka_unit_test(test_round_trip_1mib),
        cmocka_unit_test(test_build_headers),
        cmocka_unit_test(test_build_body_layout),
        cmocka_unit_test(test_build_fresh_ids),
        cmocka_unit_test(test_build_rejects_bad_input),
        cmocka_unit_test(test_inner_summary),
        cmocka_unit_test(test_inner_summary_sparse),
        cmocka_unit_test(test_header_section_shapes),
        cmocka_unit_test(test_header_section_line_bound),
        cmocka_unit_test(test_header_section_byte_bound),
        cmocka_unit_test(test_parse_header_bounds),
        cmocka_unit_test(test_listing_qumail),
        cmocka_unit_test(test_listing_level4),
        cmocka_unit_test(test_listing_plain_and_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
