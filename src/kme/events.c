/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.c - security events (events.h): counters, the bounded queue, the
 * writer thread, the JSON lines of the audit log and the log file itself.
 *
 * The emit path takes one mutex for a copy into a ring of fixed slots: no
 * allocation, no I/O, no waiting for room (a full ring drops and counts).
 * The writer pops one event at a time, formats it with no lock held, and
 * writes it with one write(2) on an O_APPEND descriptor, so that a line is
 * never interleaved with another writer's and a reader never sees half a
 * line.  Every string is escaped down to printable ASCII: a hostile
 * certificate CN or SAE ID with quotes, newlines, control bytes or invalid
 * UTF-8 stays inside its JSON string, and one event is one line.
 */
#include "kme/events.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/monotime.h"
#include "kme/alerts.h"

static const char *const kind_names[EV_KIND_COUNT] = {
    [EV_UNAUTHORIZED] = "unauthorized",
    [EV_NOT_A_SLAVE] = "not_a_slave",
    [EV_POOL_EXHAUSTED] = "pool_exhausted",
    [EV_POOL_LOW] = "pool_low",
    [EV_POOL_OK] = "pool_ok",
    [EV_RATE_LIMITED] = "rate_limited",
    [EV_QBER_ALARM] = "qber_alarm",
    [EV_QBER_CLEARED] = "qber_cleared",
    [EV_PEER_DOWN] = "peer_down",
    [EV_PEER_UP] = "peer_up",
    [EV_KEY_REUSE] = "key_reuse",
};

const char *event_kind_name(event_kind kind)
{
    return (unsigned)kind < EV_KIND_COUNT ? kind_names[kind] : NULL;
}

bool event_kind_is_alarm(event_kind kind)
{
    return kind == EV_POOL_EXHAUSTED || kind == EV_POOL_LOW || kind == EV_QBER_ALARM
        || kind == EV_PEER_DOWN;
}

/* ---- counters ---------------------------------------------------------- */

static _Atomic uint64_t totals[EV_KIND_COUNT];
static _Atomic uint64_t dropped_total;

uint64_t events_total(event_kind kind)
{
    return (unsigned)kind < EV_KIND_COUNT ? atomic_load_explicit(&totals[kind], memory_order_relaxed) : 0;
}

uint64_t events_dropped(void)
{
    return atomic_load_explicit(&dropped_total, memory_order_relaxed);
}

/* ---- the queue ----------------------------------------------------------- */

enum { T_SAE, T_MASTER, T_SLAVE, T_LISTENER, T_REASON, T_CN, T_PEER, T_LINK, T_POOL, T_OWNER, N_TEXT };
#define QUEUE_SLOTS EVENTS_QUEUE_SLOTS

