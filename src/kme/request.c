/* SPDX-License-Identifier: Apache-2.0 */
/*
 * request.c - syntax, types and limits of ETSI GS QKD 014 requests (spec
 * digest §5.3, §5.4, §5.6, §12).
 *
 * Everything here is pure and runs on untrusted bytes (it is fuzzed): no
 * I/O, no global state, every allocation owned by the kme_request and
 * released by kme_request_clear().  Error messages name the offending member
 * or parameter, never quote more than ECHO_MAX bytes of client input, and
 * never quote key IDs (a dec_keys key_ID is a capability for a key).
 */
#include "kme/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pct.h"
#include "common/uuid.h"

#define PATH_PREFIX      "/api/v1/keys/"
#define MSG_NO_RESOURCE  "no such resource: use /api/v1/keys/{SAE_ID}/status|enc_keys|dec_keys"
#define MSG_NO_MEMORY    "out of memory"
#define ECHO_MAX         64    /* bytes of client input a message may quote */
#define MAX_KEY_IDS      4096  /* key_IDs entries per dec_keys request */
#define MAX_ADDITIONAL   256   /* additional_slave_SAE_IDs entries, before limits */
#define MAX_JSON_DEPTH   64    /* our bodies need 4; extension values get room */
#define MAX_UNSUPPORTED_DETAILS 16

/* ------------------------------------------------------------------ errors */

static int fail_oom(kme_err *err)
{
    kme_err_set(err, 503, MSG_NO_MEMORY);
    return -1;
}

/* Copy client text for quoting in a message: printable ASCII only ('?' for
 * anything else, so the message stays valid UTF-8 and one line), at most
 * ECHO_MAX bytes, "..." when cut. */
static const char *echo(char out[ECHO_MAX + 4], const char *s, size_t len)
{
    size_t n = len < ECHO_MAX ? len : ECHO_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > ECHO_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* -------------------------------------------------------------- SAE IDs */

typedef enum { TEXT_OK, TEXT_BLANK, TEXT_TOO_LONG, TEXT_CONTROL, TEXT_BAD_UTF8 } text_verdict;

static bool is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_ascii_space((unsigned char)s[i]))
            return false;
    return true;
}

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if it is not one.  *cp gets the
 * code point. */
static size_t utf8_sequence(const unsigned char *s, size_t avail, unsigned *cp)
{
    unsigned char c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        *cp = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;   /* overlong */
        if (c == 0xed) hi = 0x9f;   /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        *cp = c & 0x07;
        if (c == 0xf0) lo = 0x90;   /* overlong */
        if (c == 0xf4) hi = 0x8f;   /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if (!is_cont(s[i]))
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    return need;
}

static bool is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* An SAE ID must be non-blank, short, UTF-8 and free of control characters:
 * it ends up in JSON, in logs and in the key store. */
static text_verdict check_sae_id(const char *s, size_t len)
{
    if (is_blank(s, len))
        return TEXT_BLANK;
    if (len > KME_MAX_SAE_ID_LEN)
        return TEXT_TOO_LONG;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = utf8_sequence((const unsigned char *)s + i, len - i, &cp);
        if (n == 0)
            return TEXT_BAD_UTF8;
        if (is_control(cp))
            return TEXT_CONTROL;
        i += n;
    }
    return TEXT_OK;
}

static const char *verdict_text(text_verdict v)
{
    switch (v) {
    case TEXT_BLANK:    return "must not be empty or blank";
    case TEXT_TOO_LONG: return "must be at most 256 bytes long";
    case TEXT_CONTROL:  return "must not contain control characters";
    case TEXT_BAD_UTF8: return "must be valid UTF-8";
    case TEXT_OK:       break;
    }
    return "is invalid";
}

/* ---------------------------------------------------------------- path */

