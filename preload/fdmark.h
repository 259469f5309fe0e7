/*
 * fdmark.h: what udp.c and dnsconn.c share. A bitmap of the descriptors a
 * module has taken over is its hooks' fast path: any other read() or
 * write() of the program takes no lock and makes no system call of ours.
 * Its mutex is one a hook re-entered from a signal handler never waits for
 * in the thread that holds it (the caller's *held is that thread's flag):
 * fdmark_lock() says false, and the hook fails instead of deadlocking.
 */
#ifndef SOCKSIFY_FDMARK_H
#define SOCKSIFY_FDMARK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "defaults.h"

#define FDMARK_WORDS	(PRELOAD_ASYNC_INDEX_FDS / 64)

/* fd may be taken over (active: how many are); above the bitmap, maybe. */
static inline bool
fdmark_test(const uint64_t *map, const int *active, int fd)
{
	if (!__atomic_load_n(active, __ATOMIC_ACQUIRE) || fd < 0)
		return false;
	if (fd >= PRELOAD_ASYNC_INDEX_FDS)
		return true;
	return (__atomic_load_n(&map[fd / 64], __ATOMIC_ACQUIRE) >> (fd % 64)) & 1;
}

static inline void
fdmark_set(uint64_t *map, int fd, bool on)
{
	uint64_t bit;

	if (fd < 0 || fd >= PRELOAD_ASYNC_INDEX_FDS)
		return;
	bit = UINT64_C(1) << (fd % 64);
	if (on)
		__atomic_or_fetch(&map[fd / 64], bit, __ATOMIC_RELEASE);
	else
		__atomic_and_fetch(&map[fd / 64], ~bit, __ATOMIC_RELEASE);
}

/* The holder's cancel state before: no cancellation acts while a module's
 * mutex is held (a system call of ours under it is a cancellation point,
 * and a thread cancelled there would leave it held for good). Each file
 * that includes this has its own: one lock of a module at a time. */
static __thread int fdmark_cancel_old;

static inline bool
fdmark_lock(pthread_mutex_t *mu, bool *held)
{
	int old;

	if (*held)
		return false;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_mutex_lock(mu);
	fdmark_cancel_old = old;
	*held = true;
	return true;
}

static inline void
fdmark_unlock(pthread_mutex_t *mu, bool *held)
{
	*held = false;
	pthread_mutex_unlock(mu);
	pthread_setcancelstate(fdmark_cancel_old, NULL);
}

#endif
