/*
 * wire.c: RFC 1928 and RFC 1929 messages, parsed and encoded on byte buffers.
 *
 * Every parser follows the conventions of socks5.h: 0 and *used when a whole
 * message is there, S5_NEED_MORE on a valid prefix, -(reply code) as soon as a
 * byte proves the message wrong. Checks happen in wire order, so a malformed
 * byte is reported the moment it arrives and never after a later one.
 */
#include <errno.h>
#include <string.h>

#include "socks5.h"

/* Bytes before the address in a request or reply: VER CMD|REP RSV ATYP. */
#define WIRE_MSG_HEAD	4
/* Bytes before the address in a UDP request header: RSV RSV FRAG ATYP. */
#define WIRE_UDP_HEAD	4
#define WIRE_PORT_LEN	2

static bool
wire_atyp_known(uint8_t atyp)
{
	return atyp == S5_ATYP_IPV4 || atyp == S5_ATYP_IPV6 ||
	    atyp == S5_ATYP_DOMAIN;
}

/*
 * DST.ADDR DST.PORT starting at p[off], whose ATYP is p[off - 1] and has
 * already been checked. RFC 1928 §5: a domain is one length octet and that
 * many octets "with no terminating NUL octet". A length of 0 or a NUL inside
 * cannot name a host, so both are an address type we do not support.
 */
static int
wire_parse_addr(const uint8_t *p, size_t n, size_t off, struct s5_addr *a,
    size_t *end)
{
	uint8_t atyp = p[off - 1];
	size_t alen, have;

	switch (atyp) {
	case S5_ATYP_IPV4:
		alen = sizeof(a->u.ip4);
		break;
	case S5_ATYP_IPV6:
		alen = sizeof(a->u.ip6);
		break;
	default:
		if (n <= off)
			return S5_NEED_MORE;
		/* A known type with a malformed name: CONTRACT.md keeps 08 for
		 * unknown types, so this is 01. */
		if (p[off] == 0)
			return -S5_REP_GENERAL_FAILURE;
		have = n - off - 1 < p[off] ? n - off - 1 : p[off];
		if (memchr(p + off + 1, 0, have) != NULL)
			return -S5_REP_GENERAL_FAILURE;
		alen = 1 + (size_t)p[off];
		break;
	}
	if (n < off + alen + WIRE_PORT_LEN)
		return S5_NEED_MORE;

	memset(a, 0, sizeof(*a));
	a->atyp = atyp;
	if (atyp == S5_ATYP_DOMAIN) {
		a->u.domain.len = p[off];
		memcpy(a->u.domain.name, p + off + 1, p[off]);
	} else {
		memcpy(a->atyp == S5_ATYP_IPV4 ? a->u.ip4 : a->u.ip6, p + off,
		    alen);
	}
	a->port = (uint16_t)(p[off + alen] << 8 | p[off + alen + 1]);
	*end = off + alen + WIRE_PORT_LEN;
	return 0;
}

/* ATYP DST.ADDR DST.PORT at buf[off]; the new offset, or -1. */
static int
wire_encode_addr(uint8_t *buf, size_t cap, size_t off, const struct s5_addr *a)
{
	size_t wl = s5_addr_wire_len(a);

	if (wl == 0 || cap < off + 1 + wl)
		return -1;
	buf[off++] = a->atyp;
	switch (a->atyp) {
	case S5_ATYP_IPV4:
		memcpy(buf + off, a->u.ip4, sizeof(a->u.ip4));
		off += sizeof(a->u.ip4);
		break;
	case S5_ATYP_IPV6:
		memcpy(buf + off, a->u.ip6, sizeof(a->u.ip6));
		off += sizeof(a->u.ip6);
		break;
	default:
		buf[off++] = a->u.domain.len;
		memcpy(buf + off, a->u.domain.name, a->u.domain.len);
		off += a->u.domain.len;
		break;
	}
	buf[off++] = (uint8_t)(a->port >> 8);
	buf[off++] = (uint8_t)(a->port & 0xFF);
	return (int)off;
}

