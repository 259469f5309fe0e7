/* fuzz_addr_parse.c: "host:port" text; parse, format, parse again. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size), buf[S5_ADDR_TEXT_MAX];
	struct s5_addr a, b;
	struct sockaddr_storage ss;
	const char *why = NULL;
	int len, r;

	r = s5_addr_parse(text, &a, 1080, &why);
	if (r != 0) {
		FUZZ_CHECK(r == -1 && why != NULL && why[0] != '\0');
		free(text);
		return 0;
	}
	fuzz_addr_sane(&a);
	len = s5_addr_format(&a, buf, sizeof(buf));
	FUZZ_CHECK(len > 0 && (size_t)len == strlen(buf));
	FUZZ_CHECK(s5_addr_format(&a, buf, (size_t)len) == -1);
	s5_addr_format(&a, buf, sizeof(buf));
	FUZZ_CHECK(s5_addr_parse(buf, &b, 1, &why) == 0);
	FUZZ_CHECK(fuzz_addr_equal(&a, &b));

	/* Literals survive a trip through a sockaddr. */
	if (a.atyp != S5_ATYP_DOMAIN) {
		len = s5_addr_to_sockaddr(&a, &ss);
		FUZZ_CHECK(len > 0);
		FUZZ_CHECK(s5_addr_from_sockaddr(&b, (struct sockaddr *)&ss,
		    (size_t)len) == 0);
		/* ...except that v4-mapped IPv6 comes back as IPv4. */
		if (b.atyp == a.atyp)
			FUZZ_CHECK(fuzz_addr_equal(&a, &b));
		else
			FUZZ_CHECK(a.atyp == S5_ATYP_IPV6 &&
			    b.atyp == S5_ATYP_IPV4 &&
			    memcmp(a.u.ip6 + 12, b.u.ip4, 4) == 0);
		FUZZ_CHECK(s5_sockaddr_format((struct sockaddr *)&ss, buf,
		    sizeof(buf)) > 0);
	} else {
		FUZZ_CHECK(s5_addr_to_sockaddr(&a, &ss) == -1);
	}
	free(text);
	return 0;
}
