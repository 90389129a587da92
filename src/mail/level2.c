/* SPDX-License-Identifier: Apache-2.0 */
/*
 * level2.c - HKDF-SHA256 and AES-256-GCM through GnuTLS (level2.h,
 * docs/qumail-format.md §4.2).
 *
 * GnuTLS rather than libsodium: libsodium 1.0.18 has no HKDF and its
 * AES-GCM requires AES-NI (DESIGN.md §6).  The in-place iovec calls
 * (gnutls_aead_cipher_encryptv2/decryptv2) let the ciphertext and its tag
 * live in separate places of the envelope without an extra buffer.  The
 * derived key and the HKDF pseudo-random key live in a secret_buf and are
 * wiped when done.
 */
#include "mail/level2.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "common/secret.h"

#define PRK_LEN 32

/* The AES-256-GCM key of one message from its QKD key and salt, opened as
 * a GnuTLS AEAD handle.  Everything derived is wiped before returning. */
static qm_err open_cipher(const qm_key_bytes *qkd_key, const uint8_t salt[QM_SALT_LEN],
                          gnutls_aead_cipher_hd_t *hd)
{
    secret_buf sb;
    if (secret_alloc(&sb, PRK_LEN + QM_L2_KEY_LEN) != 0)
        return QM_E_NOMEM;
    uint8_t *prk = sb.data, *aes_key = sb.data + PRK_LEN;
    gnutls_datum_t ikm = { (unsigned char *)qkd_key->data, (unsigned)qkd_key->len };
    gnutls_datum_t salt_d = { (unsigned char *)salt, QM_SALT_LEN };
    gnutls_datum_t prk_d = { prk, PRK_LEN };
    gnutls_datum_t info = { (unsigned char *)QM_LEVEL2_INFO, sizeof QM_LEVEL2_INFO - 1 };
    gnutls_datum_t key_d = { aes_key, QM_L2_KEY_LEN };

    qm_err rc = QM_E_CRYPTO;
    if (gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt_d, prk) == 0
        && gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &prk_d, &info, aes_key, QM_L2_KEY_LEN) == 0
        && gnutls_aead_cipher_init(hd, GNUTLS_CIPHER_AES_256_GCM, &key_d) == 0)
        rc = QM_OK;
    secret_free(&sb);
    return rc;
}

static qm_err key_matches(const qm_key_bytes *k)
{
    return k != NULL && k->data != NULL && k->len == QM_L2_KEY_LEN ? QM_OK : QM_E_KEY_SHORT;
}

/* The one recipient of group g (the envelope check guarantees one). */
static size_t recipient_of(const qm_envelope *e, size_t g)
{
    for (size_t r = 0; r < e->n_recipients; r++)
        if (e->recipients[r].group == g)
            return r;
    return 0;
}

/* Encrypt one group's copy of the plaintext in place; tag out. */
static qm_err seal_group(const qm_envelope *e, size_t g, const qm_key_bytes *key,
                         const uint8_t *header, size_t header_len, uint8_t *ct, uint8_t *tag)
{
    gnutls_aead_cipher_hd_t hd;
    qm_err rc = open_cipher(key, e->groups[g].salt, &hd);
    if (rc != QM_OK)
        return rc;
    giovec_t aad = { (void *)header, header_len };
    giovec_t data = { ct, (size_t)e->msg_len };
    size_t tag_len = QM_TAG_LEN;
    if (gnutls_aead_cipher_encryptv2(hd, e->groups[g].nonce, QM_NONCE_LEN, &aad, 1,
                                     &data, e->msg_len > 0 ? 1 : 0, tag, &tag_len) != 0
        || tag_len != QM_TAG_LEN)
        rc = QM_E_CRYPTO;
    gnutls_aead_cipher_deinit(hd);
    return rc;
}

static qm_err seal_check(const qm_envelope *e, const uint8_t *plaintext,
                         const qm_key_bytes *keys, uint8_t *out, size_t *out_len)
{
    if (e == NULL || out == NULL || out_len == NULL || keys == NULL
        || e->level != QM_LEVEL_2 || (plaintext == NULL && e->msg_len > 0))
        return QM_E_USAGE;
    for (size_t g = 0; g < e->n_groups; g++)
        if (key_matches(&keys[g]) != QM_OK)
            return QM_E_KEY_SHORT;
    return QM_OK;
}

qm_err qm_level2_seal(qm_envelope *e, const uint8_t *plaintext, const qm_key_bytes *keys,
                      uint8_t *out, size_t cap, size_t *out_len)
{
    size_t header_len, total;
    qm_err rc;

    if ((rc = seal_check(e, plaintext, keys, out, out_len)) != QM_OK)
        return rc;
    for (size_t g = 0; g < e->n_groups; g++) {
        secret_random(e->groups[g].salt, QM_SALT_LEN);
        secret_random(e->groups[g].nonce, QM_NONCE_LEN);
    }
    if ((rc = qm_header_len(e, &header_len)) != QM_OK
        || (rc = qm_envelope_total_len(e, header_len, &total)) != QM_OK)
        return rc;
    if (total > cap)
        return QM_E_USAGE;
    if ((rc = qm_header_write(e, out, cap, &header_len)) != QM_OK)
        return rc;
    uint8_t *tags = out + header_len + (size_t)e->n_groups * e->msg_len;
    for (size_t g = 0; g < e->n_groups && rc == QM_OK; g++) {
        uint8_t *ct = out + header_len + g * e->msg_len;
        if (e->msg_len > 0)
            memcpy(ct, plaintext, e->msg_len);
        rc = seal_group(e, g, &keys[g], out, header_len, ct,
                        tags + recipient_of(e, g) * QM_TAG_LEN);
    }
    if (rc != QM_OK)
        secret_wipe(out, total);  /* may hold plaintext copies */
    else
        *out_len = total;
    return rc;
}

qm_err qm_level2_open(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                      const qm_key_bytes *key, uint8_t *out, size_t cap)
{
    if (e == NULL || v == NULL || v->header == NULL || e->level != QM_LEVEL_2
        || (out == NULL && e->msg_len > 0))
        return QM_E_USAGE;
    if (r >= e->n_recipients)
        return QM_E_NOT_RECIPIENT;
    if (e->msg_len > cap)
        return QM_E_USAGE;
    if (key == NULL)
        return QM_E_USAGE;
    if (key_matches(key) != QM_OK)  /* the envelope named a 32-byte key */
        return QM_E_TAMPERED;

    size_t g = e->recipients[r].group;
    gnutls_aead_cipher_hd_t hd;
    qm_err rc = open_cipher(key, e->groups[g].salt, &hd);
    if (rc != QM_OK)
        return rc;
    if (e->msg_len > 0)
        memcpy(out, v->ciphertext[g], e->msg_len);
    giovec_t aad = { (void *)v->header, v->header_len };
    giovec_t data = { out, (size_t)e->msg_len };
    int grc = gnutls_aead_cipher_decryptv2(hd, e->groups[g].nonce, QM_NONCE_LEN, &aad, 1,
                                           &data, e->msg_len > 0 ? 1 : 0,
                                           (void *)(v->tags + r * QM_TAG_LEN), QM_TAG_LEN);
    gnutls_aead_cipher_deinit(hd);
    if (grc != 0) {
        secret_wipe(out, e->msg_len);
        return grc == GNUTLS_E_DECRYPTION_FAILED ? QM_E_TAMPERED : QM_E_CRYPTO;
    }
    return QM_OK;
}
