/*
 * addr.c: SOCKS5 addresses and their other shapes: sockaddrs, text
 * ("host:port", "[v6]:port"), CIDR ranges and the proxy URLs of CONTRACT.md.
 *
 * Text parsers take C strings (or a pointer and a length for URLs, which come
 * out of comma-separated lists) and report a short lowercase reason in *why.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "defaults.h"
#include "socks5.h"

/* sin6_family, sin6_port, sin6_flowinfo and sin6_addr: what RFC 2133 had. */
#define ADDR_SIN6_LEN_RFC2133	24

#define ADDR_PORT_DIGITS	5	/* "65535" */
#define ADDR_V4_BITS		32
#define ADDR_V6_BITS		128
#define ADDR_V4MAPPED_BITS	96	/* ::ffff:0:0/96, RFC 4291 §2.5.5.2 */
#define ADDR_HEX		"0123456789ABCDEF"

/* ::ffff:a.b.c.d, RFC 4291 §2.5.5.2; on bytes, which have no alignment. */
static bool
addr_is_v4mapped(const uint8_t ip[16])
{
	static const uint8_t prefix[12] = { [10] = 0xFF, [11] = 0xFF };

	return memcmp(ip, prefix, sizeof(prefix)) == 0;
}

static int
addr_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -1;
}

/* --- Building text into a caller's buffer ------------------------------ */

/* Appends while there is room and remembers overflow; text_end() reports it. */
struct text {
	char *buf;
	size_t cap, len;
};

static void
text_put(struct text *t, const char *s, size_t n)
{
	if (t->len + n < t->cap)
		memcpy(t->buf + t->len, s, n);
	t->len += n;
}

static void
text_puts(struct text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

static void
text_put_uint(struct text *t, unsigned v)
{
	char digits[ADDR_PORT_DIGITS * 2];
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && i > 0);
	text_put(t, digits + i, sizeof(digits) - i);
}

/* The length written, NUL excluded, or -1 when it did not fit with its NUL. */
static int
text_end(struct text *t)
{
	if (t->len >= t->cap) {
		if (t->cap > 0)
			t->buf[0] = '\0';
		return -1;
	}
	t->buf[t->len] = '\0';
	return (int)t->len;
}

/* --- Setting and converting -------------------------------------------- */

bool
s5_addr_equal(const struct s5_addr *a, const struct s5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return false;
	switch (a->atyp) {
	case S5_ATYP_IPV4:
		return memcmp(a->u.ip4, b->u.ip4, sizeof(a->u.ip4)) == 0;
	case S5_ATYP_IPV6:
		return memcmp(a->u.ip6, b->u.ip6, sizeof(a->u.ip6)) == 0;
	case S5_ATYP_DOMAIN:
		return a->u.domain.len == b->u.domain.len &&
		    strncasecmp(a->u.domain.name, b->u.domain.name, a->u.domain.len) == 0;
	default:
		return false;
	}
}

void
s5_addr_set_ip4(struct s5_addr *a, const uint8_t ip[4], uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->atyp = S5_ATYP_IPV4;
	memcpy(a->u.ip4, ip, sizeof(a->u.ip4));
	a->port = port;
}

void
s5_addr_set_ip6(struct s5_addr *a, const uint8_t ip[16], uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->atyp = S5_ATYP_IPV6;
	memcpy(a->u.ip6, ip, sizeof(a->u.ip6));
	a->port = port;
}

/*
 * name need not be NUL-terminated at len (it may point into a larger
 * buffer); it must not contain a NUL within len, since RFC 1928 §5 domains
 * have none and ours are kept as C strings.
 */
int
s5_addr_set_domain(struct s5_addr *a, const char *name, size_t len,
    uint16_t port)
{
	if (name == NULL || len == 0 || len > S5_DOMAIN_MAX ||
	    memchr(name, '\0', len) != NULL)
		return -1;
	memset(a, 0, sizeof(*a));
	a->atyp = S5_ATYP_DOMAIN;
	a->u.domain.len = (uint8_t)len;
	memcpy(a->u.domain.name, name, len);
	a->port = port;
	return 0;
}

