/*
 * keystore_link.c - QKD link blocks and remote pairs in the key store
 * (docs/kme-pair.md): blocks from the link, reservations we make for our
 * masters (own blocks, an outbox of pending reservations and voids), and
 * reservations and voids the peer KME sends us (peer blocks).
 *
 * Same connection, mutex and durability as keystore.c: every change is one
 * transaction (run_tx), committed under the mutex and made durable by
 * ksi_finish before the call returns (I4).
 *
 * Tables (schema version 3):
 *   blocks         one row per stored block: owner, length, confirmed,
 *                  stored_ms, cursor (own blocks: bytes handed out, in
 *                  order) and used (peer blocks: bytes covered by segments);
 *   block_material the block's bytes as one blob (rowid = block ID), in an
 *                  overflow chain of 1 KiB pages.  Incremental blob I/O
 *                  (sqlite3_blob_read/write) reads a range and zeroes it in
 *                  place in the same transaction, touching only the pages
 *                  that cover it: a 100 KiB pad costs a few blob calls,
 *                  not ~800 row reads and deletes as with the 128-byte
 *                  chunk rows of version 2.  The row goes (secure_delete)
 *                  with the block;
 *   used_segments  peer blocks: bytes used, as disjoint ranges; adjacent
 *                  ranges are merged, so in-order reservations keep it at
 *                  about one row per block;
 *   blocks_gone    tombstones of erased blocks: a block ID is never stored
 *                  twice, so a replayed block cannot bring back used bits;
 *   outbox         our reservations: 'pending' until the peer answers
 *                  (and, once it applied one, until a later transaction
 *                  drops the entry: ks_remote_acked), 'void' until the
 *                  peer has the void;
 *   reservations   the peer's reservations we applied or voided (digest of
 *                  the content, for idempotency), kept KS_RES_KEEP_MS;
 *   keys.res_id    keys made from a peer reservation live in the same keys
 *                  table as local keys (ks_dec is unchanged).
 *
 * Consumed bytes are zero in the blob from the COMMIT that consumed them
 * on (a range that ends a block is not zeroed: the row is deleted in that
 * transaction); old page images leave the WAL at the TRUNCATE checkpoints
 * of keystore.c.  The one blob handle (ks->mat) is reused across blocks
 * within a body and always closed before the body returns (link_body): an
 * open write handle makes COMMIT fail ("SQL statements in progress"), and
 * ROLLBACK TO trips it.  A handle tripped inside a body (a savepoint of
 * its own rolled back, its row rewritten) is reopened by mat_io.
 *
 * Bits are never handed out twice: own blocks only move their cursor
 * forward, peer segments must not overlap used_segments, and a block ID in
 * blocks_gone is refused.  Accounting is derived from these rows (never a
 * separate counter): unused bytes = length - cursor - used, which CHECK
 * constraints keep within 0..length.
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "common/uuid.h"

/* Chunk size of schema version 2 (block_chunks rows), for its migration. */
#define KS_V2_CHUNK 128u
/* erased block IDs are refused this long (a link never resends so late) */
#define KS_GONE_KEEP_MS (7LL * 24 * 3600 * 1000)
/* a peer's reservation record is kept this long for idempotent retries;
 * later duplicates are still refused by their used segments */
#define KS_RES_KEEP_MS (10LL * 60 * 1000)
#define KS_DIGEST 32
#define SEG_WIRE 16 /* outbox segments blob: id(8) offset(4) length(4), BE */

enum { RES_APPLIED = 1, RES_VOID = 2 };

enum lstmt {
    LS_BLK_GET, LS_GONE_GET, LS_GONE_ADD, LS_DIR_UNUSED, LS_BLK_INSERT,
    LS_MAT_INSERT, LS_CONFIRM, LS_BLK_DEL, LS_MAT_DEL, LS_SEGS_DEL,
    LS_UNCONF_LIST, LS_UNCONF_OLD, LS_FULL_LIST, LS_STATS, LS_STATS_RECOUNT, LS_OWN_NEXT, LS_CURSOR_SET,
    LS_OB_INSERT, LS_OB_CONFIRMED, LS_OB_FAILED, LS_OB_STATE,
    LS_OB_RECOVER, LS_OB_PENDING, LS_OB_NEXT_VOID, LS_OB_VOID_SENT, LS_SEG_BEFORE, LS_SEG_FROM,
    LS_SEG_INSERT, LS_SEG_SETLEN, LS_SEG_DEL,
    LS_BLK_ADD_USED, LS_RES_GET, LS_RES_PUT, LS_RES_ADD, LS_RKEY_INSERT, LS_RKEYS_DEL, LS_GONE_PRUNE,
    LS_RES_PRUNE, LS_COUNT_
};

static const char *const lstmt_sql[LS_COUNT_] = {
    [LS_BLK_GET] = "SELECT own, length, confirmed, cursor, used FROM blocks WHERE block_id = ?1",
    [LS_GONE_GET] = "SELECT 1 FROM blocks_gone WHERE block_id = ?1",
    [LS_GONE_ADD] = "INSERT OR IGNORE INTO blocks_gone(block_id, gone_ms) VALUES (?1, ?2)",
    [LS_DIR_UNUSED] = "SELECT coalesce(sum(length - cursor - used), 0) FROM blocks WHERE own = ?1",
    [LS_BLK_INSERT] = "INSERT INTO blocks(block_id, own, length, confirmed, stored_ms, cursor, used)"
                      " VALUES (?1, ?2, ?3, 0, ?4, 0, 0)",
    [LS_MAT_INSERT] = "INSERT INTO block_material(block_id, bytes) VALUES (?1, ?2)",
    [LS_CONFIRM] = "UPDATE blocks SET confirmed = 1 WHERE block_id = ?1 AND confirmed = 0",
    [LS_BLK_DEL] = "DELETE FROM blocks WHERE block_id = ?1",
    [LS_MAT_DEL] = "DELETE FROM block_material WHERE block_id = ?1",
    [LS_SEGS_DEL] = "DELETE FROM used_segments WHERE block_id = ?1",
    [LS_UNCONF_LIST] = "SELECT block_id FROM blocks WHERE confirmed = 0 ORDER BY stored_ms, block_id",
    [LS_UNCONF_OLD] = "SELECT block_id FROM blocks WHERE confirmed = 0 AND stored_ms <= ?1",
    [LS_FULL_LIST] = "SELECT block_id FROM blocks WHERE cursor + used >= length",
    [LS_STATS] = "SELECT own, confirmed, blocks, unused FROM link_totals",
    [LS_STATS_RECOUNT] = "SELECT own, confirmed, count(*), coalesce(sum(length - cursor - used), 0)"
                         " FROM blocks NOT INDEXED GROUP BY own, confirmed",
    [LS_OWN_NEXT] = "SELECT block_id, length, cursor, stored_ms FROM blocks"
                    " WHERE own = 1 AND confirmed = 1 AND cursor < length"
                    " AND (stored_ms, block_id) > (?1, ?2) ORDER BY stored_ms, block_id LIMIT 1",
    [LS_CURSOR_SET] = "UPDATE blocks SET cursor = ?2 WHERE block_id = ?1",
    [LS_OB_INSERT] = "INSERT INTO outbox(res_id, peer, state, master, slaves, segments,"
                     " created_ms, expires_ms) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7)",
    [LS_OB_CONFIRMED] = "DELETE FROM outbox WHERE res_id = ?1 AND state = 'pending'",
    [LS_OB_FAILED] = "UPDATE outbox SET state = 'void' WHERE res_id = ?1 AND state = 'pending'",
    [LS_OB_STATE] = "SELECT state FROM outbox WHERE res_id = ?1",
    [LS_OB_RECOVER] = "UPDATE outbox SET state = 'void' WHERE state = 'pending'",
    [LS_OB_PENDING] = "SELECT res_id, peer FROM outbox WHERE state = 'pending'"
                      " ORDER BY created_ms, res_id",
    [LS_OB_NEXT_VOID] = "SELECT res_id, peer, segments FROM outbox WHERE state = 'void'"
                        " ORDER BY created_ms, res_id LIMIT 1",
    [LS_OB_VOID_SENT] = "DELETE FROM outbox WHERE res_id = ?1 AND state = 'void'",
    [LS_SEG_BEFORE] = "SELECT off, len FROM used_segments WHERE block_id = ?1 AND off < ?2"
                      " ORDER BY off DESC LIMIT 1",
    [LS_SEG_FROM] = "SELECT off, len FROM used_segments WHERE block_id = ?1 AND off >= ?2"
                    " ORDER BY off LIMIT 1",
    [LS_SEG_INSERT] = "INSERT INTO used_segments(block_id, off, len) VALUES (?1, ?2, ?3)",
    [LS_SEG_SETLEN] = "UPDATE used_segments SET len = ?3 WHERE block_id = ?1 AND off = ?2",
    [LS_SEG_DEL] = "DELETE FROM used_segments WHERE block_id = ?1 AND off = ?2",
    [LS_BLK_ADD_USED] = "UPDATE blocks SET used = used + ?2 WHERE block_id = ?1",
    [LS_RES_GET] = "SELECT state, digest FROM reservations WHERE res_id = ?1",
    [LS_RES_PUT] = "INSERT OR REPLACE INTO reservations(res_id, state, digest, keep_until_ms)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [LS_RES_ADD] = "INSERT OR IGNORE INTO reservations(res_id, state, digest, keep_until_ms)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [LS_RKEY_INSERT] = "INSERT INTO keys(key_id, master, size_bits, material, created, expires,"
                       " slaves, pending, res_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [LS_RKEYS_DEL] = "DELETE FROM keys WHERE res_id = ?1",
    [LS_GONE_PRUNE] = "DELETE FROM blocks_gone WHERE gone_ms <= ?1",
    [LS_RES_PRUNE] = "DELETE FROM reservations WHERE keep_until_ms <= ?1",
};

