/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay_wire.c - reading and writing POST /peer/v1/relay (relay_wire.h),
 * on the helpers of the peer wire format (peer_wire_internal.h), and the
 * aad every hop's one-time tag binds.
 *
 * The reader is as strict as the rest of the peer channel: unknown or
 * repeated members, wrong types, a path with a repeated KME or longer than
 * RELAY_MAX_PATH, a hop outside it, the sealed members at hop 1 or missing
 * after it, a cipher whose length is not the keys' total, all are 400s
 * and nothing is touched.
 */
#include "kme/relay_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/base64.h"
#include "kme/peer_wire_internal.h"

#define MAX_SEALED_KEYS 100000
#define MAX_KEY_BITS (1LL << 30)

static int bad(kme_err *e, const char *fmt, const char *what)
{
    return kme_err_problem(e, 400, "bad-request", fmt, what);
}

void pw_relay_free(pw_relay *r)
{
    free(r->keys);
    free(r->segs);
    free(r->pad);
    if (r->cipher) {
        sodium_memzero(r->cipher, r->cipher_len);
        free(r->cipher);
    }
    memset(r, 0, sizeof *r);
}

/* An array of 1..max IDs into ids (strings in d's arena), none repeated. */
static int read_ids(pw_doc *d, const char *at, const char **ids, size_t max, size_t *n,
                    const char *what, kme_err *e)
{
    if (!pwi_array_size(d, at, n) || *n == 0 || *n > max)
        return kme_err_problem(e, 400, "bad-request", "%s must be an array of 1 to %zu IDs", what, max);
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_array_begin(&s, &it);
    for (size_t i = 0; i < *n; i++) {
        js_element(&s, &it);
        const char *id = pwi_string(d, s.p);
        if (!id || !*id || strlen(id) > 256)
            return kme_err_problem(e, 400, "bad-request", "%s[%zu] must be a non-empty string of "
                                   "at most 256 bytes", what, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ids[j], id) == 0)
                return kme_err_problem(e, 400, "bad-request", "%s[%zu] repeats an earlier ID", what, i);
        ids[i] = id;
        js_skip(&s);
    }
    return 0;
}

static int read_int(const pw_doc *d, const char *at, long long min, long long max, long long *out,
                    const char *what, kme_err *e)
{
    jscan s = pwi_cursor(d, at);
    if (!js_int64(&s, out) || *out < min || *out > max)
        return kme_err_problem(e, 400, "bad-request", "%s must be an integer in %lld..%lld", what,
                               min, max);
    return 0;
}

/* Sealed keys: [{"key_ID": UUID, "size": bits}], sizes multiples of 8. */
static int read_sealed_keys(const pw_doc *d, const char *at, pw_relay *r, kme_err *e)
{
    size_t n;
    if (!pwi_array_size(d, at, &n) || n == 0 || n > MAX_SEALED_KEYS)
        return kme_err_problem(e, 400, "bad-request", "keys must be an array of 1 to %d keys",
                               MAX_SEALED_KEYS);
    if (!(r->keys = calloc(n, sizeof *r->keys)))
        return kme_err_problem(e, 503, "internal", "out of memory");
    r->nkeys = n;
    jscan s = pwi_cursor(d, at);
    js_iter it;
    js_array_begin(&s, &it);
    static const char *const names[] = { "key_ID", "size" };
    for (size_t i = 0; i < n; i++) {
        const char *val[2];
        char where[32];
        long long bits;
        js_element(&s, &it);
        snprintf(where, sizeof where, "keys[%zu]", i);
        if (pwi_members(d, s.p, names, 2, 2, val, where, e) != 0)
            return -1;
        if (!pwi_uuid(d, val[0], r->keys[i].id))
            return kme_err_problem(e, 400, "bad-request", "%s.key_ID must be a UUID string", where);
        if (read_int(d, val[1], 8, MAX_KEY_BITS, &bits, "keys[].size", e) != 0)
            return -1;
        if (bits % 8)
            return kme_err_problem(e, 400, "bad-request", "%s.size must be a multiple of 8", where);
        r->keys[i].size_bits = (uint32_t)bits;
        for (size_t j = 0; j < i; j++)
            if (memcmp(r->keys[j].id, r->keys[i].id, 16) == 0)
                return kme_err_problem(e, 400, "bad-request", "%s.key_ID repeats an earlier key ID", where);
        js_skip(&s);
    }
    return 0;
}

/* A base64 string into a fresh buffer of exactly want bytes. */
static int read_b64(const pw_doc *d, const char *at, size_t want, uint8_t *dst, const char *what,
                    kme_err *e)
{
    jscan s = pwi_cursor(d, at);
    js_str v;
    size_t got = 0;
    if (!js_string(&s, &v) || v.len != b64_encoded_len(want)
        || b64_decode(v.raw, v.len, dst, want, &got) != 0 || got != want)
        return kme_err_problem(e, 400, "bad-request", "%s must be base64 of exactly %zu bytes", what,
                               want);
    return 0;
}

