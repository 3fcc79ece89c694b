/* The audit log: what a request did (derived from its route), its body
 * with secrets filtered, and the one insert that records it (audit.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "audit.h"
#include "registry.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define AUDIT_NAME_MAX 256 /* resource names and user agents are cut here */
#define AUDIT_MAX_SEGS 16

/* ==== What a request did ==== */

bool audit_is_wanted(const struct api_route *route, enum api_method method)
{
    if (method & (API_POST | API_PUT | API_PATCH | API_DELETE))
        return true;
    return (route->flags & API_AUDIT_READ) != 0;
}

/* Route segments that are an action on the resource before them. */
static bool is_verb(const char *seg)
{
    static const char *const verbs[] = {
        "deploy",    "scale",    "start",    "stop",    "restart", "exec",
        "authorize", "register", "evacuate", "upgrade", "remove"};
    for (size_t i = 0; i < CP_ARRAY_LEN(verbs); i++)
        if (strcmp(seg, verbs[i]) == 0)
            return true;
    return false;
}

static const char *method_action(enum api_method method)
{
    switch (method) {
    case API_POST:
        return "create";
    case API_PUT:
    case API_PATCH:
        return "update";
    case API_DELETE:
        return "delete";
    case API_GET:
    case API_HEAD:
        return "show";
    }
    return "request";
}

/* A copy of s cut to AUDIT_NAME_MAX bytes at a UTF-8 boundary. */
static char *cut(const char *s)
{
    size_t n = strlen(s);
    if (n > AUDIT_NAME_MAX) {
        n = AUDIT_NAME_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return cp_strndup(s, n);
}

/* The name a created resource gets from the body of a POST to the
 * collection type, or NULL (caller frees). */
static char *created_name(const char *type, const json_t *body)
{
    if (!json_is_object(body))
        return NULL;
    if (strcmp(type, "services") == 0) {
        const char *name = cp_json_str(body, "name");
        const char *stack = cp_json_str(body, "stack");
        if (name == NULL)
            return NULL;
        return cp_asprintf("%s/%s", stack != NULL ? stack : "null", name);
    }
    if (strcmp(type, "users") == 0) {
        const char *email = cp_json_str(body, "email");
        return email != NULL ? cp_strdup(email) : NULL;
    }
    if (strcmp(type, "external_registries") == 0) {
        char name[REGISTRY_NAME_MAX], why[128];
        if (registry_name_from_url(cp_json_str(body, "url"), name, sizeof(name),
                                   why, sizeof(why)) != 0)
            return NULL;
        return cp_strdup(name);
    }
    const char *name = cp_json_str(body, "name");
    return name != NULL ? cp_strdup(name) : NULL;
}

void audit_describe(const char *pattern, enum api_method method,
                    char *const *params, const json_t *body,
                    struct audit_target *out)
{
    memset(out, 0, sizeof(*out));
    /* Split the pattern; "/v1" is not part of any resource. */
    const char *segs[AUDIT_MAX_SEGS];
    size_t lens[AUDIT_MAX_SEGS];
    size_t nseg = 0, nparam = 0;
    for (const char *p = pattern; *p != '\0' && nseg < AUDIT_MAX_SEGS;) {
        while (*p == '/')
            p++;
        size_t l = strcspn(p, "/");
        if (l == 0)
            break;
        if (!(nseg == 0 && l == 2 && strncmp(p, "v1", 2) == 0)) {
            segs[nseg] = p;
            lens[nseg++] = l;
        }
        p += l;
    }
    /* The route captures, joined: "G/S/svc". */
    struct cp_buf joined;
    cp_buf_init(&joined, 4096);
    for (size_t i = 0; i < nseg; i++) {
        if (segs[i][0] != ':')
            continue;
        const char *v =
            params != NULL && nparam < API_MAX_PARAMS && params[nparam] != NULL
                ? params[nparam]
                : "";
        nparam++;
        if (joined.len > 0)
            cp_buf_append(&joined, "/", 1);
        cp_buf_append(&joined, v, strlen(v));
    }
    const char *ids = joined.data != NULL ? joined.data : "";

    /* The last literal segment, and the one before it. */
    long last_lit = -1, prev_lit = -1;
    for (size_t i = 0; i < nseg; i++) {
        if (segs[i][0] != ':') {
            prev_lit = last_lit;
            last_lit = (long)i;
        }
    }
    char *last = last_lit >= 0 ? cp_strndup(segs[last_lit], lens[last_lit])
                               : cp_strdup("");
    bool ends_in_param = nseg > 0 && segs[nseg - 1][0] == ':';
    char *name = NULL;
    if (!ends_in_param && is_verb(last) && prev_lit >= 0) {
        /* POST /v1/services/G/S/svc/deploy: an action on a member. */
        out->event_name = cp_strdup(last);
        out->resource_type = cp_strndup(segs[prev_lit], lens[prev_lit]);
        name = cp_strdup(ids);
    } else if (!ends_in_param && is_verb(last)) {
        out->event_name = cp_strdup(last);
        out->resource_type = cp_strdup(last);
        name = cp_strdup(ids);
    } else {
        /* A member (ends in a capture) or a collection. */
        out->event_name = cp_strdup(method_action(method));
        out->resource_type = cp_strdup(last);
        char *made = !ends_in_param && method == API_POST
                         ? created_name(last, body)
                         : NULL;
        if (made != NULL && ids[0] != '\0')
            name = cp_asprintf("%s/%s", ids, made);
        else if (made != NULL)
            name = cp_strdup(made);
        else
            name = cp_strdup(ids);
        cp_free(made);
    }
    out->resource_name = cut(name);
    cp_free(name);
    if (nseg > 0 && lens[0] == 8 && strncmp(segs[0], "services", 8) == 0 &&
        nparam >= 3 && params != NULL) {
        out->service_id =
            cp_asprintf("%s/%s/%s", params[0], params[1], params[2]);
    } else if (strcmp(out->resource_type, "services") == 0 &&
               strcmp(out->event_name, "create") == 0 &&
               out->resource_name[0] != '\0') {
        out->service_id = cp_strdup(out->resource_name);
    }
    cp_free(last);
    cp_buf_release(&joined);
}

void audit_target_release(struct audit_target *t)
{
    cp_free(t->resource_type);
    cp_free(t->resource_name);
    cp_free(t->event_name);
    cp_free(t->service_id);
    memset(t, 0, sizeof(*t));
}

/* ==== Filtering ==== */

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static bool is_secret_key(const char *key)
{
    static const char *const exact[] = {
        "value", "password", "token",         "refresh_token", "access_token",
        "code",  "secret",   "client_secret", "private_key",   "passphrase"};
    for (size_t i = 0; i < CP_ARRAY_LEN(exact); i++)
        if (strcasecmp(key, exact[i]) == 0)
            return true;
    size_t n = strlen(key);
    return ends_with(key, n, "_password") || ends_with(key, n, "_secret") ||
           ends_with(key, n, "_token") || ends_with(key, n, "_key");
}

/* v with every scalar replaced (secrets: everything below them). */
static json_t *filter_all(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)(uintptr_t)v, k, x)
        {
            json_object_set_new(o, k, filter_all(x));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            json_array_append_new(a, filter_all(x));
        }
        return a;
    }
    return json_is_null(v) ? json_null() : json_string(AUDIT_FILTERED);
}

