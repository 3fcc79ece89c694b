/* PostgreSQL backend: the vault's secrets (spec 7, migration 5) and the
 * compare-and-set re-sealing of every sealed value a key rotation
 * rewrites. Values arrive sealed; this file never sees a plaintext.
 *
 * Which services use a secret is read from their spec ("secrets":
 * [{secret, name, type}]), a TEXT column parsed as json in the query
 * (json, not jsonb: it accepts whatever jansson wrote), so a list is two
 * queries whatever the number of secrets and services, and a write bumps
 * the revision of the services using the secret in the same transaction,
 * as the SQLite backend does with json_each.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stdint.h>
#include <string.h>

#define SECRET_COLS "id, grid_id, name, value, created_at, updated_at"

static void read_secret(const PGresult *r, int i, void *item)
{
    struct store_secret *v = item;
    memset(v, 0, sizeof(*v));
    pgr_fixed(r, i, 0, v->id, sizeof(v->id));
    pgr_fixed(r, i, 1, v->grid_id, sizeof(v->grid_id));
    v->name = pgr_str(r, i, 2);
    v->value = pgr_str(r, i, 3);
    v->created_at = pgr_i64(r, i, 4);
    v->updated_at = pgr_i64(r, i, 5);
}

/* The elements of a service's "secrets" array (none when it is absent or
 * not an array); e->>'secret' is NULL for an element that is not an
 * object or has no "secret". */
#define SECRETS_OF(spec)                                                       \
    "json_array_elements(CASE WHEN json_typeof((" spec ")::json->'secrets')"   \
    "='array' THEN (" spec ")::json->'secrets' ELSE '[]'::json END)"

/* Services of grid $1 whose spec names secret $2 (or any secret when $2
 * is NULL), one row per (secret, service), ordered by secret, stack and
 * service name in byte order (as SQLite's BINARY collation). */
static const char USERS_SQL[] =
    "SELECT DISTINCT e.value->>'secret' COLLATE \"C\" AS secret, v.id,"
    " k.name COLLATE \"C\" AS stack, v.name COLLATE \"C\" AS service"
    " FROM grid_services v JOIN stacks k ON k.id=v.stack_id"
    " CROSS JOIN LATERAL " SECRETS_OF(
        "v.spec") " e"
                  " WHERE v.grid_id=$1 AND e.value->>'secret' IS NOT NULL"
                  " AND ($2::text IS NULL OR e.value->>'secret'=$2::text)"
                  " ORDER BY secret, stack, service";

/* Bumps the services of grid $1 using secret $2. */
static const char BUMP_SQL[] =
    "UPDATE grid_services v SET revision=v.revision+1, updated_at=$3"
    " WHERE v.grid_id=$1 AND EXISTS (SELECT 1 FROM " SECRETS_OF(
        "v.spec") " e WHERE e.value->>'secret'=$2)";

static void add_user(struct store_secret *s, const PGresult *r, int i)
{
    s->services =
        cp_realloc(s->services, (s->nservices + 1) * sizeof(*s->services));
    struct store_secret_user *u = &s->services[s->nservices++];
    memset(u, 0, sizeof(*u));
    pgr_fixed(r, i, 1, u->id, sizeof(u->id));
    u->stack_name = pgr_str(r, i, 2);
    u->name = pgr_str(r, i, 3);
}

/* Attaches to each of the n secrets (ordered by name, byte order) the
 * services using it; name NULL reads every secret's users, else only
 * that name's. */
static int attach_users(struct pgc *c, const char *grid_id, const char *name,
                        struct store_secret *v, size_t n)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, name);
    PGresult *r = NULL;
    int rc = pgx_exec(c, USERS_SQL, &p, "secret users", &r);
    if (rc != 0)
        return rc;
    size_t k = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *secret = PQgetvalue(r, i, 0);
        /* Both sides are in byte order: skip the secrets no service
         * uses, and services naming a missing one. */
        while (k < n && strcmp(v[k].name, secret) < 0)
            k++;
        if (k < n && strcmp(v[k].name, secret) == 0)
            add_user(&v[k], r, i);
    }
    PQclear(r);
    return 0;
}

static int bump(struct pgc *c, const char *grid_id, const char *name,
                int64_t now, int *bumped)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, name);
    pgp_i(&p, now);
    return pgx_run(c, BUMP_SQL, &p, "secret bump services", bumped);
}

