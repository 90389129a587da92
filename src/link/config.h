/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the QKD link simulator's configuration file (docs/link.md).
 *
 * INI like the KME's: [link] (its own identity, TLS files, the secret-key
 * rate, block size, owner ratio), [kme_a] and [kme_b] (the link intake of
 * each KME: URL and expected KME ID).  Loaded and validated completely
 * before anything is sent: every error names the file, the line and the key,
 * and the link's certificate must name the configured link ID as its CN.
 */
#ifndef QC_LINK_CONFIG_H
#define QC_LINK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define LINK_MAX_BLOCK_BYTES (1024 * 1024) /* the KME's intake limit */

typedef enum { LINK_MODEL_FIXED = 0, LINK_MODEL_DECOY_BB84 = 1 } link_model_kind;

/* [physics]: how the link makes key (model.h, docs/link.md "The model").
 * With model fixed only rate_bps and block_bytes of [link] count; with
 * decoy-bb84 the key rate, block sizes and QBER follow the fibre. */
typedef struct link_physics {
    int model;                   /* link_model_kind */
    double distance_km;
    double fiber_loss_db_per_km; /* alpha */
    double detector_efficiency;  /* eta_Bob */
    double dark_count_yield;     /* Y0 */
    double misalignment;         /* e_d */
    double ec_efficiency;        /* f */
    double pulse_rate_hz;
    double mu;                   /* 0: optimised for the distance */
    double time_scale;           /* 1 = real time */
    double eavesdropper;         /* p: fraction intercepted and resent */
    int64_t block_sifted_bits;
    int64_t qber_sample_bits;
    double qber_abort;
} link_physics;

typedef struct link_kme {
    char *url;          /* https://HOST:PORT of its [link] listener, no path */
    char *id;           /* expected KME ID: subject CN of its certificate */
} link_kme;

typedef struct link_config {
    char *path;
    /* [link] */
    char *id;           /* subject CN of our certificate */
    char *cert, *key;   /* our client certificate and key (PEM) */
    char *ca;           /* the KME CA (PEM) */
    int64_t rate_bps;   /* secret-key rate, both directions together */
    int64_t block_bytes;
    unsigned ratio_a, ratio_b; /* owner_ratio A:B */
    int64_t timeout_ms; /* bound of one HTTPS exchange with a KME */
    enum log_level log_level;
    /* [kme_a], [kme_b]: index 0 = side A, 1 = side B */
    link_kme kme[2];
    link_physics physics;
    /* [admin] (optional): /metrics on plain HTTP, loopback only (admin.h) */
    char *admin_listen; /* "127.0.0.1:PORT" */
} link_config;

/* Load and validate; on failure -1 and one message in err, in the KME's
 * style: "FILE:LINE: [section] key: reason", "FILE: [section] key: reason"
 * (missing key), "FILE:LINE: reason" (a line that is no key). */
int link_config_load(const char *path, link_config *cfg, char *err, size_t errlen);
void link_config_free(link_config *cfg);

/* Only the [physics] keys of path (`qkd-link --table`): the other sections
 * may be absent; when present they are checked as by link_config_load. */
int link_physics_load(const char *path, link_physics *ph, char *err, size_t errlen);

/* The model's name as the configuration spells it. */
const char *link_model_name(int model);

/* The i-th key of the table (0-based): its section and name; false past
 * the end.  For tests that hold the shipped example file to the table. */
bool link_config_key(size_t i, const char **section, const char **name);

#endif
