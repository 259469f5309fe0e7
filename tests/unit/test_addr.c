/* test_addr.c: addresses, sockaddr conversions and host:port text. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "unit.h"

static void
addr_set(void)
{
	static const uint8_t ip4[4] = { 1, 2, 3, 4 };
	static const uint8_t ip6[16] = { [15] = 1 };
	char name[300];
	struct s5_addr a;

	s5_addr_set_ip4(&a, ip4, 80);
	CHECK_INT(a.atyp, S5_ATYP_IPV4);
	CHECK_INT(s5_addr_wire_len(&a), 6);
	s5_addr_set_ip6(&a, ip6, 80);
	CHECK_INT(a.atyp, S5_ATYP_IPV6);
	CHECK_INT(s5_addr_wire_len(&a), 18);

	CHECK_INT(s5_addr_set_domain(&a, "example.org", 11, 443), 0);
	CHECK_INT(a.atyp, S5_ATYP_DOMAIN);
	CHECK_INT(a.u.domain.len, 11);
	CHECK_STR(a.u.domain.name, "example.org");
	CHECK_INT(s5_addr_wire_len(&a), 14);
	/* A piece of a longer string: only len bytes are taken. */
	CHECK_INT(s5_addr_set_domain(&a, "example.org:443", 11, 443), 0);
	CHECK_STR(a.u.domain.name, "example.org");

	memset(name, 'a', sizeof(name));
	CHECK_INT(s5_addr_set_domain(&a, name, 255, 1), 0);
	CHECK_INT(s5_addr_wire_len(&a), 258);
	CHECK_INT(s5_addr_set_domain(&a, name, 256, 1), -1);
	CHECK_INT(s5_addr_set_domain(&a, name, 0, 1), -1);
	CHECK_INT(s5_addr_set_domain(&a, "a\0b", 3, 1), -1);
	CHECK_INT(s5_addr_set_domain(&a, NULL, 3, 1), -1);

	a.atyp = 0x09;
	CHECK_INT(s5_addr_wire_len(&a), 0);
}

static void
addr_sockaddr(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct s5_addr a;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	inet_pton(AF_INET, "10.9.8.7", &sin.sin_addr);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	CHECK_INT(a.atyp, S5_ATYP_IPV4);
	CHECK_INT(a.u.ip4[0], 10);
	CHECK_INT(a.u.ip4[3], 7);
	CHECK_INT(a.port, 8080);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin,
	    sizeof(sin) - 1), -1);
	CHECK_INT(s5_addr_to_sockaddr(&a, &ss), (int)sizeof(sin));
	CHECK_INT(ss.ss_family, AF_INET);
	CHECK_MEM(&((struct sockaddr_in *)&ss)->sin_addr, &sin.sin_addr, 4);
	CHECK_INT(((struct sockaddr_in *)&ss)->sin_port, htons(8080));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6,
	    sizeof(sin6)), 0);
	CHECK_INT(a.atyp, S5_ATYP_IPV6);
	CHECK_MEM(a.u.ip6, &sin6.sin6_addr, 16);
	CHECK_INT(a.port, 443);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6,
	    sizeof(sin)), -1);
	/* RFC 2133's 24-byte form (no scope id) is what Linux still accepts:
	 * a program may connect with it, so we must read it too. */
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, 24), 0);
	CHECK_INT(a.atyp, S5_ATYP_IPV6);
	CHECK_MEM(a.u.ip6, &sin6.sin6_addr, 16);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, 23), -1);
	CHECK_INT(s5_addr_to_sockaddr(&a, &ss), (int)sizeof(sin6));
	CHECK_INT(ss.ss_family, AF_INET6);
	CHECK_MEM(&((struct sockaddr_in6 *)&ss)->sin6_addr, &sin6.sin6_addr, 16);
	CHECK_INT(((struct sockaddr_in6 *)&ss)->sin6_port, htons(443));

	/* v4-mapped becomes IPv4. */
	inet_pton(AF_INET6, "::ffff:192.0.2.33", &sin6.sin6_addr);
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6,
	    sizeof(sin6)), 0);
	CHECK_INT(a.atyp, S5_ATYP_IPV4);
	CHECK_INT(a.u.ip4[0], 192);
	CHECK_INT(a.u.ip4[3], 33);
	CHECK_INT(a.port, 443);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	CHECK_INT(s5_addr_from_sockaddr(&a, (struct sockaddr *)&sun,
	    sizeof(sun)), -1);
	CHECK_INT(s5_addr_from_sockaddr(&a, NULL, 0), -1);

	CHECK_INT(s5_addr_set_domain(&a, "x", 1, 1), 0);
	CHECK_INT(s5_addr_to_sockaddr(&a, &ss), -1);
}

