/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_db.c - the bottom layer of the key store: the one SQLite
 * connection, its durability and the shared transaction (group commit).
 *
 * Every change to the store, local or link, is a body run by ksi_tx: under
 * ks->mu, inside one transaction shared with the calls that arrive
 * meanwhile, each under a savepoint of its own; the last to arrive commits
 * for all (one COMMIT).  ksi_finish then returns KS_OK only once that
 * COMMIT is durable: in KS_SYNC_FULL concurrent commits share one fdatasync
 * of the WAL (wait_durable), so an HTTP answer never precedes the state it
 * implies (I4).
 *
 * Erasure: secure_delete zeroes deleted content inside the database file;
 * the WAL still holds old page images until a checkpoint, so maintenance
 * (and a WAL-size trigger) runs wal_checkpoint(TRUNCATE).  SQLite's own
 * heap is wiped on free (the zeroing allocator below) because it copies
 * overflowing blobs into temporary buffers.
 *
 * Layers (each calls only those below it): keystore_open.c (open, close,
 * maintenance) > keystore_schema.c, keystore_remote_*.c > keystore_blocks.c
 * > keystore_local.c > keystore_unfetched.c > this file (keystore_walbuf.c
 * is the VFS under SQLite).  Locks: see keystore_internal.h.
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secret.h"

/* ---- small helpers ------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
void ksi_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void ksi_db_log(keystore *ks, const char *what)
{
    log_error("keystore: %s: %s", what, sqlite3_errmsg(ks->db));
}

/* Undo the open transaction, if any.  A failed ROLLBACK leaves the
 * connection in an unknown state: refuse further work. */
void ksi_rollback(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (sqlite3_get_autocommit(ks->db))
        return;
    if (!step_ok(step_reset(ks->st[ST_ROLLBACK]))) {
        ksi_db_log(ks, "rollback");
        atomic_store(&ks->failed, true);
    }
}

ks_result ksi_fail_tx(keystore *ks, const char *what)
{
    assert(ks_lock_held(ks));
    ksi_db_log(ks, what);
    ksi_rollback(ks);
    return KS_ERROR;
}

int ksi_exec_or_err(keystore *ks, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(ks->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    ksi_errf(err, errlen, "key store %s: %.60s: %s", ks->path, sql, sqlite3_errmsg(ks->db));
    return -1;
}


int64_t ksi_query_int(keystore *ks, const char *sql, int64_t dflt, int *found)
{
    sqlite3_stmt *s = NULL;
    int64_t v = dflt;
    *found = 0;
    if (sqlite3_prepare_v2(ks->db, sql, -1, &s, NULL) != SQLITE_OK)
        return dflt;
    if (sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_int64(s, 0);
        *found = 1;
    }
    sqlite3_finalize(s);
    return v;
}

/* ---- SQLite heap that wipes on free ------------------------------------ */

/* SQLite copies blobs that overflow a page into temporary heap buffers and
 * frees them unwiped; route its allocator through one that zeroes every
 * block before release.  Process-wide and only possible before SQLite is
 * initialised, so it is installed once from the first ks_open. */
static void *zm_malloc(int n)
{
    return malloc((size_t)n);
}

static void zm_free(void *p)
{
    if (!p)
        return;
    secret_wipe(p, malloc_usable_size(p));
    free(p);
}

static void *zm_realloc(void *p, int n)
{
    if (!p)
        return malloc((size_t)n);
    size_t old = malloc_usable_size(p);
    void *q = malloc((size_t)n);
    if (!q)
        return NULL;
    memcpy(q, p, old < (size_t)n ? old : (size_t)n);
    zm_free(p);
    return q;
}

static int zm_size(void *p)
{
    return p ? (int)malloc_usable_size(p) : 0;
}

static int zm_roundup(int n)
{
    return (n + 7) & ~7;
}

static int zm_init(void *unused)
{
    (void)unused;
    return SQLITE_OK;
}

static void zm_shutdown(void *unused)
{
    (void)unused;
}

static void install_zeroing_allocator_now(void)
{
    static const sqlite3_mem_methods mm = {
        zm_malloc, zm_free, zm_realloc, zm_size, zm_roundup, zm_init, zm_shutdown, NULL,
    };
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mm) != SQLITE_OK)
        log_warn("keystore: SQLite already initialised; its heap is not wiped on free");
}

static pthread_once_t zm_once = PTHREAD_ONCE_INIT;

