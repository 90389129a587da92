/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model.h - the physics of the simulated QKD link (docs/link.md "The
 * model"): the asymptotic decoy-state BB84 key rate of Lo, Ma and Chen
 * (PRL 94, 230504, 2005) with the GLLP formula, the QBER it implies, an
 * intercept-resend eavesdropper, and the QBER bound where the key rate
 * reaches zero.  Pure arithmetic on a link_physics (config.h): used by the
 * feeder for every block, by `qkd-link --table`, and by the unit tests.
 */
#ifndef QC_LINK_MODEL_H
#define QC_LINK_MODEL_H

#include "link/config.h"

/* What the model gives at one distance, one mean photon number and one
 * eavesdropping fraction.  Rates are physical (time_scale 1). */
typedef struct model_point {
    double mu;                   /* mean photon number of the signal state */
    double eta;                  /* overall transmittance, detector included */
    double q_mu, e_mu;           /* gain and QBER of the signal state (E_mu with Eve's p/4) */
    double e_mu_honest;          /* E_mu without Eve */
    double q_1, e_1;             /* single-photon gain and error rate (e_1 with p/4) */
    double bits_per_pulse;       /* R, clamped at 0 */
    double secret_key_rate_bps;  /* K = pulse_rate_hz * R */
    double sifted_rate_bps;      /* pulse_rate_hz * q * Q_mu */
} model_point;

/* Binary entropy H2(x) in bits; 0 at 0 and 1. */
double model_h2(double x);

/* R per pulse (not clamped) at mu with eavesdropping fraction p; fills out
 * when not NULL (then clamped there). */
double model_rate(const link_physics *ph, double mu, double p, model_point *out);

/* The mu that maximises R at the configured distance without Eve (the
 * link does not know she is there): a golden-section search over
 * [MODEL_MU_MIN, MODEL_MU_MAX] of the unclamped R, so that a distance
 * beyond the cutoff still gives a definite mu.  Deterministic. */
#define MODEL_MU_MIN 0.001
#define MODEL_MU_MAX 1.0
double model_optimal_mu(const link_physics *ph);

/* The mu in force: the configured one, or the optimum when it is 0 (auto). */
double model_mu(const link_physics *ph);

/* The model at the configured distance and eavesdropper, mu in force. */
void model_at(const link_physics *ph, model_point *out);

/* The observed QBER E_mu at which the key rate reaches zero as Eve's
 * fraction grows, at mu: E_mu(p*) with R(p*) = 0.  When there is no key
 * even without Eve, E_mu without Eve. */
double model_zero_rate_qber(const link_physics *ph, double mu);

#endif
