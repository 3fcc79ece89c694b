/* Unit tests of the service model (src/master/service_model.c; spec 3.2
 * "Service create", "Service JSON", "Container JSON"): each field good and
 * bad, several errors at once, update merge semantics, the name rules,
 * the JSON shapes, and every field fed every JSON type without a crash.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/master/service_model.h"

#include <string.h>

/* ==== Helpers ==== */

/* A string literal where the store structs want char *. */
#define S(lit) ((char *)(uintptr_t)(lit))

static json_t *parse(const char *text)
{
    /* Scalars too: the fields are fed every JSON type. */
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    return j;
}

/* Validates text as a create; returns the spec, errors in *errors. */
static json_t *create(const char *text, json_t **errors, int *rc)
{
    json_t *body = parse(text);
    json_t *spec = NULL;
    *errors = json_object();
    *rc = service_validate(body, NULL, &spec, *errors);
    json_decref(body);
    assert_non_null(spec);
    return spec;
}

static json_t *create_ok(const char *text)
{
    json_t *errors;
    int rc;
    json_t *spec = create(text, &errors, &rc);
    if (rc != 0) {
        char *e = cp_json_dump(errors);
        print_error("unexpected errors: %s\n", e);
        cp_free(e);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(json_object_size(errors), 0);
    json_decref(errors);
    return spec;
}

/* Asserts that text fails with an error on field (and returns its
 * message for further checks; caller frees). */
static char *create_bad(const char *text, const char *field)
{
    json_t *errors;
    int rc;
    json_t *spec = create(text, &errors, &rc);
    assert_int_equal(rc, CP_EINVAL);
    const char *msg = cp_json_str(errors, field);
    if (msg == NULL) {
        char *e = cp_json_dump(errors);
        print_error("no error on %s in %s for %s\n", field, e, text);
        cp_free(e);
    }
    assert_non_null(msg);
    char *out = cp_strdup(msg);
    json_decref(errors);
    json_decref(spec);
    return out;
}

static void bad(const char *text, const char *field)
{
    cp_free(create_bad(text, field));
}

static void assert_json(const json_t *v, const char *expected)
{
    json_t *e = parse(expected);
    if (!json_equal(v, e)) {
        char *got = cp_json_dump(v);
        print_error("got %s, expected %s\n", got, expected);
        cp_free(got);
    }
    assert_true(json_equal(v, e));
    json_decref(e);
}

/* ==== Create ==== */

static void test_defaults(void **state)
{
    (void)state;
    json_t *s = create_ok("{\"image\":\"nginx\"}");
    assert_string_equal(cp_json_str(s, "image"), "nginx:latest");
    assert_int_equal(cp_json_int(s, "instances", -1), 1);
    assert_string_equal(cp_json_str(s, "strategy"), "ha");
    assert_string_equal(cp_json_str(s, "net"), "bridge");
    assert_true(json_is_null(json_object_get(s, "cmd")));
    assert_json(json_object_get(s, "env"), "[]");
    assert_json(json_object_get(s, "ports"), "[]");
    assert_json(json_object_get(s, "deploy_opts"),
                "{\"wait_for_port\":null,\"min_health\":0.8,"
                "\"interval\":null}");
    assert_true(json_is_null(json_object_get(s, "health_check")));
    assert_int_equal(cp_json_int(s, "stop_grace_period", -1), 10);
    assert_false(cp_json_bool(s, "stateful", true));
    assert_json(json_object_get(s, "log_opts"), "{}");
    json_decref(s);
}

static void test_full_create(void **state)
{
    (void)state;
    json_t *s = create_ok(
        "{\"name\":\"web\",\"image\":\"registry:5000/team/nginx\","
        "\"instances\":2,\"strategy\":\"daemon\","
        "\"cmd\":\"nginx  -g daemon off;\",\"entrypoint\":[\"/init\"],"
        "\"env\":[\"FOO=bar\",\"EMPTY=\",\"FOO=baz\"],"
        "\"secrets\":[{\"secret\":\"DB_PASS\",\"name\":\"DB_PASSWORD\"}],"
        "\"ports\":[{\"node_port\":80,\"container_port\":8080},"
        "\"10.0.0.1:53:53/udp\"],"
        "\"volumes\":[\"/data\",\"/host/x:/x:ro\",\"myvol:/var/lib/x\"],"
        "\"affinity\":[\"label==az=a\",\"service!=db\",\"node=~n.*\"],"
        "\"cpus\":0.5,\"cpu_shares\":512,\"memory\":\"512m\","
        "\"memory_swap\":1073741824,\"user\":\"app\",\"privileged\":true,"
        "\"cap_add\":[\"NET_ADMIN\"],\"cap_drop\":[],\"net\":\"host\","
        "\"log_driver\":\"json-file\",\"log_opts\":{\"max-size\":\"10m\","
        "\"max-file\":3},"
        "\"deploy_opts\":{\"wait_for_port\":80,\"min_health\":0.5,"
        "\"interval\":\"1h\"},"
        "\"health_check\":{\"protocol\":\"http\",\"port\":80},"
        "\"hooks\":{\"pre_start\":[{\"name\":\"migrate\",\"cmd\":\"rake "
        "db:migrate\",\"instances\":\"1\",\"oneshot\":true}],"
        "\"post_start\":[{\"name\":\"warm\",\"cmd\":\"curl x\"}]},"
        "\"stop_signal\":\"SIGQUIT\",\"stop_grace_period\":\"1m30s\","
        "\"links\":[{\"name\":\"db\"},\"other/api:api2\"],"
        "\"read_only\":true}");
    assert_string_equal(cp_json_str(s, "image"),
                        "registry:5000/team/nginx:latest");
    assert_json(json_object_get(s, "cmd"),
                "[\"nginx\",\"-g\",\"daemon\",\"off;\"]");
    assert_json(json_object_get(s, "env"), "[\"EMPTY=\",\"FOO=baz\"]");
    assert_json(json_object_get(s, "secrets"),
                "[{\"secret\":\"DB_PASS\",\"name\":\"DB_PASSWORD\","
                "\"type\":\"env\"}]");
    assert_json(json_object_get(s, "ports"),
                "[{\"ip\":\"0.0.0.0\",\"protocol\":\"tcp\",\"node_port\":80,"
                "\"container_port\":8080},{\"ip\":\"10.0.0.1\","
                "\"protocol\":\"udp\",\"node_port\":53,"
                "\"container_port\":53}]");
    assert_int_equal(cp_json_int(s, "memory", 0), 512LL * 1024 * 1024);
    assert_json(json_object_get(s, "log_opts"),
                "{\"max-size\":\"10m\",\"max-file\":\"3\"}");
    assert_json(json_object_get(s, "deploy_opts"),
                "{\"wait_for_port\":80,\"min_health\":0.5,"
                "\"interval\":3600}");
    assert_json(json_object_get(s, "health_check"),
                "{\"protocol\":\"http\",\"port\":80,\"uri\":\"/\","
                "\"timeout\":10,\"interval\":60,\"initial_delay\":10}");
    assert_json(json_object_get(s, "hooks"),
                "[{\"name\":\"migrate\",\"type\":\"pre_start\","
                "\"cmd\":\"rake db:migrate\",\"instances\":[\"1\"],"
                "\"oneshot\":true},{\"name\":\"warm\","
                "\"type\":\"post_start\",\"cmd\":\"curl x\","
                "\"instances\":[\"*\"],\"oneshot\":false}]");
    assert_int_equal(cp_json_int(s, "stop_grace_period", 0), 90);
    assert_json(json_object_get(s, "links"),
                "[{\"name\":\"db\",\"alias\":\"db\"},"
                "{\"name\":\"other/api\",\"alias\":\"api2\"}]");
    /* Keys that are not service fields stay out of the spec. */
    assert_null(json_object_get(s, "name"));
    json_decref(s);
}

static void test_bad_fields(void **state)
{
    (void)state;
    bad("{}", "image");
    bad("{\"image\":\"\"}", "image");
    bad("{\"image\":\"a b\"}", "image");
    bad("{\"image\":5}", "image");
    bad("{\"image\":\"x\",\"instances\":-1}", "instances");
    bad("{\"image\":\"x\",\"instances\":1.5}", "instances");
    bad("{\"image\":\"x\",\"instances\":\"2\"}", "instances");
    bad("{\"image\":\"x\",\"cmd\":[1]}", "cmd");
    bad("{\"image\":\"x\",\"entrypoint\":{}}", "entrypoint");
    bad("{\"image\":\"x\",\"env\":[\"NOEQUALS\"]}", "env");
    bad("{\"image\":\"x\",\"env\":[\"=v\"]}", "env");
    bad("{\"image\":\"x\",\"env\":\"A=1\"}", "env");
    bad("{\"image\":\"x\",\"secrets\":[{\"name\":\"A\"}]}", "secrets");
    bad("{\"image\":\"x\",\"secrets\":[{\"secret\":\"s\",\"name\":\"A\","
        "\"type\":\"file\"}]}",
        "secrets");
    bad("{\"image\":\"x\",\"ports\":[{\"node_port\":0,"
        "\"container_port\":80}]}",
        "ports");
    bad("{\"image\":\"x\",\"ports\":[{\"node_port\":80,"
        "\"container_port\":70000}]}",
        "ports");
    bad("{\"image\":\"x\",\"ports\":[{\"node_port\":80,\"container_port\":80,"
        "\"protocol\":\"sctp\"}]}",
        "ports");
    bad("{\"image\":\"x\",\"ports\":[\"80\"]}", "ports");
    bad("{\"image\":\"x\",\"ports\":[\"1.2.3:80:80\"]}", "ports");
    bad("{\"image\":\"x\",\"ports\":[\"80:80\",\"80:81\"]}", "ports");
    bad("{\"image\":\"x\",\"volumes\":[\"data\"]}", "volumes");
    bad("{\"image\":\"x\",\"volumes\":[\"/a:b\"]}", "volumes");
    bad("{\"image\":\"x\",\"volumes\":[\"/a:/b:bogus\"]}", "volumes");
    bad("{\"image\":\"x\",\"volumes\":[\"/a:/b:ro:x\"]}", "volumes");
    bad("{\"image\":\"x\",\"affinity\":[\"label\"]}", "affinity");
    bad("{\"image\":\"x\",\"affinity\":[\"==x\"]}", "affinity");
    bad("{\"image\":\"x\",\"strategy\":\"spread\"}", "strategy");
    bad("{\"image\":\"x\",\"stateful\":\"yes\"}", "stateful");
    bad("{\"image\":\"x\",\"cpus\":0}", "cpus");
    bad("{\"image\":\"x\",\"cpu_shares\":2000}", "cpu_shares");
    bad("{\"image\":\"x\",\"memory\":\"lots\"}", "memory");
    bad("{\"image\":\"x\",\"memory\":-5}", "memory");
    bad("{\"image\":\"x\",\"memory_swap\":\"12q\"}", "memory_swap");
    bad("{\"image\":\"x\",\"user\":1}", "user");
    bad("{\"image\":\"x\",\"privileged\":1}", "privileged");
    bad("{\"image\":\"x\",\"cap_add\":\"NET_ADMIN\"}", "cap_add");
    bad("{\"image\":\"x\",\"net\":\"overlay\"}", "net");
    bad("{\"image\":\"x\",\"net\":\"container:\"}", "net");
    bad("{\"image\":\"x\",\"pid\":\"container\"}", "pid");
    bad("{\"image\":\"x\",\"log_opts\":{\"a\":[1]}}", "log_opts");
    bad("{\"image\":\"x\",\"deploy_opts\":{\"min_health\":1.5}}",
        "deploy_opts");
    bad("{\"image\":\"x\",\"deploy_opts\":{\"wait_for_port\":0}}",
        "deploy_opts");
    bad("{\"image\":\"x\",\"deploy_opts\":{\"interval\":\"soon\"}}",
        "deploy_opts");
    bad("{\"image\":\"x\",\"health_check\":{\"protocol\":\"udp\","
        "\"port\":1}}",
        "health_check");
    bad("{\"image\":\"x\",\"health_check\":{\"protocol\":\"http\"}}",
        "health_check");
    bad("{\"image\":\"x\",\"health_check\":{\"protocol\":\"http\","
        "\"port\":80,\"uri\":\"health\"}}",
        "health_check");
    bad("{\"image\":\"x\",\"hooks\":{\"pre_deploy\":[]}}", "hooks");
    bad("{\"image\":\"x\",\"hooks\":{\"pre_start\":[{\"name\":\"a\"}]}}",
        "hooks");
    bad("{\"image\":\"x\",\"hooks\":{\"pre_start\":[{\"cmd\":\"a\","
        "\"instances\":\"one\"}]}}",
        "hooks");
    bad("{\"image\":\"x\",\"stop_signal\":\"SIG TERM\"}", "stop_signal");
    bad("{\"image\":\"x\",\"stop_grace_period\":\"30x\"}", "stop_grace_period");
    bad("{\"image\":\"x\",\"links\":[{\"name\":\"-db\"}]}", "links");
    bad("{\"image\":\"x\",\"links\":[{\"alias\":\"db\"}]}", "links");
    bad("{\"image\":\"x\",\"links\":[\"a/b/c\"]}", "links");
    bad("{\"image\":\"x\",\"read_only\":null,\"devices\":[1]}", "devices");
}

static void test_health_interval(void **state)
{
    (void)state;
    char *msg = create_bad("{\"image\":\"x\",\"health_check\":{\"protocol\":"
                           "\"tcp\",\"port\":5432,\"timeout\":30,"
                           "\"interval\":20}}",
                           "health_check");
    assert_non_null(strstr(msg, "interval"));
    cp_free(msg);
    json_t *s = create_ok("{\"image\":\"x\",\"health_check\":{\"protocol\":"
                          "\"tcp\",\"port\":5432,\"timeout\":30,"
                          "\"interval\":30,\"initial_delay\":0}}");
    assert_json(json_object_get(s, "health_check"),
                "{\"protocol\":\"tcp\",\"port\":5432,\"uri\":null,"
                "\"timeout\":30,\"interval\":30,\"initial_delay\":0}");
    json_decref(s);
}

static void test_several_errors(void **state)
{
    (void)state;
    json_t *errors;
    int rc;
    json_t *s = create("{\"instances\":-2,\"strategy\":\"x\","
                       "\"cpu_shares\":99999,\"ports\":[\"x\"]}",
                       &errors, &rc);
    assert_int_equal(rc, CP_EINVAL);
    assert_non_null(json_object_get(errors, "image"));
    assert_non_null(json_object_get(errors, "instances"));
    assert_non_null(json_object_get(errors, "strategy"));
    assert_non_null(json_object_get(errors, "cpu_shares"));
    assert_non_null(json_object_get(errors, "ports"));
    assert_int_equal(json_object_size(errors), 5);
    json_decref(errors);
    json_decref(s);
}

static void test_stateful_volumes_from(void **state)
{
    (void)state;
    bad("{\"image\":\"x\",\"stateful\":true,\"volumes_from\":[\"data-%s\"]}",
        "volumes_from");
    json_t *s = create_ok("{\"image\":\"x\",\"volumes_from\":[\"data-%s\"]}");
    json_decref(s);
}

static void test_not_an_object(void **state)
{
    (void)state;
    json_t *errors = json_object(), *spec = NULL;
    json_t *arr = json_array();
    assert_int_equal(service_validate(arr, NULL, &spec, errors), CP_EINVAL);
    assert_non_null(spec);
    assert_true(json_object_size(errors) > 0);
    json_decref(spec);
    json_decref(arr);
    json_decref(errors);
}

/* Every field with every JSON type, on create and on update: errors or
 * not, never a crash, always a spec. */
static void test_any_json(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "image",        "instances",   "cmd",
        "entrypoint",   "env",         "secrets",
        "certificates", "ports",       "volumes",
        "volumes_from", "links",       "affinity",
        "strategy",     "stateful",    "cpus",
        "cpu_shares",   "memory",      "memory_swap",
        "shm_size",     "user",        "privileged",
        "cap_add",      "cap_drop",    "devices",
        "net",          "pid",         "log_driver",
        "log_opts",     "deploy_opts", "health_check",
        "hooks",        "stop_signal", "stop_grace_period",
        "read_only"};
    static const char *const values[] = {
        "null",
        "true",
        "0",
        "-1",
        "1e300",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[null]",
        "[[]]",
        "[{}]",
        "[\"a\",1]",
        "{\"a\":null}",
        "{\"pre_start\":[1]}",
        "{\"pre_start\":{}}",
        "[{\"name\":5}]",
        "{\"protocol\":\"http\",\"port\":\"x\"}",
        "\"99999999999999999999g\""};
    json_t *current = create_ok("{\"image\":\"x\",\"stateful\":true}");
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            json_t *body = json_object();
            json_object_set_new(body, keys[k], parse(values[v]));
            for (int upd = 0; upd < 2; upd++) {
                json_t *errors = json_object(), *spec = NULL;
                service_validate(body, upd ? current : NULL, &spec, errors);
                assert_non_null(spec);
                json_decref(spec);
                json_decref(errors);
            }
            json_decref(body);
        }
    }
    json_decref(current);
}

