/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sae_rate.c - the per-SAE token bucket of enc_keys (src/kme/sae_rate.c):
 * an SAE draining beyond its rate is refused with a Retry-After that is
 * enough and not more than needed, other SAEs are unaffected, the bucket
 * refills at the rate up to the burst and never above, refunds are capped,
 * a request larger than the burst is told apart, and rate 0 is off.  The
 * clock is passed in: no sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>

#include "kme/sae_rate.h"

static const char *const SAES[] = {"SAE_C", "SAE_A", "SAE_B"};

static sae_rate *make(uint64_t rate, uint64_t burst)
{
    sae_rate *r = sae_rate_new(SAES, 3, rate, burst, 1000);
    assert_non_null(r);
    return r;
}

/* The attack: SAE_A asks as fast as it can. */
static void test_drain_is_refused_others_served(void **state)
{
    (void)state;
    sae_rate *r = make(1000, 2000); /* 1000 bit/s, burst 2000 bits */
    unsigned ra = 0;
    int granted = 0;
    for (int i = 0; i < 100; i++)
        if (sae_rate_take(r, "SAE_A", 256, 1000, &ra) == SAE_RATE_OK)
            granted++;
    assert_int_equal(granted, 2000 / 256);            /* the burst, no more */
    assert_int_equal(sae_rate_take(r, "SAE_A", 256, 1000, &ra), SAE_RATE_LIMITED);
    assert_true(ra >= 1);
    /* SAE_B has its own bucket */
    assert_int_equal(sae_rate_take(r, "SAE_B", 2000, 1000, &ra), SAE_RATE_OK);
    sae_rate_free(r);
}

/* Retry-After is the time to refill the missing bits, rounded up, and the
 * request passes then (not a second before). */
static void test_retry_after_is_exact(void **state)
{
    (void)state;
    sae_rate *r = make(1000, 4000);
    unsigned ra = 0;
    assert_int_equal(sae_rate_take(r, "SAE_A", 4000, 1000, &ra), SAE_RATE_OK);
    assert_int_equal(sae_rate_take(r, "SAE_A", 2500, 1000, &ra), SAE_RATE_LIMITED);
    assert_int_equal(ra, 3);                           /* 2500 bits at 1000 bit/s */
    assert_int_equal(sae_rate_take(r, "SAE_A", 2500, 3000, &ra), SAE_RATE_LIMITED);
    assert_int_equal(ra, 1);                           /* 500 bits missing */
    assert_int_equal(sae_rate_take(r, "SAE_A", 2500, 3500, &ra), SAE_RATE_OK);
    sae_rate_free(r);
}

/* Idle time fills the bucket to the burst, never beyond; refunds too. */
static void test_refill_capped_at_burst(void **state)
{
    (void)state;
    sae_rate *r = make(1000, 3000);
    unsigned ra = 0;
    assert_int_equal(sae_rate_take(r, "SAE_C", 3000, 1000, &ra), SAE_RATE_OK);
    /* an hour idle: still only the burst */
    assert_int_equal(sae_rate_take(r, "SAE_C", 3000, 3601000, &ra), SAE_RATE_OK);
    assert_int_equal(sae_rate_take(r, "SAE_C", 8, 3601000, &ra), SAE_RATE_LIMITED);
    sae_rate_refund(r, "SAE_C", 1000000);
    assert_int_equal(sae_rate_take(r, "SAE_C", 3000, 3601000, &ra), SAE_RATE_OK);
    assert_int_equal(sae_rate_take(r, "SAE_C", 8, 3601000, &ra), SAE_RATE_LIMITED);
    /* a clock that runs back adds nothing */
    assert_int_equal(sae_rate_take(r, "SAE_C", 8, 1000, &ra), SAE_RATE_LIMITED);
    sae_rate_free(r);
}

static void test_too_large_and_off(void **state)
{
    (void)state;
    sae_rate *r = make(1000, 3000);
    unsigned ra = 0;
    assert_int_equal(sae_rate_take(r, "SAE_A", 3001, 1000, &ra), SAE_RATE_TOO_LARGE);
    assert_int_equal(sae_rate_take(r, "SAE_A", 3000, 1000, &ra), SAE_RATE_OK); /* untouched */
    assert_int_equal(sae_rate_take(r, "UNKNOWN", 3000, 1000, &ra), SAE_RATE_OK);
    sae_rate_free(r);

    r = make(0, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sae_rate_take(r, "SAE_A", UINT32_MAX, 1000, &ra), SAE_RATE_OK);
    sae_rate_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_is_refused_others_served),
        cmocka_unit_test(test_retry_after_is_exact),
        cmocka_unit_test(test_refill_capped_at_burst),
        cmocka_unit_test(test_too_large_and_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
