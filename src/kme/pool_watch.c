/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pool_watch.c - the pool_low / pool_ok watcher (pool_watch.h).
 */
#include "kme/pool_watch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/monotime.h"
#include "kme/events.h"

#define WATCH_PERIOD_MS 250 /* a pool refilled within a second is still seen low */

/* pools: the local one, then per link (cfg->links[i]) ours and the peer's */
#define POOL_LOCAL 0
#define POOL_LINK(i, peer_owned) (1 + 2 * (i) + (peer_owned))
#define N_POOLS (1 + 2 * KME_MAX_LINKS)

struct pool_watch {
    const kme_config *cfg;
    keystore *ks;
    bool low[N_POOLS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    pthread_t thread;
};

/* A low pool is ok again only this share of its capacity above the mark:
 * a pool hovering at the mark (drained as fast as it fills) would
 * otherwise give a pair of events every look. */
#define OK_MARGIN 0.01

/* Report a crossing of the low mark by one pool (link: the link's peer,
 * NULL for the local pool). */
static void judge(pool_watch *w, size_t which, const char *link, bool peer_owned, uint64_t level,
                  uint64_t cap)
{
    double ratio = w->cfg->pool_low_ratio;
    double mark = w->low[which] ? ratio + OK_MARGIN : ratio;
    bool low = (double)level < (mark < 1 ? mark : 1) * (double)cap;
    if (low == w->low[which])
        return;
    w->low[which] = low;
    events_emit(low ? EV_POOL_LOW : EV_POOL_OK, &(event_fields){
        .pool = link ? "link" : "local",
        .peer = link,
        .owner = peer_owned ? "peer" : "self",
        .set = EVF_LEVEL | EVF_CAPACITY | EVF_THRESHOLD,
        .level_bits = (int64_t)level, .capacity_bits = (int64_t)cap, .threshold = ratio });
}

void pool_watch_check(pool_watch *w)
{
    ks_stats st;
    if (ks_stats_get(w->ks, &st) == KS_OK)
        judge(w, POOL_LOCAL, NULL, false, st.local_available_bits, st.local_cap_bits);
    for (size_t i = 0; i < w->cfg->n_links; i++) {
        const kme_link *l = &w->cfg->links[i];
        ks_link_stats ls;
        if (ks_link_stats_get(w->ks, l->peer, &ls) != KS_OK)
            continue;
        uint64_t cap = (uint64_t)l->pool_cap_bits;
        judge(w, POOL_LINK(i, 0), l->peer, false, ls.own_bits, cap);
        judge(w, POOL_LINK(i, 1), l->peer, true, ls.peer_bits, cap);
    }
}

static void *watch_main(void *arg)
{
    pool_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        pool_watch_check(w);
        pthread_mutex_lock(&w->mu);
        struct timespec ts = mono_timespec(mono_ms() + WATCH_PERIOD_MS);
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

pool_watch *pool_watch_start(const kme_config *cfg, keystore *ks)
{
    pool_watch *w = calloc(1, sizeof *w);
    if (!w) {
        log_error("out of memory for the pool watcher");
        return NULL;
    }
    w->cfg = cfg;
    w->ks = ks;
    pthread_mutex_init(&w->mu, NULL);
    mono_cond_init(&w->cv);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        log_error("cannot start the pool watcher thread");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void pool_watch_stop(pool_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
