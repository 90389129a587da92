/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - reads and validates the KME configuration file.
 *
 * The file is INI: "[section]" headers and "key = value" lines.  A table
 * (config_keys) names every key the KME knows, its section, its type and its
 * range; the parser fills a kme_config from it and then checks the relations
 * between keys (key_size within [min_key_size, max_key_size], ...).  Unknown
 * sections or keys, repeated keys, values out of range and unreadable files
 * are errors with the file, line and key named: a KME with a typo in its
 * configuration must not start with a default in its place.
 */
#include "kme/config.h"

#include "common/ini.h"
#include "kme/netmap.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

/* Where a key's offset points: the kme_config, or the struct of the
 * repeated section being read (the table's base[1]): the kme_peer of a
 * [peer ID], the kme_link of a [link] or [link ID]. */
enum { IN_CONFIG = 0, IN_SECTION = 1 };

static int set_path(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_listen(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_list(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_nets(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_ratio(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_command(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_link_id(ini_table *t, unsigned line, const ini_key *k, const char *v);

static const char *const sync_names[] = { "normal", "full", NULL };          /* ks_sync */
static const char *const identity_names[] = { "cn", "uri-san", NULL };      /* kme_identity_source */
static const char *const side_names[] = { "A", "B", NULL };                 /* kme_link_side */

#define OFF(m) offsetof(kme_config, m)
#define POFF(m) offsetof(kme_peer, m)
#define LOFF(m) offsetof(kme_link, m)
#define I31 ((int64_t)INT32_MAX)
#define BIG (INT64_MAX / 2)
#define KEY(sec, name, type, req, off, min, max, dflt) \
    { sec, name, type, req, IN_CONFIG, off, min, max, dflt, NULL, NULL }
#define ENUM(sec, name, req, off, names, dflt) \
    { sec, name, INI_ENUM, req, IN_CONFIG, off, 0, 0, dflt, names, NULL }
#define CUSTOM(sec, name, req, scope, off, fn) \
    { sec, name, INI_CUSTOM, req, scope, off, 0, 0, NULL, NULL, fn }
#define LKEY(name, type, req, off, min, max, dflt) \
    { "link", name, type, req, IN_SECTION, off, min, max, dflt, NULL, NULL }

static const ini_key config_keys[] = {
    KEY("kme", "id", INI_ID, true, OFF(id), 0, 0, NULL),
    CUSTOM("kme", "database", true, IN_CONFIG, OFF(database), set_path),
    ENUM("kme", "sync", false, OFF(sync), sync_names, "normal"),
    KEY("kme", "log_level", INI_LOGLEVEL, false, OFF(log_level), 0, 0, "info"),
    CUSTOM("kme", "audit_log", false, IN_CONFIG, OFF(audit_log), set_path),
    KEY("kme", "network_map", INI_FILE, false, OFF(network_map), 0, 0, NULL),
    CUSTOM("sae_api", "listen", true, IN_CONFIG, 0, set_listen),
    KEY("sae_api", "cert", INI_FILE, true, OFF(cert), 0, 0, NULL),
    KEY("sae_api", "key", INI_FILE, true, OFF(key), 0, 0, NULL),
    KEY("sae_api", "ca", INI_FILE, true, OFF(ca), 0, 0, NULL),
    ENUM("sae_api", "identity", false, OFF(identity), identity_names, "cn"),
    KEY("sae_api", "threads", INI_UINT, false, OFF(threads), 0, 256, "0"),
    CUSTOM("sae_api", "port_file", false, IN_CONFIG, OFF(port_file), set_path),
    KEY("sae_api", "crl", INI_FILE, false, OFF(crl), 0, 0, NULL),
    KEY("sae_api", "per_ip_limit", INI_UINT, false, OFF(sae_per_ip_limit), 0, 1000000, "0"),
    CUSTOM("saes", "local", true, IN_CONFIG, 0, set_list),
    KEY("limits", "key_size", INI_INT, false, OFF(key_size), 8, I31, "256"),
    KEY("limits", "min_key_size", INI_INT, false, OFF(min_key_size), 8, I31, "64"),
    KEY("limits", "max_key_size", INI_INT, false, OFF(max_key_size), 8, I31, "65536"),
    KEY("limits", "max_key_per_request", INI_INT, false, OFF(max_key_per_request), 1, 1000000, "1024"),
    KEY("limits", "max_sae_id_count", INI_INT, false, OFF(max_sae_id_count), 0, KME_MAX_SAE_ID_COUNT, "4"),
    KEY("limits", "key_ttl", INI_INT, false, OFF(key_ttl), 1, 365LL * 86400, "3600"),
    KEY("limits", "local_pool_bits", INI_INT, false, OFF(local_pool_bits), 8, BIG, "268435456"),
    KEY("limits", "local_rate_bps", INI_INT, false, OFF(local_rate_bps), 0, BIG, "100000000"),
    KEY("limits", "maintenance_ms", INI_INT, false, OFF(maintenance_ms), 10, 3600000, "1000"),
    KEY("limits", "handshake_timeout_ms", INI_INT, false, OFF(handshake_timeout_ms), 100, 600000, "3000"),
    KEY("limits", "sae_rate_bps", INI_INT, false, OFF(sae_rate_bps), 0, BIG, "1000000000"),
    KEY("limits", "sae_burst_bits", INI_INT, false, OFF(sae_burst_bits), 0, BIG, "0"),
    KEY("limits", "sae_unfetched_bits", INI_INT, false, OFF(sae_unfetched_bits), 0, BIG, "268435456"),
    KEY("limits", "key_reuse_window", INI_INT, false, OFF(key_reuse_window), 0, 16777216, "262144"),
    { "limits", "pool_low_ratio", INI_CUSTOM, false, IN_CONFIG, OFF(pool_low_ratio), 0, 0, "0.1",
      NULL, set_ratio },
    CUSTOM("alerts", "command", false, IN_CONFIG, OFF(alert_command), set_command),
    KEY("alerts", "timeout_s", INI_UINT, false, OFF(alert_timeout_s), 1, 3600, "10"),
    KEY("alerts", "interval_s", INI_UINT, false, OFF(alert_interval_s), 0, 86400, "60"),
    /* optional sections: their required keys apply when the section is given */
    CUSTOM("peer_api", "listen", true, IN_CONFIG, OFF(peer_listen), set_listen),
    KEY("peer_api", "ca", INI_FILE, true, OFF(peer_ca), 0, 0, NULL),
    CUSTOM("peer_api", "port_file", false, IN_CONFIG, OFF(peer_port_file), set_path),
    KEY("peer_api", "timeout_ms", INI_INT, false, OFF(peer_timeout_ms), 10, 600000, "2000"),
    KEY("peer_api", "threads", INI_UINT, false, OFF(peer_threads), 0, 256, "0"),
    KEY("peer_api", "per_ip_limit", INI_UINT, false, OFF(peer_per_ip_limit), 0, 1000000, "0"),
    CUSTOM("peer_api", "allow_from", false, IN_CONFIG, OFF(peer_allow), set_nets),
    CUSTOM("peer", "address", true, IN_SECTION, POFF(address), set_listen),
    CUSTOM("peer", "saes", true, IN_SECTION, 0, set_list),
    /* [link] needs id; [link ID] has it in its header (finish_link) */
    CUSTOM("link", "listen", true, IN_SECTION, LOFF(listen), set_listen),
    CUSTOM("link", "port_file", false, IN_SECTION, LOFF(port_file), set_path),
    CUSTOM("link", "id", false, IN_SECTION, LOFF(id), set_link_id),
    { "link", "side", INI_ENUM, true, IN_SECTION, LOFF(side), 0, 0, NULL, side_names, NULL },
    LKEY("peer", INI_ID, true, LOFF(peer), 0, 0, NULL),
    LKEY("pool_cap_bits", INI_INT, false, LOFF(pool_cap_bits), 8, BIG, "268435456"),
    LKEY("block_ttl_ms", INI_INT, false, LOFF(block_ttl_ms), 1000, 86400000, "60000"),
    LKEY("per_ip_limit", INI_UINT, false, LOFF(per_ip_limit), 0, 1000000, "0"),
    CUSTOM("link", "allow_from", false, IN_SECTION, LOFF(allow), set_nets),
    CUSTOM("admin", "listen", true, IN_CONFIG, OFF(admin_listen), set_listen),
    KEY("admin", "cert", INI_FILE, false, OFF(admin_cert), 0, 0, NULL),
    KEY("admin", "key", INI_FILE, false, OFF(admin_key), 0, 0, NULL),
    KEY("admin", "client_ca", INI_FILE, false, OFF(admin_client_ca), 0, 0, NULL),
    CUSTOM("admin", "port_file", false, IN_CONFIG, OFF(admin_port_file), set_path),
};
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

/* Sections that may be left out; [peer ID] and [link ID] may appear any
 * number of times. */
static bool optional_section(const char *s)
{
    return strcmp(s, "peer_api") == 0 || strcmp(s, "link") == 0 || strcmp(s, "peer") == 0
        || strcmp(s, "admin") == 0;
}

typedef struct parse_state {
    ini_table t;             /* the engine's view: table, lines, bases, message */
    kme_config *cfg;
    bool peer_api_seen, admin_seen;
    kme_peer *peer;          /* the [peer ID] being read, or NULL (= t.base[1]) */
    unsigned peer_line;      /* line of its header */
    kme_link *link;          /* the [link] or [link ID] being read, or NULL */
    bool link_named;         /* it is a [link ID]: the ID is in the header */
    unsigned n_plain_links;  /* [link] sections (without an ID) seen */
} parse_state;

static parse_state *state_of(ini_table *t)
{
    return t->ctx;
}

/* T_PATH: a file whose directory exists and is writable: its part before
 * the last '/', "/" for a file in the root, "." for a bare file name. */
static int set_path(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char *dir = strdup(v);
    if (!dir)
        return ini_fail(t, line, k, "out of memory");
    char *slash = strrchr(dir, '/');
    const char *d = dir;
    if (!slash)
        d = ".";
    else if (slash == dir)
        d = "/";
    else
        *slash = '\0';
    struct stat st;
    int rc = 0;
    if (stat(d, &st) != 0)
        rc = ini_fail(t, line, k, "directory '%s' of '%s': %s", d, v, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = ini_fail(t, line, k, "'%s' in '%s' is not a directory", d, v);
    else if (access(d, W_OK | X_OK) != 0)
        rc = ini_fail(t, line, k, "directory '%s' is not writable: %s", d, strerror(errno));
    free(dir);
    return rc != 0 ? rc : ini_store_string(t, line, k, v);
}

/* A ratio: a plain decimal in [0, 1] ("0.1", "0", "1", ".25"). */
static int set_ratio(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    size_t digits = strspn(v, "0123456789."), dots = 0;
    for (const char *p = v; *p; p++)
        dots += *p == '.';
    char *end = NULL;
    errno = 0;
    double d = digits == strlen(v) && dots <= 1 && digits > dots ? strtod(v, &end) : -1;
    if (errno || !end || *end || !(d >= 0 && d <= 1))
        return ini_fail(t, line, k, "'%s' is not a decimal ratio from 0 to 1 (e.g. 0.1)", v);
    *(double *)((char *)t->base[k->base] + k->offset) = d;
    return 0;
}

/* The alert command: an absolute path to an executable regular file
 * (alerts.h).  Checked at start, so that the first alarm does not find it
 * missing. */
static int set_command(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    struct stat st;
    if (v[0] != '/')
        return ini_fail(t, line, k, "'%s' is not an absolute path", v);
    if (stat(v, &st) != 0)
        return ini_fail(t, line, k, "'%s': %s", v, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ini_fail(t, line, k, "'%s' is not a regular file", v);
    if (access(v, X_OK) != 0)
        return ini_fail(t, line, k, "'%s' is not executable by this user", v);
    return ini_store_string(t, line, k, v);
}

/* "IPV4:PORT" or "[IPV6]:PORT".  An IPv6 address without brackets is
 * refused: in "::1:8443" the port cannot be told from the address. */
static int set_listen(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    const char *hs, *he, *port_s;
    if (v[0] == '[') {
        hs = v + 1;
        he = strchr(hs, ']');
        if (!he)
            return ini_fail(t, line, k, "'%s' lacks the ']' of [IPV6]:PORT", v);
        if (he[1] != ':')
            return ini_fail(t, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
        port_s = he + 2;
    } else {
        const char *colon = strchr(v, ':');
        if (!colon)
            return ini_fail(t, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
        if (strchr(colon + 1, ':'))
            return ini_fail(t, line, k, "'%s': write an IPv6 address in brackets, [ADDRESS]:PORT", v);
        hs = v;
        he = colon;
        port_s = colon + 1;
    }
    int64_t port;
    if (!*port_s)
        return ini_fail(t, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
    if (ini_parse_uint(port_s, &port) != 0 || port > 65535)
        return ini_fail(t, line, k, "port '%s' is not a number in 0..65535", port_s);
    size_t hl = (size_t)(he - hs);
    char h[INET6_ADDRSTRLEN + 1];
    if (hl == 0)
        return ini_fail(t, line, k, "'%s' has no address", v);
    if (hl >= sizeof h)
        return ini_fail(t, line, k, "address in '%s' is too long", v);
    memcpy(h, hs, hl);
    h[hl] = '\0';
    unsigned char buf[16];
    if (v[0] == '[' ? inet_pton(AF_INET6, h, buf) != 1
                    : inet_pton(AF_INET, h, buf) != 1)
        return ini_fail(t, line, k, "'%s' is not a numeric %s address", h,
                        v[0] == '[' ? "IPv6" : "IPv4");
    char **host_slot;
    uint16_t *port_slot;
    if (strcmp(k->section, "sae_api") == 0) {
        kme_config *c = t->base[IN_CONFIG];
        host_slot = &c->listen_host;
        port_slot = &c->listen_port;
    } else {
        kme_addr *a = (kme_addr *)((char *)t->base[k->base] + k->offset);
        host_slot = &a->host;
        port_slot = &a->port;
    }
    free(*host_slot);
    *host_slot = strdup(h);
    *port_slot = (uint16_t)port;
    return *host_slot ? 0 : ini_fail(t, line, k, "out of memory");
}

static bool sae_known(const kme_config *c, const char *id)
{
    return kme_config_is_local_sae(c, id) || kme_config_peer_of_sae(c, id) != NULL;
}

/* One SAE ID of a list: valid, and listed nowhere yet. */
static int check_list_entry(ini_table *t, unsigned line, const ini_key *k, const char *tok)
{
    if (strlen(tok) > 256) /* not quoted: the message stays short */
        return ini_fail(t, line, k, "an SAE ID of %zu characters (at most 256)", strlen(tok));
    if (!ini_is_id(tok))
        return ini_fail(t, line, k, "'%s' is not a valid SAE ID", tok);
    if (sae_known(state_of(t)->cfg, tok))
        return ini_fail(t, line, k, "SAE ID '%s' listed twice", tok);
    return 0;
}

/* Space-separated SAE IDs: [saes] local, or the current [peer ID] saes. */
static int set_list(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    parse_state *ps = state_of(t);
    kme_config *c = ps->cfg;
    char ***list = k->base == IN_SECTION ? &ps->peer->saes : &c->local_saes;
    size_t *count = k->base == IN_SECTION ? &ps->peer->n_saes : &c->n_local_saes;
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return ini_fail(t, line, k, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0; tok = strtok_r(NULL, " \t", &save)) {
        if ((rc = check_list_entry(t, line, k, tok)) != 0)
            break;
        char **grown = realloc(*list, (*count + 1) * sizeof *grown);
        if (grown)
            *list = grown;
        if (!grown || !(grown[*count] = strdup(tok)))
            rc = ini_fail(t, line, k, "out of memory");
        else
            (*count)++;
    }
    free(copy);
    if (rc == 0 && *count == 0)
        rc = ini_fail(t, line, k, "no SAE IDs given");
    return rc;
}

static int allow_add(kme_allow *a, const net_prefix *p)
{
    net_prefix *grown = realloc(a->nets, (a->n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    a->nets = grown;
    a->nets[a->n++] = *p;
    return 0;
}

/* "ADDR[/PREFIX] ..." (netprefix.h); each entry is checked, the first bad
 * one named. */
static int set_nets(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    kme_allow *a = (kme_allow *)((char *)t->base[k->base] + k->offset);
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return ini_fail(t, line, k, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0; tok = strtok_r(NULL, " \t", &save)) {
        net_prefix p;
        char why[160];
        if (net_prefix_parse(tok, &p, why, sizeof why) != 0)
            rc = ini_fail(t, line, k, "%s", why);
        else if (a->n >= KME_ALLOW_MAX)
            rc = ini_fail(t, line, k, "more than %d entries", KME_ALLOW_MAX);
        else if (allow_add(a, &p) != 0)
            rc = ini_fail(t, line, k, "out of memory");
    }
    free(copy);
    return rc;
}

/* The [peer ID] just read is complete: its required keys were given.  The
 * lines of its keys then start afresh for the next one. */
static int finish_peer(parse_state *ps)
{
    if (!ps->peer)
        return 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (config_keys[i].base != IN_SECTION || strcmp(config_keys[i].section, "peer") != 0)
            continue;
        if (config_keys[i].required && !ps->t.lines[i])
            return ini_fail(&ps->t, ps->peer_line, NULL, "[peer %s]: missing key '%s' (required)",
                            ps->peer->id, config_keys[i].name);
        ps->t.lines[i] = 0;
    }
    ps->peer = NULL;
    ps->t.base[IN_SECTION] = NULL;
    return 0;
}

/* The link section just read is complete: required keys given (id for a
 * [link]), defaults set; its key lines start afresh for the next one. */
static int finish_link(parse_state *ps)
{
    kme_link *l = ps->link;
    if (!l)
        return 0;
    const char *name = l->id && ps->link_named ? l->id : "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const ini_key *k = &config_keys[i];
        if (k->base != IN_SECTION || strcmp(k->section, "link") != 0)
            continue;
        bool needed = k->required || (strcmp(k->name, "id") == 0 && !ps->link_named);
        if (needed && !ps->t.lines[i])
            return ini_fail(&ps->t, l->line, NULL, "[link%s%s]: missing key '%s' (required)",
                            *name ? " " : "", name, k->name);
        if (!ps->t.lines[i] && k->dflt && ini_set_value(&ps->t, 0, k, k->dflt) != 0)
            return -1;
        ps->t.lines[i] = 0;
    }
    ps->link = NULL;
    ps->t.base[IN_SECTION] = NULL;
    return 0;
}

static int finish_section(parse_state *ps)
{
    return finish_peer(ps) != 0 || finish_link(ps) != 0 ? -1 : 0;
}

static int begin_peer(parse_state *ps, unsigned line, const char *id)
{
    kme_config *c = ps->cfg;
    if (!ini_is_id(id))
        return ini_fail(&ps->t, line, NULL, "[peer %s]: a KME ID must be printable text without spaces", id);
    if (kme_config_peer(c, id))
        return ini_fail(&ps->t, line, NULL, "[peer %s] given twice", id);
    kme_peer *grown = realloc(c->peers, (c->n_peers + 1) * sizeof *grown);
    if (!grown)
        return ini_fail(&ps->t, line, NULL, "out of memory");
    c->peers = grown;
    memset(&c->peers[c->n_peers], 0, sizeof c->peers[0]);
    if (!(c->peers[c->n_peers].id = strdup(id)))
        return ini_fail(&ps->t, line, NULL, "out of memory");
    ps->peer = &c->peers[c->n_peers++];
    ps->t.base[IN_SECTION] = ps->peer;
    ps->peer_line = line;
    return 0;
}

/* "[link]" (id = the link's ID inside) or "[link ID]": never both kinds,
 * at most one [link], at most KME_MAX_LINKS in all. */
static int begin_link(parse_state *ps, unsigned line, const char *id)
{
    kme_config *c = ps->cfg;
    bool named = *id != '\0';
    if (named && !ini_is_id(id))
        return ini_fail(&ps->t, line, NULL, "[link %s]: a link ID must be printable text without spaces", id);
    if (named ? ps->n_plain_links > 0 : c->n_links > 0)
        return ini_fail(&ps->t, line, NULL, "%s: give one [link] section, or one [link ID] section "
                        "per link, not both kinds nor two [link]", named ? "[link ID]" : "[link]");
    if (c->n_links >= KME_MAX_LINKS)
        return ini_fail(&ps->t, line, NULL, "more than %d links", KME_MAX_LINKS);
    for (size_t i = 0; named && i < c->n_links; i++)
        if (strcmp(c->links[i].id, id) == 0)
            return ini_fail(&ps->t, line, NULL, "[link %s] given twice", id);
    kme_link *grown = realloc(c->links, (c->n_links + 1) * sizeof *grown);
    if (!grown)
        return ini_fail(&ps->t, line, NULL, "out of memory");
    c->links = grown;
    kme_link *l = &c->links[c->n_links];
    memset(l, 0, sizeof *l);
    l->line = line;
    if (named && !(l->id = strdup(id)))
        return ini_fail(&ps->t, line, NULL, "out of memory");
    c->n_links++;
    ps->n_plain_links += !named;
    ps->link = l;
    ps->link_named = named;
    ps->t.base[IN_SECTION] = l;
    return 0;
}

/* id = in a [link] section; a [link ID] has its ID in the header. */
static int set_link_id(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    parse_state *ps = state_of(t);
    if (ps->link_named)
        return ini_fail(t, line, k, "this [link %s] has its ID in the section header; "
                        "remove this key", ps->link->id);
    if (!ini_is_id(v))
        return ini_fail(t, line, k, "'%s' is not a valid link ID", v);
    return ini_store_string(t, line, k, v);
}

/* "[name]", "[peer ID]" (starting a peer) or "[link ID]" (a link). */
static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    parse_state *ps = ud;
    if (finish_section(ps) != 0)
        return -1;
    if (strcmp(name, "peer") == 0) {
        if (!*arg)
            return ini_fail(&ps->t, line, NULL, "[peer] needs the peer's KME ID: [peer KME-B]");
        if (begin_peer(ps, line, arg) != 0)
            return -1;
    } else if (strcmp(name, "link") == 0) {
        if (begin_link(ps, line, arg) != 0)
            return -1;
    } else if (*arg || !ini_known_section(&ps->t, name)) {
        return ini_fail(&ps->t, line, NULL, "unknown section [%s%s%s]", name, *arg ? " " : "", arg);
    }
    ps->peer_api_seen |= strcmp(name, "peer_api") == 0;
    ps->admin_seen |= strcmp(name, "admin") == 0;
    return 0;
}

/* parse_state starts with its ini_table: the engine's handlers take it */
static const ini_handler kme_ini = { on_section, ini_on_pair, ini_on_error };

/* A required key applies when its section is given or mandatory; the keys
 * of [peer ID] and [link ...] were checked section by section
 * (finish_section). */
static bool section_in_force(ini_table *t, const ini_key *k)
{
    parse_state *ps = state_of(t);
    if (k->base == IN_SECTION)
        return false;
    return !optional_section(k->section)
        || (strcmp(k->section, "peer_api") == 0 && ps->peer_api_seen)
        || (strcmp(k->section, "admin") == 0 && ps->admin_seen);
}

/* The key named name, and the line it was given on (0: its default). */
static const ini_key *key_at(parse_state *ps, const char *name, unsigned *line)
{
    size_t idx = 0;
    const ini_key *k = ini_find_key(&ps->t, "limits", name, &idx);
    *line = k ? ps->t.lines[idx] : 0;
    return k;
}

/* Relations between keys: the error names the key that breaks one, on the
 * line it was given (a key left at its default has no line). */
/* threads = 0: a worker blocks while its commit reaches the disk, so in
 * full sync mode the size of a commit group is bounded by the number of
 * workers; a worker also blocks while the peer KME confirms a reservation,
 * so with peers more of them keep the cores busy; otherwise normal mode
 * never waits and needs one per core. */
static void resolve_auto(kme_config *c)
{
    if (c->threads == 0)
        c->threads = c->sync == KS_SYNC_FULL ? 32 : c->n_peers ? 16 : 2;
    /* a relaying KME's peer worker waits while its hop goes downstream
     * (peer_relay.c): more of them keep relays in both directions going */
    if (c->peer_threads == 0)
        c->peer_threads = c->network_map ? 16 : 2;
}

/* [kme] network_map: read, and held to this file's own sections
 * (netmap_check_against); the map's messages name the map file. */
static int load_network_map(parse_state *ps)
{
    kme_config *c = ps->cfg;
    if (!c->network_map)
        return 0;
    char why[768];
    if (netmap_load(c->network_map, &c->map, why, sizeof why) != 0)
        return ini_fail(&ps->t, ini_line_of(&ps->t, "kme", "network_map"), NULL,
                        "[kme] network_map: %s", why);
    netmap_peer_view *peers = calloc(c->n_peers + 1, sizeof *peers);
    netmap_link_view *links = calloc(c->n_links + 1, sizeof *links);
    int rc = peers && links ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < c->n_peers; i++)
        peers[i] = (netmap_peer_view){ c->peers[i].id, { c->peers[i].saes, c->peers[i].n_saes } };
    for (size_t i = 0; rc == 0 && i < c->n_links; i++)
        links[i] = (netmap_link_view){ c->links[i].id, c->links[i].peer };
    netmap_sae_list local = { c->local_saes, c->n_local_saes };
    if (rc != 0)
        snprintf(why, sizeof why, "out of memory");
    else
        rc = netmap_check_against(c->map, c->id, &local, peers, c->n_peers, links, c->n_links,
                                  why, sizeof why);
    free(peers);
    free(links);
    return rc == 0 ? 0 : ini_fail(&ps->t, 0, NULL, "[kme] network_map: %s", why);
}

const char *kme_config_far_kme_of_sae(const kme_config *cfg, const char *sae_id)
{
    if (!cfg->map || kme_config_is_local_sae(cfg, sae_id) || kme_config_peer_of_sae(cfg, sae_id))
        return NULL;
    const netmap_kme *k = netmap_kme_of_sae(cfg->map, sae_id);
    return k && strcmp(k->id, cfg->id) != 0 ? k->id : NULL;
}

/* The host of a numeric address into a (a listener bound to the
 * unspecified address names no host: skipped). */
static int allow_host(kme_allow *a, const char *host)
{
    net_prefix p;
    if (net_prefix_host(host, &p) != 0)
        return 0;
    static const uint8_t zero[16];
    if (memcmp(p.addr, zero, sizeof zero) == 0)
        return 0;
    return allow_add(a, &p);
}

/* allow_from left out: [peer_api] admits the hosts of the configured
 * peers; a link admits loopback, its own listen address and the host of
 * its peer (the link's devices sit at one of the two KMEs). */
static int default_link_allow(const kme_config *c, kme_link *l)
{
    net_prefix v4, v6;
    char why[128];
    int rc = net_prefix_parse("127.0.0.0/8", &v4, why, sizeof why);
    rc = rc ? rc : net_prefix_parse("::1", &v6, why, sizeof why);
    rc = rc ? rc : allow_add(&l->allow, &v4);
    rc = rc ? rc : allow_add(&l->allow, &v6);
    rc = rc ? rc : allow_host(&l->allow, l->listen.host);
    const kme_peer *lp = kme_config_peer(c, l->peer);
    return rc ? rc : lp ? allow_host(&l->allow, lp->address.host) : 0;
}

static int default_allow_lists(parse_state *ps)
{
    kme_config *c = ps->cfg;
    int rc = 0;
    if (c->has_peer_api && !c->peer_allow.n)
        for (size_t i = 0; i < c->n_peers && rc == 0; i++)
            rc = allow_host(&c->peer_allow, c->peers[i].address.host);
    for (size_t i = 0; i < c->n_links && rc == 0; i++)
        if (!c->links[i].allow.n)
            rc = default_link_allow(c, &c->links[i]);
    return rc == 0 ? 0 : ini_fail(&ps->t, 0, NULL, "out of memory");
}

/* Each link: its peer is a [peer ID], no other link goes to that peer or
 * listens on the same address and port. */
static int check_links(parse_state *ps)
{
    kme_config *c = ps->cfg;
    for (size_t i = 0; i < c->n_links; i++) {
        const kme_link *l = &c->links[i];
        const char *sp = c->n_links > 1 || ps->n_plain_links == 0 ? " " : "";
        const char *id = sp[0] ? l->id : "";
        if (!kme_config_peer(c, l->peer))
            return ini_fail(&ps->t, 0, NULL, "[link%s%s] peer: '%s' is not a configured [peer ...]",
                            sp, id, l->peer);
        for (size_t j = 0; j < i; j++) {
            const kme_link *o = &c->links[j];
            if (strcmp(o->peer, l->peer) == 0)
                return ini_fail(&ps->t, l->line, NULL, "[link %s] peer: link %s already goes to "
                                "%s (one link per pair of KMEs)", l->id, o->id, l->peer);
            if (l->listen.port && l->listen.port == o->listen.port
                && strcmp(l->listen.host, o->listen.host) == 0)
                return ini_fail(&ps->t, l->line, NULL, "[link %s] listen: %s:%u is already the "
                                "address of link %s", l->id, l->listen.host, l->listen.port, o->id);
        }
    }
    return 0;
}

/* Peers, the peer listener and the links must fit together. */
static int check_topology(parse_state *ps)
{
    kme_config *c = ps->cfg;
    c->has_peer_api = ps->peer_api_seen;
    c->has_link = c->n_links > 0;
    for (size_t i = 0; i < c->n_peers; i++)
        if (strcmp(c->peers[i].id, c->id) == 0)
            return ini_fail(&ps->t, 0, NULL, "[peer %s] is this KME's own ID", c->peers[i].id);
    if (c->n_peers && !c->has_peer_api)
        return ini_fail(&ps->t, 0, NULL, "[peer_api] is required when [peer ...] sections are given");
    if (check_links(ps) != 0 || load_network_map(ps) != 0)
        return -1;
    return default_allow_lists(ps);
}

/* The per-SAE limits must let one key of max_key_size through, else some
 * valid request could never be served; a burst of 0 means one second of
 * the rate, at least one such key. */
static int check_sae_limits(parse_state *ps)
{
    kme_config *c = ps->cfg;
    unsigned line;
    const ini_key *k;
    if (c->sae_rate_bps > 0 && c->sae_burst_bits == 0)
        c->sae_burst_bits = c->sae_rate_bps > c->max_key_size ? c->sae_rate_bps : c->max_key_size;
    if (c->sae_rate_bps > 0 && c->sae_burst_bits < c->max_key_size) {
        k = key_at(ps, "sae_burst_bits", &line);
        return ini_fail(&ps->t, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->sae_burst_bits, (long long)c->max_key_size);
    }
    if (c->sae_unfetched_bits > 0 && c->sae_unfetched_bits < c->max_key_size) {
        k = key_at(ps, "sae_unfetched_bits", &line);
        return ini_fail(&ps->t, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->sae_unfetched_bits, (long long)c->max_key_size);
    }
    return 0;
}

static bool loopback_host(const char *h)
{
    unsigned char a[16];
    static const unsigned char v6_loopback[16] = { [15] = 1 };
    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    return inet_pton(AF_INET6, h, a) == 1 && memcmp(a, v6_loopback, 16) == 0;
}

/* [admin]: HTTPS takes cert, key and client_ca together; plain HTTP
 * listens on loopback only (it has no authentication of its own). */
static int check_admin(parse_state *ps)
{
    kme_config *c = ps->cfg;
    c->has_admin = ps->admin_seen;
    if (!c->has_admin)
        return 0;
    static const char *const tls_keys[] = { "cert", "key", "client_ca" };
    const char *const tls_vals[] = { c->admin_cert, c->admin_key, c->admin_client_ca };
    size_t idx = 0, given = 0;
    for (size_t i = 0; i < 3; i++)
        given += tls_vals[i] != NULL;
    for (size_t i = 0; i < 3 && given && given < 3; i++)
        if (!tls_vals[i]) {
            const ini_key *k = ini_find_key(&ps->t, "admin", tls_keys[i], &idx);
            return ini_fail(&ps->t, 0, k, "required for HTTPS: give cert, key and client_ca "
                            "together, or none of them for plain HTTP on loopback");
        }
    if (!given && !loopback_host(c->admin_listen.host)) {
        const ini_key *k = ini_find_key(&ps->t, "admin", "listen", &idx);
        return ini_fail(&ps->t, ps->t.lines[idx], k, "plain HTTP on %s, which is not a loopback "
                        "address: the admin listener has no authentication without TLS; use "
                        "127.0.0.1, or give cert, key and client_ca for HTTPS",
                        c->admin_listen.host);
    }
    return 0;
}

static int check_relations(parse_state *ps)
{
    kme_config *c = ps->cfg;
    resolve_auto(c);
    if (check_topology(ps) != 0)
        return -1;
    static const char *const sizes[] = { "min_key_size", "max_key_size", "key_size" };
    const int64_t values[] = { c->min_key_size, c->max_key_size, c->key_size };
    unsigned line;
    const ini_key *k;
    for (size_t i = 0; i < 3; i++)
        if (values[i] % 8) {
            k = key_at(ps, sizes[i], &line);
            return ini_fail(&ps->t, line, k, "%lld is not a multiple of 8", (long long)values[i]);
        }
    if (c->min_key_size > c->max_key_size) {
        k = key_at(ps, "min_key_size", &line);
        return ini_fail(&ps->t, line, k, "%lld exceeds max_key_size (%lld)",
                    (long long)c->min_key_size, (long long)c->max_key_size);
    }
    if (c->key_size < c->min_key_size || c->key_size > c->max_key_size) {
        k = key_at(ps, "key_size", &line);
        return ini_fail(&ps->t, line, k, "%lld is outside min_key_size..max_key_size (%lld..%lld)",
                    (long long)c->key_size, (long long)c->min_key_size, (long long)c->max_key_size);
    }
    if (c->local_pool_bits < c->max_key_size) {
        k = key_at(ps, "local_pool_bits", &line);
        return ini_fail(&ps->t, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->local_pool_bits, (long long)c->max_key_size);
    }
    if (check_admin(ps) != 0)
        return -1;
    return check_sae_limits(ps);
}

int kme_config_load(const char *path, kme_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    unsigned lines[N_KEYS] = { 0 };
    parse_state ps = { .cfg = cfg };
    ps.t = (ini_table){ .keys = config_keys, .n_keys = N_KEYS, .lines = lines,
                        .base = { cfg, NULL }, .file = path, .err = err, .errlen = errlen,
                        .ctx = &ps };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    cfg->path = strdup(path);
    if (!cfg->path) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = ini_read(f, &kme_ini, &ps);
    if (rc == 0)
        rc = finish_section(&ps);
    fclose(f);
    if (rc == 0)
        rc = ini_apply_defaults(&ps.t, section_in_force);
    if (rc == 0)
        rc = check_relations(&ps);
    if (rc != 0)
        kme_config_free(cfg);
    return rc != 0 ? -1 : 0;
}

void kme_config_free(kme_config *cfg)
{
    free(cfg->path);
    free(cfg->id);
    free(cfg->database);
    free(cfg->listen_host);
    free(cfg->cert);
    free(cfg->key);
    free(cfg->ca);
    free(cfg->crl);
    free(cfg->audit_log);
    free(cfg->network_map);
    netmap_free(cfg->map);
    free(cfg->alert_command);
    free(cfg->port_file);
    for (size_t i = 0; i < cfg->n_local_saes; i++)
        free(cfg->local_saes[i]);
    free(cfg->local_saes);
    free(cfg->peer_listen.host);
    free(cfg->peer_ca);
    free(cfg->peer_port_file);
    free(cfg->peer_allow.nets);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        kme_peer *p = &cfg->peers[i];
        free(p->id);
        free(p->address.host);
        for (size_t j = 0; j < p->n_saes; j++)
            free(p->saes[j]);
        free(p->saes);
    }
    free(cfg->peers);
    for (size_t i = 0; i < cfg->n_links; i++) {
        kme_link *l = &cfg->links[i];
        free(l->id);
        free(l->listen.host);
        free(l->port_file);
        free(l->peer);
        free(l->allow.nets);
    }
    free(cfg->links);
    free(cfg->admin_listen.host);
    free(cfg->admin_cert);
    free(cfg->admin_key);
    free(cfg->admin_client_ca);
    free(cfg->admin_port_file);
    memset(cfg, 0, sizeof *cfg);
}

const kme_peer *kme_config_peer_of_sae(const kme_config *cfg, const char *sae_id)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        for (size_t j = 0; j < cfg->peers[i].n_saes; j++)
            if (strcmp(cfg->peers[i].saes[j], sae_id) == 0)
                return &cfg->peers[i];
    return NULL;
}

const kme_peer *kme_config_peer(const kme_config *cfg, const char *kme_id)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (strcmp(cfg->peers[i].id, kme_id) == 0)
            return &cfg->peers[i];
    return NULL;
}

const kme_link *kme_config_link_to(const kme_config *cfg, const char *peer_id)
{
    for (size_t i = 0; i < cfg->n_links; i++)
        if (strcmp(cfg->links[i].peer, peer_id) == 0)
            return &cfg->links[i];
    return NULL;
}

bool kme_config_is_local_sae(const kme_config *cfg, const char *sae_id)
{
    for (size_t i = 0; i < cfg->n_local_saes; i++)
        if (strcmp(cfg->local_saes[i], sae_id) == 0)
            return true;
    return false;
}

bool kme_config_key(size_t i, const char **section, const char **name)
{
    if (i >= N_KEYS)
        return false;
    *section = config_keys[i].section;
    *name = config_keys[i].name;
    return true;
}
