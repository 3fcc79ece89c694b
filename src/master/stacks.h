/* Stacks on the master (spec 5.5; issue #2523): the pure rules (link
 * order, cycle detection, the revision a stack body describes, whether a
 * revision differs from another, the stack state) and the stack job
 * worker that deploys and removes stacks.
 *
 * A revision is a JSON object {stack, version, registry, source, expose,
 * variables, services, volumes, metadata}; services holds validated
 * service specs (service_model.h), each with its "name", in link order.
 *
 * The worker claims stack jobs (store.h "stack_deploy_*") with a 30 s
 * lease, one job per stack at a time on any master, and steps each one
 * once a second on the worker pool: a deploy applies its revision to the
 * services, then deploys them one at a time in link order; a removal
 * stops the services, deletes them in reverse link order and then the
 * stack. Every job ends in success or error, also when it fails before
 * any service deploy; a job whose master died is taken over, with the
 * progress kept in its row, once its lease expires.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_STACKS_H
#define CP_STACKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "master.h"
#include "store.h"

/* Most services in one stack. */
#define STACKS_MAX_SERVICES 256

/* ==== Pure rules ==== */

/* Orders services (an array of objects with "name" and optionally
 * "links": [{name}]) so that every service comes after the services of
 * its own stack it links to; links "svc" and "<own_stack>/svc" are of
 * the stack, others ("other/svc") are ignored here. order (n entries,
 * n = size of services) gets indexes into services; services that do
 * not depend on each other keep their input order. On a link to a
 * service the array lacks, or a cycle, returns CP_EINVAL with why
 * ("service web has missing links: db" / "service a has recursive links:
 * a -> b -> a") and *bad (may be NULL) set to the index of the service to
 * blame. */
int stacks_order(const json_t *services, const char *own_stack, size_t *order,
                 char *why, size_t len, size_t *bad);

/* Builds the revision a stack create or update body describes (fields
 * stack, version, registry, source, expose, variables, services, volumes,
 * metadata) into *rev_out (new reference; NULL when errors were added).
 * Each service is validated as by POST /v1/grids/G/services, its name
 * must be unique, and its DNS name fit (stack_name, grid_name); current
 * (may be NULL) maps the names of the stack's existing services to their
 * specs, so that changes an update may not make (stateful) are refused.
 * Errors go to errors as "services.<svc>.<field>", "expose", "volumes",
 * "volumes.<name>", ... Returns 0 or CP_EINVAL. */
int stacks_build_revision(const json_t *body, const char *stack_name,
                          const char *grid_name, const json_t *current,
                          json_t **rev_out, json_t *errors);

/* Checks the links of services (a revision's) that name another stack
 * ("other/svc") against existing, an object whose keys are the grid's
 * services as "stack/svc". Adds "services.<svc>.links" to errors for
 * each missing target; returns true when none was missing. */
bool stacks_check_external_links(const json_t *services, const char *own_stack,
                                 const json_t *existing, json_t *errors);

/* True when the revisions a and b (revision objects as above) differ in
 * anything stored (compared as canonical JSON; absent equals null). */
bool stacks_revision_differs(const json_t *a, const json_t *b);

/* A stack's state from its services' states (n of them, "initialized",
 * "running", "stopped") and whether a deploy of it is open:
 * "initialized" (all initialized or none), "deploying", "stopped",
 * "running" or "partially_running". */
const char *stacks_state(const char *const *service_states, size_t n,
                         bool is_deploying);

/* The revision object of r (new reference) and back: fills r's fields
 * from rev (owned copies; r->id, stack_id, revision untouched). */
json_t *stacks_revision_json(const struct store_stack_revision *r);
void stacks_revision_from_json(const json_t *rev,
                               struct store_stack_revision *r);

/* ==== The worker (loop thread) ==== */

/* Starts the poll for stack jobs; stacks_stop closes idle jobs and lets
 * busy ones end after their step (their leases run out and another
 * master, or this one restarted, takes them over). */
void stacks_start(struct master *m);
void stacks_stop(struct master *m);

/* Appends an event about stack k (no service); failures are logged.
 * Any thread. */
void stacks_event(struct master *m, const struct store_stack *k, int severity,
                  const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
