/* kontena-agent: read the environment, then run the WebSocket link to the
 * master with the RPC layer on top until SIGTERM/SIGINT (exit 0) or a
 * final close code from the master (exit 1). Bad settings exit 2.
 * SPDX-License-Identifier: Apache-2.0 */
#include "agent.h"
#include "config.h"
#include "engine.h"
#include "link.h"
#include "podworker.h"
#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/version.h"

#include <stdio.h>
#include <unistd.h>
#include <stdint.h>
#include <pthread.h>

extern char **environ;

/* Glue between the link's callbacks and the agent. The agent is created
 * before the link, so both pointers are set by the time any callback
 * runs. */
struct glue {
    struct agent *agent;
    struct link *link;
    struct podworker *pods;
};

static int io_send(void *ctx, char *buf, size_t len)
{
    struct glue *g = ctx;
    return link_send(g->link, buf, len);
}

static void io_set_header(void *ctx, const char *name, const char *value)
{
    struct glue *g = ctx;
    link_set_header(g->link, name, value);
}

static int on_before_connect(void *ctx)
{
    struct glue *g = ctx;
    return agent_before_connect(g->agent);
}

static void on_open(void *ctx)
{
    struct glue *g = ctx;
    agent_on_open(g->agent, cp_mono_ms());
    podworker_on_open(g->pods, cp_mono_ms());
}

static int on_message(void *ctx, const void *buf, size_t len)
{
    struct glue *g = ctx;
    return agent_on_message(g->agent, buf, len);
}

static void on_close(void *ctx, int code, const char *reason)
{
    CP_UNUSED(code);
    CP_UNUSED(reason);
    struct glue *g = ctx;
    agent_on_close(g->agent);
    podworker_on_close(g->pods);
}

static void on_tick(void *ctx)
{
    struct glue *g = ctx;
    agent_tick(g->agent, cp_mono_ms());
    podworker_tick(g->pods, cp_mono_ms());
}

static void on_wake(void *ctx)
{
    struct glue *g = ctx;
    agent_tick(g->agent, cp_mono_ms());
    podworker_tick(g->pods, cp_mono_ms());
}

/* From the pod worker's and the agent's threads. */
static void wake_link(void *ctx)
{
    struct glue *g = ctx;
    link_wake(g->link);
}

static void on_pods_notify(void *ctx, const char *reason)
{
    struct glue *g = ctx;
    podworker_notify(g->pods, reason);
}

static void on_pods_restart(void *ctx, const char *service_id,
                            int instance_number)
{
    struct glue *g = ctx;
    podworker_restart(g->pods, service_id, instance_number);
}

/* Engine calls in the worker threads (a container stop waits up to its
 * grace period) must not hold the exit back: a final close code or a
 * signal means the agent is done. The threads get a short while to finish
 * cleanly; after that the process exits with the same status. */
#define EXIT_GRACE_S 3

static void *watchdog(void *arg)
{
    int status = (int)(intptr_t)arg;
    sleep(EXIT_GRACE_S);
    cp_warn("agent: worker threads still busy after %d s; exiting anyway",
            EXIT_GRACE_S);
    _exit(status);
    return NULL;
}

static void exit_watchdog(int status)
{
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog, (void *)(intptr_t)status) == 0)
        pthread_detach(th);
}

int main(int argc, char **argv)
{
    struct agent_config cfg;
    char err[512] = "";
    cp_log_install_crash_handler();
    if (agent_config_parse(&cfg, environ, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "kontena-agent: %s\n", err);
        return 2;
    }
    switch (cfg.command) {
    case AGENT_CMD_HELP:
        fputs(agent_config_usage, stdout);
        agent_config_release(&cfg);
        return 0;
    case AGENT_CMD_VERSION:
        printf("kontena-agent %s\n", KONTENA_VERSION);
        agent_config_release(&cfg);
        return 0;
    case AGENT_CMD_RUN:
        break;
    }
    cp_log_level = cfg.log_level;
    cp_trace_mask = cfg.trace;
    cp_info("agent: kontena-agent %s starting; master %s, engine %s",
            KONTENA_VERSION, cfg.uri.url, cfg.docker_socket);

    int status = 1;
    struct glue g = {0};
    struct engine *engine = engine_new(cfg.docker_socket);
    struct agent_io io = {.ctx = &g,
                          .send = io_send,
                          .set_header = io_set_header,
                          .wake = wake_link};
    g.agent = agent_new(&cfg, engine, &io);
    struct podworker_options popt = {
        .socket_path = cfg.docker_socket,
        .pull_interval_ms = cfg.pods_interval_s * 1000,
        .stats_interval_ms = cfg.stats_interval_s * 1000,
        .wake = wake_link,
        .wake_ctx = &g,
    };
    g.pods = podworker_new(&popt, g.agent);
    agent_set_pods_hook(g.agent, on_pods_notify, &g);
    agent_set_restart_hook(g.agent, on_pods_restart, &g);
    struct link_options opt = {
        .uri = &cfg.uri,
        .ssl_verify = cfg.ssl_verify,
        .ping_interval_s = cfg.ping_interval_s,
        .pong_timeout_s = cfg.ws_timeout_s,
    };
    struct link_handler h = {
        .ctx = &g,
        .before_connect = on_before_connect,
        .on_open = on_open,
        .on_message = on_message,
        .on_close = on_close,
        .on_tick = on_tick,
        .on_wake = on_wake,
    };
    g.link = link_new(&opt, &h);
    if (g.link == NULL)
        goto out;
    status = link_run(g.link);
    cp_info("agent: stopped (exit status %d)", status);
    exit_watchdog(status);
out:
    podworker_free(g.pods); /* before the link: its threads wake it */
    agent_stop(g.agent);    /* likewise */
    link_free(g.link);
    agent_free(g.agent);
    engine_free(engine);
    agent_config_release(&cfg);
    return status;
}
