/* Service validation and views (spec 3.2, 5.1). One table of fields, each
 * with a checker that turns a request value (or NULL for "absent / null")
 * into the normalised spec value or a message. Create runs every checker;
 * update runs those of the fields the body names.
 * SPDX-License-Identifier: Apache-2.0 */
#include "service_model.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ENV_MAX (128 * 1024) /* one "K=V" entry (spec 3.2) */
#define STR_MAX 4096         /* any other free-form string */
#define DNS_MAX 64

/* A field checker: v is the request value, NULL when absent or null (then
 * the default is wanted); old is the current spec value on update (NULL
 * on create). On success sets *out (new reference) and returns true;
 * otherwise writes a message into why. */
typedef bool field_check(const json_t *v, const json_t *old, json_t **out,
                         char *why, size_t whylen);

/* ==== Small parsers ==== */

static bool is_blank(const char *s)
{
    for (; *s != '\0'; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

int service_parse_bytes(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return CP_EINVAL;
        *out = (long long)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return CP_EINVAL;
    const char *s = json_string_value(v);
    char *end = NULL;
    if (!isdigit((unsigned char)s[0]))
        return CP_EINVAL;
    unsigned long long n = strtoull(s, &end, 10);
    unsigned shift = 0;
    switch (tolower((unsigned char)*end)) {
    case 'k':
        shift = 10;
        end++;
        break;
    case 'm':
        shift = 20;
        end++;
        break;
    case 'g':
        shift = 30;
        end++;
        break;
    case 't':
        shift = 40;
        end++;
        break;
    default:
        break;
    }
    if (tolower((unsigned char)*end) == 'b')
        end++;
    if (*end != '\0' || n > ((unsigned long long)LLONG_MAX >> shift))
        return CP_EINVAL;
    *out = (long long)(n << shift);
    return 0;
}

int service_parse_seconds(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return CP_EINVAL;
        *out = (long long)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return CP_EINVAL;
    const char *s = json_string_value(v);
    long long total = 0;
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s))
            return CP_EINVAL;
        char *end = NULL;
        long long n = strtoll(s, &end, 10);
        long long unit = 1;
        switch (*end) {
        case '\0':
            break;
        case 's':
            end++;
            break;
        case 'm':
            unit = 60;
            end++;
            break;
        case 'h':
            unit = 3600;
            end++;
            break;
        case 'd':
            unit = 86400;
            end++;
            break;
        default:
            return CP_EINVAL;
        }
        if (n > 100LL * 365 * 86400)
            return CP_EINVAL;
        total += n * unit;
        if (total > 100LL * 365 * 86400)
            return CP_EINVAL;
        s = end;
    }
    *out = total;
    return 0;
}

static bool port_ok(const json_t *v, long long *out)
{
    long long n = 0;
    if (json_is_integer(v))
        n = (long long)json_integer_value(v);
    else if (!json_is_string(v) ||
             cp_parse_int(json_string_value(v), 1, 65535, &n) != 0)
        return false;
    *out = n;
    return n >= 1 && n <= 65535;
}

/* A list of strings, bounded; NULL gives []. */
static bool strings(const json_t *v, json_t **out, char *why, size_t n,
                    size_t max_len)
{
    if (v == NULL) {
        *out = json_array();
        return true;
    }
    if (!cp_json_is_string_array(v) || json_array_size(v) > SERVICE_MAX_LIST) {
        snprintf(why, n, "must be an array of strings");
        return false;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (json_string_length(e) > max_len) {
            snprintf(why, n, "entries must be at most %zu characters", max_len);
            return false;
        }
    }
    *out = json_deep_copy(v);
    return true;
}

/* ==== Field checkers ==== */

static bool check_image(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        snprintf(why, n, "is required");
        return false;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > 512 || is_blank(json_string_value(v)) ||
        strpbrk(json_string_value(v), " \t\r\n") != NULL) {
        snprintf(why, n, "must be an image name like nginx:1.13");
        return false;
    }
    const char *s = json_string_value(v);
    /* "nginx" means "nginx:latest"; a ':' before the last '/' is a
     * registry port, not a tag. */
    const char *last = strrchr(s, '/');
    last = last ? last + 1 : s;
    if (strchr(last, ':') == NULL && strchr(s, '@') == NULL) {
        char *full = cp_asprintf("%s:latest", s);
        *out = json_string(full);
        cp_free(full);
    } else {
        *out = json_string(s);
    }
    return true;
}

static bool check_instances(const json_t *v, const json_t *old, json_t **out,
                            char *why, size_t n)
{
    CP_UNUSED(old);
    long long k = 1;
    if (v != NULL &&
        (!json_is_integer(v) || (k = (long long)json_integer_value(v)) < 0 ||
         k > SERVICE_MAX_INSTANCES)) {
        snprintf(why, n, "must be an integer from 0 to %d",
                 SERVICE_MAX_INSTANCES);
        return false;
    }
    *out = json_integer(k);
    return true;
}

/* cmd and entrypoint: an array of strings, or a string split on spaces
 * (no shell quoting: "sh -c 'a b'" gives four words; send an array for
 * that). */
static bool check_cmd(const json_t *v, const json_t *old, json_t **out,
                      char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (json_is_string(v)) {
        if (json_string_length(v) > ENV_MAX) {
            snprintf(why, n, "is too long");
            return false;
        }
        json_t *arr = json_array();
        const char *s = json_string_value(v);
        while (*s != '\0') {
            while (*s == ' ' || *s == '\t' || *s == '\n')
                s++;
            size_t len = strcspn(s, " \t\n");
            if (len > 0) {
                char *w = cp_strndup(s, len);
                json_array_append_new(arr, json_string(w));
                cp_free(w);
            }
            s += len;
        }
        if (json_array_size(arr) == 0) {
            json_decref(arr);
            *out = json_null();
        } else {
            *out = arr;
        }
        return true;
    }
    if (!cp_json_is_string_array(v) || json_array_size(v) > SERVICE_MAX_LIST) {
        snprintf(why, n, "must be an array of strings or a string");
        return false;
    }
    *out = json_array_size(v) ? json_deep_copy(v) : json_null();
    return true;
}

