/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reuse_watch.h - the window of (key ID, slave SAE) pairs delivered by
 * dec_keys, to recognise a slave asking again for a key it already got
 * (reuse_watch.c).  Metadata only; thread-safe.
 */
#ifndef QC_KME_REUSE_WATCH_H
#define QC_KME_REUSE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REUSE_WATCH_MAX (16u * 1024 * 1024) /* most pairs a window may hold */

typedef struct reuse_watch reuse_watch;

/* A window of at most capacity pairs (1..REUSE_WATCH_MAX), each kept for
 * keep_ms after its delivery; NULL on bad arguments or out of memory. */
reuse_watch *reuse_watch_new(size_t capacity, int64_t keep_ms);
void reuse_watch_free(reuse_watch *w);

/* Remember that slave got keys ids[0..n) at now_ms (the oldest pairs go
 * when the window is full).  w may be NULL (no window: nothing kept). */
void reuse_watch_delivered(reuse_watch *w, const char *slave, const uint8_t (*ids)[16],
                           size_t n, int64_t now_ms);

/* How many of ids[0..n) slave got before, within the window. */
size_t reuse_watch_seen(reuse_watch *w, const char *slave, const uint8_t (*ids)[16], size_t n,
                        int64_t now_ms);

/* Pairs held now (for tests and the admin page). */
size_t reuse_watch_count(reuse_watch *w);

#endif
