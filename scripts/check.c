/*
 * check.c: socksify --check, the first thing to run when something is off.
 *
 * Walks the chain the library would use (SOCKSIFY_PROXY, as -x set it) one
 * step at a time, with the library's own machinery (config.c, tunnel.c),
 * and prints a line per step on stdout with its time:
 *
 *	TCP to the first hop
 *	each hop's handshake: its protocol, how it authenticated, the
 *	    CONNECT it made for us (the next hop, or the destination)
 *	the destination: --check-target HOST:PORT, else under remote
 *	    resolution a name the proxy must resolve (the last hop's own name,
 *	    or "localhost" at its port), else the last hop's address itself
 *	UDP: whether a single SOCKS5 hop offers UDP ASSOCIATE (said, not
 *	    judged: many proxies do not)
 *
 * then "ok" and exit 0, or the failing step in tunnel_explain()'s words
 * (the diagnostic's) and exit 1. A hop with alternatives ("a|b"): an
 * alternative that fails is said, and the next one checked, as a
 * program's connect() moves on (tunnel_retry()). tunnel_step() stops after each hop
 * (t->pause), so each hop's line is printed while its machine still says
 * how it went. Every wait has SOCKSIFY_TIMEOUT as its deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "../preload/preload.h"

static double
check_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* "hop 2 of 3 http://127.0.0.1:3128": never the password. The alternative
 * t uses, when the hop has several. */
static void
check_hop_name(const struct tunnel *t, size_t i, char *buf, size_t cap)
{
	char url[S5_ADDR_TEXT_MAX + 64];

	if (s5_proxy_format(&tunnel_hop(t, i)->proxy, url, sizeof(url)) < 0)
		strcpy(url, "?");
	if (preload_cfg.nalts[i] > 1)
		snprintf(buf, cap, "hop %zu of %zu, alternative %u of %zu, %s", i + 1,
		    preload_cfg.nhops, (unsigned)t->alt[i] + 1, preload_cfg.nalts[i], url);
	else
		snprintf(buf, cap, "hop %zu of %zu %s", i + 1, preload_cfg.nhops, url);
}

/* The default target was "localhost", which found nothing: the proxy's own
 * address is asked for instead (check_refused_ours()). */
static bool check_own_address;

/* The destination --check asks the last hop for, when none is given: the
 * last hop itself, the alternative of it t uses. */
static void
check_default_target(const struct tunnel *t, struct s5_addr *dst)
{
	const struct preload_hop *last = tunnel_hop(t, preload_cfg.nhops - 1);
	uint16_t port = last->proxy.addr.port;

	if (preload_cfg.remote_dns && !check_own_address) {
		if (last->proxy.addr.atyp == S5_ATYP_DOMAIN)
			*dst = last->proxy.addr;
		else
			(void)s5_addr_set_domain(dst, "localhost", 9, port);
		return;
	}
	if (last->proxy.addr.atyp != S5_ATYP_DOMAIN || preload_cfg.nhops == 1)
		*dst = last->has_v4 ? last->v4 : last->v6;
	else
		*dst = last->proxy.addr;
	dst->port = port;
}

/* The last hop refused by policy the destination we picked ourselves
 * (SOCKS5 reply 02, HTTP 403): it speaks its protocol to the end. */
static bool
check_refused_ours(const struct tunnel *t)
{
	const struct s5_proxy *p = &tunnel_hop(t, preload_cfg.nhops - 1)->proxy;

	if (p->proto == S5_PROTO_HTTP)
		return t->rep >= 0 && t->c.status == 403;
	return p->proto == S5_PROTO_SOCKS5 && t->rep == S5_REP_NOT_ALLOWED;
}

/*
 * The default "localhost" at the last hop's port (remote names, a last hop
 * given by address) found nothing: SOCKS5 reply 05, SOCKS4a's rejection, or
 * the connection closed where the CONNECT reply was due (ssh -D's way,
 * SOCKS4a as SOCKS5). A proxy that
 * listens on another address than loopback (microsocks -i LAN-ADDRESS,
 * ssh -D 0.0.0.0:1080) has nothing there: its own address is asked for
 * next, which proves the CONNECT (one that cannot connect anywhere fails
 * there too). err: the step's -errno.
 */
