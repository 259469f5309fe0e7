/* fuzz_reply.c: RFC 1928 §6 reply; parse, re-encode, compare. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[S5_MSG_MAX];
	struct s5_reply rep, back;
	size_t used = 0, u2 = 0;
	int len;

	if (FUZZ_PARSE(s5_parse_reply, data, size, &rep, &used) != 0)
		return 0;
	fuzz_addr_sane(&rep.bnd);
	FUZZ_CHECK(rep.rep == data[1]);
	FUZZ_CHECK(used == 4 + s5_addr_wire_len(&rep.bnd));
	len = s5_encode_reply(buf, sizeof(buf), &rep);
	FUZZ_CHECK(len >= 0 && (size_t)len == used);
	FUZZ_CHECK(buf[2] == 0);
	FUZZ_CHECK(memcmp(buf, data, 2) == 0);
	FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
	FUZZ_CHECK(s5_encode_reply(buf, used - 1, &rep) == -1);
	FUZZ_CHECK(s5_parse_reply(buf, (size_t)len, &back, &u2) == 0);
	FUZZ_CHECK(u2 == used && back.rep == rep.rep);
	FUZZ_CHECK(fuzz_addr_equal(&back.bnd, &rep.bnd));
	return 0;
}