void ksi_install_zeroing_allocator(void)
{
    pthread_once(&zm_once, install_zeroing_allocator_now);
}

/* ---- durability --------------------------------------------------------- */

/*
 * Group commit for KS_SYNC_FULL.
 *
 * The connection runs with synchronous=OFF: COMMIT only write()s the frames
 * into "<db>-wal", which makes them safe against a process crash but not
 * against power loss.  We make them durable ourselves, outside the store
 * mutex, so that one fdatasync covers every commit that happened before it
 * started.  A caller whose commit got sequence number seq waits until
 * synced_seq >= seq.  The first waiter that finds no sync running becomes
 * the leader: it reads the current commit_seq as its target (every commit
 * up to target has already been written to the WAL), syncs the WAL file,
 * publishes synced_seq = target and wakes everybody; waiters not covered
 * elect the next leader.  With k concurrent requests that costs about one
 * sync per k commits instead of k syncs.
 *
 * Why this is power-loss safe: SQLite's WAL recovery replays every frame
 * whose checksum chain is intact, so a commit is durable once its frames and
 * the WAL header are on disk; fdatasync of the WAL also persists its size.
 * The only other moment the database relies on unsynced data is a
 * checkpoint: it copies WAL pages into the database file and then truncates
 * the WAL.  With synchronous=OFF SQLite would not fsync the database before
 * discarding the WAL, and a power cut could lose both copies.  So every
 * checkpoint in full mode runs with synchronous=FULL (sync WAL, backfill,
 * sync database, then truncate), after which all commits are durable and
 * synced_seq can jump to commit_seq.  Our fd stays valid because SQLite only
 * truncates the WAL while our connection is open, never unlinks it.
 *
 * fdatasync failure leaves the page cache state unknown (the kernel may
 * drop the dirty pages): we do not retry, we fail the caller and every later
 * call.
 */
static int wait_durable(keystore *ks, uint64_t seq)
{
    if (ks->sync != KS_SYNC_FULL)
        return 0;
    pthread_mutex_lock(&ks->sync_mu);
    while (ks->synced_seq < seq && !atomic_load(&ks->failed)) {
        if (ks->syncing) {
            pthread_cond_wait(&ks->sync_cv, &ks->sync_mu);
            continue;
        }
        ks->syncing = true;
        uint64_t target = atomic_load(&ks->commit_seq);
        pthread_mutex_unlock(&ks->sync_mu);
        int rc = fdatasync(ks->wal_fd);
        int e = errno;
        pthread_mutex_lock(&ks->sync_mu);
        ks->syncing = false;
        if (rc != 0) {
            log_error("keystore: fdatasync of the WAL failed: %s; refusing further work",
                      strerror(e));
            atomic_store(&ks->failed, true);
        } else if (target > ks->synced_seq) {
            ks->synced_seq = target;
        }
        pthread_cond_broadcast(&ks->sync_cv);
    }
    int ok = ks->synced_seq >= seq;
    pthread_mutex_unlock(&ks->sync_mu);
    return ok ? 0 : -1;
}

static void publish_synced(keystore *ks, uint64_t seq)
{
    pthread_mutex_lock(&ks->sync_mu);
    if (seq > ks->synced_seq)
        ks->synced_seq = seq;
    pthread_cond_broadcast(&ks->sync_cv);
    pthread_mutex_unlock(&ks->sync_mu);
}

/*
 * Which checkpoint: RESTART copies the WAL into the database and makes the
 * next commit write from the start of the WAL again, so under load old
 * frames (deleted key material among them) are overwritten within one
 * maintenance period.  TRUNCATE also cuts the file to zero length, which
 * erases every old frame at once but makes the file grow again block by
 * block: measured here, truncating every second costs a third of the
 * throughput.  So we truncate when the store was idle since the last
 * checkpoint (it costs nothing then) and at least every KS_TRUNCATE_EVERY
 * maintenance periods.
 */
static int checkpoint_mode(keystore *ks)
{
    assert(ks_lock_held(ks));
    int64_t now = now_ns(ks);
    uint64_t seq = atomic_load(&ks->commit_seq);
    bool idle = seq == ks->ckpt_seq;
    bool due = now - ks->truncated_ns >= (int64_t)KS_TRUNCATE_EVERY * ks->maint_ms * 1000000LL;
    ks->ckpt_seq = seq;
    if (idle || due) {
        ks->truncated_ns = now;
        return SQLITE_CHECKPOINT_TRUNCATE;
    }
    return SQLITE_CHECKPOINT_RESTART;
}

