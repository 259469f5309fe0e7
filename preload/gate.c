/*
 * gate.c: the readiness gate. While a socket's handshake is pending
 * (async.c), nothing the program can ask says it is connected.
 *
 * epoll: the kernel reports a socket the moment its TCP connect to the
 * proxy is up, long before the chain has answered, and epoll_wait() runs in
 * the kernel with no hook of ours. So the gate keeps the program's epoll
 * registrations as it made them (epoll_ctl(): set, descriptor, events,
 * data), and while a socket is pending its registrations are taken out of
 * the kernel's sets (EPOLL_CTL_DEL) and kept here; epoll_ctl() on a pending
 * socket is answered from these records (EEXIST, ENOENT, EINVAL for MOD of
 * EPOLLEXCLUSIVE, as the kernel would). When the handshake ends async.c adds
 * them back (EPOLL_CTL_ADD with the program's events and data): the kernel
 * evaluates readiness afresh and wakes every waiter of every set, whatever
 * thread or process waits and whatever the flags (level, edge, one-shot,
 * exclusive). A record is proven before it is used: a DEL that fails means
 * the registration is gone (the set or the socket was closed behind our
 * back), and the record with it.
 *
 * poll(), ppoll(), select(), pselect() (and the _chk forms): when the
 * process has a pending socket and the call names one, the call waits in
 * ppoll() with the pending sockets left out and their wake descriptors in:
 * they report nothing until the handshake is over, then what the kernel says
 * of them. select() and pselect() go through the same path (so a wake
 * descriptor above FD_SETSIZE does no harm), with select()'s result, sets
 * and remaining time.
 *
 * read, write and their kin on a pending socket: EAGAIN, or for a blocking
 * one, a wait for the outcome (async_hold()); the proxy never sees a byte of
 * the program's early, and the program never reads the proxy's reply.
 *
 * close(), close_range(), dup2() and dup3() over a descriptor: its records
 * go, and a pending socket's handshake is cancelled with its last name.
 * dup(), dup2(), dup3() and F_DUPFD of a pending socket: the new name is
 * pending too.
 *
 * Every hook's fast path is one load (async_active, or an fd with no
 * record): a process with nothing pending pays no lock and no system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/time.h>
#include <unistd.h>

#include "preload.h"

#define GATE_BUCKETS		1024	/* epoll record hash chains */
#define GATE_POLL_STACK		64	/* pollfds on the stack; beyond, malloc() */
#define GATE_NS_PER_MS		1000000L

/* One registration of fd in the epoll set epfd, as the program made it. */
struct gate_rec {
	struct gate_rec *next;
	int fd, epfd;
	struct epoll_event ev;
	bool hidden;			/* taken out of the kernel's set */
};

static struct gate_rec *gate_table[GATE_BUCKETS];
/* Descriptors with a record, and epoll sets holding one, as bitmaps for the
 * fast path of close(). */
static uint64_t gate_marked[PRELOAD_ASYNC_INDEX_FDS / 64];
static uint64_t gate_sets[PRELOAD_ASYNC_INDEX_FDS / 64];
static int gate_nrecs;

static unsigned
gate_hash(int fd)
{
	return (unsigned)fd % GATE_BUCKETS;
}

static bool
gate_bit(const uint64_t *map, int fd)
{
	if (fd < 0)
		return false;
	if (fd >= PRELOAD_ASYNC_INDEX_FDS)
		return __atomic_load_n(&gate_nrecs, __ATOMIC_RELAXED) > 0;
	return (__atomic_load_n(&map[fd / 64], __ATOMIC_RELAXED) >> (fd % 64)) & 1;
}

/* fd may have records, as a socket or as an epoll set. */
static bool
gate_maybe_marked(int fd)
{
	return gate_bit(gate_marked, fd) || gate_bit(gate_sets, fd);
}

static void
gate_set_bit(uint64_t *map, int fd, bool on)
{
	uint64_t bit;

	if (fd < 0 || fd >= PRELOAD_ASYNC_INDEX_FDS)
		return;
	bit = (uint64_t)1 << (fd % 64);
	if (on)
		__atomic_or_fetch(&map[fd / 64], bit, __ATOMIC_RELAXED);
	else
		__atomic_and_fetch(&map[fd / 64], ~bit, __ATOMIC_RELAXED);
}

static void
gate_mark(int fd, bool on)
{
	gate_set_bit(gate_marked, fd, on);
}

