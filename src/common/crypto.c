/* AES-256-GCM sealing and HKDF over OpenSSL 3.
 * SPDX-License-Identifier: Apache-2.0 */
#include "crypto.h"
#include "alloc.h"
#include "err.h"
#include "log.h"
#include "util.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SEAL_PREFIX "kv1:"
#define SEAL2_PREFIX "kv2:"
#define NONCE_LEN 12
#define TAG_LEN 16

/* Fetching an algorithm from OpenSSL 3's providers is costly; do it once.
 * The fetched object is immutable and safe to share between threads. */
static EVP_CIPHER *gcm;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void fetch_gcm(void)
{
    gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (gcm == NULL)
        cp_panic("OpenSSL has no AES-256-GCM");
}

static const EVP_CIPHER *aes_gcm(void)
{
    pthread_once(&gcm_once, fetch_gcm);
    return gcm;
}

int cp_hkdf_sha256(const void *secret, size_t secret_len, const char *info,
                   unsigned char out[CP_KEY_LEN])
{
    if (secret_len == 0)
        return CP_EINVAL;
    int rc = CP_EINVAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx == NULL)
        goto out;
    static const char salt[] = "kontena-master";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         (char *)(uintptr_t) "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                          (void *)(uintptr_t)secret,
                                          secret_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          (void *)(uintptr_t)salt,
                                          sizeof(salt) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                          (void *)(uintptr_t)info,
                                          strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, CP_KEY_LEN, params) == 1)
        rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* AES-256-GCM over plain with aad (may be empty) as associated data:
 * base64(nonce || ciphertext || tag), a new string. */
static char *seal_b64(const unsigned char key[CP_KEY_LEN], const void *plain,
                      size_t len, const char *aad)
{
    size_t raw_len = NONCE_LEN + len + TAG_LEN;
    unsigned char *raw = cp_malloc(raw_len);
    cp_random_bytes(raw, NONCE_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, a = 0;
    size_t aad_len = strlen(aad);
    if (ctx == NULL ||
        EVP_EncryptInit_ex(ctx, aes_gcm(), NULL, key, raw) != 1 ||
        (aad_len > 0 &&
         EVP_EncryptUpdate(ctx, NULL, &a, (const unsigned char *)aad,
                           (int)aad_len) != 1) ||
        EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
                            raw + NONCE_LEN + len) != 1)
        cp_panic("AES-256-GCM encryption failed");
    EVP_CIPHER_CTX_free(ctx);
    char *b64 = cp_base64_encode(raw, raw_len);
    cp_free(raw);
    return b64;
}

char *cp_seal(const unsigned char key[CP_KEY_LEN], const void *plain,
              size_t len)
{
    char *b64 = seal_b64(key, plain, len, "");
    char *outs = cp_asprintf("%s%s", SEAL_PREFIX, b64);
    cp_free(b64);
    return outs;
}

void cp_key_id(const unsigned char key[CP_KEY_LEN],
               char out[CP_KEY_ID_LEN + 1])
{
    static const char label[] = "kontena key id v1:";
    unsigned char buf[sizeof(label) - 1 + CP_KEY_LEN];
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, key, CP_KEY_LEN);
    char hex[65];
    cp_sha256_hex(buf, sizeof(buf), hex);
    memcpy(out, hex, CP_KEY_ID_LEN);
    out[CP_KEY_ID_LEN] = '\0';
}

char *cp_seal_kid(const unsigned char key[CP_KEY_LEN], const void *plain,
                  size_t len)
{
    char kid[CP_KEY_ID_LEN + 1];
    cp_key_id(key, kid);
    char *header = cp_asprintf("%s%s:", SEAL2_PREFIX, kid);
    char *b64 = seal_b64(key, plain, len, header);
    char *outs = cp_asprintf("%s%s", header, b64);
    cp_free(b64);
    cp_free(header);
    return outs;
}

