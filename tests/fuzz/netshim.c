/*
 * netshim.c: the fake sockets behind netshim.h.
 *
 * Each call does what Linux does for a non-blocking TCP or UDP socket in
 * the same state, as far as socksifyd can tell: a connect is EINPROGRESS
 * until the driver ends it, reads see queued bytes before a FIN or a
 * reset's error, a reset reports ECONNRESET once and then behaves as a
 * closed connection, and readiness follows tcp_poll() (EPOLLOUT after our
 * own shutdown, EPOLLHUP once both directions are shut or on a reset).
 * Misuse that the kernel would let pass but that is a server bug aborts:
 * a blocking socket, a send without MSG_NOSIGNAL, a call on a closed or
 * unknown descriptor, a close while still registered in the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/epoll.h>

#include "fake.h"
#include "fuzz.h"
#include "netshim.h"

enum {
	SHIM_PORT_FIRST = 40000,	/* ports the fake kernel picks */
	SHIM_BUF_FIRST = 256,
};

struct shim_plan shim_plan;
size_t shim_log_lines;

static struct shim_sock *shim_socks[SHIM_SOCKS_MAX];
static size_t shim_n;
static int shim_cur_root = -1;
static uint16_t shim_next_port = SHIM_PORT_FIRST;

static _Noreturn void
shim_bug(const char *what, int fd)
{
	fprintf(stderr, "netshim: server bug: %s (fd %d)\n", what, fd);
	abort();
}

