/* Signals between the parts of the master that run on different threads
 * (and, with a shared store, on different masters): handlers publish on
 * the store's change feed; this module brings each message to the loop
 * thread and acts on it (close an agent socket, push node info).
 *
 * Channels and payloads (JSON):
 *   agents.close     {"node": row id, "code": n, "reason": "..."}
 *   agents.node_info {"grid": grid id, "node": row id or absent}
 *   agents.notify    {"node": row id, "method": "...", "params": [...]}
 *   deploys.queued   {"service": service id}   (wakes the deployer)
 *   agents.request   {"req_id", "node", "method", "params", "from",
 *                     "timeout_ms"}   (xrpc.h: a request with a reply)
 *   agents.reply     {"req_id", "to": master id, "error", "result"}
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_FEED_H
#define CP_FEED_H

#include <jansson.h>

#include "master.h"

/* Subscribes to the store feed and starts delivering on m->loop. */
int feed_start(struct master *m);
/* Unsubscribes and closes the loop handle. */
void feed_stop(struct master *m);

/* Publishers (any thread). */
void feed_close_agent(struct master *m, const char *node_row_id, int code,
                      const char *reason);
void feed_node_info(struct master *m, const char *grid_id,
                    const char *node_row_id);
/* Sends a notification to a node's agent, wherever it is connected;
 * params (an array) is borrowed. */
void feed_notify_agent(struct master *m, const char *node_row_id,
                       const char *method, const json_t *params);
/* Wakes the deploy engine of every master (a deploy was queued). */
void feed_deploy_queued(struct master *m, const char *service_id);

/* Called on the loop for "deploys.queued" messages; set by deploy.c. */
extern void (*feed_on_deploy_queued)(struct master *m, const char *service_id);

#endif
