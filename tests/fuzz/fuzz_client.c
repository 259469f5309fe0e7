/*
 * fuzz_client.c: the client machine against a fuzzed server.
 *
 * Input: FLAGS, K, K chunk sizes, then the server's byte stream. FLAGS picks
 * the command, whether a credential is offered, and (bit 4) whether the
 * handshake is pipelined (all of it in one write); chunk sizes are used in
 * turn (0 means "exactly s5_client_want()"). Checked: the machine never takes
 * more than offered, never passes a message boundary, and when it is done it
 * has taken exactly the method reply, the auth reply when USERPASS was
 * chosen, and one reply, as the plain parsers frame them; a BIND then
 * takes exactly one more reply when asked to.
 */
#include "fuzz.h"

#define FUZZ_CHUNKS_MAX	16
#define FUZZ_STEPS_MAX	100000

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t cmds[] = { S5_CMD_CONNECT, S5_CMD_BIND,
	    S5_CMD_UDP_ASSOCIATE };
	const uint8_t *chunks, *srv;
	struct s5_client c;
	struct s5_cred cred;
	struct s5_addr dst;
	struct s5_reply rep;
	size_t nchunks, n, took = 0, used, k, want, steps, expect, u;
	uint8_t flags, m;
	int r;

	if (size < 2)
		return 0;
	flags = data[0];
	nchunks = data[1] % FUZZ_CHUNKS_MAX;
	if (size < 2 + nchunks)
		return 0;
	chunks = data + 2;
	srv = data + 2 + nchunks;
	n = size - 2 - nchunks;

	memset(&cred, 0, sizeof(cred));
	cred.ulen = 4;
	memcpy(cred.user, "user", 5);
	cred.plen = 4;
	memcpy(cred.pass, "pass", 5);
	s5_addr_set_domain(&dst, "example.com", 11, 443);
	s5_client_init(&c, cmds[(flags >> 1) % 3], &dst,
	    (flags & 1) ? &cred : NULL);
	c.pipeline = (flags & 16) != 0;

	r = s5_client_step(&c, NULL, 0, &used);
	for (steps = 0; steps < FUZZ_STEPS_MAX; steps++) {
		if (r == S5C_WANT_WRITE) {
			FUZZ_CHECK(c.out_len > 0 && c.out_len <= sizeof(c.out));
			r = s5_client_step(&c, NULL, 0, &used);
			FUZZ_CHECK(used == 0);
			continue;
		}
		if (r != S5C_WANT_READ)
			break;
		want = s5_client_want(&c);
		FUZZ_CHECK(want > 0 && want <= S5_MSG_MAX);
		k = nchunks > 0 ? chunks[steps % nchunks] : 0;
		if (k == 0)
			k = want;
		if (k > n - took)
			k = n - took;
		if (k == 0)
			break;
		r = s5_client_step(&c, srv + took, k, &used);
		FUZZ_CHECK(used <= k);
		/* Offered no more than want, it takes all of it. */
		if (k <= want)
			FUZZ_CHECK(used == k);
		took += used;
	}
	FUZZ_CHECK(steps < FUZZ_STEPS_MAX);
	FUZZ_CHECK(r <= S5C_WANT_WRITE && r >= S5C_E_STATE);
	FUZZ_CHECK(s5_client_strerror(r) != NULL);
	if (r < 0) {
		FUZZ_CHECK(s5_client_errno(&c, r) > 0);
		FUZZ_CHECK(s5_client_step(&c, NULL, 0, &used) == S5C_E_STATE);
	}
	if (r != S5C_DONE && r != S5C_E_REPLY)
		return 0;

	/* The stream as the plain parsers frame it. */
	FUZZ_CHECK(s5_parse_method_reply(srv, n, &m, &u) == 0 && u == 2);
	FUZZ_CHECK(m == c.method);
	expect = 2;
	if (m == S5_METHOD_USERPASS) {
		FUZZ_CHECK(flags & 1);
		FUZZ_CHECK(s5_parse_auth_reply(srv + expect, n - expect, &m,
		    &u) == 0 && m == S5_AUTH_SUCCESS);
		expect += u;
	} else {
		FUZZ_CHECK(m == S5_METHOD_NONE);
	}
	FUZZ_CHECK(s5_parse_reply(srv + expect, n - expect, &rep, &u) == 0);
	expect += u;
	FUZZ_CHECK(took == expect);
	FUZZ_CHECK(rep.rep == c.reply.rep);
	FUZZ_CHECK(fuzz_addr_equal(&rep.bnd, &c.reply.bnd));
	FUZZ_CHECK((r == S5C_DONE) == (rep.rep == S5_REP_SUCCEEDED));
	if (r != S5C_DONE || c.cmd != S5_CMD_BIND) {
		FUZZ_CHECK(s5_client_await_peer(&c) == S5C_E_STATE);
		return 0;
	}

	/* BIND's second reply (RFC 1928 §6), read exactly as the first. */
	r = s5_client_await_peer(&c);
	for (steps = 0; r == S5C_WANT_READ && steps < FUZZ_STEPS_MAX; steps++) {
		want = s5_client_want(&c);
		FUZZ_CHECK(want > 0 && want <= S5_MSG_MAX);
		if ((k = want) > n - took)
			k = n - took;
		if (k == 0)
			return 0;
		r = s5_client_step(&c, srv + took, k, &used);
		FUZZ_CHECK(used == k);
		took += used;
	}
	if (r != S5C_DONE && r != S5C_E_REPLY)
		return 0;
	FUZZ_CHECK(s5_parse_reply(srv + expect, n - expect, &rep, &u) == 0);
	FUZZ_CHECK(took == expect + u);
	FUZZ_CHECK((r == S5C_DONE) == (rep.rep == S5_REP_SUCCEEDED));
	FUZZ_CHECK(s5_client_await_peer(&c) == S5C_E_STATE);
	return 0;
}
