/* PostgreSQL backend: nodes, their connection generations and stats.
 *
 * Every write about a connection is one UPDATE conditional on conn_gen,
 * so two masters writing about the same node serialise on its row lock
 * and the loser's condition is re-checked against the winner's row.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define NODE_COLS                                                              \
    "id, grid_id, node_id, name, node_number, token_hash, token_sealed, "      \
    "labels, info, stats, availability, agent_version, connected, updated, "   \
    "conn_gen, conn_master, connected_at, disconnected_at, last_seen_at, "     \
    "close_code, close_reason, created_at, updated_at"

static void read_node(const PGresult *r, int i, void *item)
{
    struct store_node *n = item;
    memset(n, 0, sizeof(*n));
    pgr_fixed(r, i, 0, n->id, sizeof(n->id));
    pgr_fixed(r, i, 1, n->grid_id, sizeof(n->grid_id));
    n->node_id = pgr_str(r, i, 2);
    n->name = pgr_str(r, i, 3);
    n->node_number = (int)pgr_i64(r, i, 4);
    n->token_hash = pgr_str(r, i, 5);
    n->token_sealed = pgr_str(r, i, 6);
    n->labels = pgr_json(r, i, 7, json_array());
    n->info = pgr_json(r, i, 8, json_object());
    n->stats = pgr_null(r, i, 9) ? NULL : pgr_json(r, i, 9, NULL);
    n->availability = pgr_str(r, i, 10);
    n->agent_version = pgr_str(r, i, 11);
    n->connected = pgr_bool(r, i, 12);
    n->updated = pgr_bool(r, i, 13);
    n->conn_gen = pgr_i64(r, i, 14);
    n->conn_master = pgr_str(r, i, 15);
    n->connected_at = pgr_i64(r, i, 16);
    n->disconnected_at = pgr_i64(r, i, 17);
    n->last_seen_at = pgr_i64(r, i, 18);
    n->close_code = (int)pgr_i64(r, i, 19);
    n->close_reason = pgr_str(r, i, 20);
    n->created_at = pgr_i64(r, i, 21);
    n->updated_at = pgr_i64(r, i, 22);
}

/* Runs a one-row node query with one or two string arguments. */
static int node_one(struct store *st, const char *sql, const char *a,
                    const char *b, struct store_node *out)
{
    struct pgp p = {0};
    pgp_s(&p, a);
    if (b != NULL)
        pgp_s(&p, b);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, sql, &p, read_node, out, "node get");
}

static const char node_by_id[] =
    "SELECT " NODE_COLS " FROM host_nodes WHERE id=$1";

int pgn_node_get(struct store *st, const char *id, struct store_node *out)
{
    return node_one(st, node_by_id, id, NULL, out);
}

int pgn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out)
{
    if (strchr(key, ':') != NULL)
        return node_one(st,
                        "SELECT " NODE_COLS " FROM host_nodes "
                        "WHERE grid_id=$1 AND node_id=$2",
                        grid_id, key, out);
    return node_one(st,
                    "SELECT " NODE_COLS " FROM host_nodes "
                    "WHERE grid_id=$1 AND name=$2",
                    grid_id, key, out);
}

int pgn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out)
{
    return node_one(st, "SELECT " NODE_COLS " FROM host_nodes WHERE node_id=$1",
                    node_id, NULL, out);
}

int pgn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out)
{
    return node_one(st,
                    "SELECT " NODE_COLS " FROM host_nodes WHERE token_hash=$1",
                    hash, NULL, out);
}

int pgn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " NODE_COLS " FROM host_nodes "
                         "WHERE grid_id=$1 ORDER BY name COLLATE \"C\"",
                         &p, read_node, sizeof(*out->items), &items, &out->len,
                         "node list");
    out->items = items;
    if (rc != 0)
        store_node_list_release(out);
    return rc;
}

/* 1 when sql with one or two text parameters returns a row, 0 when not,
 * or a CP_E* code. */
static int exists(struct pgc *c, const char *sql, const char *a, const char *b)
{
    struct pgp p = {0};
    pgp_s(&p, a);
    if (b != NULL)
        pgp_s(&p, b);
    PGresult *r = NULL;
    int rc = pgx_exec(c, sql, &p, "node exists", &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) > 0 ? 1 : 0;
    PQclear(r);
    return rc;
}

