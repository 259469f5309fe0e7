/*
 * listen.c: a listening socket meant for the peer of a tunnelled connection
 * becomes a SOCKS BIND (RFC 1928 §6) on the proxy chain. The classic case
 * is active FTP: the client listens, announces the address with PORT/EPRT
 * over its tunnelled control connection, and the server connects to it.
 * Without a BIND that address is this host's, which the server may not
 * reach, and the connection would bypass the proxy.
 *
 * Which sockets (the rule). getsockname() of a tunnelled connection names
 * the address the target sees: the BND.ADDR and BND.PORT of the last hop's
 * CONNECT reply, when BND.ADDR is an address and not the wildcard (tor and
 * ssh -D send 0.0.0.0, and have no BIND either); else the kernel's own.
 * An IPv6 BND.ADDR on an IPv4 socket (a name's placeholder, the proxy
 * reaching the target over IPv6) has no form there: it is said as
 * 192.0.0.8 (RFC 7600's IPv4 dummy address), not as the kernel's name,
 * which an FTP client would announce, and the server would reach this
 * host at it around the proxy. A bind() to it fails (EADDRNOTAVAIL, with
 * a line), and an announced one leads nowhere: fail closed.
 * While such a connection is open, a TCP socket becomes a BIND toward its
 * destination when the program
 *   (a) binds it to exactly that address (any port) and listens on it or
 *       asks its getsockname() (curl -P - binds to the control connection's
 *       address and asks for the port before listen()), or
 *   (b) listens on it without binding it at all (lftp: the kernel picks the
 *       wildcard and a port at listen(), and the program announces the
 *       control connection's address with that port). A server for local
 *       clients binds its port; an unbound listener's port is only ever
 *       told to someone, here the peer of a tunnel.
 * Everything else listens locally, as always: sockets bound to the
 * wildcard (also with port 0) and sockets bound to any other address.
 * When several open connections qualify, the one the program last
 * connected or asked getsockname() of decides (an FTP client asks of its
 * control connection right before it listens).
 *   Why not dante's rule (a socket of a tunnelled connection's family, not
 * on loopback): that turns a program's LAN-side servers into BINDs, and
 * never serves a proxy reached on loopback. The address in (a) is one the
 * program can only have learnt from the tunnel, so a program's own
 * servers, which bind the wildcard, loopback or a LAN address, stay local,
 * and a proxy on loopback (ssh -D, tor) changes nothing. The one overlap:
 * a proxy running here that reaches a target here too (the tests,
 * SOCKSIFY_EXCLUDE=none) answers BND 127.0.0.1, and then a listener bound
 * to 127.0.0.1 while such a connection is open is a BIND; one bound to
 * 0.0.0.0, 127.0.0.2 or ::1 is not.
 *
 * bind(): a proxy elsewhere reports its own address, which this host does
 * not have, so the kernel's bind() to it fails (EADDRNOTAVAIL). Only then,
 * and only for an address a tunnelled connection reports, the socket is
 * bound to that connection's real local address instead (same port), and
 * the address asked for is remembered for getsockname() and the rule.
 *
 * States of such a socket (one slot each, keyed by its SO_COOKIE as in
 * peer.c, so a descriptor closed and reused behind our back is told apart):
 *   BOUND     (a) or (b) holds; no BIND yet.
 *   MAKING    one thread makes the BIND, at the first getsockname() or
 *             listen(): a new connection to the first hop (close-on-exec,
 *             a high descriptor, none of the program's names), the chain's
 *             CONNECTs and BIND on the last hop with DST.ADDR the
 *             connection's destination (its name under socks5h) and
 *             DST.PORT 0 (the server's data port is not known), inside the
 *             call with SOCKSIFY_TIMEOUT. A socket connected meanwhile was
 *             bound for its source address: it is left alone.
 *   FAILED    the proxy refused or could not be reached: listen() fails
 *             with the errno of CONTRACT.md's mapping (0x07, a proxy
 *             without BIND: ECONNREFUSED; 0x02: EACCES), after one log
 *             line; never a local listener the server cannot reach.
 *   WAITING   the first reply's BND is what getsockname() answers (the
 *             proxy's address and port: what the program announces). The
 *             kernel's listen() runs on the real socket as asked, so that
 *             the program can wait on it. A watcher thread (signals
 *             blocked) reads the second reply, for at most
 *             PRELOAD_BIND_WAIT_MS, and stops when the program closes the
 *             socket.
 *   READY     the second reply came (the peer reached the proxy), or the
 *             BIND failed after all: once the socket listens, a "poke"
 *             connects from this host to the real socket, which then polls
 *             readable however the program waits (poll, select, epoll in
 *             any mode). A socket that was blocking when it listened is
 *             poked already in WAITING: a program that polls it beside
 *             its control connection (curl) must hear of the data
 *             connection before the server's first words there, which
 *             would otherwise often come first; its accept() takes that
 *             poke and then waits, in the kernel's accept(), for a second
 *             poke that READY brings from a socket made with the first
 *             (so READY needs no free descriptor). A listener made
 *             non-blocking since gets EAGAIN for the first poke: it
 *             polled readable once before its peer came.
 *   ACCEPTED  accept() handed the proxy connection over.
 *
 * Hooks:
 *   bind()      (a)'s record, and the substitution above.
 *   listen()    (b)'s record, the BIND, then the kernel's listen().
 *   accept(), accept4()  the kernel's accept() on the real socket, so that
 *               blocking, O_NONBLOCK (EAGAIN), signals (EINTR) and
 *               SO_RCVTIMEO behave as they do; when it returns the poke,
 *               the poke is closed and the proxy connection is returned in
 *               its place (the lowest free descriptor, SOCK_NONBLOCK and
 *               SOCK_CLOEXEC as asked) with the second reply's address; or
 *               the BIND's failure as the errno (ETIMEDOUT when the proxy
 *               stopped waiting, ECONNABORTED when it hung up). Anything
 *               else reaching the real socket is closed: the announced
 *               address is the proxy's. One BIND per listen(): a later
 *               accept() waits (or says EAGAIN) as on a listener nobody
 *               connects to.
 *   getsockname()  (peer.c asks listen_sockname() first) BND of a BIND,
 *               the address asked for (kernel's port) before it is made,
 *               the CONNECT reply's BND of a tunnelled connection and the
 *               listener's BND of an accepted one; in the program's family
 *               (IPv4 as ::ffff:a.b.c.d for an IPv6 socket).
 *   getpeername()  of an accepted one: the second reply's address (peer.c).
 *
 * Limits: the BIND is made inside getsockname() or listen(), even on a
 * non-blocking socket (one round trip to the chain, as a blocking connect()
 * would take). The watcher stays with the process that made the BIND:
 * after fork() the child's accept() on that socket never returns it, and
 * exec() closes the proxy connection (close-on-exec), which ends the BIND.
 * The lock here is a mutex: none of these hooks is for a signal handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "preload.h"

/* What an IPv4 socket's getsockname() says of a tunnel whose BND is IPv6,
 * and whether it has said so in this process. */
