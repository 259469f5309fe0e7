/*
 * What the measuring programs of tests/bench share (connbench, udpbench).
 * Each program is one file that the Makefile builds with shared/ alone, so
 * these are static inline: a program takes the ones it calls. It defines
 * BENCH_NAME (its name, the prefix of every line it prints) and
 * BENCH_USAGE (its usage line) before it includes this.
 */
#ifndef SOCKSIFY_BENCH_H
#define SOCKSIFY_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "defaults.h"
#include "socks5.h"

enum {
	BENCH_EXIT_FAIL = 1,		/* a check or a round failed */
	BENCH_EXIT_USAGE = 2,
};
#define BENCH_NS_PER_US		1000.0
#define BENCH_NS_PER_S		1000000000ULL
#define BENCH_P50		0.5
#define BENCH_P99		0.99

static _Noreturn void usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "NAME: why" and the usage line; exit status 2. */
static _Noreturn void
usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, BENCH_NAME ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: " BENCH_USAGE "\n");
	exit(BENCH_EXIT_USAGE);
}

/* "NAME: what: strerror(err)", exit status 1. */
static inline _Noreturn void
fail(const char *what, int err)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, strerror(err));
	exit(BENCH_EXIT_FAIL);
}

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* A literal loopback HOST:PORT in ss and a; the sockaddr's length. These
 * tools never reach off the host. */
static inline socklen_t
loopback_addr(const char *text, struct sockaddr_storage *ss, struct s5_addr *a)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	const char *why = NULL;
	int len;

	if (s5_addr_parse(text, a, S5_DEFAULT_PORT, &why) < 0 ||
	    (len = s5_addr_to_sockaddr(a, ss)) < 0)
		usage("want a literal HOST:PORT, not '%s'", text);
	if (!(a->atyp == S5_ATYP_IPV4 && a->u.ip4[0] == 127) &&
	    !(a->atyp == S5_ATYP_IPV6 && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)))
		usage("'%s' is not a loopback address", text);
	return (socklen_t)len;
}

/* A decimal option argument in [min, max]; anything else is a usage error. */
static inline unsigned long
count_arg(const char *s, unsigned long min, unsigned long max, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage("%s: a number from %lu to %lu, not '%s'", what, min, max, s);
	return v;
}

static inline int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static inline void
sort_ns(uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
}

/* The fraction q (0.5, 0.99) of n sorted samples in ns, in µs; 0 of none. */
static inline double
quantile_us(const uint64_t *sorted, size_t n, double q)
{
	return n > 0 ? (double)sorted[(size_t)((double)n * q)] / BENCH_NS_PER_US : 0;
}

#endif
