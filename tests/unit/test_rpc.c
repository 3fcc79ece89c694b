/* Unit tests of the MessagePack-RPC codec (src/common/rpc.c, spec 4.3) and
 * of the pure node views in src/master/nodes.c (status, overlay address).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/proto.h"
#include "../../src/common/rpc.h"
#include "../../src/master/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Helpers ==== */

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* Decodes and expects a CP_EPROTO with a non-empty reason; returns the
 * reason in a static buffer. */
static const char *expect_eproto(const void *buf, size_t len, const char *what)
{
    static char err[256];
    struct rpc_msg m;
    memset(err, 0, sizeof(err));
    int rc = rpc_decode(buf, len, &m, err, sizeof(err));
    if (rc != CP_EPROTO)
        fail_msg("%s: expected CP_EPROTO, got %d", what, rc);
    if (err[0] == '\0')
        fail_msg("%s: no reason given", what);
    /* A failed decode leaves nothing to release. */
    assert_null(m.method);
    assert_null(m.params);
    assert_null(m.error);
    assert_null(m.result);
    rpc_msg_release(&m);
    return err;
}

static void expect_ok(const void *buf, size_t len, struct rpc_msg *m,
                      const char *what)
{
    char err[256] = "";
    int rc = rpc_decode(buf, len, m, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: expected success, got %d (%s)", what, rc, err);
}

static void assert_json_eq(const json_t *a, const json_t *b)
{
    if (!json_equal(a, b)) {
        char *sa = json_dumps(a, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        char *sb = json_dumps(b, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        fail_msg("JSON differs:\n  got      %s\n  expected %s", sa, sb);
    }
}

/* A params tree with every protocol type. */
static const char *const NESTED =
    "[\"XXXX:YYYY:ZZZZ\", {"
    "  \"small\": 1, \"zero\": 0, \"neg\": -1, \"neg32\": -2147483649,"
    "  \"big31\": 2147483648, \"big32\": 4294967296,"
    "  \"i64max\": 9223372036854775807, \"i64min\": -9223372036854775808,"
    "  \"neg8\": -33, \"u8\": 200, \"u16\": 65535, \"neg16\": -32769,"
    "  \"real\": 1.5, \"negreal\": -0.25, \"huge\": 1e300, \"tiny\": 5e-324,"
    "  \"utf8\": \"h\\u00e4ll\\u00f6 \\u20ac \\ud83d\\ude00 \\u65e5\\u672c\","
    "  \"empty\": \"\", \"nul\": \"a\\u0000b\","
    "  \"null\": null, \"t\": true, \"f\": false,"
    "  \"map\": {\"a\": {\"b\": {\"c\": [1, [2, [3, {}]]]}}},"
    "  \"arr\": [[], {}, null, true, \"x\", 1.25, -7],"
    "  \"long\": \"0123456789012345678901234567890123456789\""
    "}, [\"a=b\", \"c=d\"], null, 42]";

/* ==== Round trips ==== */

static void test_roundtrip_request(void **state)
{
    (void)state;
    json_t *params = parse(NESTED);
    static const uint32_t ids[] = {1, 127, 128, 65536, 0x7fffffffu,
                                   0x80000000u};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *buf;
        size_t len;
        rpc_encode_request(ids[i], "/nodes/update", params, &buf, &len);
        struct rpc_msg m;
        expect_ok(buf, len, &m, "request");
        assert_int_equal(m.kind, PROTO_REQUEST);
        assert_int_equal(m.id, ids[i]);
        assert_string_equal(m.method, "/nodes/update");
        assert_json_eq(m.params, params);
        assert_null(m.error);
        assert_null(m.result);
        rpc_msg_release(&m);
        assert_null(m.method);
        cp_free(buf);
    }
    /* NULL params encode as []. */
    char *buf;
    size_t len;
    rpc_encode_request(9, "/nodes/get", NULL, &buf, &len);
    struct rpc_msg m;
    expect_ok(buf, len, &m, "request without params");
    assert_true(json_is_array(m.params));
    assert_int_equal(json_array_size(m.params), 0);
    rpc_msg_release(&m);
    cp_free(buf);
    json_decref(params);
}

static void test_roundtrip_response(void **state)
{
    (void)state;
    json_t *result = parse(NESTED);
    char *buf;
    size_t len;
    struct rpc_msg m;

    rpc_encode_response(77, NULL, result, &buf, &len);
    expect_ok(buf, len, &m, "response with result");
    assert_int_equal(m.kind, PROTO_RESPONSE);
    assert_int_equal(m.id, 77);
    assert_null(m.error);
    assert_null(m.method);
    assert_null(m.params);
    assert_json_eq(m.result, result);
    rpc_msg_release(&m);
    cp_free(buf);

    /* A scalar result, and a null (NULL) one. */
    json_t *s = json_string("ok");
    rpc_encode_response(78, NULL, s, &buf, &len);
    expect_ok(buf, len, &m, "scalar result");
    assert_json_eq(m.result, s);
    rpc_msg_release(&m);
    cp_free(buf);
    json_decref(s);

    rpc_encode_response(79, NULL, NULL, &buf, &len);
    expect_ok(buf, len, &m, "nil result");
    assert_null(m.error);
    assert_non_null(m.result);
    assert_true(json_is_null(m.result));
    rpc_msg_release(&m);
    cp_free(buf);

    /* An error response. */
    json_t *err = rpc_error(PROTO_ERR_NOT_IMPLEMENTED,
                            "service not implemented");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), 501);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "service not implemented");
    rpc_encode_response(0xfffffffeu, err, NULL, &buf, &len);
    expect_ok(buf, len, &m, "error response");
    assert_int_equal(m.id, 0xfffffffeu);
    assert_non_null(m.error);
    assert_json_eq(m.error, err);
    assert_true(json_is_null(m.result));
    rpc_msg_release(&m);
    cp_free(buf);
    json_decref(err);
    json_decref(result);
}