typedef struct queued_event {
    event_kind kind;
    int64_t unix_ms;
    event_fields f;                          /* its strings point into text */
    bool has[N_TEXT];
    char text[N_TEXT][EVENT_TEXT_MAX + 1];
} queued_event;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, stopping, reopen, held;
    size_t head, count;                 /* ring of QUEUE_SLOTS */
    queued_event slots[QUEUE_SLOTS];
    pthread_t thread;
    int fd;                             /* the audit log, or -1 */
    char *path, *kme_id;
    uint64_t drops_reported;
} Q = { .mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static int64_t unix_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char **text_field(event_fields *f, int i)
{
    switch (i) {
    case T_SAE: return &f->sae_id;
    case T_MASTER: return &f->master;
    case T_SLAVE: return &f->slave;
    case T_LISTENER: return &f->listener;
    case T_REASON: return &f->reason;
    case T_CN: return &f->cert_cn;
    case T_PEER: return &f->peer;
    case T_LINK: return &f->link;
    case T_POOL: return &f->pool;
    default: return &f->owner;
    }
}

/* Copy an event into a slot: its strings into the slot's own storage. */
static void fill_slot(queued_event *q, event_kind kind, const event_fields *f)
{
    q->kind = kind;
    q->unix_ms = unix_now_ms();
    q->f = *f;
    for (int i = 0; i < N_TEXT; i++) {
        const char **p = text_field(&q->f, i);
        q->has[i] = *p != NULL;
        if (*p) {
            size_t n = strnlen(*p, EVENT_TEXT_MAX);
            memcpy(q->text[i], *p, n);
            q->text[i][n] = '\0';
        }
    }
}

/* The slot's string pointers, once it is copied out of the ring. */
static void point_texts(queued_event *q)
{
    for (int i = 0; i < N_TEXT; i++)
        *text_field(&q->f, i) = q->has[i] ? q->text[i] : NULL;
}

/* ---- the last events (status page) ---------------------------------------- */

static struct {
    pthread_mutex_t mu;
    event_recent ring[EVENTS_RECENT];
    size_t next, count;
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void copy_text(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, EVENTS_RECENT_TEXT - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static void remember(event_kind kind, const event_fields *f)
{
    const char *who = f->sae_id ? f->sae_id : f->peer ? f->peer : f->link;
    pthread_mutex_lock(&R.mu);
    event_recent *e = &R.ring[R.next];
    e->unix_ms = unix_now_ms();
    e->kind = kind;
    copy_text(e->who, who);
    copy_text(e->why, f->reason);
    R.next = (R.next + 1) % EVENTS_RECENT;
    if (R.count < EVENTS_RECENT)
        R.count++;
    pthread_mutex_unlock(&R.mu);
}

size_t events_recent(event_recent *out, size_t max)
{
    pthread_mutex_lock(&R.mu);
    size_t n = R.count < max ? R.count : max;
    for (size_t i = 0; i < n; i++)
        out[i] = R.ring[(R.next + EVENTS_RECENT - 1 - i) % EVENTS_RECENT];
    pthread_mutex_unlock(&R.mu);
    return n;
}

void events_emit(event_kind kind, const event_fields *f)
{
    if ((unsigned)kind >= EV_KIND_COUNT)
        return;
    atomic_fetch_add_explicit(&totals[kind], 1, memory_order_relaxed);
    remember(kind, f);
    pthread_mutex_lock(&Q.mu);
    if (!Q.running || Q.stopping) {
        pthread_mutex_unlock(&Q.mu);
        return;
    }
    if (Q.count == QUEUE_SLOTS) {
        pthread_mutex_unlock(&Q.mu);
        atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
        return;
    }
    fill_slot(&Q.slots[(Q.head + Q.count) % QUEUE_SLOTS], kind, f);
    Q.count++;
    pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
}

/* ---- JSON lines ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (1..4) and its code point,
 * or 0 when the bytes there are not one (overlong, surrogate, past
 * U+10FFFF, cut short). */
static size_t utf8_sequence(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static void put_u(jsonw *w, uint32_t unit)
{
    char e[8];
    snprintf(e, sizeof e, "\\u%04" PRIx32, unit);
    jw_raw(w, e, 6);
}

/* A JSON string in printable ASCII only: '"' and '\\' escaped, every
 * control byte, DEL and non-ASCII character as \uXXXX (UTF-16 pairs past
 * U+FFFF), and every byte that is not valid UTF-8 as \ufffd. */
static void put_ascii_string(jsonw *w, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    jw_raw(w, "\"", 1);
    while (*s) {
        uint32_t cp;
        size_t n = utf8_sequence(s, &cp);
        if (n == 0) {
            put_u(w, 0xFFFD);
            s++;
            continue;
        }
        s += n;
        if (cp == '"' || cp == '\\') {
            char e[2] = { '\\', (char)cp };
            jw_raw(w, e, 2);
        } else if (cp >= 0x20 && cp < 0x7F) {
            char c = (char)cp;
            jw_raw(w, &c, 1);
        } else if (cp < 0x10000) {
            put_u(w, cp);
        } else {
            cp -= 0x10000;
            put_u(w, 0xD800 + (cp >> 10));
            put_u(w, 0xDC00 + (cp & 0x3FF));
        }
    }
    jw_raw(w, "\"", 1);
}

static void put_member_str(jsonw *w, const char *name, const char *value)
{
    if (!value)
        return;
    jw_raw(w, ",\"", 2);
    jw_lit(w, name);
    jw_raw(w, "\":", 2);
    put_ascii_string(w, value);
}

static void put_member_int(jsonw *w, bool present, const char *name, int64_t value)
{
    if (!present)
        return;
    jw_raw(w, ",\"", 2);
    jw_lit(w, name);
    jw_raw(w, "\":", 2);
    jw_int(w, value);
}

static void put_member_ratio(jsonw *w, bool present, const char *name, double value)
{
    char num[32];
    if (!present)
        return;
    if (!(value >= 0 && value <= 1e9)) /* NaN or absurd: JSON has no NaN */
        value = 0;
    snprintf(num, sizeof num, "%.6g", value);
    jw_raw(w, ",\"", 2);
    jw_lit(w, name);
    jw_raw(w, "\":", 2);
    jw_lit(w, num);
}

/* RFC 3339, UTC, milliseconds: 2026-12-07T08:15:02.123Z */
static void put_time(jsonw *w, int64_t unix_ms)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    char t[40];
    gmtime_r(&secs, &tm);
    size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + n, sizeof t - n, ".%03dZ", (int)(unix_ms % 1000));
    jw_lit(w, "{\"time\":\"");
    jw_lit(w, t);
    jw_raw(w, "\"", 1);
}

char *events_format(event_kind kind, const event_fields *f, const char *kme_id, int64_t unix_ms)
{
    jsonw w;
    jw_init(&w, 256);
    put_time(&w, unix_ms);
    put_member_str(&w, "kme", kme_id);
    put_member_str(&w, "kind", event_kind_name(kind));
    if (kind == EV_KEY_REUSE)
        put_member_str(&w, "severity", "security violation");
    put_member_str(&w, "sae_id", f->sae_id);
    put_member_str(&w, "master_sae_id", f->master);
    put_member_str(&w, "slave_sae_id", f->slave);
    put_member_str(&w, "listener", f->listener);
    put_member_str(&w, "reason", f->reason);
    put_member_str(&w, "cert_cn", f->cert_cn);
    put_member_str(&w, "peer", f->peer);
    put_member_str(&w, "link", f->link);
    put_member_str(&w, "pool", f->pool);
    put_member_str(&w, "owner", f->owner);
    put_member_int(&w, f->set & EVF_KEYS, "keys", f->keys);
    put_member_int(&w, f->set & EVF_BITS, "bits", f->bits);
    put_member_int(&w, f->set & EVF_LEVEL, "level_bits", f->level_bits);
    put_member_int(&w, f->set & EVF_CAPACITY, "capacity_bits", f->capacity_bits);
    put_member_int(&w, f->set & EVF_RETRY, "retry_after_s", f->retry_after_s);
    put_member_ratio(&w, f->set & EVF_QBER, "qber", f->qber);
    put_member_ratio(&w, f->set & EVF_THRESHOLD, "threshold", f->threshold);
    jw_raw(&w, "}", 1);
    return jw_finish(&w, NULL);
}

/* ---- the audit log file ------------------------------------------------- */

int events_open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(err, errlen, "%s is a symbolic link: refused (give the real file)", path);
        else
            snprintf(err, errlen, "cannot open %s for appending: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    char buf[128];
    if (fstat(fd, &st) != 0) {
        snprintf(buf, sizeof buf, "cannot stat it: %s", strerror(errno));
        why = buf;
    } else if (!S_ISREG(st.st_mode)) {
        why = "it is not a regular file";
    } else if (st.st_uid != geteuid()) {
        snprintf(buf, sizeof buf, "it is owned by uid %u, not by this process's uid %u",
                 (unsigned)st.st_uid, (unsigned)geteuid());
        why = buf;
    } else if (st.st_mode & 077) {
        snprintf(buf, sizeof buf, "its mode %04o lets others read or write it (chmod 600 it)",
                 (unsigned)(st.st_mode & 07777));
        why = buf;
    }
    if (why) {
        snprintf(err, errlen, "%s: refused: %s", path, why);
        close(fd);
        return -1;
    }
    return fd;
}

static void reopen_log(void)
{
    char err[512];
    int fd = events_open_log(Q.path, err, sizeof err);
    if (fd < 0) {
        log_error("SIGHUP: audit log not reopened, writing on to the old file: %s", err);
        return;
    }
    close(Q.fd);
    Q.fd = fd;
    log_info("SIGHUP: audit log %s reopened", Q.path);
}

/* One line, one write: O_APPEND makes it atomic against other appenders. */
static void write_line(const char *line)
{
    if (Q.fd < 0)
        return;
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    if (!buf)
        return;
    memcpy(buf, line, n);
    buf[n] = '\n';
    ssize_t w;
    do
        w = write(Q.fd, buf, n + 1);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)(n + 1))
        log_error("audit log %s: a line of %zu bytes not written whole: %s", Q.path, n + 1,
                  w < 0 ? strerror(errno) : "short write");
    free(buf);
}

