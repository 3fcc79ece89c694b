/* The SQLite backend of the store: one database file, <dir>/kontena.db,
 * in WAL mode with synchronous=FULL so that an acknowledged write survives
 * a crash.
 *
 * DESIGN
 * - Connections: a mutex-protected pool. An operation takes a connection
 *   (opening a new one when the pool is empty), uses it alone, and puts it
 *   back, so the pool grows to the number of threads that ever ran store
 *   operations at once. Each connection caches its prepared statements,
 *   keyed by the address of the (static) SQL text.
 * - Atomicity: single statements are atomic by themselves; operations
 *   that read and then write, or write several rows, run inside
 *   BEGIN IMMEDIATE ... COMMIT and roll back on any error. Taking the
 *   write lock up front avoids the deferred-upgrade SQLITE_BUSY that the
 *   busy handler cannot retry.
 * - Migrations: a static array of {version, sql}; each missing one is
 *   applied in its own IMMEDIATE transaction that re-checks
 *   schema_migrations first, so concurrent openers migrate exactly once.
 * - Change feed: in-process only (one master per SQLite file). Callbacks
 *   run synchronously on the publishing thread.
 *
 * Errors: SQLite failures are logged once here with sqlite3_errmsg and
 * returned as CP_EIO; unique/primary-key violations become CP_ECONFLICT
 * and foreign-key violations CP_ENOTFOUND (the referenced row is missing).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct sq_store *sq(struct store *st)
{
    return (struct sq_store *)st;
}

/* ==== Schema ==== */

struct migration {
    int version;
    const char *sql;
};

