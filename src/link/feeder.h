/* SPDX-License-Identifier: Apache-2.0 */
/*
 * feeder.h - the QKD link simulator's engine: makes key blocks at the
 * secret-key rate and feeds identical copies to the two KMEs of the link
 * (docs/link.md, docs/kme-pair.md "Key blocks").
 *
 * One thread, one loop: reconnect (bounded back-off) and reconcile after a
 * KME was unreachable, pace with a token bucket, pick the owner by the
 * configured ratio, skipping a direction whose pool is full at either KME,
 * store the block at both KMEs side by side, confirm stored blocks in small
 * batches, discard blocks that reached only one KME.  With [physics]
 * model decoy-bb84 the blocks follow the fibre instead (distill.h): one
 * every block period, its QBER reported to both KMEs whether it produced
 * key or not.
 */
#ifndef QC_LINK_FEEDER_H
#define QC_LINK_FEEDER_H

#include <signal.h>

#include "link/config.h"

typedef struct feeder feeder;

/* NULL when out of memory or libcurl cannot be set up. */
feeder *feeder_new(const link_config *cfg);

/* Run until *stop becomes non-zero; confirms what both KMEs stored before
 * returning.  Whenever *reload is non-zero (SIGHUP), the configuration
 * file is read again and its [physics] keys applied at once, or refused
 * whole with the old ones kept: one log line either way.  Returns 0. */
int feeder_run(feeder *f, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

void feeder_free(feeder *f);

#endif
