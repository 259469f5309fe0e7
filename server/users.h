/*
 * users.h: the RFC 1929 username/password table of socksifyd.
 *
 * File format: one "user:password" per line; the password is the rest of
 * the line after the first ':' (it may contain ':'). Blank lines and lines
 * starting with '#' are ignored. Both fields are 1..255 bytes (RFC 1929).
 * A password starting "$y$", "$2b$", "$2a$", "$2y$", "$6$" or "$5$" is a
 * crypt(3) hash (users.c).
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

#define USERS_HASH_MAX	S5_CRED_MAX

/* What is left to do for a hashed user: crypt(3) the password with hash;
 * known: false for a user the file lacks (checked all the same, then
 * refused, so the time does not tell). */
struct users_hash {
	char hash[USERS_HASH_MAX + 1];
	bool known;
};

enum users_verdict {
	USERS_REFUSED,
	USERS_ACCEPTED,
	USERS_HASH,			/* h filled: users_hash_check() decides */
};

/* The verdict on cred, in time that does not depend on where, or whether,
 * the user and password match; USERS_HASH leaves the slow part, which a
 * caller on an event loop runs elsewhere (resolver_check()). */
enum users_verdict users_verdict(const struct users *u, const struct s5_cred *cred,
    struct users_hash *h);
/* crypt(3) of cred's password with h: slow on purpose (tens of ms). */
bool users_hash_check(const struct s5_cred *cred, const struct users_hash *h);
/* Both at once, blocking: true when cred names a user with that password. */
bool users_check(const struct users *u, const struct s5_cred *cred);
/* Whether a password of the file is a crypt(3) hash. */
bool users_is_hash(const char *pass, size_t plen);

#endif
