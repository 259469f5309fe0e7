/*
 * preload.h: what the modules of libsocksify.so share with each other.
 *
 * Nothing here is exported from the library (exports.map keeps everything but
 * the hooked libc symbols local). The modules:
 *   config.c   the real libc symbols and the configuration, read once
 *   log.c      one write() per message, to fd 2 or SOCKSIFY_LOG_FILE
 *   load.c     the library's one constructor
 *   fakedns.c  placeholder addresses for remote resolution, one table for the
 *              process tree across fork and exec
 *   failover.c alternatives of a hop ("a|b") and their health, one table
 *              for the process tree (beside fakedns.c's)
 *   tunnel.c   the SOCKS5 handshake machine over the program's own fd
 *   async.c    the engine: connects that never block the program, driven
 *              by a helper thread ("pending" sockets)
 *   gate.c     the readiness gate: poll/select/epoll_ctl, the read and
 *              write calls, close and dup, while a socket is pending
 *   policy.c   what a connection may do (direct, tunnel, refused), for
 *              both front ends
 *   connect.c  the connect()/sendto()/sendmsg() hooks
 *   resolve.c  the getaddrinfo(_a)()/gethostby*()/getnameinfo() hooks
 *   rawdns.c   the res_*() hooks: refused under remote resolution
 *   syscall.c  syscall(): socket numbers take the paths above
 *   peer.c     getpeername(): the address the program asked for;
 *              getsockopt(SO_ERROR) after a failed non-blocking connect;
 *              getsockname() of a socket swapped for the proxy's family
 *   listen.c   bind()/listen()/accept(): a listening socket for a tunnelled
 *              connection's peer becomes a SOCKS BIND
 */
#ifndef SOCKSIFY_PRELOAD_H
#define SOCKSIFY_PRELOAD_H

#include <dlfcn.h>
#include <limits.h>
#include <poll.h>
#include <netdb.h>
#include <resolv.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "defaults.h"
#include "socks5.h"

typedef long (*preload_syscall_fn)(long, ...);

/*
 * A pointer into the first page (NULL among them), which nothing maps
 * (vm.mmap_min_addr): a program's bug, NULL plus an offset, that the
 * kernel answers with EFAULT. The hooks answer EFAULT themselves for such
 * an address (with a length), rather than read it and crash the program,
 * or hand it to the kernel, which would read it were page 0 mapped.
 */
#define PRELOAD_PAGE0		4096
static inline bool
preload_unmapped(const void *p)
{
	return (unsigned long)p < PRELOAD_PAGE0;
}

/*
 * Functions a program's libraries may call before the sanitizer runtime of
 * a SAN=1 build has started (jemalloc's constructor calls syscall() from
 * libstdc++'s initialisation, in dig): not instrumented, so that they touch
 * no shadow memory yet. A plain build is not affected.
 */
#define PRELOAD_BEFORE_SAN	__attribute__((no_sanitize("address", "undefined")))

/* The libc functions we interpose, reached with dlsym(RTLD_NEXT). */
struct preload_real {
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);
	int (*getnameinfo)(const struct sockaddr *, socklen_t, char *, socklen_t,
	    char *, socklen_t, int);
	struct hostent *(*gethostbyname)(const char *);
	struct hostent *(*gethostbyname2)(const char *, int);
	int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t,
	    struct hostent **, int *);
	int (*gethostbyname2_r)(const char *, int, struct hostent *, char *, size_t,
	    struct hostent **, int *);
	struct hostent *(*gethostbyaddr)(const void *, socklen_t, int);
	int (*gethostbyaddr_r)(const void *, socklen_t, int, struct hostent *,
	    char *, size_t, struct hostent **, int *);
	/* Before glibc 2.34 these live in libanl and libresolv, loaded only
	 * by the programs that use them: NULL is no error there. */
	int (*getaddrinfo_a)(int, struct gaicb **, int, struct sigevent *);
	int (*res_query)(const char *, int, int, unsigned char *, int);
	int (*res_search)(const char *, int, int, unsigned char *, int);
	int (*res_querydomain)(const char *, const char *, int, int,
	    unsigned char *, int);
	int (*res_send)(const unsigned char *, int, unsigned char *, int);
	int (*res_nquery)(res_state, const char *, int, int, unsigned char *, int);
	int (*res_nsearch)(res_state, const char *, int, int, unsigned char *, int);
	int (*res_nquerydomain)(res_state, const char *, const char *, int, int,
	    unsigned char *, int);
	int (*res_nsend)(res_state, const unsigned char *, int, unsigned char *, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	preload_syscall_fn syscall;	/* loaded apart: see syscall.c */
	/* The readiness gate's (gate.c), each loaded on first use by
	 * PRELOAD_REAL(): they run before and during the loading above. */
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*__poll_chk)(struct pollfd *, nfds_t, int, size_t);
	int (*__ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *,
	    const sigset_t *, size_t);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
	    const sigset_t *);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*__read_chk)(int, void *, size_t, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*__recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*__recvfrom_chk)(int, void *, size_t, size_t, int,
	    struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*sendfile64)(int, int, off_t *, size_t);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	int (*shutdown)(int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
};