/* The key of "K=V" (length into *klen), or false when malformed. */
static bool env_key(const char *kv, size_t *klen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return false;
    for (const char *p = kv; p < eq; p++)
        if (isspace((unsigned char)*p))
            return false;
    *klen = (size_t)(eq - kv);
    return true;
}

/* The value of key (klen bytes) in env (an array of "K=V"), or NULL. */
static const char *env_find(const json_t *env, const char *key, size_t klen)
{
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (s != NULL && strncmp(s, key, klen) == 0 && s[klen] == '=')
            return s;
    }
    return NULL;
}

static bool check_env(const json_t *v, const json_t *old, json_t **out,
                      char *why, size_t n)
{
    if (v == NULL) {
        *out = json_array();
        return true;
    }
    if (!cp_json_is_string_array(v) || json_array_size(v) > SERVICE_MAX_LIST) {
        snprintf(why, n, "must be an array of \"KEY=value\" strings");
        return false;
    }
    json_t *env = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *kv = json_string_value(e);
        size_t klen = 0;
        if (!env_key(kv, &klen) || json_string_length(e) > ENV_MAX) {
            snprintf(why, n,
                     "entry %zu must be \"KEY=value\" (at most 128 KiB)",
                     i + 1);
            json_decref(env);
            return false;
        }
        /* Update: "K=" keeps the current value of K (spec 3.2). */
        const char *cur = kv[klen + 1] == '\0' && old != NULL
                              ? env_find(old, kv, klen)
                              : NULL;
        /* A later entry of the same key wins. */
        size_t k;
        json_t *x;
        json_array_foreach(env, k, x)
        {
            if (strncmp(json_string_value(x), kv, klen + 1) == 0) {
                json_array_remove(env, k);
                break;
            }
        }
        json_array_append_new(env, json_string(cur ? cur : kv));
    }
    *out = env;
    return true;
}

/* A list of objects, each checked by item (which sets *o or a message). */
typedef bool item_check(const json_t *e, size_t i, json_t **o, char *why,
                        size_t n);

static bool objects(const json_t *v, item_check *item, json_t **out, char *why,
                    size_t n)
{
    if (v == NULL) {
        *out = json_array();
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) > SERVICE_MAX_LIST) {
        snprintf(why, n, "must be an array");
        return false;
    }
    json_t *arr = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        json_t *o = NULL;
        if (!item(e, i, &o, why, n)) {
            json_decref(arr);
            return false;
        }
        json_array_append_new(arr, o);
    }
    *out = arr;
    return true;
}

/* A short string member; NULL when absent; false when of a wrong type. */
static bool member_str(const json_t *o, const char *key, const char **s)
{
    json_t *v = json_object_get(o, key);
    *s = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > 256)
        return false;
    *s = json_string_value(v);
    return true;
}

static bool env_name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strchr(s, '=') != NULL)
        return false;
    for (; *s != '\0'; s++)
        if (isspace((unsigned char)*s))
            return false;
    return true;
}

static bool secret_item(const json_t *e, size_t i, json_t **o, char *why,
                        size_t n)
{
    const char *secret, *name, *type;
    if (!json_is_object(e) || !member_str(e, "secret", &secret) ||
        !member_str(e, "name", &name) || !member_str(e, "type", &type) ||
        secret == NULL || !env_name_ok(name) ||
        (type != NULL && strcmp(type, "env") != 0)) {
        snprintf(why, n,
                 "entry %zu must be {secret, name (an env var), type: env}",
                 i + 1);
        return false;
    }
    *o = json_pack("{s:s, s:s, s:s}", "secret", secret, "name", name, "type",
                   "env");
    return true;
}

static bool check_secrets(const json_t *v, const json_t *old, json_t **out,
                          char *why, size_t n)
{
    CP_UNUSED(old);
    return objects(v, secret_item, out, why, n);
}

static bool cert_item(const json_t *e, size_t i, json_t **o, char *why,
                      size_t n)
{
    const char *subject, *name, *type;
    if (!json_is_object(e) || !member_str(e, "subject", &subject) ||
        !member_str(e, "name", &name) || !member_str(e, "type", &type) ||
        subject == NULL || (name != NULL && !env_name_ok(name)) ||
        (type != NULL && strcmp(type, "env") != 0)) {
        snprintf(why, n, "entry %zu must be {subject, name, type: env}", i + 1);
        return false;
    }
    *o = json_pack("{s:s, s:s, s:s}", "subject", subject, "name",
                   name ? name : "SSL_CERTS", "type", "env");
    return true;
}

static bool check_certificates(const json_t *v, const json_t *old, json_t **out,
                               char *why, size_t n)
{
    CP_UNUSED(old);
    return objects(v, cert_item, out, why, n);
}

static bool ip_ok(const char *s)
{
    unsigned a, b, c, d;
    char tail;
    return sscanf(s, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &tail) == 4 &&
           a < 256 && b < 256 && c < 256 && d < 256;
}

