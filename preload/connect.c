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


/* True for an AF_INET/AF_INET6 sockaddr that can be read as one. */
static bool
connect_is_inet(const struct sockaddr *sa, socklen_t len)
{
	return !preload_unmapped(sa) && len >= sizeof(sa_family_t) &&
	    (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

static int
connect_socket_type(int fd)
{
	int type = policy_socket_type(fd, preload_real.getsockopt);

	return type < 0 ? -1 : type;
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

/* The real connect(); once it succeeded, a UDP socket connect()ed through
 * us before has no peer of ours (udp.c): the kernel's peer is another. */
static int
connect_direct(int fd, const struct sockaddr *sa, socklen_t len)
{
	int r = preload_real.connect(fd, sa, len);

	if (r == 0 && udp_maybe(fd))
		udp_unpeer(fd);
	return r;
}

int
connect_hooked(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr dst;
	struct tunnel t, *ran = NULL;
	char dest[S5_ADDR_TEXT_MAX];
	const char *why;
	int type, r, conv, flags, saved = errno;

	conv = s5_addr_from_sockaddr(&dst, sa, len);
	/*
	 * The fast path: an excluded destination goes direct whatever the
	 * socket (the datagram and other-type policies let it through too),
	 * with no system call of ours. DNS under remote resolution and
	 * placeholders take the long way.
	 */
	if (conv == 0 && preload_is_excluded(&dst) &&
	    !(preload_cfg.remote_dns && dst.port == POLICY_DNS_PORT) &&
	    !policy_is_placeholder(&dst)) {
		connect_trace_direct(sa, "excluded");
		errno = saved;
		return connect_direct(fd, sa, len);
	}
	type = connect_socket_type(fd);
	/* An IPV6_V6ONLY socket and an IPv4-mapped destination: the kernel
	 * refuses it (ENETUNREACH) before anything is sent; tunnelled, it
	 * would have reached the IPv4 host. */
	if (sa != NULL && len >= (socklen_t)sizeof(struct sockaddr_in6) &&
	    sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr) &&
	    preload_v6only(fd)) {
		errno = saved;
		return connect_direct(fd, sa, len);
	}
	/* DNS over TCP under remote resolution, to any address: answered
	 * here (dnsconn.c), never tunnelled nor sent. */
	if (type == SOCK_STREAM && conv == 0 && preload_cfg.remote_dns &&
	    dst.port == POLICY_DNS_PORT && !connect_is_connected(fd)) {
		if (dnsconn_connect(fd, sa, len) != 0)
			return -1;
		errno = saved;
		return 0;
	}
	/* A UDP socket's peer through the relay or our DNS answers
	 * (udp.c), or no longer. */
	if (type == SOCK_DGRAM) {
		r = policy_udp(type, sa, len, &dst);
		if (r < 0) {
			errno = -r;
			return -1;
		}
		if (r == POLICY_RELAY || r == POLICY_ANSWER) {
			if (udp_connect(fd, sa, len, r == POLICY_RELAY ? &dst : NULL) != 0)
				return -1;
			errno = saved;
			return 0;
		}
	}
	r = policy_connect(type, sa, len, &dst, &why);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (r == POLICY_DIRECT) {
		if (type == SOCK_STREAM)
			connect_trace_direct(sa, why);
		errno = saved;
		return connect_direct(fd, sa, len);
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
	if (r == ASYNC_SYNC) {
		r = tunnel_connect(fd, sa->sa_family, &dst, &t);
		ran = &t;
	}
	if (r == -EISCONN || r == -EALREADY) {
		errno = -r;	/* a second connect(), answered by the kernel */
		return -1;
	}
	connect_trace(dest, -r, ran);
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
	listen_note(fd, &t.c.reply.bnd);
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
	if (preload_unmapped(sa) && len > 0) {
		errno = EFAULT;	/* preload.h: the kernel's answer, even were page 0 mapped */
		return -1;
	}
	if (!connect_is_inet(sa, len) || !preload_init()) {
		/* AF_UNSPEC dissolves a UDP socket's association with its peer. */
		return connect_direct(fd, sa, len);
	}
	return connect_hooked(fd, sa, len);
}

/* glibc exports connect() under this name too; a program may call it. */
int __connect(int fd, const struct sockaddr *sa, socklen_t len)
    __attribute__((alias("connect")));

/*
 * The destination the kernel takes from a send's (sa, *len): none (NULL,
 * *len 0) for a zero length, or AF_UNSPEC on an IPv6 socket;
 * on an IPv4 socket an AF_UNSPEC address is read as AF_INET (the kernel's
 * udp_sendmsg() and raw sockets do), so it is, into *copy, and goes
 * through the policy like any other.
 */
static const struct sockaddr *
connect_send_name(int fd, const struct sockaddr *sa, socklen_t *len,
    struct sockaddr_in *copy)
{
	socklen_t dlen = sizeof(int);
	int domain;

	if (sa == NULL || *len == 0) {
		*len = 0;
		return NULL;
	}
	if (preload_unmapped(sa) || *len < sizeof(sa_family_t) || sa->sa_family != AF_UNSPEC)
		return sa;
	if (PRELOAD_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) != 0)
		return sa;	/* not a socket: the kernel's ENOTSOCK */
	if (domain == AF_INET6) {
		*len = 0;
		return NULL;
	}
	if (domain != AF_INET)
		return sa;
	if (*len < sizeof(*copy))
		return sa;	/* too short for AF_INET: the kernel's EINVAL */
	memcpy(copy, sa, sizeof(*copy));
	copy->sin_family = AF_INET;
	*len = sizeof(*copy);
	return (const struct sockaddr *)copy;
}

/* A send's result, after a DNS query it carried was answered (dnsconn.c). */
static ssize_t
connect_pumped(int fd, ssize_t r)
{
	if (r > 0 && dnsconn_maybe(fd))
		dnsconn_pump(fd);
	return r;
}

/* The datagram and fast-open policy for a send with a destination. Returns
 * 1 when the caller goes on with the real call, 0 when a fast-open connect
 * was made (send without destination now), 2 when the datagram goes
 * through the UDP relay to *relay, 3 when it is a DNS query we answer
 * (both udp.c), -1 with errno set. */
static int
connect_send_policy(int fd, const struct sockaddr *sa, socklen_t len, int flags,
    struct s5_addr *relay)
{
	struct s5_addr a;
	int type, r;

	if (!connect_is_inet(sa, len) || !preload_init())
		return 1;
	/* The fast path, no syscall of ours: no policy can refuse this send
	 * (as connect_hooked(): an excluded destination takes any socket). */
	if (!(flags & MSG_FASTOPEN)) {
		bool known = s5_addr_from_sockaddr(&a, sa, len) == 0;
		bool dns = known && preload_cfg.remote_dns && a.port == POLICY_DNS_PORT;
		bool fake = known && policy_is_placeholder(&a);

		if (!preload_cfg.udp_block && !fake &&
		    (!preload_cfg.remote_dns || (known && !dns)))
			return 1;
		if (known && !dns && !fake && preload_is_excluded(&a))
			return 1;
	}
	type = connect_socket_type(fd);
	if ((r = policy_udp(type, sa, len, relay)) < 0) {
		errno = -r;
		return -1;
	}
	if (r == POLICY_RELAY)
		return 2;
	if (r == POLICY_ANSWER)
		return 3;
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
	struct sockaddr_in unspec;
	struct s5_addr dst;
	int r;

	preload_init_symbols();
	if (preload_real.sendto == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, &flags) != 0)
		return -1;
	/* NULL is no destination, whatever the length (as the kernel reads it). */
	if (sa != NULL && preload_unmapped(sa) && len > 0) {
		errno = EFAULT;
		return -1;
	}
	sa = connect_send_name(fd, sa, &len, &unspec);
	r = connect_send_policy(fd, sa, len, flags, &dst);
	if (r < 0)
		return -1;
	if (r == 0)
		return send(fd, buf, n, flags & ~MSG_FASTOPEN);
	if (r >= 2 || (sa == NULL && udp_maybe(fd))) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t sent;

		if (r == 3)
			return udp_answer(fd, &m, sa, len);
		sent = udp_send(fd, &m, flags, r == 2 ? &dst : NULL, sa, len);
		if (sent != UDP_NOT_MINE)
			return sent;
	}
	return connect_pumped(fd, preload_real.sendto(fd, buf, n, flags, sa, len));
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct sockaddr_in unspec;
	struct msghdr m, named;
	struct s5_addr dst;
	int r;

	preload_init_symbols();
	if (preload_real.sendmsg == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, &flags) != 0)
		return -1;
	if (preload_unmapped(msg) ||
	    (msg->msg_name != NULL && preload_unmapped(msg->msg_name) && msg->msg_namelen > 0)) {
		errno = EFAULT;
		return -1;
	}
	named = *msg;
	named.msg_name = (void *)connect_send_name(fd, msg->msg_name, &named.msg_namelen,
	    &unspec);
	msg = &named;
	r = connect_send_policy(fd, msg->msg_name, msg->msg_namelen, flags, &dst);
	if (r < 0)
		return -1;
	if (r == 3)
		return udp_answer(fd, msg, msg->msg_name, msg->msg_namelen);
	if (r == 2 || (msg->msg_name == NULL && udp_maybe(fd))) {
		ssize_t sent = udp_send(fd, msg, flags, r == 2 ? &dst : NULL,
		    msg->msg_name, msg->msg_namelen);

		if (sent != UDP_NOT_MINE)
			return sent;
	}
	if (r == 0) {
		m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return connect_pumped(fd, preload_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN));
	}
	return connect_pumped(fd, preload_real.sendmsg(fd, msg, flags));
}

