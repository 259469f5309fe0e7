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
 * A wakeup takes what has queued up on the socket, up to SERVER_UDP_BATCH
 * datagrams, with one recvmmsg(); each is checked and relayed or dropped
 * by one, in order, and those relayed leave with one sendmmsg() per
 * outgoing socket, so a burst costs two system calls, not two a
 * datagram. The buffers are the worker's (struct udp_batch), sized so a
 * 64 KiB datagram is never truncated; an association holds none. Replies
 * carry the header in its own iovec: the payload is never copied.
 *
 * A run of queued datagrams to one destination, all of one size but the
 * last (a burst of 1 KiB reads, a stream of QUIC packets), leaves as one
 * datagram with a UDP_SEGMENT control message (UDP GSO, Linux 4.18): the
 * kernel walks its IP output and the loopback or device path once for the
 * run and cuts it into the same datagrams at the end, for a quarter of
 * sendmmsg()'s cost a datagram on loopback. Headers differ from datagram
 * to datagram and still go in their own iovecs, as each segment's first
 * bytes. Where the route cannot (a segment above its MTU: EINVAL or
 * EMSGSIZE; no checksum offload: EIO) the run goes by sendmmsg() after
 * all, and the association stops trying that size (or any) that way.
 *
 * Per datagram, only what can differ is worked out again: once the
 * client's address is locked, the kernel's bytes for a sender are compared
 * with it as they are; a datagram to (or from) the peer of the one queued
 * before it in the same batch takes that one's rules verdict (and, towards
 * the client, its header): the rules cannot change within a batch.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
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
	UDP_DROP_LINES = 10,		/* ... at most this many a second an
					 * association; the rest counted */
	UDP_DROP_LINES_WORKER = 100,	/* ... and a worker, all its associations */
	UDP_OUT_FDS = 3,		/* outgoing sockets: IPv4, IPv6, IPv4-mapped */
	/* A slot takes the largest datagram with its header, so none is cut. */
	UDP_SLOT_BYTES = S5_UDP_HEADER_MAX + SERVER_UDP_DGRAM_MAX,
	/* One GSO send: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9,
	 * 128 since), and what one IPv4 datagram carries. */
	UDP_GSO_SEGS_MAX = 64,
	UDP_GSO_BYTES_MAX = 65507,
	UDP_GSO_ANY = UDP_SLOT_BYTES + 1,	/* gso_below: every size is tried */
};

_Static_assert(SERVER_UDP_BATCH <= UDP_GSO_SEGS_MAX, "a batch is one GSO send at most");

/* One datagram queued for sendmmsg(). */
struct udp_out {
	int fd;				/* the socket it leaves from */
	const struct sockaddr *who;	/* named in its drop line */
	struct sockaddr_storage to;	/* client -> target: the destination */
	uint8_t hdr[S5_UDP_HEADER_MAX];	/* target -> client: the header in front */
	struct iovec iov[2];		/* the header (empty towards a target), the payload */
};

/*
 * A worker's datagram buffers, shared by all its associations: a callback
 * relays its batch to the end before it returns, and the loop runs one
 * callback at a time. Every slot takes the largest datagram: recvmmsg()
 * discards what does not fit, so smaller slots with a fallback for big
 * datagrams (seen by MSG_TRUNC) would lose them, or have to peek at each
 * datagram first, a system call a datagram again. SERVER_UDP_BATCH slots
 * of UDP_SLOT_BYTES are about 2 MiB of address space a worker, mapped
 * once, at its first association. The kernel backs a page only when a
 * datagram is first written into it, so 1 KiB traffic keeps a page or
 * two a slot resident, and only big datagrams more (until the worker
 * ends, 2 MiB at most); mmap(), not malloc(), makes that so whatever
 * malloc's threshold for mapping a block apart.
 */
