/*
 * supervisor_dns.c: the resolver a supervised program's own DNS queries
 * reach under remote resolution (socks5h).
 *
 * Go's resolver and static C libraries read /etc/resolv.conf and talk to
 * port 53 themselves. The supervisor connects such a socket (UDP or TCP, to
 * any address, port 53) to this responder instead (supervisor.c), so no
 * query leaves the host: it listens on 127.0.0.1 (and ::1 when the host has
 * it), UDP and TCP, on ephemeral ports, inside the launcher's event loop.
 *
 * Answers are dnsanswer.c's, the library's too. A name SOCKSIFY_EXCLUDE
 * lists is resolved locally, and with SOCKSIFY_DNS set a type we do not
 * answer is asked of it through the chain (dnsanswer_local()), in a thread
 * of its own (it may wait on the network; at most SUP_DNS_LOCAL at once,
 * beyond that SERVFAIL or REFUSED), which sends the reply itself.
 *
 * Only the sockets the supervisor sent to it are answered (supdns_allow():
 * their local addresses, SUP_DNS_ALLOW_SETS x SUP_DNS_ALLOW_WAYS kept, the
 * oldest of a port's set replaced): another local user finds the port but
 * learns no names of the tree's and fills no table of it.
 *
 * TCP: a two-byte length, then the message, any number per connection, at
 * most SUP_DNS_CONNS connections (then one silent for SUP_DNS_BUSY_MS
 * makes room for a new one; with none, the listeners wait until one
 * ends, the rest in their backlog), each closed after SUP_DNS_IDLE_MS
 * without a query or when a reply would block.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dns.h"
#include "preload.h"
#include "supervisor.h"

#define SUP_DNS_CONNS		128		/* TCP conversations at once */
#define SUP_DNS_BUSY_MS		1000		/* full: one silent this long makes room */
#define SUP_DNS_IDLE_MS		10000		/* a TCP conversation's silence */
#define SUP_DNS_QUERY_MAX	1024		/* bytes of one query over TCP */
#define SUP_DNS_BATCH		64		/* datagrams or accepts per wakeup */
#define SUP_DNS_ALLOW_SETS	512		/* local addresses answered: sets by port, */
#define SUP_DNS_ALLOW_WAYS	8		/* ... each this many, the oldest replaced */
#define SUP_DNS_ALLOW_MS	600000		/* an allowed socket unheard of this long is forgotten */
#define SUP_DNS_LOCAL		8		/* local lookups at once */
#define SUP_DNS_LOCAL_STACK	(256u << 10)	/* a lookup thread's stack */

enum { DNS_UDP4, DNS_UDP6, DNS_TCP4, DNS_TCP6, DNS_SOCKETS };
#define DNS_CONN_BASE		16		/* event index of conns[0] */

/* A socket the supervisor sent to us, by its local address. */
struct supdns_who {
	uint16_t port;			/* 0: empty */
	uint8_t atyp;
	uint8_t ip[16];
	uint64_t seq;			/* when last allowed: the oldest goes */
	long long heard_ms;		/* allowed or answered then */
};

struct supdns_conn {
	int fd;				/* -1: free */
	long long last;
	size_t have;
	uint8_t buf[2 + SUP_DNS_QUERY_MAX];
};

static struct {
	int ep;
	int fd[DNS_SOCKETS];
	uint16_t port[DNS_SOCKETS];
	struct supdns_conn conns[SUP_DNS_CONNS];
	struct supdns_who allow[SUP_DNS_ALLOW_SETS][SUP_DNS_ALLOW_WAYS];
	uint64_t allow_seq;
	bool listening_paused;			/* out of descriptors or conversations */
} dns = { .ep = -1, .fd = { -1, -1, -1, -1 } };

