/*
 * peer.c: getpeername() on a tunnelled socket names the address the program
 * connected to (a placeholder for a name), not the proxy's.
 *
 * The state is kept per fd number, which the program may close and reuse
 * behind our back (close_range(), raw close, dup2() over it: P10). So it is
 * validated, not trusted: each slot holds the socket's SO_COOKIE, a 64-bit
 * number the kernel never reuses, and is believed only while the fd still
 * names the socket with that cookie. Nothing needs hooking close().
 *
 * Lock-free, as connect() may run in a signal handler: a writer zeroes the
 * cookie, fills the slot, then publishes the cookie; a reader copies the
 * slot and keeps the copy only when the cookie was the same before and after.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "preload.h"

#ifndef SO_COOKIE
#define SO_COOKIE	57		/* Linux 4.13, asm-generic/socket.h */
#endif

struct peer_slot {
	uint64_t cookie;		/* 0: empty */
	int fresh;			/* connected in the background, not yet told */
	socklen_t len;
	struct sockaddr_storage addr;
};

static struct peer_slot peer_slots[PRELOAD_PEER_FDS];

/* A failed non-blocking connect's errno, waiting for SO_ERROR. */
struct peer_err {
	uint64_t cookie;		/* 0: none */
	int err;
};

static struct peer_err peer_errs[PRELOAD_PEER_FDS];

/* A socket async.c swapped for one of the proxy's family: the family the
 * program made it with; AF_INET6 also for an IPv6-only socket it let reach
 * an IPv4 proxy, which keeps saying it is IPv6-only. */
struct peer_swap {
	uint64_t cookie;		/* 0: none */
	int family;
};

static struct peer_swap peer_swaps[PRELOAD_PEER_FDS];

static int peer_swapped_family(int fd);

/*
 * The identity of the socket fd names now: its cookie, or before Linux 4.13
 * its inode number (reused only once the socket is gone), with the top bit
 * set to keep the two apart; 0 when fd is no socket.
 */
uint64_t
peer_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	struct stat st;
	int saved = errno;

	if (preload_real.getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0 ||
	    len != sizeof(cookie)) {
		cookie = 0;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			cookie = (uint64_t)st.st_ino | ((uint64_t)1 << 63);
	}
	errno = saved;
	return cookie;
}

void
peer_remember(int fd, const struct sockaddr *sa, socklen_t len, bool fresh)
{
	uint64_t cookie;

	if (fd >= 0 && fd < PRELOAD_PEER_FDS && (cookie = peer_cookie(fd)) != 0)
		peer_remember_as(fd, cookie, sa, len, fresh);
}

void
peer_remember_as(int fd, uint64_t cookie, const struct sockaddr *sa, socklen_t len,
    bool fresh)
{
	struct peer_slot *s;
	socklen_t full;

	/* The kernel's size for the family, whatever size the program gave
	 * (connect() takes a longer one, and a 24-byte sockaddr_in6). */
	if (sa->sa_family == AF_INET)
		full = sizeof(struct sockaddr_in);
	else if (sa->sa_family == AF_INET6)
		full = sizeof(struct sockaddr_in6);
	else
		return;
	if (fd < 0 || fd >= PRELOAD_PEER_FDS || cookie == 0)
		return;
	s = &peer_slots[fd];
	__atomic_store_n(&s->cookie, 0, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset(&s->addr, 0, sizeof(s->addr));
	memcpy(&s->addr, sa, len < full ? len : full);
	s->len = full;
	s->fresh = fresh;
	__atomic_store_n(&s->cookie, cookie, __ATOMIC_RELEASE);
}

bool
peer_take_fresh(int fd)
{
	struct peer_slot *s;
	uint64_t cookie;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS)
		return false;
	s = &peer_slots[fd];
	cookie = __atomic_load_n(&s->cookie, __ATOMIC_ACQUIRE);
	if (cookie == 0 || !__atomic_exchange_n(&s->fresh, 0, __ATOMIC_ACQ_REL))
		return false;
	return peer_cookie(fd) == cookie;
}

