/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.c - building the JSON answers of the KME's listeners.
 *
 * Every body is copied into a secret buffer, also for answers without keys,
 * so that the listener has one way to send and to wipe.
 */
#include "kme/reply.h"

#include <stdlib.h>
#include <string.h>

void reply_text(kme_reply *out, int http, const char *text, size_t len)
{
    out->http = http;
    out->has_keys = false;
    if (text && secret_alloc(&out->body, len ? len : 1) == 0) {
        memcpy(out->body.data, text, len);
        out->body.len = len;
    } else {
        static const char oom[] = "{\"message\":\"out of memory\"}";
        out->http = 503;
        if (secret_alloc(&out->body, sizeof oom - 1) == 0) {
            memcpy(out->body.data, oom, sizeof oom - 1);
            out->body.len = sizeof oom - 1;
        }
    }
}

/* Reals with 15 significant digits: 0.0331, not jansson's default
 * 0.033099999999999998 (the link's QBER in the status extension). */
void reply_json(kme_reply *out, int http, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    reply_text(out, http, text, text ? strlen(text) : 0);
    free(text);
}

void reply_error(kme_reply *out, int http, const char *message)
{
    json_t *o = json_pack("{s:s}", "message", message);
    reply_json(out, http, o);
    json_decref(o);
}

void reply_free(kme_reply *r)
{
    secret_free(&r->body);
}
