/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_relay.c - relaying a reservation through this KME, a trusted
 * node of a QKD network (docs/network.md §3): ks_relay_deliver stores the
 * relayed key K for the slaves at the last KME, ks_relay_forward seals it
 * for the next hop with fresh bits of that hop's link, ks_relay_done
 * settles the forward once the downstream answered.
 *
 * K arrives from the upstream either as a reservation (the first hop: its
 * segments in the upstream's blocks of our link to it) or sealed (later
 * hops: cipher and tag, with the segments of pad and MAC key in the
 * upstream's blocks; relay_seal.c).  Either way its bits are marked used
 * by the call's transaction, and a forward takes the pad and MAC key for
 * the next hop from our own blocks of the link to it, in the same
 * transaction as the reservation record (state RES_RELAYING) and a pending
 * outbox entry for the downstream: the outbox of ks_remote_enc, so that
 * ks_outbox_recover, ks_outbox_settle and the void replay serve relays
 * too, and ks_void_apply of an upstream void voids downstream
 * (keystore_remote_apply.c).  K lives only in secret buffers, wiped before
 * each call returns.
 *
 * Calls keystore_remote_outbox.c (own blocks, outbox), keystore_remote_apply.c
 * (reservation records, peer segments), keystore_blocks.c, keystore_local.c,
 * keystore_unfetched.c and relay_seal.c.  Bodies run under ks->mu.
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"
#include "kme/keystore_link_internal.h"
#include "kme/relay_seal.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"

/* Most key bytes one relay moves (the API's largest call is 1024 keys of
 * 64 kbit: 8 MiB). */
#define KS_RELAY_MAX_BYTES (16u * 1024 * 1024)

typedef struct relay_ctx {
    tx t;
    const ks_relay_in *in;
    slave_list sl;
    uint32_t bytes;                 /* sum of the key sizes / 8 */
    uint8_t digest[KS_DIGEST];
    secret_buf k;                   /* K, bytes long */
    secret_buf pad;                 /* pad + MAC key, bytes + 32 */
    /* forward only */
    const char *next_peer;
    const uint8_t *aad_out;
    size_t aad_out_len;
    ks_relay_out *out;
    ksi_segvec out_pad;
    bool applied_before;            /* a repeat the downstream applied already */
} relay_ctx;

/* ---- checks ------------------------------------------------------------- */

static uint64_t seg_sum(const ks_segment *segs, size_t n, bool *zero)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += segs[i].length;
        *zero |= segs[i].length == 0;
    }
    return sum;
}

/* The arguments a caller must get right (KS_ERROR when not). */
static bool relay_args_ok(const ks_relay_in *in)
{
    ks_batch unused = {0}; /* the shared check wants an output; 1 x 8 bits pass */
    if (!in || !ksi_peer_ok(in->from_peer) || !in->keys || in->n == 0 || in->n > UINT32_MAX ||
        !ksi_enc_args_ok(in->master, in->slaves, in->nslaves, 1, 8, &unused) ||
        (in->aad_len > 0 && !in->aad))
        return false;
    return !in->sealed || (in->pad && in->npad > 0 && in->cipher && in->tag);
}

/* The shape of what arrived: key sizes, and segments (or pad and cipher)
 * that add up.  Sets c->bytes; KS_REJECTED when it does not add up. */
static ks_result relay_shape(const ks_relay_in *in, relay_ctx *c)
{
    uint64_t bytes = 0;
    bool zero = false;
    for (size_t i = 0; i < in->n; i++) {
        const ks_remote_key *k = &in->keys[i];
        if (k->size_bits == 0 || k->size_bits % 8 != 0)
            return KS_REJECTED;
        bytes += k->size_bits / 8;
        if (!in->sealed && (k->nsegs == 0 || !k->segs ||
                            seg_sum(k->segs, k->nsegs, &zero) != k->size_bits / 8))
            return KS_REJECTED;
    }
    if (zero || bytes > KS_RELAY_MAX_BYTES)
        return KS_REJECTED;
    if (in->sealed && (in->cipher_len != bytes ||
                       seg_sum(in->pad, in->npad, &zero) != bytes + RELAY_MAC_KEY_BYTES || zero))
        return KS_REJECTED;
    c->bytes = (uint32_t)bytes;
    return KS_OK;
}

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    put_be(b, v, 8);
    crypto_generichash_update(h, b, 8);
}