struct udp_batch {
	struct mmsghdr inm[SERVER_UDP_BATCH];
	struct iovec iniov[SERVER_UDP_BATCH];
	struct sockaddr_storage from[SERVER_UDP_BATCH];
	struct mmsghdr outm[SERVER_UDP_BATCH];
	struct udp_out out[SERVER_UDP_BATCH];
	size_t nout;
	struct iovec gsoiov[2 * SERVER_UDP_BATCH];	/* one GSO send's iovecs */
	uint8_t data[SERVER_UDP_BATCH][UDP_SLOT_BYTES];
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
	int ofdm;			/* IPv6, to IPv4-mapped addresses (bound to
					 * the --outgoing IPv4 address, mapped) */
	struct sockaddr_storage ctl;	/* control connection's peer, for rules */
	const char *user;		/* its login (the session's), NULL: none */
	struct s5_addr client_ip;	/* the only IP we relay for */
	uint16_t client_port;		/* 0 until locked */
	struct sockaddr_storage client;	/* where replies go, once locked */
	socklen_t clientlen;
	char client_text[S5_ADDR_TEXT_MAX];
	uint64_t c2t, t2c, last_ms;
	/* GSO is tried for segments shorter than this: to the client, to targets. */
	size_t gso_below_client, gso_below_target;
	struct udp_pending *pending;
	size_t npending;
	/* The last name looked up: DNS-style traffic repeats one name. */
	char cache_name[S5_DOMAIN_MAX + 1];
	struct sockaddr_storage cache_sa;
	socklen_t cache_len;
	uint64_t cache_ms;
	/* -v lines about drops: this second's, and those not written. */
	uint64_t drop_sec;
	unsigned drop_lines;
	uint64_t drop_unsaid;
	/* Its session ended with lookups under way (udp_assoc_orphan()):
	 * kept for them alone, on the worker's list. */
	bool orphan;
	struct udp_assoc *orphan_prev, *orphan_next;
};

static void udp_on_relay(struct loop *l, int fd, uint32_t events, void *arg);
static void udp_on_target(struct loop *l, int fd, uint32_t events, void *arg);

/*
 * §7: drops are silent on the wire; at -v each one is a log line, up to
 * UDP_DROP_LINES a second for an association: any host that learns the
 * relay's port can send it datagrams, and a line for each was a flood a
 * slow standard error turned into a stall. The next line written says how
 * many went unsaid.
 */
