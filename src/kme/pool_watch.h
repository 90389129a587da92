/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pool_watch.h - pool_low and pool_ok events: a thread that looks at every
 * key pool four times a second (the local CSPRNG pool; with a QKD link,
 * the bits of the blocks we own and of those the peer owns) and reports
 * each crossing of [limits] pool_low_ratio of its capacity, down, or up
 * to 1 % of the capacity above it (events.h).  A pool starts as "ok": one
 * that is low at start is reported.
 *
 * It reads the key store's running totals only (no scan), so it costs the
 * requests nothing but a short lock now and then.
 */
#ifndef QC_KME_POOL_WATCH_H
#define QC_KME_POOL_WATCH_H

#include "kme/config.h"
#include "kme/keystore.h"

typedef struct pool_watch pool_watch;

/* Start watching (NULL when the thread cannot start: logged). */
pool_watch *pool_watch_start(const kme_config *cfg, keystore *ks);

/* Look at every pool now, on the caller's thread (what the thread does
 * every 250 ms). */
void pool_watch_check(pool_watch *w);

void pool_watch_stop(pool_watch *w);

#endif
