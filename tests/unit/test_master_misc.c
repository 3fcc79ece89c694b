/* Unit tests for the master's small pure parts: the login rate limiter
 * (src/master/ratelimit.c), the token cache (src/master/authcache.c), the
 * route table matcher and the error-answer helpers (src/master/api.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"
#include "../../src/master/api.h"
#include "../../src/master/authcache.h"
#include "../../src/master/ratelimit.h"
#include "../../src/master/store.h"

#include <stdio.h>
#include <string.h>

/* ==== ratelimit ==== */

static void test_ratelimit_window(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(3, 1000, 64);
    const int64_t t0 = 5000;
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0));
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 1));
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 2));
    assert_false(ratelimit_allow(rl, "10.0.0.1", t0 + 3));
    assert_false(ratelimit_allow(rl, "10.0.0.1", t0 + 999));
    /* Other addresses have their own windows. */
    assert_true(ratelimit_allow(rl, "10.0.0.2", t0 + 10));
    assert_true(ratelimit_allow(rl, "10.0.0.20", t0 + 10));
    /* A new window starts afresh. */
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 1000));
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 1001));
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 1002));
    assert_false(ratelimit_allow(rl, "10.0.0.1", t0 + 1003));
    /* The window is fixed from its first request, not sliding. */
    assert_true(ratelimit_allow(rl, "10.0.0.1", t0 + 2000));
    ratelimit_free(rl);
    ratelimit_free(NULL);

    /* A limit of 1. */
    rl = ratelimit_new(1, 60000, 8);
    assert_true(ratelimit_allow(rl, "::1", 0));
    assert_false(ratelimit_allow(rl, "::1", 59999));
    assert_true(ratelimit_allow(rl, "::1", 60000));
    ratelimit_free(rl);
}

static void test_ratelimit_loopback(void **state)
{
    (void)state;
    assert_true(ratelimit_is_loopback("127.0.0.1"));
    assert_true(ratelimit_is_loopback("127.1.2.3"));
    assert_true(ratelimit_is_loopback("::1"));
    assert_true(ratelimit_is_loopback("::ffff:127.0.0.1"));
    assert_false(ratelimit_is_loopback("10.0.0.1"));
    assert_false(ratelimit_is_loopback("10.127.0.1"));
    assert_false(ratelimit_is_loopback("128.0.0.1"));
    assert_false(ratelimit_is_loopback("::2"));
    assert_false(ratelimit_is_loopback("::10"));
    assert_false(ratelimit_is_loopback("::ffff:10.0.0.1"));
    assert_false(ratelimit_is_loopback("fe80::1"));
    assert_false(ratelimit_is_loopback(""));
}

static void test_ratelimit_many_keys(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(2, 60000, 16);
    char key[64];
    /* Far more keys than slots, all in one window: nothing crashes and
     * each new key is allowed. */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "10.%d.%d.%d", (i >> 16) & 255,
                 (i >> 8) & 255, i & 255);
        assert_true(ratelimit_allow(rl, key, 1000));
    }
    /* The most recent key is tracked and limited. */
    assert_true(ratelimit_allow(rl, key, 1001));
    assert_false(ratelimit_allow(rl, key, 1002));
    ratelimit_free(rl);

    /* With time moving on, the recent keys survive the churn. */
    rl = ratelimit_new(2, 60000, 64);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "192.168.%d.%d", (i >> 8) & 255,
                 i & 255);
        assert_true(ratelimit_allow(rl, key, 1000 + i));
    }
    assert_true(ratelimit_allow(rl, key, 7000));
    assert_false(ratelimit_allow(rl, key, 7001));
    assert_false(ratelimit_allow(rl, key, 7002));
    /* One abusive address among many benign ones keeps being limited. */
    int denied = 0;
    for (int i = 0; i < 200; i++) {
        char other[64];
        snprintf(other, sizeof(other), "172.16.0.%d", i & 255);
        ratelimit_allow(rl, other, 8000 + i);
        if (!ratelimit_allow(rl, "203.0.113.9", 8000 + i))
            denied++;
    }
    assert_true(denied >= 190);
    ratelimit_free(rl);

    /* Fewer slots than the probe run. */
    rl = ratelimit_new(1, 1000, 1);
    assert_true(ratelimit_allow(rl, "a", 0));
    assert_false(ratelimit_allow(rl, "a", 1));
    assert_true(ratelimit_allow(rl, "b", 2));
    assert_true(ratelimit_allow(rl, "a", 3)); /* b took the only slot */
    ratelimit_free(rl);
}

