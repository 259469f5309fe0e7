/*
 * fake.h: the driver's side of fake_loop.c (server/loop.h on a manual
 * clock, no epoll) and fake_resolver.c (server/resolver.h answering when
 * the driver says, with what the driver says).
 */
#ifndef SOCKSIFY_FAKE_H
#define SOCKSIFY_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "resolver.h"

/* One epoll_wait() and its callbacks: fds ready now, by the shim's
 * events and each fd's interest. False when nothing was ready. */
bool fake_loop_round(struct loop *l);
/* Runs the timers that are due; false when none was. */
bool fake_loop_fire(struct loop *l);
/* The clock: moved on by ms, or to the next timer (false: none armed). */
void fake_loop_advance(struct loop *l, uint64_t ms);
bool fake_loop_to_next_timer(struct loop *l);
size_t fake_loop_watched(const struct loop *l);
size_t fake_loop_timers(const struct loop *l);
/* Is fd still registered? (closing it then is a bug: loop.h says
 * loop_del() first) */
bool fake_loop_watches(int fd);

enum fake_answer {
	FAKE_ANSWER_NONAME,		/* EAI_NONAME */
	FAKE_ANSWER_V4,			/* 127.0.0.1 */
	FAKE_ANSWER_V6,			/* ::1 */
	FAKE_ANSWER_V6_V4,		/* ::1, then 127.0.0.1 */
	FAKE_ANSWER_TWO_V4,		/* 127.0.0.2, then 127.0.0.1 */
	FAKE_ANSWER_AGAIN,		/* EAI_AGAIN */
	FAKE_ANSWER_MAPPED,		/* ::ffff:127.0.0.1 */
	FAKE_ANSWER_FAR,		/* 10.0.0.1 */
	FAKE_ANSWERS,
};

size_t fake_resolver_pending(const struct resolver *r);
/* The login check of client connection root was cancelled unanswered. */
bool fake_resolver_check_cancelled(int root);
/* Answers the oldest lookup and runs its callback. */
void fake_resolver_answer(struct resolver *r, enum fake_answer how);

#endif
