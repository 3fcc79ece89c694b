/* The MongoDB backend: config, users, access tokens and codes, grids with
 * their members, and the HA primitives (versioned keys, leases). The
 * behavioural reference is store_pg.c; what differs is said where it is
 * done.
 *
 * Documents (see store_mongo_int.h): config {_id: key, value}; kv {_id:
 * key, value, version}; leases {_id: name, holder, expires_at}; users,
 * access_tokens and grids with their columns; grid_users {_id:
 * "<grid_id>:<user_id>", grid_id, user_id} (the composite _id keeps a
 * membership unique even while two masters add it at once).
 *
 * Foreign keys are checked by hand where PostgreSQL's would answer
 * CP_ENOTFOUND (token_create, grid_create's creator, grid_user_add), and
 * grid_delete's ON DELETE CASCADE chains are followed by hand inside its
 * transaction.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* token_touch writes at most once per this interval (as PostgreSQL). */
#define MG_TOUCH_INTERVAL_MS 60000
/* lease_acquire's tries when the lease changes hands under it. */
#define MG_LEASE_TRIES 4

/* ==== Small helpers ==== */

/* Reads nothing: for existence checks. */
static int read_none(const bson_t *d, void *item)
{
    CP_UNUSED(d);
    CP_UNUSED(item);
    return 0;
}

/* 1 when a document of coll matches filter, 0 when none, or a CP_E*
 * code. */
static int exists1(struct mgc *c, const char *coll, const bson_t *filter,
                   const char *what)
{
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "_id", 1);
    bson_append_document_end(&opts, &proj);
    int rc = mgx_find_one(c, coll, filter, &opts, read_none, NULL, what);
    bson_destroy(&opts);
    if (rc == 0)
        return 1;
    return rc == CP_ENOTFOUND ? 0 : rc;
}

/* exists1 on {key: value}. */
static int exists_by(struct mgc *c, const char *coll, const char *key,
                     const char *value, const char *what)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, key, value);
    int rc = exists1(c, coll, &f, what);
    bson_destroy(&f);
    return rc;
}

/* opts {sort: {k1: 1[, k2: 1]}}. */
static void sort_opts(bson_t *opts, const char *k1, const char *k2)
{
    bson_t sort;
    BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, k1, 1);
    if (k2 != NULL)
        BSON_APPEND_INT32(&sort, k2, 1);
    bson_append_document_end(opts, &sort);
}

/* A list of ids read from one field of many documents. */
struct idrow {
    char id[STORE_ID_LEN + 1];
};

struct idv {
    struct idrow *v;
    size_t n;
};

static int read_id(const bson_t *d, void *item)
{
    mgr_id(d, ((struct idrow *)item)->id);
    return 0;
}

static int read_grid_id(const bson_t *d, void *item)
{
    mgr_fixed(d, "grid_id", ((struct idrow *)item)->id, STORE_ID_LEN + 1);
    return 0;
}

static int read_user_id(const bson_t *d, void *item)
{
    mgr_fixed(d, "user_id", ((struct idrow *)item)->id, STORE_ID_LEN + 1);
    return 0;
}

/* The field read by rd (projected as field) of every document of coll
 * matching filter, into *out (free out->v with cp_free). */
static int ids_of(struct mgc *c, const char *coll, const bson_t *filter,
                  const char *field, mg_doc_fn *rd, struct idv *out,
                  const char *what)
{
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, field, 1);
    bson_append_document_end(&opts, &proj);
    void *items = NULL;
    out->v = NULL;
    out->n = 0;
    int rc = mgx_find_all(c, coll, filter, &opts, rd, sizeof(struct idrow),
                          NULL, &items, &out->n, what);
    bson_destroy(&opts);
    if (rc != 0) {
        out->n = 0;
        return rc;
    }
    out->v = items;
    return 0;
}

/* {key: {$in: [ids...]}} appended to b. */
static void append_in(bson_t *b, const char *key, const struct idv *ids)
{
    bson_t in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < ids->n; i++) {
        char buf[16];
        const char *k = NULL;
        bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
        bson_append_utf8(&arr, k, -1, ids->v[i].id, -1);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(b, &in);
}

/* deleteMany {key: {$in: ids}} on coll; nothing to do without ids. */
static int delete_in(struct mgc *c, const char *coll, const char *key,
                     const struct idv *ids, const char *what)
{
    if (ids->n == 0)
        return 0;
    bson_t f = BSON_INITIALIZER;
    append_in(&f, key, ids);
    int rc = mgx_delete(c, coll, &f, true, NULL, what);
    bson_destroy(&f);
    return rc;
}

/* ==== Config ==== */

static int read_value(const bson_t *d, void *item)
{
    *(char **)item = mgr_str(d, "value");
    return 0;
}

int mgu_config_get(struct store *st, const char *key, char **out)
{
    *out = NULL;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", key);
    int rc = mg_find_one(st, "config", &f, NULL, read_value, out, "config_get");
    bson_destroy(&f);
    if (rc != 0) {
        cp_free(*out);
        *out = NULL;
    }
    return rc;
}

int mgu_config_set(struct store *st, const char *key, const char *value)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", key);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_str(&set, "value", value);
    bson_append_document_end(&u, &set);
    int rc = mg_update(st, "config", &f, &u, false, true, NULL, "config_set");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

/* An insert: the _id clash of an existing key is "already there". */
int mgu_config_set_if_absent(struct store *st, const char *key,
                             const char *value, bool *written)
{
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "_id", key);
    mgb_str(&d, "value", value);
    int rc = mg_insert(st, "config", &d, "config_set_if_absent");
    bson_destroy(&d);
    if (written != NULL)
        *written = rc == 0;
    return rc == CP_ECONFLICT ? 0 : rc;
}

/* ==== Users ==== */

