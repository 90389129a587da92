/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sdnotify.h - systemd's notification protocol (sd_notify(3)) without
 * libsystemd: one datagram of "KEY=VALUE" lines to the AF_UNIX socket named
 * by $NOTIFY_SOCKET (a path, or an abstract name written with a leading
 * '@').  qkd-kme and qkd-link send READY=1 once every listener accepts,
 * STATUS= lines, WATCHDOG=1 pings and STOPPING=1 (etc/systemd/).
 *
 * Outside systemd (no NOTIFY_SOCKET) every call does nothing.
 */
#ifndef QC_SDNOTIFY_H
#define QC_SDNOTIFY_H

#include <stdint.h>

/* Send state ("READY=1\nSTATUS=serving"): 1 sent, 0 no NOTIFY_SOCKET,
 * -1 a bad NOTIFY_SOCKET or a failed send (errno set). */
int sdnotify_send(const char *state);

/* printf-style sdnotify_send (the message is cut at 1 KiB). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int sdnotify_sendf(const char *fmt, ...);

/* The watchdog interval in microseconds asked for by $WATCHDOG_USEC when
 * it is meant for this process ($WATCHDOG_PID absent or our pid), else 0.
 * Ping with "WATCHDOG=1" at half of it. */
uint64_t sdnotify_watchdog_usec(void);

#endif