static struct gate_rec **
gate_lookup(int fd, int epfd)
{
	struct gate_rec **p;

	for (p = &gate_table[gate_hash(fd)]; *p != NULL; p = &(*p)->next)
		if ((*p)->fd == fd && (*p)->epfd == epfd)
			return p;
	return NULL;
}

static bool
gate_has_any(int fd)
{
	struct gate_rec *r;

	for (r = gate_table[gate_hash(fd)]; r != NULL; r = r->next)
		if (r->fd == fd)
			return true;
	return false;
}

static void
gate_unlink(struct gate_rec **p)
{
	struct gate_rec *r = *p;
	int fd = r->fd;

	*p = r->next;
	free(r);
	gate_nrecs--;
	if (!gate_has_any(fd))
		gate_mark(fd, false);
}

/* Lock held. 0, or -errno when out of memory. */
static int
gate_record(int epfd, int fd, const struct epoll_event *ev, bool hidden)
{
	struct gate_rec **p = gate_lookup(fd, epfd), *r;

	if (p != NULL) {
		(*p)->ev = *ev;
		(*p)->hidden = hidden;
		return 0;
	}
	if ((r = malloc(sizeof(*r))) == NULL)
		return -ENOMEM;
	r->fd = fd;
	r->epfd = epfd;
	r->ev = *ev;
	r->hidden = hidden;
	r->next = gate_table[gate_hash(fd)];
	gate_table[gate_hash(fd)] = r;
	gate_nrecs++;
	gate_mark(fd, true);
	gate_set_bit(gate_sets, epfd, true);
	return 0;
}

/* Take fd's registrations out of the kernel's sets (hide), or put them back
 * as the program made them. A call the kernel refuses proves the set or the
 * socket gone behind our back: the record goes. Lock held. */
static void
gate_move(int fd, bool hide)
{
	struct gate_rec **p = &gate_table[gate_hash(fd)];
	struct epoll_event ev;
	int (*ctl)(int, int, int, struct epoll_event *) = PRELOAD_REAL(epoll_ctl);
	bool done;

	while (*p != NULL) {
		if ((*p)->fd != fd || (*p)->hidden == hide) {
			p = &(*p)->next;
			continue;
		}
		ev = (*p)->ev;
		if (hide)
			done = ctl((*p)->epfd, EPOLL_CTL_DEL, fd, NULL) == 0;
		else
			done = ctl((*p)->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
			    (errno == EEXIST && ctl((*p)->epfd, EPOLL_CTL_MOD, fd, &ev) == 0);
		if (!done) {
			gate_unlink(p);
			continue;
		}
		(*p)->hidden = hide;
		p = &(*p)->next;
	}
}

void
gate_hide(int fd)
{
	gate_move(fd, true);
}

void
gate_restore(int fd)
{
	gate_move(fd, false);
}

void
gate_forget(int fd)
{
	struct gate_rec **p;
	unsigned b;

	if (gate_bit(gate_marked, fd)) {
		p = &gate_table[gate_hash(fd)];
		while (*p != NULL) {
			if ((*p)->fd == fd)
				gate_unlink(p);
			else
				p = &(*p)->next;
		}
	}
	/* An epoll set closed: its registrations go with it (the number may
	 * soon name another set, which must never get them). */
	if (gate_bit(gate_sets, fd)) {
		for (b = 0; b < GATE_BUCKETS; b++) {
			p = &gate_table[b];
			while (*p != NULL) {
				if ((*p)->epfd == fd)
					gate_unlink(p);
				else
					p = &(*p)->next;
			}
		}
		gate_set_bit(gate_sets, fd, false);
	}
}

/* epoll_ctl() on a pending fd, answered from the records. Lock held. */
static int
gate_ctl_pending(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct gate_rec **p;
	int r;

	if (PRELOAD_REAL(fcntl)(epfd, F_GETFD) < 0)
		return -EBADF;
	if (epfd == fd)
		return -EINVAL;
	if (op != EPOLL_CTL_DEL && ev == NULL)
		return -EFAULT;
	p = gate_lookup(fd, epfd);
	switch (op) {
	case EPOLL_CTL_ADD:
		if (p != NULL)
			return -EEXIST;
		return gate_record(epfd, fd, ev, true);
	case EPOLL_CTL_MOD:
		if (p == NULL)
			return -ENOENT;
		if (((*p)->ev.events & EPOLLEXCLUSIVE) || (ev->events & EPOLLEXCLUSIVE))
			return -EINVAL;
		r = gate_record(epfd, fd, ev, true);
		return r;
	case EPOLL_CTL_DEL:
		if (p == NULL)
			return -ENOENT;
		gate_unlink(p);
		return 0;
	default:
		return -EINVAL;
	}
}

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int (*real)(int, int, int, struct epoll_event *) = PRELOAD_REAL(epoll_ctl);
	struct gate_rec **p;
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	/* A signal handler of the lock's holder, or a vfork()ed child
	 * sharing our memory: the kernel alone. */
	if (!async_may_lock(true))
		return real(epfd, op, fd, ev);
	async_lock();
	if (async_pending_checked(fd)) {
		r = gate_ctl_pending(epfd, op, fd, ev);
		async_unlock();
		if (r < 0) {
			errno = -r;
			return -1;
		}
		return 0;
	}
	r = real(epfd, op, fd, ev);
	if (r == 0) {
		if (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD)
			(void)gate_record(epfd, fd, ev, false);
		else if (op == EPOLL_CTL_DEL && (p = gate_lookup(fd, epfd)) != NULL)
			gate_unlink(p);
	}
	async_unlock();
	return r;
}

