/*
 * listener.h: socksifyd's listening sockets and accept(), per worker.
 */
#ifndef SOCKSIFYD_LISTENER_H
#define SOCKSIFYD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct config_listen;

/*
 * The first worker's listeners: lst[i] bound and listening on cl[i] (a name
 * is resolved here); with reuseport, other workers' sockets may join them.
 * Exits on failure (start-up only).
 */
void listener_bind(struct listener *lst, const struct config_listen *cl,
    size_t n, bool reuseport);
/* Another worker's socket on the address and port like got, joined with
 * SO_REUSEPORT. Exits on failure. */
void listener_join(struct listener *lst, const struct listener *like);
/* The epoll interest of a listener that accepts. */
uint32_t listener_mask(const struct listener *lst);
/* The loop callback of a listener (arg: the struct listener). */
void listener_on_accept(struct loop *l, int fd, uint32_t events, void *arg);
bool listener_on_loopback(const struct listener *lst);

#endif
