/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ops.c - system tests of the operations side of the daemons on the
 * real testbed (docs/operations.md): systemd's notification protocol, the
 * audit log and the alert command.
 *
 * systemd: KME-A and the link are stopped and started again by the test
 * with a NOTIFY_SOCKET of its own (an abstract datagram socket) and
 * WATCHDOG_USEC: READY=1 must come only once every listener of the
 * configuration accepts (the test connects to each port the moment READY
 * arrives), WATCHDOG=1 pings must follow, SIGTERM gives STOPPING=1 and a
 * clean exit.
 *
 * The audit log: KME-A runs with [kme] audit_log and an [alerts] command
 * (a script of the test writing what it gets to a file) and small limits
 * (meson gives the testbed TESTBED_KME_LIMITS).  The attacks: a certificate
 * of another CA, one whose CN is hostile (quotes, a newline with a forged
 * JSON object, control bytes, invalid UTF-8), a revoked one, an SAE that is
 * not the keys' slave, a master over its rate, a pool drained; each leaves
 * exactly one JSON line with the right fields, which the test parses.
 * Rotation: the log is moved away and SIGHUP makes a new one.  The alert
 * command runs once per kind and peer per minute with the event on its
 * stdin, and one that hangs (the script sleeps for pool_exhausted) delays
 * no request and is killed after [alerts] timeout_s (5 s here).
 *
 * Deadlines poll with slack (x3 under sanitizers: QC_SANITIZED), never a
 * fixed sleep as the assertion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "testbed_env.h"

typedef tb_sae sae;

static struct {
    char *dir, *script, *ca, *url, *kme_id, *pki, *kme_bin, *link_bin, *conf, *link_conf;
    char *rogue_cert, *rogue_key;
    char audit[512], alerts_out[512], alert_cmd[512], kme_log[512];
    sae a1, a2, a3;
    long slack_ms;   /* a deadline's slack: 1 s, x3 under sanitizers */
} TB;

/* ---- small helpers ------------------------------------------------------- */

static pid_t read_pid(const char *name)
{
    char *v = testbed_env_value(TB.dir, name);
    pid_t pid = v ? (pid_t)atol(v) : 0;
    free(v);
    return pid;
}

/* ---- HTTPS to KME-A ------------------------------------------------------ */

typedef struct answer {
    long status;
    char body[65536 * 2];
    size_t len;
} answer;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    answer *a = ud;
    size_t take = sz * n;
    if (take > sizeof a->body - 1 - a->len)
        take = sizeof a->body - 1 - a->len;
    memcpy(a->body + a->len, p, take);
    a->len += take;
    a->body[a->len] = '\0';
    return sz * n;
}

/* GET KME_A_URL/api/v1/keys/PATH as cert/key on a new connection. */
static void get_as(const char *cert, const char *key, const char *path, answer *a)
{
    char url[1024];
    memset(a, 0, sizeof *a);
    snprintf(url, sizeof url, "%s/api/v1/keys/%s", TB.url, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_cleanup(h);
}

static void get_sae(const sae *s, const char *path, answer *a)
{
    get_as(s->cert, s->key, path, a);
}

static void expect_status(const answer *a, long want, const char *what)
{
    if (a->status != want)
        fail_msg("%s: expected HTTP %ld, got %ld %s", what, want, a->status, a->body);
}

/* ---- the audit log ------------------------------------------------------- */

/* Every line of the audit log parsed (each must be one JSON object in
 * printable ASCII); NULL-terminated array, *n lines.  Missing file: 0. */
static json_t **audit_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    json_t **out = calloc(4096, sizeof *out);
    assert_non_null(out);
    *n = 0;
    char line[16384];
    while (f && *n < 4095 && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            fail_msg("%s: a line without its newline (%zu bytes)", path, len);
        for (size_t i = 0; i + 1 < len; i++)
            if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
                fail_msg("%s: byte 0x%02x in a line: %s", path, (unsigned char)line[i], line);
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o || !json_is_object(o))
            fail_msg("%s: not a JSON object (%s): %s", path, e.text, line);
        out[(*n)++] = o;
    }
    if (f)
        fclose(f);
    return out;
}

