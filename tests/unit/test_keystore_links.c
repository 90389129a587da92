/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore_links.c - unit tests of several QKD links in one key store
 * (schema version 4: blocks belong to the link to one peer KME;
 * src/kme/keystore_blocks.c, keystore_remote_*.c, keystore_schema.c,
 * docs/network.md).
 *
 * Store M (this KME) has two links, to KME-X and to KME-Y; stores X and Y
 * are those peers, each fed the same blocks as M's link to it.  The tests
 * try to make one link's bits serve the other peer: an enc for Y never
 * takes X's blocks, a reservation or void from Y naming X's segments is
 * refused or skipped and changes nothing, confirm and discard with the
 * wrong link do nothing, a block ID arriving on a second link is a
 * conflict; stats and the cap are per link; and a schema version 3 file
 * (one link) migrates to version 4 only when told the peer of its link.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kme/keystore.h"
#include "keystore_fixture.h"

#define CAP (1ull << 30)

enum { M, X, Y }; /* the stores' paths in the ksf */

typedef struct fixture {
    ksf t;
    keystore *m, *x, *y;
} fixture;

static ks_options options(const char *path, const char *migrate_peer)
{
    return (ks_options){.path = path, .local_cap_bits = 1u << 20, .key_ttl_s = 3600,
                        .migrate_link_peer = migrate_peer};
}

static keystore *open_at(const char *path, const char *migrate_peer, char *err, size_t errlen)
{
    ks_options o = options(path, migrate_peer);
    return ks_open(&o, err, errlen);
}

static keystore *open_ok(const char *path)
{
    ks_options o = options(path, NULL);
    return ksf_open_ok(&o);
}

static int setup(void **state)
{
    *state = ksf_new(sizeof(fixture));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    return ksf_teardown_closing(state, (keystore *[]){f->m, f->x, f->y}, 3);
}

/* One block of len bytes on the link between M and peer store p (named
 * p_id at M; M is "KME-M" at p), owned by M when m_owns, confirmed. */
static void feed(keystore *m, keystore *p, const char *p_id, uint64_t id, bool m_owns,
                 uint32_t len)
{
    ksf_feed_filled(m, p_id, p, "KME-M", id, m_owns, len);
}

/* M with links to X (blocks 10 own, 11 peer) and Y (20 own, 21 peer). */
static void open_three(fixture *f)
{
    f->m = open_ok(f->t.path[M]);
    f->x = open_ok(f->t.path[X]);
    f->y = open_ok(f->t.path[Y]);
    feed(f->m, f->x, "KME-X", 10, true, 300);
    feed(f->m, f->x, "KME-X", 11, false, 300);
    feed(f->m, f->y, "KME-Y", 20, true, 100);
    feed(f->m, f->y, "KME-Y", 21, false, 100);
}

static const char *const SL[] = {"bob"};

/* A reservation made at peer store p (p's link to M) applied at M, from
 * from_peer. */
static ks_result apply_at_m(keystore *m, const char *from_peer, const ks_reservation *r)
{
    ks_remote_key k[8];
    ksf_remote_keys(r, k, 8);
    return ks_reservation_apply(m, from_peer, r->id, "alice", SL, 1, r->expires_ms, k,
                                r->keys.n);
}

/* The three stores fed (open_three); X reserves n keys of 256 bits for
 * alice -> bob on its link to M. */
static void x_reserves(fixture *f, uint32_t n, ks_reservation *r)
{
    open_three(f);
    assert_int_equal(ks_remote_enc(f->x, "KME-M", "alice", SL, 1, n, 256, r), KS_OK);
}

/* ks_remote_enc for Y takes Y's own blocks only, and runs dry with them
 * while X's link still holds bits. */
