/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_relay.c - trusted-node relay on the KME-to-KME channel
 * (docs/network.md §3): POST /peer/v1/relay, both ends.
 *
 * Server: a hop arrives from the upstream neighbour.  Its shape is read by
 * relay_wire.c; here who may send what is checked against the
 * configuration and the network map.  The last KME of the path stores the
 * key for its slaves (ks_relay_deliver) and answers 200 after its commit.
 * An intermediate KME takes the key, seals it under fresh bits of its link
 * to the next KME and records a pending outbox entry, in one transaction
 * (ks_relay_forward), sends the next hop, and answers its upstream only
 * after the downstream answered: so the origin answers its master only
 * when the last KME holds the key durably (I4, I6).  A downstream that
 * fails turns the entry into a void (bits burned, I5) and the upstream
 * gets 503 "relay-unavailable", on which the origin tries another path.
 *
 * Client: peer_relay() sends hop 1 from the origin (the reservation of
 * ks_remote_enc plus the path) and waits for the answer, bounded by the
 * caller's time.
 *
 * A worker of the peer listener waits while its hop is on the way
 * downstream: peer_threads bounds how many relays one KME carries at once
 * (config.c gives KMEs with a network map more of them).  No lock is held
 * across the network.
 *
 * Test hook: QKD_KME_TEST_TAMPER_RELAY=1 in the environment of an
 * intermediate KME flips one bit of every cipher it sends (after sealing),
 * so that a system test can show the next KME refusing it; the KME logs a
 * warning at start when it is set.
 */
#include "kme/peer.h"
#include "kme/peer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/monotime.h"
#include "common/uuid.h"
#include "kme/metrics.h"
#include "kme/netmap.h"
#include "kme/relay_wire.h"

/* An intermediate KME keeps this much of its upstream's time for itself:
 * its own transaction and answer after the downstream answered. */
#define RELAY_MARGIN_MS 50

static bool tamper_hook(void)
{
    const char *v = getenv("QKD_KME_TEST_TAMPER_RELAY");
    return v && strcmp(v, "1") == 0;
}

void peer_relay_announce(void)
{
    if (tamper_hook())
        log_warn("QKD_KME_TEST_TAMPER_RELAY=1: this KME flips a bit of every key it relays "
                 "(a test hook; never set it in production)");
}

/* ---- server: who may send what ------------------------------------------ */

static int unavailable(kme_err *e, const char *fmt, const char *a, const char *b)
{
    return kme_err_problem(e, 503, PEER_RELAY_UNAVAILABLE_TYPE, fmt, a, b);
}

/* The path, the caller, the SAEs and (not last) the next hop. */
static int relay_check(const peer_service *ps, const char *caller, const pw_relay *r,
                       const char **next, kme_err *e)
{
    const kme_config *cfg = ps->cfg;
    const netmap *m = cfg->map;
    if (!m)
        return kme_err_problem(e, 403, "no-relay", "KME %s has no network map: it relays no keys",
                               cfg->id);
    if (strcmp(r->path[r->hop], cfg->id) != 0 || strcmp(r->path[r->hop - 1], caller) != 0)
        return kme_err_problem(e, 400, "bad-request", "path: hop %u goes from %s to this KME (%s)",
                               r->hop, caller, cfg->id);
    if (!kme_config_link_to(cfg, caller))
        return kme_err_problem(e, 403, "no-link", "KME %s shares no QKD link with this KME", caller);
    for (size_t i = 0; i < r->npath; i++)
        if (netmap_kme_index(m, r->path[i]) < 0)
            return kme_err_problem(e, 400, "bad-request", "path[%zu] is not a KME of the network map", i);
    const netmap_kme *origin = netmap_kme_of_sae(m, r->master);
    if (!origin || strcmp(origin->id, r->path[0]) != 0)
        return kme_err_problem(e, 400, "bad-request", "master_SAE_ID is not an SAE behind %s",
                               r->path[0]);
    bool last = r->hop == r->npath - 1;
    for (size_t i = 0; i < r->nslaves; i++) {
        const netmap_kme *k = netmap_kme_of_sae(m, r->slaves[i]);
        if (!k || strcmp(k->id, r->path[r->npath - 1]) != 0
            || (last && !kme_config_is_local_sae(cfg, r->slaves[i])))
            return kme_err_problem(e, 400, "bad-request", "slave_SAE_IDs[%zu] is not an SAE behind "
                                   "%s", i, r->path[r->npath - 1]);
    }
    *next = last ? NULL : r->path[r->hop + 1];
    if (*next && !kme_config_link_to(cfg, *next))
        return unavailable(e, "this KME has no QKD link to %s%s", *next, "");
    return 0;
}

