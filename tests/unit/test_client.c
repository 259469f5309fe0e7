/* test_client.c: the client handshake machine against canned server bytes. */
#include <errno.h>

#include "unit.h"

#define CLIENT_SENT_MAX	2048
#define CLIENT_STEPS	4096

/* What one handshake did: the bytes the client sent, the server bytes it took. */
struct run {
	int r;
	size_t took;
	uint8_t sent[CLIENT_SENT_MAX];
	size_t sent_len;
};

/*
 * Drives c against srv. chunk 0 reads exactly s5_client_want() bytes, as the
 * preload does; otherwise up to chunk bytes are offered at once and whatever
 * the machine leaves is offered again, as an event loop would.
 */
static void
client_run(struct s5_client *c, const uint8_t *srv, size_t n, size_t chunk,
    struct run *run)
{
	size_t used, k, steps;
	int r;

	memset(run, 0, sizeof(*run));
	r = s5_client_step(c, NULL, 0, &used);
	for (steps = 0; steps < CLIENT_STEPS; steps++) {
		if (r == S5C_WANT_WRITE) {
			CHECK(c->out_len > 0);
			if (run->sent_len + c->out_len <= sizeof(run->sent)) {
				memcpy(run->sent + run->sent_len, c->out,
				    c->out_len);
				run->sent_len += c->out_len;
			}
			r = s5_client_step(c, NULL, 0, &used);
			CHECK_INT(used, 0);
			continue;
		}
		if (r != S5C_WANT_READ)
			break;
		k = chunk != 0 ? chunk : s5_client_want(c);
		CHECK(s5_client_want(c) > 0);
		if (k > n - run->took)
			k = n - run->took;
		if (k == 0)
			break;
		r = s5_client_step(c, srv + run->took, k, &used);
		CHECK(used <= k);
		if (chunk == 0)
			CHECK_INT(used, k);
		run->took += used;
	}
	run->r = r;
}

static void
client_addr(struct s5_addr *a)
{
	s5_addr_set_domain(a, "example.com", 11, 80);
}

static const uint8_t request_dn[] = { 0x05, 0x01, 0x00, 0x03, 11,
    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x00, 0x50 };

static void
client_noauth(void)
{
	/* Method NONE, then a reply with an IPv4 BND, then target bytes. */
	static const uint8_t srv[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39,
	    'H', 'T', 'T', 'P' };
	static const size_t chunks[] = { 0, 1, 2, 3, 7, sizeof(srv) };
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t i;

	client_addr(&dst);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, srv, sizeof(srv), chunks[i], &run);
		CHECK_INT(run.r, S5C_DONE);
		/* The target's first bytes are left to the application. */
		CHECK_INT(run.took, 12);
		CHECK_INT(run.sent_len, 3 + sizeof(request_dn));
		CHECK_MEM(run.sent, "\x05\x01\x00", 3);
		CHECK_MEM(run.sent + 3, request_dn, sizeof(request_dn));
		CHECK_INT(c.method, S5_METHOD_NONE);
		CHECK_INT(c.reply.rep, S5_REP_SUCCEEDED);
		CHECK_INT(c.reply.bnd.atyp, S5_ATYP_IPV4);
		CHECK_INT(c.reply.bnd.u.ip4[0], 10);
		CHECK_INT(c.reply.bnd.port, 12345);
	}
}

/* Learning: the greeting offers each method's _STREAM twin behind it; a
 * server picking one is read as the plain method, and said to stream. */
