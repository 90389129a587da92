/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alerts.h - the alert command ([alerts] command = PATH): run for alarm
 * events (pool exhausted or low, QBER alarm, peer down) with the event's
 * JSON line on its standard input.
 *
 * Only the security event writer (events.c) calls these, from its one
 * thread: a request never waits for a command.  Each run is rate-limited
 * to one per kind and peer per interval; a command still running after the
 * timeout is killed (its whole process group); its exit status is logged
 * and a failure is never fatal.  The command is started with posix_spawn:
 * a minimal environment, no descriptor of the daemon but its standard
 * error, the default signal dispositions and an empty signal mask.
 */
#ifndef QC_KME_ALERTS_H
#define QC_KME_ALERTS_H

#include <stdbool.h>
#include <stddef.h>

/* command (checked by the configuration: an absolute path to an
 * executable), or NULL: alerts off (alerts_offer does nothing).  0, or -1 when out
 * of memory. */
int alerts_init(const char *command, unsigned timeout_s, unsigned interval_s);

/* An alarm: run the command with json_line on stdin unless one ran for
 * this kind and peer (NULL: none) within the interval. */
void alerts_offer(const char *kind, const char *peer, const char *json_line);

/* Is a command still running (the writer then polls more often)? */
bool alerts_running(void);

/* Reap the commands that ended, kill those past the timeout; log each. */
void alerts_poll(void);

/* Give running commands a second, kill the rest, release everything. */
void alerts_shutdown(void);

#endif
