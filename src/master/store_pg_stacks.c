/* PostgreSQL backend: stacks, their immutable revisions and stack jobs
 * (deploys and removals, spec 5.5), with the semantics and error codes of
 * store_sqlite_stacks.c.
 *
 * Reads of stacks join the newest revision (stacks.revision) and compute
 * is_deploying in the same statement, so a list is one query whatever the
 * number of stacks (issue #2234). Creating and revising a stack write the
 * stack, its revision and its new services in one transaction; a revision
 * is a compare-and-set on stacks.revision (a concurrent reviser's UPDATE
 * waits on the row and then matches nothing).
 *
 * The job queue's rules span rows ("one queued job per stack and
 * action", "one ongoing job per stack"), so stack_deploy_queue and
 * stack_deploy_claim take a transaction-level advisory lock of their own
 * (PG_STACK_DEPLOY_LOCK), as the service deploy queue does; writes of a
 * claimed job are fenced on claimed_by by a conditional UPDATE.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

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

static void read_stack_at(const PGresult *r, int i, int o,
                          struct store_stack *k)
{
    memset(k, 0, sizeof(*k));
    pgr_fixed(r, i, o + 0, k->id, sizeof(k->id));
    pgr_fixed(r, i, o + 1, k->grid_id, sizeof(k->grid_id));
    k->name = pgr_str(r, i, o + 2);
    k->labels = pgr_json(r, i, o + 3, json_array());
    k->parent_name = pgr_str(r, i, o + 4);
    k->revision = pgr_i64(r, i, o + 5);
    k->removing = pgr_bool(r, i, o + 6);
    k->created_at = pgr_i64(r, i, o + 7);
    k->updated_at = pgr_i64(r, i, o + 8);
    k->is_deploying = pgr_bool(r, i, o + 9);
}

/* A revision's columns at o; a LEFT JOIN miss (NULL id) leaves rv empty
 * with empty JSON values. */
static void read_rev_at(const PGresult *r, int i, int o,
                        struct store_stack_revision *rv)
{
    memset(rv, 0, sizeof(*rv));
    pgr_fixed(r, i, o + 0, rv->id, sizeof(rv->id));
    pgr_fixed(r, i, o + 1, rv->stack_id, sizeof(rv->stack_id));
    rv->revision = pgr_i64(r, i, o + 2);
    rv->stack = pgr_str(r, i, o + 3);
    rv->version = pgr_str(r, i, o + 4);
    rv->registry = pgr_str(r, i, o + 5);
    rv->source = pgr_str(r, i, o + 6);
    rv->expose = pgr_str(r, i, o + 7);
    rv->variables = pgr_json(r, i, o + 8, json_object());
    rv->services = pgr_json(r, i, o + 9, json_array());
    rv->volumes = pgr_json(r, i, o + 10, json_array());
    rv->metadata = pgr_json(r, i, o + 11, json_object());
    rv->created_at = pgr_i64(r, i, o + 12);
}

static void read_rev(const PGresult *r, int i, void *item)
{
    read_rev_at(r, i, 0, item);
}

/* A stack with its revision, for pg_row_one / pg_rows_all. */
struct stack_pair {
    struct store_stack k;
    struct store_stack_revision r;
};

static void read_pair(const PGresult *r, int i, void *item)
{
    struct stack_pair *p = item;
    read_stack_at(r, i, 0, &p->k);
    read_rev_at(r, i, STACK_NCOLS, &p->r);
}

static void read_id(const PGresult *r, int i, void *item)
{
    pgr_fixed(r, i, 0, item, STORE_ID_LEN + 1);
}

static void read_flag(const PGresult *r, int i, void *item)
{
    *(bool *)item = pgr_bool(r, i, 0);
}