/* Copy the WAL into the database file and rewind or truncate it (caller
 * holds mu).  In full mode with synchronous=FULL for the reason given above. */
int ksi_checkpoint_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    bool full = ks->sync == KS_SYNC_FULL;
    int rc;

    if (full && sqlite3_exec(ks->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        ksi_db_log(ks, "checkpoint");
        return -1;
    }
    rc = sqlite3_wal_checkpoint_v2(ks->db, NULL, checkpoint_mode(ks), NULL, NULL);
    if (rc != SQLITE_OK)
        ksi_db_log(ks, "wal_checkpoint");
    if (full) {
        if (sqlite3_exec(ks->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK) {
            ksi_db_log(ks, "checkpoint");
            rc = SQLITE_ERROR;
        }
        if (rc == SQLITE_OK)
            publish_synced(ks, atomic_load(&ks->commit_seq));
    }
    if (rc == SQLITE_OK) {
        ks->wal_frames = 0;
        atomic_store(&ks->ckpt_wanted, false);
    }
    return rc == SQLITE_OK ? 0 : -1;
}

int ksi_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((keystore *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

/* After a successful COMMIT (caller holds mu): count it and note when the
 * WAL has grown past its bound. */
uint64_t ksi_committed_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    uint64_t seq = atomic_fetch_add(&ks->commit_seq, 1) + 1;
    if ((int64_t)ks->wal_frames * (ks->page_size + 24) > ks->wal_limit)
        atomic_store(&ks->ckpt_wanted, true);
    return seq;
}

/*
 * Checkpoint without stalling requests.  A checkpoint's cost is dominated
 * by syncing the WAL (every frame since the last one, megabytes) before it
 * copies pages into the database.  We do that sync first, outside the
 * mutex, while other requests keep committing; the checkpoint proper, under
 * the mutex, then only syncs the few frames added meanwhile and the
 * database pages it wrote.  One checkpoint at a time.
 */
int ksi_checkpoint_presynced(keystore *ks)
{
    bool idle = false;
    if (!atomic_compare_exchange_strong(&ks->ckpt_running, &idle, true))
        return 0; /* another one is under way and covers ours */
    if (fdatasync(ks->wal_fd) != 0) {
        /* the error is reported once per descriptor and group commit shares
         * this one: treat it as the failure it is */
        log_error("keystore: fdatasync of the WAL failed: %s; refusing further work",
                  strerror(errno));
        atomic_store(&ks->failed, true);
    }
    int rc = -1;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    if (!atomic_load(&ks->failed))
        rc = ksi_checkpoint_locked(ks); /* failure is logged; commits stand */
    atomic_store(&ks->ckpt_wanted, false);
    ks_unlock(ks);
    atomic_store(&ks->ckpt_running, false);
    return rc;
}

/* Size-triggered checkpoint.  The maintenance thread runs it, woken now,
 * so that the call whose commit crossed the bound answers at once instead
 * of after a checkpoint (tens of milliseconds: the WAL's fdatasync, the
 * page copies, the database's sync); other calls go on committing while
 * the WAL is synced.  Without a maintenance thread the caller runs it. */
static void maybe_checkpoint(keystore *ks)
{
    if (!atomic_load(&ks->ckpt_wanted))
        return;
    if (!ks->maint_running) {
        ksi_checkpoint_presynced(ks);
        return;
    }
    pthread_mutex_lock(&ks->maint_mu);
    ks->maint_ckpt = true;
    pthread_cond_signal(&ks->maint_cv);
    pthread_mutex_unlock(&ks->maint_mu);
}

/* The one way every call (local, link, remote) ends after COMMIT: a result
 * that was committed but is not known durable becomes KS_ERROR, and those
 * keys or bits count as burnt (I5). */
ks_result ksi_finish(keystore *ks, ks_result r, uint64_t seq)
{
    if (r == KS_OK && wait_durable(ks, seq) != 0)
        r = KS_ERROR;
    maybe_checkpoint(ks);
    return r;
}

/* ---- shared transactions (group commit) -------------------------------- */

/*
 * Every call that changes the store runs its body through ksi_tx.  Calls
 * that arrive while another holds the mutex join one open transaction
 * instead of each running BEGIN ... COMMIT: a commit costs a WAL write of
 * every page it touched (two write syscalls per page plus checksums), and
 * concurrent calls touch mostly the same pages (the pool row, the newest
 * leaf of each index, the current link block), so k calls in one commit
 * write far less than k commits.  This is group commit in normal mode too.
 *
 * Protocol, all under mu: a caller announces itself in tx_entering before
 * it waits for mu.  With mu it opens the transaction (BEGIN) or, if one is
 * open, a savepoint, so that a body that fails or refuses undoes only its
 * own part.  Then, if nobody else is on the way (tx_entering == 0) or the
 * batch is full, it COMMITs for everybody in the batch and wakes them;
 * otherwise it waits: one of the callers on the way is then the last and
 * commits (by induction every batch is committed).  A caller returns only
 * after the COMMIT that holds its part, so no answer precedes its state
 * (I4), and a crash before that COMMIT loses the whole batch, none of
 * which was answered.  In-memory counters changed by bodies are restored
 * from the snapshot taken at BEGIN when the batch fails to commit.
 */
#define KS_TX_MAX 32 /* calls per shared transaction: bounds the wait */

typedef struct ksi_member {
    struct ksi_member *next;
    ks_result r;
    uint64_t seq;
    bool done;
} ksi_member;

/* After a transaction that needed the large cache: back to the small one
 * (SQLite drops the surplus clean pages at once). */
static void cache_restore_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (!ks->cache_large)
        return;
    ks->cache_large = false;
    if (sqlite3_exec(ks->db, "PRAGMA cache_size=" KS_STR(KS_CACHE_SMALL), NULL, NULL, NULL) !=
        SQLITE_OK)
        ksi_db_log(ks, "cache size");
}

void ksi_tx_expect(keystore *ks, uint64_t bytes)
{
    assert(ks_lock_held(ks));
    if (bytes <= KS_BIG_TX_BYTES || ks->cache_large)
        return;
    if (sqlite3_exec(ks->db, "PRAGMA cache_size=" KS_STR(KS_CACHE_LARGE), NULL, NULL, NULL) ==
        SQLITE_OK)
        ks->cache_large = true;
    else
        ksi_db_log(ks, "cache size"); /* slower, not wrong */
}

/* Undo the whole open transaction and fail everybody in it. */
static void tx_abort_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    ksi_rollback(ks);
    cache_restore_locked(ks);
    ksi_unf_abort(ks);
    ks->pool_bits = ks->snap_pool_bits;
    ks->pool_ns = ks->snap_pool_ns;
    ks->stored = ks->snap_stored;
    for (ksi_member *m = ks->tx_members; m; m = m->next) {
        m->r = KS_ERROR;
        m->done = true;
    }
    ks->tx_members = NULL;
    ks->tx_count = 0;
    ks->tx_open = false;
    pthread_cond_broadcast(&ks->tx_cv);
}

