/*
 * fuzz_rules.c: the --allow/--deny rule parser and matcher (server/rules.c).
 *
 * Input: FLAGS, CMD, then a client and a destination (FAMILY, 16 address
 * bytes, and for the destination a 2-byte port), then rule lines, each
 * "+TEXT" (allow) or any other first byte and TEXT (deny). FLAGS bit 0 adds
 * the built-in host protection, bits 1 and 2 switch BIND and UDP off, bit 3
 * makes the client the logged-in user "bob", bit 4 has it ask for the name
 * "db.corp" (which name rules may match; "to .corp", "user bob").
 * Probes are that client and destination, and destinations named by the
 * CIDRs written in the rules, so that rules match.
 *
 * Checked, for the set R of the input's rules:
 *  - a refused rule gives a reason and leaves the set as it was;
 *  - first match wins: with A = R + "allow" and D = R + "deny", where A and
 *    D agree R decided (R says the same), and where they differ no rule of
 *    R matched: R lets it through, R + "allow to X" lets X through and
 *    R + "deny to X" refuses it;
 *  - an earlier check refuses only what the full evaluation refuses
 *    (rules.c): a refused client may run no command and reach nothing, a
 *    refused command reaches nothing;
 *  - a switched-off command is refused to everyone;
 *  - a name refused before resolution (rules_name_ok) is refused at every
 *    address it could resolve to.
 */
#include <arpa/inet.h>
#include <errno.h>

#include "fuzz.h"
#include "config.h"
#include "rules.h"

#define FUZZ_HEADER	(2 + 17 + 19)	/* FLAGS CMD client destination */
#define FUZZ_PROBES_MAX	8

struct fuzz_rule {
	bool allow;
	const char *text;
	bool ok;			/* rules_add() took it */
};

struct fuzz_input {
	uint8_t flags;
	struct fuzz_rule *v;
	size_t n;
};

/* FAMILY: bit 0 IPv4, else IPv6; bit 1 with IPv6: v4-mapped from 4 bytes. */
static socklen_t
fuzz_sockaddr(const uint8_t *p, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (p[0] & 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, p + 1, 4);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	if (p[0] & 2) {
		sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(sin6->sin6_addr.s6_addr + 12, p + 1, 4);
	} else {
		memcpy(sin6->sin6_addr.s6_addr, p + 1, 16);
	}
	return sizeof(*sin6);
}

/* A destination at the network address of a CIDR in word, if it is one
 * ("1.2.3.0/24", "[::1]:80", "10.0.0.1:1-9"). */
