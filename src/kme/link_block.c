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
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ------------------------------------------------------------ reports */

int link_parse_block_ex(const char *body, size_t len, uint64_t *id, int *owner, uint32_t *blen,
                        const char **report, size_t *report_len, char *why, size_t whylen)
{
    *report = NULL;
    *report_len = 0;
    if (len >= LINK_HEADER) {
        uint32_t declared = (uint32_t)get_be((const uint8_t *)body + 9, 4);
        size_t magic = sizeof LINK_TRAILER_MAGIC - 1;
        size_t end = LINK_HEADER + (size_t)declared;
        if (declared <= LINK_MAX_BLOCK && len > end) {
            if (len - end < magic || memcmp(body + end, LINK_TRAILER_MAGIC, magic) != 0) {
                snprintf(why, whylen, "%zu bytes follow the block but do not start a report (\"%s\")",
                         len - end, LINK_TRAILER_MAGIC);
                return -1;
            }
            *report = body + end + magic;
            *report_len = len - end - magic;
            len = end;
        }
    }
    if (link_parse_block(body, len, id, owner, blen, why, whylen) != 0) {
        *report = NULL;
        *report_len = 0;
        return -1;
    }
    return 0;
}

static const char *const state_names[] = {
    [LINK_REPORT_DISTILLING] = "distilling",
    [LINK_REPORT_MARGINAL] = "marginal",
    [LINK_REPORT_ABORTED] = "aborted",
    [LINK_REPORT_NO_KEY] = "no key at this distance",
};

const char *link_report_state_name(link_report_state s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

/* A number in [min, max] (or null when nullable): 0, or -1 with why. */
static int get_real(json_t *o, const char *name, double min, double max, bool nullable,
                    bool *has, double *out, char *why, size_t whylen)
{
    json_t *v = json_object_get(o, name);
    *has = false;
    if (nullable && json_is_null(v))
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < min
        || json_number_value(v) > max) {
        snprintf(why, whylen, "report member \"%s\" must be a number in %g..%g%s", name, min, max,
                 nullable ? " or null" : "");
        return -1;
    }
    *has = true;
    *out = json_number_value(v);
    return 0;
}

static int get_state(json_t *o, link_report *r, char *why, size_t whylen)
{
    const char *s = json_string_value(json_object_get(o, "state"));
    for (size_t i = 0; s && i < sizeof state_names / sizeof state_names[0]; i++)
        if (strcmp(s, state_names[i]) == 0) {
            r->state = (link_report_state)i;
            return 0;
        }
    snprintf(why, whylen, "report member \"state\" must be \"distilling\", \"marginal\", \"aborted\" "
             "or \"no key at this distance\"");
    return -1;
}

static int get_model(json_t *o, link_report *r, char *why, size_t whylen)
{
    const char *s = json_string_value(json_object_get(o, "model"));
    if (s && strcmp(s, "fixed") == 0)
        r->model = 0;
    else if (s && strcmp(s, "decoy-bb84") == 0)
        r->model = 1;
    else {
        snprintf(why, whylen, "report member \"model\" must be \"fixed\" or \"decoy-bb84\"");
        return -1;
    }
    return 0;
}

/* Optional; printable ASCII only: it goes into logs. */
static int get_reason(json_t *o, link_report *r, char *why, size_t whylen)
{
    json_t *v = json_object_get(o, "reason");
    r->reason[0] = '\0';
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    for (size_t i = 0; s && i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            s = NULL;
    if (!s || n > LINK_REPORT_REASON_MAX) {
        snprintf(why, whylen, "report member \"reason\" must be printable ASCII of at most %d bytes",
                 LINK_REPORT_REASON_MAX);
        return -1;
    }
    memcpy(r->reason, s, n + 1);
    return 0;
}

static bool only_known_members(json_t *o)
{
    static const char *const known[] = { "state", "qber", "bound", "model", "distance_km",
                                         "time_scale", "secret_bits", "reason" };
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            found = found || strcmp(key, known[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

int link_parse_report(const char *json, size_t len, link_report *r, char *why, size_t whylen)
{
    json_error_t je;
    memset(r, 0, sizeof *r);
    if (len > LINK_REPORT_MAX) {
        snprintf(why, whylen, "report of %zu bytes is longer than %d", len, LINK_REPORT_MAX);
        return -1;
    }
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    json_t *bits = json_object_get(o, "secret_bits");
    bool has_scale;
    int rc = -1;
    if (!json_is_object(o))
        snprintf(why, whylen, "report is not a JSON object%s%.80s", o ? "" : ": ", o ? "" : je.text);
    else if (!only_known_members(o))
        snprintf(why, whylen, "report has a member other than state, qber, bound, model, distance_km, "
                 "time_scale, secret_bits, reason");
    else if (get_state(o, r, why, whylen) == 0 && get_model(o, r, why, whylen) == 0
             && get_real(o, "qber", 0, 1, true, &r->has_qber, &r->qber, why, whylen) == 0
             && get_real(o, "bound", 0, 1, true, &r->has_bound, &r->bound, why, whylen) == 0
             && get_real(o, "distance_km", 0, 1000, true, &r->has_distance, &r->distance_km, why, whylen) == 0
             && get_real(o, "time_scale", 0.001, 1e9, false, &has_scale, &r->time_scale, why, whylen) == 0
             && get_reason(o, r, why, whylen) == 0) {
        if (!json_is_integer(bits) || json_integer_value(bits) < 0
            || json_integer_value(bits) > (json_int_t)LINK_MAX_BLOCK * 8)
            snprintf(why, whylen, "report member \"secret_bits\" must be an integer in 0..%d",
                     LINK_MAX_BLOCK * 8);
        else if (r->model == 1 && (!r->has_qber || !r->has_bound || !r->has_distance))
            snprintf(why, whylen, "a decoy-bb84 report must give qber, bound and distance_km");
        else {
            r->secret_bits = (uint64_t)json_integer_value(bits);
            rc = 0;
        }
    }
    json_decref(o);
    return rc;
}
