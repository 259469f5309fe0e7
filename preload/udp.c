/*
 * udp.c: UDP through the first hop's UDP ASSOCIATE (RFC 1928 §6, §7), the
 * client side, under SOCKSIFY_UDP=proxy (the default).
 *
 * A UDP socket of the program becomes an ASSOCIATED socket the first time
 * it sends a datagram the policy relays (policy_udp(): not excluded, not a
 * DNS query under remote resolution) or connect()s to such a destination:
 *
 *   set-up     a TCP connection of ours (the control connection,
 *              async_fd_raise(): above PRELOAD_ASYNC_COPY_FD_MIN; bound to
 *              the socket's own address when it is bound to one of its
 *              family, since the relay takes datagrams from the control
 *              connection's address alone) to the first hop, the handshake of tunnel.c with UDP ASSOCIATE for
 *              0.0.0.0:0 (the server takes the source of our first
 *              datagram), bounded by SOCKSIFY_TIMEOUT. The reply's BND is
 *              the relay (its wildcard address means the proxy's). For a
 *              blocking socket it runs inside the call. A non-blocking one
 *              (O_NONBLOCK, or MSG_DONTWAIT) never waits: a thread of its
 *              own runs it (udp_setup_main(), all signals blocked, on a copy
 *              of the socket), the socket is bound at once as the kernel
 *              binds it at a first send (getsockname() names its port),
 *              the send returns at once, and what is sent
 *              meanwhile waits in a queue (UDP_QUEUE_BYTES; beyond, the
 *              send says ENOBUFS, as for a full device queue) that the
 *              thread sends in order before the association is the
 *              socket's, even once the socket is closed. A set-up that failed is
 *              told to the next send or receive, once (as the kernel tells
 *              an ICMP error), and a receive waiting then is woken for it
 *              (an empty datagram from our injector, below). Refusals that
 *              need no handshake (a chain, an invalid proxy) say so at once.
 *   send       sendto/sendmsg/sendmmsg with a destination, and
 *              send/write/writev/sendmsg without one on a socket connect()ed
 *              through us: the §7 header naming the destination (a
 *              placeholder's name under socks5h) is put in front, in its
 *              own iovec, and the datagram goes to the relay from the
 *              program's own socket. The call returns the program's length.
 *   receive    recv/recvfrom/recvmsg/recvmmsg/read/readv: a datagram from
 *              the relay is unwrapped and reported from the source its
 *              header names, in the socket's family (v4-mapped on an IPv6
 *              socket); one that is malformed or fragmented (FRAG != 0) is
 *              dropped, as §7 asks, and the call goes on to the next. A
 *              datagram from anyone else (an excluded peer, sent to
 *              directly) is the program's, as it came.
 *   connect    connect() of an associated-to-be socket records the
 *              destination (the virtual peer) and connects the kernel's
 *              socket to the relay: only the relay's datagrams arrive, and
 *              of those only the peer's are delivered, as the kernel
 *              delivers only the peer's. getpeername() answers the peer.
 *              connect(AF_UNSPEC) or a connect() elsewhere ends that;
 *              AF_UNSPEC also ends the association when the kernel
 *              unbinds the port it chose (the relay knows that port
 *              alone): the next send sets a new one up.
 *   the end    close(), close_range(), dup2()/dup3() over the descriptor:
 *              the control connection is closed with the last name of the
 *              socket (dup() and F_DUPFD follow it), and with it the
 *              server's relay. A control connection the server closed is
 *              noticed by the next send (looked at once per
 *              UDP_CHECK_MS): a socket connect()ed through us fails it
 *              with ECONNREFUSED and one log line (the kernel's ICMP
 *              error), and the send after that sets up a new
 *              association; an unconnected one (no such error from the
 *              kernel) sets the new one up for that datagram.
 *
 * Source addresses: the relay names the real sender, an address. A reply
 * to a datagram sent to a name (a placeholder) is reported from that
 * placeholder when the sender is no address the socket sent to itself and
 * the socket sent to a name on that port (the last UDP_NAMES names are
 * kept per association). A socket connect()ed to a name takes replies from
 * the port it named and, after the first, from that first sender only, as
 * the kernel delivers a connected socket its peer's datagrams alone.
 *
 * DNS under remote resolution (policy_udp(): POLICY_ANSWER, any address,
 * port 53, whatever SOCKSIFY_UDP says): a query sent with sendto() and
 * kin, or to a socket connect()ed to such a server, is answered here
 * (dnsanswer.c) and never sent. The answer reaches the program's socket
 * from an injector, a UDP socket of ours on 127.0.0.1 (or ::1; one per
 * family and process, async_fd_raise()d above PRELOAD_ASYNC_COPY_FD_MIN),
 * sent to the socket's own address (it is bound first when it is not, as
 * the kernel would bind it at its first send); the receive calls report it
 * from the server its query was sent to (by query ID, UDP_DNS_ASKED kept),
 * so resolvers that check the source (dig, c-ares) take it. A socket
 * connect()ed to a DNS server is connected to the injector: only answers
 * arrive, and getpeername() names the server. An answer that finds the
 * socket's queue full is dropped, as the network would drop it.
 *
 * Refusals, each with one log line: a chain of more than one hop (UDP is
 * relayed by the first hop only, and that would go around the rest of the
 * chain: EPERM), a proxy that refuses UDP ASSOCIATE (reply 07: the
 * contract's errno for the reply, ECONNREFUSED), a relay of the other
 * family than the socket, or an IPv4 one for an IPV6_V6ONLY socket
 * (EAFNOSUPPORT).
 *
 * Datagrams the header cannot frame are refused with EOPNOTSUPP (one log
 * line): MSG_MORE, a UDP_SEGMENT control message, a socket with
 * UDP_SEGMENT, UDP_CORK or UDP_GRO on when it is associated (GSO would put
 * the header on the first segment only, corking would join headers), and
 * sendfile() to an associated socket (gate.c; it would send no header).
 *
 * Sockets are found by descriptor in a table guarded by one mutex; each
 * entry records the socket's SO_COOKIE (read before the lock) and is
 * proven on use, so a number the program reused behind our back is told
 * apart; the control connection's cookie is proven before it is read or
 * closed. A bitmap of the descriptors with an entry is the hooks' fast path:
 * any other read() or write() takes no lock and makes no system call of
 * ours, so a signal handler's write() to a pipe never waits for the lock;
 * a hook re-entered on a socket of ours while its thread holds the lock
 * fails with EAGAIN. The table belongs to one process: a vfork() child,
 * which shares its memory, leaves it alone when it closes descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "fdmark.h"
#include "preload.h"

#define UDP_BUCKETS		256
#define UDP_NAMES		8		/* names sent to, remembered per association */
#define UDP_CHECK_MS		250		/* a control connection is looked at this often */
#define UDP_STACK_BYTES		8192		/* receive bounce buffer on the stack; beyond, malloc() */
#define UDP_PAYLOAD_MAX		65535		/* bytes of a datagram */
#define UDP_STACK_IOVS		16		/* iovecs of a send on the stack; beyond, malloc() */
#define UDP_DNS_ASKED		16		/* DNS queries remembered per socket, by ID */
#define UDP_QUEUE_BYTES		(256u << 10)	/* datagrams waiting for an association; beyond, dropped */
#define UDP_SETUP_STACK		(128u << 10)	/* a set-up thread's stack */
#define UDP_EXIT_WAIT_MS	1000		/* exit() waits this long for queued datagrams */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT		103		/* linux/udp.h, Linux 4.18 */
#endif
#ifndef UDP_GRO
#define UDP_GRO			104		/* linux/udp.h, Linux 5.0 */
#endif

