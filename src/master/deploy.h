/* The deploy engine (spec 5.3, 5.4, issues #2212 #2215 #2274 #1275): the
 * deploy queue with per-service serialisation, coalescing and leased
 * claims; the rolling deployer; start/stop/restart/remove of services; the
 * reconciliation loop. Functions marked "worker" may block on the store and
 * run on a worker thread (API handlers call them); "loop" ones run on the
 * loop thread.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_DEPLOY_H
#define CP_DEPLOY_H

#include <jansson.h>
#include <stdbool.h>

#include "master.h"
#include "store.h"

/* Worker. Queues a deploy of svc (coalesced with a queued one): marks the
 * service running, sets deploy_requested_at, bumps the revision when
 * force, and wakes the deployer of every master. Fills out. */
int deploy_request(struct master *m, struct store_service *svc, bool force,
                   struct store_deploy *out);
/* Worker. deploy_request for a stack deploy: the deploy (or the queued
 * one it is coalesced with) records stack_deploy_id. */
int deploy_request_ex(struct master *m, struct store_service *svc, bool force,
                      const char *stack_deploy_id, struct store_deploy *out);
/* Worker. Sets every instance's desired state (running or stopped), the
 * service state, and notifies the nodes (start / stop). */
int deploy_set_desired(struct master *m, struct store_service *svc,
                       const char *desired);
/* Worker. Asks the nodes to restart the service's containers; they pick
 * up current secrets and env (issue #651). */
int deploy_restart(struct master *m, const struct store_service *svc);
/* Worker. Removes the service, its instances and deploys, and tells the
 * nodes that ran it (terminate). */
int deploy_remove_service(struct master *m, const struct store_service *svc);
/* Worker. Detaches one instance from its node so that it is placed again
 * (DELETE .../instances/:id). */
int deploy_move_instance(struct master *m, const struct store_service *svc,
                         int instance_number);

/* Deploy JSON (spec 3.2 "Service deploy"); service_path is "G/S/svc". */
json_t *deploy_json(const struct store_deploy *d, const char *service_path);

/* Loop. Starts the deploy workers and the reconciliation timer. */
void deploy_start(struct master *m);
void deploy_stop(struct master *m);
/* Loop: reports of instances of these services (NULL: any) were
 * committed; their running deployers step now. */
void deploy_wake(struct master *m, const char *const *service_ids, size_t n);

#endif
