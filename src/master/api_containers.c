/* Containers (spec 3.1 "Containers", 3.2 "Container JSON"): the rows the
 * agents report with /containers/save. The list is three queries whatever
 * its length (issue #2234): containers, nodes, services.
 *
 * GET .../inspect answers with the inspect data stored at the last
 * /containers/save (reduced, secrets stripped), not a live
 * /containers/inspect RPC to the agent: that call needs a request to the
 * master that holds the node's socket, which comes with the HA work.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "service_model.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
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

void api_container_inspect(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    struct store_container c = {0};
    if (load(req, res, &n, &c) == 0)
        api_json(res, 200, c.info ? json_incref(c.info) : json_object());
    store_container_release(&c);
    store_node_release(&n);
}
