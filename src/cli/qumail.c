/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail.c - the qumail command: quantum-key-secured e-mail from the shell,
 * on top of libqumail (docs/qumail.md).
 *
 *   qumail [--config FILE] [--verbose] encrypt --level 1|2|4 --to ADDR... < in.eml > out.eml
 *   qumail [--config FILE] [--verbose] decrypt < in.eml > out.eml
 *   qumail [--config FILE] [--verbose] send --level 1|2|4 [--to ADDR...] < in.eml
 *   qumail [--config FILE] [--verbose] inbox
 *   qumail [--config FILE] [--verbose] read [--show-unverified] N|ID
 *   qumail [--config FILE] web [--listen 127.0.0.1:PORT] [--url-file FILE] [--no-open]
 *
 * The user's configuration (mail/config.h) is checked before anything else.
 * Keys come from the user's KME as its SAE; decrypted messages go to stdout
 * (through a buffer of our own that is wiped at exit) and, for `read` only,
 * into the read store.  Exit codes: enum in qumail.h, table in
 * docs/qumail.md.  This file holds the options, the session and the message
 * commands; qumail_inbox.c the mailbox commands.
 */
#include "qumail.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/secret.h"
#include "common/termsafe.h"
#include "mail/maildir.h"
#include "mail/mailserver.h"
#include "mail/mime.h"
#include "mail/open.h"
#include "mail/readstore.h"
#include "mail/send.h"

#define MAX_RECIPIENTS 16 /* docs/qumail-format.md: at most 16 recipients */

typedef struct cli {
    const char *config;
    const char *command;
    char **args;
    int nargs;
    int level;             /* 0: not given */
    const char *to[MAX_RECIPIENTS];
    size_t n_to;
    bool verbose;
    bool raw;              /* --raw: read and decrypt write the message as it is */
    bool show_unverified;
    qc_web_opts web;       /* the web command's options */
} cli;

static char stdout_buf[65536]; /* wiped at exit: it held plaintext */

static const char usage_text[] =
    "usage: qumail [--config FILE] [--verbose] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  encrypt --level 1|2|4 --to ADDR [--to ADDR ...] < in.eml > out.eml\n"
    "                 encrypt a complete message (headers, body, attachments)\n"
    "  decrypt [--show-unverified] < in.eml > out.eml\n"
    "                 decrypt a QuMail message addressed to me (keys are used once:\n"
    "                 a second decrypt of the same message fails, exit 6)\n"
    "  send --level 1|2|4 [--to ADDR ...] < in.eml\n"
    "                 encrypt and deliver (recipients: --to, else the message's To\n"
    "                 and Cc) to their Maildirs or by SMTP, as [mail] send says\n"
    "  inbox          list my messages: number, date, sender, subject of those\n"
    "                 already read (no key is used)\n"
    "  read [--show-unverified] N|ID\n"
    "                 show message N of the inbox (or the one with this ID):\n"
    "                 decrypted once with keys from the KME, then from the read store\n"
    "  web [--listen 127.0.0.1:PORT] [--url-file FILE] [--no-open] [--session-idle S]\n"
    "                 the web client on loopback (docs/web.md): prints the URL to\n"
    "                 open (it holds a secret token); stops on SIGINT or SIGTERM\n"
    "\n"
    "levels: 1 one-time pad + one-time MAC (information-theoretic), 2 AES-256-GCM\n"
    "keyed by a QKD key, 4 no protection (labelled as such); 3 is reserved.\n"
    "\n"
    "options (also after the command):\n"
    "  --config FILE    configuration (default $QUMAIL_CONFIG, else\n"
    "                   ~/.config/qumail/qumail.conf; see docs/qumail.md)\n"
    "  --level N        security level (encrypt, send; required)\n"
    "  --to ADDR        recipient in the address book (repeatable, at most 16)\n"
    "  --verbose        narrate on stderr: ETSI calls, key IDs, sizes (never keys)\n"
    "  --raw            (read, decrypt) write the message as it is to a terminal\n"
    "                   too (else its control characters are shown as '?' there)\n"
    "  --show-unverified  (read, decrypt) show a message whose From is not bound to\n"
    "                   the SAE that sent it, under a banner on stderr (still exit 10)\n"
    "  --help, --version\n"
    "\n"
    "exit status: 0 ok, 2 usage or configuration, 3 KME unreachable,\n"
    "4 authentication refused, 5 not enough key material (try Level 2), 6 key\n"
    "already used, 7 message tampered with, 8 malformed message, 9 mail\n"
    "transport or local storage failed, 10 sender not verified (1: out of memory or\n"
    "internal error)\n";

