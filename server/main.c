/*
 * main.c: socksifyd start-up, the workers, signals (SIGHUP reload, SIGTERM
 * drain).
 *
 * Order (quark's main.c): parse options (config.c), load users, bind and
 * listen on every address for every worker, then print one ready line per
 * listener and only then accept.
 *
 * Each worker is a thread with its own event loop, resolver, listeners and
 * sessions (struct server); they share nothing they write but a session
 * count. The main thread keeps a small loop of its own for signals and
 * address changes. A new configuration (users, rules, limits) is built here
 * whole, published as one pointer and taken by each worker between two
 * events; the old one is freed once no worker uses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "config.h"
#include "defaults.h"
#include "listener.h"
#include "sd.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "rules.h"
#include "server.h"
#include "udp.h"

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
	log_fatal(SERVER_EXIT_USAGE, "%s (try 'socksifyd --help')", msg);
}

/* What every worker reads: built whole, published, never changed. */
struct conf {
	struct users *users;		/* NULL: no authentication */
	bool owns_users;		/* freed with this conf */
	struct rules *rules;
	struct server_limits lim;
};

/* News for a worker (srv->ctl_flags), with a write to its eventfd. */
enum {
	WORKER_CONF = 1,		/* take conf_cur */
	WORKER_DRAIN = 2,		/* SIGTERM */
	WORKER_STOP = 4,		/* a second SIGTERM */
};

/* The command line, kept for SIGHUP to build the configuration again. */
static struct config_args main_args;
/* The start's configuration, for what a reload cannot change (its pointers
 * and rules are not kept: main_start_only() reads the rest). */
static struct config main_start;
static bool main_protect;		/* a listener is off loopback */
static struct server *workers;
static unsigned nworkers;
static unsigned workers_running;	/* atomic */
static long all_sessions;		/* atomic: every worker's sessions */
static long extra_fds;			/* atomic: their descriptors beyond two each */
static long drain_cut;			/* atomic: sessions the drain timeout closed */
static int main_ctl = -1;		/* eventfd: a worker took a conf or ended */
static struct loop *main_loop;
static struct conf *conf_cur;		/* atomic pointer: the newest */
static struct conf *retired[SERVER_CONF_RETIRED_MAX];
static size_t nretired;
static int shared_fds[SERVER_MAX_LISTENERS];	/* --accept shared: closed last */
static size_t nshared;

static void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	if (c->owns_users)
		users_free(c->users);
	rules_free(c->rules);
	free(c);
}

static void
ctl_post(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_error("eventfd:");
}

static void
worker_post(struct server *w, unsigned what)
{
	__atomic_fetch_or(&w->ctl_flags, what, __ATOMIC_ACQ_REL);
	ctl_post(w->ctl);
}

/* Frees the retired configurations, once every worker uses the newest. */
static void
conf_reap(void)
{
	const struct conf *cur = __atomic_load_n(&conf_cur, __ATOMIC_ACQUIRE);
	unsigned i;

	for (i = 0; i < nworkers; i++)
		if (__atomic_load_n(&workers[i].conf, __ATOMIC_ACQUIRE) != cur &&
		    __atomic_load_n(&workers[i].loop, __ATOMIC_RELAXED) != NULL)
			return;
	while (nretired > 0)
		conf_free(retired[--nretired]);
}

/* Makes c the configuration; 0, or -1 when too many are still in use. */
static int
conf_publish(struct conf *c)
{
	struct conf *old = conf_cur;
	unsigned i;

	if (old != NULL) {
		conf_reap();
		if (nretired == SERVER_CONF_RETIRED_MAX)
			return -1;
		retired[nretired++] = old;
	}
	__atomic_store_n(&conf_cur, c, __ATOMIC_RELEASE);
	for (i = 0; i < nworkers; i++)
		worker_post(&workers[i], WORKER_CONF);
	return 0;
}

/* --- a worker ----------------------------------------------------------- */

/* On the worker's thread: the newest configuration from now on. */
static void
worker_take_conf(struct server *srv)
{
	const struct conf *c = __atomic_load_n(&conf_cur, __ATOMIC_ACQUIRE);

	srv->users = c->users;
	srv->lim = c->lim;
	rules_use(c->rules);
	__atomic_store_n(&srv->conf, c, __ATOMIC_RELEASE);
	/* The pipe budget may have shrunk (main_pipes_max): kept pipes go. */
	relay_cache_close();
	ctl_post(main_ctl);
}