static int read_sealed(pw_doc *d, const char *keys_at, const char *pad_at, const char *cipher_at,
                       const char *tag_at, pw_relay *r, kme_err *e)
{
    if (read_sealed_keys(d, keys_at, r, e) != 0)
        return -1;
    uint64_t bytes = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        bytes += r->keys[i].size_bits / 8;
    if (bytes > PEER_MAX_RELAY_BYTES)
        return kme_err_problem(e, 400, "bad-request", "keys of %llu bytes in all: more than one "
                               "relay carries (%d)", (unsigned long long)bytes, PEER_MAX_RELAY_BYTES);
    size_t npad = 0;
    if (!pwi_array_size(d, pad_at, &npad))
        npad = 0;
    if (npad && !(r->pad = calloc(npad, sizeof *r->pad)))
        return kme_err_problem(e, 503, "internal", "out of memory");
    if (pwi_segments(d, pad_at, npad, r->pad, "pad", e) != 0)
        return -1;
    r->npad = npad;
    uint64_t pad_bytes = 0;
    for (size_t i = 0; i < npad; i++)
        pad_bytes += r->pad[i].length;
    if (pad_bytes != bytes + RELAY_MAC_KEY_BYTES)
        return kme_err_problem(e, 400, "bad-request", "pad must cover the keys' %llu bytes and the "
                               "32-byte MAC key", (unsigned long long)bytes);
    r->cipher_len = (size_t)bytes;
    if (!(r->cipher = malloc(bytes ? bytes : 1)))
        return kme_err_problem(e, 503, "internal", "out of memory");
    if (read_b64(d, cipher_at, r->cipher_len, r->cipher, "cipher", e) != 0)
        return -1;
    return read_b64(d, tag_at, RELAY_TAG_BYTES, r->tag, "tag", e);
}

static int read_first(pw_doc *d, const char *keys_at, pw_relay *r, kme_err *e)
{
    pw_resv tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = pwi_keys(d, keys_at, &tmp, e);
    r->keys = tmp.keys; /* pw_relay_free frees them */
    r->segs = tmp.segs;
    r->nkeys = tmp.nkeys;
    return rc;
}

int pw_read_relay(pw_doc *d, pw_relay *r, kme_err *e)
{
    static const char *const names[] = {
        "reservation_ID", "master_SAE_ID", "slave_SAE_IDs", "expires", "path", "hop",
        "timeout_ms", "keys", "pad", "cipher", "tag",
    };
    const char *val[11];
    long long x;
    memset(r, 0, sizeof *r);
    if (pwi_members(d, NULL, names, 11, 8, val, "relay", e) != 0)
        return -1;
    if (!pwi_uuid(d, val[0], r->id))
        return bad(e, "%s must be a UUID string", "reservation_ID");
    if (!(r->master = pwi_string(d, val[1])) || !*r->master)
        return bad(e, "%s must be a non-empty string", "master_SAE_ID");
    if (read_ids(d, val[2], r->slaves, 63, &r->nslaves, "slave_SAE_IDs", e) != 0)
        return -1;
    if (read_int(d, val[3], 1, INT64_MAX, &x, "expires", e) != 0)
        return -1;
    r->expires = x;
    if (read_ids(d, val[4], r->path, RELAY_MAX_PATH, &r->npath, "path", e) != 0)
        return -1;
    if (r->npath < 3)
        return bad(e, "%s must name at least 3 KMEs (a relay has two hops or more)", "path");
    if (read_int(d, val[5], 1, (long long)r->npath - 1, &x, "hop", e) != 0)
        return -1;
    r->hop = (unsigned)x;
    if (read_int(d, val[6], 1, 600000, &x, "timeout_ms", e) != 0)
        return -1;
    r->timeout_ms = x;
    size_t sealed_given = (val[8] != NULL) + (val[9] != NULL) + (val[10] != NULL);
    if (sealed_given != 0 && sealed_given != 3)
        return bad(e, "%s: pad, cipher and tag go together", "relay");
    r->sealed = sealed_given == 3;
    if (r->sealed != (r->hop >= 2))
        return kme_err_problem(e, 400, "bad-request", "relay: hop %u %s", r->hop,
                               r->hop >= 2 ? "must carry pad, cipher and tag"
                                           : "names the key's segments and carries no pad, cipher or tag");
    return r->sealed ? read_sealed(d, val[7], val[8], val[9], val[10], r, e)
                     : read_first(d, val[7], r, e);
}

