/* Unit tests of the audit log and external registries: action and
 * resource derivation, body filtering, registry names, the agent's
 * X-Registry-Auth encoder and image_credentials parsing, and the store
 * operations (sealed passwords, newest-first lists, trimming) against
 * SQLite, PostgreSQL when KONTENA_TEST_DATABASE_URL is set (tests/pg.sh),
 * or MongoDB when KONTENA_TEST_MONGODB_URI is set (tests/mongo.sh; see
 * store_testdb.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/engine.h"
#include "../../src/agent/pods.h"
#include "../../src/cli/cli.h"
#include "../../src/common/alloc.h"
#include "../../src/common/crypto.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"
#include "../../src/master/audit.h"
#include "../../src/master/registry.h"
#include "../../src/master/store.h"
#include "store_testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S(x) ((char *)(uintptr_t)(x))

/* ==== Action and resource derivation ==== */

struct describe_case {
    const char *pattern;
    enum api_method method;
    const char *params[API_MAX_PARAMS];
    const char *body; /* JSON or NULL */
    const char *type, *name, *event, *service;
};

static void test_describe(void **state)
{
    (void)state;
    static const struct describe_case cases[] = {
        {"/v1/grids", API_POST, {0}, "{\"name\":\"prod\"}", "grids", "prod",
         "create", NULL},
        {"/v1/grids/:grid", API_PUT, {"prod"}, "{}", "grids", "prod",
         "update", NULL},
        {"/v1/grids/:grid", API_DELETE, {"prod"}, NULL, "grids", "prod",
         "delete", NULL},
        {"/v1/grids/:grid/secrets", API_POST, {"G"},
         "{\"name\":\"DB_PASS\",\"value\":\"x\"}", "secrets", "G/DB_PASS",
         "create", NULL},
        {"/v1/secrets/:grid/:name", API_GET, {"G", "DB_PASS"}, NULL,
         "secrets", "G/DB_PASS", "show", NULL},
        {"/v1/secrets/:grid/:name", API_PUT, {"G", "DB_PASS"},
         "{\"value\":\"y\"}", "secrets", "G/DB_PASS", "update", NULL},
        {"/v1/grids/:grid/services", API_POST, {"G"},
         "{\"name\":\"web\",\"image\":\"nginx\"}", "services", "G/null/web",
         "create", "G/null/web"},
        {"/v1/grids/:grid/services", API_POST, {"G"},
         "{\"name\":\"db\",\"stack\":\"app\"}", "services", "G/app/db",
         "create", "G/app/db"},
        {"/v1/services/:grid/:stack/:svc/deploy", API_POST,
         {"G", "null", "web"}, "{}", "services", "G/null/web", "deploy",
         "G/null/web"},
        {"/v1/services/:grid/:stack/:svc/scale", API_POST,
         {"G", "null", "web"}, "{\"instances\":3}", "services", "G/null/web",
         "scale", "G/null/web"},
        {"/v1/services/:grid/:stack/:svc", API_DELETE, {"G", "s", "web"},
         NULL, "services", "G/s/web", "delete", "G/s/web"},
        {"/v1/services/:grid/:stack/:svc/instances/:id", API_DELETE,
         {"G", "null", "web", "2"}, NULL, "instances", "G/null/web/2",
         "delete", "G/null/web"},
        {"/v1/services/:grid/:stack/:svc/envs", API_POST,
         {"G", "null", "web"}, "{\"env\":\"A=1\"}", "envs", "G/null/web",
         "create", "G/null/web"},
        {"/v1/grids/:grid/users", API_POST, {"G"},
         "{\"email\":\"bob@example.com\"}", "users", "G/bob@example.com",
         "create", NULL},
        {"/v1/grids/:grid/users/:email", API_DELETE, {"G", "bob"}, NULL,
         "users", "G/bob", "delete", NULL},
        {"/v1/grids/:grid/external_registries", API_POST, {"G"},
         "{\"url\":\"https://r.example.com:5000/\",\"password\":\"p\"}",
         "external_registries", "G/r.example.com:5000", "create", NULL},
        {"/v1/grids/:grid/external_registries", API_POST, {"G"},
         "{\"url\":\"ftp://bad\"}", "external_registries", "G", "create",
         NULL},
        {"/v1/external_registries/:grid/:name", API_DELETE,
         {"G", "r.example.com"}, NULL, "external_registries",
         "G/r.example.com", "delete", NULL},
        {"/v1/nodes/:grid/:node/token", API_PUT, {"G", "n1"}, "{}", "token",
         "G/n1", "update", NULL},
        {"/oauth2/tokens/:id", API_DELETE, {"abc"}, NULL, "tokens", "abc",
         "delete", NULL},
        {"/oauth2/authorize", API_POST, {0}, "{}", "oauth2", "",
         "authorize", NULL},
        {"/v1/config", API_PATCH, {0}, "{\"a\":1}", "config", "", "update",
         NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct describe_case *c = &cases[i];
        json_t *body = c->body ? json_loads(c->body, 0, NULL) : NULL;
        struct audit_target t;
        char *params[API_MAX_PARAMS];
        for (int k = 0; k < API_MAX_PARAMS; k++)
            params[k] = S(c->params[k]);
        audit_describe(c->pattern, c->method, params, body, &t);
        if (strcmp(t.resource_type, c->type) != 0 ||
            strcmp(t.resource_name, c->name) != 0 ||
            strcmp(t.event_name, c->event) != 0 ||
            (c->service == NULL) != (t.service_id == NULL) ||
            (c->service != NULL && strcmp(c->service, t.service_id) != 0))
            fail_msg("case %zu (%s): got %s %s %s %s", i, c->pattern,
                     t.resource_type, t.resource_name, t.event_name,
                     t.service_id ? t.service_id : "(null)");
        audit_target_release(&t);
        json_decref(body);
    }
}

static void test_describe_cuts_long_names(void **state)
{
    (void)state;
    char *longname = cp_malloc(5000);
    memset(longname, 'a', 4999);
    longname[4999] = '\0';
    json_t *body = json_pack("{s:s}", "name", longname);
    char *params[API_MAX_PARAMS] = {S("G")};
    struct audit_target t;
    audit_describe("/v1/grids/:grid/secrets", API_POST, params, body, &t);
    assert_true(strlen(t.resource_name) <= 256);
    assert_true(strncmp(t.resource_name, "G/aaa", 5) == 0);
    audit_target_release(&t);
    json_decref(body);
    cp_free(longname);
}

static void test_is_wanted(void **state)
{
    (void)state;
    struct api_route plain = {API_GET, "/v1/grids", NULL, 0};
    struct api_route audited = {API_GET, "/v1/secrets/:grid/:name", NULL,
                                API_AUDIT_READ};
    assert_false(audit_is_wanted(&plain, API_GET));
    assert_false(audit_is_wanted(&plain, API_HEAD));
    assert_true(audit_is_wanted(&audited, API_GET));
    assert_true(audit_is_wanted(&plain, API_POST));
    assert_true(audit_is_wanted(&plain, API_PUT));
    assert_true(audit_is_wanted(&plain, API_PATCH));
    assert_true(audit_is_wanted(&plain, API_DELETE));
}

/* ==== Body filtering ==== */

static void test_filter(void **state)
{
    (void)state;
    json_t *in = json_loads(
        "{\"name\":\"DB\",\"value\":\"s3cret\",\"Password\":\"p\","
        "\"token\":\"t\",\"refresh_token\":\"r\",\"code\":\"c\","
        "\"client_secret\":\"cs\",\"secret\":\"x\",\"db_password\":\"dp\","
        "\"api_key\":\"k\",\"upsert\":true,\"empty\":null,\"value2\":\"v2\","
        "\"nested\":{\"list\":[{\"password\":\"deep\",\"ok\":1}]},"
        "\"secrets\":[{\"secret\":\"A\",\"name\":\"B\",\"type\":\"env\"}],"
        "\"env\":[\"A=1\",\"DB_PASSWORD=envpw\",\"Api_Token=tk=x\",\"NOEQ\"],"
        "\"token_x\":null}",
        0, NULL);
    assert_non_null(in);
    json_t *out = audit_filter_body(in);
    char *text = cp_json_dump(out);
    /* No secret value survives anywhere in the text. */
    static const char *const gone[] = {"s3cret", "\"p\"",  "\"t\"",
                                       "\"r\"",  "\"c\"",  "\"cs\"",
                                       "\"x\"",  "\"dp\"", "\"k\"",
                                       "deep",   "\"A\"",  "\"B\"",
                                       "envpw",  "tk=x"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        if (strstr(text, gone[i]) != NULL)
            fail_msg("%s survived filtering: %s", gone[i], text);
    assert_string_equal(cp_json_str(out, "value"), AUDIT_FILTERED);
    assert_string_equal(cp_json_str(out, "Password"), AUDIT_FILTERED);
    assert_string_equal(cp_json_str(out, "db_password"), AUDIT_FILTERED);
    /* What is not secret stays as it was. */
    assert_string_equal(cp_json_str(out, "name"), "DB");
    assert_string_equal(cp_json_str(out, "value2"), "v2");
    assert_true(json_is_true(json_object_get(out, "upsert")));
    assert_true(json_is_null(json_object_get(out, "empty")));
    json_t *nested = json_array_get(
        json_object_get(json_object_get(out, "nested"), "list"), 0);
    assert_string_equal(cp_json_str(nested, "password"), AUDIT_FILTERED);
    assert_int_equal(cp_json_int(nested, "ok", 0), 1);
    json_t *sec = json_array_get(json_object_get(out, "secrets"), 0);
    assert_string_equal(cp_json_str(sec, "type"), AUDIT_FILTERED);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(out, "env"), 0)),
                        "A=1");
    json_t *env = json_object_get(out, "env");
    assert_string_equal(json_string_value(json_array_get(env, 1)),
                        "DB_PASSWORD=" AUDIT_FILTERED);
    assert_string_equal(json_string_value(json_array_get(env, 2)),
                        "Api_Token=" AUDIT_FILTERED);
    assert_string_equal(json_string_value(json_array_get(env, 3)), "NOEQ");
    /* The input is left alone. */
    assert_string_equal(cp_json_str(in, "value"), "s3cret");
    assert_null(audit_filter_body(NULL));
    cp_free(text);
    json_decref(out);
    json_decref(in);
}

