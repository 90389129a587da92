/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_replay.c - the void replay thread of the KME-to-KME channel: it
 * asks the peer the fate of every reservation left pending by a crash
 * (POST /peer/v1/reservation-state: applied, the entry goes; otherwise it
 * becomes a void), and sends voids (POST /peer/v1/voids) until the peer
 * acknowledges them, with a bounded back-off.  A KME restarting after a
 * crash must ask, since it answers masters without waiting for its own
 * record of the peer's acknowledgement.
 *
 * Sends through peer_client.c.  Lock: ps->mu, for the thread's wake-ups
 * (peer_void_wake) and stop; never held across the network.
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

#define REPLAY_MIN_MS 100
#define REPLAY_MAX_MS 5000
#define REPLAY_IDLE_MS 1000        /* look for voids at least this often */

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
    peer_pool *p = r == KS_OK ? peer_pool_of(ps, peer) : NULL;
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
    peer_pool *p = r == KS_OK ? peer_pool_of(ps, peer) : NULL;
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

int peer_replay_start(peer_service *ps, char *err, size_t errlen)
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