/* ------------------------------------------------------------ reporting */

/* prefix, then the formatted text as one line of stderr with what a
 * terminal would obey replaced (common/termsafe.h): the text may name
 * addresses, subjects, file names and server replies. */
static void vline(const char *prefix, const char *fmt, va_list ap)
{
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    fputs(prefix, stderr);
    if (n >= 0)
        termsafe_write(stderr, text, (size_t)n, TERMSAFE_LINE);
    fputc('\n', stderr);
    free(text);
}

void qc_line(const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(prefix, fmt, ap);
    va_end(ap);
}

int qc_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline("qumail: error: ", fmt, ap);
    va_end(ap);
    return code;
}

static int usage_error(const char *msg, const char *arg)
{
    if (arg)
        qc_line("qumail: error: ", "%s: %s", msg, arg);
    else
        qc_line("qumail: error: ", "%s", msg);
    fprintf(stderr, "Try 'qumail --help'.\n");
    return EX_USAGE;
}

static int exit_code(qm_err rc, qc_side side)
{
    switch (rc) {
    case QM_OK: return EX_OK;
    case QM_E_CONFIG: case QM_E_NOT_FOUND: case QM_E_USAGE: return EX_USAGE;
    case QM_E_KME: return EX_KME;
    case QM_E_AUTH: return EX_AUTH;
    case QM_E_NO_KEYS: return EX_NO_KEYS;
    case QM_E_KEY_USED: case QM_E_KEY_NOT_FOUND: return EX_KEY_USED;
    case QM_E_SENDER: return EX_SENDER;
    case QM_E_TAMPERED: return EX_TAMPERED;
    case QM_E_KEY_SHORT: return side == SIDE_OPEN ? EX_TAMPERED : EX_KME;
    case QM_E_MIME: case QM_E_MALFORMED: case QM_E_VERSION: case QM_E_LEVEL:
    case QM_E_NOT_RECIPIENT:
        return EX_MALFORMED;
    case QM_E_TOO_BIG: return side == SIDE_OPEN ? EX_MALFORMED : EX_USAGE;
    case QM_E_TRANSPORT: case QM_E_IO: case QM_E_PENDING: return EX_TRANSPORT;
    case QM_E_NOMEM: case QM_E_CRYPTO: return EX_INTERNAL;
    }
    return EX_INTERNAL;
}

int qc_fail(qm_err rc, qc_side side, const char *detail)
{
    const char *text = qm_strerror(rc);
    if (rc == QM_E_KEY_SHORT && side == SIDE_OPEN)
        text = "message tampered with: its envelope does not match the keys issued";
    if (detail && *detail)
        return qc_error(exit_code(rc, side), "%s: %s", text, detail);
    return qc_error(exit_code(rc, side), "%s", text);
}

void qc_say(const qc_session *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline("qumail: ", fmt, ap);
    va_end(ap);
}

static void trace_line(void *arg, const char *line)
{
    (void)arg;
    qc_line("qumail:   ", "%s", line);
}

void qc_warn_level4(const char *what)
{
    fprintf(stderr, "qumail: warning: %s Level 4: it is NOT encrypted and NOT "
            "authenticated; anyone on the way can read or change it\n", what);
}

/* --------------------------------------------------------------- output */

int qc_write_out(const uint8_t *p, size_t n)
{
    if (n && fwrite(p, 1, n, stdout) != n)
        return qc_error(EX_TRANSPORT, "cannot write output: %s", strerror(errno));
    return EX_OK;
}

static bool raw_output; /* --raw */

int qc_write_message(const uint8_t *p, size_t n)
{
    if (raw_output || !termsafe_is_tty(stdout))
        return qc_write_out(p, n);
    if (termsafe_write(stdout, p, n, TERMSAFE_TEXT) != 0)
        return qc_error(EX_TRANSPORT, "cannot write output: %s", strerror(errno));
    return EX_OK;
}

