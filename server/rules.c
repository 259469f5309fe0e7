/*
 * rules.c: the --allow/--deny rule set, the per-command switches and the
 * built-in protection of the host's own addresses.
 *
 * A rule is "allow" or "deny" followed by up to four clauses, in any order,
 * each at most once:
 *	from CIDR		the client's address ("*": any)
 *	user NAME		the user who logged in (RFC 1929); a session
 *				without a login matches no user clause
 *	to CIDR[:PORT|:LO-HI]	the destination ("*" or "*:25": any address);
 *				IPv6 with a port in brackets: [::1]:443
 *	to NAME[:PORT|:LO-HI]	the destination name as the client wrote it
 *				(case and a trailing dot do not count);
 *				".SUFFIX" is SUFFIX and every name under it
 *	cmd NAME[,NAME...]	connect, bind, udp
 * A clause left out matches everything. The checks run at four moments
 * (accept, request, the requested name before it is resolved, each resolved
 * address) and an earlier one only refuses when the full evaluation would
 * surely refuse: a rule whose remaining clauses cannot be judged yet is
 * skipped if it denies, and lets the client on if it allows, to be judged
 * again once they can. A name rule still matches by the name when each
 * resolved address is judged, but never opens a protected address (a name
 * can be made to resolve to anything: the host's loopback included).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defaults.h"
#include "log.h"
#include "rules.h"

struct rule {
	bool allow;
	bool has_from, has_to, has_cmd, has_user;
	bool from_any, to_any;		/* "*" */
	bool to_name;			/* to NAME: name[] (normalized), not to */
	struct s5_cidr from, to;
	char name[S5_DOMAIN_MAX + 2];	/* ".corp" or "db.corp" */
	char user[S5_CRED_MAX + 1];
	uint16_t port_lo, port_hi;	/* 0-65535 when not given */
	uint8_t cmds;			/* bit (1 << S5_CMD_*) */
};

enum {
	RULES_PROTECT_MAX = 16,		/* entries of SERVER_PROTECTED_NETS */
	RULES_HOST_ADDRS_MAX = SERVER_HOST_ADDRS_MAX,	/* the host's own addresses */
	RULES_PORT_MAX = 65535,
	RULES_CAP_INITIAL = 16,		/* rules; the array doubles */
	RULES_CMD_BITS = 8,		/* S5_CMD_* fit a uint8_t bit set */
};

struct rules {
	struct rule *v;
	size_t n, cap;
	uint8_t disabled;		/* bit (1 << S5_CMD_*): switched off */
	struct s5_cidr prot[RULES_PROTECT_MAX + RULES_HOST_ADDRS_MAX];
	size_t nprot;			/* 0: no built-in protection */
	size_t nstatic;			/* of which SERVER_PROTECTED_NETS */
};

static struct rules rules_empty;	/* before start-up sets one */
static struct rules *rules_cur;
/* A worker's own view (main.c publishes each new set to every worker). */
static _Thread_local const struct rules *rules_view;

const struct rules *
rules_current(void)
{
	if (rules_view != NULL)
		return rules_view;
	return rules_cur != NULL ? rules_cur : &rules_empty;
}

void
rules_use(const struct rules *r)
{
	rules_view = r;
}

struct rules *
rules_clone(const struct rules *r)
{
	struct rules *c = malloc(sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *r;
	if ((c->v = malloc((r->cap ? r->cap : 1) * sizeof(*c->v))) == NULL) {
		free(c);
		return NULL;
	}
	if (r->n > 0)
		memcpy(c->v, r->v, r->n * sizeof(*c->v));
	return c;
}

void
rules_set_current(struct rules *r)
{
	rules_free(rules_cur);
	rules_cur = r;
}

int
rules_new(struct rules **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return -ENOMEM;
	return 0;
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	free(r->v);
	free(r);
}

/* --- parsing ------------------------------------------------------------ */

static int
rules_fail(const char **why, const char *msg)
{
	*why = msg;
	return -EINVAL;
}

/* A decimal port, 0-65535, digits only. */
static int
rules_parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > sizeof("65535") - 1)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > RULES_PORT_MAX)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int
rules_parse_ports(const char *s, struct rule *ru, const char **why)
{
	const char *dash = strchr(s, '-');

	if (dash == NULL) {
		if (rules_parse_port(s, strlen(s), &ru->port_lo) < 0)
			return rules_fail(why, "bad port");
		ru->port_hi = ru->port_lo;
		return 0;
	}
	if (rules_parse_port(s, (size_t)(dash - s), &ru->port_lo) < 0 ||
	    rules_parse_port(dash + 1, strlen(dash + 1), &ru->port_hi) < 0 ||
	    ru->port_lo > ru->port_hi)
		return rules_fail(why, "bad port range");
	return 0;
}