static int insert_rev(struct pgc *c, const char *stack_id,
                      const struct store_stack_revision *r, int64_t now)
{
    char *vars = pg_dump_or(r->variables, "{}");
    char *svcs = pg_dump_or(r->services, "[]");
    char *vols = pg_dump_or(r->volumes, "[]");
    char *meta = pg_dump_or(r->metadata, "{}");
    char id[STORE_ID_LEN + 1];
    if (r->id[0] != '\0')
        memcpy(id, r->id, sizeof(id));
    else
        store_new_id(id);
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, stack_id);
    pgp_i(&p, r->revision);
    pgp_s(&p, r->stack);
    pgp_s(&p, r->version);
    pgp_s(&p, r->registry);
    pgp_s(&p, r->source);
    pgp_s(&p, r->expose);
    pgp_s(&p, vars);
    pgp_s(&p, svcs);
    pgp_s(&p, vols);
    pgp_s(&p, meta);
    pgp_i(&p, r->created_at ? r->created_at : now);
    int rc = pgx_run(c,
                     "INSERT INTO stack_revisions(id, stack_id, revision, "
                     "stack, version, registry, source, expose, variables, "
                     "services, volumes, metadata, created_at) VALUES($1, "
                     "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                     &p, "stack revision insert", NULL);
    cp_free(vars);
    cp_free(svcs);
    cp_free(vols);
    cp_free(meta);
    return rc;
}

static const char svc_insert[] =
    "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, revision, "
    "stack_revision, state, created_at, updated_at) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
static const char svc_insert_skip[] =
    "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, revision, "
    "stack_revision, state, created_at, updated_at) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) "
    "ON CONFLICT(stack_id, name) DO NOTHING";

/* Inserts service v into stack stack_id of grid_id; a name the stack
 * already has is left alone (skip_existing) or CP_ECONFLICT. */
static int insert_service(struct pgc *c, const char *grid_id,
                          const char *stack_id, const struct store_service *v,
                          bool skip_existing, int64_t now)
{
    char *spec = pg_dump_or(v->spec, "{}");
    char id[STORE_ID_LEN + 1];
    if (v->id[0] != '\0')
        memcpy(id, v->id, sizeof(id));
    else
        store_new_id(id);
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, grid_id);
    pgp_s(&p, stack_id);
    pgp_s(&p, v->name);
    pgp_s(&p, spec);
    pgp_i(&p, v->revision > 0 ? v->revision : 1);
    pgp_i(&p, v->stack_revision);
    pgp_s(&p, v->state != NULL ? v->state : "initialized");
    pgp_i(&p, v->created_at ? v->created_at : now);
    int rc = pgx_run(c, skip_existing ? svc_insert_skip : svc_insert, &p,
                     "stack service insert", NULL);
    cp_free(spec);
    return rc;
}

struct create_ctx {
    const struct store_stack *k;
    const struct store_stack_revision *r;
    const struct store_service *svcs;
    size_t n;
};

static int create_fn(struct pgc *c, void *ctx)
{
    struct create_ctx *x = ctx;
    const struct store_stack *k = x->k;
    int64_t now = k->created_at ? k->created_at : cp_now_ms();
    char *labels = pg_dump_or(k->labels, "[]");
    struct pgp p = {0};
    pgp_s(&p, k->id);
    pgp_s(&p, k->grid_id);
    pgp_s(&p, k->name);
    pgp_s(&p, labels);
    pgp_s(&p, pg_nz(k->parent_name));
    pgp_i(&p, x->r->revision);
    pgp_i(&p, now);
    int rc = pgx_run(c,
                     "INSERT INTO stacks(id, grid_id, name, labels, "
                     "parent_name, revision, removing, created_at, "
                     "updated_at) VALUES($1, $2, $3, $4, $5, $6, false, $7, "
                     "$7)",
                     &p, "stack insert", NULL);
    cp_free(labels);
    if (rc == 0)
        rc = insert_rev(c, k->id, x->r, now);
    for (size_t i = 0; rc == 0 && i < x->n; i++)
        rc = insert_service(c, k->grid_id, k->id, &x->svcs[i], false, now);
    return rc;
}

