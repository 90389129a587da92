/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keys.h - key material as the message levels take it: borrowed views of
 * key bytes, one per key the envelope names, in envelope order.
 *
 * The bytes stay where the caller keeps them (libqkd014 returns keys in
 * locked memory; tests keep them in secret_buf), so that the levels never
 * copy a whole pad: they read each key in place.  A view's length must equal
 * the key_len the envelope gives for that key, else QM_E_KEY_SHORT.
 */
#ifndef QM_KEYS_H
#define QM_KEYS_H

#include <stddef.h>
#include <stdint.h>

typedef struct qm_key_bytes {
    const uint8_t *data;
    size_t len;
} qm_key_bytes;

#endif