void
shim_buf_put(struct shim_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : SHIM_BUF_FIRST;

		while (cap < b->len + n)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
shim_dgrams_free(struct shim_dgram *d)
{
	while (d != NULL) {
		struct shim_dgram *next = d->next;

		free(d);
		d = next;
	}
}

void
shim_reset(void)
{
	size_t i;

	for (i = 0; i < shim_n; i++) {
		struct shim_sock *s = shim_socks[i];

		free(s->in.p);
		free(s->out.p);
		free(s->sent.p);
		shim_dgrams_free(s->dq_in);
		shim_dgrams_free(s->dq_out);
		free(s);
	}
	shim_n = 0;
	memset(&shim_plan, 0, sizeof(shim_plan));
	shim_log_lines = 0;
	shim_cur_root = -1;
	shim_next_port = SHIM_PORT_FIRST;
}

static struct shim_sock *
shim_new(enum shim_kind kind, int family)
{
	struct shim_sock *s;

	if (shim_n == SHIM_SOCKS_MAX || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = SHIM_FD_BASE + (int)shim_n;
	s->kind = kind;
	s->family = family;
	s->root = shim_cur_root;
	s->window = SHIM_WINDOW_ANY;
	shim_socks[shim_n++] = s;
	return s;
}

struct shim_sock *
shim_get(int fd)
{
	if (fd < SHIM_FD_BASE || fd >= SHIM_FD_BASE + (int)shim_n)
		return NULL;
	return shim_socks[fd - SHIM_FD_BASE];
}

struct shim_sock *
shim_at(size_t i)
{
	return i < shim_n ? shim_socks[i] : NULL;
}

size_t
shim_count(void)
{
	return shim_n;
}

/* The socket behind a call: one the shim gave out and nobody closed. */
static struct shim_sock *
shim_use(int fd)
{
	struct shim_sock *s = shim_get(fd);

	if (s == NULL)
		shim_bug("call on a descriptor the server does not own", fd);
	if (s->nclose > 0)
		shim_bug("call on a closed descriptor", fd);
	return s;
}

static ssize_t
shim_fail(int err)
{
	errno = err;
	return -1;
}

void
shim_set_root(int root)
{
	shim_cur_root = root;
}

int
shim_current_root(void)
{
	return shim_cur_root;
}

int
shim_root(int fd)
{
	struct shim_sock *s = shim_get(fd);

	return s != NULL ? s->root : -1;
}

static socklen_t
shim_salen(int family)
{
	return family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
}

/* An address the server passes in: its family's, and long enough. */
static bool
shim_sa_ok(const struct sockaddr *sa, socklen_t len, int family)
{
	return sa != NULL && sa->sa_family == family && len >= shim_salen(family) &&
	    len <= sizeof(struct sockaddr_storage);
}

static void
shim_sa_copy_out(const struct sockaddr_storage *ss, socklen_t sslen,
    struct sockaddr *sa, socklen_t *len)
{
	if (sa != NULL && len != NULL) {
		memcpy(sa, ss, *len < sslen ? *len : sslen);
		*len = sslen;
	}
}

/* Loopback of the family with a port the fake kernel picked. */
static void
shim_autobind(struct shim_sock *s)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->local;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->local;

	if (s->bound)
		return;
	memset(&s->local, 0, sizeof(s->local));
	if (s->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(shim_next_port++);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(shim_next_port++);
	}
	s->locallen = shim_salen(s->family);
	s->bound = true;
}

/* --- readiness -------------------------------------------------------- */

static size_t
shim_in_pending(const struct shim_sock *s)
{
	return s->in.len - s->in_off;
}

uint32_t
shim_events(int fd)
{
	struct shim_sock *s = shim_get(fd);
	uint32_t ev = 0;

	if (s == NULL || s->nclose > 0)
		return 0;
	switch (s->kind) {
	case SHIM_LISTEN:
		return s->nbacklog > 0 ? EPOLLIN : 0;
	case SHIM_DGRAM:
		return EPOLLOUT | (s->dq_read != NULL ? EPOLLIN : 0);
	case SHIM_STREAM:
		break;
	}
	switch (s->conn) {
	case SHIM_CONN_NONE:
		return EPOLLOUT | EPOLLHUP;
	case SHIM_CONN_PENDING:
		return 0;
	case SHIM_CONN_FAILED:
		return EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLOUT |
		    (s->so_error != 0 ? EPOLLERR : 0);
	case SHIM_CONN_UP:
		break;
	}
	if (shim_in_pending(s) > 0 || s->in_fin || s->rst)
		ev |= EPOLLIN;
	if (s->in_fin || s->rst)
		ev |= EPOLLRDHUP;
	if (s->rst || (s->in_fin && s->out_shut))
		ev |= EPOLLHUP;
	if (s->rst || s->out_shut || s->window != 0)
		ev |= EPOLLOUT;
	if (s->so_error != 0)
		ev |= EPOLLERR;
	return ev;
}

/* --- the calls ---------------------------------------------------------- */

int
shim_socket(int domain, int type, int protocol)
{
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct shim_sock *s;

	(void)protocol;
	/* A blocking socket would stall the whole loop. */
	if (!(type & SOCK_NONBLOCK))
		shim_bug("socket() without SOCK_NONBLOCK", -1);
	if (domain != AF_INET && domain != AF_INET6)
		return (int)shim_fail(EAFNOSUPPORT);
	if (base != SOCK_STREAM && base != SOCK_DGRAM)
		return (int)shim_fail(EPROTONOSUPPORT);
	if (shim_plan.socket_fails) {
		shim_plan.socket_fails = false;
		return (int)shim_fail(EMFILE);
	}
	if ((s = shim_new(base == SOCK_STREAM ? SHIM_STREAM : SHIM_DGRAM, domain)) == NULL)
		return (int)shim_fail(EMFILE);
	return s->fd;
}

int
shim_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_sock *s = shim_use(fd);

	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_NONE)
		return (int)shim_fail(s->conn == SHIM_CONN_PENDING ? EALREADY : EISCONN);
	if (!shim_sa_ok(sa, len, s->family))
		return (int)shim_fail(sa != NULL && sa->sa_family != s->family ?
		    EAFNOSUPPORT : EINVAL);
	if (shim_plan.connect_fails) {
		shim_plan.connect_fails = false;
		return (int)shim_fail(ENETUNREACH);
	}
	memcpy(&s->peer, sa, len);
	s->peerlen = len;
	shim_autobind(s);
	if (shim_plan.connect_now) {
		shim_plan.connect_now = false;
		s->conn = SHIM_CONN_UP;
		s->ever_up = true;
		return fd & 1 ? 0 : (int)shim_fail(EINPROGRESS);
	}
	s->conn = SHIM_CONN_PENDING;
	return (int)shim_fail(EINPROGRESS);
}

