/*
 * netaddr.h — classification of IP addresses for outbound connections (webhook SSRF
 * protection, docs/internals/WEBHOOKS.md) and operator allow lists of CIDRs.
 *
 * netaddr_blocked() names why an address must not be connected to (loopback, private,
 * link-local incl. cloud metadata, CGNAT, unspecified, multicast, broadcast, reserved,
 * documentation, unique-local, site-local, IPv6 forms embedding IPv4: mapped, compatible,
 * NAT64, 6to4, Teredo), or returns NULL for a global unicast address.
 * Pure functions; any thread. Nothing here resolves names or opens sockets.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address in one form: IPv4 as 4 bytes (family AF_INET) or IPv6 as 16 (AF_INET6). */
struct netaddr {
    int family;
    uint8_t a[16];
};

struct netaddr_cidr {
    struct netaddr net;
    unsigned prefix;
};

/* Parses a numeric address ("10.0.0.1", "::1"; no brackets, no names, no short forms like
 * "127.1"). Returns 0 or -EINVAL. */
int netaddr_parse(const char *s, struct netaddr *ret);
/* From a sockaddr_in / sockaddr_in6; -EAFNOSUPPORT otherwise. */
int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *ret);

/* Why addr is refused as a destination, or NULL if it is a global unicast address. */
const char *netaddr_blocked(const struct netaddr *addr);

/* "a.b.c.d/n" or "x::/n" (a bare address means a single host). Host bits must be zero.
 * Returns 0 or -EINVAL. */
int netaddr_cidr_parse(const char *s, struct netaddr_cidr *ret);
/* Comma-separated CIDRs (spaces allowed around items; "" = empty list). *ret is malloc'd
 * (NULL when empty). Returns 0 or -EINVAL with the bad item in err. */
int netaddr_cidr_list_parse(const char *s, struct netaddr_cidr **ret, size_t *ret_n, char *err,
                            size_t errlen);
/* True if addr lies in cidr. An IPv4-mapped IPv6 address also matches IPv4 CIDRs. */
bool netaddr_cidr_contains(const struct netaddr_cidr *cidr, const struct netaddr *addr);
bool netaddr_cidr_list_contains(const struct netaddr_cidr *list, size_t n,
                                const struct netaddr *addr);

/* Numeric text of addr (out ≥ 46 bytes). */
void netaddr_format(const struct netaddr *addr, char *out, size_t outlen);