static void
udp_drop(struct udp_assoc *u, const char *dir, const char *who, const char *why)
{
	char line[UDP_LOG_MAX], ewho[S5_ADDR_TEXT_MAX], more[64] = "";
	uint64_t sec;
	size_t i;
	int n;

	if (log_get_level() < LOG_LEVEL_VERBOSE)
		return;
	sec = loop_now(u->srv->loop) / 1000;
	if (sec != u->drop_sec) {
		u->drop_sec = sec;
		u->drop_lines = 0;
	}
	if (sec != u->srv->udp_drop_sec) {
		u->srv->udp_drop_sec = sec;
		u->srv->udp_drop_lines = 0;
	}
	/* Many associations at 10 a second each are a flood too. */
	if (u->drop_lines >= UDP_DROP_LINES || u->srv->udp_drop_lines >= UDP_DROP_LINES_WORKER) {
		u->drop_unsaid++;
		return;
	}
	u->drop_lines++;
	u->srv->udp_drop_lines++;
	if (u->drop_unsaid > 0) {
		snprintf(more, sizeof(more), " (and %llu dropped before, unlogged)",
		    (unsigned long long)u->drop_unsaid);
		u->drop_unsaid = 0;
	}
	/* A name is the client's bytes: it must not be able to forge a line. */
	for (i = 0; who[i] != '\0' && i + 1 < sizeof(ewho); i++)
		ewho[i] = who[i] > ' ' && who[i] < 0x7f ? who[i] : '?';
	ewho[i] = '\0';
	n = snprintf(line, sizeof(line), "socksifyd: udp-associate client=%s: "
	    "datagram %s %s dropped: %s%s\n", u->client_text, dir, ewho, why, more);
	if (n > 0)
		log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void
udp_drop_sa(struct udp_assoc *u, const char *dir, const struct sockaddr *sa,
    const char *why)
{
	char text[S5_ADDR_TEXT_MAX];

	if (s5_sockaddr_format(sa, text, sizeof(text)) < 0)
		strcpy(text, "-");
	udp_drop(u, dir, text, why);
}

/* --- the batch ------------------------------------------------------------ */

static int
udp_batch_new(struct udp_batch **out)
{
	struct udp_batch *b;
	int i;

	b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return -errno;
	for (i = 0; i < SERVER_UDP_BATCH; i++) {
		b->iniov[i].iov_base = b->data[i];
		b->iniov[i].iov_len = sizeof(b->data[i]);
		b->inm[i].msg_hdr.msg_name = &b->from[i];
		b->inm[i].msg_hdr.msg_iov = &b->iniov[i];
		b->inm[i].msg_hdr.msg_iovlen = 1;
	}
	*out = b;
	return 0;
}

void
udp_server_free(struct server *srv)
{
	if (srv->udp != NULL)
		munmap(srv->udp, sizeof(*srv->udp));
	srv->udp = NULL;
}

/* What has queued up on fd, up to SERVER_UDP_BATCH datagrams; 0 for none. */
static unsigned
udp_recv_batch(struct udp_batch *b, int fd, int flags)
{
	int i, n;

	for (i = 0; i < SERVER_UDP_BATCH; i++)
		b->inm[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
	n = recvmmsg(fd, b->inm, SERVER_UDP_BATCH, flags, NULL);
	return n > 0 ? (unsigned)n : 0;
}

/* Queues len bytes at data to name, to leave from fd; who is named if it
 * is dropped. The header, if any, goes in the entry's hdr. */
static struct udp_out *
udp_queue(struct udp_batch *b, int fd, const struct sockaddr *who,
    const void *name, socklen_t namelen, uint8_t *data, size_t len)
{
	struct udp_out *o = &b->out[b->nout];
	struct msghdr *m = &b->outm[b->nout].msg_hdr;

	b->nout++;
	o->fd = fd;
	o->who = who;
	o->iov[0].iov_base = o->hdr;
	o->iov[0].iov_len = 0;
	o->iov[1].iov_base = data;
	o->iov[1].iov_len = len;
	memset(m, 0, sizeof(*m));
	m->msg_name = (void *)name;
	m->msg_namelen = namelen;
	m->msg_iov = o->iov;
	m->msg_iovlen = 2;
	return o;
}

static size_t
udp_out_len(const struct udp_out *o)
{
	return o->iov[0].iov_len + o->iov[1].iov_len;
}

static size_t *
udp_gso_below(struct udp_assoc *u, int fd)
{
	return fd == u->rfd ? &u->gso_below_client : &u->gso_below_target;
}

/* How many queued datagrams from i on can leave as one GSO send: same
 * socket, same destination, one size but a shorter last. 1: none. */
static size_t
udp_gso_run(struct udp_assoc *u, const struct udp_batch *b, size_t i)
{
	const struct msghdr *m = &b->outm[i].msg_hdr;
	size_t seg = udp_out_len(&b->out[i]), total = seg, len, g;

	if (seg == 0 || seg >= *udp_gso_below(u, b->out[i].fd))
		return 1;
	for (g = 1; i + g < b->nout && g < UDP_GSO_SEGS_MAX; g++) {
		const struct msghdr *pm = &b->outm[i + g].msg_hdr;

		len = udp_out_len(&b->out[i + g]);
		if (b->out[i + g].fd != b->out[i].fd || len == 0 || len > seg ||
		    total + len > UDP_GSO_BYTES_MAX || pm->msg_namelen != m->msg_namelen ||
		    memcmp(pm->msg_name, m->msg_name, m->msg_namelen) != 0)
			break;
		total += len;
		if (len < seg)
			return g + 1;
	}
	return g;
}

/* Sends queued datagrams i..i+g-1 as one GSO send. False when the kernel
 * refused it: nothing of it left, and the caller sends them one by one. */
static bool
udp_send_gso(struct udp_assoc *u, struct udp_batch *b, size_t i, size_t g,
    uint64_t *bytes)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	struct msghdr m = b->outm[i].msg_hdr;
	struct cmsghdr *cm;
	size_t k, seg = udp_out_len(&b->out[i]), *below = udp_gso_below(u, b->out[i].fd);
	uint16_t seg16 = (uint16_t)seg;
	uint64_t payload = 0;

	for (k = 0; k < g; k++) {
		b->gsoiov[2 * k] = b->out[i + k].iov[0];
		b->gsoiov[2 * k + 1] = b->out[i + k].iov[1];
		payload += b->out[i + k].iov[1].iov_len;
	}
	memset(&ctl, 0, sizeof(ctl));
	m.msg_iov = b->gsoiov;
	m.msg_iovlen = 2 * g;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(seg16));
	memcpy(CMSG_DATA(cm), &seg16, sizeof(seg16));
	if (sendmsg(b->out[i].fd, &m, MSG_NOSIGNAL) >= 0) {
		*bytes += payload;
		u->last_ms = loop_now(u->srv->loop);
		return true;
	}
	/* Only GSO's own refusals change what is tried; any other error
	 * (a full buffer, no route) is the datagrams', met again one by one. */
	if (errno == EINVAL || errno == EMSGSIZE)
		*below = seg;		/* above the route's MTU: smaller ones may pass */
	else if (errno == EIO || errno == EOPNOTSUPP || errno == ENOPROTOOPT)
		*below = 0;		/* no GSO this way (EIO: no checksum offload) */
	return false;
}