int
shim_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_sock *s = shim_use(fd);

	if (!shim_sa_ok(sa, len, s->family))
		return (int)shim_fail(EINVAL);
	if (s->bound)
		return (int)shim_fail(EINVAL);
	if (shim_plan.bind_fails) {
		shim_plan.bind_fails = false;
		return (int)shim_fail(EADDRNOTAVAIL);
	}
	memcpy(&s->local, sa, len);
	s->locallen = len;
	s->bound = true;
	s->bind_called = true;
	/* Port 0: the kernel picks one. */
	if (s->family == AF_INET && ((struct sockaddr_in *)&s->local)->sin_port == 0)
		((struct sockaddr_in *)&s->local)->sin_port = htons(shim_next_port++);
	if (s->family == AF_INET6 && ((struct sockaddr_in6 *)&s->local)->sin6_port == 0)
		((struct sockaddr_in6 *)&s->local)->sin6_port = htons(shim_next_port++);
	return 0;
}

int
shim_listen(int fd, int backlog)
{
	struct shim_sock *s = shim_use(fd);

	(void)backlog;
	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_NONE)
		return (int)shim_fail(EINVAL);
	shim_autobind(s);
	s->kind = SHIM_LISTEN;
	return 0;
}

int
shim_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct shim_sock *s = shim_use(fd), *c;
	struct sockaddr_storage peer;
	socklen_t peerlen;

	if (!(flags & SOCK_NONBLOCK))
		shim_bug("accept4() without SOCK_NONBLOCK", fd);
	if (s->kind != SHIM_LISTEN)
		return (int)shim_fail(EINVAL);
	if (s->nbacklog == 0)
		return (int)shim_fail(EAGAIN);
	peer = s->backlog[0].addr;
	peerlen = s->backlog[0].len;
	memmove(&s->backlog[0], &s->backlog[1],
	    (--s->nbacklog) * sizeof(s->backlog[0]));
	if (peerlen == 0)
		return (int)shim_fail(ECONNABORTED);
	if (shim_plan.socket_fails) {
		shim_plan.socket_fails = false;
		return (int)shim_fail(EMFILE);
	}
	if ((c = shim_new(SHIM_STREAM, s->family)) == NULL)
		return (int)shim_fail(EMFILE);
	c->root = s->root;
	c->accepted = true;
	c->conn = SHIM_CONN_UP;
	c->ever_up = true;
	c->bound = true;
	c->local = s->local;
	c->locallen = s->locallen;
	c->peer = peer;
	c->peerlen = peerlen;
	shim_sa_copy_out(&peer, peerlen, sa, len);
	return c->fd;
}

int
shim_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct shim_sock *s = shim_use(fd);
	struct sockaddr_storage any;

	/* The server names a connected target in its reply (BND) once it
	 * takes the connect as done: by SO_ERROR, or by epoll alone. */
	if (s->kind == SHIM_STREAM && s->conn == SHIM_CONN_UP && s->so_error == 0)
		s->connect_seen = true;
	if (!s->bound) {
		memset(&any, 0, sizeof(any));
		any.ss_family = (sa_family_t)s->family;
		shim_sa_copy_out(&any, shim_salen(s->family), sa, len);
		return 0;
	}
	shim_sa_copy_out(&s->local, s->locallen, sa, len);
	return 0;
}

/* A peer only once connected: ENOTCONN while the connect is under way,
 * after it failed, and for datagram sockets and listeners never connected. */
