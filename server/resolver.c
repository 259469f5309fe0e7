/*
 * resolver.c: a small pool of detached threads that run getaddrinfo(), and
 * the crypt(3) of a login against a hashed password (resolver_check()),
 * which is as slow as a lookup on purpose and shares its queue and limits.
 *
 * getaddrinfo() blocks for as long as the DNS takes, so it must never run on
 * the loop. Jobs wait on a queue under one mutex; finished jobs go on a done
 * list and one eventfd write wakes the loop, which hands each answer to its
 * callback. The pool is reference counted: on shutdown a worker still stuck
 * inside getaddrinfo() must not make the daemon wait, so the owner waits at
 * most SERVER_RESOLVER_EXIT_WAIT_MS for the workers to leave, joins them if
 * they did (so glibc frees their per-thread resolver state) and detaches
 * them if not; the last one out frees the pool.
 *
 * Every job in flight (queued, running, or done but not yet delivered)
 * holds one of SERVER_RESOLVER_PENDING_MAX slots. The per-client limit is a
 * linear scan of those slots on each lookup: 1,024 pointer checks under the
 * mutex cost less than a hash table's code, and need no upkeep on cancel.
 * A lookup past the slots or its client's SERVER_RESOLVER_PER_CLIENT waits
 * on r->waiting as a login does (below), behind its client's earlier ones:
 * every connection socksify makes comes from one address, and a program
 * opening 150 at once through a slow DNS got "resolver busy" for a score
 * of them. The session's --connect-timeout bounds the wait (then 04);
 * past SERVER_RESOLVER_WAITING_MAX waiting (..._PER_CLIENT for one
 * client) one is refused at once, as before (01, resolver busy).
 *
 * Logins are held to SERVER_CHECKS_MAX in flight (SERVER_CHECKS_PER_CLIENT
 * per client), so that a flood of them cannot take the threads lookups
 * need. The other way round, a lookup a silent DNS server holds keeps its
 * thread for as long as glibc waits (seconds, whether or not its client is
 * still there), so lookups run on at most lookups_max threads at once and
 * the pool has one thread more: a worker passes over queued lookups while
 * lookups_max run, and takes the first login behind them (in queue order
 * otherwise). Four requests for a name nobody answers no longer stop
 * every login against a hash. Nor every other client's lookups: one
 * client runs half the lookup threads at most (r->running holds the
 * clients of the lookups running), its other lookups passed over for
 * another client's behind them. One past those waits on r->waiting, in order, without a slot
 * (JOB_WAITING), and takes one when room is made: resolver_promote_locked()
 * after each delivery and cancel of any job. A browser opening twenty
 * connections at once is served, slower, rather than refused; the
 * session's handshake timeout bounds the wait (then auth busy, as
 * before). Beyond SERVER_CHECKS_WAITING_MAX waiting (..._PER_CLIENT for
 * one client) a login is refused at once (auth busy).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "defaults.h"
#include "resolver.h"
#include "socks5.h"
#include "users.h"

enum job_state {
	JOB_WAITING,			/* a login or lookup on r->waiting, no slot yet */
	JOB_QUEUED,			/* on r->queued: cancel frees it at once */
	JOB_RUNNING,			/* a worker is in getaddrinfo() */
	JOB_DONE,			/* on a done list, to be delivered */
};

struct resolver_job {
	struct resolver_job *prev, *next;	/* on queued, done or waiting */
	bool may_wait;			/* a lookup that may wait for a slot */
	enum job_state state;
	size_t slot;			/* index in r->slots */
	struct in6_addr client;		/* the per-client key; IPv4 as v4-mapped */
	char name[S5_DOMAIN_MAX + 1];
	char port[sizeof("65535")];
	resolver_fn *fn;
	void *arg;
	bool cancelled;			/* running or done: dropped on delivery */
	int err;
	struct addrinfo *ai;
	/* A login to check (check_fn set): the credential, wiped once used. */
	resolver_check_fn *check_fn;
	struct s5_cred cred;
	struct users_hash hash;
	bool ok;
};

struct job_list {
	struct resolver_job *head, *tail;
};

