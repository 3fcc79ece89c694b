/* SQLite backend: stacks, their immutable revisions and stack jobs
 * (deploys and removals, spec 5.5).
 *
 * Reads of stacks join the newest revision (stacks.revision) and compute
 * is_deploying in the same statement, so a list is one query whatever the
 * number of stacks (issue #2234). Creating and revising a stack write the
 * stack, its revision and its new services in one transaction.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

static const char *nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ==== Stacks ==== */

/* Stack columns, the open-deploy flag and the newest revision's columns.
 * Adding a column: also update read_stack_at, read_rev_at and the
 * NCOLS. */
#define STACK_COLS                                                             \
    "k.id, k.grid_id, k.name, k.labels, k.parent_name, k.revision, "           \
    "k.removing, k.created_at, k.updated_at, "                                 \
    "(EXISTS (SELECT 1 FROM stack_deploys d WHERE d.stack_id=k.id AND "        \
    "d.action='deploy' AND d.state IN ('created', 'ongoing')) OR "             \
    "EXISTS (SELECT 1 FROM grid_service_deploys sd JOIN grid_services v "      \
    "ON v.id=sd.service_id WHERE v.stack_id=k.id AND "                         \
    "sd.state IN ('created', 'ongoing')))"
#define STACK_NCOLS 10
#define REV_COLS(p)                                                            \
    p ".id, " p ".stack_id, " p ".revision, " p ".stack, " p ".version, " p    \
      ".registry, " p ".source, " p ".expose, " p ".variables, " p             \
      ".services, " p ".volumes, " p ".metadata, " p ".created_at"
#define STACK_FROM                                                             \
    " FROM stacks k LEFT JOIN stack_revisions r ON r.stack_id=k.id AND "       \
    "r.revision=k.revision "

static void read_stack_at(sqlite3_stmt *q, int o, struct store_stack *k)
{
    memset(k, 0, sizeof(*k));
    sqlx_col_fixed(q, o + 0, k->id, sizeof(k->id));
    sqlx_col_fixed(q, o + 1, k->grid_id, sizeof(k->grid_id));
    k->name = sqlx_col_str(q, o + 2);
    k->labels = sqlx_col_json(q, o + 3, json_array());
    k->parent_name = sqlx_col_str(q, o + 4);
    k->revision = sqlite3_column_int64(q, o + 5);
    k->removing = sqlite3_column_int(q, o + 6) != 0;
    k->created_at = sqlite3_column_int64(q, o + 7);
    k->updated_at = sqlite3_column_int64(q, o + 8);
    k->is_deploying = sqlite3_column_int(q, o + 9) != 0;
}

/* A revision's columns at o; a LEFT JOIN miss (NULL id) leaves r empty
 * with empty JSON values. */
static void read_rev_at(sqlite3_stmt *q, int o, struct store_stack_revision *r)
{
    memset(r, 0, sizeof(*r));
    sqlx_col_fixed(q, o + 0, r->id, sizeof(r->id));
    sqlx_col_fixed(q, o + 1, r->stack_id, sizeof(r->stack_id));
    r->revision = sqlite3_column_int64(q, o + 2);
    r->stack = sqlx_col_str(q, o + 3);
    r->version = sqlx_col_str(q, o + 4);
    r->registry = sqlx_col_str(q, o + 5);
    r->source = sqlx_col_str(q, o + 6);
    r->expose = sqlx_col_str(q, o + 7);
    r->variables = sqlx_col_json(q, o + 8, json_object());
    r->services = sqlx_col_json(q, o + 9, json_array());
    r->volumes = sqlx_col_json(q, o + 10, json_array());
    r->metadata = sqlx_col_json(q, o + 11, json_object());
    r->created_at = sqlite3_column_int64(q, o + 12);
}

static void read_rev(sqlite3_stmt *q, void *item)
{
    read_rev_at(q, 0, item);
}

/* A stack with its revision, for sqlx_row_in / sqlx_collect. */
struct stack_pair {
    struct store_stack k;
    struct store_stack_revision r;
};

static void read_pair(sqlite3_stmt *q, void *item)
{
    struct stack_pair *p = item;
    read_stack_at(q, 0, &p->k);
    read_rev_at(q, STACK_NCOLS, &p->r);
}