static int read_user(const bson_t *d, void *item)
{
    struct store_user *u = item;
    memset(u, 0, sizeof(*u));
    mgr_id(d, u->id);
    u->email = mgr_str(d, "email");
    u->name = mgr_str(d, "name");
    u->roles = (unsigned)mgr_i64(d, "roles");
    u->created_at = mgr_i64(d, "created_at");
    u->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_user(void *item)
{
    store_user_release(item);
}

static int user_get_one(struct store *st, const char *key, const char *value,
                        struct store_user *out)
{
    memset(out, 0, sizeof(*out));
    if (value == NULL)
        return CP_ENOTFOUND; /* "= NULL" matches nothing in SQL */
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, key, value);
    int rc = mg_find_one(st, "users", &f, NULL, read_user, out, "user_get");
    bson_destroy(&f);
    if (rc != 0)
        store_user_release(out);
    return rc;
}

int mgu_user_create(struct store *st, const struct store_user *u)
{
    if (u->id[0] == '\0' || u->email == NULL)
        return CP_EINVAL;
    int64_t now = cp_now_ms();
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "_id", u->id);
    mgb_str(&d, "email", u->email);
    mgb_str(&d, "name", u->name);
    mgb_i64(&d, "roles", (int64_t)u->roles);
    mgb_i64(&d, "created_at", u->created_at ? u->created_at : now);
    mgb_i64(&d, "updated_at", u->updated_at ? u->updated_at : now);
    int rc = mg_insert(st, "users", &d, "user_create");
    bson_destroy(&d);
    return rc;
}

int mgu_user_get(struct store *st, const char *id, struct store_user *out)
{
    return user_get_one(st, "_id", id, out);
}

int mgu_user_get_by_email(struct store *st, const char *email,
                          struct store_user *out)
{
    return user_get_one(st, "email", email, out);
}

int mgu_user_list(struct store *st, struct store_user_list *out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    sort_opts(&opts, "email", NULL);
    void *items = NULL;
    out->items = NULL;
    out->len = 0;
    int rc = mg_find_all(st, "users", &f, &opts, read_user, sizeof(*out->items),
                         release_user, &items, &out->len, "user_list");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0) {
        out->len = 0;
        return rc;
    }
    out->items = items;
    return 0;
}

int mgu_user_set_roles(struct store *st, const char *id, unsigned roles)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_i64(&set, "roles", (int64_t)roles);
    mgb_i64(&set, "updated_at", cp_now_ms());
    bson_append_document_end(&u, &set);
    int rc = mg_update_row(st, "users", &f, &u, CP_ENOTFOUND, "user_set_roles");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

/* ==== Tokens and codes ==== */

static int read_token(const bson_t *d, void *item)
{
    struct store_token *t = item;
    memset(t, 0, sizeof(*t));
    mgr_id(d, t->id);
    mgr_fixed(d, "user_id", t->user_id, sizeof(t->user_id));
    t->kind = mgr_i64(d, "kind") == STORE_TOKEN_CODE ? STORE_TOKEN_CODE
                                                     : STORE_TOKEN_BEARER;
    t->token_hash = mgr_str(d, "token_hash");
    t->refresh_hash = mgr_str(d, "refresh_hash");
    mgr_fixed(d, "token_last4", t->token_last4, sizeof(t->token_last4));
    mgr_fixed(d, "refresh_last4", t->refresh_last4, sizeof(t->refresh_last4));
    t->scopes = mgr_str(d, "scopes");
    t->description = mgr_str(d, "description");
    t->internal = mgr_bool(d, "internal");
    t->is_bootstrap = mgr_bool(d, "is_bootstrap");
    mgr_fixed(d, "parent_code_id", t->parent_code_id,
              sizeof(t->parent_code_id));
    t->expires_at = mgr_i64(d, "expires_at");
    t->created_at = mgr_i64(d, "created_at");
    t->last_used_at = mgr_i64(d, "last_used_at");
    return 0;
}

static void release_token(void *item)
{
    store_token_release(item);
}

/* $or: [{expires_at: 0}, {expires_at: {$gt: now}}]: live at now. */
static void append_live(bson_t *f, int64_t now)
{
    bson_t alt, a, b, gt;
    BSON_APPEND_ARRAY_BEGIN(f, "$or", &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "0", &a);
    mgb_i64(&a, "expires_at", 0);
    bson_append_document_end(&alt, &a);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "1", &b);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "expires_at", &gt);
    mgb_i64(&gt, "$gt", now);
    bson_append_document_end(&b, &gt);
    bson_append_document_end(&alt, &b);
    bson_append_array_end(f, &alt);
}

struct token_create_ctx {
    const struct store_token *t;
};

/* The user must exist (PostgreSQL's foreign key); users are never
 * deleted, so the check and the insert need no transaction. */
static int token_create_fn(struct mgc *c, void *ctx)
{
    const struct store_token *t = ((struct token_create_ctx *)ctx)->t;
    int rc = exists_by(c, "users", "_id", t->user_id, "token user");
    if (rc == 0)
        return CP_ENOTFOUND;
    if (rc < 0)
        return rc;
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "_id", t->id);
    mgb_id(&d, "user_id", t->user_id);
    mgb_i64(&d, "kind", (int64_t)t->kind);
    mgb_str(&d, "token_hash", t->token_hash);
    mgb_str(&d, "refresh_hash", t->refresh_hash);
    mgb_str(&d, "token_last4", t->token_last4);
    mgb_str(&d, "refresh_last4", t->refresh_last4);
    mgb_str(&d, "scopes", t->scopes ? t->scopes : "");
    mgb_str(&d, "description", t->description);
    mgb_bool(&d, "internal", t->internal);
    mgb_bool(&d, "is_bootstrap", t->is_bootstrap);
    mgb_id(&d, "parent_code_id", t->parent_code_id);
    mgb_i64(&d, "expires_at", t->expires_at);
    mgb_i64(&d, "created_at", t->created_at ? t->created_at : cp_now_ms());
    mgb_i64(&d, "last_used_at", t->last_used_at);
    rc = mgx_insert(c, "access_tokens", &d, "token_create");
    bson_destroy(&d);
    return rc;
}

