/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_usedkeys.c - the used-key store (src/mail/usedkeys.c) and the
 * Level 1 pad plan (qm_pad_plan in src/mail/keyfetch.c).
 *
 * Store: created with mode 0600 in WAL mode; IDs recorded are found again,
 * in either case, also after closing and reopening; IDs not recorded are
 * not; recording twice is harmless; bad IDs are refused and change nothing;
 * a file that is not a store is refused.  Pad plan: sizes within the KME's
 * limits, multiples of 8 bits, summing to L whenever L >= min_key_size,
 * otherwise one minimum key (tail discarded); too many keys is TOO_BIG.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/envelope.h"
#include "mail/keyfetch.h"
#include "mail/usedkeys.h"

static char dir[256];
static char path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/qm-used-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/usedkeys.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const A = "0b4d1d3c-6a43-4d6e-9a0e-1f2e3d4c5b6a";
static const char *const A_UPPER = "0B4D1D3C-6A43-4D6E-9A0E-1F2E3D4C5B6A";
static const char *const B = "11111111-2222-4333-8444-555555555555";
static const char *const C = "99999999-2222-4333-8444-555555555555";

static void test_create_mode_and_wal(void **state)
{
    (void)state;
    qm_usedkeys *u = NULL;
    mode_t old = umask(0);   /* the store must not rely on the umask */
    assert_int_equal(qm_usedkeys_open(path, &u), QM_OK);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    const char *ids[] = { A };
    assert_int_equal(qm_usedkeys_record(u, ids, 1, "SAE_A1"), QM_OK);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &st), 0);   /* WAL mode */
    assert_int_equal(st.st_mode & 0077, 0);
    qm_usedkeys_close(u);
}

static void test_record_and_find(void **state)
{
    (void)state;
    qm_usedkeys *u = NULL;
    assert_int_equal(qm_usedkeys_open(path, &u), QM_OK);
    bool any = true;
    size_t which = 99;
    const char *none[] = { A, B };
    assert_int_equal(qm_usedkeys_any(u, none, 2, &any, &which), QM_OK);
    assert_false(any);
    const char *rec[] = { B };
    assert_int_equal(qm_usedkeys_record(u, rec, 1, "SAE_A1"), QM_OK);
    assert_int_equal(qm_usedkeys_record(u, rec, 1, "SAE_A1"), QM_OK);   /* twice: harmless */
    const char *q[] = { C, A, B };
    assert_int_equal(qm_usedkeys_any(u, q, 3, &any, &which), QM_OK);
    assert_true(any);
    assert_int_equal(which, 2);
    qm_usedkeys_close(u);

    /* durable: still there after reopening, and case does not matter */
    assert_int_equal(qm_usedkeys_open(path, &u), QM_OK);
    const char *rec2[] = { A_UPPER };
    assert_int_equal(qm_usedkeys_record(u, rec2, 1, "SAE_B1"), QM_OK);
    qm_usedkeys_close(u);
    assert_int_equal(qm_usedkeys_open(path, &u), QM_OK);
    const char *qa[] = { A }, *qb[] = { B }, *qc[] = { C };
    assert_int_equal(qm_usedkeys_any(u, qa, 1, &any, NULL), QM_OK);
    assert_true(any);
    assert_int_equal(qm_usedkeys_any(u, qb, 1, &any, NULL), QM_OK);
    assert_true(any);
    assert_int_equal(qm_usedkeys_any(u, qc, 1, &any, NULL), QM_OK);
    assert_false(any);
    qm_usedkeys_close(u);
}

