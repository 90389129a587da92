/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_model.c - the link's physics (src/link/model.c) and its
 * [physics] keys (src/link/config.c): the reference values of issue 13
 * (defaults of the GYS experiment, mu optimised) within 2 %, no key beyond
 * the cutoff, Eve's p/4, monotone in distance, the zero-rate bound; and
 * every bad value refused with the key named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link/config.h"
#include "link/model.h"

/* Write text to a fresh file and load its [physics]; 0 or -1 (err set). */
static int load_text(const char *text, link_physics *ph, char *err, size_t errlen)
{
    char path[] = "/tmp/test_link_model.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = link_physics_load(path, ph, err, errlen);
    unlink(path);
    return rc;
}

/* The defaults, as the configuration gives them. */
static link_physics gys(double distance_km)
{
    link_physics ph;
    char err[512];
    assert_int_equal(load_text("[physics]\nmodel = decoy-bb84\n", &ph, err, sizeof err), 0);
    ph.distance_km = distance_km;
    return ph;
}

static void assert_within(double got, double want, double rel, const char *what, double at)
{
    if (fabs(got - want) > rel * fabs(want))
        fail_msg("%s at %g km: %g, want %g within %g %%", what, at, got, want, rel * 100);
}

static void test_reference_rates(void **state)
{
    (void)state;
    static const struct { double km, rate; } ref[] = {
        { 0, 5110 }, { 25, 1509 }, { 50, 445.2 }, { 75, 128.7 },
        { 100, 34.37 }, { 120, 9.64 }, { 140, 0.531 },
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        link_physics ph = gys(ref[i].km);
        model_point m;
        model_at(&ph, &m);
        assert_within(m.secret_key_rate_bps, ref[i].rate, 0.02, "key rate", ref[i].km);
        assert_within(m.secret_key_rate_bps, ph.pulse_rate_hz * m.bits_per_pulse, 1e-12, "K = rate * R", ref[i].km);
    }
    link_physics ph = gys(140);
    assert_within(model_optimal_mu(&ph), 0.434, 0.02, "optimal mu", 140);
}

static void test_reference_qber(void **state)
{
    (void)state;
    static const struct { double km, qber; } ref[] = { { 0, 0.0330 }, { 100, 0.0376 }, { 140, 0.0659 } };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        link_physics ph = gys(ref[i].km);
        model_point m;
        model_at(&ph, &m);
        assert_within(m.e_mu, ref[i].qber, 0.02, "QBER", ref[i].km);
    }
}

static void test_no_key_beyond_cutoff(void **state)
{
    (void)state;
    static const double beyond[] = { 142.5, 145, 150, 200, 500, 1000 };
    for (size_t i = 0; i < sizeof beyond / sizeof beyond[0]; i++) {
        link_physics ph = gys(beyond[i]);
        model_point m;
        model_at(&ph, &m);
        assert_true(m.secret_key_rate_bps == 0.0 && m.bits_per_pulse == 0.0);
        assert_true(m.mu >= MODEL_MU_MIN && m.mu <= MODEL_MU_MAX);
    }
    link_physics ph = gys(142.0);
    model_point m;
    model_at(&ph, &m);
    assert_true(m.secret_key_rate_bps > 0.0); /* the cutoff is about 142.2 km */
}

static void test_eve_adds_a_quarter(void **state)
{
    (void)state;
    static const double ps[] = { 0.01, 0.05, 0.12, 0.5, 1.0 };
    for (double km = 0; km <= 140; km += 35) {
        link_physics ph = gys(km);
        model_point honest, eve;
        model_at(&ph, &honest);
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
            ph.eavesdropper = ps[i];
            model_at(&ph, &eve);
            assert_true(fabs(eve.e_mu - (honest.e_mu + ps[i] / 4)) < 1e-12);
            assert_true(fabs(eve.e_mu_honest - honest.e_mu) < 1e-12);
            assert_true(eve.mu == honest.mu); /* the link does not know Eve is there */
            assert_true(eve.secret_key_rate_bps <= honest.secret_key_rate_bps);
        }
    }
    /* at 25 km the key is gone near p = 0.12, at a QBER near 6.3 % */
    link_physics ph = gys(25);
    double bound = model_zero_rate_qber(&ph, model_mu(&ph));
    assert_within(bound, 0.0625, 0.02, "zero-rate QBER", 25);
    model_point m;
    ph.eavesdropper = 0.11;
    model_at(&ph, &m);
    assert_true(m.secret_key_rate_bps > 0);
    ph.eavesdropper = 0.13;
    model_at(&ph, &m);
    assert_true(m.secret_key_rate_bps == 0);
}

