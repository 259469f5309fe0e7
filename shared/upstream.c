/*
 * upstream.c: the client side of the hops that are not SOCKS5, behind
 * client.c's calls (s5_client_step, s5_client_want): HTTP CONNECT (RFC 9110
 * §9.3.6, Basic credentials per RFC 7617) and SOCKS4 / SOCKS4a. As there,
 * the caller does the I/O, and the machine never asks for a byte past the
 * proxy's answer: what the target sends right after it stays the caller's.
 *
 *	UP_START  --build the request-->  UP_SEND  --sent in full-->  UP_READ
 *	UP_READ   --the whole answer-->   UP_DONE (S5C_DONE) or UP_FAILED (< 0)
 *
 * SOCKS4's answer is 8 octets. An HTTP response header ends at its first
 * empty line, so the machine asks for as many octets as could at most
 * finish it ("\r\n\r\n" less what of it has just been seen: 4, or fewer),
 * never one more; about a quarter of the header's length in reads. Only
 * CRLF line ends are taken (every proxy sends them); the status line is
 * kept, the rest of the header only scanned, and one longer than
 * UP_HTTP_HEADER_MAX is not a proxy's answer.
 *
 * A 407, or the 401 tinyproxy sends instead, is about our credentials: a
 * CONNECT has reached no origin server that could ask for its own.
 * A refusal becomes the SOCKS5 reply code that names the same failure, so
 * the errno a program sees comes from one table (s5_rep_to_errno); the
 * protocol's own code stays in c->status for the diagnostic.
 */
#include <string.h>

#include "socks5.h"

enum up_state {
	UP_START,
	UP_SEND,		/* out holds the request; the caller is sending it */
	UP_READ,
	UP_DONE,
	UP_FAILED,
};

enum {
	UP_SOCKS4_VERSION = 4,
	UP_SOCKS4_CONNECT = 1,
	UP_SOCKS4_REPLY_LEN = 8,
	UP_SOCKS4_GRANTED = 90,
	UP_SOCKS4_REJECTED = 91,	/* rejected or failed */
	UP_SOCKS4_NO_IDENTD = 92,
	UP_SOCKS4_BAD_IDENTD = 93,
	UP_HTTP_HEADER_MAX = 8192,	/* what common servers take for a whole header */
};

static const char up_crlf2[] = "\r\n\r\n";
static const char up_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char *
s5_proto_scheme(uint8_t proto, bool remote_dns)
{
	switch (proto) {
	case S5_PROTO_SOCKS4:
		return "socks4";
	case S5_PROTO_SOCKS4A:
		return "socks4a";
	case S5_PROTO_HTTP:
		return "http";
	default:
		return remote_dns ? "socks5h" : "socks5";
	}
}

static int
up_fail(struct s5_client *c, int err)
{
	c->state = UP_FAILED;
	return err;
}

/* A name as an HTTP authority may carry it (RFC 3986 reg-name without
 * percent-encoding): nothing that could end a header line or the target. */
static bool
up_http_name_ok(const char *name, size_t len)
{
	static const char extra[] = "-._~!$&'()*+,;=";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch != '\0' && strchr(extra, ch) != NULL)))
			return false;
	}
	return len > 0;
}

