/* The PostgreSQL backend of the store (KONTENA_DATABASE_URL=postgres://...):
 * several masters share one database, so every operation is safe against
 * the same operation running at the same moment in another process.
 *
 * DESIGN
 * - Connections: a mutex-protected pool of libpq connections, grown on
 *   demand up to PG_POOL_MAX (then callers wait). An operation takes one,
 *   uses it alone and puts it back. Each connection prepares a statement
 *   the first time it runs it (named server-side, cached by the address of
 *   the static SQL text). Every value travels as a parameter; SQL text is
 *   never built from values.
 * - Lost connections: a statement that fails with the connection gone
 *   marks it broken; it is closed when put back and the next operation
 *   opens a fresh one (libpq's reconnect). Meanwhile operations answer
 *   CP_EIO, logged once with the server's message.
 * - Atomicity: single statements are atomic; operations of several
 *   statements run through pg_tx (BEGIN ... COMMIT at READ COMMITTED,
 *   rollback on any error, retried on serialization failures and
 *   deadlocks). Read-then-write operations take the row lock they depend
 *   on first (SELECT ... FOR UPDATE / FOR NO KEY UPDATE on the row or its
 *   grid) so that a concurrent master waits and then sees the new state;
 *   the deploy queue is serialised by a transaction-level advisory lock,
 *   because its rule ("one ongoing deploy per service") spans rows.
 * - Migrations: pg_migrations[] (store_pg_schema.c), applied under a
 *   session advisory lock, each in its own transaction recorded in
 *   schema_migrations, so masters starting together migrate once.
 * - Change feed: LISTEN/NOTIFY on a dedicated connection and thread
 *   (store_pg_feed.c).
 *
 * Errors: unique violations are CP_ECONFLICT (the constraint name tells
 * which field), foreign-key violations CP_ENOTFOUND (the referenced row is
 * missing), everything else CP_EIO logged once here with SQLSTATE and the
 * primary message only (details may quote values).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct pg_store *pgs(struct store *st)
{
    return (struct pg_store *)st;
}

/* ==== Parameters ==== */

void pgp_s(struct pgp *p, const char *s)
{
    if (p->n >= PG_MAX_PARAMS)
        cp_panic("store_pg: more than %d parameters", PG_MAX_PARAMS);
    p->v[p->n++] = s;
}

void pgp_i(struct pgp *p, int64_t v)
{
    if (p->n >= PG_MAX_PARAMS)
        cp_panic("store_pg: more than %d parameters", PG_MAX_PARAMS);
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

void pgp_b(struct pgp *p, bool v)
{
    pgp_s(p, v ? "t" : "f");
}

const char *pg_nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ==== Row readers ==== */

char *pgr_str(const PGresult *r, int i, int col)
{
    if (PQgetisnull(r, i, col))
        return NULL;
    return cp_strdup(PQgetvalue(r, i, col));
}

void pgr_fixed(const PGresult *r, int i, int col, char *out, size_t size)
{
    const char *t = PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col);
    size_t n = strlen(t);
    if (n >= size)
        n = size - 1;
    memcpy(out, t, n);
    out[n] = '\0';
}

int64_t pgr_i64(const PGresult *r, int i, int col)
{
    if (PQgetisnull(r, i, col))
        return 0;
    return strtoll(PQgetvalue(r, i, col), NULL, 10);
}

bool pgr_bool(const PGresult *r, int i, int col)
{
    return !PQgetisnull(r, i, col) && PQgetvalue(r, i, col)[0] == 't';
}

bool pgr_null(const PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) != 0;
}

json_t *pgr_json(const PGresult *r, int i, int col, json_t *dflt)
{
    json_t *j = PQgetisnull(r, i, col)
                    ? NULL
                    : json_loads(PQgetvalue(r, i, col), 0, NULL);
    if (j == NULL)
        return dflt;
    json_decref(dflt);
    return j;
}

char *pg_dump_or(const json_t *j, const char *dflt)
{
    return j != NULL ? cp_json_dump(j) : cp_strdup(dflt);
}

/* ==== Statements ==== */

/* The conflict constraint of the last unique violation, per thread: a
 * connection is used by one thread at a time. */
static _Thread_local char last_conflict[64];
/* Whether the last failure on this thread was a serialization failure or
 * deadlock (worth retrying the transaction). */
static _Thread_local bool last_retryable;

const char *pgx_conflict(struct pgc *c)
{
    CP_UNUSED(c);
    return last_conflict;
}

/* The last connection failure on this thread, for pg_open's error. */
static _Thread_local char last_connect_error[256];

/* libpq's message on one line: newlines and tabs become spaces, the
 * trailing ones go. */