int mgu_token_create(struct store *st, const struct store_token *t)
{
    if (t->id[0] == '\0' || t->token_hash == NULL)
        return CP_EINVAL;
    struct token_create_ctx k = {t};
    return mg_do(st, token_create_fn, &k);
}

int mgu_token_get(struct store *st, const char *id, struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc = mg_find_one(st, "access_tokens", &f, NULL, read_token, out,
                         "token lookup");
    bson_destroy(&f);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

int mgu_token_find(struct store *st, enum store_token_kind kind,
                   const char *hash, int64_t now, struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    if (hash == NULL)
        return CP_ENOTFOUND;
    bson_t f = BSON_INITIALIZER;
    mgb_i64(&f, "kind", (int64_t)kind);
    mgb_str(&f, "token_hash", hash);
    append_live(&f, now);
    int rc = mg_find_one(st, "access_tokens", &f, NULL, read_token, out,
                         "token lookup");
    bson_destroy(&f);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

struct take_ctx {
    const char *hash;
    int64_t now;
    struct store_token *out;
};

/* A live code that is not a bootstrap code is deleted as it is read
 * (findOneAndDelete: of two masters taking it at once, one gets it);
 * a bootstrap code is only read. PostgreSQL reads the row first under a
 * lock and then decides; the outcome is the same. */
static int code_take_fn(struct mgc *c, void *ctx)
{
    struct take_ctx *t = ctx;
    store_token_release(t->out);
    bson_t f = BSON_INITIALIZER, ne;
    mgb_i64(&f, "kind", STORE_TOKEN_CODE);
    mgb_str(&f, "token_hash", t->hash);
    append_live(&f, t->now);
    BSON_APPEND_DOCUMENT_BEGIN(&f, "is_bootstrap", &ne);
    mgb_bool(&ne, "$ne", true);
    bson_append_document_end(&f, &ne);
    int rc = mgx_find_delete(c, "access_tokens", &f, read_token, t->out,
                             "code take");
    bson_destroy(&f);
    if (rc != CP_ENOTFOUND)
        return rc;
    store_token_release(t->out);
    bson_t b = BSON_INITIALIZER;
    mgb_i64(&b, "kind", STORE_TOKEN_CODE);
    mgb_str(&b, "token_hash", t->hash);
    append_live(&b, t->now);
    mgb_bool(&b, "is_bootstrap", true);
    rc = mgx_find_one(c, "access_tokens", &b, NULL, read_token, t->out,
                      "code take");
    bson_destroy(&b);
    return rc;
}

int mgu_code_take(struct store *st, const char *hash, int64_t now,
                  struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    if (hash == NULL)
        return CP_ENOTFOUND;
    struct take_ctx t = {hash, now, out};
    int rc = mg_do(st, code_take_fn, &t);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

/* Refresh tokens are single use: findOneAndDelete. */
static int refresh_take_fn(struct mgc *c, void *ctx)
{
    struct take_ctx *t = ctx;
    bson_t f = BSON_INITIALIZER;
    mgb_i64(&f, "kind", STORE_TOKEN_BEARER);
    mgb_str(&f, "refresh_hash", t->hash);
    int rc = mgx_find_delete(c, "access_tokens", &f, read_token, t->out,
                             "refresh take");
    bson_destroy(&f);
    return rc;
}

int mgu_refresh_take(struct store *st, const char *refresh_hash,
                     struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    if (refresh_hash == NULL)
        return CP_ENOTFOUND; /* never matches a token without one */
    struct take_ctx t = {refresh_hash, 0, out};
    int rc = mg_do(st, refresh_take_fn, &t);
    if (rc != 0)
        store_token_release(out);
    return rc;
}

int mgu_token_list_by_user(struct store *st, const char *user_id,
                           struct store_token_list *out)
{
    out->items = NULL;
    out->len = 0;
    if (user_id == NULL || user_id[0] == '\0')
        return 0;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "user_id", user_id);
    sort_opts(&opts, "created_at", "_id");
    void *items = NULL;
    int rc = mg_find_all(st, "access_tokens", &f, &opts, read_token,
                         sizeof(*out->items), release_token, &items, &out->len,
                         "token_list");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0) {
        out->len = 0;
        return rc;
    }
    out->items = items;
    return 0;
}

int mgu_token_delete(struct store *st, const char *id)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int64_t deleted = 0;
    int rc =
        mg_delete(st, "access_tokens", &f, false, &deleted, "token_delete");
    bson_destroy(&f);
    return rc == 0 && deleted == 0 ? CP_ENOTFOUND : rc;
}

/* The "touched within the interval" test is in the filter: a token used
 * again soon matches nothing and nothing is written. */
int mgu_token_touch(struct store *st, const char *id, int64_t now)
{
    bson_t f = BSON_INITIALIZER, lt, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&f, "last_used_at", &lt);
    mgb_i64(&lt, "$lt", now - MG_TOUCH_INTERVAL_MS);
    bson_append_document_end(&f, &lt);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_i64(&set, "last_used_at", now);
    bson_append_document_end(&u, &set);
    int rc = mg_update(st, "access_tokens", &f, &u, false, false, NULL,
                       "token_touch");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

struct confirm_ctx {
    const char *token_id, *code_id;
};

