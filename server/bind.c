/*
 * bind.c: listening sockets and address matching for BIND (RFC 1928 §6),
 * and the local address UDP ASSOCIATE binds its relay to.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bind.h"

int
bind_local_addr(int cfd, struct sockaddr_storage *ss)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	struct s5_addr a;
	int r;

	if (getsockname(cfd, (struct sockaddr *)&local, &len) == -1)
		return -errno;
	/* s5_addr_from_sockaddr unmaps ::ffff:a.b.c.d, so the relay is plain IPv4. */
	if (s5_addr_from_sockaddr(&a, (struct sockaddr *)&local, len) < 0)
		return -EAFNOSUPPORT;
	a.port = 0;
	if ((r = s5_addr_to_sockaddr(&a, ss)) < 0)
		return -EAFNOSUPPORT;
	/* A link-local IPv6 address is only usable with its interface. */
	if (local.ss_family == AF_INET6 && ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_scope_id =
		    ((struct sockaddr_in6 *)&local)->sin6_scope_id;
	return r;
}

int
bind_toward_peer(const struct s5_addr *dst, const struct addrinfo *ai,
    struct sockaddr_storage *ss, int len)
{
	struct sockaddr_storage peer, src;
	socklen_t plen = 0, slen = sizeof(src);
	struct s5_addr a;
	int fd, r;

	if ((dst->atyp == S5_ATYP_IPV4 || dst->atyp == S5_ATYP_IPV6) && !bind_addr_any(dst)) {
		a = *dst;
		if (a.port == 0)
			a.port = 9;	/* any port: a datagram socket connects to none */
		if ((r = s5_addr_to_sockaddr(&a, &peer)) > 0)
			plen = (socklen_t)r;
	} else if (ai != NULL && ai->ai_addrlen <= sizeof(peer)) {
		memcpy(&peer, ai->ai_addr, ai->ai_addrlen);
		plen = ai->ai_addrlen;
	}
	if (plen == 0)
		return len;
	/* A datagram socket's connect() only picks the route: nothing is sent. */
	if ((fd = socket(peer.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return len;
	r = connect(fd, (struct sockaddr *)&peer, plen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&src, &slen) == 0;
	close(fd);
	/* Unmapped (::ffff:a.b.c.d listens as a.b.c.d), port 0. */
	if (!r || s5_addr_from_sockaddr(&a, (struct sockaddr *)&src, slen) < 0)
		return len;
	a.port = 0;
	if ((r = s5_addr_to_sockaddr(&a, &peer)) <= 0)
		return len;
	/* A link-local IPv6 address is only usable with its interface. */
	if (peer.ss_family == AF_INET6 && src.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&peer)->sin6_scope_id =
		    ((struct sockaddr_in6 *)&src)->sin6_scope_id;
	memcpy(ss, &peer, sizeof(peer));
	return r;
}

int
bind_listen(const struct sockaddr *local, socklen_t len, int *fd,
    struct s5_addr *bnd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int s, err;

	s = socket(local->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -errno;
	/* RFC 1928 §6: one connection is expected, so the queue holds one. */
	if (bind(s, local, len) == -1 || listen(s, 1) == -1 ||
	    getsockname(s, (struct sockaddr *)&ss, &sslen) == -1) {
		err = errno;
		close(s);
		return -err;
	}
	if (s5_addr_from_sockaddr(bnd, (struct sockaddr *)&ss, sslen) < 0) {
		close(s);
		return -EAFNOSUPPORT;
	}
	*fd = s;
	return 0;
}

bool
bind_addr_any(const struct s5_addr *a)
{
	static const uint8_t zero[16];

	switch (a->atyp) {
	case S5_ATYP_IPV4:
		return memcmp(a->u.ip4, zero, sizeof(a->u.ip4)) == 0;
	case S5_ATYP_IPV6:
		return memcmp(a->u.ip6, zero, sizeof(a->u.ip6)) == 0;
	default:
		return false;
	}
}

/* ::ffff:a.b.c.d as a.b.c.d: the kernel reports an IPv4 peer of a
 * dual-stack socket that way, and a client may name it either way. */
static struct s5_addr
bind_unmapped(const struct s5_addr *a)
{
	struct sockaddr_storage ss;
	struct s5_addr out = *a;
	int len = s5_addr_to_sockaddr(a, &ss);

	if (len > 0)
		(void)s5_addr_from_sockaddr(&out, (struct sockaddr *)&ss, (size_t)len);
	return out;
}

bool
bind_same_ip(const struct s5_addr *x, const struct s5_addr *y)
{
	struct s5_addr ua = bind_unmapped(x), ub = bind_unmapped(y);
	const struct s5_addr *a = &ua, *b = &ub;

	/* The addresses alone: ports and names do not count. */
	if (a->atyp == S5_ATYP_DOMAIN)
		return false;
	ua.port = ub.port = 0;
	return s5_addr_equal(a, b);
}

bool
bind_peer_ok(const struct s5_addr *want, const struct addrinfo *names,
    const struct sockaddr *peer, socklen_t len)
{
	struct s5_addr p, n;

	if (s5_addr_from_sockaddr(&p, peer, len) < 0)
		return false;
	if (want->atyp != S5_ATYP_DOMAIN)
		return bind_addr_any(want) || bind_same_ip(want, &p);
	for (; names != NULL; names = names->ai_next)
		if (s5_addr_from_sockaddr(&n, names->ai_addr, names->ai_addrlen) == 0 &&
		    bind_same_ip(&n, &p))
			return true;
	return false;
}
