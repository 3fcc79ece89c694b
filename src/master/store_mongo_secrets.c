/* MongoDB backend: the vault's secrets and the compare-and-set
 * re-sealing of every sealed value a key rotation rewrites, as
 * store_pg_secrets.c. Values arrive sealed; this file never sees a
 * plaintext.
 *
 * Which services use a secret is read from their "secret_names" field
 * (the names their spec's "secrets" uses, kept by store_mongo_services.c),
 * so a list is two queries whatever the number of secrets and services (the
 * secrets, then one aggregation joining every user to its stack), and a
 * write bumps the revision of the services using the secret in the same
 * transaction (one updateMany).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stdint.h>
#include <string.h>

static int read_secret(const bson_t *d, void *item)
{
    struct store_secret *v = item;
    memset(v, 0, sizeof(*v));
    mgr_id(d, v->id);
    mgr_fixed(d, "grid_id", v->grid_id, sizeof(v->grid_id));
    v->name = mgr_str(d, "name");
    v->value = mgr_str(d, "value");
    v->created_at = mgr_i64(d, "created_at");
    v->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_secret(void *item)
{
    store_secret_release(item);
}

/* For existence checks: the document is not read. */
static int read_nothing(const bson_t *d, void *item)
{
    CP_UNUSED(d);
    CP_UNUSED(item);
    return 0;
}

/* 0 when coll has a document of _id id, CP_ENOTFOUND when not. */
static int row_exists(struct mgc *c, const char *coll, const char *id,
                      const char *what)
{
    bson_t f = BSON_INITIALIZER;
    mgb_id(&f, "_id", id);
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
    int dummy = 0;
    int rc = mgx_find_one(c, coll, &f, opts, read_nothing, &dummy, what);
    bson_destroy(opts);
    bson_destroy(&f);
    return rc;
}

/* ==== Users of a secret ==== */

/* One (secret, service) pair of the users aggregation. */
struct user_row {
    char *secret;
    char id[STORE_ID_LEN + 1];
    char *stack;
    char *name;
};

static int read_user(const bson_t *d, void *item)
{
    struct user_row *u = item;
    u->secret = mgr_str(d, "secret");
    mgr_id(d, u->id);
    u->stack = mgr_str(d, "stack");
    u->name = mgr_str(d, "name");
    return 0;
}

static void release_user(void *item)
{
    struct user_row *u = item;
    cp_free(u->secret);
    cp_free(u->stack);
    cp_free(u->name);
    memset(u, 0, sizeof(*u));
}

/* The services of grid_id naming secret name (every secret when name is
 * NULL), one row per (secret, service) joined to the service's stack
 * (services without one are left out, like PostgreSQL's JOIN), ordered by
 * secret, stack and service name (strings sort bytewise) and id, so that
 * a service naming a secret twice gives two adjacent rows. */
static bson_t *users_pipeline(const char *grid_id, const char *name)
{
    bson_t *p = bson_new();
    if (name != NULL) {
        BCON_APPEND(p, "0", "{", "$match", "{", "grid_id", BCON_UTF8(grid_id),
                    "secret_names", BCON_UTF8(name), "}", "}");
        BCON_APPEND(p, "1", "{", "$unwind", BCON_UTF8("$secret_names"), "}");
        BCON_APPEND(p, "2", "{", "$match", "{", "secret_names", BCON_UTF8(name),
                    "}", "}");
    } else {
        BCON_APPEND(p, "0", "{", "$match", "{", "grid_id", BCON_UTF8(grid_id),
                    "secret_names", "{", "$exists", BCON_BOOL(true), "$ne", "[",
                    "]", "}", "}", "}");
        BCON_APPEND(p, "1", "{", "$unwind", BCON_UTF8("$secret_names"), "}");
        BCON_APPEND(p, "2", "{", "$match", "{", "secret_names", "{", "$type",
                    BCON_UTF8("string"), "}", "}", "}");
    }
    BCON_APPEND(p, "3", "{", "$lookup", "{", "from", BCON_UTF8("stacks"),
                "localField", BCON_UTF8("stack_id"), "foreignField",
                BCON_UTF8("_id"), "as", BCON_UTF8("k"), "}", "}");
    BCON_APPEND(p, "4", "{", "$unwind", BCON_UTF8("$k"), "}");
    BCON_APPEND(p, "5", "{", "$project", "{", "_id", BCON_INT32(1), "name",
                BCON_INT32(1), "secret", BCON_UTF8("$secret_names"), "stack",
                BCON_UTF8("$k.name"), "}", "}");
    BCON_APPEND(p, "6", "{", "$sort", "{", "secret", BCON_INT32(1), "stack",
                BCON_INT32(1), "name", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                "}");
    return p;
}

