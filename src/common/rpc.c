/* MessagePack-RPC frames <-> jansson, over msgpack-c.
 * SPDX-License-Identifier: Apache-2.0 */
#include "rpc.h"
#include "alloc.h"
#include "err.h"
#include "util.h"

#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ==== Bounded pre-scan ==== */

struct scan {
    const unsigned char *p;
    size_t left;
    const char *why;
};

static bool take(struct scan *s, size_t n)
{
    if (n > s->left) {
        s->why = "truncated";
        return false;
    }
    s->p += n;
    s->left -= n;
    return true;
}

static bool be(struct scan *s, int bytes, uint64_t *out)
{
    if ((size_t)bytes > s->left) {
        s->why = "truncated";
        return false;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | s->p[i];
    s->p += bytes;
    s->left -= (size_t)bytes;
    *out = v;
    return true;
}

static bool scan_value(struct scan *s, int depth);

static bool scan_items(struct scan *s, uint64_t n, int depth)
{
    /* Every item takes at least one byte: a count beyond what is left is a
     * lie, refused before anything is allocated for it. */
    if (n > s->left) {
        s->why = "container length exceeds the message";
        return false;
    }
    if (depth >= PROTO_MAX_DEPTH) {
        s->why = "nesting too deep";
        return false;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!scan_value(s, depth + 1))
            return false;
    }
    return true;
}

static bool scan_value(struct scan *s, int depth)
{
    if (s->left == 0) {
        s->why = "truncated";
        return false;
    }
    unsigned char b = *s->p;
    take(s, 1);
    uint64_t n;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return true;
    if ((b & 0xf0) == 0x80)
        return scan_items(s, 2u * (b & 0x0f), depth);
    if ((b & 0xf0) == 0x90)
        return scan_items(s, b & 0x0f, depth);
    if ((b & 0xe0) == 0xa0)
        return take(s, b & 0x1f);
    switch (b) {
    case 0xc4: /* bin 8/16/32, str 8/16/32 */
    case 0xd9:
        return be(s, 1, &n) && take(s, n);
    case 0xc5:
    case 0xda:
        return be(s, 2, &n) && take(s, n);
    case 0xc6:
    case 0xdb:
        return be(s, 4, &n) && take(s, n);
    case 0xca:
        return take(s, 4);
    case 0xcb:
        return take(s, 8);
    case 0xcc:
    case 0xd0:
        return take(s, 1);
    case 0xcd:
    case 0xd1:
        return take(s, 2);
    case 0xce:
    case 0xd2:
        return take(s, 4);
    case 0xcf:
    case 0xd3:
        return take(s, 8);
    case 0xdc:
        return be(s, 2, &n) && scan_items(s, n, depth);
    case 0xdd:
        return be(s, 4, &n) && scan_items(s, n, depth);
    case 0xde:
        return be(s, 2, &n) && scan_items(s, 2 * n, depth);
    case 0xdf:
        return be(s, 4, &n) && scan_items(s, 2 * n, depth);
    default:
        /* 0xc1 (never used) and the ext family: not part of the protocol. */
        s->why = b == 0xc1 ? "invalid byte 0xc1" : "ext types not supported";
        return false;
    }
}

/* ==== msgpack-c objects -> jansson ==== */

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (len > n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    }
    return len;
}

/* A string that is not valid UTF-8 (log lines can carry anything) keeps
 * its valid parts; each bad byte becomes U+FFFD. */
static json_t *utf8_string(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    if (j != NULL)
        return j;
    struct cp_buf b;
    cp_buf_init(&b, n * 3 + 1);
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_seq((const unsigned char *)p + i, n - i);
        if (len > 0) {
            cp_buf_append(&b, p + i, len);
            i += len;
        } else {
            cp_buf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    cp_buf_release(&b);
    return j ? j : json_string("");
}

static json_t *to_json(const msgpack_object *o, const char **why)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return json_null();
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return utf8_string(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return utf8_string(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *v = to_json(&o->via.array.ptr[i], why);
            if (v == NULL) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR) {
                *why = "map key is not a string";
                json_decref(m);
                return NULL;
            }
            char *key = cp_strndup(k->via.str.ptr, k->via.str.size);
            if (strlen(key) != k->via.str.size) {
                *why = "map key contains a NUL byte";
                cp_free(key);
                json_decref(m);
                return NULL;
            }
            json_t *v = to_json(&o->via.map.ptr[i].val, why);
            /* json_object_set_new takes v even when it refuses the key. */
            if (v == NULL || json_object_set_new(m, key, v) != 0) {
                if (v != NULL)
                    *why = "map key is not valid UTF-8";
                cp_free(key);
                json_decref(m);
                return NULL;
            }
            cp_free(key);
        }
        return m;
    }
    case MSGPACK_OBJECT_EXT:
        break;
    }
    *why = "unsupported type";
    return NULL;
}

