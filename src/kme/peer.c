/*
 * peer.c - the KME-to-KME channel (docs/kme-pair.md, "Remote enc_keys"):
 * the [peer_api] listener's handler, the client pools that send
 * reservations and voids to peers, and the void replay thread.
 *
 * The wire format (paths, bodies, answers) and its strict readers are in
 * peer_wire.h.  A batch body of the wrong shape is a 400 and nothing is
 * applied; otherwise all reservations are applied in one key store call,
 * each under its own savepoint (ks_reservation_apply_batch), and a batch
 * never names one reservation ID twice (the repeat is refused, 400).  A KME
 * restarting after a crash asks POST /peer/v1/reservation-state about
 * every reservation it had in flight (the replay thread, below), since it
 * answers masters without waiting for its own record of the peer's
 * acknowledgement.
 *
 * The client sends a lone reservation as a single request and concurrent
 * ones to the same peer as a batch (the batcher, below).
 *
 * Answers: 200 {"reservation_ID": UUID, "status": "applied" | "voided"}; an
 * error is a problem-detail style object {"type": t, "status": code,
 * "message": text}: 400 bad-request, 403 no-link (the caller shares no QKD
 * link with us, so its segments cannot name our blocks), 404, 405,
 * 409 segments-unusable (a segment is not in a confirmed block owned by the
 * caller, or overlaps bits used before: no key was made, the caller must
 * burn the reservation) and 409 key-conflict (a key ID already recorded
 * with other content), 503 internal.
 */
#include "kme/peer.h"
#include "kme/api.h"

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
#include "kme/peer_wire.h"

#define PATH_RESERVATIONS "/peer/v1/reservations"
#define PATH_VOIDS "/peer/v1/voids"
#define PATH_BATCH "/peer/v1/reservation-batch"
#define PATH_STATE "/peer/v1/reservation-state"
#define POOL_MAX 32                /* idle connections kept per peer: as many as
                                    * requests in flight, else a burst closes
                                    * some and the next burst pays handshakes */
#define MAX_RESPONSE 65536         /* a peer's answer is small JSON */
#define ID_MAX 256
#define REPLAY_MIN_MS 100
#define REPLAY_MAX_MS 5000
#define REPLAY_IDLE_MS 1000        /* look for voids at least this often */
#define REJECT_RETRY_MS 20         /* first pause before re-sending after segments-unusable */

/* ===================================================================
 * Server: the [peer_api] handler
 * =================================================================== */

/* Map a key store outcome for a reservation or void to a refusal (-1), or
 * 0 for KS_OK. */
static int store_fail(perr *e, ks_result r)
{
    switch (r) {
    case KS_OK:
        return 0;
    case KS_REJECTED:
        return perr_set(e, 409, "segments-unusable", "a segment is not in a confirmed block "
                        "owned by the calling KME, or overlaps bits used before: no key was "
                        "recorded");
    case KS_CONFLICT:
        return perr_set(e, 409, "key-conflict", "a key ID of this reservation is already "
                        "recorded with other content: nothing was recorded");
    default:
        return perr_set(e, 503, "internal", "key store error: %s", ks_result_str(r));
    }
}

/* Map a key store outcome for a reservation or void to an answer. */
static void answer_store(kme_reply *out, ks_result r, const uint8_t id[16], const char *ok_status)
{
    perr e;
    if (store_fail(&e, r) == 0)
        pw_reply_ok(out, id, ok_status);
    else
        pw_reply_problem(out, &e);
}

struct peer_service {
    const kme_config *cfg;
    keystore *ks;
    listener *http;
    struct peer_pool *pools;       /* one per cfg->peers[i] */
    size_t npools;
    /* replay thread */
    pthread_t replay;
    bool replay_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, wake;
};

/* Blocks are shared with the KME at the other end of our link only. */
static int check_link_peer(const kme_config *cfg, const char *caller, perr *e)
{
    if (!cfg->has_link || strcmp(cfg->link_peer, caller) != 0)
        return perr_set(e, 403, "no-link", "KME %s shares no QKD link with this KME", caller);
    return 0;
}

/* A reservation refused by the per-slave limit (KS_LIMIT): 429
 * slave-limit, naming the first slave over the limit.  The master's KME
 * passes the message to its SAE, so it is the SAE API's own text. */
static int resv_fail(keystore *ks, perr *e, ks_result rc, const pw_resv *r)
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
    return perr_set(e, 429, PEER_SLAVE_LIMIT_TYPE, MSG_UNFETCHED_LIMIT, limit, who, 1u);
}

