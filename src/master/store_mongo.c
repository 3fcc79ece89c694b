/* The MongoDB backend of the store (KONTENA_DATABASE_URL / MONGODB_URI =
 * mongodb://... or mongodb+srv://...): several masters share one replica
 * set, so every operation is safe against the same operation running at
 * the same moment in another process.
 *
 * DESIGN
 * - Clients: libmongoc's thread-safe client pool (maxPoolSize from the
 *   URI, 100 by default); an operation pops a client, uses it alone and
 *   pushes it back (mg_get / mg_put). Every client inherits the URI's
 *   concerns, set here: majority reads, majority journaled writes.
 * - Statements (mgx_*): one driver call each, with the client's session
 *   appended when it runs inside mg_tx, so the same code runs in and out
 *   of a transaction. Failures map to CP_E* codes in one pure function,
 *   mg_error_code: duplicate keys are CP_ECONFLICT (the index name, named
 *   like the PostgreSQL constraint, tells which field), transient errors
 *   and write conflicts CP_EAGAIN, everything else CP_EIO, logged once
 *   here with the server's message (never a value or the URL).
 * - Atomicity: single-document writes are atomic; operations of several
 *   statements run through mg_tx, a session transaction (snapshot reads,
 *   majority writes) retried whole on transient errors and write
 *   conflicts. A write conflict is MongoDB's way of making the second of
 *   two racing transactions wait: it fails at once, so we back off a few
 *   milliseconds and run it again, up to MG_TX_RETRIES times.
 * - Schema: collections and indexes (store_mongo_schema.c), created under
 *   a lease so masters starting together do it once.
 * - Change feed: a change stream on "feed" (store_mongo_feed.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Defaults applied when the URL does not set them: a master must not hang
 * on a lost server (PostgreSQL's connect_timeout and statement_timeout
 * play the same part there). */
#define MG_SELECT_TIMEOUT_MS 10000
#define MG_SOCKET_TIMEOUT_MS 60000
/* wtimeout of the majority write concern: a write the majority does not
 * acknowledge in time fails (CP_EIO) instead of blocking forever. */
#define MG_WTIMEOUT_MS 30000
/* Retries of commitTransaction on UnknownTransactionCommitResult. */
#define MG_COMMIT_RETRIES 3
/* The oldest server with the transactions and change streams we use:
 * MongoDB 4.4 (wire version 9). */
#define MG_MIN_WIRE_VERSION 9

struct mg_store *mgs(struct store *st)
{
    return (struct mg_store *)st;
}

/* ==== Documents: writers ==== */

void mgb_str(bson_t *b, const char *key, const char *v)
{
    if (v == NULL)
        bson_append_null(b, key, -1);
    else
        bson_append_utf8(b, key, -1, v, -1);
}

void mgb_id(bson_t *b, const char *key, const char *v)
{
    mgb_str(b, key, v != NULL && v[0] != '\0' ? v : NULL);
}

void mgb_i64(bson_t *b, const char *key, int64_t v)
{
    bson_append_int64(b, key, -1, v);
}

void mgb_bool(bson_t *b, const char *key, bool v)
{
    bson_append_bool(b, key, -1, v);
}

/* cp_json_dump is what pg_dump_or writes (JSON_COMPACT, 15 digits of
 * precision, any value), so the text is the same byte for byte. */
void mgb_json(bson_t *b, const char *key, const json_t *j, const char *dflt)
{
    if (j == NULL) {
        mgb_str(b, key, dflt);
        return;
    }
    char *s = cp_json_dump(j);
    bson_append_utf8(b, key, -1, s, -1);
    cp_free(s);
}

/* ==== Documents: readers ==== */

static bool find(const bson_t *d, const char *key, bson_iter_t *it)
{
    return d != NULL && bson_iter_init_find(it, d, key);
}

char *mgr_str(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!find(d, key, &it) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    uint32_t len = 0;
    const char *s = bson_iter_utf8(&it, &len);
    return cp_strndup(s, len);
}

static void copy_fixed(const char *s, size_t n, char *out, size_t size)
{
    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Reads a string or an ObjectId (as its hex) into out; "" otherwise. */
static void fixed_of(bson_iter_t *it, char *out, size_t size)
{
    if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t len = 0;
        const char *s = bson_iter_utf8(it, &len);
        copy_fixed(s, len, out, size);
    } else if (BSON_ITER_HOLDS_OID(it)) {
        char hex[25];
        bson_oid_to_string(bson_iter_oid(it), hex);
        copy_fixed(hex, strlen(hex), out, size);
    } else {
        copy_fixed("", 0, out, size);
    }
}

void mgr_fixed(const bson_t *d, const char *key, char *out, size_t size)
{
    bson_iter_t it;
    if (!find(d, key, &it)) {
        copy_fixed("", 0, out, size);
        return;
    }
    fixed_of(&it, out, size);
}

int64_t mgr_i64(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!find(d, key, &it))
        return 0;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_BOOL:
        return bson_iter_as_int64(&it);
    case BSON_TYPE_DATE_TIME:
        return bson_iter_date_time(&it);
    default:
        return 0;
    }
}

bool mgr_bool(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!find(d, key, &it))
        return false;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_BOOL:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
        return bson_iter_as_bool(&it);
    default:
        return false;
    }
}

bool mgr_null(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!find(d, key, &it))
        return true;
    return bson_iter_type(&it) == BSON_TYPE_NULL ||
           bson_iter_type(&it) == BSON_TYPE_UNDEFINED;
}

/* Parsed like pgr_json (flags 0: an object or an array). */
json_t *mgr_json(const bson_t *d, const char *key, json_t *dflt)
{
    char *s = mgr_str(d, key);
    json_t *j = s != NULL ? json_loads(s, 0, NULL) : NULL;
    cp_free(s);
    if (j == NULL)
        return dflt;
    json_decref(dflt);
    return j;
}

void mgr_id(const bson_t *d, char out[STORE_ID_LEN + 1])
{
    mgr_fixed(d, "_id", out, STORE_ID_LEN + 1);
}

