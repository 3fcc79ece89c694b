/* Agent state, RPC dispatch and the node update/stats cron. Master->agent
 * methods are rows of one table; adding one means a row and a handler.
 * Everything runs on the loop thread; the engine reads behind
 * /nodes/update run on the collector's thread (collector.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "agent.h"
#include "collector.h"
#include "facts.h"
#include "inspector.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"
#include "../common/util.h"
#include "../common/version.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One of our requests waiting for its response. A slot is free when
 * id == 0 (ids are never 0). */
struct pending {
    uint32_t id;
    char method[PROTO_MAX_METHOD + 1];
    int64_t deadline_ms; /* monotonic */
    agent_reply_fn *cb;
    void *cb_ctx;
};

/* ==== Design ====
 *
 * The agent lives for the whole process; connections come and go under
 * it. Per connection: is_open, the outstanding table (emptied, with error
 * callbacks, on close) and the next_update/next_stats deadlines (armed on
 * open). Across connections: the node identity (worked out once, before
 * the first connect), the last node_info from the master and the CPU
 * sampler (so the first stats after a reconnect still cover an interval).
 */
struct agent {
    const struct agent_config *cfg;
    struct engine *engine;
    struct agent_io io;

    char *node_id;
    char *node_name;
    char *labels_header; /* comma-joined */
    char *root_dir;      /* engine DockerRootDir, for filesystem stats */
    json_t *version;     /* engine /version, read once (it is slow on
                          * Podman and does not change) */

    bool is_open;
    struct pending pending[AGENT_MAX_OUTSTANDING];
    size_t npending;
    int64_t next_update_ms, next_stats_ms; /* 0 = not armed */
    /* The node facts come from the collector thread: while this
     * connection waits for request update_gen, no update is armed. */
    struct collector *collector; /* started on the first open */
    /* Live /containers/inspect: a thread started on first use. Answers
     * go out only on the connection (conn_gen) the request came on. */
    struct inspector *inspector;
    uint64_t conn_gen;
    uint32_t cur_id;  /* the request being dispatched */
    bool is_deferred; /* its handler answers later */
    uint64_t update_gen;
    bool is_update_waiting;

    json_t *node_info;
    int node_number;

    struct facts_sampler sampler;

    agent_pods_fn *pods_fn;
    void *pods_ctx;
    agent_restart_fn *restart_fn;
    void *restart_ctx;
};

/* ==== Identity ==== */

static char *labels_from_info(const json_t *info)
{
    json_t *labels = json_object_get(info, "Labels");
    size_t n = 0;
    char **v = cp_calloc(json_array_size(labels) + 1, sizeof(*v));
    size_t i;
    json_t *l;
    json_array_foreach(labels, i, l)
    {
        if (json_is_string(l))
            v[n++] = (char *)(uintptr_t)json_string_value(l);
    }
    char *joined = agent_labels_join(v, n);
    cp_free(v);
    return joined;
}

/* Podman makes up a new /info ID on every call, so a restarted agent
 * would join as a new node. For Podman the id is derived from the machine
 * id and the engine's storage root instead (simulated nodes on one host
 * share the machine id but not the root). */
static void stabilise_id(struct agent *a, const json_t *info)
{
    char err[256];
    if (a->version == NULL &&
        engine_version(a->engine, &a->version, err, sizeof(err)) != 0) {
        cp_warn("agent: engine version unavailable: %s", err);
        return;
    }
    if (!engine_is_podman(a->version))
        return;
    char *machine = facts_machine_id();
    const char *root = cp_json_str(info, "DockerRootDir");
    char *seed = cp_asprintf("%s|%s", machine != NULL ? machine : "",
                             root != NULL ? root : "");
    char id[FACTS_ID_LEN];
    facts_stable_id(seed, id);
    cp_info("agent: the engine is Podman, whose ID changes on every call; "
            "using the stable node id %s (set KONTENA_NODE_ID to override)",
            id);
    cp_free(a->node_id);
    a->node_id = cp_strdup(id);
    cp_free(seed);
    cp_free(machine);
}

