/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_config.c - the KME configuration file (src/kme/config.c): a good file
 * loads with its values and the defaults of the keys it leaves out, and
 * every way a file can be wrong is refused with the one precise message
 * that names the file, the line and the key.
 *
 * Every test writes its files into a fresh temporary directory.  The base
 * file (BASE below) has fixed line numbers, so the expected messages spell
 * them out.  Permission checks (unreadable certificate, unwritable database
 * directory) mean nothing to root, so when the test runs as root it loads
 * those files in a forked child that has become the user "nobody".
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <grp.h>

#include "kme/config.h"

#define NOBODY 65534

static char dir[256];       /* the temporary directory of the running test */
static char conf_path[320]; /* dir/kme.conf */
static char err[1024];      /* the last error message */

/* The base file: every line number below is a fact the tests rely on. */
static const char *const BASE[] = {
    /*  1 */ "# a test configuration",
    /*  2 */ "[kme]",
    /*  3 */ "id = KME-T",
    /*  4 */ "database = @D@/db/kme.db",
    /*  5 */ "sync = full",
    /*  6 */ "log_level = debug",
    /*  7 */ "",
    /*  8 */ "[sae_api]",
    /*  9 */ "listen = 127.0.0.1:8443",
    /* 10 */ "cert = @D@/kme.crt",
    /* 11 */ "key = @D@/kme.key",
    /* 12 */ "ca = @D@/ca.crt",
    /* 13 */ "identity = uri-san",
    /* 14 */ "threads = 3",
    /* 15 */ "port_file = @D@/db/kme.port",
    /* 16 */ "",
    /* 17 */ "[saes]",
    /* 18 */ "local = SAE_1 SAE_2",
    /* 19 */ "",
    /* 20 */ "[limits]",
    /* 21 */ "key_size = 512",
};
#define BASE_LINES (sizeof BASE / sizeof BASE[0])

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Write text to conf_path with every "@D@" replaced by the test directory
 * and every "@0@" by a NUL byte. */
static void write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    for (const char *p = text; *p; ) {
        if (strncmp(p, "@D@", 3) == 0) {
            fputs(dir, f);
            p += 3;
        } else if (strncmp(p, "@0@", 3) == 0) {
            fputc('\0', f);
            p += 3;
        } else {
            fputc(*p++, f);
        }
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(conf_path, 0644), 0);
}

/* The base file with the line of key replaced by text (which may hold
 * several lines, or be "" to leave the line blank); key NULL: unchanged. */
static void write_base_with(const char *key, const char *text)
{
    char buf[4096] = "";
    size_t klen = key ? strlen(key) : 0;
    bool replaced = key == NULL;
    for (size_t i = 0; i < BASE_LINES; i++) {
        const char *line = BASE[i];
        if (key && strncmp(line, key, klen) == 0 && strncmp(line + klen, " =", 2) == 0) {
            line = text;
            replaced = true;
        }
        strcat(buf, line);
        strcat(buf, "\n");
    }
    assert_true(replaced);
    write_conf(buf);
}

/* Load conf_path; NULL when it loads (cfg is then freed), else the message. */
static const char *load(void)
{
    kme_config cfg;
    err[0] = '\0';
    if (kme_config_load(conf_path, &cfg, err, sizeof err) == 0) {
        kme_config_free(&cfg);
        return NULL;
    }
    /* a failed load leaves nothing allocated behind */
    assert_null(cfg.id);
    assert_null(cfg.path);
    assert_null(cfg.local_saes);
    assert_true(err[0] != '\0');
    return err;
}

/* Like load(), but as the user nobody in a child when we are root, so that
 * file permissions apply. */
static const char *load_unprivileged(void)
{
    if (geteuid() != 0)
        return load();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(2);
        kme_config cfg;
        char e[1024] = "";
        int rc = kme_config_load(conf_path, &cfg, e, sizeof e);
        if (rc == 0)
            kme_config_free(&cfg);
        ssize_t w = write(fds[1], e, strlen(e));
        (void)w;
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], err + n, sizeof err - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 2); /* could drop privileges */
    return WEXITSTATUS(status) == 0 ? NULL : err;
}

/* Assert that got is exactly the message fmt, in which "@P@" stands for
 * the config path and "@D@" for the test directory. */
static void expect_msg(const char *got, const char *fmt)
{
    char exp[1024];
    size_t o = 0;
    for (const char *p = fmt; *p && o + 1 < sizeof exp; ) {
        if (strncmp(p, "@P@", 3) == 0) {
            o += (size_t)snprintf(exp + o, sizeof exp - o, "%s", conf_path);
            p += 3;
        } else if (strncmp(p, "@D@", 3) == 0) {
            o += (size_t)snprintf(exp + o, sizeof exp - o, "%s", dir);
            p += 3;
        } else {
            exp[o++] = *p++;
        }
    }
    exp[o] = '\0';
    assert_non_null(got);
    assert_string_equal(got, exp);
}

