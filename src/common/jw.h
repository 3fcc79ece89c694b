/* A streaming JSON writer into a cp_buf, for responses on hot paths where
 * building a jansson tree only to dump it costs more than the work itself.
 * Commas are placed automatically; the caller keeps nesting balanced.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_JW_H
#define CP_JW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define JW_MAX_DEPTH 32

struct jw {
    struct cp_buf *out;
    int depth;
    bool need_comma[JW_MAX_DEPTH];
};

void jw_init(struct jw *w, struct cp_buf *out);
void jw_obj_open(struct jw *w);
void jw_obj_close(struct jw *w);
void jw_arr_open(struct jw *w);
void jw_arr_close(struct jw *w);
/* Writes "key": (then a value call must follow). */
void jw_key(struct jw *w, const char *key);
/* Values; jw_str(NULL) writes null. */
void jw_str(struct jw *w, const char *s);
void jw_int(struct jw *w, long long v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* An ISO-8601 time, or null for 0. */
void jw_time(struct jw *w, int64_t ms);
/* A jansson value, dumped compactly (v may be NULL: writes dflt). */
void jw_json(struct jw *w, const json_t *v, const char *dflt);

#endif