/* The lowest node number in 1..254 not used in the grid, or 0. */
static int free_number(struct pgc *c, const char *grid_id, int *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    PGresult *r = NULL;
    int rc = pgx_exec(c,
                      "SELECT node_number FROM host_nodes WHERE grid_id=$1 "
                      "ORDER BY node_number",
                      &p, "node numbers", &r);
    if (rc != 0)
        return rc;
    int want = 1;
    for (int i = 0; i < PQntuples(r); i++) {
        int n = (int)pgr_i64(r, i, 0);
        if (n == want)
            want++;
        else if (n > want)
            break;
    }
    PQclear(r);
    *out = want <= 254 ? want : 0;
    return 0;
}

struct create_ctx {
    const struct store_node *n;
    bool rename_on_clash;
    struct store_node *out;
    const char *field;
};

static const char *node_clash_field(const char *constraint)
{
    if (strcmp(constraint, "host_nodes_node_id_key") == 0)
        return "node_id";
    if (strcmp(constraint, "host_nodes_token_hash_key") == 0)
        return "token";
    return "name";
}

/* Locks the grid row (FOR NO KEY UPDATE: ordinary inserts referencing
 * the grid still pass), so that node creates in one grid are serialised
 * across masters and the free number and name checks stay true until
 * commit. */
static int create_fn(struct pgc *c, void *ctx)
{
    struct create_ctx *k = ctx;
    const struct store_node *n = k->n;
    store_node_release(k->out);
    k->field = NULL;
    int rc = exists(c, "SELECT 1 FROM grids WHERE id=$1 FOR NO KEY UPDATE",
                    n->grid_id, NULL);
    if (rc == 0)
        return CP_ENOTFOUND;
    if (rc < 0)
        return rc;
    if (n->node_id != NULL) {
        rc = exists(c, "SELECT 1 FROM host_nodes WHERE node_id=$1", n->node_id,
                    NULL);
        if (rc == 1)
            k->field = "node_id";
        if (rc != 0)
            return rc == 1 ? CP_ECONFLICT : rc;
    }
    if (n->token_hash != NULL) {
        rc = exists(c, "SELECT 1 FROM host_nodes WHERE token_hash=$1",
                    n->token_hash, NULL);
        if (rc == 1)
            k->field = "token";
        if (rc != 0)
            return rc == 1 ? CP_ECONFLICT : rc;
    }
    int number = 0;
    rc = free_number(c, n->grid_id, &number);
    if (rc != 0)
        return rc;
    if (number == 0)
        return CP_EAGAIN;
    rc = exists(c, "SELECT 1 FROM host_nodes WHERE grid_id=$1 AND name=$2",
                n->grid_id, n->name);
    if (rc < 0)
        return rc;
    if (rc == 1 && !k->rename_on_clash) {
        k->field = "name";
        return CP_ECONFLICT;
    }
    char *name =
        rc == 1 ? cp_asprintf("%s-%d", n->name, number) : cp_strdup(n->name);
    char *labels = pg_dump_or(n->labels, "[]");
    char *info = pg_dump_or(n->info, "{}");
    int64_t now = n->created_at ? n->created_at : cp_now_ms();
    struct pgp p = {0};
    pgp_s(&p, n->id);
    pgp_s(&p, n->grid_id);
    pgp_s(&p, n->node_id);
    pgp_s(&p, name);
    pgp_i(&p, number);
    pgp_s(&p, n->token_hash);
    pgp_s(&p, n->token_sealed);
    pgp_s(&p, labels);
    pgp_s(&p, info);
    pgp_s(&p, n->availability ? n->availability : "active");
    pgp_s(&p, n->agent_version);
    pgp_i(&p, now);
    rc = pgx_run(c,
                 "INSERT INTO host_nodes(id, grid_id, node_id, name, "
                 "node_number, token_hash, token_sealed, labels, info, "
                 "availability, agent_version, created_at, updated_at) "
                 "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                 "$12)",
                 &p, "node create", NULL);
    cp_free(name);
    cp_free(labels);
    cp_free(info);
    if (rc == CP_ECONFLICT)
        k->field = node_clash_field(pgx_conflict(c));
    if (rc != 0)
        return rc;
    struct pgp q = {0};
    pgp_s(&q, n->id);
    return pgx_row_in(c, node_by_id, &q, read_node, k->out, "node get");
}

int pgn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field)
{
    memset(out, 0, sizeof(*out));
    struct create_ctx k = {n, rename_on_clash, out, NULL};
    int rc = pg_tx(st, create_fn, &k);
    *field = rc == CP_ECONFLICT ? k.field : NULL;
    if (rc != 0)
        store_node_release(out);
    return rc;
}

int pgn_node_bind(struct store *st, const char *id, const char *node_id)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, node_id);
    return pg_write_row(st,
                        "UPDATE host_nodes SET node_id=$2 "
                        "WHERE id=$1 AND node_id IS NULL",
                        &p, CP_ECONFLICT, "node bind");
}

