/*
 * async.c: the engine. A connect() through the tunnel never makes the
 * program wait on the proxy unless it asked to wait.
 *
 * Today's peers run the whole chain handshake inside connect(), so an event
 * loop opens its connections one at a time and a stalled proxy freezes every
 * timer of the program. Here connect() only starts the TCP connect to the
 * first hop on the program's own socket and hands the socket to the engine:
 *
 *   connect()          the calling thread, under the lock: hides the
 *                      socket's epoll registrations (gate.c), dials the
 *                      first hop without waiting, marks the socket PENDING
 *                      and gives the engine a copy of the descriptor
 *                      (F_DUPFD_CLOEXEC). Non-blocking socket: -1/EINPROGRESS
 *                      (or the dial's immediate error). Blocking socket: it
 *                      waits for the outcome (below).
 *   the engine         one helper thread per process, started on the first
 *                      such connect, all signals blocked. An epoll set holds
 *                      the copies of the pending sockets (EPOLLONESHOT, the
 *                      direction tunnel_step() asked for); on each event it
 *                      runs the socket's struct tunnel as far as it goes,
 *                      under the lock. It enforces SOCKSIFY_TIMEOUT per
 *                      socket (ETIMEDOUT) and exits after
 *                      PRELOAD_ENGINE_IDLE_MS with nothing pending, closing
 *                      its descriptors: an idle process holds nothing of ours.
 *   the end            success: getpeername() learns the target (peer.c);
 *                      failure: the socket is dissolved (AF_UNSPEC) and its
 *                      errno left for SO_ERROR (peer.c), as after a direct
 *                      connect that failed. Then, in this order: the socket
 *                      stops being PENDING, the engine's copy is closed, the
 *                      hidden epoll registrations are added back (the kernel
 *                      evaluates readiness afresh and wakes every waiter, in
 *                      any thread or process sharing the set, level- or
 *                      edge-triggered), and the socket's wake descriptor is
 *                      made readable for poll()/select() waiters (gate.c).
 *
 * While a socket is PENDING the gate answers for it as the kernel does for a
 * connecting socket: not readable, not writable, read/write EAGAIN, connect()
 * EALREADY, getpeername() ENOTCONN, SO_ERROR 0 (gate.c, peer.c). The proxy
 * never sees a byte of the program's before the handshake is over.
 *
 * A blocking connect() drives its handshake itself (async_drive_inline()),
 * with as few system calls as it can: the first write goes out before any
 * poll() (to a proxy on this host the dial is over when connect() returns),
 * and each answer is polled for before it is read (tunnel_step(): it cannot
 * be in yet). It waits for the outcome as a direct one would: with
 * SO_SNDTIMEO set, in poll() for that long (then -1/EINPROGRESS, the
 * handshake going on); without, in read() of the wake descriptor, a call the
 * kernel restarts after a signal handler with SA_RESTART and interrupts
 * (EINTR) after one without, exactly as it treats connect(). Interrupted or
 * timed out, the handshake ends in the background, visible through
 * poll()/SO_ERROR, and a second connect() waits again (blocking) or says
 * EALREADY (non-blocking).
 *
 * Descriptors: the program may dup() a pending socket (the gate follows
 * dup, dup2, dup3, F_DUPFD) and close any of its names; when the last one
 * is closed the handshake is cancelled and its copy closed, leaving no
 * descriptor, thread or slot behind. Slots are indexed by descriptor number
 * (below ASYNC_INDEX_FDS; above, a scan), and each slot records the socket's
 * SO_COOKIE, so a number the program reused behind our back is told apart.
 *
 * fork(): the engine thread does not survive it, so a fork() waits (in
 * pthread_atfork's prepare step) until no socket of the process is pending,
 * bounded by their deadlines; the child starts with a clean engine. What is
 * still pending then (a proxy stalled past SOCKSIFY_TIMEOUT in the parent)
 * fails with ETIMEDOUT in the child. exec() with a socket still pending
 * hands the new image a socket mid-handshake (documented in LIMITS).
 *
 * A proxy of the other family: an IPv4 socket cannot reach a proxy that has
 * only IPv6 addresses, so before the dial the socket is swapped for an IPv6
 * one (async_swap_family(): same status flags, FD_CLOEXEC, the socket
 * options either family has, dup3()ed onto the same number; the epoll
 * registrations, hidden already, are added back to it at the end), and
 * getsockname() and SO_DOMAIN keep answering in IPv4 (peer.c). An
 * IPv6-only socket and an IPv4-only proxy need no swap: the socket may
 * speak IPv4 (IPV6_V6ONLY cleared) and reaches the proxy at ::ffff:a.b.c.d,
 * while getsockopt(IPV6_V6ONLY) keeps saying 1. A socket the program bound
 * to an address is never swapped (the address has no twin): ECONNREFUSED.
 *
 * When the engine cannot take a connect (no thread, no descriptor for the
 * copy, ASYNC_MAX pending, a connect() from a signal handler that interrupted
 * the lock's holder) the handshake runs inside the call (tunnel_connect()),
 * as before this engine existed.
 *
 * One mutex guards the slots, the index, the engine's state and the gate's
 * epoll records; the fast paths (async_active == 0, an fd with no slot) take
 * no lock. No thread cancellation acts while it is held (async_lock()); a
 * blocking connect() is cancellable in its waits alone, which hand the
 * handshake on (async_drive_cancelled()), and a cancelled waiter lets go of
 * its slot (async_wait_held(), gate.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "preload.h"

#define ASYNC_EVENTS		64		/* epoll events taken per wakeup */
#define ASYNC_CA_NAME_BYTES	16		/* TCP_CA_NAME_MAX, linux/tcp.h */
#define ASYNC_WAKE_VALUE	(UINT64_C(1) << 62)	/* keeps a semaphore eventfd readable */

enum async_state { SLOT_FREE = 0, SLOT_PENDING, SLOT_DONE };

struct async_slot {
	int state;			/* enum async_state */
	uint32_t gen;			/* bumped per use: stale engine events */
	int fds[PRELOAD_ASYNC_FDS];	/* the program's names for the socket */
	int nfds;
	int copy;			/* the engine's descriptor */
	int wakefd;			/* eventfd for waiters, -1 until asked */
	int waiters;			/* threads holding wakefd */
	uint64_t cookie;
	bool dialled;			/* TCP to the first hop is up */
	bool inline_;			/* driven by the connect()ing thread */
	int err;			/* SLOT_DONE: 0 or the errno */
	long long deadline;		/* CLOCK_MONOTONIC ms */
	struct tunnel t;
	struct sockaddr_storage peer;	/* what the program connect()ed to */
	socklen_t peerlen;
	char dest[S5_ADDR_TEXT_MAX];	/* for the log line */
};

int async_active;

static pthread_mutex_t async_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t async_settled = PTHREAD_COND_INITIALIZER;
static struct async_slot async_slots[PRELOAD_ASYNC_MAX];
/* Slot number + 1 for each descriptor below ASYNC_INDEX_FDS, 0 for none. */
static uint16_t async_index[PRELOAD_ASYNC_INDEX_FDS];
static int async_npending;		/* SLOT_PENDING slots */
static bool async_running;		/* the engine thread lives */
static int async_ep = -1, async_kick = -1;	/* its epoll set and eventfd */
static long long async_sleep_until;	/* its wakeup, -1: none */
/* The process the slots and records belong to (0: none yet). A vfork()ed
 * child shares our memory and runs the program's close()s and dup2()s
 * before its exec(): it must not touch them. */
