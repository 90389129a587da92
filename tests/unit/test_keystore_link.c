/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore_link.c - unit tests of QKD link blocks and remote pairs in
 * the key store (src/kme/keystore_blocks.c, keystore_remote_*.c, docs/kme-pair.md).
 *
 * Two KMEs are simulated by two key stores fed the same blocks: "A" owns
 * the blocks it allocates from (own = true), "B" stores them as the peer's
 * (own = false).  A reservation made at A is applied at B and ks_dec at B
 * must return exactly A's material.  The tests try to make a bit go out
 * twice (overlaps, duplicates, foreign blocks, replays, voids, threads),
 * check the pool accounting after every step, persistence across reopen,
 * the migrations from schema versions 1 and 2 (chunk rows), that consumed
 * material is zero in its block's blob (block_material) and leaves the
 * database and WAL files.  One throughput figure is informative only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/uuid.h"
#include "kme/keystore.h"
#include "keystore_fixture.h"

#define CAP (1ull << 30)

typedef ksf fixture;
enum { A, B }; /* the stores' paths in the ksf */

/* Each store here has one link: A's (a.db) to KME-B, B's (b.db) to KME-A.
 * LP(ks) names it in every call that takes a link peer. */
static struct {
    keystore *ks;
    const char *peer;
} link_of[8];

static const char *peer_of_path(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, "/a.db") == 0 ? "KME-B" : "KME-A";
}

/* Remember the link of a store just opened (NULL passes through).  A
 * closed store's address may come back: its entry is then rewritten; the
 * oldest entries are reused (no test holds eight stores open). */
static keystore *lp_register(keystore *ks, const char *path)
{
    static size_t next;
    size_t n = sizeof link_of / sizeof link_of[0], at = next % n;
    for (size_t i = 0; i < n; i++)
        if (link_of[i].ks == ks)
            at = i;
    if (!ks)
        return NULL;
    if (at == next % n)
        next++;
    link_of[at].ks = ks;
    link_of[at].peer = peer_of_path(path);
    return ks;
}

static const char *LP(keystore *ks)
{
    for (size_t i = 0; i < sizeof link_of / sizeof link_of[0]; i++)
        if (link_of[i].ks == ks)
            return link_of[i].peer;
    fail_msg("store opened without lp_register");
    return NULL;
}

static keystore *open_sync(const char *path, ks_sync sync)
{
    /* a limit far above anything here: the per-slave count runs in every
     * test (keystore_unfetched.c follows each change and rollback) */
    ks_options o = {.path = path, .sync = sync, .local_cap_bits = 1u << 20,
                    .key_ttl_s = 3600, .slave_unfetched_bits = UINT64_C(1) << 40,
                    .migrate_link_peer = peer_of_path(path)};
    return lp_register(ksf_open(&o), path);
}

static keystore *open_ks(const char *path)
{
    return open_sync(path, KS_SYNC_NORMAL);
}

/* The link figures status reports; every call also checks that the
 * running totals equal a count over the blocks. */
static ks_link_stats lstats(keystore *ks)
{
    return ksf_link_stats(ks, LP(ks));
}

/* The link: the same block into A (owner a_owns) and B, both confirmed. */
static void feed(keystore *a, keystore *b, uint64_t id, bool a_owns, const uint8_t *bytes,
                 uint32_t len)
{
    ksf_feed(a, LP(a), b, LP(b), id, a_owns, bytes, len);
}

static const char *const SL[] = {"bob"};

/* Apply reservation r (made at A) at B for alice -> slaves. */
static ks_result apply_res(keystore *b, const ks_reservation *r, const char *const *slaves,
                           size_t ns)
{
    ks_remote_key *k = calloc(r->keys.n, sizeof *k);
    assert_non_null(k);
    ksf_remote_keys(r, k, r->keys.n);
    ks_result res = ks_reservation_apply(b, LP(b), r->id, "alice", slaves, ns, r->expires_ms, k,
                                         r->keys.n);
    free(k);
    return res;
}

/* Every key's material equals the block bytes at its segments. */
static void check_material(const ks_reservation *r, uint64_t id0, const uint8_t *const *blocks)
{
    for (size_t i = 0; i < r->keys.n; i++) {
        const uint8_t *m = r->keys.keys[i].material;
        for (size_t j = 0; j < r->n_segs[i]; j++) {
            const ks_segment *s = &r->segs[r->first_seg[i] + j];
            assert_memory_equal(m, blocks[s->block_id - id0] + s->offset, s->length);
            m += s->length;
        }
    }
}

static ks_result dec_key(keystore *ks, const char *slave, const uint8_t id[16], uint8_t *mat,
                         size_t len)
{
    ks_batch d;
    ks_result r = ks_dec(ks, "alice", slave, (const uint8_t (*)[16])id, 1, &d);
    if (r == KS_OK) {
        assert_int_equal(d.keys[0].size_bits, len * 8);
        if (mat)
            memcpy(mat, d.keys[0].material, len);
        ks_batch_free(&d);
    }
    return r;
}

/* ---- blocks ------------------------------------------------------------- */

