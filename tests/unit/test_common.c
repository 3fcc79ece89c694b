/* Unit tests for src/common: strict JSON parsing and dumping, the
 * streaming JSON writer, time, integers, hashing, base64, bounded
 * buffers, sealing, log settings and error names.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/crypto.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/jw.h"
#include "../../src/common/log.h"
#include "../../src/common/util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ==== json.h ==== */

static json_t *parse_ok(const char *text)
{
    char err[200] = "";
    json_t *j = cp_json_parse(text, strlen(text), err, sizeof(err));
    if (j == NULL)
        print_error("parse of %s failed: %s\n", text, err);
    assert_non_null(j);
    return j;
}

static void parse_bad(const char *text, size_t len, const char *needle)
{
    char err[200] = "";
    json_t *j = cp_json_parse(text, len, err, sizeof(err));
    if (j != NULL)
        print_error("parse of %.*s unexpectedly succeeded\n", (int)len,
                    text);
    assert_null(j);
    assert_true(strlen(err) > 0);
    if (needle != NULL && strstr(err, needle) == NULL)
        print_error("err '%s' lacks '%s'\n", err, needle);
    if (needle != NULL)
        assert_non_null(strstr(err, needle));
    /* err may be NULL. */
    assert_null(cp_json_parse(text, len, NULL, 0));
}

static void test_json_parse_basic(void **state)
{
    (void)state;
    json_t *j = parse_ok("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":2.5}}");
    assert_int_equal(cp_json_int(j, "a", 0), 1);
    json_decref(j);
    /* Surrounding whitespace is fine. */
    j = parse_ok(" [42] \n");
    assert_int_equal(json_integer_value(json_array_get(j, 0)), 42);
    json_decref(j);
}

static void test_json_parse_duplicates(void **state)
{
    (void)state;
    const char *t = "{\"a\":1,\"a\":2}";
    parse_bad(t, strlen(t), "duplicate");
    const char *t2 = "{\"x\":{\"k\":1,\"k\":1}}";
    parse_bad(t2, strlen(t2), "duplicate");
}

static char *nested(int depth, char open, char close, const char *inner)
{
    size_t n = (size_t)depth * 2 + strlen(inner) + 1;
    char *s = cp_malloc(n);
    char *p = s;
    for (int i = 0; i < depth; i++)
        *p++ = open;
    p += sprintf(p, "%s", inner);
    for (int i = 0; i < depth; i++)
        *p++ = close;
    *p = '\0';
    return s;
}

static void test_json_parse_depth(void **state)
{
    (void)state;
    char *s = nested(CP_JSON_MAX_DEPTH, '[', ']', "1");
    json_t *j = parse_ok(s);
    json_decref(j);
    cp_free(s);

    s = nested(CP_JSON_MAX_DEPTH + 1, '[', ']', "1");
    parse_bad(s, strlen(s), "nesting");
    cp_free(s);

    s = nested(3000, '[', ']', "");
    parse_bad(s, strlen(s), "nesting");
    cp_free(s);

    /* Objects count too. */
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    for (int i = 0; i < CP_JSON_MAX_DEPTH + 1; i++)
        cp_buf_append(&b, "{\"a\":", 5);
    cp_buf_append(&b, "1", 1);
    for (int i = 0; i < CP_JSON_MAX_DEPTH + 1; i++)
        cp_buf_append(&b, "}", 1);
    parse_bad(b.data, b.len, "nesting");
    cp_buf_release(&b);

    /* Brackets inside strings (escaped quotes included) are not nesting. */
    char *brackets = nested(200, '[', '[', "");
    char *text = cp_asprintf("[\"\\\"%s\"]", brackets);
    j = parse_ok(text);
    assert_int_equal(strlen(json_string_value(json_array_get(j, 0))), 401);
    json_decref(j);
    cp_free(text);
    cp_free(brackets);
}

static void test_json_parse_garbage_and_nul(void **state)
{
    (void)state;
    parse_bad("{} x", 4, NULL);
    parse_bad("{}{}", 4, NULL);
    parse_bad("[1,]", 4, NULL);
    parse_bad("", 0, NULL);
    parse_bad("{\"a\":1", 6, NULL);
    /* A NUL byte, raw or escaped, anywhere. */
    parse_bad("{}\0", 3, NULL);
    parse_bad("{\"a\":\"b\0c\"}", 11, NULL);
    const char *esc = "[\"a\\u0000b\"]";
    parse_bad(esc, strlen(esc), NULL);
    /* len bounds the text: what follows is not read. */
    json_t *j = cp_json_parse("[1]garbage", 3, NULL, 0);
    assert_non_null(j);
    json_decref(j);
}

