/*
 * fakedns.c: placeholder addresses for remote name resolution, one table for
 * the whole process tree.
 *
 * With socks5h the program's lookups are answered with addresses from ranges
 * no resolver returns: 198.18.0.0/15 (RFC 2544) and 100::/64 (RFC 6666), not
 * multicast, which dig, ssh and nmap reject (preload-anchors.md P8). connect()
 * maps a placeholder back to its name, and the name goes to the proxy.
 *
 * Who shares the table: every process of the tree, across fork() and exec(),
 * whoever looks a name up first. lynx and lftp resolve in a forked child and
 * connect in the parent; a browser resolves in one process and connects in
 * another it started through exec() and a zygote's fork(). So the table
 * cannot be made on first use (a child forked before that would make its
 * own), nor live in anonymous memory (exec() drops it):
 *
 *   - It is a memfd, mapped MAP_SHARED. Its holder keeps the descriptor,
 *     close-on-exec, and SOCKSIFY_NAMES="PID:FD:DEV:INO" in the environment
 *     says where it is. The holder is the socksify launcher when it waits
 *     for COMMAND (the embedded server), so the table outlives any process
 *     of the tree; else the first process with the library (the root),
 *     which makes it in a constructor at load, before main() and any
 *     fork(). A new table is all zeroes: the first process to map it claims
 *     the header with a compare-and-swap and writes it.
 *   - Everyone maps it on first use (a lookup, a connect() to a
 *     placeholder): a program that never resolves a name maps nothing. A
 *     process with a copy of the descriptor (the holder, a child it forked)
 *     maps that; any other opens /proc/PID/fd/FD with O_PATH, checks that it
 *     is still the same file (DEV, INO), owned by us and sealed against
 *     shrinking, and only then reopens it for writing; the header must say
 *     it is a table of this layout. /proc rather than an inherited
 *     descriptor: opening another process's descriptor needs the same user
 *     (ptrace read access), so a descendant that changed user (su, setpriv)
 *     never shares the table, and no descriptor of ours is left in the
 *     programs a tree exec()s.
 *   - At load, an exec()ed image checks with one stat() that its table is
 *     still there: if not, it is a root itself, since the children it starts
 *     before its first lookup must find the table it will use. Every
 *     holder's descriptor is close-on-exec, so no exec()ed program, with
 *     the library or without, ever has a copy.
 *   - When none of this works (the holder exited, another user's table, a
 *     stale or foreign value), the process becomes the root of a table of
 *     its own. Names its ancestors handed out are unknown there, and a
 *     connect() to one fails with EHOSTUNREACH and a log line (connect.c):
 *     a placeholder never reaches the proxy as an address. When
 *     memfd_create() is refused, anonymous shared memory, made at load,
 *     keeps fork() working.
 *
 * Placeholders start at a random offset of each table (the header's
 * origin), so one that a program kept from another tree is most likely
 * unknown here rather than another name.
 *
 * The constructor (load.c calls fakedns_at_load()) starts no thread, takes
 * no lock of ours, maps no table and allocates nothing from the program's
 * allocator (P9): a longer environ comes from mmap(). The supervisor
 * (supervisor.c) links this file too: it holds the table as the launcher
 * and maps it like any process of the tree.
 *
 * The same memory holds the proxies' health (failover.c), shared the same
 * way by the same processes.
 *
 * The table holds no lock and no pointer, so a process that can write it
 * can change names but never another process's memory. Entries are
 * append-only: a writer reserves a slot with an atomic add, fills it, marks
 * it ready (release), then links it at the head of its hash chain with a
 * compare-and-swap. Two processes adding the same name at once may each
 * get a slot; both map back to the name. Readers take a slot only when it
 * is ready, and every index read from the table is bounds-checked and every
 * walk bounded: it is memory other processes write.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include "preload.h"

#define FAKEDNS_BUCKETS		PRELOAD_FAKE_ENTRIES	/* load factor <= 1 */
#define FAKEDNS_ENV		"SOCKSIFY_NAMES"
#define FAKEDNS_MAGIC		UINT64_C(0x534f434b534e4d32)	/* "SOCKSNM2" */
#define FAKEDNS_BUSY		UINT64_C(1)	/* a process is writing the header */
#define FAKEDNS_CLAIM_WAIT_MS	1000	/* waiting for that, at most */
#define FAKEDNS_ENV_MAX		(sizeof("PID:FD:DEV:INO") + 4 * 20)
/* Offsets in the IPv4 range; an origin leaves room for every slot. */
#define FAKEDNS_SPAN		(1u << (32 - PRELOAD_FAKE_V4_BITS))
#define FAKEDNS_ORIGINS		(FAKEDNS_SPAN - PRELOAD_FAKE_ENTRIES - 1)

