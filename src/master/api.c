/* The route table, the request pipeline (body, auth, grid, permissions)
 * and the answer helpers. The one table that maps CP_E* codes to HTTP
 * statuses lives here too.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "audit.h"
#include "authcache.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ANY_METHOD 0x3f

/* Longer, more specific patterns first: the first match wins. */
static const struct api_route routes[] = {
    {API_GET | API_HEAD, "/", api_root_get, API_PUBLIC | API_FAST_READ},
    {API_GET | API_HEAD, "/v1/ping", api_ping, API_PUBLIC | API_FAST_READ},
    {API_GET, "/v1/master/status", api_master_status, 0},
    {API_POST, "/v1/auth", api_auth_legacy, API_PUBLIC},
    {API_POST, "/oauth2/token", api_oauth_token,
     API_PUBLIC | API_LOGIN | API_FORM_OK},
    {API_POST, "/oauth2/authorize", api_oauth_authorize, API_FORM_OK},
    {API_GET, "/oauth2/tokens", api_tokens_list, 0},
    {API_GET, "/oauth2/tokens/:id", api_token_show, 0},
    {API_DELETE, "/oauth2/tokens/:id", api_token_delete, 0},
    {API_GET, "/v1/user", api_user_current, API_FAST_READ},
    {API_GET, "/v1/users", api_users_list, API_USER_ADMIN},
    {API_GET, "/v1/grids", api_grids_list, API_FAST_READ},
    {API_POST, "/v1/grids", api_grids_create, API_MASTER_ADMIN},
    {API_GET, "/v1/grids/:grid", api_grid_show, API_LOAD_GRID | API_FAST_READ},
    {API_PUT, "/v1/grids/:grid", api_grid_update,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_DELETE, "/v1/grids/:grid", api_grid_delete,
     API_LOAD_GRID | API_MASTER_ADMIN},
    {API_GET, "/v1/grids/:grid/users", api_grid_users_list, API_LOAD_GRID},
    {API_GET, "/v1/grids/:grid/nodes", api_nodes_list, API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/nodes", api_nodes_create,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_GET, "/v1/nodes/:grid/:node", api_node_show, API_LOAD_GRID},
    {API_PUT, "/v1/nodes/:grid/:node", api_node_update, API_LOAD_GRID},
    {API_DELETE, "/v1/nodes/:grid/:node", api_node_delete,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_GET, "/v1/nodes/:grid/:node/health", api_node_health,
     API_LOAD_GRID},
    {API_GET, "/v1/nodes/:grid/:node/stats", api_node_stats, API_LOAD_GRID},
    {API_GET, "/v1/nodes/:grid/:node/token", api_node_token_show,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_PUT, "/v1/nodes/:grid/:node/token", api_node_token_update,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_DELETE, "/v1/nodes/:grid/:node/token", api_node_token_delete,
     API_LOAD_GRID | API_GRID_ADMIN},
    /* Services, containers, logs and events (api_services.c,
     * api_containers.c, api_logs.c). */
    {API_GET, "/v1/grids/:grid/services", api_services_list, API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/services", api_services_create,
     API_LOAD_GRID},
    {API_GET, "/v1/grids/:grid/container_logs", api_grid_container_logs,
     API_LOAD_GRID},
    {API_GET, "/v1/grids/:grid/event_logs", api_grid_event_logs,
     API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc", api_service_show,
     API_LOAD_GRID},
    {API_PUT, "/v1/services/:grid/:stack/:svc", api_service_update,
     API_LOAD_GRID},
    {API_DELETE, "/v1/services/:grid/:stack/:svc", api_service_delete,
     API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/deploy", api_service_deploy,
     API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/scale", api_service_scale,
     API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/start", api_service_start,
     API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/stop", api_service_stop,
     API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/restart",
     api_service_restart, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/deploys/:id",
     api_service_deploy_show, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/instances",
     api_service_instances, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/instances/:id",
     api_service_instance_show, API_LOAD_GRID},
    {API_DELETE, "/v1/services/:grid/:stack/:svc/instances/:id",
     api_service_instance_delete, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/containers",
     api_service_containers, API_LOAD_GRID},
    {API_POST, "/v1/services/:grid/:stack/:svc/envs", api_service_env_add,
     API_LOAD_GRID},
    {API_DELETE, "/v1/services/:grid/:stack/:svc/envs/:key",
     api_service_env_delete, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/container_logs",
     api_service_container_logs, API_LOAD_GRID},
    {API_GET, "/v1/services/:grid/:stack/:svc/event_logs",
     api_service_event_logs, API_LOAD_GRID},
    /* Stacks (api_stacks.c; logs and events in api_logs.c). */
    {API_GET, "/v1/grids/:grid/stacks", api_stacks_list, API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/stacks", api_stacks_create, API_LOAD_GRID},
    {API_GET, "/v1/stacks/:grid/:stack", api_stack_show, API_LOAD_GRID},
    {API_PUT, "/v1/stacks/:grid/:stack", api_stack_update, API_LOAD_GRID},
    {API_PATCH, "/v1/stacks/:grid/:stack", api_stack_patch, API_LOAD_GRID},
    {API_DELETE, "/v1/stacks/:grid/:stack", api_stack_delete, API_LOAD_GRID},
    {API_POST, "/v1/stacks/:grid/:stack/deploy", api_stack_deploy,
     API_LOAD_GRID},
    {API_POST, "/v1/stacks/:grid/:stack/stop", api_stack_stop, API_LOAD_GRID},
    {API_POST, "/v1/stacks/:grid/:stack/restart", api_stack_restart,
     API_LOAD_GRID},
    {API_GET, "/v1/stacks/:grid/:stack/deploys/:id", api_stack_deploy_show,
     API_LOAD_GRID},
    {API_GET, "/v1/stacks/:grid/:stack/container_logs",
     api_stack_container_logs, API_LOAD_GRID},
    {API_GET, "/v1/stacks/:grid/:stack/event_logs", api_stack_event_logs,
     API_LOAD_GRID},
    {API_GET, "/v1/containers/:grid", api_containers_list, API_LOAD_GRID},
    {API_GET, "/v1/containers/:grid/:node/:name", api_container_show,
     API_LOAD_GRID},
    {API_GET, "/v1/containers/:grid/:node/:name/logs", api_container_logs,
     API_LOAD_GRID},
    {API_GET, "/v1/containers/:grid/:node/:name/inspect",
     api_container_inspect, API_LOAD_GRID},
    /* The vault (api_secrets.c). */
    {API_GET, "/v1/grids/:grid/secrets", api_secrets_list, API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/secrets", api_secrets_create, API_LOAD_GRID},
    {API_PUT, "/v1/grids/:grid/secrets/:name", api_secret_update,
     API_LOAD_GRID},
    {API_GET, "/v1/secrets/:grid/:name", api_secret_show,
     API_LOAD_GRID | API_AUDIT_READ},
    {API_PUT, "/v1/secrets/:grid/:name", api_secret_update, API_LOAD_GRID},
    {API_DELETE, "/v1/secrets/:grid/:name", api_secret_delete,
     API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/users", api_grid_users_add,
     API_LOAD_GRID | API_GRID_ADMIN},
    {API_DELETE, "/v1/grids/:grid/users/:email", api_grid_users_remove,
     API_LOAD_GRID | API_GRID_ADMIN},
    /* External registries (api_registries.c) and the audit log
     * (api_audit.c). */
    {API_GET, "/v1/grids/:grid/external_registries", api_registries_list,
     API_LOAD_GRID},
    {API_POST, "/v1/grids/:grid/external_registries", api_registries_create,
     API_LOAD_GRID},
    {API_GET, "/v1/external_registries/:grid/:name", api_registry_show,
     API_LOAD_GRID},
    {API_DELETE, "/v1/external_registries/:grid/:name", api_registry_delete,
     API_LOAD_GRID},
    {API_GET, "/v1/audit_logs", api_audit_logs_list, API_MASTER_ADMIN},
    {API_GET, "/v1/grids/:grid/audit_log", api_grid_audit_log,
     API_LOAD_GRID | API_GRID_ADMIN},
};

/* Matches one pattern segment by segment. Captures are copied out. */
static bool match_one(const char *pattern, const char *path,
                      char *params[API_MAX_PARAMS])
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p != '\0' && *s != '\0') {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        size_t plen = strcspn(p, "/");
        size_t slen = strcspn(s, "/");
        if (*p == ':') {
            if (slen == 0 || np >= API_MAX_PARAMS)
                goto fail;
            params[np++] = cp_strndup(s, slen);
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            goto fail;
        }
        p += plen;
        s += slen;
    }
    /* Allow one trailing slash on the request path. */
    if (*p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0')))
        return true;
fail:
    for (int i = 0; i < np; i++) {
        cp_free(params[i]);
        params[i] = NULL;
    }
    return false;
}

const struct api_route *api_match(enum api_method method, const char *path,
                                  char *params[API_MAX_PARAMS],
                                  int *status)
{
    bool path_matched = false;
    for (size_t i = 0; i < CP_ARRAY_LEN(routes); i++) {
        char *tmp[API_MAX_PARAMS] = {0};
        if (!match_one(routes[i].pattern, path, tmp))
            continue;
        if (routes[i].methods & method) {
            memcpy(params, tmp, sizeof(tmp));
            return &routes[i];
        }
        path_matched = true;
        for (int k = 0; k < API_MAX_PARAMS; k++)
            cp_free(tmp[k]);
    }
    *status = path_matched ? 405 : 404;
    return NULL;
}

/* ==== Answers ==== */

void api_json(struct api_res *res, int status, json_t *body)
{
    json_decref(res->body);
    res->status = status;
    res->body = body;
}

void api_raw_json(struct api_res *res, int status, struct cp_buf *b)
{
    json_decref(res->body);
    res->body = NULL;
    cp_free(res->raw);
    res->status = status;
    res->raw = b->data ? b->data : cp_strdup("{}");
    res->raw_type = "application/json";
    b->data = NULL;
    cp_buf_release(b);
}

void api_stream(struct api_res *res, api_stream_poll *poll,
                api_stream_free *free_fn, void *ctx)
{
    assert(poll != NULL && free_fn != NULL);
    json_decref(res->body);
    res->body = NULL;
    if (res->stream.free != NULL)
        res->stream.free(res->stream.ctx);
    res->status = 200;
    res->stream = (struct api_stream){poll, free_fn, ctx};
}

void api_error(struct api_res *res, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_json(res, status, json_pack("{s:s}", "error", msg));
}

void api_field_error(struct api_res *res, const char *field,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *errs = res->status == 422 && res->body
                       ? json_object_get(res->body, "error")
                       : NULL;
    if (!json_is_object(errs)) {
        api_json(res, 422, json_pack("{s:{}}", "error"));
        errs = json_object_get(res->body, "error");
    }
    /* The first message for a field is the one users need. */
    if (json_object_get(errs, field) == NULL)
        json_object_set_new(errs, field, json_string(msg));
}

void api_field_errors(struct api_res *res, const json_t *errors)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)errors, k, v)
    {
        api_field_error(res, k, "%s", json_string_value(v));
    }
}

