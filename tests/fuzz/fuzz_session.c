/*
 * fuzz_session.c: whole socksifyd sessions, through the real session.c,
 * relay.c, bind.c, udp.c, rules.c, users.c and log.c, in one process. The
 * sockets are netshim.c's, the loop and the resolver fake.h's; the fuzz
 * input plays the clients, the targets, the name server and the clock.
 *
 * Input: FLAGS, then operations, each one byte (low nibble: what, high
 * nibble: an argument) and for some a length byte and that many bytes.
 * After each operation the loop runs until nothing is ready, except after
 * a peer's operation with FUZZ_ARG_BATCH set: then the next one's events
 * come in the same round, as epoll_wait() reports several at once. A
 * datagram followed by another of the same op waits for it too, so a
 * burst is read in one wakeup (recvmmsg()) and sent on in runs
 * (sendmmsg()); any other op between two lets the loop run.
 * FLAGS: bits 0-2 a rule set (fuzz_rule_sets), bit 3 username/password
 * required, bit 4 -v logging, bit 5 --max-sessions 1, bits 6-7 the first
 * client's addresses (fuzz_addr). After the input every peer sends FIN
 * and takes whatever it is sent, and the clock runs until no timer is
 * left. Checked then, besides ASan, UBSan and LSan:
 *  - every session ended: none counted, no fd watched, no timer armed, no
 *    lookup pending, every socket closed exactly once, and the loop was
 *    never busy with a descriptor that stayed ready (netshim.h lists the
 *    calls that are bugs whenever they happen);
 *  - each client got the replies its bytes call for: the method the
 *    greeting asks, the RFC 1929 verdict of the users table, a reply with
 *    REP 00..08 naming the socket the server really used (07 for a
 *    switched-off command, 02 for one the rules deny), and after a refusal
 *    nothing but the server's FIN;
 *  - no open relay: a client the rules refuse hears nothing, and every
 *    address connected to, sent a datagram, or accepted for BIND is one
 *    the rules let that client reach;
 *  - relayed streams are the other side's bytes, in order, none lost or
 *    repeated: a prefix always, all of them once the FIN was passed on;
 *  - UDP ASSOCIATE relays only the client's datagrams, unchanged, to the
 *    address in their header, and wraps replies in a header naming their
 *    sender;
 *  - every log line is one line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>

#include "fuzz.h"
#include "config.h"
#include "fake.h"
#include "log.h"
#include "netshim.h"
#include "rules.h"
#include "server.h"
#include "udp.h"
#include "users.h"

enum {
	FUZZ_CLIENTS_MAX = 3,
	FUZZ_ROUNDS_MAX = 1000,		/* loop rounds per settle; more is a busy loop */
	FUZZ_END_STEPS_MAX = 1000,	/* timers fired at the end before all is over */
	FUZZ_TICK_MS = 8,		/* OP_TIME moves the clock this << arg */
	FUZZ_ARG_BATCH = 8,		/* a peer's op: the loop does not run after it */
	FUZZ_LISTEN_PORT = 1080,
	FUZZ_CLIENT_PORT = 50000,
	FUZZ_PEER_PORT = 51000,		/* BIND's incoming connections */
	FUZZ_UDP_PORT = 5353,		/* the client's UDP port, or this + 1 */
	FUZZ_WINDOW_ANY = 255,		/* an OP_*WINDOW byte that opens it fully */
};

enum fuzz_op {
	OP_OPEN,			/* a new client; arg: fuzz_addr variant */
	OP_SEND,			/* client arg sends LEN bytes */
	OP_FIN,
	OP_RST,
	OP_WINDOW,			/* client arg takes W more bytes */
	OP_CONNECT,			/* client arg's pending connect ends: arg >> 2 */
	OP_TSEND,			/* client arg's target sends LEN bytes */
	OP_TFIN,
	OP_TRST,
	OP_TWINDOW,
	OP_RESOLVE,			/* the oldest lookup: enum fake_answer arg */
	OP_TIME,			/* FUZZ_TICK_MS << arg, or 0: to the next timer */
	OP_BIND_PEER,			/* a connection at client arg's BIND listener */
	OP_UDP_CLIENT,			/* client arg sends a datagram of LEN bytes */
	OP_UDP_TARGET,			/* a datagram to client arg's outgoing socket */
	OP_PLAN,			/* the next calls fail: struct shim_plan bits */
};

struct fuzz {
	const uint8_t *p;		/* the input not read yet */
	size_t n;
	uint8_t flags;
	struct server srv;
	int client[FUZZ_CLIENTS_MAX];
	int variant[FUZZ_CLIENTS_MAX];
	size_t nclients;
};

