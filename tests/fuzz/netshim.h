/*
 * netshim.h: the socket calls of socksifyd's sources, served from memory.
 *
 * fuzz_session builds every server and shared .c file with
 * "-include tests/fuzz/netshim.h": the system headers come in here first,
 * then each socket call the server makes is renamed to a shim_ function
 * (netshim.c) that works on fake descriptors (SHIM_FD_BASE and up) whose
 * other end is the fuzz driver. The macros are function-like, so fields
 * and words that only share a name (struct config's listen[]) are left
 * alone. A call on a descriptor the shim did not hand out, or one already
 * closed, is a bug in the server and aborts.
 */
#ifndef SOCKSIFY_NETSHIM_H
#define SOCKSIFY_NETSHIM_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int shim_socket(int domain, int type, int protocol);
int shim_connect(int fd, const struct sockaddr *sa, socklen_t len);
int shim_bind(int fd, const struct sockaddr *sa, socklen_t len);
int shim_listen(int fd, int backlog);
int shim_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int shim_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int shim_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int shim_shutdown(int fd, int how);
int shim_close(int fd);
ssize_t shim_read(int fd, void *buf, size_t n);
ssize_t shim_write(int fd, const void *buf, size_t n);
ssize_t shim_recv(int fd, void *buf, size_t n, int flags);
ssize_t shim_send(int fd, const void *buf, size_t n, int flags);
ssize_t shim_recvfrom(int fd, void *buf, size_t n, int flags,
    struct sockaddr *sa, socklen_t *len);
ssize_t shim_sendto(int fd, const void *buf, size_t n, int flags,
    const struct sockaddr *sa, socklen_t len);
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags);
int shim_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
    struct timespec *timeout);
int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);
void shim_freeaddrinfo(struct addrinfo *ai);

#define socket(...)		shim_socket(__VA_ARGS__)
#define connect(...)		shim_connect(__VA_ARGS__)
#define bind(...)		shim_bind(__VA_ARGS__)
#define listen(...)		shim_listen(__VA_ARGS__)
#define accept4(...)		shim_accept4(__VA_ARGS__)
#define getsockname(...)	shim_getsockname(__VA_ARGS__)
#define getpeername(...)	shim_getpeername(__VA_ARGS__)
#define getsockopt(...)		shim_getsockopt(__VA_ARGS__)
#define shutdown(...)		shim_shutdown(__VA_ARGS__)
#define close(...)		shim_close(__VA_ARGS__)
#define read(...)		shim_read(__VA_ARGS__)
#define write(...)		shim_write(__VA_ARGS__)
#define recv(...)		shim_recv(__VA_ARGS__)
#define send(...)		shim_send(__VA_ARGS__)
#define recvfrom(...)		shim_recvfrom(__VA_ARGS__)
#define sendto(...)		shim_sendto(__VA_ARGS__)
#define sendmsg(...)		shim_sendmsg(__VA_ARGS__)
#define recvmmsg(...)		shim_recvmmsg(__VA_ARGS__)
#define sendmmsg(...)		shim_sendmmsg(__VA_ARGS__)
#define freeaddrinfo(...)	shim_freeaddrinfo(__VA_ARGS__)

/* --- the driver's side ---------------------------------------------------- */

enum {
	SHIM_FD_BASE = 1000,		/* fake descriptors start here, never reused */
	SHIM_SOCKS_MAX = 64,		/* sockets per input */
	SHIM_WINDOW_ANY = -1,		/* a peer that takes every byte */
	SHIM_BACKLOG_MAX = 4,		/* connections waiting at a listener */
	SHIM_DGRAMS_MAX = 40,		/* datagrams to one socket: more than a
				 * server batch (SERVER_UDP_BATCH, 32) */
};

enum shim_kind {
	SHIM_STREAM,			/* a TCP connection, or one being made */
	SHIM_LISTEN,
	SHIM_DGRAM,
};

enum shim_conn {
	SHIM_CONN_NONE,			/* not connected (datagram, listener) */
	SHIM_CONN_PENDING,		/* connect() under way */
	SHIM_CONN_UP,
	SHIM_CONN_FAILED,		/* connect() failed: so_error holds why */
};

struct shim_buf {
	uint8_t *p;
	size_t len, cap;
};

/* One datagram, queued for the server or sent by it. */
struct shim_dgram {
	struct shim_dgram *next;
	struct sockaddr_storage addr;	/* source, or destination */
	socklen_t addrlen;
	size_t len;
	uint8_t data[];
};

