/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model.c - the decoy-state BB84 key rate (see model.h and docs/link.md).
 *
 * Per pulse, with q = 1/2 (the basis-sifting factor of BB84):
 *   eta     = eta_Bob * 10^(-alpha*L/10)
 *   Q_mu    = Y0 + 1 - exp(-eta*mu)
 *   E_mu    = (Y0/2 + e_d*(1 - exp(-eta*mu))) / Q_mu          (+ p/4)
 *   Y_1     = Y0 + eta,  Q_1 = Y_1*mu*exp(-mu)
 *   e_1     = (Y0/2 + e_d*eta) / Y_1                            (+ p/4)
 *   R       = q * (-Q_mu*f*H2(E_mu) + Q_1*(1 - H2(e_1)))
 * An intercept-resend attack on a fraction p of the pulses guesses the
 * basis wrongly half the time and then flips half of those bits: p/4 more
 * errors in every photon-number class.  Error rates are capped at 1/2,
 * where H2 peaks: above it the formula would give key back.
 */
#include "link/model.h"

#include <math.h>

#define SIFT_Q 0.5

double model_h2(double x)
{
    if (x <= 0.0 || x >= 1.0)
        return 0.0;
    return -x * log2(x) - (1.0 - x) * log2(1.0 - x);
}

static double cap_half(double e)
{
    return e > 0.5 ? 0.5 : e;
}

double model_rate(const link_physics *ph, double mu, double p, model_point *out)
{
    double eta = ph->detector_efficiency * pow(10.0, -ph->fiber_loss_db_per_km * ph->distance_km / 10.0);
    double y0 = ph->dark_count_yield, ed = ph->misalignment;
    double clicks = 1.0 - exp(-eta * mu);
    double q_mu = y0 + clicks;
    double e_honest = (y0 / 2.0 + ed * clicks) / q_mu;
    double e_mu = cap_half(e_honest + p / 4.0);
    double y_1 = y0 + eta;
    double q_1 = y_1 * mu * exp(-mu);
    double e_1 = cap_half((y0 / 2.0 + ed * eta) / y_1 + p / 4.0);
    double r = SIFT_Q * (-q_mu * ph->ec_efficiency * model_h2(e_mu) + q_1 * (1.0 - model_h2(e_1)));
    if (out) {
        out->mu = mu;
        out->eta = eta;
        out->q_mu = q_mu;
        out->e_mu = e_mu;
        out->e_mu_honest = e_honest;
        out->q_1 = q_1;
        out->e_1 = e_1;
        out->bits_per_pulse = r > 0.0 ? r : 0.0;
        out->secret_key_rate_bps = ph->pulse_rate_hz * out->bits_per_pulse;
        out->sifted_rate_bps = ph->pulse_rate_hz * SIFT_Q * q_mu;
    }
    return r;
}

double model_optimal_mu(const link_physics *ph)
{
    const double g = (sqrt(5.0) - 1.0) / 2.0;
    double a = MODEL_MU_MIN, b = MODEL_MU_MAX;
    double c = b - g * (b - a), d = a + g * (b - a);
    double rc = model_rate(ph, c, 0.0, NULL), rd = model_rate(ph, d, 0.0, NULL);
    for (int i = 0; i < 80 && b - a > 1e-9; i++) {
        if (rc > rd) {
            b = d;
            d = c;
            rd = rc;
            c = b - g * (b - a);
            rc = model_rate(ph, c, 0.0, NULL);
        } else {
            a = c;
            c = d;
            rc = rd;
            d = a + g * (b - a);
            rd = model_rate(ph, d, 0.0, NULL);
        }
    }
    return (a + b) / 2.0;
}

double model_mu(const link_physics *ph)
{
    return ph->mu > 0.0 ? ph->mu : model_optimal_mu(ph);
}

void model_at(const link_physics *ph, model_point *out)
{
    model_rate(ph, model_mu(ph), ph->eavesdropper, out);
}

/* R falls as p grows (more errors in both classes): bisect for R = 0. */
double model_zero_rate_qber(const link_physics *ph, double mu)
{
    model_point at;
    if (model_rate(ph, mu, 0.0, &at) <= 0.0)
        return at.e_mu_honest;
    double lo = 0.0, hi = 1.0;
    if (model_rate(ph, mu, hi, NULL) > 0.0)
        return cap_half(at.e_mu_honest + hi / 4.0);
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2.0;
        if (model_rate(ph, mu, mid, NULL) > 0.0)
            lo = mid;
        else
            hi = mid;
    }
    return cap_half(at.e_mu_honest + lo / 4.0);
}
