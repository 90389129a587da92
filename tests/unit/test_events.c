/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_events.c - the security event writer of qkd-kme (src/kme/events.c,
 * alerts.c): the JSON lines of the audit log, the safe opening of its file,
 * reopening after a rotation, and the alert command's contract.
 *
 * The attacks: certificate CNs and SAE IDs with quotes, newlines, control
 * bytes, invalid UTF-8 and characters past U+FFFF must stay one line of
 * valid JSON in printable ASCII; an audit log path that is a symbolic link,
 * a directory, a file of another user or one others can read is refused;
 * an alert command that hangs is killed and never delays the emitter.
 * Deadlines poll with slack, never a fixed sleep as the assertion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kme/events.h"

static char dir[256];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Deadlines: 5 s, three times that under a sanitizer. */
static long deadline_ms(void)
{
    const char *san = getenv("QC_SANITIZED");
    return san && strcmp(san, "1") == 0 ? 15000 : 5000;
}

static char *path_in(const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

/* The lines of a file (at most max), each parsed; returns how many. */
static size_t read_lines(const char *path, json_t **out, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        assert_true(len > 0 && line[len - 1] == '\n');
        for (size_t i = 0; i + 1 < len; i++) /* printable ASCII only */
            assert_true(line[i] >= 0x20 && line[i] < 0x7f);
        json_error_t e;
        out[n] = json_loads(line, 0, &e);
        if (!out[n])
            fail_msg("line %zu of %s is not JSON (%s): %s", n + 1, path, e.text, line);
        n++;
    }
    fclose(f);
    return n;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

static void wait_lines(const char *path, size_t want)
{
    long end = now_ms() + deadline_ms();
    while (count_lines(path) < want) {
        if (now_ms() > end)
            fail_msg("%s has %zu lines, not %zu, after %ld ms", path, count_lines(path), want,
                     deadline_ms());
        pause_ms(10);
    }
}

static const char *str_of(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- JSON lines ---------------------------------------------------------- */

static void test_hostile_strings_stay_one_line(void **state)
{
    (void)state;
    static const char cn[] = "evil\"}\n{\"kind\":\"forged\"}\r\\\x01\x1b[31m\x7f";
    static const char bad_utf8[] = "a\xff\xc0\xafz\xed\xa0\x80!\xe2\x82";
    static const char good_utf8[] = "caf\xc3\xa9 \xf0\x9f\x94\x91 \xe2\x80\xa8";
    event_fields f = { .listener = "sae_api", .reason = "not signed by a CA this listener trusts",
                       .cert_cn = cn, .sae_id = bad_utf8, .master = good_utf8,
                       .set = EVF_KEYS | EVF_QBER, .keys = 3, .qber = 0.125 };
    char *line = events_format(EV_UNAUTHORIZED, &f, "KME-\"A\"", 1796601600123LL);
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    for (const char *p = line; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    if (!o)
        fail_msg("not JSON (%s): %s", e.text, line);
    assert_string_equal(str_of(o, "kind"), "unauthorized");
    assert_string_equal(str_of(o, "cert_cn"), cn);              /* exactly, once decoded */
    assert_string_equal(str_of(o, "sae_id"), "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str_of(o, "master_sae_id"), good_utf8);
    assert_string_equal(str_of(o, "kme"), "KME-\"A\"");
    assert_string_equal(str_of(o, "time"), "2026-12-07T00:00:00.123Z");
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 3);
    assert_true(json_real_value(json_object_get(o, "qber")) == 0.125);
    assert_null(json_object_get(o, "bits")); /* not set: left out */
    assert_null(json_object_get(o, "peer"));
    assert_null(json_object_get(o, "forged"));
    json_decref(o);
    free(line);
}

static void test_kind_names_and_alarms(void **state)
{
    (void)state;
    static const char *const want[] = { "unauthorized", "not_a_slave", "pool_exhausted",
        "pool_low", "pool_ok", "rate_limited", "qber_alarm", "qber_cleared", "peer_down",
        "peer_up", "key_reuse" };
    assert_int_equal(EV_KIND_COUNT, sizeof want / sizeof want[0]);
    for (int k = 0; k < EV_KIND_COUNT; k++)
        assert_string_equal(event_kind_name((event_kind)k), want[k]);
    assert_null(event_kind_name(EV_KIND_COUNT));
    assert_true(event_kind_is_alarm(EV_POOL_EXHAUSTED) && event_kind_is_alarm(EV_POOL_LOW)
                && event_kind_is_alarm(EV_QBER_ALARM) && event_kind_is_alarm(EV_PEER_DOWN));
    assert_false(event_kind_is_alarm(EV_UNAUTHORIZED) || event_kind_is_alarm(EV_POOL_OK)
                 || event_kind_is_alarm(EV_KEY_REUSE) || event_kind_is_alarm(EV_PEER_UP));
    char *line = events_format(EV_KEY_REUSE, &(event_fields){ .sae_id = "B1" }, "K", 0);
    assert_non_null(strstr(line, "\"severity\":\"security violation\""));
    free(line);
}

/* ---- the file ------------------------------------------------------------ */

static void expect_refused(const char *path, const char *why)
{
    char err[512];
    int fd = events_open_log(path, err, sizeof err);
    if (fd >= 0)
        fail_msg("%s was accepted as an audit log (%s expected)", path, why);
    if (!strstr(err, why))
        fail_msg("refusal of %s: \"%s\" lacks \"%s\"", path, err, why);
}

static void test_log_file_opened_safely(void **state)
{
    (void)state;
    char err[512];
    const char *good = path_in("new.log");
    int fd = events_open_log(good, err, sizeof err);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_true(fcntl(fd, F_GETFL) & O_APPEND);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);

    /* a symbolic link, even to a good file, is refused and the target untouched */
    const char *link = path_in("link.log");
    assert_int_equal(symlink(good, link), 0);
    expect_refused(link, "symbolic link");
    assert_int_equal(symlink(path_in("absent.log"), path_in("dangling.log")), 0);
    expect_refused(path_in("dangling.log"), "symbolic link");
    assert_int_equal(access(path_in("absent.log"), F_OK), -1);

    assert_int_equal(mkdir(path_in("adir"), 0700), 0);
    expect_refused(path_in("adir"), "cannot open");

    const char *readable = path_in("readable.log");
    fd = open(readable, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    close(fd);
    expect_refused(readable, "mode 0644");

    if (geteuid() == 0) { /* only root can give a file away */
        const char *theirs = path_in("theirs.log");
        fd = open(theirs, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        assert_int_equal(fchown(fd, 65534, 65534), 0);
        close(fd);
        expect_refused(theirs, "owned by uid 65534");
    }
}

/* ---- the writer ---------------------------------------------------------- */

static void start_writer(const char *log, const char *cmd, unsigned timeout_s)
{
    char err[512];
    events_options o = { .kme_id = "KME-T", .audit_log = log, .alert_command = cmd,
                         .alert_timeout_s = timeout_s, .alert_interval_s = 60 };
    if (events_start(&o, err, sizeof err) != 0)
        fail_msg("events_start: %s", err);
}

static void test_lines_and_rotation(void **state)
{
    (void)state;
    const char *log = path_in("audit.log"), *moved = path_in("audit.log.1");
    uint64_t before = events_total(EV_RATE_LIMITED);
    start_writer(log, NULL, 10);
    events_rate_limited("SAE-1", 4096, 7);
    events_not_a_slave("SAE-2", "SAE-1", 2);
    wait_lines(log, 2);
    assert_int_equal(rename(log, moved), 0);
    events_pool_exhausted("SAE-1", "SAE-3", "KME-B", 65536);
    wait_lines(moved, 3); /* before the SIGHUP: the old file */
    events_reopen();
    long end = now_ms() + deadline_ms();
    while (access(log, F_OK) != 0 && now_ms() < end)
        pause_ms(10);
    events_peer(false, "KME-B", "no answer within 2000 ms");
    events_stop();
    assert_int_equal(events_total(EV_RATE_LIMITED), before + 1);

    json_t *l[8];
    assert_int_equal(read_lines(moved, l, 8), 3);
    assert_string_equal(str_of(l[0], "kind"), "rate_limited");
    assert_string_equal(str_of(l[0], "sae_id"), "SAE-1");
    assert_int_equal(json_integer_value(json_object_get(l[0], "bits")), 4096);
    assert_int_equal(json_integer_value(json_object_get(l[0], "retry_after_s")), 7);
    assert_string_equal(str_of(l[1], "kind"), "not_a_slave");
    assert_string_equal(str_of(l[1], "master_sae_id"), "SAE-1");
    assert_string_equal(str_of(l[2], "kind"), "pool_exhausted");
    assert_string_equal(str_of(l[2], "peer"), "KME-B");
    for (int i = 0; i < 3; i++)
        json_decref(l[i]);
    assert_int_equal(read_lines(log, l, 8), 1);
    assert_string_equal(str_of(l[0], "kind"), "peer_down");
    assert_string_equal(str_of(l[0], "kme"), "KME-T");
    json_decref(l[0]);
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* A writer that falls behind: reports past the queue are dropped without
 * waiting, counted, and the count is logged once when it catches up;
 * what was queued is written. */
static void test_full_queue_drops_and_counts(void **state)
{
    (void)state;
    const char *log = path_in("full-audit.log"), *captured = path_in("full-stderr.log");
    uint64_t dropped = events_dropped(), total = events_total(EV_RATE_LIMITED);
    start_writer(log, NULL, 10);
    events_testing_hold(true);
    long t0 = now_ms();
    for (unsigned i = 0; i < EVENTS_QUEUE_SLOTS + 5; i++)
        events_rate_limited("SAE-F", i, 1);
    assert_true(now_ms() - t0 < 1000); /* never waits for room */
    assert_int_equal(events_dropped(), dropped + 5);
    assert_int_equal(events_total(EV_RATE_LIMITED), total + EVENTS_QUEUE_SLOTS + 5);
    fflush(stderr);
    int saved = dup(2), fd = open(captured, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    events_testing_hold(false);
    wait_lines(log, EVENTS_QUEUE_SLOTS);
    events_stop();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(count_lines(log), EVENTS_QUEUE_SLOTS);
    FILE *f = fopen(captured, "r");
    char line[1024];
    int reports = 0;
    while (f && fgets(line, sizeof line, f))
        reports += strstr(line, "security events: 5 dropped") != NULL;
    if (f)
        fclose(f);
    assert_int_equal(reports, 1);
}

/* Without events_start the counters still count and nothing is written. */
static void test_counts_without_writer(void **state)
{
    (void)state;
    uint64_t u = events_total(EV_UNAUTHORIZED);
    events_unauthorized("sae_api", "no client certificate", NULL, NULL);
    events_not_a_slave("A", "B", 1); /* a 401 too */
    assert_int_equal(events_total(EV_UNAUTHORIZED), u + 2);
    assert_int_equal(events_dropped(), 0);
}

/* ---- the alert command --------------------------------------------------- */

static void write_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0700), 0);
}

/* Once per kind and peer per interval, the event's line on stdin, a
 * minimal environment and no descriptor of the daemon: a file the test
 * holds open without FD_CLOEXEC must not reach the command. */
static void test_alert_command_contract(void **state)
{
    (void)state;
    const char *script = path_in("alert.sh"), *out = path_in("alerts.out");
    char body[1024];
    snprintf(body, sizeof body,
             "{ read -r line; echo \"$1|$QKD_EVENT_KIND|$(env | wc -l)|"
             "$(ls -l /proc/$$/fd | grep -c held-open)|$line\"; }"
             " >> '%s'", out);
    write_script(script, body);
    int held = open(path_in("held-open"), O_CREAT | O_RDONLY, 0600); /* no O_CLOEXEC */
    assert_true(held >= 0);
    start_writer(NULL, script, 10);
    events_pool_exhausted("SAE-1", "SAE-2", "KME-B", 1024);
    events_pool_exhausted("SAE-1", "SAE-2", "KME-B", 2048); /* same kind and peer: no run */
    events_pool_exhausted("SAE-1", "SAE-2", "KME-C", 4096); /* another peer: a run */
    events_qber(true, "LINK-AB", 0.13, 0.11);                /* another kind: a run */
    events_rate_limited("SAE-1", 1, 1);                      /* no alarm: no run */
    wait_lines(out, 3);
    events_stop(); /* waits for what runs */
    assert_int_equal(count_lines(out), 3);
    FILE *f = fopen(out, "r");
    char line[4096];
    int exhausted = 0, qber = 0;
    while (fgets(line, sizeof line, f)) {
        char *kind = strtok(line, "|"), *env_kind = strtok(NULL, "|");
        char *n_env = strtok(NULL, "|"), *fds = strtok(NULL, "|"), *json = strtok(NULL, "\n");
        assert_non_null(json);
        assert_string_equal(kind, env_kind);
        assert_true(atoi(n_env) <= 5); /* PATH, LC_ALL, QKD_EVENT_KIND, and the shell's own */
        assert_string_equal(fds, "0");
        json_t *o = json_loads(json, 0, NULL);
        assert_non_null(o);
        assert_string_equal(str_of(o, "kind"), kind);
        if (strcmp(kind, "pool_exhausted") == 0) {
            exhausted++;
            assert_true(json_integer_value(json_object_get(o, "bits")) != 2048);
        } else {
            qber++;
            assert_string_equal(kind, "qber_alarm");
        }
        json_decref(o);
    }
    fclose(f);
    close(held);
    assert_int_equal(exhausted, 2);
    assert_int_equal(qber, 1);
}

/* A command that never ends: the emitter is not delayed, the command is
 * killed after the timeout (1 s here) and the writer goes on. */
static void test_hanging_alert_command(void **state)
{
    (void)state;
    const char *script = path_in("hang.sh"), *log = path_in("hang-audit.log");
    const char *pidfile = path_in("hang.pid");
    char body[512];
    snprintf(body, sizeof body, "echo $$ > '%s'; exec sleep 600", pidfile);
    write_script(script, body);
    start_writer(log, script, 1);
    long t0 = now_ms();
    events_peer(false, "KME-H", "test");
    for (int i = 0; i < 100; i++)
        events_rate_limited("SAE-1", 1, 1);
    assert_true(now_ms() - t0 < 500); /* never waits for the command */
    wait_lines(log, 101);
    long end = now_ms() + deadline_ms();
    FILE *pf = NULL;
    while (!(pf = fopen(pidfile, "r")) && now_ms() < end)
        pause_ms(10);
    assert_non_null(pf);
    long pid = 0;
    while (fscanf(pf, "%ld", &pid) != 1 && now_ms() < end) {
        rewind(pf);
        pause_ms(10);
    }
    fclose(pf);
    assert_true(pid > 0);
    /* killed within the timeout plus slack, while the writer runs */
    end = now_ms() + 1000 + deadline_ms();
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    while (access(proc, F_OK) == 0 && now_ms() < end)
        pause_ms(20);
    assert_int_equal(access(proc, F_OK), -1);
    events_peer(true, "KME-H", NULL);
    wait_lines(log, 102);
    events_stop();
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_events.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The ring of the last events: newest first, at most EVENTS_RECENT,
 * who and why truncated to fit, whatever was emitted before. */
static void test_recent_ring(void **state)
{
    (void)state;
    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    for (int i = 0; i < EVENTS_RECENT + 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "SAE_%d", i);
        events_rate_limited(id, 256, 1);
    }
    events_peer(false, "KME-B", longid);
    event_recent r[EVENTS_RECENT + 4];
    size_t n = events_recent(r, EVENTS_RECENT + 4);
    assert_int_equal(n, EVENTS_RECENT);
    assert_int_equal(r[0].kind, EV_PEER_DOWN);
    assert_string_equal(r[0].who, "KME-B");
    assert_int_equal(strlen(r[0].why), EVENTS_RECENT_TEXT - 1);
    assert_int_equal(r[1].kind, EV_RATE_LIMITED);
    char want[32];
    snprintf(want, sizeof want, "SAE_%d", EVENTS_RECENT + 4);
    assert_string_equal(r[1].who, want);
    assert_int_equal(events_recent(r, 3), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_without_writer),
        cmocka_unit_test(test_hostile_strings_stay_one_line),
        cmocka_unit_test(test_kind_names_and_alarms),
        cmocka_unit_test(test_log_file_opened_safely),
        cmocka_unit_test(test_lines_and_rotation),
        cmocka_unit_test(test_full_queue_drops_and_counts),
        cmocka_unit_test(test_alert_command_contract),
        cmocka_unit_test(test_hanging_alert_command),
        cmocka_unit_test(test_recent_ring),
    };
    return cmocka_run_group_tests_name("security events", tests, setup, teardown);
}