static const struct migration migrations[] = {
    {1,
     "CREATE TABLE config(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
     "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
     " version INTEGER NOT NULL);"
     "CREATE TABLE leases(name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
     " expires_at INTEGER NOT NULL);"
     "CREATE TABLE users(id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
     " name TEXT, roles INTEGER NOT NULL DEFAULT 0,"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
     "CREATE TABLE access_tokens(id TEXT PRIMARY KEY,"
     " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     " kind INTEGER NOT NULL, token_hash TEXT NOT NULL, refresh_hash TEXT,"
     " token_last4 TEXT NOT NULL DEFAULT '',"
     " refresh_last4 TEXT NOT NULL DEFAULT '',"
     " scopes TEXT NOT NULL DEFAULT '', description TEXT,"
     " internal INTEGER NOT NULL DEFAULT 0,"
     " is_bootstrap INTEGER NOT NULL DEFAULT 0,"
     " parent_code_id TEXT NOT NULL DEFAULT '',"
     " expires_at INTEGER NOT NULL DEFAULT 0,"
     " created_at INTEGER NOT NULL,"
     " last_used_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX access_tokens_token_hash ON access_tokens(token_hash);"
     "CREATE INDEX access_tokens_refresh_hash ON access_tokens(refresh_hash);"
     "CREATE INDEX access_tokens_user_id ON access_tokens(user_id);"
     "CREATE TABLE grids(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
     " token_hash TEXT NOT NULL UNIQUE, token_sealed TEXT,"
     " initial_size INTEGER NOT NULL, subnet TEXT, supernet TEXT,"
     " settings TEXT NOT NULL DEFAULT '{}',"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
     "CREATE TABLE grid_users("
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     " PRIMARY KEY(grid_id, user_id));"
     "CREATE INDEX grid_users_user_id ON grid_users(user_id);"
     "CREATE TABLE stacks(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL, UNIQUE(grid_id, name));"
     "CREATE TABLE networks(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, subnet TEXT, multicast INTEGER NOT NULL DEFAULT 0,"
     " internal INTEGER NOT NULL DEFAULT 0, UNIQUE(grid_id, name));"
     "CREATE TABLE host_nodes(id TEXT PRIMARY KEY,"
     " grid_id TEXT REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT, created_at INTEGER NOT NULL);"
     "CREATE INDEX host_nodes_grid_id ON host_nodes(grid_id);"
     "CREATE TABLE grid_services(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT REFERENCES stacks(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, created_at INTEGER NOT NULL);"
     "CREATE INDEX grid_services_grid_id ON grid_services(grid_id);"
     "CREATE INDEX grid_services_stack_id ON grid_services(stack_id);"},
    {2,
     /* Nodes proper (issue 3). Nothing wrote the placeholder table. */
     "DROP TABLE host_nodes;"
     "CREATE TABLE host_nodes(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT UNIQUE, name TEXT NOT NULL,"
     " node_number INTEGER NOT NULL,"
     " token_hash TEXT UNIQUE, token_sealed TEXT,"
     " labels TEXT NOT NULL DEFAULT '[]', info TEXT NOT NULL DEFAULT '{}',"
     " stats TEXT, availability TEXT NOT NULL DEFAULT 'active',"
     " agent_version TEXT, connected INTEGER NOT NULL DEFAULT 0,"
     " updated INTEGER NOT NULL DEFAULT 0,"
     " conn_gen INTEGER NOT NULL DEFAULT 0, conn_master TEXT,"
     " connected_at INTEGER NOT NULL DEFAULT 0,"
     " disconnected_at INTEGER NOT NULL DEFAULT 0,"
     " last_seen_at INTEGER NOT NULL DEFAULT 0,"
     " close_code INTEGER NOT NULL DEFAULT 0, close_reason TEXT,"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " UNIQUE(grid_id, name), UNIQUE(grid_id, node_number));"
     "CREATE INDEX host_nodes_grid_id ON host_nodes(grid_id);"
     "CREATE TABLE host_node_stats(id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " node_id TEXT NOT NULL REFERENCES host_nodes(id) ON DELETE CASCADE,"
     " stats TEXT NOT NULL, created_at INTEGER NOT NULL);"
     "CREATE INDEX host_node_stats_node ON host_node_stats(node_id, id);"},
    {3,
     /* Services, instances, deploys, containers, logs, events (issue 4).
      * Nothing wrote the placeholder grid_services. Optional ids are NULL,
      * never "". Instance and container node_id have no foreign key, so
      * a removed node can leave them detached. */
     "DROP TABLE grid_services;"
     "CREATE TABLE grid_services(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, spec TEXT NOT NULL DEFAULT '{}',"
     " revision INTEGER NOT NULL DEFAULT 1,"
     " stack_revision INTEGER NOT NULL DEFAULT 0,"
     " state TEXT NOT NULL DEFAULT 'initialized',"
     " deployed_at INTEGER NOT NULL DEFAULT 0,"
     " deploy_requested_at INTEGER NOT NULL DEFAULT 0,"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " UNIQUE(stack_id, name));"
     "CREATE INDEX grid_services_grid_id ON grid_services(grid_id);"
     "CREATE TABLE grid_service_instances(id TEXT PRIMARY KEY,"
     " service_id TEXT NOT NULL"
     " REFERENCES grid_services(id) ON DELETE CASCADE,"
     " instance_number INTEGER NOT NULL, node_id TEXT,"
     " desired_state TEXT NOT NULL DEFAULT 'running',"
     " deploy_rev TEXT, rev TEXT, state TEXT, error TEXT,"
     " updated_at INTEGER NOT NULL DEFAULT 0,"
     " UNIQUE(service_id, instance_number));"
     "CREATE INDEX grid_service_instances_node"
     " ON grid_service_instances(node_id);"
     "CREATE TABLE grid_service_deploys(id TEXT PRIMARY KEY,"
     " service_id TEXT NOT NULL"
     " REFERENCES grid_services(id) ON DELETE CASCADE,"
     " stack_deploy_id TEXT, state TEXT NOT NULL DEFAULT 'created',"
     " reason TEXT, force INTEGER NOT NULL DEFAULT 0,"
     " instance_deploys TEXT NOT NULL DEFAULT '[]',"
     " claimed_by TEXT, lease_until INTEGER NOT NULL DEFAULT 0,"
     " created_at INTEGER NOT NULL, queued_at INTEGER NOT NULL DEFAULT 0,"
     " started_at INTEGER NOT NULL DEFAULT 0,"
     " finished_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX grid_service_deploys_service"
     " ON grid_service_deploys(service_id, created_at);"
     "CREATE INDEX grid_service_deploys_state"
     " ON grid_service_deploys(state, created_at);"
     "CREATE TABLE containers(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT, service_id TEXT, container_id TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL, instance_number INTEGER NOT NULL DEFAULT 0,"
     " status TEXT, info TEXT NOT NULL DEFAULT '{}',"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " deleted_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX containers_grid_name ON containers(grid_id, name);"
     "CREATE INDEX containers_node ON containers(node_id);"
     "CREATE INDEX containers_service ON containers(service_id);"
     "CREATE TABLE container_logs(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT, service_id TEXT, container_id TEXT, name TEXT,"
     " type TEXT, data TEXT, created_at INTEGER NOT NULL);"
     "CREATE INDEX container_logs_grid ON container_logs(grid_id, seq);"
     "CREATE INDEX container_logs_service ON container_logs(service_id, seq);"
     "CREATE INDEX container_logs_name ON container_logs(name, seq);"
     "CREATE TABLE event_logs(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT, service_id TEXT, node_id TEXT,"
     " severity INTEGER NOT NULL DEFAULT 1, type TEXT, message TEXT,"
     " meta TEXT, created_at INTEGER NOT NULL);"
     "CREATE INDEX event_logs_grid ON event_logs(grid_id, seq);"
     "CREATE INDEX event_logs_stack ON event_logs(stack_id, seq);"
     "CREATE INDEX event_logs_service ON event_logs(service_id, seq);"},
    {4,
     /* The revision the last deploy rolled out: the reconciler compares it
      * with the service's revision (start, stop and scale change the row
      * but not the revision, and must not look like a change). */
     "ALTER TABLE grid_services ADD COLUMN deployed_revision INTEGER "
     "NOT NULL DEFAULT 0;"},
    {5,
     /* The vault (spec 7): values are sealed text, never plaintext. */
     "CREATE TABLE grid_secrets(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, value TEXT NOT NULL,"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " UNIQUE(grid_id, name));"},
    {6,
     /* Stacks on the master (spec 5.5): labels, parent, the newest
      * revision and the removing flag on the stack; immutable revisions;
      * stack jobs (deploys and removals) claimed with a lease like
      * service deploys. The revision content is not copied onto the
      * stack row: reads join the newest revision. */
     "ALTER TABLE stacks ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';"
     "ALTER TABLE stacks ADD COLUMN parent_name TEXT;"
     "ALTER TABLE stacks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE stacks ADD COLUMN removing INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX stacks_parent ON stacks(grid_id, parent_name);"
     "CREATE TABLE stack_revisions(id TEXT PRIMARY KEY,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " revision INTEGER NOT NULL, stack TEXT, version TEXT, registry TEXT,"
     " source TEXT, expose TEXT, variables TEXT NOT NULL DEFAULT '{}',"
     " services TEXT NOT NULL DEFAULT '[]',"
     " volumes TEXT NOT NULL DEFAULT '[]',"
     " metadata TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL,"
     " UNIQUE(stack_id, revision));"
     "CREATE TABLE stack_deploys(id TEXT PRIMARY KEY,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " action TEXT NOT NULL DEFAULT 'deploy',"
     " revision INTEGER NOT NULL DEFAULT 0,"
     " state TEXT NOT NULL DEFAULT 'created', reason TEXT,"
     " service_deploys TEXT NOT NULL DEFAULT '[]',"
     " claimed_by TEXT, lease_until INTEGER NOT NULL DEFAULT 0,"
     " created_at INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0,"
     " finished_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX stack_deploys_stack ON stack_deploys(stack_id, created_at);"
     "CREATE INDEX stack_deploys_state ON stack_deploys(state, created_at);"
     "CREATE INDEX grid_service_deploys_stack_deploy"
     " ON grid_service_deploys(stack_deploy_id);"},
    {7,
     /* External registries (password sealed by the master) and the audit
      * log. Audit rows keep the grid's id and name without a foreign key:
      * they outlive the grid they tell about. */
     "CREATE TABLE registries(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, url TEXT NOT NULL, username TEXT NOT NULL,"
     " password_sealed TEXT NOT NULL, email TEXT,"
     " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " UNIQUE(grid_id, name));"
     "CREATE TABLE audit_logs(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " grid_id TEXT, grid_name TEXT, user_id TEXT, user_email TEXT,"
     " resource_type TEXT, resource_id TEXT, resource_name TEXT,"
     " service_id TEXT, event_name TEXT, event_status TEXT,"
     " status INTEGER NOT NULL DEFAULT 0, method TEXT, path TEXT,"
     " source_ip TEXT, user_agent TEXT, request_body TEXT,"
     " created_at INTEGER NOT NULL);"
     "CREATE INDEX audit_logs_grid ON audit_logs(grid_id, seq);"},
};

/* ==== Errors, statements, transactions ==== */

/* Maps the connection's last error to a CP_E* code, logging real
 * failures once. */
int sqlx_fail(struct conn *c, const char *what)
{
    int ext = sqlite3_extended_errcode(c->db);
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return CP_ECONFLICT;
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        return CP_ENOTFOUND;
    cp_error("store: %s: %s", what, sqlite3_errmsg(c->db));
    return CP_EIO;
}

/* Returns the connection's cached statement for sql, preparing it on
 * first use; NULL (logged) on failure. */
sqlite3_stmt *sqlx_prep(struct conn *c, const char *sql)
{
    for (size_t i = 0; i < c->ncache; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].stmt;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q,
                           NULL) != SQLITE_OK) {
        cp_error("store: prepare '%.60s': %s", sql, sqlite3_errmsg(c->db));
        return NULL;
    }
    if (c->ncache == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->cache = cp_realloc(c->cache, c->cap * sizeof(*c->cache));
    }
    c->cache[c->ncache].sql = sql;
    c->cache[c->ncache].stmt = q;
    c->ncache++;
    return q;
}

