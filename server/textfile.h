/*
 * textfile.h: opening a file socksifyd reads whole at start and at reload
 * (users file, --config): a regular file only. A FIFO would block the main
 * thread in open() or read() until someone wrote to it (no signals, no
 * watchdog pings, no metrics meanwhile); a device may never end.
 */
#ifndef SOCKSIFYD_TEXTFILE_H
#define SOCKSIFYD_TEXTFILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path opened for reading, *st its status; NULL with why set. */
static inline FILE *
textfile_open(const char *path, struct stat *st, char *why, size_t whylen)
{
	FILE *f;
	int fd;

	/* O_NONBLOCK: a FIFO with no writer must not hold open() either. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0 ||
	    fstat(fd, st) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s: %s", path, S_ISDIR(st->st_mode) ?
		    "a directory, not a file" : "not a regular file (a FIFO, "
		    "device or socket would hold the server)");
		close(fd);
		return NULL;
	}
	if (fcntl(fd, F_SETFL, 0) != 0 || (f = fdopen(fd, "r")) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	return f;
}

#endif