int pgk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    struct create_ctx x = {k, r, svcs, n};
    return pg_tx(st, create_fn, &x);
}

/* Moves p into out and rev (or releases its revision), or empties both
 * when rc is an error. */
static int pair_out(int rc, struct stack_pair *p, struct store_stack *out,
                    struct store_stack_revision *rev)
{
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        if (rev != NULL)
            memset(rev, 0, sizeof(*rev));
        return rc;
    }
    *out = p->k;
    if (rev != NULL)
        *rev = p->r;
    else
        store_stack_revision_release(&p->r);
    return 0;
}

int pgk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev)
{
    struct stack_pair p;
    memset(&p, 0, sizeof(p));
    struct pgp q = {0};
    pgp_s(&q, grid_id);
    pgp_s(&q, name);
    int rc = pg_row_one(st,
                        "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM
                        "WHERE k.grid_id=$1 AND k.name=$2",
                        &q, read_pair, &p, "stack get");
    return pair_out(rc, &p, out, rev);
}

int pgk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev)
{
    struct stack_pair p;
    memset(&p, 0, sizeof(p));
    struct pgp q = {0};
    pgp_s(&q, id);
    int rc = pg_row_one(
        st, "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM "WHERE k.id=$1",
        &q, read_pair, &p, "stack get");
    return pair_out(rc, &p, out, rev);
}

int pgk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out)
{
    void *items = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    struct pgp q = {0};
    pgp_s(&q, grid_id);
    int rc = pg_rows_all(st,
                         "SELECT " STACK_COLS ", " REV_COLS("r") STACK_FROM
                         "WHERE k.grid_id=$1 ORDER BY k.name COLLATE \"C\"",
                         &q, read_pair, sizeof(struct stack_pair), &items, &len,
                         "stack list");
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

int pgk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision, struct store_stack_revision *out)
{
    struct pgp q = {0};
    pgp_s(&q, stack_id);
    pgp_i(&q, revision);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st,
                      "SELECT " REV_COLS("r") " FROM stack_revisions r "
                                              "WHERE r.stack_id=$1 AND "
                                              "r.revision=$2",
                      &q, read_rev, out, "stack revision");
}

struct revise_ctx {
    const char *stack_id;
    int64_t expect;
    const struct store_stack_revision *r;
    const struct store_service *svcs;
    size_t n;
};

static int revise_fn(struct pgc *c, void *ctx)
{
    struct revise_ctx *x = ctx;
    int64_t now = cp_now_ms();
    char grid_id[STORE_ID_LEN + 1] = "";
    struct pgp p = {0};
    pgp_s(&p, x->stack_id);
    pgp_i(&p, x->expect);
    pgp_i(&p, x->r->revision);
    pgp_i(&p, now);
    int rc = pgx_row_in(c,
                        "UPDATE stacks SET revision=$3, updated_at=$4 "
                        "WHERE id=$1 AND revision=$2 RETURNING grid_id",
                        &p, read_id, grid_id, "stack revise");
    if (rc == CP_ENOTFOUND) {
        /* Nothing updated: no such stack, or it moved on. */
        bool found = false;
        struct pgp e = {0};
        pgp_s(&e, x->stack_id);
        rc = pgx_row_in(c, "SELECT true FROM stacks WHERE id=$1", &e, read_flag,
                        &found, "stack exists");
        return rc == 0 ? CP_ECONFLICT : rc;
    }
    if (rc == 0)
        rc = insert_rev(c, x->stack_id, x->r, now);
    for (size_t i = 0; rc == 0 && i < x->n; i++)
        rc = insert_service(c, grid_id, x->stack_id, &x->svcs[i], true, now);
    return rc;
}

int pgk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    if (r->revision != expect + 1)
        return CP_EINVAL;
    struct revise_ctx x = {stack_id, expect, r, svcs, n};
    return pg_tx(st, revise_fn, &x);
}

