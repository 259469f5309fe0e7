/*
 * resolve.c: the libc resolver API under remote resolution (socks5h).
 *
 * When the last hop resolves names, a lookup is answered with a placeholder
 * address (fakedns.c) that connect() maps back to the name, so the name goes
 * to the proxy as ATYP=DOMAIN and no DNS query leaves the host. The real
 * resolver still answers what involves no DNS: numeric strings,
 * AI_NUMERICHOST, "localhost" and *.localhost (RFC 6761 §6.3), and every
 * lookup under local resolution (socks5).
 *
 * getaddrinfo() results are built exactly as glibc builds its own (one
 * malloc per node with the sockaddr behind the struct, ai_canonname apart),
 * so the program's freeaddrinfo() frees them and needs no hook.
 *
 * getaddrinfo_a() would hand the names to glibc's worker threads, whose
 * getaddrinfo() calls are internal to libc and never reach our hook; under
 * remote resolution each request is answered here instead, synchronously.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "preload.h"

#define SERVICE_BUF_BYTES	1024	/* getservbyname_r() scratch space */
#define LOCALHOST		"localhost"

/* Names the real resolver answers without asking DNS. */
static bool
resolve_is_local(const char *node)
{
	struct in_addr in;
	size_t len = strlen(node), ll = strlen(LOCALHOST);

	if (len == 0 || inet_aton(node, &in) != 0 || strchr(node, ':') != NULL)
		return true;	/* numeric (IPv6 literals, with or without scope) */
	if (node[len - 1] == '.')
		len--;
	if (len < ll || strncasecmp(node + len - ll, LOCALHOST, ll) != 0)
		return false;
	return len == ll || node[len - ll - 1] == '.';
}

/* An excluded name (SOCKSIFY_EXCLUDE), to be resolved and reached locally. */
static bool
resolve_excluded(const char *node)
{
	return node != NULL && preload_init() && preload_cfg.nexclude_names > 0 &&
	    preload_name_excluded(node);
}

static bool
resolve_remote(const char *node)
{
	return node != NULL && !resolve_is_local(node) && preload_init() &&
	    preload_cfg.remote_dns && !resolve_excluded(node);
}

/* The real resolver answered an excluded name: connect() must send its
 * addresses direct even when no CIDR covers them. */
static void
resolve_note_gai(const char *node, const struct addrinfo *res)
{
	if (!resolve_excluded(node))
		return;
	for (; res != NULL; res = res->ai_next)
		if (res->ai_addr != NULL)
			preload_exclude_addr(res->ai_addr, res->ai_addrlen);
}

static void
resolve_note_hostent(const char *name, const struct hostent *h)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char **p;

	if (h == NULL || h->h_addr_list == NULL || !resolve_excluded(name))
		return;
	for (p = h->h_addr_list; *p != NULL; p++) {
		memset(&ss, 0, sizeof(ss));
		if (h->h_addrtype == AF_INET && h->h_length == sizeof(s4->sin_addr)) {
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, *p, sizeof(s4->sin_addr));
			preload_exclude_addr((struct sockaddr *)s4, sizeof(*s4));
		} else if (h->h_addrtype == AF_INET6 &&
		    h->h_length == sizeof(s6->sin6_addr)) {
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, *p, sizeof(s6->sin6_addr));
			preload_exclude_addr((struct sockaddr *)s6, sizeof(*s6));
		}
	}
}

/* Placeholder of the given family for name: 0, or -errno. */
static int
resolve_placeholder(const char *name, int family, uint8_t ip[16])
{
	unsigned idx;
	int r;

	r = fakedns_lookup_name(name, strlen(name), &idx);
	if (r < 0) {
		if (r == -ENOSPC)
			preload_log(LOG_LVL_ERROR, "name table full (%d names); "
			    "cannot resolve %s", PRELOAD_FAKE_ENTRIES, name);
		return r;
	}
	if (family == AF_INET6)
		fakedns_addr_v6(idx, ip);
	else
		fakedns_addr_v4(idx, ip);
	preload_log(LOG_LVL_DEBUG, "%s: placeholder #%u", name, idx);
	return 0;
}