static void one_line(const char *msg, char *out, size_t size)
{
    size_t n = 0;
    for (; *msg != '\0' && n + 1 < size; msg++)
        out[n++] = (*msg == '\n' || *msg == '\t') ? ' ' : *msg;
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

void pg_log_failure(const char *what, const char *state, const char *msg)
{
    char line[512];
    one_line(msg, line, sizeof(line));
    cp_error("store: %s: %s%s%s", what, state ? state : "", state ? " " : "",
             line);
}

/* Maps a finished statement to 0 or a CP_E* code (see pgx_exec). */
static int pgx_result(struct pgc *c, const PGresult *r, const char *what)
{
    ExecStatusType s = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        return 0;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23505") == 0) {
        const char *k = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        snprintf(last_conflict, sizeof(last_conflict), "%s", k ? k : "");
        return CP_ECONFLICT;
    }
    if (state != NULL && strcmp(state, "23503") == 0)
        return CP_ENOTFOUND;
    if (state != NULL &&
        (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
        last_retryable = true;
        return CP_EAGAIN;
    }
    if (PQstatus(c->conn) != CONNECTION_OK)
        c->broken = true;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_log_failure(what, state, msg != NULL ? msg : PQerrorMessage(c->conn));
    return CP_EIO;
}

/* The name of sql's prepared statement on c, preparing it on first use;
 * NULL (logged) on failure. */
static const char *prepared(struct pgc *c, const char *sql, int nparams,
                            const char *what)
{
    for (size_t i = 0; i < c->nstmts; i++)
        if (c->stmts[i].sql == sql)
            return c->stmts[i].name;
    if (c->nstmts == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->stmts = cp_realloc(c->stmts, c->cap * sizeof(*c->stmts));
    }
    struct pg_stmt *ps = &c->stmts[c->nstmts];
    snprintf(ps->name, sizeof(ps->name), "k%zu", c->nstmts);
    PGresult *r = PQprepare(c->conn, ps->name, sql, nparams, NULL);
    int rc = pgx_result(c, r, what);
    PQclear(r);
    if (rc != 0) {
        if (rc != CP_EIO)
            pg_log_failure(what, NULL, "prepare failed");
        return NULL;
    }
    ps->sql = sql;
    c->nstmts++;
    return ps->name;
}

static int finish(struct pgc *c, PGresult *r, const char *what, PGresult **res)
{
    int rc = pgx_result(c, r, what);
    if (rc == 0 && res != NULL) {
        *res = r;
        return 0;
    }
    PQclear(r);
    return rc;
}

int pgx_exec(struct pgc *c, const char *sql, const struct pgp *p,
             const char *what, PGresult **res)
{
    if (res != NULL)
        *res = NULL;
    last_conflict[0] = '\0';
    int n = p != NULL ? p->n : 0;
    const char *name = prepared(c, sql, n, what);
    if (name == NULL)
        return CP_EIO;
    PGresult *r =
        PQexecPrepared(c->conn, name, n, p ? p->v : NULL, NULL, NULL, 0);
    return finish(c, r, what, res);
}

int pgx_exec_dyn(struct pgc *c, const char *sql, const struct pgp *p,
                 const char *what, PGresult **res)
{
    if (res != NULL)
        *res = NULL;
    last_conflict[0] = '\0';
    int n = p != NULL ? p->n : 0;
    PGresult *r =
        PQexecParams(c->conn, sql, n, NULL, p ? p->v : NULL, NULL, NULL, 0);
    return finish(c, r, what, res);
}

int pgx_run(struct pgc *c, const char *sql, const struct pgp *p,
            const char *what, int *changes)
{
    PGresult *r = NULL;
    int rc = pgx_exec(c, sql, p, what, &r);
    if (rc == 0 && changes != NULL) {
        const char *t = PQcmdTuples(r);
        *changes = t[0] ? (int)strtol(t, NULL, 10) : 0;
    }
    PQclear(r);
    return rc;
}

static int collect(PGresult *r, pg_row_fn *rd, size_t size, void **items,
                   size_t *len)
{
    int n = PQntuples(r);
    char *buf = n > 0 ? cp_calloc((size_t)n, size) : NULL;
    for (int i = 0; i < n; i++)
        rd(r, i, buf + (size_t)i * size);
    *items = buf;
    *len = (size_t)n;
    PQclear(r);
    return 0;
}

int pgx_row_in(struct pgc *c, const char *sql, const struct pgp *p,
               pg_row_fn *rd, void *out, const char *what)
{
    PGresult *r = NULL;
    int rc = pgx_exec(c, sql, p, what, &r);
    if (rc != 0)
        return rc;
    if (PQntuples(r) > 0)
        rd(r, 0, out);
    else
        rc = CP_ENOTFOUND;
    PQclear(r);
    return rc;
}

int pgx_rows_in(struct pgc *c, const char *sql, const struct pgp *p,
                pg_row_fn *rd, size_t size, void **items, size_t *len,
                const char *what)
{
    PGresult *r = NULL;
    *items = NULL;
    *len = 0;
    int rc = pgx_exec(c, sql, p, what, &r);
    return rc != 0 ? rc : collect(r, rd, size, items, len);
}

int pgx_rows_dyn(struct pgc *c, const char *sql, const struct pgp *p,
                 pg_row_fn *rd, size_t size, void **items, size_t *len,
                 const char *what)
{
    PGresult *r = NULL;
    *items = NULL;
    *len = 0;
    int rc = pgx_exec_dyn(c, sql, p, what, &r);
    return rc != 0 ? rc : collect(r, rd, size, items, len);
}

/* ==== Connections ==== */

static void on_notice(void *arg, const char *message)
{
    CP_UNUSED(arg);
    cp_debug("store: postgres notice: %s", message);
}

/* Opens a connection to url; NULL (logged) on failure. libpq reads the
 * URL (postgres://user:password@host:port/db?param=...); the URL itself
 * is never logged, since it may carry a password. */
static PGconn *connect_url(const char *url, const char *app)
{
    /* A database host that vanishes without a reset (a moved address, a
     * partition) must not hang a thread forever: TCP keepalives and a
     * user timeout notice it within about 30 s, and no statement runs
     * longer than a minute. The URL may override any of these (libpq
     * lets later parameters, the URL's, win). */
    const char *const keys[] = {"connect_timeout",  "application_name",
                                "keepalives",       "keepalives_idle",
                                "keepalives_interval", "keepalives_count",
                                "tcp_user_timeout", "options",
                                "dbname",           NULL};
    const char *const vals[] = {"10", app, "1", "10", "5", "3", "30000",
                                "-c statement_timeout=60000", url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        cp_error("store: postgres connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(PQerrorMessage(conn), last_connect_error,
                 sizeof(last_connect_error));
        pg_log_failure("postgres connect", NULL, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

PGconn *pg_connect(const char *url, const char *app)
{
    return connect_url(url, app);
}

static void conn_free(struct pgc *c)
{
    if (c == NULL)
        return;
    PQfinish(c->conn);
    cp_free(c->stmts);
    cp_free(c);
}

struct pgc *pg_conn_get(struct pg_store *s)
{
    pthread_mutex_lock(&s->pool_mu);
    while (s->pool == NULL && s->nconns >= PG_POOL_MAX)
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    struct pgc *c = s->pool;
    if (c != NULL) {
        s->pool = c->next;
        pthread_mutex_unlock(&s->pool_mu);
        c->next = NULL;
        return c;
    }
    s->nconns++;
    pthread_mutex_unlock(&s->pool_mu);
    c = cp_calloc(1, sizeof(*c));
    c->conn = connect_url(s->url, "kontena-master");
    if (c->conn == NULL) {
        cp_free(c);
        pthread_mutex_lock(&s->pool_mu);
        s->nconns--;
        pthread_cond_signal(&s->pool_cv);
        pthread_mutex_unlock(&s->pool_mu);
        return NULL;
    }
    return c;
}

void pg_conn_put(struct pg_store *s, struct pgc *c)
{
    if (!c->broken && PQstatus(c->conn) == CONNECTION_OK &&
        PQtransactionStatus(c->conn) != PQTRANS_IDLE) {
        /* Our code never leaves a transaction open; be safe anyway. */
        PQclear(PQexec(c->conn, "ROLLBACK"));
    }
    bool keep = !c->broken && PQstatus(c->conn) == CONNECTION_OK &&
                PQtransactionStatus(c->conn) == PQTRANS_IDLE;
    if (!keep) {
        conn_free(c);
        pthread_mutex_lock(&s->pool_mu);
        s->nconns--;
        pthread_cond_signal(&s->pool_cv);
        pthread_mutex_unlock(&s->pool_mu);
        return;
    }
    pthread_mutex_lock(&s->pool_mu);
    c->next = s->pool;
    s->pool = c;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* ==== Transactions ==== */

static int run(struct store *st, pg_tx_fn *fn, void *ctx, bool tx)
{
    struct pg_store *s = pgs(st);
    struct pgc *c = pg_conn_get(s);
    if (c == NULL)
        return CP_EIO;
    int rc = CP_EIO;
    for (int attempt = 0; attempt < PG_TX_RETRIES; attempt++) {
        last_retryable = false;
        rc = tx ? pgx_run(c, "BEGIN", NULL, "begin", NULL) : 0;
        if (rc == 0)
            rc = fn(c, ctx);
        if (tx && rc == 0)
            rc = pgx_run(c, "COMMIT", NULL, "commit", NULL);
        if (tx && rc != 0 && !c->broken)
            PQclear(PQexec(c->conn, "ROLLBACK"));
        if (rc == 0 || !last_retryable || c->broken)
            break;
        /* Serialization failure or deadlock: run it again. */
        cp_debug("store: transaction retried after a conflict");
    }
    if (rc == CP_EAGAIN && last_retryable) {
        cp_error("store: transaction kept failing on conflicts");
        rc = CP_EIO;
    }
    pg_conn_put(s, c);
    return rc;
}

int pg_tx(struct store *st, pg_tx_fn *fn, void *ctx)
{
    return run(st, fn, ctx, true);
}

/* ==== Pooled shorthands ==== */

struct one_ctx {
    const char *sql;
    const struct pgp *p;
    const char *what;
    int *changes;
    pg_row_fn *rd;
    void *out;
    size_t size;
    void **items;
    size_t *len;
};

static int write_fn(struct pgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return pgx_run(c, o->sql, o->p, o->what, o->changes);
}

int pg_write(struct store *st, const char *sql, const struct pgp *p,
             int *changes, const char *what)
{
    struct one_ctx o = {.sql = sql, .p = p, .what = what, .changes = changes};
    return run(st, write_fn, &o, false);
}

int pg_write_row(struct store *st, const char *sql, const struct pgp *p,
                 int none, const char *what)
{
    int changes = 0;
    int rc = pg_write(st, sql, p, &changes, what);
    return rc == 0 && changes == 0 ? none : rc;
}

static int row_fn(struct pgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return pgx_row_in(c, o->sql, o->p, o->rd, o->out, o->what);
}

int pg_row_one(struct store *st, const char *sql, const struct pgp *p,
               pg_row_fn *rd, void *out, const char *what)
{
    struct one_ctx o = {.sql = sql, .p = p, .what = what, .rd = rd, .out = out};
    return run(st, row_fn, &o, false);
}

static int rows_fn(struct pgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return pgx_rows_in(c, o->sql, o->p, o->rd, o->size, o->items, o->len,
                       o->what);
}

int pg_rows_all(struct store *st, const char *sql, const struct pgp *p,
                pg_row_fn *rd, size_t size, void **items, size_t *len,
                const char *what)
{
    struct one_ctx o = {.sql = sql,
                        .p = p,
                        .what = what,
                        .rd = rd,
                        .size = size,
                        .items = items,
                        .len = len};
    *items = NULL;
    *len = 0;
    return run(st, rows_fn, &o, false);
}

/* ==== Open, close, migrate ==== */

static int migrate_one(struct pgc *c, const struct pg_migration *m)
{
    struct pgp p = {0};
    pgp_i(&p, m->version);
    PGresult *r = NULL;
    int rc = pgx_exec(c, "SELECT 1 FROM schema_migrations WHERE version=$1", &p,
                      "read schema_migrations", &r);
    if (rc != 0)
        return rc;
    bool done = PQntuples(r) > 0;
    PQclear(r);
    if (done)
        return 0;
    rc = pgx_run(c, "BEGIN", NULL, "begin", NULL);
    if (rc != 0)
        return rc;
    /* Constant DDL text, several statements: the simple query protocol. */
    r = PQexec(c->conn, m->sql);
    rc = pgx_result(c, r, "migration");
    PQclear(r);
    if (rc == 0) {
        pgp_i(&p, cp_now_ms());
        rc = pgx_run(c,
                     "INSERT INTO schema_migrations(version, applied_at) "
                     "VALUES($1, $2)",
                     &p, "record migration", NULL);
    }
    if (rc == 0)
        rc = pgx_run(c, "COMMIT", NULL, "commit", NULL);
    if (rc != 0) {
        if (!c->broken)
            PQclear(PQexec(c->conn, "ROLLBACK"));
        return rc;
    }
    cp_info("store: applied schema migration %d", m->version);
    return 0;
}

/* Runs every missing migration while holding the migration lock, so that
 * masters starting together on an empty database migrate it once: the
 * others wait on the lock and then find every version recorded. */
static int migrate(struct pgc *c, int *failed)
{
    struct pgp lk = {0};
    pgp_i(&lk, PG_MIGRATE_LOCK);
    *failed = 0;
    int rc = pgx_run(c, "SELECT pg_advisory_lock($1::bigint)", &lk,
                     "migration lock", NULL);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(c->conn, "CREATE TABLE IF NOT EXISTS "
                                  "schema_migrations(version INTEGER "
                                  "PRIMARY KEY, applied_at BIGINT)");
    rc = pgx_result(c, r, "create schema_migrations");
    PQclear(r);
    for (size_t i = 0; rc == 0 && i < pg_nmigrations; i++) {
        rc = migrate_one(c, &pg_migrations[i]);
        if (rc != 0)
            *failed = pg_migrations[i].version;
    }
    if (!c->broken)
        pgx_run(c, "SELECT pg_advisory_unlock($1::bigint)", &lk,
                "migration unlock", NULL);
    return rc;
}

static void pg_close(struct store *st);

static int pg_open(const char *url, struct store **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    struct pg_store *s = cp_calloc(1, sizeof(*s));
    s->base.ops = &store_pg_ops;
    s->url = cp_strdup(url);
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->feed_mu, NULL);
    pthread_cond_init(&s->feed_cv, NULL);
    s->next_sub_id = 1;

    int rc = CP_EIO;
    struct pgc *c = pg_conn_get(s);
    if (c == NULL) {
        snprintf(err, errlen, "PostgreSQL store: cannot connect: %s",
                 last_connect_error);
        goto fail;
    }
    int version = PQserverVersion(c->conn);
    if (version < 100000) {
        snprintf(err, errlen,
                 "PostgreSQL store: server version %d is too old (10 or "
                 "newer is needed)",
                 version);
        pg_conn_put(s, c);
        rc = CP_EUNSUPPORTED;
        goto fail;
    }
    int failed = 0;
    rc = migrate(c, &failed);
    pg_conn_put(s, c);
    if (rc != 0) {
        snprintf(err, errlen, "PostgreSQL store: schema migration %d failed",
                 failed);
        goto fail;
    }
    *out = &s->base;
    return 0;
fail:
    pg_close(&s->base);
    return rc;
}

static void pg_close(struct store *st)
{
    struct pg_store *s = pgs(st);
    pgf_stop(s);
    struct pgc *c = s->pool;
    while (c != NULL) {
        struct pgc *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->feed_mu);
    pthread_cond_destroy(&s->feed_cv);
    cp_free(s->url);
    cp_free(s);
}

static void read_int(const PGresult *r, int i, void *item)
{
    *(int64_t *)item = pgr_i64(r, i, 0);
}

static int pg_ping(struct store *st)
{
    int64_t one = 0;
    int rc = pg_row_one(st, "SELECT 1", NULL, read_int, &one, "ping");
    return rc == 0 && one != 1 ? CP_EIO : rc;
}

static int pg_schema_version(struct store *st, int *out)
{
    int64_t v = 0;
    int rc = pg_row_one(st,
                        "SELECT COALESCE(MAX(version), 0) FROM "
                        "schema_migrations",
                        NULL, read_int, &v, "schema_version");
    *out = (int)v;
    return rc;
}

/* ==== Config ==== */

static void read_str0(const PGresult *r, int i, void *item)
{
    *(char **)item = pgr_str(r, i, 0);
}

static int pg_config_get(struct store *st, const char *key, char **out)
{
    struct pgp p = {0};
    pgp_s(&p, key);
    *out = NULL;
    return pg_row_one(st, "SELECT value FROM config WHERE key=$1", &p,
                      read_str0, out, "config_get");
}

static int pg_config_set(struct store *st, const char *key, const char *value)
{
    struct pgp p = {0};
    pgp_s(&p, key);
    pgp_s(&p, value);
    return pg_write(st,
                    "INSERT INTO config(key, value) VALUES($1, $2) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    &p, NULL, "config_set");
}

static int pg_config_set_if_absent(struct store *st, const char *key,
                                   const char *value, bool *written)
{
    struct pgp p = {0};
    pgp_s(&p, key);
    pgp_s(&p, value);
    int changes = 0;
    int rc = pg_write(st,
                      "INSERT INTO config(key, value) VALUES($1, $2) "
                      "ON CONFLICT(key) DO NOTHING",
                      &p, &changes, "config_set_if_absent");
    if (written != NULL)
        *written = rc == 0 && changes > 0;
    return rc;
}

/* ==== Users ==== */

#define USER_COLS "u.id, u.email, u.name, u.roles, u.created_at, u.updated_at"

static void read_user(const PGresult *r, int i, void *item)
{
    struct store_user *u = item;
    memset(u, 0, sizeof(*u));
    pgr_fixed(r, i, 0, u->id, sizeof(u->id));
    u->email = pgr_str(r, i, 1);
    u->name = pgr_str(r, i, 2);
    u->roles = (unsigned)pgr_i64(r, i, 3);
    u->created_at = pgr_i64(r, i, 4);
    u->updated_at = pgr_i64(r, i, 5);
}

static int user_get_one(struct store *st, const char *sql, const char *arg,
                        struct store_user *out)
{
    struct pgp p = {0};
    pgp_s(&p, arg);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, sql, &p, read_user, out, "user_get");
}

static int user_list_q(struct store *st, const char *sql, const char *arg,
                       struct store_user_list *out)
{
    struct pgp p = {0};
    if (arg != NULL)
        pgp_s(&p, arg);
    void *items = NULL;
    int rc = pg_rows_all(st, sql, &p, read_user, sizeof(*out->items), &items,
                         &out->len, "user_list");
    out->items = items;
    if (rc != 0)
        store_user_list_release(out);
    return rc;
}

static int pg_user_create(struct store *st, const struct store_user *u)
{
    if (u->id[0] == '\0' || u->email == NULL)
        return CP_EINVAL;
    int64_t now = cp_now_ms();
    struct pgp p = {0};
    pgp_s(&p, u->id);
    pgp_s(&p, u->email);
    pgp_s(&p, u->name);
    pgp_i(&p, u->roles);
    pgp_i(&p, u->created_at ? u->created_at : now);
    pgp_i(&p, u->updated_at ? u->updated_at : now);
    return pg_write(st,
                    "INSERT INTO users(id, email, name, roles, created_at, "
                    "updated_at) VALUES($1, $2, $3, $4, $5, $6)",
                    &p, NULL, "user_create");
}

static int pg_user_get(struct store *st, const char *id, struct store_user *out)
{
    return user_get_one(st, "SELECT " USER_COLS " FROM users u WHERE u.id=$1",
                        id, out);
}

static int pg_user_get_by_email(struct store *st, const char *email,
                                struct store_user *out)
{
    return user_get_one(
        st, "SELECT " USER_COLS " FROM users u WHERE u.email=$1", email, out);
}

static int pg_user_list(struct store *st, struct store_user_list *out)
{
    return user_list_q(
        st, "SELECT " USER_COLS " FROM users u ORDER BY u.email COLLATE \"C\"",
        NULL, out);
}

static int pg_user_set_roles(struct store *st, const char *id, unsigned roles)
{
    struct pgp p = {0};
    pgp_i(&p, roles);
    pgp_i(&p, cp_now_ms());
    pgp_s(&p, id);
    return pg_write_row(st,
                        "UPDATE users SET roles=$1, updated_at=$2 WHERE id=$3",
                        &p, CP_ENOTFOUND, "user_set_roles");
}

/* ==== Tokens and codes ==== */

#define TOKEN_COLS                                                             \
    "id, user_id, kind, token_hash, refresh_hash, token_last4, "               \
    "refresh_last4, scopes, description, internal, is_bootstrap, "             \
    "parent_code_id, expires_at, created_at, last_used_at"

static void read_token(const PGresult *r, int i, void *item)
{
    struct store_token *t = item;
    memset(t, 0, sizeof(*t));
    pgr_fixed(r, i, 0, t->id, sizeof(t->id));
    pgr_fixed(r, i, 1, t->user_id, sizeof(t->user_id));
    t->kind = pgr_i64(r, i, 2) == STORE_TOKEN_CODE ? STORE_TOKEN_CODE
                                                   : STORE_TOKEN_BEARER;
    t->token_hash = pgr_str(r, i, 3);
    t->refresh_hash = pgr_str(r, i, 4);
    pgr_fixed(r, i, 5, t->token_last4, sizeof(t->token_last4));
    pgr_fixed(r, i, 6, t->refresh_last4, sizeof(t->refresh_last4));
    t->scopes = pgr_str(r, i, 7);
    t->description = pgr_str(r, i, 8);
    t->internal = pgr_bool(r, i, 9);
    t->is_bootstrap = pgr_bool(r, i, 10);
    pgr_fixed(r, i, 11, t->parent_code_id, sizeof(t->parent_code_id));
    t->expires_at = pgr_i64(r, i, 12);
    t->created_at = pgr_i64(r, i, 13);
    t->last_used_at = pgr_i64(r, i, 14);
}

static int pg_token_create(struct store *st, const struct store_token *t)
{
    if (t->id[0] == '\0' || t->token_hash == NULL)
        return CP_EINVAL;
    struct pgp p = {0};
    pgp_s(&p, t->id);
    pgp_s(&p, t->user_id);
    pgp_i(&p, (int)t->kind);
    pgp_s(&p, t->token_hash);
    pgp_s(&p, t->refresh_hash);
    pgp_s(&p, t->token_last4);
    pgp_s(&p, t->refresh_last4);
    pgp_s(&p, t->scopes ? t->scopes : "");
    pgp_s(&p, t->description);
    pgp_b(&p, t->internal);
    pgp_b(&p, t->is_bootstrap);
    pgp_s(&p, t->parent_code_id);
    pgp_i(&p, t->expires_at);
    pgp_i(&p, t->created_at ? t->created_at : cp_now_ms());
    pgp_i(&p, t->last_used_at);
    return pg_write(st,
                    "INSERT INTO access_tokens(" TOKEN_COLS ") VALUES($1, $2, "
                    "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    &p, NULL, "token_create");
}

static int pg_token_get(struct store *st, const char *id,
                        struct store_token *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st,
                      "SELECT " TOKEN_COLS " FROM access_tokens WHERE id=$1",
                      &p, read_token, out, "token lookup");
}

static const char sql_token_find[] =
    "SELECT " TOKEN_COLS " FROM access_tokens "
    "WHERE kind=$1 AND token_hash=$2 AND (expires_at=0 OR expires_at>$3) "
    "LIMIT 1";

static int pg_token_find(struct store *st, enum store_token_kind kind,
                         const char *hash, int64_t now, struct store_token *out)
{
    struct pgp p = {0};
    pgp_i(&p, (int)kind);
    pgp_s(&p, hash);
    pgp_i(&p, now);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, sql_token_find, &p, read_token, out, "token lookup");
}

struct take_ctx {
    const char *hash;
    int64_t now;
    bool is_code;
    struct store_token *out;
};

/* Locks the row first: a concurrent take of the same code or refresh
 * token waits, then finds it gone (single use across masters). */
static int take_fn(struct pgc *c, void *ctx)
{
    struct take_ctx *t = ctx;
    store_token_release(t->out);
    struct pgp p = {0};
    int rc;
    if (t->is_code) {
        pgp_i(&p, STORE_TOKEN_CODE);
        pgp_s(&p, t->hash);
        pgp_i(&p, t->now);
        rc = pgx_row_in(c,
                        "SELECT " TOKEN_COLS " FROM access_tokens "
                        "WHERE kind=$1 AND token_hash=$2 AND "
                        "(expires_at=0 OR expires_at>$3) LIMIT 1 FOR UPDATE",
                        &p, read_token, t->out, "code take");
    } else {
        pgp_s(&p, t->hash);
        rc = pgx_row_in(c,
                        "SELECT " TOKEN_COLS " FROM access_tokens "
                        "WHERE kind=0 AND refresh_hash=$1 LIMIT 1 FOR UPDATE",
                        &p, read_token, t->out, "refresh take");
    }
    if (rc != 0 || (t->is_code && t->out->is_bootstrap))
        return rc;
    struct pgp d = {0};
    pgp_s(&d, t->out->id);
    return pgx_run(c, "DELETE FROM access_tokens WHERE id=$1", &d,
                   "token delete", NULL);
}

static int pg_code_take(struct store *st, const char *hash, int64_t now,
                        struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    struct take_ctx t = {hash, now, true, out};
    int rc = pg_tx(st, take_fn, &t);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

static int pg_refresh_take(struct store *st, const char *refresh_hash,
                           struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    struct take_ctx t = {refresh_hash, 0, false, out};
    int rc = pg_tx(st, take_fn, &t);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

static int pg_token_list_by_user(struct store *st, const char *user_id,
                                 struct store_token_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, user_id);
    void *items = NULL;
    int rc = pg_rows_all(
        st,
        "SELECT " TOKEN_COLS " FROM access_tokens "
        "WHERE user_id=$1 ORDER BY created_at, id COLLATE \"C\"",
        &p, read_token, sizeof(*out->items), &items, &out->len, "token_list");
    out->items = items;
    if (rc != 0)
        store_token_list_release(out);
    return rc;
}

static int pg_token_delete(struct store *st, const char *id)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    return pg_write_row(st, "DELETE FROM access_tokens WHERE id=$1", &p,
                        CP_ENOTFOUND, "token_delete");
}

static int pg_token_touch(struct store *st, const char *id, int64_t now)
{
    struct pgp p = {0};
    pgp_i(&p, now);
    pgp_s(&p, id);
    pgp_i(&p, PG_TOUCH_INTERVAL_MS);
    return pg_write(st,
                    "UPDATE access_tokens SET last_used_at=$1 WHERE id=$2 "
                    "AND last_used_at < $1::bigint - $3::bigint",
                    &p, NULL, "token_touch");
}

struct confirm_ctx {
    const char *token_id, *code_id;
};

static int confirm_fn(struct pgc *c, void *ctx)
{
    struct confirm_ctx *k = ctx;
    struct pgp p = {0};
    pgp_s(&p, k->code_id);
    int rc = pgx_run(c, "DELETE FROM access_tokens WHERE id=$1", &p,
                     "token delete", NULL);
    if (rc != 0)
        return rc;
    struct pgp q = {0};
    pgp_s(&q, k->token_id);
    return pgx_run(c, "UPDATE access_tokens SET parent_code_id='' WHERE id=$1",
                   &q, "token confirm", NULL);
}

static int pg_token_confirm(struct store *st, const char *token_id,
                            const char *code_id)
{
    struct confirm_ctx k = {token_id, code_id};
    return pg_tx(st, confirm_fn, &k);
}

static int pg_bootstrap_codes_delete(struct store *st)
{
    return pg_write(st,
                    "DELETE FROM access_tokens WHERE kind=1 AND is_bootstrap",
                    NULL, NULL, "bootstrap_codes_delete");
}

static int pg_tokens_expire(struct store *st, int64_t now, int *deleted)
{
    struct pgp p = {0};
    pgp_i(&p, now);
    int changes = 0;
    int rc = pg_write(st,
                      "DELETE FROM access_tokens "
                      "WHERE expires_at<>0 AND expires_at<=$1",
                      &p, &changes, "tokens_expire");
    if (deleted != NULL)
        *deleted = rc == 0 ? changes : 0;
    return rc;
}

/* ==== Grids ==== */

/* Grid columns plus its counts, each a correlated COUNT over an indexed
 * grid_id: one statement however many grids there are. */
#define GRID_SELECT                                                            \
    "SELECT g.id, g.name, g.token_hash, g.token_sealed, g.initial_size, "      \
    "g.subnet, g.supernet, g.settings, g.created_at, g.updated_at, "           \
    "(SELECT COUNT(*) FROM host_nodes n WHERE n.grid_id=g.id), "               \
    "(SELECT COUNT(*) FROM grid_services v WHERE v.grid_id=g.id), "            \
    "(SELECT COUNT(*) FROM grid_users m WHERE m.grid_id=g.id), "               \
    "(SELECT COUNT(*) FROM containers k "                                      \
    " WHERE k.grid_id=g.id AND k.deleted_at=0) "                               \
    "FROM grids g "

static void read_grid(const PGresult *r, int i, void *item)
{
    struct store_grid *g = item;
    memset(g, 0, sizeof(*g));
    pgr_fixed(r, i, 0, g->id, sizeof(g->id));
    g->name = pgr_str(r, i, 1);
    g->token_hash = pgr_str(r, i, 2);
    g->token_sealed = pgr_str(r, i, 3);
    g->initial_size = (int)pgr_i64(r, i, 4);
    g->subnet = pgr_str(r, i, 5);
    g->supernet = pgr_str(r, i, 6);
    g->settings = pgr_json(r, i, 7, NULL);
    if (!json_is_object(g->settings)) {
        json_decref(g->settings);
        g->settings = json_object();
    }
    g->created_at = pgr_i64(r, i, 8);
    g->updated_at = pgr_i64(r, i, 9);
    g->node_count = (int)pgr_i64(r, i, 10);
    g->service_count = (int)pgr_i64(r, i, 11);
    g->user_count = (int)pgr_i64(r, i, 12);
    g->container_count = (int)pgr_i64(r, i, 13);
}

static int grid_get_one(struct store *st, const char *sql, const char *arg,
                        struct store_grid *out)
{
    struct pgp p = {0};
    pgp_s(&p, arg);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, sql, &p, read_grid, out, "grid_get");
}

/* 1 when sql with one text parameter returns a row, 0 when not, or a
 * CP_E* code. */
static int exists1(struct pgc *c, const char *sql, const char *arg,
                   const char *what)
{
    struct pgp p = {0};
    pgp_s(&p, arg);
    PGresult *r = NULL;
    int rc = pgx_exec(c, sql, &p, what, &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) > 0 ? 1 : 0;
    PQclear(r);
    return rc;
}

struct grid_create_ctx {
    const struct store_grid *g;
    const char *creator_id;
    const char *clash;
};

/* Inserts the grid's row, its null stack, its default network and the
 * creator's membership. A concurrent create of the same name or token
 * waits on the unique index and then fails on it: the constraint's name
 * says which field clashed. */
static int grid_create_fn(struct pgc *c, void *ctx)
{
    struct grid_create_ctx *k = ctx;
    const struct store_grid *g = k->g;
    k->clash = NULL;
    int rc =
        exists1(c, "SELECT 1 FROM grids WHERE name=$1", g->name, "grid exists");
    if (rc == 1) {
        k->clash = "name";
        return CP_ECONFLICT;
    }
    if (rc == 0)
        rc = exists1(c, "SELECT 1 FROM grids WHERE token_hash=$1",
                     g->token_hash, "grid exists");
    if (rc == 1) {
        k->clash = "token";
        return CP_ECONFLICT;
    }
    if (rc != 0)
        return rc;
    int64_t now = g->created_at ? g->created_at : cp_now_ms();
    char *settings = pg_dump_or(g->settings, "{}");
    struct pgp p = {0};
    pgp_s(&p, g->id);
    pgp_s(&p, g->name);
    pgp_s(&p, g->token_hash);
    pgp_s(&p, g->token_sealed);
    pgp_i(&p, g->initial_size);
    pgp_s(&p, g->subnet);
    pgp_s(&p, g->supernet);
    pgp_s(&p, settings);
    pgp_i(&p, now);
    pgp_i(&p, g->updated_at ? g->updated_at : now);
    rc = pgx_run(c,
                 "INSERT INTO grids(id, name, token_hash, token_sealed, "
                 "initial_size, subnet, supernet, settings, created_at, "
                 "updated_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                 &p, "grid insert", NULL);
    cp_free(settings);
    if (rc == CP_ECONFLICT) {
        const char *k2 = pgx_conflict(c);
        k->clash = strcmp(k2, "grids_name_key") == 0         ? "name"
                   : strcmp(k2, "grids_token_hash_key") == 0 ? "token"
                                                             : "id";
        return rc;
    }
    if (rc != 0)
        return rc;

    char id[STORE_ID_LEN + 1];
    store_new_id(id);
    struct pgp s = {0};
    pgp_s(&s, id);
    pgp_s(&s, g->id);
    pgp_i(&s, now);
    rc = pgx_run(c,
                 "INSERT INTO stacks(id, grid_id, name, created_at, "
                 "updated_at) VALUES($1, $2, 'null', $3, $3)",
                 &s, "null stack insert", NULL);
    if (rc != 0)
        return rc;
    store_new_id(id);
    struct pgp n = {0};
    pgp_s(&n, id);
    pgp_s(&n, g->id);
    pgp_s(&n, g->subnet);
    rc = pgx_run(c,
                 "INSERT INTO networks(id, grid_id, name, subnet, multicast, "
                 "internal) VALUES($1, $2, 'kontena', $3, true, false)",
                 &n, "default network insert", NULL);
    if (rc != 0 || k->creator_id == NULL)
        return rc;
    struct pgp m = {0};
    pgp_s(&m, g->id);
    pgp_s(&m, k->creator_id);
    return pgx_run(c, "INSERT INTO grid_users(grid_id, user_id) VALUES($1, $2)",
                   &m, "grid member insert", NULL);
}

static int pg_grid_create(struct store *st, const struct store_grid *g,
                          const char *creator_id, const char **field)
{
    if (field != NULL)
        *field = NULL;
    if (g->id[0] == '\0' || g->name == NULL || g->token_hash == NULL)
        return CP_EINVAL;
    struct grid_create_ctx k = {g, creator_id, NULL};
    int rc = pg_tx(st, grid_create_fn, &k);
    if (rc == CP_ECONFLICT && field != NULL)
        *field = k.clash;
    return rc;
}

static int pg_grid_get(struct store *st, const char *name,
                       struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.name=$1", name, out);
}

static int pg_grid_get_by_id(struct store *st, const char *id,
                             struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.id=$1", id, out);
}

static int pg_grid_get_by_token_hash(struct store *st, const char *hash,
                                     struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.token_hash=$1", hash, out);
}

static int pg_grid_list(struct store *st, const char *member_of,
                        struct store_grid_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, member_of);
    void *items = NULL;
    int rc = pg_rows_all(
        st,
        GRID_SELECT "WHERE $1::text IS NULL OR g.id IN "
                    "(SELECT grid_id FROM grid_users "
                    "WHERE user_id=$1) ORDER BY g.name COLLATE \"C\"",
        &p, read_grid, sizeof(*out->items), &items, &out->len, "grid_list");
    out->items = items;
    if (rc != 0)
        store_grid_list_release(out);
    return rc;
}

static int pg_grid_update(struct store *st, const struct store_grid *g)
{
    char *settings = pg_dump_or(g->settings, "{}");
    struct pgp p = {0};
    pgp_s(&p, settings);
    pgp_i(&p, g->updated_at ? g->updated_at : cp_now_ms());
    pgp_s(&p, g->id);
    int rc = pg_write_row(st,
                          "UPDATE grids SET settings=$1, updated_at=$2 "
                          "WHERE id=$3",
                          &p, CP_ENOTFOUND, "grid_update");
    cp_free(settings);
    return rc;
}

/* Locks the grid row first: a node_create in the grid (which locks it
 * too) cannot slip in between the emptiness check and the delete. */
static int grid_delete_fn(struct pgc *c, void *ctx)
{
    const char *id = ctx;
    int rc = exists1(c, "SELECT 1 FROM grids WHERE id=$1 FOR UPDATE", id,
                     "grid lock");
    if (rc == 0)
        return CP_ENOTFOUND;
    if (rc < 0)
        return rc;
    rc = exists1(c,
                 "SELECT 1 FROM host_nodes WHERE grid_id=$1 UNION ALL "
                 "SELECT 1 FROM grid_services WHERE grid_id=$1 LIMIT 1",
                 id, "grid in use");
    if (rc == 1)
        return CP_ECONFLICT;
    if (rc < 0)
        return rc;
    struct pgp p = {0};
    pgp_s(&p, id);
    return pgx_run(c, "DELETE FROM grids WHERE id=$1", &p, "grid_delete", NULL);
}

static int pg_grid_delete(struct store *st, const char *id)
{
    return pg_tx(st, grid_delete_fn, (void *)(uintptr_t)id);
}

/* Adding an existing member is a no-op; a missing grid or user is
 * CP_ENOTFOUND (foreign key). */
static int pg_grid_user_add(struct store *st, const char *grid_id,
                            const char *user_id)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, user_id);
    return pg_write(st,
                    "INSERT INTO grid_users(grid_id, user_id) VALUES($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    &p, NULL, "grid_user_add");
}

static int pg_grid_user_remove(struct store *st, const char *grid_id,
                               const char *user_id)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, user_id);
    return pg_write_row(st,
                        "DELETE FROM grid_users WHERE grid_id=$1 AND "
                        "user_id=$2",
                        &p, CP_ENOTFOUND, "grid_user_remove");
}