static int insert_rev(struct conn *c, const char *stack_id,
                      const struct store_stack_revision *r, int64_t now)
{
    char *vars = sqlx_dump_or(r->variables, "{}");
    char *svcs = sqlx_dump_or(r->services, "[]");
    char *vols = sqlx_dump_or(r->volumes, "[]");
    char *meta = sqlx_dump_or(r->metadata, "{}");
    char id[STORE_ID_LEN + 1];
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO stack_revisions(id, stack_id, revision, stack, "
           "version, registry, source, expose, variables, services, volumes,"
           " metadata, created_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
           "?12,?13)");
    if (q == NULL)
        goto out;
    if (r->id[0] != '\0')
        memcpy(id, r->id, sizeof(id));
    else
        store_new_id(id);
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, stack_id);
    sqlite3_bind_int64(q, 3, r->revision);
    sqlx_bind_str(q, 4, r->stack);
    sqlx_bind_str(q, 5, r->version);
    sqlx_bind_str(q, 6, r->registry);
    sqlx_bind_str(q, 7, r->source);
    sqlx_bind_str(q, 8, r->expose);
    sqlx_bind_str(q, 9, vars);
    sqlx_bind_str(q, 10, svcs);
    sqlx_bind_str(q, 11, vols);
    sqlx_bind_str(q, 12, meta);
    sqlite3_bind_int64(q, 13, r->created_at ? r->created_at : now);
    rc = sqlx_run(c, q, "stack revision insert");
out:
    cp_free(vars);
    cp_free(svcs);
    cp_free(vols);
    cp_free(meta);
    return rc;
}

/* Inserts service v into stack stack_id of grid_id; a name the stack
 * already has is left alone (skip_existing) or CP_ECONFLICT. */
static int insert_service(struct conn *c, const char *grid_id,
                          const char *stack_id, const struct store_service *v,
                          bool skip_existing, int64_t now)
{
    char *spec = sqlx_dump_or(v->spec, "{}");
    char id[STORE_ID_LEN + 1];
    static const char plain[] =
        "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, "
        "revision, stack_revision, state, created_at, updated_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?9)";
    static const char skip[] =
        "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, "
        "revision, stack_revision, state, created_at, updated_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?9) "
        "ON CONFLICT(stack_id, name) DO NOTHING";
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, skip_existing ? skip : plain);
    if (q == NULL)
        goto out;
    if (v->id[0] != '\0')
        memcpy(id, v->id, sizeof(id));
    else
        store_new_id(id);
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, grid_id);
    sqlx_bind_str(q, 3, stack_id);
    sqlx_bind_str(q, 4, v->name);
    sqlx_bind_str(q, 5, spec);
    sqlite3_bind_int64(q, 6, v->revision > 0 ? v->revision : 1);
    sqlite3_bind_int64(q, 7, v->stack_revision);
    sqlx_bind_str(q, 8, v->state != NULL ? v->state : "initialized");
    sqlite3_bind_int64(q, 9, v->created_at ? v->created_at : now);
    rc = sqlx_run(c, q, "stack service insert");
out:
    cp_free(spec);
    return rc;
}

int sqk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int64_t now = k->created_at ? k->created_at : cp_now_ms();
    char *labels = sqlx_dump_or(k->labels, "[]");
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO stacks(id, grid_id, name, labels, parent_name, "
           "revision, removing, created_at, updated_at) "
           "VALUES(?1,?2,?3,?4,?5,?6,0,?7,?7)");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, k->id);
    sqlx_bind_str(q, 2, k->grid_id);
    sqlx_bind_str(q, 3, k->name);
    sqlx_bind_str(q, 4, labels);
    sqlx_bind_str(q, 5, nz(k->parent_name));
    sqlite3_bind_int64(q, 6, r->revision);
    sqlite3_bind_int64(q, 7, now);
    if ((rc = sqlx_run(c, q, "stack insert")) != 0)
        goto fail;
    if ((rc = insert_rev(c, k->id, r, now)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        rc = insert_service(c, k->grid_id, k->id, &svcs[i], false, now);
        if (rc != 0)
            goto fail;
    }
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
fail:
    sqlx_tx_rollback(c);
out:
    cp_free(labels);
    sqlx_conn_put(s, c);
    return rc;
}

int sqk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev)
{
    struct stack_pair p;
    int rc = sqlx_row_one(st,
                          "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM
                          "WHERE k.grid_id=?1 AND k.name=?2",
                          ARGS(grid_id, name), read_pair, &p, "stack get");
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        if (rev != NULL)
            memset(rev, 0, sizeof(*rev));
        return rc;
    }
    *out = p.k;
    if (rev != NULL)
        *rev = p.r;
    else
        store_stack_revision_release(&p.r);
    return 0;
}

