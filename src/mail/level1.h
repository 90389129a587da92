/* SPDX-License-Identifier: Apache-2.0 */
/*
 * level1.h - QuMail Level 1: one-time pad plus one-time Poly1305
 * (docs/qumail-format.md §4.1), information-theoretically secure given
 * keys that are uniformly random and used once.
 *
 * The caller builds the envelope (envelope.h) naming the keys it fetched,
 * and hands the key bytes in the same order.  Sealing writes the whole
 * envelope: header, one ciphertext per group, one tag per recipient.
 * Opening, for one recipient, verifies that recipient's tag over
 * header || ciphertext in constant time before it writes a single byte of
 * plaintext: on QM_E_TAMPERED the output buffer is untouched.
 */
#ifndef QM_LEVEL1_H
#define QM_LEVEL1_H

#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/keys.h"

/* Seal plaintext (e->msg_len bytes) for every recipient of e.
 * pads[g] holds e->groups[g].n_pad_keys keys in pad order; mac_keys[r] is
 * recipient r's 32-byte MAC key.  out (capacity cap) receives the whole
 * envelope, *out_len its length (qm_envelope_total_len). */
qm_err qm_level1_seal(const qm_envelope *e, const uint8_t *plaintext,
                      const qm_key_bytes *const *pads, const qm_key_bytes *mac_keys,
                      uint8_t *out, size_t cap, size_t *out_len);

/* Open a parsed envelope (qm_envelope_parse) as recipient r: pad holds its
 * group's pad keys in envelope order, mac_key its own MAC key.  Writes
 * e->msg_len bytes of plaintext to out (capacity cap) only after the tag
 * verified.  A key whose length differs from the envelope's key_len is
 * QM_E_TAMPERED: the KME returned it for the envelope's key ID, so the
 * envelope lies. */
qm_err qm_level1_open(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                      const qm_key_bytes *pad, const qm_key_bytes *mac_key,
                      uint8_t *out, size_t cap);

/* out[i] = a[i] ^ b[i] for n bytes (out may equal a); exported for tests. */
void qm_xor(uint8_t *out, const uint8_t *a, const uint8_t *b, size_t n);

#endif