struct resolver {
	struct loop *loop;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job_list queued, done;
	struct job_list waiting;	/* logins past the check limits, lookups
					 * past the slots or their client's */
	size_t nwaiting;		/* ... logins */
	size_t nlwaiting;		/* ... lookups */
	/* Jobs queued, running or not yet delivered; NULL for a free slot. */
	struct resolver_job *slots[SERVER_RESOLVER_PENDING_MAX];
	unsigned refs;			/* live workers + the owner */
	unsigned lookups_running;	/* workers inside getaddrinfo() */
	unsigned lookups_max;		/* ... at most; the pool's other thread
					 * is for logins */
	struct in6_addr *running;	/* their clients, lookups_running of them */
	bool stop;
	pthread_t *tids;		/* the workers, joined or detached on free */
	unsigned ntids;
};

static void resolver_promote_locked(struct resolver *r);

static void
list_push(struct job_list *q, struct resolver_job *j)
{
	j->next = NULL;
	j->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static void
list_unlink(struct job_list *q, struct resolver_job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		q->head = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		q->tail = j->prev;
	j->prev = j->next = NULL;
}

static struct resolver_job *
list_take(struct job_list *q)
{
	struct resolver_job *j = q->head;

	if (j != NULL)
		list_unlink(q, j);
	return j;
}

static void
job_free(struct resolver_job *j)
{
	if (j->ai != NULL)
		freeaddrinfo(j->ai);
	explicit_bzero(&j->cred, sizeof(j->cred));
	free(j);
}

static void
list_free(struct job_list *q)
{
	struct resolver_job *j;

	while ((j = list_take(q)) != NULL)
		job_free(j);
}

/* Drops one reference with r->mu held; frees the pool on the last one. */
static void
resolver_unref_locked(struct resolver *r)
{
	if (--r->refs > 0) {
		pthread_mutex_unlock(&r->mu);
		return;
	}
	pthread_mutex_unlock(&r->mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->running);
	free(r);
}

/* Lookups of client running now. */
static unsigned
resolver_running_of(const struct resolver *r, const struct in6_addr *client)
{
	unsigned i, n = 0;

	for (i = 0; i < r->lookups_running; i++)
		n += memcmp(&r->running[i], client, sizeof(*client)) == 0;
	return n;
}

/*
 * The job a free worker takes: the first queued one, passing over lookups
 * while lookups_max run, and a lookup whose client runs half of them
 * already: a client asking for names a silent DNS server never answers
 * holds each thread some 10 s, and four such requests held every lookup
 * of every other client as long (found by an adversarial test). NULL: none
 * it may take.
 */
static struct resolver_job *
resolver_pick_locked(const struct resolver *r)
{
	unsigned per_client = r->lookups_max > 1 ? r->lookups_max / 2 : 1;
	unsigned alone = r->lookups_max > 1 ? r->lookups_max - 1 : 1;
	struct resolver_job *j;

	for (j = r->queued.head; j != NULL; j = j->next)
		if (j->check_fn != NULL || (r->lookups_running < r->lookups_max &&
		    resolver_running_of(r, &j->client) < per_client))
			return j;
	/* Only clients at their half queued: the first may take more, all
	 * but one thread (a lone client, socksify's every connection, is
	 * not held to half; a newcomer still finds a thread). */
	for (j = r->queued.head; j != NULL; j = j->next)
		if (j->check_fn == NULL && r->lookups_running < r->lookups_max &&
		    resolver_running_of(r, &j->client) < alone)
			return j;
	return NULL;
}

/* client's lookup started (on) or over (off), with r->mu held. */
static void
resolver_running_note(struct resolver *r, const struct in6_addr *client, bool on)
{
	unsigned i;

	if (on) {
		r->running[r->lookups_running++] = *client;
		return;
	}
	for (i = 0; i < r->lookups_running; i++) {
		if (memcmp(&r->running[i], client, sizeof(*client)) == 0) {
			r->running[i] = r->running[--r->lookups_running];
			return;
		}
	}
}

static void *
resolver_worker(void *arg)
{
	struct resolver *r = arg;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct resolver_job *j = NULL;
		uint64_t one = 1;

		while (!r->stop && (j = resolver_pick_locked(r)) == NULL)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop)
			break;
		/* Cancelled jobs have left the queue already. */
		list_unlink(&r->queued, j);
		j->state = JOB_RUNNING;
		if (j->check_fn == NULL)
			resolver_running_note(r, &j->client, true);
		pthread_mutex_unlock(&r->mu);
		if (j->check_fn != NULL) {
			j->ok = users_hash_check(&j->cred, &j->hash);
			explicit_bzero(&j->cred, sizeof(j->cred));
		} else {
			j->err = getaddrinfo(j->name, j->port, &hints, &j->ai);
		}
		pthread_mutex_lock(&r->mu);
		if (j->check_fn == NULL)
			resolver_running_note(r, &j->client, false);
		if (r->stop) {
			job_free(j);
			break;
		}
		j->state = JOB_DONE;
		list_push(&r->done, j);
		/* Under the lock, so resolver_free() cannot close efd meanwhile. */
		if (write(r->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
			perror("socksifyd: resolver eventfd");
	}
	/* resolver_free() waits on cv for the workers to leave. */
	pthread_cond_broadcast(&r->cv);
	resolver_unref_locked(r);
	return NULL;
}

/* Loop side: hand every finished job to its callback. */
static void
resolver_on_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct resolver *r = arg;
	struct job_list done;
	struct resolver_job *j;
	uint64_t n;

	(void)l;
	(void)events;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&r->mu);
	done = r->done;
	r->done.head = r->done.tail = NULL;
	pthread_mutex_unlock(&r->mu);
	while ((j = list_take(&done)) != NULL) {
		pthread_mutex_lock(&r->mu);
		r->slots[j->slot] = NULL;
		resolver_promote_locked(r);	/* any slot: a waiting login may fit */
		pthread_mutex_unlock(&r->mu);
		if (!j->cancelled && j->check_fn != NULL) {
			j->check_fn(j->arg, j->ok);
		} else if (!j->cancelled) {
			j->fn(j->arg, j->err, j->err == 0 ? j->ai : NULL);
			if (j->err == 0)
				j->ai = NULL;
		}
		job_free(j);
	}
}

