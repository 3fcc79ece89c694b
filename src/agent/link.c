/* WebSocket client to the master over libwebsockets 4.1, on lws's own
 * poll loop in the main thread. Periodic work is lws "sul" timers: the
 * reconnect, the ping, the pong deadline, a one-second tick and the
 * close grace. The lws connection (wsi) belongs to lws; the link only
 * keeps a pointer while lws says it is alive and clears it in the close
 * callbacks, so nothing is freed inside a callback.
 * SPDX-License-Identifier: Apache-2.0 */
#include "link.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"
#include "../common/util.h"

#include <assert.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Design ====
 *
 * States: IDLE (no socket; the reconnect timer may be armed) ->
 * CONNECTING (lws is resolving, connecting, handshaking) -> OPEN ->
 * back to IDLE when lws reports CLIENT_CLOSED or CONNECTION_ERROR.
 * is_closing marks a close we asked for: the next WRITEABLE sends the
 * close frame. exit_status >= 0 means "stop": the loop ends as soon as the
 * link is IDLE (or the close grace runs out).
 *
 * Invariants: wsi != NULL exactly in CONNECTING and OPEN; the send queue
 * is empty in IDLE; attempt counts failures since the last open. */

enum state {
    ST_IDLE,
    ST_CONNECTING,
    ST_OPEN,
};

struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char *buf; /* LWS_PRE bytes of headroom, then the message */
};

struct link {
    struct link_options opt;
    struct link_handler h;
    struct lws_context *ctx;
    struct lws *wsi;
    enum state state;

    char *hdr_name[LINK_MAX_HEADERS];
    char *hdr_value[LINK_MAX_HEADERS];
    size_t nhdr;

    struct out_msg *q_head, *q_tail;
    size_t q_bytes;

    struct cp_buf rx; /* the message being reassembled */
    bool is_rx_too_big;

    bool is_closing; /* our close is pending */
    int close_code;  /* what we send or what the peer sent */
    char close_reason[124];
    bool has_peer_close;

    bool is_ping_due;
    bool is_awaiting_pong;

    unsigned attempt;
    int exit_status; /* -1 while running */
    bool is_done;
    bool is_freeing; /* link_free() is tearing lws down: ignore callbacks */

    lws_sorted_usec_list_t sul_reconnect, sul_ping, sul_pong, sul_tick,
        sul_grace;
};

static volatile sig_atomic_t got_signal;
static struct lws_context *signal_ctx;

/* ==== Small pure helpers ==== */

int64_t link_backoff_ms(unsigned attempt, double r)
{
    if (r < 0)
        r = 0;
    if (r > 1)
        r = 1;
    int64_t cap = (int64_t)PROTO_BACKOFF_CAP_S * 1000;
    int64_t base = attempt >= 7 ? cap : (int64_t)1000 << attempt;
    if (base > cap)
        base = cap;
    return (int64_t)(r * (double)base);
}

