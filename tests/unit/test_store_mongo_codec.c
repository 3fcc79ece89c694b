/* Unit tests of the MongoDB backend's pure helpers (store_mongo_int.h):
 * the document writers and readers (mgb_*, mgr_*) round trip what the
 * store keeps (NULL as null, "" ids as null, int64 always, booleans, JSON
 * text exactly as jansson writes it for the PostgreSQL backend), and the
 * driver errors map to the store's codes (a duplicate key names its
 * index, write conflicts and transient errors retry, the rest is CP_EIO).
 * No server needed. Only in a build with the MongoDB backend.
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#ifdef CP_WITH_MONGODB

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/master/store_mongo_int.h"

#include <stdlib.h>
#include <string.h>

/* The flags cp_json_dump gives jansson, which the PostgreSQL backend
 * stores JSON columns with (pg_dump_or). */
#define PG_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY)

/* The type of key in b (BSON_TYPE_EOD when absent). */
static bson_type_t type_of(const bson_t *b, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, b, key))
        return BSON_TYPE_EOD;
    return bson_iter_type(&it);
}

static const char *utf8_of(const bson_t *b, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, b, key));
    assert_true(BSON_ITER_HOLDS_UTF8(&it));
    return bson_iter_utf8(&it, NULL);
}

/* ==== Writers ==== */

static void test_write_strings(void **state)
{
    (void)state;
    bson_t b = BSON_INITIALIZER;
    mgb_str(&b, "s", "h\xc3\xa9llo");
    mgb_str(&b, "empty", "");
    mgb_str(&b, "none", NULL);
    mgb_id(&b, "id", "0123456789abcdef01234567");
    mgb_id(&b, "id_empty", "");
    mgb_id(&b, "id_none", NULL);
    assert_string_equal(utf8_of(&b, "s"), "h\xc3\xa9llo");
    /* only ids turn "" into null; a plain string keeps it */
    assert_int_equal(type_of(&b, "empty"), BSON_TYPE_UTF8);
    assert_string_equal(utf8_of(&b, "empty"), "");
    assert_int_equal(type_of(&b, "none"), BSON_TYPE_NULL);
    assert_string_equal(utf8_of(&b, "id"), "0123456789abcdef01234567");
    assert_int_equal(type_of(&b, "id_empty"), BSON_TYPE_NULL);
    assert_int_equal(type_of(&b, "id_none"), BSON_TYPE_NULL);
    bson_destroy(&b);
}

static void test_write_numbers_and_bools(void **state)
{
    (void)state;
    bson_t b = BSON_INITIALIZER;
    mgb_i64(&b, "small", 5); /* int64 even when it fits an int32 */
    mgb_i64(&b, "zero", 0);
    mgb_i64(&b, "neg", -1);
    mgb_i64(&b, "max", INT64_MAX);
    mgb_i64(&b, "ms", 1764000000000LL);
    mgb_bool(&b, "yes", true);
    mgb_bool(&b, "no", false);
    const char *ints[] = {"small", "zero", "neg", "max", "ms"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        assert_int_equal(type_of(&b, ints[i]), BSON_TYPE_INT64);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &b, "max"));
    assert_true(bson_iter_int64(&it) == INT64_MAX);
    assert_true(bson_iter_init_find(&it, &b, "neg"));
    assert_true(bson_iter_int64(&it) == -1);
    assert_int_equal(type_of(&b, "yes"), BSON_TYPE_BOOL);
    assert_int_equal(type_of(&b, "no"), BSON_TYPE_BOOL);
    assert_true(bson_iter_init_find(&it, &b, "yes"));
    assert_true(bson_iter_bool(&it));
    assert_true(bson_iter_init_find(&it, &b, "no"));
    assert_false(bson_iter_bool(&it));
    bson_destroy(&b);
}

/* JSON columns hold exactly the text jansson writes for the PostgreSQL
 * backend: compact, keys in insertion order, reals at 15 digits. */