void ksi_tx_flush_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (!ks->tx_open)
        return;
    if (step_reset(ks->st[ST_COMMIT]) != SQLITE_DONE) {
        ksi_db_log(ks, "commit");
        tx_abort_locked(ks);
        return;
    }
    uint64_t seq = ksi_committed_locked(ks);
    cache_restore_locked(ks);
    for (ksi_member *m = ks->tx_members; m; m = m->next) {
        m->seq = seq;
        m->done = true;
    }
    ks->tx_members = NULL;
    ks->tx_count = 0;
    ks->tx_open = false;
    pthread_cond_broadcast(&ks->tx_cv);
}

/* Open the transaction or a savepoint in it; false on failure. */
static bool tx_begin_part(keystore *ks, bool joined)
{
    assert(ks_lock_held(ks));
    if (joined) {
        if (step_reset(ks->st[ST_SAVEPOINT]) == SQLITE_DONE)
            return true;
        ksi_db_log(ks, "savepoint");
        return false;
    }
    if (step_reset(ks->st[ST_BEGIN]) != SQLITE_DONE) {
        ksi_fail_tx(ks, "begin");
        return false;
    }
    ks->tx_open = true;
    ksi_unf_begin_tx(ks);
    ks->snap_pool_bits = ks->pool_bits;
    ks->snap_pool_ns = ks->pool_ns;
    ks->snap_stored = ks->stored;
    return true;
}

/* Undo this call's part: its savepoint, or the transaction it opened. */
static void tx_undo_part(keystore *ks, bool joined)
{
    assert(ks_lock_held(ks));
    if (!joined) {
        ksi_rollback(ks);
        cache_restore_locked(ks);
        ks->tx_open = false;
        return;
    }
    if (step_reset(ks->st[ST_ROLLBACK_TO]) != SQLITE_DONE ||
        step_reset(ks->st[ST_RELEASE]) != SQLITE_DONE) {
        ksi_db_log(ks, "rollback to savepoint");
        tx_abort_locked(ks);
    }
}

