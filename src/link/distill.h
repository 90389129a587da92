/* SPDX-License-Identifier: Apache-2.0 */
/*
 * distill.h - one block of the decoy-bb84 link (docs/link.md "Blocks"):
 * how long it lasts, its QBER estimate from a sample of the sifted bits
 * (binomial noise from a ChaCha20 stream seeded by the CSPRNG), the
 * decision (distilling, marginal, aborted, no key at this distance) and
 * the key left after privacy amplification.  Pure but for the random
 * stream, so that the estimator can be tested statistically.
 */
#ifndef QC_LINK_DISTILL_H
#define QC_LINK_DISTILL_H

#include <stdint.h>

#include "link/config.h"

/* What the model gives for the configured link (distill_prepare). */
typedef struct distill_model {
    double mu;
    double honest_qber;        /* E_mu without Eve: what the link expects */
    double true_qber;          /* E_mu with Eve's p/4: what the sample sees */
    double bound;              /* min(zero-rate QBER, qber_abort) */
    double zero_rate_qber;
    double honest_rate_bps;    /* physical key rate without Eve */
    double secret_rate_bps;    /* physical key rate with Eve (privacy amplification) */
    double sifted_rate_bps;    /* physical */
} distill_model;

void distill_prepare(const link_physics *ph, distill_model *dm);

/* Real-time length of one block: block_sifted_bits or 1 s of scaled
 * time, the first reached, in ms (at least 1). */
int64_t distill_period_ms(const link_physics *ph, const distill_model *dm);

/* The random stream. */
typedef struct distill_rng {
    uint8_t key[32];
    uint64_t nonce;
    uint32_t buf[1024];
    unsigned next;
} distill_rng;

void distill_rng_seed(distill_rng *r, const uint8_t seed[32]);  /* NULL: from the CSPRNG */
void distill_rng_wipe(distill_rng *r);

/* Errors among n bits that are wrong with probability p. */
uint64_t distill_binomial(distill_rng *r, uint64_t n, double p);

typedef enum distill_state {
    DISTILL_DISTILLING = 0, DISTILL_MARGINAL, DISTILL_ABORTED, DISTILL_NO_KEY,
} distill_state;

typedef struct distill_block {
    distill_state state;
    double sifted_bits;
    uint64_t sample_bits, errors;
    double qber;               /* the estimate */
    double secret_bits;        /* after privacy amplification; 0 unless distilling */
    char reason[120];
} distill_block;

/* One block of period_ms of real time. */
void distill_run(const link_physics *ph, const distill_model *dm, distill_rng *r, int64_t period_ms,
                 distill_block *out);

/* The wire name of a state (as the KME's link_block.h reads it). */
const char *distill_state_name(distill_state s);

#endif
