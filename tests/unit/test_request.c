/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_request.c - the request behaviour table (spec digest §5.3, §5.4,
 * §5.6, §12): every rejection with its status code and exact message, and
 * the spec's example requests accepted with the right values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/uuid.h"
#include "kme/request.h"

#define ENC "/api/v1/keys/SAE_B/enc_keys"
#define DEC "/api/v1/keys/SAE_A/dec_keys"
#define STATUS "/api/v1/keys/SAE_B/status"
#define ID1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define ID2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define NO_RESOURCE "no such resource: use /api/v1/keys/{SAE_ID}/status|enc_keys|dec_keys"
#define UUID_MSG "key_ID must be a UUID (8-4-4-4-12 hex digits)"

static const kme_limits limits = {
    .key_size = 256, .min_key_size = 64, .max_key_size = 65536,
    .max_key_per_request = 1024, .max_sae_id_count = 4, .keys_from_qkd = true,
};

typedef struct {
    const char *method, *uri, *body;
    int http;
    const char *message;
} rejection;

static size_t body_len(const char *body)
{
    return body != NULL ? strlen(body) : 0;
}

static void assert_cleared(const kme_request *req)
{
    assert_int_equal(req->ep, 0);
    assert_null(req->sae_id);
    assert_null(req->additional);
    assert_int_equal(req->n_additional, 0);
    assert_null(req->ext_mandatory);
    assert_null(req->ext_optional);
    assert_null(req->key_ids);
    assert_int_equal(req->n_key_ids, 0);
}

/* Parse one request that must fail with exactly this code and message. */
static void check_rejection_len(const rejection *r, size_t len)
{
    kme_request req;
    kme_err err;

    memset(&req, 0xa5, sizeof req);  /* parse must not trust what it gets */
    memset(&err, 0xa5, sizeof err);
    int rc = kme_request_parse(r->method, r->uri, r->body, len, &req, &err);
    if (rc != -1 || err.http != r->http || strcmp(err.message, r->message) != 0) {
        print_error("%s %s body=%s\n  want %d \"%s\"\n  got rc=%d %d \"%s\"\n",
                    r->method ? r->method : "(null)", r->uri ? r->uri : "(null)",
                    r->body ? r->body : "(none)", r->http, r->message, rc,
                    rc == -1 ? err.http : 0, rc == -1 ? err.message : "");
        if (rc == 0)
            kme_request_clear(&req);
        fail();
    }
    assert_null(err.details);
    assert_cleared(&req);
    kme_err_clear(&err);
}

static void check_rejections(const rejection *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_rejection_len(&table[i], body_len(table[i].body));
}

#define CHECK_ALL(table) check_rejections(table, sizeof table / sizeof table[0])

static void parse_ok(const char *method, const char *uri, const char *body,
                     kme_request *req)
{
    kme_err err;
    memset(req, 0xa5, sizeof *req);
    int rc = kme_request_parse(method, uri, body, body_len(body), req, &err);
    if (rc != 0) {
        print_error("%s %s body=%s: rejected %d \"%s\"\n", method, uri,
                    body ? body : "(none)", err.http, err.message);
        kme_err_clear(&err);
        fail();
    }
}

static void assert_key_id(const uint8_t id[16], const char *text)
{
    char got[UUID_STR_LEN + 1];
    uuid_format(id, got);
    assert_string_equal(got, text);
}

/* ------------------------------------------------------- path, method */

static void test_unknown_paths_404(void **state)
{
    (void)state;
    static const rejection table[] = {
        { "GET", "", NULL, 404, NO_RESOURCE },
        { "GET", "/", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/stat", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/status/", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/Status", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/a/b/status", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v2/keys/SAE_B/status", NULL, 404, NO_RESOURCE },
        { "GET", "/API/v1/keys/SAE_B/status", NULL, 404, NO_RESOURCE },
        { "GET", "api/v1/keys/SAE_B/status", NULL, 404, NO_RESOURCE },
        { "GET", "//api/v1/keys/SAE_B/status", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/status%2F", NULL, 404, NO_RESOURCE },
        { "GET", "/api/v1/keys/SAE_B/enc%5Fkeys", NULL, 404, NO_RESOURCE },
        { "GET", "https://kme/api/v1/keys/SAE_B/status", NULL, 404, NO_RESOURCE },
        /* 404 wins over 405 */
        { "DELETE", "/nothing", NULL, 404, NO_RESOURCE },
        { "GET", NULL, NULL, 404, NO_RESOURCE },
    };
    CHECK_ALL(table);
}

static void test_wrong_method_405(void **state)
{
    (void)state;
    static const rejection table[] = {
        { "POST", STATUS, NULL, 405, "method not allowed: status takes GET" },
        { "PUT", STATUS, NULL, 405, "method not allowed: status takes GET" },
        { "HEAD", STATUS, NULL, 405, "method not allowed: status takes GET" },
        { "PUT", ENC, "{}", 405, "method not allowed: use GET or POST" },
        { "DELETE", DEC, NULL, 405, "method not allowed: use GET or POST" },
        { "get", ENC, NULL, 405, "method not allowed: use GET or POST" },
        { "", ENC, NULL, 405, "method not allowed: use GET or POST" },
        { NULL, ENC, NULL, 405, "method not allowed: use GET or POST" },
        /* 405 wins over a bad SAE ID */
        { "PATCH", "/api/v1/keys/%zz/dec_keys", NULL, 405, "method not allowed: use GET or POST" },
    };
    CHECK_ALL(table);
}

static void test_body_too_large_413(void **state)
{
    (void)state;
    char *big = malloc(KME_MAX_BODY + 2);
    assert_non_null(big);
    memset(big, ' ', KME_MAX_BODY + 1);
    big[KME_MAX_BODY + 1] = '\0';

    rejection r = { "POST", ENC, big, 413, "request body too large: at most 65536 bytes" };
    check_rejection_len(&r, KME_MAX_BODY + 1);
    r.uri = DEC;
    check_rejection_len(&r, KME_MAX_BODY + 1);
    r.method = "GET";
    check_rejection_len(&r, KME_MAX_BODY + 1);

    /* exactly the limit is fine, and all-blank means {} */
    kme_request req;
    kme_err err;
    assert_int_equal(kme_request_parse("POST", ENC, big, KME_MAX_BODY, &req, &err), 0);
    assert_false(req.has_number);
    kme_request_clear(&req);
    free(big);
}

/* ------------------------------------------------------------ SAE IDs */

static void test_path_sae_id_decoded(void **state)
{
    (void)state;
    kme_request req;

    parse_ok("GET", "/api/v1/keys/SAE%20B/status", NULL, &req);
    assert_int_equal(req.ep, KME_EP_STATUS);
    assert_false(req.is_post);
    assert_string_equal(req.sae_id, "SAE B");
    kme_request_clear(&req);

    /* split before decoding: %2F stays inside the ID */
    parse_ok("GET", "/api/v1/keys/a%2Fb/enc_keys", NULL, &req);
    assert_int_equal(req.ep, KME_EP_ENC_KEYS);
    assert_string_equal(req.sae_id, "a/b");
    kme_request_clear(&req);

    parse_ok("POST", "/api/v1/keys/sae%3F1+x/dec_keys", "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"}]}", &req);
    assert_int_equal(req.ep, KME_EP_DEC_KEYS);
    assert_true(req.is_post);
    assert_string_equal(req.sae_id, "sae?1+x");
    kme_request_clear(&req);

    parse_ok("GET", "/api/v1/keys/%E2%82%AC%20%C3%A9/status", NULL, &req);
    assert_string_equal(req.sae_id, "\xe2\x82\xac \xc3\xa9");
    kme_request_clear(&req);

    parse_ok("GET", "/api/v1/keys/IIIIJJJJKKKKLLLL/status?", NULL, &req);
    assert_string_equal(req.sae_id, "IIIIJJJJKKKKLLLL");
    kme_request_clear(&req);
}