static void
client_learn(void)
{
	static const uint8_t srv_stream[] = { 0x05, 0xE0,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39 };
	static const uint8_t srv_plain[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39 };
	static const uint8_t srv_auth[] = { 0x05, 0xE2, 0x01, 0x00,
	    0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 5 };
	struct s5_client c;
	struct s5_cred cred;
	struct s5_addr dst;
	struct run run;

	client_addr(&dst);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	c.learn = true;
	client_run(&c, srv_stream, sizeof(srv_stream), 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(run.sent_len, 4 + sizeof(request_dn));
	CHECK_MEM(run.sent, "\x05\x02\x00\xE0", 4);
	CHECK_MEM(run.sent + 4, request_dn, sizeof(request_dn));
	CHECK_INT(c.method, S5_METHOD_NONE);
	CHECK_INT(c.streams, 1);

	/* A server that knows no twin picks the plain method. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	c.learn = true;
	client_run(&c, srv_plain, sizeof(srv_plain), 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(c.method, S5_METHOD_NONE);
	CHECK_INT(c.streams, 0);

	/* Not learning, a twin we never offered is a protocol error. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, srv_stream, sizeof(srv_stream), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(run.sent_len, 3);

	memset(&cred, 0, sizeof(cred));
	cred.ulen = 3;
	memcpy(cred.user, "bob", 4);
	cred.plen = 2;
	memcpy(cred.pass, "pw", 3);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	c.learn = true;
	client_run(&c, srv_auth, sizeof(srv_auth), 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_MEM(run.sent, "\x05\x03\x00\x02\xE2", 5);
	CHECK_MEM(run.sent + 5, "\x01\x03" "bob" "\x02" "pw", 8);
	CHECK_INT(c.method, S5_METHOD_USERPASS);
	CHECK_INT(c.streams, 1);

	/* With a credential only E2 is offered: E0 (a server taking no
	 * login) is an error, as is E2 without one. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	c.learn = true;
	client_run(&c, srv_stream, sizeof(srv_stream), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(c.streams, 0);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	c.learn = true;
	client_run(&c, srv_auth, sizeof(srv_auth), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(c.streams, 0);
	CHECK_MEM(run.sent, "\x05\x02\x00\xE0", 4);
}

static void
client_bnd_types(void)
{
	static const uint8_t srv6[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8,
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x01, 0x00, 0xEE };
	static const uint8_t srvdn[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x03, 3, 'b', 'n', 'd', 0x00, 0x01, 0xEE };
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t chunk;

	client_addr(&dst);
	for (chunk = 0; chunk <= sizeof(srv6); chunk++) {
		s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, srv6, sizeof(srv6), chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, sizeof(srv6) - 1);
		CHECK_INT(c.reply.bnd.atyp, S5_ATYP_IPV6);
		CHECK_INT(c.reply.bnd.u.ip6[15], 0x42);
		CHECK_INT(c.reply.bnd.port, 256);
	}
	for (chunk = 0; chunk <= sizeof(srvdn); chunk++) {
		s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, srvdn, sizeof(srvdn), chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, sizeof(srvdn) - 1);
		CHECK_STR(c.reply.bnd.u.domain.name, "bnd");
		CHECK_INT(c.reply.bnd.port, 1);
	}
}

static void
client_want(void)
{
	static const uint8_t reply[] = { 0x05, 0x00, 0x00, 0x03, 4,
	    'a', 'b', 'c', 'd', 0x00, 0x50 };
	struct s5_client c;
	struct s5_addr dst;
	size_t used;

	client_addr(&dst);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, &used), S5C_WANT_WRITE);
	CHECK_INT(c.out_len, 3);
	CHECK_INT(s5_client_step(&c, NULL, 0, &used), S5C_WANT_READ);
	CHECK_INT(s5_client_want(&c), 2);
	CHECK_INT(s5_client_step(&c, (const uint8_t *)"\x05", 1, &used),
	    S5C_WANT_READ);
	CHECK_INT(used, 1);
	CHECK_INT(s5_client_want(&c), 1);
	CHECK_INT(s5_client_step(&c, (const uint8_t *)"\x00", 1, &used),
	    S5C_WANT_WRITE);
	CHECK_INT(c.out_len, sizeof(request_dn));
	CHECK_MEM(c.out, request_dn, sizeof(request_dn));
	CHECK_INT(s5_client_step(&c, NULL, 0, &used), S5C_WANT_READ);
	/* VER REP RSV ATYP and one more octet, then exactly the rest. */
	CHECK_INT(s5_client_want(&c), 5);
	CHECK_INT(s5_client_step(&c, reply, 4, &used), S5C_WANT_READ);
	CHECK_INT(s5_client_want(&c), 1);
	CHECK_INT(s5_client_step(&c, reply + 4, 1, &used), S5C_WANT_READ);
	CHECK_INT(s5_client_want(&c), 6);
	CHECK_INT(s5_client_step(&c, reply + 5, 5, &used), S5C_WANT_READ);
	CHECK_INT(s5_client_want(&c), 1);
	CHECK_INT(s5_client_step(&c, reply + 10, 1, &used), S5C_DONE);
	CHECK_INT(used, 1);
	CHECK_INT(s5_client_want(&c), 0);
	CHECK_STR(c.reply.bnd.u.domain.name, "abcd");

	/* Stepping on after the end is a misuse. */
	CHECK_INT(s5_client_step(&c, NULL, 0, &used), S5C_E_STATE);
	CHECK_INT(s5_client_step(&c, reply, 1, &used), S5C_E_STATE);
	CHECK_INT(used, 0);
}

static void
client_auth(void)
{
	static const uint8_t srv_ok[] = { 0x05, 0x02, 0x01, 0x00,
	    0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 5, 'x' };
	/* Some servers answer RFC 1929 with VER 5. */
	static const uint8_t srv_v5[] = { 0x05, 0x02, 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 5 };
	static const uint8_t srv_bad[] = { 0x05, 0x02, 0x01, 0x01 };
	static const uint8_t srv_none[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 5 };
	static const uint8_t auth[] = { 0x01, 0x03, 'b', 'o', 'b',
	    0x02, 'p', 'w' };
	struct s5_client c;
	struct s5_cred cred;
	struct s5_addr dst;
	struct run run;
	size_t chunk;

	memset(&cred, 0, sizeof(cred));
	cred.ulen = 3;
	memcpy(cred.user, "bob", 4);
	cred.plen = 2;
	memcpy(cred.pass, "pw", 3);
	client_addr(&dst);

	for (chunk = 0; chunk <= sizeof(srv_ok); chunk++) {
		s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
		client_run(&c, srv_ok, sizeof(srv_ok), chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, sizeof(srv_ok) - 1);
		CHECK_INT(c.method, S5_METHOD_USERPASS);
		CHECK_INT(run.sent_len, 4 + sizeof(auth) + sizeof(request_dn));
		CHECK_MEM(run.sent, "\x05\x02\x00\x02", 4);
		CHECK_MEM(run.sent + 4, auth, sizeof(auth));
		CHECK_MEM(run.sent + 4 + sizeof(auth), request_dn,
		    sizeof(request_dn));
	}

	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, srv_v5, sizeof(srv_v5), 0, &run);
	CHECK_INT(run.r, S5C_DONE);

	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, srv_bad, sizeof(srv_bad), 0, &run);
	CHECK_INT(run.r, S5C_E_AUTH);
	CHECK_INT(s5_client_errno(&c, run.r), EACCES);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_STATE);

	/* A server may pick NONE even when we offer both. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, srv_none, sizeof(srv_none), 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(c.method, S5_METHOD_NONE);
	CHECK_INT(run.sent_len, 4 + sizeof(request_dn));

	/* A credential that cannot go on the wire fails before any byte. */
	cred.plen = 0;
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_STATE);
}

