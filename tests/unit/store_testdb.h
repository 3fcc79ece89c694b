/* The database a store unit test runs against: by default SQLite in a
 * fresh temporary directory; when KONTENA_TEST_DATABASE_URL names a
 * PostgreSQL server (tests/pg.sh sets it), a fresh database created on it
 * for the test and dropped afterwards. Also raw SQL on that database, for
 * rows the store has no operation for and for checking what it wrote.
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

struct testdb {
    bool pg;
    char dir[64];   /* SQLite: the temporary root, removed at the end */
    char path[128]; /* SQLite: the data directory */
    char name[40];  /* PostgreSQL: the database */
    char url[600];  /* what store_open gets */
};

/* The PostgreSQL server to test against, or NULL for SQLite. */
static inline const char *testdb_server(void)
{
    const char *u = getenv("KONTENA_TEST_DATABASE_URL");
    return u != NULL && u[0] != '\0' ? u : NULL;
}

static inline const char *testdb_backend(void)
{
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

/* A fresh, empty database (SQLite: in sub, a not-yet-existing
 * subdirectory of a new temporary directory, or the directory itself when
 * sub is NULL). */
static inline void testdb_make(struct testdb *t, const char *sub)
{
    memset(t, 0, sizeof(*t));
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

/* Runs sql (statements without results); aborts on failure. */
static inline void testdb_exec(struct testdb *t, const char *sql)
{
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

/* Waits up to ms for *counter to reach want (the PostgreSQL feed is
 * delivered by a listener thread; SQLite's synchronously). */
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
