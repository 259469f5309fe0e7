/*
 * tunnel.c: the SOCKS5 handshake, hop by hop, over the program's own socket.
 *
 * One machine (struct tunnel) says what to do next on a socket already
 * TCP-connected to the first hop: tunnel_step() sends and reads as far as the
 * socket allows without waiting (MSG_DONTWAIT, so the open file's O_NONBLOCK
 * is never touched behind the program's back) and answers what it waits for:
 * TUNNEL_READ, TUNNEL_WRITE, TUNNEL_DONE, or a failure as -errno. Two drivers
 * run it: the engine (async.c) on readiness, for connects that must not block
 * the program, and tunnel_connect() below with poll() and a deadline, for the
 * rare connect the engine cannot take.
 *
 * The socket itself is never replaced here (async.c swaps in one of the
 * proxy's family when it must, before the dial): epoll registrations,
 * FD_CLOEXEC and socket options stay intact (preload-anchors.md P1). Reading
 * exactly s5_client_want() bytes at a time means no byte of the target's
 * stream is consumed (P5). MSG_NOSIGNAL keeps a proxy that resets
 * mid-handshake from killing the program with SIGPIPE (P6).
 *
 * SOCKSIFY_PIPELINE=on: a SOCKS5 hop's machine sends its whole handshake in
 * one message (shared/client.c), and the next hop's whole handshake goes
 * right behind it (tunnel_ahead()) unless it carries a password; each
 * machine then reads its replies in order, a hop whose bytes went ahead
 * sending none of its own. Under auto the same holds of each hop whose
 * server said, in a lock-step handshake of this process, that it reads a
 * stream (tunnel_machine()).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "preload.h"

long long
tunnel_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tunnel_init(struct tunnel *t, const struct s5_addr *dst)
{
	memset(t, 0, sizeof(*t));
	t->dst = *dst;
	t->cmd = S5_CMD_CONNECT;
	t->rep = -1;
	failover_pick(t);
}

const struct preload_hop *
tunnel_hop(const struct tunnel *t, size_t i)
{
	return &preload_cfg.hops[i][t->alt[i]];
}

int
tunnel_family(const struct tunnel *t)
{
	return tunnel_hop(t, 0)->has_v4 ? AF_INET : AF_INET6;
}

/* The address hop i + 1 is reached at, named to hop i. */
static const struct s5_addr *
tunnel_next_hop(const struct tunnel *t, size_t i)
{
	const struct preload_hop *next = tunnel_hop(t, i + 1);

	if (next->proxy.addr.atyp != S5_ATYP_DOMAIN ||
	    tunnel_hop(t, i)->proxy.remote_dns)
		return &next->proxy.addr;
	return next->has_v4 ? &next->v4 : &next->v6;
}

/* A failed hop's errno. A proxy hanging up or resetting mid-handshake
 * refused us (CONTRACT.md); only the deadline says ETIMEDOUT. */
static int
tunnel_hop_errno(const struct tunnel *t, int err)
{
	if (t->rep < 0 && (err == ECONNRESET || err == EPIPE || err == ENOTCONN))
		return -ECONNREFUSED;
	return -err;
}

static void tunnel_share(struct tunnel *t, size_t pos);

/*
 * The machine of hop i for t: every hop but the last CONNECTs to the next;
 * pipelined where the server is known to read a stream (config.c): under
 * SOCKSIFY_PIPELINE=auto, once it chose a _STREAM method (socksifyd does)
 * in a lock-step handshake of this process, which offers them.
 */
static void
tunnel_machine(const struct tunnel *t, size_t i, struct s5_client *c)
{
	const struct preload_hop *h = tunnel_hop(t, i);
	const struct s5_proxy *hop = &h->proxy;
	bool socks5 = hop->proto == S5_PROTO_SOCKS5;

	if (i + 1 < preload_cfg.nhops)
		s5_client_init_proto(c, hop->proto, S5_CMD_CONNECT, tunnel_next_hop(t, i),
		    hop->has_cred ? &hop->cred : NULL);
	else
		s5_client_init_proto(c, hop->proto, t->cmd, &t->dst,
		    hop->has_cred ? &hop->cred : NULL);
	/* A hop whose whole handshake went ahead (tunnel_ahead()) reads
	 * its replies as pipelined, whatever another connect has since
	 * learnt of its server: the flag is read once per hop and attempt. */
	c->pipeline = socks5 && (preload_cfg.pipeline || (i > 0 && t->ahead_hop == i) ||
	    (preload_cfg.pipeline_learn && __atomic_load_n(&h->streams, __ATOMIC_RELAXED)));
	c->learn = socks5 && preload_cfg.pipeline_learn && !c->pipeline;
}

/* Hop t->hop's handshake is pipelined on its server's word alone
 * (SOCKSIFY_PIPELINE=auto), not because the user or launcher said so. */
static bool
tunnel_learned(const struct tunnel *t)
{
	return t->hop < preload_cfg.nhops && t->started && t->up && t->c.pipeline &&
	    !preload_cfg.pipeline;
}

/* What hop t->hop's server said of itself, or its failure undid. */
static void
tunnel_learn(const struct tunnel *t, bool streams)
{
	__atomic_store_n(&preload_cfg.hops[t->hop][t->alt[t->hop]].streams, streams,
	    __ATOMIC_RELAXED);
}