/* Makes a cached statement ready for its next use. NULL is fine. */
void sqlx_done(sqlite3_stmt *q)
{
    if (q == NULL)
        return;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
}

/* Steps q: 1 for a row, 0 when done, or a CP_E* code. */
int sqlx_step(struct conn *c, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sqlx_fail(c, what);
}

/* Steps a statement that returns no rows, then resets it. */
int sqlx_run(struct conn *c, sqlite3_stmt *q, const char *what)
{
    int rc = sqlx_step(c, q, what);
    sqlx_done(q);
    return rc > 0 ? 0 : rc;
}

void sqlx_bind_str(sqlite3_stmt *q, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
}

char *sqlx_col_str(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t != NULL ? cp_strdup((const char *)t) : NULL;
}

/* Copies column i into a fixed buffer, truncating. */
void sqlx_col_fixed(sqlite3_stmt *q, int i, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    size_t n = t != NULL ? (size_t)sqlite3_column_bytes(q, i) : 0;
    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(out, t, n);
    out[n] = '\0';
}

int sqlx_exec(struct conn *c, const char *sql, const char *what)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqlx_fail(c, what);
    return 0;
}

int sqlx_tx_begin(struct conn *c)
{
    return sqlx_exec(c, "BEGIN IMMEDIATE", "begin");
}

int sqlx_tx_commit(struct conn *c)
{
    return sqlx_exec(c, "COMMIT", "commit");
}

void sqlx_tx_rollback(struct conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ==== Row readers ==== */

/* Column i parsed as JSON, or dflt (returned as is) when NULL or not
 * JSON; dflt is released when the column parses. */
json_t *sqlx_col_json(sqlite3_stmt *q, int i, json_t *dflt)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    json_t *j = t ? json_loads((const char *)t, 0, NULL) : NULL;
    if (j == NULL)
        return dflt;
    json_decref(dflt);
    return j;
}

/* j dumped as JSON text, or a copy of dflt when j is NULL (caller frees). */
char *sqlx_dump_or(const json_t *j, const char *dflt)
{
    return j != NULL ? cp_json_dump(j) : cp_strdup(dflt);
}

/* Steps q to the end, reading every row into a growing array of items of
 * size bytes. On error the items read so far are still returned, for the
 * caller's *_list_release(). */
int sqlx_collect(struct conn *c, sqlite3_stmt *q, const char *what,
                   sqlx_row_fn *rd, size_t size, void **items, size_t *len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlx_step(c, q, what)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            buf = cp_realloc(buf, cap * size);
        }
        rd(q, buf + n * size);
        n++;
    }
    *items = buf;
    *len = n;
    return rc;
}

/* Runs sql with n string arguments on c and reads its first row into out:
 * 0, CP_ENOTFOUND or CP_EIO. */
int sqlx_row_in(struct conn *c, const char *sql, const char *const *args,
                  int n, sqlx_row_fn *rd, void *out, const char *what)
{
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        return CP_EIO;
    for (int i = 0; i < n; i++)
        sqlx_bind_str(q, i + 1, args[i]);
    int rc = sqlx_step(c, q, what);
    if (rc == 1) {
        rd(q, out);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_ENOTFOUND;
    }
    sqlx_done(q);
    return rc;
}

/* row_in on a pooled connection. */
int sqlx_row_one(struct store *st, const char *sql, const char *const *args,
                   int n, sqlx_row_fn *rd, void *out, const char *what)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_row_in(c, sql, args, n, rd, out, what);
    sqlx_conn_put(s, c);
    return rc;
}

/* Runs sql with n string arguments on a pooled connection and collects
 * every row. */
int sqlx_rows_all(struct store *st, const char *sql, const char *const *args,
                    int n, sqlx_row_fn *rd, size_t size, void **items,
                    size_t *len, const char *what)
{
    struct sq_store *s = sq(st);
    *items = NULL;
    *len = 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        goto out;
    for (int i = 0; i < n; i++)
        sqlx_bind_str(q, i + 1, args[i]);
    rc = sqlx_collect(c, q, what, rd, size, items, len);
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}


/* ==== Connections ==== */

static void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].stmt);
    cp_free(c->cache);
    sqlite3_close(c->db);
    cp_free(c);
}

/* Opens and configures a connection; NULL (logged) on failure. */
static struct conn *conn_open(const char *path)
{
    struct conn *c = cp_calloc(1, sizeof(*c));
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        cp_error("store: open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(c->db, 1);
    /* Switching to WAL needs a moment of exclusive access; another
     * process opening the file at the same time may hold it briefly. */
    for (int tries = 0;; tries++) {
        if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) ==
            SQLITE_OK)
            break;
        if ((sqlite3_errcode(c->db) & 0xff) != SQLITE_BUSY || tries >= 100) {
            sqlx_fail(c, "journal_mode=WAL");
            goto fail;
        }
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    if (sqlx_exec(c, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", "pragmas") !=
        0)
        goto fail;
    return c;
fail:
    conn_free(c);
    return NULL;
}

/* Takes a connection for the calling thread's exclusive use. */
struct conn *sqlx_conn_get(struct sq_store *s)
{
    pthread_mutex_lock(&s->pool_mu);
    struct conn *c = s->pool;
    if (c != NULL)
        s->pool = c->next;
    pthread_mutex_unlock(&s->pool_mu);
    if (c == NULL)
        c = conn_open(s->db_path);
    return c;
}

/* Returns c to the pool. A connection left inside a transaction (which
 * our code never does) is rolled back first. */
void sqlx_conn_put(struct sq_store *s, struct conn *c)
{
    sqlx_tx_rollback(c);
    pthread_mutex_lock(&s->pool_mu);
    c->next = s->pool;
    s->pool = c;
    pthread_mutex_unlock(&s->pool_mu);
}

/* Opens one pooled connection for an operation, or returns CP_EIO. */

/* ==== Open, close, migrate ==== */

/* mkdir -p path with mode 0700 for the directories it creates. */
static int mkdir_p(const char *path)
{
    char *p = cp_strdup(path);
    int rc = 0;
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char saved = *q;
        *q = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *q = saved;
        if (saved == '\0')
            break;
    }
    cp_free(p);
    return rc;
}

static int migrate_one(struct conn *c, const struct migration *m)
{
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        return rc;
    rc = sqlx_exec(c,
              "CREATE TABLE IF NOT EXISTS schema_migrations("
              "version INTEGER PRIMARY KEY, applied_at INTEGER)",
              "create schema_migrations");
    if (rc != 0)
        goto fail;
    sqlite3_stmt *q =
        sqlx_prep(c, "SELECT 1 FROM schema_migrations WHERE version=?");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int(q, 1, m->version);
    rc = sqlx_step(c, q, "read schema_migrations");
    sqlx_done(q);
    if (rc < 0)
        goto fail;
    if (rc == 1) { /* someone else applied it */
        sqlx_tx_rollback(c);
        return 0;
    }
    rc = sqlx_exec(c, m->sql, "migration");
    if (rc != 0)
        goto fail;
    q = sqlx_prep(c, "INSERT INTO schema_migrations(version, applied_at) "
                "VALUES(?, ?)");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int(q, 1, m->version);
    sqlite3_bind_int64(q, 2, cp_now_ms());
    rc = sqlx_run(c, q, "record migration");
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    cp_info("store: applied schema migration %d", m->version);
    return 0;
fail:
    sqlx_tx_rollback(c);
    return rc;
}

