/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_seal.c - one-time pad and one-time Poly1305 tag of a relayed key
 * (relay_seal.h has the construction and its encoding).  libsodium's
 * crypto_onetimeauth, fed in parts so that neither aad nor cipher is
 * copied; the verification compares with crypto_verify_16 (constant time),
 * exactly what crypto_onetimeauth_verify does over one buffer.
 */
#include "kme/relay_seal.h"

#include <sodium.h>

static void relay_tag(const uint8_t mac_key[RELAY_MAC_KEY_BYTES], const uint8_t *aad,
                      size_t aad_len, const uint8_t *cipher, size_t n,
                      uint8_t tag[RELAY_TAG_BYTES])
{
    crypto_onetimeauth_state st;
    uint8_t len[8];
    uint64_t v = aad_len;
    for (int i = 7; i >= 0; i--, v >>= 8)
        len[i] = (uint8_t)v;
    crypto_onetimeauth_init(&st, mac_key);
    crypto_onetimeauth_update(&st, len, sizeof len);
    if (aad_len > 0)
        crypto_onetimeauth_update(&st, aad, aad_len);
    if (n > 0)
        crypto_onetimeauth_update(&st, cipher, n);
    crypto_onetimeauth_final(&st, tag);
    sodium_memzero(&st, sizeof st); /* holds the MAC key's state */
}

void relay_seal(const uint8_t *pad, const uint8_t mac_key[RELAY_MAC_KEY_BYTES],
                const uint8_t *aad, size_t aad_len, const uint8_t *k, size_t n,
                uint8_t *cipher, uint8_t tag[RELAY_TAG_BYTES])
{
    for (size_t i = 0; i < n; i++)
        cipher[i] = k[i] ^ pad[i];
    relay_tag(mac_key, aad, aad_len, cipher, n, tag);
}

int relay_open(const uint8_t *pad, const uint8_t mac_key[RELAY_MAC_KEY_BYTES],
               const uint8_t *aad, size_t aad_len, const uint8_t *cipher, size_t n,
               const uint8_t tag[RELAY_TAG_BYTES], uint8_t *k)
{
    uint8_t want[RELAY_TAG_BYTES];
    relay_tag(mac_key, aad, aad_len, cipher, n, want);
    int ok = crypto_verify_16(want, tag) == 0;
    sodium_memzero(want, sizeof want);
    if (!ok)
        return -1;
    for (size_t i = 0; i < n; i++)
        k[i] = cipher[i] ^ pad[i];
    return 0;
}
