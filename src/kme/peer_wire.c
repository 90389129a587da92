/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_wire.c - the KME-to-KME wire format (peer_wire.h): strict readers
 * over a validated document (common/jsonscan.h) for what the peer listener
 * receives, and hand-written texts (common/jsonw.h) for what either side
 * sends.
 *
 * Readers look at an object's members in one pass (an unknown name is a
 * 400 at once), remember where each known value starts, and then read the
 * values in a fixed order, so that the first problem reported does not
 * depend on the order of members in the text.
 */
#include "kme/peer_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blockid.h"
#include "common/jsonscan.h"
#include "common/jsonw.h"
#include "common/uuid.h"
#include "kme/peer_wire_internal.h"

#define MAX_KEYS 100000            /* keys per reservation (the body limit binds first) */
#define MAX_SEGS 100000            /* segments per key or per void */
#define MAX_MEMBERS 5

/* Up to 64 bytes of text a peer sent, fit for a one-line message: bytes
 * outside printable ASCII become '?' (a cut UTF-8 sequence or a control
 * character would break the answer's JSON or the log line). */
const char *pwi_shown(const char *in, size_t len, char out[65])
{
    size_t n = len < 64 ? len : 64;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
    out[n] = '\0';
    return out;
}

static int bad(kme_err *e, const char *fmt, const char *where)
{
    return kme_err_problem(e, 400, "bad-request", fmt, where);
}

/* ===================================================================
 * Reading requests
 * =================================================================== */

int pw_doc_open(pw_doc *d, const char *body, size_t len, kme_err *e)
{
    js_error je;
    memset(d, 0, sizeof *d);
    if (!body)
        body = "";
    if (!js_validate(body, len, &je))
        return kme_err_problem(e, 400, "bad-request", "body must be one JSON object without duplicate "
                        "members: %s at line %d, column %d", je.why, je.line, je.column);
    jscan s;
    js_init(&s, body, len);
    if (js_peek(&s) != '{')
        return kme_err_problem(e, 400, "bad-request", "body must be one JSON object without duplicate "
                        "members");
    /* decoded strings and their NULs never outgrow the text (each had two
     * quotes there) */
    d->arena = malloc(len + 1);
    if (!d->arena)
        return kme_err_problem(e, 503, "internal", "out of memory");
    d->buf = body;
    d->end = body + len;
    return 0;
}

void pw_doc_close(pw_doc *d)
{
    free(d->arena);
    memset(d, 0, sizeof *d);
}

jscan pwi_cursor(const pw_doc *d, const char *at)
{
    jscan s = {.p = at ? at : d->buf, .end = d->end};
    return s;
}

/* A string value decoded into buf (room for cap bytes with its NUL); false
 * if it is not a string or does not fit. */
static bool small_string(jscan *s, char *buf, size_t cap, size_t *len)
{
    js_str v;
    if (!js_string(s, &v) || v.len >= cap)
        return false;
    *len = js_str_decode(&v, buf);
    buf[*len] = '\0';
    return true;
}

/* Where each of names' values starts in the object at `at`; an unknown
 * member or a missing one is a 400 naming it. */
int pwi_members(const pw_doc *d, const char *at, const char *const *names, size_t n,
                size_t required, const char **val, const char *where, kme_err *e)
{
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_str name;
    int r;
    for (size_t i = 0; i < n; i++)
        val[i] = NULL;
    if (!js_object_begin(&s, &it))
        return bad(e, "%s must be an object", where);
    while ((r = js_member(&s, &it, &name)) == 1) {
        size_t i = 0;
        while (i < n && !js_str_is(&name, names[i]))
            i++;
        if (i == n) {
            char text[65];
            return kme_err_problem(e, 400, "bad-request", "%s: unknown member \"%s\"", where,
                            pwi_shown(name.raw, name.len, text));
        }
        val[i] = s.p;
        if (!js_skip(&s))
            return bad(e, "%s is malformed", where);
    }
    if (r != 0)
        return bad(e, "%s is malformed", where);
    for (size_t i = 0; i < required; i++)
        if (!val[i])
            return kme_err_problem(e, 400, "bad-request", "%s: missing member \"%s\"", where, names[i]);
    return 0;
}

