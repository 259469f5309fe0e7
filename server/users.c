/*
 * users.c: load and check the users file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "defaults.h"
#include "users.h"

struct users {
	size_t n, cap;
	struct s5_cred *ent;
};

void
users_free(struct users *u)
{
	if (u == NULL)
		return;
	/* The table holds passwords: wipe it before giving the memory back. */
	if (u->ent != NULL)
		explicit_bzero(u->ent, u->cap * sizeof(*u->ent));
	free(u->ent);
	free(u);
}

static bool
users_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

/* One line without its newline; 0 or -1 with why set. */
static int
users_add_line(struct users *u, const char *s, size_t len, const char **why)
{
	const char *colon;
	size_t ulen, plen, i;
	struct s5_cred *c;

	if (len == 0 || s[0] == '#' || users_blank(s, len))
		return 0;
	if (memchr(s, '\0', len) != NULL)
		return *why = "NUL byte in line", -1;
	if ((colon = memchr(s, ':', len)) == NULL)
		return *why = "no ':' between user and password", -1;
	ulen = (size_t)(colon - s);
	plen = len - ulen - 1;
	if (ulen < 1 || ulen > S5_CRED_MAX)
		return *why = "user name must be 1 to 255 bytes", -1;
	if (plen < 1 || plen > S5_CRED_MAX)
		return *why = "password must be 1 to 255 bytes", -1;
	for (i = 0; i < u->n; i++)
		if (u->ent[i].ulen == ulen && memcmp(u->ent[i].user, s, ulen) == 0)
			return *why = "duplicate user name", -1;
	if (u->n == SERVER_USERS_MAX)
		return *why = "too many users", -1;
	if (u->n == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 16;

		if ((c = calloc(cap, sizeof(*c))) == NULL)
			return *why = "out of memory", -1;
		if (u->ent != NULL) {
			memcpy(c, u->ent, u->n * sizeof(*c));
			explicit_bzero(u->ent, u->cap * sizeof(*c));
			free(u->ent);
		}
		u->ent = c;
		u->cap = cap;
	}
	c = &u->ent[u->n++];
	c->ulen = (uint8_t)ulen;
	c->plen = (uint8_t)plen;
	memcpy(c->user, s, ulen);
	memcpy(c->pass, colon + 1, plen);
	return 0;
}

int
users_read(FILE *f, const char *name, struct users **out, char *why,
    size_t whylen)
{
	struct users *u;
	char *line = NULL;
	size_t cap = 0, lineno = 0, badline = 0;
	ssize_t len;
	const char *reason = NULL;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(why, whylen, "%s: %s", name, strerror(ENOMEM));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		/* A file written on Windows ends its lines in CRLF. */
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (users_add_line(u, line, (size_t)len, &reason) < 0) {
			badline = lineno;
			break;
		}
	}
	if (reason == NULL && ferror(f))
		reason = strerror(errno);
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (reason == NULL && u->n == 0)
		reason = "no users";
	if (reason != NULL) {
		if (badline > 0)
			snprintf(why, whylen, "%s: line %zu: %s", name, badline, reason);
		else
			snprintf(why, whylen, "%s: %s", name, reason);
		users_free(u);
		return -1;
	}
	*out = u;
	return 0;
}

int
users_load(const char *path, struct users **out, bool *loose,
    char *why, size_t whylen)
{
	struct stat st;
	FILE *f;
	int r;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Anyone who can write the file can add a user; anyone who can read
	 * it has every password. A group may share it, read-only. */
	if (fstat(fileno(f), &st) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		fclose(f);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH | S_IROTH)) {
		snprintf(why, whylen, "%s: %s by others (chmod 600 or 640 it)", path,
		    st.st_mode & (S_IWGRP | S_IWOTH) ? "writable" : "readable");
		fclose(f);
		return -1;
	}
	*loose = (st.st_mode & S_IRGRP) != 0;
	r = users_read(f, path, out, why, whylen);
	fclose(f);
	return r;
}

bool
users_check(const struct users *u, const struct s5_cred *cred)
{
	bool ok = false;
	size_t i;

	/* RFC 1929 lets ULEN or PLEN be 0 on the wire; such a login fails. */
	if (cred->ulen == 0 || cred->plen == 0)
		return false;
	/* Every entry is compared, match or not, so timing says nothing. */
	for (i = 0; i < u->n; i++) {
		bool uok = s5_cred_equal(u->ent[i].user, u->ent[i].ulen,
		    cred->user, cred->ulen);
		bool pok = s5_cred_equal(u->ent[i].pass, u->ent[i].plen,
		    cred->pass, cred->plen);

		ok |= uok & pok;
	}
	return ok;
}
