/* test_request.c: RFC 1928 §4 requests, parsed and encoded. */
#include "unit.h"

static void
request_vectors(void)
{
	/* CONNECT 192.0.2.1:80 */
	static const uint8_t v4[] = { 0x05, 0x01, 0x00, 0x01,
	    192, 0, 2, 1, 0x00, 0x50 };
	/* BIND [2001:db8::1]:443 */
	static const uint8_t v6[] = { 0x05, 0x02, 0x00, 0x04,
	    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	    0x01, 0xBB };
	/* UDP ASSOCIATE example.com:65535 */
	static const uint8_t dn[] = { 0x05, 0x03, 0x00, 0x03, 11,
	    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0xFF, 0xFF };
	/* RSV is ignored. */
	static const uint8_t rsv[] = { 0x05, 0x01, 0x7F, 0x01,
	    10, 0, 0, 1, 0x00, 0x00 };
	struct s5_request r;

	CHECK_FRAMING(s5_parse_request, v4, sizeof(v4), &r);
	CHECK_INT(r.cmd, S5_CMD_CONNECT);
	CHECK_INT(r.dst.atyp, S5_ATYP_IPV4);
	CHECK_MEM(r.dst.u.ip4, v4 + 4, 4);
	CHECK_INT(r.dst.port, 80);

	CHECK_FRAMING(s5_parse_request, v6, sizeof(v6), &r);
	CHECK_INT(r.cmd, S5_CMD_BIND);
	CHECK_INT(r.dst.atyp, S5_ATYP_IPV6);
	CHECK_MEM(r.dst.u.ip6, v6 + 4, 16);
	CHECK_INT(r.dst.port, 443);

	CHECK_FRAMING(s5_parse_request, dn, sizeof(dn), &r);
	CHECK_INT(r.cmd, S5_CMD_UDP_ASSOCIATE);
	CHECK_INT(r.dst.atyp, S5_ATYP_DOMAIN);
	CHECK_INT(r.dst.u.domain.len, 11);
	CHECK_STR(r.dst.u.domain.name, "example.com");
	CHECK_INT(r.dst.port, 65535);

	CHECK_FRAMING(s5_parse_request, rsv, sizeof(rsv), &r);
	CHECK_INT(r.dst.port, 0);
	CHECK_INT(r.dst.u.ip4[0], 10);
}

static void
request_long_domain(void)
{
	uint8_t msg[S5_MSG_MAX];
	struct s5_request r;

	msg[0] = 0x05;
	msg[1] = 0x01;
	msg[2] = 0x00;
	msg[3] = 0x03;
	msg[4] = 255;
	memset(msg + 5, 'a', 255);
	msg[260] = 0x1F;
	msg[261] = 0x90;
	CHECK_FRAMING(s5_parse_request, msg, sizeof(msg), &r);
	CHECK_INT(r.dst.u.domain.len, 255);
	CHECK_INT(strlen(r.dst.u.domain.name), 255);
	CHECK_INT(r.dst.port, 8080);
}

