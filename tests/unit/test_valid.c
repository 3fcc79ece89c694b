/* Unit tests for the validation rules of spec 3.2 (src/master/valid.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/json.h"
#include "../../src/master/valid.h"

#include <stdio.h>
#include <string.h>

static char *repeat(char c, size_t n)
{
    static char buf[1024];
    assert_true(n < sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static json_t *J(const char *text)
{
    char err[160];
    json_t *j = cp_json_parse(text, strlen(text), err, sizeof(err));
    if (j == NULL)
        print_error("bad test JSON %s: %s\n", text, err);
    assert_non_null(j);
    return j;
}

static void test_grid_name(void **state)
{
    (void)state;
    assert_true(valid_grid_name("abc"));
    assert_true(valid_grid_name("my-grid_01"));
    assert_true(valid_grid_name("-lead"));
    assert_true(valid_grid_name("ABC"));
    assert_true(valid_grid_name(repeat('a', 64)));
    assert_false(valid_grid_name(repeat('a', 65)));
    assert_false(valid_grid_name("ab"));
    assert_false(valid_grid_name(""));
    assert_false(valid_grid_name("has space"));
    assert_false(valid_grid_name("dot.ted"));
    assert_false(valid_grid_name("sl/ash"));
    assert_false(valid_grid_name("emoji\xc3\xa9"));
    assert_false(valid_grid_name("abc\n"));
}

static void test_name(void **state)
{
    (void)state;
    assert_true(valid_name("a"));
    assert_true(valid_name("web-1"));
    assert_true(valid_name("_x"));
    assert_true(valid_name("9"));
    assert_true(valid_name(repeat('z', 64)));
    assert_false(valid_name(repeat('z', 65)));
    assert_false(valid_name(""));
    assert_false(valid_name("-web"));
    assert_false(valid_name("web.1"));
    assert_false(valid_name("we b"));
    assert_false(valid_name("web/1"));
}

static void test_cidr(void **state)
{
    (void)state;
    assert_true(valid_cidr("10.0.0.0/8"));
    assert_true(valid_cidr("192.168.1.0/24"));
    assert_true(valid_cidr("0.0.0.0/0"));
    assert_true(valid_cidr("255.255.255.255/32"));
    assert_true(valid_cidr("10.1.2.3/16")); /* host bits may be set */

    assert_false(valid_cidr(""));
    assert_false(valid_cidr("/"));
    assert_false(valid_cidr("/24"));
    assert_false(valid_cidr("10.0.0.0"));      /* missing prefix */
    assert_false(valid_cidr("10.0.0.0/"));     /* empty prefix */
    assert_false(valid_cidr("10.0.0.0/33"));   /* prefix too long */
    assert_false(valid_cidr("10.0.0.0/-1"));
    assert_false(valid_cidr("10.0.0.0/8x"));   /* trailing junk */
    assert_false(valid_cidr("10.0.0.0/8 "));
    assert_false(valid_cidr("10.0.0.0/8/8"));
    assert_false(valid_cidr("10.0.0.0/ 8"));
    assert_false(valid_cidr("256.0.0.0/8"));   /* bad octet */
    assert_false(valid_cidr("10.0.0.300/8"));
    assert_false(valid_cidr("10.0.0/8"));      /* three octets */
    assert_false(valid_cidr("10.0.0.0.0/8"));
    assert_false(valid_cidr("a.b.c.d/8"));
    assert_false(valid_cidr(" 10.0.0.0/8"));
    assert_false(valid_cidr("1234567890123456/8")); /* too long an address */
    assert_false(valid_cidr("::1/128"));
    assert_false(valid_cidr("fe80::/10"));
}

/* The prefix is "n in 0..32": a sign or a hex prefix is not a CIDR any
 * consumer of trusted_subnets (weave, iptables, the agent) will read. */
static void test_cidr_prefix_is_plain_digits(void **state)
{
    (void)state;
    assert_false(valid_cidr("10.0.0.0/+8"));
    assert_false(valid_cidr("10.0.0.0/-0"));
    assert_false(valid_cidr("10.0.0.0/0x8"));
}

