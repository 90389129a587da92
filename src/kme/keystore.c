/*
 * keystore.c - the KME's durable key state: one SQLite file in WAL mode.
 *
 * api.c calls ks_local_enc / ks_dec once per ETSI request; each call is
 * all or nothing inside a transaction under one mutex on one connection
 * (shared with the calls that arrive meanwhile: group commit, ksi_tx), and
 * returns KS_OK only after that COMMIT (and, in KS_SYNC_FULL, after an
 * fsync of the WAL that covers it), so an HTTP answer never precedes the
 * state it implies (I4).
 *
 * Tables: meta (schema version), local_pool (one row: level and refill
 * time), keys (one row per undelivered key, WITHOUT ROWID on the 16-byte
 * key ID) and its index keys_expires.  A key row carries its authorised
 * slaves (a NUL-terminated list) and a bitmask of those still owed the key,
 * rather than a key_slaves table: every commit appends each page it touches
 * to the WAL, and the WAL bytes per request are what bound throughput (they
 * all get synced by a checkpoint), so enc+dec touch 4 pages, not 6.  A key
 * row is deleted as soon as the last slave has the key, or at expiry.
 * keys.res_id names the peer's reservation a remote key came from.  QKD
 * link blocks, our reservations (outbox) and the peer's live in
 * keystore_link.c, on this same connection; keystore_internal.h is what the
 * two files share.  Schema version 3 (versions 1 and 2 are migrated at open).
 *
 * Erasure: secure_delete zeroes deleted content inside the database file;
 * the WAL still holds old page images until a checkpoint, so ks_maintain
 * (and a WAL-size trigger) runs wal_checkpoint(TRUNCATE).  SQLite's own
 * heap is wiped on free (see zeroing allocator below) because it copies
 * overflowing blobs into temporary buffers.
 *
 * Group commit, two levels: concurrent calls share one transaction and one
 * COMMIT (ksi_tx, both sync modes), and in KS_SYNC_FULL concurrent commits
 * share one fsync of the WAL (wait_durable()).
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"
#include "kme/keystore_walbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <malloc.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/log.h"
#include "common/monotime.h"
#include "common/secret.h"
#include "common/uuid.h"

/* Checkpoint when the WAL exceeds this, so a busy store keeps a bounded
 * file and consumed material leaves the disk even between maintenance runs.
 * A checkpoint holds the connection (EXCLUSIVE locking: one connection)
 * while it copies pages, so it should not come too often: at 4 MiB a
 * cross-KME load of 16 clients checkpointed each KME about six times a
 * second and ran 5-10 % slower (docs/kme.md). */
#ifndef KS_WAL_LIMIT_BYTES
#define KS_WAL_LIMIT_BYTES (16 * 1024 * 1024)
#endif
/* Expiry deletes at most this many keys per transaction, so a mass expiry
 * never holds the mutex for long. */
#define KS_EXPIRE_CHUNK 256
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

__extension__ typedef unsigned __int128 u128;

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_POOL_SET] = "UPDATE local_pool SET bits = ?1, refill_ns = ?2 WHERE id = 0",
    [ST_KEY_INSERT] = "INSERT INTO keys(key_id, master, size_bits, material, created, expires,"
                      " slaves, pending) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* a row when the key exists for this master and is live */
    [ST_DEC_LOOKUP] = "SELECT size_bits, slaves, pending FROM keys"
                      " WHERE key_id = ?1 AND master = ?2 AND expires > ?3",
    [ST_DEC_MATERIAL] = "SELECT material, slaves, pending FROM keys WHERE key_id = ?1",
    [ST_DEC_SET_PENDING] = "UPDATE keys SET pending = ?2 WHERE key_id = ?1",
    [ST_DEL_KEY] = "DELETE FROM keys WHERE key_id = ?1",
    [ST_EXPIRED] = "DELETE FROM keys WHERE key_id IN"
                   " (SELECT key_id FROM keys WHERE expires <= ?1 ORDER BY expires LIMIT ?2)",
    [ST_SAVEPOINT] = "SAVEPOINT part",
    [ST_RELEASE] = "RELEASE part",
    [ST_ROLLBACK_TO] = "ROLLBACK TO part",
    /* dec_keys of one key: the lookup and the material at once */
    [ST_DEC_ONE] = "SELECT size_bits, slaves, pending, material FROM keys"
                   " WHERE key_id = ?1 AND master = ?2 AND expires > ?3",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta("
    "  name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS local_pool("
    "  id INTEGER PRIMARY KEY CHECK (id = 0),"
    "  bits INTEGER NOT NULL CHECK (bits >= 0),"
    "  refill_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS keys("
    "  key_id BLOB PRIMARY KEY CHECK (length(key_id) = 16),"
    "  master TEXT NOT NULL,"
    "  size_bits INTEGER NOT NULL CHECK (size_bits > 0 AND size_bits % 8 = 0),"
    "  material BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"     /* unix ms */
    "  expires INTEGER NOT NULL,"     /* unix ms */
    "  slaves BLOB NOT NULL,"         /* slave IDs, each NUL-terminated */
    "  pending INTEGER NOT NULL,"     /* bit i: slave i still owed the key */
    "  res_id BLOB"                   /* remote keys: the peer's reservation */
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS keys_expires ON keys(expires);";

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
    if (sqlite3_get_autocommit(ks->db))
        return;
    if (!step_ok(step_reset(ks->st[ST_ROLLBACK]))) {
        ksi_db_log(ks, "rollback");
        atomic_store(&ks->failed, true);
    }
}