int agent_before_connect(struct agent *a)
{
    const struct agent_config *cfg = a->cfg;
    if (a->node_id == NULL) {
        json_t *info = NULL;
        char err[512] = "";
        bool needs_engine =
            cfg->node_id == NULL || cfg->node_name == NULL || !cfg->has_labels;
        if (needs_engine &&
            engine_info(a->engine, &info, err, sizeof(err)) != 0) {
            if (cfg->node_id == NULL) {
                cp_warn("agent: cannot read the engine's ID: %s", err);
                return CP_EIO;
            }
            cp_warn("agent: engine info unavailable: %s", err);
        }
        const char *id = cfg->node_id ? cfg->node_id : cp_json_str(info, "ID");
        if (id == NULL || id[0] == '\0') {
            cp_warn("agent: the engine's /info has no ID; set "
                    "KONTENA_NODE_ID");
            json_decref(info);
            return CP_EIO;
        }
        a->node_id = cp_strdup(id);
        if (cfg->node_id == NULL)
            stabilise_id(a, info);
        const char *name =
            cfg->node_name ? cfg->node_name : cp_json_str(info, "Name");
        char host[256];
        if (name == NULL || name[0] == '\0') {
            if (gethostname(host, sizeof(host)) != 0)
                snprintf(host, sizeof(host), "node");
            host[sizeof(host) - 1] = '\0';
            name = host;
        }
        a->node_name = cp_strdup(name);
        a->labels_header = cfg->has_labels
                               ? agent_labels_join(cfg->labels, cfg->nlabels)
                               : labels_from_info(info);
        const char *root = cp_json_str(info, "DockerRootDir");
        a->root_dir = root != NULL ? cp_strdup(root) : NULL;
        json_decref(info);
        cp_info("agent: node id %s, name %s, labels [%s]", a->node_id,
                a->node_name, a->labels_header);
    }
    if (a->io.set_header == NULL)
        return 0;
    a->io.set_header(a->io.ctx, PROTO_H_NODE_ID, a->node_id);
    a->io.set_header(a->io.ctx, PROTO_H_NODE_NAME, a->node_name);
    a->io.set_header(a->io.ctx, PROTO_H_VERSION, KONTENA_VERSION);
    a->io.set_header(a->io.ctx, PROTO_H_NODE_LABELS, a->labels_header);
    if (cfg->node_token != NULL)
        a->io.set_header(a->io.ctx, PROTO_H_NODE_TOKEN, cfg->node_token);
    else
        a->io.set_header(a->io.ctx, PROTO_H_GRID_TOKEN, cfg->grid_token);
    return 0;
}

/* ==== Sending ==== */

static uint32_t new_id(const struct agent *a)
{
    for (;;) {
        uint32_t id;
        cp_random_bytes(&id, sizeof(id));
        id &= 0x7fffffff; /* spec: 1..2^31 */
        if (id == 0)
            continue;
        bool is_taken = false;
        for (size_t i = 0; i < AGENT_MAX_OUTSTANDING; i++)
            is_taken |= a->pending[i].id == id;
        if (!is_taken)
            return id;
    }
}

int agent_request(struct agent *a, const char *method, json_t *params,
                  int timeout_ms, agent_reply_fn *cb, void *cb_ctx,
                  int64_t now_ms)
{
    assert(strlen(method) <= PROTO_MAX_METHOD);
    struct pending *slot = NULL;
    for (size_t i = 0; i < AGENT_MAX_OUTSTANDING && slot == NULL; i++) {
        if (a->pending[i].id == 0)
            slot = &a->pending[i];
    }
    if (slot == NULL || !a->is_open) {
        if (slot == NULL)
            cp_warn("rpc: %d requests outstanding; not sending %s",
                    AGENT_MAX_OUTSTANDING, method);
        json_decref(params);
        return CP_EAGAIN;
    }
    uint32_t id = new_id(a);
    char *buf = NULL;
    size_t len = 0;
    rpc_encode_request(id, method, params, &buf, &len);
    json_decref(params);
    cp_trace(CP_TRACE_RPC, "rpc: -> request %u %s (%zu bytes)", id, method,
             len);
    int rc = a->io.send(a->io.ctx, buf, len);
    if (rc != 0)
        return CP_EAGAIN;
    slot->id = id;
    snprintf(slot->method, sizeof(slot->method), "%s", method);
    slot->deadline_ms =
        now_ms + (timeout_ms > 0 ? timeout_ms : AGENT_REQUEST_TIMEOUT_MS);
    slot->cb = cb;
    slot->cb_ctx = cb_ctx;
    a->npending++;
    return 0;
}