static void test_roundtrip_notify(void **state)
{
    (void)state;
    json_t *params = parse(NESTED);
    char *buf;
    size_t len;
    struct rpc_msg m;
    rpc_encode_notify("/nodes/stats", params, &buf, &len);
    expect_ok(buf, len, &m, "notify");
    assert_int_equal(m.kind, PROTO_NOTIFY);
    assert_string_equal(m.method, "/nodes/stats");
    assert_json_eq(m.params, params);
    assert_null(m.error);
    assert_null(m.result);
    rpc_msg_release(&m);
    cp_free(buf);

    rpc_encode_notify("/agent/master_info", NULL, &buf, &len);
    /* Exactly [2, "/agent/master_info", []]. */
    static const unsigned char want[] = {
        0x93, 0x02, 0xb2, '/', 'a', 'g', 'e', 'n', 't', '/', 'm', 'a',
        's',  't',  'e',  'r', '_', 'i', 'n', 'f', 'o', 0x90};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    expect_ok(buf, len, &m, "notify without params");
    assert_int_equal(json_array_size(m.params), 0);
    rpc_msg_release(&m);
    cp_free(buf);
    json_decref(params);
}

/* Types the encoder never writes but a peer may: float32, uint64 above
 * INT64_MAX, bin, str8/16/32, array16/32, map16/32, negative fixints. */
static void test_decode_other_encodings(void **state)
{
    (void)state;
    struct rpc_msg m;
    /* [2, "/a", [1.5f, 2^64-1, bin"abc", str8"xy", -1, -32, arr16[1],
     *            map16{"k": nil}, arr32[], map32{}, str16"", str32"z"]] */
    static const unsigned char f[] = {
        0x93, 0x02, 0xa2, '/', 'a', 0x9c,
        0xca, 0x3f, 0xc0, 0x00, 0x00,                         /* 1.5f */
        0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* u64 max */
        0xc4, 0x03, 'a', 'b', 'c',                            /* bin8 */
        0xd9, 0x02, 'x', 'y',                                 /* str8 */
        0xff,                                                 /* -1 */
        0xe0,                                                 /* -32 */
        0xdc, 0x00, 0x01, 0x01,                               /* [1] */
        0xde, 0x00, 0x01, 0xa1, 'k', 0xc0,                    /* {k:nil} */
        0xdd, 0x00, 0x00, 0x00, 0x00,                         /* [] */
        0xdf, 0x00, 0x00, 0x00, 0x00,                         /* {} */
        0xda, 0x00, 0x00,                                     /* "" */
        0xdb, 0x00, 0x00, 0x00, 0x01, 'z',                    /* "z" */
    };
    expect_ok(f, sizeof(f), &m, "other encodings");
    json_t *p = m.params;
    assert_int_equal(json_array_size(p), 12);
    assert_true(json_is_real(json_array_get(p, 0)));
    assert_true(json_real_value(json_array_get(p, 0)) == 1.5);
    assert_true(json_is_number(json_array_get(p, 1)));
    assert_true(json_number_value(json_array_get(p, 1)) > 1.8e19);
    assert_string_equal(json_string_value(json_array_get(p, 2)), "abc");
    assert_string_equal(json_string_value(json_array_get(p, 3)), "xy");
    assert_int_equal(json_integer_value(json_array_get(p, 4)), -1);
    assert_int_equal(json_integer_value(json_array_get(p, 5)), -32);
    json_t *want = parse("[[1], {\"k\": null}, [], {}, \"\", \"z\"]");
    for (size_t i = 0; i < 6; i++)
        assert_json_eq(json_array_get(p, 6 + i), json_array_get(want, i));
    json_decref(want);
    rpc_msg_release(&m);
}

/* ==== Decoding errors ==== */

static void test_empty_input(void **state)
{
    (void)state;
    expect_eproto("", 0, "empty input");
    expect_eproto(NULL, 0, "NULL empty input");
}