/*
 * The real libc function behind one of our hooks, loaded on first use with
 * no lock (two threads storing the same pointer do no harm): the gate's
 * hooks run for every read() and close(), also before the library's own
 * initialisation and inside it. NULL when libc lacks it.
 */
static inline void *
preload_sym(void **slot, const char *name)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (p == NULL) {
		p = dlsym(RTLD_NEXT, name);
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	}
	return p;
}

#define PRELOAD_REAL(f) \
	((__typeof__(preload_real.f))preload_sym((void **)&preload_real.f, #f))

enum preload_log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,			/* the default: a proxy failing, named (tunnel_diagnose) */
	LOG_LVL_INFO,
	LOG_LVL_TRACE,			/* adds one line per connection */
	LOG_LVL_DEBUG,
};

/* One hop of the chain, as configured and as reached. */
struct preload_hop {
	struct s5_proxy proxy;
	/* The hop's address resolved locally: for the first hop always, for
	 * later hops when the previous hop cannot resolve names. */
	bool has_v4, has_v6;
	struct s5_addr v4, v6;
	bool unusable;			/* no address: never picked */
	/* SOCKSIFY_PIPELINE=auto: the server chose a _STREAM method, so it
	 * takes pipelined handshakes (tunnel.c). Any thread sets or clears
	 * it: __atomic, relaxed. */
	bool streams;
};

struct preload_config {
	bool proxy_invalid;		/* fail every tunnelled connect (fail closed) */
	bool remote_dns;		/* the last hop is socks5h */
	size_t nhops;			/* positions in the chain */
	/* Each position's alternatives ("a|b"), in the order given; they
	 * share a scheme (s5_hop_parse()). */
	size_t nalts[PRELOAD_MAX_PROXIES];
	struct preload_hop hops[PRELOAD_MAX_PROXIES][PRELOAD_MAX_ALTS];
	bool spread;			/* SOCKSIFY_PICK=spread (failover.c) */
	bool pipeline;			/* SOCKSIFY_PIPELINE=on: SOCKS5 hops pipelined */
	bool pipeline_learn;		/* auto: pipelined once a hop said it streams */
	char chain_text[PRELOAD_MAX_PROXIES * PRELOAD_MAX_ALTS * (S5_ADDR_TEXT_MAX + 4)];
	size_t nexcludes;
	struct s5_cidr excludes[PRELOAD_MAX_EXCLUDES];
	/* Host names ("db.internal") and suffixes (".corp"), lower case,
	 * without a trailing dot. */
	size_t nexclude_names;
	char exclude_names[PRELOAD_MAX_EXCLUDES][S5_DOMAIN_MAX + 1];
	int log_level;			/* enum preload_log_level */
	char log_file[PATH_MAX];	/* empty: fd 2 */
	int timeout_ms;
	bool iouring_allow;		/* SOCKSIFY_IOURING=allow */
	bool udp_block;			/* no datagram leaves directly: SOCKSIFY_UDP=block or proxy */
	bool udp_proxy;			/* SOCKSIFY_UDP=proxy: the library relays them (udp.c) */
	bool has_dns_server;		/* SOCKSIFY_DNS */
	struct s5_addr dns_server;
};

extern struct preload_real preload_real;
extern struct preload_config preload_cfg;

/* The mark of the library's own socket calls under the supervisor, in the
 * upper 32 bits of the descriptor argument ("SKSF"; syscall.c). */
#define PRELOAD_SYSCALL_MARK	0x534b5346u
/* The hello to the supervisor (load.c): the upper half of descriptor -1 in
 * a getpeername() whose address argument points to this. */
#define PRELOAD_HELLO_MARK	0x534b5348u
#define PRELOAD_HELLO_MAGIC	UINT64_C(0x6f6c6c6568736b73)	/* "skshello" */
/* A string only the library's file holds (load.c): the launcher looks for
 * it in a SOCKSIFY_LIBRARY before it preloads that. */
#define PRELOAD_LIBRARY_MARK	"libsocksify.so: the socksify preload library, mark 1"
#define PRELOAD_LIBRARY_FILE_MAX	(64u << 20)	/* bytes the launcher reads of one */
struct preload_hello {
	uint64_t magic;
	uint8_t token[16];		/* random, per process image */
};
/* SOCKSIFY_MODE says a supervisor watches (config.c). */
bool preload_supervised(void);
/* Our connect, send calls and getpeername become marked system calls. */
preload_syscall_fn preload_syscall_real(void) PRELOAD_BEFORE_SAN;
extern int preload_loaded;		/* load.c's constructor ran */
void preload_use_marked_calls(struct preload_real *r);

/* Resolve the real symbols (cheap after the first call). */
void preload_init_symbols(void);
/* Symbols and configuration. Returns false while the calling thread is
 * itself inside the initialisation (a hook reached from the real resolver
 * then passes straight through). */
bool preload_init(void);

/* SOCKSIFY_EXCLUDE says: connect directly (a CIDR, or an address an
 * excluded name resolved to in this process). */
bool preload_is_excluded(const struct s5_addr *a);
/* SOCKSIFY_EXCLUDE names name: resolve it locally, connect directly. */
bool preload_name_excluded(const char *name);
/* name is a proxy's of SOCKSIFY_PROXY (any hop, any alternative): its DNS
 * queries get real answers, never placeholders (dnsanswer.c). */
bool preload_name_is_proxy(const char *name);
/* Remember an address an excluded name resolved to. */
void preload_exclude_addr(const struct sockaddr *sa, socklen_t len);

/* An AF_INET6 socket with IPV6_V6ONLY on (errno kept); one bound to an
 * IPv6 address, not :: nor v4-mapped, which the kernel makes IPv6-only
 * itself (tunnel.c). */
bool preload_v6only(int fd);
bool preload_v6_bound(int fd);
/* Bytes below 0x20 and 0x7f of s (up to n, or its NUL) become "?". */
void preload_text_clean(char *s, size_t n);
void preload_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A key for preload_log_limited() from two strings: the top bit set, so
 * it never meets tunnel_say()'s (hop, command and reason, the bit clear). */
uint64_t preload_log_key(const char *what, const char *why);
/* preload_log(), but a line that repeats (the same key) is said at most
 * every 10 s up to the default level, the next one counting those left
 * unsaid; above it (info, trace), every one. One table of the 16 keys said
 * last, per process, that never waits: when another thread (or the code a
 * signal handler interrupted) holds it, a warning is skipped and an error
 * said unlimited. */
void preload_log_limited(int level, uint64_t key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *preload_errno_name(int err);
/* SOCKSIFY_TIMEOUT's syntax: seconds, a fraction allowed ("2.5"), above 0
 * and at most PRELOAD_TIMEOUT_MAX_S; in ms, or -1. */
int preload_parse_seconds(const char *s);
/* The values of SOCKSIFY_LOG (a LOG_LVL_*), SOCKSIFY_UDP (a PRELOAD_UDP_*)
 * and SOCKSIFY_IOURING (0 deny, 1 allow), -1 for another; SOCKSIFY_DNS
 * into *a, 0 or -1 with *why (may stay NULL). The library and the
 * launcher read them alike. */
enum { PRELOAD_UDP_PROXY, PRELOAD_UDP_BLOCK, PRELOAD_UDP_PASS };
int preload_parse_level(const char *s);
int preload_parse_udp(const char *s);
int preload_parse_iouring(const char *s);
int preload_parse_dns(const char *s, struct s5_addr *a, const char **why);

/* Placeholders. An index is the table slot of a name; 0 is never handed out. */
/* At load (load.c): find the tree's table, or make one as its root. */
void fakedns_at_load(void);
int fakedns_lookup_name(const char *name, size_t len, unsigned *idx);
bool fakedns_name_of(const struct s5_addr *a, char *name, size_t cap);
/* The health of proxies, shared by the tree (failover.c): a slot per proxy. */
struct failover_slot {
	_Atomic uint64_t key;		/* failover_key(), 0: free */
	_Atomic long long until_ms;	/* CLOCK_MONOTONIC: skipped until then */
	_Atomic uint32_t backoff_ms;	/* the last back-off, 0: alive */
};
struct failover_health {
	_Atomic uint32_t spread;	/* --pick spread's turn */
	struct failover_slot slot[PRELOAD_HEALTH_SLOTS];
};
/* The tree's health table (in the placeholders' memory), or NULL. */
struct failover_health *fakedns_health(void);
/* a lies in the placeholder ranges, handed out or not. */
bool fakedns_in_range(const struct s5_addr *a);
void fakedns_addr_v4(unsigned idx, uint8_t ip[4]);
void fakedns_addr_v6(unsigned idx, uint8_t ip[16]);

/* tunnel.c: the handshake of one connection, after the dial. */
/* TUNNEL_HOP: a hop is through and t->pause is set (socksify --check). */
enum tunnel_want { TUNNEL_DONE = 0, TUNNEL_READ = 1, TUNNEL_WRITE = 2, TUNNEL_HOP = 3 };

struct tunnel {
	struct s5_addr dst;		/* the program's destination */
	uint8_t cmd;			/* the last hop's: CONNECT, BIND (listen.c) or UDP ASSOCIATE (udp.c) */
	size_t hop;			/* the hop being negotiated */
	bool started;			/* c is set up for hop */
	bool up;			/* a byte went out: the first hop's dial is
					 * over (started alone may mean a write
					 * tried before the dial was) */
	bool writing;			/* c.out[out_off..) still to send */
	bool want_read;			/* c waits for s5_client_want() bytes */
	bool sent;			/* a write just went: its answer cannot
					 * be in yet, so wait before the read */
	struct s5_client c;
	uint8_t in[S5_MSG_MAX];
	size_t in_len, out_off;
	int rep;			/* the refusing reply code, else -1 */
	int why;			/* the failing step's enum s5c_err, else 0 */
	int dial_err;			/* the errno the dial to the first hop failed with */
	bool family;			/* the last alternative tried has no address
					 * of the socket's family (supervisor.c) */
	bool http;			/* the failing answer began "HT": an HTTP server */
	bool pause;			/* stop after each hop but the last: TUNNEL_HOP */
	/* Alternatives (failover.c): each position's in use, those that
	 * failed in this connect (bit k), and the position, + 1, whose
	 * every alternative was down at the pick (0: none). */
	uint8_t alt[PRELOAD_MAX_PROXIES];
	uint8_t tried[PRELOAD_MAX_PROXIES];
	size_t down_hop;
	long long give_up;		/* this attempt's deadline (tunnel_attempt()), 0: none */
	long long deadline;		/* the connect's (SOCKSIFY_TIMEOUT) */
	int share_ms;			/* the attempt's length when others may follow, else 0 */
	bool answered;			/* hop t->hop has sent us something: it is alive */
	/* Pipelined chains: the next hop's handshake, sent behind this one's
	 * (tunnel_ahead()), and which hop it was for (0: none). */
	uint8_t ahead[S5_PIPELINE_MAX];
	size_t ahead_len, ahead_off, ahead_hop;
};

/* failover.c: alternatives of a hop and their health. */
/* Each position's alternative for a new connection (tunnel_init()). */
void failover_pick(struct tunnel *t);
/* Position i's alternative in use failed (down: mark it so): the next
 * one alive and untried becomes t's, or false when there is none. */
bool failover_next(struct tunnel *t, size_t i, bool down);
/* Alternatives of position i alive that t has not used yet. */
size_t failover_untried(const struct tunnel *t, size_t i);
/* p, alternative of position i, failed: skipped for a back-off. */
void failover_down(const struct s5_proxy *p, size_t i);
/* t succeeded: its alternatives are alive. */
void failover_up(const struct tunnel *t);
/* When the first back-off of position i's alternatives ends (ms from now),
 * or -1. */
long long failover_retry_in(size_t i);

long long tunnel_now_ms(void);
/* A new connection to dst: each hop's alternative picked (failover.c). */
void tunnel_init(struct tunnel *t, const struct s5_addr *dst);
/* Hop i as t reaches it: the alternative in use. */
const struct preload_hop *tunnel_hop(const struct tunnel *t, size_t i);
/* Every alternative of a hop is down (t->down_hop): -ECONNREFUSED and a
 * rate-limited line, else 0. For a driver, before it dials. */
int tunnel_all_down(const struct tunnel *t);
/* The start of an attempt (a dial of the first hop) with deadline the
 * connect's: sets and returns t->give_up, its share of the time left. */
long long tunnel_attempt(struct tunnel *t, long long deadline);
/* When t must move on or end: the attempt's deadline, else the connect's. */
long long tunnel_due(const struct tunnel *t);
/* A BIND for the program's connection on fd: the first hop it reached. */
void tunnel_follow(struct tunnel *t, int fd);
/* t failed with err (a positive errno: tunnel_step()'s, the dial's, or
 * ETIMEDOUT for an attempt's deadline) on fd: when another alternative may be
 * tried before deadline, fd is disconnected, t reset to dial that one
 * (its attempt's deadline set) and true returned; else false. */
bool tunnel_retry(struct tunnel *t, int fd, int err, long long deadline);
/* t failed or was given up: a hop pipelined on its server's word (under
 * SOCKSIFY_PIPELINE=auto) that had not answered the request is asked
 * again, lock-step, next time. tunnel_retry() calls it; the drivers too,
 * on a failure or cancel that does not go through tunnel_retry(). */
void tunnel_unlearn(const struct tunnel *t);
/* Go on as far as fd allows without waiting: enum tunnel_want, or -errno
 * (CONTRACT.md's). fd is TCP-connected to the first hop. */
int tunnel_step(struct tunnel *t, int fd);
/* The first hop for a socket of family domain; -EAFNOSUPPORT when such a
 * socket cannot reach it. */
int tunnel_first_sockaddr(const struct tunnel *t, int fd, int domain,
    struct sockaddr_storage *ss, socklen_t *len);
/* The hop t is at hung up where its CONNECT reply was due: SOCKS5 with its
 * greeting answered, SOCKS4 (no greeting) with the request sent (ssh -D
 * refuses a target so). */
bool tunnel_hung_up_on_request(const struct tunnel *t);
/* The family of the first hop t uses (AF_INET when it has IPv4). */
int tunnel_family(const struct tunnel *t);
/* Some alternative of the first hop is out of reach of fd, a socket of
 * family domain, that another family would reach (an IPv4 socket and an
 * IPv6-only proxy; an IPv6-only socket and an IPv4-only one). */
bool tunnel_first_mixed(int fd, int domain);
/* Wait until fd is ready for events or the deadline (tunnel_now_ms()) passes:
 * the revents (positive), or -errno (-ETIMEDOUT). */
int tunnel_wait(int fd, short events, long long deadline);
/* TCP from fd (unconnected, SOCK_STREAM) to the first hop, waited for
 * until deadline whatever fd's O_NONBLOCK (left as it was): 0 or -errno,
 * the kernel's (-EISCONN, -EALREADY for a second connect()). */
int tunnel_dial(struct tunnel *t, int fd, int domain, long long deadline);
/* The dial's outcome once fd polled with revents: 0 or -errno. */
int tunnel_dial_result(int fd, int revents);
/* The errno of a dial (t's) that failed with err. */
int tunnel_dial_errno(struct tunnel *t, int err);
/* What went wrong with t, which failed with errno err, in words that name
 * the hop and never a password: "proxy HOST:PORT refused NAME:PORT: reply
 * 05, connection refused". */
void tunnel_explain(const struct tunnel *t, int err, char *buf, size_t cap);
/* The same on stderr at the default level (LOG_LVL_WARN), at most once per
 * 10 s for one hop and reason (preload_log_limited()): a retrying program does
 * not flood it. Nothing above warn (INFO and TRACE say it per connection). */
void tunnel_diagnose(const struct tunnel *t, int err);
/* Disconnect fd after a failed handshake (AF_UNSPEC). */
void tunnel_dissolve(int fd);
/* ... and make it poll POLLOUT|POLLERR|POLLHUP, as a failed connect. */
void tunnel_refail(int fd);
/* Dial the first hop on fd (unconnected, SOCK_STREAM) and run t inside the
 * call, with SOCKSIFY_TIMEOUT: 0 (t->c.reply the last hop's reply) or -errno. */
int tunnel_request(int fd, int domain, struct tunnel *t);
/* Tunnel fd (unconnected, SOCK_STREAM) through the chain to dst inside the
 * call, with t (the caller's): 0 (t->c.reply.bnd the last hop's BND), or
 * -errno (t->rep the proxy's reply code when it refused, else -1). */
int tunnel_connect(int fd, int domain, const struct s5_addr *dst, struct tunnel *t);

/* async.c: the engine. */
#define ASYNC_SYNC	1		/* async_connect(): take the synchronous path */
/* Start the handshake of fd (TCP, unconnected, tunnelled) to dst, which the
 * program named as sa; dest is its text for the log. Returns -EINPROGRESS
 * (non-blocking socket), the outcome of a blocking connect (0, -errno, or
 * -EINTR/-EINPROGRESS as the kernel gives them), an immediate -errno, or
 * ASYNC_SYNC when the engine cannot take it. */
int async_connect(int fd, int domain, const struct sockaddr *sa, socklen_t len,
    const struct s5_addr *dst, const char *dest);
/* Nonzero while any socket of this process is pending: the gate's fast path. */
extern int async_active;
/* fd is pending (a first look: the slot is not checked against the socket
 * fd names now); the _checked form asks the kernel too. */
bool async_pending(int fd);
bool async_pending_checked(int fd);
enum async_hold_kind { HOLD_READ, HOLD_WRITE, HOLD_CONNECT };
/* A call on a pending fd that would read, write or connect: 0 to go on (not
 * pending, or over), 1 for a connect() that waited for a success, or
 * -errno: EAGAIN (EALREADY for connect) on a non-blocking socket, with
 * dontwait (MSG_DONTWAIT), or when the socket's own timeout ran out; a
 * blocking one waits, and may get EINTR; a connect() that waited for a
 * failure gets its errno. */
int async_hold(int fd, enum async_hold_kind kind, bool dontwait);
/* Wait until fd's handshake is over, whatever O_NONBLOCK says: 0 or
 * -errno (a fast-open send). */
int async_settle(int fd);
/* A descriptor that polls readable once fd's handshake is over (held until
 * async_release()), -1 when fd is not pending, -2 when it is but there is
 * no descriptor to wait on (wait in slices). */
int async_waitfd(int fd, void **ref);
void async_release(void *ref);
/* The program closes fd (or dup2()s over it): forget it, and cancel the
 * handshake when no descriptor of the program names the socket anymore. */
void async_forget(int fd);
/* fd2 is a new descriptor for fd's open file (dup). */
void async_dup(int fd, int fd2);
/* Our descriptors sit at PRELOAD_ASYNC_COPY_FD_MIN or above, out of the
 * program's low numbers, or anywhere when RLIMIT_NOFILE is not above it
 * (F_DUPFD then says EINVAL). async_fd_copy(): a CLOEXEC duplicate of fd,
 * or -1 (errno). async_fd_raise(): fd itself moved up (the original
 * closed), or left where it is when no higher number is to be had. */
int async_fd_copy(int fd);
int async_fd_raise(int fd);
/* The lock the engine and the gate share. */
void async_lock(void);
void async_unlock(void);
/* A hook may take the lock: false in a signal handler that interrupted its
 * holder (and, with check_pid, in a vfork()ed child sharing our memory). */
bool async_may_lock(bool check_pid);
/* At load: this process's identity and the fork handlers (fakedns.c's
 * constructor calls it). */
void async_at_load(void);

/* gate.c: epoll registrations of the program, as it made them. */
/* dnsanswer.c: a program's own DNS query, answered with placeholders. */
size_t dnsanswer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap, bool *local);
size_t dnsanswer_local(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap);

/* dnsconn.c: a program's own DNS over TCP, answered on a socketpair. */
extern int dnsconn_active;
bool dnsconn_maybe(int fd);
int dnsconn_connect(int fd, const struct sockaddr *sa, socklen_t len);
void dnsconn_pump(int fd);
void dnsconn_forget(int fd);
bool dnsconn_peer(int fd, struct sockaddr_storage *ss, socklen_t *len);
void dnsconn_at_load(void);

/* udp.c: UDP through the first hop's UDP ASSOCIATE. udp_send() and
 * udp_recv() answer UDP_NOT_MINE for a socket that is not theirs (the
 * caller makes the real call). */
#define UDP_NOT_MINE	(-2)
extern int udp_active;
bool udp_maybe(int fd);
bool udp_owns(int fd);
/* fd is connect()ed through us: to a peer through the relay, or to a DNS
 * server we answer for (its send() and write() are ours). */
bool udp_has_our_peer(int fd);
void udp_forget(int fd);
void udp_dup(int fd, int fd2);
/* shutdown() of a UDP socket of ours: 0 or -errno, or 1 for the kernel's. */
int udp_shutdown(int fd, int how);
void udp_at_load(void);
ssize_t udp_send(int fd, const struct msghdr *msg, int flags, const struct s5_addr *dst,
    const struct sockaddr *sa, socklen_t salen);
ssize_t udp_recv(int fd, struct msghdr *msg, int flags);
ssize_t udp_answer(int fd, const struct msghdr *msg, const struct sockaddr *server,
    socklen_t slen);
int udp_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct s5_addr *dst);
void udp_unpeer(int fd);
bool udp_peer(int fd, struct sockaddr_storage *ss, socklen_t *len);