/* "+TEXT" allows, "-TEXT" denies; protect: rules_protect_host(). */
static const struct {
	bool protect, no_bind, no_udp;
	const char *rules[3];
} fuzz_rule_sets[] = {
	{ false, false, false, { NULL } },
	{ false, true, true, { NULL } },
	{ false, false, false, { "-to 127.0.0.2", "-to ::1 cmd connect", NULL } },
	{ true, false, false, { NULL } },
	{ true, false, false, { "+to 127.0.0.0/8", "+to ::1", NULL } },
	{ false, false, false, { "-from 127.0.0.1", NULL } },
	{ false, false, false, { "-cmd bind", "+from ::1 cmd udp", "-cmd udp" } },
	{ false, false, false, { "-to *:1-1023", "+to 10.0.0.0/8", NULL } },
};

#define FUZZ_USERS	"user:pass\nalice:s3cr3t:with:colons\n" \
	"hashed:$5$rounds=1000$fuzzsalt0123$aK25bI4dDnl5EFGEx6864LKvuXRATRuqE3ySrllBzhC\n"

/* main.c's hooks. The count and the list of sessions agree. */
void
listener_resume_stalled(struct server *srv)
{
	(void)srv;
}

void
server_session_born(struct server *srv)
{
	FUZZ_CHECK(srv->nsessions > 0 && srv->sessions != NULL);
}

void
server_fds_extra(struct server *srv, long n)
{
	(void)srv;
	(void)n;
}

void
server_session_gone(struct server *srv)
{
	FUZZ_CHECK((srv->nsessions == 0) == (srv->sessions == NULL));
}

void
server_orphan_gone(struct server *srv)
{
	(void)srv;
}

/* --- input -------------------------------------------------------------- */

static bool
fuzz_byte(struct fuzz *f, uint8_t *b)
{
	if (f->n == 0)
		return false;
	*b = *f->p++;
	f->n--;
	return true;
}

/* A length byte, then up to that many bytes (fewer at the end). */
static size_t
fuzz_chunk(struct fuzz *f, const uint8_t **p)
{
	uint8_t len = 0;
	size_t n;

	(void)fuzz_byte(f, &len);
	n = len < f->n ? len : f->n;
	*p = f->p;
	f->p += n;
	f->n -= n;
	return n;
}

/* --- addresses ---------------------------------------------------------- */

/*
 * A client as the kernel shows it: 0 IPv4, 1 IPv6, 2 IPv4 on a dual-stack
 * listener (v4-mapped), 3 IPv6 link-local with a scope. local: the
 * listener's end, else the client's; port picks the port.
 */
static socklen_t
fuzz_addr(int variant, bool local, uint16_t port, struct sockaddr_storage *ss)
{
	static const char *const ip[][2] = {
		{ "127.0.0.1", "127.0.0.1" },
		{ "::1", "::1" },
		{ "::ffff:127.0.0.1", "::ffff:127.0.0.1" },
		{ "fe80::2", "fe80::1" },
	};
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	const char *text = ip[variant & 3][local ? 0 : 1];

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
		abort();
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_scope_id = (variant & 3) == 3 ? 2 : 0;
	return sizeof(*sin6);
}

/* An address of family: the client's IP in it, or a stranger's. */
static socklen_t
fuzz_source(const struct fuzz *f, int idx, int family, bool stranger,
    uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	socklen_t len = fuzz_addr(f->variant[idx], false, port, ss);

	/* The v4-mapped client reaches an IPv4 relay as plain IPv4. */
	if (family == AF_INET && ss->ss_family == AF_INET6) {
		struct in_addr v4;

		memcpy(&v4, sin6->sin6_addr.s6_addr + 12, sizeof(v4));
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = v4;
		len = sizeof(*sin);
	}
	if (stranger && ss->ss_family == AF_INET)
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK + 8);
	else if (stranger)
		sin6->sin6_addr.s6_addr[15] ^= 8;
	return len;
}

/* Only the IP: s5_addr_from_sockaddr() makes v4-mapped plain IPv4. */
static bool
fuzz_same_ip(const struct sockaddr *x, socklen_t xlen, const struct sockaddr *y,
    socklen_t ylen)
{
	struct s5_addr a, b;

	if (s5_addr_from_sockaddr(&a, x, xlen) < 0 ||
	    s5_addr_from_sockaddr(&b, y, ylen) < 0 || a.atyp != b.atyp)
		return false;
	return a.atyp == S5_ATYP_IPV4 ? memcmp(a.u.ip4, b.u.ip4, 4) == 0 :
	    memcmp(a.u.ip6, b.u.ip6, 16) == 0;
}

/* An address and port as the wire carries them, v4-mapped made plain. */
static bool
fuzz_addr_is(const struct s5_addr *wire, const struct sockaddr_storage *ss,
    socklen_t len)
{
	struct sockaddr_storage tmp;
	struct s5_addr a, b;
	int n;

	if ((n = s5_addr_to_sockaddr(wire, &tmp)) < 0 ||
	    s5_addr_from_sockaddr(&a, (struct sockaddr *)&tmp, (size_t)n) < 0 ||
	    s5_addr_from_sockaddr(&b, (const struct sockaddr *)ss, len) < 0)
		return false;
	return fuzz_addr_equal(&a, &b);
}