int
shim_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct shim_sock *s = shim_use(fd);

	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_UP)
		return (int)shim_fail(ENOTCONN);
	shim_sa_copy_out(&s->peer, s->peerlen, sa, len);
	return 0;
}

int
shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct shim_sock *s = shim_use(fd);

	if (level != SOL_SOCKET || name != SO_ERROR || *len < sizeof(int))
		return (int)shim_fail(ENOPROTOOPT);
	memcpy(val, &s->so_error, sizeof(int));
	*len = sizeof(int);
	if (s->conn == SHIM_CONN_UP && s->so_error == 0)
		s->connect_seen = true;
	s->so_error = 0;
	return 0;
}

int
shim_shutdown(int fd, int how)
{
	struct shim_sock *s = shim_use(fd);

	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_UP || s->rst)
		return (int)shim_fail(ENOTCONN);
	if (how == SHUT_WR || how == SHUT_RDWR)
		s->out_shut = true;
	return 0;
}

int
shim_close(int fd)
{
	struct shim_sock *s = shim_get(fd);

	if (s == NULL)
		shim_bug("close() of a descriptor the server does not own", fd);
	if (s->nclose > 0)
		shim_bug("close() of a closed descriptor", fd);
	if (fake_loop_watches(fd))
		shim_bug("close() of a descriptor still in the event loop", fd);
	s->nclose++;
	return 0;
}

static ssize_t
shim_stream_recv(struct shim_sock *s, void *buf, size_t n, int flags)
{
	size_t k;
	int err;

	if (s->kind != SHIM_STREAM || s->conn == SHIM_CONN_NONE)
		return shim_fail(ENOTCONN);
	if (s->conn == SHIM_CONN_PENDING)
		return shim_fail(EAGAIN);
	if (shim_in_pending(s) > 0 && n > 0) {
		k = shim_in_pending(s) < n ? shim_in_pending(s) : n;
		memcpy(buf, s->in.p + s->in_off, k);
		if (!(flags & MSG_PEEK))
			s->in_off += k;
		return (ssize_t)k;
	}
	if (s->so_error != 0) {
		err = s->so_error;
		s->so_error = 0;
		return shim_fail(err);
	}
	if (s->in_fin || s->rst || s->conn == SHIM_CONN_FAILED)
		return 0;
	return shim_fail(EAGAIN);
}

static ssize_t
shim_stream_send(struct shim_sock *s, const void *buf, size_t n)
{
	size_t k = n;
	int err;

	if (s->kind != SHIM_STREAM || s->conn == SHIM_CONN_NONE)
		return shim_fail(ENOTCONN);
	if (s->conn == SHIM_CONN_PENDING)
		return shim_fail(EAGAIN);
	if (s->so_error != 0) {
		err = s->so_error;
		s->so_error = 0;
		return shim_fail(err);
	}
	if (s->rst || s->out_shut || s->conn == SHIM_CONN_FAILED)
		return shim_fail(EPIPE);
	if (s->window == 0)
		return shim_fail(EAGAIN);
	if (s->window != SHIM_WINDOW_ANY) {
		if ((long)k > s->window)
			k = (size_t)s->window;
		s->window -= (long)k;
	}
	shim_buf_put(&s->out, buf, k);
	return (ssize_t)k;
}

ssize_t
shim_read(int fd, void *buf, size_t n)
{
	return shim_stream_recv(shim_use(fd), buf, n, 0);
}

ssize_t
shim_recv(int fd, void *buf, size_t n, int flags)
{
	return shim_stream_recv(shim_use(fd), buf, n, flags);
}

/* The server's log: each write() is one whole line (log.h). */
static ssize_t
shim_log(const void *buf, size_t n)
{
	const char *p = buf;

	FUZZ_CHECK(n > 0 && p[n - 1] == '\n');
	FUZZ_CHECK(memchr(p, '\n', n - 1) == NULL && memchr(p, '\r', n) == NULL);
	shim_log_lines++;
	return (ssize_t)n;
}

