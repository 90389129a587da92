/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_intake.c - the [link] listener's identity rule and handler.
 *
 * The link simulator stands in for the QKD devices inside our site: it is
 * the only party allowed here, and the only interface where key material
 * enters a KME.  Requests are validated completely before the key store
 * is touched, so a 400 never leaves half a change behind.  The store
 * answers only after its transaction is durable, so "stored": true is a
 * promise the link may act on (confirm at both ends).
 *
 * Directions: a block whose owner byte equals our side of the link is "own"
 * (our masters allocate from it), the others are "peer" blocks.
 */
#include "kme/link_intake.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/blockid.h"
#include "common/monotime.h"
#include "kme/metrics.h"

#define PATH_BLOCKS "/link/v1/blocks"
#define PATH_CONFIRM "/link/v1/confirm"
#define PATH_DISCARD "/link/v1/discard"
#define PATH_STATE "/link/v1/state"
#define PATH_REPORT "/link/v1/report"

const char *link_identify(void *ctx, const char *cn, const char *uri_san)
{
    const link_intake *li = ctx;
    (void)uri_san;
    return cn && strcmp(cn, li->link->id) == 0 ? cn : NULL;
}

static const char *side_name(int side)
{
    return side == KME_LINK_SIDE_A ? "A" : "B";
}

/* {"side":"A","own_bits":n,"peer_bits":n,"cap_bits":n,
 *  "A":{"bits":n,"cap_bits":n},"B":{...}}: the same levels both from this
 * KME's point of view and by link side (docs/kme-pair.md). */
static json_t *pool_json(const link_intake *li, const ks_link_stats *st)
{
    json_int_t cap = (json_int_t)li->link->pool_cap_bits;
    int mine = li->link->side;
    json_int_t a = (json_int_t)(mine == KME_LINK_SIDE_A ? st->own_bits : st->peer_bits);
    json_int_t b = (json_int_t)(mine == KME_LINK_SIDE_A ? st->peer_bits : st->own_bits);
    return json_pack("{s:s, s:I, s:I, s:I, s:{s:I, s:I}, s:{s:I, s:I}}",
                     "side", side_name(mine),
                     "own_bits", (json_int_t)st->own_bits, "peer_bits", (json_int_t)st->peer_bits,
                     "cap_bits", cap, "A", "bits", a, "cap_bits", cap, "B", "bits", b, "cap_bits", cap);
}

/* ------------------------------------------------------------ blocks */

static void stored_reply(const link_intake *li, kme_reply *out)
{
    ks_link_stats st;
    if (ks_link_stats_get(li->ks, li->link->peer, &st) != KS_OK) {
        reply_error(out, 503, "key store error");
        return;
    }
    json_t *o = json_pack("{s:b, s:o}", "stored", 1, "pool", pool_json(li, &st));
    reply_json(out, 200, o);
    json_decref(o);
}

/* A QBER report (issue 13): refused whole when malformed, so that a
 * hostile report changes nothing; 0 or -1 (400 written, logged). */
static int take_report(const link_intake *li, const char *json, size_t len, link_report *r,
                       kme_reply *out)
{
    char why[200];
    if (link_parse_report(json, len, r, why, sizeof why) != 0) {
        log_warn("link %s: QBER report refused: %s", li->link->id, why);
        reply_error(out, 400, why);
        return -1;
    }
    return 0;
}

static void handle_report(const link_intake *li, const char *body, size_t len, kme_reply *out)
{
    link_report r;
    if (take_report(li, body, len, &r, out) != 0)
        return;
    if (li->state)
        link_state_report(li->state, &r, mono_ms());
    json_t *o = json_pack("{s:b}", "taken", 1);
    reply_json(out, 200, o);
    json_decref(o);
}

static void handle_block(const link_intake *li, const char *body, size_t len, kme_reply *out)
{
    uint64_t id;
    int owner;
    uint32_t blen;
    char why[160];
    const char *rep;
    size_t rep_len;
    link_report report;
    if (link_parse_block_ex(body, len, &id, &owner, &blen, &rep, &rep_len, why, sizeof why) != 0) {
        reply_error(out, 400, why);
        return;
    }
    if (rep && take_report(li, rep, rep_len, &report, out) != 0)
        return;
    if (rep && li->state)
        link_state_report(li->state, &report, mono_ms());
    bool own = owner == (int)li->link->side;
    ks_result r = ks_block_store(li->ks, li->link->peer, id, own, (const uint8_t *)body + LINK_HEADER, blen,
                                 (uint64_t)li->link->pool_cap_bits);
    if (r == KS_OK) {
        metrics_link_block(li->index, own, blen);
        log_debug("link %s: block %016" PRIx64 " (%s, %" PRIu32 " bytes) stored", li->link->id, id,
                  own ? "own" : "peer", blen);
        if (li->state)
            link_state_bits(li->state, (uint64_t)blen * 8, mono_ms());
        stored_reply(li, out);
    } else if (r == KS_EMPTY) {
        reply_error(out, 503, "pool full");
    } else if (r == KS_CONFLICT) {
        reply_error(out, 409, "block ID already stored with other bytes or owner");
    } else {
        reply_error(out, 503, "key store error");
    }
}

