/* Node views shared by the REST API and the agent sessions: status, the
 * node JSON of spec 3.2 and the /agent/node_info payload of spec 4.4.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_NODES_H
#define CP_NODES_H

#include <jansson.h>
#include <stddef.h>

#include "store.h"

/* created | offline | connecting | drain | online */
const char *nodes_status(const struct store_node *n);
/* The node's overlay address: the grid subnet's network address plus the
 * node number ("10.81.0.3"); writes "" when the subnet is unusable. */
void nodes_overlay_ip(const char *subnet, int node_number, char *out,
                      size_t len);
/* The grid part of node views. */
json_t *nodes_grid_json(const struct store_grid *g, const char *token);
/* Node JSON (spec 3.2). grid_token may be NULL. New reference. */
json_t *nodes_json(const struct store_node *n, const struct store_grid *g,
                   const char *grid_token);
/* The /agent/node_info hash (spec 4.4). New reference. */
json_t *nodes_info_json(const struct store_node *n,
                        const struct store_grid *g);
/* Picks the facts the master keeps from a /nodes/update payload (Docker
 * /info keys plus Kontena's) into a new object. */
json_t *nodes_facts_from_update(const json_t *payload);

#endif