int
s5_addr_from_sockaddr(struct s5_addr *a, const struct sockaddr *sa,
    size_t salen)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL || salen < sizeof(sa->sa_family))
		return -1;
	switch (sa->sa_family) {
	case AF_INET:
		if (salen < sizeof(*sin))
			return -1;
		sin = (const struct sockaddr_in *)(const void *)sa;
		s5_addr_set_ip4(a, (const uint8_t *)&sin->sin_addr,
		    ntohs(sin->sin_port));
		return 0;
	case AF_INET6:
		/* Linux takes RFC 2133's 24-byte sockaddr_in6 (no scope id);
		 * refusing it here would let a program connect around us. */
		if (salen < ADDR_SIN6_LEN_RFC2133)
			return -1;
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		/* A dual-stack socket's view of an IPv4 peer is IPv4 to us. */
		if (addr_is_v4mapped(sin6->sin6_addr.s6_addr))
			s5_addr_set_ip4(a, sin6->sin6_addr.s6_addr + 12,
			    ntohs(sin6->sin6_port));
		else
			s5_addr_set_ip6(a, sin6->sin6_addr.s6_addr,
			    ntohs(sin6->sin6_port));
		return 0;
	default:
		return -1;
	}
}

int
s5_addr_to_sockaddr(const struct s5_addr *a, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	switch (a->atyp) {
	case S5_ATYP_IPV4:
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->u.ip4, sizeof(a->u.ip4));
		return (int)sizeof(*sin);
	case S5_ATYP_IPV6:
		memset(ss, 0, sizeof(*ss));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->u.ip6, sizeof(a->u.ip6));
		return (int)sizeof(*sin6);
	default:
		return -1;
	}
}

int
s5_addr_to_family_sockaddr(const struct s5_addr *a, int family, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	if (family == AF_INET6 && a->atyp == S5_ATYP_IPV4) {
		memset(ss, 0, sizeof(*ss));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sin6->sin6_addr.s6_addr[12], a->u.ip4, sizeof(a->u.ip4));
		return (int)sizeof(*sin6);
	}
	if ((family == AF_INET && a->atyp != S5_ATYP_IPV4) ||
	    (family == AF_INET6 && a->atyp != S5_ATYP_IPV6))
		return -1;
	return s5_addr_to_sockaddr(a, ss);
}

/* --- Text --------------------------------------------------------------- */

static void
text_put_addr(struct text *t, const struct s5_addr *a)
{
	char ip[INET6_ADDRSTRLEN];

	switch (a->atyp) {
	case S5_ATYP_IPV4:
		/* Dotted quad by hand: glibc's inet_ntop() goes through
		 * sprintf(), a cost every tunnelled connect paid. */
		for (size_t i = 0; i < 4; i++) {
			if (i > 0)
				text_puts(t, ".");
			text_put_uint(t, a->u.ip4[i]);
		}
		break;
	case S5_ATYP_IPV6:
		inet_ntop(AF_INET6, a->u.ip6, ip, sizeof(ip));
		text_puts(t, "[");
		text_puts(t, ip);
		text_puts(t, "]");
		break;
	case S5_ATYP_DOMAIN:
		text_put(t, a->u.domain.name, a->u.domain.len);
		break;
	default:
		text_puts(t, "?");
		break;
	}
	text_puts(t, ":");
	text_put_uint(t, a->port);
}

int
s5_addr_format(const struct s5_addr *a, char *buf, size_t cap)
{
	struct text t = { buf, cap, 0 };

	text_put_addr(&t, a);
	return text_end(&t);
}

/*
 * Unlike s5_addr_from_sockaddr this keeps a v4-mapped address as the IPv6
 * it is, since a log should show what the socket really holds.
 */
