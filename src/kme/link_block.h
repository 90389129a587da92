/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_block.h - the readers of what the link simulator sends to the [link]
 * listener (docs/kme.md "Link intake"): the binary block body of
 * POST /link/v1/blocks and the {"block_IDs": [...]} body of confirm and
 * discard.  Pure functions (bytes in, values or a one-line reason out), so
 * that they can be unit-tested and fuzzed (fuzz/fuzz_link_block.c) without
 * a key store or a socket.
 */
#ifndef QC_KME_LINK_BLOCK_H
#define QC_KME_LINK_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_MAX_BLOCK (1024 * 1024)            /* bytes of key in one block */
#define LINK_HEADER 13                          /* block_id 8, owner 1, length 4 */
#define LINK_MAX_BODY (LINK_MAX_BLOCK + 64)     /* the listener's max_body */

/* The binary body: block_id (8, BE), owner (1), length (4, BE), bytes.
 * 0 with *id, *owner (0 = side A, 1 = side B) and *blen (1..LINK_MAX_BLOCK,
 * exactly the bytes after the header) set; -1 with a reason in why. */
int link_parse_block(const char *body, size_t len, uint64_t *id, int *owner,
                     uint32_t *blen, char *why, size_t whylen);

/* What link_parse_ids() found: the caller picks its answer by this kind
 * (400 for a bad body, 503 for our own lack of memory), never by the text. */
typedef enum link_parse_result {
    LINK_PARSE_OK = 0,
    LINK_PARSE_BAD = -1,   /* the body is not what the link must send */
    LINK_PARSE_NOMEM = -2, /* out of memory here: the body may be fine */
} link_parse_result;

/* {"block_IDs": ["<16 hex digits>", ...]} and nothing else.  LINK_PARSE_OK
 * with *ids (malloc'd, NULL when *n is 0) and *n set; otherwise *ids NULL,
 * *n 0 and a reason in why. */
link_parse_result link_parse_ids(const char *body, size_t len, uint64_t **ids, size_t *n,
                                 char *why, size_t whylen);

/* ------------------------------------------------------------------
 * QBER reports (issue 13): what the link found for one block, produced
 * or aborted.  A JSON object, either as the body of POST /link/v1/report
 * (blocks that produced no key) or as a trailer of a block body (below).
 *   {"state": "distilling" | "marginal" | "aborted" | "no key at this distance",
 *    "qber": 0..1 or null, "bound": 0..1 or null,
 *    "model": "fixed" | "decoy-bb84", "distance_km": 0..1000 or null,
 *    "time_scale": (0, 1e9], "secret_bits": 0..8 MiB in bits,
 *    "reason": optional printable ASCII (at most 120 bytes)}
 * with no other member and no member twice.
 * ------------------------------------------------------------------ */

typedef enum link_report_state {
    LINK_REPORT_DISTILLING = 0, /* key produced from this block */
    LINK_REPORT_MARGINAL,       /* aborted, but within 3 sigma of the honest QBER */
    LINK_REPORT_ABORTED,        /* aborted on QBER: possible eavesdropping */
    LINK_REPORT_NO_KEY,         /* no key at this distance, even without Eve */
} link_report_state;

#define LINK_REPORT_MAX 1024        /* bytes of one report */
#define LINK_REPORT_REASON_MAX 120

typedef struct link_report {
    link_report_state state;
    bool has_qber, has_bound, has_distance;
    double qber, bound, distance_km;
    int model;                      /* 0 fixed, 1 decoy-bb84 (link/config.h) */
    double time_scale;
    uint64_t secret_bits;
    char reason[LINK_REPORT_REASON_MAX + 1];
} link_report;

/* One report.  0 with *out set; -1 with a reason in why (out undefined). */
int link_parse_report(const char *json, size_t len, link_report *out, char *why, size_t whylen);

/* The state's name as the wire and the ETSI status extension spell it. */
const char *link_report_state_name(link_report_state s);

/* A block body that may carry a report: the binary body of
 * link_parse_block, then optionally the two bytes "R1" and a report up to
 * the end of the body.  A body without the trailer is read as before (the
 * old link); the link sends trailers only to a KME whose state answer
 * says "reports": 1 (an old KME would refuse them with a 400).
 * 0 with the block's fields and *report / *report_len (NULL, 0 when there
 * is no trailer; the report is not parsed here); -1 with a reason. */
#define LINK_TRAILER_MAGIC "R1"
int link_parse_block_ex(const char *body, size_t len, uint64_t *id, int *owner, uint32_t *blen,
                        const char **report, size_t *report_len, char *why, size_t whylen);

#endif
