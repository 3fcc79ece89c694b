/* Unit tests for the kontena.yml reader (src/cli/stackfile*.c): every
 * service key mapping, variables and their sources, interpolation and $$,
 * extends, env files, depends naming, link checks and cycles, unknown
 * keys with their lines, bad YAML, size limits and alias bombs, and the
 * YAML rendering of validate.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/stackfile.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static char *write_file(const char *name, const char *text, size_t len)
{
    char *path = cp_asprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

/* Environment for the tests: a fixed table instead of getenv(3). */
static const char *fake_env(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "DB_PASSWORD") == 0)
        return "from-env";
    if (strcmp(name, "REPLICAS") == 0)
        return "3";
    return NULL;
}

static int fake_vault(void *ud, const char *name, char **value, char *err,
                      size_t errlen)
{
    (void)ud;
    if (strcmp(name, "db-pass") == 0) {
        *value = cp_strdup("s3cret");
        return 0;
    }
    if (strcmp(name, "broken") == 0) {
        snprintf(err, errlen, "master unreachable");
        return CP_EIO;
    }
    return CP_ENOTFOUND;
}

static int fake_prompt(void *ud, const char *text, char **value)
{
    (void)ud;
    *value = cp_asprintf("answer to %s", text);
    return 0;
}

static void opts_init(struct stackfile_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->grid = "testgrid";
    o->getenv_fn = fake_env;
    o->vault_fn = fake_vault;
}

/* Writes text as kontena.yml in the temp dir and reads it. */
static int load(struct stackfile *sf, const char *text,
                const struct stackfile_opts *o)
{
    char *path = write_file("kontena.yml", text, strlen(text));
    int rc = stackfile_load(sf, path, o);
    cp_free(path);
    return rc;
}

static int load_default(struct stackfile *sf, const char *text)
{
    struct stackfile_opts o;
    opts_init(&o);
    return load(sf, text, &o);
}

/* True when some error has this line (0: any), path and message part. */
static bool has_error(const struct stackfile *sf, int line, const char *path,
                      const char *part)
{
    for (size_t i = 0; i < sf->nerrors; i++) {
        const struct stackfile_error *e = &sf->errors[i];
        if ((line == 0 || e->line == line) && strcmp(e->path, path) == 0 &&
            strstr(e->msg, part) != NULL)
            return true;
    }
    return false;
}

static void dump_errors(const struct stackfile *sf)
{
    for (size_t i = 0; i < sf->nerrors; i++) {
        char *t = stackfile_error_text(&sf->errors[i]);
        print_message("  %s\n", t);
        cp_free(t);
    }
}

static void expect_error(const char *text, int line, const char *path,
                         const char *part)
{
    struct stackfile sf;
    assert_int_equal(load_default(&sf, text), CP_EINVAL);
    assert_null(sf.body);
    if (!has_error(&sf, line, path, part)) {
        print_message("wanted line %d %s: %s, got:\n", line, path, part);
        dump_errors(&sf);
        fail();
    }
    stackfile_release(&sf);
}

static json_t *service(const json_t *body, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(body, "services"), i, s)
    {
        if (strcmp(cp_json_str(s, "name"), name) == 0)
            return s;
    }
    fail_msg("no service %s", name);
    return NULL;
}

static void assert_member(const json_t *obj, const char *key, const char *want)
{
    char *s = cp_json_dump(json_object_get(obj, key));
    if (strcmp(s, want) != 0)
        fail_msg("%s is %s, want %s", key, s, want);
    cp_free(s);
}

static void load_ok(struct stackfile *sf, const char *text,
                    const struct stackfile_opts *o)
{
    if (load(sf, text, o) != 0) {
        dump_errors(sf);
        fail();
    }
    assert_non_null(sf->body);
}

/* ==== Mapping ==== */

static const char full_file[] =
    "stack: acme/shop:2.0\n"
    "description: a shop\n"
    "expose: web\n"
    "services:\n"
    "  web:\n"
    "    image: nginx:1.13\n"
    "    instances: 3\n"
    "    command: sh -c \"echo 'a b' && exec nginx\" x\\ y\n"
    "    entrypoint: [/bin/sh, -c]\n"
    "    environment:\n"
    "      FOO: bar\n"
    "      NUM: 5\n"
    "      EMPTY:\n"
    "    ports:\n"
    "      - 80:80\n"
    "      - 1.2.3.4:53:53/udp\n"
    "    volumes:\n"
    "      - /data\n"
    "      - /host:/cont:ro\n"
    "      - data:/var/lib/x\n"
    "      - ./rel:/rel\n"
    "    volumes_from: [other-%s]\n"
    "    links:\n"
    "      - db\n"
    "      - db2:database\n"
    "      - other/api\n"
    "    depends_on: [cache]\n"
    "    external_links: [infra/lb:lb]\n"
    "    affinity: [label==az=a, service!=db]\n"
    "    deploy:\n"
    "      strategy: daemon\n"
    "      wait_for_port: 8080\n"
    "      min_health: 0.5\n"
    "      interval: 5min\n"
    "    health_check:\n"
    "      protocol: http\n"
    "      port: 80\n"
    "      uri: /health\n"
    "      timeout: 5\n"
    "      interval: 30\n"
    "      initial_delay: 10\n"
    "    hooks:\n"
    "      pre_start:\n"
    "        - name: migrate\n"
    "          cmd: rake db:migrate\n"
    "          instances: 1\n"
    "          oneshot: true\n"
    "      post_start:\n"
    "        - name: warm\n"
    "          cmd: curl localhost\n"
    "          instances: '*'\n"
    "    secrets:\n"
    "      - secret: DB_PASS\n"
    "        name: DB_PASSWORD\n"
    "        type: env\n"
    "      - secret: API_KEY\n"
    "        name: KEY\n"
    "    certificates:\n"
    "      - subject: example.com\n"
    "    logging:\n"
    "      driver: json-file\n"
    "      options:\n"
    "        max-size: 10m\n"
    "        max-file: 3\n"
    "    mem_limit: 512m\n"
    "    memswap_limit: 1g\n"
    "    shm_size: 64m\n"
    "    cpus: 1.5\n"
    "    cpu_shares: 512\n"
    "    stateful: no\n"
    "    user: nobody\n"
    "    privileged: false\n"
    "    read_only: yes\n"
    "    cap_add: [NET_ADMIN]\n"
    "    cap_drop: [ALL]\n"
    "    devices: [/dev/fuse]\n"
    "    network_mode: host\n"
    "    pid: host\n"
    "    stop_signal: SIGQUIT\n"
    "    stop_grace_period: 1m30s\n"
    "  db: {image: mariadb}\n"
    "  db2: {image: mariadb}\n"
    "  cache: {image: redis}\n"
    "volumes:\n"
    "  data:\n"
    "    external: true\n"
    "  other:\n"
    "    external:\n"
    "      name: grid-vol\n";

