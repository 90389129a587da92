/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ini.c - the line splitter shared by the configuration files of
 * qkd-kme, qkd-link and qumail (ini_split_line in src/common/ini.c):
 * blank and comment lines, sections with and without an argument, key =
 * value pairs, and the two malformed shapes with their messages; the
 * reader ini_read (what its handler sees, in order, and where it stops;
 * a line with a NUL byte is an error); and the key-table engine every
 * program's configuration reads through (ini_table: typed setters and
 * their shared messages, unknown and repeated keys, defaults, required
 * keys of sections in force, a custom setter, a second base).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ini.h"
#include "common/log.h"

static void expect_split(const char *text, ini_kind kind, const char *name, const char *arg)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), kind);
    assert_int_equal(l.kind, kind);
    assert_string_equal(l.name, name);
    assert_string_equal(l.arg, arg);
    assert_string_equal(l.why, "");
}

static void expect_bad(const char *text, const char *why)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), INI_BAD);
    assert_string_equal(l.why, why);
}

static void test_blank(void **state)
{
    (void)state;
    expect_split("", INI_BLANK, "", "");
    expect_split("   \t ", INI_BLANK, "", "");
    expect_split("# only a comment = [x]", INI_BLANK, "", "");
    expect_split("  # indented comment", INI_BLANK, "", "");
}

static void test_sections(void **state)
{
    (void)state;
    expect_split("[kme]", INI_SECTION, "kme", "");
    expect_split("  [ sae_api ]  # the SAE listener", INI_SECTION, "sae_api", "");
    expect_split("[peer KME-B]", INI_SECTION, "peer", "KME-B");
    expect_split("[peer \t KME B ]", INI_SECTION, "peer", "KME B");
    expect_split("[]", INI_SECTION, "", "");
}

static void test_pairs(void **state)
{
    (void)state;
    expect_split("id = KME-A", INI_PAIR, "id", "KME-A");
    expect_split("  path=/var/lib/kme#1  # a '#' inside a word stays", INI_PAIR, "path",
                 "/var/lib/kme#1");
    expect_split("empty =", INI_PAIR, "empty", "");
    expect_split("a = b = c", INI_PAIR, "a", "b = c");
    expect_split("bob@example.org = SAE_B1 KME-B", INI_PAIR, "bob@example.org", "SAE_B1 KME-B");
}

static void test_malformed(void **state)
{
    (void)state;
    expect_bad("[limits", "malformed section header '[limits'");
    expect_bad("[limits] x", "malformed section header '[limits] x'");
    expect_bad("[limits]]", "malformed section header '[limits]]'");
    expect_bad("threads 3", "expected 'key = value', got 'threads 3'");
    /* a long line is quoted in part, never overflowing the message */
    char line[400];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), INI_BAD);
    char want[200];
    snprintf(want, sizeof want, "expected 'key = value', got '%.100s'", line);
    assert_string_equal(l.why, want);
}

/* ini_read: what the handler sees, in order, and where it stops. */
typedef struct record {
    char text[1024];
    int stop_at_line; /* a handler returns 7 on this line (-1: none) */
} record;

static int rec(record *r, unsigned line, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(r->text);
    snprintf(r->text + n, sizeof r->text - n, "%u:", line);
    n = strlen(r->text);
    snprintf(r->text + n, sizeof r->text - n, fmt, a, b);
    return (int)line == r->stop_at_line ? 7 : 0;
}

static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    return rec(ud, line, "S(%s|%s) ", name, arg);
}

static int on_pair(void *ud, unsigned line, const char *section, const char *key, char *value)
{
    char kv[256];
    snprintf(kv, sizeof kv, "%s=%s", key, value);
    return rec(ud, line, "P(%s|%s) ", section, kv);
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return rec(ud, line, "E(%s%s) ", why, "");
}

static const ini_handler handler = { on_section, on_pair, on_error };

static int read_text(const char *text, record *r)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = ini_read(f, &handler, r);
    fclose(f);
    return rc;
}

static void test_read(void **state)
{
    (void)state;
    record r = { "", -1 };
    const char *text = "# head\nearly = 1\n[a]\nx = 1\n\n[b c]\ny=2 # note\nbad line\n";
    assert_int_equal(read_text(text, &r), 0);
    assert_string_equal(r.text, "2:E(key 'early' outside of any section) 3:S(a|) 4:P(a|x=1) "
                                "6:S(b|c) 7:P(b|y=2) 8:E(expected 'key = value', got 'bad line') ");
    /* a nonzero return stops the reading and is the result; a refused
     * section is not entered */
    record stop = { "", 3 };
    assert_int_equal(read_text("[a]\nx = 1\n[b]\ny = 2\n", &stop), 7);
    assert_string_equal(stop.text, "1:S(a|) 2:P(a|x=1) 3:S(b|) ");
    /* a directory opens but does not read: line 0 */
    FILE *d = fopen(".", "r");
    if (d == NULL)
        skip();
    record dir = { "", -1 };
    assert_int_equal(ini_read(d, &handler, &dir), 0);
    fclose(d);
    assert_string_equal(dir.text, "0:E(cannot read: Is a directory) ");
}