void
server_session_born(struct server *srv)
{
	(void)srv;
	__atomic_add_fetch(&all_sessions, 1, __ATOMIC_RELAXED);
}

void
server_fds_extra(struct server *srv, long n)
{
	if (srv->extra_fds != NULL)
		__atomic_add_fetch(srv->extra_fds, n, __ATOMIC_RELAXED);
}

void
server_session_gone(struct server *srv)
{
	__atomic_sub_fetch(&all_sessions, 1, __ATOMIC_RELAXED);
	server_orphan_gone(srv);
}

/* A drain waits for the datagrams a client left behind too, their names
 * still being looked up (the embedded server is told to stop the moment
 * `echo hi | ncat -u name port` exits), within --drain-timeout. */
void
server_orphan_gone(struct server *srv)
{
	if (srv->draining && srv->nsessions == 0 && srv->udp_orphans == NULL)
		loop_stop(srv->loop);
}

static void
server_on_drain_timer(struct loop *l, void *arg)
{
	struct server *srv = arg;

	/* One line for every worker's, when the last one is out (main()). */
	__atomic_add_fetch(&drain_cut, (long)srv->nsessions, __ATOMIC_RELAXED);
	loop_stop(l);
}

static void
server_close_listeners(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlst; i++) {
		loop_timer_stop(srv->loop, &srv->lst[i].pause);
		if (srv->lst[i].shared) {
			/* Other workers still use it; main() closes it last. */
			(void)loop_set(srv->loop, srv->lst[i].fd, 0);
			loop_del(srv->loop, srv->lst[i].fd);
			continue;
		}
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
	if (srv->nsessions == 0 && srv->udp_orphans == NULL) {
		loop_stop(srv->loop);
		return;
	}
	if (loop_timer_start(srv->loop, &srv->drain, srv->lim.drain_ms,
	    server_on_drain_timer, srv) < 0)
		loop_stop(srv->loop);
}

static void
worker_on_ctl(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct server *srv = arg;
	uint64_t n;
	unsigned what;

	(void)events;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		return;
	what = __atomic_exchange_n(&srv->ctl_flags, 0, __ATOMIC_ACQ_REL);
	if (what & WORKER_CONF)
		worker_take_conf(srv);
	if (what & WORKER_STOP)
		loop_stop(l);
	else if (what & WORKER_DRAIN)
		server_drain(srv);
}

static void *
worker_main(void *arg)
{
	struct server *srv = arg;
	int r;

	worker_take_conf(srv);
	if ((r = loop_run(srv->loop)) < 0)
		log_error("epoll_wait: %s", strerror(-r));
	server_close_listeners(srv);
	loop_timer_stop(srv->loop, &srv->drain);
	srv->draining = false;
	session_close_all(srv);
	udp_orphans_free(srv);		/* before the resolver goes */
	__atomic_sub_fetch(&workers_running, 1, __ATOMIC_ACQ_REL);
	ctl_post(main_ctl);
	return NULL;
}