static void test_enc_serves_its_link_only(void **state)
{
    fixture *f = *state;
    open_three(f);
    ks_reservation r;
    assert_int_equal(ks_remote_enc(f->m, "KME-Y", "alice", SL, 1, 3, 256, &r), KS_OK);
    for (size_t i = 0; i < r.total_segs; i++)
        assert_int_equal(r.segs[i].block_id, 20);
    ks_reservation_free(&r);
    assert_int_equal(ksf_link_stats(f->m, "KME-Y").own_bits, (100 - 96) * 8);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").own_bits, 300 * 8);
    assert_int_equal(ks_remote_enc(f->m, "KME-Y", "alice", SL, 1, 1, 64, &r), KS_EMPTY);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").own_bits, 300 * 8);
    /* a peer with no link at all has no bits */
    assert_int_equal(ks_remote_enc(f->m, "KME-Z", "alice", SL, 1, 1, 8, &r), KS_EMPTY);
    assert_int_equal(ks_remote_enc(f->m, "KME-X", "alice", SL, 1, 1, 256, &r), KS_OK);
    assert_int_equal(r.segs[0].block_id, 10);
    ks_reservation_free(&r);
}

/* Y names segments of X's peer block 11 (which M holds as KME-X's): refused,
 * nothing changes; the same reservation from X applies. */
static void test_apply_from_wrong_link(void **state)
{
    fixture *f = *state;
    ks_reservation r;
    x_reserves(f, 2, &r);
    assert_int_equal(r.segs[0].block_id, 11);
    ks_link_stats sx = ksf_link_stats(f->m, "KME-X"), sy = ksf_link_stats(f->m, "KME-Y");
    assert_int_equal(apply_at_m(f->m, "KME-Y", &r), KS_REJECTED);
    ks_link_stats sx2 = ksf_link_stats(f->m, "KME-X"), sy2 = ksf_link_stats(f->m, "KME-Y");
    assert_memory_equal(&sx, &sx2, sizeof sx);
    assert_memory_equal(&sy, &sy2, sizeof sy);
    assert_int_equal(ksf_stored(f->m), 0);
    ks_res_state st;
    assert_int_equal(ks_reservation_state(f->m, r.id, &st), KS_OK);
    assert_int_equal(st, KS_RES_UNKNOWN); /* no record left behind */

    /* the same through a batch */
    ks_remote_key k = {.size_bits = 256, .segs = r.segs, .nsegs = r.n_segs[0]};
    memcpy(k.id, r.keys.keys[0].id, 16);
    ks_reservation_in in = {.from_peer = "KME-Y", .master = "alice", .slaves = SL,
                            .nslaves = 1, .expires_ms = r.expires_ms, .keys = &k, .n = 1};
    memcpy(in.id, r.id, 16);
    ks_result res;
    assert_int_equal(ks_reservation_apply_batch(f->m, &in, 1, &res), KS_OK);
    assert_int_equal(res, KS_REJECTED);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").peer_bits, 300 * 8);

    assert_int_equal(apply_at_m(f->m, "KME-X", &r), KS_OK);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").peer_bits, (300 - 64) * 8);
    assert_int_equal(ksf_stored(f->m), 2);
    /* a retry from the other peer is not a retry */
    assert_int_equal(apply_at_m(f->m, "KME-Y", &r), KS_CONFLICT);
    ksf_assert_key(f->m, "bob", &r, 1);
    ks_reservation_free(&r);
}

/* A void from Y naming X's bits burns nothing of X's, and cannot void a
 * reservation X made. */
static void test_void_from_wrong_link(void **state)
{
    fixture *f = *state;
    ks_reservation r;
    x_reserves(f, 1, &r);
    assert_int_equal(apply_at_m(f->m, "KME-X", &r), KS_OK);
    ks_segment other = {11, 100, 50};
    uint8_t rid[16];
    memset(rid, 0x77, 16);
    assert_int_equal(ks_void_apply(f->m, "KME-Y", rid, &other, 1), KS_OK);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").peer_bits, (300 - 32) * 8);
    assert_int_equal(ks_void_apply(f->m, "KME-Y", r.id, r.segs, r.total_segs), KS_CONFLICT);
    assert_int_equal(ksf_stored(f->m), 1);
    ks_res_state st;
    assert_int_equal(ks_reservation_state(f->m, r.id, &st), KS_OK);
    assert_int_equal(st, KS_RES_APPLIED);
    /* its own peer can */
    assert_int_equal(ks_void_apply(f->m, "KME-X", r.id, r.segs, r.total_segs), KS_OK);
    assert_int_equal(ksf_stored(f->m), 0);
    ks_reservation_free(&r);
}

