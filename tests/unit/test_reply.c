/* test_reply.c: RFC 1928 §6 replies, parsed (client side) and encoded. */
#include "unit.h"

static void
reply_vectors(void)
{
	static const uint8_t ok4[] = { 0x05, 0x00, 0x00, 0x01,
	    10, 1, 2, 3, 0xC3, 0x50 };
	static const uint8_t ok6[] = { 0x05, 0x00, 0x00, 0x04,
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x16 };
	static const uint8_t okdn[] = { 0x05, 0x00, 0x00, 0x03, 4,
	    'h', 'o', 's', 't', 0x00, 0x35 };
	static const uint8_t refused[] = { 0x05, 0x05, 0x00, 0x01,
	    0, 0, 0, 0, 0, 0 };
	/* Codes past 8 are the caller's to map; the framing is fine. */
	static const uint8_t odd[] = { 0x05, 0xF3, 0xAA, 0x01,
	    0, 0, 0, 0, 0, 0 };
	struct s5_reply r;

	CHECK_FRAMING(s5_parse_reply, ok4, sizeof(ok4), &r);
	CHECK_INT(r.rep, S5_REP_SUCCEEDED);
	CHECK_INT(r.bnd.atyp, S5_ATYP_IPV4);
	CHECK_MEM(r.bnd.u.ip4, ok4 + 4, 4);
	CHECK_INT(r.bnd.port, 50000);

	CHECK_FRAMING(s5_parse_reply, ok6, sizeof(ok6), &r);
	CHECK_INT(r.bnd.atyp, S5_ATYP_IPV6);
	CHECK_INT(r.bnd.u.ip6[15], 1);
	CHECK_INT(r.bnd.port, 22);

	CHECK_FRAMING(s5_parse_reply, okdn, sizeof(okdn), &r);
	CHECK_INT(r.bnd.atyp, S5_ATYP_DOMAIN);
	CHECK_STR(r.bnd.u.domain.name, "host");
	CHECK_INT(r.bnd.port, 53);

	CHECK_FRAMING(s5_parse_reply, refused, sizeof(refused), &r);
	CHECK_INT(r.rep, S5_REP_CONN_REFUSED);
	CHECK_FRAMING(s5_parse_reply, odd, sizeof(odd), &r);
	CHECK_INT(r.rep, 0xF3);
}

static void
reply_malformed(void)
{
	static const uint8_t ver[] = { 0x04, 0x5A, 0x00, 0x01, 1, 2, 3, 4, 0, 1 };
	static const uint8_t atyp[] = { 0x05, 0x00, 0x00, 0x07, 1, 2, 3, 4, 0, 1 };
	static const uint8_t dn0[] = { 0x05, 0x00, 0x00, 0x03, 0, 0, 1 };
	static const uint8_t dnnul[] = { 0x05, 0x00, 0x00, 0x03, 2, 'a', 0, 0, 1 };
	struct s5_reply r;

	/* A SOCKS4 reply (VN 0, CD 90) or anything not VER 5 is not ours. */
	CHECK_MALFORMED(s5_parse_reply, ver, sizeof(ver), 0,
	    S5_REP_GENERAL_FAILURE, &r);
	CHECK_MALFORMED(s5_parse_reply, atyp, sizeof(atyp), 3,
	    S5_REP_ATYP_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_reply, dn0, sizeof(dn0), 4,
	    S5_REP_GENERAL_FAILURE, &r);
	CHECK_MALFORMED(s5_parse_reply, dnnul, sizeof(dnnul), 6,
	    S5_REP_GENERAL_FAILURE, &r);
}

static void
reply_encode(void)
{
	static const uint8_t want[] = { 0x05, 0x04, 0x00, 0x01,
	    0, 0, 0, 0, 0, 0 };
	static const uint8_t zero[4];
	uint8_t buf[S5_MSG_MAX];
	struct s5_reply rep, back;
	size_t used;

	rep.rep = S5_REP_HOST_UNREACHABLE;
	s5_addr_set_ip4(&rep.bnd, zero, 0);
	CHECK_INT(s5_encode_reply(buf, sizeof(buf), &rep), 10);
	CHECK_MEM(buf, want, sizeof(want));
	CHECK_INT(s5_encode_reply(buf, 9, &rep), -1);

	rep.rep = S5_REP_SUCCEEDED;
	CHECK_INT(s5_addr_set_domain(&rep.bnd, "relay.example", 13, 1234), 0);
	CHECK_INT(s5_encode_reply(buf, sizeof(buf), &rep), 4 + 1 + 13 + 2);
	CHECK_INT(s5_encode_reply(buf, 19, &rep), -1);
	CHECK_INT(s5_parse_reply(buf, 20, &back, &used), 0);
	CHECK_INT(used, 20);
	CHECK_INT(back.rep, S5_REP_SUCCEEDED);
	CHECK_STR(back.bnd.u.domain.name, "relay.example");
	CHECK_INT(back.bnd.port, 1234);
}

void
test_reply(void)
{
	UNIT_RUN(reply_vectors);
	UNIT_RUN(reply_malformed);
	UNIT_RUN(reply_encode);
}