static void test_path_sae_id_length_limit(void **state)
{
    (void)state;
    char uri[600];
    kme_request req;

    snprintf(uri, sizeof uri, "/api/v1/keys/%0*d/status", KME_MAX_SAE_ID_LEN, 0);
    parse_ok("GET", uri, NULL, &req);
    assert_int_equal(strlen(req.sae_id), KME_MAX_SAE_ID_LEN);
    kme_request_clear(&req);

    snprintf(uri, sizeof uri, "/api/v1/keys/%0*d/status", KME_MAX_SAE_ID_LEN + 1, 0);
    rejection r = { "GET", uri, NULL, 400, "path SAE ID must be at most 256 bytes long" };
    check_rejection_len(&r, 0);

    /* the limit counts decoded bytes: 86 escapes = 86 bytes */
    char *p = uri + sprintf(uri, "/api/v1/keys/");
    for (int i = 0; i < 86; i++)
        p += sprintf(p, "%%41");
    sprintf(p, "/status");
    parse_ok("GET", uri, NULL, &req);
    assert_int_equal(strlen(req.sae_id), 86);
    kme_request_clear(&req);
}

static void test_path_sae_id_rejected(void **state)
{
    (void)state;
#define BLANK "path SAE ID must not be empty or blank"
#define CTRL "path SAE ID must not contain control characters"
#define UTF8 "path SAE ID must be valid UTF-8"
#define ESC "path SAE ID has a malformed percent-escape"
    static const rejection table[] = {
        { "GET", "/api/v1/keys//status", NULL, 400, BLANK },
        { "GET", "/api/v1/keys/%20/status", NULL, 400, BLANK },
        { "POST", "/api/v1/keys/%20%20%09/enc_keys", NULL, 400, BLANK },
        { "GET", "/api/v1/keys//dec_keys?key_ID=" ID1, NULL, 400, BLANK },
        { "GET", "/api/v1/keys/a%01b/status", NULL, 400, CTRL },
        { "GET", "/api/v1/keys/a%0Ab/status", NULL, 400, CTRL },
        { "GET", "/api/v1/keys/a%7F/status", NULL, 400, CTRL },
        { "GET", "/api/v1/keys/a%C2%85/status", NULL, 400, CTRL },  /* U+0085 NEL */
        { "GET", "/api/v1/keys/a%FF/status", NULL, 400, UTF8 },
        { "GET", "/api/v1/keys/%C3/status", NULL, 400, UTF8 },       /* truncated */
        { "GET", "/api/v1/keys/%C0%AF/status", NULL, 400, UTF8 },    /* overlong '/' */
        { "GET", "/api/v1/keys/%E0%80%AF/status", NULL, 400, UTF8 }, /* overlong */
        { "GET", "/api/v1/keys/%ED%A0%80/status", NULL, 400, UTF8 }, /* surrogate */
        { "GET", "/api/v1/keys/%F4%90%80%80/status", NULL, 400, UTF8 }, /* > U+10FFFF */
        { "GET", "/api/v1/keys/%80/status", NULL, 400, UTF8 },       /* lone continuation */
        { "GET", "/api/v1/keys/%E2%82A/status", NULL, 400, UTF8 },   /* cut after 2 of 3 */
        { "GET", "/api/v1/keys/%F0%9F%98/status", NULL, 400, UTF8 }, /* cut after 3 of 4 */
        { "GET", "/api/v1/keys/%/status", NULL, 400, ESC },
        { "GET", "/api/v1/keys/a%2/status", NULL, 400, ESC },
        { "GET", "/api/v1/keys/%zz/status", NULL, 400, ESC },
        { "GET", "/api/v1/keys/a%00b/status", NULL, 400, ESC },
    };
    CHECK_ALL(table);
}

/* -------------------------------------------------------------- query */

