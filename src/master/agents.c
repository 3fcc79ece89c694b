/* Agent sessions over h2o's WebSocket server (spec 4).
 *
 * Life of a session:
 *   CHECKING  upgraded; the acceptance checks run on a worker (store
 *             lookups); frames received meanwhile are dropped
 *   OPEN      accepted and plugged with connection generation gen; RPC
 *             flows both ways; pings every ping_interval
 *   CLOSING   a close frame with our code is queued; the socket is torn
 *             down when the peer answers or after a short grace
 *   GONE      the socket is closed; the session is freed once no worker
 *             job refers to it (refs == 0)
 * Every store write about the connection carries gen, so a late write
 * from a superseded socket changes nothing (issues #1948, #2183).
 * SPDX-License-Identifier: Apache-2.0 */
#include "agents.h"
#include "agent_calls.h"
#include "deploy.h"
#include "http.h"
#include "nodes.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"
#include "../common/util.h"
#include "../common/version.h"

#include <h2o/websocket.h>
#include <stdio.h>
#include <string.h>

#define HASH_BUCKETS 16384
#define CLOSE_GRACE_MS 3000
#define MAX_QUEUED_BYTES (16u * 1024 * 1024)
#define HEADER_MAX 512

enum sess_state { SESS_CHECKING, SESS_OPEN, SESS_CLOSING, SESS_GONE };

struct pending {
    bool used;
    uint32_t id;
    int64_t deadline;
    agents_reply_fn *cb;
    void *ctx;
};

#define EARLY_MAX 16

struct early {
    struct early *next;
    size_t len;
    uint8_t data[];
};

struct session {
    struct agents *hub;
    h2o_websocket_conn_t *ws; /* NULL once the socket is gone */
    enum sess_state state;
    int refs; /* worker jobs holding this session */
    struct session *prev, *next; /* all sessions */
    struct session *hnext;       /* bucket chain, while OPEN */
    bool hashed;
    /* Handshake. */
    char *h_node_id, *h_name, *h_version, *h_labels, *h_connected_at;
    char *h_grid_token, *h_node_token;
    char *peer;
    /* Identity, once accepted. */
    char row_id[STORE_ID_LEN + 1];
    char grid_id[STORE_ID_LEN + 1];
    char *name;
    int64_t gen;
    /* Keepalive. */
    int64_t last_ping;  /* mono ms */
    int64_t ping_sent;  /* mono ms of the unanswered ping, 0 = none */
    int64_t seen_at;    /* wall ms of the last pong, to be written */
    bool seen_dirty;
    /* Closing. */
    int close_code;
    char *close_reason;
    int64_t close_deadline;
    bool close_queued;
    /* Master -> agent requests in flight: allocated on first use, so an
     * idle session stays small (10,000 agents). */
    struct pending *pend;
    int npend;
    uint32_t next_id;
    /* Frames that arrived while the session was being checked; run once
     * it is accepted (agents send /nodes/update right after the 101). */
    struct early *early_head, *early_tail;
    int nearly;
    /* The last /nodes/update written for this connection: an unchanged
     * one (every 60 s) is answered without a store write. */
    char update_hash[65];
};

struct agents {
    struct master *m;
    struct agents_config cfg;
    struct session *all;
    struct session *buckets[HASH_BUCKETS];
    int open_count;
    uv_timer_t tick;
    int64_t last_flush;
    bool flushing;
    /* /nodes/stats kept on the loop and written in one transaction per
     * flush (one fsync for every node, not one per node). */
    struct stats_entry *stats;
    size_t nstats, cap_stats;
    bool stats_flushing;
    bool stats_dropped;
    /* /node_service_pods/set_state kept on the loop and written in one
     * transaction per flush; each agent is answered once it committed. */
    struct report_entry *reports;
    size_t nreports, cap_reports;
    bool reports_flushing;
    bool reports_timer_on;
    uv_timer_t reports_timer;
};

#define REPORTS_FLUSH_MS 20
#define REPORTS_FLUSH_AT 500

struct report_entry {
    struct session *s; /* holds a ref */
    bool is_request;
    uint32_t id;
    struct agent_state_report r;
};

#define STATS_MAX_PENDING 50000

struct stats_entry {
    char row_id[STORE_ID_LEN + 1];
    json_t *stats;
    int64_t at;
};

/* ==== Session table ==== */

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HASH_BUCKETS;
}

static struct session *find(struct agents *a, const char *row_id)
{
    for (struct session *s = a->buckets[hash_id(row_id)]; s; s = s->hnext) {
        if (strcmp(s->row_id, row_id) == 0 && s->state == SESS_OPEN)
            return s;
    }
    return NULL;
}

static void unhash(struct session *s)
{
    if (!s->hashed)
        return;
    struct session **p = &s->hub->buckets[hash_id(s->row_id)];
    while (*p != NULL && *p != s)
        p = &(*p)->hnext;
    if (*p == s)
        *p = s->hnext;
    s->hashed = false;
    s->hub->open_count--;
}

static void session_free(struct session *s)
{
    struct agents *a = s->hub;
    unhash(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        a->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    cp_free(s->h_node_id);
    cp_free(s->h_name);
    cp_free(s->h_version);
    cp_free(s->h_labels);
    cp_free(s->h_connected_at);
    cp_free(s->h_grid_token);
    cp_free(s->h_node_token);
    cp_free(s->peer);
    cp_free(s->name);
    cp_free(s->close_reason);
    cp_free(s->pend);
    while (s->early_head != NULL) {
        struct early *e = s->early_head;
        s->early_head = e->next;
        cp_free(e);
    }
    cp_free(s);
}

static void session_unref(struct session *s)
{
    if (--s->refs == 0 && s->state == SESS_GONE)
        session_free(s);
}

/* ==== Sending ==== */

static void proceed(struct session *s)
{
    /* Until h2o finishes the upgrade the socket is not there yet; h2o
     * flushes what we queued when it is. */
    if (s->ws != NULL && s->ws->sock != NULL)
        h2o_websocket_proceed(s->ws);
}

static void session_close(struct session *s, int code, const char *reason);

static void send_frame(struct session *s, char *buf, size_t len)
{
    if (s->ws == NULL || s->state == SESS_GONE || s->state == SESS_CLOSING) {
        cp_free(buf);
        return;
    }
    if (wslay_event_get_queued_msg_length(s->ws->ws_ctx) > MAX_QUEUED_BYTES) {
        cp_free(buf);
        session_close(s, PROTO_CLOSE_GOING_AWAY, "agent is not reading");
        return;
    }
    struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, (uint8_t *)buf, len};
    wslay_event_queue_msg(s->ws->ws_ctx, &msg);
    cp_free(buf);
    proceed(s);
}