static int confirm_fn(struct mgc *c, void *ctx)
{
    struct confirm_ctx *k = ctx;
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "_id", k->code_id);
    int rc = mgx_delete(c, "access_tokens", &d, false, NULL, "token delete");
    bson_destroy(&d);
    if (rc != 0)
        return rc;
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", k->token_id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_id(&set, "parent_code_id", ""); /* "" is stored as null */
    bson_append_document_end(&u, &set);
    rc = mgx_update(c, "access_tokens", &f, &u, false, false, NULL, NULL,
                    "token confirm");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

int mgu_token_confirm(struct store *st, const char *token_id,
                      const char *code_id)
{
    struct confirm_ctx k = {token_id, code_id};
    return mg_tx(st, confirm_fn, &k);
}

int mgu_bootstrap_codes_delete(struct store *st)
{
    bson_t f = BSON_INITIALIZER;
    mgb_i64(&f, "kind", STORE_TOKEN_CODE);
    mgb_bool(&f, "is_bootstrap", true);
    int rc = mg_delete(st, "access_tokens", &f, true, NULL,
                       "bootstrap_codes_delete");
    bson_destroy(&f);
    return rc;
}

int mgu_tokens_expire(struct store *st, int64_t now, int *deleted)
{
    bson_t f = BSON_INITIALIZER, cond;
    BSON_APPEND_DOCUMENT_BEGIN(&f, "expires_at", &cond);
    mgb_i64(&cond, "$ne", 0);
    mgb_i64(&cond, "$lte", now);
    bson_append_document_end(&f, &cond);
    int64_t n = 0;
    int rc = mg_delete(st, "access_tokens", &f, true, &n, "tokens_expire");
    bson_destroy(&f);
    if (deleted != NULL)
        *deleted = rc == 0 ? (int)n : 0;
    return rc;
}

/* ==== Grids ==== */

static int read_grid(const bson_t *d, void *item)
{
    struct store_grid *g = item;
    memset(g, 0, sizeof(*g));
    mgr_id(d, g->id);
    g->name = mgr_str(d, "name");
    g->token_hash = mgr_str(d, "token_hash");
    g->token_sealed = mgr_str(d, "token_sealed");
    g->initial_size = (int)mgr_i64(d, "initial_size");
    g->subnet = mgr_str(d, "subnet");
    g->supernet = mgr_str(d, "supernet");
    g->settings = mgr_json(d, "settings", NULL);
    if (!json_is_object(g->settings)) {
        json_decref(g->settings);
        g->settings = json_object();
    }
    g->created_at = mgr_i64(d, "created_at");
    g->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_grid(void *item)
{
    store_grid_release(item);
}

/* A count per grid id from a $group. */
struct count_row {
    char id[STORE_ID_LEN + 1];
    int64_t n;
};

static int read_count(const bson_t *d, void *item)
{
    struct count_row *r = item;
    mgr_id(d, r->id);
    r->n = mgr_i64(d, "n");
    return 0;
}

enum grid_count { GC_NODES, GC_SERVICES, GC_USERS, GC_CONTAINERS };

static void set_count(struct store_grid *g, enum grid_count which, int n)
{
    switch (which) {
    case GC_NODES:
        g->node_count = n;
        break;
    case GC_SERVICES:
        g->service_count = n;
        break;
    case GC_USERS:
        g->user_count = n;
        break;
    case GC_CONTAINERS:
        g->container_count = n;
        break;
    }
}

/* Fills the counts of grids v[0..n) as PostgreSQL's GRID_SELECT counts
 * them (nodes, services, members, live containers), with one $group per
 * counted collection over every grid id at once: four queries however
 * many grids there are. */
static int grid_counts(struct mgc *c, struct store_grid *v, size_t n)
{
    static const struct {
        const char *coll;
        enum grid_count which;
        bool live_only; /* containers: deleted_at = 0 */
    } counted[] = {
        {"host_nodes", GC_NODES, false},
        {"grid_services", GC_SERVICES, false},
        {"grid_users", GC_USERS, false},
        {"containers", GC_CONTAINERS, true},
    };
    if (n == 0)
        return 0;
    struct idv ids = {cp_calloc(n, sizeof(struct idrow)), n};
    for (size_t i = 0; i < n; i++)
        memcpy(ids.v[i].id, v[i].id, sizeof(ids.v[i].id));
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < CP_ARRAY_LEN(counted); k++) {
        bson_t p = BSON_INITIALIZER, st0, match, st1, group, sum;
        BSON_APPEND_DOCUMENT_BEGIN(&p, "0", &st0);
        BSON_APPEND_DOCUMENT_BEGIN(&st0, "$match", &match);
        append_in(&match, "grid_id", &ids);
        if (counted[k].live_only) {
            /* deleted_at = 0; an absent or null one reads as 0 too */
            bson_t in, arr;
            BSON_APPEND_DOCUMENT_BEGIN(&match, "deleted_at", &in);
            BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
            mgb_i64(&arr, "0", 0);
            BSON_APPEND_NULL(&arr, "1");
            bson_append_array_end(&in, &arr);
            bson_append_document_end(&match, &in);
        }
        bson_append_document_end(&st0, &match);
        bson_append_document_end(&p, &st0);
        BSON_APPEND_DOCUMENT_BEGIN(&p, "1", &st1);
        BSON_APPEND_DOCUMENT_BEGIN(&st1, "$group", &group);
        BSON_APPEND_UTF8(&group, "_id", "$grid_id");
        BSON_APPEND_DOCUMENT_BEGIN(&group, "n", &sum);
        BSON_APPEND_INT32(&sum, "$sum", 1);
        bson_append_document_end(&group, &sum);
        bson_append_document_end(&st1, &group);
        bson_append_document_end(&p, &st1);

        void *items = NULL;
        size_t len = 0;
        rc = mgx_aggregate(c, counted[k].coll, &p, read_count,
                           sizeof(struct count_row), NULL, &items, &len,
                           "grid counts");
        bson_destroy(&p);
        if (rc != 0)
            break;
        struct count_row *rows = items;
        for (size_t i = 0; i < n; i++) {
            int cnt = 0;
            for (size_t j = 0; j < len; j++)
                if (strcmp(rows[j].id, v[i].id) == 0) {
                    cnt = (int)rows[j].n;
                    break;
                }
            set_count(&v[i], counted[k].which, cnt);
        }
        cp_free(items);
    }
    cp_free(ids.v);
    return rc;
}

