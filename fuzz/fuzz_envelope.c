/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_envelope.c - libFuzzer target for the QuMail envelope parser
 * (src/mail/envelope.c) and the Level 1 / Level 2 open paths behind it:
 * the code that sees every byte of a received message before any key is
 * fetched.
 *
 * The input is a whole envelope.  Beyond "no crash, no leak, no undefined
 * behaviour" the target checks the contract: an accepted envelope is
 * canonical (re-serialising its fields gives exactly the received header,
 * and its length is exactly what the header implies), the view lies inside
 * the input, and opening it as each recipient with stand-in keys (zeros of
 * the named lengths) either verifies or reports tampering, leaving the
 * output untouched (level 1) or zeroed (level 2) on failure.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/envelope.h"
#include "mail/level1.h"
#include "mail/level2.h"

#define MAX_STAND_IN_KEY (1u << 20)

static uint8_t zeros[MAX_STAND_IN_KEY];

static void check_canonical(const qm_envelope *e, const qm_envelope_view *v,
                            const uint8_t *data, size_t size)
{
    size_t hlen, total;
    uint8_t *again = malloc(v->header_len);
    if (again == NULL)
        abort();
    if (qm_header_write(e, again, v->header_len, &hlen) != QM_OK || hlen != v->header_len
        || memcmp(again, v->header, hlen) != 0)
        abort();
    free(again);
    if (qm_envelope_total_len(e, hlen, &total) != QM_OK || total != size || v->header != data)
        abort();
    for (size_t g = 0; g < e->n_groups; g++)
        if (v->ciphertext[g] < data || v->ciphertext[g] + e->msg_len > data + size)
            abort();
}

static int keys_small(const qm_envelope *e, size_t r)
{
    const qm_group *g = &e->groups[e->recipients[r].group];
    for (uint32_t i = 0; i < g->n_pad_keys; i++)
        if (g->pad_keys[i].len > MAX_STAND_IN_KEY)
            return 0;
    return 1;
}

static void check_failure(qm_err rc, const uint8_t *out, size_t n, uint8_t fill)
{
    if (rc == QM_OK)
        return;
    if (rc != QM_E_TAMPERED)
        abort();
    for (size_t i = 0; i < n; i++)
        if (out[i] != fill)
            abort();
}

static void open_level1(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                        uint8_t *out)
{
    const qm_group *g = &e->groups[e->recipients[r].group];
    qm_key_bytes *pad = calloc(g->n_pad_keys + 1u, sizeof *pad);
    if (pad == NULL)
        abort();
    for (uint32_t i = 0; i < g->n_pad_keys; i++)
        pad[i] = (qm_key_bytes){ zeros, g->pad_keys[i].len };
    qm_key_bytes mac = { zeros, QM_MAC_KEY_LEN };
    memset(out, 0xEE, e->msg_len);
    check_failure(qm_level1_open(e, v, r, pad, &mac, out, e->msg_len), out, e->msg_len, 0xEE);
    free(pad);
}

static void open_level2(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                        uint8_t *out)
{
    qm_key_bytes key = { zeros, QM_L2_KEY_LEN };
    check_failure(qm_level2_open(e, v, r, &key, out, e->msg_len), out, e->msg_len, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qm_envelope e;
    qm_envelope_view v;
    if (qm_envelope_parse(data, size, &e, &v) != QM_OK)
        return 0;
    check_canonical(&e, &v, data, size);
    uint8_t *out = malloc(e.msg_len + 1);
    if (out == NULL)
        abort();
    for (size_t r = 0; r < e.n_recipients; r++) {
        if (e.level == QM_LEVEL_1 && keys_small(&e, r))
            open_level1(&e, &v, r, out);
        else if (e.level == QM_LEVEL_2)
            open_level2(&e, &v, r, out);
    }
    free(out);
    qm_envelope_free(&e);
    return 0;
}