static void send_notify(struct session *s, const char *method, json_t *params)
{
    char *buf;
    size_t len;
    rpc_encode_notify(method, params, &buf, &len);
    json_decref(params);
    cp_trace(CP_TRACE_RPC, "rpc: -> %s %s", s->name ? s->name : "?", method);
    send_frame(s, buf, len);
}

static void send_response(struct session *s, uint32_t id, json_t *error,
                          json_t *result)
{
    char *buf;
    size_t len;
    rpc_encode_response(id, error, result, &buf, &len);
    json_decref(error);
    json_decref(result);
    send_frame(s, buf, len);
}

/* Fails every request in flight (the session is going away). */
static void fail_pending(struct session *s, const char *why)
{
    for (int i = 0; s->npend > 0 && i < PROTO_MAX_OUTSTANDING; i++) {
        struct pending *p = &s->pend[i];
        if (!p->used)
            continue;
        p->used = false;
        s->npend--;
        json_t *err = rpc_error(PROTO_ERR_TIMEOUT, why);
        p->cb(p->ctx, err, NULL);
        json_decref(err);
    }
}

static void unplug(struct session *s, int code, const char *reason);

/* Queues the close frame once the messages before it are out: wslay sends
 * control frames ahead of queued data, and a refused agent must still get
 * the /agent/master_info sent before its 4010. on_tick retries. */
static void queue_close(struct session *s)
{
    if (s->close_queued || s->ws == NULL)
        return;
    if (wslay_event_get_queued_msg_count(s->ws->ws_ctx) > 0 &&
        cp_mono_ms() < s->close_deadline - CLOSE_GRACE_MS / 2) {
        proceed(s);
        return;
    }
    s->close_queued = true;
    wslay_event_queue_close(s->ws->ws_ctx, (uint16_t)s->close_code,
                            (const uint8_t *)s->close_reason,
                            strlen(s->close_reason));
    proceed(s);
}

/* Starts closing with code; the socket goes after the peer's answer or
 * CLOSE_GRACE_MS. */
static void session_close(struct session *s, int code, const char *reason)
{
    if (s->state == SESS_CLOSING || s->state == SESS_GONE)
        return;
    bool was_open = s->state == SESS_OPEN;
    s->state = SESS_CLOSING;
    s->close_code = code;
    cp_free(s->close_reason);
    s->close_reason = cp_strdup(reason);
    s->close_deadline = cp_mono_ms() + CLOSE_GRACE_MS;
    cp_info("agents: closing %s (%s) with %d: %s",
            s->name ? s->name : (s->h_name ? s->h_name : "?"),
            s->peer ? s->peer : "-", code, reason);
    unhash(s);
    fail_pending(s, "agent connection closed");
    if (was_open)
        unplug(s, code, reason);
    queue_close(s);
}

/* The socket is gone (h2o told us, or we gave up waiting). */
static void session_gone(struct session *s)
{
    if (s->state == SESS_GONE)
        return;
    if (s->state == SESS_OPEN) {
        int code = PROTO_CLOSE_GOING_AWAY;
        if (s->ws != NULL && wslay_event_get_close_received(s->ws->ws_ctx))
            code = wslay_event_get_status_code_received(s->ws->ws_ctx);
        cp_info("agents: %s disconnected (code %d)", s->name, code);
        unhash(s);
        fail_pending(s, "agent disconnected");
        unplug(s, code, "agent disconnected");
    }
    s->state = SESS_GONE;
    if (s->ws != NULL) {
        s->ws->data = NULL;
        h2o_websocket_close(s->ws);
        s->ws = NULL;
    }
    if (s->refs == 0)
        session_free(s);
}

/* ==== Store jobs ==== */

struct unplug_job {
    struct master *m;
    char row_id[STORE_ID_LEN + 1];
    int64_t gen;
    int code;
    char *reason;
};

static void unplug_work(void *ctx)
{
    struct unplug_job *j = ctx;
    int rc = ST_CALL(j->m->store, node_unplug, j->row_id, j->gen,
                     cp_now_ms(), j->code, j->reason);
    if (rc == CP_ECONFLICT)
        cp_debug("agents: unplug of an older connection ignored");
}

static void unplug_done(void *ctx)
{
    struct unplug_job *j = ctx;
    cp_free(j->reason);
    cp_free(j);
}

/* Marks the node offline at once, if this is still its connection. */
static void unplug(struct session *s, int code, const char *reason)
{
    struct unplug_job *j = cp_calloc(1, sizeof(*j));
    j->m = s->hub->m;
    memcpy(j->row_id, s->row_id, sizeof(j->row_id));
    j->gen = s->gen;
    j->code = code;
    j->reason = cp_strdup(reason);
    master_queue(j->m, unplug_work, unplug_done, j);
}

/* ==== Acceptance (spec 4.2) ==== */

struct accept_job {
    struct session *s;
    struct master *m;
    int64_t now;
    /* Results. */
    int close_code;
    const char *close_reason;
    struct store_node node;
    struct store_grid grid;
};

