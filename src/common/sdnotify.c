/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sdnotify.c - sd_notify's datagram protocol (sdnotify.h).  A socket per
 * message (SOCK_CLOEXEC: never inherited by a child), sent without
 * blocking; a full receiver loses the message rather than stall the
 * daemon's main loop.
 */
#include "common/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The address of $NOTIFY_SOCKET: a path ("/run/systemd/notify") or an
 * abstract name ("@name": a leading NUL byte instead of '@').  Its length,
 * or 0 when the variable is not usable. */
static socklen_t notify_address(const char *name, struct sockaddr_un *sa)
{
    size_t n = strlen(name);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n < 2 || n > sizeof sa->sun_path || (name[0] != '/' && name[0] != '@'))
        return 0;
    if (name[0] == '/' && n == sizeof sa->sun_path)
        return 0; /* a path needs its NUL */
    memcpy(sa->sun_path, name, n);
    if (name[0] == '@')
        sa->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
}

int sdnotify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return 0;
    struct sockaddr_un sa;
    socklen_t len = notify_address(name, &sa);
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return w == (ssize_t)strlen(state) ? 1 : -1;
}

int sdnotify_sendf(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sdnotify_send(msg);
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

uint64_t sdnotify_watchdog_usec(void)
{
    uint64_t usec = 0, pid = 0;
    if (parse_u64(getenv("WATCHDOG_USEC"), &usec) != 0 || usec == 0)
        return 0;
    const char *p = getenv("WATCHDOG_PID");
    if (p && (parse_u64(p, &pid) != 0 || pid != (uint64_t)getpid()))
        return 0;
    return usec;
}
