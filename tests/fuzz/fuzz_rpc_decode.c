/* libFuzzer target for the agent protocol's frame decoder (spec 4.3,
 * src/common/rpc.c): every WebSocket message an agent sends reaches
 * rpc_decode() before anything else looks at it.
 *
 *   1. rpc_decode() on the raw bytes: it returns 0 or CP_EPROTO with a
 *      non-empty reason, and on failure leaves nothing allocated.
 *   2. A successful decode is re-encoded with the matching rpc_encode_*
 *      and decoded again: that must succeed and give the same frame
 *      (kind, id, method, and params/error/result equal by json_equal).
 *      Strings come back valid UTF-8, so a third round gives the same
 *      bytes as the second.
 * Nothing here may crash, trip ASan/UBSan, or leak.
 *
 * Build: cmake -DFUZZ=ON with CC=clang (see tests/fuzz/run.sh).
 * SPDX-License-Identifier: Apache-2.0 */
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/proto.h"
#include "../../src/common/rpc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct rpc_msg *a,
                const struct rpc_msg *b)
{
    fprintf(stderr, "fuzz_rpc_decode: %s\n", what);
    const struct rpc_msg *ms[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const struct rpc_msg *m = ms[i];
        if (m == NULL)
            continue;
        char *p = m->params ? json_dumps(m->params, JSON_ENCODE_ANY) : NULL;
        char *e = m->error ? json_dumps(m->error, JSON_ENCODE_ANY) : NULL;
        char *r = m->result ? json_dumps(m->result, JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "  [%d] kind %d id %u method %s\n      params %s\n"
                        "      error %s\n      result %s\n",
                i, m->kind, m->id, m->method ? m->method : "(null)",
                p ? p : "(null)", e ? e : "(null)", r ? r : "(null)");
        free(p);
        free(e);
        free(r);
    }
    abort();
}

static bool same_json(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return json_equal(a, b);
}

static void encode(const struct rpc_msg *m, char **out, size_t *len)
{
    switch (m->kind) {
    case PROTO_REQUEST:
        rpc_encode_request(m->id, m->method, m->params, out, len);
        return;
    case PROTO_RESPONSE:
        rpc_encode_response(m->id, m->error, m->result, out, len);
        return;
    case PROTO_NOTIFY:
        rpc_encode_notify(m->method, m->params, out, len);
        return;
    }
    die("decoded an unknown kind", m, NULL);
}

static void check_shape(const struct rpc_msg *m)
{
    switch (m->kind) {
    case PROTO_REQUEST:
    case PROTO_NOTIFY:
        if (m->method == NULL || !json_is_array(m->params) ||
            m->error != NULL || m->result != NULL)
            die("request/notify without method or params array", m, NULL);
        if (strlen(m->method) > PROTO_MAX_METHOD)
            die("method longer than PROTO_MAX_METHOD", m, NULL);
        return;
    case PROTO_RESPONSE:
        if (m->method != NULL || m->params != NULL || m->result == NULL)
            die("response with method/params or without result", m, NULL);
        if (m->error != NULL && !json_is_object(m->error) &&
            !json_is_string(m->error))
            die("response error neither map nor string", m, NULL);
        return;
    }
    die("unknown kind", m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_msg m1;
    char err[256];
    err[0] = '\0';
    int rc = rpc_decode(data, size, &m1, err, sizeof(err));
    if (rc != 0) {
        if (rc != CP_EPROTO)
            die("rpc_decode failed with something other than CP_EPROTO",
                NULL, NULL);
        if (err[0] == '\0')
            die("rpc_decode failed without a reason", NULL, NULL);
        if (m1.method || m1.params || m1.error || m1.result)
            die("failed rpc_decode left data behind", &m1, NULL);
        return 0;
    }
    check_shape(&m1);

    char *buf1;
    size_t len1;
    encode(&m1, &buf1, &len1);
    /* Bad UTF-8 grows by up to 3x when replaced: only a re-encoding
     * that still fits the protocol's limit has to decode. */
    if (len1 > PROTO_MAX_MESSAGE) {
        cp_free(buf1);
        rpc_msg_release(&m1);
        return 0;
    }
    struct rpc_msg m2;
    if (rpc_decode(buf1, len1, &m2, err, sizeof(err)) != 0) {
        fprintf(stderr, "re-decode failed: %s\n", err);
        die("re-encoded frame does not decode", &m1, NULL);
    }
    check_shape(&m2);
    if (m1.kind != m2.kind)
        die("kind changed", &m1, &m2);
    if (m1.kind != PROTO_NOTIFY && m1.id != m2.id)
        die("id changed", &m1, &m2);
    if ((m1.method == NULL) != (m2.method == NULL) ||
        (m1.method != NULL && strcmp(m1.method, m2.method) != 0))
        die("method changed", &m1, &m2);
    if (!same_json(m1.params, m2.params))
        die("params changed", &m1, &m2);
    if (!same_json(m1.error, m2.error))
        die("error changed", &m1, &m2);
    if (!same_json(m1.result, m2.result))
        die("result changed", &m1, &m2);

    /* A third round is byte-for-byte stable. */
    char *buf2;
    size_t len2;
    encode(&m2, &buf2, &len2);
    if (len2 != len1 || memcmp(buf1, buf2, len1) != 0) {
        /* Object key order may differ between two equal jansson
         * objects only if insertion order differs; it does not here. */
        die("re-encoding is not stable", &m1, &m2);
    }
    cp_free(buf2);
    cp_free(buf1);
    rpc_msg_release(&m2);
    rpc_msg_release(&m1);
    return 0;
}
