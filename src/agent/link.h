/* The agent's WebSocket link to the master (libwebsockets client, spec
 * 4.1-4.2 and 4.6). It owns the lws context and runs the service loop in
 * the calling thread. It connects with the handshake headers it was
 * given, reassembles binary messages up to PROTO_MAX_MESSAGE, pings the
 * master and drops the connection when a pong is late, reconnects with
 * jittered exponential backoff, and stops for good on the close codes
 * proto_close_is_final() names. SIGTERM/SIGINT are handled here (lws
 * installs no handlers): the link closes with 1000 and link_run returns 0.
 * What the messages mean is the handler's business (agent.c).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_LINK_H
#define CP_AGENT_LINK_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_MAX_HEADERS 8
#define LINK_MAX_QUEUED (16u * 1024 * 1024) /* bytes waiting to be sent */
#define LINK_CONNECT_TIMEOUT_S 10
#define LINK_CLOSE_GRACE_MS 3000 /* wait for the close handshake */

/* Callbacks into the layer above. Each runs on the loop thread, inside
 * lws; none may call link_free(). */
struct link_handler {
    void *ctx;
    /* Before every connect attempt: return 0 to go on, or non-zero to
     * back off and retry later (e.g. the engine is not up yet). The
     * handler sets the handshake headers here with link_set_header(). */
    int (*before_connect)(void *ctx);
    /* The WebSocket is open. */
    void (*on_open)(void *ctx);
    /* One complete message. Return 0, or CP_EPROTO to have the link close
     * with 1002 and reconnect. */
    int (*on_message)(void *ctx, const void *buf, size_t len);
    /* The connection went away (code 0 when there was no close frame). */
    void (*on_close)(void *ctx, int code, const char *reason);
    /* About once a second, connected or not. */
    void (*on_tick)(void *ctx);
    /* After link_wake() (may be NULL). */
    void (*on_wake)(void *ctx);
};

struct link_options {
    const struct agent_uri *uri; /* borrowed for the link's lifetime */
    bool ssl_verify;
    int ping_interval_s;
    int pong_timeout_s;
};

struct link;

/* Creates the lws context. Returns NULL (after logging why) when lws
 * cannot start. Nothing connects until link_run(). */
struct link *link_new(const struct link_options *opt,
                      const struct link_handler *h);
/* Destroys the context and frees everything; NULL is fine. Not from a
 * callback. */
void link_free(struct link *l);

/* Sets (or replaces) a handshake header sent on the next connect. name is
 * lower case without a colon. Kontena-Connected-At is added by the link
 * itself at connect time. */
void link_set_header(struct link *l, const char *name, const char *value);

/* Runs the loop until a signal or a final close code. Returns the exit
 * status: 0 after SIGTERM/SIGINT, 1 after a final close code. */
int link_run(struct link *l);

/* Queues one binary message; takes ownership of buf (cp_malloc'd).
 * Returns 0, CP_EAGAIN when not connected, or CP_EINVAL when more than
 * LINK_MAX_QUEUED bytes are already waiting (buf is freed either way). */
int link_send(struct link *l, char *buf, size_t len);
bool link_is_open(const struct link *l);

/* Makes the loop call the handler's on_wake soon. The only link function
 * that is safe from any thread. */
void link_wake(struct link *l);

/* Asks the link to close the current connection with code and reason,
 * then reconnect with backoff. Safe from any callback. */
void link_close(struct link *l, int code, const char *reason);

/* The reconnect delay for attempt n (0-based) with jitter r in [0,1]:
 * r * min(PROTO_BACKOFF_CAP_S, 2^n) seconds, in ms. Pure. */
int64_t link_backoff_ms(unsigned attempt, double r);

/* A short description of a close code ("bad grid token"), or "". */
const char *link_close_text(int code);

#endif