int
resolver_new(struct resolver **out, struct loop *l, unsigned nlookups)
{
	struct resolver *r;
	sigset_t all, old;
	unsigned i, nthreads = nlookups + 1;
	int err;

	if (nlookups == 0)
		return -EINVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->loop = l;
	r->refs = 1;
	r->lookups_max = nlookups;
	if ((r->tids = calloc(nthreads, sizeof(*r->tids))) == NULL ||
	    (r->running = calloc(nlookups, sizeof(*r->running))) == NULL) {
		free(r->tids);
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if ((r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		err = -errno;
		goto fail;
	}
	if ((err = loop_add(l, r->efd, EPOLLIN, resolver_on_event, r)) < 0) {
		close(r->efd);
		goto fail;
	}
	/* Workers take no signals: the loop thread owns them (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		/* Counted first: a worker may leave before we get the lock. */
		pthread_mutex_lock(&r->mu);
		r->refs++;
		pthread_mutex_unlock(&r->mu);
		err = -pthread_create(&r->tids[i], NULL, resolver_worker, r);
		if (err < 0) {
			pthread_mutex_lock(&r->mu);
			r->refs--;
			pthread_mutex_unlock(&r->mu);
			break;
		}
		r->ntids++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (i == 0) {
		loop_del(l, r->efd);
		close(r->efd);
		goto fail;
	}
	/* Fewer threads than asked: still one kept for logins, if two. The
	 * workers read it under the lock. */
	pthread_mutex_lock(&r->mu);
	if (r->ntids <= r->lookups_max)
		r->lookups_max = r->ntids > 1 ? r->ntids - 1 : 1;
	pthread_mutex_unlock(&r->mu);
	*out = r;
	return 0;
fail:
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->tids);
	free(r->running);
	free(r);
	return err;
}

/*
 * With r->mu held and r->stop set: waits a bounded time for the workers to
 * leave, then joins them all, or detaches them all if one is still inside
 * getaddrinfo() (it frees the pool when it comes out).
 */
static void
resolver_wait_workers_locked(struct resolver *r)
{
	struct timespec until;
	unsigned i;
	bool all_out;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SERVER_RESOLVER_EXIT_WAIT_MS / 1000;
	until.tv_nsec += (SERVER_RESOLVER_EXIT_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (r->refs > 1 &&
	    pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
		;
	all_out = r->refs == 1;
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < r->ntids; i++) {
		if (all_out)
			pthread_join(r->tids[i], NULL);
		else
			pthread_detach(r->tids[i]);
	}
	free(r->tids);
	r->tids = NULL;
	pthread_mutex_lock(&r->mu);
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL)
		return;
	loop_del(r->loop, r->efd);
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	list_free(&r->queued);
	list_free(&r->done);
	list_free(&r->waiting);
	close(r->efd);
	r->efd = -1;
	resolver_wait_workers_locked(r);
	resolver_unref_locked(r);
}

/* The client's address as the per-client key: IPv4 as ::ffff:a.b.c.d. */
static void
resolver_client_key(struct in6_addr *key, const struct sockaddr *client)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(key, 0, sizeof(*key));
	if (client->sa_family == AF_INET6) {
		memcpy(&sin6, client, sizeof(sin6));
		*key = sin6.sin6_addr;
		/* One client holds a /64 (RFC 4291 §2.5.4): counted as one. */
		if (!IN6_IS_ADDR_V4MAPPED(key))
			memset(&key->s6_addr[8], 0, 8);
	} else if (client->sa_family == AF_INET) {
		memcpy(&sin, client, sizeof(sin));
		key->s6_addr[10] = key->s6_addr[11] = 0xff;
		memcpy(&key->s6_addr[12], &sin.sin_addr, sizeof(sin.sin_addr));
	}
}

