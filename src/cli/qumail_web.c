/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail_web.c - the `web` command of qumail: the local web client
 * (src/web/, docs/web.md) for the configured account.
 *
 *   qumail [--config FILE] web [--listen 127.0.0.1:PORT] [--url-file FILE]
 *                              [--no-open] [--session-idle SECONDS]
 *
 * Listens on loopback only (anything but 127.0.0.1 or localhost is refused,
 * exit 2), prints the one URL to open on stdout (it holds the start token)
 * and, with --url-file, writes it to FILE (mode 0600, atomically: a
 * temporary file renamed into place), removed again at exit since the token
 * dies with the server.  Never starts a browser itself: its command line
 * would show the token to every local user (ps); --no-open says so for
 * scripts.  Runs until SIGINT or SIGTERM, then stops cleanly (exit 0).
 */
#include "qumail.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/secret.h"
#include "web/server.h"

#define DEFAULT_IDLE_S 3600        /* an hour unused ends a session */
#define MAX_SESSION_S (12 * 3600)  /* and no session lives longer */

/* "127.0.0.1:PORT" or "localhost:PORT" (PORT 0 = any free one); -1 if not. */
static long parse_listen(const char *s)
{
    const char *port;
    if (strncmp(s, "127.0.0.1:", 10) == 0)
        port = s + 10;
    else if (strncmp(s, "localhost:", 10) == 0)
        port = s + 10;
    else
        return -1;
    if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
        return -1;
    long n = strtol(port, NULL, 10);
    return n <= 65535 ? n : -1;
}

/* Decimal seconds in 1..MAX_SESSION_S; -1 if not. */
static long parse_seconds(const char *s)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 6)
        return -1;
    long n = strtol(s, NULL, 10);
    return n >= 1 && n <= MAX_SESSION_S ? n : -1;
}

/* url and a newline into path, atomically, mode 0600. */
static int write_url_file(const char *path, const char *url)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return qc_error(EX_USAGE, "--url-file: path too long");
    int fd = mkstemp(tmp);   /* mode 0600 */
    if (fd < 0)
        return qc_error(EX_TRANSPORT, "--url-file %s: %s", path, strerror(errno));
    size_t len = strlen(url);
    int bad = fd_write_all(fd, url, len) != 0 || fd_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad)
        bad = 1, saved = errno;
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            saved = errno;
        unlink(tmp);
        return qc_error(EX_TRANSPORT, "--url-file %s: %s", path, strerror(saved));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    fsync_dir(slash ? dir : ".");
    return EX_OK;
}

/* Block SIGINT and SIGTERM in every thread (the server's inherits the
 * mask), to be taken by sigwait. */
static void block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int qc_cmd_web(qc_session *s, const qc_web_opts *o)
{
    long port = parse_listen(o->listen ? o->listen : "127.0.0.1:0");
    if (port < 0)
        return qc_error(EX_USAGE, "--listen %s: only 127.0.0.1:PORT or localhost:PORT "
                        "(loopback) is allowed", o->listen);
    long idle = o->session_idle ? parse_seconds(o->session_idle) : DEFAULT_IDLE_S;
    if (idle < 0)
        return qc_error(EX_USAGE, "--session-idle %s: seconds from 1 to %d", o->session_idle,
                        MAX_SESSION_S);
    /* the client (it connects on first use) and the used-key store: the Read page
     * decrypts as `qumail read` does */
    int ex = qc_session_keys(s, true);
    if (ex != EX_OK)
        return ex;
    sigset_t stop;
    block_stop_signals(&stop);
    char err[256], url[128];
    web_server_opts wo = { .port = (uint16_t)port, .account = s->cfg.address, .cfg = &s->cfg,
                           .idle_s = (unsigned)idle, .max_s = MAX_SESSION_S, .kme = s->kme,
                           .reader = &s->me };
    web_server *w = web_server_start(&wo, err, sizeof err);
    if (!w)
        return qc_error(EX_TRANSPORT, "web: %s", err);
    ex = web_server_url(w, url, sizeof url) == 0 ? EX_OK : EX_INTERNAL;
    if (ex == EX_OK && o->url_file)
        ex = write_url_file(o->url_file, url);
    if (ex == EX_OK) {
        printf("%s\n", url);
        if (fflush(stdout) != 0)
            ex = qc_error(EX_TRANSPORT, "cannot write the URL: %s", strerror(errno));
    }
    if (ex == EX_OK) {
        qc_line("qumail: ", "web: %s on http://127.0.0.1:%u/ (SIGINT or SIGTERM stops it)",
                s->cfg.address, (unsigned)web_server_port(w));
        int sig = 0;
        sigwait(&stop, &sig);
        qc_line("qumail: ", "web: stopped by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        if (o->url_file)
            unlink(o->url_file);
    }
    web_server_stop(w);
    secret_wipe(url, sizeof url);
    return ex;
}
