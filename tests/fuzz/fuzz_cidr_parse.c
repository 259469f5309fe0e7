/* fuzz_cidr_parse.c: CIDR text; parse, check masking, format, parse again. */
#include <arpa/inet.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size), ip[INET6_ADDRSTRLEN], buf[64];
	struct s5_cidr c, d;
	struct s5_addr a, name;
	const char *why = NULL;
	size_t i, nbytes;

	if (s5_cidr_parse(text, &c, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		free(text);
		return 0;
	}
	nbytes = c.v6 ? 16 : 4;
	FUZZ_CHECK(c.v6 <= 1 && c.bits <= nbytes * 8);
	/* Host bits are cleared, and nothing past the family's bytes is set. */
	for (i = 0; i < sizeof(c.net); i++) {
		unsigned keep = i * 8 >= c.bits ? 0 :
		    c.bits - i * 8 >= 8 ? 8 : c.bits - i * 8;
		uint8_t mask = keep == 0 ? 0 : (uint8_t)(0xFF << (8 - keep));

		FUZZ_CHECK((c.net[i] & (uint8_t)~mask) == 0);
	}

	/* The network address is inside its own range. */
	if (c.v6)
		s5_addr_set_ip6(&a, c.net, 1);
	else
		s5_addr_set_ip4(&a, c.net, 1);
	FUZZ_CHECK(s5_cidr_match_addr(&c, &a));
	/* A name never matches, not even /0. */
	FUZZ_CHECK(s5_addr_set_domain(&name, "x", 1, 1) == 0);
	FUZZ_CHECK(!s5_cidr_match_addr(&c, &name));

	FUZZ_CHECK(inet_ntop(c.v6 ? AF_INET6 : AF_INET, c.net, ip,
	    sizeof(ip)) != NULL);
	snprintf(buf, sizeof(buf), "%s/%u", ip, c.bits);
	FUZZ_CHECK(s5_cidr_parse(buf, &d, &why) == 0);
	FUZZ_CHECK(d.v6 == c.v6 && d.bits == c.bits);
	FUZZ_CHECK(memcmp(d.net, c.net, sizeof(c.net)) == 0);
	free(text);
	return 0;
}
