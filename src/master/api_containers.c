/* Containers (spec 3.1 "Containers", 3.2 "Container JSON"): the rows the
 * agents report with /containers/save. The list is three queries whatever
 * its length (issue #2234): containers, nodes, services.
 *
 * GET .../inspect is a live /containers/inspect call to the node's agent,
 * through whichever master holds its socket (xrpc.h); when the agent
 * cannot be reached it is a 503/504 with the reason, never stale data.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "agent_calls.h"
#include "service_model.h"
#include "xrpc.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/proto.h"
#include "../common/util.h"

#include <string.h>

void api_containers_list(struct api_req *req, struct api_res *res)
{
    struct store_container_list l = {0};
    struct store_node_list nodes = {0};
    struct store_service_list svcs = {0};
    json_t *node_at = json_object(), *path_of = json_object();
    char *all = api_query(req, "all");
    bool show_all =
        all != NULL && (strcmp(all, "1") == 0 || strcmp(all, "true") == 0);
    cp_free(all);
    struct store *st = req->m->store;
    int rc = ST_CALL(st, container_list, req->grid.id, NULL, NULL, &l);
    if (rc == 0)
        rc = ST_CALL(st, node_list, req->grid.id, &nodes);
    if (rc == 0)
        rc = ST_CALL(st, service_list, req->grid.id, NULL, &svcs);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    for (size_t i = 0; i < nodes.len; i++)
        json_object_set_new(node_at, nodes.items[i].id,
                            json_integer((json_int_t)i));
    for (size_t i = 0; i < svcs.len; i++) {
        char *p = service_path(req->grid.name, &svcs.items[i]);
        json_object_set_new(path_of, svcs.items[i].id, json_string(p));
        cp_free(p);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++) {
        const struct store_container *c = &l.items[i];
        if (!show_all &&
            (c->status == NULL || strcmp(c->status, "running") != 0))
            continue;
        json_t *ni = json_object_get(node_at, c->node_id);
        json_array_append_new(
            arr,
            container_json_ex(c, req->grid.name,
                              ni ? &nodes.items[json_integer_value(ni)] : NULL,
                              cp_json_str(path_of, c->service_id)));
    }
    api_json(res, 200, json_pack("{s:o}", "containers", arr));
out:
    json_decref(node_at);
    json_decref(path_of);
    store_service_list_release(&svcs);
    store_node_list_release(&nodes);
    store_container_list_release(&l);
}

/* Loads params[1] (node) and params[2] (container name); answers 404. */
static int load(struct api_req *req, struct api_res *res, struct store_node *n,
                struct store_container *c)
{
    int rc = ST_CALL(req->m->store, node_find, req->grid.id, req->params[1], n);
    if (rc == 0)
        rc = ST_CALL(req->m->store, container_get, req->grid.id, n->id,
                     req->params[2], c);
    if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

void api_container_show(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    struct store_container c = {0};
    struct store_service s = {0};
    char *path = NULL;
    if (load(req, res, &n, &c) != 0)
        goto out;
    if (c.service_id[0] != '\0' &&
        ST_CALL(req->m->store, service_get_by_id, c.service_id, &s) == 0)
        path = service_path(req->grid.name, &s);
    api_json(res, 200, container_json_ex(&c, req->grid.name, &n, path));
out:
    cp_free(path);
    store_service_release(&s);
    store_container_release(&c);
    store_node_release(&n);
}

#define INSPECT_TIMEOUT_MS 10000

void api_container_inspect(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    struct store_container c = {0};
    struct store_service s = {0};
    json_t *result = NULL;
    char *error = NULL;
    struct store *st = req->m->store;
    int rc = ST_CALL(st, node_find, req->grid.id, req->params[1], &n);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    /* A container the agent has saved is asked for by its engine id (and
     * its service's secrets are known); any other name goes to the agent
     * as is, which answers 404, or 403 for a container not of this grid. */
    rc = ST_CALL(st, container_get, req->grid.id, n.id, req->params[2], &c);
    if (rc != 0 && rc != CP_ENOTFOUND) {
        api_store_error(res, rc);
        goto out;
    }
    bool saved = rc == 0 && c.container_id != NULL;
    if (saved && c.service_id[0] != '\0' &&
        ST_CALL(st, service_get_by_id, c.service_id, &s) != 0)
        store_service_release(&s); /* gone: the label names still apply */
    json_t *params = json_pack("[s]", saved ? c.container_id : req->params[2]);
    int status =
        xrpc_call(req->m, n.id, n.name, n.connected, PROTO_M_CONTAINER_INSPECT,
                  params, INSPECT_TIMEOUT_MS, &result, &error);
    json_decref(params);
    if (status != 0) {
        api_error(res, status, "%s", error);
        goto out;
    }
    if (!json_is_object(result)) {
        api_error(res, 502, "the agent answered inspect without an object");
        goto out;
    }
    agent_calls_strip_secret_env(result, s.spec);
    api_json(res, 200, json_incref(result));
out:
    json_decref(result);
    cp_free(error);
    store_service_release(&s);
    store_container_release(&c);
    store_node_release(&n);
}
