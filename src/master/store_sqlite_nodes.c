/* SQLite backend: nodes, their connection generations and stats.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
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

static void read_node(sqlite3_stmt *q, void *item)
{
    struct store_node *n = item;
    memset(n, 0, sizeof(*n));
    sqlx_col_fixed(q, 0, n->id, sizeof(n->id));
    sqlx_col_fixed(q, 1, n->grid_id, sizeof(n->grid_id));
    n->node_id = sqlx_col_str(q, 2);
    n->name = sqlx_col_str(q, 3);
    n->node_number = sqlite3_column_int(q, 4);
    n->token_hash = sqlx_col_str(q, 5);
    n->token_sealed = sqlx_col_str(q, 6);
    n->labels = sqlx_col_json(q, 7, json_array());
    n->info = sqlx_col_json(q, 8, json_object());
    n->stats = sqlite3_column_type(q, 9) == SQLITE_NULL
                   ? NULL
                   : sqlx_col_json(q, 9, NULL);
    n->availability = sqlx_col_str(q, 10);
    n->agent_version = sqlx_col_str(q, 11);
    n->connected = sqlite3_column_int(q, 12) != 0;
    n->updated = sqlite3_column_int(q, 13) != 0;
    n->conn_gen = sqlite3_column_int64(q, 14);
    n->conn_master = sqlx_col_str(q, 15);
    n->connected_at = sqlite3_column_int64(q, 16);
    n->disconnected_at = sqlite3_column_int64(q, 17);
    n->last_seen_at = sqlite3_column_int64(q, 18);
    n->close_code = sqlite3_column_int(q, 19);
    n->close_reason = sqlx_col_str(q, 20);
    n->created_at = sqlite3_column_int64(q, 21);
    n->updated_at = sqlite3_column_int64(q, 22);
}

/* Runs a one-row node query with one or two string arguments. */
static int node_one(struct store *st, const char *sql, const char *a,
                    const char *b, struct store_node *out)
{
    const char *args[] = {a, b};
    return sqlx_row_one(st, sql, args, b != NULL ? 2 : 1, read_node, out,
                        "node get");
}

int sqn_node_get(struct store *st, const char *id, struct store_node *out)
{
    return node_one(st, "SELECT " NODE_COLS " FROM host_nodes WHERE id=?",
                    id, NULL, out);
}

int sqn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out)
{
    if (strchr(key, ':') != NULL)
        return node_one(st,
                        "SELECT " NODE_COLS " FROM host_nodes "
                        "WHERE grid_id=? AND node_id=?",
                        grid_id, key, out);
    return node_one(st,
                    "SELECT " NODE_COLS " FROM host_nodes "
                    "WHERE grid_id=? AND name=?",
                    grid_id, key, out);
}

int sqn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out)
{
    return node_one(st,
                    "SELECT " NODE_COLS " FROM host_nodes WHERE node_id=?",
                    node_id, NULL, out);
}

int sqn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out)
{
    return node_one(st,
                    "SELECT " NODE_COLS " FROM host_nodes WHERE token_hash=?",
                    hash, NULL, out);
}

int sqn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out)
{
    const char *args[] = {grid_id};
    int rc = sqlx_rows_all(st,
                           "SELECT " NODE_COLS " FROM host_nodes "
                           "WHERE grid_id=? ORDER BY name",
                           args, 1, read_node, sizeof(*out->items),
                           (void **)&out->items, &out->len, "node list");
    if (rc != 0)
        store_node_list_release(out);
    return rc;
}

/* The lowest node number in 1..254 not used in the grid, or 0. */
static int free_number(struct conn *c, const char *grid_id, int *out)
{
    sqlite3_stmt *q = sqlx_prep(c, "SELECT node_number FROM host_nodes "
                                   "WHERE grid_id=? ORDER BY node_number");
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, grid_id);
    int want = 1, rc;
    while ((rc = sqlx_step(c, q, "node numbers")) == 1) {
        int n = sqlite3_column_int(q, 0);
        if (n == want)
            want++;
        else if (n > want)
            break;
    }
    sqlx_done(q);
    if (rc < 0)
        return rc;
    *out = want <= 254 ? want : 0;
    return 0;
}

static int exists(struct conn *c, const char *sql, const char *a,
                  const char *b, bool *out)
{
    sqlite3_stmt *q = sqlx_prep(c, sql);
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, a);
    if (b != NULL)
        sqlx_bind_str(q, 2, b);
    int rc = sqlx_step(c, q, "node exists");
    sqlx_done(q);
    if (rc < 0)
        return rc;
    *out = rc == 1;
    return 0;
}

