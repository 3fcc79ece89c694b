/* Live container inspects for the master (/containers/inspect [id or
 * name]): a thread of its own with its own engine client, so the loop
 * thread never waits on the engine (as the collector does for node
 * facts). The loop thread queues a job with inspector_queue(); the thread
 * inspects, checks that the container is a kontena container of this
 * grid, strips its secret env entries and puts the answer in the outbox,
 * then calls the wake function; the loop thread takes answers with
 * inspector_take() and sends them.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_INSPECTOR_H
#define CP_AGENT_INSPECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define INSPECTOR_MAX_JOBS 16

typedef void inspector_wake_fn(void *ctx);

struct inspector;

/* The answer to one job: error (rpc_error shape) or result, owned. */
struct inspector_answer {
    uint32_t rpc_id;
    uint64_t conn_gen; /* the connection the request came on */
    json_t *error, *result;
};

struct inspector *inspector_new(const char *socket_path,
                                inspector_wake_fn *wake, void *wake_ctx);
/* Stops and joins the thread (an engine call in progress finishes
 * first); answers not taken are dropped. NULL is fine. */
void inspector_free(struct inspector *in);

/* Loop thread: queues an inspect of target for the grid named grid.
 * Returns false when INSPECTOR_MAX_JOBS are queued already. */
bool inspector_queue(struct inspector *in, uint32_t rpc_id, uint64_t conn_gen,
                     const char *target, const char *grid);
/* Loop thread: moves one answer into *out; false when there is none. */
bool inspector_take(struct inspector *in, struct inspector_answer *out);

/* Pure parts (unit tested). */
/* True when s can name a container: 1-128 of [A-Za-z0-9_.-], not
 * starting with '.' or '-'. */
bool inspector_valid_target(const char *s);
/* Checks inspect data ins against grid: NULL when it is a kontena
 * container of that grid (labels io.kontena.grid.name == grid and
 * io.kontena.service.id present), else an rpc_error (403). */
json_t *inspector_check(const json_t *ins, const char *grid,
                        const char *target);
/* Removes from ins (in place) the Config.Env entries named by the
 * io.kontena.container.secret_env label and the secrets_rev label. */
void inspector_strip_secrets(json_t *ins);

#endif