/* --- the server --------------------------------------------------------- */

static const struct users *
fuzz_users(void)
{
	static struct users *u;
	char text[] = FUZZ_USERS, why[256];
	FILE *f;

	if (u != NULL)
		return u;
	if ((f = fmemopen(text, sizeof(text) - 1, "r")) == NULL ||
	    users_read(f, "users", &u, why, sizeof(why)) < 0)
		abort();
	fclose(f);
	return u;
}

static void
fuzz_setup(struct fuzz *f)
{
	const __typeof__(fuzz_rule_sets[0]) *rs = &fuzz_rule_sets[f->flags & 7];
	struct rules *r;
	const char *why;
	size_t i;

	shim_reset();
	memset(&f->srv, 0, sizeof(f->srv));
	f->srv.lim.handshake_ms = SERVER_HANDSHAKE_TIMEOUT_MS;
	f->srv.lim.connect_ms = SERVER_CONNECT_TIMEOUT_MS;
	f->srv.lim.idle_ms = SERVER_IDLE_TIMEOUT_MS;
	f->srv.lim.drain_ms = SERVER_DRAIN_TIMEOUT_MS;
	f->srv.lim.max_sessions = (f->flags & 0x20) ? 1 : SERVER_MAX_SESSIONS;
	f->srv.lim.bind_ms = SERVER_BIND_TIMEOUT_MS;
	f->srv.lim.udp_idle_ms = SERVER_UDP_IDLE_TIMEOUT_MS;
	f->srv.lim.fd_reserve = SERVER_FD_RESERVE;
	f->srv.fd_limit = (size_t)-1 / 2;
	f->srv.users = (f->flags & 8) ? fuzz_users() : NULL;
	if (loop_new(&f->srv.loop) < 0 || resolver_new(&f->srv.resolver, f->srv.loop, 1) < 0)
		abort();
	log_set_level((f->flags & 0x10) ? LOG_LEVEL_VERBOSE : LOG_LEVEL_INFO);
	if (rules_new(&r) < 0 || (rs->protect && rules_protect_host(r) < 0))
		abort();
	if (rs->no_bind)
		rules_disable_command(r, S5_CMD_BIND);
	if (rs->no_udp)
		rules_disable_command(r, S5_CMD_UDP_ASSOCIATE);
	for (i = 0; i < 3 && rs->rules[i] != NULL; i++)
		if (rules_add(r, rs->rules[i][0] == '+', rs->rules[i] + 1, &why) < 0)
			abort();
	rules_set_current(r);
}

static void
fuzz_teardown(struct fuzz *f)
{
	resolver_free(f->srv.resolver);
	loop_free(f->srv.loop);
	udp_server_free(&f->srv);
	rules_set_current(NULL);
	shim_reset();
}

/* Runs the loop until nothing is ready and no timer is due. */
static void
fuzz_settle(struct fuzz *f)
{
	size_t rounds;

	for (rounds = 0; rounds < FUZZ_ROUNDS_MAX; rounds++) {
		bool any = fake_loop_round(f->srv.loop);

		if (!(fake_loop_fire(f->srv.loop) | any))
			return;
	}
	/* A descriptor stays ready and its callback never changes that: the
	 * real daemon would spin at full CPU. */
	FUZZ_CHECK(rounds < FUZZ_ROUNDS_MAX);
}

static void
fuzz_open(struct fuzz *f, int variant)
{
	struct sockaddr_storage local, peer;
	socklen_t llen, plen;
	int fd;

	if (f->nclients == FUZZ_CLIENTS_MAX)
		return;
	llen = fuzz_addr(variant, true, FUZZ_LISTEN_PORT, &local);
	plen = fuzz_addr(variant, false, (uint16_t)(FUZZ_CLIENT_PORT + f->nclients), &peer);
	if ((fd = shim_new_client((struct sockaddr *)&local, llen,
	    (struct sockaddr *)&peer, plen)) < 0)
		return;
	f->client[f->nclients] = fd;
	f->variant[f->nclients++] = variant;
	shim_set_root(fd);
	session_start(&f->srv, fd, (struct sockaddr *)&peer, plen);
}

/* --- operations --------------------------------------------------------- */

/* The newest live socket of kind serving client idx (not the client's own). */
static struct shim_sock *
fuzz_find(const struct fuzz *f, size_t idx, enum shim_kind kind, bool relay)
{
	struct shim_sock *found = NULL, *s;
	size_t i;

	for (i = 0; (s = shim_at(i)) != NULL; i++)
		if (s->root == f->client[idx] && !s->client && s->kind == kind &&
		    s->nclose == 0 && (kind != SHIM_DGRAM || s->bind_called == relay))
			found = s;
	return found;
}

static long
fuzz_window(uint8_t w)
{
	return w == FUZZ_WINDOW_ANY ? SHIM_WINDOW_ANY : (long)w;
}