static bool span_equals(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Match "/api/v1/keys/{id}/{endpoint}" on the raw (still encoded) path, so
 * an ID holding "%2F" stays one segment.  Returns the endpoint or 0. */
static kme_endpoint match_path(const char *path, size_t len,
                               const char **id, size_t *id_len)
{
    size_t plen = strlen(PATH_PREFIX);
    if (len < plen || memcmp(path, PATH_PREFIX, plen) != 0)
        return 0;
    const char *rest = path + plen;
    size_t rest_len = len - plen;
    const char *slash = memchr(rest, '/', rest_len);
    if (slash == NULL)
        return 0;
    const char *ep = slash + 1;
    size_t ep_len = rest_len - (size_t)(ep - rest);

    *id = rest;
    *id_len = (size_t)(slash - rest);
    if (span_equals(ep, ep_len, "status"))
        return KME_EP_STATUS;
    if (span_equals(ep, ep_len, "enc_keys"))
        return KME_EP_ENC_KEYS;
    if (span_equals(ep, ep_len, "dec_keys"))
        return KME_EP_DEC_KEYS;
    return 0;
}

/* 0 when the method suits the endpoint; *is_post tells which it was. */
static int check_method(const char *method, kme_endpoint ep, bool *is_post,
                        kme_err *err)
{
    bool get = method != NULL && strcmp(method, "GET") == 0;
    bool post = method != NULL && strcmp(method, "POST") == 0;

    if (get || (post && ep != KME_EP_STATUS)) {
        *is_post = post;
        return 0;
    }
    kme_err_set(err, 405, ep == KME_EP_STATUS
                ? "method not allowed: status takes GET"
                : "method not allowed: use GET or POST");
    return -1;
}

static int take_path_sae_id(kme_request *req, const char *raw, size_t len,
                            kme_err *err)
{
    int rc = pct_decode(raw, len, &req->sae_id);
    if (rc == -2)
        return fail_oom(err);
    if (rc != 0) {
        kme_err_set(err, 400, "path SAE ID has a malformed percent-escape");
        return -1;
    }
    text_verdict v = check_sae_id(req->sae_id, strlen(req->sae_id));
    if (v != TEXT_OK) {
        kme_err_set(err, 400, "path SAE ID %s", verdict_text(v));
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- query */

/* Plain decimal digits that fit int64: 0, -1 not decimal, -2 too large. */
static int parse_decimal(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int take_decimal_param(const char *name, const char *value,
                              bool *has, int64_t *slot, kme_err *err)
{
    if (*has) {
        kme_err_set(err, 400, "query parameter %s is given more than once", name);
        return -1;
    }
    int rc = parse_decimal(value, slot);
    if (rc == -1) {
        kme_err_set(err, 400, "%s must be a non-negative decimal integer", name);
        return -1;
    }
    if (rc == -2) {
        kme_err_set(err, 400, "%s is out of range", name);
        return -1;
    }
    *has = true;
    return 0;
}

static int unknown_param(const char *name, const char *allowed, kme_err *err)
{
    char quoted[ECHO_MAX + 4];
    kme_err_set(err, 400, "unknown query parameter \"%s\": %s",
                echo(quoted, name, strlen(name)), allowed);
    return -1;
}

static int take_enc_param(kme_request *req, const char *name,
                          const char *value, kme_err *err)
{
    if (strcmp(name, "number") == 0)
        return take_decimal_param("number", value, &req->has_number,
                                  &req->number, err);
    if (strcmp(name, "size") == 0)
        return take_decimal_param("size", value, &req->has_size,
                                  &req->size, err);
    return unknown_param(name, "enc_keys takes only number and size", err);
}

static int take_dec_param(kme_request *req, const char *name,
                          const char *value, kme_err *err)
{
    if (strcmp(name, "key_ID") != 0)
        return unknown_param(name, "dec_keys takes only key_ID", err);
    if (req->key_ids != NULL) {
        kme_err_set(err, 400, "dec_keys GET takes exactly one key_ID: use POST for several");
        return -1;
    }
    req->key_ids = malloc(sizeof *req->key_ids);
    if (req->key_ids == NULL)
        return fail_oom(err);
    if (uuid_parse(value, strlen(value), req->key_ids[0]) != 0) {
        kme_err_set(err, 400, "key_ID must be a UUID (8-4-4-4-12 hex digits)");
        return -1;
    }
    req->n_key_ids = 1;
    return 0;
}

static int decode_query_part(const char *s, size_t len, char **out,
                             kme_err *err)
{
    int rc = pct_decode(s, len, out);
    if (rc == -2)
        return fail_oom(err);
    if (rc != 0) {
        kme_err_set(err, 400, "query has a malformed percent-escape");
        return -1;
    }
    return 0;
}

/* One "name=value" piece of the query, decoded, dispatched by endpoint. */
static int take_query_piece(kme_request *req, const char *piece, size_t len,
                            kme_err *err)
{
    char quoted[ECHO_MAX + 4];
    char *name = NULL, *value = NULL;
    int rc = -1;

    if (len == 0) {
        kme_err_set(err, 400, "query has an empty parameter");
        return -1;
    }
    if (req->ep == KME_EP_STATUS) {
        kme_err_set(err, 400, "status takes no query parameters");
        return -1;
    }
    const char *eq = memchr(piece, '=', len);
    if (eq == NULL) {
        kme_err_set(err, 400, "query parameter \"%s\" has no value",
                    echo(quoted, piece, len));
        return -1;
    }
    if (decode_query_part(piece, (size_t)(eq - piece), &name, err) == 0
        && decode_query_part(eq + 1, len - (size_t)(eq - piece) - 1, &value,
                             err) == 0) {
        rc = req->ep == KME_EP_ENC_KEYS ? take_enc_param(req, name, value, err)
                                        : take_dec_param(req, name, value, err);
    }
    free(name);
    free(value);
    return rc;
}

static int parse_query(kme_request *req, const char *q, size_t len,
                       kme_err *err)
{
    /* "?" alone is no query at all */
    for (size_t start = 0; len > 0 && start <= len;) {
        const char *amp = memchr(q + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        if (take_query_piece(req, q + start, end - start, err) != 0)
            return -1;
        start = end + 1;
    }
    if (req->ep == KME_EP_DEC_KEYS && req->n_key_ids == 0) {
        kme_err_set(err, 400, "dec_keys GET needs one key_ID query parameter");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- body */

/* Deepest bracket nesting outside strings.  Checked before parsing because
 * jansson parses and frees recursively; ETSI bodies are shallow. */
static bool nesting_exceeds(const char *s, size_t len, int limit)
{
    int depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit)
                return true;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return false;
}

/* The POST body as a JSON object; empty or whitespace-only means {}. */
static int load_body(const char *body, size_t len, json_t **out, kme_err *err)
{
    json_error_t jerr;

    *out = NULL;
    if (len == 0 || body == NULL || is_blank(body, len)) {
        *out = json_object();
        return *out != NULL ? 0 : fail_oom(err);
    }
    if (memchr(body, '\0', len) != NULL) {
        kme_err_set(err, 400, "request body must not contain NUL bytes");
        return -1;
    }
    if (nesting_exceeds(body, len, MAX_JSON_DEPTH)) {
        kme_err_set(err, 400, "request body is nested too deeply");
        return -1;
    }
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                              &jerr);
    if (root == NULL) {
        enum json_error_code code = json_error_code(&jerr);
        if (code == json_error_out_of_memory)
            return fail_oom(err);
        if (code == json_error_duplicate_key)
            kme_err_set(err, 400, "request body has a duplicate member");
        else
            kme_err_set(err, 400, "request body is not valid JSON (line %d, column %d)",
                        jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        kme_err_set(err, 400, "request body must be a JSON object");
        return -1;
    }
    *out = root;
    return 0;
}

/* An optional member of a Key request, or NULL when it is absent.  Java,
 * Go and .NET serializers write null for an unset optional member, so null
 * counts as absent (the standard says nothing either way). */
static json_t *optional_member(json_t *root, const char *name)
{
    json_t *v = json_object_get(root, name);
    return json_is_null(v) ? NULL : v;
}

static int take_integer_member(json_t *root, const char *name, bool *has,
                               int64_t *slot, kme_err *err)
{
    json_t *v = optional_member(root, name);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v)) {
        kme_err_set(err, 400, "%s must be an integer", name);
        return -1;
    }
    *has = true;
    *slot = (int64_t)json_integer_value(v);
    return 0;
}

static bool already_listed(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static int take_additional_entry(kme_request *req, json_t *item, kme_err *err)
{
    if (!json_is_string(item)) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs must be an array of strings");
        return -1;
    }
    const char *s = json_string_value(item);
    size_t len = json_string_length(item);
    text_verdict v = check_sae_id(s, len);
    if (v != TEXT_OK) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs entries %s", verdict_text(v));
        return -1;
    }
    if (already_listed(req->additional, req->n_additional, s)) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs lists an SAE ID more than once");
        return -1;
    }
    req->additional[req->n_additional] = strdup(s);
    if (req->additional[req->n_additional] == NULL)
        return fail_oom(err);
    req->n_additional++;
    return 0;
}

static int take_additional(kme_request *req, json_t *root, kme_err *err)
{
    json_t *arr = optional_member(root, "additional_slave_SAE_IDs");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr)) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs must be an array of strings");
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n == 0) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs must not be empty: leave it out instead");
        return -1;
    }
    if (n > MAX_ADDITIONAL) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs has more than %d entries",
                    MAX_ADDITIONAL);
        return -1;
    }
    req->additional = calloc(n, sizeof *req->additional);
    if (req->additional == NULL)
        return fail_oom(err);
    req->has_additional = true;
    for (size_t i = 0; i < n; i++)
        if (take_additional_entry(req, json_array_get(arr, i), err) != 0)
            return -1;
    return 0;
}

