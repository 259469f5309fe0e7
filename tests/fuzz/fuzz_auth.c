/* fuzz_auth.c: RFC 1929 request; parse, re-encode, compare. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[S5_AUTH_MAX];
	struct s5_cred c;
	size_t used = 0;
	int len;

	if (FUZZ_PARSE(s5_parse_auth, data, size, &c, &used) != 0)
		return 0;
	FUZZ_CHECK(used == 3 + (size_t)c.ulen + c.plen);
	FUZZ_CHECK(c.user[c.ulen] == '\0' && c.pass[c.plen] == '\0');
	FUZZ_CHECK(s5_cred_equal(c.user, c.ulen, (const char *)data + 2, c.ulen));
	len = s5_encode_auth(buf, sizeof(buf), &c);
	if (c.ulen == 0 || c.plen == 0) {
		/* Parsed so the server can refuse it; never sent by us. */
		FUZZ_CHECK(len == -1);
		return 0;
	}
	FUZZ_CHECK(len >= 0 && (size_t)len == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(s5_encode_auth(buf, used - 1, &c) == -1);
	FUZZ_CHECK(s5_cred_equal(c.pass, c.plen, (const char *)buf + 3 + c.ulen,
	    c.plen));
	FUZZ_CHECK(!s5_cred_equal(c.pass, c.plen, c.pass, (size_t)c.plen + 1));
	return 0;
}
