/* The service pod (spec 4.5): the desired state of one service instance
 * as the node's agent pulls it with /node_service_pods/list. Built from
 * the stored service (its validated spec), the instance row, the grid and
 * the node the instance is placed on. Pure: no store, no clock.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_PODS_VIEW_H
#define CP_PODS_VIEW_H

#include <jansson.h>
#include <stddef.h>

#include "store.h"

/* The pod JSON of instance inst of svc, placed on node of grid g. Every
 * argument is borrowed; fields of the spec that are missing or of the
 * wrong type come out as null or their documented default. Returns a new
 * reference (never NULL). */
json_t *pods_view_pod(const struct store_service *svc,
                      const struct store_instance *inst,
                      const struct store_grid *g,
                      const struct store_node *node);

/* "S.svc", or "svc" in the default ("null") stack, into out. */
void pods_view_service_name(const struct store_service *svc, char *out,
                            size_t len);

/* Seconds from a stop_grace_period: a number, or a duration string such
 * as "30s", "1m30s", "2m", "1h" or a bare "45". Returns -1 when v is
 * missing or unreadable. */
long long pods_view_duration(const json_t *v);

#endif