static void test_truncated_every_prefix(void **state)
{
    (void)state;
    json_t *params = parse(NESTED);
    json_t *err = rpc_error(500, "boom");
    char *frames[3];
    size_t lens[3];
    rpc_encode_request(12345, "/nodes/update", params, &frames[0], &lens[0]);
    rpc_encode_response(12345, err, params, &frames[1], &lens[1]);
    rpc_encode_notify("/nodes/stats", params, &frames[2], &lens[2]);
    for (int f = 0; f < 3; f++) {
        assert_true(lens[f] > 100);
        for (size_t n = 0; n < lens[f]; n++) {
            char what[64];
            snprintf(what, sizeof(what), "frame %d cut at %zu of %zu", f, n,
                     lens[f]);
            /* A copy of exactly n bytes, so that a read past the end is an
             * error under ASan. */
            char *cut = malloc(n ? n : 1);
            memcpy(cut, frames[f], n);
            expect_eproto(cut, n, what);
            free(cut);
        }
        /* The whole frame still decodes. */
        struct rpc_msg m;
        expect_ok(frames[f], lens[f], &m, "whole frame");
        rpc_msg_release(&m);
        cp_free(frames[f]);
    }
    json_decref(err);
    json_decref(params);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    char *buf;
    size_t len;
    rpc_encode_notify("/a", NULL, &buf, &len);
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = (char)0xc0;
    expect_eproto(longer, len + 1, "one trailing nil");
    /* Two frames back to back are not one frame. */
    char *two = malloc(2 * len);
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    expect_eproto(two, 2 * len, "two frames");
    free(two);
    free(longer);
    cp_free(buf);
}

static void test_not_an_array(void **state)
{
    (void)state;
    static const unsigned char nil[] = {0xc0};
    static const unsigned char i[] = {0x05};
    static const unsigned char s[] = {0xa2, 'h', 'i'};
    static const unsigned char map[] = {0x83, 0xa1, 'a', 0x00, 0xa1, 'b',
                                        0xa2, '/', 'x', 0xa1, 'c', 0x90};
    static const unsigned char empty_arr[] = {0x90};
    static const unsigned char one[] = {0x91, 0x02};
    static const unsigned char two[] = {0x92, 0x02, 0xa2, '/', 'a'};
    expect_eproto(nil, sizeof(nil), "nil");
    expect_eproto(i, sizeof(i), "int");
    expect_eproto(s, sizeof(s), "string");
    expect_eproto(map, sizeof(map), "map");
    expect_eproto(empty_arr, sizeof(empty_arr), "[]");
    expect_eproto(one, sizeof(one), "[2]");
    expect_eproto(two, sizeof(two), "[2, \"/a\"]");
}