static void
client_method_failures(void)
{
	struct s5_client c;
	struct s5_addr dst;
	struct s5_cred cred;
	struct run run;

	client_addr(&dst);
	memset(&cred, 0, sizeof(cred));
	cred.ulen = cred.plen = 1;
	cred.user[0] = cred.pass[0] = 'a';

	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)"\x05\xFF", 2, 0, &run);
	CHECK_INT(run.r, S5C_E_NO_METHOD);
	CHECK_INT(s5_client_errno(&c, run.r), EACCES);

	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)"\x05\x02", 2, 0, &run);
	CHECK_INT(run.r, S5C_E_NEED_AUTH);
	CHECK_INT(s5_client_errno(&c, run.r), EACCES);

	/* GSSAPI was never offered. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, (const uint8_t *)"\x05\x01", 2, 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(s5_client_errno(&c, run.r), ECONNREFUSED);

	/* Not SOCKS5 at all: a SOCKS4 answer fails on its first byte. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)"\x00\x5A", 2, 1, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(run.took, 1);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)"HTTP/1.1 400", 12, 12, &run);
	CHECK_INT(run.r, S5C_E_PROTO);

	/* A reply that is not SOCKS5 after a good method reply. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)"\x05\x00\x05\x00\x00\x09", 6, 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	CHECK_INT(s5_client_strerror(run.r) != NULL, 1);

	/* A destination that cannot be encoded is refused up front. */
	memset(&dst, 0, sizeof(dst));
	dst.atyp = S5_ATYP_DOMAIN;
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_STATE);

	client_addr(&dst);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 5, NULL), S5C_E_STATE);
}

