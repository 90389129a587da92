/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_local.c - local key pairs: the local pool (the key material a
 * KME without a QKD link hands out at a configured rate) and the keys of
 * ks_local_enc / ks_dec (docs/kme.md).
 *
 * Tables: local_pool (one row: level and refill time), keys (one row per
 * undelivered key, WITHOUT ROWID on the 16-byte key ID) and its index
 * keys_expires.  A key row carries its authorised slaves (a NUL-terminated
 * list) and a bitmask of those still owed the key, rather than a
 * key_slaves table: every commit appends each page it touches to the WAL,
 * and the WAL bytes per request are what bound throughput, so enc+dec touch
 * 4 pages, not 6.  A key row is deleted as soon as the last slave has the
 * key, or at expiry.  keys.res_id names the peer's reservation a remote key
 * came from (keystore_remote_apply.c); ks_dec serves both kinds.
 *
 * Each call is one body of the shared transaction (ksi_tx, keystore_db.c):
 * the bodies run with ks->mu held and assert it.  Calls only
 * keystore_unfetched.c and keystore_db.c.
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "common/uuid.h"

__extension__ typedef unsigned __int128 u128;

/* ---- local pool --------------------------------------------------------- */

/* Level of the local pool at now, refilled lazily: stored + rate * elapsed,
 * at most cap.  *ts_out receives the refill time to persist with that level:
 * only the time actually converted into bits is consumed, so frequent calls
 * do not lose fractional bits. */
uint64_t ksi_pool_level(const keystore *ks, int64_t now, int64_t *ts_out)
{
    assert(ks_lock_held(ks));
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
    assert(ks_lock_held(ks));
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
    assert(ks_lock_held(ks));
    enc_ctx *c = ctx;
    int64_t now = now_ns(ks), ts;
    uint64_t level = ksi_pool_level(ks, now, &ts);
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
    if (rc != 0 || ksi_unf_note_list(ks, c->sl, c->need) != 0)
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
    assert(ks_lock_held(ks));
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
    assert(ks_lock_held(ks));
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
    assert(ks_lock_held(ks));
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
    r = dec_consume(ks, k->id, pending, deleted);
    if (r == KS_OK && ksi_unf_note_fetch(ks, slave, k->size_bits) != 0)
        r = KS_ERROR;
    return r;
}

/* dec_keys of one key (the usual call): judge and take it with one lookup
 * instead of two; the same verdicts as dec_judge and dec_take. */
static ks_result dec_one(keystore *ks, const char *master, const char *slave,
                         const uint8_t id[16], ks_batch *out, uint64_t *deleted)
{
    assert(ks_lock_held(ks));
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
    r = dec_consume(ks, k->id, pending, deleted);
    if (r == KS_OK && ksi_unf_note_fetch(ks, slave, k->size_bits) != 0)
        r = KS_ERROR;
    return r;
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
    assert(ks_lock_held(ks));
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
    ks_lock(ks);
    out->local_available_bits = ksi_pool_level(ks, now_ns(ks), &ts);
    out->local_cap_bits = ks->cap_bits;
    out->stored_keys = ks->stored;
    ks_unlock(ks);
    return KS_OK;
}