static const char link_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS blocks("
    "  block_id INTEGER PRIMARY KEY,"   /* the link's 64-bit ID, as int64 */
    "  own INTEGER NOT NULL CHECK (own IN (0, 1)),"
    "  length INTEGER NOT NULL CHECK (length > 0),"
    "  confirmed INTEGER NOT NULL CHECK (confirmed IN (0, 1)),"
    "  stored_ms INTEGER NOT NULL,"
    "  cursor INTEGER NOT NULL CHECK (cursor >= 0 AND cursor <= length),"
    "  used INTEGER NOT NULL CHECK (used >= 0 AND used <= length),"
    "  CHECK (own = 1 OR cursor = 0), CHECK (own = 0 OR used = 0));"
    "CREATE INDEX IF NOT EXISTS blocks_order ON blocks(own, confirmed, stored_ms, block_id);"
    "CREATE TABLE IF NOT EXISTS block_material("   /* a rowid table: incremental blob I/O */
    "  block_id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS used_segments("
    "  block_id INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL CHECK (len > 0),"
    "  PRIMARY KEY (block_id, off)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS blocks_gone("
    "  block_id INTEGER PRIMARY KEY, gone_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS blocks_gone_ms ON blocks_gone(gone_ms);"
    "CREATE TABLE IF NOT EXISTS outbox("
    "  res_id BLOB PRIMARY KEY CHECK (length(res_id) = 16),"
    "  peer TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'void')),"
    "  master TEXT NOT NULL, slaves BLOB NOT NULL, segments BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS reservations("
    "  res_id BLOB PRIMARY KEY CHECK (length(res_id) = 16),"
    "  state INTEGER NOT NULL CHECK (state IN (1, 2)),"   /* applied, void */
    "  digest BLOB, keep_until_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS reservations_keep ON reservations(keep_until_ms);"
    "CREATE INDEX IF NOT EXISTS keys_res ON keys(res_id) WHERE res_id IS NOT NULL;";

/* link_totals: per (own, confirmed), the number of blocks and their unused
 * bytes, for status.  Summing the blocks took about a millisecond per
 * status call (a scan of ~1000 rows); triggers keep these four rows in the
 * same transactions as the blocks they count, so they roll back with them
 * and cannot drift.  Table and triggers are derived objects: both are
 * made afresh from the blocks at every open (so a file keeps no stale
 * trigger from another version). */
static const char link_totals_sql[] =
    "DROP TRIGGER IF EXISTS link_totals_ins;"
    "DROP TRIGGER IF EXISTS link_totals_del;"
    "DROP TRIGGER IF EXISTS link_totals_upd;"
    "CREATE TABLE IF NOT EXISTS link_totals("
    "  own INTEGER NOT NULL, confirmed INTEGER NOT NULL,"
    "  blocks INTEGER NOT NULL CHECK (blocks >= 0),"
    "  unused INTEGER NOT NULL CHECK (unused >= 0),"
    "  PRIMARY KEY (own, confirmed)) WITHOUT ROWID;"
    "CREATE TRIGGER link_totals_ins AFTER INSERT ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks + 1,"
    "    unused = unused + NEW.length - NEW.cursor - NEW.used"
    "    WHERE own = NEW.own AND confirmed = NEW.confirmed; END;"
    "CREATE TRIGGER link_totals_del AFTER DELETE ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks - 1,"
    "    unused = unused - (OLD.length - OLD.cursor - OLD.used)"
    "    WHERE own = OLD.own AND confirmed = OLD.confirmed; END;"
    "CREATE TRIGGER link_totals_upd AFTER UPDATE ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks - 1,"
    "    unused = unused - (OLD.length - OLD.cursor - OLD.used)"
    "    WHERE own = OLD.own AND confirmed = OLD.confirmed;"
    "  UPDATE link_totals SET blocks = blocks + 1,"
    "    unused = unused + NEW.length - NEW.cursor - NEW.used"
    "    WHERE own = NEW.own AND confirmed = NEW.confirmed; END;"
    "DELETE FROM link_totals;"
    "INSERT INTO link_totals(own, confirmed, blocks, unused)"
    "  SELECT o.v, c.v, (SELECT count(*) FROM blocks b WHERE b.own = o.v AND b.confirmed = c.v),"
    "    (SELECT coalesce(sum(length - cursor - used), 0) FROM blocks b"
    "     WHERE b.own = o.v AND b.confirmed = c.v)"
    "  FROM (SELECT 0 AS v UNION ALL SELECT 1) o, (SELECT 0 AS v UNION ALL SELECT 1) c;";

#define L(ks, x) ((ks)->lst[x])

/* ---- schema, statements ------------------------------------------------- */

static int migrate_chunks(keystore *ks, int64_t from, char *err, size_t errlen);

int ksi_link_schema(keystore *ks, int64_t from, char *err, size_t errlen)
{
    int found;
    /* version 1 had no keys.res_id; a new file gets it from CREATE TABLE */
    if (from == 1 &&
        ksi_query_int(ks, "SELECT count(*) FROM pragma_table_info('keys') WHERE name = 'res_id'",
                      0, &found) == 0 &&
        ksi_exec_or_err(ks, "ALTER TABLE keys ADD COLUMN res_id BLOB", err, errlen) != 0)
        return -1;
    if (from == 1)
        log_info("keystore: %s: schema migrated from version 1 to %d", ks->path,
                 KS_SCHEMA_VERSION);
    if (ksi_exec_or_err(ks, link_schema_sql, err, errlen) != 0)
        return -1;
    if (from == 2 && migrate_chunks(ks, from, err, errlen) != 0)
        return -1;
    return ksi_exec_or_err(ks, link_totals_sql, err, errlen);
}

int ksi_link_prepare(keystore *ks, char *err, size_t errlen)
{
    ks->lst = calloc(LS_COUNT_, sizeof *ks->lst);
    if (!ks->lst) {
        ksi_errf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < LS_COUNT_; i++) {
        if (sqlite3_prepare_v3(ks->db, lstmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &ks->lst[i], NULL) != SQLITE_OK) {
            ksi_errf(err, errlen, "key store: cannot prepare \"%s\": %s", lstmt_sql[i],
                     sqlite3_errmsg(ks->db));
            return -1;
        }
    }
    return 0;
}

static void mat_close(keystore *ks);

void ksi_link_finalize(keystore *ks)
{
    mat_close(ks);
    if (!ks->lst)
        return;
    for (int i = 0; i < LS_COUNT_; i++)
        sqlite3_finalize(ks->lst[i]);
    free(ks->lst);
    ks->lst = NULL;
}

/* ---- transactions ------------------------------------------------------- */

/* Common head of every call's context: the body sets `changed` when there
 * is something to commit, and `stored_delta` for rows added to keys. */
typedef struct tx tx;
typedef ks_result (*tx_body)(keystore *ks, tx *t);
struct tx {
    const char *what;
    bool changed;
    int64_t stored_delta;
    tx_body body;
};

/* Adapter to the shared transaction of keystore.c (ksi_tx): a body that
 * changed nothing or refused is undone, so a refusal never leaves a trace. */
static ks_result link_body(keystore *ks, void *ctx, bool *changed)
{
    tx *t = ctx;
    t->changed = false;
    ks_result r = t->body(ks, t);
    mat_close(ks); /* before ksi_tx commits, releases or rolls back */
    if (r == KS_OK && t->changed) {
        ks->stored = (uint64_t)((int64_t)ks->stored + t->stored_delta);
        *changed = true;
    }
    return r;
}

/* One transaction (shared with concurrent calls), committed and durable
 * before return.  An answer that changed nothing (an idempotent repeat)
 * still waits for every earlier commit to be durable: the state it
 * confirms may come from a commit whose group fsync or whose shared
 * COMMIT is still to come. */
static ks_result run_tx(keystore *ks, tx *t, tx_body body)
{
    t->body = body;
    return ksi_tx(ks, t->what, link_body, t);
}

static inline int64_t bid(uint64_t id)
{
    return (int64_t)id; /* the link's IDs use all 64 bits: stored two's complement */
}

static int64_t now_ms(keystore *ks)
{
    return now_ns(ks) / 1000000;
}

/* ---- blocks ------------------------------------------------------------- */

typedef struct blk {
    uint64_t id;
    bool own, confirmed;
    uint32_t length, cursor, used;
} blk;

/* 1 found, 0 unknown, -1 database error. */
static int blk_get(keystore *ks, uint64_t id, blk *b)
{
    sqlite3_stmt *s = L(ks, LS_BLK_GET);
    sqlite3_bind_int64(s, 1, bid(id));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        b->id = id;
        b->own = sqlite3_column_int(s, 0) != 0;
        b->length = (uint32_t)sqlite3_column_int64(s, 1);
        b->confirmed = sqlite3_column_int(s, 2) != 0;
        b->cursor = (uint32_t)sqlite3_column_int64(s, 3);
        b->used = (uint32_t)sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int exec_id(keystore *ks, enum lstmt st, uint64_t id)
{
    sqlite3_bind_int64(L(ks, st), 1, bid(id));
    return step_reset(L(ks, st)) == SQLITE_DONE ? 0 : -1;
}

/* Erase a block: its material, segments and row, leaving a tombstone.
 * secure_delete zeroes the material's pages as the row goes. */
static int blk_erase(keystore *ks, uint64_t id)
{
    if (ks->mat && ks->mat_row == bid(id))
        mat_close(ks); /* its row goes: the handle would expire */
    if (exec_id(ks, LS_MAT_DEL, id) != 0 || exec_id(ks, LS_SEGS_DEL, id) != 0 ||
        exec_id(ks, LS_BLK_DEL, id) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_GONE_ADD);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, now_ms(ks));
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

static int64_t query_one(keystore *ks, enum lstmt st, int64_t arg, int *rc_out)
{
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, arg);
    int rc = sqlite3_step(s);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    *rc_out = rc;
    return v;
}

/* ---- block material (incremental blob I/O) ----------------------------- */

static const uint8_t zeros[4096];

static void mat_close(keystore *ks)
{
    if (ks->mat) {
        sqlite3_blob_close(ks->mat);
        ks->mat = NULL;
    }
}

/* Point ks->mat at block id's material (reusing the open handle: reopen
 * is much cheaper than open) and check its length; -1 when the row is
 * missing or has another length (an inconsistency) or the database fails. */
static int mat_seek(keystore *ks, uint64_t id, uint32_t length)
{
    if (ks->mat && ks->mat_row != bid(id)) {
        if (sqlite3_blob_reopen(ks->mat, bid(id)) == SQLITE_OK)
            ks->mat_row = bid(id);
        else
            mat_close(ks); /* a failed reopen leaves the handle unusable */
    }
    if (!ks->mat) {
        if (sqlite3_blob_open(ks->db, "main", "block_material", "bytes", bid(id), 1,
                              &ks->mat) != SQLITE_OK) {
            ks->mat = NULL; /* sqlite3_blob_open leaves NULL, but say so */
            return -1;
        }
        ks->mat_row = bid(id);
    }
    return (uint32_t)sqlite3_blob_bytes(ks->mat) == length ? 0 : -1;
}

/* One blob read or write on block id.  A handle that expired (its row was
 * rewritten, or a ROLLBACK TO inside the body tripped its cursor) answers
 * SQLITE_ABORT: reopen it and try once more. */
static int mat_io(keystore *ks, uint64_t id, uint32_t length, void *buf, int n, int off,
                  bool write)
{
    for (int tries = 0; tries < 2; tries++) {
        if (mat_seek(ks, id, length) != 0)
            return -1;
        int rc = write ? sqlite3_blob_write(ks->mat, buf, n, off)
                       : sqlite3_blob_read(ks->mat, buf, n, off);
        if (rc != SQLITE_ABORT)
            return rc == SQLITE_OK ? 0 : -1;
        mat_close(ks);
    }
    return -1;
}

/* Copy bytes [off, off+len) of a block into dst. */
static int mat_read(keystore *ks, const blk *b, uint32_t off, uint32_t len, uint8_t *dst)
{
    return mat_io(ks, b->id, b->length, dst, (int)len, (int)off, false);
}

/* Erase bytes [off, off+len) of a block in place: zeros, in this
 * transaction (a rollback brings them back, with the accounting). */
static int mat_zero(keystore *ks, uint64_t id, uint32_t length, uint64_t off, uint64_t len)
{
    while (len > 0) {
        int n = len < sizeof zeros ? (int)len : (int)sizeof zeros;
        if (mat_io(ks, id, length, (void *)zeros, n, (int)off, true) != 0)
            return -1;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* ---- migration from schema version 2 ------------------------------------ */

/* Run a query over (block_id, a, b, length) rows, calling fn on each. */
static int mig_each(keystore *ks, const char *sql,
                    int (*fn)(keystore *ks, sqlite3_stmt *row))
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(ks->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ks, s) != 0)
            break;
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* One chunk row (block_id, idx, bytes, length) into its block's blob. */
static int mig_chunk(keystore *ks, sqlite3_stmt *row)
{
    uint64_t id = (uint64_t)sqlite3_column_int64(row, 0);
    uint64_t at = (uint64_t)sqlite3_column_int64(row, 1) * KS_V2_CHUNK;
    uint32_t length = (uint32_t)sqlite3_column_int64(row, 3);
    int n = sqlite3_column_bytes(row, 2);
    if (at + (uint64_t)n > length)
        return -1;
    return mat_io(ks, id, length, (void *)sqlite3_column_blob(row, 2), n, (int)at, true);
}

/* A consumed range (block_id, off, len, length) that a partly used chunk
 * still held: zero it. */
static int mig_zero(keystore *ks, sqlite3_stmt *row)
{
    uint64_t off = (uint64_t)sqlite3_column_int64(row, 1);
    uint64_t len = (uint64_t)sqlite3_column_int64(row, 2);
    uint32_t length = (uint32_t)sqlite3_column_int64(row, 3);
    if (len == 0)
        return 0;
    if (off + len > length)
        return -1;
    return mat_zero(ks, (uint64_t)sqlite3_column_int64(row, 0), length, off, len);
}

/* Version 2 kept a block's material in 128-byte block_chunks rows and
 * deleted each row once consumed.  Build each block's blob from its chunks
 * (missing chunks were consumed: zeros), zero what the remaining chunks
 * held of consumed bytes (own: below the cursor; peer: used segments),
 * then drop the table (secure_delete zeroes its pages).  Inside
 * init_schema's transaction: all or nothing. */
static int migrate_chunks(keystore *ks, int64_t from, char *err, size_t errlen)
{
    int found;
    int64_t nblocks = ksi_query_int(ks, "SELECT count(*) FROM blocks", 0, &found);
    int rc = ksi_exec_or_err(ks, "INSERT INTO block_material(block_id, bytes)"
                                 " SELECT block_id, zeroblob(length) FROM blocks", err, errlen);
    if (rc == 0 && (mig_each(ks, "SELECT c.block_id, c.idx, c.bytes, b.length"
                                 " FROM block_chunks c JOIN blocks b USING (block_id)"
                                 " ORDER BY c.block_id, c.idx", mig_chunk) != 0 ||
                    mig_each(ks, "SELECT block_id, 0, cursor, length FROM blocks"
                                 " WHERE own = 1 AND cursor > 0", mig_zero) != 0 ||
                    mig_each(ks, "SELECT s.block_id, s.off, s.len, b.length"
                                 " FROM used_segments s JOIN blocks b USING (block_id)",
                             mig_zero) != 0)) {
        ksi_errf(err, errlen, "key store %s: cannot migrate link blocks from schema version"
                 " %" PRId64 ": %s", ks->path, from, sqlite3_errmsg(ks->db));
        rc = -1;
    }
    mat_close(ks);
    if (rc != 0 || ksi_exec_or_err(ks, "DROP TABLE block_chunks", err, errlen) != 0)
        return -1;
    log_info("keystore: %s: schema migrated from version %" PRId64 " to %d (material of"
             " %" PRId64 " link blocks from chunk rows into one blob each)", ks->path, from,
             KS_SCHEMA_VERSION, nblocks);
    return 0;
}

/* ---- link intake -------------------------------------------------------- */

typedef struct store_ctx {
    tx t;
    uint64_t id;
    bool own;
    const uint8_t *bytes;
    uint32_t len;
    uint64_t cap_bits;
} store_ctx;

static int seg_near(keystore *ks, enum lstmt st, uint64_t id, uint64_t pos, uint64_t *off,
                    uint64_t *len);

/* Is the stored block the one offered again?  Owner and length must match,
 * and the bytes still unconsumed (own: from the cursor on; peer: the gaps
 * between used segments; consumed ones are zero) must be equal. */
static ks_result same_block(keystore *ks, const blk *b, const store_ctx *c)
{
    if (b->own != c->own || b->length != c->len)
        return KS_CONFLICT;
    secret_buf held;
    if (secret_alloc(&held, b->length) != 0)
        return KS_ERROR;
    ks_result r = KS_OK;
    uint64_t pos = b->cursor, so, sl;
    while (r == KS_OK && pos < b->length) {
        int q = seg_near(ks, LS_SEG_FROM, b->id, pos, &so, &sl);
        if (q < 0)
            r = KS_ERROR;
        else if (q == 0)
            so = b->length; /* the last gap runs to the end */
        if (r == KS_OK && so > pos &&
            mat_read(ks, b, (uint32_t)pos, (uint32_t)(so - pos), held.data + pos) != 0)
            r = KS_ERROR;
        if (r == KS_OK && so > pos && secret_cmp(held.data + pos, c->bytes + pos, so - pos) != 0)
            r = KS_CONFLICT;
        pos = so + sl;
    }
    secret_free(&held);
    return r;
}

static int insert_material(keystore *ks, const store_ctx *c)
{
    sqlite3_stmt *s = L(ks, LS_MAT_INSERT);
    sqlite3_bind_int64(s, 1, bid(c->id));
    sqlite3_bind_blob(s, 2, c->bytes, (int)c->len, SQLITE_STATIC);
    int rc = step_reset(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_clear_bindings(s); /* no pointer into the caller's buffer */
    return rc;
}

static ks_result store_body(keystore *ks, tx *t)
{
    store_ctx *c = (store_ctx *)t;
    blk b;
    int rc;
    query_one(ks, LS_GONE_GET, bid(c->id), &rc);
    if (rc == SQLITE_ROW)
        return KS_CONFLICT; /* erased before: its bits may have been used */
    if (rc != SQLITE_DONE)
        return KS_ERROR;
    int found = blk_get(ks, c->id, &b);
    if (found != 0)
        return found < 0 ? KS_ERROR : same_block(ks, &b, c);
    uint64_t unused = (uint64_t)query_one(ks, LS_DIR_UNUSED, c->own, &rc);
    if (rc != SQLITE_ROW)
        return KS_ERROR;
    if (unused + c->len > c->cap_bits / 8)
        return KS_EMPTY;
    sqlite3_stmt *s = L(ks, LS_BLK_INSERT);
    sqlite3_bind_int64(s, 1, bid(c->id));
    sqlite3_bind_int(s, 2, c->own);
    sqlite3_bind_int64(s, 3, c->len);
    sqlite3_bind_int64(s, 4, now_ms(ks));
    if (step_reset(s) != SQLITE_DONE || insert_material(ks, c) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

ks_result ks_block_store(keystore *ks, uint64_t block_id, bool own, const uint8_t *bytes,
                         uint32_t len, uint64_t cap_bits)
{
    if (!ks || !bytes || len == 0 || len > INT32_MAX) { /* one blob: an int length */
        log_error("keystore: ks_block_store: invalid arguments");
        return KS_ERROR;
    }
    store_ctx c = {.t.what = "block store", .id = block_id, .own = own, .bytes = bytes,
                   .len = len, .cap_bits = cap_bits};
    return run_tx(ks, &c.t, store_body);
}

typedef struct ids_ctx {
    tx t;
    const uint64_t *ids;
    size_t n;
    size_t done;
} ids_ctx;

static ks_result confirm_body(keystore *ks, tx *t)
{
    ids_ctx *c = (ids_ctx *)t;
    for (size_t i = 0; i < c->n; i++) {
        if (exec_id(ks, LS_CONFIRM, c->ids[i]) != 0)
            return KS_ERROR;
        c->done += (size_t)sqlite3_changes(ks->db);
    }
    t->changed = c->done > 0;
    return KS_OK;
}

static ks_result discard_body(keystore *ks, tx *t)
{
    ids_ctx *c = (ids_ctx *)t;
    for (size_t i = 0; i < c->n; i++) {
        blk b;
        int found = blk_get(ks, c->ids[i], &b);
        if (found < 0)
            return KS_ERROR;
        if (found == 0 || b.confirmed)
            continue; /* only unconfirmed blocks can be discarded */
        if (blk_erase(ks, b.id) != 0)
            return KS_ERROR;
        c->done++;
    }
    t->changed = c->done > 0;
    return KS_OK;
}

static ks_result ids_call(keystore *ks, const uint64_t *ids, size_t n, size_t *done,
                          tx_body body, const char *what)
{
    if (done)
        *done = 0;
    if (!ks || (n > 0 && !ids)) {
        log_error("keystore: %s: invalid arguments", what);
        return KS_ERROR;
    }
    ids_ctx c = {.t.what = what, .ids = ids, .n = n};
    ks_result r = run_tx(ks, &c.t, body);
    if (r == KS_OK && done)
        *done = c.done;
    return r;
}

ks_result ks_block_confirm(keystore *ks, const uint64_t *ids, size_t n, size_t *done)
{
    return ids_call(ks, ids, n, done, confirm_body, "block confirm");
}

ks_result ks_block_discard(keystore *ks, const uint64_t *ids, size_t n, size_t *done)
{
    return ids_call(ks, ids, n, done, discard_body, "block discard");
}

/* Collect the IDs a one-column query returns (caller holds mu). */
static int collect_ids(keystore *ks, sqlite3_stmt *s, uint64_t **ids, size_t *n)
{
    size_t cap = 0;
    int rc;
    *ids = NULL;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p)
                break;
            *ids = p;
        }
        (*ids)[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ksi_db_log(ks, "block list");
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

ks_result ks_block_unconfirmed(keystore *ks, uint64_t **ids, size_t *n)
{
    if (!ks || !ids || !n)
        return KS_ERROR;
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    int rc = atomic_load(&ks->failed) ? -1 : collect_ids(ks, L(ks, LS_UNCONF_LIST), ids, n);
    pthread_mutex_unlock(&ks->mu);
    return rc == 0 ? KS_OK : KS_ERROR;
}

typedef struct sweep_ctx {
    tx t;
    int64_t cutoff_ms; /* unconfirmed blocks stored at or before this go */
    long erased;
} sweep_ctx;

/* Erase every block the statement lists (unconfirmed and old, or used up). */
static ks_result erase_listed(keystore *ks, sweep_ctx *c, enum lstmt st)
{
    uint64_t *ids;
    size_t n;
    if (st == LS_UNCONF_OLD)
        sqlite3_bind_int64(L(ks, st), 1, c->cutoff_ms);
    if (collect_ids(ks, L(ks, st), &ids, &n) != 0)
        return KS_ERROR;
    for (size_t i = 0; i < n; i++) {
        if (blk_erase(ks, ids[i]) != 0) {
            free(ids);
            return KS_ERROR;
        }
    }
    free(ids);
    c->erased += (long)n;
    c->t.changed |= n > 0;
    return KS_OK;
}

static ks_result expire_body(keystore *ks, tx *t)
{
    return erase_listed(ks, (sweep_ctx *)t, LS_UNCONF_OLD);
}

long ks_block_expire_unconfirmed(keystore *ks, int64_t max_age_ms)
{
    if (!ks || max_age_ms < 0)
        return -1;
    sweep_ctx c = {.t.what = "block expiry", .cutoff_ms = now_ms(ks) - max_age_ms};
    return run_tx(ks, &c.t, expire_body) == KS_OK ? c.erased : -1;
}

static ks_result prune(keystore *ks, tx *t, enum lstmt st, int64_t cutoff)
{
    sqlite3_bind_int64(L(ks, st), 1, cutoff);
    if (step_reset(L(ks, st)) != SQLITE_DONE)
        return KS_ERROR;
    t->changed |= sqlite3_changes(ks->db) > 0;
    return KS_OK;
}

/* Maintenance: used-up blocks (normally erased at once; this also catches
 * any left by an older version), old tombstones and reservation records. */
static ks_result maint_body(keystore *ks, tx *t)
{
    int64_t now = now_ms(ks);
    if (erase_listed(ks, (sweep_ctx *)t, LS_FULL_LIST) != KS_OK ||
        prune(ks, t, LS_GONE_PRUNE, now - KS_GONE_KEEP_MS) != KS_OK ||
        prune(ks, t, LS_RES_PRUNE, now) != KS_OK)
        return KS_ERROR;
    return KS_OK;
}

static int drain_acked(keystore *ks);

int ksi_link_maintain(keystore *ks)
{
    if (drain_acked(ks) != 0 || ks_block_expire_unconfirmed(ks, ks->block_ttl_ms) < 0)
        return -1;
    sweep_ctx c = {.t.what = "link maintenance"};
    return run_tx(ks, &c.t, maint_body) == KS_OK ? 0 : -1;
}

/* Caller holds mu, with no shared transaction open. */
static ks_result link_stats_locked(keystore *ks, enum lstmt which, ks_link_stats *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = L(ks, which);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        bool own = sqlite3_column_int(s, 0) != 0, conf = sqlite3_column_int(s, 1) != 0;
        uint64_t bits = (uint64_t)sqlite3_column_int64(s, 3) * 8;
        if (!conf)
            out->unconfirmed_blocks += (uint64_t)sqlite3_column_int64(s, 2);
        else if (own)
            out->own_bits = bits;
        else
            out->peer_bits = bits;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        ksi_db_log(ks, "link stats");
    return rc == SQLITE_DONE ? KS_OK : KS_ERROR;
}

ks_result ks_link_stats_get(keystore *ks, ks_link_stats *out)
{
    if (!ks || !out)
        return KS_ERROR;
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    ks_result r = link_stats_locked(ks, LS_STATS, out);
    pthread_mutex_unlock(&ks->mu);
    return r;
}

ks_result ks_testing_link_stats_check(keystore *ks, ks_link_stats *totals,
                                      ks_link_stats *recount)
{
    if (!ks || !totals || !recount)
        return KS_ERROR;
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    ks_result r = link_stats_locked(ks, LS_STATS, totals);
    if (r == KS_OK)
        r = link_stats_locked(ks, LS_STATS_RECOUNT, recount);
    pthread_mutex_unlock(&ks->mu);
    return r;
}

/* ---- our reservations (we are the master's KME) ------------------------- */

/* The own block being consumed: its cursor moves in memory and is written
 * once when we leave the block. */
typedef struct own_cur {
    blk b;
    bool have;
    uint32_t start;         /* cursor when we took the block */
    int64_t key_ms, key_id; /* its position in allocation order */
} own_cur;

/* Persist the cursor (the bytes it passed are zero already), or erase the
 * whole block at its end. */
static int own_flush(keystore *ks, own_cur *cur)
{
    if (!cur->have || cur->b.cursor == cur->start)
        return 0;
    if (cur->b.cursor == cur->b.length)
        return blk_erase(ks, cur->b.id);
    sqlite3_stmt *s = L(ks, LS_CURSOR_SET);
    sqlite3_bind_int64(s, 1, bid(cur->b.id));
    sqlite3_bind_int64(s, 2, cur->b.cursor);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* Move to the next own confirmed block with unused bytes: 1, 0 none, -1. */
static int own_next(keystore *ks, own_cur *cur)
{
    if (own_flush(ks, cur) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_OWN_NEXT);
    sqlite3_bind_int64(s, 1, cur->have ? cur->key_ms : INT64_MIN);
    sqlite3_bind_int64(s, 2, cur->have ? cur->key_id : INT64_MIN);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        cur->key_id = sqlite3_column_int64(s, 0);
        cur->b = (blk){.id = (uint64_t)cur->key_id, .own = true, .confirmed = true,
                       .length = (uint32_t)sqlite3_column_int64(s, 1),
                       .cursor = (uint32_t)sqlite3_column_int64(s, 2)};
        cur->key_ms = sqlite3_column_int64(s, 3);
        cur->start = cur->b.cursor;
        cur->have = true;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Outbox entries of acknowledged reservations one ks_remote_enc drops on
 * its way (ks_remote_acked): a DELETE each, in a transaction that commits
 * anyway, instead of a commit per answer. */
#define ACKED_PER_ENC 64

struct ksi_acked {
    uint8_t id[16];
};

struct ksi_unknown {
    uint8_t id[16];
    char *peer;
};

typedef struct enc_ctx {
    tx t;
    const char *peer, *master;
    const slave_list *sl;
    ks_reservation *out;
    size_t seg_cap;
    struct ksi_acked drop[ACKED_PER_ENC]; /* taken from ks->acked */
    size_t n_drop;
} enc_ctx;

static int seg_push(enc_ctx *c, ks_segment seg)
{
    ks_reservation *r = c->out;
    if (r->total_segs == c->seg_cap) {
        size_t cap = c->seg_cap * 2;
        ks_segment *p = realloc(r->segs, cap * sizeof *p);
        if (!p)
            return -1;
        r->segs = p;
        c->seg_cap = cap;
    }
    r->segs[r->total_segs++] = seg;
    return 0;
}

/* Take one key's bytes from own blocks, in order, as one or more segments. */
static ks_result take_key(keystore *ks, enc_ctx *c, own_cur *cur, size_t i)
{
    ks_key *k = &c->out->keys.keys[i];
    uint8_t *dst = (uint8_t *)k->material;
    uint32_t left = k->size_bits / 8;
    c->out->first_seg[i] = c->out->total_segs;
    while (left > 0) {
        if (!cur->have || cur->b.cursor == cur->b.length) {
            int rc = own_next(ks, cur);
            if (rc <= 0)
                return rc < 0 ? KS_ERROR : KS_EMPTY;
        }
        uint32_t take = cur->b.length - cur->b.cursor;
        take = take < left ? take : left;
        /* the block's last bytes are not zeroed: own_flush deletes it */
        bool last = take == cur->b.length - cur->b.cursor;
        if (mat_read(ks, &cur->b, cur->b.cursor, take, dst) != 0 ||
            (!last && mat_zero(ks, cur->b.id, cur->b.length, cur->b.cursor, take) != 0) ||
            seg_push(c, (ks_segment){cur->b.id, cur->b.cursor, take}) != 0)
            return KS_ERROR;
        cur->b.cursor += take;
        dst += take;
        left -= take;
    }
    c->out->n_segs[i] = c->out->total_segs - c->out->first_seg[i];
    return KS_OK;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static int outbox_insert(keystore *ks, const enc_ctx *c)
{
    const ks_reservation *r = c->out;
    size_t len = r->total_segs * SEG_WIRE;
    uint8_t *blob = malloc(len);
    if (!blob)
        return -1;
    for (size_t i = 0; i < r->total_segs; i++) {
        put_be(blob + i * SEG_WIRE, r->segs[i].block_id, 8);
        put_be(blob + i * SEG_WIRE + 8, r->segs[i].offset, 4);
        put_be(blob + i * SEG_WIRE + 12, r->segs[i].length, 4);
    }
    sqlite3_stmt *s = L(ks, LS_OB_INSERT);
    sqlite3_bind_blob(s, 1, r->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c->peer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, c->master, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, c->sl->data, (int)c->sl->len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, blob, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now_ms(ks));
    sqlite3_bind_int64(s, 7, r->expires_ms);
    int rc = step_reset(s);
    sqlite3_clear_bindings(s);
    free(blob);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int drop_acked(keystore *ks, const struct ksi_acked *ids, size_t n);

static ks_result enc_body(keystore *ks, tx *t)
{
    enc_ctx *c = (enc_ctx *)t;
    own_cur cur = {.have = false};
    if (drop_acked(ks, c->drop, c->n_drop) != 0)
        return KS_ERROR;
    ksi_tx_expect(ks, c->out->keys.arena.len);
    /* No sum over all blocks first: it cost more than the allocation (a
     * scan of every block per call).  Running out mid-way is KS_EMPTY and
     * the transaction is rolled back. */
    for (size_t i = 0; i < c->out->keys.n; i++) {
        ks_result r = take_key(ks, c, &cur, i);
        if (r != KS_OK)
            return r;
    }
    if (own_flush(ks, &cur) != 0 || outbox_insert(ks, c) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

/* ---- acknowledged reservations (ks_remote_acked) ----------------------- */

static int acked_push(keystore *ks, const uint8_t id[16])
{
    if (ks->n_acked == ks->cap_acked) {
        size_t cap = ks->cap_acked ? ks->cap_acked * 2 : 256;
        struct ksi_acked *p = realloc(ks->acked, cap * sizeof *p);
        if (!p)
            return -1;
        ks->acked = p;
        ks->cap_acked = cap;
    }
    memcpy(ks->acked[ks->n_acked++].id, id, 16);
    return 0;
}

/* Take up to max entries (the newest: order does not matter). */
static size_t acked_take(keystore *ks, struct ksi_acked *dst, size_t max)
{
    pthread_mutex_lock(&ks->fate_mu);
    size_t n = ks->n_acked < max ? ks->n_acked : max;
    ks->n_acked -= n;
    if (n > 0) /* the list may not exist yet (NULL) */
        memcpy(dst, ks->acked + ks->n_acked, n * sizeof *dst);
    pthread_mutex_unlock(&ks->fate_mu);
    return n;
}

/* Give back entries a rolled-back transaction did not drop.  Lost only
 * when out of memory: the entry then stays pending until the next start,
 * whose recovery asks the peer and drops it. */
static void acked_put_back(keystore *ks, const struct ksi_acked *ids, size_t n)
{
    pthread_mutex_lock(&ks->fate_mu);
    for (size_t i = 0; i < n; i++)
        if (acked_push(ks, ids[i].id) != 0)
            break;
    pthread_mutex_unlock(&ks->fate_mu);
}

static int drop_acked(keystore *ks, const struct ksi_acked *ids, size_t n)
{
    sqlite3_stmt *s = L(ks, LS_OB_CONFIRMED);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_blob(s, 1, ids[i].id, 16, SQLITE_STATIC);
        if (step_reset(s) != SQLITE_DONE)
            return -1;
    }
    return 0;
}

ks_result ks_remote_acked(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    pthread_mutex_lock(&ks->fate_mu);
    int rc = acked_push(ks, id);
    pthread_mutex_unlock(&ks->fate_mu);
    return rc == 0 ? KS_OK : KS_ERROR;
}

typedef struct drop_ctx {
    tx t;
    struct ksi_acked ids[ACKED_PER_ENC];
    size_t n;
} drop_ctx;

static ks_result drop_body(keystore *ks, tx *t)
{
    drop_ctx *c = (drop_ctx *)t;
    if (drop_acked(ks, c->ids, c->n) != 0)
        return KS_ERROR;
    t->changed = c->n > 0;
    return KS_OK;
}

/* Drop every acknowledged entry now (maintenance, close): when no
 * ks_remote_enc comes along to take them. */
static int drain_acked(keystore *ks)
{
    drop_ctx c = {.t.what = "outbox drop"};
    while ((c.n = acked_take(ks, c.ids, ACKED_PER_ENC)) > 0)
        if (run_tx(ks, &c.t, drop_body) != KS_OK) {
            acked_put_back(ks, c.ids, c.n);
            return -1;
        }
    return 0;
}

void ksi_link_drain_acked(keystore *ks)
{
    if (ks->lst && !atomic_load(&ks->failed) && drain_acked(ks) != 0)
        log_warn("keystore: acknowledged outbox entries left pending; the next start asks "
                 "the peer about them");
}

void ks_testing_forget_acked(keystore *ks)
{
    pthread_mutex_lock(&ks->fate_mu);
    ks->n_acked = 0;
    pthread_mutex_unlock(&ks->fate_mu);
}

/* Everything but the material: IDs, segment arrays, expiry. */
static int reservation_alloc(keystore *ks, ks_reservation *out, uint32_t n, uint32_t size_bits,
                             size_t seg_cap)
{
    uint64_t bytes = (uint64_t)n * (size_bits / 8);
    if (ksi_batch_alloc(&out->keys, n, (size_t)bytes) != 0)
        return -1;
    out->segs = malloc(seg_cap * sizeof *out->segs);
    out->first_seg = calloc(n, sizeof *out->first_seg);
    out->n_segs = calloc(n, sizeof *out->n_segs);
    if (!out->segs || !out->first_seg || !out->n_segs)
        return -1;
    /* time-ordered: the peer's reservation records and our outbox are
     * indexed by it, and random IDs made every insert touch a random page
     * of a table that holds ten minutes of reservations (the cross-KME
     * rate fell by a third as it grew past the page cache) */
    uuid_generate_v7(out->id, (uint64_t)now_ms(ks));
    for (uint32_t i = 0; i < n; i++) {
        uuid_generate_v4(out->keys.keys[i].id);
        out->keys.keys[i].size_bits = size_bits;
        out->keys.keys[i].material = out->keys.arena.data + (size_t)i * (size_bits / 8);
    }
    int64_t now = now_ms(ks);
    out->expires_ms = ks->ttl_ms > 0 && now < INT64_MAX - ks->ttl_ms ? now + ks->ttl_ms
                                                                    : INT64_MAX;
    return 0;
}

ks_result ks_remote_enc(keystore *ks, const char *peer, const char *master,
                        const char *const *slaves, size_t nslaves, uint32_t n,
                        uint32_t size_bits, ks_reservation *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!ks || !peer || !out ||
        !ksi_enc_args_ok(master, slaves, nslaves, n, size_bits, &out->keys)) {
        log_error("keystore: ks_remote_enc: invalid arguments");
        return KS_ERROR;
    }
    slave_list sl;
    if (ksi_slave_list_build(&sl, slaves, nslaves) != 0)
        return KS_ERROR;
    enc_ctx c = {.t.what = "remote enc", .peer = peer, .master = master, .sl = &sl,
                 .out = out, .seg_cap = (size_t)n + 8};
    ks_result r = KS_ERROR;
    if (reservation_alloc(ks, out, n, size_bits, c.seg_cap) == 0) {
        c.n_drop = acked_take(ks, c.drop, ACKED_PER_ENC);
        r = run_tx(ks, &c.t, enc_body);
        if (r != KS_OK) /* rolled back: the entries are still there */
            acked_put_back(ks, c.drop, c.n_drop);
    } else {
        log_error("keystore: out of memory for %" PRIu32 " keys", n);
    }
    ksi_slave_list_free(&sl);
    if (r != KS_OK)
        ks_reservation_free(out);
    return r;
}

void ks_reservation_free(ks_reservation *r)
{
    if (!r)
        return;
    ks_batch_free(&r->keys);
    free(r->segs);
    free(r->first_seg);
    free(r->n_segs);
    memset(r, 0, sizeof *r);
}

/* ---- the outbox --------------------------------------------------------- */

typedef struct ob_ctx {
    tx t;
    const uint8_t *id;
    enum lstmt st;
    const char *absent_state; /* with no change: the state that still is OK */
    ks_result absent;         /* result when no entry in that state exists */
    long count;
} ob_ctx;

/* Apply one outbox statement; when it changes nothing, look at the state. */
static ks_result ob_body(keystore *ks, tx *t)
{
    ob_ctx *c = (ob_ctx *)t;
    sqlite3_stmt *s = L(ks, c->st);
    if (c->id)
        sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
    if (step_reset(s) != SQLITE_DONE)
        return KS_ERROR;
    c->count = sqlite3_changes(ks->db);
    t->changed = c->count > 0;
    if (t->changed || !c->id)
        return KS_OK;
    s = L(ks, LS_OB_STATE);
    sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    bool ok = rc == SQLITE_ROW && c->absent_state &&
              strcmp((const char *)sqlite3_column_text(s, 0), c->absent_state) == 0;
    sqlite3_reset(s);
    if (!step_ok(rc))
        return KS_ERROR;
    return ok ? KS_OK : c->absent;
}

static ks_result ob_call(keystore *ks, const uint8_t *id, enum lstmt st, const char *ok_state,
                         ks_result absent, long *count)
{
    ob_ctx c = {.t.what = "outbox", .id = id, .st = st, .absent_state = ok_state,
                .absent = absent};
    ks_result r = run_tx(ks, &c.t, ob_body);
    if (count)
        *count = c.count;
    return r;
}

ks_result ks_remote_confirmed(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_CONFIRMED, NULL, KS_NOT_FOUND, NULL);
}

ks_result ks_remote_failed(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_FAILED, "void", KS_NOT_FOUND, NULL);
}

/* ---- entries of unknown fate (after a crash) ------------------------------ */

static void unknown_clear(keystore *ks)
{
    for (size_t i = 0; i < ks->n_unknown; i++)
        free(ks->unknown[i].peer);
    free(ks->unknown);
    ks->unknown = NULL;
    ks->n_unknown = 0;
}

void ksi_link_free_lists(keystore *ks)
{
    unknown_clear(ks);
    free(ks->acked);
    ks->acked = NULL;
    ks->n_acked = ks->cap_acked = 0;
}

/* The pending entries into ks->unknown (caller holds mu and fate_mu). */
static long list_pending_locked(keystore *ks)
{
    sqlite3_stmt *s = L(ks, LS_OB_PENDING);
    int rc;
    unknown_clear(ks);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(s, 0) != 16)
            continue; /* the table's CHECK makes this impossible */
        if (ks->n_unknown == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ksi_unknown *p = realloc(ks->unknown, ncap * sizeof *p);
            if (!p)
                break;
            ks->unknown = p;
            cap = ncap;
        }
        struct ksi_unknown *u = &ks->unknown[ks->n_unknown];
        memcpy(u->id, sqlite3_column_blob(s, 0), 16);
        if (!(u->peer = strdup((const char *)sqlite3_column_text(s, 1))))
            break;
        ks->n_unknown++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? (long)ks->n_unknown : -1;
}

long ks_outbox_recover(keystore *ks)
{
    if (!ks)
        return -1;
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    pthread_mutex_lock(&ks->fate_mu);
    long n = atomic_load(&ks->failed) ? -1 : list_pending_locked(ks);
    pthread_mutex_unlock(&ks->fate_mu);
    pthread_mutex_unlock(&ks->mu);
    if (n > 0)
        log_warn("keystore: %ld reservations of unknown fate (the process stopped while they "
                 "were in flight): asking the peer", n);
    return n;
}

ks_result ks_outbox_next_unknown(keystore *ks, uint8_t id[16], char **peer)
{
    if (!ks || !id || !peer)
        return KS_ERROR;
    *peer = NULL;
    pthread_mutex_lock(&ks->fate_mu);
    ks_result r = KS_NOT_FOUND;
    if (ks->n_unknown > 0) {
        memcpy(id, ks->unknown[0].id, 16);
        *peer = strdup(ks->unknown[0].peer);
        r = *peer ? KS_OK : KS_ERROR;
    }
    pthread_mutex_unlock(&ks->fate_mu);
    return r;
}

ks_result ks_outbox_settle(keystore *ks, const uint8_t id[16], bool applied)
{
    if (!ks || !id)
        return KS_ERROR;
    /* KS_NOT_FOUND: no longer pending (settled before): nothing to do */
    ks_result r = ob_call(ks, id, applied ? LS_OB_CONFIRMED : LS_OB_FAILED, NULL, KS_NOT_FOUND, NULL);
    if (r != KS_OK && r != KS_NOT_FOUND)
        return r;
    pthread_mutex_lock(&ks->fate_mu);
    for (size_t i = 0; i < ks->n_unknown; i++)
        if (memcmp(ks->unknown[i].id, id, 16) == 0) {
            free(ks->unknown[i].peer);
            memmove(&ks->unknown[i], &ks->unknown[i + 1],
                    (ks->n_unknown - i - 1) * sizeof *ks->unknown);
            ks->n_unknown--;
            break;
        }
    pthread_mutex_unlock(&ks->fate_mu);
    return KS_OK;
}

ks_result ks_outbox_void_sent(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_VOID_SENT, NULL, KS_OK, NULL);
}

static ks_result parse_segs(const uint8_t *blob, int len, ks_segment **segs, size_t *nsegs)
{
    size_t n = len > 0 ? (size_t)len / SEG_WIRE : 0;
    if (len < 0 || (size_t)len % SEG_WIRE != 0)
        return KS_ERROR;
    *segs = calloc(n ? n : 1, sizeof **segs);
    if (!*segs)
        return KS_ERROR;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = blob + i * SEG_WIRE;
        (*segs)[i] = (ks_segment){get_be(p, 8), (uint32_t)get_be(p + 8, 4),
                                  (uint32_t)get_be(p + 12, 4)};
    }
    *nsegs = n;
    return KS_OK;
}

static ks_result next_void_locked(keystore *ks, uint8_t id[16], char **peer, ks_segment **segs,
                                  size_t *nsegs)
{
    sqlite3_stmt *s = L(ks, LS_OB_NEXT_VOID);
    int rc = sqlite3_step(s);
    ks_result r = rc == SQLITE_DONE ? KS_NOT_FOUND : KS_ERROR;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 16) {
        memcpy(id, sqlite3_column_blob(s, 0), 16);
        *peer = strdup((const char *)sqlite3_column_text(s, 1));
        r = *peer ? parse_segs(sqlite3_column_blob(s, 2), sqlite3_column_bytes(s, 2), segs,
                               nsegs)
                  : KS_ERROR;
        if (r != KS_OK) {
            free(*peer);
            *peer = NULL;
        }
    }
    sqlite3_reset(s);
    return r;
}

ks_result ks_outbox_next_void(keystore *ks, uint8_t id[16], char **peer, ks_segment **segs,
                              size_t *nsegs)
{
    if (!ks || !id || !peer || !segs || !nsegs)
        return KS_ERROR;
    *peer = NULL;
    *segs = NULL;
    *nsegs = 0;
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks);
    ks_result r = atomic_load(&ks->failed) ? KS_ERROR
                                           : next_void_locked(ks, id, peer, segs, nsegs);
    pthread_mutex_unlock(&ks->mu);
    return r;
}

/* ---- the peer's reservations (we are the slaves' KME) ------------------- */

/* The used segment starting before `pos`, closest to it (1, 0 none, -1). */
static int seg_near(keystore *ks, enum lstmt st, uint64_t id, uint64_t pos, uint64_t *off,
                    uint64_t *len)
{
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, (int64_t)pos);
    int rc = sqlite3_step(s);
    *off = *len = 0;
    if (rc == SQLITE_ROW) {
        *off = (uint64_t)sqlite3_column_int64(s, 0);
        *len = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int seg_write(keystore *ks, enum lstmt st, uint64_t id, uint64_t off, uint64_t len)
{
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, (int64_t)off);
    if (st != LS_SEG_DEL)
        sqlite3_bind_int64(s, 3, (int64_t)len);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* The used segment closest before a position, when the caller has
 * looked it up already (found: 1, none: 0). */
typedef struct seg_prev {
    int found;
    uint64_t off, len;
} seg_prev;

/* Record [off, off+len) as used (it is known unused), merged with the
 * neighbours it touches so the table stays small.  prev: the used segment
 * starting closest before off, if known (NULL: look it up). */
static int seg_add(keystore *ks, uint64_t id, uint64_t off, uint64_t len, const seg_prev *prev)
{
    uint64_t po, pl, so, sl;
    int p = prev ? prev->found : seg_near(ks, LS_SEG_BEFORE, id, off, &po, &pl);
    if (prev) {
        po = prev->off;
        pl = prev->len;
    }
    int q = seg_near(ks, LS_SEG_FROM, id, off + len, &so, &sl);
    if (p < 0 || q < 0)
        return -1;
    bool join_prev = p && po + pl == off, join_next = q && so == off + len;
    if (join_next && seg_write(ks, LS_SEG_DEL, id, so, 0) != 0)
        return -1;
    uint64_t tail = join_next ? sl : 0;
    if (join_prev)
        return seg_write(ks, LS_SEG_SETLEN, id, po, pl + len + tail);
    return seg_write(ks, LS_SEG_INSERT, id, off, len + tail);
}

/* Mark known-unused bytes of a peer block used and zero them; the block
 * goes once all of it is used (b->length == 0 afterwards tells the
 * caller).  prev as for seg_add. */
static int mark_used(keystore *ks, blk *b, uint64_t off, uint64_t len, const seg_prev *prev)
{
    if (seg_add(ks, b->id, off, len, prev) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_BLK_ADD_USED);
    sqlite3_bind_int64(s, 1, bid(b->id));
    sqlite3_bind_int64(s, 2, (int64_t)len);
    if (step_reset(s) != SQLITE_DONE)
        return -1;
    b->used += (uint32_t)len;
    if (b->used < b->length)
        return mat_zero(ks, b->id, b->length, off, len);
    b->length = 0; /* used up: the row goes, no need to zero it first */
    return blk_erase(ks, b->id);
}

typedef struct apply_ctx {
    tx t;
    const uint8_t *id;
    const char *master;
    const slave_list *sl;
    int64_t expires_ms;
    const ks_remote_key *keys;
    size_t n;
    uint8_t digest[KS_DIGEST];
    secret_buf buf; /* one key's material at a time */
} apply_ctx;

static int confirm_one(keystore *ks, blk *b)
{
    sqlite3_stmt *s = L(ks, LS_CONFIRM);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)b->id);
    if (step_reset(s) != SQLITE_DONE)
        return -1;
    b->confirmed = true;
    return 0;
}

/* Check one segment of a reservation and take its bytes into dst. */
static ks_result take_seg(keystore *ks, const ks_segment *sg, uint8_t *dst)
{
    blk b;
    uint64_t po, pl, end = (uint64_t)sg->offset + sg->length;
    int found = blk_get(ks, sg->block_id, &b);
    if (found <= 0)
        return found < 0 ? KS_ERROR : KS_REJECTED;
    if (b.own || end > b.length)
        return KS_REJECTED;
    /* The peer allocates only from blocks the link confirmed to it, and the
     * link confirms only blocks that both KMEs stored: a peer block we hold
     * but whose confirmation has not reached us yet is confirmed by the
     * peer's use of it.  Refusing would burn bits that both sides hold. */
    if (!b.confirmed && confirm_one(ks, &b) != 0)
        return KS_ERROR;
    int p = seg_near(ks, LS_SEG_BEFORE, b.id, end, &po, &pl);
    if (p < 0)
        return KS_ERROR;
    if (p && po + pl > sg->offset)
        return KS_REJECTED; /* overlaps bits used before (or in this call) */
    /* Nothing used starts inside the segment (it would overlap), so the
     * segment just found is also the closest one before its start. */
    seg_prev prev = {.found = p, .off = po, .len = pl};
    if (mat_read(ks, &b, sg->offset, sg->length, dst) != 0 ||
        mark_used(ks, &b, sg->offset, sg->length, &prev) != 0)
        return KS_ERROR;
    return KS_OK;
}

static ks_result insert_remote_key(keystore *ks, const apply_ctx *c, const ks_remote_key *k)
{
    sqlite3_stmt *s = L(ks, LS_RKEY_INSERT);
    sqlite3_bind_blob(s, 1, k->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c->master, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, k->size_bits);
    sqlite3_bind_blob(s, 4, c->buf.data, (int)(k->size_bits / 8), SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now_ms(ks));
    sqlite3_bind_int64(s, 6, c->expires_ms);
    sqlite3_bind_blob(s, 7, c->sl->data, (int)c->sl->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, c->sl->pending);
    sqlite3_bind_blob(s, 9, c->id, 16, SQLITE_STATIC);
    int rc = step_reset(s);
    sqlite3_clear_bindings(s); /* no pointer into the secret buffer */
    if (rc == SQLITE_DONE)
        return KS_OK;
    return sqlite3_extended_errcode(ks->db) == SQLITE_CONSTRAINT_PRIMARYKEY ? KS_CONFLICT
                                                                           : KS_ERROR;
}

static ks_result apply_key(keystore *ks, apply_ctx *c, const ks_remote_key *k)
{
    uint8_t *dst = c->buf.data;
    for (size_t j = 0; j < k->nsegs; j++) {
        ks_result r = take_seg(ks, &k->segs[j], dst);
        if (r != KS_OK)
            return r;
        dst += k->segs[j].length;
    }
    ks_result r = insert_remote_key(ks, c, k);
    secret_wipe(c->buf.data, k->size_bits / 8);
    return r;
}

/* The record of a reservation ID: 0 none, RES_APPLIED or RES_VOID; -1. */
static int res_get(keystore *ks, const uint8_t id[16], uint8_t digest[KS_DIGEST])
{
    sqlite3_stmt *s = L(ks, LS_RES_GET);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(s), state = 0;
    if (rc == SQLITE_ROW) {
        state = sqlite3_column_int(s, 0);
        memset(digest, 0, KS_DIGEST);
        if (sqlite3_column_bytes(s, 1) == KS_DIGEST)
            memcpy(digest, sqlite3_column_blob(s, 1), KS_DIGEST);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? state : rc == SQLITE_DONE ? 0 : -1;
}

static int res_put(keystore *ks, const uint8_t id[16], int state, const uint8_t *digest)
{
    sqlite3_stmt *s = L(ks, LS_RES_PUT);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    if (digest)
        sqlite3_bind_blob(s, 3, digest, KS_DIGEST, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_int64(s, 4, now_ms(ks) + KS_RES_KEEP_MS);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* Record a new reservation ID as applied: 1, or 0 when the ID has a
 * record already (nothing written), -1 on error.  One B-tree descent for
 * the usual case, a new ID, instead of a lookup and then an insert. */
static int res_add(keystore *ks, const uint8_t id[16], const uint8_t *digest)
{
    sqlite3_stmt *s = L(ks, LS_RES_ADD);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, RES_APPLIED);
    sqlite3_bind_blob(s, 3, digest, KS_DIGEST, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now_ms(ks) + KS_RES_KEEP_MS);
    if (step_reset(s) != SQLITE_DONE)
        return -1;
    return sqlite3_changes(ks->db) > 0 ? 1 : 0;
}

/* The record is written first: should a key then fail, the body's
 * savepoint is rolled back with it. */
static ks_result apply_body(keystore *ks, tx *t)
{
    apply_ctx *c = (apply_ctx *)t;
    uint8_t seen[KS_DIGEST];
    int added = res_add(ks, c->id, c->digest);
    if (added < 0)
        return KS_ERROR;
    if (added == 0) {
        int state = res_get(ks, c->id, seen);
        if (state < 0)
            return KS_ERROR;
        if (state == RES_APPLIED && memcmp(seen, c->digest, KS_DIGEST) == 0)
            return KS_OK; /* a retry: applied before, nothing changes */
        return KS_CONFLICT; /* voided, or the ID came with other content */
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->n; i++)
        bytes += c->keys[i].size_bits / 8;
    ks_result lim = ksi_unfetched_check(ks, c->sl, bytes * 8);
    if (lim != KS_OK)
        return lim; /* the savepoint takes the record back with it */
    ksi_tx_expect(ks, bytes);
    for (size_t i = 0; i < c->n; i++) {
        ks_result r = apply_key(ks, c, &c->keys[i]);
        if (r != KS_OK)
            return r;
    }
    t->stored_delta = (int64_t)c->n;
    t->changed = true;
    return KS_OK;
}

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    put_be(b, v, 8);
    crypto_generichash_update(h, b, 8);
}

static void hash_str(crypto_generichash_state *h, const char *s)
{
    hash_u64(h, strlen(s));
    crypto_generichash_update(h, (const uint8_t *)s, strlen(s));
}

/* Digest of a reservation's content (metadata only, no key material), so
 * a retry can be told from another reservation under the same ID. */
static void res_digest(apply_ctx *c, const char *const *slaves, size_t nslaves)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, KS_DIGEST);
    hash_str(&h, c->master);
    hash_u64(&h, nslaves);
    for (size_t i = 0; i < nslaves; i++)
        hash_str(&h, slaves[i]);
    hash_u64(&h, (uint64_t)c->expires_ms);
    hash_u64(&h, c->n);
    for (size_t i = 0; i < c->n; i++) {
        const ks_remote_key *k = &c->keys[i];
        crypto_generichash_update(&h, k->id, 16);
        hash_u64(&h, k->size_bits);
        hash_u64(&h, k->nsegs);
        for (size_t j = 0; j < k->nsegs; j++) {
            hash_u64(&h, k->segs[j].block_id);
            hash_u64(&h, (uint64_t)k->segs[j].offset << 32 | k->segs[j].length);
        }
    }
    crypto_generichash_final(&h, c->digest, KS_DIGEST);
}

