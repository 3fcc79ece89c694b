/* The master's only way to its data. Typed operations on the entities of
 * spec section 8, plus the three primitives that HA needs: compare-and-set
 * on a versioned key, leases, and a change feed.
 *
 * A backend is one file that defines one const struct store_ops; store.c
 * is the only file that knows them all and picks one from the URL
 * ("sqlite:<dir>", "postgres://...", "mongodb://...").
 *
 * Threading: a struct store may be used from several threads at once (the
 * master runs handlers on libuv's thread pool); each backend makes that
 * safe (SQLite keeps a connection per thread).
 *
 * Ownership: out-structs are filled with owned copies; release them with
 * the matching *_release(). Strings passed in are borrowed.
 *
 * Errors: 0, or CP_ENOTFOUND (no such row), CP_ECONFLICT (uniqueness or
 * compare-and-set lost), CP_EAGAIN (lease held by another), CP_EIO
 * (storage failure; logged by the backend with its cause).
 *
 * Every operation is atomic: it is applied whole or not at all, and it is
 * durable when it returns 0.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define STORE_ID_LEN 24 /* ids are 24 lowercase hex chars, like ObjectIds */

/* Role bits of a user (spec 2.3). */
enum store_role {
    STORE_ROLE_MASTER_ADMIN = 1 << 0,
    STORE_ROLE_GRID_ADMIN = 1 << 1,
    STORE_ROLE_USER_ADMIN = 1 << 2,
};

/* A user. The local admin has email "admin" and role master_admin; others
 * are created by invitation. */
struct store_user {
    char id[STORE_ID_LEN + 1];
    char *email;
    char *name;
    unsigned roles; /* enum store_role bits */
    int64_t created_at;
    int64_t updated_at;
};

enum store_token_kind {
    STORE_TOKEN_BEARER = 0,
    STORE_TOKEN_CODE = 1, /* authorization code, exchanged for a bearer */
};

/* An access token or authorization code (spec 2.1). Only hashes are
 * stored: token_hash = sha256 hex of the bearer token or of the code,
 * refresh_hash of the refresh token (NULL when none).
 *
 * Bootstrap codes (is_bootstrap) are the initial admin code: exchanging
 * one does not consume it; the bearer token it yields carries
 * parent_code_id, and the first authenticated call with that token deletes
 * the code (issue #1460). */
struct store_token {
    char id[STORE_ID_LEN + 1];
    char user_id[STORE_ID_LEN + 1];
    enum store_token_kind kind;
    char *token_hash;
    char *refresh_hash;
    char token_last4[5];
    char refresh_last4[5];
    char *scopes;      /* "user,owner" */
    char *description; /* may be NULL */
    bool internal;
    bool is_bootstrap;
    char parent_code_id[STORE_ID_LEN + 1]; /* "" when none */
    int64_t expires_at;                    /* 0 = never */
    int64_t created_at;
    int64_t last_used_at;
};

/* A grid (spec 3.2). The grid token is kept as a hash for agent lookup
 * and sealed (AES-256-GCM, see common/crypto.h) for showing to members.
 * settings holds the free-form parts: stats, default_affinity,
 * trusted_subnets, logs. Counts are filled by get/list only. */
struct store_grid {
    char id[STORE_ID_LEN + 1];
    char *name;
    char *token_hash;
    char *token_sealed;
    int initial_size;
    char *subnet;
    char *supernet;
    json_t *settings; /* owned reference; an object */
    int64_t created_at;
    int64_t updated_at;
    int node_count;
    int service_count;
    int container_count;
    int user_count;
};

struct store_grid_list {
    struct store_grid *items;
    size_t len;
};

struct store_user_list {
    struct store_user *items;
    size_t len;
};

struct store_token_list {
    struct store_token *items;
    size_t len;
};

/* A node (spec 3.2 "Node JSON", 4.2, 4.6). Rows are made by an agent's
 * first connection with the grid token, or ahead of time with a node
 * token (then node_id is NULL until the agent binds it).
 *
 * Connection state: conn_gen counts connections. Plugging a connection
 * bumps it; everything a socket later writes about the connection
 * (last seen, unplug) is conditional on conn_gen still being its own, so
 * an old socket that closes late can never mark a reconnected node
 * offline (issues #1948, #2183), and a socket whose generation is gone
 * knows it was superseded (close 4041).
 *
 * labels is an array of strings; info holds the facts from /nodes/update
 * (os, kernel_version, driver, mem_total, cpus, public_ip, ...); stats the
 * latest /nodes/stats. */
