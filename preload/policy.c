/*
 * policy.c: what a connection of the program may do, decided the same way
 * for both front ends: the library's hooks (connect.c) and the seccomp
 * supervisor (supervisor.c). Nothing here touches a socket; the callers
 * say what kind of socket it is.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "preload.h"

#define TRACE_WHY_MAX	512		/* tunnel_explain() text */
#define TRACE_ERRSTR_MAX	64		/* strerror_r() text */

/*
 * The datagram policy: 0 when a datagram to sa may go, else -errno. UDP,
 * ICMP and raw sockets cannot take a CONNECT tunnel, so a datagram would
 * leave the host directly, around the proxy: under SOCKSIFY_UDP=block (and
 * proxy, for what udp.c does not relay) it may go only to an excluded destination, or to port 53 when
 * the program resolves names itself (socks5://, where the user asked for
 * local lookups). Under remote resolution a datagram to port 53 is a DNS
 * query that bypasses the proxy, excluded or not. A refusal is EPERM with
 * one line saying so; a destination we cannot read might be either
 * (EINVAL).
 */
/*
 * The line of a refusal; sa was vouched for by s5_addr_from_sockaddr. An
 * error, so -q says it too; but a program that sends a datagram a
 * millisecond must not write a line a millisecond: one kind and reason is
 * said at most every 10 s up to the default level (preload_log_limited()).
 */
#define POLICY_PACKET	"ICMP or raw packet"

static void policy_refuse_at(int level, const struct sockaddr *sa, const char *what,
    const char *why);

void
policy_refuse(const struct sockaddr *sa, const char *what, const char *why)
{
	policy_refuse_at(LOG_LVL_ERROR, sa, what, why);
}

static void
policy_refuse_at(int level, const struct sockaddr *sa, const char *what, const char *why)
{
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	char text[S5_ADDR_TEXT_MAX];
	struct s5_addr a;

	/* A packet (ICMP, raw) has no port: the address alone. */
	if (strcmp(what, POLICY_PACKET) == 0 && s5_addr_from_sockaddr(&a, sa, len) == 0) {
		if (inet_ntop(a.atyp == S5_ATYP_IPV4 ? AF_INET : AF_INET6, &a.u, text,
		    sizeof(text)) == NULL)
			strcpy(text, "?");
	} else if (s5_sockaddr_format(sa, text, sizeof(text)) < 0) {
		strcpy(text, "?");
	}
	preload_log_limited(level, preload_log_key(what, why),
	    "blocked %s to %s (%s)", what, text, why);
}

/* connecting: a connect() of the socket, which sends nothing yet. */
static int
policy_dgram(int type, const struct sockaddr *sa, socklen_t len, bool connecting)
{
	struct s5_addr a;
	const char *why;
	bool dns;

	if (!preload_cfg.remote_dns && !preload_cfg.udp_block)
		return 0;
	if (s5_addr_from_sockaddr(&a, sa, len) != 0)
		return -EINVAL;
	/* Port 53 means DNS for UDP only: an ICMP echo (a ping socket) or a
	 * raw packet "to port 53" goes to the host like any other. */
	dns = a.port == POLICY_DNS_PORT && type == SOCK_DGRAM;
	if (dns && preload_cfg.remote_dns)
		why = "remote DNS";
	else if (!preload_cfg.udp_block || dns || preload_is_excluded(&a))
		return 0;
	else if (!preload_cfg.udp_proxy)
		why = "SOCKSIFY_UDP=block";
	else if (type == SOCK_DGRAM && connecting) {
		/* Asked by the supervisor (udp.c is the library's). Go's
		 * resolver connect()s a UDP socket to each address it sorts
		 * (RFC 6724) and sends nothing: said, not as an error of
		 * every run (-q keeps it quiet). */
		policy_refuse_at(LOG_LVL_WARN, sa, "connect() of a UDP socket",
		    "SOCKSIFY_UDP=proxy: no relay for a program the library cannot reach");
		return -EPERM;
	} else if (type == SOCK_DGRAM)
		why = "SOCKSIFY_UDP=proxy: no relay for a program the library cannot reach";
	else
		why = "SOCKSIFY_UDP=proxy relays UDP only";
	/* policy_socket_type(): SOCK_RAW for ping's ICMP datagrams too. */
	policy_refuse(sa, type == SOCK_DGRAM ? "UDP datagram" : POLICY_PACKET, why);
	return -EPERM;
}

/*
 * SCTP (SOCK_SEQPACKET, or a stream socket of its own protocol is tunnelled
 * and fails at the proxy), DCCP and whatever else the kernel grows cannot
 * take a CONNECT tunnel either: they may reach excluded destinations only.
 */
