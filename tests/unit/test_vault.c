/* Unit tests for the vault: the kv2 sealed format (key ids, the header
 * bound into the tag), opening with the current or the previous key,
 * wrong keys and tampered text, secret names, the check value against a
 * real store (first use, same key, wrong key, rotation), the pod secrets,
 * and the store's secret operations (services using a secret, revision
 * bumps, deletes refused while used, compare-and-set re-sealing, paging).
 * The store parts run against SQLite, PostgreSQL when
 * KONTENA_TEST_DATABASE_URL is set (tests/pg.sh), or MongoDB when
 * KONTENA_TEST_MONGODB_URI is set (tests/mongo.sh; see store_testdb.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/crypto.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/log.h"
#include "../../src/common/util.h"
#include "../../src/master/store.h"
#include "../../src/master/vault.h"
#include "store_testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void key_of(const char *s, unsigned char out[CP_KEY_LEN])
{
    assert_int_equal(cp_hkdf_sha256(s, strlen(s), "test", out), 0);
}

/* ==== crypto: kv2 ==== */

static void test_kv2_round_trip(void **state)
{
    (void)state;
    unsigned char key[CP_KEY_LEN], other[CP_KEY_LEN];
    key_of("one", key);
    key_of("two", other);
    char kid[CP_KEY_ID_LEN + 1], kid2[CP_KEY_ID_LEN + 1],
        got[CP_KEY_ID_LEN + 1];
    cp_key_id(key, kid);
    cp_key_id(other, kid2);
    assert_int_equal(strlen(kid), CP_KEY_ID_LEN);
    assert_string_not_equal(kid, kid2);

    const char *msg = "s3cr3t value\nwith a newline";
    char *sealed = cp_seal_kid(key, msg, strlen(msg));
    assert_int_equal(strncmp(sealed, "kv2:", 4), 0);
    assert_null(strstr(sealed, "s3cr3t"));
    assert_int_equal(cp_sealed_key_id(sealed, got), 0);
    assert_string_equal(got, kid);
    char *plain = NULL;
    size_t n = 0;
    assert_int_equal(cp_open(key, sealed, &plain, &n), 0);
    assert_int_equal(n, strlen(msg));
    assert_string_equal(plain, msg);
    cp_free(plain);

    /* Random nonce: the same value seals differently. */
    char *again = cp_seal_kid(key, msg, strlen(msg));
    assert_string_not_equal(sealed, again);
    cp_free(again);

    /* Wrong key: refused (the id alone tells). */
    plain = NULL;
    assert_int_equal(cp_open(other, sealed, &plain, &n), CP_EPERM);
    assert_null(plain);

    /* A header naming another key: the tag covers it, so relabelling a
     * value does not make it open with that key either. */
    char *relabel = cp_strdup(sealed);
    memcpy(relabel + 4, kid2, CP_KEY_ID_LEN);
    assert_int_equal(cp_open(key, relabel, &plain, &n), CP_EPERM);
    assert_int_equal(cp_open(other, relabel, &plain, &n), CP_EPERM);
    cp_free(relabel);

    /* Tampering anywhere in the body. */
    size_t hlen = 4 + CP_KEY_ID_LEN + 1;
    for (size_t i = hlen; i < strlen(sealed); i += 3) {
        char *t = cp_strdup(sealed);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int rc = cp_open(key, t, &plain, &n);
        if (rc != CP_EPERM && rc != CP_EPROTO)
            fail_msg("tampered at %zu of %s: %d", i, t, rc);
        cp_free(t);
    }
    /* Not sealed text, or cut short. */
    assert_int_equal(cp_open(key, "kv2:zz:abc", &plain, &n), CP_EPROTO);
    assert_int_equal(cp_open(key, "kv3:whatever", &plain, &n), CP_EPROTO);
    char *cut = cp_strndup(sealed, hlen + 8);
    assert_int_equal(cp_open(key, cut, &plain, &n), CP_EPROTO);
    cp_free(cut);
    assert_int_equal(cp_sealed_key_id("kv1:abcd", got), CP_EPROTO);
    assert_int_equal(cp_sealed_key_id("kv2:ABCDEF12:x", got), CP_EPROTO);
    cp_free(sealed);

    /* Empty values and kv1 texts still open. */
    sealed = cp_seal_kid(key, "", 0);
    assert_int_equal(cp_open(key, sealed, &plain, &n), 0);
    assert_int_equal(n, 0);
    cp_free(plain);
    cp_free(sealed);
    sealed = cp_seal(key, msg, strlen(msg));
    assert_int_equal(cp_open(key, sealed, &plain, &n), 0);
    assert_string_equal(plain, msg);
    cp_free(plain);
    cp_free(sealed);
}

