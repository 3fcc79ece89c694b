/* The service model of the REST API (spec 3.2 "Service create", "Service
 * JSON", "Container JSON"; 5.1): validation of a service body into the
 * spec JSON the store keeps, and the views built from store rows. Pure:
 * no I/O, no clock, no globals; unit-tested in
 * tests/unit/test_service_model.c.
 *
 * The spec JSON holds every field of the table in service_model.c, always
 * present and normalised (defaults filled, cmd split into an array, ports
 * as objects, memory in bytes, stop_grace_period in seconds, hooks as a
 * flat list of {name, type, cmd, instances, oneshot}). Adding a field:
 * add a row to that table, and the deploy side (pods_view.c) if agents
 * need it.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_SERVICE_MODEL_H
#define CP_SERVICE_MODEL_H

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

/* Most instances a service may ask for. */
#define SERVICE_MAX_INSTANCES 10000
/* Most links, ports, env entries... of one list field. */
#define SERVICE_MAX_LIST 1024

/* Validates body (a service create or partial update) against
 * current_spec (NULL on create) and builds the full new spec in *spec_out
 * (new reference, also on failure; never NULL). Keys of body that are not
 * service fields (name, stack, ...) are ignored. On update, fields absent
 * from body keep their current value, null resets a field to its
 * default, and env entries "K=" keep the current value of K. Every bad
 * field adds field -> message to errors (an object). Returns 0, or
 * CP_EINVAL when errors were added. Never asserts on body. */
int service_validate(const json_t *body, const json_t *current_spec,
                     json_t **spec_out, json_t *errors);

/* Checks a service name and the length of its longest DNS name,
 * "<name>-<instances>.<stack>.<grid>.kontena.local" (no stack part in the
 * null stack), against 64 chars. Adds "name" to errors; returns true when
 * good. */
bool service_name_ok(const char *name, const char *stack_name,
                     const char *grid_name, long long instances,
                     json_t *errors);

/* The service's path id "G/S/svc" (S is "null" for the default stack).
 * New string; caller frees. */
char *service_path(const char *grid_name, const struct store_service *s);

/* True when spec links to the service named name in stack stack_name
 * (links "name" resolve in own_stack, "stack/name" anywhere). */
bool service_links_to(const json_t *spec, const char *own_stack,
                      const char *stack_name, const char *name);

/* Service JSON (spec 3.2) with instance_counts {total, running}. New
 * reference. */
json_t *service_json(const struct store_service *s, const char *grid_name,
                     int total, int running);

/* Container JSON (spec 3.2) from the stored row and its info; node may be
 * NULL (then node is null). service_path ("G/S/svc") may be NULL: the
 * row id is shown as service_id then. New reference. */
json_t *container_json(const struct store_container *c, const char *grid_name,
                       const struct store_node *node_or_null);
json_t *container_json_ex(const struct store_container *c,
                          const char *grid_name,
                          const struct store_node *node_or_null,
                          const char *service_path);

/* Parses a size: a non-negative integer of bytes, or a string "512",
 * "512b", "100k", "512m", "1g", "2t" (binary units, case-insensitive,
 * an optional trailing "b" after the unit). 0 or CP_EINVAL. */
int service_parse_bytes(const json_t *v, long long *out);
/* Parses a duration in seconds: an integer, or "30s", "5m", "1h30m",
 * "2d" (units s, m, h, d; a bare number is seconds). 0 or CP_EINVAL. */
int service_parse_seconds(const json_t *v, long long *out);

#endif