/* ==== Update ==== */

static void test_update_merge(void **state)
{
    (void)state;
    json_t *cur = create_ok("{\"image\":\"redis:4\",\"instances\":3,"
                            "\"env\":[\"A=1\",\"SECRET=hunter2\"],"
                            "\"cpus\":1,\"links\":[{\"name\":\"db\"}]}");
    json_t *body = parse("{\"env\":[\"A=2\",\"SECRET=\",\"NEW=\"],"
                         "\"cpus\":null,\"links\":[]}");
    json_t *errors = json_object(), *spec = NULL;
    assert_int_equal(service_validate(body, cur, &spec, errors), 0);
    /* Absent fields keep their value; null resets; lists replace. */
    assert_string_equal(cp_json_str(spec, "image"), "redis:4");
    assert_int_equal(cp_json_int(spec, "instances", 0), 3);
    assert_true(json_is_null(json_object_get(spec, "cpus")));
    assert_json(json_object_get(spec, "links"), "[]");
    /* "K=" keeps the current value; a new "K=" stays empty. */
    assert_json(json_object_get(spec, "env"),
                "[\"A=2\",\"SECRET=hunter2\",\"NEW=\"]");
    assert_false(json_equal(spec, cur));
    json_decref(spec);
    json_decref(body);

    /* An update that changes nothing gives an equal spec (no new
     * revision). */
    body = parse("{\"image\":\"redis:4\",\"env\":[\"A=1\",\"SECRET=\"]}");
    assert_int_equal(service_validate(body, cur, &spec, errors), 0);
    assert_true(json_equal(spec, cur));
    json_decref(spec);
    json_decref(body);

    /* image cannot be removed. */
    body = parse("{\"image\":null}");
    assert_int_equal(service_validate(body, cur, &spec, errors), CP_EINVAL);
    assert_non_null(json_object_get(errors, "image"));
    json_decref(spec);
    json_decref(body);
    json_decref(errors);
    json_decref(cur);
}

