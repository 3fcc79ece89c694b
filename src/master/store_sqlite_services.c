/* SQLite backend: services, their instances and deploys, the containers
 * agents report, and the bounded container logs and events (issue 4).
 *
 * Optional ids ("" in the structs: no node, no stack deploy, foreign
 * container) are stored as NULL and read back as "". Reads that return
 * services join stacks for stack_name, so a list is always one query.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define LOGS_DEFAULT_LIMIT 100
#define LOGS_MAX_LIMIT 10000

/* ==== Row helpers ==== */

/* Reads one row of q into the struct at item. */
/* NULL for an absent optional id, so "" never reaches an id column. */
static const char *nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* True (1) when sql with one text argument returns a row, 0 when not, or
 * a CP_E* code. */
static int exists_in(struct conn *c, const char *sql, const char *arg)
{
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, arg);
    int rc = sqlx_step(c, q, "exists");
    sqlx_done(q);
    return rc;
}

/* ==== Services ==== */

/* Service columns, with the stack's name from the join every read uses.
 * Adding a column: also update read_service_at and SVC_NCOLS. */
#define SVC_COLS                                                               \
    "v.id, v.grid_id, v.stack_id, k.name, v.name, v.spec, v.revision, "        \
    "v.stack_revision, v.state, v.deployed_at, v.deploy_requested_at, "        \
    "v.created_at, v.updated_at, v.deployed_revision"
#define SVC_FROM " FROM grid_services v JOIN stacks k ON k.id=v.stack_id "
#define SVC_NCOLS 14

static void read_service_at(sqlite3_stmt *q, int o, struct store_service *v)
{
    memset(v, 0, sizeof(*v));
    sqlx_col_fixed(q, o + 0, v->id, sizeof(v->id));
    sqlx_col_fixed(q, o + 1, v->grid_id, sizeof(v->grid_id));
    sqlx_col_fixed(q, o + 2, v->stack_id, sizeof(v->stack_id));
    v->stack_name = sqlx_col_str(q, o + 3);
    v->name = sqlx_col_str(q, o + 4);
    v->spec = sqlx_col_json(q, o + 5, json_object());
    v->revision = sqlite3_column_int64(q, o + 6);
    v->stack_revision = sqlite3_column_int64(q, o + 7);
    v->state = sqlx_col_str(q, o + 8);
    v->deployed_at = sqlite3_column_int64(q, o + 9);
    v->deploy_requested_at = sqlite3_column_int64(q, o + 10);
    v->created_at = sqlite3_column_int64(q, o + 11);
    v->updated_at = sqlite3_column_int64(q, o + 12);
    v->deployed_revision = sqlite3_column_int64(q, o + 13);
}

static void read_service(sqlite3_stmt *q, void *item)
{
    read_service_at(q, 0, item);
}

/* One INSERT ... SELECT: the stack row must exist in the service's grid
 * (the named one, or the grid's "null" stack), else nothing is inserted
 * and the grid or stack is reported missing. */
int sqs_service_create(struct store *st, const struct store_service *v)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *spec = sqlx_dump_or(v->spec, "{}");
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, "
           "revision, stack_revision, state, deployed_at, "
           "deploy_requested_at, created_at, updated_at) "
           "SELECT ?1, k.grid_id, k.id, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11"
           " FROM stacks k WHERE k.grid_id=?2 AND "
           "(k.id=?3 OR (?3 IS NULL AND k.name='null'))");
    if (q == NULL)
        goto out;
    int64_t now = v->created_at ? v->created_at : cp_now_ms();
    sqlx_bind_str(q, 1, v->id);
    sqlx_bind_str(q, 2, v->grid_id);
    sqlx_bind_str(q, 3, nz(v->stack_id));
    sqlx_bind_str(q, 4, v->name);
    sqlx_bind_str(q, 5, spec);
    sqlite3_bind_int64(q, 6, v->revision > 0 ? v->revision : 1);
    sqlite3_bind_int64(q, 7, v->stack_revision);
    sqlx_bind_str(q, 8, v->state != NULL ? v->state : "initialized");
    sqlite3_bind_int64(q, 9, v->deployed_at);
    sqlite3_bind_int64(q, 10, v->deploy_requested_at);
    sqlite3_bind_int64(q, 11, now);
    rc = sqlx_run(c, q, "service create");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    sqlx_conn_put(s, c);
    cp_free(spec);
    return rc;
}

int sqs_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out)
{
    const char *stack = nz(stack_name) != NULL ? stack_name : "null";
    return sqlx_row_one(st,
                   "SELECT " SVC_COLS SVC_FROM
                   "WHERE k.grid_id=?1 AND k.name=?2 AND v.name=?3",
                   ARGS(grid_id, stack, name), read_service, out,
                   "service get");
}

int sqs_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out)
{
    return sqlx_row_one(st, "SELECT " SVC_COLS SVC_FROM "WHERE v.id=?1", ARGS(id),
                   read_service, out, "service get");
}

