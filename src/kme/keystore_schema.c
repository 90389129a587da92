/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_schema.c - the link tables of the key store (docs/kme-pair.md,
 * docs/network.md): their schema, the statements the link layers share
 * (ks->lst), and the migration of files of schema versions 1, 2 and 3.  Called by
 * keystore_open.c only, inside init_schema's transaction (ksi_link_schema)
 * and at open and close (ksi_link_prepare, ksi_link_finalize); calls the
 * blocks layer for material (migration).
 *
 * The link layers: keystore_blocks.c (blocks from the link),
 * keystore_remote_outbox.c (reservations we make for our masters: own
 * blocks, an outbox of pending reservations and voids) and
 * keystore_remote_apply.c (reservations and voids the peer KME sends us:
 * peer blocks).  Same connection, mutex and durability as the local keys:
 * every change is one transaction (ksi_run_tx), committed under the mutex
 * and made durable by ksi_finish before the call returns (I4).
 *
 * Tables (schema version 4):
 *   links          one row per QKD link, named by the peer KME at its
 *                  other end (one link per pair of KMEs); made on demand by
 *                  ks_block_store, listed in memory (ks->links);
 *   blocks         one row per stored block: its link, owner, length, confirmed,
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
 *   reservations   the peers' reservations we applied, voided or relayed
 *                  (digest of the content, for idempotency; the peer it
 *                  came from; for a relay the next KME), kept
 *                  KS_RES_KEEP_MS (a relay in flight until it is settled);
 *   keys.res_id    keys made from a peer reservation live in the same keys
 *                  table as local keys (ks_dec is unchanged).
 *
 * Consumed bytes are zero in the blob from the COMMIT that consumed them
 * on (a range that ends a block is not zeroed: the row is deleted in that
 * transaction); old page images leave the WAL at the TRUNCATE checkpoints
 * of keystore_db.c.  The one blob handle (ks->mat) is reused across blocks
 * within a body and always closed before the body returns (link_body): an
 * open write handle makes COMMIT fail ("SQL statements in progress"), and
 * ROLLBACK TO trips it.  A handle tripped inside a body (a savepoint of
 * its own rolled back, its row rewritten) is reopened by ksi_mat_io.
 *
 * Bits are never handed out twice: own blocks only move their cursor
 * forward, peer segments must not overlap used_segments, and a block ID in
 * blocks_gone is refused.  Block IDs are unique across links; a block
 * serves only its link's peer (every statement that picks blocks names
 * the link).  Accounting is derived from these rows (never a
 * separate counter): unused bytes = length - cursor - used, which CHECK
 * constraints keep within 0..length.
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"
#include "kme/keystore_link_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "common/uuid.h"

