/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.h - the link simulator's admin listener ([admin] listen, plain
 * HTTP on loopback; docs/operations.md): GET /metrics in the Prometheus
 * text format, on the bounded listener of common/admin_http.h (Host check,
 * GET and HEAD only, no body, few connections).
 *
 * The feeder reports through the link_admin_* calls: relaxed atomics, no
 * lock, callable before link_admin_start and without an [admin] section.
 * Metrics: qkd_link_blocks_total, qkd_link_key_bytes_total,
 * qkd_link_secret_key_rate_bytes_per_second, qkd_link_qber_ratio and
 * qkd_link_alarm (once the feeder reported a QBER), qkd_link_state{state}
 * (once it reported a state), qkd_link_kme_up{kme}.
 */
#ifndef QC_LINK_ADMIN_H
#define QC_LINK_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link/config.h"

/* A block stored at both KMEs. */
void link_admin_block(uint64_t bytes);
/* The secret-key rate in force (bytes per second, both directions). */
void link_admin_rate(double bytes_per_s);
/* The QBER last measured and whether the link is in alarm because of it. */
void link_admin_qber(double ratio, bool alarm);
/* The state of the last block (a static word: "distilling", "aborted",
 * ...), exported as qkd_link_state{state} 1. */
void link_admin_state(const char *state);
/* KME k (0: side A, 1: side B) answers, or not. */
void link_admin_kme(int k, bool up);

/* "IPV4:PORT" or "[IPV6]:PORT" on loopback into host (size >= 64) and
 * port: 0, or -1 with the reason in why. */
int link_admin_parse_listen(const char *v, char *host, size_t hostlen, uint16_t *port,
                            char *why, size_t whylen);

/* cfg's [admin] listen is usable (or absent): 0, or -1 with
 * "FILE: [admin] listen: reason" in err. */
int link_admin_check(const link_config *cfg, char *err, size_t errlen);

typedef struct link_admin link_admin;

/* Start serving cfg's [admin] listen (NULL in *out without one).  0, or -1
 * with the reason in err. */
int link_admin_start(const link_config *cfg, link_admin **out, char *err, size_t errlen);
uint16_t link_admin_port(const link_admin *a);
void link_admin_stop(link_admin *a);

#endif
