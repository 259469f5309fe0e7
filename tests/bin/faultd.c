/*
 * faultd: a SOCKS5 server that fails on purpose, for the end-to-end tests of
 * libsocksify.so against replies and misbehaviour socksifyd never produces.
 *
 *	faultd [-p PORT] [--user USER:PASS] [--bytes HEX] [--reply CODE] [FAULT STEP]
 *
 * The three answers of a handshake are the STEPs: "greeting" (the method
 * reply), "auth" (the RFC 1929 status; faultd then insists on
 * username/password) and "request" (the CONNECT reply; "reply" is the same).
 * At STEP, instead of the right answer, the FAULT:
 *
 *	--stall STEP            nothing; the connection stays open, unread
 *	--reset STEP            a TCP RST
 *	--close STEP            a FIN, nothing sent
 *	--garbage STEP          bytes that are not that answer (an HTTP error
 *	                        line, or --bytes HEX), then silence: only a
 *	                        client that rejects them fails before its timeout
 *	--truncate STEP         the right answer but its last byte, then a FIN
 *	--truncate-stall STEP   the right answer but its last byte, then silence
 *	--slow STEP             the right answer, one byte per FAULTD_SLOW_BYTE_MS
 *
 * --reply CODE sets the code of the CONNECT reply (default 0x00, which echoes
 * the client's bytes back). --user USER:PASS asks every client for these
 * credentials; others get status 0x01 and a FIN.
 *
 * Listens on 127.0.0.1:0 (or -p PORT), prints "faultd: listening on
 * 127.0.0.1:PORT" on stderr, and logs one line per request it parses,
 * "faultd: request cmd=N atyp=N dst=HOST:PORT", so a test can assert what the
 * library asked for. Each client has a thread of its own, so a slow or stalled
 * one never holds up the next; a stalled one is kept open until faultd exits.
 * All messages are parsed and built with shared/socks5.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../shared/socks5.h"
#include "testbin.h"

#define FAULTD_IO_TIMEOUT_MS	10000	/* per read or write of one client */
#define FAULTD_STALLED_MAX	256	/* stalled clients held open at once */
#define FAULTD_ECHO_BUF_BYTES	4096
#define FAULTD_SLOW_BYTE_MS	100	/* --slow: one byte this often */
#define MS_PER_S		1000
#define NS_PER_MS		1000000L

enum fault_step {
	STEP_NONE,
	STEP_GREETING,
	STEP_AUTH,
	STEP_REQUEST,
};

enum fault_kind {
	FAULT_NONE,		/* every answer right */
	FAULT_STALL,
	FAULT_RESET,
	FAULT_CLOSE,
	FAULT_GARBAGE,
	FAULT_TRUNCATE,
	FAULT_TRUNCATE_STALL,
	FAULT_SLOW,
};

static const struct {
	const char *flag;
	enum fault_kind kind;
} fault_flags[] = {
	{ "--stall", FAULT_STALL }, { "--reset", FAULT_RESET },
	{ "--close", FAULT_CLOSE }, { "--garbage", FAULT_GARBAGE },
	{ "--truncate", FAULT_TRUNCATE },
	{ "--truncate-stall", FAULT_TRUNCATE_STALL }, { "--slow", FAULT_SLOW },
};

struct fault {
	enum fault_kind kind;
	enum fault_step step;
	uint8_t rep;
	bool need_auth;			/* RFC 1929 asked for */
	bool check_cred;		/* --user given: compare */
	struct s5_cred cred;
	uint8_t garbage[S5_MSG_MAX];
	size_t garbage_len;
};

/* Set once in main() before the first client; read-only afterwards. */
static struct fault cfg;
static atomic_uint nstalled;

static void
usage(void)
{
	fprintf(stderr, "usage: faultd [-p PORT] [--user USER:PASS] [--bytes HEX] "
	    "[--reply CODE]\n"
	    "              [--stall|--reset|--close|--garbage|--truncate|"
	    "--truncate-stall|--slow STEP]\n"
	    "       STEP: greeting | auth | request (or reply)\n");
	exit(2);
}

static enum fault_step
step_parse(const char *s)
{
	if (strcmp(s, "greeting") == 0)
		return STEP_GREETING;
	if (strcmp(s, "auth") == 0)
		return STEP_AUTH;
	if (strcmp(s, "request") == 0 || strcmp(s, "reply") == 0)
		return STEP_REQUEST;
	usage();
	return STEP_NONE;
}