_Static_assert(PRELOAD_FAKE_ENTRIES < FAKEDNS_SPAN / 2,
    "PRELOAD_FAKE_ENTRIES must leave room for random origins");

struct fakedns_entry {
	_Atomic uint32_t next;		/* next slot in the bucket chain, 0 ends */
	_Atomic uint8_t ready;		/* name and len are written */
	uint8_t len;
	char name[S5_DOMAIN_MAX + 1];
};

struct fakedns_table {
	/* 0 in a fresh memfd, FAKEDNS_BUSY while claimed, then
	 * FAKEDNS_MAGIC once layout and origin are written. */
	_Atomic uint64_t magic;
	uint64_t layout;		/* sizeof(struct fakedns_table) */
	uint32_t origin;		/* slot 1 is placeholder origin + 1 */
	_Atomic uint32_t reserved;	/* slots 1..reserved are taken */
	struct failover_health health;	/* failover.c's, lock-free too */
	_Atomic uint32_t buckets[FAKEDNS_BUCKETS];
	struct fakedns_entry e[PRELOAD_FAKE_ENTRIES + 1];
};

_Static_assert(sizeof(struct fakedns_table) <= PRELOAD_FAKE_TABLE_BYTES,
    "PRELOAD_FAKE_TABLE_BYTES is the launcher's size of the table");

static struct fakedns_table *_Atomic fakedns;
static uint32_t fakedns_origin;		/* this process's copy, checked */
static uint8_t fakedns_v4_base[4];
static uint8_t fakedns_v6_base[16];
static pthread_once_t fakedns_once = PTHREAD_ONCE_INIT;

static struct fakedns_table *
fakedns_map(int fd)
{
	void *p;

	p = mmap(NULL, sizeof(struct fakedns_table), PROT_READ | PROT_WRITE,
	    MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A random origin: placeholders of other tables are unknown here. */
static uint32_t
fakedns_random_origin(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	return r % FAKEDNS_ORIGINS;
}

/*
 * The mapped table t, once its header says it is ours: claims and writes
 * the header of a fresh (zeroed) one, waits a little for another process
 * doing that. False for anything else.
 */
static bool
fakedns_adopt(struct fakedns_table *t)
{
	struct timespec t0, now;
	uint64_t m = 0;

	if (atomic_compare_exchange_strong(&t->magic, &m, FAKEDNS_BUSY)) {
		t->layout = sizeof(struct fakedns_table);
		t->origin = fakedns_random_origin();
		atomic_store_explicit(&t->magic, FAKEDNS_MAGIC, memory_order_release);
	}
	/* Bounded in time, not in turns: a claimer preempted under load
	 * still finishes; one killed halfway leaves a table nobody adopts. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load_explicit(&t->magic, memory_order_acquire) == FAKEDNS_BUSY) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 +
		    (now.tv_nsec - t0.tv_nsec) / 1000000 >= FAKEDNS_CLAIM_WAIT_MS)
			break;
		sched_yield();
	}
	if (atomic_load_explicit(&t->magic, memory_order_acquire) != FAKEDNS_MAGIC ||
	    t->layout != sizeof(struct fakedns_table))
		return false;
	fakedns_origin = t->origin;
	return fakedns_origin < FAKEDNS_ORIGINS;
}

/* st is the memfd SOCKSIFY_NAMES names, ours, with room for the table. */
static bool
fakedns_same_file(const struct stat *st, uintmax_t dev, uintmax_t ino)
{
	return S_ISREG(st->st_mode) && (uintmax_t)st->st_dev == dev &&
	    (uintmax_t)st->st_ino == ino && st->st_uid == geteuid() &&
	    st->st_size >= (off_t)sizeof(struct fakedns_table);
}

/* fd is that file, and no process can shrink it under our mapping. */
static bool
fakedns_fd_ok(int fd, uintmax_t dev, uintmax_t ino)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) != 0 || !fakedns_same_file(&st, dev, ino))
		return false;
	seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
}

