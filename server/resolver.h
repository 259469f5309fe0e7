/*
 * resolver.h: getaddrinfo() off the event loop.
 *
 * A few worker threads run the blocking lookups; each answer comes back to
 * the loop through an eventfd and its callback runs on the loop's thread.
 */
#ifndef SOCKSIFYD_RESOLVER_H
#define SOCKSIFYD_RESOLVER_H

#include <netdb.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

struct resolver;
struct resolver_job;

/*
 * Runs on the loop thread. gai_err is 0 (ai holds the addresses, the
 * callee owns them and frees them with freeaddrinfo) or an EAI_* code.
 */
typedef void resolver_fn(void *arg, int gai_err, struct addrinfo *ai);

int resolver_new(struct resolver **out, struct loop *l, unsigned nthreads);
/* Cancels what is pending; the callbacks of cancelled jobs never run. */
void resolver_free(struct resolver *r);

/*
 * Queue a lookup of name (AF_UNSPEC, SOCK_STREAM) and port for the client
 * at address client. 0 and *job set (a handle for resolver_cancel), or
 * -EAGAIN when SERVER_RESOLVER_PENDING_MAX are in flight, -EBUSY when
 * SERVER_RESOLVER_PER_CLIENT of them are this client IP's, -ENOMEM.
 */
int resolver_lookup(struct resolver *r, const char *name, uint16_t port,
    const struct sockaddr *client, resolver_fn *fn, void *arg,
    struct resolver_job **job);
/*
 * The callback of job will not run; call it before freeing arg. A job not
 * yet started is freed at once; a running one when its lookup returns.
 */
void resolver_cancel(struct resolver *r, struct resolver_job *job);

#endif