/* The port of service for one socket type: 0, or an EAI_* code. */
static int
resolve_service(const char *service, int socktype, int flags, uint16_t *port)
{
	struct servent se, *sp = NULL;
	char buf[SERVICE_BUF_BYTES];
	unsigned long v;
	char *end;

	*port = 0;
	if (service == NULL)
		return 0;
	errno = 0;
	v = strtoul(service, &end, 10);
	if (service[0] != '\0' && *end == '\0' && errno == 0) {
		if (v > UINT16_MAX)
			return EAI_SERVICE;
		*port = (uint16_t)v;
		return 0;
	}
	if (flags & AI_NUMERICSERV)
		return EAI_NONAME;
	if (socktype != SOCK_STREAM && socktype != SOCK_DGRAM)
		return EAI_SERVICE;
	if (getservbyname_r(service, socktype == SOCK_DGRAM ? "udp" : "tcp",
	    &se, buf, sizeof(buf), &sp) != 0 || sp == NULL)
		return EAI_SERVICE;
	*port = ntohs((uint16_t)sp->s_port);
	return 0;
}

static struct addrinfo *
resolve_gai_node(int family, const uint8_t ip[16], uint16_t port, int socktype,
    int protocol)
{
	struct addrinfo *ai;
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;
	size_t salen = family == AF_INET6 ? sizeof(*s6) : sizeof(*s4);

	ai = calloc(1, sizeof(*ai) + salen);
	if (ai == NULL)
		return NULL;
	ai->ai_family = family;
	ai->ai_socktype = socktype;
	ai->ai_protocol = protocol;
	ai->ai_addrlen = (socklen_t)salen;
	ai->ai_addr = (struct sockaddr *)(ai + 1);
	if (family == AF_INET6) {
		s6 = (struct sockaddr_in6 *)ai->ai_addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, ip, 16);
	} else {
		s4 = (struct sockaddr_in *)ai->ai_addr;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, ip, 4);
	}
	return ai;
}

static int
resolve_gai_fake(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	/* glibc's defaults for NULL hints (getaddrinfo(3)). */
	int family = AF_UNSPEC, socktype = 0, protocol = 0;
	int flags = AI_V4MAPPED | AI_ADDRCONFIG;
	struct { int socktype, protocol; } kinds[2];
	struct addrinfo *head = NULL, **tail = &head, *ai;
	size_t nkinds = 0, i;
	uint8_t ip[16];
	uint16_t port;
	int r, svc_err = 0;

	if (hints != NULL) {
		family = hints->ai_family;
		socktype = hints->ai_socktype;
		protocol = hints->ai_protocol;
		flags = hints->ai_flags;
	}
	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return EAI_FAMILY;
	if (strlen(node) > S5_DOMAIN_MAX)
		return EAI_NONAME;
	if (socktype != 0) {
		if (socktype != SOCK_STREAM && socktype != SOCK_DGRAM &&
		    socktype != SOCK_RAW)
			return EAI_SOCKTYPE;
		kinds[nkinds].socktype = socktype;
		kinds[nkinds++].protocol = protocol != 0 ? protocol :
		    socktype == SOCK_STREAM ? IPPROTO_TCP :
		    socktype == SOCK_DGRAM ? IPPROTO_UDP : 0;
	} else if (protocol == IPPROTO_UDP) {
		kinds[nkinds].socktype = SOCK_DGRAM;
		kinds[nkinds++].protocol = IPPROTO_UDP;
	} else {
		/* Like glibc: one entry per socket type the caller did not rule out. */
		kinds[nkinds].socktype = SOCK_STREAM;
		kinds[nkinds++].protocol = protocol != 0 ? protocol : IPPROTO_TCP;
		if (protocol == 0) {
			kinds[nkinds].socktype = SOCK_DGRAM;
			kinds[nkinds++].protocol = IPPROTO_UDP;
		}
	}

	r = resolve_placeholder(node, family == AF_INET6 ? AF_INET6 : AF_INET, ip);
	if (r < 0)
		return r == -ENOMEM ? EAI_MEMORY : r == -ENOSPC ? EAI_AGAIN : EAI_NONAME;

	for (i = 0; i < nkinds; i++) {
		r = resolve_service(service, kinds[i].socktype, flags, &port);
		if (r != 0) {
			svc_err = r;
			continue;
		}
		ai = resolve_gai_node(family == AF_INET6 ? AF_INET6 : AF_INET, ip,
		    port, kinds[i].socktype, kinds[i].protocol);
		if (ai == NULL)
			goto nomem;
		*tail = ai;
		tail = &ai->ai_next;
	}
	if (head == NULL)
		return svc_err != 0 ? svc_err : EAI_SERVICE;
	if (flags & AI_CANONNAME) {
		head->ai_canonname = strdup(node);
		if (head->ai_canonname == NULL)
			goto nomem;
	}
	*res = head;
	return 0;
nomem:
	if (head != NULL)
		freeaddrinfo(head);
	return EAI_MEMORY;
}