int sqs_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out)
{
    void *items;
    int rc = sqlx_rows_all(st,
                      "SELECT " SVC_COLS SVC_FROM
                      "WHERE v.grid_id=?1 AND (?2 IS NULL OR k.name=?2) "
                      "ORDER BY k.name, v.name",
                      ARGS(grid_id, stack_name), read_service,
                      sizeof(*out->items), &items, &out->len, "service list");
    out->items = items;
    if (rc != 0)
        store_service_list_release(out);
    return rc;
}

/* A NULL spec or state keeps the stored one. */
int sqs_service_update(struct store *st, const struct store_service *v)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *spec = v->spec != NULL ? cp_json_dump(v->spec) : NULL;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE grid_services SET spec=COALESCE(?2, spec), "
           "revision=MAX(revision, ?3), stack_revision=?4, "
           "state=COALESCE(?5, state), deployed_at=?6, "
           "deploy_requested_at=?7, updated_at=?8, deployed_revision=?9 "
           "WHERE id=?1");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, v->id);
    sqlx_bind_str(q, 2, spec);
    sqlite3_bind_int64(q, 3, v->revision);
    sqlite3_bind_int64(q, 4, v->stack_revision);
    sqlx_bind_str(q, 5, v->state);
    sqlite3_bind_int64(q, 6, v->deployed_at);
    sqlite3_bind_int64(q, 7, v->deploy_requested_at);
    sqlite3_bind_int64(q, 8, v->updated_at ? v->updated_at : cp_now_ms());
    sqlite3_bind_int64(q, 9, v->deployed_revision);
    rc = sqlx_run(c, q, "service update");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    sqlx_conn_put(s, c);
    cp_free(spec);
    return rc;
}

/* Instances and deploys go by ON DELETE CASCADE, inside the statement. */
int sqs_service_delete(struct store *st, const char *id)
{
    return sqlx_write_row(st, "DELETE FROM grid_services WHERE id=?", ARGS(id),
                          CP_ENOTFOUND);
}

/* ==== Instances ==== */

/* Adding a column: also update read_instance_at and INST_NCOLS. */
#define INST_COLS                                                              \
    "i.id, i.service_id, i.instance_number, i.node_id, i.desired_state, "      \
    "i.deploy_rev, i.rev, i.state, i.error, i.updated_at"
#define INST_NCOLS 10

static void read_instance_at(sqlite3_stmt *q, int o, struct store_instance *i)
{
    memset(i, 0, sizeof(*i));
    sqlx_col_fixed(q, o + 0, i->id, sizeof(i->id));
    sqlx_col_fixed(q, o + 1, i->service_id, sizeof(i->service_id));
    i->instance_number = sqlite3_column_int(q, o + 2);
    sqlx_col_fixed(q, o + 3, i->node_id, sizeof(i->node_id));
    i->desired_state = sqlx_col_str(q, o + 4);
    i->deploy_rev = sqlx_col_str(q, o + 5);
    i->rev = sqlx_col_str(q, o + 6);
    i->state = sqlx_col_str(q, o + 7);
    i->error = sqlx_col_str(q, o + 8);
    i->updated_at = sqlite3_column_int64(q, o + 9);
}

static void read_instance(sqlite3_stmt *q, void *item)
{
    read_instance_at(q, 0, item);
}

int sqs_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out)
{
    void *items;
    int rc = sqlx_rows_all(st,
                      "SELECT " INST_COLS " FROM grid_service_instances i "
                      "WHERE i.service_id=? ORDER BY i.instance_number",
                      ARGS(service_id), read_instance, sizeof(*out->items),
                      &items, &out->len, "instance list");
    out->items = items;
    if (rc != 0)
        store_instance_list_release(out);
    return rc;
}

/* One query: each row carries the instance and its service side by side,
 * so services[i] is a copy of the service of instances[i]. */
