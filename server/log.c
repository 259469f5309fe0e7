/*
 * log.c: one line per message, one write() per line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum {
	LOG_LINE_MAX = 1024,
};

/* Set by the main thread (start-up, SIGHUP), read by every worker. */
static int log_level = LOG_LEVEL_INFO;

void
log_set_level(enum log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void
log_write_line(const char *line, size_t len)
{
	ssize_t w;

	/* A log line that cannot be written is dropped; nothing else to do. */
	do {
		w = write(STDERR_FILENO, line, len);
	} while (w == -1 && errno == EINTR);
}

static void
log_vemit(const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int saved = errno;
	size_t flen = strlen(fmt);
	int n;

	n = snprintf(line, sizeof(line), "socksifyd: ");
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (flen > 0 && fmt[flen - 1] == ':') {
		int m = snprintf(line + n, sizeof(line) - (size_t)n, " %s",
		    strerror(saved));

		n += m;
		if (n > (int)sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	log_write_line(line, (size_t)n);
	errno = saved;
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	if (log_get_level() < LOG_LEVEL_INFO)
		return;
	va_start(ap, fmt);
	log_vemit(fmt, ap);
	va_end(ap);
}

void
log_fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(fmt, ap);
	va_end(ap);
	exit(status);
}
