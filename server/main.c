/*
 * main.c: socksifyd start-up, listeners, signals (SIGHUP reload, SIGTERM drain).
 *
 * Order (quark's main.c): parse options (config.c), load users, bind and
 * listen on every address, then print one ready line per listener and only
 * then accept.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "config.h"
#include "defaults.h"
#include "log.h"
#include "rules.h"
#include "server.h"

enum {
	EXIT_USAGE = 2,			/* CONTRACT.md: usage errors */
};

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void
usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fatal(EXIT_USAGE, "%s (try 'socksifyd --help')", msg);
}

/* Resolves a listen address to one sockaddr; exits on failure. */
static socklen_t
listen_resolve(const char *text, struct sockaddr_storage *ss)
{
	struct s5_addr a;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *ai;
	const char *why = NULL;
	char port[sizeof("65535")];
	socklen_t len;
	int r;

	if (s5_addr_parse(text, &a, S5_DEFAULT_PORT, &why) < 0)
		usage_error("bad listen address '%s'", text);
	if (a.atyp != S5_ATYP_DOMAIN)
		return (socklen_t)s5_addr_to_sockaddr(&a, ss);
	/* A host name is resolved once, here, and its first address used. */
	snprintf(port, sizeof(port), "%u", (unsigned)a.port);
	if ((r = getaddrinfo(a.u.domain.name, port, &hints, &ai)) != 0)
		log_fatal(EXIT_FAILURE, "listen address %s: %s", text, gai_strerror(r));
	len = ai->ai_addrlen;
	memcpy(ss, ai->ai_addr, len);
	freeaddrinfo(ai);
	return len;
}

static void
listener_bind(struct listener *lst, const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len = listen_resolve(text, &ss);
	int fd, one = 1;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		log_fatal(EXIT_FAILURE, "socket for %s:", text);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A v6 listener serves v6 only; 127.0.0.1 is its own -l. */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		log_fatal(EXIT_FAILURE, "IPV6_V6ONLY on %s:", text);
	if (bind(fd, (struct sockaddr *)&ss, len) == -1)
		log_fatal(EXIT_FAILURE, "bind %s:", text);
	if (listen(fd, SERVER_LISTEN_BACKLOG) == -1)
		log_fatal(EXIT_FAILURE, "listen %s:", text);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    s5_sockaddr_format((struct sockaddr *)&ss, lst->name, sizeof(lst->name)) < 0)
		log_fatal(EXIT_FAILURE, "getsockname %s:", text);
	lst->fd = fd;
}

/*
 * loop_new() sizes the timer heap for this many timers, so while no session
 * holds a timer, arming a listener's pause cannot fail (see listener_park).
 */
_Static_assert(SERVER_LOOP_FDS_INITIAL > SERVER_MAX_LISTENERS,
    "the first timer heap must hold every listener's pause timer");

static void listener_park(struct listener *lst);

static void
listener_resume(struct loop *l, void *arg)
{
	struct listener *lst = arg;
	int r;

	if ((r = loop_set(l, lst->fd, EPOLLIN)) < 0) {
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
		    "waiting for a session to close", lst->name, srv->nsessions,
		    srv->fd_limit);
	}
	(void)loop_set(srv->loop, lst->fd, 0);
	lst->stalled = true;
	srv->lst_stalled = true;
}

/* Would one more session leave fewer than --fd-reserve descriptors free? */
static bool
srv_fds_short(const struct server *srv)
{
	size_t need = srv->fd_base + 2 * (srv->nsessions + 1) + srv->lim.fd_reserve;

	return need > srv->fd_limit;
}

static void
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
		session_start(lst->srv, cfd, (struct sockaddr *)&ss, len);
	}
}

/* The command line, kept for SIGHUP to build the configuration again. */
static struct config_args main_args;
static bool main_protect;		/* a listener is off loopback */
static struct users *main_users;	/* srv.users, owned here */

void
server_session_gone(struct server *srv)
{
	if (srv->draining && srv->nsessions == 0)
		loop_stop(srv->loop);
}

static void
server_on_drain_timer(struct loop *l, void *arg)
{
	struct server *srv = arg;

	log_warn("drain timeout: closing %zu sessions", srv->nsessions);
	loop_stop(l);
}

static void
server_close_listeners(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlst; i++) {
		loop_timer_stop(srv->loop, &srv->lst[i].pause);
		loop_del(srv->loop, srv->lst[i].fd);
		close(srv->lst[i].fd);
	}
	/* The sessions closed later must not wake the closed listeners. */
	srv->nlst = 0;
	srv->lst_stalled = false;
}

/*
 * SIGTERM, SIGINT: stop accepting at once (new clients are refused by the
 * kernel), let the sessions finish for up to --drain-timeout, then close
 * the rest. A second signal does not wait.
 */
