/* The agent's pure reconcile step: service pods the master wants on this
 * node (the /node_service_pods/list result) against the containers the
 * engine has, giving an ordered list of actions and the set_state report
 * for each pod. Nothing here does I/O or reads the clock: the caller
 * lists and inspects containers, passes `now`, and executes the actions
 * through engine.c.
 *
 * Convergence is level-triggered (issue #2623): the caller keeps exactly
 * one desired list and replaces it wholesale on every successful pull;
 * it never queues pulls or diffs an older list. A failed parse of a new
 * list keeps the previous one (a half-parsed list would make the missing
 * pods look like orphans and remove their containers).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_PODS_H
#define CP_AGENT_PODS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ==== Desired state: the service pod ==== */

#define PODS_NO_POD ((size_t)-1) /* "no pod": orphans, lookups */

enum pod_desired {
    POD_RUNNING,
    POD_STOPPED,
    POD_INITIALIZED, /* scheduled but never deployed: create nothing */
};

/* A NULL-terminated-free string vector; v == NULL means "not given"
 * (which differs from an empty list for Cmd and Entrypoint). */
struct pod_strv {
    char **v;
    size_t n;
};

struct pod_kv {
    char *key;
    char *value;
};

struct pod_port {
    char *ip;       /* "0.0.0.0" when not given */
    char *protocol; /* "tcp" or "udp" */
    int node_port;  /* 0: expose only, no host binding */
    int container_port;
};

/* Exactly one of bind_mount (host path) and name (named volume) is set,
 * or neither for an anonymous volume at path. */
struct pod_volume {
    char *bind_mount;
    char *name;
    char *path;
    char *flags; /* "ro", "rw,z", ... or NULL */
};

/* From the io.kontena.health_check.* labels; protocol NULL = none. */
struct pod_health {
    char *protocol; /* "http" or "tcp" */
    char *uri;      /* http only, "/" when not given */
    int port;
    int interval_s;      /* default 60 */
    int timeout_s;       /* default 10 */
    int initial_delay_s; /* default 10 */
};

/* A lifecycle hook (spec 5.1); the master already left out oneshot hooks
 * done for this instance. */
enum pod_hook_type {
    POD_HOOK_PRE_START,  /* one-off container before the first start */
    POD_HOOK_POST_START, /* exec in the container after the first start */
    POD_HOOK_PRE_STOP,   /* exec in the container before stop/remove */
};

struct pod_hook {
    char *name; /* the pod's hook "id" */
    enum pod_hook_type type;
    char *cmd; /* run as sh -c cmd */
    bool is_oneshot;
    bool is_all_instances; /* no "instances", or "*" among them */
    int *instances;        /* else the instance numbers it runs for */
    size_t ninstances;
};

/* Pull credentials for a pod's image (spec 4.5 image_credentials): sent
 * to the engine as X-Registry-Auth, never logged. Strings may be NULL. */
struct pod_creds {
    char *username;
    char *password;
    char *email;
    char *serveraddress;
};

/* One service instance as the master wants it (spec 4.5 "Service pod").
 * Every string and array is owned by the pod; pod_release() frees them.
 * Optional strings are NULL when absent or null; optional numbers are
 * 0 (or -1 where 0 is meaningful, as noted). Secrets are already
 * merged: one entry per env name, values of the same name joined by
 * "\n", in first-seen order. */
struct pod {
    char *id; /* "<service_id>/<n>" */
    enum pod_desired desired;
    char *service_id;
    char *service_name; /* "stack.svc" or "svc" */
    long long service_revision;
    int instance_number;
    char *image_name;
    struct pod_creds *creds; /* image_credentials, NULL when none */
    char *deploy_rev;
    bool is_stateful;
    struct pod_strv cmd;
    struct pod_strv entrypoint;
    struct pod_strv env; /* "K=V", includes the KONTENA_* variables */
    struct pod_kv *secrets;
    size_t nsecrets;
    struct pod_port *ports;
    size_t nports;
    struct pod_volume *volumes;
    size_t nvolumes;
    char *net; /* bridge | host | none | container:x | network; NULL */
    char *hostname;
    char *domainname;
    char *user;
    long long memory;      /* bytes, 0 = no limit */
    long long memory_swap; /* bytes, 0 = not set, -1 = unlimited */
    long long cpu_shares;
    double cpus; /* 0 = no limit */
    bool is_privileged;
    struct pod_strv cap_add;
    struct pod_strv cap_drop;
    char *log_driver;
    struct pod_kv *log_opts;
    size_t nlog_opts;
    char *stop_signal;
    int stop_grace_period; /* seconds, -1 = not given */
    int wait_for_port;     /* 0 = none */
    struct pod_kv *labels; /* io.kontena.* as the master sent them */
    size_t nlabels;
    struct pod_health health;
    bool is_read_only;
    struct pod_hook *hooks;
    size_t nhooks;
};

