/*
 * fake_loop.c: server/loop.h for fuzz_session, without epoll or a clock.
 *
 * Descriptors are the shim's (netshim.h); readiness comes from
 * shim_events() at the start of each round, as epoll_wait() would report
 * it, and callbacks run in fd order with the real loop's rule for fds
 * deregistered earlier in the same round. Time stands still until the
 * driver moves it. The loop also keeps which client connection each
 * callback argument serves, so work done in a timer is charged to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "fake.h"
#include "fuzz.h"
#include "netshim.h"

enum {
	FAKE_TIMERS_MAX = 64,
	FAKE_OWNERS_MAX = 4 * SHIM_SOCKS_MAX,
	FAKE_CLOCK_START = 1000000,	/* ms; not 0, as a real clock is not */
	FAKE_MASK_ALLOWED = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP,
};

struct fake_io {
	loop_fd_fn *fn;
	void *arg;
	uint32_t mask;
};

struct fake_owner {
	const void *arg;
	int root;
};

struct loop {
	uint64_t now;
	struct fake_io io[SHIM_SOCKS_MAX];	/* by fd - SHIM_FD_BASE */
	struct loop_timer *timers[FAKE_TIMERS_MAX];
	size_t ntimers;
	struct fake_owner owners[FAKE_OWNERS_MAX];
	size_t nowners;
};

static struct loop *fake_loop_cur;

static struct fake_io *
fake_io(struct loop *l, int fd)
{
	if (fd < SHIM_FD_BASE || fd >= SHIM_FD_BASE + SHIM_SOCKS_MAX)
		return NULL;
	return &l->io[fd - SHIM_FD_BASE];
}

int
loop_new(struct loop **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return -ENOMEM;
	(*out)->now = FAKE_CLOCK_START;
	fake_loop_cur = *out;
	return 0;
}

void
loop_free(struct loop *l)
{
	if (fake_loop_cur == l)
		fake_loop_cur = NULL;
	free(l);
}

/* The latest registration of arg wins: a freed owner's address may be reused. */
static void
fake_owner_set(struct loop *l, const void *arg, int root)
{
	size_t i;

	for (i = 0; i < l->nowners; i++) {
		if (l->owners[i].arg == arg) {
			l->owners[i].root = root;
			return;
		}
	}
	if (l->nowners < FAKE_OWNERS_MAX) {
		l->owners[l->nowners].arg = arg;
		l->owners[l->nowners++].root = root;
	}
}

static int
fake_owner_root(const struct loop *l, const void *arg)
{
	size_t i;

	for (i = 0; i < l->nowners; i++)
		if (l->owners[i].arg == arg)
			return l->owners[i].root;
	return -1;
}

int
loop_add(struct loop *l, int fd, uint32_t mask, loop_fd_fn *fn, void *arg)
{
	struct fake_io *io = fake_io(l, fd);
	struct shim_sock *s = shim_get(fd);

	/* The server registers only sockets it holds open. */
	FUZZ_CHECK(io != NULL && s != NULL && s->nclose == 0);
	FUZZ_CHECK((mask & ~(uint32_t)FAKE_MASK_ALLOWED) == 0 && fn != NULL);
	if (shim_plan.loop_add_fails) {
		shim_plan.loop_add_fails = false;
		return -ENOMEM;
	}
	io->fn = fn;
	io->arg = arg;
	io->mask = mask;
	fake_owner_set(l, arg, s->root);
	return 0;
}

int
loop_set(struct loop *l, int fd, uint32_t mask)
{
	struct fake_io *io = fake_io(l, fd);

	FUZZ_CHECK((mask & ~(uint32_t)FAKE_MASK_ALLOWED) == 0);
	if (io == NULL || io->fn == NULL)
		return -EBADF;
	io->mask = mask;
	return 0;
}

void
loop_del(struct loop *l, int fd)
{
	struct fake_io *io = fake_io(l, fd);

	if (io != NULL)
		memset(io, 0, sizeof(*io));
}

int
loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms,
    loop_timer_fn *fn, void *arg)
{
	loop_timer_stop(l, t);
	if (shim_plan.timer_fails || l->ntimers == FAKE_TIMERS_MAX) {
		shim_plan.timer_fails = false;
		return -ENOMEM;
	}
	t->when = l->now + ms;
	t->fn = fn;
	t->arg = arg;
	l->timers[l->ntimers++] = t;
	t->slot = l->ntimers;
	return 0;
}

void
loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	size_t i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	FUZZ_CHECK(i < l->ntimers && l->timers[i] == t);
	t->slot = 0;
	l->timers[i] = l->timers[--l->ntimers];
	if (i < l->ntimers)
		l->timers[i]->slot = i + 1;
}

uint64_t
loop_now(const struct loop *l)
{
	return l->now;
}

/* --- the driver's side ---------------------------------------------------- */

bool
fake_loop_round(struct loop *l)
{
	struct {
		int fd;
		uint32_t events;
	} ready[SHIM_SOCKS_MAX];
	size_t i, n = 0;

	/* As epoll_wait(): ERR and HUP whatever the mask, the rest if asked. */
	for (i = 0; i < SHIM_SOCKS_MAX; i++) {
		int fd = SHIM_FD_BASE + (int)i;
		uint32_t ev;

		if (l->io[i].fn == NULL || l->io[i].mask == 0)
			continue;
		ev = shim_events(fd) & (l->io[i].mask | EPOLLERR | EPOLLHUP);
		if (ev != 0) {
			ready[n].fd = fd;
			ready[n++].events = ev;
		}
	}
	for (i = 0; i < n; i++) {
		struct fake_io *io = fake_io(l, ready[i].fd);

		/* loop.c: an fd deregistered by an earlier callback is skipped. */
		if (io->fn == NULL || io->mask == 0)
			continue;
		shim_set_root(shim_root(ready[i].fd));
		io->fn(l, ready[i].fd, ready[i].events, io->arg);
	}
	return n > 0;
}

bool
fake_loop_fire(struct loop *l)
{
	bool fired = false;

	for (;;) {
		struct loop_timer *t = NULL;
		size_t i;

		/* The earliest due timer, as the real heap would pick it. */
		for (i = 0; i < l->ntimers; i++)
			if (l->timers[i]->when <= l->now &&
			    (t == NULL || l->timers[i]->when < t->when))
				t = l->timers[i];
		if (t == NULL)
			return fired;
		loop_timer_stop(l, t);
		shim_set_root(fake_owner_root(l, t->arg));
		t->fn(l, t->arg);
		fired = true;
	}
}

void
fake_loop_advance(struct loop *l, uint64_t ms)
{
	l->now += ms;
}

bool
fake_loop_to_next_timer(struct loop *l)
{
	size_t i;
	uint64_t when = UINT64_MAX;

	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i]->when < when)
			when = l->timers[i]->when;
	if (l->ntimers == 0)
		return false;
	if (when > l->now)
		l->now = when;
	return true;
}

size_t
fake_loop_watched(const struct loop *l)
{
	size_t i, n = 0;

	for (i = 0; i < SHIM_SOCKS_MAX; i++)
		n += l->io[i].fn != NULL;
	return n;
}

size_t
fake_loop_timers(const struct loop *l)
{
	return l->ntimers;
}

bool
fake_loop_watches(int fd)
{
	struct fake_io *io;

	if (fake_loop_cur == NULL || (io = fake_io(fake_loop_cur, fd)) == NULL)
		return false;
	return io->fn != NULL;
}
