/*
 * sd.h: socket activation and readiness notification for systemd, no
 * libsystemd (sd.c has the protocols).
 */
#ifndef SOCKSIFYD_SD_H
#define SOCKSIFYD_SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The listening sockets passed to this process (LISTEN_PID, LISTEN_FDS),
 * at most max, into fds: their count, 0 when none were, or -1 with a
 * one-line reason (a passed descriptor that is no listening TCP socket). */
int sd_listen(int *fds, size_t max, char *why, size_t whylen);

/* Opens NOTIFY_SOCKET: 1, 0 when it is not set, -1 with a reason. */
int sd_notify_open(char *why, size_t whylen);
bool sd_notifying(void);
/* One notification (KEY=VALUE lines); nothing when none was opened. */
void sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in µs, for RELOADING=1's MONOTONIC_USEC. */
uint64_t sd_monotonic_usec(void);
/* WATCHDOG_USEC when it is meant for this process, else 0. */
uint64_t sd_watchdog_usec(void);
void sd_close(void);

#endif
