/* Unit tests for kontena-master's settings (src/master/config.c): the
 * defaults, every environment variable of the settings table, the flags
 * that mirror them, store selection and the one-line errors.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/err.h"
#include "../../src/common/log.h"
#include "../../src/master/config.h"

#include <stdio.h>
#include <string.h>

/* String literals are const under -Wwrite-strings; the parser takes
 * environ's type. */
#define ENV(e) ((char *const *)(uintptr_t)(e))
#define ARGV(a) ((char *const *)(uintptr_t)(a))
#define NARGS(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static const char *const no_env[] = {NULL};
static const char *const no_args[] = {"kontena-master", NULL};

static int parse_env(const char *const *env, struct master_config *c,
                     char *err, size_t errlen)
{
    return master_config_parse(c, ENV(env), 1, ARGV(no_args), err, errlen);
}

static int parse_args(const char *const *argv, int argc,
                      struct master_config *c, char *err, size_t errlen)
{
    return master_config_parse(c, ENV(no_env), argc, ARGV(argv), err,
                               errlen);
}

/* Asserts that env fails with CP_EINVAL and that err contains needle. */
static void expect_env_error(const char *const *env, const char *needle)
{
    struct master_config c;
    char err[512] = "";
    int rc = parse_env(env, &c, err, sizeof(err));
    if (rc != CP_EINVAL || strstr(err, needle) == NULL)
        print_error("env %s: rc %d err '%s', want '%s'\n", env[0], rc, err,
                    needle);
    assert_int_equal(rc, CP_EINVAL);
    assert_non_null(strstr(err, needle));
    /* A failed parse leaves nothing to release, and releasing is safe. */
    assert_null(c.bind);
    assert_null(c.store_url);
    master_config_release(&c);
}

static void expect_args_error(const char *const *argv, int argc,
                              const char *needle)
{
    struct master_config c;
    char err[512] = "";
    int rc = parse_args(argv, argc, &c, err, sizeof(err));
    if (rc != CP_EINVAL || strstr(err, needle) == NULL)
        print_error("args %s: rc %d err '%s', want '%s'\n",
                    argc > 1 ? argv[1] : "", rc, err, needle);
    assert_int_equal(rc, CP_EINVAL);
    assert_non_null(strstr(err, needle));
    master_config_release(&c);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *env[] = {"PATH=/bin", "HOME=/root", NULL};
    struct master_config c;
    char err[256] = "";
    assert_int_equal(parse_env(env, &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_SERVE);
    assert_int_equal(c.port, 9292);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_string_equal(c.data_dir, "./data");
    assert_string_equal(c.store_url, "sqlite:./data");
    assert_null(c.initial_admin_code);
    assert_null(c.vault_key);
    assert_null(c.vault_iv);
    assert_null(c.master_url);
    assert_null(c.server_name);
    assert_null(c.rack_env);
    assert_int_equal(c.log_level, CP_LOG_INFO);
    assert_int_equal(c.trace, 0);
    assert_int_equal(c.websocket_timeout, 5);
    assert_int_equal(c.clock_skew, 1);
    assert_int_equal(c.ping_interval, 30);
    assert_int_equal(c.login_rate_limit, 60);
    assert_int_equal(c.login_rate_window, 60);
    assert_false(c.rate_limit_loopback);
    assert_int_equal(c.max_body, 1024 * 1024);
    assert_int_equal(c.max_header, 16 * 1024);
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.auth_cache_ms, 1000);
    master_config_release(&c);

    /* A NULL environment is the same as an empty one. */
    assert_int_equal(master_config_parse(&c, NULL, 1, ARGV(no_args), err,
                                         sizeof(err)),
                     0);
    assert_int_equal(c.port, 9292);
    master_config_release(&c);
}

