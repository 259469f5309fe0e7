/*
 * session.c: one client, from its greeting to the end of the relay.
 *
 *   GREETING -> [AUTH] -> REQUEST -> [RESOLVING] -> CONNECTING -> RELAY
 *        \________\__________\____________\______________\-> LINGER -> closed
 *
 * BIND goes REQUEST -> [RESOLVING] -> BIND_WAIT -> RELAY (RFC 1928 §6's two
 * replies); UDP ASSOCIATE goes REQUEST -> UDP, where udp.c relays the
 * datagrams and the session only watches the control connection.
 *
 * Client bytes are parsed from the client->target pipe of the relay, one
 * complete message at a time (RFC 1928 leaves message boundaries to TCP, so
 * greetings may come split or coalesced). Whatever follows the request in
 * that buffer is the client's optimistic data: it stays there and is the
 * first thing the relay sends to the target. Our replies go through the
 * target->client pipe, so the success reply is always written before the
 * first byte from the target.
 *
 * While resolving and connecting the client is not read (its optimistic
 * data must wait), only watched for leaving: see session_watch_client().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "bind.h"
#include "log.h"
#include "relay.h"
#include "rules.h"
#include "server.h"
#include "udp.h"
#include "proxyproto.h"

enum session_state {
	SESSION_PROXY,			/* --proxy-protocol: the header first */
	SESSION_GREETING,
	SESSION_AUTH,
	SESSION_REQUEST,
	SESSION_CHECKING,		/* a hashed password in a resolver thread */
	SESSION_RESOLVING,
	SESSION_CONNECTING,
	SESSION_RELAY,
	SESSION_BIND_WAIT,		/* BIND: first reply sent; awaiting the peer */
	SESSION_UDP,			/* UDP ASSOCIATE: relaying until the client leaves */
	SESSION_LINGER,			/* failure reply sent; waiting to close */
};

enum {
	SESSION_LOG_MAX = 4096,		/* a log line with every field escaped */
};

struct session {
	struct session *prev, *next;
	struct server *srv;
	enum session_state state;
	struct relay r;
	struct loop_timer timer;	/* the deadline of the current state */
	uint64_t start_ms, last_ms;	/* accepted, last byte relayed */
	uint64_t start_us;		/* accepted, CLOCK_MONOTONIC µs (metrics) */
	uint64_t counted_up, counted_down;	/* bytes the metrics have */
	struct sockaddr_storage peer;
	bool have_req;
	struct s5_request req;
	uint8_t ulen;
	char user[S5_CRED_MAX + 1];	/* for the log; never the password */
	struct resolver_job *job;
	struct addrinfo *ai_list;	/* from the resolver; we free it */
	struct addrinfo *ai_next;	/* the next address to try */
	struct addrinfo lit_ai;		/* a literal target as a one-entry list */
	struct sockaddr_storage lit_sa;
	int last_err;			/* of the last connect attempt */
	bool dst_denied;		/* a resolved address was denied by the rules */
	struct sockaddr_storage dst;	/* address of the current attempt */
	bool connected;
	bool client_fin;		/* half-closed after its optimistic data */
	bool client_stirred;		/* spoke or hung up while we connected */
	bool replies_held;		/* handshake replies queued, not yet sent:
					 * only within session_handshake() */
	uint64_t hs_down;		/* reply bytes in the down pipe's count */
	const char *outcome;		/* why it failed or ended */
	bool dead;			/* ended: freed when the callback returns */
	struct udp_assoc *udp;		/* UDP ASSOCIATE's relay, or NULL */
	bool udp_last_word;		/* the client left: lookups under way finish */
};

static void session_close(struct session *s, const char *outcome);
static void session_end(struct session *s, const char *outcome);
static void session_connect_next(struct session *s);
static void session_relay(struct session *s, int readable);
static void session_on_timer(struct loop *l, void *arg);
static void session_on_resolved(void *arg, int gai_err, struct addrinfo *ai);
static void session_on_target(struct loop *l, int fd, uint32_t events, void *arg);
static void session_on_client(struct loop *l, int fd, uint32_t events, void *arg);

/*
 * A relay passes on each write as it comes: Nagle's algorithm would hold a
 * small one back until the previous one is acknowledged, and with delayed
 * ACKs at the far end that costs a request-response exchange tens of
 * milliseconds. Set on a listening socket, the option is inherited by every
 * socket it accepts (a throwaway program showed it): one system call for all
 * of them instead of one a client.
 */
bool
session_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
}

/* --- logging ------------------------------------------------------------ */

/* Client-chosen bytes (names, users) printed so they cannot forge a line. */
static size_t
session_escape(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c > ' ' && c < 0x7f && c != '\\') {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return o;
}

static const char *
session_cmd_name(const struct session *s)
{
	if (!s->have_req)
		return "-";
	switch (s->req.cmd) {
	case S5_CMD_CONNECT:
		return "connect";
	case S5_CMD_BIND:
		return "bind";
	case S5_CMD_UDP_ASSOCIATE:
		return "udp-associate";
	default:
		return "-";
	}
}

/* Who asks, for the rules: the client, its login (a session past the
 * request has logged in, or needed not), and the name it asked for. */
static struct rules_who
session_who(const struct session *s)
{
	struct rules_who w = { .client = (const struct sockaddr *)&s->peer };

	if (s->ulen > 0)
		w.user = s->user;
	if (s->have_req && s->req.dst.atyp == S5_ATYP_DOMAIN)
		w.name = s->req.dst.u.domain.name;
	return w;
}

/* The bytes relayed each way so far: the target's, never our replies; for
 * UDP ASSOCIATE the datagrams' payload, not the control connection's. */
static void
session_bytes(const struct session *s, uint64_t *up, uint64_t *down)
{
	uint64_t last;

	*down = s->connected && s->r.down.bytes > s->hs_down ?
	    s->r.down.bytes - s->hs_down : 0;
	*up = s->r.up.bytes;
	if (s->udp != NULL)
		udp_assoc_stats(s->udp, up, down, &last);
}

/* What the metrics do not have yet of session_bytes(), given to them. */
static void
session_count_bytes(struct session *s)
{
	uint64_t up, down;

	session_bytes(s, &up, &down);
	metrics_bytes(&s->srv->metrics, up > s->counted_up ? up - s->counted_up : 0,
	    down > s->counted_down ? down - s->counted_down : 0);
	if (up > s->counted_up)
		s->counted_up = up;
	if (down > s->counted_down)
		s->counted_down = down;
}