static void expect_base_error(const char *key, const char *text, const char *msg)
{
    write_base_with(key, text);
    expect_msg(load(), msg);
}

static void expect_text_error(const char *text, const char *msg)
{
    write_conf(text);
    expect_msg(load(), msg);
}

/* --- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/test_config.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    /* open to "nobody" (see load_unprivileged); the files are not secret */
    if (chmod(dir, 0755) != 0)
        return -1;
    snprintf(conf_path, sizeof conf_path, "%s/kme.conf", dir);
    char p[512];
    snprintf(p, sizeof p, "%s/db", dir);
    if (mkdir(p, 0755) != 0 || chmod(p, 0777) != 0) /* writable for "nobody" too */
        return -1;
    static const char *const files[] = { "kme.crt", "kme.key", "ca.crt" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        FILE *f = fopen(p, "w");
        if (!f)
            return -1;
        fputs("-----BEGIN NOTHING-----\n", f);
        fclose(f);
        chmod(p, 0644);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' && rm -rf '%s'", dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- good files ----------------------------------------------------------- */

static void test_good_file_values(void **state)
{
    (void)state;
    write_base_with(NULL, NULL);
    kme_config cfg;
    char path[512];
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.path, conf_path);
    assert_string_equal(cfg.id, "KME-T");
    snprintf(path, sizeof path, "%s/db/kme.db", dir);
    assert_string_equal(cfg.database, path);
    assert_int_equal(cfg.sync, KS_SYNC_FULL);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8443);
    snprintf(path, sizeof path, "%s/kme.crt", dir);
    assert_string_equal(cfg.cert, path);
    snprintf(path, sizeof path, "%s/kme.key", dir);
    assert_string_equal(cfg.key, path);
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    assert_string_equal(cfg.ca, path);
    assert_int_equal(cfg.identity, KME_ID_URI_SAN);
    assert_int_equal(cfg.threads, 3);
    snprintf(path, sizeof path, "%s/db/kme.port", dir);
    assert_string_equal(cfg.port_file, path);
    assert_int_equal(cfg.n_local_saes, 2);
    assert_string_equal(cfg.local_saes[0], "SAE_1");
    assert_string_equal(cfg.local_saes[1], "SAE_2");
    assert_true(kme_config_is_local_sae(&cfg, "SAE_1"));
    assert_true(kme_config_is_local_sae(&cfg, "SAE_2"));
    assert_false(kme_config_is_local_sae(&cfg, "SAE_3"));
    assert_false(kme_config_is_local_sae(&cfg, "SAE_"));
    assert_int_equal(cfg.key_size, 512);
    /* the [limits] keys not given take their defaults */
    assert_int_equal(cfg.min_key_size, 64);
    assert_int_equal(cfg.max_key_size, 65536);
    assert_int_equal(cfg.max_key_per_request, 1024);
    assert_int_equal(cfg.max_sae_id_count, 4);
    assert_int_equal(cfg.key_ttl, 3600);
    assert_int_equal(cfg.local_pool_bits, 268435456);
    assert_int_equal(cfg.local_rate_bps, 100000000);
    assert_int_equal(cfg.maintenance_ms, 1000);
    kme_config_free(&cfg);
    assert_null(cfg.id);
    assert_int_equal(cfg.n_local_saes, 0);
}

static void test_minimal_file_defaults(void **state)
{
    (void)state;
    write_conf("[kme]\nid = K\ndatabase = @D@/kme.db\n"
               "[sae_api]\nlisten = [::1]:0\ncert = @D@/kme.crt\nkey = @D@/kme.key\nca = @D@/ca.crt\n"
               "[saes]\nlocal = S\n");
    kme_config cfg;
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.sync, KS_SYNC_NORMAL);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 0);
    assert_int_equal(cfg.identity, KME_ID_CN);
    assert_int_equal(cfg.threads, 2); /* 0 (auto) with sync = normal */
    assert_null(cfg.port_file);
    assert_int_equal(cfg.n_local_saes, 1);
    assert_int_equal(cfg.key_size, 256);
    assert_int_equal(cfg.min_key_size, 64);
    assert_int_equal(cfg.max_key_size, 65536);
    assert_int_equal(cfg.max_key_per_request, 1024);
    assert_int_equal(cfg.max_sae_id_count, 4);
    assert_int_equal(cfg.key_ttl, 3600);
    assert_int_equal(cfg.local_pool_bits, 268435456);
    assert_int_equal(cfg.local_rate_bps, 100000000);
    assert_int_equal(cfg.maintenance_ms, 1000);
    assert_int_equal(cfg.sae_rate_bps, 1000000000);
    assert_int_equal(cfg.sae_burst_bits, 1000000000); /* one second of the rate */
    assert_int_equal(cfg.sae_unfetched_bits, 268435456);
    kme_config_free(&cfg);
}