static void test_entry_json(void **state)
{
    (void)state;
    struct store_audit a = {0};
    a.seq = 42;
    memcpy(a.grid_id, "0123456789abcdef01234567", 25);
    a.grid_name = S("G");
    memcpy(a.user_id, "aaaaaaaaaaaaaaaaaaaaaaaa", 25);
    a.user_email = S("admin");
    a.resource_type = S("secrets");
    a.resource_name = a.resource_id = S("G/DB");
    a.event_name = S("create");
    a.event_status = S("success");
    a.status = 201;
    a.method = S("POST");
    a.path = S("/v1/grids/G/secrets");
    a.source_ip = S("10.0.0.1");
    a.user_agent = S("kontena-cli/1.5");
    a.request_body = S("{\"name\":\"DB\",\"value\":\"[FILTERED]\"}");
    a.created_at = 1700000000000;
    json_t *j = audit_entry_json(&a);
    assert_string_equal(cp_json_str(j, "time"), "2023-11-14T22:13:20.000Z");
    assert_string_equal(cp_json_str(j, "grid"), "G");
    assert_string_equal(cp_json_str(j, "grid_id"), a.grid_id);
    assert_string_equal(cp_json_str(j, "service"), "");
    assert_string_equal(cp_json_str(j, "resource_type"), "secrets");
    assert_string_equal(cp_json_str(j, "event_name"), "create");
    assert_string_equal(cp_json_str(j, "event_status"), "success");
    assert_string_equal(cp_json_str(j, "source_ip"), "10.0.0.1");
    assert_string_equal(cp_json_str(j, "user_agent"), "kontena-cli/1.5");
    json_t *who = json_object_get(j, "user_identity");
    assert_string_equal(cp_json_str(who, "email"), "admin");
    assert_string_equal(cp_json_str(who, "id"), a.user_id);
    assert_string_equal(
        cp_json_str(json_object_get(j, "request_body"), "value"),
        AUDIT_FILTERED);
    assert_int_equal(cp_json_int(j, "status", 0), 201);
    json_decref(j);
    /* A body cut at AUDIT_BODY_MAX is shown as text. */
    a.request_body = S("{\"name\":\"D");
    j = audit_entry_json(&a);
    assert_string_equal(cp_json_str(j, "request_body"), "{\"name\":\"D");
    json_decref(j);
}