static void test_block_store_confirm_discard(void **state)
{
    fixture *f = *state;
    keystore *a = open_ks(f->path[A]);
    assert_non_null(a);
    uint8_t x[1000], y[1000];
    ksf_fill(x, sizeof x, 1);
    ksf_fill(y, sizeof y, 2);
    const uint64_t big = 0xF123456789ABCDEFull; /* IDs use all 64 bits */
    size_t done;

    assert_int_equal(ks_block_store(a, LP(a), big, true, x, 1000, CAP), KS_OK);
    assert_int_equal(ks_block_store(a, LP(a), big, true, x, 1000, CAP), KS_OK);      /* again */
    assert_int_equal(ks_block_store(a, LP(a), big, true, y, 1000, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(a, LP(a), big, false, x, 1000, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(a, LP(a), big, true, x, 999, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(a, LP(a), 7, false, y, 1000, CAP), KS_OK);
    assert_int_equal(ks_block_store(a, LP(a), 8, true, y, 0, CAP), KS_ERROR);

    ks_link_stats st = lstats(a);
    assert_int_equal(st.own_bits, 0); /* unconfirmed blocks are not usable */
    assert_int_equal(st.peer_bits, 0);
    assert_int_equal(st.unconfirmed_blocks, 2);
    uint64_t *ids;
    size_t n;
    assert_int_equal(ks_block_unconfirmed(a, LP(a), &ids, &n), KS_OK);
    assert_int_equal(n, 2);
    assert_true((ids[0] == big && ids[1] == 7) || (ids[0] == 7 && ids[1] == big));
    free(ids);

    uint64_t c[] = {big, 12345}; /* unknown IDs are ignored */
    assert_int_equal(ks_block_confirm(a, LP(a), c, 2, &done), KS_OK);
    assert_int_equal(done, 1);
    assert_int_equal(ks_block_confirm(a, LP(a), c, 2, &done), KS_OK);
    assert_int_equal(done, 0);
    st = lstats(a);
    assert_int_equal(st.own_bits, 8000);
    assert_int_equal(st.unconfirmed_blocks, 1);

    uint64_t d[] = {big, 7};
    assert_int_equal(ks_block_discard(a, LP(a), d, 2, &done), KS_OK);
    assert_int_equal(done, 1); /* the confirmed one stays */
    st = lstats(a);
    assert_int_equal(st.own_bits, 8000);
    assert_int_equal(st.peer_bits, 0);
    assert_int_equal(st.unconfirmed_blocks, 0);
    /* an erased ID is never stored again: a replay cannot revive bits */
    assert_int_equal(ks_block_store(a, LP(a), 7, false, y, 1000, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_unconfirmed(a, LP(a), &ids, &n), KS_OK);
    assert_int_equal(n, 0);
    free(ids);
    ks_close(a);
}

static void test_cap_refusal(void **state)
{
    fixture *f = *state;
    keystore *a = open_ks(f->path[A]);
    uint8_t x[512];
    ksf_fill(x, sizeof x, 3);
    const uint64_t cap = 2 * 512 * 8; /* two blocks per direction */
    assert_int_equal(ks_block_store(a, LP(a), 1, true, x, 512, cap), KS_OK);
    uint64_t one = 1;
    assert_int_equal(ks_block_confirm(a, LP(a), &one, 1, NULL), KS_OK);
    assert_int_equal(ks_block_store(a, LP(a), 2, true, x, 512, cap), KS_OK); /* unconfirmed counts */
    assert_int_equal(ks_block_store(a, LP(a), 3, true, x, 512, cap), KS_EMPTY);
    assert_int_equal(ks_block_store(a, LP(a), 2, true, x, 512, cap), KS_OK); /* idempotent at cap */
    assert_int_equal(ks_block_store(a, LP(a), 4, false, x, 512, cap), KS_OK); /* other direction */
    assert_int_equal(ks_block_store(a, LP(a), 5, true, x, 513, 4096 + 8), KS_EMPTY);
    ks_link_stats st = lstats(a);
    assert_int_equal(st.own_bits, 4096);
    assert_int_equal(st.unconfirmed_blocks, 2);

    /* consuming makes room again */
    ks_reservation r;
    assert_int_equal(ks_remote_enc(a, "KME-B", "alice", SL, 1, 2, 1024, &r), KS_OK);
    ks_reservation_free(&r);
    assert_int_equal(lstats(a).own_bits, 2048);
    assert_int_equal(ks_block_store(a, LP(a), 3, true, x, 256, cap), KS_OK);
    assert_int_equal(ks_block_store(a, LP(a), 6, true, x, 1, cap), KS_EMPTY);
    ks_close(a);
}

static void test_block_expiry(void **state)
{
    fixture *f = *state;
    char err[256];
    ks_options o = {.path = f->path[A], .local_cap_bits = 1024, .key_ttl_s = 60,
                    .link_block_ttl_ms = 5000};
    keystore *a = lp_register(ks_open(&o, err, sizeof err), f->path[A]);
    assert_non_null(a);
    uint8_t x[300];
    ksf_fill(x, sizeof x, 4);
    assert_int_equal(ks_block_store(a, LP(a), 1, true, x, 300, CAP), KS_OK);
    ks_testing_advance_clock(a, 3000);
    assert_int_equal(ks_block_store(a, LP(a), 2, false, x, 300, CAP), KS_OK);
    assert_int_equal(ks_block_store(a, LP(a), 3, true, x, 300, CAP), KS_OK);
    uint64_t three = 3;
    assert_int_equal(ks_block_confirm(a, LP(a), &three, 1, NULL), KS_OK);
    assert_true(ks_maintain(a) >= 0);
    assert_int_equal(lstats(a).unconfirmed_blocks, 2);
    ks_testing_advance_clock(a, 2500); /* block 1 is 5.5 s old, block 2 2.5 s */
    assert_true(ks_maintain(a) >= 0);
    assert_int_equal(lstats(a).unconfirmed_blocks, 1);
    assert_int_equal(ks_block_expire_unconfirmed(a, 1000), 1);
    assert_int_equal(ks_block_expire_unconfirmed(a, 1000), 0);
    ks_link_stats st = lstats(a);
    assert_int_equal(st.unconfirmed_blocks, 0);
    assert_int_equal(st.own_bits, 2400); /* confirmed blocks never expire */
    ks_close(a);
}

/* ---- remote enc and apply ----------------------------------------------- */

typedef struct pair {
    keystore *a, *b;
    uint8_t *blk[4];
    uint32_t len[4];
} pair;

/* Blocks 100..103 of 200, 300, 200, 400 bytes: 100 and 102 owned by A,
 * 101 and 103 by B. */
static void pair_open(const fixture *f, pair *p)
{
    p->a = open_ks(f->path[A]);
    p->b = open_ks(f->path[B]);
    assert_non_null(p->a);
    assert_non_null(p->b);
    static const uint32_t lens[4] = {200, 300, 200, 400};
    for (int i = 0; i < 4; i++) {
        p->len[i] = lens[i];
        p->blk[i] = malloc(lens[i]);
        ksf_fill(p->blk[i], lens[i], 100 + (uint64_t)i);
        feed(p->a, p->b, 100 + (uint64_t)i, i % 2 == 0, p->blk[i], lens[i]);
    }
}

static void pair_close(pair *p)
{
    ks_close(p->a);
    ks_close(p->b);
    for (int i = 0; i < 4; i++)
        free(p->blk[i]);
}

static void check_pool(const pair *p, uint64_t a_own, uint64_t b_peer)
{
    ks_link_stats sa = lstats(p->a), sb = lstats(p->b);
    assert_int_equal(sa.own_bits, a_own);
    assert_int_equal(sb.peer_bits, b_peer);
    assert_int_equal(sa.peer_bits, 700 * 8); /* B's blocks, untouched here */
    assert_int_equal(sb.own_bits, 700 * 8);
}

static void test_remote_enc_apply_dec(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    check_pool(&p, 400 * 8, 400 * 8);

    ks_reservation r;
    /* 3 keys of 64 bytes: 192 bytes, all from block 100 */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 3, 512, &r), KS_OK);
    assert_int_equal(r.keys.n, 3);
    assert_int_equal(r.total_segs, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r.segs[i].block_id, 100);
        assert_int_equal(r.segs[i].offset, 64 * i);
        assert_int_equal(r.segs[i].length, 64);
        assert_int_equal(r.keys.keys[i].id[6] >> 4, 4);
    }
    assert_memory_not_equal(r.keys.keys[0].id, r.keys.keys[1].id, 16);
    assert_memory_not_equal(r.id, r.keys.keys[0].id, 16);
    const uint8_t *const blocks[4] = {p.blk[0], p.blk[1], p.blk[2], p.blk[3]};
    check_material(&r, 100, blocks);
    check_pool(&p, 208 * 8, 400 * 8);
    time_t now = time(NULL);
    assert_true(r.expires_ms / 1000 >= now + 3590 && r.expires_ms / 1000 <= now + 3610);

    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    check_pool(&p, 208 * 8, 208 * 8);
    assert_int_equal(ksf_stored(p.b), 3);
    for (size_t i = 0; i < 3; i++) {
        uint8_t m[64];
        assert_int_equal(dec_key(p.b, "eve", r.keys.keys[i].id, m, 64), KS_UNAUTHORIZED);
        assert_int_equal(dec_key(p.b, "bob", r.keys.keys[i].id, m, 64), KS_OK);
        assert_memory_equal(m, r.keys.keys[i].material, 64);
        assert_int_equal(dec_key(p.b, "bob", r.keys.keys[i].id, m, 64), KS_NOT_FOUND);
    }
    assert_int_equal(ksf_stored(p.b), 0);
    assert_int_equal(ksf_stored(p.a), 0); /* A keeps no copy of remote keys */
    ks_reservation_free(&r);

    /* a key across blocks: 8 bytes left in 100, then 102 (101 is B's) */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r), KS_OK);
    assert_int_equal(r.total_segs, 2);
    assert_int_equal(r.segs[0].block_id, 100);
    assert_int_equal(r.segs[0].offset, 192);
    assert_int_equal(r.segs[0].length, 8);
    assert_int_equal(r.segs[1].block_id, 102);
    assert_int_equal(r.segs[1].offset, 0);
    assert_int_equal(r.segs[1].length, 24);
    check_material(&r, 100, blocks);
    check_pool(&p, 176 * 8, 208 * 8);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    check_pool(&p, 176 * 8, 176 * 8);
    uint8_t m[32];
    assert_int_equal(dec_key(p.b, "bob", r.keys.keys[0].id, m, 32), KS_OK);
    assert_memory_equal(m, r.keys.keys[0].material, 32);
    ks_reservation_free(&r);

    /* short: nothing taken; then exactly the rest; then empty */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 177 * 8, &r), KS_EMPTY);
    assert_null(r.keys.keys);
    check_pool(&p, 176 * 8, 176 * 8);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 2, 88 * 8, &r), KS_OK);
    check_material(&r, 100, blocks);
    check_pool(&p, 0, 176 * 8);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    check_pool(&p, 0, 0);
    ks_reservation_free(&r);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 8, &r), KS_EMPTY);
    pair_close(&p);
}

static void test_remote_enc_invalid(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r;
    static const char *const many[64] = {"s"};
    const char *sl64[64];
    for (int i = 0; i < 64; i++)
        sl64[i] = many[0];
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 0, 256, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 252, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 0, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 0, 1, 256, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", sl64, 64, 1, 256, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, NULL, "alice", SL, 1, 1, 256, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", NULL, SL, 1, 1, 256, &r), KS_ERROR);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", sl64, 63, 1, 256, &r), KS_OK);
    ks_reservation_free(&r);
    check_pool(&p, 368 * 8, 400 * 8);
    pair_close(&p);
}

/* A reservation with one key of the given segments, applied at B. */
static ks_result apply_segs(keystore *b, const uint8_t rid[16], const uint8_t kid[16],
                            const ks_segment *segs, size_t n)
{
    uint32_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += segs[i].length;
    ks_remote_key k = {.size_bits = bytes * 8, .segs = segs, .nsegs = n};
    memcpy(k.id, kid, 16);
    return ks_reservation_apply(b, LP(b), rid, "alice", SL, 1, INT64_MAX, &k, 1);
}

