/* The store feed, delivered on the loop: a mutex-protected bounded queue
 * filled by the feed callback (any thread) and drained by a uv_async.
 * SPDX-License-Identifier: Apache-2.0 */
#include "feed.h"
#include "agents.h"
#include "xrpc.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/log.h"

#include <pthread.h>
#include <string.h>

#define FEED_MAX_QUEUED 65536

struct item {
    struct item *next;
    char *channel;
    char *payload;
};

struct feed {
    struct master *m;
    uv_async_t async;
    pthread_mutex_t lock;
    struct item *head, *tail;
    int queued;
    int sub;
};

static struct feed *the_feed;

static void on_feed(void *ctx, const char *channel, const char *payload)
{
    struct feed *f = ctx;
    if (strncmp(channel, "agents.", 7) != 0 &&
        strncmp(channel, "deploys.", 8) != 0)
        return;
    if (strcmp(channel, "agents.reply") == 0) {
        /* Wakes a worker thread waiting in xrpc_call: no loop hop. */
        json_t *p = cp_json_parse(payload, strlen(payload), NULL, 0);
        if (p != NULL)
            xrpc_on_reply(f->m, p);
        json_decref(p);
        return;
    }
    struct item *it = cp_calloc(1, sizeof(*it));
    it->channel = cp_strdup(channel);
    it->payload = cp_strdup(payload);
    pthread_mutex_lock(&f->lock);
    if (f->queued >= FEED_MAX_QUEUED) {
        pthread_mutex_unlock(&f->lock);
        cp_error("feed: queue full, dropping %s", channel);
        cp_free(it->channel);
        cp_free(it->payload);
        cp_free(it);
        return;
    }
    if (f->tail)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
    f->queued++;
    pthread_mutex_unlock(&f->lock);
    uv_async_send(&f->async);
}

static void deliver(struct feed *f, const struct item *it)
{
    struct agents *a = f->m->agents;
    json_t *p = cp_json_parse(it->payload, strlen(it->payload), NULL, 0);
    if (p == NULL)
        return;
    if (strcmp(it->channel, "deploys.queued") == 0) {
        const char *svc = cp_json_str(p, "service");
        if (svc != NULL && feed_on_deploy_queued != NULL)
            feed_on_deploy_queued(f->m, svc);
        json_decref(p);
        return;
    }
    if (a == NULL) {
        json_decref(p);
        return;
    }
    const char *node = cp_json_str(p, "node");
    if (strcmp(it->channel, "agents.close") == 0 && node != NULL) {
        const char *reason = cp_json_str(p, "reason");
        agents_close_node(a, node, (int)cp_json_int(p, "code", 4031),
                          reason ? reason : "closed by the master");
    } else if (strcmp(it->channel, "agents.notify") == 0 && node != NULL) {
        const char *method = cp_json_str(p, "method");
        json_t *params = json_object_get(p, "params");
        if (method != NULL && json_is_array(params))
            agents_notify(a, node, method, json_incref(params));
    } else if (strcmp(it->channel, "agents.request") == 0) {
        xrpc_on_request(f->m, p);
    } else if (strcmp(it->channel, "agents.node_info") == 0) {
        const char *grid = cp_json_str(p, "grid");
        if (grid != NULL)
            agents_push_node_info(a, grid, node);
    }
    json_decref(p);
}

static void on_async(uv_async_t *h)
{
    struct feed *f = h->data;
    pthread_mutex_lock(&f->lock);
    struct item *it = f->head;
    f->head = f->tail = NULL;
    f->queued = 0;
    pthread_mutex_unlock(&f->lock);
    while (it != NULL) {
        struct item *next = it->next;
        deliver(f, it);
        cp_free(it->channel);
        cp_free(it->payload);
        cp_free(it);
        it = next;
    }
}

int feed_start(struct master *m)
{
    struct feed *f = cp_calloc(1, sizeof(*f));
    f->m = m;
    pthread_mutex_init(&f->lock, NULL);
    uv_async_init(m->loop, &f->async, on_async);
    f->async.data = f;
    xrpc_start(m);
    f->sub = ST_CALL(m->store, feed_subscribe, on_feed, f);
    if (f->sub <= 0) {
        cp_error("feed: cannot subscribe to the store feed");
        return f->sub < 0 ? f->sub : -1;
    }
    the_feed = f;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct feed *f = h->data;
    on_async(&f->async); /* free what is left */
    pthread_mutex_destroy(&f->lock);
    cp_free(f);
}

void feed_stop(struct master *m)
{
    struct feed *f = the_feed;
    if (f == NULL)
        return;
    m->store->ops->feed_unsubscribe(m->store, f->sub);
    xrpc_stop(m);
    the_feed = NULL;
    uv_close((uv_handle_t *)&f->async, on_closed);
}

static void publish(struct master *m, const char *channel, json_t *p)
{
    char *text = cp_json_dump(p);
    json_decref(p);
    int rc = ST_CALL(m->store, feed_publish, channel, text);
    if (rc != 0)
        cp_error("feed: cannot publish %s", channel);
    cp_free(text);
}

void feed_close_agent(struct master *m, const char *node_row_id, int code,
                      const char *reason)
{
    publish(m, "agents.close",
            json_pack("{s:s,s:i,s:s}", "node", node_row_id, "code", code,
                      "reason", reason));
}

void feed_node_info(struct master *m, const char *grid_id,
                    const char *node_row_id)
{
    publish(m, "agents.node_info",
            json_pack("{s:s,s:s?}", "grid", grid_id, "node", node_row_id));
}

void (*feed_on_deploy_queued)(struct master *m, const char *service_id);

void feed_notify_agent(struct master *m, const char *node_row_id,
                       const char *method, const json_t *params)
{
    publish(m, "agents.notify",
            json_pack("{s:s,s:s,s:O}", "node", node_row_id, "method", method,
                      "params", params));
}

void feed_deploy_queued(struct master *m, const char *service_id)
{
    publish(m, "deploys.queued", json_pack("{s:s}", "service", service_id));
}
