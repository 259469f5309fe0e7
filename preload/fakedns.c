/*
 * fakedns.c: placeholder addresses for remote name resolution, one table for
 * the whole process tree.
 *
 * With socks5h the program's lookups are answered with addresses from ranges
 * no resolver returns: 198.18.0.0/15 (RFC 2544) and 100::/64 (RFC 6666), not
 * multicast, which dig, ssh and nmap reject (preload-anchors.md P8). connect()
 * maps a placeholder back to its name, and the name goes to the proxy.
 *
 * Who shares the table. Every process of the tree, across fork() and exec(),
 * whoever looks a name up first: lynx and lftp resolve in a forked child and
 * connect in the parent; a browser resolves in one process and connects in
 * another it started through exec() and a zygote's fork(). So the table
 * cannot be made on first use (a child forked before that would make its
 * own), nor live in anonymous memory (exec() drops it):
 *
 *   - It is a memfd, mapped MAP_SHARED, made by a constructor at load in the
 *     first process of the tree that has the library: the root. A fork()ed
 *     child has the mapping already.
 *   - The root keeps the memfd open without close-on-exec, moved up to
 *     FAKEDNS_FD_MIN or above, out of the way of programs that expect low
 *     numbers, and puts "PID:FD:DEV:INO" in SOCKSIFY_NAMES in its own
 *     environment before main() runs, so every exec()ed descendant inherits
 *     both the number and the way to find it again.
 *   - The constructor of an exec()ed image maps, in this order: its own FD
 *     when that is still the same file (DEV and INO; inherited, so it works
 *     with no /proc and after the root is gone), else /proc/PID/fd/FD, the
 *     root's copy (for programs that close descriptors before exec(), as
 *     Python's subprocess and Chromium do). A file is mapped only after
 *     stat() names the same DEV and INO, and used only when its header says
 *     it is a table of this layout.
 *   - When neither works (the root exited and the descriptor was closed, or
 *     another user's process), the image becomes the root of a table of its
 *     own. Names its ancestors handed out are then unknown here, and a
 *     connect() to one fails with EHOSTUNREACH and a log line (connect.c):
 *     a placeholder never reaches the proxy as an address.
 *   - When memfd_create() is refused (old kernel, a sandbox), an anonymous
 *     shared mapping keeps fork() working, and nothing is exported.
 *
 * The constructor starts no thread and allocates nothing from the program's
 * allocator (P9): the root's environ grows by an mmap()ed copy. Hooks that run before it (other libraries' constructors) reach
 * the same pthread_once.
 *
 * The memfd is sealed against shrinking: no process of the tree can truncate
 * it under the others' mappings. Entries are append-only: readers walk hash
 * chains and read names without a lock (an entry is complete before the
 * release store that publishes it); writers take a process-shared, robust
 * mutex that also lives in the mapping. Process-shared, so it excludes
 * writers in every process of the tree; robust, so a writer killed while
 * holding it does not wedge the tree. Every index read from the table is
 * bounds-checked and every walk is bounded: the table is memory other
 * processes write.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include "preload.h"

#define FAKEDNS_BUCKETS		PRELOAD_FAKE_ENTRIES	/* load factor <= 1 */
#define FAKEDNS_ENV		"SOCKSIFY_NAMES"
#define FAKEDNS_MAGIC		UINT64_C(0x534f434b534e4d31)	/* "SOCKSNM1" */
#define FAKEDNS_FD_MIN		512	/* where the root keeps the memfd */
#define FAKEDNS_ENV_MAX		(sizeof("PID:FD:DEV:INO") + 4 * 20)

/* Slot 0 is never used: 0 ends a chain, and base + 0 is the network address. */
_Static_assert(PRELOAD_FAKE_ENTRIES < (1u << (32 - PRELOAD_FAKE_V4_BITS)) - 1,
    "PRELOAD_FAKE_ENTRIES must fit in the IPv4 placeholder range");

struct fakedns_entry {
	_Atomic uint32_t next;		/* next slot in the bucket chain, 0 ends */
	uint8_t len;
	char name[S5_DOMAIN_MAX + 1];
};

