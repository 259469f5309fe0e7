/*
 * s5load: many connections through a SOCKS5 server, every byte checked.
 *
 * One process drives both ends. It runs its own echo target on 127.0.0.1:0
 * and connects to it through the proxy, so each byte can be followed from
 * the client, through the proxy, to the target and back. Each connection
 * carries its own stream: an 8-byte header (connection id and generation,
 * little-endian), then -b bytes of a pseudo-random sequence seeded by that
 * header. Both ends compare every byte with the sequence as it arrives and
 * keep a count and a 64-bit FNV-1a hash of what they sent and received; at
 * the end the client's figures are compared with the target's, both ways.
 *
 *	s5load soak  -x HOST:PORT -c N -b BYTES [variant] [--pause MS] ...
 *	s5load stall -x HOST:PORT -c N [-g BYTES] [--expect-cut LO:HI]
 *	s5load rate  -x HOST:PORT -w WORKERS -d SECONDS [--direct]
 *	s5load hold  -x HOST:PORT -c N [--direct]
 *	s5load stream -x HOST:PORT -c N -d SECONDS [--direct]
 *
 * soak: each connection sends its stream and reads the echo. Variants
 *   (--mix gives every fifth connection each one):
 *	(none)                  close once the echo is complete
 *	--half-close            shutdown(SHUT_WR) after the stream; expect the
 *	                        whole echo, then EOF
 *	--target-half-close N   the target echoes N bytes, shuts down its write
 *	                        side and reads the rest: expect N bytes, EOF, and
 *	                        the whole stream at the target
 *	--target-reset N        the target reads N bytes, echoes them and resets:
 *	                        expect a reset or EOF, never a hang
 *	--vanish                close with SO_LINGER 0 (a reset) half way
 *	                        through the echo: the target must see the end
 *   --pause MS stops each connection half way through its stream until all
 *   have got there, prints "s5load: midway N" (all N are open now: a moment
 *   to look at the server or signal it) and lets them go on MS later;
 *   --cut-ok counts connections the proxy ends early, with no byte wrong,
 *   as cut rather than failed; --refused-ok counts those refused or closed
 *   before any handshake byte came back as refused.
 * stall: connect, send -g bytes (0 to 3) of a greeting, wait to be closed;
 *   prints "s5load: holding N" once every connection is open.
 * rate: each worker loops connect, handshake, 16-byte echo, close (with
 *   --target-closes the target closes first, after its echo), and the
 *   latency of each round goes into p50/p99. --direct skips the proxy. The
 *   rounds spread over RATE_TARGETS target ports and RATE_SOURCES client
 *   addresses (see rate_source()).
 * hold: open N relayed connections, echo one stream each, hold them idle and
 *   print "s5load: holding N"; ends on SIGTERM, SIGINT, EOF on a piped stdin
 *   or the deadline, resetting every connection on the way out.
 * stream: throughput. N connections each send as fast as they can, in large
 *   writes of one constant buffer, to a target that only counts and discards
 *   (no echo, no check: here s5load must cost less CPU than the proxy). The
 *   target is a process of its own (sink_run()), as the far end of a real
 *   transfer is: with one thread driving both ends, a direct transfer could
 *   use one CPU of the machine, and 8 direct streams came out slower than 1.
 *   The source, too, uses the machine: one thread writing every connection
 *   keeps one CPU busy, and 8 direct streams came out no faster than 1 while
 *   two processes of 4 streams each nearly doubled the rate of one. So once
 *   all N are through their handshake, the connections are dealt out to
 *   pump threads, one per CPU this process may run on and at most one per
 *   connection (pumps_start()); the main thread keeps its share. The
 *   window then opens and lasts -d seconds; mb_s is the bytes the target
 *   received in it per second (10^6), counted in memory the two processes
 *   share.
 *
 * Also: --ramp N handshakes under way at once (default 256), --window B
 * bytes sent ahead of the echo (default: no limit), --seed N.
 *
 * Every mode ends by -t SECONDS (default 60) at the latest. The last line on
 * stdout is "s5load: mode=... key=value ..."; the exit status is 0 only when
 * every check held, 1 when one failed, 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "defaults.h"
#include "socks5.h"

enum {
	HDR_BYTES = 8,			/* stream header: id, generation */
	IO_CHUNK = 32768,		/* bytes per read or send */
	ECHO_BUF = 65536,		/* the target's buffer, held while bytes wait */
	HS_READ = 64,			/* handshake bytes read at once */
	EVENTS_MAX = 512,		/* epoll events per wakeup */
	LISTEN_BACKLOG = 4096,		/* net.core.somaxconn's default */
	TICK_MS = 100,			/* longest epoll wait */
	FAIL_DETAILS = 5,		/* failed connections described on stderr */
	REASONS_MAX = 32,		/* distinct failure reasons counted */
	LAT_MAX = 1 << 24,		/* rate: latencies kept */
	GREETING_LEN = 3,		/* VER NMETHODS NONE */
	RATE_PAYLOAD = 8,		/* rate: header + 8 bytes = a 16-byte echo */
	HOLD_PAYLOAD = 8,		/* hold: the same small echo proves the relay */
	STREAM_WRITE = 262144,		/* stream: bytes per send() and per recv() */
	FD_SCAN_MAX = 1 << 20,		/* hold: descriptors looked at on the way out */
	RATE_TARGETS = 8,		/* rate: echo target ports, taken in turn */
	RATE_SOURCES = 8,		/* rate: client addresses, RATE_SOURCE_NET + 1 up */
	PUMPS_MAX = 64,			/* stream: source threads at most */
	EXIT_CHECK = 1,
	EXIT_USAGE = 2,
};
#define DEFAULT_DEADLINE_S	60
#define DEFAULT_RAMP		256	/* connections in their handshake at once */
#define DEFAULT_BYTES		65536
#define DEFAULT_SEED		0x5f3759dfULL
#define US_PER_MS		1000ULL
#define US_PER_S		1000000ULL
#define FNV_OFFSET		0xcbf29ce484222325ULL
#define FNV_PRIME		0x100000001b3ULL
#define STREAM_FILL		0xa5	/* stream: the constant payload byte */
#define RATE_SOURCE_NET		0x7f000100U	/* 127.0.1.0: apart from the servers' 127.0.0.x */
#define BYTES_PER_MB		1e6

enum mode { MODE_SOAK, MODE_STALL, MODE_RATE, MODE_HOLD, MODE_STREAM };
enum variant { V_PLAIN, V_HALF, V_THALF, V_TRESET, V_VANISH, V_COUNT };
enum kind { K_LISTEN, K_CLIENT, K_TARGET, K_SIGNAL, K_STDIN };
enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_STREAM, C_HOLD, C_DONE };
/* How the client side ended. */
enum cend { E_NONE, E_CLOSED, E_EOF, E_RESET, E_REFUSED, E_VANISHED, E_ERROR };
/* How the target side ended. */
enum tend { T_NONE, T_EOF, T_RESET, T_RST_SENT, T_BAD };

struct io {
	int fd;
	uint8_t kind;			/* enum kind */
};

struct stream {
	uint64_t seed;
	uint8_t hdr[HDR_BYTES];
};

struct slot;

/* The echo target's end of one connection. */
struct tconn {
	struct io io;
	struct slot *slot;		/* soak: the client it belongs to */
	struct stream st;
	bool known;			/* header read */
	uint8_t variant;
	uint64_t limit;			/* read no further than this stream offset */
	uint64_t rx, tx, rx_hash, tx_hash;
	uint8_t *buf;			/* pending echo, buf[off..len) */
	size_t off, len;
	bool eof, shut;
	uint32_t mask;
};

struct slot {
	struct io io;			/* the client socket */
	uint32_t id, gen;
	uint32_t tgt_i;			/* the round's target, in g.tgts */
	uint8_t variant, state, cend;
	uint32_t mask;
	struct stream st;
	uint64_t len;			/* stream bytes, header included */
	struct s5_client hs;
	size_t hs_sent, hs_rx;
	uint64_t tx, rx, tx_hash, rx_hash;
	bool tx_shut, rx_eof, in_setup, streamed;
	bool paused, past_mid, judged;
	uint64_t t_start, t_conn, t_end;	/* µs */
	const char *why;		/* failure reason */
	struct tconn *tgt;
	uint8_t t_end_kind;		/* enum tend, once the target side ended */
	uint64_t t_rx, t_tx, t_rx_hash, t_tx_hash;
};

struct opts {
	enum mode mode;
	struct sockaddr_storage proxy;
	socklen_t proxylen;
	bool have_proxy, direct, mix, half, vanish, cut_ok, refused_ok, pause, target_closes;
	size_t conns, workers, ramp, greet;
	uint64_t bytes, window, thalf_at, treset_at, pause_ms;
	uint64_t deadline_s, duration_s, seed;
	bool expect_cut;
	uint64_t cut_lo_ms, cut_hi_ms;
};