/* What the slots hold for j's client: a free slot (or
 * SERVER_RESOLVER_PENDING_MAX), jobs of its client, checks, its checks. */
struct slot_count {
	size_t slot, mine, checks, my_checks;
};

static void
resolver_count_locked(const struct resolver *r, const struct resolver_job *j,
    struct slot_count *c)
{
	size_t i;
	bool same;

	memset(c, 0, sizeof(*c));
	c->slot = SERVER_RESOLVER_PENDING_MAX;
	for (i = 0; i < SERVER_RESOLVER_PENDING_MAX; i++) {
		const struct resolver_job *o = r->slots[i];

		if (o == NULL) {
			if (c->slot == SERVER_RESOLVER_PENDING_MAX)
				c->slot = i;
			continue;
		}
		same = memcmp(&o->client, &j->client, sizeof(j->client)) == 0;
		c->mine += same;
		c->checks += o->check_fn != NULL;
		c->my_checks += same && o->check_fn != NULL;
	}
}

/* j into free slot `slot` and onto the queue, for a worker. */
static void
resolver_queue_locked(struct resolver *r, struct resolver_job *j, size_t slot)
{
	j->slot = slot;
	j->state = JOB_QUEUED;
	r->slots[slot] = j;
	list_push(&r->queued, j);
	pthread_cond_signal(&r->cv);
}

/* A check may run now: under both check limits, and a slot free. Checks
 * have limits of their own, tighter than SERVER_RESOLVER_PER_CLIENT. */
static bool
resolver_check_fits(const struct slot_count *c)
{
	return c->checks < SERVER_CHECKS_MAX && c->my_checks < SERVER_CHECKS_PER_CLIENT &&
	    c->slot < SERVER_RESOLVER_PENDING_MAX;
}

/*
 * A slot was freed (a job delivered or cancelled): waiting logins take the
 * room, in order, each once it fits; one whose client is at its limit lets
 * the ones behind it by. One pass over the slots: the checks in flight
 * are SERVER_CHECKS_MAX at most, so each waiting login is weighed against
 * that short list, not the 1,024 slots.
 */
