/*
 * tunnel.c: the SOCKS5 handshake, hop by hop, over the program's own socket.
 *
 * One machine (struct tunnel) says what to do next on a socket already
 * TCP-connected to the first hop: tunnel_step() sends and reads as far as the
 * socket allows without waiting (MSG_DONTWAIT, so the open file's O_NONBLOCK
 * is never touched behind the program's back) and answers what it waits for:
 * TUNNEL_READ, TUNNEL_WRITE, TUNNEL_DONE, or a failure as -errno. Two drivers
 * run it: the engine (async.c) on readiness, for connects that must not block
 * the program, and tunnel_connect() below with poll() and a deadline, for the
 * rare connect the engine cannot take.
 *
 * The socket itself is never replaced here (async.c swaps in one of the
 * proxy's family when it must, before the dial): epoll registrations,
 * FD_CLOEXEC and socket options stay intact (preload-anchors.md P1). Reading
 * exactly s5_client_want() bytes at a time means no byte of the target's
 * stream is consumed (P5). MSG_NOSIGNAL keeps a proxy that resets
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

long long
tunnel_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tunnel_init(struct tunnel *t, const struct s5_addr *dst)
{
	memset(t, 0, sizeof(*t));
	t->dst = *dst;
	t->rep = -1;
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

/* A failed hop's errno. A proxy hanging up or resetting mid-handshake
 * refused us (CONTRACT.md); only the deadline says ETIMEDOUT. */
static int
tunnel_hop_errno(const struct tunnel *t, int err)
{
	if (t->rep < 0 && (err == ECONNRESET || err == EPIPE || err == ENOTCONN))
		return -ECONNREFUSED;
	return -err;
}