/* Everything a worker needs before its thread starts. */
static void
worker_setup(struct server *srv, unsigned id, size_t fd_limit)
{
	int r;

	srv->id = id;
	srv->fd_limit = fd_limit;
	srv->all_sessions = &all_sessions;
	srv->extra_fds = &extra_fds;
	srv->lim = conf_cur->lim;
	if ((r = loop_new(&srv->loop)) < 0)
		log_fatal(EXIT_FAILURE, "event loop: %s", strerror(-r));
	if ((r = resolver_new(&srv->resolver, srv->loop, SERVER_RESOLVER_THREADS)) < 0)
		log_fatal(EXIT_FAILURE, "resolver threads: %s", strerror(-r));
	if ((srv->ctl = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (r = loop_add(srv->loop, srv->ctl, EPOLLIN, worker_on_ctl, srv)) < 0)
		log_fatal(EXIT_FAILURE, "worker %u: eventfd:", id);
}

static void
worker_free(struct server *srv)
{
	resolver_free(srv->resolver);
	loop_del(srv->loop, srv->ctl);
	close(srv->ctl);
	loop_free(srv->loop);
	udp_server_free(srv);
	__atomic_store_n(&srv->loop, NULL, __ATOMIC_RELAXED);
}

/* --- the main thread ---------------------------------------------------- */

/*
 * --relay splice: the kernel pipes may use only the descriptors that
 * --max-sessions sessions (two each) and the reserve can never need.
 */
static long
main_pipes_max(const struct server_limits *lim)
{
	long spare = (long)workers[0].fd_limit - (long)workers[0].fd_base -
	    (long)lim->fd_reserve - 2 * (long)lim->max_sessions;
	long pipes = lim->splice && spare > 1 ? spare / 2 : 0;

	relay_set_pipes_max(pipes);
	return pipes;
}

/* Asked to splice and left nothing to do it with: said at start, and at
 * a reload that takes the last pipe away (once it is taken). */
static void
main_pipes_say(const struct server_limits *lim, long pipes)
{
	static long last = -1;

	if (lim->splice && pipes == 0 && last != 0)
		log_warn("the descriptor limit (%zu, ulimit -n) leaves none for pipes "
		    "beside what socksifyd holds, --max-sessions %zu and --fd-reserve %zu: "
		    "--relay %s relays by copy", workers[0].fd_limit, lim->max_sessions,
		    lim->fd_reserve, lim->splice_bulk ? "auto" : "splice");
	last = pipes;
}

/* The lowest free descriptor: roughly what the server holds (none free:
 * if_none). */
static size_t
main_fds_open(int any_fd, size_t if_none)
{
	int fd = fcntl(any_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return if_none;
	close(fd);
	return (size_t)fd;
}

static size_t main_nofile_hard;	/* the hard limit, (size_t)-1 / 2 for none */

/*
 * The descriptor limit sessions may use: a session holds two, so the soft
 * limit is raised toward what --max-sessions, the reserve, the workers'
 * own descriptors and (splice) pipes need, never past the hard limit, as
 * HAProxy does for its maxconn; a shell's 1024 would otherwise hold some
 * 500 sessions of the 8000 asked for.
 */
static size_t
main_fd_limit(const struct server_limits *lim, int any_fd)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)(main_fds_open(any_fd, 0) + lim->fd_reserve +
	    2 * lim->max_sessions + (size_t)nworkers * SERVER_WORKER_FDS + SERVER_FD_SLACK +
	    (lim->splice ? 2 * SERVER_SPLICE_PIPES_ROOM : 0));

	main_nofile_hard = (size_t)-1 / 2;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return (size_t)-1 / 2;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = rl;

		up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_max != RLIM_INFINITY)
		main_nofile_hard = (size_t)rl.rlim_max;
	return rl.rlim_cur == RLIM_INFINITY ? (size_t)-1 / 2 : (size_t)rl.rlim_cur;
}

/*
 * A limit that holds no session is a server that listens and never
 * accepts: refused at start (and a reload that would make it one, in
 * server_reload()). One that holds fewer than --max-sessions (at start, or
 * after a reload raised it) is said once; clients beyond wait in the
 * listen backlog.
 */
static size_t
main_fd_room(const struct server_limits *lim, size_t fd_limit, size_t fd_base)
{
	return fd_limit > fd_base + lim->fd_reserve ?
	    (fd_limit - fd_base - lim->fd_reserve) / 2 : 0;
}

static void
main_fd_check(const struct server_limits *lim, size_t fd_limit, size_t fd_base)
{
	size_t room = main_fd_room(lim, fd_limit, fd_base);

	if (room == 0)
		log_fatal(EXIT_FAILURE, "the descriptor limit (%zu, ulimit -n) holds no "
		    "session: %zu are open and --fd-reserve keeps %zu; it needs at least %zu",
		    fd_limit, fd_base, lim->fd_reserve, fd_base + lim->fd_reserve + 2);
	if (room < lim->max_sessions)
		log_warn("the descriptor limit (%zu, ulimit -n%s) holds %zu sessions at once, "
		    "fewer than --max-sessions %zu; more clients wait to be accepted", fd_limit,
		    fd_limit >= main_nofile_hard ? ", at its hard limit" : "", room,
		    lim->max_sessions);
}

