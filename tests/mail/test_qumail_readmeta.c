/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_readmeta.c - the read store's metadata (mail/readstore.h,
 * format version 2): a message whose sender is not verified and one whose
 * forged copy came first keep their marks across put and get; a message
 * without them is still written in version 1 (older stores read the same);
 * terminal controls in the reason never reach the file; and hostile
 * version 2 heads are refused as foreign files (QM_E_IO), never shown.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_controls_replaced),
        cmocka_unit_test(test_hostile_heads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
