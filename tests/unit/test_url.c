/* test_url.c: proxy URLs of CONTRACT.md, parsed and formatted. */
#include "unit.h"

static bool
url_ok(const char *url, struct s5_proxy *p, int line)
{
	const char *why = "(none)";

	if (s5_proxy_parse(url, strlen(url), p, &why) == 0)
		return unit_check(true, url, __FILE__, line);
	unit_check_str(why, "(success)", url, __FILE__, line);
	return false;
}

static void
url_bad(const char *url, const char *why_want, int line)
{
	const char *why = NULL;
	struct s5_proxy p;

	unit_check_int(s5_proxy_parse(url, strlen(url), &p, &why), -1, url,
	    __FILE__, line);
	unit_check_str(why, why_want, url, __FILE__, line);
}

/* Formats p and compares with want. */
static void
url_fmt(const struct s5_proxy *p, const char *want, int line)
{
	char buf[512];

	unit_check_int(s5_proxy_format(p, buf, sizeof(buf)),
	    (long long)strlen(want), want, __FILE__, line);
	unit_check_str(buf, want, want, __FILE__, line);
}

static void
url_schemes(void)
{
	struct s5_proxy p;

	if (url_ok("socks5://127.0.0.1:9050", &p, __LINE__)) {
		CHECK(!p.remote_dns);
		CHECK(!p.has_cred);
		CHECK_INT(p.addr.atyp, S5_ATYP_IPV4);
		CHECK_INT(p.addr.port, 9050);
		url_fmt(&p, "socks5://127.0.0.1:9050", __LINE__);
	}
	if (url_ok("socks5h://proxy.example", &p, __LINE__)) {
		CHECK(p.remote_dns);
		CHECK_INT(p.addr.atyp, S5_ATYP_DOMAIN);
		CHECK_STR(p.addr.u.domain.name, "proxy.example");
		CHECK_INT(p.addr.port, 1080);
		url_fmt(&p, "socks5h://proxy.example:1080", __LINE__);
	}
	if (url_ok("SOCKS5H://h:1", &p, __LINE__))
		CHECK(p.remote_dns);
	if (url_ok("Socks5://h:1", &p, __LINE__))
		CHECK(!p.remote_dns);
	/* Bare HOST[:PORT] means socks5h. */
	if (url_ok("localhost:1081", &p, __LINE__)) {
		CHECK(p.remote_dns);
		CHECK_INT(p.addr.port, 1081);
	}
	if (url_ok("10.0.0.1", &p, __LINE__)) {
		CHECK(p.remote_dns);
		CHECK_INT(p.addr.atyp, S5_ATYP_IPV4);
		CHECK_INT(p.addr.port, 1080);
	}
	if (url_ok("socks5://[::1]:1080", &p, __LINE__)) {
		CHECK_INT(p.addr.atyp, S5_ATYP_IPV6);
		CHECK_INT(p.addr.u.ip6[15], 1);
		url_fmt(&p, "socks5://[::1]:1080", __LINE__);
	}
	if (url_ok("socks5h://[2001:db8::2]", &p, __LINE__)) {
		CHECK_INT(p.addr.port, 1080);
		url_fmt(&p, "socks5h://[2001:db8::2]:1080", __LINE__);
	}
	if (url_ok("socks5://h:2/", &p, __LINE__))
		CHECK_INT(p.addr.port, 2);

#define SCHEMES "unsupported scheme (supported: socks5://, socks5h://, socks4://, " \
	"socks4a://, http://)"
	url_bad("https://h:1", SCHEMES, __LINE__);
	url_bad("socks5a://h:1", SCHEMES, __LINE__);
	url_bad("socks://h:1", SCHEMES, __LINE__);
	url_bad("://h:1", SCHEMES, __LINE__);
#undef SCHEMES
	/* A scheme without "//" once read as a bare IPv6 address. */
	url_bad("socks5h:127.0.0.1:1080", "missing \"//\" after the scheme (socks5h://HOST[:PORT])", __LINE__);
	url_bad("socks5:h", "missing \"//\" after the scheme (socks5h://HOST[:PORT])", __LINE__);
	url_bad("SOCKS5H:[::1]:1080", "missing \"//\" after the scheme (socks5h://HOST[:PORT])", __LINE__);
	/* The other protocols: their default ports, user IDs, names. */
	if (url_ok("http://proxy.example", &p, __LINE__)) {
		CHECK_INT(p.proto, S5_PROTO_HTTP);
		CHECK(p.remote_dns);
		CHECK_INT(p.addr.port, 8080);
		url_fmt(&p, "http://proxy.example:8080", __LINE__);
	}
	if (url_ok("HTTP://u:p%40ss@h:3128", &p, __LINE__)) {
		CHECK_INT(p.proto, S5_PROTO_HTTP);
		CHECK_STR(p.cred.pass, "p@ss");
		url_fmt(&p, "http://u@h:3128", __LINE__);
	}
	if (url_ok("http://onlyuser@h:3128", &p, __LINE__))
		CHECK_INT(p.cred.plen, 0);
	if (url_ok("socks4://bob@10.0.0.1", &p, __LINE__)) {
		CHECK_INT(p.proto, S5_PROTO_SOCKS4);
		CHECK(!p.remote_dns);
		CHECK_INT(p.addr.port, 1080);
		CHECK_STR(p.cred.user, "bob");
		url_fmt(&p, "socks4://bob@10.0.0.1:1080", __LINE__);
	}
	if (url_ok("socks4a://h:9050", &p, __LINE__)) {
		CHECK_INT(p.proto, S5_PROTO_SOCKS4A);
		CHECK(p.remote_dns);
	}
	url_bad("socks4://bob:pw@h", "SOCKS4 takes a user ID, no password", __LINE__);
	url_bad("socks4a://bob:@h", "SOCKS4 takes a user ID, no password", __LINE__);
	url_bad("socks5://bob@h", "empty password (SOCKS5 credentials need USER:PASS, RFC 1929)", __LINE__);
	/* A host that merely starts like a scheme is a host. */
	if (url_ok("socks5h.example:1080", &p, __LINE__))
		CHECK_INT(p.addr.port, 1080);
	if (url_ok("httpproxy:3128", &p, __LINE__))
		CHECK_INT(p.addr.port, 3128);
	/* A bare HOST:PORT whose host has a scheme's name is still one. */
	if (url_ok("socks5:1080", &p, __LINE__))
		CHECK_INT(p.addr.port, 1080);
	if (url_ok("http:8080", &p, __LINE__)) {
		CHECK_INT(p.proto, S5_PROTO_SOCKS5);
		CHECK_INT(p.addr.port, 8080);
	}
	url_bad("socks5h:", "missing \"//\" after the scheme (socks5h://HOST[:PORT])", __LINE__);
	url_bad("socks4://a%00b@h", "a SOCKS4 user ID cannot hold %00", __LINE__);
	url_bad("http://a%3Ab:pw@h", "an HTTP user name cannot hold ':' (%3A)", __LINE__);
	/* SOCKS5 sends the user name on its own: a colon in it is fine. */
	if (url_ok("socks5://a%3Ab:pw@h", &p, __LINE__))
		CHECK_INT((int)p.cred.ulen, 3);
	url_bad("", "empty proxy", __LINE__);
	url_bad("socks5://", "empty host", __LINE__);
	url_bad("socks5:///", "empty host", __LINE__);
	url_bad("socks5://:1080", "empty host", __LINE__);
	url_bad("socks5://h:0", "bad port", __LINE__);
	url_bad("socks5://h:65536", "bad port", __LINE__);
	url_bad("socks5://h:", "bad port", __LINE__);
	url_bad("socks5://h:x", "bad port", __LINE__);
	url_bad("socks5://h:1/path", "junk after host", __LINE__);
	url_bad("socks5://h:1//", "junk after host", __LINE__);
	url_bad("socks5://[::1:1080", "unterminated bracket", __LINE__);
	url_bad("socks5://[::1]x", "junk after ']'", __LINE__);
	/* An IPv6 host goes in brackets: ::1:1080 is the address ::0.1.4.56. */
	url_bad("socks5://::1:1080", "an IPv6 host without brackets (write it [ADDRESS]:PORT)", __LINE__);
	url_bad("::1", "an IPv6 host without brackets (write it [ADDRESS]:PORT)", __LINE__);
	url_bad("socks5://u:p@2001:db8::2", "an IPv6 host without brackets (write it [ADDRESS]:PORT)", __LINE__);
	url_bad("socks5://a b", "bad character in host", __LINE__);
}

