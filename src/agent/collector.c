/* The node facts collector thread (see collector.h). Lock order: mu is
 * the only lock, and nothing calls the engine or the wake function while
 * holding it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "collector.h"
#include "engine.h"
#include "facts.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* DESIGN. Requests are a generation counter: `wanted` is bumped by the
 * loop thread, `done` is the last one the thread finished. The thread
 * works while done < wanted, always on the newest request, so a burst
 * of requests costs one engine round trip. The result slot holds the
 * newest result until the loop thread takes it. */
struct collector {
    /* Set at creation; read-only afterwards. */
    const struct agent_config *cfg;
    char *node_name;
    collector_wake_fn *wake;
    void *wake_ctx;
    pthread_t th;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    uint64_t wanted, done;
    bool is_stopping, has_result;
    struct collector_result result;

    /* The thread's own. */
    struct engine *engine;
    json_t *version; /* read once: it is slow on Podman and never changes */
};

/* Gathers one /nodes/update payload into r (the thread, no lock). */
static void collect(struct collector *c, struct collector_result *r)
{
    json_t *info = NULL;
    if (engine_info(c->engine, &info, r->error, sizeof(r->error)) != 0)
        return;
    char err[512];
    if (c->version == NULL &&
        engine_version(c->engine, &c->version, err, sizeof(err)) != 0)
        cp_warn("agent: engine version unavailable: %s", err);
    const char *root = cp_json_str(info, "DockerRootDir");
    r->root_dir = root != NULL ? cp_strdup(root) : NULL;
    const struct agent_config *cfg = c->cfg;
    char detected[64] = "";
    if (cfg->public_ip == NULL || cfg->private_ip == NULL)
        facts_detect_ip(detected, sizeof(detected));
    const char *fallback = detected[0] != '\0' ? detected : NULL;
    char *kernel = facts_kernel_release();
    char *os = facts_os_name();
    struct facts_node node = {
        .name = c->node_name,
        .public_ip = cfg->public_ip ? cfg->public_ip : fallback,
        .private_ip = cfg->private_ip ? cfg->private_ip : fallback,
        .labels = cfg->labels,
        .nlabels = cfg->nlabels,
        .has_labels = cfg->has_labels,
        .kernel = kernel,
        .os = os,
    };
    r->payload = facts_node_update(info, c->version, &node);
    cp_free(kernel);
    cp_free(os);
    json_decref(info);
}

static void *collector_main(void *arg)
{
    struct collector *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->is_stopping && c->done == c->wanted)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->is_stopping)
            break;
        struct collector_result r = {.gen = c->wanted};
        pthread_mutex_unlock(&c->mu);

        collect(c, &r);

        pthread_mutex_lock(&c->mu);
        collector_result_release(&c->result);
        c->result = r;
        c->has_result = true;
        c->done = r.gen;
        pthread_mutex_unlock(&c->mu);
        if (c->wake != NULL)
            c->wake(c->wake_ctx);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct collector *collector_new(const struct collector_options *opt)
{
    assert(opt->cfg != NULL);
    struct collector *c = cp_calloc(1, sizeof(*c));
    c->cfg = opt->cfg;
    c->node_name = opt->node_name != NULL ? cp_strdup(opt->node_name) : NULL;
    c->wake = opt->wake;
    c->wake_ctx = opt->wake_ctx;
    c->engine = engine_new(opt->cfg->docker_socket);
    c->version = opt->version != NULL ? json_deep_copy(opt->version) : NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->th, NULL, collector_main, c) != 0)
        cp_panic("agent: cannot start the node facts thread");
    return c;
}

void collector_free(struct collector *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->is_stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    collector_result_release(&c->result);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    json_decref(c->version);
    engine_free(c->engine);
    cp_free(c->node_name);
    cp_free(c);
}

uint64_t collector_request(struct collector *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t gen = ++c->wanted;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return gen;
}

bool collector_take(struct collector *c, struct collector_result *out)
{
    pthread_mutex_lock(&c->mu);
    bool has = c->has_result;
    if (has) {
        *out = c->result;
        memset(&c->result, 0, sizeof(c->result));
        c->has_result = false;
    }
    pthread_mutex_unlock(&c->mu);
    return has;
}

void collector_result_release(struct collector_result *r)
{
    json_decref(r->payload);
    cp_free(r->root_dir);
    memset(r, 0, sizeof(*r));
}
