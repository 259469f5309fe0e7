/*
 * stress: libsocksify.so under load, for tests/preload_faults.bats.
 *
 *	stress echod
 *		An echo target on 127.0.0.1:PORT and 127.0.0.2:PORT (one
 *		ephemeral port), a thread per connection; prints "stress: echo
 *		on PORT" on stderr and serves until killed. Run it without the
 *		library.
 *
 *	stress probe [-n] [-i USEC] [-w] [-d FD] HOST PORT
 *		One connect() to HOST:PORT (-n: a non-blocking socket, its
 *		outcome read through poll() and SO_ERROR), then PROBE_BYTES
 *		echoed and compared. Prints "ok MS", or the errno name and MS:
 *		"ETIMEDOUT 1003"; "lost MS" when the echo came back wrong.
 *		-i: SIGUSR1 every USEC microseconds meanwhile, from a handler
 *		without SA_RESTART; " signals=N eintr=N" follows.
 *		-w: once the socket polls writable, write at once without asking
 *		SO_ERROR, with SIGPIPE at its default; " pollerr=N" follows
 *		(1: poll() said POLLERR). -d FD: the socket gets fd number FD.
 *
 *	stress run [-t THREADS] [-c CONNS] [-b BYTES] [-x DIRECT -X XHOST]
 *	           [-f FORKS -F NAME] [-i USEC [-r]] HOST PORT
 *		THREADS threads (default 64) start together; each makes CONNS
 *		connections one after another and pushes BYTES through each in
 *		chunks, every chunk compared with what comes back, then checks
 *		the echo ends where the data did. Odd threads use non-blocking
 *		sockets. The first DIRECT threads connect to XHOST:PORT, which
 *		the test excludes from the proxy, the rest to HOST:PORT.
 *		-f: the main thread forks FORKS times, spread over the run while
 *		the threads connect; each child makes CHILD_CONNS connections of
 *		its own to NAME:PORT and looks up a name of its own, which the
 *		parent must later resolve to the same placeholder (socks5h: one
 *		table for the process tree); the parent reaps every child.
 *		-i: every thread gets SIGUSR1 each USEC microseconds from a timer
 *		of its own, from a handler installed without SA_RESTART (-r:
 *		with it); an interrupted connect() is finished as POSIX says,
 *		by poll() and SO_ERROR, and counted.
 *		Under socks5h (HOST came back a placeholder) each connection
 *		also looks up a name never seen before and names it back.
 *		Prints one line of counts and exits 0 when nothing failed.
 *
 * HOST may be a name: every connection resolves it with getaddrinfo(), so
 * under socks5h it is a placeholder each time. Failures are described on
 * stderr, one line each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testbin.h"

#define STRESS_THREADS_MAX	512
#define STRESS_THREADS_DEFAULT	64
#define STRESS_CONNS_DEFAULT	20
#define STRESS_BYTES_DEFAULT	16384
#define STRESS_FORKS_MAX	64
#define STRESS_CHUNK_BYTES	8192	/* sent, then read back, before the next */
#define STRESS_IO_TIMEOUT_MS	20000	/* per poll() of one connection */
#define STRESS_CHILD_CONNS	2
#define STRESS_CHILD_TIMEOUT_S	30	/* a child that takes longer is killed */
#define PROBE_BYTES		4096
#define ERR_LOST		(-1)	/* the echo came back different: no errno */
#define ECHO_BACKLOG		4096
#define ECHO_BUF_BYTES		16384
#define ECHO_SECOND_ADDR	"127.0.0.2"	/* the excluded twin of 127.0.0.1 */
#define ECHO_PORT_TRIES		16	/* ports tried for both addresses at once */
#define NAME_TEXT_MAX		64	/* "fork-N.stress.test" */
#define LINE_MAX_BYTES		256	/* one stderr line of a child */
/* The placeholder range of preload/fakedns.c (shared/defaults.h). */
#define PLACEHOLDER_NET		0xc6120000u	/* 198.18.0.0 */
#define PLACEHOLDER_MASK	0xfffe0000u	/* /15 */
#define NS_PER_US		1000L
#define US_PER_S		1000000L