static void
request_malformed(void)
{
	static const uint8_t ver[] = { 0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80 };
	static const uint8_t cmd0[] = { 0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 80 };
	static const uint8_t cmd4[] = { 0x05, 0x04, 0x00, 0x01, 1, 2, 3, 4, 0, 80 };
	static const uint8_t atyp0[] = { 0x05, 0x01, 0x00, 0x00, 1, 2, 3, 4, 0, 80 };
	static const uint8_t atyp2[] = { 0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80 };
	static const uint8_t atyp5[] = { 0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0, 80 };
	static const uint8_t dn0[] = { 0x05, 0x01, 0x00, 0x03, 0, 0, 80 };
	static const uint8_t dnnul[] = { 0x05, 0x01, 0x00, 0x03, 3,
	    'a', 0, 'b', 0, 80 };
	static const uint8_t dnnul0[] = { 0x05, 0x01, 0x00, 0x03, 2,
	    0, 'b', 0, 80 };
	static const uint8_t both[] = { 0x04, 0x09, 0x00, 0x09 };
	struct s5_request r;
	size_t used;

	/* VER first, then CMD, then ATYP: each as soon as its byte arrives. */
	CHECK_MALFORMED(s5_parse_request, ver, sizeof(ver), 0,
	    S5_REP_GENERAL_FAILURE, &r);
	CHECK_MALFORMED(s5_parse_request, cmd0, sizeof(cmd0), 1,
	    S5_REP_CMD_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_request, cmd4, sizeof(cmd4), 1,
	    S5_REP_CMD_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_request, atyp0, sizeof(atyp0), 3,
	    S5_REP_ATYP_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_request, atyp2, sizeof(atyp2), 3,
	    S5_REP_ATYP_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_request, atyp5, sizeof(atyp5), 3,
	    S5_REP_ATYP_NOT_SUPPORTED, &r);
	CHECK_MALFORMED(s5_parse_request, dn0, sizeof(dn0), 4,
	    S5_REP_GENERAL_FAILURE, &r);
	CHECK_MALFORMED(s5_parse_request, dnnul, sizeof(dnnul), 6,
	    S5_REP_GENERAL_FAILURE, &r);
	CHECK_MALFORMED(s5_parse_request, dnnul0, sizeof(dnnul0), 5,
	    S5_REP_GENERAL_FAILURE, &r);

	/* The first wrong byte decides: a bad VER hides a bad CMD. */
	CHECK_INT(s5_parse_request(both, sizeof(both), &r, &used),
	    -S5_REP_GENERAL_FAILURE);
	CHECK_INT(s5_err_rep(-S5_REP_CMD_NOT_SUPPORTED), S5_REP_CMD_NOT_SUPPORTED);
	CHECK_INT(s5_err_rep(0), S5_REP_SUCCEEDED);
}

static void
request_encode(void)
{
	static const uint8_t want4[] = { 0x05, 0x01, 0x00, 0x01,
	    127, 0, 0, 1, 0x04, 0x38 };
	static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };
	static const uint8_t ip4[4] = { 127, 0, 0, 1 };
	uint8_t buf[S5_MSG_MAX];
	struct s5_request req, back;
	char name[256];
	size_t used;

	req.cmd = S5_CMD_CONNECT;
	s5_addr_set_ip4(&req.dst, ip4, 1080);
	CHECK_INT(s5_encode_request(buf, sizeof(buf), &req), 10);
	CHECK_MEM(buf, want4, sizeof(want4));
	CHECK_INT(s5_encode_request(buf, 10, &req), 10);
	CHECK_INT(s5_encode_request(buf, 9, &req), -1);
	CHECK_INT(s5_encode_request(buf, 3, &req), -1);

	req.cmd = S5_CMD_BIND;
	s5_addr_set_ip6(&req.dst, ip6, 21);
	CHECK_INT(s5_encode_request(buf, sizeof(buf), &req), 22);
	CHECK_INT(s5_encode_request(buf, 21, &req), -1);
	CHECK_INT(s5_parse_request(buf, 22, &back, &used), 0);
	CHECK_INT(used, 22);
	CHECK_INT(back.cmd, S5_CMD_BIND);
	CHECK_MEM(back.dst.u.ip6, ip6, 16);
	CHECK_INT(back.dst.port, 21);

	memset(name, 'n', 255);
	CHECK_INT(s5_addr_set_domain(&req.dst, name, 255, 7), 0);
	req.cmd = S5_CMD_CONNECT;
	CHECK_INT(s5_encode_request(buf, sizeof(buf), &req), S5_MSG_MAX);
	CHECK_INT(s5_encode_request(buf, S5_MSG_MAX - 1, &req), -1);
	CHECK_INT(s5_parse_request(buf, S5_MSG_MAX, &back, &used), 0);
	CHECK_INT(back.dst.u.domain.len, 255);
	CHECK_MEM(back.dst.u.domain.name, name, 255);
	CHECK_INT(back.dst.port, 7);

	/* Nothing goes on the wire for an address that cannot be encoded. */
	req.dst.atyp = 0x02;
	CHECK_INT(s5_encode_request(buf, sizeof(buf), &req), -1);
	memset(&req.dst, 0, sizeof(req.dst));
	req.dst.atyp = S5_ATYP_DOMAIN;
	CHECK_INT(s5_encode_request(buf, sizeof(buf), &req), -1);
}

void
test_request(void)
{
	UNIT_RUN(request_vectors);
	UNIT_RUN(request_long_domain);
	UNIT_RUN(request_malformed);
	UNIT_RUN(request_encode);
}
