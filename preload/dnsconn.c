/*
 * dnsconn.c: a program's own DNS over TCP under remote resolution, answered
 * here (CONTRACT.md, "own DNS under socks5h"). `dig +tcp`, and resolvers
 * that retry over TCP after a truncated answer, connect() a TCP socket to
 * port 53 of their nameserver; tunnelled, the query would reach whatever
 * resolver the proxy's host uses, and the name would not map back to a
 * placeholder.
 *
 *   connect()   connect.c hands us a TCP socket to port 53 (any address,
 *               excluded or not). It becomes one end of a socketpair
 *               (AF_UNIX, SOCK_STREAM), dup3()ed onto the program's
 *               descriptor with its FD_CLOEXEC and O_NONBLOCK; the other
 *               end is ours (async_fd_raise(): above
 *               PRELOAD_ASYNC_COPY_FD_MIN, non-blocking). connect() says 0:
 *               the socket is connected at once, writable, SO_ERROR 0.
 *   a write     the write-side hooks (write, writev, send, sendto,
 *               sendmsg) call dnsconn_pump() after the program's bytes went
 *               into the pair: we read what is there, and answer every
 *               complete message (a two-byte length, then the query: RFC
 *               1035 §4.2.2) with dnsanswer.c's reply, written back with
 *               its length. It is readable before the write returns, so
 *               poll, epoll and a blocking read see it as a fast server's.
 *               Complete queries are taken before anything is given up
 *               on, so a buffer full of pipelined ones (RFC 7766) is
 *               answered, every one. An answer the pair cannot take yet
 *               is held, and the queries behind it wait for the
 *               program's next read (the read-side hooks pump too); past
 *               DNSCONN_BACKLOG_MAX of them unread, a program that asks
 *               on and never reads gets EOF (one write larger than the
 *               pair's buffer still blocks: LIMITS).
 *   the end     close() (and close_range, dup2/dup3 over it) closes ours;
 *               the program's half-close (looked at by its shutdown()
 *               too), once its queries are answered, or a query over
 *               DNSCONN_QUERY_MAX closes our end too (the program reads
 *               EOF).
 *
 * getpeername() answers the nameserver the program connect()ed to (peer.c);
 * getsockname() and socket options are the AF_UNIX socket's (LIMITS).
 * Descriptors with a conversation are in a bitmap, so every other write()
 * of the program takes no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "fdmark.h"
#include "preload.h"

#define DNSCONN_MAX		64		/* conversations at once per process */
#define DNSCONN_QUERY_MAX	4096		/* bytes of one query */
#define DNSCONN_BACKLOG_MAX	(128 << 10)	/* queries unread behind a held answer */

struct dnsconn {
	int fd;				/* the program's; -1: free */
	int ours;
	uint64_t ours_cookie;		/* proven before we touch ours */
	uint64_t cookie;		/* of the program's end */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	size_t have;
	uint8_t buf[2 + DNSCONN_QUERY_MAX];
	/* An answer the pair had no room for yet (the program reads them
	 * more slowly than it asks): sent before the next query is taken. */
	uint8_t *out;
	size_t out_len, out_off;
};

int dnsconn_active;
static struct dnsconn dnsconn_tab[DNSCONN_MAX] = { [0 ... DNSCONN_MAX - 1] = { .fd = -1 } };
static uint64_t dnsconn_marked[FDMARK_WORDS];
static pthread_mutex_t dnsconn_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread bool dnsconn_held;
/* The process the table is of (a vfork() child shares it: see udp.c). */
static pid_t dnsconn_pid;

bool
dnsconn_maybe(int fd)
{
	return fdmark_test(dnsconn_marked, &dnsconn_active, fd);
}

static void
dnsconn_mark(int fd, bool on)
{
	fdmark_set(dnsconn_marked, fd, on);
}

static bool
dnsconn_lock(void)
{
	return fdmark_lock(&dnsconn_mu, &dnsconn_held);
}

static void
dnsconn_unlock(void)
{
	fdmark_unlock(&dnsconn_mu, &dnsconn_held);
}

/* Our end is still ours: under a descriptor limit below 512 it sits at a
 * low number, which a program may dup2() a file of its own onto (exec
 * 5>log): that one we must never read, write or close. */
static bool
dnsconn_ours(const struct dnsconn *c)
{
	return peer_cookie(c->ours) == c->ours_cookie;
}

/* fd's conversation, proven by the cookie read before the lock (a stale
 * one is ended). Under dnsconn_mu. */