static void test_cidr_within(void **state)
{
    (void)state;
    assert_true(valid_cidr_within("10.81.0.0/16", "10.81.0.0/16"));
    assert_true(valid_cidr_within("10.81.1.0/24", "10.81.0.0/16"));
    assert_true(valid_cidr_within("10.81.255.255/32", "10.81.0.0/16"));
    assert_true(valid_cidr_within("1.2.3.4/32", "0.0.0.0/0"));
    assert_true(valid_cidr_within("0.0.0.0/0", "0.0.0.0/0"));
    assert_false(valid_cidr_within("10.82.0.0/24", "10.81.0.0/16"));
    /* A wider network is not within a narrower one. */
    assert_false(valid_cidr_within("10.0.0.0/8", "10.81.0.0/16"));
    assert_false(valid_cidr_within("0.0.0.0/0", "10.0.0.0/8"));
    /* Bad input on either side. */
    assert_false(valid_cidr_within("10.81.1.0", "10.81.0.0/16"));
    assert_false(valid_cidr_within("10.81.1.0/24", "bogus"));
    assert_false(valid_cidr_within("", ""));
}

static void test_token(void **state)
{
    (void)state;
    assert_true(valid_token(repeat('a', 16)));
    assert_true(valid_token(repeat('A', 256)));
    assert_true(valid_token("abcDEF0123456789!@#$%^&*()_+-=~"));
    assert_false(valid_token(repeat('a', 15)));
    assert_false(valid_token(repeat('a', 257)));
    assert_false(valid_token(""));
    assert_false(valid_token("abcdefgh ijklmnopq"));
    assert_false(valid_token("abcdefghijklmnopq\t"));
    assert_false(valid_token("abcdefghijklmnopq\n"));
    assert_false(valid_token("abcdefghijklmnop\x7f"));
    assert_false(valid_token("abcdefghijklmnop\xc3\xa9"));
}

static void test_host_port(void **state)
{
    (void)state;
    assert_true(valid_host_port("statsd"));
    assert_true(valid_host_port("statsd.example.com"));
    assert_true(valid_host_port("statsd:8125"));
    assert_true(valid_host_port("10.0.0.1:1"));
    assert_true(valid_host_port("my_host-1:65535"));
    assert_false(valid_host_port(""));
    assert_false(valid_host_port(":8125"));
    assert_false(valid_host_port("host:"));
    assert_false(valid_host_port("host:0"));
    assert_false(valid_host_port("host:65536"));
    assert_false(valid_host_port("host:80x"));
    assert_false(valid_host_port("host:-1"));
    assert_false(valid_host_port("ho st:80"));
    assert_false(valid_host_port("host/path:80"));
    assert_false(valid_host_port("a:b:80"));
    assert_false(valid_host_port(repeat('h', 256)));
}

/* ==== valid_grid_settings ==== */

static void check_one(const char *field, const char *body_text, bool good)
{
    json_t *body = J(body_text);
    json_t *out = J("{\"stats\":{\"statsd\":null},\"logs\":"
                    "{\"forwarder\":\"none\"},\"default_affinity\":[],"
                    "\"trusted_subnets\":[]}");
    json_t *before = json_deep_copy(out);
    json_t *errors = json_object();
    bool ok = valid_grid_settings(body, out, errors);
    if (ok != good)
        print_error("%s: %s: want %s\n", field, body_text,
                    good ? "good" : "bad");
    assert_int_equal(ok, good);
    if (good) {
        assert_int_equal(json_object_size(errors), 0);
        assert_true(json_equal(json_object_get(out, field),
                               json_object_get(body, field)));
    } else {
        assert_int_equal(json_object_size(errors), 1);
        const char *msg = cp_json_str(errors, field);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        /* out is untouched by a bad value. */
        assert_true(json_equal(out, before));
    }
    json_decref(body);
    json_decref(out);
    json_decref(before);
    json_decref(errors);
}

static void test_settings_affinity(void **state)
{
    (void)state;
    check_one("default_affinity", "{\"default_affinity\":[]}", true);
    check_one("default_affinity",
              "{\"default_affinity\":[\"label==az-1\",\"node!=n1\","
              "\"label=~^az\",\"node!~x\"]}",
              true);
    check_one("default_affinity", "{\"default_affinity\":\"label==a\"}",
              false);
    check_one("default_affinity", "{\"default_affinity\":[1]}", false);
    check_one("default_affinity", "{\"default_affinity\":[\"label=a\"]}",
              false);
    check_one("default_affinity", "{\"default_affinity\":[\"label\"]}",
              false);
    check_one("default_affinity", "{\"default_affinity\":{}}", false);

    char big[1200];
    snprintf(big, sizeof(big), "{\"default_affinity\":[\"k==%s\"]}",
             repeat('v', 260));
    check_one("default_affinity", big, false);
}

