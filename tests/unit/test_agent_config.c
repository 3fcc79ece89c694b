/* Unit tests for the agent's configuration (src/agent/config.c): the
 * environment, URI rewriting, labels, and the one-line errors.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/config.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"

#include <string.h>

/* String literals are const under -Wwrite-strings; the parser takes
 * environ's type. */
#define ENV(e) ((char *const *)(uintptr_t)(e))
#define ARGV(a) ((char **)(uintptr_t)(a))

static int parse(const char *const *env, struct agent_config *cfg, char *err,
                 size_t errlen)
{
    const char *argv[] = {"kontena-agent", NULL};
    return agent_config_parse(cfg, ENV(env), 1, ARGV(argv), err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *env[] = {"KONTENA_URI=ws://master:9292", "KONTENA_TOKEN=tok",
                         "PATH=/bin", NULL};
    struct agent_config cfg;
    char err[256] = "";
    assert_int_equal(parse(env, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.command, AGENT_CMD_RUN);
    assert_false(cfg.uri.is_tls);
    assert_string_equal(cfg.uri.host, "master");
    assert_int_equal(cfg.uri.port, 9292);
    assert_string_equal(cfg.uri.path, "/");
    assert_string_equal(cfg.uri.host_header, "master:9292");
    assert_string_equal(cfg.grid_token, "tok");
    assert_null(cfg.node_token);
    assert_null(cfg.node_id);
    assert_int_equal(cfg.nlabels, 0);
    assert_false(cfg.has_labels);
    assert_true(cfg.ssl_verify);
    assert_int_equal(cfg.ws_timeout_s, 5);
    assert_int_equal(cfg.ping_interval_s, 30);
    assert_int_equal(cfg.update_interval_s, 60);
    assert_int_equal(cfg.stats_interval_s, 60);
    assert_int_equal(cfg.log_level, CP_LOG_INFO);
    assert_string_equal(cfg.docker_socket, "/var/run/docker.sock");
    agent_config_release(&cfg);
}

static void test_everything(void **state)
{
    (void)state;
    const char *env[] = {"KONTENA_URI=https://m.example.com/kontena",
                         "KONTENA_NODE_TOKEN=nt",
                         "KONTENA_TOKEN=gt",
                         "KONTENA_NODE_ID=AAAA:BBBB",
                         "KONTENA_NODE_NAME=node-1",
                         "KONTENA_NODE_LABELS=  region=eu  az=a ssd ",
                         "KONTENA_PUBLIC_IP=1.2.3.4",
                         "KONTENA_PRIVATE_IP=10.0.0.4",
                         "KONTENA_SSL_VERIFY=false",
                         "WEBSOCKET_TIMEOUT=7",
                         "KONTENA_PING_INTERVAL=2",
                         "KONTENA_NODE_UPDATE_INTERVAL=3",
                         "KONTENA_STATS_INTERVAL=4",
                         "LOG_LEVEL=debug",
                         "DOCKER_HOST=unix:///run/podman/podman.sock",
                         NULL};
    struct agent_config cfg;
    char err[256] = "";
    assert_int_equal(parse(env, &cfg, err, sizeof(err)), 0);
    assert_true(cfg.uri.is_tls);
    assert_int_equal(cfg.uri.port, 443);
    assert_string_equal(cfg.uri.path, "/kontena");
    assert_string_equal(cfg.uri.host_header, "m.example.com");
    assert_string_equal(cfg.uri.url, "wss://m.example.com:443/kontena");
    assert_string_equal(cfg.node_token, "nt");
    assert_string_equal(cfg.grid_token, "gt");
    assert_string_equal(cfg.node_id, "AAAA:BBBB");
    assert_string_equal(cfg.node_name, "node-1");
    assert_true(cfg.has_labels);
    assert_int_equal(cfg.nlabels, 3);
    assert_string_equal(cfg.labels[0], "region=eu");
    assert_string_equal(cfg.labels[2], "ssd");
    assert_string_equal(cfg.public_ip, "1.2.3.4");
    assert_string_equal(cfg.private_ip, "10.0.0.4");
    assert_false(cfg.ssl_verify);
    assert_int_equal(cfg.ws_timeout_s, 7);
    assert_int_equal(cfg.ping_interval_s, 2);
    assert_int_equal(cfg.update_interval_s, 3);
    assert_int_equal(cfg.stats_interval_s, 4);
    assert_int_equal(cfg.log_level, CP_LOG_DEBUG);
    assert_string_equal(cfg.docker_socket, "/run/podman/podman.sock");
    agent_config_release(&cfg);
}

/* Each bad environment gives an error naming the variable. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *env[4];
        const char *needle;
    } cases[] = {
        {{"KONTENA_TOKEN=t", NULL}, "KONTENA_URI is required"},
        {{"KONTENA_URI=", "KONTENA_TOKEN=t", NULL}, "KONTENA_URI"},
        {{"KONTENA_URI=ftp://x", "KONTENA_TOKEN=t", NULL}, "KONTENA_URI"},
        {{"KONTENA_URI=ws://", "KONTENA_TOKEN=t", NULL}, "missing host"},
        {{"KONTENA_URI=ws://h:0", "KONTENA_TOKEN=t", NULL}, "bad port"},
        {{"KONTENA_URI=ws://h:99999", "KONTENA_TOKEN=t", NULL}, "bad port"},
        {{"KONTENA_URI=ws://h", NULL}, "KONTENA_TOKEN or KONTENA_NODE_TOKEN"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "WEBSOCKET_TIMEOUT=0"},
         "WEBSOCKET_TIMEOUT"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "KONTENA_PING_INTERVAL=x"},
         "KONTENA_PING_INTERVAL"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "KONTENA_SSL_VERIFY=maybe"},
         "KONTENA_SSL_VERIFY"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "LOG_LEVEL=loud"},
         "LOG_LEVEL"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "DOCKER_HOST=tcp://h:2375"},
         "DOCKER_HOST"},
        {{"KONTENA_URI=ws://h", "KONTENA_TOKEN=t", "KONTENA_STATS_INTERVAL=-1"},
         "KONTENA_STATS_INTERVAL"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
        const char *env[5] = {NULL};
        for (size_t j = 0; j < 4 && cases[i].env[j] != NULL; j++)
            env[j] = cases[i].env[j];
        struct agent_config cfg;
        char err[256] = "";
        assert_int_equal(parse(env, &cfg, err, sizeof(err)), CP_EINVAL);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
        assert_null(strchr(err, '\n'));
    }
}

static void test_flags(void **state)
{
    (void)state;
    struct agent_config cfg;
    char err[256] = "";
    const char *env[] = {NULL};
    const char *help[] = {"kontena-agent", "--help", NULL};
    assert_int_equal(
        agent_config_parse(&cfg, ENV(env), 2, ARGV(help), err, sizeof(err)), 0);
    assert_int_equal(cfg.command, AGENT_CMD_HELP);
    agent_config_release(&cfg);
    const char *ver[] = {"kontena-agent", "--version", NULL};
    assert_int_equal(
        agent_config_parse(&cfg, ENV(env), 2, ARGV(ver), err, sizeof(err)), 0);
    assert_int_equal(cfg.command, AGENT_CMD_VERSION);
    agent_config_release(&cfg);
    const char *bad[] = {"kontena-agent", "--bogus", NULL};
    assert_int_equal(
        agent_config_parse(&cfg, ENV(env), 2, ARGV(bad), err, sizeof(err)),
        CP_EINVAL);
    assert_non_null(strstr(err, "--bogus"));
}

static void test_uri_rewriting(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool is_tls;
        const char *host;
        int port;
        const char *path;
        const char *host_header;
    } cases[] = {
        {"http://m", false, "m", 80, "/", "m"},
        {"HTTPS://m:8443", true, "m", 8443, "/", "m:8443"},
        {"ws://m:80/", false, "m", 80, "/", "m"},
        {"wss://m:443/a/b?x=1#frag", true, "m", 443, "/a/b?x=1", "m"},
        {"ws://m?x=1", false, "m", 80, "/?x=1", "m"},
        {"ws://user:pw@m:9000/p", false, "m", 9000, "/p", "m:9000"},
        {"ws://[::1]:9292/", false, "::1", 9292, "/", "[::1]:9292"},
        {"http://127.0.0.1:19500", false, "127.0.0.1", 19500, "/",
         "127.0.0.1:19500"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
        struct agent_uri u;
        char err[128] = "";
        if (agent_uri_parse(cases[i].in, &u, err, sizeof(err)) != 0)
            fail_msg("%s: %s", cases[i].in, err);
        assert_int_equal(u.is_tls, cases[i].is_tls);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_string_equal(u.path, cases[i].path);
        assert_string_equal(u.host_header, cases[i].host_header);
        assert_int_equal(strncmp(u.url, cases[i].is_tls ? "wss://" : "ws://",
                                 cases[i].is_tls ? 6 : 5),
                         0);
        agent_uri_release(&u);
    }
    static const char *const bad[] = {"",          "m:9292",   "tcp://m",
                                      "ws://[::1", "ws://m:x", "ws://m m",
                                      "ws://:80"};
    for (size_t i = 0; i < CP_ARRAY_LEN(bad); i++) {
        struct agent_uri u;
        char err[128] = "";
        assert_int_equal(agent_uri_parse(bad[i], &u, err, sizeof(err)),
                         CP_EINVAL);
        assert_true(err[0] != '\0');
        assert_null(u.host);
    }
}

static void test_labels(void **state)
{
    (void)state;
    char **v = NULL;
    size_t n = agent_labels_split("a=1 b=2\tc", &v);
    assert_int_equal(n, 3);
    char *joined = agent_labels_join(v, n);
    assert_string_equal(joined, "a=1,b=2,c");
    cp_free(joined);
    agent_labels_free(v, n);

    n = agent_labels_split("   ", &v);
    assert_int_equal(n, 0);
    joined = agent_labels_join(v, n);
    assert_string_equal(joined, "");
    cp_free(joined);
    agent_labels_free(v, n);

    n = agent_labels_split(NULL, &v);
    assert_int_equal(n, 0);
    agent_labels_free(v, n);

    const char *one[] = {"only"};
    joined = agent_labels_join(ENV(one), 1);
    assert_string_equal(joined, "only");
    cp_free(joined);
}

/* An empty KONTENA_NODE_LABELS still counts as "set": no labels, and the
 * engine's labels are not used. */
static void test_empty_labels_are_set(void **state)
{
    (void)state;
    const char *env[] = {"KONTENA_URI=ws://h", "KONTENA_TOKEN=t",
                         "KONTENA_NODE_LABELS=", NULL};
    struct agent_config cfg;
    char err[256];
    assert_int_equal(parse(env, &cfg, err, sizeof(err)), 0);
    assert_true(cfg.has_labels);
    assert_int_equal(cfg.nlabels, 0);
    agent_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_everything),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_uri_rewriting),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_empty_labels_are_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
