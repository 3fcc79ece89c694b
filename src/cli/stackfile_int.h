/* Internals shared by the stack file reader's files: the YAML node tree
 * with lines (stackfile_yaml.c), the reading context with its error list
 * and interpolation (stackfile.c) and the service key mapping
 * (stackfile_service.c). Not for use outside src/cli/stackfile*.c.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_STACKFILE_INT_H
#define CP_CLI_STACKFILE_INT_H

#include "stackfile.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum sf_kind { SF_SCALAR, SF_MAP, SF_SEQ };

/* One YAML node after alias expansion and merge keys. Scalars keep their
 * raw text: typing (YAML 1.1 words and numbers for plain scalars) and
 * ${VAR} interpolation happen when a value is read, so that both can
 * report the node's line. A map's keys are scalars, unique. */
struct sf_node {
    enum sf_kind kind;
    int line;         /* 1-based */
    bool is_plain;    /* a scalar written without quotes */
    const char *file; /* borrowed from the document */
    char *text;       /* scalar text (NUL-terminated) */
    size_t len;
    size_t n;
    struct sf_node **items; /* sequence items, or map values */
    struct sf_node **keys;  /* map keys */
};

/* One parsed file. */
struct sf_doc {
    char *file; /* as given, for messages */
    char *dir;  /* the directory relative paths in it start from */
    char *text; /* the raw source */
    size_t len;
    struct sf_node *root; /* NULL when the file did not parse */
    struct sf_doc *next;  /* the context's list */
};

/* One resolved variable. */
struct sf_var {
    char *name;
    json_t *value;  /* typed: string, integer or boolean; NULL: unset */
    bool is_secret; /* came from the vault: not stored in "variables" */
};

/* The state of one read (one stack file plus what it extends). */
struct sf_ctx {
    const struct stackfile_opts *o;
    struct stackfile *sf;
    struct sf_doc *docs; /* every file read, freed at the end */
    char **pool;         /* strings freed at the end */
    size_t npool, cappool;
    struct sf_var *vars;
    size_t nvars;
    const char *main_file;         /* for errors without a node */
    const char *stack_name;        /* ${STACK} */
    size_t interpolated;           /* bytes made by interpolation (bounded) */
    const struct sf_node *volumes; /* the top-level volumes map or NULL */
};

/* ==== stackfile_yaml.c ==== */

/* Parses len bytes of text as one YAML document into d->root, reporting
 * problems (syntax with line and column, limits, duplicate keys) through
 * c. Returns 0 when there is a tree to read on (problems inside it, such
 * as duplicate keys, are reported but kept going), else CP_EINVAL. */
int sf_yaml_parse(struct sf_ctx *c, struct sf_doc *d);
void sf_node_free(struct sf_node *n);

/* ==== stackfile.c ==== */

/* Records an error at node at (may be NULL: no line) of file. */
void sf_err(struct sf_ctx *c, const struct sf_node *at, const char *path,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Records an error with an explicit file and line. */
void sf_err_at(struct sf_ctx *c, const char *file, int line, const char *path,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Keeps s until the read ends and returns it. */
const char *sf_keep(struct sf_ctx *c, char *s);
/* "base.key", kept. */
const char *sf_path(struct sf_ctx *c, const char *base, const char *key);
/* "base[i]" (1-based), kept. */
const char *sf_path_i(struct sf_ctx *c, const char *base, size_t i);

/* The value of key in map node m, or NULL. */
const struct sf_node *sf_get(const struct sf_node *m, const char *key);
/* True for an absent node or a plain null (~, null, empty). */
bool sf_is_null(const struct sf_node *n);
/* Reports every key of map m not in the NULL-terminated allowed list;
 * false when m is not a map (reported too). */
bool sf_check_keys(struct sf_ctx *c, const struct sf_node *m, const char *path,
                   const char *const *allowed);

/* Interpolated scalar text (kept), or NULL after reporting (not a scalar,
 * unknown variable). */
const char *sf_str(struct sf_ctx *c, const struct sf_node *n, const char *path);
/* Typed readers: 0, or CP_EINVAL after reporting. */
int sf_int(struct sf_ctx *c, const struct sf_node *n, const char *path,
           long long min, long long max, long long *out);
int sf_bool(struct sf_ctx *c, const struct sf_node *n, const char *path,
            bool *out);
int sf_real(struct sf_ctx *c, const struct sf_node *n, const char *path,
            double min, double max, double *out);
/* A scalar as its typed JSON value (plain scalars: null, booleans,
 * integers, reals; others: strings), or NULL after reporting. */
json_t *sf_scalar_json(struct sf_ctx *c, const struct sf_node *n,
                       const char *path);
/* A sequence of scalars as an array of strings (a single scalar is
 * refused), or NULL after reporting. */
json_t *sf_str_list(struct sf_ctx *c, const struct sf_node *n,
                    const char *path);

/* Reads and parses the file at path (relative to dir unless absolute)
 * into a new document on c's list; NULL after reporting at (the node that
 * named it). */
struct sf_doc *sf_load_doc(struct sf_ctx *c, const char *dir, const char *path,
                           const struct sf_node *at, const char *key_path);
/* path joined to dir unless absolute (kept). */
const char *sf_join(struct sf_ctx *c, const char *dir, const char *path);

/* ==== stackfile_service.c ==== */

/* Maps the services map of doc d into an array of API service objects
 * (file order) and checks links, expose and cycles. Returns the array
 * (possibly partial when errors were reported). */
json_t *sf_services(struct sf_ctx *c, const struct sf_doc *d,
                    const struct sf_node *services);

#endif
