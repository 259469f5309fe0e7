/* fuzz_auth_reply.c: RFC 1929 reply, VER 1 or (leniently) 5. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[2], status = 0;
	size_t used = 0;

	if (FUZZ_PARSE(s5_parse_auth_reply, data, size, &status, &used) != 0)
		return 0;
	FUZZ_CHECK(used == 2);
	FUZZ_CHECK(data[0] == S5_AUTH_VERSION || data[0] == S5_VERSION);
	FUZZ_CHECK(s5_encode_auth_reply(buf, sizeof(buf), status) == 2);
	/* We always answer with the RFC's VER 1. */
	FUZZ_CHECK(buf[0] == S5_AUTH_VERSION && buf[1] == data[1]);
	return 0;
}
