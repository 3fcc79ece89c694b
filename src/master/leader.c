/* Leader election through a store lease (see leader.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "leader.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLLOWER_RETRY_MS 1000

static struct {
    struct master *m;
    uv_timer_t timer;
    int64_t ttl_ms, renew_ms, margin_ms;
    bool started;  /* loop thread */
    bool running;  /* an attempt is on a worker; loop thread */
    bool stopping; /* loop thread */
    /* Read from any thread. */
    _Atomic int64_t valid_until; /* monotonic ms; 0 = not leader */
    _Atomic int64_t since;
    _Atomic int64_t changes;
    _Atomic int last_rc;
    _Atomic int64_t leader_expires_at;
    uv_mutex_t lock; /* guards leader_id */
    char leader_id[33];
    /* The attempt in flight: written on the worker, read in its done. */
    int64_t attempt_mono;
    int rc;
    char *holder;
    int64_t expires;
} L;

static int64_t env_ms(const char *name, int64_t def, int64_t min,
                      int64_t max)
{
    const char *v = getenv(name);
    long long n;
    if (v == NULL || *v == '\0')
        return def;
    if (cp_parse_int(v, min, max, &n) != 0) {
        cp_warn("leader: %s must be %lld..%lld ms, not '%s'; using %lld",
                name, (long long)min, (long long)max, v, (long long)def);
        return def;
    }
    return n;
}

static void attempt_work(void *ctx)
{
    CP_UNUSED(ctx);
    /* This master's liveness: the sweep marks offline at once the nodes
     * of a master whose liveness lease ran out. */
    char live[64];
    snprintf(live, sizeof(live), "master:%s", L.m->master_id);
    int rc = ST_CALL(L.m->store, lease_acquire, live, L.m->master_id,
                     cp_now_ms(), L.ttl_ms, NULL, NULL);
    if (rc != 0)
        cp_warn("leader: cannot renew this master's liveness: %s",
                cp_strerror(rc));
    L.attempt_mono = cp_mono_ms();
    L.holder = NULL;
    L.expires = 0;
    L.rc = ST_CALL(L.m->store, lease_acquire, LEADER_LEASE, L.m->master_id,
                   cp_now_ms(), L.ttl_ms, &L.holder, &L.expires);
}

static void release_work(void *ctx);
static void release_done(void *ctx);

static void on_timer(uv_timer_t *t);

static void attempt_done(void *ctx)
{
    CP_UNUSED(ctx);
    L.running = false;
    bool was = leader_is(L.m);
    atomic_store(&L.last_rc, L.rc);
    if (L.rc == 0) {
        /* Ours until the lease's TTL from when we asked, less a margin for
         * the renewals we may miss and the other masters' clocks. */
        atomic_store(&L.valid_until, L.attempt_mono + L.ttl_ms - L.margin_ms);
        if (!was) {
            atomic_store(&L.since, cp_now_ms());
            atomic_fetch_add(&L.changes, 1);
            cp_info("leader: this master (%s) is the leader", L.m->master_id);
        }
    } else {
        if (L.rc == CP_EAGAIN) {
            atomic_store(&L.valid_until, 0);
        } else {
            /* The store did not answer: keep what we had until it runs
             * out by itself (valid_until is not extended). */
            cp_warn("leader: cannot reach the lease: %s", cp_strerror(L.rc));
        }
        if (was && !leader_is(L.m)) {
            atomic_store(&L.since, 0);
            cp_warn("leader: this master (%s) is no longer the leader%s%s",
                    L.m->master_id, L.holder ? "; now " : "",
                    L.holder ? L.holder : "");
        }
    }
    if (L.holder != NULL || L.rc == 0 || L.rc == CP_EAGAIN) {
        uv_mutex_lock(&L.lock);
        snprintf(L.leader_id, sizeof(L.leader_id), "%s",
                 L.holder ? L.holder : "");
        uv_mutex_unlock(&L.lock);
        atomic_store(&L.leader_expires_at, L.expires);
    }
    cp_free(L.holder);
    L.holder = NULL;
    if (L.stopping) {
        /* leader_stop ran while we were asking: release what we got. */
        atomic_store(&L.valid_until, 0);
        master_queue(L.m, release_work, release_done, NULL);
        return;
    }
    uint64_t next = (uint64_t)L.renew_ms;
    if (L.rc != 0 && next > FOLLOWER_RETRY_MS)
        next = FOLLOWER_RETRY_MS;
    uv_timer_start(&L.timer, on_timer, next, 0);
}