static void test_apply_rejects(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    uint8_t rid[16], kid[16];
    memset(rid, 1, 16);
    memset(kid, 2, 16);
    static const struct { ks_segment s[2]; size_t n; } bad[] = {
        {{{100, 0, 32}, {100, 16, 32}}, 2},  /* overlap inside one key */
        {{{100, 0, 32}, {100, 0, 32}}, 2},   /* the same segment twice */
        {{{101, 0, 32}}, 1},                 /* B's own block */
        {{{100, 190, 32}}, 1},               /* beyond the block */
        {{{999, 0, 32}}, 1},                 /* unknown block */
        {{{100, 0, 16}, {103, 0, 16}}, 2},   /* second segment foreign */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(apply_segs(p.b, rid, kid, bad[i].s, bad[i].n), KS_REJECTED);
    /* size and segments disagree */
    ks_segment s0 = {100, 0, 32};
    ks_remote_key k = {.size_bits = 264, .segs = &s0, .nsegs = 1};
    assert_int_equal(ks_reservation_apply(p.b, LP(p.b), rid, "alice", SL, 1, INT64_MAX, &k, 1),
                     KS_REJECTED);
    /* a block we do not hold at all */
    ks_segment s1 = {500, 0, 32};
    assert_int_equal(apply_segs(p.b, rid, kid, &s1, 1), KS_REJECTED);
    /* nothing changed by any of it */
    check_pool(&p, 400 * 8, 400 * 8);
    assert_int_equal(ksf_stored(p.b), 0);
    /* a peer block we hold whose confirmation has not reached us: the peer's
     * use of it proves the link confirmed it, so it is confirmed and used */
    uint8_t x[64];
    ksf_fill(x, 64, 9);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 500, false, x, 64, CAP), KS_OK);
    assert_int_equal(lstats(p.b).unconfirmed_blocks, 1);
    uint8_t rid0[16], kid0[16];
    uuid_generate_v4(rid0);
    uuid_generate_v4(kid0);
    assert_int_equal(apply_segs(p.b, rid0, kid0, &s1, 1), KS_OK);
    assert_int_equal(lstats(p.b).unconfirmed_blocks, 0);
    assert_int_equal(lstats(p.b).peer_bits, 400 * 8 + 32 * 8);
    ks_batch got = {0};
    assert_int_equal(ks_dec(p.b, "alice", SL[0], (const uint8_t (*)[16])kid0, 1, &got), KS_OK);
    assert_memory_equal(got.keys[0].material, x, 32);
    ks_batch_free(&got);

    /* a used segment is refused later, also partly overlapping */
    assert_int_equal(apply_segs(p.b, rid, kid, &s0, 1), KS_OK);
    assert_int_equal(lstats(p.b).peer_bits, 368 * 8 + 32 * 8);
    uint8_t rid2[16], kid2[16];
    memset(rid2, 3, 16);
    memset(kid2, 4, 16);
    ks_segment s2 = {100, 31, 8};
    assert_int_equal(apply_segs(p.b, rid2, kid2, &s2, 1), KS_REJECTED);
    ks_segment s3[2] = {{100, 32, 8}, {100, 39, 8}};
    assert_int_equal(apply_segs(p.b, rid2, kid2, s3, 2), KS_REJECTED);
    assert_int_equal(lstats(p.b).peer_bits, 368 * 8 + 32 * 8);
    assert_int_equal(ksf_stored(p.b), 1);
    /* segments in any order are fine when disjoint */
    ks_segment s4[2] = {{102, 100, 8}, {100, 32, 8}};
    assert_int_equal(apply_segs(p.b, rid2, kid2, s4, 2), KS_OK);
    uint8_t m[16];
    assert_int_equal(dec_key(p.b, "bob", kid2, m, 16), KS_OK);
    assert_memory_equal(m, p.blk[2] + 100, 8);
    assert_memory_equal(m + 8, p.blk[0] + 32, 8);
    assert_int_equal(lstats(p.b).peer_bits, 352 * 8 + 32 * 8);
    pair_close(&p);
}

/* One item of a batch: a reservation of one key. */
typedef struct batch_item {
    ks_reservation_in in;
    ks_remote_key key;
} batch_item;

static void batch_item_set(batch_item *it, uint8_t rid, uint8_t kid, const ks_segment *segs,
                           size_t n, uint32_t extra_bits)
{
    uint32_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += segs[i].length;
    it->key = (ks_remote_key){.size_bits = bytes * 8 + extra_bits, .segs = segs, .nsegs = n};
    memset(it->key.id, kid, 16);
    it->in = (ks_reservation_in){.from_peer = "KME-A", .master = "alice", .slaves = SL, .nslaves = 1,
                                 .expires_ms = INT64_MAX, .keys = &it->key, .n = 1};
    memset(it->in.id, rid, 16);
}

/* A batch in one call: each item its own outcome, in order; a refused item
 * is undone alone, also after it read (and zeroed) bytes of a block. */
static void test_apply_batch(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    static const ks_segment s0 = {100, 0, 32}, s1[2] = {{100, 32, 16}, {999, 0, 16}},
                            s2 = {100, 32, 16}, s4 = {102, 0, 8}, s5 = {102, 8, 8};
    batch_item it[6];
    batch_item_set(&it[0], 1, 1, &s0, 1, 0);
    batch_item_set(&it[1], 2, 2, s1, 2, 0);  /* second segment unknown: refused */
    batch_item_set(&it[2], 3, 3, &s2, 1, 0); /* the bytes item 1 had taken */
    batch_item_set(&it[3], 1, 1, &s0, 1, 0); /* item 0 again: a retry */
    batch_item_set(&it[4], 4, 1, &s4, 1, 0); /* item 0's key ID, other content */
    batch_item_set(&it[5], 5, 5, &s5, 1, 8); /* size and segments disagree */
    ks_reservation_in in[6];
    for (int i = 0; i < 6; i++)
        in[i] = it[i].in, in[i].keys = &it[i].key;
    ks_result res[6];
    assert_int_equal(ks_reservation_apply_batch(p.b, in, 6, res), KS_OK);
    static const ks_result want[6] = {KS_OK, KS_REJECTED, KS_OK, KS_OK, KS_CONFLICT, KS_REJECTED};
    for (int i = 0; i < 6; i++)
        assert_int_equal(res[i], want[i]);
    assert_int_equal(ksf_stored(p.b), 2);
    assert_int_equal(ksf_held(p.b, "bob"), (32 + 16) * 8); /* refused items counted nothing */
    check_pool(&p, 400 * 8, 352 * 8);
    /* the batch again (item 0's key still held): the same outcomes, nothing changes */
    assert_int_equal(ks_reservation_apply_batch(p.b, in, 6, res), KS_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(res[i], want[i]);
    assert_int_equal(ksf_stored(p.b), 2);
    assert_int_equal(ksf_held(p.b, "bob"), (32 + 16) * 8);
    check_pool(&p, 400 * 8, 352 * 8);
    uint8_t m[32];
    assert_int_equal(dec_key(p.b, "bob", it[0].key.id, m, 32), KS_OK);
    assert_memory_equal(m, p.blk[0], 32);
    assert_int_equal(ksf_held(p.b, "bob"), 16 * 8);
    assert_int_equal(dec_key(p.b, "bob", it[2].key.id, m, 16), KS_OK);
    assert_int_equal(ksf_held(p.b, "bob"), 0);
    assert_memory_equal(m, p.blk[0] + 32, 16); /* not the zeros item 1 wrote */
    /* the refused ones left no record: alone, with usable bits, they apply */
    static const ks_segment s1b = {102, 16, 32};
    batch_item_set(&it[1], 2, 2, &s1b, 1, 0);
    assert_int_equal(ks_reservation_apply_batch(p.b, &it[1].in, 1, res), KS_OK);
    assert_int_equal(res[0], KS_OK);
    assert_int_equal(dec_key(p.b, "bob", it[1].key.id, m, 32), KS_OK);
    assert_memory_equal(m, p.blk[2] + 16, 32);
    check_pool(&p, 400 * 8, 320 * 8);
    pair_close(&p);
}

/* A peer block of 1000 bytes used in pieces whose edges fall inside 128-
 * byte units (and 1 KiB pages), across whole ones, at their boundaries and
 * at the block's end: every key returns its bytes,
 * every overlap is refused, and the block goes once all of it is used. */
static void test_chunk_edges(void **state)
{
    fixture *f = *state;
    keystore *b = open_ks(f->path[B]);
    assert_non_null(b);
    uint8_t x[1000];
    ksf_fill(x, sizeof x, 77);
    size_t done;
    assert_int_equal(ks_block_store(b, LP(b), 900, false, x, 1000, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(b, LP(b), (uint64_t[]){900}, 1, &done), KS_OK);
    static const ks_segment pieces[] = {
        {900, 100, 800}, /* partial chunk 0, chunks 1..6 whole, partial 7 */
        {900, 0, 50},    /* inside chunk 0 */
        {900, 928, 72},  /* to the block's end, inside the short last chunk */
        {900, 50, 50},   /* the rest of chunk 0 */
        {900, 900, 28},  /* the rest of the last chunk */
    };
    static const ks_segment overlaps[] = {
        {900, 99, 2}, {900, 127, 130}, {900, 256, 128}, {900, 899, 1}, {900, 880, 120},
    };
    uint64_t left = 1000;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        uint8_t rid[16], kid[16], m[800];
        uuid_generate_v4(rid);
        uuid_generate_v4(kid);
        assert_int_equal(apply_segs(b, rid, kid, &pieces[i], 1), KS_OK);
        left -= pieces[i].length;
        assert_int_equal(lstats(b).peer_bits, left * 8);
        for (size_t j = 0; j < sizeof overlaps / sizeof overlaps[0]; j++) {
            uint8_t r2[16], k2[16];
            uuid_generate_v4(r2);
            uuid_generate_v4(k2);
            assert_int_equal(apply_segs(b, r2, k2, &overlaps[j], 1), KS_REJECTED);
        }
        assert_int_equal(dec_key(b, "bob", kid, m, pieces[i].length), KS_OK);
        assert_memory_equal(m, x + pieces[i].offset, pieces[i].length);
    }
    assert_int_equal(lstats(b).peer_bits, 0);
    /* used up: the block is erased and its ID refused from now on */
    assert_int_equal(ks_block_store(b, LP(b), 900, false, x, 1000, CAP), KS_CONFLICT);
    ks_close(b);
}

static void test_apply_idempotent_conflict(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r, r2;
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 2, 256, &r), KS_OK);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK); /* a retry */
    assert_int_equal(ksf_stored(p.b), 2);
    assert_int_equal(lstats(p.b).peer_bits, 336 * 8);
    /* still a retry after delivery: answered, nothing recreated */
    assert_int_equal(dec_key(p.b, "bob", r.keys.keys[0].id, NULL, 32), KS_OK);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    assert_int_equal(ksf_stored(p.b), 1);
    assert_int_equal(dec_key(p.b, "bob", r.keys.keys[0].id, NULL, 32), KS_NOT_FOUND);

    /* same reservation ID, other content */
    assert_int_equal(apply_res(p.b, &r, (const char *const[]){"carol"}, 1), KS_CONFLICT);
    r.expires_ms++;
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_CONFLICT);
    r.expires_ms--;

    /* another reservation reusing a key ID that B holds */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r2), KS_OK);
    memcpy(r2.keys.keys[0].id, r.keys.keys[1].id, 16);
    assert_int_equal(apply_res(p.b, &r2, SL, 1), KS_CONFLICT);
    assert_int_equal(lstats(p.b).peer_bits, 336 * 8); /* rolled back */
    assert_int_equal(ksf_stored(p.b), 1);
    /* the rollback also undid the zeroing: under a new reservation and key
     * ID the same segment delivers its bytes */
    uuid_generate_v4(r2.id);
    uuid_generate_v4(r2.keys.keys[0].id);
    assert_int_equal(apply_res(p.b, &r2, SL, 1), KS_OK);
    uint8_t m[32];
    assert_int_equal(dec_key(p.b, "bob", r2.keys.keys[0].id, m, 32), KS_OK);
    assert_memory_equal(m, r2.keys.keys[0].material, 32);
    ks_reservation_free(&r);
    ks_reservation_free(&r2);
    pair_close(&p);
}