/* A socket address as the responder sees its sender: IPv4 for ::ffff:a.b.c.d. */
static bool
supdns_sender(const struct sockaddr_storage *ss, socklen_t len, struct s5_addr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (s5_addr_from_sockaddr(a, (const struct sockaddr *)ss, len) != 0 || a->port == 0)
		return false;
	if (a->atyp == S5_ATYP_IPV6 && memcmp(a->u.ip6, mapped, sizeof(mapped)) == 0) {
		a->atyp = S5_ATYP_IPV4;
		memmove(a->u.ip4, a->u.ip6 + 12, 4);
	}
	return true;
}

static size_t
supdns_ip_len(uint8_t atyp)
{
	return atyp == S5_ATYP_IPV4 ? 4 : 16;
}

/*
 * Sockets are kept by port in sets of SUP_DNS_ALLOW_WAYS, so that many at
 * once (a Go program's parallel lookups) do not push each other out: a
 * new one takes a free way, or the one allowed longest ago (its socket
 * most likely closed).
 */
void
supdns_allow(const struct sockaddr_storage *ss, socklen_t len)
{
	struct supdns_who *set, *w = NULL;
	struct s5_addr a;
	size_t i;

	if (!supdns_sender(ss, len, &a))
		return;
	set = dns.allow[a.port % SUP_DNS_ALLOW_SETS];
	for (i = 0; i < SUP_DNS_ALLOW_WAYS; i++) {
		if (set[i].port == a.port && set[i].atyp == a.atyp &&
		    memcmp(set[i].ip, &a.u, supdns_ip_len(a.atyp)) == 0) {
			w = &set[i];
			break;
		}
		if (w == NULL || (w->port != 0 && (set[i].port == 0 || set[i].seq < w->seq)))
			w = &set[i];
	}
	w->port = a.port;
	w->atyp = a.atyp;
	memcpy(w->ip, &a.u, supdns_ip_len(a.atyp));
	w->seq = ++dns.allow_seq;
	w->heard_ms = tunnel_now_ms();
}

/* A loopback address: where a socket bound to the wildcard sends us from. */
static bool
supdns_loopback(const struct s5_addr *a)
{
	static const uint8_t lo6[16] = { [15] = 1 };

	return a->atyp == S5_ATYP_IPV4 ? a->u.ip4[0] == 127 :
	    memcmp(a->u.ip6, lo6, sizeof(lo6)) == 0;
}

/* The query comes from a socket the supervisor sent to us (and heard of
 * within SUP_DNS_ALLOW_MS: one closed long ago is not, whoever took its
 * port since). */
static bool
supdns_allowed(const struct sockaddr_storage *ss, socklen_t len)
{
	static const uint8_t any[16];
	struct supdns_who *set;
	struct s5_addr a;
	long long now = tunnel_now_ms();
	size_t i;

	if (!supdns_sender(ss, len, &a))
		return false;
	set = dns.allow[a.port % SUP_DNS_ALLOW_SETS];
	for (i = 0; i < SUP_DNS_ALLOW_WAYS; i++) {
		if (set[i].port != a.port || now - set[i].heard_ms > SUP_DNS_ALLOW_MS)
			continue;
		/* A socket bound to the wildcard address (as a send binds an
		 * unbound one) sends from a loopback address of its family,
		 * or an IPv6 one (dual-stack) from IPv4's: its port says
		 * enough. */
		if ((memcmp(set[i].ip, any, supdns_ip_len(set[i].atyp)) == 0 &&
		    (set[i].atyp == a.atyp || set[i].atyp == S5_ATYP_IPV6) && supdns_loopback(&a)) ||
		    (set[i].atyp == a.atyp && memcmp(set[i].ip, &a.u, supdns_ip_len(a.atyp)) == 0)) {
			set[i].heard_ms = now;
			return true;
		}
	}
	return false;
}

static int
supdns_watch(int fd, uint32_t idx)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SUP_EV(SUP_EV_DNS, 0, idx) };

	return epoll_ctl(dns.ep, EPOLL_CTL_ADD, fd, &ev);
}

