/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parse.c - libqkd014: strict parsing of the KME's answers (Status, Key
 * container, Error) and building of request bodies (Key request, Key IDs),
 * per ETSI GS QKD 014 V1.1.1 §6.
 *
 * Everything the KME sends is checked before the caller sees it: JSON with
 * duplicate member names is refused, required members must have the right
 * JSON types, integers must lie in [0, 2^31), key IDs must be UUIDs and
 * distinct, keys must be canonical base64 of the expected length.  Each
 * failure is QKD014_E_MALFORMED with a precise message that never quotes key
 * material.  Key bytes of one container live in one locked arena.
 */
#include "sae/qkd014_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/jsonscan.h"
#include "common/secret.h"
#include "common/uuid.h"

/* The public qkd014_keys with its arena behind it; only qkd014_keys_free
 * releases it. */
typedef struct keys_box {
    qkd014_keys pub;
    secret_buf arena;
} keys_box;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static qkd014_code fail(char *err, size_t errlen, qkd014_code code,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

#define MALFORMED(...) fail(err, errlen, QKD014_E_MALFORMED, __VA_ARGS__)
#define USAGE(...) fail(err, errlen, QKD014_E_USAGE, __VA_ARGS__)

void qkd014_sanitize(const char *s, size_t len, char *dst, size_t dstlen)
{
    size_t j = 0;
    if (dstlen == 0)
        return;
    for (size_t i = 0; i < len && s[i] != '\0' && j + 1 < dstlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    dst[j] = '\0';
}

bool qkd014_is_json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0)
        return false;
    ct += sizeof want - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Load a body that must be one JSON object. */
static json_t *load_object(const char *body, size_t len, char *err,
                           size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        char why[160];
        qkd014_sanitize(je.text, strlen(je.text), why, sizeof why);
        MALFORMED("answer is not valid JSON (line %d, column %d: %s)",
                  je.line, je.column, why);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        MALFORMED("answer is not a JSON object");
        return NULL;
    }
    return root;
}

/* An optional member that, when present, must be an object. */
static qkd014_code check_opt_object(json_t *obj, const char *name,
                                    const char *where, char *err,
                                    size_t errlen)
{
    json_t *v = json_object_get(obj, name);
    if (v != NULL && !json_is_object(v))
        return MALFORMED("%s member \"%s\" is not an object", where, name);
    return QKD014_OK;
}

/* ---------------------------------------------------------------- Status */

static const char *const status_strings[] = {
    "source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID",
};

static const char *const status_ints[] = {
    "key_size", "stored_key_count", "max_key_count", "max_key_per_request",
    "max_key_size", "min_key_size", "max_SAE_ID_count",
};

static qkd014_code status_string(json_t *root, const char *name, char **dst,
                                 char *err, size_t errlen)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL)
        return MALFORMED("Status lacks member \"%s\"", name);
    if (!json_is_string(v))
        return MALFORMED("Status member \"%s\" is not a string", name);
    if (json_string_length(v) == 0)
        return MALFORMED("Status member \"%s\" is empty", name);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return MALFORMED("Status member \"%s\" holds a NUL", name);
    *dst = strdup(json_string_value(v));
    return *dst ? QKD014_OK : fail(err, errlen, QKD014_E_NOMEM, "out of memory");
}

static qkd014_code status_int(json_t *root, const char *name, int32_t *dst,
                              char *err, size_t errlen)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL)
        return MALFORMED("Status lacks member \"%s\"", name);
    if (!json_is_integer(v))
        return MALFORMED("Status member \"%s\" is not an integer", name);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > INT32_MAX)
        return MALFORMED("Status member \"%s\" is out of range (%lld)", name,
                         (long long)x);
    *dst = (int32_t)x;
    return QKD014_OK;
}

static qkd014_code status_fill(json_t *root, qkd014_status *s, char *err,
                               size_t errlen)
{
    char **strs[] = { &s->source_kme_id, &s->target_kme_id, &s->master_sae_id,
                      &s->slave_sae_id };
    int32_t *ints[] = { &s->key_size, &s->stored_key_count, &s->max_key_count,
                        &s->max_key_per_request, &s->max_key_size,
                        &s->min_key_size, &s->max_sae_id_count };
    qkd014_code rc;
    for (size_t i = 0; i < 4; i++)
        if ((rc = status_string(root, status_strings[i], strs[i], err, errlen)))
            return rc;
    for (size_t i = 0; i < 7; i++)
        if ((rc = status_int(root, status_ints[i], ints[i], err, errlen)))
            return rc;
    return check_opt_object(root, "status_extension", "Status", err, errlen);
}