static int pg_grid_users(struct store *st, const char *grid_id,
                         struct store_user_list *out)
{
    return user_list_q(st,
                       "SELECT " USER_COLS " FROM users u "
                       "JOIN grid_users m ON m.user_id=u.id "
                       "WHERE m.grid_id=$1 ORDER BY u.email COLLATE \"C\"",
                       grid_id, out);
}

static void read_true(const PGresult *r, int i, void *item)
{
    CP_UNUSED(r);
    CP_UNUSED(i);
    *(bool *)item = true;
}

static int pg_grid_is_member(struct store *st, const char *grid_id,
                             const char *user_id, bool *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, user_id);
    *out = false;
    int rc = pg_row_one(st,
                        "SELECT 1 FROM grid_users WHERE grid_id=$1 AND "
                        "user_id=$2",
                        &p, read_true, out, "grid_is_member");
    return rc == CP_ENOTFOUND ? 0 : rc;
}

/* ==== HA primitives ==== */

struct kv_row {
    char **value;
    int64_t *version;
};

static void read_kv(const PGresult *r, int i, void *item)
{
    struct kv_row *k = item;
    if (k->value != NULL)
        *k->value = pgr_str(r, i, 0);
    if (k->version != NULL)
        *k->version = pgr_i64(r, i, 1);
}

