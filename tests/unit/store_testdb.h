/* The database a store unit test runs against: by default SQLite in a
 * fresh temporary directory; when KONTENA_TEST_DATABASE_URL names a
 * PostgreSQL server (tests/pg.sh sets it), a fresh database created on it
 * for the test and dropped afterwards; when KONTENA_TEST_MONGODB_URI names
 * a MongoDB replica set (tests/mongo.sh sets it), a fresh database on it
 * (kt_<random hex>, made by the first write), dropped afterwards. Also raw
 * SQL on that database, for rows the store has no operation for and for
 * checking what it wrote, and the same through libmongoc on MongoDB
 * (testdb_mongo_*: collections and fields are named like the PostgreSQL
 * tables and columns, "_id" is the row id, JSON columns are JSON text; see
 * src/master/store_mongo_int.h). A test reaches for the one its backend
 * needs (t->mongo), or skips that one check saying why.
 *
 * Included by the store test files (not a test itself: no test_ prefix).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef KONTENA_STORE_TESTDB_H
#define KONTENA_STORE_TESTDB_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/util.h"

#ifdef CP_WITH_POSTGRES
#include <libpq-fe.h>
#endif
#ifdef CP_WITH_MONGODB
#include <mongoc/mongoc.h>
#endif

struct testdb {
    bool pg;
    bool mongo;
    char dir[64];   /* SQLite: the temporary root, removed at the end */
    char path[128]; /* SQLite: the data directory */
    char name[40];  /* PostgreSQL, MongoDB: the database */
    char url[600];  /* what store_open gets */
};

/* The MongoDB replica set to test against, or NULL. */
static inline const char *testdb_mongo_server(void)
{
    const char *u = getenv("KONTENA_TEST_MONGODB_URI");
    return u != NULL && u[0] != '\0' ? u : NULL;
}

/* The PostgreSQL server to test against, or NULL (SQLite, or MongoDB when
 * testdb_mongo_server() is set). */
static inline const char *testdb_server(void)
{
    if (testdb_mongo_server() != NULL)
        return NULL;
    const char *u = getenv("KONTENA_TEST_DATABASE_URL");
    return u != NULL && u[0] != '\0' ? u : NULL;
}

static inline const char *testdb_backend(void)
{
    if (testdb_mongo_server() != NULL)
        return "mongodb";
    return testdb_server() != NULL ? "postgres" : "sqlite";
}

static inline int testdb_rm_entry(const char *path, const struct stat *sb,
                                  int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

#ifdef CP_WITH_POSTGRES
/* server's URL with its database name replaced by name. */
static inline void testdb_url_for(const char *server, const char *name,
                                  char *out, size_t size)
{
    const char *scheme = strstr(server, "://");
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (slash == NULL) {
        fprintf(stderr, "testdb: cannot read a database name in %s\n", server);
        abort();
    }
    const char *rest = slash + 1 + strcspn(slash + 1, "?");
    snprintf(out, size, "%.*s/%s%s", (int)(slash - server), server, name, rest);
}

/* Runs one statement on the database at url; aborts on failure. */
static inline PGresult *testdb_pq(const char *url, const char *sql, bool rows)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "testdb: connect: %s", PQerrorMessage(c));
        abort();
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType want = rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
    if (PQresultStatus(r) != want) {
        fprintf(stderr, "testdb: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    PQfinish(c);
    return r;
}
#endif

#ifdef CP_WITH_MONGODB
/* server's URL with name as its database (the path), its query string
 * kept: mongodb://h:p/?replicaSet=rs0 -> mongodb://h:p/NAME?replicaSet=rs0 */
static inline void testdb_mongo_url_for(const char *server, const char *name,
                                        char *out, size_t size)
{
    const char *hosts = strstr(server, "://");
    if (hosts == NULL) {
        fprintf(stderr, "testdb: not a MongoDB URI: %s\n", server);
        abort();
    }
    hosts += 3;
    const char *end = hosts + strcspn(hosts, "/?");
    const char *rest = end;
    if (*rest == '/')
        rest += 1 + strcspn(rest + 1, "?"); /* the server's database */
    snprintf(out, size, "%.*s/%s%s", (int)(end - server), server, name, rest);
}

static inline void testdb_mongo_fail(const char *what, const char *detail,
                                     const bson_error_t *e)
{
    fprintf(stderr, "testdb: %s %s: %s\n", what, detail ? detail : "",
            e != NULL ? e->message : "");
    abort();
}

/* A client of the database at url (aborts when the URI is bad). Its
 * writes wait for the majority, as the store's do: the store reads at
 * read concern "majority", which does not show a w:1 write until the
 * majority commit point passes it (on one member: until it is journaled,
 * up to 100 ms later), so a row inserted here with w:1 could be missing
 * for the store operation right after. */
static inline mongoc_client_t *testdb_mongo_client(const char *url)
{
    mongoc_init(); /* once per process, whoever calls it first */
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &e);
    if (uri == NULL)
        testdb_mongo_fail("bad MongoDB URI", url, &e);
    mongoc_client_t *c = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (c == NULL)
        testdb_mongo_fail("cannot make a client for", url, NULL);
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(wc, 30000);
    mongoc_client_set_write_concern(c, wc);
    mongoc_write_concern_destroy(wc);
    return c;
}

