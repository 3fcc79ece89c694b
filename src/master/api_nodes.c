/* Nodes (spec 3.1 "Nodes", 3.2 "Node JSON", 2.5 node tokens). Changes
 * that an agent must see (labels, removal, token reset) reach its socket
 * through the feed, on whichever master holds it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "feed.h"
#include "nodes.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/util.h"

#include <string.h>

static json_t *node_view(struct api_req *req, const struct store_node *n)
{
    char *token = api_grid_token(req->m, &req->grid);
    json_t *j = nodes_json(n, &req->grid, token);
    cp_free(token);
    return j;
}

/* Loads the node named by params[1] (name, or node id with ':'). */
static int load_node(struct api_req *req, struct api_res *res,
                     struct store_node *out)
{
    int rc = ST_CALL(req->m->store, node_find, req->grid.id, req->params[1],
                     out);
    if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

void api_nodes_list(struct api_req *req, struct api_res *res)
{
    struct store_node_list l = {0};
    int rc = ST_CALL(req->m->store, node_list, req->grid.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    char *token = api_grid_token(req->m, &req->grid);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(arr,
                              nodes_json(&l.items[i], &req->grid, token));
    cp_free(token);
    store_node_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "nodes", arr));
}

/* Checks a labels value: an array of "key=value" or plain strings. */
static bool labels_ok(struct api_res *res, const json_t *v)
{
    if (!cp_json_is_string_array(v) || json_array_size(v) > 256) {
        api_field_error(res, "labels", "must be an array of strings");
        return false;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t n = json_string_length(e);
        if (n == 0 || n > 255 || strchr(json_string_value(e), ',') != NULL) {
            api_field_error(res, "labels",
                            "each label must be 1 to 255 characters without "
                            "commas");
            return false;
        }
    }
    return true;
}

/* A node token from the body (checked) or a fresh one. */
static char *token_from(struct api_req *req, struct api_res *res)
{
    json_t *t = json_object_get(req->json, "token");
    if (t != NULL && !json_is_null(t)) {
        if (!json_is_string(t) || !valid_token(json_string_value(t))) {
            api_field_error(res, "token",
                            "must be 16 to 256 printable characters");
            return NULL;
        }
        return cp_strdup(json_string_value(t));
    }
    unsigned char raw[64];
    cp_random_bytes(raw, sizeof(raw));
    return cp_base64_encode(raw, sizeof(raw));
}

void api_nodes_create(struct api_req *req, struct api_res *res)
{
    const char *name = cp_json_str(req->json, "name");
    json_t *labels = json_object_get(req->json, "labels");
    if (name == NULL || !valid_name(name))
        api_field_error(res, "name",
                        "must be 1 to 64 characters of letters, digits, _ "
                        "and -, not starting with -");
    if (labels != NULL && !json_is_null(labels) && !labels_ok(res, labels))
        return;
    char *token = api_failed(res) ? NULL : token_from(req, res);
    if (api_failed(res)) {
        cp_free(token);
        return;
    }
    struct store_node n = {0}, out = {0};
    store_new_id(n.id);
    memcpy(n.grid_id, req->grid.id, sizeof(n.grid_id));
    n.name = (char *)(uintptr_t)name;
    n.labels = json_is_array(labels) ? labels : NULL;
    char hash[65];
    cp_sha256_hex(token, strlen(token), hash);
    n.token_hash = hash;
    n.token_sealed = cp_seal(req->m->seal_key, token, strlen(token));
    const char *field = NULL;
    int rc = ST_CALL(req->m->store, node_create, &n, false, &out, &field);
    cp_free(n.token_sealed);
    if (rc == CP_ECONFLICT)
        api_field_error(res, field ? field : "name", "is already taken");
    else if (rc == CP_EAGAIN)
        api_field_error(res, "name", "grid already has 254 nodes");
    else if (rc != 0)
        api_store_error(res, rc);
    if (rc == 0) {
        json_t *j = node_view(req, &out);
        json_object_set_new(j, "token", json_string(token));
        api_json(res, 201, j);
    }
    store_node_release(&out);
    cp_free(token);
}

void api_node_show(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    api_json(res, 200, node_view(req, &n));
    store_node_release(&n);
}

