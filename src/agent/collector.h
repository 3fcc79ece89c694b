/* The node facts collector: one thread of its own that gathers what
 * /nodes/update carries (the engine's /info and /version, which take
 * 0.5-0.7 s on Podman, plus the kernel, OS and IP facts), so the loop
 * thread never waits on the engine and pings keep flowing. The loop
 * thread asks with collector_request(); the thread does the work, keeps
 * the newest result and calls the wake function; the loop thread then
 * picks the result up with collector_take().
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_COLLECTOR_H
#define CP_AGENT_COLLECTOR_H

#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Wakes the loop thread; called from the collector's thread. */
typedef void collector_wake_fn(void *ctx);

/* cfg is borrowed and must outlive the collector; node_name and version
 * (the engine's /version when read already, else NULL: read on first
 * use) are copied; wake may be NULL (results then wait for a take). */
struct collector_options {
    const struct agent_config *cfg;
    const char *node_name;
    const json_t *version;
    collector_wake_fn *wake;
    void *wake_ctx;
};

/* One answer. payload is the /nodes/update facts object (owned), NULL
 * when the engine could not be read (error says why). */
struct collector_result {
    uint64_t gen; /* the collector_request() it answers */
    json_t *payload;
    char *root_dir; /* the engine's DockerRootDir, owned; NULL: unknown */
    char error[512];
};

struct collector;

/* A collector with its own engine client; starts its thread (which
 * cannot fail short of a panic). */
struct collector *collector_new(const struct collector_options *opt);
/* Stops and joins the thread (an engine call in progress finishes
 * first) and frees everything; NULL is fine. */
void collector_free(struct collector *c);

/* Loop thread: asks for fresh facts. Returns the request's generation;
 * a request made while one runs is served after it, and only the
 * newest result is kept. */
uint64_t collector_request(struct collector *c);
/* Loop thread: moves the newest unread result into *out (the caller
 * releases it with collector_result_release) and returns true, or
 * returns false when there is none. */
bool collector_take(struct collector *c, struct collector_result *out);
void collector_result_release(struct collector_result *r);

#endif
