/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore.h - the KME's durable key state, in one SQLite file (WAL).
 *
 * Every call that hands out or consumes keys is one transaction, committed
 * before the call returns, so the HTTP layer answers only after the state it
 * implies is on disk (invariant I4): kill -9 at any instant and a restart
 * never deliver a key twice (I1, I2).  In KS_SYNC_NORMAL commits reach the OS
 * (safe against process crashes); in KS_SYNC_FULL they also reach the disk
 * (safe against power loss), with group commit: concurrent callers share
 * one fsync of the WAL.
 *
 * Deleted key material is overwritten in the file (PRAGMA secure_delete) and
 * a maintenance thread expires keys past their TTL and checkpoints the WAL
 * with TRUNCATE, so consumed keys leave the disk too.
 *
 * Local pairs (master and slaves on this KME) draw from a local pool of
 * `local_cap_bits`, refilled from the OS CSPRNG at `local_rate_bps`; its
 * level is a counter persisted with every allocation, and the material is
 * drawn at allocation time.  Thread-safe: the store mutex guards the
 * database connection and the in-memory counters and is never held across
 * anything but the database; the group commit, the maintenance thread and
 * the fates of reservations the peer applied each have a mutex of their
 * own (keystore_internal.h declares them and their order).
 *
 * Key IDs are random version-4 UUIDs (uuid.h), independent of the key
 * material; reservation IDs between our KMEs are time-ordered version-7
 * UUIDs, so that the databases append them to their indexes.
 */
#ifndef QC_KME_KEYSTORE_H
#define QC_KME_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/secret.h"

typedef struct keystore keystore;

typedef enum { KS_SYNC_NORMAL = 0, KS_SYNC_FULL = 1 } ks_sync;

typedef enum {
    KS_OK = 0,
    KS_EMPTY,          /* not enough key material in the pool */
    KS_NOT_FOUND,      /* dec: some key unknown, expired, from another master,
                          or already delivered to this slave */
    KS_UNAUTHORIZED,   /* dec: some key exists but the caller is not among
                          its slaves */
    KS_ERROR,          /* invalid arguments, or a database or I/O failure;
                          nothing was changed -- except when the WAL fsync
                          after COMMIT fails (full mode): those keys are
                          burnt (I5) and the store refuses every later call */
    KS_CONFLICT,       /* link/peer: same ID already recorded with other content */
    KS_REJECTED,       /* peer: a segment is not in a usable block of the peer,
                          or overlaps bits used before */
    KS_LIMIT,          /* enc, reservation: a slave would hold more unfetched
                          bits than slave_unfetched_bits; nothing changed */
    KS_TAMPERED,       /* relay: the one-time tag of a sealed key did not
                          verify; nothing changed */
} ks_result;

typedef struct ks_options {
    const char *path;              /* database file */
    ks_sync sync;
    uint64_t local_cap_bits;       /* local pool capacity */
    uint64_t local_rate_bps;       /* local pool refill rate (0 = instant) */
    int64_t key_ttl_s;             /* undelivered keys expire after this */
    unsigned maintenance_ms;       /* expiry + WAL checkpoint period */
    int64_t link_block_ttl_ms;     /* ks_maintain erases unconfirmed link blocks
                                      stored longer ago than this; 0 = 60000 */
    uint64_t wal_limit_bytes;      /* checkpoint at once when the WAL grows past
                                      this; 0 = 16 MiB (keystore_internal.h) */
    uint64_t slave_unfetched_bits; /* most bits held for one slave that it has
                                      not fetched yet (enc and reservations
                                      beyond: KS_LIMIT); 0 = no limit */
    const char *migrate_link_peer; /* a file of schema version 3 or older has
                                      one link: the peer KME at its other end
                                      (the config's one [link]).  Its blocks
                                      become that link's; NULL while it holds
                                      blocks: ks_open fails */
} ks_options;

typedef struct ks_key {
    uint8_t id[16];
    uint32_t size_bits;
    const uint8_t *material;       /* size_bits / 8 bytes inside the batch's arena */
} ks_key;

/* A set of keys handed out by one call; material lives in one secret arena. */
typedef struct ks_batch {
    ks_key *keys;
    size_t n;
    secret_buf arena;
} ks_batch;

typedef struct ks_stats {
    uint64_t local_available_bits; /* local pool level now (after refill) */
    uint64_t local_cap_bits;
    uint64_t stored_keys;          /* keys awaiting at least one slave */
} ks_stats;

/* Open or create the store; on failure returns NULL and writes a precise
 * reason into err. */
