/*
 * loop.c: epoll backend, fd-indexed handler table, binary min-heap of timers.
 *
 * Handlers live in a table indexed by fd rather than behind epoll's data
 * pointer: a callback may close and free another session whose events are
 * still waiting in this batch, and a table lookup then finds no handler (or
 * the fd's new owner, which copes with a spurious readiness because every
 * socket is non-blocking) instead of a dangling pointer.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "defaults.h"
#include "loop.h"

struct loop_io {
	loop_fd_fn *fn;
	void *arg;
	uint32_t mask;			/* what epoll currently holds; 0 = not in the set */
	uint64_t born;			/* iteration of the loop_add() */
};

struct loop {
	int epfd;
	bool stop;
	uint64_t now;
	uint64_t iter;			/* epoll_wait() calls so far */
	struct loop_io *io;		/* indexed by fd */
	size_t nio;
	struct loop_timer **heap;
	size_t nheap, capheap;
};

static uint64_t
loop_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
loop_new(struct loop **out)
{
	struct loop *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -ENOMEM;
	/*
	 * The first heap now, not on the first timer: until sessions fill it,
	 * arming a timer then cannot fail (main.c counts on it for the
	 * listeners' pause timers).
	 */
	if ((l->heap = calloc(SERVER_LOOP_FDS_INITIAL, sizeof(*l->heap))) == NULL) {
		free(l);
		return -ENOMEM;
	}
	l->capheap = SERVER_LOOP_FDS_INITIAL;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		int err = errno;

		free(l->heap);
		free(l);
		return -err;
	}
	l->now = loop_clock();
	*out = l;
	return 0;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	close(l->epfd);
	free(l->io);
	free(l->heap);
	free(l);
}

/* --- descriptors -------------------------------------------------------- */

static int
loop_grow(struct loop *l, int fd)
{
	size_t n = l->nio ? l->nio : SERVER_LOOP_FDS_INITIAL;
	struct loop_io *io;

	while (n <= (size_t)fd)
		n *= 2;
	if ((io = realloc(l->io, n * sizeof(*io))) == NULL)
		return -ENOMEM;
	memset(io + l->nio, 0, (n - l->nio) * sizeof(*io));
	l->io = io;
	l->nio = n;
	return 0;
}

static int
loop_apply(struct loop *l, int fd, uint32_t mask)
{
	struct loop_io *io = &l->io[fd];
	struct epoll_event ev = { .events = mask, .data.fd = fd };
	int op;

	if (mask == io->mask)
		return 0;
	if (mask == 0)
		op = EPOLL_CTL_DEL;
	else if (io->mask == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(l->epfd, op, fd, &ev) == -1)
		return -errno;
	io->mask = mask;
	return 0;
}

int
loop_add(struct loop *l, int fd, uint32_t mask, loop_fd_fn *fn, void *arg)
{
	int r;

	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= l->nio && (r = loop_grow(l, fd)) < 0)
		return r;
	l->io[fd].fn = fn;
	l->io[fd].arg = arg;
	l->io[fd].mask = 0;
	l->io[fd].born = l->iter;
	if ((r = loop_apply(l, fd, mask)) < 0)
		l->io[fd].fn = NULL;
	return r;
}

int
loop_set(struct loop *l, int fd, uint32_t mask)
{
	if (fd < 0 || (size_t)fd >= l->nio || l->io[fd].fn == NULL)
		return -EBADF;
	return loop_apply(l, fd, mask);
}

void
loop_del(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nio || l->io[fd].fn == NULL)
		return;
	/* No EPOLL_CTL_DEL: the close() that follows takes the fd out of the
	 * epoll set (we never duplicate one), and events of this round still
	 * queued for it are dropped by the fn == NULL and born checks. */
	l->io[fd].fn = NULL;
	l->io[fd].arg = NULL;
	l->io[fd].mask = 0;
}

/* --- timers: a binary min-heap on when, each timer knowing its slot ---- */

static void
heap_place(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void
heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (l->heap[parent]->when <= t->when)
			break;
		heap_place(l, i, l->heap[parent]);
		i = parent;
	}
	heap_place(l, i, t);
}

static void
heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[c]->when)
			c++;
		if (t->when <= l->heap[c]->when)
			break;
		heap_place(l, i, l->heap[c]);
		i = c;
	}
	heap_place(l, i, t);
}

void
loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	size_t i;
	struct loop_timer *last;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	last = l->heap[--l->nheap];
	if (i == l->nheap)
		return;
	heap_place(l, i, last);
	heap_down(l, i);
	heap_up(l, last->slot - 1);
}

int
loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms,
    loop_timer_fn *fn, void *arg)
{
	loop_timer_stop(l, t);
	if (l->nheap == l->capheap) {
		size_t n = l->capheap ? 2 * l->capheap : SERVER_LOOP_FDS_INITIAL;
		struct loop_timer **h = realloc(l->heap, n * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		l->heap = h;
		l->capheap = n;
	}
	/* From the clock now, not the iteration's: a session accepted late in
	 * a long iteration must not be cut early. */
	t->when = loop_clock() + ms;
	t->fn = fn;
	t->arg = arg;
	heap_place(l, l->nheap, t);
	l->nheap++;
	heap_up(l, l->nheap - 1);
	return 0;
}

uint64_t
loop_now(const struct loop *l)
{
	return l->now;
}

static void
loop_fire_timers(struct loop *l)
{
	while (l->nheap > 0 && l->heap[0]->when <= l->now && !l->stop) {
		struct loop_timer *t = l->heap[0];

		loop_timer_stop(l, t);
		t->fn(l, t->arg);
	}
}

static int
loop_timeout(const struct loop *l)
{
	uint64_t d;

	if (l->nheap == 0)
		return -1;
	if (l->heap[0]->when <= l->now)
		return 0;
	d = l->heap[0]->when - l->now;
	return d > INT_MAX ? INT_MAX : (int)d;
}

/* --- the loop ----------------------------------------------------------- */

int
loop_run(struct loop *l)
{
	struct epoll_event ev[SERVER_LOOP_EVENTS];

	l->stop = false;
	while (!l->stop) {
		int i, n;

		n = epoll_wait(l->epfd, ev, SERVER_LOOP_EVENTS, loop_timeout(l));
		l->now = loop_clock();
		l->iter++;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n && !l->stop; i++) {
			int fd = ev[i].data.fd;
			struct loop_io *io;

			if ((size_t)fd >= l->nio)
				continue;
			io = &l->io[fd];
			/*
			 * An fd closed and reused by a new owner within this
			 * batch: its events were the old owner's (a stale
			 * EPOLLOUT would fake a finished connect).
			 */
			if (io->fn == NULL || io->mask == 0 || io->born == l->iter)
				continue;
			io->fn(l, fd, ev[i].events, io->arg);
		}
		loop_fire_timers(l);
	}
	return 0;
}

void
loop_stop(struct loop *l)
{
	l->stop = true;
}