static void test_cli_cells(void **state)
{
    (void)state;
    json_t *e = json_pack("{s:s, s:i, s:s, s:s}", "event_name", "delete",
                          "status", 403, "resource_type", "grids",
                          "resource_name", "prod");
    char *a = cmd_audit_action(e);
    char *r = cmd_audit_resource(e);
    assert_string_equal(a, "delete (403)");
    assert_string_equal(r, "grids prod");
    cp_free(a);
    cp_free(r);
    json_decref(e);
}

/* ==== Registry names ==== */

static void test_registry_names(void **state)
{
    (void)state;
    static const char *const good[][2] = {
        {"https://registry.example.com", "registry.example.com"},
        {"https://registry.example.com/v2/", "registry.example.com"},
        {"http://registry.example.com:80/", "registry.example.com"},
        {"https://registry.example.com:443", "registry.example.com"},
        {"http://registry.example.com:443", "registry.example.com"},
        {"https://r.example.com:5000/v2/", "r.example.com:5000"},
        {"http://localhost:5000", "localhost:5000"},
        {"HTTPS://Quay.io", "quay.io"},
        {"https://Registry.EXAMPLE.com:5000/V2/", "registry.example.com:5000"},
        {"http://LOCALHOST:5000", "localhost:5000"},
        {"https://[::ABCD]:5000/", "[::abcd]:5000"},
        {"https://index.docker.io/v2/", "index.docker.io"},
        {"https://[::1]:5000/", "[::1]:5000"},
        {"https://10.0.0.2:8443?x#y", "10.0.0.2:8443"},
    };
    char out[REGISTRY_NAME_MAX], why[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (registry_name_from_url(good[i][0], out, sizeof(out), why,
                                   sizeof(why)) != 0)
            fail_msg("%s: %s", good[i][0], why);
        assert_string_equal(out, good[i][1]);
    }
    static const char *const bad[] = {
        "",
        "registry.example.com",
        "ftp://registry.example.com",
        "https://",
        "https:///v2",
        "https://exa mple.com",
        "https://example.com:0",
        "https://example.com:65536",
        "https://example.com:5x",
        "https://example.com:",
        "https://user:pass@example.com",
        "https://ex%ample.com",
        "https://[zz]:1",
        "https://example.com/\tx",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (registry_name_from_url(bad[i], out, sizeof(out), why,
                                   sizeof(why)) != CP_EINVAL)
            fail_msg("%s accepted as %s", bad[i], out);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(registry_name_from_url(NULL, out, sizeof(out), why,
                                            sizeof(why)),
                     CP_EINVAL);
}

static void test_image_registry(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"busybox", CP_REGISTRY_DEFAULT},
        {"busybox:1.36", CP_REGISTRY_DEFAULT},
        {"library/nginx:latest", CP_REGISTRY_DEFAULT},
        {"kontena/agent", CP_REGISTRY_DEFAULT},
        {"quay.io/coreos/etcd:v3", "quay.io"},
        {"r.example.com:5000/app:1", "r.example.com:5000"},
        {"localhost/app", "localhost"},
        {"localhost:5000/app", "localhost:5000"},
        {"index.docker.io/library/redis", "index.docker.io"},
        {"", CP_REGISTRY_DEFAULT},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_image_registry(cases[i][0], out, sizeof(out));
        if (strcmp(out, cases[i][1]) != 0)
            fail_msg("%s: %s", cases[i][0], out);
    }
    cp_image_registry(NULL, out, sizeof(out));
    assert_string_equal(out, CP_REGISTRY_DEFAULT);
}

