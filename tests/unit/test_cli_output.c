/* Unit tests for CLI output (src/cli/output.c) and the client's turning
 * of master error bodies into one line (client_error_text).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/client.h"
#include "../../src/cli/output.h"
#include "../../src/common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_table_alignment(void **state)
{
    (void)state;
    static const char *const hdr[] = {"name", "nodes", "description"};
    struct table *t = table_new(3, hdr);
    const char *r1[] = {"prod *", "12", "x"};
    const char *r2[] = {"a", NULL, NULL};
    const char *r3[] = {"\xc3\xa4"
                        "bc",
                        "1", "y"};
    table_add(t, r1);
    table_add(t, r2);
    table_add(t, r3);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    table_print(t, f);
    fclose(f);
    assert_string_equal(buf, "NAME     NODES   DESCRIPTION\n"
                             "prod *   12      x\n"
                             "a\n"
                             "\xc3\xa4"
                             "bc      1       y\n");
    cp_free(buf);
    table_free(t);
}

static void test_output_cell(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s, s:i, s:n, s:[s,s], s:b}", "s", "x", "i", 5,
                          "n", "a", "p", "q", "b", 1);
    static const char *const want[][2] = {{"s", "x"},    {"i", "5"},
                                          {"n", ""},     {"a", "p,q"},
                                          {"b", "true"}, {"missing", ""}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *s = output_cell(json_object_get(j, want[i][0]));
        assert_string_equal(s, want[i][1]);
        cp_free(s);
    }
    json_decref(j);
}

static void check_error(const char *body, const char *want)
{
    json_t *j = json_loads(body, 0, NULL);
    char *s = client_error_text(j);
    if (want == NULL)
        assert_null(s);
    else
        assert_string_equal(s, want);
    cp_free(s);
    json_decref(j);
}

static void test_error_text(void **state)
{
    (void)state;
    check_error("{\"error\":\"Not found\"}", "not found");
    check_error("{\"error\":\"Access denied\"}", "access denied");
    check_error("{\"error\":\"TLS broke\"}", "TLS broke");
    check_error("{\"error\":\"invalid_token\",\"error_description\":"
                "\"Token expired\"}",
                "token expired");
    check_error("{\"error\":{\"name\":\"is already taken\","
                "\"initial_size\":\"must be 1..7\"}}",
                "name: is already taken; initial_size: must be 1..7");
    check_error("{\"error\":{\"services\":{\"web\":\"bad\"}}}",
                "services: {\"web\":\"bad\"}");
    check_error("{\"code\":500,\"message\":\"Boom\"}", "boom");
    check_error("{\"foo\":1}", NULL);
    check_error("[]", NULL);
    check_error("{\"error\":\"\"}", "");
}

static void test_escape(void **state)
{
    (void)state;
    char *s = client_escape("a+b@x.com/../ é");
    assert_string_equal(s, "a%2Bb@x.com%2F..%2F%20%C3%A9");
    cp_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_output_cell),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
