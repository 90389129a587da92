/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_internal.h - what the files of the key store share: the
 * keystore struct, its locks and the calls between its layers.  Not part
 * of the key store's API: include only from keystore_*.c.
 *
 * Layers, each calling only those below it (no call cycle):
 *   keystore_open.c          open, close, maintenance thread
 *   keystore_schema.c        link tables, their statements, migration
 *   keystore_relay.c         relaying a reservation to the next KME
 *   keystore_remote_outbox.c our reservations for our masters, the outbox
 *   keystore_remote_apply.c  the peer's reservations and voids
 *   keystore_blocks.c        QKD link blocks: intake, material, upkeep
 *   keystore_local.c         local pool, ks_local_enc, ks_dec, batches
 *   keystore_unfetched.c     bits held per slave, not fetched yet
 *   keystore_db.c            connection, durability, shared transaction
 *   keystore_walbuf.c        the VFS under SQLite (one write per commit)
 *
 * Every file works on the one connection under the one mutex `mu`; every
 * change is a transaction that ends with COMMIT under mu, then (after mu is
 * released) ksi_finish(), the single path that makes a commit durable in
 * KS_SYNC_FULL (group commit) and runs a size-triggered checkpoint.
 */
#ifndef QC_KME_KEYSTORE_INTERNAL_H
#define QC_KME_KEYSTORE_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kme/keystore.h"

/* Checkpoint when the WAL exceeds this, so a busy store keeps a bounded
 * file and consumed material leaves the disk even between maintenance runs.
 * A checkpoint holds the connection (EXCLUSIVE locking: one connection)
 * while it copies pages, so it should not come too often: at 4 MiB a
 * cross-KME load of 16 clients checkpointed each KME about six times a
 * second and ran 5-10 % slower (docs/kme.md). */
#ifndef KS_WAL_LIMIT_BYTES
#define KS_WAL_LIMIT_BYTES (16 * 1024 * 1024)
#endif
#ifndef KS_PAGE_SIZE
#define KS_PAGE_SIZE 1024
#endif
/*
 * SQLite page cache size (PRAGMA cache_size, negative: KiB): small on
 * purpose.  SQLite's page cache truncates itself to the database size at
 * every COMMIT, and a b-tree rebalance parks a page under a number past
 * the end of the file (the lock-byte page), so that truncation walks every
 * hash bucket and every page of the cache: with 32 MiB of 1 KiB pages (a
 * KME holding link blocks fills it) that was half of the CPU of a
 * reservation.  2 MiB holds the hot pages (index leaves, the current
 * blocks).  A transaction that moves more than KS_BIG_TX_BYTES of key
 * material (up to 1024 keys of 64 kbit: 8 MiB read, 8 MiB written) would
 * thrash that, so it gets the large cache until its COMMIT (ksi_tx_expect).
 */
#define KS_CACHE_SMALL -2048
#define KS_CACHE_LARGE -65536
#define KS_BIG_TX_BYTES (256 * 1024)
/* a TRUNCATE checkpoint at least every this many maintenance periods */
#define KS_TRUNCATE_EVERY 10
#define KS_STR_(x) #x
#define KS_STR(x) KS_STR_(x)

#define KS_UUID_RETRIES 8
/* pending is a 63-bit mask (ETSI deployments allow a handful of slaves) */
#define KS_MAX_SLAVES 63
/* database schema version; keystore_schema.c migrates from 1, 2 and 3 */
#define KS_SCHEMA_VERSION 4

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_POOL_SET,
    ST_KEY_INSERT,
    ST_DEC_LOOKUP,
    ST_DEC_MATERIAL,
    ST_DEC_SET_PENDING,
    ST_DEL_KEY,
    ST_EXPIRED,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_DEC_ONE,
    ST_COUNT_
};

