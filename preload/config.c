/*
 * config.c: the real libc symbols and the configuration of libsocksify.
 *
 * Both are set up lazily by the first hook that needs them, never in a
 * constructor: other libraries' constructors may call connect() before ours
 * ran, and hosts such as Chromium deadlock when a constructor allocates or
 * starts threads (preload-anchors.md P9). (The library's one constructor,
 * fakedns.c's, maps the name table and does neither.) The configuration lives in static
 * storage and is immutable once read, so hooks read it without locks.
 */
#include <ctype.h>
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>

#include "preload.h"

struct preload_real preload_real;
struct preload_config preload_cfg;

static pthread_once_t symbols_once = PTHREAD_ONCE_INIT;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;
/* Set while this thread reads the configuration: resolving a proxy's name
 * may enter NSS modules that connect() through our own hooks. */
static __thread bool config_busy;

static void *
config_sym(const char *name)
{
	void *p;

	p = dlsym(RTLD_NEXT, name);
	if (p == NULL)
		preload_log(LOG_LVL_ERROR, "cannot find libc symbol %s", name);
	return p;
}

/* A symbol that may be missing, under its name or its older alias. */
static void *
config_sym_optional(const char *name, const char *alias)
{
	void *p;

	p = dlsym(RTLD_NEXT, name);
	return p != NULL || alias == NULL ? p : dlsym(RTLD_NEXT, alias);
}

/* Not under pthread_once(): a malloc() that dlsym() calls may itself use
 * syscall(), and two threads storing the same pointer do no harm. */
preload_syscall_fn
preload_syscall_real(void)
{
	preload_syscall_fn fn;

	fn = __atomic_load_n(&preload_real.syscall, __ATOMIC_ACQUIRE);
	if (fn == NULL) {
		*(void **)&fn = dlsym(RTLD_NEXT, "syscall");
		__atomic_store_n(&preload_real.syscall, fn, __ATOMIC_RELEASE);
	}
	return fn;
}

/*
 * Under the supervisor (SOCKSIFY_MODE auto or seccomp) the library makes
 * its own connect()/send*()/getpeername() calls with PRELOAD_SYSCALL_MARK in
 * the upper half of the descriptor argument. The kernel reads the
 * descriptor as an int and ignores those bits; the supervisor's seccomp
 * filter sees them and lets the call through without a notification, since
 * the library has applied the policy already (supervisor.c). Without a
 * filter the mark costs nothing and changes nothing.
 */
static long
syscall_marked(long number, int fd, long a1, long a2, long a3, long a4, long a5)
{
	preload_syscall_fn real = preload_syscall_real();

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real(number, (long)((uint64_t)PRELOAD_SYSCALL_MARK << 32 | (uint32_t)fd),
	    a1, a2, a3, a4, a5);
}

static int
syscall_marked_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)syscall_marked(SYS_connect, fd, (long)sa, (long)len, 0, 0, 0);
}

static ssize_t
syscall_marked_sendto(int fd, const void *buf, size_t n, int flags,
    const struct sockaddr *sa, socklen_t len)
{
	return syscall_marked(SYS_sendto, fd, (long)buf, (long)n, flags, (long)sa,
	    (long)len);
}

static ssize_t
syscall_marked_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return syscall_marked(SYS_sendmsg, fd, (long)msg, flags, 0, 0, 0);
}

static int
syscall_marked_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	return (int)syscall_marked(SYS_sendmmsg, fd, (long)vec, (long)vlen, flags, 0, 0);
}

static int
syscall_marked_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	return (int)syscall_marked(SYS_getpeername, fd, (long)sa, (long)len, 0, 0, 0);
}

static ssize_t
syscall_marked_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
    socklen_t *len)
{
	return syscall_marked(SYS_recvfrom, fd, (long)buf, (long)n, flags, (long)sa,
	    (long)len);
}

/* glibc's fortify failure (it aborts); exported, though no header says so. */
extern void __chk_fail(void) __attribute__((noreturn));

