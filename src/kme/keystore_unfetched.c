/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_unfetched.c - per-slave count of key bits held for a slave that
 * has not fetched them yet ([limits] sae_unfetched_bits, docs/kme.md).
 *
 * A master could otherwise have keys recorded for a slave that never calls
 * dec_keys until the TTL erases them: the table of keys (and, for remote
 * slaves, the peer KME's) grows without bound.  The count is a TEMP table
 * kept by TEMP triggers on `keys`: every row inserted, every slave's
 * pending bit cleared (dec_keys) and every row deleted (all slaves served,
 * expiry, a void) moves it, whichever code path did it.  Being a table of
 * the same connection, it follows savepoints and rollbacks of the shared
 * transaction exactly; being TEMP, it costs no WAL writes and is rebuilt
 * from `keys` at every open, so it can never drift from the keys it counts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "kme/keystore_internal.h"

/* ks_pending_slaves(slaves, mask): the IDs of a stored slave list (each
 * NUL-terminated) whose bit is set in mask, as a JSON array of strings, for
 * json_each in the triggers. */
static void json_put_string(sqlite3_str *out, const char *s, size_t len)
{
    sqlite3_str_appendchar(out, 1, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sqlite3_str_appendf(out, "\\%c", c);
        else if (c < 0x20)
            sqlite3_str_appendf(out, "\\u%04x", c);
        else
            sqlite3_str_appendchar(out, 1, (char)c);
    }
    sqlite3_str_appendchar(out, 1, '"');
}

static void fn_pending_slaves(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *p = sqlite3_value_blob(argv[0]);
    int len = sqlite3_value_bytes(argv[0]);
    int64_t mask = sqlite3_value_int64(argv[1]);
    const char *end = p ? p + len : p;
    sqlite3_str *out = sqlite3_str_new(sqlite3_context_db_handle(ctx));
    sqlite3_str_appendchar(out, 1, '[');
    bool first = true;
    for (int i = 0; p && p < end && i < KS_MAX_SLAVES; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            break;
        if (mask & ((int64_t)1 << i)) {
            if (!first)
                sqlite3_str_appendchar(out, 1, ',');
            json_put_string(out, p, (size_t)(z - p));
            first = false;
        }
        p = z + 1;
    }
    sqlite3_str_appendchar(out, 1, ']');
    int n = sqlite3_str_length(out);
    char *text = sqlite3_str_finish(out);
    if (!text) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, text, n, sqlite3_free);
}

/* ks_slave_at(slaves, i): the i-th ID of a stored slave list, or NULL. */
static void fn_slave_at(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *p = sqlite3_value_blob(argv[0]);
    int len = sqlite3_value_bytes(argv[0]);
    int64_t want = sqlite3_value_int64(argv[1]);
    const char *end = p ? p + len : p;
    for (int64_t i = 0; p && p < end && i < KS_MAX_SLAVES; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            break;
        if (i == want) {
            sqlite3_result_text(ctx, p, (int)(z - p), SQLITE_TRANSIENT);
            return;
        }
        p = z + 1;
    }
    sqlite3_result_null(ctx);
}

/* The triggers have a fast path for the usual key, one slave (pending = 1:
 * only slave 0 owed), which costs one lookup in the count; a multicast key
 * goes through json_each.  dec_keys of a one-slave key deletes the row, so
 * the delete trigger is that key's fetch; a row deleted with nothing
 * pending (every slave served) moves nothing. */
