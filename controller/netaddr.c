/*
 * netaddr.c — address classification and CIDR lists (see netaddr.h). Pure; any thread.
 */
#include "controller/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

int netaddr_parse(const char *s, struct netaddr *ret)
{
    struct netaddr a = { 0 };
    if (!s)
        return -EINVAL;
    if (inet_pton(AF_INET, s, a.a) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, s, a.a) == 1)
        a.family = AF_INET6;
    else
        return -EINVAL;
    *ret = a;
    return 0;
}

int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *ret)
{
    struct netaddr a = { 0 };
    if (!sa)
        return -EINVAL;
    if (sa->sa_family == AF_INET) {
        a.family = AF_INET;
        memcpy(a.a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        a.family = AF_INET6;
        memcpy(a.a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else {
        return -EAFNOSUPPORT;
    }
    *ret = a;
    return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

struct range {
    uint8_t net[16];
    unsigned prefix;
    const char *why;
};

static const struct range v4_blocked[] = {
    { { 0 }, 8, "unspecified/this-network address" },
    { { 10 }, 8, "private address" },
    { { 100, 64 }, 10, "carrier-grade NAT address" },
    { { 127 }, 8, "loopback address" },
    { { 169, 254, 169, 254 }, 32, "cloud metadata address" },
    { { 169, 254 }, 16, "link-local address" },
    { { 172, 16 }, 12, "private address" },
    { { 192, 0, 0 }, 24, "IETF protocol assignment" },
    { { 192, 0, 2 }, 24, "documentation address" },
    { { 192, 88, 99 }, 24, "6to4 relay address" },
    { { 192, 168 }, 16, "private address" },
    { { 198, 18 }, 15, "benchmarking address" },
    { { 198, 51, 100 }, 24, "documentation address" },
    { { 203, 0, 113 }, 24, "documentation address" },
    { { 224 }, 4, "multicast address" },
    { { 255, 255, 255, 255 }, 32, "broadcast address" },
    { { 240 }, 4, "reserved address" },
};

static const struct range v6_blocked[] = {
    { { 0 }, 128, "unspecified address" },
    { { [15] = 1 }, 128, "loopback address" },
    { { [10] = 0xff, [11] = 0xff }, 96, "IPv4-mapped IPv6 address" },
    { { 0 }, 96, "IPv4-compatible IPv6 address" },
    { { 0x00, 0x64, 0xff, 0x9b }, 96, "NAT64 address" },
    { { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, "NAT64 address" },
    { { 0x01, 0x00 }, 64, "discard-only address" },
    { { 0x20, 0x01, 0x00, 0x00 }, 32, "Teredo address" },
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32, "documentation address" },
    { { 0x20, 0x02 }, 16, "6to4 address" },
    { { 0xfc }, 7, "unique-local address" },
    { { 0xfe, 0x80 }, 10, "link-local address" },
    { { 0xfe, 0xc0 }, 10, "site-local address" },
    { { 0xff }, 8, "multicast address" },
};

const char *netaddr_blocked(const struct netaddr *addr)
{
    if (!addr)
        return "invalid address";
    if (addr->family == AF_INET) {
        for (size_t i = 0; i < ARRAY_SIZE(v4_blocked); i++)
            if (prefix_match(addr->a, v4_blocked[i].net, v4_blocked[i].prefix))
                return v4_blocked[i].why;
        return NULL;
    }
    if (addr->family == AF_INET6) {
        for (size_t i = 0; i < ARRAY_SIZE(v6_blocked); i++)
            if (prefix_match(addr->a, v6_blocked[i].net, v6_blocked[i].prefix))
                return v6_blocked[i].why;
        /* Only global unicast (2000::/3) is a destination. */
        if ((addr->a[0] & 0xe0) != 0x20)
            return "reserved address";
        return NULL;
    }
    return "invalid address";
}

int netaddr_cidr_parse(const char *s, struct netaddr_cidr *ret)
{
    char buf[64];
    if (!s || strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    char *slash = strchr(buf, '/');
    unsigned prefix;
    if (slash) {
        *slash = '\0';
        char *end;
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -EINVAL;
        unsigned long v = strtoul(p, &end, 10);
        if (*end)
            return -EINVAL;
        prefix = (unsigned)v;
    } else {
        prefix = 256; /* decided below */
    }
    struct netaddr_cidr c = { 0 };
    if (netaddr_parse(buf, &c.net) < 0)
        return -EINVAL;
    unsigned max = c.net.family == AF_INET ? 32 : 128;
    if (prefix == 256)
        prefix = max;
    if (prefix > max)
        return -EINVAL;
    c.prefix = prefix;
    /* host bits must be zero */
    for (unsigned bit = prefix; bit < max; bit++)
        if (c.net.a[bit / 8] & (0x80 >> (bit % 8)))
            return -EINVAL;
    *ret = c;
    return 0;
}

int netaddr_cidr_list_parse(const char *s, struct netaddr_cidr **ret, size_t *ret_n, char *err,
                            size_t errlen)
{
    struct netaddr_cidr *list = NULL;
    size_t n = 0;
    const char *p = s ? s : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        char item[64];
        if (len >= sizeof(item)) {
            if (err)
                snprintf(err, errlen, "CIDR too long");
            free(list);
            return -EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        struct netaddr_cidr c;
        if (netaddr_cidr_parse(item, &c) < 0) {
            if (err)
                snprintf(err, errlen, "invalid CIDR '%s'", item);
            free(list);
            return -EINVAL;
        }
        list = xrealloc(list, (n + 1) * sizeof(*list));
        list[n++] = c;
        p += len;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

bool netaddr_cidr_contains(const struct netaddr_cidr *cidr, const struct netaddr *addr)
{
    if (!cidr || !addr)
        return false;
    if (cidr->net.family == addr->family)
        return prefix_match(addr->a, cidr->net.a, cidr->prefix);
    static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
    if (cidr->net.family == AF_INET && addr->family == AF_INET6 &&
        memcmp(addr->a, mapped, 12) == 0)
        return prefix_match(addr->a + 12, cidr->net.a, cidr->prefix);
    return false;
}

bool netaddr_cidr_list_contains(const struct netaddr_cidr *list, size_t n,
                                const struct netaddr *addr)
{
    for (size_t i = 0; i < n; i++)
        if (netaddr_cidr_contains(&list[i], addr))
            return true;
    return false;
}

void netaddr_format(const struct netaddr *addr, char *out, size_t outlen)
{
    char b[INET6_ADDRSTRLEN] = "?";
    if (addr && (addr->family == AF_INET || addr->family == AF_INET6))
        inet_ntop(addr->family, addr->a, b, sizeof(b));
    snprintf(out, outlen, "%s", b);
}