static void test_enc_get_query(void **state)
{
    (void)state;
    kme_request req;

    parse_ok("GET", ENC, NULL, &req);
    assert_false(req.has_number);
    assert_false(req.has_size);
    assert_false(req.has_additional);
    kme_request_clear(&req);

    parse_ok("GET", "/api/v1/keys/SAE%20B/enc_keys?number=3&size=1024", NULL, &req);
    assert_string_equal(req.sae_id, "SAE B");
    assert_true(req.has_number);
    assert_int_equal(req.number, 3);
    assert_true(req.has_size);
    assert_int_equal(req.size, 1024);
    kme_request_clear(&req);

    parse_ok("GET", ENC "?size=0512", NULL, &req);
    assert_false(req.has_number);
    assert_int_equal(req.size, 512);
    kme_request_clear(&req);

    /* syntactically fine; the range is validate's business */
    parse_ok("GET", ENC "?number=0", NULL, &req);
    assert_true(req.has_number);
    assert_int_equal(req.number, 0);
    kme_request_clear(&req);

    parse_ok("GET", ENC "?nu%6Dber=%33", NULL, &req);
    assert_int_equal(req.number, 3);
    kme_request_clear(&req);

    parse_ok("GET", ENC "?number=9223372036854775807", NULL, &req);
    assert_int_equal(req.number, INT64_MAX);
    kme_request_clear(&req);

    parse_ok("GET", ENC "?", NULL, &req);
    assert_false(req.has_number);
    kme_request_clear(&req);

    /* a whitespace body on GET is no body */
    parse_ok("GET", ENC "?number=2", " \r\n", &req);
    assert_int_equal(req.number, 2);
    kme_request_clear(&req);
}

static void test_enc_get_query_rejected(void **state)
{
    (void)state;
#define NUM_DEC "number must be a non-negative decimal integer"
#define SIZE_DEC "size must be a non-negative decimal integer"
    static const rejection table[] = {
        { "GET", ENC "?number=-8", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=abc01", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=1.5", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=+3", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=%2B3", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=%203", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=3%20", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=0x10", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=1e3", NULL, 400, NUM_DEC },
        { "GET", ENC "?number=", NULL, 400, NUM_DEC },
        { "GET", ENC "?size=12a", NULL, 400, SIZE_DEC },
        { "GET", ENC "?size=-1", NULL, 400, SIZE_DEC },
        { "GET", ENC "?number=9223372036854775808", NULL, 400, "number is out of range" },
        { "GET", ENC "?size=99999999999999999999999", NULL, 400, "size is out of range" },
        { "GET", ENC "?number=1&number=1", NULL, 400, "query parameter number is given more than once" },
        { "GET", ENC "?size=8&number=1&size=8", NULL, 400, "query parameter size is given more than once" },
        { "GET", ENC "?number", NULL, 400, "query parameter \"number\" has no value" },
        { "GET", ENC "?number=1&", NULL, 400, "query has an empty parameter" },
        { "GET", ENC "?&number=1", NULL, 400, "query has an empty parameter" },
        { "GET", ENC "?number=1&&size=8", NULL, 400, "query has an empty parameter" },
        { "GET", ENC "?foo=1", NULL, 400, "unknown query parameter \"foo\": enc_keys takes only number and size" },
        { "GET", ENC "?Number=1", NULL, 400, "unknown query parameter \"Number\": enc_keys takes only number and size" },
        { "GET", ENC "?additional_slave_SAE_IDs=X", NULL, 400, "unknown query parameter \"additional_slave_SAE_IDs\": enc_keys takes only number and size" },
        { "GET", ENC "?a%0Ab=1", NULL, 400, "unknown query parameter \"a?b\": enc_keys takes only number and size" },
        { "GET", ENC "?%zz=1", NULL, 400, "query has a malformed percent-escape" },
        { "GET", ENC "?number=%4", NULL, 400, "query has a malformed percent-escape" },
        { "GET", ENC "?number=%00", NULL, 400, "query has a malformed percent-escape" },
        { "GET", ENC "?number=1", "{\"number\":2}", 400, "GET takes no request body: use POST" },
        { "GET", ENC, "{}", 400, "GET takes no request body: use POST" },
        { "GET", STATUS "?number=1", NULL, 400, "status takes no query parameters" },
        { "GET", STATUS "?x", NULL, 400, "status takes no query parameters" },
    };
    CHECK_ALL(table);
}

static void test_query_echo_is_bounded(void **state)
{
    (void)state;
    char uri[400], want[200];
    char name[101];
    memset(name, 'n', 100);
    name[100] = '\0';
    snprintf(uri, sizeof uri, ENC "?%s=1", name);
    snprintf(want, sizeof want,
             "unknown query parameter \"%.64s...\": enc_keys takes only number and size", name);
    rejection r = { "GET", uri, NULL, 400, want };
    check_rejection_len(&r, 0);
}

static void test_dec_get_query(void **state)
{
    (void)state;
    kme_request req;

    parse_ok("GET", DEC "?key_ID=" ID1, NULL, &req);
    assert_int_equal(req.ep, KME_EP_DEC_KEYS);
    assert_string_equal(req.sae_id, "SAE_A");
    assert_int_equal(req.n_key_ids, 1);
    assert_key_id(req.key_ids[0], ID1);
    kme_request_clear(&req);

    parse_ok("GET", DEC "?key_ID=BC490419-7D60-487F-ADC1-4DDCC177C139", NULL, &req);
    assert_key_id(req.key_ids[0], ID1);
    kme_request_clear(&req);

    parse_ok("GET", DEC "?key%5FID=bc490419%2D7d60-487f-adc1-4ddcc177c139", NULL, &req);
    assert_key_id(req.key_ids[0], ID1);
    kme_request_clear(&req);
}

static void test_dec_get_query_rejected(void **state)
{
    (void)state;
#define NEED_ONE "dec_keys GET needs one key_ID query parameter"
    static const rejection table[] = {
        { "GET", DEC, NULL, 400, NEED_ONE },
        { "GET", DEC "?", NULL, 400, NEED_ONE },
        { "GET", DEC "?key_ID=non-uuid", NULL, 400, UUID_MSG },
        { "GET", DEC "?key_ID=", NULL, 400, UUID_MSG },
        { "GET", DEC "?key_ID=" ID1 "x", NULL, 400, UUID_MSG },
        { "GET", DEC "?key_ID=%20" ID1, NULL, 400, UUID_MSG },
        { "GET", DEC "?key_ID=" ID1 "&key_ID=" ID2, NULL, 400,
          "dec_keys GET takes exactly one key_ID: use POST for several" },
        { "GET", DEC "?key_ID=" ID1 "&key_ID=" ID1, NULL, 400,
          "dec_keys GET takes exactly one key_ID: use POST for several" },
        { "GET", DEC "?key_id=" ID1, NULL, 400, "unknown query parameter \"key_id\": dec_keys takes only key_ID" },
        { "GET", DEC "?key_ID=" ID1 "&number=1", NULL, 400, "unknown query parameter \"number\": dec_keys takes only key_ID" },
        { "GET", DEC "?key_IDs=" ID1, NULL, 400, "unknown query parameter \"key_IDs\": dec_keys takes only key_ID" },
        { "GET", DEC "?key_ID", NULL, 400, "query parameter \"key_ID\" has no value" },
        { "GET", DEC "?key_ID=" ID1, "{\"key_IDs\":[]}", 400, "GET takes no request body: use POST" },
    };
    CHECK_ALL(table);
}