/* json (canonical or relaxed extended JSON: {"$numberLong": "1"} is an
 * int64) as a new document; NULL is {}. */
static inline bson_t *testdb_bson(const char *json)
{
    if (json == NULL)
        return bson_new();
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    if (b == NULL)
        testdb_mongo_fail("bad JSON", json, &e);
    return b;
}

/* A collection of the test's database, with its client. */
struct testdb_coll {
    mongoc_client_t *client;
    mongoc_collection_t *coll;
};

static inline struct testdb_coll testdb_mongo_coll(const struct testdb *t,
                                                   const char *coll)
{
    struct testdb_coll c;
    c.client = testdb_mongo_client(t->url);
    c.coll = mongoc_client_get_collection(c.client, t->name, coll);
    return c;
}

static inline void testdb_mongo_done(struct testdb_coll *c)
{
    mongoc_collection_destroy(c->coll);
    mongoc_client_destroy(c->client);
}

/* Inserts one document into coll. */
static inline void testdb_mongo_insert(const struct testdb *t,
                                       const char *coll, const char *doc_json)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    bson_t *doc = testdb_bson(doc_json);
    bson_error_t e;
    if (!mongoc_collection_insert_one(c.coll, doc, NULL, NULL, &e))
        testdb_mongo_fail("insert", doc_json, &e);
    bson_destroy(doc);
    testdb_mongo_done(&c);
}

/* updateMany; returns the matched count. */
static inline long long testdb_mongo_update(const struct testdb *t,
                                            const char *coll,
                                            const char *filter_json,
                                            const char *update_json)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    bson_t *filter = testdb_bson(filter_json);
    bson_t *update = testdb_bson(update_json);
    bson_t reply;
    bson_error_t e;
    if (!mongoc_collection_update_many(c.coll, filter, update, NULL, &reply,
                                       &e))
        testdb_mongo_fail("update", update_json, &e);
    bson_iter_t it;
    long long n = bson_iter_init_find(&it, &reply, "matchedCount")
                      ? bson_iter_as_int64(&it)
                      : -1;
    bson_destroy(&reply);
    bson_destroy(filter);
    bson_destroy(update);
    testdb_mongo_done(&c);
    return n;
}

/* deleteMany; returns the deleted count. */
static inline long long testdb_mongo_delete(const struct testdb *t,
                                            const char *coll,
                                            const char *filter_json)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    bson_t *filter = testdb_bson(filter_json);
    bson_t reply;
    bson_error_t e;
    if (!mongoc_collection_delete_many(c.coll, filter, NULL, &reply, &e))
        testdb_mongo_fail("delete from", coll, &e);
    bson_iter_t it;
    long long n = bson_iter_init_find(&it, &reply, "deletedCount")
                      ? bson_iter_as_int64(&it)
                      : -1;
    bson_destroy(&reply);
    bson_destroy(filter);
    testdb_mongo_done(&c);
    return n;
}

/* The number of documents of coll matching filter_json (NULL: all). */
static inline long long testdb_mongo_count(const struct testdb *t,
                                           const char *coll,
                                           const char *filter_json)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    bson_t *filter = testdb_bson(filter_json);
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(c.coll, filter, NULL, NULL,
                                                  NULL, &e);
    if (n < 0)
        testdb_mongo_fail("count", coll, &e);
    bson_destroy(filter);
    testdb_mongo_done(&c);
    return n;
}

/* The first document of coll matching filter_json in sort_json's order
 * (NULL: any) into *out (bson_destroy it); false when none. */