int pgk_stack_update(struct store *st, const struct store_stack *k)
{
    char *labels = pg_dump_or(k->labels, "[]");
    struct pgp p = {0};
    pgp_s(&p, k->id);
    pgp_s(&p, labels);
    pgp_s(&p, pg_nz(k->parent_name));
    pgp_b(&p, k->removing);
    pgp_i(&p, k->updated_at ? k->updated_at : cp_now_ms());
    int rc = pg_write_row(st,
                          "UPDATE stacks SET labels=$2, parent_name=$3, "
                          "removing=$4, updated_at=$5 WHERE id=$1",
                          &p, CP_ENOTFOUND, "stack update");
    cp_free(labels);
    return rc;
}

/* The stack row is locked first: a service being added to it (whose
 * foreign key check shares that lock) either committed before and is
 * seen here, or waits and then finds the stack gone; the cascade never
 * takes a service along. */
static int delete_fn(struct pgc *c, void *ctx)
{
    const char *id = ctx;
    bool is_null = false;
    struct pgp p = {0};
    pgp_s(&p, id);
    int rc = pgx_row_in(c,
                        "SELECT name='null' FROM stacks WHERE id=$1 "
                        "FOR UPDATE",
                        &p, read_flag, &is_null, "stack lock");
    if (rc != 0)
        return rc;
    bool any = false;
    rc = pgx_row_in(c,
                    "SELECT true FROM grid_services WHERE stack_id=$1 "
                    "LIMIT 1",
                    &p, read_flag, &any, "stack services");
    if (rc == 0)
        return CP_ECONFLICT;
    if (rc != CP_ENOTFOUND)
        return rc;
    /* The null stack is the grid's; it goes only with the grid. */
    if (is_null)
        return CP_ENOTFOUND;
    return pgx_run(c, "DELETE FROM stacks WHERE id=$1", &p, "stack delete",
                   NULL);
}

int pgk_stack_delete(struct store *st, const char *id)
{
    return pg_tx(st, delete_fn, (void *)(uintptr_t)id);
}

/* ==== Stack jobs ==== */

/* Adding a column: also update read_job. */
#define JOB_COLS                                                               \
    "j.id, j.stack_id, j.action, j.revision, j.state, j.reason, "              \
    "j.service_deploys, j.claimed_by, j.lease_until, j.created_at, "           \
    "j.started_at, j.finished_at"

static void read_job(const PGresult *r, int i, void *item)
{
    struct store_stack_deploy *d = item;
    memset(d, 0, sizeof(*d));
    pgr_fixed(r, i, 0, d->id, sizeof(d->id));
    pgr_fixed(r, i, 1, d->stack_id, sizeof(d->stack_id));
    d->action = pgr_str(r, i, 2);
    d->revision = pgr_i64(r, i, 3);
    d->state = pgr_str(r, i, 4);
    d->reason = pgr_str(r, i, 5);
    d->service_deploys = pgr_json(r, i, 6, json_array());
    d->claimed_by = pgr_str(r, i, 7);
    d->lease_until = pgr_i64(r, i, 8);
    d->created_at = pgr_i64(r, i, 9);
    d->started_at = pgr_i64(r, i, 10);
    d->finished_at = pgr_i64(r, i, 11);
}

static const char job_by_id[] =
    "SELECT " JOB_COLS " FROM stack_deploys j WHERE j.id=$1";

static int job_lock(struct pgc *c)
{
    struct pgp p = {0};
    pgp_i(&p, PG_STACK_DEPLOY_LOCK);
    return pgx_run(c, "SELECT pg_advisory_xact_lock($1::bigint)", &p,
                   "stack deploy lock", NULL);
}

static int job_read_back(struct pgc *c, const char *id,
                         struct store_stack_deploy *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    return pgx_row_in(c, job_by_id, &p, read_job, out, "stack deploy");
}

struct queue_ctx {
    const struct store_stack_deploy *d;
    struct store_stack_deploy *out;
};