static void test_void(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r1, r2;

    /* void before the reservation: burned, and the late reservation refused */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 2, 256, &r1), KS_OK);
    assert_int_equal(ks_void_apply(p.b, LP(p.b), r1.id, r1.segs, r1.total_segs), KS_OK);
    assert_int_equal(lstats(p.b).peer_bits, 336 * 8);
    assert_int_equal(ks_void_apply(p.b, LP(p.b), r1.id, r1.segs, r1.total_segs), KS_OK); /* again */
    assert_int_equal(lstats(p.b).peer_bits, 336 * 8);
    assert_int_equal(apply_res(p.b, &r1, SL, 1), KS_CONFLICT);
    assert_int_equal(ksf_stored(p.b), 0);
    assert_int_equal(dec_key(p.b, "bob", r1.keys.keys[0].id, NULL, 32), KS_NOT_FOUND);

    /* void after apply (one key already fetched): the rest goes, bits stay used */
    static const char *const two[] = {"bob", "carol"};
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", two, 2, 2, 256, &r2), KS_OK);
    assert_int_equal(apply_res(p.b, &r2, two, 2), KS_OK);
    assert_int_equal(ksf_stored(p.b), 2);
    assert_int_equal(ksf_held(p.b, "bob"), 512);
    assert_int_equal(ksf_held(p.b, "carol"), 512);
    assert_int_equal(dec_key(p.b, "bob", r2.keys.keys[0].id, NULL, 32), KS_OK);
    assert_int_equal(ksf_held(p.b, "bob"), 256);
    assert_int_equal(ks_void_apply(p.b, LP(p.b), r2.id, r2.segs, r2.total_segs), KS_OK);
    assert_int_equal(ksf_stored(p.b), 0);
    assert_int_equal(ksf_held(p.b, "bob"), 0); /* the void takes what was owed */
    assert_int_equal(ksf_held(p.b, "carol"), 0);
    assert_int_equal(dec_key(p.b, "carol", r2.keys.keys[0].id, NULL, 32), KS_NOT_FOUND);
    assert_int_equal(dec_key(p.b, "bob", r2.keys.keys[1].id, NULL, 32), KS_NOT_FOUND);
    assert_int_equal(lstats(p.b).peer_bits, 272 * 8);
    assert_int_equal(apply_res(p.b, &r2, two, 2), KS_CONFLICT);

    /* a void across used and unused bits, foreign and unknown blocks,
     * and beyond the end: only the unused bits of peer blocks burn */
    uint8_t rid[16];
    memset(rid, 7, 16);
    ks_segment v[] = {{100, 100, 60}, {100, 120, 10}, {101, 0, 50}, {999, 0, 5},
                      {102, 190, 100}};
    assert_int_equal(ks_void_apply(p.b, LP(p.b), rid, v, 5), KS_OK);
    /* used before: 0..128 of block 100; newly burned 128..160 and 190..200 */
    assert_int_equal(lstats(p.b).peer_bits, (272 - 32 - 10) * 8);
    assert_int_equal(lstats(p.b).own_bits, 700 * 8);
    ks_segment ok1 = {100, 160, 30};
    uint8_t kid[16];
    memset(kid, 8, 16);
    uint8_t rid2[16];
    memset(rid2, 9, 16);
    assert_int_equal(apply_segs(p.b, rid2, kid, &ok1, 1), KS_OK);
    ks_segment bad = {102, 195, 5};
    memset(rid2, 10, 16);
    memset(kid, 11, 16);
    assert_int_equal(apply_segs(p.b, rid2, kid, &bad, 1), KS_REJECTED);
    ks_reservation_free(&r1);
    ks_reservation_free(&r2);
    pair_close(&p);
}

static void test_block_used_up(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r;
    /* all of A's 400 bytes in 100 keys of 4 bytes */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 100, 32, &r), KS_OK);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    check_pool(&p, 0, 0);
    /* both copies of blocks 100 and 102 are gone, and stay gone */
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, p.blk[0], 200, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 102, false, p.blk[2], 200, CAP), KS_CONFLICT);
    assert_true(ks_maintain(p.a) >= 0);
    assert_true(ks_maintain(p.b) >= 0);
    check_pool(&p, 0, 0);
    ks_reservation_free(&r);
    pair_close(&p);
}

/* ---- outbox ------------------------------------------------------------- */

/* A stops and starts again with its outbox as the file holds it. */
static void reopen_a(const fixture *f, pair *p)
{
    ks_close(p->a);
    p->a = open_ks(f->path[A]);
    assert_non_null(p->a);
}