qkd014_code qkd014_parse_status(const char *body, size_t len,
                                const char *expected_slave,
                                qkd014_status **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *root = load_object(body, len, err, errlen);
    if (root == NULL)
        return QKD014_E_MALFORMED;
    qkd014_status *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(root);
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    }
    qkd014_code rc = status_fill(root, s, err, errlen);
    json_decref(root);
    if (rc == QKD014_OK && expected_slave != NULL &&
        strcmp(s->slave_sae_id, expected_slave) != 0) {
        /* the KME chose these bytes: no control character into a message
         * that callers log or print */
        char shown[65];
        qkd014_sanitize(s->slave_sae_id, strlen(s->slave_sae_id), shown, sizeof shown);
        rc = MALFORMED("Status is for slave SAE \"%s\", not the one asked for", shown);
    }
    if (rc != QKD014_OK) {
        qkd014_status_free(s);
        return rc;
    }
    *out = s;
    return QKD014_OK;
}

QKD014_API void qkd014_status_free(qkd014_status *s)
{
    if (s == NULL)
        return;
    free(s->source_kme_id);
    free(s->target_kme_id);
    free(s->master_sae_id);
    free(s->slave_sae_id);
    free(s);
}

/* --------------------------------------------------------- Key container */

/* The Key container is read with common/jsonscan (in place, no copy of
 * the key text) rather than jansson: see jsonscan.h.  The checks and their
 * order are those of the rest of this file: JSON validity first, then the
 * container's shape, the count, then entry by entry. */

/* One entry of "keys", as views into the body. */
typedef struct key_item {
    uint8_t raw[16];
    char id[QKD014_KEY_ID_LEN + 1];
    js_str b64;      /* the key text; decoded in place unless escaped */
} key_item;

/* What an object member's value is, without reading it. */
static const char *value_kind(char c)
{
    switch (c) {
    case '{': return "object";
    case '[': return "array";
    case '"': return "string";
    default:  return "other";
    }
}

static qkd014_code check_key_entry(jscan *s, size_t i, key_item *it,
                                   char *err, size_t errlen)
{
    js_iter m;
    js_str name, id = { 0 }, key = { 0 };
    bool has_id = false, has_key = false, id_ext_bad = false, key_ext_bad = false;
    int r;
    if (!js_object_begin(s, &m))
        return MALFORMED("keys[%zu] is not an object", i);
    while ((r = js_member(s, &m, &name)) == 1) {
        char next = js_peek(s);
        if (js_str_is(&name, "key_ID") && next == '"')
            has_id = js_string(s, &id);
        else if (js_str_is(&name, "key") && next == '"')
            has_key = js_string(s, &key);
        else {
            if (js_str_is(&name, "key_ID_extension"))
                id_ext_bad = strcmp(value_kind(next), "object") != 0;
            else if (js_str_is(&name, "key_extension"))
                key_ext_bad = strcmp(value_kind(next), "object") != 0;
            if (!js_skip(s))
                r = -1;
        }
        if (r == -1)
            break;
    }
    if (r != 0)
        return MALFORMED("answer is not valid JSON");
    if (!has_id)
        return MALFORMED("keys[%zu] lacks a string \"key_ID\"", i);
    if (!has_key)
        return MALFORMED("keys[%zu] lacks a string \"key\"", i);
    char idtext[QKD014_KEY_ID_LEN + 1];
    size_t idlen = id.len <= QKD014_KEY_ID_LEN ? js_str_decode(&id, idtext) : 0;
    if (idlen == 0 || uuid_parse(idtext, idlen, it->raw) != 0)
        return MALFORMED("keys[%zu].key_ID is not a UUID", i);
    uuid_format(it->raw, it->id);
    it->b64 = key;
    if (key.len == 0)
        return MALFORMED("keys[%zu].key is empty", i);
    if (id_ext_bad || key_ext_bad)
        return MALFORMED("key member \"%s\" is not an object",
                         id_ext_bad ? "key_ID_extension" : "key_extension");
    return QKD014_OK;
}