/* "8080:80", "8080:80/udp", "10.0.0.1:8080:80/tcp". */
static json_t *port_from_string(const char *s)
{
    char buf[64];
    if (strlen(s) >= sizeof(buf))
        return NULL;
    snprintf(buf, sizeof(buf), "%s", s);
    const char *proto = "tcp";
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
        proto = slash + 1;
    }
    char *parts[3];
    int np = 0;
    char *p = buf;
    while (np < 3) {
        parts[np++] = p;
        char *colon = strchr(p, ':');
        if (colon == NULL)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    if (strchr(p, ':') != NULL || np < 2)
        return NULL;
    const char *ip = np == 3 ? parts[0] : "0.0.0.0";
    long long node_port, cont_port;
    if (cp_parse_int(parts[np - 2], 1, 65535, &node_port) != 0 ||
        cp_parse_int(parts[np - 1], 1, 65535, &cont_port) != 0)
        return NULL;
    return json_pack("{s:s, s:s, s:I, s:I}", "ip", ip, "protocol", proto,
                     "node_port", (json_int_t)node_port, "container_port",
                     (json_int_t)cont_port);
}

static bool port_item(const json_t *e, size_t i, json_t **o, char *why,
                      size_t n)
{
    json_t *p = NULL;
    if (json_is_string(e)) {
        p = port_from_string(json_string_value(e));
    } else if (json_is_object(e)) {
        const char *ip, *proto;
        long long np, cp;
        if (member_str(e, "ip", &ip) && member_str(e, "protocol", &proto) &&
            port_ok(json_object_get(e, "node_port"), &np) &&
            port_ok(json_object_get(e, "container_port"), &cp))
            p = json_pack("{s:s, s:s, s:I, s:I}", "ip", ip ? ip : "0.0.0.0",
                          "protocol", proto ? proto : "tcp", "node_port",
                          (json_int_t)np, "container_port", (json_int_t)cp);
    }
    const char *ip = cp_json_str(p, "ip");
    const char *proto = cp_json_str(p, "protocol");
    if (p == NULL || !ip_ok(ip) ||
        (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)) {
        json_decref(p);
        snprintf(why, n,
                 "entry %zu must be {ip, protocol: tcp|udp, node_port, "
                 "container_port} with ports 1..65535, or \"8080:80/tcp\"",
                 i + 1);
        return false;
    }
    *o = p;
    return true;
}

static bool check_ports(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    if (!objects(v, port_item, out, why, n))
        return false;
    /* One node port per address and protocol. */
    size_t i, k;
    json_t *a, *b;
    json_array_foreach(*out, i, a)
    {
        json_array_foreach(*out, k, b)
        {
            if (k >= i)
                break;
            if (json_equal(json_object_get(a, "node_port"),
                           json_object_get(b, "node_port")) &&
                strcmp(cp_json_str(a, "protocol"),
                       cp_json_str(b, "protocol")) == 0 &&
                strcmp(cp_json_str(a, "ip"), cp_json_str(b, "ip")) == 0) {
                snprintf(why, n, "node port %lld/%s is given twice",
                         cp_json_int(a, "node_port", 0),
                         cp_json_str(a, "protocol"));
                json_decref(*out);
                *out = NULL;
                return false;
            }
        }
    }
    return true;
}

static bool volume_flags_ok(const char *f)
{
    static const char *const known[] = {
        "ro",       "rw",        "z",       "Z",         "nocopy",
        "shared",   "slave",     "private", "rshared",   "rslave",
        "rprivate", "delegated", "cached",  "consistent"};
    while (*f != '\0') {
        size_t len = strcspn(f, ",");
        bool ok = false;
        for (size_t i = 0; i < CP_ARRAY_LEN(known) && !ok; i++)
            ok = strlen(known[i]) == len && strncmp(known[i], f, len) == 0;
        if (!ok)
            return false;
        f += len;
        if (*f == ',')
            f++;
    }
    return true;
}

/* "/data" (anonymous), "/host:/cont[:flags]" (bind mount) or
 * "name:/cont[:flags]" (named volume). */
static bool volume_ok(const char *s)
{
    char buf[1024];
    if (strlen(s) == 0 || strlen(s) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", s);
    char *parts[3] = {NULL, NULL, NULL};
    int np = 0;
    char *p = buf;
    while (p != NULL && np < 3) {
        parts[np++] = p;
        p = strchr(p, ':');
        if (p != NULL)
            *p++ = '\0';
    }
    if (p != NULL)
        return false;
    if (np == 1)
        return parts[0][0] == '/';
    if (parts[1][0] != '/' || parts[0][0] == '\0')
        return false;
    if (parts[0][0] != '/' && !valid_name(parts[0]))
        return false;
    return np == 2 || volume_flags_ok(parts[2]);
}

static bool check_volumes(const json_t *v, const json_t *old, json_t **out,
                          char *why, size_t n)
{
    CP_UNUSED(old);
    if (!strings(v, out, why, n, 1023))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(*out, i, e)
    {
        if (!volume_ok(json_string_value(e))) {
            snprintf(why, n,
                     "entry %zu must be \"/path\", \"/host:/path[:ro]\" or "
                     "\"name:/path[:ro]\"",
                     i + 1);
            json_decref(*out);
            *out = NULL;
            return false;
        }
    }
    return true;
}

static bool check_strings(const json_t *v, const json_t *old, json_t **out,
                          char *why, size_t n)
{
    CP_UNUSED(old);
    return strings(v, out, why, n, 256);
}

/* "key==value", "key!=value", "key=~re", "key!~re". */
static bool check_affinity(const json_t *v, const json_t *old, json_t **out,
                           char *why, size_t n)
{
    CP_UNUSED(old);
    if (!strings(v, out, why, n, 256))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(*out, i, e)
    {
        const char *s = json_string_value(e);
        const char *op = strpbrk(s, "=!");
        bool ok = op != NULL && op > s &&
                  ((op[0] == '=' && (op[1] == '=' || op[1] == '~')) ||
                   (op[0] == '!' && (op[1] == '=' || op[1] == '~'))) &&
                  op[2] != '\0';
        if (!ok) {
            snprintf(why, n,
                     "entry %zu must be like \"label==az=a\", "
                     "\"node!=n1\" or \"service=~web\"",
                     i + 1);
            json_decref(*out);
            *out = NULL;
            return false;
        }
    }
    return true;
}

/* A string that must be one of the choices; NULL gives the first. */
static bool one_of(const json_t *v, const char *const *choices, size_t nc,
                   json_t **out, char *why, size_t n)
{
    if (v == NULL) {
        *out = json_string(choices[0]);
        return true;
    }
    for (size_t i = 0; json_is_string(v) && i < nc; i++) {
        if (strcmp(json_string_value(v), choices[i]) == 0) {
            *out = json_string(choices[i]);
            return true;
        }
    }
    int len = snprintf(why, n, "must be one of");
    for (size_t i = 0; i < nc && len > 0 && (size_t)len < n; i++)
        len += snprintf(why + len, n - (size_t)len, "%s %s", i ? "," : "",
                        choices[i]);
    return false;
}

static bool check_strategy(const json_t *v, const json_t *old, json_t **out,
                           char *why, size_t n)
{
    static const char *const choices[] = {"ha", "daemon", "random"};
    CP_UNUSED(old);
    return one_of(v, choices, CP_ARRAY_LEN(choices), out, why, n);
}

static bool check_bool(const json_t *v, const json_t *old, json_t **out,
                       char *why, size_t n)
{
    CP_UNUSED(old);
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(why, n, "must be true or false");
        return false;
    }
    *out = json_boolean(v != NULL && json_is_true(v));
    return true;
}

