/* Unit tests for the CLI's client config (src/cli/config.c): load, the
 * legacy-layout migration, environment overrides, atomic save.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/config.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char modern[] =
    "{\"current_server\":\"prod\",\"current_account\":\"kontena\","
    "\"servers\":[{\"name\":\"prod\",\"url\":\"https://m:8443\","
    "\"token\":\"t1\",\"token_expires_at\":1700000000,"
    "\"refresh_token\":\"r1\",\"username\":\"admin\",\"grid\":\"g\","
    "\"account\":\"master\"},"
    "{\"name\":\"dev\",\"url\":\"http://d\",\"token\":null}],"
    "\"accounts\":[{\"name\":\"kontena\",\"url\":\"https://cloud\"}]}";

static void test_load_modern(void **state)
{
    (void)state;
    struct config *cfg = config_new("/tmp/x");
    char err[256];
    assert_int_equal(
        config_load_text(cfg, modern, strlen(modern), err, sizeof(err)), 0);
    assert_false(cfg->is_migrated);
    assert_int_equal(cfg->nservers, 2);
    struct config_server *s = config_current(cfg);
    assert_non_null(s);
    assert_string_equal(s->name, "prod");
    assert_string_equal(s->token, "t1");
    assert_string_equal(s->refresh_token, "r1");
    assert_int_equal(s->token_expires_at, 1700000000);
    assert_string_equal(config_grid(cfg, s), "g");
    assert_null(config_find(cfg, "dev")->token);

    /* Unknown keys survive a round trip. */
    char *text = config_to_text(cfg);
    assert_non_null(strstr(text, "\"account\": \"master\""));
    assert_non_null(strstr(text, "https://cloud"));
    struct config *again = config_new("/tmp/x");
    assert_int_equal(
        config_load_text(again, text, strlen(text), err, sizeof(err)), 0);
    assert_int_equal(again->nservers, 2);
    assert_string_equal(config_current(again)->url, "https://m:8443");
    config_free(again);
    cp_free(text);
    config_free(cfg);
}

static void test_migrate_legacy(void **state)
{
    (void)state;
    static const char legacy[] =
        "{\"server\":{\"url\":\"http://old:9292\",\"token\":\"tok\","
        "\"grid\":\"g1\",\"email\":\"me@x\"}}";
    struct config *cfg = config_new("/tmp/x");
    char err[256];
    assert_int_equal(
        config_load_text(cfg, legacy, strlen(legacy), err, sizeof(err)), 0);
    assert_true(cfg->is_migrated);
    struct config_server *s = config_current(cfg);
    assert_non_null(s);
    assert_string_equal(s->name, "default");
    assert_string_equal(s->url, "http://old:9292");
    assert_string_equal(s->username, "me@x");
    assert_string_equal(s->grid, "g1");
    char *text = config_to_text(cfg);
    assert_null(strstr(text, "\"server\":"));
    assert_non_null(strstr(text, "\"servers\""));
    cp_free(text);
    config_free(cfg);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct config *cfg = config_new("/tmp/x");
    char err[256];
    assert_int_equal(config_load_text(cfg, "[1]", 3, err, sizeof(err)),
                     CP_EINVAL);
    assert_int_equal(config_load_text(cfg, "{", 1, err, sizeof(err)),
                     CP_EINVAL);
    static const char odd[] = "{\"servers\":[1,{\"url\":\"x\"},"
                              "{\"name\":\"a\",\"token_expires_at\":\"x\"}],"
                              "\"current_server\":5}";
    assert_int_equal(config_load_text(cfg, odd, strlen(odd), err, sizeof(err)),
                     0);
    assert_int_equal(cfg->nservers, 1);
    assert_null(config_current(cfg));
    assert_int_equal(config_find(cfg, "a")->token_expires_at, 0);
    assert_int_equal(config_load_text(cfg, "", 0, err, sizeof(err)), 0);
    assert_int_equal(cfg->nservers, 0);
    config_free(cfg);
}

static void test_put_remove(void **state)
{
    (void)state;
    struct config *cfg = config_new("/tmp/x");
    config_put_server(cfg, config_server_new("a", "http://a"));
    config_put_server(cfg, config_server_new("b", "http://b"));
    config_put_server(cfg, config_server_new("a", "http://a2"));
    assert_int_equal(cfg->nservers, 2);
    assert_string_equal(config_find(cfg, "a")->url, "http://a2");
    config_set_current(cfg, "a");
    assert_int_equal(config_remove_server(cfg, "a"), 0);
    assert_null(cfg->current_server);
    assert_int_equal(config_remove_server(cfg, "a"), CP_ENOTFOUND);
    assert_int_equal(cfg->nservers, 1);
    config_free(cfg);
}

static void test_env_overrides(void **state)
{
    (void)state;
    struct config *cfg = config_new("/tmp/x");
    char err[256];
    assert_int_equal(
        config_load_text(cfg, modern, strlen(modern), err, sizeof(err)), 0);
    config_apply_env(cfg, NULL, "dev", "g2", "envtok");
    struct config_server *s = config_current(cfg);
    assert_string_equal(s->name, "dev");
    assert_string_equal(config_token(cfg, s), "envtok");
    assert_true(config_token_from_env(cfg, s));
    assert_string_equal(config_grid(cfg, s), "g2");
    /* Overrides touch only the selected server and never reach the file. */
    struct config_server *prod = config_find(cfg, "prod");
    assert_string_equal(config_token(cfg, prod), "t1");
    char *text = config_to_text(cfg);
    assert_null(strstr(text, "envtok"));
    assert_null(strstr(text, "g2"));
    cp_free(text);
    assert_false(cfg->is_readonly);
    config_free(cfg);

    cfg = config_new("/tmp/x");
    config_apply_env(cfg, "http://u:1", NULL, NULL, "tok");
    assert_true(cfg->is_readonly);
    s = config_current(cfg);
    assert_non_null(s);
    assert_string_equal(s->name, "default");
    assert_string_equal(s->url, "http://u:1");
    assert_string_equal(config_token(cfg, s), "tok");
    config_free(cfg);
}

static void test_save_atomic_0600(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_cli_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cp_asprintf("%s/client.json", dir);
    struct config *cfg = config_new(path);
    char err[256];
    assert_int_equal(config_load(cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->nservers, 0);
    struct config_server *s = config_server_new("m", "http://m");
    config_set_str(&s->token, "secret");
    s->token_expires_at = 42;
    config_put_server(cfg, s);
    config_set_current(cfg, "m");
    assert_int_equal(config_save(cfg, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    struct config *back = config_new(path);
    assert_int_equal(config_load(back, err, sizeof(err)), 0);
    assert_string_equal(config_current(back)->token, "secret");
    assert_int_equal(config_current(back)->token_expires_at, 42);
    config_free(back);

    /* Read-only (KONTENA_URL) never writes. */
    cfg->is_readonly = true;
    config_set_current(cfg, NULL);
    assert_int_equal(config_save(cfg, err, sizeof(err)), 0);
    back = config_new(path);
    assert_int_equal(config_load(back, err, sizeof(err)), 0);
    assert_string_equal(back->current_server, "m");
    config_free(back);

    /* A directory that does not exist fails cleanly. */
    struct config *bad = config_new("/nonexistent-dir/x.json");
    assert_int_equal(config_save(bad, err, sizeof(err)), CP_EIO);
    config_free(bad);

    config_free(cfg);
    unlink(path);
    rmdir(dir);
    cp_free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_modern),
        cmocka_unit_test(test_migrate_legacy),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_put_remove),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_save_atomic_0600),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