static void free_lines(json_t **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(l[i]);
    free(l);
}

static size_t line_count(const char *path)
{
    size_t n;
    json_t **l = audit_lines(path, &n);
    free_lines(l, n);
    return n;
}

static const char *str_of(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Does line o have kind and, for each (name, value) pair of the NULL-ended
 * list, that string member? */
static bool matches(json_t *o, const char *kind, const char *const *pairs)
{
    if (!str_of(o, "kind") || strcmp(str_of(o, "kind"), kind) != 0)
        return false;
    for (size_t i = 0; pairs && pairs[i]; i += 2) {
        const char *v = str_of(o, pairs[i]);
        if (!v || strcmp(v, pairs[i + 1]) != 0)
            return false;
    }
    return true;
}

static size_t count_matching(const char *path, const char *kind, const char *const *pairs)
{
    size_t n, c = 0;
    json_t **l = audit_lines(path, &n);
    for (size_t i = 0; i < n; i++)
        c += matches(l[i], kind, pairs);
    free_lines(l, n);
    return c;
}

/* Wait until the audit log has `want` lines of kind with pairs; return a
 * copy of the last one (the caller decrefs). */
static json_t *wait_event(const char *kind, const char *const *pairs, size_t want)
{
    long end = tb_now_ms() + 2000 + TB.slack_ms;
    for (;;) {
        size_t n, c = 0;
        json_t **l = audit_lines(TB.audit, &n);
        json_t *last = NULL;
        for (size_t i = 0; i < n; i++)
            if (matches(l[i], kind, pairs)) {
                c++;
                last = l[i];
            }
        if (c >= want) {
            json_incref(last);
            free_lines(l, n);
            if (c > want)
                fail_msg("%zu %s lines in %s, %zu expected", c, kind, TB.audit, want);
            return last;
        }
        free_lines(l, n);
        if (tb_now_ms() > end)
            fail_msg("no %zu-th %s line in %s within the deadline", want, kind, TB.audit);
        tb_pause_ms(20);
    }
}

static void expect_time_rfc3339(json_t *o)
{
    const char *t = str_of(o, "time");
    assert_non_null(t);
    /* 2026-12-07T08:15:02.123Z */
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    assert_string_equal(str_of(o, "kme"), TB.kme_id);
}

/* ---- certificates the test makes ----------------------------------------- */

static void write_pem(const char *path, gnutls_datum_t *d)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(d->data, 1, d->size, f);
    fclose(f);
    gnutls_free(d->data);
}

/* A client certificate (TLS client EKU) with the CN bytes given, signed
 * by a CA the test makes on the spot (trusted by no KME). */
static void make_hostile_cert(const char *cn, size_t cn_len, const char *cert_path,
                              const char *key_path)
{
    gnutls_x509_privkey_t ca_key, key;
    gnutls_x509_crt_t ca, crt;
    gnutls_datum_t out;
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_privkey_init(&ca_key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(ca_key, GNUTLS_PK_ECDSA,
                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
    assert_int_equal(gnutls_x509_crt_init(&ca), 0);
    gnutls_x509_crt_set_version(ca, 3);
    gnutls_x509_crt_set_serial(ca, "\x01", 1);
    gnutls_x509_crt_set_activation_time(ca, now - 300);
    gnutls_x509_crt_set_expiration_time(ca, now + 86400);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(ca, GNUTLS_OID_X520_COMMON_NAME, 0,
                                                   "hostile test CA", 15), 0);
    gnutls_x509_crt_set_key(ca, ca_key);
    gnutls_x509_crt_set_basic_constraints(ca, 1, -1);
    gnutls_x509_crt_set_key_usage(ca, GNUTLS_KEY_KEY_CERT_SIGN);
    assert_int_equal(gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, "\x02", 1);
    gnutls_x509_crt_set_activation_time(crt, now - 300);
    gnutls_x509_crt_set_expiration_time(crt, now + 86400);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                   (unsigned)cn_len), 0);
    gnutls_x509_crt_set_key(crt, key);
    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    assert_int_equal(gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
    write_pem(cert_path, &out);
    assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out), 0);
    write_pem(key_path, &out);
    chmod(key_path, 0600);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_privkey_deinit(key);
    gnutls_x509_privkey_deinit(ca_key);
}