int
s5_sockaddr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
	const struct sockaddr_in6 *sin6;
	struct text t = { buf, cap, 0 };
	struct s5_addr a;

	if (sa == NULL) {
		text_puts(&t, "none");
		return text_end(&t);
	}
	switch (sa->sa_family) {
	case AF_INET:
		s5_addr_from_sockaddr(&a, sa, sizeof(struct sockaddr_in));
		text_put_addr(&t, &a);
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		s5_addr_set_ip6(&a, sin6->sin6_addr.s6_addr,
		    ntohs(sin6->sin6_port));
		text_put_addr(&t, &a);
		break;
	case AF_UNIX:
		text_puts(&t, "unix");
		break;
	default:
		text_puts(&t, "family ");
		text_put_uint(&t, sa->sa_family);
		break;
	}
	return text_end(&t);
}

/* Decimal only, 0..65535: no sign, no spaces, no hex. */
static int
addr_parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > ADDR_PORT_DIGITS)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > UINT16_MAX)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Parses an IPv6 literal of n bytes (no brackets) into ip. */
static int
addr_parse_ip6(const char *s, size_t n, uint8_t ip[16])
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, ip) == 1 ? 0 : -1;
}

/*
 * Host names are taken as given (the resolver, local or the proxy's, is the
 * judge), except for bytes that only ever come from a typo or from a URL
 * piece that was not split off: controls, spaces, and "/@[]".
 */
static bool
addr_host_char_ok(unsigned char ch)
{
	return ch > ' ' && ch != 0x7F && ch != '/' && ch != '@' && ch != '[' &&
	    ch != ']';
}

int
s5_addr_parse(const char *text, struct s5_addr *a, uint16_t default_port,
    const char **why)
{
	char host[S5_DOMAIN_MAX + 1];
	const char *colon, *end;
	uint8_t ip[16];
	uint16_t port = default_port;
	size_t hlen, i;

	if (text == NULL || text[0] == '\0')
		return addr_fail(why, "empty address");

	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL)
			return addr_fail(why, "unterminated bracket");
		if (end[1] == ':') {
			if (addr_parse_port(end + 2, strlen(end + 2), &port) < 0)
				return addr_fail(why, "bad port");
		} else if (end[1] != '\0') {
			return addr_fail(why, "junk after ']'");
		}
		if (end == text + 1)
			return addr_fail(why, "empty host");
		if (addr_parse_ip6(text + 1, (size_t)(end - text - 1), ip) < 0)
			return addr_fail(why, "bad IPv6 address");
		s5_addr_set_ip6(a, ip, port);
		return 0;
	}

	colon = strchr(text, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		/* Two colons or more: a bare IPv6 literal, which takes no port
		 * ("127.0.0.1:1080:1" is a typo, not an IPv6 address). */
		if (addr_parse_ip6(text, strlen(text), ip) < 0)
			return addr_fail(why, "more than one ':' and no IPv6 address "
			    "(one goes in brackets: [::1]:1080)");
		s5_addr_set_ip6(a, ip, port);
		return 0;
	}
	if (colon != NULL) {
		hlen = (size_t)(colon - text);
		if (addr_parse_port(colon + 1, strlen(colon + 1), &port) < 0)
			return addr_fail(why, "bad port");
	} else {
		hlen = strlen(text);
	}
	if (hlen == 0)
		return addr_fail(why, "empty host");
	if (hlen > S5_DOMAIN_MAX)
		return addr_fail(why, "host name too long");
	for (i = 0; i < hlen; i++)
		if (!addr_host_char_ok((unsigned char)text[i]))
			return addr_fail(why, "bad character in host");
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, ip) == 1)
		s5_addr_set_ip4(a, ip, port);
	else
		s5_addr_set_domain(a, host, hlen, port);
	return 0;
}

/* --- CIDR --------------------------------------------------------------- */