static const uint8_t listen_v4_standin[4] = { 192, 0, 0, 8 };
static bool listen_standin_said;
static const uint8_t listen_v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* A tunnelled connection's reported address, compact (no names). */
struct listen_conn {
	uint64_t cookie;		/* 0: empty */
	uint64_t seq;			/* last connected or asked: the tie-break */
	uint8_t atyp;			/* S5_ATYP_IPV4 or S5_ATYP_IPV6 */
	uint16_t port;
	uint8_t ip[16];
};

static struct listen_conn listen_conns[PRELOAD_PEER_FDS];
static int listen_conn_top;		/* highest fd noted + 1 */
static uint64_t listen_seq;

/* In this order: listen_sockname() compares. */
enum listen_state {
	LS_FREE = 0,
	LS_BOUND,			/* bound to a tunnel's address; no BIND yet */
	LS_MAKING,			/* one thread makes the BIND */
	LS_FAILED,			/* it could not: listen() says err */
	LS_WAITING,
	LS_READY,
	LS_ACCEPTED,
};

struct listen_slot {
	int state;			/* enum listen_state */
	int fd;				/* the program's listening socket */
	uint64_t cookie;
	int family;			/* the program's */
	struct s5_addr asked;		/* BOUND: the address bind() was given */
	struct s5_addr bnd;		/* the first reply's */
	struct s5_addr peer;		/* READY: the second reply's */
	int err;			/* READY, FAILED: 0 or the BIND's errno */
	bool listening;			/* the kernel's listen() ran */
	bool blocking;			/* ... on a blocking socket: poked early */
	bool poked;			/* the early poke (or the only one) is made */
	bool early_taken;		/* accept() took the early poke while WAITING */
	bool ready_poked;		/* READY's poke is seen to */
	int spare;			/* the second poke's end, bound, made with the
					   early one for READY (no descriptor to find
					   then); -1: none */
	struct sockaddr_storage spare_addr, spare_to;
	socklen_t spare_len;
	int proxy;			/* the BIND connection; -1 once handed over */
	struct s5_client c;		/* the watcher's, awaiting the second reply */
	struct sockaddr_storage real;	/* the kernel's name of the socket */
	socklen_t reallen;
	struct sockaddr_storage poke;	/* the poke's own address */
	socklen_t pokelen;
	char dest[S5_ADDR_TEXT_MAX];	/* the BIND's DST, for the log */
};

static pthread_mutex_t listen_mutex = PTHREAD_MUTEX_INITIALIZER;
/* The holder's cancel state before it took the lock: no cancellation acts
 * under it (a close() of ours there is a cancellation point, and a thread
 * cancelled there would leave the lock held for good). */
static __thread int listen_cancel_old;

static void
listen_lock(void)
{
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_mutex_lock(&listen_mutex);
	listen_cancel_old = old;
}

static void
listen_unlock(void)
{
	pthread_mutex_unlock(&listen_mutex);
	pthread_setcancelstate(listen_cancel_old, NULL);
}
static struct listen_slot listen_slots[PRELOAD_BIND_MAX];
static int listen_nslots;		/* slots not free: the hooks' fast path */

/* The real calls of the hooks here, loaded on first use (preload_sym()). */
static int (*listen_real_bind)(int, const struct sockaddr *, socklen_t);
static int (*listen_real_listen)(int, int);
static int (*listen_real_accept)(int, struct sockaddr *, socklen_t *);
static int (*listen_real_accept4)(int, struct sockaddr *, socklen_t *, int);


#define LISTEN_REAL(var, name) \
	((__typeof__(var))preload_sym((void **)&(var), name))

static bool
listen_is_any(const struct s5_addr *a)
{
	static const uint8_t zero[16];

	if (a->atyp == S5_ATYP_IPV4)
		return memcmp(a->u.ip4, zero, 4) == 0;
	return a->atyp == S5_ATYP_IPV6 && memcmp(a->u.ip6, zero, 16) == 0;
}

