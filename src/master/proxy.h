/* Which peers may tell us the client's address: KONTENA_TRUSTED_PROXIES
 * is a comma-separated list of IPv4/IPv6 addresses and CIDR blocks (the
 * load balancers in front of the master). X-Forwarded-For and
 * X-Forwarded-Proto are believed only when the TCP peer is one of them;
 * from anyone else they are ignored, so a client cannot pick the address
 * that the login rate limit and the audit log see.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_PROXY_H
#define CP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

struct proxy_net {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char addr[16];  /* network address, host bits cleared */
    int prefix;              /* bits */
};

struct proxy_list {
    struct proxy_net *nets;
    size_t len;
};

/* Parses "10.0.0.5, 172.16.0.0/12, ::1". Returns 0, or CP_EINVAL with the
 * offending entry named in err. An empty or NULL spec is an empty list. */
int proxy_list_parse(const char *spec, struct proxy_list *out, char *err,
                     size_t errlen);
void proxy_list_release(struct proxy_list *l);

/* True when ip (numeric text) is inside one of the list's networks. */
bool proxy_list_has(const struct proxy_list *l, const char *ip);

/* The client address of a request that came from peer with the given
 * X-Forwarded-For header (may be NULL): peer itself unless it is a
 * trusted proxy; otherwise the rightmost address of the header that is
 * not a trusted proxy (the leftmost when all are). A malformed entry
 * stops the walk at the last good address. Returns a new string. */
char *proxy_client_ip(const struct proxy_list *l, const char *peer,
                      const char *xff);

/* "https" or "http" from X-Forwarded-Proto when peer is trusted and the
 * header says one of them; NULL otherwise (use the connection's). */
const char *proxy_scheme(const struct proxy_list *l, const char *peer,
                         const char *xfp);

#endif