static bool check_cpus(const json_t *v, const json_t *old, json_t **out,
                       char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (!json_is_number(v) || json_number_value(v) <= 0 ||
        json_number_value(v) > 1024) {
        snprintf(why, n, "must be a number above 0");
        return false;
    }
    *out = json_real(json_number_value(v));
    return true;
}

static bool check_cpu_shares(const json_t *v, const json_t *old, json_t **out,
                             char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 1024) {
        snprintf(why, n, "must be an integer from 0 to 1024");
        return false;
    }
    *out = json_integer(json_integer_value(v));
    return true;
}

static bool check_bytes(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    long long b = 0;
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (service_parse_bytes(v, &b) != 0) {
        snprintf(why, n, "must be bytes, or a size like \"512m\" or \"1g\"");
        return false;
    }
    *out = json_integer(b);
    return true;
}

/* A free-form string or null. */
static bool check_opt_str(const json_t *v, const json_t *old, json_t **out,
                          char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) > STR_MAX) {
        snprintf(why, n, "must be a string");
        return false;
    }
    *out =
        json_string_length(v) ? json_string(json_string_value(v)) : json_null();
    return true;
}

static bool check_net(const json_t *v, const json_t *old, json_t **out,
                      char *why, size_t n)
{
    CP_UNUSED(old);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (v == NULL) {
        *out = json_string("bridge");
        return true;
    }
    if (s == NULL || !(strcmp(s, "bridge") == 0 || strcmp(s, "host") == 0 ||
                       (strncmp(s, "container:", 10) == 0 && s[10] != '\0' &&
                        strlen(s) < 256))) {
        snprintf(why, n, "must be bridge, host or container:<name>");
        return false;
    }
    *out = json_string(s);
    return true;
}

static bool check_pid(const json_t *v, const json_t *old, json_t **out,
                      char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), "host") != 0) {
        snprintf(why, n, "can only be host");
        return false;
    }
    *out = json_string("host");
    return true;
}

static bool check_log_opts(const json_t *v, const json_t *old, json_t **out,
                           char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_object();
        return true;
    }
    if (!json_is_object(v) || json_object_size(v) > 64) {
        snprintf(why, n, "must be an object of strings");
        return false;
    }
    json_t *o = json_object();
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)(uintptr_t)v, k, e)
    {
        /* The engine wants strings; numbers and booleans are turned
         * into them as the CLI's YAML would have. */
        char num[64];
        const char *s = NULL;
        if (json_is_string(e) && json_string_length(e) <= STR_MAX)
            s = json_string_value(e);
        else if (json_is_integer(e)) {
            snprintf(num, sizeof(num), "%lld",
                     (long long)json_integer_value(e));
            s = num;
        } else if (json_is_boolean(e))
            s = json_is_true(e) ? "true" : "false";
        if (s == NULL) {
            json_decref(o);
            snprintf(why, n, "value of %.64s must be a string", k);
            return false;
        }
        json_object_set_new(o, k, json_string(s));
    }
    *out = o;
    return true;
}

static bool check_deploy_opts(const json_t *v, const json_t *old, json_t **out,
                              char *why, size_t n)
{
    CP_UNUSED(old);
    json_t *o = json_pack("{s:n, s:f, s:n}", "wait_for_port", "min_health", 0.8,
                          "interval");
    if (v == NULL) {
        *out = o;
        return true;
    }
    if (!json_is_object(v)) {
        snprintf(why, n, "must be an object");
        goto fail;
    }
    json_t *w = json_object_get(v, "wait_for_port");
    long long port;
    if (w != NULL && !json_is_null(w)) {
        if (!port_ok(w, &port)) {
            snprintf(why, n, "wait_for_port must be a port 1..65535");
            goto fail;
        }
        json_object_set_new(o, "wait_for_port", json_integer(port));
    }
    json_t *mh = json_object_get(v, "min_health");
    if (mh != NULL && !json_is_null(mh)) {
        if (!json_is_number(mh) || json_number_value(mh) < 0 ||
            json_number_value(mh) > 1) {
            snprintf(why, n, "min_health must be a number from 0 to 1");
            goto fail;
        }
        json_object_set_new(o, "min_health", json_real(json_number_value(mh)));
    }
    json_t *iv = json_object_get(v, "interval");
    long long secs;
    if (iv != NULL && !json_is_null(iv)) {
        if (service_parse_seconds(iv, &secs) != 0 || secs < 1) {
            snprintf(why, n,
                     "interval must be seconds, or a duration like \"1h\"");
            goto fail;
        }
        json_object_set_new(o, "interval", json_integer(secs));
    }
    *out = o;
    return true;
fail:
    json_decref(o);
    return false;
}

