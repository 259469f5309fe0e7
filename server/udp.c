/*
 * udp.c: UDP ASSOCIATE's relay (RFC 1928 §6, §7).
 *
 * Client -> target: a datagram on the relay socket is accepted only from
 * the control connection's peer IP and the client's port (given in the
 * request, or locked on the first valid datagram), parsed, and its DATA
 * sent from the outgoing socket of the destination's family. Target ->
 * client: whatever arrives on an outgoing socket is wrapped in a header
 * naming its sender and sent to the client from the relay socket. Anything
 * we will not or cannot relay is dropped in silence, as §7 asks, with one
 * line at -v.
 *
 * Both directions read into a buffer on the stack sized for the largest
 * UDP payload, so a 64 KiB datagram is never truncated and an idle
 * association holds no buffer. Replies go out with sendmsg() and the
 * header in its own iovec: the payload is never copied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bind.h"
#include "log.h"
#include "rules.h"
#include "server.h"
#include "udp.h"

enum {
	UDP_LOG_MAX = 1024,		/* one -v line about a dropped datagram */
};

/* A datagram to a name, waiting for the resolver. */
struct udp_pending {
	struct udp_pending *prev, *next;
	struct udp_assoc *u;
	struct resolver_job *job;
	char name[S5_DOMAIN_MAX + 1];
	uint16_t port;
	size_t len;
	uint8_t data[];
};

struct udp_assoc {
	struct server *srv;
	int rfd;			/* relay: the client's side */
	int ofd4, ofd6;			/* outgoing; -1 until first used */
	struct sockaddr_storage ctl;	/* control connection's peer, for rules */
	struct s5_addr client_ip;	/* the only IP we relay for */
	uint16_t client_port;		/* 0 until locked */
	struct sockaddr_storage client;	/* where replies go, once locked */
	socklen_t clientlen;
	char client_text[S5_ADDR_TEXT_MAX];
	uint64_t c2t, t2c, last_ms;
	struct udp_pending *pending;
	size_t npending;
	/* The last name looked up: DNS-style traffic repeats one name. */
	char cache_name[S5_DOMAIN_MAX + 1];
	struct sockaddr_storage cache_sa;
	socklen_t cache_len;
	uint64_t cache_ms;
};

static void udp_on_relay(struct loop *l, int fd, uint32_t events, void *arg);
static void udp_on_target(struct loop *l, int fd, uint32_t events, void *arg);

/* §7: drops are silent on the wire; at -v each one is a log line. */
static void
udp_drop(const struct udp_assoc *u, const char *dir, const char *who, const char *why)
{
	char line[UDP_LOG_MAX], ewho[S5_ADDR_TEXT_MAX];
	size_t i;
	int n;

	if (log_get_level() < LOG_LEVEL_VERBOSE)
		return;
	/* A name is the client's bytes: it must not be able to forge a line. */
	for (i = 0; who[i] != '\0' && i + 1 < sizeof(ewho); i++)
		ewho[i] = who[i] > ' ' && who[i] < 0x7f ? who[i] : '?';
	ewho[i] = '\0';
	n = snprintf(line, sizeof(line), "socksifyd: udp-associate client=%s: "
	    "datagram %s %s dropped: %s\n", u->client_text, dir, ewho, why);
	if (n > 0)
		log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void
udp_drop_sa(const struct udp_assoc *u, const char *dir, const struct sockaddr *sa,
    const char *why)
{
	char text[S5_ADDR_TEXT_MAX];

	if (s5_sockaddr_format(sa, text, sizeof(text)) < 0)
		strcpy(text, "-");
	udp_drop(u, dir, text, why);
}

int
udp_assoc_new(struct server *srv, const struct sockaddr *client,
    socklen_t clientlen, const struct sockaddr *local, socklen_t locallen,
    uint16_t hint_port, struct udp_assoc **out, struct s5_addr *bnd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct udp_assoc *u;
	int err;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return -ENOMEM;
	u->srv = srv;
	u->ofd4 = u->ofd6 = -1;
	if (clientlen > sizeof(u->ctl))
		clientlen = sizeof(u->ctl);
	memcpy(&u->ctl, client, clientlen);
	if (s5_addr_from_sockaddr(&u->client_ip, client, clientlen) < 0) {
		free(u);
		return -EAFNOSUPPORT;
	}
	if (s5_sockaddr_format(client, u->client_text, sizeof(u->client_text)) < 0)
		strcpy(u->client_text, "-");
	u->client_port = hint_port;
	u->last_ms = loop_now(srv->loop);
	/* §6 reply: bound to the address the client reached us on, not the wildcard. */
	u->rfd = socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->rfd == -1) {
		err = -errno;
		free(u);
		return err;
	}
	if (bind(u->rfd, local, locallen) == -1 ||
	    getsockname(u->rfd, (struct sockaddr *)&ss, &sslen) == -1) {
		err = -errno;
		goto fail;
	}
	if (s5_addr_from_sockaddr(bnd, (struct sockaddr *)&ss, sslen) < 0) {
		err = -EAFNOSUPPORT;
		goto fail;
	}
	if ((err = loop_add(srv->loop, u->rfd, EPOLLIN, udp_on_relay, u)) < 0)
		goto fail;
	*out = u;
	return 0;
fail:
	close(u->rfd);
	free(u);
	return err;
}