/* Shape of the reservation, before any lookup: every key a positive
 * multiple of 8 bits, exactly covered by non-empty segments.  Returns the
 * largest key in bytes, or 0 when the shape is wrong. */
static uint32_t keys_shape(const ks_remote_key *keys, size_t n)
{
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) {
        const ks_remote_key *k = &keys[i];
        uint64_t sum = 0;
        if (k->size_bits == 0 || k->size_bits % 8 != 0 || k->nsegs == 0 || !k->segs)
            return 0;
        for (size_t j = 0; j < k->nsegs; j++) {
            if (k->segs[j].length == 0)
                return 0;
            sum += k->segs[j].length;
        }
        if (sum != k->size_bits / 8)
            return 0;
        max = k->size_bits / 8 > max ? k->size_bits / 8 : max;
    }
    return max;
}

/* Check one reservation's arguments and shape and make its context for
 * apply_body (slave list built in *sl, digest taken); *max: its largest key
 * in bytes.  KS_ERROR for invalid arguments, KS_REJECTED for a bad shape. */
static ks_result apply_prepare(const ks_reservation_in *in, apply_ctx *c, slave_list *sl,
                               uint32_t *max)
{
    ks_batch unused = {0}; /* the shared check wants an output; 1 x 8 bits pass */
    if (!in->keys || in->n == 0 || in->n > UINT32_MAX ||
        !ksi_enc_args_ok(in->master, in->slaves, in->nslaves, 1, 8, &unused)) {
        log_error("keystore: ks_reservation_apply: invalid arguments");
        return KS_ERROR;
    }
    *max = keys_shape(in->keys, in->n);
    if (*max == 0) {
        log_warn("keystore: a reservation's key sizes and segments disagree");
        return KS_REJECTED;
    }
    if (ksi_slave_list_build(sl, in->slaves, in->nslaves) != 0)
        return KS_ERROR;
    *c = (apply_ctx){.t.what = "reservation", .id = in->id, .master = in->master, .sl = sl,
                     .expires_ms = in->expires_ms, .keys = in->keys, .n = in->n};
    res_digest(c, in->slaves, in->nslaves);
    return KS_OK;
}

