/*
 * outgoing.c: --outgoing, the source address of what socksifyd sends to
 * targets (CONNECT's connections, UDP ASSOCIATE's relay sockets toward
 * targets), one IPv4 and one IPv6 address. A family without one gets the
 * kernel's choice of source. A TCP socket is bound with
 * IP_BIND_ADDRESS_NO_PORT, so its port is picked at connect() by the
 * 4-tuple as without a bind, and many connections do not exhaust the
 * ephemeral ports of one address.
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

	if (inet_pton(AF_INET, text, &a4) == 1) {
		memset(&o->in4, 0, sizeof(o->in4));
		o->in4.sin_family = AF_INET;
		o->in4.sin_addr = a4;
		return 0;
	}
	if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, text + 1, len - 2);
		buf[len - 2] = '\0';
		text = buf;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		memset(&o->in6, 0, sizeof(o->in6));
		o->in6.sin6_family = AF_INET6;
		o->in6.sin6_addr = a6;
		return 0;
	}
	return -EINVAL;
}

int
outgoing_bind(const struct server_outgoing *o, int fd, int fam, bool stream)
{
	const struct sockaddr *sa;
	socklen_t len;
	int one = 1;

	if (fam == AF_INET && o->in4.sin_family == AF_INET) {
		sa = (const struct sockaddr *)&o->in4;
		len = sizeof(o->in4);
	} else if (fam == AF_INET6 && o->in6.sin6_family == AF_INET6) {
		sa = (const struct sockaddr *)&o->in6;
		len = sizeof(o->in6);
	} else {
		return 0;
	}
	if (stream)
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return bind(fd, sa, len) == 0 ? 0 : -errno;
}

int
outgoing_check(const struct server_outgoing *o, char *why, size_t whylen)
{
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
			r = outgoing_bind(o, fd, fams[i], false);
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