/*
 * Sends what is queued and empties the queue: a run that qualifies (see
 * udp_gso_run) by one GSO send, the rest a run of datagrams from one
 * socket by one sendmmsg(). sendmmsg() stops at the first datagram the
 * kernel refuses and, when others went before it, keeps the error to
 * itself: the next call starts at that one, fails with its error alone,
 * and drops just it. A full socket buffer loses datagrams, as the network
 * would.
 */
static void
udp_flush(struct udp_assoc *u, struct udp_batch *b, const char *dir,
    uint64_t *bytes)
{
	size_t i = 0, k, g;
	int n;

	while (i < b->nout) {
		g = udp_gso_run(u, b, i);
		if (g > 1 && udp_send_gso(u, b, i, g, bytes)) {
			i += g;
			continue;
		}
		/* A refused GSO run one by one; else up to where the next one starts. */
		if (g == 1)
			for (; i + g < b->nout && b->out[i + g].fd == b->out[i].fd &&
			    udp_gso_run(u, b, i + g) == 1; g++)
				;
		n = sendmmsg(b->out[i].fd, &b->outm[i], (unsigned)g, MSG_NOSIGNAL);
		if (n <= 0) {
			udp_drop_sa(u, dir, b->out[i].who, n < 0 ? strerror(errno) : "not sent");
			i++;
			continue;
		}
		for (k = i; k < i + (size_t)n; k++)
			*bytes += b->out[k].iov[1].iov_len;
		u->last_ms = loop_now(u->srv->loop);
		i += (size_t)n;
	}
	b->nout = 0;
}

/*
 * A relay socket of family fam. Its receive buffer is asked for at
 * SERVER_UDP_RCVBUF: a burst the default (rmem_default, 208 KiB: some 90
 * datagrams of 1 KiB) cannot hold would be lost here while the peers
 * themselves keep up. The kernel caps it at net.core.rmem_max, and a
 * refusal only leaves the default.
 */
static int
udp_socket(int fam)
{
	int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), v = SERVER_UDP_RCVBUF;

	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	return fd;
}