bool pwi_uuid(const pw_doc *d, const char *at, uint8_t out[16])
{
    jscan s = pwi_cursor(d, at);
    char text[UUID_STR_LEN + 1];
    size_t len;
    return small_string(&s, text, sizeof text, &len) && uuid_parse(text, len, out) == 0;
}

/* A string value decoded into the document's arena. */
const char *pwi_string(pw_doc *d, const char *at)
{
    jscan s = pwi_cursor(d, at);
    js_str v;
    if (!js_string(&s, &v))
        return NULL;
    char *dst = d->arena + d->used;
    size_t n = js_str_decode(&v, dst);
    dst[n] = '\0';
    d->used += n + 1;
    return dst;
}

/* Number of elements of the array at `at`; false if it is not one. */
bool pwi_array_size(const pw_doc *d, const char *at, size_t *n)
{
    jscan s = pwi_cursor(d, at);
    js_iter it;
    int r;
    *n = 0;
    if (!js_array_begin(&s, &it))
        return false;
    while ((r = js_element(&s, &it)) == 1) {
        if (!js_skip(&s))
            return false;
        (*n)++;
    }
    return r == 0;
}

/* [block_id_hex, offset, length], offset + length within 32 bits. */
static int read_segment(jscan *s, ks_segment *seg, const char *where, size_t i, kme_err *e)
{
    js_iter it;
    char hex[20];
    size_t hl = 0;
    long long off = 0, len = 0;
    bool shape = js_array_begin(s, &it) && js_element(s, &it) == 1
                 && small_string(s, hex, sizeof hex, &hl) && js_element(s, &it) == 1
                 && js_int64(s, &off) && js_element(s, &it) == 1 && js_int64(s, &len)
                 && js_element(s, &it) == 0;
    if (!shape)
        return kme_err_problem(e, 400, "bad-request",
                        "%s[%zu] must be [block_ID (16 hex digits), offset, length]", where, i);
    if (block_id_parse(hex, hl, &seg->block_id) != 0)
        return kme_err_problem(e, 400, "bad-request", "%s[%zu]: block ID must be 16 hex digits", where, i);
    if (off < 0 || len < 1 || off + len > (long long)UINT32_MAX)
        return kme_err_problem(e, 400, "bad-request",
                        "%s[%zu]: offset must be >= 0, length >= 1, offset + length < 2^32",
                        where, i);
    seg->offset = (uint32_t)off;
    seg->length = (uint32_t)len;
    return 0;
}

/* A non-empty array of segments at `at` into dst (room for n, its size). */
int pwi_segments(const pw_doc *d, const char *at, size_t n, ks_segment *dst,
                 const char *where, kme_err *e)
{
    if (n == 0 || n > MAX_SEGS)
        return kme_err_problem(e, 400, "bad-request", "%s must be an array of 1 to %d segments", where,
                        MAX_SEGS);
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_array_begin(&s, &it);
    for (size_t i = 0; i < n; i++) {
        if (js_element(&s, &it) != 1)
            return bad(e, "%s is malformed", where);
        if (read_segment(&s, &dst[i], where, i, e) != 0)
            return -1;
    }
    return 0;
}

void pw_resv_free(pw_resv *r)
{
    free(r->keys);
    free(r->segs);
    r->keys = NULL;
    r->segs = NULL;
}

static int read_saes(pw_doc *d, const char *m_at, const char *s_at, const kme_config *cfg,
                     const char *caller, pw_resv *r, kme_err *e)
{
    if (!(r->master = pwi_string(d, m_at)))
        return bad(e, "%s must be a string", "master_SAE_ID");
    const kme_peer *behind = kme_config_peer_of_sae(cfg, r->master);
    char text[65];
    if (!behind || strcmp(behind->id, caller) != 0)
        return kme_err_problem(e, 400, "bad-request", "master_SAE_ID %s is not an SAE attached to KME %s",
                        pwi_shown(r->master, strlen(r->master), text), caller);
    size_t n;
    if (!pwi_array_size(d, s_at, &n) || n == 0 || n > 63)
        return bad(e, "%s must be an array of 1 to 63 SAE IDs", "slave_SAE_IDs");
    jscan s = pwi_cursor(d, s_at);
    js_iter it;
    js_array_begin(&s, &it);
    for (size_t i = 0; i < n; i++) {
        js_element(&s, &it);
        const char *id = pwi_string(d, s.p);
        if (!id || !kme_config_is_local_sae(cfg, id))
            return kme_err_problem(e, 400, "bad-request",
                            "slave_SAE_IDs[%zu] is not an SAE attached to this KME", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->slaves[j], id) == 0)
                return kme_err_problem(e, 400, "bad-request",
                                "slave_SAE_IDs[%zu] repeats an earlier ID", i);
        r->slaves[r->nslaves++] = id;
        js_skip(&s);
    }
    return 0;
}