/* "*", or a CIDR; *any set for "*". */
static int
rules_parse_net(const char *s, bool *any, struct s5_cidr *c, const char **why)
{
	if (strcmp(s, "*") == 0) {
		*any = true;
		return 0;
	}
	*any = false;
	if (s5_cidr_parse(s, c, why) < 0)
		return -EINVAL;
	return 0;
}

/* to: "*", "*:P", "CIDR", "CIDR:P", "[V6CIDR]:P", bare "V6CIDR". */
static int
rules_parse_to(char *s, struct rule *ru, const char **why)
{
	char *colon = NULL;

	ru->port_lo = 0;
	ru->port_hi = RULES_PORT_MAX;
	if (s[0] == '[') {
		char *end = strchr(s, ']');

		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return rules_fail(why, "bad bracketed address");
		*end = '\0';
		if (end[1] == ':')
			colon = end + 1;
		s++;
	} else if ((colon = strchr(s, ':')) != NULL && strchr(colon + 1, ':') != NULL) {
		colon = NULL;		/* IPv6 without a port */
	}
	if (colon != NULL) {
		*colon = '\0';
		if (rules_parse_ports(colon + 1, ru, why) < 0)
			return -EINVAL;
	}
	if (rules_parse_net(s, &ru->to_any, &ru->to, why) == 0)
		return 0;
	/* Not an address: a host name, or ".SUFFIX". */
	if (s[0] != '[' && strchr(s, ':') == NULL &&
	    s5_name_normalize(s, ru->name, sizeof(ru->name))) {
		ru->to_name = true;
		return 0;
	}
	return rules_fail(why, "'to' takes a CIDR, a host name or a .SUFFIX");
}

static int
rules_parse_cmds(char *s, struct rule *ru, const char **why)
{
	char *save = NULL, *name;

	for (name = strtok_r(s, ",", &save); name != NULL;
	    name = strtok_r(NULL, ",", &save)) {
		uint8_t cmd;

		if (rules_command_parse(name, &cmd) < 0)
			return rules_fail(why, "unknown command (connect, bind or udp)");
		ru->cmds |= (uint8_t)(1u << cmd);
	}
	if (ru->cmds == 0)
		return rules_fail(why, "empty command list");
	return 0;
}

int
rules_command_parse(const char *name, uint8_t *cmd)
{
	if (strcmp(name, "connect") == 0)
		*cmd = S5_CMD_CONNECT;
	else if (strcmp(name, "bind") == 0)
		*cmd = S5_CMD_BIND;
	else if (strcmp(name, "udp") == 0)
		*cmd = S5_CMD_UDP_ASSOCIATE;
	else
		return -EINVAL;
	return 0;
}