/* ------------------------------------------------------------ confirm, discard */

static void handle_ids(const link_intake *li, bool confirm, const char *body, size_t len, kme_reply *out)
{
    uint64_t *ids;
    size_t n, done = 0;
    char why[200];
    link_parse_result parsed = link_parse_ids(body, len, &ids, &n, why, sizeof why);
    if (parsed != LINK_PARSE_OK) {
        reply_error(out, parsed == LINK_PARSE_NOMEM ? 503 : 400, why);
        return;
    }
    ks_result r = confirm ? ks_block_confirm(li->ks, li->link->peer, ids, n, &done)
                          : ks_block_discard(li->ks, li->link->peer, ids, n, &done);
    free(ids);
    if (r != KS_OK) {
        reply_error(out, 503, "key store error");
        return;
    }
    log_debug("link %s: %zu of %zu blocks %s", li->link->id, done, n, confirm ? "confirmed" : "discarded");
    json_t *o = json_pack("{s:I}", confirm ? "confirmed" : "discarded", (json_int_t)done);
    reply_json(out, 200, o);
    json_decref(o);
}

/* ------------------------------------------------------------ state */

static json_t *ids_array(const uint64_t *ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char hex[17];
        block_id_format(ids[i], hex);
        if (json_array_append_new(arr, json_string(hex)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static void handle_state(const link_intake *li, kme_reply *out)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    ks_link_stats st;
    if (ks_block_unconfirmed(li->ks, li->link->peer, &ids, &n) != KS_OK
        || ks_link_stats_get(li->ks, li->link->peer, &st) != KS_OK) {
        free(ids);
        reply_error(out, 503, "key store error");
        return;
    }
    json_t *arr = ids_array(ids, n), *pool = arr ? pool_json(li, &st) : NULL;
    /* "reports": 1 tells the link it may send QBER reports (link_block.h) */
    json_t *o = pool ? json_pack("{s:o, s:o, s:i}", "unconfirmed", arr, "pool", pool, "reports", 1) : NULL;
    if (!pool)
        json_decref(arr);
    reply_json(out, 200, o); /* NULL: out of memory, a 503 */
    json_decref(o);
    free(ids);
}

/* ------------------------------------------------------------ dispatch */

static bool is_post(const char *m) { return strcmp(m, "POST") == 0; }

void link_handle(void *ctx, const char *caller, const char *method,
                 const char *raw_uri, const char *body, size_t body_len,
                 kme_reply *out)
{
    const link_intake *li = ctx;
    const char *want = NULL;
    (void)caller; /* link_identify admitted only the link */
    memset(out, 0, sizeof *out);
    if (strcmp(raw_uri, PATH_BLOCKS) == 0 || strcmp(raw_uri, PATH_CONFIRM) == 0
        || strcmp(raw_uri, PATH_DISCARD) == 0 || strcmp(raw_uri, PATH_REPORT) == 0)
        want = is_post(method) ? NULL : "POST";
    else if (strcmp(raw_uri, PATH_STATE) == 0)
        want = strcmp(method, "GET") == 0 ? NULL : "GET";
    else {
        reply_error(out, 404, "unknown path: the link intake serves /link/v1/blocks, /link/v1/confirm, /link/v1/discard, /link/v1/report and /link/v1/state");
        return;
    }
    char why[96];
    if (want) {
        snprintf(why, sizeof why, "method %.16s not allowed: use %s", method, want);
        reply_error(out, 405, why);
    } else if (strcmp(raw_uri, PATH_BLOCKS) == 0)
        handle_block(li, body, body_len, out);
    else if (strcmp(raw_uri, PATH_REPORT) == 0)
        handle_report(li, body, body_len, out);
    else if (strcmp(raw_uri, PATH_STATE) == 0 && body_len)
        reply_error(out, 400, "GET /link/v1/state takes no body");
    else if (strcmp(raw_uri, PATH_STATE) == 0)
        handle_state(li, out);
    else
        handle_ids(li, strcmp(raw_uri, PATH_CONFIRM) == 0, body, body_len, out);
}