void api_node_update(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    json_t *labels = json_object_get(req->json, "labels");
    json_t *avail = json_object_get(req->json, "availability");
    if (labels != NULL && !json_is_null(labels) && labels_ok(res, labels)) {
        json_decref(n.labels);
        n.labels = json_incref(labels);
    }
    if (avail != NULL && !json_is_null(avail)) {
        const char *a = json_string_value(avail);
        if (a == NULL || (strcmp(a, "active") != 0 && strcmp(a, "drain") != 0))
            api_field_error(res, "availability", "must be active or drain");
        else {
            cp_free(n.availability);
            n.availability = cp_strdup(a);
        }
    }
    if (!api_failed(res)) {
        n.updated_at = cp_now_ms();
        int rc = ST_CALL(req->m->store, node_update, &n);
        if (rc != 0) {
            api_store_error(res, rc);
        } else {
            feed_node_info(req->m, req->grid.id, n.id);
            api_json(res, 200, node_view(req, &n));
        }
    }
    store_node_release(&n);
}

void api_node_delete(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    int rc = ST_CALL(req->m->store, node_delete, n.id);
    if (rc != 0) {
        api_store_error(res, rc);
    } else {
        cp_info("nodes: %s removed node %s of grid %s", req->user.email,
                n.name, req->grid.name);
        feed_close_agent(req->m, n.id, PROTO_CLOSE_NODE_REMOVED,
                         "node was removed from the grid");
        api_json(res, 200, json_object());
    }
    store_node_release(&n);
}

void api_node_health(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    json_t *j = json_object();
    char id[256];
    snprintf(id, sizeof(id), "%s/%s", req->grid.name, n.name);
    json_object_set_new(j, "id", json_string(id));
    json_object_set_new(j, "name", json_string(n.name));
    json_object_set_new(j, "connected", json_boolean(n.connected));
    json_object_set_new(j, "status", json_string(nodes_status(&n)));
    cp_json_set_time(j, "last_seen_at", n.last_seen_at);
    /* No etcd on our nodes: the overlay store is not part of this
     * platform, so there is no etcd health to report. */
    json_object_set_new(j, "etcd_health", json_null());
    api_json(res, 200, j);
    store_node_release(&n);
}

void api_node_stats(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    api_json(res, 200,
             json_pack("{s:O?}", "stats", n.stats ? n.stats : json_null()));
    store_node_release(&n);
}

void api_node_token_show(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    char *plain = NULL;
    size_t len = 0;
    if (n.token_sealed != NULL &&
        master_open_sealed(req->m, n.token_sealed, &plain, &len) != 0)
        cp_error("nodes: cannot open the token of node %s", n.name);
    if (n.token_sealed == NULL)
        api_error(res, 404, "Node has no token");
    else
        api_json(res, 200,
                 json_pack("{s:s,s:s?}", "id", n.id, "token", plain));
    cp_free(plain);
    store_node_release(&n);
}

static bool reset_connection(const struct api_req *req)
{
    return cp_json_bool(req->json, "reset_connection", true);
}

void api_node_token_update(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    char *token = token_from(req, res);
    if (token == NULL) {
        store_node_release(&n);
        return;
    }
    char hash[65];
    cp_sha256_hex(token, strlen(token), hash);
    char *sealed = cp_seal(req->m->seal_key, token, strlen(token));
    int rc = ST_CALL(req->m->store, node_set_token, n.id, hash, sealed);
    cp_free(sealed);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "token", "is already taken");
    } else if (rc != 0) {
        api_store_error(res, rc);
    } else {
        if (reset_connection(req))
            feed_close_agent(req->m, n.id, PROTO_CLOSE_DISCONNECTED,
                             "node token was reset");
        api_json(res, 200, json_pack("{s:s,s:s}", "id", n.id, "token", token));
    }
    cp_free(token);
    store_node_release(&n);
}

void api_node_token_delete(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    if (load_node(req, res, &n) != 0)
        return;
    int rc = ST_CALL(req->m->store, node_set_token, n.id, NULL, NULL);
    if (rc != 0) {
        api_store_error(res, rc);
    } else {
        if (reset_connection(req))
            feed_close_agent(req->m, n.id, PROTO_CLOSE_DISCONNECTED,
                             "node token was removed");
        api_json(res, 200, json_object());
    }
    store_node_release(&n);
}
