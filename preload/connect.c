/*
 * connect.c: the hooks through which a program opens connections.
 *
 * connect() on an IPv4/IPv6 stream socket is tunnelled unless the destination
 * is the first proxy itself or excluded; UNIX sockets and everything else go
 * to libc untouched. sendto()/sendmsg() with MSG_FASTOPEN are another way to
 * connect a TCP socket (P14), so they take the same path. With remote
 * resolution a UDP datagram to port 53 is refused with EPERM: a program with
 * its own resolver (dig, c-ares, Go) would otherwise leak the name (P7).
 * SOCKSIFY_UDP=block refuses every IPv4/IPv6 datagram the same way.
 *
 * Fail closed: an IPv4/IPv6 destination we cannot read is refused with
 * EINVAL, the kernel's answer to a short sockaddr, and never handed to libc,
 * whose idea of a readable sockaddr may be wider than ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "preload.h"

#define DNS_PORT	53
#define CONNECT_UNKNOWN_PLACEHOLDER \
	"a placeholder address no process of this tree handed out"
#define TRACE_REPLY_MAX	32		/* ", reply 0xNN" */
#define TRACE_ERRSTR_MAX	64		/* strerror_r() text */

/* True for an AF_INET/AF_INET6 sockaddr that can be read as one. */
static bool
connect_is_inet(const struct sockaddr *sa, socklen_t len)
{
	return sa != NULL && len >= sizeof(sa_family_t) &&
	    (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

static int
connect_socket_type(int fd)
{
	socklen_t len = sizeof(int);
	int type;

	if (preload_real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
		return -1;
	return type;
}

/*
 * The datagram policy: 0 when a datagram to sa may go, else -errno. UDP,
 * ICMP and raw sockets cannot take a CONNECT tunnel, so a datagram would
 * leave the host directly, around the proxy: under SOCKSIFY_UDP=block (the
 * default) it may go only to an excluded destination, or to port 53 when
 * the program resolves names itself (socks5://, where the user asked for
 * local lookups). Under remote resolution a datagram to port 53 is a DNS
 * query that bypasses the proxy, excluded or not. A refusal is EPERM with
 * one line saying so; a destination we cannot read might be either
 * (EINVAL).
 */
/* One line for a refusal; sa was vouched for by s5_addr_from_sockaddr. */
static void
connect_refuse(const struct sockaddr *sa, const char *what, const char *why)
{
	char text[S5_ADDR_TEXT_MAX];

	if (s5_sockaddr_format(sa, text, sizeof(text)) < 0)
		strcpy(text, "?");
	preload_log(LOG_LVL_ERROR, "blocked %s to %s (%s)", what, text, why);
}

static int
connect_dgram_policy(const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr a;
	const char *why;

	if (!preload_cfg.remote_dns && !preload_cfg.udp_block)
		return 0;
	if (s5_addr_from_sockaddr(&a, sa, len) != 0)
		return -EINVAL;
	if (a.port == DNS_PORT && preload_cfg.remote_dns)
		why = "remote DNS";
	else if (!preload_cfg.udp_block || a.port == DNS_PORT ||
	    preload_is_excluded(&a))
		return 0;
	else
		why = "SOCKSIFY_UDP=block";
	connect_refuse(sa, "UDP datagram", why);
	return -EPERM;
}

/*
 * SCTP (SOCK_SEQPACKET, or a stream socket of its own protocol is tunnelled
 * and fails at the proxy), DCCP and whatever else the kernel grows cannot
 * take a CONNECT tunnel either: they may reach excluded destinations only.
 */
static int
connect_other_policy(int type, const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr a;
	char why[sizeof("socket type 2147483647")];

	if (s5_addr_from_sockaddr(&a, sa, len) != 0)
		return -EINVAL;
	if (preload_is_excluded(&a))
		return 0;
	snprintf(why, sizeof(why), "socket type %d", type);
	connect_refuse(sa, "UDP datagram", why);
	return -EPERM;
}

/* Sockets whose datagrams the policy above governs. */
static bool
connect_is_dgram(int type)
{
	return type == SOCK_DGRAM || type == SOCK_RAW;
}

/* A placeholder under remote resolution: only a tunnel can carry its name. */
static bool
connect_is_placeholder(const struct s5_addr *a)
{
	return preload_cfg.remote_dns && fakedns_in_range(a);
}

/* The policy for a socket of this type sending to sa: 0 when TCP (for the
 * tunnel to handle) or allowed, else -errno. */
static int
connect_type_policy(int type, const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr a;

	/* Anything but TCP to a placeholder cannot carry the name: sent raw,
	 * it takes what it says (a QUIC Initial names the host) around the
	 * tunnel, excluded or not, whatever SOCKSIFY_UDP says. */
	if (type != SOCK_STREAM && s5_addr_from_sockaddr(&a, sa, len) == 0 &&
	    connect_is_placeholder(&a)) {
		connect_refuse(sa, "datagram", "a placeholder address");
		return -EHOSTUNREACH;
	}
	if (connect_is_dgram(type))
		return connect_dgram_policy(sa, len);
	if (type != SOCK_STREAM)
		return connect_other_policy(type, sa, len);
	return 0;
}

static bool
connect_same_addr(const struct s5_addr *a, const struct s5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return false;
	if (a->atyp == S5_ATYP_IPV4)
		return memcmp(a->u.ip4, b->u.ip4, 4) == 0;
	return a->atyp == S5_ATYP_IPV6 && memcmp(a->u.ip6, b->u.ip6, 16) == 0;
}

/* Connections to the first proxy are our own business or the program's:
 * never tunnel them (P12). */
static bool
connect_is_proxy(const struct s5_addr *dst)
{
	const struct preload_hop *h = &preload_cfg.hops[0];

	if (preload_cfg.nhops == 0)
		return false;
	return (h->has_v4 && connect_same_addr(dst, &h->v4)) ||
	    (h->has_v6 && connect_same_addr(dst, &h->v6));
}

static bool
connect_is_connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int saved = errno;
	bool yes;

	yes = getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
	errno = saved;
	return yes;
}

void
connect_trace(const char *dest, int err, int rep)
{
	char why[TRACE_REPLY_MAX], buf[TRACE_ERRSTR_MAX];

	if (err == 0) {
		preload_log(LOG_LVL_TRACE, "connect %s via %s: ok", dest,
		    preload_cfg.chain_text);
		return;
	}
	why[0] = '\0';
	if (rep >= 0)
		snprintf(why, sizeof(why), ", reply 0x%02x", (unsigned)rep);
	preload_log(LOG_LVL_INFO, "connect %s via %s: failed: %s (%s%s)", dest,
	    preload_cfg.chain_text, strerror_r(err, buf, sizeof(buf)),
	    preload_errno_name(err), why);
}

/* --trace names direct connections too; below trace this costs a compare. */
static void
connect_trace_direct(const struct sockaddr *sa, const char *why)
{
	char dest[S5_ADDR_TEXT_MAX];

	if (preload_cfg.log_level < LOG_LVL_TRACE)
		return;
	if (s5_sockaddr_format(sa, dest, sizeof(dest)) < 0)
		strcpy(dest, "?");
	preload_log(LOG_LVL_TRACE, "connect %s: direct (%s)", dest, why);
}

int
connect_hooked(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr dst;
	char name[S5_DOMAIN_MAX + 1], dest[S5_ADDR_TEXT_MAX];
	int type, r, conv, flags, rep = -1, saved = errno;

	conv = s5_addr_from_sockaddr(&dst, sa, len);
	/*
	 * The fast path: an excluded destination goes direct whatever the
	 * socket (the datagram and other-type policies let it through too),
	 * with no system call of ours. DNS under remote resolution and
	 * placeholders take the long way.
	 */
	if (conv == 0 && preload_is_excluded(&dst) &&
	    !(preload_cfg.remote_dns && dst.port == DNS_PORT) &&
	    !connect_is_placeholder(&dst)) {
		connect_trace_direct(sa, "excluded");
		errno = saved;
		return preload_real.connect(fd, sa, len);
	}
	type = connect_socket_type(fd);
	if ((r = connect_type_policy(type, sa, len)) < 0) {
		errno = -r;
		return -1;
	}
	if (type != SOCK_STREAM) {
		errno = saved;
		return preload_real.connect(fd, sa, len);
	}
	if (conv != 0) {
		preload_log(LOG_LVL_INFO, "connect: unreadable address (family %d, "
		    "%u bytes): refused", (int)sa->sa_family, (unsigned)len);
		errno = EINVAL;
		return -1;
	}
	if (connect_is_placeholder(&dst)) {
		/* A placeholder: the name goes to the proxy, never a lookup.
		 * One this tree never handed out (an ancestor's table we
		 * cannot reach) means nothing to the proxy, and sent as an
		 * address it could reach a host nobody chose. */
		if (!fakedns_name_of(&dst, name, sizeof(name)) ||
		    s5_addr_set_domain(&dst, name, strlen(name), dst.port) != 0) {
			connect_refuse(sa, "connection", CONNECT_UNKNOWN_PLACEHOLDER);
			errno = EHOSTUNREACH;
			return -1;
		}
	} else if (connect_is_proxy(&dst)) {
		connect_trace_direct(sa, "the proxy itself");
		errno = saved;
		return preload_real.connect(fd, sa, len);
	} else if (preload_is_excluded(&dst)) {
		/* Under remote resolution DNS over TCP is a lookup around the
		 * proxy too, through a local resolver or not: refused like
		 * UDP's. */
		if (preload_cfg.remote_dns && dst.port == DNS_PORT) {
			connect_refuse(sa, "DNS over TCP", "remote DNS");
			errno = EPERM;
			return -1;
		}
		connect_trace_direct(sa, "excluded");
		errno = saved;
		return preload_real.connect(fd, sa, len);
	}
	/* A socket whose handshake is under way: EALREADY, or a blocking
	 * socket waits for it again, as the kernel's connect() does. */
	if (__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) && async_pending(fd) &&
	    (r = async_hold(fd, HOLD_CONNECT, false)) != 0) {
		if (r > 0) {
			errno = saved;
			return 0;
		}
		errno = -r;
		return -1;
	}
	/*
	 * A connected socket: EISCONN, ours to say, and the dial below would
	 * talk SOCKS5 to the target. Only the first connect() after one that
	 * ended in the background answers 0, as the kernel's does.
	 */
	if (connect_is_connected(fd)) {
		if (peer_take_fresh(fd)) {
			errno = saved;
			return 0;
		}
		errno = EISCONN;
		return -1;
	}

	if (dst.atyp == S5_ATYP_DOMAIN)
		r = s5_addr_format(&dst, dest, sizeof(dest));
	else
		r = s5_sockaddr_format(sa, dest, sizeof(dest));
	if (r < 0)
		strcpy(dest, "?");

	/* A second connect() after a failed non-blocking one reports that
	 * failure, as the kernel does, rather than dialling again. */
	if ((r = peer_take_error(fd)) != 0) {
		errno = r;
		return -1;
	}
	/* The engine (async.c): the socket's family is the address's, the
	 * kernel takes no other. It logs the outcome itself. */
	r = preload_cfg.proxy_invalid ? -ECONNREFUSED :
	    async_connect(fd, sa->sa_family, sa, len, &dst, dest);
	if (r != ASYNC_SYNC && !preload_cfg.proxy_invalid) {
		if (r == 0) {
			errno = saved;
			return 0;
		}
		/* EINPROGRESS, EINTR: under way; EISCONN, EALREADY: the
		 * kernel's answer to a second connect(); else the outcome. */
		errno = -r;
		return -1;
	}
	if (r == ASYNC_SYNC)
		r = tunnel_connect(fd, sa->sa_family, &dst, &rep);
	if (r == -EISCONN || r == -EALREADY) {
		errno = -r;	/* a second connect(), answered by the kernel */
		return -1;
	}
	connect_trace(dest, -r, rep);
	if (r < 0) {
		flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
		if (flags >= 0 && (flags & O_NONBLOCK)) {
			peer_fail_later(fd, -r);
			errno = EINPROGRESS;
			return -1;
		}
		errno = -r;
		return -1;
	}
	peer_remember(fd, sa, len, false);
	errno = saved;
	return 0;
}

int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	preload_init_symbols();
	if (preload_real.connect == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!connect_is_inet(sa, len) || !preload_init())
		return preload_real.connect(fd, sa, len);
	return connect_hooked(fd, sa, len);
}

