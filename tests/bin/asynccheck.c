/*
 * asynccheck: the asynchronous connect() of libsocksify.so as a program sees
 * it, for tests/preload_async.bats.
 *
 *	asynccheck SCENARIO HOST PORT [-d MS] [-e ERRNO] [-t MS] [-c MS]
 *	           [-m METHOD] [-B] [-n N] [-f FD] [-s MS] [-b BYTES] [-w]
 *
 * Run under the library, SOCKSIFY_PROXY naming a chain whose last hop echoes
 * what the program sends (tests/bin/faultd.c with reply 0x00 does, and so
 * does socksifyd in front of an echo target). HOST:PORT, a literal, is the
 * destination the program gives connect(). Each run prints one line on
 * stdout,
 *
 *	asynccheck: SCENARIO ok KEY=VALUE...
 *	asynccheck: SCENARIO FAIL (the first assertion that failed) KEY=VALUE...
 *
 * and exits 0 only when every assertion of its own held: 1 when one failed,
 * 2 on a usage error, 3 when the watchdog ended a run that hung, 77 when this
 * host cannot run the scenario (no epoll_pwait2, a descriptor limit too low).
 *
 * What a tunnelled connect must look like (the contract the tests check):
 * a non-blocking connect() says -1/EINPROGRESS at once; until the whole
 * chain has answered no waiting call reports the socket readable or
 * writable; then it reports what a direct socket whose connect just ended
 * reports: POLLOUT alone and SO_ERROR 0, or POLLOUT|POLLERR|POLLHUP and the
 * errno in SO_ERROR, once. Every successful connection then echoes a payload
 * of its own, compared byte for byte.
 *
 * Options:
 *	-d MS	the proxy cannot have answered sooner than MS after connect()
 *		(faultd --slow, delayfwd): a report before then is a lie
 *	-e ERR	the outcome wanted: "ok" (default) or an errno name; without
 *		it fail-errno accepts any outcome and prints it
 *	-t MS	the bound of every wait (AC_WAIT_MS)
 *	-c MS	"at once": a non-blocking connect() returns within MS
 *		(AC_AT_ONCE_MS); sndtimeo and eintr allow as much lateness
 *	-m M	the waiting call: poll, ppoll, select, pselect, epoll-lt,
 *		epoll-pwait, epoll-pwait2, epoll-et, epoll-et-oneshot
 *	-B	an epoll method's set is joined before connect()
 *	-n N	connections (many, cancel)
 *	-f FD	the descriptor number of dup and highfd (AC_HIGH_FD)
 *	-s MS	SO_SNDTIMEO (sndtimeo); the SIGALRM timer (eintr, restart);
 *		the cancellation (pcancel)
 *	-b N	bytes echoed per connection (AC_ECHO_BYTES)
 *	-w	write() while the handshake is pending must say EAGAIN: no byte
 *		of the program reaches the proxy before the handshake is over
 *
 * Scenarios (METHOD is -m's):
 *	poll ppoll select pselect epoll-lt epoll-pwait epoll-pwait2
 *	epoll-et epoll-et-oneshot
 *		one non-blocking connect waited for with that call
 *	epoll-before	the same, the set joined before connect() (-m: epoll-lt)
 *	epoll-two-sets	the socket in two sets, a thread blocked in each
 *	epoll-exclusive	two sets with EPOLLEXCLUSIVE, a thread blocked in each
 *	thread		another thread blocked in METHOD (epoll: blocked
 *			before connect(), the socket added to its set after)
 *	fork		fork() while pending; the child waits in METHOD (epoll:
 *			on the inherited set) and echoes, the parent polls and
 *			echoes after it
 *	dup		the pending socket dup2()ed to FD, the original closed
 *	highfd		the socket moved to FD before connect()
 *	states		what the calls of a pending socket answer, and after
 *	cancel		N pending connects closed: descriptors and threads come
 *			back after SOCKSIFY_TIMEOUT + 1 s, reused numbers are
 *			left alone
 *	many		N non-blocking connects in one epoll loop
 *	sndtimeo	a blocking connect() with SO_SNDTIMEO: EINPROGRESS when
 *			it expires, the outcome through METHOD
 *	eintr		a blocking connect() and SIGALRM without SA_RESTART:
 *			EINTR, the outcome through METHOD
 *	restart		SIGALRM every -s MS with SA_RESTART: connect() returns 0
 *	reenter		a blocking connect() whose SIGALRM handler (SA_RESTART,
 *			at -s MS) connect()s the same socket again: that one
 *			says EALREADY at once, as the kernel's would, and the
 *			first returns 0 once the proxy answered
 *	sigio		a blocking connect() of a socket with O_ASYNC, SIGIO's
 *			handler without SA_RESTART: each byte of the proxy's
 *			answer raises SIGIO the instant it wakes the library's
 *			wait, so the signal lands between two of its system
 *			calls; still EINTR, the outcome through METHOD
 *	pcancel		a thread in a blocking connect() cancelled at -s MS
 *			(pthread_cancel: connect() is a cancellation point),
 *			and one whose cancel was pending before connect():
 *			it ends cancelled, the connection goes on in the
 *			background, its outcome through METHOD; then a thread
 *			in poll() and one in read() of a pending socket are
 *			cancelled, and nothing of theirs is left (the
 *			eventfds open after the outcome are those before);
 *			then a pending socket closed while a thread drives
 *			it, that thread cancelled: no socket left open
 *	fail-errno	one non-blocking connect, POLLOUT waited for: prints
 *			the errno in SO_ERROR and the events first reported
 *
 * Every wait is bounded; a watchdog thread ends a run that still hangs.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testbin.h"

#define AC_WAIT_MS		10000	/* -t: bound of every wait */
#define AC_AT_ONCE_MS		500	/* -c: a non-blocking connect() returns within */
#define AC_ECHO_BYTES		2048	/* -b */
#define AC_HIGH_FD		1500	/* -f: above FD_SETSIZE */
#define AC_MANY_CONNS		200	/* -n for many */
#define AC_CANCEL_CONNS		32	/* -n for cancel */
#define AC_CONNS_MAX		1000
#define AC_TIMER_MS		300	/* -s */
#define AC_WATCHDOG_S		10	/* a whole run, beyond its waits */
#define AC_CHILD_WATCHDOG_S	30	/* a forked child, by alarm() */
#define AC_QUIET_MS		200	/* EPOLLONESHOT: no second report this long */
#define AC_GRACE_MS		100	/* EPOLLEXCLUSIVE: the second waiter's chance */
#define AC_BLOCKED_MS		20	/* a thread has entered its waiting call by then */
#define AC_START_MS		1000	/* a thread is running by then */
#define AC_SETTLE_EXTRA_MS	1000	/* cancel: beyond SOCKSIFY_TIMEOUT */
#define AC_CANCEL_ROUNDS	2
#define AC_HELPER_THREADS_MAX	2	/* threads the library may keep for itself */
#define AC_SOCKSIFY_TIMEOUT_S	15	/* SOCKSIFY_TIMEOUT unset: the library's default */
#define AC_EVENTS		64	/* epoll events taken per call */
#define AC_LINE_BYTES		2048	/* the result line */
#define AC_WHY_BYTES		512	/* its reason */
#define AC_PROBE_BYTES		16	/* a read or write tried while pending */
#define AC_ERRNO_MAX		200	/* errno names are looked up below this */
#define MS_PER_S		1000
#define US_PER_MS		1000
#define NS_PER_MS		1000000L

#define EXIT_FAIL		1
#define EXIT_USAGE		2
#define EXIT_WATCHDOG		3
#define EXIT_SKIP		77	/* the exit status of a skipped case (automake) */

enum method {
	M_POLL,
	M_PPOLL,
	M_SELECT,
	M_PSELECT,
	M_EPOLL,		/* the epoll ones last: method_is_epoll() */
	M_EPOLL_PWAIT,
	M_EPOLL_PWAIT2,
	M_EPOLL_ET,
	M_EPOLL_ONESHOT,
	M_COUNT,
};

static const char *const method_names[M_COUNT] = {
	[M_POLL] = "poll", [M_PPOLL] = "ppoll", [M_SELECT] = "select",
	[M_PSELECT] = "pselect", [M_EPOLL] = "epoll-lt",
	[M_EPOLL_PWAIT] = "epoll-pwait", [M_EPOLL_PWAIT2] = "epoll-pwait2",
	[M_EPOLL_ET] = "epoll-et", [M_EPOLL_ONESHOT] = "epoll-et-oneshot",
};

struct options {
	const char *scenario;
	struct sockaddr_storage dst;
	socklen_t dstlen;
	long min_ms;		/* -d */
	int want;		/* -e: 0 for success, else the errno */
	bool want_any;		/* fail-errno without -e */
	long wait_ms;		/* -t */
	long at_once_ms;	/* -c */
	enum method method;	/* -m */
	bool method_set;
	bool before;		/* -B */
	int conns;		/* -n */
	int fd_at;		/* -f */
	long timer_ms;		/* -s */
	size_t bytes;		/* -b */
	bool early_write;	/* -w */
};

static struct options opt;

/* The result line, built as the scenario goes; only the main thread (or a
 * forked child, with its copy) writes it. */
static struct {
	const char *name;
	int failed;
	char why[AC_WHY_BYTES];
	char kv[AC_LINE_BYTES];
	size_t kvlen;
} rep;

static volatile sig_atomic_t alarms;

static void
usage(void)
{
	fprintf(stderr, "usage: asynccheck SCENARIO HOST PORT [-d MS] [-e ERRNO] [-t MS] "
	    "[-c MS] [-m METHOD] [-B]\n"
	    "                  [-n N] [-f FD] [-s MS] [-b BYTES] [-w]\n"
	    "  SCENARIO: poll ppoll select pselect epoll-lt epoll-pwait epoll-pwait2\n"
	    "            epoll-et epoll-et-oneshot epoll-before epoll-two-sets\n"
	    "            epoll-exclusive thread fork dup highfd states cancel many\n"
	    "            sndtimeo eintr restart sigio reenter pcancel fail-errno\n");
	exit(EXIT_USAGE);
}