static bool same_minor(const char *a, const char *b)
{
    /* "1.5.3" ~ "1.5.90": major.minor must match. */
    const char *da = strchr(a, '.'), *db = strchr(b, '.');
    if (da == NULL || db == NULL)
        return false;
    const char *ea = strchr(da + 1, '.'), *eb = strchr(db + 1, '.');
    size_t la = ea ? (size_t)(ea - a) : strlen(a);
    size_t lb = eb ? (size_t)(eb - b) : strlen(b);
    return la == lb && strncmp(a, b, la) == 0;
}

static json_t *labels_from_header(const char *h)
{
    json_t *arr = json_array();
    if (h == NULL)
        return arr;
    const char *p = h;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        while (n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
        if (n > 0 && n < 256) {
            char *l = cp_strndup(p, n);
            json_t *v = json_string(l);
            if (v != NULL)
                json_array_append_new(arr, v);
            cp_free(l);
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return arr;
}

static void reject(struct accept_job *j, int code, const char *reason)
{
    j->close_code = code;
    j->close_reason = reason;
}

/* Finds or creates the node for a grid-token connection. */
static int accept_grid_token(struct accept_job *j)
{
    struct session *s = j->s;
    struct store *st = j->m->store;
    char hash[65];
    cp_sha256_hex(s->h_grid_token, strlen(s->h_grid_token), hash);
    int rc = ST_CALL(st, grid_get_by_token_hash, hash, &j->grid);
    if (rc == CP_ENOTFOUND) {
        reject(j, PROTO_CLOSE_BAD_GRID_TOKEN, "invalid grid token");
        return 0;
    }
    if (rc != 0)
        return rc;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = ST_CALL(st, node_get_by_node_id, s->h_node_id, &j->node);
        if (rc == 0) {
            if (strcmp(j->node.grid_id, j->grid.id) != 0) {
                reject(j, PROTO_CLOSE_NODE_ID_TAKEN,
                       "node id belongs to a node of another grid");
            } else if (j->node.token_hash != NULL) {
                reject(j, PROTO_CLOSE_GRID_TOKEN_FOR_NODE_TOKEN_NODE,
                       "node was created with a node token; connect with "
                       "it");
            }
            return 0;
        }
        if (rc != CP_ENOTFOUND)
            return rc;
        struct store_node n = {0};
        store_new_id(n.id);
        memcpy(n.grid_id, j->grid.id, sizeof(n.grid_id));
        n.node_id = s->h_node_id;
        n.name = s->h_name;
        n.labels = labels_from_header(s->h_labels);
        n.agent_version = s->h_version;
        const char *field = NULL;
        rc = ST_CALL(st, node_create, &n, true, &j->node, &field);
        json_decref(n.labels);
        if (rc == 0) {
            cp_info("agents: new node %s (%s) in grid %s", j->node.name,
                    s->h_node_id, j->grid.name);
            return 0;
        }
        if (rc == CP_EAGAIN) {
            reject(j, PROTO_CLOSE_MISSING_HEADERS,
                   "grid is full (254 nodes)");
            return 0;
        }
        /* A concurrent first connection of the same node won: look
         * again. */
        if (rc != CP_ECONFLICT)
            return rc;
    }
    return CP_ECONFLICT;
}

static int accept_node_token(struct accept_job *j)
{
    struct session *s = j->s;
    struct store *st = j->m->store;
    char hash[65];
    cp_sha256_hex(s->h_node_token, strlen(s->h_node_token), hash);
    int rc = ST_CALL(st, node_get_by_token_hash, hash, &j->node);
    if (rc == CP_ENOTFOUND) {
        reject(j, PROTO_CLOSE_BAD_NODE_TOKEN, "invalid node token");
        return 0;
    }
    if (rc != 0)
        return rc;
    if (j->node.node_id == NULL) {
        struct store_node other = {0};
        rc = ST_CALL(st, node_get_by_node_id, s->h_node_id, &other);
        store_node_release(&other);
        if (rc == 0) {
            reject(j, PROTO_CLOSE_NODE_ID_TAKEN,
                   "node id already belongs to another node");
            return 0;
        }
        rc = ST_CALL(st, node_bind, j->node.id, s->h_node_id);
        if (rc == CP_ECONFLICT) {
            reject(j, PROTO_CLOSE_NODE_TOKEN_TAKEN,
                   "node token is already used by another node");
            return 0;
        }
        if (rc != 0)
            return rc;
        j->node.node_id = cp_strdup(s->h_node_id);
    } else if (strcmp(j->node.node_id, s->h_node_id) != 0) {
        reject(j, PROTO_CLOSE_NODE_TOKEN_TAKEN,
               "node token is already used by another node");
        return 0;
    }
    return ST_CALL(st, grid_get_by_id, j->node.grid_id, &j->grid);
}

static void accept_work(void *ctx)
{
    struct accept_job *j = ctx;
    struct session *s = j->s;
    int rc = 0;
    if (s->h_grid_token != NULL)
        rc = accept_grid_token(j);
    else if (s->h_node_token != NULL)
        rc = accept_node_token(j);
    else
        reject(j, PROTO_CLOSE_NO_TOKEN, "no grid or node token");
    if (rc != 0) {
        cp_error("agents: store failed while accepting %s: %s", s->h_name,
                 cp_strerror(rc));
        reject(j, PROTO_CLOSE_GOING_AWAY, "master store unavailable");
        return;
    }
    if (j->close_code != 0)
        return;
    /* Clock skew (after the lookup, as the original). */
    int64_t at = 0;
    int64_t window = (int64_t)j->m->cfg.websocket_timeout * 1000 +
                     s->hub->cfg.clock_skew_ms;
    if (s->h_connected_at == NULL ||
        rpc_parse_time(s->h_connected_at, &at) != 0) {
        reject(j, PROTO_CLOSE_MISSING_HEADERS,
               "missing or bad Kontena-Connected-At header");
        return;
    }
    if (j->now - at > window || at - j->now > s->hub->cfg.clock_skew_ms) {
        reject(j, PROTO_CLOSE_CLOCK_SKEW,
               "agent clock is out of sync with the master");
        return;
    }
    rc = ST_CALL(j->m->store, node_plug, j->node.id, j->m->master_id, at,
                 j->now, &s->gen);
    char id[STORE_ID_LEN + 1];
    memcpy(id, j->node.id, sizeof(id));
    store_node_release(&j->node);
    if (rc == 0)
        rc = ST_CALL(j->m->store, node_get, id, &j->node);
    if (rc != 0) {
        cp_error("agents: cannot plug %s: %s", s->h_name, cp_strerror(rc));
        reject(j, PROTO_CLOSE_GOING_AWAY, "master store unavailable");
    }
}

static void accept_done(void *ctx);
static void on_message(struct session *s, const uint8_t *data, size_t len);
static void run_early(struct session *s);

static void start_accept(struct session *s)
{
    struct accept_job *j = cp_calloc(1, sizeof(*j));
    j->s = s;
    j->m = s->hub->m;
    j->now = cp_now_ms();
    s->refs++;
    master_queue(j->m, accept_work, accept_done, j);
}

static void hash_in(struct session *s)
{
    struct agents *a = s->hub;
    uint32_t h = hash_id(s->row_id);
    s->hnext = a->buckets[h];
    a->buckets[h] = s;
    s->hashed = true;
    a->open_count++;
}

static void accept_done(void *ctx)
{
    struct accept_job *j = ctx;
    struct session *s = j->s;
    if (s->state != SESS_CHECKING) {
        /* The agent left while we checked; if it was plugged, undo. */
        if (j->close_code == 0) {
            memcpy(s->row_id, j->node.id, sizeof(s->row_id));
            unplug(s, PROTO_CLOSE_GOING_AWAY, "agent left during accept");
        }
    } else if (j->close_code != 0) {
        cp_warn("agents: refused %s (node id %s) from %s: %d %s",
                s->h_name, s->h_node_id, s->peer, j->close_code,
                j->close_reason);
        session_close(s, j->close_code, j->close_reason);
    } else {
        memcpy(s->row_id, j->node.id, sizeof(s->row_id));
        memcpy(s->grid_id, j->node.grid_id, sizeof(s->grid_id));
        s->name = cp_strdup(j->node.name);
        /* The newest connection wins: an older session of the same node
         * on this master goes now (other masters find out from the
         * generation on their next last-seen write). */
        struct session *old = find(s->hub, s->row_id);
        if (old != NULL)
            session_close(old, PROTO_CLOSE_SUPERSEDED,
                          "superseded by a newer connection of this node");
        s->state = SESS_OPEN;
        hash_in(s);
        s->last_ping = cp_mono_ms();
        cp_info("agents: %s (%s) connected from %s, generation %lld",
                s->name, s->h_node_id, s->peer, (long long)s->gen);
        send_notify(s, PROTO_M_MASTER_INFO,
                    json_pack("[{s:s}]", "version", KONTENA_VERSION));
        send_notify(s, PROTO_M_NODE_INFO,
                    json_pack("[o]", nodes_info_json(&j->node, &j->grid)));
        run_early(s);
    }
    store_node_release(&j->node);
    store_grid_release(&j->grid);
    cp_free(j);
    session_unref(s);
}

/* ==== Agent -> master calls (spec 4.5) ==== */

struct call_job {
    struct agent_call c;
    agent_call_fn *fn;
};

static void call_work(void *ctx)
{
    struct call_job *j = ctx;
    j->fn(&j->c);
}

static void call_done(void *ctx)
{
    struct call_job *j = ctx;
    struct session *s = j->c.s;
    if (s->state == SESS_OPEN) {
        if (j->c.update_hash[0] != '\0' && j->c.error == NULL)
            memcpy(s->update_hash, j->c.update_hash, sizeof(s->update_hash));
        if (j->c.is_request) {
            send_response(s, j->c.id, j->c.error,
                          j->c.error ? NULL
                                     : (j->c.result ? j->c.result
                                                    : json_null()));
            j->c.error = j->c.result = NULL;
        } else if (j->c.error != NULL) {
            cp_warn("agents: notification from %s failed: %s", s->name,
                    cp_json_str(j->c.error, "message"));
        }
        if (j->c.close_code != 0)
            session_close(s, j->c.close_code, j->c.close_reason);
    }
    json_decref(j->c.params);
    json_decref(j->c.error);
    json_decref(j->c.result);
    cp_free(j);
    session_unref(s);
}

static void on_reply(struct session *s, struct rpc_msg *msg)
{
    for (int i = 0; s->npend > 0 && i < PROTO_MAX_OUTSTANDING; i++) {
        struct pending *p = &s->pend[i];
        if (p->used && p->id == msg->id) {
            p->used = false;
            s->npend--;
            p->cb(p->ctx, msg->error, msg->result);
            return;
        }
    }
    cp_debug("agents: reply %u from %s matches no request", msg->id,
             s->name);
}

/* /nodes/stats [node_id, stats]: kept for the next batched write. */
static void keep_stats(struct session *s, const struct rpc_msg *msg)
{
    struct agents *a = s->hub;
    json_t *stats = json_array_get(msg->params, 1);
    if (!json_is_object(stats)) {
        cp_warn("agents: bad /nodes/stats from %s", s->name);
        return;
    }
    if (a->nstats >= STATS_MAX_PENDING) {
        if (!a->stats_dropped)
            cp_warn("agents: node stats are arriving faster than they can "
                    "be written; dropping some");
        a->stats_dropped = true;
        return;
    }
    if (a->nstats == a->cap_stats) {
        a->cap_stats = a->cap_stats ? a->cap_stats * 2 : 256;
        a->stats = cp_realloc(a->stats, a->cap_stats * sizeof(*a->stats));
    }
    struct stats_entry *e = &a->stats[a->nstats++];
    memcpy(e->row_id, s->row_id, sizeof(e->row_id));
    e->stats = json_incref(stats);
    e->at = cp_now_ms();
}

/* ==== /node_service_pods/set_state, batched ==== */

struct reports_job {
    struct agents *a;
    struct report_entry *v;
    struct store_instance_report *w;
    size_t n;
    int rc;
};

static void flush_reports(struct agents *a);
static void on_reports_timer(uv_timer_t *t);

static void reports_work(void *ctx)
{
    struct reports_job *j = ctx;
    j->rc = ST_CALL(j->a->m->store, instances_report_many, j->w, j->n);
}

static void reports_done(void *ctx)
{
    struct reports_job *j = ctx;
    struct agents *a = j->a;
    if (j->rc != 0)
        cp_warn("agents: writing %zu instance reports failed: %s", j->n,
                cp_strerror(j->rc));
    if (j->rc == 0 && j->n > 0) {
        const char **ids = cp_calloc(j->n, sizeof(*ids));
        size_t nids = 0;
        for (size_t i = 0; i < j->n; i++) {
            bool seen = false;
            for (size_t k = 0; k < nids && !seen; k++)
                seen = strcmp(ids[k], j->v[i].r.service_id) == 0;
            if (!seen)
                ids[nids++] = j->v[i].r.service_id;
        }
        deploy_wake(a->m, ids, nids);
        cp_free(ids);
    }
    for (size_t i = 0; i < j->n; i++) {
        struct report_entry *e = &j->v[i];
        struct session *s = e->s;
        int rc = j->rc != 0 ? j->rc : j->w[i].rc;
        if (s->state == SESS_OPEN) {
            if (e->is_request)
                send_response(s, e->id,
                              rc ? rpc_error(rc == CP_ENOTFOUND ? 404 : 500,
                                             cp_strerror(rc))
                                 : NULL,
                              rc ? NULL : json_object());
            else if (rc != 0)
                cp_warn("agents: notification from %s failed: %s", s->name,
                        cp_strerror(rc));
        }
        agent_state_report_release(&e->r);
        session_unref(s);
    }
    cp_free(j->v);
    cp_free(j->w);
    a->reports_flushing = false;
    cp_free(j);
    if (a->nreports >= REPORTS_FLUSH_AT)
        flush_reports(a);
    else if (a->nreports > 0 && !a->reports_timer_on) {
        a->reports_timer_on = true;
        uv_timer_start(&a->reports_timer, on_reports_timer, REPORTS_FLUSH_MS,
                       0);
    }
}

static void flush_reports(struct agents *a)
{
    if (a->nreports == 0 || a->reports_flushing)
        return;
    struct reports_job *j = cp_calloc(1, sizeof(*j));
    j->a = a;
    j->v = a->reports;
    j->n = a->nreports;
    a->reports = NULL;
    a->nreports = a->cap_reports = 0;
    j->w = cp_calloc(j->n, sizeof(*j->w));
    for (size_t i = 0; i < j->n; i++) {
        struct report_entry *e = &j->v[i];
        j->w[i] = (struct store_instance_report){
            .service_id = e->r.service_id,
            .instance_number = e->r.instance_number,
            .node_id = e->s->row_id,
            .rev = e->r.rev,
            .state = e->r.state,
            .error = e->r.error,
        };
    }
    a->reports_flushing = true;
    master_queue(a->m, reports_work, reports_done, j);
}

static void on_reports_timer(uv_timer_t *t)
{
    struct agents *a = t->data;
    a->reports_timer_on = false;
    flush_reports(a);
}

static void keep_report(struct session *s, const struct rpc_msg *msg)
{
    struct agents *a = s->hub;
    struct agent_state_report r;
    const char *why = agent_calls_pods_parse_state(msg->params, &r);
    if (why != NULL) {
        if (msg->kind == PROTO_REQUEST)
            send_response(s, msg->id, rpc_error(400, why), NULL);
        else
            cp_warn("agents: notification from %s failed: %s", s->name, why);
        return;
    }
    if (a->nreports == a->cap_reports) {
        a->cap_reports = a->cap_reports ? a->cap_reports * 2 : 256;
        a->reports =
            cp_realloc(a->reports, a->cap_reports * sizeof(*a->reports));
    }
    struct report_entry *e = &a->reports[a->nreports++];
    e->s = s;
    s->refs++;
    e->is_request = msg->kind == PROTO_REQUEST;
    e->id = msg->id;
    e->r = r;
    if (a->nreports >= REPORTS_FLUSH_AT) {
        flush_reports(a);
    } else if (!a->reports_timer_on) {
        a->reports_timer_on = true;
        uv_timer_start(&a->reports_timer, on_reports_timer, REPORTS_FLUSH_MS,
                       0);
    }
}

static void on_message(struct session *s, const uint8_t *data, size_t len)
{
    struct rpc_msg msg;
    char why[128];
    if (rpc_decode(data, len, &msg, why, sizeof(why)) != 0) {
        cp_warn("agents: malformed message from %s (%s): %s", s->name,
                s->peer, why);
        char reason[160];
        snprintf(reason, sizeof(reason), "malformed message: %s", why);
        session_close(s, PROTO_CLOSE_PROTOCOL, reason);
        return;
    }
    cp_trace(CP_TRACE_RPC, "rpc: <- %s kind %d %s", s->name, msg.kind,
             msg.method ? msg.method : "");
    if (msg.kind == PROTO_RESPONSE) {
        on_reply(s, &msg);
        rpc_msg_release(&msg);
        return;
    }
    if (strcmp(msg.method, PROTO_M_NODES_STATS) == 0) {
        keep_stats(s, &msg);
        rpc_msg_release(&msg);
        return;
    }
    if (strcmp(msg.method, PROTO_M_PODS_SET_STATE) == 0) {
        keep_report(s, &msg);
        rpc_msg_release(&msg);
        return;
    }
    char update_hash[65] = "";
    if (strcmp(msg.method, PROTO_M_NODES_UPDATE) == 0) {
        char *dump = cp_json_dump(msg.params);
        cp_sha256_hex(dump, strlen(dump), update_hash);
        cp_free(dump);
        if (strcmp(update_hash, s->update_hash) == 0) {
            if (msg.kind == PROTO_REQUEST)
                send_response(s, msg.id, NULL, json_object());
            rpc_msg_release(&msg);
            return;
        }
    }
    agent_call_fn *fn = agent_calls_find(msg.method);
    if (fn == NULL) {
        if (msg.kind == PROTO_REQUEST)
            send_response(s, msg.id,
                          rpc_error(PROTO_ERR_NOT_IMPLEMENTED,
                                    "service not implemented"),
                          NULL);
        else
            cp_debug("agents: unknown notification %s from %s", msg.method,
                     s->name);
        rpc_msg_release(&msg);
        return;
    }
    struct call_job *j = cp_calloc(1, sizeof(*j));
    j->fn = fn;
    j->c.s = s;
    j->c.m = s->hub->m;
    j->c.cfg = s->hub->cfg;
    memcpy(j->c.row_id, s->row_id, sizeof(j->c.row_id));
    memcpy(j->c.grid_id, s->grid_id, sizeof(j->c.grid_id));
    j->c.gen = s->gen;
    j->c.is_request = msg.kind == PROTO_REQUEST;
    j->c.id = msg.id;
    memcpy(j->c.update_hash, update_hash, sizeof(update_hash));
    j->c.params = msg.params;
    msg.params = NULL;
    rpc_msg_release(&msg);
    s->refs++;
    master_queue(s->hub->m, call_work, call_done, j);
}

/* ==== WebSocket callbacks ==== */

static void keep_early(struct session *s, const uint8_t *data, size_t len)
{
    if (s->nearly >= EARLY_MAX) {
        session_close(s, PROTO_CLOSE_PROTOCOL,
                      "too many messages before the connection was "
                      "accepted");
        return;
    }
    struct early *e = cp_malloc(sizeof(*e) + len);
    e->next = NULL;
    e->len = len;
    memcpy(e->data, data, len);
    if (s->early_tail)
        s->early_tail->next = e;
    else
        s->early_head = e;
    s->early_tail = e;
    s->nearly++;
}

/* Runs the frames kept while the session was checked, in order. */
static void run_early(struct session *s)
{
    while (s->early_head != NULL && s->state == SESS_OPEN) {
        struct early *e = s->early_head;
        s->early_head = e->next;
        if (s->early_head == NULL)
            s->early_tail = NULL;
        s->nearly--;
        on_message(s, e->data, e->len);
        cp_free(e);
    }
}

static void on_ws(h2o_websocket_conn_t *ws,
                  const struct wslay_event_on_msg_recv_arg *arg)
{
    struct session *s = ws->data;
    if (s == NULL) {
        h2o_websocket_close(ws);
        return;
    }
    if (arg == NULL) {
        session_gone(s);
        return;
    }
    switch (arg->opcode) {
    case WSLAY_PONG:
        if (s->state == SESS_OPEN) {
            s->ping_sent = 0;
            s->seen_at = cp_now_ms();
            s->seen_dirty = true;
        }
        return;
    case WSLAY_PING:
    case WSLAY_CONNECTION_CLOSE:
        return; /* wslay answers these itself */
    case WSLAY_TEXT_FRAME:
        if (s->state == SESS_OPEN)
            session_close(s, PROTO_CLOSE_PROTOCOL,
                          "text frames are not part of the protocol");
        return;
    case WSLAY_BINARY_FRAME:
        if (s->state == SESS_OPEN)
            on_message(s, arg->msg, arg->msg_length);
        else if (s->state == SESS_CHECKING)
            keep_early(s, arg->msg, arg->msg_length);
        return;
    default:
        return;
    }
}

static char *req_header(h2o_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i != req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == n &&
            h2o_lcstris(h->name->base, h->name->len, name, n)) {
            if (h->value.len == 0 || h->value.len > HEADER_MAX)
                return NULL;
            return cp_strndup(h->value.base, h->value.len);
        }
    }
    return NULL;
}

