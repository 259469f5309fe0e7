/*
 * connbench: what one connect() costs through a SOCKS5 proxy, and what a
 * preload library costs a process at start; the preload figures of make
 * bench (scripts/bench.sh).
 *
 *	connbench echo [-l HOST]
 *	connbench connect -t HOST:PORT -n N [-x HOST:PORT]
 *	connbench spawn -n N [-p PRELOAD] PROGRAM [ARGS...]
 *
 * echo: an echo target on HOST:0 (default 127.0.0.2: not 127.0.0.1, so that
 *   tsocks, which needs its proxy on a "local" network, still tunnels to it).
 *   Prints "connbench: echo on HOST:PORT", echoes every connection until its
 *   EOF, and ends on SIGTERM (or at -T).
 * connect: N rounds, one after the other, of socket, connect, a 16-byte echo
 *   checked byte for byte, and close. With -x the program speaks SOCKS5
 *   itself (shared/socks5.h's client machine) to the proxy; without, it calls
 *   a plain connect() to the target, which a preload library under test
 *   tunnels. Prints p50, mean and p99 µs per round.
 * spawn: starts PROGRAM (with ARGS, a path: no PATH search) N times, one
 *   after the other, with LD_PRELOAD=PRELOAD added to the environment (none
 *   without -p), and waits for each; it must exit 0. Prints p50 and mean µs
 *   per start. Options end at PROGRAM.
 *
 * Every mode ends by -T SECONDS (default 60) at the latest: SIGALRM kills it.
 * The last line on stdout is "connbench: mode=... key=value ..."; the exit
 * status is 0 when every round held, 1 when one failed, 2 on a usage error.
 * Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "connbench"
#define BENCH_USAGE "connbench echo [-l HOST] | connect -t HOST:PORT -n N " \
	"[-x HOST:PORT] | spawn -n N [-p PRELOAD] PROGRAM [ARGS...]   [-T SECONDS]"
#include "bench.h"

enum {
	ECHO_BYTES = 16,		/* the round's payload, as in s5load rate */
	ECHO_BUF = 512,			/* the echo target reads this much at once */
	EVENTS_MAX = 64,
	LISTEN_BACKLOG = 1024,
	ROUNDS_MAX = 10000000,
	ADDR_TEXT = 64,			/* "255.255.255.255:65535" and then some */
};
#define DEFAULT_ECHO_HOST	"127.0.0.2"
#define DEFAULT_DEADLINE_S	60

extern char **environ;

static unsigned long
parse_count(const char *s)
{
	return count_arg(s, 1, ROUNDS_MAX, "a count");
}

/* "p50_us=... mean_us=... p99_us=..." of n samples in ns, sorted here. */
static void
print_stats(uint64_t *ns, size_t n)
{
	uint64_t sum = 0;
	size_t i;

	sort_ns(ns, n);
	for (i = 0; i < n; i++)
		sum += ns[i];
	printf("p50_us=%.1f mean_us=%.1f p99_us=%.1f", quantile_us(ns, n, BENCH_P50),
	    (double)sum / (double)n / BENCH_NS_PER_US, quantile_us(ns, n, BENCH_P99));
}

/* --- echo ---------------------------------------------------------------- */

/* A 16-byte echo always fits a socket buffer that has just been read from:
 * a short send is an error of the round, which the client then reports. */
static void
echo_serve(int ep, int fd)
{
	uint8_t buf[ECHO_BUF];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n)
		return;
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

static int
echo_listen(const char *host, char *text, size_t cap)
{
	struct sockaddr_storage ss;
	struct s5_addr a;
	socklen_t len;
	char spec[ADDR_TEXT];
	int fd, one = 1;

	if ((size_t)snprintf(spec, sizeof(spec), "%s:0", host) >= sizeof(spec))
		usage("-l wants an address, not '%s'", host);
	len = loopback_addr(spec, &ss, &a);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fail("socket", errno);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 || listen(fd, LISTEN_BACKLOG) == -1)
		fail("echo target", errno);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    s5_sockaddr_format((struct sockaddr *)&ss, text, cap) < 0)
		fail("getsockname", errno);
	return fd;
}

