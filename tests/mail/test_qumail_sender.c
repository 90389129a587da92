/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_sender.c - the sender binding rule (mail/sender.h), offline:
 * bob's address book (alice = SAE_A1, alice's alias = SAE_A1, carol =
 * SAE_A2) against the From and Sender headers of inner messages and the
 * envelope's sender SAE.  Each refusal is checked for its exact text, which
 * names the address, the SAE the address book gives it and the SAE that
 * sent the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/sender.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static char dir[256], conf[300], pem[300];
static qm_config book;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    char text[4096];
    snprintf(dir, sizeof dir, "%s/qmsender.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(conf, sizeof conf, "%s/bob.conf", dir);
    snprintf(pem, sizeof pem, "%s/x.pem", dir);
    write_file(pem, "not read as PEM here\n");
    snprintf(text, sizeof text,
             "[user]\naddress = bob@example.org\nsae_id = SAE_B1\n"
             "[kme]\nurl = https://localhost:1\ncert = %s\nkey = %s\nca = %s\n"
             "[store]\ndir = %s/store\n[mail]\nmaildir_root = %s/mail\n"
             "[addressbook]\n"
             "Alice@Example.org = SAE_A1 KME-A\n"
             "alice.smith@example.org = SAE_A1 KME-A\n"
             "carol@example.org = SAE_A2 KME-A\n",
             pem, pem, pem, dir, dir);
    write_file(conf, text);
    char err[512];
    return qm_config_load(conf, &book, err, sizeof err) == QM_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    qm_config_free(&book);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The verdict on msg sent by sae: the return code, why in out. */
static qm_err verdict(const char *sae, const char *msg, char *why, size_t cap)
{
    const char *who = NULL;
    qm_err err = qm_sender_verify(&book, sae, (const uint8_t *)msg, strlen(msg), why, cap, &who);
    if (err == QM_OK) {
        assert_non_null(who);
        assert_string_equal(why, "");
    }
    return err;
}

static void expect_refused(const char *sae, const char *msg, const char *text)
{
    char why[512];
    assert_int_equal(verdict(sae, msg, why, sizeof why), QM_E_SENDER);
    assert_string_equal(why, text);
}

static void expect_verified(const char *sae, const char *msg)
{
    char why[512];
    assert_int_equal(verdict(sae, msg, why, sizeof why), QM_OK);
}

static void test_genuine(void **state)
{
    (void)state;
    expect_verified("SAE_A1", "From: alice@example.org\nSubject: x\n\nbody\n");
    /* case of local part and domain, display name, CRLF */
    expect_verified("SAE_A1", "From: \"Alice\" <ALICE@EXAMPLE.ORG>\r\nSubject: x\r\n\r\nb\r\n");
    /* two addresses of the same SAE, From and Sender */
    expect_verified("SAE_A1", "From: alice@example.org, alice.smith@example.org\n"
                              "Sender: alice.smith@example.org\n\nb\n");
    /* no From at all: claims nobody; the SAE is in the address book */
    expect_verified("SAE_A2", "Subject: no from\n\nb\n");
    /* a From line in the body is no header */
    expect_verified("SAE_A2", "From: carol@example.org\n\nFrom: alice@example.org\n");
}

static void test_other_contact(void **state)
{
    (void)state;
    expect_refused("SAE_A2", "From: Alice <alice@example.org>\n\nhi\n",
                   "sent by SAE SAE_A2 (carol@example.org), but From alice@example.org is SAE "
                   "SAE_A1 in your address book");
    expect_refused("SAE_A2", "From: carol@example.org\nSender: alice@example.org\n\nhi\n",
                   "sent by SAE SAE_A2 (carol@example.org), but Sender alice@example.org is "
                   "SAE SAE_A1 in your address book");
    /* one of two From addresses */
    expect_refused("SAE_A1", "From: alice@example.org, carol@example.org\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From carol@example.org is SAE "
                   "SAE_A2 in your address book");
    /* two From header lines: the second one counts too */
    expect_refused("SAE_A1", "From: alice@example.org\nFrom: carol@example.org\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From carol@example.org is SAE "
                   "SAE_A2 in your address book");
    /* a group */
    expect_refused("SAE_A1", "From: team: alice@example.org, carol@example.org;\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From carol@example.org is SAE "
                   "SAE_A2 in your address book");
    /* header name in another case, blank before the colon */
    expect_refused("SAE_A1", "fROM : carol@example.org\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From carol@example.org is SAE "
                   "SAE_A2 in your address book");
}

static void test_unknown(void **state)
{
    (void)state;
    expect_refused("SAE_A3", "From: alice@example.org\n\nhi\n",
                   "sent by SAE SAE_A3, which is not in your address book, but From "
                   "alice@example.org is SAE SAE_A1 in your address book");
    expect_refused("SAE_A3", "Subject: anonymous\n\nhi\n",
                   "sent by SAE SAE_A3, which is not in your address book");
    expect_refused("SAE_A1", "From: mallory@evil.example\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From mallory@evil.example is "
                   "not in your address book");
    /* the display name claims alice; the address is not hers */
    expect_refused("SAE_A1", "From: \"alice@example.org\" <alice@example.org.evil>\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org), but From alice@example.org.evil is "
                   "not in your address book");
}

static void test_unreadable(void **state)
{
    (void)state;
    expect_refused("SAE_A1", "From: \n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org); a From header has no address that "
                   "can be checked");
    expect_refused("SAE_A1", "Sender: undisclosed-recipients:;\n\nhi\n",
                   "sent by SAE SAE_A1 (alice@example.org); a Sender header has no address "
                   "that can be checked");
    /* terminal controls in an address never reach the text */
    char why[512];
    assert_int_equal(verdict("SAE_A1", "From: \"x\" <mal\x1b]0;pwn\x07@evil.example>\n\nhi\n",
                             why, sizeof why), QM_E_SENDER);
    assert_null(strchr(why, '\x1b'));
    assert_null(strchr(why, '\x07'));
    /* binary with no header GMime takes: no author claimed */
    uint8_t bin[64];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 37 + 1);
    const char *who = NULL;
    assert_int_equal(qm_sender_verify(&book, "SAE_A1", bin, sizeof bin, why, sizeof why, &who),
                     QM_OK);
}

static void test_addresses(void **state)
{
    (void)state;
    char **a = NULL;
    size_t n = 0;
    const char *bad = NULL;
    const char *msg =
        "Sender: b@x.example\nTo: c@x.example\nFrom: A <a@x.example>, d@x.example\n\n";
    assert_int_equal(qm_sender_addresses((const uint8_t *)msg, strlen(msg), &a, &n, &bad), QM_OK);
    assert_int_equal(n, 3);
    assert_null(bad);
    assert_string_equal(a[0], "Sender b@x.example");
    assert_string_equal(a[1], "From a@x.example");
    assert_string_equal(a[2], "From d@x.example");
    qm_sender_addresses_free(a, n);
    assert_int_equal(qm_sender_verify(NULL, "SAE_A1", NULL, 0, (char[8]){ 0 }, 8, NULL),
                     QM_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genuine),
        cmocka_unit_test(test_other_contact),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