/* The program lets go of fd: close(), or a dup2() over it. */
static void
gate_closing(int fd)
{
	if (__atomic_load_n(&udp_active, __ATOMIC_ACQUIRE))
		udp_forget(fd);
	if (dnsconn_maybe(fd))
		dnsconn_forget(fd);
	if ((gate_maybe_marked(fd) || (__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) &&
	    async_pending(fd))) && async_may_lock(true))
		async_forget(fd);
}

int
close(int fd)
{
	int (*real)(int) = PRELOAD_REAL(close);

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	gate_closing(fd);
	return real(fd);
}

int
shutdown(int fd, int how)
{
	int (*real)(int, int) = PRELOAD_REAL(shutdown);
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (__atomic_load_n(&udp_active, __ATOMIC_ACQUIRE) && (r = udp_shutdown(fd, how)) != 1) {
		if (r == 0)
			return 0;
		errno = -r;
		return -1;
	}
	r = real(fd, how);
	/* A DNS-over-TCP conversation we answer: its EOF is seen (and the
	 * program's own EOF given back after the last answer) when we look. */
	if (r == 0 && how != SHUT_RD && dnsconn_maybe(fd))
		dnsconn_pump(fd);
	return r;
}

int
close_range(unsigned int first, unsigned int last, int flags)
{
	int (*real)(unsigned int, unsigned int, int) = PRELOAD_REAL(close_range);
	unsigned int fd, top;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	/* CLOSE_RANGE_CLOEXEC (4) closes nothing now. */
	if (!(flags & 4) && first <= last &&
	    (__atomic_load_n(&gate_nrecs, __ATOMIC_RELAXED) > 0 ||
	    __atomic_load_n(&udp_active, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&dnsconn_active, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&async_active, __ATOMIC_ACQUIRE))) {
		top = last < (unsigned)INT_MAX ? last : (unsigned)INT_MAX;
		for (fd = first; fd <= top; fd++) {
			gate_closing((int)fd);
			/* Beyond the bitmap a scan per number would not end:
			 * records there go when they are proven stale. */
			if (fd + 1 >= PRELOAD_ASYNC_INDEX_FDS)
				break;
		}
	}
	return real(first, last, flags);
}

int
dup(int fd)
{
	int (*real)(int) = PRELOAD_REAL(dup);
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = real(fd);
	if (r >= 0 && __atomic_load_n(&async_active, __ATOMIC_ACQUIRE))
		async_dup(fd, r);
	if (r >= 0)
		udp_dup(fd, r);
	return r;
}

static int
gate_dup3(int fd, int fd2, int flags, bool three)
{
	int r;

	/* fd2 is closed only when the call can succeed. */
	if (fd != fd2 && (gate_maybe_marked(fd2) || __atomic_load_n(&udp_active, __ATOMIC_ACQUIRE) ||
	    dnsconn_maybe(fd2) ||
	    (__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) && async_pending(fd2))) &&
	    PRELOAD_REAL(fcntl)(fd, F_GETFD) >= 0)
		gate_closing(fd2);
	r = three ? PRELOAD_REAL(dup3)(fd, fd2, flags) : PRELOAD_REAL(dup2)(fd, fd2);
	if (r >= 0 && fd != fd2 && __atomic_load_n(&async_active, __ATOMIC_ACQUIRE))
		async_dup(fd, r);
	if (r >= 0 && fd != fd2)
		udp_dup(fd, r);
	return r;
}

