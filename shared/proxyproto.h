/*
 * proxyproto.h: the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2), sans I/O: what a load balancer in front of socksifyd
 * sends first on each connection, naming the client it accepted.
 *
 * pp_parse() takes the bytes received so far, as the socks5.h parsers do:
 *     0             a whole header: *h filled, *used its length (what
 *                   follows is the client's own first bytes)
 *     S5_NEED_MORE  a valid prefix of a header; read more
 *     -EINVAL       not a header, or a malformed one: close the connection
 *     -E2BIG        a version 2 header longer than PP_V2_BODY_MAX
 * A prefix is refused as soon as one byte proves it wrong: a client that is
 * not a load balancer cannot make the server wait for more.
 *
 * What is taken: version 1 TCP4/TCP6 and UNKNOWN; version 2 LOCAL and
 * PROXY over INET/INET6 with STREAM, UNSPEC and UNIX (TLVs are skipped).
 * LOCAL, UNKNOWN, UNSPEC and UNIX say "no client address here" (a health
 * check, or a family we cannot use): h->local, and the connection's own
 * addresses stand. The input is the network's and is trusted for nothing;
 * whom to believe it from is the caller's to decide.
 */
#ifndef SOCKSIFY_PROXYPROTO_H
#define SOCKSIFY_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>		/* struct sockaddr_* types only */

#include "socks5.h"		/* S5_NEED_MORE */

#define PP_V1_MAX		107	/* bytes of a version 1 line, CRLF included */
#define PP_V2_SIG_LEN		12
#define PP_V2_HEADER_LEN	16	/* signature, ver/cmd, family, length */
#define PP_V2_BODY_MAX		4096	/* addresses and TLVs we wait for, bytes */

struct pp_header {
	int version;			/* 1 or 2 */
	bool local;			/* no client address: keep the connection's */
	struct sockaddr_storage src, dst;	/* when !local: AF_INET or AF_INET6 */
	socklen_t srclen, dstlen;
};

int pp_parse(const uint8_t *p, size_t n, struct pp_header *h, size_t *used);

#endif