static void
url_userinfo(void)
{
	struct s5_proxy p;

	if (url_ok("socks5://alice:s3cret@10.0.0.1:1080", &p, __LINE__)) {
		CHECK(p.has_cred);
		CHECK_INT(p.cred.ulen, 5);
		CHECK_STR(p.cred.user, "alice");
		CHECK_INT(p.cred.plen, 6);
		CHECK_STR(p.cred.pass, "s3cret");
		url_fmt(&p, "socks5://alice@10.0.0.1:1080", __LINE__);
	}
	/* Percent-decoding; ':' in the password, the last '@' ends userinfo. */
	if (url_ok("socks5h://us%40er:p%3Ass:w@rd@[::1]", &p, __LINE__)) {
		CHECK_STR(p.cred.user, "us@er");
		CHECK_STR(p.cred.pass, "p:ss:w@rd");
		CHECK_INT(p.cred.plen, 9);
		CHECK_INT(p.addr.atyp, S5_ATYP_IPV6);
		url_fmt(&p, "socks5h://us%40er@[::1]:1080", __LINE__);
	}
	if (url_ok("u%00v:%ff%2f@h", &p, __LINE__)) {
		CHECK_INT(p.cred.ulen, 3);
		CHECK_MEM(p.cred.user, "u\0v", 3);
		CHECK_INT(p.cred.plen, 2);
		CHECK_MEM(p.cred.pass, "\xff/", 2);
		url_fmt(&p, "socks5h://u%00v@h:1080", __LINE__);
	}
	/* A raw '/' in a password is lenient too. */
	if (url_ok("socks5://u:a/b@h:3", &p, __LINE__))
		CHECK_STR(p.cred.pass, "a/b");

	url_bad("socks5://user@h", "empty password (SOCKS5 credentials need USER:PASS, RFC 1929)", __LINE__);
	url_bad("socks5://user:@h", "empty password (SOCKS5 credentials need USER:PASS, RFC 1929)", __LINE__);
	url_bad("socks5://:pass@h", "empty username", __LINE__);
	url_bad("socks5://@h", "empty username", __LINE__);
	url_bad("socks5://u%4:p@h", "bad percent escape", __LINE__);
	url_bad("socks5://u:p%@h", "bad percent escape", __LINE__);
	url_bad("socks5://u:p%zz@h", "bad percent escape", __LINE__);
	url_bad("socks5://u:p@", "empty host", __LINE__);
}