static const char unfetched_sql[] =
    "CREATE TEMP TABLE unfetched("
    "  slave TEXT PRIMARY KEY, bits INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO temp.unfetched(slave, bits)"
    "  SELECT j.value, sum(k.size_bits) FROM main.keys k,"
    "    json_each(ks_pending_slaves(k.slaves, k.pending)) j GROUP BY j.value;"
    "CREATE TEMP TRIGGER unfetched_ins1 AFTER INSERT ON main.keys WHEN NEW.pending = 1 BEGIN"
    "  INSERT INTO unfetched(slave, bits) VALUES (ks_slave_at(NEW.slaves, 0), NEW.size_bits)"
    "    ON CONFLICT(slave) DO UPDATE SET bits = bits + excluded.bits; END;"
    "CREATE TEMP TRIGGER unfetched_ins AFTER INSERT ON main.keys WHEN NEW.pending > 1 BEGIN"
    "  INSERT INTO unfetched(slave, bits)"
    "    SELECT value, NEW.size_bits FROM json_each(ks_pending_slaves(NEW.slaves, NEW.pending))"
    "    WHERE true ON CONFLICT(slave) DO UPDATE SET bits = bits + excluded.bits; END;"
    "CREATE TEMP TRIGGER unfetched_upd AFTER UPDATE OF pending ON main.keys"
    "  WHEN OLD.pending & ~NEW.pending != 0 BEGIN"
    "  UPDATE unfetched SET bits = bits - OLD.size_bits WHERE slave IN"
    "    (SELECT value FROM json_each(ks_pending_slaves(OLD.slaves, OLD.pending & ~NEW.pending)));"
    "  END;"
    "CREATE TEMP TRIGGER unfetched_del1 AFTER DELETE ON main.keys WHEN OLD.pending = 1 BEGIN"
    "  UPDATE unfetched SET bits = bits - OLD.size_bits"
    "    WHERE slave = ks_slave_at(OLD.slaves, 0); END;"
    "CREATE TEMP TRIGGER unfetched_del AFTER DELETE ON main.keys WHEN OLD.pending > 1 BEGIN"
    "  UPDATE unfetched SET bits = bits - OLD.size_bits WHERE slave IN"
    "    (SELECT value FROM json_each(ks_pending_slaves(OLD.slaves, OLD.pending))); END;";

int ksi_unfetched_setup(keystore *ks, uint64_t limit_bits, char *err, size_t errlen)
{
    ks->unfetched_limit = limit_bits;
    if (sqlite3_create_function(ks->db, "ks_pending_slaves", 2,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                fn_pending_slaves, NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(ks->db, "ks_slave_at", 2,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                fn_slave_at, NULL, NULL) != SQLITE_OK) {
        ksi_errf(err, errlen, "key store %s: cannot register its functions: %s", ks->path,
                 sqlite3_errmsg(ks->db));
        return -1;
    }
    if (ksi_exec_or_err(ks, unfetched_sql, err, errlen) != 0)
        return -1;
    if (sqlite3_prepare_v3(ks->db, "SELECT bits FROM temp.unfetched WHERE slave = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &ks->unf_get, NULL) != SQLITE_OK) {
        ksi_errf(err, errlen, "key store %s: cannot prepare the unfetched count: %s", ks->path,
                 sqlite3_errmsg(ks->db));
        return -1;
    }
    return 0;
}

void ksi_unfetched_finalize(keystore *ks)
{
    sqlite3_finalize(ks->unf_get);
    ks->unf_get = NULL;
}

/* Bits held for slave now (caller holds mu); -1 on a database error. */
static int64_t unfetched_locked(keystore *ks, const char *slave, size_t len)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = ks->unf_get;
    sqlite3_bind_text(s, 1, slave, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int64_t bits = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? bits : -1;
}

ks_result ksi_unfetched_check(keystore *ks, const slave_list *sl, uint64_t add_bits)
{
    assert(ks_lock_held(ks));
    if (ks->unfetched_limit == 0)
        return KS_OK;
    const char *p = sl->data, *end = sl->data + sl->len;
    while (p < end) {
        size_t len = strlen(p);
        int64_t held = unfetched_locked(ks, p, len);
        if (held < 0)
            return KS_ERROR;
        if (add_bits > ks->unfetched_limit || (uint64_t)held > ks->unfetched_limit - add_bits)
            return KS_LIMIT;
        p += len + 1;
    }
    return KS_OK;
}

ks_result ks_unfetched_get(keystore *ks, const char *slave, uint64_t *bits)
{
    if (!ks || !slave || !bits)
        return KS_ERROR;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    int64_t held = unfetched_locked(ks, slave, strlen(slave));
    ks_unlock(ks);
    if (held < 0)
        return KS_ERROR;
    *bits = (uint64_t)held;
    return KS_OK;
}

uint64_t ks_unfetched_limit(const keystore *ks)
{
    return ks ? ks->unfetched_limit : 0;
}