int agent_notify(struct agent *a, const char *method, json_t *params)
{
    if (!a->is_open) {
        json_decref(params);
        return CP_EAGAIN;
    }
    char *buf = NULL;
    size_t len = 0;
    rpc_encode_notify(method, params, &buf, &len);
    json_decref(params);
    cp_trace(CP_TRACE_RPC, "rpc: -> notify %s (%zu bytes)", method, len);
    return a->io.send(a->io.ctx, buf, len);
}

static void respond(struct agent *a, uint32_t id, const json_t *error,
                    const json_t *result)
{
    char *buf = NULL;
    size_t len = 0;
    json_t *null = json_null();
    rpc_encode_response(id, error, result != NULL ? result : null, &buf, &len);
    cp_trace(CP_TRACE_RPC, "rpc: -> response %u%s", id,
             error != NULL ? " (error)" : "");
    a->io.send(a->io.ctx, buf, len);
}

/* Completes a pending slot: clears it first, so the callback may send new
 * requests. */
static void complete(struct agent *a, struct pending *p, const json_t *error,
                     const json_t *result, bool is_disconnect)
{
    struct pending done = *p;
    memset(p, 0, sizeof(*p));
    a->npending--;
    if (error != NULL && is_disconnect) {
        cp_info("rpc: %s abandoned: the connection closed", done.method);
    } else if (error != NULL) {
        json_t *code =
            json_is_object(error) ? json_object_get(error, "code") : NULL;
        const char *msg = json_is_string(error) ? json_string_value(error)
                          : cp_json_str(error, "message")
                              ? cp_json_str(error, "message")
                              : cp_json_str(error, "error");
        cp_warn("rpc: %s failed: %lld %s", done.method,
                json_is_integer(code) ? (long long)json_integer_value(code)
                                      : 0LL,
                msg != NULL ? msg : "(no message)");
    }
    if (done.cb != NULL)
        done.cb(done.cb_ctx, error, result);
}

static void fail_all(struct agent *a, const char *why)
{
    json_t *err = rpc_error(PROTO_ERR_TIMEOUT, why);
    for (size_t i = 0; i < AGENT_MAX_OUTSTANDING; i++) {
        if (a->pending[i].id != 0)
            complete(a, &a->pending[i], err, NULL, true);
    }
    json_decref(err);
}

/* ==== Master -> agent handlers ==== */

/* A handler returns NULL and may set *result (new reference; NULL sends
 * nil), or returns an error object from rpc_error(). For notifications
 * the result is dropped. */
typedef json_t *handler_fn(struct agent *a, const json_t *params,
                           json_t **result);

static json_t *on_master_info(struct agent *a, const json_t *params,
                              json_t **result)
{
    CP_UNUSED(a);
    CP_UNUSED(result);
    const char *v = cp_json_str(json_array_get(params, 0), "version");
    cp_info("agent: master version %s (agent %s)", v != NULL ? v : "unknown",
            KONTENA_VERSION);
    return NULL;
}

static json_t *on_node_info(struct agent *a, const json_t *params,
                            json_t **result)
{
    CP_UNUSED(result);
    json_t *info = json_array_get(params, 0);
    if (!json_is_object(info))
        return rpc_error(400, "node_info needs a node object");
    json_decref(a->node_info);
    a->node_info = json_deep_copy(info);
    a->node_number = (int)cp_json_int(info, "node_number", 0);
    json_t *grid = json_object_get(info, "grid");
    char *labels = cp_json_dump(json_object_get(info, "labels") != NULL
                                    ? json_object_get(info, "labels")
                                    : json_null());
    const char *name = cp_json_str(info, "name");
    const char *grid_name = cp_json_str(grid, "name");
    cp_info("agent: node info: name %s, number %d, grid %s, labels %s",
            name != NULL ? name : "?", a->node_number,
            grid_name != NULL ? grid_name : "?", labels);
    cp_free(labels);
    return NULL;
}

