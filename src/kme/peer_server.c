/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_server.c - the [peer_api] listener's handler (docs/kme-pair.md):
 * POST /peer/v1/reservations, reservation-batch, voids and
 * reservation-state from the KME at the other end of our link, applied to
 * the key store (ks_reservation_apply_batch, ks_void_apply,
 * ks_reservation_state) and answered in the wire format of peer_wire.h.
 *
 * A batch body of the wrong shape is a 400 and nothing is applied;
 * otherwise all reservations are applied in one key store call, each under
 * its own savepoint, and a batch never names one reservation ID twice.
 * Answers: 200 {"reservation_ID": UUID, "status": "applied" | "voided"};
 * an error is a problem-detail object {"type", "status", "message"}
 * (peer.c lists them).  Calls no other peer file; holds no lock of its own
 * (the key store takes its own).
 */
#include "kme/peer.h"
#include "kme/peer_internal.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/httpsc.h"
#include "common/log.h"
#include "common/monotime.h"
#include "common/uuid.h"
#include "common/x509cn.h"
#include "kme/listener.h"
#include "kme/netmap.h"
#include "kme/peer_wire.h"

/* ===================================================================
 * Server: the [peer_api] handler
 * =================================================================== */

/* Map a key store outcome for a reservation or void to a refusal (-1), or
 * 0 for KS_OK. */
static int store_fail(kme_err *e, ks_result r)
{
    switch (r) {
    case KS_OK:
        return 0;
    case KS_REJECTED:
        return kme_err_problem(e, 409, "segments-unusable", "a segment is not in a confirmed block "
                        "owned by the calling KME, or overlaps bits used before: no key was "
                        "recorded");
    case KS_CONFLICT:
        return kme_err_problem(e, 409, "key-conflict", "a key ID of this reservation is already "
                        "recorded with other content: nothing was recorded");
    default:
        return kme_err_problem(e, 503, "internal", "key store error: %s", ks_result_str(r));
    }
}

/* Map a key store outcome for a reservation or void to an answer. */
static void answer_store(kme_reply *out, ks_result r, const uint8_t id[16], const char *ok_status)
{
    kme_err e;
    if (store_fail(&e, r) == 0)
        pw_reply_ok(out, id, ok_status);
    else
        pw_reply_problem(out, &e);
}


/* Blocks are shared with the KME at the other end of our link only. */
static int check_link_peer(const kme_config *cfg, const char *caller, kme_err *e)
{
    if (!kme_config_link_to(cfg, caller))
        return kme_err_problem(e, 403, "no-link", "KME %s shares no QKD link with this KME", caller);
    return 0;
}

/* A reservation refused by the per-slave limit (KS_LIMIT): 429
 * slave-limit, naming the first slave over the limit.  The master's KME
 * passes the message to its SAE, so it is the SAE API's own text. */
static int resv_fail(keystore *ks, kme_err *e, ks_result rc, const pw_resv *r)
{
    if (rc != KS_LIMIT)
        return store_fail(e, rc);
    uint64_t limit = ks_unfetched_limit(ks), need = 0, held = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        need += r->keys[i].size_bits;
    const char *who = r->slaves[0];
    for (size_t i = 0; i < r->nslaves; i++)
        if (ks_unfetched_get(ks, r->slaves[i], &held) == KS_OK && held + need > limit) {
            who = r->slaves[i];
            break;
        }
    return kme_err_problem(e, 429, PEER_SLAVE_LIMIT_TYPE, MSG_UNFETCHED_LIMIT, limit, who, 1u);
}

static void handle_reservation(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    pw_resv r = { 0 };
    kme_err e;
    if (pw_read_reservation(d, NULL, "reservation", ps->cfg, caller, &r, &e) != 0) {
        pw_reply_problem(out, &e);
        pw_resv_free(&r);
        return;
    }
    ks_result rc = ks_reservation_apply(ps->ks, caller, r.id, r.master, r.slaves, r.nslaves, r.expires,
                                        r.keys, r.nkeys);
    if (rc == KS_OK)
        log_debug("peer %s: reservation of %zu keys for %s -> %s (+%zu) applied", caller,
                  r.nkeys, r.master, r.slaves[0], r.nslaves - 1);
    else
        log_warn("peer %s: reservation of %zu keys for %s refused: %s", caller, r.nkeys,
                 r.master, ks_result_str(rc));
    if (rc == KS_LIMIT) {
        resv_fail(ps->ks, &e, rc, &r);
        pw_reply_problem(out, &e);
    } else {
        answer_store(out, rc, r.id, "applied");
    }
    pw_resv_free(&r);
}

