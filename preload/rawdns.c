/*
 * rawdns.c: the resolver's DNS message API, res_query() and friends.
 *
 * These build a DNS query and send it to the nameservers of resolv.conf
 * through glibc's internal socket calls, which no hook of ours sees; so do
 * res_search() and res_querydomain(), which call the query code inside libc,
 * not through these symbols. Under remote resolution each one would leak the
 * name (preload-anchors.md P7), and no placeholder can answer a caller that
 * parses DNS messages, so they are refused before anything is sent: -1 with
 * h_errno NO_RECOVERY, as glibc reports a query it cannot make. Under local
 * resolution they are libc's.
 *
 * Each is hooked under both names glibc exports: res_query@GLIBC_2.34, and
 * __res_query@GLIBC_2.2.5, which programs built against glibc < 2.34 call
 * (its resolv.h renamed the functions with macros).
 */
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "preload.h"

/* The process that logged a refusal: one line per process, forks included. */
static _Atomic long rawdns_logged_pid;

/*
 * True when the call is refused (h_errno, and statp's copy of it, are set
 * then). what names the function, name and domain what it was asked for.
 */
static bool
rawdns_refused(res_state statp, const char *what, const char *name,
    const char *domain)
{
	long me;

	if (!preload_init() || !preload_cfg.remote_dns)
		return false;
	me = (long)getpid();
	if (atomic_exchange(&rawdns_logged_pid, me) != me) {
		if (name == NULL)
			preload_log(LOG_LVL_ERROR, "refused %s (remote DNS)", what);
		else
			preload_log(LOG_LVL_ERROR, "refused %s for %s%s%s "
			    "(remote DNS)", what, name, domain != NULL ? "." : "",
			    domain != NULL ? domain : "");
	}
	/* glibc's res_n*() report through statp and h_errno both. */
	if (statp != NULL)
		statp->res_h_errno = NO_RECOVERY;
	h_errno = NO_RECOVERY;
	return true;
}

/* A libc without the function: fail as a resolver that cannot run. */
static int
rawdns_missing(res_state statp)
{
	if (statp != NULL)
		statp->res_h_errno = NETDB_INTERNAL;
	h_errno = NETDB_INTERNAL;
	errno = ENOSYS;
	return -1;
}

int
res_query(const char *name, int cls, int type, unsigned char *ans, int anslen)
{
	if (rawdns_refused(NULL, "res_query", name != NULL ? name : "", NULL))
		return -1;
	if (preload_real.res_query == NULL)
		return rawdns_missing(NULL);
	return preload_real.res_query(name, cls, type, ans, anslen);
}

int
res_search(const char *name, int cls, int type, unsigned char *ans, int anslen)
{
	if (rawdns_refused(NULL, "res_search", name != NULL ? name : "", NULL))
		return -1;
	if (preload_real.res_search == NULL)
		return rawdns_missing(NULL);
	return preload_real.res_search(name, cls, type, ans, anslen);
}

int
res_querydomain(const char *name, const char *domain, int cls, int type,
    unsigned char *ans, int anslen)
{
	if (rawdns_refused(NULL, "res_querydomain", name != NULL ? name : "",
	    domain))
		return -1;
	if (preload_real.res_querydomain == NULL)
		return rawdns_missing(NULL);
	return preload_real.res_querydomain(name, domain, cls, type, ans, anslen);
}

int
res_send(const unsigned char *msg, int len, unsigned char *ans, int anslen)
{
	if (rawdns_refused(NULL, "res_send", NULL, NULL))
		return -1;
	if (preload_real.res_send == NULL)
		return rawdns_missing(NULL);
	return preload_real.res_send(msg, len, ans, anslen);
}

int
res_nquery(res_state statp, const char *name, int cls, int type,
    unsigned char *ans, int anslen)
{
	if (rawdns_refused(statp, "res_nquery", name != NULL ? name : "", NULL))
		return -1;
	if (preload_real.res_nquery == NULL)
		return rawdns_missing(statp);
	return preload_real.res_nquery(statp, name, cls, type, ans, anslen);
}

int
res_nsearch(res_state statp, const char *name, int cls, int type,
    unsigned char *ans, int anslen)
{
	if (rawdns_refused(statp, "res_nsearch", name != NULL ? name : "", NULL))
		return -1;
	if (preload_real.res_nsearch == NULL)
		return rawdns_missing(statp);
	return preload_real.res_nsearch(statp, name, cls, type, ans, anslen);
}

int
res_nquerydomain(res_state statp, const char *name, const char *domain, int cls,
    int type, unsigned char *ans, int anslen)
{
	if (rawdns_refused(statp, "res_nquerydomain", name != NULL ? name : "",
	    domain))
		return -1;
	if (preload_real.res_nquerydomain == NULL)
		return rawdns_missing(statp);
	return preload_real.res_nquerydomain(statp, name, domain, cls, type, ans,
	    anslen);
}

int
res_nsend(res_state statp, const unsigned char *msg, int len, unsigned char *ans,
    int anslen)
{
	if (rawdns_refused(statp, "res_nsend", NULL, NULL))
		return -1;
	if (preload_real.res_nsend == NULL)
		return rawdns_missing(statp);
	return preload_real.res_nsend(statp, msg, len, ans, anslen);
}

/* The old names: the same functions under a second ELF symbol, declared
 * with the attributes resolv.h gives the new ones (__THROW). */
int __res_query(const char *, int, int, unsigned char *, int)
    __THROW __attribute__((alias("res_query")));
int __res_search(const char *, int, int, unsigned char *, int)
    __THROW __attribute__((alias("res_search")));
int __res_querydomain(const char *, const char *, int, int, unsigned char *, int)
    __THROW __attribute__((alias("res_querydomain")));
int __res_send(const unsigned char *, int, unsigned char *, int)
    __THROW __attribute__((alias("res_send")));
int __res_nquery(res_state, const char *, int, int, unsigned char *, int)
    __THROW __attribute__((alias("res_nquery")));
int __res_nsearch(res_state, const char *, int, int, unsigned char *, int)
    __THROW __attribute__((alias("res_nsearch")));
int __res_nquerydomain(res_state, const char *, const char *, int, int,
    unsigned char *, int) __THROW __attribute__((alias("res_nquerydomain")));
int __res_nsend(res_state, const unsigned char *, int, unsigned char *, int)
    __THROW __attribute__((alias("res_nsend")));