static void test_outbox(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r1, r2, r3;
    ksf_void v;

    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(ksf_next_void(p.a, &v), KS_NOT_FOUND);
    assert_int_equal(ks_remote_confirmed(p.a, r1.id), KS_OK);
    assert_int_equal(ks_remote_confirmed(p.a, r1.id), KS_NOT_FOUND);
    assert_int_equal(ks_remote_failed(p.a, r1.id), KS_NOT_FOUND);

    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 1600, &r2), KS_OK);
    assert_int_equal(r2.total_segs, 2); /* 168 bytes left in 100, 32 in 102 */
    assert_int_equal(ks_remote_failed(p.a, r2.id), KS_OK);
    assert_int_equal(ks_remote_failed(p.a, r2.id), KS_OK);
    assert_int_equal(ks_remote_confirmed(p.a, r2.id), KS_NOT_FOUND); /* too late */
    ks_testing_advance_clock(p.a, 5);
    uint8_t xb[64]; /* a second link, to KME-X: its own outbox entries */
    ksf_fill(xb, sizeof xb, 9);
    assert_int_equal(ks_block_store(p.a, "KME-X", 900, true, xb, 64, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(p.a, "KME-X", (uint64_t[]){900}, 1, NULL), KS_OK);
    assert_int_equal(ks_remote_enc(p.a, "KME-X", "alice", SL, 1, 1, 256, &r3), KS_OK);
    assert_int_equal(r3.segs[0].block_id, 900);
    assert_int_equal(ks_remote_failed(p.a, r3.id), KS_OK);

    assert_int_equal(ksf_next_void(p.a, &v), KS_OK);
    assert_memory_equal(v.id, r2.id, 16); /* the oldest first */
    assert_string_equal(v.peer, "KME-B");
    assert_int_equal(v.n, 2);
    assert_memory_equal(v.segs, r2.segs, 2 * sizeof *v.segs);
    /* the bits stay burned at A whatever happens */
    assert_int_equal(lstats(p.a).own_bits, (400 - 32 - 200) * 8); /* r3: the KME-X link */
    assert_int_equal(ks_void_apply(p.b, LP(p.b), v.id, v.segs, v.n), KS_OK);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);
    assert_int_equal(ksf_next_void(p.a, &v), KS_OK);
    assert_memory_equal(v.id, r3.id, 16);
    assert_string_equal(v.peer, "KME-X");
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);
    assert_int_equal(ksf_next_void(p.a, &v), KS_NOT_FOUND);
    ks_reservation_free(&r1);
    ks_reservation_free(&r2);
    ks_reservation_free(&r3);

    /* a crash between enc and its outcome: the entry stays pending, and
     * recovery lists it until the peer's word settles it */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 2, 256, &r1), KS_OK);
    reopen_a(f, &p);
    assert_int_equal(ks_outbox_recover(p.a), 1);
    assert_int_equal(ks_outbox_recover(p.a), 1); /* listed again, not duplicated */
    assert_int_equal(ksf_next_void(p.a, &v), KS_NOT_FOUND);
    assert_int_equal(ks_outbox_next_unknown(p.a, v.id, &v.peer), KS_OK);
    assert_memory_equal(v.id, r1.id, 16);
    assert_string_equal(v.peer, "KME-B");
    free(v.peer);
    /* the peer never had it: a void, with the reservation's segments */
    assert_int_equal(ks_outbox_settle(p.a, v.id, false), KS_OK);
    assert_int_equal(ks_outbox_next_unknown(p.a, v.id, &v.peer), KS_NOT_FOUND);
    assert_int_equal(ksf_next_void(p.a, &v), KS_OK);
    assert_memory_equal(v.id, r1.id, 16);
    assert_int_equal(v.n, r1.total_segs);
    assert_memory_equal(v.segs, r1.segs, v.n * sizeof *v.segs);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);
    assert_int_equal(ks_outbox_settle(p.a, r1.id, true), KS_OK); /* settled before: no-op */
    assert_int_equal(ksf_next_void(p.a, &v), KS_NOT_FOUND);
    assert_int_equal(ks_remote_confirmed(p.a, r1.id), KS_NOT_FOUND);
    ks_reservation_free(&r1);
    pair_close(&p);
}

/* Answered at once (ks_remote_acked): the entry goes with a later enc, with
 * maintenance or at close; a crash before that leaves it pending, and the
 * peer's "applied" drops it without a void. */
static void test_outbox_acked(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r1, r2, r3;
    ksf_void v;

    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(ks_remote_acked(p.a, r1.id), KS_OK);
    /* still pending in the file until a transaction drops it */
    assert_int_equal(ks_remote_failed(p.a, r1.id), KS_OK);
    assert_int_equal(ksf_next_void(p.a, &v), KS_OK);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);

    /* dropped by the next enc's transaction */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r2), KS_OK);
    assert_int_equal(ks_remote_acked(p.a, r2.id), KS_OK);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r3), KS_OK);
    assert_int_equal(ks_remote_confirmed(p.a, r2.id), KS_NOT_FOUND); /* gone already */
    /* an enc that fails (empty) leaves the entry to the next one */
    assert_int_equal(ks_remote_acked(p.a, r3.id), KS_OK);
    ks_reservation big;
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 65536, &big), KS_EMPTY);
    assert_int_equal(ks_remote_failed(p.a, r3.id), KS_OK); /* still pending, so still voidable */
    assert_int_equal(ksf_next_void(p.a, &v), KS_OK);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(p.a, v.id), KS_OK);
    ks_reservation_free(&r1);
    ks_reservation_free(&r2);
    ks_reservation_free(&r3);

    /* by maintenance */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(ks_remote_acked(p.a, r1.id), KS_OK);
    assert_true(ks_maintain(p.a) >= 0);
    assert_int_equal(ks_remote_confirmed(p.a, r1.id), KS_NOT_FOUND);
    ks_reservation_free(&r1);

    /* at close */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(ks_remote_acked(p.a, r1.id), KS_OK);
    reopen_a(f, &p);
    assert_int_equal(ks_outbox_recover(p.a), 0);
    ks_reservation_free(&r1);

    /* a crash before any of these: pending at the next start, and the
     * peer's "applied" settles it with no void */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(apply_res(p.b, &r1, SL, 1), KS_OK);
    assert_int_equal(ks_remote_acked(p.a, r1.id), KS_OK);
    ks_testing_forget_acked(p.a);
    reopen_a(f, &p);
    assert_int_equal(ks_outbox_recover(p.a), 1);
    ks_res_state st;
    assert_int_equal(ks_reservation_state(p.b, r1.id, &st), KS_OK);
    assert_int_equal(st, KS_RES_APPLIED);
    assert_int_equal(ks_outbox_next_unknown(p.a, v.id, &v.peer), KS_OK);
    free(v.peer);
    assert_int_equal(ks_outbox_settle(p.a, v.id, true), KS_OK);
    assert_int_equal(ks_outbox_next_unknown(p.a, v.id, &v.peer), KS_NOT_FOUND);
    assert_int_equal(ksf_next_void(p.a, &v), KS_NOT_FOUND);
    assert_int_equal(ks_remote_confirmed(p.a, r1.id), KS_NOT_FOUND);
    uint8_t m[32];
    assert_int_equal(dec_key(p.b, "bob", r1.keys.keys[0].id, m, 32), KS_OK);
    assert_memory_equal(m, r1.keys.keys[0].material, 32);
    ks_reservation_free(&r1);

    /* what the peer side reports: voided, and unknown for an ID never seen */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r1), KS_OK);
    assert_int_equal(ks_void_apply(p.b, LP(p.b), r1.id, r1.segs, r1.total_segs), KS_OK);
    assert_int_equal(ks_reservation_state(p.b, r1.id, &st), KS_OK);
    assert_int_equal(st, KS_RES_VOIDED);
    assert_int_equal(ks_reservation_state(p.b, r1.keys.keys[0].id, &st), KS_OK);
    assert_int_equal(st, KS_RES_UNKNOWN);
    ks_reservation_free(&r1);
    pair_close(&p);
}

/* ---- persistence, migration --------------------------------------------- */

static void test_reopen_persists(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    uint8_t x[64];
    ksf_fill(x, 64, 77);
    assert_int_equal(ks_block_store(p.a, LP(p.a), 900, true, x, 64, CAP), KS_OK); /* unconfirmed */
    ks_reservation r;
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 3, 512, &r), KS_OK);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    ks_link_stats sa = lstats(p.a), sb = lstats(p.b);
    ks_close(p.a);
    ks_close(p.b);

    p.a = open_sync(f->path[A], KS_SYNC_FULL);
    p.b = open_sync(f->path[B], KS_SYNC_FULL);
    assert_non_null(p.a);
    assert_non_null(p.b);
    ks_link_stats sa2 = lstats(p.a), sb2 = lstats(p.b);
    assert_memory_equal(&sa, &sa2, sizeof sa);
    assert_memory_equal(&sb, &sb2, sizeof sb);
    assert_int_equal(sa2.unconfirmed_blocks, 1);
    assert_int_equal(ksf_stored(p.b), 3);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK); /* still a retry */
    uint8_t m[64];
    assert_int_equal(dec_key(p.b, "bob", r.keys.keys[2].id, m, 64), KS_OK);
    assert_memory_equal(m, r.keys.keys[2].material, 64);
    assert_int_equal(ks_remote_confirmed(p.a, r.id), KS_OK); /* the outbox survived */
    ks_reservation_free(&r);
    /* the cursor survived: the next key continues where the last ended */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 64, &r), KS_OK);
    assert_int_equal(r.segs[0].block_id, 100);
    assert_int_equal(r.segs[0].offset, 192);
    ks_reservation_free(&r);
    pair_close(&p);
}