static inline bool testdb_mongo_first(const struct testdb *t,
                                      const char *coll,
                                      const char *filter_json,
                                      const char *sort_json, bson_t *out)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    bson_t *filter = testdb_bson(filter_json);
    bson_t *opts = bson_new();
    BSON_APPEND_INT64(opts, "limit", 1);
    if (sort_json != NULL) {
        bson_t *sort = testdb_bson(sort_json);
        BSON_APPEND_DOCUMENT(opts, "sort", sort);
        bson_destroy(sort);
    }
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c.coll, filter, opts, NULL);
    const bson_t *doc = NULL;
    bool found = mongoc_cursor_next(cur, &doc);
    bson_error_t e;
    if (!found && mongoc_cursor_error(cur, &e))
        testdb_mongo_fail("find in", coll, &e);
    if (found)
        bson_copy_to(doc, out);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    testdb_mongo_done(&c);
    return found;
}

/* field (a number) of the first document as testdb_mongo_first finds it,
 * or -1 when none (SELECT MIN(field): sort_json {"field": 1}). */
static inline long long testdb_mongo_i64(const struct testdb *t,
                                         const char *coll,
                                         const char *filter_json,
                                         const char *sort_json,
                                         const char *field)
{
    bson_t doc;
    if (!testdb_mongo_first(t, coll, filter_json, sort_json, &doc))
        return -1;
    bson_iter_t it;
    long long n = bson_iter_init_find(&it, &doc, field) &&
                          (BSON_ITER_HOLDS_NUMBER(&it) ||
                           BSON_ITER_HOLDS_BOOL(&it))
                      ? bson_iter_as_int64(&it)
                      : -1;
    bson_destroy(&doc);
    return n;
}

/* The _id (a string) of the first document of coll matching filter_json
 * into out; aborts when there is none. */
static inline void testdb_mongo_id(const struct testdb *t, const char *coll,
                                   const char *filter_json, char out[25])
{
    bson_t doc;
    if (!testdb_mongo_first(t, coll, filter_json, NULL, &doc))
        testdb_mongo_fail("no document in", coll, NULL);
    bson_iter_t it;
    out[0] = '\0';
    if (bson_iter_init_find(&it, &doc, "_id") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, 25, "%s", bson_iter_utf8(&it, NULL));
    else if (bson_iter_init_find(&it, &doc, "_id") &&
             BSON_ITER_HOLDS_OID(&it))
        bson_oid_to_string(bson_iter_oid(&it), out);
    bson_destroy(&doc);
}

/* Whether coll has an index named name. */
static inline bool testdb_mongo_has_index(const struct testdb *t,
                                          const char *coll, const char *name)
{
    struct testdb_coll c = testdb_mongo_coll(t, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c.coll,
                                                                    NULL);
    const bson_t *doc = NULL;
    bool found = false;
    while (!found && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "name") &&
            BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), name) == 0)
            found = true;
    }
    bson_error_t e;
    if (!found && mongoc_cursor_error(cur, &e))
        testdb_mongo_fail("list indexes of", coll, &e);
    mongoc_cursor_destroy(cur);
    testdb_mongo_done(&c);
    return found;
}

/* Runs a command (cmd_json) on the test's database; its reply into *reply
 * (bson_destroy it). */
static inline void testdb_mongo_command(const struct testdb *t,
                                        const char *cmd_json, bson_t *reply)
{
    mongoc_client_t *c = testdb_mongo_client(t->url);
    bson_t *cmd = testdb_bson(cmd_json);
    bson_error_t e;
    if (!mongoc_client_command_simple(c, t->name, cmd, NULL, reply, &e))
        testdb_mongo_fail("command", cmd_json, &e);
    bson_destroy(cmd);
    mongoc_client_destroy(c);
}
#endif

/* A fresh, empty database (SQLite: in sub, a not-yet-existing
 * subdirectory of a new temporary directory, or the directory itself when
 * sub is NULL). */