int sqs_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services)
{
    struct sq_store *s = sq(st);
    size_t cap = 0;
    memset(instances, 0, sizeof(*instances));
    memset(services, 0, sizeof(*services));
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT " INST_COLS ", " SVC_COLS
                                   " FROM grid_service_instances i "
                                   "JOIN grid_services v ON v.id=i.service_id "
                                   "JOIN stacks k ON k.id=v.stack_id "
                                   "WHERE i.node_id=? ORDER BY k.name, v.name, "
                                   "i.instance_number");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, node_id);
    while ((rc = sqlx_step(c, q, "instances on node")) == 1) {
        if (instances->len == cap) {
            cap = cap ? cap * 2 : 16;
            instances->items =
                cp_realloc(instances->items, cap * sizeof(*instances->items));
            services->items =
                cp_realloc(services->items, cap * sizeof(*services->items));
        }
        read_instance_at(q, 0, &instances->items[instances->len++]);
        read_service_at(q, INST_NCOLS, &services->items[services->len++]);
    }
    sqlx_done(q);
    if (rc != 0) {
        store_instance_list_release(instances);
        store_service_list_release(services);
    }
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out)
{
    struct sq_store *s = sq(st);
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT n.name, g.name FROM host_nodes n, "
                                   "grids g WHERE n.id=? AND g.id=?");
    if (q == NULL)
        goto end;
    sqlx_bind_str(q, 1, node_id);
    sqlx_bind_str(q, 2, grid_id);
    rc = sqlx_step(c, q, "pod rows node");
    if (rc == 1) {
        out->node_name = sqlx_col_str(q, 0);
        out->grid_name = sqlx_col_str(q, 1);
    }
    sqlx_done(q);
    if (rc != 1) {
        rc = rc == 0 ? CP_ENOTFOUND : rc;
        goto end;
    }
    rc = CP_EIO;
    q = sqlx_prep(c, "SELECT " INST_COLS ", v.name, k.name, v.spec, "
                     "v.revision, v.updated_at"
                     " FROM grid_service_instances i "
                     "JOIN grid_services v ON v.id=i.service_id "
                     "JOIN stacks k ON k.id=v.stack_id "
                     "WHERE i.node_id=? ORDER BY k.name, v.name, "
                     "i.instance_number");
    if (q == NULL)
        goto end;
    sqlx_bind_str(q, 1, node_id);
    while ((rc = sqlx_step(c, q, "pod rows")) == 1) {
        if (out->len == cap) {
            cap = cap ? cap * 2 : 16;
            out->items = cp_realloc(out->items, cap * sizeof(*out->items));
        }
        struct store_pod_row *r = &out->items[out->len++];
        memset(r, 0, sizeof(*r));
        read_instance_at(q, 0, &r->inst);
        r->service_name = sqlx_col_str(q, INST_NCOLS + 0);
        r->stack_name = sqlx_col_str(q, INST_NCOLS + 1);
        r->spec = sqlx_col_str(q, INST_NCOLS + 2);
        r->revision = sqlite3_column_int64(q, INST_NCOLS + 3);
        r->updated_at = sqlite3_column_int64(q, INST_NCOLS + 4);
    }
    sqlx_done(q);
end:
    if (rc != 0)
        store_pod_rows_release(out);
    sqlx_conn_put(s, c);
    return rc;
}

/* Replaces every field but the row id, which a replaced instance keeps. */
static int put_one(struct conn *c, const struct store_instance *i)
{
    char id[STORE_ID_LEN + 1];
    if (i->id[0] != '\0')
        memcpy(id, i->id, sizeof(id));
    else
        store_new_id(id);
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO grid_service_instances(id, service_id, "
           "instance_number, node_id, desired_state, deploy_rev, rev, state,"
           " error, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) "
           "ON CONFLICT(service_id, instance_number) DO UPDATE SET "
           "node_id=excluded.node_id, desired_state=excluded.desired_state, "
           "deploy_rev=excluded.deploy_rev, rev=excluded.rev, "
           "state=excluded.state, error=excluded.error, "
           "updated_at=excluded.updated_at");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, i->service_id);
    sqlite3_bind_int(q, 3, i->instance_number);
    sqlx_bind_str(q, 4, nz(i->node_id));
    sqlx_bind_str(q, 5, i->desired_state ? i->desired_state : "running");
    sqlx_bind_str(q, 6, i->deploy_rev);
    sqlx_bind_str(q, 7, i->rev);
    sqlx_bind_str(q, 8, i->state);
    sqlx_bind_str(q, 9, i->error);
    sqlite3_bind_int64(q, 10, i->updated_at ? i->updated_at : cp_now_ms());
    return sqlx_run(c, q, "instance put");
}

int sqs_instance_put(struct store *st, const struct store_instance *i)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = put_one(c, i);
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n)
{
    if (n == 0)
        return 0;
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_one(c, &v[i]);
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_instance_trim(struct store *st, const char *service_id, int keep)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "DELETE FROM grid_service_instances "
                                   "WHERE service_id=? AND instance_number>?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, service_id);
    sqlite3_bind_int(q, 2, keep);
    rc = sqlx_run(c, q, "instance trim");
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Revs are fixed-width UTC "YYYY-MM-DD HH:MM:SS" strings, so text order is
 * time order; a NULL rev is older than any. A report from a node the
 * instance is no longer placed on (node_id given and different) is
 * ignored like an older one: that node is stopping a moved instance and
 * must not overwrite the new host's state. Both return 0. */
static int report_one(struct conn *c, const char *service_id,
                      int instance_number, const char *node_id, const char *rev,
                      const char *state, const char *error, int64_t now)
{
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE grid_service_instances SET rev=?4, state=?5, error=?6, "
           "updated_at=?7 WHERE service_id=?1 AND instance_number=?2 "
           "AND (?3 IS NULL OR node_id IS ?3) "
           "AND (rev IS NULL OR (?4 IS NOT NULL AND rev<=?4))");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, service_id);
    sqlite3_bind_int(q, 2, instance_number);
    sqlx_bind_str(q, 3, nz(node_id));
    sqlx_bind_str(q, 4, rev);
    sqlx_bind_str(q, 5, state);
    sqlx_bind_str(q, 6, error);
    sqlite3_bind_int64(q, 7, now);
    int rc = sqlx_run(c, q, "instance report");
    if (rc != 0 || sqlite3_changes(c->db) > 0)
        return rc;
    /* Nothing written: stale report (fine) or no such instance. */
    q = sqlx_prep(c, "SELECT 1 FROM grid_service_instances "
                     "WHERE service_id=? AND instance_number=?");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, service_id);
    sqlite3_bind_int(q, 2, instance_number);
    rc = sqlx_step(c, q, "instance exists");
    sqlx_done(q);
    if (rc == 1)
        rc = 0;
    else if (rc == 0)
        rc = CP_ENOTFOUND;
    return rc;
}

