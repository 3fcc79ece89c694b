/* Unit tests for the pure helpers of "kontena service" (src/cli/
 * cmd_service.c): service argument and path forms, port, memory and
 * secret specs, and the incremental parser of concatenated JSON objects
 * that log following reads.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/cli.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"

#include <string.h>

/* Compact dump of j compared with want, then j released. */
static void assert_json(json_t *j, const char *want)
{
    assert_non_null(j);
    char *s = cp_json_dump(j);
    assert_string_equal(s, want);
    cp_free(s);
    json_decref(j);
}

static void test_ref(void **state)
{
    (void)state;
    static const char *const ok[][4] = {
        /* ref, grid (or ""), stack, name */
        {"web", "", "null", "web"},
        {"wp/web", "", "wp", "web"},
        {"prod/wp/web", "prod", "wp", "web"},
        {"prod/null/web", "prod", "null", "web"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(ok); i++) {
        char *g, *s, *n;
        char err[128];
        assert_int_equal(
            cmd_service_ref(ok[i][0], &g, &s, &n, err, sizeof(err)), 0);
        if (*ok[i][1] == '\0')
            assert_null(g);
        else
            assert_string_equal(g, ok[i][1]);
        assert_string_equal(s, ok[i][2]);
        assert_string_equal(n, ok[i][3]);
        cp_free(g);
        cp_free(s);
        cp_free(n);
    }
    static const char *const bad[] = {"",     "/",       "a/",   "/a",
                                      "a//b", "a/b/c/d", "a/b/", "//"};
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        static char sentinel;
        char *g = &sentinel, *s = &sentinel, *n = &sentinel;
        char err[128] = "";
        assert_int_equal(cmd_service_ref(bad[i], &g, &s, &n, err, sizeof(err)),
                         CP_EINVAL);
        assert_null(g);
        assert_null(s);
        assert_null(n);
        assert_true(err[0] != '\0');
    }
    char *g, *s, *n;
    assert_int_equal(cmd_service_ref(NULL, &g, &s, &n, NULL, 0), CP_EINVAL);
}

static void test_path(void **state)
{
    (void)state;
    char *p = cmd_service_path("g", "null", "web", "");
    assert_string_equal(p, "/v1/services/g/null/web");
    cp_free(p);
    p = cmd_service_path("my grid", "s", "w", "/deploys/1");
    assert_string_equal(p, "/v1/services/my%20grid/s/w/deploys/1");
    cp_free(p);
    p = cmd_service_path("g", "s", "w?x", NULL);
    assert_string_equal(p, "/v1/services/g/s/w%3Fx");
    cp_free(p);
}

static void test_port(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"8080:80", "{\"ip\":\"0.0.0.0\",\"protocol\":\"tcp\",\"node_port\":"
                    "8080,\"container_port\":80}"},
        {"53:53/udp", "{\"ip\":\"0.0.0.0\",\"protocol\":\"udp\",\"node_port\":"
                      "53,\"container_port\":53}"},
        {"127.0.0.1:8080:80", "{\"ip\":\"127.0.0.1\",\"protocol\":\"tcp\","
                              "\"node_port\":8080,\"container_port\":80}"},
        {"10.1.2.3:1:65535/tcp", "{\"ip\":\"10.1.2.3\",\"protocol\":\"tcp\","
                                 "\"node_port\":1,\"container_port\":65535}"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(ok); i++) {
        json_t *j = NULL;
        char err[128];
        assert_int_equal(cmd_service_port(ok[i][0], &j, err, sizeof(err)), 0);
        assert_json(j, ok[i][1]);
    }
    static const char *const bad[] = {
        "",
        "80",
        "8080:",
        ":80",
        "8080:80/sctp",
        "8080:80/",
        "0:80",
        "8080:65536",
        "a:80",
        "1.2.3:80:80",
        "1.2.3.4.5:80:80",
        "256.0.0.1:80:80",
        "::80:80",
        "x:8080:80",
        "8080:80:",
        "1.2.3.4:80:80:90",
        "8080 :80",
        "-1:80",
        "+80:80",
        "8080:80/udp/tcp",
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        json_t *j = json_null();
        char err[128] = "";
        assert_int_equal(cmd_service_port(bad[i], &j, err, sizeof(err)),
                         CP_EINVAL);
        assert_null(j);
        assert_true(err[0] != '\0');
    }
}

