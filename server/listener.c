/*
 * listener.c: socksifyd's listening sockets and accept(), for one worker.
 *
 * Each worker has its own listeners: sockets of their own bound with
 * SO_REUSEPORT to one address (the kernel spreads the clients), or one
 * socket shared by every worker's epoll with EPOLLEXCLUSIVE (--accept).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "defaults.h"
#include "listener.h"
#include "log.h"
#include "rules.h"
#include "server.h"

/* getaddrinfo()'s answer that a name has no address (of any family). */
static bool
listen_name_unknown(int gai_err)
{
	switch (gai_err) {
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return true;
	default:
		return false;
	}
}

/* A listen address as one sockaddr; exits on failure. */
static socklen_t
listen_resolve(const struct s5_addr *a, const char *text,
    struct sockaddr_storage *ss)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *ai;
	char port[sizeof("65535")];
	socklen_t len;
	int r;

	if (a->atyp != S5_ATYP_DOMAIN)
		return (socklen_t)s5_addr_to_sockaddr(a, ss);
	/* A host name is resolved once, here, and its first address used. */
	snprintf(port, sizeof(port), "%u", (unsigned)a->port);
	if ((r = getaddrinfo(a->u.domain.name, port, &hints, &ai)) != 0) {
		/*
		 * An answer that the name has no address makes the option
		 * wrong, a usage error; no answer (the DNS is down, EAI_AGAIN)
		 * is a runtime failure, which may pass.
		 */
		if (listen_name_unknown(r))
			log_fatal(SERVER_EXIT_USAGE, "bad listen address '%s': host '%s' not found",
			    text, a->u.domain.name);
		log_fatal(EXIT_FAILURE, "listen address '%s': cannot look '%s' up: %s",
		    text, a->u.domain.name, gai_strerror(r));
	}
	len = ai->ai_addrlen;
	memcpy(ss, ai->ai_addr, len);
	freeaddrinfo(ai);
	return len;
}

/*
 * A socket listening on ss, into lst. join: another worker's socket on the
 * same address and port. 0, or -EADDRINUSE when may_be_taken; every other
 * failure exits.
 */
static int
listener_open(struct listener *lst, const struct sockaddr_storage *ss,
    socklen_t len, const char *text, bool join, bool reuseport,
    bool may_be_taken)
{
	struct sockaddr_storage got;
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		log_fatal(EXIT_FAILURE, "%ssocket for %s:", lst->what != NULL ? lst->what : "", text);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	lst->nodelay = session_nodelay(fd);
	/*
	 * The first socket binds without SO_REUSEPORT, so a port another
	 * process holds (with SO_REUSEPORT or not) is "address in use", not
	 * silently shared; the option, set before listen(), then lets the
	 * other workers' sockets join it.
	 */
	if (join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		log_fatal(EXIT_FAILURE, "SO_REUSEPORT on %s:", text);
	/* A v6 listener serves v6 only; 127.0.0.1 is its own -l. */
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		log_fatal(EXIT_FAILURE, "IPV6_V6ONLY on %s:", text);
	if (bind(fd, (const struct sockaddr *)ss, len) == -1) {
		if (errno == EADDRINUSE && may_be_taken) {
			close(fd);
			return -EADDRINUSE;
		}
		log_fatal(EXIT_FAILURE, "%sbind %s:", lst->what != NULL ? lst->what : "", text);
	}
	if (!join && reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		log_fatal(EXIT_FAILURE, "SO_REUSEPORT on %s:", text);
	if (listen(fd, SERVER_LISTEN_BACKLOG) == -1)
		log_fatal(EXIT_FAILURE, "%slisten %s:", lst->what != NULL ? lst->what : "", text);
	len = sizeof(got);
	if (getsockname(fd, (struct sockaddr *)&got, &len) == -1 ||
	    s5_sockaddr_format((struct sockaddr *)&got, lst->name, sizeof(lst->name)) < 0)
		log_fatal(EXIT_FAILURE, "getsockname %s:", text);
	lst->fd = fd;
	return 0;
}

/* The port a listener got (port 0 asks the kernel for one). */
static uint16_t
listener_port(const struct listener *lst)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct s5_addr a;

	if (getsockname(lst->fd, (struct sockaddr *)&ss, &len) == -1 ||
	    s5_addr_from_sockaddr(&a, (struct sockaddr *)&ss, len) < 0)
		log_fatal(EXIT_FAILURE, "getsockname %s:", lst->name);
	return a.port;
}

/* lst on a, or, given port_of, on a's address and port_of's port. */
static int
listener_open_addr(struct listener *lst, const struct s5_addr *a,
    const struct listener *port_of, bool reuseport, bool may_be_taken)
{
	struct sockaddr_storage ss;
	struct s5_addr at = *a;
	char text[S5_ADDR_TEXT_MAX];
	socklen_t len;

	if (port_of != NULL)
		at.port = listener_port(port_of);
	(void)s5_addr_format(&at, text, sizeof(text));
	len = listen_resolve(&at, text, &ss);
	return listener_open(lst, &ss, len, text, false, reuseport, may_be_taken);
}

void
listener_bind(struct listener *lst, const struct config_listen *cl, size_t n,
    bool reuseport)
{
	unsigned tries;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!cl[i].twin) {
			(void)listener_open_addr(&lst[i], &cl[i].addr, NULL, reuseport, false);
			continue;
		}
		/*
		 * ":PORT"'s [::] half takes the port its 0.0.0.0 half got. For
		 * ":0" the kernel picked one that IPv4 leaves free; when IPv6
		 * holds it, both pick again.
		 */
		for (tries = 1; listener_open_addr(&lst[i], &cl[i].addr, &lst[i - 1],
		    reuseport, cl[i].addr.port == 0 && tries < SERVER_LISTEN_PAIR_TRIES) < 0;
		    tries++) {
			close(lst[i - 1].fd);
			(void)listener_open_addr(&lst[i - 1], &cl[i - 1].addr, NULL,
			    reuseport, false);
		}
	}
}

