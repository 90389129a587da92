/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_state.h - what a KME knows about its QKD link from the link's
 * reports (issue 13, docs/link.md "What the KMEs do with it"): the state
 * (distilling, marginal, aborted, no key at this distance), the last QBER
 * estimate and a moving average, the bound, the secret key rate measured
 * from the blocks received, and the eavesdropping alarm.
 *
 * link_intake.c feeds it (link_state_report per report, link_state_bits
 * per stored block); the ETSI status answer (api.c) and the admin metrics
 * read it through link_state_get, a snapshot taken under its lock, so
 * readers on any thread never see half a report.  The alarm is raised by a
 * report that aborts on QBER and cleared by the first produced block
 * under the bound, with one log line each: per state change, never per
 * block.
 */
#ifndef QC_KME_LINK_STATE_H
#define QC_KME_LINK_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "kme/link_block.h"

typedef struct link_state link_state;

/* A consistent copy of one link's state. */
typedef struct link_state_snapshot {
    char link_id[128];
    bool reported;               /* any report received since the start */
    const char *state;           /* "distilling", ..., "unknown" before any report (static) */
    char reason[LINK_REPORT_REASON_MAX + 1]; /* of the last abort ("" otherwise) */
    bool has_qber;               /* false with model fixed or before any report */
    double qber;                 /* last estimate */
    double qber_avg;             /* mean of the last LINK_STATE_AVG estimates */
    bool has_bound;
    double bound;                /* QBER above which blocks abort */
    double secret_key_rate_bps;  /* physical (divided by time_scale), both directions */
    bool alarm;                  /* possible eavesdropping */
    const char *model;           /* "fixed", "decoy-bb84"; NULL before any report (static) */
    bool has_distance;
    double distance_km;
    double time_scale;           /* 1 before any report */
    uint64_t reports;            /* reports taken */
    uint64_t alarms;             /* times the alarm was raised */
} link_state_snapshot;

#define LINK_STATE_AVG 16        /* estimates in the moving average */
#define LINK_STATE_WINDOW_S 10   /* seconds over which the key rate is measured */

/* NULL when out of memory. */
link_state *link_state_new(const char *link_id);
void link_state_free(link_state *ls);

/* One report from the link (already validated by link_parse_report). */
void link_state_report(link_state *ls, const link_report *r, int64_t now_ms);

/* bits of key stored from one block. */
void link_state_bits(link_state *ls, uint64_t bits, int64_t now_ms);

/* The state now (the rate window ends at now_ms). */
void link_state_get(link_state *ls, int64_t now_ms, link_state_snapshot *out);

/* The ETSI status answer's extension for a slave behind this link:
 * {"link": {"state", "qber", "qber_avg", "bound", "secret_key_rate_bps",
 * "alarm", "model", "distance_km", "time_scale"}} (docs/kme.md); the
 * caller owns the object.  NULL when out of memory. */
struct json_t;
struct json_t *link_state_status_json(link_state *ls, int64_t now_ms);

#endif