/* A NUL byte would cut a value short without a word (C strings): the
 * line is refused with its number, the next ones are still read. */
static void test_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "[a]\nkey = /etc/ok\0/../evil\nx = 1\n";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    assert_non_null(f);
    record r = { "", -1 };
    assert_int_equal(ini_read(f, &handler, &r), 0);
    fclose(f);
    assert_string_equal(r.text, "1:S(a|) 2:E(contains a NUL byte) 3:P(a|x=1) ");
}

/* ------------------------------------------------------------ key table */

typedef struct demo {
    char *name, *file;
    int64_t size;
    unsigned threads;
    int mode;
    enum log_level level;
    char *custom;
} demo;

typedef struct demo_peer {
    char *id;
} demo_peer;

static int custom_calls;

/* a custom setter: its own check, then the engine's string store */
static int set_upper(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    custom_calls++;
    if (v[0] < 'A' || v[0] > 'Z')
        return ini_fail(t, line, k, "'%s' must start with a capital", v);
    return ini_store_string(t, line, k, v);
}

static const char *const modes[] = { "fast", "safe", "slow", NULL };
#define DOFF(m) offsetof(demo, m)
static const ini_key demo_keys[] = {
    { "a", "name", INI_ID, true, 0, DOFF(name), 0, 8, NULL, NULL, NULL },
    { "a", "file", INI_FILE, false, 0, DOFF(file), 0, 0, NULL, NULL, NULL },
    { "a", "size", INI_INT, false, 0, DOFF(size), 8, 64, "16", NULL, NULL },
    { "a", "threads", INI_UINT, false, 0, DOFF(threads), 1, 4, "2", NULL, NULL },
    { "a", "mode", INI_ENUM, false, 0, DOFF(mode), 0, 0, "safe", modes, NULL },
    { "a", "log_level", INI_LOGLEVEL, false, 0, DOFF(level), 0, 0, "info", NULL, NULL },
    { "a", "custom", INI_CUSTOM, false, 0, DOFF(custom), 0, 0, NULL, NULL, set_upper },
    { "opt", "must", INI_STRING, true, 0, DOFF(custom), 0, 0, NULL, NULL, NULL },
    { "p", "id", INI_STRING, false, 1, offsetof(demo_peer, id), 0, 0, NULL, NULL, NULL },
};
#define DEMO_N (sizeof demo_keys / sizeof demo_keys[0])

typedef struct demo_run {
    demo d;
    demo_peer peer;
    unsigned lines[DEMO_N];
    char err[512];
    ini_table t;
} demo_run;

static void demo_start(demo_run *r)
{
    memset(r, 0, sizeof *r);
    r->t = (ini_table){ .keys = demo_keys, .n_keys = DEMO_N, .lines = r->lines,
                        .base = { &r->d, &r->peer }, .file = "demo.conf",
                        .err = r->err, .errlen = sizeof r->err };
}

static void demo_free(demo_run *r)
{
    free(r->d.name);
    free(r->d.file);
    free(r->d.custom);
    free(r->peer.id);
}

/* One pair on line 3 of [a]: its result, and the message when refused. */
static int demo_pair(const char *key, const char *value, const char *want_err)
{
    demo_run r;
    demo_start(&r);
    int rc = ini_take_pair(&r.t, 3, "a", key, value);
    if (want_err)
        assert_string_equal(r.err, want_err);
    demo_free(&r);
    return rc;
}

static void test_table_typed_setters(void **state)
{
    (void)state;
    demo_run r;
    demo_start(&r);
    assert_int_equal(ini_take_pair(&r.t, 2, "a", "name", "node-1"), 0);
    assert_int_equal(ini_take_pair(&r.t, 3, "a", "size", "64"), 0);
    assert_int_equal(ini_take_pair(&r.t, 4, "a", "threads", "4"), 0);
    assert_int_equal(ini_take_pair(&r.t, 5, "a", "mode", "slow"), 0);
    assert_int_equal(ini_take_pair(&r.t, 6, "a", "log_level", "debug"), 0);
    assert_int_equal(ini_take_pair(&r.t, 7, "p", "id", "peer-x"), 0);
    assert_string_equal(r.d.name, "node-1");
    assert_int_equal(r.d.size, 64);
    assert_int_equal(r.d.threads, 4);
    assert_int_equal(r.d.mode, 2);
    assert_int_equal(r.d.level, LOG_DEBUG);
    assert_string_equal(r.peer.id, "peer-x"); /* base[1] */
    assert_int_equal(ini_line_of(&r.t, "a", "mode"), 5);
    assert_int_equal(ini_line_of(&r.t, "a", "file"), 0);
    assert_int_equal(ini_line_of(&r.t, "a", "nothing"), 0);
    demo_free(&r);
}