static pid_t async_pid;
/* This thread holds the lock, or is taking it: a hook reached from a signal
 * handler that interrupted it, or from the engine's own logging, must not
 * take it again. Set before locking and cleared after unlocking, so no
 * moment is left uncovered; across fork() (held through it) it keeps the
 * child's hooks away until async_fork_child() ran. */
static __thread bool async_held;
/* The slot (and its gen) whose handshake this thread drives inline: a
 * signal handler on top of that drive that waits for the same socket
 * (connect(), a blocking read or write) would wait for itself. */
static __thread struct async_slot *async_driving;
static __thread uint32_t async_driving_gen;
/* The thread's cancel state before it took the lock: no cancellation acts
 * while the lock is held (a connect(), close() or write() of ours under it
 * is a cancellation point, and a thread cancelled there would leave it
 * held for good; fork()'s prepare step waits on a condition under it). */
static __thread int async_cancel_old;

void
async_lock(void)
{
	int old;

	async_held = true;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	async_cancel_old = old;
	pthread_mutex_lock(&async_mutex);
}

void
async_unlock(void)
{
	pthread_mutex_unlock(&async_mutex);
	pthread_setcancelstate(async_cancel_old, NULL);
	async_held = false;
}

bool
async_may_lock(bool check_pid)
{
	if (async_held)
		return false;
	return !check_pid || getpid() == async_pid;
}

static bool async_all_restart(void);
static int async_dial(int fd, const struct sockaddr_storage *ss, socklen_t len,
    int flags, bool *dialled);
static void async_fail(struct async_slot *s, int err);

/* The slot that names fd, or NULL. Lock held, or a racy first look. */
static struct async_slot *
async_find(int fd)
{
	unsigned i;
	int j;

	if (fd < 0)
		return NULL;
	if (fd < PRELOAD_ASYNC_INDEX_FDS) {
		i = __atomic_load_n(&async_index[fd], __ATOMIC_ACQUIRE);
		return i == 0 ? NULL : &async_slots[i - 1];
	}
	for (i = 0; i < PRELOAD_ASYNC_MAX; i++) {
		if (async_slots[i].state != SLOT_PENDING)
			continue;
		for (j = 0; j < async_slots[i].nfds; j++)
			if (async_slots[i].fds[j] == fd)
				return &async_slots[i];
	}
	return NULL;
}

static void
async_index_set(int fd, struct async_slot *s)
{
	if (fd >= 0 && fd < PRELOAD_ASYNC_INDEX_FDS)
		__atomic_store_n(&async_index[fd],
		    (uint16_t)(s == NULL ? 0 : s - async_slots + 1), __ATOMIC_RELEASE);
}

/* fd no longer names s: clear its index entry, when it is still s's (a
 * number closed behind our back may name another slot by now). */
static void
async_index_drop(int fd, struct async_slot *s)
{
	if (fd >= 0 && fd < PRELOAD_ASYNC_INDEX_FDS &&
	    __atomic_load_n(&async_index[fd], __ATOMIC_ACQUIRE) == s - async_slots + 1)
		async_index_set(fd, NULL);
}

/* The pending slot of fd, checked against the socket fd names now. */
static struct async_slot *
async_find_checked(int fd)
{
	struct async_slot *s = async_find(fd);

	if (s == NULL || s->state != SLOT_PENDING)
		return NULL;
	return peer_cookie(fd) == s->cookie ? s : NULL;
}

/* Free a slot nobody waits on; its wake descriptor goes too. */
static void
async_free(struct async_slot *s)
{
	if (s->wakefd >= 0)
		(void)PRELOAD_REAL(close)(s->wakefd);
	s->wakefd = -1;
	s->nfds = 0;
	s->state = SLOT_FREE;
}

static void
async_kick_engine(void)
{
	uint64_t one = 1;

	if (async_kick >= 0)
		(void)!PRELOAD_REAL(write)(async_kick, &one, sizeof(one));
}

/* s is over with err: no longer PENDING for the gate. Lock held. */
static void
async_mark_done(struct async_slot *s, int err)
{
	if (err != 0)
		tunnel_unlearn(&s->t);	/* also a cancel: no tunnel_retry() */
	s->err = err;
	s->state = SLOT_DONE;
	async_npending--;
	__atomic_store_n(&async_active, async_npending, __ATOMIC_RELEASE);
	/* The engine's idle time starts now, not at an old deadline. */
	if (async_npending == 0)
		async_kick_engine();
}

/* Then its waiters are told, and the slot goes with the last of them. */
static void
async_wake_waiters(struct async_slot *s)
{
	uint64_t wake = ASYNC_WAKE_VALUE;

	if (s->wakefd >= 0)
		(void)!PRELOAD_REAL(write)(s->wakefd, &wake, sizeof(wake));
	if (s->waiters == 0)
		async_free(s);
	pthread_cond_broadcast(&async_settled);
}

/* The handshake of s is over with err (0: success). Lock held. */
static void
async_finish(struct async_slot *s, int err)
{
	int i, fd;

	s->err = err;
	if (s->copy >= 0 && async_ep >= 0)
		(void)PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_DEL, s->copy, NULL);
	if (err != 0 && (s->copy >= 0 || s->nfds > 0)) {
		tunnel_dissolve(s->copy >= 0 ? s->copy : s->fds[0]);
		tunnel_refail(s->copy >= 0 ? s->copy : s->fds[0]);
	}
	for (i = 0; i < s->nfds; i++) {
		fd = s->fds[i];
		/* A number closed behind our back names another file now:
		 * nothing of this socket's is said of it. */
		if (peer_cookie(fd) != s->cookie) {
			async_index_drop(fd, s);
			s->fds[i--] = s->fds[--s->nfds];
			continue;
		}
		if (err == 0) {
			peer_remember_as(fd, s->cookie, (struct sockaddr *)&s->peer,
			    s->peerlen, !s->inline_);
			listen_note_as(fd, s->cookie, &s->t.c.reply.bnd);
		} else
			peer_fail_later(fd, err);
	}
	connect_trace(s->dest, err, &s->t);
	async_mark_done(s, err);
	for (i = 0; i < s->nfds; i++)
		async_index_drop(s->fds[i], s);
	if (s->copy >= 0)
		(void)PRELOAD_REAL(close)(s->copy);
	s->copy = -1;
	for (i = 0; i < s->nfds; i++)
		gate_restore(s->fds[i]);
	async_wake_waiters(s);
}

/*
 * After tunnel_retry() said t may go on: dial its next first hop on sock
 * without waiting. 0 (connecting; *dialled when up already) or -errno.
 */
static int
async_redial(struct tunnel *t, int sock, bool *dialled)
{
	struct sockaddr_storage ss;
	socklen_t len, olen = sizeof(int);
	int domain, flags, r;

	if (preload_real.getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &olen) != 0 ||
	    (flags = PRELOAD_REAL(fcntl)(sock, F_GETFL)) < 0)
		return -errno;
	if ((r = tunnel_first_sockaddr(t, sock, domain, &ss, &len)) < 0)
		return r;
	return async_dial(sock, &ss, len, flags, dialled);
}

