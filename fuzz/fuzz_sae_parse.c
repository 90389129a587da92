/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_sae_parse.c - libFuzzer target for what a hostile KME answers, as
 * libqkd014 reads it (src/sae/parse.c): Status bodies, Key containers for
 * enc_keys (number and size) and dec_keys (exact key IDs), Error bodies.
 *
 * Input layout: one selector byte (which reader and which expectation),
 * then the body.  Beyond "no crash, no leak, no read past the body" the
 * target checks the contract: a refusal carries a message of printable
 * ASCII (callers log and print it, and it quotes the KME's bytes); an
 * accepted container holds exactly what was asked for (count, key length,
 * the asked IDs in order, canonical lower-case distinct UUIDs); an Error
 * message has no control characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sae/qkd014_internal.h"

static const char asked_ids[2][QKD014_KEY_ID_LEN + 1] = {
    "0f5c7a1e-3b2d-4c8e-9a6f-1d2e3f4a5b6c",
    "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
};

static void check_message(const char *msg)
{
    for (const char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort();
}

static bool is_canonical_uuid(const char *id)
{
    static const char hex[] = "0123456789abcdef";
    if (strlen(id) != QKD014_KEY_ID_LEN)
        return false;
    for (size_t i = 0; i < QKD014_KEY_ID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id[i] != '-' : (id[i] == '\0' || !strchr(hex, id[i])))
            return false;
    }
    return true;
}

static void check_keys(const qkd014_keys *k, const qkd014_keys_expect *exp)
{
    size_t want = exp->ids ? exp->n_ids : exp->number;
    if (k->n != want)
        abort();
    for (size_t i = 0; i < k->n; i++) {
        const qkd014_key *key = &k->keys[i];
        if (!is_canonical_uuid(key->key_id) || key->key_len == 0 || !key->key)
            abort();
        if (exp->ids && strcmp(key->key_id, exp->ids[i]) != 0)
            abort();
        if (!exp->ids && exp->size_bits > 0 && key->key_len * 8 != (size_t)exp->size_bits)
            abort();
        if (!exp->ids && exp->size_bits == 0 && key->key_len != k->keys[0].key_len)
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(k->keys[j].key_id, key->key_id) == 0)
                abort();
    }
}

static void fuzz_keys(uint8_t sel, const char *body, size_t len)
{
    static const int32_t sizes[] = { 0, 8, 256, 24 };
    qkd014_keys_expect exp = { 0 };
    if (sel & 0x10) {
        exp.ids = asked_ids;
        exp.n_ids = 1 + ((sel >> 5) & 1);
    } else {
        exp.number = 1 + ((sel >> 5) & 3);
        exp.size_bits = sizes[(sel >> 2) & 3];
    }
    qkd014_keys *k = NULL;
    char err[256] = "";
    if (qkd014_parse_keys(body, len, &exp, &k, err, sizeof err) == QKD014_OK) {
        check_keys(k, &exp);
        qkd014_keys_free(k);
    } else if (k != NULL || err[0] == '\0') {
        abort();
    } else {
        check_message(err);
    }
}

static void fuzz_status(uint8_t sel, const char *body, size_t len)
{
    const char *slave = (sel & 0x10) ? "SAE_B" : NULL;
    qkd014_status *s = NULL;
    char err[256] = "";
    if (qkd014_parse_status(body, len, slave, &s, err, sizeof err) == QKD014_OK) {
        if (s == NULL || (slave && strcmp(s->slave_sae_id, slave) != 0))
            abort();
        qkd014_status_free(s);
    } else if (s != NULL || err[0] == '\0') {
        abort();
    } else {
        check_message(err);
    }
}

static void fuzz_error(const char *body, size_t len)
{
    char msg[128];
    if (!qkd014_parse_error_message(body, len, msg, sizeof msg) && msg[0] != '\0')
        abort();
    check_message(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    /* the readers take a length, not a NUL: give them an exact copy so that
     * ASan sees any read past the body */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, len);
    switch (sel & 3) {
    case 0: fuzz_status(sel, body, len); break;
    case 3: fuzz_error(body, len); break;
    default: fuzz_keys(sel, body, len); break;
    }
    free(body);
    return 0;
}
