/*
 * udpbench: UDP round trips and datagram throughput, direct or through a
 * SOCKS5 server's UDP ASSOCIATE (RFC 1928 §6, §7); the UDP figure of make
 * bench (scripts/bench_udp.sh).
 *
 *	udpbench echo [-l HOST]
 *	udpbench rtt    -t HOST:PORT (-x HOST:PORT | --direct) -s SIZE -d SECONDS
 *	udpbench stream -t HOST:PORT (-x HOST:PORT | --direct) -s SIZE -d SECONDS [-w N]
 *
 * echo: a UDP echo target on HOST:0 (default 127.0.0.1). Prints
 *   "udpbench: echo on HOST:PORT" and sends every datagram back to its
 *   sender, as it came, until SIGTERM (or -T).
 * rtt: one datagram of SIZE bytes out, then its echo awaited, for SECONDS:
 *   round trips per second, p50 and p99 µs.
 * stream: -w datagrams in flight (default 64): a new one goes out as each
 *   echo comes back; bytes echoed per second (10^6) and datagrams per second.
 *
 * With -x the program speaks SOCKS5 itself (shared/socks5.h's client
 * machine): a UDP ASSOCIATE on a TCP control connection, naming its own UDP
 * address, then every datagram to the relay the reply names, behind the
 * §7 header for the target; an echo must come back behind a header naming
 * the target. --direct sends to the target itself.
 *
 * Every datagram starts with its sequence number; its other bytes are a
 * slice of one pseudo-random pattern at an offset the sequence number
 * picks, so an echo is checked byte for byte (and a datagram swapped for
 * another is seen). A datagram not back within LOSS_MS is lost; one back
 * later is counted late. Every wait is a poll() with a timeout.
 *
 * The last line on stdout is "udpbench: mode=... key=value ...". The exit
 * status is 0 when every echo held, 1 when one differed, the loss passed
 * --max-loss PERCENT (default 1), nothing came back or the control
 * connection ended (one line on stderr says which), 2 on a usage error.
 * Every mode ends by -T SECONDS (default 60) at the latest: SIGALRM kills
 * it. Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "udpbench"
#define BENCH_USAGE "udpbench echo [-l HOST] | rtt|stream -t HOST:PORT " \
	"(-x HOST:PORT | --direct) -s SIZE -d SECONDS [-w N] [--max-loss PERCENT]   [-T SECONDS]"
#include "bench.h"

enum {
	SEQ_BYTES = 8,			/* each datagram's sequence number */
	DGRAM_MIN = 16,
	DGRAM_MAX = 60000,		/* what the relays take with their header */
	WINDOW_DEFAULT = 64,
	WINDOW_MAX = 4096,
	RING = 1 << 18,			/* datagrams followed: more than LOSS_MS at full speed */
	BATCH = 64,			/* datagrams per sendmmsg() or recvmmsg() */
	PATTERN_SHIFTS = 251,		/* offsets into the pattern, a prime */
	LOSS_MS = 250,			/* an echo later than this is a loss */
	HANDSHAKE_MS = 5000,		/* connect, greeting to reply */
	SOCK_BUF_BYTES = 4 << 20,	/* asked of SO_RCVBUF/SO_SNDBUF (rmem_max caps it) */
	LAT_MAX = 1 << 24,		/* latencies kept */
	SECONDS_MAX = 3600,
};
#define DEFAULT_ECHO_HOST	"127.0.0.1"
#define DEFAULT_DEADLINE_S	60
#define DEFAULT_MAX_LOSS	1.0	/* percent of the datagrams sent */
#define PATTERN_SEED		0x9e3779b97f4a7c15ULL
#define NS_PER_MS		1000000ULL
#define BYTES_PER_MB		1e6

/* What happened to each datagram of the ring. */
enum slot_state { SLOT_FREE, SLOT_OUT, SLOT_BACK, SLOT_LOST };