keystore *ks_open(const ks_options *opt, char *err, size_t errlen);
void ks_close(keystore *ks);

/* Allocate n keys of size_bits (a multiple of 8) from the local pool for
 * master, retrievable once by each of the nslaves slaves; fresh random
 * UUIDs; material from the CSPRNG.  KS_OK fills *out (free with
 * ks_batch_free); KS_EMPTY when the pool holds fewer than n * size_bits.
 * At most 63 distinct slaves; a slave named twice counts once. */
ks_result ks_local_enc(keystore *ks, const char *master,
                       const char *const *slaves, size_t nslaves,
                       uint32_t n, uint32_t size_bits, ks_batch *out);

/* Deliver keys ids[0..n) of master to slave, all or nothing, in request
 * order; each slave gets each key once; a key is erased once every slave
 * has it.  KS_UNAUTHORIZED wins over KS_NOT_FOUND when both apply. */
ks_result ks_dec(keystore *ks, const char *master, const char *slave,
                 const uint8_t (*ids)[16], size_t n, ks_batch *out);

ks_result ks_stats_get(keystore *ks, ks_stats *out);

/* Bits of keys held here for slave that it has not fetched yet (every
 * master, local and remote keys alike; keystore_unfetched.c).  Counted
 * only when the store has a limit (slave_unfetched_bits > 0); 0 otherwise. */
ks_result ks_unfetched_get(keystore *ks, const char *slave, uint64_t *bits);
/* The slave_unfetched_bits the store was opened with (0: no limit). */
uint64_t ks_unfetched_limit(const keystore *ks);

/* Expire keys past their TTL and checkpoint the WAL now (the maintenance
 * thread does this periodically); returns the number of keys expired, or -1
 * on a database error.  key_ttl_s <= 0 means keys never expire.  Also erases
 * unconfirmed link blocks older than link_block_ttl_ms and used-up blocks,
 * and prunes old block tombstones and reservation records. */
long ks_maintain(keystore *ks);

void ks_batch_free(ks_batch *b);

const char *ks_result_str(ks_result r);

/* Tests only: move the store's clock (pool refill, key expiry) forward by
 * ms milliseconds instead of sleeping. */
void ks_testing_advance_clock(keystore *ks, int64_t ms);

/* ===================================================================
 * QKD link blocks and remote pairs (docs/kme-pair.md).
 *
 * Blocks arrive from the link simulator with the same ID and bytes at both
 * KMEs of a link; each is owned by one of them ("own" blocks: this KME
 * allocates from them for its masters; "peer" blocks: the peer allocates
 * and tells us which segments by reservation).  A block is usable once
 * confirmed.  Bits are never handed out twice: own blocks are consumed in
 * order (a per-block cursor), peer blocks by segments that may not overlap.
 * Consumed material is erased promptly (zeroed in place in the block's
 * blob by the transaction that consumes it), and a block's row disappears
 * once all of it is used.
 *
 * A KME has one link per directly linked peer KME (docs/network.md), and
 * every call that touches blocks names the link by the peer's KME ID
 * (`link_peer`, `peer`, `from_peer`): a block belongs to exactly one link,
 * and the link's bits serve only that peer.  Block IDs are unique in the
 * whole store, across links.  A link exists once a block was stored for it
 * (ks_block_store); asking about an unknown link finds no blocks.
 * =================================================================== */

typedef struct ks_segment {
    uint64_t block_id;
    uint32_t offset;               /* bytes into the block */
    uint32_t length;               /* bytes */
} ks_segment;

typedef struct ks_link_stats {
    uint64_t own_bits;             /* unused bits in confirmed own blocks:
                                      sum of (length - cursor) * 8 */
    uint64_t peer_bits;            /* unused bits in confirmed peer blocks:
                                      sum of (length - bytes used) * 8 */
    uint64_t unconfirmed_blocks;
} ks_link_stats;

/* Link intake of the link to link_peer: store a block durably, unconfirmed
 * (len >= 1).  Idempotent: the same ID on the same link with the same
 * owner, length and bytes is KS_OK again (bytes already consumed and
 * erased cannot be compared; the rest are); with others (another link
 * included) KS_CONFLICT.  An ID erased before (used up, discarded or
 * expired, within the last 7 days, on any link) is KS_CONFLICT too: a
 * replayed block never revives bits.  KS_EMPTY when storing it would put
 * that direction of that link above cap_bits (confirmed + unconfirmed
 * unused bits). */
ks_result ks_block_store(keystore *ks, const char *link_peer, uint64_t block_id, bool own,
                         const uint8_t *bytes, uint32_t len, uint64_t cap_bits);

