/* The OAuth2-style endpoints of spec 2.4: code and refresh grants, token
 * and code creation, invitations, listing and revoking tokens. Plaintext
 * tokens exist only in the response that creates them; the store keeps
 * SHA-256 hashes (tokens are 256 random bits, so a fast hash is enough).
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "authcache.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REFRESHED_TOKEN_TTL_S 7200
#define CODE_TTL_S 600
#define INVITE_TTL_S (7 * 24 * 3600)

/* A freshly made secret: plaintext (shown once) and its hash. */
struct secret {
    char plain[129];
    char hash[65];
};

static void make_secret(struct secret *s, size_t bytes)
{
    cp_random_hex(s->plain, bytes);
    cp_sha256_hex(s->plain, strlen(s->plain), s->hash);
}

static void last4(const char *plain, char out[5])
{
    size_t n = strlen(plain);
    const char *tail = n >= 4 ? plain + n - 4 : plain;
    size_t k = strlen(tail);
    memcpy(out, tail, k);
    out[k] = '\0';
}

static json_t *server_json(const struct master *m)
{
    return json_pack("{s:s?}", "name", m->server_name);
}

/* Token JSON of spec 2.4; access and refresh are the plaintexts when just
 * created, NULL otherwise. */
static json_t *token_json(const struct master *m, const struct store_token *t,
                          const struct store_user *u, const char *access,
                          const char *refresh)
{
    int64_t now = cp_now_ms();
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(t->id));
    if (t->kind == STORE_TOKEN_CODE) {
        json_object_set_new(j, "grant_type",
                            json_string("authorization_code"));
        cp_json_set_str(j, "code", access);
    } else {
        json_object_set_new(j, "token_type", json_string("bearer"));
        cp_json_set_str(j, "access_token", access);
        cp_json_set_str(j, "refresh_token", refresh);
        json_object_set_new(j, "access_token_last_four",
                            json_string(t->token_last4));
        cp_json_set_str(j, "refresh_token_last_four",
                        t->refresh_last4[0] ? t->refresh_last4 : NULL);
    }
    json_object_set_new(
        j, "expires_in",
        t->expires_at == 0
            ? json_null()
            : json_integer((t->expires_at - now) / 1000 > 0
                               ? (t->expires_at - now) / 1000
                               : 0));
    json_object_set_new(j, "scopes", json_string(t->scopes));
    cp_json_set_str(j, "description", t->description);
    cp_json_set_time(j, "created_at", t->created_at);
    cp_json_set_time(j, "last_used_at", t->last_used_at);
    if (u != NULL)
        json_object_set_new(j, "user",
                            json_pack("{s:s,s:s,s:s?}", "id", u->id, "email",
                                      u->email, "name", u->name));
    json_object_set_new(j, "server", server_json(m));
    return j;
}

/* Creates a bearer token for user; fills tok (caller releases) and the
 * plaintexts. ttl_s 0 = never expires (and no refresh token). */
static int create_bearer(struct api_req *req, const struct store_user *user,
                         const char *scopes, long long ttl_s,
                         const char *description, const char *parent_code,
                         struct store_token *tok, struct secret *access,
                         struct secret *refresh)
{
    int64_t now = cp_now_ms();
    make_secret(access, 32);
    memset(tok, 0, sizeof(*tok));
    store_new_id(tok->id);
    snprintf(tok->user_id, sizeof(tok->user_id), "%s", user->id);
    tok->kind = STORE_TOKEN_BEARER;
    tok->token_hash = cp_strdup(access->hash);
    last4(access->plain, tok->token_last4);
    if (ttl_s > 0) {
        make_secret(refresh, 64);
        tok->refresh_hash = cp_strdup(refresh->hash);
        last4(refresh->plain, tok->refresh_last4);
        tok->expires_at = now + ttl_s * 1000;
    } else {
        refresh->plain[0] = '\0';
    }
    tok->scopes = cp_strdup(scopes ? scopes : "user");
    tok->description = description ? cp_strdup(description) : NULL;
    tok->internal = true;
    if (parent_code != NULL)
        snprintf(tok->parent_code_id, sizeof(tok->parent_code_id), "%s",
                 parent_code);
    tok->created_at = now;
    return ST_CALL(req->m->store, token_create, tok);
}

/* Wants JSON unless the client asked for a form body (spec 2.4). */
static bool wants_json(const struct api_req *req)
{
    if (req->accept != NULL && strstr(req->accept, "json") != NULL)
        return true;
    if (req->content_type != NULL &&
        strstr(req->content_type, "json") != NULL)
        return true;
    if (req->accept != NULL &&
        strstr(req->accept, "x-www-form-urlencoded") != NULL)
        return false;
    return req->content_type == NULL ||
           strstr(req->content_type, "x-www-form-urlencoded") == NULL;
}