/* ==== vault keys ==== */

static void test_vault_keys(void **state)
{
    (void)state;
    struct vault *old = vault_new("old-key-0123456789abcdef", NULL, NULL);
    struct vault *rot =
        vault_new("new-key-0123456789abcdef", "old-key-0123456789abcdef", NULL);
    struct vault *fresh = vault_new("new-key-0123456789abcdef", NULL, NULL);
    struct vault *none = vault_new(NULL, NULL, NULL);
    assert_null(vault_unusable(old));
    assert_null(vault_unusable(rot));
    assert_string_equal(vault_unusable(none), "Vault not configured");
    assert_string_equal(vault_unusable(NULL), "Vault not configured");

    const char *v = "db password";
    char *by_old = vault_seal(old, v, strlen(v));
    char *by_new = vault_seal(rot, v, strlen(v));
    char *plain = NULL;
    size_t n = 0;
    /* The previous key opens old values; new ones are under the new. */
    assert_int_equal(vault_open(rot, by_old, &plain, &n), 0);
    assert_string_equal(plain, v);
    vault_plain_free(plain, n);
    assert_int_equal(vault_open(rot, by_new, &plain, &n), 0);
    vault_plain_free(plain, n);
    assert_int_equal(vault_open(fresh, by_new, &plain, &n), 0);
    vault_plain_free(plain, n);
    /* Wrong keys. */
    plain = NULL;
    assert_int_equal(vault_open(fresh, by_old, &plain, &n), CP_EPERM);
    assert_int_equal(vault_open(old, by_new, &plain, &n), CP_EPERM);
    assert_int_equal(vault_open(none, by_new, &plain, &n), CP_EPERM);
    assert_null(plain);
    /* Tampered. */
    by_new[strlen(by_new) - 3] ^= 1;
    int rc = vault_open(rot, by_new, &plain, &n);
    assert_true(rc == CP_EPERM || rc == CP_EPROTO);
    assert_int_equal(vault_open(rot, "plain text", &plain, &n), CP_EPROTO);
    vault_plain_free(NULL, 0);

    cp_free(by_old);
    cp_free(by_new);
    vault_free(old);
    vault_free(rot);
    vault_free(fresh);
    vault_free(none);
    vault_free(NULL);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"DB_PASS", "a",     "api-token",
                                       "x-1_y",   "_lead", "9lives"};
    static const char *const bad[] = {"",        "-lead",    "has space",
                                      "dot.ted", "slash/ed", "ümlaut",
                                      "tab\t",   "a=b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        assert_true(vault_name_ok(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_false(vault_name_ok(bad[i]));
    assert_false(vault_name_ok(NULL));
    char longest[VAULT_MAX_NAME + 2];
    memset(longest, 'a', sizeof(longest));
    longest[VAULT_MAX_NAME] = '\0';
    assert_true(vault_name_ok(longest));
    longest[VAULT_MAX_NAME] = 'a';
    longest[VAULT_MAX_NAME + 1] = '\0';
    assert_false(vault_name_ok(longest));
}

/* ==== against a store ==== */

struct fixture {
    struct testdb db;
    struct store *st;
    char grid_id[STORE_ID_LEN + 1];
    char grid2_id[STORE_ID_LEN + 1];
};

