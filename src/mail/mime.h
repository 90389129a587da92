/*
 * mime.h - the outer MIME message of QuMail (docs/qumail-format.md §1) and
 * a read-only summary of the inner (plaintext) message.
 *
 * The outer message is what travels by mail: clear-text addressing, a
 * constant Subject and an RFC 1847 multipart/encrypted body whose second
 * part carries the envelope (envelope.h) in base64.  qm_mime_build() writes
 * it, qm_mime_parse() accepts exactly that structure and hands back the
 * envelope bytes, which the caller then parses with qm_envelope_parse().
 * qm_mime_inner_summary() reads the addressing and subject of a plaintext
 * message without touching its bytes (they are encrypted byte for byte).
 * GMime 3 does the parsing; it is initialised once, on first use.
 */
#ifndef QM_MIME_H
#define QM_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

/* The constant Subject of every outer message. */
#define QM_MIME_SUBJECT  "QuMail encrypted message"
/* The RFC 1847 protocol, i.e. the content type of the control part. */
#define QM_MIME_PROTOCOL "application/x-qumail-envelope"
/* Largest outer message built or parsed (1.5 GiB: a 1 GiB Level 4 or
 * one-group envelope in base64 fits, with room for the headers). */
#define QM_MIME_MAX_MESSAGE ((size_t)3 << 29)

/* Clear-text addressing of an outer message. */
typedef struct qm_outer_info {
    char *from;        /* addr-spec, e.g. alice@example.org */
    char **to;         /* addr-specs of To and Cc */
    size_t n_to;
    char *date;        /* Date header as written */
    char *message_id;  /* without the angle brackets */
} qm_outer_info;
void qm_outer_info_free(qm_outer_info *info);           /* safe on a zeroed struct, twice */

/* Outer RFC 1847 multipart/encrypted message of docs/qumail-format.md §1 around envelope bytes.
 * LF line endings (SMTP code converts to CRLF). date NULL = now. */
qm_err qm_mime_build(const char *from, const char *const *to, size_t n_to, const char *date,
                     const uint8_t *envelope, size_t envelope_len,
                     uint8_t **out, size_t *out_len);

/* Strict parse of an outer message (LF or CRLF): QM_E_MIME unless exactly the §1 structure;
 * QM_E_VERSION if the control part's Version is not 1.  Returns the decoded envelope bytes
 * (not yet parsed: caller runs qm_envelope_parse) and, if info != NULL, the clear-text headers. */
qm_err qm_mime_parse(const uint8_t *msg, size_t len, uint8_t **envelope, size_t *envelope_len,
                     qm_outer_info *info);

/* Summary of a plaintext (inner) RFC 5322 message, without changing it: used by `qumail send`
 * to find recipients and by `qumail inbox` to show the subject of a message already read. */
typedef struct qm_inner_summary {
    char *from;       /* addr-spec or NULL */
    char **to;        /* addr-specs of To and Cc */
    size_t n_to;
    char *subject;    /* UTF-8, decoded (RFC 2047), or NULL */
    char *date;       /* or NULL */
} qm_inner_summary;
qm_err qm_mime_inner_summary(const uint8_t *msg, size_t len, qm_inner_summary *s);
void qm_inner_summary_free(qm_inner_summary *s);

#endif
