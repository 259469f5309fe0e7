/*
 * dnsanswer.c: the answer to a DNS query a program sends itself under
 * remote resolution (socks5h), for both front ends: the library (udp.c)
 * and the supervisor's resolver (supervisor_dns.c).
 *
 * Answers (shared/dns.c builds them): A and AAAA get placeholder addresses
 * from the tree's one name table (fakedns.c), the same getaddrinfo() hands
 * out, so a connect() to one carries the name to the proxy; "localhost" and
 * *.localhost get loopback (RFC 6761); PTR of a placeholder gets its name
 * (NXDOMAIN for one never handed out); any other type and any other
 * reverse name get REFUSED, which resolvers take as "ask elsewhere", and
 * there is nowhere else. A malformed query gets FORMERR, a response gets
 * nothing. A name SOCKSIFY_EXCLUDE lists is resolved locally
 * (dnsanswer_local(): getaddrinfo(), which may wait on the network, so the
 * caller says where it runs), and its addresses are remembered as excluded
 * (preload_exclude_addr()), so the connect() that follows goes direct.
 * So is the name of a proxy of SOCKSIFY_PROXY, whose addresses keep their
 * policy: the library resolves its hops with glibc's getaddrinfo(), whose
 * queries the supervisor sends here in a supervised process, and a
 * placeholder would send its dial to nowhere.
 * With SOCKSIFY_DNS set, what we would refuse (MX, TXT, SRV, the reverse of
 * an address that is no placeholder...) is asked of that resolver instead,
 * over TCP through the proxy chain (a CONNECT), also in dnsanswer_local().
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "dns.h"
#include "preload.h"

#define DNSANSWER_TTL		60		/* seconds, for placeholders */
#define DNSANSWER_LOCAL_ADDRS	8		/* addresses in one local answer */

static bool
dnsanswer_is_localhost(const char *name, size_t len)
{
	static const char lh[] = "localhost";
	const size_t n = sizeof(lh) - 1;

	return (len == n && memcmp(name, lh, n) == 0) ||
	    (len > n && name[len - n - 1] == '.' && memcmp(name + len - n, lh, n) == 0);
}

/* The A or AAAA record for q into rr (data in ip): an rcode. */
static int
dnsanswer_address(const struct dns_query *q, struct dns_rr *rr, uint8_t ip[16])
{
	unsigned idx;
	int r;

	if (q->name_len == 0)
		return DNS_RCODE_REFUSED;
	rr->type = q->qtype;
	rr->ttl = DNSANSWER_TTL;
	rr->data = ip;
	rr->len = q->qtype == DNS_TYPE_A ? 4 : 16;
	memset(ip, 0, 16);
	if (dnsanswer_is_localhost(q->name, q->name_len)) {
		if (q->qtype == DNS_TYPE_A) {
			ip[0] = 127;
			ip[3] = 1;
		} else {
			ip[15] = 1;
		}
		return DNS_RCODE_NOERROR;
	}
	if (preload_name_excluded(q->name) || preload_name_is_proxy(q->name))
		return DNS_RCODE_SERVFAIL;	/* not deferred: no lookup of it here */
	if ((r = fakedns_lookup_name(q->name, q->name_len, &idx)) < 0) {
		preload_log(LOG_LVL_ERROR, "DNS %s: no placeholder (%s)", q->name,
		    strerror(-r));
		return DNS_RCODE_SERVFAIL;
	}
	if (q->qtype == DNS_TYPE_A)
		fakedns_addr_v4(idx, ip);
	else
		fakedns_addr_v6(idx, ip);
	return DNS_RCODE_NOERROR;
}

/* The PTR record of a placeholder's reverse name: an rcode. */
static int
dnsanswer_pointer(const struct dns_query *q, struct dns_rr *rr, uint8_t *buf, size_t cap)
{
	char name[S5_DOMAIN_MAX + 1];
	struct s5_addr a;
	uint8_t ip[16];
	size_t n;
	int len = dns_reverse_name(q->name, ip);

	memset(&a, 0, sizeof(a));
	if (len == 4) {
		a.atyp = S5_ATYP_IPV4;
		memcpy(a.u.ip4, ip, 4);
	} else if (len == 16) {
		a.atyp = S5_ATYP_IPV6;
		memcpy(a.u.ip6, ip, 16);
	} else {
		return DNS_RCODE_REFUSED;
	}
	if (!fakedns_in_range(&a))
		return DNS_RCODE_REFUSED;	/* not ours to answer, nor to pass on */
	if (!fakedns_name_of(&a, name, sizeof(name)) ||
	    (n = dns_name_encode(name, buf, cap)) == 0)
		return DNS_RCODE_NXDOMAIN;
	rr->type = DNS_TYPE_PTR;
	rr->ttl = DNSANSWER_TTL;
	rr->data = buf;
	rr->len = (uint16_t)n;
	return DNS_RCODE_NOERROR;
}