/* glibc's check, then the marked call (its own would not carry the mark). */
static ssize_t
syscall_marked_recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
    struct sockaddr *sa, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return syscall_marked_recvfrom(fd, buf, n, flags, sa, len);
}

void
preload_use_marked_calls(struct preload_real *r)
{
	r->connect = syscall_marked_connect;
	r->sendto = syscall_marked_sendto;
	r->sendmsg = syscall_marked_sendmsg;
	r->sendmmsg = syscall_marked_sendmmsg;
	r->getpeername = syscall_marked_getpeername;
	r->recvfrom = syscall_marked_recvfrom;
	r->__recvfrom_chk = syscall_marked_recvfrom_chk;
}

static void
config_load_symbols(void)
{
	/* Casts through void * are how dlsym() is meant to be used (POSIX). */
	*(void **)&preload_real.connect = config_sym("connect");
	*(void **)&preload_real.sendto = config_sym("sendto");
	*(void **)&preload_real.sendmsg = config_sym("sendmsg");
	*(void **)&preload_real.sendmmsg = config_sym("sendmmsg");
	*(void **)&preload_real.getpeername = config_sym("getpeername");
	*(void **)&preload_real.getsockopt = config_sym("getsockopt");
	*(void **)&preload_real.getaddrinfo = config_sym("getaddrinfo");
	*(void **)&preload_real.getnameinfo = config_sym("getnameinfo");
	*(void **)&preload_real.gethostbyname = config_sym("gethostbyname");
	*(void **)&preload_real.gethostbyname2 = config_sym("gethostbyname2");
	*(void **)&preload_real.gethostbyname_r = config_sym("gethostbyname_r");
	*(void **)&preload_real.gethostbyname2_r = config_sym("gethostbyname2_r");
	*(void **)&preload_real.gethostbyaddr = config_sym("gethostbyaddr");
	*(void **)&preload_real.gethostbyaddr_r = config_sym("gethostbyaddr_r");
	*(void **)&preload_real.getaddrinfo_a =
	    config_sym_optional("getaddrinfo_a", NULL);
	*(void **)&preload_real.res_query =
	    config_sym_optional("res_query", "__res_query");
	*(void **)&preload_real.res_search =
	    config_sym_optional("res_search", "__res_search");
	*(void **)&preload_real.res_querydomain =
	    config_sym_optional("res_querydomain", "__res_querydomain");
	*(void **)&preload_real.res_send =
	    config_sym_optional("res_send", "__res_send");
	*(void **)&preload_real.res_nquery =
	    config_sym_optional("res_nquery", "__res_nquery");
	*(void **)&preload_real.res_nsearch =
	    config_sym_optional("res_nsearch", "__res_nsearch");
	*(void **)&preload_real.res_nquerydomain =
	    config_sym_optional("res_nquerydomain", "__res_nquerydomain");
	*(void **)&preload_real.res_nsend =
	    config_sym_optional("res_nsend", "__res_nsend");
	if (preload_supervised())
		preload_use_marked_calls(&preload_real);
}

/* The launcher runs us under its supervisor (SOCKSIFY_MODE auto or seccomp,
 * which it exports as it ran): our own calls carry the mark (syscall.c). */
bool
preload_supervised(void)
{
	const char *m = getenv("SOCKSIFY_MODE");

	return m != NULL && (strcasecmp(m, "auto") == 0 || strcasecmp(m, "seccomp") == 0);
}

void
preload_init_symbols(void)
{
	pthread_once(&symbols_once, config_load_symbols);
}

/* Hop i is looked up here (and dialled or named by address): the first,
 * and one whose previous hop does not resolve names. */
static bool
config_hop_resolved_here(const struct preload_config *c, size_t i)
{
	return i == 0 || !c->hops[i - 1][0].proxy.remote_dns;
}