static void hash_bytes(crypto_generichash_state *h, const void *p, size_t n)
{
    hash_u64(h, n);
    if (n > 0)
        crypto_generichash_update(h, p, n);
}

static void hash_segs(crypto_generichash_state *h, const ks_segment *segs, size_t n)
{
    hash_u64(h, n);
    for (size_t j = 0; j < n; j++) {
        hash_u64(h, segs[j].block_id);
        hash_u64(h, (uint64_t)segs[j].offset << 32 | segs[j].length);
    }
}

/* Digest of everything that arrived, so that a retry can be told from
 * another message under the same ID.  The cipher is K under a pad that is
 * erased by then: its digest tells nothing of K. */
static void relay_digest(const ks_relay_in *in, uint8_t out[KS_DIGEST])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, KS_DIGEST);
    hash_bytes(&h, in->master, strlen(in->master));
    hash_u64(&h, in->nslaves);
    for (size_t i = 0; i < in->nslaves; i++)
        hash_bytes(&h, in->slaves[i], strlen(in->slaves[i]));
    hash_u64(&h, (uint64_t)in->expires_ms);
    hash_u64(&h, in->n);
    for (size_t i = 0; i < in->n; i++) {
        crypto_generichash_update(&h, in->keys[i].id, 16);
        hash_u64(&h, in->keys[i].size_bits);
        if (!in->sealed)
            hash_segs(&h, in->keys[i].segs, in->keys[i].nsegs);
    }
    hash_u64(&h, in->sealed);
    if (in->sealed) {
        hash_segs(&h, in->pad, in->npad);
        hash_bytes(&h, in->cipher, in->cipher_len);
        hash_bytes(&h, in->tag, RELAY_TAG_BYTES);
    }
    hash_bytes(&h, in->aad, in->aad_len);
    crypto_generichash_final(&h, out, KS_DIGEST);
}

/* ---- the bodies ---------------------------------------------------------- */

/* Take the bits of segs (n of them, in the upstream's blocks of link) into
 * dst, marking them used. */
static ks_result take_segs(keystore *ks, int64_t link, const ks_segment *segs, size_t n,
                           uint8_t *dst)
{
    assert(ks_lock_held(ks));
    for (size_t j = 0; j < n; j++) {
        ks_result r = ksi_take_seg(ks, link, &segs[j], dst);
        if (r != KS_OK)
            return r;
        dst += segs[j].length;
    }
    return KS_OK;
}

/* K into c->k: from the segments of a first hop, or opened from the seal
 * (the tag checked before anything is decrypted). */
static ks_result get_k(keystore *ks, relay_ctx *c)
{
    assert(ks_lock_held(ks));
    const ks_relay_in *in = c->in;
    int64_t link = ksi_link_find(ks, in->from_peer);
    if (!in->sealed) {
        uint8_t *dst = c->k.data;
        for (size_t i = 0; i < in->n; i++) {
            ks_result r = take_segs(ks, link, in->keys[i].segs, in->keys[i].nsegs, dst);
            if (r != KS_OK)
                return r;
            dst += in->keys[i].size_bits / 8;
        }
        return KS_OK;
    }
    ks_result r = take_segs(ks, link, in->pad, in->npad, c->pad.data);
    if (r == KS_OK && relay_open(c->pad.data, c->pad.data + c->bytes, in->aad, in->aad_len,
                                 in->cipher, c->bytes, in->tag, c->k.data) != 0)
        r = KS_TAMPERED;
    secret_wipe(c->pad.data, c->pad.len);
    return r;
}