/* An env list ["K=V", ...]: the value of every secret-looking K goes. */
static json_t *filter_env(const json_t *v)
{
    json_t *a = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *e = json_string_value(x);
        const char *eq = e != NULL ? strchr(e, '=') : NULL;
        if (eq == NULL) {
            json_array_append_new(a, json_deep_copy(x));
            continue;
        }
        char *key = cp_strndup(e, (size_t)(eq - e));
        if (is_secret_key(key))
            json_array_append_new(a, json_sprintf("%s=%s", key,
                                                  AUDIT_FILTERED));
        else
            json_array_append_new(a, json_deep_copy(x));
        cp_free(key);
    }
    return a;
}

static json_t *filter(const json_t *v, int depth)
{
    /* Bodies are parsed with a depth limit; this is only defence. */
    if (depth > 64)
        return json_string(AUDIT_FILTERED);
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)(uintptr_t)v, k, x)
        {
            if (strcasecmp(k, "secrets") == 0)
                json_object_set_new(o, k, filter_all(x));
            else if ((strcasecmp(k, "env") == 0 ||
                      strcasecmp(k, "environment") == 0) &&
                     json_is_array(x))
                json_object_set_new(o, k, filter_env(x));
            else if (is_secret_key(k) && !json_is_null(x))
                json_object_set_new(o, k, json_string(AUDIT_FILTERED));
            else
                json_object_set_new(o, k, filter(x, depth + 1));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            json_array_append_new(a, filter(x, depth + 1));
        }
        return a;
    }
    return json_deep_copy(v);
}

json_t *audit_filter_body(const json_t *body)
{
    return body != NULL ? filter(body, 0) : NULL;
}

/* ==== Recording ==== */

static const char *method_name(enum api_method m)
{
    switch (m) {
    case API_GET:
        return "GET";
    case API_POST:
        return "POST";
    case API_PUT:
        return "PUT";
    case API_DELETE:
        return "DELETE";
    case API_PATCH:
        return "PATCH";
    case API_HEAD:
        return "HEAD";
    }
    return "?";
}

/* The filtered body as JSON text, cut to AUDIT_BODY_MAX (caller frees);
 * NULL for no body or an empty object. */