/* Builds a rule set from c, with the built-in protection when it applies. */
static int
main_protect_rules(struct rules *r)
{
	return main_protect ? rules_protect_host(r) : 0;
}

/*
 * SIGHUP: users and rules (and limits, log level) from the config file and
 * the original flags. All or nothing: on any error the old ones stay and
 * one line says why. Sessions keep running; they see the new users and
 * rules from their next check on. Listeners and workers are not changed.
 */
/* Adds name to the list in buf when changed (a start-up choice). */
static void
main_start_note(char *buf, size_t cap, bool changed, const char *name)
{
	size_t len = strlen(buf);

	if (changed)
		snprintf(buf + len, cap - len, "%s%s", len > 0 ? ", " : "", name);
}

/* The options of c a reload leaves as they were at start, into buf
 * ("" when none changed). */
static void
main_start_only(const struct config *c, char *buf, size_t cap)
{
	const struct config *s = &main_start;
	bool listen = c->nlisten != s->nlisten;
	size_t i;

	for (i = 0; !listen && i < c->nlisten; i++)
		listen = !s5_addr_equal(&c->listen[i].addr, &s->listen[i].addr) ||
		    c->listen[i].twin != s->listen[i].twin;
	buf[0] = '\0';
	main_start_note(buf, cap, listen, "listen");
	main_start_note(buf, cap, c->workers != s->workers, "workers");
	main_start_note(buf, cap, c->accept_shared != s->accept_shared, "accept");
	main_start_note(buf, cap, c->lim.splice != s->lim.splice ||
	    c->lim.splice_bulk != s->lim.splice_bulk, "relay");
	main_start_note(buf, cap, c->has_metrics != s->has_metrics || (c->has_metrics &&
	    !s5_addr_equal(&c->metrics.addr, &s->metrics.addr)), "metrics");
	main_start_note(buf, cap, c->syslog != s->syslog || (c->log_path == NULL) !=
	    (s->log_path == NULL) || (c->log_path != NULL &&
	    strcmp(c->log_path, s->log_path) != 0), "log");
}

static int
server_reload(void)
{
	struct users *users = NULL;
	struct conf *n = NULL;
	struct config c;
	char why[1024], kept[128];
	size_t old_max, old_reserve;
	long pipes;
	bool loose = false;
	int ok = -1;

	/* First, so that what follows is in the new file. The sink itself is
	 * a start-up choice: a --log or --syslog changed since is ignored. */
	if ((ok = log_reopen()) < 0)
		log_error("log: cannot reopen %s: %s; still writing to the old one",
		    log_file_path() != NULL ? log_file_path() : "/dev/log", strerror(-ok));
	ok = -1;
	if (config_build(&main_args, &c, why, sizeof(why)) < 0) {
		log_error("reload failed, configuration kept: %s", why);
		return -1;
	}
	if (c.lim.proxy_protocol != conf_cur->lim.proxy_protocol) {
		log_error("reload failed, configuration kept: turning --proxy-protocol %s "
		    "needs a restart", c.lim.proxy_protocol ? "on" : "off");
		goto out;
	}
	if ((c.users_path != NULL) != (conf_cur->users != NULL)) {
		log_error("reload failed, configuration kept: turning authentication %s needs a restart",
		    c.users_path != NULL ? "on" : "off");
		goto out;
	}
	if (c.users_path != NULL &&
	    users_load(c.users_path, &users, &loose, why, sizeof(why)) < 0) {
		log_error("reload failed, configuration kept: users file %s", why);
		goto out;
	}
	if (outgoing_check(&c.lim.out, why, sizeof(why)) < 0) {
		log_error("reload failed, configuration kept: %s", why);
		users_free(users);
		goto out;
	}
	if (main_fd_room(&c.lim, workers[0].fd_limit, workers[0].fd_base) == 0) {
		log_error("reload failed, configuration kept: --fd-reserve %zu leaves the "
		    "descriptor limit (%zu) no session", c.lim.fd_reserve, workers[0].fd_limit);
		users_free(users);
		goto out;
	}
	if (main_protect_rules(c.rules) < 0 || (n = calloc(1, sizeof(*n))) == NULL) {
		log_error("reload failed, configuration kept: %s", n == NULL ?
		    "out of memory" : "bad SERVER_PROTECTED_NETS");
		users_free(users);
		goto out;
	}
	n->users = users;
	n->owns_users = users != NULL;
	n->rules = c.rules;
	n->lim = c.lim;
	n->lim.splice = conf_cur->lim.splice;	/* a start-up choice */
	n->lim.splice_bulk = conf_cur->lim.splice_bulk;
	c.rules = NULL;
	old_max = conf_cur->lim.max_sessions;
	old_reserve = conf_cur->lim.fd_reserve;
	/* The pipe budget first: a worker taking the configuration closes
	 * the pipes it keeps and keeps no more than the new one allows. */
	pipes = main_pipes_max(&n->lim);
	if (conf_publish(n) < 0) {
		log_error("reload failed, configuration kept: the workers are still taking the last one");
		(void)main_pipes_max(&conf_cur->lim);
		conf_free(n);
		goto out;
	}
	main_pipes_say(&n->lim, pipes);
	/* The limit is raised at start only: a --max-sessions or reserve
	 * that no longer fits is said. */
	if (n->lim.max_sessions != old_max || n->lim.fd_reserve != old_reserve)
		main_fd_check(&n->lim, workers[0].fd_limit, workers[0].fd_base);
	if (loose)
		log_warn("warning: users file %s is readable by its group",
		    c.users_path);
	log_set_level(c.log_level >= 0 ? (enum log_level)c.log_level : LOG_LEVEL_INFO);
	log_warn("reloaded users and rules");
	main_start_only(&c, kept, sizeof(kept));
	if (kept[0] != '\0')
		log_warn("warning: changed since start, kept until a restart: %s", kept);
	ok = 0;
out:
	config_free(&c);
	return ok;
}

