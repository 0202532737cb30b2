/*
 * test-netaddr.c — the webhook SSRF address classifier and CIDR allow lists
 * (controller/netaddr.c). Pure: nothing here resolves a name or opens a socket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "controller/netaddr.h"
#include "tap.h"

static const char *why(const char *s)
{
    struct netaddr a;
    if (netaddr_parse(s, &a) < 0)
        return "PARSE ERROR";
    return netaddr_blocked(&a);
}

static void blocked(const char *s)
{
    const char *w = why(s);
    ok(w != NULL && strcmp(w, "PARSE ERROR") != 0, "%s is refused (%s)", s, w ? w : "allowed");
}

static void allowed(const char *s)
{
    const char *w = why(s);
    ok(w == NULL, "%s is allowed (%s)", s, w ? w : "ok");
}

static bool in_list(const char *list, const char *addr)
{
    struct netaddr_cidr *l = NULL;
    size_t n = 0;
    struct netaddr a;
    if (netaddr_cidr_list_parse(list, &l, &n, NULL, 0) < 0 || netaddr_parse(addr, &a) < 0) {
        free(l);
        return false;
    }
    bool r = netaddr_cidr_list_contains(l, n, &a);
    free(l);
    return r;
}

int main(void)
{
    plan_no_plan();

    /* IPv4 */
    const char *v4_bad[] = { "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1",
                             "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                             "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255",
                             "100.100.100.200", "224.0.0.1", "239.255.255.250",
                             "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1" };
    for (size_t i = 0; i < sizeof(v4_bad) / sizeof(v4_bad[0]); i++)
        blocked(v4_bad[i]);
    const char *v4_good[] = { "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0",
                              "100.63.255.255", "100.128.0.0", "169.253.255.255",
                              "192.169.0.1", "11.0.0.1" };
    for (size_t i = 0; i < sizeof(v4_good) / sizeof(v4_good[0]); i++)
        allowed(v4_good[i]);
    is_str(why("169.254.169.254"), "cloud metadata address", "metadata is named as such");

    /* IPv6, including every form that embeds an IPv4 address */
    const char *v6_bad[] = { "::", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1",
                             "::ffff:8.8.8.8", "::127.0.0.1", "::10.0.0.1", "64:ff9b::7f00:1",
                             "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1",
                             "2002:a9fe:a9fe::", "2001:0:4136:e378::1", "fc00::1", "fd00:ec2::254",
                             "fe80::1", "febf::1", "fec0::1", "ff02::1", "2001:db8::1", "100::1",
                             "4000::1" };
    for (size_t i = 0; i < sizeof(v6_bad) / sizeof(v6_bad[0]); i++)
        blocked(v6_bad[i]);
    is_str(why("::ffff:169.254.169.254"), "IPv4-mapped IPv6 address", "mapped metadata refused");
    const char *v6_good[] = { "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450::1" };
    for (size_t i = 0; i < sizeof(v6_good) / sizeof(v6_good[0]); i++)
        allowed(v6_good[i]);

    /* sockaddr path */
    struct sockaddr_in sin = { .sin_family = AF_INET };
    inet_pton(AF_INET, "169.254.169.254", &sin.sin_addr);
    struct netaddr a;
    ok(netaddr_from_sockaddr((struct sockaddr *)&sin, &a) == 0 && netaddr_blocked(&a),
       "sockaddr_in metadata refused");
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
    ok(netaddr_from_sockaddr((struct sockaddr *)&sin6, &a) == 0 && netaddr_blocked(&a),
       "sockaddr_in6 mapped loopback refused");

    /* short forms are not numeric addresses for netaddr_parse (getaddrinfo expands them) */
    ok(netaddr_parse("127.1", &a) < 0, "127.1 is not parsed as a literal");
    ok(netaddr_parse("localhost", &a) < 0, "names are not parsed");

    /* CIDRs and allow lists */
    struct netaddr_cidr c;
    ok(netaddr_cidr_parse("127.0.0.0/8", &c) == 0 && c.prefix == 8, "127.0.0.0/8 parses");
    ok(netaddr_cidr_parse("127.0.0.1/8", &c) < 0, "host bits set refused");
    ok(netaddr_cidr_parse("10.0.0.0/33", &c) < 0, "prefix too long refused");
    ok(netaddr_cidr_parse("::1", &c) == 0 && c.prefix == 128, "bare address is a host");
    ok(netaddr_cidr_parse("fd00::/8", &c) == 0, "IPv6 CIDR parses");
    ok(netaddr_cidr_parse("x/8", &c) < 0, "garbage refused");
    ok(netaddr_cidr_parse("10.0.0.0/", &c) < 0, "empty prefix refused");
    ok(in_list("127.0.0.0/8", "127.0.0.1"), "allow list matches loopback");
    ok(in_list("127.0.0.0/8", "::ffff:127.0.0.1"), "IPv4 CIDR matches the mapped form");
    ok(!in_list("127.0.0.0/8", "::1"), "IPv4 CIDR does not match ::1");
    ok(in_list(" 10.0.0.0/8 , ::1 ", "::1"), "list with spaces");
    ok(!in_list("", "127.0.0.1"), "empty list matches nothing");
    ok(!in_list("10.0.0.0/8", "11.0.0.1"), "outside the range");
    struct netaddr_cidr *l = NULL;
    size_t n = 0;
    char err[64] = "";
    ok(netaddr_cidr_list_parse("10.0.0.0/8,bogus", &l, &n, err, sizeof(err)) < 0 &&
           strstr(err, "bogus"),
       "bad list item named: %s", err);
    return done();
}