struct grid_get_ctx {
    const char *key, *value;
    struct store_grid *out;
};

static int grid_get_fn(struct mgc *c, void *ctx)
{
    struct grid_get_ctx *k = ctx;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, k->key, k->value);
    int rc = mgx_find_one(c, "grids", &f, NULL, read_grid, k->out, "grid_get");
    bson_destroy(&f);
    if (rc == 0)
        rc = grid_counts(c, k->out, 1);
    return rc;
}

static int grid_get_one(struct store *st, const char *key, const char *value,
                        struct store_grid *out)
{
    memset(out, 0, sizeof(*out));
    if (value == NULL)
        return CP_ENOTFOUND;
    struct grid_get_ctx k = {key, value, out};
    int rc = mg_do(st, grid_get_fn, &k);
    if (rc != 0)
        store_grid_release(out);
    return rc;
}

int mgu_grid_get(struct store *st, const char *name, struct store_grid *out)
{
    return grid_get_one(st, "name", name, out);
}

int mgu_grid_get_by_token_hash(struct store *st, const char *hash,
                               struct store_grid *out)
{
    return grid_get_one(st, "token_hash", hash, out);
}

int mgu_grid_get_by_id(struct store *st, const char *id, struct store_grid *out)
{
    return grid_get_one(st, "_id", id, out);
}

struct grid_list_ctx {
    const char *member_of;
    struct store_grid_list *out;
};

/* Six queries at most: the member's grid ids, the grids, four counts. */
static int grid_list_fn(struct mgc *c, void *ctx)
{
    struct grid_list_ctx *k = ctx;
    bson_t f = BSON_INITIALIZER;
    if (k->member_of != NULL) {
        bson_t m = BSON_INITIALIZER;
        mgb_str(&m, "user_id", k->member_of);
        struct idv ids = {NULL, 0};
        int rc = ids_of(c, "grid_users", &m, "grid_id", read_grid_id, &ids,
                        "grid members");
        bson_destroy(&m);
        if (rc != 0 || ids.n == 0) {
            cp_free(ids.v);
            bson_destroy(&f);
            return rc;
        }
        append_in(&f, "_id", &ids);
        cp_free(ids.v);
    }
    bson_t opts = BSON_INITIALIZER;
    sort_opts(&opts, "name", NULL);
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "grids", &f, &opts, read_grid,
                          sizeof(struct store_grid), release_grid, &items, &len,
                          "grid_list");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    k->out->items = items;
    k->out->len = len;
    return grid_counts(c, k->out->items, k->out->len);
}

int mgu_grid_list(struct store *st, const char *member_of,
                  struct store_grid_list *out)
{
    out->items = NULL;
    out->len = 0;
    struct grid_list_ctx k = {member_of, out};
    int rc = mg_do(st, grid_list_fn, &k);
    if (rc != 0)
        store_grid_list_release(out);
    return rc;
}

struct grid_create_ctx {
    const struct store_grid *g;
    const char *creator_id;
    const char *clash;
};

/* grid_users' _id: "<grid_id>:<user_id>". */
static void member_key(char *out, size_t size, const char *grid_id,
                       const char *user_id)
{
    snprintf(out, size, "%s:%s", grid_id, user_id);
}

static void member_doc(bson_t *d, const char *grid_id, const char *user_id)
{
    char key[2 * (STORE_ID_LEN + 1) + 1];
    member_key(key, sizeof(key), grid_id, user_id);
    mgb_str(d, "_id", key);
    mgb_str(d, "grid_id", grid_id);
    mgb_str(d, "user_id", user_id);
}

/* Inserts the grid, its null stack, its default network and the
 * creator's membership. Of two masters creating the same name at once,
 * one commits; the other's transaction meets a write conflict (retried:
 * then it finds the name taken) or the unique index, whose name says
 * which field clashed. */
