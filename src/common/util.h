/* Small shared helpers: clocks, time formatting, randomness, hashing,
 * base64, bounded string buffers.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_UTIL_H
#define CP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock in milliseconds since the epoch. */
int64_t cp_now_ms(void);
/* Monotonic clock in milliseconds. */
int64_t cp_mono_ms(void);

/* Formats ms-since-epoch as "2026-11-25T13:00:00.123Z" into out (>= 32
 * bytes); returns out. */
char *cp_time_iso(int64_t ms, char *out, size_t len);
/* Parses an ISO-8601 UTC time ("2026-11-25T13:00:00Z", optional fraction,
 * optional +00:00 offset); returns 0 or CP_EINVAL. */
int cp_time_parse_iso(const char *s, int64_t *out_ms);

/* Fills buf with n cryptographically random bytes (aborts if the kernel
 * cannot supply them). */
void cp_random_bytes(void *buf, size_t n);
/* Writes 2*n lowercase hex chars of n random bytes plus NUL to out. */
void cp_random_hex(char *out, size_t n);

/* Lowercase hex of bytes; out must hold 2*n+1. */
void cp_hex(const void *bytes, size_t n, char *out);

/* SHA-256 of data as 64 hex chars plus NUL in out. */
void cp_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256(key, data) as 64 hex chars plus NUL in out. */
void cp_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
                        size_t len, char out[65]);

/* Constant-time comparison of two equal-length buffers. */
bool cp_ct_equal(const void *a, const void *b, size_t n);

/* Standard base64 with padding. Returns a new string (caller frees). */
char *cp_base64_encode(const void *data, size_t len);

/* A growable byte buffer with a hard maximum: appends past max fail with
 * CP_ENOMEM-free semantics (return CP_EINVAL) instead of growing. */
struct cp_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max;
};
void cp_buf_init(struct cp_buf *b, size_t max);
void cp_buf_release(struct cp_buf *b);
int cp_buf_append(struct cp_buf *b, const void *data, size_t len);
int cp_buf_printf(struct cp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a decimal integer in [min,max] with nothing trailing; 0 or
 * CP_EINVAL. */
int cp_parse_int(const char *s, long long min, long long max,
                 long long *out);

/* The registry an image reference is pulled from (spec 4.5, as the
 * original): its first component when that looks like a host (has a '.'
 * or a ':', or is "localhost"), else CP_REGISTRY_DEFAULT (Docker Hub).
 * Written to out. Pure. */
#define CP_REGISTRY_DEFAULT "index.docker.io"
void cp_image_registry(const char *image, char *out, size_t outlen);

#endif
