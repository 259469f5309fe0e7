/*
 * proxyproto.c: the PROXY protocol header, versions 1 and 2 (proxyproto.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"

#define PP_V1_SIG		"PROXY "
#define PP_V1_SIG_LEN		(sizeof(PP_V1_SIG) - 1)
#define PP_V1_FIELDS		6	/* PROXY TCPx SRC DST SPORT DPORT */
#define PP_PORT_DIGITS		5

enum {
	PP_CMD_LOCAL = 0,
	PP_CMD_PROXY = 1,
	PP_FAM_UNSPEC = 0,
	PP_FAM_INET = 1,
	PP_FAM_INET6 = 2,
	PP_FAM_UNIX = 3,
	PP_PROTO_STREAM = 1,
	PP_PROTO_MAX = 2,		/* DGRAM */
	PP_V2_INET_LEN = 12,		/* two IPv4 addresses, two ports */
	PP_V2_INET6_LEN = 36,
};

static const uint8_t pp_v2_sig[PP_V2_SIG_LEN] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

/* A port of a version 1 line: decimal, no leading zero, at most 65535. */
static int
pp_v1_port(const char *s, uint16_t *port)
{
	size_t len = strlen(s), i;
	unsigned long v = 0;

	if (len == 0 || len > PP_PORT_DIGITS || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > UINT16_MAX)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* text and port (network order) into ss as family fam: 0 or -EINVAL. */
static int
pp_sockaddr(int fam, const char *text, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		*len = sizeof(*s4);
		return inet_pton(AF_INET, text, &s4->sin_addr) == 1 ? 0 : -EINVAL;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = port;
	*len = sizeof(*s6);
	return inet_pton(AF_INET6, text, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY UNKNOWN ...\r\n". */
static int
pp_parse_v1(const uint8_t *p, size_t n, struct pp_header *h, size_t *used)
{
	char line[PP_V1_MAX + 1], *f[PP_V1_FIELDS], *c;
	size_t i, end, nf = 0;
	uint16_t sport, dport;
	int fam;

	for (i = 0; i < n && i < PP_V1_SIG_LEN; i++)
		if (p[i] != (uint8_t)PP_V1_SIG[i])
			return -EINVAL;
	/* The line: printable ASCII up to CR LF, within PP_V1_MAX bytes. */
	for (end = PP_V1_SIG_LEN; end < n && end < PP_V1_MAX; end++) {
		if (p[end] == '\r')
			break;
		if (p[end] < 0x20 || p[end] > 0x7e)
			return -EINVAL;
	}
	if (end == PP_V1_MAX || (end < n && end + 1 == PP_V1_MAX))
		return -EINVAL;		/* no room left for CR LF */
	if (end + 1 >= n)
		return S5_NEED_MORE;
	if (p[end] != '\r' || p[end + 1] != '\n')
		return -EINVAL;
	memcpy(line, p, end);
	line[end] = '\0';
	/* Fields are separated by exactly one space. */
	for (c = line; nf < PP_V1_FIELDS; nf++) {
		f[nf] = c;
		if ((c = strchr(c, ' ')) == NULL) {
			nf++;
			break;
		}
		*c++ = '\0';
	}
	h->version = 1;
	if (strcmp(f[1], "UNKNOWN") == 0) {
		h->local = true;	/* whatever follows is to be ignored */
		*used = end + 2;
		return 0;
	}
	if (strcmp(f[1], "TCP4") == 0)
		fam = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		fam = AF_INET6;
	else
		return -EINVAL;
	if (nf != PP_V1_FIELDS || c != NULL)
		return -EINVAL;
	for (i = 0; i < nf; i++)
		if (f[i][0] == '\0')
			return -EINVAL;
	if (pp_v1_port(f[4], &sport) < 0 || pp_v1_port(f[5], &dport) < 0 ||
	    pp_sockaddr(fam, f[2], htons(sport), &h->src, &h->srclen) < 0 ||
	    pp_sockaddr(fam, f[3], htons(dport), &h->dst, &h->dstlen) < 0)
		return -EINVAL;
	h->local = false;
	*used = end + 2;
	return 0;
}

/* The 12-byte signature, ver/cmd, family/transport, length, then body. */
static int
pp_parse_v2(const uint8_t *p, size_t n, struct pp_header *h, size_t *used)
{
	const uint8_t *b;
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;
	size_t i, len;
	unsigned cmd, fam, proto;

	for (i = 0; i < n && i < PP_V2_SIG_LEN; i++)
		if (p[i] != pp_v2_sig[i])
			return -EINVAL;
	if (n <= PP_V2_SIG_LEN)
		return S5_NEED_MORE;
	cmd = p[12] & 0x0F;
	if ((p[12] >> 4) != 2 || cmd > PP_CMD_PROXY)
		return -EINVAL;
	if (n <= 13)
		return S5_NEED_MORE;
	fam = p[13] >> 4;
	proto = p[13] & 0x0F;
	if (fam > PP_FAM_UNIX || proto > PP_PROTO_MAX)
		return -EINVAL;
	if (n < PP_V2_HEADER_LEN)
		return S5_NEED_MORE;
	len = (size_t)p[14] << 8 | p[15];
	if (len > PP_V2_BODY_MAX)
		return -E2BIG;
	/* A PROXY header of an address family carries its addresses. */
	if (cmd == PP_CMD_PROXY && ((fam == PP_FAM_INET && len < PP_V2_INET_LEN) ||
	    (fam == PP_FAM_INET6 && len < PP_V2_INET6_LEN)))
		return -EINVAL;
	if (cmd == PP_CMD_PROXY && (fam == PP_FAM_INET || fam == PP_FAM_INET6) &&
	    proto != PP_PROTO_STREAM)
		return -EINVAL;		/* a TCP connection that says it is not */
	if (n < PP_V2_HEADER_LEN + len)
		return S5_NEED_MORE;
	h->version = 2;
	h->local = cmd == PP_CMD_LOCAL || (fam != PP_FAM_INET && fam != PP_FAM_INET6);
	*used = PP_V2_HEADER_LEN + len;
	if (h->local)
		return 0;
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	b = p + PP_V2_HEADER_LEN;
	if (fam == PP_FAM_INET) {
		s4 = (struct sockaddr_in *)&h->src;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b, 4);
		memcpy(&s4->sin_port, b + 8, 2);
		s4 = (struct sockaddr_in *)&h->dst;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b + 4, 4);
		memcpy(&s4->sin_port, b + 10, 2);
		h->srclen = h->dstlen = sizeof(*s4);
	} else {
		s6 = (struct sockaddr_in6 *)&h->src;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b, 16);
		memcpy(&s6->sin6_port, b + 32, 2);
		s6 = (struct sockaddr_in6 *)&h->dst;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b + 16, 16);
		memcpy(&s6->sin6_port, b + 34, 2);
		h->srclen = h->dstlen = sizeof(*s6);
	}
	return 0;
}

int
pp_parse(const uint8_t *p, size_t n, struct pp_header *h, size_t *used)
{
	if (n == 0)
		return S5_NEED_MORE;
	if (p[0] == (uint8_t)PP_V1_SIG[0])
		return pp_parse_v1(p, n, h, used);
	if (p[0] == pp_v2_sig[0])
		return pp_parse_v2(p, n, h, used);
	return -EINVAL;
}