/*
 * A datagram for client idx's association: to its relay from the client,
 * or to an outgoing socket from the last address that socket sent to (a
 * target answering). arg bit 2: from a stranger instead; bit 3: the
 * client's second port.
 */
static void
fuzz_op_udp(struct fuzz *f, size_t idx, unsigned arg, bool to_relay,
    const uint8_t *p, size_t n)
{
	struct shim_sock *s = fuzz_find(f, idx, SHIM_DGRAM, to_relay);
	const struct shim_dgram *d;
	struct sockaddr_storage from;
	socklen_t len;

	if (s == NULL)
		return;
	for (d = s->dq_out; d != NULL && d->next != NULL; d = d->next)
		;
	if (!to_relay && d != NULL && !(arg & 4)) {
		from = d->addr;
		len = d->addrlen;
	} else {
		len = fuzz_source(f, (int)idx, s->family, !to_relay || (arg & 4),
		    (uint16_t)(FUZZ_UDP_PORT + ((arg >> 3) & 1)), &from);
	}
	shim_dgram_arrive(s, (struct sockaddr *)&from, len, p, n);
}

static void
fuzz_op_bind_peer(struct fuzz *f, size_t idx, unsigned arg)
{
	struct shim_sock *l = fuzz_find(f, idx, SHIM_LISTEN, false);
	struct sockaddr_storage peer;
	socklen_t len;

	if (l == NULL)
		return;
	if ((arg >> 2) == 2) {
		shim_listen_arrive(l, NULL, 0);
		return;
	}
	len = fuzz_source(f, (int)idx, l->family, (arg >> 2) == 1,
	    (uint16_t)(FUZZ_PEER_PORT + (arg >> 2)), &peer);
	shim_listen_arrive(l, (struct sockaddr *)&peer, len);
}

static void
fuzz_op_plan(uint8_t bits)
{
	shim_plan.socket_fails = bits & 0x01;
	shim_plan.connect_fails = bits & 0x02;
	shim_plan.connect_now = bits & 0x04;
	shim_plan.bind_fails = bits & 0x08;
	shim_plan.sendto_fails = bits & 0x10;
	shim_plan.loop_add_fails = bits & 0x20;
	shim_plan.timer_fails = bits & 0x40;
	shim_plan.lookup_fails = bits & 0x80;
}

/* Does one operation; false when the loop is not to run after it. */
static bool
fuzz_op(struct fuzz *f, uint8_t op)
{
	static const int connect_err[] = { 0, ECONNREFUSED, ENETUNREACH, ETIMEDOUT };
	static const unsigned peer_ops = 1u << OP_SEND | 1u << OP_FIN | 1u << OP_RST |
	    1u << OP_WINDOW | 1u << OP_TSEND | 1u << OP_TFIN | 1u << OP_TRST |
	    1u << OP_TWINDOW;
	unsigned arg = op >> 4;
	size_t idx = f->nclients > 0 ? (arg & 3) % f->nclients : 0;
	struct shim_sock *c = f->nclients > 0 ? shim_get(f->client[idx]) : NULL;
	struct shim_sock *t = c != NULL ? fuzz_find(f, idx, SHIM_STREAM, false) : NULL;
	const uint8_t *p;
	size_t n;
	uint8_t b = 0;

	if (c == NULL && (op & 15) != OP_OPEN && (op & 15) != OP_TIME &&
	    (op & 15) != OP_RESOLVE && (op & 15) != OP_PLAN)
		return true;
	switch ((enum fuzz_op)(op & 15)) {
	case OP_OPEN:
		fuzz_open(f, (int)(arg & 3));
		break;
	case OP_SEND:
		n = fuzz_chunk(f, &p);
		shim_peer_send(c, p, n);
		break;
	case OP_FIN:
		shim_peer_fin(c);
		break;
	case OP_RST:
		shim_peer_rst(c);
		break;
	case OP_WINDOW:
		(void)fuzz_byte(f, &b);
		shim_peer_window(c, fuzz_window(b));
		break;
	case OP_CONNECT:
		if (t != NULL)
			shim_connect_done(t, connect_err[arg >> 2]);
		break;
	case OP_TSEND:
		n = fuzz_chunk(f, &p);
		if (t != NULL)
			shim_peer_send(t, p, n);
		break;
	case OP_TFIN:
		if (t != NULL)
			shim_peer_fin(t);
		break;
	case OP_TRST:
		if (t != NULL)
			shim_peer_rst(t);
		break;
	case OP_TWINDOW:
		(void)fuzz_byte(f, &b);
		if (t != NULL)
			shim_peer_window(t, fuzz_window(b));
		break;
	case OP_RESOLVE:
		fake_resolver_answer(f->srv.resolver, (enum fake_answer)(arg % FAKE_ANSWERS));
		break;
	case OP_TIME:
		if (arg == 0)
			(void)fake_loop_to_next_timer(f->srv.loop);
		else
			fake_loop_advance(f->srv.loop, (uint64_t)FUZZ_TICK_MS << arg);
		break;
	case OP_BIND_PEER:
		fuzz_op_bind_peer(f, idx, arg);
		break;
	case OP_UDP_CLIENT:
		n = fuzz_chunk(f, &p);
		fuzz_op_udp(f, idx, arg, true, p, n);
		break;
	case OP_UDP_TARGET:
		n = fuzz_chunk(f, &p);
		fuzz_op_udp(f, idx, arg, false, p, n);
		break;
	case OP_PLAN:
		(void)fuzz_byte(f, &b);
		fuzz_op_plan(b);
		break;
	}
	if ((peer_ops >> (op & 15)) & 1)
		return !(arg & FUZZ_ARG_BATCH);
	if ((op & 15) == OP_UDP_CLIENT || (op & 15) == OP_UDP_TARGET)
		return f->n == 0 || (f->p[0] & 15) != (op & 15);
	return true;
}