static void test_every_env_var(void **state)
{
    (void)state;
    const char *env[] = {
        "PORT=8080",
        "KONTENA_BIND=127.0.0.1",
        "KONTENA_DATA_DIR=/var/lib/kontena",
        "INITIAL_ADMIN_CODE=abcdef123",
        "VAULT_KEY=vault-key-material",
        "VAULT_IV=vault-iv",
        "KONTENA_MASTER_URL=https://master.example.com",
        "SERVER_NAME=prod",
        "RACK_ENV=production",
        "LOG_LEVEL=debug",
        "KONTENA_TRACE=http,rpc",
        "WEBSOCKET_TIMEOUT=10",
        "KONTENA_CLOCK_SKEW=3",
        "KONTENA_PING_INTERVAL=15",
        "KONTENA_LOGIN_RATE_LIMIT=5",
        "KONTENA_LOGIN_RATE_WINDOW=120",
        "KONTENA_RATE_LIMIT_LOOPBACK=1",
        "KONTENA_MAX_BODY=2048",
        "KONTENA_MAX_HEADER=4096",
        "KONTENA_THREADS=8",
        "KONTENA_AUTH_CACHE_MS=0",
        NULL,
    };
    struct master_config c;
    char err[256] = "";
    assert_int_equal(parse_env(env, &c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.bind, "127.0.0.1");
    assert_string_equal(c.data_dir, "/var/lib/kontena");
    assert_string_equal(c.store_url, "sqlite:/var/lib/kontena");
    assert_string_equal(c.initial_admin_code, "abcdef123");
    assert_string_equal(c.vault_key, "vault-key-material");
    assert_string_equal(c.vault_iv, "vault-iv");
    assert_string_equal(c.master_url, "https://master.example.com");
    assert_string_equal(c.server_name, "prod");
    assert_string_equal(c.rack_env, "production");
    assert_int_equal(c.log_level, CP_LOG_DEBUG);
    assert_int_equal(c.trace, CP_TRACE_HTTP | CP_TRACE_RPC);
    assert_int_equal(c.websocket_timeout, 10);
    assert_int_equal(c.clock_skew, 3);
    assert_int_equal(c.ping_interval, 15);
    assert_int_equal(c.login_rate_limit, 5);
    assert_int_equal(c.login_rate_window, 120);
    assert_true(c.rate_limit_loopback);
    assert_int_equal(c.max_body, 2048);
    assert_int_equal(c.max_header, 4096);
    assert_int_equal(c.threads, 8);
    assert_int_equal(c.auth_cache_ms, 0);
    master_config_release(&c);
}

static void test_env_bools_and_empty(void **state)
{
    (void)state;
    struct master_config c;
    char err[256] = "";
    /* DEBUG_RA is the legacy spelling of the loopback switch. */
    const char *env1[] = {"DEBUG_RA=true", NULL};
    assert_int_equal(parse_env(env1, &c, err, sizeof(err)), 0);
    assert_true(c.rate_limit_loopback);
    master_config_release(&c);

    const char *truthy[] = {"1", "true", "yes", "on"};
    for (size_t i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++) {
        char var[64];
        snprintf(var, sizeof(var), "KONTENA_RATE_LIMIT_LOOPBACK=%s",
                 truthy[i]);
        const char *env[] = {var, NULL};
        assert_int_equal(parse_env(env, &c, err, sizeof(err)), 0);
        assert_true(c.rate_limit_loopback);
        master_config_release(&c);
    }
    const char *env2[] = {"KONTENA_RATE_LIMIT_LOOPBACK=0", NULL};
    assert_int_equal(parse_env(env2, &c, err, sizeof(err)), 0);
    assert_false(c.rate_limit_loopback);
    master_config_release(&c);

    /* An empty variable is as good as unset. */
    const char *env3[] = {"PORT=", "KONTENA_BIND=", "LOG_LEVEL=", NULL};
    assert_int_equal(parse_env(env3, &c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 9292);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_int_equal(c.log_level, CP_LOG_INFO);
    master_config_release(&c);

    /* A variable whose name merely starts like a setting is not it. */
    const char *env4[] = {"PORTX=1", "XPORT=2", "PORT_=3", NULL};
    assert_int_equal(parse_env(env4, &c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 9292);
    master_config_release(&c);
}

static void test_bad_integers(void **state)
{
    (void)state;
    const char *e1[] = {"PORT=abc", NULL};
    expect_env_error(e1, "PORT");
    const char *e2[] = {"PORT=0", NULL};
    expect_env_error(e2, "PORT");
    const char *e3[] = {"PORT=70000", NULL};
    expect_env_error(e3, "PORT");
    const char *e4[] = {"PORT=80x", NULL};
    expect_env_error(e4, "PORT");
    const char *e5[] = {"PORT= 80", NULL};
    expect_env_error(e5, "PORT");
    const char *e6[] = {"WEBSOCKET_TIMEOUT=0", NULL};
    expect_env_error(e6, "WEBSOCKET_TIMEOUT");
    const char *e7[] = {"KONTENA_CLOCK_SKEW=-1", NULL};
    expect_env_error(e7, "KONTENA_CLOCK_SKEW");
    const char *e8[] = {"KONTENA_PING_INTERVAL=3601", NULL};
    expect_env_error(e8, "KONTENA_PING_INTERVAL");
    const char *e9[] = {"KONTENA_LOGIN_RATE_LIMIT=0", NULL};
    expect_env_error(e9, "KONTENA_LOGIN_RATE_LIMIT");
    const char *e10[] = {"KONTENA_LOGIN_RATE_WINDOW=86401", NULL};
    expect_env_error(e10, "KONTENA_LOGIN_RATE_WINDOW");
    const char *e11[] = {"KONTENA_MAX_BODY=1023", NULL};
    expect_env_error(e11, "KONTENA_MAX_BODY");
    const char *e12[] = {"KONTENA_MAX_HEADER=1048576", NULL};
    expect_env_error(e12, "KONTENA_MAX_HEADER");
    const char *e13[] = {"KONTENA_THREADS=129", NULL};
    expect_env_error(e13, "KONTENA_THREADS");
    const char *e14[] = {"KONTENA_AUTH_CACHE_MS=60001", NULL};
    expect_env_error(e14, "KONTENA_AUTH_CACHE_MS");
    const char *e15[] = {"PORT=99999999999999999999999", NULL};
    expect_env_error(e15, "PORT");

    /* The bounds themselves are accepted. */
    struct master_config c;
    char err[256];
    const char *ok[] = {"PORT=65535", "KONTENA_CLOCK_SKEW=0",
                        "KONTENA_MAX_BODY=1024", "KONTENA_THREADS=1",
                        NULL};
    assert_int_equal(parse_env(ok, &c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 65535);
    assert_int_equal(c.clock_skew, 0);
    assert_int_equal(c.max_body, 1024);
    assert_int_equal(c.threads, 1);
    master_config_release(&c);

    /* The error through a flag names the flag. */
    const char *a1[] = {"kontena-master", "--port", "abc", NULL};
    expect_args_error(a1, NARGS(a1), "--port");
}

static void test_log_level(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        enum cp_log_level want;
    } cases[] = {
        {"debug", CP_LOG_DEBUG}, {"DEBUG", CP_LOG_DEBUG},
        {"info", CP_LOG_INFO},   {"Info", CP_LOG_INFO},
        {"warn", CP_LOG_WARN},   {"WARNING", CP_LOG_WARN},
        {"warning", CP_LOG_WARN}, {"error", CP_LOG_ERROR},
        {"Error", CP_LOG_ERROR}, {"fatal", CP_LOG_ERROR},
        {"FATAL", CP_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char var[64];
        snprintf(var, sizeof(var), "LOG_LEVEL=%s", cases[i].v);
        const char *env[] = {var, NULL};
        struct master_config c;
        char err[256] = "";
        assert_int_equal(parse_env(env, &c, err, sizeof(err)), 0);
        assert_int_equal(c.log_level, cases[i].want);
        master_config_release(&c);
    }
    const char *bad[] = {"LOG_LEVEL=verbose", NULL};
    expect_env_error(bad, "LOG_LEVEL");
    const char *bad2[] = {"LOG_LEVEL=debugx", NULL};
    expect_env_error(bad2, "LOG_LEVEL");

    const char *a[] = {"kontena-master", "--log-level=warn", NULL};
    struct master_config c;
    char err[256];
    assert_int_equal(parse_args(a, NARGS(a), &c, err, sizeof(err)), 0);
    assert_int_equal(c.log_level, CP_LOG_WARN);
    master_config_release(&c);
    const char *ab[] = {"kontena-master", "--log-level", "loud", NULL};
    expect_args_error(ab, NARGS(ab), "--log-level");
}

static void test_trace(void **state)
{
    (void)state;
    struct master_config c;
    char err[256];
    const char *env[] = {"KONTENA_TRACE=ws,store,sched,engine", NULL};
    assert_int_equal(parse_env(env, &c, err, sizeof(err)), 0);
    assert_int_equal(c.trace, CP_TRACE_WS | CP_TRACE_STORE |
                                  CP_TRACE_SCHED | CP_TRACE_ENGINE);
    master_config_release(&c);

    const char *all[] = {"KONTENA_TRACE=all", NULL};
    assert_int_equal(parse_env(all, &c, err, sizeof(err)), 0);
    assert_true((c.trace & (CP_TRACE_HTTP | CP_TRACE_WS | CP_TRACE_RPC |
                            CP_TRACE_STORE | CP_TRACE_SCHED |
                            CP_TRACE_ENGINE)) ==
                (CP_TRACE_HTTP | CP_TRACE_WS | CP_TRACE_RPC |
                 CP_TRACE_STORE | CP_TRACE_SCHED | CP_TRACE_ENGINE));
    master_config_release(&c);

    const char *bad[] = {"KONTENA_TRACE=http,bogus", NULL};
    expect_env_error(bad, "KONTENA_TRACE");

    /* The flag replaces the environment's list. */
    const char *a[] = {"kontena-master", "--trace", "http", NULL};
    const char *env2[] = {"KONTENA_TRACE=ws", NULL};
    assert_int_equal(master_config_parse(&c, ENV(env2), NARGS(a), ARGV(a),
                                         err, sizeof(err)),
                     0);
    assert_int_equal(c.trace, CP_TRACE_HTTP);
    master_config_release(&c);
}

static void test_flags_win_over_env(void **state)
{
    (void)state;
    const char *env[] = {"PORT=8080", "KONTENA_BIND=10.0.0.1",
                         "KONTENA_DATA_DIR=/env/dir", "SERVER_NAME=env",
                         "KONTENA_THREADS=2", "LOG_LEVEL=error", NULL};
    const char *argv[] = {"kontena-master", "--port=9000", "--bind",
                          "::",              "--data-dir=/flag/dir",
                          "--server-name",   "flag",
                          "--threads=16",    NULL};
    struct master_config c;
    char err[256] = "";
    assert_int_equal(master_config_parse(&c, ENV(env), NARGS(argv),
                                         ARGV(argv), err, sizeof(err)),
                     0);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.bind, "::");
    assert_string_equal(c.data_dir, "/flag/dir");
    assert_string_equal(c.store_url, "sqlite:/flag/dir");
    assert_string_equal(c.server_name, "flag");
    assert_int_equal(c.threads, 16);
    /* Untouched by flags: the environment's. */
    assert_int_equal(c.log_level, CP_LOG_ERROR);
    master_config_release(&c);
}

static void test_every_flag(void **state)
{
    (void)state;
    const char *argv[] = {
        "kontena-master",
        "--port", "1234",
        "--bind=127.0.0.2",
        "--data-dir", "/d",
        "--code", "secret-code",
        "--vault-key=k1",
        "--vault-iv", "iv1",
        "--master-url=http://m:1",
        "--server-name=s",
        "--rack-env", "test",
        "--log-level", "error",
        "--trace=ws",
        "--websocket-timeout", "7",
        "--clock-skew=2",
        "--ping-interval", "9",
        "--login-rate-limit=11",
        "--login-rate-window", "13",
        "--rate-limit-loopback",
        "--max-body=4096",
        "--max-header", "2048",
        "--threads", "3",
        "--auth-cache-ms=250",
        NULL,
    };
    struct master_config c;
    char err[256] = "";
    int rc = parse_args(argv, NARGS(argv), &c, err, sizeof(err));
    if (rc != 0)
        print_error("err: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.command, MASTER_CMD_SERVE);
    assert_int_equal(c.port, 1234);
    assert_string_equal(c.bind, "127.0.0.2");
    assert_string_equal(c.data_dir, "/d");
    assert_string_equal(c.store_url, "sqlite:/d");
    assert_string_equal(c.initial_admin_code, "secret-code");
    assert_string_equal(c.vault_key, "k1");
    assert_string_equal(c.vault_iv, "iv1");
    assert_string_equal(c.master_url, "http://m:1");
    assert_string_equal(c.server_name, "s");
    assert_string_equal(c.rack_env, "test");
    assert_int_equal(c.log_level, CP_LOG_ERROR);
    assert_int_equal(c.trace, CP_TRACE_WS);
    assert_int_equal(c.websocket_timeout, 7);
    assert_int_equal(c.clock_skew, 2);
    assert_int_equal(c.ping_interval, 9);
    assert_int_equal(c.login_rate_limit, 11);
    assert_int_equal(c.login_rate_window, 13);
    assert_true(c.rate_limit_loopback);
    assert_int_equal(c.max_body, 4096);
    assert_int_equal(c.max_header, 2048);
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.auth_cache_ms, 250);
    master_config_release(&c);
}

static void test_bool_flags(void **state)
{
    (void)state;
    struct master_config c;
    char err[256];
    /* Without a value a bool flag is true and takes no argument: the next
     * word is the next option. */
    const char *a1[] = {"kontena-master", "--rate-limit-loopback", "--port",
                        "81", NULL};
    assert_int_equal(parse_args(a1, NARGS(a1), &c, err, sizeof(err)), 0);
    assert_true(c.rate_limit_loopback);
    assert_int_equal(c.port, 81);
    master_config_release(&c);

    /* =value switches it either way, overriding the environment. */
    const char *env[] = {"KONTENA_RATE_LIMIT_LOOPBACK=1", NULL};
    const char *a2[] = {"kontena-master", "--rate-limit-loopback=0", NULL};
    assert_int_equal(master_config_parse(&c, ENV(env), NARGS(a2), ARGV(a2),
                                         err, sizeof(err)),
                     0);
    assert_false(c.rate_limit_loopback);
    master_config_release(&c);

    const char *a3[] = {"kontena-master", "--rate-limit-loopback=yes", NULL};
    assert_int_equal(parse_args(a3, NARGS(a3), &c, err, sizeof(err)), 0);
    assert_true(c.rate_limit_loopback);
    master_config_release(&c);
}

static void test_store_selection(void **state)
{
    (void)state;
    struct master_config c;
    char err[256] = "";

    const char *pg[] = {"KONTENA_DATABASE_URL=postgres://u:p@db/kontena",
                        NULL};
    assert_int_equal(parse_env(pg, &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "postgres://u:p@db/kontena");
    master_config_release(&c);

    const char *pg2[] = {"KONTENA_DATABASE_URL=postgresql://db/k", NULL};
    assert_int_equal(parse_env(pg2, &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "postgresql://db/k");
    master_config_release(&c);

    const char *mongo[] = {"MONGODB_URI=mongodb://mongo:27017/kontena",
                           NULL};
    assert_int_equal(parse_env(mongo, &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "mongodb://mongo:27017/kontena");
    master_config_release(&c);

    const char *srv[] = {"MONGODB_URI=mongodb+srv://cluster/k", NULL};
    assert_int_equal(parse_env(srv, &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "mongodb+srv://cluster/k");
    master_config_release(&c);

    /* The store URL wins over the data dir. */
    const char *both_dir[] = {"KONTENA_DATA_DIR=/x",
                              "KONTENA_DATABASE_URL=postgres://db/k", NULL};
    assert_int_equal(parse_env(both_dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "postgres://db/k");
    assert_string_equal(c.data_dir, "/x");
    master_config_release(&c);

    const char *bad_pg[] = {"KONTENA_DATABASE_URL=mysql://db/k", NULL};
    expect_env_error(bad_pg, "KONTENA_DATABASE_URL");
    const char *bad_mongo[] = {"MONGODB_URI=http://mongo", NULL};
    expect_env_error(bad_mongo, "MONGODB_URI");
    const char *both[] = {"KONTENA_DATABASE_URL=postgres://db/k",
                          "MONGODB_URI=mongodb://mongo/k", NULL};
    expect_env_error(both, "MONGODB_URI");
    expect_env_error(both, "KONTENA_DATABASE_URL");

    /* The flags select a store too, and win over the environment. */
    const char *a1[] = {"kontena-master", "--database-url",
                        "postgres://flag/k", NULL};
    const char *env1[] = {"KONTENA_DATABASE_URL=postgres://env/k", NULL};
    assert_int_equal(master_config_parse(&c, ENV(env1), NARGS(a1), ARGV(a1),
                                         err, sizeof(err)),
                     0);
    assert_string_equal(c.store_url, "postgres://flag/k");
    master_config_release(&c);

    const char *a2[] = {"kontena-master", "--mongodb-uri=mongodb://f/k",
                        NULL};
    assert_int_equal(parse_args(a2, NARGS(a2), &c, err, sizeof(err)), 0);
    assert_string_equal(c.store_url, "mongodb://f/k");
    master_config_release(&c);

    const char *a3[] = {"kontena-master", "--database-url=sqlite:/x", NULL};
    expect_args_error(a3, NARGS(a3), "KONTENA_DATABASE_URL");
    const char *a4[] = {"kontena-master", "--database-url=postgres://a",
                        "--mongodb-uri=mongodb://b", NULL};
    expect_args_error(a4, NARGS(a4), "MONGODB_URI");
}

static void test_option_errors(void **state)
{
    (void)state;
    const char *a1[] = {"kontena-master", "--no-such-thing", NULL};
    expect_args_error(a1, NARGS(a1), "--no-such-thing");
    const char *a2[] = {"kontena-master", "--bogus=1", NULL};
    expect_args_error(a2, NARGS(a2), "--bogus");
    const char *a3[] = {"kontena-master", "-x", NULL};
    expect_args_error(a3, NARGS(a3), "-x");
    /* A prefix of an option is not the option. */
    const char *a4[] = {"kontena-master", "--por=1", NULL};
    expect_args_error(a4, NARGS(a4), "--por");
    const char *a5[] = {"kontena-master", "--portx=1", NULL};
    expect_args_error(a5, NARGS(a5), "--portx");

    /* Missing values name the option. */
    const char *m1[] = {"kontena-master", "--port", NULL};
    expect_args_error(m1, NARGS(m1), "--port");
    const char *m2[] = {"kontena-master", "--bind", NULL};
    expect_args_error(m2, NARGS(m2), "--bind");
    const char *m3[] = {"kontena-master", "--database-url", NULL};
    expect_args_error(m3, NARGS(m3), "--database-url");
    const char *m4[] = {"kontena-master", "--port=", NULL};
    expect_args_error(m4, NARGS(m4), "--port");
}

static void test_commands(void **state)
{
    (void)state;
    struct master_config c;
    char err[256] = "";

    const char *serve[] = {"kontena-master", "serve", "--port", "1", NULL};
    assert_int_equal(parse_args(serve, NARGS(serve), &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.command, MASTER_CMD_SERVE);
    assert_int_equal(c.port, 1);
    master_config_release(&c);

    const char *reset[] = {"kontena-master", "reset-admin-code", "--code",
                           "123456", "--data-dir", "/tmp/x", NULL};
    assert_int_equal(parse_args(reset, NARGS(reset), &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.command, MASTER_CMD_RESET_ADMIN_CODE);
    assert_string_equal(c.initial_admin_code, "123456");
    assert_string_equal(c.store_url, "sqlite:/tmp/x");
    master_config_release(&c);

    const char *help[] = {"kontena-master", "help", NULL};
    assert_int_equal(parse_args(help, NARGS(help), &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_HELP);
    master_config_release(&c);

    const char *version[] = {"kontena-master", "version", NULL};
    assert_int_equal(
        parse_args(version, NARGS(version), &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_VERSION);
    master_config_release(&c);

    const char *h1[] = {"kontena-master", "--help", NULL};
    assert_int_equal(parse_args(h1, NARGS(h1), &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_HELP);
    master_config_release(&c);

    const char *h2[] = {"kontena-master", "-h", NULL};
    assert_int_equal(parse_args(h2, NARGS(h2), &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_HELP);
    master_config_release(&c);

    const char *v1[] = {"kontena-master", "--version", NULL};
    assert_int_equal(parse_args(v1, NARGS(v1), &c, err, sizeof(err)), 0);
    assert_int_equal(c.command, MASTER_CMD_VERSION);
    master_config_release(&c);

    const char *unknown[] = {"kontena-master", "launch", NULL};
    expect_args_error(unknown, NARGS(unknown), "launch");

    /* The usage text documents the commands and every flag. */
    assert_non_null(strstr(master_config_usage, "reset-admin-code"));
    assert_non_null(strstr(master_config_usage, "--auth-cache-ms"));
    assert_non_null(strstr(master_config_usage, "--database-url"));
}

static void test_admin_code_length(void **state)
{
    (void)state;
    const char *e1[] = {"INITIAL_ADMIN_CODE=abc", NULL};
    expect_env_error(e1, "INITIAL_ADMIN_CODE");
    const char *e2[] = {"INITIAL_ADMIN_CODE=12345", NULL};
    expect_env_error(e2, "INITIAL_ADMIN_CODE");
    const char *a1[] = {"kontena-master", "--code", "short", NULL};
    expect_args_error(a1, NARGS(a1), "INITIAL_ADMIN_CODE");

    char longcode[300];
    memset(longcode, 'a', sizeof(longcode) - 1);
    longcode[sizeof(longcode) - 1] = '\0';
    char var[320];
    snprintf(var, sizeof(var), "INITIAL_ADMIN_CODE=%s", longcode);
    const char *e3[] = {var, NULL};
    expect_env_error(e3, "INITIAL_ADMIN_CODE");

    struct master_config c;
    char err[256];
    const char *ok[] = {"INITIAL_ADMIN_CODE=123456", NULL};
    assert_int_equal(parse_env(ok, &c, err, sizeof(err)), 0);
    assert_string_equal(c.initial_admin_code, "123456");
    master_config_release(&c);
}

/* A repeated flag: the last one wins and the earlier value is freed (ASan
 * checks the leak). */
static void test_repeated_flags(void **state)
{
    (void)state;
    const char *a[] = {"kontena-master", "--bind=a",     "--bind=b",
                       "--database-url", "postgres://1", "--database-url",
                       "postgres://2",   NULL};
    const char *env[] = {"KONTENA_BIND=env", NULL};
    struct master_config c;
    char err[256];
    assert_int_equal(master_config_parse(&c, ENV(env), NARGS(a), ARGV(a),
                                         err, sizeof(err)),
                     0);
    assert_string_equal(c.bind, "b");
    assert_string_equal(c.store_url, "postgres://2");
    master_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_env_var),
        cmocka_unit_test(test_env_bools_and_empty),
        cmocka_unit_test(test_bad_integers),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_flags_win_over_env),
        cmocka_unit_test(test_every_flag),
        cmocka_unit_test(test_bool_flags),
        cmocka_unit_test(test_store_selection),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_admin_code_length),
        cmocka_unit_test(test_repeated_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
