/* SPDX-License-Identifier: Apache-2.0 */
/*
 * monotime.h - the monotonic clock in milliseconds, and condition variables
 * that wait against it.  Every deadline in the project (HTTPS calls, peer
 * reservations, the replay thread, the link's feeding, name resolution) is
 * a point on CLOCK_MONOTONIC in ms, so that a change of the wall clock
 * never shortens or stretches a timeout.
 */
#ifndef QC_MONOTIME_H
#define QC_MONOTIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Now, in ms on CLOCK_MONOTONIC. */
static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The point at_ms (as mono_ms counts) for pthread_cond_timedwait on a
 * condition variable made by mono_cond_init. */
static inline struct timespec mono_timespec(int64_t at_ms)
{
    struct timespec ts = { .tv_sec = (time_t)(at_ms / 1000),
                           .tv_nsec = (long)(at_ms % 1000) * 1000000L };
    return ts;
}

/* A condition variable whose timed waits count on CLOCK_MONOTONIC. */
static inline int mono_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

#endif
