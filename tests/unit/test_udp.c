/* test_udp.c: the RFC 1928 §7 UDP request header. */
#include "unit.h"

static void
udp_vectors(void)
{
	/* A DNS query to 8.8.8.8:53, header then DATA. */
	static const uint8_t dgram[] = { 0x00, 0x00, 0x00, 0x01,
	    8, 8, 8, 8, 0x00, 0x35, 0xAB, 0xCD, 0x01, 0x00 };
	static const uint8_t frag[] = { 0x00, 0x00, 0x81, 0x03, 1, 'x',
	    0x00, 0x07 };
	static const uint8_t v6[] = { 0x00, 0x00, 0x00, 0x04,
	    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0x13, 0x88 };
	struct s5_udp_header h;
	size_t used;

	CHECK_FRAMING(s5_parse_udp_header, dgram, 10, &h);
	CHECK_INT(s5_parse_udp_header(dgram, sizeof(dgram), &h, &used), 0);
	CHECK_INT(used, 10);
	CHECK_INT(h.frag, 0);
	CHECK_INT(h.addr.atyp, S5_ATYP_IPV4);
	CHECK_INT(h.addr.u.ip4[3], 8);
	CHECK_INT(h.addr.port, 53);

	/* FRAG is reported as is; dropping it is the relay's business. */
	CHECK_FRAMING(s5_parse_udp_header, frag, sizeof(frag), &h);
	CHECK_INT(h.frag, 0x81);
	CHECK_STR(h.addr.u.domain.name, "x");
	CHECK_INT(h.addr.port, 7);

	CHECK_FRAMING(s5_parse_udp_header, v6, sizeof(v6), &h);
	CHECK_INT(h.addr.atyp, S5_ATYP_IPV6);
	CHECK_INT(h.addr.u.ip6[0], 0xfe);
	CHECK_INT(h.addr.port, 5000);
}

static void
udp_malformed(void)
{
	static const uint8_t rsv0[] = { 0x01, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 1 };
	static const uint8_t rsv1[] = { 0x00, 0x05, 0x00, 0x01, 1, 2, 3, 4, 0, 1 };
	static const uint8_t atyp[] = { 0x00, 0x00, 0x00, 0x06, 1, 2, 3, 4, 0, 1 };
	static const uint8_t dn0[] = { 0x00, 0x00, 0x00, 0x03, 0, 0, 1 };
	struct s5_udp_header h;

	CHECK_MALFORMED(s5_parse_udp_header, rsv0, sizeof(rsv0), 0,
	    S5_REP_GENERAL_FAILURE, &h);
	CHECK_MALFORMED(s5_parse_udp_header, rsv1, sizeof(rsv1), 1,
	    S5_REP_GENERAL_FAILURE, &h);
	CHECK_MALFORMED(s5_parse_udp_header, atyp, sizeof(atyp), 3,
	    S5_REP_ATYP_NOT_SUPPORTED, &h);
	CHECK_MALFORMED(s5_parse_udp_header, dn0, sizeof(dn0), 4,
	    S5_REP_GENERAL_FAILURE, &h);
}

static void
udp_encode(void)
{
	static const uint8_t want[] = { 0x00, 0x00, 0x00, 0x01,
	    192, 168, 1, 1, 0x00, 0x35 };
	static const uint8_t ip[4] = { 192, 168, 1, 1 };
	uint8_t buf[S5_UDP_HEADER_MAX];
	struct s5_udp_header h, back;
	size_t used;

	h.frag = 0;
	s5_addr_set_ip4(&h.addr, ip, 53);
	CHECK_INT(s5_encode_udp_header(buf, sizeof(buf), &h), 10);
	CHECK_MEM(buf, want, sizeof(want));
	CHECK_INT(s5_encode_udp_header(buf, 9, &h), -1);

	h.frag = 3;
	CHECK_INT(s5_addr_set_domain(&h.addr, "ns.example", 10, 5353), 0);
	CHECK_INT(s5_encode_udp_header(buf, sizeof(buf), &h), 4 + 1 + 10 + 2);
	CHECK_INT(s5_parse_udp_header(buf, 17, &back, &used), 0);
	CHECK_INT(used, 17);
	CHECK_INT(back.frag, 3);
	CHECK_STR(back.addr.u.domain.name, "ns.example");
	CHECK_INT(back.addr.port, 5353);
}

void
test_udp(void)
{
	UNIT_RUN(udp_vectors);
	UNIT_RUN(udp_malformed);
	UNIT_RUN(udp_encode);
}