/* -------------------------------------------------------- enc_keys POST */

static void test_enc_post_spec_examples(void **state)
{
    (void)state;
    kme_request req;

    parse_ok("POST", ENC, "{\"number\":3,\"size\":1024}", &req);
    assert_true(req.is_post);
    assert_true(req.has_number);
    assert_int_equal(req.number, 3);
    assert_true(req.has_size);
    assert_int_equal(req.size, 1024);
    assert_false(req.has_additional);
    assert_null(req.ext_mandatory);
    kme_request_clear(&req);

    parse_ok("POST", ENC, "{\"number\":1,\"size\":4096,"
             "\"additional_slave_SAE_IDs\":[\"ABCDEFG\",\"HIJKLMN\"]}", &req);
    assert_int_equal(req.number, 1);
    assert_int_equal(req.size, 4096);
    assert_true(req.has_additional);
    assert_int_equal(req.n_additional, 2);
    assert_string_equal(req.additional[0], "ABCDEFG");
    assert_string_equal(req.additional[1], "HIJKLMN");
    kme_request_clear(&req);

    parse_ok("POST", ENC, "{\"number\":20,\"size\":512,"
             "\"extension_mandatory\":[{\"abc_route_type\":\"direct\"},"
             "{\"abc_transfer_method\":\"qkd\"}],"
             "\"extension_optional\":[{\"abc_max_age\":30000}]}", &req);
    assert_int_equal(req.number, 20);
    assert_int_equal(req.size, 512);
    assert_true(json_is_array(req.ext_mandatory));
    assert_int_equal(json_array_size(req.ext_mandatory), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(req.ext_mandatory, 0), "abc_route_type")), "direct");
    assert_true(json_is_array(req.ext_optional));
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(req.ext_optional, 0), "abc_max_age")), 30000);
    kme_request_clear(&req);
}

static void test_enc_post_empty_and_unknown(void **state)
{
    (void)state;
    static const char *const empty_bodies[] = {
        NULL, "", " ", "\r\n\t ", "{}", " { } ",
        /* unknown members are ignored (S5 sends additional_target_sae_ids) */
        "{\"additional_target_sae_ids\":[]}",
        "{\"master_SAE_ID\":\"x\",\"foo\":{\"bar\":[1,2,3]}}",
        "{\"extension_mandatory\":[],\"extension_optional\":[]}",
    };
    for (size_t i = 0; i < sizeof empty_bodies / sizeof empty_bodies[0]; i++) {
        kme_request req;
        parse_ok("POST", ENC, empty_bodies[i], &req);
        assert_int_equal(req.ep, KME_EP_ENC_KEYS);
        assert_false(req.has_number);
        assert_false(req.has_size);
        assert_false(req.has_additional);
        kme_request_clear(&req);
    }
    kme_request req;
    parse_ok("POST", ENC "?", "{\"number\":2}", &req);
    assert_int_equal(req.number, 2);
    kme_request_clear(&req);
}

static void test_enc_post_rejected(void **state)
{
    (void)state;
#define ADD_STRINGS "additional_slave_SAE_IDs must be an array of strings"
#define EXT_M_ENTRIES "extension_mandatory entries must be objects with at least one member"
    static const rejection table[] = {
        { "POST", ENC "?number=1", "{}", 400, "POST takes its parameters in the JSON body, not in the query" },
        { "POST", ENC "?number=1", NULL, 400, "POST takes its parameters in the JSON body, not in the query" },
        { "POST", ENC, "[]", 400, "request body must be a JSON object" },
        { "POST", ENC, "3", 400, "request body must be a JSON object" },
        { "POST", ENC, "\"x\"", 400, "request body must be a JSON object" },
        { "POST", ENC, "null", 400, "request body must be a JSON object" },
        { "POST", ENC, "{\"number\":1,\"number\":2}", 400, "request body has a duplicate member" },
        { "POST", ENC, "{\"a\":{\"x\":1,\"x\":1}}", 400, "request body has a duplicate member" },
        { "POST", ENC, "{\"number\":3.0}", 400, "number must be an integer" },
        { "POST", ENC, "{\"number\":\"3\"}", 400, "number must be an integer" },
        { "POST", ENC, "{\"number\":true}", 400, "number must be an integer" },
        { "POST", ENC, "{\"number\":[3]}", 400, "number must be an integer" },
        { "POST", ENC, "{\"size\":1.5}", 400, "size must be an integer" },
        { "POST", ENC, "{\"size\":\"abc01\"}", 400, "size must be an integer" },
        { "POST", ENC, "{\"size\":256e0}", 400, "size must be an integer" },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":\"X\"}", 400, ADD_STRINGS },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":{}}", 400, ADD_STRINGS },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[1]}", 400, ADD_STRINGS },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[\"A\",null]}", 400, ADD_STRINGS },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[]}", 400,
          "additional_slave_SAE_IDs must not be empty: leave it out instead" },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[\"\"]}", 400,
          "additional_slave_SAE_IDs entries must not be empty or blank" },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[\"A\",\"  \"]}", 400,
          "additional_slave_SAE_IDs entries must not be empty or blank" },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[\"A\\u0001\"]}", 400,
          "additional_slave_SAE_IDs entries must not contain control characters" },
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[\"A\",\"B\",\"A\"]}", 400,
          "additional_slave_SAE_IDs lists an SAE ID more than once" },
        { "POST", ENC, "{\"extension_mandatory\":{}}", 400, "extension_mandatory must be an array of objects" },
        { "POST", ENC, "{\"extension_mandatory\":\"x\"}", 400, "extension_mandatory must be an array of objects" },
        { "POST", ENC, "{\"extension_mandatory\":[1]}", 400, EXT_M_ENTRIES },
        { "POST", ENC, "{\"extension_mandatory\":[{}]}", 400, EXT_M_ENTRIES },
        { "POST", ENC, "{\"extension_mandatory\":[{\"a\":1},[]]}", 400, EXT_M_ENTRIES },
        { "POST", ENC, "{\"extension_optional\":[\"a\"]}", 400,
          "extension_optional entries must be objects with at least one member" },
    };
    CHECK_ALL(table);
}

