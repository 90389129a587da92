/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pages.c - routes of `qumail web` (pages.h), logout, the stylesheet and
 * the error pages.  The Inbox is inbox_page.c, the Read page
 * message_page.c, the Keys panel keys_page.c.
 */
#include "web/pages.h"

#include <string.h>

#include "web/assets.h"

void web_error_page(web_reply *out, unsigned status, const char *title, const char *text)
{
    out->status = status;
    out->content_type = "text/html; charset=utf-8";
    html_begin(&out->body, title, false);
    html_raw(&out->body, "<h1>");
    html_text(&out->body, title);
    html_raw(&out->body, "</h1>\n<p>");
    html_text(&out->body, text);
    html_raw(&out->body, "</p>\n");
    html_end(&out->body);
}

static void do_logout(web_reply *out)
{
    out->status = 303;
    out->location = "/logged-out";
    out->end_session = true;
}

static void page_css(web_reply *out)
{
    out->status = 200;
    out->content_type = "text/css; charset=utf-8";
    html_raw(&out->body, web_asset_css);
}

/* The keyboard shortcuts (assets/keys.js), under script-src 'self'. */
static void page_js(web_reply *out)
{
    out->status = 200;
    out->content_type = "text/javascript; charset=utf-8";
    html_raw(&out->body, web_asset_keys_js);
}

void web_route(const web_request *rq, web_reply *out)
{
    bool get = strcmp(rq->method, "POST") != 0;
    if (get && strcmp(rq->url, "/") == 0)
        web_page_inbox(rq, out);
    else if (get && strcmp(rq->url, "/keys") == 0)
        web_page_keys(rq, out);
    else if (get && strncmp(rq->url, "/message/", 9) == 0)
        web_page_message(rq, out);
    else if (get && strcmp(rq->url, "/compose") == 0)
        web_page_compose(rq, out);
    else if (!get && strcmp(rq->url, "/compose/send") == 0 && rq->multipart)
        web_compose_send(rq, out);
    else if (get && strncmp(rq->url, "/sent/", 6) == 0)
        web_page_sent(rq, out);
    else if (!get && strcmp(rq->url, "/logout") == 0)
        do_logout(out);
    else
        web_error_page(out, 404, "Not found", "There is no such page.");
}

bool web_route_public(const char *url)
{
    return strcmp(url, "/static/qumail.css") == 0 || strcmp(url, "/static/keys.js") == 0 ||
           strcmp(url, "/logged-out") == 0;
}

void web_route_public_page(const char *url, web_reply *out)
{
    if (strcmp(url, "/static/qumail.css") == 0)
        page_css(out);
    else if (strcmp(url, "/static/keys.js") == 0)
        page_js(out);
    else
        web_error_page(out, 200, "Logged out",
                       "You are logged out. To sign in again, open the URL that "
                       "qumail web printed when it started.");
}
