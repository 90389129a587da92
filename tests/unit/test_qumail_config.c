/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_config.c - the qumail user configuration (mail/config.h) and
 * the read store (mail/readstore.h): a good file with every section, the
 * shipped example, and one bad file per rule, each checked for its exact
 * "FILE:LINE: [section] key: reason" message; the read store's round trip,
 * file modes, replacement and refusal of foreign files.
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
#include "mail/readstore.h"

/* Paths here are short temporary names; GCC cannot know that. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static char dir[256];
static char conf[300], pem[300], pw[300];

/* text with every "@0@" written as a NUL byte. */
static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (const char *p = text; *p; p++) {
        if (strncmp(p, "@0@", 3) == 0) {
            fputc('\0', f);
            p += 2;
        } else {
            fputc(*p, f);
        }
    }
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/qmconf.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(conf, sizeof conf, "%s/q.conf", dir);
    snprintf(pem, sizeof pem, "%s/a.pem", dir);
    snprintf(pw, sizeof pw, "%s/pw", dir);
    write_file(pem, "not checked as PEM here\n", 0644);
    write_file(pw, "s3cret\nsecond line ignored\n", 0600);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The good base config; extra is appended (may be ""). */
static void write_conf(const char *extra)
{
    char *text = NULL;
    assert_true(asprintf(&text,
             "# alice\n"
             "[user]\n"
             "address = Alice@Example.org\n"
             "sae_id = SAE_A1\n"
             "[kme]\n"
             "url = https://localhost:8443\n"
             "kme_id = KME-A\n"
             "cert = %s\n"
             "key = %s\n"
             "ca = %s\n"
             "[store]\n"
             "dir = %s/store\n"
             "[mail]\n"
             "maildir_root = %s/mail   # one Maildir per address\n"
             "[addressbook]\n"
             "bob@example.org = SAE_B1 KME-B\n"
             "carol@example.org = SAE_A2\n"
             "%s",
             pem, pem, pem, dir, dir, extra) > 0);
    write_file(conf, text, 0644);
    free(text);
}

static void test_good(void **state)
{
    (void)state;
    write_conf("[smtp]\nurl = smtp://127.0.0.1:2525\nusername = alice\n"
               "password_file = ");
    FILE *f = fopen(conf, "a");
    fprintf(f, "%s\n", pw);
    fclose(f);
    qm_config c;
    char err[512] = "";
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_OK);
    assert_string_equal(c.address, "alice@example.org");
    assert_string_equal(c.sae_id, "SAE_A1");
    assert_string_equal(c.kme_id, "KME-A");
    assert_int_equal(c.send, QM_SEND_MAILDIR);
    assert_int_equal(c.inbox, QM_INBOX_MAILDIR);
    assert_string_equal(c.smtp.password, "s3cret");
    assert_string_equal(c.imap.mailbox, "INBOX");
    assert_int_equal(c.n_contacts, 2);
    const qm_contact *b = qm_config_contact(&c, "BOB@example.org");
    assert_non_null(b);
    assert_string_equal(b->sae_id, "SAE_B1");
    assert_string_equal(b->kme_id, "KME-B");
    assert_null(qm_config_contact(&c, "carol@example.org")->kme_id);
    assert_ptr_equal(qm_config_contact_by_sae(&c, "SAE_A2"), qm_config_contact(&c, "carol@example.org"));
    assert_null(qm_config_contact(&c, "dave@example.org"));
    qm_config_free(&c);
    qm_config_free(&c); /* twice is safe */
}

/* extra appended to the good config must fail with exactly want
 * (after "DIR/q.conf"). */
