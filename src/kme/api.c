/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c - the ETSI GS QKD 014 handlers: status, enc_keys, dec_keys.
 *
 * Order of work in every handler: parse and validate the request completely
 * (request.c), then check who may ask for what (the path SAE ID must be
 * another SAE this KME knows), then touch the key store, then render.  A key
 * store call returns only after its transaction is durable, so the answer
 * rendered here never promises a key that a crash could take back.
 *
 * Remote pairs (the slave is attached to a peer KME, docs/kme-pair.md):
 * enc_keys reserves bits of our own link blocks in one transaction
 * (ks_remote_enc), sends the peer the reservation with no lock held
 * (peer.c; concurrent ones travel together in one batch request), and
 * answers the keys once the peer acknowledged it (the peer commits first;
 * our outbox entry is dropped by a later transaction, and after a crash
 * the peer is asked what became of it); otherwise the bits are burned (I5)
 * and the SAE gets a 503 within the peer timeout.
 *
 * Key containers are written by hand into one secret buffer rather than
 * through jansson, so that no copy of a base64 key is left in freed heap
 * memory: the buffer is wiped once the HTTP layer has sent it.
 */
#include "kme/api.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/monotime.h"
#include "common/uuid.h"
#include "kme/events.h"
#include "kme/metrics.h"
#include "kme/link_state.h"
#include "kme/peer.h"
#include "kme/request.h"
#include "kme/reuse_watch.h"
#include "kme/route.h"
#include "kme/sae_rate.h"

/* A slave's unfetched keys go when it fetches them, which may be at once:
 * ask again after a second. */
#define UNFETCHED_RETRY_S 1u

/* Multicast to slaves behind different KMEs is refused: one key would have
 * to reach several KMEs by several relays, and no single answer could
 * promise that every one of them stored it (docs/network.md §3). */
#define MSG_RELAY "additional_slave_SAE_IDs must sit behind the same KME as the slave " \
                  "(multicast to slaves behind different KMEs is not supported)"

static void api_error_from(kme_reply *out, kme_err *err)
{
    json_t *o = json_pack("{s:s}", "message", err->message);
    if (o && err->details)
        json_object_set(o, "details", err->details);
    reply_json(out, err->http, o);
    json_decref(o);
}


/* The limits every pair on this KME is served under. */
static kme_limits pair_limits(const kme_config *cfg, bool from_qkd)
{
    kme_limits l = {
        .key_size = cfg->key_size,
        .min_key_size = cfg->min_key_size,
        .max_key_size = cfg->max_key_size,
        .max_key_per_request = cfg->max_key_per_request,
        .max_sae_id_count = cfg->max_sae_id_count,
        .keys_from_qkd = from_qkd,
    };
    return l;
}

/* The other party named in the path must be another SAE known here. */
static int check_peer_sae(const kme_api *api, const char *caller, const char *peer,
                          const char *role, kme_err *err)
{
    if (strcmp(peer, caller) == 0) {
        kme_err_set(err, 400, "%s SAE ID in the path must differ from the caller's own SAE ID", role);
        return -1;
    }
    if (!kme_config_is_local_sae(api->cfg, peer) && !kme_config_peer_of_sae(api->cfg, peer)
        && !kme_config_far_kme_of_sae(api->cfg, peer)) {
        kme_err_set(err, 400, "%s SAE ID is not known to this KME", role);
        return -1;
    }
    return 0;
}