static int queue_fn(struct pgc *c, void *ctx)
{
    struct queue_ctx *x = ctx;
    const struct store_stack_deploy *d = x->d;
    const char *action = d->action != NULL ? d->action : "deploy";
    store_stack_deploy_release(x->out);
    int rc = job_lock(c);
    if (rc != 0)
        return rc;
    char id[STORE_ID_LEN + 1] = "";
    struct pgp p = {0};
    pgp_s(&p, d->stack_id);
    pgp_s(&p, action);
    rc = pgx_row_in(c,
                    "SELECT id FROM stack_deploys WHERE stack_id=$1 AND "
                    "action=$2 AND state='created' ORDER BY created_at, seq "
                    "LIMIT 1",
                    &p, read_id, id, "stack deploy queued");
    if (rc == CP_ENOTFOUND) {
        if (d->id[0] != '\0')
            memcpy(id, d->id, sizeof(id));
        else
            store_new_id(id);
        struct pgp q = {0};
        pgp_s(&q, id);
        pgp_s(&q, d->stack_id);
        pgp_s(&q, action);
        pgp_i(&q, d->created_at ? d->created_at : cp_now_ms());
        rc = pgx_run(c,
                     "INSERT INTO stack_deploys(id, stack_id, action, state, "
                     "created_at) VALUES($1, $2, $3, 'created', $4)",
                     &q, "stack deploy insert", NULL);
    }
    if (rc == 0 && strcmp(action, "remove") == 0) {
        struct pgp q = {0};
        pgp_s(&q, d->stack_id);
        rc = pgx_run(c, "UPDATE stacks SET removing=true WHERE id=$1", &q,
                     "stack removing", NULL);
    }
    if (rc != 0)
        return rc;
    return job_read_back(c, id, x->out);
}

int pgk_stack_deploy_queue(struct store *st, const struct store_stack_deploy *d,
                           struct store_stack_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct queue_ctx x = {d, out};
    int rc = pg_tx(st, queue_fn, &x);
    if (rc != 0)
        store_stack_deploy_release(out);
    return rc;
}

int pgk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, job_by_id, &p, read_job, out, "stack deploy get");
}

struct claim_ctx {
    const char *holder;
    int64_t now, lease_ms;
    struct store_stack_deploy *out;
};

/* Candidates, oldest first: ongoing jobs whose lease expired (their
 * master died or stopped; taken over before anything else, so a stack
 * never gets a second ongoing job beside an expired one), then queued
 * jobs of stacks without an ongoing job. */
static int claim_fn(struct pgc *c, void *ctx)
{
    struct claim_ctx *x = ctx;
    store_stack_deploy_release(x->out);
    int rc = job_lock(c);
    if (rc != 0)
        return rc;
    char id[STORE_ID_LEN + 1] = "";
    struct pgp p = {0};
    pgp_i(&p, x->now);
    rc = pgx_row_in(c,
                    "SELECT j.id FROM stack_deploys j "
                    "WHERE (j.state='ongoing' AND j.lease_until<=$1) OR "
                    "(j.state='created' AND NOT EXISTS (SELECT 1 FROM "
                    "stack_deploys o WHERE o.stack_id=j.stack_id AND "
                    "o.state='ongoing')) "
                    "ORDER BY j.state='ongoing' DESC, j.created_at, j.seq "
                    "LIMIT 1",
                    &p, read_id, id, "stack deploy claim");
    if (rc != 0)
        return rc;
    struct pgp u = {0};
    pgp_s(&u, id);
    pgp_s(&u, x->holder);
    pgp_i(&u, x->now + x->lease_ms);
    pgp_i(&u, x->now);
    rc = pgx_run(c,
                 "UPDATE stack_deploys SET state='ongoing', claimed_by=$2, "
                 "lease_until=$3, started_at=CASE WHEN started_at=0 THEN $4 "
                 "ELSE started_at END WHERE id=$1",
                 &u, "stack deploy claim", NULL);
    if (rc != 0)
        return rc;
    return job_read_back(c, id, x->out);
}

