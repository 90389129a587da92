/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer.c - the KME-to-KME channel (docs/kme-pair.md, "Remote enc_keys"):
 * the service that starts and stops its parts: the [peer_api] listener's
 * handler (peer_server.c), the client pools that send reservations and
 * voids to peers (peer_client.c), the void replay thread
 * (peer_replay.c) and the health probe (peer_probe.c); peer_internal.h is
 * what they share.
 *
 * The wire format (paths, bodies, answers) and its strict readers are in
 * peer_wire.h.  A batch body of the wrong shape is a 400 and nothing is
 * applied; otherwise all reservations are applied in one key store call,
 * each under its own savepoint (ks_reservation_apply_batch), and a batch
 * never names one reservation ID twice (the repeat is refused, 400).  A KME
 * restarting after a crash asks POST /peer/v1/reservation-state about
 * every reservation it had in flight (peer_replay.c), since it
 * answers masters without waiting for its own record of the peer's
 * acknowledgement.
 *
 * The client sends a lone reservation as a single request and concurrent
 * ones to the same peer as a batch (the batcher, peer_client.c).
 *
 * Answers: 200 {"reservation_ID": UUID, "status": "applied" | "voided"}; an
 * error is a problem-detail style object {"type": t, "status": code,
 * "message": text}: 400 bad-request, 403 no-link (the caller shares no QKD
 * link with us, so its segments cannot name our blocks), 404, 405,
 * 409 segments-unusable (a segment is not in a confirmed block owned by the
 * caller, or overlaps bits used before: no key was made, the caller must
 * burn the reservation) and 409 key-conflict (a key ID already recorded
 * with other content), 503 internal.
 *
 * Lock: ps->mu (the replay thread's stop flag), taken alone.
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
    peer_relay_announce();
    /* Before anything can make a new reservation: every entry still
     * pending is from before a crash and its fate is unknown until the
     * peer tells (the replay thread asks). */
    long unknown = ks_outbox_recover(ks);
    if (unknown < 0) {
        snprintf(err, errlen, "key store: cannot recover the outbox");
    } else if (peer_pools_init(ps, err, errlen) == 0 && listen_start(ps, err, errlen) == 0
               && peer_replay_start(ps, err, errlen) == 0
               && peer_probe_start(ps, err, errlen) == 0) {
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
    peer_probe_stop(ps);
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
    peer_pools_free(ps);
    free(ps);
}

