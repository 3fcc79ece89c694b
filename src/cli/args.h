/* Command-line option parsing for the kontena CLI: each command declares a
 * static table of options, args_parse() splits argv into positional
 * arguments and option values and reports what is wrong in a sentence.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_ARGS_H
#define CP_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

enum args_kind {
    ARGS_FLAG,  /* --force: no value */
    ARGS_VALUE, /* --name NAME or --name=NAME; the last one wins */
    ARGS_MULTI, /* --log-opt K=V, may repeat; every value is kept */
};

/* One row of a command's option table; tables end with a zeroed row. */
struct args_opt {
    const char *name; /* long name without the leading "--" */
    char short_name;  /* 0 when the option has no short form */
    enum args_kind kind;
    const char *metavar; /* shown in help for ARGS_VALUE/ARGS_MULTI */
    const char *help;
};

struct args_val {
    bool is_set;
    const char **values; /* owned array, borrowed strings from argv */
    size_t nvalues;
};

/* The result of parsing. Strings are borrowed from argv. */
struct args {
    const struct args_opt *opts;
    struct args_val *vals; /* one per row of opts */
    size_t nopts;
    const char **pos;
    size_t npos;
    bool is_help; /* -h or --help was given */
    char err[256];
};

/* Parses argc/argv (argv[0] is the first argument, not the command name)
 * against opts. "--" ends options; "-" alone is positional. Returns 0, or
 * CP_EINVAL with a lower-case sentence in a->err. Always call
 * args_release() afterwards. */
int args_parse(struct args *a, const struct args_opt *opts, int argc,
               char **argv);
void args_release(struct args *a);

/* True when the option was given (name must be in the table). */
bool args_has(const struct args *a, const char *name);
/* Last value of a VALUE/MULTI option or NULL. */
const char *args_get(const struct args *a, const char *name);
/* Number of values and the i-th value of a MULTI option. */
size_t args_count(const struct args *a, const char *name);
const char *args_at(const struct args *a, const char *name, size_t i);

#endif