/* [limits] sae_rate_bps, sae_burst_bits, sae_unfetched_bits: values, the
 * burst's default, 0 = off, and bounds that would make a valid request
 * impossible, refused with the key's line. */
static void test_sae_limits(void **state)
{
    (void)state;
    kme_config cfg;
    write_base_with("key_size", "key_size = 512\nsae_rate_bps = 4096\nsae_unfetched_bits = 0");
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.sae_rate_bps, 4096);
    assert_int_equal(cfg.sae_burst_bits, 65536); /* one second is less than a max_key_size key */
    assert_int_equal(cfg.sae_unfetched_bits, 0);
    kme_config_free(&cfg);
    write_base_with("key_size", "key_size = 512\nmax_key_size = 1024\nsae_rate_bps = 4096\n"
                    "sae_burst_bits = 2048\nsae_unfetched_bits = 1024");
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.sae_burst_bits, 2048);
    assert_int_equal(cfg.sae_unfetched_bits, 1024);
    kme_config_free(&cfg);
    expect_base_error("key_size", "key_size = 512\nmax_key_size = 1024\nsae_rate_bps = 4096\n"
                      "sae_burst_bits = 1016",
                      "@P@:24: [limits] sae_burst_bits: 1016 cannot hold one key of max_key_size (1024)");
    expect_base_error("key_size", "key_size = 512\nsae_unfetched_bits = 65528",
                      "@P@:22: [limits] sae_unfetched_bits: 65528 cannot hold one key of max_key_size (65536)");
    expect_base_error("key_size", "key_size = 512\nsae_rate_bps = -1",
                      "@P@:22: [limits] sae_rate_bps: '-1' is not an integer in 0..4611686018427387903");
}

/* The operations keys (docs/operations.md): the audit log's directory, the
 * low-pool ratio and the alert command, each refused with its line. */
static void test_operations_keys(void **state)
{
    (void)state;
    kme_config cfg;
    write_base_with(NULL, NULL);
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_null(cfg.audit_log);
    assert_null(cfg.alert_command);
    assert_true(cfg.pool_low_ratio == 0.1);
    assert_int_equal(cfg.alert_timeout_s, 10);
    assert_int_equal(cfg.alert_interval_s, 60);
    kme_config_free(&cfg);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/alert.sh", dir);
    write_file(cmd, "#!/bin/sh\n", 0755);
    write_base_with("key_size", "key_size = 512\npool_low_ratio = .25\n[alerts]\n"
                    "command = @D@/alert.sh\ntimeout_s = 3\ninterval_s = 0");
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_true(cfg.pool_low_ratio == 0.25);
    assert_string_equal(cfg.alert_command, cmd);
    assert_int_equal(cfg.alert_timeout_s, 3);
    assert_int_equal(cfg.alert_interval_s, 0);
    kme_config_free(&cfg);

    static const char *const bad_ratios[] = { "1.5", "-0.1", "0.1.2", ".", "1e-1", "0x1", "nan" };
    for (size_t i = 0; i < sizeof bad_ratios / sizeof bad_ratios[0]; i++) {
        char text[128], msg[256];
        snprintf(text, sizeof text, "key_size = 512\npool_low_ratio = %s", bad_ratios[i]);
        snprintf(msg, sizeof msg, "@P@:22: [limits] pool_low_ratio: '%s' is not a decimal ratio "
                 "from 0 to 1 (e.g. 0.1)", bad_ratios[i]);
        expect_base_error("key_size", text, msg);
    }
    expect_base_error("key_size", "key_size = 512\n[alerts]\ncommand = alert.sh",
                      "@P@:23: [alerts] command: 'alert.sh' is not an absolute path");
    expect_base_error("key_size", "key_size = 512\n[alerts]\ncommand = @D@/none.sh",
                      "@P@:23: [alerts] command: '@D@/none.sh': No such file or directory");
    expect_base_error("key_size", "key_size = 512\n[alerts]\ncommand = @D@/db",
                      "@P@:23: [alerts] command: '@D@/db' is not a regular file");
    write_file(cmd, "#!/bin/sh\n", 0644); /* no x bit: not even root may run it */
    expect_base_error("key_size", "key_size = 512\n[alerts]\ncommand = @D@/alert.sh",
                      "@P@:23: [alerts] command: '@D@/alert.sh' is not executable by this user");
    expect_base_error("log_level", "log_level = info\naudit_log = @D@/nodir/audit.log",
                      "@P@:7: [kme] audit_log: directory '@D@/nodir' of '@D@/nodir/audit.log': "
                      "No such file or directory");
}