/* The field timer_create(2) documents; glibc 2.36 (Debian 12) names it only in
 * the union it lives in. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id	_sigev_un._tid
#endif

struct options {
	int threads, conns, direct, forks;
	size_t bytes;
	const char *host, *xhost, *fork_name, *port;
	long tick_us;
	bool restart;
	bool write_first;		/* probe -w */
	int fd_at;			/* probe -d: the socket's fd number */
};

/* What one thread, or one child, did. */
struct tally {
	unsigned ok, failed, placeholders, names, interrupted, eintr, pollerr;
	unsigned long long bytes;
};

struct worker {
	pthread_t tid;
	int id;
	struct tally t;
};

/* One record per child through a pipe: the placeholder it got for its name. */
struct fork_note {
	int k;
	uint8_t ip[4];
};

static struct options opt;
static pthread_barrier_t start_line;
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress_cond = PTHREAD_COND_INITIALIZER;
static unsigned progress_done;		/* connections finished, under the lock */
static atomic_int in_connect;		/* threads inside connect() now */
static atomic_ullong ticks;		/* timer signals handled, all threads */
static _Thread_local volatile sig_atomic_t ticks_here;
/* probe -w clears it: a send() into a dead socket may then raise SIGPIPE. */
static int send_flags = MSG_NOSIGNAL;

static void
usage(void)
{
	fprintf(stderr, "usage: stress echod\n"
	    "       stress probe [-n] [-i USEC] [-w] [-d FD] HOST PORT\n"
	    "       stress run [-t THREADS] [-c CONNS] [-b BYTES] [-x DIRECT -X XHOST]\n"
	    "                  [-f FORKS -F NAME] [-i USEC [-r]] HOST PORT\n");
	exit(2);
}

static const char *
errname(int err)
{
	const char *s;

	if (err == ERR_LOST)
		return "lost";
	s = strerrorname_np(err);

	return s != NULL ? s : "E?";
}

/* Async-signal-safe: a TLS counter and a lock-free atomic. */
static void
on_tick(int sig)
{
	(void)sig;
	ticks_here++;
	atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
}

/* Waits until fd is ready for ev: 0, or ETIMEDOUT / the errno of poll(). */
static int
wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long long deadline = now_ms() + STRESS_IO_TIMEOUT_MS;
	long long left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return errno;
	}
}