/* ---- systemd notification ------------------------------------------------ */

/* An abstract datagram socket "@qc-test-notify-PID-N"; its descriptor and
 * name (with the '@'). */
static int notify_socket(char *name, size_t len)
{
    static int serial;
    snprintf(name, len, "@qc-test-notify-%ld-%d", (long)getpid(), ++serial);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    sa.sun_path[0] = '\0';
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0);
    struct timeval tv = { .tv_usec = 100000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Start prog --config conf with NOTIFY_SOCKET and WATCHDOG_USEC, its
 * output appended to log. */
static pid_t start_notified(const char *prog, const char *conf, const char *notify,
                            const char *wd_usec, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("NOTIFY_SOCKET", notify, 1);
        setenv("WATCHDOG_USEC", wd_usec, 1);
        unsetenv("WATCHDOG_PID");
        execl(prog, prog, "--config", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The ports of every "listen = 127.0.0.1:PORT" line of conf. */
static size_t listen_ports(const char *conf, unsigned *ports, size_t max)
{
    FILE *f = fopen(conf, "r");
    assert_non_null(f);
    char line[1024];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        unsigned port;
        if (sscanf(line, " listen = 127.0.0.1:%u", &port) == 1)
            ports[n++] = port;
    }
    fclose(f);
    return n;
}

static bool accepts(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Wait for a datagram containing text (deadline: ms); the child must not
 * exit meanwhile.  Counts the WATCHDOG=1 pings seen on the way. */
static void wait_datagram(int fd, pid_t child, const char *text, long ms, int *pings)
{
    long end = tb_now_ms() + ms;
    char buf[2048];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            if (pings && strstr(buf, "WATCHDOG=1"))
                (*pings)++;
            if (strstr(buf, text))
                return;
        }
        int st;
        if (child > 0 && waitpid(child, &st, WNOHANG) == child)
            fail_msg("the daemon exited (status 0x%x) before sending %s", st, text);
        if (tb_now_ms() > end)
            fail_msg("no %s within %ld ms", text, ms);
    }
}

/* READY=1 only once every listener accepts, then watchdog pings, then
 * STOPPING=1 (stopping) and exit 0 on SIGTERM. */
static void check_notify(const char *prog, const char *conf, const char *log, bool stopping)
{
    char name[108];
    int fd = notify_socket(name, sizeof name);
    unsigned ports[8];
    size_t np = listen_ports(conf, ports, 8);
    pid_t pid = start_notified(prog, conf, name, "200000", log); /* 0.2 s: pings every 0.1 s */
    wait_datagram(fd, pid, "READY=1", 20000 + TB.slack_ms * 5, NULL);
    for (size_t i = 0; i < np; i++)
        if (!accepts(ports[i]))
            fail_msg("%s sent READY=1 while its port %u does not accept yet", prog, ports[i]);
    int pings = 0;
    while (pings < 3)
        wait_datagram(fd, pid, "WATCHDOG=1", 1000 + TB.slack_ms, &pings);
    assert_int_equal(kill(pid, SIGTERM), 0);
    if (stopping)
        wait_datagram(fd, -1, "STOPPING=1", 5000 + TB.slack_ms, NULL);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s ended with status 0x%x after SIGTERM", prog, st);
    close(fd);
}

static void test_kme_notify(void **state)
{
    (void)state;
    assert_int_equal(tb_run("'%s' stop '%s' kme-a >/dev/null", TB.script, TB.dir), 0);
    check_notify(TB.kme_bin, TB.conf, TB.kme_log, true);
    assert_int_equal(tb_run("'%s' start '%s' kme-a >/dev/null", TB.script, TB.dir), 0);
}

static void test_link_notify(void **state)
{
    (void)state;
    if (!TB.link_bin || !TB.link_conf || access(TB.link_bin, X_OK) != 0)
        skip();
    char log[600];
    snprintf(log, sizeof log, "%s/link-notify.log", TB.dir);
    assert_int_equal(tb_run("'%s' stop '%s' link >/dev/null", TB.script, TB.dir), 0);
    check_notify(TB.link_bin, TB.link_conf, log, false);
    assert_int_equal(tb_run("'%s' start '%s' link >/dev/null", TB.script, TB.dir), 0);
}

/* ---- the audit log over the real KME ------------------------------------- */

/* A certificate of another CA: one unauthorized line with the reason and
 * the CN it claimed. */
static void test_unauthorized_other_ca(void **state)
{
    (void)state;
    answer a;
    char path[300];
    snprintf(path, sizeof path, "%s/status", TB.a2.id);
    get_as(TB.rogue_cert, TB.rogue_key, path, &a);
    expect_status(&a, 401, "a certificate of a rogue CA");
    const char *const want[] = { "listener", "sae_api", "cert_cn", TB.a1.id, NULL };
    json_t *o = wait_event("unauthorized", want, 1);
    expect_time_rfc3339(o);
    assert_string_equal(str_of(o, "reason"), "not signed by a CA this listener trusts");
    json_decref(o);
}

/* A CN built to break the log: quotes, a newline and a forged JSON object,
 * control bytes, invalid UTF-8.  Still exactly one line, the CN escaped. */
static void test_unauthorized_hostile_cn(void **state)
{
    (void)state;
    static const char cn[] = "x\"}\n{\"kind\":\"key_reuse\",\"sae_id\":\"forged\"}\r\x1b[2J\x01\xff\xfe";
    char cert[600], key[600];
    snprintf(cert, sizeof cert, "%s/hostile.crt", TB.dir);
    snprintf(key, sizeof key, "%s/hostile.key", TB.dir);
    make_hostile_cert(cn, sizeof cn - 1, cert, key);
    const char *const want[] = { "reason", "not signed by a CA this listener trusts", NULL };
    size_t lines_before = line_count(TB.audit);
    size_t n_before = count_matching(TB.audit, "unauthorized", want);
    size_t reuse_before = count_matching(TB.audit, "key_reuse", NULL);
    answer a;
    get_as(cert, key, "SAE_A2/status", &a);
    expect_status(&a, 401, "a certificate with a hostile CN");
    /* GnuTLS gives the CN in its RFC 4514 form ('"' and ',' escaped with
     * a backslash); the log keeps that, every byte of it escaped */
    json_t *o = wait_event("unauthorized", want, n_before + 1);
    const char *got = str_of(o, "cert_cn");
    assert_non_null(got);
    if (!strstr(got, "forged") || !strchr(got, '\n') || !strchr(got, '\x1b') || !strchr(got, '\x01'))
        fail_msg("cert_cn does not carry the hostile CN: %s", got);
    json_decref(o);
    assert_int_equal(line_count(TB.audit), lines_before + 1);
    assert_int_equal(count_matching(TB.audit, "key_reuse", NULL), reuse_before);
}

/* dec_keys by an SAE the key was not made for: not_a_slave, a 401. */
static void test_not_a_slave(void **state)
{
    (void)state;
    answer a;
    char path[512];
    snprintf(path, sizeof path, "%s/enc_keys?number=1&size=256", TB.a2.id);
    get_sae(&TB.a1, path, &a);
    expect_status(&a, 200, "enc_keys A1 -> A2");
    json_t *j = json_loads(a.body, 0, NULL);
    const char *id = str_of(json_array_get(json_object_get(j, "keys"), 0), "key_ID");
    assert_non_null(id);
    snprintf(path, sizeof path, "%s/dec_keys?key_ID=%s", TB.a1.id, id);
    json_decref(j);
    get_sae(&TB.a3, path, &a);
    expect_status(&a, 401, "dec_keys by A3 of A2's key");
    const char *const want[] = { "sae_id", TB.a3.id, "master_sae_id", TB.a1.id, NULL };
    json_t *o = wait_event("not_a_slave", want, 1);
    expect_time_rfc3339(o);
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 1);
    assert_null(json_object_get(o, "key_ID")); /* never a key ID or material */
    assert_null(json_object_get(o, "key"));
    json_decref(o);
}