static char *body_text(const json_t *body)
{
    if (body == NULL || (json_is_object(body) && json_object_size(body) == 0))
        return NULL;
    json_t *f = audit_filter_body(body);
    char *text = cp_json_dump(f);
    json_decref(f);
    size_t n = strlen(text);
    if (n > AUDIT_BODY_MAX) {
        n = AUDIT_BODY_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
        text[n] = '\0';
    }
    return text;
}

/* The grid a created grid got (POST /v1/grids answers with it), so that
 * its creation shows in its own audit log. */
static void created_grid(const struct api_req *req, const struct api_res *res,
                         struct store_audit *a)
{
    json_t *j = res->body != NULL ? json_incref(res->body)
                : res->raw != NULL
                    ? cp_json_parse(res->raw, strlen(res->raw), NULL, 0)
                    : NULL;
    const char *name = cp_json_str(j, "name");
    struct store_grid g = {0};
    if (name != NULL && ST_CALL(req->m->store, grid_get, name, &g) == 0) {
        memcpy(a->grid_id, g.id, sizeof(a->grid_id));
        cp_free(a->grid_name);
        a->grid_name = cp_strdup(g.name);
        cp_free(a->resource_name);
        a->resource_name = cut(g.name);
        cp_free(a->resource_id);
        a->resource_id = cut(g.name);
    }
    store_grid_release(&g);
    json_decref(j);
}

void audit_request(const struct api_route *route, const struct api_req *req,
                   const struct api_res *res)
{
    if (!req->authed || !audit_is_wanted(route, req->method))
        return;
    struct audit_target t;
    audit_describe(route->pattern, req->method, req->params, req->json, &t);
    struct store_audit a = {0};
    if (req->grid.id[0] != '\0') {
        memcpy(a.grid_id, req->grid.id, sizeof(a.grid_id));
        a.grid_name = cp_strdup(req->grid.name);
    } else if ((route->flags & API_LOAD_GRID) && req->params[0] != NULL) {
        a.grid_name = cut(req->params[0]); /* a grid that is not there */
    }
    memcpy(a.user_id, req->user.id, sizeof(a.user_id));
    a.user_email = cp_strdup(req->user.email ? req->user.email : "");
    a.resource_type = t.resource_type;
    a.resource_name = t.resource_name;
    a.resource_id = cp_strdup(t.resource_name);
    a.service_id = t.service_id;
    a.event_name = t.event_name;
    memset(&t, 0, sizeof(t)); /* moved into a */
    a.status = res->status;
    a.event_status = cp_strdup(res->status < 400 ? "success" : "error");
    a.method = cp_strdup(method_name(req->method));
    a.path = cut(req->path != NULL ? req->path : "");
    a.source_ip = cp_strdup(req->peer_ip ? req->peer_ip : "");
    a.user_agent = cut(req->user_agent ? req->user_agent : "");
    a.request_body = body_text(req->json);
    a.created_at = cp_now_ms();
    if (req->method == API_POST && strcmp(route->pattern, "/v1/grids") == 0 &&
        res->status < 300)
        created_grid(req, res, &a);
    int rc = ST_CALL(req->m->store, audit_append, &a);
    if (rc != 0)
        cp_warn("audit: cannot record %s %s by %s: %s", a.method, a.path,
                a.user_email, cp_strerror(rc));
    store_audit_release(&a);
}

/* ==== API view ==== */

json_t *audit_entry_json(const struct store_audit *a)
{
    json_t *o = json_object();
    char seq[32];
    snprintf(seq, sizeof(seq), "%lld", (long long)a->seq);
    cp_json_set_str(o, "id", seq);
    cp_json_set_time(o, "time", a->created_at);
    cp_json_set_str(o, "grid", a->grid_name);
    cp_json_set_str(o, "grid_id", a->grid_id);
    cp_json_set_str(o, "service", a->service_id ? a->service_id : "");
    cp_json_set_str(o, "resource_type", a->resource_type);
    cp_json_set_str(o, "resource_name", a->resource_name);
    cp_json_set_str(o, "resource_id", a->resource_id);
    cp_json_set_str(o, "event_name", a->event_name);
    cp_json_set_str(o, "event_status", a->event_status);
    json_object_set_new(o, "status", json_integer(a->status));
    cp_json_set_str(o, "method", a->method);
    cp_json_set_str(o, "path", a->path);
    cp_json_set_str(o, "source_ip", a->source_ip);
    cp_json_set_str(o, "user_agent", a->user_agent);
    json_object_set_new(o, "user_identity",
                        json_pack("{s:s, s:s}", "id", a->user_id, "email",
                                  a->user_email ? a->user_email : ""));
    json_t *body = NULL;
    if (a->request_body != NULL) {
        body = cp_json_parse(a->request_body, strlen(a->request_body), NULL, 0);
        if (body == NULL) /* cut at AUDIT_BODY_MAX */
            body = json_string(a->request_body);
    }
    json_object_set_new(o, "request_body", body != NULL ? body : json_null());
    return o;
}
