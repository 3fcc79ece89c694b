/* Human and machine output for the CLI: aligned tables with an upper-case
 * header, and pretty JSON for -o json.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_OUTPUT_H
#define CP_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

struct table;

/* A table with ncols columns and the given header cells (copied). */
struct table *table_new(size_t ncols, const char *const *headers);
void table_free(struct table *t);
/* Appends a row of ncols cells (copied; NULL prints as empty). */
void table_add(struct table *t, const char *const *cells);
/* Writes the header and rows with columns padded to the widest cell plus
 * three spaces; the last column is not padded. */
void table_print(const struct table *t, FILE *f);

/* Writes j as indented JSON plus a newline. */
void output_json(const json_t *j, FILE *f);

/* Writes a JSON array to stdout with output_json(); NULL (the master left
 * the list out) prints as []. */
void output_list(const json_t *arr);

/* Renders a JSON scalar as text for a table cell (caller frees); strings
 * are as is, null and absent are "", arrays are joined with ",". */
char *output_cell(const json_t *v);

#endif