static int32_t clamp_i32(uint64_t v)
{
    return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* The QKD link to this peer (blocks we can allocate from), or NULL. */
static const kme_link *linked_to(const kme_config *cfg, const kme_peer *peer)
{
    return kme_config_link_to(cfg, peer->id);
}

/* The link state of link l (cfg->links[i]), or NULL. */
static struct link_state *state_of_link(const kme_api *api, const kme_link *l)
{
    return api->links && l ? api->links[l - api->cfg->links] : NULL;
}

/* Pool level and capacity in bits for master -> slave: the local CSPRNG
 * pool, or our own confirmed link blocks for a remote slave. */
static int pool_bits(const kme_api *api, const kme_peer *remote, uint64_t *avail, uint64_t *cap)
{
    if (remote) {
        ks_link_stats ls = { 0 };
        const kme_link *l = linked_to(api->cfg, remote);
        if (!l) {
            *avail = *cap = 0; /* a peer without a link: no keys to it */
            return 0;
        }
        if (ks_link_stats_get(api->ks, l->peer, &ls) != KS_OK)
            return -1;
        *avail = ls.own_bits;
        *cap = (uint64_t)l->pool_cap_bits;
        return 0;
    }
    ks_stats st;
    if (ks_stats_get(api->ks, &st) != KS_OK)
        return -1;
    *avail = st.local_available_bits;
    *cap = st.local_cap_bits;
    return 0;
}

static void handle_status(const kme_api *api, const char *caller, kme_request *req,
                          kme_reply *out)
{
    const kme_config *cfg = api->cfg;
    kme_err err = { 0 };
    if (check_peer_sae(api, caller, req->sae_id, "slave", &err) != 0) {
        api_error_from(out, &err);
        kme_err_clear(&err);
        return;
    }
    const kme_peer *remote = kme_config_peer_of_sae(cfg, req->sae_id);
    const char *far = kme_config_far_kme_of_sae(cfg, req->sae_id);
    uint64_t avail, cap;
    json_t *ext = NULL;
    if (far ? api_relay_status(api, far, &avail, &cap, &ext) != 0
            : pool_bits(api, remote, &avail, &cap) != 0) {
        json_decref(ext);
        reply_error(out, 503, "key data access error");
        return;
    }
    uint64_t ks = (uint64_t)cfg->key_size;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "source_KME_ID", cfg->id,
        "target_KME_ID", far ? far : remote ? remote->id : cfg->id,
        "master_SAE_ID", caller,
        "slave_SAE_ID", req->sae_id,
        "key_size", (json_int_t)cfg->key_size,
        "stored_key_count", (json_int_t)clamp_i32(avail / ks),
        "max_key_count", (json_int_t)clamp_i32(cap / ks),
        "max_key_per_request", (json_int_t)cfg->max_key_per_request,
        "max_key_size", (json_int_t)cfg->max_key_size,
        "min_key_size", (json_int_t)cfg->min_key_size,
        "max_SAE_ID_count", (json_int_t)cfg->max_sae_id_count);
    struct link_state *ls = remote ? state_of_link(api, linked_to(cfg, remote)) : NULL;
    if (o && ext) /* the path and its first hop's link (docs/network.md) */
        json_object_set_new(o, "status_extension", ext);
    else if (o && ls) /* the link's physics (docs/kme.md) */
        json_object_set_new(o, "status_extension", link_state_status_json(ls, mono_ms()));
    else
        json_decref(ext);
    reply_json(out, 200, o);
    json_decref(o);
}

/* {"keys":[{"key_ID":"...","key":"..."},...]} into one secret buffer;
 * counted as delivered by enc_keys (enc) or dec_keys (metrics.h). */
void api_render_keys(kme_reply *out, const ks_batch *b, bool enc)
{
    static const char head[] = "{\"keys\":[", tail[] = "]}";
    static const char k1[] = "{\"key_ID\":\"", k2[] = "\",\"key\":\"", k3[] = "\"}";
    size_t need = sizeof head + sizeof tail;
    for (size_t i = 0; i < b->n; i++)
        need += sizeof k1 + UUID_STR_LEN + sizeof k2 + b64_encoded_len(b->keys[i].size_bits / 8) + sizeof k3 + 1;
    if (secret_alloc(&out->body, need) != 0) {
        reply_error(out, 503, "out of memory");
        return;
    }
    char *p = (char *)out->body.data;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    for (size_t i = 0; i < b->n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, k1, sizeof k1 - 1);
        p += sizeof k1 - 1;
        char id[UUID_STR_LEN + 1];
        uuid_format(b->keys[i].id, id);
        memcpy(p, id, UUID_STR_LEN);
        p += UUID_STR_LEN;
        memcpy(p, k2, sizeof k2 - 1);
        p += sizeof k2 - 1;
        size_t bytes = b->keys[i].size_bits / 8;
        b64_encode(b->keys[i].material, bytes, p);
        p += b64_encoded_len(bytes);
        memcpy(p, k3, sizeof k3 - 1);
        p += sizeof k3 - 1;
    }
    memcpy(p, tail, sizeof tail - 1);
    p += sizeof tail - 1;
    out->body.len = (size_t)(p - (char *)out->body.data);
    out->http = 200;
    out->has_keys = true;
    uint64_t bytes = 0;
    for (size_t i = 0; i < b->n; i++)
        bytes += b->keys[i].size_bits / 8;
    metrics_keys(enc, b->n, bytes);
}