static void test_json_parse_utf8(void **state)
{
    (void)state;
    const char *good = "[\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"]";
    json_t *j = parse_ok(good);
    assert_string_equal(json_string_value(json_array_get(j, 0)),
                        "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
    json_decref(j);
    j = parse_ok("[\"\\u00e9\\ud83d\\ude00\"]");
    assert_string_equal(json_string_value(json_array_get(j, 0)),
                        "\xc3\xa9\xf0\x9f\x98\x80");
    json_decref(j);

    const char *bad[] = {
        "[\"\xff\"]",         /* never valid */
        "[\"\xc3\x28\"]",     /* bad continuation */
        "[\"\xc0\xaf\"]",     /* overlong */
        "[\"\xed\xa0\x80\"]", /* surrogate */
        "[\"\xe2\x82\"]",     /* truncated */
        "{\"\xfe\":1}",       /* in a key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], strlen(bad[i]), NULL);
}

static void test_json_dump(void **state)
{
    (void)state;
    json_t *r = json_real(0.1);
    char *s = cp_json_dump(r);
    assert_string_equal(s, "0.1");
    cp_free(s);
    json_decref(r);

    json_t *o = json_pack("{s:f,s:f,s:i,s:s,s:n}", "a", 1.5, "b", 123.456,
                          "c", -7, "d", "\xc3\xa9", "e");
    s = cp_json_dump(o);
    json_t *back = parse_ok(s);
    assert_true(json_equal(o, back));
    assert_null(strchr(s, ' ')); /* compact */
    assert_non_null(strstr(s, "123.456"));
    assert_null(strstr(s, "123.45600000"));
    json_decref(back);
    cp_free(s);
    json_decref(o);

    /* Any value, not just containers. */
    json_t *str = json_string("x\"y");
    s = cp_json_dump(str);
    assert_string_equal(s, "\"x\\\"y\"");
    cp_free(s);
    json_decref(str);
}

static void test_json_getters(void **state)
{
    (void)state;
    json_t *j = parse_ok("{\"s\":\"str\",\"i\":42,\"neg\":-5,\"r\":1.0,"
                         "\"t\":true,\"f\":false,\"n\":null,\"si\":\"7\","
                         "\"arr\":[\"a\",\"b\"],\"mixed\":[\"a\",1]}");
    assert_string_equal(cp_json_str(j, "s"), "str");
    assert_null(cp_json_str(j, "i"));
    assert_null(cp_json_str(j, "n"));
    assert_null(cp_json_str(j, "missing"));
    assert_int_equal(cp_json_int(j, "i", 0), 42);
    assert_int_equal(cp_json_int(j, "neg", 0), -5);
    assert_int_equal(cp_json_int(j, "r", 9), 9);
    assert_int_equal(cp_json_int(j, "si", 9), 9);
    assert_int_equal(cp_json_int(j, "missing", -1), -1);
    assert_true(cp_json_bool(j, "t", false));
    assert_false(cp_json_bool(j, "f", true));
    assert_true(cp_json_bool(j, "n", true));
    assert_false(cp_json_bool(j, "i", false));
    assert_true(cp_json_bool(j, "s", true));
    assert_true(cp_json_has(j, "n"));
    assert_false(cp_json_has(j, "missing"));
    assert_true(cp_json_is_string_array(json_object_get(j, "arr")));
    assert_false(cp_json_is_string_array(json_object_get(j, "mixed")));
    assert_false(cp_json_is_string_array(json_object_get(j, "s")));
    json_t *empty = json_array();
    assert_true(cp_json_is_string_array(empty));
    json_decref(empty);

    /* Getters on a non-object, or NULL, give the default. */
    json_t *arr = json_object_get(j, "arr");
    assert_null(cp_json_str(arr, "s"));
    assert_int_equal(cp_json_int(NULL, "i", 3), 3);
    assert_true(cp_json_bool(NULL, "t", true));

    cp_json_set_str(j, "s", NULL);
    assert_true(json_is_null(json_object_get(j, "s")));
    cp_json_set_str(j, "s2", "v");
    assert_string_equal(cp_json_str(j, "s2"), "v");
    cp_json_set_time(j, "t0", 0);
    assert_true(json_is_null(json_object_get(j, "t0")));
    cp_json_set_time(j, "t1", 1700000000123LL);
    assert_string_equal(cp_json_str(j, "t1"), "2023-11-14T22:13:20.123Z");
    json_decref(j);
}

/* ==== jw.h ==== */

static void test_jw_shapes(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "s");
    jw_str(&w, "v");
    jw_key(&w, "n");
    jw_str(&w, NULL);
    jw_key(&w, "i");
    jw_int(&w, 0);
    jw_key(&w, "b");
    jw_bool(&w, true);
    jw_key(&w, "f");
    jw_bool(&w, false);
    jw_key(&w, "z");
    jw_null(&w);
    jw_key(&w, "arr");
    jw_arr_open(&w);
    jw_int(&w, 1);
    jw_int(&w, -2);
    jw_arr_open(&w);
    jw_arr_close(&w);
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_obj_open(&w);
    jw_key(&w, "k");
    jw_arr_open(&w);
    jw_str(&w, "x");
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_arr_close(&w);
    jw_key(&w, "after");
    jw_int(&w, 3);
    jw_obj_close(&w);
    assert_string_equal(b.data,
                        "{\"s\":\"v\",\"n\":null,\"i\":0,\"b\":true,"
                        "\"f\":false,\"z\":null,\"arr\":[1,-2,[],{},"
                        "{\"k\":[\"x\"]}],\"after\":3}");
    json_t *j = parse_ok(b.data);
    assert_int_equal(cp_json_int(j, "after", 0), 3);
    json_decref(j);
    cp_buf_release(&b);

    /* Top-level arrays and empty containers. */
    cp_buf_init(&b, 1 << 20);
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_obj_open(&w);
    jw_key(&w, "a");
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_key(&w, "b");
    jw_arr_open(&w);
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_arr_close(&w);
    assert_string_equal(b.data, "[{},{\"a\":{},\"b\":[]}]");
    cp_buf_release(&b);
}