int
dup2(int fd, int fd2)
{
	if (PRELOAD_REAL(dup2) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return gate_dup3(fd, fd2, 0, false);
}

int
dup3(int fd, int fd2, int flags)
{
	if (PRELOAD_REAL(dup3) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return gate_dup3(fd, fd2, flags, true);
}

/* fcntl() passes its third argument on as a long: glibc reads it as a
 * pointer-sized value whatever cmd says. */
static int
gate_fcntl(int (*real)(int, int, ...), int fd, int cmd, long arg)
{
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = real(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) &&
	    __atomic_load_n(&async_active, __ATOMIC_ACQUIRE))
		async_dup(fd, r);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		udp_dup(fd, r);
	return r;
}

int
fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return gate_fcntl(PRELOAD_REAL(fcntl), fd, cmd, arg);
}

int
fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return gate_fcntl(PRELOAD_REAL(fcntl64), fd, cmd, arg);
}

/* A round's holds on pending sockets (async_waitfd()), and its arrays when
 * they are not on the stack. */
struct gate_poll_holds {
	void **ref;
	nfds_t k;
	struct pollfd *heap;
};

/* The round's wait is a cancellation point, as poll() is: a cancelled
 * thread lets go of the sockets it waited on. */
static void
gate_poll_cancelled(void *arg)
{
	struct gate_poll_holds *h = arg;
	nfds_t i;

	for (i = 0; i < h->k; i++)
		async_release(h->ref[i]);
	if (h->heap != NULL) {
		free(h->heap);
		free(h->ref);
	}
}

/* A round's wait: real ppoll(), h let go of if the thread is cancelled. */
static int
gate_poll_wait(int (*real)(struct pollfd *, nfds_t, const struct timespec *,
    const sigset_t *), struct pollfd *arr, nfds_t n, const struct timespec *tmo,
    const sigset_t *mask, struct gate_poll_holds *h)
{
	int r, err;

	pthread_cleanup_push(gate_poll_cancelled, h);
	r = real(arr, n, tmo, mask);
	err = errno;
	pthread_cleanup_pop(0);
	errno = err;
	return r;
}

/*
 * The readiness of pending sockets in poll() form. Each round: the pending
 * descriptors are left out (fd -1: the kernel skips it) and their wake
 * descriptors put in; after the wait, a pending socket that finished reports
 * what a zero-timeout poll() of it says. Returns like ppoll().
 */