static const char *const lstmt_sql[LS_COUNT_] = {
    [LS_BLK_GET] = "SELECT own, length, confirmed, cursor, used, link FROM blocks"
                   " WHERE block_id = ?1",
    [LS_GONE_GET] = "SELECT 1 FROM blocks_gone WHERE block_id = ?1",
    [LS_GONE_ADD] = "INSERT OR IGNORE INTO blocks_gone(block_id, gone_ms) VALUES (?1, ?2)",
    [LS_DIR_UNUSED] = "SELECT coalesce(sum(unused), 0) FROM link_totals"
                      " WHERE link = ?1 AND own = ?2",
    [LS_BLK_INSERT] = "INSERT INTO blocks(block_id, own, length, confirmed, stored_ms, cursor,"
                      " used, link) VALUES (?1, ?2, ?3, 0, ?4, 0, 0, ?5)",
    [LS_MAT_INSERT] = "INSERT INTO block_material(block_id, bytes) VALUES (?1, ?2)",
    [LS_CONFIRM] = "UPDATE blocks SET confirmed = 1"
                   " WHERE block_id = ?1 AND link = ?2 AND confirmed = 0",
    [LS_BLK_DEL] = "DELETE FROM blocks WHERE block_id = ?1",
    [LS_MAT_DEL] = "DELETE FROM block_material WHERE block_id = ?1",
    [LS_SEGS_DEL] = "DELETE FROM used_segments WHERE block_id = ?1",
    [LS_UNCONF_LIST] = "SELECT block_id FROM blocks WHERE link = ?1 AND confirmed = 0"
                       " ORDER BY stored_ms, block_id",
    [LS_UNCONF_OLD] = "SELECT block_id FROM blocks WHERE confirmed = 0 AND stored_ms <= ?1",
    [LS_FULL_LIST] = "SELECT block_id FROM blocks WHERE cursor + used >= length",
    [LS_STATS] = "SELECT own, confirmed, blocks, unused FROM link_totals WHERE link = ?1",
    [LS_STATS_RECOUNT] = "SELECT own, confirmed, count(*), coalesce(sum(length - cursor - used), 0)"
                         " FROM blocks NOT INDEXED WHERE link = ?1 GROUP BY own, confirmed",
    [LS_OWN_NEXT] = "SELECT block_id, length, cursor, stored_ms FROM blocks"
                    " WHERE link = ?3 AND own = 1 AND confirmed = 1 AND cursor < length"
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
    [LS_RES_GET] = "SELECT state, digest, peer, next_peer FROM reservations WHERE res_id = ?1",
    /* a void: a record kept with its digest, peer and next hop */
    [LS_RES_PUT] = "INSERT INTO reservations(res_id, state, digest, keep_until_ms, peer)"
                   " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (res_id) DO UPDATE"
                   " SET state = excluded.state, keep_until_ms = excluded.keep_until_ms",
    [LS_RES_ADD] = "INSERT OR IGNORE INTO reservations(res_id, state, digest, keep_until_ms,"
                   " peer, next_peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* a relay's downstream answered (from RES_RELAYING only) */
    [LS_RES_SET_STATE] = "UPDATE reservations SET state = ?2, keep_until_ms = ?3"
                         " WHERE res_id = ?1 AND state = 3",
    [LS_RKEY_INSERT] = "INSERT INTO keys(key_id, master, size_bits, material, created, expires,"
                       " slaves, pending, res_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [LS_RKEYS_DEL] = "DELETE FROM keys WHERE res_id = ?1"
                     " RETURNING slaves, pending, size_bits", /* keystore_unfetched.c */
    [LS_GONE_PRUNE] = "DELETE FROM blocks_gone WHERE gone_ms <= ?1",
    /* a relay in flight stays until its downstream answered */
    [LS_RES_PRUNE] = "DELETE FROM reservations WHERE keep_until_ms <= ?1 AND state <> 3",
    [LS_LINK_ADD] = "INSERT OR IGNORE INTO links(peer) VALUES (?1)",
    [LS_LINK_GET] = "SELECT link_no FROM links WHERE peer = ?1",
    [LS_LINK_LIST] = "SELECT link_no, peer FROM links ORDER BY link_no",
    [LS_OB_VOID_ADD] = "INSERT OR IGNORE INTO outbox(res_id, peer, state, master, slaves,"
                       " segments, created_ms, expires_ms)"
                       " VALUES (?1, ?2, 'void', '', x'', x'', ?3, ?4)",
};

/* The columns of blocks (version 4: with its link), for a new file and
 * for the migration, which rebuilds the table. */
#define BLOCKS_COLUMNS                                                          \
    "  block_id INTEGER PRIMARY KEY,"   /* the link's 64-bit ID, as int64 */ \
    "  own INTEGER NOT NULL CHECK (own IN (0, 1)),"                             \
    "  length INTEGER NOT NULL CHECK (length > 0),"                             \
    "  confirmed INTEGER NOT NULL CHECK (confirmed IN (0, 1)),"                 \
    "  stored_ms INTEGER NOT NULL,"                                             \
    "  cursor INTEGER NOT NULL CHECK (cursor >= 0 AND cursor <= length),"       \
    "  used INTEGER NOT NULL CHECK (used >= 0 AND used <= length),"             \
    "  link INTEGER NOT NULL,"          /* links.link_no */                   \
    "  CHECK (own = 1 OR cursor = 0), CHECK (own = 0 OR used = 0)"