static int cmp_raw(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Key IDs must be distinct: pairwise for a few, sorted copies for many. */
static qkd014_code check_unique(const key_item *items, size_t n, char *err,
                                size_t errlen)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (memcmp(items[i].raw, items[j].raw, 16) == 0)
                    return MALFORMED("key ID %s appears twice", items[i].id);
        return QKD014_OK;
    }
    uint8_t (*raw)[16] = malloc(n * sizeof *raw);
    if (raw == NULL)
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        memcpy(raw[i], items[i].raw, 16);
    qsort(raw, n, sizeof *raw, cmp_raw);
    size_t dup = 0;
    for (size_t i = 1; i < n && dup == 0; i++)
        if (memcmp(raw[i], raw[i - 1], 16) == 0)
            dup = i;
    char id[QKD014_KEY_ID_LEN + 1];
    if (dup != 0)
        uuid_format(raw[dup], id);
    free(raw);
    return dup != 0 ? MALFORMED("key ID %s appears twice", id) : QKD014_OK;
}

/* dec_keys: reorder items into request order; every requested ID must be
 * there (counts are equal and items are unique, so this is a bijection). */
static qkd014_code match_ids(key_item *items, size_t n,
                             const qkd014_keys_expect *exp, char *err,
                             size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j < n && strcmp(items[j].id, exp->ids[i]) != 0)
            j++;
        if (j == n)
            return MALFORMED("requested key %s is missing from the answer",
                             exp->ids[i]);
        key_item t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
    return QKD014_OK;
}

/* The "keys" array at s holding n entries: check each entry, then the IDs. */
static qkd014_code first_pass(jscan *s, const qkd014_keys_expect *exp,
                              key_item *items, size_t n, char *err,
                              size_t errlen)
{
    qkd014_code rc;
    js_iter a;
    js_array_begin(s, &a);
    for (size_t i = 0; i < n; i++) {
        if (js_element(s, &a) != 1)
            return MALFORMED("answer is not valid JSON");
        if ((rc = check_key_entry(s, i, &items[i], err, errlen)))
            return rc;
    }
    if ((rc = check_unique(items, n, err, errlen)))
        return rc;
    return exp->ids ? match_ids(items, n, exp, err, errlen) : QKD014_OK;
}

/* Expected decoded length in bytes, or 0 when any non-zero length will do
 * (then enc_keys keys must share one length). */
static size_t expected_len(const qkd014_keys_expect *exp)
{
    if (exp->ids != NULL || exp->size_bits <= 0)
        return 0;
    return ((size_t)exp->size_bits + 7) / 8;
}

/* Base64 of one key into dst.  Key text is plain base64, so it is decoded
 * where it lies; an escaped form (legal JSON, never sent by a sane KME) is
 * unescaped into a locked buffer first. */
static int decode_key(const js_str *t, uint8_t *dst, size_t cap, size_t *got)
{
    if (!t->escaped)
        return b64_decode(t->raw, t->len, dst, cap, got);
    secret_buf tmp;
    if (secret_alloc(&tmp, t->len) != 0)
        return -1;
    size_t n = js_str_decode(t, (char *)tmp.data);
    int rc = b64_decode((const char *)tmp.data, n, dst, cap, got);
    secret_free(&tmp);
    return rc;
}

static qkd014_code decode_all(const key_item *items, size_t n,
                              const qkd014_keys_expect *exp, keys_box *box,
                              char *err, size_t errlen)
{
    size_t cap = 0, off = 0, want = expected_len(exp);
    for (size_t i = 0; i < n; i++)
        cap += b64_max_decoded_len(items[i].b64.len);
    if (secret_alloc(&box->arena, cap ? cap : 1) != 0)
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t got;
        if (decode_key(&items[i].b64, box->arena.data + off, cap - off, &got) != 0)
            return MALFORMED("key %s is not canonical base64", items[i].id);
        if (got == 0)
            return MALFORMED("key %s is empty", items[i].id);
        if (want != 0 && got != want)
            return MALFORMED("key %s has %zu bits, expected %zu", items[i].id,
                             got * 8, (size_t)exp->size_bits);
        if (want == 0 && exp->ids == NULL && i > 0 &&
            got != box->pub.keys[0].key_len)
            return MALFORMED("keys differ in length (%zu and %zu bits)",
                             box->pub.keys[0].key_len * 8, got * 8);
        qkd014_key *k = &box->pub.keys[i];
        memcpy(k->key_id, items[i].id, sizeof k->key_id);
        k->key = box->arena.data + off;
        k->key_len = got;
        off += got;
    }
    box->arena.len = off;
    return QKD014_OK;
}