/* A positive integer member with a default; false when bad. */
static bool int_member(const json_t *o, const char *key, long long dflt,
                       long long min, long long *out)
{
    json_t *v = json_object_get(o, key);
    *out = dflt;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > 86400)
        return false;
    *out = (long long)json_integer_value(v);
    return true;
}

static bool check_health(const json_t *v, const json_t *old, json_t **out,
                         char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    const char *proto = NULL, *uri = NULL;
    long long port = 0, timeout, interval, delay;
    if (!json_is_object(v) || !member_str(v, "protocol", &proto) ||
        !member_str(v, "uri", &uri)) {
        snprintf(why, n,
                 "must be {protocol, port, uri, timeout, interval, "
                 "initial_delay}");
        return false;
    }
    /* {protocol: null} (the CLI's way to drop the check) means none. */
    if (proto == NULL) {
        *out = json_null();
        return true;
    }
    if (strcmp(proto, "http") != 0 && strcmp(proto, "tcp") != 0) {
        snprintf(why, n, "protocol must be http or tcp");
        return false;
    }
    if (!port_ok(json_object_get(v, "port"), &port)) {
        snprintf(why, n, "port must be 1..65535");
        return false;
    }
    if (uri != NULL && uri[0] != '/') {
        snprintf(why, n, "uri must start with /");
        return false;
    }
    if (!int_member(v, "timeout", 10, 1, &timeout) ||
        !int_member(v, "interval", 60, 1, &interval) ||
        !int_member(v, "initial_delay", 10, 0, &delay)) {
        snprintf(why, n,
                 "timeout, interval and initial_delay must be "
                 "seconds");
        return false;
    }
    if (interval < timeout) {
        snprintf(why, n, "interval must be at least timeout");
        return false;
    }
    *out = json_pack("{s:s, s:I, s:s?, s:I, s:I, s:I}", "protocol", proto,
                     "port", (json_int_t)port, "uri",
                     strcmp(proto, "http") == 0 ? (uri ? uri : "/") : NULL,
                     "timeout", (json_int_t)timeout, "interval",
                     (json_int_t)interval, "initial_delay", (json_int_t)delay);
    if (json_object_get(*out, "uri") == NULL)
        json_object_set_new(*out, "uri", json_null());
    return true;
}

/* Hook instances: "*", "1,2", 3, or an array of those; normalised to an
 * array of strings. */
static json_t *hook_instances(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return json_pack("[s]", "*");
    json_t *arr = json_array();
    json_t *tmp = json_is_array(v) ? json_incref((json_t *)(uintptr_t)v)
                                   : json_pack("[O]", v);
    size_t i;
    json_t *e;
    json_array_foreach(tmp, i, e)
    {
        char num[32];
        const char *s = NULL;
        if (json_is_integer(e) && json_integer_value(e) > 0) {
            snprintf(num, sizeof(num), "%lld",
                     (long long)json_integer_value(e));
            s = num;
        } else if (json_is_string(e)) {
            s = json_string_value(e);
        }
        if (s == NULL)
            goto bad;
        while (*s != '\0') {
            size_t len = strcspn(s, ",");
            char *w = cp_strndup(s, len);
            long long k;
            bool ok = strcmp(w, "*") == 0 ||
                      cp_parse_int(w, 1, SERVICE_MAX_INSTANCES, &k) == 0;
            if (ok)
                json_array_append_new(arr, json_string(w));
            cp_free(w);
            if (!ok)
                goto bad;
            s += len;
            if (*s == ',')
                s++;
        }
    }
    json_decref(tmp);
    if (json_array_size(arr) == 0 || json_array_size(arr) > SERVICE_MAX_LIST)
        goto bad_arr;
    return arr;
bad:
    json_decref(tmp);
bad_arr:
    json_decref(arr);
    return NULL;
}

static bool hook_type_ok(const char *t)
{
    return t != NULL &&
           (strcmp(t, "pre_start") == 0 || strcmp(t, "post_start") == 0 ||
            strcmp(t, "pre_stop") == 0);
}

static bool add_hook(json_t *arr, const json_t *h, const char *type, char *why,
                     size_t n)
{
    const char *name, *cmd;
    json_t *oneshot = json_object_get(h, "oneshot");
    json_t *inst = NULL;
    if (!json_is_object(h) || !member_str(h, "name", &name) ||
        !json_is_string(json_object_get(h, "cmd")) ||
        (oneshot != NULL && !json_is_boolean(oneshot) &&
         !json_is_null(oneshot)) ||
        !hook_type_ok(type) ||
        (inst = hook_instances(json_object_get(h, "instances"))) == NULL) {
        snprintf(why, n,
                 "each %s hook must be {name, cmd, instances: \"*\" or "
                 "\"1,2\", oneshot}",
                 hook_type_ok(type) ? type : "pre_start|post_start|pre_stop");
        return false;
    }
    cmd = json_string_value(json_object_get(h, "cmd"));
    if (json_array_size(arr) >= SERVICE_MAX_LIST ||
        json_string_length(json_object_get(h, "cmd")) > ENV_MAX ||
        is_blank(cmd)) {
        json_decref(inst);
        snprintf(why, n, "%s hook cmd must be a non-empty command", type);
        return false;
    }
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "%s-%zu", type,
             json_array_size(arr) + 1);
    json_array_append_new(arr,
                          json_pack("{s:s, s:s, s:s, s:o, s:b}", "name",
                                    name ? name : fallback, "type", type, "cmd",
                                    cmd, "instances", inst, "oneshot",
                                    oneshot != NULL && json_is_true(oneshot)));
    return true;
}