/* getaddrinfo() as the program sees it; getaddrinfo_a() answers with it. */
static int
resolve_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	int r;

	preload_init_symbols();
	if (preload_real.getaddrinfo == NULL) {
		errno = ENOSYS;
		return EAI_SYSTEM;
	}
	if ((hints != NULL && (hints->ai_flags & AI_NUMERICHOST)) || !resolve_remote(node)) {
		r = preload_real.getaddrinfo(node, service, hints, res);
		if (r == 0)
			resolve_note_gai(node, *res);
		return r;
	}
	return resolve_gai_fake(node, service, hints, res);
}

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	return resolve_getaddrinfo(node, service, hints, res);
}

/* What a SIGEV_THREAD notification runs, in a thread of its own. */
struct resolve_notify {
	void (*fn)(union sigval);
	union sigval value;
	bool detach;		/* the program's attributes made it joinable */
};

static void *
resolve_notify_thread(void *arg)
{
	struct resolve_notify n = *(struct resolve_notify *)arg;

	free(arg);
	if (n.detach)
		(void)pthread_detach(pthread_self());
	n.fn(n.value);
	return NULL;
}

/* Notify as sev asks, the way glibc does once a GAI_NOWAIT batch is done.
 * Returns 0, or an EAI_* code when the notification cannot be made. */