static void relay_in_of(const pw_relay *r, const char *caller, const uint8_t *aad, size_t aad_len,
                        ks_relay_in *in)
{
    memset(in, 0, sizeof *in);
    memcpy(in->id, r->id, 16);
    in->from_peer = caller;
    in->master = r->master;
    in->slaves = r->slaves;
    in->nslaves = r->nslaves;
    in->expires_ms = r->expires;
    in->keys = r->keys;
    in->n = r->nkeys;
    in->sealed = r->sealed;
    in->pad = r->pad;
    in->npad = r->npad;
    in->cipher = r->cipher;
    in->cipher_len = r->cipher_len;
    in->tag = r->tag;
    in->aad = aad;
    in->aad_len = aad_len;
}

static int store_refusal(kme_err *e, ks_result rc, const char *next)
{
    switch (rc) {
    case KS_TAMPERED:
        return kme_err_problem(e, 409, "tampered", "the relayed key's one-time tag did not verify: "
                               "nothing was recorded");
    case KS_REJECTED:
        return kme_err_problem(e, 409, "segments-unusable", "a segment is not in a confirmed block "
                               "owned by the calling KME, or overlaps bits used before");
    case KS_CONFLICT:
        return kme_err_problem(e, 409, "key-conflict", "this reservation or a key of it is "
                               "already recorded with other content, or was voided");
    case KS_LIMIT:
        return kme_err_problem(e, 429, PEER_SLAVE_LIMIT_TYPE, "a slave holds too many unfetched "
                               "bits at this KME");
    case KS_EMPTY:
        return unavailable(e, "the QKD link to %s is short of key%s", next ? next : "?", "");
    default:
        return kme_err_problem(e, 503, "internal", "key store error: %s", ks_result_str(rc));
    }
}

/* Not the last KME: seal, send downstream, answer after it answered. */
static void forward(peer_service *ps, const pw_relay *r, const ks_relay_in *in, const char *next,
                    int64_t t0, kme_reply *out)
{
    kme_err e;
    char reason[256];
    int64_t budget = r->timeout_ms < ps->cfg->peer_timeout_ms ? r->timeout_ms
                                                               : ps->cfg->peer_timeout_ms;
    int64_t left = budget - (mono_ms() - t0) - RELAY_MARGIN_MS;
    if (peer_check_answering(ps, next, reason, sizeof reason) != 0) {
        unavailable(&e, "%s%s", reason, "");
        return pw_reply_problem(out, &e);
    }
    if (left < 10) {
        unavailable(&e, "no time left to reach %s%s", next, "");
        return pw_reply_problem(out, &e);
    }
    if (!peer_map_agrees(ps, next)) {
        unavailable(&e, "KME %s has not confirmed this network map's version%s", next, "");
        return pw_reply_problem(out, &e);
    }
    ks_relay_out o;
    memset(&o, 0, sizeof o);
    ks_result rc = ks_relay_forward(ps->ks, in, next, in->aad, in->aad_len, &o);
    if (rc != KS_OK) {
        store_refusal(&e, rc, next);
        return pw_reply_problem(out, &e);
    }
    if (!o.cipher) { /* a repeat of a relay our downstream applied: nothing to send */
        ks_relay_out_free(&o);
        return pw_reply_ok(out, r->id, "applied");
    }
    if (tamper_hook() && o.cipher_len)
        o.cipher[0] ^= 0x01;
    char *text = pw_relay_sealed_text(r, left, o.pad, o.npad, o.cipher, o.cipher_len, o.tag);
    ks_relay_out_free(&o);
    peer_answer a = { 0 };
    peer_pool *pool = peer_pool_of(ps, next);
    int sent = text && pool ? peer_post(ps, pool, PATH_RELAY, text, (long)left, &a, NULL) : -1;
    free(text);
    if (sent == 0) {
        rc = ks_relay_done(ps->ks, r->id, true);
        metrics_relay(METRICS_RELAY_TRUSTED, rc == KS_OK ? METRICS_RELAY_DELIVERED
                                                         : METRICS_RELAY_REFUSED);
        if (rc == KS_OK)
            return pw_reply_ok(out, r->id, "applied");
        kme_err_problem(&e, 409, "voided", "the reservation was voided while it was relayed");
        return pw_reply_problem(out, &e);
    }
    if (ks_relay_done(ps->ks, r->id, false) != KS_OK)
        log_error("relay to %s failed and could not be marked void; it becomes one at the next "
                  "start", next);
    peer_void_wake(ps);
    metrics_relay(METRICS_RELAY_TRUSTED, a.http == 409 && strcmp(a.type, "tampered") == 0
                                             ? METRICS_RELAY_TAMPERED
                                         : a.http == 0 || a.http == 503 ? METRICS_RELAY_UNAVAILABLE
                                                                        : METRICS_RELAY_REFUSED);
    log_info("relay: KME %s did not take a relayed key: %s", next, a.reason);
    if (a.http == 429 && strcmp(a.type, PEER_SLAVE_LIMIT_TYPE) == 0)
        /* the slave's KME holds enough for it: no other path helps; the
         * origin answers 503 with Retry-After (docs/network.md §5) */
        kme_err_problem(&e, 429, PEER_SLAVE_LIMIT_TYPE, "%s", a.message[0] ? a.message : a.reason);
    else
        unavailable(&e, "KME %s: %s", next, a.http ? a.message[0] ? a.message : a.reason : a.reason);
    pw_reply_problem(out, &e);
}