ssize_t
shim_write(int fd, const void *buf, size_t n)
{
	if (fd == STDERR_FILENO)
		return shim_log(buf, n);
	return shim_stream_send(shim_use(fd), buf, n);
}

ssize_t
shim_send(int fd, const void *buf, size_t n, int flags)
{
	struct shim_sock *s = shim_use(fd);

	/* Without it a peer that went away kills the daemon with SIGPIPE. */
	if (!(flags & MSG_NOSIGNAL))
		shim_bug("send() without MSG_NOSIGNAL", fd);
	return shim_stream_send(s, buf, n);
}

ssize_t
shim_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
    socklen_t *len)
{
	struct shim_sock *s = shim_use(fd);
	struct shim_dgram *d;

	if (s->kind != SHIM_DGRAM)
		return shim_stream_recv(s, buf, n, flags);
	if ((d = s->dq_read) == NULL)
		return shim_fail(EAGAIN);
	if (!(flags & MSG_PEEK))
		s->dq_read = d->next;
	memcpy(buf, d->data, d->len < n ? d->len : n);
	shim_sa_copy_out(&d->addr, d->addrlen, sa, len);
	/* MSG_TRUNC: the real length, even when it did not fit. */
	return (ssize_t)((flags & MSG_TRUNC) || d->len < n ? d->len : n);
}

static struct shim_dgram *
shim_dgram_new(const struct sockaddr *sa, socklen_t salen, size_t len)
{
	struct shim_dgram *d = calloc(1, sizeof(*d) + len);

	if (d == NULL)
		abort();
	memcpy(&d->addr, sa, salen < sizeof(d->addr) ? salen : sizeof(d->addr));
	d->addrlen = salen;
	d->len = len;
	return d;
}

static void
shim_dgram_append(struct shim_dgram **head, struct shim_dgram *d)
{
	while (*head != NULL)
		head = &(*head)->next;
	*head = d;
}

/*
 * A datagram the server sends from s: recorded, never delivered. With gso
 * (UDP_SEGMENT's size) the bytes are cut into datagrams of gso bytes, the
 * last shorter, as Linux does. A size above SHIM_GSO_SEG_MAX is refused
 * with EINVAL, as a route refuses one above its MTU, so the server's way
 * back to one datagram a message is driven too.
 */
static ssize_t
shim_dgram_send_gso(struct shim_sock *s, const struct sockaddr *sa, socklen_t len,
    const struct iovec *iov, size_t niov, size_t gso)
{
	struct shim_dgram *d;
	size_t i, total = 0, off = 0, seg, k;

	if (s->kind != SHIM_DGRAM)
		return shim_fail(EOPNOTSUPP);
	if (!shim_sa_ok(sa, len, s->family))
		return shim_fail(sa != NULL && sa->sa_family != s->family ?
		    EAFNOSUPPORT : EINVAL);
	if (shim_plan.sendto_fails) {
		shim_plan.sendto_fails = false;
		return shim_fail(EAGAIN);
	}
	for (i = 0; i < niov; i++)
		total += iov[i].iov_len;
	if (gso != 0 && (gso > SHIM_GSO_SEG_MAX || total > 64 * gso))
		return shim_fail(EINVAL);
	if (gso == 0 || total == 0)
		gso = total;
	/* Datagram by datagram, each gathered from the iovecs where it lies. */
	for (i = 0, k = 0; off < total; off += seg) {
		seg = total - off < gso ? total - off : gso;
		d = shim_dgram_new(sa, len, seg);
		for (size_t got = 0, n; got < seg; got += n) {
			while (k >= iov[i].iov_len) {
				i++;
				k = 0;
			}
			n = iov[i].iov_len - k < seg - got ? iov[i].iov_len - k : seg - got;
			memcpy(d->data + got, (const char *)iov[i].iov_base + k, n);
			k += n;
		}
		shim_dgram_append(&s->dq_out, d);
	}
	if (total == 0)
		shim_dgram_append(&s->dq_out, shim_dgram_new(sa, len, 0));
	shim_autobind(s);
	return (ssize_t)total;
}