int
tunnel_step(struct tunnel *t, int fd)
{
	const struct s5_proxy *hop;
	size_t used = 0, want;
	ssize_t n;
	int r;

	for (;;) {
		if (t->hop == preload_cfg.nhops)
			return TUNNEL_DONE;
		if (!t->started) {
			hop = &preload_cfg.hops[t->hop].proxy;
			s5_client_init(&t->c, S5_CMD_CONNECT,
			    t->hop + 1 < preload_cfg.nhops ? tunnel_next_hop(t->hop) : &t->dst,
			    hop->has_cred ? &hop->cred : NULL);
			t->started = true;
			t->in_len = 0;
			t->out_off = 0;
			t->writing = false;
		}
		if (t->writing) {
			while (t->out_off < t->c.out_len) {
				n = PRELOAD_REAL(send)(fd, t->c.out + t->out_off, t->c.out_len - t->out_off,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
				if (n > 0) {
					t->out_off += (size_t)n;
					continue;
				}
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					return TUNNEL_WRITE;
				return tunnel_hop_errno(t, n < 0 ? errno : EPIPE);
			}
			t->writing = false;
			t->in_len = 0;
		} else if (t->want_read) {
			want = s5_client_want(&t->c);
			if (want > sizeof(t->in))
				want = sizeof(t->in);
			n = PRELOAD_REAL(recv)(fd, t->in, want, MSG_DONTWAIT);
			if (n == 0)
				return tunnel_hop_errno(t, ECONNRESET);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return TUNNEL_READ;
			if (n < 0)
				return tunnel_hop_errno(t, errno);
			t->in_len = (size_t)n;
			t->want_read = false;
		}
		r = s5_client_step(&t->c, t->in, t->in_len, &used);
		t->in_len = 0;
		if (r == S5C_WANT_WRITE) {
			t->writing = true;
			t->out_off = 0;
		} else if (r == S5C_WANT_READ) {
			t->want_read = true;
		} else if (r == S5C_DONE) {
			t->hop++;
			t->started = false;
		} else {
			if (r == S5C_E_REPLY)
				t->rep = t->c.reply.rep;
			preload_log(LOG_LVL_DEBUG, "handshake failed: %s",
			    s5_client_strerror(r));
			return -s5_client_errno(&t->c, r);
		}
	}
}

/*
 * The first hop as a sockaddr for a socket of family domain: 0, or -EAFNOSUPPORT
 * when a socket of that family cannot reach it (an IPv4 socket and an
 * IPv6-only proxy; an IPv6-only socket and an IPv4-only proxy), for the
 * caller to swap in a socket that can.
 */
int
tunnel_first_sockaddr(int fd, int domain, struct sockaddr_storage *ss, socklen_t *len)
{
	const struct preload_hop *h = &preload_cfg.hops[0];
	struct sockaddr_in6 *s6;
	socklen_t olen = sizeof(int);
	int v6only = 0, r;

	if (domain == AF_INET) {
		if (!h->has_v4)
			return -EAFNOSUPPORT;
		r = s5_addr_to_sockaddr(&h->v4, ss);
	} else if (h->has_v6) {
		r = s5_addr_to_sockaddr(&h->v6, ss);
	} else {
		/* An AF_INET6 socket reaches an IPv4 proxy at ::ffff:a.b.c.d,
		 * unless the program made it IPv6-only. */
		if (preload_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) == 0 &&
		    v6only)
			return -EAFNOSUPPORT;
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

/* The dial's outcome once the socket polled with revents: 0 or -errno. */
int
tunnel_dial_result(int fd, int revents)
{
	socklen_t elen = sizeof(int);
	int err = 0;

	/* Writable and nothing else: connected, no SO_ERROR to ask for. */
	if (!(revents & (POLLERR | POLLHUP)))
		return 0;
	if (preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		return -errno;
	return err == 0 ? 0 : -err;
}

/* An unreachable proxy is ECONNREFUSED (CONTRACT.md), a late one ETIMEDOUT. */
int
tunnel_dial_errno(int err)
{
	preload_log(LOG_LVL_DEBUG, "cannot reach proxy %s: %s",
	    preload_cfg.chain_text, strerror(err));
	return err == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
}

/*
 * Linux: connect() with AF_UNSPEC disconnects a TCP socket, so a failed
 * handshake leaves the socket as one whose connect failed, not half-talking
 * to a proxy. The kernel then holds ECONNRESET pending: poll() says
 * POLLOUT|POLLERR|POLLHUP and a send() gets an errno instead of SIGPIPE, as
 * after a failed connect. peer.c answers SO_ERROR with the real errno (and
 * clears this one).
 */
void
tunnel_dissolve(int fd)
{
	struct sockaddr unspec;

	memset(&unspec, 0, sizeof(unspec));
	unspec.sa_family = AF_UNSPEC;
	(void)preload_real.connect(fd, &unspec, sizeof(unspec));
}

/*
 * After tunnel_dissolve(), make the socket poll as one whose connect just
 * failed: POLLOUT|POLLERR|POLLHUP. A socket the proxy reset (or never
 * answered) is closed already and has no error left to report, since our
 * own recv() or SO_ERROR took it; a non-blocking connect to a loopback port
 * that refuses (bound, not listening: nothing else can take it meanwhile)
 * leaves ECONNREFUSED pending again. peer.c answers SO_ERROR with the real
 * errno and clears this one.
 */
void
tunnel_refail(int fd)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(ss);
	int ref, flags;

	if (PRELOAD_REAL(poll)(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		return;
	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return;
	memset(&ss, 0, sizeof(ss));
	if (len == sizeof(*s6)) {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
	} else {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	ref = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ref < 0)
		return;
	if (bind(ref, (struct sockaddr *)&ss, len) == 0 &&
	    PRELOAD_REAL(getsockname)(ref, (struct sockaddr *)&ss, &len) == 0 &&
	    (flags = PRELOAD_REAL(fcntl)(fd, F_GETFL)) >= 0) {
		if (!(flags & O_NONBLOCK))
			(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK);
		(void)preload_real.connect(fd, (struct sockaddr *)&ss, len);
		if (!(flags & O_NONBLOCK))
			(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);
	}
	(void)PRELOAD_REAL(close)(ref);
	/* Refused already (ECONNREFUSED stays pending), or still in SYN_SENT
	 * where loopback drops SYNs: disconnecting then leaves ECONNRESET
	 * pending. Either way POLLERR, and no local address kept. */
	tunnel_dissolve(fd);
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
		r = PRELOAD_REAL(poll)(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return pfd.revents;	/* errors show in the next send/recv */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* The whole handshake inside the call, with poll() and one deadline: for a
 * connect the engine cannot take (no descriptor left for its copy). */
static int
tunnel_run(int fd, int domain, struct tunnel *t, long long deadline)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int flags, r;

	r = tunnel_first_sockaddr(fd, domain, &ss, &sslen);
	if (r == -EAFNOSUPPORT) {
		preload_log(LOG_LVL_INFO, "proxy %s has no address for this "
		    "socket's family", preload_cfg.chain_text);
		return -ECONNREFUSED;
	}
	if (r < 0)
		return r;
	flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && PRELOAD_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return -errno;
	r = preload_real.connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : -errno;
	if (!(flags & O_NONBLOCK))
		(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);	/* P2 */
	/* The program's socket is connected already (or connecting): the
	 * kernel's answer to a second connect(), and the socket untouched. */
	if (r == -EISCONN || r == -EALREADY)
		return r;
	if (r == -EINPROGRESS || r == -EINTR) {
		r = tunnel_wait(fd, POLLOUT, deadline);
		if (r >= 0)
			r = tunnel_dial_result(fd, r);
	}
	if (r < 0)
		return tunnel_dial_errno(-r);
	while ((r = tunnel_step(t, fd)) > 0) {
		r = tunnel_wait(fd, r == TUNNEL_READ ? POLLIN : POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return r;
}

int
tunnel_connect(int fd, int domain, const struct s5_addr *dst, int *rep)
{
	struct tunnel t;
	socklen_t len = sizeof(int);
	int pending, flags, r;

	tunnel_init(&t, dst);
	r = tunnel_run(fd, domain, &t, tunnel_now_ms() + preload_cfg.timeout_ms);
	*rep = t.rep;
	if (r < 0 && r != -EISCONN && r != -EALREADY) {
		tunnel_dissolve(fd);
		/* A blocking connect() reports the failure itself: the
		 * kernel's pending ECONNRESET is cleared. */
		flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
		if (flags >= 0 && !(flags & O_NONBLOCK))
			(void)preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &len);
		else
			tunnel_refail(fd);
	}
	return r;
}
