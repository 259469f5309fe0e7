/* test_errno.c: the one errno <-> reply code table (server-anchors.md §2.5). */
#include <errno.h>

#include "unit.h"

static void
errno_to_rep(void)
{
	static const struct {
		int err;
		uint8_t rep;
	} table[] = {
		{ 0, S5_REP_SUCCEEDED },
		{ ECONNREFUSED, S5_REP_CONN_REFUSED },
		{ ECONNRESET, S5_REP_CONN_REFUSED },
		{ ENETUNREACH, S5_REP_NET_UNREACHABLE },
		{ ENETDOWN, S5_REP_NET_UNREACHABLE },
		{ EHOSTUNREACH, S5_REP_HOST_UNREACHABLE },
		{ EHOSTDOWN, S5_REP_HOST_UNREACHABLE },
		{ ETIMEDOUT, S5_REP_TTL_EXPIRED },
		{ EACCES, S5_REP_NOT_ALLOWED },
		{ EPERM, S5_REP_NOT_ALLOWED },
		{ EAFNOSUPPORT, S5_REP_ATYP_NOT_SUPPORTED },
		{ EPROTONOSUPPORT, S5_REP_ATYP_NOT_SUPPORTED },
		{ EMFILE, S5_REP_GENERAL_FAILURE },
		{ ENFILE, S5_REP_GENERAL_FAILURE },
		{ ENOBUFS, S5_REP_GENERAL_FAILURE },
		{ ENOMEM, S5_REP_GENERAL_FAILURE },
		{ EADDRNOTAVAIL, S5_REP_GENERAL_FAILURE },
		{ EINVAL, S5_REP_GENERAL_FAILURE },
		{ -1, S5_REP_GENERAL_FAILURE },
	};
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK_INT(s5_rep_from_errno(table[i].err), table[i].rep);
}

static void
rep_to_errno(void)
{
	/* CONTRACT.md, in its order. */
	CHECK_INT(s5_rep_to_errno(S5_REP_CONN_REFUSED), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(S5_REP_HOST_UNREACHABLE), EHOSTUNREACH);
	CHECK_INT(s5_rep_to_errno(S5_REP_NET_UNREACHABLE), ENETUNREACH);
	CHECK_INT(s5_rep_to_errno(S5_REP_TTL_EXPIRED), ETIMEDOUT);
	CHECK_INT(s5_rep_to_errno(S5_REP_NOT_ALLOWED), EACCES);
	CHECK_INT(s5_rep_to_errno(S5_REP_GENERAL_FAILURE), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(S5_REP_CMD_NOT_SUPPORTED), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(S5_REP_ATYP_NOT_SUPPORTED), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(0x09), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(0xFF), ECONNREFUSED);

	/* What a server replies for an errno gives the client that errno back. */
	CHECK_INT(s5_rep_to_errno(s5_rep_from_errno(ECONNREFUSED)), ECONNREFUSED);
	CHECK_INT(s5_rep_to_errno(s5_rep_from_errno(ETIMEDOUT)), ETIMEDOUT);
	CHECK_INT(s5_rep_to_errno(s5_rep_from_errno(EHOSTUNREACH)), EHOSTUNREACH);
	CHECK_INT(s5_rep_to_errno(s5_rep_from_errno(ENETUNREACH)), ENETUNREACH);
	CHECK_INT(s5_rep_to_errno(s5_rep_from_errno(EACCES)), EACCES);
}

static void
rep_str(void)
{
	unsigned v, named = 0;

	CHECK_STR(s5_rep_str(S5_REP_SUCCEEDED), "succeeded");
	CHECK_STR(s5_rep_str(S5_REP_CONN_REFUSED), "connection refused");
	CHECK_STR(s5_rep_str(S5_REP_ATYP_NOT_SUPPORTED),
	    "address type not supported");
	CHECK_STR(s5_rep_str(0x09), "unknown reply code");
	for (v = 0; v <= 0xFF; v++)
		if (s5_rep_str((uint8_t)v) != NULL)
			named++;
	CHECK_INT(named, 256);
}

void
test_errno(void)
{
	UNIT_RUN(errno_to_rep);
	UNIT_RUN(rep_to_errno);
	UNIT_RUN(rep_str);
}
