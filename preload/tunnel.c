/*
 * tunnel.c: the SOCKS5 handshake, hop by hop, over the program's own fd.
 *
 * The fd is never replaced (no socket()+dup2()): epoll registrations, FD_CLOEXEC
 * and socket options the program set stay intact (preload-anchors.md P1). The
 * shared client state machine says what to send and how much to read; this
 * file only moves bytes, with O_NONBLOCK set, poll() (never select(), P3) and
 * one monotonic deadline for reaching the proxy and the whole handshake.
 * Reading exactly s5_client_want() bytes at a time means no byte of the
 * target's stream is consumed (P5). MSG_NOSIGNAL keeps a proxy that resets
 * mid-handshake from killing the program with SIGPIPE (P6).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "preload.h"

static long long
tunnel_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes: the revents
 * (positive), or -errno. */
static int
tunnel_wait(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	long long left;
	int r;

	for (;;) {
		left = deadline - tunnel_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return pfd.revents;	/* errors show in the next send/recv */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* TCP-connect fd to the first hop. 0 or -errno. */
static int
tunnel_dial(int fd, const struct sockaddr *sa, socklen_t len, long long deadline)
{
	socklen_t elen = sizeof(int);
	int r, err = 0;

	if (preload_real.connect(fd, sa, len) == 0)
		return 0;
	/* A non-blocking connect() interrupted by a signal goes on in the
	 * background, just as one that said EINPROGRESS. */
	if (errno != EINPROGRESS && errno != EINTR)
		return -errno;
	r = tunnel_wait(fd, POLLOUT, deadline);
	if (r < 0)
		return r;
	/* Writable and nothing else: connected, no SO_ERROR to ask for. */
	if (!(r & (POLLERR | POLLHUP)))
		return 0;
	if (preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		return -errno;
	return err == 0 ? 0 : -err;
}

static int
tunnel_send_all(int fd, const uint8_t *p, size_t n, long long deadline)
{
	ssize_t w;
	int r;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = tunnel_wait(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Read up to want bytes (at least one). Returns the count, or -errno;
 * the proxy hanging up is -ECONNRESET. */
static ssize_t
tunnel_recv(int fd, uint8_t *p, size_t want, long long deadline)
{
	ssize_t n;
	int r;

	for (;;) {
		n = recv(fd, p, want, 0);
		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = tunnel_wait(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* One hop: ask the server at the other end of fd to connect to dst. */
static int
tunnel_hop(int fd, const struct s5_proxy *hop, const struct s5_addr *dst,
    long long deadline, int *rep)
{
	struct s5_client c;
	uint8_t in[S5_MSG_MAX];
	size_t n = 0, used = 0;
	ssize_t got;
	int r;

	s5_client_init(&c, S5_CMD_CONNECT, dst, hop->has_cred ? &hop->cred : NULL);
	for (;;) {
		r = s5_client_step(&c, in, n, &used);
		n = 0;
		if (r == S5C_DONE)
			return 0;
		if (r == S5C_WANT_WRITE) {
			r = tunnel_send_all(fd, c.out, c.out_len, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (r == S5C_WANT_READ) {
			got = tunnel_recv(fd, in, s5_client_want(&c) < sizeof(in) ?
			    s5_client_want(&c) : sizeof(in), deadline);
			if (got < 0)
				return (int)got;
			n = (size_t)got;
			continue;
		}
		if (r == S5C_E_REPLY)
			*rep = c.reply.rep;
		preload_log(LOG_LVL_DEBUG, "handshake failed: %s",
		    s5_client_strerror(r));
		return -s5_client_errno(&c, r);
	}
}

/* The address hop i + 1 is reached at, named to hop i. */
static const struct s5_addr *
tunnel_next_hop(size_t i)
{
	const struct preload_hop *next = &preload_cfg.hops[i + 1];

	if (next->proxy.addr.atyp != S5_ATYP_DOMAIN ||
	    preload_cfg.hops[i].proxy.remote_dns)
		return &next->proxy.addr;
	return next->has_v4 ? &next->v4 : &next->v6;
}

/*
 * The first hop as a sockaddr for a socket of family domain. A socket that
 * cannot reach it (IPv4 socket, IPv6-only proxy; IPv6-only socket, IPv4-only
 * proxy) means the proxy is unreachable for this connection: ECONNREFUSED,
 * as CONTRACT.md says, with the reason at info level.
 */
static int
tunnel_first_sockaddr(int fd, int domain, struct sockaddr_storage *ss, socklen_t *len)
{
	const struct preload_hop *h = &preload_cfg.hops[0];
	struct sockaddr_in6 *s6;
	socklen_t olen = sizeof(int);
	int v6only = 0, r;

	if (domain == AF_INET) {
		if (!h->has_v4) {
			preload_log(LOG_LVL_INFO, "proxy %s has no IPv4 address "
			    "for an IPv4 socket", preload_cfg.chain_text);
			return -ECONNREFUSED;
		}
		r = s5_addr_to_sockaddr(&h->v4, ss);
	} else if (h->has_v6) {
		r = s5_addr_to_sockaddr(&h->v6, ss);
	} else {
		/* An AF_INET6 socket reaches an IPv4 proxy at ::ffff:a.b.c.d,
		 * unless the program made it IPv6-only. */
		if (preload_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) == 0 &&
		    v6only) {
			preload_log(LOG_LVL_INFO, "proxy %s has no IPv6 address "
			    "for an IPv6-only socket", preload_cfg.chain_text);
			return -ECONNREFUSED;
		}
		memset(ss, 0, sizeof(*ss));
		s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(h->v4.port);
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], h->v4.u.ip4, 4);
		r = (int)sizeof(*s6);
	}
	if (r < 0)
		return -ECONNREFUSED;
	*len = (socklen_t)r;
	return 0;
}

static int
tunnel_run(int fd, int domain, const struct s5_addr *dst, long long deadline, int *rep)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	size_t i;
	int r;

	r = tunnel_first_sockaddr(fd, domain, &ss, &sslen);
	if (r < 0)
		return r;
	r = tunnel_dial(fd, (struct sockaddr *)&ss, sslen, deadline);
	/* The program's socket is connected already (or connecting): the
	 * kernel's answer to a second connect(), and the socket untouched. */
	if (r == -EISCONN || r == -EALREADY)
		return r;
	if (r < 0) {
		preload_log(LOG_LVL_DEBUG, "cannot reach proxy %s: %s",
		    preload_cfg.chain_text, strerror(-r));
		/* CONTRACT.md: an unreachable proxy is ECONNREFUSED. */
		return r == -ETIMEDOUT ? r : -ECONNREFUSED;
	}
	for (i = 0; i < preload_cfg.nhops; i++) {
		r = tunnel_hop(fd, &preload_cfg.hops[i].proxy,
		    i + 1 < preload_cfg.nhops ? tunnel_next_hop(i) : dst,
		    deadline, rep);
		if (r < 0) {
			/* A proxy hanging up or resetting mid-handshake refused
			 * us; only the deadline says ETIMEDOUT. */
			if (r != -ETIMEDOUT && *rep < 0 && (r == -ECONNRESET ||
			    r == -EPIPE || r == -ENOTCONN))
				r = -ECONNREFUSED;
			return r;
		}
	}
	return 0;
}

int
tunnel_connect(int fd, int domain, const struct s5_addr *dst, int *rep)
{
	struct sockaddr unspec;
	socklen_t len = sizeof(int);
	int flags, pending, r;

	*rep = -1;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return -errno;

	r = tunnel_run(fd, domain, dst, tunnel_now_ms() + preload_cfg.timeout_ms, rep);
	if (r < 0 && r != -EISCONN && r != -EALREADY) {
		/* Linux: connect() with AF_UNSPEC disconnects a TCP socket, so
		 * the fd is left as one whose connect failed, not half-talking
		 * to a proxy. */
		memset(&unspec, 0, sizeof(unspec));
		unspec.sa_family = AF_UNSPEC;
		(void)preload_real.connect(fd, &unspec, sizeof(unspec));
		/* Disconnecting leaves ECONNRESET pending in the socket. A
		 * blocking connect() reports the failure itself: cleared. A
		 * non-blocking one says EINPROGRESS, and the socket must then
		 * fail as one whose connect failed: poll() says POLLERR, and a
		 * send() gets an errno instead of SIGPIPE. SO_ERROR answers the
		 * real errno and clears this one (peer.c), or this one beyond
		 * PRELOAD_PEER_FDS, never 0. */
		len = sizeof(int);
		if (!(flags & O_NONBLOCK))
			(void)preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &len);
	}
	/* Restore the program's exact status flags (P2). */
	if (!(flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, flags);
	return r;
}
