/*
 * failover.c: the alternatives of a hop ("-x 'a|b'") and their health, one
 * table for the whole process tree.
 *
 * proxychains' round robin starts afresh in each process and spins when
 * every proxy is down. Here a hop of the chain may list alternatives that
 * stand in for each other (same scheme, s5_hop_parse()), and one connect()
 * moves from a failing alternative to the next within its own
 * SOCKSIFY_TIMEOUT:
 *
 *   pick        tunnel_init() picks one alternative per position
 *               (failover_pick()): --pick order takes the first alive in
 *               the order given, --pick spread starts at a counter the
 *               tree shares (a round robin over the whole tree) and takes
 *               the first alive from there. A position whose every
 *               alternative is down fails the connect at once (t->down_hop,
 *               ECONNREFUSED, one rate-limited line): nothing is dialled,
 *               nothing waits, nothing spins.
 *   attempt     tunnel_attempt() gives each attempt a deadline: what is
 *               left of SOCKSIFY_TIMEOUT, divided among this attempt and
 *               the alternatives of the hop at stake still untried and
 *               alive (tunnel_share()), recomputed as the handshake
 *               reaches each hop. So a proxy that never answers (a
 *               blackhole: SYNs dropped, or a greeting never answered)
 *               costs at most its share, and a hop without alternatives
 *               left has all that remains.
 *   failure     a drive that fails calls tunnel_retry() (tunnel.c). What
 *               failed is a proxy when the dial to the first hop failed or
 *               timed out, or when hop k failed before it answered anything
 *               (no answer, a hang-up), or answered garbage, no acceptable
 *               method or a refusal of the credentials: hop k's
 *               alternative. Once hop k has answered it is alive: a stall
 *               or hang-up after that, or a refusal (reply 02-08), is about
 *               what hop k was asked to reach: the next hop's alternative,
 *               or for the last hop the target, which is no proxy's
 *               failure (no failover, nobody marked down, and the wait runs
 *               to the connect's own deadline: a slow target is waited for).
 *               The failed alternative is marked down (failover_down()),
 *               one rate-limited line says so, the socket is disconnected
 *               (AF_UNSPEC: Linux lets a TCP socket connect() again after
 *               it, whatever state it was in), and the next alternative
 *               alive and untried at that position is picked; positions
 *               before it keep theirs. The driver dials again. With none
 *               left, the last failure is the connect's.
 *   success     the alternatives used are alive again (failover_up()).
 *   BIND        a listening socket's BIND (listen.c) goes through the
 *               first-hop alternative the program's connection took
 *               (tunnel_follow()): FTP servers want the PORT address on the
 *               control connection's host.
 *
 * A socket reaches only the alternatives of its own family (or IPv4 ones
 * from an IPv6 socket): the engine swaps a socket's family for the first
 * pick before it dials, never in the middle of a connect; an alternative
 * of the other family is skipped for that socket, not marked down.
 *
 * Down means skipped for a back-off: PRELOAD_BACKOFF_MIN_MS after the first
 * failure, doubling with each failure that follows (a probe after the
 * back-off that fails again) up to PRELOAD_BACKOFF_MAX_MS; any success
 * clears it. Failures reported while it is down (connects that were under
 * way) do not lengthen it. --pick spread takes one turn of the shared
 * counter per connect, each position with alternatives a digit of it. Only positions with two alternatives or more keep health: a
 * lone proxy is tried on every connect, as before alternatives existed (a
 * proxy that comes back is used at once).
 *
 * The table (struct failover_health) lives in the tree's shared memory next
 * to the placeholder names (fakedns.c), so a back-off learnt by one process
 * holds for its parent, its children and their exec()ed programs, and a
 * spread is a round robin across all of them. A slot is keyed by a hash of
 * the proxy's scheme, user name, host and port (never its password); it is
 * claimed with a compare-and-swap and its fields are single atomic words,
 * so processes update it without a lock and a torn update costs at most one
 * back-off step; a time read back that lies past the longest back-off counts
 * as none, so no process can keep a proxy down for good. CLOCK_MONOTONIC is
 * the same for every process of the host. The table is mapped when the
 * configuration is read, if a hop has alternatives.
 * When the table is full or cannot be mapped, a proxy has no health: it is
 * always alive (order and spread still hold, per process).
 *
 * The drivers: tunnel_run() (the handshake inside the call: connect.c,
 * UDP ASSOCIATE, BIND, SOCKSIFY_DNS), the engine (async.c) and the
 * supervisor (supervisor.c) each dial, step, and on a failure or an
 * attempt's deadline ask tunnel_retry() whether to dial again.
 */
