/*
 * server.h: the state of one socksifyd worker: its event loop, listeners
 * and sessions.
 *
 * Everything a worker owns hangs off struct server, so that the workers
 * (one per CPU, main.c) run side by side sharing nothing they write but the
 * session count; the configuration they read is published whole by main.c.
 */
#ifndef SOCKSIFYD_SERVER_H
#define SOCKSIFYD_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "defaults.h"
#include "loop.h"
#include "metrics.h"
#include "resolver.h"
#include "socks5.h"
#include "users.h"

struct session;
struct server;
struct udp_batch;

enum {
	SERVER_EXIT_USAGE = 2,		/* CONTRACT.md: usage errors */
};

struct listener {
	int fd;
	bool shared;			/* one fd for every worker (--accept shared) */
	struct server *srv;
	struct loop_timer pause;	/* parked after EMFILE/ENFILE */
	bool stalled;			/* parked, and pause could not be armed */
	bool nodelay;			/* TCP_NODELAY set here: accepted sockets
					 * inherit it (no setsockopt each) */
	char name[S5_ADDR_TEXT_MAX];	/* "127.0.0.1:1080", for messages */
	const char *what;		/* NULL, or what a failure names first:
					 * "--metrics: " */
};

/* --outgoing: the source address of outgoing connections and UDP relays,
 * one per family; a family left 0 gets the kernel's choice. */
struct server_outgoing {
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* Binds fd (a new socket toward dst, not yet connected) to o's address of
 * dst's family (IPv4 for an IPv4-mapped dst), if any, the port chosen at
 * connect(): 0 or -errno. */
int outgoing_bind(const struct server_outgoing *o, int fd, const struct sockaddr *dst,
    bool stream);
/* ss (len bytes, port 0), the address BIND would listen on, replaced by
 * o's address of its family when o has one: the new length. */
socklen_t outgoing_listen_at(const struct server_outgoing *o, struct sockaddr_storage *ss,
    socklen_t len);
/* Whether each of o's addresses is one of this host's: 0, or -1 with a
 * one-line reason. */
int outgoing_check(const struct server_outgoing *o, char *why, size_t whylen);
/* An IPv4-mapped IPv6 sa as the IPv4 address and port it stands for, into
 * out: true, or false (sa is no such address). */
bool outgoing_unmap(const struct sockaddr *sa, struct sockaddr_in *out);
/* "ADDR" (IPv4, or IPv6 with or without brackets; an IPv4-mapped one is
 * the IPv4 address) into o: 0, or -EINVAL (also for the unspecified
 * address, multicast and broadcast: never a source). */
int outgoing_parse(struct server_outgoing *o, const char *text);

/* The run-time limits: flags and config lines, defaults in defaults.h. */
struct server_limits {
	uint64_t handshake_ms;		/* --handshake-timeout */
	uint64_t connect_ms;		/* --connect-timeout, per address */
	uint64_t idle_ms;		/* --idle-timeout */
	uint64_t drain_ms;		/* --drain-timeout */
	size_t max_sessions;		/* --max-sessions */
	uint64_t bind_ms;		/* --bind-timeout */
	uint64_t udp_idle_ms;		/* --udp-idle-timeout */
	size_t fd_reserve;		/* --fd-reserve */
	bool splice;			/* --relay splice or auto */
	bool splice_bulk;		/* --relay auto: only a stream in flow */
	struct server_outgoing out;	/* --outgoing */
	bool proxy_protocol;		/* --proxy-protocol: a header first */
	struct s5_cidr pp_from[SERVER_PP_FROM_MAX];	/* whom to believe it from */
	size_t npp_from;		/* none given: loopback (config_build) */
};

struct server {
	unsigned id;			/* worker number, from 0 */
	struct server_limits lim;
	bool draining;			/* SIGTERM: listeners closed, sessions finish */
	struct loop_timer drain;	/* ends the drain */
	struct loop *loop;
	struct resolver *resolver;
	const struct users *users;	/* NULL: no authentication */
	struct udp_batch *udp;		/* UDP ASSOCIATE's buffers (udp.c); NULL before the first */
	struct udp_assoc *udp_orphans;	/* udp.c: ended, their last lookups under way */
	uint64_t udp_drop_sec;		/* udp.c: this second's -v lines about drops, */
	unsigned udp_drop_lines;	/* ... every association of the worker's */
	struct session *sessions;	/* doubly linked, newest first */
	size_t nsessions;
	size_t fd_limit;		/* RLIMIT_NOFILE soft limit */
	size_t fd_base;			/* descriptors in use before the first session */
	long *all_sessions;		/* of every worker (atomic); NULL: just ours */
	long *extra_fds;		/* descriptors sessions may hold beyond
					 * their two (a UDP association's three
					 * outgoing sockets), every worker's
					 * (atomic); NULL: none counted */
	int ctl;			/* eventfd: the main thread has news (main.c) */
	pthread_t thread;
	unsigned ctl_flags;		/* which news (atomic), WORKER_* in main.c */
	const void *conf;		/* the configuration this worker uses (main.c) */
	struct listener lst[SERVER_MAX_LISTENERS];
	size_t nlst;
	bool lst_stalled;		/* some listener waits for a session to close */
	uint64_t accept_warned_ms;	/* loop clock of the last accept warning */
	uint64_t full_warned_ms;	/* ... of the last --max-sessions warning */
	uint64_t full_closed;		/* clients closed at the limit since then */
	struct metrics metrics;		/* this worker's counts (metrics.c) */
};

/* A session closed, so a descriptor is free: resume stalled listeners. */
void listener_resume_stalled(struct server *srv);
/* A session began (session_start) or closed: counted for every worker; while
 * draining, the last one to close ends the loop. */
void server_session_born(struct server *srv);
void server_session_gone(struct server *srv);
/* An ended UDP association kept for its last lookups (udp.c) was freed:
 * while draining, the last of those and of the sessions ends the loop. */
void server_orphan_gone(struct server *srv);
/* A session took (n > 0) or gave back (n < 0) descriptors beyond its two. */
void server_fds_extra(struct server *srv, long n);

/* Takes over fd, a non-blocking accepted client socket. */
/* TCP_NODELAY on fd, a listener (what it accepts inherits it) or a
 * session's socket; true when set. */
bool session_nodelay(int fd);
void session_start(struct server *srv, int fd, const struct sockaddr *peer,
    socklen_t peerlen);
/* Closes every session (shutdown). */
void session_close_all(struct server *srv);

#endif