/* Every peer sends FIN and reads all; then the clock runs out, and the
 * lookups an ended UDP association kept for its client's last datagrams
 * (udp_assoc_orphan()) are answered, in turn, until none is left. */
static void
fuzz_finish(struct fuzz *f)
{
	struct shim_sock *s;
	size_t i, steps;

	memset(&shim_plan, 0, sizeof(shim_plan));
	for (i = 0; (s = shim_at(i)) != NULL; i++) {
		if (s->kind != SHIM_STREAM)
			continue;
		shim_peer_window(s, SHIM_WINDOW_ANY);
		shim_peer_fin(s);
	}
	fuzz_settle(f);
	for (steps = 0; steps < FUZZ_END_STEPS_MAX &&
	    fake_loop_to_next_timer(f->srv.loop); steps++)
		fuzz_settle(f);
	FUZZ_CHECK(steps < FUZZ_END_STEPS_MAX);
	for (steps = 0; steps < FUZZ_END_STEPS_MAX &&
	    fake_resolver_pending(f->srv.resolver) > 0; steps++) {
		fake_resolver_answer(f->srv.resolver, (enum fake_answer)(steps % FAKE_ANSWERS));
		fuzz_settle(f);
	}
	FUZZ_CHECK(steps < FUZZ_END_STEPS_MAX);
}

/* --- checks ------------------------------------------------------------- */

static bool
fuzz_prefix(const struct shim_buf *a, const uint8_t *b, size_t blen)
{
	return a->len <= blen && (a->len == 0 || memcmp(a->p, b, a->len) == 0);
}

/*
 * The relay of a session: down (what the client got after the replies)
 * comes from the target, up (what the target got) from the client after
 * its request. A FIN is passed on only after every byte.
 */
static void
fuzz_check_relay(const struct shim_sock *c, const struct shim_sock *t,
    const uint8_t *down, size_t downlen, const uint8_t *up, size_t uplen)
{
	FUZZ_CHECK(downlen <= t->sent.len &&
	    (downlen == 0 || memcmp(down, t->sent.p, downlen) == 0));
	if (c->out_shut)
		FUZZ_CHECK(downlen == t->sent.len);
	FUZZ_CHECK(fuzz_prefix(&t->out, up, uplen));
	if (t->out_shut)
		FUZZ_CHECK(t->out.len == uplen);
}

/* The one socket of client c matching what: the connected target, the
 * accepted BIND peer, the listener, the UDP relay. */
enum fuzz_what { FUZZ_TARGET, FUZZ_PEER, FUZZ_LISTENER, FUZZ_RELAY };

static const struct shim_sock *
fuzz_socket_of(const struct shim_sock *c, enum fuzz_what what)
{
	const struct shim_sock *s, *found = NULL;
	size_t i;

	for (i = 0; (s = shim_at(i)) != NULL; i++) {
		bool is;

		if (s->root != c->fd || s->client)
			continue;
		switch (what) {
		case FUZZ_TARGET:
			is = s->kind == SHIM_STREAM && !s->accepted && s->connect_seen;
			break;
		case FUZZ_PEER:
			is = s->accepted;	/* the last one accepted is kept */
			break;
		case FUZZ_LISTENER:
			is = s->kind == SHIM_LISTEN;
			break;
		default:
			is = s->kind == SHIM_DGRAM && s->bind_called;
			break;
		}
		if (!is)
			continue;
		/* Only one connect succeeds and BIND listens once. */
		FUZZ_CHECK(found == NULL || what == FUZZ_PEER);
		found = s;
	}
	FUZZ_CHECK(found != NULL);
	return found;
}