static int grid_create_fn(struct mgc *c, void *ctx)
{
    struct grid_create_ctx *k = ctx;
    const struct store_grid *g = k->g;
    k->clash = NULL;
    int rc = exists_by(c, "grids", "name", g->name, "grid exists");
    if (rc == 1) {
        k->clash = "name";
        return CP_ECONFLICT;
    }
    if (rc == 0)
        rc = exists_by(c, "grids", "token_hash", g->token_hash, "grid exists");
    if (rc == 1) {
        k->clash = "token";
        return CP_ECONFLICT;
    }
    if (rc != 0)
        return rc;
    if (k->creator_id != NULL) {
        /* PostgreSQL's foreign key on grid_users.user_id */
        rc = exists_by(c, "users", "_id", k->creator_id, "grid creator");
        if (rc == 0)
            return CP_ENOTFOUND;
        if (rc < 0)
            return rc;
    }

    int64_t now = g->created_at ? g->created_at : cp_now_ms();
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "_id", g->id);
    mgb_str(&d, "name", g->name);
    mgb_str(&d, "token_hash", g->token_hash);
    mgb_str(&d, "token_sealed", g->token_sealed);
    mgb_i64(&d, "initial_size", g->initial_size);
    mgb_str(&d, "subnet", g->subnet);
    mgb_str(&d, "supernet", g->supernet);
    mgb_json(&d, "settings", g->settings, "{}");
    mgb_i64(&d, "created_at", now);
    mgb_i64(&d, "updated_at", g->updated_at ? g->updated_at : now);
    rc = mgx_insert(c, "grids", &d, "grid insert");
    bson_destroy(&d);
    if (rc == CP_ECONFLICT) {
        k->clash = strcmp(c->conflict, "grids_name_key") == 0         ? "name"
                   : strcmp(c->conflict, "grids_token_hash_key") == 0 ? "token"
                                                                      : "id";
        return rc;
    }
    if (rc != 0)
        return rc;

    char id[STORE_ID_LEN + 1];
    store_new_id(id);
    bson_t s = BSON_INITIALIZER;
    mgb_str(&s, "_id", id);
    mgb_str(&s, "grid_id", g->id);
    mgb_str(&s, "name", "null");
    mgb_i64(&s, "created_at", now);
    mgb_i64(&s, "updated_at", now);
    mgb_str(&s, "labels", "[]");
    mgb_str(&s, "parent_name", NULL);
    mgb_i64(&s, "revision", 0);
    mgb_bool(&s, "removing", false);
    rc = mgx_insert(c, "stacks", &s, "null stack insert");
    bson_destroy(&s);
    if (rc != 0)
        return rc;

    store_new_id(id);
    bson_t n = BSON_INITIALIZER;
    mgb_str(&n, "_id", id);
    mgb_str(&n, "grid_id", g->id);
    mgb_str(&n, "name", "kontena");
    mgb_str(&n, "subnet", g->subnet);
    mgb_bool(&n, "multicast", true);
    mgb_bool(&n, "internal", false);
    rc = mgx_insert(c, "networks", &n, "default network insert");
    bson_destroy(&n);
    if (rc != 0 || k->creator_id == NULL)
        return rc;

    bson_t m = BSON_INITIALIZER;
    member_doc(&m, g->id, k->creator_id);
    rc = mgx_insert(c, "grid_users", &m, "grid member insert");
    bson_destroy(&m);
    return rc;
}

int mgu_grid_create(struct store *st, const struct store_grid *g,
                    const char *creator_id, const char **field)
{
    if (field != NULL)
        *field = NULL;
    if (g->id[0] == '\0' || g->name == NULL || g->token_hash == NULL)
        return CP_EINVAL;
    struct grid_create_ctx k = {g, creator_id, NULL};
    int rc = mg_tx(st, grid_create_fn, &k);
    if (rc == CP_ECONFLICT && field != NULL)
        *field = k.clash;
    return rc;
}

int mgu_grid_update(struct store *st, const struct store_grid *g)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", g->id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_json(&set, "settings", g->settings, "{}");
    mgb_i64(&set, "updated_at", g->updated_at ? g->updated_at : cp_now_ms());
    bson_append_document_end(&u, &set);
    int rc = mg_update_row(st, "grids", &f, &u, CP_ENOTFOUND, "grid_update");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

/* The collections whose rows reference the grid by grid_id with ON
 * DELETE CASCADE (store_pg_schema.c); audit_logs has no foreign key and
 * outlives the grid. */
static const char *const grid_children[] = {
    "grid_users",    "stacks",     "networks",       "host_nodes",
    "grid_services", "containers", "container_logs", "event_logs",
    "grid_secrets",  "registries",
};

/* Deletes the grid document first: that write makes a concurrent
 * transaction that writes the grid (as PostgreSQL's row lock would be
 * taken) conflict with this one. Then the emptiness check, then the
 * cascades by hand, grandchildren first:
 *   stacks -> stack_revisions, stack_deploys, grid_services (stack_id)
 *   grid_services -> grid_service_instances, grid_service_deploys
 *   host_nodes -> host_node_stats
 * The nodes and services are empty by the check, but their chains are
 * followed all the same, as the database's cascade would. */
static int grid_delete_fn(struct mgc *c, void *ctx)
{
    const char *id = ctx;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int64_t deleted = 0;
    int rc = mgx_delete(c, "grids", &f, false, &deleted, "grid_delete");
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    if (deleted == 0)
        return CP_ENOTFOUND;
    rc = exists_by(c, "host_nodes", "grid_id", id, "grid in use");
    if (rc == 0)
        rc = exists_by(c, "grid_services", "grid_id", id, "grid in use");
    if (rc == 1)
        return CP_ECONFLICT;
    if (rc != 0)
        return rc;

    bson_t g = BSON_INITIALIZER;
    mgb_str(&g, "grid_id", id);
    struct idv stacks = {NULL, 0}, nodes = {NULL, 0}, services = {NULL, 0};
    rc = ids_of(c, "stacks", &g, "_id", read_id, &stacks, "grid stacks");
    if (rc == 0)
        rc = ids_of(c, "host_nodes", &g, "_id", read_id, &nodes, "grid nodes");
    if (rc == 0) {
        /* services of the grid, and of its stacks */
        bson_t sf = BSON_INITIALIZER, alt, a, b;
        BSON_APPEND_ARRAY_BEGIN(&sf, "$or", &alt);
        BSON_APPEND_DOCUMENT_BEGIN(&alt, "0", &a);
        mgb_str(&a, "grid_id", id);
        bson_append_document_end(&alt, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&alt, "1", &b);
        append_in(&b, "stack_id", &stacks);
        bson_append_document_end(&alt, &b);
        bson_append_array_end(&sf, &alt);
        rc = ids_of(c, "grid_services", &sf, "_id", read_id, &services,
                    "grid services");
        bson_destroy(&sf);
    }
    if (rc == 0)
        rc = delete_in(c, "stack_revisions", "stack_id", &stacks,
                       "grid_delete stack_revisions");
    if (rc == 0)
        rc = delete_in(c, "stack_deploys", "stack_id", &stacks,
                       "grid_delete stack_deploys");
    if (rc == 0)
        rc = delete_in(c, "grid_service_instances", "service_id", &services,
                       "grid_delete instances");
    if (rc == 0)
        rc = delete_in(c, "grid_service_deploys", "service_id", &services,
                       "grid_delete deploys");
    if (rc == 0)
        rc = delete_in(c, "grid_services", "_id", &services,
                       "grid_delete services");
    if (rc == 0)
        rc = delete_in(c, "host_node_stats", "node_id", &nodes,
                       "grid_delete node stats");
    for (size_t i = 0; rc == 0 && i < CP_ARRAY_LEN(grid_children); i++)
        rc = mgx_delete(c, grid_children[i], &g, true, NULL, "grid_delete");
    bson_destroy(&g);
    cp_free(stacks.v);
    cp_free(nodes.v);
    cp_free(services.v);
    return rc;
}