/* sendmmsg() of a UDP socket the relay owns or will carry a message of. */
static bool
connect_sendmmsg_relayed(int fd, const struct mmsghdr *vec, unsigned int vlen)
{
	struct s5_addr a;
	unsigned int i;

	if (!preload_init())
		return false;
	if (udp_maybe(fd) && udp_owns(fd))
		return true;
	for (i = 0; i < vlen; i++) {
		const struct msghdr *h = &vec[i].msg_hdr;

		/* Read as the kernel reads it: sendmsg() does that. */
		if (!preload_unmapped(h->msg_name) && h->msg_namelen >= sizeof(sa_family_t) &&
		    ((const struct sockaddr *)h->msg_name)->sa_family == AF_UNSPEC)
			return true;
		if (connect_is_inet(h->msg_name, h->msg_namelen) &&
		    s5_addr_from_sockaddr(&a, h->msg_name, h->msg_namelen) == 0 &&
		    (!preload_is_excluded(&a) ||
		    (preload_cfg.remote_dns && a.port == POLICY_DNS_PORT)))
			return connect_socket_type(fd) == SOCK_DGRAM;
	}
	return false;
}

int
sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct s5_addr dst;
	unsigned int i;
	int type = -1, r = 0;

	preload_init_symbols();
	if (preload_real.sendmmsg == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (gate_send_hold(fd, &flags) != 0)
		return -1;
	if (preload_unmapped(vec) && vlen > 0) {
		errno = EFAULT;
		return -1;
	}
	/* A fast-open connect with the first message, tunnelled as sendmsg()
	 * does it; the kernel would otherwise connect straight to the target. */
	if (!preload_unmapped(vec) && vlen > 0 && (flags & MSG_FASTOPEN)) {
		ssize_t n;

		r = connect_send_policy(fd, vec[0].msg_hdr.msg_name,
		    vec[0].msg_hdr.msg_namelen, flags, &dst);
		if (r < 0)
			return -1;
		if (r == 0) {
			struct msghdr m = vec[0].msg_hdr;

			m.msg_name = NULL;
			m.msg_namelen = 0;
			if ((n = connect_pumped(fd, preload_real.sendmsg(fd, &m,
			    flags & ~MSG_FASTOPEN))) < 0)
				return -1;
			vec[0].msg_len = (unsigned int)n;
			return 1;
		}
	}
	/* Datagrams the UDP relay takes, or a socket it owns: one sendmsg()
	 * (the hook above) per message, stopping at the first refusal. */
	if (!preload_unmapped(vec) && vlen > 0 && connect_sendmmsg_relayed(fd, vec, vlen)) {
		for (i = 0; i < vlen; i++) {
			ssize_t n = sendmsg(fd, &vec[i].msg_hdr, flags);

			if (n < 0)
				return i > 0 ? (int)i : -1;
			vec[i].msg_len = (unsigned int)n;
		}
		return (int)vlen;
	}
	/* Only the datagram policy applies here: glibc's resolver batches its A
	 * and AAAA queries with sendmmsg(), and so may a program's own. */
	if (!preload_unmapped(vec) && preload_init() &&
	    (preload_cfg.remote_dns || preload_cfg.udp_block)) {
		for (i = 0; i < vlen; i++) {
			const struct msghdr *h = &vec[i].msg_hdr;

			if (!connect_is_inet(h->msg_name, h->msg_namelen))
				continue;
			if (type < 0)
				type = connect_socket_type(fd);
			if (!policy_is_dgram(type))
				break;
			r = policy_type(type, h->msg_name, h->msg_namelen);
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