int sqs_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state, const char *error)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = report_one(c, service_id, instance_number, node_id, rev, state,
                        error, cp_now_ms());
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n)
{
    if (n == 0)
        return 0;
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int64_t now = cp_now_ms();
    int rc = sqlx_tx_begin(c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int r = report_one(c, v[i].service_id, v[i].instance_number,
                           v[i].node_id, v[i].rev, v[i].state, v[i].error, now);
        v[i].rc = r == CP_ENOTFOUND ? r : 0;
        if (r != CP_ENOTFOUND)
            rc = r;
    }
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_instances_detach_node(struct store *st, const char *node_id, int *count)
{
    int changes = 0;
    int rc = sqlx_write_args(st,
                             "UPDATE grid_service_instances SET node_id=NULL"
                             " WHERE node_id=?",
                             ARGS(node_id), &changes);
    if (count != NULL)
        *count = rc == 0 ? changes : 0;
    return rc;
}

/* ==== Deploys ==== */

/* Adding a column: also update sqs_read_deploy (SQS_DEPLOY_COLS is in
 * store_sqlite_int.h). */
#define DEP_COLS SQS_DEPLOY_COLS

void sqs_read_deploy(sqlite3_stmt *q, void *item)
{
    struct store_deploy *d = item;
    memset(d, 0, sizeof(*d));
    sqlx_col_fixed(q, 0, d->id, sizeof(d->id));
    sqlx_col_fixed(q, 1, d->service_id, sizeof(d->service_id));
    sqlx_col_fixed(q, 2, d->stack_deploy_id, sizeof(d->stack_deploy_id));
    d->state = sqlx_col_str(q, 3);
    d->reason = sqlx_col_str(q, 4);
    d->force = sqlite3_column_int(q, 5) != 0;
    d->instance_deploys = sqlx_col_json(q, 6, json_array());
    d->claimed_by = sqlx_col_str(q, 7);
    d->lease_until = sqlite3_column_int64(q, 8);
    d->created_at = sqlite3_column_int64(q, 9);
    d->queued_at = sqlite3_column_int64(q, 10);
    d->started_at = sqlite3_column_int64(q, 11);
    d->finished_at = sqlite3_column_int64(q, 12);
}

static const char deploy_by_id[] =
    "SELECT " DEP_COLS " FROM grid_service_deploys WHERE id=?";

/* The id (in out) of the service's queued deploy: 1, 0 when none, or a
 * CP_E* code. */
static int queued_deploy(struct conn *c, const char *service_id,
                         char out[STORE_ID_LEN + 1])
{
    sqlite3_stmt *q = sqlx_prep(
        c, "SELECT id FROM grid_service_deploys WHERE service_id=? AND "
           "state='created' ORDER BY created_at, rowid LIMIT 1");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, service_id);
    int rc = sqlx_step(c, q, "deploy queued");
    if (rc == 1)
        sqlx_col_fixed(q, 0, out, STORE_ID_LEN + 1);
    sqlx_done(q);
    return rc;
}

static int deploy_insert(struct conn *c, const struct store_deploy *d,
                         const char *id)
{
    char *ideps = sqlx_dump_or(d->instance_deploys, "[]");
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO grid_service_deploys(id, service_id, "
           "stack_deploy_id, state, reason, force, instance_deploys, "
           "created_at, queued_at) VALUES(?1,?2,?3,'created',?4,?5,?6,?7,?8)");
    if (q == NULL)
        goto out;
    int64_t now = cp_now_ms();
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, d->service_id);
    sqlx_bind_str(q, 3, nz(d->stack_deploy_id));
    sqlx_bind_str(q, 4, d->reason);
    sqlite3_bind_int(q, 5, d->force ? 1 : 0);
    sqlx_bind_str(q, 6, ideps);
    sqlite3_bind_int64(q, 7, d->created_at ? d->created_at : now);
    sqlite3_bind_int64(q, 8, d->queued_at ? d->queued_at : now);
    rc = sqlx_run(c, q, "deploy insert");
out:
    cp_free(ideps);
    return rc;
}

int sqs_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char id[STORE_ID_LEN + 1] = "";
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    rc = queued_deploy(c, d->service_id, id);
    if (rc < 0)
        goto fail;
    if (rc == 1 && (d->force || nz(d->stack_deploy_id) != NULL)) {
        /* The newest stack deploy that waits on it owns it. */
        sqlite3_stmt *q = sqlx_prep(
            c, "UPDATE grid_service_deploys SET force=MAX(force, ?2), "
               "stack_deploy_id=COALESCE(?3, stack_deploy_id) WHERE id=?1");
        if (q == NULL) {
            rc = CP_EIO;
            goto fail;
        }
        sqlx_bind_str(q, 1, id);
        sqlite3_bind_int(q, 2, d->force ? 1 : 0);
        sqlx_bind_str(q, 3, nz(d->stack_deploy_id));
        rc = sqlx_run(c, q, "deploy coalesce");
    } else if (rc == 0) {
        if (d->id[0] != '\0')
            memcpy(id, d->id, sizeof(id));
        else
            store_new_id(id);
        rc = deploy_insert(c, d, id);
    } else {
        rc = 0;
    }
    if (rc != 0)
        goto fail;
    rc = sqlx_row_in(c, deploy_by_id, ARGS(id), sqs_read_deploy, out,
                     "deploy get");
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
    store_deploy_release(out);
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_deploy_get(struct store *st, const char *id, struct store_deploy *out)
{
    return sqlx_row_one(st, deploy_by_id, ARGS(id), sqs_read_deploy, out,
                        "deploy get");
}