static void make_grid(struct store *st, const char *name, const char *sealed,
                      char id[STORE_ID_LEN + 1])
{
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t)name;
    char hash[65];
    cp_random_hex(hash, 32);
    g.token_hash = hash;
    g.token_sealed = (char *)(uintptr_t)sealed;
    g.initial_size = 1;
    g.created_at = g.updated_at = cp_now_ms();
    const char *field = NULL;
    assert_int_equal(ST_CALL(st, grid_create, &g, NULL, &field), 0);
    memcpy(id, g.id, STORE_ID_LEN + 1);
}

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, NULL);
    char err[256] = "";
    if (store_open(f->db.url, &f->st, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    assert_string_equal(store_ops_of(f->st)->name, testdb_backend());
    make_grid(f->st, "vt", "grid-sealed-1", f->grid_id);
    make_grid(f->st, "other", NULL, f->grid2_id);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    testdb_drop(&f->db);
    cp_free(f);
    return 0;
}

static void test_check_value(void **state)
{
    struct fixture *f = *state;
    cp_log_level = (enum cp_log_level)(CP_LOG_ERROR +
                                       1); /* the wrong-key error is expected */
    struct vault *first = vault_new("key-a-0123456789abcdef", NULL, f->st);
    assert_null(vault_unusable(first));
    char *check = NULL;
    assert_int_equal(ST_CALL(f->st, config_get, VAULT_CHECK_KEY, &check), 0);
    assert_int_equal(strncmp(check, "kv2:", 4), 0);
    cp_free(check);

    struct vault *same = vault_new("key-a-0123456789abcdef", NULL, f->st);
    assert_null(vault_unusable(same));
    struct vault *wrong = vault_new("key-b-0123456789abcdef", NULL, f->st);
    assert_string_equal(vault_unusable(wrong),
                        "vault key does not match the stored secrets");
    struct vault *rot =
        vault_new("key-b-0123456789abcdef", "key-a-0123456789abcdef", f->st);
    assert_null(vault_unusable(rot));
    cp_log_level = CP_LOG_INFO;
    vault_free(first);
    vault_free(same);
    vault_free(wrong);
    vault_free(rot);
}

static void put_secret(struct fixture *f, struct vault *v, const char *name,
                       const char *value)
{
    struct store_secret s = {0};
    store_new_id(s.id);
    memcpy(s.grid_id, f->grid_id, sizeof(s.grid_id));
    s.name = (char *)(uintptr_t)name;
    s.value = vault_seal(v, value, strlen(value));
    s.created_at = cp_now_ms();
    assert_int_equal(ST_CALL(f->st, secret_create, &s, NULL), 0);
    cp_free(s.value);
}

static void test_pod_secrets(void **state)
{
    struct fixture *f = *state;
    struct vault *v = vault_new("key-p-0123456789abcdef", NULL, f->st);
    put_secret(f, v, "DB", "pw1");
    put_secret(f, v, "TOK", "t0k");
    json_t *spec = json_loads(
        "{\"secrets\":[{\"secret\":\"DB\",\"name\":\"PASS\",\"type\":\"env\"},"
        "{\"secret\":\"GONE\",\"name\":\"X\",\"type\":\"env\"},"
        "{\"secret\":\"TOK\",\"name\":\"PASS\",\"type\":\"env\"}]}",
        0, NULL);
    json_t *out = NULL;
    cp_log_level = CP_LOG_ERROR; /* the missing one is a warning */
    assert_int_equal(vault_pod_secrets(v, f->st, f->grid_id, spec, &out), 0);
    json_t *want =
        json_loads("[{\"name\":\"PASS\",\"type\":\"env\",\"value\":\"pw1\"},"
                   "{\"name\":\"PASS\",\"type\":\"env\",\"value\":\"t0k\"}]",
                   0, NULL);
    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(want);

    /* No usable vault: no pods rather than pods without secrets. */
    struct vault *none = vault_new(NULL, NULL, NULL);
    out = NULL;
    assert_int_equal(vault_pod_secrets(none, f->st, f->grid_id, spec, &out),
                     CP_EAGAIN);
    assert_null(out);
    /* Values that do not open. */
    struct vault *other = vault_new("key-q-0123456789abcdef", NULL, NULL);
    assert_int_equal(vault_pod_secrets(other, f->st, f->grid_id, spec, &out),
                     CP_EPERM);
    assert_null(out);
    /* A service without secrets needs no vault. */
    json_t *plain = json_loads("{\"image\":\"busybox\"}", 0, NULL);
    assert_int_equal(vault_pod_secrets(none, f->st, f->grid_id, plain, &out),
                     0);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    cp_log_level = CP_LOG_INFO;
    json_decref(plain);
    json_decref(spec);
    vault_free(v);
    vault_free(none);
    vault_free(other);
}

/* ==== the store's secret operations ==== */

static int create_secret(struct store *st, const char *grid_id,
                         const char *name, const char *value, int *bumped,
                         char id[STORE_ID_LEN + 1])
{
    struct store_secret s = {0};
    store_new_id(s.id);
    memcpy(s.grid_id, grid_id, sizeof(s.grid_id));
    s.name = (char *)(uintptr_t)name;
    s.value = (char *)(uintptr_t)value;
    s.created_at = cp_now_ms();
    if (id != NULL)
        memcpy(id, s.id, STORE_ID_LEN + 1);
    return ST_CALL(st, secret_create, &s, bumped);
}

/* A service of the grid's null stack with spec "secrets": secrets (JSON
 * text, or NULL for none). */
static void create_service(struct store *st, const char *grid_id,
                           const char *name, const char *secrets)
{
    struct store_service v = {0};
    store_new_id(v.id);
    memcpy(v.grid_id, grid_id, sizeof(v.grid_id));
    v.name = (char *)(uintptr_t)name;
    v.spec = json_pack("{s:s}", "image", "busybox");
    if (secrets != NULL)
        json_object_set_new(v.spec, "secrets", json_loads(secrets, 0, NULL));
    v.revision = 1;
    assert_int_equal(ST_CALL(st, service_create, &v), 0);
    json_decref(v.spec);
}

static int64_t revision_of(struct store *st, const char *grid_id,
                           const char *name)
{
    struct store_service v = {0};
    assert_int_equal(ST_CALL(st, service_get, grid_id, "null", name, &v), 0);
    int64_t r = v.revision;
    store_service_release(&v);
    return r;
}

static void test_store_secret_users(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int bumped = -1;
    assert_int_equal(create_secret(st, f->grid_id, "DB", "s1", &bumped, NULL),
                     0);
    assert_int_equal(bumped, 0);
    /* Names are unique per grid; grids must exist. */
    assert_int_equal(create_secret(st, f->grid_id, "DB", "s2", NULL, NULL),
                     CP_ECONFLICT);
    assert_int_equal(create_secret(st, f->grid2_id, "DB", "s3", NULL, NULL), 0);
    assert_int_equal(
        create_secret(st, "000000000000000000000000", "DB", "s", NULL, NULL),
        CP_ENOTFOUND);

    create_service(st, f->grid_id, "web",
                   "[{\"secret\":\"DB\",\"name\":\"PASS\",\"type\":\"env\"},"
                   "{\"secret\":\"TOK\",\"name\":\"T\",\"type\":\"env\"},"
                   "{\"secret\":\"DB\",\"name\":\"PASS2\",\"type\":\"env\"}]");
    create_service(st, f->grid_id, "api",
                   "[{\"secret\":\"DB\",\"name\":\"P\",\"type\":\"env\"}]");
    create_service(st, f->grid_id, "plain", NULL);
    /* Odd shapes are no users, and no errors either. */
    create_service(st, f->grid_id, "odd", "[\"DB\", 5, null, {\"name\":1}]");
    create_service(st, f->grid_id, "obj", "{\"secret\":\"DB\"}");
    create_service(st, f->grid2_id, "far",
                   "[{\"secret\":\"DB\",\"name\":\"P\",\"type\":\"env\"}]");

    /* A new secret bumps the services already naming it. */
    int64_t web0 = revision_of(st, f->grid_id, "web");
    assert_int_equal(create_secret(st, f->grid_id, "TOK", "t", &bumped, NULL),
                     0);
    assert_int_equal(bumped, 1);
    assert_int_equal(revision_of(st, f->grid_id, "web"), web0 + 1);
    /* Byte order: upper case before lower case. */
    assert_int_equal(create_secret(st, f->grid_id, "a_low", "x", NULL, NULL),
                     0);
    assert_int_equal(create_secret(st, f->grid_id, "Z_UP", "x", NULL, NULL), 0);

    struct store_secret s = {0};
    assert_int_equal(ST_CALL(st, secret_get, f->grid_id, "DB", &s), 0);
    assert_string_equal(s.value, "s1");
    assert_string_equal(s.grid_id, f->grid_id);
    assert_int_equal(s.nservices, 2); /* web once, though named twice */
    assert_string_equal(s.services[0].name, "api");
    assert_string_equal(s.services[0].stack_name, "null");
    assert_string_equal(s.services[1].name, "web");
    assert_int_equal(strlen(s.services[1].id), STORE_ID_LEN);
    store_secret_release(&s);
    assert_int_equal(ST_CALL(st, secret_get, f->grid_id, "NOPE", &s),
                     CP_ENOTFOUND);
    assert_null(s.name);

    struct store_secret_list l = {0};
    assert_int_equal(ST_CALL(st, secret_list, f->grid_id, &l), 0);
    assert_int_equal(l.len, 4);
    const char *order[] = {"DB", "TOK", "Z_UP", "a_low"};
    const size_t users[] = {2, 1, 0, 0};
    for (size_t i = 0; i < l.len; i++) {
        assert_string_equal(l.items[i].name, order[i]);
        assert_int_equal(l.items[i].nservices, users[i]);
    }
    assert_string_equal(l.items[1].services[0].name, "web");
    store_secret_list_release(&l);
    assert_int_equal(ST_CALL(st, secret_list, f->grid2_id, &l), 0);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.items[0].nservices, 1);
    assert_string_equal(l.items[0].services[0].name, "far");
    store_secret_list_release(&l);

    /* A service read before a bump and written back afterwards (another
     * master's handler) keeps the bump: revisions never go down. */
    struct store_service stale = {0};
    assert_int_equal(
        ST_CALL(st, service_get, f->grid_id, "null", "api", &stale), 0);
    assert_int_equal(ST_CALL(st, secret_update, f->grid_id, "DB", "s1a",
                             cp_now_ms(), &bumped),
                     0);
    assert_int_equal(bumped, 2);
    stale.updated_at = cp_now_ms();
    assert_int_equal(ST_CALL(st, service_update, &stale), 0);
    assert_int_equal(revision_of(st, f->grid_id, "api"), stale.revision + 1);
    store_service_release(&stale);

    /* An update bumps the grid's users and no one else. */
    int64_t web1 = revision_of(st, f->grid_id, "web");
    int64_t api1 = revision_of(st, f->grid_id, "api");
    int64_t odd1 = revision_of(st, f->grid_id, "odd");
    int64_t far1 = revision_of(st, f->grid2_id, "far");
    int64_t now = cp_now_ms() + 5000;
    assert_int_equal(
        ST_CALL(st, secret_update, f->grid_id, "DB", "s1b", now, &bumped), 0);
    assert_int_equal(bumped, 2);
    assert_int_equal(revision_of(st, f->grid_id, "web"), web1 + 1);
    assert_int_equal(revision_of(st, f->grid_id, "api"), api1 + 1);
    assert_int_equal(revision_of(st, f->grid_id, "odd"), odd1);
    assert_int_equal(revision_of(st, f->grid2_id, "far"), far1);
    assert_int_equal(ST_CALL(st, secret_get, f->grid_id, "DB", &s), 0);
    assert_string_equal(s.value, "s1b");
    assert_int_equal(s.updated_at, now);
    assert_true(s.created_at < now);
    store_secret_release(&s);
    assert_int_equal(ST_CALL(st, secret_get, f->grid2_id, "DB", &s), 0);
    assert_string_equal(s.value, "s3");
    store_secret_release(&s);
    assert_int_equal(
        ST_CALL(st, secret_update, f->grid_id, "NOPE", "v", now, &bumped),
        CP_ENOTFOUND);

    /* Used secrets stay; unused ones go, once. */
    assert_int_equal(ST_CALL(st, secret_delete, f->grid_id, "DB"),
                     CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, secret_get, f->grid_id, "DB", &s), 0);
    store_secret_release(&s);
    assert_int_equal(ST_CALL(st, secret_delete, f->grid_id, "a_low"), 0);
    assert_int_equal(ST_CALL(st, secret_delete, f->grid_id, "a_low"),
                     CP_ENOTFOUND);
    /* Its users gone, a secret can be deleted. */
    struct store_service web = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid_id, "null", "web", &web),
                     0);
    assert_int_equal(ST_CALL(st, service_delete, web.id), 0);
    store_service_release(&web);
    assert_int_equal(ST_CALL(st, secret_delete, f->grid_id, "TOK"), 0);
    /* The other grid's secret of that name has a user of its own. */
    assert_int_equal(ST_CALL(st, secret_delete, f->grid2_id, "DB"),
                     CP_ECONFLICT);
}