static json_t *on_pods_notify(struct agent *a, const json_t *params,
                              json_t **result)
{
    const char *reason = json_string_value(json_array_get(params, 0));
    cp_info("agent: service pods changed (%s)",
            reason != NULL ? reason : "no reason");
    if (a->pods_fn != NULL)
        a->pods_fn(a->pods_ctx, reason);
    *result = json_object();
    return NULL;
}

/* [service_id, instance_number]: restart that instance's container
 * (spec 4.4, `service restart`). Whether the instance is ours is for
 * the pod worker to say; here only the shape is checked. */
static json_t *on_pods_restart(struct agent *a, const json_t *params,
                               json_t **result)
{
    const char *service_id = json_string_value(json_array_get(params, 0));
    const json_t *n = json_array_get(params, 1);
    if (service_id == NULL || service_id[0] == '\0' || !json_is_integer(n) ||
        json_integer_value(n) < 0 || json_integer_value(n) > INT32_MAX)
        return rpc_error(400, "restart needs [service_id, instance_number]");
    int instance = (int)json_integer_value(n);
    cp_info("agent: restart of service %s instance %d requested", service_id,
            instance);
    if (a->restart_fn != NULL)
        a->restart_fn(a->restart_ctx, service_id, instance);
    *result = json_object();
    return NULL;
}

/* [container id or name]: the engine's inspect of one of this grid's
 * containers, from the inspector thread (answered later, by
 * deliver_inspects). */
static json_t *on_container_inspect(struct agent *a, const json_t *params,
                                    json_t **result)
{
    CP_UNUSED(result);
    const char *target = json_string_value(json_array_get(params, 0));
    if (a->cur_id == 0)
        return rpc_error(400, "inspect is a request, not a notification");
    if (!inspector_valid_target(target))
        return rpc_error(400, "inspect needs [container id or name]");
    const char *grid =
        cp_json_str(json_object_get(a->node_info, "grid"), "name");
    if (grid == NULL)
        return rpc_error(PROTO_ERR_TIMEOUT,
                         "the agent has no node info from the master yet");
    if (a->inspector == NULL)
        a->inspector =
            inspector_new(a->cfg->docker_socket, a->io.wake, a->io.ctx);
    if (!inspector_queue(a->inspector, a->cur_id, a->conn_gen, target, grid))
        return rpc_error(PROTO_ERR_TIMEOUT, "too many inspects in progress");
    a->is_deferred = true;
    return NULL;
}

/* Sends the inspects the inspector thread finished (loop thread). */
static void deliver_inspects(struct agent *a)
{
    struct inspector_answer ans;
    while (a->inspector != NULL && inspector_take(a->inspector, &ans)) {
        if (a->is_open && ans.conn_gen == a->conn_gen)
            respond(a, ans.rpc_id, ans.error, ans.result);
        json_decref(ans.error);
        json_decref(ans.result);
    }
}

static const struct {
    const char *method;
    handler_fn *fn;
} handlers[] = {
    {PROTO_M_CONTAINER_INSPECT, on_container_inspect},
    {PROTO_M_MASTER_INFO, on_master_info},
    {PROTO_M_NODE_INFO, on_node_info},
    {PROTO_M_PODS_NOTIFY, on_pods_notify},
    {PROTO_M_PODS_RESTART, on_pods_restart},
};

static handler_fn *find_handler(const char *method)
{
    for (size_t i = 0; i < CP_ARRAY_LEN(handlers); i++) {
        if (strcmp(handlers[i].method, method) == 0)
            return handlers[i].fn;
    }
    return NULL;
}