static void test_comments_blank_lines_and_spacing(void **state)
{
    (void)state;
    write_conf("# leading comment\n"
               "\n"
               "   \t\n"
               "  # indented comment\n"
               "[ kme ]   # a comment after a header\r\n"
               "id=KME#1   # '#' inside a value is text, after a space a comment\r\n"
               "  database   =   @D@/kme.db  \n"
               "log_level = WARN\n"
               "[sae_api]\n"
               "listen = 0.0.0.0:65535#x\n");
    /* '#' right after the port is not a comment: the port is refused */
    expect_msg(load(), "@P@:10: [sae_api] listen: port '65535#x' is not a number in 0..65535");

    write_conf("# leading comment\n"
               "\n"
               "   \t\n"
               "  # indented comment\n"
               "[ kme ]   # a comment after a header\r\n"
               "id=KME#1   # '#' inside a value is text, after a space a comment\r\n"
               "  database   =   @D@/kme.db  \n"
               "log_level = WARN\n"
               "[sae_api]\n"
               "listen = 0.0.0.0:65535\t# tab before the comment\n"
               "cert = @D@/kme.crt\nkey = @D@/kme.key\nca = @D@/ca.crt\n"
               "[saes]\n"
               "local = \tA  B\tC   # three SAEs\n");
    kme_config cfg;
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.id, "KME#1");
    assert_int_equal(cfg.log_level, LOG_WARN);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 65535);
    assert_int_equal(cfg.n_local_saes, 3);
    assert_string_equal(cfg.local_saes[2], "C");
    kme_config_free(&cfg);
}

/* --- the file itself ------------------------------------------------------ */

static void test_missing_file(void **state)
{
    (void)state;
    snprintf(conf_path, sizeof conf_path, "%s/absent.conf", dir);
    expect_msg(load(), "@P@: cannot open: No such file or directory");
    snprintf(conf_path, sizeof conf_path, "%s/kme.conf", dir);
}

static void test_directory_as_file(void **state)
{
    (void)state;
    snprintf(conf_path, sizeof conf_path, "%s/db", dir);
    expect_msg(load(), "@P@: cannot read: Is a directory");
    snprintf(conf_path, sizeof conf_path, "%s/kme.conf", dir);
}

/* --- syntax ---------------------------------------------------------------- */

static void test_unknown_section(void **state)
{
    (void)state;
    expect_text_error("[kme]\nid = K\n\n[bogus]\nx = 1\n", "@P@:4: unknown section [bogus]");
    expect_text_error("[]\n", "@P@:1: unknown section []");
    /* a section name is case-sensitive */
    expect_text_error("[KME]\n", "@P@:1: unknown section [KME]");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_base_error("threads", "thread = 3", "@P@:14: unknown key 'thread' in [sae_api]");
    /* a key of another section */
    expect_base_error("threads", "id = X", "@P@:14: unknown key 'id' in [sae_api]");
    expect_base_error("threads", " = 3", "@P@:14: unknown key '' in [sae_api]");
}

static void test_key_outside_section(void **state)
{
    (void)state;
    expect_text_error("# comment\nid = KME-T\n[kme]\n", "@P@:2: key 'id' outside of any section");
}

/* A NUL byte would cut the value short (the database in another place,
 * an SAE list without its tail): refused with FILE:LINE. */
static void test_nul_byte(void **state)
{
    (void)state;
    expect_base_error("database", "database = @D@/db/kme.db@0@.elsewhere",
                      "@P@:4: contains a NUL byte");
    expect_base_error("local", "local = SAE_1@0@ SAE_2", "@P@:18: contains a NUL byte");
}

static void test_key_given_twice(void **state)
{
    (void)state;
    expect_base_error("threads", "threads = 3\nthreads = 4",
                      "@P@:15: [sae_api] threads: given twice (first on line 14)");
    /* also when the section is opened a second time */
    expect_base_error("key_size", "key_size = 512\n[kme]\nsync = normal",
                      "@P@:23: [kme] sync: given twice (first on line 5)");
}

static void test_malformed_section_header(void **state)
{
    (void)state;
    expect_base_error("threads", "[limits", "@P@:14: malformed section header '[limits'");
    expect_base_error("threads", "[limits] x", "@P@:14: malformed section header '[limits] x'");
    expect_base_error("threads", "[limits]]", "@P@:14: malformed section header '[limits]]'");
}

static void test_missing_equals(void **state)
{
    (void)state;
    expect_base_error("threads", "threads 3", "@P@:14: expected 'key = value', got 'threads 3'");
    expect_base_error("id", "KME-T", "@P@:3: expected 'key = value', got 'KME-T'");
}