static void test_settings_subnets(void **state)
{
    (void)state;
    check_one("trusted_subnets", "{\"trusted_subnets\":[]}", true);
    check_one("trusted_subnets",
              "{\"trusted_subnets\":[\"192.168.0.0/24\",\"10.0.0.0/8\"]}",
              true);
    check_one("trusted_subnets", "{\"trusted_subnets\":[\"192.168.0.0\"]}",
              false);
    check_one("trusted_subnets",
              "{\"trusted_subnets\":[\"10.0.0.0/8\",\"10.0.0.0/33\"]}",
              false);
    check_one("trusted_subnets", "{\"trusted_subnets\":[24]}", false);
    check_one("trusted_subnets", "{\"trusted_subnets\":\"10.0.0.0/8\"}",
              false);
    check_one("trusted_subnets", "{\"trusted_subnets\":{}}", false);
}

static void test_settings_stats(void **state)
{
    (void)state;
    check_one("stats", "{\"stats\":{}}", true);
    check_one("stats", "{\"stats\":{\"statsd\":null}}", true);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"statsd.local\","
              "\"port\":8125}}}",
              true);
    check_one("stats", "{\"stats\":{\"statsd\":{\"server\":\"s\"}}}", true);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":null}}}",
              true);
    check_one("stats", "{\"stats\":[]}", false);
    check_one("stats", "{\"stats\":\"statsd\"}", false);
    check_one("stats", "{\"stats\":{\"statsd\":\"s:1\"}}", false);
    check_one("stats", "{\"stats\":{\"statsd\":{}}}", false);
    check_one("stats", "{\"stats\":{\"statsd\":{\"server\":\"a b\"}}}",
              false);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":0}}}",
              false);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":65536}}}",
              false);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":\"8125\"}}"
              "}",
              false);
    check_one("stats",
              "{\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":1.5}}}",
              false);
}

static void test_settings_logs(void **state)
{
    (void)state;
    check_one("logs", "{\"logs\":{\"forwarder\":\"none\"}}", true);
    check_one("logs",
              "{\"logs\":{\"forwarder\":\"fluentd\",\"opts\":"
              "{\"fluentd-address\":\"f:24224\"}}}",
              true);
    check_one("logs",
              "{\"logs\":{\"forwarder\":\"fluentd\",\"opts\":null}}", true);
    check_one("logs", "{\"logs\":{}}", false);
    check_one("logs", "{\"logs\":{\"forwarder\":\"syslog\"}}", false);
    check_one("logs", "{\"logs\":{\"forwarder\":1}}", false);
    check_one("logs", "{\"logs\":\"fluentd\"}", false);
    check_one("logs",
              "{\"logs\":{\"forwarder\":\"fluentd\",\"opts\":[\"a\"]}}",
              false);
    check_one("logs",
              "{\"logs\":{\"forwarder\":\"fluentd\",\"opts\":{\"a\":1}}}",
              false);
}

static void test_settings_null_logs_deletes(void **state)
{
    (void)state;
    json_t *body = J("{\"logs\":null}");
    json_t *out = J("{\"logs\":{\"forwarder\":\"fluentd\"},\"stats\":{}}");
    json_t *errors = json_object();
    assert_true(valid_grid_settings(body, out, errors));
    assert_null(json_object_get(out, "logs"));
    assert_non_null(json_object_get(out, "stats"));
    assert_int_equal(json_object_size(errors), 0);
    json_decref(body);
    json_decref(out);
    json_decref(errors);

    /* Null for the others leaves them as they are. */
    body = J("{\"stats\":null,\"default_affinity\":null,"
             "\"trusted_subnets\":null}");
    out = J("{\"stats\":{\"statsd\":null},\"default_affinity\":[\"a==b\"],"
            "\"trusted_subnets\":[\"10.0.0.0/8\"]}");
    json_t *before = json_deep_copy(out);
    errors = json_object();
    assert_true(valid_grid_settings(body, out, errors));
    assert_true(json_equal(out, before));
    json_decref(body);
    json_decref(out);
    json_decref(before);
    json_decref(errors);
}

