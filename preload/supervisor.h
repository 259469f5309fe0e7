/*
 * supervisor.h: the seccomp front end of the client engine (supervisor.c,
 * supervisor_filter.c, supervisor_dns.c), linked into the socksify launcher,
 * never into libsocksify.so. The launcher drives it:
 *
 *   sup_kernel_lacks()  before anything starts: what this kernel cannot do
 *   sup_install(sock)   in the child, just before exec(): no_new_privs, the
 *                       filter, its listener sent to the parent over sock
 *   sup_start(sock)     in the parent: takes the listener, reads the
 *                       configuration the launcher put in the environment
 *   sup_pollfd()        readable when sup_service() has work
 *   sup_service()       answers what is ready, never waits
 *   sup_timeout_ms()    when sup_service() must run at the latest (-1: never)
 */
#ifndef SOCKSIFY_SUPERVISOR_H
#define SOCKSIFY_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* NULL when the kernel has every feature the supervisor needs, else the
 * name of the first one missing, for a one-line refusal. */
const char *sup_kernel_lacks(void);
/* In the child: 0, or -errno (also sent to the parent). iouring_allow keeps
 * io_uring_setup() working (SOCKSIFY_IOURING=allow). */
int sup_install(int sock, bool iouring_allow);
/* In the parent: 0, or -errno when the child sent no listener (the errno
 * the child sent, or EPROTO). */
int sup_start(int sock);
int sup_pollfd(void);
void sup_service(void);
int sup_timeout_ms(void);

/* Internal: supervisor_dns.c, the resolver that answers a supervised
 * program's own DNS queries under remote resolution. */
int supdns_start(int ep);
/* The responder's address for a socket of family domain and type (UDP or
 * TCP), or -EAFNOSUPPORT. v6only: the socket cannot reach IPv4. */
int supdns_addr(int domain, int type, bool v6only, struct sockaddr_storage *ss,
    socklen_t *len);
/* The supervisor's epoll data: kind << 56 | generation << 32 | index. */
enum { SUP_EV_LISTENER = 1, SUP_EV_JOB, SUP_EV_DNS, SUP_EV_TAKEN, SUP_EV_KICK };
#define SUP_EV(kind, gen, idx)	((uint64_t)(kind) << 56 | \
				    (uint64_t)((gen) & 0xffffffu) << 32 | (uint32_t)(idx))
/* An epoll event of the responder's (SUP_EV_DNS, idx as it registered). */
void supdns_event(uint32_t idx, uint32_t events);
/* Answer one query (q, qlen) into out: the reply's length, 0 for none; a
 * name SOCKSIFY_EXCLUDE lists gets SERVFAIL here (no lookup thread). */
size_t supdns_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap);
/* Answer queries from the socket bound to ss (one the supervisor sent to
 * the responder); nobody else's. */
void supdns_allow(const struct sockaddr_storage *ss, socklen_t len);
/* Answer the UDP queries waiting now. */
void supdns_pump(void);
/* Close TCP conversations idle since before now_ms - SUP_DNS_IDLE_MS. */
void supdns_sweep(long long now_ms);

/* Internal: supervisor_filter.c. The upper half of a marked descriptor. */
#define SUP_MARK_HI	PRELOAD_SYSCALL_MARK
/* The listener the child sent (sup_install()), or -errno. */
int sup_receive_listener(int sock);

#endif