static int
rules_parse(char *text, struct rule *ru, const char **why)
{
	static const char blanks[] = " \t";
	char *save = NULL, *key, *val;
	int r;

	for (key = strtok_r(text, blanks, &save); key != NULL;
	    key = strtok_r(NULL, blanks, &save)) {
		if ((val = strtok_r(NULL, blanks, &save)) == NULL)
			return rules_fail(why, "a rule clause needs a value");
		if (strcmp(key, "from") == 0) {
			if (ru->has_from)
				return rules_fail(why, "'from' given twice");
			ru->has_from = true;
			r = rules_parse_net(val, &ru->from_any, &ru->from, why);
		} else if (strcmp(key, "to") == 0) {
			if (ru->has_to)
				return rules_fail(why, "'to' given twice");
			ru->has_to = true;
			r = rules_parse_to(val, ru, why);
		} else if (strcmp(key, "cmd") == 0) {
			if (ru->has_cmd)
				return rules_fail(why, "'cmd' given twice");
			ru->has_cmd = true;
			r = rules_parse_cmds(val, ru, why);
		} else if (strcmp(key, "user") == 0) {
			if (ru->has_user)
				return rules_fail(why, "'user' given twice");
			if (strlen(val) > S5_CRED_MAX)
				return rules_fail(why, "a user name has at most 255 bytes");
			ru->has_user = true;
			strcpy(ru->user, val);
			r = 0;
		} else {
			return rules_fail(why, "unknown rule clause (from, user, to or cmd)");
		}
		if (r < 0)
			return r;
	}
	/* An empty --allow "$RULE" would match every session: a rule that
	 * means everything says so. */
	if (!ru->has_from && !ru->has_to && !ru->has_cmd && !ru->has_user)
		return rules_fail(why, "an empty rule (one that matches everything "
		    "says so: 'from *')");
	return 0;
}

int
rules_add(struct rules *r, bool allow, const char *text, const char **why)
{
	struct rule ru = { .allow = allow };
	char *copy;
	int err;

	if (r->n == SERVER_RULES_MAX)
		return rules_fail(why, "too many rules");
	if ((copy = strdup(text)) == NULL)
		return *why = "out of memory", -ENOMEM;
	err = rules_parse(copy, &ru, why);
	free(copy);
	if (err < 0)
		return err;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : RULES_CAP_INITIAL;
		struct rule *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL)
			return *why = "out of memory", -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = ru;
	return 0;
}

void
rules_disable_command(struct rules *r, uint8_t cmd)
{
	r->disabled |= (uint8_t)(1u << cmd);
}

/* Parses one comma-separated list of CIDRs into out; count, or -EINVAL. */
int
rules_parse_list(const char *list, struct s5_cidr *out, size_t max)
{
	const char *item, *why;
	size_t len, n = 0;
	char tmp[S5_ADDR_TEXT_MAX];

	while (s5_list_next(&list, &item, &len)) {
		if (n == max || len >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, item, len);
		tmp[len] = '\0';
		if (s5_cidr_parse(tmp, &out[n], &why) < 0)
			return -EINVAL;
		n++;
	}
	return (int)n;
}

/* The prefix length of a netmask of n bytes (its leading ones). */
static uint8_t
rules_mask_bits(const uint8_t *mask, size_t n)
{
	uint8_t bits = 0;
	size_t i;

	for (i = 0; i < n && mask[i] == 0xff; i++)
		bits += 8;
	if (i < n)
		for (uint8_t b = mask[i]; b & 0x80; b = (uint8_t)(b << 1))
			bits++;
	return bits;
}

/* c: the network of len bytes at ip, bits long, the rest zeroed. */
static void
rules_cidr_set(struct s5_cidr *c, const uint8_t *ip, size_t len, uint8_t bits)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	c->v6 = len == 16;
	c->bits = bits;
	memcpy(c->net, ip, len);
	for (i = bits / 8; i < len; i++)
		c->net[i] &= i == bits / 8 ? (uint8_t)(0xff00u >> (bits % 8)) : 0;
}

/*
 * The host's own interface addresses, each as a host route: a service bound
 * to 0.0.0.0 is as much the host's as one on loopback, and the daemon's own
 * listener is among them (a client must not chain sessions through it). An
 * IPv4 prefix on a loopback interface is the host's whole (Linux makes every
 * address of 10.9.0.1/24 on lo local), so it is protected whole.
 * Read at start-up, on every SIGHUP and whenever the kernel reports an
 * address change (rules_refresh_host). -1 when they cannot be read (the
 * list is left as it was), else how many did not fit.
 */
