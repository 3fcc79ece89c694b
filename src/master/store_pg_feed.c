/* PostgreSQL backend: the change feed over LISTEN/NOTIFY, so that every
 * master sharing the database gets every published message, itself
 * included.
 *
 * - Publish: pg_notify(PG_FEED_CHANNEL, "m:<channel>\n<payload>") on a
 *   pooled connection; delivered when it commits (at once: autocommit).
 *   NOTIFY payloads must stay under 8000 bytes, so a bigger message is
 *   inserted into feed_messages and the notification carries "r:<id>";
 *   the insert and the notify are one statement, so the row is visible
 *   when the notification arrives. Rows older than PG_FEED_KEEP_MS are
 *   deleted by later big publishes.
 * - Listen: one thread per store with its own connection (started by the
 *   first subscribe, which waits until LISTEN is in effect so that a
 *   message published right after subscribing is not missed). It polls
 *   the connection's socket and a wake pipe, and calls the subscribers on
 *   this thread, outside any lock. A lost connection is reopened with
 *   backoff; messages published while it was down are missed (logged),
 *   as the feed carries nudges whose state is in the store anyway.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_WAIT_MS 10000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ==== Publish ==== */

struct big_ctx {
    const char *channel, *payload;
};

static int big_fn(struct pgc *c, void *ctx)
{
    struct big_ctx *k = ctx;
    int64_t now = cp_now_ms();
    struct pgp d = {0};
    pgp_i(&d, now - PG_FEED_KEEP_MS);
    int rc = pgx_run(c, "DELETE FROM feed_messages WHERE created_at<$1", &d,
                     "feed cleanup", NULL);
    if (rc != 0)
        return rc;
    struct pgp p = {0};
    pgp_s(&p, PG_FEED_CHANNEL);
    pgp_s(&p, k->channel);
    pgp_s(&p, k->payload);
    pgp_i(&p, now);
    return pgx_run(c,
                   "WITH m AS (INSERT INTO feed_messages(channel, payload, "
                   "created_at) VALUES($2, $3, $4) RETURNING id) "
                   "SELECT pg_notify($1, 'r:' || m.id) FROM m",
                   &p, "feed publish", NULL);
}

int pgf_publish(struct store *st, const char *channel, const char *payload)
{
    if (strchr(channel, '\n') != NULL)
        return CP_EINVAL;
    size_t len = strlen(channel) + strlen(payload) + 3;
    if (len > PG_FEED_INLINE_MAX) {
        struct big_ctx k = {channel, payload};
        return pg_tx(st, big_fn, &k);
    }
    char *msg = cp_asprintf("m:%s\n%s", channel, payload);
    struct pgp p = {0};
    pgp_s(&p, PG_FEED_CHANNEL);
    pgp_s(&p, msg);
    int rc = pg_write(st, "SELECT pg_notify($1, $2)", &p, NULL, "feed publish");
    cp_free(msg);
    return rc;
}

/* ==== Deliver ==== */

static void deliver(struct pg_store *s, const char *channel,
                    const char *payload)
{
    struct pg_subscriber copy[PG_MAX_SUBSCRIBERS];
    size_t n = 0;
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < PG_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id != 0)
            copy[n++] = s->subs[i];
    pthread_mutex_unlock(&s->feed_mu);
    /* Outside the lock, so a callback may (un)subscribe or publish. */
    for (size_t i = 0; i < n; i++)
        copy[i].cb(copy[i].ctx, channel, payload);
}