/* Confirm (usable from now on) or discard (erase) unconfirmed blocks of
 * the link to link_peer; unknown IDs, IDs of another link's blocks and
 * already confirmed IDs are ignored; *done (may be NULL) counts the blocks
 * changed. */
ks_result ks_block_confirm(keystore *ks, const char *link_peer, const uint64_t *ids, size_t n,
                           size_t *done);
ks_result ks_block_discard(keystore *ks, const char *link_peer, const uint64_t *ids, size_t n,
                           size_t *done);

/* IDs of unconfirmed blocks of the link to link_peer (malloc'd array in
 * *ids, NULL when none; free it). */
ks_result ks_block_unconfirmed(keystore *ks, const char *link_peer, uint64_t **ids, size_t *n);

/* Erase unconfirmed blocks of every link stored max_age_ms or more ago;
 * returns count, or -1 on a database error. */
long ks_block_expire_unconfirmed(keystore *ks, int64_t max_age_ms);

/* The figures of the link to link_peer (zeros for a link never seen). */
ks_result ks_link_stats_get(keystore *ks, const char *link_peer, ks_link_stats *out);

/* Tests only: at one instant, the running totals ks_link_stats_get reports
 * and the same figures summed from the blocks themselves (always equal). */
ks_result ks_testing_link_stats_check(keystore *ks, const char *link_peer,
                                      ks_link_stats *totals, ks_link_stats *recount);

/* A reservation made here (we are the master's KME) for keys whose slaves
 * sit behind `peer`. */
typedef struct ks_reservation {
    uint8_t id[16];                /* reservation ID (time-ordered v7 UUID) */
    ks_batch keys;                 /* key IDs, sizes, material (arena) */
    ks_segment *segs;              /* all segments, key by key, in order */
    size_t *first_seg;             /* per key: index of its first segment */
    size_t *n_segs;                /* per key: number of its segments */
    size_t total_segs;
    int64_t expires_ms;            /* Unix ms: when the slaves' copies expire */
} ks_reservation;

/* Take n * size_bits from own confirmed blocks of the link to peer (in the
 * order they were stored, cursors advanced, never wrapping; a key may span
 * blocks as several segments), in ONE transaction that also records an outbox entry {id, peer,
 * master, slaves, segments} in state "pending".  Arguments as for
 * ks_local_enc (KS_ERROR otherwise); KS_EMPTY when own blocks hold fewer
 * bits.  Material is read from our copy into the batch arena (one secret
 * buffer) and erased from the store; expires_ms = now + key TTL.  Free *out
 * with ks_reservation_free. */
ks_result ks_remote_enc(keystore *ks, const char *peer, const char *master,
                        const char *const *slaves, size_t nslaves,
                        uint32_t n, uint32_t size_bits, ks_reservation *out);

/* The peer acknowledged the reservation: drop its pending outbox entry.
 * KS_NOT_FOUND when no entry is pending (unknown, or already a void: the
 * bits are burned and the SAE must not get those keys). */
ks_result ks_remote_confirmed(keystore *ks, const uint8_t id[16]);

/* The peer acknowledged the reservation and the caller answers the master
 * at once: the pending entry is dropped by a later transaction (the next
 * ks_remote_enc, maintenance, ks_close), so the answer waits for no commit
 * of its own.  Should the process die first, the entry is still pending at
 * the next start and the peer is asked its fate (ks_outbox_recover): it
 * applied the reservation, so the slaves keep their keys.  KS_ERROR only
 * when out of memory (confirm with ks_remote_confirmed then). */
ks_result ks_remote_acked(keystore *ks, const uint8_t id[16]);

/* The peer did not acknowledge (timeout, error): the bits are burned (I5)
 * and the outbox entry becomes a "void" to send until acknowledged.  KS_OK
 * also when it is a void already; KS_NOT_FOUND when there is no entry. */
ks_result ks_remote_failed(keystore *ks, const uint8_t id[16]);

/* At start-up, before any new reservation: every entry still "pending" is
 * from before a crash (or a kill), and whether the peer applied it is
 * unknown here: it was in flight, or acknowledged and already answered.
 * They are listed for the peer service to ask the peer about; returns how
 * many (-1 on a database error). */
long ks_outbox_recover(keystore *ks);

/* The first entry of unknown fate still to settle (KS_NOT_FOUND when
 * none): its reservation ID and the peer's ID (malloc'd *peer). */
ks_result ks_outbox_next_unknown(keystore *ks, uint8_t id[16], char **peer);