void peer_relay_handle(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    int64_t t0 = mono_ms();
    pw_relay r;
    kme_err e;
    const char *next = NULL;
    if (pw_read_relay(d, &r, &e) != 0 || relay_check(ps, caller, &r, &next, &e) != 0) {
        pw_relay_free(&r);
        return pw_reply_problem(out, &e);
    }
    size_t aad_len = 0;
    uint8_t *aad = relay_aad(&r, &aad_len);
    if (!aad) {
        pw_relay_free(&r);
        kme_err_problem(&e, 503, "internal", "out of memory");
        return pw_reply_problem(out, &e);
    }
    ks_relay_in in;
    relay_in_of(&r, caller, aad, aad_len, &in);
    if (next) {
        forward(ps, &r, &in, next, t0, out);
    } else {
        ks_result rc = ks_relay_deliver(ps->ks, &in);
        metrics_relay(METRICS_RELAY_LAST, rc == KS_OK ? METRICS_RELAY_DELIVERED
                                          : rc == KS_TAMPERED ? METRICS_RELAY_TAMPERED
                                                              : METRICS_RELAY_REFUSED);
        if (rc == KS_OK)
            pw_reply_ok(out, r.id, "applied");
        else {
            if (rc == KS_TAMPERED)
                log_warn("relay from %s: the one-time tag of a relayed key did not verify; "
                         "refused (the key is voided end to end)", caller);
            store_refusal(&e, rc, NULL);
            pw_reply_problem(out, &e);
        }
    }
    free(aad);
    pw_relay_free(&r);
}

/* ---- client: hop 1 from the origin ------------------------------------- */

int peer_relay(peer_service *ps, const char *const *path, size_t npath, const ks_reservation *r,
               const char *master, const char *const *slaves, size_t nslaves, long timeout_ms,
               char *reason, size_t reason_len)
{
    peer_pool *p = npath >= 3 ? peer_pool_of(ps, path[1]) : NULL;
    if (!p) {
        snprintf(reason, reason_len, "KME %s is not a configured peer", npath >= 2 ? path[1] : "?");
        return -1;
    }
    char *text = pw_relay_first_text(r, master, slaves, nslaves, path, npath, timeout_ms);
    if (!text) {
        snprintf(reason, reason_len, "out of memory");
        return -1;
    }
    peer_answer a = { 0 };
    int rc = peer_post(ps, p, PATH_RELAY, text, timeout_ms, &a, NULL);
    free(text);
    if (rc == 0)
        return 0;
    snprintf(reason, reason_len, "%s", a.http && a.message[0] ? a.message : a.reason);
    if (a.http == 503 && strcmp(a.type, PEER_RELAY_UNAVAILABLE_TYPE) == 0)
        return PEER_RELAY_UNAVAILABLE;
    if (a.http == 429 && strcmp(a.type, PEER_SLAVE_LIMIT_TYPE) == 0)
        return PEER_SLAVE_LIMIT;
    return a.http ? -1 : PEER_RELAY_UNAVAILABLE; /* no answer: another path may serve */
}
