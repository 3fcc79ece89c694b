/* Master -> agent requests across masters (see xrpc.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "xrpc.h"
#include "agent_calls.h"
#include "agents.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"
#include "../common/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* ==== The waiter table ==== */

void xrpc_table_init(struct xrpc_table *t)
{
    memset(t->w, 0, sizeof(t->w));
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void xrpc_table_destroy(struct xrpc_table *t)
{
    for (int i = 0; i < XRPC_MAX_WAITERS; i++) {
        json_decref(t->w[i].error);
        json_decref(t->w[i].result);
    }
    memset(t->w, 0, sizeof(t->w));
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

int xrpc_table_register(struct xrpc_table *t, const char *req_id)
{
    if (req_id == NULL || strlen(req_id) > XRPC_ID_LEN)
        return -1;
    int slot = -1;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < XRPC_MAX_WAITERS && slot < 0; i++) {
        if (!t->w[i].used) {
            slot = i;
            struct xrpc_waiter *w = &t->w[i];
            memset(w, 0, sizeof(*w));
            w->used = true;
            snprintf(w->req_id, sizeof(w->req_id), "%s", req_id);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return slot;
}

bool xrpc_table_complete(struct xrpc_table *t, const char *req_id,
                         json_t *error, json_t *result)
{
    if (req_id == NULL)
        return false;
    bool found = false;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < XRPC_MAX_WAITERS && !found; i++) {
        struct xrpc_waiter *w = &t->w[i];
        if (w->used && !w->done && strcmp(w->req_id, req_id) == 0) {
            found = true;
            w->done = true;
            w->error = error != NULL ? json_incref(error) : NULL;
            w->result = result != NULL ? json_incref(result) : NULL;
        }
    }
    if (found)
        pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return found;
}

bool xrpc_table_wait(struct xrpc_table *t, int slot, int timeout_ms,
                     json_t **error, json_t **result)
{
    *error = *result = NULL;
    if (slot < 0 || slot >= XRPC_MAX_WAITERS)
        return false;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->mu);
    struct xrpc_waiter *w = &t->w[slot];
    while (!w->done) {
        if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT)
            break;
    }
    bool done = w->done;
    *error = w->error;
    *result = w->result;
    memset(w, 0, sizeof(*w));
    pthread_mutex_unlock(&t->mu);
    return done;
}

/* ==== The reply publisher ==== */

#define OUTBOX_MAX 1024

struct reply {
    struct reply *next;
    char *channel;
    char *payload;
};

struct xrpc {
    struct master *m;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct reply *head, *tail;
    int queued;
    bool is_stopping;
};

static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static struct xrpc_table table; /* lives as long as the process */
static struct xrpc *the_xrpc;   /* set and cleared on the loop thread */

static void table_setup(void)
{
    xrpc_table_init(&table);
}

static void *publisher_main(void *arg)
{
    struct xrpc *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->is_stopping && x->head == NULL)
            pthread_cond_wait(&x->cv, &x->mu);
        struct reply *r = x->head;
        if (r == NULL)
            break; /* stopping and drained */
        x->head = r->next;
        if (x->head == NULL)
            x->tail = NULL;
        x->queued--;
        pthread_mutex_unlock(&x->mu);
        int rc = ST_CALL(x->m->store, feed_publish, r->channel, r->payload);
        if (rc != 0)
            cp_error("xrpc: cannot publish %s", r->channel);
        cp_free(r->channel);
        cp_free(r->payload);
        cp_free(r);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

void xrpc_start(struct master *m)
{
    pthread_once(&table_once, table_setup);
    struct xrpc *x = cp_calloc(1, sizeof(*x));
    x->m = m;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    if (pthread_create(&x->th, NULL, publisher_main, x) != 0)
        cp_panic("xrpc: cannot start the reply publisher thread");
    the_xrpc = x;
}

void xrpc_stop(struct master *m)
{
    CP_UNUSED(m);
    struct xrpc *x = the_xrpc;
    if (x == NULL)
        return;
    the_xrpc = NULL;
    pthread_mutex_lock(&x->mu);
    x->is_stopping = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->th, NULL);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    cp_free(x);
}