void
listener_join(struct listener *lst, const struct listener *like)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(like->fd, (struct sockaddr *)&ss, &len) == -1)
		log_fatal(EXIT_FAILURE, "getsockname %s:", like->name);
	(void)listener_open(lst, &ss, len, like->name, true, false, false);
}

/*
 * loop_new() sizes the timer heap for this many timers, so while no session
 * holds a timer, arming a listener's pause cannot fail (see listener_park).
 */
_Static_assert(SERVER_LOOP_FDS_INITIAL > SERVER_MAX_LISTENERS,
    "the first timer heap must hold every listener's pause timer");

static void listener_park(struct listener *lst);

uint32_t
listener_mask(const struct listener *lst)
{
	/* One shared socket: wake one worker per client, not all of them. */
	return lst->shared ? EPOLLIN | EPOLLEXCLUSIVE : EPOLLIN;
}

static void
listener_resume(struct loop *l, void *arg)
{
	struct listener *lst = arg;
	int r;

	if ((r = loop_set(l, lst->fd, listener_mask(lst))) < 0) {
		log_error("listener %s: cannot resume: %s", lst->name, strerror(-r));
		listener_park(lst);
	}
}

/*
 * Out of descriptors is a state, not a loop. The listener leaves the epoll
 * set first, whatever happens next: epoll is level triggered, so a listener
 * left in it with a connection waiting would wake the loop at once, forever.
 * It comes back when the pause timer fires; if that timer cannot be armed
 * (out of memory, the heap cannot grow), it comes back when a session
 * closes. One will: the heap was full, and the listeners' timers alone
 * cannot fill it (the assertion above), so sessions hold timers, and every
 * session ends. Its close also frees the descriptor and memory we lacked.
 */
static void
listener_park(struct listener *lst)
{
	struct server *srv = lst->srv;

	(void)loop_set(srv->loop, lst->fd, 0);
	if (loop_timer_start(srv->loop, &lst->pause, SERVER_ACCEPT_PAUSE_MS,
	    listener_resume, lst) == 0)
		return;
	lst->stalled = true;
	srv->lst_stalled = true;
}

void
listener_resume_stalled(struct server *srv)
{
	size_t i;

	if (!srv->lst_stalled)
		return;
	srv->lst_stalled = false;
	for (i = 0; i < srv->nlst; i++) {
		if (!srv->lst[i].stalled)
			continue;
		srv->lst[i].stalled = false;
		listener_resume(srv->loop, &srv->lst[i]);
	}
}

/*
 * Logs why a listener pauses, at most once per SERVER_ACCEPT_WARN_MS for
 * all listeners together, then parks it. unexpected: an error that is not
 * about resources (EBADF, EINVAL...), which would come back at once, so it
 * gets the same pause and is logged as an error.
 */
static void
listener_pause(struct listener *lst, int err, bool unexpected)
{
	struct server *srv = lst->srv;
	uint64_t now = loop_now(srv->loop);

	if (srv->accept_warned_ms == 0 ||
	    now - srv->accept_warned_ms >= SERVER_ACCEPT_WARN_MS) {
		srv->accept_warned_ms = now;
		if (unexpected)
			log_error("accept on %s: %s; pausing for %d ms", lst->name,
			    strerror(err), SERVER_ACCEPT_PAUSE_MS);
		else
			log_warn("accept on %s: %s; pausing for %d ms", lst->name,
			    strerror(err), SERVER_ACCEPT_PAUSE_MS);
	}
	listener_park(lst);
}

/* Sessions of every worker: the descriptor limit is the process's. */
static size_t
srv_all_sessions(const struct server *srv)
{
	long n;

	if (srv->all_sessions == NULL)
		return srv->nsessions;
	n = __atomic_load_n(srv->all_sessions, __ATOMIC_RELAXED);
	return n > (long)srv->nsessions ? (size_t)n : srv->nsessions;
}