static void test_write_json(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:i,s:[i,f,s],s:{s:n,s:b},s:s,s:f}", "z", 1, "a",
                          1, 2.5, "x", "m", "k", "t", 1, "u",
                          "\xc3\xa9\n\"q\"", "r", 0.1);
    assert_non_null(j);
    json_t *arr = json_pack("[s,i]", "b", 2);
    bson_t b = BSON_INITIALIZER;
    mgb_json(&b, "spec", j, "{}");
    mgb_json(&b, "list", arr, "[]");
    mgb_json(&b, "dflt", NULL, "{}");
    mgb_json(&b, "dflt_list", NULL, "[]");
    mgb_json(&b, "none", NULL, NULL);

    char *want = json_dumps(j, PG_JSON_FLAGS);
    assert_non_null(want);
    assert_string_equal(utf8_of(&b, "spec"), want);
    /* the order written, not sorted; 0.1 not 0.10000000000000001 */
    assert_non_null(strstr(want, "{\"z\":1,\"a\":[1,2.5,\"x\"]"));
    assert_non_null(strstr(want, "\"r\":0.1}"));
    free(want);
    want = json_dumps(arr, PG_JSON_FLAGS);
    assert_string_equal(utf8_of(&b, "list"), want);
    free(want);
    assert_string_equal(utf8_of(&b, "dflt"), "{}");
    assert_string_equal(utf8_of(&b, "dflt_list"), "[]");
    assert_int_equal(type_of(&b, "none"), BSON_TYPE_NULL);
    json_decref(j);
    json_decref(arr);
    bson_destroy(&b);
}

/* ==== Readers ==== */

static void test_read_round_trip(void **state)
{
    (void)state;
    bson_t b = BSON_INITIALIZER;
    mgb_str(&b, "s", "value");
    mgb_str(&b, "none", NULL);
    mgb_id(&b, "id_empty", "");
    mgb_i64(&b, "n", -42);
    mgb_i64(&b, "big", 1764000000123LL);
    mgb_bool(&b, "yes", true);
    mgb_bool(&b, "no", false);

    char *s = mgr_str(&b, "s");
    assert_string_equal(s, "value");
    cp_free(s);
    assert_null(mgr_str(&b, "none"));
    assert_null(mgr_str(&b, "id_empty"));
    assert_null(mgr_str(&b, "absent"));

    char buf[32];
    mgr_fixed(&b, "s", buf, sizeof(buf));
    assert_string_equal(buf, "value");
    memcpy(buf, "junk", 5);
    mgr_fixed(&b, "none", buf, sizeof(buf));
    assert_string_equal(buf, "");
    memcpy(buf, "junk", 5);
    mgr_fixed(&b, "absent", buf, sizeof(buf));
    assert_string_equal(buf, "");
    /* a short buffer: still terminated, never overrun */
    char tiny[4];
    mgr_fixed(&b, "s", tiny, sizeof(tiny));
    assert_true(strlen(tiny) < sizeof(tiny));
    assert_int_equal(strncmp(tiny, "value", strlen(tiny)), 0);

    assert_true(mgr_i64(&b, "n") == -42);
    assert_true(mgr_i64(&b, "big") == 1764000000123LL);
    assert_true(mgr_i64(&b, "absent") == 0);
    assert_true(mgr_i64(&b, "none") == 0);
    assert_true(mgr_bool(&b, "yes"));
    assert_false(mgr_bool(&b, "no"));
    assert_false(mgr_bool(&b, "absent"));
    assert_false(mgr_bool(&b, "none"));

    assert_true(mgr_null(&b, "none"));
    assert_true(mgr_null(&b, "id_empty"));
    assert_true(mgr_null(&b, "absent"));
    assert_false(mgr_null(&b, "s"));
    assert_false(mgr_null(&b, "n"));
    assert_false(mgr_null(&b, "no"));
    bson_destroy(&b);
}

/* Numbers written by other clients (the shell writes doubles, small
 * literals are int32) read the same as int64s. */
static void test_read_i64_any_number(void **state)
{
    (void)state;
    bson_t b = BSON_INITIALIZER;
    BSON_APPEND_INT32(&b, "i32", 7);
    BSON_APPEND_INT32(&b, "neg32", -7);
    BSON_APPEND_INT64(&b, "i64", 1LL << 40);
    BSON_APPEND_DOUBLE(&b, "dbl", 42.0);
    BSON_APPEND_BOOL(&b, "flag", true);
    assert_true(mgr_i64(&b, "i32") == 7);
    assert_true(mgr_i64(&b, "neg32") == -7);
    assert_true(mgr_i64(&b, "i64") == (1LL << 40));
    assert_true(mgr_i64(&b, "dbl") == 42);
    assert_true(mgr_i64(&b, "flag") == 1);
    bson_destroy(&b);
}