/* A success reply: its code, and the handshake's time since accept(). */
static void
session_count_success(struct session *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	metrics_reply(&s->srv->metrics, S5_REP_SUCCEEDED);
	metrics_handshake(&s->srv->metrics, (uint64_t)now.tv_sec * 1000000u +
	    (uint64_t)now.tv_nsec / 1000u - s->start_us);
}

/* One tab-separated key=value line per session, written with one write(). */
static void
session_log(const struct session *s, const char *outcome)
{
	char line[SESSION_LOG_MAX], ts[sizeof("1970-01-01T00:00:00")];
	char client[S5_ADDR_TEXT_MAX], target[S5_ADDR_TEXT_MAX], conn[S5_ADDR_TEXT_MAX];
	char etarget[4 * S5_ADDR_TEXT_MAX], euser[4 * S5_CRED_MAX + 1];
	struct timespec now;
	struct tm tm;
	uint64_t up, down;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (s5_sockaddr_format((const struct sockaddr *)&s->peer, client, sizeof(client)) < 0)
		strcpy(client, "-");
	if (!s->have_req || s5_addr_format(&s->req.dst, target, sizeof(target)) < 0)
		strcpy(target, "-");
	session_escape(etarget, sizeof(etarget), target, strlen(target));
	if (!s->connected ||
	    s5_sockaddr_format((const struct sockaddr *)&s->dst, conn, sizeof(conn)) < 0)
		strcpy(conn, "-");
	if (s->ulen > 0)
		session_escape(euser, sizeof(euser), s->user, s->ulen);
	else
		strcpy(euser, "-");
	session_bytes(s, &up, &down);
	n = snprintf(line, sizeof(line),
	    "%s.%03ldZ\tclient=%s\tuser=%s\tcmd=%s\ttarget=%s\tconnected=%s"
	    "\tc2t=%llu\tt2c=%llu\tms=%llu\toutcome=%s\n",
	    ts, now.tv_nsec / 1000000L, client, euser, session_cmd_name(s),
	    etarget, conn, (unsigned long long)up,
	    (unsigned long long)down,
	    (unsigned long long)(loop_now(s->srv->loop) - s->start_ms), outcome);
	if (n > 0)
		log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Is peer one of the --proxy-protocol-from networks? */
static bool
session_pp_trusted(const struct server_limits *lim, const struct sockaddr *peer)
{
	size_t i;

	for (i = 0; i < lim->npp_from; i++)
		if (s5_cidr_match(&lim->pp_from[i], peer))
			return true;
	return false;
}

/* --- life cycle --------------------------------------------------------- */

static void
session_drop_target(struct session *s)
{
	if (s->r.tfd < 0)
		return;
	loop_del(s->srv->loop, s->r.tfd);
	if (s->state == SESSION_RELAY) {
		relay_close_target(&s->r);
		return;
	}
	close(s->r.tfd);
	s->r.tfd = -1;
}

static void
session_drop_addrs(struct session *s)
{
	if (s->ai_list != NULL)
		freeaddrinfo(s->ai_list);
	s->ai_list = s->ai_next = NULL;
}

/* Wipe and free the client pipe: during the handshake it may hold a password. */
static void
session_drop_input(struct session *s)
{
	if (s->r.up.buf != NULL)
		explicit_bzero(s->r.up.buf, s->r.up.len);
	relay_pipe_free(&s->r.up);
}

/*
 * A failed login or a denial is what an operator looks for in a log (a
 * password being guessed, a rule doing its work): its session line is
 * written at the default level too, not only with -v. -q keeps it quiet.
 */
static bool
session_notable(const char *outcome)
{
	static const char *const notable[] = {
		"auth failed", "auth busy", "command denied", "destination denied",
		"client denied", "untrusted balancer", "bad proxy header",
	};
	size_t i;

	for (i = 0; i < sizeof(notable) / sizeof(notable[0]); i++)
		if (strcmp(outcome, notable[i]) == 0)
			return true;
	return false;
}

static void
session_close(struct session *s, const char *outcome)
{
	struct server *srv = s->srv;
	enum log_level level = log_get_level();

	if (level >= LOG_LEVEL_VERBOSE ||
	    (level >= LOG_LEVEL_INFO && session_notable(outcome)))
		session_log(s, outcome);
	session_count_bytes(s);
	metrics_session_end(&srv->metrics, session_cmd_name(s), outcome);
	metrics_session(&srv->metrics, -1);
	if (s->state == SESSION_UDP)
		metrics_udp(&srv->metrics, -1);
	loop_timer_stop(srv->loop, &s->timer);
	if (s->job != NULL)
		resolver_cancel(srv->resolver, s->job);
	session_drop_target(s);
	if (!s->udp_last_word || !udp_assoc_orphan(s->udp))
		udp_assoc_free(s->udp);
	loop_del(srv->loop, s->r.cfd);
	close(s->r.cfd);
	session_drop_input(s);
	relay_pipe_free(&s->r.down);
	session_drop_addrs(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	/* A worker with no session keeps no pipe (relay.c). */
	if (--srv->nsessions == 0)
		relay_cache_close();
	free(s);
	listener_resume_stalled(srv);
	server_session_gone(srv);
}

void
session_close_all(struct server *srv)
{
	while (srv->sessions != NULL)
		session_close(srv->sessions, "shutdown");
}

static void
session_arm(struct session *s, uint64_t ms)
{
	/* Without a timer the session could hang forever: end it instead. */
	if (loop_timer_start(s->srv->loop, &s->timer, ms, session_on_timer, s) < 0)
		session_end(s, "out of memory");
}

/*
 * Ending a session is deferred: nested code marks it dead and returns, and
 * the event callback that started it all frees it as its last act, so no
 * caller is left holding a freed session.
 */
static void
session_end(struct session *s, const char *outcome)
{
	if (!s->dead) {
		s->dead = true;
		s->outcome = outcome;
	}
}

/* The last call of every callback: free a dead session, or set both
 * sockets' epoll interest from the state. */
static void
session_done(struct session *s)
{
	struct loop *l = s->srv->loop;
	uint32_t cmask = 0, tmask = 0;
	bool out = relay_pending(&s->r.down) > 0;

	if (s->dead) {
		session_close(s, s->outcome);
		return;
	}
	switch (s->state) {
	case SESSION_PROXY:
	case SESSION_GREETING:
	case SESSION_AUTH:
	case SESSION_REQUEST:
		/* The mask of the resolving and relay states too: one
		 * epoll_ctl fewer at each change of state. */
		cmask = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0);
		break;
	case SESSION_LINGER:
		cmask = EPOLLIN | (out ? EPOLLOUT : 0);
		break;
	case SESSION_CHECKING:
	case SESSION_RESOLVING:
	case SESSION_CONNECTING:
		/*
		 * Only hang-ups matter now (session_watch_client). The mask
		 * stays as it was until the client stirs; then it drops
		 * EPOLLIN, so early data or a FIN cannot wake us in a loop,
		 * and once a half-close is accepted, RDHUP, which would be
		 * reported forever.
		 */
		if (!s->client_stirred)
			cmask = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0);
		else
			cmask = EPOLLHUP | (s->client_fin ? 0 : EPOLLRDHUP) |
			    (out ? EPOLLOUT : 0);
		tmask = s->state == SESSION_CONNECTING ? EPOLLOUT : 0;
		break;
	case SESSION_RELAY:
		relay_masks(&s->r, &cmask, &tmask);
		break;
	case SESSION_BIND_WAIT:
		/* Any byte or EOF from the client ends the wait (session_bind_client). */
		cmask = EPOLLIN | (out ? EPOLLOUT : 0);
		tmask = EPOLLIN;
		break;
	case SESSION_UDP:
		cmask = EPOLLIN | (out ? EPOLLOUT : 0);
		break;
	}
	if (loop_set(l, s->r.cfd, cmask) < 0 ||
	    (s->r.tfd >= 0 && loop_set(l, s->r.tfd, tmask) < 0))
		session_close(s, "epoll failure");
}

