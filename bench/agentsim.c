/* agentsim: N simulated Kontena agents against a real master, on one
 * libuv loop in one thread (bench/agents drives it).
 *
 * Each agent is one TCP connection that does the HTTP/1.1 WebSocket
 * upgrade on "/" with the Kontena handshake headers (spec 4.2), then
 * speaks WebSocket through wslay (client mode, masked) carrying
 * MessagePack-RPC frames made by src/common/rpc.c (spec 4.3):
 *   - on open: request /nodes/update, again every --update-interval s
 *   - notification /nodes/stats every --stats-interval s
 *   - its own ping every --ping-interval s, timing the pong
 *   - answers /service_pods/notify_update with {} and any other request
 *     with error 501; takes /agent/master_info and /agent/node_info
 *   - with -P (pods mode, bench/deploy) it also plays the agent's pod
 *     side (spec 4.5): /service_pods/notify_update (request or notify)
 *     makes it pull /node_service_pods/list [node_id], and for every pod
 *     whose deploy_rev/desired state it has not reported yet it at once
 *     sends /node_service_pods/set_state [node_id, {service_id,
 *     instance_number, rev: deploy_rev, state: running|stopped, error:
 *     null}] - no containers, so this is the master's side of a deploy
 *     with an infinitely fast engine. It also pulls every -L s (30).
 *     One list call per agent is in flight at a time; a notify that
 *     arrives meanwhile queues one more pull.
 * An agent counts as accepted when it has both the 101 and the response
 * to its first /nodes/update. At most --concurrency agents are between
 * connect() and accepted at any time.
 *
 * Output (stdout):
 *   READY accepted=A failed=F connect_ms=T    once every agent settled
 *   SNAP  ...counters...                      on SIGUSR1
 *   a human report, then one "RESULT k=v ..." line, on SIGTERM/SIGINT
 *   or after --duration seconds past READY.
 * SPDX-License-Identifier: Apache-2.0 */
#include "../src/common/alloc.h"
#include "../src/common/proto.h"
#include "../src/common/rpc.h"
#include "../src/common/util.h"
#include "../src/common/version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>
#include <wslay/wslay.h>

#define HTTP_MAX 8192
#define READ_BUF (64 * 1024)
#define MAX_LABELS 128
#define TICK_MS 100
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum agent_state {
    AG_IDLE,     /* not started */
    AG_CONNECT,  /* TCP connect in progress */
    AG_UPGRADE,  /* request sent, waiting for 101 */
    AG_OPEN,     /* 101 received, waiting for the /nodes/update answer */
    AG_ACCEPTED, /* both */
    AG_CLOSING,  /* uv_close called */
    AG_DONE,
};

struct agent {
    struct sim *sim;
    int idx;
    enum agent_state state;
    bool settled; /* counted as accepted or failed for the ramp */
    bool was_accepted;
    uv_tcp_t tcp;
    uv_connect_t creq;
    char key[32];
    char *http;
    size_t http_len;
    wslay_event_context_ptr ws;
    const uint8_t *in; /* bytes for wslay's recv callback */
    size_t in_len;
    int64_t started_us;
    uint32_t next_id;
    uint32_t update_id; /* the /nodes/update in flight, 0 = none */
    int64_t update_sent_us;
    int64_t next_update_us, next_stats_us, next_ping_us;
    int64_t ping_sent_us; /* 0 = no ping in flight */
    bool failure_noted;
    bool resent_on_info;
    /* pods mode */
    uint32_t list_id; /* the /node_service_pods/list in flight, 0 = none */
    bool list_again;  /* a notify arrived while it was in flight */
    int64_t next_pull_us;
    int set_pending; /* set_state requests without an answer */
    struct podrep *reps;
    int nreps, capreps;
};

/* What an agent last reported for one pod. */
struct podrep {
    char service_id[40];
    int instance_number;
    char rev[40];
    bool running;
};

/* Failure and close tallies: one row per distinct label. */
struct tally {
    char label[96];
    char example[128];
    long count;
};

struct samples {
    uint32_t *v; /* microseconds */
    size_t len, cap;
};

struct sim {
    uv_loop_t *loop;
    struct sockaddr_in addr;
    const char *host_header;
    char **tokens;
    int ntokens;
    int per_grid;
    int n;
    int concurrency;
    double update_s, stats_s, ping_s, duration_s;
    double accept_timeout_s, resend_s, ping_timeout_s;
    char run_tag[5];
    struct agent *agents;
    int next_open;
    int in_flight;
    int accepted, failed, open_now;
    int64_t t0_us, ready_us;
    bool ready, stopping;
    struct tally tallies[MAX_LABELS];
    int ntallies;
    struct samples rtt_ramp, rtt_steady, accept_lat;
    long msgs_out, msgs_in, bytes_in, bytes_out;
    long updates_sent, update_resends, update_errors, stats_sent;
    long pings_sent, pings_lost, master_info, node_info, master_requests;
    long unknown_in, update_resends_info;
    bool resend_on_info;
    /* pods mode */
    bool pods;
    double pull_s;
    long pod_notifies, lists_sent, lists_ok, list_errors, pods_seen;
    long sets_sent, sets_ok, set_errors, sets_running, sets_stopped;
    int64_t first_set_us, last_set_us, last_set_ok_us;
    uv_timer_t tick;
    uv_signal_t sig_term, sig_int, sig_usr1;
    uint64_t rng;
    uint8_t rbuf[READ_BUF];
};

