/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore.c - unit tests of the durable key store (src/kme/keystore_*.c).
 *
 * Every test runs against a fresh database in its own temporary directory.
 * Besides the ETSI semantics (once per slave, only named slaves, all or
 * nothing, multicast) they check persistence across reopen, the lock file,
 * pool exhaustion and refill, expiry, both sync modes under thread races,
 * and that consumed material is gone from the database and WAL files.
 * Two throughput figures are printed for information only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kme/keystore.h"
#include "keystore_fixture.h"

typedef ksf fixture; /* one store: path[0] */

static keystore *open_opts(const fixture *f, ks_sync sync, uint64_t cap, uint64_t rate,
                           int64_t ttl, unsigned maint_ms)
{
    ks_options o = {
        .path = f->path[0], .sync = sync, .local_cap_bits = cap, .local_rate_bps = rate,
        .key_ttl_s = ttl, .maintenance_ms = maint_ms,
    };
    return ksf_open(&o);
}

static keystore *open_default(const fixture *f)
{
    return open_opts(f, KS_SYNC_NORMAL, 1u << 20, 0, 3600, 0);
}

static const char *const SL_B[] = {"bob"};

static uint64_t level(keystore *ks)
{
    ks_stats st;
    assert_int_equal(ks_stats_get(ks, &st), KS_OK);
    return st.local_available_bits;
}

/* Keep the IDs and material of a batch after freeing it. */
typedef struct saved {
    uint8_t id[16];
    uint8_t mat[64];
    size_t len;
} saved;

static void save(const ks_batch *b, saved *s)
{
    for (size_t i = 0; i < b->n; i++) {
        memcpy(s[i].id, b->keys[i].id, 16);
        s[i].len = b->keys[i].size_bits / 8;
        assert_true(s[i].len <= sizeof s[i].mat);
        memcpy(s[i].mat, b->keys[i].material, s[i].len);
    }
}

static void enc_saved(keystore *ks, const char *master, const char *const *slaves, size_t ns,
                      uint32_t n, saved *out)
{
    ks_batch b;
    assert_int_equal(ks_local_enc(ks, master, slaves, ns, n, 256, &b), KS_OK);
    assert_int_equal(b.n, n);
    save(&b, out);
    ks_batch_free(&b);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- open, reopen, lock ------------------------------------------------- */

static void test_open_create(void **state)
{
    fixture *f = *state;
    keystore *ks = open_opts(f, KS_SYNC_NORMAL, 4096, 10, 60, 0);
    assert_non_null(ks);
    ks_stats st;
    assert_int_equal(ks_stats_get(ks, &st), KS_OK);
    assert_int_equal(st.local_cap_bits, 4096);
    assert_int_equal(st.local_available_bits, 4096); /* a new pool starts full */
    assert_int_equal(st.stored_keys, 0);
    struct stat sb;
    assert_int_equal(stat(f->path[0], &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0); /* holds key material: private */
    ks_close(ks);
}

static void test_reopen_persists(void **state)
{
    fixture *f = *state;
    saved k[2];
    keystore *ks = open_opts(f, KS_SYNC_NORMAL, 4096, 1, 3600, 0);
    assert_non_null(ks);
    enc_saved(ks, "alice", SL_B, 1, 2, k);
    assert_int_equal(level(ks), 4096 - 512);
    ks_close(ks);

    ks = open_opts(f, KS_SYNC_NORMAL, 4096, 1, 3600, 0);
    assert_non_null(ks);
    assert_int_equal(ksf_stored(ks), 2);
    uint64_t lv = level(ks);
    assert_true(lv >= 4096 - 512 && lv < 4096 - 512 + 64); /* 1 bit/s refill */
    for (int i = 0; i < 2; i++) {
        ks_batch b;
        const uint8_t (*ids)[16] = (const uint8_t (*)[16])k[i].id;
        assert_int_equal(ks_dec(ks, "alice", "bob", ids, 1, &b), KS_OK);
        assert_memory_equal(b.keys[0].material, k[i].mat, 32);
        ks_batch_free(&b);
    }
    ks_close(ks);

    ks = open_opts(f, KS_SYNC_FULL, 4096, 1, 3600, 0); /* consumption persisted too */
    assert_non_null(ks);
    assert_int_equal(ksf_stored(ks), 0);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k[0].id), KS_NOT_FOUND);
    ks_close(ks);
}