static void test_bad_input(void **state)
{
    (void)state;
    qm_usedkeys *u = NULL;
    assert_int_equal(qm_usedkeys_open("", &u), QM_E_USAGE);
    assert_null(u);
    assert_int_equal(qm_usedkeys_open(path, &u), QM_OK);
    bool any;
    const char *bad[] = { C, "not-a-uuid" };
    assert_int_equal(qm_usedkeys_record(u, bad, 2, "SAE_A1"), QM_E_USAGE);
    const char *qc[] = { C };
    assert_int_equal(qm_usedkeys_any(u, qc, 1, &any, NULL), QM_OK);
    assert_false(any);   /* the bad call recorded nothing, not even the good ID */
    assert_int_equal(qm_usedkeys_any(u, bad, 2, &any, NULL), QM_E_USAGE);
    qm_usedkeys_close(u);

    /* a file that is not a store */
    char junk[320];
    snprintf(junk, sizeof junk, "%s/junk", dir);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("this is not an SQLite database, just some text long enough to be read\n", f);
    fclose(f);
    assert_int_equal(qm_usedkeys_open(junk, &u), QM_E_IO);
    assert_null(u);
    snprintf(junk, sizeof junk, "%s/no/such/dir/db", dir);
    assert_int_equal(qm_usedkeys_open(junk, &u), QM_E_IO);
}

/* ---- pad plan ------------------------------------------------------------ */

static uint64_t plan_sum(uint64_t L, int32_t min_bits, int32_t max_bits, size_t *n,
                         uint32_t *sizes, size_t cap)
{
    assert_int_equal(qm_pad_plan(L, min_bits, max_bits, sizes, cap, n), QM_OK);
    uint64_t sum = 0;
    for (size_t i = 0; i < *n; i++) {
        assert_true(sizes[i] * 8 >= (uint32_t)min_bits);
        assert_true(sizes[i] * 8 <= (uint32_t)max_bits);
        assert_true(sizes[i] > 0);
        sum += sizes[i];
    }
    if (*n > 0) /* exactly enough: without the last key the pad is short */
        assert_true(sum - sizes[*n - 1] < L);
    return sum;
}

static void test_pad_plan(void **state)
{
    (void)state;
    static uint32_t sizes[QM_MAX_PAD_KEYS];
    size_t n;
    /* testbed limits: 64..65536 bits */
    assert_int_equal(plan_sum(0, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 0);
    assert_int_equal(n, 0);
    assert_int_equal(plan_sum(1, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 8);   /* tail discarded */
    assert_int_equal(n, 1);
    assert_int_equal(plan_sum(8, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 8);
    assert_int_equal(plan_sum(8192, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 8192);
    assert_int_equal(n, 1);
    assert_int_equal(plan_sum(8193, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 8194);
    assert_int_equal(n, 2);   /* two equal keys of 4097 bytes, one call, 1 byte discarded */
    assert_int_equal(sizes[0], 4097);
    assert_int_equal(sizes[1], 4097);
    assert_int_equal(plan_sum(100 * 1024, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 100 * 1024 + 1);
    assert_int_equal(n, 13);  /* 13 x 7877 bytes */
    assert_int_equal(plan_sum(5u << 20, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS), 5u << 20);
    assert_int_equal(n, 640);
    /* one size, and fewer than n bytes (or, below the minimum, minb bytes) wasted */
    for (uint64_t L = 1; L < 40000; L += 37) {
        uint64_t sum = plan_sum(L, 64, 65536, &n, sizes, QM_MAX_PAD_KEYS);
        for (size_t i = 1; i < n; i++)
            assert_int_equal(sizes[i], sizes[0]);
        assert_true(L < 8 ? sum == 8 : sum - L < n);
    }
    /* odd limits: 70..1001 bits -> 9..125 bytes */
    for (uint64_t L = 9; L < 5000; L++) {
        uint64_t sum = plan_sum(L, 70, 1001, &n, sizes, QM_MAX_PAD_KEYS);
        assert_true(sum >= L && sum - L < n);
    }
    /* min == max: the tail is discarded */
    assert_int_equal(plan_sum(12, 64, 64, &n, sizes, QM_MAX_PAD_KEYS), 16);
    /* limits that allow nothing, and too many keys */
    assert_int_equal(qm_pad_plan(100, 128, 64, sizes, QM_MAX_PAD_KEYS, &n), QM_E_KME);
    assert_int_equal(qm_pad_plan(100, 0, 7, sizes, QM_MAX_PAD_KEYS, &n), QM_E_KME);
    assert_int_equal(qm_pad_plan(100, 64, 64, sizes, 12, &n), QM_E_TOO_BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_mode_and_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test(test_pad_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
