/*
 * gatecheck: the corners of libsocksify's readiness gate and engine that a
 * cold review found broken once, one scenario per call, run under the
 * library (SOCKSIFY_PROXY in the environment):
 *
 *	gatecheck SCENARIO HOST PORT
 *
 * HOST:PORT is the destination the program connect()s to (tunnelled); the
 * proxy behind SOCKSIFY_PROXY is chosen by the test (a slow one, a stalled
 * one, a resetting one), as each scenario says.
 *
 *   sigclose   no connect at all: a SIGALRM handler close()s an fd
 *              registered in epoll while the thread is inside epoll_ctl(),
 *              2,000 times (close() is async-signal-safe). Must not deadlock.
 *   vfork      (slow proxy) a pending socket in an epoll set; a vfork()ed
 *              child closes it before _exit(), as a spawner does before
 *              exec(): the parent must still hear EPOLLOUT when the proxy
 *              answered, SO_ERROR 0.
 *   stale      (stalled proxy, SOCKSIFY_TIMEOUT=2) a pending socket closed
 *              inside libc (fclose), its number reused by a second pending
 *              socket: when the first one's deadline passes, the second must
 *              still be pending (poll silent, write EAGAIN).
 *   epreuse    (slow proxy) a pending socket in epoll set A; A closed and a
 *              new set B gets its number: B never hears of the socket.
 *   eintr      (slow proxy) a blocking connect() interrupted (SIGALRM, no
 *              SA_RESTART), retried while EINTR: the retry ends in 0, not
 *              EISCONN; the echo works.
 *   dontwait   (stalled proxy) a blocking socket whose connect() said EINTR:
 *              recv(MSG_DONTWAIT) and send(MSG_DONTWAIT) say EAGAIN at once;
 *              read() with SO_RCVTIMEO 200 ms says EAGAIN after about that.
 *   emfile     (stalled proxy) a blocking socket pending after SO_SNDTIMEO;
 *              with no descriptor left, poll() stays silent and write()
 *              with SO_SNDTIMEO says EAGAIN: no byte goes to the proxy.
 *   forkwait   (slow proxy) fork() with a connect pending waits for it,
 *              without burning the CPU meanwhile (under half the wall time).
 *   closerace  (stalled proxy) a blocking connect() in one thread, close()
 *              of its socket in another: the connect() returns at once
 *              (EBADF), not at SOCKSIFY_TIMEOUT.
 *   pollzero   (stalled proxy) poll(), ppoll() and select() with a zero
 *              timeout on a pending socket, 3,000 times each: every one
 *              returns 0 at once (a millisecond boundary crossed inside the
 *              call must never turn "no wait" into "wait forever").
 *   crashrestart (slow proxy) a SIGSEGV handler without SA_RESTART, as a
 *              crash reporter or a sanitizer installs, beside a SIGALRM one
 *              with SA_RESTART: a blocking connect() that SIGALRM
 *              interrupts is restarted and returns 0, never EINTR.
 *   atfork     no connect: a library's fork prepare handler (registered in
 *              main(), as at a library's init) has its event-loop thread
 *              touch its epoll set and waits for it: fork() must return.
 *   vforkown   (stalled proxy) a vfork()ed child that calls epoll_ctl()
 *              before _exit() does not make the parent's state its own: a
 *              dup() made after connect() still says EAGAIN to a write.
 *
 * Prints one line "gatecheck: SCENARIO ok ..." or "gatecheck: SCENARIO FAIL
 * (why)" and exits 0 or 1; a watchdog alarm ends a hung scenario with exit 3.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_S		20	/* a scenario that takes longer hung */
#define SIGCLOSE_TRIALS		2000
#define SIGCLOSE_TIMER_US	200
#define WAIT_MS			8000	/* for the proxy's answer */
#define ECHO_BYTES		32
#define RCVTIMEO_MS		200
#define SNDTIMEO_MS		100
#define EINTR_ALARM_US		50000	/* before the slow proxy answers */

