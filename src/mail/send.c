/* SPDX-License-Identifier: Apache-2.0 */
/*
 * send.c - encrypt, deliver, keep the sent copy (send.h): the one send
 * path of the qumail command and the web client.
 *
 * The key IDs are read back from the outer message just built (its
 * envelope names them), so message.c stays the only code that handles
 * keys.  The sent copy is "QUMAIL-SENT 1 LEVEL\n" and the inner message,
 * in [store] dir/sent/<outer Message-ID>, written atomically (temporary
 * file, fsync, rename, fsync of the directory), mode 0600 in a 0700
 * directory: the only place a plaintext copy of a sent message lives.
 */
#include "mail/send.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"
#include "mail/keyfetch.h"
#include "mail/maildir.h"
#include "mail/mailserver.h"
#include "mail/mime.h"
#include "mail/readstore.h"

#define MAC_KEY_BITS 256
#define LEVEL2_KEY_BITS 256

qm_err qm_send_resolve(const qm_config *cfg, const char *const *to, size_t n, qm_peer *peers,
                       char *detail, size_t cap)
{
    if (n == 0) {
        snprintf(detail, cap, "no recipient: give --to ADDR");
        return QM_E_USAGE;
    }
    if (n > QM_MAX_RECIPIENTS) {
        snprintf(detail, cap, "%zu recipients: at most %d", n, QM_MAX_RECIPIENTS);
        return QM_E_USAGE;
    }
    for (size_t i = 0; i < n; i++) {
        const qm_contact *ct = qm_config_contact(cfg, to[i]);
        if (!ct) {
            snprintf(detail, cap, "%s is not in the address book of %s", to[i], cfg->path);
            return QM_E_NOT_FOUND;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(peers[j].address, ct->address) == 0) {
                snprintf(detail, cap, "recipient %s given twice", ct->address);
                return QM_E_USAGE;
            }
        peers[i] = (qm_peer){ ct->address, ct->sae_id, ct->kme_id };
    }
    return QM_OK;
}

uint64_t qm_send_cost_bits(int level, uint64_t inner_len, uint32_t key_bits)
{
    if (level == 2)
        return LEVEL2_KEY_BITS;
    if (level != 1)
        return 0;
    uint64_t bits = inner_len * 8, unit = key_bits ? key_bits : 1;
    return (bits + unit - 1) / unit * unit + MAC_KEY_BITS;
}

void qm_send_result_free(qm_send_result *r)
{
    free(r->key_ids);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ key IDs */

static qm_err add_key_id(qm_send_result *r, const qm_key_ref *k, size_t cap)
{
    if (r->n_keys == cap)
        return QM_E_MALFORMED;
    uuid_format(k->id, r->key_ids[r->n_keys++]);
    return QM_OK;
}

/* The Message-ID and key IDs of the outer message we just built. */
static qm_err read_back(const uint8_t *outer, size_t len, qm_send_result *r)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_outer_info info = {0};
    qm_envelope e;
    qm_envelope_view v;
    qm_err rc = qm_mime_parse(outer, len, &env, &env_len, &info);
    if (rc == QM_OK)
        rc = qm_envelope_parse(env, env_len, &e, &v);
    if (rc != QM_OK) {
        free(env);
        qm_outer_info_free(&info);
        return rc;
    }
    snprintf(r->message_id, sizeof r->message_id, "%s", info.message_id ? info.message_id : "");
    size_t cap = e.n_recipients;
    for (uint8_t g = 0; g < e.n_groups; g++)
        cap += e.level == QM_LEVEL_1 ? e.groups[g].n_pad_keys : e.level == QM_LEVEL_2;
    r->key_ids = cap ? calloc(cap, sizeof *r->key_ids) : NULL;
    if (cap && !r->key_ids)
        rc = QM_E_NOMEM;
    for (uint8_t g = 0; rc == QM_OK && g < e.n_groups; g++) {
        for (uint32_t k = 0; rc == QM_OK && e.level == QM_LEVEL_1 && k < e.groups[g].n_pad_keys; k++)
            rc = add_key_id(r, &e.groups[g].pad_keys[k], cap);
        if (rc == QM_OK && e.level == QM_LEVEL_2)
            rc = add_key_id(r, &e.groups[g].key, cap);
    }
    for (uint8_t i = 0; rc == QM_OK && e.level == QM_LEVEL_1 && i < e.n_recipients; i++)
        rc = add_key_id(r, &e.recipients[i].mac_key, cap);
    qm_envelope_free(&e);
    free(env);
    qm_outer_info_free(&info);
    return rc;
}