static int
rules_protect_interfaces(struct rules *r)
{
	struct ifaddrs *list, *ifa;
	struct s5_addr a;
	struct s5_cidr *c;
	size_t max = RULES_PROTECT_MAX + RULES_HOST_ADDRS_MAX, len;
	struct s5_addr m;
	uint8_t bits;
	int lost = 0;

	if (getifaddrs(&list) != 0)
		return -1;
	r->nprot = r->nstatic;
	for (ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL ||
		    s5_addr_from_sockaddr(&a, ifa->ifa_addr,
		    ifa->ifa_addr->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0)
			continue;
		if (r->nprot == max) {
			lost++;
			continue;
		}
		c = &r->prot[r->nprot++];
		len = a.atyp == S5_ATYP_IPV4 ? 4 : 16;
		bits = (uint8_t)(len * 8);
		/* IPv4 only (an IPv6 prefix on lo is routed there, not made
		 * local), and as the kernel's fib_add_ifaddr() makes it local:
		 * a prefix whose network is outside 0.0.0.0/8, any length (so
		 * never a /0, which would deny every destination). A prefix
		 * added with noprefixroute is not told apart here (netlink
		 * would say it), and is protected whole. */
		if ((ifa->ifa_flags & IFF_LOOPBACK) && len == 4 &&
		    ifa->ifa_netmask != NULL && ifa->ifa_netmask->sa_family == AF_INET &&
		    s5_addr_from_sockaddr(&m, ifa->ifa_netmask,
		    sizeof(struct sockaddr_in)) == 0 && (a.u.ip4[0] & m.u.ip4[0]) != 0)
			bits = rules_mask_bits(m.u.ip4, 4);
		rules_cidr_set(c, len == 4 ? a.u.ip4 : a.u.ip6, len, bits);
	}
	freeifaddrs(list);
	return lost;
}

/* How many host addresses did not fit, for one warning. */
static void
rules_warn_lost(int lost)
{
	if (lost > 0)
		log_warn("warning: %d host addresses beyond the first %d are not "
		    "protected", lost, RULES_HOST_ADDRS_MAX);
}

int
rules_protect_host(struct rules *r)
{
	int n = rules_parse_list(SERVER_PROTECTED_NETS, r->prot, RULES_PROTECT_MAX);

	if (n < 0)
		return n;
	r->nprot = r->nstatic = (size_t)n;
	rules_warn_lost(rules_protect_interfaces(r));
	return 0;
}

int
rules_refresh_host(struct rules *r)
{
	int lost;

	if (r->nstatic == 0)
		return 0;
	if ((lost = rules_protect_interfaces(r)) < 0)
		return -1;
	rules_warn_lost(lost);
	return (int)(r->nprot - r->nstatic);
}

bool
rules_addr_is_loopback(const struct sockaddr *sa)
{
	struct s5_cidr lo[RULES_PROTECT_MAX];
	int i, n = rules_parse_list(SERVER_LOOPBACK_NETS, lo, RULES_PROTECT_MAX);

	for (i = 0; i < n; i++)
		if (s5_cidr_match(&lo[i], sa))
			return true;
	return false;
}

/* --- matching ----------------------------------------------------------- */

static bool
rules_match_net(bool any, const struct s5_cidr *c, const struct sockaddr *sa)
{
	return any || s5_cidr_match(c, sa);
}

static bool
rules_match_from(const struct rule *ru, const struct rules_who *w)
{
	return !ru->has_from || rules_match_net(ru->from_any, &ru->from, w->client);
}

/* The user clause, once the login is known (w->user NULL: no login). */
static bool
rules_match_user(const struct rule *ru, const struct rules_who *w)
{
	return !ru->has_user || (w->user != NULL && strcmp(ru->user, w->user) == 0);
}

static bool
rules_match_cmd(const struct rule *ru, uint8_t cmd)
{
	return !ru->has_cmd || (cmd < RULES_CMD_BITS && (ru->cmds & (1u << cmd)) != 0);
}

static uint16_t
rules_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