void gate_hide(int fd);			/* under async_lock() */
void gate_restore(int fd);		/* under async_lock() */
void gate_forget(int fd);		/* under async_lock() */
/* The _FORTIFY_SOURCE forms of hooked calls, which headers declare only
 * under fortification. */
int __poll_chk(struct pollfd *, nfds_t, int, size_t);
int __ppoll_chk(struct pollfd *, nfds_t, const struct timespec *,
    const sigset_t *, size_t);
ssize_t __read_chk(int, void *, size_t, size_t);
ssize_t __recv_chk(int, void *, size_t, size_t, int);
ssize_t __recvfrom_chk(int, void *, size_t, size_t, int, struct sockaddr *,
    socklen_t *);

/* The sendto()/sendmsg()/sendmmsg() hooks: 0 to go on (a fast-open send
 * that waited for the handshake without MSG_FASTOPEN in *flags), -1
 * (errno set) when fd is pending. */
int gate_send_hold(int fd, int *flags);
/* A peer-socket swap: fd gets a socket of family domain (async.c). */
int async_swap_family(int fd, int domain);

/* A non-blocking connect on fd failed with err: getsockopt(SO_ERROR), or
 * a second connect(), reports it once, as the kernel reports its own. */
void peer_fail_later(int fd, int err);
/* The error peer_fail_later() left for fd (and forgets it), or 0. */
int peer_take_error(int fd);

