/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail.h - what the parts of the qumail program share: the session (the
 * user's configuration, the KME connection, the used-key store), error
 * reporting with the exit codes of qumail_exit.h, narration for --verbose
 * and output.  qumail.c holds the options and the message commands
 * (encrypt, decrypt, send); qumail_inbox.c the mailbox commands (inbox,
 * read).
 */
#ifndef QUMAIL_CLI_H
#define QUMAIL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qkd014.h"
#include "qumail_exit.h"
#include "mail/config.h"
#include "mail/errors.h"
#include "mail/message.h"
#include "mail/open.h"
#include "mail/readstore.h"
#include "mail/usedkeys.h"


/* Which side of a message a failure happened on: the same code can mean
 * different things (short key material is the KME's fault when sealing,
 * a lying envelope when opening). */
typedef enum { SIDE_SEAL, SIDE_OPEN } qc_side;

typedef struct qc_session {
    qm_config cfg;
    qkd014_client *kme;   /* opened by qc_session_keys */
    qm_usedkeys *used;    /* opened by qc_session_keys when decrypting */
    qm_self me;
    bool verbose;
    bool show_unverified;  /* --show-unverified: show a message whose sender is not verified */
} qc_session;

/* "qumail: error: TEXT" on stderr, TEXT with control characters replaced
 * (common/termsafe.h); returns code. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int qc_error(int code, const char *fmt, ...);

/* prefix (ours, e.g. "qumail: warning: ") and TEXT on one line of stderr,
 * TEXT with control characters replaced: for every line that names what
 * came from a message, a mail server or a file. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void qc_line(const char *prefix, const char *fmt, ...);

/* Report rc (with detail, if not empty) and return its exit code. */
int qc_fail(qm_err rc, qc_side side, const char *detail);

/* One line of narration on stderr, with --verbose only (sanitised). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void qc_say(const qc_session *s, const char *fmt, ...);

/* Connect the session to the KME (and, with for_decrypt, open the used-key
 * store in [store] dir): mail/open.h's qm_open_keys; EX_OK, or the exit
 * code of an error already reported. */
int qc_session_keys(qc_session *s, bool for_decrypt);

/* Decrypt an outer message with the session's keys (mail/open.h's
 * qm_open_outer), narrating; on failure reports and returns the exit code,
 * else EX_OK with o filled (qm_opened_free): o->meta.unverified says why
 * its sender is not verified ("" if it is, or at Level 4, which proves
 * nothing), whether a forged copy came first (said on stderr here).  A
 * message whose sender is not verified is returned only with
 * accept_unverified; otherwise EX_SENDER, no plaintext, and its keys wait
 * in [store] dir/pending. */
int qc_decrypt(qc_session *s, const uint8_t *outer, size_t len, bool accept_unverified,
               qm_opened *o);

/* Report the result rc of a decryption into o as qc_decrypt does. */
int qc_decrypted(qc_session *s, qm_err rc, const qm_opened *o);

/* A message whose sender is not verified: without --show-unverified,
 * "sender not verified: WHY" and EX_SENDER (hint: how to see it anyway);
 * with it, a banner on stderr and -1 (go on and show it, then exit
 * EX_SENDER). */
int qc_unverified(const qc_session *s, const char *why, const char *hint);

/* Write bytes to stdout (buffered in memory that is wiped at exit). */
int qc_write_out(const uint8_t *p, size_t n);

/* Write a message for the user (read, decrypt): byte for byte into a pipe
 * or a file, or with --raw; on a terminal with control characters replaced
 * (LF, TAB and CRLF kept). */
int qc_write_message(const uint8_t *p, size_t n);

/* The Level 4 label: said whenever an unprotected message is shown. */
void qc_warn_level4(const char *what);

/* Free a buffer that held plaintext. */
void qc_wipe_free(uint8_t *p, size_t n);

/* The options of `qumail web` (NULL: not given). */
typedef struct qc_web_opts {
    const char *listen;        /* 127.0.0.1:PORT or localhost:PORT */
    const char *url_file;      /* the URL also written here, mode 0600 */
    const char *session_idle;  /* seconds a session lives unused */
    bool no_open;
    bool given;                /* any of them given */
} qc_web_opts;

int qc_cmd_inbox(qc_session *s);
int qc_cmd_web(qc_session *s, const qc_web_opts *o);
int qc_cmd_read(qc_session *s, const char *which);

#endif
