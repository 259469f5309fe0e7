/*
 * client.c: the client side of one SOCKS5 hop as a state machine.
 *
 * The caller does the I/O; the machine says what to send and how much it may
 * read. It never asks for more than the rest of the server's current message,
 * so bytes the target sends right after the reply (RFC 1928 §6 lets data
 * follow at once) stay in the caller's hands.
 */
#include <errno.h>
#include <string.h>

#include "socks5.h"

/* Each SEND state is directly followed by the READ state of its answer. */
enum client_state {
	CLIENT_START,		/* nothing built yet */
	CLIENT_SEND_GREETING,	/* out holds it; the caller is sending it */
	CLIENT_READ_METHOD,
	CLIENT_SEND_AUTH,
	CLIENT_READ_AUTH,
	CLIENT_SEND_REQUEST,
	CLIENT_READ_REPLY,
	CLIENT_DONE,
	CLIENT_READ_PEER,	/* BIND: awaiting the second reply */
	CLIENT_PEER_DONE,	/* BIND: the second reply came */
	CLIENT_FAILED,
};

/* VER REP RSV ATYP and the first address octet (a domain's length). */
#define CLIENT_REPLY_PREFIX	5
#define CLIENT_REPLY_HEAD	4
#define CLIENT_PORT_LEN		2

void
s5_client_init(struct s5_client *c, uint8_t cmd, const struct s5_addr *dst,
    const struct s5_cred *cred)
{
	memset(c, 0, sizeof(*c));
	c->state = CLIENT_START;
	c->cmd = cmd;
	c->dst = *dst;
	c->cred = cred;
}

void
s5_client_init_proto(struct s5_client *c, uint8_t proto, uint8_t cmd,
    const struct s5_addr *dst, const struct s5_cred *cred)
{
	s5_client_init(c, cmd, dst, cred);
	c->proto = proto;
}

static int
client_fail(struct s5_client *c, int err)
{
	c->state = CLIENT_FAILED;
	return err;
}

/*
 * Pipelined: the one method we will use, then its credentials, then the
 * request, in one buffer. RFC 1928 has the server answer each in turn; a
 * server that reads the stream (not one recv() per message) takes them.
 */
static int
client_build_pipeline(struct s5_client *c)
{
	const uint8_t method = c->cred != NULL ? S5_METHOD_USERPASS : S5_METHOD_NONE;
	struct s5_request req = { .cmd = c->cmd, .dst = c->dst };
	size_t off;
	int len;

	if ((len = s5_encode_greeting(c->out, sizeof(c->out), &method, 1)) < 0)
		return client_fail(c, S5C_E_STATE);
	off = (size_t)len;
	if (c->cred != NULL) {
		if ((len = s5_encode_auth(c->out + off, sizeof(c->out) - off, c->cred)) < 0)
			return client_fail(c, S5C_E_STATE);
		off += (size_t)len;
	}
	if ((len = s5_encode_request(c->out + off, sizeof(c->out) - off, &req)) < 0)
		return client_fail(c, S5C_E_STATE);
	c->out_len = off + (size_t)len;
	c->sent_all = true;
	c->state = CLIENT_SEND_GREETING;
	return S5C_WANT_WRITE;
}

/*
 * The one twin a learning greeting offers: that of the method the
 * pipelined greeting offers alone (client_build_pipeline()), so that a
 * server picking it has said it takes exactly that handshake. A server
 * that takes no login picks NONE, never the twin, beside a credential.
 */
static uint8_t
client_stream_twin(const struct s5_client *c)
{
	return c->cred != NULL ? S5_METHOD_USERPASS_STREAM : S5_METHOD_NONE_STREAM;
}

/* RFC 1928 §3: offer NONE always, and RFC 1929 only when we can answer it;
 * learning, the _STREAM twin of the method a pipelined handshake would use
 * (client_stream_twin()) behind them. */
static int
client_build_greeting(struct s5_client *c)
{
	uint8_t methods[4];
	size_t nmethods = 0;
	int len;

	methods[nmethods++] = S5_METHOD_NONE;
	if (c->cred != NULL)
		methods[nmethods++] = S5_METHOD_USERPASS;
	if (c->learn)
		methods[nmethods++] = client_stream_twin(c);

	/* Refuse before a byte is sent rather than after the server answered. */
	if (s5_addr_wire_len(&c->dst) == 0 ||
	    (c->cred != NULL && (c->cred->ulen == 0 || c->cred->plen == 0)))
		return client_fail(c, S5C_E_STATE);
	if (c->pipeline)
		return client_build_pipeline(c);
	len = s5_encode_greeting(c->out, sizeof(c->out), methods, nmethods);
	c->out_len = (size_t)len;
	c->state = CLIENT_SEND_GREETING;
	return S5C_WANT_WRITE;
}

