/* Master -> agent requests across masters (docs/ha.md "Agents across
 * masters"). A worker thread (an API handler) calls xrpc_call(): it
 * registers a waiter keyed by a fresh req_id, publishes
 *   agents.request {req_id, node, method, params, from: master_id}
 * on the store feed and waits on a condition variable. Every master's
 * feed delivery (on its loop) hands the request to agents_request(); only
 * the master holding the node's socket has a session for it, the others
 * do nothing. The holder publishes
 *   agents.reply {req_id, to: master_id, error, result}
 * from a thread of its own (never the loop, never the API pool, which may
 * be full of waiters); the requester's feed callback completes the waiter
 * on whatever thread the feed runs on.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_XRPC_H
#define CP_XRPC_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "master.h"

#define XRPC_MAX_WAITERS 64
#define XRPC_ID_LEN 32

/* ==== The waiter table (pure, thread-safe; unit tested) ==== */

struct xrpc_waiter {
    bool used, done;
    char req_id[XRPC_ID_LEN + 1];
    json_t *error, *result; /* owned once done */
};

struct xrpc_table {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic clock */
    struct xrpc_waiter w[XRPC_MAX_WAITERS];
};

void xrpc_table_init(struct xrpc_table *t);
void xrpc_table_destroy(struct xrpc_table *t);
/* Takes a free slot for req_id; returns its index, or -1 when all
 * XRPC_MAX_WAITERS are waiting. */
int xrpc_table_register(struct xrpc_table *t, const char *req_id);
/* Completes the waiter of req_id with error or result (borrowed, copied
 * by reference). Returns false when no one waits for req_id (timed out
 * already, a duplicate reply, or another master's request). */
bool xrpc_table_complete(struct xrpc_table *t, const char *req_id,
                         json_t *error, json_t *result);
/* Waits until slot is completed or timeout_ms passes; then frees the
 * slot. Returns true with *error / *result moved to the caller (new
 * references, either may be NULL), false on timeout. */
bool xrpc_table_wait(struct xrpc_table *t, int slot, int timeout_ms,
                     json_t **error, json_t **result);

/* ==== The master's side ==== */

/* Starts the reply publisher thread; xrpc_stop joins it. */
void xrpc_start(struct master *m);
void xrpc_stop(struct master *m);

/* Worker thread: calls method on the agent of node (row id; node_name is
 * for messages) wherever it is connected, waiting at most timeout_ms.
 * Returns 0 with *result (new reference), or an HTTP status with *error
 * a message (new string, caller frees): 503 the node is not connected to
 * any master (node_connected false) or too many calls in flight (at most
 * half of KONTENA_THREADS wait at once), 504 no
 * master answered in time, else the agent's error code (4xx/5xx) and
 * message. params (an array) is borrowed. */
int xrpc_call(struct master *m, const char *node_row_id, const char *node_name,
              bool node_connected, const char *method, const json_t *params,
              int timeout_ms, json_t **result, char **error);

/* Feed delivery: "agents.request" on the loop (hands it to the local
 * session, if any), "agents.reply" on any thread. */
void xrpc_on_request(struct master *m, const json_t *msg);
void xrpc_on_reply(struct master *m, const json_t *msg);

#endif
