/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_pending.c - the pending-key store (mail/pending.h), offline:
 * save and find by key ID bound to sender and recipient, modes 0700/0600,
 * consume (a file keeps the keys of other messages), the three reasons,
 * expiry erasing the file (also one dated beyond now + TTL), a file past
 * the head bound read whole only for its own sender, and hostile
 * files: every malformed variant of the format, a file open to others, a
 * symbolic link, each refused with a reason and no crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/pending.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define K1 "0b9e2b36-8d5a-4d83-9a1e-3f2a6c1b7e01"
#define K2 "0b9e2b36-8d5a-4d83-9a1e-3f2a6c1b7e02"
#define K3 "0b9e2b36-8d5a-4d83-9a1e-3f2a6c1b7e03"
#define NOW 1800000000LL
#define TTL 3600LL

static char store[256], pdir[300];

static int setup(void **state)
{
    (void)state;
    snprintf(store, sizeof store, "%s/qmpend.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(store))
        return -1;
    snprintf(pdir, sizeof pdir, "%s/pending", store);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store);
    return system(cmd) == 0 ? 0 : -1;
}

/* Remove every file of pending/ between tests. */
static int clean(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pdir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint8_t b1[32], b2[100], b3[7];
static const char *IDS[] = { K1, K2, K3 };

static void save3(const char *sender, long long now, qm_pending_reason reason)
{
    memset(b1, 0xA1, sizeof b1);
    memset(b2, 0xB2, sizeof b2);
    memset(b3, 0xC3, sizeof b3);
    qm_key_bytes k[] = { { b1, sizeof b1 }, { b2, sizeof b2 }, { b3, sizeof b3 } };
    assert_int_equal(qm_pending_save(store, sender, "SAE_B1", reason, now, IDS, k, 3), QM_OK);
}

static qm_err find(const char *sender, const char *const *ids, size_t n, long long now,
                   qm_pending_found *f)
{
    char detail[256] = "";
    return qm_pending_find(store, sender, "SAE_B1", ids, n, now, TTL, f, detail, sizeof detail);
}

static void test_save_find(void **state)
{
    (void)state;
    save3("SAE_A1", NOW, QM_PENDING_TAMPERED);
    struct stat st;
    assert_int_equal(stat(pdir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    DIR *d = opendir(pdir);
    struct dirent *de;
    char path[600] = "";
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            snprintf(path, sizeof path, "%s/%s", pdir, de->d_name);
    closedir(d);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(qm_pending_count(store), 1);

    qm_pending_found f;
    const char *want[] = { K2 };
    assert_int_equal(find("SAE_A1", want, 1, NOW + 10, &f), QM_OK);
    assert_int_equal(f.n, 1);
    assert_true(f.forged_copy_seen);
    qm_pending_reason reason = QM_PENDING_INCOMPLETE;
    const qm_pending_key *k = qm_pending_lookup(&f, K2, &reason);
    assert_non_null(k);
    assert_int_equal(reason, QM_PENDING_TAMPERED);
    assert_int_equal(k->len, sizeof b2);
    assert_memory_equal(k->data, b2, sizeof b2);
    k = qm_pending_lookup(&f, K3, NULL);
    assert_non_null(k);
    assert_memory_equal(k->data, b3, sizeof b3);
    assert_null(qm_pending_lookup(&f, "0b9e2b36-8d5a-4d83-9a1e-3f2a6c1b7eff", NULL));
    qm_pending_found_free(&f);
    qm_pending_found_free(&f);   /* twice is safe */
}

/* The keys are bound to the sender and recipient SAE. */
static void test_bound(void **state)
{
    (void)state;
    save3("SAE_A1", NOW, QM_PENDING_INCOMPLETE);
    qm_pending_found f;
    assert_int_equal(find("SAE_A2", IDS, 3, NOW, &f), QM_OK);
    assert_int_equal(f.n, 0);
    char detail[256];
    assert_int_equal(qm_pending_find(store, "SAE_A1", "SAE_B2", IDS, 3, NOW, TTL, &f, detail,
                                     sizeof detail), QM_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(find("SAE_A1", IDS, 3, NOW, &f), QM_OK);
    assert_int_equal(f.n, 1);
    assert_false(f.forged_copy_seen);   /* reason: incomplete */
    qm_pending_found_free(&f);
    clean(NULL);
    save3("SAE_A1", NOW, QM_PENDING_UNVERIFIED);   /* verified, sender not: no forgery */
    assert_int_equal(find("SAE_A1", IDS, 3, NOW, &f), QM_OK);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.entries[0].reason, QM_PENDING_UNVERIFIED);
    assert_false(f.forged_copy_seen);
    qm_pending_found_free(&f);
}

/* Using K1 and K2 leaves K3 (another message's key) in a new file. */
static void test_consume(void **state)
{
    (void)state;
    save3("SAE_A1", NOW, QM_PENDING_TAMPERED);
    qm_pending_found f;
    assert_int_equal(find("SAE_A1", IDS, 2, NOW, &f), QM_OK);
    assert_int_equal(qm_pending_consume(store, &f, IDS, 2), QM_OK);
    qm_pending_found_free(&f);
    assert_int_equal(qm_pending_count(store), 1);
    assert_int_equal(find("SAE_A1", IDS, 3, NOW, &f), QM_OK);
    assert_int_equal(f.n, 1);
    assert_null(qm_pending_lookup(&f, K1, NULL));
    assert_null(qm_pending_lookup(&f, K2, NULL));
    const qm_pending_key *k = qm_pending_lookup(&f, K3, NULL);
    assert_non_null(k);
    assert_memory_equal(k->data, b3, sizeof b3);
    assert_int_equal(f.entries[0].created, NOW);   /* its age is kept */
    assert_int_equal(qm_pending_consume(store, &f, IDS + 2, 1), QM_OK);
    qm_pending_found_free(&f);
    assert_int_equal(qm_pending_count(store), 0);
}

/* Older than the TTL: erased by the next find, whoever's keys they are. */
static void test_expiry(void **state)
{
    (void)state;
    save3("SAE_A1", NOW, QM_PENDING_TAMPERED);
    save3("SAE_A3", NOW, QM_PENDING_TAMPERED);
    assert_int_equal(qm_pending_count(store), 2);
    qm_pending_found f;
    assert_int_equal(find("SAE_A1", IDS, 3, NOW + TTL, &f), QM_OK);   /* not yet */
    assert_int_equal(f.n, 1);
    qm_pending_found_free(&f);
    assert_int_equal(qm_pending_count(store), 2);
    assert_int_equal(find("SAE_A1", IDS, 3, NOW + TTL + 1, &f), QM_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(qm_pending_count(store), 0);
    /* created further in the future than the TTL: no time we wrote, erased */
    save3("SAE_A1", NOW + TTL + 1, QM_PENDING_TAMPERED);
    assert_int_equal(find("SAE_A1", IDS, 3, NOW, &f), QM_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(qm_pending_count(store), 0);
}

/* A file past the 4 MiB head bound: read by its head alone for another
 * sender, whole for its own; cut short by a byte, refused either way. */
static void test_large_file(void **state)
{
    (void)state;
    size_t big = (size_t)5 << 20;
    uint8_t *bytes = malloc(big);
    assert_non_null(bytes);
    for (size_t i = 0; i < big; i++)
        bytes[i] = (uint8_t)(i * 131 + 7);
    qm_key_bytes k[] = { { bytes, big } };
    assert_int_equal(qm_pending_save(store, "SAE_A1", "SAE_B1", QM_PENDING_TAMPERED, NOW, IDS, k,
                                     1), QM_OK);
    qm_pending_found f;
    assert_int_equal(find("SAE_A2", IDS, 1, NOW, &f), QM_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(find("SAE_A1", IDS, 1, NOW, &f), QM_OK);
    assert_int_equal(f.n, 1);
    const qm_pending_key *got = qm_pending_lookup(&f, K1, NULL);
    assert_non_null(got);
    assert_int_equal(got->len, big);
    assert_memory_equal(got->data, bytes, big);
    qm_pending_found_free(&f);
    /* one byte short: the head's byte count no longer matches the file */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "for f in '%s'/p-*; do truncate -s -1 \"$f\"; done", pdir);
    assert_int_equal(system(cmd), 0);
    char detail[256] = "";
    assert_int_equal(qm_pending_find(store, "SAE_A2", "SAE_B1", IDS, 1, NOW, TTL, &f, detail,
                                     sizeof detail), QM_E_PENDING);
    assert_non_null(strstr(detail, "bytes of keys announced"));
    free(bytes);
}

static void write_raw(const char *name, const void *p, size_t n, mode_t mode)
{
    char path[600];
    mkdir(pdir, 0700);
    snprintf(path, sizeof path, "%s/%s", pdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

#define GOOD_HEAD "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1800000000\n" \
                  "reason tampered\nkeys 2\n" K1 " 3\n" K2 " 2\n\n"

static void test_parse_good(void **state)
{
    (void)state;
    const char text[] = GOOD_HEAD "abcde";
    qm_pending_entry e;
    char why[200] = "";
    assert_int_equal(qm_pending_parse((const uint8_t *)text, strlen(text), &e, why, sizeof why),
                     QM_OK);
    assert_string_equal(e.sender, "SAE_A1");
    assert_string_equal(e.recipient, "SAE_B1");
    assert_int_equal(e.n, 2);
    assert_memory_equal(e.keys[0].data, "abc", 3);
    assert_memory_equal(e.keys[1].data, "de", 2);
    qm_pending_entry_free(&e);
}

static void test_parse_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "QUMAIL-PENDING 2\n",
        GOOD_HEAD "abcd",                                     /* a byte short */
        GOOD_HEAD "abcdef",                                   /* a byte over */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 01\nreason tampered\n"
        "keys 1\n" K1 " 1\n\nx",                               /* leading zero */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason lost\n"
        "keys 1\n" K1 " 1\n\nx",                               /* unknown reason */
        "QUMAIL-PENDING 1\nsender SAE A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " 1\n\nx",                               /* space in the SAE ID */
        "QUMAIL-PENDING 1\nrecipient SAE_B1\nsender SAE_A1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " 1\n\nx",                               /* order */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 0\n\n",                                         /* no key */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 65538\n",                                       /* too many */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 99999999999999999999\n",                        /* overflow */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n0B9E2B36-8D5A-4D83-9A1E-3F2A6C1B7E01 1\n\nx", /* upper case */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " 0\n\n",                                /* empty key */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " 268435457\n\nx",                       /* longer than 2^28 */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 2\n" K1 " 1\n" K1 " 1\n\nxy",                    /* a key ID twice */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 2\n" K1 " 1\n\nxy",                              /* a key line missing */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " 1\nx",                                 /* no empty line */
        "QUMAIL-PENDING 1\nsender SAE_A1\nrecipient SAE_B1\ncreated 1\nreason tampered\n"
        "keys 1\n" K1 " -1\n\nx",                              /* sign */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qm_pending_entry e;
        char why[200] = "";
        qm_err err = qm_pending_parse((const uint8_t *)bad[i], strlen(bad[i]), &e, why,
                                      sizeof why);
        if (err != QM_E_PENDING || why[0] == '\0')
            fail_msg("hostile file %zu accepted (%d) or no reason", i, (int)err);
        assert_null(e.keys);
    }
}

/* A corrupt file in pending/ stops a find with its name and the reason. */
static void test_corrupt_file(void **state)
{
    (void)state;
    const char text[] = GOOD_HEAD "abc";
    write_raw("p-1-bad", text, strlen(text), 0600);
    qm_pending_found f;
    char detail[256] = "";
    assert_int_equal(qm_pending_find(store, "SAE_A1", "SAE_B1", IDS, 1, NOW, TTL, &f, detail,
                                     sizeof detail), QM_E_PENDING);
    assert_non_null(strstr(detail, "/pending/p-1-bad: "));
    assert_non_null(strstr(detail, "bytes of keys announced"));
    assert_int_equal(f.n, 0);
}

static void test_not_ours(void **state)
{
    (void)state;
    const char text[] = GOOD_HEAD "abcde";
    write_raw("p-1-open", text, strlen(text), 0644);
    qm_pending_found f;
    char detail[256] = "";
    assert_int_equal(qm_pending_find(store, "SAE_A1", "SAE_B1", IDS, 1, NOW, TTL, &f, detail,
                                     sizeof detail), QM_E_PENDING);
    assert_non_null(strstr(detail, "mode 0600"));
    clean(NULL);
    char target[600], link[600];
    write_raw("target", text, strlen(text), 0600);
    snprintf(target, sizeof target, "%s/target", pdir);
    snprintf(link, sizeof link, "%s/p-1-link", pdir);
    assert_int_equal(rename(target, link), 0);
    snprintf(target, sizeof target, "%s/elsewhere", store);
    assert_int_equal(rename(link, target), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(qm_pending_find(store, "SAE_A1", "SAE_B1", IDS, 1, NOW, TTL, &f, detail,
                                     sizeof detail), QM_E_PENDING);
    assert_non_null(strstr(detail, "p-1-link"));
    unlink(target);
}

static void test_save_refuses(void **state)
{
    (void)state;
    uint8_t k[4] = { 1, 2, 3, 4 };
    qm_key_bytes kb[] = { { k, sizeof k } };
    const char *upper[] = { "0B9E2B36-8D5A-4D83-9A1E-3F2A6C1B7E01" };
    const char *notid[] = { "not-a-key-id" };
    const qm_pending_reason t = QM_PENDING_TAMPERED;
    assert_int_equal(qm_pending_save(store, "SAE_A1", "SAE_B1", t, NOW, upper, kb, 1), QM_E_USAGE);
    assert_int_equal(qm_pending_save(store, "SAE_A1", "SAE_B1", t, NOW, notid, kb, 1), QM_E_USAGE);
    assert_int_equal(qm_pending_save(store, "SAE A1", "SAE_B1", t, NOW, IDS, kb, 1), QM_E_USAGE);
    assert_int_equal(qm_pending_save(store, "SAE_A1", "SAE_B1", t, NOW, IDS, kb, 0), QM_E_USAGE);
    assert_int_equal(qm_pending_count(store), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_save_find, clean),
        cmocka_unit_test_teardown(test_bound, clean),
        cmocka_unit_test_teardown(test_consume, clean),
        cmocka_unit_test_teardown(test_expiry, clean),
        cmocka_unit_test_teardown(test_large_file, clean),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test_teardown(test_corrupt_file, clean),
        cmocka_unit_test_teardown(test_not_ours, clean),
        cmocka_unit_test_teardown(test_save_refuses, clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
