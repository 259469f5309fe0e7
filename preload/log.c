/*
 * log.c: messages of libsocksify.
 *
 * Silent by default: only errors, and never to stdout, which belongs to the
 * program (preload-anchors.md P15). Each line is formatted on the stack and
 * written with one write(), so lines of concurrent threads never interleave;
 * libc's own write() and close(), never our hooks (gate.c), as the engine
 * logs with its lock held.
 * SOCKSIFY_LOG_FILE is opened and closed again per message: the library keeps
 * no descriptor a program could close or clobber (P10).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"

#define LOG_FILE_MODE	0600		/* it names every destination: the user's alone */

enum { LOG_LIMIT_SAY, LOG_LIMIT_REPEAT, LOG_LIMIT_BUSY };

enum {
	LOG_REPEAT_MS = 10000,		/* one key: a line at most this often */
	LOG_SLOTS = 16,			/* keys remembered, the oldest replaced */
};

/* Keys said lately, and how often since without a line. */
static struct {
	uint64_t key;
	long long at_ms;
	unsigned quiet;
	bool used;
} log_said[LOG_SLOTS];
static pthread_mutex_t log_said_lock = PTHREAD_MUTEX_INITIALIZER;

/* A fork() while another thread held the lock would leave the child's
 * trylock failing for good: the child starts with a free one. */
static void
log_said_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&log_said_lock, &fresh, sizeof(fresh));
}

__attribute__((constructor)) static void
log_said_init(void)
{
	(void)pthread_atfork(NULL, NULL, log_said_child);
}

/* Whether the line of key may be said now (*quiet: the lines of that key
 * left unsaid since its last one), was said in the last 10 s (counted),
 * or the table is busy. Never waits. */
static int
log_limit(uint64_t key, unsigned *quiet)
{
	long long now = tunnel_now_ms();
	size_t i, pick = 0;

	*quiet = 0;
	/* Never waits (a hook may run in a signal handler): when another
	 * thread is saying something, this one says nothing. */
	if (pthread_mutex_trylock(&log_said_lock) != 0)
		return LOG_LIMIT_BUSY;
	for (i = 0; i < LOG_SLOTS; i++) {
		if (log_said[i].used && log_said[i].key == key)
			break;
		if (!log_said[i].used || (log_said[pick].used && log_said[i].at_ms < log_said[pick].at_ms))
			pick = i;
	}
	if (i < LOG_SLOTS && now - log_said[i].at_ms < LOG_REPEAT_MS) {
		log_said[i].quiet++;
		pthread_mutex_unlock(&log_said_lock);
		return LOG_LIMIT_REPEAT;
	}
	if (i < LOG_SLOTS)
		*quiet = log_said[i].quiet;
	else
		i = pick;
	log_said[i].key = key;
	log_said[i].used = true;
	log_said[i].at_ms = now;
	log_said[i].quiet = 0;
	pthread_mutex_unlock(&log_said_lock);
	return LOG_LIMIT_SAY;
}

/* Names come from the program and the user (a decoded %0a in a URL's
 * user name): none may end our line or start another, nor drive a
 * terminal. */
void
preload_text_clean(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

void
preload_log(int level, const char *fmt, ...)
{
	char line[PRELOAD_LOG_LINE_MAX];
	int saved = errno, n, m, fd;
	va_list ap;

	if (level > preload_cfg.log_level)
		return;
	n = snprintf(line, sizeof(line), "socksify[%ld]: ", (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		goto out;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		goto out;
	n += m;
	if ((size_t)n > sizeof(line) - 2)	/* truncated: keep room for '\n' */
		n = (int)sizeof(line) - 2;
	preload_text_clean(line, (size_t)n);
	line[n++] = '\n';

	if (preload_cfg.log_file[0] != '\0') {
		fd = open(preload_cfg.log_file,
		    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LOG_FILE_MODE);
		if (fd >= 0) {
			(void)!PRELOAD_REAL(write)(fd, line, (size_t)n);
			(void)PRELOAD_REAL(close)(fd);
			goto out;
		}
	}
	(void)!PRELOAD_REAL(write)(STDERR_FILENO, line, (size_t)n);
out:
	errno = saved;
}

uint64_t
preload_log_key(const char *what, const char *why)
{
	const char *parts[2] = { what, why };
	uint64_t h = UINT64_C(0xcbf29ce484222325);	/* FNV-1a */
	const char *c;
	size_t i;

	for (i = 0; i < 2; i++) {
		for (c = parts[i]; c != NULL && *c != '\0'; c++)
			h = (h ^ (uint8_t)*c) * UINT64_C(0x100000001b3);
		h = (h ^ 0xff) * UINT64_C(0x100000001b3);	/* between the two */
	}
	return h | UINT64_C(1) << 63;
}

void
preload_log_limited(int level, uint64_t key, const char *fmt, ...)
{
	char line[PRELOAD_LOG_LINE_MAX], more[48] = "";
	unsigned quiet;
	va_list ap;

	if (level > preload_cfg.log_level)
		return;
	if (preload_cfg.log_level <= LOG_LVL_WARN) {
		switch (log_limit(key, &quiet)) {
		case LOG_LIMIT_REPEAT:
			return;
		case LOG_LIMIT_BUSY:
			/* An error (a fail-closed refusal) is never lost to a
			 * race: said unlimited rather than not at all. */
			if (level > LOG_LVL_ERROR)
				return;
			break;
		default:
			break;
		}
		if (quiet > 0)
			snprintf(more, sizeof(more), " (%u more since the last such line)", quiet);
	}
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	preload_log(level, "%s%s", line, more);
}

const char *
preload_errno_name(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ ECONNREFUSED, "ECONNREFUSED" }, { ETIMEDOUT, "ETIMEDOUT" },
		{ EHOSTUNREACH, "EHOSTUNREACH" }, { ENETUNREACH, "ENETUNREACH" },
		{ EACCES, "EACCES" }, { EPERM, "EPERM" },
		{ EAFNOSUPPORT, "EAFNOSUPPORT" }, { ECONNRESET, "ECONNRESET" },
		{ ECONNABORTED, "ECONNABORTED" }, { EPROTO, "EPROTO" },
		{ EADDRNOTAVAIL, "EADDRNOTAVAIL" }, { EINVAL, "EINVAL" },
		{ EISCONN, "EISCONN" }, { EALREADY, "EALREADY" },
		{ ENOSYS, "ENOSYS" }, { EBADF, "EBADF" }, { ENOTSOCK, "ENOTSOCK" },
		{ EPIPE, "EPIPE" }, { ENOBUFS, "ENOBUFS" }, { ENOMEM, "ENOMEM" },
		{ EINTR, "EINTR" }, { EAGAIN, "EAGAIN" }, { EMFILE, "EMFILE" },
		{ ENFILE, "ENFILE" }, { EADDRINUSE, "EADDRINUSE" },
		{ EOPNOTSUPP, "EOPNOTSUPP" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	return "E?";
}