/* extension_mandatory / extension_optional: arrays of non-empty objects,
 * kept as JSON for kme_request_validate_enc() and the handlers. */
static int take_extension_array(json_t *root, const char *name, json_t **slot,
                                kme_err *err)
{
    json_t *arr = optional_member(root, name);
    size_t i;
    json_t *item;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr)) {
        kme_err_set(err, 400, "%s must be an array of objects", name);
        return -1;
    }
    json_array_foreach(arr, i, item) {
        if (!json_is_object(item) || json_object_size(item) == 0) {
            kme_err_set(err, 400, "%s entries must be objects with at least one member",
                        name);
            return -1;
        }
    }
    *slot = json_incref(arr);
    return 0;
}

static int parse_enc_body(kme_request *req, json_t *root, kme_err *err)
{
    if (take_integer_member(root, "number", &req->has_number, &req->number, err) != 0
        || take_integer_member(root, "size", &req->has_size, &req->size, err) != 0
        || take_additional(req, root, err) != 0
        || take_extension_array(root, "extension_mandatory", &req->ext_mandatory, err) != 0
        || take_extension_array(root, "extension_optional", &req->ext_optional, err) != 0)
        return -1;
    return 0;
}

static int take_key_id_entry(json_t *item, uint8_t out[16], kme_err *err)
{
    if (!json_is_object(item)) {
        kme_err_set(err, 400, "key_IDs entries must be objects like {\"key_ID\": \"<UUID>\"}");
        return -1;
    }
    json_t *id = json_object_get(item, "key_ID");
    if (!json_is_string(id)) {
        kme_err_set(err, 400, "each key_IDs entry needs a key_ID string");
        return -1;
    }
    if (uuid_parse(json_string_value(id), json_string_length(id), out) != 0) {
        kme_err_set(err, 400, "key_ID must be a UUID (8-4-4-4-12 hex digits)");
        return -1;
    }
    json_t *ext = json_object_get(item, "key_ID_extension");
    if (ext != NULL && !json_is_object(ext)) {
        kme_err_set(err, 400, "key_ID_extension must be an object");
        return -1;
    }
    return 0;
}

