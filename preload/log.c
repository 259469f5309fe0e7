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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"

#define LOG_FILE_MODE	0600		/* it names every destination: the user's alone */

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
	/* Names come from the program: none may end our line or start another. */
	for (m = 0; m < n; m++)
		if ((unsigned char)line[m] < 0x20 || line[m] == 0x7f)
			line[m] = '?';
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
		{ EINTR, "EINTR" }, { EAGAIN, "EAGAIN" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	return "E?";
}