static int
resolve_gai_notify(const struct sigevent *sev)
{
	struct resolve_notify *n;
	pthread_attr_t attr, *pattr;
	pthread_t tid;
	int state, r;

	if (sev == NULL || sev->sigev_notify == SIGEV_NONE)
		return 0;
	if (sev->sigev_notify == SIGEV_SIGNAL)
		return sigqueue(getpid(), sev->sigev_signo, sev->sigev_value) == 0 ?
		    0 : EAI_SYSTEM;
	if (sev->sigev_notify != SIGEV_THREAD || sev->sigev_notify_function == NULL)
		return 0;	/* glibc ignores other kinds too */
	n = malloc(sizeof(*n));
	if (n == NULL)
		return EAI_MEMORY;
	n->fn = sev->sigev_notify_function;
	n->value = sev->sigev_value;
	n->detach = false;
	pattr = sev->sigev_notify_attributes;
	if (pattr == NULL) {
		if (pthread_attr_init(&attr) != 0) {
			free(n);
			return EAI_MEMORY;
		}
		(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	} else if (pthread_attr_getdetachstate(pattr, &state) == 0 &&
	    state == PTHREAD_CREATE_JOINABLE) {
		n->detach = true;	/* nobody would join it */
	}
	r = pthread_create(&tid, pattr != NULL ? pattr : &attr,
	    resolve_notify_thread, n);
	if (pattr == NULL)
		pthread_attr_destroy(&attr);
	if (r != 0) {
		free(n);
		errno = r;
		return EAI_SYSTEM;
	}
	return 0;
}

/*
 * Under remote resolution every request is answered at once through our
 * getaddrinfo() (placeholders, or libc for numeric and local names): each
 * gaicb gets ar_result and its public __return field, which gai_error()
 * reads; gai_suspend() and gai_cancel() then find nothing in progress.
 * GAI_WAIT returns with all done and notifies nobody; GAI_NOWAIT notifies
 * as sev asks, once, as glibc does when the last request of a batch ends.
 */
int
getaddrinfo_a(int mode, struct gaicb *list[], int nitems, struct sigevent *sev)
{
	int i;

	preload_init_symbols();
	if (!preload_init() || !preload_cfg.remote_dns) {
		if (preload_real.getaddrinfo_a == NULL) {
			errno = ENOSYS;
			return EAI_SYSTEM;
		}
		return preload_real.getaddrinfo_a(mode, list, nitems, sev);
	}
	if (mode != GAI_WAIT && mode != GAI_NOWAIT) {
		errno = EINVAL;
		return EAI_SYSTEM;
	}
	for (i = 0; i < nitems; i++) {
		if (list[i] == NULL)
			continue;
		list[i]->ar_result = NULL;
		list[i]->__return = resolve_getaddrinfo(list[i]->ar_name,
		    list[i]->ar_service, list[i]->ar_request, &list[i]->ar_result);
	}
	return mode == GAI_NOWAIT ? resolve_gai_notify(sev) : 0;
}

/*
 * gethostbyname family. The hostent and what it points to are laid out in
 * the caller's buffer: two pointer arrays, the address, then the name.
 * Returns 0 or an errno (ERANGE when buf is too small).
 */
static int
resolve_fill_hostent(const char *name, int af, const uint8_t *ip, struct hostent *h,
    char *buf, size_t buflen, int *herr)
{
	size_t len = strlen(name), alen = af == AF_INET6 ? 16 : 4, pad;
	char **ptrs;

	pad = (alignof(char *) - (uintptr_t)buf % alignof(char *)) % alignof(char *);
	if (buflen < pad + 3 * sizeof(char *) + alen + len + 1) {
		*herr = NETDB_INTERNAL;
		return ERANGE;
	}
	ptrs = (char **)(void *)(buf + pad);
	ptrs[0] = NULL;				/* h_aliases: none */
	ptrs[1] = (char *)(ptrs + 3);		/* h_addr_list[0] */
	ptrs[2] = NULL;
	memcpy(ptrs[1], ip, alen);
	h->h_name = ptrs[1] + alen;
	memcpy(h->h_name, name, len + 1);
	h->h_aliases = &ptrs[0];
	h->h_addr_list = &ptrs[1];
	h->h_addrtype = af;
	h->h_length = (int)alen;
	*herr = NETDB_SUCCESS;
	return 0;
}

/* A forward lookup: the placeholder of name. */
static int
resolve_name_hostent(const char *name, int af, struct hostent *h, char *buf,
    size_t buflen, int *herr)
{
	uint8_t ip[16];
	int r;

	if (af != AF_INET && af != AF_INET6) {
		*herr = NETDB_INTERNAL;
		return EAFNOSUPPORT;
	}
	if (strlen(name) > S5_DOMAIN_MAX) {
		*herr = HOST_NOT_FOUND;
		return ENOENT;
	}
	r = resolve_placeholder(name, af, ip);
	if (r < 0) {
		*herr = TRY_AGAIN;
		return -r;
	}
	return resolve_fill_hostent(name, af, ip, h, buf, buflen, herr);
}

/*
 * A reverse lookup under remote resolution: a placeholder's name, as
 * getnameinfo() answers it; any other address is not found, since a PTR
 * query would leak it to DNS.
 */
static int
resolve_addr_hostent(const void *addr, socklen_t len, int af, struct hostent *h,
    char *buf, size_t buflen, int *herr)
{
	char name[S5_DOMAIN_MAX + 1];
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct s5_addr a;

	/* Through a sockaddr, so that a v4-mapped placeholder counts too. */
	memset(&ss, 0, sizeof(ss));
	if (addr != NULL && af == AF_INET && len == sizeof(s4->sin_addr)) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, addr, len);
	} else if (addr != NULL && af == AF_INET6 && len == sizeof(s6->sin6_addr)) {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, addr, len);
	}
	if (s5_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof(ss)) != 0 ||
	    !fakedns_name_of(&a, name, sizeof(name))) {
		*herr = HOST_NOT_FOUND;
		return ENOENT;
	}
	return resolve_fill_hostent(name, af, addr, h, buf, buflen, herr);
}

/* Per-thread static storage, as glibc's own is per thread. */
static __thread struct hostent resolve_he;
static __thread char resolve_he_buf[3 * sizeof(char *) + 16 + S5_DOMAIN_MAX + 1 +
    sizeof(char *)];

/* The per-thread hostent of the non-reentrant calls, or NULL with h_errno
 * and errno set as libc would. */
static struct hostent *
resolve_he_result(int r, int herr)
{
	h_errno = herr;
	if (r != 0) {
		errno = r;
		return NULL;
	}
	return &resolve_he;
}

struct hostent *
gethostbyname2(const char *name, int af)
{
	struct hostent *h;
	int herr, r;

	preload_init_symbols();
	if (preload_real.gethostbyname2 == NULL) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	if (!resolve_remote(name)) {
		h = preload_real.gethostbyname2(name, af);
		resolve_note_hostent(name, h);
		return h;
	}
	r = resolve_name_hostent(name, af, &resolve_he, resolve_he_buf,
	    sizeof(resolve_he_buf), &herr);
	return resolve_he_result(r, herr);
}

struct hostent *
gethostbyname(const char *name)
{
	struct hostent *h;

	preload_init_symbols();
	if (preload_real.gethostbyname == NULL) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	if (!resolve_remote(name)) {
		h = preload_real.gethostbyname(name);
		resolve_note_hostent(name, h);
		return h;
	}
	return gethostbyname2(name, AF_INET);
}