static struct dnsconn *
dnsconn_find(int fd, uint64_t cookie)
{
	int i;

	for (i = 0; i < DNSCONN_MAX; i++) {
		if (dnsconn_tab[i].fd != fd)
			continue;
		if (cookie != 0 && cookie == dnsconn_tab[i].cookie)
			return &dnsconn_tab[i];
		if (dnsconn_ours(&dnsconn_tab[i]))
			(void)PRELOAD_REAL(close)(dnsconn_tab[i].ours);
		free(dnsconn_tab[i].out);
		dnsconn_tab[i].out = NULL;
		dnsconn_tab[i].fd = -1;
		dnsconn_mark(fd, false);
		__atomic_sub_fetch(&dnsconn_active, 1, __ATOMIC_RELEASE);
		return NULL;
	}
	return NULL;
}

/* Our end is done with: the program reads EOF. Under dnsconn_mu. */
static void
dnsconn_hangup(struct dnsconn *c)
{
	if (dnsconn_ours(c))
		(void)PRELOAD_REAL(shutdown)(c->ours, SHUT_WR);
	c->have = 0;
}

/* What the program has written on c's end, taken into c->buf: false when
 * the conversation is over (EOF, or more than a query we take). Under
 * dnsconn_mu. */
static bool
dnsconn_fill(struct dnsconn *c)
{
	ssize_t n;

	if (!dnsconn_ours(c))
		return false;
	for (;;) {
		if (c->have == sizeof(c->buf))
			return false;	/* a query we do not take */
		n = PRELOAD_REAL(recv)(c->ours, c->buf + c->have, sizeof(c->buf) - c->have,
		    MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return false;
		if (n < 0)
			return true;
		c->have += (size_t)n;
	}
}

/* The first complete query in c->buf, moved to q (*len bytes): false when
 * there is none yet. Under dnsconn_mu. */
static bool
dnsconn_take(struct dnsconn *c, uint8_t *q, size_t *len)
{
	size_t n;

	if (c->have < 2 || c->have < 2 + (n = (size_t)c->buf[0] << 8 | c->buf[1]))
		return false;
	memcpy(q, c->buf + 2, n);
	*len = n;
	c->have -= 2 + n;
	memmove(c->buf, c->buf + 2 + n, c->have);
	return true;
}

/* c's held answer, sent as far as the pair takes it: 0 when none is left,
 * 1 when some waits for the program to read, -1 when the conversation
 * is over (hung up). Under dnsconn_mu. */
static int
dnsconn_flush(struct dnsconn *c)
{
	ssize_t n;

	while (c->out != NULL) {
		if (!dnsconn_ours(c))
			n = -1;
		else
			n = PRELOAD_REAL(send)(c->ours, c->out + c->out_off,
			    c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n <= 0) {
			free(c->out);
			c->out = NULL;
			dnsconn_hangup(c);	/* a reader gone */
			return -1;
		}
		c->out_off += (size_t)n;
		if (c->out_off == c->out_len) {
			free(c->out);
			c->out = NULL;
		}
	}
	return 0;
}

/* An answer held, and more than DNSCONN_BACKLOG_MAX of queries unread
 * behind it. Under dnsconn_mu. */
static bool
dnsconn_held_long(const struct dnsconn *c)
{
	int queued = 0;

	return c->out != NULL && dnsconn_ours(c) &&
	    ioctl(c->ours, FIONREAD, &queued) == 0 && queued > DNSCONN_BACKLOG_MAX;
}

/*
 * Answers what the program wrote on fd, query by query: each is taken
 * under the lock, answered without it (a local lookup or SOCKSIFY_DNS may
 * wait; other conversations and close() do not wait with it), and its
 * answer written back under the lock once the conversation is proven to be
 * the same one still. An answer the pair cannot take yet is held, and the
 * queries after it wait: the program's next read pumps again (gate.c).
 */
void
dnsconn_pump(int fd)
{
	struct dnsconn *c;
	uint8_t q[DNSCONN_QUERY_MAX], small[2 + DNS_UDP_MAX], *out;
	uint64_t cookie = peer_cookie(fd);
	size_t len, n;
	bool local, more, going, held;
	int saved = errno, ours;

	for (;;) {
		if (!dnsconn_lock())
			break;
		more = false;
		if ((c = dnsconn_find(fd, cookie)) != NULL && dnsconn_held_long(c)) {
			/* It asks on and never reads: its next writes would
			 * block on a pair we no longer read. EOF, as before. */
			free(c->out);
			c->out = NULL;
			dnsconn_hangup(c);
		} else if (c != NULL && dnsconn_flush(c) == 0) {
			/* Complete queries first: a full buffer of pipelined
			 * ones (RFC 7766 §6.2.1.1), or some before the
			 * program's EOF, are answered, not dropped. */
			going = dnsconn_fill(c);
			more = dnsconn_take(c, q, &len);
			if (!more && !going)
				dnsconn_hangup(c);
			ours = c->ours;
		}
		dnsconn_unlock();
		if (!more)
			break;
		out = small;
		n = dnsanswer(q, len, out + 2, DNS_UDP_MAX, &local);
		/* SOCKSIFY_DNS's answer may take all TCP allows. */
		if (local && (out = malloc(2 + DNS_TCP_MAX)) != NULL)
			n = dnsanswer_local(q, len, out + 2, DNS_TCP_MAX);
		else if (local)
			out = small;
		held = false;
		if (n > 0 && dnsconn_lock()) {
			out[0] = (uint8_t)(n >> 8);
			out[1] = (uint8_t)n;
			if ((c = dnsconn_find(fd, cookie)) != NULL && c->ours == ours &&
			    c->out == NULL && (c->out = malloc(n + 2)) != NULL) {
				memcpy(c->out, out, n + 2);
				c->out_len = n + 2;
				c->out_off = 0;
				held = dnsconn_flush(c) != 0;
			}
			dnsconn_unlock();
		}
		if (out != small)
			free(out);
		if (held)
			break;
	}
	errno = saved;
}

static void
dnsconn_fork_prepare(void)
{
	pthread_mutex_lock(&dnsconn_mu);
}

static void
dnsconn_fork_parent(void)
{
	pthread_mutex_unlock(&dnsconn_mu);
}

static void
dnsconn_fork_child(void)
{
	dnsconn_held = false;
	dnsconn_pid = getpid();
	pthread_mutex_unlock(&dnsconn_mu);
}

void
dnsconn_at_load(void)
{
	dnsconn_pid = getpid();
	(void)pthread_atfork(dnsconn_fork_prepare, dnsconn_fork_parent, dnsconn_fork_child);
}

int
dnsconn_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct dnsconn *c = NULL;
	int sv[2], ours, fl, fdfl, i;
	uint64_t cookie;

	if ((fl = PRELOAD_REAL(fcntl)(fd, F_GETFL)) < 0 ||
	    (fdfl = PRELOAD_REAL(fcntl)(fd, F_GETFD)) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	ours = async_fd_raise(sv[1]);
	if (PRELOAD_REAL(fcntl)(ours, F_SETFL, O_NONBLOCK) != 0 ||
	    PRELOAD_REAL(fcntl)(sv[0], F_SETFL, fl & O_NONBLOCK) != 0 ||
	    PRELOAD_REAL(dup3)(sv[0], fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		int err = errno;

		(void)PRELOAD_REAL(close)(sv[0]);
		if (ours >= 0)
			(void)PRELOAD_REAL(close)(ours);
		errno = err;
		return -1;
	}
	(void)PRELOAD_REAL(close)(sv[0]);
	cookie = peer_cookie(fd);
	if (!dnsconn_lock()) {
		(void)PRELOAD_REAL(close)(ours);
		errno = EAGAIN;
		return -1;
	}
	(void)dnsconn_find(fd, 0);	/* a stale one on this number goes */
	for (i = 0; i < DNSCONN_MAX && c == NULL; i++)
		if (dnsconn_tab[i].fd < 0)
			c = &dnsconn_tab[i];
	if (c != NULL) {
		c->fd = fd;
		c->ours = ours;
		c->ours_cookie = peer_cookie(ours);
		c->cookie = cookie;
		c->have = 0;
		c->out = NULL;
		if (len > sizeof(c->peer))
			len = sizeof(c->peer);
		memcpy(&c->peer, sa, len);
		c->peer_len = len;
		dnsconn_mark(fd, true);
		__atomic_add_fetch(&dnsconn_active, 1, __ATOMIC_RELEASE);
	}
	dnsconn_unlock();
	if (c == NULL) {
		/* The program's socket is gone already: it reads EOF. */
		(void)PRELOAD_REAL(close)(ours);
		preload_log(LOG_LVL_ERROR, "DNS over TCP: more than %d conversations "
		    "at once", DNSCONN_MAX);
	}
	return 0;
}

void
dnsconn_forget(int fd)
{
	if (!dnsconn_maybe(fd) || getpid() != dnsconn_pid || !dnsconn_lock())
		return;
	(void)dnsconn_find(fd, 0);
	dnsconn_unlock();
}

bool
dnsconn_peer(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	struct dnsconn *c;
	uint64_t cookie;
	bool found = false;

	if (!dnsconn_maybe(fd))
		return false;
	cookie = peer_cookie(fd);
	if (!dnsconn_lock())
		return false;
	if ((c = dnsconn_find(fd, cookie)) != NULL) {
		*ss = c->peer;
		*len = c->peer_len;
		found = true;
	}
	dnsconn_unlock();
	return found;
}