/* Candidates, oldest first: ongoing deploys whose lease expired (their
 * master died; taken over before anything else, so a service never gets
 * a second ongoing deploy beside an expired one), then queued deploys of
 * services without an ongoing deploy under a live lease. */
int sqs_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char id[STORE_ID_LEN + 1] = "";
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "SELECT d.id FROM grid_service_deploys d "
           "WHERE (d.state='ongoing' AND d.lease_until<=?1) OR "
           "(d.state='created' AND NOT EXISTS (SELECT 1 FROM "
           "grid_service_deploys o WHERE o.service_id=d.service_id AND "
           "o.state='ongoing' AND o.lease_until>?1)) "
           "ORDER BY d.state='ongoing' DESC, d.created_at, d.rowid LIMIT 1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int64(q, 1, now);
    rc = sqlx_step(c, q, "deploy claim");
    if (rc == 1)
        sqlx_col_fixed(q, 0, id, sizeof(id));
    sqlx_done(q);
    if (rc == 0)
        rc = CP_ENOTFOUND;
    if (rc < 0)
        goto fail;
    q = sqlx_prep(c, "UPDATE grid_service_deploys SET state='ongoing', "
                     "claimed_by=?2, lease_until=?3, started_at=?4, "
                     "finished_at=0 WHERE id=?1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, holder);
    sqlite3_bind_int64(q, 3, now + lease_ms);
    sqlite3_bind_int64(q, 4, now);
    rc = sqlx_run(c, q, "deploy claim");
    if (rc != 0)
        goto fail;
    rc = sqlx_row_in(c, deploy_by_id, ARGS(id), sqs_read_deploy, out,
                     "deploy get");
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
    store_deploy_release(out);
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Fenced on claimed_by ("IS" so that an unclaimed deploy is written with
 * claimed_by NULL). A NULL state or instance_deploys keeps the stored
 * one. */
int sqs_deploy_update(struct store *st, const struct store_deploy *d)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *ideps =
        d->instance_deploys != NULL ? cp_json_dump(d->instance_deploys) : NULL;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE grid_service_deploys SET state=COALESCE(?3, state), "
           "reason=?4, instance_deploys=COALESCE(?5, instance_deploys), "
           "lease_until=?6, finished_at=?7 WHERE id=?1 AND claimed_by IS ?2");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, d->id);
    sqlx_bind_str(q, 2, d->claimed_by);
    sqlx_bind_str(q, 3, d->state);
    sqlx_bind_str(q, 4, d->reason);
    sqlx_bind_str(q, 5, ideps);
    sqlite3_bind_int64(q, 6, d->lease_until);
    sqlite3_bind_int64(q, 7, d->finished_at);
    rc = sqlx_run(c, q, "deploy update");
    if (rc != 0 || sqlite3_changes(c->db) > 0)
        goto out;
    rc = exists_in(c, "SELECT 1 FROM grid_service_deploys WHERE id=?", d->id);
    if (rc == 1)
        rc = CP_ECONFLICT; /* another holder took it over */
    else if (rc == 0)
        rc = CP_ENOTFOUND;
out:
    sqlx_conn_put(s, c);
    cp_free(ideps);
    return rc;
}