static int
client_build_request(struct s5_client *c)
{
	struct s5_request req;
	int len;

	req.cmd = c->cmd;
	req.dst = c->dst;
	if ((len = s5_encode_request(c->out, sizeof(c->out), &req)) < 0)
		return client_fail(c, S5C_E_STATE);
	c->out_len = (size_t)len;
	c->state = CLIENT_SEND_REQUEST;
	return S5C_WANT_WRITE;
}

static int
client_on_method(struct s5_client *c, uint8_t method)
{
	int len;

	/* The _STREAM twin we offered: its plain method, and the server's
	 * word that it reads a stream. One we did not offer falls to the
	 * protocol error below. */
	if (c->learn && !c->sent_all && method == client_stream_twin(c)) {
		c->streams = true;
		method = s5_method_base(method);
	}
	c->method = method;
	/* Pipelined: credentials and request are out already. The server
	 * may refuse our one method, or pick another: it cannot have read
	 * what followed as we meant it. */
	if (c->sent_all) {
		if (method == S5_METHOD_UNACCEPTABLE)
			return client_fail(c, S5C_E_NO_METHOD);
		if (method != (c->cred != NULL ? S5_METHOD_USERPASS : S5_METHOD_NONE))
			return client_fail(c, method == S5_METHOD_USERPASS ?
			    S5C_E_NEED_AUTH : S5C_E_PROTO);
		c->state = method == S5_METHOD_USERPASS ? CLIENT_READ_AUTH : CLIENT_READ_REPLY;
		return S5C_WANT_READ;
	}
	switch (method) {
	case S5_METHOD_NONE:
		return client_build_request(c);
	case S5_METHOD_USERPASS:
		/* We offered it only with a credential; a server picking it
		 * anyway gets the error that says what it wants. */
		if (c->cred == NULL)
			return client_fail(c, S5C_E_NEED_AUTH);
		len = s5_encode_auth(c->out, sizeof(c->out), c->cred);
		c->out_len = (size_t)len;
		c->state = CLIENT_SEND_AUTH;
		return S5C_WANT_WRITE;
	case S5_METHOD_UNACCEPTABLE:
		/* RFC 1928 §3: "the client MUST close the connection". */
		return client_fail(c, S5C_E_NO_METHOD);
	default:
		return client_fail(c, S5C_E_PROTO);
	}
}

/* Parses what has arrived of the current message and moves on if it is whole. */
static int
client_on_input(struct s5_client *c)
{
	uint8_t v;
	size_t u;
	int r;

	switch (c->state) {
	case CLIENT_READ_METHOD:
		r = s5_parse_method_reply(c->in, c->in_len, &v, &u);
		break;
	case CLIENT_READ_AUTH:
		r = s5_parse_auth_reply(c->in, c->in_len, &v, &u);
		break;
	default:
		r = s5_parse_reply(c->in, c->in_len, &c->reply, &u);
		break;
	}
	if (r == S5_NEED_MORE)
		return S5C_WANT_READ;
	if (r < 0)
		return client_fail(c, S5C_E_PROTO);
	c->in_len = 0;

	switch (c->state) {
	case CLIENT_READ_METHOD:
		return client_on_method(c, v);
	case CLIENT_READ_AUTH:
		/* RFC 1929 §2: any STATUS but X'00' is a failure. */
		if (v != S5_AUTH_SUCCESS)
			return client_fail(c, S5C_E_AUTH);
		if (c->sent_all) {
			c->state = CLIENT_READ_REPLY;
			return S5C_WANT_READ;
		}
		return client_build_request(c);
	default:
		if (c->reply.rep != S5_REP_SUCCEEDED)
			return client_fail(c, S5C_E_REPLY);
		c->state = c->state == CLIENT_READ_PEER ? CLIENT_PEER_DONE : CLIENT_DONE;
		return S5C_DONE;
	}
}

bool
s5_client_midway(const struct s5_client *c)
{
	return c->proto == S5_PROTO_HTTP ? c->seen > 0 : c->in_len > 0;
}

bool
s5_client_awaiting_reply(const struct s5_client *c)
{
	if (c->proto == S5_PROTO_SOCKS4 || c->proto == S5_PROTO_SOCKS4A)
		return s5_up_awaiting_reply(c);
	return c->proto == S5_PROTO_SOCKS5 && c->state == CLIENT_READ_REPLY && c->in_len == 0;
}