static _Noreturn void
run_echo(const char *host)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[EVENTS_MAX];
	char text[S5_ADDR_TEXT_MAX];
	int ep, lst, n, i, fd;

	lst = echo_listen(host, text, sizeof(text));
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fail("epoll_create1", errno);
	ev.data.fd = lst;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lst, &ev) == -1)
		fail("epoll_ctl", errno);
	printf("connbench: echo on %s\n", text);
	fflush(stdout);
	/* SIGTERM's default action is the way out. */
	for (;;) {
		n = epoll_wait(ep, evs, EVENTS_MAX, -1);
		if (n == -1 && errno != EINTR)
			fail("epoll_wait", errno);
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd != lst) {
				echo_serve(ep, evs[i].data.fd);
				continue;
			}
			while ((fd = accept4(lst, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
				ev.data.fd = fd;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
					close(fd);
			}
		}
	}
}

/* --- connect -------------------------------------------------------------- */

static void
send_all(int fd, const uint8_t *p, size_t n, const char *what)
{
	ssize_t k;

	while (n > 0) {
		if ((k = send(fd, p, n, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			fail(what, errno);
		}
		p += k;
		n -= (size_t)k;
	}
}

/* Reads exactly n bytes; an early EOF is a failure of the round. */
static void
recv_all(int fd, uint8_t *p, size_t n, const char *what)
{
	ssize_t k;

	while (n > 0) {
		if ((k = recv(fd, p, n, 0)) == -1) {
			if (errno == EINTR)
				continue;
			fail(what, errno);
		}
		if (k == 0)
			fail(what, ECONNRESET);
		p += k;
		n -= (size_t)k;
	}
}

/* The handshake a program does when it speaks SOCKS5 itself. */
static void
socks5_connect(int fd, const struct s5_addr *target)
{
	struct s5_client c;
	uint8_t in[S5_MSG_MAX];
	size_t used;
	int r;

	s5_client_init(&c, S5_CMD_CONNECT, target, NULL);
	r = s5_client_step(&c, NULL, 0, &used);
	for (;;) {
		if (r == S5C_WANT_WRITE) {
			send_all(fd, c.out, c.out_len, "handshake send");
			r = s5_client_step(&c, NULL, 0, &used);
		} else if (r == S5C_WANT_READ) {
			size_t want = s5_client_want(&c);

			recv_all(fd, in, want, "handshake recv");
			r = s5_client_step(&c, in, want, &used);
		} else if (r == S5C_DONE) {
			return;
		} else {
			fprintf(stderr, "connbench: handshake: %s\n", s5_client_strerror(r));
			exit(BENCH_EXIT_FAIL);
		}
	}
}

static uint64_t
connect_round(const struct sockaddr_storage *to, socklen_t tolen, const struct s5_addr *target,
    bool socks, unsigned long round)
{
	uint8_t out[ECHO_BYTES], in[ECHO_BYTES];
	uint64_t t0 = now_ns();
	int fd;

	memset(out, 0, sizeof(out));
	memcpy(out, &round, sizeof(round) < sizeof(out) ? sizeof(round) : sizeof(out));
	if ((fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fail("socket", errno);
	if (connect(fd, (const struct sockaddr *)to, tolen) == -1)
		fail("connect", errno);
	if (socks)
		socks5_connect(fd, target);
	send_all(fd, out, sizeof(out), "echo send");
	recv_all(fd, in, sizeof(in), "echo recv");
	if (memcmp(in, out, sizeof(in)) != 0) {
		fprintf(stderr, "connbench: round %lu: the echo differs\n", round);
		exit(BENCH_EXIT_FAIL);
	}
	close(fd);
	return now_ns() - t0;
}

static int
run_connect(const char *target_text, const char *proxy_text, unsigned long n)
{
	struct sockaddr_storage target, proxy;
	struct s5_addr ta, pa;
	socklen_t tlen, plen = 0;
	uint64_t *ns;
	unsigned long i;

	if (target_text == NULL)
		usage("connect needs -t HOST:PORT");
	tlen = loopback_addr(target_text, &target, &ta);
	if (proxy_text != NULL)
		plen = loopback_addr(proxy_text, &proxy, &pa);
	if ((ns = calloc(n, sizeof(*ns))) == NULL)
		fail("calloc", errno);
	for (i = 0; i < n; i++)
		ns[i] = proxy_text != NULL ? connect_round(&proxy, plen, &ta, true, i) :
		    connect_round(&target, tlen, &ta, false, i);
	printf("connbench: mode=connect socks=%d rounds=%lu ", proxy_text != NULL, n);
	print_stats(ns, n);
	printf("\n");
	free(ns);
	return 0;
}

/* --- spawn ---------------------------------------------------------------- */

/* environ without its LD_PRELOAD, plus LD_PRELOAD=preload when given. */
static char **
child_env(const char *preload)
{
	static const char key[] = "LD_PRELOAD=";
	size_t n = 0, k = 0, i;
	char **env, *entry;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		fail("calloc", errno);
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], key, sizeof(key) - 1) != 0)
			env[k++] = environ[i];
	if (preload != NULL) {
		if ((entry = malloc(sizeof(key) + strlen(preload))) == NULL)
			fail("malloc", errno);
		memcpy(entry, key, sizeof(key) - 1);
		strcpy(entry + sizeof(key) - 1, preload);
		env[k++] = entry;
	}
	env[k] = NULL;
	return env;
}

static int
run_spawn(char **argv, const char *preload, unsigned long n)
{
	const char *prog = argv[0];
	char **env = child_env(preload);
	uint64_t *ns, t0;
	unsigned long i;
	pid_t pid;
	int st, err;

	if ((ns = calloc(n, sizeof(*ns))) == NULL)
		fail("calloc", errno);
	for (i = 0; i < n; i++) {
		t0 = now_ns();
		if ((err = posix_spawn(&pid, prog, NULL, NULL, argv, env)) != 0)
			fail(prog, err);
		while (waitpid(pid, &st, 0) == -1)
			if (errno != EINTR)
				fail("waitpid", errno);
		ns[i] = now_ns() - t0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "connbench: %s exited with status %d\n", prog, st);
			return BENCH_EXIT_FAIL;
		}
	}
	printf("connbench: mode=spawn preload=%s runs=%lu ", preload != NULL ? preload : "none", n);
	print_stats(ns, n);
	printf("\n");
	free(ns);
	return 0;
}

