/* fuzz_udp_header.c: RFC 1928 §7 UDP request header; exact round trip. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[S5_UDP_HEADER_MAX];
	struct s5_udp_header h;
	size_t used = 0;
	int len;

	if (FUZZ_PARSE(s5_parse_udp_header, data, size, &h, &used) != 0)
		return 0;
	fuzz_addr_sane(&h.addr);
	FUZZ_CHECK(h.frag == data[2]);
	FUZZ_CHECK(used <= S5_UDP_HEADER_MAX);
	len = s5_encode_udp_header(buf, sizeof(buf), &h);
	FUZZ_CHECK(len >= 0 && (size_t)len == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(s5_encode_udp_header(buf, used - 1, &h) == -1);
	return 0;
}