const char *link_close_text(int code)
{
    static const struct {
        int code;
        const char *text;
    } texts[] = {
        {PROTO_CLOSE_NORMAL, "normal closure"},
        {PROTO_CLOSE_GOING_AWAY, "going away"},
        {PROTO_CLOSE_PROTOCOL, "protocol error"},
        {1006, "abnormal closure"},
        {PROTO_CLOSE_TOO_BIG, "message too big"},
        {PROTO_CLOSE_MISSING_HEADERS, "missing handshake headers"},
        {PROTO_CLOSE_BAD_GRID_TOKEN, "invalid grid token"},
        {PROTO_CLOSE_BAD_NODE_TOKEN, "invalid node token"},
        {PROTO_CLOSE_NODE_TOKEN_TAKEN, "node token used by another node"},
        {PROTO_CLOSE_NO_TOKEN, "no token"},
        {PROTO_CLOSE_GRID_TOKEN_FOR_NODE_TOKEN_NODE,
         "grid token used for a node-token node"},
        {PROTO_CLOSE_NODE_ID_TAKEN, "node id owned by another node"},
        {PROTO_CLOSE_BAD_VERSION, "incompatible agent version"},
        {PROTO_CLOSE_CLOCK_SKEW, "clock skew too large"},
        {PROTO_CLOSE_PING_TIMEOUT, "ping timeout"},
        {PROTO_CLOSE_DISCONNECTED, "node marked disconnected"},
        {PROTO_CLOSE_NODE_REMOVED, "node removed"},
        {PROTO_CLOSE_SUPERSEDED, "superseded by a newer connection"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(texts); i++) {
        if (texts[i].code == code)
            return texts[i].text;
    }
    return "";
}

static double jitter(void)
{
    uint32_t r;
    cp_random_bytes(&r, sizeof(r));
    return (double)r / (double)UINT32_MAX;
}

static void sched(struct link *l, lws_sorted_usec_list_t *sul, sul_cb_t cb,
                  int64_t ms)
{
    lws_sul_schedule(l->ctx, 0, sul, cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void queue_clear(struct link *l)
{
    struct out_msg *m = l->q_head;
    while (m != NULL) {
        struct out_msg *next = m->next;
        cp_free(m->buf);
        cp_free(m);
        m = next;
    }
    l->q_head = l->q_tail = NULL;
    l->q_bytes = 0;
}

/* ==== Connecting ==== */

static void on_reconnect(lws_sorted_usec_list_t *sul);
static void went_down(struct link *l, const char *why);

static void schedule_reconnect(struct link *l)
{
    int64_t ms = link_backoff_ms(l->attempt, jitter());
    l->attempt++;
    cp_info("link: reconnecting in %.1f s (attempt %u)", (double)ms / 1000.0,
            l->attempt);
    sched(l, &l->sul_reconnect, on_reconnect, ms);
}

static void connect_now(struct link *l)
{
    if (l->h.before_connect != NULL && l->h.before_connect(l->h.ctx) != 0) {
        schedule_reconnect(l);
        return;
    }
    const struct agent_uri *u = l->opt.uri;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = l->ctx;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = u->path;
    ci.host = u->host_header;
    ci.origin = u->host_header;
    ci.local_protocol_name = "kontena-agent";
    ci.pwsi = &l->wsi;
    if (u->is_tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (!l->opt.ssl_verify)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
                                 LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    cp_info("link: connecting to %s", u->url);
    l->state = ST_CONNECTING;
    l->has_peer_close = false;
    l->close_code = 0;
    l->close_reason[0] = '\0';
    /* lws may report the failure through CONNECTION_ERROR before it
     * returns NULL; went_down() copes with being called once only. */
    if (lws_client_connect_via_info(&ci) == NULL && l->state != ST_IDLE) {
        l->wsi = NULL;
        went_down(l, "cannot start the connection");
    }
}

static void on_reconnect(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, sul_reconnect);
    if (l->exit_status >= 0 || l->state != ST_IDLE)
        return;
    connect_now(l);
}

/* The connection is gone (closed, failed or killed): log it, tell the
 * handler, then stop or schedule the next attempt. */
static void went_down(struct link *l, const char *why)
{
    if (l->state == ST_IDLE)
        return;
    bool was_open = l->state == ST_OPEN;
    l->state = ST_IDLE;
    l->wsi = NULL;
    l->is_closing = false;
    l->is_awaiting_pong = false;
    l->is_ping_due = false;
    lws_sul_cancel(&l->sul_ping);
    lws_sul_cancel(&l->sul_pong);
    queue_clear(l);
    cp_buf_release(&l->rx);
    int code = l->close_code;
    const char *text = link_close_text(code);
    if (!was_open)
        cp_warn("link: connection to %s failed: %s", l->opt.uri->url,
                why != NULL ? why : "unknown error");
    else if (proto_close_is_final(code))
        cp_error("link: master closed the connection with %d (%s): %s; "
                 "not reconnecting",
                 code, text, l->close_reason[0] ? l->close_reason : "-");
    else
        cp_info("link: connection closed with %d%s%s%s: %s", code,
                text[0] ? " (" : "", text, text[0] ? ")" : "",
                l->close_reason[0] ? l->close_reason : "-");
    if (l->h.on_close != NULL)
        l->h.on_close(l->h.ctx, code, l->close_reason);
    if (l->exit_status >= 0) {
        l->is_done = true;
        return;
    }
    if (was_open && l->has_peer_close && proto_close_is_final(code)) {
        l->exit_status = 1;
        l->is_done = true;
        return;
    }
    schedule_reconnect(l);
}

/* ==== Timers ==== */

static void on_pong_deadline(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, sul_pong);
    if (l->state != ST_OPEN || !l->is_awaiting_pong)
        return;
    cp_warn("link: no pong from the master within %d s; dropping the "
            "connection",
            l->opt.pong_timeout_s);
    /* The peer is not answering, so a close handshake would only wait:
     * have lws drop the socket at once. */
    l->close_code = PROTO_CLOSE_PING_TIMEOUT;
    snprintf(l->close_reason, sizeof(l->close_reason), "pong timeout");
    lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void on_ping_timer(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, sul_ping);
    if (l->state != ST_OPEN)
        return;
    l->is_ping_due = true;
    lws_callback_on_writable(l->wsi);
    sched(l, &l->sul_ping, on_ping_timer,
          (int64_t)l->opt.ping_interval_s * 1000);
}

static void on_grace(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, sul_grace);
    cp_warn("link: close handshake timed out");
    l->is_done = true;
}

static void begin_stop(struct link *l, int status)
{
    if (l->exit_status >= 0)
        return;
    l->exit_status = status;
    lws_sul_cancel(&l->sul_reconnect);
    if (l->state == ST_IDLE) {
        l->is_done = true;
        return;
    }
    if (l->state == ST_OPEN) {
        link_close(l, PROTO_CLOSE_NORMAL, "agent shutting down");
        sched(l, &l->sul_grace, on_grace, LINK_CLOSE_GRACE_MS);
        return;
    }
    /* Still connecting: nothing to say goodbye to. */
    l->is_done = true;
}

static void check_signal(struct link *l)
{
    if (got_signal == 0 || l->exit_status >= 0)
        return;
    cp_info("link: %s received, closing",
            got_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_stop(l, 0);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, sul_tick);
    check_signal(l);
    if (l->h.on_tick != NULL && l->exit_status < 0)
        l->h.on_tick(l->h.ctx);
    sched(l, &l->sul_tick, on_tick, 1000);
}

/* ==== lws callback ==== */

static int append_headers(struct link *l, void *in, size_t len)
{
    unsigned char **p = in, *end = *p + len;
    char at[PROTO_TIME_FORMAT_LEN];
    rpc_format_time(cp_now_ms(), at, sizeof(at));
    for (size_t i = 0; i <= l->nhdr; i++) {
        const char *name = i < l->nhdr ? l->hdr_name[i] : PROTO_H_CONNECTED_AT;
        const char *value = i < l->nhdr ? l->hdr_value[i] : at;
        char *hname = cp_asprintf("%s:", name);
        int rc = lws_add_http_header_by_name(
            l->wsi, (const unsigned char *)hname, (const unsigned char *)value,
            (int)strlen(value), p, end);
        cp_free(hname);
        if (rc != 0) {
            cp_error("link: handshake headers do not fit");
            return -1;
        }
    }
    return 0;
}

/* Appends a received fragment; on the last one hands the message up. A
 * message that is too big or malformed starts a close from the next
 * WRITEABLE callback rather than by returning -1 here: lws 4.1 crashed
 * (a write past its rx buffer) when a client RECEIVE callback failed in
 * the middle of a long frame. The rest of such a message is discarded. */
static int on_receive(struct link *l, struct lws *wsi, const void *in,
                      size_t len)
{
    if (lws_is_first_fragment(wsi)) {
        cp_buf_release(&l->rx);
        l->is_rx_too_big = false;
    }
    if (l->is_closing || l->is_rx_too_big)
        return 0;
    if (cp_buf_append(&l->rx, in, len) != 0) {
        cp_warn("link: message from the master exceeds %u bytes; closing "
                "with 1009",
                PROTO_MAX_MESSAGE);
        cp_buf_release(&l->rx);
        l->is_rx_too_big = true;
        link_close(l, PROTO_CLOSE_TOO_BIG, "message too big");
        return 0;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    if (!lws_frame_is_binary(wsi))
        cp_debug("link: text frame from the master; decoding it anyway");
    int rc = l->h.on_message(l->h.ctx, l->rx.data != NULL ? l->rx.data : "",
                             l->rx.len);
    cp_buf_release(&l->rx);
    if (rc != 0)
        link_close(l, PROTO_CLOSE_PROTOCOL, "malformed message");
    return 0;
}

static int on_writeable(struct link *l, struct lws *wsi)
{
    if (l->is_closing) {
        lws_close_reason(wsi, (enum lws_close_status)l->close_code,
                         (unsigned char *)l->close_reason,
                         strlen(l->close_reason));
        return -1;
    }
    if (l->is_ping_due) {
        unsigned char buf[LWS_PRE + 4];
        l->is_ping_due = false;
        if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0)
            return -1;
        if (!l->is_awaiting_pong) {
            l->is_awaiting_pong = true;
            sched(l, &l->sul_pong, on_pong_deadline,
                  (int64_t)l->opt.pong_timeout_s * 1000);
        }
    } else if (l->q_head != NULL) {
        struct out_msg *m = l->q_head;
        l->q_head = m->next;
        if (l->q_head == NULL)
            l->q_tail = NULL;
        l->q_bytes -= m->len;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_BINARY);
        cp_free(m->buf);
        cp_free(m);
        if (n < 0)
            return -1;
    }
    if (l->q_head != NULL || l->is_ping_due)
        lws_callback_on_writable(wsi);
    return 0;
}