ks_result ks_reservation_apply(keystore *ks, const uint8_t id[16], const char *master,
                               const char *const *slaves, size_t nslaves, int64_t expires_ms,
                               const ks_remote_key *keys, size_t n)
{
    if (!ks || !id) {
        log_error("keystore: ks_reservation_apply: invalid arguments");
        return KS_ERROR;
    }
    ks_reservation_in in = {.master = master, .slaves = slaves, .nslaves = nslaves,
                            .expires_ms = expires_ms, .keys = keys, .n = n};
    memcpy(in.id, id, 16);
    apply_ctx c;
    slave_list sl;
    uint32_t max;
    ks_result r = apply_prepare(&in, &c, &sl, &max);
    if (r != KS_OK)
        return r;
    c.id = id;
    r = KS_ERROR;
    if (secret_alloc(&c.buf, max) == 0)
        r = run_tx(ks, &c.t, apply_body);
    secret_free(&c.buf);
    ksi_slave_list_free(&sl);
    if (r == KS_REJECTED)
        log_warn("keystore: a reservation names bits that are not usable; refused");
    return r;
}

/* A batch of reservations: apply_body once per item, each under its own
 * savepoint, all in one call of the shared transaction. */
typedef struct batch_ctx {
    tx t;
    apply_ctx *items;
    bool *ready;        /* item passed apply_prepare */
    ks_result *results;
    size_t n;
} batch_ctx;