static void test_second_open_fails(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    ks_options o = {.path = f->path[0], .local_cap_bits = 1024, .key_ttl_s = 60};
    keystore *a = ks_open(&o, err, sizeof err);
    assert_non_null(a);
    keystore *b = ks_open(&o, err, sizeof err);
    assert_null(b);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, f->path[0]));
    ks_close(a);
    b = ks_open(&o, err, sizeof err); /* the lock went with the first handle */
    assert_non_null(b);
    ks_close(b);
}

static void test_open_bad_path(void **state)
{
    (void)state;
    char err[256] = "";
    ks_options o = {.path = "/nonexistent-dir/x/kme.db", .local_cap_bits = 1024};
    assert_null(ks_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x/kme.db"));
}

/* ---- enc / dec semantics ------------------------------------------------ */

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    assert_non_null(ks);
    ks_batch e, d;
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 3, 256, &e), KS_OK);
    assert_int_equal(e.n, 3);
    assert_memory_not_equal(e.keys[0].id, e.keys[1].id, 16);
    assert_int_equal(e.keys[0].id[6] >> 4, 4); /* UUID version 4 */
    assert_memory_not_equal(e.keys[0].material, e.keys[1].material, 32);
    assert_int_equal(ksf_stored(ks), 3);

    uint8_t ids[3][16]; /* ask in another order: answers follow the request */
    memcpy(ids[0], e.keys[2].id, 16);
    memcpy(ids[1], e.keys[0].id, 16);
    memcpy(ids[2], e.keys[1].id, 16);
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])ids, 3, &d), KS_OK);
    assert_int_equal(d.n, 3);
    const int map[3] = {2, 0, 1};
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(d.keys[i].id, ids[i], 16);
        assert_int_equal(d.keys[i].size_bits, 256);
        assert_memory_equal(d.keys[i].material, e.keys[map[i]].material, 32);
    }
    assert_int_equal(ksf_stored(ks), 0);
    ks_batch_free(&e);
    ks_batch_free(&d);
    assert_null(d.keys);
    ks_close(ks);
}

static void test_second_dec_not_found(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    saved k;
    enc_saved(ks, "alice", SL_B, 1, 1, &k);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_OK);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_NOT_FOUND);
    ks_close(ks);
}

static void test_wrong_slave_unauthorized(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    saved k;
    enc_saved(ks, "alice", SL_B, 1, 1, &k);
    assert_int_equal(ksf_dec1(ks, "alice", "eve", k.id), KS_UNAUTHORIZED);
    /* eve under another master name learns nothing */
    assert_int_equal(ksf_dec1(ks, "mallory", "eve", k.id), KS_NOT_FOUND);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_OK); /* untouched */
    ks_close(ks);
}

static void test_wrong_master_not_found(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    saved k;
    enc_saved(ks, "alice", SL_B, 1, 1, &k);
    assert_int_equal(ksf_dec1(ks, "carol", "bob", k.id), KS_NOT_FOUND);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_OK);
    ks_close(ks);
}

static void test_multicast(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    static const char *const sl[] = {"bob", "carol", "dave"};
    saved k;
    enc_saved(ks, "alice", sl, 3, 1, &k);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ksf_stored(ks), 1);
        ks_batch b;
        const uint8_t (*ids)[16] = (const uint8_t (*)[16])k.id;
        assert_int_equal(ks_dec(ks, "alice", sl[i], ids, 1, &b), KS_OK);
        assert_memory_equal(b.keys[0].material, k.mat, 32);
        ks_batch_free(&b);
        assert_int_equal(ksf_dec1(ks, "alice", sl[i], k.id), KS_NOT_FOUND);
    }
    assert_int_equal(ksf_stored(ks), 0); /* erased after the last slave */
    assert_int_equal(ksf_dec1(ks, "alice", "eve", k.id), KS_NOT_FOUND);
    ks_close(ks);
}