ks_result ksi_fail_tx(keystore *ks, const char *what)
{
    ksi_db_log(ks, what);
    ksi_rollback(ks);
    return KS_ERROR;
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

static void install_zeroing_allocator(void)
{
    static const sqlite3_mem_methods mm = {
        zm_malloc, zm_free, zm_realloc, zm_size, zm_roundup, zm_init, zm_shutdown, NULL,
    };
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mm) != SQLITE_OK)
        log_warn("keystore: SQLite already initialised; its heap is not wiped on free");
}

static pthread_once_t zm_once = PTHREAD_ONCE_INIT;

/* ---- local pool --------------------------------------------------------- */

/* Level of the local pool at now, refilled lazily: stored + rate * elapsed,
 * at most cap.  *ts_out receives the refill time to persist with that level:
 * only the time actually converted into bits is consumed, so frequent calls
 * do not lose fractional bits. */
static uint64_t pool_level(const keystore *ks, int64_t now, int64_t *ts_out)
{
    uint64_t lvl = ks->pool_bits < ks->cap_bits ? ks->pool_bits : ks->cap_bits;

    if (ks->rate_bps == 0) {
        *ts_out = now;
        return ks->cap_bits;
    }
    if (now <= ks->pool_ns) { /* clock stepped back: count from now */
        *ts_out = now;
        return lvl;
    }
    u128 add = (u128)ks->rate_bps * (uint64_t)(now - ks->pool_ns) / 1000000000u;
    if ((u128)lvl + add >= ks->cap_bits) {
        *ts_out = now;
        return ks->cap_bits;
    }
    *ts_out = ks->pool_ns + (int64_t)(add * 1000000000u / ks->rate_bps);
    return lvl + (uint64_t)add;
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
static int checkpoint_locked(keystore *ks)
{
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

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
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
static int checkpoint_presynced(keystore *ks)
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
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    if (!atomic_load(&ks->failed))
        rc = checkpoint_locked(ks); /* failure is logged; commits stand */
    atomic_store(&ks->ckpt_wanted, false);
    pthread_mutex_unlock(&ks->mu);
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
        checkpoint_presynced(ks);
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
    if (!ks->cache_large)
        return;
    ks->cache_large = false;
    if (sqlite3_exec(ks->db, "PRAGMA cache_size=" KS_STR(KS_CACHE_SMALL), NULL, NULL, NULL) !=
        SQLITE_OK)
        ksi_db_log(ks, "cache size");
}

void ksi_tx_expect(keystore *ks, uint64_t bytes)
{
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
    ksi_rollback(ks);
    cache_restore_locked(ks);
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
    ks->snap_pool_bits = ks->pool_bits;
    ks->snap_pool_ns = ks->pool_ns;
    ks->snap_stored = ks->stored;
    return true;
}

/* Undo this call's part: its savepoint, or the transaction it opened. */
static void tx_undo_part(keystore *ks, bool joined)
{
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
    if (step_reset(ks->st[ST_SAVEPOINT]) == SQLITE_DONE)
        return true;
    ksi_db_log(ks, "item savepoint");
    return false;
}

bool ksi_item_end(keystore *ks, bool keep)
{
    if ((keep || step_reset(ks->st[ST_ROLLBACK_TO]) == SQLITE_DONE) &&
        step_reset(ks->st[ST_RELEASE]) == SQLITE_DONE)
        return true;
    ksi_db_log(ks, keep ? "release item savepoint" : "rollback to item savepoint");
    return false;
}

/* This call's part of the shared transaction (caller holds mu).  KS_OK
 * with me queued for the COMMIT, or the call's final result. */
static ks_result tx_part_locked(keystore *ks, const char *what, ksi_body body, void *ctx,
                                ksi_member *me, bool *queued)
{
    bool joined = ks->tx_open, changed = false;
    if (!tx_begin_part(ks, joined))
        return KS_ERROR;
    ks_result r = body(ks, ctx, &changed);
    if (r == KS_OK && (changed || joined)) {
        /* joined without changes (an idempotent repeat) still waits: what
         * it confirms may be part of this very transaction */
        if (joined && step_reset(ks->st[ST_RELEASE]) != SQLITE_DONE) {
            ksi_db_log(ks, "release savepoint");
            tx_abort_locked(ks);
            return KS_ERROR;
        }
        me->r = KS_OK;
        me->next = ks->tx_members;
        ks->tx_members = me;
        ks->tx_count++;
        *queued = true;
        return KS_OK;
    }
    if (r == KS_ERROR)
        ksi_db_log(ks, what);
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
    pthread_mutex_lock(&ks->mu);
    atomic_fetch_sub(&ks->tx_entering, 1);
    if (!atomic_load(&ks->failed))
        r = tx_part_locked(ks, what, body, ctx, &me, &queued);
    /* the last one in commits the batch, whatever its own outcome */
    if (ks->tx_open && (atomic_load(&ks->tx_entering) == 0 || ks->tx_count >= KS_TX_MAX))
        ksi_tx_flush_locked(ks);
    while (queued && !me.done)
        pthread_cond_wait(&ks->tx_cv, &ks->mu);
    if (queued)
        r = me.r;
    pthread_mutex_unlock(&ks->mu);
    return ksi_finish(ks, r, me.seq);
}

/* ---- open / close ------------------------------------------------------- */

static int take_lock_file(keystore *ks, char *err, size_t errlen)
{
    size_t n = strlen(ks->path) + sizeof ".lock";
    char *lp = malloc(n);
    if (!lp) {
        ksi_errf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(lp, n, "%s.lock", ks->path);
    ks->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (ks->lock_fd < 0) {
        ksi_errf(err, errlen, "cannot open lock file %s: %s", lp, strerror(errno));
        free(lp);
        return -1;
    }
    if (flock(ks->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            ksi_errf(err, errlen, "key store %s is in use by another process (%s is locked)",
                 ks->path, lp);
        else
            ksi_errf(err, errlen, "cannot lock %s: %s", lp, strerror(errno));
        free(lp);
        return -1;
    }
    free(lp);
    return 0;
}

/* The file holds key material: create it private before SQLite does (SQLite
 * gives -wal and -shm the permissions of the database file). */
static int precreate_db(const keystore *ks, char *err, size_t errlen)
{
    int fd = open(ks->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        ksi_errf(err, errlen, "cannot open key store %s: %s", ks->path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int ksi_exec_or_err(keystore *ks, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(ks->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    ksi_errf(err, errlen, "key store %s: %.60s: %s", ks->path, sql, sqlite3_errmsg(ks->db));
    return -1;
}

static int configure_db(keystore *ks, char *err, size_t errlen)
{
    /* EXCLUSIVE locking: one connection in one process (the lock file
     * guarantees it), so the WAL index lives in heap memory, no -shm. */
    static const char *const pragmas[] = {
        "PRAGMA page_size=" KS_STR(KS_PAGE_SIZE),
        "PRAGMA locking_mode=EXCLUSIVE",
        "PRAGMA secure_delete=ON",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=" KS_STR(KS_CACHE_SMALL),
        "PRAGMA wal_autocheckpoint=0",
        "PRAGMA foreign_keys=OFF",
    };
    sqlite3_busy_timeout(ks->db, 5000);
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++)
        if (ksi_exec_or_err(ks, pragmas[i], err, errlen) != 0)
            return -1;

    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(ks->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) == SQLITE_OK &&
             sqlite3_step(s) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!ok) {
        ksi_errf(err, errlen, "key store %s: cannot switch to WAL mode: %s", ks->path,
             sqlite3_errmsg(ks->db));
        return -1;
    }
    const char *sync = ks->sync == KS_SYNC_FULL ? "PRAGMA synchronous=OFF"
                                                : "PRAGMA synchronous=NORMAL";
    return ksi_exec_or_err(ks, sync, err, errlen);
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

/* Create or check the schema, load pool state and key count, and record the
 * open (which also guarantees the WAL file exists). */
static int init_schema(keystore *ks, char *err, size_t errlen)
{
    int found;
    char sql[256];
    int64_t now = now_ns(ks);

    if (ksi_exec_or_err(ks, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    if (ksi_exec_or_err(ks, schema_sql, err, errlen) != 0)
        goto fail;
    int64_t ver = ksi_query_int(ks, "SELECT value FROM meta WHERE name = 'schema_version'", 0, &found);
    if (found && (ver < 1 || ver > KS_SCHEMA_VERSION)) {
        ksi_errf(err, errlen, "key store %s has schema version %" PRId64 "; this program knows %d",
             ks->path, ver, KS_SCHEMA_VERSION);
        goto fail;
    }
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO meta VALUES ('schema_version', %d);"
             "INSERT OR REPLACE INTO meta VALUES ('last_open_ms', %" PRId64 ");"
             "INSERT OR IGNORE INTO local_pool VALUES (0, %" PRIu64 ", %" PRId64 ");",
             KS_SCHEMA_VERSION, now / 1000000, ks->cap_bits > INT64_MAX ? (uint64_t)INT64_MAX : ks->cap_bits, now);
    if (ksi_link_schema(ks, found ? ver : 0, err, errlen) != 0 ||
        ksi_exec_or_err(ks, sql, err, errlen) != 0)
        goto fail;
    ks->pool_bits = (uint64_t)ksi_query_int(ks, "SELECT bits FROM local_pool WHERE id = 0", 0, &found);
    ks->pool_ns = ksi_query_int(ks, "SELECT refill_ns FROM local_pool WHERE id = 0", now, &found);
    ks->stored = (uint64_t)ksi_query_int(ks, "SELECT count(*) FROM keys", 0, &found);
    ks->page_size = (int)ksi_query_int(ks, "PRAGMA page_size", 4096, &found);
    if (ksi_exec_or_err(ks, "COMMIT", err, errlen) != 0)
        goto fail;
    return 0;
fail:
    sqlite3_exec(ks->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int rc = fsync_dir(dirname(copy));
    free(copy);
    return rc;
}

/* Hold an fd on the WAL for group commit and checkpoint pre-syncs (it must
 * be the very file SQLite writes); make the current WAL durable and the
 * directory entries of the database, WAL and lock file too. */
static int open_wal_fd(keystore *ks, char *err, size_t errlen)
{
    size_t n = strlen(ks->path) + sizeof "-wal";
    char *wp = malloc(n);
    struct stat a, b;
    if (!wp) {
        ksi_errf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(wp, n, "%s-wal", ks->path);
    ks->wal_fd = open(wp, O_RDONLY | O_CLOEXEC);
    if (ks->wal_fd < 0 || fstat(ks->wal_fd, &a) != 0 || stat(wp, &b) != 0 ||
        a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        ksi_errf(err, errlen, "cannot open the WAL %s: %s", wp, strerror(errno));
        free(wp);
        return -1;
    }
    free(wp);
    if (fdatasync(ks->wal_fd) != 0 || fsync_dir_of(ks->path) != 0) {
        ksi_errf(err, errlen, "cannot sync key store %s: %s", ks->path, strerror(errno));
        return -1;
    }
    return 0;
}

static int prepare_all(keystore *ks, char *err, size_t errlen)
{
    for (int i = 0; i < ST_COUNT_; i++) {
        if (sqlite3_prepare_v3(ks->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &ks->st[i], NULL) != SQLITE_OK) {
            ksi_errf(err, errlen, "key store: cannot prepare \"%s\": %s", stmt_sql[i],
                 sqlite3_errmsg(ks->db));
            return -1;
        }
    }
    return 0;
}

static void *maint_main(void *arg);

static int start_maintenance(keystore *ks, char *err, size_t errlen)
{
    if (ks->maint_ms == 0)
        return 0;
    int rc = pthread_create(&ks->maint, NULL, maint_main, ks);
    if (rc != 0) {
        ksi_errf(err, errlen, "cannot start the maintenance thread: %s", strerror(rc));
        return -1;
    }
    ks->maint_running = true;
    return 0;
}

static void stop_maintenance(keystore *ks)
{
    if (!ks->maint_running)
        return;
    pthread_mutex_lock(&ks->maint_mu);
    ks->maint_stop = true;
    pthread_cond_signal(&ks->maint_cv);
    pthread_mutex_unlock(&ks->maint_mu);
    pthread_join(ks->maint, NULL);
    ks->maint_running = false;
}

/* Release everything ks_open may have set up (any prefix of it). */
static void destroy(keystore *ks)
{
    stop_maintenance(ks);
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(ks->st[i]);
    ksi_link_finalize(ks);
    ksi_unfetched_finalize(ks);
    if (ks->db) {
        /* sqlite3_close checkpoints; in full mode that must sync (see above) */
        if (ks->sync == KS_SYNC_FULL)
            sqlite3_exec(ks->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
        if (sqlite3_close(ks->db) != SQLITE_OK)
            log_error("keystore: close: %s", sqlite3_errmsg(ks->db));
    }
    if (ks->wal_fd >= 0)
        close(ks->wal_fd);
    if (ks->lock_fd >= 0)
        close(ks->lock_fd); /* releases the flock */
    ksi_link_free_lists(ks);
    pthread_mutex_destroy(&ks->fate_mu);
    pthread_mutex_destroy(&ks->mu);
    pthread_mutex_destroy(&ks->sync_mu);
    pthread_cond_destroy(&ks->sync_cv);
    pthread_cond_destroy(&ks->tx_cv);
    pthread_mutex_destroy(&ks->maint_mu);
    pthread_cond_destroy(&ks->maint_cv);
    free(ks->path);
    free(ks);
}

static keystore *ks_new(const ks_options *opt)
{
    keystore *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    ks->path = strdup(opt->path);
    if (!ks->path) {
        free(ks);
        return NULL;
    }
    ks->lock_fd = ks->wal_fd = -1;
    ks->sync = opt->sync;
    ks->cap_bits = opt->local_cap_bits;
    ks->rate_bps = opt->local_rate_bps;
    ks->ttl_ms = opt->key_ttl_s > 0 ? opt->key_ttl_s * 1000 : 0;
    ks->maint_ms = opt->maintenance_ms;
    ks->block_ttl_ms = opt->link_block_ttl_ms > 0 ? opt->link_block_ttl_ms : 60000;
    ks->wal_limit = opt->wal_limit_bytes > 0 && opt->wal_limit_bytes < INT64_MAX
                        ? (int64_t)opt->wal_limit_bytes : KS_WAL_LIMIT_BYTES;
    pthread_mutex_init(&ks->mu, NULL);
    pthread_mutex_init(&ks->fate_mu, NULL);
    pthread_mutex_init(&ks->sync_mu, NULL);
    pthread_cond_init(&ks->sync_cv, NULL);
    pthread_cond_init(&ks->tx_cv, NULL);
    pthread_mutex_init(&ks->maint_mu, NULL);
    mono_cond_init(&ks->maint_cv);
    return ks;
}

keystore *ks_open(const ks_options *opt, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!opt || !opt->path || !opt->path[0]) {
        ksi_errf(err, errlen, "key store: no database path given");
        return NULL;
    }
    if (opt->sync != KS_SYNC_NORMAL && opt->sync != KS_SYNC_FULL) {
        ksi_errf(err, errlen, "key store %s: unknown sync mode", opt->path);
        return NULL;
    }
    if (opt->key_ttl_s > INT64_MAX / 1000) {
        ksi_errf(err, errlen, "key store %s: key TTL too large", opt->path);
        return NULL;
    }
    pthread_once(&zm_once, install_zeroing_allocator);

    keystore *ks = ks_new(opt);
    if (!ks) {
        ksi_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (take_lock_file(ks, err, errlen) != 0 || precreate_db(ks, err, errlen) != 0)
        goto fail;
    if (walbuf_register() != SQLITE_OK) {
        ksi_errf(err, errlen, "cannot register the key store's SQLite VFS");
        goto fail;
    }
    if (sqlite3_open_v2(ks->path, &ks->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                            SQLITE_OPEN_EXRESCODE,
                        WALBUF_VFS_NAME) != SQLITE_OK) {
        ksi_errf(err, errlen, "cannot open key store %s: %s", ks->path,
             ks->db ? sqlite3_errmsg(ks->db) : "out of memory");
        goto fail;
    }
    if (configure_db(ks, err, errlen) != 0 || init_schema(ks, err, errlen) != 0 ||
        ksi_unfetched_setup(ks, opt->slave_unfetched_bits, err, errlen) != 0)
        goto fail;
    if (open_wal_fd(ks, err, errlen) != 0)
        goto fail;
    if (prepare_all(ks, err, errlen) != 0 || ksi_link_prepare(ks, err, errlen) != 0)
        goto fail;
    sqlite3_wal_hook(ks->db, wal_hook, ks);
    if (start_maintenance(ks, err, errlen) != 0)
        goto fail;
    log_info("keystore: opened %s (%s sync, %" PRIu64 " keys stored)", ks->path,
             ks->sync == KS_SYNC_FULL ? "full" : "normal", ks->stored);
    return ks;
fail:
    destroy(ks);
    return NULL;
}

void ks_close(keystore *ks)
{
    if (!ks)
        return;
    ksi_link_drain_acked(ks);
    stop_maintenance(ks);
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    ks->truncated_ns = INT64_MIN / 2; /* make it a TRUNCATE: erase the WAL */
    if (!atomic_load(&ks->failed))
        checkpoint_locked(ks);
    pthread_mutex_unlock(&ks->mu);
    destroy(ks);
}

/* ---- enc ---------------------------------------------------------------- */

int ksi_batch_alloc(ks_batch *out, size_t n, size_t bytes)
{
    out->keys = calloc(n, sizeof *out->keys);
    if (!out->keys || secret_alloc(&out->arena, bytes ? bytes : 1) != 0) {
        free(out->keys);
        out->keys = NULL;
        return -1;
    }
    out->arena.len = bytes;
    out->n = n;
    return 0;
}

static bool listed_before(const char *const *slaves, size_t j)
{
    for (size_t i = 0; i < j; i++)
        if (strcmp(slaves[i], slaves[j]) == 0)
            return true;
    return false;
}

int ksi_slave_list_build(slave_list *sl, const char *const *slaves, size_t nslaves)
{
    size_t need = 0;
    for (size_t j = 0; j < nslaves; j++)
        need += strlen(slaves[j]) + 1;
    sl->data = need <= sizeof sl->small ? sl->small : malloc(need);
    if (!sl->data)
        return -1;
    sl->len = 0;
    sl->pending = 0;
    for (size_t j = 0, k = 0; j < nslaves; j++) {
        if (listed_before(slaves, j))
            continue; /* a repeated slave is the same slave */
        size_t l = strlen(slaves[j]) + 1;
        memcpy(sl->data + sl->len, slaves[j], l);
        sl->len += l;
        sl->pending |= (int64_t)1 << k++;
    }
    return 0;
}

void ksi_slave_list_free(slave_list *sl)
{
    if (sl->data != sl->small)
        free(sl->data);
}

/* Position of slave in a stored list, or -1 when it is not authorised. */
static int slave_index(const void *list, int len, const char *slave)
{
    const char *p = list, *end = p + (len > 0 ? len : 0);
    size_t sl = strlen(slave);
    for (int i = 0; p < end && i < KS_MAX_SLAVES; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return -1;
        if ((size_t)(z - p) == sl && memcmp(p, slave, sl) == 0)
            return i;
        p = z + 1;
    }
    return -1;
}

/* Insert one key row; a (practically impossible) key ID collision draws a
 * new ID. */
static int insert_key(keystore *ks, ks_key *k, const char *master, const slave_list *sl,
                      int64_t now_ms)
{
    sqlite3_stmt *s = ks->st[ST_KEY_INSERT];
    int64_t expires = ks->ttl_ms > 0 && now_ms < INT64_MAX - ks->ttl_ms ? now_ms + ks->ttl_ms
                                                                        : INT64_MAX;
    for (int tries = 0; tries < KS_UUID_RETRIES; tries++) {
        sqlite3_bind_blob(s, 1, k->id, 16, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, master, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, k->size_bits);
        sqlite3_bind_blob(s, 4, k->material, (int)(k->size_bits / 8), SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, now_ms);
        sqlite3_bind_int64(s, 6, expires);
        sqlite3_bind_blob(s, 7, sl->data, (int)sl->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 8, sl->pending);
        int rc = step_reset(s);
        if (rc == SQLITE_DONE)
            return 0;
        if (sqlite3_extended_errcode(ks->db) != SQLITE_CONSTRAINT_PRIMARYKEY)
            return -1;
        uuid_generate_v4(k->id);
    }
    return -1;
}

typedef struct enc_ctx {
    const char *master;
    const slave_list *sl;
    ks_batch *b;
    uint64_t need;
} enc_ctx;

/* The allocation transaction's body: take the bits from the pool (its
 * level as seen by this transaction, earlier calls in it included) and
 * record the keys. */
static ks_result enc_body(keystore *ks, void *ctx, bool *changed)
{
    enc_ctx *c = ctx;
    int64_t now = now_ns(ks), ts;
    uint64_t level = pool_level(ks, now, &ts);
    if (level < c->need)
        return KS_EMPTY;
    ks_result lim = ksi_unfetched_check(ks, c->sl, c->need);
    if (lim != KS_OK)
        return lim;
    ksi_tx_expect(ks, c->need / 8);
    if (ks->rate_bps != 0) { /* rate 0: always full, nothing to persist */
        sqlite3_bind_int64(ks->st[ST_POOL_SET], 1, (int64_t)(level - c->need));
        sqlite3_bind_int64(ks->st[ST_POOL_SET], 2, ts);
        if (step_reset(ks->st[ST_POOL_SET]) != SQLITE_DONE)
            return KS_ERROR;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->b->n; i++)
        rc = insert_key(ks, &c->b->keys[i], c->master, c->sl, now / 1000000);
    sqlite3_clear_bindings(ks->st[ST_KEY_INSERT]); /* no pointer into the arena */
    if (rc != 0)
        return KS_ERROR;
    ks->pool_bits = level - c->need;
    ks->pool_ns = ts;
    ks->stored += c->b->n;
    *changed = true;
    return KS_OK;
}

bool ksi_enc_args_ok(const char *master, const char *const *slaves, size_t nslaves,
                        uint32_t n, uint32_t size_bits, const ks_batch *out)
{
    if (!master || !slaves || nslaves == 0 || nslaves > KS_MAX_SLAVES || n == 0 ||
        size_bits == 0 ||
        size_bits % 8 != 0 || !out)
        return false;
    for (size_t j = 0; j < nslaves; j++)
        if (!slaves[j])
            return false;
    return true;
}

ks_result ks_local_enc(keystore *ks, const char *master, const char *const *slaves,
                       size_t nslaves, uint32_t n, uint32_t size_bits, ks_batch *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!ks || !ksi_enc_args_ok(master, slaves, nslaves, n, size_bits, out)) {
        log_error("keystore: ks_local_enc: invalid arguments");
        return KS_ERROR;
    }
    uint64_t need = (uint64_t)n * size_bits; /* < 2^64: both factors < 2^32 */
    if (need > ks->cap_bits)
        return KS_EMPTY;
    if (atomic_load(&ks->failed))
        return KS_ERROR;

    /* Draw IDs and material before taking the mutex: the CSPRNG is the
     * slow part and needs no database. */
    slave_list sl;
    if (ksi_slave_list_build(&sl, slaves, nslaves) != 0)
        return KS_ERROR;
    if (ksi_batch_alloc(out, n, need / 8) != 0) {
        ksi_slave_list_free(&sl);
        log_error("keystore: out of memory for %" PRIu32 " keys", n);
        return KS_ERROR;
    }
    secret_random(out->arena.data, out->arena.len);
    for (uint32_t i = 0; i < n; i++) {
        uuid_generate_v4(out->keys[i].id);
        out->keys[i].size_bits = size_bits;
        out->keys[i].material = out->arena.data + (size_t)i * (size_bits / 8);
    }

    enc_ctx c = {.master = master, .sl = &sl, .b = out, .need = need};
    ks_result r = ksi_tx(ks, "local enc", enc_body, &c);
    ksi_slave_list_free(&sl);
    if (r != KS_OK)
        ks_batch_free(out);
    return r;
}

/* ---- dec ---------------------------------------------------------------- */

/* Pass 1: judge every requested key without changing anything; fills
 * size_bits and returns the batch verdict and the material size. */
static ks_result dec_judge(keystore *ks, const char *master, const char *slave,
                           const uint8_t (*ids)[16], size_t n, ks_key *keys, size_t *bytes)
{
    sqlite3_stmt *s = ks->st[ST_DEC_LOOKUP];
    ks_result verdict = KS_OK;

    *bytes = 0;
    sqlite3_bind_text(s, 2, master, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ns(ks) / 1000000);
    for (size_t i = 0; i < n && verdict != KS_UNAUTHORIZED && verdict != KS_ERROR; i++) {
        memcpy(keys[i].id, ids[i], 16);
        sqlite3_bind_blob(s, 1, ids[i], 16, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            int idx = slave_index(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), slave);
            if (idx < 0) {
                verdict = KS_UNAUTHORIZED; /* wins over everything: stop */
            } else if (!(sqlite3_column_int64(s, 2) & ((int64_t)1 << idx))) {
                verdict = KS_NOT_FOUND;    /* this slave already has it */
            } else {
                keys[i].size_bits = (uint32_t)sqlite3_column_int64(s, 0);
                *bytes += keys[i].size_bits / 8;
            }
        } else if (rc == SQLITE_DONE) {
            verdict = KS_NOT_FOUND; /* unknown, expired or another master's */
        } else {
            verdict = KS_ERROR;
        }
        sqlite3_reset(s);
    }
    return verdict;
}

/* The slave got the key: clear its bit, or erase the row if it was the
 * last slave owed the key. */
static ks_result dec_consume(keystore *ks, const uint8_t id[16], int64_t pending,
                             uint64_t *deleted)
{
    sqlite3_stmt *s;
    if (pending == 0) { /* this slave was the last one: erase */
        s = ks->st[ST_DEL_KEY];
        sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
        if (step_reset(s) != SQLITE_DONE)
            return KS_ERROR;
        (*deleted)++;
        return KS_OK;
    }
    s = ks->st[ST_DEC_SET_PENDING];
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, pending);
    return step_reset(s) == SQLITE_DONE ? KS_OK : KS_ERROR;
}

/* Pass 2 for one key: copy its material, then consume it for this slave;
 * the last slave deletes the row.  A key met twice in one batch is caught
 * here (row gone, or bit already clear) and fails the batch. */
static ks_result dec_take(keystore *ks, const char *slave, ks_key *k, uint8_t *dst,
                          uint64_t *deleted)
{
    sqlite3_stmt *s = ks->st[ST_DEC_MATERIAL];
    size_t len = k->size_bits / 8;
    int64_t pending = 0;
    ks_result r = KS_ERROR;

    sqlite3_bind_blob(s, 1, k->id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        r = KS_NOT_FOUND;
    } else if (rc == SQLITE_ROW) {
        int idx = slave_index(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), slave);
        pending = sqlite3_column_int64(s, 2);
        if (idx < 0 || !(pending & ((int64_t)1 << idx))) {
            r = KS_NOT_FOUND;
        } else if ((size_t)sqlite3_column_bytes(s, 0) == len) {
            memcpy(dst, sqlite3_column_blob(s, 0), len);
            k->material = dst;
            pending &= ~((int64_t)1 << idx);
            r = KS_OK;
        } else {
            log_error("keystore: a stored key has the wrong length");
        }
    }
    sqlite3_reset(s);
    if (r != KS_OK)
        return r;
    return dec_consume(ks, k->id, pending, deleted);
}

/* dec_keys of one key (the usual call): judge and take it with one lookup
 * instead of two; the same verdicts as dec_judge and dec_take. */
static ks_result dec_one(keystore *ks, const char *master, const char *slave,
                         const uint8_t id[16], ks_batch *out, uint64_t *deleted)
{
    sqlite3_stmt *s = ks->st[ST_DEC_ONE];
    ks_key *k = &out->keys[0];
    int64_t pending = 0;
    ks_result r = KS_ERROR;

    memcpy(k->id, id, 16);
    sqlite3_bind_blob(s, 1, k->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, master, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ns(ks) / 1000000);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        r = KS_NOT_FOUND; /* unknown, expired or another master's */
    } else if (rc == SQLITE_ROW) {
        int idx = slave_index(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), slave);
        pending = sqlite3_column_int64(s, 2);
        size_t len = (size_t)(sqlite3_column_int64(s, 0) / 8);
        const void *material = sqlite3_column_blob(s, 3);
        if (idx < 0) {
            r = KS_UNAUTHORIZED;
        } else if (!(pending & ((int64_t)1 << idx))) {
            r = KS_NOT_FOUND; /* this slave already has it */
        } else if (!material || (size_t)sqlite3_column_bytes(s, 3) != len) {
            log_error("keystore: a stored key has the wrong length");
        } else if (secret_alloc(&out->arena, len) != 0) {
            log_error("keystore: out of memory for %zu key bytes", len);
        } else {
            memcpy(out->arena.data, material, len);
            out->arena.len = len;
            k->size_bits = (uint32_t)(len * 8);
            k->material = out->arena.data;
            pending &= ~((int64_t)1 << idx);
            r = KS_OK;
        }
    }
    sqlite3_reset(s);
    if (r != KS_OK)
        return r;
    return dec_consume(ks, k->id, pending, deleted);
}

typedef struct dec_ctx {
    const char *master, *slave;
    const uint8_t (*ids)[16];
    ks_batch *out;
} dec_ctx;

/* The delivery transaction's body: judge the whole batch, then take every
 * key (all or nothing: a refusal part-way is undone by the caller). */
static ks_result dec_body(keystore *ks, void *ctx, bool *changed)
{
    dec_ctx *c = ctx;
    ks_batch *out = c->out;
    size_t bytes;
    uint64_t deleted = 0;

    if (out->n == 1) {
        ks_result r1 = dec_one(ks, c->master, c->slave, c->ids[0], out, &deleted);
        if (r1 != KS_OK)
            return r1;
        ks->stored -= deleted;
        *changed = true;
        return KS_OK;
    }
    ks_result r = dec_judge(ks, c->master, c->slave, c->ids, out->n, out->keys, &bytes);
    if (r != KS_OK)
        return r;
    ksi_tx_expect(ks, bytes);
    if (!out->arena.data && secret_alloc(&out->arena, bytes ? bytes : 1) != 0) {
        log_error("keystore: out of memory for %zu key bytes", bytes);
        return KS_ERROR;
    }
    out->arena.len = bytes;
    size_t off = 0;
    for (size_t i = 0; i < out->n; i++) {
        r = dec_take(ks, c->slave, &out->keys[i], out->arena.data + off, &deleted);
        if (r != KS_OK)
            return r;
        off += out->keys[i].size_bits / 8;
    }
    ks->stored -= deleted;
    *changed = true;
    return KS_OK;
}

ks_result ks_dec(keystore *ks, const char *master, const char *slave,
                 const uint8_t (*ids)[16], size_t n, ks_batch *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!ks || !master || !slave || !ids || n == 0 || !out) {
        log_error("keystore: ks_dec: invalid arguments");
        return KS_ERROR;
    }
    if (atomic_load(&ks->failed))
        return KS_ERROR;
    out->keys = calloc(n, sizeof *out->keys);
    if (!out->keys)
        return KS_ERROR;
    out->n = n;

    dec_ctx c = {.master = master, .slave = slave, .ids = ids, .out = out};
    ks_result r = ksi_tx(ks, "dec", dec_body, &c);
    if (r != KS_OK)
        ks_batch_free(out);
    return r;
}

/* ---- stats, maintenance ------------------------------------------------- */

ks_result ks_stats_get(keystore *ks, ks_stats *out)
{
    if (!ks || !out)
        return KS_ERROR;
    int64_t ts;
    pthread_mutex_lock(&ks->mu);
    out->local_available_bits = pool_level(ks, now_ns(ks), &ts);
    out->local_cap_bits = ks->cap_bits;
    out->stored_keys = ks->stored;
    pthread_mutex_unlock(&ks->mu);
    return KS_OK;
}

typedef struct expire_ctx {
    int64_t now_ms;
    long n;
} expire_ctx;

/* Delete up to KS_EXPIRE_CHUNK expired keys. */
static ks_result expire_body(keystore *ks, void *ctx, bool *changed)
{
    expire_ctx *c = ctx;
    sqlite3_stmt *s = ks->st[ST_EXPIRED];
    sqlite3_bind_int64(s, 1, c->now_ms);
    sqlite3_bind_int(s, 2, KS_EXPIRE_CHUNK);
    if (step_reset(s) != SQLITE_DONE)
        return KS_ERROR;
    c->n = sqlite3_changes(ks->db);
    ks->stored -= (uint64_t)c->n;
    *changed = c->n > 0;
    return KS_OK;
}

long ks_maintain(keystore *ks)
{
    long total = 0, n;
    if (!ks || atomic_load(&ks->failed))
        return -1;
    int64_t now_ms = now_ns(ks) / 1000000;
    /* chunks, releasing the mutex in between so requests interleave */
    do {
        expire_ctx c = {.now_ms = now_ms};
        if (ksi_tx(ks, "expiry", expire_body, &c) != KS_OK)
            return -1;
        n = c.n;
        total += n;
    } while (n == KS_EXPIRE_CHUNK);

    if (ksi_link_maintain(ks) != 0)
        return -1;
    int rc = checkpoint_presynced(ks);
    if (total > 0)
        log_debug("keystore: %ld undelivered keys expired", total);
    return rc == 0 ? total : -1;
}

static void *maint_main(void *arg)
{
    keystore *ks = arg;
    struct timespec deadline;

    pthread_mutex_lock(&ks->maint_mu);
    while (!ks->maint_stop) {
        deadline = mono_timespec(mono_ms() + (int64_t)ks->maint_ms);
        int rc = 0;
        while (!ks->maint_stop && rc != ETIMEDOUT) {
            if (ks->maint_ckpt) { /* maybe_checkpoint asked (also while we were busy) */
                ks->maint_ckpt = false;
                pthread_mutex_unlock(&ks->maint_mu);
                checkpoint_presynced(ks);
                pthread_mutex_lock(&ks->maint_mu);
                continue;
            }
            rc = pthread_cond_timedwait(&ks->maint_cv, &ks->maint_mu, &deadline);
        }
        if (ks->maint_stop)
            break;
        pthread_mutex_unlock(&ks->maint_mu);
        ks_maintain(ks);
        pthread_mutex_lock(&ks->maint_mu);
    }
    pthread_mutex_unlock(&ks->maint_mu);
    return NULL;
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
    }
    return "unknown";
}

void ks_testing_advance_clock(keystore *ks, int64_t ms)
{
    atomic_fetch_add(&ks->clock_offset_ns, (long long)ms * 1000000LL);
}