struct keystore {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT_];
    sqlite3_stmt **lst; /* the link tables' statements (keystore_schema.c) */
    /* keystore_schema.c: the rows of `links` (under mu; rows are only ever
     * added, each by its own committed transaction before it is listed) */
    struct ksi_link *links;
    size_t n_links;
    char *migrate_peer; /* ks_options.migrate_link_peer, for ks_open only */
    /* keystore_blocks.c: the block_material row being read or erased, open
     * only while a body runs (closed before it returns, so never at COMMIT
     * or ROLLBACK TO) */
    sqlite3_blob *mat;
    int64_t mat_row;
    /*
     * Locks, in the order they are taken (never the other way round):
     *   mu       the connection: db, st, lst, mat and every field down to
     *            `stored`, the shared transaction (tx_*), ckpt_seq,
     *            truncated_ns, unf.  Take it with ks_lock(), release
     *            it with ks_unlock(); a function that needs it held starts
     *            with assert(ks_lock_held(ks)).
     *   fate_mu  the lists acked and unknown (may be taken under mu, never
     *            mu under it);
     *   sync_mu  group fsync state (synced_seq, syncing; taken under mu by
     *            a checkpoint, alone by ksi_finish).
     *   maint_mu the maintenance thread's wake-ups: held alone, never
     *            together with mu (the thread drops it before its work).
     */
    pthread_mutex_t mu;
#ifndef NDEBUG
    _Atomic(pthread_t) mu_owner; /* debug builds: who holds mu (0: nobody) */
#endif

    ks_sync sync;
    uint64_t cap_bits;
    uint64_t rate_bps;
    int64_t ttl_ms;     /* <= 0: keys never expire */
    int64_t block_ttl_ms; /* unconfirmed link blocks are erased after this */
    int page_size;
    int64_t wal_limit;  /* bytes: see KS_WAL_LIMIT_BYTES */

    uint64_t pool_bits; /* committed pool state (mirrors local_pool) */
    int64_t pool_ns;
    uint64_t stored;    /* committed number of rows in keys */
    int wal_frames;     /* frames in the WAL after the last commit */

    atomic_bool failed; /* sticky: an fsync failed, durability is unknown */
    atomic_llong clock_offset_ns;

    char *path;
    int lock_fd;
    int wal_fd;         /* the WAL: group commit and checkpoint pre-sync */
    atomic_bool ckpt_wanted;  /* the WAL passed KS_WAL_LIMIT_BYTES */
    atomic_bool ckpt_running; /* one checkpoint at a time */
    uint64_t ckpt_seq;        /* commit_seq at the last checkpoint (under mu) */
    int64_t truncated_ns;     /* time of the last TRUNCATE checkpoint (under mu) */

    /* group commit: commit_seq counts commits (bumped under mu, after
     * COMMIT); synced_seq is the highest commit known to be on disk. */
    atomic_ullong commit_seq;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t synced_seq;
    bool syncing;

    /* shared transaction (group commit, see ksi_tx): guarded by mu but
     * tx_entering, which counts callers on their way to mu */
    atomic_int tx_entering;
    bool tx_open;
    unsigned tx_count;                /* calls waiting for its COMMIT */
    struct ksi_member *tx_members;
    pthread_cond_t tx_cv;
    uint64_t snap_pool_bits, snap_stored; /* in-memory state at its BEGIN */
    int64_t snap_pool_ns;
    bool cache_large;                 /* the open transaction is a big one */

    /* maintenance thread */
    pthread_mutex_t maint_mu;
    pthread_cond_t maint_cv;
    pthread_t maint;
    bool maint_running;
    bool maint_stop;
    bool maint_ckpt;    /* a size-triggered checkpoint is wanted now */
    unsigned maint_ms;

    /* keystore_remote_outbox.c, under fate_mu: reservations the peer applied whose
     * pending outbox entries a later transaction drops (ks_remote_acked),
     * and the entries found pending at start, whose fate the peer is to
     * tell (ks_outbox_recover) */
    pthread_mutex_t fate_mu;
    struct ksi_acked *acked;
    size_t n_acked, cap_acked;
    struct ksi_unknown *unknown;
    size_t n_unknown;

    /* keystore_unfetched.c: bits held per slave not fetched yet (under mu;
     * NULL when there is no limit) */
    struct ksi_unfetched *unf;
    uint64_t unfetched_limit; /* 0: no limit */
};

/* keystore_remote_outbox.c: drop the outbox entries of acknowledged reservations
 * (ks_close, before its last checkpoint), and free the lists. */
void ksi_link_drain_acked(keystore *ks);
void ksi_link_free_lists(keystore *ks);
/* keystore_remote_outbox.c: the same for maintenance; -1 on a database
 * error (the entries stay for the next run). */
int ksi_outbox_drain_acked(keystore *ks);