/* Did this client datagram, as the server must read it, become d? */
static bool
fuzz_udp_is_from(const struct shim_sock *c, const struct s5_request *req,
    const struct shim_dgram *in, bool literal, const struct shim_dgram *d)
{
	struct s5_udp_header h;
	struct s5_addr src;
	size_t used;

	if (!fuzz_same_ip((const struct sockaddr *)&in->addr, in->addrlen,
	    (const struct sockaddr *)&c->peer, c->peerlen))
		return false;
	/* RFC 1928 §6: DST.PORT of the request, when given, is the client's. */
	if (s5_addr_from_sockaddr(&src, (const struct sockaddr *)&in->addr, in->addrlen) < 0 ||
	    (req->dst.port != 0 && src.port != req->dst.port))
		return false;
	if (s5_parse_udp_header(in->data, in->len, &h, &used) != 0 || h.frag != 0 ||
	    literal != (h.addr.atyp != S5_ATYP_DOMAIN))
		return false;
	if (d->len != in->len - used || memcmp(d->data, in->data + used, d->len) != 0)
		return false;
	if (h.addr.atyp == S5_ATYP_DOMAIN) {
		struct s5_addr a;

		return s5_addr_from_sockaddr(&a, (const struct sockaddr *)&d->addr,
		    d->addrlen) == 0 && a.port == h.addr.port;
	}
	return fuzz_addr_is(&h.addr, &d->addr, d->addrlen);
}

/*
 * Each datagram the server sent is one that arrived, used once. One sent
 * to an address is first paired with a datagram that named it: one that
 * named a host matches any address on its port, and must stay free for a
 * datagram no literal one explains.
 */
static void
fuzz_check_udp(const struct shim_sock *c, const struct s5_request *req,
    const struct shim_sock *relay)
{
	bool used_in[SHIM_DGRAMS_MAX] = { false };
	bool used_back[SHIM_SOCKS_MAX][SHIM_DGRAMS_MAX];
	const struct shim_sock *o;
	const struct shim_dgram *d, *in;
	struct s5_udp_header h;
	size_t i, k, hl;
	int pass;
	bool found;

	memset(used_back, 0, sizeof(used_back));
	for (i = 0; (o = shim_at(i)) != NULL; i++) {
		if (o->root != c->fd || o->kind != SHIM_DGRAM || o == relay)
			continue;
		for (d = o->dq_out; d != NULL; d = d->next) {
			found = false;
			for (pass = 0; pass < 2 && !found; pass++)
				for (in = relay->dq_in, k = 0; in != NULL && !found;
				    in = in->next, k++)
					if (!used_in[k] &&
					    fuzz_udp_is_from(c, req, in, pass == 0, d))
						found = used_in[k] = true;
			FUZZ_CHECK(found);
		}
	}
	/* Replies: to the client's IP, a header naming the sender, the payload. */
	for (d = relay->dq_out; d != NULL; d = d->next) {
		FUZZ_CHECK(fuzz_same_ip((const struct sockaddr *)&d->addr, d->addrlen,
		    (const struct sockaddr *)&c->peer, c->peerlen));
		FUZZ_CHECK(s5_parse_udp_header(d->data, d->len, &h, &hl) == 0 && h.frag == 0);
		found = false;
		for (i = 0; (o = shim_at(i)) != NULL && !found; i++) {
			if (o->root != c->fd || o->kind != SHIM_DGRAM || o == relay)
				continue;
			for (in = o->dq_in, k = 0; in != NULL && !found; in = in->next, k++)
				if (!used_back[i][k] && fuzz_addr_is(&h.addr, &in->addr, in->addrlen) &&
				    rules_dest_ok(rules_current(), &(const struct rules_who){
				    .client = (const struct sockaddr *)&c->peer },
				    S5_CMD_UDP_ASSOCIATE, (const struct sockaddr *)&in->addr) &&
				    in->len == d->len - hl && memcmp(in->data, d->data + hl, in->len) == 0)
					found = used_back[i][k] = true;
		}
		FUZZ_CHECK(found);
	}
}

enum fuzz_reply {
	FUZZ_REPLY_NONE,		/* no more bytes, or cut inside the reply */
	FUZZ_REPLY_FAILED,		/* a failure reply, and nothing after it */
	FUZZ_REPLY_OK,
};

static enum fuzz_reply
fuzz_next_reply(const struct shim_sock *c, size_t *oo, struct s5_reply *rep)
{
	const uint8_t *o = c->out.p;
	size_t olen = c->out.len;
	bool cut_ok = c->window_limited || c->rst;
	static const uint8_t any[4];
	size_t used;
	int r;

	if (*oo == olen)
		return FUZZ_REPLY_NONE;
	r = s5_parse_reply(o + *oo, olen - *oo, rep, &used);
	if (r == S5_NEED_MORE) {
		FUZZ_CHECK(cut_ok);
		return FUZZ_REPLY_NONE;
	}
	FUZZ_CHECK(r == 0 && rep->rep <= S5_REP_ATYP_NOT_SUPPORTED && o[*oo + 2] == 0);
	*oo += used;
	if (rep->rep == S5_REP_SUCCEEDED)
		return FUZZ_REPLY_OK;
	/* RFC 1928 §6: after a failure reply the server closes; BND is 0. */
	FUZZ_CHECK(*oo == olen && c->out_shut);
	FUZZ_CHECK(rep->bnd.atyp == S5_ATYP_IPV4 && rep->bnd.port == 0 &&
	    memcmp(rep->bnd.u.ip4, any, 4) == 0);
	return FUZZ_REPLY_FAILED;
}