static ks_result batch_body(keystore *ks, tx *t)
{
    batch_ctx *b = (batch_ctx *)t;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->ready[i])
            continue;
        apply_ctx *c = &b->items[i];
        c->t.changed = false;
        c->t.stored_delta = 0;
        if (!ksi_item_begin(ks))
            return KS_ERROR;
        ks_result r = apply_body(ks, &c->t);
        bool keep = r == KS_OK && c->t.changed;
        mat_close(ks); /* an open blob handle makes RELEASE fail, ROLLBACK TO trips it */
        if (!ksi_item_end(ks, keep))
            return KS_ERROR;
        if (r == KS_ERROR)
            ksi_db_log(ks, "reservation of a batch");
        b->results[i] = r;
        if (keep) {
            t->stored_delta += c->t.stored_delta;
            t->changed = true;
        }
    }
    return KS_OK;
}

ks_result ks_reservation_apply_batch(keystore *ks, const ks_reservation_in *items, size_t n,
                                     ks_result *results)
{
    if (!ks || !items || !results || n == 0) {
        log_error("keystore: ks_reservation_apply_batch: invalid arguments");
        return KS_ERROR;
    }
    batch_ctx b = {.t.what = "reservation batch", .n = n, .results = results,
                   .items = calloc(n, sizeof *b.items), .ready = calloc(n, sizeof *b.ready)};
    slave_list *sl = calloc(n, sizeof *sl);
    secret_buf buf = {0};
    uint32_t max = 0;
    ks_result r = KS_ERROR;
    for (size_t i = 0; i < n; i++)
        results[i] = KS_ERROR;
    if (b.items && b.ready && sl) {
        for (size_t i = 0; i < n; i++) {
            uint32_t m = 0;
            results[i] = apply_prepare(&items[i], &b.items[i], &sl[i], &m);
            b.ready[i] = results[i] == KS_OK;
            max = m > max ? m : max;
        }
        /* one buffer for all: apply_key wipes it after each key */
        if (max == 0 || secret_alloc(&buf, max) == 0) {
            for (size_t i = 0; i < n; i++)
                b.items[i].buf = buf;
            r = max == 0 ? KS_OK : run_tx(ks, &b.t, batch_body);
        }
    }
    for (size_t i = 0; i < n && b.ready; i++) {
        if (!b.ready[i])
            continue;
        if (r != KS_OK) /* the whole part was undone, or not committed */
            results[i] = r;
        else if (results[i] == KS_REJECTED)
            log_warn("keystore: a reservation names bits that are not usable; refused");
        ksi_slave_list_free(&sl[i]);
    }
    secret_free(&buf);
    free(sl);
    free(b.ready);
    free(b.items);
    return r;
}

