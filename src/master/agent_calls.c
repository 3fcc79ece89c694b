/* Agent -> master calls (spec 4.5): one static table of handlers. Each
 * runs on a worker thread with a snapshot of the calling session; it may
 * block on the store, and answers through c->result or c->error.
 * Adding a call: one row in calls[] and its handler, here or in a file of
 * its own declared in agent_calls.h.
 * SPDX-License-Identifier: Apache-2.0 */
#include "agent_calls.h"
#include "nodes.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"
#include "../common/util.h"

#include <string.h>




void agent_call_error(struct agent_call *c, int code, const char *msg)
{
    json_decref(c->error);
    c->error = rpc_error(code, msg);
}

static void do_nodes_update(struct agent_call *c)
{
    json_t *payload = json_array_get(c->params, 1);
    if (!json_is_object(payload)) {
        agent_call_error(c, 400, "params must be [node_id, info]");
        return;
    }
    json_t *facts = nodes_facts_from_update(payload);
    const char *version = cp_json_str(payload, "AgentVersion");
    json_t *labels = json_object_get(payload, "Labels");
    if (!cp_json_is_string_array(labels))
        labels = NULL;
    int rc = ST_CALL(c->m->store, node_set_info, c->row_id, c->gen, facts,
                     version, labels && json_array_size(labels) ? labels
                                                                : NULL);
    json_decref(facts);
    if (rc == CP_ECONFLICT) {
        c->close_code = PROTO_CLOSE_SUPERSEDED;
        c->close_reason = "superseded by a newer connection of this node";
        agent_call_error(c, 409, "connection superseded");
        return;
    }
    if (rc != 0) {
        agent_call_error(c, 500, cp_strerror(rc));
        return;
    }
    c->result = json_object();
}

static void do_nodes_get(struct agent_call *c)
{
    struct store_node n = {0};
    struct store_grid g = {0};
    int rc = ST_CALL(c->m->store, node_get, c->row_id, &n);
    if (rc == 0)
        rc = ST_CALL(c->m->store, grid_get_by_id, n.grid_id, &g);
    if (rc != 0)
        agent_call_error(c, rc == CP_ENOTFOUND ? 404 : 500, cp_strerror(rc));
    else
        c->result = nodes_json(&n, &g, NULL);
    store_node_release(&n);
    store_grid_release(&g);
}

static const struct {
    const char *method;
    agent_call_fn *fn;
} calls[] = {
    {PROTO_M_NODES_UPDATE, do_nodes_update},
    {PROTO_M_NODES_GET, do_nodes_get},
    {PROTO_M_PODS_LIST, agent_calls_pods_list},
    {PROTO_M_PODS_SET_STATE, agent_calls_pods_set_state},
    {PROTO_M_PODS_EVENT, agent_calls_pods_event},
    {PROTO_M_PODS_MARK_ONESHOT, agent_calls_pods_mark_oneshot_hook},
    {PROTO_M_CONTAINERS_SAVE, agent_calls_containers_save},
    {PROTO_M_CONTAINERS_EVENT, agent_calls_containers_event},
    {PROTO_M_CONTAINERS_CLEANUP, agent_calls_containers_cleanup},
    {PROTO_M_CONTAINERS_LOG_BATCH, agent_calls_containers_log_batch},
    {PROTO_M_CONTAINERS_HEALTH, agent_calls_containers_health},
    {PROTO_M_CONTAINERS_STAT, agent_calls_containers_stat},
};

agent_call_fn *agent_calls_find(const char *method)
{
    for (size_t i = 0; i < CP_ARRAY_LEN(calls); i++) {
        if (strcmp(calls[i].method, method) == 0)
            return calls[i].fn;
    }
    return NULL;
}
