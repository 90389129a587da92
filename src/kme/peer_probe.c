/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_probe.c - the peer probe thread: once a second it asks every peer
 * KME the state of a reservation that never existed (POST
 * /peer/v1/reservation-state, a read of one index on the peer, no change
 * there) over the client pool the reservations use, so that
 * qkd_kme_peer_up, /health and the status page follow a stopped or hung
 * peer within the probe period plus the probe timeout, without any SAE
 * traffic.
 *
 * Any HTTP answer counts as "up" (the peer's KME process serves its
 * listener); no answer (refused, reset, TLS failure, timeout) counts as
 * "down".  A failed probe also puts the pool in its "not answering" state
 * (peer_client.c, note_answer), so enc_keys for the peer's SAEs fail at
 * once instead of burning bits on a reservation that cannot arrive.  A
 * change is a security event (events.h: peer_down, peer_up).
 *
 * With a network map (docs/network.md §1) the probe also asks every peer
 * its map version (GET /peer/v1/map): at start a peer that answers another
 * version makes the start fail; later, relays go only through peers whose
 * last answer was our version (peer_map_agrees).  The same answer tells
 * what the peer holds towards each of its neighbours (peer_stock_towards):
 * a relay's second hop, for status and the ranking of paths.
 *
 * Lock: probe_mu guards the per-peer state and the thread's stop flag;
 * never held across the network.
 */
#include "kme/peer.h"
#include "kme/peer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/monotime.h"
#include "common/uuid.h"
#include "kme/events.h"
#include "kme/netmap.h"

#define PROBE_PERIOD_MS 1000
#define PROBE_TIMEOUT_MS 1000

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void record(peer_service *ps, size_t i, bool up, const char *reason)
{
    peer_health *h = &ps->health[i];
    pthread_mutex_lock(&ps->probe_mu);
    bool changed = !h->probed || h->up != up;
    bool news = h->probed ? changed : !up; /* a first "up" is no event */
    h->probed = true;
    h->up = up;
    if (changed)
        h->since_unix_ms = unix_ms();
    snprintf(h->reason, sizeof h->reason, "%.120s", up ? "" : reason);
    pthread_mutex_unlock(&ps->probe_mu);
    if (news)
        events_peer(up, ps->cfg->peers[i].id, up ? NULL : reason);
    if (changed && up)
        log_info("peer probe: KME %s is up", ps->cfg->peers[i].id);
    else if (changed)
        log_warn("peer probe: KME %s is down: %s", ps->cfg->peers[i].id, reason);
}

static long probe_timeout(const peer_service *ps)
{
    return ps->cfg->peer_timeout_ms < PROBE_TIMEOUT_MS ? (long)ps->cfg->peer_timeout_ms
                                                       : PROBE_TIMEOUT_MS;
}

/* Peer i's map version: >= 0, MAP_NONE (it has no map) or MAP_UNKNOWN (no
 * readable answer). */
#define MAP_NONE (-1)
#define MAP_UNKNOWN (-2)
static int64_t ask_map(peer_service *ps, size_t i)
{
    peer_pool *p = peer_pool_of(ps, ps->cfg->peers[i].id);
    peer_answer a;
    char *resp = NULL;
    int64_t v = MAP_UNKNOWN;
    pw_stock stock[PW_STOCK_MAX];
    size_t n = 0;
    if (p && peer_send(ps, p, "GET", PATH_MAP, "", probe_timeout(ps), &a, &resp) == 0
        && pw_map_answer(resp, &v, stock, PW_STOCK_MAX, &n) != 0)
        v = MAP_UNKNOWN, n = 0;
    free(resp);
    if (ps->stock) {
        pthread_mutex_lock(&ps->probe_mu);
        memcpy(ps->stock[i].items, stock, n * sizeof stock[0]);
        ps->stock[i].n = n;
        pthread_mutex_unlock(&ps->probe_mu);
    }
    return v;
}

int peer_stock_towards(peer_service *ps, const char *neighbour, const char *far, uint64_t *bits)
{
    const kme_config *cfg = ps ? ps->cfg : NULL;
    int rc = -1;
    for (size_t i = 0; cfg && ps->stock && i < cfg->n_peers; i++) {
        if (strcmp(cfg->peers[i].id, neighbour) != 0)
            continue;
        pthread_mutex_lock(&ps->probe_mu);
        for (size_t j = 0; j < ps->stock[i].n && rc != 0; j++)
            if (strcmp(ps->stock[i].items[j].kme, far) == 0) {
                *bits = ps->stock[i].items[j].bits;
                rc = 0;
            }
        pthread_mutex_unlock(&ps->probe_mu);
    }
    return rc;
}

static void record_map(peer_service *ps, size_t i, int64_t v)
{
    int64_t own = ps->cfg->map->version;
    pthread_mutex_lock(&ps->probe_mu);
    int64_t was = ps->health[i].map_version;
    ps->health[i].map_version = v;
    pthread_mutex_unlock(&ps->probe_mu);
    if (v == was || v == MAP_UNKNOWN)
        return;
    if (v == own)
        log_info("peer probe: KME %s runs network map version %lld, as this KME: relays through "
                 "it may go", ps->cfg->peers[i].id, (long long)v);
    else
        log_warn("peer probe: KME %s runs %s%lld, this KME version %lld: no relay goes through it",
                 ps->cfg->peers[i].id, v == MAP_NONE ? "no network map" : "network map version ",
                 v == MAP_NONE ? 0LL : (long long)v, (long long)own);
}