/* fd was tunnelled to sa: getpeername() answers sa from now on. fresh: the
 * handshake ended in the background, so the next connect() answers 0 once,
 * as the kernel's first connect() after a background completion does. */
void peer_remember(int fd, const struct sockaddr *sa, socklen_t len, bool fresh);
/* The same for a socket whose cookie the caller read already (nonzero). */
void peer_remember_as(int fd, uint64_t cookie, const struct sockaddr *sa, socklen_t len,
    bool fresh);
/* fd's connect ended in the background and no connect() said so yet. */
bool peer_take_fresh(int fd);
/* The identity of the socket fd names (SO_COOKIE), 0 for none. */
uint64_t peer_cookie(int fd);
/* fd's socket was swapped for one of another family (async.c): getsockname()
 * and SO_DOMAIN answer in family, the program's. AF_INET6: an IPv6-only
 * socket opened to IPv4, for which IPV6_V6ONLY still reads 1. */
void peer_swapped(int fd, int family);

/* policy.c: the decisions both front ends make alike. */
#define POLICY_DNS_PORT	53
#define POLICY_UNKNOWN_PLACEHOLDER \
	"a placeholder address no process of this tree handed out"
enum policy_verdict { POLICY_TUNNEL = 0, POLICY_DIRECT = 1, POLICY_RELAY = 2, POLICY_ANSWER = 3 };
/* One line for a refusal; sa was vouched for by s5_addr_from_sockaddr. */
void policy_refuse(const struct sockaddr *sa, const char *what, const char *why);
/* A socket's type as the policy sees it: SO_TYPE, but SOCK_RAW for a
 * datagram socket that is not UDP (an ICMP ping socket), -errno on error. */