static void
url_lengths(void)
{
	char url[1024], pct[1024];
	struct s5_proxy p;
	size_t i;

	/* 255 bytes each after decoding is the RFC 1929 limit. */
	memcpy(url, "socks5://", 9);
	memset(url + 9, 'u', 255);
	url[264] = ':';
	memset(url + 265, 'p', 255);
	memcpy(url + 520, "@h", 3);
	if (url_ok(url, &p, __LINE__)) {
		CHECK_INT(p.cred.ulen, 255);
		CHECK_INT(p.cred.plen, 255);
	}
	url[264] = 'u';
	url[265] = ':';
	url_bad(url, "username too long", __LINE__);
	url[264] = ':';
	url[265] = 'p';
	memcpy(url + 520, "p@h", 4);
	url_bad(url, "password too long", __LINE__);

	/* Percent-encoded: 255 decoded bytes from 765 text bytes. */
	for (i = 0; i < 255; i++)
		memcpy(pct + 3 * i, "%41", 3);
	memcpy(pct + 765, ":x@h", 5);
	if (url_ok(pct, &p, __LINE__)) {
		CHECK_INT(p.cred.ulen, 255);
		CHECK_INT(p.cred.user[254], 'A');
	}
}

static void
url_pieces(void)
{
	static const char list[] = "socks5://a:1,socks5h://u:p@b:2,c";
	const char *why = NULL;
	struct s5_proxy p;
	char buf[64];

	/* A piece of a comma-separated list, not NUL-terminated at len. */
	CHECK_INT(s5_proxy_parse(list, 12, &p, &why), 0);
	CHECK_STR(p.addr.u.domain.name, "a");
	CHECK_INT(p.addr.port, 1);
	CHECK(!p.remote_dns);
	CHECK_INT(s5_proxy_parse(list + 13, 17, &p, &why), 0);
	CHECK_STR(p.addr.u.domain.name, "b");
	CHECK_INT(p.addr.port, 2);
	CHECK_STR(p.cred.pass, "p");
	CHECK_INT(s5_proxy_parse(list + 31, 1, &p, &why), 0);
	CHECK_STR(p.addr.u.domain.name, "c");
	CHECK_INT(s5_proxy_parse(list, 0, &p, &why), -1);
	CHECK_INT(s5_proxy_parse("a\0b", 3, &p, &why), -1);
	CHECK_STR(why, "NUL in proxy");

	/* Format never prints the password, and fails cleanly when short. */
	CHECK_INT(s5_proxy_parse("socks5h://u:hunter2@h:9", 23, &p, &why), 0);
	CHECK_INT(s5_proxy_format(&p, buf, sizeof(buf)), 15);
	CHECK_STR(buf, "socks5h://u@h:9");
	CHECK(strstr(buf, "hunter2") == NULL);
	CHECK_INT(s5_proxy_format(&p, buf, 15), -1);
	CHECK_INT(s5_proxy_format(&p, buf, 16), 15);
}

void
test_url(void)
{
	UNIT_RUN(url_schemes);
	UNIT_RUN(url_userinfo);
	UNIT_RUN(url_lengths);
	UNIT_RUN(url_pieces);
}