/*
 * Descriptors are short: the listener leaves the epoll set until a session
 * closes (listener_resume_stalled), which frees two, instead of for a fixed
 * pause. With no session to wait for, it takes the timed pause.
 */
static void
listener_wait_for_close(struct listener *lst)
{
	struct server *srv = lst->srv;
	uint64_t now = loop_now(srv->loop);

	if (srv->nsessions == 0) {
		listener_pause(lst, EMFILE, false);
		return;
	}
	if (srv->accept_warned_ms == 0 ||
	    now - srv->accept_warned_ms >= SERVER_ACCEPT_WARN_MS) {
		srv->accept_warned_ms = now;
		log_warn("accept on %s: descriptors short (%zu sessions, limit %zu); "
		    "waiting for a session to close", lst->name, srv_all_sessions(srv),
		    srv->fd_limit);
	}
	(void)loop_set(srv->loop, lst->fd, 0);
	lst->stalled = true;
	srv->lst_stalled = true;
}

/* Would one more session leave fewer than --fd-reserve descriptors free?
 * Two a session, and three more a UDP association may open as it sends
 * (counted from its start: a listener waits rather than accept() failing
 * with EMFILE and the clients behind it being reset). */
static bool
srv_fds_short(const struct server *srv)
{
	long extra = srv->extra_fds != NULL ?
	    __atomic_load_n(srv->extra_fds, __ATOMIC_RELAXED) : 0;
	size_t need = srv->fd_base + 2 * (srv_all_sessions(srv) + 1) + srv->lim.fd_reserve +
	    (extra > 0 ? (size_t)extra : 0);

	return need > srv->fd_limit;
}

/*
 * A client closed at --max-sessions: counted as a session with the outcome
 * "max sessions" (metrics), and said at the default level at most once per
 * SERVER_ACCEPT_WARN_MS a worker, with how many since the last time.
 */
static void
listener_full(struct server *srv)
{
	uint64_t now = loop_now(srv->loop);

	metrics_session_end(&srv->metrics, "-", "max sessions");
	srv->full_closed++;
	if (srv->full_warned_ms != 0 && now - srv->full_warned_ms < SERVER_ACCEPT_WARN_MS)
		return;
	if (srv->full_warned_ms == 0)
		log_warn("--max-sessions %zu reached: new clients are closed", srv->lim.max_sessions);
	else
		log_warn("--max-sessions %zu reached: %llu new client%s closed since the last such line",
		    srv->lim.max_sessions, (unsigned long long)srv->full_closed,
		    srv->full_closed == 1 ? "" : "s");
	srv->full_warned_ms = now;
	srv->full_closed = 0;
}

void
listener_on_accept(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct listener *lst = arg;
	int i;

	(void)l;
	(void)events;
	/* A bounded batch, so a flood of clients cannot starve the sessions. */
	for (i = 0; i < SERVER_LOOP_EVENTS; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int cfd;

		/*
		 * A session holds two descriptors once its target is open.
		 * Admit one only when both fit beside the reserve: a session
		 * accepted now must not fail later for want of its target's
		 * socket (EMFILE, reply 01). The client waits in the backlog.
		 */
		if (srv_fds_short(lst->srv)) {
			listener_wait_for_close(lst);
			return;
		}
		cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			switch (errno) {
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listener_pause(lst, errno, false);
				return;
			/*
			 * That client only. accept(2) on Linux: pending network
			 * errors of the new connection are returned by accept()
			 * and should be treated like EAGAIN (and EPERM is a
			 * firewall's verdict on it).
			 */
			case ECONNABORTED:
			case EINTR:
			case EPROTO:
			case EPERM:
			case ENETDOWN:
			case ENETUNREACH:
			case ENONET:
			case ENOPROTOOPT:
			case EHOSTDOWN:
			case EHOSTUNREACH:
			case EOPNOTSUPP:
				continue;
			default:
				listener_pause(lst, errno, true);
				return;
			}
		}
		/* Keep a reserve so the sessions we hold can still open targets. */
		if ((size_t)cfd + lst->srv->lim.fd_reserve >= lst->srv->fd_limit) {
			close(cfd);
			listener_pause(lst, EMFILE, false);
			return;
		}
		/* --max-sessions counts every worker's. */
		if (srv_all_sessions(lst->srv) >= lst->srv->lim.max_sessions) {
			close(cfd);
			listener_full(lst->srv);
			continue;
		}
		if (!lst->nodelay)
			(void)session_nodelay(cfd);
		session_start(lst->srv, cfd, (struct sockaddr *)&ss, len);
	}
}

/* Is this listener bound to a loopback address? */
bool
listener_on_loopback(const struct listener *lst)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getsockname(lst->fd, (struct sockaddr *)&ss, &len) == 0 &&
	    rules_addr_is_loopback((struct sockaddr *)&ss);
}