struct reason {
	const char *why;
	size_t n;
};

/* One listening port of the echo target. */
struct target {
	struct io io;			/* first: on_event() gets &io */
	uint32_t mask;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct s5_addr addr;
};

/* stream: how a connection's pump failed (pump_once()). */
struct pump_fail {
	enum cend how;
	const char *why;
	int err;			/* a failed call's errno, else 0 */
};

/* stream: a source thread and the connections it writes (pumps_start()). */
struct pump {
	pthread_t tid;
	int ep;
	struct slot *bad;		/* the first of them that failed */
	struct pump_fail fail;		/* and how */
};

/* Everything the loop owns. */
static struct {
	struct opts o;
	int ep;
	struct io sig, in;
	struct target tgts[RATE_TARGETS];
	size_t ntgts;			/* RATE_TARGETS in rate mode, else 1 */
	size_t turn;			/* rate: rounds started, for the turns */
	struct slot *slots;
	size_t nslots, next, setup, ended, judged;
	size_t ok, failed, refused, cut, details;
	size_t held, dropped, closed, midway, mid_skipped;
	size_t tgt_open, tgt_bad, tgt_late, accept_err;
	uint64_t up_bytes, down_bytes;
	uint64_t t0, deadline, rate_end, mid_at, resume_at;
	bool mid_printed, hold_printed, stop;
	struct slot **pauseq;		/* paused slots, in the order they resume */
	size_t pq_head, pq_tail;
	uint32_t *lat;			/* rate: µs per round */
	size_t nlat, caplat;
	uint64_t cut_min, cut_max, rounds, errors;
	uint64_t *closed_ms;		/* stall: when the server closed each */
	size_t streaming;		/* stream: connections past their handshake */
	uint64_t sink_bytes;		/* stream: bytes the target has received */
	uint64_t *sink_shared;		/* stream: [0] bytes, [1] accept errors,
					 * written by the sink process */
	pid_t sink_pid;			/* stream: the sink process */
	uint64_t win_t0, win_t1, win_b0, win_b1;	/* stream: the window, µs and bytes */
	bool win_done;
	struct pump pumps[PUMPS_MAX];	/* stream: [1..npumps) are threads */
	size_t npumps;
	int pump_stop, pump_failed;	/* stream: atomics the threads share */
	struct reason reasons[REASONS_MAX];
} g;

static void slot_start(struct slot *s);
static void slot_try_finish(struct slot *s);

/* --- small helpers ------------------------------------------------------ */

static _Noreturn void
usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "s5load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: s5load soak|stall|rate|hold|stream [-x HOST:PORT] [-c N] [-b BYTES] "
	    "[-w N] [-d S] [-t S] [-g N] [--ramp N] [--window B] [--pause MS] [--mix] "
	    "[--half-close] [--target-half-close N] [--target-reset N] [--vanish] [--target-closes] "
	    "[--cut-ok] [--refused-ok] [--expect-cut LO:HI] [--direct] [--seed N]\n");
	exit(EXIT_USAGE);
}

static _Noreturn void
fatal(const char *what)
{
	fprintf(stderr, "s5load: %s: %s\n", what, strerror(errno));
	exit(EXIT_CHECK);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * US_PER_S + (uint64_t)ts.tv_nsec / 1000;
}

/* splitmix64's finaliser: a good 64-bit mix, cheap enough per word. */
static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

static void
le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t
le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
stream_init(struct stream *st, uint32_t id, uint32_t gen)
{
	le32_put(st->hdr, id);
	le32_put(st->hdr + 4, gen);
	st->seed = mix64(g.o.seed ^ ((uint64_t)id << 32 | gen));
}

/* The stream's bytes [pos, pos + n): any offset, so a short send is simply
 * generated again. */
static void
stream_fill(const struct stream *st, uint64_t pos, uint8_t *buf, size_t n)
{
	size_t i = 0;

	for (; i < n && pos + i < HDR_BYTES; i++)
		buf[i] = st->hdr[pos + i];
	while (i < n) {
		uint64_t p = pos + i - HDR_BYTES, w = mix64(st->seed + (p >> 3));
		unsigned k;

		for (k = (unsigned)(p & 7); k < 8 && i < n; k++, i++)
			buf[i] = (uint8_t)(w >> (8 * k));
	}
}

/* Offset of the first byte of buf that is not the stream's, or n. */
static size_t
stream_check(const struct stream *st, uint64_t pos, const uint8_t *buf, size_t n)
{
	uint8_t want[IO_CHUNK];
	size_t done = 0, k, i;

	while (done < n) {
		k = n - done < sizeof(want) ? n - done : sizeof(want);
		stream_fill(st, pos + done, want, k);
		if (memcmp(want, buf + done, k) != 0) {
			for (i = 0; want[i] == buf[done + i]; i++)
				;
			return done + i;
		}
		done += k;
	}
	return n;
}

static void
ep_set(struct io *io, uint32_t *cur, uint32_t mask)
{
	struct epoll_event ev = { .events = mask, .data.ptr = io };

	if (*cur == mask)
		return;
	if (epoll_ctl(g.ep, EPOLL_CTL_MOD, io->fd, &ev) == -1)
		fatal("epoll_ctl");
	*cur = mask;
}

static void
ep_add(struct io *io, uint32_t mask)
{
	struct epoll_event ev = { .events = mask, .data.ptr = io };

	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, io->fd, &ev) == -1)
		fatal("epoll_ctl");
}

/* Our small writes (a header, a 16-byte echo) go out at once: Nagle's
 * wait for an ACK would be our latency, not the proxy's. */
static void
set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A reset on close: SO_LINGER with a zero timeout. */
static void
close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void
reason_count(const char *why)
{
	size_t i;

	for (i = 0; i < REASONS_MAX && g.reasons[i].why != NULL; i++)
		if (strcmp(g.reasons[i].why, why) == 0)
			break;
	if (i == REASONS_MAX)
		i--;			/* the last entry collects the rest */
	if (g.reasons[i].why == NULL)
		g.reasons[i].why = why;
	g.reasons[i].n++;
}

/* --- the echo target ---------------------------------------------------- */

static size_t
tconn_pending(const struct tconn *t)
{
	return t->len - t->off;
}

static void
tconn_update(struct tconn *t)
{
	uint32_t m = 0;

	if (tconn_pending(t) == 0 && !t->eof && t->rx < t->limit)
		m |= EPOLLIN;
	if (tconn_pending(t) > 0)
		m |= EPOLLOUT;
	ep_set(&t->io, &t->mask, m);
}

static void
tconn_end(struct tconn *t, enum tend how)
{
	struct slot *s = t->slot;
	size_t i;

	if (how == T_BAD)
		g.tgt_bad++;
	(void)epoll_ctl(g.ep, EPOLL_CTL_DEL, t->io.fd, NULL);
	if (how == T_RST_SENT)
		close_reset(t->io.fd);
	else
		close(t->io.fd);
	g.tgt_open--;
	/* A descriptor is free again. */
	for (i = 0; i < g.ntgts; i++)
		ep_set(&g.tgts[i].io, &g.tgts[i].mask, EPOLLIN);
	if (s != NULL) {
		s->t_end_kind = (uint8_t)how;
		s->t_rx = t->rx;
		s->t_tx = t->tx;
		s->t_rx_hash = t->rx_hash;
		s->t_tx_hash = t->tx_hash;
		s->tgt = NULL;
		slot_try_finish(s);
	}
	free(t->buf);
	free(t);
}

static uint64_t
variant_limit(uint8_t v)
{
	switch (v) {
	case V_THALF:
		return g.o.thalf_at;
	case V_TRESET:
		return g.o.treset_at;
	default:
		return UINT64_MAX;
	}
}

/* The header names the stream; in soak mode it also names the client. */
static bool
tconn_on_header(struct tconn *t)
{
	uint32_t id = le32_get(t->st.hdr), gen = le32_get(t->st.hdr + 4);
	struct slot *s;

	if (id >= g.nslots)
		return false;
	s = &g.slots[id];
	stream_init(&t->st, id, gen);
	t->known = true;
	t->variant = s->variant;
	t->limit = variant_limit(t->variant);
	if (g.o.mode != MODE_SOAK)
		return true;
	if (s->gen == gen && !s->judged && s->tgt == NULL && s->t_end_kind == T_NONE) {
		t->slot = s;
		s->tgt = t;
	} else {
		g.tgt_late++;
	}
	return true;
}

