/*
 * users.c: load and check the users file.
 *
 * A password that starts with "$y$", "$2b$" (or "$2a$", "$2y$"), "$6$" or
 * "$5$" is a crypt(3) hash, as mkpasswd and openssl passwd write them; one
 * that looks like a hash of another method ("$1$", "$7$"...) is refused;
 * any other is plain text. A hash is checked at load (crypt(3) must know its
 * method and give back a hash of the same length and setting) and at login
 * by crypt_r() in a resolver thread (users_hash_check(): tens of ms for
 * yescrypt, on purpose), never on the loop.
 *
 * Timing. A plain login compares every entry, so it takes the same time
 * whoever it names. When the file holds a hash, a user it does not know is
 * checked against the first hash of the file, and then refused: a wrong
 * name costs what a wrong password of that user costs, so the time does not
 * tell which names exist (a file that mixes plain and hashed users still
 * tells those two kinds apart, as the methods differ in cost).
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "defaults.h"
#include "textfile.h"
#include "users.h"

enum {
	USERS_BCRYPT_COST_MAX = 16,	/* about 5 s a login on this machine */
	USERS_ROUNDS_MAX = 1000000,	/* SHA-crypt: about a second */
};

struct users {
	size_t n, cap;
	struct s5_cred *ent;
	bool *hashed;			/* per entry: pass is a crypt(3) hash */
	size_t ndummy;			/* entry whose hash an unknown user gets; n: none */
};

static const char *const users_hash_prefix[] = { "$y$", "$2b$", "$2a$", "$2y$", "$6$", "$5$" };

bool
users_is_hash(const char *pass, size_t plen)
{
	size_t i, n;

	for (i = 0; i < sizeof(users_hash_prefix) / sizeof(users_hash_prefix[0]); i++) {
		n = strlen(users_hash_prefix[i]);
		/* A bare prefix too: then it is no whole hash, and refused,
		 * not taken as a password anyone could guess. */
		if (plen >= n && memcmp(pass, users_hash_prefix[i], n) == 0)
			return true;
	}
	return false;
}

/* "$ID$" with ID 1 to 16 letters, digits and '-': the start of a crypt(3)
 * hash of some method, ours or not (or all of one cut short). */
static bool
users_looks_hashed(const char *pass, size_t plen)
{
	size_t i;

	if (plen < 3 || pass[0] != '$')
		return false;
	/* "$1$", "$7$", "$md5,rounds=", "$pbkdf2-sha256$"... */
	for (i = 1; i < plen && i <= 16 && pass[i] != '$' && pass[i] != ','; i++)
		if (!((pass[i] >= 'a' && pass[i] <= 'z') || (pass[i] >= '0' && pass[i] <= '9') ||
		    pass[i] == '-'))
			return false;
	return i > 1 && i <= 16 && i < plen && (pass[i] == '$' || pass[i] == ',');
}

/* crypt_r() of pass (NUL-terminated) with setting hash, into out (a copy,
 * at most USERS_HASH_MAX bytes); its length, or -1 when crypt(3) fails. */
static int
users_crypt(const char *pass, const char *hash, char *out)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;
	size_t len;
	int r = -1;

	if (cd == NULL)
		return -1;
	h = crypt_r(pass, hash, cd);
	/* Failure is NULL or a string starting with '*' ("*0", "*1"). */
	if (h != NULL && h[0] == '$' && (len = strlen(h)) <= USERS_HASH_MAX) {
		memcpy(out, h, len + 1);
		r = (int)len;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return r;
}

/* A cost a login can pay (a check runs at load, and at every login): bcrypt
 * up to 2^USERS_BCRYPT_COST_MAX rounds, SHA-crypt up to USERS_ROUNDS_MAX. */
static bool
users_cost_ok(const char *hash)
{
	unsigned long v;
	const char *r;

	if (hash[1] == '2' && strlen(hash) > 6)
		return strtoul(hash + 4, NULL, 10) <= USERS_BCRYPT_COST_MAX;
	if ((hash[1] == '5' || hash[1] == '6') &&
	    strncmp(hash + 3, "rounds=", 7) == 0) {
		r = hash + 10;
		v = strtoul(r, NULL, 10);
		return v <= USERS_ROUNDS_MAX;
	}
	return true;
}

/* A hash from the file: one crypt(3) knows, and complete (not a setting). */
static bool
users_hash_ok(const char *hash, size_t len)
{
	char out[USERS_HASH_MAX + 1];
	int n = users_crypt("socksifyd", hash, out);
	const char *end = memrchr(hash, '$', len);

	/* The same length, and the same method and salt, up to the last '$'. */
	return n == (int)len && end != NULL && end + 1 < hash + len &&
	    memcmp(out, hash, (size_t)(end - hash)) == 0;
}

