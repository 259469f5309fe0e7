/*
 * supervisor.c: the seccomp front end of the client engine, for programs the
 * library cannot reach (static, Go, raw system calls) and, in auto mode,
 * whatever a library-reached program execs later.
 *
 * The launcher forks COMMAND under a seccomp filter (supervisor_filter.c)
 * that stops connect(), getpeername(), sendmsg(), sendmmsg() and sendto()
 * with a destination, in every process of the tree, unless the library
 * made the call (its mark). Each stopped call becomes a notification on the
 * listener, served here in the launcher (by its receiver threads or its
 * own thread, one at a time: see below). No ptrace: the
 * program's thread sleeps in the kernel until we answer, and nothing else
 * of the program slows down.
 *
 * One notification, in order:
 *
 *   1. RECV; the calling thread's descriptor is copied into this process
 *      with pidfd_open(tid) + pidfd_getfd(): the program's own socket, the
 *      same open file. Its family and type come from the socket (SO_DOMAIN,
 *      SO_TYPE), never from memory the program can still change.
 *   2. Not IPv4/IPv6 (UNIX, netlink...): CONTINUE. Such a socket can reach
 *      no network address, whatever the sockaddr says by then. A TCP
 *      send without MSG_FASTOPEN: CONTINUE, TCP ignores its address.
 *   3. Else the arguments are read once (process_vm_readv) into our memory,
 *      NOTIF_ID_VALID confirms the thread still waits in that very call
 *      (so the memory read was its), and from then on only our copy
 *      counts: what we connect to and send is what we checked. Nothing
 *      IPv4/IPv6 is ever answered with CONTINUE.
 *   4. The policy (policy.c, the library's): a tunnel, a direct connection
 *      (excluded, the proxy itself), a refusal with the contract's errno,
 *      or, under remote resolution, a DNS conversation (port 53, UDP or
 *      TCP) redirected to our own responder (supervisor_dns.c).
 *
 * A tunnel is a job: our copy of the socket dials the first hop without
 * blocking (O_NONBLOCK set for the dial only, as the library does), then
 * tunnel.c's machine runs the chain's handshake on readiness from our
 * epoll set. The program's connect() is answered only when the handshake
 * is over: 0, or the contract's errno after the socket is dissolved. A
 * program that polls for writability (Go) would otherwise write into a
 * half-made tunnel. Our copy is then closed.
 *
 * A signal to the waiting thread (Go preempts threads with SIGURG)
 * interrupts the notification; the kernel restarts the call and we get a
 * new notification for the same socket (its SO_COOKIE): it joins the job,
 * and every id of the job is answered at the end (the stale ones fail
 * harmlessly). A socket connected by a job whose every id was gone
 * answers the next connect() with 0, later ones with EISCONN, as the
 * kernel does after a connect it finished in the background.
 *
 * A direct connection is made by us too, on our copy, to the address we
 * checked: non-blocking program socket, EINPROGRESS as the kernel says it;
 * blocking, a job that waits for writability and answers SO_ERROR.
 *
 * Datagrams (UDP, ICMP, raw) with a destination are sent by us, from our
 * copy, with the data we read; the program gets the byte count. A
 * connect() of a datagram socket is checked and made here, so its later
 * send()s need no check. getpeername() of a socket a job tunnelled answers
 * the address the program asked for (by SO_COOKIE, SUP_PEER_SETS x
 * SUP_PEER_WAYS kept, the oldest of a set replaced).
 *
 * Taking a call at once. Until we RECV a notification, a signal to the
 * calling thread still interrupts it (WAIT_KILLABLE_RECV protects it only
 * from then on): with a handler installed without SA_RESTART (Python's, a
 * shell's), connect() returns EINTR while nothing was begun, and a program
 * that then polls for writability, as POSIX allows after EINTR, finds an
 * unconnected socket and its first send fails (EPIPE). The kernel gives no
 * way to close that window, only to narrow it: SUP_RECEIVERS (2) receiver
 * threads wait in SECCOMP_IOCTL_NOTIF_RECV (with SYNC_WAKE_UP, Linux 6.6,
 * the kernel wakes them, and a receiver polling the listener, on the CPU
 * of the calling thread; the first to run takes the call), so that one is
 * there while another serves. They block every signal. A
 * receiver ends when no process of the tree is left (the listener hangs
 * up) or on an error; the last one closes the pipe's write end. Then, or
 * when none can be started at all, the launcher's thread takes the calls
 * itself from the listener (the window is wider, nothing else).
 *
 * Who serves a call a receiver took. All state here is the launcher's and
 * one mutex (sup_lock) covers it: the launcher's thread holds it for all
 * of sup_service() and sup_timeout_ms(), and from sup_start() until
 * everything is set up. A receiver serves the call itself, under the
 * lock, when it gets the lock at once (trylock), nothing a receiver
 * passed on waits in the pipe (sup.piped: calls are served about in the
 * order taken; one thread has one call at a time, and a restarted call
 * joins its job or gets EALREADY whichever comes first) and no other
 * call waits to be taken (a poll() of the listener: serving would leave
 * that one open to signals for as long). Otherwise it passes the call
 * whole through the pipe to the launcher's thread, as before receivers
 * served.
 *
 * Serving, it dials and sends the first handshake bytes, then waits for
 * the proxy's answer itself, without the lock, in a poll() of the job's
 * socket and of the listener (sup_hold(); the job is "held": in no epoll
 * set, passed by sup_sweep() and sup_next_due()). The answer first, and
 * the lock free: it finishes the job as the launcher's thread would have.
 * Another call first, the job's due time, or the lock taken: the job goes
 * to the launcher's thread without waiting for the lock (the receiver's
 * own slot in sup.unhold, and the eventfd sup.kick), whose sup_service()
 * or the next sup_serve_here() puts it in the epoll set, and the receiver
 * goes back to RECV at once. A job a receiver started that is due before
 * the launcher's thread means to wake (sup.sleep_until, set by
 * sup_timeout_ms()) writes to the eventfd too: its poll() ends and asks
 * sup_timeout_ms() again.
 *
 * What that bought, on one CPU (bench_supervisor.sh): a connect costs
 * about 15 µs over the library's, where handing each call to the
 * launcher's thread cost 43. What it costs: while a receiver serves (some
 * 10 µs of system calls), a call that comes meanwhile waits for the other
 * one; with 16 threads connecting under a signal every 50 µs, 11-14 in
 * 10,000 connects said EINTR with nothing begun, against 4-13 when the
 * one receiver only passed calls on. And what blocks while serving (a log
 * line to a stalled stderr, process_vm_readv() of memory a slow file
 * backs) holds the lock, and the launcher's thread with it.
 *
 * What cannot wait: the pipe is served from an epoll set the launcher
 * polls; nothing here blocks but a datagram send on a blocking socket whose
 * buffer is full. The supervisor lives as long as COMMAND: once it exits,
 * every remaining process of the tree gets ENOSYS from the kernel for the
 * supervised calls: it fails closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "preload.h"
#include "supervisor.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS	/* Linux 6.6 */
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS	SECCOMP_IOW(4, uint64_t)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP	(1UL << 0)
#endif

#ifndef PIDFD_THREAD
#define PIDFD_THREAD		O_EXCL	/* Linux 6.9: a pidfd for one thread */
#endif

#define SUP_JOBS_CHUNK		1024		/* connects answered later: a chunk of jobs, */
#define SUP_JOBS		(16 * SUP_JOBS_CHUNK)	/* ... allocated as needed, up to this many */
#define SUP_JOB_IDS		4		/* restarted calls joining one job */
#define SUP_PEER_SETS		512		/* tunnelled sockets getpeername() knows: */
#define SUP_PEER_WAYS		8		/* ... sets by cookie of this many, the oldest replaced */
#define SUP_SEND_MAX		65536		/* bytes of one datagram or fast-open send */
#define SUP_IOV_MAX		64		/* iovecs of one message */
#define SUP_CONTROL_MAX		4096		/* ancillary bytes of one message */
#define SUP_MMSG_MAX		64		/* messages of one sendmmsg() */
#define SUP_EVENTS		64
#define SUP_ROUNDS		16		/* epoll rounds per sup_service() */
#define SUP_SWEEP_MS		1000		/* how often waiting ids are checked */
#define SUP_STATUS_MAX		4096		/* /proc/TID/status read for Tgid */
#define SUP_LIBS		256		/* processes with the library known */
#define SUP_PIDFDS		512		/* threads whose pidfd is kept */
#define SUP_DNSRW_SETS		64		/* sockets whose DNS replies show the nameserver: */
#define SUP_DNSRW_WAYS		8		/* ... sets by cookie of this many, the oldest replaced */
#define SUP_OPTIONS_MAX		256		/* IP options or routing header read to see if any */
#define SUP_LIB_UP		8		/* ancestors asked for a fork()ed child's token */
#define SUP_MAPS_CHUNK		4096		/* /proc/PID/maps read per call */
#define SUP_MAPS_LINE		4096		/* room for a line across two reads */
#define SUP_RECEIVER_STACK	(256 * 1024)	/* it serves calls too (sup_lock) */
#define SUP_RECEIVERS		2		/* one takes a call while another serves */

enum sup_job_kind { JOB_FREE = 0, JOB_TUNNEL, JOB_WAIT };

struct sup_job {
	int kind;			/* enum sup_job_kind */
	uint32_t idx;			/* its number, for epoll (sup_jobat()) */
	uint32_t gen;			/* tells a stale epoll event from ours */
	int fd;				/* our copy of the program's socket */
	uint64_t cookie;
	uint64_t ids[SUP_JOB_IDS];
	int nids;
	bool dialled;
	bool watched;			/* in sup.ep */
	bool held;			/* the receiver waits on it (sup_hold()) */
	long long deadline;		/* JOB_TUNNEL: SOCKSIFY_TIMEOUT */
	struct tunnel t;
	struct sockaddr_storage peer;	/* what the program connect()ed to */
	socklen_t peerlen;
	char dest[S5_ADDR_TEXT_MAX];
	uint8_t *data;			/* fast-open data, sent once connected */
	size_t data_len;
	int send_flags;
	pid_t tid;			/* sendmmsg(): the caller, whose */
	uint64_t mmsg_len;		/* msg_len we write (0: not sendmmsg) */
};

