/* Agent sessions: the WebSocket endpoint on "/" (spec 4), the acceptance
 * algorithm with its close codes, connection generations, keepalive,
 * and RPC in both directions. Everything here runs on the loop thread;
 * store work goes to the worker pool and comes back.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENTS_H
#define CP_AGENTS_H

#include <h2o.h>
#include <jansson.h>
#include <stdbool.h>

#include "master.h"

struct agents;

struct agents_config {
    int ping_interval_ms; /* KONTENA_PING_INTERVAL (30 s) */
    int pong_timeout_ms;  /* WEBSOCKET_TIMEOUT (5 s) */
    int clock_skew_ms;    /* KONTENA_CLOCK_SKEW (1 s) */
    int seen_flush_ms;    /* how often last-seen times are written */
    int stats_keep;       /* stats history rows kept per node */
};

struct agents *agents_new(struct master *m, const struct agents_config *c);
/* Frees the hub; call once every session is gone (after the loop ends). */
void agents_free(struct agents *a);

/* Upgrades a WebSocket handshake on "/" and starts the acceptance checks.
 * Always answers the request. */
void agents_upgrade(struct agents *a, h2o_req_t *req, const char *client_key);

/* Closes the session of node (row id) on this master, if any. */
void agents_close_node(struct agents *a, const char *node_row_id, int code,
                       const char *reason);
/* Closes every session (shutdown). */
void agents_close_all(struct agents *a, int code, const char *reason);
/* Sends /agent/node_info to every node of grid (or one node when
 * node_row_id is set) connected here; re-reads them from the store. */
void agents_push_node_info(struct agents *a, const char *grid_id,
                           const char *node_row_id);

/* Master -> agent request. cb runs on the loop with the agent's error or
 * result (error {code:503} on timeout or when the node is not connected
 * here). params is stolen. Returns 0 or CP_ENOTFOUND / CP_EAGAIN (too many
 * requests in flight) without calling cb. */
typedef void agents_reply_fn(void *ctx, const json_t *error,
                             const json_t *result);
int agents_request(struct agents *a, const char *node_row_id,
                   const char *method, json_t *params, int timeout_ms,
                   agents_reply_fn *cb, void *ctx);
/* Master -> agent notification; params is stolen. */
int agents_notify(struct agents *a, const char *node_row_id,
                  const char *method, json_t *params);

/* Number of accepted sessions. */
int agents_count(const struct agents *a);

#endif
