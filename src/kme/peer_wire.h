/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_wire.h - the KME-to-KME wire format (docs/kme-pair.md), both ways:
 * reading the requests the peer listener receives and writing its answers,
 * and writing the requests the peer client sends and reading their answers.
 * peer.c moves these texts over HTTPS; this file only knows JSON.
 *
 * JSON, UTF-8; block IDs as exactly 16 hex digits, UUIDs in the 8-4-4-4-12
 * form (our KMEs make reservation IDs time-ordered, version 7, so that the
 * peer's records of them are appended, not scattered; any version is
 * accepted), times in Unix milliseconds; a segment is
 * [block_id_hex, offset_bytes, length_bytes]:
 *
 *   POST /peer/v1/reservations
 *     {"reservation_ID": UUID, "master_SAE_ID": s, "slave_SAE_IDs": [s, ...],
 *      "expires": ms, "keys": [{"key_ID": UUID, "segments": [seg, ...]}, ...]}
 *     answered 200 {"reservation_ID": UUID, "status": "applied"}
 *   POST /peer/v1/reservation-batch
 *     {"reservations": [reservation, ...]}      (1 to PEER_BATCH_MAX)
 *     answered 200 {"results": [result, ...]}, one per reservation in
 *     request order: {"reservation_ID": UUID, "status": "applied"} or
 *     {"reservation_ID": UUID | null, "type": t, "status": code,
 *     "message": m}, each what the single request would have answered.
 *   POST /peer/v1/voids
 *     {"reservation_ID": UUID, "segments": [seg, ...]}
 *     answered 200 {"reservation_ID": UUID, "status": "voided"}
 *   POST /peer/v1/reservation-state
 *     {"reservation_ID": UUID}
 *     answered 200 {"reservation_ID": UUID, "status": "applied" | "voided" |
 *     "unknown"}
 *   errors: {"type": t, "status": code, "message": text}
 *
 * There is no member a key's bytes could travel in: a key is named by its
 * ID and located by block segments that both KMEs hold from the link (I3).
 * Reading is strict (duplicate or unknown members, wrong types, values out
 * of range are 400 and nothing changes), since only our own KMEs speak this
 * and a lenient reader would hide a version mismatch.
 *
 * Both directions work on the text in place (common/jsonscan.h to read,
 * common/jsonw.h to write), not through a DOM: one reservation crosses for
 * every remote enc_keys, and jansson's trees cost each KME 6-7 % of its CPU.
 */
#ifndef QC_KME_PEER_WIRE_H
#define QC_KME_PEER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/kme_error.h"
#include "kme/reply.h"

#define PEER_BATCH_MAX 64           /* reservations per batch request */

/* A refusal is a kme_err with a problem type (kme_err_problem). */

/* ---- the listener's side ----------------------------------------------- */

/* A request body, validated once; the strings a parsed request keeps (SAE
 * IDs) are decoded into its arena, which lives as long as the document. */
typedef struct pw_doc {
    const char *buf, *end;
    char *arena;
    size_t used;
} pw_doc;

/* Validate body as one JSON object (400 otherwise, with the reason). */
int pw_doc_open(pw_doc *d, const char *body, size_t len, kme_err *e);
void pw_doc_close(pw_doc *d);

/* A reservation as received; strings in the document's arena. */
typedef struct pw_resv {
    uint8_t id[16];
    const char *master;
    const char *slaves[64];
    size_t nslaves;
    int64_t expires;
    ks_remote_key *keys;
    size_t nkeys;
    ks_segment *segs;
} pw_resv;

void pw_resv_free(pw_resv *r);

/* The reservation whose object starts at `at` (NULL: the whole body);
 * `where` names it in messages.  The master must sit behind `caller`, every
 * slave must be attached here (cfg), named once. */
int pw_read_reservation(pw_doc *d, const char *at, const char *where, const kme_config *cfg,
                        const char *caller, pw_resv *r, kme_err *e);

/* A batch: the positions of its 1 to PEER_BATCH_MAX items. */
int pw_read_batch(const pw_doc *d, const char **items, size_t *n, kme_err *e);
/* The reservation ID of a batch item, if it has a readable one. */
bool pw_item_id(const pw_doc *d, const char *at, uint8_t id[16]);

/* A void: its ID and segments (malloc'd *segs, *n of them). */
int pw_read_void(const pw_doc *d, uint8_t id[16], ks_segment **segs, size_t *n, kme_err *e);
/* A state query: the reservation ID. */
int pw_read_state(const pw_doc *d, uint8_t id[16], kme_err *e);

/* Answers. */
void pw_reply_problem(kme_reply *out, const kme_err *e);
void pw_reply_ok(kme_reply *out, const uint8_t id[16], const char *status);
/* The batch answer: results[i] is item i's outcome (NULL: applied), ids[i]
 * its reservation ID (NULL: none readable). */
void pw_reply_batch(kme_reply *out, size_t n, const uint8_t *const *ids, const kme_err *const *results);

/* What a KME holds towards one neighbour: the own bits of that link. */
typedef struct pw_stock {
    char kme[257];
    uint64_t bits;
} pw_stock;
#define PW_STOCK_MAX 64

/* GET /peer/v1/map: {"map_version": n | null, "stock": [{"kme": id,
 * "bits": n}, ...]}: the version of this KME's network map (null without
 * one, version < 0) and, per link, the own bits it could send towards that
 * neighbour now (docs/network.md §2: what a relay's second hop holds). */
void pw_reply_map(kme_reply *out, int64_t version, const pw_stock *stock, size_t n);

/* ---- the client's side ------------------------------------------------- */

/* Request bodies (malloc'd, NUL-terminated; NULL when out of memory). */
char *pw_reservation_text(const ks_reservation *r, const char *master,
                          const char *const *slaves, size_t nslaves);
char *pw_void_text(const uint8_t id[16], const ks_segment *segs, size_t n);
char *pw_state_text(const uint8_t id[16]);

/* The outcome of one reservation as the client sees it. */
typedef struct peer_answer {
    long http;                     /* 0: no HTTP answer (see reason) */
    char type[48];                 /* problem type of an error answer */
    char reason[256];
    char message[224];             /* its message alone ("" if none) */
} peer_answer;

/* An error answer's type and message into a (a->http already set). */
void pw_answer_reason(const char *resp, size_t len, peer_answer *a);
/* A batch answer: res[i] for the n reservations ids[i]; a reply of another
 * shape fails every member alike. */
void pw_batch_results(const char *resp, size_t n, const uint8_t (*ids)[16], peer_answer *res);
/* A state answer about id: 1 applied, 0 voided or unknown, -1 another shape
 * (also "pending": ask again later). */
int pw_state_applied(const char *resp, const uint8_t id[16]);

/* A map answer: 0 and *version (-1: the peer has no map) and up to cap
 * stock entries (*n of them; stock may be NULL), or -1 for another shape. */
int pw_map_answer(const char *resp, int64_t *version, pw_stock *stock, size_t cap, size_t *n);

#endif