static struct sockaddr_storage target;
static socklen_t target_len;
static const char *scenario;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
fail(const char *fmt, ...)
{
	va_list ap;

	printf("gatecheck: %s FAIL (", scenario);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(")\n");
	return 1;
}

static int
ok(const char *fmt, ...)
{
	va_list ap;

	printf("gatecheck: %s ok ", scenario);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 0;
}

static void
on_watchdog(int sig)
{
	(void)sig;
	(void)!write(STDOUT_FILENO, "gatecheck: watchdog: hung\n", 26);
	_exit(3);
}

static int
tcp_socket(bool nonblock)
{
	return socket(target.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
}

static int
start_connect(int fd)
{
	return connect(fd, (struct sockaddr *)&target, target_len);
}

static int
so_error(int fd)
{
	socklen_t len = sizeof(int);
	int err = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

/* A payload through the echo target, back byte for byte: 0 or an errno. */
static int
echo(int fd)
{
	char out[ECHO_BYTES], in[ECHO_BYTES];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;
	int i;

	for (i = 0; i < ECHO_BYTES; i++)
		out[i] = (char)('a' + (getpid() + i) % 26);
	if (send(fd, out, sizeof(out), MSG_NOSIGNAL) != (ssize_t)sizeof(out))
		return errno ? errno : EIO;
	while (got < sizeof(in)) {
		if (poll(&p, 1, WAIT_MS) != 1)
			return ETIMEDOUT;
		n = recv(fd, in + got, sizeof(in) - got, MSG_DONTWAIT);
		if (n <= 0)
			return n == 0 ? ECONNRESET : errno;
		got += (size_t)n;
	}
	return memcmp(in, out, sizeof(in)) == 0 ? 0 : EBADMSG;
}

static volatile sig_atomic_t sig_fired, victim = -1;

static void
on_alarm_close(int sig)
{
	(void)sig;
	close(victim);
	sig_fired = 1;
}

static int
scenario_sigclose(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct itimerval it = { { 0, 0 }, { 0, SIGCLOSE_TIMER_US } };
	struct sigaction sa;
	int ep = epoll_create1(EPOLL_CLOEXEC), y = eventfd(0, EFD_CLOEXEC), t, z;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm_close;
	if (ep < 0 || y < 0 || sigaction(SIGALRM, &sa, NULL) != 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, y, &ev) != 0)
		return fail("setup: %s", strerror(errno));
	/* The watchdog is SIGALRM's no more: a second timer of its own. */
	for (t = 0; t < SIGCLOSE_TRIALS; t++) {
		if ((z = eventfd(0, EFD_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, z, &ev) != 0)
			return fail("trial %d: %s", t, strerror(errno));
		victim = z;
		sig_fired = 0;
		setitimer(ITIMER_REAL, &it, NULL);
		while (!sig_fired) {
			ev.events ^= EPOLLOUT;
			(void)epoll_ctl(ep, EPOLL_CTL_MOD, y, &ev);
		}
	}
	return ok("trials=%d", t);
}

/* Wait for fd in ep: the events, 0 for none within ms. */
static unsigned
epoll_one(int ep, int ms)
{
	struct epoll_event got;

	return epoll_wait(ep, &got, 1, ms) == 1 ? got.events : 0;
}

static int
scenario_vfork(void)
{
	struct epoll_event ev = { .events = EPOLLOUT };
	int ep = epoll_create1(EPOLL_CLOEXEC), s = tcp_socket(true), r, st;
	long long t0 = now_ms();
	unsigned got;
	pid_t p;

	r = start_connect(s);
	if (r == 0 || errno != EINPROGRESS)
		return fail("connect: %s", r == 0 ? "0" : strerror(errno));
	ev.data.fd = s;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
		return fail("epoll_ctl: %s", strerror(errno));
	if ((p = vfork()) == 0) {
		close(s);
		_exit(0);
	}
	if (p < 0 || waitpid(p, &st, 0) != p)
		return fail("vfork: %s", strerror(errno));
	got = epoll_one(ep, WAIT_MS);
	if (got != EPOLLOUT)
		return fail("epoll events 0x%x after %lld ms, want EPOLLOUT", got,
		    now_ms() - t0);
	if ((r = so_error(s)) != 0 || (r = echo(s)) != 0)
		return fail("after EPOLLOUT: %s", strerror(r));
	return ok("waited_ms=%lld", now_ms() - t0);
}

static int
scenario_stale(void)
{
	struct pollfd p;
	int s1 = tcp_socket(true), s2, r;
	FILE *f;

	if (start_connect(s1) == 0 || errno != EINPROGRESS)
		return fail("first connect: %s", strerror(errno));
	if ((f = fdopen(s1, "r+")) == NULL)
		return fail("fdopen: %s", strerror(errno));
	fclose(f);		/* closed inside libc: no close() of ours */
	s2 = tcp_socket(true);
	if (s2 != s1)
		return fail("the number was not reused (%d, %d)", s1, s2);
	usleep(500000);
	if (start_connect(s2) == 0 || errno != EINPROGRESS)
		return fail("second connect: %s", strerror(errno));
	/* SOCKSIFY_TIMEOUT=2: the first one's deadline passes meanwhile. */
	usleep(1900000);
	p.fd = s2;
	p.events = POLLOUT | POLLIN;
	p.revents = 0;
	r = poll(&p, 1, 0);
	if (r != 0)
		return fail("poll of the second socket: %d revents 0x%x while pending", r,
		    p.revents);
	r = (int)write(s2, "early", 5);
	if (r >= 0 || errno != EAGAIN)
		return fail("write while pending: %s", r >= 0 ? "sent" : strerror(errno));
	/* Its own deadline ends it, failed: ETIMEDOUT. */
	p.revents = 0;
	if (poll(&p, 1, WAIT_MS) != 1 || (r = so_error(s2)) != ETIMEDOUT)
		return fail("the second socket's outcome: revents 0x%x, SO_ERROR %s",
		    p.revents, strerror(r));
	return ok("so_error=ETIMEDOUT");
}

static int
scenario_epreuse(void)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 0xdeadbeef };
	int a = epoll_create1(EPOLL_CLOEXEC), b, s = tcp_socket(true), r;
	unsigned got;

	if (start_connect(s) == 0 || errno != EINPROGRESS)
		return fail("connect: %s", strerror(errno));
	if (epoll_ctl(a, EPOLL_CTL_ADD, s, &ev) != 0)
		return fail("epoll_ctl: %s", strerror(errno));
	close(a);
	b = epoll_create1(EPOLL_CLOEXEC);
	if (b != a)
		return fail("the number was not reused (%d, %d)", a, b);
	got = epoll_one(b, 3000);
	if (got != 0)
		return fail("set B heard events 0x%x of a socket it never had", got);
	if ((r = so_error(s)) != 0 || (r = echo(s)) != 0)
		return fail("the socket itself: %s", strerror(r));
	return ok("b_events=0");
}

