/* Services (spec 3.1 "Services", 3.2 "Service create", "Service JSON",
 * "Service deploy"; 5.1). Validation and views are in service_model.c;
 * deploys, start/stop and removal go through the deploy engine
 * (deploy.h). Lists are a fixed number of queries whatever the number of
 * services (issue #2234).
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "deploy.h"
#include "service_model.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

#define MAX_LINKS 64

/* ==== Loading and counting ==== */

int api__service_load(struct api_req *req, struct api_res *res,
                      struct store_service *out)
{
    int rc = ST_CALL(req->m->store, service_get, req->grid.id, req->params[1],
                     req->params[2], out);
    if (rc == CP_ENOTFOUND)
        api_error(res, 404, "Not found");
    else if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

json_t *api__service_counts(struct api_req *req, struct api_res *res,
                            const char *service_id)
{
    struct store_container_list l = {0};
    int rc = ST_CALL(req->m->store, container_list, req->grid.id, NULL,
                     service_id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return NULL;
    }
    json_t *counts = json_object();
    for (size_t i = 0; i < l.len; i++) {
        const struct store_container *c = &l.items[i];
        if (c->service_id[0] == '\0' || c->deleted_at != 0)
            continue;
        json_t *pair = json_object_get(counts, c->service_id);
        if (pair == NULL) {
            pair = json_pack("[i, i]", 0, 0);
            json_object_set_new(counts, c->service_id, pair);
        }
        bool running = c->status != NULL && strcmp(c->status, "running") == 0;
        json_array_set_new(
            pair, 0,
            json_integer(json_integer_value(json_array_get(pair, 0)) + 1));
        if (running)
            json_array_set_new(
                pair, 1,
                json_integer(json_integer_value(json_array_get(pair, 1)) + 1));
    }
    store_container_list_release(&l);
    return counts;
}

json_t *api__service_view(struct api_req *req, const struct store_service *s,
                          const json_t *counts)
{
    json_t *pair = json_object_get(counts, s->id);
    return service_json(s, req->grid.name,
                        (int)json_integer_value(json_array_get(pair, 0)),
                        (int)json_integer_value(json_array_get(pair, 1)));
}

/* Answers status with the service JSON of s (two queries: counts). */
static void answer_service(struct api_req *req, struct api_res *res, int status,
                           const struct store_service *s)
{
    json_t *counts = api__service_counts(req, res, s->id);
    if (counts == NULL)
        return;
    api_json(res, status, api__service_view(req, s, counts));
    json_decref(counts);
}

void api_services_list(struct api_req *req, struct api_res *res)
{
    char *stack = api_query(req, "stack");
    struct store_service_list l = {0};
    int rc = ST_CALL(req->m->store, service_list, req->grid.id,
                     stack && *stack ? stack : NULL, &l);
    cp_free(stack);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *counts = api__service_counts(req, res, NULL);
    if (counts != NULL) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.len; i++)
            json_array_append_new(arr,
                                  api__service_view(req, &l.items[i], counts));
        json_decref(counts);
        api_json(res, 200, json_pack("{s:o}", "services", arr));
    }
    store_service_list_release(&l);
}

/* ==== Create and update ==== */

/* Adds a "links" error unless every link of spec names a service of the
 * grid (one query per link; MAX_LINKS at most). self, when not NULL,
 * is the service itself (it cannot link to itself). */
static void check_links(struct api_req *req, const json_t *spec,
                        const char *own_stack, const char *self, json_t *errors)
{
    const json_t *links = json_object_get(spec, "links");
    if (json_array_size(links) > MAX_LINKS) {
        json_object_set_new(errors, "links",
                            json_string("too many links (64 at most)"));
        return;
    }
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l)
    {
        const char *name = cp_json_str(l, "name");
        if (name == NULL)
            continue;
        const char *slash = strchr(name, '/');
        char *stack = slash ? cp_strndup(name, (size_t)(slash - name))
                            : cp_strdup(own_stack);
        const char *svc = slash ? slash + 1 : name;
        if (self != NULL && strcmp(stack, own_stack) == 0 &&
            strcmp(svc, self) == 0) {
            json_object_set_new(errors, "links",
                                json_string("a service cannot link to "
                                            "itself"));
            cp_free(stack);
            return;
        }
        struct store_service t = {0};
        int rc =
            ST_CALL(req->m->store, service_get, req->grid.id, stack, svc, &t);
        store_service_release(&t);
        cp_free(stack);
        if (rc != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s service %s",
                     rc == CP_ENOTFOUND ? "no such" : "cannot check", name);
            json_object_set_new(errors, "links", json_string(msg));
            return;
        }
    }
}

