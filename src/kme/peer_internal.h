/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_internal.h - what the files of the KME-to-KME channel share:
 * peer.c (the service: start, stop), peer_server.c (the [peer_api]
 * handler), peer_relay.c (trusted-node relay, both ends), peer_client.c (connection pools and the reservation batcher),
 * peer_replay.c (the void replay thread) and peer_probe.c (the once-a-second
 * health probe).  Include only from peer*.c.
 *
 * Calls run downwards only: peer.c starts the other three; peer_replay.c
 * sends through peer_client.c; peer_server.c and peer_client.c call none
 * of the others.  Locks: ps->mu (replay thread's wake-ups), and per pool
 * its mu (idle connections, not-answering state) and bmu (batch queue),
 * each held alone and never across the network.
 */
#ifndef QC_KME_PEER_INTERNAL_H
#define QC_KME_PEER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/listener.h"
#include "kme/peer.h"

#define PATH_RESERVATIONS "/peer/v1/reservations"
#define PATH_VOIDS "/peer/v1/voids"
#define PATH_BATCH "/peer/v1/reservation-batch"
#define PATH_STATE "/peer/v1/reservation-state"
#define PATH_RELAY "/peer/v1/relay"
#define PATH_MAP "/peer/v1/map"
#define POOL_MAX 32                /* idle connections kept per peer: as many as
                                    * requests in flight, else a burst closes
                                    * some and the next burst pays handshakes */
#define MAX_RESPONSE 65536         /* a peer's answer is small JSON */
#define ID_MAX 256

typedef struct peer_pool peer_pool;

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
    /* probe thread (peer_probe.c): health[i] of cfg->peers[i], under probe_mu */
    pthread_t probe;
    bool probe_started, probe_stop;
    pthread_mutex_t probe_mu;
    pthread_cond_t probe_cv;
    peer_health *health;
    /* with a map: per cfg->peers[i], what it last said it holds towards
     * each of its neighbours (its GET /peer/v1/map), under probe_mu */
    struct peer_stock_list {
        pw_stock items[PW_STOCK_MAX];
        size_t n;
    } *stock;
};

/* ---- peer_server.c ------------------------------------------------------ */

/* The listener's callbacks (listener.h): one request, and the identity of
 * a caller (the CN of a KME CA certificate naming a configured peer). */
void peer_handle(void *ctx, const char *caller, const char *method, const char *raw_uri,
                 const char *body, size_t body_len, kme_reply *out);
const char *peer_identify(void *ctx, const char *cn, const char *uri_san);

/* ---- peer_relay.c ------------------------------------------------------- */

/* POST /peer/v1/relay from caller (the document is open). */
void peer_relay_handle(peer_service *ps, const char *caller, pw_doc *d, kme_reply *out);

/* ---- peer_client.c ------------------------------------------------------ */

int peer_pools_init(peer_service *ps, char *err, size_t errlen);
void peer_pools_free(peer_service *ps);
/* The pool of a configured peer, NULL when peer_id is none. */
peer_pool *peer_pool_of(peer_service *ps, const char *peer_id);
/* POST body to path at the peer, within timeout_ms.  0 on a 200 answer,
  * whose body goes to *resp (malloc'd, NUL-terminated) when resp is given. */
int peer_post(peer_service *ps, peer_pool *p, const char *path, const char *body,
              long timeout_ms, peer_answer *a, char **resp);
/* The same with a method: "POST", or "GET" (body unused). */
int peer_send(peer_service *ps, peer_pool *p, const char *method, const char *path,
              const char *body, long timeout_ms, peer_answer *a, char **resp);

/* ---- peer_replay.c ------------------------------------------------------ */

int peer_replay_start(peer_service *ps, char *err, size_t errlen);

/* ---- peer_probe.c ------------------------------------------------------- */

int peer_probe_start(peer_service *ps, char *err, size_t errlen);
void peer_probe_stop(peer_service *ps);

#endif