/* --bytes: an even number of hex digits, at most sizeof(f->garbage) bytes. */
static void
garbage_parse(struct fault *f, const char *hex)
{
	size_t n = strlen(hex), i;

	if (n == 0 || n % 2 != 0 || n / 2 > sizeof(f->garbage))
		usage();
	for (i = 0; i < n / 2; i++)
		if (!isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2hhx", &f->garbage[i]) != 1)
			usage();
	f->garbage_len = n / 2;
}

/* --user USER:PASS, both 1..255 bytes (RFC 1929). */
static void
cred_parse(struct s5_cred *c, const char *s)
{
	const char *colon = strchr(s, ':');
	size_t ulen, plen;

	if (colon == NULL)
		usage();
	ulen = (size_t)(colon - s);
	plen = strlen(colon + 1);
	if (ulen == 0 || ulen > S5_CRED_MAX || plen == 0 || plen > S5_CRED_MAX)
		usage();
	memcpy(c->user, s, ulen);
	c->user[ulen] = '\0';
	memcpy(c->pass, colon + 1, plen + 1);
	c->ulen = (uint8_t)ulen;
	c->plen = (uint8_t)plen;
}

/* Waits for fd to be ready for ev; 0, or -1 on timeout, error or hang-up. */
static int
io_wait(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	do
		r = poll(&p, 1, FAULTD_IO_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	return r == 1 ? 0 : -1;
}

static int
io_write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if (io_wait(fd, POLLOUT) < 0)
			return -1;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One byte per FAULTD_SLOW_BYTE_MS, each in a segment of its own. */
static int
io_write_slow(int fd, const uint8_t *p, size_t n)
{
	struct timespec ts = {
		.tv_sec = FAULTD_SLOW_BYTE_MS / MS_PER_S,
		.tv_nsec = (FAULTD_SLOW_BYTE_MS % MS_PER_S) * NS_PER_MS,
	};
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (; n > 0; p++, n--) {
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		ts.tv_sec = FAULTD_SLOW_BYTE_MS / MS_PER_S;
		ts.tv_nsec = (FAULTD_SLOW_BYTE_MS % MS_PER_S) * NS_PER_MS;
		if (io_write_all(fd, p, 1) < 0)
			return -1;
	}
	return 0;
}

/*
 * Reads one more chunk into buf after *len bytes. The parsers are
 * incremental, so the caller loops until its message is complete; 0, or -1
 * on EOF, error or timeout.
 */
static int
io_read_more(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	ssize_t r;

	if (*len >= cap || io_wait(fd, POLLIN) < 0)
		return -1;
	do
		r = recv(fd, buf + *len, cap - *len, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	*len += (size_t)r;
	return 0;
}

/* Keeps fd open and unread; faultd's exit closes it. */
static void
conn_stall(int fd)
{
	if (atomic_fetch_add(&nstalled, 1) >= FAULTD_STALLED_MAX)
		close(fd);
}

/*
 * Sends the answer of step, right (n bytes) unless the fault is at this
 * step. 0: go on with the handshake; -1: the connection is finished with
 * (closed, reset or parked).
 */
static int
conn_answer(int fd, enum fault_step step, const uint8_t *right, size_t n)
{
	const struct fault *f = &cfg;

	if (f->step != step)
		return io_write_all(fd, right, n);
	switch (f->kind) {
	case FAULT_NONE:
		return io_write_all(fd, right, n);
	case FAULT_SLOW:
		return io_write_slow(fd, right, n);
	case FAULT_STALL:
		conn_stall(fd);
		return -1;
	case FAULT_RESET:
		fd_reset(fd);
		return -1;
	case FAULT_CLOSE:
		break;
	case FAULT_GARBAGE:
		if (io_write_all(fd, f->garbage, f->garbage_len) == 0) {
			conn_stall(fd);
			return -1;
		}
		break;
	case FAULT_TRUNCATE:
	case FAULT_TRUNCATE_STALL:
		if (io_write_all(fd, right, n - 1) == 0 &&
		    f->kind == FAULT_TRUNCATE_STALL) {
			conn_stall(fd);
			return -1;
		}
		break;
	}
	close(fd);
	return -1;
}

static void
conn_echo(int fd)
{
	uint8_t buf[FAULTD_ECHO_BUF_BYTES];
	size_t n;

	for (;;) {
		n = 0;
		if (io_read_more(fd, buf, sizeof(buf), &n) < 0)
			break;
		if (io_write_all(fd, buf, n) < 0)
			break;
	}
}

/* RFC 1929: the credentials, and the status for them. 0, or -1 when the
 * connection is finished with. */
static int
conn_auth(int fd, uint8_t *in, size_t cap, size_t *len)
{
	uint8_t out[S5_MSG_MAX];
	struct s5_cred cred;
	size_t used;
	uint8_t status = S5_AUTH_SUCCESS;
	int r, n;

	while ((r = s5_parse_auth(in, *len, &cred, &used)) == S5_NEED_MORE)
		if (io_read_more(fd, in, cap, len) < 0)
			return -1;
	if (r < 0)
		return -1;
	memmove(in, in + used, *len - used);
	*len -= used;
	if (cfg.check_cred && (!s5_cred_equal(cred.user, cred.ulen, cfg.cred.user,
	    cfg.cred.ulen) || !s5_cred_equal(cred.pass, cred.plen, cfg.cred.pass,
	    cfg.cred.plen)))
		status = S5_AUTH_FAILURE;
	n = s5_encode_auth_reply(out, sizeof(out), status);
	if (n < 0 || conn_answer(fd, STEP_AUTH, out, (size_t)n) < 0)
		return -1;
	/* RFC 1929 §2: after a failure status the server closes. */
	return status == S5_AUTH_SUCCESS ? 0 : -1;
}

/* The whole session of one client; fd is closed (or parked) on return. */
static void
conn_serve(int fd)
{
	uint8_t in[S5_GREETING_MAX + S5_AUTH_MAX + S5_MSG_MAX], out[S5_MSG_MAX];
	char dst[S5_ADDR_TEXT_MAX];
	struct s5_greeting g;
	struct s5_request req;
	struct s5_reply rep;
	size_t len = 0, used;
	uint8_t method;
	int r, n;

	/* RFC 1928 §3: the greeting; ask for RFC 1929 when configured to. */
	while ((r = s5_parse_greeting(in, len, &g, &used)) == S5_NEED_MORE)
		if (io_read_more(fd, in, sizeof(in), &len) < 0)
			goto out;
	if (r < 0)
		goto out;
	memmove(in, in + used, len - used);
	len -= used;
	/* The plain method: faultd's faults are placed in a lock-step
	 * handshake, so it never says it reads a stream (X'E0', X'E2'),
	 * and libsocksify never pipelines to it. */
	method = s5_method_base(s5_choose_method(&g, cfg.need_auth));
	n = s5_encode_method_reply(out, sizeof(out), method);
	if (n < 0 || conn_answer(fd, STEP_GREETING, out, (size_t)n) < 0)
		return;
	if (method == S5_METHOD_UNACCEPTABLE)
		goto out;
	if (method == S5_METHOD_USERPASS && conn_auth(fd, in, sizeof(in), &len) < 0)
		return;
	/* RFC 1928 §4: the request, logged before any fault at the reply. */
	while ((r = s5_parse_request(in, len, &req, &used)) == S5_NEED_MORE)
		if (io_read_more(fd, in, sizeof(in), &len) < 0)
			goto out;
	if (r < 0)
		goto out;
	if (s5_addr_format(&req.dst, dst, sizeof(dst)) < 0)
		snprintf(dst, sizeof(dst), "?");
	fprintf(stderr, "faultd: request cmd=%u atyp=%u dst=%s\n",
	    (unsigned)req.cmd, (unsigned)req.dst.atyp, dst);
	/* RFC 1928 §6: BND.ADDR 0.0.0.0:0, which clients must accept. */
	memset(&rep, 0, sizeof(rep));
	rep.rep = cfg.rep;
	s5_addr_set_ip4(&rep.bnd, (const uint8_t[4]){ 0, 0, 0, 0 }, 0);
	n = s5_encode_reply(out, sizeof(out), &rep);
	if (n < 0 || conn_answer(fd, STEP_REQUEST, out, (size_t)n) < 0)
		return;
	if (cfg.rep == S5_REP_SUCCEEDED) {
		if (len > used)
			(void)io_write_all(fd, in + used, len - used);
		conn_echo(fd);
	}
out:
	close(fd);
}

static void *
conn_thread(void *arg)
{
	conn_serve((int)(intptr_t)arg);
	return NULL;
}

static void
args_parse(int argc, char **argv, long *port)
{
	static const char http_error[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
	unsigned long v;
	size_t k;
	char *end;
	int i;

	cfg.rep = S5_REP_SUCCEEDED;
	memcpy(cfg.garbage, http_error, sizeof(http_error) - 1);
	cfg.garbage_len = sizeof(http_error) - 1;
	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		for (k = 0; k < sizeof(fault_flags) / sizeof(fault_flags[0]); k++)
			if (strcmp(argv[i], fault_flags[k].flag) == 0)
				break;
		if (k < sizeof(fault_flags) / sizeof(fault_flags[0])) {
			cfg.kind = fault_flags[k].kind;
			cfg.step = step_parse(argv[++i]);
		} else if (strcmp(argv[i], "--reply") == 0) {
			errno = 0;
			v = strtoul(argv[++i], &end, 0);
			if (errno != 0 || *end != '\0' || v > 0xff)
				usage();
			cfg.rep = (uint8_t)v;
		} else if (strcmp(argv[i], "--user") == 0) {
			cred_parse(&cfg.cred, argv[++i]);
			cfg.check_cred = true;
		} else if (strcmp(argv[i], "--bytes") == 0) {
			garbage_parse(&cfg, argv[++i]);
		} else if (strcmp(argv[i], "-p") == 0) {
			*port = strtol(argv[++i], &end, 10);
			if (*end != '\0' || *port < 0 || *port > 65535)
				usage();
		} else {
			usage();
		}
	}
	cfg.need_auth = cfg.check_cred || cfg.step == STEP_AUTH;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	pthread_attr_t attr;
	pthread_t t;
	long port = 0;
	int one = 1, lfd, fd;

	args_parse(argc, argv, &port);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		fatal("socket:");
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		fatal("bind 127.0.0.1:%ld:", port);
	if (listen(lfd, SOMAXCONN) < 0)
		fatal("listen:");
	if (getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0)
		fatal("getsockname:");
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0)
		fatal("pthread_attr");
	fprintf(stderr, "faultd: listening on 127.0.0.1:%u\n", (unsigned)ntohs(sin.sin_port));

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fatal("accept:");
		}
		/* Without a thread to spare, this client is served in line. */
		if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0)
			conn_serve(fd);
	}
}
