/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_open.c - the top of the key store: ks_open and ks_close, the
 * schema of the local tables, and the maintenance thread (expiry, link
 * maintenance, checkpoints).
 *
 * One SQLite file in WAL mode, one connection (EXCLUSIVE locking; a lock
 * file keeps a second process out), created private (0600).  Schema
 * version 4; versions 1, 2 and 3 are migrated at open (keystore_schema.c).
 * ks_open sets up every layer in order and destroy() takes down any prefix
 * of it; ks_close first drains what the peer acknowledged, then checkpoints
 * with TRUNCATE so no old page image stays in the WAL.
 *
 * The one file that may call every other layer (keystore_db.c describes
 * the layering).  Locks: ks->mu around the final checkpoint; maint_mu for
 * the thread's wake-ups (never held while taking mu).
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"
#include "kme/keystore_walbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
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

/* Expiry deletes at most this many keys per transaction, so a mass expiry
 * never holds the mutex for long. */
#define KS_EXPIRE_CHUNK 256

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
                   " (SELECT key_id FROM keys WHERE expires <= ?1 ORDER BY expires LIMIT ?2)"
                   " RETURNING slaves, pending, size_bits", /* for keystore_unfetched.c */
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

/* init_schema under mu: nobody else can have the store yet, but the
 * migration runs the link layers' body functions, which assert it. */
static int init_schema_locked(keystore *ks, char *err, size_t errlen)
{
    ks_lock(ks);
    int rc = init_schema(ks, err, errlen);
    ks_unlock(ks);
    return rc;
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
        /* sqlite3_close checkpoints; in full mode that must sync (keystore_db.c,
         * group commit) */
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
    free(ks->migrate_peer);
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
    ks->migrate_peer = opt->migrate_link_peer ? strdup(opt->migrate_link_peer) : NULL;
    if (!ks->path || (opt->migrate_link_peer && !ks->migrate_peer)) {
        free(ks->path);
        free(ks->migrate_peer);
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
    if (opt->migrate_link_peer && !ksi_peer_ok(opt->migrate_link_peer)) {
        ksi_errf(err, errlen, "key store %s: invalid peer KME ID for the migration",
                 opt->path);
        return NULL;
    }
    if (opt->key_ttl_s > INT64_MAX / 1000) {
        ksi_errf(err, errlen, "key store %s: key TTL too large", opt->path);
        return NULL;
    }
    ksi_install_zeroing_allocator();

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
    if (configure_db(ks, err, errlen) != 0 || init_schema_locked(ks, err, errlen) != 0 ||
        ksi_unfetched_setup(ks, opt->slave_unfetched_bits, err, errlen) != 0)
        goto fail;
    if (open_wal_fd(ks, err, errlen) != 0)
        goto fail;
    if (prepare_all(ks, err, errlen) != 0 || ksi_link_prepare(ks, err, errlen) != 0)
        goto fail;
    sqlite3_wal_hook(ks->db, ksi_wal_hook, ks);
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
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    ks->truncated_ns = INT64_MIN / 2; /* make it a TRUNCATE: erase the WAL */
    if (!atomic_load(&ks->failed))
        ksi_checkpoint_locked(ks);
    ks_unlock(ks);
    destroy(ks);
}

/* ---- maintenance --------------------------------------------------------- */

typedef struct expire_ctx {
    int64_t now_ms;
    long n;
} expire_ctx;

/* Delete up to KS_EXPIRE_CHUNK expired keys. */
static ks_result expire_body(keystore *ks, void *ctx, bool *changed)
{
    assert(ks_lock_held(ks));
    expire_ctx *c = ctx;
    sqlite3_stmt *s = ks->st[ST_EXPIRED];
    sqlite3_bind_int64(s, 1, c->now_ms);
    sqlite3_bind_int(s, 2, KS_EXPIRE_CHUNK);
    long n = ksi_delete_keys(ks, s);
    if (n < 0)
        return KS_ERROR;
    c->n = n;
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

    if (ksi_outbox_drain_acked(ks) != 0 || ksi_link_maintain(ks) != 0)
        return -1;
    int rc = ksi_checkpoint_presynced(ks);
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
                ksi_checkpoint_presynced(ks);
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