void agents_upgrade(struct agents *a, h2o_req_t *req, const char *client_key)
{
    struct session *s = cp_calloc(1, sizeof(*s));
    s->hub = a;
    s->state = SESS_CHECKING;
    s->h_node_id = req_header(req, PROTO_H_NODE_ID);
    s->h_name = req_header(req, PROTO_H_NODE_NAME);
    s->h_version = req_header(req, PROTO_H_VERSION);
    s->h_labels = req_header(req, PROTO_H_NODE_LABELS);
    s->h_connected_at = req_header(req, PROTO_H_CONNECTED_AT);
    s->h_grid_token = req_header(req, PROTO_H_GRID_TOKEN);
    s->h_node_token = req_header(req, PROTO_H_NODE_TOKEN);
    s->peer = http_client_ip(req, &a->m->cfg.proxies);
    s->next = a->all;
    if (a->all)
        a->all->prev = s;
    a->all = s;

    char at[PROTO_TIME_FORMAT_LEN + 8];
    rpc_format_time(cp_now_ms(), at, sizeof(at));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("kontena-version"), 0, NULL,
                          H2O_STRLIT(KONTENA_VERSION));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("kontena-connected-at"), 0, NULL, at,
                          strlen(at));
    s->ws = h2o_upgrade_to_websocket(req, client_key, s, on_ws);
    wslay_event_config_set_max_recv_msg_length(s->ws->ws_ctx,
                                               PROTO_MAX_MESSAGE);

    /* Step 1 of spec 4.2: the version; step 2 starts with the headers. */
    if (s->h_version == NULL || !same_minor(s->h_version, KONTENA_VERSION)) {
        cp_warn("agents: refused agent %s from %s: version %s is not "
                "compatible with %s",
                s->h_name ? s->h_name : "?", s->peer,
                s->h_version ? s->h_version : "(none)", KONTENA_VERSION);
        send_notify(s, PROTO_M_MASTER_INFO,
                    json_pack("[{s:s}]", "version", KONTENA_VERSION));
        s->state = SESS_CHECKING; /* send_notify needs a live state */
        session_close(s, PROTO_CLOSE_BAD_VERSION,
                      "agent version is not compatible with the master");
        return;
    }
    if (s->h_node_id == NULL || s->h_name == NULL) {
        session_close(s, PROTO_CLOSE_MISSING_HEADERS,
                      "missing Kontena-Node-Id or Kontena-Node-Name");
        return;
    }
    start_accept(s);
}

