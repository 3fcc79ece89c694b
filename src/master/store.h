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

/* The fence of a leader-only write: it is applied only while lease is
 * held by holder and not expired, checked atomically with the write, so
 * a master that lost the lease (paused, cut off) cannot act on it. */
struct store_fence {
    const char *lease;
    const char *holder;
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

/* One entry of a batched instance report (instances_report_many); rc is
 * set per entry: 0 or CP_ENOTFOUND, as instance_report returns. */
struct store_instance_report {
    const char *service_id;
    int instance_number;
    const char *node_id;
    const char *rev;
    const char *state;
    const char *error;
    int rc;
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

/* ==== Services (issue 4; spec 5.1, 8) ====
 *
 * A service lives in a stack of its grid ("null" is the default stack).
 * spec holds the validated service fields as the API shows them (image,
 * instances, cmd, entrypoint, env, secrets, ports, volumes, links,
 * affinity, strategy, stateful, cpus, cpu_shares, memory, memory_swap,
 * user, privileged, cap_add, cap_drop, net, log_driver, log_opts,
 * deploy_opts, health_check, hooks, stop_signal, stop_grace_period, ...);
 * the columns beside it are what queries need. revision bumps on every
 * change of spec. */
struct store_service {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char stack_id[STORE_ID_LEN + 1];
    char *stack_name; /* filled by reads; "null" for the default stack */
    char *name;
    json_t *spec;
    int64_t revision;
    int64_t stack_revision;
    char *state; /* initialized | running | stopped */
    int64_t deployed_at;
    int64_t deployed_revision; /* the revision the last deploy rolled out */
    int64_t deploy_requested_at;
    int64_t created_at;
    int64_t updated_at;
};

struct store_service_list {
    struct store_service *items;
    size_t len;
};

/* One instance of a service (grid_service_instances): where it should run
 * and what the agent last reported. deploy_rev is set by the master, rev /
 * state / error by the agent (/node_service_pods/set_state). */
struct store_instance {
    char id[STORE_ID_LEN + 1];
    char service_id[STORE_ID_LEN + 1];
    int instance_number;
    char node_id[STORE_ID_LEN + 1]; /* host node row id, "" when none */
    char *desired_state;            /* running | stopped */
    char *deploy_rev;               /* NULL until deployed */
    char *rev;                      /* reported; NULL until reported */
    char *state;                    /* reported: running|stopped|... */
    char *error;                    /* reported, NULL when none */
    int64_t updated_at;
};

struct store_instance_list {
    struct store_instance *items;
    size_t len;
};

/* An instance on a node with its service's columns as stored (spec as
 * JSON text, not parsed): what a pod list needs to tell whether a cached
 * service is current (node_pod_rows). */
struct store_pod_row {
    struct store_instance inst;
    char *service_name;
    char *stack_name;
    char *spec; /* JSON text */
    int64_t revision;
    int64_t updated_at;
};

struct store_pod_rows {
    char *node_name;
    char *grid_name;
    struct store_pod_row *items;
    size_t len;
};

/* A service deploy (grid_service_deploys). Claimed by one master at a time
 * with a lease (claimed_by, lease_until); every write of a claimed deploy
 * is fenced by claimed_by. instance_deploys is an array of
 * {instance_number, node, state, error}. */
struct store_deploy {
    char id[STORE_ID_LEN + 1];
    char service_id[STORE_ID_LEN + 1];
    char stack_deploy_id[STORE_ID_LEN + 1]; /* "" when none */
    char *state; /* created | ongoing | success | error */
    char *reason;
    bool force;
    json_t *instance_deploys;
    char *claimed_by;
    int64_t lease_until;
    int64_t created_at;
    int64_t queued_at;
    int64_t started_at;
    int64_t finished_at;
};

struct store_deploy_list {
    struct store_deploy *items;
    size_t len;
};

/* A container as its agent reported it (/containers/save). info is the
 * reduced inspect data the API shows (image, cmd, env without secrets,
 * labels, state, network settings, ...). */
struct store_container {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char node_id[STORE_ID_LEN + 1];    /* host node row id */
    char service_id[STORE_ID_LEN + 1]; /* "" for foreign containers */
    char *container_id;                /* the engine's id */
    char *name;
    int instance_number;
    char *status; /* running|stopped|paused|restarting|dead|oom_killed */
    json_t *info;
    int64_t created_at;
    int64_t updated_at;
    int64_t deleted_at; /* 0 = live */
};

struct store_container_list {
    struct store_container *items;
    size_t len;
};

/* One container log line or event, with a store-wide increasing seq that
 * clients resume from ("from"). */
struct store_log {
    int64_t seq;
    char grid_id[STORE_ID_LEN + 1];
    char node_id[STORE_ID_LEN + 1];
    char service_id[STORE_ID_LEN + 1];
    char *container_id; /* engine id */
    char *name;         /* container name */
    char *type;         /* stdout | stderr */
    char *data;
    int64_t created_at;
};

struct store_event {
    int64_t seq;
    char grid_id[STORE_ID_LEN + 1];
    char stack_id[STORE_ID_LEN + 1];
    char service_id[STORE_ID_LEN + 1];
    char node_id[STORE_ID_LEN + 1];
    int severity; /* 0 debug, 1 info, 2 warn, 3 error */
    char *type;   /* e.g. service:deploy, scheduler, service:instance_crash */
    char *message;
    json_t *meta;
    int64_t created_at;
};

struct store_log_list {
    struct store_log *items;
    size_t len;
};

struct store_event_list {
    struct store_event *items;
    size_t len;
};

/* Which logs or events to read: every set field narrows; after_seq > 0
 * reads items after it (oldest first, at most limit); otherwise the last
 * limit items since since_ms (0 = any), oldest first. */
struct store_log_query {
    const char *grid_id;
    const char *service_id;
    const char *node_id;
    const char *container_name;
    const char *stack_id; /* events of, or log lines of the services of */
    int64_t after_seq;
    int64_t since_ms;
    int limit;
};

/* ==== Stacks (spec 5.5, 8) ====
 *
 * A stack is a named group of services in a grid; every grid has the
 * "null" stack (the default one, revision 0, never revised). Its content
 * lives in immutable revisions 1, 2, ...; revision is the newest one.
 * removing is set while a removal is queued or running (the stack is
 * then refused further updates and deploys). is_deploying is filled by
 * reads: a stack deploy or a deploy of one of its services is open. */
struct store_stack {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char *name;
    json_t *labels;    /* array of strings */
    char *parent_name; /* NULL when none */
    int64_t revision;  /* newest revision, 0 = none (the null stack) */
    bool removing;
    bool is_deploying;
    int64_t created_at;
    int64_t updated_at;
};

/* An immutable revision of a stack (stack_revisions): what the stack file
 * said, resolved by the CLI. services is an array of validated service
 * specs, each with its "name", in link order (a service comes after the
 * services of the stack it links to); volumes an array of {name,
 * external}; variables and metadata objects. stack is the stack file's
 * "stack" field (e.g. "user/wordpress"); strings may be NULL. */
struct store_stack_revision {
    char id[STORE_ID_LEN + 1];
    char stack_id[STORE_ID_LEN + 1];
    int64_t revision;
    char *stack;
    char *version;
    char *registry;
    char *source;
    char *expose;
    json_t *variables;
    json_t *services;
    json_t *volumes;
    json_t *metadata;
    int64_t created_at;
};

/* stacks and revs side by side: revs[i] is the newest revision of
 * stacks[i] (all fields empty for a stack without revisions). */
struct store_stack_list {
    struct store_stack *stacks;
    struct store_stack_revision *revs;
    size_t len;
};

/* A stack job (stack_deploys): a deploy (action "deploy") or a removal
 * ("remove") of one stack, queued and then claimed by one master at a
 * time with a lease, like service deploys; every write of a claimed job
 * is fenced by claimed_by. At most one job per stack is ongoing under a
 * live lease. Progress lives in the row so that another master can take
 * a job over when the lease of the master running it expires: revision
 * is the revision the deploy applied to the services (0 = not applied
 * yet), service_deploys the service deploys it queued, in order, as
 * [{service_id, name, deploy_id, queued_at}]. state: created | ongoing |
 * success | error; finished_at is set with success and error. */
struct store_stack_deploy {
    char id[STORE_ID_LEN + 1];
    char stack_id[STORE_ID_LEN + 1];
    char *action; /* deploy | remove */
    int64_t revision;
    char *state;
    char *reason;
    json_t *service_deploys;
    char *claimed_by;
    int64_t lease_until;
    int64_t created_at;
    int64_t started_at;
    int64_t finished_at;
};

struct store_stack_deploy_list {
    struct store_stack_deploy *items;
    size_t len;
};

/* ==== Vault secrets (spec 7) ====
 *
 * A secret of a grid: name is unique in the grid; value is sealed text
 * (AES-256-GCM, see master/vault.h): the store never sees a plaintext.
 * Services use a secret by naming it in their spec, "secrets":
 * [{secret, name, type}]. services (filled by secret_get and
 * secret_list) names them, ordered by stack and name. */
struct store_secret_user {
    char id[STORE_ID_LEN + 1];
    char *stack_name; /* "null" for the default stack */
    char *name;
};

struct store_secret {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char *name;
    char *value; /* sealed text */
    int64_t created_at;
    int64_t updated_at;
    struct store_secret_user *services;
    size_t nservices;
};

struct store_secret_list {
    struct store_secret *items;
    size_t len;
};

/* ==== External registries and the audit log ====
 *
 * A registry holds the pull credentials of a private image registry for
 * one grid (spec 3.1, 8 "registries"). name is the URL's host[:port] (the
 * port left out when it is 80 or 443), unique in the grid. The password is
 * sealed at rest with the master's seal key (common/crypto.h); the
 * original kept it in plaintext (spec 7). */
struct store_registry {
    char id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char *name;
    char *url;
    char *username;
    char *password_sealed;
    char *email; /* NULL when none */
    int64_t created_at;
    int64_t updated_at;
};

struct store_registry_list {
    struct store_registry *items;
    size_t len;
};

/* One audit log entry (spec 3, 8 "audit_logs"): who did what to which
 * resource, from where, and how it ended. request_body is the request's
 * JSON body with secret material already filtered (audit.c), as text, or
 * NULL. grid_id is "" for requests that concern no grid. seq increases
 * with every entry. */
struct store_audit {
    int64_t seq;
    char grid_id[STORE_ID_LEN + 1];
    char *grid_name;
    char user_id[STORE_ID_LEN + 1];
    char *user_email;
    char *resource_type; /* "services", "secrets", ... */
    char *resource_id;   /* the API's id: a path such as "G/null/web" */
    char *resource_name;
    char *service_id; /* API id of the service concerned, or NULL */
    char *event_name; /* create, update, delete, show, deploy, ... */
    char *event_status; /* success | error */
    int status;         /* the HTTP status answered */
    char *method;
    char *path;
    char *source_ip;
    char *user_agent;
    char *request_body;
    int64_t created_at;
};

struct store_audit_list {
    struct store_audit *items;
    size_t len;
};

struct store;

/* A change-feed message: channel and payload (JSON text), both borrowed
 * for the duration of the callback. Callbacks run on the thread that
 * published (SQLite) or on the backend's listener thread (PostgreSQL):
 * hop to your own loop before touching loop state. */
typedef void store_feed_cb(void *ctx, const char *channel,
                           const char *payload);

/* Every member after name is an operation, and every backend fills in
 * every one (store_ops_missing checks it: store_open refuses a backend
 * with a NULL operation, and a unit test checks each table). */
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
    /* Marks offline the connected nodes not seen since before, and those
     * held by a master whose liveness lease ("master:<id>", see
     * leader.h) is missing or expired at now, except those held by
     * master except_master (may be NULL); *marked counts. Liveness leases
     * expired for an hour are deleted. With a fence, nothing happens
     * unless its lease is held (*marked is 0). */
    int (*nodes_sweep)(struct store *st, int64_t before, int64_t now,
                       const char *except_master,
                       const struct store_fence *fence, int *marked);