static void handle_reservation(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    pw_resv r = { 0 };
    perr e;
    if (pw_read_reservation(d, NULL, "reservation", ps->cfg, caller, &r, &e) != 0) {
        pw_reply_problem(out, &e);
        pw_resv_free(&r);
        return;
    }
    ks_result rc = ks_reservation_apply(ps->ks, r.id, r.master, r.slaves, r.nslaves, r.expires,
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
    perr e;                        /* e.http == 0: read, to apply */
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
            perr_set(&b->it[i].e, 400, "bad-request",
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
        in[m] = (ks_reservation_in){.master = r->master, .slaves = r->slaves,
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
    perr e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_batch(d, items, &n, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    batch_in in = {.n = n, .it = calloc(n, sizeof *in.it)}, *b = &in;
    if (!b->it) {
        perr_set(&e, 503, "internal", "out of memory");
        pw_reply_problem(out, &e);
        return;
    }
    for (size_t i = 0; i < b->n; i++)
        batch_read_item(ps, caller, d, items[i], b, i);
    batch_apply(ps, caller, b);
    const uint8_t *ids[PEER_BATCH_MAX];
    const perr *results[PEER_BATCH_MAX];
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
    perr e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_void(d, id, &segs, &n, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    ks_result rc = ks_void_apply(ps->ks, id, segs, n);
    if (rc == KS_OK)
        log_info("peer %s: void of a reservation (%zu segments) applied", caller, n);
    answer_store(out, rc, id, "voided");
    free(segs);
}

static void handle_state(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out)
{
    static const char *const words[] = { "unknown", "applied", "voided" };
    uint8_t id[16];
    ks_res_state st;
    perr e;
    if (check_link_peer(ps->cfg, caller, &e) != 0 || pw_read_state(d, id, &e) != 0) {
        pw_reply_problem(out, &e);
        return;
    }
    if (ks_reservation_state(ps->ks, id, &st) != KS_OK) {
        perr_set(&e, 503, "internal", "key store error");
        pw_reply_problem(out, &e);
        return;
    }
    pw_reply_ok(out, id, words[st]);
}

static void peer_handle(void *ctx, const char *caller, const char *method,
                        const char *raw_uri, const char *body, size_t body_len,
                        kme_reply *out)
{
    peer_service *ps = ctx;
    perr e;
    pw_doc d;
    memset(out, 0, sizeof *out);
    bool resv_path = strcmp(raw_uri, PATH_RESERVATIONS) == 0;
    bool batch_path = strcmp(raw_uri, PATH_BATCH) == 0;
    bool state_path = strcmp(raw_uri, PATH_STATE) == 0;
    if (!resv_path && !batch_path && !state_path && strcmp(raw_uri, PATH_VOIDS) != 0) {
        perr_set(&e, 404, "not-found", "no such resource: the peer API has POST %s, POST %s, "
                 "POST %s and POST %s", PATH_RESERVATIONS, PATH_BATCH, PATH_VOIDS, PATH_STATE);
        pw_reply_problem(out, &e);
        return;
    }
    if (strcmp(method, "POST") != 0) {
        perr_set(&e, 405, "method", "only POST is allowed here");
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
    } else {
        handle_void(ps, caller, &d, out);
    }
    pw_doc_close(&d);
}

/* Identity on the peer listener: the CN of a certificate of the KME CA, and
 * it must name a configured peer. */
static const char *peer_identify(void *ctx, const char *cn, const char *uri_san)
{
    peer_service *ps = ctx;
    (void)uri_san;
    return cn && kme_config_peer(ps->cfg, cn) ? cn : NULL;
}

/* ===================================================================
 * Client: pools of persistent mTLS connections to the peers
 * =================================================================== */

/* One kept-alive connection to a peer (common/httpsc.h), with the state
 * its callbacks need during a request. */
typedef struct peer_conn {
    httpsc *h;
    const char *expected;          /* the peer's configured ID */
    char *resp;                    /* answer body, NUL-terminated */
    size_t len, cap;
    unsigned char *leaf;           /* last leaf certificate seen and its CN */
    size_t leaf_len;
    int leaf_rc;
    char leaf_cn[ID_MAX + 1];
} peer_conn;

typedef struct resv_wait resv_wait;
typedef struct resv_batch resv_batch;

typedef struct peer_pool {
    const kme_peer *peer;
    char base[96];                 /* https://HOST:PORT */
    pthread_mutex_t mu;
    peer_conn *idle[POOL_MAX];
    size_t nidle;
    /* the reservation batcher (below), under bmu */
    pthread_mutex_t bmu;
    resv_wait *qhead, *qtail;      /* callers whose reservation is not sent yet */
    unsigned inflight;             /* batches on the way */
    size_t max_batch;              /* largest batch sent (logged when it grows) */
    uint64_t n_batches, n_resv;    /* requests and reservations sent (logged at stop) */
    /* Not answering (under mu; see peer_check_answering): since when, until
     * when new reservations fail at once (0: answering), and why. */
    _Atomic int64_t silent_until;  /* read without mu on the fast paths */
    int64_t silent_since;
    char silent_reason[128];
} peer_pool;

/* Body sink: the answer into c->resp (httpsc bounds it by MAX_RESPONSE). */
static int on_body(void *ud, const char *data, size_t n)
{
    peer_conn *c = ud;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->resp, cap);
        if (!p)
            return -1;
        c->resp = p;
        c->cap = cap;
    }
    memcpy(c->resp + c->len, data, n);
    c->len += n;
    c->resp[c->len] = '\0';
    return 0;
}

/* Leaf CN of the TLS session, parsed again only when the certificate
 * changes (a kept-alive connection shows the same one on every request). */
static int session_cn(peer_conn *c, gnutls_session_t s)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
    if (!chain || n == 0)
        return -1;
    if (!c->leaf || c->leaf_len != chain[0].size || memcmp(c->leaf, chain[0].data, chain[0].size) != 0) {
        free(c->leaf);
        c->leaf = malloc(chain[0].size ? chain[0].size : 1);
        if (!c->leaf)
            return -1;
        memcpy(c->leaf, chain[0].data, chain[0].size);
        c->leaf_len = chain[0].size;
        c->leaf_rc = x509_der_cn(chain[0].data, chain[0].size, c->leaf_cn, sizeof c->leaf_cn);
    }
    return c->leaf_rc;
}

/* After each TLS handshake (chain and host name already verified by
 * httpsc), before a request goes out: the certificate must name the peer
 * we meant to reach, not merely some KME of our CA. */
static int on_peer_check(void *ud, gnutls_session_t tls, char *err, size_t errlen)
{
    peer_conn *c = ud;
    if (session_cn(c, tls) != 0)
        snprintf(err, errlen, "peer certificate has no single subject CN");
    else if (strcmp(c->leaf_cn, c->expected) != 0)
        snprintf(err, errlen, "peer certificate names %.64s, expected %.64s", c->leaf_cn,
                 c->expected);
    else
        return 0;
    return -1;
}

static void conn_free(peer_conn *c)
{
    if (!c)
        return;
    httpsc_free(c->h);
    free(c->resp);
    free(c->leaf);
    free(c);
}

/* A new connection object (no traffic yet: httpsc connects at the first
 * request); its credentials are loaded here, once. */
static peer_conn *conn_new(const kme_config *cfg, const peer_pool *p)
{
    peer_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    httpsc_config hc = {
        .url = p->base, .ca_file = cfg->peer_ca, .cert_file = cfg->cert, .key_file = cfg->key,
        .connect_timeout_ms = (long)cfg->peer_timeout_ms, .timeout_ms = (long)cfg->peer_timeout_ms,
        .max_body = MAX_RESPONSE,
    };
    char err[256];
    c->expected = p->peer->id;
    if (!(c->h = httpsc_new(&hc, err, sizeof err))) {
        log_error("peer KME %s: %s", p->peer->id, err);
        free(c);
        return NULL;
    }
    httpsc_set_peer_check(c->h, on_peer_check, c);
    return c;
}

static peer_pool *pool_of(peer_service *ps, const char *peer_id)
{
    for (size_t i = 0; i < ps->npools; i++)
        if (strcmp(ps->pools[i].peer->id, peer_id) == 0)
            return &ps->pools[i];
    return NULL;
}

/* An idle connection of the pool, or a new one: concurrent requests each
 * get their own, so none waits for another's round trip. */
static peer_conn *pool_get(peer_service *ps, peer_pool *p)
{
    peer_conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nidle)
        c = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    return c ? c : conn_new(ps->cfg, p);
}

/* Keep up to POOL_MAX idle connections; close the rest. */
static void pool_put(peer_pool *p, peer_conn *c)
{
    pthread_mutex_lock(&p->mu);
    if (p->nidle < POOL_MAX) {
        p->idle[p->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    conn_free(c);
}

static void pools_free(peer_service *ps)
{
    for (size_t i = 0; i < ps->npools; i++) {
        peer_pool *p = &ps->pools[i];
        if (p->n_batches > 0)
            log_info("peer KME %s: %" PRIu64 " reservations sent in %" PRIu64 " requests "
                     "(largest %zu)", p->peer->id, p->n_resv, p->n_batches, p->max_batch);
        for (size_t j = 0; j < p->nidle; j++)
            conn_free(p->idle[j]);
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->bmu);
    }
    free(ps->pools);
}

static int pools_init(peer_service *ps, char *err, size_t errlen)
{
    const kme_config *cfg = ps->cfg;
    ps->pools = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof *ps->pools);
    if (!ps->pools) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_peers; i++) {
        peer_pool *p = &ps->pools[i];
        const kme_addr *a = &cfg->peers[i].address;
        p->peer = &cfg->peers[i];
        bool v6 = strchr(a->host, ':') != NULL;
        snprintf(p->base, sizeof p->base, v6 ? "https://[%s]:%u" : "https://%s:%u", a->host,
                 (unsigned)a->port);
        pthread_mutex_init(&p->mu, NULL);
        pthread_mutex_init(&p->bmu, NULL);
        ps->npools++;
    }
    return 0;
}