/* ==== Keepalive and last-seen ==== */

struct seen_job {
    struct agents *a;
    size_t n;
    struct store_node_seen *v;
    char (*ids)[STORE_ID_LEN + 1];
    int rc;
};

static void seen_work(void *ctx)
{
    struct seen_job *j = ctx;
    j->rc = ST_CALL(j->a->m->store, nodes_seen, j->v, j->n);
}

static void seen_done(void *ctx)
{
    struct seen_job *j = ctx;
    if (j->rc == 0) {
        for (size_t i = 0; i < j->n; i++) {
            if (j->v[i].ok)
                continue;
            struct session *s = find(j->a, j->ids[i]);
            if (s != NULL && s->gen == j->v[i].conn_gen)
                session_close(s, PROTO_CLOSE_SUPERSEDED,
                              "node has a newer connection or was removed");
        }
    }
    j->a->flushing = false;
    cp_free(j->v);
    cp_free(j->ids);
    cp_free(j);
}

/* Writes the last-seen times gathered since the last flush, in one
 * transaction. */
static void flush_seen(struct agents *a)
{
    size_t n = 0;
    for (struct session *s = a->all; s; s = s->next)
        n += s->state == SESS_OPEN && s->seen_dirty;
    if (n == 0 || a->flushing)
        return;
    struct seen_job *j = cp_calloc(1, sizeof(*j));
    j->a = a;
    j->v = cp_calloc(n, sizeof(*j->v));
    j->ids = cp_calloc(n, sizeof(*j->ids));
    for (struct session *s = a->all; s && j->n < n; s = s->next) {
        if (s->state != SESS_OPEN || !s->seen_dirty)
            continue;
        memcpy(j->ids[j->n], s->row_id, sizeof(j->ids[0]));
        j->v[j->n].id = j->ids[j->n];
        j->v[j->n].conn_gen = s->gen;
        j->v[j->n].at = s->seen_at;
        s->seen_dirty = false;
        j->n++;
    }
    a->flushing = true;
    master_queue(a->m, seen_work, seen_done, j);
}