/* ==== The agent: X-Registry-Auth and image_credentials ==== */

/* Decodes padded base64url into a new NUL-terminated string. */
static char *b64url_decode(const char *s)
{
    char *std = cp_strdup(s);
    for (char *p = std; *p != '\0'; p++) {
        if (*p == '-')
            *p = '+';
        else if (*p == '_')
            *p = '/';
        else if (*p == '+' || *p == '/')
            fail_msg("standard base64 character in %s", s);
    }
    unsigned char *raw = NULL;
    size_t len = 0;
    assert_int_equal(cp_base64_decode(std, &raw, &len), 0);
    char *out = cp_malloc(len + 1);
    memcpy(out, raw, len);
    out[len] = '\0';
    cp_free(raw);
    cp_free(std);
    return out;
}

static void test_registry_auth(void **state)
{
    (void)state;
    /* Characters that base64 turns into '+' and '/' in the standard
     * alphabet, and a password that needs JSON escaping. */
    const char *pass = "p\"a\\ss>>>???~~~";
    char *h = engine_registry_auth("bob", pass, "bob@example.com",
                                   "https://r.example.com:5000/v2/");
    assert_true(strlen(h) % 4 == 0);
    char *text = b64url_decode(h);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(cp_json_str(j, "username"), "bob");
    assert_string_equal(cp_json_str(j, "password"), pass);
    assert_string_equal(cp_json_str(j, "email"), "bob@example.com");
    assert_string_equal(cp_json_str(j, "serveraddress"),
                        "https://r.example.com:5000/v2/");
    json_decref(j);
    cp_free(text);
    cp_free(h);

    h = engine_registry_auth("u", "p", NULL, "quay.io");
    text = b64url_decode(h);
    j = json_loads(text, 0, NULL);
    assert_false(cp_json_has(j, "email"));
    assert_string_equal(cp_json_str(j, "serveraddress"), "quay.io");
    json_decref(j);
    cp_free(text);
    cp_free(h);
}