void
users_free(struct users *u)
{
	if (u == NULL)
		return;
	/* The table holds passwords: wipe it before giving the memory back. */
	if (u->ent != NULL)
		explicit_bzero(u->ent, u->cap * sizeof(*u->ent));
	free(u->ent);
	free(u->hashed);
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
		bool *h;

		if ((c = calloc(cap, sizeof(*c))) == NULL)
			return *why = "out of memory", -1;
		if ((h = calloc(cap, sizeof(*h))) == NULL) {
			free(c);
			return *why = "out of memory", -1;
		}
		if (u->ent != NULL) {
			memcpy(c, u->ent, u->n * sizeof(*c));
			memcpy(h, u->hashed, u->n * sizeof(*h));
			explicit_bzero(u->ent, u->cap * sizeof(*c));
			free(u->ent);
			free(u->hashed);
		}
		u->ent = c;
		u->hashed = h;
		u->cap = cap;
	}
	c = &u->ent[u->n];
	c->ulen = (uint8_t)ulen;
	c->plen = (uint8_t)plen;
	memcpy(c->user, s, ulen);
	memcpy(c->pass, colon + 1, plen);
	c->pass[plen] = '\0';
	/* A hash of another method (md5crypt's $1$, scrypt's $7$...) would
	 * otherwise be taken as a plain password, the hash itself. */
	if (!users_is_hash(c->pass, plen) && users_looks_hashed(c->pass, plen)) {
		explicit_bzero(c, sizeof(*c));
		return *why = "a password hash of a method not taken here (use "
		    "yescrypt $y$, bcrypt $2b$, SHA-512 $6$ or SHA-256 $5$)", -1;
	}
	if ((u->hashed[u->n] = users_is_hash(c->pass, plen))) {
		if (!users_cost_ok(c->pass)) {
			explicit_bzero(c, sizeof(*c));
			return *why = "a password hash too slow to check at each login "
			    "(bcrypt cost above 16, or over a million SHA-crypt rounds)", -1;
		}
		if (!users_hash_ok(c->pass, plen)) {
			explicit_bzero(c, sizeof(*c));
			return *why = "a password hash this system's crypt(3) does not "
			    "know, or not a whole hash", -1;
		}
	}
	u->n++;
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
	/* The entry an unknown user is checked against: the first hash. */
	for (u->ndummy = 0; u->ndummy < u->n && !u->hashed[u->ndummy]; u->ndummy++)
		;
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

	if ((f = textfile_open(path, &st, why, whylen)) == NULL)
		return -1;
	/* Anyone who can write the file can add a user; anyone who can read
	 * it has every password. A group may share it, read-only. */
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

enum users_verdict
users_verdict(const struct users *u, const struct s5_cred *cred, struct users_hash *h)
{
	bool ok = false, known = false;
	size_t i, at = u->ndummy;

	/* RFC 1929 lets ULEN or PLEN be 0 on the wire; such a login fails. */
	if (cred->ulen == 0 || cred->plen == 0)
		return USERS_REFUSED;
	/* Every entry is compared, match or not, so timing says nothing. */
	for (i = 0; i < u->n; i++) {
		bool uok = s5_cred_equal(u->ent[i].user, u->ent[i].ulen,
		    cred->user, cred->ulen);
		bool pok = s5_cred_equal(u->ent[i].pass, u->ent[i].plen,
		    cred->pass, cred->plen);

		ok |= uok & pok & !u->hashed[i];
		known |= uok;
		at = uok ? i : at;
	}
	if (at == u->n || !u->hashed[at])
		return ok ? USERS_ACCEPTED : USERS_REFUSED;
	/* A hashed user, or (the file has hashes) one it does not know. */
	memcpy(h->hash, u->ent[at].pass, (size_t)u->ent[at].plen + 1);
	h->known = known;
	return USERS_HASH;
}

bool
users_hash_check(const struct s5_cred *cred, const struct users_hash *h)
{
	char pass[S5_CRED_MAX + 1], out[USERS_HASH_MAX + 1];
	size_t hlen = strlen(h->hash);
	int n;

	/* crypt(3) reads a C string: a password with a NUL byte in it would be
	 * checked as its first part. Still hashed, for the same time. */
	memcpy(pass, cred->pass, cred->plen);
	pass[cred->plen] = '\0';
	n = users_crypt(pass, h->hash, out);
	explicit_bzero(pass, sizeof(pass));
	return n == (int)hlen && s5_cred_equal(out, (size_t)n, h->hash, hlen) &&
	    memchr(cred->pass, '\0', cred->plen) == NULL && h->known;
}

bool
users_check(const struct users *u, const struct s5_cred *cred)
{
	struct users_hash h;
	bool ok;

	switch (users_verdict(u, cred, &h)) {
	case USERS_ACCEPTED:
		return true;
	case USERS_HASH:
		ok = users_hash_check(cred, &h);
		explicit_bzero(&h, sizeof(h));
		return ok;
	default:
		return false;
	}
}