static bool
listen_same_ip(const struct s5_addr *a, uint8_t atyp, const uint8_t *ip)
{
	if (a->atyp != atyp)
		return false;
	return memcmp(atyp == S5_ATYP_IPV4 ? a->u.ip4 : a->u.ip6, ip,
	    atyp == S5_ATYP_IPV4 ? 4 : 16) == 0;
}

/* a as a sockaddr of family (IPv4 as ::ffff:a.b.c.d for AF_INET6): its
 * length, or 0 when it has no form there. */
static socklen_t
listen_sockaddr(const struct s5_addr *a, int family, struct sockaddr_storage *ss)
{
	int r = s5_addr_to_family_sockaddr(a, family, ss);

	return r < 0 ? 0 : (socklen_t)r;
}

/* The family the program gave fd (peer.c answers for a swapped socket). */
static int
listen_family(int fd)
{
	socklen_t len = sizeof(int);
	int family = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0)
		return 0;
	return family;
}

/* The kernel's address of fd as an s5_addr: 0, or -errno. */
static int
listen_kernel_name(int fd, struct s5_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	if (s5_addr_from_sockaddr(a, (struct sockaddr *)&ss, len) != 0)
		return -EAFNOSUPPORT;
	return 0;
}

/* --- Tunnelled connections ---------------------------------------------- */

void
listen_note(int fd, const struct s5_addr *bnd)
{
	uint64_t cookie;

	if (fd >= 0 && fd < PRELOAD_PEER_FDS && bnd->atyp != S5_ATYP_DOMAIN &&
	    !listen_is_any(bnd) && (cookie = peer_cookie(fd)) != 0)
		listen_note_as(fd, cookie, bnd);
}

void
listen_note_as(int fd, uint64_t cookie, const struct s5_addr *bnd)
{
	struct listen_conn *c;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS || bnd->atyp == S5_ATYP_DOMAIN ||
	    listen_is_any(bnd) || cookie == 0)
		return;
	/* Published as peer.c publishes: cookie last. */
	c = &listen_conns[fd];
	__atomic_store_n(&c->cookie, 0, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	c->atyp = bnd->atyp;
	c->port = bnd->port;
	memcpy(c->ip, bnd->atyp == S5_ATYP_IPV4 ? bnd->u.ip4 : bnd->u.ip6,
	    bnd->atyp == S5_ATYP_IPV4 ? 4 : 16);
	__atomic_store_n(&c->seq, __atomic_add_fetch(&listen_seq, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&c->cookie, cookie, __ATOMIC_RELEASE);
	if (__atomic_load_n(&listen_conn_top, __ATOMIC_RELAXED) <= fd)
		__atomic_store_n(&listen_conn_top, fd + 1, __ATOMIC_RELEASE);
}

/* The address fd's tunnel reports, when fd still names that socket. */
static bool
listen_conn_get(int fd, struct s5_addr *a, uint64_t *seq)
{
	struct listen_conn *c, copy;
	uint64_t before;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS)
		return false;
	c = &listen_conns[fd];
	if ((before = __atomic_load_n(&c->cookie, __ATOMIC_ACQUIRE)) == 0)
		return false;
	memcpy(&copy, c, sizeof(copy));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&c->cookie, __ATOMIC_RELAXED) != before ||
	    peer_cookie(fd) != before)
		return false;
	memset(a, 0, sizeof(*a));
	if (copy.atyp == S5_ATYP_IPV4)
		s5_addr_set_ip4(a, copy.ip, copy.port);
	else
		s5_addr_set_ip6(a, copy.ip, copy.port);
	*seq = copy.seq;
	return true;
}

/* The open tunnelled connection that reports a's IP, the latest one; -1
 * for none. The wildcard (an unbound socket) takes the latest of any whose
 * address a socket of its family can say. A scan, but only of a listen()
 * or a bind() to a specific address. */
static int
listen_match(const struct s5_addr *a)
{
	int fd, top = __atomic_load_n(&listen_conn_top, __ATOMIC_ACQUIRE), best = -1;
	uint64_t seq, best_seq = 0;
	struct s5_addr r;
	bool any = listen_is_any(a);

	if (a->atyp == S5_ATYP_DOMAIN)
		return -1;
	for (fd = 0; fd < top; fd++) {
		if (__atomic_load_n(&listen_conns[fd].cookie, __ATOMIC_RELAXED) == 0 ||
		    !listen_conn_get(fd, &r, &seq) || seq <= best_seq)
			continue;
		if (any ? a->atyp == S5_ATYP_IPV6 || r.atyp == S5_ATYP_IPV4 :
		    listen_same_ip(a, r.atyp, r.atyp == S5_ATYP_IPV4 ? r.u.ip4 : r.u.ip6)) {
			best = fd;
			best_seq = seq;
		}
	}
	return best;
}

/* --- Listening sockets --------------------------------------------------- */

/* fd's slot, when fd still names its socket. Lock held. */
static struct listen_slot *
listen_slot_of(int fd)
{
	int i;

	for (i = 0; i < PRELOAD_BIND_MAX; i++)
		if (listen_slots[i].state != LS_FREE && listen_slots[i].fd == fd &&
		    peer_cookie(fd) == listen_slots[i].cookie)
			return &listen_slots[i];
	return NULL;
}