static void append_form(struct cp_buf *b, const char *k, const char *v)
{
    if (b->len > 0)
        cp_buf_append(b, "&", 1);
    cp_buf_append(b, k, strlen(k));
    cp_buf_append(b, "=", 1);
    for (const char *p = v; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~')
            cp_buf_append(b, p, 1);
        else
            cp_buf_printf(b, "%%%02X", c);
    }
}

static void answer_token(struct api_req *req, struct api_res *res,
                         json_t *tj, const char *state)
{
    if (wants_json(req)) {
        api_json(res, 201, tj);
        return;
    }
    struct cp_buf b;
    cp_buf_init(&b, 64 * 1024);
    const char *keys[] = {"access_token", "refresh_token"};
    for (size_t i = 0; i < CP_ARRAY_LEN(keys); i++) {
        const char *v = cp_json_str(tj, keys[i]);
        append_form(&b, keys[i], v ? v : "");
    }
    char num[32];
    json_t *exp = json_object_get(tj, "expires_in");
    snprintf(num, sizeof(num), "%lld",
             json_is_integer(exp) ? (long long)json_integer_value(exp) : 0);
    append_form(&b, "expires_in", num);
    json_t *user = json_object_get(tj, "user");
    const char *email = cp_json_str(user, "email");
    append_form(&b, "username", email ? email : "");
    append_form(&b, "server_name", req->m->server_name ? req->m->server_name
                                                       : "");
    append_form(&b, "state", state ? state : "");
    json_decref(tj);
    res->status = 201;
    res->raw = b.data;
    res->raw_type = "application/x-www-form-urlencoded";
}

/* A parameter from the body, or from the query string (spec 2.4 accepts
 * both). Returns a new string or NULL. */
static char *param(const struct api_req *req, const char *name)
{
    const char *v = cp_json_str(req->json, name);
    if (v != NULL)
        return cp_strdup(v);
    json_t *jv = json_object_get(req->json, name);
    if (json_is_integer(jv))
        return cp_asprintf("%lld", (long long)json_integer_value(jv));
    return api_query(req, name);
}

static void grant_code(struct api_req *req, struct api_res *res)
{
    struct store *st = req->m->store;
    char *code = param(req, "code");
    struct store_token row = {0}, tok = {0};
    struct store_user user = {0};
    struct secret access, refresh;
    if (code == NULL || *code == '\0' || strlen(code) > 256) {
        api_json(res, 400,
                 json_pack("{s:s,s:s}", "error", "invalid_request",
                           "error_description", "code is required"));
        goto out;
    }
    char hash[65];
    cp_sha256_hex(code, strlen(code), hash);
    int rc = ST_CALL(st, code_take, hash, cp_now_ms(), &row);
    if (rc == CP_ENOTFOUND) {
        cp_info("auth: authorization code exchange refused from %s: "
                "unknown or expired code",
                req->peer_ip);
        api_json(res, 404,
                 json_pack("{s:s,s:s}", "error", "invalid_request",
                           "error_description", "Invalid authorization code"));
        goto out;
    }
    if (rc == 0)
        rc = ST_CALL(st, user_get, row.user_id, &user);
    /* Bootstrap codes yield a token that never expires (as the original);
     * other codes a 2 h token with a refresh token. */
    if (rc == 0)
        rc = create_bearer(req, &user, row.scopes,
                           row.is_bootstrap ? 0 : REFRESHED_TOKEN_TTL_S,
                           row.description,
                           row.is_bootstrap ? row.id : NULL, &tok, &access,
                           &refresh);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("auth: %s logged in with an authorization code from %s",
            user.email, req->peer_ip);
    char *state = param(req, "state");
    answer_token(req, res,
                 token_json(req->m, &tok, &user, access.plain,
                            refresh.plain[0] ? refresh.plain : NULL),
                 state);
    cp_free(state);
out:
    cp_free(code);
    store_token_release(&row);
    store_token_release(&tok);
    store_user_release(&user);
}

static void grant_refresh(struct api_req *req, struct api_res *res)
{
    struct store *st = req->m->store;
    char *rt = param(req, "refresh_token");
    struct store_token old = {0}, tok = {0};
    struct store_user user = {0};
    struct secret access, refresh;
    if (rt == NULL || *rt == '\0' || strlen(rt) > 512) {
        api_json(res, 400,
                 json_pack("{s:s,s:s}", "error", "invalid_request",
                           "error_description",
                           "refresh_token is required"));
        goto out;
    }
    char hash[65];
    cp_sha256_hex(rt, strlen(rt), hash);
    int rc = ST_CALL(st, refresh_take, hash, &old);
    authcache_clear(req->m->auth_cache);
    if (rc == CP_ENOTFOUND) {
        api_json(res, 404,
                 json_pack("{s:s,s:s}", "error", "invalid_request",
                           "error_description", "Invalid refresh token"));
        goto out;
    }
    if (rc == 0)
        rc = ST_CALL(st, user_get, old.user_id, &user);
    if (rc == 0)
        rc = create_bearer(req, &user, old.scopes, REFRESHED_TOKEN_TTL_S,
                           old.description, NULL, &tok, &access, &refresh);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    answer_token(req, res,
                 token_json(req->m, &tok, &user, access.plain, refresh.plain),
                 NULL);
out:
    cp_free(rt);
    store_token_release(&old);
    store_token_release(&tok);
    store_user_release(&user);
}

