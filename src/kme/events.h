/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.h - the KME's security events: what every part of the daemon
 * reports (a 401, a caller that is not a slave, an empty or low pool, a
 * rate limit, a QBER alarm, a peer down or up, a key reuse attempt), the
 * audit log they are written to ([kme] audit_log, JSON lines) and the
 * alert command run for alarms ([alerts] command).
 *
 * Reporting never blocks a request: an event is counted (atomically, for
 * /metrics), copied into a bounded queue and the call returns; one writer
 * thread formats the JSON lines, writes the audit log and spawns the alert
 * command (alerts.c).  When the queue is full the event is dropped and
 * counted; the writer logs the count once when it catches up.  No event
 * carries key material: the fields below are the whole vocabulary.
 *
 * Every function here may be called before events_start() or without an
 * audit log: events are then counted (and the alarms logged) only.
 */
#ifndef QC_KME_EVENTS_H
#define QC_KME_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum event_kind {
    EV_UNAUTHORIZED = 0, /* a 401 answer, of any cause */
    EV_NOT_A_SLAVE,      /* dec_keys by an SAE the keys were not made for (a 401) */
    EV_POOL_EXHAUSTED,   /* enc_keys refused: not enough key material */
    EV_POOL_LOW,         /* a pool fell below [limits] pool_low_ratio of its capacity */
    EV_POOL_OK,          /* ... and rose back to it */
    EV_RATE_LIMITED,     /* enc_keys refused by the caller's token bucket */
    EV_QBER_ALARM,       /* the link raised its QBER alarm */
    EV_QBER_CLEARED,     /* ... and cleared it */
    EV_PEER_DOWN,        /* a peer KME stopped answering */
    EV_PEER_UP,          /* ... and answers again */
    EV_KEY_REUSE,        /* dec_keys for keys already delivered: a security violation */
    EV_KIND_COUNT
} event_kind;

/* "unauthorized", "not_a_slave", ... (the audit log's and the metric's
 * label), or NULL past the end. */
const char *event_kind_name(event_kind kind);

/* Is this kind an alarm, for which the alert command runs? */
bool event_kind_is_alarm(event_kind kind);

/* Events of this kind reported since the start (dropped ones included). */
uint64_t events_total(event_kind kind);

/* Events lost because the queue was full, since the start. */
uint64_t events_dropped(void);

/* The last EVENTS_RECENT events reported (the status page's list), each
 * with who it concerns (the SAE, else the peer, else the link) and why
 * (the certificate reason or another reason), truncated, unescaped: they
 * may come from a hostile client, escape them where they are shown. */
#define EVENTS_RECENT 20
#define EVENTS_RECENT_TEXT 80
typedef struct event_recent {
    int64_t unix_ms;
    event_kind kind;
    char who[EVENTS_RECENT_TEXT];
    char why[EVENTS_RECENT_TEXT];
} event_recent;
/* Copies at most max of them into out, newest first; their number. */
size_t events_recent(event_recent *out, size_t max);

/* The queue's size: reports beyond it while the writer is behind are
 * dropped (and counted). */
#define EVENTS_QUEUE_SLOTS 1024u

/* The fields an event may carry; NULL strings and unset numbers are left
 * out of its JSON line.  Strings are copied (truncated at EVENT_TEXT_MAX
 * bytes) and escaped when written: they may come from a hostile peer. */
