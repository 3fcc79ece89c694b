/* libFuzzer target for the JSON (and form) request bodies of the grids
 * slice.
 *
 * Every input is used whole, so the seed corpus stays plain JSON:
 *   1. cp_json_parse() on the raw bytes; when that yields an object, the
 *      grid validators the create/update handlers run on it
 *      (valid_grid_settings() into an empty and into a pre-filled settings
 *      object, valid_grid_name/token/cidr/cidr_within on the string
 *      members), then a cp_json_dump() round trip that must re-parse.
 *   2. The real request pipeline, api_run(), on a public POST route that
 *      accepts form bodies, once labelled application/json and once
 *      application/x-www-form-urlencoded (which reaches form_parse() when
 *      the body does not start with '{'); the route's handler runs the
 *      same validators on req->json.
 *   3. api_query() with the bytes up to the first NUL as the query string
 *      (the other caller of form_parse()).
 * Nothing here may crash, trip ASan/UBSan, or leak.
 *
 * Build: cmake -DFUZZ=ON with CC=clang (see tests/fuzz/run.sh).
 * SPDX-License-Identifier: Apache-2.0 */
#include "../../src/common/alloc.h"
#include "../../src/common/json.h"
#include "../../src/common/log.h"
#include "../../src/master/api.h"
#include "../../src/master/valid.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Bodies larger than the master's default --max-body never reach the
 * parser; keep the fuzzer inside what the server accepts. */
#define MAX_BODY (1024 * 1024)

static void check_strings(const json_t *body)
{
    const char *name = cp_json_str(body, "name");
    if (name != NULL)
        (void)valid_grid_name(name);
    (void)valid_name(name != NULL ? name : "");
    const char *token = cp_json_str(body, "token");
    if (token != NULL)
        (void)valid_token(token);
    const char *subnet = cp_json_str(body, "subnet");
    const char *supernet = cp_json_str(body, "supernet");
    if (subnet != NULL)
        (void)valid_cidr(subnet);
    if (supernet != NULL)
        (void)valid_cidr(supernet);
    if (subnet != NULL && supernet != NULL)
        (void)valid_cidr_within(subnet, supernet);
    json_t *stats = json_object_get(body, "stats");
    const char *server = cp_json_str(json_object_get(stats, "statsd"),
                                     "server");
    if (server != NULL)
        (void)valid_host_port(server);
    (void)cp_json_int(body, "initial_size", 1);
    (void)cp_json_bool(body, "anything", false);
    (void)cp_json_is_string_array(json_object_get(body, "trusted_subnets"));
}

static void check_settings(const json_t *body)
{
    /* As api_grids_create: fresh settings. */
    json_t *out = json_object();
    json_t *errors = json_object();
    if (!valid_grid_settings(body, out, errors)) {
        if (json_object_size(errors) == 0)
            abort(); /* a refusal must name the field and the reason */
    }
    json_decref(errors);
    char *dumped = cp_json_dump(out);
    json_t *again = cp_json_parse(dumped, strlen(dumped), NULL, 0);
    if (again == NULL)
        abort(); /* what we store must read back */
    json_decref(again);
    cp_free(dumped);
    json_decref(out);

    /* As api_grid_update: on top of existing settings (logs may be
     * deleted by "logs": null). */
    out = json_pack("{s:[s],s:{s:s,s:{}},s:[s]}", "default_affinity",
                    "label==x", "logs", "forwarder", "fluentd", "opts",
                    "trusted_subnets", "10.0.0.0/8");
    errors = json_object();
    if (!valid_grid_settings(body, out, errors)) {
        if (json_object_size(errors) == 0)
            abort();
    }
    json_decref(errors);
    json_decref(out);
}

static void check_object(const json_t *body)
{
    if (!json_is_object(body))
        return;
    check_strings(body);
    check_settings(body);
}

/* Handler of the fake route: what a grids handler would do with the
 * parsed body. */
static void fuzz_handler(struct api_req *req, struct api_res *res)
{
    if (!json_is_object(req->json))
        abort(); /* the pipeline promises an object */
    check_object(req->json);
    api_json(res, 200, json_incref(req->json));
}

static const struct api_route fuzz_route = {
    API_POST | API_PUT | API_PATCH, "/v1/fuzz", fuzz_handler,
    API_PUBLIC | API_FORM_OK};

static void run_pipeline(const uint8_t *data, size_t size,
                         const char *content_type, enum api_method method)
{
    struct api_req req;
    struct api_res res;
    memset(&req, 0, sizeof(req));
    memset(&res, 0, sizeof(res));
    req.m = NULL; /* public route, no grid: the store is never touched */
    req.method = method;
    req.path = cp_strdup("/v1/fuzz");
    req.body = cp_malloc(size + 1);
    if (size > 0)
        memcpy(req.body, data, size);
    req.body[size] = '\0';
    req.body_len = size;
    req.content_type = cp_strdup(content_type);
    api_run(&fuzz_route, &req, &res);
    if (res.status == 200 && !json_is_object(req.json))
        abort();
    if (res.status != 200 && res.status != 400)
        abort();
    api_req_release(&req);
    api_res_release(&res);
}

static void run_query(const uint8_t *data, size_t size)
{
    struct api_req req;
    memset(&req, 0, sizeof(req));
    req.query = cp_strndup((const char *)data, size);
    char *v = api_query(&req, "name");
    cp_free(v);
    v = api_query(&req, "q");
    cp_free(v);
    api_req_release(&req);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cp_log_level = CP_LOG_ERROR; /* parse_body logs refusals at debug */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_BODY)
        return -1;

    char err[160] = "";
    json_t *j = cp_json_parse((const char *)data, size, err, sizeof(err));
    if (j == NULL) {
        if (strnlen(err, sizeof(err)) == 0)
            abort(); /* a refusal always says why */
    } else {
        check_object(j);
        json_decref(j);
    }

    run_pipeline(data, size, "application/json", API_POST);
    run_pipeline(data, size, "application/x-www-form-urlencoded; charset=UTF-8",
                 API_PUT);
    run_query(data, size);
    return 0;
}