/* The id of stack name in the grid; "" is the null stack. */
static int stack_id_of(struct api_req *req, const char *name,
                       char out[STORE_ID_LEN + 1])
{
    out[0] = '\0';
    if (name == NULL || strcmp(name, "null") == 0)
        return 0;
    struct store_stack k = {0};
    int rc = ST_CALL(req->m->store, stack_get, req->grid.id, name, &k, NULL);
    if (rc == 0)
        memcpy(out, k.id, STORE_ID_LEN + 1);
    store_stack_release(&k);
    return rc;
}

void api_services_create(struct api_req *req, struct api_res *res)
{
    json_t *errors = json_object();
    json_t *spec = NULL;
    struct store_service s = {0}, got = {0};
    const json_t *body = req->json;
    const char *name = cp_json_str(body, "name");
    json_t *stack_v = json_object_get(body, "stack");
    const char *stack = "null";
    if (stack_v != NULL && !json_is_null(stack_v)) {
        if (!json_is_string(stack_v) ||
            (strcmp(json_string_value(stack_v), "null") != 0 &&
             !valid_name(json_string_value(stack_v))))
            json_object_set_new(errors, "stack",
                                json_string("must be a stack name"));
        else
            stack = json_string_value(stack_v);
    }
    service_validate(body, NULL, &spec, errors);
    service_name_ok(name, stack, req->grid.name,
                    cp_json_int(spec, "instances", 1), errors);
    if (json_object_size(errors) == 0)
        check_links(req, spec, stack, name, errors);
    if (json_object_size(errors) == 0)
        api__secrets_check(req, spec, errors);
    if (json_object_size(errors) == 0) {
        int rc = stack_id_of(req, stack, s.stack_id);
        if (rc == CP_ENOTFOUND)
            json_object_set_new(errors, "stack", json_string("no such stack"));
        else if (rc != 0) {
            api_store_error(res, rc);
            goto out;
        }
    }
    if (json_object_size(errors) > 0) {
        api_field_errors(res, errors);
        goto out;
    }
    int64_t now = cp_now_ms();
    store_new_id(s.id);
    memcpy(s.grid_id, req->grid.id, sizeof(s.grid_id));
    s.name = (char *)(uintptr_t)name;
    s.spec = spec;
    s.revision = 1;
    s.state = (char *)(uintptr_t) "initialized";
    s.created_at = s.updated_at = now;
    int rc = ST_CALL(req->m->store, service_create, &s);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "name", "is already taken in stack %s", stack);
        goto out;
    }
    if (rc == 0)
        rc = ST_CALL(req->m->store, service_get_by_id, s.id, &got);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("services: %s created service %s/%s/%s", req->user.email,
            req->grid.name, stack, name);
    api_json(res, 201, service_json(&got, req->grid.name, 0, 0));
out:
    store_service_release(&got);
    json_decref(spec);
    json_decref(errors);
}

void api_service_show(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    answer_service(req, res, 200, &s);
    store_service_release(&s);
}

/* Writes new_spec to s, bumping the revision when it differs. */
static int save_spec(struct api_req *req, struct store_service *s,
                     json_t *new_spec)
{
    if (json_equal(new_spec, s->spec))
        return 0;
    json_decref(s->spec);
    s->spec = json_incref(new_spec);
    s->revision++;
    s->updated_at = cp_now_ms();
    return ST_CALL(req->m->store, service_update, s);
}

