/*
 * users.h: the RFC 1929 username/password table of socksifyd.
 *
 * File format: one "user:password" per line; the password is the rest of
 * the line after the first ':' (it may contain ':'). Blank lines and lines
 * starting with '#' are ignored. Both fields are 1..255 bytes (RFC 1929).
 */
#ifndef SOCKSIFYD_USERS_H
#define SOCKSIFYD_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "socks5.h"

struct users;

/*
 * Loads path. 0, or -1 with a one-line reason in why (e.g. "line 3: empty
 * user name", or a system error). A file others may read, or anyone but
 * its owner may write, is refused. Sets *loose when its group may read it,
 * so the caller can warn.
 */
int users_load(const char *path, struct users **out, bool *loose,
    char *why, size_t whylen);
/* users_load's parser on an open stream; name is the file's, for why. */
int users_read(FILE *f, const char *name, struct users **out, char *why,
    size_t whylen);
void users_free(struct users *u);

/* True when cred names a user with that password. Runs in time that does not
 * depend on where, or whether, the user and password match. */
bool users_check(const struct users *u, const struct s5_cred *cred);

#endif