/* One association: the server's relay and our control connection to it. */
struct udp_assoc {
	int refs;			/* descriptors naming the socket */
	int ctl;			/* the control connection, ours */
	uint64_t ctl_cookie;		/* proven before it is used or closed */
	struct sockaddr_storage relay;	/* in the socket's family */
	socklen_t relay_len;
	long long checked_ms;
	/* Set up in a thread of its own (a non-blocking socket): datagrams
	 * sent meanwhile wait here, in order; a set-up that failed leaves
	 * its errno for the next send. */
	bool pending;
	int err;
	struct udp_queued *queue, **queue_tail;
	size_t queued;			/* bytes */
	bool flushing;			/* counted in udp_flushes */
	int shut;			/* shutdown() while pending: SHUT_* + 1 */
	bool port_gone;			/* connect(AF_UNSPEC) while pending unbound
					 * the port the relay knows: no handover */
	/* The kernel's socket is connected to the relay or the injector. */
	bool kconn;
	/* connect()ed through us: the program's destination. */
	bool has_peer;
	bool peer_dns;			/* a DNS server we answer for (port 53, socks5h) */
	struct s5_addr peer;		/* as the proxy gets it (a name for a placeholder) */
	bool peer_locked;		/* a name's peer: the first reply's sender */
	struct s5_addr peer_from;
	struct sockaddr_storage peer_sa;	/* as the program gave it */
	socklen_t peer_len;
	/* Destinations sent to, for the sources of replies (see top). */
	struct {
		struct s5_addr dst;
		struct sockaddr_storage sa;	/* the placeholder, for a name */
		socklen_t len;
	} sent[UDP_NAMES];
	unsigned nsent;
	/* DNS queries answered here (udp_answer()): where each was sent,
	 * by query ID, for the source of its answer. */
	bool dns;
	struct {
		uint16_t id;
		struct sockaddr_storage sa;
		socklen_t len;
	} asked[UDP_DNS_ASKED];
	unsigned nasked;
};

/* A datagram waiting for its association. */
struct udp_queued {
	struct udp_queued *next;
	struct s5_addr dst;
	size_t len;
	uint8_t data[];
};

struct udp_sock {
	struct udp_sock *next;
	int fd;
	int family;			/* the socket's, AF_INET or AF_INET6 */
	uint64_t cookie;
	struct udp_assoc *a;
};

int udp_active;
static struct udp_sock *udp_table[UDP_BUCKETS];
static pthread_mutex_t udp_mu = PTHREAD_MUTEX_INITIALIZER;
/* Descriptors that may have an entry, for the hooks' fast path without a
 * lock: any other read() or write() of the program never waits for udp_mu
 * (a signal handler's write() to a pipe, say). */
static uint64_t udp_marked[FDMARK_WORDS];
/* The process the table is of: a vfork() child, which shares its memory,
 * must not free the parent's entries when it closes descriptors. */
static pid_t udp_pid;
/* This thread holds udp_mu: a hook re-entered from a signal handler fails
 * (EAGAIN) on a socket of ours rather than wait for itself. */
static __thread bool udp_held;
/* Set-up threads with datagrams queued, not all sent yet (udp_at_exit()). */
static int udp_flushes;
static pthread_cond_t udp_flushed = PTHREAD_COND_INITIALIZER;

bool
udp_maybe(int fd)
{
	return fdmark_test(udp_marked, &udp_active, fd);
}

static void
udp_mark(int fd, bool on)
{
	fdmark_set(udp_marked, fd, on);
}

static bool
udp_lock(void)
{
	return fdmark_lock(&udp_mu, &udp_held);
}

static void
udp_unlock(void)
{
	fdmark_unlock(&udp_mu, &udp_held);
}

static struct udp_sock **
udp_slot(int fd)
{
	struct udp_sock **p = &udp_table[(unsigned)fd % UDP_BUCKETS];

	while (*p != NULL && (*p)->fd != fd)
		p = &(*p)->next;
	return p;
}

/* Closes a's control connection, when it still is ours. Under udp_mu. */
static void
udp_ctl_close(struct udp_assoc *a)
{
	if (a->ctl >= 0 && peer_cookie(a->ctl) == a->ctl_cookie)
		(void)PRELOAD_REAL(close)(a->ctl);
	a->ctl = -1;
}

/* Under udp_mu. */
static void
udp_queue_free(struct udp_queued *q)
{
	struct udp_queued *next;

	for (; q != NULL; q = next) {
		next = q->next;
		free(q);
	}
}

static void
udp_assoc_put(struct udp_assoc *a)
{
	if (--a->refs > 0)
		return;
	udp_ctl_close(a);
	udp_queue_free(a->queue);
	free(a);
}

/* Under udp_mu. */
static void
udp_unlink(struct udp_sock **p)
{
	struct udp_sock *s = *p;

	*p = s->next;
	if (*udp_slot(s->fd) == NULL)
		udp_mark(s->fd, false);
	udp_assoc_put(s->a);
	free(s);
	__atomic_sub_fetch(&udp_active, 1, __ATOMIC_RELEASE);
}

/* The entry of fd, whose SO_COOKIE the caller read before the lock: a
 * stale one (the number reused behind our back) goes. Under udp_mu. */
static struct udp_sock *
udp_find(int fd, uint64_t cookie)
{
	struct udp_sock **p = udp_slot(fd);

	if (*p == NULL)
		return NULL;
	if (cookie != (*p)->cookie || cookie == 0) {
		udp_unlink(p);
		return NULL;
	}
	return *p;
}

/* A copy of what a send or receive needs, taken under the lock. */
struct udp_view {
	int family;
	bool relayed;			/* it has (or had) an association: its relay is known */
	bool alive;			/* and the association is up */
	bool dns;			/* we answered a DNS query of it */
	bool peer_dns;			/* its peer is a DNS server we answer for */
	bool connected;			/* the kernel socket is connected (to the relay or the injector) */
	struct sockaddr_storage relay;
	socklen_t relay_len;
	bool has_peer;
	struct s5_addr peer;
	struct sockaddr_storage peer_sa;
	socklen_t peer_len;
};

/* fd's view: 1, 0 when fd is none of ours, -1 (EAGAIN) when this thread
 * holds the lock (a signal handler) and cannot tell. */
static int
udp_view(int fd, struct udp_view *v)
{
	uint64_t cookie;
	struct udp_sock *s;
	int found = 0;

	if (!udp_maybe(fd))
		return 0;
	cookie = peer_cookie(fd);
	if (!udp_lock()) {
		errno = EAGAIN;
		return -1;
	}
	if ((s = udp_find(fd, cookie)) != NULL) {
		v->family = s->family;
		v->relayed = s->a->relay_len > 0;
		v->alive = s->a->ctl >= 0;
		v->connected = s->a->kconn;
		v->relay = s->a->relay;
		v->relay_len = s->a->relay_len;
		v->has_peer = s->a->has_peer;
		v->peer_dns = s->a->peer_dns;
		v->peer = s->a->peer;
		v->peer_sa = s->a->peer_sa;
		v->peer_len = s->a->peer_len;
		v->dns = s->a->dns;
		found = 1;
	}
	udp_unlock();
	return found;
}

bool
udp_owns(int fd)
{
	struct udp_view v;

	return udp_view(fd, &v) != 0;
}

bool
udp_has_our_peer(int fd)
{
	struct udp_view v;

	return udp_view(fd, &v) > 0 && v.has_peer;
}

void
udp_forget(int fd)
{
	struct udp_sock **p;

	if (!udp_maybe(fd) || getpid() != udp_pid || !udp_lock())
		return;
	p = udp_slot(fd);
	if (*p != NULL)
		udp_unlink(p);
	udp_unlock();
}

/*
 * shutdown() of a socket whose association is being set up: a datagram the
 * program sent before it waits in the queue, and the kernel's shutdown now
 * would fail its send (EPIPE: `echo hi | ncat -u` sends, then shuts down
 * and closes). Held (the set-up thread applies it after the queue) and
 * answered as the kernel answers for a connected UDP socket (0) or an
 * unconnected one (ENOTCONN, the shutdown made all the same): 0, -errno,
 * or 1 when the kernel's shutdown() is the one to call.
 */
int
udp_shutdown(int fd, int how)
{
	uint64_t cookie;
	struct udp_sock *s;
	int r = 1;

	if (!udp_maybe(fd) || getpid() != udp_pid ||
	    (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR))
		return 1;
	cookie = peer_cookie(fd);
	if (!udp_lock())
		return 1;
	if ((s = udp_find(fd, cookie)) != NULL && s->a->pending) {
		s->a->shut |= how + 1;	/* SHUT_RD 1, SHUT_WR 2, both 3 */
		r = s->a->has_peer ? 0 : -ENOTCONN;
	}
	udp_unlock();
	return r;
}