/* Moves row u's names into a new user of s. */
static void add_user(struct store_secret *s, struct user_row *u)
{
    s->services =
        cp_realloc(s->services, (s->nservices + 1) * sizeof(*s->services));
    struct store_secret_user *w = &s->services[s->nservices++];
    memset(w, 0, sizeof(*w));
    memcpy(w->id, u->id, sizeof(w->id));
    w->stack_name = u->stack;
    w->name = u->name;
    u->stack = NULL;
    u->name = NULL;
}

/* Attaches to each of the n secrets (ordered by name, byte order) the
 * services using it; name NULL reads every secret's users, else only
 * that name's. One aggregation. */
static int attach_users(struct mgc *c, const char *grid_id, const char *name,
                        struct store_secret *v, size_t n)
{
    bson_t *p = users_pipeline(grid_id, name);
    void *items = NULL;
    size_t len = 0;
    int rc =
        mgx_aggregate(c, "grid_services", p, read_user, sizeof(struct user_row),
                      release_user, &items, &len, "secret users");
    bson_destroy(p);
    if (rc != 0)
        return rc;
    struct user_row *rows = items;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const char *secret = rows[i].secret;
        if (secret == NULL)
            continue;
        /* Both sides are in byte order: skip the secrets no service
         * uses, and services naming a missing one. */
        while (k < n && strcmp(v[k].name, secret) < 0)
            k++;
        if (k >= n || strcmp(v[k].name, secret) != 0)
            continue;
        struct store_secret *s = &v[k];
        /* A service naming the secret twice counts once. */
        if (s->nservices > 0 &&
            strcmp(s->services[s->nservices - 1].id, rows[i].id) == 0)
            continue;
        add_user(s, &rows[i]);
    }
    for (size_t i = 0; i < len; i++)
        release_user(&rows[i]);
    cp_free(rows);
    return 0;
}

/* Bumps the revision and updated_at of the services of grid_id using
 * secret name; *bumped counts them. */
static int bump(struct mgc *c, const char *grid_id, const char *name,
                int64_t now, int *bumped)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_str(&f, "secret_names", name);
    bson_t u = BSON_INITIALIZER, inc, set;
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
    mgb_i64(&inc, "revision", 1);
    bson_append_document_end(&u, &inc);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_i64(&set, "updated_at", now);
    bson_append_document_end(&u, &set);
    int64_t matched = 0;
    int rc = mgx_update(c, "grid_services", &f, &u, true, false, &matched, NULL,
                        "secret bump services");
    bson_destroy(&u);
    bson_destroy(&f);
    if (rc == 0)
        *bumped = (int)matched;
    return rc;
}

/* ==== Create, update, delete ==== */

struct secret_ctx {
    const struct store_secret *v; /* create */
    const char *grid_id, *name, *value;
    int64_t now;
    int bumped;
};

/* The grid is locked first (mgx_lock_row): PostgreSQL's foreign key
 * answers CP_ENOTFOUND without it, and a grid deleted meanwhile conflicts
 * instead of keeping an orphan secret. */