static void
client_reply_codes(void)
{
	static const struct {
		uint8_t rep;
		int err;
	} codes[] = {
		{ S5_REP_GENERAL_FAILURE, ECONNREFUSED },
		{ S5_REP_NOT_ALLOWED, EACCES },
		{ S5_REP_NET_UNREACHABLE, ENETUNREACH },
		{ S5_REP_HOST_UNREACHABLE, EHOSTUNREACH },
		{ S5_REP_CONN_REFUSED, ECONNREFUSED },
		{ S5_REP_TTL_EXPIRED, ETIMEDOUT },
		{ S5_REP_CMD_NOT_SUPPORTED, ECONNREFUSED },
		{ S5_REP_ATYP_NOT_SUPPORTED, ECONNREFUSED },
		{ 0x09, ECONNREFUSED },
		{ 0xFF, ECONNREFUSED },
	};
	uint8_t srv[] = { 0x05, 0x00, 0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t i;

	client_addr(&dst);
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		srv[3] = codes[i].rep;
		s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, srv, sizeof(srv), 0, &run);
		CHECK_INT(run.r, S5C_E_REPLY);
		CHECK_INT(c.reply.rep, codes[i].rep);
		CHECK_INT(s5_client_errno(&c, run.r), codes[i].err);
		CHECK_INT(run.took, sizeof(srv));
	}
}

static void
client_misc(void)
{
	static const uint8_t ip[4] = { 198, 51, 100, 1 };
	static const uint8_t req[] = { 0x05, 0x02, 0x00, 0x01,
	    198, 51, 100, 1, 0x00, 0x15 };
	/* Both hops of a chain answered on one stream, then target data. */
	static const uint8_t chain[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 1, 1, 1, 1, 0, 1,
	    0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 2, 2, 2, 2, 0, 2, 'd' };
	struct s5_client c, c2;
	struct s5_addr dst;
	struct run run, run2;
	size_t used;

	/* BIND carries its command. */
	s5_addr_set_ip4(&dst, ip, 21);
	s5_client_init(&c, S5_CMD_BIND, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, &used), S5C_WANT_WRITE);
	CHECK_INT(s5_client_step(&c, (const uint8_t *)"\x05\x00", 2, &used),
	    S5C_WANT_WRITE);
	/* Input given with the "sent" step is read at once. */
	CHECK_INT(used, 2);
	CHECK_INT(c.out_len, sizeof(req));
	CHECK_MEM(c.out, req, sizeof(req));

	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, chain, sizeof(chain), sizeof(chain), &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(run.took, 12);
	CHECK_INT(c.reply.bnd.u.ip4[0], 1);
	s5_client_init(&c2, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c2, chain + run.took, sizeof(chain) - run.took,
	    sizeof(chain), &run2);
	CHECK_INT(run2.r, S5C_DONE);
	CHECK_INT(run2.took, 12);
	CHECK_INT(c2.reply.bnd.u.ip4[0], 2);

	CHECK_STR(s5_client_strerror(S5C_E_AUTH), "authentication rejected");
	CHECK(s5_client_strerror(-99) != NULL);
	CHECK_INT(s5_client_errno(&c, S5C_E_PROTO), ECONNREFUSED);
	CHECK_INT(s5_client_errno(&c, S5C_E_STATE), ECONNREFUSED);
}

