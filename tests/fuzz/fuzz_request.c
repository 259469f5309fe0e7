/* fuzz_request.c: RFC 1928 §4 request; parse, re-encode, compare. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[S5_MSG_MAX];
	struct s5_request req, back;
	size_t used = 0, u2 = 0;
	int len;

	if (FUZZ_PARSE(s5_parse_request, data, size, &req, &used) != 0)
		return 0;
	FUZZ_CHECK(req.cmd >= S5_CMD_CONNECT && req.cmd <= S5_CMD_UDP_ASSOCIATE);
	fuzz_addr_sane(&req.dst);
	FUZZ_CHECK(used == 3 + 1 + s5_addr_wire_len(&req.dst));
	len = s5_encode_request(buf, sizeof(buf), &req);
	FUZZ_CHECK(len >= 0 && (size_t)len == used);
	/* RSV is ignored on input and written as 0. */
	FUZZ_CHECK(buf[2] == 0);
	FUZZ_CHECK(memcmp(buf, data, 2) == 0);
	FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
	FUZZ_CHECK(s5_encode_request(buf, used - 1, &req) == -1);
	FUZZ_CHECK(s5_parse_request(buf, (size_t)len, &back, &u2) == 0);
	FUZZ_CHECK(u2 == used && back.cmd == req.cmd);
	FUZZ_CHECK(fuzz_addr_equal(&back.dst, &req.dst));
	return 0;
}
