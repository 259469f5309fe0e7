/*
 * outgoing.c: --outgoing, the source address of what socksifyd sends to
 * targets (CONNECT's connections, UDP ASSOCIATE's relay sockets toward
 * targets), one IPv4 and one IPv6 address. A family without one gets the
 * kernel's choice of source. A TCP socket is bound with
 * IP_BIND_ADDRESS_NO_PORT, so its port is picked at connect() by the
 * 4-tuple as without a bind, and many connections do not exhaust the
 * ephemeral ports of one address. An IPv6 socket toward an IPv4-mapped
 * address (a request for ::ffff:a.b.c.d, or a name whose AAAA is one)
 * speaks IPv4: it gets the IPv4 address, mapped. BIND listens on the
 * address of its family too (outgoing_listen_at()): the side targets reach
 * the server on, and the address a CONNECT reply already named to the
 * client, which an FTP client announces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24	/* Linux 4.2 */
#endif

int
outgoing_parse(struct server_outgoing *o, const char *text)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(text);
	struct in_addr a4;
	struct in6_addr a6;

	if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, text + 1, len - 2);
		buf[len - 2] = '\0';
		text = buf;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
	} else if (inet_pton(AF_INET6, text, &a6) == 1) {
		/* A source must be one address of this host. */
		if (IN6_IS_ADDR_UNSPECIFIED(&a6) || IN6_IS_ADDR_MULTICAST(&a6))
			return -EINVAL;
		memset(&o->in6, 0, sizeof(o->in6));
		o->in6.sin6_family = AF_INET6;
		o->in6.sin6_addr = a6;
		return 0;
	} else if (text == buf || inet_pton(AF_INET, text, &a4) != 1) {
		return -EINVAL;
	}
	if (a4.s_addr == htonl(INADDR_ANY) || a4.s_addr == htonl(INADDR_BROADCAST) ||
	    IN_MULTICAST(ntohl(a4.s_addr)))
		return -EINVAL;
	memset(&o->in4, 0, sizeof(o->in4));
	o->in4.sin_family = AF_INET;
	o->in4.sin_addr = a4;
	return 0;
}

bool
outgoing_unmap(const struct sockaddr *sa, struct sockaddr_in *out)
{
	struct sockaddr_in6 s6;

	if (sa->sa_family != AF_INET6)
		return false;
	memcpy(&s6, sa, sizeof(s6));
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return false;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = s6.sin6_port;
	memcpy(&out->sin_addr, &s6.sin6_addr.s6_addr[12], sizeof(out->sin_addr));
	return true;
}

int
outgoing_bind(const struct server_outgoing *o, int fd, const struct sockaddr *dst,
    bool stream)
{
	struct sockaddr_in6 mapped;
	struct sockaddr_in d4;
	const struct sockaddr *sa;
	socklen_t len;
	int one = 1;

	if (dst->sa_family == AF_INET && o->in4.sin_family == AF_INET) {
		sa = (const struct sockaddr *)&o->in4;
		len = sizeof(o->in4);
	} else if (outgoing_unmap(dst, &d4)) {
		if (o->in4.sin_family != AF_INET)
			return 0;
		memset(&mapped, 0, sizeof(mapped));
		mapped.sin6_family = AF_INET6;
		mapped.sin6_addr.s6_addr[10] = mapped.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&mapped.sin6_addr.s6_addr[12], &o->in4.sin_addr, sizeof(o->in4.sin_addr));
		sa = (const struct sockaddr *)&mapped;
		len = sizeof(mapped);
	} else if (dst->sa_family == AF_INET6 && o->in6.sin6_family == AF_INET6) {
		sa = (const struct sockaddr *)&o->in6;
		len = sizeof(o->in6);
	} else {
		return 0;
	}
	if (stream)
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return bind(fd, sa, len) == 0 ? 0 : -errno;
}

socklen_t
outgoing_listen_at(const struct server_outgoing *o, struct sockaddr_storage *ss, socklen_t len)
{
	if (ss->ss_family == AF_INET && o->in4.sin_family == AF_INET) {
		memcpy(ss, &o->in4, sizeof(o->in4));
		return sizeof(o->in4);
	}
	if (ss->ss_family == AF_INET6 && o->in6.sin6_family == AF_INET6) {
		memcpy(ss, &o->in6, sizeof(o->in6));
		return sizeof(o->in6);
	}
	return len;
}

int
outgoing_check(const struct server_outgoing *o, char *why, size_t whylen)
{
	static const struct sockaddr_in any4 = { .sin_family = AF_INET };
	static const struct sockaddr_in6 any6 = { .sin6_family = AF_INET6 };
	static const int fams[] = { AF_INET, AF_INET6 };
	const void *addr;
	char text[INET6_ADDRSTRLEN];
	size_t i;
	int fd, r;

	for (i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		if ((fams[i] == AF_INET ? o->in4.sin_family : o->in6.sin6_family) == 0)
			continue;
		if ((fd = socket(fams[i], SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
			r = -errno;
		else
			r = outgoing_bind(o, fd, fams[i] == AF_INET ?
			    (const struct sockaddr *)&any4 : (const struct sockaddr *)&any6, false);
		if (fd >= 0)
			close(fd);
		if (r == 0)
			continue;
		addr = fams[i] == AF_INET ? (const void *)&o->in4.sin_addr :
		    (const void *)&o->in6.sin6_addr;
		if (inet_ntop(fams[i], addr, text, sizeof(text)) == NULL)
			strcpy(text, "?");
		snprintf(why, whylen, "--outgoing %s: %s", text, strerror(-r));
		return -1;
	}
	return 0;
}
