/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resolve.c - getaddrinfo with a time bound (see resolve.h).
 *
 * One lookup = one job shared by the caller and a detached thread, with a
 * reference each: whoever lets go last frees it (and the answer, if the
 * caller gave up before it came).
 */
#include "common/resolve.h"

#include "common/monotime.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    char *host, *port;
    struct addrinfo hints;
    struct addrinfo *res;
    int rc, err; /* getaddrinfo's result and errno */
} job;

static void job_free(job *j)
{
    if (j->res != NULL)
        freeaddrinfo(j->res);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->host);
    free(j->port);
    free(j);
}

/* Drop one reference (the caller holds j->mu); frees the job on the last. */
static void job_release(job *j)
{
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last)
        job_free(j);
}

static void *lookup(void *arg)
{
    job *j = arg;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, j->port, &j->hints, &res);
    int err = errno;
    pthread_mutex_lock(&j->mu);
    j->res = rc == 0 ? res : NULL;
    j->rc = rc;
    j->err = err;
    j->done = true;
    pthread_cond_signal(&j->cv);
    job_release(j);
    return NULL;
}

static job *job_new(const char *host, const char *port, const struct addrinfo *hints)
{
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    mono_cond_init(&j->cv);
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 2;
    j->hints = *hints;
    j->host = strdup(host);
    j->port = port != NULL ? strdup(port) : NULL;
    if (j->host == NULL || (port != NULL && j->port == NULL)) {
        job_free(j);
        return NULL;
    }
    return j;
}

static bool start_thread(job *j)
{
    pthread_attr_t at;
    pthread_t th;
    if (pthread_attr_init(&at) != 0)
        return false;
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    bool ok = pthread_create(&th, &at, lookup, j) == 0;
    pthread_attr_destroy(&at);
    return ok;
}

int resolve_within(const char *host, const char *port, const struct addrinfo *hints,
                   long timeout_ms, struct addrinfo **res, bool *timed_out)
{
    *res = NULL;
    *timed_out = false;
    if (hints->ai_flags & AI_NUMERICHOST) /* no lookup: nothing to wait for */
        return getaddrinfo(host, port, hints, res);
    job *j = job_new(host, port, hints);
    if (j == NULL)
        return EAI_MEMORY;
    if (!start_thread(j)) {
        job_free(j);
        return EAI_AGAIN; /* as getaddrinfo says of a temporary shortage */
    }
    struct timespec until = mono_timespec(mono_ms() + (timeout_ms > 0 ? timeout_ms : 0));
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
            break;
    int rc = EAI_AGAIN, err = 0;
    if (j->done) {
        rc = j->rc;
        err = j->err;
        *res = j->res;
        j->res = NULL;
    } else {
        *timed_out = true;
    }
    job_release(j);
    if (rc == EAI_SYSTEM)
        errno = err;
    return rc;
}