static void transport_reason(httpsc_code rc, const char *err, peer_answer *a)
{
    if (rc == HTTPSC_E_TOO_BIG)
        snprintf(a->reason, sizeof a->reason, "answer larger than %d bytes", MAX_RESPONSE);
    else if (rc == HTTPSC_E_NOMEM || rc == HTTPSC_E_SINK)
        snprintf(a->reason, sizeof a->reason, "out of memory");
    else
        snprintf(a->reason, sizeof a->reason, "%.200s", err[0] ? err : "transport error");
}

/*
 * A peer that gives no HTTP answer (no connection, a timeout, a broken TLS
 * session) is "not answering" for one peer timeout from then: enc_keys for
 * its SAEs fail at once with 503, before any bits are reserved, instead of
 * each waiting out the timeout and burning its bits.  A worker of the SAE
 * listener serves its connections one request at a time, so without this a
 * call queued behind one that waits for a hung peer would wait a timeout
 * for each call before it.  Once the window has passed, the next request
 * goes to the peer again (and extends the window if it fails); any answer,
 * also to the replay thread's voids, ends the state.  A caller whose own
 * deadline passes without an answer counts as a request without one: its
 * worker's next request must see the state, whichever caller's request to
 * the peer returns first.
 */
static void note_answer(peer_service *ps, peer_pool *p, bool answered, const char *reason)
{
    if (answered && atomic_load(&p->silent_until) == 0)
        return; /* the common case: no lock, no clock */
    int64_t now = mono_ms();
    pthread_mutex_lock(&p->mu);
    bool was_silent = p->silent_until != 0;
    if (answered) {
        p->silent_until = 0;
    } else {
        if (!was_silent)
            p->silent_since = now;
        p->silent_until = now + ps->cfg->peer_timeout_ms;
        snprintf(p->silent_reason, sizeof p->silent_reason, "%.100s", reason);
    }
    int64_t since = p->silent_since;
    pthread_mutex_unlock(&p->mu);
    if (answered && was_silent)
        log_info("peer KME %s answers again after %" PRId64 " ms", p->peer->id, now - since);
    else if (!answered && !was_silent)
        log_warn("peer KME %s is not answering (%s): enc_keys for its SAEs fail at once until "
                 "it answers", p->peer->id, reason);
}