void api_service_update(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    json_t *errors = json_object();
    json_t *spec = NULL;
    if (api__service_load(req, res, &s) != 0)
        goto out;
    service_validate(req->json, s.spec, &spec, errors);
    if (json_object_get(req->json, "instances") != NULL)
        service_name_ok(s.name, s.stack_name, req->grid.name,
                        cp_json_int(spec, "instances", 1), errors);
    if (json_object_size(errors) == 0 &&
        json_object_get(req->json, "links") != NULL)
        check_links(req, spec, s.stack_name, s.name, errors);
    if (json_object_size(errors) == 0 &&
        json_object_get(req->json, "secrets") != NULL)
        api__secrets_check(req, spec, errors);
    if (json_object_size(errors) > 0) {
        api_field_errors(res, errors);
        goto out;
    }
    int rc = save_spec(req, &s, spec);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    answer_service(req, res, 200, &s);
out:
    json_decref(spec);
    json_decref(errors);
    store_service_release(&s);
}

void api_service_delete(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_service_list l = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    /* Refused while another service links to it (spec 3.1): one query. */
    int rc = ST_CALL(req->m->store, service_list, req->grid.id, NULL, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    for (size_t i = 0; i < l.len; i++) {
        const struct store_service *o = &l.items[i];
        if (strcmp(o->id, s.id) != 0 &&
            service_links_to(o->spec, o->stack_name, s.stack_name, s.name)) {
            api_field_error(res, "service",
                            "is linked to by %s/%s; remove that link first",
                            o->stack_name, o->name);
            goto out;
        }
    }
    rc = deploy_remove_service(req->m, &s);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("services: %s removed service %s/%s/%s", req->user.email,
            req->grid.name, s.stack_name, s.name);
    api_json(res, 200, json_object());
out:
    store_service_list_release(&l);
    store_service_release(&s);
}

/* ==== Deploys, scaling, start, stop, restart ==== */

static void answer_deploy(struct api_req *req, struct api_res *res,
                          const struct store_service *s,
                          const struct store_deploy *d)
{
    char *path = service_path(req->grid.name, s);
    api_json(res, 200, deploy_json(d, path));
    cp_free(path);
}

/* Queues a deploy of s and answers with it. */
static void request_deploy(struct api_req *req, struct api_res *res,
                           struct store_service *s, bool force)
{
    struct store_deploy d = {0};
    int rc = deploy_request(req->m, s, force, &d);
    if (rc != 0)
        api_store_error(res, rc);
    else
        answer_deploy(req, res, s, &d);
    store_deploy_release(&d);
}

/* A boolean body member, also "true"/"1" from form bodies. */
static bool body_bool(const json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    if (json_is_string(v))
        return strcmp(json_string_value(v), "true") == 0 ||
               strcmp(json_string_value(v), "1") == 0;
    return json_is_true(v);
}

void api_service_deploy(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    request_deploy(req, res, &s, body_bool(req->json, "force"));
    store_service_release(&s);
}

void api_service_scale(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    json_t *errors = json_object();
    json_t *v = json_object_get(req->json, "instances");
    long long n = -1;
    if (json_is_integer(v))
        n = (long long)json_integer_value(v);
    else if (json_is_string(v) && cp_parse_int(json_string_value(v), 0,
                                               SERVICE_MAX_INSTANCES, &n) != 0)
        n = -1;
    if (n < 0 || n > SERVICE_MAX_INSTANCES) {
        api_field_error(res, "instances", "must be an integer from 0 to %d",
                        SERVICE_MAX_INSTANCES);
        goto out;
    }
    if (api__service_load(req, res, &s) != 0)
        goto out;
    if (!service_name_ok(s.name, s.stack_name, req->grid.name, n, errors)) {
        api_field_errors(res, errors);
        goto out;
    }
    /* Scaling changes no container's configuration: no new revision, so
     * running instances are left alone. */
    if (cp_json_int(s.spec, "instances", -1) != n) {
        if (!json_is_object(s.spec)) {
            json_decref(s.spec);
            s.spec = json_object();
        }
        json_object_set_new(s.spec, "instances", json_integer(n));
        s.updated_at = cp_now_ms();
        int rc = ST_CALL(req->m->store, service_update, &s);
        if (rc != 0) {
            api_store_error(res, rc);
            goto out;
        }
    }
    request_deploy(req, res, &s, false);
out:
    json_decref(errors);
    store_service_release(&s);
}

static void set_desired(struct api_req *req, struct api_res *res,
                        const char *desired)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    int rc = deploy_set_desired(req->m, &s, desired);
    if (rc != 0)
        api_store_error(res, rc);
    else
        api_json(res, 200, json_object());
    store_service_release(&s);
}