/* glibc exports connect() under this name too; a program may call it. */
int __connect(int fd, const struct sockaddr *sa, socklen_t len)
    __attribute__((alias("connect")));

/* The datagram and fast-open policy for a send with a destination. Returns
 * 1 when the caller goes on with the real call, 0 when a fast-open connect
 * was made (send without destination now), -1 with errno set. */
static int
connect_send_policy(int fd, const struct sockaddr *sa, socklen_t len, int flags)
{
	struct s5_addr a;
	int type, r;

	if (!connect_is_inet(sa, len) || !preload_init())
		return 1;
	/* The fast path, no syscall of ours: no policy can refuse this send
	 * (as connect_hooked(): an excluded destination takes any socket). */
	if (!(flags & MSG_FASTOPEN)) {
		bool known = s5_addr_from_sockaddr(&a, sa, len) == 0;
		bool dns = known && preload_cfg.remote_dns && a.port == DNS_PORT;
		bool fake = known && connect_is_placeholder(&a);

		if (!preload_cfg.udp_block && !fake &&
		    (!preload_cfg.remote_dns || (known && !dns)))
			return 1;
		if (known && !dns && !fake && preload_is_excluded(&a))
			return 1;
	}
	type = connect_socket_type(fd);
	if ((r = connect_type_policy(type, sa, len)) < 0) {
		errno = -r;
		return -1;
	}
	/* A fast-open send hands its data over with the connect: it waits
	 * for the handshake even on a non-blocking socket, as when the
	 * kernel has a cookie and puts the data in the SYN. */
	if (type == SOCK_STREAM && (flags & MSG_FASTOPEN) && !connect_is_connected(fd)) {
		if (connect_hooked(fd, sa, len) == 0)
			return 0;
		if (errno != EINPROGRESS || (r = async_settle(fd)) == 0)
			return errno == EINPROGRESS ? 0 : -1;
		errno = -r;
		return -1;
	}
	return 1;
}