struct stats_job {
    struct agents *a;
    struct stats_entry *v;
    size_t n;
    int rc;
};

static void stats_work(void *ctx)
{
    struct stats_job *j = ctx;
    struct store_node_stats *w = cp_calloc(j->n, sizeof(*w));
    for (size_t i = 0; i < j->n; i++) {
        w[i].id = j->v[i].row_id;
        w[i].stats = j->v[i].stats;
        w[i].at = j->v[i].at;
    }
    j->rc = ST_CALL(j->a->m->store, nodes_add_stats, w, j->n,
                    j->a->cfg.stats_keep);
    cp_free(w);
}

static void stats_done(void *ctx)
{
    struct stats_job *j = ctx;
    if (j->rc != 0)
        cp_warn("agents: writing %zu node stats failed: %s", j->n,
                cp_strerror(j->rc));
    for (size_t i = 0; i < j->n; i++)
        json_decref(j->v[i].stats);
    cp_free(j->v);
    j->a->stats_flushing = false;
    cp_free(j);
}

static void flush_stats(struct agents *a)
{
    if (a->nstats == 0 || a->stats_flushing)
        return;
    struct stats_job *j = cp_calloc(1, sizeof(*j));
    j->a = a;
    j->v = a->stats;
    j->n = a->nstats;
    a->stats = NULL;
    a->nstats = a->cap_stats = 0;
    a->stats_dropped = false;
    a->stats_flushing = true;
    master_queue(a->m, stats_work, stats_done, j);
}