void
udp_dup(int fd, int fd2)
{
	struct udp_sock *s, *d, **p;
	uint64_t cookie;

	if (!udp_maybe(fd) || fd2 < 0 || fd == fd2 || getpid() != udp_pid)
		return;
	cookie = peer_cookie(fd);
	if (!udp_lock())
		return;
	if ((s = udp_find(fd, cookie)) != NULL && (d = malloc(sizeof(*d))) != NULL) {
		p = udp_slot(fd2);
		if (*p != NULL)
			udp_unlink(p);
		*d = *s;
		d->fd = fd2;
		d->a->refs++;
		p = &udp_table[(unsigned)fd2 % UDP_BUCKETS];
		d->next = *p;
		*p = d;
		udp_mark(fd2, true);
		__atomic_add_fetch(&udp_active, 1, __ATOMIC_RELEASE);
	}
	udp_unlock();
}

static void
udp_fork_prepare(void)
{
	pthread_mutex_lock(&udp_mu);
}

static void
udp_fork_parent(void)
{
	pthread_mutex_unlock(&udp_mu);
}

/* A child of fork() has the table (and its descriptors) as its own. */
static void
udp_fork_child(void)
{
	struct udp_sock *s;
	unsigned i;

	udp_held = false;
	udp_pid = getpid();
	/* A set-up thread does not survive fork(): its reference and its
	 * queue go, and the child's next send sets up its own. */
	for (i = 0; i < UDP_BUCKETS; i++)
		for (s = udp_table[i]; s != NULL; s = s->next)
			if (s->a->pending) {
				s->a->pending = false;
				s->a->flushing = false;
				s->a->shut = 0;
				s->a->refs--;
				udp_queue_free(s->a->queue);
				s->a->queue = NULL;
				s->a->queued = 0;
			}
	/* Nor does any count of the parent's threads: the child's exit()
	 * would wait for them (udp_at_exit()). */
	udp_flushes = 0;
	pthread_mutex_unlock(&udp_mu);
}

void
udp_at_load(void)
{
	udp_pid = getpid();
	(void)pthread_atfork(udp_fork_prepare, udp_fork_parent, udp_fork_child);
}

/* a as a sockaddr of family (IPv4 as ::ffff:a.b.c.d for AF_INET6): its
 * length, or 0 when it has no form there. */
static socklen_t
udp_sockaddr(const struct s5_addr *a, int family, struct sockaddr_storage *ss)
{
	int r = s5_addr_to_family_sockaddr(a, family, ss);

	return r < 0 ? 0 : (socklen_t)r;
}

static bool
udp_same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr *b, socklen_t blen)
{
	struct s5_addr x, y;

	if (s5_addr_from_sockaddr(&x, (const struct sockaddr *)a, alen) != 0 ||
	    s5_addr_from_sockaddr(&y, b, blen) != 0 || x.atyp != y.atyp || x.port != y.port)
		return false;
	return x.atyp == S5_ATYP_IPV4 ? memcmp(x.u.ip4, y.u.ip4, 4) == 0 :
	    memcmp(x.u.ip6, y.u.ip6, 16) == 0;
}

/* UDP ASSOCIATE is SOCKS5's alone, and a chain cannot carry it. */
static bool
udp_chain_ok(void)
{
	return preload_cfg.nhops == 1 && preload_cfg.hops[0][0].proxy.proto == S5_PROTO_SOCKS5;
}

/*
 * The association: the control connection to the first hop and the relay
 * it names, for fd, a socket of family. 0, or -errno (logged).
 */
/*
 * The control connection leaves from the address the UDP socket is bound
 * to, when it is bound to one (10.9.0.2, not the wildcard) of the
 * connection's family: the relay takes datagrams from the control
 * connection's address alone (RFC 1928 §7), and the socket sends from
 * its own. An IPv6 socket bound v4-mapped gives its IPv4 address. Best
 * effort: a bind that fails leaves the kernel's choice.
 */
static void
udp_bind_like(int ctl, int family, int fd)
{
	struct sockaddr_storage me;
	struct sockaddr_in *in = (struct sockaddr_in *)&me;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&me;
	socklen_t len = sizeof(me);
	struct in_addr v4;

	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&me, &len) != 0)
		return;
	if (me.ss_family == AF_INET6 && family == AF_INET &&
	    IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		memcpy(&v4, &in6->sin6_addr.s6_addr[12], 4);
		memset(&me, 0, sizeof(me));
		in->sin_family = AF_INET;
		in->sin_addr = v4;
		len = sizeof(*in);
	} else if (me.ss_family != family) {
		return;
	}
	if (family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_ANY))
		return;
	if (family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
		return;
	if (family == AF_INET)
		in->sin_port = 0;
	else
		in6->sin6_port = 0;
	(void)bind(ctl, (struct sockaddr *)&me, len);
}

static int
udp_associate(int fd, int family, struct udp_assoc *a)
{
	struct s5_addr any, relay;
	struct tunnel t;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ctl, tcp, r;
	uint8_t zero[4] = { 0 };
	char text[S5_ADDR_TEXT_MAX];
	bool v6only;

	/* Errors of the setup (-q says them), a line at most every 10 s. */
	if (preload_cfg.nhops != 1) {
		preload_log_limited(LOG_LVL_ERROR, preload_log_key("UDP", "chain"),
		    "UDP datagram blocked: a chain of %zu hops (%s) relays no UDP; "
		    "only a single SOCKS5 hop does", preload_cfg.nhops,
		    preload_cfg.chain_text);
		return -EPERM;
	}
	if (!udp_chain_ok()) {
		preload_log_limited(LOG_LVL_ERROR, preload_log_key("UDP", "scheme"),
		    "UDP datagram blocked: a proxy that is no SOCKS5 one (%s) relays "
		    "no UDP; only a single SOCKS5 hop does", preload_cfg.chain_text);
		return -EPERM;
	}
	if (preload_cfg.proxy_invalid)
		return -ECONNREFUSED;
	s5_addr_set_ip4(&any, zero, 0);
	tunnel_init(&t, &any);
	t.cmd = S5_CMD_UDP_ASSOCIATE;
	if ((r = tunnel_all_down(&t)) < 0) {
		trace_failure("UDP ASSOCIATE", -r, &t);
		return -ECONNREFUSED;
	}
	r = tunnel_family(&t);
	if ((tcp = socket(r, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	ctl = async_fd_raise(tcp);
	udp_bind_like(ctl, r, fd);
	r = tunnel_request(ctl, r, &t);
	relay = t.c.reply.bnd;
	if (r < 0) {
		trace_failure("UDP ASSOCIATE", -r, &t);
		(void)PRELOAD_REAL(close)(ctl);
		return r;
	}
	/* A wildcard or a name: the relay is on the proxy's own address. */
	if (relay.atyp == S5_ATYP_DOMAIN ||
	    (relay.atyp == S5_ATYP_IPV4 && memcmp(relay.u.ip4, zero, 4) == 0) ||
	    (relay.atyp == S5_ATYP_IPV6 && IN6_IS_ADDR_UNSPECIFIED((struct in6_addr *)(void *)relay.u.ip6))) {
		uint16_t port = relay.port;

		if (preload_real.getpeername(ctl, (struct sockaddr *)&ss, &len) != 0 ||
		    s5_addr_from_sockaddr(&relay, (struct sockaddr *)&ss, len) != 0) {
			(void)PRELOAD_REAL(close)(ctl);
			return -ECONNREFUSED;
		}
		relay.port = port;
	}
	a->relay_len = udp_sockaddr(&relay, family, &a->relay);
	/* An IPv6 socket reaches an IPv4 relay v4-mapped, unless IPv6-only
	 * (its sends would fail with ENETUNREACH, or a non-blocking one's
	 * queue go out to nowhere). */
	v6only = family == AF_INET6 && relay.atyp == S5_ATYP_IPV4 && preload_v6only(fd);
	if (a->relay_len == 0 || v6only) {
		/* The kernel makes a socket bound to an IPv6 address IPv6-only
		 * itself: say that, not the flag the program never set. */
		bool bound = v6only && preload_v6_bound(fd);

		if (s5_addr_format(&relay, text, sizeof(text)) < 0)
			strcpy(text, "?");
		preload_log_limited(LOG_LVL_ERROR, preload_log_key("UDP", family == AF_INET ?
		    "relay family 4" : "relay family 6"), "UDP relay %s of proxy %s cannot "
		    "be reached from %s", text, preload_cfg.chain_text,
		    family == AF_INET ? "an IPv4 socket" :
		    bound ? "an IPv6 socket bound to an IPv6 address" :
		    v6only ? "an IPv6-only (IPV6_V6ONLY) socket" : "an IPv6 socket");
		(void)PRELOAD_REAL(close)(ctl);
		return -EAFNOSUPPORT;
	}
	a->ctl = ctl;
	a->ctl_cookie = peer_cookie(ctl);
	a->checked_ms = tunnel_now_ms();
	if (preload_cfg.log_level >= LOG_LVL_TRACE &&
	    s5_sockaddr_format((struct sockaddr *)&a->relay, text, sizeof(text)) >= 0)
		preload_log(LOG_LVL_TRACE, "UDP ASSOCIATE via %s: relay %s",
		    preload_cfg.chain_text, text);
	return 0;
}

static int
udp_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	return ss.ss_family;
}

/* The kernel's socket is (not) connected to our relay or injector. */
static void
udp_set_kconn(int fd, bool on)
{
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);

	if (!udp_lock())
		return;
	if ((s = udp_find(fd, cookie)) != NULL)
		s->a->kconn = on;
	udp_unlock();
}

/* The entry of fd (cookie read before the lock), made with no association
 * yet when it has none: under udp_mu; NULL when out of memory. */
static struct udp_sock *
udp_entry(int fd, uint64_t cookie, int family)
{
	struct udp_sock *s, **p;

	if ((s = udp_find(fd, cookie)) != NULL)
		return s;
	if (cookie == 0 || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->a = calloc(1, sizeof(*s->a))) == NULL) {
		free(s);
		return NULL;
	}
	s->a->refs = 1;
	s->a->ctl = -1;
	s->fd = fd;
	s->family = family;
	s->cookie = cookie;
	p = &udp_table[(unsigned)fd % UDP_BUCKETS];
	s->next = *p;
	*p = s;
	udp_mark(fd, true);
	if (__atomic_add_fetch(&udp_active, 1, __ATOMIC_ACQ_REL) == 1)
		udp_pid = getpid();
	return s;
}

