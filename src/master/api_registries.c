/* External registries of a grid (spec 3.1): pull credentials that the
 * grid's pods carry to the agents (registry.c). The password is sealed at
 * rest and never answered; the JSON is the original's
 * {id, name, url, username, email}.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "registry.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

#define REGISTRY_FIELD_MAX 1024 /* url, username, email */
#define REGISTRY_PASSWORD_MAX 8192

static json_t *registry_json(const struct api_req *req,
                             const struct store_registry *r)
{
    char *id = cp_asprintf("%s/%s", req->grid.name, r->name);
    json_t *o = json_object();
    cp_json_set_str(o, "id", id);
    cp_json_set_str(o, "name", r->name);
    cp_json_set_str(o, "url", r->url);
    cp_json_set_str(o, "username", r->username);
    cp_json_set_str(o, "email", r->email);
    cp_free(id);
    return o;
}

void api_registries_list(struct api_req *req, struct api_res *res)
{
    struct store_registry_list l = {0};
    int rc = ST_CALL(req->m->store, registry_list, req->grid.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(arr, registry_json(req, &l.items[i]));
    store_registry_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "external_registries", arr));
}

/* A required non-empty string of at most max bytes, or NULL after a 422
 * field error. */
static const char *required(struct api_res *res, const json_t *b,
                            const char *key, size_t max)
{
    const json_t *v = json_object_get(b, key);
    if (v == NULL || json_is_null(v) ||
        (json_is_string(v) && json_string_length(v) == 0)) {
        api_field_error(res, key, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        api_field_error(res, key, "must be a string");
        return NULL;
    }
    if (json_string_length(v) > max) {
        api_field_error(res, key, "must be at most %zu bytes", max);
        return NULL;
    }
    return json_string_value(v);
}

void api_registries_create(struct api_req *req, struct api_res *res)
{
    const json_t *b = req->json;
    char name[REGISTRY_NAME_MAX] = "";
    const char *url = required(res, b, "url", REGISTRY_FIELD_MAX);
    char why[160];
    if (url != NULL &&
        registry_name_from_url(url, name, sizeof(name), why, sizeof(why)) != 0)
        api_field_error(res, "url", "%s", why);
    const char *user = required(res, b, "username", REGISTRY_FIELD_MAX);
    const char *pass = required(res, b, "password", REGISTRY_PASSWORD_MAX);
    const json_t *ev = json_object_get(b, "email");
    const char *email = NULL;
    if (ev != NULL && !json_is_null(ev)) {
        if (!json_is_string(ev) || json_string_length(ev) > REGISTRY_FIELD_MAX)
            api_field_error(res, "email",
                            "must be a string of at most %d "
                            "bytes",
                            REGISTRY_FIELD_MAX);
        else if (json_string_length(ev) > 0)
            email = json_string_value(ev);
    }
    if (api_failed(res))
        return;

    struct store_registry r = {0};
    store_new_id(r.id);
    memcpy(r.grid_id, req->grid.id, sizeof(r.grid_id));
    r.name = name;
    r.url = (char *)(uintptr_t)url;
    r.username = (char *)(uintptr_t)user;
    r.email = (char *)(uintptr_t)email;
    r.password_sealed = cp_seal(req->m->seal_key, pass, strlen(pass));
    r.created_at = r.updated_at = cp_now_ms();
    int rc = ST_CALL(req->m->store, registry_create, &r);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "name", "registry %s is already in grid %s", name,
                        req->grid.name);
    } else if (rc != 0) {
        api_store_error(res, rc);
    } else {
        cp_info("registries: %s added registry %s to grid %s", req->user.email,
                name, req->grid.name);
        api_json(res, 201, registry_json(req, &r));
    }
    cp_free(r.password_sealed);
}

void api_registry_show(struct api_req *req, struct api_res *res)
{
    struct store_registry r = {0};
    int rc =
        ST_CALL(req->m->store, registry_get, req->grid.id, req->params[1], &r);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    api_json(res, 200, registry_json(req, &r));
    store_registry_release(&r);
}

void api_registry_delete(struct api_req *req, struct api_res *res)
{
    int rc =
        ST_CALL(req->m->store, registry_delete, req->grid.id, req->params[1]);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    cp_info("registries: %s removed registry %s from grid %s", req->user.email,
            req->params[1], req->grid.name);
    api_json(res, 200, json_object());
}