static void test_update_stateful(void **state)
{
    (void)state;
    json_t *cur = create_ok("{\"image\":\"pg\",\"stateful\":true,"
                            "\"volumes\":[\"/data\"]}");
    json_t *errors = json_object(), *spec = NULL;
    json_t *body = parse("{\"volumes\":[\"/data\",\"/more\"]}");
    assert_int_equal(service_validate(body, cur, &spec, errors), CP_EINVAL);
    assert_non_null(json_object_get(errors, "volumes"));
    json_decref(spec);
    json_decref(body);
    json_object_clear(errors);
    body = parse("{\"volumes\":[\"/data\",\"/h:/h\"]}");
    assert_int_equal(service_validate(body, cur, &spec, errors), 0);
    json_decref(spec);
    json_decref(body);
    body = parse("{\"stateful\":false}");
    assert_int_equal(service_validate(body, cur, &spec, errors), CP_EINVAL);
    assert_non_null(json_object_get(errors, "stateful"));
    json_decref(spec);
    json_decref(body);
    json_decref(errors);
    json_decref(cur);
}

/* A spec stored before a field existed gets its default on update. */
static void test_update_fills_missing(void **state)
{
    (void)state;
    json_t *cur = parse("{\"image\":\"x:1\"}");
    json_t *body = parse("{}");
    json_t *errors = json_object(), *spec = NULL;
    assert_int_equal(service_validate(body, cur, &spec, errors), 0);
    assert_string_equal(cp_json_str(spec, "strategy"), "ha");
    assert_int_equal(cp_json_int(spec, "instances", 0), 1);
    json_decref(spec);
    json_decref(body);
    json_decref(errors);
    json_decref(cur);
}