static void
on_alarm_quiet(int sig)
{
	(void)sig;
}

static void
alarm_in(long us, bool restart)
{
	struct itimerval it = { { 0, 0 }, { us / 1000000, us % 1000000 } };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm_quiet;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

static int
scenario_eintr(void)
{
	int s = tcp_socket(false), r, n = 0, err;

	alarm_in(EINTR_ALARM_US, false);
	while ((r = start_connect(s)) != 0 && errno == EINTR)
		n++;
	err = errno;
	if (n == 0)
		return fail("connect() was never interrupted (%d %s)", r, strerror(err));
	if (r != 0)
		return fail("connect() retried after EINTR: %s, want 0", strerror(err));
	if ((r = echo(s)) != 0)
		return fail("echo: %s", strerror(r));
	return ok("eintr=%d", n);
}

static void
on_segv(int sig)
{
	(void)sig;
	_exit(4);
}

static int
scenario_crashrestart(void)
{
	struct sigaction sa;
	int s = tcp_socket(false), r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, NULL);
	alarm_in(EINTR_ALARM_US, true);
	r = start_connect(s);
	if (r != 0)
		return fail("connect(): %s, want 0 (SA_RESTART)", strerror(errno));
	if ((r = echo(s)) != 0)
		return fail("echo: %s", strerror(r));
	return ok("connect=0");
}