static void
addr_format(void)
{
	static const uint8_t ip4[4] = { 1, 2, 3, 4 };
	static const uint8_t ip6[16] = { [15] = 1 };
	char buf[S5_ADDR_TEXT_MAX], name[256];
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct s5_addr a;

	s5_addr_set_ip4(&a, ip4, 80);
	CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), 10);
	CHECK_STR(buf, "1.2.3.4:80");
	CHECK_INT(s5_addr_format(&a, buf, 11), 10);
	CHECK_INT(s5_addr_format(&a, buf, 10), -1);
	CHECK_INT(s5_addr_format(&a, buf, 0), -1);
	{
		/* Every octet value, against inet_ntop(). */
		char want[INET_ADDRSTRLEN + 8];
		uint8_t q[4];
		unsigned v;

		for (v = 0; v < 256; v++) {
			q[0] = (uint8_t)v;
			q[1] = (uint8_t)(255 - v);
			q[2] = (uint8_t)(v * 7);
			q[3] = (uint8_t)(v / 3);
			inet_ntop(AF_INET, q, want, INET_ADDRSTRLEN);
			strcat(want, ":0");
			s5_addr_set_ip4(&a, q, 0);
			CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), (int)strlen(want));
			CHECK_STR(buf, want);
		}
		s5_addr_set_ip4(&a, (const uint8_t[4]){ 255, 255, 255, 255 }, 65535);
		CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), 21);
		CHECK_STR(buf, "255.255.255.255:65535");
		CHECK_INT(s5_addr_format(&a, buf, 21), -1);
	}

	s5_addr_set_ip6(&a, ip6, 80);
	CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), 8);
	CHECK_STR(buf, "[::1]:80");

	s5_addr_set_domain(&a, "name", 4, 65535);
	CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), 10);
	CHECK_STR(buf, "name:65535");

	/* The longest text fits S5_ADDR_TEXT_MAX. */
	memset(name, 'z', 255);
	s5_addr_set_domain(&a, name, 255, 65535);
	CHECK_INT(s5_addr_format(&a, buf, sizeof(buf)), 261);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(0);
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
	CHECK_INT(s5_sockaddr_format((struct sockaddr *)&sin6, buf,
	    sizeof(buf)), 19);
	CHECK_STR(buf, "[::ffff:10.0.0.1]:0");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	CHECK(s5_sockaddr_format((struct sockaddr *)&sun, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "unix");
}

/* Parses text and formats it again; the result is the canonical form. */
static void
addr_parse_ok(const char *text, uint8_t atyp, const char *canon, int line)
{
	const char *why = NULL;
	char buf[S5_ADDR_TEXT_MAX];
	struct s5_addr a;

	if (!unit_check_int(s5_addr_parse(text, &a, 1080, &why), 0, text,
	    __FILE__, line))
		return;
	unit_check_int(a.atyp, atyp, text, __FILE__, line);
	s5_addr_format(&a, buf, sizeof(buf));
	unit_check_str(buf, canon, text, __FILE__, line);
}

static void
addr_parse_bad(const char *text, const char *why_want, int line)
{
	const char *why = NULL;
	struct s5_addr a;

	unit_check_int(s5_addr_parse(text, &a, 1080, &why), -1, text, __FILE__,
	    line);
	unit_check_str(why, why_want, text, __FILE__, line);
}