#include <stdatomic.h>
#include <string.h>

#include "preload.h"

_Static_assert(PRELOAD_MAX_ALTS <= 8, "struct tunnel keeps tried alternatives in 8 bits");

static _Atomic uint32_t failover_local_spread;	/* without a shared table */

static uint64_t
failover_key(const struct s5_proxy *p)
{
	uint64_t h = UINT64_C(1469598103934665603);
	char text[S5_ADDR_TEXT_MAX];
	const char *parts[3];
	size_t i, k;

	if (s5_addr_format(&p->addr, text, sizeof(text)) < 0)
		text[0] = '\0';
	parts[0] = s5_proto_scheme(p->proto, p->remote_dns);
	parts[1] = p->has_cred ? p->cred.user : "";
	parts[2] = text;
	for (i = 0; i < 3; i++) {
		for (k = 0; parts[i][k] != '\0'; k++) {
			h ^= (uint8_t)parts[i][k];
			h *= UINT64_C(1099511628211);
		}
		h ^= 0xff;	/* a separator no text holds */
		h *= UINT64_C(1099511628211);
	}
	return h == 0 ? 1 : h;
}

/* p's slot in the shared table (claimed when claim), or NULL. */
static struct failover_slot *
failover_slot(const struct s5_proxy *p, bool claim)
{
	struct failover_health *fh = fakedns_health();
	uint64_t key = failover_key(p), seen;
	size_t i, k;

	if (fh == NULL)
		return NULL;
	for (i = 0; i < PRELOAD_HEALTH_SLOTS; i++) {
		k = (size_t)((key + i) % PRELOAD_HEALTH_SLOTS);
		seen = atomic_load_explicit(&fh->slot[k].key, memory_order_acquire);
		if (seen == key)
			return &fh->slot[k];
		if (seen != 0)
			continue;
		if (!claim)
			return NULL;
		if (atomic_compare_exchange_strong(&fh->slot[k].key, &seen, key) ||
		    seen == key)
			return &fh->slot[k];
	}
	return NULL;
}

/* The back-off of slot s left at now, ms (0: none). Any process of the
 * tree writes the table: a value beyond the longest back-off is none. */
static long long
failover_left(struct failover_slot *s, long long now)
{
	long long until = atomic_load_explicit(&s->until_ms, memory_order_relaxed);

	if (until <= now || until > now + PRELOAD_BACKOFF_MAX_MS)
		return 0;
	return until - now;
}

/* Alternative k of position i is skipped now (a back-off runs). */
static bool
failover_is_down(size_t i, size_t k, long long now)
{
	const struct preload_hop *h = &preload_cfg.hops[i][k];
	struct failover_slot *s;

	if (h->unusable)
		return true;
	if (preload_cfg.nalts[i] < 2 || (s = failover_slot(&h->proxy, false)) == NULL)
		return false;
	return failover_left(s, now) > 0;
}

/* The alternative of position i to use from start (in rotation), alive and
 * not tried: its index, or -1. */
static int
failover_choose(const struct tunnel *t, size_t i, size_t start, long long now)
{
	size_t n = preload_cfg.nalts[i], j, k;

	for (j = 0; j < n; j++) {
		k = (start + j) % n;
		if (!(t->tried[i] & (1u << k)) && !failover_is_down(i, k, now))
			return (int)k;
	}
	return -1;
}

