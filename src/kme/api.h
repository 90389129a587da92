/*
 * api.h - the three ETSI GS QKD 014 methods: status, enc_keys, dec_keys.
 *
 * The HTTP layer (http.c) has already authenticated the caller and knows its
 * SAE ID; api_handle() parses and validates the request (request.c), applies
 * the authorisation rules, calls the key store and renders the answer: a
 * Status or Key container on success, an Error object otherwise.  Every
 * answer has a JSON body.  Bodies that carry keys live in a secret buffer
 * that is wiped when the HTTP layer has sent it.
 */
#ifndef QC_KME_API_H
#define QC_KME_API_H

#include <stdbool.h>
#include <stddef.h>

#include "common/secret.h"
#include "kme/config.h"
#include "kme/keystore.h"

typedef struct kme_api {
    const kme_config *cfg;
    keystore *ks;
} kme_api;

typedef struct api_response {
    int http;
    bool has_keys;     /* body holds key material: no-store, wipe after use */
    secret_buf body;   /* JSON text, body.len bytes (not NUL-terminated) */
} api_response;

void api_handle(const kme_api *api, const char *caller, const char *method,
                const char *raw_uri, const char *body, size_t body_len,
                api_response *out);

/* Render an Error object {"message": ...} with the given status into out. */
void api_error(api_response *out, int http, const char *message);

void api_response_free(api_response *r);

#endif