static struct timespec
ms_timespec(long ms)
{
	struct timespec ts = { .tv_sec = ms / MS_PER_S, .tv_nsec = ms % MS_PER_S * NS_PER_MS };

	return ts;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = ms_timespec(ms);

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *
errname(int err)
{
	const char *s;

	if (err == 0)
		return "0";
	s = strerrorname_np(err);
	return s != NULL ? s : "E?";
}

static void report_kv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_end(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends " KEY=VALUE..." to the result line. */
static void
report_kv(const char *fmt, ...)
{
	size_t room = sizeof(rep.kv) - rep.kvlen;
	va_list ap;
	int n;

	if (room < 2)
		return;
	rep.kv[rep.kvlen++] = ' ';
	room--;
	va_start(ap, fmt);
	n = vsnprintf(rep.kv + rep.kvlen, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		rep.kvlen += (size_t)n < room ? (size_t)n : room - 1;
}

/* The first assertion that fails gives the line its reason. */
static void
report_fail(const char *fmt, va_list ap)
{
	if (rep.failed++ == 0)
		vsnprintf(rep.why, sizeof(rep.why), fmt, ap);
}

/* An assertion. */
static bool
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return true;
	va_start(ap, fmt);
	report_fail(fmt, ap);
	va_end(ap);
	return false;
}

static int
report_end(FILE *f)
{
	if (rep.failed == 0)
		fprintf(f, "asynccheck: %s ok%s\n", rep.name, rep.kv);
	else
		fprintf(f, "asynccheck: %s FAIL (%s)%s\n", rep.name, rep.why, rep.kv);
	fflush(f);
	return rep.failed == 0 ? 0 : EXIT_FAIL;
}

/* An assertion that failed where the scenario cannot go on: the line ends. */
static int
fail_end(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_fail(fmt, ap);
	va_end(ap);
	return report_end(stdout);
}

static int
skip(const char *why)
{
	printf("asynccheck: %s skip (%s)\n", rep.name, why);
	fflush(stdout);
	return EXIT_SKIP;
}

/* Gives up on a run that hangs: a library that never reports a socket must
 * fail the test, not stall the suite. All signals are blocked here, so the
 * program's SIGALRM always reaches the thread in connect(). */
static void *
watchdog_main(void *arg)
{
	char line[AC_WHY_BYTES];
	int n;

	sleep_ms((long)(intptr_t)arg * MS_PER_S);
	n = snprintf(line, sizeof(line), "asynccheck: %s FAIL (watchdog: no result "
	    "after %ld s)\n", rep.name, (long)(intptr_t)arg);
	if (n > 0)
		(void)!write(STDOUT_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
	_exit(EXIT_WATCHDOG);
}

/* Starts fn with every signal blocked: handlers run on the main thread. */
static int
thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

/* A payload of its own for connection k of this run: the seed of fill(),
 * odd so that it is never the 0 xorshift stays at. */
static uint64_t
seed_of(int k)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a of the scenario name */
	const char *s;

	for (s = rep.name; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return (h ^ (uint64_t)getpid() << 24 ^ (uint64_t)(k + 1) * 0x9e3779b97f4a7c15ull) | 1;
}

static int
so_error(int fd)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

static bool
is_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags >= 0 && (flags & O_NONBLOCK);
}

/* getpeername() names the destination the program asked for. */
static bool
peer_is_dst(int fd, char *text, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
	const struct sockaddr_in *w4 = (const struct sockaddr_in *)&opt.dst;
	const struct sockaddr_in6 *w6 = (const struct sockaddr_in6 *)&opt.dst;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(text, cap, "%s", errname(errno));
		return false;
	}
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		snprintf(text, cap, "%s:%u", ip, (unsigned)ntohs(a4->sin_port));
		return opt.dst.ss_family == AF_INET && a4->sin_port == w4->sin_port &&
		    a4->sin_addr.s_addr == w4->sin_addr.s_addr;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		snprintf(text, cap, "[%s]:%u", ip, (unsigned)ntohs(a6->sin6_port));
		return opt.dst.ss_family == AF_INET6 && a6->sin6_port == w6->sin6_port &&
		    memcmp(&a6->sin6_addr, &w6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
	}
	snprintf(text, cap, "family%d", ss.ss_family);
	return false;
}

/* --- The waiting calls ---------------------------------------------------- */

/*
 * One way to wait for one socket. The mask a call reports is in poll()'s
 * bits; epoll's EPOLLIN, EPOLLOUT, EPOLLERR and EPOLLHUP have the same
 * values, and select() gives POLLIN and POLLOUT only.
 */
struct waiter {
	enum method m;
	int fd;			/* the socket */
	int ep;			/* the epoll methods' set, else -1 */
	int stopfd;		/* in the set too, when >= 0: a wake-up to give up */
	uint32_t add_flags;	/* more for EPOLL_CTL_ADD (EPOLLEXCLUSIVE) */
	short events;		/* POLLIN | POLLOUT: what is asked for */
};

static bool
method_is_epoll(enum method m)
{
	return m >= M_EPOLL;
}

static bool
method_is_select(enum method m)
{
	return m == M_SELECT || m == M_PSELECT;
}

static uint32_t
waiter_epoll_flags(const struct waiter *w)
{
	if (w->m == M_EPOLL_ET)
		return EPOLLET;
	if (w->m == M_EPOLL_ONESHOT)
		return EPOLLET | EPOLLONESHOT;
	return 0;
}

static int
waiter_init(struct waiter *w, enum method m)
{
	memset(w, 0, sizeof(*w));
	w->m = m;
	w->fd = -1;
	w->ep = -1;
	w->stopfd = -1;
	if (method_is_epoll(m) && (w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	return 0;
}

/* The socket fd, waited for events; an epoll set gets it now. */
static int
waiter_add(struct waiter *w, int fd, short events)
{
	struct epoll_event ev;

	w->fd = fd;
	w->events = events;
	if (!method_is_epoll(w->m))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = (uint32_t)events | waiter_epoll_flags(w) | w->add_flags;
	ev.data.fd = fd;
	return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

/* An eventfd in the set: written, it ends the wait with -ECANCELED. */
static int
waiter_add_stop(struct waiter *w)
{
	struct epoll_event ev;

	if ((w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = w->stopfd;
	return epoll_ctl(w->ep, EPOLL_CTL_ADD, w->stopfd, &ev) == 0 ? 0 : -errno;
}

/*
 * What to wait for next. An edge-triggered registration is left alone (a
 * MOD would report the present state, edge or not); a one-shot one is
 * re-armed by it, as its program must.
 */
static int
waiter_arm(struct waiter *w, short events)
{
	struct epoll_event ev;

	w->events = events;
	if (!method_is_epoll(w->m) || w->m == M_EPOLL_ET)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = (uint32_t)events | waiter_epoll_flags(w);
	ev.data.fd = w->fd;
	return epoll_ctl(w->ep, EPOLL_CTL_MOD, w->fd, &ev) == 0 ? 0 : -errno;
}

static void
waiter_close(struct waiter *w)
{
	if (w->ep >= 0)
		close(w->ep);
	if (w->stopfd >= 0)
		close(w->stopfd);
	w->ep = w->stopfd = -1;
}

static int
waiter_epoll_once(struct waiter *w, long ms)
{
	struct epoll_event ev[AC_EVENTS];
	struct timespec ts = ms_timespec(ms);
	sigset_t cur;
	int r, i, mask = 0;
	bool stopped = false;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	switch (w->m) {
	case M_EPOLL_PWAIT:
		r = epoll_pwait(w->ep, ev, AC_EVENTS, (int)ms, &cur);
		break;
	case M_EPOLL_PWAIT2:
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
		r = epoll_pwait2(w->ep, ev, AC_EVENTS, &ts, &cur);
#else
		(void)ts;
		errno = ENOSYS;
		r = -1;
#endif
		break;
	default:
		r = epoll_wait(w->ep, ev, AC_EVENTS, (int)ms);
		break;
	}
	if (r < 0)
		return -errno;
	for (i = 0; i < r; i++) {
		if (ev[i].data.fd == w->fd)
			mask |= (int)(ev[i].events & 0xffff);
		else if (ev[i].data.fd == w->stopfd)
			stopped = true;
	}
	if (mask != 0)
		return mask;
	return stopped ? -ECANCELED : 0;
}

/* One call: the mask reported (> 0), 0 when nothing was, or -errno. */
static int
waiter_once(struct waiter *w, long ms)
{
	struct pollfd p = { .fd = w->fd, .events = w->events };
	struct timespec ts = ms_timespec(ms);
	struct timeval tv = { .tv_sec = ms / MS_PER_S, .tv_usec = ms % MS_PER_S * US_PER_MS };
	fd_set rs, ws;
	sigset_t cur;
	int r;

	switch (w->m) {
	case M_POLL:
	case M_PPOLL:
		if (w->m == M_POLL) {
			r = poll(&p, 1, (int)ms);
		} else {
			pthread_sigmask(SIG_BLOCK, NULL, &cur);
			r = ppoll(&p, 1, &ts, &cur);
		}
		if (r < 0)
			return -errno;
		return r == 0 ? 0 : p.revents;
	case M_SELECT:
	case M_PSELECT:
		if (w->fd < 0 || w->fd >= FD_SETSIZE)
			return -EBADF;
		FD_ZERO(&rs);
		FD_ZERO(&ws);
		if (w->events & POLLIN)
			FD_SET(w->fd, &rs);
		if (w->events & POLLOUT)
			FD_SET(w->fd, &ws);
		if (w->m == M_SELECT) {
			r = select(w->fd + 1, &rs, &ws, NULL, &tv);
		} else {
			pthread_sigmask(SIG_BLOCK, NULL, &cur);
			r = pselect(w->fd + 1, &rs, &ws, NULL, &ts, &cur);
		}
		if (r < 0)
			return -errno;
		return (FD_ISSET(w->fd, &rs) ? POLLIN : 0) | (FD_ISSET(w->fd, &ws) ? POLLOUT : 0);
	default:
		return waiter_epoll_once(w, ms);
	}
}

/* Waits up to ms, through signals: the mask, 0 when nothing came, -errno. */
static int
waiter_wait(struct waiter *w, long ms)
{
	long long deadline = now_ms() + ms;
	long left;
	int r;

	for (;;) {
		left = (long)(deadline - now_ms());
		r = waiter_once(w, left > 0 ? left : 0);
		if (r != -EINTR)
			return r;
		if (left <= 0)
			return 0;
	}
}

/* --- Connecting, and what the socket says then ----------------------------- */

struct conn {
	int fd;
	long long t0;		/* just before connect() */
	int err;		/* connect(): 0 or its errno */
	long ms;		/* connect() took */
};

static int
conn_socket(bool nonblock)
{
	return socket(opt.dst.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
}

static void
conn_connect(struct conn *c)
{
	c->t0 = now_ms();
	c->err = connect(c->fd, (const struct sockaddr *)&opt.dst, opt.dstlen) == 0 ? 0 : errno;
	c->ms = (long)(now_ms() - c->t0);
}

enum start { START_PENDING, START_DONE, START_BAD };

/*
 * A non-blocking connect(): -1/EINPROGRESS within -c, or an immediate
 * failure with the errno wanted (then there is nothing to wait for).
 */
static enum start
conn_check_nonblocking(const struct conn *c)
{
	report_kv("connect=%s connect_ms=%ld", c->err == EINPROGRESS ? "EINPROGRESS" :
	    errname(c->err), c->ms);
	if (c->err == EINPROGRESS)
		return check(c->ms <= opt.at_once_ms, "connect() took %ld ms to say "
		    "EINPROGRESS; a non-blocking one returns at once (<= %ld ms)", c->ms,
		    opt.at_once_ms) ? START_PENDING : START_BAD;
	if (c->err == 0) {
		check(false, "a non-blocking connect() returned 0 after %ld ms; through "
		    "the proxy it must say -1/EINPROGRESS at once", c->ms);
		return START_BAD;
	}
	if (opt.want_any || c->err == opt.want) {
		report_kv("so_error=%s via=connect", errname(c->err));
		return START_DONE;
	}
	check(false, "connect() failed at once with %s, want %s", errname(c->err),
	    opt.want == 0 ? "-1/EINPROGRESS" : errname(opt.want));
	return START_BAD;
}

/* A non-blocking connect() that must be left pending: false when it was
 * not (then the scenario has nothing to wait for). */
static bool
conn_start(struct conn *c)
{
	conn_connect(c);
	return conn_check_nonblocking(c) == START_PENDING;
}

/* Right after connect(), with the handshake sure to be pending (-d): a look
 * that does not wait must find nothing either. False when it did (an edge
 * or a one-shot report is then spent: waiting on would only time out). */
static bool
conn_check_silent(struct waiter *w, const struct conn *c)
{
	int r;

	if (opt.min_ms <= 0 || now_ms() - c->t0 >= opt.min_ms)
		return true;
	r = waiter_wait(w, 0);
	return check(r == 0, "%s reported 0x%x at once after connect(), while the "
	    "handshake is pending", method_names[w->m], (unsigned)r);
}

/* The level-triggered calls report a socket that stays writable again; a
 * one-shot registration reports nothing more until re-armed. */
static void
waiter_second_look(struct waiter *w)
{
	int r;

	if (w->m == M_EPOLL_ONESHOT) {
		r = waiter_wait(w, AC_QUIET_MS);
		check(r == 0, "EPOLLONESHOT: reported 0x%x again without being re-armed",
		    (unsigned)r);
	} else if (w->m != M_EPOLL_ET) {
		r = waiter_wait(w, 0);
		check(r > 0 && (r & POLLOUT), "%s: level-triggered, but the writable socket "
		    "was not reported again (0x%x)", method_names[w->m], (unsigned)r);
	}
}

enum pump { PUMP_AGAIN, PUMP_SEND_FAILED, PUMP_RECV_FAILED, PUMP_ENDED };

/*
 * Moves an echo of n bytes on without waiting: sends what is left of out and
 * reads what has come back into in, *sent and *got counting. PUMP_AGAIN when
 * the socket would block or every byte is back; else the failure (errno set
 * for a call's).
 */
static enum pump
echo_pump(int fd, const uint8_t *out, uint8_t *in, size_t n, size_t *sent, size_t *got)
{
	ssize_t r;

	while (*sent < n) {
		r = send(fd, out + *sent, n - *sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0)
			*sent += (size_t)r;
		else if (r < 0 && errno == EINTR)
			continue;
		else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return PUMP_SEND_FAILED;
	}
	while (*got < n) {
		r = recv(fd, in + *got, n - *got, MSG_DONTWAIT);
		if (r > 0)
			*got += (size_t)r;
		else if (r == 0)
			return PUMP_ENDED;
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		else
			return PUMP_RECV_FAILED;
	}
	return PUMP_AGAIN;
}

/*
 * Sends opt.bytes that follow from seed and reads them back, every wait in
 * w's call: an edge-triggered waiter has the socket drained before it waits,
 * a one-shot one is re-armed. A handshake byte left unread, or a byte of the
 * program that went out early, shows as a difference.
 */
static void
echo_run(struct waiter *w, uint64_t seed)
{
	size_t n = opt.bytes, sent = 0, got = 0, i;
	uint8_t *out = malloc(n), *in = malloc(n);
	long long deadline = now_ms() + opt.wait_ms;
	int ev;

	if (!check(out != NULL && in != NULL, "out of memory"))
		goto out;
	fill(out, n, &seed);
	while (got < n) {
		switch (echo_pump(w->fd, out, in, n, &sent, &got)) {
		case PUMP_AGAIN:
			break;
		case PUMP_SEND_FAILED:
			check(false, "echo: send() after %zu bytes: %s", sent, errname(errno));
			goto out;
		case PUMP_RECV_FAILED:
			check(false, "echo: recv() after %zu bytes: %s", got, errname(errno));
			goto out;
		case PUMP_ENDED:
			check(false, "echo: the stream ended after %zu of %zu bytes", got, n);
			goto out;
		}
		if (got == n)
			break;
		if (now_ms() >= deadline) {
			check(false, "echo: %zu of %zu bytes back within %ld ms", got, n,
			    opt.wait_ms);
			goto out;
		}
		if ((ev = waiter_arm(w, (short)(POLLIN | (sent < n ? POLLOUT : 0)))) < 0 ||
		    (ev = waiter_wait(w, (long)(deadline - now_ms()))) < 0) {
			check(false, "echo: waiting with %s: %s", method_names[w->m],
			    errname(-ev));
			goto out;
		}
	}
	for (i = 0; i < n && in[i] == out[i]; i++)
		;
	if (check(i == n, "echo: byte %zu of %zu came back different", i, n))
		report_kv("echo=%zu", n);
out:
	free(out);
	free(in);
}

/*
 * The socket at its first report: mask as origin's call gave it, t ms after
 * connect() began. It must be what a direct socket whose connect just ended
 * says: writable alone with SO_ERROR 0 (then w's call sees it again and the
 * echo runs through w), or POLLOUT|POLLERR|POLLHUP with the errno, once.
 */
static void
outcome_check(enum method origin, int mask, long t, struct waiter *w, uint64_t seed)
{
	int err, again, want_mask;

	report_kv("waited_ms=%ld revents=0x%x", t, mask > 0 ? (unsigned)mask : 0);
	if (mask < 0) {
		check(false, "%s failed: %s", method_names[origin], errname(-mask));
		return;
	}
	if (!check(mask > 0, "%s reported nothing within %ld ms", method_names[origin],
	    opt.wait_ms))
		return;
	check(t >= opt.min_ms, "%s reported 0x%x %ld ms after connect(), before the "
	    "proxy could have answered (%ld ms)", method_names[origin], (unsigned)mask,
	    t, opt.min_ms);
	err = so_error(w->fd);
	report_kv("so_error=%s", errname(err));
	if (opt.want_any ? err == 0 : opt.want == 0) {
		check(mask & POLLOUT, "first report 0x%x is not writable", (unsigned)mask);
		check(!(mask & (POLLIN | POLLERR | POLLHUP | POLLNVAL)), "first report 0x%x: "
		    "a socket whose connect just succeeded is writable alone",
		    (unsigned)mask);
		if (!check(err == 0, "SO_ERROR is %s at the first report, want 0",
		    errname(err)))
			return;
		waiter_second_look(w);
		echo_run(w, seed);
		return;
	}
	want_mask = method_is_select(origin) ? POLLOUT : POLLOUT | POLLERR | POLLHUP;
	check((mask & want_mask) == want_mask, "first report 0x%x, want 0x%x in it: a "
	    "socket whose connect failed", (unsigned)mask, (unsigned)want_mask);
	check(opt.want_any || err == opt.want, "SO_ERROR is %s, want %s", errname(err),
	    errname(opt.want));
	again = so_error(w->fd);
	check(again == 0, "SO_ERROR said %s a second time; it is reported once",
	    errname(again));
}

/* The first report of c's socket through w, as outcome_check() wants it
 * (on success the echo carries connection 0's payload). */
static void
conn_await(struct waiter *w, const struct conn *c)
{
	int mask = waiter_wait(w, opt.wait_ms);

	outcome_check(w->m, mask, (long)(now_ms() - c->t0), w, seed_of(0));
}

/* The end of a scenario of one socket and one waiter: its result line. */
static int
conn_end(struct waiter *w, const struct conn *c)
{
	waiter_close(w);
	close(c->fd);
	return report_end(stdout);
}

/* --- Scenarios -------------------------------------------------------------- */

/*
 * poll, ppoll, select, pselect, epoll-lt, epoll-pwait, epoll-pwait2,
 * epoll-et, epoll-et-oneshot, epoll-before: one non-blocking connect,
 * waited for with the call (the epoll set joined before connect() with -B).
 */
static int
scenario_wait(enum method m)
{
	struct waiter w;
	struct conn c;
	int r;

	report_kv("method=%s", method_names[m]);
	if (waiter_init(&w, m) < 0 || (c.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	if (m == M_EPOLL_PWAIT2 && waiter_once(&w, 0) == -ENOSYS)
		return skip("no epoll_pwait2 here");
	if (opt.before && (r = waiter_add(&w, c.fd, POLLIN | POLLOUT)) < 0)
		return fail_end("epoll_ctl before connect(): %s", errname(-r));
	if (!conn_start(&c))
		return report_end(stdout);
	if (!opt.before && (r = waiter_add(&w, c.fd, POLLIN | POLLOUT)) < 0)
		return fail_end("epoll_ctl after connect(): %s", errname(-r));
	if (!conn_check_silent(&w, &c))
		return report_end(stdout);
	conn_await(&w, &c);
	return conn_end(&w, &c);
}

/* A thread blocked in a waiting call for one socket. */
struct blocked {
	pthread_t tid;
	struct waiter w;	/* fixed before the thread starts */
	atomic_int entered;	/* set just before the call */
	long long t_entered, t_report;
	int mask;		/* the call's: > 0, 0 for nothing, -errno */
	pthread_mutex_t *lock;	/* with cond and *reports: a report is told */
	pthread_cond_t *cond;
	int *reports;
};

static void *
blocked_main(void *arg)
{
	struct blocked *b = arg;

	b->t_entered = now_ms();
	atomic_store(&b->entered, 1);
	b->mask = waiter_wait(&b->w, opt.wait_ms);
	b->t_report = now_ms();
	if (b->lock != NULL) {
		pthread_mutex_lock(b->lock);
		if (b->mask > 0)
			(*b->reports)++;
		pthread_cond_broadcast(b->cond);
		pthread_mutex_unlock(b->lock);
	}
	return NULL;
}

/* Starts b and returns once it is about to block (plus AC_BLOCKED_MS for the
 * call itself). */
static bool
blocked_start(struct blocked *b)
{
	long long give_up = now_ms() + AC_START_MS;
	int err;

	atomic_store(&b->entered, 0);
	if ((err = thread_start(&b->tid, blocked_main, b)) != 0) {
		check(false, "pthread_create: %s", errname(err));
		return false;
	}
	while (atomic_load(&b->entered) == 0 && now_ms() < give_up)
		sleep_ms(1);
	sleep_ms(AC_BLOCKED_MS);
	return true;
}

/* What a thread that was blocked while the handshake was pending saw: the
 * socket, once, when the proxy had answered, and writable alone. */
static void
blocked_check(const char *who, const struct blocked *b, const struct conn *c)
{
	long t = (long)(b->t_report - c->t0);

	report_kv("%s_waited_ms=%ld %s_revents=0x%x", who, t, who,
	    b->mask > 0 ? (unsigned)b->mask : 0);
	check(opt.min_ms <= 0 || b->t_entered - c->t0 < opt.min_ms, "%s entered its "
	    "waiting call %lld ms after connect(), after the handshake could have "
	    "ended: nothing proved", who, b->t_entered - c->t0);
	if (!check(b->mask > 0, "%s in %s: %s", who, method_names[b->w.m], b->mask == 0 ?
	    "never woken" : errname(-b->mask)))
		return;
	check(t >= opt.min_ms, "%s was woken with 0x%x %ld ms after connect(), before "
	    "the proxy could have answered (%ld ms)", who, (unsigned)b->mask, t,
	    opt.min_ms);
	if (opt.want == 0)
		check((b->mask & POLLOUT) && !(b->mask & (POLLIN | POLLERR | POLLHUP)),
		    "%s was woken with 0x%x, want writable alone", who, (unsigned)b->mask);
}

/*
 * thread: a waiter already blocked in another thread is woken when the
 * handshake ends. epoll: the thread blocks in epoll_wait() before connect(),
 * and the socket joins its set after (an event-loop thread and a thread that
 * opens connections); poll and select cannot wait for a socket not yet
 * connecting, so their thread blocks right after EINPROGRESS.
 */
static int
scenario_thread(void)
{
	enum method m = opt.method_set ? opt.method : M_EPOLL;
	struct blocked b;
	struct epoll_event ev;
	struct conn c;

	memset(&b, 0, sizeof(b));
	report_kv("method=%s", method_names[m]);
	if (waiter_init(&b.w, m) < 0 || (c.fd = conn_socket(true)) < 0 ||
	    (method_is_epoll(m) && waiter_add_stop(&b.w) < 0))
		return fail_end("setup: %s", errname(errno));
	b.w.fd = c.fd;
	b.w.events = POLLIN | POLLOUT;
	if (method_is_epoll(m)) {
		if (!blocked_start(&b))
			return report_end(stdout);
		conn_connect(&c);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLOUT | waiter_epoll_flags(&b.w);
		ev.data.fd = c.fd;
		if (epoll_ctl(b.w.ep, EPOLL_CTL_ADD, c.fd, &ev) != 0)
			check(false, "epoll_ctl: %s", errname(errno));
		if (conn_check_nonblocking(&c) != START_PENDING) {
			(void)!write(b.w.stopfd, &(uint64_t){ 1 }, sizeof(uint64_t));
			pthread_join(b.tid, NULL);
			return report_end(stdout);
		}
	} else {
		if (!conn_start(&c))
			return report_end(stdout);
		if (!blocked_start(&b))
			return report_end(stdout);
	}
	pthread_join(b.tid, NULL);
	blocked_check("thread", &b, &c);
	if (rep.failed == 0)
		outcome_check(m, b.mask, (long)(b.t_report - c.t0), &b.w, seed_of(0));
	waiter_close(&b.w);
	close(c.fd);
	return report_end(stdout);
}

/*
 * epoll-two-sets: one socket in two epoll sets, the first joined before
 * connect(), the second after; a thread blocks in the second while this one
 * blocks in the first. Both are woken, neither early.
 */
static int
scenario_two_sets(void)
{
	struct waiter w1;
	struct blocked b;
	struct conn c;
	long t;
	int mask;

	memset(&b, 0, sizeof(b));
	if (waiter_init(&w1, M_EPOLL) < 0 || waiter_init(&b.w, M_EPOLL) < 0 ||
	    (c.fd = conn_socket(true)) < 0 || waiter_add(&w1, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("setup: %s", errname(errno));
	if (!conn_start(&c))
		return report_end(stdout);
	if (waiter_add(&b.w, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("epoll_ctl, second set: %s", errname(errno));
	if (!blocked_start(&b))
		return report_end(stdout);
	mask = waiter_wait(&w1, opt.wait_ms);
	t = (long)(now_ms() - c.t0);
	/* The other waiter's report first: outcome_check() sends the echo,
	 * and a report taken after the echo came back says readable too
	 * (a loaded machine may run that thread that late). */
	pthread_join(b.tid, NULL);
	outcome_check(M_EPOLL, mask, t, &w1, seed_of(0));
	blocked_check("second_set", &b, &c);
	waiter_close(&w1);
	waiter_close(&b.w);
	close(c.fd);
	return report_end(stdout);
}

/*
 * epoll-exclusive: the socket in two sets with EPOLLEXCLUSIVE (one joined
 * before connect(), one after), a thread blocked in each. At least one is
 * woken when the handshake ends, none before; the other gets a grace period,
 * then an eventfd in both sets ends its wait.
 */
static int
scenario_exclusive(void)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	struct blocked b[2];
	struct waiter pw;
	struct conn c;
	struct timespec until;
	int reports = 0, i, first = -1, woken = 0, efd;

	memset(b, 0, sizeof(b));
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0 || (c.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	for (i = 0; i < 2; i++) {
		struct epoll_event ev = { .events = EPOLLIN };

		if (waiter_init(&b[i].w, M_EPOLL) < 0)
			return fail_end("epoll_create1: %s", errname(errno));
		b[i].w.add_flags = EPOLLEXCLUSIVE;
		b[i].w.stopfd = dup(efd);
		ev.data.fd = b[i].w.stopfd;
		if (b[i].w.stopfd < 0 || epoll_ctl(b[i].w.ep, EPOLL_CTL_ADD, b[i].w.stopfd, &ev) != 0)
			return fail_end("setup: %s", errname(errno));
		b[i].lock = &lock;
		b[i].cond = &cond;
		b[i].reports = &reports;
	}
	if (waiter_add(&b[0].w, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("EPOLLEXCLUSIVE before connect(): %s", errname(errno));
	if (!conn_start(&c))
		return report_end(stdout);
	if (waiter_add(&b[1].w, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("EPOLLEXCLUSIVE after connect(): %s", errname(errno));
	for (i = 0; i < 2; i++)
		if (!blocked_start(&b[i]))
			return report_end(stdout);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += opt.wait_ms / MS_PER_S + 1;
	pthread_mutex_lock(&lock);
	while (reports == 0 && pthread_cond_timedwait(&cond, &lock, &until) == 0)
		;
	pthread_mutex_unlock(&lock);
	sleep_ms(AC_GRACE_MS);
	(void)!write(efd, &(uint64_t){ 1 }, sizeof(uint64_t));
	for (i = 0; i < 2; i++) {
		pthread_join(b[i].tid, NULL);
		if (b[i].mask > 0) {
			woken++;
			if (first < 0 || b[i].t_report < b[first].t_report)
				first = i;
		}
	}
	report_kv("woken=%d", woken);
	if (!check(first >= 0, "no epoll_wait() on an EPOLLEXCLUSIVE set was woken "
	    "within %ld ms", opt.wait_ms))
		return report_end(stdout);
	for (i = 0; i < 2; i++)
		if (b[i].mask > 0)
			blocked_check(i == 0 ? "set_before" : "set_after", &b[i], &c);
	if (waiter_init(&pw, M_POLL) == 0 && waiter_add(&pw, c.fd, POLLIN | POLLOUT) == 0)
		outcome_check(M_EPOLL, b[first].mask, (long)(b[first].t_report - c.t0), &pw,
		    seed_of(0));
	for (i = 0; i < 2; i++)
		waiter_close(&b[i].w);
	close(efd);
	close(c.fd);
	return report_end(stdout);
}

/* The child of fork: waits in its own call (an epoll set it inherited, for
 * the epoll methods), checks the outcome and echoes a payload of its own. */
static void
fork_child(struct waiter *w, const struct conn *c, int go)
{
	char b;
	int mask;

	signal(SIGALRM, SIG_DFL);
	alarm(AC_CHILD_WATCHDOG_S);
	rep.name = "fork-child";
	rep.failed = 0;
	rep.kvlen = 0;
	rep.kv[0] = '\0';
	mask = waiter_wait(w, opt.wait_ms);
	/* The parent's first report is of the handshake alone: our echo
	 * waits until it has it (EOF too, should the parent be gone). */
	while (read(go, &b, 1) < 0 && errno == EINTR)
		;
	outcome_check(w->m, mask, (long)(now_ms() - c->t0), w, seed_of(1));
	_exit(report_end(stderr));
}

/* Waits up to ms for pid; its status text in buf; true when it exited 0. */
static bool
child_reap(pid_t pid, long ms, char *buf, size_t cap)
{
	long long deadline = now_ms() + ms;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if ((r < 0 && errno != EINTR) || now_ms() >= deadline) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			snprintf(buf, cap, "hung");
			return false;
		}
		sleep_ms(10);
	}
	if (WIFEXITED(status))
		snprintf(buf, cap, WEXITSTATUS(status) == 0 ? "ok" : "exit%d",
		    WEXITSTATUS(status));
	else
		snprintf(buf, cap, "signal%d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * fork: fork() while the handshake is pending. Both processes wait at once;
 * both must see the outcome when the proxy has answered. On success the
 * child echoes once the parent has its first report (a pipe: else the
 * child's echo could be readable by then) and exits, then the parent
 * echoes through the same socket; on failure the child reads the errno from SO_ERROR, and the
 * parent sees the socket hung up and a send() fail.
 */
static int
scenario_fork(void)
{
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct waiter cw, pw;
	struct conn c;
	char status[32], peer[64];
	pid_t pid;
	long t;
	int mask, err, go[2];

	report_kv("method=%s", method_names[m]);
	if (waiter_init(&cw, m) < 0 || waiter_init(&pw, M_POLL) < 0 ||
	    (c.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	/* The child's epoll set is made, and joined, before connect(). */
	if (method_is_epoll(m) && waiter_add(&cw, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("epoll_ctl: %s", errname(errno));
	if (!conn_start(&c))
		return report_end(stdout);
	if (!method_is_epoll(m))
		(void)waiter_add(&cw, c.fd, POLLIN | POLLOUT);
	(void)waiter_add(&pw, c.fd, POLLIN | POLLOUT);
	fflush(stdout);
	fflush(stderr);
	if (pipe(go) != 0)
		return fail_end("pipe: %s", errname(errno));
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		fork_child(&cw, &c, go[0]);
	}
	close(go[0]);
	if (!check(pid > 0, "fork: %s", errname(errno)))
		return report_end(stdout);
	mask = waiter_wait(&pw, opt.wait_ms);
	t = (long)(now_ms() - c.t0);
	close(go[1]);	/* the child may echo now */
	report_kv("parent_waited_ms=%ld parent_revents=0x%x", t, mask > 0 ? (unsigned)mask : 0);
	if (check(mask > 0, "the parent's poll(): %s", mask == 0 ? "nothing reported" :
	    errname(-mask))) {
		check(t >= opt.min_ms, "the parent's poll() reported 0x%x %ld ms after "
		    "connect(), before the proxy could have answered (%ld ms)",
		    (unsigned)mask, t, opt.min_ms);
		if (opt.want == 0)
			check((mask & POLLOUT) && !(mask & (POLLIN | POLLERR | POLLHUP)),
			    "the parent's first report 0x%x, want writable alone",
			    (unsigned)mask);
		else
			check((mask & (POLLOUT | POLLHUP)) == (POLLOUT | POLLHUP),
			    "the parent's first report 0x%x, want POLLOUT|POLLHUP in it",
			    (unsigned)mask);
	}
	check(child_reap(pid, opt.wait_ms + opt.wait_ms, status, sizeof(status)),
	    "the child: %s (its line is on stderr)", status);
	report_kv("child=%s", status);
	if (opt.want == 0) {
		err = so_error(c.fd);
		if (check(err == 0, "the parent's SO_ERROR is %s, want 0", errname(err)))
			echo_run(&pw, seed_of(2));
		check(peer_is_dst(c.fd, peer, sizeof(peer)), "the parent's getpeername() "
		    "says %s", peer);
	} else {
		check(send(c.fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0, "the parent's "
		    "send() succeeded on a socket whose connect failed");
	}
	waiter_close(&cw);
	close(c.fd);
	return report_end(stdout);
}

/* RLIMIT_NOFILE raised to take descriptor fd; false when it cannot be. */
static bool
nofile_allow(int fd)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return false;
	if (rl.rlim_cur > (rlim_t)fd)
		return true;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= (rlim_t)fd)
		return false;
	rl.rlim_cur = (rlim_t)fd + 1;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/*
 * dup: the pending socket dup2()ed to -f (above FD_SETSIZE), the original
 * closed at once: the handshake goes on for the descriptor left, which is
 * waited for. highfd: the socket has that number before connect().
 */
static int
scenario_high(bool dup_after)
{
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct waiter w;
	struct conn c;
	char peer[64];
	int fd;

	report_kv("method=%s fd=%d", method_names[m], opt.fd_at);
	if (method_is_select(m) && opt.fd_at >= FD_SETSIZE)
		usage();
	if (!nofile_allow(opt.fd_at))
		return skip("RLIMIT_NOFILE cannot reach -f");
	if (waiter_init(&w, m) < 0 || (fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	c.fd = fd;
	if (!dup_after) {
		if (!check(dup2(fd, opt.fd_at) == opt.fd_at, "dup2: %s", errname(errno)))
			return report_end(stdout);
		close(fd);
		c.fd = opt.fd_at;
	}
	if (!conn_start(&c))
		return report_end(stdout);
	if (dup_after) {
		if (!check(dup2(fd, opt.fd_at) == opt.fd_at, "dup2 of the pending socket: %s",
		    errname(errno)))
			return report_end(stdout);
		check(close(fd) == 0, "close of the original: %s", errname(errno));
		c.fd = opt.fd_at;
	}
	if (waiter_add(&w, c.fd, POLLIN | POLLOUT) < 0)
		return fail_end("epoll_ctl: %s", errname(errno));
	if (!conn_check_silent(&w, &c))
		return report_end(stdout);
	conn_await(&w, &c);
	if (opt.want == 0)
		check(peer_is_dst(c.fd, peer, sizeof(peer)), "getpeername() says %s", peer);
	return conn_end(&w, &c);
}

/* Each way to read or write a socket, tried once: the errno (or "N bytes"). */
static const char *
states_try(int fd, int k, char *buf, size_t cap)
{
	static const char early[AC_PROBE_BYTES] = "asynccheck early";
	uint8_t in[AC_PROBE_BYTES];
	struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
	struct iovec oiov = { .iov_base = (void *)early, .iov_len = sizeof(early) };
	struct msghdr mh;
	ssize_t r;

	memset(&mh, 0, sizeof(mh));
	switch (k) {
	case 0: r = read(fd, in, sizeof(in)); break;
	case 1: r = recv(fd, in, sizeof(in), 0); break;
	case 2: r = readv(fd, &iov, 1); break;
	case 3: mh.msg_iov = &iov; mh.msg_iovlen = 1; r = recvmsg(fd, &mh, 0); break;
	case 4: r = write(fd, early, sizeof(early)); break;
	case 5: r = send(fd, early, sizeof(early), MSG_NOSIGNAL); break;
	case 6: r = writev(fd, &oiov, 1); break;
	default: mh.msg_iov = &oiov; mh.msg_iovlen = 1; r = sendmsg(fd, &mh, MSG_NOSIGNAL); break;
	}
	if (r < 0)
		return errname(errno);
	snprintf(buf, cap, "%zd_bytes", r);
	return buf;
}

/*
 * states: while the handshake is pending every read and write says EAGAIN
 * (no byte reaches the proxy, none of the proxy's is read), connect()
 * EALREADY, getpeername() ENOTCONN, SO_ERROR 0 (and the socket stays
 * pending); once it is over, connect() says EISCONN, getpeername() names
 * the destination, the socket is still non-blocking and the echo is intact.
 * Linux answers the first connect() after a completed one 0, the next ones
 * EISCONN: the first may say either.
 */
static int
scenario_states(void)
{
	static const char *const io_names[] = { "read", "recv", "readv", "recvmsg",
	    "write", "send", "writev", "sendmsg" };
	struct waiter w;
	struct conn c;
	char buf[32], peer[64];
	const char *got;
	int k, r;

	if (waiter_init(&w, M_POLL) < 0 || (c.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	if (!conn_start(&c))
		return report_end(stdout);
	for (k = 0; k < 8; k++) {
		got = states_try(c.fd, k, buf, sizeof(buf));
		report_kv("%s=%s", io_names[k], got);
		check(strcmp(got, "EAGAIN") == 0, "%s() while pending: %s, want EAGAIN",
		    io_names[k], got);
	}
	r = connect(c.fd, (const struct sockaddr *)&opt.dst, opt.dstlen) == 0 ? 0 : errno;
	report_kv("connect_again=%s", errname(r));
	check(r == EALREADY, "a second connect() while pending: %s, want EALREADY",
	    errname(r));
	(void)peer_is_dst(c.fd, peer, sizeof(peer));
	report_kv("getpeername=%s", peer);
	check(strcmp(peer, "ENOTCONN") == 0, "getpeername() while pending: %s, want "
	    "ENOTCONN", peer);
	r = so_error(c.fd);
	report_kv("pending_so_error=%s", errname(r));
	check(r == 0, "SO_ERROR while pending: %s, want 0", errname(r));
	check(is_nonblocking(c.fd), "O_NONBLOCK is gone while pending");
	if (rep.failed != 0)
		return report_end(stdout);
	/* Asked all that, the socket must still be pending (-d). */
	(void)waiter_add(&w, c.fd, POLLIN | POLLOUT);
	if (!conn_check_silent(&w, &c))
		return report_end(stdout);
	conn_await(&w, &c);
	if (rep.failed != 0)
		return report_end(stdout);
	r = connect(c.fd, (const struct sockaddr *)&opt.dst, opt.dstlen) == 0 ? 0 : errno;
	report_kv("connect_after=%s", errname(r));
	check(r == 0 || r == EISCONN, "connect() once connected: %s, want 0 or EISCONN",
	    errname(r));
	r = connect(c.fd, (const struct sockaddr *)&opt.dst, opt.dstlen) == 0 ? 0 : errno;
	report_kv("connect_after2=%s", errname(r));
	check(r == EISCONN, "connect() once connected, again: %s, want EISCONN",
	    errname(r));
	check(peer_is_dst(c.fd, peer, sizeof(peer)), "getpeername() once connected: "
	    "%s, want the destination asked for", peer);
	report_kv("peer=%s", peer);
	check(is_nonblocking(c.fd), "O_NONBLOCK is gone once connected");
	return conn_end(&w, &c);
}

/* Entries of a /proc directory (its own descriptor counts in /proc/self/fd,
 * the same each time). */
static int
count_entries(const char *path)
{
	struct dirent *e;
	DIR *d = opendir(path);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* SOCKSIFY_TIMEOUT as the library reads it (seconds, a fraction allowed). */
static long
socksify_timeout_ms(void)
{
	const char *s = getenv("SOCKSIFY_TIMEOUT");
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return AC_SOCKSIFY_TIMEOUT_S * MS_PER_S;
	v = strtod(s, &end);
	if (*end != '\0' || v <= 0)
		return AC_SOCKSIFY_TIMEOUT_S * MS_PER_S;
	return (long)(v * MS_PER_S);
}

/*
 * The descriptors freed by the cancelled sockets, taken by pipes: after the
 * handshakes' deadline has passed, each must still be open, hold no byte
 * the library wrote, and carry a byte of ours.
 */
static void
cancel_check_pipes(int (*p)[2], int np)
{
	struct pollfd pfd;
	char b = 'x';
	int i;

	for (i = 0; i < np; i++) {
		if (!check(fcntl(p[i][0], F_GETFD) >= 0 && fcntl(p[i][1], F_GETFD) >= 0,
		    "pipe %d/%d on a reused number was closed behind our back", p[i][0],
		    p[i][1]))
			return;
		pfd.fd = p[i][0];
		pfd.events = POLLIN;
		if (!check(poll(&pfd, 1, 0) == 0, "pipe on reused number %d has bytes "
		    "nobody wrote to it", p[i][0]))
			return;
		if (!check(write(p[i][1], &b, 1) == 1 && read(p[i][0], &b, 1) == 1 && b == 'x',
		    "pipe %d/%d on a reused number does not carry a byte", p[i][0], p[i][1]))
			return;
	}
}

/*
 * cancel: N non-blocking connects through a proxy that stalls, all closed
 * while pending, twice. SOCKSIFY_TIMEOUT + 1 s later the process has the
 * descriptors it had before, its threads do not grow per round (the library
 * may keep up to AC_HELPER_THREADS_MAX of its own), and the numbers the
 * sockets had, reused by pipes, were left alone.
 */
static int
scenario_cancel(void)
{
	static int fds[AC_CONNS_MAX], pipes[AC_CONNS_MAX][2];
	int base_fds, base_thr, fds_after[AC_CANCEL_ROUNDS], thr_after[AC_CANCEL_ROUNDS];
	int round, i, np, pending, peak = 0, thr;
	long settle = socksify_timeout_ms() + AC_SETTLE_EXTRA_MS;
	struct conn c;

	base_fds = count_entries("/proc/self/fd");
	base_thr = count_entries("/proc/self/task");
	for (round = 0; round < AC_CANCEL_ROUNDS; round++) {
		pending = 0;
		for (i = 0; i < opt.conns; i++) {
			if ((fds[i] = c.fd = conn_socket(true)) < 0)
				return fail_end("socket: %s", errname(errno));
			conn_connect(&c);
			/* One that blocks would make N of them take N deadlines. */
			if (!check(c.err == EINPROGRESS && c.ms <= opt.at_once_ms, "round %d, "
			    "connect %d said %s after %ld ms, want -1/EINPROGRESS at once "
			    "(the proxy stalls)", round + 1, i, errname(c.err), c.ms)) {
				report_kv("round%d_pending=%d", round + 1, pending);
				return report_end(stdout);
			}
			pending++;
		}
		if ((thr = count_entries("/proc/self/task")) > peak)
			peak = thr;
		for (i = 0; i < opt.conns; i++)
			check(close(fds[i]) == 0, "close of a pending socket: %s",
			    errname(errno));
		for (np = 0; np < opt.conns / 2; np++)
			if (pipe2(pipes[np], O_CLOEXEC) != 0)
				break;
		sleep_ms(settle);
		cancel_check_pipes(pipes, np);
		for (i = 0; i < np; i++) {
			close(pipes[i][0]);
			close(pipes[i][1]);
		}
		fds_after[round] = count_entries("/proc/self/fd");
		thr_after[round] = count_entries("/proc/self/task");
		report_kv("round%d_pending=%d", round + 1, pending);
	}
	report_kv("fds=%d/%d/%d threads=%d/%d/%d threads_peak=%d settle_ms=%ld", base_fds,
	    fds_after[0], fds_after[1], base_thr, thr_after[0], thr_after[1], peak, settle);
	for (round = 0; round < AC_CANCEL_ROUNDS; round++)
		check(fds_after[round] == base_fds, "round %d: %d descriptors %ld ms after "
		    "closing, %d before: the cancelled handshakes left some behind",
		    round + 1, fds_after[round], settle, base_fds);
	check(thr_after[0] - base_thr <= AC_HELPER_THREADS_MAX, "%d threads %ld ms after "
	    "closing %d pending sockets, %d before", thr_after[0], settle, opt.conns,
	    base_thr);
	check(thr_after[1] == thr_after[0], "threads grow per round of connects: %d, "
	    "then %d", thr_after[0], thr_after[1]);
	return report_end(stdout);
}

/* One connection of many. */
struct many_conn {
	int fd;
	enum { MC_CONNECTING, MC_ECHO, MC_DONE } state;
	long long t0;
	size_t sent, got;
	uint8_t *out, *in;
};

/* many: the connection reported writable or failed; false when it failed. */
static bool
many_ready(struct many_conn *mc, uint32_t ev, int *err_first, long *t_min,
    long *t_max, int *early, int *readable)
{
	long t = (long)(now_ms() - mc->t0);
	int err;

	if (t < opt.min_ms)
		(*early)++;
	if (t < *t_min)
		*t_min = t;
	if (t > *t_max)
		*t_max = t;
	if (ev & EPOLLIN)
		(*readable)++;
	err = so_error(mc->fd);
	if ((ev & (EPOLLERR | EPOLLHUP)) || !(ev & EPOLLOUT) || err != 0) {
		if (*err_first == 0)
			*err_first = err != 0 ? err : EPROTO;
		return false;
	}
	mc->state = MC_ECHO;
	return true;
}

/* many: moves the echo of mc on; 1 done and intact, 0 not yet, -1 failed. */
static int
many_echo(struct many_conn *mc, int ep, int idx)
{
	struct epoll_event e;

	if (echo_pump(mc->fd, mc->out, mc->in, opt.bytes, &mc->sent, &mc->got) != PUMP_AGAIN)
		return -1;
	if (mc->got == opt.bytes)
		return memcmp(mc->in, mc->out, opt.bytes) == 0 ? 1 : -1;
	memset(&e, 0, sizeof(e));
	e.events = EPOLLIN | (mc->sent < opt.bytes ? EPOLLOUT : 0);
	e.data.u32 = (uint32_t)idx;
	return epoll_ctl(ep, EPOLL_CTL_MOD, mc->fd, &e) == 0 ? 0 : -1;
}

/*
 * many: N non-blocking connects at once, every one in one epoll loop (the
 * even ones join the set before connect(), the odd ones after); each is
 * reported when its handshake is over, not before, and echoes a payload of
 * its own.
 */
static int
scenario_many(void)
{
	static struct many_conn mcs[AC_CONNS_MAX];
	struct epoll_event e, evs[AC_EVENTS];
	long long deadline;
	long t_min = LONG_MAX, t_max = 0;
	int ep, i, k, r, st, n = opt.conns, pending = 0, ok = 0, failed = 0, early = 0;
	int readable = 0, err_first = 0, done = 0, lost = 0;
	struct conn c;

	if (!nofile_allow(2 * n + 64))
		return skip("RLIMIT_NOFILE too low for -n");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return fail_end("epoll_create1: %s", errname(errno));
	for (i = 0; i < n; i++) {
		struct many_conn *mc = &mcs[i];
		uint64_t seed = seed_of(i);

		mc->out = malloc(opt.bytes);
		mc->in = malloc(opt.bytes);
		if (mc->out == NULL || mc->in == NULL || (mc->fd = c.fd = conn_socket(true)) < 0)
			return fail_end("setup of connection %d: %s", i, errname(errno));
		fill(mc->out, opt.bytes, &seed);
		memset(&e, 0, sizeof(e));
		e.events = EPOLLIN | EPOLLOUT;
		e.data.u32 = (uint32_t)i;
		if (i % 2 == 0 && epoll_ctl(ep, EPOLL_CTL_ADD, mc->fd, &e) != 0)
			check(false, "epoll_ctl: %s", errname(errno));
		conn_connect(&c);
		mc->t0 = c.t0;
		if (i % 2 == 1 && epoll_ctl(ep, EPOLL_CTL_ADD, mc->fd, &e) != 0)
			check(false, "epoll_ctl: %s", errname(errno));
		/* One that blocks would make N of them take N handshakes. */
		if (!check(c.err == EINPROGRESS && c.ms <= opt.at_once_ms, "connect %d said "
		    "%s after %ld ms, want -1/EINPROGRESS at once", i, errname(c.err), c.ms)) {
			report_kv("conns=%d pending=%d", n, pending);
			return report_end(stdout);
		}
		pending++;
	}
	report_kv("issue_ms=%lld", now_ms() - mcs[0].t0);
	if (opt.min_ms > 0 && now_ms() - mcs[0].t0 < opt.min_ms) {
		r = epoll_wait(ep, evs, AC_EVENTS, 0);
		check(r == 0, "%d of the pending sockets reported at once after connect()", r);
	}
	deadline = now_ms() + opt.wait_ms;
	while (done < n && now_ms() < deadline) {
		r = epoll_wait(ep, evs, AC_EVENTS, (int)(deadline - now_ms()));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			check(false, "epoll_wait: %s", errname(errno));
			break;
		}
		for (k = 0; k < r; k++) {
			struct many_conn *mc = &mcs[evs[k].data.u32];

			i = (int)evs[k].data.u32;
			if (mc->state == MC_CONNECTING &&
			    !many_ready(mc, evs[k].events, &err_first, &t_min, &t_max,
			    &early, &readable)) {
				mc->state = MC_DONE;
				close(mc->fd);
				failed++;
				done++;
				continue;
			}
			if (mc->state != MC_ECHO)
				continue;
			if ((st = many_echo(mc, ep, i)) == 0)
				continue;
			if (st > 0)
				ok++;
			else if (mc->got == opt.bytes)
				lost++;
			else
				failed++;
			mc->state = MC_DONE;
			close(mc->fd);
			done++;
		}
	}
	report_kv("conns=%d pending=%d ok=%d failed=%d lost=%d early=%d readable_first=%d "
	    "waited_ms_min=%ld waited_ms_max=%ld first_error=%s", n, pending, ok, failed, lost,
	    early, readable, t_min == LONG_MAX ? 0 : t_min, t_max, errname(err_first));
	check(done == n, "%d of %d connections unfinished after %ld ms", n - done, n,
	    opt.wait_ms);
	check(early == 0, "%d sockets reported before the proxy could have answered "
	    "(%ld ms)", early, opt.min_ms);
	check(readable == 0, "%d sockets were readable when first reported", readable);
	check(ok == n, "%d of %d connections echoed intact", ok, n);
	for (i = 0; i < n; i++) {
		if (mcs[i].state != MC_DONE)
			close(mcs[i].fd);
		free(mcs[i].out);
		free(mcs[i].in);
	}
	close(ep);
	return report_end(stdout);
}

/*
 * sndtimeo: a blocking connect() keeps the handshake inside the call, but
 * SO_SNDTIMEO bounds it as it bounds a direct one: -1/EINPROGRESS once it
 * expires (the kernel's answer), the socket still blocking, and the
 * connection going on; its outcome comes through the waiting call.
 */
static int
scenario_sndtimeo(void)
{
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct timeval tv = { .tv_sec = opt.timer_ms / MS_PER_S,
	    .tv_usec = opt.timer_ms % MS_PER_S * US_PER_MS };
	struct waiter w;
	struct conn c;

	report_kv("method=%s", method_names[m]);
	if (waiter_init(&w, m) < 0 || (c.fd = conn_socket(false)) < 0 ||
	    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return fail_end("setup: %s", errname(errno));
	conn_connect(&c);
	report_kv("connect=%s connect_ms=%ld", errname(c.err), c.ms);
	if (!check(c.err == EINPROGRESS, "a blocking connect() with SO_SNDTIMEO %ld ms "
	    "said %s after %ld ms, want -1/EINPROGRESS when the timeout expired",
	    opt.timer_ms, errname(c.err), c.ms))
		return report_end(stdout);
	check(c.ms >= opt.timer_ms * 3 / 4, "gave up after %ld ms, before SO_SNDTIMEO "
	    "(%ld ms)", c.ms, opt.timer_ms);
	check(c.ms <= opt.timer_ms + opt.at_once_ms, "gave up after %ld ms, SO_SNDTIMEO "
	    "is %ld ms", c.ms, opt.timer_ms);
	check(!is_nonblocking(c.fd), "the blocking socket came back with O_NONBLOCK");
	(void)waiter_add(&w, c.fd, POLLIN | POLLOUT);
	conn_await(&w, &c);
	return conn_end(&w, &c);
}

static void
on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* reenter: the socket the handler connects again, and what that said. */
static int reenter_fd = -1;
static volatile sig_atomic_t reenter_err = -1;

static void
on_alarm_reenter(int sig)
{
	int e = errno;

	(void)sig;
	alarms++;
	reenter_err = connect(reenter_fd, (const struct sockaddr *)&opt.dst, opt.dstlen) == 0 ?
	    0 : errno;
	errno = e;
}

/*
 * reenter: a blocking connect() whose SIGALRM handler, installed with
 * SA_RESTART, connect()s the same socket while the first waits: the
 * kernel's second connect() says EALREADY at once; a library waiting for
 * its own drive would wait forever. The first connect() returns 0.
 */
static int
scenario_reenter(void)
{
	struct sigaction sa;
	struct itimerval it, off;
	struct conn c;

	memset(&sa, 0, sizeof(sa));
	memset(&it, 0, sizeof(it));
	memset(&off, 0, sizeof(off));
	sa.sa_handler = on_alarm_reenter;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	it.it_value.tv_sec = opt.timer_ms / MS_PER_S;
	it.it_value.tv_usec = opt.timer_ms % MS_PER_S * US_PER_MS;
	if ((c.fd = conn_socket(false)) < 0 || sigaction(SIGALRM, &sa, NULL) != 0)
		return fail_end("setup: %s", errname(errno));
	reenter_fd = c.fd;
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		return fail_end("setup: %s", errname(errno));
	conn_connect(&c);
	(void)setitimer(ITIMER_REAL, &off, NULL);
	report_kv("connect=%s connect_ms=%ld signals=%d again=%s", errname(c.err), c.ms,
	    (int)alarms, reenter_err < 0 ? "none" : errname(reenter_err));
	check(alarms == 1, "%d signals during connect(), want the one", (int)alarms);
	check(reenter_err == EALREADY, "the handler's connect() of the same socket said "
	    "%s, want EALREADY", reenter_err < 0 ? "nothing" : errname(reenter_err));
	check(c.err == 0, "the first connect() said %s, want 0", errname(c.err));
	return report_end(stdout);
}

/*
 * eintr: a blocking connect(), SIGALRM after -s ms from a handler installed
 * without SA_RESTART: -1/EINTR then, as the kernel says it, and the
 * connection goes on in the background (POSIX connect()); its outcome comes
 * through the waiting call.
 * restart: SIGALRM every -s ms with SA_RESTART all through the handshake:
 * connect() returns 0 once it is over, and the echo works.
 */
static int
scenario_signal(bool restart, bool sigio)
{
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct sigaction sa;
	struct itimerval it, off;
	struct waiter w;
	struct conn c;
	char peer[64];
	int during;

	memset(&sa, 0, sizeof(sa));
	memset(&it, 0, sizeof(it));
	memset(&off, 0, sizeof(off));
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	it.it_value.tv_sec = opt.timer_ms / MS_PER_S;
	it.it_value.tv_usec = opt.timer_ms % MS_PER_S * US_PER_MS;
	if (restart)
		it.it_interval = it.it_value;
	report_kv("method=%s", method_names[m]);
	if (waiter_init(&w, m) < 0 || (c.fd = conn_socket(false)) < 0)
		return fail_end("setup: %s", errname(errno));
	if (sigio ? sigaction(SIGIO, &sa, NULL) != 0 ||
	    fcntl(c.fd, F_SETOWN, getpid()) != 0 ||
	    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_ASYNC) != 0 :
	    sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &it, NULL) != 0)
		return fail_end("setup: %s", errname(errno));
	conn_connect(&c);
	during = alarms;
	if (sigio)
		(void)fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_ASYNC);
	else
		(void)setitimer(ITIMER_REAL, &off, NULL);
	report_kv("connect=%s connect_ms=%ld signals=%d", errname(c.err), c.ms, during);
	if (restart) {
		check(during >= 1, "no SIGALRM came during connect(): nothing proved");
		if (!check(c.err == opt.want, "a blocking connect() interrupted by a "
		    "handler with SA_RESTART said %s, want %s", errname(c.err),
		    opt.want == 0 ? "0 (it completes)" : errname(opt.want)))
			return report_end(stdout);
		check(c.ms >= opt.min_ms, "connect() returned after %ld ms, before the "
		    "proxy could have answered (%ld ms)", c.ms, opt.min_ms);
		if (opt.want == 0) {
			(void)waiter_add(&w, c.fd, POLLIN | POLLOUT);
			echo_run(&w, seed_of(0));
			check(peer_is_dst(c.fd, peer, sizeof(peer)), "getpeername() says %s",
			    peer);
		}
		return report_end(stdout);
	}
	if (!check(c.err == EINTR, "a blocking connect() whose %s handler has no "
	    "SA_RESTART said %s after %ld ms, want -1/EINTR when the signal came "
	    "(%s)", sigio ? "SIGIO" : "SIGALRM", errname(c.err), c.ms,
	    sigio ? "at the first answer" : "at -s"))
		return report_end(stdout);
	if (sigio) {
		/* The first SIGIO is the greeting's answer; the proxy's last
		 * byte comes at -d. */
		check(during >= 1, "no SIGIO came during connect(): nothing proved");
		check(c.ms < opt.min_ms, "EINTR after %ld ms, when the proxy had "
		    "answered in full (%ld ms): the first SIGIO was lost", c.ms,
		    opt.min_ms);
	} else {
		check(during == 1, "%d signals during connect(), want the one", during);
		check(c.ms >= opt.timer_ms * 3 / 4 && c.ms <= opt.timer_ms + opt.at_once_ms,
		    "EINTR after %ld ms, the signal came at %ld ms", c.ms, opt.timer_ms);
	}
	check(!is_nonblocking(c.fd), "the blocking socket came back with O_NONBLOCK");
	(void)waiter_add(&w, c.fd, POLLIN | POLLOUT);
	conn_await(&w, &c);
	return conn_end(&w, &c);
}

/* O_NONBLOCK is set on descriptor fd, from /proc (true when unknown). */
static bool
fd_nonblocking(int fd)
{
	char path[64], line[128];
	unsigned long flags = O_NONBLOCK;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if ((f = fopen(path, "r")) == NULL)
		return true;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "flags: %lo", &flags) == 1)
			break;
	fclose(f);
	return (flags & O_NONBLOCK) != 0;
}

/* pcancel: the descriptors of this process whose link begins with kind
 * ("socket:", "anon_inode:[eventfd]"), only the blocking ones with
 * blocking_only (the library's wake descriptors are blocking eventfds; its
 * engine's own eventfd is not, and comes and goes with the engine). */
static int
fds_open(const char *kind, bool blocking_only)
{
	char target[64];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	ssize_t n;
	int count = 0, fd;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		fd = atoi(e->d_name);
		if (fd != dirfd(d) && strncmp(target, kind, strlen(kind)) == 0 &&
		    (!blocking_only || !fd_nonblocking(fd)))
			count++;
	}
	closedir(d);
	return count;
}

struct pcancel_arg {
	struct conn *c;
	int how;		/* 0: connect(), 1: poll(), 2: read(), 3: connect()
				   with the cancel pending before it starts */
	atomic_int started;
	atomic_int asked;	/* how 3: the cancel is requested */
};

static void *
pcancel_thread(void *p)
{
	struct pcancel_arg *a = p;
	struct pollfd pfd = { .fd = a->c->fd, .events = POLLIN };
	char b;

	if (a->how == 3)
		(void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	atomic_store(&a->started, 1);
	if (a->how == 3) {
		while (!atomic_load(&a->asked))
			sleep_ms(1);
		(void)pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	}
	if (a->how == 0 || a->how == 3)
		conn_connect(a->c);
	else if (a->how == 1)
		(void)poll(&pfd, 1, (int)opt.wait_ms);
	else
		(void)read(a->c->fd, &b, 1);
	return NULL;		/* not cancelled: the join says so */
}

/* Runs how in a thread, cancels it after ms (the socket closed by this
 * thread first with close_first), joins it: true when it ended cancelled. */
static bool
pcancel_run(struct conn *c, int how, long ms, bool close_first)
{
	static const char *const names[] = { "connect()", "poll()", "read()",
	    "connect() (the cancel pending before it)" };
	struct pcancel_arg a = { .c = c, .how = how };
	pthread_t t;
	void *ret = NULL;
	int i;

	if (pthread_create(&t, NULL, pcancel_thread, &a) != 0)
		return check(false, "pthread_create: %s", errname(errno));
	for (i = 0; i < AC_START_MS && !atomic_load(&a.started); i++)
		sleep_ms(1);
	sleep_ms(ms);
	if (close_first)
		close(c->fd);	/* the drive may see it first: either way */
	(void)pthread_cancel(t);
	atomic_store(&a.asked, 1);
	(void)pthread_join(t, &ret);
	return close_first || check(ret == PTHREAD_CANCELED, "a thread in %s of a "
	    "pending socket was not cancelled", names[how]);
}

/*
 * pcancel: pthread_cancel() of a thread in a blocking connect(), and of
 * threads waiting on a pending socket. The kernel's connect() is a
 * cancellation point that leaves the connection going on; the library's
 * must hand the handshake on, not leave it held by a thread that is gone
 * (then nothing ever finished it: the socket stayed pending for good).
 */
static int
scenario_pcancel(void)
{
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct waiter w, w2;
	struct conn c, c2, c3;
	int before, after, flags, how;

	report_kv("method=%s", method_names[m]);
	/* A cancel pending before connect() begins: it acts in the wait, not
	 * where the library holds its lock (the next connect() hung). Then
	 * one cancelled in its wait. Each handshake goes on. */
	for (how = 3; how >= 0; how -= 3) {
		if (waiter_init(&w, m) < 0 || (c.fd = conn_socket(false)) < 0)
			return fail_end("setup: %s", errname(errno));
		if (!pcancel_run(&c, how, how == 3 ? 0 : opt.timer_ms, false))
			return conn_end(&w, &c);
		check(!is_nonblocking(c.fd), "the blocking socket came back with O_NONBLOCK");
		(void)waiter_add(&w, c.fd, POLLIN | POLLOUT);
		conn_await(&w, &c);
		waiter_close(&w);
		close(c.fd);
		if (rep.failed)
			return report_end(stdout);
	}
	/* A second socket, pending; a thread waits on it in poll(), then
	 * one in a blocking read(); each cancelled. */
	before = fds_open("anon_inode:[eventfd]", true);
	if (waiter_init(&w2, m) < 0 || (c2.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	if (!conn_start(&c2))
		return conn_end(&w2, &c2);
	flags = fcntl(c2.fd, F_GETFL);
	(void)fcntl(c2.fd, F_SETFL, flags & ~O_NONBLOCK);
	if (!pcancel_run(&c2, 1, AC_BLOCKED_MS, false) ||
	    !pcancel_run(&c2, 2, AC_BLOCKED_MS, false))
		return conn_end(&w2, &c2);
	(void)fcntl(c2.fd, F_SETFL, flags);
	(void)waiter_add(&w2, c2.fd, POLLIN | POLLOUT);
	conn_await(&w2, &c2);
	waiter_close(&w2);
	close(c2.fd);
	after = fds_open("anon_inode:[eventfd]", true);
	report_kv("eventfds_before=%d eventfds_after=%d", before, after);
	check(after == before, "%d eventfds open after the outcome, %d before the "
	    "cancelled waiters: a waiter's hold on the socket was left behind", after,
	    before);
	/* A third, closed by this thread while another drives its
	 * handshake, and that one cancelled: nothing of it is left open. */
	before = fds_open("socket:", false);
	if ((c3.fd = conn_socket(false)) < 0)
		return fail_end("setup: %s", errname(errno));
	(void)pcancel_run(&c3, 0, opt.timer_ms, true);
	after = fds_open("socket:", false);
	report_kv("sockets_before=%d sockets_after=%d", before, after);
	check(after == before, "%d sockets open after a pending socket was closed and "
	    "its driver cancelled, %d before", after, before);
	return report_end(stdout);
}

/*
 * fail-errno: a non-blocking connect() and POLLOUT waited for, as an event
 * loop does: the errno in SO_ERROR and the events of the first report are
 * printed, and must agree (writable alone and 0, or POLLOUT|POLLERR|POLLHUP
 * and the errno, once). With -w the program writes at once: while pending
 * that must say EAGAIN, so none of its bytes reaches the proxy.
 */
static int
scenario_fail_errno(void)
{
	static const char early[] = "asynccheck: bytes written while pending";
	enum method m = opt.method_set ? opt.method : M_POLL;
	struct waiter w;
	struct conn c;
	ssize_t r;

	report_kv("method=%s", method_names[m]);
	if (waiter_init(&w, m) < 0 || (c.fd = conn_socket(true)) < 0)
		return fail_end("setup: %s", errname(errno));
	if (opt.before)
		(void)waiter_add(&w, c.fd, POLLOUT);
	if (!conn_start(&c))
		return report_end(stdout);
	if (opt.early_write) {
		r = write(c.fd, early, sizeof(early) - 1);
		report_kv("early_write=%s", r < 0 ? errname(errno) : "sent");
		check(r < 0 && errno == EAGAIN, "write() while the handshake is pending "
		    "said %s, want EAGAIN: the program's bytes must not reach the proxy "
		    "before it", r < 0 ? errname(errno) : "that it sent them");
	}
	if (!opt.before)
		(void)waiter_add(&w, c.fd, POLLOUT);
	conn_await(&w, &c);
	return conn_end(&w, &c);
}

/* --- Start-up --------------------------------------------------------------- */

static int
errno_arg(const char *s)
{
	const char *name;
	int e;

	if (strcmp(s, "ok") == 0 || strcmp(s, "0") == 0)
		return 0;
	for (e = 1; e < AC_ERRNO_MAX; e++)
		if ((name = strerrorname_np(e)) != NULL && strcmp(name, s) == 0)
			return e;
	usage();
	return -1;
}

static enum method
method_arg(const char *s)
{
	int m;

	if (strcmp(s, "epoll") == 0)
		return M_EPOLL;
	for (m = 0; m < M_COUNT; m++)
		if (strcmp(s, method_names[m]) == 0)
			return (enum method)m;
	usage();
	return M_POLL;
}

static void
dst_arg(const char *host, const char *port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&opt.dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&opt.dst;
	char h[INET6_ADDRSTRLEN + 2];
	uint16_t p = (uint16_t)num_arg(port, 1, 65535);
	size_t n = strlen(host);

	memset(&opt.dst, 0, sizeof(opt.dst));
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(h)) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		host = h;
	}
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(p);
		opt.dstlen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(p);
		opt.dstlen = sizeof(*s6);
	} else {
		usage();
	}
}

static void
args_parse(int argc, char **argv)
{
	bool want_set = false;
	int c;

	if (argc < 4)
		usage();
	opt.scenario = argv[1];
	dst_arg(argv[2], argv[3]);
	opt.wait_ms = AC_WAIT_MS;
	opt.at_once_ms = AC_AT_ONCE_MS;
	opt.bytes = AC_ECHO_BYTES;
	opt.fd_at = AC_HIGH_FD;
	opt.timer_ms = AC_TIMER_MS;
	opt.conns = strcmp(opt.scenario, "cancel") == 0 ? AC_CANCEL_CONNS : AC_MANY_CONNS;
	/* getopt() takes argv[3], PORT, for the program's name. */
	while ((c = getopt(argc - 3, argv + 3, "d:e:t:c:m:Bn:f:s:b:w")) != -1) {
		switch (c) {
		case 'd': opt.min_ms = num_arg(optarg, 0, 3600L * MS_PER_S); break;
		case 'e': opt.want = errno_arg(optarg); want_set = true; break;
		case 't': opt.wait_ms = num_arg(optarg, 1, 3600L * MS_PER_S); break;
		case 'c': opt.at_once_ms = num_arg(optarg, 1, 3600L * MS_PER_S); break;
		case 'm': opt.method = method_arg(optarg); opt.method_set = true; break;
		case 'B': opt.before = true; break;
		case 'n': opt.conns = (int)num_arg(optarg, 1, AC_CONNS_MAX); break;
		case 'f': opt.fd_at = (int)num_arg(optarg, 3, 1 << 20); break;
		case 's': opt.timer_ms = num_arg(optarg, 1, 3600L * MS_PER_S); break;
		case 'b': opt.bytes = (size_t)num_arg(optarg, 1, 1 << 24); break;
		case 'w': opt.early_write = true; break;
		default: usage();
		}
	}
	if (optind != argc - 3)
		usage();
	opt.want_any = !want_set && strcmp(opt.scenario, "fail-errno") == 0;
}

int
main(int argc, char **argv)
{
	pthread_t wd;
	long watchdog_s;
	int m;

	args_parse(argc, argv);
	rep.name = opt.scenario;
	signal(SIGPIPE, SIG_IGN);
	/* Three waits (wait, echo, a child's) and cancel's rounds, at most. */
	watchdog_s = AC_WATCHDOG_S + (3 * opt.wait_ms + AC_CANCEL_ROUNDS *
	    (socksify_timeout_ms() + AC_SETTLE_EXTRA_MS)) / MS_PER_S;
	if (thread_start(&wd, watchdog_main, (void *)(intptr_t)watchdog_s) != 0) {
		perror("asynccheck: watchdog");
		return EXIT_FAIL;
	}
	for (m = 0; m < M_COUNT; m++)
		if (strcmp(opt.scenario, method_names[m]) == 0)
			return scenario_wait((enum method)m);
	if (strcmp(opt.scenario, "epoll-before") == 0) {
		if (!opt.method_set)
			opt.method = M_EPOLL;
		if (!method_is_epoll(opt.method))
			usage();
		opt.before = true;
		return scenario_wait(opt.method);
	}
	if (strcmp(opt.scenario, "epoll-two-sets") == 0)
		return scenario_two_sets();
	if (strcmp(opt.scenario, "epoll-exclusive") == 0)
		return scenario_exclusive();
	if (strcmp(opt.scenario, "thread") == 0)
		return scenario_thread();
	if (strcmp(opt.scenario, "fork") == 0)
		return scenario_fork();
	if (strcmp(opt.scenario, "dup") == 0)
		return scenario_high(true);
	if (strcmp(opt.scenario, "highfd") == 0)
		return scenario_high(false);
	if (strcmp(opt.scenario, "states") == 0)
		return scenario_states();
	if (strcmp(opt.scenario, "cancel") == 0)
		return scenario_cancel();
	if (strcmp(opt.scenario, "many") == 0)
		return scenario_many();
	if (strcmp(opt.scenario, "sndtimeo") == 0)
		return scenario_sndtimeo();
	if (strcmp(opt.scenario, "eintr") == 0)
		return scenario_signal(false, false);
	if (strcmp(opt.scenario, "restart") == 0)
		return scenario_signal(true, false);
	if (strcmp(opt.scenario, "sigio") == 0)
		return scenario_signal(false, true);
	if (strcmp(opt.scenario, "reenter") == 0)
		return scenario_reenter();
	if (strcmp(opt.scenario, "pcancel") == 0)
		return scenario_pcancel();
	if (strcmp(opt.scenario, "fail-errno") == 0)
		return scenario_fail_errno();
	usage();
	return EXIT_USAGE;
}
