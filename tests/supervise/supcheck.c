/*
 * supcheck: the C program of tests/supervisor.bats, built there twice:
 * with cc -static (no ld.so, so LD_PRELOAD never reaches it: only the
 * seccomp supervisor can) and dynamically (for the raw system call case).
 *
 *	supcheck get HOST PORT PATH     getaddrinfo() + connect() + HTTP/1.0 GET;
 *	                                the body on stdout, "peer=IP" (what
 *	                                getpeername() says) on stderr
 *	supcheck probe [-n] HOST PORT   one connect(), blocking or (-n) non-blocking
 *	                                then poll() and SO_ERROR; prints "ok MS"
 *	                                or "ERRNONAME MS"
 *	supcheck iouring                io_uring_setup(1, ...): prints "ok" or the
 *	                                errno name
 *	supcheck udp IP PORT            one datagram "supcheck udp" by sendto(), and
 *	                                the reply within 5 s: prints "local=PORT
 *	                                reply=TEXT" or "local=PORT ERRNONAME"
 *	supcheck udpconnect IP PORT     connect() of a UDP socket to IP:PORT, nothing
 *	                                sent (as Go sorts a name's addresses):
 *	                                prints "ok" or the errno name
 *	supcheck dns NAME               an A query as musl sends it: sendto() on an
 *	                                unconnected UDP socket to 127.0.0.1:53, the
 *	                                answer taken only from that address;
 *	                                prints "A IP", "rcode N" or the errno name
 *	supcheck dnsc NAME              the same on a UDP socket connect()ed to
 *	                                127.0.0.1:53 and send(), as glibc's
 *	                                res_send() and c-ares do; still
 *	                                recvfrom(), the source checked
 *	supcheck dnscb NAME             dnsc with a blocking recvfrom() at once,
 *	                                no poll() first (SO_RCVTIMEO 5 s)
 *	supcheck tfo CALL IP PORT PATH  an HTTP/1.0 GET sent with MSG_FASTOPEN on an
 *	                                unconnected TCP socket by CALL (sendto,
 *	                                sendmsg or sendmmsg: 1 message, its msg_len
 *	                                checked); the body on stdout
 *	supcheck tfojoin IP PORT PATH   a thread sends an HTTP/1.0 GET with
 *	                                sendto(MSG_FASTOPEN) on a blocking TCP socket;
 *	                                100 ms later the main thread connect()s the
 *	                                same socket to the same address (the kernel
 *	                                waits for the connection and says 0); on
 *	                                stderr "send=N connect=R" (R: 0, a count, or
 *	                                the errno name), the body on stdout
 *	supcheck tfoagain IP PORT PATH  the same, but the GET's last CRLF is left
 *	                                out and the main thread's second call is
 *	                                another sendto(MSG_FASTOPEN |
 *	                                MSG_DONTWAIT) of it (the kernel says
 *	                                EALREADY while the socket connects); a
 *	                                CRLF that call did not send goes by send()
 *	                                once the first is over; on stderr "send=N
 *	                                again=R"
 *	supcheck tfowait IP PORT PATH   the same with a blocking second send of no
 *	                                bytes (the kernel waits for the connection,
 *	                                then sends nothing: again=0)
 *	supcheck peers IP PORT          two sockets whose SO_COOKIEs leave the same
 *	                                remainder by 4096 (the kernel hands cookies
 *	                                out in blocks of 4096), both connect()ed to
 *	                                IP:PORT and held; prints "ok" when each
 *	                                one's getpeername() is IP:PORT, else what
 *	                                each said
 *	supcheck rawconnect IP PORT     connect() by the syscall instruction itself,
 *	                                not libc's connect() or syscall(): no
 *	                                symbol a preload library could wrap; then
 *	                                an HTTP/1.0 GET / and the status line
 *	supcheck signals IP PORT PATH N FNV
 *	                                N blocking connect()s + GET while SIGALRM
 *	                                comes every 200 us to a handler without
 *	                                SA_RESTART. A connect() that says EINTR
 *	                                is told apart: "unstarted" (the socket
 *	                                still TCP_CLOSE: connect() again) or
 *	                                "begun" (POSIX: it goes on; poll() and
 *	                                SO_ERROR). Each body's FNV-1a 64 is
 *	                                compared with FNV (hex); prints "ok=
 *	                                unstarted= begun= bad= signals="
 *
 * Exit 0 when the operation worked, 1 when it failed (the errno name on
 * stdout), 2 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../bin/testbin.h"

#define SUPCHECK_TIMEOUT_MS	20000	/* a probe's poll() bound */
#define SUPCHECK_REQ_MAX	1024
#define SUPCHECK_BUF_BYTES	65536
#define SUPCHECK_IOURING_PARAMS	120	/* bytes of struct io_uring_params */
#define SUPCHECK_DNS_MAX	512	/* bytes of a DNS message over UDP */
#define SUPCHECK_SIGNAL_US	200	/* the interval of cmd_signals()' SIGALRM */
#define SUPCHECK_SIGNALS_MAX	10000	/* connects of one cmd_signals() */
#define SUPCHECK_RETRY_MAX	1000	/* connect()s again after an unstarted EINTR */
#define SUPCHECK_JOIN_AFTER_MS	100	/* cmd_tfojoin()'s second call after the send */
#define SUPCHECK_COOKIE_BLOCK	4096	/* the kernel's cookies per CPU at a time */
#define SUPCHECK_COOKIE_TRIES	50000	/* sockets made to find a twin cookie */

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: supcheck get HOST PORT PATH | probe [-n] HOST PORT | "
	    "iouring | udp IP PORT | dns NAME | tfo CALL IP PORT PATH | tfojoin|tfoagain|tfowait IP PORT PATH | "
	    "peers IP PORT | rawconnect IP PORT | "
	    "signals IP PORT PATH N FNV\n");
	exit(2);
}