/* --- replies and failure ------------------------------------------------ */

/* Queue a reply to the client and try to send it at once. */
static int
session_reply(struct session *s, const uint8_t *msg, int len)
{
	int r;

	if (len < 0)
		return -ENOBUFS;
	if ((r = relay_pipe_put(&s->r.down, msg, (size_t)len)) < 0)
		return r;
	s->replies_held = false;
	r = relay_pipe_flush(&s->r.down, s->r.cfd);
	return r == -EAGAIN ? 0 : r;
}

/*
 * A method or RFC 1929 reply, when the client may be pipelining: while it
 * has sent more than the message answered, the reply waits in the queue
 * and leaves with the next one, in one write, when that one comes in the
 * same wakeup (a password checked in place, a request refused, a BIND or
 * UDP reply, a CONNECT to this host, which is over when connect()
 * returns). A relay in front of us that keeps Nagle's algorithm on
 * (microsocks, tinyproxy as hop 1 of a chain) holds a second small write
 * until the client ACKs the first, and a client that only reads delays
 * that ACK by some 40 ms: measured, 29 of 100 connects through microsocks
 * then socksifyd took 40 ms more, pipelined, than lock-step. A lock-step
 * client has sent nothing more, and its reply goes at once. What is held
 * goes at the end of the wakeup (session_handshake()) at the latest.
 */
static int
session_reply_held(struct session *s, const uint8_t *msg, int len)
{
	int r;

	if (relay_pending(&s->r.up) == 0)
		return session_reply(s, msg, len);
	if (len < 0)
		return -ENOBUFS;
	if ((r = relay_pipe_put(&s->r.down, msg, (size_t)len)) == 0)
		s->replies_held = true;
	return r;
}

/*
 * The reply in msg ends the session. RFC 1928 §6: close within 10 s of the
 * failure. We send our FIN as soon as the reply is out, then read and
 * discard what the client still sends for up to SERVER_FAIL_LINGER_MS:
 * closing with unread input would make the kernel send a RST, which can
 * destroy the reply before the client reads it.
 */
static void
session_fail(struct session *s, const uint8_t *msg, int len, const char *outcome)
{
	if (s->job != NULL) {
		resolver_cancel(s->srv->resolver, s->job);
		s->job = NULL;
	}
	session_drop_target(s);
	session_drop_addrs(s);
	session_drop_input(s);
	s->outcome = outcome;
	s->state = SESSION_LINGER;
	if (session_reply(s, msg, len) < 0) {
		session_end(s, outcome);
		return;
	}
	if (relay_pending(&s->r.down) == 0) {
		(void)shutdown(s->r.cfd, SHUT_WR);
		s->r.down.shut = true;
	}
	session_arm(s, SERVER_FAIL_LINGER_MS);
}

static void
session_fail_rep(struct session *s, uint8_t rep, const char *outcome)
{
	struct s5_reply reply = { .rep = rep };
	static const uint8_t any[4];
	uint8_t msg[S5_MSG_MAX];

	/* RFC 1928 §6: on failure BND.ADDR carries no meaning; send 0.0.0.0:0. */
	s5_addr_set_ip4(&reply.bnd, any, 0);
	metrics_reply(&s->srv->metrics, rep);
	session_fail(s, msg, s5_encode_reply(msg, sizeof(msg), &reply),
	    outcome != NULL ? outcome : s5_rep_str(rep));
}

/* --- BIND and UDP ASSOCIATE (RFC 1928 §6, §7) --------------------------- */

/* Queue a success reply carrying bnd; it goes out before any relayed byte. */
static int
session_reply_ok(struct session *s, const struct s5_addr *bnd)
{
	struct s5_reply reply = { .rep = S5_REP_SUCCEEDED, .bnd = *bnd };
	uint8_t msg[S5_MSG_MAX];
	int n = s5_encode_reply(msg, sizeof(msg), &reply);

	if (n < 0)
		return -ENOBUFS;
	return relay_pipe_put(&s->r.down, msg, (size_t)n);
}

/* Send what is queued for the client now; the loop finishes it otherwise. */
static void
session_flush_client(struct session *s)
{
	int r;

	s->replies_held = false;
	r = relay_pipe_flush(&s->r.down, s->r.cfd);

	if (r < 0 && r != -EAGAIN)
		session_end(s, "client write failed");
}

/*
 * RFC 1928 §6, first BIND reply: listen on the address the client reached
 * us on (bind.h says why), port 0, and tell the client where.
 */
