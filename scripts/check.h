/*
 * check.h: socksify --check (check.c).
 */
#ifndef SOCKSIFY_CHECK_H
#define SOCKSIFY_CHECK_H

enum check_status {
	CHECK_OK = 0,			/* the chain works */
	CHECK_FAILED = 1,		/* a step failed: named on stdout */
	CHECK_USAGE = 125,		/* nothing to check, or a bad --check-target */
};

/* Walks the chain of SOCKSIFY_PROXY to target (HOST:PORT, or NULL for
 * the default); lines on stdout. An enum check_status. */
int check_run(const char *target);

#endif
