/*
 * fakedns.c: placeholder addresses for remote name resolution.
 *
 * With socks5h the program's lookups are answered with addresses from ranges
 * no resolver returns: 198.18.0.0/15 (RFC 2544) and 100::/64 (RFC 6666), not
 * multicast, which dig, ssh and nmap reject (preload-anchors.md P8). connect()
 * maps a placeholder back to its name, and the name goes to the proxy.
 *
 * The table is one anonymous MAP_SHARED mapping made on first use, so a child
 * forked after a lookup connects to what its parent looked up, with no helper
 * thread, pipe or descriptor. Entries are append-only: readers walk hash
 * chains and read names without a lock (an entry is complete before the
 * release store that publishes it); writers take a process-shared, robust
 * mutex that also lives in the mapping. Process-shared, so it excludes
 * writers in every process of the tree, and a holder in another process
 * still releases it after fork(). Robust, so a writer killed while holding
 * it does not wedge the tree: the kernel marks the mutex, and the next
 * writer takes over. That holds across PID namespaces and PID reuse, where
 * probing a saved pid would not.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <arpa/inet.h>

#include "preload.h"

#define FAKEDNS_BUCKETS		PRELOAD_FAKE_ENTRIES	/* load factor <= 1 */

/* Slot 0 is never used: 0 ends a chain, and base + 0 is the network address. */
_Static_assert(PRELOAD_FAKE_ENTRIES < (1u << (32 - PRELOAD_FAKE_V4_BITS)) - 1,
    "PRELOAD_FAKE_ENTRIES must fit in the IPv4 placeholder range");

struct fakedns_entry {
	_Atomic uint32_t next;		/* next slot in the bucket chain, 0 ends */
	uint8_t len;
	char name[S5_DOMAIN_MAX + 1];
};

struct fakedns_table {
	pthread_mutex_t lock;		/* writers only; process-shared, robust */
	_Atomic uint32_t count;		/* slots 1..count are published */
	_Atomic uint32_t buckets[FAKEDNS_BUCKETS];
	struct fakedns_entry e[PRELOAD_FAKE_ENTRIES + 1];
};

static struct fakedns_table *_Atomic fakedns;
static uint8_t fakedns_v4_base[4];
static uint8_t fakedns_v6_base[16];
static pthread_once_t fakedns_once = PTHREAD_ONCE_INIT;

/* The writers' mutex, set up in the fresh mapping before it is published. */
static int
fakedns_init_lock(pthread_mutex_t *m)
{
	pthread_mutexattr_t attr;
	int r;

	r = pthread_mutexattr_init(&attr);
	if (r != 0)
		return r;
	r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (r == 0)
		r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (r == 0)
		r = pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
	return r;
}

static void
fakedns_create(void)
{
	void *p;
	int r;

	if (inet_pton(AF_INET, PRELOAD_FAKE_V4_NET, fakedns_v4_base) != 1 ||
	    inet_pton(AF_INET6, PRELOAD_FAKE_V6_NET, fakedns_v6_base) != 1) {
		preload_log(LOG_LVL_ERROR, "bad placeholder ranges in defaults.h");
		return;
	}
	/* Zero-filled by the kernel: every chain empty, count 0. */
	p = mmap(NULL, sizeof(struct fakedns_table), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		preload_log(LOG_LVL_ERROR, "cannot map the name table: %s",
		    strerror(errno));
		return;
	}
	r = fakedns_init_lock(&((struct fakedns_table *)p)->lock);
	if (r != 0) {
		preload_log(LOG_LVL_ERROR, "cannot set up the name table lock: %s",
		    strerror(r));
		munmap(p, sizeof(struct fakedns_table));
		return;
	}
	atomic_store_explicit(&fakedns, (struct fakedns_table *)p,
	    memory_order_release);
}

static struct fakedns_table *
fakedns_table(void)
{
	pthread_once(&fakedns_once, fakedns_create);
	return atomic_load_explicit(&fakedns, memory_order_acquire);
}

/* FNV-1a over the lower-cased name: DNS names compare case-insensitively. */
static uint32_t
fakedns_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;
	unsigned char ch;

	for (i = 0; i < len; i++) {
		ch = (unsigned char)name[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		h = (h ^ ch) * 16777619u;
	}
	return h % FAKEDNS_BUCKETS;
}

static uint32_t
fakedns_find(struct fakedns_table *t, uint32_t bucket, const char *name, size_t len)
{
	uint32_t i;

	i = atomic_load_explicit(&t->buckets[bucket], memory_order_acquire);
	while (i != 0) {
		if (t->e[i].len == len && strncasecmp(t->e[i].name, name, len) == 0)
			return i;
		i = atomic_load_explicit(&t->e[i].next, memory_order_acquire);
	}
	return 0;
}

/* 0, or the error of pthread_mutex_lock(). */
static int
fakedns_lock(struct fakedns_table *t)
{
	int r;

	r = pthread_mutex_lock(&t->lock);
	if (r == EOWNERDEAD) {
		/* The holder died. The table is still sound: an entry counts
		 * only once count is stored, and a slot written but never
		 * linked into its chain is a name nobody was handed, still
		 * mapped back correctly; the next writer carries on. */
		preload_log(LOG_LVL_DEBUG, "name table: a writer died holding "
		    "the lock; recovered");
		r = pthread_mutex_consistent(&t->lock);
	}
	return r;
}