/* The locally resolved addresses of a hop, first IPv4 and first IPv6. */
static int
config_resolve_hop(struct preload_hop *h)
{
	struct addrinfo hints, *res, *ai;
	const struct s5_addr *a = &h->proxy.addr;
	struct s5_addr tmp;
	char placeholder_name[S5_DOMAIN_MAX + 1];
	bool placeholder = false;
	int r;

	if (a->atyp == S5_ATYP_IPV4) {
		h->v4 = *a;
		h->has_v4 = true;
		return 0;
	}
	if (a->atyp == S5_ATYP_IPV6) {
		h->v6 = *a;
		h->has_v6 = true;
		return 0;
	}
	if (preload_real.getaddrinfo == NULL)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r = preload_real.getaddrinfo(a->u.domain.name, NULL, &hints, &res);
	if (r != 0) {
		preload_log(LOG_LVL_ERROR, "cannot resolve proxy %s: %s",
		    a->u.domain.name, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (s5_addr_from_sockaddr(&tmp, ai->ai_addr, ai->ai_addrlen) != 0)
			continue;
		/* A placeholder this tree handed out names no proxy: an
		 * answer of socksify's own, never an address to dial. (Other
		 * addresses of the range are left alone: a fake-IP resolver
		 * of the host's, Clash's, hands them out for real hosts.) */
		if (fakedns_name_of(&tmp, placeholder_name, sizeof(placeholder_name))) {
			placeholder = true;
			continue;
		}
		tmp.port = a->port;
		if (tmp.atyp == S5_ATYP_IPV4 && !h->has_v4) {
			h->v4 = tmp;
			h->has_v4 = true;
		} else if (tmp.atyp == S5_ATYP_IPV6 && !h->has_v6) {
			h->v6 = tmp;
			h->has_v6 = true;
		}
	}
	freeaddrinfo(res);
	if (!h->has_v4 && !h->has_v6 && placeholder)
		preload_log(LOG_LVL_ERROR, "cannot resolve proxy %s: only placeholder "
		    "addresses of this process tree came back (a lookup socksify "
		    "answered)", a->u.domain.name);
	return h->has_v4 || h->has_v6 ? 0 : -1;
}

static void
config_read_proxies(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_PROXY"), *s, *item, *why;
	struct s5_proxy alts[PRELOAD_MAX_ALTS];
	size_t len, i, k, n, bad, usable, off = 0;
	char text[S5_ADDR_TEXT_MAX];
	struct preload_hop *h;

	if (env == NULL || env[0] == '\0')
		env = "socks5h://" SERVER_DEFAULT_LISTEN;
	s = env;
	while (s5_list_next(&s, &item, &len)) {
		if (c->nhops == PRELOAD_MAX_PROXIES) {
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_PROXY: more than %d "
			    "proxies; every connection will fail", PRELOAD_MAX_PROXIES);
			c->proxy_invalid = true;
			return;
		}
		why = "invalid";
		if (s5_hop_parse(item, len, alts, PRELOAD_MAX_ALTS, &n, &bad, &why) != 0) {
			/* The URL may hold a password: name the entry by number. */
			if (bad > 0)
				preload_log(LOG_LVL_ERROR, "SOCKSIFY_PROXY: proxy %zu, "
				    "alternative %zu: %s; every connection will fail",
				    c->nhops + 1, bad, why);
			else
				preload_log(LOG_LVL_ERROR, "SOCKSIFY_PROXY: proxy %zu: %s; "
				    "every connection will fail", c->nhops + 1, why);
			c->proxy_invalid = true;
			return;
		}
		for (k = 0; k < n; k++)
			c->hops[c->nhops][k].proxy = alts[k];
		c->nalts[c->nhops++] = n;
	}
	if (c->nhops == 0) {
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_PROXY: no proxy given; "
		    "every connection will fail");
		c->proxy_invalid = true;
		return;
	}
	for (i = 0; i < c->nhops; i++) {
		usable = 0;
		for (k = 0; k < c->nalts[i]; k++) {
			h = &c->hops[i][k];
			/* The first hop is dialled directly; a later hop is named
			 * to the previous one, as an address unless that one
			 * resolves names. */
			if (config_hop_resolved_here(c, i) && config_resolve_hop(h) != 0) {
				if (h->proxy.addr.atyp != S5_ATYP_DOMAIN)
					preload_log(LOG_LVL_ERROR, "proxy %zu has no "
					    "usable address", i + 1);
				h->unusable = true;
			} else {
				usable++;
			}
			if (s5_addr_format(&h->proxy.addr, text, sizeof(text)) < 0)
				text[0] = '\0';
			off += (size_t)snprintf(c->chain_text + off, sizeof(c->chain_text) - off,
			    "%s%s", k > 0 ? "|" : i > 0 ? " -> " : "", text);
			if (off >= sizeof(c->chain_text))
				off = sizeof(c->chain_text) - 1;
		}
		/* One alternative that cannot be reached is skipped; a hop
		 * with none fails every connection (fail closed). */
		if (usable == 0) {
			preload_log(LOG_LVL_ERROR, "every connection will fail");
			c->proxy_invalid = true;
		} else if (usable < c->nalts[i]) {
			preload_log(LOG_LVL_ERROR, "proxy %zu: %zu of its %zu alternatives "
			    "have no address and are skipped", i + 1, c->nalts[i] - usable,
			    c->nalts[i]);
		}
	}
	c->remote_dns = c->hops[c->nhops - 1][0].proxy.remote_dns;
}

