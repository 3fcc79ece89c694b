/* The master<->agent protocol, written once for both sides (spec 4):
 * handshake headers, close codes, method names, frame kinds and limits.
 * The byte encoding lives in rpc.h.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_PROTO_H
#define CP_PROTO_H

/* ==== Handshake headers (agent -> master) ==== */
#define PROTO_H_NODE_ID "kontena-node-id"
#define PROTO_H_NODE_NAME "kontena-node-name"
#define PROTO_H_VERSION "kontena-version"
#define PROTO_H_NODE_LABELS "kontena-node-labels"
#define PROTO_H_CONNECTED_AT "kontena-connected-at"
#define PROTO_H_GRID_TOKEN "kontena-grid-token"
#define PROTO_H_NODE_TOKEN "kontena-node-token"

/* ==== Close codes (master -> agent) ==== */
enum proto_close {
    PROTO_CLOSE_NORMAL = 1000,
    PROTO_CLOSE_GOING_AWAY = 1001,
    PROTO_CLOSE_PROTOCOL = 1002,   /* malformed frame or message */
    PROTO_CLOSE_TOO_BIG = 1009,    /* message over PROTO_MAX_MESSAGE */
    PROTO_CLOSE_MISSING_HEADERS = 4000,
    PROTO_CLOSE_BAD_GRID_TOKEN = 4001,     /* agent shuts down */
    PROTO_CLOSE_BAD_NODE_TOKEN = 4002,
    PROTO_CLOSE_NODE_TOKEN_TAKEN = 4003,
    PROTO_CLOSE_NO_TOKEN = 4004,
    PROTO_CLOSE_GRID_TOKEN_FOR_NODE_TOKEN_NODE = 4005,
    PROTO_CLOSE_NODE_ID_TAKEN = 4006,
    PROTO_CLOSE_BAD_VERSION = 4010, /* agent shuts down */
    PROTO_CLOSE_CLOCK_SKEW = 4020,
    PROTO_CLOSE_PING_TIMEOUT = 4030,
    PROTO_CLOSE_DISCONNECTED = 4031,
    PROTO_CLOSE_NODE_REMOVED = 4040, /* agent shuts down */
    PROTO_CLOSE_SUPERSEDED = 4041,   /* agent shuts down */
};

/* True for the close codes on which the original agent stops for good
 * instead of reconnecting. */
static inline int proto_close_is_final(int code)
{
    return code == PROTO_CLOSE_BAD_GRID_TOKEN ||
           code == PROTO_CLOSE_BAD_VERSION ||
           code == PROTO_CLOSE_NODE_REMOVED ||
           code == PROTO_CLOSE_SUPERSEDED;
}

/* ==== Frame kinds ==== */
enum proto_kind {
    PROTO_REQUEST = 0,  /* [0, id, method, params] */
    PROTO_RESPONSE = 1, /* [1, id, error|nil, result] */
    PROTO_NOTIFY = 2,   /* [2, method, params] */
};

/* ==== Limits ==== */
#define PROTO_MAX_MESSAGE (4u * 1024 * 1024) /* one WebSocket message */
#define PROTO_MAX_DEPTH 32                   /* nesting inside a message */
#define PROTO_MAX_METHOD 128
#define PROTO_MAX_OUTSTANDING 256 /* master->agent requests in flight */

/* ==== Error codes inside response frames ==== */
#define PROTO_ERR_NOT_FOUND 404
#define PROTO_ERR_INTERNAL 500
#define PROTO_ERR_NOT_IMPLEMENTED 501
#define PROTO_ERR_TIMEOUT 503

/* ==== Methods: master -> agent ==== */
#define PROTO_M_MASTER_INFO "/agent/master_info"
#define PROTO_M_NODE_INFO "/agent/node_info"
#define PROTO_M_PODS_NOTIFY "/service_pods/notify_update"
#define PROTO_M_PODS_RESTART "/service_pods/restart"
#define PROTO_M_CONTAINER_INSPECT "/containers/inspect"

/* ==== Methods: agent -> master ==== */
#define PROTO_M_NODES_UPDATE "/nodes/update"
#define PROTO_M_NODES_GET "/nodes/get"
#define PROTO_M_NODES_STATS "/nodes/stats"
#define PROTO_M_CONTAINERS_SAVE "/containers/save"
#define PROTO_M_CONTAINERS_EVENT "/containers/event"
#define PROTO_M_CONTAINERS_CLEANUP "/containers/cleanup"
#define PROTO_M_CONTAINERS_LOG_BATCH "/containers/log_batch"
#define PROTO_M_CONTAINERS_STAT "/containers/stat"
#define PROTO_M_CONTAINERS_HEALTH "/containers/health"
#define PROTO_M_PODS_LIST "/node_service_pods/list"
#define PROTO_M_PODS_SET_STATE "/node_service_pods/set_state"
#define PROTO_M_PODS_EVENT "/node_service_pods/event"
#define PROTO_M_PODS_MARK_ONESHOT "/node_service_pods/mark_oneshot_hook"

/* ==== Timings (appendix A) ==== */
#define PROTO_PING_INTERVAL_S 30
#define PROTO_PONG_TIMEOUT_S 5 /* WEBSOCKET_TIMEOUT default */
#define PROTO_BACKOFF_CAP_S 90
#define PROTO_NODE_UPDATE_INTERVAL_S 60
#define PROTO_NODE_STATS_INTERVAL_S 60

/* Kontena-Connected-At: "2026-11-25 13:00:00.123456789Z" (UTC). */
#define PROTO_TIME_FORMAT_LEN 32

#endif