static void expect_error(const char *extra, const char *want)
{
    write_conf(extra);
    qm_config c;
    char err[1024] = "", full[1024];
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(full, sizeof full, "%s%s", conf, want);
    if (strcmp(err, full) != 0)
        fail_msg("got      '%s'\nexpected '%s'", err, full);
    assert_null(c.address); /* emptied */
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("[bogus]\n", ":18: unknown section [bogus] (known: user, kme, store, mail, "
                 "smtp, imap, addressbook)");
    expect_error("[user]\ncolour = blue\n", ":19: unknown key 'colour' in [user]");
    expect_error("[user]\nsae_id = SAE_A3\n", ":19: [user] sae_id: given twice (first on line 4)");
    expect_error("[mail]\nsend = pigeon\n", ":19: [mail] send: 'pigeon' is not one of: maildir, smtp");
    expect_error("[mail]\ninbox = pop3\n", ":19: [mail] inbox: 'pop3' is not one of: maildir, imap");
    expect_error("[mail]\nsend = smtp\n", ": [smtp] url: missing (required with send = smtp)");
    expect_error("[mail]\ninbox = imap\n", ": [imap] url: missing (required with inbox = imap)");
    expect_error("[smtp]\nurl = http://x\n", ":19: [smtp] url: 'http://x' is not an smtp:// or smtps:// URL");
    expect_error("[smtp]\nusername = a\n", ":19: [smtp] username: needs password_file as well");
    expect_error("bob@example.org = SAE_B2\n",
                 ":18: [addressbook] bob@example.org: given twice (first on line 16)");
    expect_error("dave = SAE_D\n", ":18: [addressbook] dave: not an e-mail address (local@domain)");
    expect_error("d/x@example.org = SAE_D\n",
                 ":18: [addressbook] d/x@example.org: not an e-mail address (local@domain)");
    expect_error("dave@example.org = SAE_D KME-D extra\n",
                 ":18: [addressbook] dave@example.org: too many words: write 'SAE_ID' or 'SAE_ID KME_ID'");
    expect_error("dave@example.org =\n",
                 ":18: [addressbook] dave@example.org: empty value: write 'SAE_ID' or 'SAE_ID KME_ID'");
    /* a NUL would cut the value short: bob would become SAE_B */
    expect_error("[addressbook]\nbob2@example.org = SAE_B@0@1\n", ":19: contains a NUL byte");
    expect_error("[store]\ndir = /tmp/x@0@/y\n", ":19: contains a NUL byte");
    expect_error("alice@example.org = SAE_A9\n",
                 ":18: [addressbook] alice@example.org: SAE ID 'SAE_A9' differs from [user] sae_id 'SAE_A1'");
}