/* The peer's word on an entry of unknown fate.  Applied: the entry is
 * dropped and the keys stand (the master may hold them).  Not applied (the
 * peer never had it, voided it, or forgot it long ago): the entry becomes a
 * void, as for ks_remote_failed; a void never takes keys a slave may still
 * fetch from a reservation the peer forgot, since the peer then burns only
 * unused bits.  The entry leaves the list either way. */
ks_result ks_outbox_settle(keystore *ks, const uint8_t id[16], bool applied);

/* Tests only: forget the acknowledged entries not yet dropped, as a crash
 * would. */
void ks_testing_forget_acked(keystore *ks);

/* One void to send (the oldest), or KS_NOT_FOUND when none.  Fills the
 * reservation ID, the peer's ID (malloc'd *peer) and its segments
 * (malloc'd *segs, *nsegs). */
ks_result ks_outbox_next_void(keystore *ks, uint8_t id[16], char **peer,
                              ks_segment **segs, size_t *nsegs);
/* The peer acknowledged the void: drop it (KS_OK also when already gone). */
ks_result ks_outbox_void_sent(keystore *ks, const uint8_t id[16]);

void ks_reservation_free(ks_reservation *r);

/* A key of a reservation received from the peer. */
typedef struct ks_remote_key {
    uint8_t id[16];
    uint32_t size_bits;
    const ks_segment *segs;
    size_t nsegs;
} ks_remote_key;

/* We are the slaves' KME and from_peer sent us this reservation: in one
 * transaction, check every segment lies in a confirmed block owned by
 * from_peer on our link to it (a block of another link is KS_REJECTED) and
 * overlaps no bits used before, nor another segment of this call, and that each key's segments add up to exactly
 * size_bits / 8 (else KS_REJECTED, nothing changed); copy the bits into keys
 * for master -> slaves (retrievable by ks_dec, expiring at expires_ms), mark
 * them used.  Idempotent: a reservation ID applied before with the same
 * content (from_peer, master, slaves, expiry, keys, segments) is KS_OK again
 * and nothing changes; with other content, or voided before, KS_CONFLICT; a key
 * ID still held from another reservation is KS_CONFLICT.  The record of a
 * reservation ID is kept 10 minutes; a replay after that is refused by its
 * used segments (KS_REJECTED), never applied twice. */
ks_result ks_reservation_apply(keystore *ks, const char *from_peer, const uint8_t id[16],
                               const char *master, const char *const *slaves, size_t nslaves,
                               int64_t expires_ms, const ks_remote_key *keys, size_t n);

/* One reservation of a batch, arguments as for ks_reservation_apply. */
typedef struct ks_reservation_in {
    uint8_t id[16];
    const char *from_peer;
    const char *master;
    const char *const *slaves;
    size_t nslaves;
    int64_t expires_ms;
    const ks_remote_key *keys;
    size_t n;
} ks_reservation_in;

/* n reservations in ONE call of the shared transaction, each under its own
 * savepoint: results[i] is what ks_reservation_apply would answer for
 * items[i] applied after items[0..i-1] (a refused item changes nothing,
 * the others stay).  Returns KS_OK when results[] hold the items' outcomes;
 * otherwise (database error, commit failed) nothing of the batch is kept
 * and every item that got that far reports the error. */
ks_result ks_reservation_apply_batch(keystore *ks, const ks_reservation_in *items, size_t n,
                                     ks_result *results);

/* What we know of a peer's reservation ID: applied, voided, or nothing
 * (never seen, or its record is older than the 10 minutes it is kept);
 * RELAYING while we relay it and our downstream's answer is still to come
 * (ks_relay_forward: in flight, or of unknown fate after a crash); a relay
 * the downstream applied is APPLIED. */
typedef enum ks_res_state {
    KS_RES_UNKNOWN = 0, KS_RES_APPLIED = 1, KS_RES_VOIDED = 2, KS_RES_RELAYING = 3
} ks_res_state;
ks_result ks_reservation_state(keystore *ks, const uint8_t id[16], ks_res_state *state);

/* A void from from_peer: mark the segments used (burned; bits used already,
 * parts beyond a block's end, and blocks unknown, not owned by from_peer or
 * of another link are skipped), delete the keys recorded for that
 * reservation that any slave still awaits, and remember the void so that
 * the reservation, should it still arrive, is refused (KS_CONFLICT; I5).
 * A reservation we relayed is voided downstream too (keystore_relay.c): a
 * pending outbox entry becomes a void, and when the downstream had applied
 * it a void without segments goes to it.  KS_CONFLICT (nothing changed)
 * when the ID was recorded from another peer.  nsegs may be 0.
 * Idempotent. */