/* ratelimit.h takes any key; one longer than the slot's key buffer must
 * still be limited (it is stored truncated and then never matches, so it
 * is let through on every request: the limiter fails open). */
static void test_ratelimit_long_key(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(2, 60000, 64);
    char key[100];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += ratelimit_allow(rl, key, 1000 + i);
    ratelimit_free(rl);
    assert_int_equal(allowed, 2);
}

/* ==== authcache ==== */

static void make_hash(const char *token, char out[65])
{
    cp_sha256_hex(token, strlen(token), out);
}

static void fill(struct store_token *t, struct store_user *u, const char *tag)
{
    memset(t, 0, sizeof(*t));
    memset(u, 0, sizeof(*u));
    snprintf(t->id, sizeof(t->id), "%s", "0123456789abcdef01234567");
    snprintf(t->user_id, sizeof(t->user_id), "%s",
             "aaaaaaaaaaaaaaaaaaaaaaaa");
    t->kind = STORE_TOKEN_BEARER;
    t->token_hash = cp_asprintf("hash-%s", tag);
    t->refresh_hash = cp_asprintf("refresh-%s", tag);
    snprintf(t->token_last4, sizeof(t->token_last4), "%s", "wxyz");
    t->scopes = cp_strdup("user,owner");
    t->description = cp_asprintf("desc-%s", tag);
    t->is_bootstrap = true;
    t->expires_at = 1234567;
    snprintf(u->id, sizeof(u->id), "%s", "aaaaaaaaaaaaaaaaaaaaaaaa");
    u->email = cp_asprintf("%s@example.com", tag);
    u->name = cp_asprintf("name-%s", tag);
    u->roles = STORE_ROLE_GRID_ADMIN;
}

static void expect_hit(struct authcache *c, const char *hash, int64_t now,
                       const char *tag)
{
    struct store_token t;
    struct store_user u;
    memset(&t, 0, sizeof(t));
    memset(&u, 0, sizeof(u));
    assert_true(authcache_get(c, hash, now, &t, &u));
    char want[64];
    snprintf(want, sizeof(want), "hash-%s", tag);
    assert_string_equal(t.token_hash, want);
    snprintf(want, sizeof(want), "refresh-%s", tag);
    assert_string_equal(t.refresh_hash, want);
    snprintf(want, sizeof(want), "desc-%s", tag);
    assert_string_equal(t.description, want);
    assert_string_equal(t.scopes, "user,owner");
    assert_string_equal(t.id, "0123456789abcdef01234567");
    assert_string_equal(t.token_last4, "wxyz");
    assert_true(t.is_bootstrap);
    assert_int_equal(t.expires_at, 1234567);
    snprintf(want, sizeof(want), "%s@example.com", tag);
    assert_string_equal(u.email, want);
    snprintf(want, sizeof(want), "name-%s", tag);
    assert_string_equal(u.name, want);
    assert_int_equal(u.roles, STORE_ROLE_GRID_ADMIN);
    store_token_release(&t);
    store_user_release(&u);
}

static bool is_hit(struct authcache *c, const char *hash, int64_t now)
{
    struct store_token t;
    struct store_user u;
    memset(&t, 0, sizeof(t));
    memset(&u, 0, sizeof(u));
    bool hit = authcache_get(c, hash, now, &t, &u);
    if (hit) {
        store_token_release(&t);
        store_user_release(&u);
    }
    return hit;
}