static void test_full_mapping(void **state)
{
    (void)state;
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    load_ok(&sf, full_file, &o);
    const json_t *b = sf.body;
    assert_member(b, "name", "\"shop\"");
    assert_member(b, "stack", "\"acme/shop\"");
    assert_member(b, "version", "\"2.0\"");
    assert_member(b, "registry", "\"file://\"");
    assert_member(b, "expose", "\"web\"");
    assert_member(b, "metadata", "{\"description\":\"a shop\"}");
    assert_member(b, "parent", "null");
    assert_member(b, "labels", "[]");
    assert_member(b, "volumes",
                  "[{\"name\":\"data\",\"external\":\"data\"},"
                  "{\"name\":\"other\",\"external\":\"grid-vol\"}]");
    assert_string_equal(cp_json_str(b, "source"), full_file);
    const json_t *w = service(b, "web");
    assert_member(w, "image", "\"nginx:1.13\"");
    assert_member(w, "instances", "3");
    assert_member(w, "cmd",
                  "[\"sh\",\"-c\",\"echo 'a b' && exec nginx\",\"x y\"]");
    assert_member(w, "entrypoint", "[\"/bin/sh\",\"-c\"]");
    assert_member(w, "env", "[\"FOO=bar\",\"NUM=5\",\"EMPTY=\"]");
    assert_member(w, "ports",
                  "[{\"ip\":\"0.0.0.0\",\"protocol\":\"tcp\",\"node_port\":"
                  "80,\"container_port\":80},{\"ip\":\"1.2.3.4\","
                  "\"protocol\":\"udp\",\"node_port\":53,"
                  "\"container_port\":53}]");
    const json_t *vols = json_object_get(w, "volumes");
    assert_int_equal(json_array_size(vols), 4);
    assert_string_equal(json_string_value(json_array_get(vols, 2)),
                        "data:/var/lib/x");
    char real[4096];
    assert_non_null(realpath(tmpdir, real));
    char *rel = cp_asprintf("%s/rel:/rel", real);
    assert_string_equal(json_string_value(json_array_get(vols, 3)), rel);
    cp_free(rel);
    assert_member(w, "volumes_from", "[\"other-%s\"]");
    assert_member(w, "links",
                  "[{\"name\":\"db\",\"alias\":\"db\"},"
                  "{\"name\":\"db2\",\"alias\":\"database\"},"
                  "{\"name\":\"other/api\",\"alias\":\"api\"},"
                  "{\"name\":\"cache\",\"alias\":\"cache\"},"
                  "{\"name\":\"infra/lb\",\"alias\":\"lb\"}]");
    assert_member(w, "affinity", "[\"label==az=a\",\"service!=db\"]");
    assert_member(w, "strategy", "\"daemon\"");
    assert_member(w, "deploy_opts",
                  "{\"wait_for_port\":8080,\"min_health\":0.5,"
                  "\"interval\":300}");
    assert_member(w, "health_check",
                  "{\"protocol\":\"http\",\"port\":80,\"uri\":\"/health\","
                  "\"timeout\":5,\"interval\":30,\"initial_delay\":10}");
    assert_member(w, "hooks",
                  "{\"pre_start\":[{\"name\":\"migrate\",\"cmd\":\"rake "
                  "db:migrate\",\"instances\":\"1\",\"oneshot\":true}],"
                  "\"post_start\":[{\"name\":\"warm\",\"cmd\":\"curl "
                  "localhost\",\"instances\":\"*\"}]}");
    assert_member(w, "secrets",
                  "[{\"secret\":\"DB_PASS\",\"name\":\"DB_PASSWORD\","
                  "\"type\":\"env\"},{\"secret\":\"API_KEY\",\"name\":"
                  "\"KEY\",\"type\":\"env\"}]");
    assert_member(w, "certificates",
                  "[{\"subject\":\"example.com\",\"type\":\"env\"}]");
    assert_member(w, "log_driver", "\"json-file\"");
    assert_member(w, "log_opts", "{\"max-size\":\"10m\",\"max-file\":\"3\"}");
    assert_member(w, "memory", "536870912");
    assert_member(w, "memory_swap", "1073741824");
    assert_member(w, "shm_size", "67108864");
    assert_member(w, "cpus", "1.5");
    assert_member(w, "cpu_shares", "512");
    assert_member(w, "stateful", "false");
    assert_member(w, "user", "\"nobody\"");
    assert_member(w, "privileged", "false");
    assert_member(w, "read_only", "true");
    assert_member(w, "cap_add", "[\"NET_ADMIN\"]");
    assert_member(w, "cap_drop", "[\"ALL\"]");
    assert_member(w, "devices", "[\"/dev/fuse\"]");
    assert_member(w, "net", "\"host\"");
    assert_member(w, "pid", "\"host\"");
    assert_member(w, "stop_signal", "\"SIGQUIT\"");
    assert_member(w, "stop_grace_period", "90");
    /* Fields the file leaves out go as null (reset on upgrade). */
    const json_t *db = service(b, "db");
    assert_member(db, "image", "\"mariadb\"");
    assert_member(db, "instances", "null");
    assert_member(db, "env", "null");
    assert_member(db, "links", "null");
    assert_int_equal(json_array_size(sf.depends), 0);
    stackfile_release(&sf);
}