bool api_failed(const struct api_res *res)
{
    return res->status >= 400;
}

/* The one table from CP_E* codes to HTTP answers. */
void api_store_error(struct api_res *res, int err)
{
    switch (err) {
    case CP_ENOTFOUND:
        api_error(res, 404, "Not found");
        return;
    case CP_ECONFLICT:
        api_error(res, 409, "Conflict");
        return;
    case CP_EPERM:
        api_error(res, 403, "Access denied");
        return;
    case CP_EINVAL:
        api_error(res, 400, "Invalid request");
        return;
    case CP_EAGAIN:
    case CP_ETIMEDOUT:
        api_error(res, 503, "Service temporarily unavailable, try again");
        return;
    case CP_EUNSUPPORTED:
        api_error(res, 501, "Not implemented");
        return;
    case CP_EIO:
    case CP_EPROTO:
    case CP_ENOMEM:
    case CP_OK:
        break;
    }
    api_error(res, 500, "Internal error (%s)", cp_strerror(err));
}

bool api_has_role(const struct api_req *req, unsigned role)
{
    if (!req->authed)
        return false;
    if ((req->user.roles & STORE_ROLE_MASTER_ADMIN) ||
        strcmp(req->user.email, "admin") == 0)
        return true;
    return (req->user.roles & role) != 0;
}

