/* libFuzzer target for the kontena.yml reader (src/cli/stackfile*.c).
 *
 * Each input is a whole stack file given as text (the way kontena stack
 * upgrade reads a stored source), read with a fixed grid, fake env and
 * vault sources and no terminal. Then:
 *   - a read that fails must say why: at least one error, each with a
 *     message, and no body;
 *   - a read that succeeds must give a body whose services are objects
 *     with a name, which renders as YAML and as JSON that re-parses;
 *   - the same bytes as a --values-from file, and as a command line for
 *     the shell splitter, must not crash either.
 * Nothing here may crash, hang, trip ASan/UBSan, or leak.
 *
 * Build: cmake -DFUZZ=ON with CC=clang (see tests/fuzz/run.sh).
 * SPDX-License-Identifier: Apache-2.0 */
#include "../../src/cli/stackfile.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char values_path[64];

static const char *fake_env(void *ud, const char *name)
{
    (void)ud;
    return strcmp(name, "HOME") == 0 ? "/root" : NULL;
}

static int fake_vault(void *ud, const char *name, char **value, char *err,
                      size_t errlen)
{
    (void)ud;
    if (strcmp(name, "missing") == 0)
        return CP_ENOTFOUND;
    if (strcmp(name, "broken") == 0) {
        snprintf(err, errlen, "broken");
        return CP_EIO;
    }
    *value = cp_strdup("secret");
    return 0;
}

static void check_body(const json_t *body)
{
    if (!json_is_object(body))
        abort();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(body, "services"), i, s)
    {
        if (!json_is_object(s) || cp_json_str(s, "name") == NULL)
            abort();
    }
    char *y = stackfile_yaml(body);
    if (y == NULL)
        abort();
    cp_free(y);
    char *j = cp_json_dump(body);
    json_t *again = cp_json_parse(j, strlen(j), NULL, 0);
    if (again == NULL)
        abort();
    json_decref(again);
    cp_free(j);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(values_path, sizeof(values_path), "/tmp/fuzz_stackfile.%d.yml",
             (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > STACKFILE_MAX_SIZE + 16)
        return -1;
    json_t *values = json_pack("{s:s}", "given", "42");
    struct stackfile_opts o = {0};
    o.grid = "fuzz";
    o.values = values;
    o.text = (const char *)data;
    o.text_len = size;
    o.getenv_fn = fake_env;
    o.vault_fn = fake_vault;
    struct stackfile sf;
    int rc = stackfile_load(&sf, "fuzz.yml", &o);
    if (rc != 0) {
        if (sf.nerrors == 0 && sf.ndropped == 0)
            abort(); /* a refusal always says why */
        if (sf.body != NULL)
            abort();
        for (size_t i = 0; i < sf.nerrors; i++) {
            if (sf.errors[i].msg == NULL || *sf.errors[i].msg == '\0')
                abort();
            char *t = stackfile_error_text(&sf.errors[i]);
            cp_free(t);
        }
    } else {
        check_body(sf.body);
        if (!json_is_array(sf.depends))
            abort();
    }
    stackfile_release(&sf);
    json_decref(values);

    /* The same bytes as a values file and as a command line. */
    FILE *f = fopen(values_path, "w");
    if (f != NULL) {
        fwrite(data, 1, size, f);
        fclose(f);
        json_t *v = json_object();
        char err[256];
        (void)stackfile_values_file(v, values_path, err, sizeof(err));
        json_decref(v);
        unlink(values_path);
    }
    char *line = cp_strndup((const char *)data, size);
    char err[64];
    json_t *words = stackfile_shell_split(line, err, sizeof(err));
    json_decref(words);
    cp_free(line);
    return 0;
}