static void test_errors_base(void **state)
{
    (void)state;
    char text[4096], want[1024], err[1024];
    qm_config c;
    /* required keys: a file with only [user] */
    write_file(conf, "[user]\naddress = a@b.c\nsae_id = S\n", 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s: [kme] url: missing (required)", conf);
    assert_string_equal(err, want);
    /* unreadable certificate, named with its line */
    snprintf(text, sizeof text, "[user]\naddress = a@b.c\nsae_id = S\n[kme]\nurl = https://h\n"
             "cert = %s/nope.pem\n", dir);
    write_file(conf, text, 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:6: [kme] cert: cannot read '%s/nope.pem': No such file or directory",
             conf, dir);
    assert_string_equal(err, want);
    /* not https */
    write_file(conf, "[kme]\nurl = http://h\n", 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:2: [kme] url: 'http://h' is not an https:// URL", conf);
    assert_string_equal(err, want);
    /* a bad address */
    write_file(conf, "[user]\naddress = alice\n", 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:2: [user] address: 'alice' is not an e-mail address (local@domain)", conf);
    assert_string_equal(err, want);
    /* outside a section, no '=' */
    write_file(conf, "address = a@b.c\n", 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:1: key 'address' outside of any section", conf);
    assert_string_equal(err, want);
    write_file(conf, "[user]\njust words\n", 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:2: expected 'key = value', got 'just words'", conf);
    assert_string_equal(err, want);
    /* a missing file */
    snprintf(text, sizeof text, "%s/absent.conf", dir);
    assert_int_equal(qm_config_load(text, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", text);
    assert_string_equal(err, want);
}

static void test_password_file(void **state)
{
    (void)state;
    char extra[600], want[1024];
    chmod(pw, 0640);
    snprintf(extra, sizeof extra, "[imap]\nurl = imaps://h\nusername = a\npassword_file = %s\n", pw);
    snprintf(want, sizeof want, ":21: [imap] password_file: '%s' is accessible by group or "
             "others (mode 0640): make it private (chmod 600)", pw);
    expect_error(extra, want);
    write_file(pw, "", 0600);
    snprintf(want, sizeof want, ":21: [imap] password_file: '%s' is empty: its first line is "
             "the password", pw);
    expect_error(extra, want);
    write_file(pw, "s3cret\n", 0600);
}

static void test_dirs(void **state)
{
    (void)state;
    char extra[600], want[1024];
    snprintf(extra, sizeof extra, "[mail]\n");
    /* maildir_root given twice in [mail] (base has it): */
    snprintf(extra, sizeof extra, "[mail]\nmaildir_root = %s/x/y\n", dir);
    snprintf(want, sizeof want, ":19: [mail] maildir_root: given twice (first on line 14)");
    expect_error(extra, want);
    /* a store dir under a missing parent */
    char text[4096], err[1024];
    snprintf(text, sizeof text, "[user]\naddress = a@b.c\nsae_id = S\n[kme]\nurl = https://h\n"
             "cert = %s\nkey = %s\nca = %s\n[store]\ndir = %s/no/such\n", pem, pem, pem, dir);
    write_file(conf, text, 0644);
    qm_config c;
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:10: [store] dir: '%s/no/such' does not exist and neither "
             "does its parent directory '%s/no'", conf, dir, dir);
    assert_string_equal(err, want);
    /* and maildir_root missing with the default send = maildir */
    snprintf(text, sizeof text, "[user]\naddress = a@b.c\nsae_id = S\n[kme]\nurl = https://h\n"
             "cert = %s\nkey = %s\nca = %s\n[store]\ndir = %s/s\n", pem, pem, pem, dir);
    write_file(conf, text, 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s: [mail] maildir_root: missing (required with send = maildir)", conf);
    assert_string_equal(err, want);
    /* a file where a directory belongs */
    snprintf(text + strlen(text), sizeof text - strlen(text), "[mail]\nmaildir_root = %s\n", pem);
    write_file(conf, text, 0644);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    snprintf(want, sizeof want, "%s:12: [mail] maildir_root: '%s' is not a directory", conf, pem);
    assert_string_equal(err, want);
}

static void test_example(void **state)
{
    (void)state;
    const char *ex = getenv("EXAMPLE_CONF");
    if (!ex)
        skip();
    /* The example names files under /etc that need not exist here: only
     * check that it parses as far as the first file check. */
    qm_config c;
    char err[1024];
    qm_err rc = qm_config_load(ex, &c, err, sizeof err);
    if (rc == QM_OK) {
        qm_config_free(&c);
        return;
    }
    assert_int_equal(rc, QM_E_CONFIG);
    if (!strstr(err, "cannot read") && !strstr(err, "does not exist"))
        fail_msg("example config: %s", err);
}

static void test_address_valid(void **state)
{
    (void)state;
    assert_true(qm_address_valid("alice@example.org"));
    assert_true(qm_address_valid("a.b+tag@sub.example.org"));
    assert_false(qm_address_valid(""));
    assert_false(qm_address_valid("@example.org"));
    assert_false(qm_address_valid("alice@"));
    assert_false(qm_address_valid("a@b@c"));
    assert_false(qm_address_valid("a b@c"));
    assert_false(qm_address_valid(".a@c"));
    assert_false(qm_address_valid("a@.c"));
    assert_false(qm_address_valid("../x@c"));
    assert_false(qm_address_valid("<a@c>"));
}

static void test_readstore(void **state)
{
    (void)state;
    char store[300], path[400];
    snprintf(store, sizeof store, "%s/rs", dir);
    const uint8_t msg[] = "Subject: hi\n\nbody\0with NUL";
    assert_int_equal(qm_readstore_get(store, "abc", NULL, &(uint8_t *){0}, &(size_t){0}),
                     QM_E_NOT_FOUND);
    assert_int_equal(qm_readstore_put(store, "1700000000.M1P2.host", 1, msg, sizeof msg), QM_OK);
    struct stat st;
    assert_int_equal(stat(store, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/read", store);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/read/1700000000.M1P2.host", store);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t *got;
    size_t len;
    int level = 0;
    assert_int_equal(qm_readstore_get(store, "1700000000.M1P2.host", &level, &got, &len), QM_OK);
    assert_int_equal(level, 1);
    assert_int_equal(len, sizeof msg);
    assert_memory_equal(got, msg, sizeof msg);
    free(got);
    /* replaced */
    assert_int_equal(qm_readstore_put(store, "1700000000.M1P2.host", 4, msg, 3), QM_OK);
    assert_int_equal(qm_readstore_get(store, "1700000000.M1P2.host", &level, &got, &len), QM_OK);
    assert_int_equal(level, 4);
    assert_int_equal(len, 3);
    free(got);
    /* ids that could escape the directory stay inside it */
    assert_int_equal(qm_readstore_put(store, "../escape", 2, msg, 3), QM_OK);
    snprintf(path, sizeof path, "%s/escape", store);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(qm_readstore_get(store, "../escape", &level, &got, &len), QM_OK);
    free(got);
    assert_int_equal(qm_readstore_put(store, "imap:INBOX:42", 2, msg, 0), QM_OK);
    assert_int_equal(qm_readstore_get(store, "imap:INBOX:42", &level, &got, &len), QM_OK);
    assert_int_equal(len, 0);
    free(got);
    assert_int_equal(qm_readstore_put(store, "", 1, msg, 3), QM_E_USAGE);
    /* a file this store did not write */
    snprintf(path, sizeof path, "%s/read/foreign", store);
    write_file(path, "From: x\n\nhello\n", 0600);
    assert_int_equal(qm_readstore_get(store, "foreign", &level, &got, &len), QM_E_IO);
    /* no temporary files left */
    char cmd[500];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/read' | grep '^\\.tmp')\"", store);
    assert_int_equal(system(cmd), 0);
}

/* 200,000 address-book entries: every one found by address (any case) and
 * by SAE ID, the first of two contacts sharing an SAE ID wins, and a
 * duplicate at the very end is still named with both lines.  (Loading was
 * quadratic: 100 s; with the hash tables it takes well under a second,
 * which is not asserted here, only correctness.) */
#define BIG_BOOK 200000
static void test_big_addressbook(void **state)
{
    (void)state;
    size_t cap = (size_t)BIG_BOOK * 48 + 64;
    char *extra = malloc(cap), *p = extra;
    assert_non_null(extra);
    p += sprintf(p, "[addressbook]\n");
    for (unsigned i = 0; i < BIG_BOOK; i++)
        p += sprintf(p, "user%u@example.org = SAE_U%u%s\n", i, i % 1000 == 999 ? 0 : i,
                     i % 2 ? " KME-X" : "");
    write_conf(extra);
    qm_config c;
    char err[512] = "";
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_OK);
    assert_int_equal(c.n_contacts, BIG_BOOK + 2);
    char addr[64], sae[32];
    for (unsigned i = 0; i < BIG_BOOK; i += 7) {
        snprintf(addr, sizeof addr, i % 3 ? "user%u@example.org" : "USER%u@Example.ORG", i);
        const qm_contact *ct = qm_config_contact(&c, addr);
        assert_non_null(ct);
        snprintf(addr, sizeof addr, "user%u@example.org", i);
        assert_string_equal(ct->address, addr);
        assert_int_equal(ct->line, 19 + i);
        if (i % 1000 != 999) {
            snprintf(sae, sizeof sae, "SAE_U%u", i);
            assert_ptr_equal(qm_config_contact_by_sae(&c, sae), ct);
        }
    }
    /* SAE_U0 is user0's and every 1000th's: the first one is found */
    assert_ptr_equal(qm_config_contact_by_sae(&c, "SAE_U0"), qm_config_contact(&c, "user0@example.org"));
    assert_null(qm_config_contact(&c, "user200000@example.org"));
    assert_null(qm_config_contact(&c, "user1@example.or"));
    assert_null(qm_config_contact_by_sae(&c, "SAE_U999"));
    assert_null(qm_config_contact_by_sae(&c, "sae_u1"));   /* SAE IDs are exact */
    assert_string_equal(qm_config_contact(&c, "bob@example.org")->sae_id, "SAE_B1");
    qm_config_free(&c);
    /* a duplicate after 200,000 others, in another case */
    sprintf(p, "USER123456@example.org = SAE_Z\n");
    write_conf(extra);
    assert_int_equal(qm_config_load(conf, &c, err, sizeof err), QM_E_CONFIG);
    char want[600];
    snprintf(want, sizeof want, "%s:%u: [addressbook] USER123456@example.org: given twice "
             "(first on line %u)", conf, 19 + BIG_BOOK, 19 + 123456);
    assert_string_equal(err, want);
    free(extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_base),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_dirs),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_address_valid),
        cmocka_unit_test(test_readstore),
        cmocka_unit_test(test_big_addressbook),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