/*
 * t failed with err on sock (a dial's failure with t->dial_err set): the
 * next alternative, when there is one, is dialled. 0 when an attempt is
 * under way again, else the errno the connect ends with.
 */
static int
async_move_on(struct tunnel *t, int sock, int err, long long deadline, bool *dialled)
{
	bool family = false;	/* the last alternative has no address for sock */
	int r;

	while (tunnel_retry(t, sock, err, deadline)) {
		*dialled = false;
		if ((r = async_redial(t, sock, dialled)) == 0)
			return 0;
		err = -r;
		family = r == -EAFNOSUPPORT;
		if (!family)
			t->dial_err = err;
	}
	if (t->dial_err != 0)
		return -tunnel_dial_errno(t, t->dial_err);
	t->family = family;	/* said as such (TR_FAMILY), not "closed" */
	return family ? ECONNREFUSED : err;
}

/* s failed with err: on to its next alternative (the engine waits for
 * the dial), or the end. Lock held. */
static void
async_fail(struct async_slot *s, int err)
{
	struct epoll_event ev;

	if (s->copy < 0 || (err = async_move_on(&s->t, s->copy, err, s->deadline,
	    &s->dialled)) != 0) {
		async_finish(s, err);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLONESHOT | EPOLLOUT;
	ev.data.u64 = (uint64_t)(s - async_slots) | (uint64_t)s->gen << 32;
	if (PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_MOD, s->copy, &ev) != 0)
		async_finish(s, errno);
}

/* Run s as far as its socket allows; revents is what the copy polled. */
static void
async_drive(struct async_slot *s, uint32_t revents)
{
	struct epoll_event ev;
	int r;

	if (!s->dialled) {
		r = tunnel_dial_result(s->copy, (int)revents);
		if (r < 0) {
			s->t.dial_err = -r;
			async_fail(s, -r);
			return;
		}
		s->dialled = true;
	}
	r = tunnel_step(&s->t, s->copy);
	if (r < 0) {
		async_fail(s, -r);
		return;
	}
	if (r == TUNNEL_DONE) {
		async_finish(s, 0);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLONESHOT | (r == TUNNEL_READ ? EPOLLIN : EPOLLOUT);
	ev.data.u64 = (uint64_t)(s - async_slots) | (uint64_t)s->gen << 32;
	if (PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_MOD, s->copy, &ev) != 0)
		async_finish(s, errno);
}

/* When s must move on: its attempt's deadline (an alternative's share of
 * SOCKSIFY_TIMEOUT, tunnel_attempt()), never after the connect's. */
static long long
async_due(const struct async_slot *s)
{
	long long due = tunnel_due(&s->t);

	return due < s->deadline ? due : s->deadline;
}

/* The earliest deadline of a pending slot, or -1. Lock held. */
static long long
async_next_deadline(void)
{
	long long next = -1;
	unsigned i;

	for (i = 0; i < PRELOAD_ASYNC_MAX && async_npending > 0; i++)
		if (async_slots[i].state == SLOT_PENDING && !async_slots[i].inline_ &&
		    (next < 0 || async_due(&async_slots[i]) < next))
			next = async_due(&async_slots[i]);
	return next;
}

/* The latest deadline of any pending slot, or -1. Lock held. */
static long long
async_last_deadline(void)
{
	long long last = -1;
	unsigned i;

	for (i = 0; i < PRELOAD_ASYNC_MAX && async_npending > 0; i++)
		if (async_slots[i].state == SLOT_PENDING && async_slots[i].deadline > last)
			last = async_slots[i].deadline;
	return last;
}

static void
async_expire(long long now)
{
	unsigned i;

	for (i = 0; i < PRELOAD_ASYNC_MAX && async_npending > 0; i++)
		if (async_slots[i].state == SLOT_PENDING && !async_slots[i].inline_ &&
		    async_due(&async_slots[i]) <= now)
			async_fail(&async_slots[i], ETIMEDOUT);
}

static void *
async_engine(void *arg)
{
	struct epoll_event evs[ASYNC_EVENTS];
	long long now, next, idle_since = -1;
	uint64_t v;
	struct async_slot *s;
	uint32_t id;
	int n, i, timeout;

	(void)arg;
	async_lock();
	for (;;) {
		now = tunnel_now_ms();
		async_expire(now);
		next = async_next_deadline();
		if (next < 0) {
			if (idle_since < 0)
				idle_since = now;
			if (now - idle_since >= PRELOAD_ENGINE_IDLE_MS)
				break;
			next = idle_since + PRELOAD_ENGINE_IDLE_MS;
		} else {
			idle_since = -1;
		}
		async_sleep_until = next;
		timeout = next - now > INT_MAX ? INT_MAX : (int)(next - now);
		async_unlock();
		n = epoll_wait(async_ep, evs, ASYNC_EVENTS, timeout);
		async_lock();
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				(void)!PRELOAD_REAL(read)(async_kick, &v, sizeof(v));
				continue;
			}
			id = (uint32_t)evs[i].data.u64;
			if (id >= PRELOAD_ASYNC_MAX)
				continue;
			s = &async_slots[id];
			if (s->state != SLOT_PENDING || s->gen != (uint32_t)(evs[i].data.u64 >> 32))
				continue;
			async_drive(s, evs[i].events);
		}
	}
	/* Idle: nothing of ours stays in the process. */
	(void)PRELOAD_REAL(close)(async_ep);
	(void)PRELOAD_REAL(close)(async_kick);
	async_ep = async_kick = -1;
	async_running = false;
	async_unlock();
	return NULL;
}

/*
 * fork(): the child has no engine thread. Wait until nothing is pending
 * (bounded by the deadlines), and hold the lock across fork() so the child
 * gets consistent slots.
 */
