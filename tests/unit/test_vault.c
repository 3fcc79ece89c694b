/* Unit tests for the vault: the kv2 sealed format (key ids, the header
 * bound into the tag), opening with the current or the previous key,
 * wrong keys and tampered text, secret names, the check value against a
 * real SQLite store (first use, same key, wrong key, rotation), and the
 * pod secrets.
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
    char kid[CP_KEY_ID_LEN + 1], kid2[CP_KEY_ID_LEN + 1], got[CP_KEY_ID_LEN + 1];
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
    static const char *const good[] = {"DB_PASS", "a", "api-token", "x-1_y",
                                       "_lead", "9lives"};
    static const char *const bad[] = {"", "-lead", "has space", "dot.ted",
                                      "slash/ed", "ümlaut", "tab\t", "a=b"};
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
    char dir[64];
    struct store *st;
    char grid_id[STORE_ID_LEN + 1];
};

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kontena-test-vault-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256];
    assert_int_equal(store_open(f->dir, &f->st, err, sizeof(err)), 0);
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t) "vt";
    char hash[65];
    cp_random_hex(hash, 32);
    g.token_hash = hash;
    g.initial_size = 1;
    g.created_at = g.updated_at = cp_now_ms();
    const char *field = NULL;
    assert_int_equal(ST_CALL(f->st, grid_create, &g, NULL, &field), 0);
    memcpy(f->grid_id, g.id, sizeof(f->grid_id));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    cp_free(f);
    return 0;
}

static void test_check_value(void **state)
{
    struct fixture *f = *state;
    cp_log_level = (enum cp_log_level)(CP_LOG_ERROR + 1); /* the wrong-key error is expected */
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
    json_t *want = json_loads(
        "[{\"name\":\"PASS\",\"type\":\"env\",\"value\":\"pw1\"},"
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
    assert_int_equal(vault_pod_secrets(none, f->st, f->grid_id, plain, &out), 0);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    cp_log_level = CP_LOG_INFO;
    json_decref(plain);
    json_decref(spec);
    vault_free(v);
    vault_free(none);
    vault_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv2_round_trip),
        cmocka_unit_test(test_vault_keys),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_check_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pod_secrets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