int rpc_decode(const void *buf, size_t len, struct rpc_msg *out, char *err,
               size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *why = NULL;
    if (len > PROTO_MAX_MESSAGE) {
        why = "message too large";
        goto fail;
    }
    struct scan s = {buf, len, NULL};
    if (!scan_value(&s, 0)) {
        why = s.why;
        goto fail;
    }
    if (s.left != 0) {
        why = "trailing bytes after the message";
        goto fail;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        why = "malformed MessagePack";
        goto fail;
    }
    json_t *root = to_json(&up.data, &why);
    msgpack_unpacked_destroy(&up);
    if (root == NULL)
        goto fail;
    size_t n = json_array_size(root);
    json_t *kind = json_array_get(root, 0);
    if (!json_is_array(root) || n < 3 || !json_is_integer(kind)) {
        why = "not an RPC array";
        goto fail_root;
    }
    json_t *a1 = json_array_get(root, 1);
    switch (json_integer_value(kind)) {
    case PROTO_REQUEST:
    case PROTO_RESPONSE: {
        json_int_t id = json_is_integer(a1) ? json_integer_value(a1) : -1;
        if (n != 4 || id < 0 || id > UINT32_MAX) {
            why = "bad request or response id";
            goto fail_root;
        }
        out->id = (uint32_t)id;
        if (json_integer_value(kind) == PROTO_REQUEST) {
            out->kind = PROTO_REQUEST;
            json_t *m = json_array_get(root, 2);
            json_t *p = json_array_get(root, 3);
            if (!json_is_string(m) ||
                json_string_length(m) > PROTO_MAX_METHOD ||
                !json_is_array(p)) {
                why = "request needs a method string and a params array";
                goto fail_root;
            }
            out->method = cp_strdup(json_string_value(m));
            out->params = json_incref(p);
        } else {
            out->kind = PROTO_RESPONSE;
            json_t *e = json_array_get(root, 2);
            if (!json_is_null(e)) {
                if (!json_is_object(e) && !json_is_string(e)) {
                    why = "response error must be nil, a map or a string";
                    goto fail_root;
                }
                out->error = json_incref(e);
            }
            out->result = json_incref(json_array_get(root, 3));
        }
        break;
    }
    case PROTO_NOTIFY: {
        json_t *p = json_array_get(root, 2);
        if (n != 3 || !json_is_string(a1) ||
            json_string_length(a1) > PROTO_MAX_METHOD || !json_is_array(p)) {
            why = "notification needs a method string and a params array";
            goto fail_root;
        }
        out->kind = PROTO_NOTIFY;
        out->method = cp_strdup(json_string_value(a1));
        out->params = json_incref(p);
        break;
    }
    default:
        why = "unknown message kind";
        goto fail_root;
    }
    json_decref(root);
    return 0;
fail_root:
    json_decref(root);
fail:
    rpc_msg_release(out);
    if (err != NULL)
        snprintf(err, errlen, "%s", why ? why : "malformed message");
    return CP_EPROTO;
}

void rpc_msg_release(struct rpc_msg *m)
{
    cp_free(m->method);
    json_decref(m->params);
    json_decref(m->error);
    json_decref(m->result);
    memset(m, 0, sizeof(*m));
}

/* ==== jansson -> MessagePack ==== */

static void pack(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        return;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        return;
    case JSON_STRING: {
        size_t n = json_string_length(j);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, json_string_value(j), n);
        return;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack(pk, v);
        return;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)(uintptr_t)j, k, v)
        {
            size_t n = strlen(k);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, k, n);
            pack(pk, v);
        }
        return;
    }
    }
}

static void finish(msgpack_sbuffer *sb, char **out, size_t *len)
{
    *out = cp_malloc(sb->size);
    memcpy(*out, sb->data, sb->size);
    *len = sb->size;
    msgpack_sbuffer_destroy(sb);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void rpc_encode_request(uint32_t id, const char *method,
                        const json_t *params, char **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, PROTO_REQUEST);
    msgpack_pack_uint32(&pk, id);
    pack_str(&pk, method);
    if (params != NULL)
        pack(&pk, params);
    else
        msgpack_pack_array(&pk, 0);
    finish(&sb, out, len);
}

void rpc_encode_response(uint32_t id, const json_t *error,
                         const json_t *result, char **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, PROTO_RESPONSE);
    msgpack_pack_uint32(&pk, id);
    if (error != NULL)
        pack(&pk, error);
    else
        msgpack_pack_nil(&pk);
    if (result != NULL)
        pack(&pk, result);
    else
        msgpack_pack_nil(&pk);
    finish(&sb, out, len);
}

void rpc_encode_notify(const char *method, const json_t *params, char **out,
                       size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, PROTO_NOTIFY);
    pack_str(&pk, method);
    if (params != NULL)
        pack(&pk, params);
    else
        msgpack_pack_array(&pk, 0);
    finish(&sb, out, len);
}

json_t *rpc_error(int code, const char *message)
{
    return json_pack("{s:i,s:s}", "code", code, "message", message);
}

void rpc_format_time(int64_t ms, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%09dZ", (int)(ms % 1000) * 1000000);
}

int rpc_parse_time(const char *s, int64_t *out_ms)
{
    char buf[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return CP_EINVAL;
    memcpy(buf, s, n + 1);
    /* "YYYY-MM-DD HH:MM:SS.nnnnnnnnnZ" -> ISO with a 'T'; also accept a
     * trailing " UTC" as Ruby's Time#to_s writes it. */
    if (n > 10 && buf[10] == ' ')
        buf[10] = 'T';
    if (n > 4 && strcmp(buf + n - 4, " UTC") == 0) {
        buf[n - 4] = 'Z';
        buf[n - 3] = '\0';
    }
    return cp_time_parse_iso(buf, out_ms);
}