static bool
check_localhost_empty(const struct tunnel *t, int err)
{
	const struct s5_proxy *p = &tunnel_hop(t, preload_cfg.nhops - 1)->proxy;

	if (check_own_address || !preload_cfg.remote_dns || p->addr.atyp == S5_ATYP_DOMAIN ||
	    (p->proto != S5_PROTO_SOCKS5 && p->proto != S5_PROTO_SOCKS4A))
		return false;
	if (t->rep == S5_REP_CONN_REFUSED || (p->proto == S5_PROTO_SOCKS4A && t->rep >= 0))
		return true;
	return t->rep < 0 && t->why == 0 && tunnel_hung_up_on_request(t) &&
	    (err == -ECONNREFUSED || err == -ECONNRESET || err == -EPIPE);
}

/* The address family of socket fd. */
static int
check_domain(int fd)
{
	socklen_t len = sizeof(int);
	int domain = 0;

	(void)getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
	return domain;
}

/* TCP to t's first hop on *fd (a new socket when -1): 0, or -errno (said). */
static int
check_dial(struct tunnel *t, int *fd)
{
	struct timespec t0;
	char hop[S5_ADDR_TEXT_MAX + 96], first[S5_ADDR_TEXT_MAX];
	int domain = tunnel_family(t), r;

	check_hop_name(t, 0, hop, sizeof(hop));
	if (s5_addr_format(domain == AF_INET ? &tunnel_hop(t, 0)->v4 :
	    &tunnel_hop(t, 0)->v6, first, sizeof(first)) < 0)
		strcpy(first, "?");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (*fd < 0 && (*fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		printf("%s: FAILED: no socket for it: %s\n", hop, strerror(errno));
		return r;
	}
	r = tunnel_dial(t, *fd, domain, tunnel_due(t));
	if (r < 0) {
		printf("%s: TCP to %s: FAILED: %s (a program would see %s)\n", hop, first,
		    r == -ETIMEDOUT ? "no answer within SOCKSIFY_TIMEOUT" : strerror(-r),
		    preload_errno_name(-r));
		return r;
	}
	printf("%s: TCP to %s: ok (%.2f ms)\n", hop, first, check_ms(&t0));
	return 0;
}

/* What one finished hop did, from its machine. */
static void
check_hop_line(const struct tunnel *t, size_t i, double ms)
{
	const struct s5_proxy *p = &tunnel_hop(t, i)->proxy;
	const struct s5_addr *asked = &t->c.dst;
	char hop[S5_ADDR_TEXT_MAX + 96], what[S5_ADDR_TEXT_MAX];
	const char *how;

	check_hop_name(t, i, hop, sizeof(hop));
	if (s5_addr_format(asked, what, sizeof(what)) < 0)
		strcpy(what, "?");
	switch (p->proto) {
	case S5_PROTO_HTTP:
		how = p->has_cred ? "HTTP CONNECT, Basic credentials accepted" : "HTTP CONNECT";
		break;
	case S5_PROTO_SOCKS4:
	case S5_PROTO_SOCKS4A:
		how = p->proto == S5_PROTO_SOCKS4 ? "SOCKS4" : "SOCKS4a";
		break;
	default:
		how = t->c.method == S5_METHOD_USERPASS ?
		    "SOCKS5, username and password accepted" : "SOCKS5, no authentication";
		break;
	}
	/* SOCKSIFY_PIPELINE=auto pipelines to it from the next connect on. */
	printf("%s: %s%s; CONNECT %s%s: ok%s (%.2f ms)\n", hop, how,
	    t->c.streams ? ", takes pipelined handshakes" : "",
	    i + 1 < preload_cfg.nhops ? "to the next hop " : "", what,
	    asked->atyp == S5_ATYP_DOMAIN && p->remote_dns ? ", the name resolved by the proxy" : "",
	    ms);
}

/* UDP ASSOCIATE on a connection of its own: said, never a failure. */
static void
check_udp(void)
{
	struct tunnel t;
	struct s5_addr any;
	char relay[S5_ADDR_TEXT_MAX];
	int fd, r;

	if (preload_cfg.nhops != 1 || preload_cfg.hops[0][0].proxy.proto != S5_PROTO_SOCKS5) {
		printf("UDP: not through this chain (only a single SOCKS5 hop relays UDP)\n");
		return;
	}
	(void)s5_addr_set_ip4(&any, (const uint8_t[4]){ 0 }, 0);
	tunnel_init(&t, &any);
	t.cmd = S5_CMD_UDP_ASSOCIATE;
	fd = socket(tunnel_family(&t), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	r = tunnel_request(fd, tunnel_family(&t), &t);
	if (r == 0) {
		if (s5_addr_format(&t.c.reply.bnd, relay, sizeof(relay)) < 0)
			strcpy(relay, "?");
		printf("UDP: UDP ASSOCIATE offered (relay %s)\n", relay);
	} else if (t.rep >= 0) {
		printf("UDP: UDP ASSOCIATE not offered (reply %02x, %s)\n", (unsigned)t.rep,
		    s5_rep_str((uint8_t)t.rep));
	} else {
		printf("UDP: UDP ASSOCIATE failed: %s\n", strerror(-r));
	}
	close(fd);
}

int
check_run(const char *target)
{
	struct tunnel t;
	struct s5_addr dst = { .atyp = 0 };
	struct timespec t0, all;
	char text[S5_ADDR_TEXT_MAX + 96], line[512];
	const char *why = "invalid";
	long long deadline;
	size_t hop;
	bool refused_ours = false;
	int fd = -1, r;

	/* Our own lines say it all: no library warning on stderr too. */
	setenv("SOCKSIFY_LOG", "error", 1);
	preload_init();
	/* A hop none of whose alternatives has an address here (its name
	 * does not resolve): a step that failed, not a usage error. */
	for (hop = 0; hop < preload_cfg.nhops && preload_cfg.proxy_invalid; hop++) {
		size_t k, down = 0;
		char url[S5_ADDR_TEXT_MAX + 64];

		for (k = 0; k < preload_cfg.nalts[hop]; k++)
			down += preload_cfg.hops[hop][k].unusable;
		if (down == 0 || down < preload_cfg.nalts[hop])
			continue;
		if (s5_proxy_format(&preload_cfg.hops[hop][0].proxy, url, sizeof(url)) < 0)
			strcpy(url, "?");
		printf("checking %zu hop%s (%s)\nhop %zu of %zu %s: FAILED: no address for "
		    "its name here (a program would see ECONNREFUSED)\n", preload_cfg.nhops,
		    preload_cfg.nhops == 1 ? "" : "s", preload_cfg.chain_text, hop + 1,
		    preload_cfg.nhops, url);
		return CHECK_FAILED;
	}
	if (preload_cfg.nhops == 0 || preload_cfg.proxy_invalid) {
		fprintf(stderr, "socksify: --check: no usable proxy (-x URL or SOCKSIFY_PROXY)\n");
		return CHECK_USAGE;
	}
	if (target != NULL) {
		const char *colon = strrchr(target, ':'), *bad = NULL;

		memset(&dst, 0, sizeof(dst));
		if (s5_addr_parse(target, &dst, 0, &why) < 0)
			bad = why != NULL ? why : "needs HOST:PORT";
		else if (dst.atyp == S5_ATYP_IPV6 && target[0] != '[')
			bad = "needs HOST:PORT (an IPv6 host goes in brackets: [::1]:PORT)";
		else if (dst.port == 0 && colon != NULL && colon[1] != '\0' &&
		    (target[0] != '[' || colon > strchr(target, ']')))
			bad = "port 0: a connection needs a port from 1 to 65535";
		else if (dst.port == 0)
			bad = "needs HOST:PORT";
		if (bad != NULL) {
			fprintf(stderr, "socksify: --check-target %s: %s\n", target, bad);
			return CHECK_USAGE;
		}
	}
	tunnel_init(&t, &dst);
	if (target == NULL)
		check_default_target(&t, &t.dst);
	if (s5_addr_format(&t.dst, text, sizeof(text)) < 0)
		strcpy(text, "?");
	/* Each alternative of the last hop is asked for its own address. */
	if (target == NULL && preload_cfg.nalts[preload_cfg.nhops - 1] > 1)
		snprintf(text, sizeof(text), "the last hop itself (each alternative its own address)");
	printf("checking %zu hop%s (%s) for %s\n", preload_cfg.nhops,
	    preload_cfg.nhops == 1 ? "" : "s", preload_cfg.chain_text, text);
	/* Each alternative is checked on a socket of its own family; a
	 * program's IPv4 socket dials the next one on the same socket. */
	if (preload_cfg.nalts[0] > 1 && preload_cfg.hops[0][0].has_v4 &&
	    tunnel_first_mixed(-1, AF_INET))
		printf("note: alternatives of both families, an IPv4 one first: a "
		    "program's IPv4 socket reaches the IPv4 ones alone (put an IPv6 "
		    "one first to reach both)\n");
	clock_gettime(CLOCK_MONOTONIC, &all);
	deadline = tunnel_now_ms() + preload_cfg.timeout_ms;
	t.pause = true;
	if ((r = tunnel_all_down(&t)) == 0)
		(void)tunnel_attempt(&t, deadline);
	/* An alternative that fails is said, and the next one checked, as a
	 * program's connect() would move on. */
	while (r == 0) {
		/* Each attempt: the alternative it uses may be another, and
		 * of the other family (127.0.0.1:1080|[::1]:1080). */
		if (target == NULL)
			check_default_target(&t, &t.dst);
		if (fd >= 0 && check_domain(fd) != tunnel_family(&t)) {
			close(fd);
			fd = -1;
		}
		if ((r = check_dial(&t, &fd)) < 0) {
			t.dial_err = -r;
			if (tunnel_retry(&t, fd, -r, deadline)) {
				r = 0;
				continue;
			}
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			hop = t.hop;
			r = tunnel_step(&t, fd);
			if (r == TUNNEL_READ || r == TUNNEL_WRITE) {
				r = tunnel_wait(fd, r == TUNNEL_READ ? POLLIN : POLLOUT, tunnel_due(&t));
				if (r >= 0)
					continue;
			}
			if (r == TUNNEL_HOP || r == TUNNEL_DONE) {
				check_hop_line(&t, hop, check_ms(&t0));
				clock_gettime(CLOCK_MONOTONIC, &t0);
				if (r == TUNNEL_DONE)
					break;
				continue;
			}
			break;
		}
		if (r == TUNNEL_DONE)
			break;
		tunnel_explain(&t, -r, line, sizeof(line));
		check_hop_name(&t, t.hop < preload_cfg.nhops ? t.hop : preload_cfg.nhops - 1,
		    text, sizeof(text));
		if (target == NULL && t.hop + 1 == preload_cfg.nhops &&
		    check_localhost_empty(&t, r)) {
			printf("%s: %s; asking for its own address instead (it may "
			    "listen elsewhere than on loopback)\n", text, line);
			check_own_address = true;
			close(fd);
			fd = -1;
			tunnel_init(&t, &dst);
			t.pause = true;
			deadline = tunnel_now_ms() + preload_cfg.timeout_ms;
			(void)tunnel_attempt(&t, deadline);
			r = 0;
			continue;
		}
		if (tunnel_retry(&t, fd, -r, deadline)) {
			printf("%s: FAILED: %s; checking the next alternative\n", text, line);
			r = 0;
			continue;
		}
		/* The last hop refused the destination we picked ourselves by
		 * policy (a squid or tinyproxy CONNECTs to port 443 alone: 403;
		 * danted not to itself: 02): it spoke its protocol to the end,
		 * which is what the check can tell without a destination of
		 * the user's. Any other refusal (01, 03, 04, 5xx...) says the
		 * proxy cannot get out, and fails. */
		if (target == NULL && t.hop + 1 == preload_cfg.nhops && check_refused_ours(&t)) {
			printf("%s: %s (a program would see %s); it answers, only not for "
			    "this destination of ours: --check-target HOST:PORT asks for "
			    "one you use\n", text, line, preload_errno_name(-r));
			refused_ours = true;
			r = TUNNEL_DONE;
		} else {
			printf("%s: FAILED: %s (a program would see %s)\n", text, line,
			    preload_errno_name(-r));
		}
		break;
	}
	if (r != TUNNEL_DONE) {
		if (r < 0 && t.down_hop != 0) {
			tunnel_explain(&t, -r, line, sizeof(line));
			printf("FAILED: %s\n", line);
		}
		if (fd >= 0)
			close(fd);
		return CHECK_FAILED;
	}
	close(fd);
	check_udp();
	printf("ok: the chain %s (%.2f ms)\n", refused_ours ? "answers" : "works",
	    check_ms(&all));
	return CHECK_OK;
}