ks_result ks_void_apply(keystore *ks, const char *from_peer, const uint8_t id[16],
                        const ks_segment *segs, size_t nsegs);

/* ===================================================================
 * Relaying a reservation through this KME (a trusted node; docs/network.md
 * §3; keystore_relay.c).
 *
 * The end-to-end key K is taken from the first link (the origin's
 * ks_remote_enc).  The first relay reads K from its copy of those segments
 * (a reservation); every further hop receives K sealed under fresh bits of
 * that hop's link: cipher = K XOR pad and a one-time Poly1305 tag keyed by
 * 32 more bytes of the link over aad || cipher (relay_seal.h).  Each call
 * is ONE transaction, all or nothing, durable before it returns.
 * =================================================================== */

typedef struct ks_relay_in {           /* what arrived from the upstream hop */
    uint8_t id[16];                    /* reservation ID, the same end to end */
    const char *from_peer;             /* the upstream neighbour */
    const char *master;
    const char *const *slaves;
    size_t nslaves;
    int64_t expires_ms;
    const ks_remote_key *keys;         /* key IDs + size_bits; for a first hop also
                                          the segments (K = those bits, peer-owned
                                          blocks of from_peer's link, as a
                                          reservation) */
    size_t n;
    bool sealed;                       /* hop >= 2: K arrives sealed (keys[].segs unused) */
    const ks_segment *pad;             /* sealed: pad (sum of sizes / 8 bytes) then the */
    size_t npad;                       /* 32-byte MAC key, in peer-owned blocks of
                                          from_peer's link, in this order */
    const uint8_t *cipher;             /* sealed: K XOR pad, sum of sizes / 8 bytes */
    size_t cipher_len;
    const uint8_t *tag;                /* sealed: 16 bytes */
    const uint8_t *aad;                /* bound by the tag (the caller's encoding) */
    size_t aad_len;
} ks_relay_in;

typedef struct ks_relay_out {          /* what to send downstream (ks_relay_out_free) */
    ks_segment *pad;                   /* own blocks of the link to next_peer: pad, */
    size_t npad;                       /* then the MAC key */
    uint8_t *cipher;                   /* NULL when there is nothing to send (a repeat
                                          of a relay the downstream applied) */
    size_t cipher_len;
    uint8_t tag[16];
} ks_relay_out;

/* Last hop: get K (from the segments, or sealed: the tag is checked before
 * anything is decrypted, else KS_TAMPERED and nothing changes), store it
 * for the slaves exactly as ks_reservation_apply does (keys.res_id = id,
 * the unfetched limit: KS_LIMIT, a reservation record with a digest of the
 * content for idempotency, segments marked used and zeroed).  A repeat with
 * the same content is KS_OK and changes nothing; other content, or an ID
 * voided before, KS_CONFLICT; segments not usable KS_REJECTED; KS_ERROR
 * for invalid arguments. */
ks_result ks_relay_deliver(keystore *ks, const ks_relay_in *in);

/* Intermediate hop: get K as above (its bits marked used), take sum/8 + 32
 * bytes from own blocks of the link to next_peer (KS_EMPTY when short:
 * nothing changes), seal K with them under aad_out (the caller's encoding
 * of the downstream message), record the reservation as relaying
 * (ks_reservation_state: KS_RES_RELAYING) with next_peer, and an outbox
 * entry {id, next_peer, pending, segments = the pad's} -- the outbox of
 * ks_remote_enc, so a crash leaves it pending for ks_outbox_recover and
 * ks_outbox_settle.  *out: what to send (free it with ks_relay_out_free).
 * A repeat with the same content: KS_OK with out->cipher NULL when the
 * downstream applied it already (answer 200), KS_CONFLICT while its fate
 * is still open or after a void (ks_reservation_state tells which). */
ks_result ks_relay_forward(keystore *ks, const ks_relay_in *in, const char *next_peer,
                           const uint8_t *aad_out, size_t aad_out_len, ks_relay_out *out);
void ks_relay_out_free(ks_relay_out *o);

/* The downstream answered.  applied = true (200): drop the pending entry
 * and mark the reservation applied; KS_NOT_FOUND when the entry is no
 * longer pending (an upstream void came first: answer the upstream with an
 * error; the void reaches the downstream by the outbox).  applied = false:
 * the entry becomes a void (bits burned, the replay sends it) and the
 * reservation is voided; KS_OK also when it was a void already. */
ks_result ks_relay_done(keystore *ks, const uint8_t id[16], bool applied);

#endif