static ssize_t
shim_dgram_send(struct shim_sock *s, const struct sockaddr *sa, socklen_t len,
    const struct iovec *iov, size_t niov)
{
	return shim_dgram_send_gso(s, sa, len, iov, niov, 0);
}

ssize_t
shim_sendto(int fd, const void *buf, size_t n, int flags,
    const struct sockaddr *sa, socklen_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };

	(void)flags;
	return shim_dgram_send(shim_use(fd), sa, len, &iov, 1);
}

ssize_t
shim_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cmsghdr *cm;
	uint16_t gso = 0;

	(void)flags;
	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
		if (cm->cmsg_level != SOL_UDP || cm->cmsg_type != UDP_SEGMENT ||
		    cm->cmsg_len != CMSG_LEN(sizeof(gso)))
			return shim_fail(EINVAL);
		memcpy(&gso, CMSG_DATA(cm), sizeof(gso));
		if (gso == 0)
			return shim_fail(EINVAL);
	}
	return shim_dgram_send_gso(shim_use(fd), msg->msg_name, msg->msg_namelen,
	    msg->msg_iov, msg->msg_iovlen, gso);
}

/* The next datagram into one message's iovecs, as recvmsg() reads it. */
static void
shim_dgram_recv(struct shim_sock *s, struct mmsghdr *mm, int flags)
{
	struct msghdr *m = &mm->msg_hdr;
	struct shim_dgram *d = s->dq_read;
	size_t i, k, off = 0;

	s->dq_read = d->next;
	for (i = 0; i < m->msg_iovlen && off < d->len; i++) {
		k = d->len - off < m->msg_iov[i].iov_len ? d->len - off : m->msg_iov[i].iov_len;
		memcpy(m->msg_iov[i].iov_base, d->data + off, k);
		off += k;
	}
	shim_sa_copy_out(&d->addr, d->addrlen, m->msg_name, &m->msg_namelen);
	m->msg_flags = off < d->len ? MSG_TRUNC : 0;
	/* MSG_TRUNC: the real length, even when it did not fit. */
	mm->msg_len = (unsigned)((flags & MSG_TRUNC) ? d->len : off);
}

/* Every queued datagram, up to vlen; EAGAIN only when none waits. */
int
shim_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
    struct timespec *timeout)
{
	struct shim_sock *s = shim_use(fd);
	unsigned i;

	/* The socket is non-blocking: a timeout would change nothing. */
	(void)timeout;
	if (s->kind != SHIM_DGRAM)
		return (int)shim_fail(EOPNOTSUPP);
	for (i = 0; i < vlen && s->dq_read != NULL; i++)
		shim_dgram_recv(s, &vec[i], flags);
	return i > 0 ? (int)i : (int)shim_fail(EAGAIN);
}

/*
 * As Linux: the datagrams in order until one fails; that error is
 * reported only when it was the first, else the count of those sent. A
 * planned failure (sendto_fails) hits the last of several, so the server
 * meets both answers.
 */
int
shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct shim_sock *s = shim_use(fd);
	bool fail_last = shim_plan.sendto_fails && vlen > 1;
	unsigned i;
	ssize_t n;

	(void)flags;
	if (fail_last)
		shim_plan.sendto_fails = false;
	for (i = 0; i < vlen && !(fail_last && i == vlen - 1); i++) {
		n = shim_dgram_send(s, vec[i].msg_hdr.msg_name, vec[i].msg_hdr.msg_namelen,
		    vec[i].msg_hdr.msg_iov, vec[i].msg_hdr.msg_iovlen);
		if (n < 0)
			return i > 0 ? (int)i : -1;
		vec[i].msg_len = (unsigned)n;
	}
	return (int)i;
}

