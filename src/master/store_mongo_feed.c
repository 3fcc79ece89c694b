/* MongoDB backend: the change feed over a change stream on the "feed"
 * collection, so that every master sharing the database gets every
 * published message, itself included (as store_pg_feed.c does with
 * LISTEN/NOTIFY).
 *
 * - Publish: inserts {channel, payload, at} into "feed" (a TTL index on
 *   "at" expires it after MG_FEED_KEEP_S; the stream reads the oplog, not
 *   the collection). Any size a document can hold, so no big-message path.
 * - Watch: one thread per store with its own client from the pool for the
 *   life of the stream (started by the first subscribe, which waits until
 *   the stream is open so that a message published right after
 *   subscribing is not missed). It reads insert events and calls the
 *   subscribers on this thread, outside any lock. getMore waits at most
 *   WATCH_AWAIT_MS, so the thread notices a stop promptly. A lost stream
 *   is reopened with backoff, resuming after the last resume token (the
 *   messages published meanwhile are then delivered, unless the oplog no
 *   longer holds them: logged as missed).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>
#include <time.h>

#define WATCH_WAIT_MS 10000 /* the first subscribe waits for the stream */
#define WATCH_AWAIT_MS 500  /* maxAwaitTimeMS of each getMore */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* Server errors after which a resume token can never work again:
 * InvalidResumeToken, ChangeStreamFatalError, ChangeStreamHistoryLost. */
#define ERR_INVALID_RESUME_TOKEN 260
#define ERR_CHANGE_STREAM_FATAL 280
#define ERR_CHANGE_STREAM_HISTORY_LOST 286

/* ==== Publish ==== */

int mgf_publish(struct store *st, const char *channel, const char *payload)
{
    bson_t d = BSON_INITIALIZER;
    mgb_str(&d, "channel", channel);
    mgb_str(&d, "payload", payload);
    BSON_APPEND_DATE_TIME(&d, "at", cp_now_ms());
    int rc = mg_insert(st, "feed", &d, "feed publish");
    bson_destroy(&d);
    return rc;
}

/* ==== Deliver ==== */

static void deliver(struct mg_store *s, const char *channel,
                    const char *payload)
{
    struct mg_subscriber copy[MG_MAX_SUBSCRIBERS];
    size_t n = 0;
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < MG_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id != 0)
            copy[n++] = s->subs[i];
    pthread_mutex_unlock(&s->feed_mu);
    /* Outside the lock, so a callback may (un)subscribe or publish. */
    for (size_t i = 0; i < n; i++)
        copy[i].cb(copy[i].ctx, channel, payload);
}

/* An insert event: {operationType, fullDocument: {channel, payload, at},
 * ...}. */
static void on_change(struct mg_store *s, const bson_t *event)
{
    bson_iter_t it, ch, pl;
    if (!bson_iter_init(&it, event) ||
        !bson_iter_find_descendant(&it, "fullDocument.channel", &ch) ||
        !BSON_ITER_HOLDS_UTF8(&ch) || !bson_iter_init(&it, event) ||
        !bson_iter_find_descendant(&it, "fullDocument.payload", &pl) ||
        !BSON_ITER_HOLDS_UTF8(&pl)) {
        cp_warn("store: feed: ignoring a malformed message");
        return;
    }
    deliver(s, bson_iter_utf8(&ch, NULL), bson_iter_utf8(&pl, NULL));
}

/* ==== Watcher thread ==== */

static void set_watching(struct mg_store *s, bool on)
{
    pthread_mutex_lock(&s->feed_mu);
    s->watching = on;
    pthread_cond_broadcast(&s->feed_cv);
    pthread_mutex_unlock(&s->feed_mu);
}

static bool is_stopping(struct mg_store *s)
{
    pthread_mutex_lock(&s->feed_mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->feed_mu);
    return stop;
}

static struct timespec deadline(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Waits up to ms for a stop; true when asked to stop. */
static bool wait_stop(struct mg_store *s, int ms)
{
    struct timespec until = deadline(ms);
    pthread_mutex_lock(&s->feed_mu);
    while (!s->stopping) {
        if (pthread_cond_timedwait(&s->feed_cv, &s->feed_mu, &until) != 0)
            break;
    }
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->feed_mu);
    return stop;
}

/* Opens the stream, after *token when there is one. */
static mongoc_change_stream_t *open_stream(mongoc_collection_t *coll,
                                           const bson_t *token)
{
    bson_t *pipeline =
        BCON_NEW("pipeline", "[", "{", "$match", "{", "operationType",
                 BCON_UTF8("insert"), "}", "}", "]");
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(WATCH_AWAIT_MS));
    if (token != NULL)
        BSON_APPEND_DOCUMENT(opts, "resumeAfter", token);
    mongoc_change_stream_t *cs = mongoc_collection_watch(coll, pipeline, opts);
    bson_destroy(opts);
    bson_destroy(pipeline);
    return cs; /* never NULL; errors are in its error document */
}

/* Keeps a copy of the stream's latest resume token in *token. */
static void save_token(mongoc_change_stream_t *cs, bson_t **token)
{
    const bson_t *t = mongoc_change_stream_get_resume_token(cs);
    if (t == NULL)
        return;
    if (*token != NULL)
        bson_destroy(*token);
    *token = bson_copy(t);
}

/* A server error's message is the server's errmsg; a client error
 * (network, server selection) has its own. */
static void log_stream_error(const char *what, const bson_error_t *e)
{
    cp_error("store: feed: %s: %s (%u.%u)", what, e->message, e->domain,
             e->code);
}

