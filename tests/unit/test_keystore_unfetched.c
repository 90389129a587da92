/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore_unfetched.c - the key store's per-slave count of bits held
 * for a slave that has not fetched them (src/kme/keystore_unfetched.c) and
 * the slave_unfetched_bits limit it enforces: a master that keeps calling
 * enc_keys for a slave that never calls dec_keys is refused (KS_LIMIT,
 * nothing taken from the pool, nothing recorded) once the slave holds the
 * limit, and goes on as soon as the slave fetches or the keys expire; the
 * count follows multicast, refusals, expiry and a reopen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kme/keystore.h"
#include "keystore_fixture.h"

#define KEY_BITS 256u

typedef ksf fixture; /* one store: path[0] */

static keystore *open_limited(const fixture *f, uint64_t limit, int64_t ttl_s)
{
    ks_options o = {.path = f->path[0], .sync = KS_SYNC_NORMAL, .local_cap_bits = 1u << 20,
                    .local_rate_bps = 0, .key_ttl_s = ttl_s, .slave_unfetched_bits = limit};
    return ksf_open_ok(&o);
}

/* n keys master -> slaves; on KS_OK their IDs go to ids (n entries). */
static ks_result enc(keystore *ks, const char *master, const char *const *slaves, size_t ns,
                     uint32_t n, uint8_t (*ids)[16])
{
    ks_batch b;
    ks_result r = ks_local_enc(ks, master, slaves, ns, n, KEY_BITS, &b);
    if (r == KS_OK) {
        for (size_t i = 0; i < b.n && ids; i++)
            memcpy(ids[i], b.keys[i].id, 16);
        ks_batch_free(&b);
    }
    return r;
}

static const char *const BOB[] = {"bob"};

/* The attack: alice keeps taking keys for bob, who never fetches. */
static void test_refused_at_limit_until_fetched(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, 4 * KEY_BITS, 3600);
    uint8_t ids[4][16];
    assert_int_equal(ks_unfetched_limit(ks), 4 * KEY_BITS);
    assert_int_equal(enc(ks, "alice", BOB, 1, 3, ids), KS_OK);
    assert_int_equal(ksf_held(ks, "bob"), 3 * KEY_BITS);

    ks_stats before, after;
    assert_int_equal(ks_stats_get(ks, &before), KS_OK);
    assert_int_equal(enc(ks, "alice", BOB, 1, 2, NULL), KS_LIMIT);      /* 5 > 4 */
    assert_int_equal(enc(ks, "mallory", BOB, 1, 2, NULL), KS_LIMIT);    /* any master */
    assert_int_equal(ks_stats_get(ks, &after), KS_OK);
    assert_int_equal(after.local_available_bits, before.local_available_bits);
    assert_int_equal(after.stored_keys, before.stored_keys);
    assert_int_equal(ksf_held(ks, "bob"), 3 * KEY_BITS);

    assert_int_equal(enc(ks, "alice", BOB, 1, 1, &ids[3]), KS_OK);      /* exactly 4 */
    assert_int_equal(enc(ks, "alice", BOB, 1, 1, NULL), KS_LIMIT);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", ids[0]), KS_OK);
    assert_int_equal(ksf_held(ks, "bob"), 3 * KEY_BITS);
    assert_int_equal(enc(ks, "alice", BOB, 1, 1, NULL), KS_OK);
    assert_int_equal(ksf_held(ks, "bob"), 4 * KEY_BITS);
    ks_close(ks);
}

/* A request larger than the limit can never pass, and the refusal changes
 * nothing. */
static void test_request_above_limit(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, 2 * KEY_BITS, 3600);
    assert_int_equal(enc(ks, "alice", BOB, 1, 3, NULL), KS_LIMIT);
    assert_int_equal(ksf_held(ks, "bob"), 0);
    assert_int_equal(ksf_stored(ks), 0);
    ks_close(ks);
}

/* Each slave of a multicast is counted apart: carol fetching does not free
 * bob, and bob's limit does not stop keys for carol alone. */
static void test_multicast_counts_each_slave(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, 2 * KEY_BITS, 3600);
    static const char *const both[] = {"bob", "carol"};
    static const char *const carol[] = {"carol"};
    uint8_t ids[2][16];
    assert_int_equal(enc(ks, "alice", both, 2, 2, ids), KS_OK);
    assert_int_equal(ksf_held(ks, "bob"), 2 * KEY_BITS);
    assert_int_equal(ksf_held(ks, "carol"), 2 * KEY_BITS);
    assert_int_equal(ksf_dec1(ks, "alice", "carol", ids[0]), KS_OK);
    assert_int_equal(ksf_dec1(ks, "alice", "carol", ids[1]), KS_OK);
    assert_int_equal(ksf_held(ks, "carol"), 0);
    assert_int_equal(ksf_held(ks, "bob"), 2 * KEY_BITS);
    assert_int_equal(enc(ks, "alice", both, 2, 1, NULL), KS_LIMIT);   /* bob is full */
    assert_int_equal(enc(ks, "alice", carol, 1, 2, NULL), KS_OK);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", ids[0]), KS_OK);
    assert_int_equal(ksf_dec1(ks, "alice", "bob", ids[1]), KS_OK);       /* rows erased */
    assert_int_equal(ksf_held(ks, "bob"), 0);
    assert_int_equal(ksf_stored(ks), 2);
    ks_close(ks);
}