static void test_monotone_in_distance(void **state)
{
    (void)state;
    double last_rate = INFINITY, last_qber = 0;
    for (double km = 0; km <= 200; km += 0.5) {
        link_physics ph = gys(km);
        model_point m;
        model_at(&ph, &m);
        assert_true(m.secret_key_rate_bps <= last_rate);
        assert_true(m.e_mu >= last_qber);
        last_rate = m.secret_key_rate_bps;
        last_qber = m.e_mu;
    }
}

static void test_fixed_mu_and_defaults(void **state)
{
    (void)state;
    link_physics ph;
    char err[512];
    assert_int_equal(load_text("[physics]\nmu = 0.5\ndistance_km = 50\n", &ph, err, sizeof err), 0);
    assert_int_equal(ph.model, LINK_MODEL_FIXED); /* fixed stays the default */
    assert_true(ph.mu == 0.5 && model_mu(&ph) == 0.5);
    assert_true(ph.time_scale == 1 && ph.eavesdropper == 0 && ph.qber_abort == 0.11);
    assert_int_equal(ph.block_sifted_bits, 1000000);
    assert_int_equal(ph.qber_sample_bits, 10000);
    link_physics opt = gys(50);
    model_point a, b;
    model_rate(&ph, 0.5, 0, &a);
    model_at(&opt, &b);
    assert_true(a.secret_key_rate_bps < b.secret_key_rate_bps); /* the optimum is better */
}

static void test_bad_values_refused(void **state)
{
    (void)state;
    static const struct { const char *text, *want; } bad[] = {
        { "[physics]\ndistance_km = -1\n", "[physics] distance_km: '-1' is not a number in 0..1000" },
        { "[physics]\ndistance_km = nan\n", "[physics] distance_km: 'nan'" },
        { "[physics]\ndistance_km = inf\n", "[physics] distance_km: 'inf'" },
        { "[physics]\ndistance_km = 1e999\n", "[physics] distance_km: '1e999'" },
        { "[physics]\ndistance_km = 0x10\n", "[physics] distance_km: '0x10'" },
        { "[physics]\ndetector_efficiency = 0\n", "detector_efficiency: '0' is not a number in 0..1 (above the first)" },
        { "[physics]\neavesdropper = 1.5\n", "[physics] eavesdropper: '1.5'" },
        { "[physics]\nmu = 0\n", "[physics] mu: '0' is not a number in 0.001..10 or 'auto'" },
        { "[physics]\nmodel = bb84\n", "[physics] model: 'bb84'" },
        { "[physics]\nqber_sample_bits = 10\n", "[physics] qber_sample_bits" },
        { "[physics]\nblock_sifted_bits = 99999999999\n", "[physics] block_sifted_bits" },
        { "[physics]\ntime_scale = 0\n", "[physics] time_scale" },
        { "[physics]\nwavelength = 1550\n", "unknown key 'wavelength' in [physics]" },
        { "[physics]\nmodel = fixed\nmodel = fixed\n", "given twice" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        link_physics ph;
        char err[512] = "";
        assert_int_equal(load_text(bad[i].text, &ph, err, sizeof err), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_rates),
        cmocka_unit_test(test_reference_qber),
        cmocka_unit_test(test_no_key_beyond_cutoff),
        cmocka_unit_test(test_eve_adds_a_quarter),
        cmocka_unit_test(test_monotone_in_distance),
        cmocka_unit_test(test_fixed_mu_and_defaults),
        cmocka_unit_test(test_bad_values_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