/* RFC 1928 §6: BIND's two replies, the second read only when asked for. */
static void
client_bind(void)
{
	static const uint8_t ip[4] = { 198, 51, 100, 1 };
	/* Method, first reply (BND 10.0.0.1:12345), second reply (the peer
	 * 198.51.100.1:20), then the peer's first bytes. */
	static const uint8_t srv[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39,
	    0x05, 0x00, 0x00, 0x01, 198, 51, 100, 1, 0x00, 0x14, 'd', 'a' };
	static const uint8_t refused[] = {
	    0x05, 0x06, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
	static const size_t chunks[] = { 0, 1, 3, sizeof(srv) };
	struct s5_client c;
	struct s5_addr dst;
	struct run run, run2;
	size_t i, used;

	s5_addr_set_ip4(&dst, ip, 0);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		s5_client_init(&c, S5_CMD_BIND, &dst, NULL);
		client_run(&c, srv, sizeof(srv), chunks[i], &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, 12);
		CHECK_INT(run.sent[4], S5_CMD_BIND);
		CHECK_INT(c.reply.bnd.u.ip4[0], 10);
		CHECK_INT(c.reply.bnd.port, 12345);
		/* Nothing more is read until the caller asks. */
		CHECK_INT(s5_client_want(&c), 0);
		CHECK_INT(s5_client_await_peer(&c), S5C_WANT_READ);
		CHECK_INT(s5_client_want(&c), 5);
		memset(&run2, 0, sizeof(run2));
		run2.r = S5C_WANT_READ;
		while (run2.r == S5C_WANT_READ && run.took + run2.took < sizeof(srv)) {
			size_t k = chunks[i] != 0 ? chunks[i] : s5_client_want(&c);

			if (k > sizeof(srv) - run.took - run2.took)
				k = sizeof(srv) - run.took - run2.took;
			run2.r = s5_client_step(&c, srv + run.took + run2.took, k, &used);
			run2.took += used;
		}
		CHECK_INT(run2.r, S5C_DONE);
		/* The peer's bytes stay the application's. */
		CHECK_INT(run2.took, 10);
		CHECK_INT(c.reply.rep, S5_REP_SUCCEEDED);
		CHECK_INT(c.reply.bnd.atyp, S5_ATYP_IPV4);
		CHECK_INT(c.reply.bnd.u.ip4[0], 198);
		CHECK_INT(c.reply.bnd.port, 20);
		/* One second reply per BIND. */
		CHECK_INT(s5_client_await_peer(&c), S5C_E_STATE);
	}

	/* A second reply that fails (the proxy's wait timed out). */
	s5_client_init(&c, S5_CMD_BIND, &dst, NULL);
	client_run(&c, srv, 12, 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(s5_client_await_peer(&c), S5C_WANT_READ);
	CHECK_INT(s5_client_step(&c, refused, sizeof(refused), &used), S5C_E_REPLY);
	CHECK_INT(used, sizeof(refused));
	CHECK_INT(s5_client_errno(&c, S5C_E_REPLY), ETIMEDOUT);

	/* Only a finished BIND has a second reply. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, srv, 12, 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(s5_client_await_peer(&c), S5C_E_STATE);
	s5_client_init(&c, S5_CMD_BIND, &dst, NULL);
	CHECK_INT(s5_client_await_peer(&c), S5C_E_STATE);
}

/* --- HTTP CONNECT and SOCKS4/4a (upstream.c) ----------------------------- */

static void
set_name(struct s5_addr *a, const char *name, uint16_t port)
{
	CHECK_INT(s5_addr_set_domain(a, name, strlen(name), port), 0);
}

/* An HTTP CONNECT: the request's exact bytes, a 200 with headers, and the
 * target's first bytes right behind the header left alone. */
static void
upstream_http_ok(void)
{
	static const char resp[] = "HTTP/1.1 200 Connection established\r\n"
	    "Proxy-agent: tinyproxy/1.11.1\r\n\r\nSSH-2.0-target";
	static const char want[] = "CONNECT example.org:22 HTTP/1.1\r\n"
	    "Host: example.org:22\r\n\r\n";
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t chunk;

	set_name(&dst, "example.org", 22);
	for (chunk = 0; chunk <= 64; chunk += 64) {
		s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, (const uint8_t *)resp, sizeof(resp) - 1, chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.sent_len, sizeof(want) - 1);
		CHECK_MEM(run.sent, want, sizeof(want) - 1);
		/* Not one octet of "SSH-2.0-target" was taken. */
		CHECK_INT(run.took, sizeof(resp) - 1 - strlen("SSH-2.0-target"));
		CHECK_INT(c.reply.rep, S5_REP_SUCCEEDED);
	}
}

/* Basic credentials (RFC 7617's own example), IPv6 in brackets. */
static void
upstream_http_auth(void)
{
	static const char want[] = "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n"
	    "Host: [2001:db8::1]:443\r\n"
	    "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n";
	static const char ok[] = "HTTP/1.0 200 OK\r\n\r\n";
	static const char denied[] = "HTTP/1.1 407 Proxy Authentication Required\r\n"
	    "Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n";
	static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct s5_cred cred = { .ulen = 7, .plen = 11 };
	struct s5_client c;
	struct s5_addr dst;
	struct run run;

	memcpy(cred.user, "Aladdin", 8);
	memcpy(cred.pass, "open sesame", 12);
	s5_addr_set_ip6(&dst, ip6, 443);
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, (const uint8_t *)ok, sizeof(ok) - 1, 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(run.sent_len, sizeof(want) - 1);
	CHECK_MEM(run.sent, want, sizeof(want) - 1);
	/* 407: wrong credentials with them, missing ones without. */
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, (const uint8_t *)denied, sizeof(denied) - 1, 0, &run);
	CHECK_INT(run.r, S5C_E_AUTH);
	CHECK_INT(s5_client_errno(&c, run.r), EACCES);
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)denied, sizeof(denied) - 1, 0, &run);
	CHECK_INT(run.r, S5C_E_NEED_AUTH);
	/* tinyproxy says 401 for the same. */
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, (const uint8_t *)"HTTP/1.0 401 Unauthorized\r\n\r\n", 30, 0, &run);
	CHECK_INT(run.r, S5C_E_AUTH);
}