#define FAKEDNS_PATH_MAX	(sizeof("/proc//fd/") + 2 * 20)

/* The decimal digits of v at p, without stdio; returns the end. */
static char *
fakedns_put_num(char *p, uintmax_t v)
{
	char digits[20];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/* "/proc/PID/fd/FD" into path (FAKEDNS_PATH_MAX bytes). */
static void
fakedns_proc_path(char *path, uintmax_t pid, uintmax_t fd)
{
	char *p = path;

	memcpy(p, "/proc/", 6);
	p = fakedns_put_num(p + 6, pid);
	memcpy(p, "/fd/", 4);
	p = fakedns_put_num(p + 4, fd);
	*p = '\0';
}

/*
 * A descriptor for writing of the file /proc/PID/fd/FD, when it is the one
 * SOCKSIFY_NAMES describes; else -1. Opened with O_PATH first and checked,
 * so that a number since reused for a device or a FIFO is never opened.
 */
static int
fakedns_open(uintmax_t pid, uintmax_t fd, uintmax_t dev, uintmax_t ino)
{
	char path[FAKEDNS_PATH_MAX];
	struct stat st;
	int p, rw = -1;

	fakedns_proc_path(path, pid, fd);
	p = open(path, O_PATH | O_CLOEXEC);
	if (p < 0)
		return -1;
	if (fstat(p, &st) == 0 && fakedns_same_file(&st, dev, ino)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", p);
		rw = open(path, O_RDWR | O_CLOEXEC);
	}
	close(p);
	if (rw >= 0 && !fakedns_fd_ok(rw, dev, ino)) {
		close(rw);
		rw = -1;
	}
	return rw;
}

/* Where SOCKSIFY_NAMES ("PID:FD:DEV:INO") says the table is. */
struct fakedns_ref {
	uintmax_t pid, fd, dev, ino;
};

/* Four decimal numbers and three colons, nothing else; no libc, as the
 * constructor runs this in every exec()ed image. */
static bool
fakedns_parse(const char *s, struct fakedns_ref *r)
{
	uintmax_t *v[] = { &r->pid, &r->fd, &r->dev, &r->ino };
	size_t i, digits;

	for (i = 0; i < 4; i++) {
		*v[i] = 0;
		for (digits = 0; *s >= '0' && *s <= '9'; s++, digits++) {
			if (digits == 19)	/* fits in 64 bits, unchecked */
				return false;
			*v[i] = *v[i] * 10 + (uintmax_t)(*s - '0');
		}
		if (digits == 0 || *s != (i < 3 ? ':' : '\0'))
			return false;
		s++;
	}
	return r->pid != 0 && r->pid <= INT_MAX && r->fd <= INT_MAX;
}

/* The table of an ancestor, named by SOCKSIFY_NAMES, or NULL: through our
 * own copy of the descriptor when we have one (a holder, a child it
 * forked), else through /proc. Only a holder keeps its descriptor. */
static struct fakedns_table *
fakedns_attach(const char *env)
{
	struct fakedns_ref r;
	struct fakedns_table *t;
	bool copy;
	int rw;

	if (!fakedns_parse(env, &r))
		return NULL;
	copy = fakedns_fd_ok((int)r.fd, r.dev, r.ino);
	rw = copy ? (int)r.fd : fakedns_open(r.pid, r.fd, r.dev, r.ino);
	if (rw < 0)
		return NULL;
	t = fakedns_map(rw);
	if (!copy || r.pid != (uintmax_t)getpid())
		close(rw);
	if (t != NULL && !fakedns_adopt(t)) {
		munmap(t, sizeof(struct fakedns_table));
		t = NULL;
	}
	return t;
}

/*
 * Puts kv ("SOCKSIFY_NAMES=...", static storage) in environ in place of
 * every copy of the variable, or takes them all out when kv is NULL. No
 * setenv(): at load a program's allocator may not be ready for us (P9), so
 * a longer array comes from mmap(), and the strings are never freed.
 */
static void
fakedns_export(char *kv)
{
	static const char prefix[] = FAKEDNS_ENV "=";
	char **e = environ, **grown;
	size_t i, n = 0;

	for (i = 0; e != NULL && e[i] != NULL; i++) {
		if (strncmp(e[i], prefix, sizeof(prefix) - 1) != 0)
			e[n++] = e[i];
		else if (kv != NULL)
			e[n++] = kv, kv = NULL;
	}
	if (e != NULL)
		e[n] = NULL;
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
 * A new, empty table that this process holds, and SOCKSIFY_NAMES naming it
 * for the descendants: this process is a root. Mapped, like anyone's, on
 * first use. False when the kernel gives no memfd.
 */
static bool
fakedns_hold_new(void)
{
	static char kv[sizeof(FAKEDNS_ENV "=") + FAKEDNS_ENV_MAX];
	struct stat st;
	char *p;
	int fd, hi;
	size_t i;

	fd = memfd_create("socksify-names", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return false;
	/* Out of the way of programs that expect low numbers. */
	if ((hi = fcntl(fd, F_DUPFD_CLOEXEC, PRELOAD_FAKE_FD_MIN)) >= 0) {
		close(fd);
		fd = hi;
	}
	if (ftruncate(fd, PRELOAD_FAKE_TABLE_BYTES) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0 ||
	    fstat(fd, &st) != 0) {
		close(fd);
		return false;
	}
	/* FAKEDNS_ENV "=PID:FD:DEV:INO", what fakedns_parse() reads. */
	const uintmax_t v[4] = { (uintmax_t)getpid(), (uintmax_t)fd,
	    (uintmax_t)st.st_dev, (uintmax_t)st.st_ino };
	memcpy(kv, FAKEDNS_ENV "=", sizeof(FAKEDNS_ENV));
	p = kv + sizeof(FAKEDNS_ENV);
	for (i = 0; i < 4; i++) {
		p = fakedns_put_num(p, v[i]);
		*p++ = i < 3 ? ':' : '\0';
	}
	fakedns_export(kv);
	return true;
}

/* Anonymous shared memory: a table for this process and the children it
 * forks from now on, and none for exec()ed ones. */
static struct fakedns_table *
fakedns_anonymous(void)
{
	struct fakedns_table *t = fakedns_map(-1);

	fakedns_export(NULL);	/* no stale name of an ancestor's table */
	if (t != NULL && !fakedns_adopt(t)) {
		munmap(t, sizeof(struct fakedns_table));
		t = NULL;
	}
	if (t == NULL)
		preload_log(LOG_LVL_ERROR, "cannot map the name table: %s",
		    strerror(errno));
	return t;
}

/* The ranges' first addresses, apart from the table: asking whether an
 * address is a placeholder (every excluded connect() under socks5h) must
 * not map the table. */
static void
fakedns_parse_bases(void)
{
	if (inet_pton(AF_INET, PRELOAD_FAKE_V4_NET, fakedns_v4_base) != 1 ||
	    inet_pton(AF_INET6, PRELOAD_FAKE_V6_NET, fakedns_v6_base) != 1)
		preload_log(LOG_LVL_ERROR, "bad placeholder ranges in defaults.h");
}

static void
fakedns_bases(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fakedns_parse_bases);
}

static void
fakedns_setup(void)
{
	struct fakedns_table *t = NULL;
	const char *env;

	/* A stale or foreign value is no error: we start a table. Nothing is
	 * logged here, before the configuration (and its log file) is read. */
	env = getenv(FAKEDNS_ENV);
	if (env != NULL && getauxval(AT_SECURE) == 0)
		t = fakedns_attach(env);
	if (t == NULL && fakedns_hold_new())
		t = fakedns_attach(getenv(FAKEDNS_ENV));
	if (t == NULL)
		t = fakedns_anonymous();
	atomic_store_explicit(&fakedns, t, memory_order_release);
}

static struct fakedns_table *
fakedns_table(void)
{
	pthread_once(&fakedns_once, fakedns_setup);
	return atomic_load_explicit(&fakedns, memory_order_acquire);
}

struct failover_health *
fakedns_health(void)
{
	struct fakedns_table *t = fakedns_table();

	return t != NULL ? &t->health : NULL;
}

/*
 * At load, before main() and before any fork() of the program's, so that
 * every child finds the table this process will use: a root makes an empty
 * one (no mapping yet: a program that never looks a name up pays a few
 * calls and no page); anyone else checks with one stat() that theirs is
 * still there, or else becomes a root. Everything is mapped on first use.
 */
void
fakedns_at_load(void)
{
	const char *env = getenv(FAKEDNS_ENV);
	char path[FAKEDNS_PATH_MAX];
	struct fakedns_ref r;
	struct stat st;

	if (env != NULL && fakedns_parse(env, &r)) {
		fakedns_proc_path(path, r.pid, r.fd);
		if (stat(path, &st) == 0 && fakedns_same_file(&st, r.dev, r.ino))
			return;
	}
	if (!fakedns_hold_new())
		(void)fakedns_table();	/* anonymous, before any fork() */
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

/* Slot i holds a name, ready to read. */
static bool
fakedns_ready(struct fakedns_table *t, uint32_t i)
{
	return i != 0 && atomic_load_explicit(&t->e[i].ready, memory_order_acquire) &&
	    t->e[i].len != 0;
}

/* The first ready slot for name in the chain that starts at i, or 0. */
static uint32_t
fakedns_find(struct fakedns_table *t, uint32_t i, const char *name, size_t len)
{
	uint32_t hops;

	/* Bounded: a chain is at most every slot long. */
	for (hops = 0, i = fakedns_slot(i); i != 0 && hops < PRELOAD_FAKE_ENTRIES;
	    hops++) {
		if (fakedns_ready(t, i) && t->e[i].len == len &&
		    strncasecmp(t->e[i].name, name, len) == 0)
			return i;
		i = fakedns_slot(atomic_load_explicit(&t->e[i].next,
		    memory_order_acquire));
	}
	return 0;
}

/* The slot of name, added when new. 0, or -ENOMEM / -ENOSPC / -EINVAL. */
int
fakedns_lookup_name(const char *name, size_t len, unsigned *idx)
{
	struct fakedns_table *t = fakedns_table();
	_Atomic uint32_t *bucket;
	uint32_t head, i, n;

	if (t == NULL)
		return -ENOMEM;
	if (len == 0 || len > S5_DOMAIN_MAX || memchr(name, '\0', len) != NULL)
		return -EINVAL;
	bucket = &t->buckets[fakedns_hash(name, len)];
	head = atomic_load_explicit(bucket, memory_order_acquire);
	if ((i = fakedns_find(t, head, name, len)) != 0) {
		*idx = i;
		return 0;
	}
	/* Checked first, so that a full table never moves the counter. */
	if (atomic_load_explicit(&t->reserved, memory_order_relaxed) >= PRELOAD_FAKE_ENTRIES)
		return -ENOSPC;
	n = atomic_fetch_add(&t->reserved, 1) + 1;
	if (n > PRELOAD_FAKE_ENTRIES)
		return -ENOSPC;
	memcpy(t->e[n].name, name, len);
	t->e[n].name[len] = '\0';
	t->e[n].len = (uint8_t)len;
	atomic_store_explicit(&t->e[n].ready, 1, memory_order_release);
	do {
		/* Someone linked the same name meanwhile: theirs, ours
		 * stays unlinked (still a valid placeholder, never handed
		 * out). */
		if ((i = fakedns_find(t, head, name, len)) != 0) {
			*idx = i;
			return 0;
		}
		atomic_store_explicit(&t->e[n].next, fakedns_slot(head),
		    memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(bucket, &head, n,
	    memory_order_release, memory_order_acquire));
	*idx = n;
	return 0;
}

/* The offset of slot idx in both ranges. */
static uint32_t
fakedns_offset_of(unsigned idx)
{
	(void)fakedns_table();		/* the origin */
	fakedns_bases();
	return fakedns_origin + idx;
}

void
fakedns_addr_v4(unsigned idx, uint8_t ip[4])
{
	uint32_t v, off = fakedns_offset_of(idx);

	v = ((uint32_t)fakedns_v4_base[0] << 24 | (uint32_t)fakedns_v4_base[1] << 16 |
	    (uint32_t)fakedns_v4_base[2] << 8 | fakedns_v4_base[3]) + off;
	ip[0] = (uint8_t)(v >> 24);
	ip[1] = (uint8_t)(v >> 16);
	ip[2] = (uint8_t)(v >> 8);
	ip[3] = (uint8_t)v;
}

void
fakedns_addr_v6(unsigned idx, uint8_t ip[16])
{
	uint32_t off = fakedns_offset_of(idx);

	memcpy(ip, fakedns_v6_base, 16);
	/* The interface identifier half of the /64 carries the offset. */
	ip[12] = (uint8_t)(off >> 24);
	ip[13] = (uint8_t)(off >> 16);
	ip[14] = (uint8_t)(off >> 8);
	ip[15] = (uint8_t)off;
}

/*
 * The offset of a in the placeholder ranges: true when a lies in them,
 * whether or not it was ever handed out.
 */
static bool
fakedns_offset(const struct s5_addr *a, uint32_t *off)
{
	uint32_t v, base;
	static const uint8_t zero[4];

	fakedns_bases();
	if (a->atyp == S5_ATYP_IPV4) {
		v = (uint32_t)a->u.ip4[0] << 24 | (uint32_t)a->u.ip4[1] << 16 |
		    (uint32_t)a->u.ip4[2] << 8 | a->u.ip4[3];
		base = (uint32_t)fakedns_v4_base[0] << 24 |
		    (uint32_t)fakedns_v4_base[1] << 16 |
		    (uint32_t)fakedns_v4_base[2] << 8 | fakedns_v4_base[3];
		*off = v - base;
		return *off < FAKEDNS_SPAN;
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
	uint32_t off, i;
	size_t len;

	if (t == NULL || cap == 0 || !fakedns_offset(a, &off) ||
	    off <= fakedns_origin)
		return false;
	i = fakedns_slot(off - fakedns_origin);
	if (!fakedns_ready(t, i))
		return false;
	len = t->e[i].len;
	/* Written by another process: a name with a NUL inside is none. */
	if (memchr(t->e[i].name, '\0', len) != NULL)
		return false;
	if (len >= cap)
		len = cap - 1;
	memcpy(name, t->e[i].name, len);
	name[len] = '\0';
	return true;
}