static int
policy_other(int type, const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr a;
	char why[sizeof("socket type 2147483647")];

	if (s5_addr_from_sockaddr(&a, sa, len) != 0)
		return -EINVAL;
	if (preload_is_excluded(&a))
		return 0;
	snprintf(why, sizeof(why), "socket type %d", type);
	policy_refuse(sa, "traffic", why);
	return -EPERM;
}

/* Sockets whose datagrams the policy above governs. */
bool
policy_is_dgram(int type)
{
	return type == SOCK_DGRAM || type == SOCK_RAW;
}

/* A placeholder under remote resolution: only a tunnel can carry its name. */
bool
policy_is_placeholder(const struct s5_addr *a)
{
	return preload_cfg.remote_dns && fakedns_in_range(a);
}

/* The policy for a socket of this type sending to sa: 0 when TCP (for the
 * tunnel to handle) or allowed, else -errno. */
static int policy_type_for(int type, const struct sockaddr *sa, socklen_t len,
    bool connecting);

int
policy_type(int type, const struct sockaddr *sa, socklen_t len)
{
	return policy_type_for(type, sa, len, false);
}

static int
policy_type_for(int type, const struct sockaddr *sa, socklen_t len, bool connecting)
{
	struct s5_addr a;

	/* Anything but TCP to a placeholder cannot carry the name: sent raw,
	 * it takes what it says (a QUIC Initial names the host) around the
	 * tunnel, excluded or not, whatever SOCKSIFY_UDP says. Under block,
	 * with block's errno and words, as every other datagram it stops. */
	if (type != SOCK_STREAM && s5_addr_from_sockaddr(&a, sa, len) == 0 &&
	    policy_is_placeholder(&a)) {
		if (preload_cfg.udp_block && !preload_cfg.udp_proxy && !preload_is_excluded(&a)) {
			policy_refuse(sa, type == SOCK_DGRAM ? "UDP datagram" : POLICY_PACKET,
			    "SOCKSIFY_UDP=block");
			return -EPERM;
		}
		policy_refuse(sa, "datagram", "a placeholder address");
		return -EHOSTUNREACH;
	}
	if (policy_is_dgram(type))
		return policy_dgram(type, sa, len, connecting);
	if (type != SOCK_STREAM)
		return policy_other(type, sa, len);
	return 0;
}

/* A placeholder dst becomes the name it stands for; -1 (logged, what the
 * refused thing is) when this tree never handed it out. */
static int
policy_name_of(struct s5_addr *dst, const struct sockaddr *sa, const char *what)
{
	char name[S5_DOMAIN_MAX + 1];

	if (!fakedns_name_of(dst, name, sizeof(name)) ||
	    s5_addr_set_domain(dst, name, strlen(name), dst->port) != 0) {
		policy_refuse(sa, what, POLICY_UNKNOWN_PLACEHOLDER);
		return -1;
	}
	return 0;
}

/*
 * The library's verdict on a datagram of a socket of type to sa: a DNS
 * query (UDP to port 53, any address) under remote resolution is
 * POLICY_ANSWER, answered by udp.c; under SOCKSIFY_UDP=proxy a UDP datagram
 * to a destination not excluded is POLICY_RELAY, with *dst the destination
 * as the proxy gets it (a placeholder's name); otherwise as policy_type().
 * The supervisor, which relays nothing, asks policy_type().
 */
int
policy_udp(int type, const struct sockaddr *sa, socklen_t len, struct s5_addr *dst)
{
	if (type == SOCK_DGRAM && preload_cfg.remote_dns &&
	    s5_addr_from_sockaddr(dst, sa, len) == 0 && dst->port == POLICY_DNS_PORT)
		return POLICY_ANSWER;
	if (!preload_cfg.udp_proxy || type != SOCK_DGRAM ||
	    s5_addr_from_sockaddr(dst, sa, len) != 0)
		return policy_type(type, sa, len);
	if (policy_is_placeholder(dst))
		return policy_name_of(dst, sa, "datagram") < 0 ? -EHOSTUNREACH : POLICY_RELAY;
	if (preload_is_excluded(dst))
		return 0;
	return POLICY_RELAY;
}

/* Connections to the first proxy (any of its alternatives) are our own
 * business or the program's: never tunnel them (P12). */
bool
policy_is_proxy(const struct s5_addr *dst)
{
	const struct preload_hop *h;
	size_t k;

	for (k = 0; preload_cfg.nhops > 0 && k < preload_cfg.nalts[0]; k++) {
		h = &preload_cfg.hops[0][k];
		if ((h->has_v4 && s5_addr_equal(dst, &h->v4)) ||
		    (h->has_v6 && s5_addr_equal(dst, &h->v6)))
			return true;
	}
	return false;
}