/* Count the elements of the array at s (the cursor stays put). */
static size_t count_elements(jscan s)
{
    js_iter a;
    size_t n = 0;
    if (!js_array_begin(&s, &a))
        return 0;
    while (js_element(&s, &a) == 1 && js_skip(&s))
        n++;
    return n;
}

static qkd014_code keys_from_body(const char *body, size_t len,
                                  const qkd014_keys_expect *exp, keys_box *box,
                                  char *err, size_t errlen)
{
    js_error je;
    if (!js_validate(body, len, &je))
        return MALFORMED("answer is not valid JSON (line %d, column %d: %s)",
                         je.line, je.column, je.why);
    jscan s, keys = { 0 };
    js_iter o;
    js_str name;
    bool has_keys = false, ext_bad = false;
    int r;
    js_init(&s, body, len);
    if (!js_object_begin(&s, &o))
        return MALFORMED("answer is not a JSON object");
    while ((r = js_member(&s, &o, &name)) == 1) {
        char next = js_peek(&s);
        if (js_str_is(&name, "keys")) {
            has_keys = next == '[';
            keys = s;
        } else if (js_str_is(&name, "key_container_extension")) {
            ext_bad = next != '{';
        }
        if (!js_skip(&s))
            return MALFORMED("answer is not valid JSON");
    }
    if (r != 0)
        return MALFORMED("answer is not valid JSON");
    if (!has_keys)
        return MALFORMED("Key container lacks a \"keys\" array");
    if (ext_bad)
        return MALFORMED("Key container member \"key_container_extension\" is not an object");
    size_t n = count_elements(keys);
    size_t want = exp->ids ? exp->n_ids : exp->number;
    if (n != want)
        return MALFORMED("Key container holds %zu keys, %zu requested", n, want);
    key_item *items = calloc(n, sizeof *items);
    box->pub.keys = calloc(n, sizeof *box->pub.keys);
    if (items == NULL || box->pub.keys == NULL) {
        free(items);
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    }
    box->pub.n = n;
    qkd014_code rc = first_pass(&keys, exp, items, n, err, errlen);
    if (rc == QKD014_OK)
        rc = decode_all(items, n, exp, box, err, errlen);
    free(items);
    return rc;
}