static void test_type_errors(void **state)
{
    (void)state;
    const char *head = "stack: s\nservices:\n  web:\n    image: x\n";
    static const struct {
        const char *line, *path, *part;
    } cases[] = {
        {"    instances: [1]\n", "services.web.instances", "not a list"},
        {"    instances: -1\n", "services.web.instances", "0 to 10000"},
        {"    stateful: maybe\n", "services.web.stateful", "true or false"},
        {"    cpus: lots\n", "services.web.cpus", "must be a number"},
        {"    cpu_shares: 2000\n", "services.web.cpu_shares", "0 to 1024"},
        {"    mem_limit: 5q\n", "services.web.mem_limit", "memory size"},
        {"    ports: 80\n", "services.web.ports", "must be a list"},
        {"    ports: [\"80\"]\n", "services.web.ports[1]", "invalid port"},
        {"    environment: [FOO]\n", "services.web.environment[1]",
         "KEY=VALUE"},
        {"    environment: 5\n", "services.web.environment", "map or a list"},
        {"    command: \"sh -c 'x\"\n", "services.web.command", "quote"},
        {"    network_mode: overlay\n", "services.web.network_mode",
         "bridge, host"},
        {"    stop_grace_period: soon\n", "services.web.stop_grace_period",
         "duration"},
        {"    deploy: {interval: 5x}\n", "services.web.deploy.interval",
         "duration"},
        {"    deploy: {min_health: 2}\n", "services.web.deploy.min_health",
         "0 to 1"},
        {"    health_check: {protocol: udp, port: 1}\n",
         "services.web.health_check.protocol", "http or tcp"},
        {"    health_check: {protocol: tcp}\n",
         "services.web.health_check.port", "required"},
        {"    secrets: [{name: X}]\n", "services.web.secrets[1].secret",
         "required"},
        {"    secrets: [{secret: s, name: X, type: file}]\n",
         "services.web.secrets[1].type", "only type"},
        {"    hooks: {post_start: [{name: x}]}\n",
         "services.web.hooks.post_start[1].cmd", "required"},
        {"    volumes: [nope:/x]\n", "services.web.volumes[1]",
         "not in the top-level volumes"},
        {"    build: .\n", "services.web.build", "not supported"},
        {"    cap_add: NET_ADMIN\n", "services.web.cap_add", "must be a list"},
        {"    affinity: [[x]]\n", "services.web.affinity[1]",
         "must be a string"},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++) {
        char *text = cp_asprintf("%s%s", head, cases[i].line);
        expect_error(text, 5, cases[i].path, cases[i].part);
        cp_free(text);
    }
}

/* ==== Variables ==== */

static const char vars_file[] = "stack: s\n"
                                "variables:\n"
                                "  replicas:\n"
                                "    type: integer\n"
                                "    min: 1\n"
                                "    max: 5\n"
                                "    from:\n"
                                "      env: REPLICAS\n"
                                "    default: 1\n"
                                "  pass:\n"
                                "    type: string\n"
                                "    from:\n"
                                "      env: NOPE\n"
                                "      random_string: 24\n"
                                "  db_pass:\n"
                                "    from:\n"
                                "      env: DB_PASSWORD\n"
                                "  vaulted:\n"
                                "    from:\n"
                                "      vault: db-pass\n"
                                "  vault_missing:\n"
                                "    from:\n"
                                "      vault: nothing\n"
                                "    default: fallback\n"
                                "  debug:\n"
                                "    type: boolean\n"
                                "    default: yes\n"
                                "  mode:\n"
                                "    type: enum\n"
                                "    options: [fast, slow]\n"
                                "    default: slow\n"
                                "  site:\n"
                                "    type: uri\n"
                                "    value: https://example.com/\n"
                                "  optional:\n"
                                "    required: false\n"
                                "  derived:\n"
                                "    default: ${STACK}-${mode}\n"
                                "services:\n"
                                "  web:\n"
                                "    image: x\n"
                                "    instances: ${replicas}\n"
                                "    environment:\n"
                                "      - P=${pass}\n"
                                "      - V=${vaulted}\n"
                                "      - D=$debug\n"
                                "      - O=${optional}x\n"
                                "      - X=${derived}\n";

