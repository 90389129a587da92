/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer.h - the KME-to-KME channel (docs/kme-pair.md): both ends of it.
 *
 * Server: the [peer_api] listener accepts only KME certificates (the KME
 * CA) whose CN is the ID of a configured [peer ID], and serves
 *   POST /peer/v1/reservations   keys the peer made for SAEs attached here
 *   POST /peer/v1/reservation-batch  several of those, each its own outcome
 *   POST /peer/v1/voids          bits of a reservation the peer must burn
 *   POST /peer/v1/reservation-state  what became of a reservation
 * (wire format: peer_wire.h).  All carry metadata only (key IDs, SAE IDs,
 * block segments), never key material (I3).
 *
 * Client: concurrent reservations to one peer are coalesced into batch
 * requests (at most a few on the way at a time, a lone one is sent at
 * once); one small pool of persistent mTLS connections (common/httpsc.h,
 * credentials loaded once per connection object) per peer, so concurrent requests do not queue on one connection;
 * the peer's certificate, host name and CN (= its configured ID) are
 * checked before a request goes out.  No lock is held across a request.
 *
 * Replay: a thread asks the peer the fate of every reservation left
 * pending by a crash (applied: the entry goes; otherwise it becomes a
 * void), and sends voids until the peer acknowledges them, with a bounded
 * back-off.
 */
#ifndef QC_KME_PEER_H
#define QC_KME_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/peer_wire.h"
#include "kme/reply.h"

#define PEER_MAX_BODY (1024 * 1024) /* requests to the peer listener */

typedef struct peer_service peer_service;

/* Start the peer listener (cfg->peer_listen, KME CA cfg->peer_ca, server and
 * client certificate = the [sae_api] cert/key), the client pools and the
 * replay thread.  Returns NULL with a reason in err.  Requires
 * cfg->has_peer_api. */
peer_service *peer_service_start(const kme_config *cfg, keystore *ks, char *err, size_t errlen);

/* The port the peer listener bound. */
uint16_t peer_service_port(const peer_service *ps);

/* Stop the replay thread and the listener, close the connections. */
void peer_service_stop(peer_service *ps);

/* Send the reservation r (made by ks_remote_enc for master -> slaves, all
 * behind peer_id), alone or in a batch with concurrent calls, and wait for
 * the peer's acknowledgement, at most cfg->peer_timeout_ms from this call's
 * start in all (a result arriving later is dropped).  0 when the peer answered 200 (the keys are
 * recorded there); -1 otherwise with a short reason (no key material, no key
 * ID) in reason; PEER_SLAVE_LIMIT, see above. */
/* peer_reserve's answer when the peer refused the reservation because a
 * slave holds sae_unfetched_bits there already (problem type
 * PEER_SLAVE_LIMIT_TYPE, HTTP 429): reason is then the peer's message,
 * for the SAE.  The reservation is burned like any refused one. */
#define PEER_SLAVE_LIMIT (-2)
#define PEER_SLAVE_LIMIT_TYPE "slave-limit"

/* Relay (peer_relay.c, docs/network.md §3): send hop 1 of a relayed
 * reservation r (made by ks_remote_enc for path[1]) along path[0..npath),
 * path[0] being this KME and path[npath-1] the slaves' KME, and wait at
 * most timeout_ms for the answer, which comes only after the last KME
 * stored the keys.  0 when it did; PEER_RELAY_UNAVAILABLE when a KME on
 * the path is down, not answering or short of key, or the first hop gave
 * no answer (another path may serve); PEER_SLAVE_LIMIT; -1 otherwise.
 * reason: a short text without key material. */
#define PEER_RELAY_UNAVAILABLE (-3)
#define PEER_RELAY_UNAVAILABLE_TYPE "relay-unavailable"
int peer_relay(peer_service *ps, const char *const *path, size_t npath, const ks_reservation *r,
               const char *master, const char *const *slaves, size_t nslaves, long timeout_ms,
               char *reason, size_t reason_len);

/* With a network map: true when peer_id's last answer named our map's
 * version (relays go only through such peers); without a map: true. */
bool peer_map_agrees(peer_service *ps, const char *peer_id);

/* What neighbour last said it holds towards far (its own bits of that
 * link, refreshed once a second by the probe): 0 and *bits, or -1 when
 * not known (no map, no answer yet, no such link). */
int peer_stock_towards(peer_service *ps, const char *neighbour, const char *far, uint64_t *bits);

/* Log a warning when the relay's test hook is set (peer_relay.c). */
void peer_relay_announce(void);

int peer_reserve(peer_service *ps, const char *peer_id, const ks_reservation *r,
                 const char *master, const char *const *slaves, size_t nslaves,
                 char *reason, size_t reason_len);

/* 0 when reservations for peer_id may go out; -1 while the peer is not
 * answering (a request to it got no HTTP answer less than one peer timeout
 * ago), with the 503 message in reason: the caller then reserves nothing. */
int peer_check_answering(peer_service *ps, const char *peer_id, char *reason, size_t reason_len);

/* A reservation was turned into a void: let the replay thread send it now. */
void peer_void_wake(peer_service *ps);

/* What the probe thread (peer_probe.c) last saw of cfg->peers[i]: it asks
 * every peer once a second.  peer_health_get returns -1 when ps is NULL
 * or i is out of range (*out then says "not probed"). */
typedef struct peer_health {
    bool probed;                   /* false until the first probe returned */
    bool up;                       /* the last probe got an HTTP answer */
    int64_t since_unix_ms;         /* when up last changed */
    char reason[128];              /* why down (no key material, no key IDs) */
    int64_t map_version;           /* its network map's version (-1: none, -2: not known) */
} peer_health;
int peer_health_get(peer_service *ps, size_t i, peer_health *out);

#endif
