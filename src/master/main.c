/* kontena-master: parse the configuration, start the store and the HTTP
 * server on one libuv loop, run until SIGTERM/SIGINT, then drain.
 * SPDX-License-Identifier: Apache-2.0 */
#include "agents.h"
#include "config.h"
#include "deploy.h"
#include "stacks.h"
#include "feed.h"
#include "jobs.h"
#include "leader.h"
#include "http.h"
#include "master.h"
#include "vault.h"
#include "../common/alloc.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct runtime {
    struct master *m;
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    bool stopping;
};

static void on_drained(void *ctx)
{
    struct runtime *rt = ctx;
    cp_info("master: stopped");
    uv_stop(rt->m->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (rt->stopping) {
        cp_warn("master: second signal, exiting now");
        exit(1);
    }
    rt->stopping = true;
    cp_info("master: %s received, shutting down",
            signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_signal_stop(&rt->sigterm);
    uv_signal_stop(&rt->sigint);
    agents_close_all(rt->m->agents, PROTO_CLOSE_GOING_AWAY,
                     "master is shutting down");
    jobs_stop(rt->m);
    deploy_stop(rt->m);
    leader_stop(rt->m);
    stacks_stop(rt->m);
    http_shutdown(rt->http, 10000, on_drained, rt);
}

static void set_threadpool(int threads)
{
    /* libuv reads UV_THREADPOOL_SIZE once, when the pool first starts. */
    char n[16];
    snprintf(n, sizeof(n), "%d", threads);
    setenv("UV_THREADPOOL_SIZE", n, 1);
}

int main(int argc, char **argv)
{
    static struct master m;
    char err[512] = "";
    store_process_init();
    signal(SIGPIPE, SIG_IGN);
    cp_log_install_crash_handler();
    if (master_config_parse(&m.cfg, environ, argc, argv, err,
                            sizeof(err)) != 0) {
        fprintf(stderr, "kontena-master: %s\n", err);
        return 2;
    }
    cp_log_level = m.cfg.log_level;
    cp_trace_mask = m.cfg.trace;
    switch (m.cfg.command) {
    case MASTER_CMD_HELP:
        fputs(master_config_usage, stdout);
        master_config_release(&m.cfg);
        return 0;
    case MASTER_CMD_VERSION:
        printf("kontena-master %s\n", KONTENA_VERSION);
        master_config_release(&m.cfg);
        return 0;
    case MASTER_CMD_RESET_ADMIN_CODE: {
        int rc = master_reset_admin_code(&m);
        master_release(&m);
        return rc == 0 ? 0 : 1;
    }
    case MASTER_CMD_VAULT_REKEY: {
        int rc = vault_rekey_command(&m.cfg);
        master_config_release(&m.cfg);
        return rc;
    }
    case MASTER_CMD_SERVE:
        break;
    }

    cp_info("master: kontena-master %s starting (env %s, store %s)",
            KONTENA_VERSION, m.cfg.rack_env ? m.cfg.rack_env : "production",
            strncmp(m.cfg.store_url, "sqlite:", 7) == 0 ? m.cfg.store_url
                                                        : "external");
    set_threadpool(m.cfg.threads);
    static uv_loop_t loop;
    uv_loop_init(&loop);
    m.loop = &loop;
    if (master_init(&m) != 0) {
        master_release(&m);
        return 1;
    }
    struct agents_config ac = {
        .ping_interval_ms = m.cfg.ping_interval * 1000,
        .pong_timeout_ms = m.cfg.websocket_timeout * 1000,
        .clock_skew_ms = m.cfg.clock_skew * 1000,
        .seen_flush_ms = 10000,
        .stats_keep = 60,
    };
    m.agents = agents_new(&m, &ac);
    if (feed_start(&m) != 0) {
        master_release(&m);
        return 1;
    }
    leader_start(&m);
    jobs_start(&m);
    deploy_start(&m);
    stacks_start(&m);
    struct runtime rt = {.m = &m};
    rt.http = http_start(&m);
    if (rt.http == NULL) {
        master_release(&m);
        return 1;
    }
    uv_signal_init(&loop, &rt.sigterm);
    uv_signal_init(&loop, &rt.sigint);
    rt.sigterm.data = rt.sigint.data = &rt;
    uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_signal, SIGINT);
    cp_info("master: ready");
    uv_run(&loop, UV_RUN_DEFAULT);
    http_free(rt.http);
    feed_stop(&m);
    uv_run(&loop, UV_RUN_NOWAIT);
    agents_free(m.agents);
    m.agents = NULL;
    master_release(&m);
    return 0;
}