/*
 * UDP options whose datagrams the relay's header cannot frame: GSO splits
 * one send into segments of which only the first would carry the header,
 * and a corked socket joins several sends (and headers) into one datagram.
 * -EOPNOTSUPP (logged) when fd has one on.
 */
static int
udp_framed(int fd)
{
	static const int opts[] = { UDP_SEGMENT, UDP_CORK, UDP_GRO };
	static const char *const names[] = { "UDP_SEGMENT", "UDP_CORK", "UDP_GRO" };
	socklen_t len;
	size_t i;
	int on;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		on = 0;
		len = sizeof(on);
		if (PRELOAD_REAL(getsockopt)(fd, IPPROTO_UDP, opts[i], &on, &len) == 0 && on) {
			preload_log(LOG_LVL_ERROR, "UDP through the proxy: %s is not "
			    "supported on a relayed socket", names[i]);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/*
 * The same options turned on once the socket is relayed: refused too. A
 * program that turned UDP_GRO on would otherwise read several of the
 * relay's datagrams as one (socksifyd sends runs as one GSO send), the
 * headers of all but the first inside its data.
 */
int
setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	int on = 0;

	if (level == IPPROTO_UDP && (name == UDP_SEGMENT || name == UDP_CORK ||
	    name == UDP_GRO) && val != NULL && len >= (socklen_t)sizeof(on)) {
		memcpy(&on, val, sizeof(on));
		if (on != 0 && udp_maybe(fd) && udp_owns(fd)) {
			preload_log(LOG_LVL_ERROR, "UDP through the proxy: %s is not "
			    "supported on a relayed socket", name == UDP_GRO ? "UDP_GRO" :
			    name == UDP_CORK ? "UDP_CORK" : "UDP_SEGMENT");
			errno = EOPNOTSUPP;
			return -1;
		}
	}
	return PRELOAD_REAL(setsockopt)(fd, level, name, val, len);
}

/* Wraps data in the §7 header for dst and sends it from fd to the relay
 * (to the kernel's peer when kconn). The payload's length, or -1. */
static ssize_t
udp_wrap_send(int fd, const struct msghdr *msg, int flags, const struct s5_addr *dst,
    const struct sockaddr_storage *relay, socklen_t relay_len, bool kconn)
{
	uint8_t hdr[S5_UDP_HEADER_MAX];
	struct iovec stack[UDP_STACK_IOVS], *iov = stack;
	struct s5_udp_header h;
	struct msghdr m;
	size_t i;
	ssize_t n;
	int r;

	if (msg->msg_iovlen >= UIO_MAXIOV) {
		errno = EMSGSIZE;
		return -1;
	}
	memset(&h, 0, sizeof(h));
	h.addr = *dst;
	if ((r = s5_encode_udp_header(hdr, sizeof(hdr), &h)) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (msg->msg_iovlen >= UDP_STACK_IOVS &&
	    (iov = malloc((msg->msg_iovlen + 1) * sizeof(*iov))) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	iov[0].iov_base = hdr;
	iov[0].iov_len = (size_t)r;
	for (i = 0; i < msg->msg_iovlen; i++)
		iov[i + 1] = msg->msg_iov[i];
	m = *msg;
	m.msg_iov = iov;
	m.msg_iovlen = msg->msg_iovlen + 1;
	/* A socket connected to the relay takes no address (EISCONN). */
	m.msg_name = kconn ? NULL : (void *)relay;
	m.msg_namelen = kconn ? 0 : relay_len;
	n = preload_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	if (iov != stack) {
		int saved = errno;

		free(iov);
		errno = saved;
	}
	if (n < 0)
		return -1;
	return n >= r ? n - r : 0;
}

static int udp_dns_route(int fd, int *inj, struct sockaddr_storage *to, socklen_t *tolen);

/* An empty datagram from an injector to fd (under udp_mu): a receive
 * waiting on the socket wakes, and is told a->err (udp_take_err()). */
static void
udp_wake(int fd)
{
	struct sockaddr_storage to;
	socklen_t tolen;
	int inj;

	if (udp_dns_route(fd, &inj, &to, &tolen) == 0)
		(void)preload_real.sendto(inj, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL,
		    (struct sockaddr *)&to, tolen);
}

/* The errno a set-up in the background left for fd, said once; 0. */
static int
udp_take_err(int fd)
{
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);
	int err = 0;

	if (!udp_lock())
		return 0;
	if ((s = udp_find(fd, cookie)) != NULL) {
		err = s->a->err;
		s->a->err = 0;
	}
	udp_unlock();
	return err;
}

/*
 * fd's address in *to, fd bound first to its family's wildcard and a port
 * of the kernel's when it has none: as the kernel binds a socket at its
 * first send or connect(), so getsockname() names the port at once even
 * while what the program sent waits for its association. 0 or -errno.
 */
static int
udp_autobind(int fd, struct sockaddr_storage *to, socklen_t *tolen)
{
	struct sockaddr_storage any;
	in_port_t port;

	*tolen = sizeof(*to);
	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)to, tolen) != 0)
		return -errno;
	if (to->ss_family == AF_INET)
		port = ((struct sockaddr_in *)(void *)to)->sin_port;
	else if (to->ss_family == AF_INET6)
		port = ((struct sockaddr_in6 *)(void *)to)->sin6_port;
	else
		return 0;
	if (port != 0)
		return 0;
	memset(&any, 0, sizeof(any));
	any.ss_family = to->ss_family;
	if (bind(fd, (struct sockaddr *)&any, to->ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) != 0)
		return -errno;
	*tolen = sizeof(*to);
	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)to, tolen) != 0)
		return -errno;
	return 0;
}

/* What a set-up thread works with. */
struct udp_setup {
	int copy;			/* the program's socket, our descriptor for it */
	int family;
	struct udp_assoc *a;		/* a reference of ours */
};

/*
 * A non-blocking socket's association, made without the program waiting:
 * the handshake, then the datagrams that waited for it, in order, and only
 * then the association is the socket's (so none overtakes them).
 */