int sqk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev)
{
    struct stack_pair p;
    int rc = sqlx_row_one(
        st, "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM "WHERE k.id=?1",
        ARGS(id), read_pair, &p, "stack get");
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        if (rev != NULL)
            memset(rev, 0, sizeof(*rev));
        return rc;
    }
    *out = p.k;
    if (rev != NULL)
        *rev = p.r;
    else
        store_stack_revision_release(&p.r);
    return 0;
}

int sqk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out)
{
    void *items = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    int rc = sqlx_rows_all(st,
                           "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM
                           "WHERE k.grid_id=?1 ORDER BY k.name",
                           ARGS(grid_id), read_pair, sizeof(struct stack_pair),
                           &items, &len, "stack list");
    struct stack_pair *pairs = items;
    out->stacks = cp_calloc(len + 1, sizeof(*out->stacks));
    out->revs = cp_calloc(len + 1, sizeof(*out->revs));
    for (size_t i = 0; i < len; i++) {
        out->stacks[i] = pairs[i].k;
        out->revs[i] = pairs[i].r;
    }
    out->len = len;
    cp_free(pairs);
    if (rc != 0)
        store_stack_list_release(out);
    return rc;
}

int sqk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision, struct store_stack_revision *out)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", (long long)revision);
    return sqlx_row_one(
        st,
        "SELECT " REV_COLS("r") " FROM stack_revisions r "
                                "WHERE r.stack_id=?1 AND r.revision=CAST(?2 AS "
                                "INTEGER)",
        ARGS(stack_id, num), read_rev, out, "stack revision");
}

int sqk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int64_t now = cp_now_ms();
    char grid_id[STORE_ID_LEN + 1] = "";
    if (r->revision != expect + 1) {
        sqlx_conn_put(s, c);
        return CP_EINVAL;
    }
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE stacks SET revision=?3, "
                                   "updated_at=?4 WHERE id=?1 AND revision=?2 "
                                   "RETURNING grid_id");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, stack_id);
    sqlite3_bind_int64(q, 2, expect);
    sqlite3_bind_int64(q, 3, r->revision);
    sqlite3_bind_int64(q, 4, now);
    rc = sqlx_step(c, q, "stack revise");
    if (rc == 1)
        sqlx_col_fixed(q, 0, grid_id, sizeof(grid_id));
    sqlx_done(q);
    if (rc == 0) {
        /* Nothing updated: no such stack, or it moved on. */
        q = sqlx_prep(c, "SELECT 1 FROM stacks WHERE id=?");
        if (q == NULL) {
            rc = CP_EIO;
            goto fail;
        }
        sqlx_bind_str(q, 1, stack_id);
        rc = sqlx_step(c, q, "stack exists");
        sqlx_done(q);
        rc = rc == 1 ? CP_ECONFLICT : rc == 0 ? CP_ENOTFOUND : rc;
        goto fail;
    }
    if (rc < 0)
        goto fail;
    if ((rc = insert_rev(c, stack_id, r, now)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        rc = insert_service(c, grid_id, stack_id, &svcs[i], true, now);
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

int sqk_stack_update(struct store *st, const struct store_stack *k)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char *labels = sqlx_dump_or(k->labels, "[]");
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE stacks SET labels=?2, "
                                   "parent_name=?3, removing=?4, "
                                   "updated_at=?5 WHERE id=?1");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, k->id);
    sqlx_bind_str(q, 2, labels);
    sqlx_bind_str(q, 3, nz(k->parent_name));
    sqlite3_bind_int(q, 4, k->removing ? 1 : 0);
    sqlite3_bind_int64(q, 5, k->updated_at ? k->updated_at : cp_now_ms());
    rc = sqlx_run(c, q, "stack update");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    cp_free(labels);
    sqlx_conn_put(s, c);
    return rc;
}