static void
async_fork_prepare(void)
{
	struct timespec ts;

	async_lock();
	while (async_npending > 0) {
		long long left = async_last_deadline() + 1 - tunnel_now_ms();

		if (left <= 0)
			break;
		/* The condition's clock is CLOCK_REALTIME. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000 + (ts.tv_nsec + (left % 1000) * 1000000L) / 1000000000L;
		ts.tv_nsec = (ts.tv_nsec + (left % 1000) * 1000000L) % 1000000000L;
		(void)pthread_cond_timedwait(&async_settled, &async_mutex, &ts);
	}
}

static void
async_fork_parent(void)
{
	async_unlock();
}

static void
async_fork_child(void)
{
	unsigned i;

	/* The engine's descriptors are the parent's: ours no more. */
	if (async_running) {
		(void)PRELOAD_REAL(close)(async_ep);
		(void)PRELOAD_REAL(close)(async_kick);
	}
	async_ep = async_kick = -1;
	async_running = false;
	async_pid = getpid();
	async_npending = 0;
	__atomic_store_n(&async_active, 0, __ATOMIC_RELEASE);
	for (i = 0; i < PRELOAD_ASYNC_MAX; i++) {
		struct async_slot *s = &async_slots[i];

		if (s->state == SLOT_PENDING) {
			int j;

			/* Still pending past its deadline in the parent, which
			 * drives it: here a failure, told through SO_ERROR; the
			 * parent's registrations and waiters are its own. */
			if (s->copy >= 0)
				(void)PRELOAD_REAL(close)(s->copy);
			s->copy = -1;
			for (j = 0; j < s->nfds; j++) {
				peer_fail_later(s->fds[j], ETIMEDOUT);
				async_index_drop(s->fds[j], s);
			}
			s->state = SLOT_DONE;
		}
		s->waiters = 0;
		if (s->state == SLOT_DONE)
			async_free(s);
	}
	async_unlock();
}

/*
 * At load (fakedns.c's constructor): whose state this is, and the fork
 * handlers, registered before any of the program's: our prepare step runs
 * last, after every other library has parked its threads (one may need
 * epoll_ctl() to do so), and our child step first, before any other
 * handler's epoll_ctl() in the child.
 */
void
async_at_load(void)
{
	async_pid = getpid();
	(void)pthread_atfork(async_fork_prepare, async_fork_parent, async_fork_child);
}

/* The engine, started when not running. Lock held. 0 or -errno. */
static int
async_start_engine(void)
{
	struct epoll_event ev;
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int r;

	if (async_running)
		return 0;
	async_ep = epoll_create1(EPOLL_CLOEXEC);
	async_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (async_ep < 0 || async_kick < 0)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	if (PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_ADD, async_kick, &ev) != 0)
		goto fail;
	/* The thread takes none of the program's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PRELOAD_ENGINE_STACK_BYTES);
	r = pthread_create(&th, &attr, async_engine, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		goto fail;
	}
	async_running = true;
	async_sleep_until = -1;
	return 0;
fail:
	r = errno;
	if (async_ep >= 0)
		(void)PRELOAD_REAL(close)(async_ep);
	if (async_kick >= 0)
		(void)PRELOAD_REAL(close)(async_kick);
	async_ep = async_kick = -1;
	preload_log(LOG_LVL_DEBUG, "engine unavailable (%s): handshakes run "
	    "inside connect()", strerror(r));
	return -r;
}

static int async_v6_both(int fd);
static int async_handoff(struct async_slot *s, uint32_t gen,
    const struct tunnel *t, bool dialled, uint32_t events);

static struct async_slot *
async_alloc(void)
{
	unsigned i;

	for (i = 0; i < PRELOAD_ASYNC_MAX; i++)
		if (async_slots[i].state == SLOT_FREE) {
			struct async_slot *s = &async_slots[i];
			uint32_t gen = s->gen + 1;

			memset(s, 0, sizeof(*s));
			s->gen = gen;
			s->copy = s->wakefd = -1;
			return s;
		}
	return NULL;
}

/* The wake descriptor of s, made on first use; -1 when none can be. */
static int
async_wakefd(struct async_slot *s)
{
	if (s->wakefd < 0)
		s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	return s->wakefd;
}

int
async_waitfd(int fd, void **ref)
{
	struct async_slot *s;
	int w = -1;

	*ref = NULL;
	if (async_find(fd) == NULL)
		return -1;
	/* A signal handler of the lock's holder: nothing would ever end the
	 * wait (the engine waits for the lock too): the kernel's word. */
	if (!async_may_lock(false))
		return -1;
	async_lock();
	s = async_find_checked(fd);
	if (s != NULL && (w = async_wakefd(s)) >= 0) {
		s->waiters++;
		*ref = s;
	} else if (s != NULL) {
		w = -2;		/* pending, and no descriptor to wait on */
	}
	async_unlock();
	return w;
}

void
async_release(void *ref)
{
	struct async_slot *s = ref;

	if (s == NULL)
		return;
	async_lock();
	if (--s->waiters == 0 && s->state == SLOT_DONE)
		async_free(s);
	async_unlock();
}

bool
async_pending(int fd)
{
	struct async_slot *s = async_find(fd);

	return s != NULL && __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_PENDING;
}

bool
async_pending_checked(int fd)
{
	struct async_slot *s = async_find(fd);

	return s != NULL && __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_PENDING &&
	    peer_cookie(fd) == __atomic_load_n(&s->cookie, __ATOMIC_ACQUIRE);
}

/* Wait in slices until s is over, for want of a wake descriptor: 1 once
 * over, 0 when ms (>= 0) ran out, -EINTR. */
static int
async_wait_slices(struct async_slot *s, long long ms)
{
	long long stop = ms < 0 ? -1 : tunnel_now_ms() + ms, left;

	while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_PENDING) {
		left = stop < 0 ? PRELOAD_WAIT_SLICE_MS : stop - tunnel_now_ms();
		if (left <= 0)
			return 0;
		if (PRELOAD_REAL(poll)(NULL, 0, left < PRELOAD_WAIT_SLICE_MS ?
		    (int)left : PRELOAD_WAIT_SLICE_MS) < 0 && errno == EINTR &&
		    (stop >= 0 || !async_all_restart()))
			return -EINTR;
	}
	return 1;
}

/* The wait of async_wait_blocking() on s's wake descriptor w (-1: none, in
 * slices), up to ms (-1: no bound): 1 woken, 0 timed out, -EINTR. */
static int
async_wait_woken(struct async_slot *s, int w, long long ms)
{
	struct pollfd pfd;
	uint64_t v;

	if (w < 0)
		return async_wait_slices(s, ms);
	if (ms < 0) {
		while (PRELOAD_REAL(read)(w, &v, sizeof(v)) != (ssize_t)sizeof(v))
			if (errno == EINTR)
				return -EINTR;
		return 1;
	}
	pfd.fd = w;
	pfd.events = POLLIN;
	pfd.revents = 0;
	switch (PRELOAD_REAL(poll)(&pfd, 1, ms > INT_MAX ? INT_MAX : (int)ms)) {
	case 0:
		return 0;
	case -1:
		return -EINTR;
	default:
		return 1;
	}
}

/* The same, s held (waiters): the waits are cancellation points, as the
 * kernel's blocking read(), write() and connect() are, and a cancelled
 * waiter lets go of s. */
static int
async_wait_held(struct async_slot *s, int w, long long ms)
{
	int r;

	pthread_cleanup_push(async_release, s);
	r = async_wait_woken(s, w, ms);
	pthread_cleanup_pop(0);
	return r;
}

/*
 * A blocking caller waits for the end of s as the kernel makes it wait on
 * a connecting socket: with the timeout option it would apply (opt:
 * SO_SNDTIMEO for connect() and writes, SO_RCVTIMEO for reads) in poll(),
 * which a signal always interrupts, as it does the kernel's call when a
 * timeout is set; without, in read() of the wake descriptor, which the
 * kernel restarts after a handler with SA_RESTART, as it would connect().
 * opt 0: no timeout at all. Returns 1 once over (*err: its errno, 0 for
 * success), 0 when the timeout ran out, or -EINTR. Lock held on entry and on
 * return.
 */
static int
async_wait_blocking(struct async_slot *s, int fd, int opt, int *err)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);
	long long ms = -1;
	int w, r;

	memset(&tv, 0, sizeof(tv));
	if (opt != 0 && preload_real.getsockopt(fd, SOL_SOCKET, opt, &tv, &len) == 0 &&
	    (tv.tv_sec > 0 || tv.tv_usec > 0))
		ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
	w = async_wakefd(s);
	s->waiters++;
	async_unlock();
	r = async_wait_held(s, w, ms);
	async_lock();
	s->waiters--;
	if (s->state != SLOT_DONE)
		return r == 1 ? 0 : r;
	*err = s->err;
	if (s->waiters == 0)
		async_free(s);
	return 1;
}