int
policy_socket_type(int fd, int (*getsockopt_fn)(int, int, int, void *, socklen_t *))
{
	socklen_t len = sizeof(int);
	int type, proto;

	if (getsockopt_fn(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
		return -errno;
	len = sizeof(int);
	/* UDP-Lite too: neither the relay nor our DNS answers speak it. */
	if (type == SOCK_DGRAM &&
	    getsockopt_fn(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
	    proto != IPPROTO_UDP)
		return SOCK_RAW;
	return type;
}

/*
 * The verdict on a connect() of a socket of type to sa: POLICY_TUNNEL with
 * *dst the destination (a placeholder mapped back to its name), POLICY_DIRECT
 * with *why for the trace line, or -errno (logged) when it is refused.
 */
int
policy_connect(int type, const struct sockaddr *sa, socklen_t len,
    struct s5_addr *dst, const char **why)
{
	int r;

	*why = "not TCP";
	if ((r = policy_type_for(type, sa, len, true)) < 0)
		return r;
	if (type != SOCK_STREAM)
		return POLICY_DIRECT;
	if (s5_addr_from_sockaddr(dst, sa, len) != 0) {
		preload_log(LOG_LVL_INFO, "connect: unreadable address (family %d, "
		    "%u bytes): refused", (int)sa->sa_family, (unsigned)len);
		return -EINVAL;
	}
	if (policy_is_placeholder(dst)) {
		/* A placeholder: the name goes to the proxy, never a lookup.
		 * One this tree never handed out (an ancestor's table we
		 * cannot reach) means nothing to the proxy, and sent as an
		 * address it could reach a host nobody chose. */
		return policy_name_of(dst, sa, "connection") < 0 ? -EHOSTUNREACH : POLICY_TUNNEL;
	}
	if (policy_is_proxy(dst)) {
		*why = "the proxy itself";
		return POLICY_DIRECT;
	}
	if (preload_is_excluded(dst)) {
		/* Under remote resolution DNS over TCP is a lookup around the
		 * proxy too, through a local resolver or not: refused like
		 * UDP's. */
		if (preload_cfg.remote_dns && dst->port == POLICY_DNS_PORT) {
			policy_refuse(sa, "DNS over TCP", "remote DNS");
			return -EPERM;
		}
		*why = "excluded";
		return POLICY_DIRECT;
	}
	return POLICY_TUNNEL;
}

void
trace_failure(const char *what, int err, const struct tunnel *t)
{
	char why[TRACE_WHY_MAX], buf[TRACE_ERRSTR_MAX];

	if (preload_cfg.log_level < LOG_LVL_INFO) {
		if (t != NULL)
			tunnel_diagnose(t, err);
		return;
	}
	/* Each failure its line: the same words as the warning. */
	if (t != NULL)
		tunnel_explain(t, err, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", strerror_r(err, buf, sizeof(buf)));
	preload_log(LOG_LVL_INFO, "%s via %s: failed: %s (%s)", what,
	    preload_cfg.chain_text, why, preload_errno_name(err));
}

/* The proxies t went through, the alternative of each hop that has
 * several named: "a -> c (alternative 2 of 2)". */
static void
trace_route(const struct tunnel *t, char *buf, size_t cap)
{
	char text[S5_ADDR_TEXT_MAX];
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < preload_cfg.nhops && off < cap; i++) {
		if (s5_addr_format(&tunnel_hop(t, i)->proxy.addr, text, sizeof(text)) < 0)
			strcpy(text, "?");
		if (preload_cfg.nalts[i] > 1)
			n = snprintf(buf + off, cap - off, "%s%s (alternative %u of %zu)",
			    i > 0 ? " -> " : "", text, (unsigned)t->alt[i] + 1,
			    preload_cfg.nalts[i]);
		else
			n = snprintf(buf + off, cap - off, "%s%s", i > 0 ? " -> " : "", text);
		off += n > 0 ? (size_t)n : 0;
	}
}

void
connect_trace(const char *dest, int err, const struct tunnel *t)
{
	char what[S5_ADDR_TEXT_MAX + 16], route[PRELOAD_LOG_LINE_MAX];

	if (err == 0) {
		if (preload_cfg.log_level < LOG_LVL_TRACE)
			return;
		if (t != NULL)
			trace_route(t, route, sizeof(route));
		preload_log(LOG_LVL_TRACE, "connect %s via %s: ok", dest,
		    t != NULL ? route : preload_cfg.chain_text);
		return;
	}
	snprintf(what, sizeof(what), "connect %s", dest);
	trace_failure(what, err, t);
}

/* --trace names direct connections too; below trace this costs a compare. */
void
connect_trace_direct(const struct sockaddr *sa, const char *why)
{
	char dest[S5_ADDR_TEXT_MAX];

	if (preload_cfg.log_level < LOG_LVL_TRACE)
		return;
	if (s5_sockaddr_format(sa, dest, sizeof(dest)) < 0)
		strcpy(dest, "?");
	preload_log(LOG_LVL_TRACE, "connect %s: direct (%s)", dest, why);
}