static void sq_close(struct store *st);

static int sq_open(const char *path, struct store **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "sqlite store: empty data directory");
        return CP_EINVAL;
    }
    int rc = mkdir_p(path);
    if (rc != 0) {
        snprintf(err, errlen, "sqlite store: cannot create %s: %s", path,
                 strerror(-rc));
        return CP_EIO;
    }
    struct sq_store *s = cp_calloc(1, sizeof(*s));
    s->base.ops = &store_sqlite_ops;
    s->db_path = cp_asprintf("%s/kontena.db", path);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->feed_mu, NULL);
    s->next_sub_id = 1;

    struct conn *c = conn_open(s->db_path);
    if (c == NULL) {
        snprintf(err, errlen, "sqlite store: cannot open %s", s->db_path);
        rc = CP_EIO;
        goto fail;
    }
    for (size_t i = 0; i < CP_ARRAY_LEN(migrations); i++) {
        rc = migrate_one(c, &migrations[i]);
        if (rc != 0) {
            conn_free(c);
            snprintf(err, errlen,
                     "sqlite store: schema migration %d failed on %s",
                     migrations[i].version, s->db_path);
            goto fail;
        }
    }
    sqlx_conn_put(s, c);
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}

static void sq_close(struct store *st)
{
    struct sq_store *s = sq(st);
    struct conn *c = s->pool;
    while (c != NULL) {
        struct conn *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->feed_mu);
    cp_free(s->db_path);
    cp_free(s);
}

/* ==== Generic single-statement helpers ==== */

/* Runs a write whose parameters are the n strings of args; *changes (may
 * be NULL) gets the number of rows it changed. */
int sqlx_write_args(struct store *st, const char *sql,
                      const char *const *args, int n, int *changes)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        goto out;
    for (int i = 0; i < n; i++)
        sqlx_bind_str(q, i + 1, args[i]);
    rc = sqlx_run(c, q, "write");
    if (rc == 0 && changes != NULL)
        *changes = sqlite3_changes(c->db);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqlx_write_row(struct store *st, const char *sql, const char *const *args,
                   int n, int none)
{
    int changes = 0;
    int rc = sqlx_write_args(st, sql, args, n, &changes);
    return rc == 0 && changes == 0 ? none : rc;
}

