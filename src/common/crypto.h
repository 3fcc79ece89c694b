/* Authenticated encryption for values kept at rest (grid tokens now, vault
 * secrets and registry credentials later): AES-256-GCM with a random
 * 96-bit nonce per value and a versioned text header, keys derived with
 * HKDF-SHA256.
 *
 * Sealed text: "kv1:" base64(nonce[12] || ciphertext || tag[16]), or
 * "kv2:<key id>:" base64(...) where the header also names the key and is
 * bound into the tag as associated data (the vault's format: with two
 * keys during a rotation, the id picks the key and tells a rekey what is
 * left to do). The header names the format so that later ones coexist.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CRYPTO_H
#define CP_CRYPTO_H

#include <stddef.h>

#define CP_KEY_LEN 32

/* Derives a 32-byte key from secret material with HKDF-SHA256 and the
 * given purpose label (info). Returns 0 or CP_EINVAL. */
int cp_hkdf_sha256(const void *secret, size_t secret_len, const char *info,
                   unsigned char out[CP_KEY_LEN]);

/* Seals plain (len bytes) under key; returns a new string (caller
 * frees). */
char *cp_seal(const unsigned char key[CP_KEY_LEN], const void *plain,
              size_t len);

/* Key ids: the first CP_KEY_ID_LEN hex chars of SHA-256 over a label and
 * the key. They name a key without revealing anything about it. */
#define CP_KEY_ID_LEN 8
void cp_key_id(const unsigned char key[CP_KEY_LEN],
               char out[CP_KEY_ID_LEN + 1]);

/* Seals like cp_seal in the "kv2:<key id>:" format; returns a new string
 * (caller frees). */
char *cp_seal_kid(const unsigned char key[CP_KEY_LEN], const void *plain,
                  size_t len);

/* The key id a "kv2:" sealed text names, into out. CP_EPROTO when the
 * text is not of that format. */
int cp_sealed_key_id(const char *sealed, char out[CP_KEY_ID_LEN + 1]);

/* Opens sealed text of either format. On success *out is a new NUL-terminated buffer of
 * *out_len bytes (caller frees) and 0 is returned. CP_EPROTO when the text
 * is not sealed text of a known version; CP_EPERM when authentication
 * fails (wrong key or tampered value), also at once when a "kv2:" text
 * names another key. Never returns unauthenticated bytes. */
int cp_open(const unsigned char key[CP_KEY_LEN], const char *sealed,
            char **out, size_t *out_len);

/* Decodes standard base64 (padding required). New buffer in *out (caller
 * frees), or CP_EINVAL. */
int cp_base64_decode(const char *in, unsigned char **out, size_t *out_len);

#endif