/* keys[i] = {"key_ID": UUID, "segments": [...]}, its segments into *next. */
static int read_key(const pw_doc *d, const char *at, size_t i, ks_remote_key *out,
                    ks_segment **next, kme_err *e)
{
    static const char *const names[] = { "key_ID", "segments" };
    const char *val[2];
    char where[48];
    size_t nsegs;
    snprintf(where, sizeof where, "keys[%zu]", i);
    if (pwi_members(d, at, names, 2, 2, val, where, e) != 0)
        return -1;
    if (!pwi_uuid(d, val[0], out->id))
        return kme_err_problem(e, 400, "bad-request", "%s.key_ID must be a UUID string", where);
    snprintf(where, sizeof where, "keys[%zu].segments", i);
    if (!pwi_array_size(d, val[1], &nsegs))
        nsegs = 0;
    if (pwi_segments(d, val[1], nsegs, *next, where, e) != 0)
        return -1;
    uint64_t bytes = 0;
    for (size_t j = 0; j < nsegs; j++)
        bytes += (*next)[j].length;
    if (bytes > INT32_MAX / 8)
        return kme_err_problem(e, 400, "bad-request", "%s: key larger than %d bits", where, INT32_MAX);
    out->size_bits = (uint32_t)(bytes * 8);
    out->segs = *next;
    out->nsegs = nsegs;
    *next += nsegs;
    return 0;
}

/* The segments member of a key object (0 if there is none that is an
 * array): to size the segment array before reading. */
static size_t key_segments(const pw_doc *d, const char *at)
{
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_str name;
    size_t n = 0;
    if (!js_object_begin(&s, &it))
        return 0;
    while (js_member(&s, &it, &name) == 1) {
        if (js_str_is(&name, "segments") && pwi_array_size(d, s.p, &n))
            return n;
        if (!js_skip(&s))
            return 0;
    }
    return 0;
}

