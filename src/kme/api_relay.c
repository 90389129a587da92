/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_relay.c - `status` and `enc_keys` for a slave behind a KME that is
 * not a neighbour: reached through trusted nodes (docs/network.md).
 *
 * The routing table (route.h, built once from the network map) gives up
 * to four paths; each request ranks them by the stock of their first hop
 * and tries them in turn within the one peer timeout of the call: a path
 * whose first hop is not answering or short of key is skipped before any
 * bit is taken; a path that is not the last one left gets half the time
 * that is left; one whose later hop answers "relay-unavailable" is voided
 * (its bits burned, I5) and the next is tried.  The key itself comes from
 * the first link (ks_remote_enc, as for a neighbour) and travels with the
 * path (peer_relay); the answer comes only after the last KME stored it.
 *
 * `status` reports what the best current path can deliver as far as this
 * KME knows: the stock of its first hop and, when the first hop's KME has
 * told it (its GET /peer/v1/map, once a second), of the second; hops
 * beyond are not known here.  status_extension.path names the KMEs and
 * .link describes the first hop's link.  enc_keys tries first the paths
 * whose second hop is not known to be short, then the others: a path known
 * to be dry costs no bits of the first link unless nothing else is left.
 */
#include "kme/api.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/monotime.h"
#include "kme/events.h"
#include "kme/link_state.h"
#include "kme/metrics.h"
#include "kme/netmap.h"
#include "kme/peer.h"
#include "kme/relay_wire.h"
#include "kme/request.h"
#include "kme/route.h"

/* Own bits of the link to a first hop: the ranking score. */
static int64_t first_hop_stock(void *ud, const netmap_kme *next, const netmap_link *link)
{
    const kme_api *api = ud;
    (void)link;
    ks_link_stats ls;
    if (!kme_config_link_to(api->cfg, next->id) || ks_link_stats_get(api->ks, next->id, &ls) != KS_OK)
        return -1;
    return (int64_t)ls.own_bits;
}

/* The KME IDs of p into ids (room for RELAY_MAX_PATH). */
static size_t path_ids(const netmap *m, const route_path *p, const char **ids)
{
    size_t n = 0;
    for (size_t i = 0; i <= p->n_hops && n < RELAY_MAX_PATH; i++)
        ids[n++] = m->kmes[p->kme[i]].id;
    return n;
}

/* What the first hop of ids last said it holds towards the second: 0 and
 * *bits, or -1 when not known (a one-hop path, no report yet). */
static int second_hop_stock(const kme_api *api, const char *const *ids, size_t np, uint64_t *bits)
{
    return np >= 3 ? peer_stock_towards(api->peers, ids[1], ids[2], bits) : -1;
}

size_t api_relay_paths(const kme_api *api, const char *far_kme, const route_path **out)
{
    if (!api->routes)
        return 0;
    return route_rank(api->routes, far_kme, first_hop_stock, (void *)api, out);
}

int api_relay_status(const kme_api *api, const char *far_kme, uint64_t *avail, uint64_t *cap,
                     json_t **ext)
{
    const route_path *paths[ROUTE_MAX_PATHS];
    size_t n = api_relay_paths(api, far_kme, paths);
    *avail = *cap = 0;
    *ext = json_object();
    json_t *path = json_array();
    if (!*ext || !path) {
        json_decref(path);
        return -1;
    }
    json_object_set_new(*ext, "path", path);
    if (n == 0)
        return 0;
    const char *ids[RELAY_MAX_PATH];
    size_t np = path_ids(api->cfg->map, paths[0], ids);
    for (size_t i = 0; i < np; i++)
        json_array_append_new(path, json_string(ids[i]));
    const kme_link *l = kme_config_link_to(api->cfg, ids[1]);
    ks_link_stats ls;
    if (!l)
        return 0;
    if (ks_link_stats_get(api->ks, l->peer, &ls) != KS_OK)
        return -1;
    *avail = ls.own_bits;
    *cap = (uint64_t)l->pool_cap_bits;
    uint64_t second;
    if (second_hop_stock(api, ids, np, &second) == 0 && second < *avail)
        *avail = second;
    link_state *st = api->links ? api->links[l - api->cfg->links] : NULL;
    if (st)
        json_object_set_new(*ext, "link", link_state_status_json(st, mono_ms()));
    return 0;
}

/* One path, given until `until` (its share of the call's time): 0 keys
 * answered (out holds them), 1 try the next path (reason set), -1
 * answered with an error (out). */
