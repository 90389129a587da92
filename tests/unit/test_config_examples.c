/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_config_examples.c - every key a program knows is documented in its
 * shipped example file: walks the key tables of qkd-kme (src/kme/config.c),
 * qkd-link (src/link/config.c) and qumail (src/mail/config.c) and fails
 * naming each key missing from etc/kme.conf.example, etc/link.conf.example
 * or etc/qumail.conf.example.  A key counts as documented when its section
 * holds a "key = " line, live or commented out ("# key = ", as qumail's
 * optional [smtp] and [imap]).  Also keeps docs/kme-pair.md free of the
 * refused "role = " key.  Whether the examples pass each program's own
 * checks is tests/examples/check-examples (qkd-kme/qkd-link --check).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kme/config.h"
#include "link/config.h"
#include "mail/config.h"

typedef bool (*key_walker)(size_t i, const char **section, const char **name);

/* The line without a leading "#" comment mark and white space. */
static const char *uncommented(const char *line)
{
    while (*line == ' ' || *line == '\t' || *line == '#')
        line++;
    return line;
}

/* Is "[section" (then ']' or a space: "[peer KME-B]") the header of line? */
static bool is_header_of(const char *line, const char *section)
{
    size_t n = strlen(section);
    return line[0] == '[' && strncmp(line + 1, section, n) == 0
           && (line[n + 1] == ']' || line[n + 1] == ' ');
}

/* Does line start with "name" then optional blanks and '='? */
static bool is_pair_of(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0)
        return false;
    line += n;
    while (*line == ' ' || *line == '\t')
        line++;
    return *line == '=';
}

static bool documented(const char *path, const char *section, const char *name)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char buf[1024];
    bool in_section = false, found = false;
    while (!found && fgets(buf, sizeof buf, f)) {
        const char *line = uncommented(buf);
        if (line[0] == '[')
            in_section = is_header_of(line, section);
        else if (in_section && is_pair_of(line, name))
            found = true;
    }
    fclose(f);
    return found;
}

static void check_table(const char *example_env, key_walker walk)
{
    const char *path = getenv(example_env);
    assert_non_null(path);
    const char *section, *name;
    size_t i = 0, missing = 0;
    for (; walk(i, &section, &name); i++)
        if (!documented(path, section, name)) {
            print_error("%s: [%s] %s is not documented\n", path, section, name);
            missing++;
        }
    assert_true(i > 0);
    assert_int_equal(missing, 0);
}

static void test_kme_example_has_every_key(void **state)
{
    (void)state;
    check_table("KME_EXAMPLE", kme_config_key);
}

static void test_link_example_has_every_key(void **state)
{
    (void)state;
    check_table("LINK_EXAMPLE", link_config_key);
}

static void test_qumail_example_has_every_key(void **state)
{
    (void)state;
    check_table("QUMAIL_EXAMPLE", qm_config_key);
}

/* The matcher can fail: a key that is nowhere, or only in another
 * section, is not documented. */
static void test_missing_key_is_caught(void **state)
{
    (void)state;
    assert_false(documented(getenv("KME_EXAMPLE"), "kme", "no_such_key_anywhere"));
    /* a key of another section does not count */
    assert_false(documented(getenv("KME_EXAMPLE"), "saes", "id"));
    assert_true(documented(getenv("KME_EXAMPLE"), "kme", "id"));
}

/* The daemon refuses "role"; the pair guide must not show it. */
static void test_pair_guide_has_no_role_key(void **state)
{
    (void)state;
    const char *path = getenv("KME_PAIR_DOC");
    assert_non_null(path);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    unsigned line = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (strstr(buf, "role = "))
            fail_msg("%s:%u shows 'role = ' (the key is 'side')", path, line);
    }
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kme_example_has_every_key),
        cmocka_unit_test(test_link_example_has_every_key),
        cmocka_unit_test(test_qumail_example_has_every_key),
        cmocka_unit_test(test_missing_key_is_caught),
        cmocka_unit_test(test_pair_guide_has_no_role_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