static void test_read_json(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s,s:[i,i]}", "b", "x", "a", 1, 2);
    bson_t b = BSON_INITIALIZER;
    mgb_json(&b, "spec", j, "{}");
    mgb_json(&b, "none", NULL, NULL);
    BSON_APPEND_UTF8(&b, "bad", "{not json");

    /* parsed: dflt is released (ASan would catch a leak or a double
     * free) and the value equals what was written, order kept */
    json_t *got = mgr_json(&b, "spec", json_object());
    assert_non_null(got);
    assert_true(json_equal(got, j));
    char *a = json_dumps(got, PG_JSON_FLAGS);
    char *w = json_dumps(j, PG_JSON_FLAGS);
    assert_string_equal(a, w);
    free(a);
    free(w);
    json_decref(got);

    json_t *dflt = json_array();
    assert_ptr_equal(mgr_json(&b, "none", dflt), dflt);
    assert_ptr_equal(mgr_json(&b, "absent", dflt), dflt);
    assert_ptr_equal(mgr_json(&b, "bad", dflt), dflt);
    json_decref(dflt);
    assert_null(mgr_json(&b, "none", NULL));
    json_decref(j);
    bson_destroy(&b);
}

static void test_read_id(void **state)
{
    (void)state;
    char id[STORE_ID_LEN + 1];
    bson_t b = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&b, "_id", "0123456789abcdef01234567");
    mgr_id(&b, id);
    assert_string_equal(id, "0123456789abcdef01234567");
    bson_destroy(&b);

    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "5f1e2d3c4b5a69788796a5b4");
    bson_init(&b);
    BSON_APPEND_OID(&b, "_id", &oid);
    mgr_id(&b, id);
    assert_string_equal(id, "5f1e2d3c4b5a69788796a5b4");
    bson_destroy(&b);

    /* rows keyed by a name (kv, config, leases) */
    bson_init(&b);
    BSON_APPEND_UTF8(&b, "_id", "leader");
    mgr_id(&b, id);
    assert_string_equal(id, "leader");
    bson_destroy(&b);
}

/* ==== Errors ==== */