/* The to clause for address dst, asked for as w->name (NULL: an address). */
static bool
rules_match_to(const struct rule *ru, const struct rules_who *w, const struct sockaddr *dst)
{
	uint16_t port;

	if (!ru->has_to)
		return true;
	port = rules_port(dst);
	if (port < ru->port_lo || port > ru->port_hi)
		return false;
	if (ru->to_name)
		return w->name != NULL && s5_name_match(ru->name, w->name, strlen(w->name));
	return rules_match_net(ru->to_any, &ru->to, dst);
}

/* Is network c inside range p (same family, at least as long a prefix)? */
static bool
rules_net_within(const struct s5_cidr *c, const struct s5_cidr *p)
{
	size_t full = p->bits / 8;
	unsigned rem = p->bits % 8;

	if (c->v6 != p->v6 || c->bits < p->bits)
		return false;
	if (memcmp(c->net, p->net, full) != 0)
		return false;
	return rem == 0 ||
	    ((c->net[full] ^ p->net[full]) & (uint8_t)(0xff00u >> rem)) == 0;
}

/* The protected range dst falls in, or NULL. */
static const struct s5_cidr *
rules_protected(const struct rules *r, const struct sockaddr *dst)
{
	size_t i;

	for (i = 0; i < r->nprot; i++)
		if (s5_cidr_match(&r->prot[i], dst))
			return &r->prot[i];
	return NULL;
}

bool
rules_client_ok(const struct rules *r, const struct sockaddr *client)
{
	const struct rules_who w = { .client = client };
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct rule *ru = &r->v[i];

		if (!rules_match_from(ru, &w))
			continue;
		/* The login is not known yet: a user clause is judged later. */
		if (!ru->has_to && !ru->has_cmd && !ru->has_user)
			return ru->allow;
		if (ru->allow)
			return true;
	}
	return true;
}

bool
rules_command_enabled(const struct rules *r, uint8_t cmd)
{
	return cmd >= RULES_CMD_BITS || (r->disabled & (1u << cmd)) == 0;
}

bool
rules_command_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd)
{
	size_t i;

	if (!rules_command_enabled(r, cmd))
		return false;
	for (i = 0; i < r->n; i++) {
		const struct rule *ru = &r->v[i];

		if (!rules_match_from(ru, w) || !rules_match_user(ru, w) ||
		    !rules_match_cmd(ru, cmd))
			continue;
		if (!ru->has_to)
			return ru->allow;
		if (ru->allow)
			return true;
	}
	return true;
}

bool
rules_name_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd,
    uint16_t port)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct rule *ru = &r->v[i];

		if (!rules_match_from(ru, w) || !rules_match_user(ru, w) ||
		    !rules_match_cmd(ru, cmd))
			continue;
		if (ru->has_to && (port < ru->port_lo || port > ru->port_hi))
			continue;
		if (!ru->has_to || ru->to_name) {
			if (ru->has_to &&
			    !s5_name_match(ru->name, w->name, strlen(w->name)))
				continue;
			return ru->allow;
		}
		/* An address clause: judged once the name is resolved. */
		if (ru->allow)
			return true;
	}
	return true;
}

/*
 * A protected address (the host's loopback, "this network", link-local and
 * the cloud metadata address) is reached only through an allow rule that
 * names it: one whose destination lies inside that protected range. A broad
 * "allow to *" does not open the host's own services to the world, nor does
 * a rule naming a host (its name may resolve anywhere).
 */
bool
rules_dest_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd,
    const struct sockaddr *dst)
{
	const struct s5_cidr *prot = rules_protected(r, dst);
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct rule *ru = &r->v[i];

		if (!rules_match_from(ru, w) || !rules_match_user(ru, w) ||
		    !rules_match_cmd(ru, cmd) || !rules_match_to(ru, w, dst))
			continue;
		if (prot != NULL && ru->allow && (!ru->has_to || ru->to_any ||
		    ru->to_name || !rules_net_within(&ru->to, prot)))
			continue;
		return ru->allow;
	}
	return prot == NULL;
}
