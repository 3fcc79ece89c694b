/* Trusted proxies and the client address behind them (see proxy.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "proxy.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Parses a numeric address into family/bytes. */
static bool parse_addr(const char *s, int *family, unsigned char out[16])
{
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        /* An IPv4-mapped address is the IPv4 address. */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out, mapped, 12) == 0) {
            memmove(out, out + 12, 4);
            memset(out + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return true;
    }
    return false;
}

static void clear_host_bits(unsigned char a[16], int prefix)
{
    for (int i = 0; i < 16; i++) {
        int keep = prefix - i * 8;
        if (keep >= 8)
            continue;
        a[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
}

static bool parse_net(const char *entry, struct proxy_net *n)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t len = strlen(entry);
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, entry, len + 1);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    if (!parse_addr(buf, &n->family, n->addr))
        return false;
    int max = n->family == AF_INET ? 32 : 128;
    long long prefix = max;
    if (slash != NULL && cp_parse_int(slash + 1, 0, max, &prefix) != 0)
        return false;
    n->prefix = (int)prefix;
    clear_host_bits(n->addr, n->prefix);
    return true;
}

int proxy_list_parse(const char *spec, struct proxy_list *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (spec == NULL)
        return 0;
    char *copy = cp_strdup(spec);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        struct proxy_net n;
        if (!parse_net(tok, &n)) {
            snprintf(err, errlen,
                     "KONTENA_TRUSTED_PROXIES: '%s' is not an IP address or "
                     "CIDR block",
                     tok);
            cp_free(copy);
            proxy_list_release(out);
            return CP_EINVAL;
        }
        out->nets = cp_realloc(out->nets, (out->len + 1) * sizeof(n));
        out->nets[out->len++] = n;
    }
    cp_free(copy);
    return 0;
}

void proxy_list_release(struct proxy_list *l)
{
    cp_free(l->nets);
    memset(l, 0, sizeof(*l));
}

bool proxy_list_has(const struct proxy_list *l, const char *ip)
{
    int family;
    unsigned char a[16];
    if (l == NULL || l->len == 0 || ip == NULL || !parse_addr(ip, &family, a))
        return false;
    for (size_t i = 0; i < l->len; i++) {
        const struct proxy_net *n = &l->nets[i];
        if (n->family != family)
            continue;
        unsigned char masked[16];
        memcpy(masked, a, 16);
        clear_host_bits(masked, n->prefix);
        if (memcmp(masked, n->addr, 16) == 0)
            return true;
    }
    return false;
}

/* Copies the trimmed entry [b, e) into out (size outlen); false when it
 * is empty, too long or not an address. */
static bool entry_addr(const char *b, const char *e, char *out,
                       size_t outlen)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - b);
    if (n == 0 || n >= outlen)
        return false;
    memcpy(out, b, n);
    out[n] = '\0';
    int family;
    unsigned char a[16];
    return parse_addr(out, &family, a);
}

char *proxy_client_ip(const struct proxy_list *l, const char *peer,
                      const char *xff)
{
    if (xff == NULL || !proxy_list_has(l, peer))
        return cp_strdup(peer);
    char best[INET6_ADDRSTRLEN];
    snprintf(best, sizeof(best), "%s", peer);
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        char addr[INET6_ADDRSTRLEN];
        if (!entry_addr(start, end, addr, sizeof(addr)))
            break;
        snprintf(best, sizeof(best), "%s", addr);
        if (!proxy_list_has(l, addr))
            break;
        end = start > xff ? start - 1 : xff;
    }
    return cp_strdup(best);
}

const char *proxy_scheme(const struct proxy_list *l, const char *peer,
                         const char *xfp)
{
    if (xfp == NULL || !proxy_list_has(l, peer))
        return NULL;
    /* A chain of proxies may append: "https, http" - the first is the
     * client's. */
    size_t n = strcspn(xfp, ", ");
    if (n == 5 && strncasecmp(xfp, "https", 5) == 0)
        return "https";
    if (n == 4 && strncasecmp(xfp, "http", 4) == 0)
        return "http";
    return NULL;
}