static int64_t now_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

static uint64_t rnd(struct sim *s)
{
    /* xorshift64*: masks and jitter, not secrets. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

static int64_t jitter_us(struct sim *s, double secs)
{
    uint64_t span = (uint64_t)(secs * 1e6);
    return span ? (int64_t)(rnd(s) % span) : 0;
}

/* ==== Tallies and samples ==== */

static void tally(struct sim *s, const char *label, const char *example)
{
    struct tally *t = NULL;
    for (int i = 0; i < s->ntallies; i++) {
        if (strcmp(s->tallies[i].label, label) == 0)
            t = &s->tallies[i];
    }
    if (t == NULL) {
        t = &s->tallies[s->ntallies < MAX_LABELS ? s->ntallies++
                                                 : MAX_LABELS - 1];
        snprintf(t->label, sizeof(t->label), "%s", label);
        snprintf(t->example, sizeof(t->example), "%s", example ? example : "");
    }
    t->count++;
}

static void sample(struct samples *v, int64_t us)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->v = cp_realloc(v->v, v->cap * sizeof(*v->v));
    }
    v->v[v->len++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(struct samples *v, double p)
{
    if (v->len == 0)
        return -1;
    qsort(v->v, v->len, sizeof(*v->v), cmp_u32);
    size_t i = (size_t)(p / 100.0 * (double)(v->len - 1) + 0.5);
    return v->v[i] / 1000.0;
}

/* ==== Ramp ==== */

static void open_more(struct sim *s);

static void check_ready(struct sim *s)
{
    if (s->ready || s->accepted + s->failed < s->n)
        return;
    s->ready = true;
    s->ready_us = now_us();
    printf("READY accepted=%d failed=%d connect_ms=%.0f\n", s->accepted,
           s->failed, (double)(s->ready_us - s->t0_us) / 1000.0);
    fflush(stdout);
}

/* The agent leaves the ramp: accepted, or failed for good. */
static void settle(struct agent *a, bool ok)
{
    struct sim *s = a->sim;
    if (a->settled)
        return;
    a->settled = true;
    s->in_flight--;
    if (ok) {
        s->accepted++;
        a->was_accepted = true;
        sample(&s->accept_lat, now_us() - a->started_us);
    } else {
        s->failed++;
    }
    check_ready(s);
    open_more(s);
}

/* ==== Connection teardown ==== */

static void on_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    if (a->ws != NULL) {
        wslay_event_context_free(a->ws);
        a->ws = NULL;
    }
    cp_free(a->http);
    a->http = NULL;
    a->state = AG_DONE;
}

static const char *phase(const struct agent *a)
{
    switch (a->state) {
    case AG_CONNECT:
        return "connecting";
    case AG_UPGRADE:
        return "before 101";
    case AG_OPEN:
        return "before /nodes/update answer";
    default:
        return "after accept";
    }
}

/* Closes the socket; label says why (NULL: a close we expected). */
static void drop(struct agent *a, const char *label, const char *example)
{
    struct sim *s = a->sim;
    if (a->state == AG_CLOSING || a->state == AG_DONE || a->state == AG_IDLE)
        return;
    if (label != NULL && !a->failure_noted) {
        char l[96];
        snprintf(l, sizeof(l), "%s (%s)", label, phase(a));
        tally(s, l, example);
        a->failure_noted = true;
    }
    if (a->state == AG_ACCEPTED)
        s->open_now--;
    a->state = AG_CLOSING;
    if (!uv_is_closing((uv_handle_t *)&a->tcp))
        uv_close((uv_handle_t *)&a->tcp, on_closed);
    settle(a, false);
}

/* ==== Writing ==== */

struct wreq {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct agent *a = req->data;
    cp_free(w);
    if (status < 0 && status != UV_ECANCELED)
        drop(a, "write error", uv_strerror(status));
}

/* Writes all of buf, now or later; libuv keeps the order. */
static int put(struct agent *a, const void *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&a->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0)
        return n;
    a->sim->bytes_out += n;
    if ((size_t)n == len)
        return 0;
    size_t rest = len - (size_t)n;
    struct wreq *w = cp_malloc(sizeof(*w) + rest);
    memcpy(w->data, (const char *)buf + n, rest);
    w->req.data = a;
    b = uv_buf_init(w->data, (unsigned)rest);
    a->sim->bytes_out += (long)rest;
    int rc = uv_write(&w->req, (uv_stream_t *)&a->tcp, &b, 1, on_written);
    if (rc != 0)
        cp_free(w);
    return rc;
}

