/*
 * udp.h: the UDP relay of one UDP ASSOCIATE (RFC 1928 §7).
 *
 * An association owns a relay socket on the control connection's local
 * address, where the client sends its datagrams, and one outgoing socket
 * per address family, created on first use. It registers them in the
 * server's loop itself; its session only creates it, asks it for counters,
 * and frees it when the control connection ends or the association idles.
 */
#ifndef SOCKSIFYD_UDP_H
#define SOCKSIFYD_UDP_H

#include <stdint.h>
#include <sys/socket.h>

#include "socks5.h"

struct server;
struct udp_assoc;

/*
 * Opens the relay on local (port 0). client is the control connection's
 * peer: only datagrams from its IP are relayed, and from port hint_port
 * when that is not 0 (else the port of the first valid datagram is locked
 * in). user: the client's login for the rules (NULL: none), which must
 * outlive the association. *bnd is the relay's address for the reply. 0,
 * or -errno.
 */
int udp_assoc_new(struct server *srv, const struct sockaddr *client,
    socklen_t clientlen, const char *user, const struct sockaddr *local,
    socklen_t locallen, uint16_t hint_port, struct udp_assoc **out, struct s5_addr *bnd);
/* Closes the sockets and cancels pending name lookups. */
void udp_assoc_free(struct udp_assoc *u);
/* The client's control connection has ended: relay what it sent just
 * before (one batch, still waiting on the relay socket). */
void udp_assoc_last_word(struct udp_assoc *u);
/* Then: true when u, with lookups under way for datagrams to names, is
 * kept for them until they end (the caller forgets u); false when it has
 * none (the caller frees u). udp_orphans_free(): those left, at the
 * worker's end, before its resolver goes. */
bool udp_assoc_orphan(struct udp_assoc *u);
void udp_orphans_free(struct server *srv);
/* Unmaps the datagram buffers the worker's associations share, at its end. */
void udp_server_free(struct server *srv);

/* Payload bytes relayed client->targets and targets->client, and the loop
 * time of the last datagram relayed either way (or of creation). */
void udp_assoc_stats(const struct udp_assoc *u, uint64_t *c2t, uint64_t *t2c,
    uint64_t *last_ms);

#endif