static void test_variables(void **state)
{
    (void)state;
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    load_ok(&sf, vars_file, &o);
    const json_t *v = json_object_get(sf.body, "variables");
    assert_member(v, "replicas", "3");
    assert_int_equal(strlen(cp_json_str(v, "pass")), 24);
    assert_member(v, "db_pass", "\"from-env\"");
    /* Vault values are used but never stored with the stack. */
    assert_null(json_object_get(v, "vaulted"));
    assert_member(v, "vault_missing", "\"fallback\"");
    assert_member(v, "debug", "true");
    assert_member(v, "mode", "\"slow\"");
    assert_member(v, "site", "\"https://example.com/\"");
    assert_null(json_object_get(v, "optional"));
    assert_member(v, "derived", "\"s-slow\"");
    const json_t *w = service(sf.body, "web");
    assert_member(w, "instances", "3");
    char *env = cp_asprintf("[\"P=%s\",\"V=s3cret\",\"D=true\",\"O=x\","
                            "\"X=s-slow\"]",
                            cp_json_str(v, "pass"));
    assert_member(w, "env", env);
    cp_free(env);
    stackfile_release(&sf);

    /* -v overrides win over every source and are typed. */
    json_t *values = json_pack("{s:s, s:s, s:s}", "replicas", "4", "pass",
                               "given", "mode", "fast");
    o.values = values;
    load_ok(&sf, vars_file, &o);
    v = json_object_get(sf.body, "variables");
    assert_member(v, "replicas", "4");
    assert_member(v, "pass", "\"given\"");
    assert_member(v, "mode", "\"fast\"");
    stackfile_release(&sf);

    /* Overrides out of range or of the wrong type are errors. */
    json_object_set_new(values, "replicas", json_string("9"));
    json_object_set_new(values, "debug", json_string("perhaps"));
    json_object_set_new(values, "mode", json_string("medium"));
    json_object_set_new(values, "site", json_string("not a uri"));
    assert_int_equal(load(&sf, vars_file, &o), CP_EINVAL);
    assert_true(has_error(&sf, 3, "variables.replicas", "out of range"));
    assert_true(has_error(&sf, 25, "variables.debug", "not true or false"));
    assert_true(has_error(&sf, 28, "variables.mode", "not one of the"));
    assert_true(has_error(&sf, 32, "variables.site", "not a uri"));
    stackfile_release(&sf);
    json_decref(values);
}

static void test_variable_errors(void **state)
{
    (void)state;
    expect_error("stack: s\nvariables:\n  pw:\n    type: string\n"
                 "services:\n  web: {image: x}\n",
                 3, "variables.pw", "variable pw has no value");
    expect_error("stack: s\nvariables:\n  pw:\n    from:\n"
                 "      prompt: Password\n"
                 "services:\n  web: {image: x}\n",
                 5, "variables.pw.from.prompt",
                 "variable pw needs an answer to 'Password' but stdin is "
                 "not a terminal");
    expect_error("stack: s\nvariables:\n  pw:\n    from:\n"
                 "      vault: broken\n"
                 "services:\n  web: {image: x}\n",
                 5, "variables.pw.from.vault", "master unreachable");
    expect_error("stack: s\nvariables:\n  pw:\n    from:\n"
                 "      keyring: x\n"
                 "services:\n  web: {image: x}\n",
                 5, "variables.pw.from.keyring", "unknown source");
    expect_error("stack: s\nvariables:\n  n:\n    type: number\n"
                 "    default: 1\nservices:\n  web: {image: x}\n",
                 4, "variables.n.type", "must be string, integer");
    expect_error("stack: s\nvariables:\n  n:\n    type: integer\n"
                 "    default: x\nservices:\n  web: {image: x}\n",
                 5, "variables.n", "not a whole number");
    expect_error("stack: s\nvariables:\n  n:\n    colour: red\n"
                 "services:\n  web: {image: x}\n",
                 4, "variables.n.colour", "unknown key");
    expect_error("stack: s\nvariables:\n  STACK:\n    default: x\n"
                 "services:\n  web: {image: x}\n",
                 3, "variables.STACK", "taken");
    /* A prompt with somebody at the terminal. */
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    o.prompt_fn = fake_prompt;
    load_ok(&sf,
            "stack: s\nvariables:\n  pw:\n    from:\n      prompt: Password\n"
            "services:\n  web: {image: x}\n",
            &o);
    assert_member(json_object_get(sf.body, "variables"), "pw",
                  "\"answer to Password\"");
    stackfile_release(&sf);
}

static void test_values_helpers(void **state)
{
    (void)state;
    json_t *v = json_object();
    char err[256];
    assert_int_equal(stackfile_value_arg(v, "a=1", err, sizeof(err)), 0);
    assert_int_equal(stackfile_value_arg(v, "b=x=y", err, sizeof(err)), 0);
    assert_int_equal(stackfile_value_arg(v, "c=", err, sizeof(err)), 0);
    assert_int_equal(stackfile_value_arg(v, "noeq", err, sizeof(err)),
                     CP_EINVAL);
    assert_int_equal(stackfile_value_arg(v, "bad-name=1", err, sizeof(err)),
                     CP_EINVAL);
    assert_non_null(strstr(err, "NAME=VALUE"));
    char *s = cp_json_dump(v);
    assert_string_equal(s, "{\"a\":\"1\",\"b\":\"x=y\",\"c\":\"\"}");
    cp_free(s);
    const char yml[] = "a: 2\nd: \"${lit}\"\ne: true\n";
    char *path = write_file("values.yml", yml, strlen(yml));
    assert_int_equal(stackfile_values_file(v, path, err, sizeof(err)), 0);
    s = cp_json_dump(v);
    assert_string_equal(s, "{\"a\":\"2\",\"b\":\"x=y\",\"c\":\"\",\"d\":"
                           "\"${lit}\",\"e\":\"true\"}");
    cp_free(s);
    cp_free(path);
    const char bad[] = "a: [1]\n";
    path = write_file("bad-values.yml", bad, strlen(bad));
    assert_int_equal(stackfile_values_file(v, path, err, sizeof(err)),
                     CP_EINVAL);
    assert_non_null(strstr(err, ":1: a: must be a single value"));
    cp_free(path);
    assert_int_equal(
        stackfile_values_file(v, "/nonexistent/x.yml", err, sizeof(err)),
        CP_EINVAL);
    assert_non_null(strstr(err, "cannot read"));
    json_decref(v);
}