static void test_missing_required_keys(void **state)
{
    (void)state;
    static const struct { const char *key, *section; } req[] = {
        { "id", "kme" }, { "database", "kme" }, { "listen", "sae_api" }, { "cert", "sae_api" },
        { "key", "sae_api" }, { "ca", "sae_api" }, { "local", "saes" },
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        char msg[128];
        snprintf(msg, sizeof msg, "@P@: [%s] %s: missing (required)", req[i].section, req[i].key);
        expect_base_error(req[i].key, "", msg);
    }
    /* a commented-out key is missing too */
    expect_base_error("ca", "# ca = x", "@P@: [sae_api] ca: missing (required)");
}

static void test_empty_values(void **state)
{
    (void)state;
    expect_base_error("id", "id =", "@P@:3: [kme] id: empty value");
    expect_base_error("sync", "sync = ", "@P@:5: [kme] sync: empty value");
    expect_base_error("listen", "listen =   # nothing", "@P@:9: [sae_api] listen: empty value");
    expect_base_error("cert", "cert =", "@P@:10: [sae_api] cert: empty value");
    expect_base_error("threads", "threads =", "@P@:14: [sae_api] threads: empty value");
    expect_base_error("local", "local = \t ", "@P@:18: [saes] local: empty value");
    expect_base_error("key_size", "key_size =", "@P@:21: [limits] key_size: empty value");
}

/* --- values ------------------------------------------------------------------ */

static void test_integers(void **state)
{
    (void)state;
    expect_base_error("threads", "threads = 257", "@P@:14: [sae_api] threads: '257' is not an integer in 0..256");
    expect_base_error("threads", "threads = -1", "@P@:14: [sae_api] threads: '-1' is not an integer in 0..256");
    expect_base_error("threads", "threads = +2", "@P@:14: [sae_api] threads: '+2' is not an integer in 0..256");
    expect_base_error("threads", "threads = two", "@P@:14: [sae_api] threads: 'two' is not an integer in 0..256");
    expect_base_error("threads", "threads = 2.0", "@P@:14: [sae_api] threads: '2.0' is not an integer in 0..256");
    expect_base_error("threads", "threads = 0x10", "@P@:14: [sae_api] threads: '0x10' is not an integer in 0..256");
    expect_base_error("threads", "threads = 1 2", "@P@:14: [sae_api] threads: '1 2' is not an integer in 0..256");
    expect_base_error("key_size", "key_size = 99999999999999999999999",
                      "@P@:21: [limits] key_size: '99999999999999999999999' is not an integer in 8..2147483647");
    expect_base_error("key_size", "key_size = 512\nmax_sae_id_count = 63",
                      "@P@:22: [limits] max_sae_id_count: '63' is not an integer in 0..62");
    expect_base_error("key_size", "key_size = 512\nkey_ttl = 0",
                      "@P@:22: [limits] key_ttl: '0' is not an integer in 1..31536000");
    expect_base_error("key_size", "key_size = 512\nmaintenance_ms = 9",
                      "@P@:22: [limits] maintenance_ms: '9' is not an integer in 10..3600000");
    /* the bounds themselves are accepted */
    write_base_with("key_size", "key_size = 512\nmax_sae_id_count = 62\nmax_key_per_request = 1000000\n"
                                "local_rate_bps = 0\nkey_ttl = 31536000\nmaintenance_ms = 10");
    assert_null(load());
    write_base_with("threads", "threads = 256");
    assert_null(load());
    /* 0: chosen by the sync mode (the base file has sync = full) */
    write_base_with("threads", "threads = 0");
    kme_config cfg;
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.threads, 32);
    kme_config_free(&cfg);
}

static void test_enumerations(void **state)
{
    (void)state;
    expect_base_error("sync", "sync = fast", "@P@:5: [kme] sync: 'fast' is not one of: normal, full");
    expect_base_error("sync", "sync = FULL", "@P@:5: [kme] sync: 'FULL' is not one of: normal, full");
    expect_base_error("log_level", "log_level = loud",
                      "@P@:6: [kme] log_level: 'loud' is not one of: error, warn, info, debug");
    expect_base_error("identity", "identity = san", "@P@:13: [sae_api] identity: 'san' is not one of: cn, uri-san");
    write_base_with("identity", "identity = cn");
    assert_null(load());
}

static void test_ids(void **state)
{
    (void)state;
    expect_base_error("id", "id = KME T", "@P@:3: [kme] id: 'KME T' must be printable text without spaces");
    expect_base_error("id", "id = KME\x7f", "@P@:3: [kme] id: 'KME\x7f' must be printable text without spaces");
    expect_base_error("local", "local = SAE_1 SAE_2 SAE_1", "@P@:18: [saes] local: SAE ID 'SAE_1' listed twice");
    expect_base_error("local", "local = A\x01", "@P@:18: [saes] local: 'A\x01' is not a valid SAE ID");
    char longid[300] = "local = ";
    memset(longid + 8, 'S', 257);
    longid[8 + 257] = '\0';
    expect_base_error("local", longid,
                      "@P@:18: [saes] local: an SAE ID of 257 characters (at most 256)");
    longid[8 + 256] = '\0'; /* 256 characters: accepted */
    write_base_with("local", longid);
    assert_null(load());
}