static int pg_kv_get(struct store *st, const char *key, char **value,
                     int64_t *version)
{
    if (value != NULL)
        *value = NULL;
    struct pgp p = {0};
    pgp_s(&p, key);
    struct kv_row k = {value, version};
    return pg_row_one(st, "SELECT value, version FROM kv WHERE key=$1", &p,
                      read_kv, &k, "kv_get");
}

/* One statement either way; the UPDATE re-checks the version after
 * waiting for a concurrent writer's row lock, so exactly one of two
 * racing writers with the same expectation wins. */
static int pg_kv_cas(struct store *st, const char *key, int64_t expect,
                     const char *value, int64_t *new_version)
{
    struct pgp p = {0};
    pgp_s(&p, key);
    pgp_s(&p, value);
    int64_t v = 0;
    int rc;
    if (expect == 0) {
        rc = pg_row_one(st,
                        "INSERT INTO kv(key, value, version) "
                        "VALUES($1, $2, 1) ON CONFLICT(key) DO NOTHING "
                        "RETURNING version",
                        &p, read_int, &v, "kv_cas");
    } else {
        pgp_i(&p, expect);
        rc = pg_row_one(st,
                        "UPDATE kv SET value=$2, version=version+1 "
                        "WHERE key=$1 AND version=$3 RETURNING version",
                        &p, read_int, &v, "kv_cas");
    }
    if (rc == CP_ENOTFOUND)
        rc = CP_ECONFLICT;
    if (rc == 0 && new_version != NULL)
        *new_version = v;
    return rc;
}