/* ==== Interpolation ==== */

static void test_interpolation(void **state)
{
    (void)state;
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    o.name = "renamed";
    load_ok(&sf,
            "stack: s\n"
            "variables:\n"
            "  tag: {default: \"1.2\"}\n"
            "services:\n"
            "  web:\n"
            "    image: nginx:${tag}\n"
            "    environment:\n"
            "      - A=$$HOME and $$$$\n"
            "      - B=${STACK}.${GRID}\n"
            "      - C=$tag-$ 5$\n"
            "      - 'D=cost: $$5'\n",
            &o);
    const json_t *w = service(sf.body, "web");
    assert_member(sf.body, "name", "\"renamed\"");
    assert_member(w, "image", "\"nginx:1.2\"");
    assert_member(w, "env",
                  "[\"A=$HOME and $$\",\"B=renamed.testgrid\","
                  "\"C=1.2-$ 5$\",\"D=cost: $5\"]");
    stackfile_release(&sf);
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    user: ${NOBODY}\n",
                 5, "services.web.user", "unknown variable 'NOBODY'");
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    user: $HOME\n",
                 5, "services.web.user", "unknown variable 'HOME'");
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    user: ${open\n",
                 5, "services.web.user", "without a closing");
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    user: ${a-b}\n",
                 5, "services.web.user", "invalid variable reference");
    /* No grid known: ${GRID} is an error saying so. */
    opts_init(&o);
    o.grid = NULL;
    assert_int_equal(load(&sf,
                          "stack: s\nservices:\n  web:\n    image: x\n"
                          "    user: ${GRID}\n",
                          &o),
                     CP_EINVAL);
    assert_true(has_error(&sf, 5, "services.web.user", "no current grid"));
    stackfile_release(&sf);
    /* Interpolated plain scalars are typed after substitution. */
    opts_init(&o);
    load_ok(&sf,
            "stack: s\nvariables:\n  p: {type: boolean, default: true}\n"
            "services:\n  web:\n    image: x\n    privileged: ${p}\n",
            &o);
    assert_member(service(sf.body, "web"), "privileged", "true");
    stackfile_release(&sf);
}

/* ==== extends, env_file, merge keys ==== */

static void test_extends(void **state)
{
    (void)state;
    const char base[] = "services:\n"
                        "  app:\n"
                        "    image: base:1\n"
                        "    instances: 2\n"
                        "    environment: [A=base, B=base]\n"
                        "    secrets:\n"
                        "      - {secret: S1, name: ONE}\n"
                        "      - {secret: S2, name: TWO}\n"
                        "  deep:\n"
                        "    extends: app\n"
                        "    user: deep\n";
    char *bp = write_file("base.yml", base, strlen(base));
    const char envf[] = "# comment\n\nE1=file\nA=file\n";
    char *ep = write_file("app.env", envf, strlen(envf));
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    load_ok(&sf,
            "stack: s\n"
            "services:\n"
            "  web:\n"
            "    extends:\n"
            "      file: base.yml\n"
            "      service: app\n"
            "    environment: [A=web]\n"
            "    secrets:\n"
            "      - {secret: S2, name: OTHER}\n"
            "  local:\n"
            "    extends: web\n"
            "    instances: 5\n"
            "  far:\n"
            "    extends: {file: base.yml, service: deep}\n"
            "  withenv:\n"
            "    image: x\n"
            "    env_file: app.env\n"
            "    environment: {A: inline}\n",
            &o);
    const json_t *w = service(sf.body, "web");
    assert_member(w, "image", "\"base:1\"");
    assert_member(w, "instances", "2");
    assert_member(w, "env", "[\"A=web\",\"B=base\"]");
    assert_member(w, "secrets",
                  "[{\"secret\":\"S2\",\"name\":\"OTHER\",\"type\":\"env\"},"
                  "{\"secret\":\"S1\",\"name\":\"ONE\",\"type\":\"env\"}]");
    const json_t *l = service(sf.body, "local");
    assert_member(l, "instances", "5");
    assert_member(l, "env", "[\"A=web\",\"B=base\"]");
    const json_t *f = service(sf.body, "far");
    assert_member(f, "image", "\"base:1\"");
    assert_member(f, "user", "\"deep\"");
    assert_member(service(sf.body, "withenv"), "env",
                  "[\"A=inline\",\"E1=file\"]");
    stackfile_release(&sf);

    expect_error("stack: s\nservices:\n  web:\n    extends: nope\n", 4,
                 "services.web.extends", "service 'nope' is not in");
    expect_error("stack: s\nservices:\n  web:\n    extends: web\n", 4,
                 "services.web.extends", "cannot extend itself");
    expect_error("stack: s\nservices:\n  a:\n    extends: b\n"
                 "  b:\n    extends: a\n",
                 0, "services.a.extends", "does it loop");
    expect_error("stack: s\nservices:\n  web:\n    extends:\n"
                 "      file: missing.yml\n      service: x\n",
                 5, "services.web.extends.file", "cannot read");
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    env_file: missing.env\n",
                 5, "services.web.env_file", "cannot read");
    /* An error inside the extended file names that file. */
    const char badbase[] = "services:\n  app:\n    image: x\n    bogus: 1\n";
    char *bb = write_file("badbase.yml", badbase, strlen(badbase));
    assert_int_equal(load_default(&sf, "stack: s\nservices:\n  web:\n"
                                       "    extends: {file: badbase.yml, "
                                       "service: app}\n"),
                     CP_EINVAL);
    assert_true(has_error(&sf, 4, "services.app.bogus", "unknown key"));
    assert_non_null(strstr(sf.errors[0].file, "badbase.yml"));
    stackfile_release(&sf);
    cp_free(bb);
    cp_free(ep);
    cp_free(bp);
}

