/* A short-lived, bounded cache of authenticated bearer tokens, so that an
 * API call does not cost two store round trips just to learn who is
 * calling. Entries live ttl_ms (1 s by default); any revocation or role
 * change on this master clears the cache at once, and other masters see it
 * within ttl_ms. Thread-safe.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AUTHCACHE_H
#define CP_AUTHCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct authcache;

/* ttl_ms 0 disables caching (every lookup misses). */
struct authcache *authcache_new(int ttl_ms, int slots);
void authcache_free(struct authcache *c);
/* On a hit fills tok and user with owned copies and returns true. */
bool authcache_get(struct authcache *c, const char *hash, int64_t now_mono,
                   struct store_token *tok, struct store_user *user);
/* Stores copies of tok and user under hash. */
void authcache_put(struct authcache *c, const char *hash, int64_t now_mono,
                   const struct store_token *tok,
                   const struct store_user *user);
/* Forgets everything (after a revocation or a role change). */
void authcache_clear(struct authcache *c);

#endif
