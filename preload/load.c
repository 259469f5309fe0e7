/*
 * load.c: the library's one constructor. It runs at load in every image,
 * before main() and any fork() of the program's, and does only what cannot
 * wait for the first hook: async.c's start (the process id and the fork
 * handlers, registered before the program's), the name table's (fakedns.c),
 * and, under the supervisor, the hello below. Everything else is set up
 * lazily (config.c). It lives apart so that the supervisor, which links the
 * engine's modules, runs no constructor of the library's.
 *
 * The hello. glibc makes socket calls of its own that no hook of ours sees:
 * getaddrinfo() connect()s a UDP socket to each answer to sort them (RFC
 * 6724), its resolver connect()s to the nameserver, also for a program that
 * calls libc through a handle of its own. Before the supervisor they went to
 * the kernel untouched, and must still: refused, the sort order would change
 * and every lookup log a line. So each image with the library shows the
 * supervisor a random token; the supervisor finds it in the process's memory
 * (or a fork()ed child's, at the same place) when a datagram connect() comes
 * from libc's own code there, and lets that one through. An exec()ed image
 * without the library, or another process that reuses the id, cannot show
 * the token. The message is a getpeername() of descriptor -1 with
 * PRELOAD_HELLO_MARK, made with the system call instruction itself (no
 * libc function, no lookup: a constructor must not allocate, P9); without
 * a supervisor the kernel answers EBADF and nothing else happens.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include "preload.h"

static struct preload_hello load_hello;

/* What tells this file from any other library (socksify.c). The
 * constructor names it, so that a link with --gc-sections keeps it too. */
__attribute__((used)) static const char load_mark[] = PRELOAD_LIBRARY_MARK;

static long
load_syscall3(long nr, long a, long b, long c)
{
	long r;

#if defined(__x86_64__)
	__asm__ volatile ("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c)
	    : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;

	__asm__ volatile ("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	r = x0;
#else
	(void)nr, (void)a, (void)b, (void)c;
	r = -ENOSYS;
#endif
	return r;
}

static void
load_say_hello(void)
{
	if (!preload_supervised() ||
	    getrandom(load_hello.token, sizeof(load_hello.token), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(load_hello.token))
		return;		/* no token: the supervisor's strict policy */
	load_hello.magic = PRELOAD_HELLO_MAGIC;
	(void)load_syscall3(SYS_getpeername,
	    (long)((uint64_t)PRELOAD_HELLO_MARK << 32 | UINT32_MAX),
	    (long)&load_hello, (long)sizeof(load_hello));
}

/* Our constructor ran: before it, syscall() is the real one (syscall.c). */
int preload_loaded;

__attribute__((constructor)) static void
load_library(void)
{
	int saved = errno;

	__asm__ volatile ("" : : "r"(load_mark));
	__atomic_store_n(&preload_loaded, 1, __ATOMIC_RELEASE);
	async_at_load();
	udp_at_load();
	dnsconn_at_load();
	fakedns_at_load();
	load_say_hello();
	errno = saved;
}