static void test_wrong_kinds(void **state)
{
    (void)state;
    /* [7, "/a", []] and [7, 1, "/a", []] */
    static const unsigned char k7[] = {0x93, 0x07, 0xa2, '/', 'a', 0x90};
    static const unsigned char k7b[] = {0x94, 0x07, 0x01, 0xa2, '/', 'a',
                                        0x90};
    static const unsigned char k3[] = {0x93, 0x03, 0xa2, '/', 'a', 0x90};
    static const unsigned char kneg[] = {0x93, 0xff, 0xa2, '/', 'a', 0x90};
    static const unsigned char kstr[] = {0x93, 0xa1, '2', 0xa2, '/', 'a',
                                         0x90};
    static const unsigned char kreal[] = {
        0x93, 0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0, 0xa2, '/', 'a', 0x90};
    static const unsigned char knil[] = {0x93, 0xc0, 0xa2, '/', 'a', 0x90};
    static const unsigned char kbig[] = {0x93, 0xcf, 0, 0, 0, 1, 0, 0, 0, 2,
                                         0xa2, '/', 'a', 0x90};
    expect_eproto(k7, sizeof(k7), "kind 7 (3 items)");
    expect_eproto(k7b, sizeof(k7b), "kind 7 (4 items)");
    expect_eproto(k3, sizeof(k3), "kind 3");
    expect_eproto(kneg, sizeof(kneg), "kind -1");
    expect_eproto(kstr, sizeof(kstr), "kind \"2\"");
    expect_eproto(kreal, sizeof(kreal), "kind 2.0");
    expect_eproto(knil, sizeof(knil), "kind nil");
    expect_eproto(kbig, sizeof(kbig), "kind 2^32+2");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    /* Requests. */
    static const unsigned char req_int_method[] = {0x94, 0x00, 0x01, 0x05,
                                                   0x90};
    static const unsigned char req_nil_method[] = {0x94, 0x00, 0x01, 0xc0,
                                                   0x90};
    static const unsigned char req_map_params[] = {0x94, 0x00, 0x01, 0xa2,
                                                   '/', 'a', 0x80};
    static const unsigned char req_str_params[] = {0x94, 0x00, 0x01, 0xa2,
                                                   '/', 'a', 0xa1, 'x'};
    static const unsigned char req_nil_params[] = {0x94, 0x00, 0x01, 0xa2,
                                                   '/', 'a', 0xc0};
    static const unsigned char req_3[] = {0x93, 0x00, 0x01, 0xa2, '/', 'a'};
    static const unsigned char req_5[] = {0x95, 0x00, 0x01, 0xa2, '/',
                                          'a',  0x90, 0xc0};
    expect_eproto(req_int_method, sizeof(req_int_method), "int method");
    expect_eproto(req_nil_method, sizeof(req_nil_method), "nil method");
    expect_eproto(req_map_params, sizeof(req_map_params), "map params");
    expect_eproto(req_str_params, sizeof(req_str_params), "str params");
    expect_eproto(req_nil_params, sizeof(req_nil_params), "nil params");
    expect_eproto(req_3, sizeof(req_3), "request of 3");
    expect_eproto(req_5, sizeof(req_5), "request of 5");
    /* A method longer than PROTO_MAX_METHOD. */
    unsigned char longm[8 + PROTO_MAX_METHOD + 1];
    size_t n = 0;
    longm[n++] = 0x94;
    longm[n++] = 0x00;
    longm[n++] = 0x01;
    longm[n++] = 0xd9;
    longm[n++] = PROTO_MAX_METHOD + 1;
    memset(longm + n, 'm', PROTO_MAX_METHOD + 1);
    n += PROTO_MAX_METHOD + 1;
    longm[n++] = 0x90;
    expect_eproto(longm, n, "long method");

    /* Notifications. */
    static const unsigned char n_int_method[] = {0x93, 0x02, 0x01, 0x90};
    static const unsigned char n_map_params[] = {0x93, 0x02, 0xa2, '/', 'a',
                                                 0x80};
    static const unsigned char n_4[] = {0x94, 0x02, 0xa2, '/',
                                        'a',  0x90, 0xc0};
    expect_eproto(n_int_method, sizeof(n_int_method), "notify int method");
    expect_eproto(n_map_params, sizeof(n_map_params), "notify map params");
    expect_eproto(n_4, sizeof(n_4), "notify of 4");

    /* Responses: error must be nil, a map or a string; 4 items. */
    static const unsigned char r_int_err[] = {0x94, 0x01, 0x01, 0x05, 0xc0};
    static const unsigned char r_arr_err[] = {0x94, 0x01, 0x01, 0x90, 0xc0};
    static const unsigned char r_3[] = {0x93, 0x01, 0x01, 0xc0};
    expect_eproto(r_int_err, sizeof(r_int_err), "response int error");
    expect_eproto(r_arr_err, sizeof(r_arr_err), "response array error");
    expect_eproto(r_3, sizeof(r_3), "response of 3");
}