struct lease_ctx {
    const char *name, *holder;
    int64_t now, ttl_ms;
    bool acquired;
    char *holder_out;
    int64_t expires;
};

struct lease_row {
    char *holder;
    int64_t expires;
};

static void read_lease(const PGresult *r, int i, void *item)
{
    struct lease_row *l = item;
    l->holder = pgr_str(r, i, 0);
    l->expires = pgr_i64(r, i, 1);
}

/* The upsert locks the row even when its WHERE is false, so the read
 * that follows (a new snapshot at READ COMMITTED) sees the holder that
 * beat us, and it cannot change before we commit. */
static int lease_fn(struct pgc *c, void *ctx)
{
    struct lease_ctx *k = ctx;
    cp_free(k->holder_out);
    k->holder_out = NULL;
    struct pgp p = {0};
    pgp_s(&p, k->name);
    pgp_s(&p, k->holder);
    pgp_i(&p, k->now + k->ttl_ms);
    pgp_i(&p, k->now);
    int changes = 0;
    int rc = pgx_run(c,
                     "INSERT INTO leases(name, holder, expires_at) "
                     "VALUES($1, $2, $3) ON CONFLICT(name) DO UPDATE "
                     "SET holder=excluded.holder, "
                     "expires_at=excluded.expires_at "
                     "WHERE leases.holder=excluded.holder OR "
                     "leases.expires_at<=$4::bigint",
                     &p, "lease_acquire", &changes);
    if (rc != 0)
        return rc;
    k->acquired = changes > 0;
    struct pgp q = {0};
    pgp_s(&q, k->name);
    struct lease_row l = {0};
    rc = pgx_row_in(c, "SELECT holder, expires_at FROM leases WHERE name=$1",
                    &q, read_lease, &l, "lease read");
    if (rc == CP_ENOTFOUND)
        rc = CP_EIO; /* we just wrote or locked it: cannot be missing */
    k->holder_out = l.holder;
    k->expires = l.expires;
    return rc;
}

