/* Housekeeping timers. Each job runs its store work on the worker pool and
 * never overlaps itself.
 * SPDX-License-Identifier: Apache-2.0 */
#include "jobs.h"
#include "leader.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

/* Offline within a minute of a master's death: its nodes at the first
 * sweep after its liveness lease runs out (TTL, 10 s). Other nodes count
 * as silent once their last pong is older than a ping interval, the pong
 * timeout, the 10 s write batching and 10 s of slack (55 s by default). */
#define SWEEP_EVERY_MS 5000
#define STALE_SLACK_MS 20000
#define EXPIRE_EVERY_MS 600000

struct job {
    struct master *m;
    uv_timer_t timer;
    bool running;
    bool first;
    int count;
    int rc;
};

static struct job sweep_job, expire_job, audit_job;

static void sweep_work(void *ctx)
{
    struct job *j = ctx;
    int64_t now = cp_now_ms();
    /* On the first run of a single-master store nothing but this process
     * can hold a socket: every other "connected" row is stale. */
    int64_t stale = (int64_t)(j->m->cfg.ping_interval +
                              j->m->cfg.websocket_timeout) *
                        1000 +
                    STALE_SLACK_MS;
    int64_t before = j->first ? now + 1 : now - stale;
    struct store_fence fence = leader_fence(j->m);
    j->rc = ST_CALL(j->m->store, nodes_sweep, before, now, j->m->master_id,
                    &fence, &j->count);
}

static void expire_work(void *ctx)
{
    struct job *j = ctx;
    j->rc = ST_CALL(j->m->store, tokens_expire, cp_now_ms(), &j->count);
}

/* Keeps the newest KONTENA_AUDIT_LOG_MAX audit entries (spec 11 row 8). */
static void audit_work(void *ctx)
{
    struct job *j = ctx;
    j->rc = ST_CALL(j->m->store, audit_trim, j->m->cfg.audit_log_max,
                    &j->count);
}

static void job_done(void *ctx)
{
    struct job *j = ctx;
    j->running = false;
    j->first = false;
    const char *what = j == &sweep_job    ? "stale-node sweep"
                       : j == &audit_job ? "audit log trim"
                                         : "token expiry";
    if (j->rc != 0)
        cp_warn("jobs: %s failed: %s", what, cp_strerror(j->rc));
    else if (j->count > 0)
        cp_info("jobs: %s: %d", j == &sweep_job   ? "nodes marked offline (stale)"
                                : j == &audit_job ? "old audit entries removed"
                                                  : "expired tokens removed",
                j->count);
}

static void on_timer(uv_timer_t *t)
{
    struct job *j = t->data;
    /* Every job here is leader-only (spec 6). */
    if (j->running || !leader_is(j->m))
        return;
    j->running = true;
    master_queue(j->m,
                 j == &sweep_job   ? sweep_work
                 : j == &audit_job ? audit_work
                                   : expire_work,
                 job_done, j);
}

static void start(struct job *j, struct master *m, uint64_t first,
                  uint64_t every)
{
    memset(j, 0, sizeof(*j));
    j->m = m;
    uv_timer_init(m->loop, &j->timer);
    j->timer.data = j;
    uv_timer_start(&j->timer, on_timer, first, every);
}

void jobs_start(struct master *m)
{
    bool single = strncmp(m->cfg.store_url, "sqlite:", 7) == 0;
    start(&sweep_job, m, SWEEP_EVERY_MS, SWEEP_EVERY_MS);
    sweep_job.first = single;
    start(&expire_job, m, 5000, EXPIRE_EVERY_MS);
    start(&audit_job, m, 5000, EXPIRE_EVERY_MS);
}

void jobs_stop(struct master *m)
{
    CP_UNUSED(m);
    uv_timer_stop(&sweep_job.timer);
    uv_timer_stop(&expire_job.timer);
    uv_timer_stop(&audit_job.timer);
    uv_close((uv_handle_t *)&sweep_job.timer, NULL);
    uv_close((uv_handle_t *)&expire_job.timer, NULL);
    uv_close((uv_handle_t *)&audit_job.timer, NULL);
}
