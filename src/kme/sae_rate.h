/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sae_rate.h - the per-SAE rate limit of enc_keys ([limits] sae_rate_bps,
 * sae_burst_bits; docs/kme.md): one token bucket per master SAE over the
 * key bits it takes, so that one SAE cannot drain a pool other pairs share.
 *
 * A bucket holds at most burst_bits tokens and refills at rate_bps; a
 * request for B bits passes when the bucket holds B tokens and takes them,
 * else it is refused with the seconds after which it would pass.  A
 * request larger than the burst can never pass (the caller answers 400).
 * Time is passed in (ms on CLOCK_MONOTONIC), so tests need no sleeps.
 * Thread-safe (one mutex; a bucket update is a few arithmetic operations).
 */
#ifndef QC_KME_SAE_RATE_H
#define QC_KME_SAE_RATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sae_rate sae_rate;

typedef enum {
    SAE_RATE_OK = 0,       /* granted: the bits are taken from the bucket */
    SAE_RATE_LIMITED,      /* not now: *retry_after_s >= 1 */
    SAE_RATE_TOO_LARGE,    /* more bits than the burst: never */
} sae_rate_verdict;

/* Buckets for the SAE IDs saes[0..n) (copied), each full at the start.
 * rate_bps 0: no limit (every take passes).  NULL when out of memory. */
sae_rate *sae_rate_new(const char *const *saes, size_t n, uint64_t rate_bps,
                       uint64_t burst_bits, int64_t now_ms);
void sae_rate_free(sae_rate *r);

/* Take bits for sae at now_ms.  An SAE without a bucket is not limited
 * (the listener lets only configured SAEs call). */
sae_rate_verdict sae_rate_take(sae_rate *r, const char *sae, uint64_t bits, int64_t now_ms,
                               unsigned *retry_after_s);

/* Give back bits taken for a request that then delivered nothing (the
 * pool was empty, the peer refused): a bucket never goes above its burst. */
void sae_rate_refund(sae_rate *r, const char *sae, uint64_t bits);

#endif
