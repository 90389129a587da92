/* SPDX-License-Identifier: Apache-2.0 */
/*
 * level2.h - QuMail Level 2: one 256-bit QKD key per recipient through
 * HKDF-SHA256 into AES-256-GCM (docs/qumail-format.md §4.2).
 *
 * Each recipient has its own group, its own key, salt and nonce; the
 * envelope header is the associated data, so the GCM tag authenticates
 * header || ciphertext exactly as the Level 1 MAC does.  Sealing draws the
 * salts and nonces (OS CSPRNG) and stores them in the envelope.  Opening
 * decrypts into the caller's buffer and, if the tag does not verify, wipes
 * that buffer before returning QM_E_TAMPERED: no plaintext leaves the call.
 */
#ifndef QM_LEVEL2_H
#define QM_LEVEL2_H

#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/keys.h"

/* The HKDF info string (without NUL). */
#define QM_LEVEL2_INFO "qumail v1 level 2 AES-256-GCM"

/* Seal plaintext (e->msg_len bytes): keys[g] is group g's 32-byte QKD key.
 * Fills every group's salt and nonce in e, then writes the whole envelope
 * into out (capacity cap), *out_len its length. */
qm_err qm_level2_seal(qm_envelope *e, const uint8_t *plaintext, const qm_key_bytes *keys,
                      uint8_t *out, size_t cap, size_t *out_len);

/* Open a parsed envelope as recipient r with its 32-byte QKD key; writes
 * e->msg_len bytes to out (capacity cap), or zeroes them on QM_E_TAMPERED
 * (also the answer to a key that is not 32 bytes, as at level 1). */
qm_err qm_level2_open(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                      const qm_key_bytes *key, uint8_t *out, size_t cap);

#endif