ssize_t
sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
    socklen_t len)
{
	int r;

	preload_init_symbols();
	if (preload_real.sendto == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, flags) != 0)
		return -1;
	r = connect_send_policy(fd, sa, len, flags);
	if (r < 0)
		return -1;
	if (r == 0)
		return send(fd, buf, n, flags & ~MSG_FASTOPEN);
	return preload_real.sendto(fd, buf, n, flags, sa, len);
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct msghdr m;
	int r;

	preload_init_symbols();
	if (preload_real.sendmsg == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, flags) != 0)
		return -1;
	if (msg == NULL)
		return preload_real.sendmsg(fd, msg, flags);
	r = connect_send_policy(fd, msg->msg_name, msg->msg_namelen, flags);
	if (r < 0)
		return -1;
	if (r == 0) {
		m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return preload_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	return preload_real.sendmsg(fd, msg, flags);
}

int
sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int i;
	int type = -1, r = 0;

	preload_init_symbols();
	if (preload_real.sendmmsg == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, flags) != 0)
		return -1;
	/* A fast-open connect with the first message, tunnelled as sendmsg()
	 * does it; the kernel would otherwise connect straight to the target. */
	if (vec != NULL && vlen > 0 && (flags & MSG_FASTOPEN)) {
		ssize_t n;

		r = connect_send_policy(fd, vec[0].msg_hdr.msg_name,
		    vec[0].msg_hdr.msg_namelen, flags);
		if (r < 0)
			return -1;
		if (r == 0) {
			struct msghdr m = vec[0].msg_hdr;

			m.msg_name = NULL;
			m.msg_namelen = 0;
			if ((n = preload_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN)) < 0)
				return -1;
			vec[0].msg_len = (unsigned int)n;
			return 1;
		}
	}
	/* Only the datagram policy applies here: glibc's resolver batches its A
	 * and AAAA queries with sendmmsg(), and so may a program's own. */
	if (vec != NULL && preload_init() &&
	    (preload_cfg.remote_dns || preload_cfg.udp_block)) {
		for (i = 0; i < vlen; i++) {
			const struct msghdr *h = &vec[i].msg_hdr;

			if (!connect_is_inet(h->msg_name, h->msg_namelen))
				continue;
			if (type < 0)
				type = connect_socket_type(fd);
			if (!connect_is_dgram(type))
				break;
			r = connect_type_policy(type, h->msg_name, h->msg_namelen);
			if (r < 0)
				break;
		}
		/* Like the kernel: the messages before a refused one are sent
		 * and counted; the error shows when it comes first. */
		if (r < 0 && i == 0) {
			errno = -r;
			return -1;
		}
		if (r < 0)
			vlen = i;
	}
	return preload_real.sendmmsg(fd, vec, vlen, flags);
}
