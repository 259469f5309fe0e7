/*
 * bind.h: the socket work of BIND and UDP ASSOCIATE that is not session
 * state: where to bind, the listening socket, and whose connection (or
 * datagram) to accept.
 */
#ifndef SOCKSIFYD_BIND_H
#define SOCKSIFYD_BIND_H

#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "socks5.h"

/*
 * The local address of the control connection cfd with port 0: RFC 1928 §6
 * wants BND.ADDR reachable, and the address the client reached us on is the
 * one we know it can reach (never the wildcard). An IPv4-mapped address
 * becomes plain IPv4. Returns the sockaddr length, or -errno.
 */
int bind_local_addr(int cfd, struct sockaddr_storage *ss);

/*
 * Where BIND listens when it knows whom it waits for (dst an address, or
 * ai the addresses a DST.ADDR name resolved to): the source address this
 * host routes to that peer from, port 0, into *ss, the address the peer
 * sees our connections come from. The address the client reached us on
 * may be one the peer cannot reach: the launcher's embedded server listens
 * on loopback, and an FTP server elsewhere must connect back. len, the
 * length of *ss, is returned unchanged when there is no such peer or no
 * route; else the new length.
 */
int bind_toward_peer(const struct s5_addr *dst, const struct addrinfo *ai,
    struct sockaddr_storage *ss, int len);

/*
 * A non-blocking listening socket on local with a backlog of one (BIND
 * accepts exactly one connection); *bnd is its real address for the first
 * reply. 0 and *fd set, or -errno.
 */
int bind_listen(const struct sockaddr *local, socklen_t len, int *fd,
    struct s5_addr *bnd);

/* An IPv4 or IPv6 address of all zeros: "no expectation" in a request. */
bool bind_addr_any(const struct s5_addr *a);

/* Same IP address (ports ignored); domains never match. */
bool bind_same_ip(const struct s5_addr *a, const struct s5_addr *b);

/*
 * RFC 1928 §6 BIND: may peer be the connection we wait for? Anyone when the
 * request's DST.ADDR is zero; else only that IP, or any address of names
 * (the resolved DST.ADDR domain). The port is ignored: an application
 * server rarely connects from the port it listens on.
 */
bool bind_peer_ok(const struct s5_addr *want, const struct addrinfo *names,
    const struct sockaddr *peer, socklen_t len);

#endif