size_t
s5_addr_wire_len(const struct s5_addr *a)
{
	switch (a->atyp) {
	case S5_ATYP_IPV4:
		return sizeof(a->u.ip4) + WIRE_PORT_LEN;
	case S5_ATYP_IPV6:
		return sizeof(a->u.ip6) + WIRE_PORT_LEN;
	case S5_ATYP_DOMAIN:
		/* A domain of length 0 cannot go on the wire (RFC 1928 §5). */
		if (a->u.domain.len == 0)
			return 0;
		return 1 + (size_t)a->u.domain.len + WIRE_PORT_LEN;
	default:
		return 0;
	}
}

/* --- Method negotiation (RFC 1928 §3) ---------------------------------- */

int
s5_parse_greeting(const uint8_t *p, size_t n, struct s5_greeting *out,
    size_t *used)
{
	if (n < 1)
		return S5_NEED_MORE;
	if (p[0] != S5_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2)
		return S5_NEED_MORE;
	/* RFC 1928 §3: NMETHODS is 1 to 255; a client offering nothing is broken. */
	if (p[1] == 0)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2 + (size_t)p[1])
		return S5_NEED_MORE;
	out->nmethods = p[1];
	memcpy(out->methods, p + 2, p[1]);
	*used = 2 + (size_t)p[1];
	return 0;
}

int
s5_encode_greeting(uint8_t *buf, size_t cap, const uint8_t *methods,
    size_t nmethods)
{
	/* RFC 1928 §3: NMETHODS is one octet, and at least one is offered. */
	if (nmethods == 0 || nmethods > UINT8_MAX || cap < 2 + nmethods)
		return -1;
	buf[0] = S5_VERSION;
	buf[1] = (uint8_t)nmethods;
	memcpy(buf + 2, methods, nmethods);
	return (int)(2 + nmethods);
}

static bool
wire_offered(const struct s5_greeting *g, uint8_t method)
{
	return memchr(g->methods, method, g->nmethods) != NULL;
}

uint8_t
s5_choose_method(const struct s5_greeting *g, bool require_userpass)
{
	/*
	 * With users configured only RFC 1929 will do. Without, offer NONE
	 * only: choosing USERPASS would ask for credentials we cannot check.
	 * A _STREAM twin only beside its plain method: a client offering it
	 * alone is not one of ours.
	 */
	uint8_t m = require_userpass ? S5_METHOD_USERPASS : S5_METHOD_NONE;
	uint8_t twin = require_userpass ? S5_METHOD_USERPASS_STREAM : S5_METHOD_NONE_STREAM;

	if (!wire_offered(g, m))
		return S5_METHOD_UNACCEPTABLE;
	return wire_offered(g, twin) ? twin : m;
}

int
s5_parse_method_reply(const uint8_t *p, size_t n, uint8_t *method, size_t *used)
{
	if (n < 1)
		return S5_NEED_MORE;
	if (p[0] != S5_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2)
		return S5_NEED_MORE;
	*method = p[1];
	*used = 2;
	return 0;
}

int
s5_encode_method_reply(uint8_t *buf, size_t cap, uint8_t method)
{
	if (cap < 2)
		return -1;
	buf[0] = S5_VERSION;
	buf[1] = method;
	return 2;
}

/* --- Username/password (RFC 1929) -------------------------------------- */

int
s5_parse_auth(const uint8_t *p, size_t n, struct s5_cred *out, size_t *used)
{
	size_t ulen, plen;

	if (n < 1)
		return S5_NEED_MORE;
	if (p[0] != S5_AUTH_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2)
		return S5_NEED_MORE;
	ulen = p[1];
	if (n < 2 + ulen + 1)
		return S5_NEED_MORE;
	plen = p[2 + ulen];
	if (n < 3 + ulen + plen)
		return S5_NEED_MORE;

	/*
	 * ULEN or PLEN of 0 is outside RFC 1929's 1..255 but still frames the
	 * message exactly; the caller fails authentication instead of the parse.
	 */
	out->ulen = (uint8_t)ulen;
	memcpy(out->user, p + 2, ulen);
	out->user[ulen] = '\0';
	out->plen = (uint8_t)plen;
	memcpy(out->pass, p + 3 + ulen, plen);
	out->pass[plen] = '\0';
	*used = 3 + ulen + plen;
	return 0;
}