static void test_batch_all_or_nothing(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    saved good, other;
    enc_saved(ks, "alice", SL_B, 1, 1, &good);
    static const char *const sl_c[] = {"carol"};
    enc_saved(ks, "alice", sl_c, 1, 1, &other);
    uint8_t ids[2][16];
    ks_batch b;

    memcpy(ids[0], good.id, 16);
    memset(ids[1], 0x5a, 16); /* unknown */
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])ids, 2, &b),
                     KS_NOT_FOUND);
    assert_null(b.keys);

    /* 401 wins over 400, in either order */
    memcpy(ids[0], other.id, 16);
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])ids, 2, &b),
                     KS_UNAUTHORIZED);
    memcpy(ids[1], other.id, 16);
    memset(ids[0], 0x5a, 16);
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])ids, 2, &b),
                     KS_UNAUTHORIZED);

    /* duplicate ID in one call: refused, nothing consumed */
    memcpy(ids[0], good.id, 16);
    memcpy(ids[1], good.id, 16);
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])ids, 2, &b),
                     KS_NOT_FOUND);

    assert_int_equal(ksf_stored(ks), 2);
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])good.id, 1, &b), KS_OK);
    assert_memory_equal(b.keys[0].material, good.mat, 32);
    ks_batch_free(&b);
    assert_int_equal(ksf_dec1(ks, "alice", "carol", other.id), KS_OK);
    ks_close(ks);
}

static void test_invalid_args(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    ks_batch b;
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 0, &b), KS_ERROR);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 252, &b), KS_ERROR);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 0, 256, &b), KS_ERROR);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 0, 1, 256, &b), KS_ERROR);
    assert_int_equal(ks_local_enc(ks, NULL, SL_B, 1, 1, 256, &b), KS_ERROR);
    uint8_t id[1][16] = {{0}};
    assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])id, 0, &b), KS_ERROR);
    assert_int_equal(ksf_stored(ks), 0);
    assert_int_equal(level(ks), 1u << 20);
    ks_close(ks);
}

/* ---- pool, expiry ------------------------------------------------------- */

static void test_pool_exhaustion_and_refill(void **state)
{
    fixture *f = *state;
    keystore *ks = open_opts(f, KS_SYNC_NORMAL, 1024, 100, 3600, 0);
    ks_batch b;
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 5, 256, &b), KS_EMPTY);
    assert_null(b.keys);
    assert_int_equal(level(ks), 1024);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 4, 256, &b), KS_OK);
    ks_batch_free(&b);
    assert_true(level(ks) < 256);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 256, &b), KS_EMPTY);
    assert_int_equal(ksf_stored(ks), 4);

    ks_testing_advance_clock(ks, 3000); /* +300 bits */
    uint64_t lv = level(ks);
    assert_true(lv >= 300 && lv < 300 + 256);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 256, &b), KS_OK);
    ks_batch_free(&b);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 256, &b), KS_EMPTY);

    ks_testing_advance_clock(ks, 3600 * 1000); /* refill stops at the cap */
    assert_int_equal(level(ks), 1024);
    ks_close(ks);

    /* rate 0: refilled instantly, but never more than the cap per call */
    ks = open_opts(f, KS_SYNC_NORMAL, 1024, 0, 3600, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 4, 256, &b), KS_OK);
        ks_batch_free(&b);
    }
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 1032, &b), KS_EMPTY);
    assert_int_equal(level(ks), 1024);
    ks_close(ks);
}

