/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_readmeta.c - the read store's metadata (mail/readstore.h,
 * format version 2): a message whose sender is not verified and one whose
 * forged copy came first keep their marks across put and get; a message
 * without them is still written in version 1 (older stores read the same);
 * terminal controls in the reason never reach the file; what a reader
 * shows without opening a message again (SAE IDs, key IDs, KME, time, the
 * attachment list with hostile names) comes back as it went in; and
 * hostile version 2 heads are refused as foreign files (QM_E_IO), never
 * shown.
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

#include "mail/readstore.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static char store[256];

static int setup(void **state)
{
    (void)state;
    snprintf(store, sizeof store, "%s/qmmeta.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(store) != NULL && qm_readstore_init(store) == QM_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store);
    return system(cmd) == 0 ? 0 : -1;
}

static const uint8_t MSG[] = "From: alice@example.org\n\nbody\0after NUL";

/* The first line of the stored file of id. */
static void first_line(const char *id, char *out, size_t cap)
{
    char path[400];
    snprintf(path, sizeof path, "%s/read/%s", store, id);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
}

static void test_round_trip(void **state)
{
    (void)state;
    qm_read_meta in = { .forged_copy_seen = true }, out;
    snprintf(in.unverified, sizeof in.unverified,
             "sent by SAE SAE_A2 (carol@example.org), but From alice@example.org is SAE SAE_A1 "
             "in your address book");
    assert_int_equal(qm_readstore_put_meta(store, "m1", 2, &in, MSG, sizeof MSG), QM_OK);
    uint8_t *got = NULL;
    size_t len = 0;
    int level = 0;
    assert_int_equal(qm_readstore_get_meta(store, "m1", &level, &out, &got, &len), QM_OK);
    assert_int_equal(level, 2);
    assert_string_equal(out.unverified, in.unverified);
    assert_true(out.forged_copy_seen);
    assert_int_equal(len, sizeof MSG);
    assert_memory_equal(got, MSG, sizeof MSG);
    free(got);
    char line[64];
    first_line("m1", line, sizeof line);
    assert_string_equal(line, "QUMAIL-READ 2 2\n");

    /* the old reader's function sees the same bytes */
    assert_int_equal(qm_readstore_get(store, "m1", &level, &got, &len), QM_OK);
    assert_int_equal(len, sizeof MSG);
    free(got);

    /* only the forged-copy mark */
    qm_read_meta forged = { .forged_copy_seen = true };
    assert_int_equal(qm_readstore_put_meta(store, "m2", 1, &forged, MSG, 4), QM_OK);
    assert_int_equal(qm_readstore_get_meta(store, "m2", &level, &out, &got, &len), QM_OK);
    assert_string_equal(out.unverified, "");
    assert_true(out.forged_copy_seen);
    assert_int_equal(len, 4);
    free(got);

    /* no mark: version 1, as before */
    qm_read_meta none = { 0 };
    assert_int_equal(qm_readstore_put_meta(store, "m3", 1, &none, MSG, 4), QM_OK);
    first_line("m3", line, sizeof line);
    assert_string_equal(line, "QUMAIL-READ 1 1\n");
    assert_int_equal(qm_readstore_get_meta(store, "m3", &level, &out, &got, &len), QM_OK);
    assert_string_equal(out.unverified, "");
    assert_false(out.forged_copy_seen);
    free(got);
}

static void test_controls_replaced(void **state)
{
    (void)state;
    qm_read_meta in = { 0 }, out;
    snprintf(in.unverified, sizeof in.unverified, "sent by SAE X\n, but \x1b]0;x\x07");
    assert_int_equal(qm_readstore_put_meta(store, "c1", 1, &in, MSG, 4), QM_OK);
    uint8_t *got = NULL;
    size_t len = 0;
    assert_int_equal(qm_readstore_get_meta(store, "c1", NULL, &out, &got, &len), QM_OK);
    assert_string_equal(out.unverified, "sent by SAE X?, but ?]0;x?");
    assert_memory_equal(got, MSG, 4);
    free(got);
}

static void write_raw(const char *id, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/read/%s", store, id);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

static void test_hostile_heads(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "QUMAIL-READ 3 1\n\nbody",                       /* unknown version */
        "QUMAIL-READ 2 1\nbody",                         /* no empty line */
        "QUMAIL-READ 2 1\nunverified \n\nbody",          /* empty reason */
        "QUMAIL-READ 2 1\nunverified why",               /* reason not ended */
        "QUMAIL-READ 2 1\nunverified a\tb\n\nbody",      /* control in the reason */
        "QUMAIL-READ 2 1\nforged-copy-seen\nunverified x\n\nbody", /* order */
        "QUMAIL-READ 2 1\nsomething else\n\nbody",       /* unknown line */
        "QUMAIL-READ 2 1\n",                             /* nothing after the head */
        "QUMAIL-READ 2 x\n\nbody",                       /* level */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char id[16];
        snprintf(id, sizeof id, "bad%zu", i);
        write_raw(id, bad[i]);
        qm_read_meta m;
        uint8_t *got = (uint8_t *)"x";
        size_t len = 99;
        qm_err err = qm_readstore_get_meta(store, id, NULL, &m, &got, &len);
        if (err != QM_E_IO || got != NULL || len != 0)
            fail_msg("hostile read-store head %zu accepted (%d)", i, (int)err);
    }
    /* a reason of 600 characters does not fit the metadata: refused */
    char big[700] = "QUMAIL-READ 2 1\nunverified ";
    memset(big + strlen(big), 'a', 600);
    strcat(big, "\n\nbody");
    write_raw("big", big);
    qm_read_meta m;
    uint8_t *got = NULL;
    size_t len = 0;
    assert_int_equal(qm_readstore_get_meta(store, "big", NULL, &m, &got, &len), QM_E_IO);
}

/* What a reader shows without opening the message again: SAE IDs, key
 * IDs (the first 16 and the count), KME, time, attachment names (hostile
 * bytes escaped in the file, back as they were) and sizes (the first 32 and
 * the count). */
static void test_reader_facts(void **state)
{
    (void)state;
    static qm_read_meta in, out;
    memset(&in, 0, sizeof in);
    snprintf(in.sender, sizeof in.sender, "SAE_A1");
    snprintf(in.recipients, sizeof in.recipients, "SAE_B1 SAE_C1");
    snprintf(in.kme, sizeof in.kme, "KME-B");
    in.n_keys = 20;
    for (int i = 0; i < QM_READ_MAX_KEYS; i++)
        snprintf(in.key_ids[i], sizeof in.key_ids[i], "00000000-0000-4000-8000-0000000000%02d", i);
    in.read_at = 1796630400;
    in.n_attachments = 40;
    for (int i = 0; i < QM_READ_MAX_ATTACH; i++) {
        in.attachments[i].size = 300000ULL + (unsigned)i;
        snprintf(in.attachments[i].name, sizeof in.attachments[i].name, "n%d 100%%\n\"\xE2\x80\xAE.bin", i);
    }
    assert_int_equal(qm_readstore_put_meta(store, "f1", 1, &in, MSG, sizeof MSG), QM_OK);
    char line[64];
    first_line("f1", line, sizeof line);
    assert_string_equal(line, "QUMAIL-READ 2 1\n");
    uint8_t *got = NULL;
    size_t len = 0;
    int level = 0;
    assert_int_equal(qm_readstore_get_meta(store, "f1", &level, &out, &got, &len), QM_OK);
    assert_int_equal(len, sizeof MSG);
    assert_memory_equal(got, MSG, sizeof MSG);
    free(got);
    assert_string_equal(out.sender, "SAE_A1");
    assert_string_equal(out.recipients, "SAE_B1 SAE_C1");
    assert_string_equal(out.kme, "KME-B");
    assert_int_equal(out.n_keys, 20);
    assert_string_equal(out.key_ids[15], in.key_ids[15]);
    assert_int_equal(out.read_at, 1796630400);
    assert_int_equal(out.n_attachments, 40);
    for (int i = 0; i < QM_READ_MAX_ATTACH; i++) {
        assert_int_equal(out.attachments[i].size, in.attachments[i].size);
        assert_string_equal(out.attachments[i].name, in.attachments[i].name);
    }
}

static void test_reader_facts_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "QUMAIL-READ 2 1\nkme K\nsender S\n\nbody",              /* order */
        "QUMAIL-READ 2 1\nsender S\nsender T\n\nbody",           /* twice */
        "QUMAIL-READ 2 1\nsender \n\nbody",                       /* empty */
        "QUMAIL-READ 2 1\nsender a b\n\nbody",                    /* space */
        "QUMAIL-READ 2 1\nkeys 0\n\nbody",                        /* no key */
        "QUMAIL-READ 2 1\nkeys 2 a\n\nbody",                      /* one named of two */
        "QUMAIL-READ 2 1\nkeys 1 a b\n\nbody",                    /* two named of one */
        "QUMAIL-READ 2 1\nkeys 1  a\n\nbody",                     /* empty ID */
        "QUMAIL-READ 2 1\nkeys 99999999999999999999 a\n\nbody",   /* overflow */
        "QUMAIL-READ 2 1\nread-at 0\n\nbody",
        "QUMAIL-READ 2 1\nread-at -5\n\nbody",
        "QUMAIL-READ 2 1\nread-at 012\n\nbody",
        "QUMAIL-READ 2 1\nattachments 2\nattachment 1 a\n\nbody", /* one listed of two */
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 a\nattachment 2 b\n\nbody",
        "QUMAIL-READ 2 1\nattachment 1 a\n\nbody",                /* no count */
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 a%00b\n\nbody", /* NUL */
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 a%4\n\nbody",   /* cut escape */
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 a%zz\n\nbody",
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 a b\n\nbody",   /* raw space */
        "QUMAIL-READ 2 1\nattachments 1\nattachment x a\n\nbody",
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1\n\nbody",
        "QUMAIL-READ 2 1\nattachments 1\nattachment 1 \n\nbody",
        "QUMAIL-READ 2 1\nattachments 100001\n\nbody",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        static qm_read_meta m;
        int level;
        size_t off;
        if (qm_readstore_parse_head((const uint8_t *)bad[i], strlen(bad[i]), &level, &m, &off) !=
            QM_E_IO)
            fail_msg("hostile head %zu accepted: %s", i, bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_controls_replaced),
        cmocka_unit_test(test_hostile_heads),
        cmocka_unit_test(test_reader_facts),
        cmocka_unit_test(test_reader_facts_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