static void test_store_reseal(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char id[STORE_ID_LEN + 1];
    assert_int_equal(create_secret(st, f->grid_id, "K", "old", NULL, id), 0);
    create_service(st, f->grid_id, "user",
                   "[{\"secret\":\"K\",\"name\":\"K\",\"type\":\"env\"}]");
    int64_t rev = revision_of(st, f->grid_id, "user");
    assert_int_equal(ST_CALL(st, secret_reseal, id, "old", "new"), 0);
    /* Compare-and-set: a value that changed meanwhile is left alone. */
    assert_int_equal(ST_CALL(st, secret_reseal, id, "old", "newer"),
                     CP_ECONFLICT);
    assert_int_equal(
        ST_CALL(st, secret_reseal, "000000000000000000000000", "a", "b"),
        CP_ENOTFOUND);
    struct store_secret s = {0};
    assert_int_equal(ST_CALL(st, secret_get, f->grid_id, "K", &s), 0);
    assert_string_equal(s.value, "new");
    store_secret_release(&s);
    /* Same plaintext: no rollout. */
    assert_int_equal(revision_of(st, f->grid_id, "user"), rev);

    assert_int_equal(
        ST_CALL(st, grid_token_reseal, f->grid_id, "grid-sealed-1", "g2"), 0);
    assert_int_equal(
        ST_CALL(st, grid_token_reseal, f->grid_id, "grid-sealed-1", "g3"),
        CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, grid_token_reseal, "000000000000000000000000",
                             "grid-sealed-1", "g3"),
                     CP_ENOTFOUND);
    struct store_grid g = {0};
    assert_int_equal(ST_CALL(st, grid_get_by_id, f->grid_id, &g), 0);
    assert_string_equal(g.token_sealed, "g2");
    store_grid_release(&g);

    struct store_node n = {0}, out = {0};
    store_new_id(n.id);
    memcpy(n.grid_id, f->grid_id, sizeof(n.grid_id));
    n.name = (char *)(uintptr_t) "n1";
    n.token_hash = (char *)(uintptr_t) "node-token-hash";
    n.token_sealed = (char *)(uintptr_t) "node-sealed-1";
    const char *field = NULL;
    assert_int_equal(ST_CALL(st, node_create, &n, false, &out, &field), 0);
    assert_int_equal(
        ST_CALL(st, node_token_reseal, out.id, "node-sealed-1", "n2"), 0);
    assert_int_equal(
        ST_CALL(st, node_token_reseal, out.id, "node-sealed-1", "n3"),
        CP_ECONFLICT);
    assert_int_equal(
        ST_CALL(st, node_token_reseal, "000000000000000000000000", "x", "y"),
        CP_ENOTFOUND);
    struct store_node got = {0};
    assert_int_equal(ST_CALL(st, node_get, out.id, &got), 0);
    assert_string_equal(got.token_sealed, "n2");
    store_node_release(&got);
    store_node_release(&out);
}