/* ==== wslay callbacks ==== */

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user)
{
    (void)flags;
    struct agent *a = user;
    if (a->state == AG_CLOSING || a->state == AG_DONE ||
        put(a, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user)
{
    (void)flags;
    struct agent *a = user;
    if (a->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < a->in_len ? len : a->in_len;
    memcpy(buf, a->in, n);
    a->in += n;
    a->in_len -= n;
    return (ssize_t)n;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user)
{
    (void)ctx;
    struct agent *a = user;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(rnd(a->sim) >> 56);
    return 0;
}

static void send_msg(struct agent *a, char *buf, size_t len)
{
    struct wslay_event_msg m = {WSLAY_BINARY_FRAME, (const uint8_t *)buf, len};
    if (wslay_event_queue_msg(a->ws, &m) == 0)
        a->sim->msgs_out++;
    cp_free(buf);
}

/* "SIM0:<run>:<idx hi>:<idx lo>:0000:..." - 12 groups like a Docker id. */
static void node_id_of(const struct agent *a, char *out, size_t len)
{
    snprintf(out, len,
             "SIM0:%s:%04X:%04X:0000:0000:0000:0000:0000:0000:0000:0000",
             a->sim->run_tag, (unsigned)(a->idx >> 16) & 0xffff,
             (unsigned)a->idx & 0xffff);
}

static void send_update(struct agent *a)
{
    struct sim *s = a->sim;
    char node_id[64], name[32], priv[32];
    node_id_of(a, node_id, sizeof(node_id));
    snprintf(name, sizeof(name), "sim-%d", a->idx);
    snprintf(priv, sizeof(priv), "10.%d.%d.%d", (a->idx >> 16) & 255,
             (a->idx >> 8) & 255, a->idx & 255);
    json_t *info = json_pack(
        "{s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:{s:[], s:[]}}",
        "ID", node_id, "Name", name, "NCPU", 2, "MemTotal",
        (json_int_t)8 * 1024 * 1024 * 1024, "OperatingSystem",
        "Debian GNU/Linux 12 (bookworm)", "KernelVersion", "6.1.0-sim",
        "AgentVersion", KONTENA_VERSION, "PublicIp", "192.0.2.1", "PrivateIp",
        priv, "DockerVersion", "24.0.7", "Drivers", "Volume", "Network");
    uint32_t id = ++a->next_id;
    char *buf;
    size_t len;
    json_t *params = json_pack("[s,o]", node_id, info);
    rpc_encode_request(id, PROTO_M_NODES_UPDATE, params, &buf, &len);
    json_decref(params);
    a->update_id = id;
    a->update_sent_us = now_us();
    s->updates_sent++;
    send_msg(a, buf, len);
}

static void send_stats(struct agent *a)
{
    char node_id[64], at[PROTO_TIME_FORMAT_LEN + 8];
    node_id_of(a, node_id, sizeof(node_id));
    cp_time_iso(cp_now_ms(), at, sizeof(at));
    json_t *stats = json_pack(
        "{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
        " s:{s:f,s:f,s:f},"
        " s:[{s:s,s:I,s:I,s:I,s:I}],"
        " s:{s:i},"
        " s:{s:i,s:f,s:f,s:f,s:f},"
        " s:{s:[{s:s,s:I,s:I}]},"
        " s:s}",
        "memory", "total", (json_int_t)8589934592, "free",
        (json_int_t)4294967296, "active", (json_int_t)2147483648, "inactive",
        (json_int_t)1073741824, "cached", (json_int_t)1073741824, "buffers",
        (json_int_t)104857600, "swap_total", (json_int_t)0, "swap_free",
        (json_int_t)0, "load", "1m", 0.1, "5m", 0.2, "15m", 0.3, "filesystem",
        "name", "/var/lib/docker", "free", (json_int_t)50000000000, "available",
        (json_int_t)48000000000, "used", (json_int_t)10000000000, "total",
        (json_int_t)60000000000, "usage", "container_seconds", 60, "cpu",
        "num_cores", 2, "system", 1.5, "user", 3.0, "nice", 0.0, "idle", 95.5,
        "network", "internal", "name", "eth0", "rx_bytes", (json_int_t)123456,
        "tx_bytes", (json_int_t)654321, "time", at);
    char *buf;
    size_t len;
    json_t *params = json_pack("[s,o]", node_id, stats);
    rpc_encode_notify(PROTO_M_NODES_STATS, params, &buf, &len);
    json_decref(params);
    a->sim->stats_sent++;
    send_msg(a, buf, len);
}

static void reply(struct agent *a, uint32_t id, json_t *error, json_t *result)
{
    char *buf;
    size_t len;
    rpc_encode_response(id, error, result, &buf, &len);
    json_decref(error);
    json_decref(result);
    send_msg(a, buf, len);
}

/* ==== Pods mode ==== */

static void pull_pods(struct agent *a)
{
    struct sim *s = a->sim;
    if (a->state != AG_ACCEPTED && a->state != AG_OPEN)
        return;
    if (a->list_id != 0) {
        a->list_again = true;
        return;
    }
    char node_id[64];
    node_id_of(a, node_id, sizeof(node_id));
    uint32_t id = ++a->next_id;
    if (id == 0)
        id = ++a->next_id;
    char *buf;
    size_t len;
    json_t *params = json_pack("[s]", node_id);
    rpc_encode_request(id, PROTO_M_PODS_LIST, params, &buf, &len);
    json_decref(params);
    a->list_id = id;
    a->list_again = false;
    s->lists_sent++;
    send_msg(a, buf, len);
}

static struct podrep *find_rep(struct agent *a, const char *sid, int num)
{
    for (int i = 0; i < a->nreps; i++)
        if (a->reps[i].instance_number == num &&
            strcmp(a->reps[i].service_id, sid) == 0)
            return &a->reps[i];
    if (a->nreps == a->capreps) {
        a->capreps = a->capreps ? a->capreps * 2 : 16;
        a->reps = cp_realloc(a->reps, (size_t)a->capreps * sizeof(*a->reps));
    }
    struct podrep *r = &a->reps[a->nreps++];
    memset(r, 0, sizeof(*r));
    snprintf(r->service_id, sizeof(r->service_id), "%s", sid);
    r->instance_number = num;
    return r;
}

static void send_set_state(struct agent *a, const char *sid, int num,
                           const char *rev, bool running)
{
    struct sim *s = a->sim;
    char node_id[64];
    node_id_of(a, node_id, sizeof(node_id));
    uint32_t id = ++a->next_id;
    if (id == 0)
        id = ++a->next_id;
    json_t *params = json_pack("[s,{s:s,s:i,s:s?,s:s,s:n}]", node_id,
                               "service_id", sid, "instance_number", num,
                               "rev", rev, "state",
                               running ? "running" : "stopped", "error");
    char *buf;
    size_t len;
    rpc_encode_request(id, PROTO_M_PODS_SET_STATE, params, &buf, &len);
    json_decref(params);
    a->set_pending++;
    s->sets_sent++;
    if (running)
        s->sets_running++;
    else
        s->sets_stopped++;
    s->last_set_us = now_us();
    if (s->first_set_us == 0)
        s->first_set_us = s->last_set_us;
    send_msg(a, buf, len);
}

/* The answer to /node_service_pods/list: report every pod whose
 * (deploy_rev, desired state) is new to this agent. */
static void on_pods(struct agent *a, const struct rpc_msg *m)
{
    struct sim *s = a->sim;
    a->list_id = 0;
    if (m->error != NULL) {
        s->list_errors++;
        char l[64];
        snprintf(l, sizeof(l), "/node_service_pods/list error %d",
                 (int)json_integer_value(json_object_get(m->error, "code")));
        tally(s, l, json_string_value(json_object_get(m->error, "message")));
    } else {
        s->lists_ok++;
        const json_t *pods = json_object_get(m->result, "service_pods");
        size_t i;
        const json_t *p;
        json_array_foreach(pods, i, p)
        {
            s->pods_seen++;
            const char *sid =
                json_string_value(json_object_get(p, "service_id"));
            json_t *nv = json_object_get(p, "instance_number");
            const char *rev = json_string_value(json_object_get(p, "deploy_rev"));
            const char *want =
                json_string_value(json_object_get(p, "desired_state"));
            if (sid == NULL || !json_is_integer(nv) || want == NULL)
                continue;
            bool running = strcmp(want, "running") == 0;
            if (!running && strcmp(want, "stopped") != 0)
                continue; /* initialized: nothing to report */
            int num = (int)json_integer_value(nv);
            struct podrep *r = find_rep(a, sid, num);
            const char *rv = rev != NULL && rev[0] != '\0' ? rev : "-";
            if (r->rev[0] != '\0' && strcmp(r->rev, rv) == 0 &&
                r->running == running)
                continue;
            snprintf(r->rev, sizeof(r->rev), "%s", rv);
            r->running = running;
            send_set_state(a, sid, num, rev, running);
        }
    }
    if (a->list_again)
        pull_pods(a);
}

static void on_set_state_answer(struct agent *a, const struct rpc_msg *m)
{
    struct sim *s = a->sim;
    a->set_pending--;
    if (m->error != NULL) {
        s->set_errors++;
        char l[64];
        snprintf(l, sizeof(l), "/node_service_pods/set_state error %d",
                 (int)json_integer_value(json_object_get(m->error, "code")));
        tally(s, l, json_string_value(json_object_get(m->error, "message")));
    } else {
        s->sets_ok++;
        s->last_set_ok_us = now_us();
    }
}

static void on_rpc(struct agent *a, const uint8_t *data, size_t len)
{
    struct sim *s = a->sim;
    struct rpc_msg m;
    char why[128];
    if (rpc_decode(data, len, &m, why, sizeof(why)) != 0) {
        tally(s, "undecodable frame from master", why);
        return;
    }
    if (m.kind == PROTO_RESPONSE) {
        if (s->pods && a->list_id != 0 && m.id == a->list_id) {
            on_pods(a, &m);
        } else if (s->pods && m.id != a->update_id && a->set_pending > 0) {
            on_set_state_answer(a, &m);
        } else if (m.id == a->update_id) {
            a->update_id = 0;
            if (m.error != NULL) {
                s->update_errors++;
                char l[64];
                json_t *c = json_object_get(m.error, "code");
                snprintf(l, sizeof(l), "/nodes/update error %d",
                         (int)json_integer_value(c));
                const char *msg =
                    json_string_value(json_object_get(m.error, "message"));
                tally(s, l, msg);
                if (a->state == AG_OPEN) {
                    a->failure_noted = true;
                    settle(a, false);
                }
            } else if (a->state == AG_OPEN) {
                a->state = AG_ACCEPTED;
                s->open_now++;
                int64_t t = now_us();
                a->next_update_us = t + (int64_t)(s->update_s * 1e6);
                a->next_stats_us = t + jitter_us(s, s->stats_s);
                a->next_ping_us = t + jitter_us(s, s->ping_s);
                a->next_pull_us = t + jitter_us(s, s->pull_s);
                settle(a, true);
            }
        } else {
            s->unknown_in++;
        }
    } else if (m.kind == PROTO_NOTIFY) {
        if (strcmp(m.method, PROTO_M_MASTER_INFO) == 0) {
            s->master_info++;
            /* master_info marks acceptance. The master keeps frames that
             * arrive while it checks the handshake and answers them right
             * after master_info and node_info; with -W 1 an update still
             * unanswered now is sent again anyway (a check on masters
             * that drop early frames). */
            if (s->resend_on_info && a->state == AG_OPEN && a->update_id != 0 &&
                !a->resent_on_info) {
                a->resent_on_info = true;
                s->update_resends_info++;
                send_update(a);
            }
        } else if (strcmp(m.method, PROTO_M_NODE_INFO) == 0) {
            s->node_info++;
        } else if (strcmp(m.method, PROTO_M_PODS_NOTIFY) == 0) {
            s->pod_notifies++;
            if (s->pods)
                pull_pods(a);
        } else {
            s->unknown_in++;
        }
    } else {
        s->master_requests++;
        if (strcmp(m.method, PROTO_M_PODS_NOTIFY) == 0) {
            reply(a, m.id, NULL, json_object());
            s->pod_notifies++;
            if (s->pods)
                pull_pods(a);
        } else
            reply(
                a, m.id,
                rpc_error(PROTO_ERR_NOT_IMPLEMENTED, "service not implemented"),
                NULL);
    }
    rpc_msg_release(&m);
}

static void ws_on_msg(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    struct agent *a = user;
    struct sim *s = a->sim;
    switch (arg->opcode) {
    case WSLAY_BINARY_FRAME:
        s->msgs_in++;
        on_rpc(a, arg->msg, arg->msg_length);
        break;
    case WSLAY_TEXT_FRAME:
        s->msgs_in++;
        tally(s, "text frame from master", NULL);
        break;
    case WSLAY_PONG:
        if (a->ping_sent_us != 0) {
            int64_t rtt = now_us() - a->ping_sent_us;
            sample(s->ready ? &s->rtt_steady : &s->rtt_ramp, rtt);
            a->ping_sent_us = 0;
        }
        break;
    case WSLAY_CONNECTION_CLOSE: {
        char l[64], ex[128];
        snprintf(l, sizeof(l), "close %u", arg->status_code);
        size_t rl = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
        snprintf(ex, sizeof(ex), "%.*s", (int)(rl < 120 ? rl : 120),
                 rl ? (const char *)arg->msg + 2 : "");
        if (!a->failure_noted) {
            char full[96];
            snprintf(full, sizeof(full), "%s (%s)", l, phase(a));
            tally(s, full, ex);
            a->failure_noted = true;
        }
        break;
    }
    default:
        break;
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_recv, ws_send, ws_genmask, NULL, NULL, NULL, ws_on_msg,
};

/* Sends what wslay has queued; closes once both directions are done. */
static void pump(struct agent *a)
{
    if (a->ws == NULL || a->state == AG_CLOSING || a->state == AG_DONE)
        return;
    if (wslay_event_want_write(a->ws) && wslay_event_send(a->ws) != 0) {
        drop(a, "websocket send failed", NULL);
        return;
    }
    if (!wslay_event_want_read(a->ws) && !wslay_event_want_write(a->ws))
        drop(a, "closed by master", NULL);
}

static void feed_ws(struct agent *a, const uint8_t *data, size_t len)
{
    a->in = data;
    a->in_len = len;
    int rc = wslay_event_recv(a->ws);
    a->in_len = 0;
    if (rc != 0) {
        drop(a, "websocket protocol error", NULL);
        return;
    }
    pump(a);
}

/* ==== HTTP upgrade ==== */

static void start_ws(struct agent *a)
{
    wslay_event_context_client_init(&a->ws, &ws_callbacks, a);
    wslay_event_config_set_max_recv_msg_length(a->ws, PROTO_MAX_MESSAGE);
    a->state = AG_OPEN;
    send_update(a);
    pump(a);
}

static bool header_is(const char *hdrs, const char *name, const char *want)
{
    size_t n = strlen(name);
    for (const char *p = strstr(hdrs, "\r\n"); p != NULL;
         p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            l += n + 1;
            while (*l == ' ')
                l++;
            return strncmp(l, want, strlen(want)) == 0;
        }
    }
    return false;
}

static void on_http(struct agent *a, const char *data, size_t len)
{
    if (a->http_len + len > HTTP_MAX) {
        drop(a, "upgrade response too long", NULL);
        return;
    }
    if (a->http == NULL)
        a->http = cp_malloc(HTTP_MAX + 1);
    memcpy(a->http + a->http_len, data, len);
    a->http_len += len;
    a->http[a->http_len] = '\0';
    char *end = strstr(a->http, "\r\n\r\n");
    if (end == NULL)
        return;
    *end = '\0';
    int status = 0;
    if (sscanf(a->http, "HTTP/1.%*d %d", &status) != 1 || status != 101) {
        char l[64];
        snprintf(l, sizeof(l), "http %d", status);
        char *eol = strstr(a->http, "\r\n");
        if (eol)
            *eol = '\0';
        drop(a, l, a->http);
        return;
    }
    unsigned char md[SHA_DIGEST_LENGTH];
    char in[96], want[64];
    snprintf(in, sizeof(in), "%s" WS_GUID, a->key);
    SHA1((const unsigned char *)in, strlen(in), md);
    EVP_EncodeBlock((unsigned char *)want, md, sizeof(md));
    if (!header_is(a->http, "Sec-WebSocket-Accept", want)) {
        drop(a, "bad Sec-WebSocket-Accept", NULL);
        return;
    }
    if (!header_is(a->http, "Kontena-Version", "") ||
        !header_is(a->http, "Kontena-Connected-At", ""))
        tally(a->sim, "101 without Kontena-Version/Connected-At", NULL);
    size_t used = (size_t)(end + 4 - a->http);
    size_t rest = a->http_len - used;
    uint8_t tail[HTTP_MAX];
    memcpy(tail, end + 4, rest);
    cp_free(a->http);
    a->http = NULL;
    a->http_len = 0;
    start_ws(a);
    if (rest > 0 && a->state == AG_OPEN)
        feed_ws(a, tail, rest);
}

/* ==== libuv callbacks ==== */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct agent *a = h->data;
    *buf = uv_buf_init((char *)a->sim->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct agent *a = st->data;
    if (n == 0)
        return;
    if (n < 0) {
        if (a->ws != NULL && wslay_event_get_close_received(a->ws))
            drop(a, NULL, NULL);
        else
            drop(a, n == UV_EOF ? "eof without close frame" : "read error",
                 n == UV_EOF ? NULL : uv_strerror((int)n));
        return;
    }
    a->sim->bytes_in += n;
    if (a->state == AG_UPGRADE)
        on_http(a, buf->base, (size_t)n);
    else if (a->ws != NULL)
        feed_ws(a, (const uint8_t *)buf->base, (size_t)n);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct agent *a = req->data;
    struct sim *s = a->sim;
    if (a->state != AG_CONNECT)
        return;
    if (status < 0) {
        char l[64];
        snprintf(l, sizeof(l), "connect %s", uv_err_name(status));
        drop(a, l, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&a->tcp, 1);
    uint8_t raw[16];
    for (int i = 0; i < 16; i++)
        raw[i] = (uint8_t)(rnd(s) >> 56);
    EVP_EncodeBlock((unsigned char *)a->key, raw, sizeof(raw));
    char at[PROTO_TIME_FORMAT_LEN + 8], node_id[64];
    rpc_format_time(cp_now_ms(), at, sizeof(at));
    node_id_of(a, node_id, sizeof(node_id));
    const char *token = s->tokens[(a->idx / s->per_grid) % s->ntokens];
    char req_text[1024];
    int len = snprintf(req_text, sizeof(req_text),
                       "GET / HTTP/1.1\r\n"
                       "Host: %s\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Kontena-Node-Id: %s\r\n"
                       "Kontena-Node-Name: sim-%d\r\n"
                       "Kontena-Version: %s\r\n"
                       "Kontena-Node-Labels: sim,bench\r\n"
                       "Kontena-Connected-At: %s\r\n"
                       "Kontena-Grid-Token: %s\r\n"
                       "\r\n",
                       s->host_header, a->key, node_id, a->idx, KONTENA_VERSION,
                       at, token);
    a->state = AG_UPGRADE;
    int rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = put(a, req_text, (size_t)len);
    if (rc != 0)
        drop(a, "send upgrade", uv_strerror(rc));
}

static void start_agent(struct sim *s, struct agent *a)
{
    a->sim = s;
    a->state = AG_CONNECT;
    a->started_us = now_us();
    a->next_id = (uint32_t)(rnd(s) & 0xffffff);
    s->in_flight++;
    uv_tcp_init(s->loop, &a->tcp);
    a->tcp.data = a;
    a->creq.data = a;
    int rc = uv_tcp_connect(&a->creq, &a->tcp,
                            (const struct sockaddr *)&s->addr, on_connect);
    if (rc != 0) {
        char l[64];
        snprintf(l, sizeof(l), "connect %s", uv_err_name(rc));
        drop(a, l, uv_strerror(rc));
    }
}

static void open_more(struct sim *s)
{
    while (!s->stopping && s->next_open < s->n &&
           s->in_flight < s->concurrency) {
        struct agent *a = &s->agents[s->next_open];
        a->idx = s->next_open++;
        start_agent(s, a);
    }
}

/* ==== Schedule ==== */

static void print_snap(struct sim *s, const char *tag)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%s t_ms=%.0f open=%d accepted=%d failed=%d msgs_out=%ld "
           "msgs_in=%ld pings=%ld pongs=%zu pings_lost=%ld sim_cpu_s=%.2f",
           tag, (double)(now_us() - s->t0_us) / 1000.0, s->open_now,
           s->accepted, s->failed, s->msgs_out, s->msgs_in, s->pings_sent,
           s->rtt_ramp.len + s->rtt_steady.len, s->pings_lost, cpu);
    if (s->pods)
        printf(" pod_notifies=%ld lists=%ld lists_ok=%ld list_errors=%ld "
               "pods_seen=%ld sets=%ld sets_ok=%ld set_errors=%ld "
               "first_set_ms=%.0f last_set_ms=%.0f last_set_ok_ms=%.0f",
               s->pod_notifies, s->lists_sent, s->lists_ok, s->list_errors,
               s->pods_seen, s->sets_sent, s->sets_ok, s->set_errors,
               s->first_set_us ? (double)(s->first_set_us - s->t0_us) / 1e3 : -1,
               s->last_set_us ? (double)(s->last_set_us - s->t0_us) / 1e3 : -1,
               s->last_set_ok_us ? (double)(s->last_set_ok_us - s->t0_us) / 1e3
                                 : -1);
    printf("\n");
    fflush(stdout);
}

static void stop(struct sim *s);

static void on_tick(uv_timer_t *t)
{
    struct sim *s = t->data;
    int64_t now = now_us();
    for (int i = 0; i < s->next_open; i++) {
        struct agent *a = &s->agents[i];
        if (a->state == AG_CLOSING || a->state == AG_DONE)
            continue;
        if (a->state != AG_ACCEPTED) {
            if (now - a->started_us > (int64_t)(s->accept_timeout_s * 1e6)) {
                drop(a, "accept timeout", NULL);
                continue;
            }
            /* The update may have been dropped by the master: say so and
             * send it again (a real agent would wait update_interval). */
            if (a->state == AG_OPEN && a->update_id != 0 &&
                now - a->update_sent_us > (int64_t)(s->resend_s * 1e6)) {
                s->update_resends++;
                send_update(a);
                pump(a);
            }
            continue;
        }
        if (now >= a->next_update_us) {
            a->next_update_us = now + (int64_t)(s->update_s * 1e6);
            send_update(a);
        }
        if (now >= a->next_stats_us) {
            a->next_stats_us = now + (int64_t)(s->stats_s * 1e6);
            send_stats(a);
        }
        if (s->pods && now >= a->next_pull_us) {
            a->next_pull_us = now + (int64_t)(s->pull_s * 1e6);
            pull_pods(a);
        }
        if (a->ping_sent_us != 0 &&
            now - a->ping_sent_us > (int64_t)(s->ping_timeout_s * 1e6)) {
            s->pings_lost++;
            a->ping_sent_us = 0;
        }
        if (s->ping_s > 0 && a->ping_sent_us == 0 && now >= a->next_ping_us) {
            struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"sim", 3};
            if (wslay_event_queue_msg(a->ws, &m) == 0) {
                a->ping_sent_us = now_us();
                s->pings_sent++;
            }
            a->next_ping_us = now + (int64_t)(s->ping_s * 1e6);
        }
        pump(a);
    }
    if (s->ready && s->duration_s > 0 &&
        now - s->ready_us > (int64_t)(s->duration_s * 1e6))
        stop(s);
}

/* ==== Report ==== */

static void report(struct sim *s)
{
    print_snap(s, "SNAP");
    double connect_ms =
        s->ready ? (double)(s->ready_us - s->t0_us) / 1000.0 : -1;
    printf("agentsim: %d agents, concurrency %d, update %.0fs stats %.0fs "
           "ping %.0fs\n",
           s->n, s->concurrency, s->update_s, s->stats_s, s->ping_s);
    printf("  accepted %d, failed %d, still open at end %d, all settled "
           "in %.0f ms\n",
           s->accepted, s->failed, s->open_now, connect_ms);
    printf("  accept latency p50 %.1f ms p99 %.1f ms (connect -> 101 + "
           "/nodes/update answer)\n",
           pct_ms(&s->accept_lat, 50), pct_ms(&s->accept_lat, 99));
    printf("  ping RTT steady p50 %.2f ms p99 %.2f ms (%zu samples); "
           "during ramp p50 %.2f p99 %.2f (%zu); lost %ld\n",
           pct_ms(&s->rtt_steady, 50), pct_ms(&s->rtt_steady, 99),
           s->rtt_steady.len, pct_ms(&s->rtt_ramp, 50),
           pct_ms(&s->rtt_ramp, 99), s->rtt_ramp.len, s->pings_lost);
    printf("  first /nodes/update unanswered at /agent/master_info (sent "
           "during the master's handshake check), resent: %ld of %d\n",
           s->update_resends_info, s->accepted + s->failed);
    printf("  messages out %ld (updates %ld, resent on timer %ld, stats %ld), "
           "in %ld "
           "(master_info %ld, node_info %ld, master requests %ld, other "
           "%ld); bytes out %ld in %ld; update errors %ld\n",
           s->msgs_out, s->updates_sent, s->update_resends, s->stats_sent,
           s->msgs_in, s->master_info, s->node_info, s->master_requests,
           s->unknown_in, s->bytes_out, s->bytes_in, s->update_errors);
    if (s->pods)
        printf("  pods: notifies %ld, lists %ld (ok %ld, errors %ld), pods "
               "seen %ld; set_state %ld (running %ld, stopped %ld; ok %ld, "
               "errors %ld)\n",
               s->pod_notifies, s->lists_sent, s->lists_ok, s->list_errors,
               s->pods_seen, s->sets_sent, s->sets_running, s->sets_stopped,
               s->sets_ok, s->set_errors);
    long fails = 0;
    for (int i = 0; i < s->ntallies; i++) {
        printf("  failure/close: %-52s %6ld  %s\n", s->tallies[i].label,
               s->tallies[i].count, s->tallies[i].example);
        fails += s->tallies[i].count;
    }
    if (s->ntallies == 0)
        printf("  failure/close: none\n");
    printf("RESULT n=%d accepted=%d failed=%d connect_ms=%.0f "
           "accept_p50_ms=%.1f accept_p99_ms=%.1f ping_p50_ms=%.3f "
           "ping_p99_ms=%.3f ping_samples=%zu pings_lost=%ld msgs_out=%ld "
           "msgs_in=%ld update_resends=%ld update_lost_in_check=%ld "
           "fail_events=%ld open_at_end=%d\n",
           s->n, s->accepted, s->failed, connect_ms, pct_ms(&s->accept_lat, 50),
           pct_ms(&s->accept_lat, 99), pct_ms(&s->rtt_steady, 50),
           pct_ms(&s->rtt_steady, 99), s->rtt_steady.len, s->pings_lost,
           s->msgs_out, s->msgs_in, s->update_resends, s->update_resends_info,
           fails, s->open_now);
    fflush(stdout);
}

static void stop(struct sim *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    report(s);
    uv_timer_stop(&s->tick);
    uv_signal_stop(&s->sig_term);
    uv_signal_stop(&s->sig_int);
    uv_signal_stop(&s->sig_usr1);
    /* Close every socket at once: the master sees EOFs, which is fine
     * for a benchmark and keeps the exit bounded. */
    for (int i = 0; i < s->next_open; i++) {
        struct agent *a = &s->agents[i];
        if (a->state != AG_CLOSING && a->state != AG_DONE &&
            a->state != AG_IDLE) {
            a->failure_noted = true;
            if (a->state == AG_ACCEPTED)
                s->open_now--;
            a->state = AG_CLOSING;
            uv_close((uv_handle_t *)&a->tcp, on_closed);
        }
    }
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_usr1, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sim *s = h->data;
    if (signum == SIGUSR1)
        print_snap(s, "SNAP");
    else
        stop(s);
}

/* ==== Main ==== */

static void usage(void)
{
    fprintf(stderr,
            "usage: agentsim -a HOST:PORT -T TOKENS_FILE -n N [options]\n"
            "  -c CONC      handshakes in flight (200)\n"
            "  -g PER_GRID  agents per grid token, in file order (250)\n"
            "  -u SECS      /nodes/update interval (60)\n"
            "  -s SECS      /nodes/stats interval (60)\n"
            "  -p SECS      client ping interval, 0 = none (30)\n"
            "  -d SECS      run this long after READY, 0 = until SIGTERM "
            "(0)\n"
            "  -A SECS      give up on an agent not accepted by then (60)\n"
            "  -R SECS      resend an unanswered first /nodes/update (5)\n"
            "  -W 0|1       resend it at once on /agent/master_info (0)\n"
            "  -t TAG       4 hex digits in every node id (random); reuse a\n"
            "               tag to reconnect the nodes of an earlier run\n"
            "  -P           pods mode: pull /node_service_pods/list on\n"
            "               notify_update and report set_state for new revs\n"
            "  -L SECS      pods mode: periodic pull interval (30)\n");
    exit(2);
}

static char **read_tokens(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    char **v = NULL;
    char line[512];
    *n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        v = cp_realloc(v, (size_t)(*n + 1) * sizeof(*v));
        v[(*n)++] = cp_strdup(line);
    }
    fclose(f);
    if (*n == 0) {
        fprintf(stderr, "agentsim: no tokens in %s\n", path);
        exit(2);
    }
    return v;
}