/* reservations (version 4: the peer it came from and, for a relay, the
 * next KME; states in the RES_ enum) */
#define RESERVATIONS_COLUMNS                                                    \
    "  res_id BLOB PRIMARY KEY CHECK (length(res_id) = 16),"                    \
    "  state INTEGER NOT NULL CHECK (state IN (1, 2, 3, 4)),"                   \
    "  digest BLOB, keep_until_ms INTEGER NOT NULL,"                            \
    "  peer TEXT, next_peer TEXT"       /* NULL in records of version 3 */

static const char link_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS links("
    "  link_no INTEGER PRIMARY KEY, peer TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS blocks(" BLOCKS_COLUMNS ");"
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
    "CREATE TABLE IF NOT EXISTS reservations(" RESERVATIONS_COLUMNS ") WITHOUT ROWID;";

/* Indexes, made once the tables have their version 4 columns. */
static const char link_index_sql[] =
    "DROP INDEX IF EXISTS blocks_order;"    /* version 3: without the link */
    "CREATE INDEX IF NOT EXISTS blocks_link_order"
    "  ON blocks(link, own, confirmed, stored_ms, block_id);"
    "CREATE INDEX IF NOT EXISTS reservations_keep ON reservations(keep_until_ms);"
    "CREATE INDEX IF NOT EXISTS keys_res ON keys(res_id) WHERE res_id IS NOT NULL;";

/* link_totals: per (link, own, confirmed), the number of blocks and their
 * unused bytes, for status and the cap of ks_block_store.  Summing the
 * blocks took about a millisecond per status call (a scan of ~1000 rows);
 * triggers keep these rows in the same transactions as the blocks they
 * count, so they roll back with them and cannot drift.  A new link gets
 * its four rows from a trigger on links.  Table and triggers are derived
 * objects: both are made afresh from the blocks at every open (so a file
 * keeps no stale trigger or shape from another version). */
static const char link_totals_sql[] =
    "DROP TRIGGER IF EXISTS link_totals_ins;"
    "DROP TRIGGER IF EXISTS link_totals_del;"
    "DROP TRIGGER IF EXISTS link_totals_upd;"
    "DROP TRIGGER IF EXISTS link_totals_link;"
    "DROP TABLE IF EXISTS link_totals;"
    "CREATE TABLE link_totals("
    "  link INTEGER NOT NULL, own INTEGER NOT NULL, confirmed INTEGER NOT NULL,"
    "  blocks INTEGER NOT NULL CHECK (blocks >= 0),"
    "  unused INTEGER NOT NULL CHECK (unused >= 0),"
    "  PRIMARY KEY (link, own, confirmed)) WITHOUT ROWID;"
    "CREATE TRIGGER link_totals_link AFTER INSERT ON links BEGIN"
    "  INSERT INTO link_totals(link, own, confirmed, blocks, unused)"
    "    SELECT NEW.link_no, o.v, c.v, 0, 0"
    "    FROM (SELECT 0 AS v UNION ALL SELECT 1) o, (SELECT 0 AS v UNION ALL SELECT 1) c; END;"
    "CREATE TRIGGER link_totals_ins AFTER INSERT ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks + 1,"
    "    unused = unused + NEW.length - NEW.cursor - NEW.used"
    "    WHERE link = NEW.link AND own = NEW.own AND confirmed = NEW.confirmed; END;"
    "CREATE TRIGGER link_totals_del AFTER DELETE ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks - 1,"
    "    unused = unused - (OLD.length - OLD.cursor - OLD.used)"
    "    WHERE link = OLD.link AND own = OLD.own AND confirmed = OLD.confirmed; END;"
    "CREATE TRIGGER link_totals_upd AFTER UPDATE ON blocks BEGIN"
    "  UPDATE link_totals SET blocks = blocks - 1,"
    "    unused = unused - (OLD.length - OLD.cursor - OLD.used)"
    "    WHERE link = OLD.link AND own = OLD.own AND confirmed = OLD.confirmed;"
    "  UPDATE link_totals SET blocks = blocks + 1,"
    "    unused = unused + NEW.length - NEW.cursor - NEW.used"
    "    WHERE link = NEW.link AND own = NEW.own AND confirmed = NEW.confirmed; END;"
    "INSERT INTO link_totals(link, own, confirmed, blocks, unused)"
    "  SELECT l.link_no, o.v, c.v,"
    "    (SELECT count(*) FROM blocks b"
    "     WHERE b.link = l.link_no AND b.own = o.v AND b.confirmed = c.v),"
    "    (SELECT coalesce(sum(length - cursor - used), 0) FROM blocks b"
    "     WHERE b.link = l.link_no AND b.own = o.v AND b.confirmed = c.v)"
    "  FROM links l, (SELECT 0 AS v UNION ALL SELECT 1) o,"
    "    (SELECT 0 AS v UNION ALL SELECT 1) c;";


/* ---- schema, statements ------------------------------------------------- */

static int migrate_chunks(keystore *ks, int64_t from, char *err, size_t errlen);
static int migrate_links(keystore *ks, int64_t from, char *err, size_t errlen);

int ksi_link_schema(keystore *ks, int64_t from, char *err, size_t errlen)
{
    assert(ks_lock_held(ks));
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
    if (from >= 1 && from < 4 && migrate_links(ks, from, err, errlen) != 0)
        return -1;
    if (ksi_exec_or_err(ks, link_index_sql, err, errlen) != 0)
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
    ks_lock(ks);
    int rc = ksi_links_load(ks);
    ks_unlock(ks);
    if (rc != 0)
        ksi_errf(err, errlen, "key store %s: cannot read its links: %s", ks->path,
                 sqlite3_errmsg(ks->db));
    return rc;
}

void ksi_link_finalize(keystore *ks)
{
    ksi_mat_close(ks);
    ksi_links_free(ks);
    if (!ks->lst)
        return;
    for (int i = 0; i < LS_COUNT_; i++)
        sqlite3_finalize(ks->lst[i]);
    free(ks->lst);
    ks->lst = NULL;
}

/* ---- migration from schema version 2 ------------------------------------ */

/* Run a query over (block_id, a, b, length) rows, calling fn on each. */
static int mig_each(keystore *ks, const char *sql,
                    int (*fn)(keystore *ks, sqlite3_stmt *row))
{
    assert(ks_lock_held(ks));
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
    assert(ks_lock_held(ks));
    uint64_t id = (uint64_t)sqlite3_column_int64(row, 0);
    uint64_t at = (uint64_t)sqlite3_column_int64(row, 1) * KS_V2_CHUNK;
    uint32_t length = (uint32_t)sqlite3_column_int64(row, 3);
    int n = sqlite3_column_bytes(row, 2);
    if (at + (uint64_t)n > length)
        return -1;
    return ksi_mat_io(ks, id, length, (void *)sqlite3_column_blob(row, 2), n, (int)at, true);
}

/* A consumed range (block_id, off, len, length) that a partly used chunk
 * still held: zero it. */
static int mig_zero(keystore *ks, sqlite3_stmt *row)
{
    assert(ks_lock_held(ks));
    uint64_t off = (uint64_t)sqlite3_column_int64(row, 1);
    uint64_t len = (uint64_t)sqlite3_column_int64(row, 2);
    uint32_t length = (uint32_t)sqlite3_column_int64(row, 3);
    if (len == 0)
        return 0;
    if (off + len > length)
        return -1;
    return ksi_mat_zero(ks, (uint64_t)sqlite3_column_int64(row, 0), length, off, len);
}

/* Version 2 kept a block's material in 128-byte block_chunks rows and
 * deleted each row once consumed.  Build each block's blob from its chunks
 * (missing chunks were consumed: zeros), zero what the remaining chunks
 * held of consumed bytes (own: below the cursor; peer: used segments),
 * then drop the table (secure_delete zeroes its pages).  Inside
 * init_schema's transaction: all or nothing. */
static int migrate_chunks(keystore *ks, int64_t from, char *err, size_t errlen)
{
    assert(ks_lock_held(ks));
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
    ksi_mat_close(ks);
    if (rc != 0 || ksi_exec_or_err(ks, "DROP TABLE block_chunks", err, errlen) != 0)
        return -1;
    log_info("keystore: %s: schema migrated from version %" PRId64 " to %d (material of"
             " %" PRId64 " link blocks from chunk rows into one blob each)", ks->path, from,
             KS_SCHEMA_VERSION, nblocks);
    return 0;
}


/* ---- migration from schema version 3 (one link) -------------------------- */

static bool has_column(keystore *ks, const char *table, const char *column)
{
    char sql[160];
    int found;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'",
             table, column);
    return ksi_query_int(ks, sql, 0, &found) > 0;
}

