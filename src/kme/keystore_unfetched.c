/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_unfetched.c - per-slave count of key bits held for a slave that
 * has not fetched them yet ([limits] sae_unfetched_bits, docs/kme.md).
 *
 * A master could otherwise have keys recorded for a slave that never calls
 * dec_keys until the TTL erases them: the table of keys (and, for remote
 * slaves, the peer KME's) grows without bound.
 *
 * The count lives in memory, in a hash table of slave IDs, and is rebuilt
 * from `keys` at every open, so it cannot outlive a drift.  It follows the
 * shared transaction of keystore_db.c exactly:
 *
 *   - a body notes what it changes (ksi_unf_note_*) in a list of deltas
 *     that only its own checks see (ksi_unfetched_check adds them);
 *   - an item of a batch that is rolled back takes its deltas with it
 *     (ksi_unf_item_mark / ksi_unf_item_undo);
 *   - a body whose part is kept merges its deltas into the table
 *     (ksi_unf_merge), remembering each slave's value at the BEGIN of the
 *     transaction once (an epoch per transaction);
 *   - a transaction that is rolled back as a whole restores those values
 *     (ksi_unf_abort); a part that is undone just drops its deltas.
 *
 * Every row inserted into `keys`, every slave's pending bit cleared
 * (dec_keys) and every row deleted with slaves still owed (expiry, a void)
 * goes through a note; the deletes with many rows use RETURNING to see them.
 * With no limit configured nothing is counted at all.  This replaced TEMP
 * triggers on `keys`, which cost a sub-program per row written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kme/keystore_internal.h"

/* Distinct slave IDs the table holds at most (the configured SAEs of this
 * KME; a peer names only those): beyond, enc_keys fails with KS_ERROR. */
#define UNF_MAX_SLAVES 65536u

typedef struct unf_entry {
    char *slave;          /* NULL: free slot */
    uint64_t bits;        /* merged: committed and kept parts */
    uint64_t snap_bits;   /* bits at the BEGIN of transaction snap_epoch */
    uint64_t snap_epoch;
} unf_entry;

typedef struct unf_delta {
    unf_entry *e;
    int64_t bits;
} unf_delta;

struct ksi_unfetched {
    unf_entry *slots;
    size_t cap, used;     /* cap: a power of two */
    uint64_t epoch;       /* the open transaction's */
    unf_delta *d;         /* the running body's notes */
    size_t nd, capd;
    size_t item_mark;     /* nd when the current batch item began */
};

static uint64_t hash_id(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static unf_entry *slot_of(unf_entry *slots, size_t cap, const char *s, size_t len)
{
    for (size_t i = hash_id(s, len) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        unf_entry *e = &slots[i];
        if (!e->slave || (strncmp(e->slave, s, len) == 0 && e->slave[len] == '\0'))
            return e;
    }
}

static int grow(ksi_unfetched *u)
{
    size_t cap = u->cap ? u->cap * 2 : 64;
    unf_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < u->cap; i++)
        if (u->slots[i].slave)
            *slot_of(slots, cap, u->slots[i].slave, strlen(u->slots[i].slave)) = u->slots[i];
    free(u->slots);
    u->slots = slots;
    u->cap = cap;
    return 0;
}

/* The slave's entry, created at zero when create is set; NULL when absent
 * (or out of memory / past UNF_MAX_SLAVES with create). */
static unf_entry *entry(ksi_unfetched *u, const char *s, size_t len, bool create)
{
    if (u->cap) {
        unf_entry *e = slot_of(u->slots, u->cap, s, len);
        if (e->slave || !create)
            return e->slave ? e : NULL;
    }
    if (!create || u->used >= UNF_MAX_SLAVES)
        return NULL;
    if ((u->used + 1) * 2 > u->cap && grow(u) != 0)
        return NULL;
    unf_entry *e = slot_of(u->slots, u->cap, s, len);
    e->slave = strndup(s, len);
    if (!e->slave)
        return NULL;
    e->snap_epoch = u->epoch; /* born in this transaction: snap_bits 0 */
    u->used++;
    return e;
}

static int note(ksi_unfetched *u, const char *s, size_t len, int64_t bits)
{
    unf_entry *e = entry(u, s, len, true);
    if (!e)
        return -1;
    if (u->nd == u->capd) {
        size_t cap = u->capd ? u->capd * 2 : 16;
        unf_delta *d = realloc(u->d, cap * sizeof *d);
        if (!d)
            return -1;
        u->d = d;
        u->capd = cap;
    }
    u->d[u->nd++] = (unf_delta){.e = e, .bits = bits};
    return 0;
}

/* Note bits for each ID of a stored slave list whose bit is set in mask. */
static int each_pending(ksi_unfetched *u, const char *p, size_t len, int64_t mask,
                        int64_t bits)
{
    const char *end = p ? p + len : p;
    for (int i = 0; p && p < end && i < KS_MAX_SLAVES; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            break;
        if ((mask & ((int64_t)1 << i)) && note(u, p, (size_t)(z - p), bits) != 0)
            return -1;
        p = z + 1;
    }
    return 0;
}

/* ---- notes from the bodies (caller holds mu) ------------------------------ */

int ksi_unf_note_list(keystore *ks, const slave_list *sl, uint64_t bits)
{
    assert(ks_lock_held(ks));
    if (!ks->unf)
        return 0;
    return each_pending(ks->unf, sl->data, sl->len, sl->pending, (int64_t)bits);
}

int ksi_unf_note_row(keystore *ks, const void *slaves, size_t len, int64_t pending,
                     uint64_t bits)
{
    assert(ks_lock_held(ks));
    if (!ks->unf)
        return 0;
    return each_pending(ks->unf, slaves, len, pending, -(int64_t)bits);
}

int ksi_unf_note_fetch(keystore *ks, const char *slave, uint64_t bits)
{
    assert(ks_lock_held(ks));
    if (!ks->unf)
        return 0;
    return note(ks->unf, slave, strlen(slave), -(int64_t)bits);
}

/* Run a DELETE on keys that returns (slaves, pending, size_bits) of each
 * row, noting the bits its pending slaves were still owed; the number of
 * rows deleted, or -1 (database error or out of memory). */
long ksi_delete_keys(keystore *ks, sqlite3_stmt *s)
{
    assert(ks_lock_held(ks));
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        n++;
        if (ksi_unf_note_row(ks, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                             sqlite3_column_int64(s, 1),
                             (uint64_t)sqlite3_column_int64(s, 2)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? n : -1;
}

/* ---- following the transaction (keystore_db.c, caller holds mu) ---------- */

void ksi_unf_begin_tx(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (ks->unf)
        ks->unf->epoch++;
}

void ksi_unf_begin_body(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (ks->unf)
        ks->unf->nd = ks->unf->item_mark = 0;
}

void ksi_unf_item_mark(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (ks->unf)
        ks->unf->item_mark = ks->unf->nd;
}

void ksi_unf_item_undo(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (ks->unf)
        ks->unf->nd = ks->unf->item_mark;
}

void ksi_unf_merge(keystore *ks)
{
    assert(ks_lock_held(ks));
    ksi_unfetched *u = ks->unf;
    if (!u)
        return;
    for (size_t i = 0; i < u->nd; i++) {
        unf_entry *e = u->d[i].e;
        if (e->snap_epoch != u->epoch) {
            e->snap_bits = e->bits;
            e->snap_epoch = u->epoch;
        }
        int64_t d = u->d[i].bits;
        if (d < 0 && (uint64_t)-d > e->bits) { /* a bug, never a wrap */
            log_error("keystore: unfetched count of %s would go below zero", e->slave);
            e->bits = 0;
        } else {
            e->bits = (uint64_t)((int64_t)e->bits + d);
        }
    }
    u->nd = u->item_mark = 0;
}

void ksi_unf_drop(keystore *ks)
{
    assert(ks_lock_held(ks));
    if (ks->unf)
        ks->unf->nd = ks->unf->item_mark = 0;
}

void ksi_unf_abort(keystore *ks)
{
    assert(ks_lock_held(ks));
    ksi_unfetched *u = ks->unf;
    if (!u)
        return;
    for (size_t i = 0; i < u->cap; i++)
        if (u->slots[i].slave && u->slots[i].snap_epoch == u->epoch)
            u->slots[i].bits = u->slots[i].snap_bits;
    u->nd = u->item_mark = 0;
}

/* ---- setup and queries ----------------------------------------------------- */

static void unf_free(ksi_unfetched *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->cap; i++)
        free(u->slots[i].slave);
    free(u->slots);
    free(u->d);
    free(u);
}

/* Count every key row's pending slaves (at open, nothing else running). */
static int rebuild(keystore *ks, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(ks->db, "SELECT slaves, pending, size_bits FROM keys", -1, &s,
                           NULL) != SQLITE_OK) {
        ksi_errf(err, errlen, "key store %s: cannot count unfetched keys: %s", ks->path,
                 sqlite3_errmsg(ks->db));
        return -1;
    }
    int rc;
    ks_lock(ks);
    ksi_unf_begin_body(ks);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (each_pending(ks->unf, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                         sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        ksi_unf_merge(ks); /* keeps the delta list short */
    }
    ks_unlock(ks);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        ksi_errf(err, errlen, "key store %s: cannot count unfetched keys: %s", ks->path,
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(ks->db));
        return -1;
    }
    return 0;
}

int ksi_unfetched_setup(keystore *ks, uint64_t limit_bits, char *err, size_t errlen)
{
    ks->unfetched_limit = limit_bits;
    if (limit_bits == 0)
        return 0; /* no limit: nothing to count */
    ks->unf = calloc(1, sizeof *ks->unf);
    if (!ks->unf) {
        ksi_errf(err, errlen, "key store %s: out of memory", ks->path);
        return -1;
    }
    return rebuild(ks, err, errlen);
}

void ksi_unfetched_finalize(keystore *ks)
{
    unf_free(ks->unf);
    ks->unf = NULL;
}

/* Bits held for slave as this body sees them: merged plus its own notes. */
static uint64_t held_in_body(ksi_unfetched *u, const char *s, size_t len)
{
    unf_entry *e = entry(u, s, len, false);
    if (!e)
        return 0;
    int64_t held = (int64_t)e->bits;
    for (size_t i = 0; i < u->nd; i++)
        if (u->d[i].e == e)
            held += u->d[i].bits;
    return held > 0 ? (uint64_t)held : 0;
}

ks_result ksi_unfetched_check(keystore *ks, const slave_list *sl, uint64_t add_bits)
{
    assert(ks_lock_held(ks));
    if (!ks->unf)
        return KS_OK;
    const char *p = sl->data, *end = sl->data + sl->len;
    for (int i = 0; p < end && i < KS_MAX_SLAVES; i++) {
        size_t len = strlen(p);
        if (sl->pending & ((int64_t)1 << i)) {
            uint64_t held = held_in_body(ks->unf, p, len);
            if (add_bits > ks->unfetched_limit || held > ks->unfetched_limit - add_bits)
                return KS_LIMIT;
        }
        p += len + 1;
    }
    return KS_OK;
}

ks_result ks_unfetched_get(keystore *ks, const char *slave, uint64_t *bits)
{
    if (!ks || !slave || !bits)
        return KS_ERROR;
    ks_lock(ks);
    unf_entry *e = ks->unf ? entry(ks->unf, slave, strlen(slave), false) : NULL;
    *bits = e ? e->bits : 0;
    ks_unlock(ks);
    return KS_OK;
}

uint64_t ks_unfetched_limit(const keystore *ks)
{
    return ks ? ks->unfetched_limit : 0;
}