static void test_jw_escaping(void **state)
{
    (void)state;
    const char *nasty = "q\"b\\s/n\nr\rt\tbell\x07" "bs\b"
                        "ff\f"
                        "esc\x1b"
                        "us\x1f"
                        "del\x7f \xc3\xa9";
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "k\"\n");
    jw_str(&w, nasty);
    jw_obj_close(&w);
    assert_string_equal(b.data,
                        "{\"k\\\"\\n\":\"q\\\"b\\\\s/n\\nr\\rt\\tbell\\u0007"
                        "bs\\u0008ff\\u000cesc\\u001bus\\u001fdel\x7f "
                        "\xc3\xa9\"}");
    json_t *j = parse_ok(b.data);
    assert_string_equal(cp_json_str(j, "k\"\n"), nasty);
    json_decref(j);
    cp_buf_release(&b);

    /* Every control char round-trips. */
    char ctl[32];
    for (int i = 1; i < 32; i++)
        ctl[i - 1] = (char)i;
    ctl[31] = '\0';
    cp_buf_init(&b, 1 << 20);
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_str(&w, ctl);
    jw_str(&w, "");
    jw_arr_close(&w);
    j = parse_ok(b.data);
    assert_string_equal(json_string_value(json_array_get(j, 0)), ctl);
    assert_string_equal(json_string_value(json_array_get(j, 1)), "");
    json_decref(j);
    cp_buf_release(&b);
}

static void test_jw_ints(void **state)
{
    (void)state;
    const long long vals[] = {0,         1,         -1,        9,
                              10,        -10,       123456789, -987654321,
                              INT_MAX,   INT_MIN,   LLONG_MAX, LLONG_MIN,
                              LLONG_MIN + 1};
    const size_t n = sizeof(vals) / sizeof(vals[0]);
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    jw_arr_open(&w);
    for (size_t i = 0; i < n; i++)
        jw_int(&w, vals[i]);
    jw_arr_close(&w);
    assert_non_null(strstr(b.data, ",-9223372036854775808,"));
    assert_non_null(strstr(b.data, ",9223372036854775807,"));
    json_t *j = parse_ok(b.data);
    assert_int_equal(json_array_size(j), n);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", vals[i]);
        json_t *e = json_array_get(j, i);
        assert_true(json_is_integer(e));
        assert_true((long long)json_integer_value(e) == vals[i]);
    }
    json_decref(j);
    cp_buf_release(&b);
}

static void test_jw_time_and_json(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    json_t *v = json_pack("{s:[i,s]}", "x", 1, "y");
    jw_obj_open(&w);
    jw_key(&w, "t0");
    jw_time(&w, 0);
    jw_key(&w, "t");
    jw_time(&w, 1700000000005LL);
    jw_key(&w, "j");
    jw_json(&w, v, "null");
    jw_key(&w, "d");
    jw_json(&w, NULL, "[]");
    jw_key(&w, "d2");
    jw_json(&w, NULL, "{}");
    jw_obj_close(&w);
    assert_string_equal(b.data,
                        "{\"t0\":null,\"t\":\"2023-11-14T22:13:20.005Z\","
                        "\"j\":{\"x\":[1,\"y\"]},\"d\":[],\"d2\":{}}");
    json_t *j = parse_ok(b.data);
    assert_true(json_equal(json_object_get(j, "j"), v));
    int64_t ms = 0;
    assert_int_equal(cp_time_parse_iso(cp_json_str(j, "t"), &ms), 0);
    assert_int_equal(ms, 1700000000005LL);
    json_decref(j);
    json_decref(v);
    cp_buf_release(&b);
}

