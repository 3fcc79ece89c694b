/* Agent -> master call handlers and their table (see agent_calls.c).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_CALLS_H
#define CP_AGENT_CALLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agents.h"
#include "master.h"

struct session;

/* One call from an agent, as a worker sees it. */
struct agent_call {
    struct session *s;
    struct master *m;
    struct agents_config cfg;
    char row_id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    int64_t gen;
    bool is_request;
    uint32_t id;
    json_t *params;
    /* Results. */
    json_t *error;
    json_t *result;
    int close_code; /* close the session after answering */
    const char *close_reason;
    char update_hash[65]; /* /nodes/update: hash of the payload */
};

typedef void agent_call_fn(struct agent_call *c);

/* The handler for method, or NULL (the caller answers 501). */
agent_call_fn *agent_calls_find(const char *method);
/* Sets c->error to {code, message}. */
void agent_call_error(struct agent_call *c, int code, const char *msg);

/* Service pod and container calls (agent_calls_pods.c, spec 4.5). Each
 * validates its params (400 on bad shape) and acts on the calling node's
 * rows only. */
void agent_calls_pods_list(struct agent_call *c);
void agent_calls_pods_set_state(struct agent_call *c);

/* A /node_service_pods/set_state report, checked and copied. */
struct agent_state_report {
    char service_id[STORE_ID_LEN + 1];
    int instance_number;
    char *rev, *state, *error; /* rev, error may be NULL */
};
/* Checks set_state params ([node_id, {...}]) into out: NULL, or the 400
 * message (out is then empty). Any thread. */
const char *agent_calls_pods_parse_state(const json_t *params,
                                         struct agent_state_report *out);
void agent_state_report_release(struct agent_state_report *r);
void agent_calls_pods_event(struct agent_call *c);
void agent_calls_pods_mark_oneshot_hook(struct agent_call *c);
void agent_calls_containers_save(struct agent_call *c);
/* Removes from a docker inspect object (in place) the Config.Env entries
 * of secrets and certificates (names from the service spec, NULL: none,
 * and from the container's secret_env label) and the secrets digest
 * label: what /containers/save keeps out of the stored data. */
void agent_calls_strip_secret_env(json_t *ins, const json_t *spec);
void agent_calls_containers_event(struct agent_call *c);
void agent_calls_containers_cleanup(struct agent_call *c);
void agent_calls_containers_log_batch(struct agent_call *c);
void agent_calls_containers_stat(struct agent_call *c);
void agent_calls_containers_health(struct agent_call *c);

#endif