static void test_migrate_v1(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path[A], &db), SQLITE_OK);
    /* the schema and a key row as version 1 wrote them */
    const char *v1 =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE local_pool(id INTEGER PRIMARY KEY CHECK (id = 0),"
        " bits INTEGER NOT NULL CHECK (bits >= 0), refill_ns INTEGER NOT NULL);"
        "CREATE TABLE keys(key_id BLOB PRIMARY KEY CHECK (length(key_id) = 16),"
        " master TEXT NOT NULL, size_bits INTEGER NOT NULL CHECK (size_bits > 0 AND"
        " size_bits % 8 = 0), material BLOB NOT NULL, created INTEGER NOT NULL,"
        " expires INTEGER NOT NULL, slaves BLOB NOT NULL, pending INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        "CREATE INDEX keys_expires ON keys(expires);"
        "INSERT INTO meta VALUES ('schema_version', 1);"
        "INSERT INTO local_pool VALUES (0, 4096, 0);"
        "INSERT INTO keys VALUES (x'11111111111141118111111111111111', 'alice', 64,"
        " x'0102030405060708', 0, 9000000000000, x'626f6200', 1);";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    keystore *a = open_ks(f->path[A]);
    assert_non_null(a);
    uint8_t id[16], m[8];
    memset(id, 0x11, 16);
    id[6] = 0x41;
    id[8] = 0x81;
    assert_int_equal(dec_key(a, "bob", id, m, 8), KS_OK);
    assert_memory_equal(m, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    uint8_t x[100];
    ksf_fill(x, 100, 5);
    assert_int_equal(ks_block_store(a, LP(a), 1, true, x, 100, CAP), KS_OK);
    ks_close(a);

    assert_int_equal(sqlite3_open(f->path[A], &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name ="
                                            " 'schema_version'", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 4);
    sqlite3_finalize(s);
    sqlite3_exec(db, "UPDATE meta SET value = 5 WHERE name = 'schema_version'", NULL, NULL,
                 NULL);
    sqlite3_close(db);
    char err[256] = "";
    ks_options o = {.path = f->path[A], .local_cap_bits = 1024};
    assert_null(ks_open(&o, err, sizeof err)); /* a newer schema is refused */
    assert_non_null(strstr(err, "schema version 5"));
}

/* ---- concurrency -------------------------------------------------------- */

#define TH 8
#define TH_ITERS 40
#define TH_BLOCKS 24
#define TH_BLEN 2048

typedef struct worker {
    pair *p;
    ks_segment *segs; /* every segment this thread got */
    size_t nsegs, cap;
    uint64_t bytes;   /* bytes allocated */
    atomic_int *fail;
    pthread_barrier_t *bar;
    unsigned seed;
} worker;

static void worker_keep(worker *w, const ks_reservation *r)
{
    for (size_t i = 0; i < r->total_segs; i++) {
        if (w->nsegs == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 64;
            w->segs = realloc(w->segs, w->cap * sizeof *w->segs);
        }
        w->segs[w->nsegs++] = r->segs[i];
    }
    for (size_t i = 0; i < r->keys.n; i++)
        w->bytes += r->keys.keys[i].size_bits / 8;
}

/* Deliver r at B and check the slaves get A's material. */
static void worker_deliver(worker *w, const ks_reservation *r)
{
    if (apply_res(w->p->b, r, SL, 1) != KS_OK) {
        atomic_fetch_add(w->fail, 1);
        return;
    }
    for (size_t i = 0; i < r->keys.n; i++) {
        uint8_t m[128];
        size_t len = r->keys.keys[i].size_bits / 8;
        if (dec_key(w->p->b, "bob", r->keys.keys[i].id, m, len) != KS_OK ||
            memcmp(m, r->keys.keys[i].material, len) != 0)
            atomic_fetch_add(w->fail, 1);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->bar);
    for (int i = 0; i < TH_ITERS; i++) {
        uint32_t n = 1 + (uint32_t)(rand_r(&w->seed) % 3);
        uint32_t size = 8 * (1 + (uint32_t)(rand_r(&w->seed) % 128));
        ks_reservation r;
        ks_result res = ks_remote_enc(w->p->a, "KME-B", "alice", SL, 1, n, size, &r);
        if (res == KS_EMPTY)
            continue;
        if (res != KS_OK) {
            atomic_fetch_add(w->fail, 1);
            continue;
        }
        worker_keep(w, &r);
        if (i % 2 == 0)
            worker_deliver(w, &r);
        else if (ks_void_apply(w->p->b, LP(w->p->b), r.id, r.segs, r.total_segs) != KS_OK)
            atomic_fetch_add(w->fail, 1);
        ks_reservation_free(&r);
    }
    return NULL;
}

static void remove_db(const char *path)
{
    char p[200];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
}

static int seg_cmp(const void *x, const void *y)
{
    const ks_segment *a = x, *b = y;
    if (a->block_id != b->block_id)
        return a->block_id < b->block_id ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static void concurrent_mode(const fixture *f, ks_sync mode)
{
    pair p = {.a = open_sync(f->path[A], mode), .b = open_sync(f->path[B], mode)};
    assert_non_null(p.a);
    assert_non_null(p.b);
    uint8_t *x = malloc(TH_BLEN);
    for (uint64_t i = 0; i < TH_BLOCKS; i++) {
        ksf_fill(x, TH_BLEN, 1000 + i);
        feed(p.a, p.b, 5000 + i, true, x, TH_BLEN);
    }
    free(x);
    const uint64_t total = (uint64_t)TH_BLOCKS * TH_BLEN;
    worker w[TH];
    pthread_t th[TH];
    atomic_int fail = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, TH + 1);
    for (int i = 0; i < TH; i++) {
        w[i] = (worker){.p = &p, .fail = &fail, .bar = &bar, .seed = 17u + (unsigned)i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    pthread_barrier_wait(&bar);
    /* watch the pools while the workers run: never above the start, and
     * (unsigned) never wrapped around */
    for (int k = 0; k < 50; k++) {
        ks_link_stats sa = lstats(p.a), sb = lstats(p.b);
        assert_true(sa.own_bits <= total * 8);
        assert_true(sb.peer_bits <= total * 8);
        usleep(1000);
    }
    uint64_t bytes = 0;
    size_t nsegs = 0;
    for (int i = 0; i < TH; i++) {
        pthread_join(th[i], NULL);
        bytes += w[i].bytes;
        nsegs += w[i].nsegs;
    }
    pthread_barrier_destroy(&bar);
    assert_int_equal(atomic_load(&fail), 0);
    ks_segment *all = malloc((nsegs ? nsegs : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < TH; i++) {
        memcpy(all + k, w[i].segs, w[i].nsegs * sizeof *all);
        k += w[i].nsegs;
        free(w[i].segs);
    }
    qsort(all, nsegs, sizeof *all, seg_cmp);
    for (size_t i = 1; i < nsegs; i++)
        if (all[i].block_id == all[i - 1].block_id)
            assert_true(all[i - 1].offset + all[i - 1].length <= all[i].offset);
    free(all);
    assert_true(bytes > total / 2);
    assert_int_equal(lstats(p.a).own_bits, (total - bytes) * 8);
    assert_int_equal(lstats(p.b).peer_bits, (total - bytes) * 8);
    assert_int_equal(ksf_stored(p.b), 0);
    assert_int_equal(ksf_held(p.b, "bob"), 0); /* every apply fetched or voided */
    ks_close(p.a);
    ks_close(p.b);
    remove_db(f->path[A]);
    remove_db(f->path[B]);
}

static void test_concurrent(void **state)
{
    concurrent_mode(*state, KS_SYNC_NORMAL);
    concurrent_mode(*state, KS_SYNC_FULL);
}

/* ---- erasure from the files --------------------------------------------- */

static void test_erased_material(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r;
    /* 336 bytes: block 100 whole, then 136 bytes of 102 (its first chunk) */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 3, 896, &r), KS_OK);
    assert_true(ks_maintain(p.a) >= 0);
    assert_true(ks_maintain(p.b) >= 0);
    /* consumed at A, B has not applied yet: B still holds the bytes */
    const uint8_t *gone[] = {p.blk[0], p.blk[0] + 150, p.blk[2], p.blk[2] + 100};
    for (int i = 0; i < 4; i++) {
        assert_false(ksf_store_contains(f->path[A], gone[i], 24));
        assert_true(ksf_store_contains(f->path[B], gone[i], 24));
    }
    assert_true(ksf_store_contains(f->path[A], p.blk[2] + 170, 24)); /* not consumed */

    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(dec_key(p.b, "bob", r.keys.keys[i].id, NULL, 112), KS_OK);
    assert_true(ks_maintain(p.b) >= 0);
    for (int i = 0; i < 4; i++)
        assert_false(ksf_store_contains(f->path[B], gone[i], 24));
    assert_true(ksf_store_contains(f->path[B], p.blk[2] + 170, 24));
    assert_true(ksf_store_contains(f->path[B], p.blk[1], 24)); /* B's own block */

    /* a void erases too */
    assert_int_equal(ks_void_apply(p.b, LP(p.b), r.id, (ks_segment[]){{102, 128, 72}}, 1), KS_OK);
    assert_true(ks_maintain(p.b) >= 0);
    assert_false(ksf_store_contains(f->path[B], p.blk[2] + 170, 24));
    ks_reservation_free(&r);
    pair_close(&p);
}

/* ---- material in place: blobs, zeroing, migration ---------------------- */

/* Block id's material as stored in a closed store's file: its length, or
 * -1 when the row is gone; up to cap bytes into buf. */
static int material_of(const char *path, uint64_t id, uint8_t *buf, size_t cap)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT bytes FROM block_material"
                                            " WHERE block_id = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    int n = -1;
    if (sqlite3_step(s) == SQLITE_ROW) {
        n = sqlite3_column_bytes(s, 0);
        memcpy(buf, sqlite3_column_blob(s, 0), (size_t)n < cap ? (size_t)n : cap);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* The blob of block id is x where the mask is 0 and zero where it is 1. */
static void check_blob(const char *path, uint64_t id, const uint8_t *x, const uint8_t *used,
                       uint32_t len)
{
    uint8_t *got = malloc(len);
    assert_int_equal(material_of(path, id, got, len), len);
    for (uint32_t i = 0; i < len; i++)
        if (got[i] != (used[i] ? 0 : x[i]))
            fail_msg("block %" PRIu64 " byte %u: %s", id, i, used[i] ? "not zero" : "changed");
    free(got);
}

static void mask_set(uint8_t *mask, uint32_t off, uint32_t len)
{
    memset(mask + off, 1, len);
}

/* A key that spans the end of one own block and the start of the next:
 * both KMEs return the same bytes, the first block goes at both, the
 * second is zero exactly where it was used. */
static void test_key_spans_blocks(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r1, r2;
    /* 150 bytes of 100, then 50 + 50 across 100 and 102 */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 1200, &r1), KS_OK);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 800, &r2), KS_OK);
    assert_int_equal(r2.total_segs, 2);
    assert_int_equal(r2.segs[0].block_id, 100);
    assert_int_equal(r2.segs[0].offset, 150);
    assert_int_equal(r2.segs[0].length, 50);
    assert_int_equal(r2.segs[1].block_id, 102);
    assert_int_equal(r2.segs[1].offset, 0);
    assert_int_equal(r2.segs[1].length, 50);
    const uint8_t *blocks[] = {p.blk[0], p.blk[1], p.blk[2], p.blk[3]};
    check_material(&r1, 100, blocks);
    check_material(&r2, 100, blocks);
    assert_int_equal(apply_res(p.b, &r2, SL, 1), KS_OK); /* out of order */
    assert_int_equal(apply_res(p.b, &r1, SL, 1), KS_OK);
    uint8_t m[150];
    assert_int_equal(dec_key(p.b, "bob", r2.keys.keys[0].id, m, 100), KS_OK);
    assert_memory_equal(m, r2.keys.keys[0].material, 100);
    assert_int_equal(dec_key(p.b, "bob", r1.keys.keys[0].id, m, 150), KS_OK);
    assert_memory_equal(m, p.blk[0], 150);
    check_pool(&p, 150 * 8, 150 * 8);
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, p.blk[0], 200, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 100, false, p.blk[0], 200, CAP), KS_CONFLICT);
    assert_true(ks_maintain(p.a) >= 0);
    assert_true(ks_maintain(p.b) >= 0);
    ks_close(p.a);
    ks_close(p.b);
    uint8_t used[200] = {0};
    mask_set(used, 0, 50);
    assert_int_equal(material_of(f->path[A], 100, m, sizeof m), -1);
    assert_int_equal(material_of(f->path[B], 100, m, sizeof m), -1);
    check_blob(f->path[A], 102, p.blk[2], used, 200);
    check_blob(f->path[B], 102, p.blk[2], used, 200);
    for (int i = 0; i < 2; i++) {
        const char *path = i ? f->path[B] : f->path[A];
        assert_false(ksf_store_contains(path, p.blk[0] + 100, 24));
        assert_false(ksf_store_contains(path, p.blk[2] + 10, 24));
        assert_true(ksf_store_contains(path, p.blk[2] + 60, 24));
    }
    p.a = p.b = NULL;
    ks_reservation_free(&r1);
    ks_reservation_free(&r2);
    for (int i = 0; i < 4; i++)
        free(p.blk[i]);
}