int mgu_grid_delete(struct store *st, const char *id)
{
    if (id == NULL)
        return CP_ENOTFOUND;
    return mg_tx(st, grid_delete_fn, (void *)(uintptr_t)id);
}

struct member_ctx {
    const char *grid_id, *user_id;
};

/* Adding an existing member is a no-op; a missing grid or user is
 * CP_ENOTFOUND (PostgreSQL's foreign keys, checked in the transaction;
 * the grid is locked, so a grid_delete meanwhile conflicts). */
static int member_add_fn(struct mgc *c, void *ctx)
{
    struct member_ctx *k = ctx;
    int rc = mgx_lock_row(c, "grids", k->grid_id, "grid member grid");
    rc = rc == 0 ? 1 : rc == CP_ENOTFOUND ? 0 : rc;
    if (rc == 1)
        rc = exists_by(c, "users", "_id", k->user_id, "grid member user");
    if (rc == 0)
        return CP_ENOTFOUND;
    if (rc < 0)
        return rc;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", k->grid_id);
    mgb_str(&f, "user_id", k->user_id);
    rc = exists1(c, "grid_users", &f, "grid member");
    bson_destroy(&f);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    bson_t m = BSON_INITIALIZER;
    member_doc(&m, k->grid_id, k->user_id);
    rc = mgx_insert(c, "grid_users", &m, "grid_user_add");
    bson_destroy(&m);
    return rc;
}

/* A duplicate key aborts the transaction, so it is read here: the
 * membership is there (added at the same moment by another master). */
int mgu_grid_user_add(struct store *st, const char *grid_id,
                      const char *user_id)
{
    if (grid_id == NULL || user_id == NULL)
        return CP_ENOTFOUND;
    struct member_ctx k = {grid_id, user_id};
    int rc = mg_tx(st, member_add_fn, &k);
    return rc == CP_ECONFLICT ? 0 : rc;
}

int mgu_grid_user_remove(struct store *st, const char *grid_id,
                         const char *user_id)
{
    if (grid_id == NULL || user_id == NULL)
        return CP_ENOTFOUND;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_str(&f, "user_id", user_id);
    int64_t deleted = 0;
    int rc =
        mg_delete(st, "grid_users", &f, false, &deleted, "grid_user_remove");
    bson_destroy(&f);
    return rc == 0 && deleted == 0 ? CP_ENOTFOUND : rc;
}

struct grid_users_ctx {
    const char *grid_id;
    struct store_user_list *out;
};

/* Two queries: the member ids, then their users by email. */
static int grid_users_fn(struct mgc *c, void *ctx)
{
    struct grid_users_ctx *k = ctx;
    bson_t m = BSON_INITIALIZER;
    mgb_str(&m, "grid_id", k->grid_id);
    struct idv ids = {NULL, 0};
    int rc = ids_of(c, "grid_users", &m, "user_id", read_user_id, &ids,
                    "grid users");
    bson_destroy(&m);
    if (rc != 0 || ids.n == 0) {
        cp_free(ids.v);
        return rc;
    }
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    append_in(&f, "_id", &ids);
    cp_free(ids.v);
    sort_opts(&opts, "email", NULL);
    void *items = NULL;
    size_t len = 0;
    rc = mgx_find_all(c, "users", &f, &opts, read_user,
                      sizeof(struct store_user), release_user, &items, &len,
                      "grid_users");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    k->out->items = items;
    k->out->len = len;
    return 0;
}

int mgu_grid_users(struct store *st, const char *grid_id,
                   struct store_user_list *out)
{
    out->items = NULL;
    out->len = 0;
    if (grid_id == NULL)
        return 0;
    struct grid_users_ctx k = {grid_id, out};
    int rc = mg_do(st, grid_users_fn, &k);
    if (rc != 0)
        store_user_list_release(out);
    return rc;
}

int mgu_grid_is_member(struct store *st, const char *grid_id,
                       const char *user_id, bool *out)
{
    *out = false;
    if (grid_id == NULL || user_id == NULL)
        return 0;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_str(&f, "user_id", user_id);
    int rc = mg_find_one(st, "grid_users", &f, NULL, read_none, NULL,
                         "grid_is_member");
    bson_destroy(&f);
    if (rc == 0)
        *out = true;
    return rc == CP_ENOTFOUND ? 0 : rc;
}

/* ==== HA primitives ==== */

struct kv_row {
    char *value;
    int64_t version;
};

static int read_kv(const bson_t *d, void *item)
{
    struct kv_row *k = item;
    k->value = mgr_str(d, "value");
    k->version = mgr_i64(d, "version");
    return 0;
}

int mgu_kv_get(struct store *st, const char *key, char **value,
               int64_t *version)
{
    if (value != NULL)
        *value = NULL;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", key);
    struct kv_row k = {NULL, 0};
    int rc = mg_find_one(st, "kv", &f, NULL, read_kv, &k, "kv_get");
    bson_destroy(&f);
    if (rc != 0) {
        cp_free(k.value);
        return rc;
    }
    if (value != NULL)
        *value = k.value;
    else
        cp_free(k.value);
    if (version != NULL)
        *version = k.version;
    return 0;
}

