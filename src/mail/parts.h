/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parts.h - what a reader shows of a decrypted (inner) message: its
 * headers, its text, its HTML parts and its attachments, as the web
 * client's Read page (src/web/message_page.c) and the read store's
 * attachment list (readstore.h) need them.
 *
 * The inner message is whatever its sender wrote: a part is numbered by
 * its place among the leaves of the MIME tree (depth first, from 0), at
 * most QM_PARTS_MAX_LEAVES leaves and QM_PARTS_MAX_DEPTH levels are
 * walked (the rest is not shown), and the header section is bounded as
 * every other (mime.h).  Nothing here makes anything safe to show: the
 * caller escapes text and frames HTML (docs/web.md).  GMime parses;
 * fuzz/fuzz_read.c runs it on hostile input.
 */
#ifndef QM_PARTS_H
#define QM_PARTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

#define QM_PARTS_MAX_LEAVES 256
#define QM_PARTS_MAX_DEPTH 16

typedef enum qm_part_kind {
    QM_PART_TEXT,        /* inline text/plain: shown as the body */
    QM_PART_HTML,        /* inline text/html: shown only in a sandboxed frame */
    QM_PART_ATTACHMENT,  /* everything else, and what says it is an attachment */
} qm_part_kind;

typedef struct qm_part {
    qm_part_kind kind;
    size_t index;        /* its number among the leaves */
    char *name;          /* attachments: its file name (UTF-8, decoded), or NULL */
    size_t size;         /* decoded bytes (a text part: its text in UTF-8) */
} qm_part;

typedef struct qm_parts {
    char *from, *to, *cc, *date, *subject;   /* decoded (UTF-8), or NULL */
    char *text;          /* the inline text/plain parts in UTF-8, joined by an
                            empty line; NULL if none */
    qm_part *parts;      /* every leaf walked, in order */
    size_t n_parts;
    size_t n_attachments;
    bool truncated;      /* leaves or depth past the bounds were not walked */
} qm_parts;

/* Read msg (a complete RFC 5322 message).  QM_E_TOO_BIG if its header
 * section is past the bounds of mime.h, QM_E_MIME if it has none. */
qm_err qm_parts_read(const uint8_t *msg, size_t len, qm_parts *p);

/* Free (wiping: it is plaintext); safe on a zeroed struct, twice. */
void qm_parts_free(qm_parts *p);

/* The content of leaf index: an attachment decoded byte for byte, a text
 * or HTML part in UTF-8.  *out is malloc'd (the caller wipes and frees
 * it).  QM_E_NOT_FOUND if there is no such leaf. */
qm_err qm_parts_content(const uint8_t *msg, size_t len, size_t index, uint8_t **out,
                        size_t *out_len);

/* The attachment list of a read message into meta's form: the number of
 * attachments and the first QM_READ_MAX_ATTACH names and sizes (a name
 * the message did not give reads "attachment-N"). */
struct qm_read_meta;
void qm_parts_list_attachments(const qm_parts *p, struct qm_read_meta *meta);

#endif
