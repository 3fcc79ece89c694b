/* Helpers over jansson: strict bounded parsing, typed getters and compact
 * dumping. Every JSON document that comes from outside goes through
 * cp_json_parse().
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_JSON_H
#define CP_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CP_JSON_MAX_DEPTH 64

/* Parses len bytes of JSON text. Rejects duplicate keys, NUL bytes,
 * nesting deeper than CP_JSON_MAX_DEPTH and trailing garbage. Returns a new
 * reference, or NULL with a one-line reason in err (may be NULL). */
json_t *cp_json_parse(const char *text, size_t len, char *err,
                      size_t errlen);

/* Compact UTF-8 serialisation (caller frees). Reals use 15 digits. */
char *cp_json_dump(const json_t *j);

/* Borrowed string member or NULL when absent or not a string. */
const char *cp_json_str(const json_t *obj, const char *key);
/* Integer member; returns def when absent or not an integer. */
long long cp_json_int(const json_t *obj, const char *key, long long def);
/* Boolean member (true/false only); returns def otherwise. */
bool cp_json_bool(const json_t *obj, const char *key, bool def);

/* True when obj has key (of any type, null included). */
bool cp_json_has(const json_t *obj, const char *key);

/* Sets key to a string or to null when s is NULL. */
void cp_json_set_str(json_t *obj, const char *key, const char *s);
/* Sets key to an ISO-8601 time or null when ms is 0. */
void cp_json_set_time(json_t *obj, const char *key, long long ms);

/* True when every element of arr is a string. */
bool cp_json_is_string_array(const json_t *arr);

#endif
