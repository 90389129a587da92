/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reuse_watch.c - remembers which key IDs were delivered to which slave
 * SAE, so that a dec_keys asking again for a key it already got is seen
 * as what it is: a key-reuse attempt (a security violation, in the words
 * of the original QuMail design), not an unknown key.  The SAE's answer
 * does not change (400, keys not found); the KME counts and logs it
 * (api.c; docs/operations.md).
 *
 * The key store forgets a key once every slave has it, so this is a
 * separate window of metadata only: (key ID, slave) pairs, never material,
 * in memory, kept for key_ttl seconds after delivery and at most
 * `capacity` of them (the oldest go first; [limits] key_reuse_window).
 * A ring in delivery order holds the entries; a linear-probing table of
 * ring positions finds them, and an entry leaving the ring leaves the
 * table by backward-shift deletion (no tombstones).  One mutex: taken once
 * per dec_keys call, for a few hash operations.
 */
#include "kme/reuse_watch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct watched {
    uint8_t id[16];
    uint64_t slave;   /* hash of the slave's SAE ID */
    int64_t at_ms;    /* delivered then */
} watched;

struct reuse_watch {
    pthread_mutex_t mu;
    watched *ring;
    size_t cap, head, count;   /* head: the oldest entry */
    uint32_t *index;           /* ring position + 1; 0: empty */
    size_t mask;               /* index size - 1 (a power of two >= 2 cap) */
    int64_t keep_ms;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t slave_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t home(const reuse_watch *w, const uint8_t id[16], uint64_t slave)
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    return (size_t)(mix(a ^ mix(b ^ slave)) & w->mask);
}

static bool same(const watched *e, const uint8_t id[16], uint64_t slave)
{
    return e->slave == slave && memcmp(e->id, id, 16) == 0;
}

/* The index slot holding (id, slave), or the empty slot ending its probe. */
static size_t probe(const reuse_watch *w, const uint8_t id[16], uint64_t slave)
{
    size_t i = home(w, id, slave);
    while (w->index[i] && !same(&w->ring[w->index[i] - 1], id, slave))
        i = (i + 1) & w->mask;
    return i;
}

/* Remove index slot i, shifting later members of its cluster back. */
static void index_remove(reuse_watch *w, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & w->mask;
        if (!w->index[j])
            break;
        const watched *e = &w->ring[w->index[j] - 1];
        size_t h = home(w, e->id, e->slave);
        /* j's entry may move to i only if its home is not in (i, j] */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            w->index[i] = w->index[j];
            i = j;
        }
    }
    w->index[i] = 0;
}

static void pop_oldest(reuse_watch *w)
{
    const watched *e = &w->ring[w->head];
    size_t i = probe(w, e->id, e->slave);
    if (w->index[i] == w->head + 1)
        index_remove(w, i);
    w->head = (w->head + 1) % w->cap;
    w->count--;
}

static void expire(reuse_watch *w, int64_t now_ms)
{
    while (w->count && now_ms - w->ring[w->head].at_ms >= w->keep_ms)
        pop_oldest(w);
}

reuse_watch *reuse_watch_new(size_t capacity, int64_t keep_ms)
{
    if (capacity == 0 || capacity > REUSE_WATCH_MAX || keep_ms <= 0)
        return NULL;
    reuse_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    size_t n = 1;
    while (n < 2 * capacity)
        n <<= 1;
    w->ring = calloc(capacity, sizeof *w->ring);
    w->index = calloc(n, sizeof *w->index);
    if (!w->ring || !w->index) {
        reuse_watch_free(w);
        return NULL;
    }
    w->cap = capacity;
    w->mask = n - 1;
    w->keep_ms = keep_ms;
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

void reuse_watch_free(reuse_watch *w)
{
    if (!w)
        return;
    if (w->ring && w->index)
        pthread_mutex_destroy(&w->mu);
    free(w->ring);
    free(w->index);
    free(w);
}

void reuse_watch_delivered(reuse_watch *w, const char *slave, const uint8_t (*ids)[16],
                           size_t n, int64_t now_ms)
{
    if (!w || !slave)
        return;
    uint64_t sh = slave_hash(slave);
    pthread_mutex_lock(&w->mu);
    expire(w, now_ms);
    for (size_t k = 0; k < n; k++) {
        size_t i = probe(w, ids[k], sh);
        if (w->index[i]) { /* already watched (cannot happen: once per slave) */
            w->ring[w->index[i] - 1].at_ms = now_ms;
            continue;
        }
        if (w->count == w->cap) {
            pop_oldest(w);
            i = probe(w, ids[k], sh); /* the shift may have moved the slot */
        }
        size_t pos = (w->head + w->count) % w->cap;
        memcpy(w->ring[pos].id, ids[k], 16);
        w->ring[pos].slave = sh;
        w->ring[pos].at_ms = now_ms;
        w->index[i] = (uint32_t)pos + 1;
        w->count++;
    }
    pthread_mutex_unlock(&w->mu);
}

size_t reuse_watch_seen(reuse_watch *w, const char *slave, const uint8_t (*ids)[16], size_t n,
                        int64_t now_ms)
{
    if (!w || !slave)
        return 0;
    uint64_t sh = slave_hash(slave);
    size_t seen = 0;
    pthread_mutex_lock(&w->mu);
    expire(w, now_ms);
    for (size_t k = 0; k < n; k++)
        if (w->index[probe(w, ids[k], sh)])
            seen++;
    pthread_mutex_unlock(&w->mu);
    return seen;
}

size_t reuse_watch_count(reuse_watch *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    size_t n = w->count;
    pthread_mutex_unlock(&w->mu);
    return n;
}