int
gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop)
{
	int herr, r;

	preload_init_symbols();
	if (preload_real.gethostbyname2_r == NULL) {
		*result = NULL;
		return ENOSYS;
	}
	if (!resolve_remote(name)) {
		r = preload_real.gethostbyname2_r(name, af, ret, buf, buflen,
		    result, h_errnop);
		if (r == 0)
			resolve_note_hostent(name, *result);
		return r;
	}
	r = resolve_name_hostent(name, af, ret, buf, buflen, &herr);
	if (h_errnop != NULL)
		*h_errnop = herr;
	if (r != 0)
		h_errno = herr;	/* as gethostbyaddr_r() below */
	*result = r == 0 ? ret : NULL;
	return r;
}

int
gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
    struct hostent **result, int *h_errnop)
{
	int r;

	preload_init_symbols();
	if (preload_real.gethostbyname_r == NULL) {
		*result = NULL;
		return ENOSYS;
	}
	if (!resolve_remote(name)) {
		r = preload_real.gethostbyname_r(name, ret, buf, buflen, result,
		    h_errnop);
		if (r == 0)
			resolve_note_hostent(name, *result);
		return r;
	}
	return gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

static bool
resolve_remote_addr(void)
{
	return preload_init() && preload_cfg.remote_dns;
}

struct hostent *
gethostbyaddr(const void *addr, socklen_t len, int af)
{
	int herr, r;

	preload_init_symbols();
	if (preload_real.gethostbyaddr == NULL) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	if (!resolve_remote_addr())
		return preload_real.gethostbyaddr(addr, len, af);
	r = resolve_addr_hostent(addr, len, af, &resolve_he, resolve_he_buf,
	    sizeof(resolve_he_buf), &herr);
	return resolve_he_result(r, herr);
}

int
gethostbyaddr_r(const void *addr, socklen_t len, int af, struct hostent *ret,
    char *buf, size_t buflen, struct hostent **result, int *h_errnop)
{
	int herr, r;

	preload_init_symbols();
	if (preload_real.gethostbyaddr_r == NULL) {
		*result = NULL;
		return ENOSYS;
	}
	if (!resolve_remote_addr())
		return preload_real.gethostbyaddr_r(addr, len, af, ret, buf, buflen,
		    result, h_errnop);
	r = resolve_addr_hostent(addr, len, af, ret, buf, buflen, &herr);
	if (h_errnop != NULL)
		*h_errnop = herr;
	/* glibc sets the global too, and CPython's gethostbyaddr() reads
	 * that one ("Unknown host", not "Resolver Error 0"). */
	if (r != 0)
		h_errno = herr;
	*result = r == 0 ? ret : NULL;
	/* glibc: a name not found is no error of the call itself. */
	return herr == HOST_NOT_FOUND ? 0 : r;
}

/*
 * A placeholder's name is the answer to a reverse lookup of it. Under remote
 * resolution any other address that is not excluded is answered numerically
 * (or not at all with NI_NAMEREQD): a PTR query would leak it to DNS.
 */
int
getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
    char *serv, socklen_t servlen, int flags)
{
	char name[S5_DOMAIN_MAX + 1];
	struct s5_addr a;
	int r;

	preload_init_symbols();
	if (preload_real.getnameinfo == NULL)
		return EAI_SYSTEM;
	if (host == NULL || hostlen == 0 || (flags & NI_NUMERICHOST) ||
	    sa == NULL || s5_addr_from_sockaddr(&a, sa, salen) != 0 ||
	    !preload_init())
		return preload_real.getnameinfo(sa, salen, host, hostlen, serv,
		    servlen, flags);
	if (!fakedns_name_of(&a, name, sizeof(name))) {
		if (!preload_cfg.remote_dns || preload_is_excluded(&a))
			return preload_real.getnameinfo(sa, salen, host, hostlen,
			    serv, servlen, flags);
		if (flags & NI_NAMEREQD)
			return EAI_NONAME;
		return preload_real.getnameinfo(sa, salen, host, hostlen, serv,
		    servlen, flags | NI_NUMERICHOST);
	}
	if (strlen(name) >= hostlen)
		return EAI_OVERFLOW;
	if (serv != NULL && servlen > 0) {
		r = preload_real.getnameinfo(sa, salen, NULL, 0, serv, servlen, flags);
		if (r != 0)
			return r;
	}
	memcpy(host, name, strlen(name) + 1);
	return 0;
}
