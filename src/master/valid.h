/* Pure validation rules shared by the API handlers (spec 3.2). No I/O;
 * unit-tested in tests/unit/test_valid.c.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_VALID_H
#define CP_VALID_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Grid names: at least 3 and at most 64 chars of [A-Za-z0-9_-]. */
bool valid_grid_name(const char *s);
/* Names of stacks and services: word chars and -, not starting with -,
 * at most 64 chars. */
bool valid_name(const char *s);
/* An IPv4 CIDR "a.b.c.d/n" with n in 0..32. */
bool valid_cidr(const char *s);
/* True when CIDR inner lies inside CIDR outer (both valid). */
bool valid_cidr_within(const char *inner, const char *outer);
/* A user-supplied token: 16..256 printable ASCII chars, no spaces. */
bool valid_token(const char *s);
/* "host:port" or "host" with port 1..65535. */
bool valid_host_port(const char *s);

/* Validates the grid settings in body (keys default_affinity,
 * trusted_subnets, stats, logs) and copies the good ones into out, an
 * object holding the current settings. Every bad value adds
 * field -> message to errors; returns true when none was bad. */
bool valid_grid_settings(const json_t *body, json_t *out, json_t *errors);

#endif
