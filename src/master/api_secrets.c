/* The vault's REST routes (spec 3.1 "Vault / secrets", 3.2 "Secret
 * write", 7): create and list under /v1/grids/G/secrets, read, update
 * (with upsert) and delete under /v1/secrets/G/name. Any member of the
 * grid may use them. Every route answers 503 while the vault is unusable
 * (no VAULT_KEY, or a key that does not open the stored secrets).
 *
 * Writes bump the revision of the services using the secret in the same
 * transaction; the reconciler then rolls them out. Deleting a secret that
 * a service uses is refused (the original allowed it, and the service's
 * next container silently lost the variable).
 *
 * Values are never logged; only names are.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "vault.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* Answers 503 and returns false when the vault cannot be used. */
static bool vault_ready(struct api_req *req, struct api_res *res)
{
    const char *why = vault_unusable(req->m->vault);
    if (why == NULL)
        return true;
    api_error(res, 503, "%s", why);
    return false;
}

static json_t *services_json(const struct api_req *req,
                             const struct store_secret *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->nservices; i++) {
        const struct store_secret_user *u = &s->services[i];
        char *id = cp_asprintf("%s/%s/%s", req->grid.name,
                               u->stack_name ? u->stack_name : "null",
                               u->name ? u->name : "");
        json_array_append_new(arr, json_pack("{s:s, s:s?}", "id", id, "name",
                                             u->name));
        cp_free(id);
    }
    return arr;
}

/* The secret JSON; value (may be NULL: list views) is the plaintext. */
static json_t *secret_json(const struct api_req *req,
                           const struct store_secret *s, const char *value,
                           size_t value_len)
{
    json_t *j = json_object();
    char *id = cp_asprintf("%s/%s", req->grid.name, s->name);
    json_object_set_new(j, "id", json_string(id));
    cp_free(id);
    cp_json_set_str(j, "name", s->name);
    cp_json_set_time(j, "created_at", s->created_at);
    cp_json_set_time(j, "updated_at", s->updated_at);
    if (value != NULL)
        json_object_set_new(j, "value", json_stringn(value, value_len));
    json_object_set_new(j, "services", services_json(req, s));
    return j;
}

/* Answers status with the stored secret name and its plaintext. */
static void answer_secret(struct api_req *req, struct api_res *res, int status,
                          const char *name)
{
    struct store_secret s = {0};
    int rc = ST_CALL(req->m->store, secret_get, req->grid.id, name, &s);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    char *plain = NULL;
    size_t len = 0;
    rc = vault_open(req->m->vault, s.value, &plain, &len);
    if (rc != 0) {
        cp_error("vault: secret %s/%s does not open with the vault key: %s",
                 req->grid.name, name, cp_strerror(rc));
        api_error(res, 503, "secret %s cannot be opened with the vault key",
                  name);
    } else {
        api_json(res, status, secret_json(req, &s, plain, len));
    }
    vault_plain_free(plain, len);
    store_secret_release(&s);
}

/* The value of the body as a string, or NULL after a 422. */
static const char *body_value(struct api_req *req, struct api_res *res,
                              size_t *len)
{
    json_t *v = json_object_get(req->json, "value");
    if (v == NULL || json_is_null(v)) {
        api_field_error(res, "value", "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        api_field_error(res, "value", "must be a string");
        return NULL;
    }
    *len = json_string_length(v);
    if (*len == 0) {
        api_field_error(res, "value", "can't be blank");
        return NULL;
    }
    if (*len > VAULT_MAX_VALUE) {
        api_field_error(res, "value", "is longer than %d bytes",
                        VAULT_MAX_VALUE);
        return NULL;
    }
    if (memchr(json_string_value(v), '\0', *len) != NULL) {
        api_field_error(res, "value", "must not contain NUL characters");
        return NULL;
    }
    return json_string_value(v);
}

static bool name_ok(struct api_res *res, const char *name)
{
    if (name == NULL) {
        api_field_error(res, "name", "is required");
        return false;
    }
    if (!vault_name_ok(name)) {
        api_field_error(res, "name",
                        "must be 1 to %d letters, digits, _ or -, not "
                        "starting with -",
                        VAULT_MAX_NAME);
        return false;
    }
    return true;
}

/* Creates secret name = value; answers 201 or the error. */
static void create(struct api_req *req, struct api_res *res, const char *name,
                   const char *value, size_t len)
{
    struct store_secret s = {0};
    store_new_id(s.id);
    memcpy(s.grid_id, req->grid.id, sizeof(s.grid_id));
    s.name = (char *)(uintptr_t)name;
    s.value = vault_seal(req->m->vault, value, len);
    s.created_at = s.updated_at = cp_now_ms();
    int bumped = 0;
    int rc = ST_CALL(req->m->store, secret_create, &s, &bumped);
    cp_free(s.value);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "name", "is already taken");
        return;
    }
    if (rc == CP_ENOTFOUND) { /* the grid went away meanwhile */
        api_error(res, 404, "Not found");
        return;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    cp_info("vault: %s created secret %s/%s (%d service(s) to roll out)",
            req->user.email, req->grid.name, name, bumped);
    answer_secret(req, res, 201, name);
}