static void
resolver_promote_checks_locked(struct resolver *r)
{
	struct in6_addr in_flight[SERVER_CHECKS_MAX];
	struct resolver_job *j, *next;
	size_t i, k, nchecks = 0, slot = 0, mine;

	if (r->nwaiting == 0)
		return;
	for (i = 0; i < SERVER_RESOLVER_PENDING_MAX; i++) {
		const struct resolver_job *o = r->slots[i];

		if (o == NULL || o->check_fn == NULL)
			continue;
		if (nchecks == SERVER_CHECKS_MAX)
			return;
		in_flight[nchecks++] = o->client;
	}
	for (j = r->waiting.head; j != NULL && nchecks < SERVER_CHECKS_MAX; j = next) {
		next = j->next;
		if (j->check_fn == NULL)
			continue;
		for (k = 0, mine = 0; k < nchecks; k++)
			mine += memcmp(&in_flight[k], &j->client, sizeof(j->client)) == 0;
		if (mine >= SERVER_CHECKS_PER_CLIENT)
			continue;
		while (slot < SERVER_RESOLVER_PENDING_MAX && r->slots[slot] != NULL)
			slot++;
		if (slot == SERVER_RESOLVER_PENDING_MAX)
			return;
		list_unlink(&r->waiting, j);
		r->nwaiting--;
		in_flight[nchecks++] = j->client;
		resolver_queue_locked(r, j, slot);
	}
}

/*
 * Waiting lookups take free slots, in order, each once its client is under
 * SERVER_RESOLVER_PER_CLIENT; a client found at its limit in this pass is
 * passed over without counting again (RESOLVER_FULL_SEEN of them; past
 * that the pass ends, the next slot freed starts another).
 */
#define RESOLVER_FULL_SEEN	16
/* With a slot free, fewer than PENDING_MAX / PER_CLIENT clients can be at
 * their limit: the pass never ends early on the cache, only on the slots. */
_Static_assert(SERVER_RESOLVER_PENDING_MAX / SERVER_RESOLVER_PER_CLIENT <= RESOLVER_FULL_SEEN,
    "RESOLVER_FULL_SEEN must hold the clients the slots can hold at their limit");
static void
resolver_promote_lookups_locked(struct resolver *r)
{
	struct in6_addr full[RESOLVER_FULL_SEEN];
	struct resolver_job *j, *next;
	struct slot_count c;
	size_t k, nfull = 0;
	bool seen;

	for (j = r->waiting.head; j != NULL && r->nlwaiting > 0; j = next) {
		next = j->next;
		if (j->check_fn != NULL)
			continue;
		for (k = 0, seen = false; k < nfull && !seen; k++)
			seen = memcmp(&full[k], &j->client, sizeof(j->client)) == 0;
		if (seen)
			continue;
		resolver_count_locked(r, j, &c);
		if (c.slot == SERVER_RESOLVER_PENDING_MAX)
			return;
		if (c.mine >= SERVER_RESOLVER_PER_CLIENT) {
			if (nfull == RESOLVER_FULL_SEEN)
				return;
			full[nfull++] = j->client;
			continue;
		}
		list_unlink(&r->waiting, j);
		r->nlwaiting--;
		resolver_queue_locked(r, j, c.slot);
	}
}

static void
resolver_promote_locked(struct resolver *r)
{
	resolver_promote_checks_locked(r);
	resolver_promote_lookups_locked(r);
}

/* Waiting jobs of j's client of j's kind (logins, or lookups). */
static size_t
resolver_waiting_of(const struct resolver *r, const struct resolver_job *j)
{
	const struct resolver_job *o;
	size_t n = 0;

	for (o = r->waiting.head; o != NULL; o = o->next)
		n += (o->check_fn != NULL) == (j->check_fn != NULL) &&
		    memcmp(&o->client, &j->client, sizeof(j->client)) == 0;
	return n;
}

/* A new job j for client onto the queue, under the limits (a login past
 * the check limits onto the waiting list): 0 and *job set, or -EAGAIN /
 * -EBUSY with j freed. */