int
async_hold(int fd, enum async_hold_kind kind, bool dontwait)
{
	struct async_slot *s;
	int flags, r, err = 0;

	if (async_find(fd) == NULL)
		return 0;
	/* A signal handler of the lock's holder: closed, as if non-blocking. */
	if (!async_may_lock(false))
		return kind == HOLD_CONNECT ? -EALREADY : -EAGAIN;
	async_lock();
	s = async_find_checked(fd);
	if (s == NULL) {
		async_unlock();
		return 0;
	}
	flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	/* A handler atop this thread's own drive of it: the kernel's
	 * connect() in progress says EALREADY to a second one. */
	if (dontwait || (flags >= 0 && (flags & O_NONBLOCK)) ||
	    (s == async_driving && s->gen == async_driving_gen)) {
		async_unlock();
		return kind == HOLD_CONNECT ? -EALREADY : -EAGAIN;
	}
	r = async_wait_blocking(s, fd, kind == HOLD_READ ? SO_RCVTIMEO : SO_SNDTIMEO, &err);
	async_unlock();
	if (r == 1 && kind != HOLD_CONNECT)
		return 0;	/* over: the read or write goes on */
	if (r == 1) {
		/* A second blocking connect() answers the outcome itself. */
		if (err != 0) {
			(void)peer_take_error(fd);
			return -err;
		}
		(void)peer_take_fresh(fd);
		return 1;
	}
	if (r == 0)
		return kind == HOLD_CONNECT ? -EALREADY : -EAGAIN;
	return r;
}

int
async_settle(int fd)
{
	struct async_slot *s;
	int err = 0, r;

	if (async_find(fd) == NULL || !async_may_lock(false))
		return -peer_take_error(fd);
	async_lock();
	if ((s = async_find_checked(fd)) != NULL) {
		/* The engine ends it by its deadline; signals do not. */
		while ((r = async_wait_blocking(s, fd, 0, &err)) != 1)
			;
		if (err != 0)
			(void)peer_take_error(fd);
	}
	async_unlock();
	return -err;
}

void
async_dup(int fd, int fd2)
{
	struct async_slot *s;

	if (fd == fd2 || async_find(fd) == NULL || !async_may_lock(true))
		return;
	async_lock();
	s = async_find_checked(fd);
	if (s != NULL && s->nfds < PRELOAD_ASYNC_FDS) {
		s->fds[s->nfds++] = fd2;
		async_index_set(fd2, s);
	}
	async_unlock();
}

/* Cancel s: nobody names its socket anymore. Lock held. */
static void
async_cancel(struct async_slot *s)
{
	if (s->copy >= 0) {
		if (async_ep >= 0 && !s->inline_)
			(void)PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_DEL, s->copy, NULL);
		/* A name we do not know of (a dup made before connect(), one
		 * passed to another process) is left a failed socket, never
		 * one half-talking to the proxy. The blocking driver's poll()
		 * wakes on it; the driver closes its copy itself. */
		tunnel_dissolve(s->copy);
		if (!s->inline_) {
			(void)PRELOAD_REAL(close)(s->copy);
			s->copy = -1;
		}
	}
	async_mark_done(s, ECANCELED);
	async_wake_waiters(s);
}

/* fd no longer names pending s's socket: the last name gone cancels it.
 * Lock held. */
static void
async_drop_name(struct async_slot *s, int fd)
{
	int i;

	for (i = 0; i < s->nfds; i++)
		if (s->fds[i] == fd) {
			s->fds[i] = s->fds[--s->nfds];
			break;
		}
	async_index_drop(fd, s);
	if (s->nfds == 0)
		async_cancel(s);
}

/* fd names a new socket, and a slot still has the number: closed behind our
 * back (fclose(), closefrom()). Lock held. */
static void
async_forget_stale(int fd)
{
	struct async_slot *s = async_find(fd);

	if (s != NULL && s->state == SLOT_PENDING && peer_cookie(fd) != s->cookie)
		async_drop_name(s, fd);
}

void
async_forget(int fd)
{
	struct async_slot *s;

	async_lock();
	gate_forget(fd);
	s = async_find(fd);
	if (s != NULL && s->state == SLOT_PENDING)
		async_drop_name(s, fd);
	async_unlock();
}

int
async_fd_copy(int fd)
{
	int copy = PRELOAD_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, PRELOAD_ASYNC_COPY_FD_MIN);

	return copy >= 0 ? copy : PRELOAD_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
}

int
async_fd_raise(int fd)
{
	int high = PRELOAD_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, PRELOAD_ASYNC_COPY_FD_MIN);

	if (high < 0)
		return fd;
	(void)PRELOAD_REAL(close)(fd);
	return high;
}

/* The engine's copy of fd's socket. Lock held. 0 or -errno. */
static int
async_make_copy(struct async_slot *s, int fd)
{
	s->copy = async_fd_copy(fd);
	return s->copy < 0 ? -errno : 0;
}

/* Hand pending s (with its copy) to the engine, waiting for events. Lock
 * held. 0, or -errno with s finished. */
static int
async_to_engine(struct async_slot *s, uint32_t events)
{
	struct epoll_event ev;
	int err;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLONESHOT | events;
	ev.data.u64 = (uint64_t)(s - async_slots) | (uint64_t)s->gen << 32;
	if (PRELOAD_REAL(epoll_ctl)(async_ep, EPOLL_CTL_ADD, s->copy, &ev) != 0) {
		err = errno;
		async_finish(s, err);
		return -err;
	}
	s->inline_ = false;
	/* The engine sleeps past this deadline (or forever): it must see it. */
	if (async_sleep_until < 0 || async_sleep_until > async_due(s))
		async_kick_engine();
	return 0;
}

/*
 * Every handler the program installed restarts system calls (SA_RESTART):
 * then a signal that interrupted our wait would have restarted the
 * program's own connect(), and the wait goes on. Asked only after an EINTR.
 * With a handler that does not, the connect() says EINTR; which signal came
 * is not known here, so a program with both kinds may see an EINTR a direct
 * connect would have restarted (man page, LIMITS). Handlers of fault
 * signals do not count.
 */