static void on_timer(uv_timer_t *t)
{
    CP_UNUSED(t);
    if (L.running || L.stopping)
        return;
    L.running = true;
    master_queue(L.m, attempt_work, attempt_done, NULL);
}

void leader_start(struct master *m)
{
    memset(&L, 0, sizeof(L));
    L.m = m;
    L.ttl_ms = env_ms("KONTENA_LEADER_TTL_MS", 10000, 1000, 600000);
    L.renew_ms = env_ms("KONTENA_LEADER_RENEW_MS", 3000, 100, 300000);
    if (L.renew_ms * 2 > L.ttl_ms) {
        cp_warn("leader: KONTENA_LEADER_RENEW_MS (%lld) must be at most half "
                "of KONTENA_LEADER_TTL_MS (%lld); using %lld",
                (long long)L.renew_ms, (long long)L.ttl_ms,
                (long long)(L.ttl_ms / 3));
        L.renew_ms = L.ttl_ms / 3;
    }
    /* One missed renewal plus the allowed clock skew between masters. */
    L.margin_ms = L.renew_ms + (int64_t)m->cfg.clock_skew * 1000;
    if (L.margin_ms >= L.ttl_ms)
        L.margin_ms = L.ttl_ms / 2;
    uv_mutex_init(&L.lock);
    uv_timer_init(m->loop, &L.timer);
    L.started = true;
    uv_timer_start(&L.timer, on_timer, 0, 0);
}

static void release_work(void *ctx)
{
    CP_UNUSED(ctx);
    /* Both are no-ops for leases held by others. */
    int rc = ST_CALL(L.m->store, lease_release, LEADER_LEASE,
                     L.m->master_id);
    char live[64];
    snprintf(live, sizeof(live), "master:%s", L.m->master_id);
    if (rc == 0)
        rc = ST_CALL(L.m->store, lease_release, live, L.m->master_id);
    if (rc != 0)
        cp_warn("leader: cannot release the leases: %s", cp_strerror(rc));
    else
        cp_info("leader: leases released");
}

static void release_done(void *ctx)
{
    CP_UNUSED(ctx);
}

void leader_stop(struct master *m)
{
    CP_UNUSED(m);
    if (!L.started || L.stopping)
        return;
    L.stopping = true;
    uv_timer_stop(&L.timer);
    uv_close((uv_handle_t *)&L.timer, NULL);
    atomic_store(&L.valid_until, 0);
    /* With an attempt in flight, its done releases what it got. */
    if (!L.running)
        master_queue(L.m, release_work, release_done, NULL);
}

bool leader_is(struct master *m)
{
    CP_UNUSED(m);
    int64_t until = atomic_load(&L.valid_until);
    return until != 0 && cp_mono_ms() < until;
}

void leader_status(struct master *m, struct leader_status *out)
{
    memset(out, 0, sizeof(*out));
    out->is_leader = leader_is(m);
    out->since = out->is_leader ? atomic_load(&L.since) : 0;
    out->changes = atomic_load(&L.changes);
    out->last_rc = atomic_load(&L.last_rc);
    out->leader_expires_at = atomic_load(&L.leader_expires_at);
    if (!L.started)
        return;
    uv_mutex_lock(&L.lock);
    snprintf(out->leader_id, sizeof(out->leader_id), "%s", L.leader_id);
    uv_mutex_unlock(&L.lock);
}

struct store_fence leader_fence(struct master *m)
{
    return (struct store_fence){.lease = LEADER_LEASE,
                                .holder = m->master_id};
}