/* {pre_start: [...], post_start: [...], pre_stop: [...]} as in spec 3.2,
 * or the flat list of the service JSON ([{name, type, cmd, ...}]). */
static bool check_hooks(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    json_t *arr = json_array();
    if (v == NULL)
        goto done;
    if (json_is_object(v)) {
        const char *type;
        json_t *list;
        json_object_foreach((json_t *)(uintptr_t)v, type, list)
        {
            if (!hook_type_ok(type) ||
                (!json_is_array(list) && !json_is_null(list))) {
                snprintf(why, n,
                         "must be {pre_start: [..], post_start: [..], "
                         "pre_stop: [..]}");
                goto fail;
            }
            size_t i;
            json_t *h;
            json_array_foreach(list, i, h)
            {
                if (!add_hook(arr, h, type, why, n))
                    goto fail;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *h;
        json_array_foreach(v, i, h)
        {
            if (!add_hook(arr, h, cp_json_str(h, "type"), why, n))
                goto fail;
        }
    } else {
        snprintf(why, n,
                 "must be {pre_start: [..], post_start: [..], pre_stop: "
                 "[..]}");
        goto fail;
    }
done:
    *out = arr;
    return true;
fail:
    json_decref(arr);
    return false;
}

static bool check_stop_signal(const json_t *v, const json_t *old, json_t **out,
                              char *why, size_t n)
{
    CP_UNUSED(old);
    if (v == NULL) {
        *out = json_null();
        return true;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    bool ok = *s != '\0' && strlen(s) <= 32;
    for (const char *p = s; ok && *p != '\0'; p++)
        ok = isalnum((unsigned char)*p) || *p == '+' || *p == '-';
    if (!ok) {
        snprintf(why, n, "must be a signal name like SIGTERM");
        return false;
    }
    *out = json_string(s);
    return true;
}

static bool check_grace(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    long long secs = 10;
    if (v != NULL &&
        (service_parse_seconds(v, &secs) != 0 || secs > 24 * 3600)) {
        snprintf(why, n, "must be seconds, or a duration like \"30s\"");
        return false;
    }
    *out = json_integer(secs);
    return true;
}

/* Links {name: "svc" or "stack/svc", alias}; "svc:alias" strings too. */
static bool link_item(const json_t *e, size_t i, json_t **o, char *why,
                      size_t n)
{
    char name[160] = "", alias[80] = "";
    if (json_is_string(e) && json_string_length(e) < sizeof(name)) {
        const char *s = json_string_value(e);
        size_t len = strcspn(s, ":");
        snprintf(name, sizeof(name), "%.*s", (int)len, s);
        if (s[len] == ':')
            snprintf(alias, sizeof(alias), "%s", s + len + 1);
    } else if (json_is_object(e)) {
        const char *nm, *al;
        if (member_str(e, "name", &nm) && member_str(e, "alias", &al) &&
            nm != NULL && strlen(nm) < sizeof(name) &&
            (al == NULL || strlen(al) < sizeof(alias))) {
            snprintf(name, sizeof(name), "%s", nm);
            snprintf(alias, sizeof(alias), "%s", al ? al : "");
        }
    }
    char *slash = strchr(name, '/');
    bool ok = name[0] != '\0';
    if (ok && slash != NULL) {
        *slash = '\0';
        ok = valid_name(name) && valid_name(slash + 1);
        *slash = '/';
    } else if (ok) {
        ok = valid_name(name);
    }
    if (ok && alias[0] == '\0') {
        /* The alias defaults to the service name; too long is refused
         * below rather than cut. */
        const char *src = slash ? slash + 1 : name;
        size_t len = strlen(src);
        if (len >= sizeof(alias))
            ok = false;
        else
            memcpy(alias, src, len + 1);
    }
    if (!ok || !valid_name(alias)) {
        snprintf(why, n,
                 "entry %zu must be {name: \"svc\" or \"stack/svc\", alias}",
                 i + 1);
        return false;
    }
    *o = json_pack("{s:s, s:s}", "name", name, "alias", alias);
    return true;
}

static bool check_links(const json_t *v, const json_t *old, json_t **out,
                        char *why, size_t n)
{
    CP_UNUSED(old);
    return objects(v, link_item, out, why, n);
}

/* ==== The table ==== */

static const struct field {
    const char *name;
    field_check *check;
} fields[] = {
    {"image", check_image},
    {"instances", check_instances},
    {"cmd", check_cmd},
    {"entrypoint", check_cmd},
    {"env", check_env},
    {"secrets", check_secrets},
    {"certificates", check_certificates},
    {"ports", check_ports},
    {"volumes", check_volumes},
    {"volumes_from", check_strings},
    {"links", check_links},
    {"affinity", check_affinity},
    {"strategy", check_strategy},
    {"stateful", check_bool},
    {"cpus", check_cpus},
    {"cpu_shares", check_cpu_shares},
    {"memory", check_bytes},
    {"memory_swap", check_bytes},
    {"shm_size", check_bytes},
    {"user", check_opt_str},
    {"privileged", check_bool},
    {"cap_add", check_strings},
    {"cap_drop", check_strings},
    {"devices", check_strings},
    {"net", check_net},
    {"pid", check_pid},
    {"log_driver", check_opt_str},
    {"log_opts", check_log_opts},
    {"deploy_opts", check_deploy_opts},
    {"health_check", check_health},
    {"hooks", check_hooks},
    {"stop_signal", check_stop_signal},
    {"stop_grace_period", check_grace},
    {"read_only", check_bool},
};

/* Anonymous volumes ("/path") of a volumes array that old lacks. */
static bool gains_anonymous_volume(const json_t *vols, const json_t *old)
{
    size_t i, k;
    json_t *v, *o;
    json_array_foreach(vols, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || strchr(s, ':') != NULL)
            continue;
        bool had = false;
        json_array_foreach(old, k, o)
        {
            if (json_equal(v, o))
                had = true;
        }
        if (!had)
            return true;
    }
    return false;
}

int service_validate(const json_t *body, const json_t *current_spec,
                     json_t **spec_out, json_t *errors)
{
    bool creating = current_spec == NULL;
    json_t *spec = creating ? json_object() : json_deep_copy(current_spec);
    if (!json_is_object(spec)) {
        json_decref(spec);
        spec = json_object();
    }
    size_t before = json_object_size(errors);
    *spec_out = spec;
    if (!json_is_object(body)) {
        json_object_set_new(errors, "service",
                            json_string("must be a JSON object"));
        return CP_EINVAL;
    }
    for (size_t i = 0; i < CP_ARRAY_LEN(fields); i++) {
        const struct field *f = &fields[i];
        json_t *v = json_object_get(body, f->name);
        json_t *cur = json_object_get(spec, f->name);
        /* Update: absent keeps the current value (and fills a field the
         * spec lacks, e.g. one added after it was stored). */
        if (!creating && v == NULL && cur != NULL)
            continue;
        if (v != NULL && json_is_null(v))
            v = NULL;
        json_t *out = NULL;
        char why[256] = "is invalid";
        if (f->check(v, creating ? NULL : cur, &out, why, sizeof(why)))
            json_object_set_new(spec, f->name, out);
        else if (json_object_get(errors, f->name) == NULL)
            json_object_set_new(errors, f->name, json_string(why));
    }
    /* Rules across fields. */
    bool stateful = json_is_true(json_object_get(spec, "stateful"));
    if (stateful &&
        json_array_size(json_object_get(spec, "volumes_from")) > 0 &&
        json_object_get(errors, "volumes_from") == NULL)
        json_object_set_new(errors, "volumes_from",
                            json_string("cannot be used with stateful"));
    if (!creating && json_object_get(body, "stateful") != NULL &&
        !json_equal(json_object_get(spec, "stateful"),
                    json_object_get(current_spec, "stateful")) &&
        json_object_get(current_spec, "stateful") != NULL)
        json_object_set_new(errors, "stateful",
                            json_string("cannot be changed after create"));
    if (!creating && stateful && json_object_get(body, "volumes") != NULL &&
        gains_anonymous_volume(json_object_get(spec, "volumes"),
                               json_object_get(current_spec, "volumes")) &&
        json_object_get(errors, "volumes") == NULL)
        json_object_set_new(
            errors, "volumes",
            json_string("a stateful service cannot gain new anonymous "
                        "volumes"));
    return json_object_size(errors) > before ? CP_EINVAL : 0;
}

bool service_name_ok(const char *name, const char *stack_name,
                     const char *grid_name, long long instances, json_t *errors)
{
    if (name == NULL || !valid_name(name)) {
        json_object_set_new(errors, "name",
                            json_string("must be letters, digits, _ and -, "
                                        "not starting with -"));
        return false;
    }
    bool null_stack = stack_name == NULL || strcmp(stack_name, "null") == 0;
    char dns[512];
    int len = snprintf(dns, sizeof(dns), "%s-%lld.%s%s%s.kontena.local", name,
                       instances, null_stack ? "" : stack_name,
                       null_stack ? "" : ".", grid_name ? grid_name : "");
    if (len < 0 || len > DNS_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "is too long: its DNS name %.100s has more than %d "
                 "characters",
                 dns, DNS_MAX);
        json_object_set_new(errors, "name", json_string(msg));
        return false;
    }
    return true;
}

char *service_path(const char *grid_name, const struct store_service *s)
{
    return cp_asprintf("%s/%s/%s", grid_name,
                       s->stack_name ? s->stack_name : "null", s->name);
}

bool service_links_to(const json_t *spec, const char *own_stack,
                      const char *stack_name, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(spec, "links"), i, l)
    {
        const char *ln = cp_json_str(l, "name");
        if (ln == NULL)
            continue;
        const char *slash = strchr(ln, '/');
        if (slash != NULL) {
            if ((size_t)(slash - ln) == strlen(stack_name) &&
                strncmp(ln, stack_name, (size_t)(slash - ln)) == 0 &&
                strcmp(slash + 1, name) == 0)
                return true;
        } else if (strcmp(own_stack, stack_name) == 0 &&
                   strcmp(ln, name) == 0) {
            return true;
        }
    }
    return false;
}

