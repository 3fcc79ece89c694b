/* The kontena.yml stack file reader: turns a stack file (YAML) into the
 * body of POST /v1/grids/G/stacks (spec 3.2, 5.5). Everything in the file
 * is resolved here: variables (defaults, env, vault, random strings,
 * prompts, -v overrides), ${VAR} interpolation, extends, env files and the
 * compose-style service keys. Pure apart from reading the files the stack
 * names and the callbacks the caller gives; every problem is collected
 * with its file, line and key path, never just the first.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_STACKFILE_H
#define CP_CLI_STACKFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Files bigger than this are refused before they are parsed. */
#define STACKFILE_MAX_SIZE (1024 * 1024)
/* Nesting deeper than this is refused (also stops alias cycles). */
#define STACKFILE_MAX_DEPTH 64
/* At most this many nodes after aliases are expanded (alias bombs). */
#define STACKFILE_MAX_NODES 100000
/* At most this many scalar bytes after aliases are expanded. */
#define STACKFILE_MAX_BYTES (8 * 1024 * 1024)
/* At most this many errors are collected; the rest are counted. */
#define STACKFILE_MAX_ERRORS 200
/* extends and depends chains longer than this are refused (cycles). */
#define STACKFILE_MAX_CHAIN 8

/* One problem: "file:line: path: message". line is 0 when unknown,
 * path is "" for the whole file. */
struct stackfile_error {
    char *file;
    int line;
    char *path;
    char *msg;
};

/* The value of an environment variable, or NULL (borrowed). */
typedef const char *stackfile_env_fn(void *ud, const char *name);
/* Reads vault secret name: returns 0 with *value (caller frees), or
 * non-zero with a lower-case reason in err. */
typedef int stackfile_vault_fn(void *ud, const char *name, char **value,
                               char *err, size_t errlen);
/* Asks text on the terminal: returns 0 with *value (caller frees), or
 * non-zero when nobody can answer. */
typedef int stackfile_prompt_fn(void *ud, const char *text, char **value);

struct stackfile_opts {
    const char *name;     /* the stack name (-n); NULL: from "stack:" */
    const char *parent;   /* the parent stack's name for a depends child */
    const char *grid;     /* ${GRID}; NULL: unknown (using it is an error) */
    const json_t *values; /* variable overrides {name: value}; may be NULL */
    /* The stack file's text when it is not read from path (stack
     * upgrade from the stored source); path then only names it and
     * gives the directory relative paths start from. */
    const char *text;
    size_t text_len;
    stackfile_env_fn *getenv_fn;    /* NULL: getenv(3) */
    stackfile_vault_fn *vault_fn;   /* NULL: vault sources are an error */
    stackfile_prompt_fn *prompt_fn; /* NULL: prompts are an error */
    void *ud;
};

/* What a read yields. */
struct stackfile {
    json_t *body; /* the stack install body; NULL when there are errors */
    /* The child stacks to install first, in order:
     * [{name: "<parent>-<child>", file, variables: {..}}]. */
    json_t *depends;
    struct stackfile_error *errors;
    size_t nerrors;
    size_t ndropped; /* errors past STACKFILE_MAX_ERRORS */
};

/* Reads the stack file at path (or o->text) into sf. Returns 0, or
 * CP_EINVAL with every problem in sf->errors. Always call
 * stackfile_release() afterwards. */
int stackfile_load(struct stackfile *sf, const char *path,
                   const struct stackfile_opts *o);
void stackfile_release(struct stackfile *sf);

/* "file:line: path: message" for one error (caller frees). */
char *stackfile_error_text(const struct stackfile_error *e);

/* Renders a JSON value as a YAML document (caller frees); strings that
 * would read back as another type are quoted. */
char *stackfile_yaml(const json_t *j);

/* Splits a command line as a POSIX shell would (quotes, backslashes; no
 * expansion) into a new array of strings, or NULL with the reason in err
 * (unclosed quote). */
json_t *stackfile_shell_split(const char *s, char *err, size_t errlen);

/* Parses "k=v" overrides of -v into obj (later ones win); returns 0 or
 * CP_EINVAL with the reason in err. */
int stackfile_value_arg(json_t *obj, const char *kv, char *err, size_t errlen);

/* Reads a --values-from YAML file (a map of names to scalars) into obj;
 * returns 0 or CP_EINVAL with the reason in err. */
int stackfile_values_file(json_t *obj, const char *path, char *err,
                          size_t errlen);

#endif
