/* Validation rules of spec 3.2.
 * SPDX-License-Identifier: Apache-2.0 */
#include "valid.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool name_chars(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    }
    return true;
}

bool valid_grid_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 3 && n <= 64 && name_chars(s);
}

bool valid_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && s[0] != '-' && name_chars(s);
}

static bool parse_cidr(const char *s, uint32_t *addr, int *prefix)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash - s > 15 || slash == s)
        return false;
    char ip[16];
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1)
        return false;
    long long n;
    if (cp_parse_int(slash + 1, 0, 32, &n) != 0)
        return false;
    *addr = ntohl(a.s_addr);
    *prefix = (int)n;
    return true;
}

bool valid_cidr(const char *s)
{
    uint32_t a;
    int p;
    return parse_cidr(s, &a, &p);
}

bool valid_cidr_within(const char *inner, const char *outer)
{
    uint32_t ia, oa;
    int ip, op;
    if (!parse_cidr(inner, &ia, &ip) || !parse_cidr(outer, &oa, &op))
        return false;
    if (ip < op)
        return false;
    uint32_t mask = op == 0 ? 0 : 0xffffffffu << (32 - op);
    return (ia & mask) == (oa & mask);
}

bool valid_token(const char *s)
{
    size_t n = strlen(s);
    if (n < 16 || n > 256)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!isgraph((unsigned char)*p))
            return false;
    }
    return true;
}

bool valid_host_port(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    const char *colon = strrchr(s, ':');
    size_t hostlen = colon ? (size_t)(colon - s) : n;
    if (hostlen == 0)
        return false;
    for (size_t i = 0; i < hostlen; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '-' && c != '_')
            return false;
    }
    long long port;
    return colon == NULL || cp_parse_int(colon + 1, 1, 65535, &port) == 0;
}

static bool check_affinity(const json_t *v, const char **msg)
{
    if (!cp_json_is_string_array(v)) {
        *msg = "must be an array of strings";
        return false;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        /* key==value, key!=value, key=~regex, key!~regex */
        if (strlen(s) > 255 || (strstr(s, "==") == NULL &&
                                strstr(s, "!=") == NULL &&
                                strstr(s, "=~") == NULL &&
                                strstr(s, "!~") == NULL)) {
            *msg = "each affinity must look like key==value, key!=value, "
                   "key=~regex or key!~regex";
            return false;
        }
    }
    return true;
}

static bool check_stats(const json_t *v, const char **msg)
{
    if (!json_is_object(v)) {
        *msg = "must be an object";
        return false;
    }
    json_t *sd = json_object_get(v, "statsd");
    if (sd == NULL || json_is_null(sd))
        return true;
    if (!json_is_object(sd)) {
        *msg = "statsd must be an object with server and port";
        return false;
    }
    const char *server = cp_json_str(sd, "server");
    json_t *port = json_object_get(sd, "port");
    if (server == NULL || !valid_host_port(server)) {
        *msg = "statsd.server must be a host name or address";
        return false;
    }
    if (port != NULL && !json_is_null(port) &&
        (!json_is_integer(port) || json_integer_value(port) < 1 ||
         json_integer_value(port) > 65535)) {
        *msg = "statsd.port must be 1..65535";
        return false;
    }
    return true;
}

static bool check_logs(const json_t *v, const char **msg)
{
    if (!json_is_object(v)) {
        *msg = "must be an object with forwarder and opts";
        return false;
    }
    const char *fw = cp_json_str(v, "forwarder");
    if (fw == NULL || (strcmp(fw, "fluentd") != 0 && strcmp(fw, "none") != 0)) {
        *msg = "forwarder must be fluentd or none";
        return false;
    }
    json_t *opts = json_object_get(v, "opts");
    if (opts != NULL && !json_is_null(opts)) {
        if (!json_is_object(opts)) {
            *msg = "opts must be an object of strings";
            return false;
        }
        const char *k;
        json_t *o;
        json_object_foreach(opts, k, o)
        {
            if (!json_is_string(o)) {
                *msg = "opts must be an object of strings";
                return false;
            }
        }
    }
    return true;
}

bool valid_grid_settings(const json_t *body, json_t *out, json_t *errors)
{
    const char *msg = NULL;
    size_t before = json_object_size(errors);
    json_t *v = json_object_get(body, "default_affinity");
    if (v != NULL && !json_is_null(v)) {
        if (!check_affinity(v, &msg))
            json_object_set_new(errors, "default_affinity", json_string(msg));
        else
            json_object_set(out, "default_affinity", v);
    }
    v = json_object_get(body, "trusted_subnets");
    if (v != NULL && !json_is_null(v)) {
        bool ok = cp_json_is_string_array(v);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (ok && !valid_cidr(json_string_value(e)))
                ok = false;
        }
        if (!ok)
            json_object_set_new(
                errors, "trusted_subnets",
                json_string("must be an array of IPv4 CIDRs like "
                            "192.168.0.0/24"));
        else
            json_object_set(out, "trusted_subnets", v);
    }
    v = json_object_get(body, "stats");
    if (v != NULL && !json_is_null(v)) {
        if (!check_stats(v, &msg))
            json_object_set_new(errors, "stats", json_string(msg));
        else
            json_object_set(out, "stats", v);
    }
    v = json_object_get(body, "logs");
    if (v != NULL) {
        if (json_is_null(v))
            json_object_del(out, "logs");
        else if (!check_logs(v, &msg))
            json_object_set_new(errors, "logs", json_string(msg));
        else
            json_object_set(out, "logs", v);
    }
    return json_object_size(errors) == before;
}