/* Parses one service pod object into out (which the caller provides and
 * need not initialise). Returns 0, or CP_EINVAL with "field: why" in err
 * (e.g. "ports[1].container_port: not an integer in 1..65535"); on error
 * out holds nothing to free. null counts as absent for optional fields. */
int pods_parse(const json_t *service_pod, struct pod *out, char *err,
               size_t errlen);

/* Parses the list result {service_pods:[...]} all-or-nothing into a new
 * array *out of *n pods (caller frees with pods_free_list). Returns 0 or
 * CP_EINVAL with "service_pods[2].image_name: ..." in err. */
int pods_parse_list(const json_t *result, struct pod **out, size_t *n,
                    char *err, size_t errlen);

/* True when hook i of p is of type and runs for p's instance number
 * (instances "*" or absent: every instance). Pure. */
bool pods_hook_runs(const struct pod *p, size_t i, enum pod_hook_type type);
/* "pre_start", "post_start", "pre_stop" (static). */
const char *pods_hook_type_name(enum pod_hook_type t);

/* Frees what the pod owns and zeroes it; NULL is fine. */
void pod_release(struct pod *p);
/* Releases n pods and frees the array; NULL is fine. */
void pods_free_list(struct pod *pods, size_t n);

/* The index of the pod of service_id's instance instance_number in
 * pods[0..n), or PODS_NO_POD when the list has no such pod (the first
 * match when the master sent duplicates). */
size_t pods_find(const struct pod *pods, size_t n, const char *service_id,
                 int instance_number);

/* The container name: "svc-N" in the null stack, "stack.svc-N"
 * otherwise ("null.svc" counts as the null stack). Caller frees. */
char *pods_container_name(const struct pod *p);

/* The body of POST /containers/create?name=<pods_container_name()> for
 * the pod (image, command, env with secrets, labels, ports, volumes,
 * limits, logging, stop signal and timeout). RestartPolicy is "no": the
 * agent restarts crashed containers itself, with backoff. Returns 0 and
 * a new reference in *create_body. */
int pods_container_spec(const struct pod *p, json_t **create_body);

/* The digest of the pod's secrets that its container carries as label
 * io.kontena.container.secrets_rev (with the env names in
 * io.kontena.container.secret_env), so that a change of a secret's value
 * counts as a change of the pod (issues #651, #2917): hex SHA-256 over
 * the pod's service id, instance number and its merged secrets, in
 * order. A hash, not the values: inspect data travels to the master,
 * which also drops the label before storing it. NULL when the pod has
 * no secrets (caller frees). */
char *pods_secrets_rev(const struct pod *p);

/* ==== Actual state: one container ==== */

/* A container as the engine lists or inspects it, reduced to what the
 * diff needs. All strings owned; pods_actual_release() frees them. A
 * container is ours when service_id is set (the io.kontena.service.id
 * label); any other container is never touched. */
struct actual {
    char *name; /* without the leading "/" */
    char *id;
    char *service_id;           /* NULL: not a kontena service container */
    int instance_number;        /* -1 when the label is missing or bad */
    long long service_revision; /* -1 when the label is missing or bad */
    char *deploy_rev;
    char *lb_labels; /* io.kontena.load_balancer.* as sorted "k=v\n" */
    char *secrets_rev; /* io.kontena.container.secrets_rev, or NULL */
    char *image_id;  /* "sha256:..." */
    bool is_running;
    int exit_code;
    char *error;           /* State.Error from inspect, NULL when empty */
    int64_t started_at_ms; /* 0 when unknown or never started */
    int64_t finished_at_ms;
};

/* Fills out from a GET /containers/{id}/json body. Returns 0, or
 * CP_EPROTO when Id or Name is missing; out holds nothing on error. */
int pods_actual_from_inspect(const json_t *inspect, struct actual *out);
/* Fills out from one row of GET /containers/json?all=1. Rows have no
 * exit code or times: inspect exited containers of ours before diffing
 * so the restart backoff can count from their death. 0 or CP_EPROTO. */
int pods_actual_from_list_row(const json_t *row, struct actual *out);
/* Frees what a owns and zeroes it; NULL is fine. */
void pods_actual_release(struct actual *a);

/* ==== Agent memory between diffs ==== */

/* What the engine cannot tell the diff: per container, how many crash
 * restarts the agent did in a row, when it last started it, and whether
 * the agent itself stopped it; per image name, the id the last pull
 * resolved to. Owned by the reconcile loop; only the executor mutates it
 * (through the functions below), the diff only reads it. */
struct pods_cstate {
    char *name;
    int restarts;
    int64_t last_start_ms;
    bool is_stopped_by_agent;
};
struct pods_image {
    char *name;
    char *id;
};
struct pods_state {
    struct pods_cstate *c;
    size_t nc;
    struct pods_image *images;
    size_t nimages;
};