static void test_table_messages(void **state)
{
    (void)state;
    assert_int_equal(demo_pair("nothing", "1", "demo.conf:3: unknown key 'nothing' in [a]"), INI_ERR);
    assert_int_equal(demo_pair("size", "", "demo.conf:3: [a] size: empty value"), INI_ERR);
    demo_pair("size", "7", "demo.conf:3: [a] size: '7' is not an integer in 8..64");
    demo_pair("size", "65", "demo.conf:3: [a] size: '65' is not an integer in 8..64");
    demo_pair("size", "-8", "demo.conf:3: [a] size: '-8' is not an integer in 8..64");
    demo_pair("size", "99999999999999999999", "demo.conf:3: [a] size: '99999999999999999999' is not an integer in 8..64");
    demo_pair("threads", "0", "demo.conf:3: [a] threads: '0' is not an integer in 1..4");
    demo_pair("mode", "Fast", "demo.conf:3: [a] mode: 'Fast' is not one of: fast, safe, slow");
    demo_pair("log_level", "loud", "demo.conf:3: [a] log_level: 'loud' is not one of: error, warn, info, debug");
    demo_pair("name", "two words", "demo.conf:3: [a] name: 'two words' must be printable text without spaces");
    demo_pair("name", "123456789", "demo.conf:3: [a] name: '123456789' must be printable text without spaces");
    assert_int_equal(demo_pair("name", "12345678", NULL), 0); /* max 8 bytes */
    demo_pair("file", "/nonexistent/x", "demo.conf:3: [a] file: cannot read '/nonexistent/x': No such file or directory");
    demo_pair("file", "/", "demo.conf:3: [a] file: '/' is not a regular file");
    custom_calls = 0;
    demo_pair("custom", "lower", "demo.conf:3: [a] custom: 'lower' must start with a capital");
    assert_int_equal(demo_pair("custom", "Upper", NULL), 0);
    assert_int_equal(custom_calls, 2);
}

static void test_table_repeated_key(void **state)
{
    (void)state;
    demo_run r;
    demo_start(&r);
    assert_int_equal(ini_take_pair(&r.t, 2, "a", "size", "16"), 0);
    assert_int_equal(ini_take_pair(&r.t, 9, "a", "size", "32"), INI_ERR);
    assert_string_equal(r.err, "demo.conf:9: [a] size: given twice (first on line 2)");
    assert_int_equal(r.d.size, 16); /* the first value stands */
    demo_free(&r);
}

static bool opt_not_in_force(ini_table *t, const ini_key *k)
{
    (void)t;
    return strcmp(k->section, "opt") != 0;
}

static void test_table_defaults_and_required(void **state)
{
    (void)state;
    demo_run r;
    demo_start(&r);
    /* [a] name missing: required, named with line 0 */
    assert_int_equal(ini_apply_defaults(&r.t, opt_not_in_force), INI_ERR);
    assert_string_equal(r.err, "demo.conf: [a] name: missing (required)");
    demo_free(&r);

    demo_start(&r);
    assert_int_equal(ini_take_pair(&r.t, 2, "a", "name", "n"), 0);
    assert_int_equal(ini_take_pair(&r.t, 3, "a", "size", "40"), 0);
    /* [opt] is not in force: its required key is not asked for */
    assert_int_equal(ini_apply_defaults(&r.t, opt_not_in_force), 0);
    assert_int_equal(r.d.size, 40);     /* given: no default over it */
    assert_int_equal(r.d.threads, 2);   /* defaults, typed */
    assert_int_equal(r.d.mode, 1);
    assert_int_equal(r.d.level, LOG_INFO);
    assert_null(r.d.file);              /* no default */
    demo_free(&r);

    /* every section in force: [opt] must is required */
    demo_start(&r);
    assert_int_equal(ini_take_pair(&r.t, 2, "a", "name", "n"), 0);
    assert_int_equal(ini_apply_defaults(&r.t, NULL), INI_ERR);
    assert_string_equal(r.err, "demo.conf: [opt] must: missing (required)");
    demo_free(&r);
}

static void test_table_sections(void **state)
{
    (void)state;
    demo_run r;
    demo_start(&r);
    assert_true(ini_known_section(&r.t, "a"));
    assert_true(ini_known_section(&r.t, "p"));
    assert_false(ini_known_section(&r.t, "b"));
    size_t idx = 99;
    const ini_key *k = ini_find_key(&r.t, "a", "mode", &idx);
    assert_non_null(k);
    assert_int_equal(idx, 4);
    assert_null(ini_find_key(&r.t, "p", "mode", &idx)); /* a name in another section */
    assert_int_equal(ini_fail(&r.t, 0, NULL, "plain %d", 1), INI_ERR);
    assert_string_equal(r.err, "demo.conf: plain 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_table_typed_setters),
        cmocka_unit_test(test_table_messages),
        cmocka_unit_test(test_table_repeated_key),
        cmocka_unit_test(test_table_defaults_and_required),
        cmocka_unit_test(test_table_sections),
    };
    return cmocka_run_group_tests_name("ini", tests, NULL, NULL);
}