static void on_peer_close(struct link *l, const unsigned char *in, size_t len)
{
    l->has_peer_close = true;
    l->close_code = len >= 2 ? (in[0] << 8) | in[1] : 1005;
    size_t rlen = len > 2 ? len - 2 : 0;
    if (rlen >= sizeof(l->close_reason))
        rlen = sizeof(l->close_reason) - 1;
    memcpy(l->close_reason, in + 2, rlen);
    l->close_reason[rlen] = '\0';
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    CP_UNUSED(user);
    struct lws_context *ctx = lws_get_context(wsi);
    struct link *l = ctx != NULL ? lws_context_user(ctx) : NULL;
    if (l == NULL || l->is_freeing)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return append_headers(l, in, len);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        l->wsi = wsi;
        l->state = ST_OPEN;
        l->attempt = 0;
        cp_info("link: connected to %s", l->opt.uri->url);
        sched(l, &l->sul_ping, on_ping_timer,
              (int64_t)l->opt.ping_interval_s * 1000);
        if (l->h.on_open != NULL)
            l->h.on_open(l->h.ctx);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(l, wsi, in, len);
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        cp_trace(CP_TRACE_WS, "link: pong");
        l->is_awaiting_pong = false;
        lws_sul_cancel(&l->sul_pong);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(l, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        on_peer_close(l, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[160];
        snprintf(why, sizeof(why), "%.*s", in != NULL ? (int)len : 0,
                 in != NULL ? (const char *)in : "");
        went_down(l, in != NULL ? why : NULL);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (l->close_code == 0)
            l->close_code = 1006;
        went_down(l, NULL);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        check_signal(l);
        if (l->h.on_wake != NULL && l->exit_status < 0)
            l->h.on_wake(l->h.ctx);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"kontena-agent", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ==== Public API ==== */

static void on_signal(int sig)
{
    got_signal = sig;
    /* Wakes the poll() at once; the callback then starts the close. */
    if (signal_ctx != NULL)
        lws_cancel_service(signal_ctx);
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        cp_warn("lws: %.*s", (int)n, line);
    else
        cp_trace(CP_TRACE_WS, "lws: %.*s", (int)n, line);
}

struct link *link_new(const struct link_options *opt,
                      const struct link_handler *h)
{
    assert(h->on_message != NULL);
    struct link *l = cp_calloc(1, sizeof(*l));
    l->opt = *opt;
    l->h = *h;
    l->exit_status = -1;
    cp_buf_init(&l->rx, PROTO_MAX_MESSAGE);
    lws_set_log_level((cp_trace_mask & CP_TRACE_WS)
                          ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO
                          : LLL_ERR,
                      lws_log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.user = l;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = 16;
    info.timeout_secs = LINK_CONNECT_TIMEOUT_S;
    info.connect_timeout_secs = LINK_CONNECT_TIMEOUT_S;
    l->ctx = lws_create_context(&info);
    if (l->ctx == NULL) {
        cp_error("link: cannot create the libwebsockets context");
        cp_free(l);
        return NULL;
    }
    return l;
}

void link_free(struct link *l)
{
    if (l == NULL)
        return;
    if (signal_ctx == l->ctx)
        signal_ctx = NULL;
    /* Destroying the context closes any wsi; our callbacks must not act on
     * a half-freed link, so detach first. */
    l->is_freeing = true;
    lws_context_destroy(l->ctx);
    queue_clear(l);
    cp_buf_release(&l->rx);
    for (size_t i = 0; i < l->nhdr; i++) {
        cp_free(l->hdr_name[i]);
        cp_free(l->hdr_value[i]);
    }
    cp_free(l);
}

void link_set_header(struct link *l, const char *name, const char *value)
{
    for (size_t i = 0; i < l->nhdr; i++) {
        if (strcmp(l->hdr_name[i], name) == 0) {
            cp_free(l->hdr_value[i]);
            l->hdr_value[i] = cp_strdup(value);
            return;
        }
    }
    if (l->nhdr == LINK_MAX_HEADERS)
        cp_panic("link: more than %d handshake headers", LINK_MAX_HEADERS);
    l->hdr_name[l->nhdr] = cp_strdup(name);
    l->hdr_value[l->nhdr] = cp_strdup(value);
    l->nhdr++;
}

int link_run(struct link *l)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal also interrupts poll(). */
    signal_ctx = l->ctx;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sched(l, &l->sul_tick, on_tick, 1000);
    connect_now(l);
    while (!l->is_done) {
        if (lws_service(l->ctx, 0) < 0)
            break;
        check_signal(l);
    }
    lws_sul_cancel(&l->sul_tick);
    lws_sul_cancel(&l->sul_grace);
    lws_sul_cancel(&l->sul_reconnect);
    return l->exit_status >= 0 ? l->exit_status : 1;
}

int link_send(struct link *l, char *buf, size_t len)
{
    if (l->state != ST_OPEN || l->is_closing) {
        cp_free(buf);
        return CP_EAGAIN;
    }
    if (l->q_bytes + len > LINK_MAX_QUEUED) {
        cp_warn("link: send queue full (%zu bytes); dropping a message",
                l->q_bytes);
        cp_free(buf);
        return CP_EINVAL;
    }
    struct out_msg *m = cp_calloc(1, sizeof(*m));
    m->buf = cp_malloc(LWS_PRE + len);
    memcpy(m->buf + LWS_PRE, buf, len);
    m->len = len;
    cp_free(buf);
    if (l->q_tail != NULL)
        l->q_tail->next = m;
    else
        l->q_head = m;
    l->q_tail = m;
    l->q_bytes += len;
    lws_callback_on_writable(l->wsi);
    return 0;
}

void link_wake(struct link *l)
{
    lws_cancel_service(l->ctx);
}

bool link_is_open(const struct link *l)
{
    return l->state == ST_OPEN && !l->is_closing;
}

void link_close(struct link *l, int code, const char *reason)
{
    if (l->state != ST_OPEN || l->is_closing)
        return;
    l->is_closing = true;
    l->close_code = code;
    snprintf(l->close_reason, sizeof(l->close_reason), "%s",
             reason != NULL ? reason : "");
    lws_callback_on_writable(l->wsi);
}
