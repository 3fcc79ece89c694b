/* The pure decisions of the deploy engine (STYLE rule 5): how many
 * instances roll at once, whether a waited-on instance has succeeded,
 * failed or must still be waited for, and whether the reconciler should
 * redeploy a service. No store, no clock, no globals: callers pass `now`.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_DEPLOY_RULES_H
#define CP_DEPLOY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEPLOY_RULES_MAX_CONCURRENCY 20
#define DEPLOY_RULES_REV_LEN 20 /* "YYYY-MM-DD HH:MM:SS" + NUL */

/* Instances deployed at once (spec 5.3): max(1, floor(count × (1 −
 * min_health))), at most 20. min_health outside 0..1 (or NaN) is taken
 * as the default 0.8. */
int deploy_rules_concurrency(int count, double min_health);

/* Formats ms since the epoch as a deploy_rev, "YYYY-MM-DD HH:MM:SS" UTC,
 * which orders correctly as text. Returns out. */
char *deploy_rules_rev(int64_t ms, char out[DEPLOY_RULES_REV_LEN]);

enum deploy_rules_verdict {
    DEPLOY_RULES_WAIT,
    DEPLOY_RULES_OK,
    DEPLOY_RULES_FAIL,
};

/* What the deployer knows about one instance it waits on. The instance
 * fields are the row as last read (rev, state, error may be NULL; row_node
 * "" when the instance lost its node). */
struct deploy_rules_wait {
    int instance_number;
    const char *node_name;  /* target node, for messages */
    const char *node_id;    /* target node row id */
    const char *deploy_rev; /* what the deployer wrote */
    bool has_row;           /* the instance row still exists */
    const char *row_node;
    const char *rev;
    const char *state;
    const char *error;
    bool node_connected;
    int64_t now_ms;
    int64_t deadline_ms;
    int timeout_s; /* for the message */
};

/* Decides one instance (spec 5.3 step 4, issues #2415 #3003): OK once the
 * agent reports rev >= deploy_rev with state running and no error; FAIL
 * with a precise reason in why when it reports an error for this rev, a
 * newer rev ("re-deployed"), the node goes offline, the row moved away,
 * or the deadline passes ("did not report" or the state it is stuck in);
 * WAIT otherwise. */
enum deploy_rules_verdict
deploy_rules_instance(const struct deploy_rules_wait *w, char *why, size_t len);

/* ==== Reconciliation (spec 5.4) ==== */

/* A node as the reconciler sees it. */
struct deploy_rules_node {
    const char *id;
    const char *name;
    bool connected;
    int64_t disconnected_at_ms; /* 0 = unknown */
};

/* An instance: its number, node row id ("" = none) and reported error. */
struct deploy_rules_instance {
    int instance_number;
    const char *node_id;
    const char *error;
};

struct deploy_rules_service {
    bool stateful;
    int wanted;            /* instances the scheduler would run now */
    int64_t grace_ms;      /* the strategy's offline grace */
    int64_t revision;          /* the service's revision */
    int64_t deployed_revision; /* what its last deploy rolled out, 0 = none */
    int64_t deployed_at_ms;
    int64_t interval_ms; /* deploy_opts.interval, 0 = none */
    const struct deploy_rules_instance *instances;
    size_t n_instances;
    const struct deploy_rules_node *nodes;
    size_t n_nodes;
    int64_t now_ms;
};

enum deploy_rules_action {
    DEPLOY_RULES_NONE,
    DEPLOY_RULES_DEPLOY,       /* queue a deploy; why says why */
    DEPLOY_RULES_FORCE_DEPLOY, /* deploy_opts.interval: bump revision */
    DEPLOY_RULES_STUCK,        /* stateful instance bound to a lost node */
};

/* Decides whether a running service with no open deploy needs one. The
 * first reason found wins, in this order: an instance on a node offline
 * (or gone) past the grace period, an instance without a node, fewer or
 * more instances than wanted, revision lag, the interval. A stateful
 * service is never moved: an instance on a lost node yields STUCK with
 * *stuck_instance set and why "stateful instance N is bound to offline
 * node X" (or "... to a removed node"); STUCK is not reported again while
 * the instance's error already says so. *offline_node (may be NULL) gets
 * the node row id behind an offline reason, so the caller can re-check it
 * before acting (a flapping node must not trigger a mass move). */
enum deploy_rules_action
deploy_rules_reconcile(const struct deploy_rules_service *s, char *why,
                       size_t len, int *stuck_instance,
                       const char **offline_node);

#endif