static void *
udp_setup_main(void *arg)
{
	struct udp_setup *st = arg;
	struct udp_assoc made = { .ctl = -1 }, *a = st->a;
	struct udp_queued *q, *next;
	struct sockaddr_storage me;
	socklen_t melen;
	struct msghdr m;
	struct iovec v;
	bool alive = true, kconn = false;
	int r;

	r = udp_associate(st->copy, st->family, &made);
	for (;;) {
		pthread_mutex_lock(&udp_mu);
		if (a->port_gone && r == 0 && a->refs > 1) {
			/* connect(AF_UNSPEC) meanwhile unbound the port this
			 * relay knows: what waits (sent after it, or not yet
			 * out) goes through a new one. */
			a->port_gone = false;
			pthread_mutex_unlock(&udp_mu);
			if (made.ctl >= 0)
				(void)PRELOAD_REAL(close)(made.ctl);
			made = (struct udp_assoc){ .ctl = -1 };
			(void)udp_autobind(st->copy, &me, &melen);
			r = udp_associate(st->copy, st->family, &made);
			continue;
		}
		q = a->queue;
		a->queue = NULL;
		a->queue_tail = &a->queue;
		a->queued = 0;
		alive = a->refs > 1;
		if (r == 0 && alive) {
			/* Replies to what goes now are unwrapped from here
			 * on; a socket connect()ed through us is connected to
			 * the relay (under the lock: a connect() elsewhere by
			 * the program comes before or after, never between). */
			a->relay = made.relay;
			a->relay_len = made.relay_len;
			if (a->has_peer && !a->peer_dns && !a->kconn)
				a->kconn = preload_real.connect(st->copy,
				    (struct sockaddr *)&made.relay, made.relay_len) == 0;
		}
		kconn = a->kconn;
		/* A socket closed meanwhile still sends what it queued, as
		 * the kernel sends what a send() accepted before close(). */
		if (q == NULL || r < 0) {
			a->pending = false;
			if (a->flushing) {
				a->flushing = false;
				udp_flushes--;
				pthread_cond_broadcast(&udp_flushed);
			}
			if (r < 0 && alive) {
				/* Said by the next send or receive; a receive
				 * waiting now is woken for it. */
				a->err = -r;
				udp_wake(st->copy);
			} else if (alive && a->ctl < 0 && !a->port_gone) {
				a->ctl = made.ctl;
				a->ctl_cookie = made.ctl_cookie;
				a->checked_ms = made.checked_ms;
				made.ctl = -1;
			}
			a->port_gone = false;
			/* The program's shutdown(), held until what it sent
			 * before is sent. */
			if (alive && a->shut != 0)
				(void)PRELOAD_REAL(shutdown)(st->copy, a->shut - 1);
			udp_assoc_put(a);
			pthread_mutex_unlock(&udp_mu);
			udp_queue_free(q);
			break;
		}
		pthread_mutex_unlock(&udp_mu);
		for (; q != NULL; q = next) {
			next = q->next;
			memset(&m, 0, sizeof(m));
			v.iov_base = q->data;
			v.iov_len = q->len;
			m.msg_iov = &v;
			m.msg_iovlen = 1;
			(void)udp_wrap_send(st->copy, &m, MSG_DONTWAIT, &q->dst, &made.relay,
			    made.relay_len, kconn);
			free(q);
		}
	}
	if (made.ctl >= 0)
		(void)PRELOAD_REAL(close)(made.ctl);
	(void)PRELOAD_REAL(close)(st->copy);
	free(st);
	return NULL;
}

/*
 * exit(): a non-blocking socket's datagrams still queued for an association
 * being set up go before the process ends (the set-up thread ends with it),
 * as the kernel's would have gone: `echo hi | ncat -u` sends and exits at
 * once. Bounded by UDP_EXIT_WAIT_MS (and SOCKSIFY_TIMEOUT), and by the lock
 * too: exit() from a signal handler that interrupted its holder, or from a
 * vfork()ed child, does not wait.
 */
__attribute__((destructor)) static void
udp_at_exit(void)
{
	struct timespec end;
	long ms = preload_cfg.timeout_ms < UDP_EXIT_WAIT_MS ? preload_cfg.timeout_ms :
	    UDP_EXIT_WAIT_MS;

	if (__atomic_load_n(&udp_flushes, __ATOMIC_RELAXED) == 0 || udp_held ||
	    getpid() != udp_pid || clock_gettime(CLOCK_REALTIME, &end) != 0)
		return;
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&udp_mu, &end) != 0)
		return;
	while (udp_flushes > 0 && pthread_cond_timedwait(&udp_flushed, &udp_mu, &end) == 0)
		;
	pthread_mutex_unlock(&udp_mu);
}

/* Starts a set-up thread for s (under udp_mu): true when it runs. */
static bool
udp_setup_start(int fd, struct udp_sock *s)
{
	struct udp_setup *st;
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	struct sockaddr_storage me;
	socklen_t melen;
	bool ok;

	/* Bound now, not when the thread sends: a failure here is the
	 * kernel's to tell at that send. */
	(void)udp_autobind(fd, &me, &melen);
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return false;
	if ((st->copy = async_fd_copy(fd)) < 0) {
		free(st);
		return false;
	}
	st->family = s->family;
	st->a = s->a;
	s->a->refs++;
	s->a->pending = true;
	s->a->queue_tail = &s->a->queue;
	/* Signals are the program's threads' business. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ok = pthread_attr_init(&attr) == 0 &&
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	    pthread_attr_setstacksize(&attr, UDP_SETUP_STACK) == 0 &&
	    pthread_create(&th, &attr, udp_setup_main, st) == 0;
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ok) {
		s->a->pending = false;
		s->a->refs--;
		(void)PRELOAD_REAL(close)(st->copy);
		free(st);
	}
	return ok;
}

/* Keeps a datagram for dst until the association is up (under udp_mu):
 * false beyond UDP_QUEUE_BYTES (or without memory), for the send to say
 * ENOBUFS, as the kernel does when a device's queue is full: told, not
 * lost in silence behind a count of bytes sent. */
static bool
udp_queue(struct udp_assoc *a, const struct s5_addr *dst, const struct msghdr *msg, size_t len)
{
	struct udp_queued *q;
	size_t i, off = 0;

	if (a->queued + len > UDP_QUEUE_BYTES || (q = malloc(sizeof(*q) + len)) == NULL)
		return false;
	if (!a->flushing) {
		a->flushing = true;
		udp_flushes++;
	}
	q->next = NULL;
	q->dst = *dst;
	q->len = len;
	for (i = 0; i < msg->msg_iovlen; i++) {
		if (msg->msg_iov[i].iov_len > 0)
			memcpy(q->data + off, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
		off += msg->msg_iov[i].iov_len;
	}
	*a->queue_tail = q;
	a->queue_tail = &q->next;
	a->queued += len;
	return true;
}

static bool
udp_nonblocking(int fd, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return true;
	fl = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * The socket's association, set up when it has none (or its control
 * connection died; its descriptors and peer stay, and a socket connect()ed
 * through us is connected to the new relay). 0 when it is up; 1 when it is
 * being set up without the program waiting (a non-blocking socket, or
 * MSG_DONTWAIT): msg (to dst, NULL for none) then waits for it; or -errno,
 * the failure of the set-up in the background among them, said once.
 */
static int
udp_ensure(int fd, int flags, const struct s5_addr *dst, const struct msghdr *msg)
{
	struct udp_assoc made = { .ctl = -1 };
	struct sockaddr_storage relay;
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);
	socklen_t relay_len = 0;
	size_t i, len = 0;
	int family, r;

	if (!udp_lock())
		return -EAGAIN;
	s = udp_find(fd, cookie);
	family = s != NULL ? s->family : udp_family(fd);
	if (family != AF_INET && family != AF_INET6) {
		r = family < 0 ? family : -EAFNOSUPPORT;
	} else if (s != NULL && s->a->err != 0) {
		r = -s->a->err;
		s->a->err = 0;
	} else if (s != NULL && s->a->ctl >= 0) {
		r = 0;
	} else if (s != NULL && s->a->pending) {
		/* shutdown(SHUT_WR) came before the association: as the
		 * kernel's socket would have said at once. */
		r = s->a->shut & (SHUT_WR + 1) ? -EPIPE : 1;
	} else if (!udp_nonblocking(fd, flags) || !udp_chain_ok() ||
	    preload_cfg.proxy_invalid) {
		r = 2;	/* inside the call (a refusal then says so at once) */
	} else if ((r = udp_framed(fd)) == 0) {
		s = udp_entry(fd, cookie, family);
		r = s == NULL ? (cookie == 0 ? -ENOTSOCK : -ENOMEM) :
		    udp_setup_start(fd, s) ? 1 : 2;
	}
	if (r == 1 && dst != NULL && msg != NULL) {
		for (i = 0; i < msg->msg_iovlen; i++)
			len += msg->msg_iov[i].iov_len;
		if (!udp_queue(s->a, dst, msg, len))
			r = -ENOBUFS;
	}
	udp_unlock();
	if (r != 2)
		return r;
	/* Inside the call: a blocking socket, or no thread to be had. */
	if ((r = udp_framed(fd)) < 0 || (r = udp_associate(fd, family, &made)) < 0)
		return r;
	if (!udp_lock()) {
		(void)PRELOAD_REAL(close)(made.ctl);
		return -EAGAIN;
	}
	if ((s = udp_entry(fd, cookie, family)) == NULL) {
		r = cookie == 0 ? -ENOTSOCK : -ENOMEM;
	} else if (s->a->ctl < 0) {
		s->a->ctl = made.ctl;
		s->a->ctl_cookie = made.ctl_cookie;
		s->a->relay = made.relay;
		s->a->relay_len = made.relay_len;
		s->a->checked_ms = made.checked_ms;
		made.ctl = -1;
		if (s->a->has_peer && !s->a->peer_dns) {
			relay = s->a->relay;
			relay_len = s->a->relay_len;
		}
	}
	/* else another thread was quicker: its association stays. */
	udp_unlock();
	if (made.ctl >= 0)
		(void)PRELOAD_REAL(close)(made.ctl);
	/* Connected through us to a relay that went: to the new one. */
	if (relay_len > 0) {
		if (preload_real.connect(fd, (struct sockaddr *)&relay, relay_len) != 0)
			return -errno;
		udp_set_kconn(fd, true);
	}
	return r;
}

/*
 * Once per UDP_CHECK_MS a send looks at the control connection: a server
 * that closed it (or reset it) closed the relay too (its
 * --udp-idle-timeout, a restart). A socket connect()ed through us gets
 * -ECONNREFUSED then, as after the kernel's ICMP error, and its next send
 * sets up a new association; an unconnected one, which the kernel tells
 * no such error, 1: this send sets the new one up. 0: it is up.
 */
static int
udp_check(int fd)
{
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);
	long long now = tunnel_now_ms();
	bool gone = false, peer = false;
	ssize_t n = 0;
	uint8_t b;

	if (!udp_lock())
		return 0;
	if ((s = udp_find(fd, cookie)) != NULL && s->a->ctl >= 0 &&
	    now - s->a->checked_ms >= UDP_CHECK_MS) {
		s->a->checked_ms = now;
		n = PRELOAD_REAL(recv)(s->a->ctl, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		/* Bytes on it (no server should send any) are no end. */
		gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR);
		if (gone) {
			udp_ctl_close(s->a);
			/* Still connected to the dead relay: the next
			 * association connects the socket to its own. */
			s->a->kconn = false;
			peer = s->a->has_peer;
		}
	}
	udp_unlock();
	if (!gone)
		return 0;
	preload_log(peer ? LOG_LVL_ERROR : LOG_LVL_INFO, "UDP relay of proxy %s is gone "
	    "(control connection %s)%s", preload_cfg.chain_text, n == 0 ? "closed" : "failed",
	    peer ? "" : ": a new association for this datagram");
	return peer ? -ECONNREFUSED : 1;
}