/* ==== Names and parsers ==== */

static void test_names(void **state)
{
    (void)state;
    json_t *errors = json_object();
    assert_true(service_name_ok("web", "null", "prod", 1, errors));
    assert_true(service_name_ok("web_1-a", "mystack", "prod", 10, errors));
    assert_false(service_name_ok("-web", "null", "prod", 1, errors));
    assert_false(service_name_ok("we b", "null", "prod", 1, errors));
    assert_false(service_name_ok("", "null", "prod", 1, errors));
    assert_false(service_name_ok(NULL, "null", "prod", 1, errors));
    assert_non_null(json_object_get(errors, "name"));
    json_object_clear(errors);
    /* "<name>-<n>.<stack>.<grid>.kontena.local" must fit 64 chars:
     * 40 + 1 + 1 + 1 + 5 + 1 + 4 + 14 = 67. */
    const char *name40 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_false(service_name_ok(name40, "stack", "prod", 1, errors));
    assert_non_null(strstr(cp_json_str(errors, "name"), "64"));
    /* The null stack has no stack part: 40 + 2 + 1 + 4 + 14 = 61. */
    assert_true(service_name_ok(name40, "null", "prod", 1, errors));
    /* More instances, longer name. */
    assert_false(service_name_ok(name40, "null", "prod", 10000, errors));
    json_decref(errors);
}