/* Single-document compare-and-set: expect 0 inserts (the _id clash of an
 * existing key is the lost race), otherwise the expected version is in
 * the update's filter, so of two racing writers with the same
 * expectation exactly one matches. */
int mgu_kv_cas(struct store *st, const char *key, int64_t expect,
               const char *value, int64_t *new_version)
{
    int rc;
    if (expect == 0) {
        bson_t d = BSON_INITIALIZER;
        mgb_str(&d, "_id", key);
        mgb_str(&d, "value", value);
        mgb_i64(&d, "version", 1);
        rc = mg_insert(st, "kv", &d, "kv_cas");
        bson_destroy(&d);
    } else {
        bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set, inc;
        mgb_str(&f, "_id", key);
        mgb_i64(&f, "version", expect);
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
        mgb_str(&set, "value", value);
        bson_append_document_end(&u, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
        mgb_i64(&inc, "version", 1);
        bson_append_document_end(&u, &inc);
        int64_t matched = 0;
        rc = mg_update(st, "kv", &f, &u, false, false, &matched, "kv_cas");
        bson_destroy(&f);
        bson_destroy(&u);
        if (rc == 0 && matched == 0)
            rc = CP_ECONFLICT;
    }
    if (rc == 0 && new_version != NULL)
        *new_version = expect + 1;
    return rc;
}

struct lease_row {
    char *holder;
    int64_t expires;
};

static int read_lease(const bson_t *d, void *item)
{
    struct lease_row *l = item;
    l->holder = mgr_str(d, "holder");
    l->expires = mgr_i64(d, "expires_at");
    return 0;
}

struct lease_ctx {
    const char *name, *holder;
    int64_t now, ttl_ms;
    bool acquired;
    struct lease_row row;
};

/* One findOneAndUpdate that takes the lease when it is ours or expired,
 * upserting it when absent. When another master holds it, the filter
 * misses, the upsert clashes on _id, and the holder is read. Should the
 * lease change hands between the two (released, or expired at now), the
 * take is tried again. */
static int lease_fn(struct mgc *c, void *ctx)
{
    struct lease_ctx *k = ctx;
    int rc = CP_EIO;
    for (int attempt = 0; attempt < MG_LEASE_TRIES; attempt++) {
        cp_free(k->row.holder);
        k->row.holder = NULL;
        bson_t f = BSON_INITIALIZER, alt, a, b, lte;
        mgb_str(&f, "_id", k->name);
        BSON_APPEND_ARRAY_BEGIN(&f, "$or", &alt);
        BSON_APPEND_DOCUMENT_BEGIN(&alt, "0", &a);
        mgb_str(&a, "holder", k->holder);
        bson_append_document_end(&alt, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&alt, "1", &b);
        BSON_APPEND_DOCUMENT_BEGIN(&b, "expires_at", &lte);
        mgb_i64(&lte, "$lte", k->now);
        bson_append_document_end(&b, &lte);
        bson_append_document_end(&alt, &b);
        bson_append_array_end(&f, &alt);
        bson_t u = BSON_INITIALIZER, set;
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
        mgb_str(&set, "holder", k->holder);
        mgb_i64(&set, "expires_at", k->now + k->ttl_ms);
        bson_append_document_end(&u, &set);
        rc = mgx_find_update(c, "leases", &f, NULL, &u, true, true, read_lease,
                             &k->row, "lease_acquire");
        bson_destroy(&f);
        bson_destroy(&u);
        if (rc == 0) {
            k->acquired = true;
            return 0;
        }
        if (rc != CP_ECONFLICT)
            return rc;
        cp_free(k->row.holder);
        k->row.holder = NULL;
        bson_t q = BSON_INITIALIZER;
        mgb_str(&q, "_id", k->name);
        rc = mgx_find_one(c, "leases", &q, NULL, read_lease, &k->row,
                          "lease read");
        bson_destroy(&q);
        if (rc == CP_ENOTFOUND)
            continue; /* released meanwhile */
        if (rc != 0)
            return rc;
        bool ours =
            k->row.holder != NULL && strcmp(k->row.holder, k->holder) == 0;
        if (!ours && k->row.expires > k->now) {
            k->acquired = false;
            return 0;
        }
    }
    cp_error("store: lease_acquire: lease %s kept changing hands", k->name);
    return CP_EIO;
}

int mgu_lease_acquire(struct store *st, const char *name, const char *holder,
                      int64_t now, int64_t ttl_ms, char **holder_out,
                      int64_t *expires_out)
{
    if (holder_out != NULL)
        *holder_out = NULL;
    struct lease_ctx k = {name, holder, now, ttl_ms, false, {NULL, 0}};
    int rc = mg_do(st, lease_fn, &k);
    if (rc != 0) {
        cp_free(k.row.holder);
        /* CP_EAGAIN means "held by another" here, never a transient
         * failure of the store: leader.c gives the lead up on it. */
        return rc == CP_EAGAIN ? CP_EIO : rc;
    }
    if (holder_out != NULL)
        *holder_out = k.row.holder;
    else
        cp_free(k.row.holder);
    if (expires_out != NULL)
        *expires_out = k.row.expires;
    return k.acquired ? 0 : CP_EAGAIN;
}

/* As PostgreSQL: the row goes, only when holder holds it. */
int mgu_lease_release(struct store *st, const char *name, const char *holder)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", name);
    mgb_str(&f, "holder", holder);
    int rc = mg_delete(st, "leases", &f, false, NULL, "lease_release");
    bson_destroy(&f);
    return rc;
}