/* Version 3 knew one link: its blocks had no link and its reservation
 * records no peer.  Rebuild blocks with the link column, every block on
 * the link to ks->migrate_peer (the caller's one [link]), and reservations
 * with the peer columns (NULL: records of before, matching any peer).
 * Inside init_schema's transaction: all or nothing. */
static int migrate_blocks(keystore *ks, int64_t from, char *err, size_t errlen)
{
    assert(ks_lock_held(ks));
    int found;
    int64_t nblocks = ksi_query_int(ks, "SELECT count(*) FROM blocks", 0, &found);
    if (nblocks > 0 && !ks->migrate_peer) {
        ksi_errf(err, errlen, "key store %s: schema version %" PRId64 " holds %" PRId64
                 " blocks of its one QKD link, and no peer KME was given for that link"
                 " (the [link] peer): cannot tell which link they belong to", ks->path, from,
                 nblocks);
        return -1;
    }
    char *sql = sqlite3_mprintf(
        "INSERT OR IGNORE INTO links(peer) SELECT %Q WHERE %lld > 0;"
        "CREATE TABLE blocks_v4(" BLOCKS_COLUMNS ");"
        "INSERT INTO blocks_v4(block_id, own, length, confirmed, stored_ms, cursor, used, link)"
        "  SELECT block_id, own, length, confirmed, stored_ms, cursor, used,"
        "    (SELECT link_no FROM links WHERE peer = %Q) FROM blocks;"
        "DROP TABLE blocks;"
        "ALTER TABLE blocks_v4 RENAME TO blocks;",
        ks->migrate_peer ? ks->migrate_peer : "", (long long)nblocks,
        ks->migrate_peer ? ks->migrate_peer : "");
    if (!sql) {
        ksi_errf(err, errlen, "out of memory");
        return -1;
    }
    int rc = ksi_exec_or_err(ks, sql, err, errlen);
    sqlite3_free(sql);
    if (rc == 0 && nblocks > 0)
        log_info("keystore: %s: %" PRId64 " link blocks of schema version %" PRId64
                 " assigned to the link to %s", ks->path, nblocks, from, ks->migrate_peer);
    return rc;
}

static const char migrate_reservations_sql[] =
    "CREATE TABLE reservations_v4(" RESERVATIONS_COLUMNS ") WITHOUT ROWID;"
    "INSERT INTO reservations_v4(res_id, state, digest, keep_until_ms)"
    "  SELECT res_id, state, digest, keep_until_ms FROM reservations;"
    "DROP TABLE reservations;"
    "ALTER TABLE reservations_v4 RENAME TO reservations;";

static int migrate_links(keystore *ks, int64_t from, char *err, size_t errlen)
{
    assert(ks_lock_held(ks));
    if (!has_column(ks, "blocks", "link") && migrate_blocks(ks, from, err, errlen) != 0)
        return -1;
    if (!has_column(ks, "reservations", "peer") &&
        ksi_exec_or_err(ks, migrate_reservations_sql, err, errlen) != 0)
        return -1;
    log_info("keystore: %s: schema migrated from version %" PRId64 " to %d (blocks per link)",
             ks->path, from, KS_SCHEMA_VERSION);
    return 0;
}