/*
 * Addresses that excluded names resolved to, so that connect() sends them
 * direct even outside every CIDR. Append-only and lock-free (connect() may
 * run in a signal handler): a slot is claimed with an atomic increment and
 * published by its ready flag. A fork() copies it, an exec() forgets it.
 */
static struct {
	int ready;
	struct s5_addr addr;		/* port 0: any port */
} exclude_addrs[PRELOAD_EXCLUDED_ADDRS];
static unsigned exclude_addrs_used;

static void
config_add_exclude(struct preload_config *c, const char *text)
{
	const char *why = "invalid";
	struct s5_cidr cidr;
	char name[S5_DOMAIN_MAX + 1];

	if (s5_cidr_parse(text, &cidr, &why) != 0 &&
	    s5_name_normalize(text, name, sizeof(name))) {
		if (c->nexclude_names == PRELOAD_MAX_EXCLUDES) {
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_EXCLUDE: more than %d "
			    "names; ignoring %s", PRELOAD_MAX_EXCLUDES, text);
			return;
		}
		memcpy(c->exclude_names[c->nexclude_names++], name, strlen(name) + 1);
		return;
	}
	if (c->nexcludes == PRELOAD_MAX_EXCLUDES) {
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_EXCLUDE: more than %d ranges; "
		    "ignoring %s", PRELOAD_MAX_EXCLUDES, text);
		return;
	}
	if (s5_cidr_parse(text, &c->excludes[c->nexcludes], &why) != 0) {
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_EXCLUDE: %s: %s; ignored",
		    text, why);
		return;
	}
	c->nexcludes++;
}

/* Each CIDR, NAME or .SUFFIX of a comma-separated list. */
static void
config_add_excludes(struct preload_config *c, const char *list)
{
	const char *s = list, *item;
	char text[S5_DOMAIN_MAX + 2];	/* a name, with its trailing dot */
	size_t len;

	while (s5_list_next(&s, &item, &len)) {
		if (len == strlen("none") && strncasecmp(item, "none", len) == 0)
			continue;
		if (len >= sizeof(text)) {
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_EXCLUDE: %.*s: too long; "
			    "ignored", (int)len, item);
			continue;
		}
		memcpy(text, item, len);
		text[len] = '\0';
		config_add_exclude(c, text);
	}
}

/* SOCKSIFY_EXCLUDE replaces the defaults; with a leading '+' it adds to them. */
static void
config_read_excludes(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_EXCLUDE");

	/* Loopback is this host's own, never the proxy's (P12). */
	if (env == NULL || env[0] == '+')
		config_add_excludes(c, LAUNCHER_UPSTREAM_EXCLUDE);
	if (env != NULL)
		config_add_excludes(c, env[0] == '+' ? env + 1 : env);
}

int
preload_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN }, { "info", LOG_LVL_INFO },
		{ "trace", LOG_LVL_TRACE }, { "debug", LOG_LVL_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcasecmp(s, levels[i].name) == 0)
			return levels[i].level;
	return -1;
}