static bool
fuzz_probe_word(const char *word, size_t len, uint16_t port,
    struct sockaddr_storage *ss)
{
	char tmp[S5_ADDR_TEXT_MAX], *colon;
	struct s5_cidr c;
	struct s5_addr a;
	const char *why;

	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, word, len);
	tmp[len] = '\0';
	if (tmp[0] == '[' && (colon = strchr(tmp, ']')) != NULL) {
		*colon = '\0';
		memmove(tmp, tmp + 1, strlen(tmp + 1) + 1);
	} else if ((colon = strchr(tmp, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		*colon = '\0';
	}
	if (s5_cidr_parse(tmp, &c, &why) < 0)
		return false;
	if (c.v6)
		s5_addr_set_ip6(&a, c.net, port);
	else
		s5_addr_set_ip4(&a, c.net, port);
	return s5_addr_to_sockaddr(&a, ss) > 0;
}

static size_t
fuzz_probes_from(const char *text, uint16_t port, struct sockaddr_storage *dst,
    size_t n)
{
	const char *p = text;

	while (*p != '\0' && n < FUZZ_PROBES_MAX) {
		size_t len = strcspn(p, " \t,");

		if (len > 0 && fuzz_probe_word(p, len, port, &dst[n]))
			n++;
		p += len;
		p += strspn(p, " \t,");
	}
	return n;
}

/*
 * A set of the input's rules (only those rules_add() took, when only_ok),
 * then extra when it is not NULL. Checks that each rule is taken or
 * refused as the first time, a refusal with a reason.
 */
static struct rules *
fuzz_build(struct fuzz_input *in, bool only_ok, bool extra_allow,
    const char *extra)
{
	struct rules *r;
	const char *why;
	size_t i;
	int e;

	FUZZ_CHECK(rules_new(&r) == 0);
	if (in->flags & 1)
		FUZZ_CHECK(rules_protect_host(r) == 0);
	if (in->flags & 2)
		rules_disable_command(r, S5_CMD_BIND);
	if (in->flags & 4)
		rules_disable_command(r, S5_CMD_UDP_ASSOCIATE);
	for (i = 0; i < in->n; i++) {
		if (only_ok && !in->v[i].ok)
			continue;
		why = NULL;
		e = rules_add(r, in->v[i].allow, in->v[i].text, &why);
		FUZZ_CHECK(e == 0 || e == -EINVAL);
		FUZZ_CHECK(e == 0 || (why != NULL && why[0] != '\0'));
		FUZZ_CHECK(!only_ok || e == 0);
		in->v[i].ok = e == 0;
	}
	if (extra != NULL)
		FUZZ_CHECK(rules_add(r, extra_allow, extra, &why) == 0);
	return r;
}

/* Where A and D differ nothing in R matched: "allow/deny to X" decides. */
static void
fuzz_check_undecided(struct fuzz_input *in, const struct rules_who *c,
    uint8_t cmd, const struct sockaddr *dst)
{
	char text[S5_ADDR_TEXT_MAX], rule[S5_ADDR_TEXT_MAX + 8];
	struct rules *x;

	FUZZ_CHECK(s5_sockaddr_format(dst, text, sizeof(text)) > 0);
	snprintf(rule, sizeof(rule), "to %s", text);
	x = fuzz_build(in, true, true, rule);
	FUZZ_CHECK(rules_dest_ok(x, c, cmd, dst));
	rules_free(x);
	x = fuzz_build(in, true, false, rule);
	FUZZ_CHECK(!rules_dest_ok(x, c, cmd, dst));
	rules_free(x);
}

/* One probe against R, R without its refused rules (ok), A and D. */
static void
fuzz_check_probe(struct fuzz_input *in, struct rules *r, struct rules *ok,
    struct rules *a, struct rules *d, const struct rules_who *c, uint8_t cmd,
    const struct sockaddr *dst)
{
	bool rv = rules_dest_ok(r, c, cmd, dst);
	bool av = rules_dest_ok(a, c, cmd, dst);
	bool dv = rules_dest_ok(d, c, cmd, dst);
	uint8_t k;

	FUZZ_CHECK(rv == rules_dest_ok(ok, c, cmd, dst));
	FUZZ_CHECK(rules_command_ok(r, c, cmd) == rules_command_ok(ok, c, cmd));
	FUZZ_CHECK(rules_client_ok(r, c->client) == rules_client_ok(ok, c->client));
	if (av == dv) {
		FUZZ_CHECK(rv == av);
	} else {
		FUZZ_CHECK(av && !dv && rv);
		fuzz_check_undecided(in, c, cmd, dst);
	}
	/* The same for the earlier checks. */
	av = rules_command_ok(a, c, cmd);
	dv = rules_command_ok(d, c, cmd);
	FUZZ_CHECK(av == dv ? rules_command_ok(r, c, cmd) == av :
	    av && !dv && rules_command_ok(r, c, cmd));
	av = rules_client_ok(a, c->client);
	dv = rules_client_ok(d, c->client);
	FUZZ_CHECK(av == dv ? rules_client_ok(r, c->client) == av :
	    av && !dv && rules_client_ok(r, c->client));
	/* An early refusal is never overruled later. */
	if (c->name != NULL && !rules_name_ok(r, c, cmd,
	    ntohs(dst->sa_family == AF_INET ? ((const struct sockaddr_in *)dst)->sin_port :
	    ((const struct sockaddr_in6 *)dst)->sin6_port)))
		FUZZ_CHECK(!rv);
	if (!rules_client_ok(r, c->client)) {
		FUZZ_CHECK(!rv);
		for (k = S5_CMD_CONNECT; k <= S5_CMD_UDP_ASSOCIATE; k++)
			FUZZ_CHECK(!rules_command_ok(r, c, k));
	}
	if (rules_command_enabled(r, cmd) && !rules_command_ok(r, c, cmd))
		FUZZ_CHECK(!rv);
	if ((in->flags & 2) && cmd == S5_CMD_BIND)
		FUZZ_CHECK(!rules_command_enabled(r, cmd) && !rules_command_ok(r, c, cmd));
	if ((in->flags & 4) && cmd == S5_CMD_UDP_ASSOCIATE)
		FUZZ_CHECK(!rules_command_enabled(r, cmd) && !rules_command_ok(r, c, cmd));
}

/* Splits the text after the header into rules, in a copy; empty lines
 * are skipped. */
static char *
fuzz_split(const uint8_t *data, size_t size, struct fuzz_input *in)
{
	char *text = fuzz_cstring(data, size), *nl;
	size_t start = 0, end;

	in->n = 0;
	if ((in->v = calloc(size + 1, sizeof(*in->v))) == NULL)
		abort();
	while (start < size) {
		nl = memchr(text + start, '\n', size - start);
		end = nl != NULL ? (size_t)(nl - text) : size;
		text[end] = '\0';
		if (end > start) {
			in->v[in->n].allow = text[start] == '+';
			in->v[in->n].text = text + start + 1;
			in->n++;
		}
		start = end + 1;
	}
	return text;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage client, dst[FUZZ_PROBES_MAX];
	struct rules_who who = { .client = (struct sockaddr *)&client };
	struct rules *r, *ok, *a, *d;
	struct fuzz_input in;
	uint16_t port;
	uint8_t cmd;
	size_t ndst = 1, i;
	char *text;

	if (size < FUZZ_HEADER)
		return 0;
	in.flags = data[0];
	cmd = data[1];
	who.user = in.flags & 8 ? "bob" : NULL;
	who.name = in.flags & 16 ? "db.corp" : NULL;
	fuzz_sockaddr(data + 2, 0, &client);
	port = (uint16_t)(data[FUZZ_HEADER - 2] << 8 | data[FUZZ_HEADER - 1]);
	fuzz_sockaddr(data + 19, port, &dst[0]);
	text = fuzz_split(data + FUZZ_HEADER, size - FUZZ_HEADER, &in);
	r = fuzz_build(&in, false, false, NULL);
	for (i = 0; i < in.n; i++)
		ndst = fuzz_probes_from(in.v[i].text, port, dst, ndst);
	if (in.n + 1 >= SERVER_RULES_MAX) {
		rules_free(r);
		goto out;
	}
	ok = fuzz_build(&in, true, false, NULL);
	a = fuzz_build(&in, true, true, "from *");	/* everything */
	d = fuzz_build(&in, true, false, "from *");
	for (i = 0; i < ndst; i++)
		fuzz_check_probe(&in, r, ok, a, d, &who, cmd, (struct sockaddr *)&dst[i]);
	rules_free(r);
	rules_free(ok);
	rules_free(a);
	rules_free(d);
out:
	free(in.v);
	free(text);
	return 0;
}