/* The items of a batch, read; each with its own outcome. */
typedef struct batch_item {
    pw_resv r;
    bool id_ok;                    /* r.id was readable */
    kme_err e;                        /* e.http == 0: read, to apply */
} batch_item;

typedef struct batch_in {
    size_t n;
    batch_item *it;                /* n of them (calloc'd: a batch is mostly 2-4) */
} batch_in;

/* Read reservations[i]: a refusal is that item's outcome, not the batch's.
 * An ID already named by an earlier item is refused (a batch never holds
 * one reservation twice; which copy would count is not worth defining). */
static void batch_read_item(peer_service *ps, const char *caller, pw_doc *d, const char *at,
                            batch_in *b, size_t i)
{
    char where[32];
    snprintf(where, sizeof where, "reservations[%zu]", i);
    b->it[i].id_ok = pw_item_id(d, at, b->it[i].r.id);
    if (pw_read_reservation(d, at, where, ps->cfg, caller, &b->it[i].r, &b->it[i].e) != 0)
        return;
    for (size_t j = 0; j < i; j++)
        if (b->it[j].id_ok && memcmp(b->it[j].r.id, b->it[i].r.id, 16) == 0) {
            kme_err_problem(&b->it[i].e, 400, "bad-request",
                     "reservations[%zu].reservation_ID repeats reservations[%zu]", i, j);
            return;
        }
    b->it[i].e.http = 0;
}

/* Apply the items that were read, all in one key store transaction. */
static void batch_apply(peer_service *ps, const char *caller, batch_in *b)
{
    ks_reservation_in in[PEER_BATCH_MAX];
    ks_result res[PEER_BATCH_MAX];
    size_t at[PEER_BATCH_MAX], m = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->it[i].e.http != 0)
            continue;
        const pw_resv *r = &b->it[i].r;
        in[m] = (ks_reservation_in){.from_peer = caller, .master = r->master, .slaves = r->slaves,
                                    .nslaves = r->nslaves, .expires_ms = r->expires,
                                    .keys = r->keys, .n = r->nkeys};
        memcpy(in[m].id, r->id, 16);
        at[m++] = i;
    }
    if (m > 0)
        ks_reservation_apply_batch(ps->ks, in, m, res);
    size_t applied = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = at[k];
        if (resv_fail(ps->ks, &b->it[i].e, res[k], &b->it[i].r) == 0)
            applied++;
        else
            log_warn("peer %s: reservation of %zu keys for %s refused: %s", caller, b->it[i].r.nkeys,
                     b->it[i].r.master, ks_result_str(res[k]));
    }
    log_debug("peer %s: batch of %zu reservations, %zu applied", caller, b->n, applied);
}