static void test_listen(void **state)
{
    (void)state;
    const char *noport = "has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)";
    char msg[256];
    snprintf(msg, sizeof msg, "@P@:9: [sae_api] listen: '127.0.0.1' %s", noport);
    expect_base_error("listen", "listen = 127.0.0.1", msg);
    snprintf(msg, sizeof msg, "@P@:9: [sae_api] listen: '127.0.0.1:' %s", noport);
    expect_base_error("listen", "listen = 127.0.0.1:", msg);
    snprintf(msg, sizeof msg, "@P@:9: [sae_api] listen: '[::1]' %s", noport);
    expect_base_error("listen", "listen = [::1]", msg);
    expect_base_error("listen", "listen = 127.0.0.1:65536",
                      "@P@:9: [sae_api] listen: port '65536' is not a number in 0..65535");
    expect_base_error("listen", "listen = 127.0.0.1:99999999999999999999",
                      "@P@:9: [sae_api] listen: port '99999999999999999999' is not a number in 0..65535");
    expect_base_error("listen", "listen = 127.0.0.1:-1",
                      "@P@:9: [sae_api] listen: port '-1' is not a number in 0..65535");
    expect_base_error("listen", "listen = 127.0.0.1:http",
                      "@P@:9: [sae_api] listen: port 'http' is not a number in 0..65535");
    expect_base_error("listen", "listen = localhost:8443",
                      "@P@:9: [sae_api] listen: 'localhost' is not a numeric IPv4 address");
    expect_base_error("listen", "listen = 127.0.0.256:8443",
                      "@P@:9: [sae_api] listen: '127.0.0.256' is not a numeric IPv4 address");
    expect_base_error("listen", "listen = :8443", "@P@:9: [sae_api] listen: ':8443' has no address");
    expect_base_error("listen", "listen = [127.0.0.1]:8443",
                      "@P@:9: [sae_api] listen: '127.0.0.1' is not a numeric IPv6 address");
    expect_base_error("listen", "listen = [::1:8443",
                      "@P@:9: [sae_api] listen: '[::1:8443' lacks the ']' of [IPV6]:PORT");
    expect_base_error("listen", "listen = ::1:8443",
                      "@P@:9: [sae_api] listen: '::1:8443': write an IPv6 address in brackets, [ADDRESS]:PORT");

    /* accepted: IPv6 in brackets, port 0 and 65535 */
    kme_config cfg;
    write_base_with("listen", "listen = [fe80::1:2]:65535");
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.listen_host, "fe80::1:2");
    assert_int_equal(cfg.listen_port, 65535);
    kme_config_free(&cfg);
    write_base_with("listen", "listen = [::]:0");
    assert_int_equal(kme_config_load(conf_path, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.listen_host, "::");
    assert_int_equal(cfg.listen_port, 0);
    kme_config_free(&cfg);
}

/* --- files and directories ------------------------------------------------- */

static void test_certificate_files(void **state)
{
    (void)state;
    expect_base_error("cert", "cert = @D@/none.crt",
                      "@P@:10: [sae_api] cert: cannot read '@D@/none.crt': No such file or directory");
    expect_base_error("ca", "ca = @D@/db", "@P@:12: [sae_api] ca: '@D@/db' is not a regular file");
    expect_base_error("key", "key = @D@/kme.crt/x",
                      "@P@:11: [sae_api] key: cannot read '@D@/kme.crt/x': Not a directory");

    /* a file we may not read (for "nobody" when running as root) */
    char p[512];
    snprintf(p, sizeof p, "%s/secret.key", dir);
    write_file(p, "x\n", geteuid() == 0 ? 0600 : 0000);
    write_base_with("key", "key = @D@/secret.key");
    expect_msg(load_unprivileged(), "@P@:11: [sae_api] key: cannot read '@D@/secret.key': Permission denied");
    /* the same file once readable: the rest of the file is fine */
    assert_int_equal(chmod(p, 0644), 0);
    assert_null(load_unprivileged());
}