/* Expired keys no longer count; the count is rebuilt at reopen. */
static void test_expiry_and_reopen(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, 4 * KEY_BITS, 1);
    assert_int_equal(enc(ks, "alice", BOB, 1, 4, NULL), KS_OK);
    ks_close(ks);

    ks = open_limited(f, 4 * KEY_BITS, 1);
    assert_int_equal(ksf_held(ks, "bob"), 4 * KEY_BITS);
    assert_int_equal(enc(ks, "alice", BOB, 1, 1, NULL), KS_LIMIT);
    ks_testing_advance_clock(ks, 1100);
    assert_int_equal(ks_maintain(ks), 4);
    assert_int_equal(ksf_held(ks, "bob"), 0);
    assert_int_equal(enc(ks, "alice", BOB, 1, 4, NULL), KS_OK);
    ks_close(ks);
}

/* Limit 0: never refused, and nothing is counted (no cost). */
static void test_no_limit(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, 0, 3600);
    assert_int_equal(enc(ks, "alice", BOB, 1, 64, NULL), KS_OK);
    assert_int_equal(enc(ks, "alice", BOB, 1, 64, NULL), KS_OK);
    assert_int_equal(ksf_held(ks, "bob"), 0);
    assert_int_equal(ksf_stored(ks), 128);
    ks_close(ks);
}

/* ---- concurrency: the count follows the shared transaction ------------- */

#define TH 6
#define TH_ITERS 60

typedef struct worker {
    keystore *ks;
    unsigned seed;
    uint64_t bob, carol; /* bits this thread left unfetched */
    int fail;
} worker;

/* Keys for bob, or for bob and carol; fetch some at once, some in a batch
 * that a bad ID fails as a whole (nothing fetched, nothing counted off). */
static void *worker_main(void *arg)
{
    worker *w = arg;
    static const char *const both[] = {"bob", "carol"};
    for (int i = 0; i < TH_ITERS; i++) {
        uint8_t ids[3][16];
        size_t ns = 1 + (size_t)(rand_r(&w->seed) % 2);
        if (enc(w->ks, "alice", both, ns, 2, ids) != KS_OK) {
            w->fail++;
            continue;
        }
        w->bob += 2 * KEY_BITS;
        w->carol += ns == 2 ? 2 * KEY_BITS : 0;
        memset(ids[2], 0xee, 16); /* no such key */
        ks_batch b;
        if (ks_dec(w->ks, "alice", "bob", (const uint8_t (*)[16])ids[1], 2, &b) == KS_OK) {
            ks_batch_free(&b);
            w->fail++;
        }
        if (i % 3 != 0)
            continue;
        if (ksf_dec1(w->ks, "alice", "bob", ids[0]) != KS_OK) {
            w->fail++;
            continue;
        }
        w->bob -= KEY_BITS;
    }
    return NULL;
}

static void test_concurrent_and_rebuilt(void **state)
{
    fixture *f = *state;
    keystore *ks = open_limited(f, UINT64_C(1) << 40, 3600);
    worker w[TH];
    pthread_t th[TH];
    for (int i = 0; i < TH; i++) {
        w[i] = (worker){.ks = ks, .seed = 7u + (unsigned)i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    uint64_t bob = 0, carol = 0;
    for (int i = 0; i < TH; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].fail, 0);
        bob += w[i].bob;
        carol += w[i].carol;
    }
    assert_int_equal(ksf_held(ks, "bob"), bob);
    assert_int_equal(ksf_held(ks, "carol"), carol);
    ks_close(ks);
    ks = open_limited(f, UINT64_C(1) << 40, 3600); /* counted again from the rows */
    assert_int_equal(ksf_held(ks, "bob"), bob);
    assert_int_equal(ksf_held(ks, "carol"), carol);
    ks_close(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KSF_TEST(test_refused_at_limit_until_fetched),
        KSF_TEST(test_concurrent_and_rebuilt),
        KSF_TEST(test_request_above_limit),
        KSF_TEST(test_multicast_counts_each_slave),
        KSF_TEST(test_expiry_and_reopen),
        KSF_TEST(test_no_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