static double num(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    static struct sim sim;
    struct sim *s = &sim;
    const char *addr = NULL, *tokens = NULL, *tag = NULL;
    s->concurrency = 200;
    s->per_grid = 250;
    s->update_s = 60;
    s->stats_s = 60;
    s->ping_s = 30;
    s->accept_timeout_s = 60;
    s->resend_s = 5;
    s->ping_timeout_s = 10;
    s->resend_on_info = false;
    s->pull_s = 30;
    int opt;
    while ((opt = getopt(argc, argv, "a:T:n:c:g:u:s:p:d:A:R:W:t:PL:")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 'T':
            tokens = optarg;
            break;
        case 'n':
            s->n = (int)num(optarg);
            break;
        case 'c':
            s->concurrency = (int)num(optarg);
            break;
        case 'g':
            s->per_grid = (int)num(optarg);
            break;
        case 'u':
            s->update_s = num(optarg);
            break;
        case 's':
            s->stats_s = num(optarg);
            break;
        case 'p':
            s->ping_s = num(optarg);
            break;
        case 'd':
            s->duration_s = num(optarg);
            break;
        case 'A':
            s->accept_timeout_s = num(optarg);
            break;
        case 'R':
            s->resend_s = num(optarg);
            break;
        case 'W':
            s->resend_on_info = num(optarg) != 0;
            break;
        case 't':
            tag = optarg;
            break;
        case 'P':
            s->pods = true;
            break;
        case 'L':
            s->pull_s = num(optarg);
            break;
        default:
            usage();
        }
    }
    if (addr == NULL || tokens == NULL || s->n <= 0 || s->concurrency <= 0 ||
        s->per_grid <= 0 || s->update_s <= 0 || s->stats_s <= 0 ||
        s->pull_s <= 0)
        usage();
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        usage();
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &s->addr) != 0)
        usage();
    s->host_header = addr;
    s->tokens = read_tokens(tokens, &s->ntokens);
    if ((long)s->ntokens * s->per_grid < s->n)
        fprintf(stderr,
                "agentsim: warning: %d tokens x %d per grid < %d agents; "
                "tokens are reused\n",
                s->ntokens, s->per_grid, s->n);
    cp_random_bytes(&s->rng, sizeof(s->rng));
    s->rng |= 1;
    if (tag != NULL && strlen(tag) == 4 && strspn(tag, "0123456789ABCDEF") == 4)
        memcpy(s->run_tag, tag, 5);
    else if (tag != NULL)
        usage();
    else
        snprintf(s->run_tag, sizeof(s->run_tag), "%04X",
                 (unsigned)(rnd(s) >> 48));
    s->agents = cp_calloc((size_t)s->n, sizeof(*s->agents));
    s->loop = uv_default_loop();

    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_t *sigs[] = {&s->sig_term, &s->sig_int, &s->sig_usr1};
    int nums[] = {SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(s->loop, sigs[i]);
        sigs[i]->data = s;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    s->t0_us = now_us();
    fprintf(stderr, "agentsim: %d agents -> %s, run tag %s, %d tokens\n", s->n,
            addr, s->run_tag, s->ntokens);
    open_more(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
}
