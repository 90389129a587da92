/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keys_page.c - the Keys panel of `qumail web` (GET /keys): for each
 * address-book contact, the KME's `status` for the pair (me as master, the
 * contact as slave): stored keys, key size, the KME IDs, and a warning when
 * the pool is low.  Asked afresh on every view ("refreshed on demand"),
 * through the server's one libqkd014 client, whose TLS connection to the
 * KME stays open between requests.  `status` uses no key.  At most
 * WEB_KEYS_ROWS contacts are asked, so a large address book cannot turn a
 * page view into thousands of KME calls.
 */
#include "web/pages.h"

#include <stdio.h>
#include <string.h>

#include "qkd014.h"

#define WEB_KEYS_ROWS 50
#define WEB_KEYS_LOW_BITS (1024 * 1024)   /* under 1 Mbit: Level 1 messages over 128 KiB fail */

static void cell(html_buf *b, const char *text)
{
    html_raw(b, "<td>");
    html_text(b, text ? text : "-");
    html_raw(b, "</td>");
}

static void status_cells(html_buf *b, const qkd014_status *st)
{
    long long bits = (long long)st->stored_key_count * st->key_size;
    char kmes[300];
    html_rawf(b, "<td>%d</td><td>%d bits</td>", (int)st->stored_key_count, (int)st->key_size);
    snprintf(kmes, sizeof kmes, "%s to %s", st->source_kme_id ? st->source_kme_id : "?",
             st->target_kme_id ? st->target_kme_id : "?");
    cell(b, kmes);
    if (bits < WEB_KEYS_LOW_BITS)
        html_rawf(b, "<td class=\"warn\" role=\"status\">Low: %lld bits stored; Level 1 messages "
                     "over %lld bytes cannot be sent now (Level 2 needs 256 bits)</td>",
                  bits, bits / 8 > 32 ? bits / 8 - 32 : 0);
    else
        html_rawf(b, "<td>%lld bits stored</td>", bits);
}

static void error_cells(html_buf *b, qkd014_code rc, qkd014_client *kme)
{
    char text[400];
    if (rc == QKD014_E_TRANSPORT)
        snprintf(text, sizeof text, "KME unreachable: %s. Reload this page to retry.",
                 qkd014_errmsg(kme));
    else
        snprintf(text, sizeof text, "%s: %s", qkd014_strerror(rc), qkd014_errmsg(kme));
    html_raw(b, "<td colspan=\"4\" class=\"warn\" role=\"alert\">");
    html_text(b, text);
    html_raw(b, "</td>");
}

void web_page_keys(const web_request *rq, web_reply *out)
{
    html_buf *b = &out->body;
    const qm_config *cfg = rq->cfg;
    size_t n = cfg->n_contacts < WEB_KEYS_ROWS ? cfg->n_contacts : WEB_KEYS_ROWS;
    html_begin(b, "Keys", true);
    html_raw(b, "<h1>Keys</h1>\n<p>What your KME holds for each contact, asked now (no key "
                "is used). <a href=\"/keys\">Refresh</a></p>\n");
    html_raw(b, "<table class=\"inbox keys\"><thead><tr><th scope=\"col\">Contact</th>"
                "<th scope=\"col\">SAE ID</th><th scope=\"col\">Stored keys</th>"
                "<th scope=\"col\">Key size</th><th scope=\"col\">KMEs</th>"
                "<th scope=\"col\">Pool</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const qm_contact *c = &cfg->contacts[i];
        qkd014_status *st = NULL;
        html_raw(b, "<tr>");
        cell(b, c->address);
        cell(b, c->sae_id);
        qkd014_code rc = qkd014_get_status(rq->kme, c->sae_id, &st);
        if (rc == QKD014_OK)
            status_cells(b, st);
        else
            error_cells(b, rc, rq->kme);
        qkd014_status_free(st);
        html_raw(b, "</tr>\n");
    }
    html_raw(b, "</tbody></table>\n");
    if (n < cfg->n_contacts)
        html_rawf(b, "<p class=\"note\">The first %zu of %zu contacts.</p>\n", n, cfg->n_contacts);
    html_end(b);
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
}