static int
scenario_dontwait(void)
{
	struct timeval tv = { 0, RCVTIMEO_MS * 1000 };
	long long t0;
	char b[4];
	ssize_t r;

	int s = tcp_socket(false);

	alarm_in(EINTR_ALARM_US, false);
	if (start_connect(s) == 0 || errno != EINTR)
		return fail("connect: %s, want EINTR", strerror(errno));
	t0 = now_ms();
	r = recv(s, b, sizeof(b), MSG_DONTWAIT);
	if (r >= 0 || errno != EAGAIN || now_ms() - t0 > 100)
		return fail("recv(MSG_DONTWAIT): %s after %lld ms", r >= 0 ? "data" :
		    strerror(errno), now_ms() - t0);
	r = send(s, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r >= 0 || errno != EAGAIN || now_ms() - t0 > 100)
		return fail("send(MSG_DONTWAIT): %s", r >= 0 ? "sent" : strerror(errno));
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return fail("SO_RCVTIMEO: %s", strerror(errno));
	t0 = now_ms();
	r = read(s, b, sizeof(b));
	if (r >= 0 || errno != EAGAIN)
		return fail("read with SO_RCVTIMEO: %s, want EAGAIN",
		    r >= 0 ? "data" : strerror(errno));
	if (now_ms() - t0 < RCVTIMEO_MS * 3 / 4 || now_ms() - t0 > WAIT_MS)
		return fail("read with SO_RCVTIMEO waited %lld ms", now_ms() - t0);
	return ok("read_waited_ms=%lld", now_ms() - t0);
}

static int
scenario_emfile(void)
{
	struct timeval tv = { 0, SNDTIMEO_MS * 1000 };
	struct rlimit rl;
	struct pollfd p;
	int s = tcp_socket(false), r, filler;

	if (setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return fail("SO_SNDTIMEO: %s", strerror(errno));
	if (start_connect(s) == 0 || errno != EINPROGRESS)
		return fail("connect: %s, want EINPROGRESS", strerror(errno));
	/* No descriptor left for anything the library would make now. */
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = (rlim_t)s + 8;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return fail("setrlimit: %s", strerror(errno));
	while ((filler = eventfd(0, 0)) >= 0)
		;
	if (errno != EMFILE)
		return fail("filling the table: %s", strerror(errno));
	p.fd = s;
	p.events = POLLOUT | POLLIN;
	p.revents = 0;
	r = poll(&p, 1, 300);
	if (r != 0)
		return fail("poll at EMFILE: %d revents 0x%x while pending", r, p.revents);
	r = (int)write(s, "early", 5);
	if (r >= 0 || errno != EAGAIN)
		return fail("write at EMFILE: %s, want EAGAIN", r >= 0 ? "sent" : strerror(errno));
	return ok("poll=0 write=EAGAIN");
}

static int
scenario_forkwait(void)
{
	struct rusage ru0, ru1;
	long long t0, wall, cpu;
	int s = tcp_socket(true), st, r;
	pid_t p;

	if (start_connect(s) == 0 || errno != EINPROGRESS)
		return fail("connect: %s", strerror(errno));
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ms();
	if ((p = fork()) == 0)
		_exit(0);
	wall = now_ms() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	if (p < 0 || waitpid(p, &st, 0) != p)
		return fail("fork: %s", strerror(errno));
	cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
	    ru0.ru_stime.tv_sec) * 1000LL + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
	    ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1000;
	if (cpu * 2 > wall && cpu > 50)
		return fail("fork() waited %lld ms and burnt %lld ms of CPU", wall, cpu);
	if ((r = so_error(s)) != 0 || (r = echo(s)) != 0)
		return fail("after fork(): %s", strerror(r));
	return ok("fork_ms=%lld cpu_ms=%lld", wall, cpu);
}