static void test_ttl_expiry(void **state)
{
    fixture *f = *state;
    keystore *ks = open_opts(f, KS_SYNC_NORMAL, 1u << 20, 0, 1, 0);
    saved k[3];
    static const char *const sl[] = {"bob", "carol"};
    enc_saved(ks, "alice", sl, 2, 3, k);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k[2].id), KS_OK); /* carol still owed */
    assert_int_equal(ks_maintain(ks), 0);
    assert_int_equal(ksf_stored(ks), 3);

    ks_testing_advance_clock(ks, 1100);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k[0].id), KS_NOT_FOUND);  /* expired */
    assert_int_equal(ksf_dec1(ks, "alice", "eve", k[0].id), KS_NOT_FOUND);  /* not 401 */
    assert_int_equal(ksf_stored(ks), 3);
    assert_int_equal(ks_maintain(ks), 3);
    assert_int_equal(ksf_stored(ks), 0);
    assert_int_equal(ks_maintain(ks), 0);
    ks_close(ks);
}

static void test_ttl_real_time(void **state)
{
    fixture *f = *state;
    keystore *ks = open_opts(f, KS_SYNC_NORMAL, 1u << 20, 0, 1, 0);
    saved k;
    enc_saved(ks, "alice", SL_B, 1, 1, &k);
    usleep(1100 * 1000);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_NOT_FOUND);
    assert_int_equal(ks_maintain(ks), 1);
    ks_close(ks);
}

static void test_maintenance_thread(void **state)
{
    fixture *f = *state;
    keystore *ks = open_opts(f, KS_SYNC_FULL, 1u << 20, 0, 1, 20);
    assert_non_null(ks);
    saved k[4];
    enc_saved(ks, "alice", SL_B, 1, 4, k);
    ks_testing_advance_clock(ks, 2000);
    for (int i = 0; i < 200 && ksf_stored(ks) != 0; i++)
        usleep(10 * 1000);
    assert_int_equal(ksf_stored(ks), 0);
    ks_close(ks); /* joins the thread */
}

/* ---- concurrency -------------------------------------------------------- */

#define RACE_THREADS 8
#define RACE_ITERS 60

typedef struct race {
    keystore *ks;
    int idx;
    uint8_t (*ids)[16]; /* RACE_ITERS * 3 slots per thread */
    int count;
    atomic_int *failures;
    pthread_barrier_t *bar;
} race;

static void *race_main(void *arg)
{
    race *r = arg;
    static const char *const sl[] = {"bob"};
    pthread_barrier_wait(r->bar);
    for (int i = 0; i < RACE_ITERS; i++) {
        uint32_t n = 1 + (uint32_t)(i % 3);
        ks_batch e, d;
        if (ks_local_enc(r->ks, "alice", sl, 1, n, 256, &e) != KS_OK) {
            atomic_fetch_add(r->failures, 1);
            continue;
        }
        uint8_t ids[3][16];
        for (uint32_t j = 0; j < n; j++) {
            memcpy(ids[j], e.keys[j].id, 16);
            memcpy(r->ids[r->count++], e.keys[j].id, 16);
        }
        if (ks_dec(r->ks, "alice", "bob", (const uint8_t (*)[16])ids, n, &d) != KS_OK) {
            atomic_fetch_add(r->failures, 1);
        } else {
            for (uint32_t j = 0; j < n; j++)
                if (memcmp(d.keys[j].material, e.keys[j].material, 32) != 0)
                    atomic_fetch_add(r->failures, 1);
            ks_batch_free(&d);
        }
        ks_batch_free(&e);
    }
    return NULL;
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void race_mode(const fixture *f, ks_sync mode)
{
    keystore *ks = open_opts(f, mode, 1u << 24, 0, 3600, 0);
    assert_non_null(ks);
    uint8_t (*all)[16] = calloc(RACE_THREADS * RACE_ITERS * 3, 16);
    assert_non_null(all);
    pthread_t th[RACE_THREADS];
    race r[RACE_THREADS];
    atomic_int failures = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, RACE_THREADS);
    double t0 = now_s();
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i] = (race){.ks = ks, .idx = i, .ids = all + i * RACE_ITERS * 3,
                      .failures = &failures, .bar = &bar};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        total += r[i].count;
    }
    double dt = now_s() - t0;
    pthread_barrier_destroy(&bar);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(total, RACE_THREADS * RACE_ITERS * 2); /* n = 1,2,3 cycling */

    /* gather the IDs contiguously, then look for a duplicate */
    uint8_t (*flat)[16] = calloc((size_t)total, 16);
    assert_non_null(flat);
    int k = 0;
    for (int i = 0; i < RACE_THREADS; i++)
        for (int j = 0; j < r[i].count; j++)
            memcpy(flat[k++], r[i].ids[j], 16);
    qsort(flat, (size_t)total, 16, cmp16);
    for (int i = 1; i < total; i++)
        assert_memory_not_equal(flat[i - 1], flat[i], 16);
    assert_int_equal(ksf_stored(ks), 0);
    printf("[info] %s sync, %d threads: %.0f enc+dec pairs/s (%d keys)\n",
           mode == KS_SYNC_FULL ? "full" : "normal", RACE_THREADS,
           RACE_THREADS * RACE_ITERS / dt, total);
    free(flat);
    free(all);
    ks_close(ks);
}