static long alert_lines(const char *kind, const char *needle)
{
    FILE *f = fopen(TB.alerts_out, "r");
    char line[8192];
    long n = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o)
            fail_msg("%s: the alert command got no JSON line: %s", TB.alerts_out, line);
        n += matches(o, kind, NULL) && (!needle || strstr(line, needle));
        json_decref(o);
    }
    if (f)
        fclose(f);
    return n;
}

/* The local pool (64 Kibit, refilled at 4 kbit/s) drained by A1 in one
 * request; A1's next request is over its rate (64 Kibit burst, 8 kbit/s);
 * A2's request finds the pool empty: pool_exhausted, whose alert command
 * hangs, and the pool_low / pool_ok crossings.  Requests meanwhile are
 * served at once; the hanging command is killed after timeout_s (5 s). */
/* Wait until A1's local pool toward A2 is full again (status: the keys of
 * key_size it could make), so that the drain below takes all of it: the
 * test before took 256 bits, refilled at 4 kbit/s. */
static void wait_local_pool_full(void)
{
    answer a;
    char path[512];
    snprintf(path, sizeof path, "%s/status", TB.a2.id);
    long end = tb_now_ms() + 2000 + TB.slack_ms;
    json_int_t keys = 0, key_size = 1;
    do {
        get_sae(&TB.a1, path, &a);
        expect_status(&a, 200, "status A1 -> A2");
        json_t *j = json_loads(a.body, 0, NULL);
        keys = json_integer_value(json_object_get(j, "stored_key_count"));
        key_size = json_integer_value(json_object_get(j, "key_size"));
        json_decref(j);
        if (keys * key_size >= 64 * 1024)
            return;
        tb_pause_ms(20);
    } while (tb_now_ms() < end);
    fail_msg("A1's local pool did not refill to 64 Kibit (%lld keys of %lld bits)",
             (long long)keys, (long long)key_size);
}