/*
 * The reply to query q into out (cap bytes): its length, 0 for none (a
 * response, or a reply that does not fit). An A/AAAA query of a name
 * SOCKSIFY_EXCLUDE lists, and with SOCKSIFY_DNS set a query we would
 * refuse, set *local and return 0 when local is not NULL: the caller then
 * calls dnsanswer_local() where it may wait; with local NULL they are
 * SERVFAIL and REFUSED.
 */
size_t
dnsanswer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap, bool *local)
{
	struct dns_query dq;
	struct dns_rr rr;
	uint8_t data[DNS_NAME_WIRE_MAX];
	int rcode;

	if (local != NULL)
		*local = false;
	rcode = dns_parse_query(q, qlen, &dq);
	if (rcode < 0)
		return 0;
	if (rcode > 0)
		return dns_reply_header(q, qlen, rcode, out, cap);
	if (local != NULL && dq.qclass == DNS_CLASS_IN && dq.name_len > 0 &&
	    (dq.qtype == DNS_TYPE_A || dq.qtype == DNS_TYPE_AAAA) &&
	    (preload_name_excluded(dq.name) || preload_name_is_proxy(dq.name))) {
		*local = true;
		return 0;
	}
	if (dq.qclass != DNS_CLASS_IN)
		rcode = DNS_RCODE_REFUSED;
	else if (dq.qtype == DNS_TYPE_A || dq.qtype == DNS_TYPE_AAAA)
		rcode = dnsanswer_address(&dq, &rr, data);
	else if (dq.qtype == DNS_TYPE_PTR)
		rcode = dnsanswer_pointer(&dq, &rr, data, sizeof(data));
	else
		rcode = DNS_RCODE_REFUSED;
	/* Not ours to answer: SOCKSIFY_DNS's, where the caller may wait. */
	if (rcode == DNS_RCODE_REFUSED && local != NULL && preload_cfg.has_dns_server) {
		*local = true;
		return 0;
	}
	return dns_reply(q, qlen, &dq, rcode, &rr, rcode == DNS_RCODE_NOERROR ? 1 : 0,
	    out, cap);
}

/* All n bytes of buf to or from fd (a socket of ours), by deadline: 0 or
 * -errno. */
static int
dnsanswer_io(int fd, uint8_t *buf, size_t n, bool out, long long deadline)
{
	struct pollfd p;
	long long left;
	size_t done = 0;
	ssize_t k;

	while (done < n) {
		if ((left = deadline - tunnel_now_ms()) <= 0)
			return -ETIMEDOUT;
		p.fd = fd;
		p.events = out ? POLLOUT : POLLIN;
		p.revents = 0;
		if (PRELOAD_REAL(poll)(&p, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 &&
		    errno != EINTR)
			return -errno;
		k = out ? PRELOAD_REAL(send)(fd, buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT) :
		    PRELOAD_REAL(recv)(fd, buf + done, n - done, MSG_DONTWAIT);
		if (k == 0 && !out)
			return -ECONNRESET;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (k > 0)
			done += (size_t)k;
	}
	return 0;
}

/*
 * q asked of SOCKSIFY_DNS over TCP through the chain (RFC 7766): its
 * answer, or SERVFAIL when it cannot be had (one line), or a header with
 * TC when the answer is longer than cap (the program asks again over TCP).
 */
static size_t
dnsanswer_forward(const uint8_t *q, size_t qlen, const struct dns_query *dq, uint8_t *out,
    size_t cap)
{
	uint8_t len2[2];
	struct tunnel t;
	char server[S5_ADDR_TEXT_MAX];
	long long deadline = tunnel_now_ms() + preload_cfg.timeout_ms;
	size_t n = 0;
	int fd, family, r;

	if (s5_addr_format(&preload_cfg.dns_server, server, sizeof(server)) < 0)
		strcpy(server, "?");
	if (preload_cfg.nhops == 0 || qlen > 0xffff) {
		r = -ENETUNREACH;
		goto fail;
	}
	tunnel_init(&t, &preload_cfg.dns_server);
	family = tunnel_family(&t);
	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		goto fail;
	}
	len2[0] = (uint8_t)(qlen >> 8);
	len2[1] = (uint8_t)qlen;
	if ((r = tunnel_request(fd, family, &t)) < 0)
		tunnel_diagnose(&t, -r);
	if (r == 0 &&
	    (r = dnsanswer_io(fd, len2, 2, true, deadline)) == 0 &&
	    (r = dnsanswer_io(fd, (uint8_t *)q, qlen, true, deadline)) == 0 &&
	    (r = dnsanswer_io(fd, len2, 2, false, deadline)) == 0) {
		n = (size_t)len2[0] << 8 | len2[1];
		if (n > cap) {
			/* Too long for the caller: TC, and it asks over TCP. */
			(void)PRELOAD_REAL(close)(fd);
			n = dns_reply(q, qlen, dq, DNS_RCODE_NOERROR, NULL, 0, out, cap);
			if (n > 2)
				out[2] |= (uint8_t)(DNS_FLAG_TC >> 8);
			return n;
		}
		r = dnsanswer_io(fd, out, n, false, deadline);
		/* The answer to this query, or none: its ID, a response, and
		 * the question echoed byte for byte. */
		if (r == 0 && (n < dq->question_end || memcmp(out, q, 2) != 0 ||
		    !(out[2] & (DNS_FLAG_QR >> 8)) ||
		    memcmp(out + DNS_HEADER_LEN, q + DNS_HEADER_LEN,
		    dq->question_end - DNS_HEADER_LEN) != 0))
			r = -EPROTO;
	}
	(void)PRELOAD_REAL(close)(fd);
	if (r == 0) {
		preload_log(LOG_LVL_TRACE, "DNS %s (type %u) via %s through %s: %zu bytes",
		    dq->name, (unsigned)dq->qtype, server, preload_cfg.chain_text, n);
		return n;
	}
fail:
	preload_log(LOG_LVL_INFO, "DNS %s (type %u): SOCKSIFY_DNS %s through %s failed: %s",
	    dq->name, (unsigned)dq->qtype, server, preload_cfg.chain_text,
	    preload_errno_name(-r));
	return dns_reply(q, qlen, dq, DNS_RCODE_SERVFAIL, NULL, 0, out, cap);
}