void pods_state_init(struct pods_state *s);
/* Frees everything; s can be init'ed again. */
void pods_state_release(struct pods_state *s);
/* Borrowed entry for a container name, or NULL when there is none. */
const struct pods_cstate *pods_state_get(const struct pods_state *s,
                                         const char *name);
/* Records that the agent started name at now_ms; restarts is the value
 * the START action carried (0 for a normal start). Clears the
 * stopped-by-agent mark. */
void pods_state_started(struct pods_state *s, const char *name, int restarts,
                        int64_t now_ms);
/* Records that the agent stopped name on purpose (no backoff later). */
void pods_state_stopped(struct pods_state *s, const char *name);
/* Drops the entry of a removed container. */
void pods_state_forget(struct pods_state *s, const char *name);
/* Records the image id an image name resolved to (after a pull). */
void pods_state_set_image(struct pods_state *s, const char *image_name,
                          const char *image_id);
/* Borrowed id for an image name, or NULL when unknown. */
const char *pods_state_image(const struct pods_state *s,
                             const char *image_name);

/* ==== The diff ==== */

/* Backoff before the n-th consecutive crash restart: n² seconds, capped
 * at PODS_BACKOFF_MAX_MS. A container that was up PODS_RESET_UP_MS or
 * longer before it died starts counting from 1 again. */
#define PODS_BACKOFF_MAX_MS 30000
#define PODS_RESET_UP_MS 10000

enum pods_action_kind {
    PODS_CREATE,   /* create from pods_container_spec() */
    PODS_START,    /* start; then pods_state_started(restarts) */
    PODS_STOP,     /* stop; then pods_state_stopped() */
    PODS_RECREATE, /* remove container_id, then create (no start) */
    PODS_REMOVE,   /* remove with force; then pods_state_forget() */
    PODS_WAIT,     /* crash backoff: nothing to do for wait_ms */
};

struct pods_action {
    enum pods_action_kind kind;
    char *name;         /* container name, owned */
    char *container_id; /* owned; NULL when the container is yet to be
                         * made (CREATE, and START after CREATE or
                         * RECREATE): act on name, which is unique */
    size_t pod;         /* index into desired, PODS_NO_POD for orphans */
    char *reason;       /* for the log and the event, owned */
    int64_t wait_ms;    /* WAIT only */
    int restarts;       /* START only: pass to pods_state_started() */
};

enum pods_report_state {
    PODS_REPORT_RUNNING,
    PODS_REPORT_STOPPED,
    PODS_REPORT_RESTARTING,
    PODS_REPORT_MISSING,
};

/* The /node_service_pods/set_state payload for one pod, computed from
 * the actual state the diff saw (before its actions). is_settled is true
 * when the pod needs no action other than WAIT: only then is the report
 * the pod's outcome. Send settled reports; after executing actions,
 * re-list and diff again to get the outcome of the others. That way the
 * agent never reports a rev whose container it has not converged. */
struct pods_report {
    char *service_id; /* owned copies */
    int instance_number;
    char *rev; /* the pod's deploy_rev, NULL when it has none */
    enum pods_report_state state;
    char *error; /* NULL when none */
    bool is_settled;
};

/* The diff's output. Actions are in execution order: removals of
 * orphans first (they free names and ports), then each desired pod in
 * list order. reports has one entry per desired pod, same order.
 * wake_in_ms is the smallest WAIT (0 when none): diff again by then. */
struct pods_actions {
    struct pods_action *v;
    size_t n;
    struct pods_report *reports;
    size_t nreports;
    int64_t wake_in_ms;
};

void pods_actions_init(struct pods_actions *a);
/* Frees everything; a can be reused after pods_actions_init(). */
void pods_actions_release(struct pods_actions *a);

/* Compares the latest desired pods with the actual containers and fills
 * out (which must be init'ed and empty). Pure: reads only its arguments;
 * state may be NULL (no memory: no backoff, no image ids). For each pod,
 * matched by container name:
 *   - no container: CREATE, then START if desired running;
 *   - desired running and the container is stale (older or unknown
 *     service revision, another service id, different load balancer
 *     labels, other secret values (pods_secrets_rev), an engine error
 *     after it stopped, or a new deploy_rev
 *     whose pulled image id differs from the container's): RECREATE and
 *     START;
 *   - desired stopped and running: STOP;
 *   - desired running and not running: START, unless it crashed (died
 *     without the agent stopping it), in which case it gets WAIT until
 *     the backoff since its death has passed;
 *   - otherwise nothing.
 * Containers with io.kontena.service.id whose name no pod claims are
 * REMOVEd. A name held by a non-kontena container is reported as
 * missing with an error and left alone. Returns 0. */
int pods_diff(const struct pod *desired, size_t nd, const struct actual *actual,
              size_t na, const struct pods_state *state, int64_t now_ms,
              struct pods_actions *out);

/* "create", "start", ... and "running", "stopped", ... (static). */
const char *pods_action_kind_name(enum pods_action_kind k);
const char *pods_report_state_name(enum pods_report_state s);

#endif