/*
 * A hop pipelined on its server's word that then failed before it
 * answered a request (stalled, hung up, spoke nonsense, or the program
 * gave up on it first): another server may listen there now. Its next
 * handshake goes lock-step and asks again; a wrong guess costs that.
 */
void
tunnel_unlearn(const struct tunnel *t)
{
	if (tunnel_learned(t) && t->rep < 0)
		tunnel_learn(t, false);
}

/*
 * The machine of hop t->hop has a message to send. Pipelined, its first
 * message is its whole handshake; then the next hop's whole handshake goes
 * right behind it (t->ahead), for hop t->hop to pass on once it has
 * connected there, as it passes on a client's early data: one round trip
 * for two hops. A hop whose bytes went ahead sends none of its own.
 */
static void
tunnel_ahead(struct tunnel *t)
{
	struct s5_client next;
	size_t i = t->hop;
	bool first = t->c.pipeline && t->c.sent_all;

	t->out_off = first && i > 0 && t->ahead_hop == i ? t->c.out_len : 0;
	t->ahead_len = t->ahead_off = 0;
	if (!first || i + 1 >= preload_cfg.nhops)
		return;
	/* Never a password ahead: the next hop's credentials reach hop i
	 * only once it has answered as SOCKS5 and connected there. */
	if (tunnel_hop(t, i + 1)->proxy.has_cred)
		return;
	tunnel_machine(t, i + 1, &next);
	if (!next.pipeline || s5_client_step(&next, NULL, 0, NULL) != S5C_WANT_WRITE ||
	    next.out_len > sizeof(t->ahead))
		return;
	memcpy(t->ahead, next.out, next.out_len);
	t->ahead_len = next.out_len;
	t->ahead_hop = i + 1;
	explicit_bzero(&next, sizeof(next));
}

/*
 * A pipelined hop behind another answers in several writes (socksifyd's
 * method reply at once, its CONNECT reply once the target is reached),
 * and the hop in front may keep Nagle's algorithm on (microsocks, tinyproxy):
 * it holds the second answer until we acknowledge the first. After the
 * lock-step exchanges with the hops before, the kernel delays that ACK,
 * some 40 ms: measured, 67 of 100 connects through microsocks then
 * socksifyd, with the name resolved there, each 40 ms late. Out of its
 * delayed-ACK (pingpong) mode, the socket acknowledges an answer as soon as
 * it is read. The kernel's flag is not kept: its own heuristics take over
 * again, and the program sees no option of its changed.
 */