static int create_fn(struct mgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    const struct store_secret *v = k->v;
    k->bumped = 0;
    int rc = mgx_lock_row(c, "grids", v->grid_id, "secret create grid");
    if (rc != 0)
        return rc;
    bson_t d = BSON_INITIALIZER;
    mgb_id(&d, "_id", v->id);
    mgb_id(&d, "grid_id", v->grid_id);
    mgb_str(&d, "name", v->name);
    mgb_str(&d, "value", v->value);
    mgb_i64(&d, "created_at", k->now);
    mgb_i64(&d, "updated_at", k->now);
    rc = mgx_insert(c, "grid_secrets", &d, "secret create");
    bson_destroy(&d);
    return rc != 0 ? rc : bump(c, v->grid_id, v->name, k->now, &k->bumped);
}

int mgs_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped)
{
    if (bumped != NULL)
        *bumped = 0;
    struct secret_ctx k = {.v = v};
    k.now = v->created_at ? v->created_at : cp_now_ms();
    int rc = mg_tx(st, create_fn, &k);
    if (rc == 0 && bumped != NULL)
        *bumped = k.bumped;
    return rc;
}

static int update_fn(struct mgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    k->bumped = 0;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", k->grid_id);
    mgb_str(&f, "name", k->name);
    bson_t u = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_str(&set, "value", k->value);
    mgb_i64(&set, "updated_at", k->now);
    bson_append_document_end(&u, &set);
    int64_t matched = 0;
    int rc = mgx_update(c, "grid_secrets", &f, &u, false, false, &matched, NULL,
                        "secret update");
    bson_destroy(&u);
    bson_destroy(&f);
    if (rc == 0 && matched == 0)
        rc = CP_ENOTFOUND;
    return rc != 0 ? rc : bump(c, k->grid_id, k->name, k->now, &k->bumped);
}

int mgs_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped)
{
    if (bumped != NULL)
        *bumped = 0;
    struct secret_ctx k = {
        .grid_id = grid_id, .name = name, .value = value, .now = now};
    int rc = mg_tx(st, update_fn, &k);
    if (rc == 0 && bumped != NULL)
        *bumped = k.bumped;
    return rc;
}

/* As PostgreSQL: the users are checked before the delete, so a name that
 * services use is CP_ECONFLICT whether or not the secret exists. A
 * concurrent update of the secret conflicts with the delete (the
 * transaction is retried). */
static int delete_fn(struct mgc *c, void *ctx)
{
    struct secret_ctx *k = ctx;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", k->grid_id);
    mgb_str(&f, "name", k->name);
    bson_t *p = users_pipeline(k->grid_id, k->name);
    BCON_APPEND(p, "7", "{", "$limit", BCON_INT64(1), "}");
    void *items = NULL;
    size_t len = 0;
    int rc =
        mgx_aggregate(c, "grid_services", p, read_user, sizeof(struct user_row),
                      release_user, &items, &len, "secret users");
    bson_destroy(p);
    if (rc == 0) {
        struct user_row *rows = items;
        for (size_t i = 0; i < len; i++)
            release_user(&rows[i]);
        cp_free(rows);
        if (len > 0)
            rc = CP_ECONFLICT;
    }
    int64_t deleted = 0;
    if (rc == 0)
        rc =
            mgx_delete(c, "grid_secrets", &f, false, &deleted, "secret delete");
    bson_destroy(&f);
    return rc == 0 && deleted == 0 ? CP_ENOTFOUND : rc;
}

int mgs_secret_delete(struct store *st, const char *grid_id, const char *name)
{
    struct secret_ctx k = {.grid_id = grid_id, .name = name};
    return mg_tx(st, delete_fn, &k);
}

/* ==== Reads ==== */

/* Reads of two queries run in one transaction: one snapshot. */
struct read_ctx {
    const char *grid_id, *name;
    struct store_secret *one;
    struct store_secret_list *list;
};