int sqn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    char *name = NULL, *labels = NULL, *info = NULL;
    int number = 0;
    bool taken = false;
    *field = NULL;
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    if (n->node_id != NULL) {
        rc = exists(c, "SELECT 1 FROM host_nodes WHERE node_id=?",
                    n->node_id, NULL, &taken);
        if (rc == 0 && taken) {
            *field = "node_id";
            rc = CP_ECONFLICT;
        }
        if (rc != 0)
            goto fail;
    }
    if (n->token_hash != NULL) {
        rc = exists(c, "SELECT 1 FROM host_nodes WHERE token_hash=?",
                    n->token_hash, NULL, &taken);
        if (rc == 0 && taken) {
            *field = "token";
            rc = CP_ECONFLICT;
        }
        if (rc != 0)
            goto fail;
    }
    rc = free_number(c, n->grid_id, &number);
    if (rc != 0)
        goto fail;
    if (number == 0) {
        rc = CP_EAGAIN;
        goto fail;
    }
    name = cp_strdup(n->name);
    rc = exists(c, "SELECT 1 FROM host_nodes WHERE grid_id=? AND name=?",
                n->grid_id, name, &taken);
    if (rc != 0)
        goto fail;
    if (taken && !rename_on_clash) {
        *field = "name";
        rc = CP_ECONFLICT;
        goto fail;
    }
    if (taken) {
        cp_free(name);
        name = cp_asprintf("%s-%d", n->name, number);
    }
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO host_nodes(id, grid_id, node_id, name, node_number, "
           "token_hash, token_sealed, labels, info, availability, "
           "agent_version, created_at, updated_at) "
           "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    int64_t now = n->created_at ? n->created_at : cp_now_ms();
    labels = sqlx_dump_or(n->labels, "[]");
    info = sqlx_dump_or(n->info, "{}");
    sqlx_bind_str(q, 1, n->id);
    sqlx_bind_str(q, 2, n->grid_id);
    sqlx_bind_str(q, 3, n->node_id);
    sqlx_bind_str(q, 4, name);
    sqlite3_bind_int(q, 5, number);
    sqlx_bind_str(q, 6, n->token_hash);
    sqlx_bind_str(q, 7, n->token_sealed);
    sqlx_bind_str(q, 8, labels);
    sqlx_bind_str(q, 9, info);
    sqlx_bind_str(q, 10, n->availability ? n->availability : "active");
    sqlx_bind_str(q, 11, n->agent_version);
    sqlite3_bind_int64(q, 12, now);
    sqlite3_bind_int64(q, 13, now);
    rc = sqlx_run(c, q, "node create");
    if (rc == CP_ECONFLICT)
        *field = "name";
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        goto fail;
    sqlx_conn_put(s, c);
    c = NULL;
    rc = sqn_node_get(st, n->id, out);
    goto out;
fail:
    sqlx_tx_rollback(c);
out:
    if (c != NULL)
        sqlx_conn_put(s, c);
    cp_free(name);
    cp_free(labels);
    cp_free(info);
    return rc;
}

int sqn_node_bind(struct store *st, const char *id, const char *node_id)
{
    return sqlx_write_row(st,
                          "UPDATE host_nodes SET node_id=?2 "
                          "WHERE id=?1 AND node_id IS NULL",
                          ARGS(id, node_id), CP_ECONFLICT);
}

int sqn_node_update(struct store *st, const struct store_node *n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *labels = sqlx_dump_or(n->labels, "[]");
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE host_nodes SET labels=?, "
                                   "availability=?, updated_at=? WHERE id=?");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, labels);
    sqlx_bind_str(q, 2, n->availability ? n->availability : "active");
    sqlite3_bind_int64(q, 3, n->updated_at ? n->updated_at : cp_now_ms());
    sqlx_bind_str(q, 4, n->id);
    rc = sqlx_run(c, q, "node update");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
out:
    sqlx_conn_put(s, c);
    cp_free(labels);
    return rc;
}

int sqn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed)
{
    return sqlx_write_row(st,
                          "UPDATE host_nodes SET token_hash=?2, "
                          "token_sealed=?3 WHERE id=?1",
                          ARGS(id, hash, sealed), CP_ENOTFOUND);
}

int sqn_node_delete(struct store *st, const char *id)
{
    return sqlx_write_row(st, "DELETE FROM host_nodes WHERE id=?", ARGS(id),
                          CP_ENOTFOUND);
}

int sqn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE host_nodes SET conn_gen=conn_gen+1, connected=1, "
           "updated=0, conn_master=?2, connected_at=?3, last_seen_at=?4, "
           "close_code=0, close_reason=NULL WHERE id=?1 RETURNING conn_gen");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, master);
    sqlite3_bind_int64(q, 3, connected_at);
    sqlite3_bind_int64(q, 4, now);
    rc = sqlx_step(c, q, "node plug");
    if (rc == 1) {
        *gen = sqlite3_column_int64(q, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = CP_ENOTFOUND;
    }
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqn_node_unplug(struct store *st, const char *id, int64_t gen,
                    int64_t now, int close_code, const char *reason)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE host_nodes SET connected=0, updated=0, disconnected_at=?3,"
           " close_code=?4, close_reason=?5, conn_master=NULL "
           "WHERE id=?1 AND conn_gen=?2");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlite3_bind_int64(q, 2, gen);
    sqlite3_bind_int64(q, 3, now);
    sqlite3_bind_int(q, 4, close_code);
    sqlx_bind_str(q, 5, reason);
    rc = sqlx_run(c, q, "node unplug");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ECONFLICT;
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    char *info_s = sqlx_dump_or(info, "{}");
    char *labels_s = labels != NULL ? cp_json_dump(labels) : NULL;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE host_nodes SET info=?3, agent_version=?4, updated=1, "
           "labels=CASE WHEN ?5 IS NOT NULL AND labels='[]' THEN ?5 "
           "ELSE labels END, updated_at=?6 WHERE id=?1 AND conn_gen=?2");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlite3_bind_int64(q, 2, gen);
    sqlx_bind_str(q, 3, info_s);
    sqlx_bind_str(q, 4, agent_version);
    sqlx_bind_str(q, 5, labels_s);
    sqlite3_bind_int64(q, 6, cp_now_ms());
    rc = sqlx_run(c, q, "node set info");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ECONFLICT;