int
preload_parse_udp(const char *s)
{
	if (strcasecmp(s, "proxy") == 0)
		return PRELOAD_UDP_PROXY;
	if (strcasecmp(s, "block") == 0)
		return PRELOAD_UDP_BLOCK;
	if (strcasecmp(s, "pass") == 0)
		return PRELOAD_UDP_PASS;
	return -1;
}

int
preload_parse_iouring(const char *s)
{
	if (strcasecmp(s, "deny") == 0)
		return 0;
	if (strcasecmp(s, "allow") == 0)
		return 1;
	return -1;
}

int
preload_parse_dns(const char *s, struct s5_addr *a, const char **why)
{
	*why = NULL;
	if (s5_addr_parse(s, a, POLICY_DNS_PORT, why) != 0)
		return -1;
	if (a->atyp == S5_ATYP_DOMAIN) {
		*why = "a name, not an address";
		return -1;
	}
	if (a->port == 0) {
		*why = "port 0 (a port to connect to: 53 when none is given)";
		return -1;
	}
	return 0;
}

static void
config_read_log(struct preload_config *c)
{
	const char *env;
	int level;

	env = getenv("SOCKSIFY_LOG_FILE");
	if (env != NULL && env[0] != '\0') {
		if (strlen(env) < sizeof(c->log_file))
			memcpy(c->log_file, env, strlen(env) + 1);
		else
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_LOG_FILE: path too long");
	}
	c->log_level = LOG_LVL_WARN;
	env = getenv("SOCKSIFY_LOG");
	if (env == NULL || env[0] == '\0')
		return;
	if ((level = preload_parse_level(env)) >= 0) {
		c->log_level = level;
		return;
	}
	preload_log(LOG_LVL_ERROR, "SOCKSIFY_LOG: unknown level \"%s\" (error, "
	    "warn, info, trace or debug); using warn", env);
}

/* Seconds, with an optional fraction ("2.5"), as ms above 0 and at most
 * PRELOAD_TIMEOUT_MAX_S; -1 when malformed or out of range. */
int
preload_parse_seconds(const char *s)
{
	long ms = 0, scale = 100;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		ms = ms * 10 + (*s - '0') * 1000;
		if (ms > PRELOAD_TIMEOUT_MAX_S * 1000L)
			return -1;
	}
	if (*s == '.') {
		for (s++; isdigit((unsigned char)*s); s++) {
			ms += (*s - '0') * scale;
			scale /= 10;
		}
	}
	if (*s != '\0' || ms <= 0)
		return -1;
	return (int)ms;
}

static void
config_read_timeout(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_TIMEOUT");
	int ms;

	c->timeout_ms = PRELOAD_TIMEOUT_S * 1000;
	if (env == NULL || env[0] == '\0')
		return;
	ms = preload_parse_seconds(env);
	if (ms < 0) {
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_TIMEOUT: \"%s\" is not a number "
		    "of seconds from 0.001 to %d (2.5 will do); using %d", env,
		    PRELOAD_TIMEOUT_MAX_S, PRELOAD_TIMEOUT_S);
		return;
	}
	c->timeout_ms = ms;
}

/*
 * SOCKSIFY_UDP (proxy, block, pass) and SOCKSIFY_IOURING (deny, allow). A
 * value we do not know takes the stricter meaning: a typo must not open a
 * leak.
 */
static void
config_read_policy(struct preload_config *c)
{
	const char *env;

	int v;

	c->udp_block = true;
	c->udp_proxy = true;
	env = getenv("SOCKSIFY_UDP");
	if (env != NULL && env[0] != '\0' && (v = preload_parse_udp(env)) != PRELOAD_UDP_PROXY) {
		c->udp_proxy = false;
		if (v == PRELOAD_UDP_PASS)
			c->udp_block = false;
		else if (v < 0)
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_UDP: unknown value "
			    "\"%s\"; using block", env);
	}
	env = getenv("SOCKSIFY_IOURING");
	if (env != NULL && env[0] != '\0' && (v = preload_parse_iouring(env)) != 0) {
		if (v > 0)
			c->iouring_allow = true;
		else
			preload_log(LOG_LVL_ERROR, "SOCKSIFY_IOURING: unknown value "
			    "\"%s\"; using deny", env);
	}
}