/* Peer segments out of order (some adjacent, some not) until the block is
 * used up: each key has its bytes, the blob is zero exactly at the used
 * segments (checked across a reopen), and the row goes at the end. */
static void test_peer_segments_out_of_order(void **state)
{
    fixture *f = *state;
    keystore *b = open_ks(f->path[B]);
    assert_non_null(b);
    uint8_t x[3000], used[3000] = {0};
    ksf_fill(x, sizeof x, 31);
    size_t done;
    assert_int_equal(ks_block_store(b, LP(b), 700, false, x, 3000, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(b, LP(b), (uint64_t[]){700}, 1, &done), KS_OK);
    static const ks_segment pieces[] = {
        {700, 1500, 700}, {700, 10, 90}, {700, 2900, 100}, {700, 1024, 476},
        {700, 100, 924},  {700, 0, 10},  {700, 2200, 700},
    };
    const size_t np = sizeof pieces / sizeof pieces[0];
    uint64_t left = 3000;
    for (size_t i = 0; i < np; i++) {
        uint8_t rid[16], kid[16], m[1000];
        uuid_generate_v4(rid);
        uuid_generate_v4(kid);
        assert_int_equal(apply_segs(b, rid, kid, &pieces[i], 1), KS_OK);
        left -= pieces[i].length;
        assert_int_equal(lstats(b).peer_bits, left * 8);
        assert_int_equal(dec_key(b, "bob", kid, m, pieces[i].length), KS_OK);
        assert_memory_equal(m, x + pieces[i].offset, pieces[i].length);
        mask_set(used, pieces[i].offset, pieces[i].length);
        if (i == 3) { /* half way: look at the file */
            ks_close(b);
            check_blob(f->path[B], 700, x, used, 3000);
            b = open_ks(f->path[B]);
            assert_non_null(b);
        }
    }
    assert_int_equal(lstats(b).peer_bits, 0);
    ks_close(b);
    uint8_t m[8];
    assert_int_equal(material_of(f->path[B], 700, m, sizeof m), -1);
    assert_false(ksf_store_contains(f->path[B], x + 2000, 24));
}

/* An enc_keys call that runs out part way (KS_EMPTY) is rolled back with
 * the zeros it wrote: the next call gets the same bytes. */
static void test_enc_rollback_restores(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r;
    /* key 1: 200 bytes of 100 (used up) + 100 of 102 (zeroed); key 2: short */
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 2, 300 * 8, &r), KS_EMPTY);
    check_pool(&p, 400 * 8, 400 * 8);
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 400 * 8, &r), KS_OK);
    assert_memory_equal(r.keys.keys[0].material, p.blk[0], 200);
    assert_memory_equal((const uint8_t *)r.keys.keys[0].material + 200, p.blk[2], 200);
    assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
    check_pool(&p, 0, 0);
    ks_reservation_free(&r);
    pair_close(&p);
}

/* A block stored again after part of it was consumed: the same bytes are
 * a retry (the consumed part, zero in the store, is not compared); other
 * bytes where it is unconsumed are a conflict; nothing changes either way. */
static void test_restore_partly_consumed(void **state)
{
    fixture *f = *state;
    pair p;
    pair_open(f, &p);
    ks_reservation r;
    assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 640, &r), KS_OK);
    ks_segment mid = {100, 100, 40}; /* B: a used segment inside the block */
    uint8_t rid[16], kid[16];
    uuid_generate_v4(rid);
    uuid_generate_v4(kid);
    assert_int_equal(apply_segs(p.b, rid, kid, &mid, 1), KS_OK);
    check_pool(&p, 320 * 8, 360 * 8);
    uint8_t y[200];
    memcpy(y, p.blk[0], 200);
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, y, 200, CAP), KS_OK);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 100, false, y, 200, CAP), KS_OK);
    y[5] ^= 1;   /* consumed at A (cursor 80), unused at B */
    y[120] ^= 1; /* unused at A, used at B */
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, y, 200, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 100, false, y, 200, CAP), KS_CONFLICT);
    y[5] ^= 1;
    assert_int_equal(ks_block_store(p.b, LP(p.b), 100, false, y, 200, CAP), KS_OK);
    y[120] ^= 1;
    y[5] ^= 1;
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, y, 200, CAP), KS_OK);
    y[5] ^= 1;
    y[199] ^= 1; /* the last byte: unused at both */
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, y, 200, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(p.b, LP(p.b), 100, false, y, 200, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(p.a, LP(p.a), 100, true, p.blk[0], 199, CAP), KS_CONFLICT);
    check_pool(&p, 320 * 8, 360 * 8);
    ks_reservation_free(&r);
    pair_close(&p);
}

