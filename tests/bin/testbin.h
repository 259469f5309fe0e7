/*
 * What the helper programs of tests/bin share. Each program is one file
 * (the Makefile builds tests/bin/NAME.c alone into NAME), so these are
 * static inline: a program takes the ones it calls. A program that includes
 * this defines usage(), which prints its usage and exits.
 */
#ifndef TESTBIN_H
#define TESTBIN_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TESTBIN_MS_PER_S	1000
#define TESTBIN_NS_PER_MS	1000000L

_Noreturn static void usage(void);

/* Start-up errors: "PROGRAM: message", and strerror(errno) after a
 * trailing colon; exit status 2. */
_Noreturn static inline void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void
fatal(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (fmt[0] != '\0' && fmt[strlen(fmt) - 1] == ':')
		fprintf(stderr, " %s", strerror(err));
	fputc('\n', stderr);
	exit(2);
}

/* A decimal option argument in [min, max]; anything else is a usage error. */
static inline long
num_arg(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < min || v > max)
		usage();
	return v;
}

static inline long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * TESTBIN_MS_PER_S + ts.tv_nsec / TESTBIN_NS_PER_MS;
}

/* xorshift64*: the bytes of a connection follow from its seed alone
 * (*state, not 0), and the next bytes from where *state is left. */
static inline void
fill(uint8_t *p, size_t n, uint64_t *state)
{
	size_t i;

	for (i = 0; i < n; i++) {
		*state ^= *state >> 12;
		*state ^= *state << 25;
		*state ^= *state >> 27;
		p[i] = (uint8_t)((*state * 2685821657736338717ull) >> 56);
	}
}

/* An abortive close: SO_LINGER with a zero timeout makes close() send RST. */
static inline void
fd_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

#endif