static void test_authcache_ttl(void **state)
{
    (void)state;
    struct authcache *c = authcache_new(1000, 64);
    char h[65], h2[65];
    make_hash("token-a", h);
    make_hash("token-b", h2);
    assert_false(is_hit(c, h, 0));

    struct store_token t;
    struct store_user u;
    fill(&t, &u, "a");
    authcache_put(c, h, 10000, &t, &u);
    expect_hit(c, h, 10000, "a");
    expect_hit(c, h, 10999, "a");
    assert_false(is_hit(c, h, 11000));
    assert_false(is_hit(c, h, 50000));
    assert_false(is_hit(c, h2, 10001));

    /* A put refreshes the entry. */
    authcache_put(c, h, 20000, &t, &u);
    expect_hit(c, h, 20500, "a");
    store_token_release(&t);
    store_user_release(&u);
    authcache_free(c);
    authcache_free(NULL);
}

static void test_authcache_clear(void **state)
{
    (void)state;
    struct authcache *c = authcache_new(1000, 64);
    char h[65];
    make_hash("token-a", h);
    struct store_token t;
    struct store_user u;
    fill(&t, &u, "a");
    authcache_put(c, h, 100, &t, &u);
    expect_hit(c, h, 101, "a");
    authcache_clear(c);
    assert_false(is_hit(c, h, 102));
    /* Entries put after a clear are live again. */
    authcache_put(c, h, 103, &t, &u);
    expect_hit(c, h, 104, "a");
    authcache_clear(c);
    authcache_clear(c);
    assert_false(is_hit(c, h, 105));
    store_token_release(&t);
    store_user_release(&u);
    authcache_free(c);
}

static void test_authcache_disabled(void **state)
{
    (void)state;
    struct authcache *c = authcache_new(0, 64);
    char h[65];
    make_hash("token-a", h);
    struct store_token t;
    struct store_user u;
    fill(&t, &u, "a");
    authcache_put(c, h, 100, &t, &u);
    assert_false(is_hit(c, h, 100));
    assert_false(is_hit(c, h, 101));
    authcache_clear(c);
    store_token_release(&t);
    store_user_release(&u);
    authcache_free(c);
}

static void test_authcache_copies(void **state)
{
    (void)state;
    struct authcache *c = authcache_new(1000, 64);
    char h[65];
    make_hash("token-a", h);
    struct store_token t;
    struct store_user u;
    fill(&t, &u, "a");
    authcache_put(c, h, 100, &t, &u);
    /* The originals go away: the cache kept its own copies. */
    store_token_release(&t);
    store_user_release(&u);

    struct store_token g;
    struct store_user gu;
    assert_true(authcache_get(c, h, 101, &g, &gu));
    /* Scribbling on and freeing the copy leaves the cache intact. */
    g.token_hash[0] = 'X';
    gu.email[0] = 'X';
    store_token_release(&g);
    store_user_release(&gu);
    expect_hit(c, h, 102, "a");

    /* NULL strings stay NULL in copies. */
    char h2[65];
    make_hash("token-b", h2);
    struct store_token tn;
    struct store_user un;
    memset(&tn, 0, sizeof(tn));
    memset(&un, 0, sizeof(un));
    tn.token_hash = cp_strdup("only");
    un.email = cp_strdup("e@x");
    authcache_put(c, h2, 100, &tn, &un);
    store_token_release(&tn);
    store_user_release(&un);
    assert_true(authcache_get(c, h2, 101, &g, &gu));
    assert_string_equal(g.token_hash, "only");
    assert_null(g.refresh_hash);
    assert_null(g.description);
    assert_null(g.scopes);
    assert_string_equal(gu.email, "e@x");
    assert_null(gu.name);
    store_token_release(&g);
    store_user_release(&gu);

    /* Entries freed with the cache (ASan checks). */
    authcache_free(c);
}