static int compare_key_ids(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Sorting a copy finds repeats in O(n log n) and keeps the request order. */
static int reject_repeated_key_ids(const kme_request *req, kme_err *err)
{
    uint8_t (*sorted)[16] = malloc(req->n_key_ids * sizeof *sorted);
    if (sorted == NULL)
        return fail_oom(err);
    memcpy(sorted, req->key_ids, req->n_key_ids * sizeof *sorted);
    qsort(sorted, req->n_key_ids, sizeof *sorted, compare_key_ids);
    bool repeated = false;
    for (size_t i = 1; i < req->n_key_ids && !repeated; i++)
        repeated = memcmp(sorted[i - 1], sorted[i], 16) == 0;
    free(sorted);
    if (repeated) {
        kme_err_set(err, 400, "key_IDs names the same key ID more than once");
        return -1;
    }
    return 0;
}

static int parse_dec_body(kme_request *req, json_t *root, kme_err *err)
{
    json_t *arr = json_object_get(root, "key_IDs");
    json_t *ext = json_object_get(root, "key_IDs_extension");

    if (arr == NULL) {
        kme_err_set(err, 400, "key_IDs is required");
        return -1;
    }
    if (!json_is_array(arr)) {
        kme_err_set(err, 400, "key_IDs must be an array of objects like {\"key_ID\": \"<UUID>\"}");
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n == 0) {
        kme_err_set(err, 400, "key_IDs must not be empty");
        return -1;
    }
    if (n > MAX_KEY_IDS) {
        kme_err_set(err, 400, "key_IDs has more than %d entries", MAX_KEY_IDS);
        return -1;
    }
    if (ext != NULL && !json_is_object(ext)) {
        kme_err_set(err, 400, "key_IDs_extension must be an object");
        return -1;
    }
    req->key_ids = malloc(n * sizeof *req->key_ids);
    if (req->key_ids == NULL)
        return fail_oom(err);
    for (size_t i = 0; i < n; i++) {
        if (take_key_id_entry(json_array_get(arr, i), req->key_ids[i], err) != 0)
            return -1;
        req->n_key_ids = i + 1;
    }
    return reject_repeated_key_ids(req, err);
}

static int parse_post(kme_request *req, size_t query_len,
                      const char *body, size_t body_len, kme_err *err)
{
    json_t *root = NULL;
    int rc;

    if (query_len > 0) {
        kme_err_set(err, 400, "POST takes its parameters in the JSON body, not in the query");
        return -1;
    }
    if (load_body(body, body_len, &root, err) != 0)
        return -1;
    rc = req->ep == KME_EP_ENC_KEYS ? parse_enc_body(req, root, err)
                                    : parse_dec_body(req, root, err);
    json_decref(root);
    return rc;
}

static int parse_get(kme_request *req, const char *query, size_t query_len,
                     const char *body, size_t body_len, kme_err *err)
{
    /* a body beside the query would be a second, conflicting request */
    if (body != NULL && !is_blank(body, body_len)) {
        kme_err_set(err, 400, "GET takes no request body: use POST");
        return -1;
    }
    return parse_query(req, query, query_len, err);
}

int kme_request_parse(const char *method, const char *raw_uri,
                      const char *body, size_t body_len,
                      kme_request *req, kme_err *err)
{
    const char *id = NULL;
    size_t id_len = 0;

    memset(req, 0, sizeof *req);
    if (raw_uri == NULL) {
        kme_err_set(err, 404, MSG_NO_RESOURCE);
        return -1;
    }
    const char *qmark = strchr(raw_uri, '?');
    size_t path_len = qmark != NULL ? (size_t)(qmark - raw_uri) : strlen(raw_uri);
    const char *query = qmark != NULL ? qmark + 1 : "";
    size_t query_len = strlen(query);

    req->ep = match_path(raw_uri, path_len, &id, &id_len);
    int rc = -1;
    if (req->ep == 0)
        kme_err_set(err, 404, MSG_NO_RESOURCE);
    else if (check_method(method, req->ep, &req->is_post, err) != 0)
        ;
    else if (body_len > KME_MAX_BODY)
        kme_err_set(err, 413, "request body too large: at most %d bytes", KME_MAX_BODY);
    else if (take_path_sae_id(req, id, id_len, err) != 0)
        ;
    else if (req->is_post)
        rc = parse_post(req, query_len, body, body_len, err);
    else
        rc = parse_get(req, query, query_len, body, body_len, err);

    if (rc != 0)
        kme_request_clear(req);
    return rc;
}

const char *kme_request_allowed_methods(const char *raw_uri)
{
    if (raw_uri == NULL)
        return NULL;
    const char *qmark = strchr(raw_uri, '?');
    size_t path_len = qmark != NULL ? (size_t)(qmark - raw_uri) : strlen(raw_uri);
    const char *id;
    size_t id_len;
    switch (match_path(raw_uri, path_len, &id, &id_len)) {
    case KME_EP_STATUS:
        return "GET";
    case KME_EP_ENC_KEYS:
    case KME_EP_DEC_KEYS:
        return "GET, POST";
    }
    return NULL;
}

/* ----------------------------------------------------------- validation */

static int check_number(kme_request *req, const kme_limits *lim, kme_err *err)
{
    int64_t number = req->has_number ? req->number : 1;
    if (number < 1 || number > lim->max_key_per_request) {
        kme_err_set(err, 400, "number must be between 1 and %lld",
                    (long long)lim->max_key_per_request);
        return -1;
    }
    req->number = number;
    return 0;
}

static int check_size(kme_request *req, const kme_limits *lim, kme_err *err)
{
    int64_t size = req->has_size ? req->size : lim->key_size;
    if (size < 1) {
        kme_err_set(err, 400, "size must be a positive number of bits");
        return -1;
    }
    if (size % 8 != 0) {
        kme_err_set(err, 400, MSG_SIZE_NOT_MULTIPLE_OF_8);
        return -1;
    }
    if (size < lim->min_key_size || size > lim->max_key_size) {
        kme_err_set(err, 400, "size must be between %lld and %lld bits",
                    (long long)lim->min_key_size, (long long)lim->max_key_size);
        return -1;
    }
    req->size = size;
    return 0;
}

static int check_additional(const kme_request *req, const kme_limits *lim,
                            const char *caller, kme_err *err)
{
    if (!req->has_additional)
        return 0;
    if (lim->max_sae_id_count <= 0) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs is not supported for this pair "
                    "(max_SAE_ID_count is 0)");
        return -1;
    }
    if ((int64_t)req->n_additional > lim->max_sae_id_count) {
        kme_err_set(err, 400, "additional_slave_SAE_IDs may list at most %lld SAE IDs",
                    (long long)lim->max_sae_id_count);
        return -1;
    }
    for (size_t i = 0; i < req->n_additional; i++) {
        if (req->sae_id != NULL && strcmp(req->additional[i], req->sae_id) == 0) {
            kme_err_set(err, 400, "additional_slave_SAE_IDs must not repeat the slave SAE ID of the path");
            return -1;
        }
        if (caller != NULL && strcmp(req->additional[i], caller) == 0) {
            kme_err_set(err, 400, "additional_slave_SAE_IDs must not list the calling master SAE");
            return -1;
        }
    }
    return 0;
}