/* The writer and jansson agree on a document built both ways. */
static void test_jw_matches_jansson(void **state)
{
    (void)state;
    json_t *want = json_pack(
        "{s:s,s:I,s:b,s:n,s:[s,I,{s:s}],s:{}}", "name", "n\"o\\de\x01",
        "mem", (json_int_t)-4294967296LL, "ok", 1, "none", "list", "a",
        (json_int_t)LLONG_MAX, "k", "\xe2\x82\xac", "empty");
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "name");
    jw_str(&w, "n\"o\\de\x01");
    jw_key(&w, "mem");
    jw_int(&w, -4294967296LL);
    jw_key(&w, "ok");
    jw_bool(&w, true);
    jw_key(&w, "none");
    jw_null(&w);
    jw_key(&w, "list");
    jw_arr_open(&w);
    jw_str(&w, "a");
    jw_int(&w, LLONG_MAX);
    jw_obj_open(&w);
    jw_key(&w, "k");
    jw_str(&w, "\xe2\x82\xac");
    jw_obj_close(&w);
    jw_arr_close(&w);
    jw_key(&w, "empty");
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_obj_close(&w);
    json_t *got = parse_ok(b.data);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    cp_buf_release(&b);
}

/* ==== util.h ==== */

static void test_time_iso(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(cp_time_iso(0, buf, sizeof(buf)),
                        "1970-01-01T00:00:00.000Z");
    assert_string_equal(cp_time_iso(1700000000000LL, buf, sizeof(buf)),
                        "2023-11-14T22:13:20.000Z");
    assert_string_equal(cp_time_iso(1700000000999LL, buf, sizeof(buf)),
                        "2023-11-14T22:13:20.999Z");
    assert_string_equal(cp_time_iso(951782400001LL, buf, sizeof(buf)),
                        "2000-02-29T00:00:00.001Z");

    /* Round trips, now included. */
    const int64_t ts[] = {1, 999, 1000, 1700000000123LL, 951782400001LL,
                          4102444799999LL, cp_now_ms()};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        int64_t back = -1;
        cp_time_iso(ts[i], buf, sizeof(buf));
        assert_int_equal(cp_time_parse_iso(buf, &back), 0);
        assert_int_equal(back, ts[i]);
    }
}

static void test_time_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"2023-11-14T22:13:20Z", 1700000000000LL},
        {"2023-11-14T22:13:20.5Z", 1700000000500LL},
        {"2023-11-14T22:13:20.05Z", 1700000000050LL},
        {"2023-11-14T22:13:20.123456789Z", 1700000000123LL},
        {"2023-11-14T22:13:20+00:00", 1700000000000LL},
        {"2023-11-15T00:13:20+02:00", 1700000000000LL},
        {"2023-11-15T00:13:20.250+02:00", 1700000000250LL},
        {"2023-11-15T00:13:20+0200", 1700000000000LL},
        {"2023-11-15T00:13:20+02", 1700000000000LL},
        {"2023-11-14T17:13:20-05:00", 1700000000000LL},
        {"2023-11-14T22:43:20+00:30", 1700000000000LL},
        {"2023-11-14 22:13:20Z", 1700000000000LL},
        {"2023-11-14T22:13:20", 1700000000000LL},
        {"2023-11-14T22:13Z", 1699999980000LL},
        {"2023-11-14", 1699920000000LL},
        {"1970-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = -1;
        int rc = cp_time_parse_iso(good[i].s, &ms);
        if (rc != 0 || ms != good[i].ms)
            print_error("%s: rc %d ms %lld want %lld\n", good[i].s, rc,
                        (long long)ms, (long long)good[i].ms);
        assert_int_equal(rc, 0);
        assert_int_equal(ms, good[i].ms);
    }
    const char *bad[] = {
        "",
        "nope",
        "2023",
        "2023-11",
        "23-11-14T22:13:20Z",
        "2023/11/14T22:13:20Z",
        "2023-13-14T22:13:20Z",
        "2023-00-14T22:13:20Z",
        "2023-11-00T22:13:20Z",
        "2023-11-32T22:13:20Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:61Z",
        "2023-11-14T2:13:20Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20Zjunk",
        "2023-11-14T22:13:20 ",
        "2023-11-14T22:13:20+02:0",
        "2023-11-14T22:13:20+2:00",
        "2023-11-14T22:13:20+02:00x",
        "2023-11-14T",
        "2023-11-14X",
        "2023-1a-14",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 12345;
        int rc = cp_time_parse_iso(bad[i], &ms);
        if (rc != CP_EINVAL)
            print_error("'%s' accepted as %lld\n", bad[i], (long long)ms);
        assert_int_equal(rc, CP_EINVAL);
    }
}