    /* ==== Services ==== */
    /* CP_ECONFLICT when the name is taken in the stack. The stack is named
     * by s->stack_id ("" = the grid's null stack). */
    int (*service_create)(struct store *st, const struct store_service *s);
    /* By grid, stack name ("null" = default) and name. */
    int (*service_get)(struct store *st, const char *grid_id,
                       const char *stack_name, const char *name,
                       struct store_service *out);
    int (*service_get_by_id)(struct store *st, const char *id,
                             struct store_service *out);
    /* Services of a grid (stack_name NULL = all stacks) ordered by stack,
     * name; one query. */
    int (*service_list)(struct store *st, const char *grid_id,
                        const char *stack_name,
                        struct store_service_list *out);
    /* Writes spec, revision, stack_revision, state, deployed_at,
     * deployed_revision, deploy_requested_at and updated_at of s->id.
     * revision never goes down: the stored one is kept when it is
     * higher, so a caller writing back a service it read before a
     * concurrent bump (a secret update on another master) cannot undo
     * the bump, and the reconciler still rolls it out. */
    int (*service_update)(struct store *st, const struct store_service *s);
    /* Removes the service with its instances and deploys. */
    int (*service_delete)(struct store *st, const char *id);

    /* ==== Instances ==== */
    int (*instance_list)(struct store *st, const char *service_id,
                         struct store_instance_list *out);
    /* The instances placed on a node with their services (for the node's
     * pod list), in two queries at most; services[i] belongs to
     * instances[i]. */
    int (*instances_on_node)(struct store *st, const char *node_id,
                             struct store_instance_list *instances,
                             struct store_service_list *services);
    /* The node's name, the name of grid grid_id and the instances placed
     * on the node (ordered like instances_on_node) with their services'
     * columns, in two queries; CP_ENOTFOUND without the node or
     * grid. */
    int (*node_pod_rows)(struct store *st, const char *node_id,
                         const char *grid_id, struct store_pod_rows *out);
    /* Inserts or replaces the instance (service_id, instance_number). */
    int (*instance_put)(struct store *st, const struct store_instance *i);
    /* instance_put for n instances in one transaction (all or none). */
    int (*instance_put_many)(struct store *st, const struct store_instance *v,
                             size_t n);
    /* Deletes the instances numbered above keep. */
    int (*instance_trim)(struct store *st, const char *service_id,
                         int keep);
    /* Records an agent's report when rev is not older than the stored
     * one; CP_ENOTFOUND when there is no such instance. */
    int (*instance_report)(struct store *st, const char *service_id,
                           int instance_number, const char *node_id,
                           const char *rev, const char *state,
                           const char *error);
    /* instance_report for n entries in one transaction; each entry's rc
     * gets what instance_report would return for it (0, CP_ENOTFOUND).
     * Returns 0 once all are committed, or the error that rolled them
     * all back. */
    int (*instances_report_many)(struct store *st,
                                 struct store_instance_report *v, size_t n);
    /* Clears the node of every instance placed on node_id (node removed
     * or moved away); *count says how many. */
    int (*instances_detach_node)(struct store *st, const char *node_id,
                                 int *count);

