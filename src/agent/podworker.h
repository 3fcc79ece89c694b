/* The agent's pod worker (spec 4.5): pulls the desired service pods from
 * the master, converges the engine's containers to them through pods.c's
 * pure diff, reports set_state, restarts crashed and unhealthy containers,
 * waits for ports, and reports containers, events and logs to the master.
 *
 * DESIGN. The loop thread (libwebsockets) never calls the engine. It owns
 * the RPC side: the /node_service_pods/list pull (one in flight, a
 * notify during a pull causes exactly one more), parsing the result into
 * the single desired list (level-triggered, #2623: a new list replaces
 * the old one wholesale; a list that fails to parse is logged and the old
 * one kept), and sending whatever the threads queued. Threads, each with
 * its own engine client:
 *   - the worker: one job loop that converges (list, inspect, diff,
 *     execute, re-diff, at most PODW_MAX_PASSES passes per round) on a
 *     kick (new list, container event, probe result, restart request
 *     from a failed health check or from the master) or
 *     a timer (crash backoff), and sends the container sync on connect;
 *   - the prober: wait_for_port probes and health checks, so a slow port
 *     never holds up any pod (#2415, #3003); probes are keyed by
 *     container id and dropped as soon as that container is no longer
 *     the pod's running container (the pod changed);
 *   - the events thread: GET /events, reporting start/die/remove and
 *     kicking the worker;
 *   - one thread per followed log stream, feeding a bounded queue.
 * Threads hand messages to the loop thread through a locked outbox and
 * wake it with the wake function (lws_cancel_service in the agent).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_PODWORKER_H
#define CP_AGENT_PODWORKER_H

#include "agent.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PODW_PULL_INTERVAL_MS 30000
#define PODW_MAX_PASSES 3
#define PODW_PORT_WAIT_MS 300000
#define PODW_LOG_FLUSH_MS 1000
#define PODW_STATS_INTERVAL_MS 60000
#define PODW_SERVICE_LABEL "io.kontena.service.id"

/* Wakes the loop thread from any thread (must be thread-safe). */
typedef void podworker_wake_fn(void *ctx);

struct podworker_options {
    const char *socket_path; /* the engine's unix socket, copied */
    int pull_interval_ms;    /* 0: PODW_PULL_INTERVAL_MS */
    int stats_interval_ms;   /* 0: PODW_STATS_INTERVAL_MS, < 0: off */
    podworker_wake_fn *wake;
    void *wake_ctx;
};

struct podworker;

/* A worker for agent a (borrowed, loop thread only). No thread runs
 * until the first podworker_on_open(). */
struct podworker *podworker_new(const struct podworker_options *opt,
                                struct agent *a);
/* Stops and joins every thread and frees everything; NULL is fine. Call
 * before the link (and its wake function) goes away. */
void podworker_free(struct podworker *pw);

/* Loop thread: the link opened (starts the threads the first time,
 * pulls the pods, sends the container sync and every pod's state anew). */
void podworker_on_open(struct podworker *pw, int64_t now_ms);
void podworker_on_close(struct podworker *pw);
/* Loop thread: /service_pods/notify_update; pulls now (coalesced). */
void podworker_notify(struct podworker *pw, const char *reason);
/* Loop thread: /service_pods/restart. The worker restarts the running
 * container of that instance (stop with the pod's stop_grace_period,
 * then start), resets its crash backoff, re-runs wait_for_port and
 * reports set_state with the pod's current deploy_rev afterwards. An
 * instance not in the current pod list is logged and ignored. */
void podworker_restart(struct podworker *pw, const char *service_id,
                       int instance_number);
/* Loop thread: about once a second and after every wake: the pull timer,
 * log batches and the outbox. */
void podworker_tick(struct podworker *pw, int64_t now_ms);

/* ==== Pure helpers (exported for the unit tests) ==== */

/* One container event from GET /events, reduced. Strings borrowed from
 * the event object. */
struct podworker_event {
    const char *id;
    const char *action; /* "start", "die", "remove", "destroy", ... */
    const char *from;   /* image */
    const char *name;
    const char *service_id; /* io.kontena.service.id, NULL: not ours */
    int64_t time_s;
};

/* Reads a Docker/Podman event object. Returns 0, or CP_EINVAL when it
 * is not a container event with an id and an action. */
int podworker_event_parse(const json_t *ev, struct podworker_event *out);

/* Splits newline-delimited JSON arriving in arbitrary chunks: appends
 * data to pending (bounded by its max) and calls fn for each complete
 * line that parses as JSON (bad lines are skipped and counted in the
 * return value); pending keeps the unfinished tail. Returns the number
 * of bad lines, or CP_EPROTO when a line outgrows pending. */
typedef void podworker_json_fn(void *ctx, const json_t *obj);
struct cp_buf;
int podworker_ndjson_feed(struct cp_buf *pending, const char *data, size_t len,
                          podworker_json_fn *fn, void *ctx);

/* The container's IP from inspect: NetworkSettings.IPAddress, else the
 * first non-empty Networks.*.IPAddress; NULL when none (borrowed). */
const char *podworker_container_ip(const json_t *inspect);

#endif
