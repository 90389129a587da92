/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_seal.h - one hop of a relayed key under a one-time pad and a
 * one-time MAC (docs/network.md §3): the Wegman-Carter construction of
 * QuMail Level 1, keyed by fresh bits of the hop's QKD link.  Pure (no
 * SQLite, no I/O); keystore_relay.c calls it with the pad and MAC key it
 * took from the link's blocks.
 *
 *   cipher = k XOR pad                               (n bytes)
 *   tag    = Poly1305(mac_key, BE64(aad_len) || aad || cipher)
 *
 * The 8-byte big-endian length of aad makes the split between aad and
 * cipher unambiguous.  Each pad and MAC key is used once (the store marks
 * the bits used in the same transaction).
 */
#ifndef QC_KME_RELAY_SEAL_H
#define QC_KME_RELAY_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define RELAY_MAC_KEY_BYTES 32
#define RELAY_TAG_BYTES 16

/* Seal k (n bytes) with pad (n bytes) into cipher (n bytes, may not
 * overlap k) and tag. */
void relay_seal(const uint8_t *pad, const uint8_t mac_key[RELAY_MAC_KEY_BYTES],
                const uint8_t *aad, size_t aad_len, const uint8_t *k, size_t n,
                uint8_t *cipher, uint8_t tag[RELAY_TAG_BYTES]);

/* Check tag over aad and cipher in constant time, then (only then) write
 * k = cipher XOR pad.  0, or -1 when the tag does not verify (k untouched). */
int relay_open(const uint8_t *pad, const uint8_t mac_key[RELAY_MAC_KEY_BYTES],
               const uint8_t *aad, size_t aad_len, const uint8_t *cipher, size_t n,
               const uint8_t tag[RELAY_TAG_BYTES], uint8_t *k);

#endif
