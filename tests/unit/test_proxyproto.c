/* test_proxyproto.c: the PROXY protocol header, versions 1 and 2, with the
 * examples of HAProxy's proxy-protocol.txt. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "proxyproto.h"
#include "unit.h"

/* The text of an address of h (src or dst) and its port. */
static void
pp_text(const struct sockaddr_storage *ss, char *buf, size_t len, unsigned *port)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
		*port = ntohs(s4->sin_port);
	} else {
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(s6->sin6_port);
	}
}

#define CHECK_ADDR(ss, text, port) do {					\
	char pa_[INET6_ADDRSTRLEN];					\
	unsigned pp_;							\
	pp_text((ss), pa_, sizeof(pa_), &pp_);				\
	CHECK_STR(pa_, (text));						\
	CHECK_INT(pp_, (port));						\
} while (0)

static void
pp_v1_vectors(void)
{
	struct pp_header h;
	/* The spec's longest lines: TCP6 at 104 bytes, UNKNOWN at 107. */
	static const char worst[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	static const char longest[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	CHECK_FRAMING(pp_parse, (const uint8_t *)"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", sizeof("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n") - 1, &h);
	CHECK_INT(h.version, 1);
	CHECK(!h.local);
	CHECK_ADDR(&h.src, "192.168.0.1", 56324);
	CHECK_ADDR(&h.dst, "192.168.0.11", 443);
	CHECK_INT(sizeof(longest) - 1, PP_V1_MAX);
	CHECK_FRAMING(pp_parse, (const uint8_t *)longest, sizeof(longest) - 1, &h);
	CHECK(h.local);
	CHECK_FRAMING(pp_parse, (const uint8_t *)worst, sizeof(worst) - 1, &h);
	CHECK(!h.local);
	CHECK_ADDR(&h.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	CHECK_FRAMING(pp_parse, (const uint8_t *)"PROXY TCP6 ::1 2001:db8::2 0 1080\r\n", sizeof("PROXY TCP6 ::1 2001:db8::2 0 1080\r\n") - 1, &h);
	CHECK_ADDR(&h.src, "::1", 0);
	CHECK_ADDR(&h.dst, "2001:db8::2", 1080);
	CHECK_FRAMING(pp_parse, (const uint8_t *)"PROXY UNKNOWN\r\n", sizeof("PROXY UNKNOWN\r\n") - 1, &h);
	CHECK(h.local);
	/* UNKNOWN: the rest of the line is ignored, whatever it is. */
	CHECK_FRAMING(pp_parse, (const uint8_t *)"PROXY UNKNOWN ffff:: 1.2.3.4 x y z\r\n", sizeof("PROXY UNKNOWN ffff:: 1.2.3.4 x y z\r\n") - 1, &h);
	CHECK(h.local);
}

static void
pp_v1_malformed(void)
{
	struct pp_header h;
	static char longest[PP_V1_MAX + 8];
	size_t used;

	/* Refused at the first wrong byte. */
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"GET / HTTP/1.0\r\n", sizeof("GET / HTTP/1.0\r\n") - 1, 0, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"\x05\x01\x00", sizeof("\x05\x01\x00") - 1, 0, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY\tTCP4", sizeof("PROXY\tTCP4") - 1, 5, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4\n", sizeof("PROXY TCP4 1.2.3.4\n") - 1, 18, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4\r\r", sizeof("PROXY TCP4 1.2.3.4\r\r") - 1, 19, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2\x01", sizeof("PROXY TCP4 1.2\x01") - 1, 14, EINVAL, &h);
	/* Wrong only as a whole line: refused at its LF. */
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", sizeof("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n") - 1, 31, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n") - 1, 35, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n") - 1, 32, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", sizeof("PROXY TCP4 ::1 5.6.7.8 1 2\r\n") - 1, 27, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", sizeof("PROXY TCP6 1.2.3.4 ::1 1 2\r\n") - 1, 27, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", sizeof("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n") - 1, 32, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") - 1, 33, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") - 1, 29, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", sizeof("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n") - 1, 30, EINVAL, &h);
	CHECK_MALFORMED(pp_parse, (const uint8_t *)"PROXY \r\n", sizeof("PROXY \r\n") - 1, 7, EINVAL, &h);
	/* No CR LF within 107 bytes: refused at the 107th. */
	memcpy(longest, "PROXY UNKNOWN ", 14);
	memset(longest + 14, 'x', sizeof(longest) - 14);
	CHECK_INT(pp_parse((const uint8_t *)longest, PP_V1_MAX - 1, &h, &used), S5_NEED_MORE);
	CHECK_INT(pp_parse((const uint8_t *)longest, PP_V1_MAX, &h, &used), -EINVAL);
	longest[PP_V1_MAX - 1] = '\r';	/* LF would be byte 108 */
	CHECK_INT(pp_parse((const uint8_t *)longest, PP_V1_MAX, &h, &used), -EINVAL);
}