#define POLLZERO_ROUNDS		3000

static int
scenario_pollzero(void)
{
	struct timespec zero = { 0, 0 };
	struct timeval tv;
	struct pollfd p;
	long long t0 = now_ms();
	fd_set ws;
	int s = tcp_socket(true), i, r;

	if (start_connect(s) == 0 || errno != EINPROGRESS)
		return fail("connect: %s", strerror(errno));
	for (i = 0; i < POLLZERO_ROUNDS; i++) {
		p.fd = s;
		p.events = POLLOUT;
		p.revents = 0;
		if ((r = poll(&p, 1, 0)) != 0)
			return fail("poll round %d: %d revents 0x%x", i, r, p.revents);
		if ((r = ppoll(&p, 1, &zero, NULL)) != 0)
			return fail("ppoll round %d: %d revents 0x%x", i, r, p.revents);
		FD_ZERO(&ws);
		FD_SET(s, &ws);
		tv.tv_sec = 0;
		tv.tv_usec = 0;
		if ((r = select(s + 1, NULL, &ws, NULL, &tv)) != 0)
			return fail("select round %d: %d", i, r);
	}
	if (now_ms() - t0 > 3000)
		return fail("%d zero-timeout rounds took %lld ms", POLLZERO_ROUNDS, now_ms() - t0);
	return ok("rounds=%d ms=%lld", POLLZERO_ROUNDS, now_ms() - t0);
}

static pthread_mutex_t lib_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lib_cond = PTHREAD_COND_INITIALIZER;
static int lib_ep, lib_wake;
static bool lib_asked, lib_parked;

/* A library's event-loop thread: parks (disarms its wakeup) when asked. */
static void *
lib_loop(void *arg)
{
	struct epoll_event ev = { .events = EPOLLIN };

	(void)arg;
	pthread_mutex_lock(&lib_mutex);
	for (;;) {
		while (!lib_asked)
			pthread_cond_wait(&lib_cond, &lib_mutex);
		lib_asked = false;
		pthread_mutex_unlock(&lib_mutex);
		(void)epoll_ctl(lib_ep, EPOLL_CTL_MOD, lib_wake, &ev);
		pthread_mutex_lock(&lib_mutex);
		lib_parked = true;
		pthread_cond_broadcast(&lib_cond);
	}
	return NULL;
}

static void
lib_prepare(void)
{
	pthread_mutex_lock(&lib_mutex);
	lib_asked = true;
	lib_parked = false;
	pthread_cond_broadcast(&lib_cond);
	while (!lib_parked)
		pthread_cond_wait(&lib_cond, &lib_mutex);
	pthread_mutex_unlock(&lib_mutex);
}

static int
scenario_atfork(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	pthread_t th;
	int st;
	pid_t p;

	pthread_atfork(lib_prepare, NULL, NULL);
	lib_ep = epoll_create1(EPOLL_CLOEXEC);
	lib_wake = eventfd(0, EFD_CLOEXEC);
	if (epoll_ctl(lib_ep, EPOLL_CTL_ADD, lib_wake, &ev) != 0 ||
	    pthread_create(&th, NULL, lib_loop, NULL) != 0)
		return fail("setup: %s", strerror(errno));
	if ((p = fork()) == 0)
		_exit(0);
	if (p < 0 || waitpid(p, &st, 0) != p)
		return fail("fork: %s", strerror(errno));
	return ok("fork=returned");
}

