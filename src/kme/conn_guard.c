/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn_guard.c - deadline, budget and aggregated failure log of a
 * listener's unauthenticated connections (conn_guard.h says why).
 *
 * One mutex guards everything; one timer thread per listener ends the
 * connections whose deadline passed and writes the log every interval.
 * Ending a connection is shutdown(fd) under the mutex: libmicrohttpd calls
 * conn_guard_closed (which takes the mutex) before it closes the socket,
 * so the guard never touches a descriptor that was closed and reused.
 */
#include "kme/conn_guard.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/monotime.h"

#define SOURCE_BUCKETS 1024
#define LOG_SOURCES_MAX 32   /* addresses named per interval; the rest summed */
#define LOG_TEXTS_MAX 16     /* libmicrohttpd messages per interval */
#define LOG_TEXT_LEN 200

struct guard_source {
    guard_source *next;          /* in its bucket */
    guard_conn *head, *tail;     /* its unauthenticated connections */
    unsigned count;
    char addr[INET6_ADDRSTRLEN];
};

typedef struct failures {
    char addr[INET6_ADDRSTRLEN];
    unsigned long n[GONE_N];
} failures;

typedef struct interval_log {
    failures by_source[LOG_SOURCES_MAX];
    size_t n_sources;
    failures others;             /* addresses past LOG_SOURCES_MAX */
    struct { char text[LOG_TEXT_LEN]; unsigned long repeats; } texts[LOG_TEXTS_MAX];
    size_t n_texts;
    unsigned long other_texts;
} interval_log;

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    bool stop;
    char name[32];
    unsigned budget, deadline_ms;
    guard_conn *head, *tail;     /* unauthenticated, oldest first */
    unsigned count;
    guard_source *buckets[SOURCE_BUCKETS];
    int64_t next_flush_ms;
    interval_log log;
};

static const char *const REASON_TEXT[GONE_N] = {
    [GONE_CLOSED] = "closed by the client or failed TLS",
    [GONE_DEADLINE] = "handshake deadline",
    [GONE_EVICTED] = "evicted (unauthenticated budget full)",
    [GONE_NO_CERT] = "no valid certificate",
    [GONE_NOT_ALLOWED] = "not in allow_from",
};

/* ---- addresses --------------------------------------------------------- */

void conn_guard_addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, a6->s6_addr + 12, out, (socklen_t)outlen);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)outlen);
    }
}

static unsigned bucket_of(const char *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *addr; addr++)
        h = (h ^ (uint8_t)*addr) * 16777619u;
    return h % SOURCE_BUCKETS;
}

static guard_source *source_get(conn_guard *g, const char *addr)
{
    guard_source **b = &g->buckets[bucket_of(addr)];
    for (guard_source *s = *b; s; s = s->next)
        if (strcmp(s->addr, addr) == 0)
            return s;
    guard_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->next = *b;
    *b = s;
    return s;
}

static void source_release(conn_guard *g, guard_source *s)
{
    if (s->count)
        return;
    for (guard_source **p = &g->buckets[bucket_of(s->addr)]; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            free(s);
            return;
        }
}

/* ---- the waiting lists ------------------------------------------------- */

static void wait_link(conn_guard *g, guard_conn *c)
{
    c->prev = g->tail;
    c->next = NULL;
    if (g->tail)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
    g->count++;
    guard_source *s = c->source;
    if (s) {
        c->sprev = s->tail;
        c->snext = NULL;
        if (s->tail)
            s->tail->snext = c;
        else
            s->head = c;
        s->tail = c;
        s->count++;
    }
    c->waiting = true;
}

static void wait_unlink(conn_guard *g, guard_conn *c)
{
    if (!c->waiting)
        return;
    if (c->prev) c->prev->next = c->next; else g->head = c->next;
    if (c->next) c->next->prev = c->prev; else g->tail = c->prev;
    g->count--;
    guard_source *s = c->source;
    if (s) {
        if (c->sprev) c->sprev->snext = c->snext; else s->head = c->snext;
        if (c->snext) c->snext->sprev = c->sprev; else s->tail = c->sprev;
        s->count--;
        source_release(g, s);
    }
    c->source = NULL;
    c->prev = c->next = c->sprev = c->snext = NULL;
    c->waiting = false;
}

/* End a waiting connection: libmicrohttpd sees the shutdown and closes it. */
static void end_conn(conn_guard *g, guard_conn *c, guard_reason why)
{
    c->ended_by = why;
    wait_unlink(g, c);
    shutdown(c->fd, SHUT_RDWR);
}

/* ---- the interval's log ------------------------------------------------ */

static void note_failure(conn_guard *g, const char *addr, guard_reason why)
{
    interval_log *l = &g->log;
    for (size_t i = 0; i < l->n_sources; i++)
        if (strcmp(l->by_source[i].addr, addr) == 0) {
            l->by_source[i].n[why]++;
            return;
        }
    if (l->n_sources < LOG_SOURCES_MAX) {
        failures *f = &l->by_source[l->n_sources++];
        memset(f, 0, sizeof *f);
        snprintf(f->addr, sizeof f->addr, "%s", addr);
        f->n[why] = 1;
        return;
    }
    l->others.n[why]++;
}