static void on_tick(uv_timer_t *t)
{
    struct agents *a = t->data;
    int64_t now = cp_mono_ms();
    struct session *next;
    for (struct session *s = a->all; s; s = next) {
        next = s->next;
        if (s->state == SESS_CLOSING && now >= s->close_deadline) {
            session_gone(s);
            continue;
        }
        if (s->state == SESS_CLOSING)
            queue_close(s);
        if (s->state != SESS_OPEN)
            continue;
        for (int i = 0; s->npend > 0 && i < PROTO_MAX_OUTSTANDING; i++) {
            struct pending *p = &s->pend[i];
            if (p->used && now >= p->deadline) {
                p->used = false;
                s->npend--;
                json_t *err = rpc_error(PROTO_ERR_TIMEOUT,
                                        "agent did not answer in time");
                p->cb(p->ctx, err, NULL);
                json_decref(err);
            }
        }
        if (s->ping_sent != 0 &&
            now - s->ping_sent >= a->cfg.pong_timeout_ms) {
            session_close(s, PROTO_CLOSE_PING_TIMEOUT,
                          "no pong within the keepalive timeout");
            continue;
        }
        if (s->ping_sent == 0 &&
            now - s->last_ping >= a->cfg.ping_interval_ms && s->ws) {
            struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
            wslay_event_queue_msg(s->ws->ws_ctx, &ping);
            s->ping_sent = now;
            s->last_ping = now;
            proceed(s);
        }
    }
    if (now - a->last_flush >= a->cfg.seen_flush_ms) {
        a->last_flush = now;
        flush_seen(a);
        flush_stats(a);
    }
}