/* Status codes as the errno of a direct connect; garbage; bad names. */
static void
upstream_http_failures(void)
{
	static const struct {
		const char *resp;
		int r, err, status;
	} cases[] = {
		{ "HTTP/1.1 403 Forbidden\r\n\r\n", S5C_E_REPLY, EACCES, 403 },
		{ "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", S5C_E_REPLY, ECONNREFUSED, 502 },
		{ "HTTP/1.1 504 Gateway Timeout\r\n\r\n", S5C_E_REPLY, ETIMEDOUT, 504 },
		{ "HTTP/1.1 404 Not Found\r\n\r\n", S5C_E_REPLY, EHOSTUNREACH, 404 },
		{ "HTTP/1.1 500 Unable to connect\r\n\r\n", S5C_E_REPLY, ECONNREFUSED, 500 },
		{ "\x05\xff", S5C_E_PROTO, ECONNREFUSED, 0 },		/* a SOCKS5 server */
		{ "HTTP/2 200\r\n\r\n", S5C_E_PROTO, ECONNREFUSED, 0 },
		{ "HTTP/1.1 2000 OK\r\n\r\n", S5C_E_PROTO, ECONNREFUSED, 0 },
		{ "HTTP/1.1 20\r\n\r\n", S5C_E_PROTO, ECONNREFUSED, 0 },
	};
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t i;
	char big[20000];

	set_name(&dst, "example.org", 80);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, (const uint8_t *)cases[i].resp, strlen(cases[i].resp), 0, &run);
		CHECK_INT(run.r, cases[i].r);
		CHECK_INT(s5_client_errno(&c, run.r), cases[i].err);
		if (cases[i].status != 0)
			CHECK_INT(c.status, cases[i].status);
	}
	/* A header that never ends is no proxy's answer. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 21);
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, (const uint8_t *)big, sizeof(big), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	/* A name that could end the header line is never sent. */
	set_name(&dst, "a\r\nX-Evil: 1", 80);
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_ADDR);
	CHECK_INT(s5_client_errno(&c, S5C_E_ADDR), EHOSTUNREACH);
	/* CONNECT only. */
	set_name(&dst, "example.org", 80);
	s5_client_init_proto(&c, S5_PROTO_HTTP, S5_CMD_BIND, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_STATE);
}

