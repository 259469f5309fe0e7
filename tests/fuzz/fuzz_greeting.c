/* fuzz_greeting.c: RFC 1928 §3 greeting; parse, re-encode, compare. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[S5_GREETING_MAX];
	struct s5_greeting g;
	size_t used = 0;
	int len;

	if (FUZZ_PARSE(s5_parse_greeting, data, size, &g, &used) != 0)
		return 0;
	FUZZ_CHECK(g.nmethods >= 1);
	FUZZ_CHECK(used == 2 + (size_t)g.nmethods);
	len = s5_encode_greeting(buf, sizeof(buf), g.methods, g.nmethods);
	FUZZ_CHECK(len >= 0 && (size_t)len == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(s5_encode_greeting(buf, used - 1, g.methods, g.nmethods) == -1);
	(void)s5_choose_method(&g, data[used - 1] & 1);
	FUZZ_CHECK(s5_choose_method(&g, true) == S5_METHOD_USERPASS ||
	    s5_choose_method(&g, true) == S5_METHOD_UNACCEPTABLE);
	FUZZ_CHECK(s5_choose_method(&g, false) == S5_METHOD_NONE ||
	    s5_choose_method(&g, false) == S5_METHOD_UNACCEPTABLE);
	return 0;
}
