/* jansson helpers.
 * SPDX-License-Identifier: Apache-2.0 */
#include "json.h"
#include "alloc.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* jansson caps depth at 2048 internally; ours is tighter, checked after
 * parsing by walking the tree without recursion into absurd depths. */
static bool depth_ok(json_t *j, int depth)
{
    if (depth > CP_JSON_MAX_DEPTH)
        return false;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (!depth_ok(v, depth + 1))
                return false;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!depth_ok(v, depth + 1))
                return false;
        }
    }
    return true;
}

/* Cheap pre-scan so that a 2048-deep document is refused before jansson
 * builds it. Counts bracket depth outside strings. */
static bool prescan_depth_ok(const char *text, size_t len)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > CP_JSON_MAX_DEPTH)
                return false;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return true;
}

json_t *cp_json_parse(const char *text, size_t len, char *err,
                      size_t errlen)
{
    json_error_t je;
    if (!prescan_depth_ok(text, len)) {
        if (err != NULL)
            snprintf(err, errlen, "nesting deeper than %d",
                     CP_JSON_MAX_DEPTH);
        return NULL;
    }
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        if (err != NULL)
            snprintf(err, errlen, "%s at line %d column %d", je.text,
                     je.line, je.column);
        return NULL;
    }
    if (!depth_ok(j, 0)) {
        json_decref(j);
        if (err != NULL)
            snprintf(err, errlen, "nesting deeper than %d",
                     CP_JSON_MAX_DEPTH);
        return NULL;
    }
    return j;
}

char *cp_json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15) |
                                JSON_ENCODE_ANY);
    if (s == NULL)
        return cp_strdup("null");
    /* jansson allocates with malloc; hand back a cp_ string so callers
     * free uniformly with cp_free(). They are the same allocator. */
    return s;
}

const char *cp_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long cp_json_int(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

bool cp_json_bool(const json_t *obj, const char *key, bool def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

bool cp_json_has(const json_t *obj, const char *key)
{
    return json_object_get(obj, key) != NULL;
}

void cp_json_set_str(json_t *obj, const char *key, const char *s)
{
    json_object_set_new(obj, key, s ? json_string(s) : json_null());
}

void cp_json_set_time(json_t *obj, const char *key, long long ms)
{
    if (ms == 0) {
        json_object_set_new(obj, key, json_null());
        return;
    }
    char buf[40];
    json_object_set_new(obj, key, json_string(cp_time_iso(ms, buf,
                                                          sizeof(buf))));
}

bool cp_json_is_string_array(const json_t *arr)
{
    if (!json_is_array(arr))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return false;
    }
    return true;
}