/*
 * Ownership of mu, checked in debug builds (SQLite's
 * assert(sqlite3_mutex_held(...))).  With NDEBUG (meson's b_ndebug, on in
 * release builds) the wrappers are the bare pthread calls and
 * ks_lock_held() is never evaluated: nothing is added to the hot paths.
 */
static inline void ks_lock(keystore *ks)
{
    pthread_mutex_lock(&ks->mu);
#ifndef NDEBUG
    atomic_store_explicit(&ks->mu_owner, pthread_self(), memory_order_relaxed);
#endif
}

static inline void ks_unlock(keystore *ks)
{
#ifndef NDEBUG
    atomic_store_explicit(&ks->mu_owner, (pthread_t)0, memory_order_relaxed);
#endif
    pthread_mutex_unlock(&ks->mu);
}

/* Wait on cv, which releases mu meanwhile (caller holds mu). */
static inline void ks_wait(keystore *ks, pthread_cond_t *cv)
{
#ifndef NDEBUG
    atomic_store_explicit(&ks->mu_owner, (pthread_t)0, memory_order_relaxed);
#endif
    pthread_cond_wait(cv, &ks->mu);
#ifndef NDEBUG
    atomic_store_explicit(&ks->mu_owner, pthread_self(), memory_order_relaxed);
#endif
}

#ifndef NDEBUG
static inline bool ks_lock_held(const keystore *ks)
{
    return pthread_equal(atomic_load_explicit(&ks->mu_owner, memory_order_relaxed),
                         pthread_self());
}
#endif

/* The store's clock: wall time plus the test offset. */
static inline int64_t now_ns(keystore *ks)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec +
           (int64_t)atomic_load(&ks->clock_offset_ns);
}

/* Step a statement that returns no rows (or whose rows we ignore) and make
 * it reusable; returns the sqlite result of the step. */
static inline int step_reset(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc;
}