static void
server_drain(struct server *srv)
{
	if (srv->draining) {
		loop_stop(srv->loop);
		return;
	}
	srv->draining = true;
	server_close_listeners(srv);
	if (srv->nsessions == 0) {
		loop_stop(srv->loop);
		return;
	}
	log_warn("draining %zu sessions for up to %llu ms", srv->nsessions,
	    (unsigned long long)srv->lim.drain_ms);
	if (loop_timer_start(srv->loop, &srv->drain, srv->lim.drain_ms,
	    server_on_drain_timer, srv) < 0)
		loop_stop(srv->loop);
}

/* Builds a rule set from c, with the built-in protection when it applies. */
static int
server_take_rules(struct config *c, char *why, size_t whylen)
{
	if (main_protect && rules_protect_host(c->rules) < 0) {
		snprintf(why, whylen, "bad SERVER_PROTECTED_NETS");
		return -1;
	}
	rules_set_current(c->rules);
	c->rules = NULL;
	return 0;
}

/*
 * SIGHUP: users and rules (and limits, log level) from the config file and
 * the original flags. All or nothing: on any error the old ones stay and
 * one line says why. Sessions keep running; they see the new users and
 * rules from their next check on. Listeners are not changed.
 */
static void
server_reload(struct server *srv)
{
	struct users *users = NULL;
	struct config c;
	char why[1024];
	bool loose = false;

	if (config_build(&main_args, &c, why, sizeof(why)) < 0) {
		log_error("reload failed, configuration kept: %s", why);
		return;
	}
	if ((c.users_path != NULL) != (srv->users != NULL)) {
		log_error("reload failed, configuration kept: turning authentication %s needs a restart",
		    c.users_path != NULL ? "on" : "off");
		goto out;
	}
	if (c.users_path != NULL &&
	    users_load(c.users_path, &users, &loose, why, sizeof(why)) < 0) {
		log_error("reload failed, configuration kept: users file %s", why);
		goto out;
	}
	if (main_protect && rules_protect_host(c.rules) < 0) {
		log_error("reload failed, configuration kept: bad SERVER_PROTECTED_NETS");
		users_free(users);
		goto out;
	}
	if (loose)
		log_warn("warning: users file %s is readable by its group",
		    c.users_path);
	if (users != NULL) {
		users_free(main_users);
		srv->users = main_users = users;
	}
	rules_set_current(c.rules);
	c.rules = NULL;
	srv->lim = c.lim;
	log_set_level(c.log_level >= 0 ? (enum log_level)c.log_level : LOG_LEVEL_INFO);
	log_warn("reloaded users and rules");
out:
	config_free(&c);
}

static void
signal_on_read(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct server *srv = arg;
	struct signalfd_siginfo si;

	(void)l;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			server_reload(srv);
		else
			server_drain(srv);
	}
}

/*
 * Off loopback the host's own addresses are protected (rules.c), and they
 * change under us: DHCP, IPv6 temporary addresses, an interface coming up.
 * The kernel announces each change on a netlink group; a burst of them is
 * taken as one, SERVER_HOST_REFRESH_MS later, when the addresses are read
 * again.
 */
static struct loop_timer host_refresh_timer;

static void
host_refresh(struct loop *l, void *arg)
{
	int n;

	(void)l;
	(void)arg;
	if ((n = rules_refresh_host()) < 0)
		log_error("cannot re-read the host's addresses; the old ones stay protected");
	else if (log_get_level() >= LOG_LEVEL_VERBOSE)
		log_warn("host addresses changed: %d protected", n);
}

static void
host_on_netlink(struct loop *l, int fd, uint32_t events, void *arg)
{
	char buf[SERVER_NETLINK_BUF_BYTES];
	int i;

	(void)events;
	/* Bounded: the loop comes back for more. ENOBUFS (we fell behind) is
	 * a change we did not see, and a refresh like any other. */
	for (i = 0; i < SERVER_LOOP_EVENTS; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno != ENOBUFS)
			break;
	if (host_refresh_timer.slot == 0 &&
	    loop_timer_start(l, &host_refresh_timer, SERVER_HOST_REFRESH_MS,
	    host_refresh, arg) < 0)
		host_refresh(l, arg);
}