int peer_check_answering(peer_service *ps, const char *peer_id, char *reason, size_t reason_len)
{
    peer_pool *p = pool_of(ps, peer_id);
    if (!p || atomic_load(&p->silent_until) == 0)
        return 0; /* answering (or not a peer: peer_reserve says why) */
    int64_t now = mono_ms();
    pthread_mutex_lock(&p->mu);
    int rc = p->silent_until != 0 && now < p->silent_until ? -1 : 0;
    if (rc != 0)
        snprintf(reason, reason_len, "peer KME %s is not answering (for %" PRId64 " ms: %s); "
                 "no keys were made, try again shortly", peer_id, now - p->silent_since,
                 p->silent_reason);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* POST body to path at the peer, within timeout_ms.  0 on a 200 answer,
 * whose body goes to *resp (malloc'd, NUL-terminated) when resp is given. */
static int peer_post(peer_service *ps, peer_pool *p, const char *path, const char *body,
                     long timeout_ms, peer_answer *a, char **resp)
{
    memset(a, 0, sizeof *a);
    peer_conn *c = pool_get(ps, p);
    if (!c) {
        snprintf(a->reason, sizeof a->reason, "cannot set up a connection (see the log)");
        return -1;
    }
    httpsc_request rq = {.method = "POST", .target = path, .content_type = "application/json",
                         .body = body, .body_len = strlen(body), .timeout_ms = timeout_ms};
    httpsc_response hr;
    char err[256];
    c->len = 0;
    httpsc_code rc = httpsc_request_send(c->h, &rq, on_body, c, &hr, err, sizeof err);
    if (rc != HTTPSC_OK)
        transport_reason(rc, err, a);
    else if ((a->http = hr.status) != 200)
        pw_answer_reason(c->resp, c->len, a);
    else if (resp && !(*resp = strndup(c->resp ? c->resp : "", c->len)))
        a->http = 0, snprintf(a->reason, sizeof a->reason, "out of memory");
    pool_put(p, c);
    note_answer(ps, p, rc != HTTPSC_E_TRANSPORT && rc != HTTPSC_E_TLS && rc != HTTPSC_E_PEER,
                a->reason);
    return rc == HTTPSC_OK && a->http == 200 ? 0 : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ===================================================================
 * The reservation batcher
 * ===================================================================
 *
 * Concurrent enc_keys for SAEs behind one peer would each cost a request
 * (TLS records, HTTP parsing, a listener thread and a key store call at
 * the peer).  Instead each caller queues its reservation and waits; a
 * caller that finds fewer than BATCHES_IN_FLIGHT batches on the way to
 * the peer becomes the leader: it takes everything queued (up to
 * PEER_BATCH_MAX reservations and PEER_MAX_BODY bytes), sends it as one
 * reservation-batch request, and hands each waiter its own result.  A lone
 * caller finds nothing on the way and leads at once with a batch of one,
 * sent as a plain single reservation: there is no timer and no wait for
 * company.
 *
 * Every caller keeps its own deadline (cfg->peer_timeout_ms from its
 * start).  One whose deadline passes while queued leaves the queue; one
 * whose batch is still on the way clears its slot in the batch, so the
 * result arriving later is dropped: the caller's failure path (void, I5)
 * is then the only outcome, and only the caller itself confirms or fails
 * its reservation.  The leader's request is bounded by the leader's own
 * deadline.  The queue lock is never held across the network.
 */

/* Batches on the way to one peer at a time.  With 1, two clients fall
 * into lock step (each enc_keys waits out the other's round trip: about
 * -30% pairs/s at 2 clients, measured) although it forms larger batches
 * under 16 (about 2.5-3 per request against 1.6-1.9 with 2); more than 2
 * would leave almost nothing to coalesce.  2 keeps 1 to 4 clients as fast
 * as one request each, and under load one batch forms while the other is
 * on the way. */
#define BATCHES_IN_FLIGHT 2

enum { W_QUEUED, W_SENT, W_DONE };

/* One caller of peer_reserve, on its own stack. */
struct resv_wait {
    struct resv_wait *next;        /* queue link */
    const char *text;              /* the reservation as JSON */
    size_t len;
    uint8_t id[16];
    int64_t deadline;              /* monotonic ms */
    pthread_cond_t cv;
    int state;
    struct resv_batch *batch;      /* while W_SENT */
    size_t slot;
    peer_answer a;                 /* outcome: a.http == 200 is "applied" */
};

struct resv_batch {
    size_t n;
    resv_wait *w[PEER_BATCH_MAX];  /* NULL: that caller gave up */
    uint8_t id[PEER_BATCH_MAX][16];
};

/* Wake the first queued caller when a batch may go (caller holds bmu). */
static void batch_kick(peer_pool *p)
{
    if (p->qhead && p->inflight < BATCHES_IN_FLIGHT)
        pthread_cond_signal(&p->qhead->cv);
}

/* Take queued reservations into b and render the request body (caller
 * holds bmu: the texts belong to callers that may give up). */
static char *batch_take(peer_pool *p, resv_batch *b)
{
    static const char head[] = "{\"reservations\":[", tail[] = "]}";
    size_t bytes = sizeof head + sizeof tail;
    for (resv_wait *w = p->qhead; w && b->n < PEER_BATCH_MAX; w = w->next) {
        if (b->n > 0 && bytes + w->len + 1 > PEER_MAX_BODY)
            break;
        bytes += w->len + 1;
        b->w[b->n++] = w;
    }
    bool single = b->n == 1; /* sent as today's single reservation */
    char *body = malloc(single ? b->w[0]->len + 1 : bytes);
    char *at = body;
    if (body && !single) {
        memcpy(at, head, sizeof head - 1);
        at += sizeof head - 1;
    }
    for (size_t i = 0; i < b->n; i++) {
        resv_wait *w = b->w[i];
        p->qhead = w->next;
        w->next = NULL;
        w->state = W_SENT;
        w->batch = b;
        w->slot = i;
        memcpy(b->id[i], w->id, 16);
        if (body) {
            if (i > 0)
                *at++ = ',';
            memcpy(at, w->text, w->len);
            at += w->len;
        }
    }
    if (!p->qhead)
        p->qtail = NULL;
    if (body)
        memcpy(at, single ? "" : tail, single ? 1 : sizeof tail);
    return body;
}

/* Send one batch (bmu held on entry and on return, not across the
 * request); the request is bounded by the leader's deadline. */
static void batch_lead(peer_service *ps, peer_pool *p, int64_t deadline)
{
    resv_batch batch = {0}, *b = &batch; /* lives until every member has its result */
    char *body = batch_take(p, b);
    peer_answer *res = calloc(b->n, sizeof *res);
    p->inflight++;
    bool larger = b->n > p->max_batch;
    if (larger)
        p->max_batch = b->n;
    p->n_batches++;
    p->n_resv += b->n;
    pthread_mutex_unlock(&p->bmu);

    if (larger && b->n > 1)
        log_info("peer KME %s: %zu reservations coalesced into one request (largest so far)",
                 p->peer->id, b->n);
    peer_answer whole = {0};
    char *resp = NULL;
    long left = (long)(deadline - mono_ms());
    bool single = b->n == 1;
    if (!body || !res)
        snprintf(whole.reason, sizeof whole.reason, "out of memory");
    else if (peer_post(ps, p, single ? PATH_RESERVATIONS : PATH_BATCH, body, left > 1 ? left : 1,
                       &whole, single ? NULL : &resp) == 0 && !single)
        pw_batch_results(resp, b->n, (const uint8_t (*)[16])b->id, res);
    /* a single reservation's answer, or a batch that got no 200: the
     * request's outcome is every member's */
    bool itemised = resp != NULL;
    free(resp);
    free(body);

    pthread_mutex_lock(&p->bmu);
    p->inflight--;
    for (size_t i = 0; i < b->n; i++) {
        resv_wait *w = b->w[i];
        if (!w)
            continue;
        w->a = itemised ? res[i] : whole;
        w->state = W_DONE;
        w->batch = NULL;
        pthread_cond_signal(&w->cv);
    }
    batch_kick(p);
    free(res);
}

/* The deadline passed: leave the queue or the batch (caller holds bmu). */
static void batch_give_up(peer_pool *p, resv_wait *w, long timeout_ms)
{
    if (w->state == W_QUEUED) {
        resv_wait **pp = &p->qhead, *prev = NULL;
        while (*pp && *pp != w) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp)
            *pp = w->next;
        if (p->qtail == w)
            p->qtail = prev;
        batch_kick(p);
    } else if (w->state == W_SENT) {
        w->batch->w[w->slot] = NULL;
    }
    memset(&w->a, 0, sizeof w->a);
    snprintf(w->a.reason, sizeof w->a.reason, "no answer within %ld ms", timeout_ms);
    w->state = W_DONE;
}

/* Queue w and wait for its outcome in w->a, leading batches while it is
 * queued and fewer than BATCHES_IN_FLIGHT are on the way. */
static void batch_wait(peer_service *ps, peer_pool *p, resv_wait *w)
{
    memset(&w->a, 0, sizeof w->a);
    w->next = NULL;
    w->batch = NULL;
    w->state = W_QUEUED;
    pthread_mutex_lock(&p->bmu);
    if (p->qtail)
        p->qtail->next = w;
    else
        p->qhead = w;
    p->qtail = w;
    bool gave_up = false;
    while (w->state != W_DONE) {
        if (mono_ms() >= w->deadline) {
            batch_give_up(p, w, (long)ps->cfg->peer_timeout_ms);
            gave_up = true;
            break;
        }
        if (w->state == W_QUEUED && p->inflight < BATCHES_IN_FLIGHT) {
            batch_lead(ps, p, w->deadline);
            continue;
        }
        struct timespec ts = mono_timespec(w->deadline);
        pthread_cond_timedwait(&w->cv, &p->bmu, &ts);
    }
    pthread_mutex_unlock(&p->bmu);
    /* before this worker serves its next request, which must see it */
    if (gave_up)
        note_answer(ps, p, false, w->a.reason);
}

int peer_reserve(peer_service *ps, const char *peer_id, const ks_reservation *r,
                 const char *master, const char *const *slaves, size_t nslaves,
                 char *reason, size_t reason_len)
{
    peer_pool *p = pool_of(ps, peer_id);
    char *text = p ? pw_reservation_text(r, master, slaves, nslaves) : NULL;
    if (!text) {
        snprintf(reason, reason_len, "%s", p ? "out of memory" : "not a configured peer");
        return -1;
    }
    resv_wait w = {.text = text, .len = strlen(text),
                   .deadline = mono_ms() + ps->cfg->peer_timeout_ms};
    memcpy(w.id, r->id, 16);
    mono_cond_init(&w.cv);
    /* The link confirms a block to each KME separately, so the peer may
     * learn of a block a moment after us: "segments-unusable" changed
     * nothing there, and the same reservation is sent again while the time
     * bound allows. */
    long pause = REJECT_RETRY_MS;
    for (;;) {
        batch_wait(ps, p, &w);
        if (w.a.http == 200 || strcmp(w.a.type, "segments-unusable") != 0
            || w.deadline - mono_ms() <= pause)
            break;
        sleep_ms(pause);
        pause *= 2;
    }
    pthread_cond_destroy(&w.cv);
    free(text);
    if (w.a.http != 200 && strcmp(w.a.type, PEER_SLAVE_LIMIT_TYPE) == 0) {
        snprintf(reason, reason_len, "%s", w.a.message);
        return PEER_SLAVE_LIMIT;
    }
    if (w.a.http != 200) {
        snprintf(reason, reason_len, "%s", w.a.reason);
        return -1;
    }
    return 0;
}

/* ===================================================================
 * Void replay thread
 * =================================================================== */

void peer_void_wake(peer_service *ps)
{
    pthread_mutex_lock(&ps->mu);
    ps->wake = true;
    pthread_cond_signal(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

/* Wait ms, or until stop (and, if wakeable, a wake); false once stopping. */
static bool replay_wait(peer_service *ps, long ms, bool wakeable)
{
    struct timespec ts = mono_timespec(mono_ms() + ms);
    pthread_mutex_lock(&ps->mu);
    while (!ps->stop && !(wakeable && ps->wake))
        if (pthread_cond_timedwait(&ps->cv, &ps->mu, &ts) == ETIMEDOUT)
            break;
    ps->wake = false;
    bool go = !ps->stop;
    pthread_mutex_unlock(&ps->mu);
    return go;
}

/* Send the oldest void once: 1 sent, 0 none waiting, -1 failed. */
static int replay_one(peer_service *ps, unsigned *fails)
{
    uint8_t id[16];
    char *peer = NULL;
    ks_segment *segs = NULL;
    size_t n = 0;
    ks_result r = ks_outbox_next_void(ps->ks, id, &peer, &segs, &n);
    if (r == KS_NOT_FOUND)
        return 0;
    int rc = -1;
    peer_pool *p = r == KS_OK ? pool_of(ps, peer) : NULL;
    char *body = p ? pw_void_text(id, segs, n) : NULL;
    peer_answer a = { 0 };
    if (body && peer_post(ps, p, PATH_VOIDS, body, (long)ps->cfg->peer_timeout_ms, &a, NULL) == 0
        && ks_outbox_void_sent(ps->ks, id) == KS_OK) {
        log_info("void of a reservation (%zu segments) delivered to KME %s", n, peer);
        rc = 1;
    } else if (++*fails == 1 || (*fails & (*fails - 1)) == 0) {
        /* warn on the 1st, 2nd, 4th, 8th... failure, not every back-off */
        log_warn("void for KME %s not delivered (attempt %u): %s", peer ? peer : "?", *fails,
                 r != KS_OK ? ks_result_str(r) : !p ? "not a configured peer" : a.reason);
    }
    free(body);
    free(peer);
    free(segs);
    return rc;
}

/* Ask the peer about the oldest reservation of unknown fate (in flight when
 * the process stopped) and settle it: applied, the entry goes and the keys
 * stand (the master may have been answered); otherwise it becomes a void.
 * A peer without the query (an older version: 404 not-found) gets the void,
 * as every such reservation did before it existed.  1 settled, 0 none
 * left, -1 failed. */
static int settle_one(peer_service *ps, unsigned *fails)
{
    uint8_t id[16];
    char *peer = NULL, *resp = NULL;
    ks_result r = ks_outbox_next_unknown(ps->ks, id, &peer);
    if (r == KS_NOT_FOUND)
        return 0;
    peer_pool *p = r == KS_OK ? pool_of(ps, peer) : NULL;
    char *body = p ? pw_state_text(id) : NULL;
    peer_answer a = { 0 };
    int fate = -1;
    if (r == KS_OK && !p)
        fate = 0; /* no longer a configured peer: nothing to ask */
    else if (body && peer_post(ps, p, PATH_STATE, body, (long)ps->cfg->peer_timeout_ms, &a, &resp) == 0)
        fate = pw_state_applied(resp, id);
    else if (a.http == 404 && strcmp(a.type, "not-found") == 0)
        fate = 0;
    int rc = -1;
    if (fate >= 0 && ks_outbox_settle(ps->ks, id, fate == 1) == KS_OK) {
        log_info("reservation of unknown fate for KME %s: %s", peer,
                 fate ? "applied there, its keys stand" : "not applied there, burned (void)");
        rc = 1;
    } else if (++*fails == 1 || (*fails & (*fails - 1)) == 0) {
        log_warn("cannot learn the fate of a reservation from KME %s (attempt %u): %s",
                 peer ? peer : "?", *fails,
                 r != KS_OK ? ks_result_str(r) : fate < 0 && a.http == 200
                     ? "the answer has no valid status" : a.reason);
    }
    free(resp);
    free(body);
    free(peer);
    return rc;
}

static void *replay_main(void *arg)
{
    peer_service *ps = arg;
    long backoff = 0;
    unsigned fails = 0;
    for (;;) {
        /* settle reservations of unknown fate first: some become voids */
        int s = settle_one(ps, &fails), v = replay_one(ps, &fails);
        int rc = s > 0 || v > 0 ? 1 : s == 0 && v == 0 ? 0 : -1;
        if (rc > 0) {
            backoff = 0;
            fails = 0;
            if (!replay_wait(ps, 0, false))
                break;
            continue;
        }
        if (rc == 0) {
            backoff = 0;
            if (!replay_wait(ps, REPLAY_IDLE_MS, true))
                break;
            continue;
        }
        backoff = backoff ? (backoff * 2 > REPLAY_MAX_MS ? REPLAY_MAX_MS : backoff * 2) : REPLAY_MIN_MS;
        if (!replay_wait(ps, backoff, false))
            break;
    }
    return NULL;
}

static int replay_start(peer_service *ps, char *err, size_t errlen)
{
    mono_cond_init(&ps->cv);
    pthread_mutex_init(&ps->mu, NULL);
    int rc = pthread_create(&ps->replay, NULL, replay_main, ps);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the void replay thread: %s", strerror(rc));
        return -1;
    }
    ps->replay_started = true;
    return 0;
}

/* ===================================================================
 * Service
 * =================================================================== */

static int listen_start(peer_service *ps, char *err, size_t errlen)
{
    const kme_config *cfg = ps->cfg;
    listener_spec spec = {
        .name = "peer_api", .host = cfg->peer_listen.host, .port = cfg->peer_listen.port,
        .cert = cfg->cert, .key = cfg->key, .ca = cfg->peer_ca, .threads = cfg->peer_threads,
        .max_body = PEER_MAX_BODY, .identify = peer_identify, .handle = peer_handle, .ctx = ps,
        .max_connections = cfg->peer_max_connections,
        .handshake_timeout_ms = (unsigned)cfg->handshake_timeout_ms,
        .per_ip_limit = cfg->peer_per_ip_limit,
        .allow_from = cfg->peer_allow.nets, .n_allow_from = cfg->peer_allow.n,
    };
    ps->http = listener_start(&spec, err, errlen);
    return ps->http ? 0 : -1;
}

peer_service *peer_service_start(const kme_config *cfg, keystore *ks, char *err, size_t errlen)
{
    peer_service *ps = calloc(1, sizeof *ps);
    if (!ps) {
        snprintf(err, errlen, "out of memory");
        free(ps);
        return NULL;
    }
    ps->cfg = cfg;
    ps->ks = ks;
    /* Before anything can make a new reservation: every entry still
     * pending is from before a crash and its fate is unknown until the
     * peer tells (the replay thread asks). */
    long unknown = ks_outbox_recover(ks);
    if (unknown < 0) {
        snprintf(err, errlen, "key store: cannot recover the outbox");
    } else if (pools_init(ps, err, errlen) == 0 && listen_start(ps, err, errlen) == 0
               && replay_start(ps, err, errlen) == 0) {
        return ps;
    }
    peer_service_stop(ps);
    return NULL;
}

uint16_t peer_service_port(const peer_service *ps)
{
    return listener_port(ps->http);
}

void peer_service_stop(peer_service *ps)
{
    if (!ps)
        return;
    if (ps->replay_started) {
        pthread_mutex_lock(&ps->mu);
        ps->stop = true;
        pthread_cond_signal(&ps->cv);
        pthread_mutex_unlock(&ps->mu);
        pthread_join(ps->replay, NULL);
        pthread_cond_destroy(&ps->cv);
        pthread_mutex_destroy(&ps->mu);
    }
    if (ps->http)
        listener_stop(ps->http);
    pools_free(ps);
    free(ps);
}
