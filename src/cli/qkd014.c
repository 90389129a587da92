/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qkd014.c - the qkd014 command: an SAE's side of ETSI GS QKD 014 from the
 * shell, on top of libqkd014.
 *
 *   qkd014 [connection options] status   SLAVE_SAE_ID
 *   qkd014 [connection options] enc-keys SLAVE_SAE_ID [--number N] [--size BITS]
 *          [--additional-slave ID ...] [--extension-mandatory JSON]
 *          [--extension-optional JSON] [--key-file FILE]
 *   qkd014 [connection options] dec-keys MASTER_SAE_ID KEY_ID... [--key-file FILE]
 *
 * Answers are printed as JSON in the KME's own format.  With --key-file the
 * key bytes go raw into a 0600 file and stdout shows only key IDs and sizes.
 * Base64 key text is built in buffers that are wiped after use, and stdout
 * runs on a buffer of our own that is wiped at exit.  Exit codes:
 * qkd014_exit.h.
 *
 * The expected KME ID is required (--kme-id or QKD014_KME_ID): every KME
 * certificate of one CA is valid for the CA's clients, and the testbed's all
 * name localhost, so the chain and the host name alone would let another KME
 * (or a KME at the wrong port) stand in for ours.  The status answer cannot
 * stand in for it either: it comes from the same server.  --any-kme is the
 * explicit way to skip the check (diagnostics).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "qkd014.h"
#include "common/base64.h"
#include "common/fdio.h"
#include "common/secret.h"
#include "qkd014_exit.h"

enum opt_id {
    O_KME = 256, O_CERT, O_KEY, O_CA, O_KME_ID, O_TIMEOUT, O_NUMBER, O_SIZE,
    O_ADDITIONAL, O_EXT_MAN, O_EXT_OPT, O_KEY_FILE, O_VERBOSE, O_HELP,
    O_VERSION, O_ANY_KME,
};

typedef struct cli {
    qkd014_options o;
    long timeout_ms;
    qkd014_key_request req;
    const char **additional;
    bool enc_only_used; /* an enc-keys option was given */
    const char *key_file;
    bool verbose;
    bool any_kme;       /* --any-kme: no KME ID check */
    bool kme_id_given;  /* --kme-id on the command line */
    const char *command;
    char **args; /* positional arguments after the command */
    int nargs;
} cli;

static char stdout_buf[65536]; /* wiped at exit: it held base64 keys */

static const char usage_text[] =
    "usage: qkd014 [OPTIONS] status SLAVE_SAE_ID\n"
    "       qkd014 [OPTIONS] enc-keys SLAVE_SAE_ID [--number N] [--size BITS]\n"
    "              [--additional-slave ID ...] [--extension-mandatory JSON]\n"
    "              [--extension-optional JSON] [--key-file FILE]\n"
    "       qkd014 [OPTIONS] dec-keys MASTER_SAE_ID KEY_ID [KEY_ID ...]"
    " [--key-file FILE]\n"
    "\n"
    "ETSI GS QKD 014 client: ask a KME for status, keys (enc_keys, as master\n"
    "SAE) or keys by ID (dec_keys, as slave SAE).  Options may appear anywhere.\n"
    "\n"
    "connection (also from the environment: QKD014_KME, QKD014_CERT,\n"
    "QKD014_KEY, QKD014_CA, QKD014_KME_ID; the command line wins):\n"
    "  --kme URL            KME base URL, https://host[:port]\n"
    "  --cert FILE          SAE client certificate (PEM)\n"
    "  --key FILE           its private key (PEM)\n"
    "  --ca FILE            CA that signs the KME certificate (PEM)\n"
    "  --kme-id ID          the KME's ID: a KME whose certificate CN is not ID\n"
    "                       is refused (exit 8); required, or QKD014_KME_ID\n"
    "  --any-kme            accept any KME certificate the CA signed (no ID\n"
    "                       check; for diagnostics only)\n"
    "  --timeout MS         whole-call timeout in milliseconds (default 10000)\n"
    "enc-keys:\n"
    "  --number N           number of keys (KME default 1)\n"
    "  --size BITS          key size in bits (KME default key_size)\n"
    "  --additional-slave ID  another slave SAE sharing the keys (repeatable)\n"
    "  --extension-mandatory JSON, --extension-optional JSON\n"
    "                       JSON arrays of objects, sent as they are\n"
    "enc-keys, dec-keys:\n"
    "  --key-file FILE      write the key bytes (concatenated, in order) to\n"
    "                       FILE (mode 0600); stdout shows IDs and sizes only\n"
    "other:\n"
    "  --verbose            print the KME ID that was connected to on stderr\n"
    "  --help, --version\n"
    "\n"
    "exit status: 0 ok, 1 other failure, 2 usage, 3 transport, 4 TLS or\n"
    "unauthorized (401), 5 bad request (400), 6 keys unavailable or KME trouble\n"
    "(503 or another HTTP status), 7 malformed answer from the KME, 8 the KME's\n"
    "certificate names another KME than --kme-id\n";