/* One socket of ours on loopback, its port in *port: the descriptor or -1. */
static int
supdns_socket(int family, int type, uint16_t *port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*s4);
	} else {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		len = sizeof(*s6);
	}
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    (type == SOCK_STREAM && listen(fd, SUP_DNS_CONNS) != 0) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET ? s4->sin_port : s6->sin6_port);
	return fd;
}

int
supdns_start(int ep)
{
	static const int family[DNS_SOCKETS] = { AF_INET, AF_INET6, AF_INET, AF_INET6 };
	static const int type[DNS_SOCKETS] = { SOCK_DGRAM, SOCK_DGRAM, SOCK_STREAM, SOCK_STREAM };
	size_t i;

	dns.ep = ep;
	for (i = 0; i < SUP_DNS_CONNS; i++)
		dns.conns[i].fd = -1;
	for (i = 0; i < DNS_SOCKETS; i++) {
		dns.fd[i] = supdns_socket(family[i], type[i], &dns.port[i]);
		if (dns.fd[i] >= 0 && supdns_watch(dns.fd[i], (uint32_t)i) != 0) {
			close(dns.fd[i]);
			dns.fd[i] = -1;
		}
	}
	/* IPv6 loopback may be absent; IPv4's may not. */
	return dns.fd[DNS_UDP4] >= 0 && dns.fd[DNS_TCP4] >= 0 ? 0 : -1;
}

int
supdns_addr(int domain, int type, bool v6only, struct sockaddr_storage *ss,
    socklen_t *len)
{
	int v4 = type == SOCK_STREAM ? DNS_TCP4 : DNS_UDP4;
	int v6 = type == SOCK_STREAM ? DNS_TCP6 : DNS_UDP6;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (domain == AF_INET && dns.fd[v4] >= 0) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(dns.port[v4]);
		*len = sizeof(*s4);
		return 0;
	}
	if (domain != AF_INET6)
		return -EAFNOSUPPORT;
	s6->sin6_family = AF_INET6;
	if (dns.fd[v6] >= 0) {
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(dns.port[v6]);
	} else if (!v6only && dns.fd[v4] >= 0) {
		s6->sin6_addr.s6_addr[10] = 0xff;	/* ::ffff:127.0.0.1 */
		s6->sin6_addr.s6_addr[11] = 0xff;
		s6->sin6_addr.s6_addr[12] = 127;
		s6->sin6_addr.s6_addr[15] = 1;
		s6->sin6_port = htons(dns.port[v4]);
	} else {
		return -EAFNOSUPPORT;
	}
	*len = sizeof(*s6);
	return 0;
}

/* A lookup of an excluded name, handed to its own thread. */
struct supdns_local {
	uint8_t q[SUP_DNS_QUERY_MAX];
	size_t qlen;
	int fd;				/* ours to close: a dup */
	bool tcp;
	struct sockaddr_storage to;	/* UDP: where the query came from */
	socklen_t tolen;
};

static int supdns_local_running;