static int
resolver_enqueue(struct resolver *r, struct resolver_job *j,
    const struct sockaddr *client, struct resolver_job **job)
{
	bool check = j->check_fn != NULL;
	struct slot_count c;

	resolver_client_key(&j->client, client);
	pthread_mutex_lock(&r->mu);
	resolver_count_locked(r, j, &c);
	/* Logins against a hash are slow on purpose: few at once, so that a
	 * flood of them cannot hold the threads lookups need; the rest wait
	 * their turn, behind those already waiting. A lookup past the slots
	 * or its client's limit waits too, behind its client's waiting ones. */
	if (!check && !j->may_wait &&
	    (c.slot == SERVER_RESOLVER_PENDING_MAX || c.mine >= SERVER_RESOLVER_PER_CLIENT)) {
		pthread_mutex_unlock(&r->mu);
		job_free(j);
		return c.slot == SERVER_RESOLVER_PENDING_MAX ? -EAGAIN : -EBUSY;
	}
	if (check ? r->nwaiting > 0 || !resolver_check_fits(&c) :
	    c.slot == SERVER_RESOLVER_PENDING_MAX || c.mine >= SERVER_RESOLVER_PER_CLIENT ||
	    (r->nlwaiting > 0 && resolver_waiting_of(r, j) > 0)) {
		size_t *n = check ? &r->nwaiting : &r->nlwaiting;
		size_t max = check ? SERVER_CHECKS_WAITING_MAX : SERVER_RESOLVER_WAITING_MAX;
		size_t per = check ? SERVER_CHECKS_WAITING_PER_CLIENT :
		    SERVER_RESOLVER_WAITING_PER_CLIENT;

		if (*n >= max || resolver_waiting_of(r, j) >= per) {
			pthread_mutex_unlock(&r->mu);
			job_free(j);
			return *n >= max ? -EAGAIN : -EBUSY;
		}
		j->state = JOB_WAITING;
		list_push(&r->waiting, j);
		(*n)++;
		/* Room may be there already for one waiting before it. */
		resolver_promote_locked(r);
		pthread_mutex_unlock(&r->mu);
		*job = j;
		return 0;
	}
	resolver_queue_locked(r, j, c.slot);
	pthread_mutex_unlock(&r->mu);
	*job = j;
	return 0;
}

int
resolver_lookup(struct resolver *r, const char *name, uint16_t port,
    const struct sockaddr *client, bool may_wait, resolver_fn *fn, void *arg,
    struct resolver_job **job)
{
	struct resolver_job *j;
	size_t len = strlen(name);

	if (len > S5_DOMAIN_MAX)
		return -EINVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	memcpy(j->name, name, len + 1);
	snprintf(j->port, sizeof(j->port), "%u", (unsigned)port);
	j->fn = fn;
	j->arg = arg;
	j->may_wait = may_wait;
	return resolver_enqueue(r, j, client, job);
}

int
resolver_check(struct resolver *r, const struct s5_cred *cred,
    const struct users_hash *hash, const struct sockaddr *client,
    resolver_check_fn *fn, void *arg, struct resolver_job **job)
{
	struct resolver_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->cred = *cred;
	j->hash = *hash;
	j->check_fn = fn;
	j->arg = arg;
	return resolver_enqueue(r, j, client, job);
}

void
resolver_cancel(struct resolver *r, struct resolver_job *job)
{
	pthread_mutex_lock(&r->mu);
	if (job->state == JOB_WAITING) {
		list_unlink(&r->waiting, job);
		if (job->check_fn != NULL)
			r->nwaiting--;
		else
			r->nlwaiting--;
		job_free(job);
	} else if (job->state == JOB_QUEUED) {
		/* Not started: its place in the queue goes back at once. */
		list_unlink(&r->queued, job);
		r->slots[job->slot] = NULL;
		job_free(job);
		resolver_promote_locked(r);
	} else {
		/*
		 * A worker holds it, or the loop is delivering it: it keeps
		 * its slot (a running lookup does occupy a thread) until
		 * resolver_on_event() drops it.
		 */
		job->cancelled = true;
	}
	pthread_mutex_unlock(&r->mu);
}
