/*
 * sd.c: socksifyd under systemd, without libsystemd: the two protocols
 * that sd_listen_fds(3) and sd_notify(3) speak, which are small and fixed.
 *
 * Socket activation. The service manager (systemd, systemd-socket-activate,
 * or anything speaking the protocol) opens the listening sockets itself and
 * passes them as descriptors 3, 4, ...; LISTEN_FDS says how many, LISTEN_PID
 * for which process (a child started with the same environment must not
 * take them), LISTEN_FDNAMES their names, colon-separated. sd_listen()
 * takes them only when LISTEN_PID is this process, checks that each is a
 * listening TCP socket of IPv4 or IPv6 (anything else is a configuration
 * error: a datagram or AF_UNIX socket here could never serve SOCKS5), makes
 * it non-blocking and close-on-exec, and removes the three variables.
 *
 * Readiness. NOTIFY_SOCKET names an AF_UNIX datagram socket: a path, or
 * "@name" in the abstract namespace. Each message is one datagram of
 * KEY=VALUE lines. main.c sends, through sd_notify():
 *   READY=1, STATUS=        every listener is up and the workers run;
 *   RELOADING=1, MONOTONIC_USEC=   on SIGHUP, before the reload
 *                           (Type=notify-reload wants the clock with it);
 *   READY=1, STATUS=        after the reload, also after a failed one
 *                           (the old configuration still serves);
 *   STOPPING=1, STATUS=     on the first SIGTERM or SIGINT (the drain);
 *   WATCHDOG=1              every WATCHDOG_USEC / 2 from the main loop,
 *                           when WATCHDOG_PID is unset or this process;
 *   STATUS=                 the session count, with each watchdog ping and
 *                           every SD_STATUS_MS otherwise.
 * The main loop sends them, never a worker: a worker that stalls does not
 * stop the pings by itself, but the main thread is what a stuck process
 * (a deadlock on the configuration, a full descriptor table at start)
 * blocks. A send never waits (a manager whose queue is full loses that
 * message), and one that fails is logged once and never stops the
 * server: the manager may have gone, and the proxy serves on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"

enum {
	SD_LISTEN_FDS_START = 3,	/* the protocol's first descriptor */
	SD_MESSAGE_MAX = 1024,		/* one notification */
};

static int sd_fd = -1;
static struct sockaddr_un sd_addr;
static socklen_t sd_addrlen;
static bool sd_failed;			/* a send failed: said once */

/* A decimal of at most max, all of s; -1 otherwise. */
static long long
sd_number(const char *s, long long max)
{
	long long v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* Name i of LISTEN_FDNAMES into out ("" when there is none). */
static void
sd_name(const char *names, int i, char *out, size_t outlen)
{
	const char *p = names, *end;
	size_t len;

	out[0] = '\0';
	for (; p != NULL && i > 0; i--)
		if ((p = strchr(p, ':')) != NULL)
			p++;
	if (p == NULL)
		return;
	end = strchr(p, ':');
	len = end != NULL ? (size_t)(end - p) : strlen(p);
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, p, len);
	out[len] = '\0';
	for (; len > 0; len--)		/* it goes into a log line */
		if ((unsigned char)out[len - 1] < 0x20 || (unsigned char)out[len - 1] >= 0x7f)
			out[len - 1] = '?';
}

static void
sd_unset_listen(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int
sd_listen(int *fds, size_t max, char *why, size_t whylen)
{
	const char *pid = getenv("LISTEN_PID"), *names = getenv("LISTEN_FDNAMES");
	long long n, owner;
	int i;

	if (pid == NULL)
		return 0;
	owner = sd_number(pid, 0x7fffffff);
	n = sd_number(getenv("LISTEN_FDS"), 0x7fffffff);
	if (owner != (long long)getpid()) {
		sd_unset_listen();		/* another process's: not for us or ours */
		return 0;
	}
	if (n < 0) {
		snprintf(why, whylen, "socket activation: LISTEN_FDS is not a number");
		return -1;
	}
	if ((size_t)n > max) {
		snprintf(why, whylen, "socket activation: %lld sockets passed, at most %zu served",
		    n, max);
		return -1;
	}
	for (i = 0; i < (int)n; i++) {
		int fd = SD_LISTEN_FDS_START + i, type = 0, acc = 0, proto = 0, fl;
		struct sockaddr_storage ss;
		socklen_t len = sizeof(int), sslen = sizeof(ss);
		char name[64];

		sd_name(names, i, name, sizeof(name));
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
		    (len = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len)) == -1 ||
		    (len = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len)) == -1 ||
		    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
		    type != SOCK_STREAM || proto != IPPROTO_TCP || !acc ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
			snprintf(why, whylen, "socket activation: descriptor %d%s%s%s is not a listening TCP socket",
			    fd, name[0] ? " (\"" : "", name, name[0] ? "\")" : "");
			return -1;
		}
		if ((fl = fcntl(fd, F_GETFL)) == -1 ||
		    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			snprintf(why, whylen, "socket activation: descriptor %d: %s", fd,
			    strerror(errno));
			return -1;
		}
		fds[i] = fd;
	}
	sd_unset_listen();
	return (int)n;
}

int
sd_notify_open(char *why, size_t whylen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sd_addr.sun_path)) {
		snprintf(why, whylen, "NOTIFY_SOCKET is neither a path nor @name (or too long)");
		return -1;
	}
	memset(&sd_addr, 0, sizeof(sd_addr));
	sd_addr.sun_family = AF_UNIX;
	memcpy(sd_addr.sun_path, path, len);
	if (path[0] == '@')
		sd_addr.sun_path[0] = '\0';	/* the abstract namespace */
	sd_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (path[0] == '/'));
	if ((sd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(why, whylen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -1;
	}
	unsetenv("NOTIFY_SOCKET");
	return 1;
}

bool
sd_notifying(void)
{
	return sd_fd >= 0;
}

void
sd_notify(const char *fmt, ...)
{
	char msg[SD_MESSAGE_MAX];
	va_list ap;
	int n;

	if (sd_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	/* Never waits: a manager that stopped reading (its queue full) must
	 * not stop the thread that handles the signals. */
	if (sendto(sd_fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sd_addr,
	    sd_addrlen) == -1 && !sd_failed) {
		sd_failed = true;
		log_warn("NOTIFY_SOCKET: %s (not said again)", strerror(errno));
	}
}

uint64_t
sd_monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
sd_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	long long usec = sd_number(getenv("WATCHDOG_USEC"), (long long)1 << 62);

	if (sd_fd < 0 || usec <= 0)
		return 0;
	if (pid != NULL && sd_number(pid, 0x7fffffff) != (long long)getpid())
		return 0;
	return (uint64_t)usec;
}

void
sd_close(void)
{
	if (sd_fd >= 0)
		close(sd_fd);
	sd_fd = -1;
}
