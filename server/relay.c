/*
 * relay.c: a read()/send() copy relay, or a splice(2) one, or (--relay
 * auto) copies for short messages and splice for a stream in flow, with
 * back-pressure and half-close. Every socket is non-blocking and epoll is
 * level triggered: a short write just waits for EPOLLOUT, and a direction
 * reads again in the same wakeup only while it moves whole buffers (at
 * most SERVER_RELAY_ROUNDS of 64 KiB).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "defaults.h"
#include "relay.h"

/*
 * Kernel pipes open at once, in every worker, and how many may be: only
 * descriptors no session can ever need, so a pipe never takes the socket
 * a session's target is owed (relay_set_pipes_max).
 */
static long relay_pipes_open;
static long relay_pipes_max;

/*
 * Pipes grown for a stream in flow. A pipe's default 64 KiB (with 4 KiB
 * pages) makes one stream cost a splice() each way per 64 KiB, and each
 * of those a wakeup or two. 256 KiB cut socksifyd's CPU per byte by about
 * a third and lifted one stream from about 48% of a direct connection to
 * about 60%; 1 MiB (the most /proc/sys/fs/pipe-max-size lets a user ask
 * for by default) then cut it by a further 40% for one stream and 13% for
 * 8, with one stream 23% and 8 streams 6% faster (two CPUs, side by side,
 * four alternating runs a size; 512 KiB came about half way). A pipe grows
 * once a read filled it (all but an eighth: see relay_pipe_fill(); a
 * stream paced below that never pays the fcntl()), to
 * SERVER_SPLICE_BIG_BYTES or pipe-max-size if that is less, while
 *  - fewer than SERVER_SPLICE_BIG_PIPES are grown: what they can pin;
 *  - all our pipes stay within half of the user's pipe pages
 *    (fs.pipe-user-pages-soft, 16384 by default: a user past it gets
 *    pipes of a page or two, which --relay auto then copies around);
 *  - a page is small enough that the default pipe is smaller (16 pages;
 *    with 64 KiB pages it is 1 MiB already).
 */
static long relay_big_open;

/*
 * Empty kernel pipes a worker keeps for its next stream (its thread's
 * own: no lock). A stream's pipe goes each time a read finds the socket
 * empty, and one of make bench's streams paid that about every fourth
 * splice: pipe2(), F_GETPIPE_SZ, F_SETPIPE_SZ and two close()s, five calls
 * and a new pipe inode to move a few hundred KiB. A pipe freed empty (the
 * kernel says so, FIONREAD: no byte of one session can reach another)
 * waits here, at its size, for the next spliced read of any session of
 * the worker; at most SERVER_SPLICE_CACHE_PIPES, and only while at most
 * half the pipe budget is open and, for a grown one, half the grown
 * pipes' (SERVER_SPLICE_BIG_PIPES): past either, the worker gives back
 * what it keeps. Closed too when the worker's last session ends (an idle
 * worker holds no pipe) and when it takes a new configuration (a reload
 * may have shrunk the budget).
 */
static __thread struct relay_cached {
	int kpipe[2];
	size_t kcap;
} relay_cache[SERVER_SPLICE_CACHE_PIPES];
static __thread int relay_ncached;

static long relay_pages_soft;		/* fs.pipe-user-pages-soft; 0: none */
static long relay_page_bytes;		/* 0 until relay_set_pipes_max() */
static long relay_grow_bytes;		/* what a pipe grows to (above) */
enum { RELAY_PIPE_DEF_PAGES = 16 };	/* the kernel's PIPE_DEF_BUFFERS */

