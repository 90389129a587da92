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

#endif