int
s5_encode_auth(uint8_t *buf, size_t cap, const struct s5_cred *cred)
{
	size_t need = 3 + (size_t)cred->ulen + cred->plen;

	/* RFC 1929: ULEN and PLEN are 1..255; we never send what we reject. */
	if (cred->ulen == 0 || cred->plen == 0 || cap < need)
		return -1;
	buf[0] = S5_AUTH_VERSION;
	buf[1] = cred->ulen;
	memcpy(buf + 2, cred->user, cred->ulen);
	buf[2 + cred->ulen] = cred->plen;
	memcpy(buf + 3 + cred->ulen, cred->pass, cred->plen);
	return (int)need;
}

int
s5_parse_auth_reply(const uint8_t *p, size_t n, uint8_t *status, size_t *used)
{
	if (n < 1)
		return S5_NEED_MORE;
	/* RFC 1929 says VER 1; some servers (old microsocks) answer 5. */
	if (p[0] != S5_AUTH_VERSION && p[0] != S5_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2)
		return S5_NEED_MORE;
	*status = p[1];
	*used = 2;
	return 0;
}

int
s5_encode_auth_reply(uint8_t *buf, size_t cap, uint8_t status)
{
	if (cap < 2)
		return -1;
	buf[0] = S5_AUTH_VERSION;
	buf[1] = status;
	return 2;
}

/*
 * The loop runs over the longer input whatever the bytes are, and the result
 * folds every difference in with OR, so the time taken tells an attacker the
 * lengths at most, never how long a prefix matched.
 */
bool
s5_cred_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	const volatile unsigned char *va = (const volatile unsigned char *)a;
	const volatile unsigned char *vb = (const volatile unsigned char *)b;
	size_t max = alen > blen ? alen : blen;
	size_t diff = alen ^ blen;
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < max; i++) {
		unsigned char x = i < alen ? va[i] : 0;
		unsigned char y = i < blen ? vb[i] : 0;

		acc |= (unsigned char)(x ^ y);
	}
	return (diff | acc) == 0;
}

/* --- Requests and replies (RFC 1928 §4, §6) ---------------------------- */