static void *
supdns_local_main(void *arg)
{
	struct supdns_local *l = arg;
	/* Over TCP, SOCKSIFY_DNS's answer may take all TCP allows. */
	size_t cap = l->tcp ? DNS_TCP_MAX : DNS_UDP_MAX, len = 0;
	uint8_t *out = malloc(2 + cap);

	if (out != NULL)
		len = dnsanswer_local(l->q, l->qlen, out + 2, cap);
	if (len > 0 && l->tcp) {
		out[0] = (uint8_t)(len >> 8);
		out[1] = (uint8_t)len;
		(void)send(l->fd, out, len + 2, MSG_NOSIGNAL);
	} else if (len > 0) {
		(void)sendto(l->fd, out + 2, len, MSG_NOSIGNAL, (struct sockaddr *)&l->to,
		    l->tolen);
	}
	free(out);
	close(l->fd);
	free(l);
	__atomic_sub_fetch(&supdns_local_running, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Resolve q (an A/AAAA query of an excluded name) locally, replying on fd
 * (to, for UDP) from a thread: true when that thread took it. */
static bool
supdns_local(const uint8_t *q, size_t qlen, int fd, const struct sockaddr_storage *to,
    socklen_t tolen)
{
	struct supdns_local *l;
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	bool ok;

	if (qlen > sizeof(l->q) ||
	    __atomic_load_n(&supdns_local_running, __ATOMIC_ACQUIRE) >= SUP_DNS_LOCAL ||
	    (l = calloc(1, sizeof(*l))) == NULL)
		return false;
	memcpy(l->q, q, qlen);
	l->qlen = qlen;
	l->tcp = to == NULL;
	if (to != NULL) {
		l->to = *to;
		l->tolen = tolen;
	}
	if ((l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(l);
		return false;
	}
	__atomic_add_fetch(&supdns_local_running, 1, __ATOMIC_ACQ_REL);
	/* The launcher's signals are for its own thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ok = pthread_attr_init(&attr) == 0 &&
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	    pthread_attr_setstacksize(&attr, SUP_DNS_LOCAL_STACK) == 0 &&
	    pthread_create(&th, &attr, supdns_local_main, l) == 0;
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ok) {
		close(l->fd);
		free(l);
		__atomic_sub_fetch(&supdns_local_running, 1, __ATOMIC_RELEASE);
	}
	return ok;
}

/*
 * The reply to query q into out: its length, 0 for none. A name
 * SOCKSIFY_EXCLUDE lists goes to a lookup thread that replies on fd itself
 * (to, or TCP when NULL), and gets 0 here; without fd (-1), SERVFAIL.
 */
static size_t
supdns_serve(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap, int fd,
    const struct sockaddr_storage *to, socklen_t tolen)
{
	bool local;
	size_t n = dnsanswer(q, qlen, out, cap, fd >= 0 ? &local : NULL);

	if (n > 0 || fd < 0 || !local || supdns_local(q, qlen, fd, to, tolen))
		return n;
	return dnsanswer(q, qlen, out, cap, NULL);	/* SERVFAIL: no thread for it */
}

size_t
supdns_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	return supdns_serve(q, qlen, out, cap, -1, NULL, 0);
}

static void
supdns_udp(int fd)
{
	uint8_t q[DNS_UDP_MAX * 2], out[DNS_UDP_MAX];
	struct sockaddr_storage from;
	socklen_t flen;
	ssize_t n;
	size_t r;
	int i;

	for (i = 0; i < SUP_DNS_BATCH; i++) {
		flen = sizeof(from);
		n = recvfrom(fd, q, sizeof(q), MSG_DONTWAIT | MSG_TRUNC,
		    (struct sockaddr *)&from, &flen);
		if (n < 0)
			return;
		if ((size_t)n > sizeof(q) || !supdns_allowed(&from, flen))
			continue;	/* larger than any question; not ours to answer */
		if ((r = supdns_serve(q, (size_t)n, out, sizeof(out), fd, &from, flen)) > 0)
			(void)sendto(fd, out, r, MSG_DONTWAIT | MSG_NOSIGNAL,
			    (struct sockaddr *)&from, flen);
	}
}

/* Stop (or start again) watching the TCP listeners. */
static void
supdns_pause(bool pause)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int i;

	if (pause == dns.listening_paused)
		return;
	dns.listening_paused = pause;
	for (i = DNS_TCP4; i <= DNS_TCP6; i++) {
		if (dns.fd[i] < 0)
			continue;
		ev.data.u64 = SUP_EV(SUP_EV_DNS, 0, (uint32_t)i);
		(void)epoll_ctl(dns.ep, pause ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, dns.fd[i], &ev);
	}
}

static void
supdns_close(struct supdns_conn *c)
{
	(void)epoll_ctl(dns.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	/* Room again: a listener paused while all were busy takes the next
	 * (paused for want of descriptors, it may pause again). */
	supdns_pause(false);
}

static void
supdns_accept(int lfd)
{
	struct supdns_conn *c, *oldest;
	struct sockaddr_storage peer;
	socklen_t plen;
	int i, fd;
	size_t k;

	for (i = 0; i < SUP_DNS_BATCH; i++) {
		/* A free conversation first: else (for the connection that
		 * woke us; the listener says again if more wait) one silent
		 * for a second makes room, and with none the listeners wait
		 * (the backlog holds the rest) until one ends. */
		for (k = 0, c = NULL, oldest = &dns.conns[0]; k < SUP_DNS_CONNS; k++) {
			if (dns.conns[k].fd < 0) {
				c = &dns.conns[k];
				break;
			}
			if (dns.conns[k].last < oldest->last)
				oldest = &dns.conns[k];
		}
		if (c == NULL && i > 0)
			return;
		if (c == NULL && tunnel_now_ms() - oldest->last < SUP_DNS_BUSY_MS) {
			supdns_pause(true);
			return;
		}
		plen = sizeof(peer);
		fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM)) {
			/* Out of descriptors: the listener would be ready forever.
			 * Watch it again at the next sweep. */
			supdns_pause(true);
			return;
		}
		if (fd < 0)
			return;
		if (!supdns_allowed(&peer, plen)) {
			close(fd);
			continue;
		}
		/* Room made only for one of the tree's. */
		if (c == NULL) {
			supdns_close(oldest);
			c = oldest;
		}
		c->fd = fd;
		c->have = 0;
		c->last = tunnel_now_ms();
		if (supdns_watch(fd, DNS_CONN_BASE + (uint32_t)(c - dns.conns)) != 0) {
			close(fd);
			c->fd = -1;
		}
	}
}

/* A TCP conversation: every whole query in the buffer gets its reply. */
static void
supdns_conn(struct supdns_conn *c)
{
	uint8_t out[2 + DNS_UDP_MAX * 2];
	size_t qlen, r;
	ssize_t n;

	n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		supdns_close(c);
		return;
	}
	if (n < 0)
		return;
	c->have += (size_t)n;
	c->last = tunnel_now_ms();
	while (c->have >= 2) {
		qlen = (size_t)c->buf[0] << 8 | c->buf[1];
		if (qlen > SUP_DNS_QUERY_MAX) {
			supdns_close(c);
			return;
		}
		if (c->have < 2 + qlen)
			return;
		r = supdns_serve(c->buf + 2, qlen, out + 2, sizeof(out) - 2, c->fd, NULL, 0);
		if (r > 0) {
			out[0] = (uint8_t)(r >> 8);
			out[1] = (uint8_t)r;
			if (send(c->fd, out, r + 2, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(r + 2)) {
				supdns_close(c);
				return;
			}
		}
		memmove(c->buf, c->buf + 2 + qlen, c->have - 2 - qlen);
		c->have -= 2 + qlen;
	}
}

void
supdns_pump(void)
{
	if (dns.ep < 0)
		return;
	if (dns.fd[DNS_UDP4] >= 0)
		supdns_udp(dns.fd[DNS_UDP4]);
	if (dns.fd[DNS_UDP6] >= 0)
		supdns_udp(dns.fd[DNS_UDP6]);
}

void
supdns_event(uint32_t idx, uint32_t events)
{
	(void)events;
	if (idx == DNS_UDP4 || idx == DNS_UDP6)
		supdns_udp(dns.fd[idx]);
	else if (idx == DNS_TCP4 || idx == DNS_TCP6)
		supdns_accept(dns.fd[idx]);
	else if (idx >= DNS_CONN_BASE && idx < DNS_CONN_BASE + SUP_DNS_CONNS &&
	    dns.conns[idx - DNS_CONN_BASE].fd >= 0)
		supdns_conn(&dns.conns[idx - DNS_CONN_BASE]);
}

void
supdns_sweep(long long now_ms)
{
	size_t i;

	if (dns.ep < 0)
		return;		/* never started (socks5://): nothing of ours */
	supdns_pause(false);
	for (i = 0; i < SUP_DNS_CONNS; i++)
		if (dns.conns[i].fd >= 0 && now_ms - dns.conns[i].last > SUP_DNS_IDLE_MS)
			supdns_close(&dns.conns[i]);
}