static void
udp_close_fd(struct udp_assoc *u, int *fd)
{
	if (*fd < 0)
		return;
	loop_del(u->srv->loop, *fd);
	close(*fd);
	*fd = -1;
}

static void
udp_pending_free(struct udp_assoc *u, struct udp_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		u->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	u->npending--;
	free(p);
}

void
udp_assoc_free(struct udp_assoc *u)
{
	if (u == NULL)
		return;
	while (u->pending != NULL) {
		resolver_cancel(u->srv->resolver, u->pending->job);
		udp_pending_free(u, u->pending);
	}
	udp_close_fd(u, &u->rfd);
	udp_close_fd(u, &u->ofd4);
	udp_close_fd(u, &u->ofd6);
	free(u);
}

void
udp_assoc_stats(const struct udp_assoc *u, uint64_t *c2t, uint64_t *t2c,
    uint64_t *last_ms)
{
	*c2t = u->c2t;
	*t2c = u->t2c;
	*last_ms = u->last_ms;
}

/* --- client -> target ---------------------------------------------------- */

static void
udp_send(struct udp_assoc *u, const struct sockaddr *dst, socklen_t dstlen,
    const uint8_t *data, size_t len)
{
	int *fd = dst->sa_family == AF_INET ? &u->ofd4 : &u->ofd6;
	ssize_t n;

	/* rules.h: checked per datagram, after resolution. */
	if (!rules_dest_ok(rules_current(), (struct sockaddr *)&u->ctl,
	    S5_CMD_UDP_ASSOCIATE, dst)) {
		udp_drop_sa(u, "to", dst, "denied by rules");
		return;
	}
	if (*fd < 0) {
		*fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (*fd < 0) {
			udp_drop_sa(u, "to", dst, strerror(errno));
			return;
		}
		if (loop_add(u->srv->loop, *fd, EPOLLIN, udp_on_target, u) < 0) {
			close(*fd);
			*fd = -1;
			udp_drop_sa(u, "to", dst, "out of memory");
			return;
		}
	}
	n = sendto(*fd, data, len, MSG_NOSIGNAL, dst, dstlen);
	if (n < 0) {
		/* A full socket buffer loses the datagram, as the network would. */
		udp_drop_sa(u, "to", dst, strerror(errno));
		return;
	}
	u->c2t += (uint64_t)n;
	u->last_ms = loop_now(u->srv->loop);
}

static void
udp_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void
udp_on_resolved(void *arg, int gai_err, struct addrinfo *ai)
{
	struct udp_pending *p = arg;
	struct udp_assoc *u = p->u;

	if (gai_err != 0 || ai == NULL) {
		udp_drop(u, "to", p->name, gai_err != 0 ? gai_strerror(gai_err) : "no address");
	} else if (ai->ai_addrlen <= sizeof(u->cache_sa)) {
		memcpy(u->cache_name, p->name, sizeof(u->cache_name));
		memcpy(&u->cache_sa, ai->ai_addr, ai->ai_addrlen);
		u->cache_len = ai->ai_addrlen;
		u->cache_ms = loop_now(u->srv->loop);
		udp_set_port(&u->cache_sa, p->port);
		udp_send(u, (struct sockaddr *)&u->cache_sa, u->cache_len, p->data, p->len);
	}
	if (ai != NULL)
		freeaddrinfo(ai);
	udp_pending_free(u, p);
}