int pgn_node_update(struct store *st, const struct store_node *n)
{
    char *labels = pg_dump_or(n->labels, "[]");
    struct pgp p = {0};
    pgp_s(&p, labels);
    pgp_s(&p, n->availability ? n->availability : "active");
    pgp_i(&p, n->updated_at ? n->updated_at : cp_now_ms());
    pgp_s(&p, n->id);
    int rc = pg_write_row(st,
                          "UPDATE host_nodes SET labels=$1, availability=$2, "
                          "updated_at=$3 WHERE id=$4",
                          &p, CP_ENOTFOUND, "node update");
    cp_free(labels);
    return rc;
}

int pgn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, hash);
    pgp_s(&p, sealed);
    return pg_write_row(st,
                        "UPDATE host_nodes SET token_hash=$2, "
                        "token_sealed=$3 WHERE id=$1",
                        &p, CP_ENOTFOUND, "node set token");
}

int pgn_node_delete(struct store *st, const char *id)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    return pg_write_row(st, "DELETE FROM host_nodes WHERE id=$1", &p,
                        CP_ENOTFOUND, "node delete");
}

static void read_gen(const PGresult *r, int i, void *item)
{
    *(int64_t *)item = pgr_i64(r, i, 0);
}

/* One UPDATE ... RETURNING: two masters plugging the same node at once
 * get two different generations, the later one current. */
int pgn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, master);
    pgp_i(&p, connected_at);
    pgp_i(&p, now);
    return pg_row_one(st,
                      "UPDATE host_nodes SET conn_gen=conn_gen+1, "
                      "connected=true, updated=false, conn_master=$2, "
                      "connected_at=$3, last_seen_at=$4, close_code=0, "
                      "close_reason=NULL WHERE id=$1 RETURNING conn_gen",
                      &p, read_gen, gen, "node plug");
}

int pgn_node_unplug(struct store *st, const char *id, int64_t gen, int64_t now,
                    int close_code, const char *reason)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_i(&p, gen);
    pgp_i(&p, now);
    pgp_i(&p, close_code);
    pgp_s(&p, reason);
    return pg_write_row(st,
                        "UPDATE host_nodes SET connected=false, "
                        "updated=false, disconnected_at=$3, close_code=$4, "
                        "close_reason=$5, conn_master=NULL "
                        "WHERE id=$1 AND conn_gen=$2",
                        &p, CP_ECONFLICT, "node unplug");
}

int pgn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels)
{
    char *info_s = pg_dump_or(info, "{}");
    char *labels_s = labels != NULL ? cp_json_dump(labels) : NULL;
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_i(&p, gen);
    pgp_s(&p, info_s);
    pgp_s(&p, agent_version);
    pgp_s(&p, labels_s);
    pgp_i(&p, cp_now_ms());
    int rc = pg_write_row(
        st,
        "UPDATE host_nodes SET info=$3, agent_version=$4, updated=true, "
        "labels=CASE WHEN $5::text IS NOT NULL AND labels='[]' THEN $5::text "
        "ELSE labels END, updated_at=$6 WHERE id=$1 AND conn_gen=$2",
        &p, CP_ECONFLICT, "node set info");
    cp_free(info_s);
    cp_free(labels_s);
    return rc;
}

/* Writes one node's stats inside the caller's transaction. */
static int add_stats(struct pgc *c, const char *id, const json_t *stats,
                     int64_t at, int keep)
{
    char *text = cp_json_dump(stats);
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, text);
    int changes = 0;
    int rc = pgx_run(c, "UPDATE host_nodes SET stats=$2 WHERE id=$1", &p,
                     "node stats", &changes);
    if (rc == 0 && changes == 0)
        rc = CP_ENOTFOUND;
    pgp_i(&p, at);
    if (rc == 0)
        rc = pgx_run(c,
                     "INSERT INTO host_node_stats(node_id, stats, created_at) "
                     "VALUES($1, $2, $3)",
                     &p, "node stats history", NULL);
    cp_free(text);
    if (rc != 0)
        return rc;
    /* Bounded history: keep the newest rows of this node only. */
    struct pgp t = {0};
    pgp_s(&t, id);
    pgp_i(&t, keep > 0 ? keep : 1);
    return pgx_run(c,
                   "DELETE FROM host_node_stats WHERE node_id=$1 AND id <= "
                   "(SELECT id FROM host_node_stats WHERE node_id=$1 "
                   "ORDER BY id DESC LIMIT 1 OFFSET $2)",
                   &t, "node stats trim", NULL);
}