/* The head of an entry of a table by SO_COOKIE (sup_way()). */
struct sup_way {
	uint64_t cookie;		/* 0: empty */
	uint64_t seq;			/* when set: the oldest of a set goes */
};

struct sup_peer {
	struct sup_way w;
	struct sockaddr_storage sa;
	socklen_t len;
	bool fresh;			/* connected with nobody told: next connect() 0 */
};

/* A socket whose DNS query went to our resolver in place of ns. */
struct sup_dnsrw {
	struct sup_way w;
	struct sockaddr_storage ns, resolver;
	socklen_t nslen, resolverlen;
};

/* A kept pidfd of one thread. */
struct sup_pidfd {
	pid_t tid;
	int fd;				/* -1: none */
};

/* A process that said hello (load.c): the library is in it. */
struct sup_lib {
	pid_t tgid;			/* 0: empty */
	uint64_t addr;			/* its struct preload_hello */
	struct preload_hello hello;
};

/* A fast-open send: the data to send once connected, and for sendmmsg()
 * where its msg_len goes (0: not sendmmsg). */
struct sup_fastopen {
	const uint8_t *data;
	size_t len;
	int flags;
	pid_t tid;
	uint64_t mmsg_len;
};

/* One message read from the program. */
struct sup_msg {
	struct sockaddr_storage name;
	socklen_t namelen;		/* 0: none */
	size_t len;
	socklen_t controllen;
};

static struct {
	int listener, ep;
	int taken[2];			/* the receiver thread's pipe of notifications */
	struct seccomp_notif_sizes sizes;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	struct sup_job *jobs[SUP_JOBS / SUP_JOBS_CHUNK];	/* chunks, never moved */
	size_t jobs_hi;			/* jobs[] in use lie below */
	struct sup_peer peers[SUP_PEER_SETS][SUP_PEER_WAYS];
	struct sup_lib libs[SUP_LIBS];
	struct sup_pidfd pidfds[SUP_PIDFDS];
	struct sup_dnsrw dnsrw[SUP_DNSRW_SETS][SUP_DNSRW_WAYS];
	uint64_t way_seq;		/* sup_way()'s clock */
	uint32_t gen;
	long long next_sweep;
	long long sleep_until;		/* the launcher's poll() ends by then */
	bool serving;			/* the receiver serves a call */
	struct sup_job *held;		/* a job it started, to wait on */
	struct sup_job *unhold[SUP_RECEIVERS];	/* held jobs given back unlocked */
	int receivers;			/* receiver threads alive: the pipe's writers */
	int kick;			/* eventfd: a job due sooner than that */
	unsigned piped;			/* calls in the pipe, not yet served */
	uint8_t data[SUP_SEND_MAX];
	uint8_t control[SUP_CONTROL_MAX];
} sup = { .listener = -1, .ep = -1, .taken = { -1, -1 }, .kick = -1,
    .sleep_until = LLONG_MAX };

/* Guards sup and every other state of the supervisor (see the top). */
static pthread_mutex_t sup_lock = PTHREAD_MUTEX_INITIALIZER;

static long long
sup_now(void)
{
	return tunnel_now_ms();
}

/* --- talking to the kernel about one notification ---------------------- */

static bool
sup_valid(uint64_t id)
{
	return ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* Answer id: val, or -1 with err. False when the call is gone. */
static bool
sup_reply(uint64_t id, long long val, int err)
{
	memset(sup.resp, 0, sup.sizes.seccomp_notif_resp);
	sup.resp->id = id;
	sup.resp->val = err != 0 ? -1 : val;
	sup.resp->error = err != 0 ? -err : 0;
	return ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_SEND, sup.resp) == 0;
}

/* Let the kernel run the call as the program made it: only where the
 * socket itself cannot reach the network around the tunnel (above). */
static void
sup_continue(uint64_t id)
{
	memset(sup.resp, 0, sup.sizes.seccomp_notif_resp);
	sup.resp->id = id;
	sup.resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	(void)ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_SEND, sup.resp);
}

/* Answer id with err, done with our copy fd. */
static void
sup_fail(uint64_t id, int fd, int err)
{
	sup_reply(id, 0, err);
	close(fd);
}

static int
sup_read(pid_t tid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };

	if (len == 0)
		return 0;
	return process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)len ?
	    0 : -EFAULT;
}

static int
sup_write(pid_t tid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec local = { (void *)buf, len }, remote = { (void *)(uintptr_t)addr, len };

	if (len == 0)
		return 0;
	return process_vm_writev(tid, &local, 1, &remote, 1, 0) == (ssize_t)len ?
	    0 : -EFAULT;
}

/* A number field of /proc/TID/status ("Tgid", "PPid"), or -1. */
static pid_t
sup_status_field(pid_t tid, const char *field)
{
	char path[64], key[32], buf[SUP_STATUS_MAX], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	snprintf(key, sizeof(key), "\n%s:", field);
	if ((p = strstr(buf, key)) == NULL)
		return -1;
	return (pid_t)strtol(p + strlen(key), NULL, 10);
}

/* A pidfd of thread tid, or -1: kept while it works (PIDFD_THREAD, or tid
 * a process's main thread, so the pidfd names that very task, never a
 * later one with the number), else made for this call (*keep false). */
static int
sup_pidfd(pid_t tid, bool *keep)
{
	struct sup_pidfd *c = &sup.pidfds[(uint32_t)tid % SUP_PIDFDS];
	int pidfd, err;
	pid_t tgid;

	if (c->tid == tid && c->fd >= 0) {
		*keep = true;
		return c->fd;
	}
	*keep = false;
	pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (pidfd < 0 && errno == EINVAL)
		pidfd = (int)syscall(SYS_pidfd_open, tid, 0);
	if (pidfd >= 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->tid = tid;
		c->fd = pidfd;
		*keep = true;
		return pidfd;
	}
	err = errno;
	if (err != EINVAL)
		return -err;
	/* Another thread than the main one, before PIDFD_THREAD (Linux 6.9):
	 * its process's pidfd, for this call only (the number may be reused
	 * by another process's thread later), and only when the thread uses
	 * its process's descriptor table: one of its own (unshare(CLONE_FILES))
	 * would have another socket under the same number. */
	if ((tgid = sup_status_field(tid, "Tgid")) <= 0)
		return -ESRCH;
	if (syscall(SYS_kcmp, tid, tgid, KCMP_FILES, 0, 0) != 0) {
		preload_log(LOG_LVL_ERROR, "thread %ld has descriptors of its own: "
		    "its socket calls are refused (EPERM)", (long)tid);
		return -EPERM;
	}
	pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	return pidfd >= 0 ? pidfd : -errno;
}

static void
sup_pidfd_drop(pid_t tid)
{
	struct sup_pidfd *c = &sup.pidfds[(uint32_t)tid % SUP_PIDFDS];

	if (c->tid == tid && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Our copy of descriptor fd of thread tid, or -errno. The caller checks the
 * notification is still valid afterwards: then tid was that thread. */
static int
sup_getfd(pid_t tid, int fd)
{
	int pidfd, copy, err;
	bool keep;

	if ((pidfd = sup_pidfd(tid, &keep)) < 0)
		return pidfd;
	copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	err = errno;
	if (!keep) {
		close(pidfd);
	} else if (copy < 0 && err == ESRCH) {
		/* A kept pidfd of a thread that is gone: the caller is a new
		 * thread with the old number. */
		sup_pidfd_drop(tid);
		if ((pidfd = sup_pidfd(tid, &keep)) < 0)
			return pidfd;
		copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		err = errno;
		if (!keep)
			close(pidfd);
	}
	return copy >= 0 ? copy : -err;
}

static int
sup_sockopt(int fd, int opt)
{
	socklen_t len = sizeof(int);
	int v;

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) != 0)
		return -errno;
	return v;
}

static uint64_t
sup_cookie(int fd)
{
	socklen_t len = sizeof(uint64_t);
	uint64_t c = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) != 0)
		return 0;
	return c;
}

static bool
sup_connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* --- what getpeername() answers ----------------------------------------- */

/*
 * The set of cookie in a table of nsets (a power of two) sets. A mixing
 * hash, not cookie % nsets: the kernel hands cookies out to each CPU in
 * blocks of 4096, so live sockets of two CPUs often share a remainder.
 */