/* A rekey walks every grid's secrets page by page, by id. */
static void test_store_secrets_page(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    enum { N = 7 };
    char ids[N][STORE_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "S%d", i);
        assert_int_equal(create_secret(st, i % 2 ? f->grid_id : f->grid2_id,
                                       name, "v", NULL, ids[i]),
                         0);
    }
    create_service(st, f->grid_id, "user",
                   "[{\"secret\":\"S1\",\"name\":\"K\",\"type\":\"env\"}]");
    char after[STORE_ID_LEN + 1] = "";
    int seen = 0, pages = 0;
    for (;;) {
        struct store_secret_list l = {0};
        assert_int_equal(ST_CALL(st, secrets_page, after, 3, &l), 0);
        if (l.len == 0)
            break;
        pages++;
        assert_true(l.len <= 3);
        for (size_t i = 0; i < l.len; i++) {
            assert_true(strcmp(l.items[i].id, after) > 0);
            assert_int_equal(l.items[i].nservices, 0);
            assert_non_null(l.items[i].value);
            memcpy(after, l.items[i].id, sizeof(after));
            for (int k = 0; k < N; k++)
                if (strcmp(ids[k], l.items[i].id) == 0)
                    seen |= 1 << k;
        }
        store_secret_list_release(&l);
    }
    assert_int_equal(seen, (1 << N) - 1);
    assert_int_equal(pages, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv2_round_trip),
        cmocka_unit_test(test_vault_keys),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_check_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pod_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_secret_users, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_reseal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_secrets_page, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