void api_oauth_token(struct api_req *req, struct api_res *res)
{
    char *grant = param(req, "grant_type");
    if (grant != NULL && strcmp(grant, "authorization_code") == 0)
        grant_code(req, res);
    else if (grant != NULL && strcmp(grant, "refresh_token") == 0)
        grant_refresh(req, res);
    else
        api_json(res, 400,
                 json_pack("{s:s,s:s}", "error", "unsupported_grant_type",
                           "error_description",
                           "grant_type must be authorization_code or "
                           "refresh_token"));
    cp_free(grant);
}

/* Parses expires_in (seconds, 0 or absent = never). */
static int expires_in(const struct api_req *req, struct api_res *res,
                      long long *out)
{
    *out = 0;
    json_t *v = json_object_get(req->json, "expires_in");
    if (v == NULL || json_is_null(v))
        return 0;
    long long n = -1;
    if (json_is_integer(v))
        n = (long long)json_integer_value(v);
    else if (json_is_string(v))
        cp_parse_int(json_string_value(v), 0, 10LL * 365 * 24 * 3600, &n);
    if (n < 0 || n > 10LL * 365 * 24 * 3600) {
        api_field_error(res, "expires_in",
                        "must be a number of seconds (0 = never)");
        return CP_EINVAL;
    }
    *out = n;
    return 0;
}

/* The user a token is made for: the caller, or user=<email> for master
 * admins. */
static int target_user(struct api_req *req, struct api_res *res,
                       struct store_user *out)
{
    const char *email = cp_json_str(req->json, "user");
    if (email == NULL || strcmp(email, req->user.email) == 0) {
        int rc = ST_CALL(req->m->store, user_get, req->user.id, out);
        if (rc != 0)
            api_store_error(res, rc);
        return rc;
    }
    if (!api_has_role(req, STORE_ROLE_MASTER_ADMIN)) {
        api_error(res, 403, "Only master admins can create tokens for "
                            "other users");
        return CP_EPERM;
    }
    int rc = ST_CALL(req->m->store, user_get_by_email, email, out);
    if (rc == CP_ENOTFOUND)
        api_field_error(res, "user", "no user with email %s", email);
    else if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

static void authorize_token(struct api_req *req, struct api_res *res)
{
    struct store_user user = {0};
    struct store_token tok = {0};
    struct secret access, refresh;
    long long ttl = 0;
    const char *scope = cp_json_str(req->json, "scope");
    const char *desc = cp_json_str(req->json, "description");
    if (scope == NULL)
        scope = "user";
    if (strcmp(scope, "user") != 0 && strcmp(scope, "user,owner") != 0 &&
        strcmp(scope, "owner") != 0) {
        api_field_error(res, "scope", "must be user or user,owner");
        return;
    }
    if (desc != NULL && strlen(desc) > 1024) {
        api_field_error(res, "description", "is too long (max 1024)");
        return;
    }
    if (expires_in(req, res, &ttl) != 0 || target_user(req, res, &user) != 0)
        goto out;
    int rc = create_bearer(req, &user, scope, ttl, desc, NULL, &tok, &access,
                           &refresh);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    api_json(res, 201,
             token_json(req->m, &tok, &user, access.plain,
                        refresh.plain[0] ? refresh.plain : NULL));
out:
    store_user_release(&user);
    store_token_release(&tok);
}

/* Creates an authorization code for user; ttl_s is the code's life. */
static int create_code(struct api_req *req, const struct store_user *user,
                       long long ttl_s, struct store_token *tok,
                       struct secret *code)
{
    int64_t now = cp_now_ms();
    make_secret(code, 6);
    memset(tok, 0, sizeof(*tok));
    store_new_id(tok->id);
    snprintf(tok->user_id, sizeof(tok->user_id), "%s", user->id);
    tok->kind = STORE_TOKEN_CODE;
    tok->token_hash = cp_strdup(code->hash);
    last4(code->plain, tok->token_last4);
    tok->scopes = cp_strdup("user");
    tok->internal = true;
    tok->created_at = now;
    tok->expires_at = now + ttl_s * 1000;
    return ST_CALL(req->m->store, token_create, tok);
}

static void authorize_code(struct api_req *req, struct api_res *res)
{
    struct store_user user = {0};
    struct store_token tok = {0};
    struct secret code;
    if (target_user(req, res, &user) != 0)
        goto out;
    int rc = create_code(req, &user, CODE_TTL_S, &tok, &code);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    api_json(res, 201, token_json(req->m, &tok, &user, code.plain, NULL));
out:
    store_user_release(&user);
    store_token_release(&tok);
}

/* Invitations create the user and a one-time code for them. Where the
 * original needed an external OAuth2 provider, the invitee here logs in
 * with `kontena master login --code <invite_code>`. */
static void authorize_invite(struct api_req *req, struct api_res *res)
{
    if (!api_has_role(req, STORE_ROLE_USER_ADMIN)) {
        api_error(res, 403, "Access denied");
        return;
    }
    const char *email = cp_json_str(req->json, "email");
    if (email == NULL || strlen(email) < 3 || strlen(email) > 254 ||
        strchr(email, '@') == NULL || strchr(email, ' ') != NULL) {
        api_field_error(res, "email", "must be an email address");
        return;
    }
    struct store_user u = {0};
    struct store_token tok = {0};
    struct secret code;
    store_new_id(u.id);
    u.email = cp_strdup(email);
    const char *name = cp_json_str(req->json, "username");
    u.name = cp_strdup(name ? name : email);
    u.created_at = u.updated_at = cp_now_ms();
    int rc = ST_CALL(req->m->store, user_create, &u);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "email", "user %s already exists", email);
        goto out;
    }
    if (rc == 0)
        rc = create_code(req, &u, INVITE_TTL_S, &tok, &code);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    const char *base = req->m->root_url ? req->m->root_url : req->scheme_host;
    char *link = cp_asprintf("%s/j/%s", base ? base : "", code.plain);
    api_json(res, 201,
             json_pack("{s:s,s:s,s:s}", "email", email, "invite_code",
                       code.plain, "link", link));
    cp_free(link);
