/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_levels.c - QuMail Level 1 (one-time pad + Poly1305) and
 * Level 2 (HKDF-SHA256 + AES-256-GCM), src/mail/level1.c and level2.c,
 * against docs/qumail-format.md §3-4.
 *
 * A small fake KME (kme_*) stores the keys the sender "fetched" by key ID
 * and hands them to the reader by the IDs the received envelope names, as
 * dec_keys would: so a tampered key ID or length reaches the cipher the way
 * it would in real life.  Unknown IDs get fresh random bytes (an attacker
 * who names another existing key).  Checked: round trips from 0 bytes to
 * 5 MiB; the constructions recomputed independently from the format page;
 * bit flips in header, ciphertext and tags; swapped and repeated key IDs;
 * wrong keys; recipients forging for one another; fresh salts and nonces.
 * After every failure the output buffer must be untouched (level 1) or
 * untouched/zero (level 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>

#include "common/secret.h"
#include "mail/envelope.h"
#include "mail/level1.h"
#include "mail/level2.h"

#define MIB (1024u * 1024u)
#define KEY_BYTES 8192u   /* the testbed's max_key_size, 65536 bits */
#define SENTINEL 0xEE

/* ---- a fake KME: key ID -> bytes ----------------------------------------- */

typedef struct stored_key { uint8_t id[16]; uint8_t *bytes; size_t len; } stored_key;

static stored_key *kme;
static size_t kme_n, kme_cap;
static uint8_t *unknown[64];   /* random keys handed out for unknown IDs */
static size_t n_unknown;

static void forget_unknown(void)
{
    for (size_t i = 0; i < n_unknown; i++)
        free(unknown[i]);
    n_unknown = 0;
}

static void kme_reset(void)
{
    for (size_t i = 0; i < kme_n; i++)
        free(kme[i].bytes);
    forget_unknown();
    free(kme);
    kme = NULL;
    kme_n = kme_cap = n_unknown = 0;
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    randombytes_buf(p, n);
    return p;
}

/* enc_keys: a fresh key of len bytes with a random ID. */
static qm_key_ref kme_new_key(size_t len)
{
    if (kme_n == kme_cap) {
        kme_cap = kme_cap ? 2 * kme_cap : 64;
        kme = realloc(kme, kme_cap * sizeof *kme);
        assert_non_null(kme);
    }
    stored_key *k = &kme[kme_n++];
    randombytes_buf(k->id, 16);
    k->bytes = random_bytes(len);
    k->len = len;
    qm_key_ref r;
    memcpy(r.id, k->id, 16);
    r.len = (uint32_t)len;
    return r;
}

/* dec_keys: the key stored under ref's ID (with its true length), or, for
 * an ID the KME never issued, random bytes of the claimed length. */
static qm_key_bytes kme_get(const qm_key_ref *ref)
{
    for (size_t i = 0; i < kme_n; i++)
        if (memcmp(kme[i].id, ref->id, 16) == 0)
            return (qm_key_bytes){ kme[i].bytes, kme[i].len };
    assert_true(n_unknown < 64);
    size_t n = ref->len < 4 * MIB ? ref->len : 4 * MIB;
    unknown[n_unknown] = random_bytes(n);
    return (qm_key_bytes){ unknown[n_unknown++], n };
}

/* Pad keys for msg_len bytes: KEY_BYTES each, the last one what remains
 * (8 bytes at least, the KME's min_key_size, so tiny messages leave a tail). */
static qm_key_ref *kme_pad(size_t msg_len, uint32_t *n)
{
    *n = (uint32_t)((msg_len + KEY_BYTES - 1) / KEY_BYTES);
    qm_key_ref *refs = calloc(*n ? *n : 1, sizeof *refs);
    assert_non_null(refs);
    for (uint32_t i = 0; i < *n; i++) {
        size_t left = msg_len - (size_t)i * KEY_BYTES;
        size_t len = left < KEY_BYTES ? left : KEY_BYTES;
        refs[i] = kme_new_key(len < 8 ? 8 : len);
    }
    return refs;
}

/* ---- sealed messages --------------------------------------------------------- */

typedef struct sealed {
    uint8_t *bytes;
    size_t len;
    uint8_t *plain;
    size_t plain_len;
} sealed;

static void sealed_free(sealed *s)
{
    free(s->bytes);
    free(s->plain);
    memset(s, 0, sizeof *s);
}

static void alloc_out(const qm_envelope *e, sealed *s)
{
    size_t hlen;
    assert_int_equal(qm_header_len(e, &hlen), QM_OK);
    assert_int_equal(qm_envelope_total_len(e, hlen, &s->len), QM_OK);
    s->bytes = malloc(s->len);
    assert_non_null(s->bytes);
}

/* Level 1 for the given recipients; groups[r] = group of recipient r
 * (groups numbered 0.. in order of first use). */
static sealed seal_l1(size_t msg_len, size_t n_rcpt, const char *const *rcpt,
                      const uint8_t *groups)
{
    qm_envelope e;
    sealed s = { .plain = random_bytes(msg_len), .plain_len = msg_len };
    qm_key_bytes *pads[QM_MAX_GROUPS] = { 0 };
    qm_key_bytes macs[QM_MAX_RECIPIENTS];
    size_t n_groups = 0;

    assert_int_equal(qm_envelope_init(&e, 1, "SAE_A1", msg_len), QM_OK);
    for (size_t r = 0; r < n_rcpt; r++)
        if (groups[r] + 1u > n_groups)
            n_groups = groups[r] + 1u;
    for (size_t g = 0; g < n_groups; g++) {
        uint32_t n;
        qm_key_ref *refs = kme_pad(msg_len, &n);
        assert_int_equal(qm_envelope_add_group(&e, refs, n, NULL, NULL), QM_OK);
        pads[g] = calloc(n ? n : 1, sizeof **pads);
        for (uint32_t i = 0; i < n; i++)
            pads[g][i] = kme_get(&refs[i]);
        free(refs);
    }
    for (size_t r = 0; r < n_rcpt; r++) {
        qm_key_ref mac = kme_new_key(32);
        assert_int_equal(qm_envelope_add_recipient(&e, rcpt[r], groups[r], &mac), QM_OK);
        macs[r] = kme_get(&mac);
    }
    alloc_out(&e, &s);
    size_t written;
    assert_int_equal(qm_level1_seal(&e, s.plain, (const qm_key_bytes *const *)pads, macs,
                                    s.bytes, s.len, &written), QM_OK);
    assert_int_equal(written, s.len);
    for (size_t g = 0; g < n_groups; g++)
        free(pads[g]);
    qm_envelope_free(&e);
    return s;
}

/* Level 2: one group and one key per recipient. */
static sealed seal_l2(size_t msg_len, size_t n_rcpt, const char *const *rcpt)
{
    qm_envelope e;
    sealed s = { .plain = random_bytes(msg_len), .plain_len = msg_len };
    qm_key_bytes keys[QM_MAX_GROUPS];

    assert_int_equal(qm_envelope_init(&e, 2, "SAE_A1", msg_len), QM_OK);
    for (size_t r = 0; r < n_rcpt; r++) {
        qm_key_ref k = kme_new_key(32);
        assert_int_equal(qm_envelope_add_group(&e, NULL, 0, &k, NULL), QM_OK);
        assert_int_equal(qm_envelope_add_recipient(&e, rcpt[r], (uint8_t)r, NULL), QM_OK);
        keys[r] = kme_get(&k);
    }
    alloc_out(&e, &s);
    size_t written;
    assert_int_equal(qm_level2_seal(&e, s.plain, keys, s.bytes, s.len, &written), QM_OK);
    assert_int_equal(written, s.len);
    qm_envelope_free(&e);
    return s;
}

/* The reader's side: parse, fetch recipient r's keys from the fake KME by
 * the envelope's IDs, open into out (capacity cap). */
static qm_err open_as(const uint8_t *bytes, size_t len, size_t r, uint8_t *out, size_t cap)
{
    qm_envelope e;
    qm_envelope_view v;
    qm_err rc = qm_envelope_parse(bytes, len, &e, &v);
    if (rc != QM_OK)
        return rc;
    if (r >= e.n_recipients) {
        qm_envelope_free(&e);
        return QM_E_NOT_RECIPIENT;
    }
    if (e.level == QM_LEVEL_1) {
        const qm_group *g = &e.groups[e.recipients[r].group];
        qm_key_bytes *pad = calloc(g->n_pad_keys + 1u, sizeof *pad);
        for (uint32_t i = 0; i < g->n_pad_keys; i++)
            pad[i] = kme_get(&g->pad_keys[i]);
        qm_key_bytes mac = kme_get(&e.recipients[r].mac_key);
        rc = qm_level1_open(&e, &v, r, pad, &mac, out, cap);
        free(pad);
    } else if (e.level == QM_LEVEL_2) {
        qm_key_bytes key = kme_get(&e.groups[e.recipients[r].group].key);
        rc = qm_level2_open(&e, &v, r, &key, out, cap);
    } else {
        rc = QM_E_LEVEL;
    }
    qm_envelope_free(&e);
    forget_unknown();
    return rc;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void expect_open(const sealed *s, size_t r)
{
    uint8_t *out = malloc(s->plain_len + 1);
    assert_int_equal(open_as(s->bytes, s->len, r, out, s->plain_len), QM_OK);
    if (s->plain_len > 0)
        assert_memory_equal(out, s->plain, s->plain_len);
    free(out);
}

/* Opening fails (parse or verification) and the output shows no plaintext. */
static void expect_refused(const uint8_t *bytes, size_t len, size_t r, size_t plain_len)
{
    uint8_t *out = malloc(plain_len + 1);
    memset(out, SENTINEL, plain_len + 1);
    qm_err rc = open_as(bytes, len, r, out, plain_len);
    if (rc != QM_E_MALFORMED && rc != QM_E_VERSION && rc != QM_E_LEVEL
        && rc != QM_E_TOO_BIG && rc != QM_E_TAMPERED && rc != QM_E_NOT_RECIPIENT)
        fail_msg("expected a refusal, got %d (%s)", rc, qm_strerror(rc));
    assert_true(all_bytes(out, plain_len + 1, SENTINEL)
                || (all_bytes(out, plain_len, 0) && out[plain_len] == SENTINEL));
    free(out);
}

static const char *const one[] = { "SAE_B1" };
static const uint8_t group0[] = { 0, 0, 0, 0 };
static const size_t sizes[] = { 0, 1, 15, 16, 17, 1 * MIB, 5 * MIB };

/* ---- round trips ------------------------------------------------------------- */

static void test_level1_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sealed s = seal_l1(sizes[i], 1, one, group0);
        expect_open(&s, 0);
        sealed_free(&s);
        kme_reset();
    }
}

