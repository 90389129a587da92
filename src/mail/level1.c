/* SPDX-License-Identifier: Apache-2.0 */
/*
 * level1.c - one-time pad and one-time Poly1305 (level1.h,
 * docs/qumail-format.md §4.1).
 *
 * Speed matters because a Level 1 message is as long as its pad: the XOR
 * runs on 16-byte vectors, four at a time, and sealing works in chunks that
 * stay in the L1/L2 cache, so each chunk is XORed and then fed to the MAC
 * of every recipient of the group while it is still hot.  Opening cannot
 * fuse the two passes: the whole tag is verified before any plaintext is
 * written.  Poly1305 states hold key material and are wiped after use.
 */
#include "mail/level1.h"

#include <sodium.h>
#include <string.h>

#define SEAL_CHUNK (16 * 1024)

typedef uint64_t xor_vec __attribute__((vector_size(16)));

void qm_xor(uint8_t *out, const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;

    /* memcpy keeps the loads and stores alignment-free; they compile to
     * plain vector moves */
    for (; i + 64 <= n; i += 64) {
        xor_vec x[4], y[4];
        memcpy(x, a + i, 64);
        memcpy(y, b + i, 64);
        x[0] ^= y[0];
        x[1] ^= y[1];
        x[2] ^= y[2];
        x[3] ^= y[3];
        memcpy(out + i, x, 64);
    }
    for (; i < n; i++)
        out[i] = a[i] ^ b[i];
}

/* The key bytes given for a list of key references match them. */
static qm_err keys_match(const qm_key_ref *refs, const qm_key_bytes *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].data == NULL || keys[i].len != refs[i].len)
            return QM_E_KEY_SHORT;
    return QM_OK;
}

static qm_err mac_key_matches(const qm_key_bytes *k)
{
    return k != NULL && k->data != NULL && k->len == QM_MAC_KEY_LEN ? QM_OK : QM_E_KEY_SHORT;
}

/* Apply the group's pad (its keys in order, the first msg_len bytes of
 * their concatenation) to in, writing out.  step, if given, is called on
 * each finished piece of out, so the MAC sees it while it is in cache. */
typedef void (*piece_fn)(void *ctx, const uint8_t *p, size_t n);

static void apply_pad(const qm_group *g, const qm_key_bytes *pad, uint64_t msg_len,
                      const uint8_t *in, uint8_t *out, piece_fn step, void *ctx)
{
    size_t pos = 0;

    for (uint32_t k = 0; k < g->n_pad_keys && pos < msg_len; k++) {
        size_t take = pad[k].len < msg_len - pos ? pad[k].len : (size_t)(msg_len - pos);
        for (size_t off = 0; off < take; off += SEAL_CHUNK) {
            size_t n = take - off < SEAL_CHUNK ? take - off : SEAL_CHUNK;
            qm_xor(out + pos + off, in + pos + off, pad[k].data + off, n);
            if (step != NULL)
                step(ctx, out + pos + off, n);
        }
        pos += take;
    }
}

/* ---- sealing -------------------------------------------------------------- */

typedef struct group_macs {
    crypto_onetimeauth_poly1305_state st[QM_MAX_RECIPIENTS];
    size_t who[QM_MAX_RECIPIENTS];   /* recipient index of each state */
    size_t n;
} group_macs;

static void macs_update(void *ctx, const uint8_t *p, size_t n)
{
    group_macs *m = ctx;
    for (size_t i = 0; i < m->n; i++)
        crypto_onetimeauth_poly1305_update(&m->st[i], p, n);
}

static void macs_start(group_macs *m, const qm_envelope *e, size_t g,
                       const qm_key_bytes *mac_keys, const uint8_t *header, size_t header_len)
{
    m->n = 0;
    for (size_t r = 0; r < e->n_recipients; r++) {
        if (e->recipients[r].group != g)
            continue;
        crypto_onetimeauth_poly1305_init(&m->st[m->n], mac_keys[r].data);
        crypto_onetimeauth_poly1305_update(&m->st[m->n], header, header_len);
        m->who[m->n++] = r;
    }
}

static void macs_finish(group_macs *m, uint8_t *tags)
{
    for (size_t i = 0; i < m->n; i++)
        crypto_onetimeauth_poly1305_final(&m->st[i], tags + m->who[i] * QM_TAG_LEN);
    sodium_memzero(m, sizeof *m);
}