/* Fetches a big message by id on the listener's connection. */
static void deliver_stored(struct pg_store *s, PGconn *conn, const char *id)
{
    const char *vals[1] = {id};
    PGresult *r = PQexecParams(conn,
                               "SELECT channel, payload FROM feed_messages "
                               "WHERE id=$1::bigint",
                               1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        cp_error("store: feed: cannot read message %s: %s", id,
                 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                     ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                     : "connection lost");
    } else if (PQntuples(r) == 0) {
        cp_warn("store: feed: message %s expired before it was read", id);
    } else {
        deliver(s, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    }
    PQclear(r);
}

static void on_notify(struct pg_store *s, PGconn *conn, const char *extra)
{
    if (strncmp(extra, "r:", 2) == 0) {
        deliver_stored(s, conn, extra + 2);
        return;
    }
    const char *nl = strchr(extra, '\n');
    if (strncmp(extra, "m:", 2) != 0 || nl == NULL) {
        cp_warn("store: feed: ignoring a malformed notification");
        return;
    }
    char *channel = cp_strndup(extra + 2, (size_t)(nl - extra - 2));
    deliver(s, channel, nl + 1);
    cp_free(channel);
}

/* ==== Listener thread ==== */

static void set_listening(struct pg_store *s, bool on)
{
    pthread_mutex_lock(&s->feed_mu);
    s->listening = on;
    pthread_cond_broadcast(&s->feed_cv);
    pthread_mutex_unlock(&s->feed_mu);
}

/* Waits up to ms for the wake pipe; true when asked to stop. */
static bool wait_stop(struct pg_store *s, int fd, int ms)
{
    struct pollfd p[2] = {{s->wake[0], POLLIN, 0}, {fd, POLLIN, 0}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    return n > 0 && (p[0].revents & (POLLIN | POLLHUP)) != 0;
}

static PGconn *listen_conn(struct pg_store *s)
{
    PGconn *conn = pg_connect(s->url, "kontena-master-feed");
    if (conn == NULL)
        return NULL;
    PGresult *r = PQexec(conn, "LISTEN " PG_FEED_CHANNEL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        pg_log_failure("feed: LISTEN", NULL, PQerrorMessage(conn));
    PQclear(r);
    if (!ok || PQsetnonblocking(conn, 1) != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static void *listener_main(void *arg)
{
    struct pg_store *s = arg;
    PGconn *conn = NULL;
    int backoff = BACKOFF_MIN_MS;
    bool lost = false;
    for (;;) {
        if (conn == NULL) {
            conn = listen_conn(s);
            if (conn == NULL) {
                if (wait_stop(s, -1, backoff))
                    break;
                backoff =
                    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            if (lost)
                cp_warn("store: feed: listening again; messages published "
                        "while the connection was down were missed");
            backoff = BACKOFF_MIN_MS;
            lost = false;
            set_listening(s, true);
        }
        if (wait_stop(s, PQsocket(conn), -1))
            break;
        if (!PQconsumeInput(conn)) {
            pg_log_failure("feed: connection lost", NULL, PQerrorMessage(conn));
            PQfinish(conn);
            conn = NULL;
            lost = true;
            set_listening(s, false);
            continue;
        }
        PGnotify *n;
        while ((n = PQnotifies(conn)) != NULL) {
            on_notify(s, conn, n->extra);
            PQfreemem(n);
        }
    }
    PQfinish(conn);
    set_listening(s, false);
    return NULL;
}

/* Starts the listener (feed_mu held) and waits until it listens. */
static void start_listener(struct pg_store *s)
{
    if (pipe2(s->wake, O_CLOEXEC) != 0) {
        cp_error("store: feed: pipe: %s", strerror(errno));
        return;
    }
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0) {
        cp_error("store: feed: cannot start the listener thread");
        close(s->wake[0]);
        close(s->wake[1]);
        s->wake[0] = s->wake[1] = -1;
        return;
    }
    s->listener_started = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LISTEN_WAIT_MS / 1000;
    while (!s->listening) {
        if (pthread_cond_timedwait(&s->feed_cv, &s->feed_mu, &until) != 0) {
            cp_warn("store: feed: not listening yet; messages are missed "
                    "until the database answers");
            break;
        }
    }
}

/* CP_ENOMEM when all PG_MAX_SUBSCRIBERS slots are taken. */
int pgf_subscribe(struct store *st, store_feed_cb *cb, void *ctx)
{
    struct pg_store *s = pgs(st);
    int id = CP_ENOMEM;
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < PG_MAX_SUBSCRIBERS; i++) {
        if (s->subs[i].id == 0) {
            id = s->next_sub_id++;
            s->subs[i] = (struct pg_subscriber){id, cb, ctx};
            break;
        }
    }
    if (id > 0 && !s->listener_started)
        start_listener(s);
    pthread_mutex_unlock(&s->feed_mu);
    return id;
}

/* A delivery already running on the listener thread may still call the
 * callback once after this returns. */
void pgf_unsubscribe(struct store *st, int id)
{
    struct pg_store *s = pgs(st);
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < PG_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id == id && id > 0)
            memset(&s->subs[i], 0, sizeof(s->subs[i]));
    pthread_mutex_unlock(&s->feed_mu);
}

void pgf_stop(struct pg_store *s)
{
    if (!s->listener_started)
        return;
    ssize_t w;
    do {
        w = write(s->wake[1], "x", 1);
    } while (w < 0 && errno == EINTR);
    pthread_join(s->listener, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    s->wake[0] = s->wake[1] = -1;
    s->listener_started = false;
}