struct bench {
	int fd;				/* UDP, connected to the relay or the target */
	int ctl;			/* the control connection; -1 when direct */
	size_t size, window;
	uint8_t hdr[S5_UDP_HEADER_MAX];	/* the §7 header to the target; hdrlen 0 when direct */
	size_t hdrlen;
	struct s5_addr target;
	uint8_t *pattern;		/* size + PATTERN_SHIFTS bytes */
	uint8_t *rbuf;			/* BATCH receive buffers of rcap bytes */
	size_t rcap;
	uint64_t next, lo;		/* next sequence number; oldest not settled */
	uint64_t inflight;
	bool blocked;			/* the last send found the socket full */
	uint64_t *sent_ns;		/* RING: when each went out */
	uint8_t *state;			/* RING: enum slot_state */
	uint64_t t_end;			/* echoes after this are not counted */
	uint64_t sent, echoed, lost, late, bad;
	uint64_t *lat;			/* ns, of the echoes counted */
	size_t nlat;
	char why_bad[128];		/* the first difference */
};

/* A UDP socket of the family bound to host:0, with large buffers: the
 * figure is the relay's, not this end's socket queue. */
static int
udp_socket(int family, const struct sockaddr_storage *local, socklen_t len)
{
	int fd, buf = SOCK_BUF_BYTES;

	if ((fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fail("socket", errno);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (bind(fd, (const struct sockaddr *)local, len) == -1)
		fail("bind", errno);
	return fd;
}

/* --- echo ---------------------------------------------------------------- */

static _Noreturn void
run_echo(const char *host)
{
	static uint8_t bufs[BATCH][SERVER_UDP_DGRAM_MAX];
	struct sockaddr_storage ss, from[BATCH];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct s5_addr a;
	char spec[S5_ADDR_TEXT_MAX], text[S5_ADDR_TEXT_MAX];
	socklen_t len;
	struct pollfd pfd;
	int fd, n, i, k, sent;

	if ((size_t)snprintf(spec, sizeof(spec), "%s:0", host) >= sizeof(spec))
		usage("-l wants an address, not '%s'", host);
	len = loopback_addr(spec, &ss, &a);
	fd = udp_socket(ss.ss_family, &ss, len);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    s5_sockaddr_format((struct sockaddr *)&ss, text, sizeof(text)) < 0)
		fail("getsockname", errno);
	printf("udpbench: echo on %s\n", text);
	fflush(stdout);
	pfd.fd = fd;
	pfd.events = POLLIN;
	/* SIGTERM's default action (or -T's SIGALRM) is the way out. */
	for (;;) {
		for (i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		if ((n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL)) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				fail("recvmmsg", errno);
			(void)poll(&pfd, 1, -1);
			continue;
		}
		for (i = 0; i < n; i++)
			iov[i].iov_len = msgs[i].msg_len;
		/* A full send queue loses the rest, as the network would: the
		 * client counts them lost. */
		for (k = 0; k < n; k += sent)
			if ((sent = sendmmsg(fd, msgs + k, (unsigned)(n - k), MSG_DONTWAIT)) <= 0)
				break;
	}
}

/* --- the control connection ----------------------------------------------- */

/* poll()'s timeout from now to until (ns), rounded up to whole ms. */
static int
poll_ms(uint64_t now, uint64_t until)
{
	return until > now ? (int)((until - now + NS_PER_MS - 1) / NS_PER_MS) : 0;
}

/* poll() for events on fd until deadline (ns); a timeout ends the run. */
static void
wait_fd(int fd, short events, uint64_t deadline, const char *what)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	uint64_t now;
	int r;

	for (;;) {
		if ((now = now_ns()) >= deadline) {
			fprintf(stderr, "udpbench: %s: timed out\n", what);
			exit(BENCH_EXIT_FAIL);
		}
		r = poll(&pfd, 1, poll_ms(now, deadline));
		if (r > 0)
			return;
		if (r == -1 && errno != EINTR)
			fail("poll", errno);
	}
}

/* n bytes out (send) or in (recv) on the non-blocking control connection. */
static void
ctl_io(int fd, uint8_t *p, size_t n, bool out, uint64_t deadline)
{
	ssize_t k;

	while (n > 0) {
		k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k == 0)
			fail("handshake", ECONNRESET);
		if (k == -1 && (errno == EAGAIN || errno == EINTR)) {
			wait_fd(fd, out ? POLLOUT : POLLIN, deadline, "handshake");
			continue;
		}
		if (k == -1)
			fail("handshake", errno);
		p += k;
		n -= (size_t)k;
	}
}