static void test_level2_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sealed s = seal_l2(sizes[i], 1, one);
        expect_open(&s, 0);
        sealed_free(&s);
        kme_reset();
    }
}

/* ---- the constructions, recomputed from the format page ------------------ */

static size_t header_len_of(const sealed *s)
{
    qm_envelope e;
    qm_envelope_view v;
    assert_int_equal(qm_envelope_parse(s->bytes, s->len, &e, &v), QM_OK);
    qm_envelope_free(&e);
    return v.header_len;
}

/* ciphertext = plaintext XOR first L bytes of the pad keys; tag =
 * Poly1305(MAC key, header || ciphertext), one-shot. */
static void test_level1_construction(void **state)
{
    (void)state;
    size_t L = KEY_BYTES + 100;
    sealed s = seal_l1(L, 1, one, group0);
    size_t h = header_len_of(&s);
    /* keys in issue order: pad 1, pad 2, MAC */
    for (size_t i = 0; i < L; i++) {
        uint8_t pad = i < KEY_BYTES ? kme[0].bytes[i] : kme[1].bytes[i - KEY_BYTES];
        assert_int_equal(s.bytes[h + i], s.plain[i] ^ pad);
    }
    uint8_t tag[16];
    crypto_onetimeauth_poly1305(tag, s.bytes, h + L, kme[2].bytes);
    assert_memory_equal(tag, s.bytes + h + L, 16);
    sealed_free(&s);
    kme_reset();
}