    /* ==== Deploys ==== */
    /* Queues a deploy of d->service_id. When one is already queued (state
     * created) for that service, it is reused (coalesced) and out is that
     * one, with force or-ed in and d->stack_deploy_id (when set) taking
     * it over. */
    int (*deploy_queue)(struct store *st, const struct store_deploy *d,
                        struct store_deploy *out);
    int (*deploy_get)(struct store *st, const char *id,
                      struct store_deploy *out);
    /* Claims the oldest queued deploy whose service has no ongoing deploy
     * with a live lease, for holder until now+lease_ms: sets state
     * ongoing, started_at, claimed_by, lease_until. CP_ENOTFOUND when none
     * is ready. A deploy whose lease expired (its master died) is taken
     * over and restarted. */
    int (*deploy_claim)(struct store *st, const char *holder, int64_t now,
                        int64_t lease_ms, struct store_deploy *out);
    /* Writes state, reason, instance_deploys, lease_until and finished_at
     * when claimed_by still equals d->claimed_by (CP_ECONFLICT if not). */
    int (*deploy_update)(struct store *st, const struct store_deploy *d);
    /* The newest deploys of a service, newest first. */
    int (*deploy_list)(struct store *st, const char *service_id, int limit,
                       struct store_deploy_list *out);
    /* Keeps the newest keep finished deploys of every service. */
    int (*deploys_prune)(struct store *st, int keep, int *deleted);