static size_t
sup_cookie_set(uint64_t cookie, size_t nsets)
{
	return (size_t)((cookie * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (nsets - 1);
}

/*
 * cookie's entry in set, nways entries of size bytes each, each beginning
 * with a struct sup_way: its own, or NULL; with take, when it has none, a
 * free one or the one set longest ago, made cookie's (many sockets at
 * once: a resolver querying in parallel, a program with many connections).
 */
static void *
sup_way(void *set, size_t nways, size_t size, uint64_t cookie, bool take)
{
	struct sup_way *w, *pick = NULL;
	size_t i;

	if (cookie == 0)
		return NULL;
	for (i = 0; i < nways; i++) {
		w = (struct sup_way *)((char *)set + i * size);
		if (w->cookie == cookie)
			return w;
		if (pick == NULL || (pick->cookie != 0 && (w->cookie == 0 || w->seq < pick->seq)))
			pick = w;
	}
	if (!take)
		return NULL;
	pick->cookie = cookie;
	pick->seq = ++sup.way_seq;
	return pick;
}

static struct sup_peer *
sup_peer_find(uint64_t cookie)
{
	return sup_way(sup.peers[sup_cookie_set(cookie, SUP_PEER_SETS)], SUP_PEER_WAYS,
	    sizeof(struct sup_peer), cookie, false);
}

static void
sup_peer_forget(uint64_t cookie)
{
	struct sup_peer *p = sup_peer_find(cookie);

	if (p != NULL)
		p->w.cookie = 0;
}

static void
sup_peer_remember(uint64_t cookie, const struct sockaddr_storage *sa,
    socklen_t len, bool fresh)
{
	struct sup_peer *p = sup_way(sup.peers[sup_cookie_set(cookie, SUP_PEER_SETS)],
	    SUP_PEER_WAYS, sizeof(struct sup_peer), cookie, true);

	if (p == NULL)
		return;
	p->sa = *sa;
	p->len = len;
	p->fresh = fresh;
}

/* --- jobs ---------------------------------------------------------------- */

/* Job i, below sup.jobs_hi or in a chunk allocated already. Jobs never
 * move: a receiver holds a pointer to one (sup.held, sup.unhold). */
static struct sup_job *
sup_jobat(size_t i)
{
	return &sup.jobs[i / SUP_JOBS_CHUNK][i % SUP_JOBS_CHUNK];
}

static struct sup_job *
sup_job_find(uint64_t cookie)
{
	size_t i;

	for (i = 0; i < sup.jobs_hi; i++)
		if (sup_jobat(i)->kind != JOB_FREE && sup_jobat(i)->cookie == cookie)
			return sup_jobat(i);
	return NULL;
}

/* A free job, its chunk allocated if need be (a thousand connects under
 * way take one): NULL when SUP_JOBS are under way, or out of memory. */
static struct sup_job *
sup_job_new(int kind, int fd, uint64_t cookie, uint64_t id)
{
	struct sup_job *j;
	size_t i;

	for (i = 0; i < SUP_JOBS; i++) {
		if (sup.jobs[i / SUP_JOBS_CHUNK] == NULL &&
		    (sup.jobs[i / SUP_JOBS_CHUNK] = calloc(SUP_JOBS_CHUNK, sizeof(*j))) == NULL)
			return NULL;
		if (sup_jobat(i)->kind == JOB_FREE)
			break;
	}
	if (i == SUP_JOBS)
		return NULL;
	j = sup_jobat(i);
	memset(j, 0, offsetof(struct sup_job, t));
	j->idx = (uint32_t)i;
	j->kind = kind;
	j->gen = ++sup.gen & 0xffffffu;
	j->fd = fd;
	j->cookie = cookie;
	j->ids[0] = id;
	j->nids = 1;
	j->data = NULL;
	j->data_len = 0;
	j->mmsg_len = 0;
	j->peerlen = 0;
	j->dest[0] = '\0';
	if (i + 1 > sup.jobs_hi)
		sup.jobs_hi = i + 1;
	return j;
}

static void
sup_job_join(struct sup_job *j, uint64_t id)
{
	if (j->nids < SUP_JOB_IDS)
		j->ids[j->nids++] = id;
	else
		j->ids[SUP_JOB_IDS - 1] = id;	/* the newest matters most */
}

/* The job's socket in sup.ep, for events: 0 or -errno. */
static int
sup_job_watch(struct sup_job *j, uint32_t events)
{
	struct epoll_event ev = { .events = events,
	    .data.u64 = SUP_EV(SUP_EV_JOB, j->gen, j->idx) };

	if (epoll_ctl(sup.ep, j->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, j->fd, &ev) != 0)
		return -errno;
	j->watched = true;
	return 0;
}

/* Answer every id of the job: val to the call that made it (ids[0]: a
 * fast-open send's byte count), 0 to the connect()s that joined it. True
 * when one of them was still there. */
static bool
sup_job_reply(struct sup_job *j, long long val, int err)
{
	bool any = false;
	int i;

	for (i = 0; i < j->nids; i++)
		any |= sup_reply(j->ids[i], i == 0 ? val : 0, err);
	return any;
}

static void
sup_job_free(struct sup_job *j)
{
	if (j->watched)
		(void)epoll_ctl(sup.ep, EPOLL_CTL_DEL, j->fd, NULL);
	close(j->fd);
	free(j->data);
	j->data = NULL;
	j->kind = JOB_FREE;
	while (sup.jobs_hi > 0 && sup_jobat(sup.jobs_hi - 1)->kind == JOB_FREE)
		sup.jobs_hi--;
}

/* A connected job's fast-open data, sent now: the byte count, or -errno. */
static long long
sup_job_send_data(struct sup_job *j)
{
	ssize_t n;

	if (j->data == NULL)
		return 0;
	n = send(j->fd, j->data, j->data_len, (j->send_flags & ~MSG_FASTOPEN) |
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	return n >= 0 ? n : -errno;
}

/* The end of a job: err 0 (connected) or a positive errno. */
static void
sup_job_finish(struct sup_job *j, int err)
{
	long long val = 0;
	bool told;

	if (j->kind == JOB_TUNNEL) {
		if (err != 0) {
			tunnel_unlearn(&j->t);
			tunnel_dissolve(j->fd);
		}
		connect_trace(j->dest, err, &j->t);
	}
	if (err == 0) {
		/* A connect() that waited: the socket's own state moves to
		 * connected now, as the program's call would have moved it. */
		if (j->kind == JOB_WAIT && j->peerlen > 0)
			(void)connect(j->fd, (struct sockaddr *)&j->peer, j->peerlen);
		if ((val = sup_job_send_data(j)) < 0) {
			err = (int)-val;
			val = 0;
		}
	}
	/* sendmmsg(): one message sent, its length in the program's vector
	 * (written only while the call still waits there). */
	if (err == 0 && j->mmsg_len != 0) {
		unsigned int sent = (unsigned int)val;

		if (j->nids > 0 && sup_valid(j->ids[0]) &&
		    sup_write(j->tid, j->mmsg_len, &sent, sizeof(sent)) != 0)
			err = EFAULT;
		val = 1;
	}
	told = sup_job_reply(j, val, err);
	if (j->kind == JOB_TUNNEL && err == 0)
		sup_peer_remember(j->cookie, &j->peer, j->peerlen, !told);
	sup_job_free(j);
}

static int sup_dial(int fd, const struct sockaddr *sa, socklen_t len, bool *nonblock);

/* When a tunnel job must move on: its attempt's deadline (an alternative's
 * share of SOCKSIFY_TIMEOUT), never after the connect's. */
static long long
sup_job_due(const struct sup_job *j)
{
	long long due = tunnel_due(&j->t);

	return due < j->deadline ? due : j->deadline;
}

/*
 * A tunnel job failed with err (a dial's failure with j->t.dial_err set):
 * on to the next alternative of the failed hop when there is one (the job
 * waits for that dial), else the end (failover.c).
 */
static void
sup_job_fail(struct sup_job *j, int err)
{
	struct sockaddr_storage hop;
	socklen_t hoplen, olen = sizeof(int);
	bool nonblock, family = false;
	int domain, r;

	while (tunnel_retry(&j->t, j->fd, err, j->deadline)) {
		j->dialled = false;
		if (getsockopt(j->fd, SOL_SOCKET, SO_DOMAIN, &domain, &olen) != 0) {
			err = errno;
			break;
		}
		r = tunnel_first_sockaddr(&j->t, j->fd, domain, &hop, &hoplen);
		if (r == 0)
			r = sup_dial(j->fd, (struct sockaddr *)&hop, hoplen, &nonblock);
		if (r == 0 || r == -EINPROGRESS) {
			if (sup_job_watch(j, EPOLLOUT) == 0)
				return;
			err = ENOMEM;
			break;
		}
		if (r == -EPERM) {
			sup_job_finish(j, EPERM);
			return;
		}
		err = -r;
		family = r == -EAFNOSUPPORT;
		if (!family)
			j->t.dial_err = err;
	}
	if (j->t.dial_err != 0)
		err = -tunnel_dial_errno(&j->t, j->t.dial_err);
	else if (family)
		err = ECONNREFUSED;	/* said as such (TR_FAMILY), not "closed" */
	j->t.family = family && j->t.dial_err == 0;
	sup_job_finish(j, err);
}

/*
 * The first handshake bytes of a job just dialled, before any wait: to a
 * proxy on this host the dial is over when connect() returns. A socket
 * still in SYN_SENT answers EAGAIN (TUNNEL_WRITE: wait for writability, as
 * after any dial), a refused one the dial's error (async.c does the same).
 */
static void
sup_job_early(struct sup_job *j)
{
	int r = tunnel_step(&j->t, j->fd);

	if (r < 0) {
		/* A failure of the machine itself (t.why) is no dial's. */
		if (j->t.why == 0)
			j->t.dial_err = -r;
		sup_job_fail(j, -r);
		return;
	}
	if (r == TUNNEL_DONE) {
		sup_job_finish(j, 0);
		return;
	}
	j->dialled = r != TUNNEL_WRITE;
	/* Served by the receiver, the answer is its to wait for. */
	if (r == TUNNEL_READ && sup.serving && sup.held == NULL) {
		j->held = true;
		sup.held = j;
		return;
	}
	if (sup_job_watch(j, r == TUNNEL_READ ? EPOLLIN : EPOLLOUT) < 0)
		sup_job_finish(j, ENOMEM);
}

/* Readiness of a job's socket (or its deadline, events 0). */
static void
sup_job_event(struct sup_job *j, uint32_t events)
{
	socklen_t elen = sizeof(int);
	int r, err = 0;

	if (j->kind == JOB_WAIT) {
		if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
			err = errno;
		sup_job_finish(j, err);
		return;
	}
	if (!j->dialled) {
		r = tunnel_dial_result(j->fd, (int)events);
		if (r < 0) {
			j->t.dial_err = -r;
			sup_job_fail(j, -r);
			return;
		}
		j->dialled = true;
	}
	r = tunnel_step(&j->t, j->fd);
	if (r == TUNNEL_DONE)
		sup_job_finish(j, 0);
	else if (r < 0)
		sup_job_fail(j, -r);
	else if (sup_job_watch(j, r == TUNNEL_READ ? EPOLLIN : EPOLLOUT) < 0)
		sup_job_finish(j, ECONNREFUSED);
}

/* Our resolver answers only the sockets we sent to it: this one now. */
static void
sup_dns_allow(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		supdns_allow(&ss, len);
}

/*
 * Source routing the program set on its socket (IPv4 IP_OPTIONS, an IPv6
 * routing header) would send what we send through hops nobody checked:
 * -EPERM (and a line) when there is any, else 0.
 */
static int
sup_source_routed(int fd, int domain)
{
	uint8_t opt[SUP_OPTIONS_MAX];
	socklen_t len = sizeof(opt);
	bool routed;

	if (domain == AF_INET6)
		routed = getsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, opt, &len) == 0 && len > 0;
	else
		routed = getsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, &len) == 0 && len > 0;
	if (!routed && domain == AF_INET6) {
		/* A v4-mapped socket may carry IPv4 options too. */
		len = sizeof(opt);
		routed = getsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, &len) == 0 && len > 0;
	}
	if (!routed)
		return 0;
	preload_log(LOG_LVL_ERROR, "a socket with IP options or a routing header: "
	    "refused (EPERM)");
	return -EPERM;
}

