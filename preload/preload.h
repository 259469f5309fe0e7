/*
 * preload.h: what the modules of libsocksify.so share with each other.
 *
 * Nothing here is exported from the library (exports.map keeps everything but
 * the hooked libc symbols local). The modules:
 *   config.c   the real libc symbols and the configuration, read once
 *   log.c      one write() per message, to fd 2 or SOCKSIFY_LOG_FILE
 *   fakedns.c  placeholder addresses for remote resolution, one table for the
 *              process tree across fork and exec (the library's one constructor)
 *   tunnel.c   the SOCKS5 handshake over the program's own fd
 *   connect.c  the connect()/sendto()/sendmsg() hooks
 *   resolve.c  the getaddrinfo(_a)()/gethostby*()/getnameinfo() hooks
 *   rawdns.c   the res_*() hooks: refused under remote resolution
 *   syscall.c  syscall(): socket numbers take the paths above
 *   peer.c     getpeername(): the address the program asked for;
 *              getsockopt(SO_ERROR) after a failed non-blocking connect
 */
#ifndef SOCKSIFY_PRELOAD_H
#define SOCKSIFY_PRELOAD_H

#include <limits.h>
#include <netdb.h>
#include <resolv.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "defaults.h"
#include "socks5.h"

typedef long (*preload_syscall_fn)(long, ...);

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
};

enum preload_log_level {
	LOG_LVL_ERROR = 0,
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
};

struct preload_config {
	bool proxy_invalid;		/* fail every tunnelled connect (fail closed) */
	bool remote_dns;		/* the last hop is socks5h */
	size_t nhops;
	struct preload_hop hops[PRELOAD_MAX_PROXIES];
	char chain_text[PRELOAD_MAX_PROXIES * (S5_ADDR_TEXT_MAX + 4)];
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
	bool udp_block;			/* SOCKSIFY_UDP=block */
};

extern struct preload_real preload_real;
extern struct preload_config preload_cfg;

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
/* Remember an address an excluded name resolved to. */
void preload_exclude_addr(const struct sockaddr *sa, socklen_t len);

void preload_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *preload_errno_name(int err);

/* Placeholders. An index is the table slot of a name; 0 is never handed out. */
int fakedns_lookup_name(const char *name, size_t len, unsigned *idx);
bool fakedns_name_of(const struct s5_addr *a, char *name, size_t cap);
/* a lies in the placeholder ranges, handed out or not. */
bool fakedns_in_range(const struct s5_addr *a);
void fakedns_addr_v4(unsigned idx, uint8_t ip[4]);
void fakedns_addr_v6(unsigned idx, uint8_t ip[16]);

/* Tunnel fd (unconnected, SOCK_STREAM) through the chain to dst. Returns 0,
 * or -errno; *rep is the proxy's reply code when it refused, else -1. */
int tunnel_connect(int fd, int domain, const struct s5_addr *dst, int *rep);

/* A non-blocking connect on fd failed with err: getsockopt(SO_ERROR), or
 * a second connect(), reports it once, as the kernel reports its own. */
void peer_fail_later(int fd, int err);
/* The error peer_fail_later() left for fd (and forgets it), or 0. */
int peer_take_error(int fd);

/* fd was tunnelled to sa: getpeername() answers sa from now on. */
void peer_remember(int fd, const struct sockaddr *sa, socklen_t len);

/* The connect() policy, shared by connect() and sendto(MSG_FASTOPEN). */
int connect_hooked(int fd, const struct sockaddr *sa, socklen_t len);

#endif