int
s5_parse_request(const uint8_t *p, size_t n, struct s5_request *out,
    size_t *used)
{
	if (n < 1)
		return S5_NEED_MORE;
	if (p[0] != S5_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	if (n < 2)
		return S5_NEED_MORE;
	if (p[1] != S5_CMD_CONNECT && p[1] != S5_CMD_BIND &&
	    p[1] != S5_CMD_UDP_ASSOCIATE)
		return -S5_REP_CMD_NOT_SUPPORTED;
	/* RSV (p[2]) is ignored: clients in the wild send garbage there. */
	if (n < WIRE_MSG_HEAD)
		return S5_NEED_MORE;
	if (!wire_atyp_known(p[3]))
		return -S5_REP_ATYP_NOT_SUPPORTED;
	out->cmd = p[1];
	return wire_parse_addr(p, n, WIRE_MSG_HEAD, &out->dst, used);
}

int
s5_encode_request(uint8_t *buf, size_t cap, const struct s5_request *req)
{
	if (cap < WIRE_MSG_HEAD)
		return -1;
	buf[0] = S5_VERSION;
	buf[1] = req->cmd;
	buf[2] = 0;
	return wire_encode_addr(buf, cap, WIRE_MSG_HEAD - 1, &req->dst);
}

int
s5_parse_reply(const uint8_t *p, size_t n, struct s5_reply *out, size_t *used)
{
	if (n < 1)
		return S5_NEED_MORE;
	if (p[0] != S5_VERSION)
		return -S5_REP_GENERAL_FAILURE;
	/* Any REP is passed up: unknown codes are failures the caller maps. */
	if (n < WIRE_MSG_HEAD)
		return S5_NEED_MORE;
	if (!wire_atyp_known(p[3]))
		return -S5_REP_ATYP_NOT_SUPPORTED;
	out->rep = p[1];
	return wire_parse_addr(p, n, WIRE_MSG_HEAD, &out->bnd, used);
}

int
s5_encode_reply(uint8_t *buf, size_t cap, const struct s5_reply *rep)
{
	if (cap < WIRE_MSG_HEAD)
		return -1;
	buf[0] = S5_VERSION;
	buf[1] = rep->rep;
	buf[2] = 0;
	return wire_encode_addr(buf, cap, WIRE_MSG_HEAD - 1, &rep->bnd);
}

/* --- UDP request header (RFC 1928 §7) ---------------------------------- */

int
s5_parse_udp_header(const uint8_t *p, size_t n, struct s5_udp_header *out,
    size_t *used)
{
	size_t i;

	/* RFC 1928 §7: RSV is X'0000'; anything else is not our header. */
	for (i = 0; i < 2; i++) {
		if (n <= i)
			return S5_NEED_MORE;
		if (p[i] != 0)
			return -S5_REP_GENERAL_FAILURE;
	}
	/* FRAG goes up as is: dropping FRAG != 0 is the relay's decision. */
	if (n < WIRE_UDP_HEAD)
		return S5_NEED_MORE;
	if (!wire_atyp_known(p[3]))
		return -S5_REP_ATYP_NOT_SUPPORTED;
	out->frag = p[2];
	return wire_parse_addr(p, n, WIRE_UDP_HEAD, &out->addr, used);
}

int
s5_encode_udp_header(uint8_t *buf, size_t cap, const struct s5_udp_header *h)
{
	if (cap < WIRE_UDP_HEAD)
		return -1;
	buf[0] = 0;
	buf[1] = 0;
	buf[2] = h->frag;
	return wire_encode_addr(buf, cap, WIRE_UDP_HEAD - 1, &h->addr);
}

/* --- Reply codes and errno --------------------------------------------- */

/* server-anchors.md §2.5: what the best servers answer for each failure. */
uint8_t
s5_rep_from_errno(int err)
{
	switch (err) {
	case 0:
		return S5_REP_SUCCEEDED;
	case ECONNREFUSED:
	case ECONNRESET:
		return S5_REP_CONN_REFUSED;
	case ENETUNREACH:
	case ENETDOWN:
		return S5_REP_NET_UNREACHABLE;
	case EHOSTUNREACH:
	case EHOSTDOWN:
		return S5_REP_HOST_UNREACHABLE;
	case ETIMEDOUT:
		return S5_REP_TTL_EXPIRED;
	case EACCES:
	case EPERM:
		return S5_REP_NOT_ALLOWED;
	case EAFNOSUPPORT:
	case EPROTONOSUPPORT:
		return S5_REP_ATYP_NOT_SUPPORTED;
	default:
		/* EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL, ... */
		return S5_REP_GENERAL_FAILURE;
	}
}

/*
 * CONTRACT.md: the errno a direct connect() would have given. Codes with no
 * direct counterpart (general failure, unsupported command or address type,
 * anything unknown) are a refusal.
 */
int
s5_rep_to_errno(uint8_t rep)
{
	switch (rep) {
	case S5_REP_NOT_ALLOWED:
		return EACCES;
	case S5_REP_NET_UNREACHABLE:
		return ENETUNREACH;
	case S5_REP_HOST_UNREACHABLE:
		return EHOSTUNREACH;
	case S5_REP_TTL_EXPIRED:
		return ETIMEDOUT;
	default:
		return ECONNREFUSED;
	}
}

const char *
s5_rep_str(uint8_t rep)
{
	/* RFC 1928 §6, in its words. */
	static const char *const names[] = {
		[S5_REP_SUCCEEDED] = "succeeded",
		[S5_REP_GENERAL_FAILURE] = "general SOCKS server failure",
		[S5_REP_NOT_ALLOWED] = "connection not allowed by ruleset",
		[S5_REP_NET_UNREACHABLE] = "network unreachable",
		[S5_REP_HOST_UNREACHABLE] = "host unreachable",
		[S5_REP_CONN_REFUSED] = "connection refused",
		[S5_REP_TTL_EXPIRED] = "TTL expired",
		[S5_REP_CMD_NOT_SUPPORTED] = "command not supported",
		[S5_REP_ATYP_NOT_SUPPORTED] = "address type not supported",
	};

	if (rep < sizeof(names) / sizeof(names[0]))
		return names[rep];
	return "unknown reply code";
}