/* -1, or a netlink socket hearing of address changes, in the loop. */
static int
host_watch(struct loop *l)
{
	struct sockaddr_nl nl = {
		.nl_family = AF_NETLINK,
		.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
	};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    NETLINK_ROUTE);

	if (fd < 0 || bind(fd, (struct sockaddr *)&nl, sizeof(nl)) < 0 ||
	    loop_add(l, fd, EPOLLIN, host_on_netlink, NULL) < 0) {
		log_warn("warning: cannot watch the host's addresses (%s); "
		    "send SIGHUP after renumbering", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Is this listener bound to a loopback address? */
static bool
listener_on_loopback(const struct listener *lst)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getsockname(lst->fd, (struct sockaddr *)&ss, &len) == 0 &&
	    rules_addr_is_loopback((struct sockaddr *)&ss);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct server srv;
	struct rlimit rl;
	sigset_t sigs;
	char why[1024];
	size_t i;
	int sigfd, nlfd = -1, r;

	switch (config_parse_args(argc, argv, &main_args, why, sizeof(why))) {
	case CONFIG_RUN:
		break;
	case CONFIG_HELP:
		config_usage(stdout);
		return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	case CONFIG_VERSION:
		puts("socksifyd " SOCKSIFY_VERSION);
		return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	default:
		usage_error("%s", why);
	}
	/* Errors in the options, a config file included, are usage errors. */
	if (config_build(&main_args, &cfg, why, sizeof(why)) < 0)
		log_fatal(EXIT_USAGE, "%s", why);
	if (cfg.log_level >= 0)
		log_set_level((enum log_level)cfg.log_level);
	if (cfg.nlisten == 0 && (cfg.listen[cfg.nlisten] = strdup(SERVER_DEFAULT_LISTEN)) != NULL)
		cfg.nlisten++;
	if (cfg.nlisten == 0)
		log_fatal(EXIT_FAILURE, "out of memory");

	if (cfg.users_path != NULL) {
		bool loose = false;

		if (users_load(cfg.users_path, &main_users, &loose, why, sizeof(why)) < 0)
			log_fatal(EXIT_FAILURE, "users file %s", why);
		if (loose)
			log_warn("warning: users file %s is readable by its group",
			    cfg.users_path);
	}

	memset(&srv, 0, sizeof(srv));
	srv.users = main_users;
	srv.lim = cfg.lim;
	srv.fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
	    (size_t)rl.rlim_cur : (size_t)-1 / 2;
	for (i = 0; i < cfg.nlisten; i++) {
		srv.lst[i].srv = &srv;
		listener_bind(&srv.lst[i], cfg.listen[i]);
	}
	srv.nlst = cfg.nlisten;
	/* CONTRACT.md: no open relay. Off loopback, strangers can connect. */
	for (i = 0; i < srv.nlst; i++) {
		if (listener_on_loopback(&srv.lst[i]))
			continue;
		main_protect = true;
		if (main_users == NULL && !cfg.no_auth)
			log_fatal(EXIT_USAGE, "refusing to listen on %s without --users "
			    "(an open relay); give --no-auth to run it anyway",
			    srv.lst[i].name);
	}
	if (server_take_rules(&cfg, why, sizeof(why)) < 0)
		log_fatal(EXIT_FAILURE, "%s", why);
	config_free(&cfg);

	/* Signals arrive as events; the resolver threads inherit the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) == -1 ||
	    (sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		log_fatal(EXIT_FAILURE, "signalfd:");
	/* An ignored signal is never queued, not even for a signalfd: undo
	 * nohup's SIG_IGN for SIGHUP (blocked, the default action cannot run). */
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if ((r = loop_new(&srv.loop)) < 0 ||
	    (r = loop_add(srv.loop, sigfd, EPOLLIN, signal_on_read, &srv)) < 0)
		log_fatal(EXIT_FAILURE, "event loop: %s", strerror(-r));
	if ((r = resolver_new(&srv.resolver, srv.loop, SERVER_RESOLVER_THREADS)) < 0)
		log_fatal(EXIT_FAILURE, "resolver threads: %s", strerror(-r));
	for (i = 0; i < srv.nlst; i++)
		if ((r = loop_add(srv.loop, srv.lst[i].fd, EPOLLIN, listener_on_accept,
		    &srv.lst[i])) < 0)
			log_fatal(EXIT_FAILURE, "event loop: %s", strerror(-r));
	if (main_protect)
		nlfd = host_watch(srv.loop);

	/* The readiness protocol: printed even with -q, one write() each. */
	for (i = 0; i < srv.nlst; i++) {
		char line[sizeof("socksifyd: listening on \n") + S5_ADDR_TEXT_MAX];
		int n = snprintf(line, sizeof(line), "socksifyd: listening on %s\n",
		    srv.lst[i].name);

		log_write_line(line, (size_t)n);
	}

	/* What the server holds before any session: the lowest free descriptor. */
	if ((r = fcntl(sigfd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		srv.fd_base = (size_t)r;
		close(r);
	} else {
		srv.fd_base = srv.fd_limit;
	}
	if ((r = loop_run(srv.loop)) < 0)
		log_error("epoll_wait: %s", strerror(-r));

	server_close_listeners(&srv);
	loop_timer_stop(srv.loop, &srv.drain);
	srv.draining = false;
	session_close_all(&srv);
	resolver_free(srv.resolver);
	loop_timer_stop(srv.loop, &host_refresh_timer);
	if (nlfd >= 0) {
		loop_del(srv.loop, nlfd);
		close(nlfd);
	}
	loop_del(srv.loop, sigfd);
	close(sigfd);
	loop_free(srv.loop);
	rules_set_current(NULL);
	users_free(main_users);
	config_args_free(&main_args);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