/* RFC 1928 §6: UDP ASSOCIATE naming our own UDP address; the relay's
 * address from the reply. A reply of the unspecified address means the
 * proxy's own. */
static socklen_t
associate(int ctl, const struct s5_addr *proxy, const struct s5_addr *mine,
    struct sockaddr_storage *relay)
{
	uint64_t deadline = now_ns() + HANDSHAKE_MS * NS_PER_MS;
	struct s5_client c;
	struct s5_addr bnd;
	uint8_t in[S5_MSG_MAX];
	size_t used, want;
	int r, len;
	static const uint8_t zero[16];

	s5_client_init(&c, S5_CMD_UDP_ASSOCIATE, mine, NULL);
	r = s5_client_step(&c, NULL, 0, &used);
	while (r == S5C_WANT_WRITE || r == S5C_WANT_READ) {
		if (r == S5C_WANT_WRITE) {
			ctl_io(ctl, c.out, c.out_len, true, deadline);
			r = s5_client_step(&c, NULL, 0, &used);
		} else {
			want = s5_client_want(&c);
			ctl_io(ctl, in, want, false, deadline);
			r = s5_client_step(&c, in, want, &used);
		}
	}
	if (r != S5C_DONE) {
		fprintf(stderr, "udpbench: handshake: %s (%s)\n", s5_client_strerror(r),
		    s5_rep_str(c.reply.rep));
		exit(BENCH_EXIT_FAIL);
	}
	bnd = c.reply.bnd;
	if ((bnd.atyp == S5_ATYP_IPV4 && memcmp(bnd.u.ip4, zero, 4) == 0) ||
	    (bnd.atyp == S5_ATYP_IPV6 && memcmp(bnd.u.ip6, zero, 16) == 0)) {
		bnd.u = proxy->u;
		bnd.atyp = proxy->atyp;
	}
	if ((len = s5_addr_to_sockaddr(&bnd, relay)) < 0) {
		fprintf(stderr, "udpbench: handshake: the relay is named, not an address\n");
		exit(BENCH_EXIT_FAIL);
	}
	return (socklen_t)len;
}

