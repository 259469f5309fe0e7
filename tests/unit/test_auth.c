/* test_auth.c: RFC 1929 username/password sub-negotiation. */
#include "unit.h"

static void
auth_vectors(void)
{
	static const uint8_t msg[] = { 0x01, 0x04, 'u', 's', 'e', 'r',
	    0x06, 's', 'e', 'c', 'r', 'e', 't' };
	/* RFC 1929 allows any octet, NUL included. */
	static const uint8_t bin[] = { 0x01, 0x02, 0x00, 0xFF, 0x01, 0x00 };
	struct s5_cred c;

	CHECK_FRAMING(s5_parse_auth, msg, sizeof(msg), &c);
	CHECK_INT(c.ulen, 4);
	CHECK_STR(c.user, "user");
	CHECK_INT(c.plen, 6);
	CHECK_STR(c.pass, "secret");

	CHECK_FRAMING(s5_parse_auth, bin, sizeof(bin), &c);
	CHECK_INT(c.ulen, 2);
	CHECK_MEM(c.user, "\x00\xFF", 2);
	CHECK_INT(c.plen, 1);
	CHECK_INT(c.pass[0], 0);
}

static void
auth_lengths(void)
{
	/* ULEN and PLEN of 0 still frame the message: parse, fail later. */
	static const uint8_t empty[] = { 0x01, 0x00, 0x00 };
	static const uint8_t nouser[] = { 0x01, 0x00, 0x01, 'p' };
	static const uint8_t nopass[] = { 0x01, 0x01, 'u', 0x00 };
	uint8_t max[S5_AUTH_MAX];
	struct s5_cred c;

	CHECK_FRAMING(s5_parse_auth, empty, sizeof(empty), &c);
	CHECK_INT(c.ulen, 0);
	CHECK_INT(c.plen, 0);
	CHECK_STR(c.user, "");
	CHECK_FRAMING(s5_parse_auth, nouser, sizeof(nouser), &c);
	CHECK_INT(c.ulen, 0);
	CHECK_STR(c.pass, "p");
	CHECK_FRAMING(s5_parse_auth, nopass, sizeof(nopass), &c);
	CHECK_STR(c.user, "u");
	CHECK_INT(c.plen, 0);

	max[0] = 0x01;
	max[1] = 255;
	memset(max + 2, 'a', 255);
	max[257] = 255;
	memset(max + 258, 'b', 255);
	CHECK_FRAMING(s5_parse_auth, max, sizeof(max), &c);
	CHECK_INT(c.ulen, 255);
	CHECK_INT(c.plen, 255);
	CHECK_INT(strlen(c.user), 255);
	CHECK_INT(c.pass[254], 'b');
	CHECK_INT(c.pass[255], 0);
}

static void
auth_malformed(void)
{
	static const uint8_t v5[] = { 0x05, 0x01, 'u', 0x01, 'p' };
	static const uint8_t v0[] = { 0x00, 0x01, 'u', 0x01, 'p' };
	struct s5_cred c;

	CHECK_MALFORMED(s5_parse_auth, v5, sizeof(v5), 0,
	    S5_REP_GENERAL_FAILURE, &c);
	CHECK_MALFORMED(s5_parse_auth, v0, sizeof(v0), 0,
	    S5_REP_GENERAL_FAILURE, &c);
}

static void
auth_encode(void)
{
	static const uint8_t want[] = { 0x01, 0x01, 'u', 0x02, 'p', 'w' };
	struct s5_cred c, back;
	uint8_t buf[S5_AUTH_MAX];
	size_t used;

	memset(&c, 0, sizeof(c));
	c.ulen = 1;
	memcpy(c.user, "u", 2);
	c.plen = 2;
	memcpy(c.pass, "pw", 3);
	CHECK_INT(s5_encode_auth(buf, sizeof(buf), &c), 6);
	CHECK_MEM(buf, want, sizeof(want));
	CHECK_INT(s5_encode_auth(buf, 6, &c), 6);
	CHECK_INT(s5_encode_auth(buf, 5, &c), -1);
	CHECK_INT(s5_parse_auth(buf, 6, &back, &used), 0);
	CHECK_INT(used, 6);
	CHECK(s5_cred_equal(back.user, back.ulen, c.user, c.ulen));
	CHECK(s5_cred_equal(back.pass, back.plen, c.pass, c.plen));

	c.plen = 0;
	CHECK_INT(s5_encode_auth(buf, sizeof(buf), &c), -1);
	c.plen = 2;
	c.ulen = 0;
	CHECK_INT(s5_encode_auth(buf, sizeof(buf), &c), -1);

	c.ulen = 255;
	c.plen = 255;
	memset(c.user, 'x', 255);
	memset(c.pass, 'y', 255);
	CHECK_INT(s5_encode_auth(buf, sizeof(buf), &c), S5_AUTH_MAX);
	CHECK_INT(s5_encode_auth(buf, S5_AUTH_MAX - 1, &c), -1);
	CHECK_INT(s5_parse_auth(buf, S5_AUTH_MAX, &back, &used), 0);
	CHECK_INT(used, S5_AUTH_MAX);
	CHECK_MEM(back.pass, c.pass, 255);
}

static void
auth_reply(void)
{
	static const uint8_t ok[] = { 0x01, 0x00 };
	static const uint8_t v5[] = { 0x05, 0x00 };
	static const uint8_t no[] = { 0x01, 0x01 };
	static const uint8_t bad[] = { 0x02, 0x00 };
	uint8_t st = 0xAA, buf[2];

	CHECK_FRAMING(s5_parse_auth_reply, ok, sizeof(ok), &st);
	CHECK_INT(st, S5_AUTH_SUCCESS);
	CHECK_FRAMING(s5_parse_auth_reply, v5, sizeof(v5), &st);
	CHECK_INT(st, S5_AUTH_SUCCESS);
	CHECK_FRAMING(s5_parse_auth_reply, no, sizeof(no), &st);
	CHECK_INT(st, S5_AUTH_FAILURE);
	CHECK_MALFORMED(s5_parse_auth_reply, bad, sizeof(bad), 0,
	    S5_REP_GENERAL_FAILURE, &st);

	/* RFC 1929: the reply's VER is 1 (microsocks once sent 5). */
	CHECK_INT(s5_encode_auth_reply(buf, sizeof(buf), 0x01), 2);
	CHECK_MEM(buf, no, 2);
	CHECK_INT(s5_encode_auth_reply(buf, 1, 0x00), -1);
}

static void
auth_cred_equal(void)
{
	CHECK(s5_cred_equal("secret", 6, "secret", 6));
	CHECK(!s5_cred_equal("secret", 6, "secreT", 6));
	CHECK(!s5_cred_equal("Secret", 6, "secret", 6));
	CHECK(!s5_cred_equal("secret", 6, "secret2", 7));
	CHECK(!s5_cred_equal("secret2", 7, "secret", 6));
	CHECK(!s5_cred_equal("", 0, "a", 1));
	CHECK(s5_cred_equal("", 0, "", 0));
	/* Explicit lengths: a NUL is an ordinary octet. */
	CHECK(s5_cred_equal("a\0b", 3, "a\0b", 3));
	CHECK(!s5_cred_equal("a\0b", 3, "a\0c", 3));
	CHECK(!s5_cred_equal("a", 1, "a\0", 2));
}

void
test_auth(void)
{
	UNIT_RUN(auth_vectors);
	UNIT_RUN(auth_lengths);
	UNIT_RUN(auth_malformed);
	UNIT_RUN(auth_encode);
	UNIT_RUN(auth_reply);
	UNIT_RUN(auth_cred_equal);
}
