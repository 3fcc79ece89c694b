/* The HTTP front of the master: h2o on the master's libuv loop, one
 * listener, hard limits on header blocks and bodies, the request log, and
 * the hand-off of each API call to a worker thread and back.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_HTTP_H
#define CP_HTTP_H

#include "master.h"

/* Most streamed answers (followed logs) open at once; 503 beyond. */
#define HTTP_MAX_STREAMS 256

struct http_server;

/* Listens on cfg.bind:cfg.port. Returns NULL after logging why. */
struct http_server *http_start(struct master *m);

/* The client address of a request: the TCP peer, or the address a
 * trusted proxy forwarded (KONTENA_TRUSTED_PROXIES). A new string. */
struct st_h2o_req_t;
struct proxy_list;
char *http_client_ip(struct st_h2o_req_t *req,
                     const struct proxy_list *proxies);
/* Stops accepting; calls done on the loop once in-flight API calls have
 * finished (or after timeout_ms). */
void http_shutdown(struct http_server *s, int timeout_ms,
                   void (*done)(void *ctx), void *ctx);
/* Frees what is left; call after the loop has stopped. */
void http_free(struct http_server *s);

#endif