static void test_merge_keys(void **state)
{
    (void)state;
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    load_ok(&sf,
            "stack: s\n"
            "x-base: &base\n"
            "  image: redis\n"
            "  instances: 2\n"
            "services:\n"
            "  a:\n"
            "    <<: *base\n"
            "    instances: 3\n"
            "  b: *base\n",
            &o);
    assert_member(service(sf.body, "a"), "instances", "3");
    assert_member(service(sf.body, "a"), "image", "\"redis\"");
    assert_member(service(sf.body, "b"), "instances", "2");
    stackfile_release(&sf);
    expect_error("stack: s\nservices:\n  a:\n    image: x\n    image: y\n", 5,
                 "", "duplicate key 'image'");
    /* ...and the rest of the file is still checked. */
    expect_error("stack: s\nstack: t\nservices:\n  a:\n    image: x\n"
                 "    bogus: 1\n",
                 6, "services.a.bogus", "unknown key");
}

/* A merge key brings in more keys than its map has pairs: the table of
 * seen keys grows (it used to fill up and spin). */
static void test_merge_many_keys(void **state)
{
    (void)state;
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "stack: s\nvariables:\n  v: &big\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "    k%d: %d\n", i, i);
    snprintf(text + n, sizeof(text) - n,
             "  w: {<<: *big}\nservices:\n  a:\n    image: x\n");
    struct stackfile sf;
    /* 40 unknown keys of a variable: errors, and an answer. */
    assert_int_equal(load_default(&sf, text), CP_EINVAL);
    assert_true(sf.nerrors > 0);
    stackfile_release(&sf);
}

/* An enum without options is an error, never a crash. */
static void test_enum_without_options(void **state)
{
    (void)state;
    expect_error("stack: s\nvariables:\n  e:\n    type: enum\n"
                 "    default: a\nservices:\n  a:\n    image: x\n",
                 0, "variables.e.options", "an enum needs a list of options");
    expect_error("stack: s\nvariables:\n  e:\n    type: enum\n"
                 "    options: {a: 1}\nservices:\n  a:\n    image: x\n",
                 0, "variables.e.options", "an enum needs a list of options");
}

/* A vault value that does not fit its variable's type is named, never
 * shown. */
static void test_vault_value_never_shown(void **state)
{
    (void)state;
    struct stackfile sf;
    assert_int_equal(load_default(&sf, "stack: s\nvariables:\n  n:\n"
                                       "    type: integer\n    from:\n"
                                       "      vault: db-pass\nservices:\n"
                                       "  a:\n    image: x\n"),
                     CP_EINVAL);
    assert_true(sf.nerrors > 0);
    for (size_t i = 0; i < sf.nerrors; i++) {
        char *t = stackfile_error_text(&sf.errors[i]);
        assert_null(strstr(t, "s3cret"));
        cp_free(t);
    }
    assert_true(has_error(&sf, 0, "variables.n", "hidden"));
    stackfile_release(&sf);
}

/* ==== depends, links ==== */

static void test_depends(void **state)
{
    (void)state;
    const char child[] = "stack: child\nservices:\n  db: {image: x}\n";
    char *cp = write_file("child.yml", child, strlen(child));
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    o.parent = "grandparent";
    load_ok(&sf,
            "stack: acme/app\n"
            "variables:\n  size: {default: 3}\n"
            "depends:\n"
            "  database:\n"
            "    stack: child.yml\n"
            "    variables:\n"
            "      size: ${size}\n"
            "      name: ${STACK}-db\n"
            "services:\n  web: {image: x, external_links: [app-database/db]}\n",
            &o);
    assert_member(sf.body, "parent", "{\"name\":\"grandparent\"}");
    assert_int_equal(json_array_size(sf.depends), 1);
    const json_t *d = json_array_get(sf.depends, 0);
    assert_member(d, "name", "\"app-database\"");
    char *want = cp_asprintf("\"%s\"", cp);
    assert_member(d, "file", want);
    cp_free(want);
    assert_member(d, "variables", "{\"size\":3,\"name\":\"app-db\"}");
    stackfile_release(&sf);
    expect_error("stack: s\ndepends:\n  x:\n    stack: user/registry:1.0\n"
                 "services:\n  web: {image: x}\n",
                 4, "depends.x.stack", "registry references");
    expect_error("stack: s\ndepends:\n  x:\n    file: child.yml\n"
                 "services:\n  web: {image: x}\n",
                 4, "depends.x.file", "unknown key");
    cp_free(cp);
}

static void test_links(void **state)
{
    (void)state;
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    links:\n      - db\n",
                 6, "services.web.links", "links to 'db', which is not");
    expect_error("stack: s\nservices:\n  web:\n    image: x\n"
                 "    depends_on: [web]\n",
                 5, "services.web.links", "cannot link to itself");
    expect_error("stack: s\nservices:\n"
                 "  a: {image: x, links: [b]}\n"
                 "  b: {image: x, links: [c]}\n"
                 "  c: {image: x, links: [a]}\n",
                 0, "services.c.links", "a -> b -> c -> a");
    expect_error("stack: s\nexpose: nope\nservices:\n  a: {image: x}\n", 2,
                 "expose", "not a service");
}