int sqs_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out)
{
    struct sq_store *s = sq(st);
    memset(out, 0, sizeof(*out));
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    void *items = NULL;
    sqlite3_stmt *q = sqlx_prep(
        c, "SELECT " DEP_COLS " FROM grid_service_deploys WHERE service_id=? "
           "ORDER BY created_at DESC, rowid DESC LIMIT ?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, service_id);
    sqlite3_bind_int(q, 2, limit > 0 ? limit : -1);
    rc = sqlx_collect(c, q, "deploy list", sqs_read_deploy,
                      sizeof(*out->items), &items, &out->len);
    out->items = items;
    sqlx_done(q);
    if (rc != 0)
        store_deploy_list_release(out);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Finished = neither queued nor ongoing. One statement, so atomic. */
int sqs_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct sq_store *s = sq(st);
    if (deleted != NULL)
        *deleted = 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "DELETE FROM grid_service_deploys WHERE id IN (SELECT id FROM "
           "(SELECT id, ROW_NUMBER() OVER (PARTITION BY service_id "
           "ORDER BY created_at DESC, rowid DESC) AS n "
           "FROM grid_service_deploys "
           "WHERE state NOT IN ('created', 'ongoing')) WHERE n>?)");
    if (q == NULL)
        goto out;
    sqlite3_bind_int(q, 1, keep > 0 ? keep : 0);
    rc = sqlx_run(c, q, "deploys prune");
    if (rc == 0 && deleted != NULL)
        *deleted = sqlite3_changes(c->db);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* ==== Containers ==== */

/* Adding a column: also update read_container. */
#define CONT_COLS                                                              \
    "id, grid_id, node_id, service_id, container_id, name, "                   \
    "instance_number, status, info, created_at, updated_at, deleted_at"

static void read_container(sqlite3_stmt *q, void *item)
{
    struct store_container *k = item;
    memset(k, 0, sizeof(*k));
    sqlx_col_fixed(q, 0, k->id, sizeof(k->id));
    sqlx_col_fixed(q, 1, k->grid_id, sizeof(k->grid_id));
    sqlx_col_fixed(q, 2, k->node_id, sizeof(k->node_id));
    sqlx_col_fixed(q, 3, k->service_id, sizeof(k->service_id));
    k->container_id = sqlx_col_str(q, 4);
    k->name = sqlx_col_str(q, 5);
    k->instance_number = sqlite3_column_int(q, 6);
    k->status = sqlx_col_str(q, 7);
    k->info = sqlx_col_json(q, 8, json_object());
    k->created_at = sqlite3_column_int64(q, 9);
    k->updated_at = sqlite3_column_int64(q, 10);
    k->deleted_at = sqlite3_column_int64(q, 11);
}

/* An update keeps the row id and created_at. */
int sqs_container_save(struct store *st, const struct store_container *k)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *info = sqlx_dump_or(k->info, "{}");
    char id[STORE_ID_LEN + 1];
    if (k->id[0] != '\0')
        memcpy(id, k->id, sizeof(id));
    else
        store_new_id(id);
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO containers(id, grid_id, node_id, service_id, "
           "container_id, name, instance_number, status, info, created_at, "
           "updated_at, deleted_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
           "?11,0) ON CONFLICT(container_id) DO UPDATE SET "
           "grid_id=excluded.grid_id, node_id=excluded.node_id, "
           "service_id=excluded.service_id, name=excluded.name, "
           "instance_number=excluded.instance_number, "
           "status=excluded.status, info=excluded.info, "
           "updated_at=excluded.updated_at, deleted_at=0");
    if (q == NULL)
        goto out;
    int64_t now = cp_now_ms();
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, k->grid_id);
    sqlx_bind_str(q, 3, nz(k->node_id));
    sqlx_bind_str(q, 4, nz(k->service_id));
    sqlx_bind_str(q, 5, k->container_id);
    sqlx_bind_str(q, 6, k->name);
    sqlite3_bind_int(q, 7, k->instance_number);
    sqlx_bind_str(q, 8, k->status);
    sqlx_bind_str(q, 9, info);
    sqlite3_bind_int64(q, 10, k->created_at ? k->created_at : now);
    sqlite3_bind_int64(q, 11, k->updated_at ? k->updated_at : now);
    rc = sqlx_run(c, q, "container save");
out:
    sqlx_conn_put(s, c);
    cp_free(info);
    return rc;
}

int sqs_container_delete(struct store *st, const char *container_id)
{
    return sqlx_write_row(st, "DELETE FROM containers WHERE container_id=?",
                          ARGS(container_id), CP_ENOTFOUND);
}

/* The keep list travels as one JSON array parameter, so the whole cleanup
 * is a single statement however long the list is. */
int sqs_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep, int *deleted)
{
    struct sq_store *s = sq(st);
    if (deleted != NULL)
        *deleted = 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < nkeep; i++)
        json_array_append_new(arr, json_string(keep[i]));
    char *keep_s = cp_json_dump(arr);
    json_decref(arr);
    int rc = CP_EIO;
    struct conn *c = sqlx_conn_get(s);
    if (c == NULL)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "DELETE FROM containers WHERE node_id=?1 AND container_id NOT IN "
           "(SELECT value FROM json_each(?2))");
    if (q != NULL) {
        sqlx_bind_str(q, 1, node_id);
        sqlx_bind_str(q, 2, keep_s);
        rc = sqlx_run(c, q, "containers cleanup");
        if (rc == 0 && deleted != NULL)
            *deleted = sqlite3_changes(c->db);
    }
    sqlx_conn_put(s, c);
out:
    cp_free(keep_s);
    return rc;
}

int sqs_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE containers SET deleted_at=?2, "
                                   "updated_at=?2 WHERE node_id=?1 "
                                   "AND deleted_at=0");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, node_id);
    sqlite3_bind_int64(q, 2, now);
    rc = sqlx_run(c, q, "containers mark deleted");
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out)
{
    void *items;
    int rc =
        sqlx_rows_all(st,
                 "SELECT " CONT_COLS " FROM containers "
                 "WHERE grid_id=?1 AND deleted_at=0 "
                 "AND (?2 IS NULL OR node_id=?2) "
                 "AND (?3 IS NULL OR service_id=?3) ORDER BY name",
                 ARGS(grid_id, nz(node_id), nz(service_id)), read_container,
                 sizeof(*out->items), &items, &out->len, "container list");
    out->items = items;
    if (rc != 0)
        store_container_list_release(out);
    return rc;
}