static void test_race_full_sync(void **state)
{
    race_mode(*state, KS_SYNC_FULL);
}

static void test_race_normal_sync(void **state)
{
    race_mode(*state, KS_SYNC_NORMAL);
}

typedef struct same_key {
    keystore *ks;
    const uint8_t *id;
    pthread_barrier_t *bar;
    atomic_int *ok, *not_found, *other;
} same_key;

static void *same_key_main(void *arg)
{
    same_key *s = arg;
    pthread_barrier_wait(s->bar);
    ks_result r = ksf_dec1(s->ks, "alice", "bob", s->id);
    atomic_fetch_add(r == KS_OK ? s->ok : r == KS_NOT_FOUND ? s->not_found : s->other, 1);
    return NULL;
}

static void same_key_mode(const fixture *f, ks_sync mode)
{
    keystore *ks = open_opts(f, mode, 1u << 20, 0, 3600, 0);
    assert_non_null(ks);
    for (int round = 0; round < 5; round++) {
        saved k;
        enc_saved(ks, "alice", SL_B, 1, 1, &k);
        atomic_int ok = 0, nf = 0, other = 0;
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, RACE_THREADS);
        pthread_t th[RACE_THREADS];
        same_key s = {.ks = ks, .id = k.id, .bar = &bar, .ok = &ok, .not_found = &nf,
                      .other = &other};
        for (int i = 0; i < RACE_THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, same_key_main, &s), 0);
        for (int i = 0; i < RACE_THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        assert_int_equal(atomic_load(&ok), 1);
        assert_int_equal(atomic_load(&nf), RACE_THREADS - 1);
        assert_int_equal(atomic_load(&other), 0);
    }
    ks_close(ks);
}

static void test_same_key_once(void **state)
{
    same_key_mode(*state, KS_SYNC_NORMAL);
    same_key_mode(*state, KS_SYNC_FULL);
}

/* ---- erasure from the files --------------------------------------------- */

static void secure_delete_mode(const fixture *f, ks_sync mode)
{
    keystore *ks = open_opts(f, mode, 1u << 20, 0, 3600, 0);
    assert_non_null(ks);
    ks_batch small, big, d;
    static const char *const sl[] = {"bob", "carol"};
    assert_int_equal(ks_local_enc(ks, "alice", sl, 2, 1, 256, &small), KS_OK);
    assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 65536, &big), KS_OK);
    uint8_t m1[32], m2[32], m3[32];
    memcpy(m1, small.keys[0].material, 32);
    memcpy(m2, big.keys[0].material, 32);         /* head of an overflowing blob */
    memcpy(m3, big.keys[0].material + 8000, 32);  /* and from its tail */

    /* positive control: while stored, the bytes are findable */
    assert_true(ks_maintain(ks) >= 0);
    assert_true(ksf_store_contains(f->path[0], m1, 32));
    assert_true(ksf_store_contains(f->path[0], m2, 32));
    assert_true(ksf_store_contains(f->path[0], m3, 32));

    const uint8_t (*id1)[16] = (const uint8_t (*)[16])small.keys[0].id;
    const uint8_t (*id2)[16] = (const uint8_t (*)[16])big.keys[0].id;
    assert_int_equal(ks_dec(ks, "alice", "bob", id1, 1, &d), KS_OK);
    ks_batch_free(&d);
    assert_int_equal(ks_dec(ks, "alice", "carol", id1, 1, &d), KS_OK);
    ks_batch_free(&d);
    assert_int_equal(ks_dec(ks, "alice", "bob", id2, 1, &d), KS_OK);
    ks_batch_free(&d);
    ks_batch_free(&small);
    ks_batch_free(&big);
    assert_true(ks_maintain(ks) >= 0);
    assert_false(ksf_store_contains(f->path[0], m1, 32));
    assert_false(ksf_store_contains(f->path[0], m2, 32));
    assert_false(ksf_store_contains(f->path[0], m3, 32));
    ks_close(ks);
    assert_false(ksf_store_contains(f->path[0], m1, 32));
    assert_false(ksf_store_contains(f->path[0], m2, 32));
}