/* ==== File-level errors ==== */

static void test_unknown_keys_and_collecting(void **state)
{
    (void)state;
    struct stackfile sf;
    assert_int_equal(load_default(&sf, "stack: s\n"
                                       "bogus_top: 1\n"
                                       "services:\n"
                                       "  web:\n"
                                       "    image: x\n"
                                       "    colour: red\n"
                                       "    deploy:\n"
                                       "      speed: 9\n"
                                       "    health_check:\n"
                                       "      protocol: http\n"
                                       "      port: 80\n"
                                       "      verb: GET\n"
                                       "    logging: {driver: x, level: 2}\n"
                                       "    hooks:\n"
                                       "      post_build: []\n"
                                       "volumes:\n"
                                       "  v: {external: true, size: 1}\n"),
                     CP_EINVAL);
    assert_true(has_error(&sf, 2, "bogus_top", "unknown key"));
    assert_true(has_error(&sf, 6, "services.web.colour", "unknown key"));
    assert_true(has_error(&sf, 8, "services.web.deploy.speed", "unknown key"));
    assert_true(
        has_error(&sf, 12, "services.web.health_check.verb", "unknown key"));
    assert_true(
        has_error(&sf, 13, "services.web.logging.level", "unknown key"));
    assert_true(
        has_error(&sf, 15, "services.web.hooks.post_build", "unknown key"));
    assert_true(has_error(&sf, 17, "volumes.v.size", "unknown key"));
    assert_int_equal(sf.nerrors, 7);
    stackfile_release(&sf);

    expect_error("services:\n  web: {image: x}\n", 1, "stack", "is required");
    expect_error("stack: -bad\nservices:\n  web: {image: x}\n", 1, "stack",
                 "must be");
    expect_error("stack: s\n", 0, "services", "at least one service");
    expect_error("stack: s\nservices: [a]\n", 2, "services", "must be a map");
    expect_error("stack: s\nservices:\n  web: {}\n", 3, "services.web.image",
                 "is required");
    expect_error("stack: s\nservices:\n  we.b: {image: x}\n", 3,
                 "services.we.b", "a service name is");
    expect_error("stack: s\nservices:\n  web: {image: x}\nvolumes:\n"
                 "  v: {driver: local}\n",
                 5, "volumes.v", "only external volumes");
    expect_error("- a\n- b\n", 1, "", "must be a map");
    expect_error("", 0, "", "the file is empty");
    expect_error("stack: s\nservices:\n  web: {image: x}\n---\nb: 1\n", 4, "",
                 "more than one YAML document");
    /* Too many errors are counted, not listed. */
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    cp_buf_printf(&b, "stack: s\nservices:\n  web:\n    image: x\n");
    for (int i = 0; i < 300; i++)
        cp_buf_printf(&b, "    k%d: 1\n", i);
    assert_int_equal(load_default(&sf, b.data), CP_EINVAL);
    assert_int_equal(sf.nerrors, STACKFILE_MAX_ERRORS);
    assert_int_equal(sf.ndropped, 100);
    stackfile_release(&sf);
    cp_buf_release(&b);
}

static void test_bad_yaml(void **state)
{
    (void)state;
    expect_error("stack: s\nservices:\n  web:\n    image: [x\n", 5, "",
                 "invalid YAML at column 1");
    expect_error("stack: s\n services: 1\n", 2, "", "invalid YAML");
    expect_error("stack: s\nservices:\n  web: *nothing\n", 3, "",
                 "invalid YAML");
    expect_error("stack: \"bad \\q escape\"\n", 1, "", "invalid YAML");
    expect_error("stack: s\nservices:\n  ? [a, b]\n  : 1\n", 3, "",
                 "a key must be a plain string");
    struct stackfile sf;
    const char nul[] = "stack: s\0\nservices: {}\n";
    struct stackfile_opts o;
    opts_init(&o);
    o.text = nul;
    o.text_len = sizeof(nul) - 1;
    assert_int_equal(stackfile_load(&sf, "x.yml", &o), CP_EINVAL);
    assert_true(has_error(&sf, 0, "", "NUL"));
    stackfile_release(&sf);
}

