/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_state.c - the link's state as its reports tell it (see
 * link_state.h).
 *
 * The key rate is measured, not taken from the link's word: bits of the
 * blocks stored here, in one-second buckets over the last
 * LINK_STATE_WINDOW_S seconds (or since the first block, when that is
 * shorter), divided by the link's time_scale to be physical.  Each KME
 * receives every block of both directions, so the rate covers both.
 */
#include "kme/link_state.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kme/events.h"

struct link_state {
    pthread_mutex_t mu;
    link_state_snapshot s;          /* everything but the rate */
    double avg_ring[LINK_STATE_AVG];
    unsigned avg_n, avg_next;
    uint64_t bucket_bits[LINK_STATE_WINDOW_S];
    int64_t bucket_sec[LINK_STATE_WINDOW_S];
    int64_t first_bits_ms;          /* -1: no block yet */
};

link_state *link_state_new(const char *link_id)
{
    link_state *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    pthread_mutex_init(&ls->mu, NULL);
    snprintf(ls->s.link_id, sizeof ls->s.link_id, "%s", link_id);
    ls->s.state = "unknown";
    ls->s.time_scale = 1;
    ls->first_bits_ms = -1;
    for (int i = 0; i < LINK_STATE_WINDOW_S; i++)
        ls->bucket_sec[i] = -1;
    return ls;
}

void link_state_free(link_state *ls)
{
    if (!ls)
        return;
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

static void add_estimate(link_state *ls, double qber)
{
    ls->avg_ring[ls->avg_next] = qber;
    ls->avg_next = (ls->avg_next + 1) % LINK_STATE_AVG;
    if (ls->avg_n < LINK_STATE_AVG)
        ls->avg_n++;
    double sum = 0;
    for (unsigned i = 0; i < ls->avg_n; i++)
        sum += ls->avg_ring[i];
    ls->s.qber_avg = sum / ls->avg_n;
}

/* The alarm: raised by an abort on QBER, cleared by the first produced
 * block under the bound; one line each. */
static void update_alarm(link_state *ls, const link_report *r)
{
    link_state_snapshot *s = &ls->s;
    bool produced = r->state == LINK_REPORT_DISTILLING && r->secret_bits > 0;
    if (!s->alarm && r->state == LINK_REPORT_ABORTED) {
        s->alarm = true;
        s->alarms++;
        log_warn("link %s: possible eavesdropping: QBER %.4f above the bound %.4f; no key is produced "
                 "until it is back under it (%s)", s->link_id, r->has_qber ? r->qber : -1.0,
                 r->has_bound ? r->bound : -1.0, r->reason[0] ? r->reason : "block aborted");
        events_qber(true, s->link_id, r->has_qber ? r->qber : -1.0, r->has_bound ? r->bound : -1.0);
    } else if (s->alarm && produced && (!r->has_qber || !r->has_bound || r->qber <= r->bound)) {
        s->alarm = false;
        events_qber(false, s->link_id, r->has_qber ? r->qber : -1.0, r->has_bound ? r->bound : -1.0);
        if (r->has_qber)
            log_warn("link %s: eavesdropping alarm cleared: QBER %.4f is under the bound %.4f, key flows again",
                     s->link_id, r->qber, r->bound);
        else
            log_warn("link %s: eavesdropping alarm cleared: model %s produces key again", s->link_id,
                     r->model ? "decoy-bb84" : "fixed");
    }
}

void link_state_report(link_state *ls, const link_report *r, int64_t now_ms)
{
    (void)now_ms;
    pthread_mutex_lock(&ls->mu);
    link_state_snapshot *s = &ls->s;
    const char *was = s->state, *model = r->model ? "decoy-bb84" : "fixed";
    bool model_changed = s->model != model;
    s->reported = true;
    s->reports++;
    s->state = link_report_state_name(r->state);
    snprintf(s->reason, sizeof s->reason, "%s", r->state == LINK_REPORT_DISTILLING ? "" : r->reason);
    s->has_qber = r->has_qber;
    s->qber = r->qber;
    if (model_changed)
        ls->avg_n = ls->avg_next = 0; /* another model: another average */
    if (r->has_qber)
        add_estimate(ls, r->qber);
    s->has_bound = r->has_bound;
    s->bound = r->bound;
    s->model = model;
    s->has_distance = r->has_distance;
    s->distance_km = r->distance_km;
    s->time_scale = r->time_scale;
    update_alarm(ls, r);
    if (was != s->state || model_changed) {
        char where[48] = "";
        if (r->has_distance)
            snprintf(where, sizeof where, " at %g km", r->distance_km);
        log_info("link %s: %s (model %s%s, time_scale %g)", s->link_id, s->state, model, where,
                 r->time_scale);
    }
    pthread_mutex_unlock(&ls->mu);
}

void link_state_bits(link_state *ls, uint64_t bits, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    int i = (int)(sec % LINK_STATE_WINDOW_S);
    pthread_mutex_lock(&ls->mu);
    if (ls->bucket_sec[i] != sec) {
        ls->bucket_sec[i] = sec;
        ls->bucket_bits[i] = 0;
    }
    ls->bucket_bits[i] += bits;
    if (ls->first_bits_ms < 0)
        ls->first_bits_ms = now_ms;
    pthread_mutex_unlock(&ls->mu);
}

/* Bits per second over the window that ends at now_ms. */
static double measured_rate(const link_state *ls, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    uint64_t bits = 0;
    if (ls->first_bits_ms < 0)
        return 0;
    for (int i = 0; i < LINK_STATE_WINDOW_S; i++)
        if (ls->bucket_sec[i] > sec - LINK_STATE_WINDOW_S && ls->bucket_sec[i] <= sec)
            bits += ls->bucket_bits[i];
    /* the window: whole buckets back to the oldest, the current one partly */
    double span = (double)(LINK_STATE_WINDOW_S - 1) + (double)(now_ms % 1000) / 1000.0;
    double since = (double)(now_ms - ls->first_bits_ms) / 1000.0;
    if (since < span)
        span = since;
    return span > 0.05 ? (double)bits / span : 0;
}

void link_state_get(link_state *ls, int64_t now_ms, link_state_snapshot *out)
{
    pthread_mutex_lock(&ls->mu);
    *out = ls->s;
    out->secret_key_rate_bps = measured_rate(ls, now_ms) / (ls->s.time_scale > 0 ? ls->s.time_scale : 1);
    pthread_mutex_unlock(&ls->mu);
}

/* Whole numbers as integers (25, not 25.0); the rest as reals; null when
 * unknown. */
static json_t *number_or_null(bool has, double v)
{
    if (!has)
        return json_null();
    if (v == floor(v) && fabs(v) < 9e15)
        return json_integer((json_int_t)v);
    return json_real(v);
}

json_t *link_state_status_json(link_state *ls, int64_t now_ms)
{
    link_state_snapshot s;
    link_state_get(ls, now_ms, &s);
    json_t *link = json_pack("{s:s, s:o, s:o, s:o, s:I, s:b, s:o, s:o, s:o}",
        "state", s.state,
        "qber", number_or_null(s.has_qber, s.qber),
        "qber_avg", number_or_null(s.has_qber, s.qber_avg),
        "bound", number_or_null(s.has_bound, s.bound),
        "secret_key_rate_bps", (json_int_t)llround(s.secret_key_rate_bps),
        "alarm", s.alarm,
        "model", s.model ? json_string(s.model) : json_null(),
        "distance_km", number_or_null(s.has_distance, s.distance_km),
        "time_scale", number_or_null(true, s.time_scale));
    return link ? json_pack("{s:o}", "link", link) : NULL;
}