static void
listen_slot_free(struct listen_slot *s)
{
	if (s->proxy >= 0)
		(void)PRELOAD_REAL(close)(s->proxy);
	if (s->spare >= 0)
		(void)PRELOAD_REAL(close)(s->spare);
	memset(s, 0, sizeof(*s));
	s->proxy = s->spare = -1;
	__atomic_sub_fetch(&listen_nslots, 1, __ATOMIC_RELEASE);
}

/* A BOUND slot for fd (replacing fd's own), the slots of closed sockets
 * freed on the way (WAITING and MAKING ones are their threads' to free).
 * NULL when all are taken. Lock held. */
static struct listen_slot *
listen_slot_new(int fd, const struct s5_addr *asked, int family)
{
	struct listen_slot *s, *free_ = NULL;
	uint64_t cookie = peer_cookie(fd);
	int i;

	for (i = 0; i < PRELOAD_BIND_MAX; i++) {
		s = &listen_slots[i];
		if (s->state != LS_FREE && s->state != LS_WAITING && s->state != LS_MAKING &&
		    (s->fd == fd || peer_cookie(s->fd) != s->cookie))
			listen_slot_free(s);
		if (s->state == LS_FREE && free_ == NULL)
			free_ = s;
	}
	if (free_ == NULL || cookie == 0)
		return NULL;
	memset(free_, 0, sizeof(*free_));
	free_->state = LS_BOUND;
	free_->fd = fd;
	free_->cookie = cookie;
	free_->family = family;
	free_->asked = *asked;
	free_->proxy = free_->spare = -1;
	__atomic_add_fetch(&listen_nslots, 1, __ATOMIC_RELEASE);
	return free_;
}

/* fd is bound to a, which a tunnel reports: remember it as BOUND. */
static void
listen_bound(int fd, const struct s5_addr *a, int family)
{
	listen_lock();
	(void)listen_slot_new(fd, a, family);
	listen_unlock();
}

int
bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
	    LISTEN_REAL(listen_real_bind, "bind");
	struct sockaddr_storage ss;
	struct s5_addr a, local;
	socklen_t n;
	int conn, r, saved;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = real(fd, sa, len);
	saved = errno;
	if (r != 0 && saved == EADDRNOTAVAIL && sa != NULL && len >= sizeof(struct sockaddr_in) &&
	    sa->sa_family == AF_INET && __atomic_load_n(&listen_standin_said, __ATOMIC_RELAXED) &&
	    memcmp(&((const struct sockaddr_in *)sa)->sin_addr, listen_v4_standin, 4) == 0 &&
	    policy_socket_type(fd, preload_real.getsockopt) == SOCK_STREAM) {
		preload_log_limited(LOG_LVL_WARN, preload_log_key("bind-standin", ""),
		    "bind() to 192.0.0.8, which getsockname() says of a tunnelled "
		    "IPv4 connection whose proxy reached the target over IPv6: no "
		    "address this socket can announce, so no BIND; use passive mode "
		    "(EADDRNOTAVAIL)");
		errno = saved;
		return r;
	}
	/* The fast path: no tunnel reports an address, or none is asked for. */
	if (__atomic_load_n(&listen_conn_top, __ATOMIC_ACQUIRE) == 0 ||
	    (r != 0 && saved != EADDRNOTAVAIL) ||
	    s5_addr_from_sockaddr(&a, sa, len) != 0 || listen_is_any(&a) ||
	    !preload_init() || (conn = listen_match(&a)) < 0 ||
	    policy_socket_type(fd, preload_real.getsockopt) != SOCK_STREAM) {
		errno = saved;
		return r;
	}
	/* Not this host's address: the tunnel's local one stands in. */
	if (r != 0) {
		if (listen_kernel_name(conn, &local) != 0) {
			errno = saved;
			return -1;
		}
		local.port = a.port;
		if ((n = listen_sockaddr(&local, sa->sa_family, &ss)) == 0) {
			errno = saved;
			return -1;
		}
		if (real(fd, (struct sockaddr *)&ss, n) != 0)
			return -1;
		preload_log(LOG_LVL_DEBUG, "bind: a proxy's address, bound to "
		    "the tunnel's local address until listen() makes it a BIND");
	}
	listen_bound(fd, &a, sa->sa_family);
	errno = saved;
	return 0;
}

/* The BIND's DST.ADDR: conn's destination as the program named it (the
 * name behind a placeholder), port 0. */
static int
listen_dst(int conn, struct s5_addr *dst)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char name[S5_DOMAIN_MAX + 1];

	if (getpeername(conn, (struct sockaddr *)&ss, &len) != 0 ||
	    s5_addr_from_sockaddr(dst, (struct sockaddr *)&ss, len) != 0)
		return -ENOTCONN;
	if (fakedns_in_range(dst) && fakedns_name_of(dst, name, sizeof(name)) &&
	    s5_addr_set_domain(dst, name, strlen(name), 0) != 0)
		return -ENOTCONN;
	dst->port = 0;
	return 0;
}

/* A BND of all zeros says "where you reached me" (RFC 1928 §6 gives no
 * other meaning a client can use): the last hop's address. */