int
udp_assoc_new(struct server *srv, const struct sockaddr *client,
    socklen_t clientlen, const char *user, const struct sockaddr *local,
    socklen_t locallen, uint16_t hint_port, struct udp_assoc **out, struct s5_addr *bnd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct udp_assoc *u;
	int err;

	if (srv->udp == NULL && (err = udp_batch_new(&srv->udp)) < 0)
		return err;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return -ENOMEM;
	u->user = user;
	u->srv = srv;
	u->ofd4 = u->ofd6 = u->ofdm = -1;
	u->gso_below_client = u->gso_below_target = UDP_GSO_ANY;
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
	u->rfd = udp_socket(local->sa_family);
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
	/* The outgoing sockets it may open, counted from now (not as they
	 * open: sessions accepted meanwhile would take their room). */
	server_fds_extra(srv, UDP_OUT_FDS);
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
	char line[UDP_LOG_MAX];
	int n;

	if (u == NULL)
		return;
	if (u->drop_unsaid > 0 && log_get_level() >= LOG_LEVEL_VERBOSE) {
		n = snprintf(line, sizeof(line), "socksifyd: udp-associate client=%s: "
		    "%llu more datagrams dropped, unlogged\n", u->client_text,
		    (unsigned long long)u->drop_unsaid);
		if (n > 0)
			log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
	while (u->pending != NULL) {
		resolver_cancel(u->srv->resolver, u->pending->job);
		udp_pending_free(u, u->pending);
	}
	if (u->orphan) {
		if (u->orphan_prev != NULL)
			u->orphan_prev->orphan_next = u->orphan_next;
		else
			u->srv->udp_orphans = u->orphan_next;
		if (u->orphan_next != NULL)
			u->orphan_next->orphan_prev = u->orphan_prev;
	}
	udp_close_fd(u, &u->rfd);
	server_fds_extra(u->srv, -(long)UDP_OUT_FDS);
	udp_close_fd(u, &u->ofd4);
	udp_close_fd(u, &u->ofd6);
	udp_close_fd(u, &u->ofdm);
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

/* Queues a datagram to dst (asked for as name, or NULL: an address), if
 * the rules let it go there. */
static void
udp_send(struct udp_assoc *u, const struct sockaddr *dst, socklen_t dstlen,
    const char *name, uint8_t *data, size_t len)
{
	const struct rules_who who = {
		.client = (struct sockaddr *)&u->ctl, .user = u->user, .name = name,
	};
	struct sockaddr_in v4;
	int *fd;
	struct udp_batch *b = u->srv->udp;
	const struct udp_out *prev = b->nout > 0 ? &b->out[b->nout - 1] : NULL;
	struct udp_out *o;
	int err;
	bool same;

	/* An IPv4-mapped destination: an IPv6 socket of its own, bound to the
	 * --outgoing IPv4 address mapped, if any (one IPv6 socket cannot be
	 * bound for both kinds of destination). */
	if (dst->sa_family == AF_INET)
		fd = &u->ofd4;
	else if (outgoing_unmap(dst, &v4))
		fd = &u->ofdm;
	else
		fd = &u->ofd6;
	/* rules.h: checked per datagram, after resolution. One to where the
	 * datagram queued before it goes shares its verdict (the rules cannot
	 * change within a batch). */
	same = prev != NULL && prev->fd == *fd && name == NULL &&
	    b->outm[b->nout - 1].msg_hdr.msg_namelen == dstlen &&
	    memcmp(&prev->to, dst, dstlen) == 0;

	if (!same && !rules_dest_ok(rules_current(), &who, S5_CMD_UDP_ASSOCIATE, dst)) {
		udp_drop_sa(u, "to", dst, "denied by rules");
		return;
	}
	if (*fd < 0) {
		*fd = udp_socket(dst->sa_family);
		if (*fd < 0) {
			udp_drop_sa(u, "to", dst, strerror(errno));
			return;
		}
		if ((err = outgoing_bind(&u->srv->lim.out, *fd, dst, false)) < 0) {
			close(*fd);
			*fd = -1;
			udp_drop_sa(u, "to", dst, strerror(-err));
			return;
		}
		/* An orphan sends its last datagrams; it hears nothing. */
		if (!u->orphan && loop_add(u->srv->loop, *fd, EPOLLIN, udp_on_target, u) < 0) {
			close(*fd);
			*fd = -1;
			udp_drop_sa(u, "to", dst, "out of memory");
			return;
		}
	}
	/* dst may be the name cache, whose port the next datagram changes. */
	o = &b->out[b->nout];
	memcpy(&o->to, dst, dstlen);
	udp_queue(b, *fd, (struct sockaddr *)&o->to, &o->to, dstlen, data, len);
}

static void
udp_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Runs from the loop, between batches: its datagram is a batch of one. */
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
		udp_send(u, (struct sockaddr *)&u->cache_sa, u->cache_len, p->name, p->data, p->len);
		udp_flush(u, u->srv->udp, "to", &u->c2t);
	}
	if (ai != NULL)
		freeaddrinfo(ai);
	udp_pending_free(u, p);
	if (u->orphan && u->npending == 0) {
		struct server *srv = u->srv;

		udp_assoc_free(u);
		server_orphan_gone(srv);
	}
}

