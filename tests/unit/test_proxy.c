/* Unit tests for trusted proxies and forwarded client addresses
 * (src/master/proxy.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/master/proxy.h"

#include <string.h>

static struct proxy_list parse_ok(const char *spec)
{
    struct proxy_list l;
    char err[160] = "";
    if (proxy_list_parse(spec, &l, err, sizeof(err)) != 0)
        fail_msg("parse %s: %s", spec, err);
    return l;
}

static void test_parse_and_match(void **state)
{
    (void)state;
    struct proxy_list l = parse_ok("10.0.0.5, 172.16.0.0/12 ::1,fd00::/8");
    assert_int_equal(l.len, 4);
    assert_true(proxy_list_has(&l, "10.0.0.5"));
    assert_false(proxy_list_has(&l, "10.0.0.6"));
    assert_true(proxy_list_has(&l, "172.16.0.1"));
    assert_true(proxy_list_has(&l, "172.31.255.254"));
    assert_false(proxy_list_has(&l, "172.32.0.1"));
    assert_true(proxy_list_has(&l, "::1"));
    assert_true(proxy_list_has(&l, "fd12:3456::1"));
    assert_false(proxy_list_has(&l, "fe80::1"));
    /* IPv4-mapped IPv6 peers are their IPv4 address. */
    assert_true(proxy_list_has(&l, "::ffff:10.0.0.5"));
    assert_false(proxy_list_has(&l, "not-an-ip"));
    assert_false(proxy_list_has(&l, NULL));
    proxy_list_release(&l);
}

static void test_host_bits_and_zero_prefix(void **state)
{
    (void)state;
    /* Host bits in the entry are ignored; /0 trusts every address. */
    struct proxy_list l = parse_ok("192.168.1.77/24");
    assert_true(proxy_list_has(&l, "192.168.1.1"));
    assert_false(proxy_list_has(&l, "192.168.2.1"));
    proxy_list_release(&l);
    l = parse_ok("0.0.0.0/0");
    assert_true(proxy_list_has(&l, "8.8.8.8"));
    assert_false(proxy_list_has(&l, "::1"));
    proxy_list_release(&l);
}

static void test_parse_errors(void **state)
{
    (void)state;
    const char *bad[] = {"10.0.0.256", "10.0.0.0/33", "10.0.0.0/-1",
                         "10.0.0.0/", "::1/129", "example.com",
                         "10.0.0.1, nope", "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proxy_list l;
        char err[160] = "";
        assert_int_equal(proxy_list_parse(bad[i], &l, err, sizeof(err)),
                         CP_EINVAL);
        assert_non_null(strstr(err, "KONTENA_TRUSTED_PROXIES"));
        assert_int_equal(l.len, 0);
        assert_null(l.nets);
    }
    struct proxy_list l = parse_ok("");
    assert_int_equal(l.len, 0);
    proxy_list_release(&l);
    l = parse_ok(NULL);
    assert_int_equal(l.len, 0);
}

static void expect_client(const struct proxy_list *l, const char *peer,
                          const char *xff, const char *want)
{
    char *got = proxy_client_ip(l, peer, xff);
    if (strcmp(got, want) != 0)
        fail_msg("peer %s xff %s: got %s, want %s", peer, xff ? xff : "-",
                 got, want);
    cp_free(got);
}

static void test_client_ip(void **state)
{
    (void)state;
    struct proxy_list l = parse_ok("10.0.0.0/8");
    /* Untrusted peers cannot choose their address. */
    expect_client(&l, "203.0.113.9", "1.2.3.4", "203.0.113.9");
    /* A trusted peer without the header is the client. */
    expect_client(&l, "10.0.0.5", NULL, "10.0.0.5");
    expect_client(&l, "10.0.0.5", "198.51.100.7", "198.51.100.7");
    /* The rightmost untrusted entry wins: a client's own header entries
     * to the left are not believed. */
    expect_client(&l, "10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1",
                  "198.51.100.7");
    /* All trusted: the leftmost. */
    expect_client(&l, "10.0.0.5", "10.9.9.9, 10.1.1.1", "10.9.9.9");
    /* A malformed entry stops the walk at the last good address. */
    expect_client(&l, "10.0.0.5", "198.51.100.7, garbage", "10.0.0.5");
    expect_client(&l, "10.0.0.5", "garbage, 10.2.2.2", "10.2.2.2");
    expect_client(&l, "10.0.0.5", "", "10.0.0.5");
    expect_client(&l, "10.0.0.5", " , ", "10.0.0.5");
    expect_client(&l, "10.0.0.5", "2001:db8::1", "2001:db8::1");
    proxy_list_release(&l);
    struct proxy_list none = parse_ok(NULL);
    expect_client(&none, "127.0.0.1", "1.2.3.4", "127.0.0.1");
}

static void test_scheme(void **state)
{
    (void)state;
    struct proxy_list l = parse_ok("127.0.0.1");
    assert_string_equal(proxy_scheme(&l, "127.0.0.1", "https"), "https");
    assert_string_equal(proxy_scheme(&l, "127.0.0.1", "HTTPS, http"),
                        "https");
    assert_string_equal(proxy_scheme(&l, "127.0.0.1", "http"), "http");
    assert_null(proxy_scheme(&l, "127.0.0.1", "gopher"));
    assert_null(proxy_scheme(&l, "127.0.0.1", "httpsx"));
    assert_null(proxy_scheme(&l, "127.0.0.2", "https"));
    assert_null(proxy_scheme(&l, "127.0.0.1", NULL));
    proxy_list_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_host_bits_and_zero_prefix),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_client_ip),
        cmocka_unit_test(test_scheme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