static inline bool step_ok(int rc)
{
    return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

/* The slaves of one enc call as stored in each key row: the distinct IDs,
 * each NUL-terminated, and the mask of those still owed the key. */
typedef struct slave_list {
    char small[512];
    char *data;      /* small, or heap for very long ID lists */
    size_t len;
    int64_t pending; /* bit i set: slave i has not fetched the key yet */
} slave_list;

/* ---- keystore_unfetched.c ----------------------------------------------- */

/* The per-slave count of unfetched bits (in memory, rebuilt from keys):
 * set up after the schema, before any change. */
typedef struct ksi_unfetched ksi_unfetched;
int ksi_unfetched_setup(keystore *ks, uint64_t limit_bits, char *err, size_t errlen);
void ksi_unfetched_finalize(keystore *ks);
/* Notes of a body (caller holds mu; -1 out of memory): keys recorded for
 * the pending slaves of sl (bits each), a row deleted while its pending
 * slaves were still owed bits each, one slave's fetch of bits. */
int ksi_unf_note_list(keystore *ks, const slave_list *sl, uint64_t bits);
int ksi_unf_note_row(keystore *ks, const void *slaves, size_t len, int64_t pending,
                     uint64_t bits);
int ksi_unf_note_fetch(keystore *ks, const char *slave, uint64_t bits);
/* Run a DELETE on keys ending in RETURNING slaves, pending, size_bits,
 * noting each row; the rows deleted, or -1. */
long ksi_delete_keys(keystore *ks, sqlite3_stmt *s);
/* The shared transaction's steps (keystore_db.c; caller holds mu). */
void ksi_unf_begin_tx(keystore *ks);
void ksi_unf_begin_body(keystore *ks);
void ksi_unf_item_mark(keystore *ks);
void ksi_unf_item_undo(keystore *ks);
void ksi_unf_merge(keystore *ks);
void ksi_unf_drop(keystore *ks);
void ksi_unf_abort(keystore *ks);
/* Inside a body (caller holds mu): KS_LIMIT when adding add_bits for every
 * slave of sl would put one above the limit, KS_OK otherwise (also with no
 * limit), KS_ERROR on a database error. */
ks_result ksi_unfetched_check(keystore *ks, const slave_list *sl, uint64_t add_bits);

/* ---- keystore_db.c ------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
void ksi_errf(char *err, size_t errlen, const char *fmt, ...);
void ksi_db_log(keystore *ks, const char *what);
void ksi_rollback(keystore *ks);
ks_result ksi_fail_tx(keystore *ks, const char *what);
int ksi_exec_or_err(keystore *ks, const char *sql, char *err, size_t errlen);
int64_t ksi_query_int(keystore *ks, const char *sql, int64_t dflt, int *found);

/* After a successful COMMIT (caller holds mu): number it. */
uint64_t ksi_committed_locked(keystore *ks);

/* The body of a call's transaction (caller holds mu, a transaction or a
 * savepoint is open).  It returns KS_OK and sets *changed when it wrote
 * something to commit; it applies its in-memory effects (ks->stored, the
 * pool level) only when it returns KS_OK.  Any other result, or KS_OK with
 * nothing changed, is undone; KS_ERROR is logged as a failure of `what`. */
typedef ks_result (*ksi_body)(keystore *ks, void *ctx, bool *changed);

/* Run body inside the shared transaction and return once its outcome is
 * committed and, in full mode, durable (I4).  Concurrent calls share one
 * transaction: each adds its part under a savepoint, the last one to arrive
 * commits for all (group commit: one COMMIT, one write of each shared page,
 * instead of one per call); nobody returns before that COMMIT. */
ks_result ksi_tx(keystore *ks, const char *what, ksi_body body, void *ctx);

/* Inside a body (caller holds mu): open a savepoint for one of several
 * independent items, and close it keeping (RELEASE) or undoing (ROLLBACK
 * TO, RELEASE) the item's changes.  false on a database error: the body
 * must then fail as a whole. */
bool ksi_item_begin(keystore *ks);
bool ksi_item_end(keystore *ks, bool keep);

/* A body about to move this many bytes of key material (caller holds mu):
 * a big transaction gets a large page cache until its COMMIT. */
void ksi_tx_expect(keystore *ks, uint64_t bytes);

/* Commit the open shared transaction, if any (caller holds mu).  Every
 * other user of the connection (reads, checkpoints) calls this first. */
void ksi_tx_flush_locked(keystore *ks);
/* After releasing mu: r stays KS_OK only once commit seq is durable (full
 * mode: group fsync); runs a checkpoint when the WAL grew past its bound. */
ks_result ksi_finish(keystore *ks, ks_result r, uint64_t seq);

/* Route SQLite's heap through an allocator that wipes every block on free
 * (once per process, before SQLite initialises: from ks_open). */
void ksi_install_zeroing_allocator(void);
/* sqlite3_wal_hook callback: counts the frames in the WAL. */
int ksi_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
/* Copy the WAL into the database and rewind or truncate it (caller holds
 * mu); 0 or -1. */
int ksi_checkpoint_locked(keystore *ks);
/* The same, syncing the WAL first without mu (takes mu): maintenance. */
int ksi_checkpoint_presynced(keystore *ks);

/* ---- keystore_local.c --------------------------------------------------- */

/* Level of the local pool at now (caller holds mu); *ts_out: the refill
 * time to store with it. */
uint64_t ksi_pool_level(const keystore *ks, int64_t now, int64_t *ts_out);
int ksi_batch_alloc(ks_batch *out, size_t n, size_t bytes);
int ksi_slave_list_build(slave_list *sl, const char *const *slaves, size_t nslaves);
void ksi_slave_list_free(slave_list *sl);
bool ksi_enc_args_ok(const char *master, const char *const *slaves, size_t nslaves,
                     uint32_t n, uint32_t size_bits, const ks_batch *out);


/* ---- keystore_schema.c, keystore_blocks.c ------------------------------ */

/* Inside init_schema's transaction: create the link tables, migrating a
 * database of schema version `from` (0: new file; the blocks of a file
 * older than version 4 go to the link to ks->migrate_peer). */
int ksi_link_schema(keystore *ks, int64_t from, char *err, size_t errlen);
int ksi_link_prepare(keystore *ks, char *err, size_t errlen);
void ksi_link_finalize(keystore *ks);
/* keystore_blocks.c: periodic link work (expire unconfirmed blocks, drop
 * used blocks, prune old records); returns -1 on a database error.  The
 * acknowledged outbox entries are drained before it (ks_maintain). */
int ksi_link_maintain(keystore *ks);
/* keystore_blocks.c: a usable peer KME ID, naming a link: 1..KS_PEER_MAX
 * characters. */
#define KS_PEER_MAX 255
bool ksi_peer_ok(const char *peer);

#endif