    /* ==== Containers ==== */
    /* Inserts or updates by c->container_id (clears deleted_at). */
    int (*container_save)(struct store *st, const struct store_container *c);
    int (*container_delete)(struct store *st, const char *container_id);
    /* Deletes the node's containers whose engine ids are not in keep. */
    int (*containers_cleanup)(struct store *st, const char *node_id,
                              const char *const *keep, size_t nkeep,
                              int *deleted);
    /* Marks every container of the node deleted at now (node went away). */
    int (*containers_mark_deleted)(struct store *st, const char *node_id,
                                   int64_t now);
    /* Live containers of a grid, optionally of one node or service,
     * ordered by name; one query. */
    int (*container_list)(struct store *st, const char *grid_id,
                          const char *node_id, const char *service_id,
                          struct store_container_list *out);
    int (*container_get)(struct store *st, const char *grid_id,
                         const char *node_id, const char *name,
                         struct store_container *out);

    /* ==== Logs and events (bounded) ==== */
    int (*logs_append)(struct store *st, const struct store_log *v,
                       size_t n);
    int (*logs_read)(struct store *st, const struct store_log_query *q,
                     struct store_log_list *out);
    int (*events_append)(struct store *st, const struct store_event *v,
                         size_t n);
    int (*events_read)(struct store *st, const struct store_log_query *q,
                       struct store_event_list *out);
    /* Keeps the newest max_logs log lines and max_events events. */
    int (*history_trim)(struct store *st, int64_t max_logs,
                        int64_t max_events);