/* A live container by name; node_id NULL or "" matches any node. */
int sqs_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out)
{
    return sqlx_row_one(st,
                   "SELECT " CONT_COLS " FROM containers WHERE grid_id=?1 "
                   "AND name=?3 AND deleted_at=0 "
                   "AND (?2 IS NULL OR node_id=?2) "
                   "ORDER BY updated_at DESC LIMIT 1",
                   ARGS(grid_id, nz(node_id), name), read_container, out,
                   "container get");
}

/* ==== Logs and events ==== */

int sqs_logs_append(struct store *st, const struct store_log *v, size_t n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q =
        sqlx_prep(c, "INSERT INTO container_logs(grid_id, node_id, service_id, "
                     "container_id, name, type, data, created_at) "
                     "VALUES(?,?,?,?,?,?,?,?)");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < n; i++) {
        sqlx_bind_str(q, 1, v[i].grid_id);
        sqlx_bind_str(q, 2, nz(v[i].node_id));
        sqlx_bind_str(q, 3, nz(v[i].service_id));
        sqlx_bind_str(q, 4, v[i].container_id);
        sqlx_bind_str(q, 5, v[i].name);
        sqlx_bind_str(q, 6, v[i].type);
        sqlx_bind_str(q, 7, v[i].data);
        sqlite3_bind_int64(q, 8, v[i].created_at ? v[i].created_at : now);
        rc = sqlx_run(c, q, "logs append");
        if (rc != 0)
            goto fail;
    }
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqs_events_append(struct store *st, const struct store_event *v, size_t n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char *meta = NULL;
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO event_logs(grid_id, stack_id, service_id, node_id, "
           "severity, type, message, meta, created_at) "
           "VALUES(?,?,?,?,?,?,?,?,?)");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < n; i++) {
        meta = v[i].meta != NULL ? cp_json_dump(v[i].meta) : NULL;
        sqlx_bind_str(q, 1, v[i].grid_id);
        sqlx_bind_str(q, 2, nz(v[i].stack_id));
        sqlx_bind_str(q, 3, nz(v[i].service_id));
        sqlx_bind_str(q, 4, nz(v[i].node_id));
        sqlite3_bind_int(q, 5, v[i].severity);
        sqlx_bind_str(q, 6, v[i].type);
        sqlx_bind_str(q, 7, v[i].message);
        sqlx_bind_str(q, 8, meta);
        sqlite3_bind_int64(q, 9, v[i].created_at ? v[i].created_at : now);
        rc = sqlx_run(c, q, "events append");
        cp_free(meta);
        meta = NULL;
        if (rc != 0)
            goto fail;
    }
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* A history query under construction: SQL text and its text arguments,
 * bound in order. Filters are spelled as plain "col=?" terms (never
 * "? IS NULL OR col=?") so that SQLite can pick the (col, seq) index. */
struct hq {
    char sql[768];
    size_t len;
    const char *args[5];
    int nargs;
};

static void hq_cat(struct hq *h, const char *s)
{
    size_t n = strlen(s);
    assert(h->len + n < sizeof(h->sql));
    memcpy(h->sql + h->len, s, n + 1);
    h->len += n;
}

static void hq_filter(struct hq *h, const char *col, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    assert(h->nargs < (int)CP_ARRAY_LEN(h->args));
    hq_cat(h, " AND ");
    hq_cat(h, col);
    hq_cat(h, "=?");
    h->args[h->nargs++] = value;
}

/* Finishes h for q: after_seq mode reads forward from it; otherwise the
 * newest limit rows (since since_ms) are selected and re-sorted oldest
 * first. The three numbers bind after the text arguments. */
static void hq_finish(struct hq *h, const struct store_log_query *q,
                      struct hq *outer)
{
    if (q->after_seq > 0) {
        hq_cat(h, " AND seq>? ORDER BY seq LIMIT ?");
        memcpy(outer, h, sizeof(*outer));
        return;
    }
    if (q->since_ms > 0)
        hq_cat(h, " AND created_at>=?");
    hq_cat(h, " ORDER BY seq DESC LIMIT ?");
    memset(outer, 0, sizeof(*outer));
    hq_cat(outer, "SELECT * FROM (");
    hq_cat(outer, h->sql);
    hq_cat(outer, ") ORDER BY seq");
    memcpy(outer->args, h->args, sizeof(h->args));
    outer->nargs = h->nargs;
}

static int query_limit(const struct store_log_query *q)
{
    if (q->limit <= 0)
        return LOGS_DEFAULT_LIMIT;
    return q->limit > LOGS_MAX_LIMIT ? LOGS_MAX_LIMIT : q->limit;
}

/* Runs a history query. Its SQL varies with the filters set, so it is
 * prepared per call rather than cached (preparing costs microseconds;
 * reads are not on a hot path). */