/* Java, Go and .NET serializers send null for an unset optional member:
 * it counts as absent, alone or beside members that are given. */
static void test_enc_post_null_is_absent(void **state)
{
    (void)state;
    kme_request req;
    parse_ok("POST", ENC, "{\"number\":null,\"size\":null,\"additional_slave_SAE_IDs\":null,"
             "\"extension_mandatory\":null,\"extension_optional\":null}", &req);
    assert_false(req.has_number);
    assert_false(req.has_size);
    assert_false(req.has_additional);
    assert_null(req.additional);
    assert_null(req.ext_mandatory);
    assert_null(req.ext_optional);
    kme_request_clear(&req);

    parse_ok("POST", ENC, "{\"number\":3,\"size\":null,\"additional_slave_SAE_IDs\":[\"B\"],"
             "\"extension_mandatory\":null}", &req);
    assert_true(req.has_number);
    assert_int_equal(req.number, 3);
    assert_false(req.has_size);
    assert_int_equal(req.n_additional, 1);
    assert_string_equal(req.additional[0], "B");
    kme_request_clear(&req);

    /* null stands for a whole member, not for an entry or a wrong type */
    static const rejection table[] = {
        { "POST", ENC, "{\"additional_slave_SAE_IDs\":[null]}", 400, ADD_STRINGS },
        { "POST", ENC, "{\"extension_optional\":[null]}", 400,
          "extension_optional entries must be objects with at least one member" },
        { "POST", ENC, "{\"number\":null,\"number\":null}", 400, "request body has a duplicate member" },
        { "POST", DEC, "{\"key_IDs\":null}", 400,
          "key_IDs must be an array of objects like {\"key_ID\": \"<UUID>\"}" },
    };
    CHECK_ALL(table);
}

/* A 405 names the methods the resource takes (RFC 9110 Allow). */
static void test_allowed_methods(void **state)
{
    (void)state;
    assert_string_equal(kme_request_allowed_methods(STATUS), "GET");
    assert_string_equal(kme_request_allowed_methods(ENC), "GET, POST");
    assert_string_equal(kme_request_allowed_methods(DEC "?key_ID=x"), "GET, POST");
    assert_null(kme_request_allowed_methods("/nothing"));
    assert_null(kme_request_allowed_methods("/api/v1/keys/A/other"));
    assert_null(kme_request_allowed_methods(NULL));
}

static void test_enc_post_bad_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{", "}", "{\"number\":}", "{\"number\":1,}", "{'number':1}",
        "{\"number\":1} x", "{\"number\":1}{}", "{number:1}",
        "{\"number\":99999999999999999999}", "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\\ud800\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kme_request req;
        kme_err err;
        assert_int_equal(kme_request_parse("POST", ENC, bad[i], strlen(bad[i]), &req, &err), -1);
        assert_int_equal(err.http, 400);
        if (strncmp(err.message, "request body is not valid JSON (line ", 37) != 0) {
            print_error("%s: %s\n", bad[i], err.message);
            fail();
        }
        assert_cleared(&req);
    }
}

static void test_body_nul_and_depth(void **state)
{
    (void)state;
    rejection r = { "POST", ENC, "{}\0", 400, "request body must not contain NUL bytes" };
    check_rejection_len(&r, 3);
    r.body = "{\"a\":\"x\0\"}";
    check_rejection_len(&r, 10);

    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    rejection d = { "POST", ENC, deep, 400, "request body is nested too deeply" };
    check_rejection_len(&d, 200);

    /* brackets inside strings do not count */
    char ok[400];
    snprintf(ok, sizeof ok, "{\"x\":\"%s\\\"\",\"number\":5}", deep);
    kme_request req;
    parse_ok("POST", ENC, ok, &req);
    assert_int_equal(req.number, 5);
    kme_request_clear(&req);
}

static void test_additional_limits_in_parse(void **state)
{
    (void)state;
    char body[8192];
    char *p = body + sprintf(body, "{\"additional_slave_SAE_IDs\":[");
    for (int i = 0; i < 257; i++)
        p += sprintf(p, "%s\"s%d\"", i ? "," : "", i);
    sprintf(p, "]}");
    rejection r = { "POST", ENC, body, 400, "additional_slave_SAE_IDs has more than 256 entries" };
    check_rejection_len(&r, strlen(body));

    char id[300];
    memset(id, 'x', 257);
    id[257] = '\0';
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", id);
    rejection l = { "POST", ENC, body, 400, "additional_slave_SAE_IDs entries must be at most 256 bytes long" };
    check_rejection_len(&l, strlen(body));

    id[256] = '\0';
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", id);
    kme_request req;
    parse_ok("POST", ENC, body, &req);
    assert_int_equal(strlen(req.additional[0]), 256);
    kme_request_clear(&req);
}

/* -------------------------------------------------------- dec_keys POST */