static int usage_error(const char *msg, const char *arg)
{
    if (arg != NULL)
        fprintf(stderr, "qkd014: %s: %s\n", msg, arg);
    else
        fprintf(stderr, "qkd014: %s\n", msg);
    fprintf(stderr, "Try 'qkd014 --help'.\n");
    return QKD014_EXIT_USAGE;
}

/* Strict decimal integer in [lo, hi]; 0 ok, -1 otherwise. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int push_additional(cli *c, const char *id)
{
    const char **a = realloc(c->additional,
                             (c->req.n_additional + 1) * sizeof *a);
    if (a == NULL)
        return -1;
    a[c->req.n_additional++] = id;
    c->additional = a;
    c->req.additional_slaves = a;
    return 0;
}

/* Handle one option; returns -1 to continue, else an exit code. */
static int handle_option(cli *c, int id, const char *arg)
{
    long v;
    switch (id) {
    case O_KME: c->o.kme_url = arg; break;
    case O_CERT: c->o.cert_file = arg; break;
    case O_KEY: c->o.key_file = arg; break;
    case O_CA: c->o.ca_file = arg; break;
    case O_KME_ID: c->o.expected_kme_id = arg; c->kme_id_given = true; break;
    case O_TIMEOUT:
        if (parse_long(arg, 1, 86400000L, &v) != 0)
            return usage_error("invalid --timeout (milliseconds)", arg);
        c->timeout_ms = v;
        break;
    case O_NUMBER:
    case O_SIZE:
        if (parse_long(arg, 1, INT32_MAX, &v) != 0)
            return usage_error(id == O_NUMBER ? "invalid --number"
                                              : "invalid --size", arg);
        *(id == O_NUMBER ? &c->req.number : &c->req.size) = (int32_t)v;
        c->enc_only_used = true;
        break;
    case O_ADDITIONAL:
        if (push_additional(c, arg) != 0)
            return QKD014_EXIT_OTHER;
        c->enc_only_used = true;
        break;
    case O_EXT_MAN: c->req.extension_mandatory_json = arg; c->enc_only_used = true; break;
    case O_EXT_OPT: c->req.extension_optional_json = arg; c->enc_only_used = true; break;
    case O_KEY_FILE: c->key_file = arg; break;
    case O_VERBOSE: c->verbose = true; break;
    case O_ANY_KME: c->any_kme = true; break;
    case O_HELP: fputs(usage_text, stdout); return QKD014_EXIT_OK;
    case O_VERSION: printf("qkd014 (QuMail-C) %s\n", QUMAILC_VERSION); return QKD014_EXIT_OK;
    default: return usage_error("unknown option", NULL);
    }
    return -1;
}

static const struct option long_opts[] = {
    { "kme", required_argument, NULL, O_KME },
    { "cert", required_argument, NULL, O_CERT },
    { "key", required_argument, NULL, O_KEY },
    { "ca", required_argument, NULL, O_CA },
    { "kme-id", required_argument, NULL, O_KME_ID },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "number", required_argument, NULL, O_NUMBER },
    { "size", required_argument, NULL, O_SIZE },
    { "additional-slave", required_argument, NULL, O_ADDITIONAL },
    { "extension-mandatory", required_argument, NULL, O_EXT_MAN },
    { "extension-optional", required_argument, NULL, O_EXT_OPT },
    { "key-file", required_argument, NULL, O_KEY_FILE },
    { "verbose", no_argument, NULL, O_VERBOSE },
    { "any-kme", no_argument, NULL, O_ANY_KME },
    { "help", no_argument, NULL, O_HELP },
    { "version", no_argument, NULL, O_VERSION },
    { NULL, 0, NULL, 0 },
};

static void env_default(const char **field, const char *name)
{
    const char *v = getenv(name);
    if (*field == NULL && v != NULL && *v != '\0')
        *field = v;
}

/* Check the command and its positional arguments. */
static int check_command(cli *c)
{
    if (c->command == NULL)
        return usage_error("no command given", NULL);
    bool st = strcmp(c->command, "status") == 0;
    bool enc = strcmp(c->command, "enc-keys") == 0;
    bool dec = strcmp(c->command, "dec-keys") == 0;
    if (!st && !enc && !dec)
        return usage_error("unknown command", c->command);
    if (c->nargs < 1)
        return usage_error(dec ? "dec-keys needs MASTER_SAE_ID and key IDs"
                               : "missing SLAVE_SAE_ID", NULL);
    if ((st || enc) && c->nargs > 1)
        return usage_error("unexpected argument", c->args[1]);
    if (dec && c->nargs < 2)
        return usage_error("dec-keys needs at least one KEY_ID", NULL);
    if (!enc && c->enc_only_used)
        return usage_error("option only valid with enc-keys", NULL);
    if (st && c->key_file != NULL)
        return usage_error("--key-file is not valid with status", NULL);
    return -1;
}