/* Checks n new bytes at buf; false when one is wrong. */
static bool
tconn_take(struct tconn *t, const uint8_t *buf, size_t n)
{
	size_t h = 0;

	while (!t->known && h < n) {
		t->st.hdr[t->rx + h] = buf[h];
		h++;
		if (t->rx + h == HDR_BYTES && !tconn_on_header(t))
			return false;
	}
	if (t->known && stream_check(&t->st, t->rx + h, buf + h, n - h) != n - h)
		return false;
	t->rx_hash = fnv1a(t->rx_hash, buf, n);
	t->rx += n;
	return true;
}

static int
tconn_flush(struct tconn *t)
{
	while (tconn_pending(t) > 0) {
		ssize_t n = send(t->io.fd, t->buf + t->off, tconn_pending(t), MSG_NOSIGNAL);

		if (n == -1)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		t->tx_hash = fnv1a(t->tx_hash, t->buf + t->off, (size_t)n);
		t->tx += (uint64_t)n;
		t->off += (size_t)n;
	}
	/* Idle connections hold no buffer: 8,000 of them would be 500 MiB. */
	free(t->buf);
	t->buf = NULL;
	t->off = t->len = 0;
	return 0;
}

/* Reads once when nothing waits to be echoed; 0, or the end it met. */
static enum tend
tconn_read(struct tconn *t)
{
	size_t want = ECHO_BUF;
	ssize_t n;

	if (tconn_pending(t) > 0 || t->eof || t->rx >= t->limit)
		return T_NONE;
	if (t->limit - t->rx < want)
		want = (size_t)(t->limit - t->rx);
	if (t->buf == NULL && (t->buf = malloc(ECHO_BUF)) == NULL)
		fatal("malloc");
	n = recv(t->io.fd, t->buf, want, 0);
	if (n == 0) {
		t->eof = true;
		return T_NONE;
	}
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? T_NONE : T_RESET;
	if (!tconn_take(t, t->buf, (size_t)n))
		return T_BAD;
	/* After its half-close the target reads the rest without echoing it. */
	t->len = t->shut ? 0 : (size_t)n;
	t->off = 0;
	if (t->len == 0) {
		free(t->buf);
		t->buf = NULL;
	}
	return T_NONE;
}

/* stream: read, count and forget; one buffer serves every connection. */
static void
tconn_sink(struct tconn *t)
{
	static uint8_t buf[STREAM_WRITE];
	ssize_t n = recv(t->io.fd, buf, sizeof(buf), 0);

	if (n > 0) {
		t->rx += (uint64_t)n;
		g.sink_bytes += (uint64_t)n;
	} else if (n == 0) {
		tconn_end(t, T_EOF);
	} else if (errno != EAGAIN && errno != EINTR) {
		tconn_end(t, T_RESET);
	}
}

static void
tconn_on_event(struct tconn *t)
{
	enum tend e = T_NONE;

	if (g.o.mode == MODE_STREAM) {
		tconn_sink(t);
		return;
	}
	if (tconn_flush(t) < 0) {
		tconn_end(t, T_RESET);
		return;
	}
	e = tconn_read(t);
	if (e == T_NONE && tconn_flush(t) < 0)
		e = T_RESET;
	if (e != T_NONE) {
		tconn_end(t, e);
		return;
	}
	/* rate --target-closes: the target ends each round, so its FIN is
	 * the first (the other way round from a client that closes). */
	if (g.o.target_closes && g.o.mode == MODE_RATE && tconn_pending(t) == 0 &&
	    t->known && t->rx == HDR_BYTES + RATE_PAYLOAD) {
		tconn_end(t, T_EOF);
		return;
	}
	if (tconn_pending(t) == 0 && t->known && t->rx == t->limit) {
		if (t->variant == V_TRESET) {
			tconn_end(t, T_RST_SENT);
			return;
		}
		if (t->variant == V_THALF && !t->shut) {
			(void)shutdown(t->io.fd, SHUT_WR);
			t->shut = true;
			t->limit = UINT64_MAX;
		}
	}
	if (t->eof && tconn_pending(t) == 0) {
		tconn_end(t, T_EOF);
		return;
	}
	tconn_update(t);
}

static void
listener_on_accept(struct target *lst)
{
	for (;;) {
		int fd = accept4(lst->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct tconn *t;

		if (fd == -1) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Out of descriptors: wait for a target connection to close. */
			g.accept_err++;
			ep_set(&lst->io, &lst->mask, 0);
			return;
		}
		if ((t = calloc(1, sizeof(*t))) == NULL)
			fatal("calloc");
		set_nodelay(fd);
		t->io.fd = fd;
		t->io.kind = K_TARGET;
		/* With one variant for all, its limit holds from the first byte;
		 * with --mix the header must come first to tell which. */
		t->limit = g.o.mix ? HDR_BYTES : variant_limit(g.slots[0].variant);
		t->rx_hash = t->tx_hash = FNV_OFFSET;
		t->mask = EPOLLIN;
		ep_add(&t->io, EPOLLIN);
		g.tgt_open++;
	}
}

static void
listener_open(struct target *lst)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(lst->sa);
	int one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lst->io.kind = K_LISTEN;
	lst->io.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lst->io.fd == -1)
		fatal("socket");
	(void)setsockopt(lst->io.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lst->io.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lst->io.fd, LISTEN_BACKLOG) == -1 ||
	    getsockname(lst->io.fd, (struct sockaddr *)&lst->sa, &len) == -1)
		fatal("echo target");
	lst->salen = len;
	if (s5_addr_from_sockaddr(&lst->addr, (struct sockaddr *)&lst->sa, len) < 0)
		fatal("echo target address");
	ep_add(&lst->io, EPOLLIN);
	lst->mask = EPOLLIN;
}

/* stream: how many threads for a side of n connections: one per CPU this
 * process may run on, at most one per connection and PUMPS_MAX. */
static size_t
stream_threads(size_t n)
{
	cpu_set_t set;
	size_t cpus = 1;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 1)
		cpus = (size_t)CPU_COUNT(&set);
	if (cpus > n)
		cpus = n;
	return cpus < PUMPS_MAX ? cpus : PUMPS_MAX;
}

/* stream: one reader of the sink: an epoll set of accepted connections and,
 * for reader 0, the listener, whose connections it deals out in turn. */
struct sink_reader {
	int ep, lfd;
	uint64_t *shared;
	struct sink_reader *all;
	size_t n, dealt;
};