/* SOCKS4 and SOCKS4a requests byte for byte; replies 90-93. */
static void
upstream_socks4(void)
{
	static const uint8_t ip[4] = { 10, 1, 2, 3 };
	static const uint8_t want4[] = { 4, 1, 0, 80, 10, 1, 2, 3, 'b', 'o', 'b', 0 };
	static const uint8_t want4a[] = { 4, 1, 0x01, 0xbb, 0, 0, 0, 1, 0,
	    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g', 0 };
	static const uint8_t granted[] = { 0, 90, 0x12, 0x34, 1, 2, 3, 4, 'x' };
	static const uint8_t codes[][2] = { { 91, ECONNREFUSED }, { 92, EACCES }, { 93, EACCES } };
	struct s5_cred cred = { .ulen = 3 };
	struct s5_client c;
	struct s5_addr dst, want_bnd;
	struct run run;
	uint8_t reply[8] = { 0 };
	size_t i;

	memcpy(cred.user, "bob", 4);
	s5_addr_set_ip4(&dst, ip, 80);
	s5_client_init_proto(&c, S5_PROTO_SOCKS4, S5_CMD_CONNECT, &dst, &cred);
	client_run(&c, granted, sizeof(granted), 0, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(run.sent_len, sizeof(want4));
	CHECK_MEM(run.sent, want4, sizeof(want4));
	CHECK_INT(run.took, 8);			/* 'x' is the target's */
	s5_addr_set_ip4(&want_bnd, (const uint8_t[4]){ 1, 2, 3, 4 }, 0x1234);
	CHECK(memcmp(&c.reply.bnd, &want_bnd, sizeof(want_bnd)) == 0);

	set_name(&dst, "example.org", 443);
	s5_client_init_proto(&c, S5_PROTO_SOCKS4A, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, granted, 8, 3, &run);
	CHECK_INT(run.r, S5C_DONE);
	CHECK_INT(run.sent_len, sizeof(want4a));
	CHECK_MEM(run.sent, want4a, sizeof(want4a));

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		reply[1] = codes[i][0];
		s5_client_init_proto(&c, S5_PROTO_SOCKS4A, S5_CMD_CONNECT, &dst, NULL);
		client_run(&c, reply, sizeof(reply), 0, &run);
		CHECK_INT(run.r, S5C_E_REPLY);
		CHECK_INT(c.status, codes[i][0]);
		CHECK_INT(s5_client_errno(&c, run.r), codes[i][1]);
	}
	reply[0] = 5;			/* a SOCKS5 server's answer */
	s5_client_init_proto(&c, S5_PROTO_SOCKS4A, S5_CMD_CONNECT, &dst, NULL);
	client_run(&c, reply, sizeof(reply), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);

	/* What SOCKS4 cannot carry: a name (socks4a can), IPv6. */
	s5_client_init_proto(&c, S5_PROTO_SOCKS4, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_ADDR);
	CHECK_INT(s5_client_errno(&c, S5C_E_ADDR), EHOSTUNREACH);
	s5_addr_set_ip6(&dst, (const uint8_t[16]){ [15] = 1 }, 80);
	s5_client_init_proto(&c, S5_PROTO_SOCKS4A, S5_CMD_CONNECT, &dst, NULL);
	CHECK_INT(s5_client_step(&c, NULL, 0, NULL), S5C_E_ADDR);
	CHECK_INT(s5_client_errno(&c, S5C_E_ADDR), EAFNOSUPPORT);
}

/* Pipelined: one write holds greeting (one method), credentials and
 * request; the replies are read in order, at every split of the input. */
static void
client_pipelined(void)
{
	static const uint8_t srv_none[] = { 0x05, 0x00,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39, 'H', 'T' };
	static const uint8_t srv_auth[] = { 0x05, 0x02, 0x01, 0x00,
	    0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39, 'H', 'T' };
	static const uint8_t auth[] = { 0x01, 3, 'b', 'o', 'b', 2, 'p', 'w' };
	static const uint8_t srv_other[] = { 0x05, 0x00 };
	static const uint8_t srv_refused[] = { 0x05, 0xff };
	static const uint8_t srv_badpw[] = { 0x05, 0x02, 0x01, 0x01 };
	struct s5_cred cred = { .ulen = 3, .plen = 2 };
	struct s5_client c;
	struct s5_addr dst;
	struct run run;
	size_t chunk;

	memcpy(cred.user, "bob", 3);
	memcpy(cred.pass, "pw", 2);
	client_addr(&dst);
	for (chunk = 0; chunk <= sizeof(srv_auth); chunk++) {
		s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
		c.pipeline = true;
		client_run(&c, srv_none, sizeof(srv_none), chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, sizeof(srv_none) - 2);
		/* One write: greeting offering NONE alone, then the request. */
		CHECK_INT(run.sent_len, 3 + sizeof(request_dn));
		CHECK_MEM(run.sent, "\x05\x01\x00", 3);
		CHECK_MEM(run.sent + 3, request_dn, sizeof(request_dn));
		CHECK_INT(c.reply.bnd.port, 12345);

		s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
		c.pipeline = true;
		client_run(&c, srv_auth, sizeof(srv_auth), chunk, &run);
		CHECK_INT(run.r, S5C_DONE);
		CHECK_INT(run.took, sizeof(srv_auth) - 2);
		CHECK_INT(run.sent_len, 3 + sizeof(auth) + sizeof(request_dn));
		CHECK_MEM(run.sent, "\x05\x01\x02", 3);
		CHECK_MEM(run.sent + 3, auth, sizeof(auth));
		CHECK_MEM(run.sent + 3 + sizeof(auth), request_dn, sizeof(request_dn));
		CHECK_INT(c.method, S5_METHOD_USERPASS);
	}
	/* A server that picks a method we did not offer cannot have read
	 * the rest as we meant it; one that refuses ours is refused. */
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	c.pipeline = true;
	client_run(&c, srv_other, sizeof(srv_other), 0, &run);
	CHECK_INT(run.r, S5C_E_PROTO);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, NULL);
	c.pipeline = true;
	client_run(&c, srv_refused, sizeof(srv_refused), 0, &run);
	CHECK_INT(run.r, S5C_E_NO_METHOD);
	s5_client_init(&c, S5_CMD_CONNECT, &dst, &cred);
	c.pipeline = true;
	client_run(&c, srv_badpw, sizeof(srv_badpw), 0, &run);
	CHECK_INT(run.r, S5C_E_AUTH);
}

void
test_client(void)
{
	UNIT_RUN(client_pipelined);
	UNIT_RUN(client_noauth);
	UNIT_RUN(client_learn);
	UNIT_RUN(client_bnd_types);
	UNIT_RUN(client_want);
	UNIT_RUN(client_auth);
	UNIT_RUN(client_method_failures);
	UNIT_RUN(client_reply_codes);
	UNIT_RUN(client_misc);
	UNIT_RUN(client_bind);
	UNIT_RUN(upstream_http_ok);
	UNIT_RUN(upstream_http_auth);
	UNIT_RUN(upstream_http_failures);
	UNIT_RUN(upstream_socks4);
}
