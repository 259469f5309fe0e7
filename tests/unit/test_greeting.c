/* test_greeting.c: RFC 1928 §3 method negotiation, both directions. */
#include "unit.h"

static void
greeting_vectors(void)
{
	static const uint8_t one[] = { 0x05, 0x01, 0x00 };
	static const uint8_t two[] = { 0x05, 0x02, 0x00, 0x02 };
	uint8_t big[S5_GREETING_MAX];
	struct s5_greeting g;
	size_t used, i;

	CHECK_FRAMING(s5_parse_greeting, one, sizeof(one), &g);
	CHECK_INT(g.nmethods, 1);
	CHECK_INT(g.methods[0], S5_METHOD_NONE);

	CHECK_FRAMING(s5_parse_greeting, two, sizeof(two), &g);
	CHECK_INT(g.nmethods, 2);
	CHECK_INT(g.methods[0], S5_METHOD_NONE);
	CHECK_INT(g.methods[1], S5_METHOD_USERPASS);

	/* All 255 methods. */
	big[0] = 0x05;
	big[1] = 255;
	for (i = 0; i < 255; i++)
		big[2 + i] = (uint8_t)i;
	CHECK_FRAMING(s5_parse_greeting, big, sizeof(big), &g);
	CHECK_INT(g.nmethods, 255);
	CHECK_INT(g.methods[254], 254);
	CHECK_INT(s5_parse_greeting(big, 256, &g, &used), S5_NEED_MORE);
}

static void
greeting_malformed(void)
{
	static const uint8_t v4[] = { 0x04, 0x01, 0x00 };
	static const uint8_t zero[] = { 0x05, 0x00, 0x00 };
	static const uint8_t http[] = "GET / HTTP/1.1\r\n";
	struct s5_greeting g;

	CHECK_MALFORMED(s5_parse_greeting, v4, sizeof(v4), 0,
	    S5_REP_GENERAL_FAILURE, &g);
	CHECK_MALFORMED(s5_parse_greeting, zero, sizeof(zero), 1,
	    S5_REP_GENERAL_FAILURE, &g);
	CHECK_MALFORMED(s5_parse_greeting, http, sizeof(http) - 1, 0,
	    S5_REP_GENERAL_FAILURE, &g);
}

static void
greeting_encode(void)
{
	static const uint8_t methods[] = { 0x00, 0x02 };
	static const uint8_t want[] = { 0x05, 0x02, 0x00, 0x02 };
	uint8_t buf[S5_GREETING_MAX + 1], many[256];
	struct s5_greeting g;
	size_t used;

	CHECK_INT(s5_encode_greeting(buf, sizeof(buf), methods, 2), 4);
	CHECK_MEM(buf, want, sizeof(want));
	CHECK_INT(s5_encode_greeting(buf, 4, methods, 2), 4);
	CHECK_INT(s5_encode_greeting(buf, 3, methods, 2), -1);
	CHECK_INT(s5_encode_greeting(buf, 0, methods, 2), -1);
	CHECK_INT(s5_encode_greeting(buf, sizeof(buf), methods, 0), -1);

	memset(many, 0x02, sizeof(many));
	CHECK_INT(s5_encode_greeting(buf, sizeof(buf), many, 255), 257);
	CHECK_INT(s5_encode_greeting(buf, sizeof(buf), many, 256), -1);
	CHECK_INT(s5_parse_greeting(buf, 257, &g, &used), 0);
	CHECK_INT(used, 257);
	CHECK_INT(g.nmethods, 255);
}

static void
greeting_choose(void)
{
	struct s5_greeting g;

	g.nmethods = 1;
	g.methods[0] = S5_METHOD_NONE;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_NONE);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_UNACCEPTABLE);

	g.nmethods = 2;
	g.methods[0] = S5_METHOD_NONE;
	g.methods[1] = S5_METHOD_USERPASS;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_NONE);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_USERPASS);

	/* Without users, USERPASS alone is not acceptable. */
	g.nmethods = 1;
	g.methods[0] = S5_METHOD_USERPASS;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_UNACCEPTABLE);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_USERPASS);

	g.nmethods = 2;
	g.methods[0] = S5_METHOD_GSSAPI;
	g.methods[1] = 0x80;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_UNACCEPTABLE);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_UNACCEPTABLE);

	/* Only the first nmethods entries count. */
	g.nmethods = 1;
	g.methods[0] = S5_METHOD_GSSAPI;
	g.methods[1] = S5_METHOD_NONE;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_UNACCEPTABLE);

	/* The _STREAM twins: chosen beside their plain method, never alone. */
	g.nmethods = 4;
	g.methods[0] = S5_METHOD_NONE;
	g.methods[1] = S5_METHOD_USERPASS;
	g.methods[2] = S5_METHOD_NONE_STREAM;
	g.methods[3] = S5_METHOD_USERPASS_STREAM;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_NONE_STREAM);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_USERPASS_STREAM);
	g.nmethods = 3;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_NONE_STREAM);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_USERPASS);
	g.nmethods = 2;
	g.methods[0] = S5_METHOD_NONE_STREAM;
	g.methods[1] = S5_METHOD_USERPASS_STREAM;
	CHECK_INT(s5_choose_method(&g, false), S5_METHOD_UNACCEPTABLE);
	CHECK_INT(s5_choose_method(&g, true), S5_METHOD_UNACCEPTABLE);
	CHECK_INT(s5_method_base(S5_METHOD_NONE_STREAM), S5_METHOD_NONE);
	CHECK_INT(s5_method_base(S5_METHOD_USERPASS_STREAM), S5_METHOD_USERPASS);
	CHECK_INT(s5_method_base(S5_METHOD_GSSAPI), S5_METHOD_GSSAPI);
}

static void
method_reply(void)
{
	static const uint8_t ok[] = { 0x05, 0x02 };
	static const uint8_t ff[] = { 0x05, 0xFF };
	static const uint8_t bad[] = { 0x01, 0x00 };
	uint8_t m = 0, buf[2];

	CHECK_FRAMING(s5_parse_method_reply, ok, sizeof(ok), &m);
	CHECK_INT(m, S5_METHOD_USERPASS);
	CHECK_FRAMING(s5_parse_method_reply, ff, sizeof(ff), &m);
	CHECK_INT(m, S5_METHOD_UNACCEPTABLE);
	CHECK_MALFORMED(s5_parse_method_reply, bad, sizeof(bad), 0,
	    S5_REP_GENERAL_FAILURE, &m);

	CHECK_INT(s5_encode_method_reply(buf, sizeof(buf), 0xFF), 2);
	CHECK_MEM(buf, ff, 2);
	CHECK_INT(s5_encode_method_reply(buf, 1, 0x00), -1);
}

void
test_greeting(void)
{
	UNIT_RUN(greeting_vectors);
	UNIT_RUN(greeting_malformed);
	UNIT_RUN(greeting_encode);
	UNIT_RUN(greeting_choose);
	UNIT_RUN(method_reply);
}