/* ---- writing ------------------------------------------------------------ */

static void head_text(jsonw *w, const uint8_t id[16], const char *master, const char *const *slaves,
                      size_t nslaves, int64_t expires, const char *const *path, size_t npath,
                      unsigned hop, int64_t timeout_ms)
{
    jw_lit(w, "{\"reservation_ID\":");
    pwi_uuid_text(w, id);
    jw_lit(w, ",\"master_SAE_ID\":");
    jw_str(w, master);
    jw_lit(w, ",\"slave_SAE_IDs\":[");
    for (size_t i = 0; i < nslaves; i++) {
        if (i)
            jw_raw(w, ",", 1);
        jw_str(w, slaves[i]);
    }
    jw_lit(w, "],\"expires\":");
    jw_int(w, expires);
    jw_lit(w, ",\"path\":[");
    for (size_t i = 0; i < npath; i++) {
        if (i)
            jw_raw(w, ",", 1);
        jw_str(w, path[i]);
    }
    jw_lit(w, "],\"hop\":");
    jw_int(w, hop);
    jw_lit(w, ",\"timeout_ms\":");
    jw_int(w, timeout_ms);
}

char *pw_relay_first_text(const ks_reservation *r, const char *master,
                          const char *const *slaves, size_t nslaves,
                          const char *const *path, size_t npath, int64_t timeout_ms)
{
    jsonw w;
    jw_init(&w, 384 + r->keys.n * 64 + r->total_segs * 48);
    head_text(&w, r->id, master, slaves, nslaves, r->expires_ms, path, npath, 1, timeout_ms);
    pwi_reservation_keys_text(&w, r);
    jw_lit(&w, "}");
    return jw_finish(&w, NULL);
}

static void b64_text(jsonw *w, const uint8_t *in, size_t n)
{
    size_t len = b64_encoded_len(n);
    char *t = malloc(len + 1);
    if (!t) {
        jw_lit(w, "null"); /* the receiver refuses it: a 400, nothing applied */
        return;
    }
    b64_encode(in, n, t);
    jw_raw(w, "\"", 1);
    jw_raw(w, t, len);
    jw_raw(w, "\"", 1);
    free(t);
}

char *pw_relay_sealed_text(const pw_relay *in, int64_t timeout_ms, const ks_segment *pad,
                           size_t npad, const uint8_t *cipher, size_t cipher_len,
                           const uint8_t tag[RELAY_TAG_BYTES])
{
    jsonw w;
    jw_init(&w, 384 + in->nkeys * 72 + npad * 48 + b64_encoded_len(cipher_len));
    head_text(&w, in->id, in->master, in->slaves, in->nslaves, in->expires, in->path, in->npath,
              in->hop + 1, timeout_ms);
    jw_lit(&w, ",\"keys\":[");
    for (size_t i = 0; i < in->nkeys; i++) {
        jw_lit(&w, i ? ",{\"key_ID\":" : "{\"key_ID\":");
        pwi_uuid_text(&w, in->keys[i].id);
        jw_lit(&w, ",\"size\":");
        jw_int(&w, in->keys[i].size_bits);
        jw_raw(&w, "}", 1);
    }
    jw_lit(&w, "],\"pad\":");
    pwi_segments_text(&w, pad, npad);
    jw_lit(&w, ",\"cipher\":");
    b64_text(&w, cipher, cipher_len);
    jw_lit(&w, ",\"tag\":");
    b64_text(&w, tag, RELAY_TAG_BYTES);
    jw_lit(&w, "}");
    return jw_finish(&w, NULL);
}

/* ---- aad ---------------------------------------------------------------- */

typedef struct abuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} abuf;

static void put(abuf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(abuf *b, uint32_t v)
{
    uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    put(b, x, 4);
}

static void put_str(abuf *b, const char *s)
{
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

uint8_t *relay_aad(const pw_relay *r, size_t *len)
{
    static const char label[] = "QuMail-C relay v1";
    abuf b = { 0 };
    put_str(&b, label);
    put(&b, r->id, 16);
    put_u32(&b, (uint32_t)((uint64_t)r->expires >> 32));
    put_u32(&b, (uint32_t)r->expires);
    put_str(&b, r->master);
    put_u32(&b, (uint32_t)r->nslaves);
    for (size_t i = 0; i < r->nslaves; i++)
        put_str(&b, r->slaves[i]);
    put_u32(&b, (uint32_t)r->npath);
    for (size_t i = 0; i < r->npath; i++)
        put_str(&b, r->path[i]);
    put_u32(&b, (uint32_t)r->nkeys);
    for (size_t i = 0; i < r->nkeys; i++) {
        put(&b, r->keys[i].id, 16);
        put_u32(&b, r->keys[i].size_bits);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