static inline void testdb_make(struct testdb *t, const char *sub)
{
    memset(t, 0, sizeof(*t));
    if (testdb_mongo_server() != NULL) {
#ifdef CP_WITH_MONGODB
        t->mongo = true;
        char hex[17];
        cp_random_hex(hex, 8);
        snprintf(t->name, sizeof(t->name), "kt_%s", hex);
        testdb_mongo_url_for(testdb_mongo_server(), t->name, t->url,
                             sizeof(t->url));
        return;
#else
        fprintf(stderr, "testdb: KONTENA_TEST_MONGODB_URI is set but this "
                        "build has no MongoDB backend\n");
        abort();
#endif
    }
    const char *server = testdb_server();
    if (server == NULL) {
        snprintf(t->dir, sizeof(t->dir), "/tmp/test_store.XXXXXX");
        if (mkdtemp(t->dir) == NULL) {
            perror("mkdtemp");
            abort();
        }
        if (sub != NULL)
            snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, sub);
        else
            snprintf(t->path, sizeof(t->path), "%s", t->dir);
        snprintf(t->url, sizeof(t->url), "sqlite:%s", t->path);
        return;
    }
#ifdef CP_WITH_POSTGRES
    t->pg = true;
    char hex[17];
    cp_random_hex(hex, 8);
    snprintf(t->name, sizeof(t->name), "kt_%s", hex);
    char sql[96];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->name);
    PQclear(testdb_pq(server, sql, false));
    testdb_url_for(server, t->name, t->url, sizeof(t->url));
#else
    fprintf(stderr, "testdb: KONTENA_TEST_DATABASE_URL is set but this "
                    "build has no PostgreSQL backend\n");
    abort();
#endif
}

static inline void testdb_drop(struct testdb *t)
{
    if (t->mongo) {
#ifdef CP_WITH_MONGODB
        mongoc_client_t *c = testdb_mongo_client(t->url);
        mongoc_database_t *db = mongoc_client_get_database(c, t->name);
        bson_error_t e;
        if (!mongoc_database_drop(db, &e))
            testdb_mongo_fail("drop database", t->name, &e);
        mongoc_database_destroy(db);
        mongoc_client_destroy(c);
#endif
        return;
    }
    if (!t->pg) {
        if (t->dir[0] != '\0')
            nftw(t->dir, testdb_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return;
    }
#ifdef CP_WITH_POSTGRES
    char sql[96];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", t->name);
    PQclear(testdb_pq(testdb_server(), sql, false));
#endif
}

static inline sqlite3 *testdb_sqlite(struct testdb *t)
{
    char file[160];
    snprintf(file, sizeof(file), "%s/kontena.db", t->path);
    sqlite3 *db = NULL;
    if (sqlite3_open(file, &db) != SQLITE_OK) {
        fprintf(stderr, "testdb: open %s\n", file);
        abort();
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* SQL on a MongoDB database is a bug of the test: it must use the
 * testdb_mongo_* equivalent (or skip that check, saying why). */
static inline void testdb_no_sql(const struct testdb *t, const char *sql)
{
    if (t->mongo) {
        fprintf(stderr, "testdb: SQL on MongoDB (use testdb_mongo_*): %s\n",
                sql);
        abort();
    }
}

/* Runs sql (statements without results); aborts on failure. */
static inline void testdb_exec(struct testdb *t, const char *sql)
{
    testdb_no_sql(t, sql);
    if (t->pg) {
#ifdef CP_WITH_POSTGRES
        PQclear(testdb_pq(t->url, sql, false));
#endif
        return;
    }
    sqlite3 *db = testdb_sqlite(t);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "testdb: %s: %s\n", sql, err);
        abort();
    }
    sqlite3_close(db);
}

/* The first column of the first row of sql, as a number. */
static inline long long testdb_count(struct testdb *t, const char *sql)
{
    long long n = -1;
    testdb_no_sql(t, sql);
    if (t->pg) {
#ifdef CP_WITH_POSTGRES
        PGresult *r = testdb_pq(t->url, sql, true);
        if (PQntuples(r) > 0)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
#endif
        return n;
    }
    sqlite3 *db = testdb_sqlite(t);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* The number of rows of table (documents of the collection on MongoDB). */
static inline long long testdb_rows(struct testdb *t, const char *table)
{
    if (t->mongo) {
#ifdef CP_WITH_MONGODB
        return testdb_mongo_count(t, table, NULL);
#endif
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    return testdb_count(t, sql);
}

/* Waits up to ms for *counter to reach want (the PostgreSQL feed is
 * delivered by a listener thread, MongoDB's by a change stream thread;
 * SQLite's synchronously). */
static inline bool testdb_wait(volatile int *counter, int want, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= want)
            return true;
        usleep(5000);
    }
    return __atomic_load_n(counter, __ATOMIC_SEQ_CST) >= want;
}

#endif