static void
cidr_mask(uint8_t *net, size_t nbytes, unsigned bits)
{
	size_t i;

	for (i = 0; i < nbytes; i++) {
		if (bits >= 8)
			bits -= 8;
		else {
			net[i] &= (uint8_t)(0xFF << (8 - bits));
			bits = 0;
		}
	}
}

int
s5_cidr_parse(const char *text, struct s5_cidr *c, const char **why)
{
	char tmp[INET6_ADDRSTRLEN];
	const char *slash;
	unsigned bits, max, v;
	size_t alen, i;

	if (text == NULL || text[0] == '\0')
		return addr_fail(why, "empty address");
	slash = strchr(text, '/');
	alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(tmp))
		return addr_fail(why, "bad address");
	memcpy(tmp, text, alen);
	tmp[alen] = '\0';

	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, tmp, c->net) == 1) {
		max = ADDR_V4_BITS;
	} else if (inet_pton(AF_INET6, tmp, c->net) == 1) {
		c->v6 = 1;
		max = ADDR_V6_BITS;
	} else {
		return addr_fail(why, "bad address");
	}

	bits = max;
	if (slash != NULL) {
		/* Decimal, at most three digits: no sign, no netmask form. */
		if (slash[1] == '\0' || strlen(slash + 1) > 3)
			return addr_fail(why, "bad prefix length");
		for (v = 0, i = 1; slash[i] != '\0'; i++) {
			if (slash[i] < '0' || slash[i] > '9')
				return addr_fail(why, "bad prefix length");
			v = v * 10 + (unsigned)(slash[i] - '0');
		}
		if (v > max)
			return addr_fail(why, "bad prefix length");
		bits = v;
	}

	/*
	 * A range inside ::ffff:0:0/96 names IPv4 hosts; keep it as IPv4 so it
	 * matches plain IPv4 peers as well as v4-mapped ones.
	 */
	if (c->v6 && bits >= ADDR_V4MAPPED_BITS && addr_is_v4mapped(c->net)) {
		memmove(c->net, c->net + 12, 4);
		memset(c->net + 4, 0, sizeof(c->net) - 4);
		c->v6 = 0;
		bits -= ADDR_V6_BITS - ADDR_V4_BITS;
	}
	c->bits = (uint8_t)bits;
	cidr_mask(c->net, c->v6 ? 16 : 4, bits);
	return 0;
}

static bool
cidr_match_ip(const struct s5_cidr *c, const uint8_t *ip, bool v6)
{
	size_t full = c->bits / 8;
	unsigned rem = c->bits % 8;

	if ((bool)c->v6 != v6)
		return false;
	if (memcmp(ip, c->net, full) != 0)
		return false;
	return rem == 0 ||
	    (ip[full] & (uint8_t)(0xFF << (8 - rem))) == c->net[full];
}

bool
s5_cidr_match_addr(const struct s5_cidr *c, const struct s5_addr *a)
{
	switch (a->atyp) {
	case S5_ATYP_IPV4:
		return cidr_match_ip(c, a->u.ip4, false);
	case S5_ATYP_IPV6:
		if (addr_is_v4mapped(a->u.ip6))
			return cidr_match_ip(c, a->u.ip6 + 12, false);
		return cidr_match_ip(c, a->u.ip6, true);
	default:
		/* A name is not an address; only its resolution can match. */
		return false;
	}
}

bool
s5_cidr_match(const struct s5_cidr *c, const struct sockaddr *sa)
{
	struct s5_addr a;
	size_t salen;

	if (sa == NULL)
		return false;
	salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (s5_addr_from_sockaddr(&a, sa, salen) < 0)
		return false;
	return s5_cidr_match_addr(c, &a);
}

/* --- Proxy URLs (CONTRACT.md) ------------------------------------------ */