void api_secrets_list(struct api_req *req, struct api_res *res)
{
    if (!vault_ready(req, res))
        return;
    struct store_secret_list l = {0};
    int rc = ST_CALL(req->m->store, secret_list, req->grid.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(arr, secret_json(req, &l.items[i], NULL, 0));
    store_secret_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "secrets", arr));
}

void api_secrets_create(struct api_req *req, struct api_res *res)
{
    if (!vault_ready(req, res))
        return;
    json_t *name_v = json_object_get(req->json, "name");
    const char *name = json_string_value(name_v);
    size_t len = 0;
    bool ok = name_ok(res, name);
    const char *value = body_value(req, res, &len);
    if (!ok || value == NULL)
        return;
    create(req, res, name, value, len);
}

void api_secret_show(struct api_req *req, struct api_res *res)
{
    if (!vault_ready(req, res))
        return;
    answer_secret(req, res, 200, req->params[1]);
}

void api_secret_update(struct api_req *req, struct api_res *res)
{
    if (!vault_ready(req, res))
        return;
    const char *name = req->params[1];
    size_t len = 0;
    const char *value = body_value(req, res, &len);
    if (value == NULL)
        return;
    bool upsert = cp_json_bool(req->json, "upsert", false);
    struct store_secret cur = {0};
    int rc = ST_CALL(req->m->store, secret_get, req->grid.id, name, &cur);
    if (rc == CP_ENOTFOUND) {
        if (!upsert) {
            api_error(res, 404, "Not found");
            return;
        }
        if (name_ok(res, name))
            create(req, res, name, value, len);
        return;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    /* The same value again changes nothing and rolls nothing out. */
    char *old = NULL;
    size_t old_len = 0;
    bool same = vault_open(req->m->vault, cur.value, &old, &old_len) == 0 &&
                old_len == len && memcmp(old, value, len) == 0;
    vault_plain_free(old, old_len);
    store_secret_release(&cur);
    if (same) {
        answer_secret(req, res, 200, name);
        return;
    }
    char *sealed = vault_seal(req->m->vault, value, len);
    int bumped = 0;
    rc = ST_CALL(req->m->store, secret_update, req->grid.id, name, sealed,
                 cp_now_ms(), &bumped);
    cp_free(sealed);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    cp_info("vault: %s updated secret %s/%s (%d service(s) to roll out)",
            req->user.email, req->grid.name, name, bumped);
    answer_secret(req, res, 200, name);
}

void api_secret_delete(struct api_req *req, struct api_res *res)
{
    if (!vault_ready(req, res))
        return;
    const char *name = req->params[1];
    int rc = ST_CALL(req->m->store, secret_delete, req->grid.id, name);
    if (rc == CP_ECONFLICT) {
        struct store_secret s = {0};
        char users[512] = "";
        if (ST_CALL(req->m->store, secret_get, req->grid.id, name, &s) == 0) {
            size_t o = 0;
            for (size_t i = 0; i < s.nservices && o < sizeof(users); i++)
                o += (size_t)snprintf(users + o, sizeof(users) - o, "%s%s/%s",
                                      i > 0 ? ", " : "",
                                      s.services[i].stack_name
                                          ? s.services[i].stack_name
                                          : "null",
                                      s.services[i].name ? s.services[i].name
                                                         : "?");
        }
        store_secret_release(&s);
        api_field_error(res, "name",
                        "is used by service(s) %s; remove the secret from "
                        "them first",
                        users[0] != '\0' ? users : "of the grid");
        return;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    cp_info("vault: %s removed secret %s/%s", req->user.email, req->grid.name,
            name);
    api_json(res, 200, json_object());
}

void api__secrets_check(struct api_req *req, const json_t *spec,
                        json_t *errors)
{
    const json_t *refs = json_object_get(spec, "secrets");
    if (json_array_size(refs) == 0 || json_object_get(errors, "secrets"))
        return;
    struct store_secret_list l = {0};
    int rc = ST_CALL(req->m->store, secret_list, req->grid.id, &l);
    size_t i;
    const json_t *r;
    json_array_foreach(refs, i, r)
    {
        const char *want = cp_json_str(r, "secret");
        if (want == NULL)
            continue;
        bool found = false;
        for (size_t k = 0; rc == 0 && k < l.len && !found; k++)
            found = strcmp(l.items[k].name, want) == 0;
        if (!found) {
            char msg[VAULT_MAX_NAME + 64];
            snprintf(msg, sizeof(msg), "%s secret %.*s in the vault",
                     rc == 0 ? "no such" : "cannot check", VAULT_MAX_NAME,
                     want);
            json_object_set_new(errors, "secrets", json_string(msg));
            break;
        }
    }
    store_secret_list_release(&l);
}