static void log_failures(const char *name, const failures *f, const char *from)
{
    unsigned long total = 0;
    char reasons[512] = "";
    size_t used = 0;
    for (int r = 0; r < GONE_N; r++) {
        if (!f->n[r])
            continue;
        total += f->n[r];
        int w = snprintf(reasons + used, sizeof reasons - used, "%s%lu %s", used ? ", " : "",
                         f->n[r], REASON_TEXT[r]);
        if (w > 0 && (size_t)w < sizeof reasons - used)
            used += (size_t)w;
    }
    if (total)
        log_info("%s: %lu connection%s from %s closed before authenticating in the last %d s: %s",
                 name, total, total == 1 ? "" : "s", from, GUARD_LOG_INTERVAL_S, reasons);
}

static void write_log(const char *name, const interval_log *l)
{
    for (size_t i = 0; i < l->n_sources; i++)
        log_failures(name, &l->by_source[i], l->by_source[i].addr);
    log_failures(name, &l->others, "other addresses");
    for (size_t i = 0; i < l->n_texts; i++)
        if (l->texts[i].repeats)
            log_info("%s: http: %lu more in the last %d s: %s", name, l->texts[i].repeats,
                     GUARD_LOG_INTERVAL_S, l->texts[i].text);
    if (l->other_texts)
        log_info("%s: http: %lu other messages in the last %d s not shown", name, l->other_texts,
                 GUARD_LOG_INTERVAL_S);
}

/* Write and reset the interval's log; called and returns with g->mu held,
 * writes without it. */
static void flush_log(conn_guard *g)
{
    interval_log *copy = malloc(sizeof *copy);
    if (copy)
        *copy = g->log;
    memset(&g->log, 0, sizeof g->log);
    pthread_mutex_unlock(&g->mu);
    if (copy)
        write_log(g->name, copy);
    free(copy);
    pthread_mutex_lock(&g->mu);
}

/* ---- the timer --------------------------------------------------------- */

static void *timer_run(void *arg)
{
    conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = mono_ms();
        while (g->head && g->head->deadline_ms <= now)
            end_conn(g, g->head, GONE_DEADLINE);
        if (now >= g->next_flush_ms) {
            g->next_flush_ms = now + GUARD_LOG_INTERVAL_S * 1000;
            flush_log(g);
            continue;
        }
        int64_t wake = g->next_flush_ms;
        if (g->head && g->head->deadline_ms < wake)
            wake = g->head->deadline_ms;
        struct timespec ts = mono_timespec(wake);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    flush_log(g);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

conn_guard *conn_guard_new(const char *name, unsigned budget, unsigned deadline_ms)
{
    conn_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->budget = budget ? budget : 1;
    g->deadline_ms = deadline_ms;
    g->next_flush_ms = mono_ms() + GUARD_LOG_INTERVAL_S * 1000;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (mono_cond_init(&g->cv) != 0 || pthread_create(&g->timer, NULL, timer_run, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

void conn_guard_free(conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->timer, NULL);
    while (g->head) /* none after the listener stopped; never leak a source */
        wait_unlink(g, g->head);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* ---- connection events ------------------------------------------------- */

void conn_guard_accepted(conn_guard *g, guard_conn *c, int fd, const struct sockaddr *sa)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    conn_guard_addr_text(sa, c->addr, sizeof c->addr);
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = mono_ms() + g->deadline_ms;
    c->source = source_get(g, c->addr); /* NULL without memory: no fairness */
    if (g->count >= g->budget) {
        bool crowding = c->source && c->source->head && c->source->count > g->budget / 8;
        end_conn(g, crowding ? c->source->head : g->head, GONE_EVICTED);
    }
    bool was_empty = g->head == NULL;
    wait_link(g, c);
    if (was_empty)
        pthread_cond_signal(&g->cv); /* the timer may sleep past this deadline */
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_authenticated(conn_guard *g, guard_conn *c)
{
    pthread_mutex_lock(&g->mu);
    wait_unlink(g, c);
    c->authenticated = true;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_refused(conn_guard *g, guard_conn *c)
{
    pthread_mutex_lock(&g->mu);
    wait_unlink(g, c);
    c->ended_by = GONE_NO_CERT;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_closed(conn_guard *g, guard_conn *c)
{
    pthread_mutex_lock(&g->mu);
    wait_unlink(g, c);
    if (!c->authenticated)
        note_failure(g, c->addr, c->ended_by);
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_dropped(conn_guard *g, const struct sockaddr *sa, guard_reason why)
{
    char addr[INET6_ADDRSTRLEN];
    conn_guard_addr_text(sa, addr, sizeof addr);
    pthread_mutex_lock(&g->mu);
    note_failure(g, addr, why);
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_http_message(conn_guard *g, const char *text)
{
    bool first = false;
    pthread_mutex_lock(&g->mu);
    interval_log *l = &g->log;
    size_t i = 0;
    while (i < l->n_texts && strncmp(l->texts[i].text, text, LOG_TEXT_LEN - 1) != 0)
        i++;
    if (i < l->n_texts) {
        l->texts[i].repeats++;
    } else if (l->n_texts < LOG_TEXTS_MAX) {
        snprintf(l->texts[l->n_texts++].text, LOG_TEXT_LEN, "%s", text);
        first = true;
    } else {
        l->other_texts++;
    }
    pthread_mutex_unlock(&g->mu);
    if (first)
        log_info("%s: http: %s", g->name, text);
}
