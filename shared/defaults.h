/*
 * Every tunable of socksify, with its unit, in one place. Grep here first.
 * Both halves include this file; neither defines a limit of its own elsewhere.
 */
#ifndef SOCKSIFY_DEFAULTS_H
#define SOCKSIFY_DEFAULTS_H

#define SOCKSIFY_VERSION		"0.1.0"

/* Protocol. */
#define S5_DEFAULT_PORT			1080
#define S5_HTTP_DEFAULT_PORT		8080	/* http:// proxies (CONTRACT.md) */

/* socksifyd. */
#define SERVER_DEFAULT_LISTEN		"127.0.0.1:1080"
#define SERVER_MAX_LISTENERS		16
#define SERVER_LISTEN_BACKLOG		1024
#define SERVER_LISTEN_PAIR_TRIES	8	/* -l :0: ports tried for 0.0.0.0 and [::] together */
#define SERVER_HANDSHAKE_TIMEOUT_MS	10000	/* greeting to request, per session */
#define SERVER_CONNECT_TIMEOUT_MS	10000	/* per address tried */
#define SERVER_IDLE_TIMEOUT_MS		(15 * 60 * 1000)	/* relaying with no byte either way */
#define SERVER_MAX_SESSIONS		8000
#define SERVER_RELAY_BUF_BYTES		65536	/* per direction, only while bytes are in flight; a pipe's size */
#define SERVER_SPLICE_BYTES		65536	/* --relay splice: moved per splice(2), a pipe's default size */
#define SERVER_SPLICE_BIG_BYTES		1048576	/* ... a stream in flow's pipe, while the budget lasts */
#define SERVER_SPLICE_BIG_PIPES		24	/* such pipes at once, in all the workers */
#define SERVER_SPLICE_CACHE_PIPES	4	/* empty pipes a worker keeps for its next stream */
#define SERVER_RELAY_ROUNDS		8	/* reads of a stream in flow per wakeup and direction */
#define SERVER_RESOLVER_THREADS		4	/* lookups at once per worker (+1 thread for logins) */
#define SERVER_WORKERS_MAX		64	/* --workers upper bound */
#define SERVER_CONF_RETIRED_MAX		8	/* reloads the workers may lag behind */
#define SERVER_ACCEPT_DEFAULT		"reuseport"	/* --accept: measured by make bench */
#define SERVER_RELAY_DEFAULT		"auto"	/* --relay: measured by make bench */
#define SERVER_FD_RESERVE		16	/* descriptors kept free for the sessions we hold */
#define SERVER_FD_RESERVE_MAX		4096	/* --fd-reserve upper bound */
#define SERVER_FD_SLACK			64	/* descriptors beyond sessions, reserve and
						   workers the raised limit leaves (metrics...) */
