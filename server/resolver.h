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
#include "users.h"

struct resolver;
struct resolver_job;

/*
 * Runs on the loop thread. gai_err is 0 (ai holds the addresses, the
 * callee owns them and frees them with freeaddrinfo) or an EAI_* code.
 */
typedef void resolver_fn(void *arg, int gai_err, struct addrinfo *ai);

/* A pool whose lookups run on nlookups threads at most, with one thread more
 * that only logins (resolver_check()) may hold: 0 or -errno. */
int resolver_new(struct resolver **out, struct loop *l, unsigned nlookups);
/* Cancels what is pending; the callbacks of cancelled jobs never run. */
void resolver_free(struct resolver *r);

/*
 * Queue a lookup of name (AF_UNSPEC, SOCK_STREAM) and port for the client
 * at address client. 0 and *job set (a handle for resolver_cancel), or
 * -EAGAIN when SERVER_RESOLVER_PENDING_MAX are in flight, -EBUSY when
 * SERVER_RESOLVER_PER_CLIENT of them are this client IP's, -ENOMEM. With
 * may_wait (a session, its --connect-timeout running), one past those
 * waits its turn instead (-EAGAIN/-EBUSY past the waiting limits); a
 * datagram's lookup does not: it would go stale waiting.
 */
int resolver_lookup(struct resolver *r, const char *name, uint16_t port,
    const struct sockaddr *client, bool may_wait, resolver_fn *fn, void *arg,
    struct resolver_job **job);
/* Runs on the loop thread with the outcome of resolver_check(). */
typedef void resolver_check_fn(void *arg, bool ok);

/*
 * Queue users_hash_check(cred, hash) (crypt(3), slow on purpose) on the
 * same threads, with the same results as resolver_lookup(), under limits
 * of its own: past SERVER_CHECKS_MAX in flight (SERVER_CHECKS_PER_CLIENT
 * for its client) the job waits its turn, and only past
 * SERVER_CHECKS_WAITING_MAX waiting (..._PER_CLIENT) is it refused
 * (-EAGAIN, -EBUSY). The job holds a copy of cred, wiped once checked.
 */
int resolver_check(struct resolver *r, const struct s5_cred *cred,
    const struct users_hash *hash, const struct sockaddr *client,
    resolver_check_fn *fn, void *arg, struct resolver_job **job);

/*
 * The callback of job will not run; call it before freeing arg. A job not
 * yet started is freed at once; a running one when its lookup returns.
 */
void resolver_cancel(struct resolver *r, struct resolver_job *job);

#endif
