/*
 * fuzz_upstream.c: the HTTP CONNECT and SOCKS4/4a machines (upstream.c)
 * against a fuzzed destination name and a fuzzed proxy.
 *
 * Input: FLAGS, NAMELEN, NAMELEN octets of destination name, K, K chunk
 * sizes, then the proxy's byte stream. FLAGS picks the protocol (HTTP,
 * SOCKS4a, SOCKS4 with an IPv4 destination) and whether a credential is
 * offered; chunk sizes are used in turn (0: exactly s5_client_want()).
 * Checked: the request an HTTP hop sends has exactly its header lines
 * (no name can add one) and ends with the empty line; the machine never
 * takes more than offered, takes all it asked for, and when it is done it
 * has taken exactly the answer: for HTTP a 2xx status line and a header
 * ending at the first empty line, for SOCKS4 eight octets granting it.
 */
#include "fuzz.h"

#define FUZZ_CHUNKS_MAX	16
#define FUZZ_STEPS_MAX	100000

/* Occurrences of "\r\n" in n octets at p. */
static size_t
crlfs(const uint8_t *p, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i + 1 < n; i++)
		k += p[i] == '\r' && p[i + 1] == '\n';
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t protos[] = { S5_PROTO_HTTP, S5_PROTO_SOCKS4A, S5_PROTO_SOCKS4 };
	static const uint8_t ip[4] = { 192, 0, 2, 7 };
	const uint8_t *chunks, *srv;
	struct s5_client c;
	struct s5_cred cred;
	struct s5_addr dst;
	size_t namelen, nchunks, n, took = 0, used, k, want, steps, off;
	uint8_t flags, proto;
	int r;

	if (size < 3)
		return 0;
	flags = data[0];
	namelen = data[1];
	if (size < 3 + namelen)
		return 0;
	nchunks = data[2 + namelen] % FUZZ_CHUNKS_MAX;
	off = 3 + namelen;
	if (size < off + nchunks)
		return 0;
	chunks = data + off;
	srv = data + off + nchunks;
	n = size - off - nchunks;
	proto = protos[(flags >> 1) % 3];

	memset(&cred, 0, sizeof(cred));
	cred.ulen = 4;
	memcpy(cred.user, "user", 5);
	cred.plen = 4;
	memcpy(cred.pass, "p:ss", 5);
	if (proto == S5_PROTO_SOCKS4 || namelen == 0 ||
	    s5_addr_set_domain(&dst, (const char *)data + 2, namelen, 8443) != 0)
		s5_addr_set_ip4(&dst, ip, 8443);
	s5_client_init_proto(&c, proto, S5_CMD_CONNECT, &dst, (flags & 1) ? &cred : NULL);

	r = s5_client_step(&c, NULL, 0, &used);
	for (steps = 0; steps < FUZZ_STEPS_MAX; steps++) {
		if (r == S5C_WANT_WRITE) {
			FUZZ_CHECK(c.out_len > 0 && c.out_len <= sizeof(c.out));
			if (proto == S5_PROTO_HTTP) {
				/* Request line, Host, [Proxy-Authorization], empty line. */
				FUZZ_CHECK(crlfs(c.out, c.out_len) == ((flags & 1) ? 4u : 3u));
				FUZZ_CHECK(c.out_len >= 4 &&
				    memcmp(c.out + c.out_len - 4, "\r\n\r\n", 4) == 0);
			}
			r = s5_client_step(&c, NULL, 0, &used);
			FUZZ_CHECK(used == 0);
			continue;
		}
		if (r != S5C_WANT_READ)
			break;
		want = s5_client_want(&c);
		FUZZ_CHECK(want > 0 && want <= 8);
		k = nchunks > 0 ? chunks[steps % nchunks] : 0;
		if (k == 0)
			k = want;
		if (k > n - took)
			k = n - took;
		if (k == 0)
			break;
		r = s5_client_step(&c, srv + took, k, &used);
		FUZZ_CHECK(used <= k);
		if (k <= want)
			FUZZ_CHECK(used == k);
		took += used;
	}
	FUZZ_CHECK(steps < FUZZ_STEPS_MAX);
	FUZZ_CHECK(s5_client_strerror(r) != NULL);
	if (r < 0) {
		FUZZ_CHECK(r >= S5C_E_ADDR);
		FUZZ_CHECK(s5_client_errno(&c, r) > 0);
		return 0;
	}
	if (r != S5C_DONE)
		return 0;
	if (proto == S5_PROTO_HTTP) {
		/* A 2xx status line; the first empty line ends what was taken. */
		FUZZ_CHECK(took >= 16 && memcmp(srv, "HTTP/1.", 7) == 0 && srv[9] == '2');
		FUZZ_CHECK(memcmp(srv + took - 4, "\r\n\r\n", 4) == 0);
		for (k = 0; k + 4 < took; k++)
			FUZZ_CHECK(memcmp(srv + k, "\r\n\r\n", 4) != 0);
	} else {
		FUZZ_CHECK(took == 8 && srv[1] == 90);
	}
	return 0;
}
