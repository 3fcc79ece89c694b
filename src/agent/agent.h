/* The agent's RPC layer and periodic work (spec 4.3-4.5): it dispatches
 * master->agent calls through one static table, matches responses to our
 * own requests in a bounded table with per-request timeouts, and sends
 * /nodes/update and /nodes/stats on their intervals. It knows nothing of
 * WebSockets: the transport is a pair of functions in struct agent_io
 * (main.c wires them to link.c), so tests drive it with fixtures.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_AGENT_H
#define CP_AGENT_AGENT_H

#include "config.h"
#include "engine.h"

#include <jansson.h>
#include <stdint.h>

#define AGENT_MAX_OUTSTANDING 64
#define AGENT_REQUEST_TIMEOUT_MS 30000
#define AGENT_UPDATE_RETRY_MS 5000 /* after a failed engine read */

/* The transport. send takes ownership of buf (cp_malloc'd) and returns
 * 0 or a CP_E* code; set_header sets a handshake header for the next
 * connect; wake (thread-safe, may be NULL) makes the loop thread call
 * agent_tick() soon: the agent's own thread calls it when the node
 * facts are ready. */
struct agent_io {
    void *ctx;
    int (*send)(void *ctx, char *buf, size_t len);
    void (*set_header)(void *ctx, const char *name, const char *value);
    void (*wake)(void *ctx);
};

/* Called with the outcome of one of our requests: error is NULL on
 * success, else {code, message}; both borrowed for the call only. On
 * timeout the code is PROTO_ERR_TIMEOUT, on disconnect 503 as well. */
typedef void agent_reply_fn(void *ctx, const json_t *error,
                            const json_t *result);

/* Hook for /service_pods/notify_update (the pod worker plugs in here). */
typedef void agent_pods_fn(void *ctx, const char *reason);
/* Hook for /service_pods/restart [service_id, instance_number]; the
 * strings are borrowed for the call only. */
typedef void agent_restart_fn(void *ctx, const char *service_id,
                              int instance_number);

struct agent;

/* A new agent. cfg and engine are borrowed and must outlive it. */
struct agent *agent_new(const struct agent_config *cfg, struct engine *e,
                        const struct agent_io *io);
/* Stops and joins the agent's node facts thread (started by the first
 * agent_on_open). Call before io.wake's target goes away; agent_free
 * does it too. */
void agent_stop(struct agent *a);
void agent_free(struct agent *a);

void agent_set_pods_hook(struct agent *a, agent_pods_fn *fn, void *ctx);
void agent_set_restart_hook(struct agent *a, agent_restart_fn *fn, void *ctx);

/* Before each connect: works out the node id, name and labels (from the
 * config, else the engine's /info, else the hostname for the name) and
 * sets the handshake headers. Returns 0, or CP_EIO when the node id is
 * needed from the engine and the engine cannot be read. */
int agent_before_connect(struct agent *a);

/* The connection opened at monotonic time now_ms: asks the node facts
 * thread for /nodes/update (sent by agent_tick() as soon as they are
 * ready, every update interval after that) and arms the stats. */
void agent_on_open(struct agent *a, int64_t now_ms);
/* One message from the master. Returns 0, or CP_EPROTO when it cannot be
 * decoded (the caller closes with 1002). Never crashes on bad input. */
int agent_on_message(struct agent *a, const void *buf, size_t len);
/* The connection went away: fails every outstanding request. */
void agent_on_close(struct agent *a);
/* Periodic work due at monotonic now_ms: request timeouts, node update
 * (sending facts that came back from the thread), stats. Call about once
 * a second and after every io.wake. */
void agent_tick(struct agent *a, int64_t now_ms);

/* Sends a request; takes ownership of params (an array, NULL = []). cb
 * (may be NULL) gets the reply, or an error on timeout_ms (0 = default)
 * or disconnect. Returns 0, or CP_EAGAIN when the table is full or the
 * send fails; then cb is not called. */
int agent_request(struct agent *a, const char *method, json_t *params,
                  int timeout_ms, agent_reply_fn *cb, void *cb_ctx,
                  int64_t now_ms);
/* Sends a notification; takes ownership of params. 0 or the send error. */
int agent_notify(struct agent *a, const char *method, json_t *params);

/* Number of requests waiting for a reply. */
size_t agent_outstanding(const struct agent *a);
/* The node id in use (NULL before agent_before_connect succeeded). */
const char *agent_node_id(const struct agent *a);
/* The last /agent/node_info hash (borrowed; NULL before one came). */
const json_t *agent_node_info(const struct agent *a);
/* node_number from /agent/node_info, 0 when not known yet. */
int agent_node_number(const struct agent *a);

#endif