    /* ==== Vault secrets ==== */
    /* Creates s (id, grid_id, name, value, created_at = updated_at) and
     * bumps the revision (and updated_at) of every service of the grid
     * whose spec uses the name, in one transaction; *bumped (may be NULL)
     * counts them. CP_ECONFLICT when the name is taken in the grid. */
    int (*secret_create)(struct store *st, const struct store_secret *s,
                         int *bumped);
    /* The secret name of grid_id with the services using it (two
     * queries); CP_ENOTFOUND when absent. */
    int (*secret_get)(struct store *st, const char *grid_id,
                      const char *name, struct store_secret *out);
    /* The secrets of a grid ordered by name, each with the services using
     * it, in two queries whatever their number. */
    int (*secret_list)(struct store *st, const char *grid_id,
                       struct store_secret_list *out);
    /* Replaces the sealed value and updated_at (now) of secret name and
     * bumps the revision of every service of the grid using it, in one
     * transaction (the reconciler then rolls them out). CP_ENOTFOUND when
     * absent. */
    int (*secret_update)(struct store *st, const char *grid_id,
                         const char *name, const char *value, int64_t now,
                         int *bumped);
    /* Deletes secret name; CP_ECONFLICT (nothing deleted) while a service
     * of the grid uses it, checked in the same transaction. */
    int (*secret_delete)(struct store *st, const char *grid_id,
                         const char *name);
    /* Key rotation: replaces the sealed value of secret id by value only
     * while it is still old (compare-and-set; no revision bump: the
     * plaintext is the same). CP_ECONFLICT when it changed meanwhile,
     * CP_ENOTFOUND when it is gone. */
    int (*secret_reseal)(struct store *st, const char *id, const char *old,
                         const char *value);
    /* Key rotation of the grid and node tokens sealed at rest: replaces
     * token_sealed of grid / node id by value only while it is still old
     * (compare-and-set). CP_ECONFLICT when it changed meanwhile,
     * CP_ENOTFOUND when the row is gone. */
    int (*grid_token_reseal)(struct store *st, const char *id,
                             const char *old, const char *value);
    int (*node_token_reseal)(struct store *st, const char *id,
                             const char *old, const char *value);
    /* Up to limit secrets of every grid with ids above after_id ("" =
     * from the start), ordered by id, without services: a rekey walks
     * them page by page. */
    int (*secrets_page)(struct store *st, const char *after_id, int limit,
                        struct store_secret_list *out);
    /* ==== External registries ==== */
    /* CP_ECONFLICT when the grid already has one of that name;
     * CP_ENOTFOUND without the grid. */
    int (*registry_create)(struct store *st, const struct store_registry *r);
    /* The grid's registries ordered by name. */
    int (*registry_list)(struct store *st, const char *grid_id,
                         struct store_registry_list *out);
    int (*registry_get)(struct store *st, const char *grid_id,
                        const char *name, struct store_registry *out);
    int (*registry_delete)(struct store *st, const char *grid_id,
                           const char *name);
    /* Key rotation: replaces password_sealed of registry id by value only
     * while it is still old (compare-and-set, as grid_token_reseal).
     * CP_ECONFLICT when it changed meanwhile, CP_ENOTFOUND when the
     * registry is gone. */
    int (*registry_reseal)(struct store *st, const char *id, const char *old,
                           const char *value);