static json_t *base_pod(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "id",
                     "5a1000000000000000000001/1", "desired_state", "running",
                     "service_id", "5a1000000000000000000001", "service_name",
                     "web", "instance_number", 1, "image_name",
                     "r.example.com:5000/app:1");
}

static void test_pod_credentials(void **state)
{
    (void)state;
    char err[256];
    struct pod p;
    json_t *o = base_pod();
    json_object_set_new(o, "image_credentials", json_null());
    assert_int_equal(pods_parse(o, &p, err, sizeof(err)), 0);
    assert_null(p.creds);
    pod_release(&p);

    json_object_set_new(o, "image_credentials",
                        json_pack("{s:s, s:s, s:n}", "username", "bob",
                                  "password", "hunter2", "email"));
    assert_int_equal(pods_parse(o, &p, err, sizeof(err)), 0);
    assert_non_null(p.creds);
    assert_string_equal(p.creds->username, "bob");
    assert_string_equal(p.creds->password, "hunter2");
    assert_null(p.creds->email);
    assert_null(p.creds->serveraddress);
    pod_release(&p);

    /* A bad member names the field, never the secret. */
    json_object_set_new(o, "image_credentials",
                        json_pack("{s:s, s:i}", "username", "hunter3",
                                  "password", 7));
    assert_int_equal(pods_parse(o, &p, err, sizeof(err)), CP_EINVAL);
    assert_non_null(strstr(err, "image_credentials.password"));
    assert_null(strstr(err, "hunter3"));
    json_object_set_new(o, "image_credentials", json_string("x"));
    assert_int_equal(pods_parse(o, &p, err, sizeof(err)), CP_EINVAL);
    assert_non_null(strstr(err, "image_credentials"));
    json_decref(o);
}

/* ==== The store ==== */

struct fixture {
    struct testdb db;
    struct store *st;
    char grid_id[STORE_ID_LEN + 1];
    char grid2_id[STORE_ID_LEN + 1];
};