static bool token_unusable(const bson_error_t *e)
{
    if (e->domain != MONGOC_ERROR_SERVER && e->domain != MONGOC_ERROR_QUERY)
        return false; /* a client error: the token may still work */
    return e->code == ERR_INVALID_RESUME_TOKEN ||
           e->code == ERR_CHANGE_STREAM_FATAL ||
           e->code == ERR_CHANGE_STREAM_HISTORY_LOST;
}

/* Reads the open stream cs until it fails or a stop; keeps the resume
 * token after every event and every empty getMore. */
static void watch(struct mg_store *s, mongoc_change_stream_t *cs,
                  bson_t **token)
{
    while (!is_stopping(s)) {
        const bson_t *event = NULL;
        bool got = mongoc_change_stream_next(cs, &event);
        if (got)
            on_change(s, event);
        bson_error_t e;
        const bson_t *reply = NULL; /* owned by cs */
        if (!got && mongoc_change_stream_error_document(cs, &e, &reply)) {
            log_stream_error("stream lost", &e);
            return;
        }
        save_token(cs, token);
    }
}

static void *watcher_main(void *arg)
{
    struct mg_store *s = arg;
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    if (client == NULL) {
        cp_error("store: feed: no client for the change stream");
        set_watching(s, false);
        return NULL;
    }
    mongoc_collection_t *coll =
        mongoc_client_get_collection(client, s->db, "feed");
    bson_t *token = NULL;
    int backoff = BACKOFF_MIN_MS;
    bool lost = false;
    while (!is_stopping(s)) {
        mongoc_change_stream_t *cs = open_stream(coll, token);
        bson_error_t e;
        const bson_t *reply = NULL; /* owned by cs */
        if (mongoc_change_stream_error_document(cs, &e, &reply)) {
            log_stream_error("cannot watch", &e);
            if (token != NULL && token_unusable(&e)) {
                cp_warn("store: feed: cannot resume the stream; messages "
                        "published while it was down were missed");
                bson_destroy(token);
                token = NULL;
            }
            mongoc_change_stream_destroy(cs);
            if (wait_stop(s, backoff))
                break;
            backoff =
                backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        if (lost)
            cp_info("store: feed: watching again");
        backoff = BACKOFF_MIN_MS;
        lost = false;
        /* The initial aggregate's postBatchResumeToken: a stream lost
         * before its first event resumes from where it opened, not from
         * whenever it is reopened (the messages between were missed). */
        save_token(cs, &token);
        set_watching(s, true);
        watch(s, cs, &token);
        mongoc_change_stream_destroy(cs);
        set_watching(s, false);
        lost = true;
    }
    if (token != NULL)
        bson_destroy(token);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    set_watching(s, false);
    return NULL;
}

/* Waits (feed_mu held) until the stream is open, at most WATCH_WAIT_MS. */
static void wait_watching(struct mg_store *s)
{
    struct timespec until = deadline(WATCH_WAIT_MS);
    while (!s->watching && s->watcher_started) {
        if (pthread_cond_timedwait(&s->feed_cv, &s->feed_mu, &until) != 0) {
            cp_warn("store: feed: not watching yet; messages are missed "
                    "until the database answers");
            break;
        }
    }
}

/* Starts the watcher (feed_mu held) and waits until the stream is open. */
static void start_watcher(struct mg_store *s)
{
    s->stopping = false;
    if (pthread_create(&s->watcher, NULL, watcher_main, s) != 0) {
        cp_error("store: feed: cannot start the watcher thread");
        return;
    }
    s->watcher_started = true;
    wait_watching(s);
}

/* CP_ENOMEM when all MG_MAX_SUBSCRIBERS slots are taken. */
int mgf_subscribe(struct store *st, store_feed_cb *cb, void *ctx)
{
    struct mg_store *s = mgs(st);
    int id = CP_ENOMEM;
    pthread_mutex_lock(&s->feed_mu);
    if (s->next_sub_id <= 0)
        s->next_sub_id = 1; /* ids are > 0 whatever open set it to */
    for (size_t i = 0; i < MG_MAX_SUBSCRIBERS; i++) {
        if (s->subs[i].id == 0) {
            id = s->next_sub_id++;
            s->subs[i] = (struct mg_subscriber){id, cb, ctx};
            break;
        }
    }
    /* A subscriber that comes while another's subscribe is still waiting
     * for the first stream waits too: returning at once would miss what is
     * published before the stream opens. (While a lost stream is being
     * reopened it waits as well, at most WATCH_WAIT_MS.) */
    if (id > 0 && !s->watcher_started)
        start_watcher(s);
    else if (id > 0 && !s->watching)
        wait_watching(s);
    pthread_mutex_unlock(&s->feed_mu);
    return id;
}

/* A delivery already running on the watcher thread may still call the
 * callback once after this returns. */
void mgf_unsubscribe(struct store *st, int id)
{
    struct mg_store *s = mgs(st);
    pthread_mutex_lock(&s->feed_mu);
    for (size_t i = 0; i < MG_MAX_SUBSCRIBERS; i++)
        if (s->subs[i].id == id && id > 0)
            memset(&s->subs[i], 0, sizeof(s->subs[i]));
    pthread_mutex_unlock(&s->feed_mu);
}

/* Waits for the watcher: at most WATCH_AWAIT_MS while the stream is open,
 * longer while it is being (re)opened against an unreachable server (the
 * pool's server selection timeout). */
void mgf_stop(struct mg_store *s)
{
    pthread_mutex_lock(&s->feed_mu);
    if (!s->watcher_started) {
        pthread_mutex_unlock(&s->feed_mu);
        return;
    }
    s->stopping = true;
    pthread_cond_broadcast(&s->feed_cv);
    pthread_mutex_unlock(&s->feed_mu);
    pthread_join(s->watcher, NULL);
    pthread_mutex_lock(&s->feed_mu);
    s->watcher_started = false;
    s->watching = false;
    pthread_mutex_unlock(&s->feed_mu);
}