static int
gate_poll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
    const sigset_t *mask)
{
	int (*real)(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *) = PRELOAD_REAL(ppoll);
	struct pollfd stack[GATE_POLL_STACK], *arr = stack, one;
	void *refs[GATE_POLL_STACK], **ref = refs;
	struct timespec left, *lp;
	struct gate_poll_holds h;
	long long deadline = 0, ms;
	nfds_t i, k, npend;
	int r, ready, err, w, cancel;
	bool slices;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (tmo != NULL) {
		if (tmo->tv_sec < 0 || tmo->tv_nsec < 0 || tmo->tv_nsec >= 1000 * GATE_NS_PER_MS)
			return real(fds, n, tmo, mask);	/* EINVAL */
		deadline = tunnel_now_ms() + (long long)tmo->tv_sec * 1000 +
		    (tmo->tv_nsec + GATE_NS_PER_MS - 1) / GATE_NS_PER_MS;
	}
	for (;;) {
		for (i = 0, npend = 0; i < n; i++)
			if (fds[i].fd >= 0 && async_pending(fds[i].fd))
				npend++;
		if (npend == 0) {
			if (tmo == NULL)
				return real(fds, n, NULL, mask);
			ms = deadline - tunnel_now_ms();
			left.tv_sec = ms > 0 ? ms / 1000 : 0;
			left.tv_nsec = ms > 0 ? (ms % 1000) * GATE_NS_PER_MS : 0;
			return real(fds, n, &left, mask);
		}
		if (n + npend > GATE_POLL_STACK) {
			arr = malloc((n + npend) * sizeof(*arr));
			ref = malloc(npend * sizeof(*ref));
			if (arr == NULL || ref == NULL) {
				free(arr);
				free(ref);
				errno = ENOMEM;
				return -1;
			}
		}
		memcpy(arr, fds, n * sizeof(*arr));
		slices = false;
		for (i = 0, k = 0; i < n && k < npend; i++) {
			if (fds[i].fd < 0 || !async_pending(fds[i].fd))
				continue;
			w = async_waitfd(fds[i].fd, &ref[k]);
			if (w == -1)
				continue;	/* over since the count: the kernel's word */
			arr[i].fd = -1;
			if (w == -2) {
				slices = true;	/* nothing to wait on: look again soon */
				continue;
			}
			arr[n + k].fd = w;
			arr[n + k].events = POLLIN;
			arr[n + k].revents = 0;
			k++;
		}
		lp = NULL;
		ms = tmo != NULL ? deadline - tunnel_now_ms() : -1;
		if (tmo != NULL && ms < 0)
			ms = 0;		/* past the deadline: a last look, never forever */
		if (slices && (ms < 0 || ms > PRELOAD_WAIT_SLICE_MS))
			ms = PRELOAD_WAIT_SLICE_MS;
		if (ms >= 0) {
			left.tv_sec = ms > 0 ? ms / 1000 : 0;
			left.tv_nsec = ms > 0 ? (ms % 1000) * GATE_NS_PER_MS : 0;
			lp = &left;
		}
		h.ref = ref;
		h.k = k;
		h.heap = arr != stack ? arr : NULL;
		r = gate_poll_wait(real, arr, n + k, lp, mask, &h);
		err = errno;
		for (i = 0; i < k; i++)
			async_release(ref[i]);
		ready = 0;
		if (r >= 0) {
			for (i = 0; i < n; i++) {
				if (arr[i].fd >= 0 || fds[i].fd < 0) {
					fds[i].revents = arr[i].revents;
				} else if (async_pending(fds[i].fd)) {
					fds[i].revents = 0;
				} else {
					/* Over during the wait: what the kernel says now. */
					one = fds[i];
					one.revents = 0;
					/* A look, no wait: no cancellation
					 * before the arrays are freed. */
					pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
					(void)real(&one, 1, &(struct timespec){ 0, 0 }, NULL);
					pthread_setcancelstate(cancel, NULL);
					fds[i].revents = one.revents;
				}
				if (fds[i].revents != 0)
					ready++;
			}
		}
		if (arr != stack) {
			free(arr);
			free(ref);
			arr = stack;
			ref = refs;
		}
		if (r < 0) {
			errno = err;
			return -1;
		}
		if (ready > 0 || (tmo != NULL && deadline - tunnel_now_ms() <= 0))
			return ready;
	}
}

/* Does the set name a pending socket? The fast path of the calls below. */
static bool
gate_pollfds_pending(const struct pollfd *fds, nfds_t n)
{
	nfds_t i;

	if (!__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) || fds == NULL)
		return false;
	for (i = 0; i < n; i++)
		if (fds[i].fd >= 0 && async_pending(fds[i].fd))
			return true;
	return false;
}

int
poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;
	int (*real)(struct pollfd *, nfds_t, int) = PRELOAD_REAL(poll);

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!gate_pollfds_pending(fds, n))
		return real(fds, n, timeout);
	ts.tv_sec = timeout / 1000;
	ts.tv_nsec = (long)(timeout % 1000) * GATE_NS_PER_MS;
	return gate_poll(fds, n, timeout < 0 ? NULL : &ts, NULL);
}

int
__poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	int (*real)(struct pollfd *, nfds_t, int, size_t) = PRELOAD_REAL(__poll_chk);

	if (real == NULL || fdslen / sizeof(*fds) < n)
		return real != NULL ? real(fds, n, timeout, fdslen) : poll(fds, n, timeout);
	if (!gate_pollfds_pending(fds, n))
		return real(fds, n, timeout, fdslen);
	return poll(fds, n, timeout);
}

int
ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	int (*real)(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *) = PRELOAD_REAL(ppoll);

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!gate_pollfds_pending(fds, n))
		return real(fds, n, tmo, mask);
	return gate_poll(fds, n, tmo, mask);
}

int
__ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
    const sigset_t *mask, size_t fdslen)
{
	int (*real)(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *, size_t) = PRELOAD_REAL(__ppoll_chk);

	if (real == NULL || fdslen / sizeof(*fds) < n)
		return real != NULL ? real(fds, n, tmo, mask, fdslen) : ppoll(fds, n, tmo, mask);
	if (!gate_pollfds_pending(fds, n))
		return real(fds, n, tmo, mask, fdslen);
	return ppoll(fds, n, tmo, mask);
}

