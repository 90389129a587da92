/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_peer_wire.c - libFuzzer target for the KME-to-KME wire format
 * (src/kme/peer_wire.c): every byte a peer KME sends reaches these
 * readers, and the peer client reads the answers with the others.
 *
 * Input layout: one selector byte (which request reader), then the body.
 * Beyond "no crash, no leak, no read past the body" the target checks the
 * contract: a refusal carries 400 or 503, a type and a one-line message,
 * and renders to valid JSON; a reservation read leaves consistent keys
 * (each with 1 or more segments whose lengths add up to its size, SAE IDs
 * that the configuration knows).  The answer readers see the same bytes.
 * Selector 4 is the relay's reader (src/kme/relay_wire.c): a relay read
 * keeps its shape (hop inside the path, the sealed form from hop 2 on, a
 * cipher as long as the keys, a pad of cipher + 32 bytes), its aad can be
 * made, and a sealed relay written again for the next hop reads back with
 * the same content.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonscan.h"
#include "kme/peer_wire.h"
#include "kme/relay_wire.h"

static char *local_saes[] = { "SAE_B1", "SAE_B2" };
static char *a_saes[] = { "SAE_A1", "SAE_A2" };
static kme_peer peers[] = { { .id = "KME-A", .saes = a_saes, .n_saes = 2 } };
static const kme_config cfg = {
    .id = "KME-B", .local_saes = local_saes, .n_local_saes = 2, .peers = peers, .n_peers = 1,
};

static void check_refusal(const kme_err *e)
{
    if ((e->http != 400 && e->http != 503) || !e->type || !e->message[0] || strchr(e->message, '\n'))
        abort();
    kme_reply out = {0};
    pw_reply_problem(&out, e);
    if (!js_validate((const char *)out.body.data, out.body.len, NULL))
        abort();
    reply_free(&out);
}

static void check_reservation(const pw_resv *r)
{
    if (r->nkeys == 0 || r->nslaves == 0 || !kme_config_peer_of_sae(&cfg, r->master))
        abort();
    for (size_t i = 0; i < r->nslaves; i++)
        if (!kme_config_is_local_sae(&cfg, r->slaves[i]))
            abort();
    for (size_t i = 0; i < r->nkeys; i++) {
        uint64_t bytes = 0;
        if (r->keys[i].nsegs == 0)
            abort();
        for (size_t j = 0; j < r->keys[i].nsegs; j++)
            bytes += r->keys[i].segs[j].length;
        if (bytes * 8 != r->keys[i].size_bits)
            abort();
    }
}

static void check_relay(const pw_relay *r)
{
    if (r->hop < 1 || r->hop >= r->npath || r->npath < 3 || r->nkeys == 0 || r->nslaves == 0
        || r->sealed != (r->hop >= 2))
        abort();
    uint64_t bytes = 0, pad = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        bytes += r->keys[i].size_bits / 8;
    for (size_t i = 0; i < r->npad; i++)
        pad += r->pad[i].length;
    if (r->sealed && (bytes != r->cipher_len || pad != bytes + RELAY_MAC_KEY_BYTES))
        abort();
    size_t alen = 0;
    uint8_t *aad = relay_aad(r, &alen);
    if (!aad || alen < 16)
        abort();
    if (r->sealed && r->hop + 1 < r->npath) {
        char *next = pw_relay_sealed_text(r, 100, r->pad, r->npad, r->cipher, r->cipher_len, r->tag);
        pw_doc d;
        pw_relay back;
        kme_err e = {0};
        if (!next || pw_doc_open(&d, next, strlen(next), &e) != 0 || pw_read_relay(&d, &back, &e) != 0)
            abort();
        size_t blen = 0;
        uint8_t *baad = relay_aad(&back, &blen);
        if (!baad || blen != alen || memcmp(aad, baad, alen) != 0 || back.hop != r->hop + 1
            || back.cipher_len != r->cipher_len || memcmp(back.cipher, r->cipher, r->cipher_len) != 0
            || memcmp(back.tag, r->tag, RELAY_TAG_BYTES) != 0)
            abort();
        free(baad);
        pw_relay_free(&back);
        pw_doc_close(&d);
        free(next);
    }
    free(aad);
}

static void read_request(uint8_t sel, const char *body, size_t len)
{
    pw_doc d;
    kme_err e = {0};
    if (pw_doc_open(&d, body, len, &e) != 0) {
        check_refusal(&e);
        return;
    }
    uint8_t id[16];
    int rc = 0;
    switch (sel % 5) {
    case 0: {
        pw_resv r = {0};
        rc = pw_read_reservation(&d, NULL, "reservation", &cfg, "KME-A", &r, &e);
        if (rc == 0)
            check_reservation(&r);
        pw_resv_free(&r);
        break;
    }
    case 1: {
        const char *items[PEER_BATCH_MAX];
        size_t n = 0;
        rc = pw_read_batch(&d, items, &n, &e);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            pw_resv r = {0};
            kme_err ie = {0};
            pw_item_id(&d, items[i], id);
            if (pw_read_reservation(&d, items[i], "reservations[i]", &cfg, "KME-A", &r, &ie) == 0)
                check_reservation(&r);
            else
                check_refusal(&ie);
            pw_resv_free(&r);
        }
        break;
    }
    case 2: {
        ks_segment *segs = NULL;
        size_t n = 0;
        rc = pw_read_void(&d, id, &segs, &n, &e);
        if (rc == 0 && (n == 0 || !segs))
            abort();
        free(segs);
        break;
    }
    case 3:
        rc = pw_read_state(&d, id, &e);
        break;
    default: {
        pw_relay r;
        rc = pw_read_relay(&d, &r, &e);
        if (rc == 0)
            check_relay(&r);
        pw_relay_free(&r);
    }
    }
    if (rc != 0)
        check_refusal(&e);
    pw_doc_close(&d);
}

static void read_answers(const char *text, size_t len)
{
    static const uint8_t ids[3][16] = { { 1 }, { 2 }, { 3 } };
    peer_answer res[3], a = {.http = 409};
    pw_batch_results(text, 3, ids, res);
    pw_state_applied(text, ids[0]);
    int64_t version;
    pw_stock stock[4];
    size_t n = 0;
    if (pw_map_answer(text, &version, stock, 4, &n) == 0 && (n > 4 || version < -1))
        abort();
    pw_answer_reason(text, len, &a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* the listener hands bodies as they arrived; the client's answers are
     * NUL-terminated: give both forms their own copy, so that a read past
     * the end is caught */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1), *text = malloc(len + 1);
    if (!body || !text)
        abort();
    memcpy(body, data + 1, len);
    memcpy(text, data + 1, len);
    text[len] = '\0';
    read_request(data[0], body, len);
    if (strlen(text) == len)
        read_answers(text, len);
    free(body);
    free(text);
    return 0;
}