/* ---- the writer thread -------------------------------------------------- */

/* The daemon's log line of the events an operator must see there too. */
static void log_event(event_kind kind, const event_fields *f)
{
    switch (kind) {
    case EV_KEY_REUSE:
        log_warn("security violation: SAE %s asked again for %" PRId64 " key(s) of master %s "
                 "already delivered to it", f->sae_id ? f->sae_id : "?", f->keys,
                 f->master ? f->master : "?");
        break;
    case EV_POOL_LOW:
    case EV_POOL_OK:
        log_warn("key pool %s%s%s%s is %s: %" PRId64 " of %" PRId64 " bits",
                 f->pool ? f->pool : "?", f->peer ? " to " : "", f->peer ? f->peer : "",
                 f->owner && strcmp(f->owner, "peer") == 0 ? " (peer-owned)" : "",
                 kind == EV_POOL_LOW ? "low" : "back above its low mark", f->level_bits,
                 f->capacity_bits);
        break;
    default:
        break;
    }
}

static void report_drops(void)
{
    uint64_t d = events_dropped();
    if (d == Q.drops_reported)
        return;
    log_warn("security events: %" PRIu64 " dropped because the queue of %u was full "
             "(%" PRIu64 " since the start); the counters still count them",
             d - Q.drops_reported, QUEUE_SLOTS, d);
    Q.drops_reported = d;
}