/* Record the reservation in state (new ID: 1), or judge a repeat: 0 with
 * *rec filled when the ID has a record with this content, KS_CONFLICT
 * (as a negative ks_result) otherwise. */
static int relay_record(keystore *ks, relay_ctx *c, int state, ksi_res_rec *rec)
{
    assert(ks_lock_held(ks));
    int added = ksi_res_add(ks, c->in->id, state, c->digest, c->in->from_peer, c->next_peer);
    if (added != 0)
        return added;
    if (ksi_res_get(ks, c->in->id, rec) < 0)
        return -1;
    bool same = memcmp(rec->digest, c->digest, KS_DIGEST) == 0 &&
                ksi_res_from(rec, c->in->from_peer) &&
                strcmp(rec->next_peer, c->next_peer ? c->next_peer : "") == 0;
    return same ? 0 : -2;
}

static ks_result insert_keys(keystore *ks, relay_ctx *c)
{
    assert(ks_lock_held(ks));
    const ks_relay_in *in = c->in;
    sqlite3_stmt *s = L(ks, LS_RKEY_INSERT);
    const uint8_t *mat = c->k.data;
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < in->n && rc == SQLITE_DONE; i++) {
        uint32_t len = in->keys[i].size_bits / 8;
        sqlite3_bind_blob(s, 1, in->keys[i].id, 16, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, in->master, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, in->keys[i].size_bits);
        sqlite3_bind_blob(s, 4, mat, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, now_ms(ks));
        sqlite3_bind_int64(s, 6, in->expires_ms);
        sqlite3_bind_blob(s, 7, c->sl.data, (int)c->sl.len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 8, c->sl.pending);
        sqlite3_bind_blob(s, 9, in->id, 16, SQLITE_STATIC);
        rc = step_reset(s);
        mat += len;
    }
    sqlite3_clear_bindings(s); /* no pointer into the secret buffer */
    if (rc == SQLITE_DONE)
        return KS_OK;
    return sqlite3_extended_errcode(ks->db) == SQLITE_CONSTRAINT_PRIMARYKEY ? KS_CONFLICT
                                                                           : KS_ERROR;
}

static ks_result deliver_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    relay_ctx *c = (relay_ctx *)t;
    ksi_res_rec seen;
    int rec = relay_record(ks, c, RES_APPLIED, &seen);
    if (rec == -1)
        return KS_ERROR;
    if (rec != 1) /* a repeat of what we applied: nothing changes */
        return rec == 0 && seen.state == RES_APPLIED ? KS_OK : KS_CONFLICT;
    ks_result r = ksi_unfetched_check(ks, &c->sl, (uint64_t)c->bytes * 8);
    if (r != KS_OK)
        return r; /* the savepoint takes the record back with it */
    ksi_tx_expect(ks, c->bytes);
    if ((r = get_k(ks, c)) != KS_OK || (r = insert_keys(ks, c)) != KS_OK)
        return r;
    if (ksi_unf_note_list(ks, &c->sl, (uint64_t)c->bytes * 8) != 0)
        return KS_ERROR;
    t->stored_delta = (int64_t)c->in->n;
    t->changed = true;
    return KS_OK;
}