static void
tunnel_quickack(int fd)
{
	int one = 1;

	(void)PRELOAD_REAL(setsockopt)(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

/*
 * The hop's own message, then the next hop's handshake sent ahead
 * (tunnel_ahead()), to fd without waiting, in one write: one segment, so a
 * first hop that reads one recv() per message (microsocks) takes the two
 * as one whatever the timing, and stalls as it does on any pipelined
 * handshake, rather than reading the next hop's greeting as its request
 * when the two happen to arrive apart. 0 when all of it is out, else what
 * tunnel_step() returns (TUNNEL_WRITE, or -errno).
 */
static ssize_t
tunnel_send(struct tunnel *t, int fd)
{
	struct iovec iov[2];
	struct msghdr mh;
	size_t own, ahead;
	ssize_t n;

	for (;;) {
		own = t->c.out_len - t->out_off;
		ahead = t->ahead_len - t->ahead_off;
		if (own == 0 && ahead == 0)
			return 0;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		if (own > 0)
			iov[mh.msg_iovlen++] = (struct iovec){ t->c.out + t->out_off, own };
		if (ahead > 0)
			iov[mh.msg_iovlen++] = (struct iovec){ t->ahead + t->ahead_off, ahead };
		n = PRELOAD_REAL(sendmsg)(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			t->up = true;
			if ((size_t)n <= own) {
				t->out_off += (size_t)n;
			} else {
				t->out_off += own;
				t->ahead_off += (size_t)n - own;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TUNNEL_WRITE;
		return tunnel_hop_errno(t, n < 0 ? errno : EPIPE);
	}
}

int
tunnel_step(struct tunnel *t, int fd)
{
	size_t used = 0, want;
	ssize_t n;
	bool got;
	int r;

	for (;;) {
		if (t->hop == preload_cfg.nhops)
			return TUNNEL_DONE;
		if (!t->started) {
			tunnel_machine(t, t->hop, &t->c);
			t->started = true;
			t->answered = false;
			t->in_len = 0;
			t->out_off = 0;
			t->writing = false;
			t->sent = false;
			if (t->hop > 0)
				tunnel_share(t, t->hop);
		}
		if (t->writing) {
			/* The hop's own bytes, then the next hop's sent ahead. */
			if ((n = tunnel_send(t, fd)) != 0)
				return (int)n;
			/* Sent: a password in them stays nowhere of ours. */
			explicit_bzero(t->c.out, t->c.out_len);
			explicit_bzero(t->ahead, t->ahead_len);
			t->writing = false;
			t->sent = true;
			t->in_len = 0;
			if (t->hop > 0 && t->c.pipeline)
				tunnel_quickack(fd);
		} else if (t->want_read) {
			/* A proxy answers after a scheduling round at the
			 * least: a recv() now would say EAGAIN (measured: every
			 * time, on loopback). The caller polls first. */
			if (t->sent) {
				t->sent = false;
				return TUNNEL_READ;
			}
			want = s5_client_want(&t->c);
			if (want > sizeof(t->in))
				want = sizeof(t->in);
			n = PRELOAD_REAL(recv)(fd, t->in, want, MSG_DONTWAIT);
			if (n == 0)
				return tunnel_hop_errno(t, ECONNRESET);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return TUNNEL_READ;
			if (n < 0)
				return tunnel_hop_errno(t, errno);
			t->in_len = (size_t)n;
			t->want_read = false;
		}
		got = t->in_len > 0;
		r = s5_client_step(&t->c, t->in, t->in_len, &used);
		if (got && !t->answered && r >= 0 && !s5_client_midway(&t->c)) {
			/* Alive, a whole message of its in: what stalls from
			 * now on is the next hop's, or the target's (a part of
			 * one, then silence or a hang-up, is its own: "HTTP/1.1
			 * 200 Co" and no more). Pipelined on its word alone, a
			 * stall may be its own (a server that drops what
			 * follows a message): it keeps its share
			 * (tunnel_retry()). */
			t->answered = true;
			if (!tunnel_learned(t))
				tunnel_share(t, t->hop + 1);
		}
		/* A proxy that answers in HTTP is told apart in the diagnostic. */
		t->http = r == S5C_E_PROTO && t->in_len >= 2 && memcmp(t->in, "HT", 2) == 0;
		t->in_len = 0;
		if (r == S5C_WANT_WRITE) {
			tunnel_ahead(t);
			t->writing = true;
		} else if (r == S5C_WANT_READ) {
			t->want_read = true;
		} else if (r == S5C_DONE) {
			if (t->c.learn && t->c.streams)
				tunnel_learn(t, true);
			t->hop++;
			t->started = false;
			if (t->hop == preload_cfg.nhops)
				failover_up(t);
			/* t->c still says how the hop went, until the next step. */
			if (t->pause && t->hop < preload_cfg.nhops)
				return TUNNEL_HOP;
		} else {
			if (r == S5C_E_REPLY)
				t->rep = t->c.reply.rep;
			t->why = r;
			return -s5_client_errno(&t->c, r);
		}
	}
}

bool
preload_v6only(int fd)
{
	socklen_t olen = sizeof(int);
	int v6only = 0, saved = errno;
	bool yes;

	yes = PRELOAD_REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) == 0 &&
	    v6only;
	errno = saved;
	return yes;
}

bool
preload_v6_bound(int fd)
{
	struct sockaddr_in6 me;
	socklen_t mlen = sizeof(me);

	return PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&me, &mlen) == 0 &&
	    me.sin6_family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&me.sin6_addr) &&
	    !IN6_IS_ADDR_V4MAPPED(&me.sin6_addr);
}

/* An AF_INET6 socket that cannot speak IPv4. */
static bool
tunnel_v6_only(int fd)
{
	return preload_v6only(fd) || preload_v6_bound(fd);
}

bool
tunnel_first_mixed(int fd, int domain)
{
	const struct preload_hop *h;
	size_t k;

	for (k = 0; k < preload_cfg.nalts[0]; k++) {
		h = &preload_cfg.hops[0][k];
		if (domain == AF_INET ? !h->has_v4 && h->has_v6 :
		    !h->has_v6 && h->has_v4 && tunnel_v6_only(fd))
			return true;
	}
	return false;
}

/*
 * The first hop as a sockaddr for a socket of family domain: 0, or -EAFNOSUPPORT
 * when a socket of that family cannot reach it (an IPv4 socket and an
 * IPv6-only proxy; an IPv6-only socket and an IPv4-only proxy), for the
 * caller to swap in a socket that can.
 *
 * A proxy named with addresses of both families is dialled at its IPv4
 * one by every socket that can speak IPv4 (an AF_INET6 one at
 * ::ffff:a.b.c.d), as our own connections are (tunnel_family()) and
 * --check's: "localhost" is 127.0.0.1 and ::1 on Debian, and Tor,
 * microsocks or ssh -D often listen on 127.0.0.1 alone.
 */
int
tunnel_first_sockaddr(const struct tunnel *t, int fd, int domain,
    struct sockaddr_storage *ss, socklen_t *len)
{
	const struct preload_hop *h = tunnel_hop(t, 0);
	struct sockaddr_in6 *s6;
	int r;

	if (domain == AF_INET) {
		if (!h->has_v4)
			return -EAFNOSUPPORT;
		r = s5_addr_to_sockaddr(&h->v4, ss);
	} else if (h->has_v6 && (!h->has_v4 || tunnel_v6_only(fd))) {
		r = s5_addr_to_sockaddr(&h->v6, ss);
	} else {
		/* An AF_INET6 socket reaches an IPv4 proxy at ::ffff:a.b.c.d,
		 * unless it cannot speak IPv4. */
		if (!h->has_v6 && tunnel_v6_only(fd))
			return -EAFNOSUPPORT;
		memset(ss, 0, sizeof(*ss));
		s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(h->v4.port);
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], h->v4.u.ip4, 4);
		r = (int)sizeof(*s6);
	}
	if (r < 0)
		return -ECONNREFUSED;
	*len = (socklen_t)r;
	return 0;
}