void
failover_pick(struct tunnel *t)
{
	struct failover_health *fh;
	long long now = -1;
	size_t i, start;
	uint32_t turn = 0;
	bool turned = false;
	int k;

	for (i = 0; i < preload_cfg.nhops; i++) {
		t->alt[i] = 0;
		if (preload_cfg.nalts[i] < 2 && !preload_cfg.hops[i][0].unusable)
			continue;
		if (now < 0)
			now = tunnel_now_ms();
		start = 0;
		if (preload_cfg.spread && preload_cfg.nalts[i] > 1) {
			/* One turn per connect, every position its digit: a
			 * chain "a|b,c|d" goes a-c, b-c, a-d, b-d. */
			if (!turned) {
				fh = fakedns_health();
				turn = atomic_fetch_add_explicit(fh != NULL ? &fh->spread :
				    &failover_local_spread, 1, memory_order_relaxed);
				turned = true;
			}
			start = turn % preload_cfg.nalts[i];
			turn /= (uint32_t)preload_cfg.nalts[i];
		}
		if ((k = failover_choose(t, i, start, now)) < 0) {
			t->down_hop = i + 1;
			return;
		}
		t->alt[i] = (uint8_t)k;
	}
}

bool
failover_next(struct tunnel *t, size_t i, bool mark_down)
{
	int k;

	if (i >= preload_cfg.nhops)
		return false;
	if (mark_down)
		failover_down(&preload_cfg.hops[i][t->alt[i]].proxy, i);
	t->tried[i] |= (uint8_t)(1u << t->alt[i]);
	if ((k = failover_choose(t, i, t->alt[i], tunnel_now_ms())) < 0)
		return false;
	t->alt[i] = (uint8_t)k;
	return true;
}

size_t
failover_untried(const struct tunnel *t, size_t i)
{
	long long now = tunnel_now_ms();
	size_t k, n = 0;

	for (k = 0; i < preload_cfg.nhops && preload_cfg.nalts[i] > 1 &&
	    k < preload_cfg.nalts[i]; k++)
		if (k != t->alt[i] && !(t->tried[i] & (1u << k)) &&
		    !failover_is_down(i, k, now))
			n++;
	return n;
}

void
failover_down(const struct s5_proxy *p, size_t i)
{
	struct failover_slot *s;
	long long now;
	uint32_t b;

	if (i >= preload_cfg.nhops || preload_cfg.nalts[i] < 2 ||
	    (s = failover_slot(p, true)) == NULL)
		return;
	now = tunnel_now_ms();
	/* Down already: connects that were under way when it failed say so
	 * again, and must not lengthen the back-off; only a probe after it
	 * (or a first failure) does. */
	if (failover_left(s, now) > 0)
		return;
	b = atomic_load_explicit(&s->backoff_ms, memory_order_relaxed);
	b = b == 0 || b > PRELOAD_BACKOFF_MAX_MS ? PRELOAD_BACKOFF_MIN_MS :
	    b >= PRELOAD_BACKOFF_MAX_MS / 2 ? PRELOAD_BACKOFF_MAX_MS : b * 2;
	atomic_store_explicit(&s->backoff_ms, b, memory_order_relaxed);
	atomic_store_explicit(&s->until_ms, now + b, memory_order_relaxed);
}

void
failover_up(const struct tunnel *t)
{
	struct failover_slot *s;
	size_t i;

	for (i = 0; i < preload_cfg.nhops; i++) {
		if (preload_cfg.nalts[i] < 2 ||
		    (s = failover_slot(&preload_cfg.hops[i][t->alt[i]].proxy, false)) == NULL)
			continue;
		/* Written only when it says something: a busy tree's
		 * successes do not bounce one cache line around. */
		if (atomic_load_explicit(&s->backoff_ms, memory_order_relaxed) != 0) {
			atomic_store_explicit(&s->backoff_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&s->until_ms, 0, memory_order_relaxed);
		}
	}
}

long long
failover_retry_in(size_t i)
{
	struct failover_slot *s;
	long long now = tunnel_now_ms(), soonest = -1, until;
	size_t k;

	for (k = 0; i < preload_cfg.nhops && k < preload_cfg.nalts[i]; k++) {
		if (preload_cfg.hops[i][k].unusable ||
		    (s = failover_slot(&preload_cfg.hops[i][k].proxy, false)) == NULL)
			continue;
		until = failover_left(s, now);
		if (until > 0 && (soonest < 0 || until < soonest))
			soonest = until;
	}
	return soonest;
}
