/* Reconciliation and retention (spec 5.4, 5.3 step 6; issues #2274,
 * #2563). Every 20 s (KONTENA_RECONCILE_INTERVAL) one worker pass looks at
 * every running service with no open deploy and queues a deploy when
 * deploy_rules_reconcile() says so: instances on nodes lost past the
 * strategy's grace, count drift (daemon services on new nodes), revision
 * lag, or deploy_opts.interval; services of a stack with an open stack
 * job are left to that job. Stateful instances never move; they get
 * an error and an event instead. Every 5 min old deploys, stack deploys,
 * logs and events are pruned to bounded sizes.
 * Only the leader reconciles and prunes (leader.h); a master that is not
 * (or no longer) the leader skips the round. The deploys it queues are
 * coalesced and claimed under leases, so a round that a losing leader
 * finishes cannot deploy anything twice.
 * SPDX-License-Identifier: Apache-2.0 */
#include "deploy.h"
#include "deploy_int.h"
#include "deploy_rules.h"
#include "leader.h"
#include "pods_view.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

#define RECONCILE_EVERY_S 20
#define RETENTION_EVERY_MS (5 * 60 * 1000)
#define DEPLOYS_KEEP 100
#define STACK_DEPLOYS_KEEP 20 /* finished stack jobs kept per stack */
#define MAX_LOGS_DEFAULT 100000
#define MAX_EVENTS_DEFAULT 20000
/* After a failed deploy, wait this long before the reconciler tries the
 * same service again, so an unplaceable service does not queue a deploy
 * every tick. */
#define RETRY_AFTER_ERROR_MS 60000

static struct {
    struct master *m;
    uv_timer_t tick, retention;
    bool is_started;
    bool is_ticking;
    bool is_pruning;
} rec;

static bool reconcile_is_leader(struct master *m)
{
    return leader_is(m);
}

static int64_t grace_ms(const char *strategy)
{
    const char *env = "KONTENA_GRACE_HA";
    if (strategy != NULL && strcmp(strategy, "daemon") == 0)
        env = "KONTENA_GRACE_DAEMON";
    else if (strategy != NULL && strcmp(strategy, "random") == 0)
        env = "KONTENA_GRACE_RANDOM";
    int def = sched_strategy_grace(strategy);
    return (int64_t)deploy__env_seconds(env, def < 0 ? 120 : def) * 1000;
}