static void test_parsers(void **state)
{
    (void)state;
    long long v;
    json_t *j;
    struct {
        const char *text;
        long long want; /* -1: invalid */
    } bytes[] = {{"0", 0},
                 {"\"1024\"", 1024},
                 {"\"1k\"", 1024},
                 {"\"512m\"", 512LL << 20},
                 {"\"512MB\"", 512LL << 20},
                 {"\"2g\"", 2LL << 30},
                 {"\"1t\"", 1LL << 40},
                 {"\"1x\"", -1},
                 {"\"m\"", -1},
                 {"\"\"", -1},
                 {"1.5", -1},
                 {"\"-1m\"", -1},
                 {"\"99999999999t\"", -1}};
    for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
        j = parse(bytes[i].text);
        int rc = service_parse_bytes(j, &v);
        if (bytes[i].want < 0) {
            assert_int_equal(rc, CP_EINVAL);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v, bytes[i].want);
        }
        json_decref(j);
    }
    struct {
        const char *text;
        long long want;
    } secs[] = {{"30", 30},       {"\"30s\"", 30},   {"\"1m30s\"", 90},
                {"\"2h\"", 7200}, {"\"1d\"", 86400}, {"\"45\"", 45},
                {"\"\"", -1},     {"\"s\"", -1},     {"\"1w\"", -1},
                {"-3", -1},       {"true", -1}};
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        j = parse(secs[i].text);
        int rc = service_parse_seconds(j, &v);
        if (secs[i].want < 0) {
            assert_int_equal(rc, CP_EINVAL);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v, secs[i].want);
        }
        json_decref(j);
    }
}