/* Does a select() set name a pending socket? */
static bool
gate_fdset_pending(int nfds, const fd_set *r, const fd_set *w, const fd_set *e)
{
	int fd;

	if (!__atomic_load_n(&async_active, __ATOMIC_ACQUIRE))
		return false;
	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	for (fd = 0; fd < nfds; fd++)
		if (((r != NULL && FD_ISSET(fd, r)) || (w != NULL && FD_ISSET(fd, w)) ||
		    (e != NULL && FD_ISSET(fd, e))) && async_pending(fd))
			return true;
	return false;
}

/*
 * select() and pselect() as poll(): the sets in, the sets and the count out
 * as the kernel gives them (a descriptor counts once per set it is ready
 * in; POLLNVAL is EBADF).
 */
static int
gate_select(int nfds, fd_set *rs, fd_set *ws, fd_set *es, const struct timespec *tmo,
    const sigset_t *mask)
{
	struct pollfd *pf;
	nfds_t n = 0, i;
	int fd, r, count = 0;

	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	pf = malloc((size_t)(nfds > 0 ? nfds : 1) * sizeof(*pf));
	if (pf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (rs != NULL && FD_ISSET(fd, rs))
			ev |= POLLIN;
		if (ws != NULL && FD_ISSET(fd, ws))
			ev |= POLLOUT;
		if (es != NULL && FD_ISSET(fd, es))
			ev |= POLLPRI;
		if (ev == 0)
			continue;
		pf[n].fd = fd;
		pf[n].events = ev;
		pf[n].revents = 0;
		n++;
	}
	r = gate_poll(pf, n, tmo, mask);
	if (r < 0) {
		free(pf);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (pf[i].revents & POLLNVAL) {
			free(pf);
			errno = EBADF;
			return -1;
		}
	if (rs != NULL)
		FD_ZERO(rs);
	if (ws != NULL)
		FD_ZERO(ws);
	if (es != NULL)
		FD_ZERO(es);
	for (i = 0; i < n; i++) {
		short got = pf[i].revents, ev = pf[i].events;

		if ((ev & POLLIN) && (got & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(pf[i].fd, rs);
			count++;
		}
		if ((ev & POLLOUT) && (got & (POLLOUT | POLLERR))) {
			FD_SET(pf[i].fd, ws);
			count++;
		}
		if ((ev & POLLPRI) && (got & POLLPRI)) {
			FD_SET(pf[i].fd, es);
			count++;
		}
	}
	free(pf);
	return count;
}

int
select(int nfds, fd_set *rs, fd_set *ws, fd_set *es, struct timeval *tv)
{
	int (*real)(int, fd_set *, fd_set *, fd_set *, struct timeval *) =
	    PRELOAD_REAL(select);
	struct timespec ts;
	long long deadline = 0, left;
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!gate_fdset_pending(nfds, rs, ws, es) || nfds < 0 ||
	    (tv != NULL && (tv->tv_sec < 0 || tv->tv_usec < 0)))
		return real(nfds, rs, ws, es, tv);
	if (tv != NULL) {
		ts.tv_sec = tv->tv_sec + tv->tv_usec / 1000000;
		ts.tv_nsec = (tv->tv_usec % 1000000) * 1000;
		deadline = tunnel_now_ms() + (long long)ts.tv_sec * 1000 + ts.tv_nsec / GATE_NS_PER_MS;
	}
	r = gate_select(nfds, rs, ws, es, tv != NULL ? &ts : NULL, NULL);
	/* Linux's select() leaves the time not slept in *tv. */
	if (tv != NULL) {
		left = deadline - tunnel_now_ms();
		if (left < 0)
			left = 0;
		tv->tv_sec = left / 1000;
		tv->tv_usec = (left % 1000) * 1000;
	}
	return r;
}

int
pselect(int nfds, fd_set *rs, fd_set *ws, fd_set *es, const struct timespec *tmo,
    const sigset_t *mask)
{
	int (*real)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
	    const sigset_t *) = PRELOAD_REAL(pselect);

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!gate_fdset_pending(nfds, rs, ws, es) || nfds < 0)
		return real(nfds, rs, ws, es, tmo, mask);
	return gate_select(nfds, rs, ws, es, tmo, mask);
}

/*
 * The read and write calls: 0 to go on with the real call, -1 with errno
 * set when fd is pending (EAGAIN; a blocking socket waits for the outcome
 * and goes on, or gets EINTR).
 */
static int
gate_io(int fd, enum async_hold_kind kind, int flags)
{
	int r;

	if (!__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) || !async_pending(fd))
		return 0;
	r = async_hold(fd, kind, (flags & MSG_DONTWAIT) != 0);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