static int
url_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* RFC 3986 §2.1 percent-decoding into out (1..S5_CRED_MAX bytes). */
static int
url_decode(const char *s, size_t n, char *out, uint8_t *outlen)
{
	size_t i, len = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (len == S5_CRED_MAX)
			return -1;
		if (s[i] != '%') {
			out[len++] = s[i];
			continue;
		}
		if (n - i < 3 || (hi = url_hex(s[i + 1])) < 0 ||
		    (lo = url_hex(s[i + 2])) < 0)
			return -2;
		out[len++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[len] = '\0';
	*outlen = (uint8_t)len;
	return 0;
}

static bool
url_scheme_is(const char *s, size_t n, const char *scheme)
{
	size_t i;

	if (n != strlen(scheme))
		return false;
	/* RFC 3986 §3.1: schemes are case-insensitive. */
	for (i = 0; i < n; i++) {
		char ch = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];

		if (ch != scheme[i])
			return false;
	}
	return true;
}

/* USER[:PASS] for a hop of protocol proto: SOCKS5 needs both (RFC 1929
 * has PLEN >= 1, so "user@host" could never be sent as given: refused here
 * rather than by every handshake), SOCKS4 a user ID alone, HTTP either. */
static int
url_parse_userinfo(const char *s, size_t n, uint8_t proto, struct s5_cred *cred,
    const char **why)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon != NULL ? (size_t)(colon - s) : n;
	int r;

	if (ulen == 0)
		return addr_fail(why, "empty username");
	if (colon != NULL && (proto == S5_PROTO_SOCKS4 || proto == S5_PROTO_SOCKS4A))
		return addr_fail(why, "SOCKS4 takes a user ID, no password");
	if (proto == S5_PROTO_SOCKS5 && (colon == NULL || colon + 1 == s + n))
		return addr_fail(why, "empty password (SOCKS5 credentials need "
		    "USER:PASS, RFC 1929)");
	if ((r = url_decode(s, ulen, cred->user, &cred->ulen)) < 0)
		return addr_fail(why, r == -2 ? "bad percent escape" :
		    "username too long");
	/* SOCKS4 ends its user ID with a NUL: one inside cannot be sent. */
	if ((proto == S5_PROTO_SOCKS4 || proto == S5_PROTO_SOCKS4A) &&
	    memchr(cred->user, '\0', cred->ulen) != NULL)
		return addr_fail(why, "a SOCKS4 user ID cannot hold %00");
	/* Basic sends "user:pass": the proxy would split it at our %3A
	 * (RFC 7617 §2: no ':' in the user-id). */
	if (proto == S5_PROTO_HTTP && memchr(cred->user, ':', cred->ulen) != NULL)
		return addr_fail(why, "an HTTP user name cannot hold ':' (%3A)");
	if (colon != NULL && (r = url_decode(colon + 1, n - ulen - 1, cred->pass,
	    &cred->plen)) < 0)
		return addr_fail(why, r == -2 ? "bad percent escape" :
		    "password too long");
	return 0;
}

/* What a proxy URL may start with, said when another scheme is given. */
#define ADDR_SCHEMES_WHY "unsupported scheme (supported: socks5://, socks5h://, " \
	"socks4://, socks4a://, http://)"

/* "socks5h:HOST..." and the like: a scheme people write, then ':' and
 * something other than a port, with no "//". */
static bool
url_scheme_without_slashes(const char *s, size_t n)
{
	static const char *const schemes[] = {
		"socks5h", "socks5", "socks4a", "socks4", "socks", "http", "https",
	};
	size_t i, k, d;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		k = strlen(schemes[i]);
		if (n <= k || s[k] != ':' || !url_scheme_is(s, k, schemes[i]))
			continue;
		/* "http:8080" is a host named http and its port. */
		for (d = k + 1; d < n && s[d] >= '0' && s[d] <= '9'; d++)
			;
		return d < n || d == k + 1;
	}
	return false;
}

