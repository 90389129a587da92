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
} link_config;

/* Load and validate; on failure -1 and one message in err, in the KME's
 * style: "FILE:LINE: [section] key: reason", "FILE: [section] key: reason"
 * (missing key), "FILE:LINE: reason" (a line that is no key). */
int link_config_load(const char *path, link_config *cfg, char *err, size_t errlen);
void link_config_free(link_config *cfg);

/* The i-th key of the table (0-based): its section and name; false past
 * the end.  For tests that hold the shipped example file to the table. */
bool link_config_key(size_t i, const char **section, const char **name);

#endif
