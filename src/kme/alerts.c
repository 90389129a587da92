/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alerts.c - the alert command (alerts.h): rate limit, posix_spawn, reaping
 * and the timeout.  Everything runs on the security event writer's thread,
 * so nothing here takes a lock.
 */
#include "kme/alerts.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/monotime.h"

#define MAX_RUNNING 8      /* commands at once; more alarms meanwhile are skipped */
#define MAX_RECENT 64      /* kinds x peers remembered for the rate limit */
#define KEY_MAX 300

typedef struct running_cmd {
    pid_t pid;
    int64_t started_ms;
    char what[KEY_MAX];    /* "pool_low for KME-B", for the log */
} running_cmd;

typedef struct recent_run {
    char key[KEY_MAX];     /* kind '\n' peer */
    int64_t at_ms;
} recent_run;

static struct {
    char *command;
    int64_t timeout_ms, interval_ms;
    running_cmd running[MAX_RUNNING];
    size_t n_running;
    recent_run recent[MAX_RECENT];
    size_t n_recent;
} A;

int alerts_init(const char *command, unsigned timeout_s, unsigned interval_s)
{
    memset(&A, 0, sizeof A);
    A.timeout_ms = (int64_t)(timeout_s ? timeout_s : 10) * 1000;
    A.interval_ms = (int64_t)interval_s * 1000;
    if (!command)
        return 0;
    A.command = strdup(command);
    return A.command ? 0 : -1;
}

bool alerts_running(void)
{
    return A.n_running > 0;
}

/* Within the interval since the last run for this kind and peer?  If not,
 * the run now is recorded. */
static bool rate_limited(const char *kind, const char *peer, int64_t now)
{
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s\n%s", kind, peer ? peer : "");
    size_t oldest = 0;
    for (size_t i = 0; i < A.n_recent; i++) {
        if (strcmp(A.recent[i].key, key) == 0) {
            if (now - A.recent[i].at_ms < A.interval_ms)
                return true;
            A.recent[i].at_ms = now;
            return false;
        }
        if (A.recent[i].at_ms < A.recent[oldest].at_ms)
            oldest = i;
    }
    size_t slot = A.n_recent < MAX_RECENT ? A.n_recent++ : oldest;
    snprintf(A.recent[slot].key, sizeof A.recent[slot].key, "%s", key);
    A.recent[slot].at_ms = now;
    return false;
}

/* posix_spawn's setup: the pipe's read end as stdin, /dev/null as stdout,
 * our stderr (the journal) as stderr, every other descriptor closed; a
 * process group of its own (so that the timeout kills its children too),
 * default signal dispositions, nothing blocked. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int stdin_fd)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (posix_spawn_file_actions_init(fa) != 0)
        return -1;
    if (posix_spawnattr_init(at) != 0) {
        posix_spawn_file_actions_destroy(fa);
        return -1;
    }
    int rc = posix_spawn_file_actions_adddup2(fa, stdin_fd, 0)
        | posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0)
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        | posix_spawn_file_actions_addclosefrom_np(fa, 3)
#endif
        | posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
                                       | POSIX_SPAWN_SETPGROUP)
        | posix_spawnattr_setsigmask(at, &none)
        | posix_spawnattr_setsigdefault(at, &all)
        | posix_spawnattr_setpgroup(at, 0);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(fa);
        posix_spawnattr_destroy(at);
        return -1;
    }
    return 0;
}

/* Start the command with line on its stdin; its pid, or -1 (logged). */
static pid_t spawn_command(const char *kind, const char *line)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        log_error("alert command: no pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    char kind_env[64];
    snprintf(kind_env, sizeof kind_env, "QKD_EVENT_KIND=%s", kind);
    char *argv[] = { A.command, (char *)kind, NULL };
    char *envp[] = { (char *)"PATH=/usr/local/bin:/usr/bin:/bin", (char *)"LC_ALL=C", kind_env, NULL };
    pid_t pid = -1;
    int rc = spawn_setup(&fa, &at, p[0]);
    if (rc == 0) {
        rc = posix_spawn(&pid, A.command, &fa, &at, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
    }
    close(p[0]);
    if (rc != 0) {
        close(p[1]);
        log_error("alert command %s for %s could not start: %s", A.command, kind,
                  strerror(rc > 0 ? rc : ENOMEM));
        return -1;
    }
    /* One event line is far below the pipe's buffer: never blocks.  A
     * command that does not read it gets it all the same. */
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    size_t n = strlen(line);
    ssize_t w = write(p[1], line, n);
    if (w == (ssize_t)n)
        w = write(p[1], "\n", 1);
    if (w < 0)
        log_warn("alert command %s for %s: its stdin took no event: %s", A.command, kind,
                 strerror(errno));
    close(p[1]);
    return pid;
}

void alerts_offer(const char *kind, const char *peer, const char *json_line)
{
    if (!A.command)
        return;
    int64_t now = mono_ms();
    if (rate_limited(kind, peer, now)) {
        log_debug("alert command for %s%s%s: ran less than %lld s ago, not run again", kind,
                  peer ? " of " : "", peer ? peer : "", (long long)(A.interval_ms / 1000));
        return;
    }
    if (A.n_running == MAX_RUNNING) {
        log_warn("alert command for %s: %d commands still running, this alarm gets none",
                 kind, MAX_RUNNING);
        return;
    }
    pid_t pid = spawn_command(kind, json_line);
    if (pid < 0)
        return;
    running_cmd *r = &A.running[A.n_running++];
    r->pid = pid;
    r->started_ms = now;
    snprintf(r->what, sizeof r->what, "%s%s%s", kind, peer ? " of " : "", peer ? peer : "");
    log_info("alert command %s started for %s (pid %ld)", A.command, r->what, (long)pid);
}

static void log_exit(const running_cmd *r, int status, bool timed_out)
{
    if (timed_out)
        log_warn("alert command %s for %s killed: still running after %lld s", A.command,
                 r->what, (long long)(A.timeout_ms / 1000));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        log_info("alert command %s for %s exited with status 0", A.command, r->what);
    else if (WIFEXITED(status))
        log_warn("alert command %s for %s failed: exit status %d", A.command, r->what,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        log_warn("alert command %s for %s failed: killed by signal %d", A.command, r->what,
                 WTERMSIG(status));
}

/* Reap r if it ended; with force, kill it (and its group) first.  True
 * when it is gone. */
static bool reap(running_cmd *r, bool force, bool timed_out)
{
    int status = 0;
    if (force) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
            ;
        log_exit(r, status, timed_out);
        return true;
    }
    pid_t w = waitpid(r->pid, &status, WNOHANG);
    if (w == 0)
        return false;
    if (w == r->pid)
        log_exit(r, status, false);
    return true; /* ended, or not our child any more */
}

void alerts_poll(void)
{
    int64_t now = mono_ms();
    for (size_t i = 0; i < A.n_running;) {
        running_cmd *r = &A.running[i];
        bool late = now - r->started_ms >= A.timeout_ms;
        if (reap(r, late, late))
            A.running[i] = A.running[--A.n_running];
        else
            i++;
    }
}

void alerts_shutdown(void)
{
    int64_t end = mono_ms() + 1000;
    while (A.n_running > 0 && mono_ms() < end) {
        alerts_poll();
        if (A.n_running > 0)
            usleep(20000);
    }
    for (size_t i = 0; i < A.n_running; i++)
        reap(&A.running[i], true, true);
    A.n_running = 0;
    free(A.command);
    A.command = NULL;
}