int
s5_proxy_parse(const char *url, size_t len, struct s5_proxy *p, const char **why)
{
	static const struct {
		const char *name;
		uint8_t proto;
		bool remote_dns;
		uint16_t port;
	} schemes[] = {
		{ "socks5", S5_PROTO_SOCKS5, false, S5_DEFAULT_PORT },
		{ "socks5h", S5_PROTO_SOCKS5, true, S5_DEFAULT_PORT },
		{ "socks4", S5_PROTO_SOCKS4, false, S5_DEFAULT_PORT },
		{ "socks4a", S5_PROTO_SOCKS4A, true, S5_DEFAULT_PORT },
		{ "http", S5_PROTO_HTTP, true, S5_HTTP_DEFAULT_PORT },
	};
	char hostport[S5_ADDR_TEXT_MAX];
	const char *s = url, *end = url + len, *at, *q;
	uint16_t port = S5_DEFAULT_PORT;
	size_t i;

	if (url == NULL || len == 0)
		return addr_fail(why, "empty proxy");
	if (memchr(url, '\0', len) != NULL)
		return addr_fail(why, "NUL in proxy");
	memset(p, 0, sizeof(*p));
	p->remote_dns = true;

	/* An optional "scheme://"; a bare HOST[:PORT] is socks5h (curl's view). */
	for (q = s; q + 3 <= end; q++)
		if (q[0] == ':' && q[1] == '/' && q[2] == '/')
			break;
	if (q + 3 <= end) {
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (url_scheme_is(s, (size_t)(q - s), schemes[i].name))
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0]))
			return addr_fail(why, ADDR_SCHEMES_WHY);
		p->proto = schemes[i].proto;
		p->remote_dns = schemes[i].remote_dns;
		port = schemes[i].port;
		s = q + 3;
	} else if (url_scheme_without_slashes(s, (size_t)(end - s))) {
		/* "socks5h:127.0.0.1:1080" would parse as an IPv6 address. */
		return addr_fail(why, "missing \"//\" after the scheme "
		    "(socks5h://HOST[:PORT])");
	}

	/*
	 * USER[:PASS]@ ends at the last '@': RFC 3986 wants '@' in a password
	 * percent-encoded, but people paste raw ones and the host has none.
	 */
	for (at = NULL, q = s; q < end; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		if (url_parse_userinfo(s, (size_t)(at - s), p->proto, &p->cred, why) < 0)
			return -1;
		p->has_cred = true;
		s = at + 1;
	}

	/* One trailing '/' is how URLs are often written; a path is not ours. */
	if (s < end && end[-1] == '/')
		end--;
	if (s == end)
		return addr_fail(why, "empty host");
	if ((size_t)(end - s) >= sizeof(hostport))
		return addr_fail(why, "host name too long");
	for (i = 0; s + i < end; i++)
		if (s[i] == '/')
			return addr_fail(why, "junk after host");
	memcpy(hostport, s, (size_t)(end - s));
	hostport[end - s] = '\0';
	if (s5_addr_parse(hostport, &p->addr, port, why) < 0)
		return -1;
	/* A URL's IPv6 host is in brackets: "::1:1080" would be ::0.1.4.56
	 * port 1080 here, not ::1 port 1080 as its writer meant. */
	if (p->addr.atyp == S5_ATYP_IPV6 && hostport[0] != '[')
		return addr_fail(why, "an IPv6 host without brackets "
		    "(write it [ADDRESS]:PORT)");
	/* "1080" or "127.1" is no name: getaddrinfo() reads it as an address
	 * (0.0.4.56, 127.0.0.1), which a user meaning a port never wants. */
	if (p->addr.atyp == S5_ATYP_DOMAIN) {
		struct in_addr in;

		if (inet_aton(p->addr.u.domain.name, &in) != 0)
			return addr_fail(why, "a host that is a number but no dotted quad "
			    "(a port on this host: 127.0.0.1:PORT)");
	}
	/* Port 0 is "any port" to bind(), but nothing to connect() to. */
	if (p->addr.port == 0)
		return addr_fail(why, "bad port");
	return 0;
}

/* A '|' at p (inside text, end) starts another alternative: when no '@'
 * is in the hop (no credentials to hold one), or when a scheme follows it
 * ("socks5h://"); else it is part of a password. */
