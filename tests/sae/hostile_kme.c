/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_kme.c - the hostile HTTPS "KME" of hostile_server.c as a program,
 * for the qkd014 command-line tests: answers every request with one canned
 * answer until SIGTERM or SIGINT.
 *
 *   hostile_kme CERT KEY PORT_FILE STATUS CONTENT_TYPE BODY
 *
 * CONTENT_TYPE "-" sends no Content-Type.  The port goes into PORT_FILE
 * once the server listens.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostile_server.h"

int main(int argc, char **argv)
{
    char err[512];
    sigset_t set;
    int sig;
    if (argc != 7) {
        fprintf(stderr, "usage: hostile_kme CERT KEY PORT_FILE STATUS CONTENT_TYPE BODY\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the server thread inherits it */
    hostile_server *s = hostile_start(argv[1], argv[2], err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "hostile_kme: %s\n", err);
        return 1;
    }
    hostile_answer(s, H_CANNED, atoi(argv[4]),
                   strcmp(argv[5], "-") ? argv[5] : NULL, argv[6]);
    FILE *f = fopen(argv[3], "w");
    if (f == NULL || fprintf(f, "%d\n", hostile_port(s)) < 0 || fclose(f) != 0) {
        fprintf(stderr, "hostile_kme: cannot write %s\n", argv[3]);
        hostile_stop(s);
        return 1;
    }
    sigwait(&set, &sig);
    hostile_stop(s);
    return 0;
}
