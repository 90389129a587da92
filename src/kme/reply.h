/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.h - an HTTP answer as the KME's handlers produce it: a status code
 * and a JSON body.  Bodies that carry keys live in a secret buffer, wiped
 * once the listener has sent them.  Shared by every listener (the SAE API,
 * the KME-to-KME channel, the link intake).
 */
#ifndef QC_KME_REPLY_H
#define QC_KME_REPLY_H

#include <jansson.h>
#include <stdbool.h>

#include "common/secret.h"

typedef struct kme_reply {
    int http;
    bool has_keys;     /* body holds key material: no-store, wipe after use */
    secret_buf body;   /* JSON text, body.len bytes (not NUL-terminated) */
    unsigned retry_after_s; /* > 0: a Retry-After header (a limit was reached) */
    const char *allow;      /* non-NULL (static text): an Allow header (405) */
} kme_reply;

/* Render obj (may be NULL: out of memory) as the body with this status.
 * Never fails: on allocation failure the reply becomes a 503. */
void reply_json(kme_reply *out, int http, json_t *obj);

/* JSON text already rendered (text may be NULL: out of memory), copied
 * into the body.  Never fails, as reply_json. */
void reply_text(kme_reply *out, int http, const char *text, size_t len);

/* {"message": message} with this status. */
void reply_error(kme_reply *out, int http, const char *message);

void reply_free(kme_reply *r);

#endif
