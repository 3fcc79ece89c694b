/* A small open-addressing table of fixed windows keyed by address.
 * SPDX-License-Identifier: Apache-2.0 */
#include "ratelimit.h"
#include "../common/alloc.h"

#include <stdio.h>
#include <string.h>

#define KEY_MAX 64

struct slot {
    char key[KEY_MAX];
    int64_t window_start;
    int count;
};

struct ratelimit {
    int limit;
    int64_t window_ms;
    int nslots;
    struct slot *slots;
};

struct ratelimit *ratelimit_new(int limit, int64_t window_ms, int slots)
{
    struct ratelimit *rl = cp_calloc(1, sizeof(*rl));
    rl->limit = limit;
    rl->window_ms = window_ms;
    rl->nslots = slots;
    rl->slots = cp_calloc((size_t)slots, sizeof(*rl->slots));
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    cp_free(rl->slots);
    cp_free(rl);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

bool ratelimit_allow(struct ratelimit *rl, const char *key, int64_t now)
{
    uint32_t h = hash(key);
    struct slot *victim = NULL;
    /* Probe a short run: the key's slot, else a free or expired one, else
     * the oldest in the run. */
    for (int i = 0; i < 8; i++) {
        struct slot *s = &rl->slots[(h + (uint32_t)i) % (uint32_t)rl->nslots];
        /* Keys are kept cut to KEY_MAX - 1 chars: compare the same cut,
         * so that a long key still finds its own window. */
        if (s->key[0] != '\0' && strncmp(s->key, key, KEY_MAX - 1) == 0) {
            if (now - s->window_start >= rl->window_ms) {
                s->window_start = now;
                s->count = 0;
            }
            return ++s->count <= rl->limit;
        }
        bool is_free = s->key[0] == '\0' ||
                       now - s->window_start >= rl->window_ms;
        if (victim == NULL || (is_free && victim->key[0] != '\0') ||
            s->window_start < victim->window_start)
            victim = s;
    }
    snprintf(victim->key, KEY_MAX, "%s", key);
    victim->window_start = now;
    victim->count = 1;
    return victim->count <= rl->limit;
}

bool ratelimit_is_loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}