static void probe_once(peer_service *ps, const char *body)
{
    for (size_t i = 0; i < ps->cfg->n_peers; i++) {
        peer_pool *p = peer_pool_of(ps, ps->cfg->peers[i].id);
        peer_answer a;
        if (!p)
            continue;
        peer_post(ps, p, PATH_STATE, body, probe_timeout(ps), &a, NULL);
        record(ps, i, a.http != 0, a.reason);
        if (a.http != 0 && ps->cfg->map)
            record_map(ps, i, ask_map(ps, i));
    }
}

/* At start, with a map: a peer that answers another version is a
 * configuration error (0, or -1 and err); one that does not answer is
 * asked again by the probe. */
static int check_maps_at_start(peer_service *ps, char *err, size_t errlen)
{
    const kme_config *cfg = ps->cfg;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        ps->health[i].map_version = MAP_UNKNOWN;
        if (!cfg->map)
            continue;
        int64_t v = ask_map(ps, i);
        if (v == MAP_UNKNOWN) {
            log_info("network map: KME %s did not answer; no relay goes through it until it "
                     "answers with version %lld", cfg->peers[i].id, (long long)cfg->map->version);
        } else if (v != cfg->map->version) {
            char theirs[32];
            snprintf(theirs, sizeof theirs, v == MAP_NONE ? "none" : "%lld", (long long)v);
            snprintf(err, errlen, "network map %s has version %lld but neighbour KME %s runs "
                     "with %s: every KME of a network must have the same map",
                     cfg->network_map, (long long)cfg->map->version, cfg->peers[i].id, theirs);
            return -1;
        }
        ps->health[i].map_version = v;
    }
    return 0;
}

bool peer_map_agrees(peer_service *ps, const char *peer_id)
{
    const kme_config *cfg = ps ? ps->cfg : NULL;
    if (!cfg || !cfg->map)
        return cfg != NULL;
    for (size_t i = 0; i < cfg->n_peers && ps->health; i++)
        if (strcmp(cfg->peers[i].id, peer_id) == 0) {
            pthread_mutex_lock(&ps->probe_mu);
            bool same = ps->health[i].map_version == cfg->map->version;
            pthread_mutex_unlock(&ps->probe_mu);
            return same;
        }
    return false;
}

static void *probe_main(void *arg)
{
    peer_service *ps = arg;
    uint8_t id[16];
    uuid_generate_v4(id); /* a reservation ID no KME ever made: v7 are ours */
    char *body = pw_state_text(id);
    int64_t next = mono_ms();
    pthread_mutex_lock(&ps->probe_mu);
    while (!ps->probe_stop) {
        pthread_mutex_unlock(&ps->probe_mu);
        if (body)
            probe_once(ps, body);
        next += PROBE_PERIOD_MS;
        if (next < mono_ms())
            next = mono_ms(); /* a slow round: no burst to catch up */
        struct timespec at = mono_timespec(next);
        pthread_mutex_lock(&ps->probe_mu);
        while (!ps->probe_stop && pthread_cond_timedwait(&ps->probe_cv, &ps->probe_mu, &at) == 0)
            ;
    }
    pthread_mutex_unlock(&ps->probe_mu);
    free(body);
    return NULL;
}

int peer_probe_start(peer_service *ps, char *err, size_t errlen)
{
    if (ps->cfg->n_peers == 0)
        return 0;
    ps->health = calloc(ps->cfg->n_peers, sizeof *ps->health);
    ps->stock = ps->cfg->map ? calloc(ps->cfg->n_peers, sizeof *ps->stock) : NULL;
    if (!ps->health || (ps->cfg->map && !ps->stock)
        || pthread_mutex_init(&ps->probe_mu, NULL) != 0) {
        snprintf(err, errlen, "out of memory for the peer probe");
        return -1;
    }
    if (check_maps_at_start(ps, err, errlen) != 0)
        return -1;
    if (mono_cond_init(&ps->probe_cv) != 0
        || pthread_create(&ps->probe, NULL, probe_main, ps) != 0) {
        snprintf(err, errlen, "cannot start the peer probe thread");
        return -1;
    }
    ps->probe_started = true;
    return 0;
}

void peer_probe_stop(peer_service *ps)
{
    if (ps->probe_started) {
        pthread_mutex_lock(&ps->probe_mu);
        ps->probe_stop = true;
        pthread_cond_broadcast(&ps->probe_cv);
        pthread_mutex_unlock(&ps->probe_mu);
        pthread_join(ps->probe, NULL);
        pthread_cond_destroy(&ps->probe_cv);
        ps->probe_started = false;
    }
    free(ps->health);
    ps->health = NULL;
    free(ps->stock);
    ps->stock = NULL;
}

int peer_health_get(peer_service *ps, size_t i, peer_health *out)
{
    memset(out, 0, sizeof *out);
    if (!ps || !ps->health || i >= ps->cfg->n_peers)
        return -1;
    pthread_mutex_lock(&ps->probe_mu);
    *out = ps->health[i];
    pthread_mutex_unlock(&ps->probe_mu);
    return 0;
}