static int sq_ping(struct store *st)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT 1");
    if (q == NULL)
        goto out;
    rc = sqlx_step(c, q, "ping");
    rc = rc == 1 ? 0 : (rc == 0 ? CP_EIO : rc);
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_schema_version(struct store *st, int *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q =
        sqlx_prep(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (q == NULL)
        goto out;
    rc = sqlx_step(c, q, "schema_version");
    if (rc == 1) {
        *out = sqlite3_column_int(q, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_EIO;
    }
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* ==== Config ==== */

static int sq_config_get(struct store *st, const char *key, char **out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    *out = NULL;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT value FROM config WHERE key=?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, key);
    rc = sqlx_step(c, q, "config_get");
    if (rc == 1) {
        *out = sqlx_col_str(q, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_ENOTFOUND;
    }
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_config_set(struct store *st, const char *key, const char *value)
{
    return sqlx_write_args(st,
                      "INSERT INTO config(key, value) VALUES(?1, ?2) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                      ARGS(key, value), NULL);
}

static int sq_config_set_if_absent(struct store *st, const char *key,
                                   const char *value, bool *written)
{
    int changes = 0;
    int rc = sqlx_write_args(st,
                        "INSERT INTO config(key, value) VALUES(?1, ?2) "
                        "ON CONFLICT(key) DO NOTHING",
                        ARGS(key, value), &changes);
    if (written != NULL)
        *written = rc == 0 && changes > 0;
    return rc;
}

/* ==== Users ==== */

#define USER_COLS "u.id, u.email, u.name, u.roles, u.created_at, u.updated_at"

static void read_user(sqlite3_stmt *q, void *item)
{
    struct store_user *u = item;
    memset(u, 0, sizeof(*u));
    sqlx_col_fixed(q, 0, u->id, sizeof(u->id));
    u->email = sqlx_col_str(q, 1);
    u->name = sqlx_col_str(q, 2);
    u->roles = (unsigned)sqlite3_column_int64(q, 3);
    u->created_at = sqlite3_column_int64(q, 4);
    u->updated_at = sqlite3_column_int64(q, 5);
}

/* Runs a user query with one text parameter, one row into out. */
static int user_get_one(struct store *st, const char *sql, const char *arg,
                        struct store_user *out)
{
    memset(out, 0, sizeof(*out));
    return sqlx_row_one(st, sql, &arg, 1, read_user, out, "user_get");
}

/* Runs a user query with zero or one text parameter into a list. */
static int user_list_q(struct store *st, const char *sql, const char *arg,
                       struct store_user_list *out)
{
    int rc = sqlx_rows_all(st, sql, &arg, arg != NULL ? 1 : 0, read_user,
                           sizeof(*out->items), (void **)&out->items,
                           &out->len, "user_list");
    if (rc != 0)
        store_user_list_release(out);
    return rc;
}

static int sq_user_create(struct store *st, const struct store_user *u)
{
    if (u->id[0] == '\0' || u->email == NULL)
        return CP_EINVAL;
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "INSERT INTO users(id, email, name, roles, "
                              "created_at, updated_at) "
                              "VALUES(?, ?, ?, ?, ?, ?)");
    if (q == NULL)
        goto out;
    int64_t now = cp_now_ms();
    sqlx_bind_str(q, 1, u->id);
    sqlx_bind_str(q, 2, u->email);
    sqlx_bind_str(q, 3, u->name);
    sqlite3_bind_int64(q, 4, u->roles);
    sqlite3_bind_int64(q, 5, u->created_at ? u->created_at : now);
    sqlite3_bind_int64(q, 6, u->updated_at ? u->updated_at : now);
    rc = sqlx_run(c, q, "user_create");
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_user_get(struct store *st, const char *id, struct store_user *out)
{
    return user_get_one(st, "SELECT " USER_COLS " FROM users u WHERE u.id=?",
                        id, out);
}

static int sq_user_get_by_email(struct store *st, const char *email,
                                struct store_user *out)
{
    return user_get_one(st, "SELECT " USER_COLS " FROM users u WHERE u.email=?",
                        email, out);
}

static int sq_user_list(struct store *st, struct store_user_list *out)
{
    return user_list_q(st, "SELECT " USER_COLS " FROM users u ORDER BY u.email",
                       NULL, out);
}

static int sq_user_set_roles(struct store *st, const char *id, unsigned roles)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q =
        sqlx_prep(c, "UPDATE users SET roles=?, updated_at=? WHERE id=?");
    if (q == NULL)
        goto out;
    sqlite3_bind_int64(q, 1, roles);
    sqlite3_bind_int64(q, 2, cp_now_ms());
    sqlx_bind_str(q, 3, id);
    rc = sqlx_run(c, q, "user_set_roles");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* ==== Tokens and codes ==== */

#define TOKEN_COLS                                                             \
    "id, user_id, kind, token_hash, refresh_hash, token_last4, "               \
    "refresh_last4, scopes, description, internal, is_bootstrap, "             \
    "parent_code_id, expires_at, created_at, last_used_at"

static void read_token(sqlite3_stmt *q, void *item)
{
    struct store_token *t = item;
    memset(t, 0, sizeof(*t));
    sqlx_col_fixed(q, 0, t->id, sizeof(t->id));
    sqlx_col_fixed(q, 1, t->user_id, sizeof(t->user_id));
    t->kind = sqlite3_column_int(q, 2) == STORE_TOKEN_CODE ? STORE_TOKEN_CODE
                                                           : STORE_TOKEN_BEARER;
    t->token_hash = sqlx_col_str(q, 3);
    t->refresh_hash = sqlx_col_str(q, 4);
    sqlx_col_fixed(q, 5, t->token_last4, sizeof(t->token_last4));
    sqlx_col_fixed(q, 6, t->refresh_last4, sizeof(t->refresh_last4));
    t->scopes = sqlx_col_str(q, 7);
    t->description = sqlx_col_str(q, 8);
    t->internal = sqlite3_column_int(q, 9) != 0;
    t->is_bootstrap = sqlite3_column_int(q, 10) != 0;
    sqlx_col_fixed(q, 11, t->parent_code_id, sizeof(t->parent_code_id));
    t->expires_at = sqlite3_column_int64(q, 12);
    t->created_at = sqlite3_column_int64(q, 13);
    t->last_used_at = sqlite3_column_int64(q, 14);
}

/* Steps q once: a row fills out (0), no row is CP_ENOTFOUND. Resets q. */
static int token_row(struct conn *c, sqlite3_stmt *q, struct store_token *out)
{
    int rc = sqlx_step(c, q, "token lookup");
    if (rc == 1) {
        read_token(q, out);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_ENOTFOUND;
    }
    sqlx_done(q);
    return rc;
}

static int delete_token_by_id(struct conn *c, const char *id)
{
    sqlite3_stmt *q = sqlx_prep(c, "DELETE FROM access_tokens WHERE id=?");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, id);
    return sqlx_run(c, q, "token delete");
}

static int sq_token_create(struct store *st, const struct store_token *t)
{
    if (t->id[0] == '\0' || t->token_hash == NULL)
        return CP_EINVAL;
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q =
        sqlx_prep(c, "INSERT INTO access_tokens(" TOKEN_COLS ") "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, t->id);
    sqlx_bind_str(q, 2, t->user_id);
    sqlite3_bind_int(q, 3, (int)t->kind);
    sqlx_bind_str(q, 4, t->token_hash);
    sqlx_bind_str(q, 5, t->refresh_hash);
    sqlx_bind_str(q, 6, t->token_last4);
    sqlx_bind_str(q, 7, t->refresh_last4);
    sqlx_bind_str(q, 8, t->scopes ? t->scopes : "");
    sqlx_bind_str(q, 9, t->description);
    sqlite3_bind_int(q, 10, t->internal);
    sqlite3_bind_int(q, 11, t->is_bootstrap);
    sqlx_bind_str(q, 12, t->parent_code_id);
    sqlite3_bind_int64(q, 13, t->expires_at);
    sqlite3_bind_int64(q, 14, t->created_at ? t->created_at : cp_now_ms());
    sqlite3_bind_int64(q, 15, t->last_used_at);
    rc = sqlx_run(c, q, "token_create");
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_token_get(struct store *st, const char *id,
                        struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    return sqlx_row_one(st,
                        "SELECT " TOKEN_COLS " FROM access_tokens WHERE id=?",
                        &id, 1, read_token, out, "token lookup");
}

static const char sql_token_find[] =
    "SELECT " TOKEN_COLS " FROM access_tokens "
    "WHERE kind=? AND token_hash=? AND (expires_at=0 OR expires_at>?) "
    "LIMIT 1";

static int sq_token_find(struct store *st, enum store_token_kind kind,
                         const char *hash, int64_t now, struct store_token *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *q = sqlx_prep(c, sql_token_find);
    if (q == NULL)
        goto out;
    sqlite3_bind_int(q, 1, (int)kind);
    sqlx_bind_str(q, 2, hash);
    sqlite3_bind_int64(q, 3, now);
    rc = token_row(c, q, out);
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_code_take(struct store *st, const char *hash, int64_t now,
                        struct store_token *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, sql_token_find);
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int(q, 1, STORE_TOKEN_CODE);
    sqlx_bind_str(q, 2, hash);
    sqlite3_bind_int64(q, 3, now);
    rc = token_row(c, q, out);
    if (rc != 0)
        goto fail;
    if (!out->is_bootstrap) {
        rc = delete_token_by_id(c, out->id);
        if (rc != 0)
            goto fail;
    }
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    goto out;
fail:
    sqlx_tx_rollback(c);
    store_token_release(out);
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_refresh_take(struct store *st, const char *refresh_hash,
                           struct store_token *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT " TOKEN_COLS " FROM access_tokens "
                              "WHERE kind=0 AND refresh_hash=? LIMIT 1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, refresh_hash);
    rc = token_row(c, q, out);
    if (rc != 0)
        goto fail;
    rc = delete_token_by_id(c, out->id);
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    goto out;
fail:
    sqlx_tx_rollback(c);
    store_token_release(out);
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_token_list_by_user(struct store *st, const char *user_id,
                                 struct store_token_list *out)
{
    int rc = sqlx_rows_all(st,
                           "SELECT " TOKEN_COLS " FROM access_tokens "
                           "WHERE user_id=? ORDER BY created_at, id",
                           &user_id, 1, read_token, sizeof(*out->items),
                           (void **)&out->items, &out->len, "token_list");
    if (rc != 0)
        store_token_list_release(out);
    return rc;
}

static int sq_token_delete(struct store *st, const char *id)
{
    return sqlx_write_row(st, "DELETE FROM access_tokens WHERE id=?", ARGS(id),
                          CP_ENOTFOUND);
}

static int sq_token_touch(struct store *st, const char *id, int64_t now)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE access_tokens SET last_used_at=?1 "
                              "WHERE id=?2 AND last_used_at < ?1 - ?3");
    if (q == NULL)
        goto out;
    sqlite3_bind_int64(q, 1, now);
    sqlx_bind_str(q, 2, id);
    sqlite3_bind_int64(q, 3, SQ_TOUCH_INTERVAL_MS);
    rc = sqlx_run(c, q, "token_touch");
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_token_confirm(struct store *st, const char *token_id,
                            const char *code_id)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc == 0)
        rc = delete_token_by_id(c, code_id);
    sqlite3_stmt *q = rc == 0 ? sqlx_prep(c, "UPDATE access_tokens "
                                        "SET parent_code_id='' WHERE id=?")
                              : NULL;
    if (q != NULL) {
        sqlx_bind_str(q, 1, token_id);
        rc = sqlx_run(c, q, "token confirm");
    } else if (rc == 0) {
        rc = CP_EIO;
    }
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_bootstrap_codes_delete(struct store *st)
{
    return sqlx_write_args(st,
                      "DELETE FROM access_tokens "
                      "WHERE kind=1 AND is_bootstrap=1",
                      NULL, 0, NULL);
}

static int sq_tokens_expire(struct store *st, int64_t now, int *deleted)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    if (deleted != NULL)
        *deleted = 0;
    sqlite3_stmt *q = sqlx_prep(c, "DELETE FROM access_tokens "
                              "WHERE expires_at<>0 AND expires_at<=?");
    if (q == NULL)
        goto out;
    sqlite3_bind_int64(q, 1, now);
    rc = sqlx_run(c, q, "tokens_expire");
    if (rc == 0 && deleted != NULL)
        *deleted = sqlite3_changes(c->db);
out:
    sqlx_conn_put(s, c);
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

static void read_grid(sqlite3_stmt *q, void *item)
{
    struct store_grid *g = item;
    memset(g, 0, sizeof(*g));
    sqlx_col_fixed(q, 0, g->id, sizeof(g->id));
    g->name = sqlx_col_str(q, 1);
    g->token_hash = sqlx_col_str(q, 2);
    g->token_sealed = sqlx_col_str(q, 3);
    g->initial_size = sqlite3_column_int(q, 4);
    g->subnet = sqlx_col_str(q, 5);
    g->supernet = sqlx_col_str(q, 6);
    const unsigned char *text = sqlite3_column_text(q, 7);
    if (text != NULL)
        g->settings = json_loads((const char *)text, 0, NULL);
    if (!json_is_object(g->settings)) {
        json_decref(g->settings);
        g->settings = json_object();
    }
    g->created_at = sqlite3_column_int64(q, 8);
    g->updated_at = sqlite3_column_int64(q, 9);
    g->node_count = sqlite3_column_int(q, 10);
    g->service_count = sqlite3_column_int(q, 11);
    g->container_count = sqlite3_column_int(q, 13);
    g->user_count = sqlite3_column_int(q, 12);
}

static int grid_get_one(struct store *st, const char *sql, const char *arg,
                        struct store_grid *out)
{
    memset(out, 0, sizeof(*out));
    return sqlx_row_one(st, sql, &arg, 1, read_grid, out, "grid_get");
}

/* True (1) when sql with one text parameter returns a row, 0 when not, or
 * a CP_E* code. */
static int exists1(struct conn *c, const char *sql, const char *arg)
{
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, arg);
    int rc = sqlx_step(c, q, "exists");
    sqlx_done(q);
    return rc;
}

/* Inserts the grid's row, its null stack, its default network and the
 * creator's membership; called inside the grid_create transaction. */
static int grid_insert_all(struct conn *c, const struct store_grid *g,
                           const char *creator_id, int64_t now)
{
    char *settings =
        g->settings != NULL ? cp_json_dump(g->settings) : cp_strdup("{}");
    char id[STORE_ID_LEN + 1];
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "INSERT INTO grids(id, name, token_hash, "
                              "token_sealed, initial_size, subnet, supernet, "
                              "settings, created_at, updated_at) "
                              "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, g->id);
    sqlx_bind_str(q, 2, g->name);
    sqlx_bind_str(q, 3, g->token_hash);
    sqlx_bind_str(q, 4, g->token_sealed);
    sqlite3_bind_int(q, 5, g->initial_size);
    sqlx_bind_str(q, 6, g->subnet);
    sqlx_bind_str(q, 7, g->supernet);
    sqlx_bind_str(q, 8, settings);
    sqlite3_bind_int64(q, 9, now);
    sqlite3_bind_int64(q, 10, g->updated_at ? g->updated_at : now);
    if ((rc = sqlx_run(c, q, "grid insert")) != 0)
        goto out;

    rc = CP_EIO;
    q = sqlx_prep(c, "INSERT INTO stacks(id, grid_id, name, created_at, "
                "updated_at) VALUES(?1, ?2, 'null', ?3, ?3)");
    if (q == NULL)
        goto out;
    store_new_id(id);
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, g->id);
    sqlite3_bind_int64(q, 3, now);
    if ((rc = sqlx_run(c, q, "null stack insert")) != 0)
        goto out;

    rc = CP_EIO;
    q = sqlx_prep(c, "INSERT INTO networks(id, grid_id, name, subnet, multicast, "
                "internal) VALUES(?, ?, 'kontena', ?, 1, 0)");
    if (q == NULL)
        goto out;
    store_new_id(id);
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, g->id);
    sqlx_bind_str(q, 3, g->subnet);
    if ((rc = sqlx_run(c, q, "default network insert")) != 0)
        goto out;

    if (creator_id != NULL) {
        rc = CP_EIO;
        q = sqlx_prep(c, "INSERT INTO grid_users(grid_id, user_id) VALUES(?, ?)");
        if (q == NULL)
            goto out;
        sqlx_bind_str(q, 1, g->id);
        sqlx_bind_str(q, 2, creator_id);
        rc = sqlx_run(c, q, "grid member insert");
    }
out:
    cp_free(settings);
    return rc;
}

static int sq_grid_create(struct store *st, const struct store_grid *g,
                          const char *creator_id, const char **field)
{
    if (field != NULL)
        *field = NULL;
    if (g->id[0] == '\0' || g->name == NULL || g->token_hash == NULL)
        return CP_EINVAL;
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    const char *clash = NULL;
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    /* Find which unique column clashes before inserting anything. */
    rc = exists1(c, "SELECT 1 FROM grids WHERE name=?", g->name);
    if (rc == 1) {
        clash = "name";
    } else if (rc == 0) {
        rc =
            exists1(c, "SELECT 1 FROM grids WHERE token_hash=?", g->token_hash);
        if (rc == 1)
            clash = "token";
    }
    if (rc == 1)
        rc = CP_ECONFLICT;
    if (rc != 0)
        goto fail;
    rc = grid_insert_all(c, g, creator_id,
                         g->created_at ? g->created_at : cp_now_ms());
    if (rc == CP_ECONFLICT)
        clash = "id";
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    goto out;
fail:
    sqlx_tx_rollback(c);
    if (rc == CP_ECONFLICT && field != NULL)
        *field = clash;
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_grid_get(struct store *st, const char *name,
                       struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.name=?", name, out);
}

static int sq_grid_get_by_id(struct store *st, const char *id,
                             struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.id=?", id, out);
}

static int sq_grid_get_by_token_hash(struct store *st, const char *hash,
                                     struct store_grid *out)
{
    return grid_get_one(st, GRID_SELECT "WHERE g.token_hash=?", hash, out);
}

static int sq_grid_list(struct store *st, const char *member_of,
                        struct store_grid_list *out)
{
    int rc = sqlx_rows_all(st,
                           GRID_SELECT "WHERE ?1 IS NULL OR g.id IN "
                           "(SELECT grid_id FROM grid_users WHERE user_id=?1) "
                           "ORDER BY g.name",
                           &member_of, 1, read_grid, sizeof(*out->items),
                           (void **)&out->items, &out->len, "grid_list");
    if (rc != 0)
        store_grid_list_release(out);
    return rc;
}

static int sq_grid_update(struct store *st, const struct store_grid *g)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *settings =
        g->settings != NULL ? cp_json_dump(g->settings) : cp_strdup("{}");
    sqlite3_stmt *q =
        sqlx_prep(c, "UPDATE grids SET settings=?, updated_at=? WHERE id=?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, settings);
    sqlite3_bind_int64(q, 2, g->updated_at ? g->updated_at : cp_now_ms());
    sqlx_bind_str(q, 3, g->id);
    rc = sqlx_run(c, q, "grid_update");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    cp_free(settings);
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_grid_delete(struct store *st, const char *id)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    rc = exists1(c, "SELECT 1 FROM grids WHERE id=?", id);
    if (rc == 0)
        rc = CP_ENOTFOUND;
    if (rc < 0)
        goto fail;
    rc = exists1(c,
                 "SELECT 1 FROM host_nodes WHERE grid_id=?1 UNION ALL "
                 "SELECT 1 FROM grid_services WHERE grid_id=?1 LIMIT 1",
                 id);
    if (rc == 1)
        rc = CP_ECONFLICT;
    if (rc != 0)
        goto fail;
    sqlite3_stmt *q = sqlx_prep(c, "DELETE FROM grids WHERE id=?");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, id);
    if ((rc = sqlx_run(c, q, "grid_delete")) != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    goto out;
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Adding an existing member is a no-op; a missing grid or user is
 * CP_ENOTFOUND (foreign key). */
static int sq_grid_user_add(struct store *st, const char *grid_id,
                            const char *user_id)
{
    return sqlx_write_args(st,
                      "INSERT INTO grid_users(grid_id, user_id) VALUES(?, ?) "
                      "ON CONFLICT DO NOTHING",
                      ARGS(grid_id, user_id), NULL);
}

static int sq_grid_user_remove(struct store *st, const char *grid_id,
                               const char *user_id)
{
    return sqlx_write_row(
        st, "DELETE FROM grid_users WHERE grid_id=? AND user_id=?",
        ARGS(grid_id, user_id), CP_ENOTFOUND);
}

static int sq_grid_users(struct store *st, const char *grid_id,
                         struct store_user_list *out)
{
    return user_list_q(st,
                       "SELECT " USER_COLS " FROM users u "
                       "JOIN grid_users m ON m.user_id=u.id "
                       "WHERE m.grid_id=? ORDER BY u.email",
                       grid_id, out);
}

static int sq_grid_is_member(struct store *st, const char *grid_id,
                             const char *user_id, bool *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    *out = false;
    sqlite3_stmt *q =
        sqlx_prep(c, "SELECT 1 FROM grid_users WHERE grid_id=? AND user_id=?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, user_id);
    rc = sqlx_step(c, q, "grid_is_member");
    sqlx_done(q);
    if (rc >= 0) {
        *out = rc == 1;
        rc = 0;
    }
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* ==== HA primitives ==== */

static int sq_kv_get(struct store *st, const char *key, char **value,
                     int64_t *version)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    if (value != NULL)
        *value = NULL;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT value, version FROM kv WHERE key=?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, key);
    rc = sqlx_step(c, q, "kv_get");
    if (rc == 1) {
        if (value != NULL)
            *value = sqlx_col_str(q, 0);
        if (version != NULL)
            *version = sqlite3_column_int64(q, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_ENOTFOUND;
    }
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* One statement either way, so the compare and the set are atomic. */
static int sq_kv_cas(struct store *st, const char *key, int64_t expect,
                     const char *value, int64_t *new_version)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q;
    if (expect == 0)
        q = sqlx_prep(c, "INSERT INTO kv(key, value, version) VALUES(?1, ?2, 1) "
                    "ON CONFLICT(key) DO NOTHING");
    else
        q = sqlx_prep(c, "UPDATE kv SET value=?2, version=version+1 "
                    "WHERE key=?1 AND version=?3");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, key);
    sqlx_bind_str(q, 2, value);
    if (expect != 0)
        sqlite3_bind_int64(q, 3, expect);
    rc = sqlx_run(c, q, "kv_cas");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ECONFLICT;
    if (rc == 0 && new_version != NULL)
        *new_version = expect + 1;
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_lease_acquire(struct store *st, const char *name,
                            const char *holder, int64_t now, int64_t ttl_ms,
                            char **holder_out, int64_t *expires_out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    if (holder_out != NULL)
        *holder_out = NULL;
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    /* Take it when absent, expired, or ours already. */
    sqlite3_stmt *q =
        sqlx_prep(c, "INSERT INTO leases(name, holder, expires_at) "
                "VALUES(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE "
                "SET holder=excluded.holder, expires_at=excluded.expires_at "
                "WHERE leases.holder=excluded.holder OR leases.expires_at<=?4");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, name);
    sqlx_bind_str(q, 2, holder);
    sqlite3_bind_int64(q, 3, now + ttl_ms);
    sqlite3_bind_int64(q, 4, now);
    if ((rc = sqlx_run(c, q, "lease_acquire")) != 0)
        goto fail;
    bool acquired = sqlite3_changes(c->db) > 0;

    q = sqlx_prep(c, "SELECT holder, expires_at FROM leases WHERE name=?");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, name);
    rc = sqlx_step(c, q, "lease read");
    if (rc == 1) {
        if (holder_out != NULL)
            *holder_out = sqlx_col_str(q, 0);
        if (expires_out != NULL)
            *expires_out = sqlite3_column_int64(q, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_EIO; /* we just wrote or saw it: cannot be missing */
    }
    sqlx_done(q);
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    if (!acquired)
        rc = CP_EAGAIN;
    goto out;
fail:
    sqlx_tx_rollback(c);
    if (holder_out != NULL) {
        cp_free(*holder_out);
        *holder_out = NULL;
    }
out:
    sqlx_conn_put(s, c);
    return rc;
}

static int sq_lease_release(struct store *st, const char *name,
                            const char *holder)
{
    return sqlx_write_args(st, "DELETE FROM leases WHERE name=? AND holder=?",
                      ARGS(name, holder), NULL);
}

/* ==== Change feed (in-process) ==== */

static int sq_feed_publish(struct store *st, const char *channel,
                           const char *payload)
{
    struct sq_store *s = sq(st);
    struct subscriber copy[SQ_MAX_SUBSCRIBERS];
    size_t n = 0;
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < SQ_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id != 0)
            copy[n++] = s->subs[i];
    pthread_mutex_unlock(&s->feed_mu);
    /* Outside the lock, so a callback may (un)subscribe or publish. */
    for (size_t i = 0; i < n; i++)
        copy[i].cb(copy[i].ctx, channel, payload);
    return 0;
}

/* CP_ENOMEM when all SQ_MAX_SUBSCRIBERS slots are taken. */
static int sq_feed_subscribe(struct store *st, store_feed_cb *cb, void *ctx)
{
    struct sq_store *s = sq(st);
    int id = CP_ENOMEM;
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < SQ_MAX_SUBSCRIBERS; i++) {
        if (s->subs[i].id == 0) {
            id = s->next_sub_id++;
            s->subs[i] = (struct subscriber){id, cb, ctx};
            break;
        }
    }
    pthread_mutex_unlock(&s->feed_mu);
    return id;
}

/* A publish already running on another thread may still call the
 * callback once after this returns. */
static void sq_feed_unsubscribe(struct store *st, int id)
{
    struct sq_store *s = sq(st);
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < SQ_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id == id && id > 0)
            memset(&s->subs[i], 0, sizeof(s->subs[i]));
    pthread_mutex_unlock(&s->feed_mu);
}

/* ==== Ops table ==== */

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .schema_version = sq_schema_version,
    .config_get = sq_config_get,
    .config_set = sq_config_set,
    .config_set_if_absent = sq_config_set_if_absent,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .user_get_by_email = sq_user_get_by_email,
    .user_list = sq_user_list,
    .user_set_roles = sq_user_set_roles,
    .token_create = sq_token_create,
    .token_get = sq_token_get,
    .token_find = sq_token_find,
    .code_take = sq_code_take,
    .refresh_take = sq_refresh_take,
    .token_list_by_user = sq_token_list_by_user,
    .token_delete = sq_token_delete,
    .token_touch = sq_token_touch,
    .token_confirm = sq_token_confirm,
    .node_get = sqn_node_get,
    .node_find = sqn_node_find,
    .node_get_by_node_id = sqn_node_get_by_node_id,
    .node_get_by_token_hash = sqn_node_get_by_token_hash,
    .node_list = sqn_node_list,
    .node_create = sqn_node_create,
    .node_bind = sqn_node_bind,
    .node_update = sqn_node_update,
    .node_set_token = sqn_node_set_token,
    .node_delete = sqn_node_delete,
    .node_plug = sqn_node_plug,
    .node_unplug = sqn_node_unplug,
    .node_set_info = sqn_node_set_info,
    .node_add_stats = sqn_node_add_stats,
    .nodes_add_stats = sqn_nodes_add_stats,
    .nodes_seen = sqn_nodes_seen,
    .nodes_sweep = sqn_nodes_sweep,
    .service_create = sqs_service_create,
    .service_get = sqs_service_get,
    .service_get_by_id = sqs_service_get_by_id,
    .service_list = sqs_service_list,
    .service_update = sqs_service_update,
    .service_delete = sqs_service_delete,
    .instance_list = sqs_instance_list,
    .instances_on_node = sqs_instances_on_node,
    .node_pod_rows = sqs_node_pod_rows,
    .instance_put = sqs_instance_put,
    .instance_put_many = sqs_instance_put_many,
    .instances_report_many = sqs_instances_report_many,
    .instance_trim = sqs_instance_trim,
    .instance_report = sqs_instance_report,
    .instances_detach_node = sqs_instances_detach_node,
    .deploy_queue = sqs_deploy_queue,
    .deploy_get = sqs_deploy_get,
    .deploy_claim = sqs_deploy_claim,
    .deploy_update = sqs_deploy_update,
    .deploy_list = sqs_deploy_list,
    .deploys_prune = sqs_deploys_prune,
    .container_save = sqs_container_save,
    .container_delete = sqs_container_delete,
    .containers_cleanup = sqs_containers_cleanup,
    .containers_mark_deleted = sqs_containers_mark_deleted,
    .container_list = sqs_container_list,
    .container_get = sqs_container_get,
    .logs_append = sqs_logs_append,
    .logs_read = sqs_logs_read,
    .events_append = sqs_events_append,
    .events_read = sqs_events_read,
    .history_trim = sqs_history_trim,
    .stack_create = sqk_stack_create,
    .stack_get = sqk_stack_get,
    .stack_get_by_id = sqk_stack_get_by_id,
    .stack_list = sqk_stack_list,
    .stack_revision_get = sqk_stack_revision_get,
    .stack_revise = sqk_stack_revise,
    .stack_update = sqk_stack_update,
    .stack_delete = sqk_stack_delete,
    .stack_deploy_queue = sqk_stack_deploy_queue,
    .stack_deploy_get = sqk_stack_deploy_get,
    .stack_deploy_claim = sqk_stack_deploy_claim,
    .stack_deploy_update = sqk_stack_deploy_update,
    .stack_deploy_list = sqk_stack_deploy_list,
    .stack_deploy_services = sqk_stack_deploy_services,
    .stack_deploys_prune = sqk_stack_deploys_prune,
    .bootstrap_codes_delete = sq_bootstrap_codes_delete,
    .tokens_expire = sq_tokens_expire,
    .grid_create = sq_grid_create,
    .grid_get = sq_grid_get,
    .grid_get_by_token_hash = sq_grid_get_by_token_hash,
    .grid_get_by_id = sq_grid_get_by_id,
    .grid_list = sq_grid_list,
    .grid_update = sq_grid_update,
    .grid_delete = sq_grid_delete,
    .grid_user_add = sq_grid_user_add,
    .grid_user_remove = sq_grid_user_remove,
    .grid_users = sq_grid_users,
    .grid_is_member = sq_grid_is_member,
    .registry_create = sqa_registry_create,
    .registry_list = sqa_registry_list,
    .registry_get = sqa_registry_get,
    .registry_delete = sqa_registry_delete,
    .registry_reseal = sqv_registry_reseal,
    .audit_append = sqa_audit_append,
    .audit_list = sqa_audit_list,
    .audit_trim = sqa_audit_trim,
    .kv_get = sq_kv_get,
    .kv_cas = sq_kv_cas,
    .lease_acquire = sq_lease_acquire,
    .lease_release = sq_lease_release,
    .feed_publish = sq_feed_publish,
    .feed_subscribe = sq_feed_subscribe,
    .feed_unsubscribe = sq_feed_unsubscribe,
    .secret_create = sqv_secret_create,
    .secret_get = sqv_secret_get,
    .secret_list = sqv_secret_list,
    .secret_update = sqv_secret_update,
    .secret_delete = sqv_secret_delete,
    .secret_reseal = sqv_secret_reseal,
    .secrets_page = sqv_secrets_page,
    .grid_token_reseal = sqv_grid_token_reseal,
    .node_token_reseal = sqv_node_token_reseal,
};