/*
 * SOCKSIFY_PIPELINE: on (every SOCKS5 hop gets greeting, credentials and
 * request in one write), off, or auto (the default): on only where the
 * server is known to take it: the socksifyd the launcher starts itself,
 * whose URL it exports in SOCKSIFY_PIPELINE_PROXY (pipelined while
 * SOCKSIFY_PROXY is still that URL), and a hop whose server said so in an
 * earlier handshake of this process (a _STREAM method: socksifyd; tunnel.c).
 * Servers that read one recv() per message (microsocks) lose the pipelined
 * rest and the handshake stalls.
 */
static void
config_read_pipeline(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_PIPELINE");
	const char *proxy = getenv("SOCKSIFY_PROXY"), *ours = getenv("SOCKSIFY_PIPELINE_PROXY");

	c->pipeline = false;
	c->pipeline_learn = false;
	if (env != NULL && strcasecmp(env, "off") == 0)
		return;
	if (env != NULL && strcasecmp(env, "on") == 0) {
		c->pipeline = true;
		return;
	}
	if (env != NULL && env[0] != '\0' && strcasecmp(env, "auto") != 0)
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_PIPELINE: unknown value \"%s\"; "
		    "using auto", env);
	/* auto: the proxy the launcher started, while it is still the one in
	 * use (a nested socksify -x, a child's own SOCKSIFY_PROXY: not). */
	c->pipeline = proxy != NULL && ours != NULL && strcmp(proxy, ours) == 0;
	c->pipeline_learn = !c->pipeline;
}

/* SOCKSIFY_PICK: order (the first alternative alive) or spread. */
static void
config_read_pick(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_PICK");

	c->spread = false;
	if (env == NULL || env[0] == '\0' || strcasecmp(env, "order") == 0)
		return;
	if (strcasecmp(env, "spread") == 0)
		c->spread = true;
	else
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_PICK: unknown value \"%s\"; "
		    "using order", env);
}

/*
 * SOCKSIFY_DNS=IP[:PORT]: the resolver the record types placeholders cannot
 * answer are sent to, over TCP through the chain (dnsanswer.c). Not an
 * address: one line, and those types get REFUSED as without it.
 */
static void
config_read_dns(struct preload_config *c)
{
	const char *env = getenv("SOCKSIFY_DNS"), *why = NULL;

	c->has_dns_server = false;
	if (env == NULL || env[0] == '\0')
		return;
	if (preload_parse_dns(env, &c->dns_server, &why) != 0) {
		preload_log(LOG_LVL_ERROR, "SOCKSIFY_DNS: \"%s\" is not IP[:PORT]%s%s; "
		    "ignored", env, why != NULL ? ": " : "", why != NULL ? why : "");
		return;
	}
	c->has_dns_server = true;
}

static void
config_load(void)
{
	struct preload_config *c = &preload_cfg;
	size_t i;

	config_busy = true;
	/* Logging settings first, so that later complaints go where asked. */
	config_read_log(c);
	config_read_timeout(c);
	config_read_policy(c);
	config_read_dns(c);
	config_read_pick(c);
	config_read_pipeline(c);
	config_read_proxies(c);
	config_read_excludes(c);
	if (c->proxy_invalid) {
		c->remote_dns = true;	/* fail closed: no name leaves the host */
		if (c->chain_text[0] == '\0')
			snprintf(c->chain_text, sizeof(c->chain_text),
			    "(invalid SOCKSIFY_PROXY)");
	}
	/* Alternatives share their health through the tree's table: mapped
	 * now, not on a first connect (which may run in a signal handler). */
	for (i = 0; i < c->nhops && !c->proxy_invalid; i++)
		if (c->nalts[i] > 1) {
			(void)fakedns_health();
			break;
		}
	preload_log(LOG_LVL_DEBUG, "proxy %s (%s resolution), %zu exclusions, "
	    "timeout %d ms", c->chain_text, c->remote_dns ? "remote" : "local",
	    c->nexcludes, c->timeout_ms);
	config_busy = false;
}