/* SIGTERM, SIGINT: every worker drains; a second one stops them at once. */
static bool main_draining;

static void
main_drain(void)
{
	unsigned i;
	long n = __atomic_load_n(&all_sessions, __ATOMIC_RELAXED);

	if (!main_draining) {
		log_warn("draining %ld sessions for up to %llu ms", n,
		    (unsigned long long)conf_cur->lim.drain_ms);
		sd_notify("STOPPING=1\nSTATUS=draining %ld sessions", n);
	} else {
		log_warn("second signal: closing every session now");
	}
	for (i = 0; i < nworkers; i++)
		worker_post(&workers[i], main_draining ? WORKER_STOP : WORKER_DRAIN);
	main_draining = true;
}

static void
signal_on_read(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	(void)l;
	(void)events;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP && main_draining) {
			(void)server_reload();	/* stopping: the manager hears no READY */
		} else if (si.ssi_signo == SIGHUP) {
			/* Type=notify-reload: the clock with RELOADING=1, and
			 * READY=1 after, whether the reload took or not. */
			sd_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
			    (unsigned long long)sd_monotonic_usec());
			sd_notify("READY=1\nSTATUS=%s; serving %ld sessions",
			    server_reload() == 0 ? "reloaded" : "reload failed, configuration kept",
			    __atomic_load_n(&all_sessions, __ATOMIC_RELAXED));
		} else
			main_drain();
	}
}