/* ==== Views ==== */

json_t *service_json(const struct store_service *s, const char *grid_name,
                     int total, int running)
{
    const char *stack = s->stack_name ? s->stack_name : "null";
    bool null_stack = strcmp(stack, "null") == 0;
    json_t *j = json_object();
    char *path = service_path(grid_name, s);
    json_object_set_new(j, "id", json_string(path));
    cp_free(path);
    cp_json_set_str(j, "name", s->name);
    cp_json_set_time(j, "created_at", s->created_at);
    cp_json_set_time(j, "updated_at", s->updated_at);
    /* Every field of the table, with its default when the stored spec
     * lacks it (rows written before the field existed). */
    for (size_t i = 0; i < CP_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(s->spec, fields[i].name);
        if (v != NULL) {
            json_object_set(j, fields[i].name, v);
            continue;
        }
        json_t *dflt = NULL;
        char why[256];
        if (fields[i].check(NULL, NULL, &dflt, why, sizeof(why)))
            json_object_set_new(j, fields[i].name, dflt);
        else
            json_object_set_new(j, fields[i].name, json_null());
    }
    char *dns =
        null_stack
            ? cp_asprintf("%s.%s.kontena.local", s->name, grid_name)
            : cp_asprintf("%s.%s.%s.kontena.local", s->name, stack, grid_name);
    json_object_set_new(j, "dns", json_string(dns));
    cp_free(dns);
    cp_json_set_str(j, "state", s->state ? s->state : "initialized");
    json_object_set_new(j, "grid", json_pack("{s:s}", "id", grid_name));
    char *stack_id = cp_asprintf("%s/%s", grid_name, stack);
    json_object_set_new(j, "stack",
                        json_pack("{s:s, s:s}", "id", stack_id, "name", stack));
    /* Links as the API shows them: {id: path of the target, alias,
     * name}. */
    json_t *links = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(s->spec, "links"), i, l)
    {
        const char *ln = cp_json_str(l, "name");
        if (ln == NULL)
            continue;
        const char *slash = strchr(ln, '/');
        char *id = slash ? cp_asprintf("%s/%s", grid_name, ln)
                         : cp_asprintf("%s/%s/%s", grid_name, stack, ln);
        json_array_append_new(links, json_pack("{s:s, s:s?, s:s}", "id", id,
                                               "alias", cp_json_str(l, "alias"),
                                               "name", slash ? slash + 1 : ln));
        cp_free(id);
    }
    json_object_set_new(j, "links", links);
    cp_free(stack_id);
    json_object_set_new(
        j, "instance_counts",
        json_pack("{s:i, s:i}", "total", total, "running", running));
    json_object_set_new(j, "revision", json_integer(s->revision));
    json_object_set_new(j, "stack_revision", json_integer(s->stack_revision));
    cp_json_set_time(j, "deployed_at", s->deployed_at);
    cp_json_set_time(j, "deploy_requested_at", s->deploy_requested_at);
    return j;
}