static bool
async_all_restart(void)
{
	struct sigaction sa;
	int sig;

	for (sig = 1; sig < NSIG; sig++) {
		/* A fault's signal comes from the faulting instruction, never
		 * in the middle of our wait: crash reporters and sanitizers
		 * install these without SA_RESTART, and they must not turn
		 * every SIGCHLD into an EINTR. */
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		    sig == SIGTRAP || sig == SIGSYS)
			continue;
		if (sigaction(sig, NULL, &sa) != 0)
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
			continue;
		if (!(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

/* A blocking connect's end: 0 or -errno (the caller's to report, not left
 * for SO_ERROR). Drops the caller's hold on s. */
static int
async_end_inline(struct async_slot *s, uint32_t gen, int fd, const struct tunnel *t,
    int err)
{
	async_lock();
	s->waiters--;
	if (s->gen != gen || s->state != SLOT_PENDING) {
		/* Closed by another thread meanwhile (async_cancel()). */
		if (s->gen == gen && s->copy >= 0) {
			(void)PRELOAD_REAL(close)(s->copy);
			s->copy = -1;
		}
		if (s->state == SLOT_DONE && s->waiters == 0)
			async_free(s);
		async_unlock();
		return -EBADF;
	}
	/* The whole outcome, as async_handoff() takes it: what failed
	 * (tunnel_explain) and the BND a success names. */
	s->t = *t;
	async_finish(s, err);
	async_unlock();
	if (err != 0)
		(void)peer_take_error(fd);
	return -err;
}

/*
 * A blocking connect() drives its own handshake, as fast as it can be:
 * poll() on the socket, no other thread, the machine in the caller's own
 * memory (the slot only says PENDING to the gate, and is held against
 * reuse: waiters). A signal whose handler would not restart connect() (see
 * async_all_restart()) or the program's SO_SNDTIMEO ends the call early,
 * -EINTR or -EINPROGRESS, and the engine takes over from where it was.
 *
 * Signals: from each step of the machine to the end of the wait that
 * follows it, the program's signals are blocked (fault signals excepted),
 * and the wait is ppoll() with the program's own mask, so that a signal is
 * let in only inside the wait. One that comes while the drive is between
 * two system calls, or together with the answer that ends a wait (ppoll()
 * then says 1, not EINTR), stays pending and interrupts the next wait, as
 * the kernel's connect() would have been interrupted. Whatever may block
 * for long or take a lock (the slot's lock, a log line to a full pipe:
 * async_end_inline(), async_handoff(), async_move_on()) runs with the
 * program's mask back, so a stop-the-world collector's signal or Ctrl-C
 * still gets through there; a signal then is handled at once, as one just
 * before the kernel's connect() ends.
 *
 * Thread cancellation: connect() is a cancellation point, so the wait may
 * be one too, and nothing else of the drive is (a send() to the proxy
 * cancelled halfway, or a log line, would leave the slot held by a thread
 * that is gone: fork() then waited up to SOCKSIFY_TIMEOUT). Cancellation is
 * disabled for the drive and let in only inside ppoll(), where a handler
 * (async_drive_cancelled()) gives the handshake to the engine, as a signal
 * does: the socket goes on connecting in the background, as the kernel's
 * does after a cancelled connect().
 */
struct async_drive_mask {
	sigset_t blocked, open;
	bool on;
};

/* What a cancelled wait needs to leave the slot as a signal would. */
struct async_drive_cancel {
	struct async_slot *s;
	uint32_t gen;
	int fd;
	bool enabled;			/* the program's cancel state */
	bool dialled;
	short want;
	struct tunnel *t;
	struct async_drive_mask *m;
	struct async_slot *outer;	/* async_driving before this drive */
	uint32_t outer_gen;
};

static void
async_drive_block(struct async_drive_mask *m)
{
	if (!m->on)
		pthread_sigmask(SIG_BLOCK, &m->blocked, NULL);
	m->on = true;
}

static void
async_drive_unblock(struct async_drive_mask *m)
{
	if (m->on)
		pthread_sigmask(SIG_SETMASK, &m->open, NULL);
	m->on = false;
}

/* A cancellation inside the drive's wait: the handshake goes to the engine
 * (or, with none, fails), the thread's mask and driver mark as before the
 * call; then the thread goes on to its end. */
static void
async_drive_cancelled(void *arg)
{
	struct async_drive_cancel *c = arg;

	async_drive_unblock(c->m);
	async_driving = c->outer;
	async_driving_gen = c->outer_gen;
	if (async_handoff(c->s, c->gen, c->t, c->dialled, (uint32_t)c->want) != 0)
		(void)async_end_inline(c->s, c->gen, c->fd, c->t, ECONNABORTED);
}

/* ppoll() for the drive, the one place a cancellation may act. */
static int
async_drive_wait(struct pollfd *pfd, const struct timespec *ts,
    struct async_drive_cancel *c)
{
	int r, err, off;

	pthread_cleanup_push(async_drive_cancelled, c);
	if (c->enabled)
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &off);
	r = PRELOAD_REAL(ppoll)(pfd, 1, ts, &c->m->open);
	err = errno;
	if (c->enabled)
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &off);
	pthread_cleanup_pop(0);
	errno = err;
	return r;
}

static int async_drive_here(struct async_slot *s, uint32_t gen, int fd,
    struct async_drive_cancel *c);

/* The drive, this thread known as its driver meanwhile (async_hold()), and
 * cancellable only in its waits. */
static int
async_drive_inline(struct async_slot *s, uint32_t gen, int fd)
{
	struct async_drive_cancel c = {
		.s = s, .gen = gen, .fd = fd,
		.outer = async_driving, .outer_gen = async_driving_gen,
	};
	int r, state;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
	c.enabled = state == PTHREAD_CANCEL_ENABLE;
	async_driving = s;
	async_driving_gen = gen;
	r = async_drive_here(s, gen, fd, &c);
	async_driving = c.outer;
	async_driving_gen = c.outer_gen;
	pthread_setcancelstate(state, &state);
	return r;
}

static int
async_drive_here(struct async_slot *s, uint32_t gen, int fd,
    struct async_drive_cancel *c)
{
	struct async_drive_mask m = { .on = false };
	struct timespec ts;
	struct tunnel t = s->t;
	struct timeval tv;
	socklen_t tlen = sizeof(tv);
	struct pollfd pfd;
	long long stop = -1, until, now, deadline = s->deadline, give_up;
	bool dialled = s->dialled, early = !s->dialled;
	short want = POLLOUT;
	int r, why = 0, sock = s->copy;	/* ours while inline_ */

	sigfillset(&m.blocked);
	sigdelset(&m.blocked, SIGSEGV);
	sigdelset(&m.blocked, SIGBUS);
	sigdelset(&m.blocked, SIGFPE);
	sigdelset(&m.blocked, SIGILL);
	sigdelset(&m.blocked, SIGTRAP);
	sigdelset(&m.blocked, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &m.blocked, &m.open);
	m.on = true;
	c->t = &t;
	c->m = &m;
	memset(&tv, 0, sizeof(tv));
	if (preload_real.getsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, &tlen) == 0 &&
	    (tv.tv_sec > 0 || tv.tv_usec > 0))
		stop = tunnel_now_ms() + (long long)tv.tv_sec * 1000 +
		    (tv.tv_usec + 999) / 1000;
	for (;;) {
		async_drive_block(&m);
		/* Cancelled by a close() in another thread: fd may name
		 * another socket already; not a byte more on it. */
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_PENDING) {
			async_drive_unblock(&m);
			return async_end_inline(s, gen, fd, &t, EBADF);
		}
		if (dialled || early) {
			/*
			 * early: the first write before any poll(). To a proxy
			 * on this host the dial is over when connect() returns;
			 * the kernel answers a send() on a socket still in
			 * SYN_SENT with EAGAIN (TUNNEL_WRITE: poll, as after
			 * any dial), on a refused one with the dial's error.
			 * A failure of the machine itself (t.why: a target the
			 * scheme cannot carry, before any byte) is no dial's.
			 */
			r = tunnel_step(&t, sock);
			if (r <= 0)
				async_drive_unblock(&m);
			if (r < 0 && early && t.why == 0)
				t.dial_err = -r;
			if (r < 0 && (r = -async_move_on(&t, sock, -r, deadline, &dialled)) == 0) {
				early = !dialled;	/* the next alternative, dialled */
				continue;
			}
			if (r <= 0)
				return async_end_inline(s, gen, fd, &t, -r);
			if (early)
				dialled = r != TUNNEL_WRITE;
			early = false;
			want = r == TUNNEL_READ ? POLLIN : POLLOUT;
		} else {
			want = POLLOUT;
		}
		for (;;) {
			now = tunnel_now_ms();
			give_up = tunnel_due(&t) < deadline ? tunnel_due(&t) : deadline;
			until = stop >= 0 && stop < give_up ? stop : give_up;
			if (now >= give_up) {
				/* This attempt's time is up: the next alternative,
				 * or the end. */
				async_drive_unblock(&m);
				r = async_move_on(&t, sock, ETIMEDOUT, deadline, &dialled);
				if (r != 0)
					return async_end_inline(s, gen, fd, &t, r);
				async_drive_block(&m);
				want = POLLOUT;
				continue;
			}
			if (now >= until) {
				why = EINPROGRESS;	/* SO_SNDTIMEO */
				r = 0;
				break;
			}
			pfd.fd = sock;
			pfd.events = want;
			pfd.revents = 0;
			ts.tv_sec = (time_t)((until - now) / 1000);
			ts.tv_nsec = (long)((until - now) % 1000 * 1000000);
			c->dialled = dialled;
			c->want = want;
			r = async_drive_wait(&pfd, &ts, c);
			if (r > 0)
				break;
			if (r < 0 && errno != EINTR) {
				r = errno;
				async_drive_unblock(&m);
				return async_end_inline(s, gen, fd, &t, r);
			}
			if (r < 0 && !async_all_restart()) {
				why = EINTR;
				break;
			}
		}
		if (r <= 0) {
			/* Early end of the call; the engine goes on. */
			async_drive_unblock(&m);
			if (async_handoff(s, gen, &t, dialled, (uint32_t)want) == 0)
				return -why;
			stop = -1;	/* no engine: the call finishes it */
			continue;
		}
		if (!dialled) {
			r = tunnel_dial_result(sock, pfd.revents);
			if (r < 0) {
				t.dial_err = -r;
				async_drive_unblock(&m);
				r = async_move_on(&t, sock, -r, deadline, &dialled);
				if (r != 0)
					return async_end_inline(s, gen, fd, &t, r);
				continue;
			}
			dialled = true;
		}
	}
}