struct addrinfo *
shim_addrinfo(const struct sockaddr *sa, socklen_t len, struct addrinfo *next)
{
	struct {
		struct addrinfo ai;
		struct sockaddr_storage ss;
	} *node = calloc(1, sizeof(*node));

	if (node == NULL)
		abort();
	memcpy(&node->ss, sa, len);
	node->ai.ai_family = sa->sa_family;
	node->ai.ai_socktype = SOCK_STREAM;
	node->ai.ai_addr = (struct sockaddr *)&node->ss;
	node->ai.ai_addrlen = len;
	node->ai.ai_next = next;
	return &node->ai;
}

void
shim_freeaddrinfo(struct addrinfo *ai)
{
	while (ai != NULL) {
		struct addrinfo *next = ai->ai_next;

		free(ai);
		ai = next;
	}
}

/* --- the driver as the other end ---------------------------------------- */

int
shim_new_client(const struct sockaddr *local, socklen_t locallen,
    const struct sockaddr *peer, socklen_t peerlen)
{
	struct shim_sock *s = shim_new(SHIM_STREAM, local->sa_family);

	if (s == NULL)
		return -1;
	s->client = true;
	s->root = s->fd;
	s->conn = SHIM_CONN_UP;
	s->ever_up = true;
	s->bound = true;
	memcpy(&s->local, local, locallen);
	s->locallen = locallen;
	memcpy(&s->peer, peer, peerlen);
	s->peerlen = peerlen;
	return s->fd;
}

/* Can the peer still send? Not after its FIN or reset, nor to a socket the
 * server closed (its bytes would go nowhere the server could see). */
static bool
shim_peer_open(const struct shim_sock *s)
{
	return s->kind == SHIM_STREAM && s->conn == SHIM_CONN_UP && s->nclose == 0 &&
	    !s->in_fin && !s->rst;
}

void
shim_peer_send(struct shim_sock *s, const uint8_t *p, size_t n)
{
	if (!shim_peer_open(s))
		return;
	shim_buf_put(&s->in, p, n);
	shim_buf_put(&s->sent, p, n);
}

void
shim_peer_fin(struct shim_sock *s)
{
	if (shim_peer_open(s))
		s->in_fin = true;
}

void
shim_peer_rst(struct shim_sock *s)
{
	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_UP || s->rst ||
	    s->nclose > 0)
		return;
	s->rst = true;
	s->so_error = ECONNRESET;
}

void
shim_peer_window(struct shim_sock *s, long n)
{
	s->window = n;
	if (n != SHIM_WINDOW_ANY)
		s->window_limited = true;
}

void
shim_connect_done(struct shim_sock *s, int err)
{
	if (s->kind != SHIM_STREAM || s->conn != SHIM_CONN_PENDING)
		return;
	if (err == 0) {
		s->conn = SHIM_CONN_UP;
		s->ever_up = true;
	} else {
		s->conn = SHIM_CONN_FAILED;
		s->so_error = err;
	}
}

void
shim_listen_arrive(struct shim_sock *s, const struct sockaddr *peer,
    socklen_t peerlen)
{
	if (s->kind != SHIM_LISTEN || s->nclose > 0 || s->nbacklog == SHIM_BACKLOG_MAX)
		return;
	memset(&s->backlog[s->nbacklog], 0, sizeof(s->backlog[0]));
	if (peer != NULL)
		memcpy(&s->backlog[s->nbacklog].addr, peer, peerlen);
	s->backlog[s->nbacklog++].len = peer != NULL ? peerlen : 0;
}

void
shim_dgram_arrive(struct shim_sock *s, const struct sockaddr *from,
    socklen_t fromlen, const uint8_t *p, size_t n)
{
	struct shim_dgram *d;

	/* A full socket buffer drops it, as the kernel would. */
	if (s->kind != SHIM_DGRAM || s->nclose > 0 || s->ndq_in == SHIM_DGRAMS_MAX)
		return;
	d = shim_dgram_new(from, fromlen, n);
	memcpy(d->data, p, n);
	shim_dgram_append(&s->dq_in, d);
	s->ndq_in++;
	if (s->dq_read == NULL)
		s->dq_read = d;
}