static void test_secure_delete(void **state)
{
    secure_delete_mode(*state, KS_SYNC_NORMAL);
    secure_delete_mode(*state, KS_SYNC_FULL);
}

/* WAL growth triggers a checkpoint by itself (no maintenance call): with a
 * bound of 1 MiB (the default is 16 MiB, too much traffic for a unit
 * test), 3000 pairs write several MiB of frames, yet the file stays small. */
static void test_wal_bounded(void **state)
{
    fixture *f = *state;
    char err[256];
    ks_options o = {
        .path = f->path[0], .sync = KS_SYNC_NORMAL, .local_cap_bits = 1u << 20, .key_ttl_s = 3600,
        .wal_limit_bytes = 1024 * 1024,
    };
    keystore *ks = ks_open(&o, err, sizeof err);
    assert_non_null(ks);
    saved k;
    char wal[160];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", f->path[0]);
    for (int i = 0; i < 3000; i++) {
        enc_saved(ks, "alice", SL_B, 1, 1, &k);
        assert_int_equal(ksf_dec1(ks, "alice", "bob", k.id), KS_OK);
    }
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size < 3 * 1024 * 1024);
    ks_close(ks);
}

/* ---- informative throughput -------------------------------------------- */

static void test_throughput_single_thread(void **state)
{
    fixture *f = *state;
    keystore *ks = open_default(f);
    const int n = getenv("KS_BENCH_PAIRS") ? atoi(getenv("KS_BENCH_PAIRS")) : 5000;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ks_batch e, d;
        assert_int_equal(ks_local_enc(ks, "alice", SL_B, 1, 1, 256, &e), KS_OK);
        assert_int_equal(ks_dec(ks, "alice", "bob", (const uint8_t (*)[16])e.keys[0].id, 1, &d),
                         KS_OK);
        ks_batch_free(&d);
        ks_batch_free(&e);
    }
    double dt = now_s() - t0;
    printf("[info] normal sync, 1 thread: %.0f enc+dec pairs/s (%.1f us per pair)\n",
           n / dt, dt / n * 1e6);
    assert_int_equal(ksf_stored(ks), 0);
    ks_close(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KSF_TEST(test_open_create),
        KSF_TEST(test_reopen_persists),
        KSF_TEST(test_second_open_fails),
        cmocka_unit_test(test_open_bad_path),
        KSF_TEST(test_roundtrip),
        KSF_TEST(test_second_dec_not_found),
        KSF_TEST(test_wrong_slave_unauthorized),
        KSF_TEST(test_wrong_master_not_found),
        KSF_TEST(test_multicast),
        KSF_TEST(test_batch_all_or_nothing),
        KSF_TEST(test_invalid_args),
        KSF_TEST(test_pool_exhaustion_and_refill),
        KSF_TEST(test_ttl_expiry),
        KSF_TEST(test_ttl_real_time),
        KSF_TEST(test_maintenance_thread),
        KSF_TEST(test_race_full_sync),
        KSF_TEST(test_race_normal_sync),
        KSF_TEST(test_same_key_once),
        KSF_TEST(test_secure_delete),
        KSF_TEST(test_wal_bounded),
        KSF_TEST(test_throughput_single_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