/* Longest prefix of s of at most max bytes that ends on a UTF-8 boundary
 * (member names come from jansson, so they are valid UTF-8). */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return len;
    while (max > 0 && is_cont((unsigned char)s[max]))
        max--;
    return max;
}

static int add_unsupported_detail(json_t *details, const char *name)
{
    char text[ECHO_MAX + 32];
    snprintf(text, sizeof text, "%.*s is not supported",
             (int)utf8_prefix(name, ECHO_MAX), name);
    return json_array_append_new(details,
                                 json_pack("{s:s}", "extension_mandatory_unsupported", text));
}

/* 400 MSG_EXT_MANDATORY_UNSUPPORTED with one detail per unknown name, if
 * any name is not EXT_KEY_SOURCE. */
static int check_ext_names(const json_t *exts, kme_err *err)
{
    json_t *details = NULL;
    size_t i, total = 0;
    json_t *item, *value;
    const char *name;

    json_array_foreach(exts, i, item) {
        json_object_foreach(item, name, value) {
            if (strcmp(name, EXT_KEY_SOURCE) == 0)
                continue;
            if (details == NULL && (details = json_array()) == NULL)
                return fail_oom(err);
            /* report the first few; a body may hold thousands */
            if (total++ < MAX_UNSUPPORTED_DETAILS)
                (void)add_unsupported_detail(details, name);
        }
    }
    if (details == NULL)
        return 0;
    kme_err_set(err, 400, MSG_EXT_MANDATORY_UNSUPPORTED);
    err->details = details;
    return -1;
}