/* The remembered peer of fd, when fd still names the socket tunnelled. */
static bool
peer_lookup(int fd, struct sockaddr_storage *out, socklen_t *len)
{
	struct peer_slot *s;
	uint64_t before, now;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS)
		return false;
	s = &peer_slots[fd];
	before = __atomic_load_n(&s->cookie, __ATOMIC_ACQUIRE);
	if (before == 0)
		return false;
	memcpy(out, &s->addr, sizeof(*out));
	*len = s->len;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&s->cookie, __ATOMIC_RELAXED) != before)
		return false;	/* rewritten while we read */
	now = peer_cookie(fd);
	return now == before;
}

int
getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t have, cap;

	preload_init_symbols();
	if (preload_real.getpeername == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (len == NULL)
		return preload_real.getpeername(fd, sa, len);	/* EFAULT */
	/* Connecting, as far as the program can tell (async.c). */
	if (__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) && async_pending_checked(fd)) {
		errno = ENOTCONN;
		return -1;
	}
	/* The caller's room, before the kernel writes the full size there. */
	cap = *len;
	/* A UDP socket connect()ed through the relay (udp.c): its peer, even
	 * while its association is being set up and the kernel's socket is
	 * not connected yet. */
	if (__atomic_load_n(&udp_active, __ATOMIC_ACQUIRE) && udp_peer(fd, &ss, &have))
		goto ours;
	/* The kernel's answer first: it decides ENOTCONN, EBADF, EFAULT. */
	if (preload_real.getpeername(fd, sa, len) != 0)
		return -1;
	/* A DNS conversation answered here (dnsconn.c): its server. */
	if (!dnsconn_peer(fd, &ss, &have) && !peer_lookup(fd, &ss, &have))
		return 0;
ours:
	/* Truncated as the kernel truncates; *len says the full size. */
	if (cap > 0)
		memcpy(sa, &ss, have < cap ? have : cap);
	*len = have;
	return 0;
}

/*
 * A non-blocking connect says EINPROGRESS and its outcome comes later
 * through SO_ERROR (connect(2)); event loops (libuv, asyncio, curl) read
 * it there once the fd polls writable. Our handshake has already failed,
 * and the socket, dissolved with AF_UNSPEC, polls writable at once (with
 * POLLHUP and POLLERR: tunnel.c leaves the kernel's ECONNRESET pending),
 * so the program asks for SO_ERROR straight away.
 */
void
peer_fail_later(int fd, int err)
{
	struct peer_err *e;
	uint64_t cookie;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS || (cookie = peer_cookie(fd)) == 0)
		return;
	e = &peer_errs[fd];
	__atomic_store_n(&e->err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&e->cookie, cookie, __ATOMIC_RELEASE);
}

int
peer_take_error(int fd)
{
	struct peer_err *e;
	uint64_t cookie;
	socklen_t len = sizeof(int);
	int err, kerr;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS)
		return 0;
	e = &peer_errs[fd];
	cookie = __atomic_load_n(&e->cookie, __ATOMIC_ACQUIRE);
	if (cookie == 0)
		return 0;
	err = __atomic_load_n(&e->err, __ATOMIC_RELAXED);
	/* Taken once, by whoever clears it first; a stale one (another socket
	 * now has this fd number) is dropped without a word. */
	if (!__atomic_compare_exchange_n(&e->cookie, &cookie, 0, false,
	    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return 0;
	if (peer_cookie(fd) != cookie)
		return 0;
	/* The kernel's own pending error (tunnel.c leaves ECONNRESET) is
	 * reported in this one's place, and so goes too. */
	(void)preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &kerr, &len);
	return err;
}