/* ==== Errors ==== */

void mg_dup_index(const char *message, char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    if (message == NULL)
        return;
    const char *p = strstr(message, "index: ");
    if (p == NULL)
        return;
    p += strlen("index: ");
    size_t n = strcspn(p, " \t\n");
    /* Servers before 3.4 name it "db.coll.$name". */
    const char *dollar = memchr(p, '$', n);
    if (dollar != NULL) {
        n -= (size_t)(dollar + 1 - p);
        p = dollar + 1;
    }
    copy_fixed(p, n, out, size);
}

static bool is_dup_code(int64_t code)
{
    return code == 11000 || code == 11001;
}

/* The first write error of reply whose code is wanted (11000/11001 when
 * code is 0), with its message; false when none. */
static bool write_error(const bson_t *reply, int64_t code, const char **msg)
{
    bson_iter_t it, arr;
    if (reply == NULL || !bson_iter_init_find(&it, reply, "writeErrors") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return false;
    while (bson_iter_next(&arr)) {
        bson_iter_t we;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &we))
            continue;
        int64_t c = 0;
        const char *m = NULL;
        while (bson_iter_next(&we)) {
            if (strcmp(bson_iter_key(&we), "code") == 0 &&
                BSON_ITER_HOLDS_NUMBER(&we))
                c = bson_iter_as_int64(&we);
            else if (strcmp(bson_iter_key(&we), "errmsg") == 0 &&
                     BSON_ITER_HOLDS_UTF8(&we))
                m = bson_iter_utf8(&we, NULL);
        }
        if (code != 0 ? c == code : is_dup_code(c)) {
            *msg = m;
            return true;
        }
    }
    return false;
}

static bool has_label(const bson_t *reply, const char *label)
{
    return reply != NULL && mongoc_error_has_label(reply, label);
}

int mg_error_code(const bson_error_t *e, const bson_t *reply, char *conflict,
                  size_t size)
{
    if (conflict != NULL && size > 0)
        conflict[0] = '\0';
    /* Client-side domains reuse small codes; only server codes count. */
    bool local = e->domain == MONGOC_ERROR_STREAM ||
                 e->domain == MONGOC_ERROR_SERVER_SELECTION ||
                 e->domain == MONGOC_ERROR_CLIENT ||
                 e->domain == MONGOC_ERROR_PROTOCOL;
    const char *msg = NULL;
    if (!local && is_dup_code(e->code)) {
        if (conflict != NULL)
            mg_dup_index(e->message, conflict, size);
        return CP_ECONFLICT;
    }
    if (write_error(reply, 0, &msg)) {
        if (conflict != NULL)
            mg_dup_index(msg, conflict, size);
        return CP_ECONFLICT;
    }
    if (has_label(reply, "TransientTransactionError") ||
        has_label(reply, "UnknownTransactionCommitResult"))
        return CP_EAGAIN;
    if ((!local && e->code == 112) || write_error(reply, 112, &msg))
        return CP_EAGAIN; /* WriteConflict */
    return CP_EIO;
}

/* Whether the last statement failure on this thread was transient (a
 * write conflict or a transient transaction error): mg_tx turns such a
 * CP_EAGAIN, when retries run out, into a logged CP_EIO, and leaves one
 * that fn made up itself (a lease held by another) as it is. */
static _Thread_local bool last_transient;

/* Maps and logs a failed statement. */
static int fail(struct mgc *c, const bson_error_t *e, const bson_t *reply,
                const char *what)
{
    int rc = mg_error_code(e, reply, c->conflict, sizeof(c->conflict));
    switch (rc) {
    case CP_ECONFLICT:
        break; /* a normal outcome: the caller decides */
    case CP_EAGAIN:
        last_transient = true;
        cp_debug("store: %s: %s (retried)", what, e->message);
        break;
    default:
        cp_error("store: %s: %s", what, e->message);
        break;
    }
    return rc;
}

/* A failure found before any driver call (the session could not be
 * appended, a bad argument). */
static int fail_local(const char *what, const char *msg)
{
    cp_error("store: %s: %s", what, msg);
    return CP_EIO;
}

/* ==== Statements on one client ==== */

/* Initialises o as a copy of extra (may be NULL) plus the session. On
 * failure o is initialised all the same (destroy it). */
static bool opts_init(struct mgc *c, bson_t *o, const bson_t *extra,
                      bson_error_t *e)
{
    bson_init(o);
    if (extra != NULL && !bson_concat(o, extra)) {
        bson_set_error(e, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                       "options too large");
        return false;
    }
    if (c->session != NULL && !mongoc_client_session_append(c->session, o, e))
        return false;
    return true;
}

static mongoc_collection_t *coll_of(struct mgc *c, const char *name)
{
    return mongoc_client_get_collection(c->client, c->s->db, name);
}

/* Some libmongoc releases assert on destroying NULL. */
static void coll_free(mongoc_collection_t *col)
{
    if (col != NULL)
        mongoc_collection_destroy(col);
}

static void cursor_free(mongoc_cursor_t *cur)
{
    if (cur != NULL)
        mongoc_cursor_destroy(cur);
}

static int64_t reply_count(const bson_t *reply, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, reply, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        return 0;
    return bson_iter_as_int64(&it);
}

static const bson_t *empty_doc(const bson_t *filter, bson_t *empty)
{
    if (filter != NULL)
        return filter;
    bson_init(empty);
    return empty;
}

