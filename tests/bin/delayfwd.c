/*
 * delayfwd: a TCP forwarder that adds latency, so that the tests and the
 * benchmark can put a proxy "far away" while staying on loopback.
 *
 *	delayfwd -t HOST:PORT -d MS [-p PORT] [-l ADDR] [-v]
 *
 * Listens on ADDR:PORT (default 127.0.0.1:0; ADDR a numeric IPv4 or IPv6
 * address), prints "delayfwd: listening on ADDR:PORT" on stderr once it
 * does ("[::1]:PORT" for IPv6), and forwards each connection it accepts to
 * HOST:PORT ("127.0.0.1:80" or "[::1]:80", literals only).
 *
 * The connect to HOST is made at once. From then on every chunk read from
 * one side is written to the other MS milliseconds after it was read, in
 * the order read, and a FIN is passed on the same way (as shutdown(SHUT_WR)
 * of the other side): each direction is a delay line, and a round trip
 * through delayfwd costs 2 * MS more. A reset or an error on either side
 * closes both, the other one with a reset of its own. -v logs one line per
 * connection when it ends.
 *
 * One thread: epoll, and a timerfd armed for the earliest chunk due. Chunks
 * are read in time order and all wait the same MS, so one FIFO of them (the
 * timeline) is already sorted by the time each is due. A side with more
 * than DELAYFWD_QUEUE_MAX_BYTES queued toward its peer is not read again
 * until half of that has been written. SIGTERM or SIGINT: every connection
 * is closed and delayfwd exits 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../../shared/socks5.h"
#include "testbin.h"

#define DELAYFWD_DELAY_MAX_MS		600000	/* largest -d accepted */
#define DELAYFWD_READ_BYTES		65536	/* one recv(), one chunk at most */
#define DELAYFWD_QUEUE_MAX_BYTES	(1024 * 1024)	/* per direction, then reading stops */
#define DELAYFWD_ACCEPT_BATCH		64	/* accepts per listener wakeup */
#define DELAYFWD_ACCEPT_PAUSE_MS	1000	/* listener parked this long on EMFILE/ENFILE */
#define DELAYFWD_LOOP_EVENTS		256	/* epoll events taken per wakeup */
#define DELAYFWD_BACKLOG		4096
#define NS_PER_MS			1000000LL
#define NS_PER_S			1000000000LL

enum { SIDE_CLIENT, SIDE_TARGET };

struct side;

/* Bytes read from one side (len 0: its FIN), to be written to the other. */
struct chunk {
	struct chunk *next;		/* in the queue of the side read */
	struct chunk *tprev, *tnext;	/* on the timeline until due */
	struct side *from;
	int64_t due_ns;
	size_t len, off;
	uint8_t data[];
};

struct conn;

struct side {
	struct conn *c;
	int fd;
	uint32_t events;		/* what epoll watches now */
	bool registered;		/* in the epoll set */
	bool eof;			/* its FIN was read: read no more */
	bool shut;			/* a FIN was written to it */
	bool paused;			/* too much queued toward the peer */
	bool blocked;			/* the peer's send buffer was full */
	struct chunk *head, *tail;	/* read here, for the peer */
	size_t queued;			/* bytes in those chunks not yet written */
	uint64_t bytes;			/* read here in all */
};

struct conn {
	struct side side[2];
	struct conn *prev, *next;	/* every open connection, for exit */
	bool connected;			/* the target accepted */
	bool dead;			/* closed; freed after this wakeup's events */
	uint64_t id;
	int64_t start_ns;
	char client[S5_ADDR_TEXT_MAX];
};

/* Set once in main(); read-only afterwards. */
static struct {
	struct sockaddr_storage target;
	socklen_t target_len;
	int64_t delay_ns;
	bool verbose;
} cfg;

static int epfd;
static int listen_fd;
static int timer_fd;
static int signal_fd;
static bool listen_paused;
static int64_t listen_resume_ns;
static int64_t timer_armed_ns;		/* 0: disarmed */
static struct chunk *timeline_head, *timeline_tail;
static struct conn *conns;
static struct conn *graveyard;		/* closed in this wakeup, next linked */
static uint64_t next_id;
static uint8_t read_buf[DELAYFWD_READ_BYTES];