static void test_rate_pool_and_alerts(void **state)
{
    (void)state;
    answer a;
    char path[512];
    wait_local_pool_full();
    snprintf(path, sizeof path, "%s/enc_keys?number=64&size=1024", TB.a2.id);
    get_sae(&TB.a1, path, &a);
    expect_status(&a, 200, "A1 drains the local pool");
    get_sae(&TB.a1, path, &a);
    expect_status(&a, 503, "A1 over its rate");
    const char *const rl[] = { "sae_id", TB.a1.id, NULL };
    json_t *o = wait_event("rate_limited", rl, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "bits")), 65536);
    assert_true(json_integer_value(json_object_get(o, "retry_after_s")) >= 1);
    json_decref(o);

    snprintf(path, sizeof path, "%s/enc_keys?number=64&size=1024", TB.a1.id);
    get_sae(&TB.a2, path, &a);
    expect_status(&a, 503, "A2 finds the pool empty");
    const char *const ex[] = { "sae_id", TB.a2.id, "slave_sae_id", TB.a1.id, "pool", "local", NULL };
    o = wait_event("pool_exhausted", ex, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "bits")), 65536);
    json_decref(o);
    /* its alert command hangs (until killed after 5 s): a request is
     * answered at once meanwhile */
    long end = tb_now_ms() + 2000 + TB.slack_ms;
    while (alert_lines("pool_exhausted", NULL) < 1 && tb_now_ms() < end)
        tb_pause_ms(20);
    assert_int_equal(alert_lines("pool_exhausted", NULL), 1);
    long t0 = tb_now_ms();
    snprintf(path, sizeof path, "%s/status", TB.a2.id);
    get_sae(&TB.a1, path, &a);
    expect_status(&a, 200, "status while the alert command hangs");
    assert_true(tb_now_ms() - t0 < 1000 + TB.slack_ms);
    assert_int_equal(tb_count_lines(TB.kme_log, "killed: still running"), 0);
    /* a second exhaustion within the minute: a line, no second command */
    snprintf(path, sizeof path, "%s/enc_keys?number=64&size=1024", TB.a1.id);
    get_sae(&TB.a2, path, &a);
    expect_status(&a, 503, "A2 again");
    o = wait_event("pool_exhausted", ex, 2);
    json_decref(o);

    const char *const lo[] = { "pool", "local", NULL };
    o = wait_event("pool_low", lo, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "capacity_bits")), 65536);
    assert_true(json_integer_value(json_object_get(o, "level_bits")) < 6554);
    json_decref(o);
    o = wait_event("pool_ok", lo, 1); /* 11 % back in 1.8 s */
    assert_true(json_integer_value(json_object_get(o, "level_bits")) >= 7209); /* mark + 1 % */
    json_decref(o);

    /* the commands: pool_exhausted once (killed after 5 s), pool_low of
     * the local pool once, each with its event on stdin */
    end = tb_now_ms() + 5000 + 2 * TB.slack_ms;
    while ((alert_lines("pool_exhausted", NULL) < 1 || alert_lines("pool_low", "\"pool\":\"local\"") < 1
            || tb_count_lines(TB.kme_log, "killed: still running after 5 s") < 1)
           && tb_now_ms() < end)
        tb_pause_ms(50);
    assert_int_equal(alert_lines("pool_exhausted", NULL), 1);
    assert_int_equal(alert_lines("pool_low", "\"pool\":\"local\""), 1);
    assert_int_equal(alert_lines("rate_limited", NULL), 0); /* not an alarm */
    assert_int_equal(tb_count_lines(TB.kme_log, "killed: still running after 5 s"), 1);
}

