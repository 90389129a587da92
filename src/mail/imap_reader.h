/* SPDX-License-Identifier: Apache-2.0 */
/*
 * imap_reader.h - the IMAP response reader of imap.c, apart from the
 * connection: response lines, literals taken by their announced byte count,
 * SEARCH results and the one BODY[] literal a UID FETCH asked for, up to
 * the tagged status.  The bytes come from a fill function, so that the
 * reader runs the same over a libcurl connection and over a fuzzer's input
 * (fuzz/fuzz_imap.c); every byte a hostile IMAP server sends passes here.
 */
#ifndef QM_IMAP_READER_H
#define QM_IMAP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

#define IMAP_LINE_MAX (1 << 20) /* one response line (without literals) */
/* The largest message we accept from IMAP: a QuMail message carries at most
 * 2^30 bytes of plaintext, base64 adds a third, and headers are small. */
#define IMAP_LITERAL_MAX ((size_t)1536 << 20)

/* Up to room more bytes into dst: QM_OK with *got >= 1, or an error with
 * the reason already in the reader's detail. */
typedef qm_err (*imap_fill_fn)(void *ctx, uint8_t *dst, size_t room, size_t *got);

typedef struct imap_reader {
    imap_fill_fn fill;
    void *ctx;
    const char *shown;     /* the server, for messages */
    char *detail;          /* one line of reason (may be NULL) */
    size_t cap;
    uint8_t buf[16384];
    size_t start, end;     /* unread bytes of buf */
} imap_reader;

/* What a command's untagged responses gave us. */
typedef struct imap_result {
    const char *want_uid;    /* fetch: the UID whose BODY[] we want */
    size_t max_body;         /* fetch of a prefix (BODY[]<0>): at most this; 0: whole */
    uint8_t *body;           /* malloc'd; the caller wipes and frees it */
    size_t body_len;
    bool have_body;
    uint32_t *uids;          /* search: malloc'd, each 1..2^32-1 */
    size_t n_uids, cap_uids;
} imap_result;

/* Read every response up to the one tagged `tag`.  QM_OK on its OK; on NO
 * or BAD *refused is set and the server's text is in detail.  r may be NULL
 * (nothing collected). */
qm_err imap_read_responses(imap_reader *rd, const char *tag, imap_result *r, bool *refused);

#endif