/* A destination given by name: the cached lookup, or the resolver. */
static void
udp_send_name(struct udp_assoc *u, const struct s5_addr *dst,
    uint8_t *data, size_t len)
{
	const struct rules_who who = {
		.client = (struct sockaddr *)&u->ctl, .user = u->user,
		.name = dst->u.domain.name,
	};
	struct loop *l = u->srv->loop;
	struct udp_pending *p;

	/* A rule naming it drops it before anything is looked up (and a
	 * name with the resolver's "\\" escapes is no host's). */
	if (strchr(dst->u.domain.name, '\\') != NULL ||
	    !rules_name_ok(rules_current(), &who, S5_CMD_UDP_ASSOCIATE, dst->port)) {
		udp_drop(u, "to", dst->u.domain.name, "denied by rules");
		return;
	}
	if (u->cache_len > 0 && strcmp(u->cache_name, dst->u.domain.name) == 0 &&
	    loop_now(l) - u->cache_ms < SERVER_UDP_NAME_CACHE_MS) {
		udp_set_port(&u->cache_sa, dst->port);
		udp_send(u, (struct sockaddr *)&u->cache_sa, u->cache_len, dst->u.domain.name,
		    data, len);
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
	    (struct sockaddr *)&u->ctl, false, udp_on_resolved, p, &p->job) < 0) {
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

/* Datagram k of the batch, from the client: queued for its target, handed
 * to the resolver, or dropped. */
static void
udp_from_client(struct udp_assoc *u, struct udp_batch *b, unsigned k)
{
	const struct msghdr *m = &b->inm[k].msg_hdr;
	struct sockaddr *from = (struct sockaddr *)&b->from[k];
	socklen_t fromlen = m->msg_namelen;
	uint8_t *buf = b->data[k];
	size_t n = b->inm[k].msg_len, used = 0;
	struct sockaddr_storage dst;
	struct s5_udp_header h;
	struct s5_addr src;
	bool known;
	int dstlen;

	/* §7: "MUST drop any datagrams arriving from any source IP address
	 * other than the one recorded for the particular association." Once
	 * the client's address is locked, the kernel's bytes for it are
	 * compared as they are: the same bytes passed these checks before. */
	known = u->clientlen != 0 && fromlen == u->clientlen &&
	    memcmp(from, &u->client, fromlen) == 0;
	if (!known && (s5_addr_from_sockaddr(&src, from, fromlen) < 0 ||
	    !bind_same_ip(&src, &u->client_ip))) {
		udp_drop_sa(u, "from", from, "not the client's address");
		return;
	}
	if (!known && u->client_port != 0 && src.port != u->client_port) {
		udp_drop_sa(u, "from", from, "not the client's port");
		return;
	}
	if ((m->msg_flags & MSG_TRUNC) || n > sizeof(b->data[k])) {
		udp_drop_sa(u, "from", from, "too large");
		return;
	}
	/* A datagram shorter than its header says is as bad as a wrong one. */
	if (s5_parse_udp_header(buf, n, &h, &used) != 0) {
		udp_drop_sa(u, "from", from, "malformed header");
		return;
	}
	/* §7: no fragmentation here, so FRAG != 0 is dropped; the association stays. */
	if (h.frag != 0) {
		udp_drop_sa(u, "from", from, "fragment (FRAG != 0)");
		return;
	}
	if (!known && (u->client_port == 0 || u->clientlen == 0)) {
		u->client_port = src.port;
		memcpy(&u->client, from, fromlen);
		u->clientlen = fromlen;
	}
	if (h.addr.atyp == S5_ATYP_DOMAIN) {
		udp_send_name(u, &h.addr, buf + used, n - used);
		return;
	}
	if ((dstlen = s5_addr_to_sockaddr(&h.addr, &dst)) < 0) {
		udp_drop(u, "to", "-", "bad address");
		return;
	}
	udp_send(u, (struct sockaddr *)&dst, (socklen_t)dstlen, NULL, buf + used, n - used);
}

/* --- target -> client ---------------------------------------------------- */

/* Datagram k of the batch, from a target: wrapped and queued for the
 * client, or dropped. *last is the batch's last datagram queued (-1: none
 * yet): a datagram from the same sender, the common case of a burst,
 * takes its verdict and header (the rules cannot change within a batch). */
static void
udp_from_target(struct udp_assoc *u, struct udp_batch *b, unsigned k, int *last)
{
	struct sockaddr *from = (struct sockaddr *)&b->from[k];
	socklen_t fromlen = b->inm[k].msg_hdr.msg_namelen;
	struct s5_udp_header h = { .frag = 0 };
	struct udp_out *o = &b->out[b->nout], *prev;
	int hlen;

	if (u->clientlen == 0) {
		udp_drop_sa(u, "from", from, "client address not known yet");
		return;
	}
	prev = *last >= 0 && b->inm[*last].msg_hdr.msg_namelen == fromlen &&
	    memcmp(&b->from[*last], from, fromlen) == 0 ? &b->out[b->nout - 1] : NULL;
	if (prev != NULL) {
		hlen = (int)prev->iov[0].iov_len;
		memcpy(o->hdr, prev->hdr, (size_t)hlen);
	} else if (!rules_dest_ok(rules_current(), &(const struct rules_who){
	    .client = (struct sockaddr *)&u->ctl, .user = u->user,
	    /* The host a datagram went to by name answers as that name. */
	    .name = u->cache_len == fromlen && memcmp(&u->cache_sa, from, fromlen) == 0 ?
	    u->cache_name : NULL }, S5_CMD_UDP_ASSOCIATE, from)) {
		/* Any host may answer on our outgoing port, but not one the rules deny. */
		udp_drop_sa(u, "from", from, "denied by rules");
		return;
	} else if (s5_addr_from_sockaddr(&h.addr, from, fromlen) < 0 ||
	    (hlen = s5_encode_udp_header(o->hdr, sizeof(o->hdr), &h)) < 0) {
		/* §7: the reply carries the sender's address in the same header. */
		udp_drop_sa(u, "from", from, "bad sender address");
		return;
	}
	o = udp_queue(b, u->rfd, from, &u->client, u->clientlen, b->data[k],
	    b->inm[k].msg_len);
	o->iov[0].iov_len = (size_t)hlen;
	*last = (int)k;
}

/* --- both ways ------------------------------------------------------------ */

/* One batch a wakeup: a burst costs one epoll_wait(), one recvmmsg() and a
 * sendmmsg() per outgoing socket, and the loop's other descriptors still
 * get their turn. */
static void
udp_on_relay(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct udp_assoc *u = arg;
	struct udp_batch *b = u->srv->udp;
	/* MSG_TRUNC: msg_len is a datagram's length even if it was cut. */
	unsigned k, n = udp_recv_batch(b, fd, MSG_TRUNC);

	(void)l;
	(void)events;
	for (k = 0; k < n; k++)
		udp_from_client(u, b, k);
	udp_flush(u, b, "to", &u->c2t);
}

/*
 * The session of u ends while datagrams to names wait for their lookups
 * (a fire-and-forget sender under socks5h: `echo hi | ncat -u name port`
 * through socksify): u stays, for them alone, until the last answer
 * (the resolver bounds each lookup) or the worker's end. It reads
 * nothing more, from the client or the targets. True when it took u.
 */
bool
udp_assoc_orphan(struct udp_assoc *u)
{
	if (u == NULL || u->npending == 0)
		return false;
	u->orphan = true;
	udp_close_fd(u, &u->rfd);
	loop_del(u->srv->loop, u->ofd4);
	loop_del(u->srv->loop, u->ofd6);
	loop_del(u->srv->loop, u->ofdm);
	u->orphan_prev = NULL;
	if ((u->orphan_next = u->srv->udp_orphans) != NULL)
		u->orphan_next->orphan_prev = u;
	u->srv->udp_orphans = u;
	return true;
}

void
udp_orphans_free(struct server *srv)
{
	while (srv->udp_orphans != NULL)
		udp_assoc_free(srv->udp_orphans);
}

/*
 * A client that sends and then closes its control connection at once (a
 * fire-and-forget sender: `echo hi | ncat -u`, a socket closed right after
 * its first sendto() while socksify was still setting its association up)
 * has its datagrams on the relay socket before its FIN reaches us: on
 * loopback always. Without this they went unread, closed with the socket.
 */
void
udp_assoc_last_word(struct udp_assoc *u)
{
	if (u != NULL && u->rfd >= 0)
		udp_on_relay(u->srv->loop, u->rfd, EPOLLIN, u);
}

static void
udp_on_target(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct udp_assoc *u = arg;
	struct udp_batch *b = u->srv->udp;
	/* No MSG_TRUNC: msg_len stays within the slot it is sent from. */
	unsigned k, n = udp_recv_batch(b, fd, 0);
	int last = -1;

	(void)l;
	(void)events;
	for (k = 0; k < n; k++)
		udp_from_target(u, b, k, &last);
	udp_flush(u, b, "from", &u->t2c);
}
