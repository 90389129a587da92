/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compose.h - writing a new inner message (RFC 5322 + MIME) from what a
 * person typed: addresses, a subject, a plain-text body and attachments.
 * The web client's Compose page builds its message here before
 * mail/send.h encrypts and delivers it.
 *
 * The output is a multipart/mixed message (a text/plain UTF-8 part, then
 * one part per attachment, base64) or, without attachments, a single
 * text/plain part.  Nothing the person typed can add a header or a part:
 * addresses must pass qm_address_valid, the subject is RFC 2047-encoded
 * whenever it is not plain short ASCII (line ends in it become spaces),
 * the body is 8bit when every line is short and holds no NUL or bare CR
 * (else base64), file names are RFC 2231-encoded, content types are
 * checked (else application/octet-stream).  Lines end in LF, as in the
 * outer message (SMTP sends CRLF).
 */
#ifndef QM_COMPOSE_H
#define QM_COMPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

#define QM_COMPOSE_MAX_SUBJECT 998     /* bytes of the subject as typed */

typedef struct qm_attachment {
    const char *name;           /* UTF-8 file name, or NULL / "" (then "attachment-N") */
    const char *content_type;   /* "type/subtype" as given, or NULL */
    const uint8_t *data;
    size_t len;
} qm_attachment;

typedef struct qm_compose {
    const char *from;                        /* my address */
    const char *const *to;  size_t n_to;
    const char *const *cc;  size_t n_cc;
    const char *subject;                     /* UTF-8, may be "" */
    const char *text;   size_t text_len;     /* UTF-8 body, CRLF or LF lines */
    const qm_attachment *attachments;  size_t n_attachments;
    const char *in_reply_to;                 /* a Message-ID without <>, or NULL */
} qm_compose;

/* The complete inner message in *out (malloc'd; the caller wipes and frees
 * it).  QM_E_USAGE for an address that is not valid, a subject past
 * QM_COMPOSE_MAX_SUBJECT or an in_reply_to with characters a Message-ID
 * does not have; QM_E_NOMEM. */
qm_err qm_compose_build(const qm_compose *c, uint8_t **out, size_t *out_len);

#endif