struct stats_ctx {
    const struct store_node_stats *v;
    size_t n;
    int keep;
    bool skip_missing;
};

static int stats_fn(struct pgc *c, void *ctx)
{
    struct stats_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        int rc = add_stats(c, k->v[i].id, k->v[i].stats, k->v[i].at, k->keep);
        if (rc == CP_ENOTFOUND && k->skip_missing)
            continue; /* the node was removed meanwhile */
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pgn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep)
{
    struct store_node_stats one = {id, stats, at};
    struct stats_ctx k = {&one, 1, keep, false};
    return pg_tx(st, stats_fn, &k);
}

int pgn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep)
{
    struct stats_ctx k = {v, n, keep, true};
    return n == 0 ? 0 : pg_tx(st, stats_fn, &k);
}

struct seen_ctx {
    struct store_node_seen *v;
    size_t n;
};

static int seen_fn(struct pgc *c, void *ctx)
{
    struct seen_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        struct pgp p = {0};
        pgp_s(&p, k->v[i].id);
        pgp_i(&p, k->v[i].conn_gen);
        pgp_i(&p, k->v[i].at);
        int changes = 0;
        int rc = pgx_run(c,
                         "UPDATE host_nodes SET last_seen_at=$3 "
                         "WHERE id=$1 AND conn_gen=$2",
                         &p, "nodes seen", &changes);
        if (rc != 0)
            return rc;
        k->v[i].ok = changes > 0;
    }
    return 0;
}

int pgn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n)
{
    struct seen_ctx k = {v, n};
    return n == 0 ? 0 : pg_tx(st, seen_fn, &k);
}

struct sweep_ctx {
    int64_t before, now;
    const char *except_master;
    const struct store_fence *fence;
    int marked;
};

static int sweep_fn(struct pgc *c, void *ctx)
{
    struct sweep_ctx *k = ctx;
    k->marked = 0;
    if (k->fence != NULL) {
        /* Lock the lease row while we sweep: a master taking it over
         * waits for this transaction, so two never sweep at once. */
        struct pgp f = {0};
        pgp_s(&f, k->fence->lease);
        pgp_s(&f, k->fence->holder);
        pgp_i(&f, k->now);
        int held = 0;
        int frc = pgx_run(c,
                          "SELECT 1 FROM leases WHERE name=$1 AND holder=$2 "
                          "AND expires_at>$3 FOR SHARE",
                          &f, "sweep fence", &held);
        if (frc != 0)
            return frc;
        if (held == 0)
            return 0;
    }
    struct pgp p = {0};
    pgp_i(&p, k->before);
    pgp_i(&p, k->now);
    pgp_s(&p, k->except_master);
    pgp_s(&p, k->fence != NULL ? k->fence->lease : NULL);
    pgp_s(&p, k->fence != NULL ? k->fence->holder : NULL);
    /* The fence is checked in the statement itself: a master that lost
     * the lease marks nothing. */
    int rc = pgx_run(
        c,
        "UPDATE host_nodes SET connected=false, updated=false, "
        "disconnected_at=$2, close_code=4030, "
        "close_reason=CASE WHEN last_seen_at<$1 THEN "
        "'not seen (stale connection)' ELSE 'its master stopped' END, "
        "conn_master=NULL "
        "WHERE connected AND (last_seen_at<$1 OR conn_master IS NULL OR "
        "NOT EXISTS(SELECT 1 FROM leases l WHERE "
        "l.name='master:'||host_nodes.conn_master AND l.expires_at>$2)) "
        "AND ($3::text IS NULL OR conn_master IS NULL OR "
        "conn_master<>$3::text) "
        "AND ($4::text IS NULL OR EXISTS(SELECT 1 FROM leases f WHERE "
        "f.name=$4::text AND f.holder=$5::text AND f.expires_at>$2))",
        &p, "nodes sweep", &k->marked);
    if (rc != 0)
        return rc;
    struct pgp q = {0};
    pgp_i(&q, k->now - 3600 * 1000);
    return pgx_run(c,
                   "DELETE FROM leases WHERE name LIKE 'master:%' "
                   "AND expires_at<$1",
                   &q, "liveness leases cleanup", NULL);
}

int pgn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master,
                    const struct store_fence *fence, int *marked)
{
    struct sweep_ctx k = {before, now, except_master, fence, 0};
    *marked = 0;
    int rc = pg_tx(st, sweep_fn, &k);
    if (rc == 0)
        *marked = k.marked;
    return rc;
}