static qm_err seal_keys_match(const qm_envelope *e, const qm_key_bytes *const *pads,
                              const qm_key_bytes *mac_keys)
{
    if (pads == NULL || mac_keys == NULL)
        return QM_E_USAGE;
    for (size_t g = 0; g < e->n_groups; g++) {
        if (e->groups[g].n_pad_keys > 0 && pads[g] == NULL)
            return QM_E_KEY_SHORT;
        qm_err rc = keys_match(e->groups[g].pad_keys, pads[g], e->groups[g].n_pad_keys);
        if (rc != QM_OK)
            return rc;
    }
    for (size_t r = 0; r < e->n_recipients; r++)
        if (mac_key_matches(&mac_keys[r]) != QM_OK)
            return QM_E_KEY_SHORT;
    return QM_OK;
}

qm_err qm_level1_seal(const qm_envelope *e, const uint8_t *plaintext,
                      const qm_key_bytes *const *pads, const qm_key_bytes *mac_keys,
                      uint8_t *out, size_t cap, size_t *out_len)
{
    size_t header_len, total;
    qm_err rc;

    if (e == NULL || out == NULL || out_len == NULL || e->level != QM_LEVEL_1
        || (plaintext == NULL && e->msg_len > 0))
        return QM_E_USAGE;
    if ((rc = qm_header_len(e, &header_len)) != QM_OK
        || (rc = qm_envelope_total_len(e, header_len, &total)) != QM_OK)
        return rc;
    if (total > cap)
        return QM_E_USAGE;
    if (sodium_init() < 0)  /* picks the fastest Poly1305; idempotent */
        return QM_E_CRYPTO;
    if ((rc = seal_keys_match(e, pads, mac_keys)) != QM_OK
        || (rc = qm_header_write(e, out, cap, &header_len)) != QM_OK)
        return rc;

    uint8_t *tags = out + header_len + (size_t)e->n_groups * e->msg_len;
    group_macs macs;
    for (size_t g = 0; g < e->n_groups; g++) {
        uint8_t *ct = out + header_len + g * e->msg_len;
        macs_start(&macs, e, g, mac_keys, out, header_len);
        apply_pad(&e->groups[g], pads[g], e->msg_len, plaintext, ct, macs_update, &macs);
        macs_finish(&macs, tags);
    }
    *out_len = total;
    return QM_OK;
}

/* ---- opening ---------------------------------------------------------------- */

/* Constant-time check of recipient r's tag over header || its ciphertext. */
static qm_err verify_tag(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                         const qm_key_bytes *mac_key)
{
    crypto_onetimeauth_poly1305_state st;
    uint8_t tag[QM_TAG_LEN];

    crypto_onetimeauth_poly1305_init(&st, mac_key->data);
    crypto_onetimeauth_poly1305_update(&st, v->header, v->header_len);
    crypto_onetimeauth_poly1305_update(&st, v->ciphertext[e->recipients[r].group],
                                       e->msg_len);
    crypto_onetimeauth_poly1305_final(&st, tag);
    int bad = crypto_verify_16(tag, v->tags + r * QM_TAG_LEN);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(tag, sizeof tag);
    return bad == 0 ? QM_OK : QM_E_TAMPERED;
}

qm_err qm_level1_open(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                      const qm_key_bytes *pad, const qm_key_bytes *mac_key,
                      uint8_t *out, size_t cap)
{
    if (e == NULL || v == NULL || v->header == NULL || e->level != QM_LEVEL_1
        || (out == NULL && e->msg_len > 0))
        return QM_E_USAGE;
    if (r >= e->n_recipients)
        return QM_E_NOT_RECIPIENT;
    if (e->msg_len > cap)
        return QM_E_USAGE;
    const qm_group *g = &e->groups[e->recipients[r].group];
    if ((g->n_pad_keys > 0 && pad == NULL) || mac_key == NULL)
        return QM_E_USAGE;
    /* The KME returned these keys for the envelope's key IDs: a length
     * other than the envelope's means the envelope was altered. */
    if (mac_key_matches(mac_key) != QM_OK
        || keys_match(g->pad_keys, pad, g->n_pad_keys) != QM_OK)
        return QM_E_TAMPERED;
    if (sodium_init() < 0)
        return QM_E_CRYPTO;
    qm_err rc = verify_tag(e, v, r, mac_key);
    if (rc != QM_OK)
        return rc;
    apply_pad(g, pad, e->msg_len, v->ciphertext[e->recipients[r].group], out, NULL, NULL);
    return QM_OK;
}