qkd014_code qkd014_parse_keys(const char *body, size_t len,
                              const qkd014_keys_expect *exp,
                              qkd014_keys **out, char *err, size_t errlen)
{
    *out = NULL;
    if (exp == NULL || (exp->ids == NULL ? exp->number : exp->n_ids) == 0)
        return USAGE("no keys expected");
    keys_box *box = calloc(1, sizeof *box);
    if (box == NULL)
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    qkd014_code rc = keys_from_body(body, len, exp, box, err, errlen);
    if (rc != QKD014_OK) {
        qkd014_keys_free(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return QKD014_OK;
}

QKD014_API void qkd014_keys_free(qkd014_keys *k)
{
    if (k == NULL)
        return;
    keys_box *box = (keys_box *)k; /* pub is the first member */
    secret_free(&box->arena);
    if (box->pub.keys != NULL)
        secret_wipe(box->pub.keys, box->pub.n * sizeof *box->pub.keys);
    free(box->pub.keys);
    free(box);
}

/* ----------------------------------------------------------------- Error */

bool qkd014_parse_error_message(const char *body, size_t len, char *msg,
                                size_t msglen)
{
    if (msglen > 0)
        msg[0] = '\0';
    json_t *root = json_loadb(body, len, 0, NULL);
    if (root == NULL)
        return false;
    json_t *m = json_object_get(root, "message");
    if (m == NULL || !json_is_string(m))
        m = json_object_get(root, "detail");
    bool ok = m != NULL && json_is_string(m);
    if (ok)
        qkd014_sanitize(json_string_value(m), json_string_length(m), msg,
                        msglen);
    json_decref(root);
    return ok;
}

/* ------------------------------------------------------------- Requests */

bool qkd014_key_request_needs_post(const qkd014_key_request *req)
{
    return req != NULL &&
           ((req->n_additional > 0) || req->extension_mandatory_json != NULL ||
            req->extension_optional_json != NULL);
}

/* Parse extension text: must be a JSON array of objects. */
static qkd014_code load_extension(const char *text, const char *name,
                                  json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (text == NULL)
        return QKD014_OK;
    json_error_t je;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        return USAGE("%s is not valid JSON: %.150s", name, je.text);
    size_t i;
    json_t *e;
    if (!json_is_array(v)) {
        json_decref(v);
        return USAGE("%s is not a JSON array", name);
    }
    json_array_foreach(v, i, e) {
        if (!json_is_object(e)) {
            json_decref(v);
            return USAGE("%s[%zu] is not a JSON object", name, i);
        }
    }
    *out = v;
    return QKD014_OK;
}

static qkd014_code check_additional(const qkd014_key_request *req,
                                    json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (req->n_additional == 0)
        return QKD014_OK;
    if (req->additional_slaves == NULL)
        return USAGE("additional slave SAE IDs missing");
    json_t *a = json_array();
    if (a == NULL)
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    for (size_t i = 0; i < req->n_additional; i++) {
        const char *id = req->additional_slaves[i];
        if (id == NULL || *id == '\0') {
            json_decref(a);
            return USAGE("additional slave SAE ID %zu is empty", i + 1);
        }
        if (json_array_append_new(a, json_string(id)) != 0) {
            json_decref(a);
            return USAGE("additional slave SAE ID %zu is not valid UTF-8", i + 1);
        }
    }
    *out = a;
    return QKD014_OK;
}

/* Set obj[name] = v (stealing v) unless v is NULL. */
static int put(json_t *obj, const char *name, json_t *v)
{
    return v == NULL ? 0 : json_object_set_new(obj, name, v);
}

static qkd014_code dump(json_t *obj, char **json, char *err, size_t errlen)
{
    *json = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return *json ? QKD014_OK : fail(err, errlen, QKD014_E_NOMEM, "out of memory");
}

qkd014_code qkd014_build_key_request(const qkd014_key_request *req, bool post,
                                     char **json, char *err, size_t errlen)
{
    if (json != NULL)
        *json = NULL;
    static const qkd014_key_request defaults = {0};
    if (req == NULL)
        req = &defaults;
    if (req->number < 0)
        return USAGE("number of keys is negative");
    if (req->size < 0)
        return USAGE("key size is negative");
    json_t *add, *man = NULL, *opt = NULL;
    qkd014_code rc = check_additional(req, &add, err, errlen);
    if (rc == QKD014_OK)
        rc = load_extension(req->extension_mandatory_json,
                            "extension_mandatory", &man, err, errlen);
    if (rc == QKD014_OK)
        rc = load_extension(req->extension_optional_json, "extension_optional",
                            &opt, err, errlen);
    json_t *obj = (rc == QKD014_OK && post) ? json_object() : NULL;
    if (rc != QKD014_OK || !post || obj == NULL) {
        json_decref(add);
        json_decref(man);
        json_decref(opt);
        if (rc == QKD014_OK && post)
            rc = fail(err, errlen, QKD014_E_NOMEM, "out of memory");
        return rc;
    }
    int bad = 0;
    if (req->number > 0)
        bad |= put(obj, "number", json_integer(req->number));
    if (req->size > 0)
        bad |= put(obj, "size", json_integer(req->size));
    bad |= put(obj, "additional_slave_SAE_IDs", add);
    bad |= put(obj, "extension_mandatory", man);
    bad |= put(obj, "extension_optional", opt);
    if (bad) {
        json_decref(obj);
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    }
    return dump(obj, json, err, errlen);
}

qkd014_code qkd014_build_key_ids(const char *const *key_ids, size_t n,
                                 char **json, char *err, size_t errlen)
{
    *json = NULL;
    json_t *obj = json_object(), *arr = json_array();
    if (obj == NULL || arr == NULL || json_object_set_new(obj, "key_IDs", arr)) {
        json_decref(obj);
        return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        if (e == NULL || json_array_append_new(arr, e) != 0 ||
            json_object_set_new(e, "key_ID", json_string(key_ids[i])) != 0) {
            json_decref(obj);
            return fail(err, errlen, QKD014_E_NOMEM, "out of memory");
        }
    }
    return dump(obj, json, err, errlen);
}