static int
send_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;
	int r;

	while (n > 0) {
		if ((r = wait_fd(fd, POLLOUT)) != 0)
			return r;
		w = send(fd, p, n, send_flags | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes: 0, an errno, or EPIPE when the peer ended first. */
static int
recv_all(int fd, uint8_t *p, size_t n)
{
	ssize_t got;
	int r;

	while (n > 0) {
		if ((r = wait_fd(fd, POLLIN)) != 0)
			return r;
		got = recv(fd, p, n, MSG_DONTWAIT);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return errno;
		if (got == 0)
			return EPIPE;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/*
 * Pushes bytes through fd chunk by chunk, each compared with what comes
 * back, then half-closes and expects the echo to end there too: a byte
 * more or less (a handshake left half done) fails. 0, an errno, or
 * ERR_LOST for bytes that came back different.
 */
static int
echo_check(int fd, uint64_t seed, size_t bytes)
{
	uint8_t out[STRESS_CHUNK_BYTES], in[STRESS_CHUNK_BYTES];
	uint64_t state = seed | 1;
	size_t n;
	int r;

	while (bytes > 0) {
		n = bytes < sizeof(out) ? bytes : sizeof(out);
		fill(out, n, &state);
		if ((r = send_all(fd, out, n)) != 0 || (r = recv_all(fd, in, n)) != 0)
			return r;
		if (memcmp(in, out, n) != 0)
			return ERR_LOST;
		bytes -= n;
	}
	if (shutdown(fd, SHUT_WR) != 0)
		return errno;
	r = recv_all(fd, in, 1);
	return r == EPIPE ? 0 : r == 0 ? ERR_LOST : r;
}

/*
 * connect() as a careful program does it: a non-blocking one that says
 * EINPROGRESS, and a blocking one a signal interrupted (EINTR), both go on
 * in the background (POSIX connect()); the outcome is read through SO_ERROR
 * once the socket polls writable. 0 or the errno.
 */
static int
connect_finish(int fd, const struct sockaddr *sa, socklen_t len, struct tally *t)
{
	socklen_t elen = sizeof(int);
	sig_atomic_t before = ticks_here;
	int err = 0, r;

	atomic_fetch_add(&in_connect, 1);
	r = connect(fd, sa, len);
	err = r == 0 ? 0 : errno;
	atomic_fetch_sub(&in_connect, 1);
	if (ticks_here != before)
		t->interrupted++;
	if (err == EINTR)
		t->eintr++;
	if (err != EINTR && err != EINPROGRESS)
		return err;
	if ((r = wait_fd(fd, POLLOUT)) != 0)
		return r;
	/* probe -w: a program that writes as soon as the socket polls
	 * writable, never asking SO_ERROR; the send() tells. */
	if (opt.write_first) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
			t->pollerr++;
		return 0;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		return errno;
	return err;
}

static bool
is_placeholder(const struct sockaddr *sa)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

	return sa->sa_family == AF_INET &&
	    (ntohl(s4->sin_addr.s_addr) & PLACEHOLDER_MASK) == PLACEHOLDER_NET;
}

/* One connection to host:port, checked end to end. 0 or an errno; a
 * lookup failure is EHOSTUNREACH. */
static int
one_conn(const char *host, const char *port, bool nonblock, uint64_t seed,
    size_t bytes, struct tally *t)
{
	struct addrinfo hints, *ai;
	int fd, err, high;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return EHOSTUNREACH;
	if (is_placeholder(ai->ai_addr))
		t->placeholders++;
	fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd >= 0 && opt.fd_at > 0) {
		high = dup2(fd, opt.fd_at);
		close(fd);
		fd = high;
	}
	if (fd < 0) {
		err = errno;
		freeaddrinfo(ai);
		return err;
	}
	err = connect_finish(fd, ai->ai_addr, ai->ai_addrlen, t);
	freeaddrinfo(ai);
	if (err == 0)
		err = echo_check(fd, seed, bytes);
	close(fd);
	if (err == 0) {
		t->ok++;
		t->bytes += bytes;
	} else {
		t->failed++;
	}
	return err;
}

/*
 * Under socks5h, a name looked up for the first time takes the writers' lock
 * of the placeholder table: it must come back as a placeholder that
 * getnameinfo() names back. 0 or an errno (ERR_LOST: a wrong answer); the
 * placeholder goes to ip when it is not NULL.
 */
static int
name_check(const char *name, uint8_t ip[4], struct tally *t)
{
	struct addrinfo hints, *ai;
	char back[NI_MAXHOST];
	int err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	if (getaddrinfo(name, NULL, &hints, &ai) != 0)
		return EHOSTUNREACH;
	if (!is_placeholder(ai->ai_addr) ||
	    getnameinfo(ai->ai_addr, ai->ai_addrlen, back, sizeof(back), NULL, 0,
	    NI_NAMEREQD) != 0 || strcmp(back, name) != 0)
		err = ERR_LOST;
	else
		t->names++;
	if (ip != NULL)
		memcpy(ip, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
	freeaddrinfo(ai);
	return err;
}

/* A timer of this thread's own that sends it SIGUSR1 every tick_us. */
static int
tick_start(timer_t *timer)
{
	struct sigevent sev;
	struct itimerspec its;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_notify_thread_id = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, timer) != 0)
		return errno;
	its.it_interval.tv_sec = opt.tick_us / US_PER_S;
	its.it_interval.tv_nsec = opt.tick_us % US_PER_S * NS_PER_US;
	its.it_value = its.it_interval;
	return timer_settime(*timer, 0, &its, NULL) != 0 ? errno : 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	bool direct = w->id < opt.direct;
	const char *host = direct ? opt.xhost : opt.host;
	char name[NAME_TEXT_MAX];
	timer_t timer;
	int c, err;

	if (opt.tick_us > 0 && (err = tick_start(&timer)) != 0) {
		fprintf(stderr, "stress: thread %d: timer: %s\n", w->id, errname(err));
		w->t.failed += (unsigned)opt.conns;
		pthread_barrier_wait(&start_line);
		return NULL;
	}
	pthread_barrier_wait(&start_line);
	for (c = 0; c < opt.conns; c++) {
		err = one_conn(host, opt.port, w->id % 2 == 1,
		    (uint64_t)w->id << 32 | (uint64_t)c, opt.bytes, &w->t);
		if (err != 0)
			fprintf(stderr, "stress: thread %d (%s, %s) connection %d to %s: %s\n",
			    w->id, direct ? "direct" : "tunnelled",
			    w->id % 2 == 1 ? "non-blocking" : "blocking", c, host,
			    errname(err));
		/* Placeholders: socks5h; a new name each time, a new entry. */
		if (w->t.placeholders > 0) {
			snprintf(name, sizeof(name), "t%d-c%d.stress.test", w->id, c);
			if ((err = name_check(name, NULL, &w->t)) != 0) {
				fprintf(stderr, "stress: thread %d: name %s: %s\n", w->id,
				    name, errname(err));
				w->t.failed++;
			}
		}
		pthread_mutex_lock(&progress_lock);
		progress_done++;
		pthread_cond_broadcast(&progress_cond);
		pthread_mutex_unlock(&progress_lock);
	}
	if (opt.tick_us > 0)
		timer_delete(timer);
	return NULL;
}

/* A child line on stderr: stdio's locks may have been held by another
 * thread at fork(), so one write() of a formatted buffer. */
static void
child_say(int k, const char *what, int err)
{
	char line[LINE_MAX_BYTES];
	int n;

	n = snprintf(line, sizeof(line), "stress: child %d: %s: %s\n", k, what,
	    errname(err));
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

/*
 * The child of fork number k: its own tunnelled connections, and a name
 * of its own looked up, named back by getnameinfo() and reported to the
 * parent through wfd. Exits 0 when all of it worked.
 */
static void
child_main(int k, int wfd)
{
	struct tally t;
	struct fork_note note;
	char name[NAME_TEXT_MAX];
	int i, err;

	/* The parent's timers are not inherited; its handler is. */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGALRM, SIG_DFL);
	alarm(STRESS_CHILD_TIMEOUT_S);
	memset(&t, 0, sizeof(t));
	for (i = 0; i < STRESS_CHILD_CONNS; i++) {
		err = one_conn(opt.fork_name, opt.port, false,
		    (uint64_t)(STRESS_THREADS_MAX + k) << 32 | (uint64_t)i, opt.bytes, &t);
		if (err != 0) {
			child_say(k, "connection", err);
			_exit(1);
		}
	}
	/* Under socks5h, a name nobody looked up before: a new table entry. */
	if (t.placeholders == 0)
		_exit(0);
	snprintf(name, sizeof(name), "fork-%d.stress.test", k);
	if ((err = name_check(name, note.ip, &t)) != 0) {
		child_say(k, "its own name", err);
		_exit(1);
	}
	note.k = k;
	/* Smaller than PIPE_BUF: one write, never interleaved with a sibling's. */
	if (write(wfd, &note, sizeof(note)) != (ssize_t)sizeof(note))
		_exit(1);
	_exit(0);
}

/* The parent's view of a name a child added: the same placeholder. */
static bool
note_shared(const struct fork_note *note)
{
	struct addrinfo hints, *ai;
	char name[NAME_TEXT_MAX];
	bool same;

	snprintf(name, sizeof(name), "fork-%d.stress.test", note->k);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	if (getaddrinfo(name, NULL, &hints, &ai) != 0)
		return false;
	same = memcmp(&((struct sockaddr_in *)ai->ai_addr)->sin_addr, note->ip, 4) == 0;
	freeaddrinfo(ai);
	return same;
}

struct fork_result {
	int started, ok, busy, shared;
};

/* Fork k of FORKS waits until k / (FORKS + 1) of the connections are done,
 * so the forks fall while the threads are busy. */
static void
forks_run(pid_t *pids, int wfd, struct fork_result *fr)
{
	unsigned total = (unsigned)opt.threads * (unsigned)opt.conns;
	int k;

	for (k = 0; k < opt.forks; k++) {
		pthread_mutex_lock(&progress_lock);
		while (progress_done < total * (unsigned)(k + 1) / (unsigned)(opt.forks + 1))
			pthread_cond_wait(&progress_cond, &progress_lock);
		pthread_mutex_unlock(&progress_lock);
		fr->busy += atomic_load(&in_connect);
		pids[k] = fork();
		if (pids[k] == 0)
			child_main(k, wfd);
		if (pids[k] < 0) {
			fprintf(stderr, "stress: fork: %s\n", errname(errno));
			break;
		}
		fr->started++;
	}
}

static void
forks_reap(const pid_t *pids, int rfd, struct fork_result *fr)
{
	struct fork_note note;
	int k, status;

	for (k = 0; k < fr->started; k++) {
		while (waitpid(pids[k], &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			fr->ok++;
		else if (WIFSIGNALED(status))
			fprintf(stderr, "stress: child %d killed by signal %d\n", k,
			    WTERMSIG(status));
		else
			fprintf(stderr, "stress: child %d exited %d\n", k,
			    WEXITSTATUS(status));
	}
	while (read(rfd, &note, sizeof(note)) == (ssize_t)sizeof(note))
		if (note_shared(&note))
			fr->shared++;
}

static int
run_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tick;
	sa.sa_flags = opt.restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
run_main(void)
{
	static struct worker workers[STRESS_THREADS_MAX];
	static pid_t pids[STRESS_FORKS_MAX];
	struct fork_result fr = { 0 };
	struct tally sum = { 0 };
	unsigned eintr_direct = 0;
	int i, p[2], nthreads = 0, err;

	if (run_handlers() != 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
		perror("stress");
		return 1;
	}
	pthread_barrier_init(&start_line, NULL, (unsigned)opt.threads + 1);
	for (i = 0; i < opt.threads; i++) {
		workers[i].id = i;
		err = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
		if (err != 0) {
			fprintf(stderr, "stress: pthread_create: %s\n", errname(err));
			exit(1);	/* the barrier would wait for it forever */
		}
		nthreads++;
	}
	pthread_barrier_wait(&start_line);
	forks_run(pids, p[1], &fr);
	for (i = 0; i < nthreads; i++) {
		pthread_join(workers[i].tid, NULL);
		sum.ok += workers[i].t.ok;
		sum.failed += workers[i].t.failed;
		sum.placeholders += workers[i].t.placeholders;
		sum.names += workers[i].t.names;
		sum.interrupted += workers[i].t.interrupted;
		/* The kernel's own EINTR on a direct connect is no business
		 * of the library's: counted apart. */
		if (workers[i].id < opt.direct)
			eintr_direct += workers[i].t.eintr;
		else
			sum.eintr += workers[i].t.eintr;
		sum.bytes += workers[i].t.bytes;
	}
	forks_reap(pids, p[0], &fr);
	printf("threads=%d direct=%d conns=%d ok=%u failed=%u bytes=%llu "
	    "placeholders=%u names=%u forks=%d children_ok=%d busy_at_fork=%d "
	    "shared_names=%d signals=%llu interrupted=%u eintr=%u eintr_direct=%u\n",
	    opt.threads, opt.direct, opt.threads * opt.conns, sum.ok, sum.failed,
	    sum.bytes, sum.placeholders, sum.names, fr.started, fr.ok, fr.busy, fr.shared,
	    (unsigned long long)atomic_load(&ticks), sum.interrupted, sum.eintr,
	    eintr_direct);
	return sum.failed == 0 && fr.ok == opt.forks ? 0 : 1;
}

static int
run_cmd(int argc, char **argv)
{
	int c;

	opt.threads = STRESS_THREADS_DEFAULT;
	opt.conns = STRESS_CONNS_DEFAULT;
	opt.bytes = STRESS_BYTES_DEFAULT;
	while ((c = getopt(argc, argv, "t:c:b:x:X:f:F:i:r")) != -1) {
		switch (c) {
		case 't': opt.threads = (int)num_arg(optarg, 1, STRESS_THREADS_MAX); break;
		case 'c': opt.conns = (int)num_arg(optarg, 1, INT16_MAX); break;
		case 'b': opt.bytes = (size_t)num_arg(optarg, 1, INT32_MAX); break;
		case 'x': opt.direct = (int)num_arg(optarg, 0, STRESS_THREADS_MAX); break;
		case 'X': opt.xhost = optarg; break;
		case 'f': opt.forks = (int)num_arg(optarg, 0, STRESS_FORKS_MAX); break;
		case 'F': opt.fork_name = optarg; break;
		case 'i': opt.tick_us = num_arg(optarg, 1, US_PER_S); break;
		case 'r': opt.restart = true; break;
		default: usage();
		}
	}
	if (argc - optind != 2 || opt.direct > opt.threads ||
	    (opt.direct > 0 && opt.xhost == NULL) ||
	    (opt.forks > 0 && opt.fork_name == NULL))
		usage();
	opt.host = argv[optind];
	opt.port = argv[optind + 1];
	return run_main();
}

static int
probe_cmd(int argc, char **argv)
{
	struct tally t = { 0 };
	bool nonblock = false;
	long long start;
	timer_t timer;
	int c, err;

	while ((c = getopt(argc, argv, "ni:wd:")) != -1) {
		switch (c) {
		case 'n': nonblock = true; break;
		case 'i': opt.tick_us = num_arg(optarg, 1, US_PER_S); break;
		case 'w': opt.write_first = true; break;
		case 'd': opt.fd_at = (int)num_arg(optarg, 3, INT32_MAX); break;
		default: usage();
		}
	}
	if (argc - optind != 2)
		usage();
	if (run_handlers() != 0 || (opt.tick_us > 0 && (err = tick_start(&timer)) != 0)) {
		perror("stress: probe");
		return 1;
	}
	if (opt.write_first) {
		send_flags = 0;
		signal(SIGPIPE, SIG_DFL);
	}
	start = now_ms();
	err = one_conn(argv[optind], argv[optind + 1], nonblock, (uint64_t)start,
	    PROBE_BYTES, &t);
	printf("%s %lld", err == 0 ? "ok" : errname(err), now_ms() - start);
	if (opt.tick_us > 0)
		printf(" signals=%llu eintr=%u", (unsigned long long)atomic_load(&ticks),
		    t.eintr);
	if (opt.write_first)
		printf(" pollerr=%u", t.pollerr);
	printf("\n");
	return 0;
}

static void *
echo_conn(void *arg)
{
	uint8_t buf[ECHO_BUF_BYTES];
	int fd = (int)(intptr_t)arg;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || send_all(fd, buf, (size_t)n) != 0)
			break;
	}
	close(fd);
	return NULL;
}

static int
echo_listen(const char *addr, uint16_t port, uint16_t *bound)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 ||
	    (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, ECHO_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sin.sin_port);
	return fd;
}