int pwi_keys(const pw_doc *d, const char *at, pw_resv *r, kme_err *e)
{
    size_t n;
    if (!pwi_array_size(d, at, &n) || n == 0 || n > MAX_KEYS)
        return kme_err_problem(e, 400, "bad-request", "keys must be an array of 1 to %d keys", MAX_KEYS);
    size_t total = 0;
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_array_begin(&s, &it);
    while (js_element(&s, &it) == 1) {
        total += key_segments(d, s.p);
        js_skip(&s);
    }
    r->nkeys = n;
    r->keys = calloc(n, sizeof *r->keys);
    r->segs = calloc(total ? total : 1, sizeof *r->segs);
    if (!r->keys || !r->segs)
        return kme_err_problem(e, 503, "internal", "out of memory");
    ks_segment *next = r->segs;
    s = pwi_cursor(d, at);
    js_array_begin(&s, &it);
    for (size_t i = 0; i < n; i++) {
        js_element(&s, &it);
        if (read_key(d, s.p, i, &r->keys[i], &next, e) != 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (memcmp(r->keys[j].id, r->keys[i].id, 16) == 0)
                return kme_err_problem(e, 400, "bad-request",
                                "keys[%zu].key_ID repeats an earlier key ID", i);
        js_skip(&s);
    }
    return 0;
}

int pw_read_reservation(pw_doc *d, const char *at, const char *where, const kme_config *cfg,
                        const char *caller, pw_resv *r, kme_err *e)
{
    static const char *const names[] = {
        "reservation_ID", "master_SAE_ID", "slave_SAE_IDs", "expires", "keys",
    };
    const char *val[5];
    if (pwi_members(d, at, names, 5, 5, val, where, e) != 0)
        return -1;
    if (!pwi_uuid(d, val[0], r->id))
        return bad(e, "%s must be a UUID string", "reservation_ID");
    if (read_saes(d, val[1], val[2], cfg, caller, r, e) != 0)
        return -1;
    jscan s = pwi_cursor(d, val[3]);
    long long x;
    if (!js_int64(&s, &x) || x <= 0)
        return bad(e, "%s must be a positive integer (Unix milliseconds)", "expires");
    r->expires = x;
    return pwi_keys(d, val[4], r, e);
}

int pw_read_batch(const pw_doc *d, const char **items, size_t *n, kme_err *e)
{
    static const char *const names[] = { "reservations" };
    const char *val[1];
    if (pwi_members(d, NULL, names, 1, 1, val, "batch", e) != 0)
        return -1;
    if (!pwi_array_size(d, val[0], n) || *n == 0 || *n > PEER_BATCH_MAX)
        return kme_err_problem(e, 400, "bad-request", "reservations must be an array of 1 to %d "
                        "reservations", PEER_BATCH_MAX);
    jscan s = pwi_cursor(d, val[0]);
    js_iter it;
    js_array_begin(&s, &it);
    for (size_t i = 0; i < *n; i++) {
        js_element(&s, &it);
        items[i] = s.p;
        js_skip(&s);
    }
    return 0;
}

bool pw_item_id(const pw_doc *d, const char *at, uint8_t id[16])
{
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_str name;
    if (!js_object_begin(&s, &it))
        return false;
    while (js_member(&s, &it, &name) == 1) {
        if (js_str_is(&name, "reservation_ID"))
            return pwi_uuid(d, s.p, id);
        if (!js_skip(&s))
            return false;
    }
    return false;
}

int pw_read_void(const pw_doc *d, uint8_t id[16], ks_segment **segs, size_t *n, kme_err *e)
{
    static const char *const names[] = { "reservation_ID", "segments" };
    const char *val[2];
    *segs = NULL;
    *n = 0;
    if (pwi_members(d, NULL, names, 2, 2, val, "void", e) != 0)
        return -1;
    if (!pwi_uuid(d, val[0], id))
        return bad(e, "%s must be a UUID string", "reservation_ID");
    size_t count = 0;
    bool array = pwi_array_size(d, val[1], &count);
    if (array && count == 0)
        return 0; /* a relay's void after its downstream applied: no bits of ours */
    if (!array)
        count = 0;
    if (count > 0 && count <= MAX_SEGS && !(*segs = calloc(count, sizeof **segs)))
        return kme_err_problem(e, 503, "internal", "out of memory");
    if (pwi_segments(d, val[1], count, *segs, "segments", e) != 0) {
        free(*segs);
        *segs = NULL;
        return -1;
    }
    *n = count;
    return 0;
}

int pw_read_state(const pw_doc *d, uint8_t id[16], kme_err *e)
{
    static const char *const names[] = { "reservation_ID" };
    const char *val[1];
    if (pwi_members(d, NULL, names, 1, 1, val, "state query", e) != 0)
        return -1;
    if (!pwi_uuid(d, val[0], id))
        return bad(e, "%s must be a UUID string", "reservation_ID");
    return 0;
}

/* ===================================================================
 * Writing
 * =================================================================== */

void pwi_uuid_text(jsonw *w, const uint8_t id[16])
{
    char text[UUID_STR_LEN + 1];
    uuid_format(id, text);
    jw_raw(w, "\"", 1);
    jw_raw(w, text, UUID_STR_LEN);
    jw_raw(w, "\"", 1);
}

static void problem_text(jsonw *w, const kme_err *e)
{
    jw_lit(w, "\"type\":");
    jw_str(w, e->type ? e->type : "internal"); /* a kme_err_set without one */
    jw_lit(w, ",\"status\":");
    jw_int(w, e->http);
    jw_lit(w, ",\"message\":");
    jw_str(w, e->message);
}

static void reply_jsonw(kme_reply *out, int http, jsonw *w)
{
    size_t len = 0;
    char *text = jw_finish(w, &len);
    reply_text(out, http, text, len);
    free(text);
}

void pw_reply_problem(kme_reply *out, const kme_err *e)
{
    jsonw w;
    jw_init(&w, 128 + sizeof e->message);
    jw_raw(&w, "{", 1);
    problem_text(&w, e);
    jw_raw(&w, "}", 1);
    reply_jsonw(out, e->http, &w);
}

void pw_reply_map(kme_reply *out, int64_t version, const pw_stock *stock, size_t n)
{
    jsonw w;
    jw_init(&w, 64 + n * 320);
    jw_lit(&w, "{\"map_version\":");
    if (version < 0)
        jw_lit(&w, "null");
    else
        jw_int(&w, version);
    jw_lit(&w, ",\"stock\":[");
    for (size_t i = 0; i < n; i++) {
        jw_lit(&w, i ? ",{\"kme\":" : "{\"kme\":");
        jw_str(&w, stock[i].kme);
        jw_lit(&w, ",\"bits\":");
        jw_int(&w, (int64_t)stock[i].bits);
        jw_raw(&w, "}", 1);
    }
    jw_lit(&w, "]}");
    reply_jsonw(out, 200, &w);
}

void pw_reply_ok(kme_reply *out, const uint8_t id[16], const char *status)
{
    jsonw w;
    jw_init(&w, 96);
    jw_lit(&w, "{\"reservation_ID\":");
    pwi_uuid_text(&w, id);
    jw_lit(&w, ",\"status\":");
    jw_str(&w, status);
    jw_raw(&w, "}", 1);
    reply_jsonw(out, 200, &w);
}

void pw_reply_batch(kme_reply *out, size_t n, const uint8_t *const *ids, const kme_err *const *results)
{
    jsonw w;
    jw_init(&w, 32 + n * 96);
    jw_lit(&w, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        jw_lit(&w, i ? ",{\"reservation_ID\":" : "{\"reservation_ID\":");
        if (ids[i])
            pwi_uuid_text(&w, ids[i]);
        else
            jw_lit(&w, "null");
        if (results[i]) {
            jw_raw(&w, ",", 1);
            problem_text(&w, results[i]);
        } else {
            jw_lit(&w, ",\"status\":\"applied\"");
        }
        jw_raw(&w, "}", 1);
    }
    jw_lit(&w, "]}");
    reply_jsonw(out, 200, &w);
}

void pwi_segments_text(jsonw *w, const ks_segment *segs, size_t n)
{
    jw_raw(w, "[", 1);
    for (size_t i = 0; i < n; i++) {
        char hex[17];
        block_id_format(segs[i].block_id, hex);
        jw_raw(w, i ? ",[\"" : "[\"", i ? 3 : 2);
        jw_raw(w, hex, 16);
        jw_raw(w, "\",", 2);
        jw_int(w, segs[i].offset);
        jw_raw(w, ",", 1);
        jw_int(w, segs[i].length);
        jw_raw(w, "]", 1);
    }
    jw_raw(w, "]", 1);
}

/* Key IDs and segments only: the key bytes in r->keys are not read. */
char *pw_reservation_text(const ks_reservation *r, const char *master,
                          const char *const *slaves, size_t nslaves)
{
    jsonw w;
    jw_init(&w, 256 + r->keys.n * 64 + r->total_segs * 48);
    jw_lit(&w, "{\"reservation_ID\":");
    pwi_uuid_text(&w, r->id);
    jw_lit(&w, ",\"master_SAE_ID\":");
    jw_str(&w, master);
    jw_lit(&w, ",\"slave_SAE_IDs\":[");
    for (size_t i = 0; i < nslaves; i++) {
        if (i)
            jw_raw(&w, ",", 1);
        jw_str(&w, slaves[i]);
    }
    jw_lit(&w, "],\"expires\":");
    jw_int(&w, r->expires_ms);
    pwi_reservation_keys_text(&w, r);
    jw_lit(&w, "}");
    return jw_finish(&w, NULL);
}

void pwi_reservation_keys_text(jsonw *w, const ks_reservation *r)
{
    jw_lit(w, ",\"keys\":[");
    for (size_t i = 0; i < r->keys.n; i++) {
        jw_lit(w, i ? ",{\"key_ID\":" : "{\"key_ID\":");
        pwi_uuid_text(w, r->keys.keys[i].id);
        jw_lit(w, ",\"segments\":");
        pwi_segments_text(w, r->segs + r->first_seg[i], r->n_segs[i]);
        jw_raw(w, "}", 1);
    }
    jw_lit(w, "]");
}

char *pw_void_text(const uint8_t id[16], const ks_segment *segs, size_t n)
{
    jsonw w;
    jw_init(&w, 64 + n * 48);
    jw_lit(&w, "{\"reservation_ID\":");
    pwi_uuid_text(&w, id);
    jw_lit(&w, ",\"segments\":");
    pwi_segments_text(&w, segs, n);
    jw_lit(&w, "}");
    return jw_finish(&w, NULL);
}

char *pw_state_text(const uint8_t id[16])
{
    jsonw w;
    jw_init(&w, 64);
    jw_lit(&w, "{\"reservation_ID\":");
    pwi_uuid_text(&w, id);
    jw_raw(&w, "}", 1);
    return jw_finish(&w, NULL);
}

/* ===================================================================
 * Reading answers (lenient on members we do not use: they come from a
 * KME that may be newer)
 * =================================================================== */

/* A string view decoded into out (truncated to fit), "" if absent. */
static void view_text(const js_str *v, bool has, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!has)
        return;
    char *d = malloc(v->len + 1);
    if (!d)
        return;
    size_t n = js_str_decode(v, d);
    snprintf(out, outlen, "%.*s", (int)n, d);
    free(d);
}