static ks_result forward_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    relay_ctx *c = (relay_ctx *)t;
    ksi_res_rec seen;
    int rec = relay_record(ks, c, RES_RELAYING, &seen);
    if (rec == -1)
        return KS_ERROR;
    if (rec != 1) {
        c->applied_before = rec == 0 && seen.state == RES_RELAYED;
        return c->applied_before ? KS_OK : KS_CONFLICT;
    }
    ksi_tx_expect(ks, 2 * (uint64_t)c->bytes);
    ks_result r = get_k(ks, c);
    if (r != KS_OK)
        return r;
    ksi_own_cur cur = {.have = false, .link = ksi_link_find(ks, c->next_peer)};
    r = ksi_own_take(ks, &cur, c->pad.data, c->bytes + RELAY_MAC_KEY_BYTES, &c->out_pad);
    if (r == KS_OK && ksi_own_flush(ks, &cur) != 0)
        r = KS_ERROR;
    if (r == KS_OK)
        relay_seal(c->pad.data, c->pad.data + c->bytes, c->aad_out, c->aad_out_len, c->k.data,
                   c->bytes, c->out->cipher, c->out->tag);
    secret_wipe(c->pad.data, c->pad.len);
    if (r != KS_OK)
        return r;
    if (ksi_outbox_insert(ks, c->in->id, c->next_peer, c->in->master, &c->sl, c->out_pad.segs,
                          c->out_pad.n, c->in->expires_ms) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

/* ---- the calls ------------------------------------------------------------ */

/* Check the input and set up c (slave list, digest, secret buffers). */
static ks_result relay_prepare(const ks_relay_in *in, relay_ctx *c, const char *what)
{
    if (!relay_args_ok(in)) {
        log_error("keystore: %s: invalid arguments", what);
        return KS_ERROR;
    }
    ks_result r = relay_shape(in, c);
    if (r != KS_OK) {
        log_warn("keystore: %s: the relayed keys' sizes and segments disagree", what);
        return r;
    }
    if (ksi_slave_list_build(&c->sl, in->slaves, in->nslaves) != 0)
        return KS_ERROR;
    c->in = in;
    c->t.what = what;
    relay_digest(in, c->digest);
    if (secret_alloc(&c->k, c->bytes) != 0 ||
        secret_alloc(&c->pad, (size_t)c->bytes + RELAY_MAC_KEY_BYTES) != 0)
        return KS_ERROR;
    c->k.len = c->bytes;
    c->pad.len = (size_t)c->bytes + RELAY_MAC_KEY_BYTES;
    return KS_OK;
}

static void relay_release(relay_ctx *c)
{
    secret_free(&c->k);
    secret_free(&c->pad);
    if (c->in)
        ksi_slave_list_free(&c->sl);
}

static void log_refusal(const char *what, ks_result r)
{
    if (r == KS_TAMPERED)
        log_warn("keystore: %s: the relayed key's tag does not verify; refused", what);
    else if (r == KS_REJECTED)
        log_warn("keystore: %s: the relay names bits that are not usable; refused", what);
}

ks_result ks_relay_deliver(keystore *ks, const ks_relay_in *in)
{
    relay_ctx c = {0};
    ks_result r = ks ? relay_prepare(in, &c, "relay deliver") : KS_ERROR;
    if (r == KS_OK)
        r = ksi_run_tx(ks, &c.t, deliver_body);
    log_refusal("relay deliver", r);
    relay_release(&c);
    return r;
}

ks_result ks_relay_forward(keystore *ks, const ks_relay_in *in, const char *next_peer,
                           const uint8_t *aad_out, size_t aad_out_len, ks_relay_out *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!ks || !out || !ksi_peer_ok(next_peer) || (aad_out_len > 0 && !aad_out) ||
        (in && in->from_peer && strcmp(in->from_peer, next_peer) == 0)) {
        log_error("keystore: relay forward: invalid arguments");
        return KS_ERROR;
    }
    relay_ctx c = {.next_peer = next_peer, .aad_out = aad_out, .aad_out_len = aad_out_len,
                   .out = out};
    ks_result r = relay_prepare(in, &c, "relay forward");
    if (r == KS_OK && !(out->cipher = malloc(c.bytes)))
        r = KS_ERROR;
    if (r == KS_OK)
        r = ksi_run_tx(ks, &c.t, forward_body);
    if (r == KS_OK && !c.applied_before) {
        out->pad = c.out_pad.segs;
        out->npad = c.out_pad.n;
        out->cipher_len = c.bytes;
    } else {
        free(c.out_pad.segs);
        ks_relay_out_free(out); /* nothing to send: a failure, or applied before */
    }
    log_refusal("relay forward", r);
    relay_release(&c);
    return r;
}

void ks_relay_out_free(ks_relay_out *o)
{
    if (!o)
        return;
    free(o->pad);
    free(o->cipher);
    memset(o, 0, sizeof *o);
}