static void test_authcache_collisions(void **state)
{
    (void)state;
    /* One slot: a second hash evicts the first, and never answers for
     * it. */
    struct authcache *c = authcache_new(1000, 1);
    char ha[65], hb[65];
    make_hash("token-a", ha);
    make_hash("token-b", hb);
    struct store_token t;
    struct store_user u;
    fill(&t, &u, "a");
    authcache_put(c, ha, 100, &t, &u);
    store_token_release(&t);
    store_user_release(&u);
    fill(&t, &u, "b");
    authcache_put(c, hb, 100, &t, &u);
    store_token_release(&t);
    store_user_release(&u);
    assert_false(is_hit(c, ha, 101));
    expect_hit(c, hb, 101, "b");
    authcache_free(c);

    /* Zero or negative slots are clamped to one. */
    c = authcache_new(1000, 0);
    fill(&t, &u, "z");
    authcache_put(c, ha, 100, &t, &u);
    expect_hit(c, ha, 100, "z");
    store_token_release(&t);
    store_user_release(&u);
    authcache_free(c);

    /* Many distinct hashes in a normal-sized cache. */
    c = authcache_new(1000, 1024);
    char hashes[200][65];
    for (int i = 0; i < 200; i++) {
        char tok[32], tag[16];
        snprintf(tok, sizeof(tok), "token-%d", i);
        snprintf(tag, sizeof(tag), "t%d", i);
        make_hash(tok, hashes[i]);
        fill(&t, &u, tag);
        authcache_put(c, hashes[i], 100, &t, &u);
        store_token_release(&t);
        store_user_release(&u);
    }
    /* The last one is certainly there; none answers with another's. */
    expect_hit(c, hashes[199], 101, "t199");
    for (int i = 0; i < 200; i++) {
        struct store_token g;
        struct store_user gu;
        if (authcache_get(c, hashes[i], 101, &g, &gu)) {
            char want[32];
            snprintf(want, sizeof(want), "hash-t%d", i);
            assert_string_equal(g.token_hash, want);
            store_token_release(&g);
            store_user_release(&gu);
        }
    }
    authcache_free(c);
}

/* ==== api_match ==== */

struct route_case {
    enum api_method method;
    const char *path;
    api_handler *handler;
    const char *p0, *p1;
};

static void check_route(const struct route_case *rc)
{
    char *params[API_MAX_PARAMS] = {0};
    int status = 0;
    const struct api_route *r =
        api_match(rc->method, rc->path, params, &status);
    if (r == NULL || r->handler != rc->handler)
        print_error("%d %s: no or wrong route (status %d)\n", rc->method,
                    rc->path, status);
    assert_non_null(r);
    assert_true(r->handler == rc->handler);
    assert_true((r->methods & rc->method) != 0);
    if (rc->p0 == NULL)
        assert_null(params[0]);
    else
        assert_string_equal(params[0], rc->p0);
    if (rc->p1 == NULL)
        assert_null(params[1]);
    else
        assert_string_equal(params[1], rc->p1);
    assert_null(params[2]);
    assert_null(params[3]);
    for (int i = 0; i < API_MAX_PARAMS; i++)
        cp_free(params[i]);
}