/* A version 2 header: cmd, family/transport, body of len bytes. */
static size_t
pp_v2(uint8_t *buf, uint8_t vercmd, uint8_t fam, const uint8_t *body, size_t len)
{
	static const uint8_t sig[PP_V2_SIG_LEN] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
	};

	memcpy(buf, sig, sizeof(sig));
	buf[12] = vercmd;
	buf[13] = fam;
	buf[14] = (uint8_t)(len >> 8);
	buf[15] = (uint8_t)len;
	if (len > 0)		/* body may be NULL then: memcpy's wants a pointer */
		memcpy(buf + PP_V2_HEADER_LEN, body, len);
	return PP_V2_HEADER_LEN + len;
}

static void
pp_v2_vectors(void)
{
	static const uint8_t in4[] = { 192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb,
	    /* a TLV after the addresses (PP2_TYPE_AUTHORITY "x") */ 0x02, 0x00, 0x01, 'x' };
	uint8_t in6[36 + 3], buf[PP_V2_HEADER_LEN + 300], body[216];
	struct pp_header h;
	size_t n;

	n = pp_v2(buf, 0x21, 0x11, in4, sizeof(in4));
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK_INT(h.version, 2);
	CHECK(!h.local);
	CHECK_ADDR(&h.src, "192.168.0.1", 56324);
	CHECK_ADDR(&h.dst, "192.168.0.11", 443);

	memset(in6, 0, sizeof(in6));
	in6[15] = 1;				/* ::1 */
	in6[16] = 0x20, in6[17] = 0x01, in6[18] = 0x0d, in6[19] = 0xb8, in6[31] = 2;
	in6[32] = 0x04, in6[33] = 0x38;		/* 1080 */
	in6[34] = 0x00, in6[35] = 0x50;		/* 80 */
	n = pp_v2(buf, 0x21, 0x21, in6, 36);
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK_ADDR(&h.src, "::1", 1080);
	CHECK_ADDR(&h.dst, "2001:db8::2", 80);

	/* LOCAL (a health check): no address, whatever the family says. */
	n = pp_v2(buf, 0x20, 0x00, NULL, 0);
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK(h.local);
	n = pp_v2(buf, 0x20, 0x11, in4, 12);
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK(h.local);
	/* PROXY over UNSPEC or UNIX: nothing we can use, so local. */
	n = pp_v2(buf, 0x21, 0x00, NULL, 0);
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK(h.local);
	memset(body, 'u', sizeof(body));
	n = pp_v2(buf, 0x21, 0x31, body, sizeof(body));
	CHECK_FRAMING(pp_parse, buf, n, &h);
	CHECK(h.local);
}

static void
pp_v2_malformed(void)
{
	static const uint8_t in4[12] = { 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2 };
	uint8_t buf[PP_V2_HEADER_LEN + 64];
	struct pp_header h;
	size_t n, used;

	n = pp_v2(buf, 0x21, 0x11, in4, sizeof(in4));
	buf[7] = 'X';			/* the signature says 'Q' there */
	CHECK_MALFORMED(pp_parse, buf, n, 7, EINVAL, &h);
	n = pp_v2(buf, 0x11, 0x11, in4, sizeof(in4));	/* version 1 in binary */
	CHECK_MALFORMED(pp_parse, buf, n, 12, EINVAL, &h);
	n = pp_v2(buf, 0x22, 0x11, in4, sizeof(in4));	/* command 2 */
	CHECK_MALFORMED(pp_parse, buf, n, 12, EINVAL, &h);
	n = pp_v2(buf, 0x21, 0x41, in4, sizeof(in4));	/* family 4 */
	CHECK_MALFORMED(pp_parse, buf, n, 13, EINVAL, &h);
	n = pp_v2(buf, 0x21, 0x13, in4, sizeof(in4));	/* transport 3 */
	CHECK_MALFORMED(pp_parse, buf, n, 13, EINVAL, &h);
	n = pp_v2(buf, 0x21, 0x12, in4, sizeof(in4));	/* INET over DGRAM */
	CHECK_MALFORMED(pp_parse, buf, n, 15, EINVAL, &h);
	n = pp_v2(buf, 0x21, 0x11, in4, 11);		/* too short for INET */
	CHECK_MALFORMED(pp_parse, buf, n, 15, EINVAL, &h);
	n = pp_v2(buf, 0x21, 0x21, in4, 12);		/* too short for INET6 */
	CHECK_MALFORMED(pp_parse, buf, n, 15, EINVAL, &h);
	/* Longer than we wait for: refused once the length is read. */
	n = pp_v2(buf, 0x21, 0x11, in4, sizeof(in4));
	buf[14] = (PP_V2_BODY_MAX + 1) >> 8;
	buf[15] = (PP_V2_BODY_MAX + 1) & 0xff;
	CHECK_INT(pp_parse(buf, PP_V2_HEADER_LEN - 1, &h, &used), S5_NEED_MORE);
	CHECK_INT(pp_parse(buf, PP_V2_HEADER_LEN, &h, &used), -E2BIG);
}

void
test_proxyproto(void)
{
	UNIT_RUN(pp_v1_vectors);
	UNIT_RUN(pp_v1_malformed);
	UNIT_RUN(pp_v2_vectors);
	UNIT_RUN(pp_v2_malformed);
}