static void
addr_parse(void)
{
	char long_name[300], canon[300];
	struct s5_addr a;

	addr_parse_ok("127.0.0.1:9050", S5_ATYP_IPV4, "127.0.0.1:9050", __LINE__);
	addr_parse_ok("127.0.0.1", S5_ATYP_IPV4, "127.0.0.1:1080", __LINE__);
	addr_parse_ok("[::1]:22", S5_ATYP_IPV6, "[::1]:22", __LINE__);
	addr_parse_ok("[::1]", S5_ATYP_IPV6, "[::1]:1080", __LINE__);
	addr_parse_ok("::1", S5_ATYP_IPV6, "[::1]:1080", __LINE__);
	addr_parse_ok("2001:db8::7", S5_ATYP_IPV6, "[2001:db8::7]:1080", __LINE__);
	addr_parse_ok("[2001:DB8:0::7]:0", S5_ATYP_IPV6, "[2001:db8::7]:0",
	    __LINE__);
	addr_parse_ok("localhost:8080", S5_ATYP_DOMAIN, "localhost:8080", __LINE__);
	addr_parse_ok("example.com", S5_ATYP_DOMAIN, "example.com:1080", __LINE__);
	addr_parse_ok("host:0", S5_ATYP_DOMAIN, "host:0", __LINE__);
	addr_parse_ok("host:65535", S5_ATYP_DOMAIN, "host:65535", __LINE__);
	addr_parse_ok("host:00080", S5_ATYP_DOMAIN, "host:80", __LINE__);
	/* Not a dotted quad, so a name (the resolver will say no). */
	addr_parse_ok("1.2.3", S5_ATYP_DOMAIN, "1.2.3:1080", __LINE__);
	addr_parse_ok("1.2.3.256", S5_ATYP_DOMAIN, "1.2.3.256:1080", __LINE__);

	addr_parse_bad("", "empty address", __LINE__);
	addr_parse_bad(":80", "empty host", __LINE__);
	addr_parse_bad("[]:80", "empty host", __LINE__);
	addr_parse_bad("host:", "bad port", __LINE__);
	addr_parse_bad("host:65536", "bad port", __LINE__);
	addr_parse_bad("host:123456", "bad port", __LINE__);
	addr_parse_bad("host:-1", "bad port", __LINE__);
	addr_parse_bad("host:+80", "bad port", __LINE__);
	addr_parse_bad("host:0x50", "bad port", __LINE__);
	addr_parse_bad("host:80 ", "bad port", __LINE__);
	addr_parse_bad("[::1", "unterminated bracket", __LINE__);
	addr_parse_bad("[::1]80", "junk after ']'", __LINE__);
	addr_parse_bad("[::1]:", "bad port", __LINE__);
	addr_parse_bad("[1.2.3.4]:80", "bad IPv6 address", __LINE__);
	addr_parse_bad("[example.com]", "bad IPv6 address", __LINE__);
	addr_parse_bad("::1:80:x", "more than one ':' and no IPv6 address (one goes in brackets: [::1]:1080)", __LINE__);
	addr_parse_bad("127.0.0.1:1080:1", "more than one ':' and no IPv6 address (one goes in brackets: [::1]:1080)", __LINE__);
	addr_parse_bad("a b:80", "bad character in host", __LINE__);
	addr_parse_bad("user@host:80", "bad character in host", __LINE__);
	addr_parse_bad("host/path", "bad character in host", __LINE__);

	memset(long_name, 'a', sizeof(long_name));
	long_name[255] = '\0';
	memcpy(canon, long_name, 255);
	memcpy(canon + 255, ":1080", 6);
	addr_parse_ok(long_name, S5_ATYP_DOMAIN, canon, __LINE__);
	long_name[255] = 'a';
	long_name[256] = '\0';
	addr_parse_bad(long_name, "host name too long", __LINE__);

	/* why is optional. */
	CHECK_INT(s5_addr_parse("x:y", &a, 1, NULL), -1);
}

/* The comma lists of SOCKSIFY_PROXY and SOCKSIFY_EXCLUDE, split one way for
 * the launcher and the library alike. */
static void
addr_list(void)
{
	const char *s = " socks5://a:1,, socks5h://b:2 ,\tc:3\t,", *item;
	const char *want[] = { "socks5://a:1", "socks5h://b:2", "c:3" };
	size_t len, i = 0;

	while (s5_list_next(&s, &item, &len)) {
		if (!CHECK(i < 3))
			break;
		CHECK_INT(len, strlen(want[i]));
		CHECK(strncmp(item, want[i], len) == 0);
		i++;
	}
	CHECK_INT(i, 3);
	s = "";
	CHECK(!s5_list_next(&s, &item, &len));
	s = " , ,";
	CHECK(!s5_list_next(&s, &item, &len));
	s = "one";
	CHECK(s5_list_next(&s, &item, &len));
	CHECK_INT(len, 3);
	CHECK(!s5_list_next(&s, &item, &len));
}