ks_result ks_reservation_state(keystore *ks, const uint8_t id[16], ks_res_state *state)
{
    if (!ks || !id || !state)
        return KS_ERROR;
    uint8_t digest[KS_DIGEST];
    pthread_mutex_lock(&ks->mu);
    ksi_tx_flush_locked(ks); /* answer from committed state only */
    int st = atomic_load(&ks->failed) ? -1 : res_get(ks, id, digest);
    pthread_mutex_unlock(&ks->mu);
    if (st < 0)
        return KS_ERROR;
    *state = st == RES_APPLIED ? KS_RES_APPLIED : st == RES_VOID ? KS_RES_VOIDED : KS_RES_UNKNOWN;
    return KS_OK;
}

typedef struct void_ctx {
    tx t;
    const uint8_t *id;
    const ks_segment *segs;
    size_t nsegs;
} void_ctx;

/* Burn [off, end) of a peer block: mark every gap between used segments. */
static int burn_range(keystore *ks, blk *b, uint64_t pos, uint64_t end)
{
    while (pos < end && b->length != 0) {
        uint64_t po, pl, so, sl;
        int p = seg_near(ks, LS_SEG_BEFORE, b->id, pos + 1, &po, &pl);
        if (p < 0)
            return -1;
        if (p && po + pl > pos) {
            pos = po + pl; /* already used */
            continue;
        }
        int q = seg_near(ks, LS_SEG_FROM, b->id, pos, &so, &sl);
        if (q < 0)
            return -1;
        uint64_t gap_end = q && so < end ? so : end;
        if (mark_used(ks, b, pos, gap_end - pos, NULL) != 0)
            return -1;
        pos = gap_end;
    }
    return 0;
}

