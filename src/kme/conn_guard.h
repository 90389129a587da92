/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn_guard.h - a listener's connections that have not authenticated yet:
 * their deadline, their budget, and the log of how they ended.
 *
 * A TCP connection costs the KME a file descriptor and a slot of
 * libmicrohttpd's connection limit from accept on, long before TLS says
 * who is calling.  libmicrohttpd's own timeout is idle-based (one byte a
 * second defeats it), so the guard gives every connection an absolute
 * deadline from accept to its first authenticated request and shuts the
 * socket down when it passes (shutdown(2) only: libmicrohttpd sees the
 * end in its own thread and closes and frees the connection there).
 *
 * Unauthenticated connections also count against a budget of their own,
 * a part of the listener's connection limit, so that they can never take
 * the slots of authenticated clients.  When the budget is full a new
 * connection is not refused (a flood would then lock out every new
 * legitimate client until its sockets time out): the oldest unauthenticated
 * connection is ended instead — of the newcomer's own address when that
 * address holds more than an eighth of the budget, so that a flood from one
 * address pushes out only its own connections.  A legitimate handshake
 * takes milliseconds; to push it out, a flood must open a whole budget of
 * connections in that time.
 *
 * Failures are not logged one by one (a flood wrote 2.3 MB in 3 s): the
 * guard counts them per source address and reason and writes one line per
 * address every GUARD_LOG_INTERVAL_S, and libmicrohttpd's messages (one
 * per failed handshake) once per text and interval with a repeat count.
 */
#ifndef QC_KME_CONN_GUARD_H
#define QC_KME_CONN_GUARD_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define GUARD_LOG_INTERVAL_S 10

/* How a connection ended before authenticating. */
typedef enum {
    GONE_CLOSED = 0,     /* closed by the client, or TLS failed */
    GONE_DEADLINE,       /* handshake_timeout_ms passed */
    GONE_EVICTED,        /* pushed out: the unauthenticated budget was full */
    GONE_NO_CERT,        /* no valid certificate of a known party (401) */
    GONE_NOT_ALLOWED,    /* address not in allow_from: dropped at accept */
    GONE_N
} guard_reason;

typedef struct guard_source guard_source;

/* Per connection; embedded in the listener's connection context. */
typedef struct guard_conn {
    struct guard_conn *prev, *next;   /* all unauthenticated, oldest first */
    struct guard_conn *sprev, *snext; /* the same, of its source address */
    guard_source *source;
    int fd;
    int64_t deadline_ms;
    guard_reason ended_by;            /* set when the guard ends it */
    bool waiting;                     /* in the lists above */
    bool authenticated;
    char addr[INET6_ADDRSTRLEN];
} guard_conn;

typedef struct conn_guard conn_guard;

/* name for logs; budget of unauthenticated connections (at least 1);
 * deadline from accept in ms.  NULL on failure (out of memory, thread). */
conn_guard *conn_guard_new(const char *name, unsigned budget, unsigned deadline_ms);

/* Stop the timer thread and free.  Call after the listener stopped (no
 * connection is left). */
void conn_guard_free(conn_guard *g);

/* A new connection: tracked until it authenticates; may end the oldest. */
void conn_guard_accepted(conn_guard *g, guard_conn *c, int fd, const struct sockaddr *sa);

/* Its first request carried a valid certificate: no deadline any more. */
void conn_guard_authenticated(conn_guard *g, guard_conn *c);

/* Its certificate was refused (the 401 closes it). */
void conn_guard_refused(conn_guard *g, guard_conn *c);

/* libmicrohttpd is closing it (before the socket is closed). */
void conn_guard_closed(conn_guard *g, guard_conn *c);

/* A connection dropped at accept (no guard_conn): counted in the log. */
void conn_guard_dropped(conn_guard *g, const struct sockaddr *sa, guard_reason why);

/* One of libmicrohttpd's log messages: written once per text and interval. */
void conn_guard_http_message(conn_guard *g, const char *text);

/* Text form of an address (numeric; IPv4-mapped IPv6 as IPv4). */
void conn_guard_addr_text(const struct sockaddr *sa, char *out, size_t outlen);

#endif
