/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_status_page.c - the KME's status page (src/kme/status_page.c) from
 * a hand-made admin_view: both directions with their levels and charts,
 * rates from the sample ring (production, and consumption as production
 * minus the change of the level), a peer down and a QBER alarm in red,
 * and KME IDs that carry markup (IDs are any printable text without
 * spaces) escaped everywhere, so that a configuration can never put a
 * tag or an attribute into the page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kme/admin_view.h"
#include "kme/events.h"
#include "kme/netmap.h"

static const netmap *MAP;         /* the next render's network map */
static uint64_t RELAYS[3][4];     /* and its relay counts */

static char *render(const char *self_id, const char *peer_id, bool up, bool alarm,
                    admin_sample *hist, size_t n)
{
    static kme_peer peer;
    static kme_link link;
    static kme_config cfg;
    memset(&cfg, 0, sizeof cfg);
    peer.id = (char *)peer_id;
    link.id = "LINK-<AB>";
    link.peer = (char *)peer_id;
    cfg.id = (char *)self_id;
    cfg.peers = &peer;
    cfg.n_peers = 1;
    cfg.links = &link;
    cfg.n_links = 1;
    cfg.has_link = true;
    cfg.map = (netmap *)MAP;
    peer_health h = { .probed = true, .up = up, .since_unix_ms = 1796600000000 };
    strcpy(h.reason, up ? "" : "cannot connect <b>");
    static admin_link_view lv;
    lv = (admin_link_view){ .cfg = &link, .ok = true, .own_bytes = 500, .peer_bytes = 250,
                            .cap_bytes = 1000, .qber_known = true, .qber = alarm ? 0.2 : 0.03,
                            .qber_alarm = alarm, .state = "distilling" };
    admin_view v = {
        .cfg = &cfg, .store_ok = true, .local_bytes = 10, .local_cap_bytes = 20, .links = &lv,
        .any_qber_alarm = alarm, .peers = &h, .history = hist, .n_history = n,
    };
    memcpy(v.relays, RELAYS, sizeof RELAYS);
    size_t len = 0;
    char *page = status_page_render(&v, &len);
    assert_non_null(page);
    assert_int_equal(strlen(page), len);
    return page;
}

static void test_directions_and_rates(void **state)
{
    (void)state;
    /* direction 1 (ours): +1000 bytes made, level +400: 600 consumed, in 1 s */
    admin_sample hist[2] = {
        { .unix_ms = 1000, .level = { { 100, 100 } }, .produced = { { 0, 0 } } },
        { .unix_ms = 2000, .level = { { 100, 500 } }, .produced = { { 0, 1000 } } },
    };
    char *p = render("KME-A", "KME-B", true, false, hist, 2);
    assert_non_null(strstr(p, "data-direction=\"KME-A-&gt;KME-B\""));
    assert_non_null(strstr(p, "data-direction=\"KME-B-&gt;KME-A\""));
    assert_non_null(strstr(p, "<b class=\"level\">500</b> of 1000 bytes (50.0 %)"));
    assert_non_null(strstr(p, "<b class=\"level\">250</b> of 1000 bytes (25.0 %)"));
    assert_non_null(strstr(p, "produced 1.0 kB/s (green), consumed 600 B/s (orange)"));
    assert_non_null(strstr(p, "http-equiv=\"refresh\""));
    assert_non_null(strstr(p, "id=\"overall\" class=\"ok\">OK<"));
    assert_non_null(strstr(p, "data-state=\"up\""));
    assert_null(strstr(p, "<script"));
    assert_null(strstr(p, "style=")); /* the CSP allows no inline style */
    free(p);
}

static void test_down_and_alarm_in_red(void **state)
{
    (void)state;
    char *p = render("KME-A", "KME-B", false, true, NULL, 0);
    assert_non_null(strstr(p, "id=\"overall\" class=\"bad\">UNAVAILABLE<"));
    assert_non_null(strstr(p, "data-state=\"down\"><td>KME-B</td><td class=\"bad\">down</td>"));
    assert_non_null(strstr(p, "class=\"alarm bad\" id=\"qber-alarm\""));
    assert_non_null(strstr(p, "data-link=\"LINK-&lt;AB&gt;\"")); /* the link's ID, escaped */
    assert_non_null(strstr(p, "cannot connect &lt;b&gt;"));
    free(p);
}

static void test_hostile_ids_escaped(void **state)
{
    (void)state;
    const char *evil = "<img/src=x\"onerror='alert(1)'>&";
    char *p = render(evil, evil, false, false, NULL, 0);
    assert_null(strstr(p, "<img"));
    assert_null(strstr(p, "\"onerror"));
    assert_null(strstr(p, "'alert"));
    assert_non_null(strstr(p, "&lt;img/src=x&quot;onerror=&#39;alert(1)&#39;&gt;&amp;"));
    free(p);
}

/* The last events: newest first, escaped (an SAE ID or a certificate
 * reason is a hostile client's text), "none" before any. */
static void test_recent_events_escaped(void **state)
{
    (void)state;
    char *p = render("KME-A", "KME-B", false, false, NULL, 0);
    bool none_yet = strstr(p, "id=\"recent-none\"") != NULL;
    free(p);
    events_unauthorized("sae_api", "<script>x</script>", NULL, NULL);
    events_not_a_slave("SAE_<b>EVIL</b>", "SAE_A1", 2);
    p = render("KME-A", "KME-B", false, false, NULL, 0);
    assert_true(none_yet);
    assert_null(strstr(p, "<script>"));
    assert_null(strstr(p, "<b>EVIL"));
    const char *newest = strstr(p, "SAE_&lt;b&gt;EVIL&lt;/b&gt;");
    const char *older = strstr(p, "&lt;script&gt;x&lt;/script&gt;");
    assert_non_null(newest);
    assert_non_null(older);
    assert_true(newest < older);
    free(p);
}

static void test_network_section(void **state)
{
    (void)state;
    char *p = render("KME-A", "KME-B", true, false, NULL, 0);
    assert_null(strstr(p, "id=\"network\"")); /* no map, no section */
    free(p);
    static netmap m = { .version = 7, .n_kmes = 150, .n_links = 700 };
    MAP = &m;
    RELAYS[0][0] = 12; /* delivered as origin */
    RELAYS[2][2] = 3;  /* tampered, as last KME */
    p = render("KME-A", "KME-B", true, false, NULL, 0);
    assert_non_null(strstr(p, "<p id=\"network\">map version 7: 150 KMEs, 700 links"));
    assert_non_null(strstr(p, "<td>origin (our masters)</td><td>12</td>"));
    assert_non_null(strstr(p, "<td>last (our slaves)</td><td>0</td><td>0</td><td class=\"bad\">3</td>"));
    assert_non_null(strstr(p, "<td>trusted node</td><td>0</td><td>0</td><td class=\"ok\">0</td>"));
    free(p);
    MAP = NULL;
    memset(RELAYS, 0, sizeof RELAYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directions_and_rates),
        cmocka_unit_test(test_down_and_alarm_in_red),
        cmocka_unit_test(test_hostile_ids_escaped),
        cmocka_unit_test(test_recent_events_escaped),
        cmocka_unit_test(test_network_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