/* The ancillary data of a datagram we send for the program: only what
 * changes nothing about where it goes (TOS, TTL, hop limit, traffic class,
 * GSO segment size). */
static bool
sup_control_allowed(socklen_t controllen)
{
	struct msghdr h = { .msg_control = sup.control, .msg_controllen = controllen };
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(&h); c != NULL; c = CMSG_NXTHDR(&h, c)) {
		if ((c->cmsg_level == IPPROTO_IP && (c->cmsg_type == IP_TOS ||
		    c->cmsg_type == IP_TTL)) ||
		    (c->cmsg_level == IPPROTO_IPV6 && (c->cmsg_type == IPV6_TCLASS ||
		    c->cmsg_type == IPV6_HOPLIMIT)) ||
		    (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_SEGMENT))
			continue;
		preload_log(LOG_LVL_ERROR, "a datagram with ancillary data %d/%d: "
		    "refused (EPERM)", c->cmsg_level, c->cmsg_type);
		return false;
	}
	return true;
}

/* connect(fd, sa) with the socket non-blocking for the call only: 0 or
 * -errno, as a non-blocking connect answers. *nonblock: the program's. */
static int
sup_dial(int fd, const struct sockaddr *sa, socklen_t len, bool *nonblock)
{
	int flags, r, err;

	if ((r = sup_source_routed(fd, sa->sa_family == AF_INET6 ? AF_INET6 : AF_INET)) < 0)
		return r;
	flags = fcntl(fd, F_GETFL);
	*nonblock = flags >= 0 && (flags & O_NONBLOCK);
	if (flags >= 0 && !*nonblock)
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	r = connect(fd, sa, len);
	err = errno;
	if (flags >= 0 && !*nonblock)
		(void)fcntl(fd, F_SETFL, flags);
	return r == 0 ? 0 : -err;
}

/* A new job takes the program's address and its fast-open send (fo, or
 * NULL): 0, or -ENOMEM. */
static int
sup_job_take(struct sup_job *j, const struct sockaddr_storage *sa, socklen_t len,
    const struct sup_fastopen *fo)
{
	j->peer = *sa;
	j->peerlen = len;
	if (fo == NULL)
		return 0;
	j->send_flags = fo->flags;
	j->tid = fo->tid;
	j->mmsg_len = fo->mmsg_len;
	if ((j->data = malloc(fo->len > 0 ? fo->len : 1)) == NULL)
		return -ENOMEM;
	memcpy(j->data, fo->data, fo->len);
	j->data_len = fo->len;
	return 0;
}

/* A connection made directly, by us, to the address we checked; with a
 * fast-open send (fo) the call always waits, to send once connected. dns:
 * the address is our resolver's. */
static void
sup_direct(uint64_t id, int fd, const struct sockaddr_storage *sa, socklen_t len,
    const struct sup_fastopen *fo, bool dns)
{
	struct sup_job *j;
	bool nonblock, going;
	int r;

	r = sup_dial(fd, (const struct sockaddr *)sa, len, &nonblock);
	going = r == 0 || r == -EINPROGRESS || r == -EALREADY;
	if (dns && going)
		sup_dns_allow(fd);
	/* Failed, or done as far as the kernel's own call would go. */
	if (!going || (fo == NULL && (r == 0 || nonblock))) {
		sup_fail(id, fd, -r);
		return;
	}
	j = sup_job_new(JOB_WAIT, fd, sup_cookie(fd), id);
	if (j == NULL) {
		sup_fail(id, fd, EAGAIN);
		return;
	}
	if (sup_job_take(j, sa, len, fo) < 0 || sup_job_watch(j, EPOLLOUT) < 0)
		sup_job_finish(j, ENOMEM);
}

/* A tunnel through the chain to dst, for the program's connect() to sa. */
static void
sup_tunnel(uint64_t id, int fd, int domain, const struct sockaddr_storage *sa,
    socklen_t len, const struct s5_addr *dst, const struct sup_fastopen *fo)
{
	struct sockaddr_storage hop;
	socklen_t hoplen;
	struct tunnel t;
	struct sup_job *j;
	struct sup_peer *p;
	char text[S5_ADDR_TEXT_MAX];
	uint64_t cookie = sup_cookie(fd);
	bool nonblock;
	int r, zero = 0;

	/* A restarted connect() of a socket under way joins its job; to
	 * another address, or a fast-open send, it gets the kernel's
	 * EALREADY (a second job would dissolve the first one's socket). */
	if ((j = sup_job_find(cookie)) != NULL && j->kind == JOB_TUNNEL) {
		if (fo == NULL && j->peerlen == len && memcmp(&j->peer, sa, len) == 0)
			sup_job_join(j, id);
		else
			sup_reply(id, 0, EALREADY);
		close(fd);
		return;
	}
	if (sup_connected(fd)) {
		p = sup_peer_find(cookie);
		if (p != NULL && p->fresh) {
			p->fresh = false;
			sup_reply(id, 0, 0);
		} else {
			sup_reply(id, 0, EISCONN);
		}
		close(fd);
		return;
	}
	if (preload_cfg.proxy_invalid) {
		sup_fail(id, fd, ECONNREFUSED);
		return;
	}
	tunnel_init(&t, dst);
	if ((r = tunnel_all_down(&t)) < 0) {
		/* Every alternative of a hop is down: refused at once. */
		if (s5_addr_format(dst, text, sizeof(text)) < 0)
			strcpy(text, "?");
		connect_trace(text, -r, &t);
		sup_fail(id, fd, -r);
		return;
	}
	r = tunnel_first_sockaddr(&t, fd, domain, &hop, &hoplen);
	/* An IPv6-only socket speaks IPv4 for an IPv4 proxy, or from the start
	 * when a later alternative is IPv4 alone (the next is dialled on the
	 * same socket). */
	if ((r == -EAFNOSUPPORT || (r == 0 && preload_cfg.nalts[0] > 1 &&
	    tunnel_first_mixed(fd, domain))) && domain == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0)
		r = tunnel_first_sockaddr(&t, fd, domain, &hop, &hoplen);
	/* The supervisor swaps no socket: an alternative of this family. */
	while (r == -EAFNOSUPPORT &&
	    tunnel_retry(&t, fd, EAFNOSUPPORT, sup_now() + preload_cfg.timeout_ms))
		r = tunnel_first_sockaddr(&t, fd, domain, &hop, &hoplen);
	if (r < 0) {
		preload_log_limited(LOG_LVL_ERROR, preload_log_key("family",
		    domain == AF_INET ? "4" : "6"), "an IPv%c socket cannot reach proxy %s: "
		    "refused", domain == AF_INET ? '4' : '6', preload_cfg.chain_text);
		sup_fail(id, fd, ECONNREFUSED);
		return;
	}
	if ((j = sup_job_new(JOB_TUNNEL, fd, cookie, id)) == NULL) {
		preload_log_limited(LOG_LVL_ERROR, preload_log_key("jobs", ""),
		    "%d connects under way (or no memory for more): refused with EAGAIN",
		    SUP_JOBS);
		sup_fail(id, fd, EAGAIN);
		return;
	}
	j->t = t;
	if (sup_job_take(j, sa, len, fo) < 0) {
		sup_job_finish(j, ENOMEM);
		return;
	}
	j->deadline = sup_now() + preload_cfg.timeout_ms;
	(void)tunnel_attempt(&j->t, j->deadline);
	if (dst->atyp == S5_ATYP_DOMAIN)
		r = s5_addr_format(dst, j->dest, sizeof(j->dest));
	else
		r = s5_sockaddr_format((const struct sockaddr *)sa, j->dest, sizeof(j->dest));
	if (r < 0)
		strcpy(j->dest, "?");
	r = sup_dial(fd, (struct sockaddr *)&hop, hoplen, &nonblock);
	if (r == -EPERM) {
		/* Refused before any dial (sup_source_routed()). */
		sup_job_finish(j, EPERM);
		return;
	}
	if (r < 0 && r != -EINPROGRESS) {
		j->t.dial_err = -r;
		sup_job_fail(j, -r);
		return;
	}
	sup_job_early(j);
}

/* --- the supervised calls ------------------------------------------------ */

/* TCP (or MPTCP, which falls back to it): a send ignores its address. */
static bool
sup_is_tcp(int fd)
{
	int proto = sup_sockopt(fd, SO_PROTOCOL);

	return proto == IPPROTO_TCP || proto == IPPROTO_MPTCP;
}

/* The socket behind descriptor fd of the calling thread, its family and
 * type; false when answered already (the call failed, or CONTINUE). For a
 * send, send_flags: a TCP send without MSG_FASTOPEN goes on (CONTINUE),
 * since TCP ignores the address of a send. */
static bool
sup_socket(const struct seccomp_notif *n, int fd, int *copy, int *domain, int *type,
    const int *send_flags)
{
	int c = sup_getfd((pid_t)n->pid, fd);

	if (c < 0) {
		/* Every failure is answered (a thread that is gone takes no
		 * answer, harmlessly): EBADF, EPERM... Out of descriptors of
		 * our own is no error of the program's call: EAGAIN, said. */
		if (c == -EMFILE || c == -ENFILE) {
			preload_log_limited(LOG_LVL_ERROR, preload_log_key("nofile", ""),
			    "supervisor: out of descriptors (%s): a call refused with EAGAIN",
			    strerror(-c));
			c = -EAGAIN;
		}
		sup_reply(n->id, 0, -c);
		return false;
	}
	if ((*domain = sup_sockopt(c, SO_DOMAIN)) < 0 ||
	    (*type = policy_socket_type(c, getsockopt)) < 0) {
		sup_reply(n->id, 0, ENOTSOCK);
		close(c);
		return false;
	}
	if ((*domain != AF_INET && *domain != AF_INET6) || (send_flags != NULL &&
	    *type == SOCK_STREAM && !(*send_flags & MSG_FASTOPEN) && sup_is_tcp(c))) {
		close(c);
		sup_continue(n->id);
		return false;
	}
	*copy = c;
	return true;
}

/* After reading the program's memory (r: 0 or -errno): true to go on.
 * Else the call is answered, or gone (then its memory was not its own
 * anymore when we read it), and our copy fd closed. */