static void make_grid(struct store *st, const char *name, const char *user,
                      char id[STORE_ID_LEN + 1])
{
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t)name;
    g.token_hash = (char *)(uintptr_t)name; /* unique is all that counts */
    g.token_sealed = (char *)(uintptr_t) "sealed";
    g.initial_size = 1;
    g.subnet = (char *)(uintptr_t) "10.81.0.0/16";
    g.supernet = (char *)(uintptr_t) "10.80.0.0/12";
    const char *field = NULL;
    assert_int_equal(ST_CALL(st, grid_create, &g, user, &field), 0);
    memcpy(id, g.id, STORE_ID_LEN + 1);
}

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, NULL);
    char err[256] = "";
    if (store_open(f->db.url, &f->st, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    assert_string_equal(store_ops_of(f->st)->name, testdb_backend());
    struct store_user u = {0};
    store_new_id(u.id);
    u.email = (char *)(uintptr_t) "admin";
    assert_int_equal(ST_CALL(f->st, user_create, &u), 0);
    make_grid(f->st, "one", u.id, f->grid_id);
    make_grid(f->st, "two", u.id, f->grid2_id);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    testdb_drop(&f->db);
    cp_free(f);
    return 0;
}

static void put_registry(struct store *st, const char *grid_id,
                         const char *name, const char *sealed, int want)
{
    struct store_registry r = {0};
    store_new_id(r.id);
    memcpy(r.grid_id, grid_id, sizeof(r.grid_id));
    r.name = (char *)(uintptr_t)name;
    r.url = (char *)(uintptr_t) "https://x/";
    r.username = (char *)(uintptr_t) "bob";
    r.password_sealed = (char *)(uintptr_t)sealed;
    assert_int_equal(ST_CALL(st, registry_create, &r), want);
}

static void test_store_registries(void **state)
{
    struct fixture *f = *state;
    unsigned char key[CP_KEY_LEN];
    memset(key, 7, sizeof(key));
    char *sealed = cp_seal(key, "hunter2", 7);
    put_registry(f->st, f->grid_id, "b.example.com", sealed, 0);
    put_registry(f->st, f->grid_id, "a.example.com:5000", sealed, 0);
    put_registry(f->st, f->grid_id, "b.example.com", sealed, CP_ECONFLICT);
    put_registry(f->st, f->grid2_id, "b.example.com", sealed, 0);
    put_registry(f->st, "000000000000000000000000", "c", sealed,
                 CP_ENOTFOUND);

    struct store_registry_list l = {0};
    assert_int_equal(ST_CALL(f->st, registry_list, f->grid_id, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].name, "a.example.com:5000");
    assert_string_equal(l.items[1].name, "b.example.com");
    assert_null(l.items[0].email);
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(cp_open(key, l.items[0].password_sealed, &plain, &len),
                     0);
    assert_string_equal(plain, "hunter2");
    cp_free(plain);
    store_registry_list_release(&l);

    struct store_registry r = {0};
    assert_int_equal(
        ST_CALL(f->st, registry_get, f->grid2_id, "b.example.com", &r), 0);
    assert_string_equal(r.username, "bob");
    store_registry_release(&r);
    assert_int_equal(ST_CALL(f->st, registry_get, f->grid2_id,
                             "a.example.com:5000", &r),
                     CP_ENOTFOUND);
    assert_int_equal(
        ST_CALL(f->st, registry_delete, f->grid_id, "b.example.com"), 0);
    assert_int_equal(
        ST_CALL(f->st, registry_delete, f->grid_id, "b.example.com"),
        CP_ENOTFOUND);
    /* The other grid's registry of the same name is still there. */
    assert_int_equal(
        ST_CALL(f->st, registry_get, f->grid2_id, "b.example.com", &r), 0);
    store_registry_release(&r);
    cp_free(sealed);
}

/* Key rotation re-seals a password with compare-and-set: only while it
 * is still what was read, and only that registry. */
static void test_store_registry_reseal(void **state)
{
    struct fixture *f = *state;
    unsigned char key[CP_KEY_LEN], key2[CP_KEY_LEN];
    memset(key, 7, sizeof(key));
    memset(key2, 9, sizeof(key2));
    char *old = cp_seal(key, "hunter2", 7);
    char *fresh = cp_seal(key2, "hunter2", 7);
    char *other = cp_seal(key2, "changed", 7);
    put_registry(f->st, f->grid_id, "r.example.com", old, 0);
    put_registry(f->st, f->grid2_id, "r.example.com", old, 0);
    struct store_registry r = {0}, r2 = {0};
    assert_int_equal(
        ST_CALL(f->st, registry_get, f->grid_id, "r.example.com", &r), 0);

    assert_int_equal(
        ST_CALL(f->st, registry_reseal, r.id, old, fresh), 0);
    /* Stale: the stored value is no longer old. */
    assert_int_equal(
        ST_CALL(f->st, registry_reseal, r.id, old, other), CP_ECONFLICT);
    assert_int_equal(ST_CALL(f->st, registry_reseal,
                             "000000000000000000000000", old, fresh),
                     CP_ENOTFOUND);
    store_registry_release(&r);
    assert_int_equal(
        ST_CALL(f->st, registry_get, f->grid_id, "r.example.com", &r), 0);
    assert_string_equal(r.password_sealed, fresh);
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(cp_open(key2, r.password_sealed, &plain, &len), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(plain, "hunter2", 7);
    cp_free(plain);
    assert_string_equal(r.username, "bob"); /* the rest is untouched */
    /* The other grid's registry of the same name is not re-sealed. */
    assert_int_equal(
        ST_CALL(f->st, registry_get, f->grid2_id, "r.example.com", &r2), 0);
    assert_string_equal(r2.password_sealed, old);
    store_registry_release(&r2);

    assert_int_equal(
        ST_CALL(f->st, registry_delete, f->grid_id, "r.example.com"), 0);
    assert_int_equal(ST_CALL(f->st, registry_reseal, r.id, fresh, other),
                     CP_ENOTFOUND);
    store_registry_release(&r);
    cp_free(old);
    cp_free(fresh);
    cp_free(other);
}

static void append(struct store *st, const char *grid_id, int i)
{
    char name[32];
    snprintf(name, sizeof(name), "e%d", i);
    struct store_audit a = {0};
    if (grid_id != NULL)
        memcpy(a.grid_id, grid_id, sizeof(a.grid_id));
    a.user_email = (char *)(uintptr_t) "admin";
    a.resource_type = (char *)(uintptr_t) "grids";
    a.resource_name = name;
    a.event_name = (char *)(uintptr_t) "create";
    a.event_status = (char *)(uintptr_t) "success";
    a.status = 201;
    assert_int_equal(ST_CALL(st, audit_append, &a), 0);
}

static void test_store_audit(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 10; i++)
        append(f->st, i % 2 == 0 ? f->grid_id : (i == 9 ? NULL : f->grid2_id),
               i);
    struct store_audit_list l = {0};
    assert_int_equal(ST_CALL(f->st, audit_list, NULL, 100, &l), 0);
    assert_int_equal(l.len, 10);
    assert_string_equal(l.items[0].resource_name, "e9"); /* newest first */
    assert_string_equal(l.items[9].resource_name, "e0");
    assert_string_equal(l.items[0].grid_id, "");
    assert_true(l.items[0].seq > l.items[1].seq);
    assert_true(l.items[0].created_at > 0);
    store_audit_list_release(&l);

    assert_int_equal(ST_CALL(f->st, audit_list, f->grid_id, 3, &l), 0);
    assert_int_equal(l.len, 3);
    for (size_t i = 0; i < l.len; i++)
        assert_string_equal(l.items[i].grid_id, f->grid_id);
    assert_string_equal(l.items[0].resource_name, "e8");
    store_audit_list_release(&l);

    int deleted = -1;
    assert_int_equal(ST_CALL(f->st, audit_trim, 4, &deleted), 0);
    assert_int_equal(deleted, 6);
    assert_int_equal(ST_CALL(f->st, audit_list, NULL, 100, &l), 0);
    assert_int_equal(l.len, 4);
    assert_string_equal(l.items[3].resource_name, "e6");
    store_audit_list_release(&l);
    assert_int_equal(ST_CALL(f->st, audit_trim, 4, &deleted), 0);
    assert_int_equal(deleted, 0);
    /* Entries outlive their grid. */
    assert_int_equal(ST_CALL(f->st, grid_delete, f->grid_id), 0);
    assert_int_equal(ST_CALL(f->st, audit_list, NULL, 100, &l), 0);
    assert_int_equal(l.len, 4);
    store_audit_list_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_describe_cuts_long_names),
        cmocka_unit_test(test_is_wanted),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_entry_json),
        cmocka_unit_test(test_cli_cells),
        cmocka_unit_test(test_registry_names),
        cmocka_unit_test(test_image_registry),
        cmocka_unit_test(test_registry_auth),
        cmocka_unit_test(test_pod_credentials),
        cmocka_unit_test_setup_teardown(test_store_registries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_registry_reseal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_audit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