/* Tags for the epoll entries that are not a connection's side. */
static char tag_listen, tag_timer, tag_signal;

_Noreturn static void
usage(void)
{
	fprintf(stderr, "usage: delayfwd -t HOST:PORT -d MS [-p PORT] [-l ADDR] [-v]\n");
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* --- the timeline ------------------------------------------------------- */

static void
timeline_append(struct chunk *ch)
{
	ch->tnext = NULL;
	ch->tprev = timeline_tail;
	if (timeline_tail != NULL)
		timeline_tail->tnext = ch;
	else
		timeline_head = ch;
	timeline_tail = ch;
}

static void
timeline_unlink(struct chunk *ch)
{
	if (ch->tprev != NULL)
		ch->tprev->tnext = ch->tnext;
	else if (timeline_head == ch)
		timeline_head = ch->tnext;
	else
		return;			/* not on it */
	if (ch->tnext != NULL)
		ch->tnext->tprev = ch->tprev;
	else
		timeline_tail = ch->tprev;
	ch->tprev = ch->tnext = NULL;
}

/* Arms the timer for the earliest of the next chunk due and the listener's
 * return; an absolute time, so a late wakeup does not add up. */
static void
timer_arm(void)
{
	struct itimerspec its;
	int64_t at = 0;

	if (timeline_head != NULL)
		at = timeline_head->due_ns;
	if (listen_paused && (at == 0 || listen_resume_ns < at))
		at = listen_resume_ns;
	if (at == timer_armed_ns)
		return;
	memset(&its, 0, sizeof(its));
	if (at > 0) {
		its.it_value.tv_sec = at / NS_PER_S;
		its.it_value.tv_nsec = at % NS_PER_S;
	}
	if (timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		fatal("timerfd_settime:");
	timer_armed_ns = at;
}

/* --- connections -------------------------------------------------------- */

static struct side *
side_peer(struct side *s)
{
	return &s->c->side[s == &s->c->side[SIDE_CLIENT] ? SIDE_TARGET : SIDE_CLIENT];
}

/* Brings the epoll entry of s in line with what it waits for. An fd that
 * waits for nothing leaves the set: a hung-up socket would otherwise report
 * EPOLLHUP on every wakeup, asked for or not. */
static int
side_watch(struct side *s)
{
	struct conn *c = s->c;
	struct epoll_event ev;
	uint32_t want = 0;
	int op;

	if (s->queued > DELAYFWD_QUEUE_MAX_BYTES)
		s->paused = true;
	else if (s->queued <= DELAYFWD_QUEUE_MAX_BYTES / 2)
		s->paused = false;
	if (s == &c->side[SIDE_TARGET] && !c->connected) {
		want = EPOLLOUT;	/* the connect's outcome */
	} else {
		if (!s->eof && !s->paused)
			want |= EPOLLIN;
		if (side_peer(s)->blocked)
			want |= EPOLLOUT;
	}
	if (s->registered ? want == s->events : want == 0)
		return 0;
	if (want == 0) {
		op = EPOLL_CTL_DEL;
	} else {
		op = s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = s;
	if (epoll_ctl(epfd, op, s->fd, &ev) < 0)
		return -errno;
	s->registered = want != 0;
	s->events = want;
	return 0;
}

static void
conn_log(struct conn *c, const char *outcome, int err)
{
	char line[512];
	int n;

	if (!cfg.verbose)
		return;
	/* One write() per line, as the servers log. */
	n = snprintf(line, sizeof(line),
	    "delayfwd: conn %llu client=%s up=%llu down=%llu ms=%lld %s%s%s\n",
	    (unsigned long long)c->id, c->client,
	    (unsigned long long)c->side[SIDE_CLIENT].bytes,
	    (unsigned long long)c->side[SIDE_TARGET].bytes,
	    (long long)((now_ns() - c->start_ns) / NS_PER_MS), outcome,
	    err != 0 ? ": " : "", err != 0 ? strerror(err) : "");
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/*
 * Ends c: err 0 after both FINs went through, else both sides are reset.
 * c itself is freed only after the events of this wakeup are taken: one
 * of them may be for its other side.
 */
static void
conn_close(struct conn *c, int err, const char *why)
{
	struct chunk *ch;
	int i;

	conn_log(c, err == 0 ? "closed" : why, err);
	for (i = 0; i < 2; i++) {
		struct side *s = &c->side[i];

		while ((ch = s->head) != NULL) {
			s->head = ch->next;
			timeline_unlink(ch);
			free(ch);
		}
		s->tail = NULL;
		/* close() drops the fd from the epoll set. */
		if (err != 0)
			fd_reset(s->fd);
		else
			close(s->fd);
		s->fd = -1;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->dead = true;
	c->next = graveyard;
	graveyard = c;
}

/*
 * Writes the chunks read on s that are due by now to its peer, in order.
 * Returns 0, or -1 when c was closed (the caller must not touch it then).
 */
static int
side_flush(struct side *s, int64_t now)
{
	struct conn *c = s->c;
	struct side *p = side_peer(s);
	struct chunk *ch;
	ssize_t w;
	int r;

	if (!c->connected)
		return 0;
	s->blocked = false;
	while ((ch = s->head) != NULL && ch->due_ns <= now) {
		if (ch->len == 0) {
			/* The FIN: the peer's reading side sees EOF. */
			if (shutdown(p->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
				conn_close(c, errno, "shutdown failed");
				return -1;
			}
			p->shut = true;
		} else {
			w = send(p->fd, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				s->blocked = true;
				break;
			}
			if (w < 0) {
				conn_close(c, errno, s == &c->side[SIDE_CLIENT] ?
				    "write to target failed" : "write to client failed");
				return -1;
			}
			ch->off += (size_t)w;
			s->queued -= (size_t)w;
			if (ch->off < ch->len)
				continue;
		}
		s->head = ch->next;
		if (s->head == NULL)
			s->tail = NULL;
		timeline_unlink(ch);
		free(ch);
	}
	if (c->side[SIDE_CLIENT].shut && c->side[SIDE_TARGET].shut) {
		conn_close(c, 0, NULL);
		return -1;
	}
	if ((r = side_watch(s)) < 0 || (r = side_watch(p)) < 0) {
		conn_close(c, -r, "epoll_ctl failed");
		return -1;
	}
	return 0;
}

/* One recv() on s; what it read (or its FIN) goes on s's queue and on the
 * timeline. Returns 0, or -1 when c was closed. */
static int
side_read(struct side *s, int64_t now)
{
	struct conn *c = s->c;
	struct chunk *ch;
	ssize_t n;
	int r;

	do
		n = recv(s->fd, read_buf, sizeof(read_buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0) {
		conn_close(c, errno, s == &c->side[SIDE_CLIENT] ?
		    "read from client failed" : "read from target failed");
		return -1;
	}
	ch = malloc(sizeof(*ch) + (size_t)n);
	if (ch == NULL) {
		conn_close(c, ENOMEM, "no memory");
		return -1;
	}
	memcpy(ch->data, read_buf, (size_t)n);
	ch->next = NULL;
	ch->from = s;
	ch->due_ns = now + cfg.delay_ns;
	ch->len = (size_t)n;
	ch->off = 0;
	if (s->tail != NULL)
		s->tail->next = ch;
	else
		s->head = ch;
	s->tail = ch;
	timeline_append(ch);
	s->queued += (size_t)n;
	s->bytes += (size_t)n;
	if (n == 0)
		s->eof = true;
	/* With no delay, the chunk is due already. */
	if (ch->due_ns <= now)
		return side_flush(s, now);
	if ((r = side_watch(s)) < 0) {
		conn_close(c, -r, "epoll_ctl failed");
		return -1;
	}
	return 0;
}

/* The target's connect() has an outcome. */
static void
conn_connected(struct conn *c, int64_t now)
{
	struct side *t = &c->side[SIDE_TARGET];
	socklen_t len = sizeof(int);
	int err = 0, r;

	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		conn_close(c, err, "connect to target failed");
		return;
	}
	c->connected = true;
	if ((r = side_watch(t)) < 0) {
		conn_close(c, -r, "epoll_ctl failed");
		return;
	}
	/* What the client sent meanwhile may be due already. */
	(void)side_flush(&c->side[SIDE_CLIENT], now);
}

static void
side_event(struct side *s, uint32_t ev, int64_t now)
{
	struct conn *c = s->c;
	socklen_t len = sizeof(int);
	int err = 0;

	if (c->dead)
		return;
	if (s == &c->side[SIDE_TARGET] && !c->connected) {
		conn_connected(c, now);
		return;
	}
	if (ev & EPOLLERR) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
			err = ECONNRESET;
		conn_close(c, err, s == &c->side[SIDE_CLIENT] ?
		    "client failed" : "target failed");
		return;
	}
	/* EPOLLHUP alone: the FIN is there to read. */
	if ((ev & (EPOLLIN | EPOLLHUP)) && (s->events & EPOLLIN) && side_read(s, now) < 0)
		return;
	/* A hung-up peer is "writable": the send() then tells what is wrong. */
	if ((ev & (EPOLLOUT | EPOLLHUP)) && side_peer(s)->blocked)
		(void)side_flush(side_peer(s), now);
}

static void
conn_open(int cfd, const struct sockaddr_storage *from, int64_t now)
{
	struct conn *c;
	int one = 1, tfd, r;

	tfd = socket(cfg.target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (tfd < 0) {
		fprintf(stderr, "delayfwd: socket: %s\n", strerror(errno));
		fd_reset(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(tfd);
		fd_reset(cfd);
		return;
	}
	c->id = ++next_id;
	c->start_ns = now;
	if (cfg.verbose && s5_sockaddr_format((const struct sockaddr *)from, c->client,
	    sizeof(c->client)) < 0)
		snprintf(c->client, sizeof(c->client), "?");
	c->side[SIDE_CLIENT].c = c;
	c->side[SIDE_CLIENT].fd = cfd;
	c->side[SIDE_TARGET].c = c;
	c->side[SIDE_TARGET].fd = tfd;
	c->next = conns;
	if (conns != NULL)
		conns->prev = c;
	conns = c;
	/* Nagle would hold back the small chunks that come due one by one and
	 * add its own delay (up to a delayed ACK's 40 ms) to ours. */
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A non-blocking connect() that EINTR interrupts goes on all the
	 * same, and is not to be called again: EPOLLOUT tells its outcome. */
	r = connect(tfd, (const struct sockaddr *)&cfg.target, cfg.target_len);
	if (r < 0 && errno != EINPROGRESS && errno != EINTR) {
		conn_close(c, errno, "connect to target failed");
		return;
	}
	c->connected = r == 0;
	if ((r = side_watch(&c->side[SIDE_CLIENT])) < 0 ||
	    (r = side_watch(&c->side[SIDE_TARGET])) < 0)
		conn_close(c, -r, "epoll_ctl failed");
}

static void
listen_watch(bool on)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_listen;
	if (epoll_ctl(epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listen_fd, &ev) < 0)
		fatal("epoll_ctl listener:");
	listen_paused = !on;
}

static void
listen_accept(int64_t now)
{
	struct sockaddr_storage from;
	socklen_t len;
	int i, fd;

	for (i = 0; i < DELAYFWD_ACCEPT_BATCH; i++) {
		len = sizeof(from);
		fd = accept4(listen_fd, (struct sockaddr *)&from, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_open(fd, &from, now);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors is a state: park the listener
			 * rather than spin on a backlog it cannot take. */
			fprintf(stderr, "delayfwd: accept: %s; not accepting for %d ms\n",
			    strerror(errno), DELAYFWD_ACCEPT_PAUSE_MS);
			listen_watch(false);
			listen_resume_ns = now + DELAYFWD_ACCEPT_PAUSE_MS * NS_PER_MS;
			return;
		}
		fatal("accept:");
	}
}

/* --- start-up ----------------------------------------------------------- */

/* A literal address into a sockaddr, its port default_port unless the text
 * names one (0 is refused when need_port); domains are refused. */
static socklen_t
addr_literal(const char *text, uint16_t default_port, bool need_port,
    struct sockaddr_storage *ss)
{
	struct s5_addr a;
	const char *why = "not a numeric IPv4 or IPv6 address";
	int len;

	if (s5_addr_parse(text, &a, default_port, &why) < 0 ||
	    (len = s5_addr_to_sockaddr(&a, ss)) < 0)
		fatal("%s: %s", text, why);
	if (need_port && a.port == 0)
		fatal("%s: a port is needed", text);
	return (socklen_t)len;
}

static int
listen_open(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = addr_literal(addr, port, false, &ss);
	char text[S5_ADDR_TEXT_MAX];
	int one = 1, fd;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket:");
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		fatal("bind %s:", addr);
	if (listen(fd, DELAYFWD_BACKLOG) < 0)
		fatal("listen:");
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		fatal("getsockname:");
	if (s5_sockaddr_format((struct sockaddr *)&ss, text, sizeof(text)) < 0)
		fatal("cannot format the listening address");
	fprintf(stderr, "delayfwd: listening on %s\n", text);
	return fd;
}

static void
epoll_add(int fd, void *tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		fatal("epoll_ctl:");
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[DELAYFWD_LOOP_EVENTS];
	const char *target = NULL, *laddr = "127.0.0.1";
	long delay_ms = -1, port = 0;
	struct rlimit rl;
	sigset_t sigs;
	struct conn *c;
	uint64_t ticks;
	int64_t now;
	int opt, n, i;

	while ((opt = getopt(argc, argv, "t:d:p:l:v")) != -1) {
		switch (opt) {
		case 't': target = optarg; break;
		case 'd': delay_ms = num_arg(optarg, 0, DELAYFWD_DELAY_MAX_MS); break;
		case 'p': port = num_arg(optarg, 0, 65535); break;
		case 'l': laddr = optarg; break;
		case 'v': cfg.verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc || target == NULL || delay_ms < 0)
		usage();
	cfg.target_len = addr_literal(target, 0, true, &cfg.target);
	cfg.delay_ns = delay_ms * NS_PER_MS;

	/* Two descriptors a connection: take what the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM and SIGINT arrive as events of the loop, never as EINTR. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
		fatal("sigprocmask:");
	if ((signal_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("signalfd:");
	if ((timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0)
		fatal("timerfd_create:");
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fatal("epoll_create1:");
	epoll_add(signal_fd, &tag_signal);
	epoll_add(timer_fd, &tag_timer);
	setvbuf(stderr, NULL, _IOLBF, 0);
	listen_fd = listen_open(laddr, (uint16_t)port);
	listen_watch(true);

	for (;;) {
		timer_arm();
		n = epoll_wait(epfd, evs, DELAYFWD_LOOP_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("epoll_wait:");
		now = now_ns();
		for (i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;

			if (tag == &tag_signal)
				goto out;
			if (tag == &tag_timer) {
				(void)!read(timer_fd, &ticks, sizeof(ticks));
				timer_armed_ns = 0;
			} else if (tag == &tag_listen) {
				listen_accept(now);
			} else {
				side_event(tag, evs[i].events, now);
			}
		}
		while (timeline_head != NULL && timeline_head->due_ns <= now) {
			struct chunk *ch = timeline_head;

			timeline_unlink(ch);
			(void)side_flush(ch->from, now);
		}
		if (listen_paused && now >= listen_resume_ns)
			listen_watch(true);
		while ((c = graveyard) != NULL) {
			graveyard = c->next;
			free(c);
		}
	}
out:
	while (conns != NULL)
		conn_close(conns, ECANCELED, "delayfwd stopped");
	while ((c = graveyard) != NULL) {
		graveyard = c->next;
		free(c);
	}
	close(listen_fd);
	close(timer_fd);
	close(signal_fd);
	close(epfd);
	return 0;
}
