/* Every store backend implements every operation: a NULL in an ops table
 * would crash the master on the first call of that operation (as the
 * PostgreSQL backend once would have on the vault and audit operations).
 * Each backend built in is checked: SQLite, PostgreSQL, MongoDB.
 * The table is read as an array of function pointers, so an operation
 * added to struct store_ops is checked without editing this test.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/master/store.h"

#include <string.h>

#ifdef CP_WITH_MONGODB
/* store_mongo.c's table (store.h may declare it too: the same type). */
extern const struct store_ops store_mongo_ops;
#endif

static void check_complete(const struct store_ops *ops, const char *name)
{
    assert_non_null(ops->name);
    assert_string_equal(ops->name, name);
    int missing = store_ops_missing(ops);
    if (missing >= 0)
        fail_msg("the %s backend leaves operation #%d of struct store_ops "
                 "NULL (count the members after name in store.h)",
                 name, missing);
}

static void test_sqlite_complete(void **state)
{
    (void)state;
    check_complete(&store_sqlite_ops, "sqlite");
}

static void test_postgres_complete(void **state)
{
    (void)state;
#ifdef CP_WITH_POSTGRES
    check_complete(&store_pg_ops, "postgres");
#else
    skip();
#endif
}

static void test_mongodb_complete(void **state)
{
    (void)state;
#ifdef CP_WITH_MONGODB
    check_complete(&store_mongo_ops, "mongodb");
#else
    skip();
#endif
}

/* The check finds a NULL wherever it is: first, in the middle, last. */
static void test_missing_found(void **state)
{
    (void)state;
    struct store_ops t = store_sqlite_ops;
    assert_int_equal(store_ops_missing(&t), -1);
    t.open = NULL;
    assert_int_equal(store_ops_missing(&t), 0);
    t = store_sqlite_ops;
    t.secret_create = NULL;
    int at = store_ops_missing(&t);
    assert_true(at > 0);
    t.audit_trim = NULL; /* a later one does not hide the first */
    assert_int_equal(store_ops_missing(&t), at);
    t = store_sqlite_ops;
    t.feed_unsubscribe = NULL;
    assert_int_equal(
        store_ops_missing(&t),
        (int)((sizeof(t) - sizeof(t.name)) / sizeof(t.feed_unsubscribe)) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_complete),
        cmocka_unit_test(test_postgres_complete),
        cmocka_unit_test(test_mongodb_complete),
        cmocka_unit_test(test_missing_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