/* Which KME we mean to talk to must be said, or its check waived. */
static int check_kme_id(cli *c)
{
    if (c->any_kme && c->kme_id_given)
        return usage_error("--any-kme and --kme-id contradict each other", NULL);
    if (c->any_kme) {
        c->o.expected_kme_id = NULL; /* also one from QKD014_KME_ID */
        return -1;
    }
    if (c->o.expected_kme_id == NULL)
        return usage_error("no KME ID to check the KME's certificate against: give --kme-id ID "
                           "or QKD014_KME_ID (--any-kme skips the check)", NULL);
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
    env_default(&c->o.kme_url, "QKD014_KME");
    env_default(&c->o.cert_file, "QKD014_CERT");
    env_default(&c->o.key_file, "QKD014_KEY");
    env_default(&c->o.ca_file, "QKD014_CA");
    env_default(&c->o.expected_kme_id, "QKD014_KME_ID");
    c->o.timeout_ms = c->timeout_ms;
    r = check_command(c);
    return r >= 0 ? r : check_kme_id(c);
}

static int exit_code(qkd014_code rc)
{
    switch (rc) {
    case QKD014_OK: return QKD014_EXIT_OK;
    case QKD014_E_USAGE: return QKD014_EXIT_USAGE;
    case QKD014_E_TRANSPORT: return QKD014_EXIT_TRANSPORT;
    case QKD014_E_TLS: case QKD014_E_UNAUTHORIZED: return QKD014_EXIT_AUTH;
    case QKD014_E_BAD_REQUEST: return QKD014_EXIT_BADREQ;
    case QKD014_E_UNAVAILABLE: case QKD014_E_HTTP: return QKD014_EXIT_UNAVAIL;
    case QKD014_E_MALFORMED: return QKD014_EXIT_MALFORMED;
    case QKD014_E_NOMEM: case QKD014_E_VERSION: return QKD014_EXIT_OTHER;
    }
    return QKD014_EXIT_OTHER;
}

/* ---------------------------------------------------------------- output */

static int print_status(const qkd014_status *s)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
        "source_KME_ID", s->source_kme_id, "target_KME_ID", s->target_kme_id,
        "master_SAE_ID", s->master_sae_id, "slave_SAE_ID", s->slave_sae_id,
        "key_size", (int)s->key_size, "stored_key_count", (int)s->stored_key_count,
        "max_key_count", (int)s->max_key_count,
        "max_key_per_request", (int)s->max_key_per_request,
        "max_key_size", (int)s->max_key_size, "min_key_size", (int)s->min_key_size,
        "max_SAE_ID_count", (int)s->max_sae_id_count);
    if (o == NULL)
        return -1;
    int r = json_dumpf(o, stdout, JSON_INDENT(2));
    json_decref(o);
    return (r == 0 && putchar('\n') != EOF) ? 0 : -1;
}

/* One key entry: base64 of the key (in a wiped buffer), or its size. */
static int print_key(const qkd014_key *k, bool with_key, bool last)
{
    printf("    {\n      \"key_ID\": \"%s\",\n", k->key_id);
    if (!with_key) {
        printf("      \"size\": %zu\n    }%s\n", k->key_len * 8, last ? "" : ",");
        return 0;
    }
    size_t n = b64_encoded_len(k->key_len) + 1;
    char *b = malloc(n);
    if (b == NULL)
        return -1;
    b64_encode(k->key, k->key_len, b);
    printf("      \"key\": \"%s\"\n    }%s\n", b, last ? "" : ",");
    secret_wipe(b, n);
    free(b);
    return 0;
}

static int print_keys(const qkd014_keys *k, bool with_key)
{
    printf("{\n  \"keys\": [\n");
    for (size_t i = 0; i < k->n; i++)
        if (print_key(&k->keys[i], with_key, i + 1 == k->n) != 0)
            return -1;
    printf("  ]\n}\n");
    return 0;
}

/* ------------------------------------------------------------- key file */

typedef struct key_file {
    const char *path;
    int fd;
    bool created;
} key_file;

/* Open (creating if needed) before the request, so a bad path costs no key. */
static int key_file_open(key_file *f)
{
    f->created = false;
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd >= 0)
        f->created = true;
    else if (errno == EEXIST)
        f->fd = open(f->path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (f->fd < 0 || fchmod(f->fd, 0600) != 0) {
        fprintf(stderr, "qkd014: key file %s: %s\n", f->path, strerror(errno));
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1;
        return -1;
    }
    return 0;
}