/* Give an inline slot, at state t, to the engine, and drop the caller's
 * hold. 0, or -errno (it stays inline, held). */
static int
async_handoff(struct async_slot *s, uint32_t gen, const struct tunnel *t,
    bool dialled, uint32_t events)
{
	int r;

	async_lock();
	if (s->gen != gen || s->state != SLOT_PENDING) {
		/* Closed by another thread meanwhile (async_cancel() left the
		 * copy to its driver, this thread). */
		if (s->gen == gen && s->copy >= 0) {
			(void)PRELOAD_REAL(close)(s->copy);
			s->copy = -1;
		}
		s->waiters--;
		if (s->state == SLOT_DONE && s->waiters == 0)
			async_free(s);
		async_unlock();
		return 0;	/* over already: the caller's connect ends */
	}
	s->t = *t;
	s->dialled = dialled;
	if ((r = async_start_engine()) == 0) {
		/* Handed over; a failure to take it ends the slot, which
		 * SO_ERROR then tells. */
		(void)async_to_engine(s, events);
		s->waiters--;
		if (s->state == SLOT_DONE && s->waiters == 0)
			async_free(s);
	}
	async_unlock();
	return r;
}

/*
 * The dial: the TCP connect to the first hop, without waiting (a blocking
 * socket is made non-blocking for the call alone, P2). flags: the file's
 * status flags (F_GETFL), read already. 0 (connecting or connected), or
 * -errno.
 */
static int
async_dial(int fd, const struct sockaddr_storage *ss, socklen_t len, int flags,
    bool *dialled)
{
	bool blocking = !(flags & O_NONBLOCK);
	int r;

	if (blocking && PRELOAD_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return -errno;
	r = preload_real.connect(fd, (const struct sockaddr *)ss, len) == 0 ? 0 : -errno;
	if (blocking)
		(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);
	*dialled = r == 0;
	return r == -EINPROGRESS || r == -EINTR ? 0 : r;
}

int
async_connect(int fd, int domain, const struct sockaddr *sa, socklen_t len,
    const struct s5_addr *dst, const char *dest)
{
	struct sockaddr_storage ss;
	struct tunnel t;
	struct async_slot *s;
	socklen_t sslen;
	long long deadline;
	size_t dlen;
	bool blocking, mixed;
	uint32_t gen;
	int flags, r;

	/* A signal handler that interrupted the lock's holder, or a vfork()ed
	 * child sharing our memory: inside the call, touching nothing. */
	if (!async_may_lock(true))
		return ASYNC_SYNC;
	flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	blocking = !(flags & O_NONBLOCK);
	async_lock();
	async_forget_stale(fd);
	if ((!blocking && async_start_engine() != 0) || (s = async_alloc()) == NULL) {
		async_unlock();
		return ASYNC_SYNC;
	}
	tunnel_init(&t, dst);
	if ((r = tunnel_all_down(&t)) < 0) {
		async_unlock();
		connect_trace(dest, -r, &t);
		return r;
	}
	r = tunnel_first_sockaddr(&t, fd, domain, &ss, &sslen);
	/* An IPv6-only socket and alternatives of both families: it may speak
	 * IPv4 from the start, as the next alternative is dialled on the same
	 * socket (the same socket: nothing else changes). An IPv4 socket is
	 * not swapped for that (a descriptor dup()ed before connect() would
	 * keep the old one): it reaches the IPv4 alternatives alone. */
	mixed = r == 0 && domain == AF_INET6 && preload_cfg.nalts[0] > 1 &&
	    tunnel_first_mixed(fd, domain);
	if ((r == -EAFNOSUPPORT || mixed) && domain == AF_INET6 && async_v6_both(fd) == 0) {
		/* An IPv6-only socket and an IPv4 proxy: the socket may
		 * speak IPv4 for the proxy, and still says it is IPv6-only. */
		r = tunnel_first_sockaddr(&t, fd, domain, &ss, &sslen);
		gate_hide(fd);
	} else if (r == -EAFNOSUPPORT) {
		/* The proxy has no address of this socket's family: the
		 * socket becomes one of the proxy's, the program none the
		 * wiser (see the top). */
		domain = domain == AF_INET ? AF_INET6 : AF_INET;
		gate_hide(fd);
		r = async_swap_family(fd, domain);
		if (r == 0)
			r = tunnel_first_sockaddr(&t, fd, domain, &ss, &sslen);
	} else if (r == 0) {
		gate_hide(fd);
	}
	if (r < 0) {
		gate_restore(fd);
		async_unlock();
		/* Said at the default level: the program sees only
		 * ECONNREFUSED (curl --interface with a proxy of the other
		 * family, the embedded server on 127.0.0.1 among them). */
		preload_log_limited(LOG_LVL_WARN, preload_log_key("family-swap", ""),
		    "proxy %s cannot be reached from this socket (%s%s); the program "
		    "sees ECONNREFUSED", preload_cfg.chain_text, strerror(-r),
		    r == -EADDRNOTAVAIL ? ": it is bound to an address of the other "
		    "family than the proxy's" : "");
		connect_trace(dest, ECONNREFUSED, NULL);
		return -ECONNREFUSED;
	}
	/* Engine and blocking driver alike work on a copy: a number the
	 * program closes or reuses meanwhile is never written to. */
	if (async_make_copy(s, fd) != 0) {
		gate_restore(fd);
		async_unlock();
		return ASYNC_SYNC;
	}
	s->inline_ = blocking;
	deadline = tunnel_now_ms() + preload_cfg.timeout_ms;
	(void)tunnel_attempt(&t, deadline);
	r = async_dial(fd, &ss, sslen, flags, &s->dialled);
	/* Refused at once (no route, no local address): the next
	 * alternative, if any. EISCONN/EALREADY: the kernel's answer to a
	 * second connect(), the socket untouched. */
	if (r < 0 && r != -EISCONN && r != -EALREADY) {
		t.dial_err = -r;
		r = -async_move_on(&t, fd, -r, deadline, &s->dialled);
	}
	if (r < 0) {
		if (s->copy >= 0)
			(void)PRELOAD_REAL(close)(s->copy);
		s->copy = -1;
		gate_restore(fd);
		async_unlock();
		if (r != -EISCONN && r != -EALREADY)
			connect_trace(dest, -r, &t);
		return r;
	}
	s->cookie = peer_cookie(fd);
	s->fds[0] = fd;
	s->nfds = 1;
	s->deadline = deadline;
	s->t = t;
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	s->peerlen = len < sizeof(s->peer) ? len : sizeof(s->peer);
	dlen = strlen(dest);
	memcpy(s->dest, dest, dlen < sizeof(s->dest) ? dlen + 1 : sizeof(s->dest));
	s->dest[sizeof(s->dest) - 1] = '\0';
	s->state = SLOT_PENDING;
	async_npending++;
	__atomic_store_n(&async_active, async_npending, __ATOMIC_RELEASE);
	async_index_set(fd, s);
	if (blocking) {
		s->waiters++;	/* the caller's hold: see async_drive_inline() */
		gen = s->gen;
		async_unlock();
		return async_drive_inline(s, gen, fd);
	}
	/* A failure here is the socket's: SO_ERROR tells it. */
	(void)async_to_engine(s, EPOLLOUT);
	async_unlock();
	return -EINPROGRESS;
}

/* fd, an unbound IPv6-only socket, may reach IPv4 addresses from now on;
 * getsockopt(IPV6_V6ONLY) still answers 1 (peer.c). 0 or -errno. */
static int
async_v6_both(int fd)
{
	int off = 0;

	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0)
		return -errno;
	peer_swapped(fd, AF_INET6);
	return 0;
}