#define EVENT_TEXT_MAX 256
typedef struct event_fields {
    const char *sae_id;      /* the caller's SAE ID (the verified identity) */
    const char *master;      /* dec_keys: the master SAE ID of the path */
    const char *slave;       /* enc_keys: the slave SAE ID of the path */
    const char *listener;    /* unauthorized: sae_api, peer_api, link */
    const char *reason;      /* unauthorized: the certificate reason; other kinds: why */
    const char *cert_cn;     /* unauthorized: the refused certificate's subject CN */
    const char *peer;        /* the peer KME (pools, peer up/down) */
    const char *link;        /* QBER events: the QKD link's ID */
    const char *pool;        /* pools: "local" (CSPRNG) or "link" */
    const char *owner;       /* link pools: "self" or "peer" */
    /* Numbers: each is written when its EVF_ bit is in `set`. */
    unsigned set;
    int64_t keys;            /* EVF_KEYS: keys asked for or delivered */
    int64_t bits;            /* EVF_BITS: bits asked for */
    int64_t level_bits;      /* EVF_LEVEL: the pool's level */
    int64_t capacity_bits;   /* EVF_CAPACITY: the pool's capacity */
    int64_t retry_after_s;   /* EVF_RETRY: rate limits */
    double qber;             /* EVF_QBER: the link's QBER (ratio) */
    double threshold;        /* EVF_THRESHOLD: the ratio crossed */
} event_fields;

enum {
    EVF_KEYS = 1u << 0,
    EVF_BITS = 1u << 1,
    EVF_LEVEL = 1u << 2,
    EVF_CAPACITY = 1u << 3,
    EVF_RETRY = 1u << 4,
    EVF_QBER = 1u << 5,
    EVF_THRESHOLD = 1u << 6,
};

/* Report one event: counted, queued for the writer, never blocking. */
void events_emit(event_kind kind, const event_fields *f);

/* The reports of the daemon's parts, one per kind, over events_emit. */
void events_unauthorized(const char *listener, const char *reason, const char *cert_cn,
                         const char *sae_id);
void events_not_a_slave(const char *sae_id, const char *master, size_t keys);
void events_pool_exhausted(const char *sae_id, const char *slave, const char *peer,
                           uint64_t bits);
void events_rate_limited(const char *sae_id, uint64_t bits, unsigned retry_after_s);
/* The link state (link_state.c) and the peer probe call these on a change:
 * the QBER alarm of link_id raised or cleared (qber < 0: not reported), a
 * peer KME down (with why) or up again. */
void events_qber(bool alarm, const char *link_id, double qber, double bound);
void events_peer(bool up, const char *peer, const char *reason);
/* The key store calls this for dec_keys of keys already delivered to the
 * caller (logged as a "security violation"). */
void events_key_reuse(const char *sae_id, const char *master, size_t keys);

/* ---- the writer ------------------------------------------------------ */

typedef struct events_options {
    const char *kme_id;        /* written in every line */
    const char *audit_log;     /* FILE, or NULL: no audit log */
    const char *alert_command; /* absolute path, or NULL: no alerts */
    unsigned alert_timeout_s;  /* a command still running then is killed */
    unsigned alert_interval_s; /* at most one run per kind and peer per interval */
} events_options;

/* Open the audit log (O_APPEND | O_NOFOLLOW, mode 0600; a symbolic link, a
 * file that is no regular file, is owned by another user or readable by
 * others is refused) and start the writer thread.  0, or -1 with the
 * reason in err. */
int events_start(const events_options *opt, char *err, size_t errlen);

/* Check and open the audit log as events_start does: the descriptor, or
 * -1 with the reason in err (also for `--check` and tests). */
int events_open_log(const char *path, char *err, size_t errlen);

/* SIGHUP: the writer reopens the audit log by its name (log rotation:
 * `mv` the file, then signal); if that fails it keeps the old file and
 * logs why. */
void events_reopen(void);

/* Write what is queued, wait for (or kill) the alert commands, stop the
 * writer and close the log. */
void events_stop(void);

/* Tests: hold the writer (it takes nothing from the queue; stopping
 * still drains it) or let it go on. */
void events_testing_hold(bool hold);

/* Tests: the JSON line of one event (no newline), as the writer writes
 * it; the caller frees it.  NULL when out of memory. */
char *events_format(event_kind kind, const event_fields *f, const char *kme_id,
                    int64_t unix_ms);

#endif
