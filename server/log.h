/*
 * log.h: socksifyd's messages, each one line written with a single write()
 * so that lines from several threads never interleave: to stderr, to a
 * file (--log) or to syslog (--syslog); log.c says how.
 */
#ifndef SOCKSIFYD_LOG_H
#define SOCKSIFYD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,		/* -q: errors only */
	LOG_LEVEL_INFO = 1,		/* default: errors and warnings */
	LOG_LEVEL_VERBOSE = 2,		/* -v: one line per session */
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/*
 * "socksifyd: " + message. A format ending in ':' appends ": strerror(errno)"
 * (quark's die() idiom), so call sites stay one line.
 */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_fatal(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes an already formatted line (newline included) in one write(). */
void log_write_line(const char *line, size_t len);
/* The same for a readiness line, which goes to stderr whatever the sink. */
void log_ready_line(const char *line, size_t len);

/* The sink, at start-up, before any other thread: 0 or -errno. */
int log_open_file(const char *path, bool *loose);	/* loose: others may read it */
int log_open_syslog(void);
/* SIGHUP: the file opened again by its name (logrotate moved it away), or
 * syslog connected again; 0 or -errno, the old sink kept on error. */
int log_reopen(void);
/* --log's FILE, or NULL. */
const char *log_file_path(void);

#endif