/* Stats, the unconfirmed list, confirm and discard are per link. */
static void test_per_link_intake(void **state)
{
    fixture *f = *state;
    f->m = open_ok(f->t.path[M]);
    uint8_t b[64];
    ksf_fill(b, sizeof b, 1);
    assert_int_equal(ks_block_store(f->m, "KME-X", 1, true, b, 64, CAP), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 2, true, b, 32, CAP), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 3, false, b, 16, CAP), KS_OK);
    uint64_t *ids;
    size_t n, done;
    assert_int_equal(ks_block_unconfirmed(f->m, "KME-X", &ids, &n), KS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    assert_int_equal(ks_block_unconfirmed(f->m, "KME-Z", &ids, &n), KS_OK);
    assert_int_equal(n, 0);
    free(ids);
    /* the wrong link's confirm and discard are ignored */
    uint64_t all[3] = {1, 2, 3};
    assert_int_equal(ks_block_confirm(f->m, "KME-X", &all[1], 2, &done), KS_OK);
    assert_int_equal(done, 0);
    assert_int_equal(ks_block_discard(f->m, "KME-X", &all[1], 2, &done), KS_OK);
    assert_int_equal(done, 0);
    assert_int_equal(ks_block_discard(f->m, "KME-Z", all, 3, &done), KS_OK);
    assert_int_equal(done, 0);
    assert_int_equal(ksf_link_stats(f->m, "KME-Y").unconfirmed_blocks, 2);
    assert_int_equal(ks_block_confirm(f->m, "KME-Y", all, 3, &done), KS_OK);
    assert_int_equal(done, 2);
    ks_link_stats x = ksf_link_stats(f->m, "KME-X"), y = ksf_link_stats(f->m, "KME-Y"),
                  z = ksf_link_stats(f->m, "KME-Z");
    assert_int_equal(x.unconfirmed_blocks, 1);
    assert_int_equal(x.own_bits, 0);
    assert_int_equal(y.unconfirmed_blocks, 0);
    assert_int_equal(y.own_bits, 32 * 8);
    assert_int_equal(y.peer_bits, 16 * 8);
    assert_int_equal(z.own_bits + z.peer_bits + z.unconfirmed_blocks, 0);
    assert_int_equal(ks_block_discard(f->m, "KME-X", all, 1, &done), KS_OK);
    assert_int_equal(done, 1);
    /* bad link names */
    assert_int_equal(ks_block_store(f->m, "", 9, true, b, 8, CAP), KS_ERROR);
    assert_int_equal(ks_block_store(f->m, NULL, 9, true, b, 8, CAP), KS_ERROR);
    char longer[300];
    memset(longer, 'K', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(ks_block_store(f->m, longer, 9, true, b, 8, CAP), KS_ERROR);
    ks_link_stats st;
    assert_int_equal(ks_link_stats_get(f->m, NULL, &st), KS_ERROR);
}

/* A block ID is unique in the store: the same ID on a second link is a
 * conflict, whether the block is held or erased (tombstone). */
static void test_block_id_across_links(void **state)
{
    fixture *f = *state;
    f->m = open_ok(f->t.path[M]);
    uint8_t b[64];
    ksf_fill(b, sizeof b, 2);
    assert_int_equal(ks_block_store(f->m, "KME-X", 5, true, b, 64, CAP), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 5, true, b, 64, CAP), KS_CONFLICT);
    assert_int_equal(ks_block_store(f->m, "KME-X", 5, true, b, 64, CAP), KS_OK);
    assert_int_equal(ks_block_discard(f->m, "KME-X", (uint64_t[]){5}, 1, NULL), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 5, true, b, 64, CAP), KS_CONFLICT);
    assert_int_equal(ksf_link_stats(f->m, "KME-Y").unconfirmed_blocks, 0);
}