/* A TCP connection to the proxy, bounded by HANDSHAKE_MS. */
static int
ctl_connect(const struct sockaddr_storage *proxy, socklen_t len)
{
	int fd, err = 0;
	socklen_t errlen = sizeof(err);

	if ((fd = socket(proxy->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fail("socket", errno);
	if (connect(fd, (const struct sockaddr *)proxy, len) == -1) {
		if (errno != EINPROGRESS)
			fail("connect", errno);
		wait_fd(fd, POLLOUT, now_ns() + HANDSHAKE_MS * NS_PER_MS, "connect");
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1 || err != 0)
			fail("connect", err != 0 ? err : errno);
	}
	return fd;
}

/* --- the datagrams ---------------------------------------------------------- */

static void
note_bad(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->bad++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->why_bad, sizeof(b->why_bad), fmt, ap);
	va_end(ap);
}

static const uint8_t *
pattern_at(const struct bench *b, uint64_t seq)
{
	return b->pattern + seq % PATTERN_SHIFTS;
}

/* As many new datagrams as the window allows, in sendmmsg() batches: the
 * §7 header, the sequence number and the pattern's slice, none copied. */
static void
send_window(struct bench *b)
{
	uint64_t seqs[BATCH], now;
	struct iovec iov[BATCH][3];
	struct mmsghdr msgs[BATCH];
	size_t n, i, v;
	int k;

	b->blocked = false;
	while (b->inflight < b->window && b->next - b->lo < RING) {
		n = b->window - b->inflight;
		if (n > BATCH)
			n = BATCH;
		if (n > RING - (b->next - b->lo))
			n = RING - (b->next - b->lo);
		memset(msgs, 0, sizeof(msgs[0]) * n);
		for (i = 0; i < n; i++) {
			seqs[i] = b->next + i;
			v = 0;
			if (b->hdrlen > 0)
				iov[i][v++] = (struct iovec){ b->hdr, b->hdrlen };
			iov[i][v++] = (struct iovec){ &seqs[i], SEQ_BYTES };
			iov[i][v++] = (struct iovec){ (void *)pattern_at(b, seqs[i]), b->size - SEQ_BYTES };
			msgs[i].msg_hdr.msg_iov = iov[i];
			msgs[i].msg_hdr.msg_iovlen = v;
		}
		if ((k = sendmmsg(b->fd, msgs, (unsigned)n, MSG_DONTWAIT)) == -1) {
			if (errno == EAGAIN || errno == EINTR) {
				b->blocked = true;
				return;
			}
			/* Connected UDP: an ICMP port unreachable from a gone relay. */
			fail("send", errno);
		}
		now = now_ns();
		for (i = 0; i < (size_t)k; i++) {
			b->sent_ns[(b->next + i) % RING] = now;
			b->state[(b->next + i) % RING] = SLOT_OUT;
		}
		b->next += (uint64_t)k;
		b->sent += (uint64_t)k;
		b->inflight += (uint64_t)k;
		if ((size_t)k < n)
			return;
	}
}

/* One echo: the header names the target, the length is the size sent,
 * the bytes are the ones sent, and it answers a datagram still out. */
static void
take_echo(struct bench *b, const uint8_t *p, size_t n, bool trunc, uint64_t now)
{
	struct s5_udp_header h;
	size_t used = 0;
	uint64_t seq, slot;

	if (b->hdrlen > 0) {
		if (s5_parse_udp_header(p, n, &h, &used) != 0 || h.frag != 0) {
			note_bad(b, "an echo with a malformed header");
			return;
		}
		if (h.addr.atyp != b->target.atyp || h.addr.port != b->target.port ||
		    memcmp(&h.addr.u, &b->target.u, h.addr.atyp == S5_ATYP_IPV4 ? 4 : 16) != 0) {
			note_bad(b, "an echo whose header names another sender");
			return;
		}
	}
	if (trunc || n - used != b->size) {
		note_bad(b, "an echo of %zu bytes%s, not %zu", n - used, trunc ? " or more" : "", b->size);
		return;
	}
	memcpy(&seq, p + used, SEQ_BYTES);
	if (seq >= b->next || b->next - seq > RING) {
		note_bad(b, "an echo of datagram %llu, never sent", (unsigned long long)seq);
		return;
	}
	if (memcmp(p + used + SEQ_BYTES, pattern_at(b, seq), b->size - SEQ_BYTES) != 0) {
		note_bad(b, "the echo of datagram %llu differs from it", (unsigned long long)seq);
		return;
	}
	slot = seq % RING;
	if (b->state[slot] == SLOT_LOST) {
		b->late++;
		b->state[slot] = SLOT_BACK;
		return;
	}
	if (b->state[slot] != SLOT_OUT) {
		note_bad(b, "datagram %llu came back twice", (unsigned long long)seq);
		return;
	}
	b->state[slot] = SLOT_BACK;
	b->inflight--;
	if (now > b->t_end)
		return;
	b->echoed++;
	if (b->nlat < LAT_MAX)
		b->lat[b->nlat++] = now - b->sent_ns[slot];
}

static void
recv_echoes(struct bench *b)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t now;
	int n, i;

	for (;;) {
		memset(msgs, 0, sizeof(msgs));
		for (i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ b->rbuf + (size_t)i * b->rcap, b->rcap };
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		if ((n = recvmmsg(b->fd, msgs, BATCH, MSG_DONTWAIT, NULL)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			fail("recv", errno);
		}
		now = now_ns();
		for (i = 0; i < n; i++)
			take_echo(b, iov[i].iov_base, msgs[i].msg_len,
			    (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, now);
		if (n < BATCH)
			return;
	}
}

/* Settles the oldest datagrams: back, or out longer than LOSS_MS (lost).
 * Returns when the oldest still out becomes lost, or 0. */
static uint64_t
expire(struct bench *b, uint64_t now)
{
	uint64_t slot;

	while (b->lo < b->next) {
		slot = b->lo % RING;
		if (b->state[slot] == SLOT_OUT) {
			if (now - b->sent_ns[slot] < LOSS_MS * NS_PER_MS)
				return b->sent_ns[slot] + LOSS_MS * NS_PER_MS;
			b->state[slot] = SLOT_LOST;
			b->lost++;
			b->inflight--;
		}
		b->lo++;
	}
	return 0;
}

/* Until stop (ns): keep the window full, take echoes, settle losses. The
 * control connection must stay quiet: any byte or EOF on it ends the run. */
static void
pump(struct bench *b, uint64_t stop, bool sending)
{
	struct pollfd pfd[2];
	uint64_t now, due, until;
	uint8_t junk;

	pfd[0] = (struct pollfd){ .fd = b->fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = b->ctl, .events = POLLIN };
	while ((now = now_ns()) < stop) {
		due = expire(b, now);
		if (!sending && b->inflight == 0)
			return;
		if (sending)
			send_window(b);
		pfd[0].events = POLLIN | (sending && b->blocked ? POLLOUT : 0);
		until = due != 0 && due < stop ? due : stop;
		if (poll(pfd, b->ctl >= 0 ? 2 : 1, poll_ms(now, until)) == -1 && errno != EINTR)
			fail("poll", errno);
		if (b->ctl >= 0 && pfd[1].revents != 0) {
			fprintf(stderr, "udpbench: the proxy %s the control connection\n",
			    recv(b->ctl, &junk, 1, MSG_DONTWAIT) > 0 ? "spoke on" : "closed");
			exit(BENCH_EXIT_FAIL);
		}
		if (pfd[0].revents & (POLLIN | POLLERR))
			recv_echoes(b);
	}
}

static int
report(struct bench *b, const char *mode, bool direct, unsigned seconds, double max_loss)
{
	sort_ns(b->lat, b->nlat);
	printf("udpbench: mode=%s direct=%d size=%zu window=%zu seconds=%u sent=%llu "
	    "echoed=%llu lost=%llu late=%llu bad=%llu rate=%.0f mb_s=%.1f p50_us=%.1f "
	    "p99_us=%.1f\n", mode, direct, b->size, b->window, seconds,
	    (unsigned long long)b->sent, (unsigned long long)b->echoed,
	    (unsigned long long)b->lost, (unsigned long long)b->late,
	    (unsigned long long)b->bad, (double)b->echoed / seconds,
	    (double)b->echoed * (double)b->size / BYTES_PER_MB / seconds,
	    quantile_us(b->lat, b->nlat, BENCH_P50), quantile_us(b->lat, b->nlat, BENCH_P99));
	fflush(stdout);
	if (b->bad > 0) {
		fprintf(stderr, "udpbench: %llu echo(es) wrong, first: %s\n",
		    (unsigned long long)b->bad, b->why_bad);
		return BENCH_EXIT_FAIL;
	}
	if (b->echoed == 0) {
		fprintf(stderr, "udpbench: no datagram came back\n");
		return BENCH_EXIT_FAIL;
	}
	if ((double)b->lost * 100.0 > max_loss * (double)b->sent) {
		fprintf(stderr, "udpbench: %llu of %llu datagrams lost, over the %g%% bound\n",
		    (unsigned long long)b->lost, (unsigned long long)b->sent, max_loss);
		return BENCH_EXIT_FAIL;
	}
	return 0;
}

static int
run_bench(const char *mode, const char *target_text, const char *proxy_text, bool direct,
    size_t size, size_t window, unsigned seconds, double max_loss)
{
	struct sockaddr_storage target, proxy, local, relay;
	struct s5_addr pa, mine;
	struct s5_udp_header h = { .frag = 0 };
	struct bench b;
	socklen_t tlen, plen = 0, llen = sizeof(local), rlen;
	uint64_t state = PATTERN_SEED, t0;
	size_t i;

	if (target_text == NULL)
		usage("%s needs -t HOST:PORT", mode);
	if ((proxy_text == NULL) == !direct)
		usage("%s needs one of -x HOST:PORT and --direct", mode);
	if (size == 0 || seconds == 0)
		usage("%s needs -s SIZE and -d SECONDS", mode);
	memset(&b, 0, sizeof(b));
	b.size = size;
	b.window = window;
	b.ctl = -1;
	tlen = loopback_addr(target_text, &target, &b.target);
	if ((b.pattern = malloc(size + PATTERN_SHIFTS)) == NULL ||
	    (b.sent_ns = calloc(RING, sizeof(*b.sent_ns))) == NULL ||
	    (b.state = calloc(RING, 1)) == NULL ||
	    (b.lat = malloc(LAT_MAX * sizeof(*b.lat))) == NULL)
		fail("malloc", errno);
	/* xorshift64*: bytes no relay would produce by chance. */
	for (i = 0; i < size + PATTERN_SHIFTS; i++) {
		state ^= state >> 12;
		state ^= state << 25;
		state ^= state >> 27;
		b.pattern[i] = (uint8_t)((state * 2685821657736338717ULL) >> 56);
	}
	b.rcap = S5_UDP_HEADER_MAX + size + 1;
	if ((b.rbuf = malloc(BATCH * b.rcap)) == NULL)
		fail("malloc", errno);

	/* Our UDP socket on the loopback address of the way we go. */
	if (direct) {
		local = target;
		llen = tlen;
	} else {
		plen = loopback_addr(proxy_text, &proxy, &pa);
		local = proxy;
		llen = plen;
	}
	if (local.ss_family == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&local)->sin6_port = 0;
	b.fd = udp_socket(local.ss_family, &local, llen);
	llen = sizeof(local);
	if (getsockname(b.fd, (struct sockaddr *)&local, &llen) == -1 ||
	    s5_addr_from_sockaddr(&mine, (struct sockaddr *)&local, llen) < 0)
		fail("getsockname", errno);
	if (direct) {
		relay = target;
		rlen = tlen;
	} else {
		b.ctl = ctl_connect(&proxy, plen);
		rlen = associate(b.ctl, &pa, &mine, &relay);
		h.addr = b.target;
		b.hdrlen = (size_t)s5_encode_udp_header(b.hdr, sizeof(b.hdr), &h);
	}
	if (connect(b.fd, (struct sockaddr *)&relay, rlen) == -1)
		fail("connect", errno);

	t0 = now_ns();
	b.t_end = t0 + seconds * BENCH_NS_PER_S;
	pump(&b, b.t_end, true);
	/* The datagrams still out get LOSS_MS to come back. */
	pump(&b, b.t_end + LOSS_MS * NS_PER_MS + NS_PER_MS, false);
	expire(&b, UINT64_MAX);
	return report(&b, mode, direct, seconds, max_loss);
}

/* --- main ----------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "direct", no_argument, NULL, 'D' },
		{ "max-loss", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode, *host = DEFAULT_ECHO_HOST, *target = NULL, *proxy = NULL;
	unsigned long size = 0, window = WINDOW_DEFAULT, seconds = 0;
	unsigned long deadline = DEFAULT_DEADLINE_S;
	double max_loss = DEFAULT_MAX_LOSS;
	bool direct = false;
	char *end;
	int c;

	if (argc < 2)
		usage("which mode?");
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "l:t:x:s:w:d:T:", longs, NULL)) != -1) {
		switch (c) {
		case 'l': host = optarg; break;
		case 't': target = optarg; break;
		case 'x': proxy = optarg; break;
		case 'D': direct = true; break;
		case 's': size = count_arg(optarg, DGRAM_MIN, DGRAM_MAX, "-s"); break;
		case 'w': window = count_arg(optarg, 1, WINDOW_MAX, "-w"); break;
		case 'd': seconds = count_arg(optarg, 1, SECONDS_MAX, "-d"); break;
		case 'T': deadline = count_arg(optarg, 1, SECONDS_MAX, "-T"); break;
		case 'L':
			max_loss = strtod(optarg, &end);
			if (*end != '\0' || end == optarg || !(max_loss >= 0 && max_loss <= 100))
				usage("--max-loss: a percentage, not '%s'", optarg);
			break;
		default: usage("bad option");
		}
	}
	if (optind != argc)
		usage("unexpected '%s'", argv[optind]);
	alarm((unsigned)deadline);
	if (strcmp(mode, "echo") == 0)
		run_echo(host);
	if (strcmp(mode, "rtt") == 0)
		return run_bench(mode, target, proxy, direct, size, 1, (unsigned)seconds, max_loss);
	if (strcmp(mode, "stream") == 0)
		return run_bench(mode, target, proxy, direct, size, window, (unsigned)seconds, max_loss);
	usage("unknown mode '%s'", mode);
}