void api_service_start(struct api_req *req, struct api_res *res)
{
    set_desired(req, res, "running");
}

void api_service_stop(struct api_req *req, struct api_res *res)
{
    set_desired(req, res, "stopped");
}

void api_service_restart(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    int rc = deploy_restart(req->m, &s);
    if (rc != 0)
        api_store_error(res, rc);
    else
        api_json(res, 200, json_object());
    store_service_release(&s);
}

void api_service_deploy_show(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_deploy d = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    int rc = ST_CALL(req->m->store, deploy_get, req->params[3], &d);
    if (rc == 0 && strcmp(d.service_id, s.id) != 0)
        rc = CP_ENOTFOUND;
    if (rc != 0)
        api_store_error(res, rc);
    else
        answer_deploy(req, res, &s, &d);
    store_deploy_release(&d);
    store_service_release(&s);
}

/* ==== Instances and containers ==== */

/* Node row id -> node, for the grid (one query). NULL after answering
 * the error. The list stays owned by the caller. */
static json_t *node_names(struct api_req *req, struct api_res *res,
                          struct store_node_list *l)
{
    int rc = ST_CALL(req->m->store, node_list, req->grid.id, l);
    if (rc != 0) {
        api_store_error(res, rc);
        return NULL;
    }
    json_t *map = json_object();
    for (size_t i = 0; i < l->len; i++)
        json_object_set_new(map, l->items[i].id, json_integer((json_int_t)i));
    return map;
}

static const struct store_node *node_at(const struct store_node_list *l,
                                        const json_t *map, const char *id)
{
    json_t *i = json_object_get(map, id);
    return i ? &l->items[json_integer_value(i)] : NULL;
}

static json_t *instance_json(const struct store_instance *in,
                             const struct store_node *node)
{
    json_t *j =
        json_pack("{s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "id",
                  in->id, "instance_number", in->instance_number, "node",
                  node ? node->name : NULL, "desired_state", in->desired_state,
                  "deploy_rev", in->deploy_rev, "rev", in->rev, "state",
                  in->state, "error", in->error);
    static const char *const keys[] = {"node", "desired_state", "deploy_rev",
                                       "rev",  "state",         "error"};
    for (size_t i = 0; i < CP_ARRAY_LEN(keys); i++)
        if (json_object_get(j, keys[i]) == NULL)
            json_object_set_new(j, keys[i], json_null());
    cp_json_set_time(j, "updated_at", in->updated_at);
    return j;
}