/* A worker took a configuration or ended. */
static void
main_on_ctl(struct loop *l, int fd, uint32_t events, void *arg)
{
	uint64_t n;

	(void)events;
	(void)arg;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		return;
	conf_reap();
	if (__atomic_load_n(&workers_running, __ATOMIC_ACQUIRE) == 0)
		loop_stop(l);
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
	struct conf *n;
	int count = -1;

	(void)l;
	(void)arg;
	if ((n = malloc(sizeof(*n))) != NULL) {
		*n = *conf_cur;
		if ((n->rules = rules_clone(conf_cur->rules)) == NULL ||
		    (count = rules_refresh_host(n->rules)) < 0) {
			rules_free(n->rules);
			free(n);
			n = NULL;
		}
	}
	if (n == NULL) {
		log_error("cannot re-read the host's addresses; the old ones stay protected");
		return;
	}
	/* The users go on, owned by the newest configuration. */
	conf_cur->owns_users = false;
	if (conf_publish(n) < 0) {
		conf_cur->owns_users = n->owns_users;
		n->owns_users = false;
		conf_free(n);
		/* Try again once the workers have caught up. */
		(void)loop_timer_start(l, &host_refresh_timer, SERVER_HOST_REFRESH_MS,
		    host_refresh, arg);
		return;
	}
	if (log_get_level() >= LOG_LEVEL_VERBOSE)
		log_warn("host addresses changed: %d protected", count);
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

/* --workers: given, or one per CPU this process may run on. */
static unsigned
main_workers(unsigned asked)
{
	cpu_set_t cpus;
	int n;

	if (asked > 0)
		return asked;
	n = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	return n < 1 ? 1 : n > SERVER_WORKERS_MAX ? SERVER_WORKERS_MAX : (unsigned)n;
}

/*
 * systemd's watchdog and status (sd.c): WATCHDOG=1 every WATCHDOG_USEC / 2
 * when it asks for one, and the session count in STATUS= with each ping,
 * or every SERVER_SD_STATUS_MS without a watchdog. The main loop sends
 * them: a main thread that stops turning stops the pings.
 */
static struct loop_timer sd_timer;
static uint64_t sd_period_ms;
static bool sd_watchdog;

static void
sd_on_timer(struct loop *l, void *arg)
{
	long n = __atomic_load_n(&all_sessions, __ATOMIC_RELAXED);

	sd_notify("%sSTATUS=%s %ld sessions", sd_watchdog ? "WATCHDOG=1\n" : "",
	    main_draining ? "draining" : "serving", n);
	/* Only a full timer heap can refuse; the pings would stop for good. */
	if (loop_timer_start(l, &sd_timer, sd_period_ms, sd_on_timer, arg) < 0)
		log_error("NOTIFY_SOCKET: out of memory; no more watchdog pings");
}

static void
sd_start(struct loop *l)
{
	uint64_t wd = sd_watchdog_usec();

	if (!sd_notifying())
		return;
	sd_watchdog = wd > 0;
	sd_period_ms = sd_watchdog ? wd / 2000 : SERVER_SD_STATUS_MS;
	if (sd_period_ms == 0)
		sd_period_ms = 1;
	if (loop_timer_start(l, &sd_timer, sd_period_ms, sd_on_timer, NULL) < 0)
		log_error("NOTIFY_SOCKET: no timer for the watchdog");
}

/* Listener i of the first worker, bound, given to every worker: the same
 * socket (shared), or each its own joined with SO_REUSEPORT. */
static void
main_spread(size_t i, bool shared)
{
	struct listener *first = &workers[0].lst[i];
	unsigned k;

	first->srv = &workers[0];
	first->shared = shared;
	if (shared)
		shared_fds[nshared++] = first->fd;
	for (k = 1; k < nworkers; k++) {
		struct listener *lst = &workers[k].lst[i];

		if (shared)
			*lst = *first;
		else
			listener_join(lst, first);
		lst->srv = &workers[k];
	}
}

/* Socket activation: the passed sockets are the listeners, each one shared
 * by every worker (the manager bound them: no SO_REUSEPORT twin can join). */
static void
main_adopt(const int *fds, size_t n)
{
	size_t i;
	unsigned k;

	for (i = 0; i < n; i++) {
		struct listener *first = &workers[0].lst[i];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		first->fd = fds[i];
		first->nodelay = session_nodelay(fds[i]);
		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) == -1 ||
		    s5_sockaddr_format((struct sockaddr *)&ss, first->name, sizeof(first->name)) < 0)
			snprintf(first->name, sizeof(first->name), "descriptor %d", fds[i]);
		main_spread(i, nworkers > 1);
	}
	for (k = 0; k < nworkers; k++)
		workers[k].nlst = n;
}

/* Every worker's listeners: sockets of their own on one port, or one each
 * address shared by all. */