struct store_node {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char *node_id; /* agent's engine id; NULL for an unbound node */
    char *name;
    int node_number;
    char *token_hash;   /* node token: hash for lookup, NULL when none */
    char *token_sealed; /* and sealed for showing to grid admins */
    json_t *labels;
    json_t *info;
    json_t *stats;
    char *availability; /* "active" or "drain" */
    char *agent_version;
    bool connected;
    bool updated; /* /nodes/update received on this connection */
    int64_t conn_gen;
    char *conn_master; /* id of the master holding the socket */
    int64_t connected_at;
    int64_t disconnected_at;
    int64_t last_seen_at;
    int close_code;
    char *close_reason;
    int64_t created_at;
    int64_t updated_at;
};

struct store_node_list {
    struct store_node *items;
    size_t len;
};

/* One entry of a batched stats write. */
struct store_node_stats {
    const char *id;
    const json_t *stats;
    int64_t at;
};

/* One entry of a batched last-seen write; ok tells whether the write
 * found the node still on that generation. */
struct store_node_seen {
    const char *id;
    int64_t conn_gen;
    int64_t at;
    bool ok;
};

struct store;

/* A change-feed message: channel and payload (JSON text), both borrowed
 * for the duration of the callback. Callbacks run on the thread that
 * published (SQLite) or on the backend's listener thread (PostgreSQL):
 * hop to your own loop before touching loop state. */
typedef void store_feed_cb(void *ctx, const char *channel,
                           const char *payload);

struct store_ops {
    const char *name; /* "sqlite", "postgres", "mongodb" */
    /* Opens the store at url (backend-specific part) and migrates the
     * schema to the newest version. On failure writes a reason. */
    int (*open)(const char *url, struct store **out, char *err,
                size_t errlen);
    void (*close)(struct store *st);
    /* A cheap round trip proving the store answers. */
    int (*ping)(struct store *st);
    /* The schema version after migration. */
    int (*schema_version)(struct store *st, int *out);

    /* ==== Config (key/value, spec 1.1 seeds) ==== */
    /* *out is a new string (caller frees); CP_ENOTFOUND when absent. */
    int (*config_get)(struct store *st, const char *key, char **out);
    int (*config_set)(struct store *st, const char *key, const char *value);
    /* Writes only when absent; *written tells whether it did. */
    int (*config_set_if_absent)(struct store *st, const char *key,
                                const char *value, bool *written);

    /* ==== Users ==== */
    int (*user_create)(struct store *st, const struct store_user *u);
    int (*user_get)(struct store *st, const char *id, struct store_user *out);
    int (*user_get_by_email)(struct store *st, const char *email,
                             struct store_user *out);
    int (*user_list)(struct store *st, struct store_user_list *out);
    int (*user_set_roles)(struct store *st, const char *id, unsigned roles);

    /* ==== Tokens and codes ==== */
    int (*token_create)(struct store *st, const struct store_token *t);
    int (*token_get)(struct store *st, const char *id,
                     struct store_token *out);
    /* Looks up a live (not expired at now) token of kind by hash. */
    int (*token_find)(struct store *st, enum store_token_kind kind,
                      const char *hash, int64_t now,
                      struct store_token *out);
    /* Atomically finds a live authorization code by hash and, unless it
     * is a bootstrap code, deletes it; fills out with the row. */
    int (*code_take)(struct store *st, const char *hash, int64_t now,
                     struct store_token *out);
    /* Atomically finds a bearer token by refresh hash and deletes it
     * (refresh tokens are single use). */
    int (*refresh_take)(struct store *st, const char *refresh_hash,
                        struct store_token *out);
    int (*token_list_by_user)(struct store *st, const char *user_id,
                              struct store_token_list *out);
    int (*token_delete)(struct store *st, const char *id);
    /* Records use; cheap no-op when already touched within 60 s. */
    int (*token_touch)(struct store *st, const char *id, int64_t now);
    /* Confirms a bootstrap login: deletes code code_id and clears the
     * parent_code_id of token token_id, in one transaction. Idempotent. */
    int (*token_confirm)(struct store *st, const char *token_id,
                         const char *code_id);
    /* Deletes every bootstrap code (used by the recovery command). */
    int (*bootstrap_codes_delete)(struct store *st);
    /* Deletes expired tokens and codes; *deleted counts them. */
    int (*tokens_expire)(struct store *st, int64_t now, int *deleted);