/* Remembers a destination sent to (for the sources of replies). */
static void
udp_note_sent(int fd, const struct s5_addr *dst, const struct sockaddr *sa, socklen_t len)
{
	struct udp_sock *s;
	struct udp_assoc *a;
	uint64_t cookie = peer_cookie(fd);
	unsigned i;

	if (!udp_lock())
		return;
	if ((s = udp_find(fd, cookie)) != NULL) {
		a = s->a;
		for (i = 0; i < a->nsent && i < UDP_NAMES; i++)
			if (s5_addr_equal(&a->sent[i].dst, dst))
				break;
		if (i == a->nsent || i >= UDP_NAMES)
			i = a->nsent++ % UDP_NAMES;
		a->sent[i].dst = *dst;
		if (len > sizeof(a->sent[i].sa))
			len = sizeof(a->sent[i].sa);
		memcpy(&a->sent[i].sa, sa, len);
		a->sent[i].len = len;
	}
	udp_unlock();
}

/* --- DNS answered here (socks5h) ------------------------------------- */

/*
 * The injector of a family (0: IPv4 on 127.0.0.1, 1: IPv6 on ::1): a UDP
 * socket of ours from which answers reach the program's socket. Made on
 * first use, proven by its cookie (a program that closed a range of
 * descriptors took it). Under udp_mu; the descriptor or -errno.
 */
static int udp_inj[2] = { -1, -1 };
static uint64_t udp_inj_cookie[2];
static struct sockaddr_storage udp_inj_sa[2];
static socklen_t udp_inj_len[2];

static int
udp_injector(int v6)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&ss;
	socklen_t len;
	int fd, moved;

	if (udp_inj[v6] >= 0 && peer_cookie(udp_inj[v6]) == udp_inj_cookie[v6])
		return udp_inj[v6];
	udp_inj[v6] = -1;
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	}
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	moved = async_fd_raise(fd);
	if (bind(moved, (struct sockaddr *)&ss, len) != 0 ||
	    PRELOAD_REAL(getsockname)(moved, (struct sockaddr *)&udp_inj_sa[v6], &len) != 0) {
		int err = errno;

		(void)PRELOAD_REAL(close)(moved);
		return -err;
	}
	udp_inj_len[v6] = len;
	udp_inj_cookie[v6] = peer_cookie(moved);
	udp_inj[v6] = moved;
	return moved;
}

/* A datagram from one of our injectors. */
static bool
udp_from_injector(const struct sockaddr_storage *from, socklen_t len)
{
	int i;

	/* Ours still: a program that closed our descriptor freed the port
	 * for anyone to bind. */
	for (i = 0; i < 2; i++)
		if (udp_inj[i] >= 0 &&
		    udp_same_sockaddr(&udp_inj_sa[i], udp_inj_len[i], (const struct sockaddr *)from, len))
			return peer_cookie(udp_inj[i]) == udp_inj_cookie[i];
	return false;
}

/*
 * Where answers to fd come from and go: the injector for the socket's
 * family (IPv4 on an IPv6 socket that is v4-mapped, or that may be when
 * the host has no ::1) in *inj, and fd's own address, loopback for a
 * wildcard, in *to (fd is bound first when it is not). 0 or -errno; under
 * udp_mu.
 */
static int
udp_dns_route(int fd, int *inj, struct sockaddr_storage *to, socklen_t *tolen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)to;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)to;
	bool v4;
	int r;

	if ((r = udp_autobind(fd, to, tolen)) < 0)
		return r;
	if (to->ss_family == AF_INET) {
		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*inj = udp_injector(0);
		return *inj < 0 ? *inj : 0;
	}
	if (to->ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	v4 = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
	if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) {
		sin6->sin6_addr = in6addr_loopback;
		if ((*inj = udp_injector(1)) >= 0)
			return 0;
		if (preload_v6only(fd))
			return *inj;
		v4 = true;	/* no ::1 here: ::ffff:127.0.0.1 */
		memset(&sin6->sin6_addr, 0, sizeof(sin6->sin6_addr));
		sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
		sin6->sin6_addr.s6_addr[12] = 127;
		sin6->sin6_addr.s6_addr[15] = 1;
	}
	*inj = udp_injector(v4 ? 0 : 1);
	return *inj < 0 ? *inj : 0;
}

/* The answer to the DNS query in msg, sent to server: built here
 * (dnsanswer.c) and put on fd from an injector. Returns the query's length
 * as a send would, or -1 with errno. */