/* The members of an answer object the client reads, as views. */
typedef struct item_view {
    js_str rid, type, msg, st;
    bool has_rid, has_type, has_msg, has_st, has_code;
    long long code;
} item_view;

static bool read_str(jscan *s, js_str *out, bool *has)
{
    if (js_peek(s) == '"')
        return (*has = js_string(s, out));
    return js_skip(s); /* another type: as if absent */
}

static bool read_item(jscan *s, item_view *v)
{
    js_iter it;
    js_str name;
    int r;
    memset(v, 0, sizeof *v);
    if (!js_object_begin(s, &it))
        return false;
    while ((r = js_member(s, &it, &name)) == 1) {
        bool ok;
        if (js_str_is(&name, "reservation_ID"))
            ok = read_str(s, &v->rid, &v->has_rid);
        else if (js_str_is(&name, "type"))
            ok = read_str(s, &v->type, &v->has_type);
        else if (js_str_is(&name, "message"))
            ok = read_str(s, &v->msg, &v->has_msg);
        else if (js_str_is(&name, "status") && js_peek(s) == '"')
            ok = read_str(s, &v->st, &v->has_st);
        else if (js_str_is(&name, "status") && js_int64(s, &v->code))
            ok = v->has_code = true;
        else
            ok = js_skip(s);
        if (!ok)
            return false;
    }
    return r == 0;
}

