/* fuzz_method_reply.c: the server's method choice (RFC 1928 §3). */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[2], method = 0;
	size_t used = 0;

	if (FUZZ_PARSE(s5_parse_method_reply, data, size, &method, &used) != 0)
		return 0;
	FUZZ_CHECK(used == 2);
	FUZZ_CHECK(s5_encode_method_reply(buf, sizeof(buf), method) == 2);
	FUZZ_CHECK(memcmp(buf, data, 2) == 0);
	FUZZ_CHECK(s5_encode_method_reply(buf, 1, method) == -1);
	return 0;
}