/* The reply to a query dnsanswer() left to us: an A/AAAA query of an
 * excluded name, looked up here with getaddrinfo(), or one for
 * SOCKSIFY_DNS. Its length, 0 for none. */
size_t
dnsanswer_local(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	struct dns_query dq;
	struct addrinfo hints, *res = NULL, *ai;
	struct dns_rr rr[DNSANSWER_LOCAL_ADDRS];
	uint8_t ip[DNSANSWER_LOCAL_ADDRS][16];
	size_t n = 0, len;
	bool excluded;
	int rc, rcode;

	if (dns_parse_query(q, qlen, &dq) != 0)
		return 0;
	excluded = dq.name_len > 0 && preload_name_excluded(dq.name);
	if (dq.qclass != DNS_CLASS_IN || dq.name_len == 0 ||
	    (dq.qtype != DNS_TYPE_A && dq.qtype != DNS_TYPE_AAAA) ||
	    (!excluded && !preload_name_is_proxy(dq.name)))
		return dnsanswer_forward(q, qlen, &dq, out, cap);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = dq.qtype == DNS_TYPE_A ? AF_INET : AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	/* libc's, not our hook (the library's getaddrinfo() would give a
	 * proxy's name a placeholder). */
	rc = PRELOAD_REAL(getaddrinfo) != NULL ?
	    preload_real.getaddrinfo(dq.name, NULL, &hints, &res) : EAI_SYSTEM;
	for (ai = rc == 0 ? res : NULL; ai != NULL && n < DNSANSWER_LOCAL_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			memcpy(ip[n], &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		else if (ai->ai_family == AF_INET6)
			memcpy(ip[n], &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		else
			continue;
		/* A proxy's name only: its addresses keep their policy. */
		if (excluded)
			preload_exclude_addr(ai->ai_addr, ai->ai_addrlen);
		rr[n] = (struct dns_rr){ .type = dq.qtype, .ttl = DNSANSWER_TTL,
		    .data = ip[n], .len = ai->ai_family == AF_INET ? 4 : 16 };
		n++;
	}
	if (res != NULL)
		freeaddrinfo(res);
	rcode = rc == 0 || rc == EAI_NODATA || rc == EAI_ADDRFAMILY ? DNS_RCODE_NOERROR :
	    rc == EAI_NONAME ? DNS_RCODE_NXDOMAIN : DNS_RCODE_SERVFAIL;
	len = dns_reply(q, qlen, &dq, rcode, rr, n, out, cap);
	preload_log(LOG_LVL_DEBUG, "DNS %s: %s, resolved locally (%zu addresses)",
	    dq.name, excluded ? "excluded" : "a proxy's name", n);
	return len;
}