#define GATE_IO(fd, kind, flags, real, ...) do {			\
	if (PRELOAD_REAL(real) == NULL) {				\
		errno = ENOSYS;						\
		return -1;						\
	}								\
	if (gate_io(fd, kind, flags) != 0)				\
		return -1;						\
	return preload_real.real(__VA_ARGS__);				\
} while (0)

/* The same, for a call an associated UDP socket (udp.c) answers with udp
 * (UDP_NOT_MINE: the real call after all); after a write, a DNS query to
 * answer (dnsconn.c). */
#define GATE_UDP(fd, kind, flags, udp, real, ...) do {			\
	ssize_t udp_r_;							\
	if (PRELOAD_REAL(real) == NULL || PRELOAD_REAL(recvmsg) == NULL) { \
		errno = ENOSYS;						\
		return -1;						\
	}								\
	if (gate_io(fd, kind, flags) != 0)				\
		return -1;						\
	if (udp_maybe(fd) && (udp_r_ = (udp)) != UDP_NOT_MINE)		\
		return udp_r_;						\
	udp_r_ = preload_real.real(__VA_ARGS__);			\
	/* A query written, or room made for held answers (dnsconn.c). */ \
	if (udp_r_ > 0 && dnsconn_maybe(fd))				\
		dnsconn_pump(fd);					\
	return udp_r_;							\
} while (0)

/* A message header for iov; -1 (EINVAL) for a negative count. */
static int
gate_udp_msg(struct msghdr *m, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0) {
		errno = EINVAL;
		return -1;
	}
	memset(m, 0, sizeof(*m));
	m->msg_iov = (struct iovec *)iov;
	m->msg_iovlen = (size_t)iovcnt;
	return 0;
}

/* recvfrom() and its kin on an associated UDP socket. */
static ssize_t
gate_udp_recv(int fd, const struct iovec *iov, int iovcnt, int flags,
    struct sockaddr *sa, socklen_t *len)
{
	struct msghdr m;
	ssize_t r;

	if (sa != NULL && len == NULL)
		return UDP_NOT_MINE;	/* the kernel's EFAULT */
	if (gate_udp_msg(&m, iov, iovcnt) != 0)
		return -1;
	if (sa != NULL && len != NULL) {
		m.msg_name = sa;
		m.msg_namelen = *len;
	}
	r = udp_recv(fd, &m, flags);
	if (r >= 0 && sa != NULL && len != NULL)
		*len = m.msg_namelen;
	return r;
}

/* send() and write() on one: to the peer connect() named. */
static ssize_t
gate_udp_send(int fd, const struct iovec *iov, int iovcnt, int flags)
{
	struct msghdr m;

	if (gate_udp_msg(&m, iov, iovcnt) != 0)
		return -1;
	return udp_send(fd, &m, flags, NULL, NULL, 0);
}

/* glibc's: a _FORTIFY_SOURCE check failed (the caller's buffer is smaller
 * than it says). */
extern void __chk_fail(void) __attribute__((noreturn));

#define IOV1(buf, n)	(&(struct iovec){ .iov_base = (void *)(buf), .iov_len = (n) })

ssize_t
read(int fd, void *buf, size_t n)
{
	GATE_UDP(fd, HOLD_READ, 0, gate_udp_recv(fd, IOV1(buf, n), 1, 0, NULL, NULL),
	    read, fd, buf, n);
}

ssize_t
__read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	GATE_UDP(fd, HOLD_READ, 0, gate_udp_recv(fd, IOV1(buf, n), 1, 0, NULL, NULL),
	    __read_chk, fd, buf, n, buflen);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	GATE_UDP(fd, HOLD_WRITE, 0, gate_udp_send(fd, IOV1(buf, n), 1, 0), write, fd, buf, n);
}

ssize_t
readv(int fd, const struct iovec *iov, int n)
{
	GATE_UDP(fd, HOLD_READ, 0, gate_udp_recv(fd, iov, n, 0, NULL, NULL), readv, fd, iov, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	GATE_UDP(fd, HOLD_WRITE, 0, gate_udp_send(fd, iov, n, 0), writev, fd, iov, n);
}

ssize_t
recv(int fd, void *buf, size_t n, int flags)
{
	GATE_UDP(fd, HOLD_READ, flags, gate_udp_recv(fd, IOV1(buf, n), 1, flags, NULL, NULL),
	    recv, fd, buf, n, flags);
}

ssize_t
__recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	GATE_UDP(fd, HOLD_READ, flags, gate_udp_recv(fd, IOV1(buf, n), 1, flags, NULL, NULL),
	    __recv_chk, fd, buf, n, buflen, flags);
}