static void dispatch(struct agent *a, const struct rpc_msg *m)
{
    bool is_request = m->kind == PROTO_REQUEST;
    handler_fn *fn = find_handler(m->method);
    if (fn == NULL) {
        cp_warn("rpc: no handler for %s %s",
                is_request ? "request" : "notification", m->method);
        if (is_request) {
            json_t *err =
                rpc_error(PROTO_ERR_NOT_IMPLEMENTED, "service not implemented");
            respond(a, m->id, err, NULL);
            json_decref(err);
        }
        return;
    }
    json_t *result = NULL;
    a->cur_id = is_request ? m->id : 0;
    a->is_deferred = false;
    json_t *err = fn(a, m->params, &result);
    if (err != NULL)
        cp_warn("rpc: %s: %s", m->method, cp_json_str(err, "message"));
    if (is_request && !a->is_deferred)
        respond(a, m->id, err, result);
    json_decref(err);
    json_decref(result);
}

int agent_on_message(struct agent *a, const void *buf, size_t len)
{
    struct rpc_msg m;
    memset(&m, 0, sizeof(m));
    char why[128];
    if (rpc_decode(buf, len, &m, why, sizeof(why)) != 0) {
        cp_warn("rpc: malformed message from the master (%zu bytes): %s", len,
                why);
        return CP_EPROTO;
    }
    switch (m.kind) {
    case PROTO_REQUEST:
        cp_trace(CP_TRACE_RPC, "rpc: <- request %u %s", m.id, m.method);
        dispatch(a, &m);
        break;
    case PROTO_NOTIFY:
        cp_trace(CP_TRACE_RPC, "rpc: <- notify %s", m.method);
        dispatch(a, &m);
        break;
    case PROTO_RESPONSE: {
        cp_trace(CP_TRACE_RPC, "rpc: <- response %u", m.id);
        struct pending *p = NULL;
        for (size_t i = 0; i < AGENT_MAX_OUTSTANDING && p == NULL; i++) {
            if (m.id != 0 && a->pending[i].id == m.id)
                p = &a->pending[i];
        }
        if (p == NULL)
            cp_warn("rpc: response to unknown request %u (timed out?)", m.id);
        else
            complete(a, p, m.error, m.result, false);
        break;
    }
    }
    rpc_msg_release(&m);
    return 0;
}

/* ==== Node update and stats ==== */

static void on_update_reply(void *ctx, const json_t *error,
                            const json_t *result)
{
    CP_UNUSED(ctx);
    CP_UNUSED(result);
    if (error == NULL)
        cp_debug("agent: node update accepted");
}

/* Asks the collector thread for fresh node facts; the update goes out
 * from agent_tick() when they are back (deliver_update). Until then no
 * update is armed. */
static void request_update(struct agent *a)
{
    if (a->collector == NULL) {
        struct collector_options opt = {
            .cfg = a->cfg,
            .node_name = a->node_name,
            .version = a->version,
            .wake = a->io.wake,
            .wake_ctx = a->io.ctx,
        };
        a->collector = collector_new(&opt);
    }
    a->update_gen = collector_request(a->collector);
    a->is_update_waiting = true;
    a->next_update_ms = 0;
}

/* Sends the facts the collector gathered, if they answer the request
 * this connection waits for, and arms the next update: the interval
 * after a send, AGENT_UPDATE_RETRY_MS after a failed engine read. */
static void deliver_update(struct agent *a, int64_t now_ms)
{
    struct collector_result r;
    if (a->collector == NULL || !collector_take(a->collector, &r))
        return;
    if (r.root_dir != NULL &&
        (a->root_dir == NULL || strcmp(r.root_dir, a->root_dir) != 0)) {
        cp_free(a->root_dir);
        a->root_dir = cp_strdup(r.root_dir);
    }
    if (!a->is_open || !a->is_update_waiting || r.gen != a->update_gen) {
        collector_result_release(&r);
        return;
    }
    a->is_update_waiting = false;
    if (r.payload == NULL) {
        cp_warn("agent: node update skipped: %s", r.error);
        a->next_update_ms = now_ms + AGENT_UPDATE_RETRY_MS;
        collector_result_release(&r);
        return;
    }
    cp_info("agent: sending node update");
    agent_request(a, PROTO_M_NODES_UPDATE,
                  json_pack("[s, O]", a->node_id, r.payload), 0,
                  on_update_reply, a, now_ms);
    a->next_update_ms = now_ms + (int64_t)a->cfg->update_interval_s * 1000;
    collector_result_release(&r);
}