/* base64 of user ":" pass into out (cap octets, NUL-terminated); its length. */
static size_t
up_basic(const struct s5_cred *cred, char *out, size_t cap)
{
	uint8_t in[2 * S5_CRED_MAX + 1];
	size_t n = 0, i, o = 0;
	uint32_t v;

	memcpy(in, cred->user, cred->ulen);
	n = cred->ulen;
	in[n++] = ':';
	memcpy(in + n, cred->pass, cred->plen);
	n += cred->plen;
	for (i = 0; i < n && o + 4 < cap; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = up_b64[v >> 18 & 63];
		out[o++] = up_b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? up_b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? up_b64[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* Appends s to c->out; false when it does not fit (S5_CLIENT_OUT_MAX is
 * sized for the longest request, so never). */
static bool
up_put(struct s5_client *c, const char *s)
{
	size_t n = strlen(s);

	if (n > sizeof(c->out) - c->out_len)
		return false;
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	return true;
}

static int
up_build_http(struct s5_client *c)
{
	char target[S5_ADDR_TEXT_MAX], auth[4 * ((2 * S5_CRED_MAX + 3) / 3) + 1];
	bool ok;

	if (c->dst.atyp == S5_ATYP_DOMAIN &&
	    !up_http_name_ok(c->dst.u.domain.name, c->dst.u.domain.len))
		return up_fail(c, S5C_E_ADDR);
	/* IPv6 in brackets, a name or IPv4 as is, then ":port". */
	if (s5_addr_format(&c->dst, target, sizeof(target)) < 0)
		return up_fail(c, S5C_E_STATE);
	c->out_len = 0;
	ok = up_put(c, "CONNECT ") && up_put(c, target) && up_put(c, " HTTP/1.1\r\nHost: ") &&
	    up_put(c, target) && up_put(c, "\r\n");
	if (ok && c->cred != NULL) {
		(void)up_basic(c->cred, auth, sizeof(auth));
		ok = up_put(c, "Proxy-Authorization: Basic ") && up_put(c, auth) &&
		    up_put(c, "\r\n");
	}
	if (!ok || !up_put(c, "\r\n"))
		return up_fail(c, S5C_E_STATE);
	return S5C_WANT_WRITE;
}

static int
up_build_socks4(struct s5_client *c)
{
	static const uint8_t name_follows[4] = { 0, 0, 0, 1 };	/* SOCKS4a */
	size_t o = 0, ulen = c->cred != NULL ? c->cred->ulen : 0;

	if (c->dst.atyp == S5_ATYP_IPV6 ||
	    (c->dst.atyp == S5_ATYP_DOMAIN && c->proto != S5_PROTO_SOCKS4A))
		return up_fail(c, S5C_E_ADDR);
	/* The user ID and the name end with a NUL: neither may hold one. */
	if (ulen > 0 && memchr(c->cred->user, '\0', ulen) != NULL)
		return up_fail(c, S5C_E_STATE);
	c->out[o++] = UP_SOCKS4_VERSION;
	c->out[o++] = UP_SOCKS4_CONNECT;
	c->out[o++] = (uint8_t)(c->dst.port >> 8);
	c->out[o++] = (uint8_t)c->dst.port;
	memcpy(c->out + o, c->dst.atyp == S5_ATYP_IPV4 ? c->dst.u.ip4 : name_follows, 4);
	o += 4;
	if (ulen > 0)
		memcpy(c->out + o, c->cred->user, ulen);
	o += ulen;
	c->out[o++] = '\0';
	if (c->dst.atyp == S5_ATYP_DOMAIN) {
		memcpy(c->out + o, c->dst.u.domain.name, c->dst.u.domain.len);
		o += c->dst.u.domain.len;
		c->out[o++] = '\0';
	}
	c->out_len = o;
	return S5C_WANT_WRITE;
}

/* A refusal: the SOCKS5 reply code for the same failure, the own code kept. */
static int
up_refused(struct s5_client *c, int status, uint8_t rep)
{
	c->status = status;
	c->reply.rep = rep;
	return up_fail(c, S5C_E_REPLY);
}

static int
up_on_socks4(struct s5_client *c)
{
	if (c->in_len < UP_SOCKS4_REPLY_LEN)
		return S5C_WANT_READ;
	/* VN is 0 by the protocol; some servers echo 4. */
	if (c->in[0] != 0 && c->in[0] != UP_SOCKS4_VERSION)
		return up_fail(c, S5C_E_PROTO);
	switch (c->in[1]) {
	case UP_SOCKS4_GRANTED:
		s5_addr_set_ip4(&c->reply.bnd, c->in + 4,
		    (uint16_t)(c->in[2] << 8 | c->in[3]));
		c->reply.rep = S5_REP_SUCCEEDED;
		c->state = UP_DONE;
		return S5C_DONE;
	case UP_SOCKS4_REJECTED:
		return up_refused(c, c->in[1], S5_REP_CONN_REFUSED);
	case UP_SOCKS4_NO_IDENTD:
	case UP_SOCKS4_BAD_IDENTD:
		return up_refused(c, c->in[1], S5_REP_NOT_ALLOWED);
	default:
		return up_fail(c, S5C_E_PROTO);
	}
}

/* "HTTP/1.x SSS ...": the status, or -1. */
static int
up_http_status(const uint8_t *line, size_t len)
{
	if (len < 13 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' ||
	    line[7] > '9' || line[8] != ' ' || line[9] < '1' || line[9] > '5' ||
	    line[10] < '0' || line[10] > '9' || line[11] < '0' || line[11] > '9' ||
	    (line[12] != ' ' && line[12] != '\r'))
		return -1;
	return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

/* The whole header is in: what its status says. */
static int
up_http_done(struct s5_client *c)
{
	int status = up_http_status(c->in, c->in_len);

	if (status >= 200 && status <= 299) {
		/* CONNECT names no bound address: 0.0.0.0:0. */
		s5_addr_set_ip4(&c->reply.bnd, (const uint8_t[4]){ 0 }, 0);
		c->reply.rep = S5_REP_SUCCEEDED;
		c->state = UP_DONE;
		return S5C_DONE;
	}
	c->status = status;
	switch (status) {
	case 401:	/* tinyproxy's answer to bad proxy credentials */
	case 407:
		return up_fail(c, c->cred != NULL ? S5C_E_AUTH : S5C_E_NEED_AUTH);
	case 403:
	case 405:
		return up_refused(c, status, S5_REP_NOT_ALLOWED);
	case 404:
		return up_refused(c, status, S5_REP_HOST_UNREACHABLE);
	case 502:
		return up_refused(c, status, S5_REP_CONN_REFUSED);
	case 503:
		return up_refused(c, status, S5_REP_NET_UNREACHABLE);
	case 504:
		return up_refused(c, status, S5_REP_TTL_EXPIRED);
	default:
		return up_refused(c, status, S5_REP_GENERAL_FAILURE);
	}
}

bool
s5_up_awaiting_reply(const struct s5_client *c)
{
	return (c->proto == S5_PROTO_SOCKS4 || c->proto == S5_PROTO_SOCKS4A) &&
	    c->state == UP_READ && c->in_len == 0;
}

/* One octet of the HTTP answer. */
static int
up_on_http(struct s5_client *c, uint8_t ch)
{
	if (++c->seen > UP_HTTP_HEADER_MAX)
		return up_fail(c, S5C_E_PROTO);
	if (!c->line_done) {
		/* Not an HTTP answer from its first octets on: say so at once. */
		if (c->in_len < 5 && ch != (uint8_t)"HTTP/"[c->in_len])
			return up_fail(c, S5C_E_PROTO);
		if (c->in_len == sizeof(c->in))
			return up_fail(c, S5C_E_PROTO);
		c->in[c->in_len++] = ch;
		if (ch == '\n') {
			c->line_done = true;
			if (up_http_status(c->in, c->in_len) < 0)
				return up_fail(c, S5C_E_PROTO);
		}
	}
	if (ch == (uint8_t)up_crlf2[c->crlf])
		c->crlf++;
	else
		c->crlf = ch == '\r' ? 1 : 0;
	if (c->crlf == sizeof(up_crlf2) - 1)
		return up_http_done(c);
	return S5C_WANT_READ;
}

int
s5_up_step(struct s5_client *c, const uint8_t *in, size_t n, size_t *used)
{
	size_t took = 0, k;
	int r = S5C_WANT_READ;

	if (used != NULL)
		*used = 0;
	if (in == NULL && n > 0)
		return up_fail(c, S5C_E_STATE);
	switch (c->state) {
	case UP_START:
		if (c->cmd != S5_CMD_CONNECT)
			return up_fail(c, S5C_E_STATE);
		c->state = UP_SEND;
		r = c->proto == S5_PROTO_HTTP ? up_build_http(c) :
		    c->proto == S5_PROTO_SOCKS4 || c->proto == S5_PROTO_SOCKS4A ?
		    up_build_socks4(c) : up_fail(c, S5C_E_STATE);
		return r;
	case UP_SEND:
		c->out_len = 0;
		c->state = UP_READ;
		break;
	case UP_READ:
		break;
	default:
		return S5C_E_STATE;
	}
	while (took < n && r == S5C_WANT_READ) {
		k = s5_up_want(c);
		if (k > n - took)
			k = n - took;
		if (c->proto == S5_PROTO_HTTP) {
			for (; k > 0 && r == S5C_WANT_READ; k--)
				r = up_on_http(c, in[took++]);
		} else {
			memcpy(c->in + c->in_len, in + took, k);
			c->in_len += k;
			took += k;
			r = up_on_socks4(c);
		}
	}
	/* A failure ends the conversation: what was offered is spent. */
	if (used != NULL)
		*used = r < 0 ? n : took;
	return r;
}

size_t
s5_up_want(const struct s5_client *c)
{
	if (c->state != UP_READ)
		return 0;
	if (c->proto == S5_PROTO_HTTP)
		return sizeof(up_crlf2) - 1 - c->crlf;
	return UP_SOCKS4_REPLY_LEN - c->in_len;
}