static int get_fn(struct mgc *c, void *ctx)
{
    struct read_ctx *k = ctx;
    store_secret_release(k->one); /* a retried run starts afresh */
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", k->grid_id);
    mgb_str(&f, "name", k->name);
    int rc = mgx_find_one(c, "grid_secrets", &f, NULL, read_secret, k->one,
                          "secret get");
    bson_destroy(&f);
    return rc != 0 ? rc : attach_users(c, k->grid_id, k->name, k->one, 1);
}

/* Both queries in one snapshot: the users belong to the secret read. */
int mgs_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out)
{
    memset(out, 0, sizeof(*out));
    struct read_ctx k = {.grid_id = grid_id, .name = name, .one = out};
    int rc = mg_tx(st, get_fn, &k);
    if (rc != 0)
        store_secret_release(out);
    return rc;
}

static int list_fn(struct mgc *c, void *ctx)
{
    struct read_ctx *k = ctx;
    store_secret_list_release(k->list);
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", k->grid_id);
    bson_t *opts = BCON_NEW("sort", "{", "name", BCON_INT32(1), "}");
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "grid_secrets", &f, opts, read_secret,
                          sizeof(*k->list->items), release_secret, &items, &len,
                          "secret list");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    k->list->items = items;
    k->list->len = len;
    return attach_users(c, k->grid_id, NULL, k->list->items, k->list->len);
}

int mgs_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out)
{
    memset(out, 0, sizeof(*out));
    struct read_ctx k = {.grid_id = grid_id, .list = out};
    int rc = mg_tx(st, list_fn, &k);
    if (rc != 0)
        store_secret_list_release(out);
    return rc;
}

int mgs_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out)
{
    memset(out, 0, sizeof(*out));
    bson_t *f = BCON_NEW("_id", "{", "$gt",
                         BCON_UTF8(after_id != NULL ? after_id : ""), "}");
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit",
                            BCON_INT64(limit > 0 ? limit : 100));
    void *items = NULL;
    size_t len = 0;
    int rc = mg_find_all(st, "grid_secrets", f, opts, read_secret,
                         sizeof(*out->items), release_secret, &items, &len,
                         "secrets page");
    bson_destroy(opts);
    bson_destroy(f);
    if (rc == 0) {
        out->items = items;
        out->len = len;
    }
    return rc;
}

/* ==== Re-sealing (compare-and-set) ==== */

struct reseal_ctx {
    const char *coll, *field; /* the sealed value: field of coll */
    const char *id, *old, *value;
};

/* Sets field to value where _id is id and field is still old; when
 * nothing matched, CP_ECONFLICT if the document exists (its value
 * changed), else CP_ENOTFOUND. */
static int reseal_fn(struct mgc *c, void *ctx)
{
    struct reseal_ctx *k = ctx;
    /* PostgreSQL's "col=$2" never matches a NULL old. */
    if (k->old != NULL) {
        bson_t f = BSON_INITIALIZER;
        mgb_id(&f, "_id", k->id);
        mgb_str(&f, k->field, k->old);
        bson_t u = BSON_INITIALIZER, set;
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
        mgb_str(&set, k->field, k->value);
        bson_append_document_end(&u, &set);
        int64_t matched = 0;
        int rc = mgx_update(c, k->coll, &f, &u, false, false, &matched, NULL,
                            "reseal");
        bson_destroy(&u);
        bson_destroy(&f);
        if (rc != 0 || matched > 0)
            return rc;
    }
    int rc = row_exists(c, k->coll, k->id, "reseal check");
    return rc == 0 ? CP_ECONFLICT : rc;
}

static int reseal_cas(struct store *st, const char *coll, const char *field,
                      const char *id, const char *old, const char *value)
{
    struct reseal_ctx k = {coll, field, id, old, value};
    return mg_tx(st, reseal_fn, &k);
}

int mgs_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value)
{
    return reseal_cas(st, "grid_secrets", "value", id, old, value);
}

int mgs_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(st, "grids", "token_sealed", id, old, value);
}

int mgs_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(st, "host_nodes", "token_sealed", id, old, value);
}

int mgs_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value)
{
    return reseal_cas(st, "registries", "password_sealed", id, old, value);
}