/* Every additional slave must be known and sit where the slave sits
 * (remote: behind the same peer, far: behind the same KME reached by
 * relay, neither: here). */
static int check_additional_slaves(const kme_api *api, const kme_request *req,
                                   const kme_peer *remote, const char *far, kme_err *err)
{
    for (size_t i = 0; i < req->n_additional; i++) {
        const char *id = req->additional[i];
        const kme_peer *behind = kme_config_peer_of_sae(api->cfg, id);
        const char *far_i = kme_config_far_kme_of_sae(api->cfg, id);
        if (!behind && !far_i && !kme_config_is_local_sae(api->cfg, id)) {
            kme_err_set(err, 400, "additional_slave_SAE_IDs[%zu] is not known to this KME", i);
            return -1;
        }
        if (behind != remote || (far_i != far && (!far_i || !far || strcmp(far_i, far) != 0))) {
            kme_err_set(err, 400, MSG_RELAY);
            return -1;
        }
    }
    return 0;
}

/* The slave and the additional slaves, in request order. */
static size_t slave_list(const kme_request *req, const char **slaves)
{
    size_t n = 0;
    slaves[n++] = req->sae_id;
    for (size_t i = 0; i < req->n_additional; i++)
        slaves[n++] = req->additional[i];
    return n;
}

/* After ks_remote_enc: have the peer record the keys, then answer them; on
 * any failure burn them (the replay thread tells the peer) and answer 503. */
static void finish_remote(const kme_api *api, const kme_peer *peer, const char *caller,
                          const char *const *slaves, size_t nslaves, ks_reservation *r,
                          kme_reply *out)
{
    char reason[256], msg[400];
    int sent = peer_reserve(api->peers, peer->id, r, caller, slaves, nslaves, reason, sizeof reason);
    if (sent == 0) {
        /* The peer holds the keys durably: answer now.  The outbox entry
         * is dropped by a later transaction; a crash before that leaves it
         * pending, and the restart asks the peer, which says "applied". */
        if (ks_remote_acked(api->ks, r->id) == KS_OK
            || ks_remote_confirmed(api->ks, r->id) == KS_OK) {
            metrics_reservation((size_t)(peer - api->cfg->peers), METRICS_RESV_ACKNOWLEDGED);
            api_render_keys(out, &r->keys, true);
            return;
        }
        snprintf(reason, sizeof reason, "the peer's acknowledgement could not be recorded");
    }
    if (ks_remote_failed(api->ks, r->id) != KS_OK)
        log_error("enc_keys: a failed reservation for KME %s could not be marked void; "
                  "it becomes one at the next start", peer->id);
    peer_void_wake(api->peers);
    metrics_reservation((size_t)(peer - api->cfg->peers),
                        sent == PEER_SLAVE_LIMIT ? METRICS_RESV_REFUSED : METRICS_RESV_FAILED);
    if (sent == PEER_SLAVE_LIMIT) {
        /* the peer's own words: it holds the slave's keys and its limit */
        log_info("enc_keys: %s -> %s: refused by peer KME %s: %s", caller, slaves[0], peer->id,
                 reason);
        reply_error(out, 503, reason);
        out->retry_after_s = UNFETCHED_RETRY_S;
        return;
    }
    log_warn("enc_keys: %s -> %s: peer KME %s did not confirm %zu keys: %s", caller, slaves[0],
             peer->id, r->keys.n, reason);
    snprintf(msg, sizeof msg, "peer KME %s did not confirm the keys: %s", peer->id, reason);
    reply_error(out, 503, msg);
}