static void test_dec_post_spec_example(void **state)
{
    (void)state;
    kme_request req;

    parse_ok("POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"},{\"key_ID\":\"" ID2 "\"}]}", &req);
    assert_int_equal(req.ep, KME_EP_DEC_KEYS);
    assert_int_equal(req.n_key_ids, 2);
    assert_key_id(req.key_ids[0], ID1);
    assert_key_id(req.key_ids[1], ID2);
    kme_request_clear(&req);

    /* extensions, unknown members (S6 adds master_SAE_ID), upper case */
    parse_ok("POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"0A782FB5-3434-48FE-AA4D-14F41D46CF92\","
             "\"key_ID_extension\":{\"x\":1},\"master_SAE_ID\":\"SAE_A\"}],"
             "\"key_IDs_extension\":{},\"other\":true}", &req);
    assert_int_equal(req.n_key_ids, 1);
    assert_key_id(req.key_ids[0], ID2);
    kme_request_clear(&req);
}

static void test_dec_post_rejected(void **state)
{
    (void)state;
#define KEY_IDS_ARRAY "key_IDs must be an array of objects like {\"key_ID\": \"<UUID>\"}"
#define KEY_IDS_OBJ "key_IDs entries must be objects like {\"key_ID\": \"<UUID>\"}"
#define NEED_KEY_ID "each key_IDs entry needs a key_ID string"
    static const rejection table[] = {
        { "POST", DEC, NULL, 400, "key_IDs is required" },
        { "POST", DEC, "  ", 400, "key_IDs is required" },
        { "POST", DEC, "{}", 400, "key_IDs is required" },
        { "POST", DEC, "{\"key_ID\":\"" ID1 "\"}", 400, "key_IDs is required" },
        { "POST", DEC, "[{\"key_ID\":\"" ID1 "\"}]", 400, "request body must be a JSON object" },
        { "POST", DEC, "{\"key_IDs\":\"" ID1 "\"}", 400, KEY_IDS_ARRAY },
        { "POST", DEC, "{\"key_IDs\":{\"key_ID\":\"" ID1 "\"}}", 400, KEY_IDS_ARRAY },
        { "POST", DEC, "{\"key_IDs\":[]}", 400, "key_IDs must not be empty" },
        /* the S10 bug: an array of strings */
        { "POST", DEC, "{\"key_IDs\":[\"" ID1 "\"]}", 400, KEY_IDS_OBJ },
        { "POST", DEC, "{\"key_IDs\":[{}]}", 400, NEED_KEY_ID },
        { "POST", DEC, "{\"key_IDs\":[{\"key_id\":\"" ID1 "\"}]}", 400, NEED_KEY_ID },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":5}]}", 400, NEED_KEY_ID },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":null}]}", 400, NEED_KEY_ID },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"non-uuid\"}]}", 400, UUID_MSG },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"},{\"key_ID\":\"" ID1 " \"}]}", 400, UUID_MSG },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\",\"key_ID_extension\":1}]}", 400,
          "key_ID_extension must be an object" },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"}],\"key_IDs_extension\":[]}", 400,
          "key_IDs_extension must be an object" },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"},{\"key_ID\":\"" ID2 "\"},"
          "{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139\"}]}", 400,
          "key_IDs names the same key ID more than once" },
        { "POST", DEC, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"}],\"key_IDs\":[]}", 400,
          "request body has a duplicate member" },
        { "POST", DEC "?key_ID=" ID1, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"}]}", 400,
          "POST takes its parameters in the JSON body, not in the query" },
    };
    CHECK_ALL(table);
}

static void test_dec_post_count_cap(void **state)
{
    (void)state;
    /* the cap is checked before the entries, so cheap entries reach it */
    char body[16384];
    char *p = body + sprintf(body, "{\"key_IDs\":[");
    for (int i = 0; i < 4097; i++)
        p += sprintf(p, "%s1", i ? "," : "");
    sprintf(p, "]}");
    rejection r = { "POST", DEC, body, 400, "key_IDs has more than 4096 entries" };
    check_rejection_len(&r, strlen(body));
}

static void test_dec_post_many_distinct(void **state)
{
    (void)state;
    size_t cap = 1000 * 64 + 64;
    char *body = malloc(cap);
    assert_non_null(body);
    char *p = body + sprintf(body, "{\"key_IDs\":[");
    for (int i = 0; i < 1000; i++)
        p += sprintf(p, "%s{\"key_ID\":\"00000000-0000-4000-8000-%012d\"}", i ? "," : "", i);
    sprintf(p, "]}");
    kme_request req;
    parse_ok("POST", DEC, body, &req);
    assert_int_equal(req.n_key_ids, 1000);
    assert_key_id(req.key_ids[999], "00000000-0000-4000-8000-000000000999");
    kme_request_clear(&req);
    free(body);
}

/* ----------------------------------------------------------- validation */

/* Parse a POST enc_keys body for slave SAE_B and validate it as caller. */
static int validate_body(const char *body, const kme_limits *lim,
                         const char *caller, kme_request *req, kme_err *err)
{
    parse_ok("POST", ENC, body, req);
    return kme_request_validate_enc(req, lim, caller, err);
}

static void check_invalid(const char *body, const kme_limits *lim,
                          const char *message)
{
    kme_request req;
    kme_err err;
    memset(&err, 0xa5, sizeof err);
    int rc = validate_body(body, lim, "SAE_A", &req, &err);
    if (rc != -1 || err.http != 400 || strcmp(err.message, message) != 0) {
        print_error("%s\n  want 400 \"%s\"\n  got rc=%d %d \"%s\"\n", body,
                    message, rc, rc ? err.http : 0, rc ? err.message : "");
        fail();
    }
    assert_null(err.details);
    kme_err_clear(&err);
    kme_request_clear(&req);
}

static void test_validate_defaults(void **state)
{
    (void)state;
    kme_request req;
    kme_err err;

    parse_ok("GET", ENC, NULL, &req);
    assert_int_equal(kme_request_validate_enc(&req, &limits, "SAE_A", &err), 0);
    assert_true(req.has_number);
    assert_int_equal(req.number, 1);
    assert_true(req.has_size);
    assert_int_equal(req.size, 256);
    kme_request_clear(&req);

    kme_limits other = limits;
    other.key_size = 352;
    assert_int_equal(validate_body("{\"number\":128}", &other, "SAE_A", &req, &err), 0);
    assert_int_equal(req.number, 128);
    assert_int_equal(req.size, 352);
    kme_request_clear(&req);

    assert_int_equal(validate_body("{\"number\":3,\"size\":1024}", &limits, NULL, &req, &err), 0);
    assert_int_equal(req.number, 3);
    assert_int_equal(req.size, 1024);
    kme_request_clear(&req);
}