/* HKDF per RFC 5869 by hand (HMAC-SHA256), AES-256-GCM with the header as
 * associated data, by GnuTLS's one-shot call. */
static void test_level2_construction(void **state)
{
    (void)state;
    size_t L = 1000;
    sealed s = seal_l2(L, 1, one);
    qm_envelope e;
    qm_envelope_view v;
    assert_int_equal(qm_envelope_parse(s.bytes, s.len, &e, &v), QM_OK);

    uint8_t prk[32], okm[32], block[64];
    const char info[] = "qumail v1 level 2 AES-256-GCM";
    assert_int_equal(strlen(info), 29);
    assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, e.groups[0].salt, 32,
                                      kme[0].bytes, 32, prk), 0);
    memcpy(block, info, 29);
    block[29] = 1;
    assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, prk, 32, block, 30, okm), 0);

    gnutls_aead_cipher_hd_t hd;
    gnutls_datum_t key = { okm, 32 };
    assert_int_equal(gnutls_aead_cipher_init(&hd, GNUTLS_CIPHER_AES_256_GCM, &key), 0);
    uint8_t *ct = malloc(L + 16);
    size_t ct_len = L + 16;
    assert_int_equal(gnutls_aead_cipher_encrypt(hd, e.groups[0].nonce, 12, v.header,
                                                v.header_len, 16, s.plain, L, ct, &ct_len), 0);
    gnutls_aead_cipher_deinit(hd);
    assert_int_equal(ct_len, L + 16);
    assert_memory_equal(ct, v.ciphertext[0], L);
    assert_memory_equal(ct + L, v.tags, 16);
    free(ct);
    qm_envelope_free(&e);
    sealed_free(&s);
    kme_reset();
}