static ks_result void_segs(keystore *ks, const void_ctx *c)
{
    for (size_t i = 0; i < c->nsegs; i++) {
        const ks_segment *sg = &c->segs[i];
        blk b;
        int found = blk_get(ks, sg->block_id, &b);
        if (found < 0)
            return KS_ERROR;
        if (found == 0 || b.own || sg->offset >= b.length)
            continue; /* nothing of ours to burn there */
        uint64_t end = (uint64_t)sg->offset + sg->length;
        if (burn_range(ks, &b, sg->offset, end < b.length ? end : b.length) != 0)
            return KS_ERROR;
    }
    return KS_OK;
}

static ks_result void_body(keystore *ks, tx *t)
{
    void_ctx *c = (void_ctx *)t;
    uint8_t seen[KS_DIGEST];
    int state = res_get(ks, c->id, seen);
    if (state < 0)
        return KS_ERROR;
    if (state == RES_APPLIED) { /* the master's call failed: its keys go */
        sqlite3_stmt *s = L(ks, LS_RKEYS_DEL);
        sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
        if (step_reset(s) != SQLITE_DONE)
            return KS_ERROR;
        t->stored_delta = -(int64_t)sqlite3_changes(ks->db);
    }
    if (void_segs(ks, c) != KS_OK || res_put(ks, c->id, RES_VOID, NULL) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

ks_result ks_void_apply(keystore *ks, const uint8_t id[16], const ks_segment *segs,
                        size_t nsegs)
{
    if (!ks || !id || (nsegs > 0 && !segs)) {
        log_error("keystore: ks_void_apply: invalid arguments");
        return KS_ERROR;
    }
    void_ctx c = {.t.what = "void", .id = id, .segs = segs, .nsegs = nsegs};
    return run_tx(ks, &c.t, void_body);
}