static void test_id_out_of_range(void **state)
{
    (void)state;
    static const unsigned char neg[] = {0x94, 0x00, 0xff, 0xa2, '/', 'a',
                                        0x90};
    static const unsigned char neg64[] = {
        0x94, 0x00, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xa2, '/', 'a', 0x90};
    static const unsigned char two32[] = {
        0x94, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xa2, '/', 'a', 0x90};
    static const unsigned char u64max[] = {
        0x94, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    static const unsigned char str_id[] = {0x94, 0x00, 0xa1, '1', 0xa2,
                                           '/',  'a',  0x90};
    static const unsigned char real_id[] = {
        0x94, 0x01, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xc0, 0xc0};
    static const unsigned char nil_id[] = {0x94, 0x01, 0xc0, 0xc0, 0xc0};
    expect_eproto(neg, sizeof(neg), "id -1");
    expect_eproto(neg64, sizeof(neg64), "id INT64_MIN");
    expect_eproto(two32, sizeof(two32), "id 2^32");
    expect_eproto(u64max, sizeof(u64max), "id 2^64-1");
    expect_eproto(str_id, sizeof(str_id), "id \"1\"");
    expect_eproto(real_id, sizeof(real_id), "id 1.0");
    expect_eproto(nil_id, sizeof(nil_id), "id nil");
    /* The largest id the protocol uses (2^31) decodes. */
    static const unsigned char top[] = {0x94, 0x00, 0xce, 0x80, 0, 0, 0,
                                        0xa2, '/',  'a',  0x90};
    struct rpc_msg m;
    expect_ok(top, sizeof(top), &m, "id 2^31");
    assert_int_equal(m.id, 0x80000000u);
    rpc_msg_release(&m);
}

static void test_map_keys(void **state)
{
    (void)state;
    /* [2, "/a", [{1: 2}]] */
    static const unsigned char intkey[] = {0x93, 0x02, 0xa2, '/', 'a',
                                           0x91, 0x81, 0x01, 0x02};
    static const unsigned char nilkey[] = {0x93, 0x02, 0xa2, '/', 'a',
                                           0x91, 0x81, 0xc0, 0x02};
    static const unsigned char arrkey[] = {0x93, 0x02, 0xa2, '/', 'a',
                                           0x91, 0x81, 0x90, 0x02};
    static const unsigned char mapkey[] = {0x93, 0x02, 0xa2, '/', 'a',
                                           0x91, 0x81, 0x80, 0x02};
    /* A key with a NUL inside cannot be a jansson key. */
    static const unsigned char nulkey[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                           0x81, 0xa3, 'a', 0x00, 'b',
                                           0x91, 0x02};
    /* Nested deep inside the response result. */
    static const unsigned char deepkey[] = {0x94, 0x01, 0x01, 0xc0, 0x81,
                                            0xa1, 'a',  0x81, 0xcb, 0x3f,
                                            0xf0, 0,    0,    0,    0,
                                            0,    0,    0,    0x01};
    expect_eproto(intkey, sizeof(intkey), "int key");
    expect_eproto(nilkey, sizeof(nilkey), "nil key");
    expect_eproto(arrkey, sizeof(arrkey), "array key");
    expect_eproto(mapkey, sizeof(mapkey), "map key");
    expect_eproto(nulkey, sizeof(nulkey), "key with NUL");
    expect_eproto(deepkey, sizeof(deepkey), "real key in a result");
    /* Duplicate string keys: the last wins, not an error. */
    static const unsigned char dup[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                        0x82, 0xa1, 'k', 0x01, 0xa1, 'k',
                                        0x02};
    struct rpc_msg m;
    expect_ok(dup, sizeof(dup), &m, "duplicate keys");
    json_t *want = parse("[{\"k\": 2}]");
    assert_json_eq(m.params, want);
    json_decref(want);
    rpc_msg_release(&m);
    /* An empty key is a string key (msgpack-c gives it a NULL pointer;
     * under UBSan a memcpy from it is an error). */
    static const unsigned char empty[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                          0x82, 0xa0, 0x01, 0xa1, 'e', 0xa0};
    expect_ok(empty, sizeof(empty), &m, "empty key and empty value");
    want = parse("[{\"\": 1, \"e\": \"\"}]");
    assert_json_eq(m.params, want);
    json_decref(want);
    rpc_msg_release(&m);
}

static void test_ext_and_c1(void **state)
{
    (void)state;
    /* [2, "/a", [X]] with X an ext value of each family member. */
    static const unsigned char exts[][12] = {
        {0xd4, 0x01, 0xaa},                         /* fixext 1 */
        {0xd5, 0x01, 0xaa, 0xbb},                   /* fixext 2 */
        {0xd6, 0xff, 1, 2, 3, 4},                   /* fixext 4 (timestamp) */
        {0xd7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8},       /* fixext 8 */
        {0xc7, 0x01, 0x05, 1, 2},                   /* ext 8 (len 1) */
        {0xc8, 0x00, 0x01, 0x05, 1},                /* ext 16 */
        {0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 1},    /* ext 32 */
    };
    static const size_t ext_len[] = {3, 4, 6, 10, 4, 5, 7};
    for (size_t i = 0; i < sizeof(ext_len) / sizeof(ext_len[0]); i++) {
        unsigned char f[32] = {0x93, 0x02, 0xa2, '/', 'a', 0x91};
        memcpy(f + 6, exts[i], ext_len[i]);
        char what[32];
        snprintf(what, sizeof(what), "ext 0x%02x", exts[i][0]);
        expect_eproto(f, 6 + ext_len[i], what);
    }
    /* fixext 16 */
    unsigned char f16[6 + 18] = {0x93, 0x02, 0xa2, '/', 'a', 0x91, 0xd8, 0x01};
    expect_eproto(f16, sizeof(f16), "fixext 16");
    /* 0xc1 is never used, wherever it appears. */
    static const unsigned char c1_top[] = {0xc1};
    static const unsigned char c1_in[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                          0xc1};
    static const unsigned char c1_kind[] = {0x93, 0xc1, 0xa2, '/', 'a', 0x90};
    expect_eproto(c1_top, sizeof(c1_top), "0xc1 alone");
    expect_eproto(c1_in, sizeof(c1_in), "0xc1 in params");
    expect_eproto(c1_kind, sizeof(c1_kind), "0xc1 as kind");
}

/* Counts allocations of the size a lying header would make. */
static void test_huge_container_headers(void **state)
{
    (void)state;
    /* array32 claiming 2^32-1 elements, in a 10-byte message. */
    static const unsigned char arr[10] = {0xdd, 0xff, 0xff, 0xff, 0xff,
                                          0x00, 0x01, 0x02, 0x03, 0x04};
    const char *why = expect_eproto(arr, sizeof(arr), "array32 2^32-1");
    /* Refused by the bounded pre-scan, not by msgpack-c running out of
     * memory after trying. */
    assert_null(strstr(why, "malformed MessagePack"));
    /* map32 and array16/map16 liars too, and the same inside params. */
    static const unsigned char map[10] = {0xdf, 0xff, 0xff, 0xff, 0xff,
                                          0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
    why = expect_eproto(map, sizeof(map), "map32 2^32-1");
    assert_null(strstr(why, "malformed MessagePack"));
    static const unsigned char arr16[] = {0xdc, 0xff, 0xff, 0x02};
    expect_eproto(arr16, sizeof(arr16), "array16 65535");
    static const unsigned char inner[] = {0x93, 0x02, 0xa2, '/', 'a',
                                          0xdd, 0xff, 0xff, 0xff, 0xff};
    why = expect_eproto(inner, sizeof(inner), "params array32 2^32-1");
    assert_null(strstr(why, "malformed MessagePack"));
    /* Strings and bins claiming more bytes than there are. */
    static const unsigned char str32[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                          0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const unsigned char bin32[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91,
                                          0xc6, 0xff, 0xff, 0xff, 0xff, 'x'};
    expect_eproto(str32, sizeof(str32), "str32 liar");
    expect_eproto(bin32, sizeof(bin32), "bin32 liar");
}

/* [2, "/a", P] where P is depth-2 nested arrays (the frame itself and P's
 * outermost array included, the frame has depth levels). */
static unsigned char *nested_frame(int depth, int use_maps, size_t *len)
{
    unsigned char *f = malloc((size_t)depth * 3 + 16);
    size_t n = 0;
    f[n++] = 0x93;
    f[n++] = 0x02;
    f[n++] = 0xa2;
    f[n++] = '/';
    f[n++] = 'a';
    /* params array: level 2; inner containers: levels 3..depth. */
    f[n++] = 0x91;
    for (int level = 3; level <= depth; level++) {
        if (use_maps) {
            f[n++] = 0x81;
            f[n++] = 0xa1;
            f[n++] = 'k';
        } else {
            f[n++] = 0x91;
        }
    }
    f[n++] = 0x01; /* the innermost value */
    *len = n;
    return f;
}

static void test_nesting_depth(void **state)
{
    (void)state;
    for (int maps = 0; maps <= 1; maps++) {
        size_t len;
        unsigned char *ok = nested_frame(PROTO_MAX_DEPTH, maps, &len);
        struct rpc_msg m;
        expect_ok(ok, len, &m, maps ? "maps at the max depth"
                                    : "arrays at the max depth");
        /* Walk down to the innermost 1. */
        json_t *v = m.params;
        for (int level = 3; level <= PROTO_MAX_DEPTH; level++)
            v = (maps && level > 3) ? json_object_get(v, "k")
                                    : json_array_get(v, 0);
        v = maps ? json_object_get(v, "k") : json_array_get(v, 0);
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), 1);
        rpc_msg_release(&m);
        free(ok);

        unsigned char *deep = nested_frame(PROTO_MAX_DEPTH + 1, maps, &len);
        expect_eproto(deep, len, maps ? "maps too deep" : "arrays too deep");
        free(deep);
        deep = nested_frame(PROTO_MAX_DEPTH * 100, maps, &len);
        expect_eproto(deep, len, "far too deep");
        free(deep);
    }
}

static void test_message_size_limit(void **state)
{
    (void)state;
    /* [2, "/a", [str32 of N bytes]]: 11 bytes of framing. */
    size_t n = PROTO_MAX_MESSAGE - 11;
    unsigned char *f = malloc(PROTO_MAX_MESSAGE + 2);
    size_t k = 0;
    f[k++] = 0x93;
    f[k++] = 0x02;
    f[k++] = 0xa2;
    f[k++] = '/';
    f[k++] = 'a';
    f[k++] = 0x91;
    f[k++] = 0xdb;
    f[k++] = (unsigned char)(n >> 24);
    f[k++] = (unsigned char)(n >> 16);
    f[k++] = (unsigned char)(n >> 8);
    f[k++] = (unsigned char)n;
    memset(f + k, 'x', n);
    struct rpc_msg m;
    expect_ok(f, k + n, &m, "exactly PROTO_MAX_MESSAGE");
    assert_int_equal(json_string_length(json_array_get(m.params, 0)), n);
    rpc_msg_release(&m);
    /* One byte more. */
    n++;
    f[7] = (unsigned char)(n >> 24);
    f[8] = (unsigned char)(n >> 16);
    f[9] = (unsigned char)(n >> 8);
    f[10] = (unsigned char)n;
    f[k + n - 1] = 'x';
    expect_eproto(f, k + n, "PROTO_MAX_MESSAGE + 1");
    free(f);

    /* The encoder's output for a big params tree is refused as well. */
    char *big = malloc(PROTO_MAX_MESSAGE + 1);
    memset(big, 'y', PROTO_MAX_MESSAGE);
    big[PROTO_MAX_MESSAGE] = '\0';
    json_t *params = json_pack("[s]", big);
    char *buf;
    size_t len;
    rpc_encode_notify("/containers/log_batch", params, &buf, &len);
    assert_true(len > PROTO_MAX_MESSAGE);
    expect_eproto(buf, len, "encoded oversize notify");
    cp_free(buf);
    json_decref(params);
    free(big);
}

/* ==== Strings ==== */

static json_t *decode_one_string(const unsigned char *s, size_t n,
                                 struct rpc_msg *m)
{
    unsigned char f[300] = {0x93, 0x02, 0xa2, '/', 'a', 0x91, 0xd9};
    assert_true(n < 256);
    f[7] = (unsigned char)n;
    memcpy(f + 8, s, n);
    expect_ok(f, 8 + n, m, "string frame");
    json_t *v = json_array_get(m->params, 0);
    assert_true(json_is_string(v));
    return v;
}

#define FFFD "\xef\xbf\xbd"

static void expect_decoded(const char *in, size_t n, const char *want,
                          size_t wantlen)
{
    struct rpc_msg m;
    json_t *v = decode_one_string((const unsigned char *)in, n, &m);
    if (json_string_length(v) != wantlen ||
        memcmp(json_string_value(v), want, wantlen) != 0) {
        char hex[1024] = "";
        size_t h = 0;
        for (size_t i = 0; i < json_string_length(v) && h + 4 < sizeof(hex);
             i++)
            h += (size_t)snprintf(hex + h, sizeof(hex) - h, "%02x ",
                                  (unsigned char)json_string_value(v)[i]);
        fail_msg("string of %zu bytes decoded to %zu bytes: %s", n,
                 json_string_length(v), hex);
    }
    rpc_msg_release(&m);
}

static void test_invalid_utf8_becomes_fffd(void **state)
{
    (void)state;
    /* Valid UTF-8 passes unchanged. */
    expect_decoded("h\xc3\xa4ll\xc3\xb6 \xe2\x82\xac \xf0\x9f\x98\x80", 17,
                  "h\xc3\xa4ll\xc3\xb6 \xe2\x82\xac \xf0\x9f\x98\x80", 17);
    /* A stray byte. */
    expect_decoded("a\xff"
                  "b",
                  3, "a" FFFD "b", 5);
    /* A lone continuation byte and a lead byte without its tail. */
    expect_decoded("x\x80y", 3, "x" FFFD "y", 5);
    expect_decoded("x\xc3", 2, "x" FFFD, 4);
    /* Valid parts around bad ones are kept, in str and bin alike. */
    expect_decoded("ok\xfe\xfeok", 6, "ok" FFFD FFFD "ok", 10);
    /* NUL bytes are data, not an end. */
    expect_decoded("a\0b", 3, "a\0b", 3);

    /* Inside a map value, and in a method name (still a string). */
    static const unsigned char f[] = {0x93, 0x02, 0xa3, '/', 'a', 0xff,
                                      0x91, 0x81, 0xa1, 'k', 0xa1, 0xff};
    struct rpc_msg m;
    expect_ok(f, sizeof(f), &m, "bad UTF-8 in method and map value");
    assert_string_equal(m.method, "/a" FFFD);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(m.params, 0), "k")),
        FFFD);
    rpc_msg_release(&m);
}

