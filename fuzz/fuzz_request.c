/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_request.c - libFuzzer target for ETSI 014 request parsing and
 * validation (src/kme/request.c), the code that sees every untrusted byte a
 * client sends before any key is touched.
 *
 * Input layout: one selector byte, then the raw request URI up to the first
 * NUL, then the body (the rest; empty when there is no NUL).  The selector
 * picks the method (low 3 bits) and the pair's limits (bits 3 and 4), so one
 * corpus explores every branch.  Beyond "no crash, no leak" the target
 * checks the contract: a failure carries a known status code and a message
 * that is non-empty, one line and valid UTF-8 (jansson must be able to send
 * it), and success leaves a consistent request.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kme/request.h"

static const char *const methods[8] = {
    "GET", "POST", "GET", "POST", "PUT", "HEAD", "DELETE", "",
};

static kme_limits limits_for(uint8_t selector)
{
    kme_limits lim = {
        .key_size = 256, .min_key_size = 64, .max_key_size = 65536,
        .max_key_per_request = 1024, .max_sae_id_count = 4,
        .keys_from_qkd = (selector & 0x08) != 0,
    };
    if (selector & 0x10)
        lim.max_sae_id_count = 0;
    return lim;
}

static void check_error(const kme_err *err)
{
    static const int codes[] = { 400, 404, 405, 413, 503 };
    int known = 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        known |= err->http == codes[i];
    if (!known || err->message[0] == '\0' || strchr(err->message, '\n') != NULL)
        abort();
    json_t *as_json = json_string(err->message); /* NULL if not UTF-8 */
    if (as_json == NULL)
        abort();
    json_decref(as_json);
    if (err->details != NULL) {
        char *text = json_dumps(err->details, 0);
        if (text == NULL)
            abort();
        free(text);
    }
}

static void check_request(const kme_request *req)
{
    if (req->sae_id == NULL || req->sae_id[0] == '\0')
        abort();
    if (req->ep == KME_EP_DEC_KEYS && (req->n_key_ids == 0 || req->key_ids == NULL))
        abort();
    if (req->has_additional && req->n_additional == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t selector = data[0];
    const uint8_t *rest = data + 1;
    size_t rest_len = size - 1;
    const uint8_t *nul = memchr(rest, '\0', rest_len);
    size_t uri_len = nul != NULL ? (size_t)(nul - rest) : rest_len;
    size_t body_len = nul != NULL ? rest_len - uri_len - 1 : 0;

    /* exact-size copies, so ASan sees any read past either end */
    char *uri = malloc(uri_len + 1);
    char *body = malloc(body_len > 0 ? body_len : 1);
    if (uri == NULL || body == NULL)
        abort();
    memcpy(uri, rest, uri_len);
    uri[uri_len] = '\0';
    if (body_len > 0)
        memcpy(body, nul + 1, body_len);

    kme_request req;
    kme_err err;
    if (kme_request_parse(methods[selector & 7], uri, body_len > 0 ? body : NULL,
                          body_len, &req, &err) != 0) {
        check_error(&err);
        kme_err_clear(&err);
    } else {
        check_request(&req);
        if (req.ep == KME_EP_ENC_KEYS) {
            kme_limits lim = limits_for(selector);
            if (kme_request_validate_enc(&req, &lim, "SAE_A", &err) != 0) {
                check_error(&err);
                kme_err_clear(&err);
            } else if (req.number < 1 || req.number > lim.max_key_per_request
                       || req.size % 8 != 0 || req.size < lim.min_key_size
                       || req.size > lim.max_key_size) {
                abort();
            }
        }
        kme_request_clear(&req);
    }
    free(uri);
    free(body);
    return 0;
}
