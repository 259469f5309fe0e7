/* test_cidr.c: CIDR ranges and matching of sockaddrs and SOCKS addresses. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "unit.h"

static struct sockaddr_storage cidr_ss;

/* A sockaddr for an address literal, port 1. */
static const struct sockaddr *
cidr_sa(const char *text)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&cidr_ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&cidr_ss;

	memset(&cidr_ss, 0, sizeof(cidr_ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(1);
	} else {
		inet_pton(AF_INET6, text, &sin6->sin6_addr);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(1);
	}
	return (const struct sockaddr *)&cidr_ss;
}

static bool
cidr_in(const char *range, const char *addr)
{
	struct s5_cidr c;
	const char *why;

	if (s5_cidr_parse(range, &c, &why) != 0)
		return false;
	return s5_cidr_match(&c, cidr_sa(addr));
}

static void
cidr_parse(void)
{
	static const uint8_t net10[4] = { 10, 0, 0, 0 };
	static const uint8_t v6net[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0 };
	const char *why = NULL;
	struct s5_cidr c;

	CHECK_INT(s5_cidr_parse("10.1.2.3/8", &c, &why), 0);
	CHECK_INT(c.v6, 0);
	CHECK_INT(c.bits, 8);
	CHECK_MEM(c.net, net10, 4);

	CHECK_INT(s5_cidr_parse("127.0.0.1", &c, &why), 0);
	CHECK_INT(c.bits, 32);
	CHECK_INT(c.net[3], 1);

	CHECK_INT(s5_cidr_parse("2001:db8:0:0:ffff::1/64", &c, &why), 0);
	CHECK_INT(c.v6, 1);
	CHECK_INT(c.bits, 64);
	CHECK_MEM(c.net, v6net, 16);

	CHECK_INT(s5_cidr_parse("::1", &c, &why), 0);
	CHECK_INT(c.v6, 1);
	CHECK_INT(c.bits, 128);

	CHECK_INT(s5_cidr_parse("0.0.0.0/0", &c, &why), 0);
	CHECK_INT(c.bits, 0);
	CHECK_INT(s5_cidr_parse("10.255.255.255/9", &c, &why), 0);
	CHECK_INT(c.net[1], 0x80);
	CHECK_INT(c.net[2], 0);

	/* Inside ::ffff:0:0/96 a range is IPv4. */
	CHECK_INT(s5_cidr_parse("::ffff:10.0.0.0/104", &c, &why), 0);
	CHECK_INT(c.v6, 0);
	CHECK_INT(c.bits, 8);
	CHECK_MEM(c.net, net10, 4);

	why = NULL;
	CHECK_INT(s5_cidr_parse("10.0.0.0/33", &c, &why), -1);
	CHECK_STR(why, "bad prefix length");
	CHECK_INT(s5_cidr_parse("::/129", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("10.0.0.0/", &c, &why), -1);
	CHECK_STR(why, "bad prefix length");
	CHECK_INT(s5_cidr_parse("10.0.0.0/-1", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("10.0.0.0/0008", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("10.0.0.0/255.0.0.0", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("10.0.0/8", &c, &why), -1);
	CHECK_STR(why, "bad address");
	CHECK_INT(s5_cidr_parse("example.com/8", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("/8", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("", &c, &why), -1);
	CHECK_STR(why, "empty address");
	CHECK_INT(s5_cidr_parse("[::1]/128", &c, &why), -1);
	CHECK_INT(s5_cidr_parse("10.0.0.0/8", &c, NULL), 0);
}

static void
cidr_match(void)
{
	CHECK(cidr_in("127.0.0.0/8", "127.0.0.1"));
	CHECK(cidr_in("127.0.0.0/8", "127.255.255.255"));
	CHECK(!cidr_in("127.0.0.0/8", "128.0.0.1"));
	CHECK(!cidr_in("127.0.0.0/8", "126.255.255.255"));
	CHECK(cidr_in("0.0.0.0/0", "203.0.113.9"));
	CHECK(!cidr_in("0.0.0.0/0", "2001:db8::1"));
	CHECK(cidr_in("192.0.2.7/32", "192.0.2.7"));
	CHECK(!cidr_in("192.0.2.7/32", "192.0.2.6"));
	CHECK(cidr_in("192.0.2.0/25", "192.0.2.127"));
	CHECK(!cidr_in("192.0.2.0/25", "192.0.2.128"));

	CHECK(cidr_in("::1", "::1"));
	CHECK(cidr_in("::1/128", "::1"));
	CHECK(!cidr_in("::1/128", "::2"));
	CHECK(cidr_in("::/0", "2001:db8::1"));
	CHECK(!cidr_in("::/0", "10.0.0.1"));
	CHECK(cidr_in("fe80::/10", "febf::1"));
	CHECK(!cidr_in("fe80::/10", "fec0::1"));
	CHECK(cidr_in("2001:db8::/127", "2001:db8::1"));
	CHECK(!cidr_in("2001:db8::/127", "2001:db8::2"));

	/* v4-mapped peers match IPv4 ranges (dual-stack sockets). */
	CHECK(cidr_in("127.0.0.0/8", "::ffff:127.0.0.1"));
	CHECK(!cidr_in("127.0.0.0/8", "::ffff:10.0.0.1"));
	CHECK(cidr_in("::ffff:127.0.0.0/104", "127.1.1.1"));
	CHECK(cidr_in("::ffff:127.0.0.0/104", "::ffff:127.1.1.1"));
	CHECK(!cidr_in("::1/128", "::ffff:0.0.0.1"));
}

static void
cidr_match_addr(void)
{
	static const uint8_t ip4[4] = { 10, 20, 30, 40 };
	static const uint8_t mapped[16] = { [10] = 0xFF, [11] = 0xFF,
	    [12] = 10, [13] = 20, [14] = 30, [15] = 40 };
	static const uint8_t ip6[16] = { 0xfd, [15] = 1 };
	struct s5_cidr c;
	struct s5_addr a;
	const char *why;

	CHECK_INT(s5_cidr_parse("10.0.0.0/8", &c, &why), 0);
	s5_addr_set_ip4(&a, ip4, 1);
	CHECK(s5_cidr_match_addr(&c, &a));
	s5_addr_set_ip6(&a, mapped, 1);
	CHECK(s5_cidr_match_addr(&c, &a));
	s5_addr_set_ip6(&a, ip6, 1);
	CHECK(!s5_cidr_match_addr(&c, &a));
	/* A name never matches, even one that reads like an address. */
	s5_addr_set_domain(&a, "10.20.30.40", 11, 1);
	CHECK(!s5_cidr_match_addr(&c, &a));

	CHECK_INT(s5_cidr_parse("fc00::/7", &c, &why), 0);
	s5_addr_set_ip6(&a, ip6, 1);
	CHECK(s5_cidr_match_addr(&c, &a));
	s5_addr_set_ip4(&a, ip4, 1);
	CHECK(!s5_cidr_match_addr(&c, &a));
}

void
test_cidr(void)
{
	UNIT_RUN(cidr_parse);
	UNIT_RUN(cidr_match);
	UNIT_RUN(cidr_match_addr);
}
