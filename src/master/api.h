/* The REST API: one static route table, the request/response structs
 * handlers see, and the helpers they use to answer. Handlers run on a
 * worker thread (they may block on the store); they never touch the loop.
 *
 * Adding a resource: one row per route in api.c's table, one api_<thing>.c
 * with the handlers, and the store operations in every backend.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_API_H
#define CP_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../common/util.h"
#include "master.h"
#include "store.h"

enum api_method {
    API_GET = 1 << 0,
    API_POST = 1 << 1,
    API_PUT = 1 << 2,
    API_DELETE = 1 << 3,
    API_PATCH = 1 << 4,
    API_HEAD = 1 << 5,
};

/* Route preconditions, checked in this order before the handler runs. */
enum api_flags {
    API_PUBLIC = 1 << 0,       /* no token needed */
    API_SOFT_AUTH = 1 << 1,    /* token parsed when present */
    API_LOAD_GRID = 1 << 2,    /* param 0 names a grid: 404, then 403 */
    API_MASTER_ADMIN = 1 << 3, /* caller must be master admin */
    API_GRID_ADMIN = 1 << 4,   /* grid admin of the loaded grid */
    API_USER_ADMIN = 1 << 5,
    API_LOGIN = 1 << 6, /* rate-limited per client address */
    API_FORM_OK = 1 << 7, /* accepts form bodies as well as JSON */
    /* A cheap read: with an embedded store (local file, no network round
     * trip) it runs on the loop thread, saving two thread hand-offs. */
    API_FAST_READ = 1 << 8,
    /* A read that the audit log records (the vault's plaintext read);
     * mutating methods are always recorded. */
    API_AUDIT_READ = 1 << 9,
};

#define API_MAX_PARAMS 4

/* One request as a handler sees it. All strings are owned by the request
 * and freed with it. */
struct api_req {
    struct master *m;
    enum api_method method;
    char *path;  /* decoded path, no query */
    char *query; /* raw query string without '?', or NULL */
    char *params[API_MAX_PARAMS]; /* route captures, decoded */
    char *body;
    size_t body_len;
    char *authorization;
    char *content_type;
    char *accept;
    char *user_agent;
    char *peer_ip;
    char *scheme_host; /* "http://host:port" as the client addressed us */
    /* Filled by the pipeline. */
    json_t *json; /* parsed body: an object (form bodies become one) */
    bool authed;
    struct store_user user;
    struct store_token token;
    struct store_grid grid; /* with API_LOAD_GRID */
};

/* A streamed answer (spec 3.3 "follow"): a chunked 200 response that
 * never ends by itself. http.c drives it: it calls poll on a worker
 * thread, sends what poll appended to out, and calls poll again after
 * 0.1 s when it wrote items, or writes a single space as keep-alive and
 * waits 0.5 s when it wrote none. poll returns the number of items it
 * wrote, or a CP_E* code to end the stream. free(ctx) runs once, on the
 * loop thread, when the client went away, the master shuts down, or the
 * stream was never started. At most HTTP_MAX_STREAMS run at once (503
 * beyond). */
typedef int api_stream_poll(void *ctx, struct cp_buf *out);
typedef void api_stream_free(void *ctx);
struct api_stream {
    api_stream_poll *poll; /* NULL: not a stream */
    api_stream_free *free;
    void *ctx;
};

/* The response a handler fills. body is a JSON value (owned) unless raw
 * is set (owned text with raw_type as its content type), or stream. */
struct api_res {
    int status;
    json_t *body;
    char *raw;
    const char *raw_type;
    char *www_authenticate;
    struct api_stream stream; /* owned; taken over by http.c */
};

typedef void api_handler(struct api_req *req, struct api_res *res);

struct api_route {
    unsigned methods;
    const char *pattern; /* "/v1/grids/:grid/users/:email" */
    api_handler *handler;
    unsigned flags;
};

/* Finds the route for method and path; fills params (owned copies, to be
 * freed by the caller). Returns NULL and sets *status to 404 or 405 when
 * none matches. */
const struct api_route *api_match(enum api_method method, const char *path,
                                  char *params[API_MAX_PARAMS],
                                  int *status);

