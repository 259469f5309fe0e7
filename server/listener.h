/*
 * listener.h: socksifyd's listening sockets and accept(), per worker.
 */
#ifndef SOCKSIFYD_LISTENER_H
#define SOCKSIFYD_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "server.h"

/*
 * Binds and listens on text (ADDR:PORT), or, with like, on the address and
 * port another worker's listener got (joining it with SO_REUSEPORT); with
 * reuseport, the first socket lets others join once it is bound. Exits on
 * failure (start-up only).
 */
void listener_bind(struct listener *lst, const char *text,
    const struct listener *like, bool reuseport);
/* The epoll interest of a listener that accepts. */
uint32_t listener_mask(const struct listener *lst);
/* The loop callback of a listener (arg: the struct listener). */
void listener_on_accept(struct loop *l, int fd, uint32_t events, void *arg);
bool listener_on_loopback(const struct listener *lst);

#endif