/* ---- tampering --------------------------------------------------------------- */

/* Flip every bit of the header and sampled bits of ciphertext and tags;
 * each must be refused without plaintext. */
static void flip_everywhere(const sealed *s, size_t r)
{
    size_t h = header_len_of(s);
    uint8_t *copy = malloc(s->len);
    for (size_t bit = 0; bit < s->len * 8; bit++) {
        size_t byte = bit / 8;
        if (byte >= h && bit % 61 != 0)   /* body: a sample */
            continue;
        memcpy(copy, s->bytes, s->len);
        copy[byte] ^= (uint8_t)(1u << (bit % 8));
        expect_refused(copy, s->len, r, s->plain_len);
    }
    /* the last byte of the last tag, every bit */
    for (int b = 0; b < 8; b++) {
        memcpy(copy, s->bytes, s->len);
        copy[s->len - 1] ^= (uint8_t)(1u << b);
        expect_refused(copy, s->len, r, s->plain_len);
    }
    free(copy);
}

static void test_level1_bit_flips(void **state)
{
    (void)state;
    sealed s = seal_l1(1000, 1, one, group0);
    flip_everywhere(&s, 0);
    sealed_free(&s);
    kme_reset();
}

static void test_level2_bit_flips(void **state)
{
    (void)state;
    sealed s = seal_l2(1000, 1, one);
    flip_everywhere(&s, 0);
    sealed_free(&s);
    kme_reset();
}

/* Offset of the first occurrence of needle in hay. */
static size_t find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return i;
    fail_msg("not found");
    return 0;
}

static void swap_ids(uint8_t *bytes, size_t len, const uint8_t *a, const uint8_t *b)
{
    size_t i = find(bytes, len, a, 16), j = find(bytes, len, b, 16);
    uint8_t t[16];
    memcpy(t, bytes + i, 16);
    memcpy(bytes + i, bytes + j, 16);
    memcpy(bytes + j, t, 16);
}

/* Two pad keys of equal length swapped; a 32-byte pad key swapped with the
 * MAC key: the reader fetches real keys and the tag fails.  A key ID
 * repeated is malformed before any key is fetched. */
static void test_swapped_and_repeated_key_ids(void **state)
{
    (void)state;
    sealed s = seal_l1(2 * KEY_BYTES, 1, one, group0);
    uint8_t *copy = malloc(s.len);
    memcpy(copy, s.bytes, s.len);
    swap_ids(copy, s.len, kme[0].id, kme[1].id);
    expect_refused(copy, s.len, 0, s.plain_len);
    memcpy(copy, s.bytes, s.len);
    memcpy(copy + find(copy, s.len, kme[1].id, 16), kme[0].id, 16);
    expect_refused(copy, s.len, 0, s.plain_len);
    assert_int_equal(open_as(copy, s.len, 0, NULL, 0), QM_E_MALFORMED);
    free(copy);
    sealed_free(&s);
    kme_reset();

    s = seal_l1(32, 1, one, group0);   /* pad key and MAC key both 32 bytes */
    copy = malloc(s.len);
    memcpy(copy, s.bytes, s.len);
    swap_ids(copy, s.len, kme[0].id, kme[1].id);
    expect_refused(copy, s.len, 0, s.plain_len);
    uint8_t out[32];
    assert_int_equal(open_as(copy, s.len, 0, out, sizeof out), QM_E_TAMPERED);
    free(copy);
    sealed_free(&s);
    kme_reset();
}