int sqk_stack_delete(struct store *st, const char *id)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q =
        sqlx_prep(c, "SELECT 1 FROM grid_services WHERE stack_id=? LIMIT 1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, id);
    rc = sqlx_step(c, q, "stack services");
    sqlx_done(q);
    if (rc == 1)
        rc = CP_ECONFLICT;
    if (rc != 0)
        goto fail;
    /* The null stack is the grid's; it goes only with the grid. */
    q = sqlx_prep(c, "DELETE FROM stacks WHERE id=? AND name<>'null'");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, id);
    if ((rc = sqlx_run(c, q, "stack delete")) != 0)
        goto fail;
    if (sqlite3_changes(c->db) == 0) {
        rc = CP_ENOTFOUND;
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

/* ==== Stack jobs ==== */

/* Adding a column: also update read_job. */
#define JOB_COLS                                                               \
    "j.id, j.stack_id, j.action, j.revision, j.state, j.reason, "              \
    "j.service_deploys, j.claimed_by, j.lease_until, j.created_at, "           \
    "j.started_at, j.finished_at"

static void read_job(sqlite3_stmt *q, void *item)
{
    struct store_stack_deploy *d = item;
    memset(d, 0, sizeof(*d));
    sqlx_col_fixed(q, 0, d->id, sizeof(d->id));
    sqlx_col_fixed(q, 1, d->stack_id, sizeof(d->stack_id));
    d->action = sqlx_col_str(q, 2);
    d->revision = sqlite3_column_int64(q, 3);
    d->state = sqlx_col_str(q, 4);
    d->reason = sqlx_col_str(q, 5);
    d->service_deploys = sqlx_col_json(q, 6, json_array());
    d->claimed_by = sqlx_col_str(q, 7);
    d->lease_until = sqlite3_column_int64(q, 8);
    d->created_at = sqlite3_column_int64(q, 9);
    d->started_at = sqlite3_column_int64(q, 10);
    d->finished_at = sqlite3_column_int64(q, 11);
}

static const char job_by_id[] =
    "SELECT " JOB_COLS " FROM stack_deploys j WHERE j.id=?";

int sqk_stack_deploy_queue(struct store *st, const struct store_stack_deploy *d,
                           struct store_stack_deploy *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    const char *action = d->action != NULL ? d->action : "deploy";
    char id[STORE_ID_LEN + 1] = "";
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "SELECT id FROM stack_deploys WHERE stack_id=? AND action=? AND "
           "state='created' ORDER BY created_at, rowid LIMIT 1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, d->stack_id);
    sqlx_bind_str(q, 2, action);
    rc = sqlx_step(c, q, "stack deploy queued");
    if (rc == 1)
        sqlx_col_fixed(q, 0, id, sizeof(id));
    sqlx_done(q);
    if (rc < 0)
        goto fail;
    if (rc == 0) {
        if (d->id[0] != '\0')
            memcpy(id, d->id, sizeof(id));
        else
            store_new_id(id);
        q = sqlx_prep(c, "INSERT INTO stack_deploys(id, stack_id, action, "
                         "state, created_at) VALUES(?1,?2,?3,'created',?4)");
        if (q == NULL) {
            rc = CP_EIO;
            goto fail;
        }
        sqlx_bind_str(q, 1, id);
        sqlx_bind_str(q, 2, d->stack_id);
        sqlx_bind_str(q, 3, action);
        sqlite3_bind_int64(q, 4, d->created_at ? d->created_at : cp_now_ms());
        if ((rc = sqlx_run(c, q, "stack deploy insert")) != 0)
            goto fail;
    }
    if (strcmp(action, "remove") == 0) {
        q = sqlx_prep(c, "UPDATE stacks SET removing=1 WHERE id=?");
        if (q == NULL) {
            rc = CP_EIO;
            goto fail;
        }
        sqlx_bind_str(q, 1, d->stack_id);
        if ((rc = sqlx_run(c, q, "stack removing")) != 0)
            goto fail;
    }
    rc = sqlx_row_in(c, job_by_id, ARGS(id), read_job, out, "stack deploy");
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
    store_stack_deploy_release(out);
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out)
{
    return sqlx_row_one(st, job_by_id, ARGS(id), read_job, out,
                        "stack deploy get");
}

/* Candidates, oldest first: ongoing jobs whose lease expired (their
 * master died or stopped; taken over before anything else, so a stack
 * never gets a second ongoing job beside an expired one), then queued
 * jobs of stacks without an ongoing job under a live lease. */
int sqk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char id[STORE_ID_LEN + 1] = "";
    memset(out, 0, sizeof(*out));
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "SELECT j.id FROM stack_deploys j "
           "WHERE (j.state='ongoing' AND j.lease_until<=?1) OR "
           "(j.state='created' AND NOT EXISTS (SELECT 1 FROM stack_deploys o"
           " WHERE o.stack_id=j.stack_id AND o.state='ongoing')) "
           "ORDER BY j.state='ongoing' DESC, j.created_at, j.rowid LIMIT 1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int64(q, 1, now);
    rc = sqlx_step(c, q, "stack deploy claim");
    if (rc == 1)
        sqlx_col_fixed(q, 0, id, sizeof(id));
    sqlx_done(q);
    if (rc == 0)
        rc = CP_ENOTFOUND;
    if (rc < 0)
        goto fail;
    q = sqlx_prep(c, "UPDATE stack_deploys SET state='ongoing', "
                     "claimed_by=?2, lease_until=?3, started_at=CASE WHEN "
                     "started_at=0 THEN ?4 ELSE started_at END WHERE id=?1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, holder);
    sqlite3_bind_int64(q, 3, now + lease_ms);
    sqlite3_bind_int64(q, 4, now);
    if ((rc = sqlx_run(c, q, "stack deploy claim")) != 0)
        goto fail;
    rc = sqlx_row_in(c, job_by_id, ARGS(id), read_job, out, "stack deploy");
    if (rc != 0)
        goto fail;
    rc = sqlx_tx_commit(c);
    if (rc == 0)
        goto out;
    store_stack_deploy_release(out);
fail:
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Fenced on claimed_by. A NULL state or service_deploys keeps the stored
 * one. */
int sqk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char *sds =
        d->service_deploys != NULL ? cp_json_dump(d->service_deploys) : NULL;
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE stack_deploys SET revision=?3, state=COALESCE(?4, state), "
           "reason=?5, service_deploys=COALESCE(?6, service_deploys), "
           "lease_until=?7, finished_at=?8 WHERE id=?1 AND claimed_by IS ?2");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, d->id);
    sqlx_bind_str(q, 2, d->claimed_by);
    sqlite3_bind_int64(q, 3, d->revision);
    sqlx_bind_str(q, 4, d->state);
    sqlx_bind_str(q, 5, d->reason);
    sqlx_bind_str(q, 6, sds);
    sqlite3_bind_int64(q, 7, d->lease_until);
    sqlite3_bind_int64(q, 8, d->finished_at);
    rc = sqlx_run(c, q, "stack deploy update");
    if (rc != 0 || sqlite3_changes(c->db) > 0)
        goto out;
    q = sqlx_prep(c, "SELECT 1 FROM stack_deploys WHERE id=?");
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    sqlx_bind_str(q, 1, d->id);
    rc = sqlx_step(c, q, "stack deploy exists");
    sqlx_done(q);
    rc = rc == 1 ? CP_ECONFLICT : rc == 0 ? CP_ENOTFOUND : rc;
