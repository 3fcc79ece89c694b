/* Direct-mapped cache of token hash -> (token, user) with a TTL.
 * SPDX-License-Identifier: Apache-2.0 */
#include "authcache.h"
#include "../common/alloc.h"

#include <pthread.h>
#include <string.h>

struct entry {
    char hash[65];
    int64_t stored_at;
    uint64_t generation;
    struct store_token tok;
    struct store_user user;
};

struct authcache {
    pthread_mutex_t lock;
    int ttl_ms;
    int nslots;
    uint64_t generation; /* bumped by clear: older entries are dead */
    struct entry *slots;
};

static char *dup_or_null(const char *s)
{
    return s ? cp_strdup(s) : NULL;
}

static void token_copy(struct store_token *dst, const struct store_token *src)
{
    *dst = *src;
    dst->token_hash = dup_or_null(src->token_hash);
    dst->refresh_hash = dup_or_null(src->refresh_hash);
    dst->scopes = dup_or_null(src->scopes);
    dst->description = dup_or_null(src->description);
}

static void user_copy(struct store_user *dst, const struct store_user *src)
{
    *dst = *src;
    dst->email = dup_or_null(src->email);
    dst->name = dup_or_null(src->name);
}

struct authcache *authcache_new(int ttl_ms, int slots)
{
    struct authcache *c = cp_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->ttl_ms = ttl_ms;
    c->nslots = slots > 0 ? slots : 1;
    c->generation = 1;
    c->slots = cp_calloc((size_t)c->nslots, sizeof(*c->slots));
    return c;
}

void authcache_free(struct authcache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nslots; i++) {
        store_token_release(&c->slots[i].tok);
        store_user_release(&c->slots[i].user);
    }
    pthread_mutex_destroy(&c->lock);
    cp_free(c->slots);
    cp_free(c);
}

static struct entry *slot_for(struct authcache *c, const char *hash)
{
    /* The hash is SHA-256 hex: its first 8 digits are already uniform. */
    uint32_t h = 0;
    for (int i = 0; i < 8 && hash[i] != '\0'; i++)
        h = h * 16 + (uint32_t)(hash[i] <= '9' ? hash[i] - '0'
                                               : hash[i] - 'a' + 10);
    return &c->slots[h % (uint32_t)c->nslots];
}

bool authcache_get(struct authcache *c, const char *hash, int64_t now_mono,
                   struct store_token *tok, struct store_user *user)
{
    if (c->ttl_ms <= 0)
        return false;
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    struct entry *e = slot_for(c, hash);
    if (e->generation == c->generation && strcmp(e->hash, hash) == 0 &&
        now_mono - e->stored_at < c->ttl_ms) {
        token_copy(tok, &e->tok);
        user_copy(user, &e->user);
        hit = true;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void authcache_put(struct authcache *c, const char *hash, int64_t now_mono,
                   const struct store_token *tok,
                   const struct store_user *user)
{
    if (c->ttl_ms <= 0)
        return;
    pthread_mutex_lock(&c->lock);
    struct entry *e = slot_for(c, hash);
    store_token_release(&e->tok);
    store_user_release(&e->user);
    memcpy(e->hash, hash, sizeof(e->hash));
    e->hash[64] = '\0';
    e->stored_at = now_mono;
    e->generation = c->generation;
    token_copy(&e->tok, tok);
    user_copy(&e->user, user);
    pthread_mutex_unlock(&c->lock);
}

void authcache_clear(struct authcache *c)
{
    pthread_mutex_lock(&c->lock);
    c->generation++;
    pthread_mutex_unlock(&c->lock);
}
