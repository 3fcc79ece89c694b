/* libFuzzer target for the decoder of sealed values (src/common/crypto.c
 * cp_open, cp_sealed_key_id; src/master/vault.c vault_open): every secret
 * and sealed token the master reads back from its store goes through it,
 * and a store is outside data.
 *
 *   1. The input as text is opened with a fixed key (kv1 and kv2), and
 *      with a vault holding that key as VAULT_KEY_PREVIOUS. Each returns
 *      0, CP_EPROTO or CP_EPERM; on failure nothing is handed back.
 *   2. Whatever opens is sealed again and must open to the same bytes;
 *      the same bytes sealed under the other key must not open with the
 *      first.
 *   3. A key id that parses is 8 lowercase hex digits.
 * Nothing here may crash, trip ASan/UBSan, or leak.
 *
 * Seeds (tests/fuzz/corpus/vault_open): sample values sealed under
 * FUZZ_KEY in both formats, and a few broken texts.
 * Build: cmake -DFUZZ=ON with CC=clang (see tests/fuzz/run.sh).
 * SPDX-License-Identifier: Apache-2.0 */
#include "../../src/common/alloc.h"
#include "../../src/common/crypto.h"
#include "../../src/common/err.h"
#include "../../src/common/log.h"
#include "../../src/master/vault.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KEY "fuzz-vault-key-0123456789abcdef"
#define FUZZ_NEW_KEY "fuzz-vault-new-key-0123456789ab"

static unsigned char key[CP_KEY_LEN];
static struct vault *rot; /* VAULT_KEY new, VAULT_KEY_PREVIOUS FUZZ_KEY */
static struct vault *cur; /* VAULT_KEY FUZZ_KEY */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_vault_open: %s\n", what);
    abort();
}

static void init(void)
{
    if (rot != NULL)
        return;
    cp_log_level = CP_LOG_ERROR;
    /* The vault derives with its own label; so does the plain key here,
     * matching what vault.c does (HKDF info "kontena-master vault v1"). */
    if (cp_hkdf_sha256(FUZZ_KEY, strlen(FUZZ_KEY), "kontena-master vault v1",
                       key) != 0)
        die("hkdf");
    rot = vault_new(FUZZ_NEW_KEY, FUZZ_KEY, NULL);
    cur = vault_new(FUZZ_KEY, NULL, NULL);
}

static void check_rc(int rc, char *out)
{
    if (rc != 0 && rc != CP_EPROTO && rc != CP_EPERM)
        die("unexpected error code");
    if (rc != 0 && out != NULL)
        die("output on failure");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    char *text = cp_malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    char kid[CP_KEY_ID_LEN + 1];
    if (cp_sealed_key_id(text, kid) == 0) {
        if (strlen(kid) != CP_KEY_ID_LEN)
            die("key id length");
        for (const char *p = kid; *p != '\0'; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                die("key id not hex");
    }

    char *out = NULL;
    size_t len = 0;
    int rc = cp_open(key, text, &out, &len);
    check_rc(rc, out);
    char *vout = NULL;
    size_t vlen = 0;
    int vrc = vault_open(rot, text, &vout, &vlen);
    check_rc(vrc, vout);
    /* The previous key opens exactly what the key itself opens. */
    if ((rc == 0) != (vrc == 0))
        die("vault with the previous key disagrees with cp_open");
    if (rc == 0) {
        if (len != vlen || memcmp(out, vout, len) != 0)
            die("vault_open and cp_open differ");
        if (out[len] != '\0')
            die("not NUL-terminated");
        char *again = vault_seal(rot, out, len);
        char *back = NULL;
        size_t blen = 0;
        if (vault_open(rot, again, &back, &blen) != 0 || blen != len ||
            memcmp(back, out, len) != 0)
            die("re-sealed value does not open to the same bytes");
        char *tmp = NULL;
        size_t tlen = 0;
        if (vault_open(cur, again, &tmp, &tlen) != CP_EPERM || tmp != NULL)
            die("a value under the new key opens with the old one alone");
        vault_plain_free(back, blen);
        cp_free(again);
    }
    vault_plain_free(out, len);
    vault_plain_free(vout, vlen);
    cp_free(text);
    return 0;
}