static bool
sup_checked(uint64_t id, int fd, int r)
{
	if (!sup_valid(id)) {
		close(fd);
		return false;
	}
	if (r < 0) {
		sup_fail(id, fd, -r);
		return false;
	}
	return true;
}

/* The program's sockaddr at addr (len bytes) into ss: 0 or -errno. */
static int
sup_read_sockaddr(pid_t tid, uint64_t addr, long long len,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	memset(ss, 0, sizeof(*ss));
	if (len < 0 || len > (long long)sizeof(*ss))
		return -EINVAL;
	if (sup_read(tid, addr, ss, (size_t)len) != 0)
		return -EFAULT;
	*sslen = (socklen_t)len;
	return 0;
}

/* The library's hello (load.c): remember where its token is. The answer
 * is the kernel's to getpeername(-1). */
static void
sup_on_hello(const struct seccomp_notif *n)
{
	struct preload_hello h;
	struct sup_lib *l;
	pid_t tgid;
	int r = -EINVAL;

	if (n->data.args[2] == sizeof(h))
		r = sup_read((pid_t)n->pid, n->data.args[1], &h, sizeof(h));
	tgid = r == 0 ? sup_status_field((pid_t)n->pid, "Tgid") : -1;
	if (!sup_valid(n->id))
		return;
	if (r == 0 && tgid > 0 && h.magic == PRELOAD_HELLO_MAGIC) {
		l = &sup.libs[(uint32_t)tgid % SUP_LIBS];
		l->tgid = tgid;
		l->addr = n->data.args[1];
		l->hello = h;
	}
	sup_reply(n->id, 0, EBADF);
}

/* Thread tid belongs to a process whose image said hello, or to a fork()ed
 * descendant of one that still holds its token: its memory shows it. */
static bool
sup_has_library(pid_t tid)
{
	struct preload_hello now;
	struct sup_lib *l, *mine;
	pid_t tgid = sup_status_field(tid, "Tgid"), p = tgid;
	int up;

	for (up = 0; up <= SUP_LIB_UP && p > 1; up++) {
		l = &sup.libs[(uint32_t)p % SUP_LIBS];
		if (l->tgid == p && sup_read(tid, l->addr, &now, sizeof(now)) == 0 &&
		    memcmp(&now, &l->hello, sizeof(now)) == 0) {
			if (p != tgid) {	/* a fork()ed child: now known */
				mine = &sup.libs[(uint32_t)tgid % SUP_LIBS];
				*mine = *l;
				mine->tgid = tgid;
			}
			return true;
		}
		p = sup_status_field(p, "PPid");
	}
	return false;
}

/* The code at ip in thread tid's process is libc's (or libresolv's). */
static bool
sup_ip_in_libc(pid_t tid, uint64_t ip)
{
	char path[64], buf[SUP_MAPS_CHUNK + SUP_MAPS_LINE], *line, *nl, *name;
	unsigned long long lo, hi;
	size_t have = 0;
	ssize_t n;
	bool found = false, done = false;
	char perms[8];
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	while (!done && !found) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
			*nl = '\0';
			if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) != 3 ||
			    ip < lo || ip >= hi)
				continue;
			done = true;
			name = strrchr(line, '/');
			found = perms[2] == 'x' && name != NULL &&
			    (strncmp(name, "/libc.so", 8) == 0 || strncmp(name, "/libc-", 6) == 0 ||
			    strncmp(name, "/libresolv", 10) == 0);
			break;
		}
		/* Keep the unfinished line; one longer than the room is skipped. */
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have >= sizeof(buf) - 1)
			have = 0;
	}
	close(fd);
	return found;
}

/*
 * The call comes from glibc's own code in a process with the library: one
 * of the calls the library never sees and always let through (load.c).
 */
static bool
sup_from_libc(const struct seccomp_notif *n)
{
	return sup_has_library((pid_t)n->pid) &&
	    sup_ip_in_libc((pid_t)n->pid, n->data.instruction_pointer);
}

/* Under remote resolution a conversation with port 53 is the program's own
 * resolver at work: it goes to ours, which answers with placeholders. */
static bool
sup_is_dns(int type, const struct s5_addr *dst)
{
	return preload_cfg.remote_dns && dst->port == POLICY_DNS_PORT &&
	    (type == SOCK_STREAM || type == SOCK_DGRAM);
}

/* The nameserver a socket's redirected DNS query was sent to, if any. */
static struct sup_dnsrw *
sup_dnsrw_find(uint64_t cookie)
{
	return sup_way(sup.dnsrw[sup_cookie_set(cookie, SUP_DNSRW_SETS)], SUP_DNSRW_WAYS,
	    sizeof(struct sup_dnsrw), cookie, false);
}

/* The socket of cookie sends its DNS queries to our resolver (at to) in
 * place of the nameserver ns: its recvfrom() shows our replies as ns's
 * (sup_on_recvfrom()). */
static void
sup_dnsrw_note(uint64_t cookie, const struct sockaddr_storage *ns, socklen_t nslen,
    const struct sockaddr_storage *to, socklen_t tolen)
{
	struct sup_dnsrw *w = sup_way(sup.dnsrw[sup_cookie_set(cookie, SUP_DNSRW_SETS)],
	    SUP_DNSRW_WAYS, sizeof(struct sup_dnsrw), cookie, true);

	if (w == NULL)
		return;		/* no cookie: recvfrom() shows our resolver */
	w->ns = *ns;
	w->nslen = nslen;
	w->resolver = *to;
	w->resolverlen = tolen;
}

static void
sup_dns_redirect(uint64_t id, int fd, int domain, int type,
    const struct sockaddr_storage *sa, socklen_t len)
{
	struct sockaddr_storage to;
	socklen_t tolen, olen = sizeof(int);
	int v6only = 0;

	if (domain == AF_INET6)
		(void)getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen);
	if (supdns_addr(domain, type, v6only != 0, &to, &tolen) < 0) {
		policy_refuse((const struct sockaddr *)sa, "DNS query", "remote DNS, "
		    "and no resolver of ours for this socket");
		sup_fail(id, fd, EPERM);
		return;
	}
	if (preload_cfg.log_level >= LOG_LVL_DEBUG) {
		char text[S5_ADDR_TEXT_MAX];

		if (s5_sockaddr_format((const struct sockaddr *)sa, text, sizeof(text)) < 0)
			strcpy(text, "?");
		preload_log(LOG_LVL_DEBUG, "DNS to %s (%s): answered by socksify",
		    text, type == SOCK_STREAM ? "TCP" : "UDP");
	}
	sup_peer_remember(sup_cookie(fd), sa, len, false);
	/* glibc's res_send() and c-ares take an answer on a connected
	 * socket from its peer's address only, as recvfrom() says it. */
	if (type == SOCK_DGRAM)
		sup_dnsrw_note(sup_cookie(fd), sa, len, &to, tolen);
	sup_direct(id, fd, &to, tolen, NULL, true);
}

/* What to do with a connect (or fast-open send, fo) to sa. libc: the call
 * comes from glibc's own code in a process with the library. */
/* fd listens (SO_ACCEPTCONN). */
static bool
sup_listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

static void
sup_decide(uint64_t id, int fd, int domain, int type,
    const struct sockaddr_storage *sa, socklen_t len,
    const struct sup_fastopen *fo, bool libc)
{
	struct s5_addr dst;
	const char *why;
	int r;

	/* A datagram socket connect()ed anew: what getpeername() said of it
	 * before is over (a TCP socket connects once). */
	if (type != SOCK_STREAM)
		sup_peer_forget(sup_cookie(fd));
	if (len >= sizeof(sa_family_t) && sa->ss_family == AF_UNSPEC && fo == NULL) {
		r = connect(fd, (const struct sockaddr *)sa, len);	/* disconnect */
		sup_fail(id, fd, r == 0 ? 0 : errno);
		return;
	}
	if (len < sizeof(sa_family_t) ||
	    (sa->ss_family != AF_INET && sa->ss_family != AF_INET6) ||
	    (domain == AF_INET && sa->ss_family != AF_INET)) {
		sup_fail(id, fd, len < sizeof(sa_family_t) ? EINVAL : EAFNOSUPPORT);
		return;
	}
	/* An IPv6 TCP socket takes an IPv6 address only, checked by length
	 * first (tcp_v6_connect(): a sockaddr_in is too short, EINVAL). */
	if (domain == AF_INET6 && type == SOCK_STREAM && sa->ss_family != AF_INET6) {
		sup_fail(id, fd, len < sizeof(struct sockaddr_in6) - sizeof(uint32_t) ?
		    EINVAL : EAFNOSUPPORT);
		return;
	}
	/* A listening socket connects nowhere: the kernel's EISCONN, not a
	 * tunnel that fails at our connect() to the proxy. */
	if (type == SOCK_STREAM && sup_listening(fd)) {
		sup_fail(id, fd, EISCONN);
		return;
	}
	/* An IPV6_V6ONLY socket cannot reach an IPv4-mapped address: the
	 * kernel's ENETUNREACH, never a tunnel to the IPv4 host. */
	if (domain == AF_INET6 && sa->ss_family == AF_INET6 && fo == NULL &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr) &&
	    preload_v6only(fd)) {
		sup_fail(id, fd, ENETUNREACH);
		return;
	}
	if (s5_addr_from_sockaddr(&dst, (const struct sockaddr *)sa, len) != 0) {
		sup_fail(id, fd, EINVAL);
		return;
	}
	if (sup_is_dns(type, &dst) && fo == NULL) {
		sup_dns_redirect(id, fd, domain, type, sa, len);
		return;
	}
	/* glibc's own datagram connect() in a process with the library: as
	 * before the supervisor, untouched (made by us, to what we read). */
	if (libc && type != SOCK_STREAM && fo == NULL) {
		sup_direct(id, fd, sa, len, NULL, false);
		return;
	}
	/* A resolver sorting its answers (RFC 6724) connect()s a UDP socket to
	 * each one to learn the source address, sending nothing: refused like
	 * any datagram to a placeholder, but without a line each time. */
	if (type != SOCK_STREAM && fo == NULL && policy_is_placeholder(&dst)) {
		preload_log(LOG_LVL_DEBUG, "datagram socket connect()ed to a "
		    "placeholder: EHOSTUNREACH");
		sup_fail(id, fd, EHOSTUNREACH);
		return;
	}
	r = policy_connect(type, (const struct sockaddr *)sa, len, &dst, &why);
	if (r < 0) {
		sup_fail(id, fd, -r);
		return;
	}
	if (r == POLICY_DIRECT) {
		if (type == SOCK_STREAM)
			connect_trace_direct((const struct sockaddr *)sa, why);
		sup_direct(id, fd, sa, len, fo, false);
		return;
	}
	sup_tunnel(id, fd, domain, sa, len, &dst, fo);
}