struct shim_sock {
	int fd;
	enum shim_kind kind;
	int family;
	int nclose;
	int root;			/* the client connection it serves */
	bool client;			/* the driver plays this one's client */
	bool accepted;			/* came from accept4() */
	bool ever_up;			/* was connected at some point */
	bool connect_seen;		/* the server read SO_ERROR 0 on it */
	bool bind_called;		/* bound by the server, not by a send */
	bool bound;
	struct sockaddr_storage local, peer;
	socklen_t locallen, peerlen;
	/* Streams. */
	enum shim_conn conn;
	int so_error;			/* reported once, by SO_ERROR or a call */
	struct shim_buf in;		/* for the server to read */
	size_t in_off;
	bool in_fin;			/* the peer's FIN follows in */
	bool rst;			/* the peer reset the connection */
	struct shim_buf out;		/* what the server sent */
	bool out_shut;			/* the server's FIN */
	long window;			/* bytes the peer still takes; SHIM_WINDOW_ANY */
	bool window_limited;		/* the window was ever closed */
	struct shim_buf sent;		/* what the driver sent as the peer */
	/* Listeners: connections waiting for accept4(); len 0: ECONNABORTED. */
	struct {
		struct sockaddr_storage addr;
		socklen_t len;
	} backlog[SHIM_BACKLOG_MAX];
	size_t nbacklog;
	/* Datagrams: every one that arrived (dq_read: the next to read) and
	 * every one the server sent, oldest first. */
	struct shim_dgram *dq_in, *dq_read, *dq_out;
	size_t ndq_in;
};

/* The largest UDP_SEGMENT size sendmsg() takes: a route with a small MTU,
 * small enough for a fuzz input's datagrams (a length byte) to pass it. */
#define SHIM_GSO_SEG_MAX	128

/* The fake system's plan for the next calls, set by the driver. */
struct shim_plan {
	bool socket_fails;		/* next socket() or accept4(): EMFILE */
	bool connect_fails;		/* next connect(): ENETUNREACH at once */
	bool connect_now;		/* next connect(): connected at once: 0 on
					 * an odd descriptor, EINPROGRESS (as TCP
					 * says it on loopback) on an even one */
	bool bind_fails;		/* next bind(): EADDRNOTAVAIL */
	bool sendto_fails;		/* next sendto()/sendmsg(): EAGAIN; sendmmsg():
					 * the last of several, after the others */
	bool loop_add_fails;		/* next loop_add(): -ENOMEM (fake_loop.c) */
	bool timer_fails;		/* next loop_timer_start(): -ENOMEM */
	bool lookup_fails;		/* next resolver_lookup(): -EAGAIN (fake_resolver.c) */
};

extern struct shim_plan shim_plan;

void shim_reset(void);
/* A connected client socket; the server's end has local and peer. */
int shim_new_client(const struct sockaddr *local, socklen_t locallen,
    const struct sockaddr *peer, socklen_t peerlen);
struct shim_sock *shim_get(int fd);
struct shim_sock *shim_at(size_t i);
size_t shim_count(void);
/* The epoll events fd would report now (loop.h's set). */
uint32_t shim_events(int fd);
/* The client connection whose work runs now: new sockets serve it. */
void shim_set_root(int root);
int shim_current_root(void);
int shim_root(int fd);

void shim_buf_put(struct shim_buf *b, const void *p, size_t n);
/* The driver as the peer of a stream. */
void shim_peer_send(struct shim_sock *s, const uint8_t *p, size_t n);
void shim_peer_fin(struct shim_sock *s);
void shim_peer_rst(struct shim_sock *s);
void shim_peer_window(struct shim_sock *s, long n);
/* Connect result for a pending connect: 0 or an errno. */
void shim_connect_done(struct shim_sock *s, int err);
/* A connection arriving at a listener from peer; NULL peer: aborted. */
void shim_listen_arrive(struct shim_sock *s, const struct sockaddr *peer,
    socklen_t peerlen);
void shim_dgram_arrive(struct shim_sock *s, const struct sockaddr *from,
    socklen_t fromlen, const uint8_t *p, size_t n);
/* A one-entry addrinfo list node in front of next, for shim_freeaddrinfo(). */
struct addrinfo *shim_addrinfo(const struct sockaddr *sa, socklen_t len,
    struct addrinfo *next);
/* Lines the server logged, checked to be one line each. */
extern size_t shim_log_lines;

#endif
