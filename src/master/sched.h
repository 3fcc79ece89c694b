/* The scheduler (spec 5.2): picks a node for every instance of a service.
 * Pure: it reads a snapshot the caller builds (nodes, their labels,
 * resources and what runs there, the service spec, the current instances,
 * `now` and a random seed) and returns a placement. No I/O, no globals, no
 * clock; the same input and seed always give the same output.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_SCHED_H
#define CP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits that keep one call bounded whatever the input says. */
#define SCHED_MAX_PLACEMENTS 1000000 /* instances to place in one call */
#define SCHED_RULE_MAX 256           /* affinity rule, after %s expansion */
#define SCHED_REGEX_MAX 200          /* the /regex/ part of a rule */

enum sched_availability {
    SCHED_ACTIVE,
    SCHED_DRAIN,
};

/* A container running on a node, as far as scheduling cares. `service` is
 * "stack/svc" when the container belongs to a service instance (with
 * `instance` its number), NULL otherwise. `ports` are published node
 * ports. */
struct sched_container {
    const char *name;
    const char *service;
    int instance;
    const int *ports;
    size_t n_ports;
};

/* A node of the grid. Every node of the grid may be listed, connected or
 * not: only connected nodes (and, with `use_grace`, nodes offline for less
 * than the strategy's grace period) are candidates, and the others are still
 * needed to explain why a stateful instance cannot move (issue #2274).
 * `labels` are whole "k=v" strings; `az=<zone>` is the availability zone
 * and a bare `ephemeral` (or `ephemeral=...`) marks an ephemeral node.
 * `mem_free` is total − (used − cached − buffers) from the latest stats,
 * 0 when there are no stats. `mem_used_ratio` is 0..1. Memory is in
 * bytes. All pointers are borrowed for the duration of sched_place() and,
 * through sched_result.node_id, for the life of the result. */
struct sched_node {
    const char *id;
    const char *name;
    int node_number;
    const char *const *labels;
    size_t n_labels;
    enum sched_availability availability;
    bool connected;
    int64_t disconnected_at; /* unix seconds; used only with use_grace */
    double cpus;
    uint64_t mem_total;
    uint64_t mem_free;
    double mem_used_ratio;
    const struct sched_container *containers;
    size_t n_containers;
};

/* The service being scheduled. `strategy` is "ha" (also for NULL or ""),
 * "daemon" or "random". `stack` is the stack name ("null" for none).
 * `cpus` 0 and `memory`/`memory_swap` 0 mean "not set". `affinity` rules
 * are `<key><op>[~]<value>` with key node|service|container|label, op ==
 * or !=, value `/regex/` allowed and `%s` replaced by the instance
 * number; when the service has none, `default_affinity` (the grid's)
 * applies. `volumes_from` names and `net` ("container:X") may use %s. */
struct sched_service {
    const char *stack;
    const char *name;
    const char *strategy;
    int instances;
    bool stateful;
    double cpus;
    uint64_t memory;
    uint64_t memory_swap;
    const int *ports;
    size_t n_ports;
    const char *const *affinity;
    size_t n_affinity;
    const char *const *default_affinity;
    size_t n_default_affinity;
    const char *const *volumes_from;
    size_t n_volumes_from;
    const char *net;
};

/* A current instance of the service: where it was last placed (the node
 * id, or NULL). For a stateful service this node is binding. */
struct sched_instance {
    int instance_number;
    const char *node_id;
};

struct sched_input {
    const struct sched_node *nodes;
    size_t n_nodes;
    const struct sched_service *service;
    const struct sched_instance *instances;
    size_t n_instances;
    int64_t now;    /* unix seconds */
    bool use_grace; /* count recently disconnected nodes (spec 5.4 drift) */
    uint64_t seed;  /* drives every random choice */
};

/* One instance's outcome: `node` indexes input.nodes and `node_id` is
 * borrowed from it, or on failure node is SIZE_MAX, node_id NULL and
 * `error` says which filter and which rule emptied the node set. */
struct sched_placement {
    int instance_number;
    size_t node;
    const char *node_id;
    char *error; /* owned by the result */
};

/* The outcome of sched_place(). `status` is 0 when every instance found a
 * node, CP_ENOTFOUND when some did not (or a daemon found no eligible
 * node), CP_EINVAL for an input it refuses (bad rule, unknown strategy,
 * too many instances). `error` is the first failure, prefixed with the
 * instance ("instance 2: memory: ..."), NULL on success. */
struct sched_result {
    struct sched_placement *placements;
    size_t n_placements;
    size_t n_placed;
    size_t n_failed;
    size_t eligible_nodes; /* nodes that pass the node-wide filters */
    int status;
    char *error;
};

/* Places every instance of in->service on in->nodes. Always fills *out
 * (release it with sched_result_release, even on error) and returns
 * out->status. Instances that fail do not stop the others. */
int sched_place(const struct sched_input *in, struct sched_result *out);

/* Frees what *r owns and zeroes it; r may be reused. */
void sched_result_release(struct sched_result *r);

/* Returns true if name is a strategy sched_place() knows. */
bool sched_strategy_valid(const char *name);

/* Returns how long (seconds) a disconnected node still counts for the
 * strategy when looking for placement drift (spec 5.4), or -1 for an
 * unknown strategy. */
int sched_strategy_grace(const char *name);

/* ==== Internal: shared by sched.c and sched_strategy.c only ==== */

/* What a strategy sees when choosing a node for one instance: the
 * candidates that passed every filter (indexes into nodes, never empty),
 * the counts placed this round, and the node that already runs the
 * instance (SIZE_MAX if none). */
struct sched__pick {
    const struct sched_node *nodes;
    const size_t *cand;
    size_t n_cand;
    const size_t *placed;      /* per node */
    const size_t *zone;        /* per node: zone id */
    const size_t *zone_placed; /* per zone id */
    size_t prev;
    size_t quota; /* daemon: instances per node */
    uint64_t *rng;
};

/* A placement strategy (STYLE rule 3); sched_strategy.c defines one
 * const struct per strategy and the table sched__strategy_find reads. */
struct sched__strategy_ops {
    const char *name;
    int grace_seconds;
    /* Instances to place given the spec's count and the eligible nodes. */
    size_t (*count)(size_t instances, size_t eligible_nodes);
    /* Returns the chosen index into p->cand. */
    size_t (*pick)(const struct sched__pick *p);
};

/* Returns the strategy for name (NULL or "" is ha), NULL if unknown. */
const struct sched__strategy_ops *sched__strategy_find(const char *name);

/* splitmix64: returns the next value of the seeded stream *state. */
uint64_t sched__rand(uint64_t *state);

#endif