/* Byte sequences shaped like UTF-8 but still invalid. */
static void test_invalid_utf8_overlong_surrogates(void **state)
{
    (void)state;
    /* Overlong encodings, UTF-16 surrogates and code points above
     * U+10FFFF are invalid UTF-8 too: the valid text around them must
     * survive, each bad byte becoming U+FFFD (not the whole string
     * emptied). */
    expect_decoded("ok\xc0\xafok", 6, "ok" FFFD FFFD "ok", 10);
    expect_decoded("ok\xed\xa0\x80ok", 7, "ok" FFFD FFFD FFFD "ok", 13);
    expect_decoded("ok\xf4\x90\x80\x80ok", 8, "ok" FFFD FFFD FFFD FFFD "ok",
                  16);

    /* And in a map value next to a good one. */
    static const unsigned char f[] = {0x93, 0x02, 0xa2, '/', 'a', 0x91, 0x81,
                                      0xa1, 'k', 0xa4, 'o', 'k', 0xc0, 0x80};
    struct rpc_msg m;
    expect_ok(f, sizeof(f), &m, "overlong NUL in a map value");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(m.params, 0), "k")),
        "ok" FFFD FFFD);
    rpc_msg_release(&m);
}

/* ==== Time ==== */

static void test_time_format_parse(void **state)
{
    (void)state;
    char buf[PROTO_TIME_FORMAT_LEN];
    /* 2025-11-25 13:00:00.123 UTC */
    int64_t ms = 1764075600123LL;
    rpc_format_time(ms, buf, sizeof(buf));
    assert_string_equal(buf, "2025-11-25 13:00:00.123000000Z");
    int64_t back = 0;
    assert_int_equal(rpc_parse_time(buf, &back), 0);
    assert_int_equal(back, ms);

    /* Many round trips, whole seconds and odd milliseconds. */
    static const int64_t samples[] = {0, 999, 1000, 951782400000LL,
                                      1709251199999LL, 4102444800001LL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        rpc_format_time(samples[i], buf, sizeof(buf));
        assert_int_equal(strlen(buf), 30);
        assert_int_equal(buf[10], ' ');
        assert_int_equal(buf[19], '.');
        assert_int_equal(buf[29], 'Z');
        assert_int_equal(rpc_parse_time(buf, &back), 0);
        assert_int_equal(back, samples[i]);
    }

    /* What the original agent sends: nanoseconds. */
    assert_int_equal(rpc_parse_time("2026-11-25 13:00:00.123456789Z", &back),
                     0);
    assert_int_equal(back, 1795611600123LL);
    assert_int_equal(rpc_parse_time("2026-11-25 13:00:00.000000000Z", &back),
                     0);
    assert_int_equal(back, 1795611600000LL);
    /* ISO and Ruby's Time#to_s. */
    assert_int_equal(rpc_parse_time("2026-11-25T13:00:00Z", &back), 0);
    assert_int_equal(back, 1795611600000LL);
    assert_int_equal(rpc_parse_time("2026-11-25T13:00:00.5Z", &back), 0);
    assert_int_equal(back, 1795611600500LL);
    assert_int_equal(rpc_parse_time("2026-11-25 13:00:00 UTC", &back), 0);
    assert_int_equal(back, 1795611600000LL);

    /* Garbage. */
    static const char *const bad[] = {
        "",
        "now",
        "2026-13-25 13:00:00.0Z",
        "2026-11-25 25:00:00.0Z",
        "2026-11-25 13:00:00.Z",
        "2026-11-25 13:00:00.123Zjunk",
        "2026/11/25 13:00:00.123Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rpc_parse_time(bad[i], &back) != CP_EINVAL)
            fail_msg("rpc_parse_time accepted %s", bad[i]);
    }
}

