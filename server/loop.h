/*
 * loop.h: a small epoll event loop with fd callbacks and a timer heap.
 *
 * One struct loop per thread; nothing in it is shared, so several loops may
 * run side by side. Callbacks run on the loop's thread. Epoll is level
 * triggered; an fd whose interest mask is 0 is taken out of the epoll set
 * (so a hung-up socket we are not waiting on cannot make the loop spin) but
 * keeps its callback.
 */
#ifndef SOCKSIFYD_LOOP_H
#define SOCKSIFYD_LOOP_H

#include <stdint.h>
#include <stddef.h>

struct loop;

/* events: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP as epoll reports them. */
typedef void loop_fd_fn(struct loop *l, int fd, uint32_t events, void *arg);
typedef void loop_timer_fn(struct loop *l, void *arg);

/* Embedded in its owner; zero-initialise it before first use. */
struct loop_timer {
	uint64_t when;			/* loop clock, ms */
	size_t slot;			/* heap index + 1; 0 when not armed */
	loop_timer_fn *fn;
	void *arg;
};

int loop_new(struct loop **out);
void loop_free(struct loop *l);

/*
 * Register fd with an interest mask: EPOLLIN | EPOLLOUT | EPOLLRDHUP, or
 * EPOLLHUP alone to stay in the set only to hear of a hang-up, or 0.
 */
int loop_add(struct loop *l, int fd, uint32_t mask, loop_fd_fn *fn, void *arg);
int loop_set(struct loop *l, int fd, uint32_t mask);
/* Forget fd; call just before close(fd), which leaves the epoll set. */
void loop_del(struct loop *l, int fd);

/* Arm (or re-arm) t to fire once, ms from now; 0 or -ENOMEM (t unarmed). */
int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms,
    loop_timer_fn *fn, void *arg);
void loop_timer_stop(struct loop *l, struct loop_timer *t);
/* Monotonic milliseconds, refreshed once per iteration. */
uint64_t loop_now(const struct loop *l);

/* Runs until loop_stop(); 0, or -errno if epoll_wait fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