static void
sup_on_connect(const struct seccomp_notif *n)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd, domain, type, r;

	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, NULL))
		return;
	r = sup_read_sockaddr((pid_t)n->pid, n->data.args[1], (int)n->data.args[2], &ss, &len);
	if (!sup_checked(n->id, fd, r))
		return;
	sup_decide(n->id, fd, domain, type, &ss, len, NULL,
	    type != SOCK_STREAM && sup_from_libc(n));
}

/*
 * A DNS query sent from an unconnected socket (musl's resolver sends to
 * every nameserver with sendto() and takes the first reply whose source is
 * one of them): it goes to our resolver instead, which answers at once,
 * and the socket is remembered, so that its recvfrom() (sup_on_recvfrom())
 * shows the nameserver as the source of our reply. 0 or -errno.
 */
static int
sup_dns_sendto(int fd, int domain, struct sup_msg *m)
{
	struct sockaddr_storage to;
	socklen_t tolen, olen = sizeof(int);
	uint64_t cookie = sup_cookie(fd);
	int v6only = 0;

	if (domain == AF_INET6)
		(void)getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen);
	if (cookie == 0 || supdns_addr(domain, SOCK_DGRAM, v6only != 0, &to, &tolen) < 0) {
		policy_refuse((struct sockaddr *)&m->name, "DNS query", "remote DNS, "
		    "and no resolver of ours for this socket");
		return -EPERM;
	}
	sup_dnsrw_note(cookie, &m->name, m->namelen, &to, tolen);
	m->name = to;
	m->namelen = tolen;
	return 0;
}

/* A datagram the program sends to m->name (or its connected peer): checked,
 * then sent by us from its socket. The byte count, or -errno. */
static long long
sup_send_dgram(int fd, int domain, int type, struct sup_msg *m, int flags)
{
	struct iovec iov = { sup.data, m->len };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct s5_addr a;
	bool dns = false;
	ssize_t n;
	int r;

	if (m->namelen > 0) {
		dns = s5_addr_from_sockaddr(&a, (struct sockaddr *)&m->name, m->namelen) == 0 &&
		    sup_is_dns(type, &a);
		if (dns && (r = sup_dns_sendto(fd, domain, m)) < 0)
			return r;
		if (!dns && (r = policy_type(type, (struct sockaddr *)&m->name, m->namelen)) < 0)
			return r;
		h.msg_name = &m->name;
		h.msg_namelen = m->namelen;
	}
	if (m->controllen > 0) {
		if (!sup_control_allowed(m->controllen))
			return -EPERM;
		h.msg_control = sup.control;
		h.msg_controllen = m->controllen;
	}
	/* Never wait here (a full buffer: EAGAIN), and never let the kernel
	 * keep pages of a buffer we reuse (MSG_ZEROCOPY). */
	if ((r = sup_source_routed(fd, domain)) < 0)
		return r;
	n = sendmsg(fd, &h, (flags & ~MSG_ZEROCOPY) | MSG_NOSIGNAL | MSG_DONTWAIT);
	if (dns && n >= 0) {
		sup_dns_allow(fd);
		supdns_pump();		/* the answer waits in the socket now */
	}
	return n >= 0 ? n : -errno;
}

/* A fast-open send: a connect with data, answered with the byte count
 * (sendmmsg(): 1, and the count at mmsg_len in thread tid's memory). */
static void
sup_fastopen(uint64_t id, int fd, int domain, struct sup_msg *m, int flags,
    pid_t tid, uint64_t mmsg_len)
{
	struct sup_fastopen fo = { .data = sup.data, .len = m->len, .flags = flags,
	    .tid = tid, .mmsg_len = mmsg_len };

	struct sup_job *j = sup_job_find(sup_cookie(fd));

	/* A tunnel under way: the program's socket is still connecting, and
	 * the kernel says EALREADY to a fast-open send on it (a blocking one
	 * waits and then sends: see LIMITS); its socket to the proxy is
	 * connected already, so this comes first. Connected: the kernel's
	 * own answer, EISCONN (we never make a send that could block). */
	if (j != NULL && j->kind == JOB_TUNNEL) {
		sup_fail(id, fd, EALREADY);
		return;
	}
	if (sup_connected(fd)) {
		sup_fail(id, fd, EISCONN);
		return;
	}
	if (m->namelen == 0) {
		sup_fail(id, fd, EDESTADDRREQ);
		return;
	}
	sup_decide(id, fd, domain, SOCK_STREAM, &m->name, m->namelen, &fo, false);
}

/* A send whose message was read into m (r: 0, or why it could not be). */
static void
sup_send_end(const struct seccomp_notif *n, int fd, int domain, int type,
    struct sup_msg *m, int flags, int r)
{
	long long res;

	if (!sup_checked(n->id, fd, r))
		return;
	if (type == SOCK_STREAM) {
		sup_fastopen(n->id, fd, domain, m, flags, 0, 0);
		return;
	}
	res = sup_send_dgram(fd, domain, type, m, flags);
	sup_reply(n->id, res, res < 0 ? (int)-res : 0);
	close(fd);
}

static void
sup_on_sendto(const struct seccomp_notif *n)
{
	struct sup_msg m = { .namelen = 0 };
	int fd, domain, type, flags = (int)n->data.args[3], r;

	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, &flags))
		return;
	r = sup_read_sockaddr((pid_t)n->pid, n->data.args[4], (int)n->data.args[5],
	    &m.name, &m.namelen);
	m.len = (size_t)n->data.args[2];
	if (r == 0 && m.len > SUP_SEND_MAX)
		r = -EMSGSIZE;
	if (r == 0)
		r = sup_read((pid_t)n->pid, n->data.args[1], sup.data, m.len);
	sup_send_end(n, fd, domain, type, &m, flags, r);
}

/* One struct msghdr of the program's at addr, its name, data and control
 * into m, sup.data and sup.control: 0 or -errno. */
static int
sup_read_msg(pid_t tid, uint64_t addr, struct sup_msg *m)
{
	struct iovec iov[SUP_IOV_MAX];
	struct msghdr h;
	size_t i;
	int r;

	if (sup_read(tid, addr, &h, sizeof(h)) != 0)
		return -EFAULT;
	m->namelen = 0;
	if (h.msg_name != NULL && h.msg_namelen > 0 &&
	    (r = sup_read_sockaddr(tid, (uintptr_t)h.msg_name, (long long)h.msg_namelen,
	    &m->name, &m->namelen)) < 0)
		return r;
	if (h.msg_iovlen > SUP_IOV_MAX)
		return -EMSGSIZE;
	if (sup_read(tid, (uintptr_t)h.msg_iov, iov, h.msg_iovlen * sizeof(iov[0])) != 0)
		return -EFAULT;
	m->len = 0;
	for (i = 0; i < h.msg_iovlen; i++) {
		if (iov[i].iov_len > SUP_SEND_MAX - m->len)
			return -EMSGSIZE;
		if (sup_read(tid, (uintptr_t)iov[i].iov_base, sup.data + m->len,
		    iov[i].iov_len) != 0)
			return -EFAULT;
		m->len += iov[i].iov_len;
	}
	m->controllen = 0;
	if (h.msg_control != NULL && h.msg_controllen > 0) {
		if (h.msg_controllen > SUP_CONTROL_MAX)
			return -ENOBUFS;
		if (sup_read(tid, (uintptr_t)h.msg_control, sup.control, h.msg_controllen) != 0)
			return -EFAULT;
		m->controllen = (socklen_t)h.msg_controllen;
	}
	return 0;
}

static void
sup_on_sendmsg(const struct seccomp_notif *n)
{
	struct sup_msg m;
	int fd, domain, type, flags = (int)n->data.args[2], r;

	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, &flags))
		return;
	r = sup_read_msg((pid_t)n->pid, n->data.args[1], &m);
	sup_send_end(n, fd, domain, type, &m, flags, r);
}

static void
sup_on_sendmmsg(const struct seccomp_notif *n)
{
	struct sup_msg m;
	uint64_t vec = n->data.args[1];
	unsigned vlen = (unsigned)n->data.args[2], i;
	unsigned int sent;
	int fd, domain, type, flags = (int)n->data.args[3], r = 0;
	long long res = 0;

	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, &flags))
		return;
	if (type == SOCK_STREAM) {
		/* A fast-open connect with the first message, as sendmsg(); the
		 * call answers 1 and that message's msg_len. */
		r = sup_read_msg((pid_t)n->pid, vec, &m);
		if (!sup_checked(n->id, fd, r))
			return;
		sup_fastopen(n->id, fd, domain, &m, flags, (pid_t)n->pid,
		    vec + offsetof(struct mmsghdr, msg_len));
		return;
	}
	if (vlen > SUP_MMSG_MAX)
		vlen = SUP_MMSG_MAX;
	for (i = 0; i < vlen; i++) {
		uint64_t at = vec + (uint64_t)i * sizeof(struct mmsghdr);

		r = sup_read_msg((pid_t)n->pid, at, &m);
		if (!sup_valid(n->id)) {
			close(fd);
			return;
		}
		if (r < 0)
			break;
		res = sup_send_dgram(fd, domain, type, &m, flags);
		if (res < 0) {
			r = (int)res;
			break;
		}
		sent = (unsigned int)res;
		if ((r = sup_write((pid_t)n->pid, at + offsetof(struct mmsghdr, msg_len),
		    &sent, sizeof(sent))) < 0)
			break;
	}
	/* Like the kernel: the messages before a failed one are counted; the
	 * error shows when it comes first. */
	if (i == 0 && r < 0)
		sup_reply(n->id, 0, -r);
	else
		sup_reply(n->id, i, 0);
	close(fd);
}