static const char *
errname(int e)
{
	const char *n = strerrorname_np(e);

	return n != NULL ? n : "EUNKNOWN";
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Body bytes: to stdout, or (fnv) into an FNV-1a 64 hash. */
static int
body_out(uint64_t *fnv, const char *p, size_t n)
{
	size_t i;

	if (fnv == NULL)
		return write_all(STDOUT_FILENO, p, n);
	for (i = 0; i < n; i++)
		*fnv = (*fnv ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return 0;
}

/* The response to a request already sent: the body to stdout (or hashed
 * into fnv), or the status line alone (status_only). */
static int
read_response(int s, int status_only, uint64_t *fnv)
{
	static char buf[SUPCHECK_BUF_BYTES];
	size_t have = 0;
	ssize_t r;
	char *end;

	for (;;) {
		r = read(s, buf + have, sizeof(buf) - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			printf("%s\n", r < 0 ? errname(errno) : "EOF before the header");
			return 1;
		}
		have += (size_t)r;
		if ((end = memmem(buf, have, "\r\n\r\n", 4)) != NULL)
			break;
		if (have == sizeof(buf)) {
			printf("header too long\n");
			return 1;
		}
	}
	if (status_only) {
		printf("%.*s\n", (int)(strchr(buf, '\r') - buf), buf);
		return 0;
	}
	end += 4;
	if (body_out(fnv, end, have - (size_t)(end - buf)) < 0)
		return 1;
	while ((r = read(s, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "read: %s\n", errname(errno));
			return 1;
		}
		if (body_out(fnv, buf, (size_t)r) < 0)
			return 1;
	}
	return 0;
}

static int
send_get(int s, const char *host, const char *path)
{
	char req[SUPCHECK_REQ_MAX];
	int n;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	return write_all(s, req, (size_t)n);
}

static int
cmd_get(const char *host, const char *port, const char *path)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char text[INET6_ADDRSTRLEN];
	int s = -1, r, err = 0;

	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		printf("getaddrinfo: %s\n", gai_strerror(r));
		return 1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (s < 0)
			continue;
		if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(s);
		s = -1;
	}
	freeaddrinfo(res);
	if (s < 0) {
		printf("%s\n", errname(err));
		return 1;
	}
	if (getpeername(s, (struct sockaddr *)&peer, &plen) != 0) {
		printf("getpeername: %s\n", errname(errno));
		return 1;
	}
	if (peer.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, text, sizeof(text));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, text, sizeof(text));
	fprintf(stderr, "peer=%s\n", text);
	if (send_get(s, host, path) < 0) {
		printf("write: %s\n", errname(errno));
		return 1;
	}
	r = read_response(s, 0, NULL);
	close(s);
	return r;
}