/* ==== Query strings and form bodies ==== */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes application/x-www-form-urlencoded text of len bytes. */
static char *form_decode(const char *s, size_t len)
{
    char *out = cp_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && i + 2 < len &&
                   hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[n++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

/* Parses "a=1&b=2" into an object of strings; later keys win. Values that
 * are not valid UTF-8 are dropped. */
static json_t *form_parse(const char *s, size_t len)
{
    json_t *obj = json_object();
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && s[eq] != '=')
            eq++;
        if (eq > i) {
            char *k = form_decode(s + i, eq - i);
            char *v = eq < end ? form_decode(s + eq + 1, end - eq - 1)
                               : cp_strdup("");
            /* json_object_set_new checks the key is UTF-8, json_string
             * the value; a bad one drops the pair. */
            json_t *jv = json_string(v);
            if (jv != NULL)
                json_object_set_new(obj, k, jv);
            cp_free(k);
            cp_free(v);
        }
        i = end + 1;
    }
    return obj;
}

char *api_query(const struct api_req *req, const char *name)
{
    if (req->query == NULL)
        return NULL;
    json_t *q = form_parse(req->query, strlen(req->query));
    const char *v = cp_json_str(q, name);
    char *out = v ? cp_strdup(v) : NULL;
    json_decref(q);
    return out;
}