out:
    sqlx_conn_put(s, c);
    cp_free(info_s);
    cp_free(labels_s);
    return rc;
}

/* Writes one node's stats inside the caller's transaction. */
static int add_stats(struct conn *c, const char *id, const json_t *stats,
                     int64_t at, int keep)
{
    char *text = cp_json_dump(stats);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE host_nodes SET stats=?2 "
                                   "WHERE id=?1");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, text);
    rc = sqlx_run(c, q, "node stats");
    if (rc != 0)
        goto out;
    if (sqlite3_changes(c->db) == 0) {
        rc = CP_ENOTFOUND;
        goto out;
    }
    rc = CP_EIO;
    q = sqlx_prep(c, "INSERT INTO host_node_stats(node_id, stats, created_at)"
                     " VALUES(?,?,?)");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, text);
    sqlite3_bind_int64(q, 3, at);
    rc = sqlx_run(c, q, "node stats history");
    if (rc != 0)
        goto out;
    rc = CP_EIO;
    /* Bounded history: keep the newest rows of this node only. */
    q = sqlx_prep(c, "DELETE FROM host_node_stats WHERE node_id=?1 AND id <= "
                     "(SELECT id FROM host_node_stats WHERE node_id=?1 "
                     "ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, id);
    sqlite3_bind_int(q, 2, keep > 0 ? keep : 1);
    rc = sqlx_run(c, q, "node stats trim");
out:
    cp_free(text);
    return rc;
}

int sqn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep)
{
    struct store_node_stats one = {id, stats, at};
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc == 0)
        rc = add_stats(c, one.id, one.stats, one.at, keep);
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
    sqlx_conn_put(s, c);
    return rc;
}

int sqn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = add_stats(c, v[i].id, v[i].stats, v[i].at, keep);
        if (rc == CP_ENOTFOUND)
            rc = 0; /* the node was removed meanwhile */
    }
    if (rc == 0)
        rc = sqlx_tx_commit(c);
    if (rc != 0)
        sqlx_tx_rollback(c);
    sqlx_conn_put(s, c);
    return rc;
}

int sqn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, "UPDATE host_nodes SET last_seen_at=?3 "
                                   "WHERE id=?1 AND conn_gen=?2");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        sqlx_bind_str(q, 1, v[i].id);
        sqlite3_bind_int64(q, 2, v[i].conn_gen);
        sqlite3_bind_int64(q, 3, v[i].at);
        rc = sqlx_run(c, q, "nodes seen");
        if (rc != 0)
            goto fail;
        v[i].ok = sqlite3_changes(c->db) > 0;
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

int sqn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master,
                    const struct store_fence *fence, int *marked)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    *marked = 0;
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(
        c, "UPDATE host_nodes SET connected=0, updated=0, disconnected_at=?2,"
           " close_code=4030, close_reason=CASE WHEN last_seen_at<?1 THEN "
           "'not seen (stale connection)' ELSE 'its master stopped' END, "
           "conn_master=NULL WHERE connected=1 "
           "AND (last_seen_at<?1 OR conn_master IS NULL OR NOT EXISTS("
           "SELECT 1 FROM leases WHERE name='master:'||host_nodes.conn_master"
           " AND expires_at>?2)) "
           "AND (?3 IS NULL OR conn_master IS NULL OR conn_master<>?3) "
           "AND (?4 IS NULL OR EXISTS(SELECT 1 FROM leases WHERE name=?4 "
           "AND holder=?5 AND expires_at>?2))");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int64(q, 1, before);
    sqlite3_bind_int64(q, 2, now);
    sqlx_bind_str(q, 3, except_master);
    sqlx_bind_str(q, 4, fence != NULL ? fence->lease : NULL);
    sqlx_bind_str(q, 5, fence != NULL ? fence->holder : NULL);
    if ((rc = sqlx_run(c, q, "nodes sweep")) != 0)
        goto fail;
    *marked = sqlite3_changes(c->db);
    q = sqlx_prep(c, "DELETE FROM leases WHERE name LIKE 'master:%' "
                     "AND expires_at<?1");
    if (q == NULL) {
        rc = CP_EIO;
        goto fail;
    }
    sqlite3_bind_int64(q, 1, now - 3600 * 1000);
    if ((rc = sqlx_run(c, q, "liveness leases cleanup")) != 0)
        goto fail;
    if ((rc = sqlx_tx_commit(c)) == 0)
        goto out;
fail:
    *marked = 0;
    sqlx_tx_rollback(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}