    /* ==== Grids ==== */
    /* Creates the grid, its null stack and default network, and makes
     * creator_id a member, in one transaction. CP_ECONFLICT names the
     * clash in *field ("name" or "token"). */
    int (*grid_create)(struct store *st, const struct store_grid *g,
                       const char *creator_id, const char **field);
    int (*grid_get)(struct store *st, const char *name,
                    struct store_grid *out);
    int (*grid_get_by_token_hash)(struct store *st, const char *hash,
                                  struct store_grid *out);
    int (*grid_get_by_id)(struct store *st, const char *id,
                          struct store_grid *out);
    /* All grids (member_of NULL) or those member_of belongs to, by name,
     * with counts, in a fixed number of queries. */
    int (*grid_list)(struct store *st, const char *member_of,
                     struct store_grid_list *out);
    /* Replaces settings (and updated_at) of the grid with g->id. */
    int (*grid_update)(struct store *st, const struct store_grid *g);
    /* Deletes the grid and everything in it. CP_ECONFLICT when it still
     * has nodes or services. */
    int (*grid_delete)(struct store *st, const char *id);
    int (*grid_user_add)(struct store *st, const char *grid_id,
                         const char *user_id);
    int (*grid_user_remove)(struct store *st, const char *grid_id,
                            const char *user_id);
    int (*grid_users)(struct store *st, const char *grid_id,
                      struct store_user_list *out);
    int (*grid_is_member)(struct store *st, const char *grid_id,
                          const char *user_id, bool *out);

    /* ==== Nodes ==== */
    /* By row id. */
    int (*node_get)(struct store *st, const char *id, struct store_node *out);
    /* In grid_id by name, or by agent node id when key contains ':'. */
    int (*node_find)(struct store *st, const char *grid_id, const char *key,
                     struct store_node *out);
    int (*node_get_by_node_id)(struct store *st, const char *node_id,
                               struct store_node *out);
    int (*node_get_by_token_hash)(struct store *st, const char *hash,
                                  struct store_node *out);
    /* Nodes of a grid ordered by name. */
    int (*node_list)(struct store *st, const char *grid_id,
                     struct store_node_list *out);
    /* Creates n (grid_id, name, labels, token, node_id may be set) with the
     * lowest free node_number in 1..254. With rename_on_clash a taken name
     * becomes "name-<number>"; otherwise CP_ECONFLICT with *field "name".
     * CP_ECONFLICT with *field "node_id" or "token" on those clashes,
     * CP_EAGAIN when all 254 numbers are used. Fills out. */
    int (*node_create)(struct store *st, const struct store_node *n,
                       bool rename_on_clash, struct store_node *out,
                       const char **field);
    /* Binds an unbound (node-token) row to node_id; CP_ECONFLICT when
     * another agent bound it first. */
    int (*node_bind)(struct store *st, const char *id, const char *node_id);
    /* Writes labels, availability and updated_at of n->id. */
    int (*node_update)(struct store *st, const struct store_node *n);
    /* Sets or clears (hash NULL) the node token; CP_ECONFLICT when
     * another node has it. */
    int (*node_set_token)(struct store *st, const char *id, const char *hash,
                          const char *sealed);
    /* Removes the node row (its stats go with it). */
    int (*node_delete)(struct store *st, const char *id);
    /* Plugs a new connection: bumps conn_gen, marks connected, not yet
     * updated, records connected_at, last_seen_at and the master. Returns
     * the new generation in *gen. */
    int (*node_plug)(struct store *st, const char *id, const char *master,
                     int64_t connected_at, int64_t now, int64_t *gen);
    /* Unplugs when gen is still current (CP_ECONFLICT otherwise). */
    int (*node_unplug)(struct store *st, const char *id, int64_t gen,
                       int64_t now, int close_code, const char *reason);
    /* Records facts from /nodes/update when gen is current: info, agent
     * version, labels only when the node has none; sets updated. */
    int (*node_set_info)(struct store *st, const char *id, int64_t gen,
                         const json_t *info, const char *agent_version,
                         const json_t *labels);
    /* Keeps the latest stats on the node and appends to a bounded
     * history (keep per node). */
    int (*node_add_stats)(struct store *st, const char *id,
                          const json_t *stats, int64_t at, int keep);
    /* The same for many nodes in one transaction (rows of nodes that no
     * longer exist are skipped). */
    int (*nodes_add_stats)(struct store *st,
                           const struct store_node_stats *v, size_t n,
                           int keep);
    /* Writes last_seen_at for many nodes in one transaction; each entry's
     * ok says whether its generation was still current. */
    int (*nodes_seen)(struct store *st, struct store_node_seen *v, size_t n);
    /* Marks offline the connected nodes not seen since before, except
     * those held by master except_master (may be NULL); *marked counts. */
    int (*nodes_sweep)(struct store *st, int64_t before, int64_t now,
                       const char *except_master, int *marked);