static int pg_lease_acquire(struct store *st, const char *name,
                            const char *holder, int64_t now, int64_t ttl_ms,
                            char **holder_out, int64_t *expires_out)
{
    if (holder_out != NULL)
        *holder_out = NULL;
    struct lease_ctx k = {name, holder, now, ttl_ms, false, NULL, 0};
    int rc = pg_tx(st, lease_fn, &k);
    if (rc != 0) {
        cp_free(k.holder_out);
        return rc;
    }
    if (holder_out != NULL)
        *holder_out = k.holder_out;
    else
        cp_free(k.holder_out);
    if (expires_out != NULL)
        *expires_out = k.expires;
    return k.acquired ? 0 : CP_EAGAIN;
}

static int pg_lease_release(struct store *st, const char *name,
                            const char *holder)
{
    struct pgp p = {0};
    pgp_s(&p, name);
    pgp_s(&p, holder);
    return pg_write(st, "DELETE FROM leases WHERE name=$1 AND holder=$2", &p,
                    NULL, "lease_release");
}

/* ==== Ops table ==== */

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .ping = pg_ping,
    .schema_version = pg_schema_version,
    .config_get = pg_config_get,
    .config_set = pg_config_set,
    .config_set_if_absent = pg_config_set_if_absent,
    .user_create = pg_user_create,
    .user_get = pg_user_get,
    .user_get_by_email = pg_user_get_by_email,
    .user_list = pg_user_list,
    .user_set_roles = pg_user_set_roles,
    .token_create = pg_token_create,
    .token_get = pg_token_get,
    .token_find = pg_token_find,
    .code_take = pg_code_take,
    .refresh_take = pg_refresh_take,
    .token_list_by_user = pg_token_list_by_user,
    .token_delete = pg_token_delete,
    .token_touch = pg_token_touch,
    .token_confirm = pg_token_confirm,
    .bootstrap_codes_delete = pg_bootstrap_codes_delete,
    .tokens_expire = pg_tokens_expire,
    .grid_create = pg_grid_create,
    .grid_get = pg_grid_get,
    .grid_get_by_token_hash = pg_grid_get_by_token_hash,
    .grid_get_by_id = pg_grid_get_by_id,
    .grid_list = pg_grid_list,
    .grid_update = pg_grid_update,
    .grid_delete = pg_grid_delete,
    .grid_user_add = pg_grid_user_add,
    .grid_user_remove = pg_grid_user_remove,
    .grid_users = pg_grid_users,
    .grid_is_member = pg_grid_is_member,
    .node_get = pgn_node_get,
    .node_find = pgn_node_find,
    .node_get_by_node_id = pgn_node_get_by_node_id,
    .node_get_by_token_hash = pgn_node_get_by_token_hash,
    .node_list = pgn_node_list,
    .node_create = pgn_node_create,
    .node_bind = pgn_node_bind,
    .node_update = pgn_node_update,
    .node_set_token = pgn_node_set_token,
    .node_delete = pgn_node_delete,
    .node_plug = pgn_node_plug,
    .node_unplug = pgn_node_unplug,
    .node_set_info = pgn_node_set_info,
    .node_add_stats = pgn_node_add_stats,
    .nodes_add_stats = pgn_nodes_add_stats,
    .nodes_seen = pgn_nodes_seen,
    .nodes_sweep = pgn_nodes_sweep,
    .service_create = pgv_service_create,
    .service_get = pgv_service_get,
    .service_get_by_id = pgv_service_get_by_id,
    .service_list = pgv_service_list,
    .service_update = pgv_service_update,
    .service_delete = pgv_service_delete,
    .instance_list = pgv_instance_list,
    .instances_on_node = pgv_instances_on_node,
    .node_pod_rows = pgv_node_pod_rows,
    .instance_put = pgv_instance_put,
    .instance_put_many = pgv_instance_put_many,
    .instance_trim = pgv_instance_trim,
    .instance_report = pgv_instance_report,
    .instances_report_many = pgv_instances_report_many,
    .instances_detach_node = pgv_instances_detach_node,
    .deploy_queue = pgd_deploy_queue,
    .deploy_get = pgd_deploy_get,
    .deploy_claim = pgd_deploy_claim,
    .deploy_update = pgd_deploy_update,
    .deploy_list = pgd_deploy_list,
    .deploys_prune = pgd_deploys_prune,
    .container_save = pgd_container_save,
    .container_delete = pgd_container_delete,
    .containers_cleanup = pgd_containers_cleanup,
    .containers_mark_deleted = pgd_containers_mark_deleted,
    .container_list = pgd_container_list,
    .container_get = pgd_container_get,
    .logs_append = pgd_logs_append,
    .logs_read = pgd_logs_read,
    .events_append = pgd_events_append,
    .events_read = pgd_events_read,
    .history_trim = pgd_history_trim,
    .secret_create = pgk_secret_create,
    .secret_get = pgk_secret_get,
    .secret_list = pgk_secret_list,
    .secret_update = pgk_secret_update,
    .secret_delete = pgk_secret_delete,
    .secret_reseal = pgk_secret_reseal,
    .grid_token_reseal = pgk_grid_token_reseal,
    .node_token_reseal = pgk_node_token_reseal,
    .secrets_page = pgk_secrets_page,
    .registry_create = pga_registry_create,
    .registry_list = pga_registry_list,
    .registry_get = pga_registry_get,
    .registry_delete = pga_registry_delete,
    .registry_reseal = pgk_registry_reseal,
    .audit_append = pga_audit_append,
    .audit_list = pga_audit_list,
    .audit_trim = pga_audit_trim,
    .stack_create = pgk_stack_create,
    .stack_get = pgk_stack_get,
    .stack_get_by_id = pgk_stack_get_by_id,
    .stack_list = pgk_stack_list,
    .stack_revision_get = pgk_stack_revision_get,
    .stack_revise = pgk_stack_revise,
    .stack_update = pgk_stack_update,
    .stack_delete = pgk_stack_delete,
    .stack_deploy_queue = pgk_stack_deploy_queue,
    .stack_deploy_get = pgk_stack_deploy_get,
    .stack_deploy_claim = pgk_stack_deploy_claim,
    .stack_deploy_update = pgk_stack_deploy_update,
    .stack_deploy_list = pgk_stack_deploy_list,
    .stack_deploy_services = pgk_stack_deploy_services,
    .stack_deploys_prune = pgk_stack_deploys_prune,
    .kv_get = pg_kv_get,
    .kv_cas = pg_kv_cas,
    .lease_acquire = pg_lease_acquire,
    .lease_release = pg_lease_release,
    .feed_publish = pgf_publish,
    .feed_subscribe = pgf_subscribe,
    .feed_unsubscribe = pgf_unsubscribe,
};