static void test_api_match_routes(void **state)
{
    (void)state;
    const struct route_case cases[] = {
        {API_GET, "/", api_root_get, NULL, NULL},
        {API_HEAD, "/", api_root_get, NULL, NULL},
        {API_GET, "/v1/ping", api_ping, NULL, NULL},
        {API_HEAD, "/v1/ping", api_ping, NULL, NULL},
        {API_POST, "/v1/auth", api_auth_legacy, NULL, NULL},
        {API_POST, "/oauth2/token", api_oauth_token, NULL, NULL},
        {API_POST, "/oauth2/authorize", api_oauth_authorize, NULL, NULL},
        {API_GET, "/oauth2/tokens", api_tokens_list, NULL, NULL},
        {API_GET, "/oauth2/tokens/abc123", api_token_show, "abc123", NULL},
        {API_DELETE, "/oauth2/tokens/abc123", api_token_delete, "abc123",
         NULL},
        {API_GET, "/v1/user", api_user_current, NULL, NULL},
        {API_GET, "/v1/users", api_users_list, NULL, NULL},
        {API_GET, "/v1/grids", api_grids_list, NULL, NULL},
        {API_POST, "/v1/grids", api_grids_create, NULL, NULL},
        {API_GET, "/v1/grids/prod", api_grid_show, "prod", NULL},
        {API_PUT, "/v1/grids/prod", api_grid_update, "prod", NULL},
        {API_DELETE, "/v1/grids/prod", api_grid_delete, "prod", NULL},
        {API_GET, "/v1/grids/prod/users", api_grid_users_list, "prod",
         NULL},
        {API_POST, "/v1/grids/prod/users", api_grid_users_add, "prod", NULL},
        {API_DELETE, "/v1/grids/prod/users/a@b.c", api_grid_users_remove,
         "prod", "a@b.c"},
        {API_GET, "/v1/grids/prod/nodes", api_nodes_list, "prod", NULL},
        {API_POST, "/v1/grids/prod/nodes", api_nodes_create, "prod", NULL},
        {API_GET, "/v1/nodes/prod/node-1", api_node_show, "prod", "node-1"},
        {API_PUT, "/v1/nodes/prod/node-1", api_node_update, "prod",
         "node-1"},
        {API_DELETE, "/v1/nodes/prod/node-1", api_node_delete, "prod",
         "node-1"},
        {API_GET, "/v1/nodes/prod/node-1/health", api_node_health, "prod",
         "node-1"},
        {API_GET, "/v1/nodes/prod/node-1/stats", api_node_stats, "prod",
         "node-1"},
        {API_GET, "/v1/nodes/prod/node-1/token", api_node_token_show, "prod",
         "node-1"},
        {API_PUT, "/v1/nodes/prod/node-1/token", api_node_token_update,
         "prod", "node-1"},
        {API_DELETE, "/v1/nodes/prod/node-1/token", api_node_token_delete,
         "prod", "node-1"},
        /* One trailing slash is accepted. */
        {API_GET, "/v1/ping/", api_ping, NULL, NULL},
        {API_GET, "/v1/grids/", api_grids_list, NULL, NULL},
        {API_GET, "/oauth2/tokens/", api_tokens_list, NULL, NULL},
        {API_GET, "/v1/grids/prod/", api_grid_show, "prod", NULL},
        {API_DELETE, "/v1/grids/prod/users/a@b.c/", api_grid_users_remove,
         "prod", "a@b.c"},
        {API_GET, "/v1/nodes/prod/n/health/", api_node_health, "prod", "n"},
        /* Captures take any characters but '/'. */
        {API_GET, "/v1/grids/a:b.c%20d", api_grid_show, "a:b.c%20d", NULL},
        {API_GET, "/v1/grids/users", api_grid_show, "users", NULL},
        {API_GET, "/v1/nodes/g/token", api_node_show, "g", "token"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_route(&cases[i]);
}

static void check_no_route(enum api_method method, const char *path,
                           int want)
{
    char *params[API_MAX_PARAMS] = {0};
    int status = 0;
    const struct api_route *r = api_match(method, path, params, &status);
    if (r != NULL || status != want)
        print_error("%d %s: route %p status %d, want %d\n", method, path,
                    (const void *)r, status, want);
    assert_null(r);
    assert_int_equal(status, want);
    for (int i = 0; i < API_MAX_PARAMS; i++)
        assert_null(params[i]); /* nothing leaked into params */
}

static void test_api_match_misses(void **state)
{
    (void)state;
    check_no_route(API_GET, "/v1/nope", 404);
    check_no_route(API_GET, "", 404);
    check_no_route(API_GET, "v1/ping", 404);
    check_no_route(API_GET, "/V1/ping", 404);
    check_no_route(API_GET, "/v1/pingx", 404);
    check_no_route(API_GET, "/v1/ping//", 404);
    check_no_route(API_GET, "/v1//grids", 404);
    check_no_route(API_GET, "/v1/grids//", 404);
    check_no_route(API_GET, "/v1/grids/prod/users/a/extra", 404);
    check_no_route(API_GET, "/v1/nodes/prod", 404);
    check_no_route(API_GET, "/v1/nodes/prod//health", 404);
    check_no_route(API_GET, "/v1/nodes/prod/n/unknown", 404);

    check_no_route(API_POST, "/", 405);
    check_no_route(API_POST, "/v1/ping", 405);
    check_no_route(API_GET, "/v1/auth", 405);
    check_no_route(API_GET, "/oauth2/token", 405);
    check_no_route(API_DELETE, "/v1/grids", 405);
    check_no_route(API_HEAD, "/v1/grids", 405);
    check_no_route(API_PATCH, "/v1/grids/prod", 405);
    check_no_route(API_POST, "/v1/grids/prod", 405);
    check_no_route(API_PUT, "/v1/grids/prod/users", 405);
    check_no_route(API_GET, "/v1/grids/prod/users/a@b.c", 405);
    check_no_route(API_POST, "/v1/nodes/prod/n", 405);
    check_no_route(API_PUT, "/v1/nodes/prod/n/health", 405);
    check_no_route(API_POST, "/v1/nodes/prod/n/token", 405);
    check_no_route(API_PUT, "/v1/users", 405);
    check_no_route(API_POST, "/oauth2/tokens/x", 405);
}

/* ==== answers ==== */

static void test_api_field_errors(void **state)
{
    (void)state;
    struct api_res res;
    memset(&res, 0, sizeof(res));
    assert_false(api_failed(&res));
    api_field_error(&res, "name", "is %s", "taken");
    assert_int_equal(res.status, 422);
    assert_true(api_failed(&res));
    json_t *errs = json_object_get(res.body, "error");
    assert_true(json_is_object(errs));
    assert_int_equal(json_object_size(res.body), 1);
    assert_string_equal(cp_json_str(errs, "name"), "is taken");

    api_field_error(&res, "initial_size", "must be %d, %d or %d", 1, 3, 5);
    /* The first message for a field stays. */
    api_field_error(&res, "name", "second message");
    errs = json_object_get(res.body, "error");
    assert_int_equal(json_object_size(errs), 2);
    assert_string_equal(cp_json_str(errs, "name"), "is taken");
    assert_string_equal(cp_json_str(errs, "initial_size"),
                        "must be 1, 3 or 5");

    json_t *more = json_pack("{s:s,s:s}", "stats", "must be an object",
                             "name", "ignored");
    api_field_errors(&res, more);
    json_decref(more);
    errs = json_object_get(res.body, "error");
    assert_int_equal(json_object_size(errs), 3);
    assert_string_equal(cp_json_str(errs, "stats"), "must be an object");
    assert_string_equal(cp_json_str(errs, "name"), "is taken");
    assert_int_equal(res.status, 422);

    /* The rendered shape. */
    char *s = cp_json_dump(res.body);
    assert_string_equal(s, "{\"error\":{\"name\":\"is taken\","
                           "\"initial_size\":\"must be 1, 3 or 5\","
                           "\"stats\":\"must be an object\"}}");
    cp_free(s);
    api_res_release(&res);
    assert_null(res.body);
    assert_int_equal(res.status, 0);

    /* From an empty errors object: an empty 422 hash is not made. */
    memset(&res, 0, sizeof(res));
    json_t *none = json_object();
    api_field_errors(&res, none);
    json_decref(none);
    assert_false(api_failed(&res));
    api_res_release(&res);

    /* A field error replaces a plain error; a plain one replaces the
     * hash. */
    memset(&res, 0, sizeof(res));
    api_error(&res, 400, "bad");
    api_field_error(&res, "f", "wrong");
    assert_int_equal(res.status, 422);
    assert_string_equal(cp_json_str(json_object_get(res.body, "error"), "f"),
                        "wrong");
    api_error(&res, 403, "Access denied");
    assert_int_equal(res.status, 403);
    assert_string_equal(cp_json_str(res.body, "error"), "Access denied");
    api_res_release(&res);
}

static void test_api_error_shapes(void **state)
{
    (void)state;
    struct api_res res;
    memset(&res, 0, sizeof(res));
    api_error(&res, 404, "Grid %s not found", "prod");
    assert_int_equal(res.status, 404);
    char *s = cp_json_dump(res.body);
    assert_string_equal(s, "{\"error\":\"Grid prod not found\"}");
    cp_free(s);
    api_res_release(&res);

    /* Messages with quotes stay valid JSON; long ones are cut, not
     * overflowed. */
    memset(&res, 0, sizeof(res));
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    api_error(&res, 400, "say \"%s\"", big);
    const char *msg = cp_json_str(res.body, "error");
    assert_non_null(msg);
    assert_true(strlen(msg) < 600);
    assert_memory_equal(msg, "say \"xxx", 8);
    api_res_release(&res);

    static const struct {
        int err, status;
        const char *msg;
    } cases[] = {
        {CP_ENOTFOUND, 404, "Not found"},
        {CP_ECONFLICT, 409, "Conflict"},
        {CP_EPERM, 403, "Access denied"},
        {CP_EINVAL, 400, "Invalid request"},
        {CP_EAGAIN, 503, "Service temporarily unavailable, try again"},
        {CP_ETIMEDOUT, 503, "Service temporarily unavailable, try again"},
        {CP_EUNSUPPORTED, 501, "Not implemented"},
        {CP_EIO, 500, "Internal error (input/output error)"},
        {CP_EPROTO, 500, "Internal error (protocol error)"},
        {CP_ENOMEM, 500, "Internal error (out of memory)"},
        {-99, 500, "Internal error (unknown error)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&res, 0, sizeof(res));
        api_store_error(&res, cases[i].err);
        assert_int_equal(res.status, cases[i].status);
        assert_int_equal(json_object_size(res.body), 1);
        assert_string_equal(cp_json_str(res.body, "error"), cases[i].msg);
        assert_true(api_failed(&res));
        api_res_release(&res);
    }

    /* A store error over an earlier answer replaces it. */
    memset(&res, 0, sizeof(res));
    api_json(&res, 200, json_pack("{s:i}", "ok", 1));
    assert_false(api_failed(&res));
    api_store_error(&res, CP_ENOTFOUND);
    assert_int_equal(res.status, 404);
    assert_null(json_object_get(res.body, "ok"));
    api_res_release(&res);
}

static void test_api_raw_json(void **state)
{
    (void)state;
    struct api_res res;
    memset(&res, 0, sizeof(res));
    api_json(&res, 200, json_object());
    struct cp_buf b;
    cp_buf_init(&b, 1024);
    cp_buf_append(&b, "[1,2]", 5);
    api_raw_json(&res, 201, &b);
    assert_null(b.data);
    assert_null(res.body);
    assert_int_equal(res.status, 201);
    assert_string_equal(res.raw, "[1,2]");
    assert_string_equal(res.raw_type, "application/json");
    api_res_release(&res);

    /* An empty buffer answers {}. */
    memset(&res, 0, sizeof(res));
    cp_buf_init(&b, 1024);
    api_raw_json(&res, 200, &b);
    assert_string_equal(res.raw, "{}");
    api_res_release(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_window),
        cmocka_unit_test(test_ratelimit_loopback),
        cmocka_unit_test(test_ratelimit_many_keys),
        cmocka_unit_test(test_ratelimit_long_key),
        cmocka_unit_test(test_authcache_ttl),
        cmocka_unit_test(test_authcache_clear),
        cmocka_unit_test(test_authcache_disabled),
        cmocka_unit_test(test_authcache_copies),
        cmocka_unit_test(test_authcache_collisions),
        cmocka_unit_test(test_api_match_routes),
        cmocka_unit_test(test_api_match_misses),
        cmocka_unit_test(test_api_field_errors),
        cmocka_unit_test(test_api_error_shapes),
        cmocka_unit_test(test_api_raw_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