/* ==== nodes.c ==== */

static void test_nodes_status(void **state)
{
    (void)state;
    struct store_node n;
    memset(&n, 0, sizeof(n));
    assert_string_equal(nodes_status(&n), "created");
    n.connected_at = 1000; /* was connected once */
    assert_string_equal(nodes_status(&n), "offline");
    n.updated = true; /* updated but gone: still offline */
    assert_string_equal(nodes_status(&n), "offline");
    n.connected = true;
    n.updated = false;
    assert_string_equal(nodes_status(&n), "connecting");
    n.updated = true;
    assert_string_equal(nodes_status(&n), "online");
    n.availability = (char *)(uintptr_t) "active";
    assert_string_equal(nodes_status(&n), "online");
    n.availability = (char *)(uintptr_t) "drain";
    assert_string_equal(nodes_status(&n), "drain");
    /* A draining node that has not reported yet is connecting. */
    n.updated = false;
    assert_string_equal(nodes_status(&n), "connecting");
    /* Draining and disconnected: offline. */
    n.connected = false;
    n.updated = true;
    assert_string_equal(nodes_status(&n), "offline");
}

static void test_nodes_overlay_ip(void **state)
{
    (void)state;
    char out[16];
    nodes_overlay_ip("10.81.0.0/16", 3, out, sizeof(out));
    assert_string_equal(out, "10.81.0.3");
    nodes_overlay_ip("10.81.0.0/16", 1, out, sizeof(out));
    assert_string_equal(out, "10.81.0.1");
    nodes_overlay_ip("10.81.0.0/16", 254, out, sizeof(out));
    assert_string_equal(out, "10.81.0.254");
    nodes_overlay_ip("192.168.1.0/24", 7, out, sizeof(out));
    assert_string_equal(out, "192.168.1.7");
    nodes_overlay_ip("10.81.0.255/16", 1, out, sizeof(out)); /* carries */
    assert_string_equal(out, "10.81.1.0");
    static const char *const bad[] = {
        "",          "nope",           "10.81.0.0",       "/16",
        "10.81/16",  "300.1.1.1/8",    "10.81.0.0.0/16",  "fd00::/64",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/16",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(out, "garbage", 8);
        nodes_overlay_ip(bad[i], 3, out, sizeof(out));
        if (out[0] != '\0')
            fail_msg("subnet \"%s\" gave \"%s\"", bad[i], out);
    }
    memcpy(out, "garbage", 8);
    nodes_overlay_ip(NULL, 3, out, sizeof(out));
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_request),
        cmocka_unit_test(test_roundtrip_response),
        cmocka_unit_test(test_roundtrip_notify),
        cmocka_unit_test(test_decode_other_encodings),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_truncated_every_prefix),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_not_an_array),
        cmocka_unit_test(test_wrong_kinds),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_id_out_of_range),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_ext_and_c1),
        cmocka_unit_test(test_huge_container_headers),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_message_size_limit),
        cmocka_unit_test(test_invalid_utf8_becomes_fffd),
        cmocka_unit_test(test_invalid_utf8_overlong_surrogates),
        cmocka_unit_test(test_time_format_parse),
        cmocka_unit_test(test_nodes_status),
        cmocka_unit_test(test_nodes_overlay_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
