/*
 * log.c: one line per message, one write() per line, to one sink: stderr
 * (the default, which journald and a terminal time-stamp themselves),
 * a file (--log: each message line gets a UTC timestamp; reopened on
 * SIGHUP, for logrotate), or syslog (--syslog: a datagram per line to
 * /dev/log, facility daemon, never waiting: a line that cannot be sent at
 * once is dropped, since a stalled syslog daemon must not stall a worker).
 *
 * A file is reopened by dup2() of the new open file onto the descriptor
 * every thread writes to: a line goes to the old file or the new one,
 * whole, with no lock. The readiness lines and a fatal error go to stderr
 * too (CONTRACT.md: readiness and the reason of an exit are on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "log.h"

enum {
	LOG_LINE_MAX = 1024,		/* one message */
	LOG_SYSLOG_MAX = 4096 + 128,	/* one datagram: header and the longest line */
	LOG_FILE_MODE = 0600,		/* a log names users and clients */
};

#define LOG_PREFIX	"socksifyd: "
#define LOG_PREFIX_LEN	(sizeof(LOG_PREFIX) - 1)
#define LOG_DEVLOG	"/dev/log"

/* Set by the main thread (start-up, SIGHUP), read by every worker. */
static int log_level = LOG_LEVEL_INFO;

/* The sink, chosen once at start-up before any other thread runs. */
static enum { SINK_STDERR, SINK_FILE, SINK_SYSLOG } log_sink = SINK_STDERR;
static int log_fd = STDERR_FILENO;	/* SINK_FILE, SINK_SYSLOG: ours */
static char *log_path;			/* SINK_FILE */

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

static void
log_write_fd(int fd, const struct iovec *iov, int n)
{
	ssize_t w;

	/* A log line that cannot be written is dropped; nothing else to do. */
	do {
		w = writev(fd, iov, n);
	} while (w == -1 && errno == EINTR);
}

static int
log_open_path(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    LOG_FILE_MODE);
}

/* Connected to /dev/log: 0 or -errno. */
static int
log_syslog_connect(int fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = LOG_DEVLOG };

	return connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ? 0 : -errno;
}

int
log_open_file(const char *path, bool *loose)
{
	int fd = log_open_path(path);
	struct stat st;

	if (fd < 0)
		return -errno;
	/* Created 0600; one that was there keeps its mode, which may be looser. */
	*loose = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0;
	if ((log_path = strdup(path)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	log_fd = fd;
	log_sink = SINK_FILE;
	return 0;
}

int
log_open_syslog(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (fd < 0)
		return -errno;
	if ((r = log_syslog_connect(fd)) < 0) {
		close(fd);
		return r;
	}
	tzset();	/* localtime_r() in the workers reads no file */
	log_fd = fd;
	log_sink = SINK_SYSLOG;
	return 0;
}

int
log_reopen(void)
{
	int fd, r = 0;

	if (log_sink == SINK_SYSLOG)
		return log_syslog_connect(log_fd);
	if (log_sink != SINK_FILE)
		return 0;
	if ((fd = log_open_path(log_path)) < 0)
		return -errno;
	if (dup3(fd, log_fd, O_CLOEXEC) < 0)
		r = -errno;
	close(fd);
	return r;
}

const char *
log_file_path(void)
{
	return log_sink == SINK_FILE ? log_path : NULL;
}

/* One line to syslog: "<PRI>Mmm dd hh:mm:ss socksifyd[PID]: " and the line
 * without our prefix and newline. */
static void
log_syslog(int prio, const char *line, size_t len)
{
	char buf[LOG_SYSLOG_MAX];
	struct tm tm;
	time_t now = time(NULL);
	size_t n;
	int h;

	if (len >= LOG_PREFIX_LEN && memcmp(line, LOG_PREFIX, LOG_PREFIX_LEN) == 0) {
		line += LOG_PREFIX_LEN;
		len -= LOG_PREFIX_LEN;
	}
	if (len > 0 && line[len - 1] == '\n')
		len--;
	localtime_r(&now, &tm);
	h = snprintf(buf, sizeof(buf), "<%d>", LOG_DAEMON | prio);
	h += (int)strftime(buf + h, sizeof(buf) - (size_t)h, "%b %e %H:%M:%S ", &tm);
	h += snprintf(buf + h, sizeof(buf) - (size_t)h, "socksifyd[%ld]: ", (long)getpid());
	n = len < sizeof(buf) - (size_t)h ? len : sizeof(buf) - (size_t)h;
	memcpy(buf + h, line, n);
	n += (size_t)h;
	if (send(log_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
	    (errno == ECONNREFUSED || errno == ENOTCONN) &&
	    log_syslog_connect(log_fd) == 0)	/* the daemon restarted */
		(void)send(log_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A line (newline included) at syslog priority prio; also_stderr: to
 * stderr as well when the sink is another. */
static void
log_out(int prio, const char *line, size_t len, bool also_stderr)
{
	struct iovec iov[2] = { { NULL, 0 }, { (void *)line, len } };
	struct timespec now;
	struct tm tm;
	char ts[40];

	if (also_stderr && log_sink != SINK_STDERR)
		log_write_fd(STDERR_FILENO, &iov[1], 1);
	if (log_sink == SINK_SYSLOG) {
		log_syslog(prio, line, len);
		return;
	}
	if (log_sink == SINK_FILE && len >= LOG_PREFIX_LEN &&
	    memcmp(line, LOG_PREFIX, LOG_PREFIX_LEN) == 0) {
		/* A message: the session lines carry their own time. */
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		iov[0].iov_len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		iov[0].iov_len += (size_t)snprintf(ts + iov[0].iov_len,
		    sizeof(ts) - iov[0].iov_len, ".%03ldZ ", now.tv_nsec / 1000000L);
		iov[0].iov_base = ts;
		log_write_fd(log_fd, iov, 2);
		return;
	}
	log_write_fd(log_fd, &iov[1], 1);
}

void
log_write_line(const char *line, size_t len)
{
	log_out(LOG_INFO, line, len, false);
}

void
log_ready_line(const char *line, size_t len)
{
	log_out(LOG_INFO, line, len, true);
}

static void
log_vemit(int prio, bool also_stderr, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int saved = errno;
	size_t flen = strlen(fmt);
	int n;

	n = snprintf(line, sizeof(line), LOG_PREFIX);
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
	log_out(prio, line, (size_t)n, also_stderr);
	errno = saved;
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_ERR, false, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	if (log_get_level() < LOG_LEVEL_INFO)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_WARNING, false, fmt, ap);
	va_end(ap);
}

void
log_fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_ERR, true, fmt, ap);
	va_end(ap);
	exit(status);
}