/* A destination given by name: the cached lookup, or the resolver. */
static void
udp_send_name(struct udp_assoc *u, const struct s5_addr *dst,
    const uint8_t *data, size_t len)
{
	struct loop *l = u->srv->loop;
	struct udp_pending *p;

	if (u->cache_len > 0 && strcmp(u->cache_name, dst->u.domain.name) == 0 &&
	    loop_now(l) - u->cache_ms < SERVER_UDP_NAME_CACHE_MS) {
		udp_set_port(&u->cache_sa, dst->port);
		udp_send(u, (struct sockaddr *)&u->cache_sa, u->cache_len, data, len);
		return;
	}
	if (u->npending >= SERVER_UDP_PENDING_MAX) {
		udp_drop(u, "to", dst->u.domain.name, "too many lookups pending");
		return;
	}
	if ((p = malloc(sizeof(*p) + len)) == NULL) {
		udp_drop(u, "to", dst->u.domain.name, "out of memory");
		return;
	}
	p->u = u;
	memcpy(p->name, dst->u.domain.name, sizeof(p->name));
	p->port = dst->port;
	p->len = len;
	memcpy(p->data, data, len);
	if (resolver_lookup(u->srv->resolver, p->name, p->port,
	    (struct sockaddr *)&u->ctl, udp_on_resolved, p, &p->job) < 0) {
		udp_drop(u, "to", dst->u.domain.name, "resolver busy");
		free(p);
		return;
	}
	p->prev = NULL;
	if ((p->next = u->pending) != NULL)
		p->next->prev = p;
	u->pending = p;
	u->npending++;
}

static void
udp_on_relay(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct udp_assoc *u = arg;
	uint8_t buf[S5_UDP_HEADER_MAX + SERVER_UDP_DGRAM_MAX];
	struct sockaddr_storage from, dst;
	socklen_t fromlen = sizeof(from);
	struct s5_udp_header h;
	struct s5_addr src;
	size_t used = 0;
	ssize_t n;
	int dstlen;

	(void)l;
	(void)events;
	n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &fromlen);
	if (n < 0)
		return;
	/* §7: "MUST drop any datagrams arriving from any source IP address
	 * other than the one recorded for the particular association." */
	if (s5_addr_from_sockaddr(&src, (struct sockaddr *)&from, fromlen) < 0 ||
	    !bind_same_ip(&src, &u->client_ip)) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "not the client's address");
		return;
	}
	if (u->client_port != 0 && src.port != u->client_port) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "not the client's port");
		return;
	}
	if ((size_t)n > sizeof(buf)) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "too large");
		return;
	}
	/* A datagram shorter than its header says is as bad as a wrong one. */
	if (s5_parse_udp_header(buf, (size_t)n, &h, &used) != 0) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "malformed header");
		return;
	}
	/* §7: no fragmentation here, so FRAG != 0 is dropped; the association stays. */
	if (h.frag != 0) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "fragment (FRAG != 0)");
		return;
	}
	if (u->client_port == 0 || u->clientlen == 0) {
		u->client_port = src.port;
		memcpy(&u->client, &from, fromlen);
		u->clientlen = fromlen;
	}
	if (h.addr.atyp == S5_ATYP_DOMAIN) {
		udp_send_name(u, &h.addr, buf + used, (size_t)n - used);
		return;
	}
	if ((dstlen = s5_addr_to_sockaddr(&h.addr, &dst)) < 0) {
		udp_drop(u, "to", "-", "bad address");
		return;
	}
	udp_send(u, (struct sockaddr *)&dst, (socklen_t)dstlen, buf + used, (size_t)n - used);
}

/* --- target -> client ---------------------------------------------------- */

static void
udp_on_target(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct udp_assoc *u = arg;
	uint8_t buf[SERVER_UDP_DGRAM_MAX], hdr[S5_UDP_HEADER_MAX];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	struct s5_udp_header h = { .frag = 0 };
	struct iovec iov[2];
	struct msghdr msg = { 0 };
	ssize_t n;
	int hlen;

	(void)events;
	n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
	if (n < 0)
		return;
	if (u->clientlen == 0) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "client address not known yet");
		return;
	}
	/* Any host may answer on our outgoing port, but not one the rules deny. */
	if (!rules_dest_ok(rules_current(), (struct sockaddr *)&u->ctl,
	    S5_CMD_UDP_ASSOCIATE, (struct sockaddr *)&from)) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "denied by rules");
		return;
	}
	/* §7: the reply carries the sender's address in the same header. */
	if (s5_addr_from_sockaddr(&h.addr, (struct sockaddr *)&from, fromlen) < 0 ||
	    (hlen = s5_encode_udp_header(hdr, sizeof(hdr), &h)) < 0) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, "bad sender address");
		return;
	}
	iov[0].iov_base = hdr;
	iov[0].iov_len = (size_t)hlen;
	iov[1].iov_base = buf;
	iov[1].iov_len = (size_t)n;
	msg.msg_name = &u->client;
	msg.msg_namelen = u->clientlen;
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	if (sendmsg(u->rfd, &msg, MSG_NOSIGNAL) < 0) {
		udp_drop_sa(u, "from", (struct sockaddr *)&from, strerror(errno));
		return;
	}
	u->t2c += (uint64_t)n;
	u->last_ms = loop_now(l);
}
