/* MessagePack-RPC frames of the agent protocol (spec 4.3), converted to and
 * from jansson trees so that handlers on both sides work with one data
 * model. Decoding is strict and bounded: the bytes are walked once to
 * check every length against what is left and the nesting depth, before
 * msgpack-c builds anything.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_RPC_H
#define CP_RPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* One decoded frame. Strings and trees are owned; release with
 * rpc_msg_release(). */
struct rpc_msg {
    enum proto_kind kind;
    uint32_t id;    /* request, response */
    char *method;   /* request, notify */
    json_t *params; /* request, notify: an array */
    json_t *error;  /* response: NULL when the call succeeded */
    json_t *result; /* response: a value (null included) */
};

/* Decodes one frame of len bytes. Returns 0, or CP_EPROTO with a one-line
 * reason in err (e.g. "truncated", "not an array", "unknown kind 7"). */
int rpc_decode(const void *buf, size_t len, struct rpc_msg *out, char *err,
               size_t errlen);
void rpc_msg_release(struct rpc_msg *m);

/* Encoders: *out is a new buffer of *len bytes (caller frees with
 * cp_free). params must be an array (NULL = []). */
void rpc_encode_request(uint32_t id, const char *method,
                        const json_t *params, char **out, size_t *len);
void rpc_encode_response(uint32_t id, const json_t *error,
                         const json_t *result, char **out, size_t *len);
void rpc_encode_notify(const char *method, const json_t *params, char **out,
                       size_t *len);

/* An error object {code, message} for responses (new reference). */
json_t *rpc_error(int code, const char *message);

/* Formats ms since epoch as Kontena-Connected-At text into out (>= 32). */
void rpc_format_time(int64_t ms, char *out, size_t len);
/* Parses Kontena-Connected-At text ("YYYY-MM-DD HH:MM:SS.nnnZ" or ISO);
 * 0 or CP_EINVAL. */
int rpc_parse_time(const char *s, int64_t *out_ms);

#endif