int mgx_insert(struct mgc *c, const char *coll, const bson_t *doc,
               const char *what)
{
    c->conflict[0] = '\0';
    bson_t opts, reply = BSON_INITIALIZER;
    bson_error_t e;
    int rc = 0;
    mongoc_collection_t *col = NULL;
    if (!opts_init(c, &opts, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    col = coll_of(c, coll);
    if (!mongoc_collection_insert_one(col, doc, &opts, &reply, &e))
        rc = fail(c, &e, &reply, what);
out:
    coll_free(col);
    bson_destroy(&reply);
    bson_destroy(&opts);
    return rc;
}

int mgx_insert_many(struct mgc *c, const char *coll, const bson_t **docs,
                    size_t n, const char *what)
{
    c->conflict[0] = '\0';
    if (n == 0)
        return 0;
    bson_t opts, reply = BSON_INITIALIZER;
    bson_error_t e;
    int rc = 0;
    mongoc_collection_t *col = NULL;
    if (!opts_init(c, &opts, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    bson_append_bool(&opts, "ordered", -1, true);
    col = coll_of(c, coll);
    if (!mongoc_collection_insert_many(col, docs, n, &opts, &reply, &e))
        rc = fail(c, &e, &reply, what);
out:
    coll_free(col);
    bson_destroy(&reply);
    bson_destroy(&opts);
    return rc;
}

int mgx_update(struct mgc *c, const char *coll, const bson_t *filter,
               const bson_t *update, bool many, bool upsert, int64_t *matched,
               bool *upserted, const char *what)
{
    c->conflict[0] = '\0';
    if (matched != NULL)
        *matched = 0;
    if (upserted != NULL)
        *upserted = false;
    bson_t opts, reply = BSON_INITIALIZER, empty;
    const bson_t *f = empty_doc(filter, &empty);
    bson_error_t e;
    int rc = 0;
    mongoc_collection_t *col = NULL;
    if (!opts_init(c, &opts, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    if (upsert)
        bson_append_bool(&opts, "upsert", -1, true);
    col = coll_of(c, coll);
    bool ok =
        many ? mongoc_collection_update_many(col, f, update, &opts, &reply, &e)
             : mongoc_collection_update_one(col, f, update, &opts, &reply, &e);
    if (!ok) {
        rc = fail(c, &e, &reply, what);
        goto out;
    }
    if (matched != NULL)
        *matched = reply_count(&reply, "matchedCount");
    if (upserted != NULL)
        *upserted = bson_has_field(&reply, "upsertedId") ||
                    reply_count(&reply, "upsertedCount") > 0;
out:
    coll_free(col);
    bson_destroy(&reply);
    bson_destroy(&opts);
    if (f != filter)
        bson_destroy(&empty);
    return rc;
}

int mgx_delete(struct mgc *c, const char *coll, const bson_t *filter, bool many,
               int64_t *deleted, const char *what)
{
    c->conflict[0] = '\0';
    if (deleted != NULL)
        *deleted = 0;
    bson_t opts, reply = BSON_INITIALIZER, empty;
    const bson_t *f = empty_doc(filter, &empty);
    bson_error_t e;
    int rc = 0;
    mongoc_collection_t *col = NULL;
    if (!opts_init(c, &opts, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    col = coll_of(c, coll);
    bool ok = many ? mongoc_collection_delete_many(col, f, &opts, &reply, &e)
                   : mongoc_collection_delete_one(col, f, &opts, &reply, &e);
    if (!ok) {
        rc = fail(c, &e, &reply, what);
        goto out;
    }
    if (deleted != NULL)
        *deleted = reply_count(&reply, "deletedCount");
out:
    coll_free(col);
    bson_destroy(&reply);
    bson_destroy(&opts);
    if (f != filter)
        bson_destroy(&empty);
    return rc;
}

/* The cursor's error, mapped; 0 when it ended cleanly. */
static int cursor_result(struct mgc *c, mongoc_cursor_t *cur, const char *what)
{
    bson_error_t e;
    const bson_t *reply = NULL;
    if (!mongoc_cursor_error_document(cur, &e, &reply))
        return 0;
    return fail(c, &e, reply, what);
}

int mgx_find_one(struct mgc *c, const char *coll, const bson_t *filter,
                 const bson_t *opts, mg_doc_fn *rd, void *out, const char *what)
{
    c->conflict[0] = '\0';
    bson_t o, empty;
    const bson_t *f = empty_doc(filter, &empty);
    bson_error_t e;
    int rc;
    mongoc_collection_t *col = NULL;
    mongoc_cursor_t *cur = NULL;
    if (!opts_init(c, &o, opts, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    if (!bson_has_field(&o, "limit"))
        bson_append_int64(&o, "limit", -1, 1);
    if (!bson_has_field(&o, "singleBatch"))
        bson_append_bool(&o, "singleBatch", -1, true);
    col = coll_of(c, coll);
    cur = mongoc_collection_find_with_opts(col, f, &o, NULL);
    const bson_t *doc = NULL;
    if (mongoc_cursor_next(cur, &doc))
        rc = rd != NULL ? rd(doc, out) : 0;
    else {
        rc = cursor_result(c, cur, what);
        if (rc == 0)
            rc = CP_ENOTFOUND;
    }
out:
    cursor_free(cur);
    coll_free(col);
    bson_destroy(&o);
    if (f != filter)
        bson_destroy(&empty);
    return rc;
}

/* Reads every document of cur into a new array (see mgx_find_all). */
static int collect(struct mgc *c, mongoc_cursor_t *cur, mg_doc_fn *rd,
                   size_t size, void (*release)(void *item), void **items,
                   size_t *len, const char *what)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    const bson_t *doc = NULL;
    while (mongoc_cursor_next(cur, &doc)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            buf = cp_realloc(buf, cap * size);
        }
        char *item = buf + n * size;
        memset(item, 0, size);
        n++;
        rc = rd(doc, item);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = cursor_result(c, cur, what);
    if (rc != 0) {
        /* The item rd failed on was zeroed first: releasing it frees
         * whatever it had read. */
        for (size_t i = 0; release != NULL && i < n; i++)
            release(buf + i * size);
        cp_free(buf);
        return rc;
    }
    if (n == 0) {
        cp_free(buf);
        buf = NULL;
    }
    *items = buf;
    *len = n;
    return 0;
}

int mgx_find_all(struct mgc *c, const char *coll, const bson_t *filter,
                 const bson_t *opts, mg_doc_fn *rd, size_t size,
                 void (*release)(void *item), void **items, size_t *len,
                 const char *what)
{
    c->conflict[0] = '\0';
    *items = NULL;
    *len = 0;
    bson_t o, empty;
    const bson_t *f = empty_doc(filter, &empty);
    bson_error_t e;
    int rc;
    mongoc_collection_t *col = NULL;
    mongoc_cursor_t *cur = NULL;
    if (!opts_init(c, &o, opts, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    col = coll_of(c, coll);
    cur = mongoc_collection_find_with_opts(col, f, &o, NULL);
    rc = collect(c, cur, rd, size, release, items, len, what);
out:
    cursor_free(cur);
    coll_free(col);
    bson_destroy(&o);
    if (f != filter)
        bson_destroy(&empty);
    return rc;
}

int mgx_aggregate(struct mgc *c, const char *coll, const bson_t *pipeline,
                  mg_doc_fn *rd, size_t size, void (*release)(void *item),
                  void **items, size_t *len, const char *what)
{
    c->conflict[0] = '\0';
    *items = NULL;
    *len = 0;
    bson_t o;
    bson_error_t e;
    int rc;
    mongoc_collection_t *col = NULL;
    mongoc_cursor_t *cur = NULL;
    if (!opts_init(c, &o, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    col = coll_of(c, coll);
    cur =
        mongoc_collection_aggregate(col, MONGOC_QUERY_NONE, pipeline, &o, NULL);
    rc = collect(c, cur, rd, size, release, items, len, what);
out:
    cursor_free(cur);
    coll_free(col);
    bson_destroy(&o);
    return rc;
}

/* findAndModify; update NULL removes. */
static int find_modify(struct mgc *c, const char *coll, const bson_t *filter,
                       const bson_t *sort, const bson_t *update, bool upsert,
                       bool return_new, mg_doc_fn *rd, void *out,
                       const char *what)
{
    c->conflict[0] = '\0';
    bson_t extra, reply = BSON_INITIALIZER, empty;
    const bson_t *f = empty_doc(filter, &empty);
    bson_error_t e;
    int rc = 0;
    mongoc_collection_t *col = NULL;
    mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
    if (!opts_init(c, &extra, NULL, &e)) {
        rc = fail(c, &e, NULL, what);
        goto out;
    }
    int flags = MONGOC_FIND_AND_MODIFY_NONE;
    if (update == NULL)
        flags |= MONGOC_FIND_AND_MODIFY_REMOVE;
    else
        mongoc_find_and_modify_opts_set_update(fam, update);
    if (upsert)
        flags |= MONGOC_FIND_AND_MODIFY_UPSERT;
    if (return_new)
        flags |= MONGOC_FIND_AND_MODIFY_RETURN_NEW;
    mongoc_find_and_modify_opts_set_flags(
        fam, (mongoc_find_and_modify_flags_t)flags);
    if (sort != NULL)
        mongoc_find_and_modify_opts_set_sort(fam, sort);
    if (!bson_empty(&extra) &&
        !mongoc_find_and_modify_opts_append(fam, &extra)) {
        rc = fail_local(what, "cannot append the session");
        goto out;
    }
    col = coll_of(c, coll);
    if (!mongoc_collection_find_and_modify_with_opts(col, f, fam, &reply, &e)) {
        rc = fail(c, &e, &reply, what);
        goto out;
    }
    bson_iter_t it;
    if (bson_iter_init_find(&it, &reply, "value") &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t dlen = 0;
        const uint8_t *data = NULL;
        bson_iter_document(&it, &dlen, &data);
        bson_t doc;
        if (!bson_init_static(&doc, data, dlen))
            rc = fail_local(what, "corrupt reply");
        else if (rd != NULL)
            rc = rd(&doc, out);
    } else if (!upsert) {
        rc = CP_ENOTFOUND; /* nothing matched */
    }
    /* An upsert that inserted with return_new false has no document to
     * read: the value is null. */
out:
    coll_free(col);
    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(&reply);
    bson_destroy(&extra);
    if (f != filter)
        bson_destroy(&empty);
    return rc;
}

int mgx_find_update(struct mgc *c, const char *coll, const bson_t *filter,
                    const bson_t *sort, const bson_t *update, bool upsert,
                    bool return_new, mg_doc_fn *rd, void *out, const char *what)
{
    return find_modify(c, coll, filter, sort, update, upsert, return_new, rd,
                       out, what);
}

int mgx_find_delete(struct mgc *c, const char *coll, const bson_t *filter,
                    mg_doc_fn *rd, void *out, const char *what)
{
    return find_modify(c, coll, filter, NULL, NULL, false, false, rd, out,
                       what);
}

static int read_value(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "value");
    return 0;
}

int mgx_next_seq(struct mgc *c, const char *name, int64_t n, int64_t *first)
{
    *first = 0;
    if (n < 1)
        return CP_EINVAL;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, inc;
    mgb_str(&filter, "_id", name);
    bson_append_document_begin(&update, "$inc", -1, &inc);
    mgb_i64(&inc, "value", n);
    bson_append_document_end(&update, &inc);
    int64_t value = 0;
    int rc = mgx_find_update(c, "counters", &filter, NULL, &update, true, true,
                             read_value, &value, "next_seq");
    /* Two first reservations racing outside a transaction: the loser's
     * insert clashes on _id; the counter exists now, so once more. */
    if (rc == CP_ECONFLICT && c->session == NULL)
        rc = mgx_find_update(c, "counters", &filter, NULL, &update, true, true,
                             read_value, &value, "next_seq");
    /* Inside a transaction the clash aborted it: mg_tx runs it again. */
    else if (rc == CP_ECONFLICT)
        rc = CP_EAGAIN;
    bson_destroy(&update);
    bson_destroy(&filter);
    if (rc == 0)
        *first = value - n + 1;
    return rc;
}

int mgx_fence(struct mgc *c, const struct store_fence *fence, int64_t now)
{
    if (fence == NULL)
        return 0;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, child;
    mgb_str(&filter, "_id", fence->lease);
    mgb_str(&filter, "holder", fence->holder);
    bson_append_document_begin(&filter, "expires_at", -1, &child);
    mgb_i64(&child, "$gt", now);
    bson_append_document_end(&filter, &child);
    /* $inc, not a $set of now: a write that changes nothing (two fences
     * in one millisecond) is no write, and would conflict with nothing. */
    bson_append_document_begin(&update, "$inc", -1, &child);
    mgb_i64(&child, "fence_seq", 1);
    bson_append_document_end(&update, &child);
    int64_t matched = 0;
    int rc = mgx_update(c, "leases", &filter, &update, false, false, &matched,
                        NULL, "fence");
    bson_destroy(&update);
    bson_destroy(&filter);
    if (rc == 0 && matched == 0)
        rc = CP_ECONFLICT;
    return rc;
}

int mgx_lock_row(struct mgc *c, const char *coll, const char *id,
                 const char *what)
{
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, child;
    mgb_id(&filter, "_id", id);
    bson_append_document_begin(&update, "$inc", -1, &child);
    mgb_i64(&child, "lock_seq", 1);
    bson_append_document_end(&update, &child);
    int64_t matched = 0;
    int rc = mgx_update(c, coll, &filter, &update, false, false, &matched,
                        NULL, what);
    bson_destroy(&update);
    bson_destroy(&filter);
    if (rc == 0 && matched == 0)
        rc = CP_ENOTFOUND;
    return rc;
}

/* ==== Clients and transactions ==== */

void mg_get(struct mg_store *s, struct mgc *c)
{
    memset(c, 0, sizeof(*c));
    c->s = s;
    c->client = mongoc_client_pool_pop(s->pool);
}

void mg_put(struct mgc *c)
{
    if (c->session != NULL) {
        mongoc_client_session_destroy(c->session);
        c->session = NULL;
    }
    if (c->client != NULL)
        mongoc_client_pool_push(c->s->pool, c->client);
    c->client = NULL;
}

int mg_do(struct store *st, mg_fn *fn, void *ctx)
{
    struct mgc c;
    mg_get(mgs(st), &c);
    int rc = fn(&c, ctx);
    mg_put(&c);
    return rc;
}

/* Sleeps 2^attempt ms plus as much again at random, before a retry. */
static void backoff(int attempt)
{
    int64_t base = (int64_t)2 << (attempt < 8 ? attempt : 8);
    unsigned char r = 0;
    cp_random_bytes(&r, 1);
    int64_t ms = base + (base * r) / 256;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static mongoc_write_concern_t *majority_wc(void)
{
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(wc, MG_WTIMEOUT_MS);
    mongoc_write_concern_set_journal(wc, true);
    return wc;
}

/* Commits, retrying the commit itself on UnknownTransactionCommitResult
 * (the spec's way: the server commits once whatever we send). Returns 0,
 * CP_EAGAIN (run the whole transaction again) or CP_EIO (logged). */
static int commit(struct mgc *c)
{
    for (int i = 0;; i++) {
        bson_t reply = BSON_INITIALIZER;
        bson_error_t e;
        bool ok =
            mongoc_client_session_commit_transaction(c->session, &reply, &e);
        bool unknown =
            !ok && has_label(&reply, "UnknownTransactionCommitResult");
        bool transient = !ok && has_label(&reply, "TransientTransactionError");
        int rc = 0;
        if (!ok && !unknown)
            rc = transient ? CP_EAGAIN : mg_error_code(&e, &reply, NULL, 0);
        bson_destroy(&reply);
        if (ok)
            return 0;
        if (unknown && i < MG_COMMIT_RETRIES) {
            cp_debug("store: commit: %s (retried)", e.message);
            continue;
        }
        if (unknown || rc != CP_EAGAIN) {
            cp_error("store: commit: %s", e.message);
            return CP_EIO;
        }
        last_transient = true;
        cp_debug("store: commit: %s (transaction retried)", e.message);
        return CP_EAGAIN;
    }
}

int mg_tx(struct store *st, mg_fn *fn, void *ctx)
{
    struct mgc c;
    mg_get(mgs(st), &c);
    bson_error_t e;
    c.session = mongoc_client_start_session(c.client, NULL, &e);
    if (c.session == NULL) {
        mg_put(&c);
        return fail_local("start session", e.message);
    }
    mongoc_transaction_opt_t *topts = mongoc_transaction_opts_new();
    mongoc_read_concern_t *rc_snap = mongoc_read_concern_new();
    mongoc_read_concern_set_level(rc_snap, MONGOC_READ_CONCERN_LEVEL_SNAPSHOT);
    mongoc_write_concern_t *wc = majority_wc();
    mongoc_transaction_opts_set_read_concern(topts, rc_snap);
    mongoc_transaction_opts_set_write_concern(topts, wc);

    int rc = CP_EIO;
    for (int attempt = 0; attempt < MG_TX_RETRIES; attempt++) {
        if (attempt > 0)
            backoff(attempt - 1);
        last_transient = false;
        if (!mongoc_client_session_start_transaction(c.session, topts, &e)) {
            rc = fail_local("start transaction", e.message);
            break;
        }
        rc = fn(&c, ctx);
        if (rc == 0) {
            rc = commit(&c);
        } else {
            /* Errors of abortTransaction are ignored (the spec's rule):
             * the server drops the transaction anyway. */
            bson_error_t ae;
            mongoc_client_session_abort_transaction(c.session, &ae);
        }
        if (rc != CP_EAGAIN)
            break;
        cp_debug("store: transaction retried after a conflict");
    }
    if (rc == CP_EAGAIN && last_transient) {
        cp_error("store: transaction kept failing on conflicts");
        rc = CP_EIO;
    }
    mongoc_write_concern_destroy(wc);
    mongoc_read_concern_destroy(rc_snap);
    mongoc_transaction_opts_destroy(topts);
    mg_put(&c);
    return rc;
}

/* ==== Pooled shorthands ==== */

struct one_ctx {
    const char *coll;
    const bson_t *filter, *opts, *update, *doc;
    bool many, upsert;
    int64_t *count;
    mg_doc_fn *rd;
    void *out;
    size_t size;
    void (*release)(void *item);
    void **items;
    size_t *len;
    const char *what;
};

static int find_one_fn(struct mgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return mgx_find_one(c, o->coll, o->filter, o->opts, o->rd, o->out, o->what);
}

int mg_find_one(struct store *st, const char *coll, const bson_t *filter,
                const bson_t *opts, mg_doc_fn *rd, void *out, const char *what)
{
    struct one_ctx o = {.coll = coll,
                        .filter = filter,
                        .opts = opts,
                        .rd = rd,
                        .out = out,
                        .what = what};
    return mg_do(st, find_one_fn, &o);
}

static int find_all_fn(struct mgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return mgx_find_all(c, o->coll, o->filter, o->opts, o->rd, o->size,
                        o->release, o->items, o->len, o->what);
}

int mg_find_all(struct store *st, const char *coll, const bson_t *filter,
                const bson_t *opts, mg_doc_fn *rd, size_t size,
                void (*release)(void *item), void **items, size_t *len,
                const char *what)
{
    struct one_ctx o = {.coll = coll,
                        .filter = filter,
                        .opts = opts,
                        .rd = rd,
                        .size = size,
                        .release = release,
                        .items = items,
                        .len = len,
                        .what = what};
    *items = NULL;
    *len = 0;
    return mg_do(st, find_all_fn, &o);
}

static int update_fn(struct mgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return mgx_update(c, o->coll, o->filter, o->update, o->many, o->upsert,
                      o->count, NULL, o->what);
}

int mg_update(struct store *st, const char *coll, const bson_t *filter,
              const bson_t *update, bool many, bool upsert, int64_t *matched,
              const char *what)
{
    struct one_ctx o = {.coll = coll,
                        .filter = filter,
                        .update = update,
                        .many = many,
                        .upsert = upsert,
                        .count = matched,
                        .what = what};
    return mg_do(st, update_fn, &o);
}

int mg_update_row(struct store *st, const char *coll, const bson_t *filter,
                  const bson_t *update, int none, const char *what)
{
    int64_t matched = 0;
    int rc = mg_update(st, coll, filter, update, false, false, &matched, what);
    return rc == 0 && matched == 0 ? none : rc;
}

static int insert_fn(struct mgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return mgx_insert(c, o->coll, o->doc, o->what);
}

int mg_insert(struct store *st, const char *coll, const bson_t *doc,
              const char *what)
{
    struct one_ctx o = {.coll = coll, .doc = doc, .what = what};
    return mg_do(st, insert_fn, &o);
}

static int delete_fn(struct mgc *c, void *ctx)
{
    struct one_ctx *o = ctx;
    return mgx_delete(c, o->coll, o->filter, o->many, o->count, o->what);
}

int mg_delete(struct store *st, const char *coll, const bson_t *filter,
              bool many, int64_t *deleted, const char *what)
{
    struct one_ctx o = {.coll = coll,
                        .filter = filter,
                        .many = many,
                        .count = deleted,
                        .what = what};
    return mg_do(st, delete_fn, &o);
}

/* ==== Open, close, ping ==== */

static pthread_once_t mg_once = PTHREAD_ONCE_INIT;

/* libmongoc's own messages (a server it cannot reach, a URI option it
 * ignores) go to our log instead of its stdout/stderr printer. */
static void on_mongoc_log(mongoc_log_level_t level, const char *domain,
                          const char *message, void *user_data)
{
    CP_UNUSED(user_data);
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
    case MONGOC_LOG_LEVEL_WARNING:
        cp_warn("store: mongoc %s: %s", domain, message);
        break;
    case MONGOC_LOG_LEVEL_MESSAGE:
    case MONGOC_LOG_LEVEL_INFO:
        cp_debug("store: mongoc %s: %s", domain, message);
        break;
    case MONGOC_LOG_LEVEL_DEBUG:
    case MONGOC_LOG_LEVEL_TRACE:
        break;
    }
}

/* libmongoc maps /dev/shm/mongoc-<pid> for its counters when it
 * initialises, which Debian's build does as the library loads, before
 * main. A master killed with SIGKILL would leave the file behind, and a
 * later process given the same pid would find it taken and say "Falling
 * back to malloc for counters". The mapping outlives its name, so the name
 * goes at once. */
void store_mongo_process_init(void)
{
    char name[32];
    snprintf(name, sizeof(name), "/mongoc-%u", (unsigned)getpid());
    shm_unlink(name);
}

static void mg_init_once(void)
{
    mongoc_init(); /* a no-op after the library's own (see above) */
    store_mongo_process_init();
    mongoc_log_set_handler(on_mongoc_log, NULL);
}

/* The servers named by the URL, for messages: its host list (or the SRV
 * name), never the URL itself, which may carry a password. */
static void hosts_of(const mongoc_uri_t *uri, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    const char *srv = mongoc_uri_get_srv_hostname(uri);
    if (srv != NULL) {
        snprintf(out, size, "%s (SRV)", srv);
        return;
    }
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
         h != NULL && n + 1 < size; h = h->next) {
        int w = snprintf(out + n, size - n, "%s%s", n ? ", " : "",
                         h->host_and_port);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    if (out[0] == '\0')
        snprintf(out, size, "(no host)");
}

/* Sets the URI's options we depend on; the URL may override the
 * timeouts. */
static void tune_uri(mongoc_uri_t *uri)
{
    if (mongoc_uri_get_appname(uri) == NULL)
        mongoc_uri_set_appname(uri, "kontena-master");
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       MG_SELECT_TIMEOUT_MS);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                       MG_SOCKET_TIMEOUT_MS);
    mongoc_write_concern_t *wc = majority_wc();
    mongoc_uri_set_write_concern(uri, wc);
    mongoc_write_concern_destroy(wc);
    mongoc_read_concern_t *rc = mongoc_read_concern_new();
    mongoc_read_concern_set_level(rc, MONGOC_READ_CONCERN_LEVEL_MAJORITY);
    mongoc_uri_set_read_concern(uri, rc);
    mongoc_read_concern_destroy(rc);
}

/* Asks the server what it is ("hello", or "isMaster" before 4.4.2) and
 * refuses one that cannot run transactions. */
static int check_server(struct mg_store *s, char *err, size_t errlen)
{
    char hosts[256];
    hosts_of(s->uri, hosts, sizeof(hosts));
    struct mgc c;
    mg_get(s, &c);
    bson_t cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
    bson_error_t e;
    bson_append_int32(&cmd, "hello", -1, 1);
    bool ok =
        mongoc_client_command_simple(c.client, "admin", &cmd, NULL, &reply, &e);
    if (!ok && e.domain != MONGOC_ERROR_SERVER_SELECTION &&
        e.domain != MONGOC_ERROR_STREAM) {
        bson_destroy(&reply);
        bson_reinit(&cmd);
        bson_append_int32(&cmd, "isMaster", -1, 1);
        ok = mongoc_client_command_simple(c.client, "admin", &cmd, NULL, &reply,
                                          &e);
    }
    mg_put(&c);
    bson_destroy(&cmd);
    int rc = 0;
    if (!ok) {
        if (e.domain == MONGOC_ERROR_SERVER_SELECTION ||
            e.domain == MONGOC_ERROR_STREAM)
            snprintf(err, errlen,
                     "MongoDB store: cannot reach a server at %s: %s", hosts,
                     e.message);
        else
            snprintf(err, errlen, "MongoDB store: %s: hello failed: %s", hosts,
                     e.message);
        rc = CP_EIO;
        goto out;
    }
    if (mgr_i64(&reply, "maxWireVersion") < MG_MIN_WIRE_VERSION) {
        snprintf(err, errlen,
                 "MongoDB store: the server at %s is too old (MongoDB 4.4 "
                 "or newer is needed)",
                 hosts);
        rc = CP_EUNSUPPORTED;
        goto out;
    }
    /* A replica set member names its set; a mongos (sharded cluster)
     * says "isdbgrid" and runs transactions too. */
    char set[128], msg[16];
    mgr_fixed(&reply, "setName", set, sizeof(set));
    mgr_fixed(&reply, "msg", msg, sizeof(msg));
    if (set[0] == '\0' && strcmp(msg, "isdbgrid") != 0) {
        snprintf(err, errlen,
                 "MongoDB store: the server at %s is not a replica set "
                 "member, and transactions need a replica set: start mongod "
                 "with --replSet <name> and run rs.initiate() once (a "
                 "single-member replica set will do)",
                 hosts);
        rc = CP_EUNSUPPORTED;
        goto out;
    }
    /* A URL with one host and neither replicaSet nor directConnection is
     * a direct connection in libmongoc: the driver talks to that member
     * only, so a secondary would fail every write and a failover would
     * never be followed. ("ismaster" is isMaster's name of it.) */
    if (!mgr_bool(&reply, "isWritablePrimary") &&
        !mgr_bool(&reply, "ismaster")) {
        snprintf(err, errlen,
                 "MongoDB store: the server at %s is not the primary of "
                 "replica set %s: name the set in the URL (?replicaSet=%s) "
                 "so that the driver finds its primary",
                 hosts, set, set);
        rc = CP_EUNSUPPORTED;
        goto out;
    }
    const mongoc_host_list_t *hl = mongoc_uri_get_hosts(s->uri);
    if (set[0] != '\0' && mongoc_uri_get_replica_set(s->uri) == NULL &&
        mongoc_uri_get_srv_hostname(s->uri) == NULL &&
        !mongoc_uri_has_option(s->uri, MONGOC_URI_DIRECTCONNECTION) &&
        hl != NULL && hl->next == NULL)
        cp_warn("store: MongoDB URL names no replica set: connected to %s "
                "alone, a failover will not be followed (add "
                "?replicaSet=%s)",
                hosts, set);
out:
    bson_destroy(&reply);
    return rc;
}

static void mg_close(struct store *st);

static int mg_open(const char *url, struct store **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    pthread_once(&mg_once, mg_init_once);
    struct mg_store *s = cp_calloc(1, sizeof(*s));
    s->base.ops = &store_mongo_ops;
    pthread_mutex_init(&s->feed_mu, NULL);
    pthread_cond_init(&s->feed_cv, NULL);
    s->next_sub_id = 1;

    int rc = CP_EINVAL;
    bson_error_t e;
    s->uri = mongoc_uri_new_with_error(url, &e);
    if (s->uri == NULL) {
        /* The driver's message names the fault, not the URL. */
        snprintf(err, errlen, "MongoDB store: invalid URL: %s", e.message);
        goto fail;
    }
    const char *db = mongoc_uri_get_database(s->uri);
    s->db = cp_strdup(db != NULL && db[0] != '\0' ? db : MG_DEFAULT_DB);
    tune_uri(s->uri);

    rc = CP_EIO;
    s->pool = mongoc_client_pool_new_with_error(s->uri, &e);
    if (s->pool == NULL) {
        snprintf(err, errlen, "MongoDB store: %s", e.message);
        goto fail;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);

    rc = check_server(s, err, errlen);
    if (rc != 0)
        goto fail;
    rc = mg_schema_apply(s, err, errlen);
    if (rc != 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    mg_close(&s->base);
    return rc;
}

static void mg_close(struct store *st)
{
    struct mg_store *s = mgs(st);
    mgf_stop(s);
    if (s->pool != NULL)
        mongoc_client_pool_destroy(s->pool);
    if (s->uri != NULL)
        mongoc_uri_destroy(s->uri);
    pthread_mutex_destroy(&s->feed_mu);
    pthread_cond_destroy(&s->feed_cv);
    cp_free(s->db);
    cp_free(s);
}

static int ping_fn(struct mgc *c, void *ctx)
{
    CP_UNUSED(ctx);
    bson_t cmd = BSON_INITIALIZER, reply = BSON_INITIALIZER;
    bson_error_t e;
    bson_append_int32(&cmd, "ping", -1, 1);
    bool ok = mongoc_client_command_simple(c->client, "admin", &cmd, NULL,
                                           &reply, &e);
    int rc = ok ? 0 : fail(c, &e, &reply, "ping");
    bson_destroy(&reply);
    bson_destroy(&cmd);
    return rc == 0 ? 0 : CP_EIO;
}

static int mg_ping(struct store *st)
{
    return mg_do(st, ping_fn, NULL);
}

/* ==== Ops table ==== */

const struct store_ops store_mongo_ops = {
    .name = "mongodb",
    .open = mg_open,
    .close = mg_close,
    .ping = mg_ping,
    .schema_version = mg_schema_version,
    .config_get = mgu_config_get,
    .config_set = mgu_config_set,
    .config_set_if_absent = mgu_config_set_if_absent,
    .user_create = mgu_user_create,
    .user_get = mgu_user_get,
    .user_get_by_email = mgu_user_get_by_email,
    .user_list = mgu_user_list,
    .user_set_roles = mgu_user_set_roles,
    .token_create = mgu_token_create,
    .token_get = mgu_token_get,
    .token_find = mgu_token_find,
    .code_take = mgu_code_take,
    .refresh_take = mgu_refresh_take,
    .token_list_by_user = mgu_token_list_by_user,
    .token_delete = mgu_token_delete,
    .token_touch = mgu_token_touch,
    .token_confirm = mgu_token_confirm,
    .bootstrap_codes_delete = mgu_bootstrap_codes_delete,
    .tokens_expire = mgu_tokens_expire,
    .grid_create = mgu_grid_create,
    .grid_get = mgu_grid_get,
    .grid_get_by_token_hash = mgu_grid_get_by_token_hash,
    .grid_get_by_id = mgu_grid_get_by_id,
    .grid_list = mgu_grid_list,
    .grid_update = mgu_grid_update,
    .grid_delete = mgu_grid_delete,
    .grid_user_add = mgu_grid_user_add,
    .grid_user_remove = mgu_grid_user_remove,
    .grid_users = mgu_grid_users,
    .grid_is_member = mgu_grid_is_member,
    .node_get = mgn_node_get,
    .node_find = mgn_node_find,
    .node_get_by_node_id = mgn_node_get_by_node_id,
    .node_get_by_token_hash = mgn_node_get_by_token_hash,
    .node_list = mgn_node_list,
    .node_create = mgn_node_create,
    .node_bind = mgn_node_bind,
    .node_update = mgn_node_update,
    .node_set_token = mgn_node_set_token,
    .node_delete = mgn_node_delete,
    .node_plug = mgn_node_plug,
    .node_unplug = mgn_node_unplug,
    .node_set_info = mgn_node_set_info,
    .node_add_stats = mgn_node_add_stats,
    .nodes_add_stats = mgn_nodes_add_stats,
    .nodes_seen = mgn_nodes_seen,
    .nodes_sweep = mgn_nodes_sweep,
    .service_create = mgv_service_create,
    .service_get = mgv_service_get,
    .service_get_by_id = mgv_service_get_by_id,
    .service_list = mgv_service_list,
    .service_update = mgv_service_update,
    .service_delete = mgv_service_delete,
    .instance_list = mgv_instance_list,
    .instances_on_node = mgv_instances_on_node,
    .node_pod_rows = mgv_node_pod_rows,
    .instance_put = mgv_instance_put,
    .instance_put_many = mgv_instance_put_many,
    .instance_trim = mgv_instance_trim,
    .instance_report = mgv_instance_report,
    .instances_report_many = mgv_instances_report_many,
    .instances_detach_node = mgv_instances_detach_node,
    .deploy_queue = mgd_deploy_queue,
    .deploy_get = mgd_deploy_get,
    .deploy_claim = mgd_deploy_claim,
    .deploy_update = mgd_deploy_update,
    .deploy_list = mgd_deploy_list,
    .deploys_prune = mgd_deploys_prune,
    .container_save = mgd_container_save,
    .container_delete = mgd_container_delete,
    .containers_cleanup = mgd_containers_cleanup,
    .containers_mark_deleted = mgd_containers_mark_deleted,
    .container_list = mgd_container_list,
    .container_get = mgd_container_get,
    .logs_append = mgd_logs_append,
    .logs_read = mgd_logs_read,
    .events_append = mgd_events_append,
    .events_read = mgd_events_read,
    .history_trim = mgd_history_trim,
    .secret_create = mgs_secret_create,
    .secret_get = mgs_secret_get,
    .secret_list = mgs_secret_list,
    .secret_update = mgs_secret_update,
    .secret_delete = mgs_secret_delete,
    .secret_reseal = mgs_secret_reseal,
    .grid_token_reseal = mgs_grid_token_reseal,
    .node_token_reseal = mgs_node_token_reseal,
    .secrets_page = mgs_secrets_page,
    .registry_create = mga_registry_create,
    .registry_list = mga_registry_list,
    .registry_get = mga_registry_get,
    .registry_delete = mga_registry_delete,
    .registry_reseal = mgs_registry_reseal,
    .audit_append = mga_audit_append,
    .audit_list = mga_audit_list,
    .audit_trim = mga_audit_trim,
    .stack_create = mgk_stack_create,
    .stack_get = mgk_stack_get,
    .stack_get_by_id = mgk_stack_get_by_id,
    .stack_list = mgk_stack_list,
    .stack_revision_get = mgk_stack_revision_get,
    .stack_revise = mgk_stack_revise,
    .stack_update = mgk_stack_update,
    .stack_delete = mgk_stack_delete,
    .stack_deploy_queue = mgk_stack_deploy_queue,
    .stack_deploy_get = mgk_stack_deploy_get,
    .stack_deploy_claim = mgk_stack_deploy_claim,
    .stack_deploy_update = mgk_stack_deploy_update,
    .stack_deploy_list = mgk_stack_deploy_list,
    .stack_deploy_services = mgk_stack_deploy_services,
    .stack_deploys_prune = mgk_stack_deploys_prune,
    .kv_get = mgu_kv_get,
    .kv_cas = mgu_kv_cas,
    .lease_acquire = mgu_lease_acquire,
    .lease_release = mgu_lease_release,
    .feed_publish = mgf_publish,
    .feed_subscribe = mgf_subscribe,
    .feed_unsubscribe = mgf_unsubscribe,
};