static int hq_run(struct store *st, const struct hq *h,
                  const struct store_log_query *lq, sqlx_row_fn *rd, size_t size,
                  void **items, size_t *len, const char *what)
{
    struct sq_store *s = sq(st);
    sqlite3_stmt *q = NULL;
    *items = NULL;
    *len = 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    if (sqlite3_prepare_v2(c->db, h->sql, -1, &q, NULL) != SQLITE_OK) {
        rc = sqlx_fail(c, what);
        goto out;
    }
    int i = 0;
    for (; i < h->nargs; i++)
        sqlx_bind_str(q, i + 1, h->args[i]);
    if (lq->after_seq > 0) {
        sqlite3_bind_int64(q, ++i, lq->after_seq);
    } else if (lq->since_ms > 0) {
        sqlite3_bind_int64(q, ++i, lq->since_ms);
    }
    sqlite3_bind_int(q, ++i, query_limit(lq));
    rc = sqlx_collect(c, q, what, rd, size, items, len);
out:
    sqlite3_finalize(q);
    sqlx_conn_put(s, c);
    return rc;
}

static void read_log(sqlite3_stmt *q, void *item)
{
    struct store_log *l = item;
    memset(l, 0, sizeof(*l));
    l->seq = sqlite3_column_int64(q, 0);
    sqlx_col_fixed(q, 1, l->grid_id, sizeof(l->grid_id));
    sqlx_col_fixed(q, 2, l->node_id, sizeof(l->node_id));
    sqlx_col_fixed(q, 3, l->service_id, sizeof(l->service_id));
    l->container_id = sqlx_col_str(q, 4);
    l->name = sqlx_col_str(q, 5);
    l->type = sqlx_col_str(q, 6);
    l->data = sqlx_col_str(q, 7);
    l->created_at = sqlite3_column_int64(q, 8);
}

int sqs_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out)
{
    struct hq h = {0}, full;
    hq_cat(&h, "SELECT seq, grid_id, node_id, service_id, container_id, "
               "name, type, data, created_at FROM container_logs WHERE 1");
    hq_filter(&h, "grid_id", q->grid_id);
    hq_filter(&h, "service_id", q->service_id);
    hq_filter(&h, "node_id", q->node_id);
    hq_filter(&h, "name", q->container_name);
    if (nz(q->stack_id) != NULL) {
        /* Lines carry no stack: those of the stack's services. */
        assert(h.nargs < (int)CP_ARRAY_LEN(h.args));
        hq_cat(&h, " AND service_id IN (SELECT id FROM grid_services "
                   "WHERE stack_id=?)");
        h.args[h.nargs++] = q->stack_id;
    }
    hq_finish(&h, q, &full);
    void *items;
    int rc = hq_run(st, &full, q, read_log, sizeof(*out->items), &items,
                    &out->len, "logs read");
    out->items = items;
    if (rc != 0)
        store_log_list_release(out);
    return rc;
}

static void read_event(sqlite3_stmt *q, void *item)
{
    struct store_event *e = item;
    memset(e, 0, sizeof(*e));
    e->seq = sqlite3_column_int64(q, 0);
    sqlx_col_fixed(q, 1, e->grid_id, sizeof(e->grid_id));
    sqlx_col_fixed(q, 2, e->stack_id, sizeof(e->stack_id));
    sqlx_col_fixed(q, 3, e->service_id, sizeof(e->service_id));
    sqlx_col_fixed(q, 4, e->node_id, sizeof(e->node_id));
    e->severity = sqlite3_column_int(q, 5);
    e->type = sqlx_col_str(q, 6);
    e->message = sqlx_col_str(q, 7);
    e->meta =
        sqlite3_column_type(q, 8) == SQLITE_NULL ? NULL : sqlx_col_json(q, 8, NULL);
    e->created_at = sqlite3_column_int64(q, 9);
}

/* container_name is not an event column and is ignored here. */
int sqs_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out)
{
    struct hq h = {0}, full;
    hq_cat(&h, "SELECT seq, grid_id, stack_id, service_id, node_id, "
               "severity, type, message, meta, created_at FROM event_logs "
               "WHERE 1");
    hq_filter(&h, "grid_id", q->grid_id);
    hq_filter(&h, "stack_id", q->stack_id);
    hq_filter(&h, "service_id", q->service_id);
    hq_filter(&h, "node_id", q->node_id);
    hq_finish(&h, q, &full);
    void *items;
    int rc = hq_run(st, &full, q, read_event, sizeof(*out->items), &items,
                    &out->len, "events read");
    out->items = items;
    if (rc != 0)
        store_event_list_release(out);
    return rc;
}

/* Deletes every row at or below the seq of the (max+1)-th newest; a
 * negative max leaves that table alone. */
static int trim_table(struct conn *c, sqlite3_stmt *q, int64_t max,
                      const char *what)
{
    if (q == NULL)
        return CP_EIO;
    if (max < 0)
        return 0;
    sqlite3_bind_int64(q, 1, max);
    return sqlx_run(c, q, what);
}

int sqs_history_trim(struct store *st, int64_t max_logs, int64_t max_events)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    rc = trim_table(c,
                    sqlx_prep(c, "DELETE FROM container_logs WHERE seq<="
                                 "(SELECT seq FROM container_logs "
                                 "ORDER BY seq DESC LIMIT 1 OFFSET ?)"),
                    max_logs, "logs trim");
    if (rc == 0)
        rc = trim_table(c,
                        sqlx_prep(c, "DELETE FROM event_logs WHERE seq<="
                                     "(SELECT seq FROM event_logs "
                                     "ORDER BY seq DESC LIMIT 1 OFFSET ?)"),
                        max_events, "events trim");
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}