int
getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	int err;

	preload_init_symbols();
	if (preload_real.getsockopt == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (level == SOL_SOCKET && name == SO_ERROR && val != NULL &&
	    len != NULL && *len >= sizeof(int)) {
		/* A pending socket has no error yet; the kernel's stays. */
		if (__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) && async_pending_checked(fd))
			err = 0;
		else if ((err = peer_take_error(fd)) == 0)
			return preload_real.getsockopt(fd, level, name, val, len);
		memcpy(val, &err, sizeof(err));
		*len = sizeof(err);
		return 0;
	}
	/* An IPv6-only socket async.c opened to IPv4 for the proxy. */
	if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY && val != NULL &&
	    len != NULL && *len >= sizeof(int) && peer_swapped_family(fd) == AF_INET6) {
		err = 1;
		memcpy(val, &err, sizeof(err));
		*len = sizeof(err);
		return 0;
	}
	if (level == SOL_SOCKET && name == SO_DOMAIN && val != NULL &&
	    len != NULL && *len >= sizeof(int) && (err = peer_swapped_family(fd)) != 0) {
		memcpy(val, &err, sizeof(err));
		*len = sizeof(err);
		return 0;
	}
	return preload_real.getsockopt(fd, level, name, val, len);
}

void
peer_swapped(int fd, int family)
{
	struct peer_swap *w;
	uint64_t cookie;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS || (cookie = peer_cookie(fd)) == 0)
		return;
	w = &peer_swaps[fd];
	__atomic_store_n(&w->family, family, __ATOMIC_RELAXED);
	__atomic_store_n(&w->cookie, cookie, __ATOMIC_RELEASE);
}

/* The family the program gave fd's socket when we swapped it, else 0. */
static int
peer_swapped_family(int fd)
{
	struct peer_swap *w;
	uint64_t cookie;
	int family;

	if (fd < 0 || fd >= PRELOAD_PEER_FDS)
		return 0;
	w = &peer_swaps[fd];
	cookie = __atomic_load_n(&w->cookie, __ATOMIC_ACQUIRE);
	if (cookie == 0)
		return 0;
	family = __atomic_load_n(&w->family, __ATOMIC_RELAXED);
	return peer_cookie(fd) == cookie ? family : 0;
}

/*
 * getsockname() of a swapped socket, in the program's family: an IPv4
 * program sees 127.0.0.1 for ::1, a.b.c.d for ::ffff:a.b.c.d, else
 * 0.0.0.0, with the port; an IPv6 one sees ::ffff:a.b.c.d.
 */
int
getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	int (*real)(int, struct sockaddr *, socklen_t *) = PRELOAD_REAL(getsockname);
	struct sockaddr_storage ss;
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	socklen_t have = sizeof(ss), cap;
	const void *out;
	int family;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	/* The proxy's side of a tunnel or a BIND (listen.c). */
	if (listen_sockname(fd, sa, len))
		return 0;
	if (fd < 0 || fd >= PRELOAD_PEER_FDS ||
	    __atomic_load_n(&peer_swaps[fd].cookie, __ATOMIC_ACQUIRE) == 0 ||
	    len == NULL || (family = peer_swapped_family(fd)) == 0)
		return real(fd, sa, len);
	cap = *len;
	if (real(fd, (struct sockaddr *)&ss, &have) != 0)
		return -1;
	if (family == AF_INET && ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)&ss;

		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		s4.sin_port = in->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr))
			memcpy(&s4.sin_addr, &in->sin6_addr.s6_addr[12], 4);
		else if (IN6_IS_ADDR_LOOPBACK(&in->sin6_addr))
			s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		out = &s4;
		have = sizeof(s4);
	} else if (family == AF_INET6 && ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_port = in->sin_port;
		s6.sin6_addr.s6_addr[10] = 0xff;
		s6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
		out = &s6;
		have = sizeof(s6);
	} else {
		out = &ss;
	}
	if (sa != NULL && cap > 0)
		memcpy(sa, out, have < cap ? have : cap);
	*len = have;
	return 0;
}
