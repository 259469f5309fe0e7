/*
 * textfile.h: opening a file socksifyd reads whole at start and at reload
 * (users file, --config). A regular file is read as it is. A pipe or FIFO
 * (the launcher hands the embedded server its user through --users
 * /dev/fd/N; a shell's <(...)) is read whole first, into memory, within
 * TEXTFILE_PIPE_MS and TEXTFILE_PIPE_MAX: a FIFO nobody writes to must not
 * hold the main thread (no signals, no watchdog pings, no metrics
 * meanwhile), in open() or in a read. Devices and sockets are refused.
 */
#ifndef SOCKSIFYD_TEXTFILE_H
#define SOCKSIFYD_TEXTFILE_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEXTFILE_PIPE_MS	2000		/* a pipe's whole content within */
#define TEXTFILE_PIPE_MAX	(16u << 20)	/* bytes read from a pipe at most */

static inline long long
textfile_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pipe fd (non-blocking) copied whole into a memory file: its fd, or
 * -1 with why set. */
static inline int
textfile_drain(int fd, const char *path, char *why, size_t whylen)
{
	long long stop = textfile_ms() + TEXTFILE_PIPE_MS, left;
	char buf[8192];
	size_t total = 0;
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int mem = memfd_create("socksifyd-file", MFD_CLOEXEC);

	if (mem < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n > 0) {
			total += (size_t)n;
			if (total > TEXTFILE_PIPE_MAX) {
				snprintf(why, whylen, "%s: more than %u bytes", path,
				    TEXTFILE_PIPE_MAX);
				break;
			}
			if (write(mem, buf, (size_t)n) != n) {
				snprintf(why, whylen, "%s: %s", path, strerror(errno));
				break;
			}
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			break;
		}
		if ((left = stop - textfile_ms()) <= 0 ||
		    (poll(&pf, 1, (int)left) < 0 && errno != EINTR)) {
			snprintf(why, whylen, "%s: a pipe whose writer did not finish "
			    "within %d ms", path, TEXTFILE_PIPE_MS);
			break;
		}
	}
	if (n != 0 || lseek(mem, 0, SEEK_SET) != 0) {
		if (n == 0)
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		close(mem);
		return -1;
	}
	return mem;
}

/* path opened for reading, *st its status; NULL with why set. */
static inline FILE *
textfile_open(const char *path, struct stat *st, char *why, size_t whylen)
{
	FILE *f;
	int fd, mem;

	/* O_NONBLOCK: a FIFO with no writer must not hold open() either. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0 ||
	    fstat(fd, st) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (S_ISFIFO(st->st_mode)) {
		mem = textfile_drain(fd, path, why, whylen);
		close(fd);
		if ((fd = mem) < 0)
			return NULL;
	} else if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s: %s", path, S_ISDIR(st->st_mode) ?
		    "a directory, not a file" : "not a file (a device or socket)");
		close(fd);
		return NULL;
	} else if (fcntl(fd, F_SETFL, 0) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	return f;
}

#endif