static int try_path(const kme_api *api, const char *const *ids, size_t np, const char *caller,
                    const char *const *slaves, size_t nslaves, const kme_request *req,
                    int64_t until, char *reason, size_t rlen, kme_reply *out)
{
    const char *next = ids[1];
    long left = (long)(until - mono_ms());
    if (!kme_config_link_to(api->cfg, next)) {
        snprintf(reason, rlen, "no QKD link to %s", next);
        return 1;
    }
    if (peer_check_answering(api->peers, next, reason, rlen) != 0)
        return 1;
    if (!peer_map_agrees(api->peers, next)) {
        snprintf(reason, rlen, "KME %s has not confirmed our network map version", next);
        return 1;
    }
    ks_reservation r;
    memset(&r, 0, sizeof r);
    ks_result rc = ks_remote_enc(api->ks, next, caller, slaves, nslaves, (uint32_t)req->number,
                                 (uint32_t)req->size, &r);
    if (rc != KS_OK) {
        snprintf(reason, rlen, rc == KS_EMPTY ? "the QKD link to %s is short of key"
                                              : "key store error on the link to %s", next);
        ks_reservation_free(&r);
        return 1;
    }
    int sent = peer_relay(api->peers, ids, np, &r, caller, slaves, nslaves, left, reason, rlen);
    metrics_relay(METRICS_RELAY_ORIGIN, sent == 0 ? METRICS_RELAY_DELIVERED
                                        : sent == PEER_RELAY_UNAVAILABLE ? METRICS_RELAY_UNAVAILABLE
                                        : METRICS_RELAY_REFUSED);
    if (sent == 0 && (ks_remote_acked(api->ks, r.id) == KS_OK
                      || ks_remote_confirmed(api->ks, r.id) == KS_OK)) {
        api_render_keys(out, &r.keys, true);
        ks_reservation_free(&r);
        return 0;
    }
    if (ks_remote_failed(api->ks, r.id) != KS_OK)
        log_error("enc_keys: a failed relay via %s could not be marked void; it becomes one at "
                  "the next start", next);
    peer_void_wake(api->peers);
    ks_reservation_free(&r);
    if (sent == PEER_RELAY_UNAVAILABLE)
        return 1;
    char msg[400];
    snprintf(msg, sizeof msg, "the relay via KME %s did not deliver the keys: %s", next,
             sent == 0 ? "its acknowledgement could not be recorded" : reason);
    reply_error(out, 503, sent == PEER_SLAVE_LIMIT ? reason : msg);
    if (sent == PEER_SLAVE_LIMIT)
        out->retry_after_s = 1;
    return -1;
}

void api_relay_enc(const kme_api *api, const char *far_kme, const char *caller,
                   const char *const *slaves, size_t nslaves, const kme_request *req,
                   kme_reply *out)
{
    int64_t deadline = mono_ms() + api->cfg->peer_timeout_ms;
    char reason[256] = "no path in the network map", msg[400];
    uint64_t bytes = (uint64_t)req->number * (uint64_t)req->size / 8;
    if (bytes > PEER_MAX_RELAY_BYTES) {
        snprintf(msg, sizeof msg, "a request for an SAE behind KME %s (reached by relay) may ask "
                 "for at most %d bits in all", far_kme, PEER_MAX_RELAY_BYTES * 8);
        reply_error(out, 400, msg);
        return;
    }
    if (!api->peers) {
        reply_error(out, 503, "this KME has no KME-to-KME channel: no relay");
        return;
    }
    const route_path *paths[ROUTE_MAX_PATHS];
    size_t n = api_relay_paths(api, far_kme, paths);
    const char *ids[ROUTE_MAX_PATHS][RELAY_MAX_PATH];
    size_t np[ROUTE_MAX_PATHS];
    bool dry[ROUTE_MAX_PATHS];
    for (size_t i = 0; i < n; i++) {
        uint64_t second;
        np[i] = path_ids(api->cfg->map, paths[i], ids[i]);
        dry[i] = second_hop_stock(api, ids[i], np[i], &second) == 0
                 && second < bytes * 8 + RELAY_MAC_KEY_BYTES * 8; /* key and MAC key */
    }
    /* pass 0: paths not known to be dry; pass 1: the others.  A path that
     * is not the last one left gets half of the time that is left, so that
     * a KME on it that hangs (rather than refusing) leaves time for the
     * next path; the last one gets all of it. */
    size_t tried = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n && mono_ms() < deadline; i++) {
            if (dry[i] != (pass == 1))
                continue;
            int64_t now = mono_ms();
            int64_t until = ++tried < n ? now + (deadline - now) / 2 : deadline;
            int rc = try_path(api, ids[i], np[i], caller, slaves, nslaves, req, until, reason,
                              sizeof reason, out);
            if (rc <= 0) {
                log_debug("enc_keys: %s -> %s via %s: %d", caller, slaves[0], ids[i][1], out->http);
                return;
            }
            log_info("enc_keys: %s -> %s: path via %s did not serve: %s", caller, slaves[0],
                     ids[i][1], reason);
        }
    snprintf(msg, sizeof msg, "no path to KME %s can serve the keys now (%s); no keys were made",
             far_kme, reason);
    reply_error(out, 503, msg);
}