static void test_settings_all_good_copied(void **state)
{
    (void)state;
    json_t *body = J("{\"default_affinity\":[\"az==1\"],"
                     "\"trusted_subnets\":[\"10.0.0.0/8\"],"
                     "\"stats\":{\"statsd\":{\"server\":\"s\",\"port\":1}},"
                     "\"logs\":{\"forwarder\":\"fluentd\"},"
                     "\"ignored\":true}");
    json_t *out = json_object();
    json_t *errors = json_object();
    assert_true(valid_grid_settings(body, out, errors));
    assert_int_equal(json_object_size(errors), 0);
    assert_int_equal(json_object_size(out), 4);
    assert_null(json_object_get(out, "ignored"));
    const char *keys[] = {"default_affinity", "trusted_subnets", "stats",
                          "logs"};
    for (size_t i = 0; i < 4; i++)
        assert_true(json_equal(json_object_get(out, keys[i]),
                               json_object_get(body, keys[i])));
    json_decref(body);
    json_decref(out);
    json_decref(errors);

    /* An empty body is fine and changes nothing. */
    body = json_object();
    out = json_object();
    errors = json_object();
    assert_true(valid_grid_settings(body, out, errors));
    assert_int_equal(json_object_size(out), 0);
    json_decref(body);
    json_decref(out);
    json_decref(errors);
}

static void test_settings_several_bad(void **state)
{
    (void)state;
    json_t *body = J("{\"default_affinity\":\"x\","
                     "\"trusted_subnets\":[\"nope\"],"
                     "\"stats\":[],"
                     "\"logs\":{\"forwarder\":\"splunk\"}}");
    json_t *out = J("{\"logs\":{\"forwarder\":\"none\"}}");
    json_t *before = json_deep_copy(out);
    json_t *errors = json_object();
    assert_false(valid_grid_settings(body, out, errors));
    assert_int_equal(json_object_size(errors), 4);
    assert_non_null(cp_json_str(errors, "default_affinity"));
    assert_non_null(cp_json_str(errors, "trusted_subnets"));
    assert_non_null(cp_json_str(errors, "stats"));
    assert_non_null(cp_json_str(errors, "logs"));
    assert_true(json_equal(out, before));
    json_decref(body);
    json_decref(out);
    json_decref(before);
    json_decref(errors);

    /* A mix: the good ones are copied, the bad ones named. */
    body = J("{\"default_affinity\":[\"a==b\"],"
             "\"trusted_subnets\":[\"10.0.0.0/40\"],"
             "\"logs\":{\"forwarder\":\"fluentd\"}}");
    out = json_object();
    errors = json_object();
    assert_false(valid_grid_settings(body, out, errors));
    assert_int_equal(json_object_size(errors), 1);
    assert_non_null(cp_json_str(errors, "trusted_subnets"));
    assert_non_null(json_object_get(out, "default_affinity"));
    assert_non_null(json_object_get(out, "logs"));
    assert_null(json_object_get(out, "trusted_subnets"));
    json_decref(body);
    json_decref(out);
    json_decref(errors);

    /* Errors already present are kept; the result counts only new ones. */
    body = J("{\"logs\":{\"forwarder\":\"none\"}}");
    out = json_object();
    errors = J("{\"name\":\"is taken\"}");
    assert_true(valid_grid_settings(body, out, errors));
    assert_int_equal(json_object_size(errors), 1);
    json_decref(body);
    json_decref(out);
    json_decref(errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_name),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_cidr_prefix_is_plain_digits),
        cmocka_unit_test(test_cidr_within),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_host_port),
        cmocka_unit_test(test_settings_affinity),
        cmocka_unit_test(test_settings_subnets),
        cmocka_unit_test(test_settings_stats),
        cmocka_unit_test(test_settings_logs),
        cmocka_unit_test(test_settings_null_logs_deletes),
        cmocka_unit_test(test_settings_all_good_copied),
        cmocka_unit_test(test_settings_several_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