int
s5_client_step(struct s5_client *c, const uint8_t *in, size_t n, size_t *used)
{
	size_t took = 0, k;
	int r = S5C_WANT_READ;

	if (c->proto != S5_PROTO_SOCKS5)
		return s5_up_step(c, in, n, used);
	if (used != NULL)
		*used = 0;
	if (in == NULL && n > 0)
		return client_fail(c, S5C_E_STATE);

	switch (c->state) {
	case CLIENT_START:
		return client_build_greeting(c);
	case CLIENT_SEND_GREETING:
	case CLIENT_SEND_AUTH:
	case CLIENT_SEND_REQUEST:
		/* This step reports that out went out in full; read next. */
		c->out_len = 0;
		c->state++;
		break;
	case CLIENT_READ_METHOD:
	case CLIENT_READ_AUTH:
	case CLIENT_READ_REPLY:
	case CLIENT_READ_PEER:
		break;
	default:
		return S5C_E_STATE;
	}

	while (took < n) {
		k = s5_client_want(c);
		if (k > n - took)
			k = n - took;
		memcpy(c->in + c->in_len, in + took, k);
		c->in_len += k;
		took += k;
		if ((r = client_on_input(c)) != S5C_WANT_READ)
			break;
	}
	if (used != NULL)
		*used = took;
	return r;
}

size_t
s5_client_want(const struct s5_client *c)
{
	size_t total;

	if (c->proto != S5_PROTO_SOCKS5)
		return s5_up_want(c);
	switch (c->state) {
	case CLIENT_READ_METHOD:
	case CLIENT_READ_AUTH:
		/* VER METHOD and VER STATUS: two octets each. */
		return 2 - c->in_len;
	case CLIENT_READ_REPLY:
	case CLIENT_READ_PEER:
		/* The shortest reply (IPv4) is longer than this prefix. */
		if (c->in_len < CLIENT_REPLY_PREFIX)
			return CLIENT_REPLY_PREFIX - c->in_len;
		switch (c->in[CLIENT_REPLY_HEAD - 1]) {
		case S5_ATYP_IPV4:
			total = CLIENT_REPLY_HEAD + 4 + CLIENT_PORT_LEN;
			break;
		case S5_ATYP_IPV6:
			total = CLIENT_REPLY_HEAD + 16 + CLIENT_PORT_LEN;
			break;
		default:
			total = CLIENT_REPLY_HEAD + 1 +
			    (size_t)c->in[CLIENT_REPLY_HEAD] + CLIENT_PORT_LEN;
			break;
		}
		return total > c->in_len ? total - c->in_len : 0;
	default:
		return 0;
	}
}

/*
 * RFC 1928 §6: a BIND gets two replies, the second "only after the
 * anticipated incoming connection succeeds or fails". The first one ended
 * the handshake (S5C_DONE, c->reply its BND); this arms the machine for the
 * second, which ends in S5C_DONE again with c->reply naming the peer.
 */
int
s5_client_await_peer(struct s5_client *c)
{
	if (c->proto != S5_PROTO_SOCKS5 || c->state != CLIENT_DONE || c->cmd != S5_CMD_BIND)
		return client_fail(c, S5C_E_STATE);
	c->state = CLIENT_READ_PEER;
	c->in_len = 0;
	return S5C_WANT_READ;
}

int
s5_client_errno(const struct s5_client *c, int err)
{
	switch (err) {
	case S5C_E_REPLY:
		return s5_rep_to_errno(c->reply.rep);
	case S5C_E_AUTH:
	case S5C_E_NEED_AUTH:
	case S5C_E_NO_METHOD:
		return EACCES;
	case S5C_E_ADDR:
		return c->dst.atyp == S5_ATYP_IPV6 ? EAFNOSUPPORT : EHOSTUNREACH;
	default:
		return ECONNREFUSED;
	}
}

const char *
s5_client_strerror(int err)
{
	switch (err) {
	case S5C_DONE:
		return "success";
	case S5C_E_PROTO:
		return "proxy protocol error";
	case S5C_E_NO_METHOD:
		return "no acceptable authentication method";
	case S5C_E_AUTH:
		return "authentication rejected";
	case S5C_E_NEED_AUTH:
		return "proxy requires username/password";
	case S5C_E_REPLY:
		return "request refused by proxy";
	case S5C_E_STATE:
		return "handshake misused";
	case S5C_E_ADDR:
		return "destination this proxy type cannot be asked for";
	default:
		return "unknown handshake error";
	}
}