ssize_t
udp_answer(int fd, const struct msghdr *msg, const struct sockaddr *server,
    socklen_t slen)
{
	uint8_t stack[DNS_UDP_MAX * 2], *q = stack, out[DNS_UDP_MAX];
	struct sockaddr_storage to;
	struct udp_sock *s;
	struct udp_assoc *a;
	socklen_t tolen;
	size_t total = 0, i, n;
	uint64_t cookie;
	int family, inj = -1, r = 0;
	bool local;
	unsigned k;

	for (i = 0; i < msg->msg_iovlen; i++) {
		if (msg->msg_iov[i].iov_len > UDP_PAYLOAD_MAX - total) {
			errno = EMSGSIZE;
			return -1;
		}
		total += msg->msg_iov[i].iov_len;
	}
	if (total > sizeof(stack) && (q = malloc(total)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	n = 0;
	for (i = 0; i < msg->msg_iovlen; i++) {
		if (msg->msg_iov[i].iov_len > 0)
			memcpy(q + n, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
		n += msg->msg_iov[i].iov_len;
	}
	n = dnsanswer(q, total, out, sizeof(out), &local);
	if (local)
		n = dnsanswer_local(q, total, out, sizeof(out));
	if ((family = udp_family(fd)) < 0) {
		r = family;
		goto out;
	}
	cookie = peer_cookie(fd);
	if (!udp_lock()) {
		r = -EAGAIN;
		goto out;
	}
	if ((s = udp_entry(fd, cookie, family)) == NULL)
		r = cookie == 0 ? -ENOTSOCK : -ENOMEM;
	else
		r = udp_dns_route(fd, &inj, &to, &tolen);
	if (r == 0) {
		/* Before the answer can arrive: its source, by query ID. */
		a = s->a;
		a->dns = true;
		k = a->nasked++ % UDP_DNS_ASKED;
		a->asked[k].id = total >= 2 ? (uint16_t)(q[0] << 8 | q[1]) : 0;
		if (slen > sizeof(a->asked[k].sa))
			slen = sizeof(a->asked[k].sa);
		memcpy(&a->asked[k].sa, server, slen);
		a->asked[k].len = slen;
		/* A full receive queue drops it, as the network would. */
		if (n > 0)
			(void)preload_real.sendto(inj, out, n, MSG_DONTWAIT | MSG_NOSIGNAL,
			    (struct sockaddr *)&to, tolen);
	}
	udp_unlock();
out:
	if (q != stack)
		free(q);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return (ssize_t)total;
}

/* The source of an answer: the server its query (by ID) was sent to. */
static socklen_t
udp_dns_source(int fd, const uint8_t *msg, size_t len, struct sockaddr_storage *out)
{
	struct udp_sock *s;
	struct udp_assoc *a;
	uint16_t id = len >= 2 ? (uint16_t)(msg[0] << 8 | msg[1]) : 0;
	uint64_t cookie = peer_cookie(fd);
	unsigned i, n, k;
	socklen_t got = 0;

	if (!udp_lock())
		return 0;
	if ((s = udp_find(fd, cookie)) != NULL) {
		a = s->a;
		n = a->nasked < UDP_DNS_ASKED ? a->nasked : UDP_DNS_ASKED;
		/* The latest first: IDs repeat. */
		for (i = 0; i < n && got == 0 && len >= DNS_HEADER_LEN; i++) {
			k = (a->nasked - 1 - i) % UDP_DNS_ASKED;
			if (a->asked[k].id == id) {
				*out = a->asked[k].sa;
				got = a->asked[k].len;
			}
		}
	}
	udp_unlock();
	return got;
}

/* sa as the program would read it back: its own family's size, v4-mapped
 * on an IPv6 socket. 0 when it is no IPv4/IPv6 address. */
static socklen_t
udp_canon(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
	struct s5_addr a;

	if (s5_addr_from_sockaddr(&a, sa, len) != 0)
		return 0;
	return udp_sockaddr(&a, sa->sa_family, out);
}

/* Records sa as fd's peer (dns: a server we answer for, whose injector
 * the caller connected the socket to). */
static void
udp_set_peer(int fd, const struct sockaddr *sa, socklen_t len, const struct s5_addr *dst,
    bool dns)
{
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);

	if (!udp_lock())
		return;
	if ((s = udp_find(fd, cookie)) != NULL) {
		s->a->has_peer = true;
		s->a->peer_dns = dns;
		s->a->dns |= dns;
		s->a->peer_locked = false;
		s->a->peer = *dst;
		s->a->peer_len = udp_canon(sa, len, &s->a->peer_sa);
		/* Only the relay's datagrams arrive from now on: connected
		 * here when the relay is known, else by the set-up thread
		 * (under this lock, so one of the two does it). */
		if (!dns && s->a->relay_len > 0)
			s->a->kconn = preload_real.connect(fd, (struct sockaddr *)&s->a->relay,
			    s->a->relay_len) == 0;
	}
	udp_unlock();
}

/* connect() of a UDP socket to a DNS server we answer for: the kernel's
 * peer is the injector, so only answers arrive. */
static int
udp_dns_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_storage inj;
	struct s5_addr server, lo;
	struct udp_sock *s;
	uint64_t cookie = peer_cookie(fd);
	socklen_t injlen = 0;
	int family, v6, r;

	if ((family = udp_family(fd)) < 0) {
		errno = -family;
		return -1;
	}
	if (s5_addr_from_sockaddr(&server, sa, len) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (!udp_lock()) {
		errno = EAGAIN;
		return -1;
	}
	v6 = family == AF_INET6 && udp_injector(1) >= 0;
	if ((s = udp_entry(fd, cookie, family)) == NULL) {
		r = cookie == 0 ? -ENOTSOCK : -ENOMEM;
	} else if ((r = udp_injector(v6)) >= 0) {
		r = 0;
		/* An IPv6 socket reaches the IPv4 injector v4-mapped. */
		(void)s5_addr_from_sockaddr(&lo, (struct sockaddr *)&udp_inj_sa[v6],
		    udp_inj_len[v6]);
		injlen = udp_sockaddr(&lo, family, &inj);
	}
	udp_unlock();
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (preload_real.connect(fd, (struct sockaddr *)&inj, injlen) != 0)
		return -1;
	udp_set_peer(fd, sa, len, &server, true);
	udp_set_kconn(fd, true);
	return 0;
}

/* A UDP_SEGMENT control message (GSO for this send) in msg. */
static bool
udp_cmsg_segment(const struct msghdr *msg)
{
	struct cmsghdr *c;

	if (msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr))
		return false;
	for (c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
	    c = CMSG_NXTHDR((struct msghdr *)msg, c))
		if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_SEGMENT)
			return true;
	return false;
}