static int
cmd_probe(int nonblock, const char *host, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct pollfd pf;
	long long t0 = now_ms();
	socklen_t len = sizeof(int);
	int s, err = 0;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		usage();
	sa.sin_port = htons((uint16_t)atoi(port));
	s = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (s < 0) {
		printf("socket: %s\n", errname(errno));
		return 1;
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err = errno;
		if (nonblock && err == EINPROGRESS) {
			pf = (struct pollfd){ .fd = s, .events = POLLOUT };
			if (poll(&pf, 1, SUPCHECK_TIMEOUT_MS) != 1)
				err = EINPROGRESS;	/* still pending: a hang */
			else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
		}
	}
	printf("%s %lld\n", err == 0 ? "ok" : errname(err), now_ms() - t0);
	close(s);
	return err == 0 ? 0 : 1;
}

static int
cmd_iouring(void)
{
	unsigned char params[SUPCHECK_IOURING_PARAMS];
	long fd;

	memset(params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	printf("ok\n");
	close((int)fd);
	return 0;
}

static int
cmd_udpconnect(const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int s;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		usage();
	sa.sin_port = htons((uint16_t)atoi(port));
	if ((s = socket(AF_INET, SOCK_DGRAM, 0)) < 0 ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int
cmd_udp(const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET }, me;
	socklen_t len = sizeof(me);
	static const char msg[] = "supcheck udp";
	char buf[512];
	struct pollfd pf;
	ssize_t n;
	int s;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		usage();
	sa.sin_port = htons((uint16_t)atoi(port));
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, sizeof(struct sockaddr_in)) != 0 ||
	    getsockname(s, (struct sockaddr *)&me, &len) != 0) {
		printf("socket: %s\n", errname(errno));
		return 1;
	}
	printf("local=%u ", ntohs(me.sin_port));
	if (sendto(s, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	pf = (struct pollfd){ .fd = s, .events = POLLIN };
	if (poll(&pf, 1, 5000) != 1) {
		printf("ETIMEDOUT\n");
		return 1;
	}
	n = recv(s, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	buf[n] = '\0';
	printf("reply=%s\n", buf);
	return 0;
}

/* An A query for name into q (at least SUPCHECK_DNS_MAX bytes): its length,
 * or 0 when the name does not fit. */
static size_t
dns_query(uint8_t *q, const char *name)
{
	static const uint8_t head[] = { 0x53, 0x43, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
	const char *p = name, *dot;
	size_t n = sizeof(head), label;

	memcpy(q, head, n);
	while (*p != '\0') {
		dot = strchr(p, '.');
		label = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (label == 0 || label > 63 || n + label + 6 > SUPCHECK_DNS_MAX)
			return 0;
		q[n++] = (uint8_t)label;
		memcpy(q + n, p, label);
		n += label;
		p += label + (dot != NULL);
	}
	memcpy(q + n, "\0\0\1\0\1", 5);	/* root, QTYPE A, QCLASS IN */
	return n + 5;
}

static int
cmd_dns(const char *name, bool connected, bool at_once)
{
	struct sockaddr_in ns = { .sin_family = AF_INET, .sin_port = htons(53),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, from;
	uint8_t q[SUPCHECK_DNS_MAX], a[SUPCHECK_DNS_MAX];
	socklen_t flen;
	struct pollfd pf;
	size_t qlen = dns_query(q, name);
	ssize_t n;
	int s;

	if (qlen == 0)
		usage();
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || (connected ?
	    connect(s, (struct sockaddr *)&ns, sizeof(ns)) < 0 || send(s, q, qlen, 0) < 0 :
	    sendto(s, q, qlen, 0, (struct sockaddr *)&ns, sizeof(ns)) < 0)) {
		printf("%s\n", errname(errno));
		return 1;
	}
	if (at_once && setsockopt(s, SOL_SOCKET, SO_RCVTIMEO,
	    &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval)) != 0) {
		printf("%s\n", errname(errno));
		return 1;
	}
	for (;;) {
		pf = (struct pollfd){ .fd = s, .events = POLLIN };
		if (!at_once && poll(&pf, 1, 5000) != 1) {
			printf("ETIMEDOUT\n");
			return 1;
		}
		flen = sizeof(from);
		n = recvfrom(s, a, sizeof(a), 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			printf("%s\n", errname(errno));
			return 1;
		}
		/* musl, glibc and c-ares drop an answer from any other
		 * address, connected or not. */
		if (from.sin_addr.s_addr == ns.sin_addr.s_addr && from.sin_port == ns.sin_port &&
		    n >= 12 && a[0] == q[0] && a[1] == q[1])
			break;
	}
	/* The last answer record of a plain reply ends with the address. */
	if ((a[3] & 0x0f) != 0 || (a[6] == 0 && a[7] == 0) || n < (ssize_t)qlen + 16) {
		printf("rcode %d\n", a[3] & 0x0f);
		return 1;
	}
	printf("A %u.%u.%u.%u\n", a[n - 4], a[n - 3], a[n - 2], a[n - 1]);
	return 0;
}

#if defined(__x86_64__)
/* connect(2) by the syscall instruction: what Go's runtime and hand-written
 * assembler do, invisible to any wrapper of libc's symbols. */
static long
raw_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	long ret;
	register long a1 __asm__("rdi") = fd;
	register long a2 __asm__("rsi") = (long)sa;
	register long a3 __asm__("rdx") = (long)len;

	__asm__ volatile ("syscall"
	    : "=a"(ret)
	    : "0"((long)SYS_connect), "r"(a1), "r"(a2), "r"(a3)
	    : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static long
raw_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	register long x8 __asm__("x8") = SYS_connect;
	register long x0 __asm__("x0") = fd;
	register long x1 __asm__("x1") = (long)sa;
	register long x2 __asm__("x2") = (long)len;

	__asm__ volatile ("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
#endif

static int
cmd_rawconnect(const char *ip, const char *port)
{
#if defined(__x86_64__) || defined(__aarch64__)
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long r;
	int s;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		usage();
	sa.sin_port = htons((uint16_t)atoi(port));
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) {
		printf("socket: %s\n", errname(errno));
		return 1;
	}
	r = raw_connect(s, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0) {
		printf("%s\n", errname((int)-r));
		return 1;
	}
	if (send_get(s, ip, "/") < 0) {
		printf("write: %s\n", errname(errno));
		return 1;
	}
	r = read_response(s, 1, NULL);
	close(s);
	return (int)r;
#else
	(void)ip;
	(void)port;
	printf("no raw system call on this architecture\n");
	return 2;
#endif
}

static int
cmd_tfo(const char *call, const char *ip, const char *port, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	char req[SUPCHECK_REQ_MAX];
	struct iovec iov;
	struct mmsghdr mm;
	ssize_t n = -1;
	int s, len;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		usage();
	len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, ip);
	iov = (struct iovec){ req, (size_t)len };
	memset(&mm, 0, sizeof(mm));
	mm.msg_hdr = (struct msghdr){ .msg_name = &sa, .msg_namelen = sizeof(sa),
	    .msg_iov = &iov, .msg_iovlen = 1 };
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		usage();
	if (strcmp(call, "sendto") == 0)
		n = sendto(s, req, (size_t)len, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof(sa));
	else if (strcmp(call, "sendmsg") == 0)
		n = sendmsg(s, &mm.msg_hdr, MSG_FASTOPEN);
	else if (strcmp(call, "sendmmsg") == 0 &&
	    (n = sendmmsg(s, &mm, 1, MSG_FASTOPEN)) == 1)
		n = mm.msg_len;
	else if (strcmp(call, "sendmmsg") != 0)
		usage();
	if (n != len) {
		printf("%s\n", n < 0 ? errname(errno) : "short send");
		return 1;
	}
	return read_response(s, 0, NULL);
}

/* cmd_tfojoin()'s fast-open send, on a thread of its own. */
struct tfojoin {
	int fd;
	struct sockaddr_in sa;
	char req[SUPCHECK_REQ_MAX];
	size_t len;
	ssize_t sent;
	int err;
};

static void *
tfojoin_send(void *arg)
{
	struct tfojoin *t = arg;

	t->sent = sendto(t->fd, t->req, t->len, MSG_FASTOPEN, (struct sockaddr *)&t->sa,
	    sizeof(t->sa));
	t->err = errno;
	return NULL;
}

/* again: the second call is a fast-open send of the GET's last CRLF with
 * MSG_DONTWAIT, or (wait) a blocking one of no bytes, not a connect(). */
static int
cmd_tfojoin(const char *ip, const char *port, const char *path, bool again, bool wait)
{
	static struct tfojoin t;
	const struct timespec pause = { 0, SUPCHECK_JOIN_AFTER_MS * 1000000L };
	pthread_t th;
	long r;
	int err;

	t.sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	if (inet_pton(AF_INET, ip, &t.sa.sin_addr) != 1)
		usage();
	t.len = (size_t)snprintf(t.req, sizeof(t.req), "GET %s HTTP/1.0\r\nHost: %s\r\n%s",
	    path, ip, again ? "" : "\r\n");
	if ((t.fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    pthread_create(&th, NULL, tfojoin_send, &t) != 0)
		usage();
	nanosleep(&pause, NULL);
	if (again)
		r = sendto(t.fd, "\r\n", wait ? 0 : 2, MSG_FASTOPEN | (wait ? 0 : MSG_DONTWAIT),
		    (struct sockaddr *)&t.sa, sizeof(t.sa));
	else
		r = connect(t.fd, (struct sockaddr *)&t.sa, sizeof(t.sa));
	err = errno;
	pthread_join(th, NULL);
	if (r < 0)
		fprintf(stderr, "send=%zd %s=%s\n", t.sent, again ? "again" : "connect", errname(err));
	else
		fprintf(stderr, "send=%zd %s=%ld\n", t.sent, again ? "again" : "connect", r);
	if (t.sent != (ssize_t)t.len) {
		fprintf(stderr, "send: %s\n", t.sent < 0 ? errname(t.err) : "short");
		return 1;
	}
	if (again && r != 2 && send(t.fd, "\r\n", 2, MSG_NOSIGNAL) != 2) {
		fprintf(stderr, "send: %s\n", errname(errno));
		return 1;
	}
	return read_response(t.fd, 0, NULL);
}

static uint64_t
cookie_of(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) == 0 ? c : 0;
}

/* "ok" when getpeername() of fd says sa, else what it said, into out. */
static bool
peer_is(int fd, const struct sockaddr_in *sa, char *out, size_t cap)
{
	struct sockaddr_in got;
	socklen_t len = sizeof(got);
	char ip[INET_ADDRSTRLEN] = "?";

	memset(&got, 0, sizeof(got));
	if (getpeername(fd, (struct sockaddr *)&got, &len) != 0) {
		snprintf(out, cap, "%s", errname(errno));
		return false;
	}
	inet_ntop(AF_INET, &got.sin_addr, ip, sizeof(ip));
	snprintf(out, cap, "%s:%u", ip, ntohs(got.sin_port));
	return got.sin_family == AF_INET && got.sin_addr.s_addr == sa->sin_addr.s_addr &&
	    got.sin_port == sa->sin_port;
}

static int
cmd_peers(const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	char pa[64], pb[64];
	uint64_t ca, cb = 0;
	int a, b = -1, i;
	bool oka, okb;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		usage();
	if ((a = socket(AF_INET, SOCK_STREAM, 0)) < 0 || (ca = cookie_of(a)) == 0) {
		printf("SO_COOKIE: %s\n", errname(errno));
		return 1;
	}
	for (i = 0; i < SUPCHECK_COOKIE_TRIES; i++) {
		if ((b = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			break;
		cb = cookie_of(b);
		if (cb % SUPCHECK_COOKIE_BLOCK == ca % SUPCHECK_COOKIE_BLOCK)
			break;
		close(b);
		b = -1;
	}
	if (b < 0) {
		printf("no twin cookie in %d sockets\n", SUPCHECK_COOKIE_TRIES);
		return 1;
	}
	if (connect(a, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    connect(b, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		printf("connect: %s\n", errname(errno));
		return 1;
	}
	oka = peer_is(a, &sa, pa, sizeof(pa));
	okb = peer_is(b, &sa, pb, sizeof(pb));
	if (oka && okb) {
		printf("ok\n");
		return 0;
	}
	printf("cookies %llu and %llu: %s and %s\n", (unsigned long long)ca,
	    (unsigned long long)cb, pa, pb);
	return 1;
}

static volatile sig_atomic_t signals_seen;

static void
on_alarm(int sig)
{
	(void)sig;
	signals_seen++;
}

/* A connect() that said EINTR: 0 once connected, else -1 (errno). While
 * the socket is still TCP_CLOSE nothing was begun: connect() again. */
static int
connect_after_eintr(int s, const struct sockaddr_in *sa, int *unstarted, int *begun)
{
	struct tcp_info ti;
	socklen_t len;
	struct pollfd pf = { .fd = s, .events = POLLOUT };
	int err = 0, tries;

	for (tries = 0; tries < SUPCHECK_RETRY_MAX; tries++) {
		len = sizeof(ti);
		if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
			return -1;
		if (ti.tcpi_state != TCP_CLOSE)
			break;
		(*unstarted)++;
		if (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
		    errno == EISCONN)
			return 0;
		if (errno != EINTR)
			return -1;
	}
	if (tries == SUPCHECK_RETRY_MAX)
		return -1;
	(*begun)++;
	for (tries = 0; tries < SUPCHECK_RETRY_MAX; tries++)
		if (poll(&pf, 1, SUPCHECK_TIMEOUT_MS) >= 0 || errno != EINTR)
			break;
	if (!(pf.revents & POLLOUT)) {	/* still pending: a hang */
		errno = ETIMEDOUT;
		return -1;
	}
	len = sizeof(err);
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
		errno = err != 0 ? err : errno;
		return -1;
	}
	return 0;
}

static int
cmd_signals(const char *host, const char *port, const char *path, const char *count,
    const char *fnv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct sigaction act = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval every = { { 0, SUPCHECK_SIGNAL_US }, { 0, SUPCHECK_SIGNAL_US } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	uint64_t want = strtoull(fnv, NULL, 16), got;
	int n = atoi(count), i, s, ok = 0, unstarted = 0, begun = 0, bad = 0;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || n < 1 || n > SUPCHECK_SIGNALS_MAX)
		usage();
	sa.sin_port = htons((uint16_t)atoi(port));
	sigaction(SIGALRM, &act, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (i = 0; i < n; i++) {
		got = 0xcbf29ce484222325ull;
		if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
			bad++;
			continue;
		}
		if ((connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
		    (errno != EINTR || connect_after_eintr(s, &sa, &unstarted, &begun) != 0)) ||
		    send_get(s, host, path) < 0 || read_response(s, 0, &got) != 0 || got != want)
			bad++;
		else
			ok++;
		close(s);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	printf("ok=%d unstarted=%d begun=%d bad=%d signals=%d\n", ok, unstarted, begun,
	    bad, (int)signals_seen);
	return bad == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "get") == 0)
		return cmd_get(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "probe") == 0)
		return cmd_probe(0, argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "probe") == 0 && strcmp(argv[2], "-n") == 0)
		return cmd_probe(1, argv[3], argv[4]);
	if (argc == 2 && strcmp(argv[1], "iouring") == 0)
		return cmd_iouring();
	if (argc == 3 && strcmp(argv[1], "dns") == 0)
		return cmd_dns(argv[2], false, false);
	if (argc == 3 && strcmp(argv[1], "dnsc") == 0)
		return cmd_dns(argv[2], true, false);
	if (argc == 3 && strcmp(argv[1], "dnscb") == 0)
		return cmd_dns(argv[2], true, true);
	if (argc == 4 && strcmp(argv[1], "udp") == 0)
		return cmd_udp(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "udpconnect") == 0)
		return cmd_udpconnect(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "tfo") == 0)
		return cmd_tfo(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 5 && strcmp(argv[1], "tfojoin") == 0)
		return cmd_tfojoin(argv[2], argv[3], argv[4], false, false);
	if (argc == 5 && strcmp(argv[1], "tfoagain") == 0)
		return cmd_tfojoin(argv[2], argv[3], argv[4], true, false);
	if (argc == 5 && strcmp(argv[1], "tfowait") == 0)
		return cmd_tfojoin(argv[2], argv[3], argv[4], true, true);
	if (argc == 4 && strcmp(argv[1], "peers") == 0)
		return cmd_peers(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "rawconnect") == 0)
		return cmd_rawconnect(argv[2], argv[3]);
	if (argc == 7 && strcmp(argv[1], "signals") == 0)
		return cmd_signals(argv[2], argv[3], argv[4], argv[5], argv[6]);
	usage();
}
