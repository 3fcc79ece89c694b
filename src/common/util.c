/* Clocks, randomness, hashing and bounded buffers.
 * SPDX-License-Identifier: Apache-2.0 */
#include "util.h"
#include "alloc.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t cp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *cp_time_iso(int64_t ms, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03dZ", (int)(ms % 1000));
    return out;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return CP_EINVAL;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int cp_time_parse_iso(const char *s, int64_t *out_ms)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
        *p++ != '-' || digits(&p, 2, &d))
        return CP_EINVAL;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return CP_EINVAL;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return CP_EINVAL;
        }
        if (*p == '.') {
            p++;
            int scale = 100;
            if (!isdigit((unsigned char)*p))
                return CP_EINVAL;
            while (isdigit((unsigned char)*p)) {
                ms += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
    }
    int offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&p, 2, &oh))
            return CP_EINVAL;
        if (*p == ':')
            p++;
        if (*p != '\0' && digits(&p, 2, &om))
            return CP_EINVAL;
        offset_min = sign * (oh * 60 + om);
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
        sec > 60 || d > mdays[mo - 1] + (mo == 2 && leap))
        return CP_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out_ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + ms;
    return 0;
}

void cp_random_bytes(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1)
        cp_panic("RAND_bytes failed");
}

void cp_hex(const void *bytes, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[b[i] >> 4];
        out[2 * i + 1] = hexd[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void cp_random_hex(char *out, size_t n)
{
    unsigned char raw[256];
    if (n > sizeof(raw))
        cp_panic("cp_random_hex: %zu bytes is too many", n);
    cp_random_bytes(raw, n);
    cp_hex(raw, n, out);
}

void cp_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        cp_panic("EVP_Digest failed");
    cp_hex(md, 32, out);
}

void cp_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
                        size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) == NULL)
        cp_panic("HMAC failed");
    cp_hex(md, 32, out);
}

bool cp_ct_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

char *cp_base64_encode(const void *data, size_t len)
{
    size_t outlen = 4 * ((len + 2) / 3);
    char *out = cp_malloc(outlen + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n] = '\0';
    return out;
}

void cp_buf_init(struct cp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void cp_buf_release(struct cp_buf *b)
{
    cp_free(b->data);
    cp_buf_init(b, b->max);
}

int cp_buf_append(struct cp_buf *b, const void *data, size_t len)
{
    if (b->len + len > b->max)
        return CP_EINVAL;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = cp_realloc(b->data, cap);
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cp_buf_printf(struct cp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CP_EINVAL;
    char *tmp = cp_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cp_buf_append(b, tmp, (size_t)n);
    cp_free(tmp);
    return rc;
}

int cp_parse_int(const char *s, long long min, long long max,
                 long long *out)
{
    /* Plain digits, with a '-' only where negatives are allowed: no
     * spaces, no '+', nothing strtoll would quietly accept. */
    if (s == NULL || *s == '\0' || (*s == '-' && min >= 0) ||
        (*s != '-' && !isdigit((unsigned char)*s)))
        return CP_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return CP_EINVAL;
    *out = v;
    return 0;
}

void cp_image_registry(const char *image, char *out, size_t outlen)
{
    const char *slash = image != NULL ? strchr(image, '/') : NULL;
    if (slash != NULL) {
        size_t n = (size_t)(slash - image);
        bool is_host = memchr(image, '.', n) != NULL ||
                       memchr(image, ':', n) != NULL ||
                       (n == 9 && strncmp(image, "localhost", 9) == 0);
        if (is_host && n > 0 && n < outlen) {
            snprintf(out, outlen, "%.*s", (int)n, image);
            return;
        }
    }
    snprintf(out, outlen, "%s", CP_REGISTRY_DEFAULT);
}
