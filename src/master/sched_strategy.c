/* Placement strategies (spec 5.2): ha, daemon and random, one const ops
 * struct each behind the table sched__strategy_find() reads. They only
 * choose among candidates the filters in sched.c already accepted.
 * SPDX-License-Identifier: Apache-2.0 */
#include "sched.h"

#include <string.h>

uint64_t sched__rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ==== ha ==== */

static size_t count_as_given(size_t instances, size_t eligible_nodes)
{
    (void)eligible_nodes;
    return instances;
}

/* Kontena shuffles the candidates and then sorts them stably by (instances
 * in the node's zone this round, instances on the node this round, rank),
 * taking the first. Taking the minimum of that key with a random tie-break
 * drawn per candidate is the same choice, in O(n) instead of a sort per
 * instance. Rank is 10, minus 5 when the node already runs the instance,
 * plus the node's memory-used ratio. */
static size_t ha_pick(const struct sched__pick *p)
{
    size_t best = 0;
    size_t best_zone = 0, best_node = 0;
    double best_rank = 0;
    uint64_t best_tie = 0;
    for (size_t k = 0; k < p->n_cand; k++) {
        size_t n = p->cand[k];
        size_t zc = p->zone_placed[p->zone[n]];
        size_t nc = p->placed[n];
        double rank = 10.0 + p->nodes[n].mem_used_ratio;
        if (n == p->prev)
            rank -= 5.0;
        uint64_t tie = sched__rand(p->rng);
        bool better;
        if (k == 0)
            better = true;
        else if (zc != best_zone)
            better = zc < best_zone;
        else if (nc != best_node)
            better = nc < best_node;
        else if (rank != best_rank)
            better = rank < best_rank;
        else
            better = tie < best_tie;
        if (better) {
            best = k;
            best_zone = zc;
            best_node = nc;
            best_rank = rank;
            best_tie = tie;
        }
    }
    return best;
}

static const struct sched__strategy_ops ha_ops = {
    .name = "ha",
    .grace_seconds = 2 * 60,
    .count = count_as_given,
    .pick = ha_pick,
};

/* ==== daemon ==== */

static size_t daemon_count(size_t instances, size_t eligible_nodes)
{
    if (eligible_nodes != 0 && instances > SIZE_MAX / eligible_nodes)
        return SIZE_MAX;
    return instances * eligible_nodes;
}

/* The node already running the instance wins while it holds fewer than its
 * share (`quota`, the service's instances per node); the share keeps stale
 * history from piling two instances on one node and leaving another empty.
 * Then fewest placed this round, then the lowest node number. */
static size_t daemon_pick(const struct sched__pick *p)
{
    size_t best = 0;
    for (size_t k = 0; k < p->n_cand; k++) {
        if (p->cand[k] == p->prev && p->placed[p->prev] < p->quota)
            return k;
    }
    for (size_t k = 1; k < p->n_cand; k++) {
        size_t n = p->cand[k], b = p->cand[best];
        if (p->placed[n] != p->placed[b]) {
            if (p->placed[n] < p->placed[b])
                best = k;
        } else if (p->nodes[n].node_number < p->nodes[b].node_number) {
            best = k;
        }
    }
    return best;
}

static const struct sched__strategy_ops daemon_ops = {
    .name = "daemon",
    .grace_seconds = 10 * 60,
    .count = daemon_count,
    .pick = daemon_pick,
};

/* ==== random ==== */

/* The previous node if it is still a candidate, else any candidate. */
static size_t random_pick(const struct sched__pick *p)
{
    for (size_t k = 0; k < p->n_cand; k++) {
        if (p->cand[k] == p->prev)
            return k;
    }
    return (size_t)(sched__rand(p->rng) % p->n_cand);
}

static const struct sched__strategy_ops random_ops = {
    .name = "random",
    .grace_seconds = 30,
    .count = count_as_given,
    .pick = random_pick,
};

/* ==== Table ==== */

static const struct sched__strategy_ops *const strategies[] = {
    &ha_ops,
    &daemon_ops,
    &random_ops,
};

const struct sched__strategy_ops *sched__strategy_find(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return &ha_ops;
    for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        if (strcmp(strategies[i]->name, name) == 0)
            return strategies[i];
    }
    return NULL;
}

bool sched_strategy_valid(const char *name)
{
    return sched__strategy_find(name) != NULL;
}

int sched_strategy_grace(const char *name)
{
    const struct sched__strategy_ops *ops = sched__strategy_find(name);
    return ops == NULL ? -1 : ops->grace_seconds;
}
