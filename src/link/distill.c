/* SPDX-License-Identifier: Apache-2.0 */
/*
 * distill.c - one block of the decoy-bb84 link (see distill.h).
 *
 * The abort rule: a block is aborted when its QBER estimate is above the
 * bound, the lower of the QBER where the key rate reaches zero and
 * qber_abort.  Near the cutoff an honest block may cross the bound by the
 * sample's chance alone, so an abort counts as an attack (state aborted,
 * the KMEs' alarm) only when the estimate is also more than 3 sigma of
 * the sample above the QBER the model expects without Eve; otherwise it
 * is marginal.  The key of a produced block is what the formula leaves
 * after error correction and privacy amplification: the secret key rate
 * with Eve's errors, over the block's time.  The sample's bits are not
 * subtracted: the formula is asymptotic, as the issue gives it.
 */
#include "link/distill.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "link/model.h"

void distill_prepare(const link_physics *ph, distill_model *dm)
{
    model_point honest, eve;
    dm->mu = model_mu(ph);
    model_rate(ph, dm->mu, 0.0, &honest);
    model_rate(ph, dm->mu, ph->eavesdropper, &eve);
    dm->honest_qber = honest.e_mu;
    dm->true_qber = eve.e_mu;
    dm->zero_rate_qber = model_zero_rate_qber(ph, dm->mu);
    dm->bound = dm->zero_rate_qber < ph->qber_abort ? dm->zero_rate_qber : ph->qber_abort;
    dm->honest_rate_bps = honest.secret_key_rate_bps;
    dm->secret_rate_bps = eve.secret_key_rate_bps;
    dm->sifted_rate_bps = honest.sifted_rate_bps;
}

int64_t distill_period_ms(const link_physics *ph, const distill_model *dm)
{
    double per_s = dm->sifted_rate_bps * ph->time_scale;   /* sifted bits per real second */
    double ms = per_s > 0 ? 1000.0 * (double)ph->block_sifted_bits / per_s : 1000.0;
    if (ms > 1000.0)
        ms = 1000.0;
    return ms < 1.0 ? 1 : (int64_t)ms;
}

void distill_rng_seed(distill_rng *r, const uint8_t seed[32])
{
    if (seed)
        memcpy(r->key, seed, sizeof r->key);
    else
        randombytes_buf(r->key, sizeof r->key);
    r->nonce = 0;
    r->next = sizeof r->buf / sizeof r->buf[0];
}

void distill_rng_wipe(distill_rng *r)
{
    sodium_memzero(r, sizeof *r);
}

static uint32_t next_u32(distill_rng *r)
{
    if (r->next == sizeof r->buf / sizeof r->buf[0]) {
        uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
        memcpy(nonce, &r->nonce, sizeof nonce);
        r->nonce++;
        crypto_stream_chacha20((unsigned char *)r->buf, sizeof r->buf, nonce, r->key);
        r->next = 0;
    }
    return r->buf[r->next++];
}

/* n Bernoulli trials: exact, and cheap at the sample sizes allowed
 * (qber_sample_bits <= 10^6). */
uint64_t distill_binomial(distill_rng *r, uint64_t n, double p)
{
    double t = p * 4294967296.0;
    uint64_t threshold = p <= 0 ? 0 : p >= 1 ? UINT64_C(4294967296) : (uint64_t)t;
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++)
        k += (uint64_t)next_u32(r) < threshold;
    return k;
}

static const char *const names[] = { "distilling", "marginal", "aborted", "no key at this distance" };

const char *distill_state_name(distill_state s)
{
    return names[s];
}

void distill_run(const link_physics *ph, const distill_model *dm, distill_rng *r, int64_t period_ms,
                 distill_block *out)
{
    double seconds = (double)period_ms / 1000.0 * ph->time_scale;    /* physical */
    memset(out, 0, sizeof *out);
    out->sifted_bits = dm->sifted_rate_bps * seconds;
    double sample = out->sifted_bits < (double)ph->qber_sample_bits ? out->sifted_bits
                                                                     : (double)ph->qber_sample_bits;
    out->sample_bits = sample < 1 ? 1 : (uint64_t)sample;
    out->errors = distill_binomial(r, out->sample_bits, dm->true_qber);
    out->qber = (double)out->errors / (double)out->sample_bits;
    double sigma = sqrt(dm->honest_qber * (1 - dm->honest_qber) / (double)out->sample_bits);
    if (dm->honest_rate_bps <= 0) {
        out->state = DISTILL_NO_KEY;
        snprintf(out->reason, sizeof out->reason, "no key at %g km even without an eavesdropper",
                 ph->distance_km);
    } else if (out->qber > dm->bound && out->qber > dm->honest_qber + 3 * sigma) {
        out->state = DISTILL_ABORTED;
        snprintf(out->reason, sizeof out->reason, "QBER %.4f above the bound %.4f, %.1f sigma above "
                 "the expected %.4f", out->qber, dm->bound, (out->qber - dm->honest_qber) / sigma,
                 dm->honest_qber);
    } else if (out->qber > dm->bound) {
        out->state = DISTILL_MARGINAL;
        snprintf(out->reason, sizeof out->reason, "QBER %.4f above the bound %.4f, within 3 sigma of "
                 "the expected %.4f", out->qber, dm->bound, dm->honest_qber);
    } else {
        out->state = DISTILL_DISTILLING;
        out->secret_bits = dm->secret_rate_bps * seconds;
    }
}
