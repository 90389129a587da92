/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status_page.c - the admin listener's page for people (GET /): per peer
 * and direction the pool level and capacity, production and consumption
 * over the last minutes as small inline SVG charts, each link's QBER and
 * alarm, each peer's state, the security events by kind and the last ones;
 * alarms in red.
 *
 * One HTML document with no script: it reloads itself every
 * STATUS_REFRESH_S seconds (meta refresh), its style sheet is served by
 * admin.c from STATUS_CSS (style-src 'self' under the listener's CSP) and
 * the charts are SVG elements inside the page, drawn with presentation
 * attributes, so nothing is fetched from anywhere else.  Every text that
 * comes from the configuration (KME IDs, reasons) is escaped.
 *
 * Rates come from the sampler's ring (admin_view.h): production is what
 * the link stored per second in that direction, consumption what left the
 * pool, i.e. production minus the change of the level.
 */
#include "kme/admin_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kme/events.h"
#include "kme/netmap.h"
#include "kme/status_page.h"

#define STATUS_REFRESH_S 2
#define CHART_W 300
#define CHART_H 60

const char STATUS_CSS[] =
    "body{font:14px sans-serif;margin:1em 2em;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}"
    ".ok{color:#087f23;font-weight:bold}.bad{color:#c00;font-weight:bold}"
    ".alarm{background:#fdd;border:2px solid #c00;padding:.5em}"
    ".dir{display:inline-block;vertical-align:top;margin:0 2em 1em 0;padding:.5em;border:1px solid #ccc}"
    "svg{background:#f8f8f8;display:block;margin:.3em 0}.small{color:#666;font-size:.9em}";

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A rate in bytes per second, as people read it. */
static void rate_text(char *out, size_t n, double bps)
{
    if (bps >= 1e6)
        snprintf(out, n, "%.2f MB/s", bps / 1e6);
    else if (bps >= 1e3)
        snprintf(out, n, "%.1f kB/s", bps / 1e3);
    else
        snprintf(out, n, "%.0f B/s", bps);
}

/* Per-second production and consumption of direction d of link li from
 * the ring: rates[i] for the interval ending at sample i+1. */
static size_t direction_rates(const admin_view *v, size_t li, int d, double *prod, double *cons)
{
    size_t n = 0;
    if (li >= ADMIN_CHART_LINKS)
        return 0;
    for (size_t i = 1; i < v->n_history; i++, n++) {
        const admin_sample *a = &v->history[i - 1], *b = &v->history[i];
        double dt = (double)(b->unix_ms - a->unix_ms) / 1000.0;
        if (dt <= 0)
            dt = 1;
        double made = (double)(b->produced[li][d] - a->produced[li][d]);
        double used = made - ((double)b->level[li][d] - (double)a->level[li][d]);
        prod[n] = made / dt;
        cons[n] = used > 0 ? used / dt : 0;
    }
    return n;
}

static void polyline(FILE *f, const double *y, size_t n, double max, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (size_t i = 0; i < n; i++) {
        double x = n > 1 ? (double)i * CHART_W / (double)(n - 1) : 0;
        double py = CHART_H - (max > 0 ? y[i] / max * (CHART_H - 4) : 0) - 2;
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", x, py);
    }
    fputs("\"/>", f);
}

static void chart(FILE *f, const double *prod, const double *cons, size_t n, const char *label)
{
    double max = 0;
    for (size_t i = 0; i < n; i++) {
        max = prod[i] > max ? prod[i] : max;
        max = cons[i] > max ? cons[i] : max;
    }
    char top[32];
    rate_text(top, sizeof top, max);
    fprintf(f, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
            CHART_W, CHART_H, CHART_W, CHART_H);
    esc(f, label);
    fputs("\">", f);
    polyline(f, prod, n, max, "#2a6");
    polyline(f, cons, n, max, "#c60");
    fprintf(f, "<text x=\"2\" y=\"11\" font-size=\"10\" fill=\"#666\">max %s</text></svg>", top);
}

static void direction(FILE *f, const admin_view *v, size_t li, int d, const char *from,
                      const char *to)
{
    const admin_link_view *l = &v->links[li];
    uint64_t level = d ? l->own_bytes : l->peer_bytes, cap = l->cap_bytes;
    double pct = cap ? 100.0 * (double)level / (double)cap : 0;
    size_t max_n = v->n_history ? v->n_history : 1;
    double *prod = calloc(max_n, sizeof *prod), *cons = calloc(max_n, sizeof *cons);
    size_t n = prod && cons ? direction_rates(v, li, d, prod, cons) : 0;
    char now_p[32] = "-", now_c[32] = "-", label[128];
    if (n) {
        rate_text(now_p, sizeof now_p, prod[n - 1]);
        rate_text(now_c, sizeof now_c, cons[n - 1]);
    }
    fputs("<div class=\"dir\" data-direction=\"", f);
    esc(f, from);
    fputs("-&gt;", f);
    esc(f, to);
    fputs("\"><h3>", f);
    esc(f, from);
    fputs(" &rarr; ", f);
    esc(f, to);
    fprintf(f, "</h3><div>pool <b class=\"level\">%" PRIu64 "</b> of %" PRIu64 " bytes (%.1f %%)</div>"
            "<svg width=\"300\" height=\"12\" role=\"img\" aria-label=\"pool level\">"
            "<rect width=\"300\" height=\"12\" fill=\"#eee\"/>"
            "<rect width=\"%.0f\" height=\"12\" fill=\"#4a7\"/></svg>",
            level, cap, pct, pct * 3);
    fprintf(f, "<div class=\"small\">produced %s (green), consumed %s (orange), last %zu s</div>",
            now_p, now_c, n);
    snprintf(label, sizeof label, "production and consumption %s to %s", from, to);
    chart(f, prod ? prod : (double[1]){ 0 }, cons ? cons : (double[1]){ 0 }, n, label);
    fputs("</div>", f);
    free(prod);
    free(cons);
}

static void peers_table(FILE *f, const admin_view *v)
{
    const kme_config *cfg = v->cfg;
    fputs("<h2>Peers</h2><table><tr><th>KME</th><th>state</th><th>since</th><th></th></tr>", f);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const peer_health *h = &v->peers[i];
        const char *state = !h->probed ? "unknown" : h->up ? "up" : "down";
        char since[32] = "-";
        if (h->since_unix_ms) {
            time_t t = (time_t)(h->since_unix_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(since, sizeof since, "%H:%M:%S UTC", &tm);
        }
        fputs("<tr class=\"peer\" data-peer=\"", f);
        esc(f, cfg->peers[i].id);
        fprintf(f, "\" data-state=\"%s\"><td>", state);
        esc(f, cfg->peers[i].id);
        fprintf(f, "</td><td class=\"%s\">%s</td><td>%s</td><td>", h->probed && !h->up ? "bad" : "ok",
                state, since);
        esc(f, h->probed && !h->up ? h->reason : "");
        fputs("</td></tr>", f);
    }
    if (cfg->n_peers == 0)
        fputs("<tr><td colspan=\"4\">no peers configured</td></tr>", f);
    fputs("</table>", f);
}

/* One link: the first keeps the element IDs the page had with one link
 * (qber-alarm, link-state, qber); every section carries data-link. */
static void link_section(FILE *f, const admin_view *v, size_t li)
{
    const kme_config *cfg = v->cfg;
    const admin_link_view *l = &v->links[li];
    bool first = li == 0;
    fputs("<section class=\"link\" data-link=\"", f);
    esc(f, l->cfg->id);
    fputs("\"><h2>QKD link to ", f);
    esc(f, l->cfg->peer);
    fputs(" <span class=\"small\">(", f);
    esc(f, l->cfg->id);
    fputs(")</span></h2>", f);
    if (l->qber_alarm)
        fprintf(f, "<p class=\"alarm bad\"%s>QBER ALARM: the link reports an error "
                "rate above its threshold</p>", first ? " id=\"qber-alarm\"" : "");
    fprintf(f, "<p>link state <b class=\"link-state\"%s>", first ? " id=\"link-state\"" : "");
    esc(f, l->state ? l->state : "unknown");
    fputs("</b>", f);
    if (l->qber_known)
        fprintf(f, "; QBER <b class=\"qber\"%s>%.4f</b>", first ? " id=\"qber\"" : "", l->qber);
    fputs("</p>", f);
    direction(f, v, li, 1, cfg->id, l->cfg->peer);
    direction(f, v, li, 0, l->cfg->peer, cfg->id);
    fputs("</section>", f);
}

/* With a network map: its version and size, and the relays by this KME's
 * role and outcome (tampered in red). */
static void network_section(FILE *f, const admin_view *v)
{
    const netmap *m = v->cfg->map;
    if (!m)
        return;
    static const char *const roles[] = { "origin (our masters)", "trusted node", "last (our slaves)" };
    fprintf(f, "<h2>Network</h2><p id=\"network\">map version %lld: %zu KMEs, %zu links "
            "(docs/network.md)</p><table><tr><th>role</th><th>delivered</th><th>unavailable</th>"
            "<th>tampered</th><th>refused</th></tr>", (long long)m->version, m->n_kmes, m->n_links);
    for (int r = 0; r < 3; r++)
        fprintf(f, "<tr class=\"relay\"><td>%s</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td class=\"%s\">%" PRIu64 "</td><td>%" PRIu64 "</td></tr>", roles[r],
                v->relays[r][0], v->relays[r][1], v->relays[r][2] ? "bad" : "ok", v->relays[r][2],
                v->relays[r][3]);
    fputs("</table>", f);
}

/* Every kind of security event with its count since start; kinds seen
 * at least once in red. */
static void events_section(FILE *f)
{
    fputs("<h2>Security events since start</h2><table><tr><th>kind</th><th>count</th></tr>", f);
    for (int k = 0; k < EV_KIND_COUNT; k++) {
        uint64_t n = events_total((event_kind)k);
        bool good_news = k == EV_POOL_OK || k == EV_PEER_UP || k == EV_QBER_CLEARED;
        fprintf(f, "<tr class=\"event\" data-kind=\"%s\"><td>%s</td><td class=\"%s\">%" PRIu64
                "</td></tr>", event_kind_name((event_kind)k), event_kind_name((event_kind)k),
                n && !good_news ? "bad" : "ok", n);
    }
    fputs("</table>", f);
}

/* The last events, newest first: when (UTC), kind, who, why; escaped
 * (an SAE ID or certificate reason may be a hostile client's). */
static void recent_section(FILE *f)
{
    event_recent r[EVENTS_RECENT];
    size_t n = events_recent(r, EVENTS_RECENT);
    fputs("<h2>Last events</h2>", f);
    if (n == 0) {
        fputs("<p id=\"recent-none\">none since start</p>", f);
        return;
    }
    fputs("<table id=\"recent\"><tr><th>time (UTC)</th><th>kind</th><th>who</th><th>why</th>"
          "</tr>", f);
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)(r[i].unix_ms / 1000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        bool good_news = r[i].kind == EV_POOL_OK || r[i].kind == EV_PEER_UP ||
                         r[i].kind == EV_QBER_CLEARED;
        fprintf(f, "<tr class=\"recent\"><td>%s</td><td class=\"%s\">%s</td><td>", when,
                good_news ? "ok" : "bad", event_kind_name(r[i].kind));
        esc(f, r[i].who);
        fputs("</td><td>", f);
        esc(f, r[i].why);
        fputs("</td></tr>", f);
    }
    fputs("</table>", f);
}

