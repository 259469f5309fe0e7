/*
 * config.c: socksifyd's options. Every long flag is also a config line:
 * "--idle-timeout 60000" on the command line is "idle-timeout 60000" in a
 * --config file. Items apply in order, a --config file's lines where the
 * --config flag stands; a later value replaces an earlier one, while
 * listen, allow and deny add up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "rules.h"
#include "textfile.h"

enum config_opt {
	CONFIG_OPT_LISTEN = 'l',
	CONFIG_OPT_USERS = 'u',
	CONFIG_OPT_VERBOSE = 'v',
	CONFIG_OPT_QUIET = 'q',
	CONFIG_OPT_HELP = 'h',
	CONFIG_OPT_VERSION = 'V',
	CONFIG_OPT_CONFIG = 256,	/* past every short option */
	CONFIG_OPT_ALLOW,
	CONFIG_OPT_DENY,
	CONFIG_OPT_NO_BIND,
	CONFIG_OPT_NO_UDP,
	CONFIG_OPT_NO_AUTH,
	CONFIG_OPT_HANDSHAKE_TIMEOUT,
	CONFIG_OPT_CONNECT_TIMEOUT,
	CONFIG_OPT_IDLE_TIMEOUT,
	CONFIG_OPT_DRAIN_TIMEOUT,
	CONFIG_OPT_MAX_SESSIONS,
	CONFIG_OPT_BIND_TIMEOUT,
	CONFIG_OPT_UDP_IDLE_TIMEOUT,
	CONFIG_OPT_FD_RESERVE,
	CONFIG_OPT_WORKERS,
	CONFIG_OPT_ACCEPT,
	CONFIG_OPT_RELAY,
	CONFIG_OPT_LOG,
	CONFIG_OPT_SYSLOG,
	CONFIG_OPT_OUTGOING,
	CONFIG_OPT_PROXY_PROTOCOL,
	CONFIG_OPT_PROXY_PROTOCOL_FROM,
	CONFIG_OPT_METRICS,
};

enum {
	CONFIG_REASON_MAX = 512,	/* one error message, bytes */
	CONFIG_NAME_MAX = 32,		/* longest unknown name a near one is sought for, bytes */
	CONFIG_NEAR_EDITS = 2,		/* "did you mean": at most this many edits away */
};