/* Runs the whole pipeline for a matched route on the calling (worker)
 * thread: body parsing, auth, grid loading, permission checks, handler. */
void api_run(const struct api_route *route, struct api_req *req,
             struct api_res *res);

void api_req_release(struct api_req *req);
void api_res_release(struct api_res *res);

/* ==== Helpers for handlers ==== */

/* {"error": "<message>"} with status. */
void api_error(struct api_res *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Starts or extends a 422 per-field error hash. */
void api_field_error(struct api_res *res, const char *field,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds every field -> message of errors (an object) to the 422 hash. */
void api_field_errors(struct api_res *res, const json_t *errors);
/* True when res already holds an error. */
bool api_failed(const struct api_res *res);
/* Answers status with body (takes ownership of body). */
void api_json(struct api_res *res, int status, json_t *body);
/* Answers status with JSON text already rendered into b (takes its
 * data). */
void api_raw_json(struct api_res *res, int status, struct cp_buf *b);
/* The most a rendered response may hold. */
#define API_MAX_RESPONSE (64u * 1024 * 1024)
/* Answers with a stream (takes ownership of ctx; see struct
 * api_stream). */
void api_stream(struct api_res *res, api_stream_poll *poll,
                api_stream_free *free_fn, void *ctx);
/* Maps a store error to a response ("Not found", 409, 500...). */
void api_store_error(struct api_res *res, int err);
/* Value of query parameter name (decoded, new string) or NULL. */
char *api_query(const struct api_req *req, const char *name);
/* True when the caller has role bits (master admins have all). */
bool api_has_role(const struct api_req *req, unsigned role);

/* ==== Handlers, one file per resource ==== */
/* api_root.c */
void api_root_get(struct api_req *req, struct api_res *res);
void api_ping(struct api_req *req, struct api_res *res);
void api_master_status(struct api_req *req, struct api_res *res);
/* api_oauth.c */
void api_oauth_token(struct api_req *req, struct api_res *res);
void api_oauth_authorize(struct api_req *req, struct api_res *res);
void api_tokens_list(struct api_req *req, struct api_res *res);
void api_token_show(struct api_req *req, struct api_res *res);
void api_token_delete(struct api_req *req, struct api_res *res);
void api_auth_legacy(struct api_req *req, struct api_res *res);
/* api_users.c */
void api_user_current(struct api_req *req, struct api_res *res);
void api_users_list(struct api_req *req, struct api_res *res);
json_t *api_user_json(const struct store_user *u);
/* api_grids.c */
/* The grid token in clear (new string), or NULL (logged) when it cannot
 * be opened. */
char *api_grid_token(const struct master *m, const struct store_grid *g);
void api_grids_list(struct api_req *req, struct api_res *res);
void api_grids_create(struct api_req *req, struct api_res *res);
void api_grid_show(struct api_req *req, struct api_res *res);
void api_grid_update(struct api_req *req, struct api_res *res);
void api_grid_delete(struct api_req *req, struct api_res *res);
void api_grid_users_list(struct api_req *req, struct api_res *res);
void api_grid_users_add(struct api_req *req, struct api_res *res);
void api_grid_users_remove(struct api_req *req, struct api_res *res);

/* api_nodes.c */
void api_nodes_list(struct api_req *req, struct api_res *res);
void api_nodes_create(struct api_req *req, struct api_res *res);
void api_node_show(struct api_req *req, struct api_res *res);
void api_node_update(struct api_req *req, struct api_res *res);
void api_node_delete(struct api_req *req, struct api_res *res);
void api_node_health(struct api_req *req, struct api_res *res);
void api_node_token_show(struct api_req *req, struct api_res *res);
void api_node_token_update(struct api_req *req, struct api_res *res);
void api_node_token_delete(struct api_req *req, struct api_res *res);
void api_node_stats(struct api_req *req, struct api_res *res);


/* api_services.c */
void api_services_list(struct api_req *req, struct api_res *res);
void api_services_create(struct api_req *req, struct api_res *res);
void api_service_show(struct api_req *req, struct api_res *res);
void api_service_update(struct api_req *req, struct api_res *res);
void api_service_delete(struct api_req *req, struct api_res *res);
void api_service_deploy(struct api_req *req, struct api_res *res);
void api_service_scale(struct api_req *req, struct api_res *res);
void api_service_start(struct api_req *req, struct api_res *res);
void api_service_stop(struct api_req *req, struct api_res *res);
void api_service_restart(struct api_req *req, struct api_res *res);
void api_service_deploy_show(struct api_req *req, struct api_res *res);
void api_service_instances(struct api_req *req, struct api_res *res);
void api_service_instance_show(struct api_req *req, struct api_res *res);
void api_service_instance_delete(struct api_req *req, struct api_res *res);
void api_service_containers(struct api_req *req, struct api_res *res);
void api_service_env_add(struct api_req *req, struct api_res *res);
void api_service_env_delete(struct api_req *req, struct api_res *res);
/* Loads the service of params[1] (stack, "null" = default) and params[2]
 * (name) in the loaded grid; answers 404 and returns non-zero when there
 * is none. */
int api__service_load(struct api_req *req, struct api_res *res,
                      struct store_service *out);
/* Instance counts of the grid's services (service_id NULL) or of one,
 * from one container query: an object service id -> [total, running].
 * NULL after answering the error. */
json_t *api__service_counts(struct api_req *req, struct api_res *res,
                            const char *service_id);
/* Service JSON of s with its counts from api__service_counts. */
json_t *api__service_view(struct api_req *req, const struct store_service *s,
                          const json_t *counts);

/* api_stacks.c (spec 3.1 "Stacks", 5.5) */
void api_stacks_list(struct api_req *req, struct api_res *res);
void api_stacks_create(struct api_req *req, struct api_res *res);
void api_stack_show(struct api_req *req, struct api_res *res);
void api_stack_update(struct api_req *req, struct api_res *res);
void api_stack_patch(struct api_req *req, struct api_res *res);
void api_stack_delete(struct api_req *req, struct api_res *res);
void api_stack_deploy(struct api_req *req, struct api_res *res);
void api_stack_stop(struct api_req *req, struct api_res *res);
void api_stack_restart(struct api_req *req, struct api_res *res);
void api_stack_deploy_show(struct api_req *req, struct api_res *res);

/* api_containers.c */
void api_containers_list(struct api_req *req, struct api_res *res);
void api_container_show(struct api_req *req, struct api_res *res);
void api_container_inspect(struct api_req *req, struct api_res *res);

/* api_secrets.c (spec 3.1 "Vault / secrets", 7) */
void api_secrets_list(struct api_req *req, struct api_res *res);
void api_secrets_create(struct api_req *req, struct api_res *res);
void api_secret_show(struct api_req *req, struct api_res *res);
void api_secret_update(struct api_req *req, struct api_res *res);
void api_secret_delete(struct api_req *req, struct api_res *res);
/* Adds a "secrets" error naming the first secret of a service spec that
 * is not in the loaded grid's vault. */
void api__secrets_check(struct api_req *req, const json_t *spec,
                        json_t *errors);

/* api_logs.c (spec 3.3; all streamable with ?follow) */
void api_grid_container_logs(struct api_req *req, struct api_res *res);
void api_grid_event_logs(struct api_req *req, struct api_res *res);
void api_service_container_logs(struct api_req *req, struct api_res *res);
void api_service_event_logs(struct api_req *req, struct api_res *res);
void api_container_logs(struct api_req *req, struct api_res *res);
void api_stack_container_logs(struct api_req *req, struct api_res *res);
void api_stack_event_logs(struct api_req *req, struct api_res *res);

/* api_registries.c */
void api_registries_list(struct api_req *req, struct api_res *res);
void api_registries_create(struct api_req *req, struct api_res *res);
void api_registry_show(struct api_req *req, struct api_res *res);
void api_registry_delete(struct api_req *req, struct api_res *res);

/* api_audit.c */
void api_audit_logs_list(struct api_req *req, struct api_res *res);
void api_grid_audit_log(struct api_req *req, struct api_res *res);

#endif