/* The right envelope with a wrong key. */
static void test_wrong_key(void **state)
{
    (void)state;
    uint8_t out[100];
    sealed s = seal_l1(100, 1, one, group0);
    randombytes_buf(kme[1].bytes, 32);          /* the MAC key */
    memset(out, SENTINEL, sizeof out);
    assert_int_equal(open_as(s.bytes, s.len, 0, out, sizeof out), QM_E_TAMPERED);
    assert_true(all_bytes(out, sizeof out, SENTINEL));
    sealed_free(&s);
    kme_reset();

    s = seal_l2(100, 1, one);
    kme[0].bytes[31] ^= 1;
    memset(out, SENTINEL, sizeof out);
    assert_int_equal(open_as(s.bytes, s.len, 0, out, sizeof out), QM_E_TAMPERED);
    assert_true(all_bytes(out, sizeof out, 0));
    kme[0].len = 31;                            /* a key of another length */
    assert_int_equal(open_as(s.bytes, s.len, 0, out, sizeof out), QM_E_TAMPERED);
    sealed_free(&s);
    kme_reset();
}

/* ---- several recipients -------------------------------------------------------- */

static const char *const three[] = { "SAE_B1", "SAE_B2", "SAE_C1" };

/* Multicast pad for B1 and B2, own pad for C1: all three read it. */
static void test_level1_several_recipients(void **state)
{
    (void)state;
    static const uint8_t groups[] = { 0, 0, 1 };
    sealed s = seal_l1(20000, 3, three, groups);
    for (size_t r = 0; r < 3; r++)
        expect_open(&s, r);
    sealed_free(&s);
    kme_reset();
}

/* B1 shares B2's pad and knows its own MAC key: it rewrites the message
 * and computes a valid tag for itself, but B2 refuses, whether B2's tag is
 * left alone or replaced with B1's. */
static void test_level1_no_forgery_across_recipients(void **state)
{
    (void)state;
    static const uint8_t groups[] = { 0, 0 };
    const size_t L = 64;
    sealed s = seal_l1(L, 2, three, groups);
    size_t h = header_len_of(&s);
    const uint8_t *pad = kme[0].bytes, *mac_b1 = kme[1].bytes;

    uint8_t *forged = malloc(s.len), *evil = random_bytes(L);
    memcpy(forged, s.bytes, s.len);
    qm_xor(forged + h, evil, pad, L);
    crypto_onetimeauth_poly1305(forged + h + L, forged, h + L, mac_b1);
    uint8_t out[64];
    assert_int_equal(open_as(forged, s.len, 0, out, L), QM_OK);  /* B1 fools itself */
    assert_memory_equal(out, evil, L);
    expect_refused(forged, s.len, 1, L);
    memcpy(forged + h + L + 16, forged + h + L, 16);
    expect_refused(forged, s.len, 1, L);
    free(forged);
    free(evil);
    sealed_free(&s);
    kme_reset();
}

/* Level 2: each recipient its own key; one's key never opens the other's. */
static void test_level2_several_recipients(void **state)
{
    (void)state;
    sealed s = seal_l2(5000, 3, three);
    for (size_t r = 0; r < 3; r++)
        expect_open(&s, r);
    uint8_t *out = malloc(5000);
    qm_envelope e;
    qm_envelope_view v;
    assert_int_equal(qm_envelope_parse(s.bytes, s.len, &e, &v), QM_OK);
    qm_key_bytes b1_key = { kme[0].bytes, 32 };
    memset(out, SENTINEL, 5000);
    assert_int_equal(qm_level2_open(&e, &v, 1, &b1_key, out, 5000), QM_E_TAMPERED);
    assert_true(all_bytes(out, 5000, 0));
    qm_envelope_free(&e);
    free(out);
    sealed_free(&s);
    kme_reset();
}

/* ---- Level 2 randomness ----------------------------------------------------------- */

static int cmp_bytes44(const void *a, const void *b)
{
    return memcmp(a, b, 44);
}