int cp_sealed_key_id(const char *sealed, char out[CP_KEY_ID_LEN + 1])
{
    size_t plen = strlen(SEAL2_PREFIX);
    if (strncmp(sealed, SEAL2_PREFIX, plen) != 0)
        return CP_EPROTO;
    const char *kid = sealed + plen;
    for (size_t i = 0; i < CP_KEY_ID_LEN; i++) {
        char c = kid[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return CP_EPROTO;
    }
    if (kid[CP_KEY_ID_LEN] != ':')
        return CP_EPROTO;
    memcpy(out, kid, CP_KEY_ID_LEN);
    out[CP_KEY_ID_LEN] = '\0';
    return 0;
}

int cp_base64_decode(const char *in, unsigned char **out, size_t *out_len)
{
    size_t len = strlen(in);
    if (len % 4 != 0)
        return CP_EINVAL;
    /* Padding only at the very end: "x=" may close, "=x" may not. */
    if (len >= 2 && in[len - 2] == '=' && in[len - 1] != '=')
        return CP_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                  (c == '=' && i >= len - 2);
        if (!ok)
            return CP_EINVAL;
    }
    unsigned char *buf = cp_malloc(len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n < 0) {
        cp_free(buf);
        return CP_EINVAL;
    }
    /* EVP_DecodeBlock counts padding bytes as data; take them off. */
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

/* Opens base64 text b64 sealed with aad (see seal_b64). */
static int open_b64(const unsigned char key[CP_KEY_LEN], const char *b64,
                    const char *aad, char **out, size_t *out_len)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    if (cp_base64_decode(b64, &raw, &raw_len) != 0)
        return CP_EPROTO;
    int rc = CP_EPROTO;
    char *plain = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t len = 0;
    /* Only the canonical encoding: base64 leaves spare bits in its last
     * character, and two texts must not open to the same value. */
    char *again = cp_base64_encode(raw, raw_len);
    bool is_canonical = strcmp(again, b64) == 0;
    cp_free(again);
    if (!is_canonical)
        goto out;
    if (raw_len < NONCE_LEN + TAG_LEN || raw_len - NONCE_LEN > INT32_MAX)
        goto out;
    len = raw_len - NONCE_LEN - TAG_LEN;
    size_t aad_len = strlen(aad);
    plain = cp_malloc(len + 1);
    ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, a = 0;
    if (ctx == NULL ||
        EVP_DecryptInit_ex(ctx, aes_gcm(), NULL, key, raw) != 1 ||
        (aad_len > 0 &&
         EVP_DecryptUpdate(ctx, NULL, &a, (const unsigned char *)aad,
                           (int)aad_len) != 1) ||
        EVP_DecryptUpdate(ctx, (unsigned char *)plain, &n, raw + NONCE_LEN,
                          (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                            raw + NONCE_LEN + len) != 1) {
        rc = CP_EPROTO;
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + n, &fin) != 1) {
        rc = CP_EPERM;
        goto out;
    }
    plain[len] = '\0';
    *out = plain;
    *out_len = len;
    plain = NULL;
    rc = 0;
out:
    if (plain != NULL) {
        /* Never leave decrypted bytes of a failed open behind. */
        OPENSSL_cleanse(plain, len + 1);
        cp_free(plain);
    }
    EVP_CIPHER_CTX_free(ctx);
    cp_free(raw);
    return rc;
}

int cp_open(const unsigned char key[CP_KEY_LEN], const char *sealed,
            char **out, size_t *out_len)
{
    size_t plen = strlen(SEAL_PREFIX);
    if (strncmp(sealed, SEAL_PREFIX, plen) == 0)
        return open_b64(key, sealed + plen, "", out, out_len);
    char kid[CP_KEY_ID_LEN + 1], mine[CP_KEY_ID_LEN + 1];
    if (cp_sealed_key_id(sealed, kid) != 0)
        return CP_EPROTO;
    cp_key_id(key, mine);
    if (strcmp(kid, mine) != 0)
        return CP_EPERM;
    size_t hlen = strlen(SEAL2_PREFIX) + CP_KEY_ID_LEN + 1;
    char header[64];
    memcpy(header, sealed, hlen);
    header[hlen] = '\0';
    return open_b64(key, sealed + hlen, header, out, out_len);
}
