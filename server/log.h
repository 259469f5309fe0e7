/*
 * log.h: socksifyd's messages, each one line written with a single write()
 * to stderr so that lines from several threads never interleave.
 */
#ifndef SOCKSIFYD_LOG_H
#define SOCKSIFYD_LOG_H

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

#endif