static void send_stats(struct agent *a)
{
    json_t *stats = facts_sample(&a->sampler, a->root_dir);
    if (stats == NULL) {
        cp_warn("agent: cannot read /proc/meminfo; stats skipped");
        return;
    }
    cp_debug("agent: sending node stats");
    agent_notify(a, PROTO_M_NODES_STATS,
                 json_pack("[s, o]", a->node_id, stats));
}

void agent_on_open(struct agent *a, int64_t now_ms)
{
    a->is_open = true;
    a->conn_gen++;
    request_update(a);
    a->next_stats_ms = now_ms + (int64_t)a->cfg->stats_interval_s * 1000;
}

void agent_on_close(struct agent *a)
{
    if (!a->is_open && a->npending == 0)
        return;
    a->is_open = false;
    a->is_update_waiting = false;
    a->next_update_ms = a->next_stats_ms = 0;
    fail_all(a, "connection closed");
}

void agent_tick(struct agent *a, int64_t now_ms)
{
    for (size_t i = 0; i < AGENT_MAX_OUTSTANDING; i++) {
        struct pending *p = &a->pending[i];
        if (p->id == 0 || now_ms < p->deadline_ms)
            continue;
        char msg[64];
        snprintf(msg, sizeof(msg), "request timed out");
        json_t *err = rpc_error(PROTO_ERR_TIMEOUT, msg);
        complete(a, p, err, NULL, false);
        json_decref(err);
    }
    deliver_update(a, now_ms);
    deliver_inspects(a);
    if (!a->is_open)
        return;
    if (a->next_update_ms != 0 && now_ms >= a->next_update_ms)
        request_update(a);
    if (a->next_stats_ms != 0 && now_ms >= a->next_stats_ms) {
        send_stats(a);
        a->next_stats_ms = now_ms + (int64_t)a->cfg->stats_interval_s * 1000;
    }
}

/* ==== Lifecycle and getters ==== */

struct agent *agent_new(const struct agent_config *cfg, struct engine *e,
                        const struct agent_io *io)
{
    assert(io->send != NULL);
    struct agent *a = cp_calloc(1, sizeof(*a));
    a->cfg = cfg;
    a->engine = e;
    a->io = *io;
    /* Prime the CPU sampler so the first stats cover a real interval. */
    json_decref(facts_sample(&a->sampler, NULL));
    return a;
}

void agent_stop(struct agent *a)
{
    collector_free(a->collector);
    a->collector = NULL;
    inspector_free(a->inspector);
    a->inspector = NULL;
    a->is_update_waiting = false;
}

void agent_free(struct agent *a)
{
    if (a == NULL)
        return;
    agent_stop(a);
    cp_free(a->node_id);
    cp_free(a->node_name);
    cp_free(a->labels_header);
    cp_free(a->root_dir);
    json_decref(a->version);
    json_decref(a->node_info);
    cp_free(a);
}

void agent_set_pods_hook(struct agent *a, agent_pods_fn *fn, void *ctx)
{
    a->pods_fn = fn;
    a->pods_ctx = ctx;
}

void agent_set_restart_hook(struct agent *a, agent_restart_fn *fn, void *ctx)
{
    a->restart_fn = fn;
    a->restart_ctx = ctx;
}

size_t agent_outstanding(const struct agent *a)
{
    return a->npending;
}

const char *agent_node_id(const struct agent *a)
{
    return a->node_id;
}

const json_t *agent_node_info(const struct agent *a)
{
    return a->node_info;
}

int agent_node_number(const struct agent *a)
{
    return a->node_number;
}
