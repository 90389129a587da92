/*
 * pages.c - routes and pages of `qumail web` (pages.h): the home page
 * (the account, the way out) and logout, plus the stylesheet.  Mail pages
 * (inbox, read, compose, keys) come in later steps (docs/web.md, "Status").
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

/* Every form carries the session's CSRF token. */
static void csrf_field(html_buf *b, const web_session *s)
{
    html_rawf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", s->csrf);
}

static void page_home(const web_request *rq, web_reply *out)
{
    html_buf *b = &out->body;
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
    html_begin(b, "Home", true);
    html_raw(b, "<h1>QuMail</h1>\n<p>Signed in as <strong id=\"account\">");
    html_text(b, rq->account);
    html_raw(b, "</strong>.</p>\n<form method=\"post\" action=\"/logout\">");
    csrf_field(b, rq->session);
    html_raw(b, "<button type=\"submit\">Log out</button></form>\n");
    html_end(b);
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

void web_route(const web_request *rq, web_reply *out)
{
    bool get = strcmp(rq->method, "POST") != 0;
    if (get && strcmp(rq->url, "/") == 0)
        page_home(rq, out);
    else if (!get && strcmp(rq->url, "/logout") == 0)
        do_logout(out);
    else
        web_error_page(out, 404, "Not found", "There is no such page.");
}

bool web_route_public(const char *url)
{
    return strcmp(url, "/static/qumail.css") == 0 || strcmp(url, "/logged-out") == 0;
}

void web_route_public_page(const char *url, web_reply *out)
{
    if (strcmp(url, "/static/qumail.css") == 0)
        page_css(out);
    else
        web_error_page(out, 200, "Logged out",
                       "You are logged out. To sign in again, open the URL that "
                       "qumail web printed when it started.");
}
