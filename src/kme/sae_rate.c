/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sae_rate.c - one token bucket per master SAE (see sae_rate.h).
 *
 * Tokens are counted in bits as a double: exact up to 2^53, far beyond any
 * burst, and the refill rate * elapsed time needs no overflow care.  The
 * buckets are sorted by SAE ID once and found by binary search.
 */
#include "kme/sae_rate.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    char *sae;
    double tokens;      /* bits */
    int64_t at_ms;      /* tokens were counted at this time */
} bucket;

struct sae_rate {
    pthread_mutex_t mu;
    double rate_bps;    /* 0: no limit */
    double burst;
    bucket *b;
    size_t n;
};

static int by_sae(const void *a, const void *b)
{
    return strcmp(((const bucket *)a)->sae, ((const bucket *)b)->sae);
}

sae_rate *sae_rate_new(const char *const *saes, size_t n, uint64_t rate_bps,
                       uint64_t burst_bits, int64_t now_ms)
{
    sae_rate *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->b = calloc(n ? n : 1, sizeof *r->b);
    if (!r->b) {
        free(r);
        return NULL;
    }
    r->rate_bps = (double)rate_bps;
    r->burst = (double)burst_bits;
    for (size_t i = 0; i < n; i++) {
        r->b[i] = (bucket){.sae = strdup(saes[i]), .tokens = r->burst, .at_ms = now_ms};
        r->n++;
        if (!r->b[i].sae) {
            sae_rate_free(r);
            return NULL;
        }
    }
    qsort(r->b, r->n, sizeof *r->b, by_sae);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void sae_rate_free(sae_rate *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->b[i].sae);
    free(r->b);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static bucket *find(sae_rate *r, const char *sae)
{
    bucket key = {.sae = (char *)sae};
    return bsearch(&key, r->b, r->n, sizeof *r->b, by_sae);
}

/* The bucket's level at now_ms (caller holds mu); time never runs back. */
static void refill(const sae_rate *r, bucket *b, int64_t now_ms)
{
    if (now_ms <= b->at_ms)
        return;
    b->tokens = fmin(r->burst, b->tokens + r->rate_bps * (double)(now_ms - b->at_ms) / 1000.0);
    b->at_ms = now_ms;
}

sae_rate_verdict sae_rate_take(sae_rate *r, const char *sae, uint64_t bits, int64_t now_ms,
                               unsigned *retry_after_s)
{
    if (!r || r->rate_bps <= 0)
        return SAE_RATE_OK;
    if ((double)bits > r->burst)
        return SAE_RATE_TOO_LARGE;
    pthread_mutex_lock(&r->mu);
    bucket *b = find(r, sae);
    sae_rate_verdict v = SAE_RATE_OK;
    if (b) {
        refill(r, b, now_ms);
        if (b->tokens >= (double)bits) {
            b->tokens -= (double)bits;
        } else {
            double wait_s = ceil(((double)bits - b->tokens) / r->rate_bps);
            if (retry_after_s)
                *retry_after_s = wait_s < 1 ? 1 : wait_s > 86400 ? 86400 : (unsigned)wait_s;
            v = SAE_RATE_LIMITED;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return v;
}

void sae_rate_refund(sae_rate *r, const char *sae, uint64_t bits)
{
    if (!r || r->rate_bps <= 0)
        return;
    pthread_mutex_lock(&r->mu);
    bucket *b = find(r, sae);
    if (b)
        b->tokens = fmin(r->burst, b->tokens + (double)bits);
    pthread_mutex_unlock(&r->mu);
}