void qc_wipe_free(uint8_t *p, size_t n)
{
    if (p)
        secret_wipe(p, n);
    free(p);
}

/* All of stdin; the buffer grows by copying, so that no plaintext is left
 * behind in freed memory. */
static int read_stdin(uint8_t **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return qc_error(EX_INTERNAL, "out of memory");
    for (;;) {
        if (n == cap) {
            uint8_t *g = cap > SIZE_MAX / 2 ? NULL : malloc(cap * 2);
            if (!g) {
                qc_wipe_free(b, cap);
                return qc_error(EX_INTERNAL, "out of memory reading stdin");
            }
            memcpy(g, b, n);
            qc_wipe_free(b, cap);
            b = g;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(stdin)) {
        qc_wipe_free(b, cap);
        return qc_error(EX_TRANSPORT, "cannot read stdin: %s", strerror(errno));
    }
    *out = b;
    *len = n;
    return EX_OK;
}

/* -------------------------------------------------------------- session */

static int session_open(qc_session *s, const cli *c)
{
    char err[1200], fallback[PATH_MAX];
    const char *path = c->config;
    if (!path && getenv("QUMAIL_CONFIG") && *getenv("QUMAIL_CONFIG"))
        path = getenv("QUMAIL_CONFIG");
    if (!path) {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return qc_error(EX_USAGE, "no configuration: give --config FILE or set "
                            "QUMAIL_CONFIG (HOME is not set)");
        snprintf(fallback, sizeof fallback, "%s/.config/qumail/qumail.conf", home);
        path = fallback;
    }
    s->verbose = c->verbose;
    s->show_unverified = c->show_unverified;
    qm_err rc = qm_config_load(path, &s->cfg, err, sizeof err);
    if (rc != QM_OK)
        return rc == QM_E_CONFIG ? qc_error(EX_USAGE, "%s", err) : qc_fail(rc, SIDE_SEAL, NULL);
    qc_say(s, "config %s: %s is %s on %s (%s)", path, s->cfg.address, s->cfg.sae_id,
           s->cfg.kme_id ? s->cfg.kme_id : "its KME", s->cfg.kme_url);
    s->me.sae_id = s->cfg.sae_id;
    s->me.address = s->cfg.address;
    if (s->verbose)
        s->me.trace = trace_line;
    return EX_OK;
}

int qc_session_keys(qc_session *s, bool for_decrypt)
{
    char msg[PATH_MAX + 600];
    qm_err rc = qm_open_keys(&s->me, &s->cfg, for_decrypt, msg, sizeof msg);
    s->kme = s->me.kme;     /* session_close frees them (qm_open_close) */
    s->used = s->me.used;
    return rc == QM_OK ? EX_OK : qc_error(exit_code(rc, SIDE_OPEN), "%s", msg);
}

static void session_close(qc_session *s)
{
    qm_open_close(&s->me);   /* the KME client and used-key store (s->kme, s->used) */
    qm_config_free(&s->cfg);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------- commands */

/* The address-book entries of the recipients, checked before any key is
 * fetched (mail/send.h). */
static int resolve_peers(qc_session *s, const char *const *to, size_t n, qm_peer *peers)
{
    char detail[PATH_MAX + 300];
    if (qm_send_resolve(&s->cfg, to, n, peers, detail, sizeof detail) != QM_OK)
        return qc_error(EX_USAGE, "%s", detail);
    for (size_t i = 0; i < n; i++)
        qc_say(s, "recipient %s: %s on %s", peers[i].address, peers[i].sae_id,
               peers[i].kme_id ? peers[i].kme_id : "an unnamed KME");
    return EX_OK;
}

/* Encrypt inner for peers at level into *outer. */
static int seal(qc_session *s, int level, const qm_peer *peers, size_t n,
                const uint8_t *inner, size_t len, uint8_t **outer, size_t *outer_len)
{
    int ex = level == 4 ? EX_OK : qc_session_keys(s, false);
    if (ex != EX_OK)
        return ex;
    if (level == 4)
        qc_warn_level4("this message is sent at");
    qc_say(s, "encrypting %zu bytes at Level %d for %zu recipient(s)", len, level, n);
    s->me.detail[0] = '\0';
    qm_err rc = qm_encrypt(&s->me, level, peers, n, inner, len, outer, outer_len);
    if (rc != QM_OK)
        return qc_fail(rc, SIDE_SEAL, s->me.detail);
    return EX_OK;
}

int qc_decrypted(qc_session *s, qm_err rc, const qm_opened *o)
{
    if (rc == QM_E_SENDER)
        return qc_error(EX_SENDER, "sender not verified: %s; %s (decrypt --show-unverified "
                        "writes it under a banner)", s->me.unverified, s->me.detail);
    if (rc != QM_OK)
        return qc_fail(rc, SIDE_OPEN, s->me.detail);
    qc_say(s, "decrypted: Level %d, %zu bytes, integrity verified%s", o->level, o->len,
           o->level == 4 ? " (none: Level 4; the sender is not verified either)" : "");
    if (o->meta.forged_copy_seen)
        fprintf(stderr, "qumail: warning: a forged copy of this message was seen earlier (it "
                "failed its integrity check; its keys were kept for this copy, which verified)\n");
    return EX_OK;
}

int qc_decrypt(qc_session *s, const uint8_t *outer, size_t len, bool accept_unverified,
               qm_opened *o)
{
    int ex = qc_session_keys(s, true);
    if (ex != EX_OK)
        return ex;
    qc_say(s, "decrypting a %zu-byte message", len);
    return qc_decrypted(s, qm_open_outer(&s->me, &s->cfg, outer, len, accept_unverified, o), o);
}

int qc_unverified(const qc_session *s, const char *why, const char *hint)
{
    if (!s->show_unverified)
        return qc_error(EX_SENDER, "sender not verified: %s; %s", why, hint);
    static const char rule[] =
        "qumail: ******************************************************************\n";
    fputs(rule, stderr);
    fprintf(stderr, "qumail: *** sender not verified: %s\n", why);
    fputs("qumail: *** its From does NOT prove who wrote it; shown on request\n", stderr);
    fputs(rule, stderr);
    return -1;
}

static int cmd_encrypt(qc_session *s, const cli *c)
{
    qm_peer peers[MAX_RECIPIENTS];
    int ex = resolve_peers(s, c->to, c->n_to, peers);
    uint8_t *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    if (ex == EX_OK)
        ex = read_stdin(&in, &in_len);
    if (ex == EX_OK)
        ex = seal(s, c->level, peers, c->n_to, in, in_len, &out, &out_len);
    if (ex == EX_OK)
        ex = qc_write_out(out, out_len);
    qc_wipe_free(in, in_len);
    free(out);
    return ex;
}

static int cmd_decrypt(qc_session *s)
{
    uint8_t *in = NULL;
    size_t in_len = 0;
    int unverified = EX_OK;
    qm_opened o = {0};
    int ex = read_stdin(&in, &in_len);
    /* a message whose sender is not verified: only with --show-unverified (else its keys
     * wait in pending/ for that) */
    if (ex == EX_OK)
        ex = qc_decrypt(s, in, in_len, s->show_unverified, &o);
    if (ex == EX_OK && o.meta.unverified[0] != '\0') {
        unverified = EX_SENDER;
        ex = qc_unverified(s, o.meta.unverified, "no plaintext was written");
        ex = ex < 0 ? EX_OK : ex;
    }
    if (ex == EX_OK && o.level == 4)
        qc_warn_level4("this message was sent at");
    if (ex == EX_OK)
        ex = qc_write_message(o.plain, o.len);
    if (ex == EX_OK)
        ex = unverified;
    qm_opened_free(&o);
    free(in);
    return ex;
}

/* Recipients of send: --to, else the inner message's To and Cc. */
static int send_recipients(qc_session *s, const cli *c, const uint8_t *in, size_t len,
                           qm_peer *peers, size_t *n, qm_inner_summary *sum)
{
    if (c->n_to) {
        *n = c->n_to;
        return resolve_peers(s, c->to, c->n_to, peers);
    }
    qm_err rc = qm_mime_inner_summary(in, len, sum);
    if (rc != QM_OK)
        return qc_fail(rc, SIDE_SEAL, "cannot read the message's To and Cc headers");
    if (sum->n_to == 0)
        return qc_error(EX_USAGE, "no recipient: the message has no To or Cc; give --to ADDR");
    qc_say(s, "recipients from the message's To and Cc: %zu", sum->n_to);
    *n = sum->n_to;
    return resolve_peers(s, (const char *const *)sum->to, sum->n_to, peers);
}

/* Encrypt, then deliver to the recipients' Maildirs or by SMTP, as [mail]
 * send says (mail/send.h: the web client's send path too). */
static int cmd_send(qc_session *s, const cli *c)
{
    qm_peer peers[MAX_RECIPIENTS];
    qm_inner_summary sum = {0};
    qm_send_result res = {0};
    uint8_t *in = NULL;
    size_t in_len = 0, n = 0;
    int ex = read_stdin(&in, &in_len);
    if (ex == EX_OK)
        ex = send_recipients(s, c, in, in_len, peers, &n, &sum);
    if (ex == EX_OK && c->level != 4)
        ex = qc_session_keys(s, false);
    if (ex == EX_OK) {
        if (c->level == 4)
            qc_warn_level4("this message is sent at");
        qc_say(s, "encrypting %zu bytes at Level %d for %zu recipient(s)", in_len, c->level, n);
        qm_err rc = qm_send(&s->me, &s->cfg, c->level, peers, n, in, in_len, false, &res);
        if (rc == QM_E_CONFIG)
            ex = qc_error(EX_USAGE, "%s", s->me.detail);
        else if (rc != QM_OK)
            ex = qc_fail(rc, SIDE_SEAL, s->me.detail);
    }
    if (ex == EX_OK)
        for (size_t i = 0; i < n; i++)
            printf("sent at Level %d to %s\n", c->level, peers[i].address);
    qm_send_result_free(&res);
    qc_wipe_free(in, in_len);
    qm_inner_summary_free(&sum);
    return ex;
}

/* -------------------------------------------------------------- options */

enum opt_id { O_CONFIG = 256, O_LEVEL, O_TO, O_VERBOSE, O_HELP, O_VERSION, O_SHOW_UNVERIFIED,
              O_LISTEN, O_URL_FILE, O_NO_OPEN, O_SESSION_IDLE };

static const struct option long_opts[] = {
    { "config", required_argument, NULL, O_CONFIG },
    { "level", required_argument, NULL, O_LEVEL },
    { "to", required_argument, NULL, O_TO },
    { "verbose", no_argument, NULL, O_VERBOSE },
    { "show-unverified", no_argument, NULL, O_SHOW_UNVERIFIED },
    { "raw", no_argument, NULL, 'r' },
    { "listen", required_argument, NULL, O_LISTEN },
    { "url-file", required_argument, NULL, O_URL_FILE },
    { "no-open", no_argument, NULL, O_NO_OPEN },
    { "session-idle", required_argument, NULL, O_SESSION_IDLE },
    { "help", no_argument, NULL, O_HELP },
    { "version", no_argument, NULL, O_VERSION },
    { NULL, 0, NULL, 0 },
};

/* Handle one option; returns -1 to continue, else an exit code. */
static int handle_option(cli *c, int id, const char *arg)
{
    switch (id) {
    case O_CONFIG: c->config = arg; break;
    case O_LEVEL:
        if (strcmp(arg, "3") == 0)
            return usage_error("Level 3 (post-quantum public-key encryption) is reserved "
                               "and not implemented; use 1, 2 or 4", NULL);
        if (strcmp(arg, "1") != 0 && strcmp(arg, "2") != 0 && strcmp(arg, "4") != 0)
            return usage_error("invalid --level (1, 2 or 4)", arg);
        c->level = arg[0] - '0';
        break;
    case O_TO:
        if (c->n_to == MAX_RECIPIENTS)
            return usage_error("too many --to (at most 16 recipients)", arg);
        c->to[c->n_to++] = arg;
        break;
    case O_VERBOSE: c->verbose = true; break;
    case 'r': c->raw = true; break;
    case O_SHOW_UNVERIFIED: c->show_unverified = true; break;
    case O_LISTEN: c->web.listen = arg; c->web.given = true; break;
    case O_URL_FILE: c->web.url_file = arg; c->web.given = true; break;
    case O_NO_OPEN: c->web.no_open = true; c->web.given = true; break;
    case O_SESSION_IDLE: c->web.session_idle = arg; c->web.given = true; break;
    case O_HELP: fputs(usage_text, stdout); return EX_OK;
    case O_VERSION: printf("qumail (QuMail-C) %s\n", QUMAILC_VERSION); return EX_OK;
    default: return usage_error("unknown option", NULL);
    }
    return -1;
}

static bool is_cmd(const cli *c, const char *name)
{
    return strcmp(c->command, name) == 0;
}

/* The command, its arguments and the options it allows. */
static int check_command(cli *c)
{
    if (!c->command)
        return usage_error("no command given", NULL);
    bool enc = is_cmd(c, "encrypt"), send = is_cmd(c, "send");
    if (!enc && !send && !is_cmd(c, "decrypt") && !is_cmd(c, "inbox") && !is_cmd(c, "read") &&
        !is_cmd(c, "web"))
        return usage_error("unknown command", c->command);
    if (is_cmd(c, "read") && c->nargs != 1)
        return usage_error("read needs one argument: the message number or ID", NULL);
    if (!is_cmd(c, "read") && c->nargs > 0)
        return usage_error("unexpected argument", c->args[0]);
    if ((enc || send) && c->level == 0)
        return usage_error(enc ? "encrypt needs --level 1, 2 or 4"
                               : "send needs --level 1, 2 or 4", NULL);
    if (enc && c->n_to == 0)
        return usage_error("encrypt needs at least one --to ADDR", NULL);
    if (!enc && !send && (c->level || c->n_to))
        return usage_error("--level and --to are only valid with encrypt and send", NULL);
    if (c->show_unverified && !is_cmd(c, "read") && !is_cmd(c, "decrypt"))
        return usage_error("--show-unverified is only valid with read and decrypt", NULL);
    if (c->raw && !is_cmd(c, "read") && !is_cmd(c, "decrypt"))
        return usage_error("--raw is only valid with read and decrypt", NULL);
    if (c->web.given && !is_cmd(c, "web"))
        return usage_error("--listen, --url-file, --no-open and --session-idle are only "
                           "valid with web", NULL);
    return -1;
}

static int parse_args(cli *c, int argc, char **argv)
{
    int id, r;
    opterr = 0;
    while ((id = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        if (id == '?')
            return usage_error("unknown option", argv[optind - 1]);
        if (id == ':')
            return usage_error("option needs an argument", argv[optind - 1]);
        if ((r = handle_option(c, id, optarg)) >= 0)
            return r;
    }
    if (optind < argc) {
        c->command = argv[optind];
        c->args = argv + optind + 1;
        c->nargs = argc - optind - 1;
    }
    return check_command(c);
}

static int run(const cli *c)
{
    qc_session s = {0};
    int ex = session_open(&s, c);
    if (ex == EX_OK) {
        if (is_cmd(c, "encrypt"))
            ex = cmd_encrypt(&s, c);
        else if (is_cmd(c, "decrypt"))
            ex = cmd_decrypt(&s);
        else if (is_cmd(c, "send"))
            ex = cmd_send(&s, c);
        else if (is_cmd(c, "inbox"))
            ex = qc_cmd_inbox(&s);
        else if (is_cmd(c, "web"))
            ex = qc_cmd_web(&s, &c->web);
        else
            ex = qc_cmd_read(&s, c->args[0]);
    }
    session_close(&s);
    return ex;
}

int main(int argc, char **argv)
{
    cli c = {0};
    setvbuf(stdout, stdout_buf, _IOFBF, sizeof stdout_buf);
    if (secret_process_init() != 0 || qkd014_global_init() != QKD014_OK) {
        fprintf(stderr, "qumail: error: cannot initialise\n");
        return EX_INTERNAL;
    }
    int ex = parse_args(&c, argc, argv);
    raw_output = c.raw;
    if (ex < 0)
        ex = run(&c);
    if (fflush(stdout) != 0 && ex == EX_OK)
        ex = qc_error(EX_TRANSPORT, "cannot write output: %s", strerror(errno));
    secret_wipe(stdout_buf, sizeof stdout_buf);
    qkd014_global_cleanup();
    return ex;
}
