/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compose.h - what the Compose page (compose_page.c: the form, its key
 * panel, Reply / Reply all / Forward) and the send action (compose_send.c:
 * POST /compose/send, the result page) share: the form's fields, the
 * values it is filled with, and the original a reply or forward is made
 * from (the read store only: a message is replied to once it was read).
 */
#ifndef QUMAIL_WEB_COMPOSE_H
#define QUMAIL_WEB_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/parts.h"
#include "web/pages.h"

/* The multipart/form-data names of the Compose form; "attachments" is the
 * only one that repeats (the files). */
extern const char *const web_compose_fields[];
#define WEB_COMPOSE_FILES "attachments"
/* The one URL whose POST is multipart/form-data (server.c). */
#define WEB_MULTIPART_URL "/compose/send"

/* What the form shows (all strings ours or escaped when written). */
typedef struct web_compose_form {
    const char *title;          /* "Compose", "Reply", "Reply all", "Forward" */
    const char *to, *cc, *subject, *text;
    const char *in_reply_to;    /* the original's Message-ID, or NULL */
    const char *forward_of;     /* forward: the original's mailbox ID, or NULL */
    const qm_parts *forwarded;  /* forward: its attachments are carried along */
    int level;                  /* the level chosen (0: the best available) */
    const char *error;          /* why the last Send was refused, or NULL */
    uint64_t attach_bytes;      /* the attachments of a refused Send (0 on GET) */
} web_compose_form;

/* The whole Compose page for f, with the key panel (the KME asked now)
 * and Level 1 disabled with the reason when the pool cannot cover it. */
void web_compose_render(const web_request *rq, const web_compose_form *f, unsigned status,
                        web_reply *out);

/* The original of a reply or forward: message id of the mailbox, from the
 * read store.  false with a page in out when it is unknown or not read. */
typedef struct web_original {
    uint8_t *plain;
    size_t len;
    qm_parts parts;
    char message_id[256];       /* the inner Message-ID, or "" */
} web_original;

bool web_original_get(const web_request *rq, const char *id, web_original *o, web_reply *out);
void web_original_free(web_original *o);

#endif