static void handle(queued_event *q)
{
    point_texts(q);
    log_event(q->kind, &q->f);
    char *line = events_format(q->kind, &q->f, Q.kme_id, q->unix_ms);
    if (!line)
        return;
    write_line(line);
    if (event_kind_is_alarm(q->kind))
        alerts_offer(event_kind_name(q->kind), q->f.peer ? q->f.peer : q->f.link, line);
    free(line);
}

static void *writer_main(void *arg)
{
    (void)arg;
    queued_event *q = malloc(sizeof *q);
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        while ((Q.count == 0 || Q.held) && !Q.stopping && !Q.reopen) {
            /* children of the alert command are watched a few times a second */
            int64_t wake = mono_ms() + (alerts_running() ? 100 : 1000);
            struct timespec ts = mono_timespec(wake);
            pthread_cond_timedwait(&Q.cv, &Q.mu, &ts);
            if (alerts_running())
                break; /* to alerts_poll below */
        }
        bool reopen = Q.reopen;
        Q.reopen = false;
        bool take = Q.count > 0 && (!Q.held || Q.stopping);
        bool have = take && q;
        if (have) {
            *q = Q.slots[Q.head];
            Q.head = (Q.head + 1) % QUEUE_SLOTS;
            Q.count--;
        } else if (take) { /* no memory for a copy: drop it */
            Q.head = (Q.head + 1) % QUEUE_SLOTS;
            Q.count--;
        }
        bool done = Q.stopping && Q.count == 0 && !have;
        pthread_mutex_unlock(&Q.mu);
        if (reopen && Q.path)
            reopen_log();
        if (have)
            handle(q);
        report_drops();
        alerts_poll();
        if (done)
            break;
        pthread_mutex_lock(&Q.mu);
    }
    free(q);
    return NULL;
}

