/*
 * syscall.c: the syscall() hook, for programs that skip the libc wrappers.
 *
 * A program (or a runtime such as libuv's or a JIT's) that calls
 * syscall(SYS_connect, ...) would otherwise connect behind our back, so the
 * socket calls that open or address connections take the same path as their
 * wrappers, and so do the calls the readiness gate follows (close, dup,
 * epoll_ctl: gate.c). Every other number goes to the real syscall() untouched, with six
 * long arguments as the kernel ABI has them: a whitelist that refuses numbers
 * it does not know breaks programs with each new kernel (P16).
 *
 * io_uring can connect (IORING_OP_CONNECT) and send with no call we see, so
 * io_uring_setup() fails with ENOSYS, the answer of a kernel without it; the
 * runtimes that try it (liburing users, libuv, tokio-uring) then fall back to
 * the plain calls. SOCKSIFY_IOURING=allow opts out, at the price of a leak.
 * liburing itself makes the system call in its own inline code, not through
 * syscall(), and is out of our reach (man/socksify.1, LIMITS).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#define SYSCALL_ARGS	6		/* the kernel ABI's maximum */

PRELOAD_BEFORE_SAN long
syscall(long number, ...)
{
	preload_syscall_fn real;
	long a[SYSCALL_ARGS];
	va_list ap;
	int i;

	/* Callers pass fewer; reading six is what the libc wrapper does too. */
	va_start(ap, number);
	for (i = 0; i < SYSCALL_ARGS; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	/* Before our constructor (another library's constructor: jemalloc's
	 * opens and closes files with syscall()) there is nothing of ours to
	 * follow yet, and in a SAN=1 build no runtime for our hooks. */
	if (!__atomic_load_n(&preload_loaded, __ATOMIC_ACQUIRE))
		goto pass;

	switch (number) {
	case SYS_connect:
		return connect((int)a[0], (const struct sockaddr *)a[1],
		    (socklen_t)a[2]);
	case SYS_sendto:
		return sendto((int)a[0], (const void *)a[1], (size_t)a[2],
		    (int)a[3], (const struct sockaddr *)a[4], (socklen_t)a[5]);
	case SYS_sendmsg:
		return sendmsg((int)a[0], (const struct msghdr *)a[1], (int)a[2]);
	case SYS_close:
		return close((int)a[0]);
	case SYS_dup:
		return dup((int)a[0]);
	case SYS_dup3:
		return dup3((int)a[0], (int)a[1], (int)a[2]);
#ifdef SYS_dup2
	case SYS_dup2:
		return dup2((int)a[0], (int)a[1]);
#endif
	case SYS_epoll_ctl:
		return epoll_ctl((int)a[0], (int)a[1], (int)a[2],
		    (struct epoll_event *)a[3]);
	case SYS_sendmmsg:
		return sendmmsg((int)a[0], (struct mmsghdr *)a[1],
		    (unsigned int)a[2], (int)a[3]);
#ifdef SYS_io_uring_setup
	case SYS_io_uring_setup:
		if (preload_init() && !preload_cfg.iouring_allow) {
			preload_log(LOG_LVL_INFO, "io_uring_setup refused (ENOSYS): "
			    "set SOCKSIFY_IOURING=allow to permit it, unproxied");
			errno = ENOSYS;
			return -1;
		}
		break;
#endif
	default:
		break;
	}
pass:
	real = preload_syscall_real();
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