static void test_memory(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long want;
    } ok[] = {
        {"0", 0},
        {"1024", 1024},
        {"100b", 100},
        {"64k", 65536},
        {"512m", 536870912LL},
        {"512M", 536870912LL},
        {"512mb", 536870912LL},
        {"1g", 1073741824LL},
        {"1G", 1073741824LL},
        {"1.5g", 1610612736LL},
        {"0.5k", 512},
        {"2t", 2199023255552LL},
        {"9223372036854775807", 9223372036854775807LL},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(ok); i++) {
        long long n = -1;
        char err[128];
        assert_int_equal(cmd_service_memory(ok[i].s, &n, err, sizeof(err)), 0);
        assert_true(n == ok[i].want);
    }
    static const char *const bad[] = {"",
                                      "m",
                                      "-1",
                                      "1x",
                                      "1.g",
                                      ".5g",
                                      "1gg",
                                      "1 g",
                                      "1bb",
                                      "1kbb",
                                      "9223372036854775808",
                                      "9999999999t",
                                      "99999999999999999999",
                                      "1e3"};
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        long long n = -1;
        char err[128] = "";
        assert_int_equal(cmd_service_memory(bad[i], &n, err, sizeof(err)),
                         CP_EINVAL);
        assert_true(err[0] != '\0');
    }
    long long n;
    assert_int_equal(cmd_service_memory(NULL, &n, NULL, 0), CP_EINVAL);
}

static void test_secret(void **state)
{
    (void)state;
    json_t *j = NULL;
    char err[128];
    assert_int_equal(
        cmd_service_secret("DB_PASS:DB_PASSWORD:env", &j, err, sizeof(err)), 0);
    assert_json(j, "{\"secret\":\"DB_PASS\",\"name\":\"DB_PASSWORD\","
                   "\"type\":\"env\"}");
    assert_int_equal(cmd_service_secret("a:B", &j, err, sizeof(err)), 0);
    assert_json(j, "{\"secret\":\"a\",\"name\":\"B\",\"type\":\"env\"}");
    static const char *const bad[] = {
        "", "a", ":b", "a:", "a::env", "a:b:file", "a:b:", ":"};
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        json_t *out = json_null();
        err[0] = '\0';
        assert_int_equal(cmd_service_secret(bad[i], &out, err, sizeof(err)),
                         CP_EINVAL);
        assert_null(out);
        assert_true(err[0] != '\0');
    }
}

/* ==== the concatenated JSON stream ==== */

struct collected {
    json_t *items;
    int stop_after; /* return 7 after this many items; 0: never */
};

static int collect(void *ud, json_t *obj)
{
    struct collected *c = ud;
    json_array_append(c->items, obj);
    if (c->stop_after > 0 && (int)json_array_size(c->items) >= c->stop_after)
        return 7;
    return 0;
}

static const char stream_text[] =
    "  {\"id\":\"1\",\"data\":\"a } b { \\\" ]\"}"
    "{\"id\":\"2\",\"data\":\"x\\\\\",\"n\":[1,{\"k\":[]}]} \n "
    " {\"id\":\"3\",\"data\":\"\\u00e9 \xc3\xa9\"}   ";
static const char stream_want[] =
    "[{\"id\":\"1\",\"data\":\"a } b { \\\" ]\"},"
    "{\"id\":\"2\",\"data\":\"x\\\\\",\"n\":[1,{\"k\":[]}]},"
    "{\"id\":\"3\",\"data\":\"\xc3\xa9 \xc3\xa9\"}]";