static void
main_listen(const struct config *cfg)
{
	bool shared = cfg->accept_shared && nworkers > 1;
	size_t i;
	unsigned k;

	listener_bind(workers[0].lst, cfg->listen, cfg->nlisten, nworkers > 1 && !shared);
	for (i = 0; i < cfg->nlisten; i++)
		main_spread(i, shared);
	for (k = 0; k < nworkers; k++)
		workers[k].nlst = cfg->nlisten;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct users *users = NULL;
	sigset_t sigs;
	char why[1024];
	struct config_listen metrics_at;
	bool has_metrics, no_auth;
	size_t i, fd_limit, fd_base;
	unsigned k;
	int sigfd, nlfd = -1, r, act_fds[SERVER_MAX_LISTENERS], nact;

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
		log_fatal(SERVER_EXIT_USAGE, "%s", why);
	main_start = cfg;
	main_start.rules = NULL;
	main_start.users_path = NULL;
	main_start.log_path = NULL;
	if (cfg.log_path != NULL && (main_start.log_path = strdup(cfg.log_path)) == NULL)
		log_fatal(EXIT_FAILURE, "out of memory");
	if (cfg.log_level >= 0)
		log_set_level((enum log_level)cfg.log_level);
	if (cfg.log_path != NULL) {
		bool loose = false;

		if ((r = log_open_file(cfg.log_path, &loose)) < 0)
			log_fatal(EXIT_FAILURE, "--log %s: %s", cfg.log_path, strerror(-r));
		if (loose)
			log_warn("warning: log file %s may be read by others (it names "
			    "users and clients): chmod 600 it", cfg.log_path);
	}
	if (cfg.syslog && (r = log_open_syslog()) < 0)
		log_fatal(EXIT_FAILURE, "--syslog: /dev/log: %s", strerror(-r));

	if (outgoing_check(&cfg.lim.out, why, sizeof(why)) < 0)
		log_fatal(EXIT_FAILURE, "%s", why);
	if (cfg.users_path != NULL) {
		bool loose = false;

		if (users_load(cfg.users_path, &users, &loose, why, sizeof(why)) < 0)
			log_fatal(EXIT_FAILURE, "users file %s", why);
		if (loose)
			log_warn("warning: users file %s is readable by its group",
			    cfg.users_path);
	}

	nworkers = main_workers(cfg.workers);
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL)
		log_fatal(EXIT_FAILURE, "out of memory");
	if ((nact = sd_listen(act_fds, SERVER_MAX_LISTENERS, why, sizeof(why))) < 0)
		log_fatal(EXIT_FAILURE, "%s", why);
	if (nact > 0) {
		if (cfg.listen_given)
			log_warn("--listen ignored: serving the %d socket%s the service manager passed",
			    nact, nact == 1 ? "" : "s");
		main_adopt(act_fds, (size_t)nact);
	} else {
		main_listen(&cfg);
	}
	if (sd_notify_open(why, sizeof(why)) < 0)
		log_warn("%s; no readiness notification", why);
	/* CONTRACT.md: no open relay. Off loopback, strangers can connect;
	 * behind a balancer they do whatever address it reaches us on. */
	if (cfg.lim.proxy_protocol) {
		main_protect = true;
		if (users == NULL && !cfg.no_auth)
			log_fatal(SERVER_EXIT_USAGE, "refusing --proxy-protocol without --users "
			    "(a balancer's clients come from anywhere: an open relay); give "
			    "--no-auth to run it anyway");
	}
	for (i = 0; i < workers[0].nlst; i++) {
		if (listener_on_loopback(&workers[0].lst[i]))
			continue;
		main_protect = true;
		if (users == NULL && !cfg.no_auth)
			log_fatal(SERVER_EXIT_USAGE, "refusing to listen on %s without --users "
			    "(an open relay); give --no-auth to run it anyway",
			    workers[0].lst[i].name);
	}
	if ((conf_cur = calloc(1, sizeof(*conf_cur))) == NULL)
		log_fatal(EXIT_FAILURE, "out of memory");
	has_metrics = cfg.has_metrics;
	metrics_at = cfg.metrics;
	no_auth = cfg.no_auth;
	if (main_protect_rules(cfg.rules) < 0)
		log_fatal(EXIT_FAILURE, "bad SERVER_PROTECTED_NETS");
	conf_cur->users = users;
	conf_cur->owns_users = true;
	conf_cur->rules = cfg.rules;
	conf_cur->lim = cfg.lim;
	cfg.rules = NULL;
	config_free(&cfg);

	/* Signals arrive as events on this thread; every thread started from
	 * here on (workers, resolvers) inherits the mask. */
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
	if ((r = loop_new(&main_loop)) < 0 ||
	    (r = loop_add(main_loop, sigfd, EPOLLIN, signal_on_read, NULL)) < 0 ||
	    (main_ctl = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (r = loop_add(main_loop, main_ctl, EPOLLIN, main_on_ctl, NULL)) < 0)
		log_fatal(EXIT_FAILURE, "event loop: %s", strerror(r < 0 ? -r : errno));
	if (main_protect)
		nlfd = host_watch(main_loop);
	/* The scrapes are the main thread's: a worker never waits on one. */
	if (has_metrics && !metrics_listen(&metrics_at, main_loop, workers, nworkers) &&
	    !no_auth)
		log_fatal(SERVER_EXIT_USAGE, "refusing --metrics on %s: off loopback anyone "
		    "could read them, and they take no password; give --no-auth to serve "
		    "them anyway", metrics_name());

	fd_limit = main_fd_limit(&conf_cur->lim, sigfd);
	for (k = 0; k < nworkers; k++) {
		worker_setup(&workers[k], k, fd_limit);
		for (i = 0; i < workers[k].nlst; i++) {
			struct listener *lst = &workers[k].lst[i];

			if ((r = loop_add(workers[k].loop, lst->fd, listener_mask(lst),
			    listener_on_accept, lst)) < 0)
				log_fatal(EXIT_FAILURE, "event loop: %s", strerror(-r));
		}
	}
	/* What the server holds before any session: the lowest free descriptor. */
	fd_base = main_fds_open(sigfd, fd_limit);
	for (k = 0; k < nworkers; k++)
		workers[k].fd_base = fd_base;
	main_fd_check(&conf_cur->lim, fd_limit, fd_base);
	main_pipes_say(&conf_cur->lim, main_pipes_max(&conf_cur->lim));

	/* The readiness protocol: printed even with -q, one write() each. */
	for (i = 0; i < workers[0].nlst; i++) {
		char line[sizeof("socksifyd: listening on \n") + S5_ADDR_TEXT_MAX];
		int n = snprintf(line, sizeof(line), "socksifyd: listening on %s\n",
		    workers[0].lst[i].name);

		log_ready_line(line, (size_t)n);
	}
	if (has_metrics) {
		char line[sizeof("socksifyd: metrics on \n") + S5_ADDR_TEXT_MAX];
		int n = snprintf(line, sizeof(line), "socksifyd: metrics on %s\n",
		    metrics_name());

		log_ready_line(line, (size_t)n);
	}

	workers_running = nworkers;
	for (k = 0; k < nworkers; k++) {
		if ((r = pthread_create(&workers[k].thread, NULL, worker_main, &workers[k])) != 0)
			log_fatal(EXIT_FAILURE, "worker thread: %s", strerror(r));
	}
	sd_start(main_loop);
	sd_notify("READY=1\nSTATUS=listening on %s%s", workers[0].lst[0].name,
	    workers[0].nlst > 1 ? " and more" : "");
	if ((r = loop_run(main_loop)) < 0)
		log_error("epoll_wait: %s", strerror(-r));
	loop_timer_stop(main_loop, &sd_timer);
	sd_close();
	metrics_close();

	for (k = 0; k < nworkers; k++) {
		pthread_join(workers[k].thread, NULL);
		worker_free(&workers[k]);
	}
	if (drain_cut > 0)
		log_warn("drain timeout: closing %ld sessions", drain_cut);
	log_warn("stopped");
	for (i = 0; i < nshared; i++)
		close(shared_fds[i]);
	loop_timer_stop(main_loop, &host_refresh_timer);
	if (nlfd >= 0) {
		loop_del(main_loop, nlfd);
		close(nlfd);
	}
	loop_del(main_loop, sigfd);
	close(sigfd);
	loop_del(main_loop, main_ctl);
	close(main_ctl);
	loop_free(main_loop);
	while (nretired > 0)
		conf_free(retired[--nretired]);
	conf_free(conf_cur);
	free(workers);
	config_args_free(&main_args);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