out:
    store_user_release(&u);
    store_token_release(&tok);
}

void api_oauth_authorize(struct api_req *req, struct api_res *res)
{
    const char *rt = cp_json_str(req->json, "response_type");
    if (rt != NULL && strcmp(rt, "token") == 0)
        authorize_token(req, res);
    else if (rt != NULL && strcmp(rt, "code") == 0)
        authorize_code(req, res);
    else if (rt != NULL && strcmp(rt, "invite") == 0)
        authorize_invite(req, res);
    else
        api_json(res, 400,
                 json_pack("{s:s,s:s}", "error", "unsupported_response_type",
                           "error_description",
                           "response_type must be token, code or invite"));
}

void api_tokens_list(struct api_req *req, struct api_res *res)
{
    struct store_token_list l = {0};
    int rc = ST_CALL(req->m->store, token_list_by_user, req->user.id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++) {
        if (l.items[i].kind == STORE_TOKEN_BEARER)
            json_array_append_new(arr, token_json(req->m, &l.items[i],
                                                  &req->user, NULL, NULL));
    }
    store_token_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "access_tokens", arr));
}

/* Finds the token named by :id (an id, or a plaintext token) that the
 * caller may see: its own, or any for master admins. */
static int find_visible(struct api_req *req, struct api_res *res,
                        struct store_token *out)
{
    const char *key = req->params[0];
    int rc;
    if (strlen(key) == 64) {
        char hash[65];
        cp_sha256_hex(key, 64, hash);
        rc = ST_CALL(req->m->store, token_find, STORE_TOKEN_BEARER, hash, 0,
                     out);
    } else {
        rc = ST_CALL(req->m->store, token_get, key, out);
    }
    if (rc == 0 && strcmp(out->user_id, req->user.id) != 0 &&
        !api_has_role(req, STORE_ROLE_MASTER_ADMIN))
        rc = CP_ENOTFOUND;
    if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

void api_token_show(struct api_req *req, struct api_res *res)
{
    struct store_token t = {0};
    if (find_visible(req, res, &t) != 0)
        return;
    api_json(res, 200, token_json(req->m, &t, NULL, NULL, NULL));
    store_token_release(&t);
}

void api_token_delete(struct api_req *req, struct api_res *res)
{
    struct store_token t = {0};
    if (find_visible(req, res, &t) != 0)
        return;
    int rc = ST_CALL(req->m->store, token_delete, t.id);
    store_token_release(&t);
    authcache_clear(req->m->auth_cache);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    api_json(res, 200, json_object());
}

void api_auth_legacy(struct api_req *req, struct api_res *res)
{
    CP_UNUSED(req);
    api_error(res, 403,
              "Username/password login was removed; use kontena master "
              "login --code");
}
