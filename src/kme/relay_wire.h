/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_wire.h - the wire format of trusted-node relay (docs/network.md
 * §3): POST /peer/v1/relay between directly linked KMEs, read strictly
 * over a validated document (peer_wire.h's pw_doc) and written by hand;
 * and the binary encoding of what a hop's one-time tag binds (the aad).
 *
 *   {"reservation_ID": UUID, "master_SAE_ID": s, "slave_SAE_IDs": [s, ...],
 *    "expires": unix_ms, "path": [kme_id, ...], "hop": i, "timeout_ms": n,
 *    "keys": [{"key_ID": UUID, "segments": [seg, ...]}, ...]}       hop 1
 *    "keys": [{"key_ID": UUID, "size": bits}, ...],
 *    "pad": [seg, ...], "cipher": base64, "tag": base64}            hop >= 2
 *
 * Hop 1 carries metadata only (the key is in the named segments of the
 * link both KMEs share); later hops carry the key under a one-time pad of
 * their link (cipher) and a one-time Poly1305 tag.  The reader checks the
 * shape (types, ranges, no repeats, hop within the path, the form that
 * fits the hop); who may send what is the server's business
 * (peer_relay.c), which knows the network map.
 */
#ifndef QC_KME_RELAY_WIRE_H
#define QC_KME_RELAY_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/keystore.h"
#include "kme/peer_wire.h"
#include "kme/relay_seal.h"

#define RELAY_MAX_PATH 17          /* KMEs on a path: at most 16 hops */
/* key bytes one relay request carries: its base64 cipher stays well
 * inside the peer listener's 1 MiB body limit */
#define PEER_MAX_RELAY_BYTES (512 * 1024)

typedef struct pw_relay {
    uint8_t id[16];
    const char *master;
    const char *slaves[64];
    size_t nslaves;
    int64_t expires;
    const char *path[RELAY_MAX_PATH];
    size_t npath;
    unsigned hop;                  /* index in path of the receiver, >= 1 */
    int64_t timeout_ms;            /* what is left of the origin's deadline */
    bool sealed;                   /* hop >= 2: pad, cipher and tag given */
    ks_remote_key *keys;           /* hop 1: with segments; sealed: size_bits only */
    size_t nkeys;
    ks_segment *segs;              /* hop 1: every key's segments */
    ks_segment *pad;               /* sealed: pad then MAC key, in the hop's link */
    size_t npad;
    uint8_t *cipher;               /* sealed: sum of key sizes / 8 bytes */
    size_t cipher_len;
    uint8_t tag[RELAY_TAG_BYTES];
} pw_relay;

/* Read the whole body of a relay request (strings in d's arena). */
int pw_read_relay(pw_doc *d, pw_relay *r, kme_err *e);
void pw_relay_free(pw_relay *r);

/* Hop 1, from the origin: the reservation made by ks_remote_enc (key IDs
 * and segments only; its key bytes are not read). */
char *pw_relay_first_text(const ks_reservation *r, const char *master,
                          const char *const *slaves, size_t nslaves,
                          const char *const *path, size_t npath, int64_t timeout_ms);

/* The next hop of an intermediate KME: in's metadata, hop + 1, the pad's
 * segments, cipher and tag of the downstream link. */
char *pw_relay_sealed_text(const pw_relay *in, int64_t timeout_ms, const ks_segment *pad,
                           size_t npad, const uint8_t *cipher, size_t cipher_len,
                           const uint8_t tag[RELAY_TAG_BYTES]);

/* What every hop's tag binds, the same at every hop: a version label, the
 * reservation ID, expiry, master, slaves, path and every key's ID and size,
 * each length-prefixed (malloc'd; NULL when out of memory). */
uint8_t *relay_aad(const pw_relay *r, size_t *len);

#endif