    /* ==== HA primitives ==== */
    /* Versioned keys for compare-and-set. kv_get: CP_ENOTFOUND when
     * absent. kv_cas: writes value when the stored version equals expect
     * (0 = key must be absent) and sets *new_version; CP_ECONFLICT
     * otherwise. */
    int (*kv_get)(struct store *st, const char *key, char **value,
                  int64_t *version);
    int (*kv_cas)(struct store *st, const char *key, int64_t expect,
                  const char *value, int64_t *new_version);
    /* Acquires or renews lease name for holder until now+ttl_ms when it is
     * free, expired, or already held by holder. CP_EAGAIN when another
     * holds it; *holder_out (may be NULL; caller frees) names the holder
     * and *expires_out its expiry either way. */
    int (*lease_acquire)(struct store *st, const char *name,
                         const char *holder, int64_t now, int64_t ttl_ms,
                         char **holder_out, int64_t *expires_out);
    /* Releases the lease when holder holds it (no-op otherwise). */
    int (*lease_release)(struct store *st, const char *name,
                         const char *holder);
    /* Publishes payload on channel to every subscriber, on every master
     * sharing this store. */
    int (*feed_publish)(struct store *st, const char *channel,
                        const char *payload);
    /* Registers cb; returns a subscription id > 0 or a CP_E* code. */
    int (*feed_subscribe)(struct store *st, store_feed_cb *cb, void *ctx);
    void (*feed_unsubscribe)(struct store *st, int id);
};

/* ==== Facade: what the rest of the master calls ==== */

/* Opens the backend named by url: "sqlite:<dir>" (or a bare directory),
 * "postgres://..." / "postgresql://...", "mongodb://...". A backend that
 * is not built in is a clear error in err. */
int store_open(const char *url, struct store **out, char *err,
               size_t errlen);
void store_close(struct store *st);
/* The ops table of an open store (every backend struct starts with it). */
const struct store_ops *store_ops_of(const struct store *st);

/* Makes a new random id (STORE_ID_LEN hex chars + NUL). */
void store_new_id(char out[STORE_ID_LEN + 1]);

void store_user_release(struct store_user *u);
void store_token_release(struct store_token *t);
void store_grid_release(struct store_grid *g);
void store_grid_list_release(struct store_grid_list *l);
void store_user_list_release(struct store_user_list *l);
void store_token_list_release(struct store_token_list *l);
void store_node_release(struct store_node *n);
void store_node_list_release(struct store_node_list *l);

/* Every backend's struct store begins with this header. */
struct store {
    const struct store_ops *ops;
};

/* Shorthand: ST_CALL(st, grid_get, name, &g) */
#define ST_CALL(st, op, ...) ((st)->ops->op((st), __VA_ARGS__))

extern const struct store_ops store_sqlite_ops;

#endif