static void test_validate_number_and_size(void **state)
{
    (void)state;
#define NUM_RANGE "number must be between 1 and 1024"
#define SIZE_RANGE "size must be between 64 and 65536 bits"
#define SIZE_POS "size must be a positive number of bits"
    check_invalid("{\"number\":0}", &limits, NUM_RANGE);
    check_invalid("{\"number\":-8}", &limits, NUM_RANGE);
    check_invalid("{\"number\":1025}", &limits, NUM_RANGE);
    check_invalid("{\"number\":9223372036854775807}", &limits, NUM_RANGE);
    check_invalid("{\"number\":-9223372036854775808}", &limits, NUM_RANGE);
    check_invalid("{\"size\":0}", &limits, SIZE_POS);
    check_invalid("{\"size\":-8}", &limits, SIZE_POS);
    check_invalid("{\"size\":-9223372036854775808}", &limits, SIZE_POS);
    check_invalid("{\"size\":12}", &limits, MSG_SIZE_NOT_MULTIPLE_OF_8);
    check_invalid("{\"size\":257}", &limits, MSG_SIZE_NOT_MULTIPLE_OF_8);
    check_invalid("{\"size\":56}", &limits, SIZE_RANGE);
    check_invalid("{\"size\":65544}", &limits, SIZE_RANGE);
    check_invalid("{\"size\":9223372036854775800}", &limits, SIZE_RANGE);
    /* number is checked before size */
    check_invalid("{\"number\":0,\"size\":12}", &limits, NUM_RANGE);

    /* a default key_size outside the limits is still caught */
    kme_limits odd = limits;
    odd.key_size = 32;
    check_invalid("{}", &odd, SIZE_RANGE);

    kme_request req;
    kme_err err;
    assert_int_equal(validate_body("{\"number\":1024,\"size\":65536}", &limits, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);
    assert_int_equal(validate_body("{\"number\":1,\"size\":64}", &limits, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);

    /* GET values go through the same checks */
    parse_ok("GET", ENC "?number=0&size=1024", NULL, &req);
    assert_int_equal(kme_request_validate_enc(&req, &limits, "SAE_A", &err), -1);
    assert_string_equal(err.message, NUM_RANGE);
    kme_request_clear(&req);
    parse_ok("GET", ENC "?size=1000", NULL, &req);
    assert_int_equal(kme_request_validate_enc(&req, &limits, "SAE_A", &err), 0);
    assert_int_equal(req.size, 1000);
    kme_request_clear(&req);
}

static void test_validate_additional(void **state)
{
    (void)state;
    kme_limits none = limits;
    none.max_sae_id_count = 0;
    check_invalid("{\"additional_slave_SAE_IDs\":[\"SAE_C\"]}", &none,
                  "additional_slave_SAE_IDs is not supported for this pair (max_SAE_ID_count is 0)");
    check_invalid("{\"additional_slave_SAE_IDs\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", &limits,
                  "additional_slave_SAE_IDs may list at most 4 SAE IDs");
    check_invalid("{\"additional_slave_SAE_IDs\":[\"SAE_C\",\"SAE_B\"]}", &limits,
                  "additional_slave_SAE_IDs must not repeat the slave SAE ID of the path");
    check_invalid("{\"additional_slave_SAE_IDs\":[\"SAE_A\"]}", &limits,
                  "additional_slave_SAE_IDs must not list the calling master SAE");
    /* size is checked before additional_slave_SAE_IDs */
    check_invalid("{\"size\":7,\"additional_slave_SAE_IDs\":[\"SAE_A\"]}", &limits,
                  MSG_SIZE_NOT_MULTIPLE_OF_8);

    kme_request req;
    kme_err err;
    assert_int_equal(validate_body("{\"number\":1,\"size\":4096,"
                                   "\"additional_slave_SAE_IDs\":[\"ABCDEFG\",\"HIJKLMN\"]}",
                                   &limits, "SAE_A", &req, &err), 0);
    assert_int_equal(req.n_additional, 2);
    kme_request_clear(&req);
    assert_int_equal(validate_body("{\"additional_slave_SAE_IDs\":[\"a\",\"b\",\"c\",\"d\"]}",
                                   &limits, NULL, &req, &err), 0);
    kme_request_clear(&req);
    /* without additional IDs a pair without multicast is fine */
    assert_int_equal(validate_body("{}", &none, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);
}

static void test_validate_extension_mandatory_met(void **state)
{
    (void)state;
    kme_request req;
    kme_err err;
    kme_limits local = limits;
    local.keys_from_qkd = false;

    assert_int_equal(validate_body("{\"extension_mandatory\":[{\"qkdc_key_source\":\"any\"}]}",
                                   &local, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);
    assert_int_equal(validate_body("{\"extension_mandatory\":[{\"qkdc_key_source\":\"qkd\"}]}",
                                   &limits, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);
    assert_int_equal(validate_body("{\"extension_mandatory\":[]}", &limits, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);
    /* extension_optional is ignored, whatever it holds */
    assert_int_equal(validate_body("{\"extension_optional\":[{\"abc_max_age\":30000},"
                                   "{\"qkdc_key_source\":\"nonsense\"}]}",
                                   &local, "SAE_A", &req, &err), 0);
    kme_request_clear(&req);

    check_invalid("{\"extension_mandatory\":[{\"qkdc_key_source\":\"qkd\"}]}", &local,
                  MSG_EXT_MANDATORY_UNMET);
    check_invalid("{\"extension_mandatory\":[{\"qkdc_key_source\":\"any\"},"
                  "{\"qkdc_key_source\":\"QKD\"}]}", &limits, MSG_EXT_MANDATORY_UNMET);
    check_invalid("{\"extension_mandatory\":[{\"qkdc_key_source\":1}]}", &limits,
                  MSG_EXT_MANDATORY_UNMET);
    check_invalid("{\"extension_mandatory\":[{\"qkdc_key_source\":null}]}", &limits,
                  MSG_EXT_MANDATORY_UNMET);
    check_invalid("{\"extension_mandatory\":[{\"qkdc_key_source\":[\"any\"]}]}", &limits,
                  MSG_EXT_MANDATORY_UNMET);
    /* additional_slave_SAE_IDs is checked before extension_mandatory */
    check_invalid("{\"additional_slave_SAE_IDs\":[\"SAE_B\"],"
                  "\"extension_mandatory\":[{\"abc\":1}]}", &limits,
                  "additional_slave_SAE_IDs must not repeat the slave SAE ID of the path");
}

static void expect_unsupported(const char *body, const char *const *names, size_t n)
{
    kme_request req;
    kme_err err;
    assert_int_equal(validate_body(body, &limits, "SAE_A", &req, &err), -1);
    assert_int_equal(err.http, 400);
    assert_string_equal(err.message, MSG_EXT_MANDATORY_UNSUPPORTED);
    assert_true(json_is_array(err.details));
    assert_int_equal(json_array_size(err.details), n);
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(err.details, i);
        assert_int_equal(json_object_size(d), 1);
        char want[200];
        snprintf(want, sizeof want, "%s is not supported", names[i]);
        assert_string_equal(json_string_value(json_object_get(d, "extension_mandatory_unsupported")),
                            want);
    }
    kme_err_clear(&err);
    assert_null(err.details);
    kme_request_clear(&req);
}

static void test_validate_extension_mandatory_unsupported(void **state)
{
    (void)state;
    static const char *const spec[] = { "abc_route_type" };
    expect_unsupported("{\"extension_mandatory\":[{\"abc_route_type\":\"direct\"}]}", spec, 1);

    static const char *const two[] = { "abc_route_type", "abc_x" };
    /* unsupported wins over unmet, whatever the order */
    expect_unsupported("{\"extension_mandatory\":[{\"qkdc_key_source\":\"bogus\"},"
                       "{\"abc_route_type\":\"direct\"},{\"qkdc_key_source\":\"any\",\"abc_x\":1}]}",
                       two, 2);

    static const char *const cased[] = { "QKDC_KEY_SOURCE" };
    expect_unsupported("{\"extension_mandatory\":[{\"QKDC_KEY_SOURCE\":\"any\"}]}", cased, 1);

    /* long names are cut to 64 bytes on a UTF-8 boundary */
    char body[400], name[200], cut[80];
    memset(name, 'n', 63);
    strcpy(name + 63, "\xc3\xa9" "tail-that-is-long-enough-to-cut-off");
    snprintf(body, sizeof body, "{\"extension_mandatory\":[{\"%s\":1}]}", name);
    memcpy(cut, name, 63);
    cut[63] = '\0';
    const char *cut_names[] = { cut };
    expect_unsupported(body, cut_names, 1);

    /* at most 16 details however many names */
    char many[2048];
    char *p = many + sprintf(many, "{\"extension_mandatory\":[");
    const char *names[16];
    static char storage[16][8];
    for (int i = 0; i < 40; i++) {
        p += sprintf(p, "%s{\"x%d\":%d}", i ? "," : "", i, i);
        if (i < 16) {
            sprintf(storage[i], "x%d", i);
            names[i] = storage[i];
        }
    }
    sprintf(p, "]}");
    expect_unsupported(many, names, 16);
}

static void test_validate_rejects_other_endpoints(void **state)
{
    (void)state;
    kme_request req;
    kme_err err;
    parse_ok("GET", DEC "?key_ID=" ID1, NULL, &req);
    assert_int_equal(kme_request_validate_enc(&req, &limits, "SAE_A", &err), -1);
    assert_int_equal(err.http, 400);
    assert_string_equal(err.message, "not an enc_keys request");
    kme_request_clear(&req);
}

static void test_clear_is_idempotent(void **state)
{
    (void)state;
    kme_request req;
    parse_ok("POST", ENC, "{\"additional_slave_SAE_IDs\":[\"C\"],\"extension_optional\":[{\"a\":1}]}", &req);
    kme_request_clear(&req);
    assert_cleared(&req);
    kme_request_clear(&req);
    kme_request_clear(NULL);

    kme_err err;
    kme_err_set(&err, 503, "key data access error %d", 7);
    assert_int_equal(err.http, 503);
    assert_string_equal(err.message, "key data access error 7");
    assert_null(err.details);
    kme_err_clear(&err);
    assert_int_equal(err.http, 0);
    kme_err_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_paths_404),
        cmocka_unit_test(test_wrong_method_405),
        cmocka_unit_test(test_body_too_large_413),
        cmocka_unit_test(test_path_sae_id_decoded),
        cmocka_unit_test(test_path_sae_id_length_limit),
        cmocka_unit_test(test_path_sae_id_rejected),
        cmocka_unit_test(test_enc_get_query),
        cmocka_unit_test(test_enc_get_query_rejected),
        cmocka_unit_test(test_query_echo_is_bounded),
        cmocka_unit_test(test_dec_get_query),
        cmocka_unit_test(test_dec_get_query_rejected),
        cmocka_unit_test(test_enc_post_spec_examples),
        cmocka_unit_test(test_enc_post_empty_and_unknown),
        cmocka_unit_test(test_enc_post_rejected),
        cmocka_unit_test(test_enc_post_null_is_absent),
        cmocka_unit_test(test_allowed_methods),
        cmocka_unit_test(test_enc_post_bad_json),
        cmocka_unit_test(test_body_nul_and_depth),
        cmocka_unit_test(test_additional_limits_in_parse),
        cmocka_unit_test(test_dec_post_spec_example),
        cmocka_unit_test(test_dec_post_rejected),
        cmocka_unit_test(test_dec_post_count_cap),
        cmocka_unit_test(test_dec_post_many_distinct),
        cmocka_unit_test(test_validate_defaults),
        cmocka_unit_test(test_validate_number_and_size),
        cmocka_unit_test(test_validate_additional),
        cmocka_unit_test(test_validate_extension_mandatory_met),
        cmocka_unit_test(test_validate_extension_mandatory_unsupported),
        cmocka_unit_test(test_validate_rejects_other_endpoints),
        cmocka_unit_test(test_clear_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