/* ==== Public API ==== */

struct agents *agents_new(struct master *m, const struct agents_config *c)
{
    struct agents *a = cp_calloc(1, sizeof(*a));
    a->m = m;
    a->cfg = *c;
    a->last_flush = cp_mono_ms();
    uv_timer_init(m->loop, &a->tick);
    a->tick.data = a;
    /* The tick walks every session: with 10,000 agents a 250 ms tick was
     * most of the idle CPU. A second is fine for timeouts counted in
     * seconds; tests with sub-second pings get a finer tick. */
    int tick = c->ping_interval_ms < 1000   ? 100
               : c->ping_interval_ms < 5000 ? 250
                                            : 1000;
    uv_timer_start(&a->tick, on_tick, (uint64_t)tick, (uint64_t)tick);
    uv_timer_init(m->loop, &a->reports_timer);
    a->reports_timer.data = a;
    return a;
}

void agents_free(struct agents *a)
{
    if (a == NULL)
        return;
    while (a->all != NULL) {
        struct session *s = a->all;
        s->refs = 0;
        s->state = SESS_GONE;
        if (s->ws != NULL) {
            s->ws->data = NULL;
            s->ws = NULL;
        }
        session_free(s);
    }
    for (size_t i = 0; i < a->nstats; i++)
        json_decref(a->stats[i].stats);
    cp_free(a->stats);
    for (size_t i = 0; i < a->nreports; i++)
        agent_state_report_release(&a->reports[i].r);
    cp_free(a->reports);
    cp_free(a);
}

void agents_close_node(struct agents *a, const char *node_row_id, int code,
                       const char *reason)
{
    struct session *s = find(a, node_row_id);
    if (s != NULL)
        session_close(s, code, reason);
}

void agents_close_all(struct agents *a, int code, const char *reason)
{
    uv_timer_stop(&a->tick);
    uv_close((uv_handle_t *)&a->tick, NULL);
    /* Reports kept so far are written and answered before the sockets
     * close; the timer goes (a later flush re-arms nothing). */
    a->reports_timer_on = true;
    uv_timer_stop(&a->reports_timer);
    uv_close((uv_handle_t *)&a->reports_timer, NULL);
    flush_reports(a);
    for (struct session *s = a->all; s; s = s->next) {
        if (s->state == SESS_OPEN || s->state == SESS_CHECKING)
            session_close(s, code, reason);
    }
}

int agents_count(const struct agents *a)
{
    return a->open_count;
}

int agents_request(struct agents *a, const char *node_row_id,
                   const char *method, json_t *params, int timeout_ms,
                   agents_reply_fn *cb, void *ctx)
{
    struct session *s = find(a, node_row_id);
    if (s == NULL) {
        json_decref(params);
        return CP_ENOTFOUND;
    }
    struct pending *slot = NULL;
    if (s->pend == NULL)
        s->pend = cp_calloc(PROTO_MAX_OUTSTANDING, sizeof(*s->pend));
    for (int i = 0; i < PROTO_MAX_OUTSTANDING && slot == NULL; i++) {
        if (!s->pend[i].used)
            slot = &s->pend[i];
    }
    if (slot == NULL) {
        json_decref(params);
        return CP_EAGAIN;
    }
    uint32_t id = ++s->next_id;
    if (id == 0)
        id = ++s->next_id;
    slot->used = true;
    s->npend++;
    slot->id = id;
    slot->deadline = cp_mono_ms() + timeout_ms;
    slot->cb = cb;
    slot->ctx = ctx;
    char *buf;
    size_t len;
    rpc_encode_request(id, method, params, &buf, &len);
    json_decref(params);
    send_frame(s, buf, len);
    return 0;
}

int agents_notify(struct agents *a, const char *node_row_id,
                  const char *method, json_t *params)
{
    struct session *s = find(a, node_row_id);
    if (s == NULL) {
        json_decref(params);
        return CP_ENOTFOUND;
    }
    send_notify(s, method, params);
    return 0;
}

struct info_job {
    struct agents *a;
    char grid_id[STORE_ID_LEN + 1];
    char node_id[STORE_ID_LEN + 1];
    struct store_node_list nodes;
    struct store_grid grid;
    int rc;
};

static void info_work(void *ctx)
{
    struct info_job *j = ctx;
    struct store *st = j->a->m->store;
    j->rc = ST_CALL(st, grid_get_by_id, j->grid_id, &j->grid);
    if (j->rc == 0)
        j->rc = ST_CALL(st, node_list, j->grid_id, &j->nodes);
}

static void info_done(void *ctx)
{
    struct info_job *j = ctx;
    for (size_t i = 0; j->rc == 0 && i < j->nodes.len; i++) {
        struct store_node *n = &j->nodes.items[i];
        if (j->node_id[0] != '\0' && strcmp(j->node_id, n->id) != 0)
            continue;
        struct session *s = find(j->a, n->id);
        if (s != NULL)
            send_notify(s, PROTO_M_NODE_INFO,
                        json_pack("[o]", nodes_info_json(n, &j->grid)));
    }
    store_node_list_release(&j->nodes);
    store_grid_release(&j->grid);
    cp_free(j);
}

void agents_push_node_info(struct agents *a, const char *grid_id,
                           const char *node_row_id)
{
    struct info_job *j = cp_calloc(1, sizeof(*j));
    j->a = a;
    snprintf(j->grid_id, sizeof(j->grid_id), "%s", grid_id);
    if (node_row_id != NULL)
        snprintf(j->node_id, sizeof(j->node_id), "%s", node_row_id);
    master_queue(a->m, info_work, info_done, j);
}
