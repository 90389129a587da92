/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_web_form.c - what `qumail web` parses from any local program: form
 * bodies (src/web/form.c), the Cookie header (src/web/auth.c) and the Host,
 * Origin and Sec-Fetch-Site rules (src/web/gate.c).  Checks that every
 * parsed field is a declared name with a NUL-free value inside the arena,
 * and that HTML escaping (src/web/html.c) of any value leaves no markup.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/auth.h"
#include "web/form.h"
#include "web/gate.h"
#include "web/html.h"

static void check_escaped(const char *value)
{
    html_buf b = {0};
    html_text(&b, value);
    if (b.p && (strchr(b.p, '<') || strchr(b.p, '>') || strchr(b.p, '"') || strchr(b.p, '\'')))
        abort();
    html_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    web_form f;
    if (web_form_parse((const char *)data, size, &f) == WEB_FORM_OK) {
        for (size_t i = 0; i < f.n; i++) {
            size_t len = strlen(f.value[i]);
            if (f.value[i] < f.arena || f.value[i] + len >= f.arena + f.arena_len)
                abort();
            if (strlen(f.name[i]) == 0 || !web_form_get(&f, f.name[i]))
                abort();
            check_escaped(f.value[i]);
        }
    }
    web_form_free(&f);

    char *s = malloc(size + 1), out[WEB_SECRET_HEX + 1];
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    const char *v = web_cookie_value(s, "qumail_8080", out, sizeof out);
    if (v && strlen(v) > WEB_SECRET_HEX)
        abort();
    (void)web_host_ok(s, 8080);
    (void)web_origin_ok(s, "same-origin", 8080);
    (void)web_origin_ok(s, NULL, 8080);
    (void)web_fetch_site_ok(s);
    free(s);
    return 0;
}