int pgk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct claim_ctx x = {holder, now, lease_ms, out};
    int rc = pg_tx(st, claim_fn, &x);
    if (rc != 0)
        store_stack_deploy_release(out);
    return rc;
}

/* Fenced on claimed_by (NULL-safe): a claim by another master changes it,
 * and this UPDATE, waiting on the row meanwhile, then matches nothing. A
 * NULL state or service_deploys keeps the stored one. */
int pgk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d)
{
    char *sds =
        d->service_deploys != NULL ? cp_json_dump(d->service_deploys) : NULL;
    struct pgp p = {0};
    pgp_s(&p, d->id);
    pgp_s(&p, d->claimed_by);
    pgp_i(&p, d->revision);
    pgp_s(&p, d->state);
    pgp_s(&p, d->reason);
    pgp_s(&p, sds);
    pgp_i(&p, d->lease_until);
    pgp_i(&p, d->finished_at);
    int changes = 0;
    int rc = pg_write(st,
                      "UPDATE stack_deploys SET revision=$3, "
                      "state=COALESCE($4::text, state), reason=$5, "
                      "service_deploys=COALESCE($6::text, service_deploys), "
                      "lease_until=$7, finished_at=$8 WHERE id=$1 AND "
                      "claimed_by IS NOT DISTINCT FROM $2::text",
                      &p, &changes, "stack deploy update");
    cp_free(sds);
    if (rc != 0 || changes > 0)
        return rc;
    struct store_stack_deploy got = {0};
    rc = pgk_stack_deploy_get(st, d->id, &got);
    store_stack_deploy_release(&got);
    return rc == 0 ? CP_ECONFLICT /* another holder took it over */ : rc;
}

int pgk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, pg_nz(stack_id));
    pgp_b(&p, open_only);
    if (limit > 0)
        pgp_i(&p, limit);
    else
        pgp_s(&p, NULL); /* LIMIT NULL: no limit */
    void *items = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pg_rows_all(st,
                         "SELECT " JOB_COLS " FROM stack_deploys j JOIN "
                         "stacks k ON k.id=j.stack_id WHERE k.grid_id=$1 AND "
                         "($2::text IS NULL OR j.stack_id=$2::text) AND "
                         "(NOT $3::boolean OR j.state IN ('created', "
                         "'ongoing')) ORDER BY j.created_at DESC, j.seq DESC "
                         "LIMIT $4",
                         &p, read_job, sizeof(*out->items), &items, &out->len,
                         "stack deploy list");
    out->items = items;
    if (rc != 0)
        store_stack_deploy_list_release(out);
    return rc;
}

int pgk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, stack_deploy_id);
    void *items = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pg_rows_all(st,
                         "SELECT " PGD_DEPLOY_COLS " FROM grid_service_deploys "
                         "WHERE stack_deploy_id=$1 ORDER BY created_at, seq",
                         &p, pgd_read_deploy, sizeof(*out->items), &items,
                         &out->len, "stack deploy services");
    out->items = items;
    if (rc != 0)
        store_deploy_list_release(out);
    return rc;
}

/* Finished = neither queued nor ongoing. One statement, so atomic. */
int pgk_stack_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct pgp p = {0};
    pgp_i(&p, keep > 0 ? keep : 0);
    int changes = 0;
    int rc = pg_write(st,
                      "DELETE FROM stack_deploys WHERE id IN (SELECT id FROM "
                      "(SELECT id, ROW_NUMBER() OVER (PARTITION BY stack_id "
                      "ORDER BY created_at DESC, seq DESC) AS n FROM "
                      "stack_deploys WHERE state NOT IN ('created', "
                      "'ongoing')) t WHERE n>$1)",
                      &p, &changes, "stack deploys prune");
    if (deleted != NULL)
        *deleted = rc == 0 ? changes : 0;
    return rc;
}