static void test_limits(void **state)
{
    (void)state;
    /* A 5 MB file is refused before it is parsed, quickly. */
    size_t big = 5 * 1000 * 1000;
    char *text = cp_malloc(big);
    memset(text, 'a', big);
    char *path = write_file("big.yml", text, big);
    struct stackfile sf;
    struct stackfile_opts o;
    opts_init(&o);
    int64_t t0 = cp_mono_ms();
    assert_int_equal(stackfile_load(&sf, path, &o), CP_EINVAL);
    assert_true(cp_mono_ms() - t0 < 1000);
    assert_int_equal(sf.nerrors, 1);
    assert_non_null(strstr(sf.errors[0].msg, "limited to"));
    stackfile_release(&sf);
    o.text = text;
    o.text_len = big;
    assert_int_equal(stackfile_load(&sf, "big.yml", &o), CP_EINVAL);
    assert_non_null(strstr(sf.errors[0].msg, "limited to"));
    stackfile_release(&sf);
    cp_free(path);
    cp_free(text);

    /* A billion laughs: nine levels of ten aliases each. */
    struct cp_buf b;
    cp_buf_init(&b, 1 << 20);
    cp_buf_printf(&b, "stack: s\nx-0: &a0 [lol]\n");
    for (int i = 1; i < 10; i++) {
        cp_buf_printf(&b, "x-%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            cp_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
        cp_buf_printf(&b, "]\n");
    }
    cp_buf_printf(&b, "services:\n  web: {image: x}\n");
    t0 = cp_mono_ms();
    assert_int_equal(load_default(&sf, b.data), CP_EINVAL);
    assert_true(cp_mono_ms() - t0 < 5000);
    assert_true(has_error(&sf, 0, "", "once aliases are expanded"));
    stackfile_release(&sf);
    cp_buf_release(&b);

    /* Deep nesting is refused, not recursed into. */
    cp_buf_init(&b, 1 << 20);
    cp_buf_printf(&b, "stack: s\nx-deep: ");
    for (int i = 0; i < 5000; i++)
        cp_buf_printf(&b, "[");
    for (int i = 0; i < 5000; i++)
        cp_buf_printf(&b, "]");
    cp_buf_printf(&b, "\nservices:\n  web: {image: x}\n");
    assert_int_equal(load_default(&sf, b.data), CP_EINVAL);
    assert_true(has_error(&sf, 0, "", "nested deeper than"));
    stackfile_release(&sf);
    cp_buf_release(&b);

    /* Interpolation may not blow one value past 1 MiB. */
    cp_buf_init(&b, 1 << 20);
    cp_buf_printf(&b, "stack: s\nvariables:\n  big:\n    default: ");
    for (int i = 0; i < 600 * 1024; i++)
        cp_buf_append(&b, "x", 1);
    cp_buf_printf(&b, "\nservices:\n  web:\n    image: x\n"
                      "    user: ${big}${big}\n");
    assert_int_equal(load_default(&sf, b.data), CP_EINVAL);
    assert_true(has_error(&sf, 8, "services.web.user", "too long"));
    stackfile_release(&sf);
    cp_buf_release(&b);

    /* A file that is not there. */
    opts_init(&o);
    assert_int_equal(stackfile_load(&sf, "/nonexistent/kontena.yml", &o),
                     CP_EINVAL);
    assert_non_null(strstr(sf.errors[0].msg, "cannot read"));
    stackfile_release(&sf);
}

/* ==== Helpers ==== */

static void test_shell_split(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"a b  c", "[\"a\",\"b\",\"c\"]"},
        {"sh -c 'echo $x y'", "[\"sh\",\"-c\",\"echo $x y\"]"},
        {"say \"a \\\"b\\\" c\"", "[\"say\",\"a \\\"b\\\" c\"]"},
        {"a\\ b c", "[\"a b\",\"c\"]"},
        {"''", "[\"\"]"},
        {"x\"y\"'z'", "[\"xyz\"]"},
        {"  ", "[]"},
    };
    char err[64];
    for (size_t i = 0; i < CP_ARRAY_LEN(ok); i++) {
        json_t *j = stackfile_shell_split(ok[i][0], err, sizeof(err));
        assert_non_null(j);
        char *s = cp_json_dump(j);
        assert_string_equal(s, ok[i][1]);
        cp_free(s);
        json_decref(j);
    }
    assert_null(stackfile_shell_split("a 'b", err, sizeof(err)));
    assert_null(stackfile_shell_split("a \"b", err, sizeof(err)));
    assert_non_null(strstr(err, "quote"));
}

static void test_yaml_output(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:b, s:n, s:[s,s],"
                          " s:s, s:{}}",
                          "plain", "hello", "looks_bool", "true", "looks_num",
                          "0123", "empty", "", "int", 5, "real", 0.5, "bool", 1,
                          "null", "list", "a", "no", "multi", "a\nb\n", "obj");
    char *y = stackfile_yaml(j);
    assert_non_null(y);
    assert_non_null(strstr(y, "plain: hello\n"));
    assert_non_null(strstr(y, "looks_bool: \"true\"\n"));
    assert_non_null(strstr(y, "looks_num: \"0123\"\n"));
    assert_non_null(strstr(y, "empty: \"\"\n"));
    assert_non_null(strstr(y, "int: 5\n"));
    assert_non_null(strstr(y, "real: 0.5\n"));
    assert_non_null(strstr(y, "bool: true\n"));
    assert_non_null(strstr(y, "\"null\": null\n"));
    assert_non_null(strstr(y, "- \"no\"\n"));
    assert_non_null(strstr(y, "multi: |"));
    /* It reads back as the same values. */
    char *path = write_file("out.yml", y, strlen(y));
    json_t *back = json_object();
    char err[256];
    assert_int_equal(stackfile_values_file(back, path, err, sizeof(err)),
                     CP_EINVAL); /* list and map values are refused... */
    json_decref(back);
    cp_free(path);
    json_t *flat =
        json_pack("{s:s, s:s, s:s}", "a", "true", "b", "0x1f", "c", "x: y");
    char *fy = stackfile_yaml(flat);
    path = write_file("flat.yml", fy, strlen(fy));
    back = json_object();
    assert_int_equal(stackfile_values_file(back, path, err, sizeof(err)), 0);
    assert_true(json_equal(back, flat)); /* ...scalars round-trip. */
    json_decref(back);
    cp_free(path);
    cp_free(fy);
    json_decref(flat);
    cp_free(y);
    json_decref(j);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_stackfile.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = cp_asprintf("rm -rf '%s'", tmpdir);
    int rc = system(cmd);
    cp_free(cmd);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_mapping),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_variable_errors),
        cmocka_unit_test(test_values_helpers),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_extends),
        cmocka_unit_test(test_merge_many_keys),
        cmocka_unit_test(test_enum_without_options),
        cmocka_unit_test(test_vault_value_never_shown),
        cmocka_unit_test(test_merge_keys),
        cmocka_unit_test(test_depends),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_unknown_keys_and_collecting),
        cmocka_unit_test(test_bad_yaml),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_shell_split),
        cmocka_unit_test(test_yaml_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