static bool all_well(const admin_view *v)
{
    for (size_t i = 0; i < v->cfg->n_peers; i++)
        if (v->peers[i].probed && !v->peers[i].up)
            return false;
    return v->store_ok && !v->any_qber_alarm;
}

char *status_page_render(const admin_view *v, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    const kme_config *cfg = v->cfg;
    fprintf(f, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"refresh\" content=\"%d\"><title>KME ", STATUS_REFRESH_S);
    esc(f, cfg->id);
    fputs(" status</title><link rel=\"stylesheet\" href=\"/status.css\"></head><body><h1>KME ", f);
    esc(f, cfg->id);
    bool well = all_well(v);
    fprintf(f, " <span id=\"overall\" class=\"%s\">%s</span></h1>", well ? "ok" : "bad",
            well ? "OK" : "UNAVAILABLE");
    fprintf(f, "<p>key store <span class=\"%s\">%s</span>; local pool %" PRIu64 " of %" PRIu64
            " bytes; %" PRIu64 " keys awaiting slaves</p>", v->store_ok ? "ok" : "bad",
            v->store_ok ? "ok" : "cannot be read", v->local_bytes, v->local_cap_bytes, v->stored_keys);
    peers_table(f, v);
    for (size_t i = 0; i < cfg->n_links; i++)
        link_section(f, v, i);
    network_section(f, v);
    events_section(f);
    recent_section(f);
    fprintf(f, "<p class=\"small\">qkd-kme %s; this page reloads every %d s.</p></body></html>\n",
            QUMAILC_VERSION, STATUS_REFRESH_S);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