/* --- main ----------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	const char *mode, *host = DEFAULT_ECHO_HOST, *target = NULL, *proxy = NULL;
	const char *preload = NULL;
	unsigned long n = 0, deadline = DEFAULT_DEADLINE_S;
	int c;

	if (argc < 2)
		usage("which mode?");
	mode = argv[1];
	optind = 2;
	/* '+': options end at spawn's PROGRAM, whose own they are not. */
	while ((c = getopt(argc, argv, "+l:t:x:n:p:T:")) != -1) {
		switch (c) {
		case 'l': host = optarg; break;
		case 't': target = optarg; break;
		case 'x': proxy = optarg; break;
		case 'n': n = parse_count(optarg); break;
		case 'p': preload = optarg; break;
		case 'T': deadline = parse_count(optarg); break;
		default: usage("bad option");
		}
	}
	alarm((unsigned)deadline);
	if (strcmp(mode, "echo") == 0 && optind == argc)
		run_echo(host);
	if (n == 0)
		usage("%s needs -n N", mode);
	if (strcmp(mode, "connect") == 0 && optind == argc)
		return run_connect(target, proxy, n);
	if (strcmp(mode, "spawn") == 0 && optind < argc)
		return run_spawn(argv + optind, preload, n);
	usage("unknown mode '%s' or wrong arguments", mode);
}