/* Turn a closed store holding block id (stored and confirmed by ks) into
 * what schema version 2 wrote: the material in 128-byte block_chunks rows,
 * without the rows version 2 had deleted (own: chunks wholly below the
 * cursor; peer: chunks wholly covered by used segments) and with the
 * consumed bytes still in the partly used chunks; the accounting as it was. */
static void make_v2(const char *path, uint64_t id, bool own, const uint8_t *x, uint32_t len,
                    uint32_t cursor, const ks_segment *segs, size_t nsegs)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    uint8_t *mask = calloc(len, 1);
    uint32_t used = 0;
    for (size_t i = 0; i < nsegs; i++) {
        mask_set(mask, segs[i].offset, segs[i].length);
        used += segs[i].length;
    }
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "BEGIN;"
        "CREATE TABLE block_chunks(block_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " used INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (block_id, idx))"
        " WITHOUT ROWID;", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO block_chunks VALUES (?1, ?2, ?3, ?4)",
                                        -1, &s, NULL), SQLITE_OK);
    for (uint32_t idx = 0; idx * 128 < len; idx++) {
        uint32_t at = idx * 128, n = len - at < 128 ? len - at : 128, cov = 0;
        for (uint32_t i = at; i < at + n; i++)
            cov += mask[i];
        if (own ? at + n <= cursor : cov == n)
            continue; /* deleted by version 2 */
        sqlite3_bind_int64(s, 1, (int64_t)id);
        sqlite3_bind_int64(s, 2, idx);
        sqlite3_bind_int64(s, 3, own ? 0 : cov);
        sqlite3_bind_blob(s, 4, x + at, (int)n, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO used_segments VALUES (?1, ?2, ?3)",
                                        -1, &s, NULL), SQLITE_OK);
    for (size_t i = 0; i < nsegs; i++) {
        sqlite3_bind_int64(s, 1, (int64_t)id);
        sqlite3_bind_int64(s, 2, segs[i].offset);
        sqlite3_bind_int64(s, 3, segs[i].length);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE blocks SET cursor = %u, used = %u WHERE block_id = %"
             PRId64 ";", cursor, used, (int64_t)id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "DROP TABLE block_material;"
        "UPDATE meta SET value = 2 WHERE name = 'schema_version';"
        "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    free(mask);
}

/* A file of schema version 2 with partly consumed blocks opens: the
 * remaining bits are delivered, the consumed ones are not (refused, zero
 * in the blob, absent from the files). */
static void test_migrate_v2(void **state)
{
    fixture *f = *state;
    uint8_t xa[700], xb[700];
    ksf_fill(xa, sizeof xa, 41);
    ksf_fill(xb, sizeof xb, 42);
    size_t done;
    keystore *a = open_ks(f->path[A]), *b = open_ks(f->path[B]);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(ks_block_store(a, LP(a), 100, true, xa, 700, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(a, LP(a), (uint64_t[]){100}, 1, &done), KS_OK);
    assert_int_equal(ks_block_store(b, LP(b), 101, false, xb, 700, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(b, LP(b), (uint64_t[]){101}, 1, &done), KS_OK);
    ks_close(a);
    ks_close(b);
    /* A handed out 300 bytes (chunks 0, 1 gone, chunk 2 holds 44 used bytes);
     * B has used segments in chunk 0 (partly), 1..2 (whole) and 4 (partly) */
    static const ks_segment used[] = {{101, 10, 50}, {101, 128, 256}, {101, 530, 20}};
    make_v2(f->path[A], 100, true, xa, 700, 300, NULL, 0);
    make_v2(f->path[B], 101, false, xb, 700, 0, used, 3);

    a = open_ks(f->path[A]);
    b = open_ks(f->path[B]);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(lstats(a).own_bits, 400 * 8);
    assert_int_equal(lstats(b).peer_bits, 374 * 8);
    ks_close(a);
    ks_close(b);
    uint8_t ma[700] = {0}, mb[700] = {0};
    mask_set(ma, 0, 300);
    for (size_t i = 0; i < 3; i++)
        mask_set(mb, used[i].offset, used[i].length);
    check_blob(f->path[A], 100, xa, ma, 700);
    check_blob(f->path[B], 101, xb, mb, 700);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path[A], &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "SELECT 1 FROM block_chunks", NULL, NULL, NULL),
                         SQLITE_OK); /* dropped */
    sqlite3_close(db);

    a = open_ks(f->path[A]);
    b = open_ks(f->path[B]);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(ks_maintain(a) >= 0);
    assert_true(ks_maintain(b) >= 0);
    /* consumed bytes that version 2 still held in partly used chunks */
    assert_false(ksf_store_contains(f->path[A], xa + 270, 24));
    assert_false(ksf_store_contains(f->path[B], xb + 20, 24));
    assert_false(ksf_store_contains(f->path[B], xb + 530, 20));
    assert_true(ksf_store_contains(f->path[A], xa + 300, 24));
    assert_true(ksf_store_contains(f->path[B], xb + 60, 24));

    /* A: the next key starts at the cursor */
    ks_reservation r;
    assert_int_equal(ks_remote_enc(a, "KME-B", "alice", SL, 1, 1, 400 * 8, &r), KS_OK);
    assert_int_equal(r.total_segs, 1);
    assert_int_equal(r.segs[0].offset, 300);
    assert_memory_equal(r.keys.keys[0].material, xa + 300, 400);
    ks_reservation_free(&r);
    assert_int_equal(lstats(a).own_bits, 0);

    /* B: used bits refused, the gaps delivered */
    uint8_t rid[16], kid[16], m[400];
    uuid_generate_v4(rid);
    uuid_generate_v4(kid);
    static const ks_segment bad[] = {{101, 0, 11}, {101, 383, 2}, {101, 540, 30}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(apply_segs(b, rid, kid, &bad[i], 1), KS_REJECTED);
    static const ks_segment gaps[] = {{101, 0, 10}, {101, 60, 68}, {101, 384, 146},
                                      {101, 550, 150}};
    assert_int_equal(apply_segs(b, rid, kid, gaps, 4), KS_OK);
    assert_int_equal(dec_key(b, "bob", kid, m, 374), KS_OK);
    uint8_t *q = m;
    for (size_t i = 0; i < 4; i++) {
        assert_memory_equal(q, xb + gaps[i].offset, gaps[i].length);
        q += gaps[i].length;
    }
    assert_int_equal(lstats(b).peer_bits, 0);
    ks_close(a);
    ks_close(b);
}

/* ---- informative throughput -------------------------------------------- */

static void test_throughput(void **state)
{
    fixture *f = *state;
    keystore *a = open_ks(f->path[A]), *b = open_ks(f->path[B]);
    const int n = getenv("KS_BENCH_PAIRS") ? atoi(getenv("KS_BENCH_PAIRS")) : 3000;
    const uint32_t blen = 65536;
    uint8_t *x = malloc(blen);
    pair p = {.a = a, .b = b};
    for (uint64_t i = 0; i * blen < (uint64_t)n * 32 + blen; i++) {
        ksf_fill(x, blen, 7000 + i);
        feed(a, b, 9000 + i, true, x, blen);
    }
    free(x);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        ks_reservation r;
        assert_int_equal(ks_remote_enc(p.a, "KME-B", "alice", SL, 1, 1, 256, &r), KS_OK);
        assert_int_equal(apply_res(p.b, &r, SL, 1), KS_OK);
        assert_int_equal(ks_remote_confirmed(p.a, r.id), KS_OK);
        assert_int_equal(dec_key(p.b, "bob", r.keys.keys[0].id, NULL, 32), KS_OK);
        ks_reservation_free(&r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("[info] normal sync, 1 thread: %.0f remote enc+apply+confirm+dec/s of 256-bit keys"
           " (%.1f us each)\n", n / dt, dt / n * 1e6);
    ks_close(a);
    ks_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KSF_TEST(test_block_store_confirm_discard),
        KSF_TEST(test_cap_refusal),
        KSF_TEST(test_block_expiry),
        KSF_TEST(test_remote_enc_apply_dec),
        KSF_TEST(test_remote_enc_invalid),
        KSF_TEST(test_apply_rejects),
        KSF_TEST(test_apply_batch),
        KSF_TEST(test_chunk_edges),
        KSF_TEST(test_apply_idempotent_conflict),
        KSF_TEST(test_void),
        KSF_TEST(test_block_used_up),
        KSF_TEST(test_outbox),
        KSF_TEST(test_outbox_acked),
        KSF_TEST(test_reopen_persists),
        KSF_TEST(test_migrate_v1),
        KSF_TEST(test_concurrent),
        KSF_TEST(test_erased_material),
        KSF_TEST(test_key_spans_blocks),
        KSF_TEST(test_peer_segments_out_of_order),
        KSF_TEST(test_enc_rollback_restores),
        KSF_TEST(test_restore_partly_consumed),
        KSF_TEST(test_migrate_v2),
        KSF_TEST(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