/* ==== The pipeline ==== */

static bool is_form(const char *ct)
{
    return ct != NULL &&
           strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

static int parse_body(struct api_req *req, struct api_res *res,
                      bool form_ok)
{
    size_t first = 0;
    while (first < req->body_len && isspace((unsigned char)req->body[first]))
        first++;
    if (first == req->body_len) {
        req->json = json_object();
        return 0;
    }
    /* curl and others label JSON as a form by default: trust the bytes. */
    if (form_ok && is_form(req->content_type) && req->body[first] != '{') {
        req->json = form_parse(req->body, req->body_len);
        return 0;
    }
    char why[160];
    req->json = cp_json_parse(req->body, req->body_len, why, sizeof(why));
    if (req->json == NULL || !json_is_object(req->json)) {
        cp_debug("http: invalid json body: %s",
                 req->json ? "not an object" : why);
        json_decref(req->json);
        req->json = NULL;
        api_error(res, 400, "Invalid json");
        return CP_EINVAL;
    }
    return 0;
}

static void deny_token(struct api_res *res, const char *desc)
{
    api_json(res, 403,
             json_pack("{s:s,s:s}", "error", "invalid_token",
                       "error_description", desc));
    res->www_authenticate = cp_asprintf(
        "Bearer realm=\"kontena_master\", error=\"invalid_token\", "
        "error_description=\"%s\"",
        desc);
}

/* Authenticates the bearer token, if any. Returns 0 when the request may
 * go on (authenticated, or anonymous on a soft route). */
static int authenticate(struct api_req *req, struct api_res *res,
                        bool required)
{
    struct store *st = req->m->store;
    const char *h = req->authorization;
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        if (!required)
            return 0;
        deny_token(res, "Invalid token");
        return CP_EPERM;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    if (len == 0 || len > 512) {
        deny_token(res, "Invalid token");
        return CP_EPERM;
    }
    char hash[65];
    cp_sha256_hex(tok, len, hash);
    int64_t now = cp_now_ms();
    int64_t mono = cp_mono_ms();
    struct authcache *cache = req->m->auth_cache;
    if (authcache_get(cache, hash, mono, &req->token, &req->user)) {
        if (req->token.expires_at != 0 && req->token.expires_at <= now) {
            deny_token(res, "Token expired");
            return CP_EPERM;
        }
        req->authed = true;
        return 0;
    }
    /* now = 0 finds expired tokens too, so that we can say so. */
    int rc = ST_CALL(st, token_find, STORE_TOKEN_BEARER, hash, 0,
                     &req->token);
    if (rc == CP_ENOTFOUND) {
        deny_token(res, "Invalid token");
        return CP_EPERM;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return rc;
    }
    if (req->token.expires_at != 0 && req->token.expires_at <= now) {
        deny_token(res, "Token expired");
        return CP_EPERM;
    }
    rc = ST_CALL(st, user_get, req->token.user_id, &req->user);
    if (rc == CP_ENOTFOUND) {
        deny_token(res, "Invalid token");
        return CP_EPERM;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        return rc;
    }
    req->authed = true;
    /* The first authenticated call with a token from the initial admin
     * code confirms that login; only then is the code spent (#1460). */
    if (req->token.parent_code_id[0] != '\0') {
        rc = ST_CALL(st, token_confirm, req->token.id,
                     req->token.parent_code_id);
        if (rc == 0) {
            cp_info("auth: initial admin code confirmed by a login and "
                    "retired");
            req->token.parent_code_id[0] = '\0';
        }
    }
    if (req->token.last_used_at < now - 60000 &&
        ST_CALL(st, token_touch, req->token.id, now) == 0)
        req->token.last_used_at = now;
    authcache_put(cache, hash, mono, &req->token, &req->user);
    return 0;
}

static int load_grid(struct api_req *req, struct api_res *res)
{
    struct store *st = req->m->store;
    int rc = ST_CALL(st, grid_get, req->params[0], &req->grid);
    if (rc != 0) {
        api_store_error(res, rc);
        return rc;
    }
    if (api_has_role(req, STORE_ROLE_MASTER_ADMIN))
        return 0;
    bool member = false;
    rc = ST_CALL(st, grid_is_member, req->grid.id, req->user.id, &member);
    if (rc != 0) {
        api_store_error(res, rc);
        return rc;
    }
    if (!member) {
        api_error(res, 403, "Access denied");
        return CP_EPERM;
    }
    return 0;
}

/* Everything before and including the handler; returns early on the
 * first failed check with res holding the answer. */
static void pipeline(const struct api_route *route, struct api_req *req,
                     struct api_res *res)
{
    if (!(route->flags & API_PUBLIC) &&
        authenticate(req, res, !(route->flags & API_SOFT_AUTH)) != 0)
        return;
    if ((req->method & (API_POST | API_PUT | API_PATCH | API_DELETE)) &&
        parse_body(req, res, route->flags & API_FORM_OK) != 0)
        return;
    if (req->json == NULL)
        req->json = json_object();
    if ((route->flags & API_LOAD_GRID) && load_grid(req, res) != 0)
        return;
    if ((route->flags & API_MASTER_ADMIN) &&
        !api_has_role(req, STORE_ROLE_MASTER_ADMIN)) {
        api_error(res, 403, "Access denied");
        return;
    }
    if ((route->flags & API_GRID_ADMIN) &&
        !api_has_role(req, STORE_ROLE_GRID_ADMIN)) {
        api_error(res, 403, "Access denied");
        return;
    }
    if ((route->flags & API_USER_ADMIN) &&
        !api_has_role(req, STORE_ROLE_USER_ADMIN)) {
        api_error(res, 403, "Access denied");
        return;
    }
    route->handler(req, res);
}

void api_run(const struct api_route *route, struct api_req *req,
             struct api_res *res)
{
    res->status = 200;
    pipeline(route, req, res);
    /* The one audit hook: mutating requests and API_AUDIT_READ routes of
     * authenticated callers, however they ended (audit.c). */
    audit_request(route, req, res);
}

void api_req_release(struct api_req *req)
{
    cp_free(req->path);
    cp_free(req->query);
    for (int i = 0; i < API_MAX_PARAMS; i++)
        cp_free(req->params[i]);
    cp_free(req->body);
    cp_free(req->authorization);
    cp_free(req->content_type);
    cp_free(req->accept);
    cp_free(req->user_agent);
    cp_free(req->peer_ip);
    cp_free(req->scheme_host);
    json_decref(req->json);
    store_user_release(&req->user);
    store_token_release(&req->token);
    store_grid_release(&req->grid);
    memset(req, 0, sizeof(*req));
}

void api_res_release(struct api_res *res)
{
    json_decref(res->body);
    cp_free(res->raw);
    cp_free(res->www_authenticate);
    if (res->stream.free != NULL)
        res->stream.free(res->stream.ctx);
    memset(res, 0, sizeof(*res));
}
