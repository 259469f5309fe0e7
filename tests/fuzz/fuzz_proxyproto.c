/*
 * fuzz_proxyproto.c: the PROXY protocol header (shared/proxyproto.c), the
 * first bytes a load balancer's connection carries.
 *
 * Checked: only 0, S5_NEED_MORE, -EINVAL or -E2BIG; a header is whole on
 * its own and every shorter prefix of it asks for more; a header with a
 * client address names two of one family, and a version 1 one reads back
 * as the same line when printed; a refusal stays a refusal with more
 * bytes behind it (no prefix refused then taken).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>

#include "fuzz.h"
#include "proxyproto.h"

/* A version 1 line printed from h, as a balancer would write it. */
static int
fuzz_v1_line(const struct pp_header *h, char *buf, size_t len)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&h->src;
	const struct sockaddr_in *d4 = (const struct sockaddr_in *)&h->dst;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&h->src;
	const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)&h->dst;
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

	if (h->src.ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		inet_ntop(AF_INET, &d4->sin_addr, b, sizeof(b));
		return snprintf(buf, len, "PROXY TCP4 %s %s %u %u\r\n", a, b,
		    ntohs(s4->sin_port), ntohs(d4->sin_port));
	}
	inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
	inet_ntop(AF_INET6, &d6->sin6_addr, b, sizeof(b));
	return snprintf(buf, len, "PROXY TCP6 %s %s %u %u\r\n", a, b,
	    ntohs(s6->sin6_port), ntohs(d6->sin6_port));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_header h, h2;
	size_t used = 0, used2 = 0, i;
	char line[PP_V1_MAX + 1];
	int r, n;

	r = pp_parse(data, size, &h, &used);
	FUZZ_CHECK(r == 0 || r == S5_NEED_MORE || r == -EINVAL || r == -E2BIG);
	if (r < 0) {
		/* More bytes behind a refused prefix never make it a header. */
		if (size > 0)
			FUZZ_CHECK(pp_parse(data, size - 1, &h2, &used2) != 0 ||
			    used2 > size - 1);
		return 0;
	}
	if (r == S5_NEED_MORE) {
		for (i = 0; i < size; i++)
			FUZZ_CHECK(pp_parse(data, i, &h2, &used2) == S5_NEED_MORE);
		return 0;
	}
	FUZZ_CHECK(used >= 1 && used <= size);
	FUZZ_CHECK(h.version == 1 || h.version == 2);
	FUZZ_CHECK(h.version != 1 || used <= PP_V1_MAX);
	FUZZ_CHECK(h.version != 2 || used <= PP_V2_HEADER_LEN + PP_V2_BODY_MAX);
	for (i = 0; i < used; i++)
		FUZZ_CHECK(pp_parse(data, i, &h2, &used2) == S5_NEED_MORE);
	FUZZ_CHECK(pp_parse(data, used, &h2, &used2) == 0 && used2 == used);
	if (h.local)
		return 0;
	FUZZ_CHECK(h.src.ss_family == h.dst.ss_family);
	FUZZ_CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
	FUZZ_CHECK(h.srclen == (h.src.ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
	if (h.version == 1) {
		/* Canonical text reads back to the same addresses and ports. */
		n = fuzz_v1_line(&h, line, sizeof(line));
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof(line));
		FUZZ_CHECK(pp_parse((const uint8_t *)line, (size_t)n, &h2, &used2) == 0);
		FUZZ_CHECK(used2 == (size_t)n && !h2.local);
		FUZZ_CHECK(memcmp(&h2.src, &h.src, h.srclen) == 0);
		FUZZ_CHECK(memcmp(&h2.dst, &h.dst, h.dstlen) == 0);
	}
	return 0;
}