static bool view_is_id(const item_view *v, const uint8_t want[16])
{
    uint8_t id[16];
    char rid[UUID_STR_LEN + 1];
    if (!v->has_rid || v->rid.len > UUID_STR_LEN * 6)
        return false;
    view_text(&v->rid, true, rid, sizeof rid);
    return uuid_parse(rid, strlen(rid), id) == 0 && memcmp(id, want, 16) == 0;
}

/* One answer object's type and message (an error answer). */
static void problem_reason(const item_view *v, long http, peer_answer *a)
{
    char msg[256];
    view_text(&v->type, v->has_type, a->type, sizeof a->type);
    view_text(&v->msg, v->has_msg, msg, sizeof msg);
    snprintf(a->reason, sizeof a->reason, "HTTP %ld: %.200s", http,
             v->has_msg ? msg : "no message");
    snprintf(a->message, sizeof a->message, "%.200s", v->has_msg ? msg : "");
}

/* The document resp as one object, read into v. */
static bool read_answer(const char *resp, size_t len, item_view *v)
{
    js_error e;
    jscan s;
    if (!js_validate(resp, len, &e))
        return false;
    js_init(&s, resp, len);
    return read_item(&s, v);
}

void pw_answer_reason(const char *resp, size_t len, peer_answer *a)
{
    item_view v;
    if (!resp || !read_answer(resp, len, &v))
        memset(&v, 0, sizeof v);
    problem_reason(&v, a->http, a);
}

