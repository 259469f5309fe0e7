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
	/* A method chosen was offered, and a _STREAM twin never alone. */
	FUZZ_CHECK(s5_choose_method(&g, true) == S5_METHOD_UNACCEPTABLE ||
	    (memchr(g.methods, S5_METHOD_USERPASS, g.nmethods) != NULL &&
	    memchr(g.methods, s5_choose_method(&g, true), g.nmethods) != NULL &&
	    s5_method_base(s5_choose_method(&g, true)) == S5_METHOD_USERPASS));
	FUZZ_CHECK(s5_choose_method(&g, false) == S5_METHOD_UNACCEPTABLE ||
	    (memchr(g.methods, S5_METHOD_NONE, g.nmethods) != NULL &&
	    memchr(g.methods, s5_choose_method(&g, false), g.nmethods) != NULL &&
	    s5_method_base(s5_choose_method(&g, false)) == S5_METHOD_NONE));
	return 0;
}