static void test_dup_index(void **state)
{
    (void)state;
    char out[64];
    static const struct {
        const char *message, *index;
    } cases[] = {
        /* MongoDB 4.4+ */
        {"E11000 duplicate key error collection: kontena.users index: "
         "users_email_key dup key: { email: \"a\" }",
         "users_email_key"},
        {"E11000 duplicate key error collection: kt_0a1b.host_nodes index: "
         "host_nodes_grid_id_name_key dup key: { grid_id: \"g1\", name: "
         "\"node-1\" }",
         "host_nodes_grid_id_name_key"},
        {"E11000 duplicate key error collection: kontena_master.grids index: "
         "grids_token_hash_key dup key: { token_hash: \"abc\" }",
         "grids_token_hash_key"},
        {"E11000 duplicate key error collection: kontena.users index: _id_ "
         "dup key: { _id: \"0123456789abcdef01234567\" }",
         "_id_"},
        /* MongoDB 4.2 and earlier leave the field names out */
        {"E11000 duplicate key error collection: kontena.stacks index: "
         "stacks_grid_id_name_key dup key: { : \"g\", : \"app\" }",
         "stacks_grid_id_name_key"},
        /* not a duplicate key message */
        {"WriteConflict error: this operation conflicted with another "
         "operation. Please retry your operation or multi-document "
         "transaction.",
         ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(out, "junk", 5);
        mg_dup_index(cases[i].message, out, sizeof(out));
        assert_string_equal(out, cases[i].index);
    }
    /* a short buffer: terminated, never overrun */
    char tiny[8];
    mg_dup_index(cases[0].message, tiny, sizeof(tiny));
    assert_true(strlen(tiny) < sizeof(tiny));
}

/* A reply as libmongoc fills it for a failed write (one write error). */
static void write_error_reply(bson_t *reply, int code, const char *msg)
{
    bson_init(reply);
    BSON_APPEND_INT64(reply, "nInserted", 0);
    bson_t errs, one;
    BSON_APPEND_ARRAY_BEGIN(reply, "writeErrors", &errs);
    BSON_APPEND_DOCUMENT_BEGIN(&errs, "0", &one);
    BSON_APPEND_INT32(&one, "index", 0);
    BSON_APPEND_INT32(&one, "code", code);
    BSON_APPEND_UTF8(&one, "errmsg", msg);
    bson_append_document_end(&errs, &one);
    bson_append_array_end(reply, &errs);
}

/* A command reply with an error label (what the server or the driver adds
 * to an error inside a transaction). */
static void labelled_reply(bson_t *reply, int code, const char *label)
{
    bson_init(reply);
    BSON_APPEND_DOUBLE(reply, "ok", 0);
    BSON_APPEND_INT32(reply, "code", code);
    bson_t labels;
    BSON_APPEND_ARRAY_BEGIN(reply, "errorLabels", &labels);
    BSON_APPEND_UTF8(&labels, "0", label);
    bson_append_array_end(reply, &labels);
}

static void test_error_code(void **state)
{
    (void)state;
    static const char dupmsg[] =
        "E11000 duplicate key error collection: kontena.users index: "
        "users_email_key dup key: { email: \"a\" }";
    bson_error_t e;
    bson_t reply;
    char conflict[64];

    /* duplicate key: CP_ECONFLICT naming the index */
    bson_set_error(&e, MONGOC_ERROR_SERVER, 11000, "%s", dupmsg);
    write_error_reply(&reply, 11000, dupmsg);
    memcpy(conflict, "junk", 5);
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_ECONFLICT);
    assert_string_equal(conflict, "users_email_key");
    assert_int_equal(mg_error_code(&e, &reply, NULL, 0), CP_ECONFLICT);
    bson_destroy(&reply);

    /* a write conflict (112), bare or labelled: retry */
    bson_set_error(&e, MONGOC_ERROR_SERVER, 112,
                   "WriteConflict error: this operation conflicted with "
                   "another operation.");
    bson_init(&reply);
    memcpy(conflict, "junk", 5);
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EAGAIN);
    assert_string_equal(conflict, "");
    bson_destroy(&reply);
    labelled_reply(&reply, 112, "TransientTransactionError");
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EAGAIN);
    bson_destroy(&reply);

    /* any error labelled TransientTransactionError: retry */
    bson_set_error(&e, MONGOC_ERROR_SERVER, 251,
                   "Transaction 3 has been aborted.");
    labelled_reply(&reply, 251, "TransientTransactionError");
    memcpy(conflict, "junk", 5);
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EAGAIN);
    assert_string_equal(conflict, "");
    bson_destroy(&reply);

    /* anything else: CP_EIO */
    bson_set_error(&e, MONGOC_ERROR_SERVER, 2, "BadValue: unknown operator");
    bson_init(&reply);
    memcpy(conflict, "junk", 5);
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EIO);
    assert_string_equal(conflict, "");
    bson_destroy(&reply);
    bson_set_error(&e, MONGOC_ERROR_SERVER_SELECTION,
                   MONGOC_ERROR_SERVER_SELECTION_FAILURE,
                   "No suitable servers found");
    bson_init(&reply);
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EIO);
    bson_destroy(&reply);
    /* another label is not a reason to retry */
    bson_set_error(&e, MONGOC_ERROR_SERVER, 50, "operation exceeded time "
                   "limit");
    labelled_reply(&reply, 50, "SomeOtherLabel");
    assert_int_equal(mg_error_code(&e, &reply, conflict, sizeof(conflict)),
                     CP_EIO);
    bson_destroy(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_strings),
        cmocka_unit_test(test_write_numbers_and_bools),
        cmocka_unit_test(test_write_json),
        cmocka_unit_test(test_read_round_trip),
        cmocka_unit_test(test_read_i64_any_number),
        cmocka_unit_test(test_read_json),
        cmocka_unit_test(test_read_id),
        cmocka_unit_test(test_dup_index),
        cmocka_unit_test(test_error_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !CP_WITH_MONGODB */

static void test_not_built(void **state)
{
    (void)state;
    print_message("skipped: this build has no MongoDB backend "
                  "(configured with -DWITH_MONGODB=OFF)\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