int events_start(const events_options *opt, char *err, size_t errlen)
{
    if (opt->audit_log) {
        Q.fd = events_open_log(opt->audit_log, err, errlen);
        if (Q.fd < 0)
            return -1;
    }
    Q.path = opt->audit_log ? strdup(opt->audit_log) : NULL;
    Q.kme_id = strdup(opt->kme_id ? opt->kme_id : "");
    if (alerts_init(opt->alert_command, opt->alert_timeout_s, opt->alert_interval_s) != 0
        || !Q.kme_id || (opt->audit_log && !Q.path)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    mono_cond_init(&Q.cv);
    Q.running = true;
    if (pthread_create(&Q.thread, NULL, writer_main, NULL) != 0) {
        Q.running = false;
        pthread_cond_destroy(&Q.cv);
        snprintf(err, errlen, "cannot start the security event writer thread");
        goto fail;
    }
    return 0;
fail:
    alerts_shutdown();
    if (Q.fd >= 0)
        close(Q.fd);
    Q.fd = -1;
    free(Q.path);
    free(Q.kme_id);
    Q.path = Q.kme_id = NULL;
    return -1;
}

void events_reopen(void)
{
    pthread_mutex_lock(&Q.mu);
    Q.reopen = Q.running;
    if (Q.running)
        pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
}

void events_testing_hold(bool hold)
{
    pthread_mutex_lock(&Q.mu);
    Q.held = hold;
    pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
}

void events_stop(void)
{
    pthread_mutex_lock(&Q.mu);
    bool running = Q.running;
    Q.stopping = true;
    pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
    if (!running)
        return;
    pthread_join(Q.thread, NULL);
    alerts_shutdown();
    pthread_mutex_lock(&Q.mu);
    Q.running = false;
    Q.stopping = false;
    pthread_mutex_unlock(&Q.mu);
    pthread_cond_destroy(&Q.cv);
    if (Q.fd >= 0)
        close(Q.fd);
    Q.fd = -1;
    free(Q.path);
    free(Q.kme_id);
    Q.path = Q.kme_id = NULL;
}

/* ---- the reports of the daemon's parts --------------------------------- */

void events_unauthorized(const char *listener, const char *reason, const char *cert_cn,
                         const char *sae_id)
{
    events_emit(EV_UNAUTHORIZED, &(event_fields){ .listener = listener, .reason = reason,
                                                  .cert_cn = cert_cn, .sae_id = sae_id });
}

void events_not_a_slave(const char *sae_id, const char *master, size_t keys)
{
    /* a 401 too: unauthorized counts every 401 answer (one line only) */
    atomic_fetch_add_explicit(&totals[EV_UNAUTHORIZED], 1, memory_order_relaxed);
    events_emit(EV_NOT_A_SLAVE, &(event_fields){ .sae_id = sae_id, .master = master,
                                                 .set = EVF_KEYS, .keys = (int64_t)keys });
}

void events_pool_exhausted(const char *sae_id, const char *slave, const char *peer, uint64_t bits)
{
    events_emit(EV_POOL_EXHAUSTED, &(event_fields){ .sae_id = sae_id, .slave = slave, .peer = peer,
                                                    .pool = peer ? "link" : "local",
                                                    .owner = "self",
                                                    .set = EVF_BITS, .bits = (int64_t)bits });
}

void events_rate_limited(const char *sae_id, uint64_t bits, unsigned retry_after_s)
{
    events_emit(EV_RATE_LIMITED, &(event_fields){ .sae_id = sae_id, .set = EVF_BITS | EVF_RETRY,
                                                  .bits = (int64_t)bits,
                                                  .retry_after_s = retry_after_s });
}

void events_qber(bool alarm, const char *link_id, double qber, double bound)
{
    event_fields f = { .link = link_id };
    if (qber >= 0) {
        f.set |= EVF_QBER;
        f.qber = qber;
    }
    if (bound >= 0) {
        f.set |= EVF_THRESHOLD;
        f.threshold = bound;
    }
    events_emit(alarm ? EV_QBER_ALARM : EV_QBER_CLEARED, &f);
}

void events_peer(bool up, const char *peer, const char *reason)
{
    events_emit(up ? EV_PEER_UP : EV_PEER_DOWN, &(event_fields){ .peer = peer, .reason = reason });
}

void events_key_reuse(const char *sae_id, const char *master, size_t keys)
{
    events_emit(EV_KEY_REUSE, &(event_fields){ .sae_id = sae_id, .master = master,
                                               .set = EVF_KEYS, .keys = (int64_t)keys });
}
