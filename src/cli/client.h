/* HTTP client for the master's REST API over libcurl: JSON in and out,
 * bearer token, one refresh-and-retry when the stored token has expired,
 * bounded response bodies. Errors come back as a code plus a lower-case
 * reason from client_error() for the caller to print once.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_CLIENT_H
#define CP_CLI_CLIENT_H

#include "config.h"

#include <jansson.h>
#include <stdbool.h>

/* Responses bigger than this are an error, not a reallocation. */
#define CLIENT_MAX_BODY (16 * 1024 * 1024)

struct client;

/* A client for srv (borrowed; must outlive the client). When cfg is not
 * NULL a token refresh is written back to it with config_save(). token
 * overrides the server's token when not NULL. */
struct client *client_new(struct config *cfg, struct config_server *srv,
                          const char *token);
void client_free(struct client *c);

/* Sends method path (path starts with "/") with an optional JSON body.
 * On a 2xx answer returns 0 and, when out is not NULL, a new reference to
 * the parsed body (JSON null for an empty body). Otherwise returns
 * CP_EIO (no connection), CP_EPROTO (bad answer), CP_EPERM (token
 * rejected), CP_ENOTFOUND (404) or CP_EINVAL (other API error) and sets
 * client_error(). */
int client_request(struct client *c, const char *method, const char *path,
                   const json_t *body, json_t **out);

/* The reason for the last failure; borrowed, valid until the next call. */
const char *client_error(const struct client *c);
/* The HTTP status of the last answer, 0 when none arrived. */
long client_status(const struct client *c);
/* True when the last failure was the master refusing the token. */
bool client_is_auth_error(const struct client *c);

/* Sends a request without any token (for POST /oauth2/token). */
void client_set_anonymous(struct client *c, bool is_anonymous);

/* Percent-encodes s for use as one URL path segment (caller frees). */
char *client_escape(const char *s);

/* Turns a master error body into one line: a 422 field hash becomes
 * "field: message; field: message", {"error":"x"} becomes "x". Returns a
 * new string or NULL when the body says nothing useful. */
char *client_error_text(const json_t *body);

#endif