#define SERVER_WORKER_FDS		4	/* a worker's own: its loop, control, resolver */
#define SERVER_SPLICE_PIPES_ROOM	1024	/* pipes the raised limit makes room for (splice) */
#define SERVER_ACCEPT_PAUSE_MS		1000	/* listener parked this long on EMFILE/ENFILE */
#define SERVER_USERS_MAX		4096
#define SERVER_RESOLVER_PENDING_MAX	1024	/* queued name lookups; beyond, they wait */
#define SERVER_RESOLVER_PER_CLIENT	64	/* name lookups in flight per client IP; beyond, they wait */
#define SERVER_RESOLVER_WAITING_MAX	4096	/* lookups waiting for those per worker; beyond, reply 01 */
#define SERVER_RESOLVER_WAITING_PER_CLIENT 1024	/* ... per client IP (IPv6: per /64) */
#define SERVER_CHECKS_MAX		16	/* crypt(3) logins in flight per worker; beyond, they wait */
#define SERVER_CHECKS_PER_CLIENT	8	/* ... per client IP (IPv6: per /64) */
#define SERVER_CHECKS_WAITING_MAX	256	/* logins waiting for those per worker; beyond, auth busy */
#define SERVER_CHECKS_WAITING_PER_CLIENT 64	/* ... per client IP (IPv6: per /64) */
#define SERVER_RESOLVER_EXIT_WAIT_MS	1000	/* at exit, wait this long for lookups in flight */
#define SERVER_ACCEPT_WARN_MS		1000	/* at most one accept failure logged this often */
#define SERVER_FAIL_LINGER_MS		1000	/* after a failure reply: FIN sent, client input drained this long, then close */
#define SERVER_LOOP_EVENTS		256	/* epoll events taken per wakeup */
#define SERVER_LOOP_FDS_INITIAL		64	/* first size of the fd table and timer heap; they grow */
#define SERVER_DRAIN_TIMEOUT_MS		10000	/* SIGTERM: sessions may finish this long, then are closed */
#define SERVER_TIMEOUT_MAX_MS		(24 * 60 * 60 * 1000)	/* largest --*-timeout accepted */
#define SERVER_MAX_SESSIONS_MAX		1000000	/* largest --max-sessions accepted */
#define SERVER_RULES_MAX		4096	/* --allow/--deny rules, flags and config together */
#define SERVER_PP_FROM_MAX		16	/* --proxy-protocol-from networks */
#define SERVER_METRICS_CONNS		16	/* --metrics: scrapes served at once; more are closed */
#define SERVER_METRICS_TIMEOUT_MS	5000	/* a scrape's whole life, request to last byte */
#define SERVER_METRICS_PAUSE_MS		100	/* the metrics listener rests this long after EMFILE */
#define SERVER_METRICS_REQUEST_MAX	4096	/* its request, bytes (the head; no body) */
#define SERVER_METRICS_OUTCOMES		64	/* command and outcome pairs counted per worker */
#define SERVER_CONFIG_ITEMS_MAX		4096	/* options on the command line */
#define SERVER_LOOPBACK_NETS		"127.0.0.0/8,::1"	/* listeners here may run without --users */
/* Denied destinations when a listener is not on loopback (rules.h): the
 * host's loopback, "this network", link-local with the cloud metadata
 * address 169.254.169.254 and its IPv6 twin, multicast (the host's own
 * group members hear it: mDNS, SSDP) and broadcast; v4-mapped forms match
 * too. */
#define SERVER_PROTECTED_NETS		"127.0.0.0/8,::1,::/128,0.0.0.0/8,169.254.0.0/16,fe80::/10,fd00:ec2::254," \
					"224.0.0.0/4,ff00::/8,255.255.255.255/32"
#define SERVER_HOST_ADDRS_MAX		256	/* interface addresses protected besides those */
#define SERVER_HOST_REFRESH_MS		100	/* a burst of address changes, read again once */
#define SERVER_NETLINK_BUF_BYTES	8192	/* one netlink message read at a time */
#define SERVER_BIND_TIMEOUT_MS		(2 * 60 * 1000)	/* BIND: first reply to the one incoming connection */
#define SERVER_SD_STATUS_MS		10000	/* NOTIFY_SOCKET without a watchdog: STATUS= with the session count this often */
#define SERVER_UDP_IDLE_TIMEOUT_MS	(2 * 60 * 1000)	/* UDP ASSOCIATE: no datagram either way */
#define SERVER_UDP_DGRAM_MAX		65535	/* largest UDP payload received, bytes (RFC 768 length field) */
#define SERVER_UDP_BATCH		32	/* datagrams one wakeup relays each way: one recvmmsg(), sendmmsg() */
#define SERVER_UDP_RCVBUF		(2 * 1024 * 1024)	/* a relay socket's receive buffer asked for, bytes (the kernel caps it at net.core.rmem_max) */
#define SERVER_UDP_PENDING_MAX		16	/* datagrams to names awaiting the resolver, per association */
#define SERVER_UDP_NAME_CACHE_MS	30000	/* an association reuses its last name lookup this long */

