/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_block.c - the readers of the link simulator's request bodies (see
 * link_block.h): every length and field is checked before anything is
 * returned, so link_intake.c hands the key store only well-formed blocks.
 */
#include "kme/link_block.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/blockid.h"

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The binary body: block_id (8, BE), owner (1), length (4, BE), bytes. */
int link_parse_block(const char *body, size_t len, uint64_t *id, int *owner,
                     uint32_t *blen, char *why, size_t whylen)
{
    const uint8_t *p = (const uint8_t *)body;
    if (len < LINK_HEADER) {
        snprintf(why, whylen, "body of %zu bytes is shorter than the 13-byte block header", len);
        return -1;
    }
    *id = get_be(p, 8);
    *owner = p[8];
    *blen = (uint32_t)get_be(p + 9, 4);
    if (*owner > 1)
        snprintf(why, whylen, "owner byte is %d: it must be 0 (side A) or 1 (side B)", *owner);
    else if (*blen == 0 || *blen > LINK_MAX_BLOCK)
        snprintf(why, whylen, "block length %" PRIu32 " is outside 1..%d", *blen, LINK_MAX_BLOCK);
    else if (len - LINK_HEADER != *blen)
        snprintf(why, whylen, "block length field says %" PRIu32 " bytes but %zu follow the header",
                 *blen, len - LINK_HEADER);
    else
        return 0;
    return -1;
}

/* {"block_IDs": ["<16 hex digits>", ...]} and nothing else. */
link_parse_result link_parse_ids(const char *body, size_t len, uint64_t **ids, size_t *n,
                                 char *why, size_t whylen)
{
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    json_t *arr = json_object_get(o, "block_IDs");
    link_parse_result rc = LINK_PARSE_BAD;
    *ids = NULL;
    if (!o) { /* jansson 2.14 reports its own lack of memory as bad syntax */
        snprintf(why, whylen, "body is not valid JSON: %.80s", je.text);
    } else if (!json_is_object(o) || !json_is_array(arr) || json_object_size(o) != 1) {
        snprintf(why, whylen, "body must be {\"block_IDs\": [\"<16 hex digits>\", ...]} with no other member");
    } else if (json_array_size(arr) && !(*ids = calloc(json_array_size(arr), sizeof **ids))) {
        rc = LINK_PARSE_NOMEM;
        snprintf(why, whylen, "out of memory");
    } else {
        rc = LINK_PARSE_OK;
    }
    for (size_t i = 0; rc == LINK_PARSE_OK && i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || block_id_parse(json_string_value(v), json_string_length(v), &(*ids)[i]) != 0) {
            snprintf(why, whylen, "block_IDs[%zu] is not a string of 16 hex digits", i);
            rc = LINK_PARSE_BAD;
        }
    }
    *n = rc == LINK_PARSE_OK ? json_array_size(arr) : 0;
    if (rc != LINK_PARSE_OK) {
        free(*ids);
        *ids = NULL;
    }
    json_decref(o);
    return rc;
}