/* Sends msg's data to dst (the peer when NULL) through the relay. */
ssize_t
udp_send(int fd, const struct msghdr *msg, int flags, const struct s5_addr *dst,
    const struct sockaddr *sa, socklen_t salen)
{
	struct udp_view v;
	size_t i, len = 0;
	int r;

	/* No destination: the peer connect() named through us, else not
	 * ours (the kernel's own peer, an excluded one, or none). */
	if (dst == NULL) {
		if ((r = udp_view(fd, &v)) <= 0)
			return r < 0 ? -1 : UDP_NOT_MINE;
		if (!v.has_peer)
			return UDP_NOT_MINE;
		if (v.peer_dns)
			return udp_answer(fd, msg, (struct sockaddr *)&v.peer_sa, v.peer_len);
		dst = &v.peer;
		sa = NULL;
	}
	/* Port 0 is nobody's: the kernel's EINVAL, not a datagram the relay
	 * drops in silence. */
	if (dst->port == 0) {
		errno = EINVAL;
		return -1;
	}
	/* The relay cannot frame these (see udp_framed()). */
	if ((flags & MSG_MORE) || udp_cmsg_segment(msg)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	for (i = 0; i < msg->msg_iovlen; i++)
		len += msg->msg_iov[i].iov_len;
	/* Too big for a datagram once the header is on: the kernel's
	 * EMSGSIZE, also for one that would wait in the queue. */
	if (len + 4 + s5_addr_wire_len(dst) > UDP_PAYLOAD_MAX - 28) {
		errno = EMSGSIZE;
		return -1;
	}
	r = udp_ensure(fd, flags, dst, msg);
	if (r >= 0 && sa != NULL)
		udp_note_sent(fd, dst, sa, salen);	/* the entry is there now */
	/* The relay gone: an unconnected socket sets a new one up (1). */
	if (r == 0 && (r = udp_check(fd)) == 1)
		r = udp_ensure(fd, flags, dst, msg);
	if (r == 1)
		return (ssize_t)len;	/* waits for its association */
	if (r < 0 || (r = udp_view(fd, &v)) <= 0) {
		errno = r < 0 ? -r : ECONNREFUSED;
		return -1;
	}
	return udp_wrap_send(fd, msg, flags, dst, &v.relay, v.relay_len, v.connected);
}

/*
 * The source to report for a relayed datagram from src, or 0 to drop it.
 * A socket connect()ed to a name takes replies from the port it named,
 * and from the first sender that used it only, as the kernel takes them
 * from the peer alone. Otherwise: the placeholder of a name sent to on
 * that port when src is no address sent to (see top).
 */
static socklen_t
udp_source(int fd, const struct s5_addr *src, struct sockaddr_storage *out)
{
	struct udp_sock *s;
	struct udp_assoc *a;
	uint64_t cookie = peer_cookie(fd);
	unsigned i, n;
	int name = -1, family = AF_INET;
	socklen_t len = 0;
	bool drop = false;

	if (!udp_lock())
		return 0;
	if ((s = udp_find(fd, cookie)) != NULL) {
		a = s->a;
		family = s->family;
		if (a->has_peer && a->peer.atyp == S5_ATYP_DOMAIN) {
			if (src->port != a->peer.port ||
			    (a->peer_locked && !s5_addr_equal(&a->peer_from, src))) {
				drop = true;
			} else {
				a->peer_locked = true;
				a->peer_from = *src;
				*out = a->peer_sa;
				len = a->peer_len;
			}
			goto done;
		}
		if (a->has_peer && !s5_addr_equal(&a->peer, src)) {
			drop = true;
			goto done;
		}
		n = a->nsent < UDP_NAMES ? a->nsent : UDP_NAMES;
		for (i = 0; i < n; i++) {
			if (a->sent[i].dst.port != src->port)
				continue;
			if (s5_addr_equal(&a->sent[i].dst, src)) {
				name = -1;
				break;
			}
			if (a->sent[i].dst.atyp == S5_ATYP_DOMAIN)
				name = (int)i;
		}
		if (name >= 0) {
			*out = a->sent[name].sa;
			len = a->sent[name].len;
		}
	} else {
		drop = true;
	}
done:
	udp_unlock();
	if (drop)
		return 0;
	if (len > 0)
		return len;
	return udp_sockaddr(src, family, out);
}

/* Copies n bytes of buf into msg's iovecs; returns how many fit. */
static size_t
udp_scatter(const struct msghdr *msg, const uint8_t *buf, size_t n)
{
	size_t i, off = 0, k;

	for (i = 0; i < msg->msg_iovlen && off < n; i++) {
		k = msg->msg_iov[i].iov_len;
		if (k > n - off)
			k = n - off;
		if (k > 0)
			memcpy(msg->msg_iov[i].iov_base, buf + off, k);
		off += k;
	}
	return off;
}

/*
 * Receives into msg as recvmsg() would, unwrapping the relay's datagrams.
 * Returns the length (the datagram's with MSG_TRUNC), or -1 with errno.
 */
ssize_t
udp_recv(int fd, struct msghdr *msg, int flags)
{
	struct sockaddr_storage from, src_sa;
	struct s5_udp_header h;
	struct udp_view v;
	struct msghdr m;
	struct iovec iov;
	size_t cap = 0, i, used, got, fit, full;
	uint8_t stack[UDP_STACK_BYTES], *buf = stack;
	const uint8_t *data;
	socklen_t srclen;
	ssize_t n;
	int r;

	if (flags & MSG_ERRQUEUE)
		return UDP_NOT_MINE;
	if ((r = udp_view(fd, &v)) <= 0)
		return r < 0 ? -1 : UDP_NOT_MINE;
	for (i = 0; i < msg->msg_iovlen; i++)
		cap += msg->msg_iov[i].iov_len;
	if (cap > UDP_PAYLOAD_MAX)
		cap = UDP_PAYLOAD_MAX;
	cap += S5_UDP_HEADER_MAX;
	if (cap > sizeof(stack) && (buf = malloc(cap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		memset(&m, 0, sizeof(m));
		iov.iov_base = buf;
		iov.iov_len = cap;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_name = &from;
		m.msg_namelen = sizeof(from);
		m.msg_control = msg->msg_control;
		m.msg_controllen = msg->msg_controllen;
		n = preload_real.recvmsg(fd, &m, flags | MSG_TRUNC);
		if (n < 0)
			goto out;
		got = (size_t)n < cap ? (size_t)n : cap;
		/* What the socket is now, not when the wait began. */
		if (udp_view(fd, &v) < 0) {
			n = -1;
			goto out;
		}
		if (udp_from_injector(&from, m.msg_namelen)) {
			/* The failure of a set-up in the background, woken
			 * for; or an answer of ours, from the server it was
			 * asked; else stale. */
			if ((r = udp_take_err(fd)) != 0) {
				if (flags & MSG_PEEK)
					(void)preload_real.recvmsg(fd, &(struct msghdr){ 0 },
					    MSG_DONTWAIT);
				errno = r;
				n = -1;
				goto out;
			}
			if (v.dns && (srclen = udp_dns_source(fd, buf, got, &src_sa)) > 0) {
				data = buf;
				full = (size_t)n;
				break;
			}
			if (flags & MSG_PEEK)
				(void)preload_real.recvmsg(fd, &(struct msghdr){ 0 }, MSG_DONTWAIT);
			continue;
		}
		if (!v.relayed || !udp_same_sockaddr(&v.relay, v.relay_len,
		    (struct sockaddr *)&from, m.msg_namelen)) {
			/* connect()ed through us: its peer speaks through
			 * the relay, and a stranger is not heard, as the
			 * kernel does not hear one on a connected socket. */
			if (v.has_peer) {
				if (flags & MSG_PEEK)
					(void)preload_real.recvmsg(fd, &(struct msghdr){ 0 },
					    MSG_DONTWAIT);
				continue;
			}
			/* Not the relay's: the program's, as it came. */
			data = buf;
			full = (size_t)n;
			src_sa = from;
			srclen = m.msg_namelen;
			break;
		}
		if (s5_parse_udp_header(buf, got, &h, &used) == 0 && h.frag == 0 &&
		    (srclen = udp_source(fd, &h.addr, &src_sa)) > 0) {
			data = buf + used;
			full = (size_t)n - used;
			got -= used;
			break;
		}
		/* §7: dropped in silence; a peeked one is taken off. */
		if (flags & MSG_PEEK)
			(void)preload_real.recvmsg(fd, &(struct msghdr){ 0 }, MSG_DONTWAIT);
	}
	msg->msg_flags = m.msg_flags & ~MSG_TRUNC;
	msg->msg_controllen = m.msg_controllen;
	fit = udp_scatter(msg, data, got);
	if (full > fit)
		msg->msg_flags |= MSG_TRUNC;
	n = (ssize_t)((flags & MSG_TRUNC) ? full : fit);
	if (msg->msg_name != NULL) {
		memcpy(msg->msg_name, &src_sa, srclen < msg->msg_namelen ? srclen : msg->msg_namelen);
		msg->msg_namelen = srclen;
	}
out:
	if (buf != stack)
		free(buf);
	return n;
}

/* connect() of a UDP socket to dst (relayed; sa as the program gave it),
 * or with dst NULL to a DNS server we answer for. */
int
udp_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct s5_addr *dst)
{
	int r;

	if (dst == NULL)
		return udp_dns_connect(fd, sa, len);
	if ((r = udp_ensure(fd, 0, NULL, NULL)) < 0) {
		errno = -r;
		return -1;
	}
	udp_set_peer(fd, sa, len, dst, false);
	return 0;
}

/* A connect() elsewhere succeeded, or AF_UNSPEC: no peer of ours. */
/* fd's socket is bound to no port (any more). */
static bool
udp_port_gone(int fd)
{
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);

	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&me, &len) != 0)
		return false;
	return me.ss_family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port == 0 :
	    me.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&me)->sin6_port == 0;
}

void
udp_unpeer(int fd)
{
	struct udp_sock *s;
	uint64_t cookie;

	if (!udp_maybe(fd))
		return;
	cookie = peer_cookie(fd);
	if (!udp_lock())
		return;
	if ((s = udp_find(fd, cookie)) != NULL) {
		s->a->has_peer = s->a->peer_dns = s->a->kconn = false;
		/* connect(AF_UNSPEC) unbinds a port the kernel chose, and the
		 * relay takes datagrams from the old one alone: the next send
		 * (through this descriptor or a dup() of it: they share the
		 * association) sets a new one up, as the kernel binds anew. */
		if ((s->a->pending || s->a->ctl >= 0) && udp_port_gone(fd)) {
			/* Being set up still (its thread may not have handed
			 * the control connection over yet): it never is. */
			if (s->a->pending)
				s->a->port_gone = true;
			udp_ctl_close(s->a);
		}
	}
	udp_unlock();
}

/* getpeername() of a socket connect()ed through us. */
bool
udp_peer(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	struct udp_view v;

	if (udp_view(fd, &v) <= 0 || !v.has_peer)
		return false;
	*ss = v.peer_sa;
	*len = v.peer_len;
	return true;
}