/* Days past the end of their month are not dates: timegm() would quietly
 * move them into the next month. */
static void test_time_parse_rejects_impossible_dates(void **state)
{
    (void)state;
    const char *bad[] = {"2023-02-30T00:00:00Z", "2023-02-29T00:00:00Z",
                         "2023-04-31T00:00:00Z", "2023-11-31"};
    int accepted = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        int rc = cp_time_parse_iso(bad[i], &ms);
        if (rc != CP_EINVAL) {
            char buf[40];
            print_error("'%s' accepted as %s\n", bad[i],
                        cp_time_iso(ms, buf, sizeof(buf)));
            accepted++;
        }
    }
    assert_int_equal(accepted, 0);
    int64_t ms = 0;
    assert_int_equal(cp_time_parse_iso("2024-02-29T00:00:00Z", &ms), 0);
}

static void test_parse_int(void **state)
{
    (void)state;
    long long v = -1;
    assert_int_equal(cp_parse_int("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cp_parse_int("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cp_parse_int("-5", -5, 5, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(cp_parse_int("9223372036854775807", 0, LLONG_MAX, &v),
                     0);
    assert_true(v == LLONG_MAX);
    assert_int_equal(
        cp_parse_int("-9223372036854775808", LLONG_MIN, 0, &v), 0);
    assert_true(v == LLONG_MIN);

    v = 77;
    const char *bad[] = {"",   " 1", "1 ", "1x", "x1", "0x10", "1.0",
                         "--1", "1e3", "\t1", "9223372036854775808",
                         "-9223372036854775809", "11", "-6"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long long min = -5, max = 10;
        if (strlen(bad[i]) > 15) {
            min = LLONG_MIN;
            max = LLONG_MAX;
        }
        if (cp_parse_int(bad[i], min, max, &v) != CP_EINVAL)
            print_error("'%s' accepted\n", bad[i]);
        assert_int_equal(cp_parse_int(bad[i], min, max, &v), CP_EINVAL);
        assert_int_equal(v, 77); /* untouched on failure */
    }
    assert_int_equal(cp_parse_int(NULL, 0, 1, &v), CP_EINVAL);
}

static void test_hex_and_hashes(void **state)
{
    (void)state;
    char out[65];
    const unsigned char bytes[] = {0x00, 0xff, 0x10, 0xab, 0x7f};
    cp_hex(bytes, sizeof(bytes), out);
    assert_string_equal(out, "00ff10ab7f");
    cp_hex(bytes, 0, out);
    assert_string_equal(out, "");

    cp_sha256_hex("abc", 3, out);
    assert_string_equal(
        out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cp_sha256_hex("", 0, out);
    assert_string_equal(
        out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    const char *data = "what do ya want for nothing?";
    cp_hmac_sha256_hex("Jefe", 4, data, strlen(data), out);
    assert_string_equal(
        out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    char r1[33], r2[33];
    cp_random_hex(r1, 16);
    cp_random_hex(r2, 16);
    assert_int_equal(strlen(r1), 32);
    assert_int_equal(strspn(r1, "0123456789abcdef"), 32);
    assert_string_not_equal(r1, r2);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(cp_ct_equal("abcdef", "abcdef", 6));
    assert_false(cp_ct_equal("abcdef", "abcdeg", 6));
    assert_false(cp_ct_equal("xbcdef", "abcdef", 6));
    assert_true(cp_ct_equal("abcdef", "abcxyz", 3));
    assert_true(cp_ct_equal("a", "b", 0));
    const unsigned char a[] = {0, 1, 2}, b[] = {0, 1, 2}, c[] = {0, 1, 0x82};
    assert_true(cp_ct_equal(a, b, 3));
    assert_false(cp_ct_equal(a, c, 3));
}

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *b64;
    } vec[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
        {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *enc = cp_base64_encode(vec[i].plain, strlen(vec[i].plain));
        assert_string_equal(enc, vec[i].b64);
        cp_free(enc);
        unsigned char *dec = NULL;
        size_t n = 99;
        assert_int_equal(cp_base64_decode(vec[i].b64, &dec, &n), 0);
        assert_int_equal(n, strlen(vec[i].plain));
        assert_memory_equal(dec, vec[i].plain, n);
        cp_free(dec);
    }

    /* Every byte value, at every length modulo 3. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 254; len <= 256; len++) {
        char *enc = cp_base64_encode(all, len);
        assert_int_equal(strlen(enc), 4 * ((len + 2) / 3));
        unsigned char *dec = NULL;
        size_t n = 0;
        assert_int_equal(cp_base64_decode(enc, &dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, all, len);
        cp_free(dec);
        cp_free(enc);
    }

    const char *bad[] = {"Zg",    "Zm9",   "Zm9vY", "Zm9v!A==", "Zm 9",
                         "Zm9v\n", "====", "Z===",  "=Zg=",
                         "Zg==Zg==", "Zm-_"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *dec = NULL;
        size_t n = 0;
        int rc = cp_base64_decode(bad[i], &dec, &n);
        if (rc != CP_EINVAL)
            print_error("'%s' decoded to %zu bytes\n", bad[i], n);
        if (rc == 0)
            cp_free(dec);
        assert_int_equal(rc, CP_EINVAL);
    }
}

/* "Padding required": '=' only at the end, and a second-to-last '=' only
 * before a last one. "Zg=a" is not base64. */
static void test_base64_padding_only_at_end(void **state)
{
    (void)state;
    const char *bad[] = {"Zg=a", "Zm9vZg=a", "AA=B"};
    int accepted = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *dec = NULL;
        size_t n = 0;
        int rc = cp_base64_decode(bad[i], &dec, &n);
        if (rc != CP_EINVAL) {
            char hex[64] = "";
            if (rc == 0 && n < 30)
                cp_hex(dec, n, hex);
            print_error("'%s' decoded to %zu bytes (%s)\n", bad[i], n, hex);
            accepted++;
        }
        if (rc == 0)
            cp_free(dec);
    }
    assert_int_equal(accepted, 0);
}

static void test_buf_limit(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b, 10);
    assert_null(b.data);
    assert_int_equal(cp_buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(cp_buf_append(&b, "hello", 5), 0);
    assert_int_equal(cp_buf_printf(&b, "%d%s", 12, "abc"), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "hello12abc");
    /* Past max: refused, nothing changes. */
    assert_int_equal(cp_buf_append(&b, "x", 1), CP_EINVAL);
    assert_int_equal(cp_buf_printf(&b, "%s", "y"), CP_EINVAL);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "hello12abc");
    assert_int_equal(cp_buf_append(&b, "", 0), 0);
    cp_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 10);

    /* An append that straddles max is refused whole. */
    cp_buf_init(&b, 8);
    assert_int_equal(cp_buf_append(&b, "12345", 5), 0);
    assert_int_equal(cp_buf_append(&b, "6789", 4), CP_EINVAL);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    cp_buf_release(&b);

    /* Growth past the first chunk keeps the data. */
    cp_buf_init(&b, 1 << 20);
    char chunk[1000];
    memset(chunk, 'q', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        assert_int_equal(cp_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.len, 100000);
    assert_int_equal(strlen(b.data), 100000);
    assert_true(b.cap > b.len);
    cp_buf_release(&b);
}

/* ==== crypto.h ==== */

static void test_hkdf(void **state)
{
    (void)state;
    unsigned char k1[CP_KEY_LEN], k2[CP_KEY_LEN], k3[CP_KEY_LEN],
        k4[CP_KEY_LEN];
    assert_int_equal(cp_hkdf_sha256("master-secret", 13, "grid-token", k1),
                     0);
    assert_int_equal(cp_hkdf_sha256("master-secret", 13, "grid-token", k2),
                     0);
    assert_memory_equal(k1, k2, CP_KEY_LEN);
    assert_int_equal(cp_hkdf_sha256("master-secret", 13, "vault", k3), 0);
    assert_memory_not_equal(k1, k3, CP_KEY_LEN);
    assert_int_equal(cp_hkdf_sha256("master-secreT", 13, "grid-token", k4),
                     0);
    assert_memory_not_equal(k1, k4, CP_KEY_LEN);
    /* Pinned: HKDF-SHA256(ikm, salt "kontena-master", info). Changing the
     * derivation makes every sealed value at rest unreadable. */
    char hex[2 * CP_KEY_LEN + 1];
    cp_hex(k1, CP_KEY_LEN, hex);
    assert_string_equal(
        hex, "2546885fb85445b48aacfe429e3544562d12292663ed13ddb9241359fc9d0d77");
    assert_int_equal(cp_hkdf_sha256("", 0, "grid-token", k4), CP_EINVAL);
}

static void test_seal_open(void **state)
{
    (void)state;
    unsigned char key[CP_KEY_LEN], other[CP_KEY_LEN];
    assert_int_equal(cp_hkdf_sha256("s", 1, "test", key), 0);
    assert_int_equal(cp_hkdf_sha256("s", 1, "other", other), 0);

    const char *msgs[] = {"grid-token-1234567890", "", "x"};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        char *sealed = cp_seal(key, msgs[i], strlen(msgs[i]));
        assert_memory_equal(sealed, "kv1:", 4);
        char *plain = NULL;
        size_t n = 99;
        assert_int_equal(cp_open(key, sealed, &plain, &n), 0);
        assert_int_equal(n, strlen(msgs[i]));
        assert_string_equal(plain, msgs[i]);
        cp_free(plain);
        cp_free(sealed);
    }

    /* Binary with NULs. */
    const unsigned char bin[] = {0, 1, 2, 0, 255, 0};
    char *sealed = cp_seal(key, bin, sizeof(bin));
    char *plain = NULL;
    size_t n = 0;
    assert_int_equal(cp_open(key, sealed, &plain, &n), 0);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(plain, bin, sizeof(bin));
    assert_int_equal(plain[n], '\0');
    cp_free(plain);
    cp_free(sealed);
}

static void test_seal_failures(void **state)
{
    (void)state;
    unsigned char key[CP_KEY_LEN], other[CP_KEY_LEN];
    assert_int_equal(cp_hkdf_sha256("s", 1, "test", key), 0);
    assert_int_equal(cp_hkdf_sha256("s", 1, "other", other), 0);
    const char *msg = "the quick brown fox jumps over the lazy dog";
    char *sealed = cp_seal(key, msg, strlen(msg));
    size_t slen = strlen(sealed);
    char *plain = NULL;
    size_t n = 0;

    /* Two seals of the same value differ (random nonce). */
    char *again = cp_seal(key, msg, strlen(msg));
    assert_string_not_equal(sealed, again);
    cp_free(again);

    /* Wrong key. */
    assert_int_equal(cp_open(other, sealed, &plain, &n), CP_EPERM);
    assert_null(plain);

    /* A flipped character in the nonce, the ciphertext or the tag. */
    const size_t at[] = {5, 4 + 16, slen / 2, slen - 8};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        char *t = cp_strdup(sealed);
        t[at[i]] = t[at[i]] == 'A' ? 'B' : 'A';
        int rc = cp_open(key, t, &plain, &n);
        if (rc != CP_EPERM)
            print_error("tamper at %zu: rc %d\n", at[i], rc);
        assert_int_equal(rc, CP_EPERM);
        assert_null(plain);
        cp_free(t);
    }

    /* Not sealed text of a known version. */
    assert_int_equal(cp_open(key, msg, &plain, &n), CP_EPROTO);
    assert_int_equal(cp_open(key, "", &plain, &n), CP_EPROTO);
    assert_int_equal(cp_open(key, "kv2:AAAA", &plain, &n), CP_EPROTO);
    assert_int_equal(cp_open(key, "KV1:AAAA", &plain, &n), CP_EPROTO);
    char *v2 = cp_strdup(sealed);
    v2[1] = 'x';
    assert_int_equal(cp_open(key, v2, &plain, &n), CP_EPROTO);
    cp_free(v2);
    /* Bad base64. */
    assert_int_equal(cp_open(key, "kv1:!!!!", &plain, &n), CP_EPROTO);
    /* Truncated: shorter than nonce and tag, or cut mid-quantum. */
    assert_int_equal(cp_open(key, "kv1:", &plain, &n), CP_EPROTO);
    char *short_raw = cp_base64_encode("0123456789abcdef0123456789a", 27);
    char *short_sealed = cp_asprintf("kv1:%s", short_raw);
    assert_int_equal(cp_open(key, short_sealed, &plain, &n), CP_EPROTO);
    cp_free(short_sealed);
    cp_free(short_raw);
    char *cut = cp_strndup(sealed, slen - 1);
    assert_int_equal(cp_open(key, cut, &plain, &n), CP_EPROTO);
    cp_free(cut);
    cut = cp_strndup(sealed, 4 + 36); /* 27 bytes: no room for the tag */
    assert_int_equal(cp_open(key, cut, &plain, &n), CP_EPROTO);
    cp_free(cut);
    /* Cut on a quantum boundary: still never opens. */
    cut = cp_strndup(sealed, slen - 4);
    int rc = cp_open(key, cut, &plain, &n);
    assert_true(rc == CP_EPERM || rc == CP_EPROTO);
    cp_free(cut);
    assert_null(plain);

    cp_free(sealed);
}

/* ==== log.h, err.h ==== */

static void test_log_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        enum cp_log_level l;
    } good[] = {
        {"debug", CP_LOG_DEBUG}, {"DEBUG", CP_LOG_DEBUG},
        {"info", CP_LOG_INFO},   {"iNfO", CP_LOG_INFO},
        {"warn", CP_LOG_WARN},   {"warning", CP_LOG_WARN},
        {"WARNING", CP_LOG_WARN}, {"error", CP_LOG_ERROR},
        {"fatal", CP_LOG_ERROR}, {"Fatal", CP_LOG_ERROR},
        {"0", CP_LOG_DEBUG},     {"1", CP_LOG_INFO},
        {"2", CP_LOG_WARN},      {"3", CP_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        enum cp_log_level l = (enum cp_log_level)99;
        assert_int_equal(cp_log_parse_level(good[i].s, &l), 0);
        assert_int_equal(l, good[i].l);
    }
    const char *bad[] = {"", "verbose", "warnings", "inf", " info", "4",
                         "trace"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum cp_log_level l = CP_LOG_WARN;
        assert_int_equal(cp_log_parse_level(bad[i], &l), CP_EINVAL);
        assert_int_equal(l, CP_LOG_WARN);
    }

    unsigned mask = 1234;
    const char *badp = NULL;
    assert_int_equal(cp_log_parse_trace("", &mask, &badp), 0);
    assert_int_equal(mask, 0);
    assert_int_equal(cp_log_parse_trace("http", &mask, &badp), 0);
    assert_int_equal(mask, CP_TRACE_HTTP);
    assert_int_equal(cp_log_parse_trace("http,ws,rpc", &mask, NULL), 0);
    assert_int_equal(mask, CP_TRACE_HTTP | CP_TRACE_WS | CP_TRACE_RPC);
    assert_int_equal(cp_log_parse_trace("store,,sched,engine,", &mask, NULL),
                     0);
    assert_int_equal(mask,
                     CP_TRACE_STORE | CP_TRACE_SCHED | CP_TRACE_ENGINE);
    assert_int_equal(cp_log_parse_trace("all", &mask, NULL), 0);
    assert_int_equal(mask & 0x3f, 0x3f);

    mask = 7;
    assert_int_equal(cp_log_parse_trace("http,bogus,ws", &mask, &badp),
                     CP_EINVAL);
    assert_non_null(badp);
    assert_memory_equal(badp, "bogus", 5);
    assert_int_equal(mask, 7);
    assert_int_equal(cp_log_parse_trace("htt", &mask, &badp), CP_EINVAL);
    assert_int_equal(cp_log_parse_trace("https", &mask, NULL), CP_EINVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(cp_strerror(CP_OK), "success");
    assert_string_equal(cp_strerror(CP_ENOMEM), "out of memory");
    assert_string_equal(cp_strerror(CP_EINVAL), "invalid argument");
    assert_string_equal(cp_strerror(CP_ENOTFOUND), "not found");
    assert_string_equal(cp_strerror(CP_ECONFLICT), "conflict");
    assert_string_equal(cp_strerror(CP_EAGAIN), "try again");
    assert_string_equal(cp_strerror(CP_EIO), "input/output error");
    assert_string_equal(cp_strerror(CP_EPROTO), "protocol error");
    assert_string_equal(cp_strerror(CP_EPERM), "permission denied");
    assert_string_equal(cp_strerror(CP_ETIMEDOUT), "timed out");
    assert_string_equal(cp_strerror(CP_EUNSUPPORTED), "not supported");
    assert_string_equal(cp_strerror(-99), "unknown error");
    assert_string_equal(cp_strerror(5), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_basic),
        cmocka_unit_test(test_json_parse_duplicates),
        cmocka_unit_test(test_json_parse_depth),
        cmocka_unit_test(test_json_parse_garbage_and_nul),
        cmocka_unit_test(test_json_parse_utf8),
        cmocka_unit_test(test_json_dump),
        cmocka_unit_test(test_json_getters),
        cmocka_unit_test(test_jw_shapes),
        cmocka_unit_test(test_jw_escaping),
        cmocka_unit_test(test_jw_ints),
        cmocka_unit_test(test_jw_time_and_json),
        cmocka_unit_test(test_jw_matches_jansson),
        cmocka_unit_test(test_time_iso),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_time_parse_rejects_impossible_dates),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_hex_and_hashes),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64_padding_only_at_end),
        cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_hkdf),
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_seal_failures),
        cmocka_unit_test(test_log_parse),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