struct fakedns_table {
	/* Written last by the root: a process that maps the table checks
	 * both before it trusts anything else in it. */
	_Atomic uint64_t magic;		/* FAKEDNS_MAGIC */
	uint64_t layout;		/* sizeof(struct fakedns_table) */
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

static struct fakedns_table *
fakedns_map(int fd)
{
	void *p;

	p = mmap(NULL, sizeof(struct fakedns_table), PROT_READ | PROT_WRITE,
	    MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* True when st is the table SOCKSIFY_NAMES names, with room for its size. */
static bool
fakedns_same_file(const struct stat *st, uintmax_t dev, uintmax_t ino)
{
	return S_ISREG(st->st_mode) && (uintmax_t)st->st_dev == dev &&
	    (uintmax_t)st->st_ino == ino &&
	    st->st_size >= (off_t)sizeof(struct fakedns_table);
}

/* A mapping of fd when its header is a table of ours, else NULL. */
static struct fakedns_table *
fakedns_map_checked(int fd)
{
	struct fakedns_table *t;

	t = fakedns_map(fd);
	if (t == NULL)
		return NULL;
	if (atomic_load_explicit(&t->magic, memory_order_acquire) != FAKEDNS_MAGIC ||
	    t->layout != sizeof(struct fakedns_table)) {
		munmap(t, sizeof(struct fakedns_table));
		return NULL;
	}
	return t;
}

/*
 * The table of an ancestor, named by SOCKSIFY_NAMES ("PID:FD:DEV:INO"):
 * our inherited FD first, else the root's through /proc. NULL when neither
 * is the same file any more.
 */
static struct fakedns_table *
fakedns_attach(const char *env)
{
	uintmax_t pid, fd, dev, ino;
	struct fakedns_table *t = NULL;
	struct stat st;
	char path[sizeof("/proc//fd/") + 2 * 20];
	int n = -1, own;

	if (sscanf(env, "%ju:%ju:%ju:%ju%n", &pid, &fd, &dev, &ino, &n) != 4 ||
	    env[n] != '\0' || fd > INT_MAX || pid > INT_MAX || pid == 0) {
		preload_log(LOG_LVL_ERROR, FAKEDNS_ENV "=\"%s\" is not ours; "
		    "starting a name table of this process", env);
		return NULL;
	}
	if (fstat((int)fd, &st) == 0 && fakedns_same_file(&st, dev, ino) &&
	    (t = fakedns_map_checked((int)fd)) != NULL)
		return t;
	snprintf(path, sizeof(path), "/proc/%ju/fd/%ju", pid, fd);
	/* stat() before open(): the number may now be some other file of
	 * the root's, a device or a FIFO that an open() would disturb. */
	if (stat(path, &st) != 0 || !fakedns_same_file(&st, dev, ino))
		return NULL;
	own = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (own < 0)
		return NULL;
	if (fstat(own, &st) == 0 && fakedns_same_file(&st, dev, ino))
		t = fakedns_map_checked(own);
	close(own);
	return t;
}

/*
 * Puts kv ("SOCKSIFY_NAMES=...", static storage) in environ, replacing the
 * variable when present, or takes the variable out when kv is NULL. No
 * setenv(): at load a program's allocator may not be ready for us (P9), so
 * a longer array comes from mmap(), and the strings are never freed.
 */
static void
fakedns_export(char *kv)
{
	static const char prefix[] = FAKEDNS_ENV "=";
	char **e, **grown;
	size_t n;

	for (e = environ, n = 0; e != NULL && e[n] != NULL; n++) {
		if (strncmp(e[n], prefix, sizeof(prefix) - 1) != 0)
			continue;
		if (kv != NULL) {
			e[n] = kv;
			return;
		}
		do		/* in place, as unsetenv() does */
			e[n] = e[n + 1];
		while (e[n++] != NULL);
		return;
	}
	if (kv == NULL)
		return;
	grown = mmap(NULL, (n + 2) * sizeof(char *), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (grown == MAP_FAILED)
		return;
	if (n > 0)
		memcpy(grown, e, n * sizeof(char *));
	grown[n] = kv;
	grown[n + 1] = NULL;
	environ = grown;
}

/*
 * A new table, and SOCKSIFY_NAMES for the descendants: this process is the
 * root. A memfd when the kernel gives one, else anonymous shared memory
 * (fork() only).
 */
static struct fakedns_table *
fakedns_create(void)
{
	static char kv[sizeof(FAKEDNS_ENV "=") + FAKEDNS_ENV_MAX];
	struct fakedns_table *t;
	struct stat st;
	int fd, hi, r;

	fd = memfd_create("socksify-names", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0 && (ftruncate(fd, sizeof(struct fakedns_table)) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0)) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0) {
		/* Inherited across exec() on purpose: see the top. */
		hi = fcntl(fd, F_DUPFD, FAKEDNS_FD_MIN);
		if (hi < 0)
			hi = fcntl(fd, F_DUPFD, 3);	/* a low RLIMIT_NOFILE */
		close(fd);
		fd = hi;
	}
	t = fakedns_map(fd);	/* zero-filled: every chain empty, count 0 */
	if (t == NULL) {
		preload_log(LOG_LVL_ERROR, "cannot map the name table: %s",
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	r = fakedns_init_lock(&t->lock);
	if (r != 0) {
		preload_log(LOG_LVL_ERROR, "cannot set up the name table lock: %s",
		    strerror(r));
		munmap(t, sizeof(struct fakedns_table));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	t->layout = sizeof(struct fakedns_table);
	atomic_store_explicit(&t->magic, FAKEDNS_MAGIC, memory_order_release);
	if (fd < 0) {
		preload_log(LOG_LVL_DEBUG, "no memfd (%s): names are shared "
		    "with forked children only", strerror(errno));
		fakedns_export(NULL);
	} else if (fstat(fd, &st) == 0) {
		snprintf(kv, sizeof(kv), FAKEDNS_ENV "=%ld:%d:%ju:%ju",
		    (long)getpid(), fd, (uintmax_t)st.st_dev,
		    (uintmax_t)st.st_ino);
		fakedns_export(kv);
	}
	return t;
}

static void
fakedns_setup(void)
{
	struct fakedns_table *t = NULL;
	const char *env;

	if (inet_pton(AF_INET, PRELOAD_FAKE_V4_NET, fakedns_v4_base) != 1 ||
	    inet_pton(AF_INET6, PRELOAD_FAKE_V6_NET, fakedns_v6_base) != 1) {
		preload_log(LOG_LVL_ERROR, "bad placeholder ranges in defaults.h");
		return;
	}
	env = getenv(FAKEDNS_ENV);
	if (env != NULL && env[0] != '\0')
		t = fakedns_attach(env);
	if (t == NULL)
		t = fakedns_create();
	atomic_store_explicit(&fakedns, t, memory_order_release);
}

static struct fakedns_table *
fakedns_table(void)
{
	pthread_once(&fakedns_once, fakedns_setup);
	return atomic_load_explicit(&fakedns, memory_order_acquire);
}

/* At load, before main() and before any fork() of the program's. */
__attribute__((constructor)) static void
fakedns_load(void)
{
	(void)fakedns_table();
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

/* A slot index read from the table: in bounds, or 0 (ends a chain). */
static uint32_t
fakedns_slot(uint32_t i)
{
	return i <= PRELOAD_FAKE_ENTRIES ? i : 0;
}

static uint32_t
fakedns_find(struct fakedns_table *t, uint32_t bucket, const char *name, size_t len)
{
	uint32_t i, hops;

	i = fakedns_slot(atomic_load_explicit(&t->buckets[bucket],
	    memory_order_acquire));
	/* Bounded: a chain is at most every slot long. */
	for (hops = 0; i != 0 && hops < PRELOAD_FAKE_ENTRIES; hops++) {
		if (t->e[i].len == len && strncasecmp(t->e[i].name, name, len) == 0)
			return i;
		i = fakedns_slot(atomic_load_explicit(&t->e[i].next,
		    memory_order_acquire));
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
		n = atomic_load_explicit(&t->count, memory_order_relaxed);
		if (n >= PRELOAD_FAKE_ENTRIES) {
			r = -ENOSPC;
		} else {
			n++;
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

/*
 * The offset of a in the placeholder ranges: true when a lies in them,
 * whether or not the offset was ever handed out. IPv6 carries the slot in
 * the low 32 bits of the /64 (fakedns_addr_v6()).
 */
static bool
fakedns_offset(const struct s5_addr *a, uint32_t *off)
{
	uint32_t v, base;
	static const uint8_t zero[4];

	(void)fakedns_table();		/* the bases */
	if (a->atyp == S5_ATYP_IPV4) {
		v = (uint32_t)a->u.ip4[0] << 24 | (uint32_t)a->u.ip4[1] << 16 |
		    (uint32_t)a->u.ip4[2] << 8 | a->u.ip4[3];
		base = (uint32_t)fakedns_v4_base[0] << 24 |
		    (uint32_t)fakedns_v4_base[1] << 16 |
		    (uint32_t)fakedns_v4_base[2] << 8 | fakedns_v4_base[3];
		*off = v - base;
		return *off < (1u << (32 - PRELOAD_FAKE_V4_BITS));
	}
	if (a->atyp == S5_ATYP_IPV6 && memcmp(a->u.ip6, fakedns_v6_base, 8) == 0) {
		*off = memcmp(a->u.ip6 + 8, zero, 4) != 0 ? UINT32_MAX :
		    (uint32_t)a->u.ip6[12] << 24 | (uint32_t)a->u.ip6[13] << 16 |
		    (uint32_t)a->u.ip6[14] << 8 | a->u.ip6[15];
		return true;
	}
	return false;
}

bool
fakedns_in_range(const struct s5_addr *a)
{
	uint32_t off;

	return fakedns_offset(a, &off);
}

/* True when a is a placeholder handed out in this process tree; its name is
 * then copied to name. The caller checks cap >= S5_DOMAIN_MAX + 1 or lives
 * with a truncated copy. */
bool
fakedns_name_of(const struct s5_addr *a, char *name, size_t cap)
{
	struct fakedns_table *t = fakedns_table();
	uint32_t i, count;
	size_t len;

	if (t == NULL || cap == 0 || !fakedns_offset(a, &i))
		return false;
	count = atomic_load_explicit(&t->count, memory_order_acquire);
	if (i == 0 || i > count || fakedns_slot(i) == 0)
		return false;
	len = t->e[i].len;
	if (len >= cap)
		len = cap - 1;
	memcpy(name, t->e[i].name, len);
	name[len] = '\0';
	return true;
}