/* Both listeners in one poll(), a detached thread per connection. */
static int
echo_cmd(void)
{
	struct pollfd lp[2];
	pthread_attr_t attr;
	pthread_t t;
	uint16_t port;
	int i, fd;

	signal(SIGPIPE, SIG_IGN);
	/* The port the kernel gave 127.0.0.1 may be taken on the second
	 * address (a test running beside us): another port, a few times. */
	for (i = 0; i < ECHO_PORT_TRIES; i++) {
		lp[0].fd = echo_listen("127.0.0.1", 0, &port);
		lp[1].fd = lp[0].fd < 0 ? -1 : echo_listen(ECHO_SECOND_ADDR, port, &port);
		if (lp[0].fd < 0 || lp[1].fd >= 0 || errno != EADDRINUSE)
			break;
		close(lp[0].fd);
	}
	if (lp[0].fd < 0 || lp[1].fd < 0) {
		perror("stress: echod: listen");
		return 1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	fprintf(stderr, "stress: echo on %u\n", (unsigned)port);
	for (;;) {
		lp[0].events = lp[1].events = POLLIN;
		if (poll(lp, 2, -1) < 0)
			continue;
		for (i = 0; i < 2; i++) {
			if (!(lp[i].revents & POLLIN))
				continue;
			fd = accept(lp[i].fd, NULL, NULL);
			if (fd < 0)
				continue;
			if (pthread_create(&t, &attr, echo_conn, (void *)(intptr_t)fd) != 0)
				close(fd);
		}
	}
}

int
main(int argc, char **argv)
{
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "echod") == 0 && argc == 2)
		return echo_cmd();
	if (argc >= 2 && strcmp(argv[1], "probe") == 0)
		return probe_cmd(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return run_cmd(argc - 1, argv + 1);
	usage();
	return 2;
}