out:
    cp_free(sds);
    sqlx_conn_put(s, c);
    return rc;
}

int sqk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out)
{
    char lim[24];
    snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : -1);
    void *items = NULL;
    memset(out, 0, sizeof(*out));
    int rc = sqlx_rows_all(
        st,
        "SELECT " JOB_COLS " FROM stack_deploys j JOIN stacks k ON "
        "k.id=j.stack_id WHERE k.grid_id=?1 AND (?2 IS NULL OR "
        "j.stack_id=?2) AND (?3 IS NULL OR j.state IN ('created', "
        "'ongoing')) ORDER BY j.created_at DESC, j.rowid DESC "
        "LIMIT CAST(?4 AS INTEGER)",
        ARGS(grid_id, nz(stack_id), open_only ? "1" : NULL, lim), read_job,
        sizeof(*out->items), &items, &out->len, "stack deploy list");
    out->items = items;
    if (rc != 0)
        store_stack_deploy_list_release(out);
    return rc;
}

int sqk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out)
{
    void *items = NULL;
    memset(out, 0, sizeof(*out));
    int rc = sqlx_rows_all(
        st,
        "SELECT " SQS_DEPLOY_COLS " FROM grid_service_deploys WHERE "
        "stack_deploy_id=? ORDER BY created_at, rowid",
        ARGS(stack_deploy_id), sqs_read_deploy, sizeof(*out->items), &items,
        &out->len, "stack deploy services");
    out->items = items;
    if (rc != 0)
        store_deploy_list_release(out);
    return rc;
}

/* Finished = neither queued nor ongoing. One statement, so atomic. */
int sqk_stack_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct sq_store *s = sq(st);
    if (deleted != NULL)
        *deleted = 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "DELETE FROM stack_deploys WHERE id IN (SELECT id FROM "
           "(SELECT id, ROW_NUMBER() OVER (PARTITION BY stack_id "
           "ORDER BY created_at DESC, rowid DESC) AS n FROM stack_deploys "
           "WHERE state NOT IN ('created', 'ongoing')) WHERE n>?)");
    if (q == NULL)
        goto out;
    sqlite3_bind_int(q, 1, keep > 0 ? keep : 0);
    rc = sqlx_run(c, q, "stack deploys prune");
    if (rc == 0 && deleted != NULL)
        *deleted = sqlite3_changes(c->db);
out:
    sqlx_conn_put(s, c);
    return rc;
}