static const struct option config_longopts[] = {
	{ "listen", required_argument, NULL, CONFIG_OPT_LISTEN },
	{ "users", required_argument, NULL, CONFIG_OPT_USERS },
	{ "no-auth", no_argument, NULL, CONFIG_OPT_NO_AUTH },
	{ "allow", required_argument, NULL, CONFIG_OPT_ALLOW },
	{ "deny", required_argument, NULL, CONFIG_OPT_DENY },
	{ "no-bind", no_argument, NULL, CONFIG_OPT_NO_BIND },
	{ "no-udp", no_argument, NULL, CONFIG_OPT_NO_UDP },
	{ "handshake-timeout", required_argument, NULL, CONFIG_OPT_HANDSHAKE_TIMEOUT },
	{ "connect-timeout", required_argument, NULL, CONFIG_OPT_CONNECT_TIMEOUT },
	{ "idle-timeout", required_argument, NULL, CONFIG_OPT_IDLE_TIMEOUT },
	{ "drain-timeout", required_argument, NULL, CONFIG_OPT_DRAIN_TIMEOUT },
	{ "max-sessions", required_argument, NULL, CONFIG_OPT_MAX_SESSIONS },
	{ "bind-timeout", required_argument, NULL, CONFIG_OPT_BIND_TIMEOUT },
	{ "udp-idle-timeout", required_argument, NULL, CONFIG_OPT_UDP_IDLE_TIMEOUT },
	{ "fd-reserve", required_argument, NULL, CONFIG_OPT_FD_RESERVE },
	{ "workers", required_argument, NULL, CONFIG_OPT_WORKERS },
	{ "accept", required_argument, NULL, CONFIG_OPT_ACCEPT },
	{ "relay", required_argument, NULL, CONFIG_OPT_RELAY },
	{ "log", required_argument, NULL, CONFIG_OPT_LOG },
	{ "syslog", no_argument, NULL, CONFIG_OPT_SYSLOG },
	{ "outgoing", required_argument, NULL, CONFIG_OPT_OUTGOING },
	{ "metrics", required_argument, NULL, CONFIG_OPT_METRICS },
	{ "proxy-protocol", no_argument, NULL, CONFIG_OPT_PROXY_PROTOCOL },
	{ "proxy-protocol-from", required_argument, NULL, CONFIG_OPT_PROXY_PROTOCOL_FROM },
	{ "config", required_argument, NULL, CONFIG_OPT_CONFIG },
	{ "verbose", no_argument, NULL, CONFIG_OPT_VERBOSE },
	{ "quiet", no_argument, NULL, CONFIG_OPT_QUIET },
	{ "help", no_argument, NULL, CONFIG_OPT_HELP },
	{ "version", no_argument, NULL, CONFIG_OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

void
config_usage(FILE *f)
{
	fprintf(f,
	    "usage: socksifyd [OPTIONS]\n"
	    "  -l, --listen ADDR:PORT     listen here (repeatable); default %s;\n"
	    "                             [::1]:1080 for IPv6; PORT alone is 127.0.0.1:PORT,\n"
	    "                             :PORT every address; port 0 picks a free port\n"
	    "  -u, --users FILE           require RFC 1929 username/password (user:password\n"
	    "                             lines); reloaded on SIGHUP\n"
	    "      --no-auth              let a listener off loopback run without --users\n"
	    "      --allow RULE           allow what RULE matches (repeatable; first match wins)\n"
	    "      --deny RULE            deny what RULE matches (reply 02); RULE is any of\n"
	    "                             'from CIDR' 'user NAME' 'to CIDR[:PORT|:LO-HI]'\n"
	    "                             'to NAME|.SUFFIX[:PORT]' 'cmd connect,bind,udp'\n"
	    "      --no-bind              switch BIND off (reply 07)\n"
	    "      --no-udp               switch UDP ASSOCIATE off (reply 07)\n"
	    "      --handshake-timeout MS greeting to request (default %d)\n"
	    "      --connect-timeout MS   per address tried, and per name lookup (default %d)\n"
	    "      --idle-timeout MS      relaying with no byte either way (default %d)\n"
	    "      --bind-timeout MS      BIND: the wait for the incoming connection, after\n"
	    "                             the first reply (default %d)\n"
	    "      --udp-idle-timeout MS  UDP ASSOCIATE with no datagram either way (default %d)\n"
	    "      --max-sessions N       sessions at once; more are closed (default %d)\n"
	    "      --fd-reserve N         descriptors kept free for held sessions (default %d)\n"
	    "      --drain-timeout MS     on SIGTERM, sessions may finish this long (default %d)\n"
	    "      --workers N            event loops, each on its own thread (default: one\n"
	    "                             per CPU, at most %d)\n"
	    "      --accept reuseport|shared  how workers share a listener: a socket each\n"
	    "                             (SO_REUSEPORT) or one (EPOLLEXCLUSIVE); default %s\n"
	    "      --relay auto|copy|splice  move bytes by read/send, by splice(2), or\n"
	    "                             (auto) by splice once a read fills a buffer; default %s\n"
	    "      --config FILE          these options from FILE, one per line, without dashes\n"
	    "  -v, --verbose              one log line per connection (without it:\n"
	    "                             failed logins and denials only)\n"
	    "  -q, --quiet                only errors\n"
	    "      --log FILE             log to FILE (mode 0600, appended; reopened on\n"
	    "                             SIGHUP, for logrotate), not stderr\n"
	    "      --syslog               log to syslog (/dev/log, facility daemon)\n"
	    "      --outgoing ADDR        source address toward targets (TCP and UDP)\n"
	    "                             and where BIND listens; repeatable: one IPv4,\n"
	    "                             one IPv6\n"
	    "      --proxy-protocol       each connection starts with a PROXY protocol\n"
	    "                             header (v1 or v2) naming the client\n"
	    "      --proxy-protocol-from CIDR  believe it only from there (repeatable;\n"
	    "                             default loopback)\n"
	    "      --metrics ADDR:PORT    serve Prometheus metrics at /metrics there (off\n"
	    "                             loopback only with --no-auth: no password)\n"
	    "  -h, --help                 this help\n"
	    "  -V, --version              print the version\n"
	    "SIGHUP reloads users and rules and reopens the log; SIGTERM or SIGINT drains, and a second one exits.\n",
	    SERVER_DEFAULT_LISTEN, SERVER_HANDSHAKE_TIMEOUT_MS, SERVER_CONNECT_TIMEOUT_MS,
	    SERVER_IDLE_TIMEOUT_MS, SERVER_BIND_TIMEOUT_MS, SERVER_UDP_IDLE_TIMEOUT_MS,
	    SERVER_MAX_SESSIONS, SERVER_FD_RESERVE, SERVER_DRAIN_TIMEOUT_MS,
	    SERVER_WORKERS_MAX, SERVER_ACCEPT_DEFAULT, SERVER_RELAY_DEFAULT);
}

/* --- unknown names ---------------------------------------------------- */

/*
 * Edits from a to b, both at most CONFIG_NAME_MAX bytes: Damerau-Levenshtein
 * (optimal string alignment), so two neighbours swapped, the commonest
 * typo, are one edit.
 */
static size_t
config_distance(const char *a, size_t la, const char *b)
{
	size_t d[CONFIG_NAME_MAX + 1][CONFIG_NAME_MAX + 1];
	size_t lb = strlen(b), i, j, v;

	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/*
 * One line for an unknown option: shown as typed, name (len bytes) the
 * part to match. The nearest known name is offered when it is at most
 * CONFIG_NEAR_EDITS edits away and at most a third of the typed length
 * (at least one), so "usr" gets no guess but "user" gets "users". in_file:
 * only what a config file takes, written without dashes.
 */
static void
config_unknown(const char *shown, const char *name, size_t len, bool in_file,
    char *why, size_t whylen)
{
	const struct option *o, *near = NULL;
	size_t d, most = len / 3, best;

	most = most < 1 ? 1 : most > CONFIG_NEAR_EDITS ? CONFIG_NEAR_EDITS : most;
	best = most + 1;
	for (o = config_longopts; len <= CONFIG_NAME_MAX && o->name != NULL; o++) {
		if (in_file && (o->val == CONFIG_OPT_HELP || o->val == CONFIG_OPT_VERSION ||
		    o->val == CONFIG_OPT_CONFIG))
			continue;
		if ((d = config_distance(name, len, o->name)) < best) {
			best = d;
			near = o;
		}
	}
	if (near == NULL)
		snprintf(why, whylen, "unknown option '%s'", shown);
	else
		snprintf(why, whylen, "unknown option '%s'; did you mean '%s%s'?", shown,
		    in_file ? "" : "--", near->name);
}

static const struct option *config_find(const char *name, size_t len);

/*
 * getopt_long()'s '?' for arg: an unknown short or long option, or a long
 * switch given a value ("--no-udp=1", when opt, getopt's optopt, is that
 * switch's). A short option inside a cluster ("-xv") leaves arg the word
 * before, so only a long option's message is taken from arg.
 */
static void
config_unknown_arg(const char *arg, int opt, char *why, size_t whylen)
{
	const struct option *o;
	bool dashes = strncmp(arg, "--", 2) == 0;
	const char *name = dashes ? arg + 2 : arg;
	size_t len = strcspn(name, "=");

	if (dashes && name[len] == '=' && (o = config_find(name, len)) != NULL &&
	    o->has_arg == no_argument)
		snprintf(why, whylen, "option '--%s' takes no value", o->name);
	else if (opt > 0 && opt < CONFIG_OPT_CONFIG)
		snprintf(why, whylen, "unknown option '-%c'", opt);
	else if (dashes)
		config_unknown(arg, name, len, false, why, whylen);
	else
		snprintf(why, whylen, "unknown option '%s'", arg);
}

/* --- the command line --------------------------------------------------- */

int
config_parse_args(int argc, char **argv, struct config_args *args,
    char *why, size_t whylen)
{
	int c;

	args->n = 0;
	if ((args->items = calloc(SERVER_CONFIG_ITEMS_MAX, sizeof(*args->items))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:u:vqhV", config_longopts, NULL)) != -1) {
		switch (c) {
		case CONFIG_OPT_HELP:
			return CONFIG_HELP;
		case CONFIG_OPT_VERSION:
			return CONFIG_VERSION;
		case ':':
			/* As the user wrote it: --users, not -u. */
			if (optopt > 0 && optopt < CONFIG_OPT_CONFIG &&
			    strncmp(argv[optind - 1], "--", 2) != 0)
				snprintf(why, whylen, "option '-%c' needs an argument", optopt);
			else
				snprintf(why, whylen, "option '%s' needs an argument",
				    argv[optind - 1]);
			return -EINVAL;
		case '?':
			config_unknown_arg(argv[optind - 1], optopt, why, whylen);
			return -EINVAL;
		default:
			if (args->n == SERVER_CONFIG_ITEMS_MAX) {
				snprintf(why, whylen, "too many options");
				return -EINVAL;
			}
			args->items[args->n].opt = c;
			args->items[args->n].arg = optarg;
			args->n++;
			break;
		}
	}
	if (optind < argc) {
		snprintf(why, whylen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return CONFIG_RUN;
}

void
config_args_free(struct config_args *args)
{
	free(args->items);
	args->items = NULL;
	args->n = 0;
}

/* --- numbers ----------------------------------------------------------- */

/* --relay NAME into lim: 0, or -1 for a name that is none of them. */
static int
config_relay(struct server_limits *lim, const char *name)
{
	bool copy = strcmp(name, "copy") == 0, splice = strcmp(name, "splice") == 0;

	if (!copy && !splice && strcmp(name, "auto") != 0)
		return -1;
	lim->splice = !copy;
	lim->splice_bulk = !copy && !splice;
	return 0;
}

/* Decimal, digits only, 1..max. */
static int
config_number(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s[0] == '\0')
		return -EINVAL;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -ERANGE;
	}
	if (v == 0)
		return -ERANGE;
	*out = v;
	return 0;
}

/* --- listen addresses --------------------------------------------------- */

/* Decimal, 0 to 65535 (0: the kernel picks one). */
static int
config_listen_port(const char *s, uint16_t *port, char *why, size_t whylen)
{
	size_t n = strspn(s, "0123456789"), i;
	unsigned long v = 0;

	if (s[0] == '\0') {
		snprintf(why, whylen, "no port after ':'");
		return -1;
	}
	if (s[n] != '\0') {
		snprintf(why, whylen, "port '%s' is not a number", s);
		return -1;
	}
	for (i = 0; i < n && v <= UINT16_MAX; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (v > UINT16_MAX) {
		snprintf(why, whylen, "port %s is not 0 to 65535", s);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* The host before ":PORT" (hlen bytes, no brackets): IPv4 or a name. */
static int
config_listen_host(const char *text, size_t hlen, uint16_t port,
    struct s5_addr *a, char *why, size_t whylen)
{
	char host[S5_DOMAIN_MAX + 1];
	uint8_t ip[4];
	size_t i;

	if (hlen > S5_DOMAIN_MAX) {
		snprintf(why, whylen, "host name longer than %d bytes", S5_DOMAIN_MAX);
		return -1;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	/*
	 * Digits and dots mean an address, never a name to look up:
	 * getaddrinfo() would take "10.1" the inet_aton() way and ask the DNS
	 * about "999.1.1.1".
	 */
	if (strspn(host, "0123456789.") == hlen) {
		if (inet_pton(AF_INET, host, ip) != 1) {
			snprintf(why, whylen, "'%s' is not an IPv4 address", host);
			return -1;
		}
		s5_addr_set_ip4(a, ip, port);
		return 0;
	}
	/* Bytes no name has: blanks, controls, and a URL's "/@". */
	for (i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)host[i];

		if (ch <= ' ' || ch == 0x7F || ch == '/' || ch == '@') {
			snprintf(why, whylen, "'%s' is not a host name", host);
			return -1;
		}
	}
	(void)s5_addr_set_domain(a, host, hlen, port);
	return 0;
}

/*
 * A --listen value: "ADDR:PORT", "[IPV6]:PORT", either without ":PORT"
 * (port 1080), a bare IPv6 address, "PORT" alone (127.0.0.1) or ":PORT"
 * (every address: *every set, a is 0.0.0.0). 0, or -1 with a reason that
 * names the bad part.
 */
/* An IPv4-mapped address (::ffff:a.b.c.d) no IPv6 listener can take: they
 * are IPv6-only (the bind says EINVAL). True with a reason in why. */
static bool
config_v4mapped(const uint8_t ip[16], char *why, size_t whylen)
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	if (memcmp(ip, prefix, sizeof(prefix)) != 0)
		return false;
	snprintf(why, whylen, "an IPv4-mapped address, which an IPv6 listener (IPv6 "
	    "only) cannot take: give %u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
	return true;
}

static int
config_listen_parse(const char *text, struct s5_addr *a, bool *every,
    char *why, size_t whylen)
{
	static const uint8_t any4[4], lo4[4] = { 127, 0, 0, 1 };
	const char *colon, *end;
	char ip6[INET6_ADDRSTRLEN];
	uint8_t ip[16];
	uint16_t port = S5_DEFAULT_PORT;
	size_t len;

	*every = false;
	if (text[0] == '\0') {
		snprintf(why, whylen, "empty address");
		return -1;
	}
	/* Digits alone are a port on loopback, as with ssh -D. */
	if (strspn(text, "0123456789") == strlen(text)) {
		if (config_listen_port(text, &port, why, whylen) < 0)
			return -1;
		s5_addr_set_ip4(a, lo4, port);
		return 0;
	}
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL) {
			snprintf(why, whylen, "'[' without ']'");
			return -1;
		}
		if ((len = (size_t)(end - text - 1)) == 0) {
			snprintf(why, whylen, "no address in '[]'");
			return -1;
		}
		if (end[1] == ':' && config_listen_port(end + 2, &port, why, whylen) < 0)
			return -1;
		if (end[1] != ':' && end[1] != '\0') {
			snprintf(why, whylen, "'%s' after ']' is not ':PORT'", end + 1);
			return -1;
		}
		if (len < sizeof(ip6)) {
			memcpy(ip6, text + 1, len);
			ip6[len] = '\0';
		}
		if (len >= sizeof(ip6) || inet_pton(AF_INET6, ip6, ip) != 1) {
			snprintf(why, whylen, "'%.*s' in brackets is not an IPv6 address",
			    (int)len, text + 1);
			return -1;
		}
		if (config_v4mapped(ip, why, whylen))
			return -1;
		s5_addr_set_ip6(a, ip, port);
		return 0;
	}
	if (strchr(text, ']') != NULL) {
		snprintf(why, whylen, "']' without '['");
		return -1;
	}
	colon = strchr(text, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		/* Two colons or more: a bare IPv6 address, which takes no port. */
		if (inet_pton(AF_INET6, text, ip) != 1) {
			snprintf(why, whylen, "'%s' is not an IPv6 address "
			    "(with a port: [::1]:1080)", text);
			return -1;
		}
		if (config_v4mapped(ip, why, whylen))
			return -1;
		s5_addr_set_ip6(a, ip, port);
		return 0;
	}
	if (colon == NULL)
		return config_listen_host(text, strlen(text), port, a, why, whylen);
	if (config_listen_port(colon + 1, &port, why, whylen) < 0)
		return -1;
	if (colon == text) {
		*every = true;
		s5_addr_set_ip4(a, any4, port);
		return 0;
	}
	return config_listen_host(text, (size_t)(colon - text), port, a, why, whylen);
}

static bool
config_ip_any(const struct s5_addr *a)
{
	static const uint8_t zero[16];

	return a->atyp == S5_ATYP_IPV4 ? memcmp(a->u.ip4, zero, 4) == 0 :
	    a->atyp == S5_ATYP_IPV6 && memcmp(a->u.ip6, zero, 16) == 0;
}

/*
 * Does a (":PORT" when every) take a port an earlier listen address holds?
 * The second bind would fail with "Address already in use", which reads
 * like another program's doing. Port 0 is a new port each time; names are
 * left to the bind.
 */
static bool
config_listen_clash(const struct config *c, const struct s5_addr *a, bool every,
    char *why, size_t whylen)
{
	char text[S5_ADDR_TEXT_MAX];
	size_t i;

	if (a->port == 0 || a->atyp == S5_ATYP_DOMAIN)
		return false;
	for (i = 0; i < c->nlisten; i++) {
		const struct s5_addr *b = &c->listen[i].addr;

		if (b->port != a->port || b->atyp == S5_ATYP_DOMAIN ||
		    (b->atyp != a->atyp && !every))
			continue;
		if (!every && !s5_addr_equal(a, b) && !config_ip_any(a) && !config_ip_any(b))
			continue;
		if (s5_addr_equal(a, b) && !c->listen[i].twin) {
			snprintf(why, whylen, "is given twice");
			return true;
		}
		/* ":PORT" as it was given, or the address. */
		if (c->listen[i].twin || (i + 1 < c->nlisten && c->listen[i + 1].twin))
			snprintf(text, sizeof(text), ":%u", (unsigned)b->port);
		else
			(void)s5_addr_format(b, text, sizeof(text));
		snprintf(why, whylen, "takes the port of '%s', given before", text);
		return true;
	}
	return false;
}

/*
 * ":PORT" is two listeners, 0.0.0.0 and [::]: an IPv6 socket serves IPv6
 * alone (listener.c), so each family keeps its own addresses in rules and
 * logs, as with "-l 0.0.0.0:PORT -l [::]:PORT".
 */
static int
config_listen_add(struct config *c, const char *text, char *why, size_t whylen)
{
	static const uint8_t any6[16];
	char reason[CONFIG_REASON_MAX];
	struct s5_addr a;
	bool every;

	if (config_listen_parse(text, &a, &every, reason, sizeof(reason)) < 0) {
		snprintf(why, whylen, "bad listen address '%s': %s", text, reason);
		return -1;
	}
	if (config_listen_clash(c, &a, every, reason, sizeof(reason))) {
		snprintf(why, whylen, "listen address '%s' %s", text, reason);
		return -1;
	}
	if (c->nlisten + (every ? 2 : 1) > SERVER_MAX_LISTENERS) {
		snprintf(why, whylen, "too many listen addresses (at most %d; ':PORT' is two)",
		    SERVER_MAX_LISTENERS);
		return -1;
	}
	c->listen[c->nlisten++] = (struct config_listen){ .addr = a };
	if (every) {
		s5_addr_set_ip6(&a, any6, a.port);
		c->listen[c->nlisten++] = (struct config_listen){ .addr = a, .twin = true };
	}
	return 0;
}

/* --- applying one option ------------------------------------------------ */

static int config_read_file(struct config *c, const char *path, char *why,
    size_t whylen);

/* 0, or -1 with a reason (no location: the caller adds it). */
static int
config_apply(struct config *c, int opt, const char *arg, bool in_file,
    char *why, size_t whylen)
{
	const char *rwhy = NULL;
	uint64_t v, *ms = NULL;
	uint8_t cmd;

	switch (opt) {
	case CONFIG_OPT_LISTEN:
		return config_listen_add(c, arg, why, whylen);
	case CONFIG_OPT_USERS:
		free(c->users_path);
		if ((c->users_path = strdup(arg)) == NULL)
			goto nomem;
		return 0;
	case CONFIG_OPT_NO_AUTH:
		c->no_auth = true;
		return 0;
	case CONFIG_OPT_ALLOW:
	case CONFIG_OPT_DENY:
		if (rules_add(c->rules, opt == CONFIG_OPT_ALLOW, arg, &rwhy) < 0) {
			snprintf(why, whylen, "bad rule '%s': %s", arg, rwhy);
			return -1;
		}
		return 0;
	case CONFIG_OPT_NO_BIND:
	case CONFIG_OPT_NO_UDP:
		(void)rules_command_parse(opt == CONFIG_OPT_NO_BIND ? "bind" : "udp", &cmd);
		rules_disable_command(c->rules, cmd);
		return 0;
	case CONFIG_OPT_HANDSHAKE_TIMEOUT:
		ms = &c->lim.handshake_ms;
		break;
	case CONFIG_OPT_CONNECT_TIMEOUT:
		ms = &c->lim.connect_ms;
		break;
	case CONFIG_OPT_IDLE_TIMEOUT:
		ms = &c->lim.idle_ms;
		break;
	case CONFIG_OPT_DRAIN_TIMEOUT:
		ms = &c->lim.drain_ms;
		break;
	case CONFIG_OPT_BIND_TIMEOUT:
		ms = &c->lim.bind_ms;
		break;
	case CONFIG_OPT_UDP_IDLE_TIMEOUT:
		ms = &c->lim.udp_idle_ms;
		break;
	case CONFIG_OPT_FD_RESERVE:
		if (config_number(arg, SERVER_FD_RESERVE_MAX, &v) < 0) {
			snprintf(why, whylen, "fd-reserve must be 1 to %d, not '%s'",
			    SERVER_FD_RESERVE_MAX, arg);
			return -1;
		}
		c->lim.fd_reserve = (size_t)v;
		return 0;
	case CONFIG_OPT_MAX_SESSIONS:
		if (config_number(arg, SERVER_MAX_SESSIONS_MAX, &v) < 0) {
			snprintf(why, whylen, "max-sessions must be 1 to %d, not '%s'",
			    SERVER_MAX_SESSIONS_MAX, arg);
			return -1;
		}
		c->lim.max_sessions = (size_t)v;
		return 0;
	case CONFIG_OPT_WORKERS:
		if (config_number(arg, SERVER_WORKERS_MAX, &v) < 0) {
			snprintf(why, whylen, "workers must be 1 to %d, not '%s'",
			    SERVER_WORKERS_MAX, arg);
			return -1;
		}
		c->workers = (unsigned)v;
		return 0;
	case CONFIG_OPT_ACCEPT:
		if (strcmp(arg, "reuseport") != 0 && strcmp(arg, "shared") != 0) {
			snprintf(why, whylen, "accept is reuseport or shared, not '%s'", arg);
			return -1;
		}
		c->accept_shared = strcmp(arg, "shared") == 0;
		return 0;
	case CONFIG_OPT_RELAY:
		if (config_relay(&c->lim, arg) != 0) {
			snprintf(why, whylen, "relay is auto, copy or splice, not '%s'", arg);
			return -1;
		}
		return 0;
	case CONFIG_OPT_CONFIG:
		/* One level: a file that names files is a loop waiting to happen. */
		if (in_file) {
			snprintf(why, whylen, "'config' is not allowed inside a config file");
			return -1;
		}
		return config_read_file(c, arg, why, whylen);
	case CONFIG_OPT_LOG:
		free(c->log_path);
		if ((c->log_path = strdup(arg)) == NULL)
			goto nomem;
		c->syslog = false;	/* the later one wins */
		return 0;
	case CONFIG_OPT_SYSLOG:
		free(c->log_path);
		c->log_path = NULL;
		c->syslog = true;
		return 0;
	case CONFIG_OPT_OUTGOING:
		/* A later address of a family replaces an earlier one. */
		if (outgoing_parse(&c->lim.out, arg) < 0) {
			snprintf(why, whylen, "outgoing is an IPv4 or IPv6 address of this "
			    "host (no port, not a wildcard, multicast or broadcast), not '%s'", arg);
			return -1;
		}
		return 0;
	case CONFIG_OPT_PROXY_PROTOCOL:
		c->lim.proxy_protocol = true;
		return 0;
	case CONFIG_OPT_METRICS: {
		char reason[CONFIG_REASON_MAX];
		bool every = false;

		if (config_listen_parse(arg, &c->metrics.addr, &every, reason, sizeof(reason)) < 0) {
			snprintf(why, whylen, "bad metrics address '%s': %s", arg, reason);
			return -1;
		}
		if (every) {
			snprintf(why, whylen, "bad metrics address '%s': one address, "
			    "not every one (':PORT')", arg);
			return -1;
		}
		c->has_metrics = true;	/* a later one replaces it */
		return 0;
	}
	case CONFIG_OPT_PROXY_PROTOCOL_FROM:
		if (c->lim.npp_from == SERVER_PP_FROM_MAX) {
			snprintf(why, whylen, "proxy-protocol-from: at most %d networks",
			    SERVER_PP_FROM_MAX);
			return -1;
		}
		if (s5_cidr_parse(arg, &c->lim.pp_from[c->lim.npp_from], &rwhy) < 0) {
			snprintf(why, whylen, "proxy-protocol-from: bad network '%s': %s",
			    arg, rwhy);
			return -1;
		}
		c->lim.npp_from++;
		return 0;
	case CONFIG_OPT_VERBOSE:
		c->log_level = LOG_LEVEL_VERBOSE;
		return 0;
	case CONFIG_OPT_QUIET:
		c->log_level = LOG_LEVEL_ERROR;
		return 0;
	default:
		snprintf(why, whylen, "option not allowed here");
		return -1;
	}
	if (config_number(arg, SERVER_TIMEOUT_MAX_MS, ms) < 0) {
		snprintf(why, whylen, "a timeout is 1 to %d milliseconds, not '%s'",
		    SERVER_TIMEOUT_MAX_MS, arg);
		return -1;
	}
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
	return -1;
}

/* --- config files ------------------------------------------------------- */

/* The option called name (len bytes, exactly), or NULL. */
static const struct option *
config_find(const char *name, size_t len)
{
	const struct option *o;

	for (o = config_longopts; o->name != NULL; o++)
		if (strncmp(o->name, name, len) == 0 && o->name[len] == '\0')
			return o;
	return NULL;
}

static bool
config_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * One line, newline stripped: "name" or "name value". A '#' that begins a
 * word begins a comment, as in sh(1): "users users  # alice" names the
 * file "users", "users a#b" the file "a#b".
 */
static int
config_line(struct config *c, char *line, char *why, size_t whylen)
{
	const struct option *o;
	char *name = line, *val, *end;

	while (config_blank(*name))
		name++;
	if (*name == '\0' || *name == '#')
		return 0;
	for (val = name; *val != '\0' && !config_blank(*val); val++)
		;
	if (*val != '\0')
		*val++ = '\0';
	while (config_blank(*val))
		val++;
	/* val follows a blank (or is empty), so a '#' there is a comment too. */
	for (end = val; *end != '\0'; end++)
		if (*end == '#' && (end == val || config_blank(end[-1])))
			break;
	for (; end > val && config_blank(end[-1]); end--)
		;
	*end = '\0';
	if ((o = config_find(name, strlen(name))) == NULL ||
	    o->val == CONFIG_OPT_HELP || o->val == CONFIG_OPT_VERSION) {
		config_unknown(name, name, strlen(name), true, why, whylen);
		return -1;
	}
	if (o->has_arg == required_argument && *val == '\0') {
		snprintf(why, whylen, "'%s' needs a value", name);
		return -1;
	}
	if (o->has_arg == no_argument && *val != '\0') {
		snprintf(why, whylen, "'%s' takes no value", name);
		return -1;
	}
	return config_apply(c, o->val, o->has_arg == no_argument ? NULL : val,
	    true, why, whylen);
}

static int
config_read_file(struct config *c, const char *path, char *why, size_t whylen)
{
	char *line = NULL, reason[CONFIG_REASON_MAX];
	size_t cap = 0, lineno = 0;
	struct stat st;
	ssize_t len;
	FILE *f;
	int r = 0;

	if (*path == '\0') {
		snprintf(why, whylen, "--config: an empty file name");
		return -1;
	}
	if ((f = textfile_open(path, &st, why, whylen)) == NULL)
		return -1;
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (strlen(line) != (size_t)len) {
			snprintf(why, whylen, "%s:%zu: NUL byte in line", path, lineno);
			r = -1;
			break;
		}
		if (config_line(c, line, reason, sizeof(reason)) < 0) {
			snprintf(why, whylen, "%s:%zu: %s", path, lineno, reason);
			r = -1;
			break;
		}
	}
	if (r == 0 && ferror(f)) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		r = -1;
	}
	free(line);
	fclose(f);
	return r;
}

/* --- the whole configuration -------------------------------------------- */

int
config_build(const struct config_args *args, struct config *c,
    char *why, size_t whylen)
{
	char reason[2 * CONFIG_REASON_MAX], text[S5_ADDR_TEXT_MAX];
	size_t i;

	memset(c, 0, sizeof(*c));
	c->log_level = -1;
	c->lim.handshake_ms = SERVER_HANDSHAKE_TIMEOUT_MS;
	c->lim.connect_ms = SERVER_CONNECT_TIMEOUT_MS;
	c->lim.idle_ms = SERVER_IDLE_TIMEOUT_MS;
	c->lim.drain_ms = SERVER_DRAIN_TIMEOUT_MS;
	c->lim.max_sessions = SERVER_MAX_SESSIONS;
	c->lim.bind_ms = SERVER_BIND_TIMEOUT_MS;
	c->lim.udp_idle_ms = SERVER_UDP_IDLE_TIMEOUT_MS;
	c->lim.fd_reserve = SERVER_FD_RESERVE;
	(void)config_relay(&c->lim, SERVER_RELAY_DEFAULT);
	c->accept_shared = strcmp(SERVER_ACCEPT_DEFAULT, "shared") == 0;
	if (rules_new(&c->rules) < 0) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < args->n; i++) {
		const struct config_item *it = &args->items[i];

		if (config_apply(c, it->opt, it->arg, false, reason, sizeof(reason)) < 0) {
			/* A config file's errors carry their own FILE:LINE. */
			if (it->opt == CONFIG_OPT_CONFIG)
				snprintf(why, whylen, "%s", reason);
			else
				snprintf(why, whylen, "%s (try 'socksifyd --help')", reason);
			config_free(c);
			return -1;
		}
	}
	c->listen_given = c->nlisten > 0;
	if (c->nlisten == 0 &&
	    config_listen_add(c, SERVER_DEFAULT_LISTEN, why, whylen) < 0) {
		config_free(c);
		return -1;
	}
	if (c->lim.npp_from > 0 && !c->lim.proxy_protocol) {
		snprintf(why, whylen, "proxy-protocol-from without proxy-protocol "
		    "(try 'socksifyd --help')");
		config_free(c);
		return -1;
	}
	/* The metrics endpoint on a listener's port: its bind would fail
	 * with "Address already in use", as if another program held it. */
	if (c->has_metrics && config_listen_clash(c, &c->metrics.addr, false, reason,
	    sizeof(reason))) {
		(void)s5_addr_format(&c->metrics.addr, text, sizeof(text));
		snprintf(why, whylen, "bad metrics address '%s': a listen address has "
		    "that port", text);
		config_free(c);
		return -1;
	}
	/* Whom a header is believed from: the host itself, unless told. */
	if (c->lim.npp_from == 0) {
		int n = rules_parse_list(SERVER_LOOPBACK_NETS, c->lim.pp_from, SERVER_PP_FROM_MAX);

		c->lim.npp_from = n > 0 ? (size_t)n : 0;
	}
	return 0;
}

void
config_free(struct config *c)
{
	c->nlisten = 0;
	free(c->users_path);
	c->users_path = NULL;
	free(c->log_path);
	c->log_path = NULL;
	rules_free(c->rules);
	c->rules = NULL;
}