static uint64_t seed_of(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* True when the newest deploy is open, or failed very recently. */
static bool is_deploy_busy(struct master *m, const char *service_id,
                           int64_t now)
{
    struct store_deploy_list l = {0};
    bool busy = false;
    if (ST_CALL(m->store, deploy_list, service_id, 1, &l) != 0)
        return true; /* cannot tell: do nothing this round */
    if (l.len > 0) {
        const struct store_deploy *d = &l.items[0];
        busy = d->finished_at == 0 ||
               (d->state != NULL && strcmp(d->state, "error") == 0 &&
                now - d->finished_at < RETRY_AFTER_ERROR_MS);
    }
    store_deploy_list_release(&l);
    return busy;
}

/* A flapping node must not trigger a mass move: read it again. */
static bool still_offline(struct master *m, const char *node_id, int64_t grace,
                          int64_t now)
{
    struct store_node n = {0};
    int rc = ST_CALL(m->store, node_get, node_id, &n);
    bool off = rc == CP_ENOTFOUND ||
               (rc == 0 && !n.connected && n.disconnected_at > 0 &&
                now - n.disconnected_at >= grace);
    store_node_release(&n);
    return off;
}

static void mark_stuck(struct master *m, struct store_service *svc,
                       const struct store_instance_list *insts, int number,
                       const char *why)
{
    for (size_t i = 0; i < insts->len; i++) {
        const struct store_instance *in = &insts->items[i];
        if (in->instance_number != number)
            continue;
        int rc =
            ST_CALL(m->store, instance_report, svc->id, number, in->node_id,
                    in->rev, in->state ? in->state : "missing", why);
        if (rc != 0)
            cp_warn("reconcile: cannot mark instance %d of %s: %s", number,
                    svc->name, cp_strerror(rc));
    }
    deploy__event(m, svc, NULL, 2, "scheduler", "%s", why);
    cp_warn("reconcile: service %s: %s", svc->name, why);
}

static void service_pass(struct master *m, const struct deploy__grid *g,
                         struct store_service *svc, int64_t now)
{
    if (svc->state == NULL || strcmp(svc->state, "running") != 0 ||
        is_deploy_busy(m, svc->id, now))
        return;
    struct store_instance_list insts = {0};
    struct deploy__sched ds = {0};
    struct sched_result res = {0};
    struct deploy_rules_instance *ri = NULL;
    struct deploy_rules_node *rn = NULL;
    if (ST_CALL(m->store, instance_list, svc->id, &insts) != 0)
        return;
    deploy__sched_build(g, svc, &insts, now, true, seed_of(svc->id), &ds);
    sched_place(&ds.in, &res);

    ri = cp_calloc(insts.len + 1, sizeof(*ri));
    for (size_t i = 0; i < insts.len; i++)
        ri[i] = (struct deploy_rules_instance){
            .instance_number = insts.items[i].instance_number,
            .node_id = insts.items[i].node_id,
            .error = insts.items[i].error,
        };
    rn = cp_calloc(g->nodes.len + 1, sizeof(*rn));
    for (size_t i = 0; i < g->nodes.len; i++)
        rn[i] = (struct deploy_rules_node){
            .id = g->nodes.items[i].id,
            .name = g->nodes.items[i].name,
            .connected = g->nodes.items[i].connected,
            .disconnected_at_ms = g->nodes.items[i].disconnected_at,
        };
    const json_t *opts = json_object_get(svc->spec, "deploy_opts");
    long long interval = pods_view_duration(json_object_get(opts, "interval"));
    int64_t grace = grace_ms(cp_json_str(svc->spec, "strategy"));
    struct deploy_rules_service rs = {
        .stateful = cp_json_bool(svc->spec, "stateful", false),
        /* An unplaceable service is left to its explicit deploys, whose
         * errors say why (#1275), rather than retried on every tick. */
        .wanted = res.status == 0 ? (int)res.n_placements : 0,
        .grace_ms = grace,
        .revision = svc->revision,
        .deployed_revision = svc->deployed_revision,
        .deployed_at_ms = svc->deployed_at,
        .interval_ms = interval > 0 ? (int64_t)interval * 1000 : 0,
        .instances = ri,
        .n_instances = insts.len,
        .nodes = rn,
        .n_nodes = g->nodes.len,
        .now_ms = now,
    };
    char why[512];
    int stuck = 0;
    const char *offline = NULL;
    enum deploy_rules_action act =
        deploy_rules_reconcile(&rs, why, sizeof(why), &stuck, &offline);
    switch (act) {
    case DEPLOY_RULES_NONE:
        break;
    case DEPLOY_RULES_STUCK:
        mark_stuck(m, svc, &insts, stuck, why);
        break;
    case DEPLOY_RULES_DEPLOY:
    case DEPLOY_RULES_FORCE_DEPLOY: {
        if (offline != NULL && !still_offline(m, offline, grace, now))
            break;
        struct store_deploy d = {0};
        int rc = deploy_request(m, svc, act == DEPLOY_RULES_FORCE_DEPLOY, &d);
        if (rc == 0) {
            deploy__event(m, svc, offline, 1, "scheduler", "redeploying %s: %s",
                          svc->name, why);
            cp_info("reconcile: redeploying %s: %s", svc->name, why);
        } else {
            cp_warn("reconcile: cannot queue a deploy of %s: %s", svc->name,
                    cp_strerror(rc));
        }
        store_deploy_release(&d);
        break;
    }
    }
    cp_free(ri);
    cp_free(rn);
    sched_result_release(&res);
    deploy__sched_release(&ds);
    store_instance_list_release(&insts);
}

/* True when stack_id has an open job in l (a stack deploy rolls its
 * services out in link order; the reconciler must not jump ahead). */
static bool stack_busy(const struct store_stack_deploy_list *l,
                       const char *stack_id)
{
    for (size_t i = 0; i < l->len; i++)
        if (strcmp(l->items[i].stack_id, stack_id) == 0)
            return true;
    return false;
}

static void tick_work(void *ctx)
{
    struct master *m = ctx;
    struct store_grid_list grids = {0};
    if (ST_CALL(m->store, grid_list, NULL, &grids) != 0)
        return;
    for (size_t i = 0; i < grids.len; i++) {
        struct deploy__grid g = {0};
        struct store_stack_deploy_list open = {0};
        if (ST_CALL(m->store, stack_deploy_list, grids.items[i].id, NULL,
                    true, 0, &open) != 0)
            continue;
        if (deploy__grid_load(m, grids.items[i].id, &g) != 0) {
            store_stack_deploy_list_release(&open);
            continue;
        }
        int64_t now = cp_now_ms();
        for (size_t k = 0; k < g.svcs.len; k++)
            if (!stack_busy(&open, g.svcs.items[k].stack_id))
                service_pass(m, &g, &g.svcs.items[k], now);
        store_stack_deploy_list_release(&open);
        deploy__grid_release(&g);
    }
    store_grid_list_release(&grids);
}

static void tick_done(void *ctx)
{
    CP_UNUSED(ctx);
    rec.is_ticking = false;
}

static void on_tick(uv_timer_t *t)
{
    CP_UNUSED(t);
    if (rec.is_ticking || !reconcile_is_leader(rec.m))
        return;
    rec.is_ticking = true;
    master_queue(rec.m, tick_work, tick_done, rec.m);
}

static void prune_work(void *ctx)
{
    struct master *m = ctx;
    int deleted = 0;
    int rc = ST_CALL(m->store, deploys_prune, DEPLOYS_KEEP, &deleted);
    if (rc != 0)
        cp_warn("retention: cannot prune deploys: %s", cp_strerror(rc));
    else if (deleted > 0)
        cp_info("retention: %d old deploys removed", deleted);
    rc = ST_CALL(m->store, stack_deploys_prune, STACK_DEPLOYS_KEEP, &deleted);
    if (rc != 0)
        cp_warn("retention: cannot prune stack deploys: %s", cp_strerror(rc));
    else if (deleted > 0)
        cp_info("retention: %d old stack deploys removed", deleted);
    long long logs = MAX_LOGS_DEFAULT, events = MAX_EVENTS_DEFAULT;
    const char *s = getenv("KONTENA_MAX_LOGS");
    if (s != NULL && cp_parse_int(s, 0, INT64_MAX, &logs) != 0)
        logs = MAX_LOGS_DEFAULT;
    s = getenv("KONTENA_MAX_EVENTS");
    if (s != NULL && cp_parse_int(s, 0, INT64_MAX, &events) != 0)
        events = MAX_EVENTS_DEFAULT;
    rc = ST_CALL(m->store, history_trim, logs, events);
    if (rc != 0)
        cp_warn("retention: cannot trim logs and events: %s", cp_strerror(rc));
}

static void prune_done(void *ctx)
{
    CP_UNUSED(ctx);
    rec.is_pruning = false;
}

static void on_retention(uv_timer_t *t)
{
    CP_UNUSED(t);
    if (rec.is_pruning || !reconcile_is_leader(rec.m))
        return;
    rec.is_pruning = true;
    master_queue(rec.m, prune_work, prune_done, rec.m);
}

void deploy__reconcile_start(struct master *m)
{
    memset(&rec, 0, sizeof(rec));
    rec.m = m;
    rec.is_started = true;
    uint64_t every = (uint64_t)deploy__env_seconds("KONTENA_RECONCILE_INTERVAL",
                                                   RECONCILE_EVERY_S) *
                     1000;
    if (every == 0)
        every = 1000;
    uv_timer_init(m->loop, &rec.tick);
    uv_timer_start(&rec.tick, on_tick, every, every);
    uv_timer_init(m->loop, &rec.retention);
    uv_timer_start(&rec.retention, on_retention, 60000, RETENTION_EVERY_MS);
}

void deploy__reconcile_stop(void)
{
    if (!rec.is_started)
        return;
    rec.is_started = false;
    uv_timer_stop(&rec.tick);
    uv_timer_stop(&rec.retention);
    uv_close((uv_handle_t *)&rec.tick, NULL);
    uv_close((uv_handle_t *)&rec.retention, NULL);
}
