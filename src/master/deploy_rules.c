/* Pure decisions of the deploy engine; see deploy_rules.h.
 * SPDX-License-Identifier: Apache-2.0 */
#include "deploy_rules.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int deploy_rules_concurrency(int count, double min_health)
{
    if (!(min_health >= 0.0 && min_health <= 1.0))
        min_health = 0.8;
    if (count < 1)
        return 1;
    /* The small epsilon keeps 10 × (1 − 0.8) at 2, not 1.9999. */
    double n = floor((double)count * (1.0 - min_health) + 1e-9);
    if (n < 1)
        return 1;
    return n > DEPLOY_RULES_MAX_CONCURRENCY ? DEPLOY_RULES_MAX_CONCURRENCY
                                            : (int)n;
}

char *deploy_rules_rev(int64_t ms, char out[DEPLOY_RULES_REV_LEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, DEPLOY_RULES_REV_LEN, "%Y-%m-%d %H:%M:%S", &tm);
    return out;
}

enum deploy_rules_verdict
deploy_rules_instance(const struct deploy_rules_wait *w, char *why, size_t len)
{
    assert(w != NULL && w->deploy_rev != NULL && why != NULL);
    int n = w->instance_number;
    const char *node = w->node_name ? w->node_name : "?";
    why[0] = '\0';
    if (!w->has_row) {
        snprintf(why, len, "instance %d was removed during the deploy", n);
        return DEPLOY_RULES_FAIL;
    }
    if (w->row_node == NULL || strcmp(w->row_node, w->node_id) != 0) {
        snprintf(why, len,
                 "instance %d was moved off node %s during the "
                 "deploy",
                 n, node);
        return DEPLOY_RULES_FAIL;
    }
    int cmp = w->rev != NULL ? strcmp(w->rev, w->deploy_rev) : -1;
    if (cmp > 0) {
        snprintf(why, len, "instance %d on node %s was re-deployed (rev %s)", n,
                 node, w->rev);
        return DEPLOY_RULES_FAIL;
    }
    if (cmp == 0) {
        if (w->error != NULL && w->error[0] != '\0') {
            snprintf(why, len, "instance %d on node %s: %s", n, node, w->error);
            return DEPLOY_RULES_FAIL;
        }
        if (w->state != NULL && strcmp(w->state, "running") == 0)
            return DEPLOY_RULES_OK;
    }
    if (!w->node_connected) {
        snprintf(why, len, "node %s went offline", node);
        return DEPLOY_RULES_FAIL;
    }
    if (w->now_ms >= w->deadline_ms) {
        if (cmp == 0)
            snprintf(why, len,
                     "instance %d on node %s is %s after %d s (wanted "
                     "running)",
                     n, node, w->state ? w->state : "unknown", w->timeout_s);
        else
            snprintf(why, len,
                     "instance %d on node %s did not report within %d s", n,
                     node, w->timeout_s);
        return DEPLOY_RULES_FAIL;
    }
    return DEPLOY_RULES_WAIT;
}

static const struct deploy_rules_node *
find_node(const struct deploy_rules_service *s, const char *id)
{
    for (size_t i = 0; i < s->n_nodes; i++)
        if (strcmp(s->nodes[i].id, id) == 0)
            return &s->nodes[i];
    return NULL;
}

enum deploy_rules_action
deploy_rules_reconcile(const struct deploy_rules_service *s, char *why,
                       size_t len, int *stuck_instance,
                       const char **offline_node)
{
    assert(s != NULL && why != NULL && stuck_instance != NULL);
    why[0] = '\0';
    *stuck_instance = 0;
    if (offline_node != NULL)
        *offline_node = NULL;

    /* Lost nodes first: they are what users wait on. */
    for (size_t i = 0; i < s->n_instances; i++) {
        const struct deploy_rules_instance *in = &s->instances[i];
        if (in->node_id == NULL || in->node_id[0] == '\0')
            continue;
        const struct deploy_rules_node *n = find_node(s, in->node_id);
        bool lost;
        char what[160];
        if (n == NULL) {
            lost = true;
            snprintf(what, sizeof(what), "a removed node");
        } else {
            lost = !n->connected && n->disconnected_at_ms > 0 &&
                   s->now_ms - n->disconnected_at_ms >= s->grace_ms;
            snprintf(what, sizeof(what), "offline node %s", n->name);
        }
        if (!lost)
            continue;
        if (s->stateful) {
            char msg[256];
            snprintf(msg, sizeof(msg), "stateful instance %d is bound to %s",
                     in->instance_number, what);
            if (in->error != NULL && strcmp(in->error, msg) == 0)
                continue;
            snprintf(why, len, "%s", msg);
            *stuck_instance = in->instance_number;
            return DEPLOY_RULES_STUCK;
        }
        if (n == NULL)
            snprintf(why, len, "instance %d is on a removed node",
                     in->instance_number);
        else
            snprintf(why, len, "node %s offline", n->name);
        if (offline_node != NULL && n != NULL)
            *offline_node = n->id;
        return DEPLOY_RULES_DEPLOY;
    }
    for (size_t i = 0; i < s->n_instances; i++) {
        const struct deploy_rules_instance *in = &s->instances[i];
        if (in->instance_number <= s->wanted &&
            (in->node_id == NULL || in->node_id[0] == '\0')) {
            snprintf(why, len, "instance %d has no node", in->instance_number);
            return DEPLOY_RULES_DEPLOY;
        }
    }
    if (s->wanted > 0 && (size_t)s->wanted != s->n_instances) {
        snprintf(why, len, "%zu instances, %d wanted", s->n_instances,
                 s->wanted);
        return DEPLOY_RULES_DEPLOY;
    }
    if (s->deployed_revision > 0 && s->revision > s->deployed_revision) {
        snprintf(why, len, "service changed since its last deploy");
        return DEPLOY_RULES_DEPLOY;
    }
    if (s->interval_ms > 0 && s->deployed_at_ms > 0 &&
        s->now_ms - s->deployed_at_ms >= s->interval_ms) {
        snprintf(why, len, "deploy interval of %lld s elapsed",
                 (long long)(s->interval_ms / 1000));
        return DEPLOY_RULES_FORCE_DEPLOY;
    }
    return DEPLOY_RULES_NONE;
}
