/*
 * fuzz_supervisor.c: what a supervised program controls, as the supervisor
 * reads it. The first byte picks the path:
 *   even  a DNS query to the supervisor's resolver (supdns_answer(): the
 *         parser, the placeholder table, reverse names) into replies of
 *         several sizes; an A/AAAA answer must map back to the name asked
 *   odd   a sockaddr the program passed to connect() (up to 128 bytes, the
 *         next byte its socket type) through the policy both front ends use
 * under socks5h with exclusions of each kind, as the supervisor runs.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "dns.h"
#include "../../preload/preload.h"
#include "../../preload/supervisor.h"

static void
fuzz_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	setenv("SOCKSIFY_PROXY", "socks5h://127.0.0.1:1080", 1);
	setenv("SOCKSIFY_EXCLUDE", "10.0.0.0/8,fd00::/8,db.corp,.internal", 1);
	setenv("SOCKSIFY_LOG", "error", 1);
	setenv("SOCKSIFY_LOG_FILE", "/dev/null", 1);
	unsetenv("SOCKSIFY_NAMES");
	fakedns_at_load();
	FUZZ_CHECK(preload_init());
	FUZZ_CHECK(preload_cfg.remote_dns);
}

/* An answer of ours: its header, and for one A/AAAA record the name back. */
static void
fuzz_check_reply(const uint8_t *q, size_t qlen, const uint8_t *r, size_t rlen, size_t cap)
{
	struct dns_query dq;
	struct s5_addr a;
	char name[S5_DOMAIN_MAX + 1];
	size_t off;
	uint16_t ancount, type, rdlen;

	FUZZ_CHECK(rlen <= cap);
	if (rlen == 0)
		return;
	FUZZ_CHECK(rlen >= DNS_HEADER_LEN && qlen >= 2);
	FUZZ_CHECK(r[0] == q[0] && r[1] == q[1] && (r[2] & 0x80));
	if (dns_parse_query(q, qlen, &dq) != 0)
		return;
	ancount = (uint16_t)(r[6] << 8 | r[7]);
	if ((r[3] & 0x0f) != DNS_RCODE_NOERROR || ancount != 1)
		return;
	off = dq.question_end;
	FUZZ_CHECK(off + 12 <= rlen);
	type = (uint16_t)(r[off + 2] << 8 | r[off + 3]);
	rdlen = (uint16_t)(r[off + 10] << 8 | r[off + 11]);
	FUZZ_CHECK(off + 12 + rdlen == rlen);
	memset(&a, 0, sizeof(a));
	if (type == DNS_TYPE_A && rdlen == 4) {
		a.atyp = S5_ATYP_IPV4;
		memcpy(a.u.ip4, r + off + 12, 4);
	} else if (type == DNS_TYPE_AAAA && rdlen == 16) {
		a.atyp = S5_ATYP_IPV6;
		memcpy(a.u.ip6, r + off + 12, 16);
	} else {
		FUZZ_CHECK(type == DNS_TYPE_PTR);
		return;
	}
	if (!fakedns_in_range(&a))
		return;		/* localhost */
	FUZZ_CHECK(fakedns_name_of(&a, name, sizeof(name)));
	FUZZ_CHECK(strcasecmp(name, dq.name) == 0);
}

static void
fuzz_dns(const uint8_t *q, size_t n)
{
	static const size_t caps[] = { 0, 11, 12, 40, 100, DNS_UDP_MAX };
	uint8_t out[DNS_UDP_MAX];
	size_t i, r;

	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		r = supdns_answer(q, n, out, caps[i]);
		fuzz_check_reply(q, n, out, r, caps[i]);
	}
}

static void
fuzz_sockaddr(const uint8_t *p, size_t n)
{
	struct sockaddr_storage ss;
	struct s5_addr dst;
	const char *why = NULL;
	char text[S5_ADDR_TEXT_MAX];
	int type, r;

	if (n < 1)
		return;
	type = p[0] % 4 == 0 ? SOCK_DGRAM : p[0] % 4 == 1 ? SOCK_RAW :
	    p[0] % 4 == 2 ? SOCK_SEQPACKET : SOCK_STREAM;
	p++, n--;
	if (n > sizeof(ss) || n < sizeof(sa_family_t))
		return;		/* the supervisor refuses these before (EINVAL) */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, p, n);
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return;		/* EAFNOSUPPORT before the policy */
	r = policy_connect(type, (struct sockaddr *)&ss, (socklen_t)n, &dst, &why);
	FUZZ_CHECK(r == POLICY_TUNNEL || r == POLICY_DIRECT || (r < 0 && r > -4096));
	if (r == POLICY_DIRECT)
		FUZZ_CHECK(why != NULL);
	if (r == POLICY_TUNNEL) {
		FUZZ_CHECK(type == SOCK_STREAM);
		FUZZ_CHECK(s5_addr_format(&dst, text, sizeof(text)) > 0);
		/* A placeholder never reaches the proxy as an address. */
		FUZZ_CHECK(dst.atyp == S5_ATYP_DOMAIN || !fakedns_in_range(&dst));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_sockaddr(data + 1, size - 1);
	else
		fuzz_dns(data + 1, size - 1);
	return 0;
}