/* Feeds text in two parts split at every position, then byte by byte. */
static void test_stream_splits(void **state)
{
    (void)state;
    size_t len = strlen(stream_text);
    for (size_t cut = 0; cut <= len; cut++) {
        struct cmd_jstream *js = cmd_jstream_new(4096);
        struct collected c = {json_array(), 0};
        assert_int_equal(cmd_jstream_feed(js, stream_text, cut, collect, &c),
                         0);
        assert_int_equal(
            cmd_jstream_feed(js, stream_text + cut, len - cut, collect, &c), 0);
        assert_false(cmd_jstream_is_partial(js));
        assert_json(c.items, stream_want);
        cmd_jstream_free(js);
    }
    struct cmd_jstream *js = cmd_jstream_new(4096);
    struct collected c = {json_array(), 0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(cmd_jstream_feed(js, stream_text + i, 1, collect, &c),
                         0);
    assert_json(c.items, stream_want);
    cmd_jstream_free(js);
}

static void test_stream_keepalive_partial(void **state)
{
    (void)state;
    struct cmd_jstream *js = cmd_jstream_new(4096);
    struct collected c = {json_array(), 0};
    /* Only keep-alives: nothing comes out, nothing is pending. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(cmd_jstream_feed(js, " ", 1, collect, &c), 0);
    assert_int_equal(cmd_jstream_feed(js, "", 0, collect, &c), 0);
    assert_int_equal(json_array_size(c.items), 0);
    assert_false(cmd_jstream_is_partial(js));
    /* A partial object waits; a reset drops it (reconnect). */
    assert_int_equal(cmd_jstream_feed(js, "{\"id\":\"1", 8, collect, &c), 0);
    assert_true(cmd_jstream_is_partial(js));
    assert_int_equal(json_array_size(c.items), 0);
    cmd_jstream_reset(js);
    assert_false(cmd_jstream_is_partial(js));
    assert_int_equal(cmd_jstream_feed(js, " {\"id\":2} ", 10, collect, &c), 0);
    assert_json(c.items, "[{\"id\":2}]");
    cmd_jstream_free(js);
}

static void test_stream_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x",           "[1]",      "{\"a\":1}]",
        "\"s\"",       "{\"a\":}", "{\"a\":1,\"a\":2}",
        "{\"a\":tru}", "{} 1",     "null"};
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        struct cmd_jstream *js = cmd_jstream_new(4096);
        struct collected c = {json_array(), 0};
        assert_int_equal(
            cmd_jstream_feed(js, bad[i], strlen(bad[i]), collect, &c),
            CP_EPROTO);
        assert_true(cmd_jstream_error(js)[0] != '\0');
        json_decref(c.items);
        cmd_jstream_free(js);
    }
    /* An object over the limit, even when it arrives in pieces. */
    struct cmd_jstream *js = cmd_jstream_new(16);
    struct collected c = {json_array(), 0};
    assert_int_equal(cmd_jstream_feed(js, "{\"a\":\"0123", 10, collect, &c), 0);
    assert_int_equal(cmd_jstream_feed(js, "456789abcdef\"}", 14, collect, &c),
                     CP_EINVAL);
    assert_false(cmd_jstream_is_partial(js));
    /* Small objects still pass after a reset. */
    cmd_jstream_reset(js);
    assert_int_equal(cmd_jstream_feed(js, "{\"a\":1}", 7, collect, &c), 0);
    assert_json(c.items, "[{\"a\":1}]");
    cmd_jstream_free(js);
    /* Nesting deeper than the limit is refused while streaming. */
    js = cmd_jstream_new(4096);
    c.items = json_array();
    char deep[200];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    assert_int_equal(cmd_jstream_feed(js, deep, n, collect, &c), CP_EPROTO);
    json_decref(c.items);
    cmd_jstream_free(js);
}

static void test_stream_callback_stops(void **state)
{
    (void)state;
    struct cmd_jstream *js = cmd_jstream_new(4096);
    struct collected c = {json_array(), 2};
    const char *t = "{\"a\":1}{\"a\":2}{\"a\":3}";
    assert_int_equal(cmd_jstream_feed(js, t, strlen(t), collect, &c), 7);
    assert_json(c.items, "[{\"a\":1},{\"a\":2}]");
    cmd_jstream_free(js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_stream_splits),
        cmocka_unit_test(test_stream_keepalive_partial),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_stream_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
