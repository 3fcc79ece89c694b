/* Grids and their members (spec 3.1 "Grids", 3.2 "Grid create").
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/jw.h"
#include "../common/log.h"
#include "../common/util.h"

#include <pthread.h>
#include <string.h>

#define DEFAULT_SUBNET "10.81.0.0/16"
#define DEFAULT_SUPERNET "10.80.0.0/12"

/* Opened grid tokens, by sealed text: every member's grid list shows the
 * tokens, and opening ten of them per request showed in profiles. The
 * sealed text fixes the plaintext (for the process's one key), so entries
 * never go stale; a direct-mapped table bounds the memory. */
#define OPENED_SLOTS 256
static struct {
    char *sealed;
    char *plain;
} opened[OPENED_SLOTS];
static pthread_mutex_t opened_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned slot_of(const char *sealed)
{
    unsigned h = 2166136261u;
    for (const char *p = sealed; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % OPENED_SLOTS;
}

char *api_grid_token(const struct master *m, const struct store_grid *g)
{
    if (g->token_sealed == NULL)
        return NULL;
    unsigned slot = slot_of(g->token_sealed);
    char *hit = NULL;
    pthread_mutex_lock(&opened_lock);
    if (opened[slot].sealed != NULL &&
        strcmp(opened[slot].sealed, g->token_sealed) == 0)
        hit = cp_strdup(opened[slot].plain);
    pthread_mutex_unlock(&opened_lock);
    if (hit != NULL)
        return hit;
    char *plain = NULL;
    size_t len = 0;
    int rc = master_open_sealed(m, g->token_sealed, &plain, &len);
    if (rc != 0) {
        cp_error("grids: cannot open the token of grid %s (%s): was the "
                 "master key (VAULT_KEY or master.key) changed?",
                 g->name, cp_strerror(rc));
        return NULL;
    }
    pthread_mutex_lock(&opened_lock);
    cp_free(opened[slot].sealed);
    cp_free(opened[slot].plain);
    opened[slot].sealed = cp_strdup(g->token_sealed);
    opened[slot].plain = cp_strdup(plain);
    pthread_mutex_unlock(&opened_lock);
    return plain;
}

/* Writes the grid JSON of spec 3.2. Rendered with the streaming writer:
 * the grid list is the hottest read of the API. */
static void grid_write(struct jw *w, const struct master *m,
                       const struct store_grid *g)
{
    json_t *s = g->settings;
    jw_obj_open(w);
    jw_key(w, "id");
    jw_str(w, g->name);
    jw_key(w, "name");
    jw_str(w, g->name);
    jw_key(w, "token");
    char *token = api_grid_token(m, g);
    jw_str(w, token);
    cp_free(token);
    jw_key(w, "initial_size");
    jw_int(w, g->initial_size);
    jw_key(w, "stats");
    jw_json(w, json_object_get(s, "stats"), "{\"statsd\":null}");
    jw_key(w, "default_affinity");
    jw_json(w, json_object_get(s, "default_affinity"), "[]");
    jw_key(w, "trusted_subnets");
    jw_json(w, json_object_get(s, "trusted_subnets"), "[]");
    jw_key(w, "node_count");
    jw_int(w, g->node_count);
    jw_key(w, "service_count");
    jw_int(w, g->service_count);
    jw_key(w, "container_count");
    jw_int(w, g->container_count);
    jw_key(w, "user_count");
    jw_int(w, g->user_count);
    jw_key(w, "subnet");
    jw_str(w, g->subnet);
    jw_key(w, "supernet");
    jw_str(w, g->supernet);
    json_t *logs = json_object_get(s, "logs");
    if (logs != NULL) {
        jw_key(w, "logs");
        jw_json(w, logs, "null");
    }
    jw_obj_close(w);
}

/* Answers status with one grid's JSON. */
static void answer_grid(struct api_req *req, struct api_res *res, int status,
                        const struct store_grid *g)
{
    struct cp_buf b;
    struct jw w;
    cp_buf_init(&b, API_MAX_RESPONSE);
    jw_init(&w, &b);
    grid_write(&w, req->m, g);
    api_raw_json(res, status, &b);
}

void api_grids_list(struct api_req *req, struct api_res *res)
{
    struct store_grid_list l = {0};
    bool all = api_has_role(req, STORE_ROLE_MASTER_ADMIN);
    int rc = ST_CALL(req->m->store, grid_list, all ? NULL : req->user.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    struct cp_buf b;
    struct jw w;
    cp_buf_init(&b, API_MAX_RESPONSE);
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "grids");
    jw_arr_open(&w);
    for (size_t i = 0; i < l.len; i++)
        grid_write(&w, req->m, &l.items[i]);
    jw_arr_close(&w);
    jw_obj_close(&w);
    store_grid_list_release(&l);
    api_raw_json(res, 200, &b);
}

/* A string field that may be absent or null; anything else is a 422. */
static bool opt_string(struct api_res *res, const json_t *body,
                       const char *key, const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        api_field_error(res, key, "must be a string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

void api_grids_create(struct api_req *req, struct api_res *res)
{
    const json_t *b = req->json;
    const char *name, *token, *subnet, *supernet;
    char random_name[16];
    struct store_grid g = {0};
    opt_string(res, b, "name", &name);
    opt_string(res, b, "token", &token);
    opt_string(res, b, "subnet", &subnet);
    opt_string(res, b, "supernet", &supernet);
    if (name == NULL || *name == '\0') {
        cp_random_hex(random_name, 4);
        name = random_name;
    } else if (!valid_grid_name(name)) {
        api_field_error(res, "name",
                        "must be 3 to 64 characters of letters, digits, _ "
                        "and -");
    }
    json_t *size = json_object_get(b, "initial_size");
    long long initial_size = 1;
    if (size != NULL && !json_is_null(size)) {
        if (!json_is_integer(size) || json_integer_value(size) < 1 ||
            json_integer_value(size) > 7)
            api_field_error(res, "initial_size", "must be 1 to 7");
        else
            initial_size = (long long)json_integer_value(size);
    }
    if (token != NULL && !valid_token(token))
        api_field_error(res, "token",
                        "must be 16 to 256 printable characters");
    if (subnet == NULL)
        subnet = DEFAULT_SUBNET;
    else if (!valid_cidr(subnet))
        api_field_error(res, "subnet", "must be an IPv4 CIDR like %s",
                        DEFAULT_SUBNET);
    if (supernet == NULL)
        supernet = DEFAULT_SUPERNET;
    else if (!valid_cidr(supernet))
        api_field_error(res, "supernet", "must be an IPv4 CIDR like %s",
                        DEFAULT_SUPERNET);
    json_t *settings = json_object();
    json_t *errors = json_object();
    valid_grid_settings(b, settings, errors);
    api_field_errors(res, errors);
    json_decref(errors);
    if (api_failed(res))
        goto out;

    char generated[89];
    if (token == NULL) {
        /* Same shape as the original: base64 of 64 random bytes. */
        unsigned char raw[64];
        cp_random_bytes(raw, sizeof(raw));
        char *b64 = cp_base64_encode(raw, sizeof(raw));
        snprintf(generated, sizeof(generated), "%s", b64);
        cp_free(b64);
        token = generated;
    }
    int64_t now = cp_now_ms();
    store_new_id(g.id);
    g.name = cp_strdup(name);
    char hash[65];
    cp_sha256_hex(token, strlen(token), hash);
    g.token_hash = cp_strdup(hash);
    g.token_sealed = cp_seal(req->m->seal_key, token, strlen(token));
    g.initial_size = (int)initial_size;
    g.subnet = cp_strdup(subnet);
    g.supernet = cp_strdup(supernet);
    g.settings = json_incref(settings);
    g.created_at = g.updated_at = now;
    const char *clash = NULL;
    int rc = ST_CALL(req->m->store, grid_create, &g, req->user.id, &clash);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, clash ? clash : "name", "is already taken");
        goto out;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("grids: %s created grid %s", req->user.email, name);
    store_grid_release(&g);
    rc = ST_CALL(req->m->store, grid_get, name, &g);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    answer_grid(req, res, 201, &g);
out:
    json_decref(settings);
    store_grid_release(&g);
}

void api_grid_show(struct api_req *req, struct api_res *res)
{
    answer_grid(req, res, 200, &req->grid);
}

void api_grid_update(struct api_req *req, struct api_res *res)
{
    json_t *settings = json_deep_copy(req->grid.settings);
    if (settings == NULL)
        settings = json_object();
    json_t *errors = json_object();
    if (!valid_grid_settings(req->json, settings, errors)) {
        api_field_errors(res, errors);
        json_decref(errors);
        json_decref(settings);
        return;
    }
    json_decref(errors);
    json_decref(req->grid.settings);
    req->grid.settings = settings;
    req->grid.updated_at = cp_now_ms();
    int rc = ST_CALL(req->m->store, grid_update, &req->grid);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    answer_grid(req, res, 200, &req->grid);
}

void api_grid_delete(struct api_req *req, struct api_res *res)
{
    int rc = ST_CALL(req->m->store, grid_delete, req->grid.id);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "grid",
                        "grid %s still has nodes or services; remove them "
                        "first",
                        req->grid.name);
        return;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    cp_info("grids: %s removed grid %s", req->user.email, req->grid.name);
    api_json(res, 200, json_object());
}

static void answer_users(struct api_req *req, struct api_res *res,
                         int status)
{
    struct store_user_list l = {0};
    int rc = ST_CALL(req->m->store, grid_users, req->grid.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(arr, api_user_json(&l.items[i]));
    store_user_list_release(&l);
    api_json(res, status, json_pack("{s:o}", "users", arr));
}

void api_grid_users_list(struct api_req *req, struct api_res *res)
{
    answer_users(req, res, 200);
}

void api_grid_users_add(struct api_req *req, struct api_res *res)
{
    const char *email = cp_json_str(req->json, "email");
    if (email == NULL || *email == '\0') {
        api_field_error(res, "email", "is required");
        return;
    }
    struct store_user u = {0};
    int rc = ST_CALL(req->m->store, user_get_by_email, email, &u);
    if (rc == CP_ENOTFOUND) {
        api_field_error(res, "email", "no user with email %s", email);
        return;
    }
    if (rc == 0)
        rc = ST_CALL(req->m->store, grid_user_add, req->grid.id, u.id);
    store_user_release(&u);
    if (rc != 0 && rc != CP_ECONFLICT) {
        api_store_error(res, rc);
        return;
    }
    answer_users(req, res, 201);
}

void api_grid_users_remove(struct api_req *req, struct api_res *res)
{
    struct store_user u = {0};
    int rc = ST_CALL(req->m->store, user_get_by_email, req->params[1], &u);
    if (rc == 0)
        rc = ST_CALL(req->m->store, grid_user_remove, req->grid.id, u.id);
    store_user_release(&u);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    answer_users(req, res, 200);
}