/* A number from a /proc/sys file, or fallback. */
static long
relay_sysctl(const char *path, long fallback)
{
	char text[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return fallback;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return fallback;
	text[n] = '\0';
	return strtol(text, NULL, 10);
}

void
relay_set_pipes_max(long n)
{
	long page = sysconf(_SC_PAGESIZE);
	long grow = relay_sysctl("/proc/sys/fs/pipe-max-size", SERVER_SPLICE_BIG_BYTES);

	__atomic_store_n(&relay_pages_soft,
	    relay_sysctl("/proc/sys/fs/pipe-user-pages-soft", 16384), __ATOMIC_RELAXED);
	__atomic_store_n(&relay_page_bytes, page > 0 ? page : 4096, __ATOMIC_RELAXED);
	__atomic_store_n(&relay_grow_bytes, grow < SERVER_SPLICE_BIG_BYTES ? grow :
	    SERVER_SPLICE_BIG_BYTES, __ATOMIC_RELAXED);
	__atomic_store_n(&relay_pipes_max, n < 0 ? 0 : n, __ATOMIC_RELAXED);
}

long
relay_big_pipes(void)
{
	return __atomic_load_n(&relay_big_open, __ATOMIC_RELAXED);
}

bool
relay_pipe_grown(const struct relay_pipe *p)
{
	return p->spliced && p->kcap > SERVER_SPLICE_BYTES;
}

int
relay_pipe_alloc(struct relay_pipe *p)
{
	if (p->buf == NULL && (p->buf = malloc(SERVER_RELAY_BUF_BYTES)) == NULL)
		return -ENOMEM;
	return 0;
}

/* A kernel pipe, its size, its place in the budget and among the grown. */
static void
relay_kpipe_close(const int kpipe[2], size_t kcap)
{
	if (kcap > SERVER_SPLICE_BYTES)
		__atomic_sub_fetch(&relay_big_open, 1, __ATOMIC_RELAXED);
	close(kpipe[0]);
	close(kpipe[1]);
	__atomic_sub_fetch(&relay_pipes_open, 1, __ATOMIC_RELAXED);
}

int
relay_cache_count(void)
{
	return relay_ncached;
}

void
relay_cache_close(void)
{
	while (relay_ncached > 0) {
		relay_ncached--;
		relay_kpipe_close(relay_cache[relay_ncached].kpipe, relay_cache[relay_ncached].kcap);
	}
}

/* Keeps p's kernel pipe for the next fill (relay_cache): true when taken. */
static bool
relay_cache_put(const struct relay_pipe *p)
{
	int left;

	/* The budgets running short: what this worker keeps goes back. */
	if (__atomic_load_n(&relay_pipes_open, __ATOMIC_RELAXED) >
	    __atomic_load_n(&relay_pipes_max, __ATOMIC_RELAXED) / 2 ||
	    (relay_pipe_grown(p) &&
	    __atomic_load_n(&relay_big_open, __ATOMIC_RELAXED) > SERVER_SPLICE_BIG_PIPES / 2)) {
		relay_cache_close();
		return false;
	}
	if (relay_ncached >= SERVER_SPLICE_CACHE_PIPES || relay_pending(p) != 0 ||
	    p->small_pipes || ioctl(p->kpipe[0], FIONREAD, &left) != 0 || left != 0)
		return false;
	relay_cache[relay_ncached].kpipe[0] = p->kpipe[0];
	relay_cache[relay_ncached].kpipe[1] = p->kpipe[1];
	relay_cache[relay_ncached].kcap = p->kcap;
	relay_ncached++;
	return true;
}

void
relay_pipe_free(struct relay_pipe *p)
{
	free(p->buf);
	p->buf = NULL;
	if (p->spliced) {
		if (!relay_cache_put(p))
			relay_kpipe_close(p->kpipe, p->kcap);
		p->kpipe[0] = p->kpipe[1] = -1;
		p->spliced = p->grow_tried = false;
	}
	p->off = p->len = 0;
}

/* Grows p's kernel pipe for a stream in flow, once, if the budget allows
 * (relay_big_open). */
static void
relay_kpipe_grow(struct relay_pipe *p)
{
	long page = __atomic_load_n(&relay_page_bytes, __ATOMIC_RELAXED);
	long soft = __atomic_load_n(&relay_pages_soft, __ATOMIC_RELAXED);
	long open = __atomic_load_n(&relay_pipes_open, __ATOMIC_RELAXED);
	long bytes = __atomic_load_n(&relay_grow_bytes, __ATOMIC_RELAXED);
	long big, big_pages;
	int n;

	p->grow_tried = true;
	if (page == 0 || RELAY_PIPE_DEF_PAGES * page >= bytes)
		return;
	big_pages = bytes / page;
	big = __atomic_add_fetch(&relay_big_open, 1, __ATOMIC_RELAXED);
	if (big > SERVER_SPLICE_BIG_PIPES || (soft > 0 &&
	    open * RELAY_PIPE_DEF_PAGES + big * (big_pages - RELAY_PIPE_DEF_PAGES) > soft / 2))
		goto refused;
	/* EPERM past the user's pipe pages (or /proc/sys/fs/pipe-max-size). */
	n = fcntl(p->kpipe[0], F_SETPIPE_SZ, (int)bytes);
	if (n < bytes)
		goto refused;
	p->kcap = (size_t)n;
	return;
refused:
	__atomic_sub_fetch(&relay_big_open, 1, __ATOMIC_RELAXED);
}

/*
 * p's kernel pipe, for splice(2): 0, or -EMFILE when the pipe budget is
 * spent or the system has none to give (the caller then copies).
 */
static int
relay_kpipe_open(struct relay_pipe *p)
{
	/* Kept pipes count in the budget already; one that has shrunk
	 * below them (a reload) closes them. */
	if (relay_ncached > 0 && __atomic_load_n(&relay_pipes_open, __ATOMIC_RELAXED) >
	    __atomic_load_n(&relay_pipes_max, __ATOMIC_RELAXED))
		relay_cache_close();
	if (relay_ncached > 0) {
		relay_ncached--;
		p->kpipe[0] = relay_cache[relay_ncached].kpipe[0];
		p->kpipe[1] = relay_cache[relay_ncached].kpipe[1];
		p->kcap = relay_cache[relay_ncached].kcap;
		p->spliced = true;
		/* A grown one stays grown; a default one may grow later. */
		p->grow_tried = p->kcap > SERVER_SPLICE_BYTES;
		return 0;
	}
	if (__atomic_add_fetch(&relay_pipes_open, 1, __ATOMIC_RELAXED) >
	    __atomic_load_n(&relay_pipes_max, __ATOMIC_RELAXED) ||
	    pipe2(p->kpipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		__atomic_sub_fetch(&relay_pipes_open, 1, __ATOMIC_RELAXED);
		return -EMFILE;
	}
	p->spliced = true;
	p->kcap = SERVER_SPLICE_BYTES;
	/* A user past fs.pipe-user-pages-soft gets pipes of a page or two,
	 * which move less a call than our buffer: --relay auto then copies
	 * in this direction for the rest of the session. */
	if (fcntl(p->kpipe[0], F_GETPIPE_SZ) < SERVER_SPLICE_BYTES)
		p->small_pipes = true;
	return 0;
}

/*
 * The last read moved a stream in flow: it filled our buffer, or a good
 * part of the kernel pipe (a splice takes at most one socket buffer a pipe
 * slot, and from a network card those hold 1.5-4 KiB, not a page).
 */
static bool
relay_in_flow(const struct relay_pipe *p, size_t n)
{
	return p->spliced ? n >= SERVER_SPLICE_BYTES / 4 : p->len == SERVER_RELAY_BUF_BYTES;
}

/* Some bytes from fd into p: into the kernel pipe, or our buffer. */
static ssize_t
relay_in(struct relay_pipe *p, int fd)
{
	if (p->spliced)
		return splice(fd, NULL, p->kpipe[1], NULL, p->kcap,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	return read(fd, p->buf + p->len, SERVER_RELAY_BUF_BYTES - p->len);
}

int
relay_pipe_put(struct relay_pipe *p, const void *data, size_t n)
{
	int r;

	if ((r = relay_pipe_alloc(p)) < 0)
		return r;
	if (n > SERVER_RELAY_BUF_BYTES - p->len)
		return -ENOBUFS;
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	return 0;
}

long
relay_pipe_fill(struct relay_pipe *p, int fd, bool splice)
{
	ssize_t n;
	int r;

	/* A pipe that holds nothing can move to the kernel (and back). */
	if (!p->spliced && !(splice && p->buf == NULL && relay_kpipe_open(p) == 0)) {
		if ((r = relay_pipe_alloc(p)) < 0)
			return r;
		if (p->len == SERVER_RELAY_BUF_BYTES)
			return -ENOBUFS;
	}
	/* The last read filled the pipe, or our buffer: a bigger pipe. */
	if (p->spliced && p->full && !p->grow_tried && !p->small_pipes)
		relay_kpipe_grow(p);
	do {
		n = relay_in(p, fd);
	} while (n == -1 && errno == EINTR);
	if (n == -1) {
		r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		/* Do not hold a buffer for a side that had nothing to say, nor
		 * take what comes next for a stream. */
		if (p->len == 0) {
			relay_pipe_free(p);
			p->bulk = p->full = false;
		}
		return r;
	}
	if (n == 0 && p->len == 0)
		relay_pipe_free(p);
	p->len += (size_t)n;
	p->bulk = n > 0 && relay_in_flow(p, (size_t)n);
	/* Filled: a pipe's slots hold a page each at most, and a sender
	 * using sendfile(2) fills 16 of them with 15 pages (61440 bytes):
	 * all but an eighth counts. */
	p->full = n > 0 && (p->spliced ? (size_t)n >= p->kcap - p->kcap / 8 :
	    p->len == SERVER_RELAY_BUF_BYTES);
	return (long)n;
}

/* Some of p's pending bytes into fd: from our buffer, or the kernel pipe. */
static ssize_t
relay_out(struct relay_pipe *p, int fd)
{
	if (p->spliced)
		return splice(p->kpipe[0], NULL, fd, NULL, relay_pending(p),
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	/* MSG_NOSIGNAL: a peer gone away is EPIPE here, not SIGPIPE. */
	return send(fd, p->buf + p->off, relay_pending(p), MSG_NOSIGNAL);
}

int
relay_pipe_flush(struct relay_pipe *p, int fd)
{
	bool bulk = p->spliced && p->bulk;

	while (relay_pending(p) > 0) {
		ssize_t n = relay_out(p, fd);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		p->off += (size_t)n;
		p->bytes += (uint64_t)n;
	}
	/*
	 * A stream in flow (relay_in_flow()): the pipe stays for the next
	 * read, which closes it if it finds nothing (relay_pipe_fill()).
	 * Anything less: the peer had its say; nothing is held while it idles.
	 */
	if (bulk) {
		p->off = p->len = 0;
		return 0;
	}
	relay_pipe_free(p);
	return 0;
}

/* Bytes wait in src's receive queue (a FIN alone does not count). */
static bool
relay_source_waiting(int src)
{
	int n;

	return ioctl(src, SIOCINQ, &n) == 0 && n > 0;
}

/*
 * One direction: flush what is pending, read more when empty and the
 * source is readable, pass on FIN. other is the opposite direction: when
 * it is done as well, the session closes both sockets at once, and close()
 * sends this FIN without a shutdown() of ours.
 */
static int
relay_direction(struct relay_pipe *p, const struct relay_pipe *other,
    int src, int dst, bool splice, bool bulk_only, bool readable, bool *moved)
{
	int r, rounds;
	bool full;

	if (relay_pending(p) > 0) {
		uint64_t before = p->bytes;

		full = p->bulk;
		r = relay_pipe_flush(p, dst);
		*moved |= p->bytes != before;
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		/* A stream in flow drained: more is likely waiting. */
		readable |= full;
	}
	/*
	 * A read of a stream in flow (relay_in_flow()) that drains at once:
	 * read again now rather than one epoll round later, up to
	 * SERVER_RELAY_ROUNDS reads of 64 KiB a wakeup (a grown pipe's read
	 * counts for the 64 KiB reads it stands for, so one read of a pipe
	 * grown to 1 MiB is a wakeup's share: a direction moves at most 1 MiB
	 * a wakeup, some 0.2-0.3 ms of socksifyd's CPU here) so other
	 * sessions get their turn (one wait saved per 64 KiB read: a tenth
	 * of a stream's calls).
	 */
	for (rounds = 0; !p->eof && readable && rounds < SERVER_RELAY_ROUNDS;) {
		/*
		 * --relay auto: a kernel pipe costs a pipe2() and two close()s
		 * when it comes and goes, more than the copy of a small
		 * message; a stream in flow (a read that filled the buffer)
		 * saves two copies of every 64 KiB with it. Measured by make
		 * bench: auto handshakes as copy does, streams as splice does.
		 */
		long n = relay_pipe_fill(p, src, splice &&
		    (!bulk_only || (p->bulk && !p->small_pipes)));

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0) {
			p->eof = true;
			break;
		}
		*moved = true;
		rounds += (int)(((size_t)n + SERVER_RELAY_BUF_BYTES - 1) / SERVER_RELAY_BUF_BYTES);
		full = p->bulk;
		r = relay_pipe_flush(p, dst);
		if (r == -EAGAIN)
			break;
		if (r < 0)
			return r;
		readable = full;
	}
	/* Out of rounds with an empty pipe kept for the stream: a source that
	 * went quiet exactly now would leave it held while the session idles,
	 * so it goes back to the worker (or is closed) unless the source has
	 * more waiting (SIOCINQ), which wakes us for the next read at once. */
	if (rounds >= SERVER_RELAY_ROUNDS && p->spliced && relay_pending(p) == 0 &&
	    !relay_source_waiting(src))
		relay_pipe_free(p);
	if (p->eof && relay_pending(p) == 0 && !p->shut) {
		/*
		 * Half-close: the source will send no more, so tell the sink,
		 * and keep relaying the other way. ENOTCONN only means the
		 * sink is gone already; its own direction will report that.
		 */
		if (!other->shut)
			(void)shutdown(dst, SHUT_WR);
		p->shut = true;
		p->first = !other->eof;
	}
	return 0;
}

int
relay_step(struct relay *r, int readable, bool *moved)
{
	int e;

	*moved = false;
	if ((e = relay_direction(&r->up, &r->down, r->cfd, r->tfd, r->splice,
	    r->splice_bulk, readable & RELAY_READ_CLIENT, moved)) < 0)
		return e;
	if ((e = relay_direction(&r->down, &r->up, r->tfd, r->cfd, r->splice,
	    r->splice_bulk, readable & RELAY_READ_TARGET, moved)) < 0)
		return e;
	return r->up.shut && r->down.shut ? 1 : 0;
}

void
relay_abort(struct relay *r)
{
	struct linger now = { .l_onoff = 1, .l_linger = 0 };

	if (r->cfd >= 0)
		(void)setsockopt(r->cfd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
	if (r->tfd >= 0)
		(void)setsockopt(r->tfd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
}

void
relay_close_target(struct relay *r)
{
	struct linger now = { .l_onoff = 1, .l_linger = 0 };
	int unacked;

	/*
	 * The side that sends the first FIN keeps the connection in TIME_WAIT
	 * for a minute, and an outgoing one pins its ephemeral port meanwhile:
	 * a relay whose clients close first would run out of ports at a few
	 * hundred connections a second. Both FINs are through and nothing is
	 * unacknowledged, so the reset that a zero linger sends loses nothing.
	 */
	if (r->up.shut && r->up.first && r->down.eof &&
	    ioctl(r->tfd, SIOCOUTQ, &unacked) == 0 && unacked == 0)
		(void)setsockopt(r->tfd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
	close(r->tfd);
	r->tfd = -1;
}

void
relay_masks(const struct relay *r, uint32_t *cmask, uint32_t *tmask)
{
	*cmask = *tmask = 0;
	/* RDHUP as in the handshake (session.c): the mask need not change. */
	if (!r->up.eof && relay_pending(&r->up) == 0)
		*cmask |= EPOLLIN | EPOLLRDHUP;
	if (relay_pending(&r->down) > 0)
		*cmask |= EPOLLOUT;
	if (!r->down.eof && relay_pending(&r->down) == 0)
		*tmask |= EPOLLIN;
	if (relay_pending(&r->up) > 0)
		*tmask |= EPOLLOUT;
}
