/*
 * metrics.h: what socksifyd counts, and --metrics, which serves it in
 * Prometheus' text format (metrics.c).
 */
#ifndef SOCKSIFYD_METRICS_H
#define SOCKSIFYD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defaults.h"

struct loop;
struct server;
struct config_listen;

/* Handshake latency buckets, in µs (the last is +Inf). */
#define METRICS_BUCKETS		14

/* Sessions ended, by command and outcome: one entry each, in the order
 * first seen; an entry's names never change once noutcomes counts it. */
struct metrics_outcome {
	char cmd[16];
	char outcome[48];		/* cut there (strerror() words may be long) */
	_Atomic uint64_t n;
};

/*
 * One worker's counters. Only that worker's thread writes them (relaxed
 * atomic adds: no lock, no shared cache line with another worker); the
 * main thread reads them when it is scraped.
 */
struct metrics {
	_Atomic int64_t active;		/* sessions open */
	_Atomic int64_t udp_active;	/* UDP associations open */
	_Atomic uint64_t udp_total;
	_Atomic uint64_t c2t, t2c;	/* bytes relayed each way */
	_Atomic uint64_t replies[10];	/* SOCKS5 replies sent, 00..08, then others */
	_Atomic uint64_t auth_failures;
	_Atomic uint64_t hs_bucket[METRICS_BUCKETS];
	_Atomic uint64_t hs_sum_us;
	_Atomic uint32_t noutcomes;
	struct metrics_outcome outcome[SERVER_METRICS_OUTCOMES];
};

/* Counting, on the worker's own thread. */
void metrics_session(struct metrics *m, int delta);
void metrics_session_end(struct metrics *m, const char *cmd, const char *outcome);
void metrics_bytes(struct metrics *m, uint64_t c2t, uint64_t t2c);
void metrics_reply(struct metrics *m, uint8_t rep);
void metrics_auth_failed(struct metrics *m);
/* A success reply, us after the client was accepted. */
void metrics_handshake(struct metrics *m, uint64_t us);
void metrics_udp(struct metrics *m, int delta);

/* The status line for a scrape's request head (NUL-terminated): "200 OK"
 * for GET /metrics (a query ignored) in HTTP/1.x, else a 400, 404 or 405
 * line. Pure: tests/fuzz/fuzz_metrics.c. */
const char *metrics_request(const char *head);

/* The text of workers[0..n)'s counters, summed, appended to t: 0, or
 * -ENOMEM (t->failed). */
struct metrics_text {
	char *buf;			/* malloc()ed; the caller frees it */
	size_t len, cap;
	bool failed;			/* out of memory */
};
int metrics_render(struct metrics_text *t, struct server *workers, unsigned n);
void mt_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The main thread (metrics_http.c): --metrics on cl, served from loop l, reading the
 * counters of workers[0..n). Exits on failure (start-up only). true when
 * the address is on loopback. */
bool metrics_listen(const struct config_listen *cl, struct loop *l,
    struct server *workers, unsigned n);
/* Its address, for the readiness line ("127.0.0.1:9100"). */
const char *metrics_name(void);
/* Closes the listener and every scrape under way. */
void metrics_close(void);

#endif