/* Loop thread: queues msg (stolen) for the publisher thread. */
static void outbox_put(struct xrpc *x, const char *channel, json_t *msg)
{
    char *text = cp_json_dump(msg);
    json_decref(msg);
    pthread_mutex_lock(&x->mu);
    if (x->is_stopping || x->queued >= OUTBOX_MAX) {
        pthread_mutex_unlock(&x->mu);
        cp_error("xrpc: reply outbox full, dropping a reply");
        cp_free(text);
        return;
    }
    struct reply *r = cp_calloc(1, sizeof(*r));
    r->channel = cp_strdup(channel);
    r->payload = text;
    if (x->tail != NULL)
        x->tail->next = r;
    else
        x->head = r;
    x->tail = r;
    x->queued++;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* ==== Serving a request (the master that holds the socket) ==== */

struct serve {
    char req_id[XRPC_ID_LEN + 1];
    char to[sizeof(((struct master *)0)->master_id)];
    bool is_inspect;
};

static void on_agent_reply(void *ctx, const json_t *error, const json_t *result)
{
    struct serve *s = ctx;
    struct xrpc *x = the_xrpc;
    if (x != NULL) {
        json_t *res = NULL;
        if (error == NULL) {
            res = result != NULL ? json_deep_copy(result) : json_null();
            /* Secrets never go on the feed: the env entries of the
             * container's secrets go before publishing. */
            if (s->is_inspect)
                agent_calls_strip_secret_env(res, NULL);
        }
        json_t *msg = json_pack("{s:s,s:s,s:O?,s:o?}", "req_id", s->req_id,
                                "to", s->to, "error", error, "result", res);
        if (msg != NULL)
            outbox_put(x, "agents.reply", msg);
    }
    cp_free(s);
}

void xrpc_on_request(struct master *m, const json_t *msg)
{
    struct xrpc *x = the_xrpc;
    const char *req_id = cp_json_str(msg, "req_id");
    const char *node = cp_json_str(msg, "node");
    const char *method = cp_json_str(msg, "method");
    const char *from = cp_json_str(msg, "from");
    json_t *params = json_object_get(msg, "params");
    int timeout_ms = (int)cp_json_int(msg, "timeout_ms", 10000);
    if (x == NULL || m->agents == NULL || req_id == NULL || node == NULL ||
        method == NULL || from == NULL || !json_is_array(params) ||
        strlen(req_id) > XRPC_ID_LEN || strlen(from) >= sizeof(m->master_id))
        return;
    if (timeout_ms < 100 || timeout_ms > 120000)
        timeout_ms = 10000;
    struct serve *s = cp_calloc(1, sizeof(*s));
    snprintf(s->req_id, sizeof(s->req_id), "%s", req_id);
    snprintf(s->to, sizeof(s->to), "%s", from);
    s->is_inspect = strcmp(method, PROTO_M_CONTAINER_INSPECT) == 0;
    int rc = agents_request(m->agents, node, method, json_incref(params),
                            timeout_ms, on_agent_reply, s);
    if (rc == CP_ENOTFOUND) {
        cp_free(s); /* not ours: the master holding the socket answers */
        return;
    }
    if (rc != 0) {
        json_t *err = rpc_error(PROTO_ERR_TIMEOUT,
                                "too many requests in flight to the agent");
        on_agent_reply(s, err, NULL);
        json_decref(err);
    }
}

/* ==== Calling (the API handler's worker thread) ==== */

void xrpc_on_reply(struct master *m, const json_t *msg)
{
    const char *to = cp_json_str(msg, "to");
    if (to == NULL || strcmp(to, m->master_id) != 0)
        return;
    pthread_once(&table_once, table_setup);
    json_t *error = json_object_get(msg, "error");
    if (json_is_null(error))
        error = NULL;
    json_t *result = json_object_get(msg, "result");
    if (!xrpc_table_complete(&table, cp_json_str(msg, "req_id"), error, result))
        cp_debug("xrpc: a reply for %s came after its caller gave up",
                 cp_json_str(msg, "req_id"));
}

static atomic_int calls_in_flight;

static int call(struct master *m, const char *node_row_id,
                const char *node_name, const char *method, const json_t *params,
                int timeout_ms, json_t **result, char **error);

int xrpc_call(struct master *m, const char *node_row_id, const char *node_name,
              bool node_connected, const char *method, const json_t *params,
              int timeout_ms, json_t **result, char **error)
{
    *result = NULL;
    *error = NULL;
    if (!node_connected) {
        *error =
            cp_asprintf("node %s is not connected to any master", node_name);
        return 503;
    }
    pthread_once(&table_once, table_setup);
    /* Each call holds an API worker while it waits: at most half of the
     * pool waits on agents, so the API keeps answering. */
    int limit = m->cfg.threads / 2 > 0 ? m->cfg.threads / 2 : 1;
    if (atomic_fetch_add(&calls_in_flight, 1) >= limit) {
        atomic_fetch_sub(&calls_in_flight, 1);
        *error = cp_strdup("too many agent calls in flight, try again");
        return 503;
    }
    int status = call(m, node_row_id, node_name, method, params, timeout_ms,
                      result, error);
    atomic_fetch_sub(&calls_in_flight, 1);
    return status;
}

static int call(struct master *m, const char *node_row_id,
                const char *node_name, const char *method, const json_t *params,
                int timeout_ms, json_t **result, char **error)
{
    char req_id[XRPC_ID_LEN + 1];
    cp_random_hex(req_id, XRPC_ID_LEN / 2);
    int slot = xrpc_table_register(&table, req_id);
    if (slot < 0) {
        *error = cp_strdup("too many agent calls in flight, try again");
        return 503;
    }
    json_t *msg =
        json_pack("{s:s,s:s,s:s,s:O,s:s,s:i}", "req_id", req_id, "node",
                  node_row_id, "method", method, "params", params, "from",
                  m->master_id, "timeout_ms", timeout_ms);
    char *text = cp_json_dump(msg);
    json_decref(msg);
    int rc = ST_CALL(m->store, feed_publish, "agents.request", text);
    cp_free(text);
    json_t *err = NULL, *res = NULL;
    /* The agent gets timeout_ms; the caller waits a little longer so an
     * agent timeout comes back as the holder's answer, not ours. */
    bool done =
        rc == 0 && xrpc_table_wait(&table, slot, timeout_ms + 500, &err, &res);
    if (rc != 0) {
        xrpc_table_wait(&table, slot, 0, &err, &res); /* frees the slot */
        json_decref(err);
        json_decref(res);
        *error = cp_strdup("cannot publish the request on the store feed");
        return 503;
    }
    if (!done) {
        json_decref(err);
        json_decref(res);
        *error = cp_asprintf("no master answered for node %s within %d s",
                             node_name, (timeout_ms + 999) / 1000);
        return 504;
    }
    if (err != NULL) {
        long long code = cp_json_int(err, "code", 500);
        const char *why = cp_json_str(err, "message");
        *error = cp_asprintf("node %s: %s", node_name,
                             why != NULL ? why : "agent error");
        json_decref(err);
        json_decref(res);
        return code >= 400 && code <= 599 ? (int)code : 502;
    }
    *result = res != NULL ? res : json_null();
    return 0;
}
