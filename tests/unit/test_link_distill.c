/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_distill.c - one block of the decoy-bb84 link
 * (src/link/distill.c): the QBER estimator against the binomial
 * expectation (mean and spread over many blocks, from a fixed seed so the
 * test is deterministic), the abort rule (an eavesdropper aborts every
 * block; near the cutoff honest blocks are marginal, not alarms), the key
 * left by privacy amplification, and the block period.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "link/distill.h"
#include "link/model.h"

static link_physics gys(double km, double time_scale, double eve)
{
    link_physics ph = {
        .model = LINK_MODEL_DECOY_BB84, .distance_km = km, .fiber_loss_db_per_km = 0.21,
        .detector_efficiency = 0.045, .dark_count_yield = 1.7e-6, .misalignment = 0.033,
        .ec_efficiency = 1.22, .pulse_rate_hz = 2e6, .mu = 0, .time_scale = time_scale,
        .eavesdropper = eve, .block_sifted_bits = 1000000, .qber_sample_bits = 10000, .qber_abort = 0.11,
    };
    return ph;
}

static void seeded(distill_rng *r, uint8_t b)
{
    uint8_t seed[32];
    memset(seed, b, sizeof seed);
    distill_rng_seed(r, seed);
}

static void test_estimator_mean_and_spread(void **state)
{
    (void)state;
    static const double ps[] = { 0.033, 0.0625, 0.28 };
    const uint64_t n = 10000;
    const int blocks = 1000;
    distill_rng r;
    seeded(&r, 7);
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
        double p = ps[j], sum = 0, sum2 = 0;
        for (int i = 0; i < blocks; i++) {
            double e = (double)distill_binomial(&r, n, p) / (double)n;
            sum += e;
            sum2 += e * e;
        }
        double mean = sum / blocks, var = sum2 / blocks - mean * mean;
        double want_var = p * (1 - p) / (double)n;
        /* the mean within 4 standard errors; the variance within 15 % (its
         * own relative spread is sqrt(2/1000), 4.5 %) */
        assert_true(fabs(mean - p) < 4 * sqrt(want_var / blocks));
        assert_true(fabs(var - want_var) < 0.15 * want_var);
    }
    assert_int_equal(distill_binomial(&r, n, 0.0), 0);
    assert_int_equal(distill_binomial(&r, n, 1.0), n);
    distill_rng_wipe(&r);
}

static void test_seed_from_csprng_differs(void **state)
{
    (void)state;
    distill_rng a, b;
    distill_rng_seed(&a, NULL);
    distill_rng_seed(&b, NULL);
    assert_true(memcmp(a.key, b.key, sizeof a.key) != 0);
}

static void test_eavesdropper_aborts_every_block(void **state)
{
    (void)state;
    link_physics ph = gys(25, 2000, 1.0);
    distill_model dm;
    distill_rng r;
    seeded(&r, 1);
    distill_prepare(&ph, &dm);
    assert_true(fabs(dm.true_qber - (dm.honest_qber + 0.25)) < 1e-12);
    for (int i = 0; i < 200; i++) {
        distill_block b;
        distill_run(&ph, &dm, &r, 77, &b);
        assert_int_equal(b.state, DISTILL_ABORTED);
        assert_true(b.secret_bits == 0);
        assert_non_null(strstr(b.reason, "above the bound"));
    }
    /* just past the zero-rate point: the key is gone, the bound is crossed */
    ph.eavesdropper = 0.2;
    distill_prepare(&ph, &dm);
    assert_true(dm.secret_rate_bps == 0 && dm.true_qber > dm.bound);
}

static void test_honest_blocks_and_privacy_amplification(void **state)
{
    (void)state;
    link_physics ph = gys(25, 2000, 0);
    distill_model dm;
    distill_rng r;
    seeded(&r, 2);
    distill_prepare(&ph, &dm);
    int64_t period = distill_period_ms(&ph, &dm);
    /* 1e6 sifted bits at 2000 x the physical sifted rate */
    assert_true(llabs(period - (int64_t)(1000.0 * 1e6 / (dm.sifted_rate_bps * 2000))) <= 1);
    double key = 0, seconds = 0;
    for (int i = 0; i < 500; i++) {
        distill_block b;
        distill_run(&ph, &dm, &r, period, &b);
        assert_int_equal(b.state, DISTILL_DISTILLING);
        assert_int_equal(b.sample_bits, 10000);
        key += b.secret_bits;
        seconds += (double)period / 1000.0 * ph.time_scale;
    }
    model_point m;
    model_at(&ph, &m);
    assert_true(fabs(key / seconds - m.secret_key_rate_bps) < 1e-6 * m.secret_key_rate_bps);
    /* real time: a block lasts at most 1 s of scaled time */
    link_physics slow = gys(25, 1, 0);
    distill_prepare(&slow, &dm);
    assert_int_equal(distill_period_ms(&slow, &dm), 1000);
}

static void test_near_cutoff_is_marginal_not_alarm(void **state)
{
    (void)state;
    link_physics ph = gys(141.9, 1e6, 0);
    distill_model dm;
    distill_rng r;
    seeded(&r, 3);
    distill_prepare(&ph, &dm);
    assert_true(dm.honest_rate_bps > 0 && dm.bound - dm.honest_qber < 0.003);
    int marginal = 0, aborted = 0, blocks = 2000;
    for (int i = 0; i < blocks; i++) {
        distill_block b;
        distill_run(&ph, &dm, &r, 1000, &b);
        marginal += b.state == DISTILL_MARGINAL;
        aborted += b.state == DISTILL_ABORTED;
    }
    /* honest blocks cross the bound often; beyond 3 sigma about 0.13 % */
    assert_true(marginal > blocks / 10);
    assert_true(aborted <= blocks / 100);
    /* beyond the cutoff: no key at this distance, never an alarm */
    link_physics far = gys(160, 1e6, 0);
    distill_prepare(&far, &dm);
    distill_block b;
    distill_run(&far, &dm, &r, 1000, &b);
    assert_int_equal(b.state, DISTILL_NO_KEY);
    assert_string_equal(distill_state_name(b.state), "no key at this distance");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimator_mean_and_spread),
        cmocka_unit_test(test_seed_from_csprng_differs),
        cmocka_unit_test(test_eavesdropper_aborts_every_block),
        cmocka_unit_test(test_honest_blocks_and_privacy_amplification),
        cmocka_unit_test(test_near_cutoff_is_marginal_not_alarm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
