/* Unit tests for the pure helpers of "kontena node" (src/cli/cmd_node.c):
 * the agent URI rewrite, label list edits and byte formatting.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/cli.h"
#include "../../src/common/alloc.h"
#include "../../src/common/json.h"

#include <string.h>

static void test_ws_url(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"http://master:8080", "ws://master:8080"},
        {"https://master.example.com", "wss://master.example.com"},
        {"HTTPS://m/", "wss://m/"},
        {"ws://already", "ws://already"},
        {"wss://already", "wss://already"},
        {"master:9292", "master:9292"},
        {"", ""},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
        char *s = cmd_node_ws_url(cases[i][0]);
        assert_string_equal(s, cases[i][1]);
        cp_free(s);
    }
}

/* Compact dump of j compared with want, then j released. */
static void assert_json(json_t *j, const char *want)
{
    assert_non_null(j);
    char *s = cp_json_dump(j);
    assert_string_equal(s, want);
    cp_free(s);
    json_decref(j);
}

static void test_labels_add(void **state)
{
    (void)state;
    json_t *old = json_pack("[s,s]", "az=a", "ssd");
    const char *add[] = {"ssd", "env=prod", "env=prod", "gpu"};
    assert_json(cmd_node_labels_add(old, add, 4),
                "[\"az=a\",\"ssd\",\"env=prod\",\"gpu\"]");
    assert_json(cmd_node_labels_add(old, NULL, 0), "[\"az=a\",\"ssd\"]");
    /* absent or null labels, duplicates and non-strings in the old list */
    assert_json(cmd_node_labels_add(NULL, add, 1), "[\"ssd\"]");
    json_t *messy = json_pack("[s,n,s,i]", "x", "x", 3);
    assert_json(cmd_node_labels_add(messy, add, 1), "[\"x\",\"ssd\"]");
    json_decref(messy);
    /* the input is not changed */
    assert_json(json_incref(old), "[\"az=a\",\"ssd\"]");
    json_decref(old);
}

static void test_labels_remove(void **state)
{
    (void)state;
    json_t *old = json_pack("[s,s,s]", "az=a", "ssd", "env=prod");
    const char *missing = "junk";
    const char *rm[] = {"ssd", "az=a"};
    assert_json(cmd_node_labels_remove(old, rm, 2, &missing), "[\"env=prod\"]");
    assert_null(missing);
    assert_json(cmd_node_labels_remove(old, NULL, 0, &missing),
                "[\"az=a\",\"ssd\",\"env=prod\"]");
    /* a label that is not there is named and nothing is removed */
    const char *bad[] = {"ssd", "gpu", "nope"};
    assert_null(cmd_node_labels_remove(old, bad, 3, &missing));
    assert_string_equal(missing, "gpu");
    assert_null(cmd_node_labels_remove(NULL, bad, 1, &missing));
    assert_string_equal(missing, "ssd");
    /* removing every label leaves an empty list, not null */
    const char *all[] = {"env=prod", "ssd", "az=a"};
    assert_json(cmd_node_labels_remove(old, all, 3, &missing), "[]");
    json_decref(old);
}

static void test_bytes(void **state)
{
    (void)state;
    static const struct {
        long long n;
        const char *want;
    } cases[] = {
        {0, "0 B"},
        {-5, "0 B"},
        {1023, "1023 B"},
        {1024, "1.00 KiB"},
        {1536, "1.50 KiB"},
        {2147483648LL, "2.00 GiB"},
        {1125899906842624LL * 4, "4096.00 TiB"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
        char *s = cmd_node_bytes(cases[i].n);
        assert_string_equal(s, cases[i].want);
        cp_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_url),
        cmocka_unit_test(test_labels_add),
        cmocka_unit_test(test_labels_remove),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