static void test_database_directory(void **state)
{
    (void)state;
    expect_base_error("database", "database = @D@/nodir/kme.db",
                      "@P@:4: [kme] database: directory '@D@/nodir' of '@D@/nodir/kme.db': No such file or directory");
    expect_base_error("database", "database = @D@/kme.crt/kme.db",
                      "@P@:4: [kme] database: '@D@/kme.crt' in '@D@/kme.crt/kme.db' is not a directory");
    expect_base_error("port_file", "port_file = @D@/run/kme.port",
                      "@P@:15: [sae_api] port_file: directory '@D@/run' of '@D@/run/kme.port': No such file or directory");

    /* a directory we may not write to */
    char p[512];
    snprintf(p, sizeof p, "%s/ro", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    if (geteuid() != 0)
        assert_int_equal(chmod(p, 0555), 0);
    write_base_with("database", "database = @D@/ro/kme.db");
    expect_msg(load_unprivileged(), "@P@:4: [kme] database: directory '@D@/ro' is not writable: Permission denied");
    assert_int_equal(chmod(p, 0777), 0);
    assert_null(load_unprivileged());
}

/* --- relations between [limits] keys ------------------------------------- */

static void test_relations(void **state)
{
    (void)state;
    /* key_size outside min_key_size..max_key_size */
    expect_base_error("key_size", "key_size = 32",
                      "@P@:21: [limits] key_size: 32 is outside min_key_size..max_key_size (64..65536)");
    expect_base_error("key_size", "key_size = 65544",
                      "@P@:21: [limits] key_size: 65544 is outside min_key_size..max_key_size (64..65536)");
    expect_base_error("key_size", "key_size = 512\nmax_key_size = 256",
                      "@P@:21: [limits] key_size: 512 is outside min_key_size..max_key_size (64..256)");
    /* not multiples of 8: the offending key and its line */
    expect_base_error("key_size", "key_size = 100", "@P@:21: [limits] key_size: 100 is not a multiple of 8");
    expect_base_error("key_size", "key_size = 512\nmin_key_size = 65",
                      "@P@:22: [limits] min_key_size: 65 is not a multiple of 8");
    expect_base_error("key_size", "key_size = 512\n\nmax_key_size = 1001",
                      "@P@:23: [limits] max_key_size: 1001 is not a multiple of 8");
    /* min_key_size > max_key_size */
    expect_base_error("key_size", "key_size = 512\nmin_key_size = 1024\nmax_key_size = 512",
                      "@P@:22: [limits] min_key_size: 1024 exceeds max_key_size (512)");
    /* the local pool must hold one key of max_key_size */
    expect_base_error("key_size", "key_size = 512\nlocal_pool_bits = 65535",
                      "@P@:22: [limits] local_pool_bits: 65535 cannot hold one key of max_key_size (65536)");
    write_base_with("key_size", "key_size = 512\nlocal_pool_bits = 65536");
    assert_null(load());
    /* a default that breaks a relation has no line */
    write_conf("[kme]\nid = K\ndatabase = @D@/kme.db\n"
               "[sae_api]\nlisten = 127.0.0.1:0\ncert = @D@/kme.crt\nkey = @D@/kme.key\nca = @D@/ca.crt\n"
               "[saes]\nlocal = S\n[limits]\nmin_key_size = 512\n");
    expect_msg(load(), "@P@: [limits] key_size: 256 is outside min_key_size..max_key_size (512..65536)");
    /* equal bounds are fine */
    write_base_with("key_size", "key_size = 512\nmin_key_size = 512\nmax_key_size = 512");
    assert_null(load());
}

/* Several QKD links: [link ID] sections (docs/network.md); [link] with id
 * stays valid; the two kinds never mix; one link per peer. */
#define PEERS_AND_API "[peer_api]\nlisten = 127.0.0.1:0\nca = @D@/ca.crt\n" \
    "[peer KME-B]\naddress = 127.0.0.1:9001\nsaes = SB\n" \
    "[peer KME-C]\naddress = 127.0.0.2:9002\nsaes = SC\n"

static void write_links(const char *links)
{
    char buf[4096] = "";
    for (size_t i = 0; i < BASE_LINES; i++) {
        strcat(buf, BASE[i]);
        strcat(buf, "\n");
    }
    strcat(buf, PEERS_AND_API); /* lines 22..30 */
    strcat(buf, links);         /* from line 31 */
    write_conf(buf);
}

static void test_several_links(void **state)
{
    (void)state;
    write_links("[link LINK-AB]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\n"
                "[link LINK-AC]\nlisten = 127.0.0.1:9544\nside = B\npeer = KME-C\n"
                "pool_cap_bits = 4096\nallow_from = 127.0.0.0/8\n");
    kme_config cfg;
    if (kme_config_load(conf_path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.n_links, 2);
    assert_true(cfg.has_link);
    assert_string_equal(cfg.links[0].id, "LINK-AB");
    assert_string_equal(cfg.links[0].peer, "KME-B");
    assert_int_equal(cfg.links[0].side, KME_LINK_SIDE_A);
    assert_int_equal(cfg.links[0].pool_cap_bits, 268435456); /* the default, per link */
    assert_int_equal(cfg.links[0].block_ttl_ms, 60000);
    assert_int_equal(cfg.links[0].allow.n, 4); /* loopback x2, its address, its peer's host */
    assert_string_equal(cfg.links[1].id, "LINK-AC");
    assert_int_equal(cfg.links[1].side, KME_LINK_SIDE_B);
    assert_int_equal(cfg.links[1].pool_cap_bits, 4096);
    assert_int_equal(cfg.links[1].allow.n, 1);
    assert_ptr_equal(kme_config_link_to(&cfg, "KME-C"), &cfg.links[1]);
    assert_null(kme_config_link_to(&cfg, "KME-X"));
    kme_config_free(&cfg);

    /* the one-link form keeps its id key */
    write_links("[link]\nlisten = 127.0.0.1:9543\nid = LINK-AB\nside = A\npeer = KME-B\n");
    assert_null(load());
    write_links("[link]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\n");
    expect_msg(load(), "@P@:31: [link]: missing key 'id' (required)");
    write_links("[link LINK-AB]\nlisten = 127.0.0.1:9543\nid = LINK-AB\nside = A\npeer = KME-B\n");
    expect_msg(load(), "@P@:33: [link] id: this [link LINK-AB] has its ID in the section header; "
                       "remove this key");
    write_links("[link LINK-AB]\nlisten = 127.0.0.1:9543\npeer = KME-B\n");
    expect_msg(load(), "@P@:31: [link LINK-AB]: missing key 'side' (required)");
    /* kinds do not mix; IDs, peers and addresses are unique */
    write_links("[link]\nlisten = 127.0.0.1:9543\nid = L1\nside = A\npeer = KME-B\n"
                "[link L2]\nlisten = 127.0.0.1:9544\nside = A\npeer = KME-C\n");
    expect_msg(load(), "@P@:36: [link ID]: give one [link] section, or one [link ID] section per "
                       "link, not both kinds nor two [link]");
    write_links("[link L1]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\n"
                "[link L1]\nlisten = 127.0.0.1:9544\nside = A\npeer = KME-C\n");
    expect_msg(load(), "@P@:35: [link L1] given twice");
    write_links("[link L1]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\n"
                "[link L2]\nlisten = 127.0.0.1:9544\nside = A\npeer = KME-B\n");
    expect_msg(load(), "@P@:35: [link L2] peer: link L1 already goes to KME-B (one link per pair "
                       "of KMEs)");
    write_links("[link L1]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\n"
                "[link L2]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-C\n");
    expect_msg(load(), "@P@:35: [link L2] listen: 127.0.0.1:9543 is already the address of link L1");
    write_links("[link L1]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-X\n");
    expect_msg(load(), "@P@: [link L1] peer: 'KME-X' is not a configured [peer ...]");
    write_links("[link L1]\nlisten = 127.0.0.1:9543\nside = A\npeer = KME-B\nside = B\n");
    expect_msg(load(), "@P@:35: [link] side: given twice (first on line 33)");
}

/* The shipped example differs from a test config only in its paths. */
static void test_example_file_parses_up_to_paths(void **state)
{
    (void)state;
    const char *src = getenv("EXAMPLE_CONF");
    if (!src)
        skip();
    FILE *f = fopen(src, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* point its files at ours */
    char out[12000] = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "database", 8))
            line = "database = @D@/db/kme.db";
        else if (!strncmp(line, "cert ", 5))
            line = "cert = @D@/kme.crt";
        else if (!strncmp(line, "key ", 4))
            line = "key = @D@/kme.key";
        else if (!strncmp(line, "ca ", 3))
            line = "ca = @D@/ca.crt";
        else if (!strncmp(line, "port_file", 9))
            line = "port_file = @D@/kme.port";
        else if (!strncmp(line, "crl ", 4)) /* any readable file: the CRL is read at start */
            line = "crl = @D@/ca.crt";
        strcat(out, line);
        strcat(out, "\n");
    }
    write_conf(out);
    kme_config cfg;
    if (kme_config_load(conf_path, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.id, "KME-A");
    assert_int_equal(cfg.n_local_saes, 3);
    assert_int_equal(cfg.n_peers, 1);
    assert_true(cfg.has_peer_api && cfg.has_link);
    assert_int_equal(cfg.listen_port, 8443);
    kme_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_good_file_values),
        T(test_several_links),
        T(test_minimal_file_defaults),
        T(test_sae_limits),
        T(test_operations_keys),
        T(test_comments_blank_lines_and_spacing),
        T(test_missing_file),
        T(test_directory_as_file),
        T(test_unknown_section),
        T(test_unknown_key),
        T(test_key_outside_section),
        T(test_nul_byte),
        T(test_key_given_twice),
        T(test_malformed_section_header),
        T(test_missing_equals),
        T(test_missing_required_keys),
        T(test_empty_values),
        T(test_integers),
        T(test_enumerations),
        T(test_ids),
        T(test_listen),
        T(test_certificate_files),
        T(test_database_directory),
        T(test_relations),
        T(test_example_file_parses_up_to_paths),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