/* ==== Create, update, delete ==== */

struct secret_ctx {
    const struct store_secret *v; /* create */
    const char *grid_id, *name, *value;
    int64_t now;
    int bumped;
};

static int create_fn(struct pgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    const struct store_secret *v = k->v;
    k->bumped = 0;
    struct pgp p = {0};
    pgp_s(&p, v->id);
    pgp_s(&p, v->grid_id);
    pgp_s(&p, v->name);
    pgp_s(&p, v->value);
    pgp_i(&p, k->now);
    int rc = pgx_run(c,
                     "INSERT INTO grid_secrets(" SECRET_COLS
                     ") VALUES($1, $2, $3, $4, $5, $5)",
                     &p, "secret create", NULL);
    return rc != 0 ? rc : bump(c, v->grid_id, v->name, k->now, &k->bumped);
}

int pgk_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped)
{
    if (bumped != NULL)
        *bumped = 0;
    struct secret_ctx k = {.v = v};
    k.now = v->created_at ? v->created_at : cp_now_ms();
    int rc = pg_tx(st, create_fn, &k);
    if (rc == 0 && bumped != NULL)
        *bumped = k.bumped;
    return rc;
}

static int update_fn(struct pgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    k->bumped = 0;
    struct pgp p = {0};
    pgp_s(&p, k->grid_id);
    pgp_s(&p, k->name);
    pgp_s(&p, k->value);
    pgp_i(&p, k->now);
    int changes = 0;
    int rc = pgx_run(c,
                     "UPDATE grid_secrets SET value=$3, updated_at=$4"
                     " WHERE grid_id=$1 AND name=$2",
                     &p, "secret update", &changes);
    if (rc == 0 && changes == 0)
        rc = CP_ENOTFOUND;
    return rc != 0 ? rc : bump(c, k->grid_id, k->name, k->now, &k->bumped);
}

int pgk_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped)
{
    if (bumped != NULL)
        *bumped = 0;
    struct secret_ctx k = {
        .grid_id = grid_id, .name = name, .value = value, .now = now};
    int rc = pg_tx(st, update_fn, &k);
    if (rc == 0 && bumped != NULL)
        *bumped = k.bumped;
    return rc;
}

/* The secret's row is locked first, so a concurrent update or delete of
 * it waits; then the users are checked and the row deleted. */
static int delete_fn(struct pgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    struct pgp p = {0};
    pgp_s(&p, k->grid_id);
    pgp_s(&p, k->name);
    int rc = pgx_run(c,
                     "SELECT 1 FROM grid_secrets WHERE grid_id=$1 AND name=$2"
                     " FOR UPDATE",
                     &p, "secret lock", NULL);
    if (rc != 0)
        return rc;
    PGresult *r = NULL;
    rc = pgx_exec(c, USERS_SQL, &p, "secret users", &r);
    if (rc != 0)
        return rc;
    bool used = PQntuples(r) > 0;
    PQclear(r);
    if (used)
        return CP_ECONFLICT;
    int changes = 0;
    rc = pgx_run(c, "DELETE FROM grid_secrets WHERE grid_id=$1 AND name=$2", &p,
                 "secret delete", &changes);
    return rc == 0 && changes == 0 ? CP_ENOTFOUND : rc;
}

int pgk_secret_delete(struct store *st, const char *grid_id, const char *name)
{
    struct secret_ctx k = {.grid_id = grid_id, .name = name};
    return pg_tx(st, delete_fn, &k);
}

/* ==== Reads ==== */

/* Reads of two queries see one snapshot. */
static int snapshot(struct pgc *c)
{
    return pgx_run(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", NULL,
                   "secret read snapshot", NULL);
}

struct read_ctx {
    const char *grid_id, *name;
    struct store_secret *one;
    struct store_secret_list *list;
};

static int get_fn(struct pgc *c, void *ctx)
{
    struct read_ctx *k = ctx;
    store_secret_release(k->one);
    int rc = snapshot(c);
    if (rc != 0)
        return rc;
    struct pgp p = {0};
    pgp_s(&p, k->grid_id);
    pgp_s(&p, k->name);
    rc = pgx_row_in(c,
                    "SELECT " SECRET_COLS
                    " FROM grid_secrets WHERE grid_id=$1 AND name=$2",
                    &p, read_secret, k->one, "secret get");
    return rc != 0 ? rc : attach_users(c, k->grid_id, k->name, k->one, 1);
}