/* enc_keys for a slave attached to a peer KME (request already validated). */
static void remote_enc(const kme_api *api, const kme_peer *peer, const char *caller,
                       const kme_request *req, kme_reply *out)
{
    char msg[320];
    if (!api->peers || !linked_to(api->cfg, peer)) {
        snprintf(msg, sizeof msg, "no QKD link to KME %s: keys for its SAEs cannot be made here", peer->id);
        reply_error(out, 503, msg);
        return;
    }
    if (peer_check_answering(api->peers, peer->id, msg, sizeof msg) != 0) {
        reply_error(out, 503, msg);
        return;
    }
    const char *slaves[1 + KME_MAX_SAE_ID_COUNT];
    size_t nslaves = slave_list(req, slaves);
    ks_reservation r;
    memset(&r, 0, sizeof r);
    ks_result rc = ks_remote_enc(api->ks, peer->id, caller, slaves, nslaves, (uint32_t)req->number,
                                 (uint32_t)req->size, &r);
    if (rc == KS_OK) {
        finish_remote(api, peer, caller, slaves, nslaves, &r, out);
        log_debug("enc_keys: %s -> %s at %s (+%zu): %" PRId64 " keys of %" PRId64 " bits: %d",
                  caller, req->sae_id, peer->id, req->n_additional, req->number, req->size, out->http);
    } else if (rc == KS_EMPTY) {
        events_pool_exhausted(caller, req->sae_id, peer->id, (uint64_t)req->number * (uint64_t)req->size);
        reply_error(out, 503, "not enough key material available for this request");
    } else {
        reply_error(out, 503, "key data access error");
    }
    ks_reservation_free(&r);
}

static void local_enc(const kme_api *api, const char *caller, const kme_request *req,
                      uint64_t need, kme_reply *out);

/* 503 naming the per-slave limit the first slave over it reached. */
static void reply_unfetched_limit(const kme_api *api, const char *const *slaves, size_t nslaves,
                                  uint64_t need, kme_reply *out)
{
    uint64_t limit = ks_unfetched_limit(api->ks), held = 0;
    const char *who = slaves[0];
    for (size_t i = 0; i < nslaves; i++)
        if (ks_unfetched_get(api->ks, slaves[i], &held) == KS_OK && held + need > limit) {
            who = slaves[i];
            break;
        }
    char msg[320];
    snprintf(msg, sizeof msg, MSG_UNFETCHED_LIMIT, limit, who, UNFETCHED_RETRY_S);
    reply_error(out, 503, msg);
    out->retry_after_s = UNFETCHED_RETRY_S;
}

/* The caller's token bucket: 0 when the request may go on (its bits are
 * taken), -1 with the answer in out otherwise. */
static int take_rate(const kme_api *api, const char *caller, uint64_t bits, kme_reply *out)
{
    unsigned retry = 0;
    char msg[320];
    switch (sae_rate_take(api->rate, caller, bits, mono_ms(), &retry)) {
    case SAE_RATE_OK:
        return 0;
    case SAE_RATE_TOO_LARGE:
        snprintf(msg, sizeof msg, "request of %" PRIu64 " bits exceeds the per-SAE burst "
                 "sae_burst_bits (%" PRId64 " bits)", bits, api->cfg->sae_burst_bits);
        reply_error(out, 400, msg);
        return -1;
    case SAE_RATE_LIMITED:
        break;
    }
    snprintf(msg, sizeof msg, MSG_RATE_LIMIT, api->cfg->sae_rate_bps, caller, retry);
    reply_error(out, 503, msg);
    out->retry_after_s = retry;
    events_rate_limited(caller, bits, retry);
    log_info("enc_keys: %s: rate limit reached (%" PRIu64 " bits asked)", caller, bits);
    return -1;
}