static void test_links_to(void **state)
{
    (void)state;
    json_t *spec = parse("{\"links\":[{\"name\":\"db\",\"alias\":\"db\"},"
                         "{\"name\":\"other/api\",\"alias\":\"api\"}]}");
    assert_true(service_links_to(spec, "null", "null", "db"));
    assert_false(service_links_to(spec, "s1", "null", "db"));
    assert_true(service_links_to(spec, "s1", "s1", "db"));
    assert_true(service_links_to(spec, "null", "other", "api"));
    assert_false(service_links_to(spec, "null", "othe", "api"));
    assert_false(service_links_to(spec, "null", "null", "api"));
    json_decref(spec);
}

/* ==== Views ==== */

static void test_service_json(void **state)
{
    (void)state;
    json_t *spec = create_ok("{\"image\":\"nginx:1.13\",\"instances\":2,"
                             "\"links\":[{\"name\":\"db\"},"
                             "{\"name\":\"lb/haproxy\",\"alias\":\"lb\"}]}");
    struct store_service s = {
        .id = "0123456789abcdef01234567",
        .stack_name = S("null"),
        .name = S("web"),
        .spec = spec,
        .revision = 3,
        .state = S("running"),
        .created_at = 1700000000000,
        .updated_at = 1700000001000,
    };
    json_t *j = service_json(&s, "prod", 2, 1);
    assert_string_equal(cp_json_str(j, "id"), "prod/null/web");
    assert_string_equal(cp_json_str(j, "name"), "web");
    assert_string_equal(cp_json_str(j, "dns"), "web.prod.kontena.local");
    assert_string_equal(cp_json_str(j, "image"), "nginx:1.13");
    assert_string_equal(cp_json_str(j, "state"), "running");
    assert_int_equal(cp_json_int(j, "revision", 0), 3);
    assert_int_equal(cp_json_int(j, "instances", 0), 2);
    assert_json(json_object_get(j, "instance_counts"),
                "{\"total\":2,\"running\":1}");
    assert_json(json_object_get(j, "stack"),
                "{\"id\":\"prod/null\",\"name\":\"null\"}");
    assert_json(json_object_get(j, "grid"), "{\"id\":\"prod\"}");
    assert_json(json_object_get(j, "links"),
                "[{\"id\":\"prod/null/db\",\"alias\":\"db\",\"name\":\"db\"},"
                "{\"id\":\"prod/lb/haproxy\",\"alias\":\"lb\","
                "\"name\":\"haproxy\"}]");
    assert_string_equal(cp_json_str(j, "created_at"),
                        "2023-11-14T22:13:20.000Z");
    static const char *const keys[] = {"affinity",
                                       "stateful",
                                       "user",
                                       "cmd",
                                       "entrypoint",
                                       "net",
                                       "ports",
                                       "env",
                                       "secrets",
                                       "memory",
                                       "memory_swap",
                                       "shm_size",
                                       "cpus",
                                       "cpu_shares",
                                       "volumes",
                                       "volumes_from",
                                       "cap_add",
                                       "cap_drop",
                                       "log_driver",
                                       "log_opts",
                                       "strategy",
                                       "deploy_opts",
                                       "pid",
                                       "read_only",
                                       "hooks",
                                       "stack_revision",
                                       "health_check",
                                       "stop_signal",
                                       "stop_grace_period",
                                       "certificates",
                                       "updated_at"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (json_object_get(j, keys[i]) == NULL)
            print_error("missing %s\n", keys[i]);
        assert_non_null(json_object_get(j, keys[i]));
    }
    json_decref(j);

    /* A named stack; a spec missing fields shows their defaults. */
    json_decref(spec);
    spec = parse("{\"image\":\"x:1\"}");
    s.spec = spec;
    s.stack_name = S("shop");
    s.state = NULL;
    j = service_json(&s, "prod", 0, 0);
    assert_string_equal(cp_json_str(j, "id"), "prod/shop/web");
    assert_string_equal(cp_json_str(j, "dns"), "web.shop.prod.kontena.local");
    assert_string_equal(cp_json_str(j, "state"), "initialized");
    assert_string_equal(cp_json_str(j, "strategy"), "ha");
    assert_json(json_object_get(j, "env"), "[]");
    json_decref(j);
    json_decref(spec);
}