/* Both queries in one snapshot: the users belong to the secret read. */
int pgk_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out)
{
    memset(out, 0, sizeof(*out));
    struct read_ctx k = {.grid_id = grid_id, .name = name, .one = out};
    int rc = pg_tx(st, get_fn, &k);
    if (rc != 0)
        store_secret_release(out);
    return rc;
}

static int list_fn(struct pgc *c, void *ctx)
{
    struct read_ctx *k = ctx;
    store_secret_list_release(k->list);
    int rc = snapshot(c);
    if (rc != 0)
        return rc;
    struct pgp p = {0};
    pgp_s(&p, k->grid_id);
    void *items = NULL;
    rc = pgx_rows_in(c,
                     "SELECT " SECRET_COLS " FROM grid_secrets"
                     " WHERE grid_id=$1 ORDER BY name COLLATE \"C\"",
                     &p, read_secret, sizeof(*k->list->items), &items,
                     &k->list->len, "secret list");
    k->list->items = items;
    return rc != 0 ? rc
                   : attach_users(c, k->grid_id, NULL, k->list->items,
                                  k->list->len);
}

int pgk_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out)
{
    memset(out, 0, sizeof(*out));
    struct read_ctx k = {.grid_id = grid_id, .list = out};
    int rc = pg_tx(st, list_fn, &k);
    if (rc != 0)
        store_secret_list_release(out);
    return rc;
}

int pgk_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out)
{
    memset(out, 0, sizeof(*out));
    struct pgp p = {0};
    pgp_s(&p, after_id != NULL ? after_id : "");
    pgp_i(&p, limit > 0 ? limit : 100);
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " SECRET_COLS " FROM grid_secrets"
                         " WHERE id COLLATE \"C\" > $1"
                         " ORDER BY id COLLATE \"C\" LIMIT $2",
                         &p, read_secret, sizeof(*out->items), &items,
                         &out->len, "secrets page");
    out->items = items;
    if (rc != 0)
        store_secret_list_release(out);
    return rc;
}

/* ==== Re-sealing (compare-and-set) ==== */

struct reseal_ctx {
    const char *update; /* sets the column to $3 where id=$1 and it is $2 */
    const char *exists; /* a row where id=$1 */
    const char *id, *old, *value;
};

static int reseal_fn(struct pgc *c, void *ctx)
{
    struct reseal_ctx *k = ctx;
    struct pgp p = {0};
    pgp_s(&p, k->id);
    pgp_s(&p, k->old);
    pgp_s(&p, k->value);
    int changes = 0;
    int rc = pgx_run(c, k->update, &p, "reseal", &changes);
    if (rc != 0 || changes > 0)
        return rc;
    struct pgp q = {0};
    pgp_s(&q, k->id);
    PGresult *r = NULL;
    rc = pgx_exec(c, k->exists, &q, "reseal check", &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) > 0 ? CP_ECONFLICT : CP_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int reseal_cas(struct store *st, const char *update, const char *exists,
                      const char *id, const char *old, const char *value)
{
    struct reseal_ctx k = {update, exists, id, old, value};
    return pg_tx(st, reseal_fn, &k);
}

int pgk_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value)
{
    return reseal_cas(
        st, "UPDATE grid_secrets SET value=$3 WHERE id=$1 AND value=$2",
        "SELECT 1 FROM grid_secrets WHERE id=$1", id, old, value);
}

int pgk_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(
        st, "UPDATE grids SET token_sealed=$3 WHERE id=$1 AND token_sealed=$2",
        "SELECT 1 FROM grids WHERE id=$1", id, old, value);
}

int pgk_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(st,
                      "UPDATE host_nodes SET token_sealed=$3"
                      " WHERE id=$1 AND token_sealed=$2",
                      "SELECT 1 FROM host_nodes WHERE id=$1", id, old, value);
}

int pgk_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value)
{
    return reseal_cas(st,
                      "UPDATE registries SET password_sealed=$3"
                      " WHERE id=$1 AND password_sealed=$2",
                      "SELECT 1 FROM registries WHERE id=$1", id, old, value);
}
