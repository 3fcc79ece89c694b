/* The audit log (spec 3 "audit-log row", 8 "audit_logs", 11 row 8): every
 * mutating request and every API_AUDIT_READ route, once the caller is
 * authenticated, leaves one entry: who, from where, which resource, what
 * action, how it ended, and the request body with secret material
 * filtered. api_run() calls audit_request() once, after the handler;
 * reads that are not audited never reach the store here.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AUDIT_H
#define CP_AUDIT_H

#include <jansson.h>
#include <stdbool.h>

#include "api.h"

#define AUDIT_FILTERED "[FILTERED]"
/* The most of a filtered body an entry keeps (bytes of JSON text). */
#define AUDIT_BODY_MAX 8192
#define AUDIT_LIMIT_DEFAULT 500
#define AUDIT_LIMIT_MAX 3000

/* What a request did, derived from its route (audit_describe). Owned
 * strings; release with audit_target_release(). */
struct audit_target {
    char *resource_type; /* the route's collection: "grids", "secrets" */
    char *resource_name; /* "G/DB_PASS"; "" when the route names none */
    char *event_name;    /* create, update, delete, show, deploy, ... */
    char *service_id;    /* "G/S/svc" on service routes, else NULL */
};

/* True when a request on route with method is recorded (it still must be
 * authenticated). Pure. */
bool audit_is_wanted(const struct api_route *route, enum api_method method);

/* Derives the target of a request from its route pattern, method, route
 * captures (params, as many as the pattern has) and parsed body (may be
 * NULL). Pure. */
void audit_describe(const char *pattern, enum api_method method,
                    char *const *params, const json_t *body,
                    struct audit_target *out);
void audit_target_release(struct audit_target *t);

/* A deep copy of body with secret material replaced by AUDIT_FILTERED:
 * members named value, password, token, refresh_token, access_token,
 * code, secret, client_secret, private_key, passphrase or ending in
 * _password, _secret, _token or _key (any case), and every value below a
 * "secrets" member. NULL for NULL. Pure. */
json_t *audit_filter_body(const json_t *body);

/* Records the request if audit_is_wanted() and the caller was
 * authenticated. One store insert; a failure is logged, never answered. */
void audit_request(const struct api_route *route, const struct api_req *req,
                   const struct api_res *res);

/* The API JSON of an entry (the original's fields plus status, method,
 * path and request_body). New reference. */
json_t *audit_entry_json(const struct store_audit *a);

#endif
