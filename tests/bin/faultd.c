/*
 * faultd: a SOCKS5 server that fails on purpose, for the end-to-end tests of
 * libsocksify.so against replies and misbehaviour socksifyd never produces.
 *
 *	faultd --reply CODE              answer every CONNECT with reply CODE
 *	                                 (0x00 echoes the client's bytes back)
 *	faultd --stall greeting|reply    accept, then never answer at that step
 *	faultd --reset greeting|auth|reply
 *	                                 send a TCP RST instead of that answer
 *	                                 ("auth" insists on RFC 1929 first)
 *	faultd --garbage reply           answer the request with bytes that are
 *	                                 not SOCKS5, then close
 *
 * Listens on 127.0.0.1:0 (or -p PORT), prints "faultd: listening on
 * 127.0.0.1:PORT" on stderr, and logs one line per request it parses,
 * "faultd: request atyp=N dst=HOST:PORT", so a test can assert what the
 * library asked for. Clients are served one at a time; a stalled one is kept
 * open (not read) until faultd exits, so the next client is still served.
 * All messages are parsed and built with shared/socks5.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../shared/socks5.h"

#define FAULTD_IO_TIMEOUT_MS	10000	/* per read or write of one client */
#define FAULTD_STALLED_MAX	64	/* stalled clients held open at once */
#define FAULTD_ECHO_BUF_BYTES	4096

enum fault_step {
	STEP_NONE,
	STEP_GREETING,
	STEP_AUTH,
	STEP_REPLY,
};

enum fault_kind {
	FAULT_REPLY,		/* a well-formed reply with the chosen code */
	FAULT_STALL,
	FAULT_RESET,
	FAULT_GARBAGE,
};

struct fault {
	enum fault_kind kind;
	enum fault_step step;
	uint8_t rep;
};

static int stalled[FAULTD_STALLED_MAX];
static size_t nstalled;

static void
fatal(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	fputs("faultd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (fmt[0] != '\0' && fmt[strlen(fmt) - 1] == ':')
		fprintf(stderr, " %s", strerror(err));
	fputc('\n', stderr);
	exit(2);
}

static void
usage(void)
{
	fprintf(stderr, "usage: faultd [-p PORT] --reply CODE | --stall greeting|reply |\n"
	    "              --reset greeting|auth|reply | --garbage reply\n");
	exit(2);
}

static enum fault_step
step_parse(const char *s)
{
	if (strcmp(s, "greeting") == 0)
		return STEP_GREETING;
	if (strcmp(s, "auth") == 0)
		return STEP_AUTH;
	if (strcmp(s, "reply") == 0)
		return STEP_REPLY;
	usage();
	return STEP_NONE;
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

/* An abortive close: SO_LINGER with a zero timeout makes close() send RST. */
static void
conn_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* Keeps fd open and unread; faultd's exit closes it. */
static void
conn_stall(int fd)
{
	if (nstalled == FAULTD_STALLED_MAX) {
		close(fd);
		return;
	}
	stalled[nstalled++] = fd;
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

static void
conn_serve(int fd, const struct fault *f)
{
	static const uint8_t garbage[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
	uint8_t in[S5_GREETING_MAX + S5_AUTH_MAX + S5_MSG_MAX], out[S5_MSG_MAX];
	char dst[S5_ADDR_TEXT_MAX];
	struct s5_greeting g;
	struct s5_request req;
	struct s5_reply rep;
	struct s5_cred cred;
	size_t len = 0, used;
	uint8_t method;
	int r, n;

	if (f->kind == FAULT_STALL && f->step == STEP_GREETING) {
		conn_stall(fd);
		return;
	}
	/* RFC 1928 §3: the greeting; ask for RFC 1929 when the fault is there. */
	while ((r = s5_parse_greeting(in, len, &g, &used)) == S5_NEED_MORE)
		if (io_read_more(fd, in, sizeof(in), &len) < 0)
			goto out;
	if (r < 0)
		goto out;
	if (f->kind == FAULT_RESET && f->step == STEP_GREETING) {
		conn_reset(fd);
		return;
	}
	memmove(in, in + used, len - used);
	len -= used;
	method = s5_choose_method(&g, f->step == STEP_AUTH);
	n = s5_encode_method_reply(out, sizeof(out), method);
	if (n < 0 || io_write_all(fd, out, (size_t)n) < 0 ||
	    method == S5_METHOD_UNACCEPTABLE)
		goto out;
	if (method == S5_METHOD_USERPASS) {
		while ((r = s5_parse_auth(in, len, &cred, &used)) == S5_NEED_MORE)
			if (io_read_more(fd, in, sizeof(in), &len) < 0)
				goto out;
		if (r < 0)
			goto out;
		if (f->kind == FAULT_RESET && f->step == STEP_AUTH) {
			conn_reset(fd);
			return;
		}
		memmove(in, in + used, len - used);
		len -= used;
		n = s5_encode_auth_reply(out, sizeof(out), S5_AUTH_SUCCESS);
		if (n < 0 || io_write_all(fd, out, (size_t)n) < 0)
			goto out;
	}
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
	switch (f->kind) {
	case FAULT_STALL:
		conn_stall(fd);
		return;
	case FAULT_RESET:
		conn_reset(fd);
		return;
	case FAULT_GARBAGE:
		(void)io_write_all(fd, garbage, sizeof(garbage) - 1);
		goto out;
	case FAULT_REPLY:
		break;
	}
	/* RFC 1928 §6: BND.ADDR 0.0.0.0:0, which clients must accept. */
	memset(&rep, 0, sizeof(rep));
	rep.rep = f->rep;
	s5_addr_set_ip4(&rep.bnd, (const uint8_t[4]){ 0, 0, 0, 0 }, 0);
	n = s5_encode_reply(out, sizeof(out), &rep);
	if (n < 0 || io_write_all(fd, out, (size_t)n) < 0)
		goto out;
	if (f->rep == S5_REP_SUCCEEDED) {
		if (len > used)
			(void)io_write_all(fd, in + used, len - used);
		conn_echo(fd);
	}
out:
	close(fd);
}

int
main(int argc, char **argv)
{
	struct fault f = { .kind = FAULT_REPLY, .step = STEP_NONE, .rep = S5_REP_SUCCEEDED };
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	unsigned long v;
	long port = 0;
	char *end;
	int i, lfd, fd;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--reply") == 0) {
			errno = 0;
			v = strtoul(argv[++i], &end, 0);
			if (errno != 0 || *end != '\0' || v > 0xff)
				usage();
			f.kind = FAULT_REPLY;
			f.rep = (uint8_t)v;
		} else if (strcmp(argv[i], "--stall") == 0) {
			f.kind = FAULT_STALL;
			f.step = step_parse(argv[++i]);
			if (f.step == STEP_AUTH)
				usage();
		} else if (strcmp(argv[i], "--reset") == 0) {
			f.kind = FAULT_RESET;
			f.step = step_parse(argv[++i]);
		} else if (strcmp(argv[i], "--garbage") == 0) {
			f.kind = FAULT_GARBAGE;
			f.step = step_parse(argv[++i]);
			if (f.step != STEP_REPLY)
				usage();
		} else if (strcmp(argv[i], "-p") == 0) {
			port = strtol(argv[++i], &end, 10);
			if (*end != '\0' || port < 0 || port > 65535)
				usage();
		} else
			usage();
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		fatal("socket:");
	i = 1;
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &i, sizeof(i));
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
	fprintf(stderr, "faultd: listening on 127.0.0.1:%u\n", (unsigned)ntohs(sin.sin_port));

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fatal("accept:");
		}
		conn_serve(fd, &f);
	}
}
