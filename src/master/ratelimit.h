/* Fixed-window rate limiting per client address (spec 1.2: 60 login
 * attempts per 60 s). Pure: the caller passes the clock. Not thread-safe;
 * the master uses it on its loop thread only.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_RATELIMIT_H
#define CP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

/* limit requests per window_ms per key; at most slots distinct keys are
 * tracked (the oldest window is recycled when full). */
struct ratelimit *ratelimit_new(int limit, int64_t window_ms, int slots);
void ratelimit_free(struct ratelimit *rl);
/* Counts one request by key at now; true when it is within the limit. */
bool ratelimit_allow(struct ratelimit *rl, const char *key, int64_t now);
/* True for 127.0.0.0/8, ::1 and ::ffff:127.x addresses. */
bool ratelimit_is_loopback(const char *ip);

#endif