static int check_ext_values(const json_t *exts, const kme_limits *lim,
                            kme_err *err)
{
    size_t i;
    json_t *item, *value;
    const char *name;

    json_array_foreach(exts, i, item) {
        json_object_foreach(item, name, value) {
            const char *want = json_string_value(value); /* NULL if not a string */
            bool met = want != NULL
                && (strcmp(want, "any") == 0
                    || (strcmp(want, "qkd") == 0 && lim->keys_from_qkd));
            if (!met) {
                kme_err_set(err, 400, MSG_EXT_MANDATORY_UNMET);
                return -1;
            }
        }
    }
    return 0;
}

static int check_ext_mandatory(const kme_request *req, const kme_limits *lim,
                               kme_err *err)
{
    if (req->ext_mandatory == NULL)
        return 0;
    if (check_ext_names(req->ext_mandatory, err) != 0)
        return -1;
    return check_ext_values(req->ext_mandatory, lim, err);
}

int kme_request_validate_enc(kme_request *req, const kme_limits *lim,
                             const char *caller, kme_err *err)
{
    if (req->ep != KME_EP_ENC_KEYS) {
        kme_err_set(err, 400, "not an enc_keys request");
        return -1;
    }
    if (check_number(req, lim, err) != 0
        || check_size(req, lim, err) != 0
        || check_additional(req, lim, caller, err) != 0
        || check_ext_mandatory(req, lim, err) != 0)
        return -1;
    req->has_number = true;
    req->has_size = true;
    return 0;
}

void kme_request_clear(kme_request *req)
{
    if (req == NULL)
        return;
    free(req->sae_id);
    for (size_t i = 0; i < req->n_additional; i++)
        free(req->additional[i]);
    free(req->additional);
    json_decref(req->ext_mandatory);
    json_decref(req->ext_optional);
    free(req->key_ids);
    memset(req, 0, sizeof *req);
}