static bool
hop_splits_at(const char *text, const char *end, const char *p)
{
	const char *q = p + 1;

	if (memchr(text, '@', (size_t)(end - text)) == NULL)
		return true;
	while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
	    (*q >= '0' && *q <= '9')))
		q++;
	return q > p + 1 && end - q >= 3 && memcmp(q, "://", 3) == 0;
}

int
s5_hop_parse(const char *text, size_t len, struct s5_proxy *alts, size_t cap,
    size_t *n, size_t *bad, const char **why)
{
	const char *p = text, *end = text + len, *e, *b;

	*n = 0;
	*bad = 0;
	for (;;) {
		for (e = p; e < end && (*e != '|' || !hop_splits_at(text, end, e)); e++)
			;
		if (*n == cap) {
			*bad = cap + 1;
			*why = "too many alternatives";
			return -1;
		}
		*bad = *n + 1;
		/* Blanks around '|' are no part of a URL. */
		for (b = e; p < b && (*p == ' ' || *p == '\t'); p++)
			;
		while (b > p && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (s5_proxy_parse(p, (size_t)(b - p), &alts[*n], why) != 0)
			return -1;
		if (*n > 0 && (alts[*n].proto != alts[0].proto ||
		    alts[*n].remote_dns != alts[0].remote_dns)) {
			*why = "alternatives of one hop must share a scheme";
			return -1;
		}
		(*n)++;
		if (e == end)
			break;
		p = e + 1;
	}
	*bad = 0;
	return 0;
}

/* RFC 3986 §2.3 unreserved characters pass; the rest is percent-encoded. */
static void
text_put_encoded(struct text *t, const char *s, size_t n)
{
	char esc[3] = { '%', 0, 0 };
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~') {
			text_put(t, s + i, 1);
			continue;
		}
		esc[1] = ADDR_HEX[ch >> 4];
		esc[2] = ADDR_HEX[ch & 0xF];
		text_put(t, esc, sizeof(esc));
	}
}

int
s5_proxy_format(const struct s5_proxy *p, char *buf, size_t cap)
{
	struct text t = { buf, cap, 0 };

	text_puts(&t, s5_proto_scheme(p->proto, p->remote_dns));
	text_puts(&t, "://");
	if (p->has_cred) {
		/* Never the password: this string goes to logs. */
		text_put_encoded(&t, p->cred.user, p->cred.ulen);
		text_puts(&t, "@");
	}
	text_put_addr(&t, &p->addr);
	return text_end(&t);
}

bool
s5_list_next(const char **s, const char **item, size_t *len)
{
	const char *p = *s, *e;

	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return false;
	e = p;
	while (*e != '\0' && *e != ',')
		e++;
	*s = e;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*item = p;
	*len = (size_t)(e - p);
	return true;
}

bool
s5_name_match(const char *pattern, const char *name, size_t len)
{
	size_t plen = strlen(pattern);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (pattern[0] == '.')
		return (len == plen - 1 && strncasecmp(name, pattern + 1, len) == 0) ||
		    (len > plen && strncasecmp(name + len - plen, pattern, plen) == 0);
	return len == plen && strncasecmp(name, pattern, len) == 0;
}

bool
s5_name_normalize(const char *text, char *out, size_t cap)
{
	size_t len = strlen(text), i, label = 0;
	bool digits = true;

	if (len > 0 && text[len - 1] == '.')
		len--;
	if (len == 0 || len >= cap || len > S5_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char ch = text[i];
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		bool digit = ch >= '0' && ch <= '9';

		if (ch == '.') {
			if (i > 0 && label == 0)
				return false;	/* an empty label */
			label = 0;
			digits = true;
			out[i] = '.';
			continue;
		}
		if (!alpha && !digit && ch != '-' && ch != '_')
			return false;
		if (!digit)
			digits = false;
		label++;
		out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	out[len] = '\0';
	return label > 0 && !digits;
}