static void *
close_later(void *arg)
{
	usleep(200000);
	close(*(int *)arg);
	return NULL;
}

static int
scenario_closerace(void)
{
	pthread_t th;
	long long t0 = now_ms();
	int s = tcp_socket(false), r, err;

	if (pthread_create(&th, NULL, close_later, &s) != 0)
		return fail("pthread_create");
	r = start_connect(s);
	err = errno;
	pthread_join(th, NULL);
	if (r == 0)
		return fail("connect() succeeded through a stalled proxy");
	if (now_ms() - t0 > 2000)
		return fail("connect() returned %s after %lld ms, not when closed",
		    strerror(err), now_ms() - t0);
	return ok("errno=%s ms=%lld", strerror(err), now_ms() - t0);
}

static int
scenario_vforkown(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC), y = eventfd(0, EFD_CLOEXEC), s, d, r, st;
	pid_t p;

	if ((p = vfork()) == 0) {
		(void)epoll_ctl(ep, EPOLL_CTL_ADD, y, &ev);
		_exit(0);
	}
	if (p < 0 || waitpid(p, &st, 0) != p)
		return fail("vfork: %s", strerror(errno));
	s = tcp_socket(true);
	if (start_connect(s) == 0 || errno != EINPROGRESS)
		return fail("connect: %s", strerror(errno));
	d = dup(s);
	r = (int)write(d, "early", 5);
	if (r >= 0 || errno != EAGAIN)
		return fail("write on a dup made after connect(): %s, want EAGAIN",
		    r >= 0 ? "sent" : strerror(errno));
	return ok("write=EAGAIN");
}

int
main(int argc, char **argv)
{
	struct addrinfo hints, *ai;
	struct sigaction sa;
	timer_t dog;
	struct sigevent sev;
	struct itimerspec its;

	if (argc != 4) {
		fprintf(stderr, "usage: gatecheck SCENARIO HOST PORT\n");
		return 2;
	}
	scenario = argv[1];
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(argv[2], argv[3], &hints, &ai) != 0) {
		fprintf(stderr, "gatecheck: bad address %s %s\n", argv[2], argv[3]);
		return 2;
	}
	memcpy(&target, ai->ai_addr, ai->ai_addrlen);
	target_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* The watchdog: SIGUSR2 from a timer of its own (SIGALRM is the
	 * scenarios'). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watchdog;
	sa.sa_flags = SA_RESTART;	/* it ends the run: restarting costs nothing */
	sigaction(SIGUSR2, &sa, NULL);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR2;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = WATCHDOG_S;
	if (timer_create(CLOCK_MONOTONIC, &sev, &dog) != 0 || timer_settime(dog, 0, &its, NULL) != 0)
		return 2;
	if (strcmp(scenario, "sigclose") == 0)
		return scenario_sigclose();
	if (strcmp(scenario, "vfork") == 0)
		return scenario_vfork();
	if (strcmp(scenario, "stale") == 0)
		return scenario_stale();
	if (strcmp(scenario, "epreuse") == 0)
		return scenario_epreuse();
	if (strcmp(scenario, "eintr") == 0)
		return scenario_eintr();
	if (strcmp(scenario, "dontwait") == 0)
		return scenario_dontwait();
	if (strcmp(scenario, "emfile") == 0)
		return scenario_emfile();
	if (strcmp(scenario, "forkwait") == 0)
		return scenario_forkwait();
	if (strcmp(scenario, "pollzero") == 0)
		return scenario_pollzero();
	if (strcmp(scenario, "crashrestart") == 0)
		return scenario_crashrestart();
	if (strcmp(scenario, "atfork") == 0)
		return scenario_atfork();
	if (strcmp(scenario, "closerace") == 0)
		return scenario_closerace();
	if (strcmp(scenario, "vforkown") == 0)
		return scenario_vforkown();
	fprintf(stderr, "gatecheck: unknown scenario %s\n", scenario);
	return 2;
}
