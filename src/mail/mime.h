/* SPDX-License-Identifier: Apache-2.0 */
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

#include <stdbool.h>
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

/* Bounds of every header section (the message's, each body part's, an
 * inner message's), checked before GMime sees a byte: GMime keeps every
 * header line in memory (1.5 M lines took 1 GB and 6.5 s), and no message
 * of ours comes near them.  Lines are counted without the empty line that
 * ends the section; bytes include the line ends. */
#define QM_MIME_MAX_HEADER_LINES 1000
#define QM_MIME_MAX_HEADER_BYTES ((size_t)256 * 1024)
/* At most this many body-part header sections (lines starting with "--"
 * open one) in an outer message: ours has three boundary lines. */
#define QM_MIME_MAX_PART_SECTIONS 64
/* What the inbox reads of a message to list it: the header section and
 * at most QM_MIME_PEEK_BODY bytes of the body, of which at most
 * QM_MIME_PEEK_DATA bytes (base64) of the data part: the envelope header
 * (and, at Level 4, the start of the inner message). */
#define QM_MIME_PEEK_BODY ((size_t)16 * 1024)
#define QM_MIME_PEEK_DATA ((size_t)4096)
#define QM_MIME_LIST_PREFIX (QM_MIME_MAX_HEADER_BYTES + QM_MIME_PEEK_BODY)

/* The header section at the start of msg: *hlen is its length through the
 * empty line (LF or CRLF) that ends it, or len if there is none.
 * QM_E_TOO_BIG past QM_MIME_MAX_HEADER_LINES or QM_MIME_MAX_HEADER_BYTES. */
qm_err qm_mime_header_section(const uint8_t *msg, size_t len, size_t *hlen);

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

/* What `qumail inbox` shows of a message without any key: read from the
 * header section and the first bytes of the data part only. */
typedef struct qm_mime_listing {
    char *from;        /* addr-spec of From (first mailbox), or NULL */
    char *date;        /* Date as written, or NULL */
    char *message_id;  /* without the angle brackets, or NULL */
    bool qumail;       /* multipart/encrypted with our protocol */
    int level;         /* QuMail: 1, 2 or 4 from the envelope header; 0 unknown */
    char *subject;     /* not QuMail: its Subject; Level 4: the inner Subject if it
                          lies within reach; else NULL.  UTF-8, decoded, raw:
                          sanitise before printing */
} qm_mime_listing;
void qm_mime_listing_free(qm_mime_listing *l);           /* safe on a zeroed struct, twice */

/* List a message from its first len bytes (the whole message, or at least
 * QM_MIME_LIST_PREFIX of it).  QM_E_TOO_BIG if its header section is past
 * the bounds above, QM_E_MIME if it has no usable header section; nothing
 * else of a hostile message is an error (level 0, subject NULL). */
qm_err qm_mime_listing_read(const uint8_t *msg, size_t len, qm_mime_listing *l);

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
/* (QM_E_TOO_BIG: the header section is past the bounds above.) */
void qm_inner_summary_free(qm_inner_summary *s);

#endif