static bool
fuzz_bnd_is(const struct s5_reply *rep, const struct sockaddr_storage *ss, socklen_t len)
{
	return fuzz_addr_is(&rep->bnd, ss, len);
}

/* An address of all zeros: BIND's "no expectation" (bind.h). */
static bool
fuzz_addr_zero(const struct s5_addr *a)
{
	static const uint8_t zero[16];

	return a->atyp != S5_ATYP_DOMAIN && memcmp(a->atyp == S5_ATYP_IPV4 ?
	    a->u.ip4 : a->u.ip6, zero, a->atyp == S5_ATYP_IPV4 ? 4 : 16) == 0;
}

/* Do the rules refuse this request before any name is resolved: the
 * command, or a literal CONNECT target or BIND peer? */
static bool
fuzz_request_denied(const struct shim_sock *c, const struct s5_request *req)
{
	const struct rules_who peer[1] = { { .client = (const struct sockaddr *)&c->peer } };
	struct sockaddr_storage dst;

	if (!rules_command_ok(rules_current(), peer, req->cmd))
		return true;
	if (req->cmd == S5_CMD_UDP_ASSOCIATE || s5_addr_to_sockaddr(&req->dst, &dst) < 0 ||
	    (req->cmd == S5_CMD_BIND && fuzz_addr_zero(&req->dst)))
		return false;
	return !rules_dest_ok(rules_current(), peer, req->cmd, (struct sockaddr *)&dst);
}

/* No open relay: every address reached for client c, by connect() or a
 * datagram, is one the rules let it reach with that command. */
static void
fuzz_check_reached(const struct shim_sock *c)
{
	const struct rules_who peer[1] = { { .client = (const struct sockaddr *)&c->peer } };
	const struct shim_sock *s;
	const struct shim_dgram *d;
	size_t i;

	for (i = 0; (s = shim_at(i)) != NULL; i++) {
		if (s->root != c->fd || s->client)
			continue;
		if (s->kind == SHIM_STREAM && !s->accepted && s->peerlen > 0)
			FUZZ_CHECK(rules_dest_ok(rules_current(), peer, S5_CMD_CONNECT,
			    (const struct sockaddr *)&s->peer));
		if (s->kind == SHIM_DGRAM && !s->bind_called)
			for (d = s->dq_out; d != NULL; d = d->next)
				FUZZ_CHECK(rules_dest_ok(rules_current(), peer,
				    S5_CMD_UDP_ASSOCIATE, (const struct sockaddr *)&d->addr));
	}
}

/* After the request: the relay each command leads to. */
static void
fuzz_check_command(const struct shim_sock *c,
    const struct s5_request *req, const struct s5_reply *rep, size_t oo, size_t io)
{
	const uint8_t *o = c->out.p, *in = c->sent.p;
	const struct shim_sock *t, *l;
	struct sockaddr_storage want;
	struct s5_reply rep2;
	int wantlen;

	switch (req->cmd) {
	case S5_CMD_CONNECT:
		t = fuzz_socket_of(c, FUZZ_TARGET);
		FUZZ_CHECK(fuzz_bnd_is(rep, &t->local, t->locallen));
		fuzz_check_relay(c, t, o + oo, c->out.len - oo, in + io, c->sent.len - io);
		break;
	case S5_CMD_BIND:
		l = fuzz_socket_of(c, FUZZ_LISTENER);
		FUZZ_CHECK(fuzz_bnd_is(rep, &l->local, l->locallen));
		if (fuzz_next_reply(c, &oo, &rep2) != FUZZ_REPLY_OK)
			return;
		t = fuzz_socket_of(c, FUZZ_PEER);
		FUZZ_CHECK(fuzz_bnd_is(&rep2, &t->peer, t->peerlen));
		/* RFC 1928 §6: the peer the request named, as the rules allow. */
		FUZZ_CHECK(rules_dest_ok(rules_current(), &(const struct rules_who){
		    .client = (const struct sockaddr *)&c->peer },
		    S5_CMD_BIND, (const struct sockaddr *)&t->peer));
		if (!fuzz_addr_zero(&req->dst) &&
		    (wantlen = s5_addr_to_sockaddr(&req->dst, &want)) > 0)
			FUZZ_CHECK(fuzz_same_ip((struct sockaddr *)&want, (socklen_t)wantlen,
			    (const struct sockaddr *)&t->peer, t->peerlen));
		fuzz_check_relay(c, t, o + oo, c->out.len - oo, in + io, c->sent.len - io);
		break;
	default:
		t = fuzz_socket_of(c, FUZZ_RELAY);
		FUZZ_CHECK(fuzz_bnd_is(rep, &t->local, t->locallen));
		/* The control connection carries nothing more. */
		FUZZ_CHECK(oo == c->out.len);
		fuzz_check_udp(c, req, t);
		break;
	}
}