/* The dial's outcome once the socket polled with revents: 0 or -errno. */
int
tunnel_dial_result(int fd, int revents)
{
	socklen_t elen = sizeof(int);
	int err = 0;

	/* Writable and nothing else: connected, no SO_ERROR to ask for. */
	if (!(revents & (POLLERR | POLLHUP)))
		return 0;
	if (preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		return -errno;
	return err == 0 ? 0 : -err;
}

/* An unreachable proxy is ECONNREFUSED (CONTRACT.md), a late one ETIMEDOUT. */
int
tunnel_dial_errno(struct tunnel *t, int err)
{
	t->dial_err = err;
	return err == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
}

/* --- Saying what went wrong ----------------------------------------------- */

enum {
	TUNNEL_DIAG_LINE = 512,
};

/* The reasons tunnel_explain() tells apart, for the rate limit. */
enum tunnel_reason {
	TR_UNREACHABLE = 1,		/* the dial failed: its errno */
	TR_DIAL_TIMEOUT,		/* no TCP answer within SOCKSIFY_TIMEOUT */
	TR_TIMEOUT,			/* a handshake that stalled */
	TR_CONNECT_TIMEOUT,		/* answered; its CONNECT did not come up */
	TR_CLOSED,			/* hung up or reset mid-handshake */
	TR_PROTO,			/* not SOCKS5 */
	TR_NO_METHOD,
	TR_NEED_AUTH,
	TR_AUTH,
	TR_REPLY,			/* refused the request: its reply code */
	TR_ADDR,			/* a destination the hop's protocol cannot carry */
	TR_ALL_DOWN,			/* every alternative of a hop is down */
	TR_FAMILY,			/* no address for this socket's family */
	TR_OTHER,
};

bool
tunnel_hung_up_on_request(const struct tunnel *t)
{
	if (t->c.proto == S5_PROTO_SOCKS5)
		return t->answered && s5_client_awaiting_reply(&t->c);
	return s5_client_awaiting_reply(&t->c);
}

static enum tunnel_reason
tunnel_reason(const struct tunnel *t, int err)
{
	if (t->down_hop != 0)
		return TR_ALL_DOWN;
	if ((err == EAFNOSUPPORT || t->family) && t->why == 0 && t->dial_err == 0)
		return TR_FAMILY;
	if (t->dial_err != 0)
		return t->dial_err == ETIMEDOUT ? TR_DIAL_TIMEOUT : TR_UNREACHABLE;
	switch (t->why) {
	case S5C_E_REPLY:
		return TR_REPLY;
	case S5C_E_PROTO:
		return TR_PROTO;
	case S5C_E_NO_METHOD:
		return TR_NO_METHOD;
	case S5C_E_NEED_AUTH:
		return TR_NEED_AUTH;
	case S5C_E_AUTH:
		return TR_AUTH;
	case S5C_E_ADDR:
		return TR_ADDR;
	}
	/* Pipelined, the request may be what the server dropped (it reads a
	 * message at a time): TR_TIMEOUT says so. */
	if (err == ETIMEDOUT && t->answered && !t->c.pipeline &&
	    s5_client_awaiting_reply(&t->c))
		return TR_CONNECT_TIMEOUT;
	if (err == ETIMEDOUT)
		return t->hop == 0 && !t->up ? TR_DIAL_TIMEOUT : TR_TIMEOUT;
	if (err == ECONNREFUSED || err == ECONNRESET || err == EPIPE)
		return TR_CLOSED;
	return TR_OTHER;
}

void
tunnel_explain(const struct tunnel *t, int err, char *buf, size_t cap)
{
	size_t i = t->hop < preload_cfg.nhops ? t->hop : preload_cfg.nhops - 1;
	const struct s5_proxy *p = &tunnel_hop(t, i)->proxy;
	static const char *const speaks[] = {
		[S5_PROTO_SOCKS5] = "SOCKS5", [S5_PROTO_SOCKS4] = "SOCKS4",
		[S5_PROTO_SOCKS4A] = "SOCKS4a", [S5_PROTO_HTTP] = "HTTP CONNECT",
	};
	char hop[S5_ADDR_TEXT_MAX + 24], what[S5_ADDR_TEXT_MAX], ebuf[64], code[80];
	const char *scheme = s5_proto_scheme(p->proto, p->remote_dns);
	int n;

	if (s5_addr_format(&p->addr, what, sizeof(what)) < 0)
		strcpy(what, "?");
	if (preload_cfg.nhops > 1 && preload_cfg.nalts[i] > 1)
		snprintf(hop, sizeof(hop), "proxy %s (hop %zu of %zu, alternative %u of %zu)",
		    what, i + 1, preload_cfg.nhops, (unsigned)t->alt[i] + 1,
		    preload_cfg.nalts[i]);
	else if (preload_cfg.nhops > 1)
		snprintf(hop, sizeof(hop), "proxy %s (hop %zu of %zu)", what, i + 1,
		    preload_cfg.nhops);
	else if (preload_cfg.nalts[i] > 1)
		snprintf(hop, sizeof(hop), "proxy %s (alternative %u of %zu)", what,
		    (unsigned)t->alt[i] + 1, preload_cfg.nalts[i]);
	else
		snprintf(hop, sizeof(hop), "proxy %s", what);
	switch (tunnel_reason(t, err)) {
	case TR_FAMILY:
		n = snprintf(buf, cap, "%s has no address for this socket's family%s", hop,
		    i == 0 && preload_cfg.nalts[0] > 1 ? " (the next alternative is "
		    "dialled on the same socket: put an IPv6 one first to reach both)" : "");
		break;
	case TR_ALL_DOWN:
		n = snprintf(buf, cap, "every alternative of hop %zu is down after "
		    "failing; the first is tried again in %lld ms", t->down_hop,
		    failover_retry_in(t->down_hop - 1));
		break;
	case TR_UNREACHABLE:
		n = snprintf(buf, cap, "%s cannot be reached: %s", hop,
		    strerror_r(t->dial_err, ebuf, sizeof(ebuf)));
		break;
	case TR_DIAL_TIMEOUT:
		n = snprintf(buf, cap, "%s cannot be reached: no answer within %d ms "
		    "(%sSOCKSIFY_TIMEOUT)", hop, t->share_ms > 0 ? t->share_ms :
		    preload_cfg.timeout_ms, t->share_ms > 0 ? "its share of " : "");
		break;
	case TR_TIMEOUT:
		n = snprintf(buf, cap, "%s did not finish the handshake within %d ms "
		    "(%sSOCKSIFY_TIMEOUT)%s", hop, t->share_ms > 0 ? t->share_ms :
		    preload_cfg.timeout_ms, t->share_ms > 0 ? "its share of " : "",
		    tunnel_learned(t) ? "; it was pipelined, as the server there said it "
		    "could take (SOCKSIFY_PIPELINE=auto): the next connect asks again" :
		    preload_cfg.pipeline && t->c.pipeline ? "; it was pipelined "
		    "(SOCKSIFY_PIPELINE=on), which a server that reads one message at a "
		    "time (microsocks) never answers: auto, the default, asks first" : "");
		break;
	case TR_CONNECT_TIMEOUT:
		/* Alive: the stall is where it was asked to connect. */
		if (s5_addr_format(&t->c.dst, what, sizeof(what)) < 0)
			strcpy(what, "?");
		n = snprintf(buf, cap, "%s answered, but its connection to %s%s%s did not "
		    "come up within %d ms (%sSOCKSIFY_TIMEOUT)%s", hop,
		    i + 1 < preload_cfg.nhops ? "the next hop, " : "", what,
		    i + 1 < preload_cfg.nhops ? "," : "",
		    t->share_ms > 0 ? t->share_ms : preload_cfg.timeout_ms,
		    t->share_ms > 0 ? "its share of " : "",
		    i + 1 < preload_cfg.nhops ? ": that hop may be down or unreachable from it" : "");
		break;
	case TR_CLOSED:
		/* Gone where the CONNECT reply was due, the greeting answered
		 * (SOCKS4 has none: the request sent): ssh -D answers a target
		 * it could not reach so, with no reply code. */
		if (tunnel_hung_up_on_request(t))
			n = snprintf(buf, cap, "%s closed the connection instead of "
			    "answering its CONNECT: %s refused it or cannot be reached "
			    "from there, most likely (ssh -D answers so)", hop,
			    i + 1 < preload_cfg.nhops ? "the next hop" : "the target");
		else
			n = snprintf(buf, cap, "%s closed the connection during the "
			    "handshake", hop);
		break;
	case TR_PROTO:
		n = snprintf(buf, cap, "%s does not speak %s: %s", hop, speaks[p->proto],
		    t->http && p->proto != S5_PROTO_HTTP ? "it answered in HTTP" :
		    "its answer is no reply of that protocol");
		break;
	case TR_NO_METHOD:
		if (p->has_cred && tunnel_learned(t)) {
			n = snprintf(buf, cap, "%s does not take a username and password "
			    "any more (it did when it said it could take a pipelined "
			    "handshake, SOCKSIFY_PIPELINE=auto; the next connect asks "
			    "again)", hop);
			break;
		}
		if (p->has_cred && t->c.pipeline) {
			/* Pipelined, we offered the username and password alone. */
			n = snprintf(buf, cap, "%s does not take a username and password "
			    "(SOCKSIFY_PIPELINE=on offers nothing else; without them in "
			    "the URL, or with SOCKSIFY_PIPELINE=off, it may take none)", hop);
			break;
		}
		if (p->has_cred) {
			n = snprintf(buf, cap, "%s accepts neither no authentication "
			    "nor a username and password", hop);
			break;
		}
		/* Without credentials we offer no authentication alone. */
		/* FALLTHROUGH */
	case TR_NEED_AUTH:
		n = snprintf(buf, cap, "%s wants a username and password: give them "
		    "in the URL (%s://USER:PASS@HOST:PORT)", hop, scheme);
		break;
	case TR_AUTH:
		n = snprintf(buf, cap, "%s rejected the password of user \"%s\"", hop,
		    p->cred.user);
		break;
	case TR_REPLY:
		if (i + 1 < preload_cfg.nhops)
			(void)s5_addr_format(&tunnel_hop(t, i + 1)->proxy.addr, what,
			    sizeof(what));
		else if (t->cmd == S5_CMD_UDP_ASSOCIATE)
			strcpy(what, "UDP ASSOCIATE");	/* its address is 0.0.0.0:0 */
		else if (s5_addr_format(&t->dst, what, sizeof(what)) < 0)
			strcpy(what, "?");
		if (p->proto == S5_PROTO_HTTP)
			snprintf(code, sizeof(code), "HTTP %d", t->c.status);
		else if (p->proto != S5_PROTO_SOCKS5)
			snprintf(code, sizeof(code), "SOCKS4 reply %d (%s)", t->c.status,
			    t->c.status == 91 ? "rejected or failed" : "identd check failed");
		else
			snprintf(code, sizeof(code), "reply %02x, %s", (unsigned)t->rep,
			    s5_rep_str((uint8_t)t->rep));
		n = snprintf(buf, cap, "%s refused %s%s: %s", hop,
		    i + 1 < preload_cfg.nhops ? "the next hop " : "", what, code);
		break;
	case TR_ADDR:
		if (s5_addr_format(i + 1 < preload_cfg.nhops ? tunnel_next_hop(t, i) : &t->dst,
		    what, sizeof(what)) < 0)
			strcpy(what, "?");
		n = snprintf(buf, cap, "%s cannot be asked for %s: %s", hop, what,
		    p->proto == S5_PROTO_HTTP ? "not a name HTTP can carry" :
		    "SOCKS4 takes IPv4 destinations only (socks4a:// also names)");
		break;
	default:
		n = snprintf(buf, cap, "%s failed during the handshake: %s", hop,
		    strerror_r(err, ebuf, sizeof(ebuf)));
		break;
	}
	if (n < 0 && cap > 0)
		buf[0] = '\0';
	/* --check prints it as it is. */
	preload_text_clean(buf, cap);
}

/* The line of tunnel_diagnose(), then "the program sees ERRNO" or, with
 * next, that the next alternative is tried. */
static void
tunnel_say(const struct tunnel *t, int err, bool next)
{
	char line[TUNNEL_DIAG_LINE];
	uint64_t key;
	int reason, detail;
	size_t hop;

	if (preload_cfg.log_level != LOG_LVL_WARN) {
		/* Above warn, every move to the next alternative is said. */
		if (next && preload_cfg.log_level > LOG_LVL_WARN) {
			tunnel_explain(t, err, line, sizeof(line));
			preload_log(LOG_LVL_INFO, "%s; trying the next alternative", line);
		}
		return;
	}
	reason = (int)tunnel_reason(t, err);
	hop = t->down_hop != 0 ? (t->down_hop - 1) * PRELOAD_MAX_ALTS :
	    (t->hop < preload_cfg.nhops ? t->hop : preload_cfg.nhops - 1) *
	    PRELOAD_MAX_ALTS + t->alt[t->hop < preload_cfg.nhops ? t->hop :
	    preload_cfg.nhops - 1];
	/* A reply's code: SOCKS5's, or the HTTP status or SOCKS4 code (several
	 * HTTP statuses map to one SOCKS5 code, and each is its own reason). */
	detail = reason == TR_REPLY ? (tunnel_hop(t, t->hop < preload_cfg.nhops ?
	    t->hop : preload_cfg.nhops - 1)->proxy.proto == S5_PROTO_SOCKS5 ? t->rep :
	    t->c.status) : reason == TR_UNREACHABLE ? t->dial_err : 0;
	/* The command too: a refused UDP ASSOCIATE must not hide a refused
	 * CONNECT through the same proxy. */
	key = (uint64_t)hop << 32 | (uint64_t)(t->cmd & 0x7f) << 24 |
	    (uint64_t)(reason & 0xff) << 16 | (uint64_t)(detail & 0xffff);
	tunnel_explain(t, err, line, sizeof(line));
	if (next)
		preload_log_limited(LOG_LVL_WARN, key, "%s; trying the next alternative", line);
	else
		preload_log_limited(LOG_LVL_WARN, key, "%s; the program sees %s", line,
		    preload_errno_name(err));
}

void
tunnel_diagnose(const struct tunnel *t, int err)
{
	tunnel_say(t, err, false);
}

/*
 * Linux: connect() with AF_UNSPEC disconnects a TCP socket, so a failed
 * handshake leaves the socket as one whose connect failed, not half-talking
 * to a proxy. The kernel then holds ECONNRESET pending: poll() says
 * POLLOUT|POLLERR|POLLHUP and a send() gets an errno instead of SIGPIPE, as
 * after a failed connect. peer.c answers SO_ERROR with the real errno (and
 * clears this one).
 */
void
tunnel_dissolve(int fd)
{
	struct sockaddr unspec;

	memset(&unspec, 0, sizeof(unspec));
	unspec.sa_family = AF_UNSPEC;
	(void)preload_real.connect(fd, &unspec, sizeof(unspec));
}

/*
 * After tunnel_dissolve(), make the socket poll as one whose connect just
 * failed: POLLOUT|POLLERR|POLLHUP. A socket the proxy reset (or never
 * answered) is closed already and has no error left to report, since our
 * own recv() or SO_ERROR took it; a non-blocking connect to a loopback port
 * that refuses (bound, not listening: nothing else can take it meanwhile)
 * leaves ECONNREFUSED pending again. peer.c answers SO_ERROR with the real
 * errno and clears this one.
 */
void
tunnel_refail(int fd)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(ss);
	int ref, flags;

	if (PRELOAD_REAL(poll)(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		return;
	if (PRELOAD_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return;
	memset(&ss, 0, sizeof(ss));
	if (len == sizeof(*s6)) {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
	} else {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	ref = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ref < 0)
		return;
	if (bind(ref, (struct sockaddr *)&ss, len) == 0 &&
	    PRELOAD_REAL(getsockname)(ref, (struct sockaddr *)&ss, &len) == 0 &&
	    (flags = PRELOAD_REAL(fcntl)(fd, F_GETFL)) >= 0) {
		if (!(flags & O_NONBLOCK))
			(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK);
		(void)preload_real.connect(fd, (struct sockaddr *)&ss, len);
		if (!(flags & O_NONBLOCK))
			(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);
	}
	(void)PRELOAD_REAL(close)(ref);
	/* Refused already (ECONNREFUSED stays pending), or still in SYN_SENT
	 * where loopback drops SYNs: disconnecting then leaves ECONNRESET
	 * pending. Either way POLLERR, and no local address kept. */
	tunnel_dissolve(fd);
}

int
tunnel_wait(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	long long left;
	int r;

	for (;;) {
		left = deadline - tunnel_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = PRELOAD_REAL(poll)(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return pfd.revents;	/* errors show in the next send/recv */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* --- Alternatives: attempts and moving on (failover.c) ------------------- */

int
tunnel_all_down(const struct tunnel *t)
{
	return t->down_hop != 0 ? -ECONNREFUSED : 0;
}

/*
 * The time position pos may take before t moves on: what is left of the
 * connect's, divided among the alternatives of pos still to try and this
 * one; all of it when none is left (or pos is past the last hop: the
 * target's answer is awaited). Sets t->give_up (0: the connect's deadline).
 */
static void
tunnel_share(struct tunnel *t, size_t pos)
{
	long long now = tunnel_now_ms();
	size_t rest = pos < preload_cfg.nhops ? failover_untried(t, pos) : 0;

	if (rest == 0 || t->deadline <= now) {
		t->give_up = 0;
		t->share_ms = 0;
		return;
	}
	t->give_up = now + (t->deadline - now) / (long long)(rest + 1);
	t->share_ms = (int)(t->give_up - now);
}

long long
tunnel_attempt(struct tunnel *t, long long deadline)
{
	t->deadline = deadline;
	tunnel_share(t, 0);
	return tunnel_due(t);
}

long long
tunnel_due(const struct tunnel *t)
{
	return t->give_up > 0 && t->give_up < t->deadline ? t->give_up : t->deadline;
}

void
tunnel_follow(struct tunnel *t, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct s5_addr a;
	const struct preload_hop *h;
	size_t k;

	if (preload_cfg.nhops == 0 || preload_cfg.nalts[0] < 2 ||
	    preload_real.getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    s5_addr_from_sockaddr(&a, (struct sockaddr *)&ss, len) != 0)
		return;
	for (k = 0; k < preload_cfg.nalts[0]; k++) {
		h = &preload_cfg.hops[0][k];
		if ((h->has_v4 && s5_addr_equal(&a, &h->v4)) ||
		    (h->has_v6 && s5_addr_equal(&a, &h->v6))) {
			t->alt[0] = (uint8_t)k;
			t->down_hop = 0;
			return;
		}
	}
}

bool
tunnel_retry(struct tunnel *t, int fd, int err, long long deadline)
{
	size_t pos = t->hop;
	bool down = true;
	uint8_t was, next;

	tunnel_unlearn(t);
	if (pos >= preload_cfg.nhops || t->down_hop != 0)
		return false;
	if (tunnel_learned(t) && t->rep < 0 && t->answered && t->why == 0) {
		/* Pipelined on its word, it answered in part, then went
		 * quiet: as a server does that drops what follows a message
		 * (another one took the port), or as a slow target does.
		 * The next alternative, this one not marked down. */
		down = false;
	} else if (t->rep >= 0 || (t->answered && t->why == 0 && !s5_client_midway(&t->c))) {
		/* A refusal, or a stall or hang-up after the hop answered
		 * whole messages: about the next hop (that hop failed), or the
		 * target, which is no proxy's failure. One that stops in the
		 * middle of its reply ("05 00 00" and no more) is broken: its
		 * own alternatives, below. */
		if (pos + 1 == preload_cfg.nhops)
			return false;
		pos++;
	} else if (t->why == S5C_E_ADDR) {
		return false;	/* no alternative carries it either (one scheme) */
	} else if (pos + 1 == preload_cfg.nhops && t->why == 0 && !t->answered &&
	    tunnel_hung_up_on_request(t) &&
	    (err == ECONNREFUSED || err == ECONNRESET || err == EPIPE)) {
		/* SOCKS4 at the last hop, hung up on the request: as ssh -D
		 * refuses a target, or a broken server. The next alternative,
		 * this one not marked down (one refused target must not put
		 * every alternative in back-off). */
		down = false;
	} else if (err == EAFNOSUPPORT) {
		down = false;	/* alive, but not for this socket's family */
	}
	if (preload_cfg.nalts[pos] < 2)
		return false;
	was = t->alt[pos];
	if (tunnel_now_ms() >= deadline) {
		if (down)
			failover_down(&tunnel_hop(t, pos)->proxy, pos);
		return false;
	}
	if (!failover_next(t, pos, down))
		return false;
	/* Said of the alternative that failed. */
	next = t->alt[pos];
	t->alt[pos] = was;
	tunnel_say(t, err, true);
	t->alt[pos] = next;
	tunnel_dissolve(fd);
	t->hop = 0;
	t->started = t->up = t->writing = t->want_read = t->http = t->answered = false;
	t->sent = false;
	t->in_len = t->out_off = 0;
	t->ahead_len = t->ahead_off = t->ahead_hop = 0;
	t->rep = -1;
	t->why = 0;
	t->dial_err = 0;
	(void)tunnel_attempt(t, deadline);
	return true;
}

int
tunnel_dial(struct tunnel *t, int fd, int domain, long long deadline)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int flags, r;

	r = tunnel_first_sockaddr(t, fd, domain, &ss, &sslen);
	if (r == -EAFNOSUPPORT) {
		preload_log(LOG_LVL_INFO, "proxy %s has no address for this "
		    "socket's family", preload_cfg.chain_text);
		return -EAFNOSUPPORT;
	}
	if (r < 0)
		return r;
	flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && PRELOAD_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return -errno;
	r = preload_real.connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : -errno;
	if (!(flags & O_NONBLOCK))
		(void)PRELOAD_REAL(fcntl)(fd, F_SETFL, flags);	/* P2 */
	if (r == -EINPROGRESS || r == -EINTR) {
		r = tunnel_wait(fd, POLLOUT, deadline);
		if (r >= 0)
			r = tunnel_dial_result(fd, r);
	}
	return r;
}

/* The whole handshake inside the call, with poll() and one deadline: for a
 * connect the engine cannot take (no descriptor left for its copy), and
 * the connections the library makes for itself. Each attempt (an
 * alternative) has its share of the time (tunnel_attempt()). */
static int
tunnel_run(int fd, int domain, struct tunnel *t, long long deadline)
{
	int r;

	if ((r = tunnel_all_down(t)) < 0)
		return r;
	(void)tunnel_attempt(t, deadline);
	for (;;) {
		r = tunnel_dial(t, fd, domain, tunnel_due(t));
		/* The program's socket is connected already (or connecting):
		 * the kernel's answer to a second connect(), the socket
		 * untouched. */
		if (r == -EISCONN || r == -EALREADY)
			return r;
		if (r < 0) {
			if (r != -EAFNOSUPPORT)
				t->dial_err = -r;	/* for the line saying so */
			if (tunnel_retry(t, fd, -r, deadline))
				continue;
			/* Said as such (TR_FAMILY), not "closed". */
			t->family = r == -EAFNOSUPPORT && t->dial_err == 0;
			return r == -EAFNOSUPPORT ? -ECONNREFUSED : tunnel_dial_errno(t, -r);
		}
		while ((r = tunnel_step(t, fd)) > 0) {
			r = tunnel_wait(fd, r == TUNNEL_READ ? POLLIN : POLLOUT, tunnel_due(t));
			if (r < 0)
				break;
		}
		if (r >= 0)
			return r;
		if (!tunnel_retry(t, fd, -r, deadline))
			return r;
	}
}

/* No thread cancellation inside (the connections the library makes for
 * itself, a UDP ASSOCIATE's or a BIND's, would be left open, their state
 * half made): a cancel waits for the end of the call. */
int
tunnel_request(int fd, int domain, struct tunnel *t)
{
	int r, cancel;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	r = tunnel_run(fd, domain, t, tunnel_now_ms() + preload_cfg.timeout_ms);
	pthread_setcancelstate(cancel, NULL);
	return r;
}

/* The whole handshake in the call admits no thread cancellation (its
 * waits, dial and flag changes would leave the socket mid-handshake or
 * with our O_NONBLOCK): a cancel waits for the end of the call. */
int
tunnel_connect(int fd, int domain, const struct s5_addr *dst, struct tunnel *t)
{
	socklen_t len = sizeof(int);
	int pending, flags, r, cancel;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	tunnel_init(t, dst);
	r = tunnel_request(fd, domain, t);
	if (r < 0 && r != -EISCONN && r != -EALREADY) {
		tunnel_dissolve(fd);
		/* A blocking connect() reports the failure itself: the
		 * kernel's pending ECONNRESET is cleared. */
		flags = PRELOAD_REAL(fcntl)(fd, F_GETFL);
		if (flags >= 0 && !(flags & O_NONBLOCK))
			(void)preload_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &len);
		else
			tunnel_refail(fd);
	}
	pthread_setcancelstate(cancel, NULL);
	return r;
}
