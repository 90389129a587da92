/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_web_units.c - the parts of `qumail web` that judge hostile input,
 * offline (cmocka): form bodies (src/web/form.c), cookies, tokens and
 * sessions (auth.c), the Host/Origin/Sec-Fetch-Site rules (gate.c) and
 * HTML escaping (html.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "web/auth.h"
#include "web/form.h"
#include "web/gate.h"
#include "web/html.h"

static web_form_err parse(const char *body, web_form *f)
{
    return web_form_parse(body, strlen(body), f);
}

static void test_form_decodes(void **state)
{
    web_form f;
    (void)state;
    assert_int_equal(parse("csrf=ab&subject=Gr%C3%BC%C3%9Fe+aus+Wien&to=&&empty", &f), WEB_FORM_OK);
    assert_string_equal(web_form_get(&f, "subject"), "Gr\xC3\xBC\xC3\x9F" "e aus Wien");
    assert_string_equal(web_form_get(&f, "to"), "");
    assert_string_equal(web_form_get(&f, "empty"), "");
    assert_null(web_form_get(&f, "cc"));
    web_form_free(&f);
}

static void test_form_refuses(void **state)
{
    static const struct { const char *body; web_form_err want; } cases[] = {
        { "a=%zz", WEB_FORM_BAD_ESCAPE },  { "a=%4", WEB_FORM_BAD_ESCAPE },
        { "a=%", WEB_FORM_BAD_ESCAPE },    { "a=x%00y", WEB_FORM_BAD_ESCAPE },
        { "A=1", WEB_FORM_BAD_NAME },      { "=1", WEB_FORM_BAD_NAME },
        { "a b=1", WEB_FORM_BAD_NAME },    { "a%3Cb=1", WEB_FORM_BAD_NAME },
        { "csrf=1&csrf=2", WEB_FORM_DUPLICATE },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", WEB_FORM_BAD_NAME },   /* 33 bytes */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        web_form f;
        assert_int_equal(parse(cases[i].body, &f), cases[i].want);
        web_form_free(&f);
    }
}

static void test_form_bounds(void **state)
{
    web_form f;
    char *big = malloc(WEB_FORM_MAX_BODY + 2);
    (void)state;
    assert_non_null(big);
    memset(big, 'a', WEB_FORM_MAX_BODY + 1);
    big[0] = 'v', big[1] = '=';
    assert_int_equal(web_form_parse(big, WEB_FORM_MAX_BODY + 1, &f), WEB_FORM_TOO_LARGE);
    web_form_free(&f);
    assert_int_equal(web_form_parse(big, WEB_FORM_MAX_BODY, &f), WEB_FORM_OK);
    assert_int_equal(strlen(web_form_get(&f, "v")), WEB_FORM_MAX_BODY - 2);
    web_form_free(&f);
    free(big);
    char many[WEB_FORM_MAX_FIELDS * 8 + 16] = "";
    for (int i = 0; i <= WEB_FORM_MAX_FIELDS; i++) {   /* one field too many */
        char one[16];
        snprintf(one, sizeof one, "f%d=1&", i);
        strcat(many, one);
    }
    assert_int_equal(parse(many, &f), WEB_FORM_TOO_LARGE);
    web_form_free(&f);
}

static void test_cookie(void **state)
{
    char out[WEB_SECRET_HEX + 1];
    (void)state;
    assert_string_equal(web_cookie_value("a=1; qumail_80=xyz; b=2", "qumail_80", out, sizeof out),
                        "xyz");
    assert_null(web_cookie_value("qumail_8080=xyz", "qumail_80", out, sizeof out));
    assert_null(web_cookie_value("xqumail_80=xyz", "qumail_80", out, sizeof out));
    assert_null(web_cookie_value("", "qumail_80", out, sizeof out));
    char longv[200] = "qumail_80=";
    memset(longv + 10, 'a', 100);
    assert_null(web_cookie_value(longv, "qumail_80", out, sizeof out));
}

static void test_sessions(void **state)
{
    web_auth a;
    (void)state;
    web_auth_init(&a, 10, 100);
    assert_int_equal(strlen(a.token), WEB_SECRET_HEX);
    assert_true(web_auth_token_ok(&a, a.token));
    char wrong[WEB_SECRET_HEX + 2];
    memcpy(wrong, a.token, sizeof a.token);
    wrong[5] = wrong[5] == '0' ? '1' : '0';
    assert_false(web_auth_token_ok(&a, wrong));
    assert_false(web_auth_token_ok(&a, ""));
    memcpy(wrong, a.token, sizeof a.token);
    strcat(wrong, "0");   /* the token and one more digit */
    assert_false(web_auth_token_ok(&a, wrong));

    char id[WEB_SECRET_HEX + 1], csrf[WEB_SECRET_HEX + 1];
    const web_session *s = web_auth_open(&a, 1000);
    memcpy(id, s->id, sizeof id);
    memcpy(csrf, s->csrf, sizeof csrf);
    assert_string_not_equal(id, csrf);
    assert_non_null(web_auth_find(&a, id, 5000));
    assert_true(web_auth_csrf_ok(web_auth_find(&a, id, 14000), csrf));
    assert_false(web_auth_csrf_ok(web_auth_find(&a, id, 14000), id));
    assert_null(web_auth_find(&a, id, 24001));           /* idle past 10 s */
    assert_null(web_auth_find(&a, id, 24002));           /* and stays gone */

    s = web_auth_open(&a, 0);                            /* the 100 s cap */
    memcpy(id, s->id, sizeof id);
    for (uint64_t t = 9000; t < 100000; t += 9000)
        assert_non_null(web_auth_find(&a, id, t));
    assert_null(web_auth_find(&a, id, 100000));
    web_auth_wipe(&a);
}

static void test_sessions_full(void **state)
{
    web_auth a;
    char first[WEB_SECRET_HEX + 1];
    (void)state;
    web_auth_init(&a, 1000, 1000);
    memcpy(first, web_auth_open(&a, 1)->id, sizeof first);
    for (int i = 0; i < WEB_MAX_SESSIONS; i++)
        web_auth_open(&a, 2 + (uint64_t)i);
    assert_null(web_auth_find(&a, first, 100));   /* the least recently used made room */
    web_auth_wipe(&a);
}

static void test_gate(void **state)
{
    (void)state;
    assert_true(web_host_ok("127.0.0.1:8080", 8080));
    assert_true(web_host_ok("localhost:8080", 8080));
    assert_false(web_host_ok(NULL, 8080));
    assert_false(web_host_ok("127.0.0.1", 8080));
    assert_false(web_host_ok("127.0.0.1:80800", 8080));
    assert_false(web_host_ok("evil.example:8080", 8080));
    assert_false(web_host_ok("localhost.evil.example:8080", 8080));
    assert_true(web_origin_ok(NULL, NULL, 8080));
    assert_true(web_origin_ok("http://localhost:8080", NULL, 8080));
    assert_true(web_origin_ok("http://127.0.0.1:8080", "same-origin", 8080));
    assert_false(web_origin_ok("null", NULL, 8080));          /* not a browser's own page */
    assert_false(web_origin_ok("null", "same-site", 8080));
    assert_false(web_origin_ok("null", "cross-site", 8080));
    assert_true(web_origin_ok("null", "same-origin", 8080));  /* ours, under no-referrer */
    assert_false(web_origin_ok("https://127.0.0.1:8080", "same-origin", 8080));
    assert_false(web_origin_ok("http://127.0.0.1:8081", "same-origin", 8080));
    assert_true(web_fetch_site_ok(NULL));
    assert_true(web_fetch_site_ok("none"));
    assert_true(web_fetch_site_ok("same-origin"));
    assert_false(web_fetch_site_ok("same-site"));
    assert_false(web_fetch_site_ok("cross-site"));
}

static void test_html_escape(void **state)
{
    html_buf b = {0};
    (void)state;
    html_text(&b, "<script>alert('x')</script> & \"q\" \x1b[31m caf\xC3\xA9 \xC3 \xED\xA0\x80\n");
    assert_false(b.oom);
    assert_string_equal(b.p, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot; "
                             "\xEF\xBF\xBD[31m caf\xC3\xA9 \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD"
                             "\xEF\xBF\xBD\n");
    html_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_decodes), cmocka_unit_test(test_form_refuses),
        cmocka_unit_test(test_form_bounds),  cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_sessions),     cmocka_unit_test(test_sessions_full),
        cmocka_unit_test(test_gate),         cmocka_unit_test(test_html_escape),
    };
    if (secret_process_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