/* Rotation: the log moved away, SIGHUP, a new file of mode 0600 takes the
 * next event; the old one keeps what it had. */
static void test_sighup_reopens(void **state)
{
    (void)state;
    char moved[600];
    snprintf(moved, sizeof moved, "%s.1", TB.audit);
    size_t before = line_count(TB.audit);
    assert_true(before > 0);
    assert_int_equal(rename(TB.audit, moved), 0);
    int reopened = tb_count_lines(TB.kme_log, "audit log ");
    assert_int_equal(kill(read_pid("KME_A_PID"), SIGHUP), 0);
    long end = tb_now_ms() + 1000 + TB.slack_ms;
    while (tb_count_lines(TB.kme_log, "reopened") <= reopened && tb_now_ms() < end)
        tb_pause_ms(20);
    struct stat st;
    assert_int_equal(stat(TB.audit, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    answer a;
    get_as(TB.rogue_cert, TB.rogue_key, "SAE_A2/status", &a);
    expect_status(&a, 401, "rogue after the rotation");
    json_t *o = wait_event("unauthorized", NULL, 1); /* the new file: one line */
    json_decref(o);
    assert_int_equal(line_count(moved), before);
}

/* A revoked certificate: the reason says so, with the SAE's CN. */
static void test_unauthorized_revoked(void **state)
{
    (void)state;
    assert_int_equal(tb_run("'%s' revoke '%s/pki' '%s' >/dev/null", TB.pki, TB.dir, TB.a3.id), 0);
    int before = tb_count_lines(TB.kme_log, "certificates revoked");
    assert_int_equal(kill(read_pid("KME_A_PID"), SIGHUP), 0);
    long end = tb_now_ms() + 1000 + TB.slack_ms;
    while (tb_count_lines(TB.kme_log, "certificates revoked") <= before && tb_now_ms() < end)
        tb_pause_ms(20);
    answer a;
    get_sae(&TB.a3, "SAE_A1/status", &a);
    expect_status(&a, 401, "revoked A3");
    const char *const want[] = { "cert_cn", TB.a3.id, "reason", "certificate revoked by the CRL in force", NULL };
    json_t *o = wait_event("unauthorized", want, 1);
    json_decref(o);
}

/* ---- setup --------------------------------------------------------------- */

/* KME-A's configuration gains the audit log and the alert command: a
 * script that appends its stdin to a file, and hangs for pool_exhausted. */
static int configure_kme_a(void)
{
    FILE *f = fopen(TB.alert_cmd, "w");
    if (!f)
        return -1;
    fprintf(f, "#!/bin/sh\ncat >> '%s'\ncase \"$1\" in pool_exhausted) exec sleep 600 ;; esac\n",
            TB.alerts_out);
    fclose(f);
    chmod(TB.alert_cmd, 0700);
    return tb_run("'%s' stop '%s' kme-a >/dev/null && "
               "sed -i 's|^\\[kme\\]$|[kme]\\naudit_log = %s|' '%s' && "
               "printf '\\n[alerts]\\ncommand = %s\\ntimeout_s = 5\\n' >> '%s' && "
               "'%s' start '%s' kme-a >/dev/null",
               TB.script, TB.dir, TB.audit, TB.conf, TB.alert_cmd, TB.conf, TB.script, TB.dir);
}

static int group_setup(void **state)
{
    (void)state;
    TB.dir = getenv("TESTBED_DIR");
    TB.script = getenv("TESTBED_SCRIPT");
    TB.link_bin = getenv("QKD_LINK_BIN");
    if (!TB.dir || !TB.script) {
        print_error("TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return -1;
    }
    TB.ca = testbed_env_value(TB.dir, "CA_CERT");
    TB.url = testbed_env_value(TB.dir, "KME_A_URL");
    TB.kme_id = testbed_env_value(TB.dir, "KME_A_ID");
    TB.pki = testbed_env_value(TB.dir, "PKI_SCRIPT");
    TB.kme_bin = testbed_env_value(TB.dir, "KME_BIN");
    TB.conf = testbed_env_value(TB.dir, "KME_A_CONF");
    TB.link_conf = testbed_env_value(TB.dir, "LINK_CONF");
    TB.rogue_cert = testbed_env_value(TB.dir, "SAE_A1_ROGUE_CERT");
    TB.rogue_key = testbed_env_value(TB.dir, "SAE_A1_ROGUE_KEY");
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.a3, TB.dir, "SAE_A3");
    if (!TB.ca || !TB.url || !TB.kme_id || !TB.pki || !TB.kme_bin || !TB.conf || !TB.rogue_cert
        || !TB.a1.id || !TB.a2.id || !TB.a3.id) {
        print_error("%s/testbed.env lacks a name this test needs\n", TB.dir);
        return -1;
    }
    snprintf(TB.audit, sizeof TB.audit, "%s/kme-a-audit.log", TB.dir);
    snprintf(TB.alerts_out, sizeof TB.alerts_out, "%s/alerts.out", TB.dir);
    snprintf(TB.alert_cmd, sizeof TB.alert_cmd, "%s/alert.sh", TB.dir);
    snprintf(TB.kme_log, sizeof TB.kme_log, "%s/kme-a.log", TB.dir);
    const char *san = getenv("QC_SANITIZED");
    TB.slack_ms = san && strcmp(san, "1") == 0 ? 3000 : 1000;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (configure_kme_a() != 0) {
        print_error("cannot give KME-A its audit log and alert command\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(TB.ca);
    free(TB.url);
    free(TB.kme_id);
    free(TB.pki);
    free(TB.kme_bin);
    free(TB.conf);
    free(TB.link_conf);
    free(TB.rogue_cert);
    free(TB.rogue_key);
    tb_sae_free(&TB.a1);
    tb_sae_free(&TB.a2);
    tb_sae_free(&TB.a3);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kme_notify),
        cmocka_unit_test(test_link_notify),
        cmocka_unit_test(test_unauthorized_other_ca),
        cmocka_unit_test(test_unauthorized_hostile_cn),
        cmocka_unit_test(test_not_a_slave),
        cmocka_unit_test(test_rate_pool_and_alerts),
        cmocka_unit_test(test_sighup_reopens),
        cmocka_unit_test(test_unauthorized_revoked),
    };
    return cmocka_run_group_tests_name("qkd-kme and qkd-link operations", tests, group_setup,
                                       group_teardown);
}