    /* ==== Audit log (bounded) ==== */
    /* Appends one entry (one insert); a->seq and a zero created_at are
     * filled in by the store. */
    int (*audit_append)(struct store *st, const struct store_audit *a);
    /* The newest limit entries, newest first; of one grid when grid_id is
     * not NULL. */
    int (*audit_list)(struct store *st, const char *grid_id, int limit,
                      struct store_audit_list *out);
    /* Keeps the newest keep entries; *deleted counts the others. */
    int (*audit_trim)(struct store *st, int64_t keep, int *deleted);

    /* ==== Stacks ==== */
    /* Creates stack k (k->revision must be r->revision, 1) with revision
     * r and the services svcs[0..n) (their stack_id is ignored: they go
     * in the new stack), all or nothing. CP_ECONFLICT when the grid has a
     * stack of that name; CP_ENOTFOUND without the grid. */
    int (*stack_create)(struct store *st, const struct store_stack *k,
                        const struct store_stack_revision *r,
                        const struct store_service *svcs, size_t n);
    /* A stack by grid and name, with its newest revision in rev (may be
     * NULL; emptied when the stack has none), one query. */
    int (*stack_get)(struct store *st, const char *grid_id, const char *name,
                     struct store_stack *out,
                     struct store_stack_revision *rev);
    /* A stack by row id, as stack_get. */
    int (*stack_get_by_id)(struct store *st, const char *id,
                           struct store_stack *out,
                           struct store_stack_revision *rev);
    /* Every stack of a grid (the null stack too) ordered by name, with
     * newest revisions, in one query. */
    int (*stack_list)(struct store *st, const char *grid_id,
                      struct store_stack_list *out);
    /* One revision of a stack. */
    int (*stack_revision_get)(struct store *st, const char *stack_id,
                              int64_t revision,
                              struct store_stack_revision *out);
    /* Adds revision r (r->revision must be expect + 1) when the stack's
     * newest revision is still expect, and creates those of svcs[0..n)
     * that the stack lacks (by name; existing ones are left untouched),
     * all or nothing. CP_ECONFLICT when the revision moved on (a
     * concurrent update), CP_ENOTFOUND without the stack. */
    int (*stack_revise)(struct store *st, const char *stack_id,
                        int64_t expect, const struct store_stack_revision *r,
                        const struct store_service *svcs, size_t n);
    /* Writes labels, parent_name, removing and updated_at of k->id. */
    int (*stack_update)(struct store *st, const struct store_stack *k);
    /* Deletes the stack with its revisions and jobs. CP_ECONFLICT while
     * it still has services. */
    int (*stack_delete)(struct store *st, const char *id);
    /* Queues a job (d->action) for d->stack_id. A job of the same action
     * already queued (state created) for the stack is reused (coalesced)
     * and returned in out. Queuing a removal also sets the stack's
     * removing flag, in the same transaction. */
    int (*stack_deploy_queue)(struct store *st,
                              const struct store_stack_deploy *d,
                              struct store_stack_deploy *out);
    int (*stack_deploy_get)(struct store *st, const char *id,
                            struct store_stack_deploy *out);
    /* Claims the oldest job that may run, for holder until now+lease_ms:
     * an ongoing job whose lease expired (taken over, progress kept),
     * else a queued job of a stack with no ongoing job. Sets state ongoing, claimed_by, lease_until (and started_at
     * when first claimed). CP_ENOTFOUND when none is ready. */
    int (*stack_deploy_claim)(struct store *st, const char *holder,
                              int64_t now, int64_t lease_ms,
                              struct store_stack_deploy *out);
    /* Writes revision, state, reason, service_deploys, lease_until and
     * finished_at when claimed_by still equals d->claimed_by
     * (CP_ECONFLICT if not, CP_ENOTFOUND when the row is gone). */
    int (*stack_deploy_update)(struct store *st,
                               const struct store_stack_deploy *d);
    /* Jobs of a grid's stacks (stack_id NULL = every stack), newest
     * first, at most limit (<= 0: all); open_only keeps created and
     * ongoing ones. One query. */
    int (*stack_deploy_list)(struct store *st, const char *grid_id,
                             const char *stack_id, bool open_only, int limit,
                             struct store_stack_deploy_list *out);
    /* The service deploys queued by stack job stack_deploy_id, oldest
     * first, in one query. */
    int (*stack_deploy_services)(struct store *st,
                                 const char *stack_deploy_id,
                                 struct store_deploy_list *out);
    /* Keeps the newest keep finished jobs of every stack. */
    int (*stack_deploys_prune)(struct store *st, int keep, int *deleted);

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
/* The index (0 = the first after name) of the first operation ops leaves
 * NULL, or -1 when it has them all. */
int store_ops_missing(const struct store_ops *ops);
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
void store_service_release(struct store_service *s);
void store_service_list_release(struct store_service_list *l);
void store_instance_release(struct store_instance *i);
void store_instance_list_release(struct store_instance_list *l);
void store_pod_rows_release(struct store_pod_rows *r);
void store_deploy_release(struct store_deploy *d);
void store_deploy_list_release(struct store_deploy_list *l);
void store_container_release(struct store_container *c);
void store_container_list_release(struct store_container_list *l);
void store_log_list_release(struct store_log_list *l);
void store_event_list_release(struct store_event_list *l);
void store_node_list_release(struct store_node_list *l);
void store_stack_release(struct store_stack *k);
void store_stack_revision_release(struct store_stack_revision *r);
void store_stack_list_release(struct store_stack_list *l);
void store_stack_deploy_release(struct store_stack_deploy *d);
void store_stack_deploy_list_release(struct store_stack_deploy_list *l);
void store_secret_release(struct store_secret *s);
void store_secret_list_release(struct store_secret_list *l);
void store_registry_release(struct store_registry *r);
void store_registry_list_release(struct store_registry_list *l);
void store_audit_release(struct store_audit *a);
void store_audit_list_release(struct store_audit_list *l);

/* Every backend's struct store begins with this header. */
struct store {
    const struct store_ops *ops;
};

/* Shorthand: ST_CALL(st, grid_get, name, &g) */
#define ST_CALL(st, op, ...) ((st)->ops->op((st), __VA_ARGS__))

/* Called first thing in main: undoes what a backend's library did when
 * it was loaded (see store_mongo_process_init). */
void store_process_init(void);

extern const struct store_ops store_sqlite_ops;
#ifdef CP_WITH_POSTGRES
extern const struct store_ops store_pg_ops;
#endif
#ifdef CP_WITH_MONGODB
void store_mongo_process_init(void);
#endif
#ifdef CP_WITH_MONGODB
extern const struct store_ops store_mongo_ops;
#endif

#endif
