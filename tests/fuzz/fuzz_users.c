/*
 * fuzz_users.c: the users file (server/users.c) through users_read(), the
 * parser users_load() runs on the opened file.
 *
 * Input: the file's bytes. Checked: a refused file names itself and the
 * bad line in a one-line reason, and the lines before that line load (or
 * hold no user at all); a loaded table accepts every "user:password" line
 * the file holds, refuses that password with its last byte changed, and
 * accepts no credential that is not a line of the file.
 */
#include "fuzz.h"
#include "users.h"

#define FUZZ_NAME	"users.txt"
#define FUZZ_WHY_MAX	512

/* users_read() on a copy of data in a memory stream. */
static int
fuzz_users_read(const uint8_t *data, size_t size, struct users **u,
    char *why, size_t whylen)
{
	/* fmemopen() wants a writable buffer of at least one byte. */
	char *buf = malloc(size + 1);
	FILE *f;
	int r;

	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	if ((f = fmemopen(buf, size > 0 ? size : 1, "r")) == NULL)
		abort();
	if (size == 0)
		(void)fgetc(f);
	r = users_read(f, FUZZ_NAME, u, why, whylen);
	fclose(f);
	free(buf);
	return r;
}

/* The next line of data from *off, without "\n" or "\r\n"; false at the end. */
static bool
fuzz_next_line(const uint8_t *data, size_t size, size_t *off,
    const uint8_t **line, size_t *len)
{
	const uint8_t *nl;

	if (*off >= size)
		return false;
	*line = data + *off;
	nl = memchr(*line, '\n', size - *off);
	*len = nl != NULL ? (size_t)(nl - *line) : size - *off;
	*off += *len + (nl != NULL);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

/* A user line as users.h defines it: split at the first ':' into cred. */
static bool
fuzz_user_line(const uint8_t *s, size_t len, struct s5_cred *cred)
{
	const uint8_t *colon = memchr(s, ':', len);
	size_t ulen, plen;

	if (len == 0 || s[0] == '#' || colon == NULL)
		return false;
	ulen = (size_t)(colon - s);
	plen = len - ulen - 1;
	if (ulen < 1 || ulen > S5_CRED_MAX || plen < 1 || plen > S5_CRED_MAX)
		return false;
	memset(cred, 0, sizeof(*cred));
	cred->ulen = (uint8_t)ulen;
	cred->plen = (uint8_t)plen;
	memcpy(cred->user, s, ulen);
	memcpy(cred->pass, colon + 1, plen);
	return true;
}

/* Is "user:pass" one of the file's lines? */
static bool
fuzz_file_has(const uint8_t *data, size_t size, const struct s5_cred *cred)
{
	const uint8_t *line;
	struct s5_cred c;
	size_t off = 0, len;

	while (fuzz_next_line(data, size, &off, &line, &len))
		if (fuzz_user_line(line, len, &c) && c.ulen == cred->ulen &&
		    c.plen == cred->plen &&
		    memcmp(c.user, cred->user, c.ulen) == 0 &&
		    memcmp(c.pass, cred->pass, c.plen) == 0)
			return true;
	return false;
}

static void
fuzz_check_refused(const uint8_t *data, size_t size, const char *why)
{
	char prefix[] = FUZZ_NAME ": line ", why2[FUZZ_WHY_MAX];
	struct users *u = NULL;
	const uint8_t *line;
	size_t off = 0, len, n = 0, bad;
	int r;

	FUZZ_CHECK(strncmp(why, FUZZ_NAME ": ", sizeof(FUZZ_NAME ": ") - 1) == 0);
	FUZZ_CHECK(strlen(why) > sizeof(FUZZ_NAME ": ") - 1);
	FUZZ_CHECK(strchr(why, '\n') == NULL);
	if (strncmp(why, prefix, sizeof(prefix) - 1) != 0) {
		FUZZ_CHECK(strcmp(why, FUZZ_NAME ": no users") == 0);
		return;
	}
	bad = strtoul(why + sizeof(prefix) - 1, NULL, 10);
	while (n + 1 < bad && fuzz_next_line(data, size, &off, &line, &len))
		n++;
	/* Blank lines are skipped, so the bad line holds something. */
	FUZZ_CHECK(bad >= 1 && n + 1 == bad && off < size);
	/* Everything before the bad line was fine on its own. */
	r = fuzz_users_read(data, off, &u, why2, sizeof(why2));
	FUZZ_CHECK(r == 0 || strcmp(why2, FUZZ_NAME ": no users") == 0);
	users_free(u);
}

static void
fuzz_check_loaded(const uint8_t *data, size_t size, const struct users *u)
{
	const uint8_t *line;
	struct s5_cred cred;
	size_t off = 0, len, n = 0;

	while (fuzz_next_line(data, size, &off, &line, &len)) {
		if (!fuzz_user_line(line, len, &cred))
			continue;
		n++;
		/* A hash: the file holds no password to try, and the hash itself
		 * is not one. */
		if (users_is_hash(cred.pass, cred.plen)) {
			FUZZ_CHECK(!users_check(u, &cred));
			continue;
		}
		FUZZ_CHECK(users_check(u, &cred));
		/* Users are unique, so another password for this one fails. */
		cred.pass[cred.plen - 1] ^= 1;
		FUZZ_CHECK(!users_check(u, &cred));
		cred.pass[cred.plen - 1] ^= 1;
		cred.plen--;
		FUZZ_CHECK(cred.plen == 0 ? !users_check(u, &cred) :
		    users_check(u, &cred) == fuzz_file_has(data, size, &cred));
	}
	FUZZ_CHECK(n > 0);
	/* Credentials cut from the input: accepted only when a line says so. */
	memset(&cred, 0, sizeof(cred));
	cred.ulen = size > 0 ? (uint8_t)(data[0] % 8) : 0;
	cred.plen = size > 1 ? (uint8_t)(data[1] % 8) : 0;
	if ((size_t)cred.ulen + cred.plen + 2 <= size) {
		memcpy(cred.user, data + 2, cred.ulen);
		memcpy(cred.pass, data + 2 + cred.ulen, cred.plen);
		FUZZ_CHECK(users_check(u, &cred) ==
		    (cred.ulen > 0 && cred.plen > 0 && fuzz_file_has(data, size, &cred)));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[FUZZ_WHY_MAX] = "";
	struct users *u = NULL;
	int r = fuzz_users_read(data, size, &u, why, sizeof(why));

	FUZZ_CHECK(r == 0 || r == -1);
	if (r < 0) {
		FUZZ_CHECK(u == NULL);
		fuzz_check_refused(data, size, why);
		return 0;
	}
	FUZZ_CHECK(u != NULL);
	fuzz_check_loaded(data, size, u);
	users_free(u);
	return 0;
}