/* What client c got, against what it sent. */
static void
fuzz_check_client(const struct fuzz *f, const struct shim_sock *c)
{
	const uint8_t *o = c->out.p, *in = c->sent.p;
	size_t olen = c->out.len, ilen = c->sent.len, oo, io, used;
	bool cut_ok = c->window_limited || c->rst, ok;
	struct s5_greeting g;
	struct s5_cred cred;
	struct s5_request req;
	struct s5_reply rep;
	uint8_t m, st;
	int r;

	/* A client the rules refuse is closed without a word. */
	if (!rules_client_ok(rules_current(), (const struct sockaddr *)&c->peer))
		FUZZ_CHECK(olen == 0);
	fuzz_check_reached(c);
	if (olen == 0)
		return;
	r = s5_parse_method_reply(o, olen, &m, &used);
	FUZZ_CHECK(r == 0 || (r == S5_NEED_MORE && cut_ok));
	if (r != 0)
		return;
	r = s5_parse_greeting(in, ilen, &g, &io);
	FUZZ_CHECK(r != S5_NEED_MORE);
	FUZZ_CHECK(m == (r < 0 ? S5_METHOD_UNACCEPTABLE :
	    s5_choose_method(&g, f->srv.users != NULL)));
	oo = 2;
	/* Refused: nothing more, and the server's FIN. */
	if (m == S5_METHOD_UNACCEPTABLE) {
		FUZZ_CHECK(olen == oo && c->out_shut);
		return;
	}
	if (s5_method_base(m) == S5_METHOD_USERPASS) {
		if (oo == olen)
			return;
		r = s5_parse_auth_reply(o + oo, olen - oo, &st, &used);
		FUZZ_CHECK(r == 0 || (r == S5_NEED_MORE && cut_ok));
		if (r != 0)
			return;
		FUZZ_CHECK(o[oo] == S5_AUTH_VERSION);
		r = s5_parse_auth(in + io, ilen - io, &cred, &used);
		FUZZ_CHECK(r != S5_NEED_MORE);
		ok = r == 0 && users_check(f->srv.users, &cred);
		/* A right password whose check the session gave up on (its
		 * handshake timeout) is refused as busy: status 01. */
		if (ok && st == S5_AUTH_FAILURE && fake_resolver_check_cancelled(c->fd))
			ok = false;
		FUZZ_CHECK(st == (ok ? S5_AUTH_SUCCESS : S5_AUTH_FAILURE));
		oo += 2;
		if (!ok) {
			FUZZ_CHECK(olen == oo && c->out_shut);
			return;
		}
		io += used;
	}
	if (oo == olen)
		return;
	r = s5_parse_request(in + io, ilen - io, &req, &used);
	FUZZ_CHECK(r != S5_NEED_MORE);
	switch (fuzz_next_reply(c, &oo, &rep)) {
	case FUZZ_REPLY_NONE:
		return;
	case FUZZ_REPLY_FAILED:
		/* A bad request names its fault; a switched-off command is 07,
		 * one the rules deny 02. */
		if (r < 0)
			FUZZ_CHECK(rep.rep == s5_err_rep(r));
		else if (!rules_command_enabled(rules_current(), req.cmd))
			FUZZ_CHECK(rep.rep == S5_REP_CMD_NOT_SUPPORTED);
		else if (fuzz_request_denied(c, &req))
			FUZZ_CHECK(rep.rep == S5_REP_NOT_ALLOWED);
		return;
	case FUZZ_REPLY_OK:
		break;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(rules_command_enabled(rules_current(), req.cmd));
	FUZZ_CHECK(!fuzz_request_denied(c, &req));
	fuzz_check_command(c, &req, &rep, oo, io + used);
}

static void
fuzz_check_end(const struct fuzz *f)
{
	const struct shim_sock *s;
	size_t i;

	FUZZ_CHECK(f->srv.nsessions == 0 && f->srv.sessions == NULL);
	FUZZ_CHECK(fake_loop_watched(f->srv.loop) == 0);
	FUZZ_CHECK(fake_loop_timers(f->srv.loop) == 0);
	FUZZ_CHECK(fake_resolver_pending(f->srv.resolver) == 0);
	for (i = 0; (s = shim_at(i)) != NULL; i++)
		FUZZ_CHECK(s->nclose == 1);
	for (i = 0; i < f->nclients; i++)
		fuzz_check_client(f, shim_get(f->client[i]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz f;
	uint8_t op;

	memset(&f, 0, sizeof(f));
	f.p = data;
	f.n = size;
	if (!fuzz_byte(&f, &f.flags))
		return 0;
	fuzz_setup(&f);
	fuzz_open(&f, f.flags >> 6);
	fuzz_settle(&f);
	while (fuzz_byte(&f, &op))
		if (fuzz_op(&f, op))
			fuzz_settle(&f);
	fuzz_finish(&f);
	fuzz_check_end(&f);
	fuzz_teardown(&f);
	return 0;
}