static void
fakedns_unlock(struct fakedns_table *t)
{
	pthread_mutex_unlock(&t->lock);
}

/* The slot of name, added when new. 0, or -ENOMEM / -ENOSPC / -EINVAL, or
 * the -errno of a lock that cannot be taken. */
int
fakedns_lookup_name(const char *name, size_t len, unsigned *idx)
{
	struct fakedns_table *t = fakedns_table();
	uint32_t bucket, i, n;
	int saved = errno, r = 0;

	if (t == NULL)
		return -ENOMEM;
	if (len == 0 || len > S5_DOMAIN_MAX)
		return -EINVAL;
	bucket = fakedns_hash(name, len);
	i = fakedns_find(t, bucket, name, len);
	if (i != 0) {
		*idx = i;
		return 0;
	}
	r = fakedns_lock(t);
	if (r != 0) {
		errno = saved;
		return -r;
	}
	i = fakedns_find(t, bucket, name, len);
	if (i == 0) {
		n = atomic_load_explicit(&t->count, memory_order_relaxed) + 1;
		if (n > PRELOAD_FAKE_ENTRIES) {
			r = -ENOSPC;
		} else {
			memcpy(t->e[n].name, name, len);
			t->e[n].name[len] = '\0';
			t->e[n].len = (uint8_t)len;
			atomic_store_explicit(&t->e[n].next,
			    atomic_load_explicit(&t->buckets[bucket],
			    memory_order_relaxed), memory_order_relaxed);
			atomic_store_explicit(&t->count, n, memory_order_release);
			atomic_store_explicit(&t->buckets[bucket], n,
			    memory_order_release);
			i = n;
		}
	}
	fakedns_unlock(t);
	errno = saved;
	if (r == 0)
		*idx = i;
	return r;
}

void
fakedns_addr_v4(unsigned idx, uint8_t ip[4])
{
	uint32_t v;

	(void)fakedns_table();
	v = ((uint32_t)fakedns_v4_base[0] << 24 | (uint32_t)fakedns_v4_base[1] << 16 |
	    (uint32_t)fakedns_v4_base[2] << 8 | fakedns_v4_base[3]) + idx;
	ip[0] = (uint8_t)(v >> 24);
	ip[1] = (uint8_t)(v >> 16);
	ip[2] = (uint8_t)(v >> 8);
	ip[3] = (uint8_t)v;
}

void
fakedns_addr_v6(unsigned idx, uint8_t ip[16])
{
	(void)fakedns_table();
	memcpy(ip, fakedns_v6_base, 16);
	/* The interface identifier half of the /64 carries the slot. */
	ip[12] = (uint8_t)(idx >> 24);
	ip[13] = (uint8_t)(idx >> 16);
	ip[14] = (uint8_t)(idx >> 8);
	ip[15] = (uint8_t)idx;
}

/* The slot an address stands for, or 0 when it is no placeholder. */
static uint32_t
fakedns_index_of(struct fakedns_table *t, const struct s5_addr *a)
{
	uint32_t v, base, off;
	static const uint8_t zero[4];

	if (a->atyp == S5_ATYP_IPV4) {
		v = (uint32_t)a->u.ip4[0] << 24 | (uint32_t)a->u.ip4[1] << 16 |
		    (uint32_t)a->u.ip4[2] << 8 | a->u.ip4[3];
		base = (uint32_t)fakedns_v4_base[0] << 24 |
		    (uint32_t)fakedns_v4_base[1] << 16 |
		    (uint32_t)fakedns_v4_base[2] << 8 | fakedns_v4_base[3];
		off = v - base;
	} else if (a->atyp == S5_ATYP_IPV6) {
		if (memcmp(a->u.ip6, fakedns_v6_base, 8) != 0 ||
		    memcmp(a->u.ip6 + 8, zero, 4) != 0)
			return 0;
		off = (uint32_t)a->u.ip6[12] << 24 | (uint32_t)a->u.ip6[13] << 16 |
		    (uint32_t)a->u.ip6[14] << 8 | a->u.ip6[15];
	} else {
		return 0;
	}
	if (off == 0 || off > atomic_load_explicit(&t->count, memory_order_acquire))
		return 0;
	return off;
}

/* True when a is a placeholder handed out in this process tree; its name is
 * then copied to name. The caller checks cap >= S5_DOMAIN_MAX + 1 or lives
 * with a truncated copy. */
bool
fakedns_name_of(const struct s5_addr *a, char *name, size_t cap)
{
	struct fakedns_table *t;
	uint32_t i;

	/* No table yet means nothing was handed out: no mapping needed. */
	t = atomic_load_explicit(&fakedns, memory_order_acquire);
	if (t == NULL || cap == 0)
		return false;
	i = fakedns_index_of(t, a);
	if (i == 0)
		return false;
	if (t->e[i].len >= cap) {
		memcpy(name, t->e[i].name, cap - 1);
		name[cap - 1] = '\0';
	} else {
		memcpy(name, t->e[i].name, (size_t)t->e[i].len + 1);
	}
	return true;
}