int api_init(kme_api *api)
{
    const kme_config *cfg = api->cfg;
    /* the pairs stay as long as their keys could have: key_ttl */
    api->reuse = NULL;
    if (cfg->key_reuse_window > 0 &&
        !(api->reuse = reuse_watch_new((size_t)cfg->key_reuse_window,
                                       (int64_t)cfg->key_ttl * 1000))) {
        log_error("out of memory for key_reuse_window (%" PRId64 " keys)",
                  cfg->key_reuse_window);
        return -1;
    }
    char why[256];
    api->routes = NULL;
    if (cfg->map && route_build(cfg->map, cfg->id, &api->routes, why, sizeof why) != 0) {
        log_error("network map %s: %s", cfg->network_map, why);
        reuse_watch_free(api->reuse);
        api->reuse = NULL;
        return -1;
    }
    api->rate = sae_rate_new((const char *const *)cfg->local_saes, cfg->n_local_saes,
                             (uint64_t)cfg->sae_rate_bps, (uint64_t)cfg->sae_burst_bits, mono_ms());
    if (!api->rate || metrics_init(cfg) != 0) {
        log_error("out of memory for the per-SAE rate limits and the metrics");
        sae_rate_free(api->rate);
        api->rate = NULL;
        reuse_watch_free(api->reuse);
        api->reuse = NULL;
        route_free(api->routes);
        api->routes = NULL;
        return -1;
    }
    return 0;
}

void api_free(kme_api *api)
{
    route_free(api->routes);
    api->routes = NULL;
    reuse_watch_free(api->reuse);
    api->reuse = NULL;
    sae_rate_free(api->rate);
    api->rate = NULL;
    metrics_free();
}

static void handle_enc_keys(const kme_api *api, const char *caller, kme_request *req,
                            kme_reply *out)
{
    kme_err err = { 0 };
    const kme_peer *remote = kme_config_peer_of_sae(api->cfg, req->sae_id);
    const char *far = kme_config_far_kme_of_sae(api->cfg, req->sae_id);
    kme_limits lim = pair_limits(api->cfg, remote != NULL || far != NULL);
    if (check_peer_sae(api, caller, req->sae_id, "slave", &err) != 0
        || kme_request_validate_enc(req, &lim, caller, &err) != 0
        || check_additional_slaves(api, req, remote, far, &err) != 0) {
        api_error_from(out, &err);
        kme_err_clear(&err);
        return;
    }
    /* validated: number <= max_key_per_request, size <= max_key_size */
    uint64_t need = (uint64_t)req->number * (uint64_t)req->size;
    if (take_rate(api, caller, need, out) != 0)
        return;
    if (far) {
        const char *slaves[1 + KME_MAX_SAE_ID_COUNT];
        size_t nslaves = slave_list(req, slaves);
        api_relay_enc(api, far, caller, slaves, nslaves, req, out);
    } else if (remote) {
        remote_enc(api, remote, caller, req, out);
    } else {
        local_enc(api, caller, req, need, out);
    }
    if (out->http != 200) /* nothing delivered: the bits were not taken */
        sae_rate_refund(api->rate, caller, need);
}

/* enc_keys for a slave attached here (request already validated). */
static void local_enc(const kme_api *api, const char *caller, const kme_request *req,
                      uint64_t need, kme_reply *out)
{
    /* validate_enc bounded n_additional by max_sae_id_count, which the
     * configuration bounds by KME_MAX_SAE_ID_COUNT. */
    const char *slaves[1 + KME_MAX_SAE_ID_COUNT];
    size_t nslaves = slave_list(req, slaves);

    ks_batch b = { 0 };
    ks_result r = ks_local_enc(api->ks, caller, slaves, nslaves, (uint32_t)req->number,
                               (uint32_t)req->size, &b);
    if (r == KS_OK) {
        api_render_keys(out, &b, true);
        log_debug("enc_keys: %s -> %s (+%zu): %" PRId64 " keys of %" PRId64 " bits",
                  caller, req->sae_id, req->n_additional, req->number, req->size);
    } else if (r == KS_EMPTY) {
        events_pool_exhausted(caller, req->sae_id, NULL, need);
        reply_error(out, 503, "not enough key material available for this request");
    } else if (r == KS_LIMIT) {
        reply_unfetched_limit(api, slaves, nslaves, need, out);
    } else {
        reply_error(out, 503, "key data access error");
    }
    ks_batch_free(&b);
}

