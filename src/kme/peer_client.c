/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_client.c - the client side of the KME-to-KME channel: one small
 * pool of persistent mTLS connections per peer (common/httpsc.h; the
 * peer's certificate, host name and CN are checked before a request goes
 * out), the peer's not-answering state (peer_check_answering), and the
 * reservation batcher behind peer_reserve (described below).
 *
 * Calls no other peer file.  Locks: per pool, mu (idle connections and
 * not-answering state) and bmu (the batch queue); each is held alone and
 * none is held across the network.
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
#include "kme/peer_wire.h"

#define REJECT_RETRY_MS 20         /* first pause before re-sending after segments-unusable */

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

peer_pool *peer_pool_of(peer_service *ps, const char *peer_id)
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

void peer_pools_free(peer_service *ps)
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

int peer_pools_init(peer_service *ps, char *err, size_t errlen)
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
    peer_pool *p = peer_pool_of(ps, peer_id);
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
int peer_post(peer_service *ps, peer_pool *p, const char *path, const char *body,
                     long timeout_ms, peer_answer *a, char **resp)
{
    return peer_send(ps, p, "POST", path, body, timeout_ms, a, resp);
}

int peer_send(peer_service *ps, peer_pool *p, const char *method, const char *path,
              const char *body, long timeout_ms, peer_answer *a, char **resp)
{
    memset(a, 0, sizeof *a);
    peer_conn *c = pool_get(ps, p);
    if (!c) {
        snprintf(a->reason, sizeof a->reason, "cannot set up a connection (see the log)");
        return -1;
    }
    bool get = strcmp(method, "GET") == 0;
    httpsc_request rq = {.method = method, .target = path,
                         .content_type = get ? NULL : "application/json",
                         .body = get ? NULL : body, .body_len = get ? 0 : strlen(body),
                         .timeout_ms = timeout_ms};
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
    peer_pool *p = peer_pool_of(ps, peer_id);
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

