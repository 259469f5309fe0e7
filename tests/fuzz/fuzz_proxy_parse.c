/*
 * fuzz_proxy_parse.c: proxy URLs. The input is passed with its length and
 * no NUL (as pieces of SOCKSIFY_PROXY are), so ASan catches any overread.
 * A parsed URL is written out again, with USER and PASS percent-encoded,
 * and must parse to the same proxy.
 */
#include "fuzz.h"

static size_t
fuzz_put_encoded(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		out[len++] = '%';
		out[len++] = hex[(unsigned char)s[i] >> 4];
		out[len++] = hex[(unsigned char)s[i] & 0xF];
	}
	return len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char shown[2048], url[2048], host[S5_ADDR_TEXT_MAX];
	struct s5_proxy p, q;
	const char *why = NULL;
	size_t len;
	int r;

	r = s5_proxy_parse((const char *)data, size, &p, &why);
	if (r != 0) {
		FUZZ_CHECK(r == -1 && why != NULL && why[0] != '\0');
		return 0;
	}
	fuzz_addr_sane(&p.addr);
	FUZZ_CHECK(p.addr.port != 0);
	if (p.has_cred) {
		/* SOCKS5 needs a password (RFC 1929), SOCKS4 has none, HTTP either. */
		FUZZ_CHECK(p.cred.ulen >= 1);
		FUZZ_CHECK(p.proto != S5_PROTO_SOCKS5 || p.cred.plen >= 1);
		FUZZ_CHECK((p.proto != S5_PROTO_SOCKS4 && p.proto != S5_PROTO_SOCKS4A) ||
		    p.cred.plen == 0);
		FUZZ_CHECK(p.cred.user[p.cred.ulen] == '\0');
		FUZZ_CHECK(p.cred.pass[p.cred.plen] == '\0');
	}

	/* The log form never shows the password's bytes in their place. */
	r = s5_proxy_format(&p, shown, sizeof(shown));
	FUZZ_CHECK(r > 0 && (size_t)r == strlen(shown));
	FUZZ_CHECK(strchr(shown, ':') != NULL);

	/* Rebuild a full URL from the parts and parse it again. */
	len = (size_t)snprintf(url, sizeof(url), "%s://",
	    s5_proto_scheme(p.proto, p.remote_dns));
	if (p.has_cred) {
		len += fuzz_put_encoded(url + len, p.cred.user, p.cred.ulen);
		if (p.cred.plen > 0) {
			url[len++] = ':';
			len += fuzz_put_encoded(url + len, p.cred.pass, p.cred.plen);
		}
		url[len++] = '@';
	}
	r = s5_addr_format(&p.addr, host, sizeof(host));
	FUZZ_CHECK(r > 0);
	memcpy(url + len, host, (size_t)r);
	len += (size_t)r;
	FUZZ_CHECK(s5_proxy_parse(url, len, &q, &why) == 0);
	FUZZ_CHECK(q.remote_dns == p.remote_dns && q.has_cred == p.has_cred &&
	    q.proto == p.proto);
	FUZZ_CHECK(fuzz_addr_equal(&q.addr, &p.addr));
	if (p.has_cred) {
		FUZZ_CHECK(q.cred.ulen == p.cred.ulen && q.cred.plen == p.cred.plen);
		FUZZ_CHECK(memcmp(q.cred.user, p.cred.user, p.cred.ulen) == 0);
		FUZZ_CHECK(memcmp(q.cred.pass, p.cred.pass, p.cred.plen) == 0);
	} else {
		/* Without credentials the log form is the URL itself. */
		FUZZ_CHECK(s5_proxy_parse(shown, strlen(shown), &q, &why) == 0);
		FUZZ_CHECK(fuzz_addr_equal(&q.addr, &p.addr));
	}
	return 0;
}
