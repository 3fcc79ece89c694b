/* Unit tests for the CLI's option parser (src/cli/args.c) and for the
 * command dispatcher's handling of bad argv (usage errors, never crashes).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/args.h"
#include "../../src/cli/cli.h"
#include "../../src/common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static const struct args_opt opts[] = {
    {"name", 'n', ARGS_VALUE, "NAME", "a name"},
    {"force", 'f', ARGS_FLAG, NULL, "force"},
    {"log-opt", 0, ARGS_MULTI, "K=V", "an option"},
    {"output", 'o', ARGS_VALUE, "FORMAT", "format"},
    {0}};

static int parse(struct args *a, int argc, const char **argv)
{
    return args_parse(a, opts, argc, (char **)(uintptr_t)argv);
}

static void test_positional_and_values(void **state)
{
    (void)state;
    const char *argv[] = {"grid", "--name",        "x",
                          "-f",   "--log-opt=a=b", "--log-opt",
                          "c=d",  "-ojson",        "tail"};
    struct args a;
    assert_int_equal(parse(&a, 9, argv), 0);
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "grid");
    assert_string_equal(a.pos[1], "tail");
    assert_true(args_has(&a, "force"));
    assert_string_equal(args_get(&a, "name"), "x");
    assert_int_equal(args_count(&a, "log-opt"), 2);
    assert_string_equal(args_at(&a, "log-opt", 0), "a=b");
    assert_string_equal(args_at(&a, "log-opt", 1), "c=d");
    assert_null(args_at(&a, "log-opt", 2));
    assert_string_equal(args_get(&a, "output"), "json");
    assert_false(a.is_help);
    args_release(&a);
}

static void test_last_value_wins_and_double_dash(void **state)
{
    (void)state;
    const char *argv[] = {"-n", "a", "--name=b", "--", "--force", "-"};
    struct args a;
    assert_int_equal(parse(&a, 6, argv), 0);
    assert_string_equal(args_get(&a, "name"), "b");
    assert_int_equal(args_count(&a, "name"), 1);
    assert_false(args_has(&a, "force"));
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "--force");
    assert_string_equal(a.pos[1], "-");
    args_release(&a);
}

static void test_errors(void **state)
{
    (void)state;
    struct args a;
    const char *unknown[] = {"--bogus"};
    assert_int_equal(parse(&a, 1, unknown), CP_EINVAL);
    assert_string_equal(a.err, "unknown option --bogus");
    args_release(&a);

    const char *unknown_short[] = {"-z"};
    assert_int_equal(parse(&a, 1, unknown_short), CP_EINVAL);
    assert_string_equal(a.err, "unknown option -z");
    args_release(&a);

    const char *missing[] = {"x", "--name"};
    assert_int_equal(parse(&a, 2, missing), CP_EINVAL);
    assert_string_equal(a.err, "option --name needs a value");
    args_release(&a);

    const char *flag_val[] = {"--force=yes"};
    assert_int_equal(parse(&a, 1, flag_val), CP_EINVAL);
    assert_string_equal(a.err, "option --force takes no value");
    args_release(&a);
}

static void test_help_and_empty(void **state)
{
    (void)state;
    struct args a;
    const char *argv[] = {"x", "--help"};
    assert_int_equal(parse(&a, 2, argv), 0);
    assert_true(a.is_help);
    args_release(&a);
    assert_int_equal(parse(&a, 0, NULL), 0);
    assert_int_equal(a.npos, 0);
    args_release(&a);
    assert_int_equal(args_parse(&a, NULL, 0, NULL), 0);
    args_release(&a);
}

/* Runs cli_main with stdin, stdout and stderr on /dev/null, then puts
 * them back so cmocka can report. */
static int run(int argc, const char **argv)
{
    fflush(stdout);
    fflush(stderr);
    int saved[3];
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) {
        saved[fd] = dup(fd);
        dup2(null, fd);
    }
    int rc = cli_main(argc, (char **)(uintptr_t)argv);
    fflush(stdout);
    fflush(stderr);
    for (int fd = 0; fd < 3; fd++) {
        dup2(saved[fd], fd);
        close(saved[fd]);
    }
    close(null);
    return rc;
}

static void test_dispatch_usage_errors(void **state)
{
    (void)state;
    setenv("KONTENA_CONFIG", "/nonexistent-dir/kontena_client.json", 1);
    unsetenv("KONTENA_URL");
    const char *none[] = {"kontena"};
    assert_int_equal(run(1, none), 2);
    const char *unk[] = {"kontena", "frob"};
    assert_int_equal(run(2, unk), 2);
    const char *unk_sub[] = {"kontena", "grid", "frob"};
    assert_int_equal(run(3, unk_sub), 2);
    const char *missing[] = {"kontena", "grid", "create"};
    assert_int_equal(run(3, missing), 2);
    const char *extra[] = {"kontena", "grid", "use", "a", "b"};
    assert_int_equal(run(5, extra), 2);
    const char *badopt[] = {"kontena", "grid", "ls", "--nope"};
    assert_int_equal(run(4, badopt), 2);
    const char *badfmt[] = {"kontena", "master", "ls", "-o", "xml"};
    assert_int_equal(run(5, badfmt), 2);
    const char *badsize[] = {"kontena", "grid",           "create",
                             "g1",      "--initial-size", "x"};
    assert_int_equal(run(6, badsize), 2);
    const char *badlog[] = {"kontena",         "grid",    "create",    "g1",
                            "--log-forwarder", "fluentd", "--log-opt", "x"};
    assert_int_equal(run(8, badlog), 2);
    const char *nologin[] = {"kontena", "master", "login", "http://x"};
    assert_int_equal(run(4, nologin), 2);
    const char *help[] = {"kontena", "help", "grid", "create"};
    assert_int_equal(run(4, help), 0);
    const char *subhelp[] = {"kontena", "master", "token", "--help"};
    assert_int_equal(run(4, subhelp), 0);
    const char *alias[] = {"kontena", "master", "ls"};
    assert_int_equal(run(3, alias), 0);
    const char *nomaster[] = {"kontena", "grid", "ls"};
    assert_int_equal(run(3, nomaster), 1);
    const char *rm_no_tty[] = {"kontena", "grid", "rm", "g1"};
    assert_int_equal(run(4, rm_no_tty), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positional_and_values),
        cmocka_unit_test(test_last_value_wins_and_double_dash),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help_and_empty),
        cmocka_unit_test(test_dispatch_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