/* ------------------------------------------------------------ delivery */

/* Every recipient's Maildir gets the message, or none does. */
static qm_err deliver_maildir(qm_self *me, const qm_config *cfg, const qm_peer *peers,
                              size_t n, const uint8_t *msg, size_t len)
{
    char dirs[QM_MAX_RECIPIENTS][PATH_MAX];
    const char *dirv[QM_MAX_RECIPIENTS] = { NULL };
    char *ids[QM_MAX_RECIPIENTS];
    for (size_t i = 0; i < n; i++) {
        if (snprintf(dirs[i], sizeof dirs[i], "%s/%s", cfg->maildir_root,
                     peers[i].address) >= (int)sizeof dirs[i]) {
            snprintf(me->detail, sizeof me->detail, "%s: [mail] maildir_root is too long",
                     cfg->path);
            return QM_E_CONFIG;
        }
        dirv[i] = dirs[i];
    }
    size_t failed = 0;
    qm_err rc = qm_maildir_deliver_all(dirv, n, msg, len, ids, &failed);
    if (rc != QM_OK) {
        int w = snprintf(me->detail, sizeof me->detail, "%s%s", failed < n ? dirs[failed] : "?",
                         n > 1 ? " (no recipient got the message)" : "");
        (void)w;   /* a long path is cut: detail is one line for the user */
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        qm_trace(me, "delivered to %s/new/%s", dirs[i], ids[i]);
        free(ids[i]);
    }
    return QM_OK;
}

static qm_err deliver_smtp(qm_self *me, const qm_config *cfg, const qm_peer *peers, size_t n,
                           const uint8_t *msg, size_t len)
{
    const char *rcpt[QM_MAX_RECIPIENTS];
    for (size_t i = 0; i < n; i++)
        rcpt[i] = peers[i].address;
    qm_mailserver srv = { cfg->smtp.url, cfg->smtp.username, cfg->smtp.password, cfg->smtp.ca };
    qm_trace(me, "SMTP submission to %s", srv.url);
    return qm_smtp_send(&srv, cfg->address, rcpt, n, msg, len, me->detail, sizeof me->detail);
}

/* ------------------------------------------------------------ sent copy */

static bool keep_sent_copy(const qm_config *cfg, const char *message_id, int level,
                           const uint8_t *inner, size_t len)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], head[32];
    if (!*message_id || strchr(message_id, '/') || message_id[0] == '.' ||
        qm_readstore_init(cfg->store_dir) != QM_OK ||
        snprintf(dir, sizeof dir, "%s/sent", cfg->store_dir) >= (int)sizeof dir ||
        snprintf(path, sizeof path, "%s/%s", dir, message_id) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", dir) >= (int)sizeof tmp)
        return false;
    struct stat st;
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return false;
    int fd = mkstemp(tmp);   /* mode 0600 */
    if (fd < 0)
        return false;
    int hn = snprintf(head, sizeof head, "QUMAIL-SENT 1 %d\n", level);
    bool ok = fd_write_all(fd, head, (size_t)hn) == 0 && fd_write_all(fd, inner, len) == 0 &&
              fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return fsync_dir(dir) == 0;
}

qm_err qm_send(qm_self *me, const qm_config *cfg, int level, const qm_peer *to, size_t n_to,
               const uint8_t *inner, size_t inner_len, bool keep_sent, qm_send_result *res)
{
    uint8_t *outer = NULL;
    size_t outer_len = 0;
    memset(res, 0, sizeof *res);
    me->detail[0] = '\0';
    qm_err rc = qm_encrypt(me, level, to, n_to, inner, inner_len, &outer, &outer_len);
    if (rc == QM_OK)
        rc = read_back(outer, outer_len, res);
    if (rc == QM_OK)
        rc = cfg->send == QM_SEND_SMTP ? deliver_smtp(me, cfg, to, n_to, outer, outer_len)
                                       : deliver_maildir(me, cfg, to, n_to, outer, outer_len);
    free(outer);
    if (rc != QM_OK) {
        qm_send_result_free(res);
        return rc;
    }
    if (keep_sent) {
        res->sent_copy_kept = keep_sent_copy(cfg, res->message_id, level, inner, inner_len);
        if (res->sent_copy_kept)
            qm_trace(me, "sent copy kept in %s/sent", cfg->store_dir);
    }
    return QM_OK;
}