/* The cap holds per direction per link: a full link X leaves Y free. */
static void test_cap_per_link(void **state)
{
    fixture *f = *state;
    f->m = open_ok(f->t.path[M]);
    uint8_t b[512];
    ksf_fill(b, sizeof b, 3);
    uint64_t cap = 1024 * 8;
    assert_int_equal(ks_block_store(f->m, "KME-X", 1, true, b, 512, cap), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-X", 2, true, b, 512, cap), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-X", 3, true, b, 512, cap), KS_EMPTY);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 3, true, b, 512, cap), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 4, true, b, 512, cap), KS_OK);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 5, true, b, 512, cap), KS_EMPTY);
    assert_int_equal(ks_block_store(f->m, "KME-X", 6, false, b, 512, cap), KS_OK);
}

/* ---- migration from schema version 3 ------------------------------------ */

/* A file as schema version 3 wrote it: one own block (100, 200 bytes, 40
 * used), one peer block (101, 100 bytes, bytes 0..10 used), a reservation
 * record, and the one-link link_totals. */
static void make_v3(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *v3 =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE local_pool(id INTEGER PRIMARY KEY CHECK (id = 0),"
        " bits INTEGER NOT NULL CHECK (bits >= 0), refill_ns INTEGER NOT NULL);"
        "CREATE TABLE keys(key_id BLOB PRIMARY KEY CHECK (length(key_id) = 16),"
        " master TEXT NOT NULL, size_bits INTEGER NOT NULL, material BLOB NOT NULL,"
        " created INTEGER NOT NULL, expires INTEGER NOT NULL, slaves BLOB NOT NULL,"
        " pending INTEGER NOT NULL, res_id BLOB) WITHOUT ROWID;"
        "CREATE TABLE blocks(block_id INTEGER PRIMARY KEY,"
        " own INTEGER NOT NULL CHECK (own IN (0, 1)), length INTEGER NOT NULL,"
        " confirmed INTEGER NOT NULL, stored_ms INTEGER NOT NULL, cursor INTEGER NOT NULL,"
        " used INTEGER NOT NULL);"
        "CREATE INDEX blocks_order ON blocks(own, confirmed, stored_ms, block_id);"
        "CREATE TABLE block_material(block_id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);"
        "CREATE TABLE used_segments(block_id INTEGER NOT NULL, off INTEGER NOT NULL,"
        " len INTEGER NOT NULL, PRIMARY KEY (block_id, off)) WITHOUT ROWID;"
        "CREATE TABLE blocks_gone(block_id INTEGER PRIMARY KEY, gone_ms INTEGER NOT NULL);"
        "CREATE TABLE outbox(res_id BLOB PRIMARY KEY, peer TEXT NOT NULL,"
        " state TEXT NOT NULL, master TEXT NOT NULL, slaves BLOB NOT NULL,"
        " segments BLOB NOT NULL, created_ms INTEGER NOT NULL,"
        " expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE reservations(res_id BLOB PRIMARY KEY CHECK (length(res_id) = 16),"
        " state INTEGER NOT NULL CHECK (state IN (1, 2)), digest BLOB,"
        " keep_until_ms INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX reservations_keep ON reservations(keep_until_ms);"
        "CREATE TABLE link_totals(own INTEGER NOT NULL, confirmed INTEGER NOT NULL,"
        " blocks INTEGER NOT NULL, unused INTEGER NOT NULL,"
        " PRIMARY KEY (own, confirmed)) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('schema_version', 3);"
        "INSERT INTO local_pool VALUES (0, 4096, 0);"
        "INSERT INTO blocks VALUES (100, 1, 200, 1, 1, 40, 0);"
        "INSERT INTO blocks VALUES (101, 0, 100, 1, 2, 0, 10);"
        "INSERT INTO block_material VALUES (100, zeroblob(40) || randomblob(160));"
        "INSERT INTO block_material VALUES (101, zeroblob(10) || randomblob(90));"
        "INSERT INTO used_segments VALUES (101, 0, 10);"
        "INSERT INTO reservations VALUES (x'55555555555575558555555555555555', 2, NULL,"
        " 9000000000000);";
    char *msg = NULL;
    int rc = sqlite3_exec(db, v3, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s\n", msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static int64_t schema_version(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name ="
                                            " 'schema_version'", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* Without the peer of its link a version 3 file with blocks is refused,
 * precisely, and left as it was; with it, its blocks are that link's. */
static void test_migrate_v3(void **state)
{
    fixture *f = *state;
    make_v3(f->t.path[M]);
    char err[512] = "";
    assert_null(open_at(f->t.path[M], NULL, err, sizeof err));
    assert_non_null(strstr(err, "schema version 3 holds 2 blocks of its one QKD link"));
    assert_non_null(strstr(err, "no peer KME was given"));
    assert_int_equal(schema_version(f->t.path[M]), 3);

    f->m = open_at(f->t.path[M], "KME-X", err, sizeof err);
    assert_non_null(f->m);
    ks_link_stats x = ksf_link_stats(f->m, "KME-X"), y = ksf_link_stats(f->m, "KME-Y");
    assert_int_equal(x.own_bits, 160 * 8);
    assert_int_equal(x.peer_bits, 90 * 8);
    assert_int_equal(y.own_bits + y.peer_bits, 0);
    /* the own block continues at its cursor, for KME-X only */
    ks_reservation r;
    assert_int_equal(ks_remote_enc(f->m, "KME-Y", "alice", SL, 1, 1, 64, &r), KS_EMPTY);
    assert_int_equal(ks_remote_enc(f->m, "KME-X", "alice", SL, 1, 1, 64, &r), KS_OK);
    assert_int_equal(r.segs[0].block_id, 100);
    assert_int_equal(r.segs[0].offset, 40);
    ks_reservation_free(&r);
    /* the voided record of version 3 names no peer: still a void */
    uint8_t rid[16];
    memset(rid, 0x55, 16);
    rid[6] = 0x75;
    rid[8] = 0x85;
    ks_res_state st;
    assert_int_equal(ks_reservation_state(f->m, rid, &st), KS_OK);
    assert_int_equal(st, KS_RES_VOIDED);
    /* a new link gets its own numbers, the migrated one keeps its blocks */
    uint8_t b[32];
    ksf_fill(b, sizeof b, 4);
    assert_int_equal(ks_block_store(f->m, "KME-Y", 200, true, b, 32, CAP), KS_OK);
    ks_close(f->m);
    assert_int_equal(schema_version(f->t.path[M]), 4); /* (the store locks its file) */
    f->m = open_ok(f->t.path[M]); /* version 4 now: no migration peer needed */
    assert_int_equal(ksf_link_stats(f->m, "KME-X").own_bits, (160 - 8) * 8);
    assert_int_equal(ksf_link_stats(f->m, "KME-Y").unconfirmed_blocks, 1);
}

/* A version 3 file without blocks needs no peer. */
static void test_migrate_v3_empty(void **state)
{
    fixture *f = *state;
    make_v3(f->t.path[M]);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->t.path[M], &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM blocks; DELETE FROM block_material;"
                                      "DELETE FROM used_segments;", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->m = open_ok(f->t.path[M]);
    assert_int_equal(ksf_link_stats(f->m, "KME-X").own_bits, 0);
    ks_close(f->m);
    f->m = NULL;
    assert_int_equal(schema_version(f->t.path[M]), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enc_serves_its_link_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_from_wrong_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_void_from_wrong_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_link_intake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_id_across_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_per_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v3_empty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