static bool
config_same_host(const struct s5_addr *a, const struct s5_addr *b)
{
	if (a->atyp != b->atyp)
		return false;
	if (a->atyp == S5_ATYP_IPV4)
		return memcmp(a->u.ip4, b->u.ip4, sizeof(a->u.ip4)) == 0;
	return a->atyp == S5_ATYP_IPV6 &&
	    memcmp(a->u.ip6, b->u.ip6, sizeof(a->u.ip6)) == 0;
}

bool
preload_is_excluded(const struct s5_addr *a)
{
	unsigned i, used;

	for (i = 0; i < preload_cfg.nexcludes; i++)
		if (s5_cidr_match_addr(&preload_cfg.excludes[i], a))
			return true;
	used = __atomic_load_n(&exclude_addrs_used, __ATOMIC_ACQUIRE);
	for (i = 0; i < used && i < PRELOAD_EXCLUDED_ADDRS; i++)
		if (__atomic_load_n(&exclude_addrs[i].ready, __ATOMIC_ACQUIRE) &&
		    config_same_host(&exclude_addrs[i].addr, a))
			return true;
	return false;
}

/* ".corp" matches "corp" and every name ending in ".corp"; any other entry
 * matches that name alone. Case and a trailing dot do not count. */
bool
preload_name_excluded(const char *name)
{
	size_t len = strlen(name), i;

	for (i = 0; i < preload_cfg.nexclude_names; i++)
		if (s5_name_match(preload_cfg.exclude_names[i], name, len))
			return true;
	return false;
}

bool
preload_name_is_proxy(const char *name)
{
	size_t len = strlen(name), i, k, hlen;

	if (len > 0 && name[len - 1] == '.')
		len--;
	/* Only the hops looked up here: a later hop's name goes to the hop
	 * before it, and a query of it must stay remote as any other. */
	for (i = 0; i < preload_cfg.nhops && config_hop_resolved_here(&preload_cfg, i); i++) {
		for (k = 0; k < preload_cfg.nalts[i]; k++) {
			const struct s5_addr *a = &preload_cfg.hops[i][k].proxy.addr;

			if (a->atyp != S5_ATYP_DOMAIN)
				continue;
			hlen = a->u.domain.len;
			if (hlen > 0 && a->u.domain.name[hlen - 1] == '.')
				hlen--;	/* "proxy.example." as given */
			if (hlen == len && strncasecmp(a->u.domain.name, name, len) == 0)
				return true;
		}
	}
	return false;
}

void
preload_exclude_addr(const struct sockaddr *sa, socklen_t len)
{
	struct s5_addr a;
	unsigned i;

	if (s5_addr_from_sockaddr(&a, sa, len) != 0 || preload_is_excluded(&a))
		return;
	a.port = 0;
	/* Checked first, so the counter passes the end by a few at most and
	 * never wraps back onto published slots. */
	if (__atomic_load_n(&exclude_addrs_used, __ATOMIC_RELAXED) > PRELOAD_EXCLUDED_ADDRS)
		return;
	i = __atomic_fetch_add(&exclude_addrs_used, 1, __ATOMIC_ACQ_REL);
	if (i >= PRELOAD_EXCLUDED_ADDRS) {
		if (i == PRELOAD_EXCLUDED_ADDRS)
			preload_log(LOG_LVL_ERROR, "more than %d addresses of "
			    "excluded names; later ones go through the proxy",
			    PRELOAD_EXCLUDED_ADDRS);
		return;
	}
	exclude_addrs[i].addr = a;
	__atomic_store_n(&exclude_addrs[i].ready, 1, __ATOMIC_RELEASE);
}

bool
preload_init(void)
{
	preload_init_symbols();
	if (config_busy)
		return false;
	pthread_once(&config_once, config_load);
	return true;
}