static int key_file_write(key_file *f, const qkd014_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        if (fd_write_all(f->fd, k->keys[i].key, k->keys[i].key_len) != 0)
            goto fail;
    if (fsync(f->fd) != 0)
        goto fail;
    int r = close(f->fd);
    f->fd = -1;
    if (r == 0)
        return 0;
fail:
    fprintf(stderr, "qkd014: key file %s: %s\n", f->path, strerror(errno));
    return -1;
}

/* Close and, if this run created it, remove the file (the request failed). */
static void key_file_abandon(key_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->created)
        unlink(f->path);
}

/* -------------------------------------------------------------- commands */

static int report(cli *c, qkd014_client *qc, qkd014_code rc)
{
    /* libqkd014 refuses another KME as a TLS failure, having noted the ID
     * the certificate named: tell that case apart, it is not a broken
     * connection but possibly the wrong (or a hostile) KME */
    const char *seen = qkd014_peer_kme_id(qc);
    if (rc == QKD014_E_TLS && c->o.expected_kme_id != NULL && seen != NULL
        && strcmp(seen, c->o.expected_kme_id) != 0) {
        fprintf(stderr, "qkd014: wrong KME: the server at %s presents the certificate of KME %s, "
                "expected %s; nothing was sent\n", c->o.kme_url, seen, c->o.expected_kme_id);
        return QKD014_EXIT_KME_ID;
    }
    fprintf(stderr, "qkd014: %s: %s\n", qkd014_strerror(rc), qkd014_errmsg(qc));
    return exit_code(rc);
}

static int cmd_status(cli *c, qkd014_client *qc)
{
    qkd014_status *s;
    qkd014_code rc = qkd014_get_status(qc, c->args[0], &s);
    if (rc != QKD014_OK)
        return report(c, qc, rc);
    int r = print_status(s);
    qkd014_status_free(s);
    return r == 0 ? QKD014_EXIT_OK : QKD014_EXIT_OTHER;
}

static int cmd_keys(cli *c, qkd014_client *qc, bool enc)
{
    key_file f = { .path = c->key_file, .fd = -1 };
    if (c->key_file != NULL && key_file_open(&f) != 0)
        return QKD014_EXIT_OTHER;
    qkd014_keys *k;
    qkd014_code rc = enc ? qkd014_get_key(qc, c->args[0], &c->req, &k)
                         : qkd014_get_key_with_ids(qc, c->args[0],
                                                   (const char *const *)c->args + 1,
                                                   (size_t)c->nargs - 1, &k);
    if (rc != QKD014_OK) {
        key_file_abandon(&f);
        return report(c, qc, rc);
    }
    int r = 0;
    if (c->key_file != NULL && key_file_write(&f, k) != 0) {
        key_file_abandon(&f);
        r = -1;
    }
    if (r == 0)
        r = print_keys(k, c->key_file == NULL);
    qkd014_keys_free(k);
    return r == 0 ? QKD014_EXIT_OK : QKD014_EXIT_OTHER;
}

static int run(cli *c)
{
    char err[512];
    qkd014_client *qc;
    qkd014_code rc = qkd014_options_check(&c->o, err, sizeof err);
    if (rc != QKD014_OK)
        return usage_error(err, NULL);
    if ((rc = qkd014_client_new(&c->o, &qc)) != QKD014_OK) {
        fprintf(stderr, "qkd014: %s\n", qkd014_strerror(rc));
        return exit_code(rc);
    }
    int ex;
    if (strcmp(c->command, "status") == 0)
        ex = cmd_status(c, qc);
    else
        ex = cmd_keys(c, qc, strcmp(c->command, "enc-keys") == 0);
    if (c->verbose && qkd014_peer_kme_id(qc) != NULL)
        fprintf(stderr, "connected to KME %s\n", qkd014_peer_kme_id(qc));
    qkd014_client_free(qc);
    return ex;
}

int main(int argc, char **argv)
{
    cli c = { .o = QKD014_OPTIONS_INIT, .req = QKD014_KEY_REQUEST_INIT };
    setvbuf(stdout, stdout_buf, _IOFBF, sizeof stdout_buf);
    if (secret_process_init() != 0 || qkd014_global_init() != QKD014_OK) {
        fprintf(stderr, "qkd014: cannot initialise\n");
        return QKD014_EXIT_OTHER;
    }
    int ex = parse_args(&c, argc, argv);
    if (ex < 0)
        ex = run(&c);
    if (fflush(stdout) != 0 && ex == QKD014_EXIT_OK) {
        fprintf(stderr, "qkd014: cannot write output: %s\n", strerror(errno));
        ex = QKD014_EXIT_OTHER;
    }
    secret_wipe(stdout_buf, sizeof stdout_buf);
    free(c.additional);
    qkd014_global_cleanup();
    return ex;
}