ssize_t
recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	GATE_UDP(fd, HOLD_READ, flags, gate_udp_recv(fd, IOV1(buf, n), 1, flags, sa, len),
	    recvfrom, fd, buf, n, flags, sa, len);
}

ssize_t
__recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
    struct sockaddr *sa, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	GATE_UDP(fd, HOLD_READ, flags, gate_udp_recv(fd, IOV1(buf, n), 1, flags, sa, len),
	    __recvfrom_chk, fd, buf, n, buflen, flags, sa, len);
}

ssize_t
recvmsg(int fd, struct msghdr *msg, int flags)
{
	GATE_UDP(fd, HOLD_READ, flags, msg == NULL ? preload_real.recvmsg(fd, msg, flags) :
	    udp_recv(fd, msg, flags), recvmsg, fd, msg, flags);
}

/* recvmmsg() of an associated socket: one udp_recv() per message, the
 * first as flags say, the rest only while datagrams are waiting (timeout
 * and MSG_WAITFORONE then mean nothing more). */
static int
gate_udp_recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
	unsigned int i;
	ssize_t r;

	flags &= ~MSG_WAITFORONE;
	if (n > UIO_MAXIOV)
		n = UIO_MAXIOV;
	for (i = 0; i < n; i++) {
		r = udp_recv(fd, &vec[i].msg_hdr, i == 0 ? flags : flags | MSG_DONTWAIT);
		if (r == UDP_NOT_MINE && i == 0)
			return UDP_NOT_MINE;
		if (r < 0)
			return i > 0 ? (int)i : -1;
		vec[i].msg_len = (unsigned int)r;
	}
	return (int)i;
}

int
recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *tmo)
{
	GATE_UDP(fd, HOLD_READ, flags, vec == NULL ? preload_real.recvmmsg(fd, vec, n, flags, tmo) :
	    gate_udp_recvmmsg(fd, vec, n, flags), recvmmsg, fd, vec, n, flags, tmo);
}

ssize_t
send(int fd, const void *buf, size_t n, int flags)
{
	GATE_UDP(fd, HOLD_WRITE, flags, gate_udp_send(fd, IOV1(buf, n), 1, flags),
	    send, fd, buf, n, flags);
}

/* sendfile() to a UDP socket connect()ed through us would put the file's
 * bytes on the relay with no §7 header, which the relay drops (or on our
 * DNS injector): refused, as MSG_MORE is (udp.c). One connect()ed
 * elsewhere since is the kernel's. 0, or -1 with errno. */
static int
gate_udp_sendfile(int out)
{
	if (!udp_maybe(out) || !udp_has_our_peer(out))
		return 0;
	preload_log_limited(LOG_LVL_ERROR, preload_log_key("UDP", "sendfile"),
	    "UDP through the proxy: sendfile() is not supported on a relayed socket");
	errno = EOPNOTSUPP;
	return -1;
}

ssize_t
sendfile(int out, int in, off_t *off, size_t n)
{
	if (gate_udp_sendfile(out) != 0)
		return -1;
	GATE_IO(out, HOLD_WRITE, 0, sendfile, out, in, off, n);
}

ssize_t
sendfile64(int out, int in, off_t *off, size_t n)
{
	if (gate_udp_sendfile(out) != 0)
		return -1;
	GATE_IO(out, HOLD_WRITE, 0, sendfile64, out, in, off, n);
}

/*
 * The sendto()/sendmsg()/sendmmsg() hooks (connect.c) ask here first. A
 * fast-open send is a connect() first: on a socket whose handshake is under
 * way the kernel says EALREADY when the call may not wait (MSG_DONTWAIT or
 * O_NONBLOCK), else waits for the connection and sends as a plain send, so
 * MSG_FASTOPEN leaves *flags then (on the connected socket the kernel would
 * say EISCONN).
 */
int
gate_send_hold(int fd, int *flags)
{
	int r;

	if (!(*flags & MSG_FASTOPEN))
		return gate_io(fd, HOLD_WRITE, *flags);
	if (!__atomic_load_n(&async_active, __ATOMIC_ACQUIRE) || !async_pending(fd))
		return 0;
	r = async_hold(fd, HOLD_CONNECT, (*flags & MSG_DONTWAIT) != 0);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (r > 0)
		*flags &= ~MSG_FASTOPEN;
	return 0;
}