static void test_level2_fresh_salt_and_nonce(void **state)
{
    (void)state;
    enum { N = 200 };
    uint8_t (*seen)[44] = malloc(N * 44);
    uint8_t plain[16] = { 0 };
    qm_key_bytes key = { plain, 32 };   /* the same key every time, on purpose */
    uint8_t keybuf[32] = { 0 };
    key.data = keybuf;
    for (int i = 0; i < N; i++) {
        qm_envelope e;
        qm_key_ref k = { .len = 32 };
        uint8_t out[512];
        size_t n;
        assert_int_equal(qm_envelope_init(&e, 2, "SAE_A1", sizeof plain), QM_OK);
        assert_int_equal(qm_envelope_add_group(&e, NULL, 0, &k, NULL), QM_OK);
        assert_int_equal(qm_envelope_add_recipient(&e, "SAE_B1", 0, NULL), QM_OK);
        assert_int_equal(qm_level2_seal(&e, plain, &key, out, sizeof out, &n), QM_OK);
        memcpy(seen[i], e.groups[0].salt, 32);
        memcpy(seen[i] + 32, e.groups[0].nonce, 12);
        assert_false(all_bytes(e.groups[0].nonce, 12, 0));
        qm_envelope_free(&e);
    }
    qsort(seen, N, 44, cmp_bytes44);
    for (int i = 1; i < N; i++) {
        assert_memory_not_equal(seen[i - 1], seen[i], 32);        /* salts */
        assert_memory_not_equal(seen[i - 1] + 32, seen[i] + 32, 12);
    }
    free(seen);
}

/* ---- API contracts ------------------------------------------------------------------ */

static void test_contracts(void **state)
{
    (void)state;
    sealed s = seal_l1(100, 1, one, group0);
    qm_envelope e;
    qm_envelope_view v;
    uint8_t out[100];
    assert_int_equal(qm_envelope_parse(s.bytes, s.len, &e, &v), QM_OK);
    qm_key_bytes pad = { kme[0].bytes, 100 }, mac = { kme[1].bytes, 32 };
    assert_int_equal(qm_level1_open(&e, &v, 1, &pad, &mac, out, sizeof out),
                     QM_E_NOT_RECIPIENT);
    assert_int_equal(qm_level1_open(&e, &v, 0, &pad, &mac, out, 99), QM_E_USAGE);
    assert_int_equal(qm_level1_open(&e, &v, 0, &pad, NULL, out, 100), QM_E_USAGE);
    assert_int_equal(qm_level2_open(&e, &v, 0, &mac, out, 100), QM_E_USAGE); /* level 1 */
    assert_int_equal(qm_level1_open(&e, &v, 0, &pad, &mac, out, 100), QM_OK);

    /* the sender's keys must match the envelope it wrote */
    size_t n;
    uint8_t *buf = malloc(s.len);
    qm_key_bytes short_pad = { kme[0].bytes, 99 };
    const qm_key_bytes *pads[] = { &short_pad };
    assert_int_equal(qm_level1_seal(&e, out, pads, &mac, buf, s.len, &n), QM_E_KEY_SHORT);
    pads[0] = &pad;
    assert_int_equal(qm_level1_seal(&e, out, pads, &mac, buf, s.len - 1, &n), QM_E_USAGE);
    assert_int_equal(qm_level1_seal(&e, out, pads, &mac, buf, s.len, &n), QM_OK);
    assert_memory_equal(buf, s.bytes, s.len);   /* deterministic: same keys, same bytes */
    free(buf);
    qm_envelope_free(&e);
    sealed_free(&s);
    kme_reset();
}

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level1_round_trip),
        cmocka_unit_test(test_level2_round_trip),
        cmocka_unit_test(test_level1_construction),
        cmocka_unit_test(test_level2_construction),
        cmocka_unit_test(test_level1_bit_flips),
        cmocka_unit_test(test_level2_bit_flips),
        cmocka_unit_test(test_swapped_and_repeated_key_ids),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_level1_several_recipients),
        cmocka_unit_test(test_level1_no_forgery_across_recipients),
        cmocka_unit_test(test_level2_several_recipients),
        cmocka_unit_test(test_level2_fresh_salt_and_nonce),
        cmocka_unit_test(test_contracts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