static void
sup_on_getpeername(const struct seccomp_notif *n)
{
	struct sup_peer *p;
	socklen_t ulen, out;
	int fd, domain, type, r;

	if (n->data.args[0] >> 32 == PRELOAD_HELLO_MARK) {
		sup_on_hello(n);
		return;
	}
	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, NULL))
		return;
	p = sup_peer_find(sup_cookie(fd));
	if (p == NULL || !sup_connected(fd)) {
		close(fd);
		sup_continue(n->id);	/* the kernel's answer is the truth */
		return;
	}
	close(fd);
	r = sup_read((pid_t)n->pid, n->data.args[2], &ulen, sizeof(ulen));
	if (!sup_valid(n->id))
		return;
	if (r == 0 && (int)ulen < 0)
		r = -EINVAL;
	out = ulen < p->len ? ulen : p->len;
	if (r == 0)
		r = sup_write((pid_t)n->pid, n->data.args[1], &p->sa, out);
	if (r == 0)
		r = sup_write((pid_t)n->pid, n->data.args[2], &p->len, sizeof(p->len));
	sup_reply(n->id, 0, -r);
}

static bool
sup_same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	struct s5_addr x, y;

	return s5_addr_from_sockaddr(&x, (const struct sockaddr *)a, alen) == 0 &&
	    s5_addr_from_sockaddr(&y, (const struct sockaddr *)b, blen) == 0 &&
	    x.atyp == y.atyp && x.port == y.port &&
	    memcmp(&x.u, &y.u, x.atyp == S5_ATYP_IPV4 ? 4 : 16) == 0;
}

/*
 * recvfrom() with a source address on a socket whose DNS query we sent to
 * our resolver (sup_dns_sendto()): our reply is shown as the nameserver's.
 * Any other socket: CONTINUE, receiving reaches nothing.
 */
static void
sup_on_recvfrom(const struct seccomp_notif *n)
{
	struct sockaddr_storage from;
	const struct sockaddr_storage *src;
	struct sup_dnsrw *w;
	socklen_t flen = sizeof(from), ulen, srclen, out;
	size_t cap = (size_t)n->data.args[2] < SUP_SEND_MAX ?
	    (size_t)n->data.args[2] : SUP_SEND_MAX;
	int fd, domain, type, flags = (int)n->data.args[3], r, fl;
	ssize_t got;

	if (!sup_socket(n, (int)n->data.args[0], &fd, &domain, &type, NULL))
		return;
	if ((w = sup_dnsrw_find(sup_cookie(fd))) == NULL) {
		close(fd);
		sup_continue(n->id);
		return;
	}
	fl = fcntl(fd, F_GETFL);
	got = recvfrom(fd, sup.data, cap, flags | MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
	if (got < 0 && errno == EAGAIN) {
		/* A connected socket's query went by send(), which we never
		 * see: it waits at our resolver, whose answers are made under
		 * the lock we hold. Answered now, it is here for the read. */
		supdns_pump();
		flen = sizeof(from);
		got = recvfrom(fd, sup.data, cap, flags | MSG_DONTWAIT,
		    (struct sockaddr *)&from, &flen);
	}
	if (got < 0 && errno == EAGAIN && fl >= 0 && !(fl & O_NONBLOCK) &&
	    !(flags & MSG_DONTWAIT)) {
		close(fd);
		sup_continue(n->id);	/* nothing yet: the kernel waits */
		return;
	}
	if (got < 0) {
		sup_fail(n->id, fd, errno);
		return;
	}
	close(fd);
	src = &from;
	srclen = flen;
	if (sup_same_sockaddr(&from, flen, &w->resolver, w->resolverlen)) {
		src = &w->ns;
		srclen = w->nslen;
	}
	r = sup_write((pid_t)n->pid, n->data.args[1], sup.data,
	    (size_t)got < cap ? (size_t)got : cap);
	if (r == 0 && n->data.args[4] != 0) {
		r = sup_read((pid_t)n->pid, n->data.args[5], &ulen, sizeof(ulen));
		out = r == 0 && ulen < srclen ? ulen : srclen;
		if (r == 0 && (int)ulen < 0)
			r = -EINVAL;
		if (r == 0)
			r = sup_write((pid_t)n->pid, n->data.args[4], src, out);
		if (r == 0)
			r = sup_write((pid_t)n->pid, n->data.args[5], &srclen, sizeof(srclen));
	}
	sup_reply(n->id, got, -r);
}

/* One notification the receiver thread took, served. */
static void
sup_on_notification(const struct seccomp_notif *n)
{
	if (n->data.nr == SYS_connect)
		sup_on_connect(n);
	else if (n->data.nr == SYS_sendto)
		sup_on_sendto(n);
	else if (n->data.nr == SYS_sendmsg)
		sup_on_sendmsg(n);
	else if (n->data.nr == SYS_sendmmsg)
		sup_on_sendmmsg(n);
	else if (n->data.nr == SYS_getpeername)
		sup_on_getpeername(n);
	else if (n->data.nr == SYS_recvfrom)
		sup_on_recvfrom(n);
	else
		sup_reply(n->id, 0, ENOSYS);	/* not ours to see */
}

/* The listener served by the launcher's thread (no receiver thread). */
static void
sup_on_listener(uint32_t events)
{
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* No process of the tree is left to notify. */
		(void)epoll_ctl(sup.ep, EPOLL_CTL_DEL, sup.listener, NULL);
		return;
	}
	memset(sup.req, 0, sup.sizes.seccomp_notif);
	if (ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_RECV, sup.req) == 0)
		sup_on_notification(sup.req);	/* else ENOENT: the caller went away */
}

/* From the receiver thread to the launcher's: 0 or -errno. */
static int
sup_take_listener(void)
{
	struct epoll_event ev = { .events = EPOLLIN,
	    .data.u64 = SUP_EV(SUP_EV_LISTENER, 0, 0) };

	if (sup.taken[0] >= 0) {
		(void)epoll_ctl(sup.ep, EPOLL_CTL_DEL, sup.taken[0], NULL);
		close(sup.taken[0]);
		sup.taken[0] = -1;
	}
	return epoll_ctl(sup.ep, EPOLL_CTL_ADD, sup.listener, &ev) == 0 ? 0 : -errno;
}

/* The notifications waiting in the pipe, a burst at most. */
static void
sup_on_taken(void)
{
	ssize_t r;
	int i;

	for (i = 0; i < SUP_EVENTS; i++) {
		memset(sup.req, 0, sup.sizes.seccomp_notif);
		/* Each record was written whole (at most PIPE_BUF bytes). */
		r = read(sup.taken[0], sup.req, sup.sizes.seccomp_notif);
		if (r == (ssize_t)sup.sizes.seccomp_notif) {
			__atomic_sub_fetch(&sup.piped, 1, __ATOMIC_RELEASE);
			sup_on_notification(sup.req);
			continue;
		}
		if (r == 0 && sup_take_listener() < 0)	/* the thread ended */
			preload_log(LOG_LVL_ERROR, "supervisor: cannot watch the "
			    "listener: supervised calls will wait");
		return;
	}
}

/* When sup_service() must run at the latest: the sweep, or the first job
 * due. Lock held. */
static long long
sup_next_due(void)
{
	long long next = sup.next_sweep;
	size_t i;

	for (i = 0; i < sup.jobs_hi; i++)
		if (sup_jobat(i)->kind == JOB_TUNNEL && !sup_jobat(i)->held &&
		    sup_job_due(sup_jobat(i)) < next)
			next = sup_job_due(sup_jobat(i));
	return next;
}

/* A job due before the launcher's thread means to wake wakes it. Lock
 * held. */
static void
sup_kick_if_due(void)
{
	static const uint64_t one = 1;
	long long due;

	if ((due = sup_next_due()) < sup.sleep_until) {
		sup.sleep_until = due;
		/* Cannot fail but when the counter is full: readable then. */
		(void)write(sup.kick, &one, sizeof(one));
	}
}

/* The held job the receiver gave back, if any, into sup.ep: the
 * launcher's thread has it from now on. Lock held. */
static void
sup_unhold(void)
{
	struct sup_job *j;
	size_t i;

	for (i = 0; i < SUP_RECEIVERS; i++) {
		j = __atomic_exchange_n(&sup.unhold[i], NULL, __ATOMIC_ACQ_REL);
		if (j == NULL || j->kind != JOB_TUNNEL || !j->held)
			continue;
		j->held = false;
		if (sup_job_watch(j, EPOLLIN) < 0)
			sup_job_finish(j, ENOMEM);
	}
}

/*
 * The receiver waits for the proxy's answer to the job j (generation gen,
 * socket fd, due then) it has just started, where the launcher's thread
 * would have: a wakeup less a connect. Called without the lock. The
 * answer first, and the lock free: it finishes the job. Another call to
 * take, the job's due time, or the launcher's thread inside: the job
 * goes, without waiting for the lock, to sup.unhold, the eventfd wakes
 * the launcher's thread, whose next sup_service() (or the receiver's next
 * sup_serve_here(), whichever is first) puts it in sup.ep, and the
 * receiver goes back to RECV at once. Nobody else touches a held job
 * meanwhile: sup_sweep() and sup_next_due() pass it by.
 */
static void
sup_hold(size_t self, struct sup_job *j, uint32_t gen, int fd, long long due)
{
	static const uint64_t one = 1;
	struct pollfd pf[2] = { { .fd = sup.listener, .events = POLLIN },
	    { .fd = fd, .events = POLLIN } };
	long long now = sup_now();
	int r;

	r = poll(pf, 2, due <= now ? 0 : due - now > INT_MAX ? INT_MAX : (int)(due - now));
	if (r <= 0 || pf[0].revents != 0 || pf[1].revents == 0 ||
	    pthread_mutex_trylock(&sup_lock) != 0) {
		/* Its own slot, empty: every sup_serve_here() empties them. */
		__atomic_store_n(&sup.unhold[self], j, __ATOMIC_RELEASE);
		(void)write(sup.kick, &one, sizeof(one));
		return;
	}
	if (j->kind == JOB_TUNNEL && j->gen == gen && j->held) {
		j->held = false;
		sup_job_event(j, (uint32_t)pf[1].revents);
		sup_kick_if_due();
	}
	pthread_mutex_unlock(&sup_lock);
}

/*
 * The receiver serves n itself when the launcher's thread is not in here
 * and no call it passed on waits in the pipe (see the top): true when it
 * did.
 */