int policy_socket_type(int fd, int (*getsockopt_fn)(int, int, int, void *, socklen_t *));
/* Datagram sockets (UDP, ICMP, raw): they cannot take a CONNECT tunnel. */
bool policy_is_dgram(int type);
/* A placeholder under remote resolution: only a tunnel can carry its name. */
bool policy_is_placeholder(const struct s5_addr *a);
/* dst is the first proxy itself. */
bool policy_is_proxy(const struct s5_addr *dst);
/* A socket of this type sending to sa: 0 when TCP (for the tunnel to
 * handle) or allowed, else -errno (logged). type is policy_socket_type()'s. */
int policy_type(int type, const struct sockaddr *sa, socklen_t len);
int policy_udp(int type, const struct sockaddr *sa, socklen_t len, struct s5_addr *dst);
/* A connect() of a socket of this type to sa: enum policy_verdict (*dst the
 * destination, a placeholder mapped to its name; *why says why direct), or
 * -errno (logged). */
int policy_connect(int type, const struct sockaddr *sa, socklen_t len,
    struct s5_addr *dst, const char **why);

/* The --trace/info line of a tunnelled connect (err 0 or an errno, rep the
 * proxy's reply code or -1), and the --trace line of a direct one. */
/* A tunnelled connection's outcome: err 0 or a positive errno; t is its
 * handshake (NULL when it failed before the dial). */
void connect_trace(const char *dest, int err, const struct tunnel *t);
/* A failure of what ("connect DEST", "UDP ASSOCIATE") with errno err, t's
 * (or NULL): below info, tunnel_diagnose()'s limited warning (nothing
 * without t); at info and above, a line each. */
void trace_failure(const char *what, int err, const struct tunnel *t);
void connect_trace_direct(const struct sockaddr *sa, const char *why);

/* listen.c: fd was tunnelled and the last hop's CONNECT reply said bnd
 * (the address the target sees): getsockname() answers it, and a socket
 * bound to it and listening becomes a BIND. */
void listen_note(int fd, const struct s5_addr *bnd);
/* The same for a socket whose cookie the caller read already (nonzero). */
void listen_note_as(int fd, uint64_t cookie, const struct s5_addr *bnd);
/* getsockname() of a socket listen.c answers for: true with sa and *len
 * filled (as the kernel fills them), false to ask the kernel. */
bool listen_sockname(int fd, struct sockaddr *sa, socklen_t *len);

/* The connect() policy, shared by connect() and sendto(MSG_FASTOPEN). */
int connect_hooked(int fd, const struct sockaddr *sa, socklen_t len);

#endif