static void
listen_fix_bnd(const struct tunnel *t, int proxy, struct s5_addr *bnd)
{
	const struct preload_hop *h = tunnel_hop(t, preload_cfg.nhops - 1);
	uint16_t port = bnd->port;

	if (!listen_is_any(bnd))
		return;
	if (preload_cfg.nhops == 1) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (preload_real.getpeername(proxy, (struct sockaddr *)&ss, &len) != 0 ||
		    s5_addr_from_sockaddr(bnd, (struct sockaddr *)&ss, len) != 0)
			return;
	} else if (h->proxy.addr.atyp != S5_ATYP_DOMAIN) {
		*bnd = h->proxy.addr;
	} else if (h->has_v4 || h->has_v6) {
		*bnd = h->has_v4 ? h->v4 : h->v6;
	}
	bnd->port = port;
}

/*
 * A poke's end: a TCP socket bound to the listening socket's own address
 * (loopback for the wildcard), port 0, close-on-exec and out of the
 * program's low numbers if it can be. Its descriptor, its own address in
 * *me, and in *to where it connects; -1 (errno) when none can be made.
 */
static int
listen_poke_socket(const struct sockaddr_storage *real, socklen_t len,
    struct sockaddr_storage *to, struct sockaddr_storage *me, socklen_t *melen)
{
	int p;