/* Loads the service and its instances; answers errors. */
static int load_instances(struct api_req *req, struct api_res *res,
                          struct store_service *s,
                          struct store_instance_list *l)
{
    if (api__service_load(req, res, s) != 0)
        return CP_ENOTFOUND;
    int rc = ST_CALL(req->m->store, instance_list, s->id, l);
    if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

/* The instance named by params[3]: its number or its id. */
static const struct store_instance *
find_instance(const struct api_req *req, const struct store_instance_list *l)
{
    long long n = 0;
    bool by_number =
        cp_parse_int(req->params[3], 1, SERVICE_MAX_INSTANCES, &n) == 0;
    for (size_t i = 0; i < l->len; i++) {
        if (by_number ? l->items[i].instance_number == n
                      : strcmp(l->items[i].id, req->params[3]) == 0)
            return &l->items[i];
    }
    return NULL;
}

void api_service_instances(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_instance_list l = {0};
    struct store_node_list nodes = {0};
    json_t *map = NULL;
    if (load_instances(req, res, &s, &l) != 0)
        goto out;
    map = node_names(req, res, &nodes);
    if (map == NULL)
        goto out;
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(
            arr, instance_json(&l.items[i],
                               node_at(&nodes, map, l.items[i].node_id)));
    api_json(res, 200, json_pack("{s:o}", "instances", arr));
out:
    json_decref(map);
    store_node_list_release(&nodes);
    store_instance_list_release(&l);
    store_service_release(&s);
}

void api_service_instance_show(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_instance_list l = {0};
    struct store_node n = {0};
    if (load_instances(req, res, &s, &l) != 0)
        goto out;
    const struct store_instance *in = find_instance(req, &l);
    if (in == NULL) {
        api_error(res, 404, "Not found");
        goto out;
    }
    bool has_node = in->node_id[0] != '\0' &&
                    ST_CALL(req->m->store, node_get, in->node_id, &n) == 0;
    api_json(res, 200, instance_json(in, has_node ? &n : NULL));
out:
    store_node_release(&n);
    store_instance_list_release(&l);
    store_service_release(&s);
}

void api_service_instance_delete(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_instance_list l = {0};
    if (load_instances(req, res, &s, &l) != 0)
        goto out;
    const struct store_instance *in = find_instance(req, &l);
    if (in == NULL) {
        api_error(res, 404, "Not found");
        goto out;
    }
    int rc = deploy_move_instance(req->m, &s, in->instance_number);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("services: %s detached instance %d of %s/%s/%s", req->user.email,
            in->instance_number, req->grid.name, s.stack_name, s.name);
    api_json(res, 200, json_object());
out:
    store_instance_list_release(&l);
    store_service_release(&s);
}

void api_service_containers(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_container_list l = {0};
    struct store_node_list nodes = {0};
    json_t *map = NULL;
    char *path = NULL;
    if (api__service_load(req, res, &s) != 0)
        return;
    int rc =
        ST_CALL(req->m->store, container_list, req->grid.id, NULL, s.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    map = node_names(req, res, &nodes);
    if (map == NULL)
        goto out;
    path = service_path(req->grid.name, &s);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(
            arr,
            container_json_ex(&l.items[i], req->grid.name,
                              node_at(&nodes, map, l.items[i].node_id), path));
    api_json(res, 200, json_pack("{s:o}", "containers", arr));
out:
    cp_free(path);
    json_decref(map);
    store_node_list_release(&nodes);
    store_container_list_release(&l);
    store_service_release(&s);
}

/* ==== Env edits (no deploy) ==== */

void api_service_env_add(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    const char *kv = cp_json_str(req->json, "env");
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (eq == NULL || eq == kv || strlen(kv) > 128 * 1024) {
        api_field_error(res, "env", "must be \"KEY=value\"");
        return;
    }
    if (api__service_load(req, res, &s) != 0)
        return;
    json_t *spec =
        json_is_object(s.spec) ? json_deep_copy(s.spec) : json_object();
    json_t *env = json_object_get(spec, "env");
    if (!json_is_array(env)) {
        env = json_array();
        json_object_set_new(spec, "env", env);
    }
    size_t klen = (size_t)(eq - kv);
    size_t i;
    json_t *e;
    bool replaced = false;
    json_array_foreach(env, i, e)
    {
        const char *cur = json_string_value(e);
        if (cur != NULL && strncmp(cur, kv, klen + 1) == 0) {
            json_array_set_new(env, i, json_string(kv));
            replaced = true;
            break;
        }
    }
    if (!replaced)
        json_array_append_new(env, json_string(kv));
    int rc = save_spec(req, &s, spec);
    json_decref(spec);
    if (rc != 0)
        api_store_error(res, rc);
    else
        api_json(res, 201, json_object());
    store_service_release(&s);
}

void api_service_env_delete(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    const char *key = req->params[3];
    size_t klen = strlen(key);
    json_t *spec =
        json_is_object(s.spec) ? json_deep_copy(s.spec) : json_object();
    json_t *env = json_object_get(spec, "env");
    bool found = false;
    for (size_t i = 0; i < json_array_size(env); i++) {
        const char *cur = json_string_value(json_array_get(env, i));
        if (cur != NULL && strncmp(cur, key, klen) == 0 && cur[klen] == '=') {
            json_array_remove(env, i);
            found = true;
            break;
        }
    }
    int rc = found ? save_spec(req, &s, spec) : CP_ENOTFOUND;
    json_decref(spec);
    if (rc == CP_ENOTFOUND)
        api_error(res, 404, "env %s not found", key);
    else if (rc != 0)
        api_store_error(res, rc);
    else
        api_json(res, 200, json_object());
    store_service_release(&s);
}
