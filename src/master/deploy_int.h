/* Internal to the deploy engine: shared by deploy.c and reconcile.c only.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_DEPLOY_INT_H
#define CP_DEPLOY_INT_H

#include <stdarg.h>

#include "master.h"
#include "sched.h"
#include "store.h"

/* A grid as the scheduler needs it, read in a fixed number of queries:
 * the grid, its nodes, live containers and services, and the sched_node
 * array built over them (everything borrowed from the rows here). */
struct deploy__grid {
    struct store_grid grid;
    struct store_node_list nodes;
    struct store_container_list cts;
    struct store_service_list svcs;
    struct sched_node *sn;      /* one per node */
    const char **labels;        /* pool for sn[].labels */
    struct sched_container *sc; /* pool for sn[].containers */
    char **names;               /* per service: "stack/svc" */
    int **ports;                /* per service: node ports */
    size_t *n_ports;
};

/* Loads grid_id; 0 or a CP_E* code (g is released either way on error). */
int deploy__grid_load(struct master *m, const char *grid_id,
                      struct deploy__grid *g);
void deploy__grid_release(struct deploy__grid *g);

/* The scheduler's view of svc over g, with its current instances. The
 * instance's own containers count only where its row places it (a moved
 * instance is free). Fills in and the arrays it points into; release with
 * deploy__sched_release. */
struct deploy__sched {
    struct sched_service svc;
    struct sched_input in;
    struct sched_node *nodes; /* copies of g->sn with filtered containers */
    struct sched_container *sc;
    struct sched_instance *inst;
    const char **affinity, **default_affinity, **volumes_from;
    int *ports;
};
void deploy__sched_build(const struct deploy__grid *g,
                         const struct store_service *svc,
                         const struct store_instance_list *insts,
                         int64_t now_ms, bool use_grace, uint64_t seed,
                         struct deploy__sched *out);
void deploy__sched_release(struct deploy__sched *s);

/* Appends an event about svc (severity 0..3); failures are logged. */
void deploy__event(struct master *m, const struct store_service *svc,
                   const char *node_id, int severity, const char *type,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Seconds from environment variable name, or def when unset or bad. */
int deploy__env_seconds(const char *name, int def);

/* Reconciliation and retention timers (reconcile.c). */
void deploy__reconcile_start(struct master *m);
void deploy__reconcile_stop(void);

#endif