	*to = *real;
	if (to->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)to;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*me = *to;
		((struct sockaddr_in *)me)->sin_port = 0;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)to;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
		*me = *to;
		((struct sockaddr_in6 *)me)->sin6_port = 0;
	}
	if ((p = socket(me->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* Out of the program's low numbers when the limit allows, as the
	 * BIND's own connection. */
	p = async_fd_raise(p);
	*melen = len;
	if (LISTEN_REAL(listen_real_bind, "bind")(p, (struct sockaddr *)me, len) != 0 ||
	    PRELOAD_REAL(getsockname)(p, (struct sockaddr *)me, melen) != 0) {
		int saved = errno;

		(void)PRELOAD_REAL(close)(p);
		errno = saved;
		return -1;
	}
	return p;
}

/*
 * Wake a waiting accept() or poll(): a connection from a poke's end to the
 * listening socket, once the BIND is over and the socket listens,
 * whichever comes last; its address is recorded (s->poke) before the
 * connect, so accept() knows it for the poke.
 *
 * A blocking listener is poked early, as soon as the BIND is made: its
 * accept() then waits for the second reply itself (accept4()), so a
 * program that polls it beside its control connection (curl) is not told
 * of the server's first words before its data connection. The end of
 * READY's poke is made with the early one (the spare), so that READY needs
 * no descriptor: an accept() that took the early poke waits in the kernel
 * for it. READY pokes only when that happened (early_taken), or when no
 * early poke was made; else the early poke, still queued, is READY's.
 */
static void
listen_poke_due(int fd)
{
	struct sockaddr_storage real, me, to, spare_me, spare_to;
	struct listen_slot *s;
	char dest[S5_ADDR_TEXT_MAX];
	socklen_t len, melen, spare_len = 0;
	int p = -1, spare = -1;
	bool early;

	listen_lock();
	s = listen_slot_of(fd);
	if (s == NULL || !s->listening) {
		listen_unlock();
		return;
	}
	memcpy(dest, s->dest, sizeof(dest));
	len = s->reallen;
	early = s->state == LS_WAITING && s->blocking && !s->poked;
	if (s->state == LS_READY && !s->ready_poked) {
		s->ready_poked = true;
		if (s->poked && !s->early_taken) {
			/* The early poke is still queued: it is READY's. */
			listen_unlock();
			return;
		}
		if (s->spare >= 0) {
			p = s->spare;
			s->spare = -1;
			s->poke = s->spare_addr;
			s->pokelen = s->spare_len;
			to = s->spare_to;
			listen_unlock();
			goto connect;
		}
		s->poked = true;
	} else if (early) {
		s->poked = true;
	} else {
		listen_unlock();
		return;
	}
	real = s->real;
	listen_unlock();

	/* The spare first: with one descriptor to be had, READY's poke
	 * matters more than the early one. */
	if (early)
		spare = listen_poke_socket(&real, len, &spare_to, &spare_me, &spare_len);
	p = listen_poke_socket(&real, len, &to, &me, &melen);
	listen_lock();
	if (listen_slot_of(fd) == s) {
		if (p >= 0) {
			s->poke = me;
			s->pokelen = melen;
		}
		if (spare >= 0 && s->spare < 0) {
			s->spare = spare;
			s->spare_addr = spare_me;
			s->spare_len = spare_len;
			s->spare_to = spare_to;
			spare = -1;
		}
	}
	listen_unlock();
	if (spare >= 0)
		(void)PRELOAD_REAL(close)(spare);
	if (p < 0)
		goto fail;
connect:
	if (preload_real.connect(p, (struct sockaddr *)&to, len) != 0)
		goto fail;
	(void)PRELOAD_REAL(close)(p);
	return;
fail:
	preload_log(LOG_LVL_ERROR, "BIND for %s: cannot wake the listening "
	    "socket: %s", dest, preload_errno_name(errno));
	if (p >= 0)
		(void)PRELOAD_REAL(close)(p);
	/* No early poke after all: READY pokes by itself (from the spare
	 * when there is one, else from a socket it must find then), and if
	 * READY came meanwhile and left it to the early poke, now. */
	if (early) {
		bool again = false;

		listen_lock();
		if (listen_slot_of(fd) == s && !s->early_taken) {
			s->poked = false;
			again = s->state == LS_READY && s->ready_poked;
			s->ready_poked = false;
		}
		listen_unlock();
		if (again)
			listen_poke_due(fd);
	}
}

/* The slot's BIND, up to the second reply: its errno (0: the peer is in),
 * or -1 when the program closed the socket. */
static int
listen_await(struct listen_slot *s, long long deadline)
{
	struct pollfd pfd = { .fd = s->proxy, .events = POLLIN };
	uint8_t in[S5_MSG_MAX];
	long long left;
	size_t used, want;
	ssize_t n;
	int r;

	for (;;) {
		if (peer_cookie(s->fd) != s->cookie)
			return -1;
		if ((left = deadline - tunnel_now_ms()) <= 0)
			return ETIMEDOUT;
		r = PRELOAD_REAL(poll)(&pfd, 1, left < PRELOAD_BIND_CHECK_MS ?
		    (int)left : PRELOAD_BIND_CHECK_MS);
		if (r < 0 && errno != EINTR)
			return errno;
		if (r <= 0)
			continue;
		want = s5_client_want(&s->c);
		n = PRELOAD_REAL(recv)(s->proxy, in, want < sizeof(in) ? want : sizeof(in),
		    MSG_DONTWAIT);
		if (n == 0)
			return ECONNABORTED;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (n < 0)
			return errno;
		r = s5_client_step(&s->c, in, (size_t)n, &used);
		if (r == S5C_DONE)
			return 0;
		if (r != S5C_WANT_READ)
			return s5_client_errno(&s->c, r);
	}
}

/* The watcher of one BIND (listen_slots[arg]); a WAITING slot is its own. */
static void *
listen_watch(void *arg)
{
	struct listen_slot *s = &listen_slots[(uintptr_t)arg];
	int err = listen_await(s, tunnel_now_ms() + PRELOAD_BIND_WAIT_MS), fd;
	char dest[S5_ADDR_TEXT_MAX];

	listen_lock();
	if (err < 0) {
		listen_slot_free(s);
		listen_unlock();
		return NULL;
	}
	s->err = err;
	if (err == 0)
		s->peer = s->c.reply.bnd;
	s->state = LS_READY;
	fd = s->fd;
	memcpy(dest, s->dest, sizeof(dest));
	listen_unlock();
	if (err == 0)
		preload_log(LOG_LVL_TRACE, "BIND for %s: peer connected", dest);
	else
		preload_log(LOG_LVL_INFO, "BIND for %s: failed: %s", dest,
		    preload_errno_name(err));
	listen_poke_due(fd);
	return NULL;
}

static int
listen_watch_start(struct listen_slot *s)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PRELOAD_BIND_STACK_BYTES);
	r = pthread_create(&th, &attr, listen_watch, (void *)(uintptr_t)(s - listen_slots));
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

/* One line for a BIND that could not be made: the program sees only errno. */
static void
listen_refused(const char *dest, int err, int rep)
{
	char why[24] = "";

	if (rep >= 0)
		snprintf(why, sizeof(why), ", reply 0x%02x", (unsigned)rep);
	preload_log(LOG_LVL_ERROR, "listen: BIND for %s via %s refused: %s (%s%s)",
	    dest, preload_cfg.chain_text, strerror(err), preload_errno_name(err), why);
}

/* The BIND toward conn's destination on a new connection to the chain:
 * 0 with *proxy and t (its first reply) set, or -errno (logged). */
static int
listen_request(int conn, struct tunnel *t, int *proxy, char *dest, size_t cap)
{
	struct s5_addr dst;
	int p, domain, r;

	if ((r = listen_dst(conn, &dst)) != 0)
		return r;
	if (s5_addr_format(&dst, dest, cap) < 0)
		snprintf(dest, cap, "?");
	tunnel_init(t, &dst);
	t->cmd = S5_CMD_BIND;
	/* Through the alternative the connection itself took: an FTP server
	 * wants its PORT address on the control connection's host. */
	tunnel_follow(t, conn);
	/* BIND is SOCKS5's: an HTTP or SOCKS4 last hop is refused as a
	 * proxy refuses the command (reply 07). */
	if (preload_cfg.proxy_invalid || preload_cfg.nhops == 0 ||
	    preload_cfg.hops[preload_cfg.nhops - 1][0].proxy.proto != S5_PROTO_SOCKS5) {
		listen_refused(dest, ECONNREFUSED, -1);
		return -ECONNREFUSED;
	}
	if ((r = tunnel_all_down(t)) < 0) {
		listen_refused(dest, -r, -1);
		return r;
	}
	domain = tunnel_family(t);
	if ((p = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* Out of the program's low numbers, as async.c's copies. */
	p = async_fd_raise(p);
	if ((r = tunnel_request(p, domain, t)) != 0) {
		listen_refused(dest, -r, t->rep);
		(void)PRELOAD_REAL(close)(p);
		return r;
	}
	/* The last hop's machine, done with the first reply. */
	(void)s5_client_await_peer(&t->c);
	*proxy = p;
	return 0;
}

static bool
listen_connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int saved = errno;
	bool yes = preload_real.getpeername(fd, (struct sockaddr *)&ss, &len) == 0;

	errno = saved;
	return yes;
}

/*
 * Make the BIND of fd's BOUND slot, when the tunnel that reports its
 * address is still open: WAITING, or FAILED with the errno for listen();
 * with no such tunnel any more the slot goes and fd stays local.
 */
static void
listen_make(int fd)
{
	struct listen_slot *s;
	struct s5_addr a;
	struct tunnel t;
	char dest[S5_ADDR_TEXT_MAX], bnd[S5_ADDR_TEXT_MAX];
	int conn, proxy = -1, r;

	listen_lock();
	if ((s = listen_slot_of(fd)) == NULL || s->state != LS_BOUND) {
		listen_unlock();
		return;
	}
	s->state = LS_MAKING;
	a = s->asked;
	listen_unlock();

	/* A connected socket was bound for its source address, not to listen. */
	conn = listen_connected(fd) ? -1 : listen_match(&a);
	r = conn < 0 ? 1 : listen_request(conn, &t, &proxy, dest, sizeof(dest));

	listen_lock();
	if (r == 1) {
		listen_slot_free(s);
	} else if (r < 0) {
		s->state = LS_FAILED;
		s->err = -r;
	} else {
		s->proxy = proxy;
		s->c = t.c;
		s->bnd = t.c.reply.bnd;
		listen_fix_bnd(&t, proxy, &s->bnd);
		memcpy(s->dest, dest, sizeof(s->dest));
		if ((r = listen_watch_start(s)) != 0) {
			(void)PRELOAD_REAL(close)(proxy);
			s->proxy = -1;
			s->state = LS_FAILED;
			s->err = -r;
			listen_refused(dest, -r, -1);
		} else {
			s->state = LS_WAITING;
			a = s->bnd;
		}
	}
	listen_unlock();
	if (r == 0 && s5_addr_format(&a, bnd, sizeof(bnd)) > 0)
		preload_log(LOG_LVL_TRACE, "listen: BIND for %s via %s: proxy listens at %s",
		    dest, preload_cfg.chain_text, bnd);
}

/* A socket the rule might apply to: the tunnels know addresses, or some
 * socket was bound to one. */
static bool
listen_may(void)
{
	return __atomic_load_n(&listen_conn_top, __ATOMIC_ACQUIRE) != 0 ||
	    __atomic_load_n(&listen_nslots, __ATOMIC_ACQUIRE) != 0;
}

bool
listen_sockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct listen_slot *s;
	struct sockaddr_storage ss;
	struct s5_addr a, k;
	uint8_t ip4[4];
	uint64_t seq;
	socklen_t n;
	int state = LS_FREE;

	if (len == NULL || !listen_may())
		return false;
	if (__atomic_load_n(&listen_nslots, __ATOMIC_ACQUIRE) > 0) {
		/* A socket bound for a BIND says the proxy's address: the
		 * program may announce it before it listens (curl does). */
		listen_make(fd);
		listen_lock();
		if ((s = listen_slot_of(fd)) != NULL) {
			state = s->state;
			a = state >= LS_WAITING ? s->bnd : s->asked;
		}
		listen_unlock();
		/* Not made: the address asked for, with the kernel's port. */
		if (state != LS_FREE && state < LS_WAITING) {
			if (listen_kernel_name(fd, &k) != 0)
				return false;
			a.port = k.port;
		}
	}
	if (state == LS_FREE) {
		if (!listen_conn_get(fd, &a, &seq))
			return false;
		/* The latest asked wins a tie in listen_match(). */
		__atomic_store_n(&listen_conns[fd].seq,
		    __atomic_add_fetch(&listen_seq, 1, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
		if (a.atyp == S5_ATYP_IPV6 && memcmp(a.u.ip6, listen_v4mapped, 12) == 0) {
			memcpy(ip4, a.u.ip6 + 12, sizeof(ip4));
			s5_addr_set_ip4(&a, ip4, a.port);
		}
		if (a.atyp == S5_ATYP_IPV6 && listen_family(fd) == AF_INET) {
			if (!__atomic_exchange_n(&listen_standin_said, true, __ATOMIC_RELAXED))
				preload_log(LOG_LVL_INFO, "getsockname() of a tunnelled IPv4 "
				    "connection says 192.0.0.8: its proxy reached the target "
				    "over IPv6, which this socket cannot say; a program that "
				    "announces it (active FTP) cannot be reached there");
			s5_addr_set_ip4(&a, listen_v4_standin, a.port);
		}
	}
	if ((n = listen_sockaddr(&a, listen_family(fd), &ss)) == 0)
		return false;
	/* Truncated as the kernel truncates; *len says the full size. */
	if (sa != NULL && *len > 0)
		memcpy(sa, &ss, n < *len ? n : *len);
	*len = n;
	return true;
}

int
listen(int fd, int backlog)
{
	int (*real)(int, int) = LISTEN_REAL(listen_real_listen, "listen");
	struct listen_slot *s;
	struct s5_addr a;
	int state = LS_FREE, err = 0, saved = errno;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!listen_may() || !preload_init())
		return real(fd, backlog);
	listen_lock();
	if ((s = listen_slot_of(fd)) != NULL)
		state = s->state;
	listen_unlock();
	/* Bound before the tunnel was open, or not bound at all (port 0:
	 * bound to the wildcard, a socket has its port): the rule applies now. */
	if (state == LS_FREE) {
		if (listen_kernel_name(fd, &a) != 0 || (listen_is_any(&a) && a.port != 0) ||
		    listen_match(&a) < 0 ||
		    policy_socket_type(fd, preload_real.getsockopt) != SOCK_STREAM)
			return real(fd, backlog);
		listen_bound(fd, &a, listen_family(fd));
	}
	listen_make(fd);
	listen_lock();
	state = LS_FREE;
	if ((s = listen_slot_of(fd)) != NULL) {
		state = s->state;
		err = s->err;
	}
	listen_unlock();
	if (state == LS_FAILED) {
		errno = err;
		return -1;
	}
	if (real(fd, backlog) != 0)
		return -1;
	/* Whatever the state: a BIND another thread is still making finds
	 * the socket listening when its second reply comes. */
	if (state != LS_FREE) {
		listen_lock();
		if ((s = listen_slot_of(fd)) != NULL && !s->listening) {
			int fl = PRELOAD_REAL(fcntl)(fd, F_GETFL);

			/* The kernel's name now: an unbound socket has one. */
			s->reallen = sizeof(s->real);
			s->listening = PRELOAD_REAL(getsockname)(fd,
			    (struct sockaddr *)&s->real, &s->reallen) == 0;
			s->blocking = fl >= 0 && !(fl & O_NONBLOCK);
		}
		listen_unlock();
		listen_poke_due(fd);
	}
	errno = saved;
	return 0;
}

static bool
listen_same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	struct s5_addr x, y;

	return alen > 0 && blen > 0 &&
	    s5_addr_from_sockaddr(&x, (const struct sockaddr *)a, alen) == 0 &&
	    s5_addr_from_sockaddr(&y, (const struct sockaddr *)b, blen) == 0 &&
	    x.port == y.port && listen_same_ip(&x, y.atyp,
	    y.atyp == S5_ATYP_IPV4 ? y.u.ip4 : y.u.ip6);
}

/* The proxy connection of a READY slot as the program's new descriptor:
 * its number, or -1 with errno. Lock held. */
static int
listen_hand_over(struct listen_slot *s, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct sockaddr_storage ss;
	socklen_t n;
	int nfd, fl, err = s->err;

	s->state = LS_ACCEPTED;
	if (err != 0) {
		(void)PRELOAD_REAL(close)(s->proxy);
		s->proxy = -1;
		errno = err;
		return -1;
	}
	/* The lowest free number, as accept() gives; with none free (the
	 * poke is taken: no second chance), the proxy connection's own. */
	nfd = PRELOAD_REAL(fcntl)(s->proxy, (flags & SOCK_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	if (nfd >= 0) {
		(void)PRELOAD_REAL(close)(s->proxy);
	} else {
		nfd = s->proxy;
		if (!(flags & SOCK_CLOEXEC))
			(void)PRELOAD_REAL(fcntl)(nfd, F_SETFD, 0);
	}
	s->proxy = -1;
	if ((fl = PRELOAD_REAL(fcntl)(nfd, F_GETFL)) >= 0)
		(void)PRELOAD_REAL(fcntl)(nfd, F_SETFL, (flags & SOCK_NONBLOCK) ?
		    fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	n = listen_sockaddr(&s->peer, s->family, &ss);
	if (n > 0)
		peer_remember(nfd, (struct sockaddr *)&ss, n, false);
	listen_note(nfd, &s->bnd);
	if (listen_family(nfd) != s->family)
		peer_swapped(nfd, s->family);
	if (sa != NULL && len != NULL) {
		if (*len > 0)
			memcpy(sa, &ss, n < *len ? n : *len);
		*len = n;
	}
	return nfd;
}

int
accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	int (*real)(int, struct sockaddr *, socklen_t *, int) =
	    LISTEN_REAL(listen_real_accept4, "accept4");
	struct listen_slot *s;
	struct sockaddr_storage from;
	socklen_t flen;
	int c, r, saved = errno;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (__atomic_load_n(&listen_nslots, __ATOMIC_ACQUIRE) == 0)
		return real(fd, sa, len, flags);
	listen_lock();
	s = listen_slot_of(fd);
	r = s != NULL && s->state >= LS_WAITING;
	listen_unlock();
	if (!r)
		return real(fd, sa, len, flags);
	/* Each round takes one connection the kernel queued; only the poke
	 * ends the loop with the BIND, the rest are strangers. */
	for (;;) {
		flen = sizeof(from);
		if ((c = real(fd, (struct sockaddr *)&from, &flen, SOCK_CLOEXEC)) < 0)
			return -1;
		(void)PRELOAD_REAL(close)(c);
		listen_lock();
		s = listen_slot_of(fd);
		/* Poked early (a blocking listener) and the second reply not
		 * in: it is poked again from the spare when the reply is in
		 * (the watcher sees early_taken under this lock), and the
		 * kernel's accept() waits for that, so signals (EINTR or a
		 * restart, as the handler asked) and SO_RCVTIMEO act as on
		 * any listener; a listener made non-blocking since says
		 * EAGAIN. */
		if (s != NULL && s->state == LS_WAITING &&
		    listen_same_sockaddr(&from, flen, &s->poke, s->pokelen)) {
			s->early_taken = true;
			listen_unlock();
			r = PRELOAD_REAL(fcntl)(fd, F_GETFL);
			if (r < 0 || (r & O_NONBLOCK)) {
				errno = EAGAIN;
				return -1;
			}
			continue;
		}
		if (s != NULL && s->state == LS_READY &&
		    listen_same_sockaddr(&from, flen, &s->poke, s->pokelen)) {
			r = listen_hand_over(s, sa, len, flags);
			listen_unlock();
			if (r >= 0)
				errno = saved;
			return r;
		}
		listen_unlock();
	}
}

int
accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	int (*real)(int, struct sockaddr *, socklen_t *) =
	    LISTEN_REAL(listen_real_accept, "accept");

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (__atomic_load_n(&listen_nslots, __ATOMIC_ACQUIRE) == 0)
		return real(fd, sa, len);
	return accept4(fd, sa, len, 0);
}