static void handle_batch(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    const char *items[PEER_BATCH_MAX];
    size_t n = 0;
    kme_err e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_batch(d, items, &n, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    batch_in in = {.n = n, .it = calloc(n, sizeof *in.it)}, *b = &in;
    if (!b->it) {
        kme_err_problem(&e, 503, "internal", "out of memory");
        pw_reply_problem(out, &e);
        return;
    }
    for (size_t i = 0; i < b->n; i++)
        batch_read_item(ps, caller, d, items[i], b, i);
    batch_apply(ps, caller, b);
    const uint8_t *ids[PEER_BATCH_MAX];
    const kme_err *results[PEER_BATCH_MAX];
    for (size_t i = 0; i < b->n; i++) {
        ids[i] = b->it[i].id_ok ? b->it[i].r.id : NULL;
        results[i] = b->it[i].e.http ? &b->it[i].e : NULL;
    }
    pw_reply_batch(out, b->n, ids, results);
    for (size_t i = 0; i < b->n; i++)
        pw_resv_free(&b->it[i].r);
    free(b->it);
}

static void handle_void(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    uint8_t id[16];
    ks_segment *segs = NULL;
    size_t n = 0;
    kme_err e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_void(d, id, &segs, &n, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    ks_result rc = ks_void_apply(ps->ks, caller, id, segs, n);
    if (rc == KS_OK) {
        log_info("peer %s: void of a reservation (%zu segments) applied", caller, n);
        peer_void_wake(ps); /* a reservation we relayed is voided downstream too */
    }
    answer_store(out, rc, id, "voided");
    free(segs);
}

static void handle_state(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    /* "pending": we relay it and our downstream has not answered yet; the
     * asking KME asks again later (docs/network.md §3) */
    static const char *const words[] = { "unknown", "applied", "voided", "pending" };
    uint8_t id[16];
    ks_res_state st;
    kme_err e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_state(d, id, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    if (ks_reservation_state(ps->ks, id, &st) != KS_OK) {
        kme_err_problem(&e, 503, "internal", "key store error");
        pw_reply_problem(out, &e);
        return;
    }
    pw_reply_ok(out, id, words[st]);
}

/* GET /peer/v1/map: our map's version and our own bits towards each
 * neighbour we share a link with (metadata: counts, never key bits). */
static void serve_map(peer_service *ps, kme_reply *out)
{
    const kme_config *cfg = ps->cfg;
    pw_stock stock[PW_STOCK_MAX];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_links && n < PW_STOCK_MAX; i++) {
        ks_link_stats ls;
        if (ks_link_stats_get(ps->ks, cfg->links[i].peer, &ls) != KS_OK)
            continue;
        snprintf(stock[n].kme, sizeof stock[n].kme, "%s", cfg->links[i].peer);
        stock[n++].bits = ls.own_bits;
    }
    pw_reply_map(out, cfg->map ? cfg->map->version : -1, stock, n);
}

void peer_handle(void *ctx, const char *caller, const char *method,
                        const char *raw_uri, const char *body, size_t body_len,
                        kme_reply *out)
{
    peer_service *ps = ctx;
    kme_err e;
    pw_doc d;
    memset(out, 0, sizeof *out);
    bool resv_path = strcmp(raw_uri, PATH_RESERVATIONS) == 0;
    bool batch_path = strcmp(raw_uri, PATH_BATCH) == 0;
    bool state_path = strcmp(raw_uri, PATH_STATE) == 0;
    bool relay_path = strcmp(raw_uri, PATH_RELAY) == 0;
    bool map_path = strcmp(raw_uri, PATH_MAP) == 0;
    if (!resv_path && !batch_path && !state_path && !relay_path && !map_path
        && strcmp(raw_uri, PATH_VOIDS) != 0) {
        kme_err_problem(&e, 404, "not-found", "no such resource: the peer API has POST %s, POST %s, "
                 "POST %s, POST %s, POST %s and GET %s", PATH_RESERVATIONS, PATH_BATCH, PATH_VOIDS,
                 PATH_STATE, PATH_RELAY, PATH_MAP);
        pw_reply_problem(out, &e);
        return;
    }
    if (map_path) {
        if (strcmp(method, "GET") != 0) {
            kme_err_problem(&e, 405, "method", "only GET is allowed here");
            pw_reply_problem(out, &e);
        } else {
            serve_map(ps, out);
        }
        return;
    }
    if (strcmp(method, "POST") != 0) {
        kme_err_problem(&e, 405, "method", "only POST is allowed here");
        pw_reply_problem(out, &e);
        return;
    }
    if (pw_doc_open(&d, body, body_len, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    if (resv_path) {
        if (check_link_peer(ps->cfg, caller, &e) != 0)
            pw_reply_problem(out, &e);
        else
            handle_reservation(ps, caller, &d, out);
    } else if (batch_path) {
        handle_batch(ps, caller, &d, out);
    } else if (state_path) {
        handle_state(ps, caller, &d, out);
    } else if (relay_path) {
        peer_relay_handle(ps, caller, &d, out);
    } else {
        handle_void(ps, caller, &d, out);
    }
    pw_doc_close(&d);
}

/* Identity on the peer listener: the CN of a certificate of the KME CA, and
 * it must name a configured peer. */
const char *peer_identify(void *ctx, const char *cn, const char *uri_san)
{
    peer_service *ps = ctx;
    (void)uri_san;
    return cn && kme_config_peer(ps->cfg, cn) ? cn : NULL;
}