json_t *container_json(const struct store_container *c, const char *grid_name,
                       const struct store_node *node_or_null)
{
    return container_json_ex(c, grid_name, node_or_null, NULL);
}

json_t *container_json_ex(const struct store_container *c,
                          const char *grid_name,
                          const struct store_node *node_or_null,
                          const char *svc_path)
{
    const struct store_node *node = node_or_null;
    const json_t *info = c->info;
    json_t *j = json_object();
    char *id = cp_asprintf("%s/%s/%s", grid_name,
                           node && node->name ? node->name : "-",
                           c->name ? c->name : "");
    json_object_set_new(j, "id", json_string(id));
    cp_free(id);
    cp_json_set_str(j, "name", c->name);
    cp_json_set_str(j, "container_id", c->container_id);
    cp_json_set_str(j, "grid_id", grid_name);
    if (node != NULL) {
        json_t *labels =
            node->labels ? json_incref(node->labels) : json_array();
        json_t *n = json_pack(
            "{s:s?, s:b, s:s?, s:o, s:s?, s:s?, s:i, s:{s:s}}", "id",
            node->node_id, "connected", node->connected, "name", node->name,
            "labels", labels, "public_ip", cp_json_str(node->info, "public_ip"),
            "private_ip", cp_json_str(node->info, "private_ip"), "node_number",
            node->node_number, "grid", "id", grid_name);
        cp_json_set_time(n, "last_seen_at", node->last_seen_at);
        json_object_set_new(j, "node", n);
    } else {
        json_object_set_new(j, "node", json_null());
    }
    cp_json_set_str(j, "service_id",
                    svc_path ? svc_path
                             : (c->service_id[0] ? c->service_id : NULL));
    cp_json_set_time(j, "created_at", c->created_at);
    cp_json_set_time(j, "updated_at", c->updated_at);
    cp_json_set_time(j, "deleted_at", c->deleted_at);
    const json_t *state = json_object_get(info, "state");
    json_t *started = json_object_get(state, "started_at");
    json_t *finished = json_object_get(state, "finished_at");
    json_object_set_new(j, "started_at",
                        json_is_string(started) ? json_incref(started)
                                                : json_null());
    json_object_set_new(j, "finished_at",
                        json_is_string(finished) ? json_incref(finished)
                                                 : json_null());
    cp_json_set_str(j, "status",
                    c->deleted_at ? "deleted"
                                  : (c->status ? c->status : "stopped"));
    json_object_set_new(j, "state",
                        json_is_object(state)
                            ? json_incref((json_t *)(uintptr_t)state)
                            : json_object());
    static const char *const copied[] = {
        "deploy_rev", "service_rev", "image",  "image_id",
        "cmd",        "entrypoint",  "env",    "volumes",
        "hostname",   "domainname",  "labels", "network_settings"};
    for (size_t i = 0; i < CP_ARRAY_LEN(copied); i++) {
        json_t *v = json_object_get(info, copied[i]);
        json_object_set_new(j, copied[i], v ? json_incref(v) : json_null());
    }
    json_object_set_new(j, "instance_number", json_integer(c->instance_number));
    const json_t *ns = json_object_get(info, "network_settings");
    const char *ip = cp_json_str(info, "overlay_ip");
    if (ip == NULL)
        ip = cp_json_str(ns, "ip_address");
    cp_json_set_str(j, "ip_address", ip && *ip ? ip : NULL);
    json_t *health = json_object_get(info, "health_status");
    if (health != NULL)
        json_object_set(j, "health_status", health);
    return j;
}