/* dec_keys answered "not found": keys this slave got before are a reuse
 * attempt, a security violation (events.h: counted, logged, audited);
 * the SAE's answer stays the same. */
static void report_reuse(const kme_api *api, const char *caller, const kme_request *req)
{
    size_t seen = reuse_watch_seen(api->reuse, caller, (const uint8_t (*)[16])req->key_ids,
                                   req->n_key_ids, mono_ms());
    if (seen > 0)
        events_key_reuse(caller, req->sae_id, seen);
}

static void handle_dec_keys(const kme_api *api, const char *caller, kme_request *req,
                            kme_reply *out)
{
    if (strcmp(req->sae_id, caller) == 0) {
        reply_error(out, 400, "master SAE ID in the path must differ from the caller's own SAE ID");
        return;
    }
    ks_batch b = { 0 };
    ks_result r = ks_dec(api->ks, req->sae_id, caller,
                         (const uint8_t (*)[16])req->key_ids, req->n_key_ids, &b);
    switch (r) {
    case KS_OK:
        api_render_keys(out, &b, false);
        reuse_watch_delivered(api->reuse, caller, (const uint8_t (*)[16])req->key_ids,
                              req->n_key_ids, mono_ms());
        log_debug("dec_keys: %s <- %s: %zu keys", caller, req->sae_id, b.n);
        break;
    case KS_NOT_FOUND:
        report_reuse(api, caller, req);
        reply_error(out, 400, MSG_KEYS_NOT_FOUND);
        break;
    case KS_UNAUTHORIZED:
        events_not_a_slave(caller, req->sae_id, req->n_key_ids);
        reply_error(out, 401, MSG_UNAUTHORIZED);
        break;
    default:
        reply_error(out, 503, "key data access error");
        break;
    }
    ks_batch_free(&b);
}

const char *api_identify(void *ctx, const char *cn, const char *uri_san)
{
    const kme_api *api = ctx;
    const char *id = api->cfg->identity == KME_ID_CN ? cn : uri_san;
    return id && kme_config_is_local_sae(api->cfg, id) ? id : NULL;
}

_Static_assert((int)METRICS_EP_STATUS == (int)KME_EP_STATUS && (int)METRICS_EP_ENC_KEYS == (int)KME_EP_ENC_KEYS
               && (int)METRICS_EP_DEC_KEYS == (int)KME_EP_DEC_KEYS, "metrics.h numbers endpoints as request.h");

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void api_refused(void *ctx, const char *raw_uri, int http)
{
    (void)ctx;
    metrics_request(metrics_endpoint_of(raw_uri), http, 0);
}

void api_handle(void *ctx, const char *caller, const char *method,
                const char *raw_uri, const char *body, size_t body_len,
                kme_reply *out)
{
    const kme_api *api = ctx;
    int64_t start = now_ns();
    memset(out, 0, sizeof *out);
    kme_request req;
    kme_err err = { 0 };
    if (kme_request_parse(method, raw_uri, body, body_len, &req, &err) != 0) {
        api_error_from(out, &err);
        if (out->http == 405)
            out->allow = kme_request_allowed_methods(raw_uri);
        kme_err_clear(&err);
        metrics_request(metrics_endpoint_of(raw_uri), out->http, now_ns() - start);
        return;
    }
    switch (req.ep) {
    case KME_EP_STATUS:
        handle_status(api, caller, &req, out);
        break;
    case KME_EP_ENC_KEYS:
        handle_enc_keys(api, caller, &req, out);
        break;
    case KME_EP_DEC_KEYS:
        handle_dec_keys(api, caller, &req, out);
        break;
    }
    /* counted before the listener sends the answer: a scrape after it sees it */
    metrics_request((metrics_endpoint)req.ep, out->http, now_ns() - start);
    kme_request_clear(&req);
}