/* libsocksify. */
#define PRELOAD_TIMEOUT_S		15	/* SOCKSIFY_TIMEOUT default */
#define PRELOAD_MAX_PROXIES		8	/* hops in a chain */
#define PRELOAD_MAX_ALTS		8	/* alternatives of one hop ("a|b") */
#define PRELOAD_BACKOFF_MIN_MS		1000	/* a failed alternative is skipped this long, */
#define PRELOAD_BACKOFF_MAX_MS		60000	/* doubling with each failure up to this */
#define PRELOAD_HEALTH_SLOTS		64	/* proxies whose health a process tree shares */
#define PRELOAD_MAX_EXCLUDES		64	/* CIDRs, and as many names and suffixes */
#define PRELOAD_EXCLUDED_ADDRS		1024	/* addresses of excluded names remembered per process */
#define PRELOAD_PEER_FDS		16384	/* getpeername() shows the target for fds below this */
#define PRELOAD_ASYNC_MAX		1024	/* handshakes pending at once; beyond, inside connect() */
#define PRELOAD_ASYNC_FDS		8	/* descriptors (dups) of one pending socket followed */
#define PRELOAD_ASYNC_INDEX_FDS		65536	/* descriptors found in O(1); above, a scan of the pending */
#define PRELOAD_ASYNC_COPY_FD_MIN	512	/* the engine's copy of a socket, this or above */
#define PRELOAD_ENGINE_IDLE_MS		1000	/* the engine thread exits after this long with nothing pending */
#define PRELOAD_ENGINE_STACK_BYTES	(256u << 10)	/* its stack */
#define PRELOAD_WAIT_SLICE_MS		10	/* a wait without a wake descriptor (EMFILE) looks this often */
#define PRELOAD_BIND_MAX		64	/* listening sockets that are a SOCKS BIND at once */
#define PRELOAD_BIND_WAIT_MS		(10 * 60 * 1000)	/* a BIND waits this long for its peer, at most */
#define PRELOAD_BIND_CHECK_MS		1000	/* its watcher sees this often whether the listener is closed */
#define PRELOAD_BIND_STACK_BYTES	(64u << 10)	/* the watcher thread's stack */
#define PRELOAD_FAKE_V4_NET		"198.18.0.0"	/* RFC 2544 benchmarking range, /15 */
#define PRELOAD_FAKE_V4_BITS		15
#define PRELOAD_FAKE_V6_NET		"100::"		/* RFC 6666 discard prefix, /64 */
#define PRELOAD_FAKE_ENTRIES		8192	/* names one process tree can look up */
#define PRELOAD_FAKE_TABLE_BYTES	(4u << 20)	/* the name table's memfd (sparse) */
#define PRELOAD_FAKE_FD_MIN		512	/* its holder's descriptor, this or above */
/* The same ranges as CIDR text, for the embedded server's deny rules
 * (the prefix lengths are PRELOAD_FAKE_V4_BITS and 64). */
#define PRELOAD_FAKE_V4_CIDR		PRELOAD_FAKE_V4_NET "/15"
#define PRELOAD_FAKE_V6_CIDR		PRELOAD_FAKE_V6_NET "/64"
#define PRELOAD_TIMEOUT_MAX_S		86400	/* largest SOCKSIFY_TIMEOUT accepted */
#define PRELOAD_LOG_LINE_MAX		1024	/* bytes per log line, one write() each */

/* socksify launcher. */
#define LAUNCHER_SERVER_READY_MS	5000	/* embedded socksifyd must be listening by then */
#define LAUNCHER_SERVER_STOP_MS		2000	/* SIGTERM to SIGKILL for the embedded socksifyd */
#define LAUNCHER_POLL_MS		50	/* waiting for the stopped server, per round */
#define LAUNCHER_COPY_BUF_BYTES		4096	/* server stderr copied to ours, per read */
#define LAUNCHER_ELF_STRTAB_MAX		(1 << 20)	/* section names read to spot Go programs */
#define LAUNCHER_LIBRARY_CHUNK		(64 << 10)	/* bytes of a SOCKSIFY_LIBRARY read at once */
#define LAUNCHER_UPSTREAM_EXCLUDE	"127.0.0.0/8,::1"	/* CONTRACT.md default with -x */
#define LAUNCHER_SERVER_USER		"socksify"	/* the embedded server's one user */
#define LAUNCHER_SECRET_BYTES		16	/* random bytes of its password (hex: twice as many) */

#endif