static void
session_bind_listen(struct session *s)
{
	struct sockaddr_storage local;
	struct s5_addr bnd;
	int len, fd = -1, r;

	/* §6 gives the client nothing to send before the second reply. */
	if (relay_pending(&s->r.up) > 0) {
		session_fail_rep(s, S5_REP_GENERAL_FAILURE, "client spoke during bind");
		return;
	}
	/* The address this host reaches the expected peer from (else where
	 * the client reached us), or --outgoing's address of that family:
	 * the side targets see. */
	if ((len = bind_local_addr(s->r.cfd, &local)) < 0) {
		r = len;
	} else {
		len = bind_toward_peer(&s->req.dst, s->ai_list, &local, len);
		len = (int)outgoing_listen_at(&s->srv->lim.out, &local, (socklen_t)len);
		r = bind_listen((struct sockaddr *)&local, (socklen_t)len, &fd, &bnd);
	}
	if (r < 0) {
		session_fail_rep(s, s5_rep_from_errno(-r), "bind failed");
		return;
	}
	if (loop_add(s->srv->loop, fd, EPOLLIN, session_on_target, s) < 0) {
		close(fd);
		session_fail_rep(s, S5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	s->r.tfd = fd;
	if (session_reply_ok(s, &bnd) < 0) {
		session_end(s, "out of memory");
		return;
	}
	session_count_success(s);
	s->state = SESSION_BIND_WAIT;
	session_arm(s, s->srv->lim.bind_ms);
	session_flush_client(s);
}

static void
session_start_bind(struct session *s)
{
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
	const struct s5_addr *dst = &s->req.dst;
	const struct rules_who who = session_who(s);
	struct sockaddr_storage ss;

	if (dst->atyp == S5_ATYP_DOMAIN) {
		if (strchr(dst->u.domain.name, '\\') != NULL ||
		    !rules_name_ok(rules_current(), &who, S5_CMD_BIND, dst->port)) {
			session_fail_rep(s, S5_REP_NOT_ALLOWED, NULL);
			return;
		}
		/* The peer we expect is whatever the name resolves to. */
		if (resolver_lookup(s->srv->resolver, dst->u.domain.name, dst->port,
		    peer, true, session_on_resolved, s, &s->job) < 0) {
			session_fail_rep(s, S5_REP_GENERAL_FAILURE, "resolver busy");
			return;
		}
		s->state = SESSION_RESOLVING;
		session_arm(s, s->srv->lim.connect_ms);
		return;
	}
	/* rules.h: the address the client expects to connect back, when given. */
	if (!bind_addr_any(dst) && s5_addr_to_sockaddr(dst, &ss) > 0 &&
	    !rules_dest_ok(rules_current(), &who, S5_CMD_BIND, (struct sockaddr *)&ss)) {
		session_fail_rep(s, S5_REP_NOT_ALLOWED, NULL);
		return;
	}
	session_bind_listen(s);
}

/*
 * While BIND waits the control connection has nothing to say: a client
 * that speaks has given up (3proxy aborts too) and gets reply 01; one that
 * closes or resets is just closed.
 */
static void
session_bind_client(struct session *s, uint32_t events)
{
	uint8_t b;
	ssize_t n;

	session_flush_client(s);
	if (s->dead || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(s->r.cfd, &b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		session_fail_rep(s, S5_REP_GENERAL_FAILURE, "client spoke during bind");
	else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		session_end(s, "client closed");
}

static void
session_bind_refuse(const struct session *s, const struct sockaddr *from)
{
	char line[SESSION_LOG_MAX], client[S5_ADDR_TEXT_MAX], who[S5_ADDR_TEXT_MAX];
	int n;

	if (log_get_level() < LOG_LEVEL_VERBOSE)
		return;
	if (s5_sockaddr_format((const struct sockaddr *)&s->peer, client, sizeof(client)) < 0)
		strcpy(client, "-");
	if (s5_sockaddr_format(from, who, sizeof(who)) < 0)
		strcpy(who, "-");
	n = snprintf(line, sizeof(line), "socksifyd: bind client=%s: connection "
	    "from %s refused (not the expected host, or denied); still waiting\n",
	    client, who);
	if (n > 0)
		log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* The success reply is queued: from here on, bytes flow both ways. The
 * reply's bytes are not the target's, so the log's count starts after them. */
static void
session_enter_relay(struct session *s)
{
	s->hs_down = s->r.down.bytes + relay_pending(&s->r.down);
	s->r.splice = s->srv->lim.splice;
	s->r.splice_bulk = s->srv->lim.splice_bulk;
	s->state = SESSION_RELAY;
	s->last_ms = loop_now(s->srv->loop);
	session_arm(s, s->srv->lim.idle_ms);
}

/*
 * RFC 1928 §6, second BIND reply: the connecting host's address, then the
 * control connection carries its bytes, relayed as for CONNECT. A
 * connection from another host than DST.ADDR is closed and the wait goes
 * on, so a port scan cannot steal the slot (Dante and 3proxy match the IP
 * too; 3proxy fails the request instead).
 */
static void
session_bind_accept(struct session *s)
{
	const struct rules_who who = session_who(s);
	struct sockaddr_storage from;
	socklen_t len = sizeof(from);
	struct s5_addr bnd;
	int fd;

	fd = accept4(s->r.tfd, (struct sockaddr *)&from, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		/* ECONNABORTED: the connecting host gave up; wait for another. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return;
		session_fail_rep(s, s5_rep_from_errno(errno), "bind accept failed");
		return;
	}
	if (!bind_peer_ok(&s->req.dst, s->ai_list, (struct sockaddr *)&from, len) ||
	    !rules_dest_ok(rules_current(), &who, S5_CMD_BIND, (struct sockaddr *)&from)) {
		session_bind_refuse(s, (struct sockaddr *)&from);
		close(fd);
		return;
	}
	(void)session_nodelay(fd);	/* as on the client side */
	/* Exactly one connection: the listener goes now. */
	session_drop_target(s);
	session_drop_addrs(s);
	if (loop_add(s->srv->loop, fd, EPOLLIN, session_on_target, s) < 0) {
		close(fd);
		session_fail_rep(s, S5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	s->r.tfd = fd;
	memcpy(&s->dst, &from, len);
	loop_timer_stop(s->srv->loop, &s->timer);
	if (s5_addr_from_sockaddr(&bnd, (struct sockaddr *)&from, len) < 0 ||
	    session_reply_ok(s, &bnd) < 0) {
		session_end(s, "out of memory");
		return;
	}
	metrics_reply(&s->srv->metrics, S5_REP_SUCCEEDED);	/* BIND's second */
	s->connected = true;
	session_enter_relay(s);
}

/*
 * RFC 1928 §6 UDP ASSOCIATE: the reply names the relay (udp.c); from then
 * on the control connection only keeps the association alive.
 */
static void
session_start_udp(struct session *s)
{
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
	struct sockaddr_storage local;
	struct s5_addr bnd;
	int len, r;

	if ((len = bind_local_addr(s->r.cfd, &local)) < 0)
		r = len;
	else
		/* DST.ADDR is only a hint (clients send junk): the IP is the
		 * control peer's; DST.PORT, when given, pins the client's port. */
		r = udp_assoc_new(s->srv, peer, sizeof(s->peer), s->ulen > 0 ? s->user : NULL,
		    (struct sockaddr *)&local, (socklen_t)len, s->req.dst.port,
		    &s->udp, &bnd);
	if (r < 0) {
		session_fail_rep(s, s5_rep_from_errno(-r), "udp-associate failed");
		return;
	}
	/* The log's "connected" field shows the relay. */
	if (s5_addr_to_sockaddr(&bnd, &s->dst) > 0)
		s->connected = true;
	session_drop_input(s);
	if (session_reply_ok(s, &bnd) < 0) {
		session_end(s, "out of memory");
		return;
	}
	session_count_success(s);
	metrics_udp(&s->srv->metrics, 1);
	s->state = SESSION_UDP;
	session_arm(s, s->srv->lim.udp_idle_ms);
	session_flush_client(s);
}

/*
 * RFC 1928 §6: the association ends with the control connection. What the
 * client sends on it means nothing and is discarded, so the socket never
 * fills up.
 */
static void
session_udp_client(struct session *s)
{
	uint8_t sink[SERVER_RELAY_BUF_BYTES];
	ssize_t n;

	session_flush_client(s);
	if (s->dead)
		return;
	n = read(s->r.cfd, sink, sizeof(sink));
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		const char *outcome = n == 0 ? "ok" : strerror(errno);

		udp_assoc_last_word(s->udp);
		/* Datagrams to names still go, once looked up
		 * (session_close()). */
		s->udp_last_word = true;
		session_end(s, outcome);
	}
}

static void
session_udp_timer(struct session *s)
{
	uint64_t c2t, t2c, last, idle;

	udp_assoc_stats(s->udp, &c2t, &t2c, &last);
	idle = loop_now(s->srv->loop) - last;
	if (idle >= s->srv->lim.udp_idle_ms)
		session_end(s, "idle timeout");
	else
		session_arm(s, s->srv->lim.udp_idle_ms - idle);
}

/* --- the handshake ------------------------------------------------------ */

static void
session_consume(struct session *s, size_t used)
{
	struct relay_pipe *p = &s->r.up;

	/* What is consumed may be a password: do not leave it behind. */
	explicit_bzero(p->buf + p->off, used);
	p->off += used;
	if (p->off == p->len) {
		relay_pipe_free(p);
		return;
	}
	memmove(p->buf, p->buf + p->off, p->len - p->off);
	p->len -= p->off;
	explicit_bzero(p->buf + p->len, p->off);
	p->off = 0;
}

static void
session_start_connect(struct session *s)
{
	struct resolver *res = s->srv->resolver;
	const struct s5_addr *dst = &s->req.dst;
	const struct rules_who who = session_who(s);
	int salen, r;

	if (dst->atyp == S5_ATYP_DOMAIN) {
		/* The resolver reads "\\DDD" escapes: the name it would look
		 * up is not the one the rules judge. No host name has one. */
		if (strchr(dst->u.domain.name, '\\') != NULL) {
			session_fail_rep(s, S5_REP_HOST_UNREACHABLE, "bad name");
			return;
		}
		/* A rule naming it refuses it before anything is looked up. */
		if (!rules_name_ok(rules_current(), &who, s->req.cmd, dst->port)) {
			session_fail_rep(s, S5_REP_NOT_ALLOWED, "destination denied");
			return;
		}
		r = resolver_lookup(res, dst->u.domain.name, dst->port,
		    (const struct sockaddr *)&s->peer, true, session_on_resolved, s, &s->job);
		if (r < 0) {
			session_fail_rep(s, S5_REP_GENERAL_FAILURE, "resolver busy");
			return;
		}
		s->state = SESSION_RESOLVING;
		/* getaddrinfo() has its own timeouts; this only bounds the wait. */
		session_arm(s, s->srv->lim.connect_ms);
		return;
	}
	if ((salen = s5_addr_to_sockaddr(dst, &s->lit_sa)) < 0) {
		session_fail_rep(s, S5_REP_ATYP_NOT_SUPPORTED, NULL);
		return;
	}
	s->lit_ai.ai_family = s->lit_sa.ss_family;
	s->lit_ai.ai_socktype = SOCK_STREAM;
	s->lit_ai.ai_addr = (struct sockaddr *)&s->lit_sa;
	s->lit_ai.ai_addrlen = (socklen_t)salen;
	s->lit_ai.ai_next = NULL;
	s->ai_next = &s->lit_ai;
	session_connect_next(s);
}

/* The RFC 1929 verdict sent: 0 to go on to the request, -1 when the
 * session failed (RFC 1929 §2: after a failure status the server MUST
 * close). */
static int
session_auth_reply(struct session *s, bool ok, const char *outcome)
{
	uint8_t msg[S5_MSG_MAX];
	int r = s5_encode_auth_reply(msg, sizeof(msg), ok ? S5_AUTH_SUCCESS : S5_AUTH_FAILURE);

	if (!ok) {
		session_fail(s, msg, r, outcome);
		return -1;
	}
	if (session_reply_held(s, msg, r) < 0) {
		session_end(s, "client write failed");
		return -1;
	}
	s->state = SESSION_REQUEST;
	return 0;
}

static void session_handshake(struct session *s);

/* A hashed password checked (resolver_check()): the verdict, and on to
 * what the client sent meanwhile. */
static void
session_on_checked(void *arg, bool ok)
{
	struct session *s = arg;

	s->job = NULL;
	if (!ok)
		metrics_auth_failed(&s->srv->metrics);	/* the hash said no */
	if (session_auth_reply(s, ok, "auth failed") == 0)
		session_handshake(s);
	session_done(s);
}

/*
 * Parses as many complete messages as the client pipe holds. Returns with
 * the session in a waiting state; it may have failed (LINGER) or moved on to
 * connecting, in which case the rest of the pipe is optimistic data.
 */
static void
session_parse(struct session *s)
{
	bool userpass = s->srv->users != NULL;
	struct rules_who who;

	while (s->state <= SESSION_REQUEST && relay_pending(&s->r.up) > 0) {
		const uint8_t *p = s->r.up.buf + s->r.up.off;
		size_t n = relay_pending(&s->r.up), used = 0;
		uint8_t msg[S5_MSG_MAX], m;
		struct s5_greeting g;
		struct s5_cred cred;
		struct users_hash hash;
		struct pp_header pp;
		enum users_verdict v;
		int r;

		switch (s->state) {
		case SESSION_PROXY:
			r = pp_parse(p, n, &pp, &used);
			if (r == S5_NEED_MORE)
				return;
			if (r < 0) {
				/* Nothing to answer in SOCKS: the balancer is broken. */
				session_end(s, "bad proxy header");
				return;
			}
			session_consume(s, used);
			/* LOCAL (a health check), UNKNOWN, UNSPEC, UNIX: no client
			 * to rule on, and the balancer's own address must not
			 * stand in for one. The check has what it came for. */
			if (pp.local || pp.srclen > sizeof(s->peer)) {
				session_end(s, "no client in proxy header");
				return;
			}
			/* The client the balancer accepted is ours from here on:
			 * rules, logs, per-client limits. */
			memset(&s->peer, 0, sizeof(s->peer));
			memcpy(&s->peer, &pp.src, pp.srclen);
			if (!rules_client_ok(rules_current(), (const struct sockaddr *)&s->peer)) {
				session_end(s, "client denied");
				return;
			}
			s->state = SESSION_GREETING;
			break;
		case SESSION_GREETING:
			r = s5_parse_greeting(p, n, &g, &used);
			if (r == S5_NEED_MORE)
				return;
			/* RFC 1928 §3: X'FF' is also our answer to a greeting that is not SOCKS5. */
			m = r < 0 ? (uint8_t)S5_METHOD_UNACCEPTABLE : s5_choose_method(&g, userpass);
			if (m == S5_METHOD_UNACCEPTABLE) {
				session_fail(s, msg, s5_encode_method_reply(msg, sizeof(msg), m),
				    r < 0 ? "bad greeting" : "no acceptable method");
				return;
			}
			session_consume(s, used);
			if (session_reply_held(s, msg, s5_encode_method_reply(msg, sizeof(msg), m)) < 0) {
				session_end(s, "client write failed");
				return;
			}
			s->state = s5_method_base(m) == S5_METHOD_USERPASS ? SESSION_AUTH : SESSION_REQUEST;
			break;
		case SESSION_AUTH:
			r = s5_parse_auth(p, n, &cred, &used);
			if (r == S5_NEED_MORE)
				return;
			v = r == 0 && s->srv->users != NULL ?
			    users_verdict(s->srv->users, &cred, &hash) : USERS_REFUSED;
			if (r == 0) {
				s->ulen = cred.ulen;
				memcpy(s->user, cred.user, cred.ulen);
				session_consume(s, used);
			}
			/* A hash: crypt(3) off the loop; the client waits. */
			if (v == USERS_HASH) {
				r = resolver_check(s->srv->resolver, &cred, &hash,
				    (const struct sockaddr *)&s->peer, session_on_checked, s, &s->job);
				explicit_bzero(&cred, sizeof(cred));
				explicit_bzero(&hash, sizeof(hash));
				if (r == 0)
					s->state = SESSION_CHECKING;
				else
					(void)session_auth_reply(s, false, "auth busy");
				return;
			}
			explicit_bzero(&cred, sizeof(cred));
			/* A wrong password or user: not a malformed message, not
			 * a busy checker (auth_failures_total is for guessing). */
			if (r == 0 && v != USERS_ACCEPTED)
				metrics_auth_failed(&s->srv->metrics);
			if (session_auth_reply(s, v == USERS_ACCEPTED, "auth failed") < 0)
				return;
			break;
		default:
			r = s5_parse_request(p, n, &s->req, &used);
			if (r == S5_NEED_MORE)
				return;
			if (r < 0) {
				session_fail_rep(s, (uint8_t)s5_err_rep(r),
				    s5_err_rep(r) == S5_REP_GENERAL_FAILURE ? "bad request" : NULL);
				return;
			}
			s->have_req = true;
			session_consume(s, used);
			loop_timer_stop(s->srv->loop, &s->timer);
			/* Switched off is "command not supported"; a rule says "not allowed". */
			if (!rules_command_enabled(rules_current(), s->req.cmd)) {
				session_fail_rep(s, S5_REP_CMD_NOT_SUPPORTED, "command disabled");
				return;
			}
			/* BIND's listener and UDP's relay would be on the address
			 * the balancer reached, which its clients cannot reach. */
			if (s->srv->lim.proxy_protocol && s->req.cmd != S5_CMD_CONNECT) {
				session_fail_rep(s, S5_REP_CMD_NOT_SUPPORTED, "command disabled");
				return;
			}
			who = session_who(s);
			if (!rules_command_ok(rules_current(), &who, s->req.cmd)) {
				session_fail_rep(s, S5_REP_NOT_ALLOWED, "command denied");
				return;
			}
			switch (s->req.cmd) {
			case S5_CMD_BIND:
				session_start_bind(s);
				break;
			case S5_CMD_UDP_ASSOCIATE:
				session_start_udp(s);
				break;
			default:
				session_start_connect(s);
				break;
			}
			return;
		}
	}
}

/* The client's messages so far. Replies held for a pipelined client go
 * before we wait for anything: for the client again, or for a password
 * check, a name or a connect under way. A client takes the first byte of
 * a hop for its word that the hop is alive (libsocksify does: failover.c,
 * "a slow target is waited for"): held for the outcome, a slow target
 * would pass for a dead proxy. */
static void
session_handshake(struct session *s)
{
	session_parse(s);
	if (s->replies_held && !s->dead)
		session_flush_client(s);
}

/* --- connecting --------------------------------------------------------- */

/* BIND named its peer: is any address the name resolved to allowed? (The
 * literal case is checked before listening; a name must not do better.) */
static bool
session_bind_names_ok(const struct session *s)
{
	const struct rules_who who = session_who(s);
	const struct addrinfo *a;

	for (a = s->ai_list; a != NULL; a = a->ai_next)
		if (rules_dest_ok(rules_current(), &who, S5_CMD_BIND, a->ai_addr))
			return true;
	return false;
}

static void
session_on_resolved(void *arg, int gai_err, struct addrinfo *ai)
{
	struct session *s = arg;

	s->job = NULL;
	if (gai_err != 0) {
		/* server-anchors.md §2.5: a name that does not resolve is 04. */
		session_fail_rep(s, S5_REP_HOST_UNREACHABLE, NULL);
		session_done(s);
		return;
	}
	s->ai_list = s->ai_next = ai;
	if (s->req.cmd == S5_CMD_BIND && !session_bind_names_ok(s))
		session_fail_rep(s, S5_REP_NOT_ALLOWED, "destination denied");
	else if (s->req.cmd == S5_CMD_BIND)
		session_bind_listen(s);
	else
		session_connect_next(s);
	session_done(s);
}

/*
 * A non-blocking connect() to this host says EINPROGRESS, yet the
 * handshake has run by the time it returns: loopback delivers the SYN and
 * the SYN-ACK within the call. A peer means connected: the reply can go in
 * this wakeup rather than after an EPOLLOUT round (an epoll_ctl and a
 * wakeup fewer a CONNECT). Farther away, it costs one failed call.
 */
static bool
session_established(int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	return getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
}

static void
session_connected(struct session *s)
{
	struct s5_reply reply = { .rep = S5_REP_SUCCEEDED };
	struct sockaddr_storage bnd;
	socklen_t bndlen = sizeof(bnd);
	static const uint8_t any[4];
	uint8_t msg[S5_MSG_MAX];
	int n;

	loop_timer_stop(s->srv->loop, &s->timer);
	s->connected = true;
	session_drop_addrs(s);
	/* RFC 1928 §6: BND is the address we connect from, in its own family. */
	if (getsockname(s->r.tfd, (struct sockaddr *)&bnd, &bndlen) == -1 ||
	    s5_addr_from_sockaddr(&reply.bnd, (struct sockaddr *)&bnd, bndlen) < 0)
		s5_addr_set_ip4(&reply.bnd, any, 0);
	n = s5_encode_reply(msg, sizeof(msg), &reply);
	if (n < 0 || relay_pipe_put(&s->r.down, msg, (size_t)n) < 0) {
		session_end(s, "out of memory");
		return;
	}
	session_count_success(s);
	s->replies_held = false;	/* they go with this one */
	session_enter_relay(s);
	/* The reply goes now, with what the client sent behind its request.
	 * Bytes still in the client's socket: epoll reports them at once. */
	if (!s->dead)
		session_relay(s, 0);
}

/* Tries the remaining addresses until one connect is under way. */
static void
session_connect_next(struct session *s)
{
	const struct rules_who who = session_who(s);
	struct loop *l = s->srv->loop;
	uint8_t rep;

	while (s->ai_next != NULL) {
		struct addrinfo *a = s->ai_next;
		bool now;
		int fd, r;

		s->ai_next = a->ai_next;
		/* Checked per resolved address, so a name cannot smuggle one in. */
		if (!rules_dest_ok(rules_current(), &who, s->req.cmd, a->ai_addr)) {
			s->dst_denied = true;
			continue;
		}
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			s->last_err = errno;
			continue;
		}
		memcpy(&s->dst, a->ai_addr, a->ai_addrlen);
		(void)session_nodelay(fd);	/* as on the client side */
		if ((r = outgoing_bind(&s->srv->lim.out, fd, a->ai_addr, true)) < 0) {
			s->last_err = -r;
			close(fd);
			continue;
		}
		if ((r = connect(fd, a->ai_addr, a->ai_addrlen)) == -1 && errno != EINPROGRESS) {
			s->last_err = errno;
			close(fd);
			continue;
		}
		now = r == 0 || session_established(fd);
		/* Connected already: no EPOLLOUT round. EPOLLIN is the relay's
		 * mask for a fresh target, so this is its one epoll_ctl, and a
		 * failure to add it still comes before any reply. */
		if ((r = loop_add(l, fd, now ? EPOLLIN : EPOLLOUT, session_on_target, s)) < 0) {
			s->last_err = -r;
			close(fd);
			continue;
		}
		s->r.tfd = fd;
		s->state = SESSION_CONNECTING;
		if (now)
			session_connected(s);
		else
			session_arm(s, s->srv->lim.connect_ms);
		return;
	}
	if (s->last_err == 0 && s->dst_denied) {
		session_fail_rep(s, S5_REP_NOT_ALLOWED, "destination denied");
		return;
	}
	rep = s5_rep_from_errno(s->last_err != 0 ? s->last_err : EHOSTUNREACH);
	session_fail_rep(s, rep, NULL);
}

/* --- events ------------------------------------------------------------- */

/* Readiness that calls for a read: data, FIN, or an error to collect. */
#define SESSION_READABLE	(EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

static void
session_relay(struct session *s, int readable)
{
	bool moved;
	int r = relay_step(&s->r, readable, &moved);

	if (moved) {
		s->last_ms = loop_now(s->srv->loop);
		session_count_bytes(s);
	}
	if (r < 0) {
		relay_abort(&s->r);
		session_end(s, strerror(-r));
	} else if (r == 1)
		session_end(s, "ok");
}

/*
 * The client while we resolve or connect for it: its bytes are not read
 * (what follows the request is optimistic data for the target and stays
 * queued, in our pipe or in the socket), but a client that has gone away
 * ends the session now, which cancels its lookup or closes its outgoing
 * socket, instead of when the connect ends or times out. The rule:
 *  - EPOLLHUP or EPOLLERR: reset, or shut down both ways: gone.
 *  - EPOLLRDHUP (its FIN) with bytes after the request, ours or still in
 *    the socket: a legitimate half-close (printf 'GET /...' | nc -N): the
 *    session goes on, and the relay passes the FIN on after those bytes.
 *  - EPOLLRDHUP with nothing after the request: gone. close() and
 *    shutdown(SHUT_WR) send the same FIN and differ on the wire only once
 *    we write, and RFC 1928 gives us nothing to write before the reply. We
 *    take the FIN as close(): only a client that half-closes with nothing
 *    to send and then waits for the target to speak first loses, and
 *    clients that close are far more common than that.
 * A connect that is over when connect() returns (session_established())
 * never waits here: the reply goes in the same wakeup, and a FIN the
 * client sent behind its request reaches the relay as a half-close, passed
 * on to the target like any other.
 */
static void
session_watch_client(struct session *s, uint32_t events)
{
	uint8_t b;

	if (events & (EPOLLHUP | EPOLLERR)) {
		session_end(s, "client closed");
		return;
	}
	if (!(events & EPOLLRDHUP) || s->client_fin)
		return;
	/* MSG_PEEK: look for data without taking it from the socket. */
	if (relay_pending(&s->r.up) > 0 ||
	    recv(s->r.cfd, &b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) > 0)
		s->client_fin = true;
	else
		session_end(s, "client closed");
}

/* After a failure: flush the reply, send FIN, discard input until EOF. */
static void
session_linger(struct session *s)
{
	uint8_t sink[SERVER_RELAY_BUF_BYTES];
	ssize_t n;
	int r;

	if (!s->r.down.shut) {
		r = relay_pipe_flush(&s->r.down, s->r.cfd);
		if (r < 0 && r != -EAGAIN) {
			session_end(s, s->outcome);
			return;
		}
		if (r == 0) {
			(void)shutdown(s->r.cfd, SHUT_WR);
			s->r.down.shut = true;
		}
	}
	n = read(s->r.cfd, sink, sizeof(sink));
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		session_end(s, s->outcome);
}

static void
session_on_client(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct session *s = arg;
	long n;
	int r;

	(void)l;
	(void)fd;
	switch (s->state) {
	case SESSION_RELAY:
		session_relay(s, events & SESSION_READABLE ? RELAY_READ_CLIENT : 0);
		break;
	case SESSION_LINGER:
		session_linger(s);
		break;
	case SESSION_BIND_WAIT:
		session_bind_client(s, events);
		break;
	case SESSION_UDP:
		session_udp_client(s);
		break;
	case SESSION_CHECKING:
	case SESSION_RESOLVING:
	case SESSION_CONNECTING:
		s->client_stirred |= (events & ~EPOLLOUT) != 0;
		session_watch_client(s, events);
		if (s->dead)
			break;
		/* Only a handshake reply can be waiting for the client here. */
		r = relay_pipe_flush(&s->r.down, s->r.cfd);
		if (r < 0 && r != -EAGAIN)
			session_end(s, "client write failed");
		break;
	default:
		r = relay_pipe_flush(&s->r.down, s->r.cfd);
		if (r < 0 && r != -EAGAIN) {
			session_end(s, "client write failed");
			break;
		}
		n = relay_pipe_fill(&s->r.up, s->r.cfd, false);
		if (n == 0)
			session_end(s, "client closed");
		else if (n == -ENOBUFS)
			session_fail_rep(s, S5_REP_GENERAL_FAILURE, "bad request");
		else if (n < 0 && n != -EAGAIN)
			session_end(s, strerror((int)-n));
		else
			session_handshake(s);
		break;
	}
	session_done(s);
}

static void
session_on_target(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct session *s = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)l;
	if (s->state == SESSION_RELAY) {
		session_relay(s, events & SESSION_READABLE ? RELAY_READ_TARGET : 0);
	} else if (s->state == SESSION_CONNECTING) {
		/* Writable and nothing else is a connect that worked; a failed
		 * one is always reported with EPOLLERR. */
		if ((events & (EPOLLERR | EPOLLHUP)) &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if ((events & (EPOLLERR | EPOLLHUP)) && err == 0)
			err = ECONNREFUSED;	/* hung up, and no error to say why */
		if (err == 0) {
			session_connected(s);
		} else {
			s->last_err = err;
			session_drop_target(s);
			session_connect_next(s);
		}
	} else if (s->state == SESSION_BIND_WAIT) {
		session_bind_accept(s);
	}
	session_done(s);
}

static void
session_on_timer(struct loop *l, void *arg)
{
	struct session *s = arg;
	uint64_t idle;

	switch (s->state) {
	case SESSION_PROXY:
	case SESSION_GREETING:
	case SESSION_AUTH:
	case SESSION_REQUEST:
		session_end(s, "handshake timeout");
		break;
	case SESSION_CHECKING:
		/* A login that did not get its turn (or its crypt(3) did not
		 * end) in time: refused as a busy one is, said and logged. */
		(void)session_auth_reply(s, false, "auth busy");
		break;
	case SESSION_RESOLVING:
		session_fail_rep(s, S5_REP_HOST_UNREACHABLE, "resolve timeout");
		break;
	case SESSION_CONNECTING:
		/* server-anchors.md §2.5: our own connect timer is ETIMEDOUT. */
		s->last_err = ETIMEDOUT;
		session_drop_target(s);
		session_connect_next(s);
		break;
	case SESSION_RELAY:
		/* The timer is not moved on every byte; it checks when it fires. */
		idle = loop_now(l) - s->last_ms;
		if (idle >= s->srv->lim.idle_ms)
			session_end(s, "idle timeout");
		else
			session_arm(s, s->srv->lim.idle_ms - idle);
		break;
	case SESSION_BIND_WAIT:
		/* server-anchors.md §2.5: our own timer is 06, sent as the second reply. */
		session_fail_rep(s, S5_REP_TTL_EXPIRED, "bind timeout");
		break;
	case SESSION_UDP:
		session_udp_timer(s);
		break;
	case SESSION_LINGER:
		session_end(s, s->outcome);
		break;
	}
	session_done(s);
}

void
session_start(struct server *srv, int fd, const struct sockaddr *peer,
    socklen_t peerlen)
{
	struct session *s;

	if (srv->nsessions >= srv->lim.max_sessions || (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	/* TCP_NODELAY: inherited from the listener (session_nodelay()). */
	s->srv = srv;
	s->r.cfd = fd;
	s->r.tfd = -1;
	s->state = SESSION_GREETING;
	s->start_ms = s->last_ms = loop_now(srv->loop);
	if (peerlen > sizeof(s->peer))
		peerlen = sizeof(s->peer);
	memcpy(&s->peer, peer, peerlen);
	if (loop_add(srv->loop, fd, EPOLLIN | EPOLLRDHUP, session_on_client, s) < 0) {
		close(fd);
		free(s);
		return;
	}
	if ((s->next = srv->sessions) != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	server_session_born(srv);
	metrics_session(&srv->metrics, 1);
	{
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		s->start_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	}
	session_arm(s, srv->lim.handshake_ms);
	/* A header is believed only from a balancer's address: anyone else
	 * could name a client the rules trust. The rules wait for it. */
	if (srv->lim.proxy_protocol && !session_pp_trusted(&srv->lim, peer))
		session_end(s, "untrusted balancer");
	else if (srv->lim.proxy_protocol)
		s->state = SESSION_PROXY;
	else if (!rules_client_ok(rules_current(), peer))
		session_end(s, "client denied");
	if (s->dead) {
		session_done(s);
		return;
	}
	/* A client speaks first, and on loopback or a busy server its
	 * greeting is usually in already: read it now, not one epoll round
	 * later. (Nothing there costs one read that says EAGAIN.) */
	session_on_client(srv->loop, fd, EPOLLIN, s);
}