static void test_container_json(void **state)
{
    (void)state;
    json_t *info = parse(
        "{\"state\":{\"running\":true,\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"exit_code\":0},\"env\":[\"A=1\",\"SECRET=\"],\"image\":\"nginx\","
        "\"cmd\":[\"nginx\"],\"deploy_rev\":\"r1\",\"service_rev\":\"2\","
        "\"network_settings\":{\"ip_address\":\"10.81.0.5\"},"
        "\"hostname\":\"web-1\"}");
    json_t *labels = parse("[\"az=a\"]");
    json_t *ninfo = parse("{\"public_ip\":\"1.2.3.4\"}");
    struct store_container c = {
        .id = "0123456789abcdef01234567",
        .service_id = "aaaaaaaaaaaaaaaaaaaaaaaa",
        .container_id = S("deadbeef"),
        .name = S("web-1"),
        .instance_number = 1,
        .status = S("running"),
        .info = info,
        .created_at = 1700000000000,
    };
    struct store_node n = {
        .node_id = S("AAAA:BBBB"),
        .name = S("node-1"),
        .node_number = 3,
        .labels = labels,
        .info = ninfo,
        .connected = true,
    };
    json_t *j = container_json(&c, "prod", &n);
    assert_string_equal(cp_json_str(j, "id"), "prod/node-1/web-1");
    assert_string_equal(cp_json_str(j, "container_id"), "deadbeef");
    assert_string_equal(cp_json_str(j, "grid_id"), "prod");
    assert_string_equal(cp_json_str(j, "status"), "running");
    assert_string_equal(cp_json_str(j, "service_id"),
                        "aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(cp_json_str(j, "ip_address"), "10.81.0.5");
    assert_string_equal(cp_json_str(j, "started_at"), "2026-01-01T00:00:00Z");
    assert_string_equal(cp_json_str(j, "deploy_rev"), "r1");
    assert_int_equal(cp_json_int(j, "instance_number", 0), 1);
    json_t *node = json_object_get(j, "node");
    assert_string_equal(cp_json_str(node, "id"), "AAAA:BBBB");
    assert_string_equal(cp_json_str(node, "name"), "node-1");
    assert_string_equal(cp_json_str(node, "public_ip"), "1.2.3.4");
    assert_int_equal(cp_json_int(node, "node_number", 0), 3);
    assert_json(json_object_get(node, "labels"), "[\"az=a\"]");
    json_decref(j);

    /* Deleted, with a service path, without a node or info. */
    c.deleted_at = 1700000002000;
    c.info = NULL;
    j = container_json_ex(&c, "prod", NULL, "prod/null/web");
    assert_string_equal(cp_json_str(j, "status"), "deleted");
    assert_string_equal(cp_json_str(j, "service_id"), "prod/null/web");
    assert_true(json_is_null(json_object_get(j, "node")));
    assert_true(json_is_null(json_object_get(j, "ip_address")));
    assert_json(json_object_get(j, "state"), "{}");
    json_decref(j);
    json_decref(info);
    json_decref(labels);
    json_decref(ninfo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_create),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_health_interval),
        cmocka_unit_test(test_several_errors),
        cmocka_unit_test(test_stateful_volumes_from),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_any_json),
        cmocka_unit_test(test_update_merge),
        cmocka_unit_test(test_update_stateful),
        cmocka_unit_test(test_update_fills_missing),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_links_to),
        cmocka_unit_test(test_service_json),
        cmocka_unit_test(test_container_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