static void *
sink_read(void *arg)
{
	struct sink_reader *r = arg;
	struct epoll_event ev[EVENTS_MAX], add = { .events = EPOLLIN };
	uint8_t *buf = malloc(STREAM_WRITE);
	int n, i, fd;
	ssize_t got;

	if (buf == NULL)
		_exit(EXIT_CHECK);
	for (;;) {
		n = epoll_wait(r->ep, ev, EVENTS_MAX, -1);
		for (i = 0; i < n; i++) {
			fd = ev[i].data.fd;
			if (fd == r->lfd) {
				while ((fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					add.data.fd = fd;
					if (epoll_ctl(r->all[r->dealt++ % r->n].ep, EPOLL_CTL_ADD, fd, &add) == -1)
						close(fd);
				}
				if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
					__atomic_add_fetch(&r->shared[1], 1, __ATOMIC_RELAXED);
				continue;
			}
			got = recv(fd, buf, STREAM_WRITE, 0);
			if (got > 0)
				__atomic_add_fetch(&r->shared[0], (uint64_t)got, __ATOMIC_RELAXED);
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				close(fd);
		}
	}
	return NULL;
}

/*
 * stream: the target in a process of its own. It accepts on lfd, reads and
 * forgets with a reader thread per CPU (as the source writes: pumps_start()),
 * and adds what it read to shared[0] (accept errors to shared[1]), until the
 * parent kills it (or dies: PR_SET_PDEATHSIG).
 */
static void
sink_run(int lfd, uint64_t *shared, size_t conns)
{
	static struct sink_reader r[PUMPS_MAX];
	struct epoll_event add = { .events = EPOLLIN };
	size_t n = stream_threads(conns), k;
	pthread_t tid;

	for (k = 0; k < n; k++) {
		r[k] = (struct sink_reader){ .ep = epoll_create1(EPOLL_CLOEXEC), .lfd = lfd,
		    .shared = shared, .all = r, .n = n };
		if (r[k].ep == -1)
			_exit(EXIT_CHECK);
	}
	add.data.fd = lfd;
	if (epoll_ctl(r[0].ep, EPOLL_CTL_ADD, lfd, &add) == -1)
		_exit(EXIT_CHECK);
	for (k = 1; k < n; k++)
		if (pthread_create(&tid, NULL, sink_read, &r[k]) != 0)
			_exit(EXIT_CHECK);
	(void)sink_read(&r[0]);
	_exit(EXIT_CHECK);
}

/* stream: the sink process for the target on lst, which this process no
 * longer serves. */
static void
sink_start(struct target *lst)
{
	pid_t parent = getpid();

	g.sink_shared = mmap(NULL, 2 * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g.sink_shared == MAP_FAILED)
		fatal("mmap");
	if ((g.sink_pid = fork()) == -1)
		fatal("fork");
	if (g.sink_pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(EXIT_CHECK);
		sink_run(lst->io.fd, g.sink_shared, g.o.conns);
	}
	(void)epoll_ctl(g.ep, EPOLL_CTL_DEL, lst->io.fd, NULL);
	close(lst->io.fd);
	lst->io.fd = -1;
}

static void
sink_stop(void)
{
	if (g.sink_pid <= 0)
		return;
	(void)kill(g.sink_pid, SIGKILL);
	(void)waitpid(g.sink_pid, NULL, 0);
	g.sink_pid = 0;
	g.accept_err += (size_t)__atomic_load_n(&g.sink_shared[1], __ATOMIC_RELAXED);
}

static uint64_t
sink_total(void)
{
	return g.sink_shared != NULL ? __atomic_load_n(&g.sink_shared[0], __ATOMIC_RELAXED) :
	    g.sink_bytes;
}

/* --- the client side ---------------------------------------------------- */

static bool
slot_can_send(const struct slot *s)
{
	if (s->state != C_STREAM || s->tx >= s->len || s->tx_shut || s->paused)
		return false;
	/* The window holds until the echo has ended (a target half-close). */
	return g.o.window == 0 || s->rx_eof || s->tx - s->rx < g.o.window;
}

static void
slot_update(struct slot *s)
{
	uint32_t m = 0;

	switch (s->state) {
	case C_CONNECTING:
		m = EPOLLOUT;
		break;
	case C_HANDSHAKE:
		m = s->hs.out_len > 0 ? EPOLLOUT : EPOLLIN;
		break;
	case C_STREAM:
		if (g.o.mode == MODE_STREAM)
			m = EPOLLIN | EPOLLOUT;
		else
			m = (s->rx_eof ? 0 : EPOLLIN) | (slot_can_send(s) ? EPOLLOUT : 0);
		break;
	case C_HOLD:
		m = EPOLLIN | EPOLLRDHUP;
		break;
	default:
		return;
	}
	ep_set(&s->io, &s->mask, m);
}

static void
mid_check(void)
{
	if (!g.o.pause || g.mid_printed || g.midway + g.mid_skipped < g.nslots)
		return;
	g.mid_printed = true;
	g.mid_at = now_us();
	g.resume_at = g.mid_at + g.o.pause_ms * US_PER_MS;
	printf("s5load: midway %zu\n", g.midway);
	fflush(stdout);
}

static void
setup_over(struct slot *s)
{
	if (s->in_setup) {
		s->in_setup = false;
		g.setup--;
	}
}

/* The client socket is finished with; the verdict may wait for the target. */
static void
slot_client_end(struct slot *s, enum cend how, const char *why)
{
	if (s->state == C_DONE || s->state == C_IDLE)
		return;
	setup_over(s);
	if (s->io.fd >= 0) {
		(void)epoll_ctl(g.ep, EPOLL_CTL_DEL, s->io.fd, NULL);
		if (how == E_VANISHED)
			close_reset(s->io.fd);
		else
			close(s->io.fd);
		s->io.fd = -1;
	}
	s->state = C_DONE;
	s->cend = (uint8_t)how;
	s->t_end = now_us();
	if (why != NULL && s->why == NULL)
		s->why = why;
	if (!s->past_mid) {
		s->past_mid = true;
		g.mid_skipped++;
		mid_check();
	}
	slot_try_finish(s);
}

/* A failed or reset read or write: which end that is. */
static void
slot_io_error(struct slot *s, int err)
{
	if (err == ECONNRESET || err == EPIPE)
		slot_client_end(s, E_RESET, "reset by proxy");
	else
		slot_client_end(s, E_ERROR, strerror(err));
}

static void
rate_round_done(struct slot *s)
{
	uint64_t us = now_us() - s->t_start;

	g.rounds++;
	if (g.nlat == g.caplat && g.caplat < LAT_MAX) {
		size_t cap = g.caplat ? g.caplat * 2 : 4096;
		uint32_t *p = realloc(g.lat, cap * sizeof(*p));

		if (p == NULL)
			fatal("realloc");
		g.lat = p;
		g.caplat = cap;
	}
	if (g.nlat < g.caplat)
		g.lat[g.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* After new bytes or an EOF: what the variant does next. */
static void
slot_progress(struct slot *s)
{
	uint64_t half = s->len / 2;

	if (s->state != C_STREAM)
		return;
	if (g.o.mode == MODE_RATE && s->rx == s->len) {
		rate_round_done(s);
		slot_client_end(s, E_CLOSED, NULL);
		return;
	}
	if (g.o.mode == MODE_HOLD && s->rx == s->len) {
		s->state = C_HOLD;
		g.held++;
		return;
	}
	if (s->variant == V_VANISH && s->rx >= half) {
		slot_client_end(s, E_VANISHED, NULL);
		return;
	}
	if (s->variant == V_HALF && s->tx == s->len && !s->tx_shut) {
		(void)shutdown(s->io.fd, SHUT_WR);
		s->tx_shut = true;
	}
	if (s->variant == V_PLAIN && s->rx == s->len) {
		slot_client_end(s, E_CLOSED, NULL);
		return;
	}
	if (!s->rx_eof)
		return;
	/* The proxy ended the echo: expected only where the variant says so. */
	if ((s->variant == V_HALF && s->rx == s->len) ||
	    (s->variant == V_THALF && s->rx == g.o.thalf_at)) {
		if (s->tx == s->len)
			slot_client_end(s, E_CLOSED, NULL);
		return;
	}
	slot_client_end(s, E_EOF, "EOF before the echo was complete");
}

static void
slot_take_rx(struct slot *s, const uint8_t *buf, size_t n)
{
	if (s->rx + n > s->len) {
		slot_client_end(s, E_ERROR, "more bytes echoed than sent");
		return;
	}
	if (stream_check(&s->st, s->rx, buf, n) != n) {
		slot_client_end(s, E_ERROR, "echo corrupted");
		return;
	}
	s->rx_hash = fnv1a(s->rx_hash, buf, n);
	s->rx += n;
}

static void
slot_send(struct slot *s)
{
	uint8_t buf[IO_CHUNK];
	uint64_t room = s->len - s->tx, stop = s->len;
	size_t k;
	ssize_t n;

	if (!slot_can_send(s))
		return;
	/* The pause, when asked for, falls half way through the stream. */
	if (g.o.pause && !s->past_mid)
		stop = s->len / 2;
	if (g.o.window > 0 && !s->rx_eof && g.o.window - (s->tx - s->rx) < room)
		room = g.o.window - (s->tx - s->rx);
	if (stop - s->tx < room)
		room = stop - s->tx;
	k = room < sizeof(buf) ? (size_t)room : sizeof(buf);
	stream_fill(&s->st, s->tx, buf, k);
	n = send(s->io.fd, buf, k, MSG_NOSIGNAL);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			slot_io_error(s, errno);
		return;
	}
	s->tx_hash = fnv1a(s->tx_hash, buf, (size_t)n);
	s->tx += (uint64_t)n;
	if (g.o.pause && !s->past_mid && s->tx == stop) {
		s->past_mid = s->paused = true;
		g.pauseq[g.pq_tail++] = s;
		g.midway++;
		mid_check();
	}
}

static void
slot_recv(struct slot *s)
{
	uint8_t buf[IO_CHUNK];
	ssize_t n = recv(s->io.fd, buf, sizeof(buf), 0);

	if (n > 0)
		slot_take_rx(s, buf, (size_t)n);
	else if (n == 0)
		s->rx_eof = true;
	else if (errno != EAGAIN && errno != EINTR)
		slot_io_error(s, errno);
}

/* stream: the constant buffer every source writes from. */
static uint8_t stream_buf[STREAM_WRITE];

/*
 * stream: one large send per wake-up, so the connections take turns. The
 * target never answers: a byte or an EOF from the proxy ends the connection
 * (-1, and *f says how). Touches nothing but s->tx, so
 * that a pump thread may run it.
 */
static int
pump_once(struct slot *s, uint32_t ev, struct pump_fail *f)
{
	uint8_t in[HS_READ];
	ssize_t n;

	f->err = 0;
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		n = recv(s->io.fd, in, sizeof(in), 0);
		if (n > 0) {
			f->how = E_ERROR;
			f->why = "the proxy sent bytes the target never did";
			return -1;
		}
		if (n == 0) {
			f->how = E_EOF;
			f->why = "the proxy closed the stream";
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			f->err = errno;
			return -1;
		}
	}
	n = send(s->io.fd, stream_buf, sizeof(stream_buf), MSG_NOSIGNAL);
	if (n > 0)
		s->tx += (uint64_t)n;
	else if (n == -1 && errno != EAGAIN && errno != EINTR) {
		f->err = errno;
		return -1;
	}
	return 0;
}

/* The end of s that a pump's failure f calls for; main thread only. */
static void
pump_end(struct slot *s, const struct pump_fail *f)
{
	if (f->err != 0)
		slot_io_error(s, f->err);
	else
		slot_client_end(s, f->how, f->why);
}

static void
slot_pump(struct slot *s, uint32_t ev)
{
	struct pump_fail f;

	if (pump_once(s, ev, &f) != 0)
		pump_end(s, &f);
}

/* A pump thread: its connections, until pumps_stop() or the first failure,
 * which the main thread reports (pumps_stop()). */
static void *
pump_run(void *arg)
{
	struct pump *p = arg;
	struct epoll_event ev[EVENTS_MAX];
	int n, i;

	while (!__atomic_load_n(&g.pump_stop, __ATOMIC_ACQUIRE)) {
		n = epoll_wait(p->ep, ev, EVENTS_MAX, TICK_MS);
		for (i = 0; i < n; i++) {
			struct slot *s = ev[i].data.ptr;

			if (pump_once(s, ev[i].events, &p->fail) == 0)
				continue;
			p->bad = s;
			__atomic_store_n(&g.pump_failed, 1, __ATOMIC_RELEASE);
			return NULL;
		}
	}
	return NULL;
}

/* stream, every connection relaying: slot i goes to pump i % npumps, pump
 * 0 being the main thread, which keeps its loop. A pump that cannot be
 * started leaves its slots where they are. */
static void
pumps_start(void)
{
	struct epoll_event add;
	size_t want = stream_threads(g.nslots), k, i;

	g.npumps = 1;
	for (k = 1; k < want; k++) {
		struct pump *p = &g.pumps[k];

		if ((p->ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			break;
		for (i = k; i < g.nslots; i += want) {
			struct slot *s = &g.slots[i];

			add.events = EPOLLIN | EPOLLOUT;
			add.data.ptr = s;
			if (s->state != C_STREAM || s->io.fd < 0 ||
			    epoll_ctl(g.ep, EPOLL_CTL_DEL, s->io.fd, NULL) == -1)
				fatal("pump: a connection not relaying");
			if (epoll_ctl(p->ep, EPOLL_CTL_ADD, s->io.fd, &add) == -1)
				fatal("epoll_ctl");
			s->mask = 0;	/* not in g.ep */
		}
		if (pthread_create(&p->tid, NULL, pump_run, p) != 0)
			fatal("pthread_create");
		g.npumps++;
	}
}

/* stream: the threads stop; each one's failure ends its connection here,
 * where the counts are kept. */
static void
pumps_stop(void)
{
	size_t k;

	__atomic_store_n(&g.pump_stop, 1, __ATOMIC_RELEASE);
	for (k = 1; k < g.npumps; k++) {
		struct pump *p = &g.pumps[k];

		(void)pthread_join(p->tid, NULL);
		close(p->ep);
		if (p->bad != NULL)
			pump_end(p->bad, &p->fail);
	}
	g.npumps = 1;
}

static void
slot_stream(struct slot *s, uint32_t ev)
{
	if (g.o.mode == MODE_STREAM) {
		slot_pump(s, ev);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		slot_recv(s);
	if (s->state == C_STREAM)
		slot_send(s);
	slot_progress(s);
}

static void
slot_enter_stream(struct slot *s)
{
	setup_over(s);
	s->state = C_STREAM;
	s->streamed = true;
	/* stream: the window opens (stream_tick()) once every connection is
	 * relaying. */
	if (g.o.mode == MODE_STREAM)
		g.streaming++;
}

/* Bytes of the handshake: feed the machine; what follows the reply is echo. */
static void
slot_hs_input(struct slot *s, const uint8_t *buf, size_t n)
{
	size_t off = 0, used;
	int r = S5C_WANT_READ;

	while (off < n && r == S5C_WANT_READ) {
		r = s5_client_step(&s->hs, buf + off, n - off, &used);
		off += used;
	}
	if (r == S5C_E_REPLY) {
		slot_client_end(s, E_ERROR, s5_rep_str(s->hs.reply.rep));
	} else if (r < 0) {
		slot_client_end(s, E_ERROR, s5_client_strerror(r));
	} else if (r == S5C_WANT_WRITE && off < n) {
		slot_client_end(s, E_ERROR, "proxy spoke out of turn");
	} else if (r == S5C_DONE) {
		slot_enter_stream(s);
		if (off < n)
			slot_take_rx(s, buf + off, n - off);
	}
}

static void
slot_handshake(struct slot *s)
{
	uint8_t buf[HS_READ];
	ssize_t n;

	while (s->state == C_HANDSHAKE) {
		if (s->hs.out_len > 0) {
			n = send(s->io.fd, s->hs.out + s->hs_sent, s->hs.out_len - s->hs_sent,
			    MSG_NOSIGNAL);
			if (n == -1) {
				if (errno != EAGAIN && errno != EINTR)
					slot_io_error(s, errno);
				return;
			}
			if ((s->hs_sent += (size_t)n) < s->hs.out_len)
				return;
			s->hs_sent = 0;
			(void)s5_client_step(&s->hs, NULL, 0, NULL);
			continue;
		}
		n = recv(s->io.fd, buf, sizeof(buf), 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		/* Closed before a byte of the handshake came back: refused. */
		if (n <= 0 && s->hs_rx == 0) {
			slot_client_end(s, E_REFUSED, "closed before the method reply");
			return;
		}
		if (n == 0) {
			slot_client_end(s, E_EOF, "EOF in the handshake");
			return;
		}
		if (n == -1) {
			slot_io_error(s, errno);
			return;
		}
		s->hs_rx += (size_t)n;
		slot_hs_input(s, buf, (size_t)n);
	}
	if (s->state == C_STREAM)
		slot_stream(s, 0);
}

/* stall: the partial greeting; hold: nothing to do until the echo. */
static void
slot_stall_begin(struct slot *s)
{
	static const uint8_t none[] = { S5_METHOD_NONE };
	uint8_t greet[GREETING_LEN];
	int len = s5_encode_greeting(greet, sizeof(greet), none, sizeof(none));

	setup_over(s);
	s->state = C_HOLD;
	g.held++;
	if (len < 0 || g.o.greet == 0)
		return;
	if (send(s->io.fd, greet, g.o.greet, MSG_NOSIGNAL) != (ssize_t)g.o.greet)
		slot_io_error(s, errno);
}

static void
slot_connected(struct slot *s)
{
	s->t_conn = now_us();
	if (g.o.mode == MODE_STALL) {
		slot_stall_begin(s);
		return;
	}
	if (g.o.direct) {
		slot_enter_stream(s);
		slot_stream(s, 0);
		return;
	}
	s5_client_init(&s->hs, S5_CMD_CONNECT, &g.tgts[s->tgt_i].addr, NULL);
	(void)s5_client_step(&s->hs, NULL, 0, NULL);
	s->hs_sent = s->hs_rx = 0;
	s->state = C_HANDSHAKE;
	slot_handshake(s);
}

static void
slot_on_connect(struct slot *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == ECONNREFUSED)
		slot_client_end(s, E_REFUSED, "connection refused");
	else if (err != 0)
		slot_io_error(s, err);
	else
		slot_connected(s);
}

/* hold and stall: the server closing a held connection. */
static void
slot_on_hold(struct slot *s)
{
	uint8_t buf[HS_READ];
	ssize_t n = recv(s->io.fd, buf, sizeof(buf), 0);

	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
		return;
	if (g.o.mode == MODE_STALL) {
		g.closed_ms[g.closed++] = (now_us() - s->t_conn) / US_PER_MS;
		slot_client_end(s, E_CLOSED, NULL);
	} else {
		g.dropped++;
		slot_client_end(s, n == 0 ? E_EOF : E_RESET, "held connection closed");
	}
}

static void
slot_on_event(struct slot *s, uint32_t ev)
{
	switch (s->state) {
	case C_CONNECTING:
		slot_on_connect(s);
		break;
	case C_HANDSHAKE:
		slot_handshake(s);
		break;
	case C_STREAM:
		slot_stream(s, ev);
		break;
	case C_HOLD:
		slot_on_hold(s);
		break;
	default:
		break;
	}
	slot_update(s);
}

/* rate: the kernel gives connect() some 14,000 ports a second towards one
 * address and port (even ports first; a TIME_WAIT is taken over after a
 * second), and a rate run through one target port and from one address
 * would measure that, direct or proxied, rather than the proxy. So the
 * rounds take RATE_TARGETS target ports and RATE_SOURCES client addresses
 * in turn; the client's port is still chosen at connect(), where TIME_WAITs
 * can be reused. */
static void
rate_source(int fd, size_t turn)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int one = 1;

	sin.sin_addr.s_addr = htonl(RATE_SOURCE_NET + 1 + (uint32_t)(turn % RATE_SOURCES));
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fatal("rate: client address");
}

static void
slot_start(struct slot *s)
{
	const struct sockaddr *to;
	socklen_t tolen;

	s->tgt_i = (uint32_t)(g.turn % g.ntgts);
	to = g.o.direct ? (struct sockaddr *)&g.tgts[s->tgt_i].sa : (struct sockaddr *)&g.o.proxy;
	tolen = g.o.direct ? g.tgts[s->tgt_i].salen : g.o.proxylen;
	s->gen++;
	stream_init(&s->st, s->id, s->gen);
	s->tx = s->rx = 0;
	s->tx_hash = s->rx_hash = FNV_OFFSET;
	s->tx_shut = s->rx_eof = s->streamed = false;
	s->why = NULL;
	s->cend = E_NONE;
	s->mask = EPOLLOUT;
	s->t_start = now_us();
	s->in_setup = true;
	g.setup++;
	s->io.kind = K_CLIENT;
	s->state = C_CONNECTING;
	s->io.fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->io.fd == -1) {
		slot_client_end(s, E_ERROR, "socket() failed");
		return;
	}
	set_nodelay(s->io.fd);
	if (g.o.mode == MODE_RATE && to->sa_family == AF_INET)
		rate_source(s->io.fd, g.turn / g.ntgts);
	g.turn++;
	ep_add(&s->io, EPOLLOUT);
	if (connect(s->io.fd, to, tolen) == 0)
		slot_connected(s);
	else if (errno == ECONNREFUSED)
		slot_client_end(s, E_REFUSED, "connection refused");
	else if (errno != EINPROGRESS)
		slot_io_error(s, errno);
	slot_update(s);
}

/* --- verdicts ----------------------------------------------------------- */

/* Both ways, byte counts and hashes agree end to end. */
static bool
slot_up_whole(const struct slot *s)
{
	return s->t_end_kind == T_EOF && s->tx == s->len && s->t_rx == s->tx &&
	    s->t_rx_hash == s->tx_hash;
}

static bool
slot_down_whole(const struct slot *s, uint64_t want)
{
	return s->rx == want && s->t_tx == s->rx && s->t_tx_hash == s->rx_hash;
}

/* NULL when the connection did what its variant promises; else why not. */
static const char *
slot_verdict(const struct slot *s)
{
	switch (s->variant) {
	case V_PLAIN:
	case V_HALF:
		if (!slot_up_whole(s))
			return "target did not get the whole stream";
		return slot_down_whole(s, s->len) ? NULL : "echo differs from what the target sent";
	case V_THALF:
		if (!slot_up_whole(s))
			return "target did not get the whole stream after its half-close";
		return slot_down_whole(s, g.o.thalf_at) ? NULL :
		    "echo before the target's half-close differs";
	case V_TRESET:
		if (s->t_end_kind != T_RST_SENT || s->t_rx != g.o.treset_at)
			return "target did not read up to its reset";
		return s->rx <= s->t_tx ? NULL : "more echo than the target sent";
	default:
		if (s->t_end_kind != T_EOF && s->t_end_kind != T_RESET)
			return "target did not see the vanished client go";
		return s->t_rx <= s->tx ? NULL : "target got bytes never sent";
	}
}

static void
slot_fail(struct slot *s, const char *why)
{
	g.failed++;
	reason_count(why);
	if (g.details++ < FAIL_DETAILS)
		fprintf(stderr, "s5load: conn %" PRIu32 " variant %d: %s (tx=%" PRIu64
		    " rx=%" PRIu64 " target rx=%" PRIu64 " tx=%" PRIu64 " end=%d/%d)\n",
		    s->id, s->variant, why, s->tx, s->rx, s->t_rx, s->t_tx, s->cend,
		    s->t_end_kind);
}

static void
slot_judge(struct slot *s)
{
	bool early = s->cend == E_EOF || s->cend == E_RESET;
	uint64_t ms;
	const char *why;

	s->judged = true;
	g.judged++;
	g.up_bytes += s->t_rx;
	g.down_bytes += s->rx;
	if (s->cend == E_REFUSED && g.o.refused_ok) {
		g.refused++;
		return;
	}
	if (s->cend == E_ERROR || s->cend == E_REFUSED || s->t_end_kind == T_BAD) {
		slot_fail(s, s->t_end_kind == T_BAD ? "target got a wrong byte" : s->why);
		return;
	}
	if (early && s->streamed && s->variant != V_TRESET && g.o.cut_ok &&
	    s->t_rx <= s->tx) {
		g.cut++;
		ms = (s->t_end - (g.mid_at ? g.mid_at : g.t0)) / US_PER_MS;
		if (g.cut == 1 || ms < g.cut_min)
			g.cut_min = ms;
		if (ms > g.cut_max)
			g.cut_max = ms;
		return;
	}
	if (early && s->variant != V_TRESET) {
		slot_fail(s, s->why);
		return;
	}
	if ((why = slot_verdict(s)) != NULL) {
		slot_fail(s, why);
		return;
	}
	g.ok++;
}

/* A slot is judged once its client is done and its target, if any, too. */
static void
slot_try_finish(struct slot *s)
{
	if (s->state != C_DONE || s->judged)
		return;
	if (g.o.mode == MODE_RATE) {
		if (s->cend != E_CLOSED) {
			g.errors++;
			reason_count(s->why != NULL ? s->why : "?");
		}
		s->state = C_IDLE;
		if (now_us() < g.rate_end)
			slot_start(s);
		return;
	}
	if (g.o.mode != MODE_SOAK) {
		s->judged = true;
		g.judged++;
		/* Only a stall is meant to end: elsewhere this is a failure. */
		if (g.o.mode != MODE_STALL)
			reason_count(s->why != NULL ? s->why : "?");
		return;
	}
	if (s->tgt != NULL)
		return;
	slot_judge(s);
}

/* --- the loop ----------------------------------------------------------- */

static void
signals_open(void)
{
	sigset_t set;
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (g.sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	g.sig.kind = K_SIGNAL;
	ep_add(&g.sig, EPOLLIN);
	/* hold: a piped stdin closing ends the hold too. */
	g.in.fd = STDIN_FILENO;
	g.in.kind = K_STDIN;
	if (g.o.mode == MODE_HOLD && fstat(STDIN_FILENO, &st) == 0 &&
	    (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		ep_add(&g.in, EPOLLIN);
}

static void
on_event(struct io *io, uint32_t ev)
{
	uint8_t buf[HS_READ];

	switch (io->kind) {
	case K_LISTEN:
		listener_on_accept((struct target *)io);
		break;
	case K_CLIENT:
		slot_on_event((struct slot *)io, ev);
		break;
	case K_TARGET:
		tconn_on_event((struct tconn *)io);
		break;
	case K_SIGNAL:
		g.stop = true;
		break;
	case K_STDIN:
		if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0) {
			g.stop = true;
			(void)epoll_ctl(g.ep, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
		}
		break;
	}
}

/* All together, --pause ms after the last one got half way. */
static void
resume_paused(uint64_t now)
{
	if (!g.mid_printed || now < g.resume_at)
		return;
	while (g.pq_head < g.pq_tail) {
		struct slot *s = g.pauseq[g.pq_head++];

		s->paused = false;
		if (s->state == C_STREAM) {
			slot_send(s);
			slot_progress(s);
			slot_update(s);
		}
	}
}


static bool
rate_busy(void)
{
	size_t i;

	for (i = 0; i < g.nslots; i++)
		if (g.slots[i].state != C_IDLE)
			return true;
	return false;
}

static bool
finished(uint64_t now)
{
	switch (g.o.mode) {
	case MODE_SOAK:
		return g.judged == g.nslots && g.tgt_open == 0;
	case MODE_RATE:
		return now >= g.rate_end && !rate_busy() && g.tgt_open == 0;
	case MODE_STALL:
		return g.judged == g.nslots;
	case MODE_STREAM:
		return g.win_done || g.judged > 0 ||
		    __atomic_load_n(&g.pump_failed, __ATOMIC_ACQUIRE);
	default:
		return g.stop || g.judged > 0;
	}
}

/* Starts what may start now: the ramp, or rate's next rounds. */
static void
start_more(uint64_t now)
{
	size_t i;

	if (g.o.mode == MODE_RATE) {
		for (i = 0; i < g.nslots && now < g.rate_end; i++)
			if (g.slots[i].state == C_IDLE)
				slot_start(&g.slots[i]);
		return;
	}
	while (g.setup < g.o.ramp && g.next < g.nslots)
		slot_start(&g.slots[g.next++]);
}

/* stream: once every connection is relaying, the pumps start and the
 * window opens; it closes -d seconds later. */
static void
stream_tick(uint64_t now)
{
	if (g.o.mode != MODE_STREAM || g.win_done)
		return;
	if (g.win_t0 == 0 && g.streaming == g.nslots && g.judged == 0) {
		pumps_start();
		g.win_t0 = now_us();
		g.win_b0 = sink_total();
		return;
	}
	if (g.win_t0 == 0 || now < g.win_t0 + g.o.duration_s * US_PER_S)
		return;
	g.win_t1 = now;
	g.win_b1 = sink_total();
	g.win_done = true;
}

static int
loop_timeout(uint64_t now)
{
	uint64_t t = TICK_MS * US_PER_MS;

	if (g.mid_printed && g.pq_head < g.pq_tail)
		t = g.resume_at <= now ? 0 : (g.resume_at - now < t ? g.resume_at - now : t);
	/* Round up: waking a little early would only spin. */
	return (int)((t + US_PER_MS - 1) / US_PER_MS);
}

static void
run(void)
{
	struct epoll_event ev[EVENTS_MAX];
	uint64_t now;
	int n, i;

	for (;;) {
		now = now_us();
		stream_tick(now);
		if (finished(now) || now >= g.deadline || (g.stop && g.o.mode != MODE_HOLD))
			return;
		start_more(now);
		resume_paused(now);
		if (!g.hold_printed && g.held == g.nslots &&
		    (g.o.mode == MODE_HOLD || g.o.mode == MODE_STALL)) {
			g.hold_printed = true;
			printf("s5load: holding %zu\n", g.held);
			fflush(stdout);
		}
		n = epoll_wait(g.ep, ev, EVENTS_MAX, loop_timeout(now));
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		for (i = 0; i < n; i++)
			on_event(ev[i].data.ptr, ev[i].events);
	}
}

/* --- results ------------------------------------------------------------ */

static const char *
deadline_reason(const struct slot *s)
{
	switch (s->state) {
	case C_IDLE:
		return "deadline: never started";
	case C_CONNECTING:
		return "deadline: still connecting";
	case C_HANDSHAKE:
		return "deadline: still in the handshake";
	case C_STREAM:
		return "deadline: still streaming";
	default:
		return "deadline: the target side never ended";
	}
}

static void
print_reasons(void)
{
	size_t i;

	for (i = 0; i < REASONS_MAX && g.reasons[i].why != NULL; i++)
		fprintf(stderr, "s5load: %zu x %s\n", g.reasons[i].n, g.reasons[i].why);
}

static unsigned long long
elapsed_ms(void)
{
	return (unsigned long long)((now_us() - g.t0) / US_PER_MS);
}

static int
report_soak(void)
{
	size_t i;

	for (i = 0; i < g.nslots; i++)
		if (!g.slots[i].judged)
			slot_fail(&g.slots[i], deadline_reason(&g.slots[i]));
	print_reasons();
	printf("s5load: mode=soak conns=%zu ok=%zu failed=%zu refused=%zu cut=%zu "
	    "up_bytes=%llu down_bytes=%llu tgt_open=%zu tgt_bad=%zu tgt_late=%zu ms=%llu",
	    g.nslots, g.ok, g.failed, g.refused, g.cut, (unsigned long long)g.up_bytes,
	    (unsigned long long)g.down_bytes, g.tgt_open, g.tgt_bad, g.tgt_late,
	    elapsed_ms());
	if (g.cut > 0)
		printf(" cut_min_ms=%llu cut_max_ms=%llu", (unsigned long long)g.cut_min,
		    (unsigned long long)g.cut_max);
	printf("\n");
	return g.failed == 0 && g.tgt_open == 0 && g.tgt_bad == 0 && g.accept_err == 0 &&
	    !g.stop ? 0 : EXIT_CHECK;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int
report_stall(void)
{
	unsigned long long lo = 0, mid = 0, hi = 0;
	bool ok = g.closed == g.nslots && !g.stop;

	qsort(g.closed_ms, g.closed, sizeof(*g.closed_ms), cmp_u64);
	if (g.closed > 0) {
		lo = g.closed_ms[0];
		mid = g.closed_ms[g.closed / 2];
		hi = g.closed_ms[g.closed - 1];
	}
	if (g.o.expect_cut && (lo < g.o.cut_lo_ms || hi > g.o.cut_hi_ms))
		ok = false;
	print_reasons();
	printf("s5load: mode=stall conns=%zu closed=%zu open=%zu min_ms=%llu p50_ms=%llu "
	    "max_ms=%llu ms=%llu\n", g.nslots, g.closed, g.nslots - g.closed, lo, mid, hi,
	    elapsed_ms());
	return ok ? 0 : EXIT_CHECK;
}

static int
report_rate(void)
{
	double secs = (double)(now_us() - g.t0) / (double)US_PER_S;
	unsigned long p50 = 0, p99 = 0;

	qsort(g.lat, g.nlat, sizeof(*g.lat), cmp_u32);
	if (g.nlat > 0) {
		p50 = g.lat[g.nlat / 2];
		p99 = g.lat[g.nlat * 99 / 100];
	}
	print_reasons();
	printf("s5load: mode=rate direct=%d workers=%zu rounds=%llu rate=%.0f p50_us=%lu "
	    "p99_us=%lu errors=%llu tgt_bad=%zu ms=%llu\n", g.o.direct, g.nslots,
	    (unsigned long long)g.rounds, secs > 0 ? (double)g.rounds / secs : 0.0, p50, p99,
	    (unsigned long long)g.errors, g.tgt_bad, elapsed_ms());
	return g.errors == 0 && g.rounds > 0 && g.tgt_bad == 0 && !g.stop ? 0 : EXIT_CHECK;
}

/* hold: thousands of closes would leave as many TIME_WAITs on the host,
 * pinning the ports of whatever is measured next (a proxy that binds before
 * it connects cannot reuse them): every socket, client or target end, goes
 * with a reset instead. SO_LINGER on a descriptor that is not a socket just
 * fails. */
static void
hold_reset_all(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct rlimit rl;
	rlim_t fd;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	for (fd = 0; fd < rl.rlim_cur && fd < FD_SCAN_MAX; fd++)
		(void)setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static int
report_hold(void)
{
	hold_reset_all();
	print_reasons();
	printf("s5load: mode=hold direct=%d conns=%zu held=%zu dropped=%zu failed=%zu ms=%llu\n",
	    g.o.direct, g.nslots, g.held, g.dropped, g.judged, elapsed_ms());
	return g.held == g.nslots && g.judged == 0 ? 0 : EXIT_CHECK;
}

static int
report_stream(void)
{
	uint64_t us = g.win_done ? g.win_t1 - g.win_t0 : 0;
	uint64_t bytes = g.win_done ? g.win_b1 - g.win_b0 : 0;
	double mb_s = 0.0;

	if (us > 0)
		mb_s = (double)bytes / BYTES_PER_MB / ((double)us / (double)US_PER_S);
	print_reasons();
	printf("s5load: mode=stream direct=%d conns=%zu streaming=%zu bytes=%llu "
	    "window_ms=%llu mb_s=%.1f failed=%zu ms=%llu\n", g.o.direct, g.nslots,
	    g.streaming, (unsigned long long)bytes,
	    (unsigned long long)(us / US_PER_MS), mb_s, g.judged, elapsed_ms());
	return g.win_done && g.judged == 0 && g.accept_err == 0 && !g.stop ? 0 : EXIT_CHECK;
}

/* --- options ------------------------------------------------------------ */

enum {
	OPT_RAMP = 256, OPT_WINDOW, OPT_PAUSE, OPT_MIX, OPT_HALF, OPT_THALF, OPT_TRESET,
	OPT_VANISH, OPT_TARGET_CLOSES, OPT_CUT_OK, OPT_REFUSED_OK, OPT_EXPECT_CUT, OPT_DIRECT, OPT_SEED,
};

static const struct option longopts[] = {
	{ "ramp", required_argument, NULL, OPT_RAMP },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "pause", required_argument, NULL, OPT_PAUSE },
	{ "mix", no_argument, NULL, OPT_MIX },
	{ "half-close", no_argument, NULL, OPT_HALF },
	{ "target-half-close", required_argument, NULL, OPT_THALF },
	{ "target-reset", required_argument, NULL, OPT_TRESET },
	{ "vanish", no_argument, NULL, OPT_VANISH },
	{ "target-closes", no_argument, NULL, OPT_TARGET_CLOSES },
	{ "cut-ok", no_argument, NULL, OPT_CUT_OK },
	{ "refused-ok", no_argument, NULL, OPT_REFUSED_OK },
	{ "expect-cut", required_argument, NULL, OPT_EXPECT_CUT },
	{ "direct", no_argument, NULL, OPT_DIRECT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ NULL, 0, NULL, 0 },
};

static uint64_t
num(const char *s, uint64_t lo, uint64_t hi, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
		usage("%s must be %llu to %llu, not '%s'", what, (unsigned long long)lo,
		    (unsigned long long)hi, s);
	return v;
}

/* Loopback only: this tool must never send a byte off the host. */
static void
parse_proxy(const char *text)
{
	struct s5_addr a;
	const char *why = NULL;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&g.o.proxy;
	int len;

	if (s5_addr_parse(text, &a, S5_DEFAULT_PORT, &why) < 0 ||
	    (len = s5_addr_to_sockaddr(&a, &g.o.proxy)) < 0)
		usage("-x wants a literal HOST:PORT, not '%s'", text);
	if (!(a.atyp == S5_ATYP_IPV4 && a.u.ip4[0] == 127) &&
	    !(a.atyp == S5_ATYP_IPV6 && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)))
		usage("-x must be a loopback address, not '%s'", text);
	g.o.proxylen = (socklen_t)len;
	g.o.have_proxy = true;
}

static void
parse_cut(const char *text)
{
	char lo[32];
	const char *colon = strchr(text, ':');

	if (colon == NULL || (size_t)(colon - text) >= sizeof(lo))
		usage("--expect-cut wants LO:HI in ms, not '%s'", text);
	memcpy(lo, text, (size_t)(colon - text));
	lo[colon - text] = '\0';
	g.o.cut_lo_ms = num(lo, 0, UINT32_MAX, "--expect-cut LO");
	g.o.cut_hi_ms = num(colon + 1, g.o.cut_lo_ms, UINT32_MAX, "--expect-cut HI");
	g.o.expect_cut = true;
}

static enum mode
parse_mode(const char *m)
{
	static const char *const names[] = { "soak", "stall", "rate", "hold", "stream" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(m, names[i]) == 0)
			return (enum mode)i;
	usage("unknown mode '%s'", m);
}

/* Which variant each connection runs; -1 when the flags contradict. */
static int
parse_variant(void)
{
	int n = g.o.half + (g.o.thalf_at > 0) + (g.o.treset_at > 0) + g.o.vanish;
	uint64_t len = HDR_BYTES + g.o.bytes;

	if (g.o.mix) {
		if (g.o.thalf_at == 0)
			g.o.thalf_at = len / 2;
		if (g.o.treset_at == 0)
			g.o.treset_at = len / 2;
	} else if (n > 1) {
		return -1;
	}
	if ((g.o.thalf_at > 0 && (g.o.thalf_at < HDR_BYTES || g.o.thalf_at >= len)) ||
	    (g.o.treset_at > 0 && (g.o.treset_at < HDR_BYTES || g.o.treset_at >= len)))
		usage("the target's half-close or reset must fall inside the stream (%d to %llu)",
		    HDR_BYTES, (unsigned long long)len - 1);
	return g.o.half ? V_HALF : g.o.thalf_at > 0 ? V_THALF : g.o.treset_at > 0 ? V_TRESET :
	    g.o.vanish ? V_VANISH : V_PLAIN;
}

static void
parse_args(int argc, char **argv)
{
	bool have_bytes = false;
	int c;

	if (argc < 2)
		usage("which mode?");
	g.o.mode = parse_mode(argv[1]);
	g.o.conns = 1;
	g.o.workers = 1;
	g.o.bytes = DEFAULT_BYTES;
	g.o.ramp = DEFAULT_RAMP;
	g.o.deadline_s = DEFAULT_DEADLINE_S;
	g.o.duration_s = 1;
	g.o.greet = 1;
	g.o.seed = DEFAULT_SEED;
	optind = 2;
	while ((c = getopt_long(argc, argv, "x:c:b:w:d:t:g:", longopts, NULL)) != -1) {
		switch (c) {
		case 'x': parse_proxy(optarg); break;
		case 'c': g.o.conns = num(optarg, 1, UINT32_MAX, "-c"); break;
		case 'b': g.o.bytes = num(optarg, 0, UINT64_MAX / 2, "-b"); have_bytes = true; break;
		case 'w': g.o.workers = num(optarg, 1, UINT32_MAX, "-w"); break;
		case 'd': g.o.duration_s = num(optarg, 1, UINT32_MAX, "-d"); break;
		case 't': g.o.deadline_s = num(optarg, 1, UINT32_MAX, "-t"); break;
		case 'g': g.o.greet = num(optarg, 0, GREETING_LEN, "-g"); break;
		case OPT_RAMP: g.o.ramp = num(optarg, 1, UINT32_MAX, "--ramp"); break;
		case OPT_WINDOW: g.o.window = num(optarg, 1, UINT64_MAX / 2, "--window"); break;
		case OPT_PAUSE: g.o.pause_ms = num(optarg, 0, UINT32_MAX, "--pause"); g.o.pause = true; break;
		case OPT_MIX: g.o.mix = true; break;
		case OPT_HALF: g.o.half = true; break;
		case OPT_THALF: g.o.thalf_at = num(optarg, 1, UINT64_MAX / 2, "--target-half-close"); break;
		case OPT_TRESET: g.o.treset_at = num(optarg, 1, UINT64_MAX / 2, "--target-reset"); break;
		case OPT_VANISH: g.o.vanish = true; break;
		case OPT_TARGET_CLOSES: g.o.target_closes = true; break;
		case OPT_CUT_OK: g.o.cut_ok = true; break;
		case OPT_REFUSED_OK: g.o.refused_ok = true; break;
		case OPT_EXPECT_CUT: parse_cut(optarg); break;
		case OPT_DIRECT: g.o.direct = true; break;
		case OPT_SEED: g.o.seed = num(optarg, 0, UINT64_MAX, "--seed"); break;
		default: usage("bad option");
		}
	}
	if (optind != argc)
		usage("unexpected argument '%s'", argv[optind]);
	if (!g.o.have_proxy && !(g.o.direct && g.o.mode != MODE_STALL))
		usage("-x HOST:PORT is needed (--direct is for soak, rate, hold and stream)");
	if (g.o.mode == MODE_RATE && !have_bytes)
		g.o.bytes = RATE_PAYLOAD;
	if (g.o.mode == MODE_HOLD && !have_bytes)
		g.o.bytes = HOLD_PAYLOAD;
	if (g.o.pause && g.o.mode != MODE_SOAK)
		usage("--pause is for soak");
}

/* --- main --------------------------------------------------------------- */

/* ~2 descriptors a connection: take the whole hard limit. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
slots_alloc(int variant)
{
	size_t i;

	g.nslots = g.o.mode == MODE_RATE ? g.o.workers : g.o.conns;
	g.slots = calloc(g.nslots, sizeof(*g.slots));
	g.pauseq = calloc(g.nslots, sizeof(*g.pauseq));
	g.closed_ms = calloc(g.nslots, sizeof(*g.closed_ms));
	if (g.slots == NULL || g.pauseq == NULL || g.closed_ms == NULL)
		fatal("calloc");
	for (i = 0; i < g.nslots; i++) {
		g.slots[i].id = (uint32_t)i;
		g.slots[i].io.fd = -1;
		g.slots[i].len = HDR_BYTES + g.o.bytes;
		g.slots[i].variant = (uint8_t)(g.o.mix ? (int)(i % V_COUNT) : variant);
	}
}

int
main(int argc, char **argv)
{
	int variant;
	size_t i;

	parse_args(argc, argv);
	if ((variant = parse_variant()) < 0)
		usage("give one variant, or --mix");
	raise_nofile();
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	g.ntgts = g.o.mode == MODE_RATE ? RATE_TARGETS : 1;
	for (i = 0; i < g.ntgts; i++)
		listener_open(&g.tgts[i]);
	if (g.o.mode == MODE_STREAM) {
		memset(stream_buf, STREAM_FILL, sizeof(stream_buf));
		sink_start(&g.tgts[0]);
	}
	signals_open();
	slots_alloc(variant);
	g.t0 = now_us();
	g.deadline = g.t0 + g.o.deadline_s * US_PER_S;
	g.rate_end = g.t0 + g.o.duration_s * US_PER_S;
	run();
	pumps_stop();
	sink_stop();
	switch (g.o.mode) {
	case MODE_SOAK:
		return report_soak();
	case MODE_STALL:
		return report_stall();
	case MODE_RATE:
		return report_rate();
	case MODE_STREAM:
		return report_stream();
	default:
		return report_hold();
	}
}