static bool
sup_serve_here(size_t self, const struct seccomp_notif *n)
{
	struct pollfd next = { .fd = sup.listener, .events = POLLIN };
	struct sup_job *held;
	long long due = 0;
	uint32_t gen = 0;
	int fd = -1;

	/* Another call waits to be taken: take it first, pass this one on.
	 * Serving would leave that one open to signals (EINTR) meanwhile. */
	if (poll(&next, 1, 0) != 0)
		return false;
	if (pthread_mutex_trylock(&sup_lock) != 0)
		return false;
	if (__atomic_load_n(&sup.piped, __ATOMIC_ACQUIRE) != 0) {
		pthread_mutex_unlock(&sup_lock);
		return false;
	}
	sup_unhold();
	sup.serving = true;
	sup_on_notification(n);
	sup.serving = false;
	if ((held = sup.held) != NULL) {
		sup.held = NULL;
		gen = held->gen;
		fd = held->fd;
		due = sup_job_due(held);
	}
	sup_kick_if_due();
	pthread_mutex_unlock(&sup_lock);
	if (held != NULL)
		sup_hold(self, held, gen, fd, due);
	return true;
}

/* What one receiver thread has of its own. */
struct sup_receiver_arg {
	size_t self;			/* its sup.unhold slot */
	struct seccomp_notif *n;	/* its notification buffer */
};

/*
 * A receiver thread: RECV, then the call served here (sup_serve_here())
 * or, whole, into the pipe. A RECV fails with ENOENT when the caller went
 * away meanwhile, EINTR never (every signal is blocked here); once no
 * process of the tree is left it waits for good, and the launcher's exit
 * ends it. There are SUP_RECEIVERS of them, so that one is in RECV while
 * another serves or holds.
 */
static void *
sup_receiver(void *arg)
{
	struct sup_receiver_arg *me = arg;
	struct seccomp_notif *n = me->n;
	struct pollfd pf = { .fd = sup.listener, .events = POLLIN };
	ssize_t w;

	for (;;) {
		memset(n, 0, sup.sizes.seccomp_notif);
		if (ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_RECV, n) != 0) {
			if (errno == EINTR)
				continue;
			if (errno != ENOENT)
				break;
			/* Gone meanwhile; or, since Linux 6.6, no process of
			 * the tree is left, and RECV says ENOENT at once. */
			if (poll(&pf, 1, -1) < 0 && errno != EINTR)
				break;
			if ((pf.revents & POLLHUP) && !(pf.revents & POLLIN))
				break;
			continue;
		}
		if (sup_serve_here(me->self, n))
			continue;
		/* Counted first: the launcher's thread uncounts it once read. */
		__atomic_add_fetch(&sup.piped, 1, __ATOMIC_RELEASE);
		do
			w = write(sup.taken[1], n, sup.sizes.seccomp_notif);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)sup.sizes.seccomp_notif) {
			__atomic_sub_fetch(&sup.piped, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	/* The launcher's thread sees the end of the pipe, once the last
	 * receiver closed it, and takes over. */
	if (__atomic_sub_fetch(&sup.receivers, 1, __ATOMIC_ACQ_REL) == 0)
		close(sup.taken[1]);
	free(n);
	free(me);
	return NULL;
}

/* One receiver thread started, every signal blocked in it: 0 or -errno. */
static int
sup_receiver_one(size_t self)
{
	struct sup_receiver_arg *me;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int r;

	if ((me = calloc(1, sizeof(*me))) == NULL ||
	    (me->n = calloc(1, sup.sizes.seccomp_notif)) == NULL) {
		free(me);
		return -ENOMEM;
	}
	me->self = self;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((r = pthread_attr_init(&attr)) == 0) {
		(void)pthread_attr_setstacksize(&attr, SUP_RECEIVER_STACK);
		(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&thread, &attr, sup_receiver, me);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		free(me->n);
		free(me);
		return -r;
	}
	return 0;
}

/* The receiver threads started, at least one: 0 or -errno. */
static int
sup_receiver_start(void)
{
	size_t i;
	int r = 0;

	/* Best effort: before Linux 6.6 the thread is woken as any other. */
	(void)ioctl(sup.listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
	    (uint64_t)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
	/* Counted before any starts: one that ends at once must not close
	 * the pipe under the next. */
	__atomic_store_n(&sup.receivers, SUP_RECEIVERS, __ATOMIC_RELEASE);
	for (i = 0; i < SUP_RECEIVERS; i++)
		if ((r = sup_receiver_one(i)) < 0 &&
		    __atomic_sub_fetch(&sup.receivers, 1, __ATOMIC_ACQ_REL) == 0)
			return r;	/* none: the caller closes the pipe */
	return 0;
}

/* --- the launcher's side -------------------------------------------------- */

/* sup_start() under the lock: the receiver serves nothing before all is
 * set up. */
static int
sup_start_locked(int sock)
{
	struct epoll_event ev = { .events = EPOLLIN,
	    .data.u64 = SUP_EV(SUP_EV_TAKEN, 0, 0) };
	struct epoll_event kick = { .events = EPOLLIN,
	    .data.u64 = SUP_EV(SUP_EV_KICK, 0, 0) };
	size_t i;
	int fd, r;

	fd = sup_receive_listener(sock);
	if (fd < 0)
		return fd;
	for (i = 0; i < SUP_PIDFDS; i++)
		sup.pidfds[i].fd = -1;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sup.sizes) != 0)
		goto fail;
	/* The kernel's structures may be larger than our headers' (newer). */
	if (sup.sizes.seccomp_notif < sizeof(struct seccomp_notif))
		sup.sizes.seccomp_notif = sizeof(struct seccomp_notif);
	if (sup.sizes.seccomp_notif_resp < sizeof(struct seccomp_notif_resp))
		sup.sizes.seccomp_notif_resp = sizeof(struct seccomp_notif_resp);
	sup.req = calloc(1, sup.sizes.seccomp_notif);
	sup.resp = calloc(1, sup.sizes.seccomp_notif_resp);
	sup.ep = epoll_create1(EPOLL_CLOEXEC);
	sup.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sup.req == NULL || sup.resp == NULL || sup.ep < 0 || sup.kick < 0 ||
	    epoll_ctl(sup.ep, EPOLL_CTL_ADD, sup.kick, &kick) != 0 ||
	    sup.sizes.seccomp_notif > PIPE_BUF ||
	    pipe2(sup.taken, O_CLOEXEC) != 0 ||
	    fcntl(sup.taken[0], F_SETFL, O_NONBLOCK) != 0 ||
	    epoll_ctl(sup.ep, EPOLL_CTL_ADD, sup.taken[0], &ev) != 0)
		goto fail;
	sup.listener = fd;
	if ((r = sup_receiver_start()) < 0) {
		preload_log(LOG_LVL_ERROR, "supervisor: no receiver thread (%s): "
		    "calls are taken more slowly", strerror(-r));
		close(sup.taken[1]);
		sup.taken[1] = -1;
		if (sup_take_listener() < 0) {
			sup.listener = -1;
			goto fail;
		}
	}
	(void)preload_init();
	if (preload_cfg.remote_dns && supdns_start(sup.ep) < 0)
		preload_log(LOG_LVL_ERROR, "no DNS responder for supervised "
		    "programs: their own DNS queries fail (EPERM)");
	sup.next_sweep = sup_now() + SUP_SWEEP_MS;
	return 0;
fail:
	close(fd);
	return -ENOMEM;
}

int
sup_start(int sock)
{
	int r;

	pthread_mutex_lock(&sup_lock);
	r = sup_start_locked(sock);
	pthread_mutex_unlock(&sup_lock);
	return r;
}

int
sup_pollfd(void)
{
	return sup.ep;
}

int
sup_timeout_ms(void)
{
	long long now, next;

	if (sup.ep < 0)
		return -1;
	pthread_mutex_lock(&sup_lock);
	now = sup_now();
	sup.sleep_until = next = sup_next_due();
	pthread_mutex_unlock(&sup_lock);
	return next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
}

/* Deadlines, and jobs whose every caller is gone (a WAIT job then ends). */
static void
sup_sweep(long long now)
{
	size_t i;
	int k;
	bool any;

	for (i = 0; i < sup.jobs_hi; i++) {
		struct sup_job *j = sup_jobat(i);

		if (j->kind == JOB_TUNNEL && !j->held && sup_job_due(j) <= now) {
			sup_job_fail(j, ETIMEDOUT);
			continue;
		}
		if (j->kind != JOB_WAIT || now < sup.next_sweep)
			continue;
		for (k = 0, any = false; k < j->nids && !any; k++)
			any = sup_valid(j->ids[k]);
		if (!any)
			sup_job_free(j);
	}
	if (now >= sup.next_sweep) {
		supdns_sweep(now);
		sup.next_sweep = now + SUP_SWEEP_MS;
	}
}

void
sup_service(void)
{
	struct epoll_event ev[SUP_EVENTS];
	int n, i, round;
	uint32_t kind, gen, idx;

	if (sup.ep < 0)
		return;
	pthread_mutex_lock(&sup_lock);
	sup_unhold();
	/* A few rounds before going back to the launcher's poll() while each
	 * fills its batch: a burst of notifications (many threads connecting)
	 * costs one wakeup. */
	for (round = 0; round < SUP_ROUNDS; round++) {
		n = epoll_wait(sup.ep, ev, SUP_EVENTS, 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			kind = (uint32_t)(ev[i].data.u64 >> 56);
			gen = (uint32_t)(ev[i].data.u64 >> 32) & 0xffffffu;
			idx = (uint32_t)ev[i].data.u64;
			if (kind == SUP_EV_TAKEN) {
				sup_on_taken();
			} else if (kind == SUP_EV_LISTENER) {
				sup_on_listener(ev[i].events);
			} else if (kind == SUP_EV_JOB && idx < sup.jobs_hi &&
			    sup_jobat(idx)->kind != JOB_FREE && sup_jobat(idx)->gen == gen) {
				sup_job_event(sup_jobat(idx), ev[i].events);
			} else if (kind == SUP_EV_DNS) {
				supdns_event(idx, ev[i].events);
			} else if (kind == SUP_EV_KICK) {
				/* Only to end the poll(): the timeout is asked again. */
				uint64_t v;

				(void)read(sup.kick, &v, sizeof(v));
				sup_unhold();
			}
		}
		if (n < SUP_EVENTS)
			break;
	}
	sup_sweep(sup_now());
	pthread_mutex_unlock(&sup_lock);
}