/* Socket options a swapped socket keeps: the int ones of either family. */
static const struct { int level, name; } async_swap_opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT },
	{ SOL_SOCKET, SO_KEEPALIVE }, { SOL_SOCKET, SO_SNDBUF },
	{ SOL_SOCKET, SO_RCVBUF }, { SOL_SOCKET, SO_PRIORITY },
	{ SOL_SOCKET, SO_MARK }, { SOL_SOCKET, SO_OOBINLINE },
	{ SOL_SOCKET, SO_RCVLOWAT }, { SOL_SOCKET, SO_BUSY_POLL },
	{ IPPROTO_TCP, TCP_NODELAY }, { IPPROTO_TCP, TCP_KEEPIDLE },
	{ IPPROTO_TCP, TCP_KEEPINTVL }, { IPPROTO_TCP, TCP_KEEPCNT },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT }, { IPPROTO_TCP, TCP_MAXSEG },
	{ IPPROTO_TCP, TCP_QUICKACK }, { IPPROTO_TCP, TCP_NOTSENT_LOWAT },
	{ IPPROTO_TCP, TCP_SYNCNT }, { IPPROTO_TCP, TCP_WINDOW_CLAMP },
};

static void
async_copy_opt(int from, int to, int level, int name, size_t size)
{
	uint8_t buf[256];
	socklen_t len = (socklen_t)size;

	if (preload_real.getsockopt(from, level, name, buf, &len) == 0)
		(void)setsockopt(to, level, name, buf, len);
}

/*
 * fd (an unbound TCP socket) becomes a socket of family domain: a new
 * socket, with fd's options, status flags and FD_CLOEXEC, dup3()ed over it.
 * The epoll registrations of fd were hidden by the caller and are added back
 * to the new socket at the end of the handshake. 0 or -errno.
 */
int
async_swap_family(int fd, int domain)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local), ilen = sizeof(int);
	struct sockaddr_in *l4 = (struct sockaddr_in *)&local;
	struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&local;
	int proto = 0, flags, fdflags, ns, old, tos;
	size_t i;

	/* A bound socket keeps its address, which the other family lacks. */
	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&local, &len) != 0)
		return -errno;
	if ((local.ss_family == AF_INET && (l4->sin_port != 0 || l4->sin_addr.s_addr != 0)) ||
	    (local.ss_family == AF_INET6 && (l6->sin6_port != 0 ||
	    !IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr))))
		return -EADDRNOTAVAIL;
	old = local.ss_family;
	(void)preload_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &ilen);
	flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	fdflags = PRELOAD_REAL(fcntl)(fd, F_GETFD);
	if (flags < 0 || fdflags < 0)
		return -errno;
	ns = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, proto);
	if (ns < 0)
		return -errno;
	for (i = 0; i < sizeof(async_swap_opts) / sizeof(async_swap_opts[0]); i++)
		async_copy_opt(fd, ns, async_swap_opts[i].level, async_swap_opts[i].name,
		    sizeof(int));
	async_copy_opt(fd, ns, SOL_SOCKET, SO_LINGER, sizeof(struct linger));
	async_copy_opt(fd, ns, SOL_SOCKET, SO_RCVTIMEO, sizeof(struct timeval));
	async_copy_opt(fd, ns, SOL_SOCKET, SO_SNDTIMEO, sizeof(struct timeval));
	async_copy_opt(fd, ns, SOL_SOCKET, SO_BINDTODEVICE, IFNAMSIZ);
	async_copy_opt(fd, ns, IPPROTO_TCP, TCP_CONGESTION, ASYNC_CA_NAME_BYTES);
	/* The traffic class, under the other family's name. */
	ilen = sizeof(int);
	if (preload_real.getsockopt(fd, old == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
	    old == AF_INET ? IP_TOS : IPV6_TCLASS, &tos, &ilen) == 0 && tos != 0)
		(void)setsockopt(ns, domain == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
		    domain == AF_INET ? IP_TOS : IPV6_TCLASS, &tos, sizeof(tos));
	if (PRELOAD_REAL(dup3)(ns, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		int err = errno;

		(void)PRELOAD_REAL(close)(ns);
		return -err;
	}
	(void)PRELOAD_REAL(close)(ns);
	(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);
	peer_swapped(fd, old);
	preload_log(LOG_LVL_DEBUG, "socket %d: IPv%d socket swapped for IPv%d to "
	    "reach proxy %s", fd, old == AF_INET ? 4 : 6, domain == AF_INET ? 4 : 6,
	    preload_cfg.chain_text);
	return 0;
}
