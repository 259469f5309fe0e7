/*
 * fake_resolver.c: server/resolver.h for fuzz_session. Lookups wait in a
 * queue until the driver answers the oldest one (fake.h), on the loop's
 * thread as the real resolver delivers them. A callback for a cancelled
 * lookup never runs, and cancelling what is not pending is a bug.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "fuzz.h"
#include "netshim.h"

struct resolver_job {
	struct resolver_job *next;
	char name[S5_DOMAIN_MAX + 1];
	uint16_t port;
	resolver_fn *fn;
	void *arg;
	int root;			/* the client connection it serves */
	resolver_check_fn *check_fn;	/* a login to check, answered as users.c would */
	struct s5_cred cred;
	struct users_hash hash;
};

struct resolver {
	struct resolver_job *head;	/* oldest first */
};

/* Client connections (roots) whose login check was cancelled before its
 * answer: the session gave up on it (its handshake timeout: auth busy). */
enum { FAKE_CANCELLED_MAX = 64 };
static int fake_cancelled[FAKE_CANCELLED_MAX];
static size_t fake_ncancelled;

int
resolver_new(struct resolver **out, struct loop *l, unsigned nthreads)
{
	(void)l;
	(void)nthreads;
	fake_ncancelled = 0;
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return -ENOMEM;
	return 0;
}

void
resolver_free(struct resolver *r)
{
	struct resolver_job *j;

	if (r == NULL)
		return;
	while ((j = r->head) != NULL) {
		r->head = j->next;
		free(j);
	}
	free(r);
}

int
resolver_lookup(struct resolver *r, const char *name, uint16_t port,
    const struct sockaddr *client, bool may_wait, resolver_fn *fn, void *arg,
    struct resolver_job **job)
{
	struct resolver_job *j, **tail;
	size_t len = strlen(name);

	/* What the real resolver copies: an RFC 1928 name. */
	FUZZ_CHECK(len >= 1 && len <= S5_DOMAIN_MAX);
	FUZZ_CHECK(client->sa_family == AF_INET || client->sa_family == AF_INET6);
	(void)may_wait;
	if (shim_plan.lookup_fails) {
		shim_plan.lookup_fails = false;
		return -EAGAIN;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	memcpy(j->name, name, len + 1);
	j->port = port;
	j->fn = fn;
	j->arg = arg;
	j->root = shim_current_root();
	for (tail = &r->head; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = j;
	*job = j;
	return 0;
}

int
resolver_check(struct resolver *r, const struct s5_cred *cred,
    const struct users_hash *hash, const struct sockaddr *client,
    resolver_check_fn *fn, void *arg, struct resolver_job **job)
{
	struct resolver_job *j, **tail;

	FUZZ_CHECK(client->sa_family == AF_INET || client->sa_family == AF_INET6);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->check_fn = fn;
	j->cred = *cred;
	j->hash = *hash;
	j->arg = arg;
	j->root = shim_current_root();
	for (tail = &r->head; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = j;
	*job = j;
	return 0;
}

void
resolver_cancel(struct resolver *r, struct resolver_job *job)
{
	struct resolver_job **p;

	for (p = &r->head; *p != NULL && *p != job; p = &(*p)->next)
		;
	/* Cancelling a job that was answered or cancelled already. */
	FUZZ_CHECK(*p == job);
	*p = job->next;
	if (job->check_fn != NULL && fake_ncancelled < FAKE_CANCELLED_MAX)
		fake_cancelled[fake_ncancelled++] = job->root;
	free(job);
}

bool
fake_resolver_check_cancelled(int root)
{
	size_t i;

	for (i = 0; i < fake_ncancelled; i++)
		if (fake_cancelled[i] == root)
			return true;
	return false;
}

size_t
fake_resolver_pending(const struct resolver *r)
{
	const struct resolver_job *j;
	size_t n = 0;

	for (j = r->head; j != NULL; j = j->next)
		n++;
	return n;
}

static struct addrinfo *
fake_ai(const char *ip, uint16_t port, struct addrinfo *next)
{
	struct sockaddr_storage ss;
	struct s5_addr a;
	const char *why;
	int len;

	if (s5_addr_parse(ip, &a, port, &why) < 0 ||
	    (len = s5_addr_to_sockaddr(&a, &ss)) < 0)
		abort();
	return shim_addrinfo((struct sockaddr *)&ss, (socklen_t)len, next);
}

void
fake_resolver_answer(struct resolver *r, enum fake_answer how)
{
	struct resolver_job *j = r->head;
	struct addrinfo *ai = NULL;
	int err = 0;

	if (j == NULL)
		return;
	r->head = j->next;
	if (j->check_fn != NULL) {
		shim_set_root(j->root);
		j->check_fn(j->arg, users_hash_check(&j->cred, &j->hash));
		free(j);
		return;
	}
	switch (how) {
	case FAKE_ANSWER_NONAME:
		err = EAI_NONAME;
		break;
	case FAKE_ANSWER_AGAIN:
		err = EAI_AGAIN;
		break;
	case FAKE_ANSWER_V4:
		ai = fake_ai("127.0.0.1", j->port, NULL);
		break;
	case FAKE_ANSWER_V6:
		ai = fake_ai("::1", j->port, NULL);
		break;
	case FAKE_ANSWER_V6_V4:
		ai = fake_ai("::1", j->port, fake_ai("127.0.0.1", j->port, NULL));
		break;
	case FAKE_ANSWER_TWO_V4:
		ai = fake_ai("127.0.0.2", j->port, fake_ai("127.0.0.1", j->port, NULL));
		break;
	case FAKE_ANSWER_MAPPED:
		ai = fake_ai("::ffff:127.0.0.1", j->port, NULL);
		break;
	default:
		ai = fake_ai("10.0.0.1", j->port, NULL);
		break;
	}
	shim_set_root(j->root);
	j->fn(j->arg, err, ai);
	free(j);
}