/* One item of a body that applies several independent items (a peer's
 * batch of reservations): a savepoint nested in the call's own part, so a
 * refused or failed item is undone alone and the others stay. */
bool ksi_item_begin(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (step_reset(ks->st[ST_SAVEPOINT]) == SQLITE_DONE) {
        ksi_unf_item_mark(ks);
        return true;
    }
    ksi_db_log(ks, "item savepoint");
    return false;
}

bool ksi_item_end(keystore *ks, bool keep)
{
    assert(ks_lock_held(ks));
    if ((keep || step_reset(ks->st[ST_ROLLBACK_TO]) == SQLITE_DONE) &&
        step_reset(ks->st[ST_RELEASE]) == SQLITE_DONE) {
        if (!keep)
            ksi_unf_item_undo(ks);
        return true;
    }
    ksi_db_log(ks, keep ? "release item savepoint" : "rollback to item savepoint");
    return false;
}

/* This call's part of the shared transaction (caller holds mu).  KS_OK
 * with me queued for the COMMIT, or the call's final result. */
static ks_result tx_part_locked(keystore *ks, const char *what, ksi_body body, void *ctx,
                                ksi_member *me, bool *queued)
{
    assert(ks_lock_held(ks));
    bool joined = ks->tx_open, changed = false;
    if (!tx_begin_part(ks, joined))
        return KS_ERROR;
    ksi_unf_begin_body(ks);
    ks_result r = body(ks, ctx, &changed);
    if (r == KS_OK && (changed || joined)) {
        /* joined without changes (an idempotent repeat) still waits: what
         * it confirms may be part of this very transaction */
        if (joined && step_reset(ks->st[ST_RELEASE]) != SQLITE_DONE) {
            ksi_db_log(ks, "release savepoint");
            tx_abort_locked(ks);
            return KS_ERROR;
        }
        ksi_unf_merge(ks);
        me->r = KS_OK;
        me->next = ks->tx_members;
        ks->tx_members = me;
        ks->tx_count++;
        *queued = true;
        return KS_OK;
    }
    if (r == KS_ERROR)
        ksi_db_log(ks, what);
    ksi_unf_drop(ks);
    tx_undo_part(ks, joined);
    /* nothing changed: still wait for earlier commits to be durable */
    me->seq = atomic_load(&ks->commit_seq);
    return r;
}

ks_result ksi_tx(keystore *ks, const char *what, ksi_body body, void *ctx)
{
    ksi_member me = { 0 };
    bool queued = false;
    ks_result r = KS_ERROR;

    atomic_fetch_add(&ks->tx_entering, 1);
    ks_lock(ks);
    atomic_fetch_sub(&ks->tx_entering, 1);
    if (!atomic_load(&ks->failed))
        r = tx_part_locked(ks, what, body, ctx, &me, &queued);
    /* the last one in commits the batch, whatever its own outcome */
    if (ks->tx_open && (atomic_load(&ks->tx_entering) == 0 || ks->tx_count >= KS_TX_MAX))
        ksi_tx_flush_locked(ks);
    while (queued && !me.done)
        ks_wait(ks, &ks->tx_cv);
    if (queued)
        r = me.r;
    ks_unlock(ks);
    return ksi_finish(ks, r, me.seq);
}

/* ---- misc --------------------------------------------------------------- */

void ks_batch_free(ks_batch *b)
{
    if (!b)
        return;
    secret_free(&b->arena);
    free(b->keys);
    b->keys = NULL;
    b->n = 0;
}

const char *ks_result_str(ks_result r)
{
    switch (r) {
    case KS_OK: return "ok";
    case KS_EMPTY: return "not enough key material";
    case KS_NOT_FOUND: return "key not found";
    case KS_UNAUTHORIZED: return "not authorized";
    case KS_ERROR: return "key store error";
    case KS_CONFLICT: return "same ID recorded with other content";
    case KS_REJECTED: return "segment not usable";
    case KS_LIMIT: return "per-slave limit of unfetched bits reached";
    case KS_TAMPERED: return "relayed key failed its integrity check";
    }
    return "unknown";
}

void ks_testing_advance_clock(keystore *ks, int64_t ms)
{
    atomic_fetch_add(&ks->clock_offset_ns, (long long)ms * 1000000LL);
}
