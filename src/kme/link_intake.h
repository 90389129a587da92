/* SPDX-License-Identifier: Apache-2.0 */
/*
 * link_intake.h - the KME's [link] listener: key blocks from the QKD link
 * (docs/kme-pair.md "Link intake", docs/link.md).
 *
 * One intake per link (a KME may have several: docs/network.md).
 * Plugs into listener.c: link_identify accepts only the certificate whose
 * CN is the link's ID (the listener already checked that the KME CA signed it);
 * link_handle serves POST /link/v1/blocks, /link/v1/confirm,
 * /link/v1/discard, /link/v1/report (QBER reports) and GET /link/v1/state.  Every answer is JSON; bad input
 * is a 400 that names the problem and changes nothing.  Block bytes go to
 * the key store and nowhere else (never into a log).
 */
#ifndef QC_KME_LINK_INTAKE_H
#define QC_KME_LINK_INTAKE_H

#include <stddef.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/link_block.h"
#include "kme/link_state.h"
#include "kme/reply.h"


/* One per [link] / [link ID] section: its listener's context. */
typedef struct link_intake {
    const kme_config *cfg;
    const kme_link *link;   /* the link's section (cfg->links[index]) */
    size_t index;
    keystore *ks;
    link_state *state;      /* the link's QBER reports (link_state.h); may be NULL */
} link_intake;

/* A listener_identify (ctx: link_intake): cn if it is this link's ID. */
const char *link_identify(void *ctx, const char *cn, const char *uri_san);

/* A listener_handler (ctx: link_intake). */
void link_handle(void *ctx, const char *caller, const char *method,
                 const char *raw_uri, const char *body, size_t body_len,
                 kme_reply *out);

#endif