static void item_outcome(const item_view *v, const uint8_t want[16], peer_answer *x)
{
    memset(x, 0, sizeof *x);
    if (!view_is_id(v, want)) {
        snprintf(x->reason, sizeof x->reason, "the peer's batch answer does not match the request");
    } else if (v->has_st && js_str_is(&v->st, "applied")) {
        x->http = 200;
    } else if (v->has_code && v->code > 200 && v->code < 600) {
        x->http = (long)v->code;
        problem_reason(v, x->http, x);
    } else {
        snprintf(x->reason, sizeof x->reason, "the peer's batch answer has no valid status");
    }
}

/* The "results" array, one item per member; false for another shape. */
static bool batch_items(const char *resp, size_t n, const uint8_t (*ids)[16], peer_answer *res)
{
    jscan s;
    js_iter top, arr;
    js_str name;
    js_error e;
    int r;
    bool seen = false;
    size_t len = strlen(resp);
    if (!js_validate(resp, len, &e))
        return false;
    js_init(&s, resp, len);
    if (!js_object_begin(&s, &top))
        return false;
    while ((r = js_member(&s, &top, &name)) == 1) {
        if (!js_str_is(&name, "results")) {
            if (!js_skip(&s))
                return false;
            continue;
        }
        size_t i = 0;
        item_view v;
        if (!js_array_begin(&s, &arr))
            return false;
        while ((r = js_element(&s, &arr)) == 1) {
            if (i >= n || !read_item(&s, &v))
                return false;
            item_outcome(&v, ids[i], &res[i]);
            i++;
        }
        if (r != 0 || i != n)
            return false;
        seen = true;
    }
    return r == 0 && seen;
}

void pw_batch_results(const char *resp, size_t n, const uint8_t (*ids)[16], peer_answer *res)
{
    if (resp && batch_items(resp, n, ids, res))
        return;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        snprintf(res[i].reason, sizeof res[i].reason,
                 "the peer's batch answer does not match the request");
    }
}

int pw_state_applied(const char *resp, const uint8_t id[16])
{
    item_view v;
    if (!resp || !read_answer(resp, strlen(resp), &v) || !view_is_id(&v, id) || !v.has_st)
        return -1;
    if (js_str_is(&v.st, "applied"))
        return 1;
    return js_str_is(&v.st, "voided") || js_str_is(&v.st, "unknown") ? 0 : -1;
}

/* One {"kme": id, "bits": n} of a map answer's stock. */
static bool read_stock_item(jscan *s, pw_stock *out)
{
    js_iter it;
    js_str name, v;
    bool have_kme = false, have_bits = false;
    long long bits;
    if (!js_object_begin(s, &it))
        return false;
    int r;
    while ((r = js_member(s, &it, &name)) == 1) {
        if (js_str_is(&name, "kme") && !have_kme && js_string(s, &v) && v.len > 0
            && v.len < sizeof out->kme) {
            size_t n = js_str_decode(&v, out->kme);
            out->kme[n] = '\0';
            have_kme = true;
        } else if (js_str_is(&name, "bits") && !have_bits && js_int64(s, &bits) && bits >= 0) {
            out->bits = (uint64_t)bits;
            have_bits = true;
        } else {
            return false;
        }
    }
    return r == 0 && have_kme && have_bits;
}

int pw_map_answer(const char *resp, int64_t *version, pw_stock *stock, size_t cap, size_t *n)
{
    js_error je;
    size_t len = resp ? strlen(resp) : 0;
    *n = 0;
    if (!resp || !js_validate(resp, len, &je))
        return -1;
    jscan s;
    js_iter it, arr;
    js_str name;
    js_init(&s, resp, len);
    bool have_version = false;
    int r;
    if (!js_object_begin(&s, &it))
        return -1;
    while ((r = js_member(&s, &it, &name)) == 1) {
        long long v;
        if (js_str_is(&name, "map_version") && js_peek(&s) == 'n') {
            if (!js_skip(&s))
                return -1;
            *version = -1;
            have_version = true;
        } else if (js_str_is(&name, "map_version") && js_int64(&s, &v) && v >= 0) {
            *version = v;
            have_version = true;
        } else if (js_str_is(&name, "stock") && js_array_begin(&s, &arr)) {
            int e;
            pw_stock item;
            while ((e = js_element(&s, &arr)) == 1) {
                if (!read_stock_item(&s, &item))
                    return -1;
                if (stock && *n < cap)
                    stock[(*n)++] = item;
            }
            if (e != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return r == 0 && have_version ? 0 : -1;
}