/* Exclusions by name: what counts as a host name or a .suffix. */
static void
addr_name(void)
{
	char out[S5_DOMAIN_MAX + 1], tiny[4];
	char longname[300];

	CHECK(s5_name_normalize("DB.Internal.", out, sizeof(out)));
	CHECK_STR(out, "db.internal");
	CHECK(s5_name_normalize(".corp", out, sizeof(out)));
	CHECK_STR(out, ".corp");
	CHECK(s5_name_normalize("host_1-a", out, sizeof(out)));
	CHECK_STR(out, "host_1-a");
	CHECK(s5_name_normalize("1e100.net", out, sizeof(out)));
	CHECK(!s5_name_normalize("10.0.0.1", out, sizeof(out)));	/* an address */
	CHECK(!s5_name_normalize("10.0.0.300", out, sizeof(out)));	/* a mistyped one */
	CHECK(!s5_name_normalize("a..b", out, sizeof(out)));
	CHECK(!s5_name_normalize("", out, sizeof(out)));
	CHECK(!s5_name_normalize(".", out, sizeof(out)));
	CHECK(!s5_name_normalize("a b", out, sizeof(out)));
	CHECK(!s5_name_normalize("a/8", out, sizeof(out)));
	CHECK(!s5_name_normalize("caf\xc3\xa9", out, sizeof(out)));	/* not ASCII */
	CHECK(!s5_name_normalize("abcd", tiny, sizeof(tiny)));	/* does not fit */
	CHECK(s5_name_normalize("abc", tiny, sizeof(tiny)));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(!s5_name_normalize(longname, out, sizeof(out)));
}

/* s5_addr_equal: type, port and address; names without regard to case. */
static void
addr_equal(void)
{
	static const uint8_t ip4[4] = { 127, 0, 0, 1 }, ip4b[4] = { 127, 0, 0, 2 };
	uint8_t ip6[16] = { 0 };
	struct s5_addr a, b;

	s5_addr_set_ip4(&a, ip4, 53);
	s5_addr_set_ip4(&b, ip4, 53);
	CHECK(s5_addr_equal(&a, &b));
	b.port = 54;
	CHECK(!s5_addr_equal(&a, &b));
	s5_addr_set_ip4(&b, ip4b, 53);
	CHECK(!s5_addr_equal(&a, &b));
	ip6[15] = 1;
	s5_addr_set_ip6(&b, ip6, 53);
	CHECK(!s5_addr_equal(&a, &b));		/* ::1 is not 127.0.0.1 */
	s5_addr_set_ip6(&a, ip6, 53);
	CHECK(s5_addr_equal(&a, &b));
	CHECK(s5_addr_set_domain(&a, "Example.COM", 11, 80) == 0);
	CHECK(s5_addr_set_domain(&b, "example.com", 11, 80) == 0);
	CHECK(s5_addr_equal(&a, &b));
	CHECK(s5_addr_set_domain(&b, "example.co", 10, 80) == 0);
	CHECK(!s5_addr_equal(&a, &b));		/* a prefix is not the name */
	CHECK(s5_addr_set_domain(&b, "example.con", 11, 80) == 0);
	CHECK(!s5_addr_equal(&a, &b));
}

/* s5_addr_to_family_sockaddr: what a socket of a family can say. */
static void
addr_family_sockaddr(void)
{
	static const uint8_t ip4[4] = { 10, 1, 2, 3 };
	static const uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 };
	uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
	struct s5_addr a;

	s5_addr_set_ip4(&a, ip4, 53);
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET6, &ss), sizeof(*s6));
	CHECK_INT(s6->sin6_family, AF_INET6);
	CHECK_INT(ntohs(s6->sin6_port), 53);
	CHECK_MEM(s6->sin6_addr.s6_addr, mapped, 16);
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET, &ss), sizeof(*s4));
	CHECK_INT(s4->sin_family, AF_INET);
	CHECK_MEM(&s4->sin_addr, ip4, 4);
	s5_addr_set_ip6(&a, ip6, 53);
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET, &ss), -1);	/* no IPv4 form */
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET6, &ss), sizeof(*s6));
	CHECK(s5_addr_set_domain(&a, "example.test", 12, 53) == 0);
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET6, &ss), -1);
	CHECK_INT(s5_addr_to_family_sockaddr(&a, AF_INET, &ss), -1);
}

void
test_addr(void)
{
	UNIT_RUN(addr_set);
	UNIT_RUN(addr_sockaddr);
	UNIT_RUN(addr_format);
	UNIT_RUN(addr_parse);
	UNIT_RUN(addr_list);
	UNIT_RUN(addr_name);
	UNIT_RUN(addr_equal);
	UNIT_RUN(addr_family_sockaddr);
}
