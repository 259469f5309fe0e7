/*
 * netcheck: calls the libc paths a program can take to the network, so the
 * end-to-end tests can check each one under libsocksify.so. Prints "ok",
 * "sent", an answer, or the errno / resolver failure, one line.
 *
 *	netcheck connect6 PORT ADDRLEN    TCP connect to [::1]:PORT, given addrlen
 *	netcheck udp53v6 ADDRLEN          UDP sendto [::1]:53, given addrlen
 *	netcheck res_query NAME           res_query(NAME, IN, A)
 *	netcheck res_search NAME          res_search(NAME, IN, A)
 *	netcheck res_send NAME            res_mkquery + res_send
 *	netcheck gethostbyaddr IPV4       reverse lookup (a PTR query)
 *	netcheck getaddrinfo_a NAME       asynchronous lookup, waited for
 *	netcheck efault ADDR              connect, syscall(SYS_connect), sendto,
 *	                                  sendmsg (a bad message, a bad name)
 *	                                  and sendmmsg with the address ADDR (a
 *	                                  number, as 8: NULL plus an offset),
 *	                                  one line each: "NAME ERRNO"
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ANSWER_MAX	4096

/* Every send path given a pointer the program does not own. */
static int
check_efault(unsigned long addr)
{
	void *bad = (void *)addr;
	int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
	struct iovec v = { .iov_base = "x", .iov_len = 1 };
	struct msghdr m = { .msg_name = bad, .msg_namelen = 16, .msg_iov = &v, .msg_iovlen = 1 };

	if (t < 0 || u < 0)
		return 1;
	printf("connect %s\n", connect(t, bad, 16) < 0 ? strerrorname_np(errno) : "ok");
	printf("syscall %s\n", syscall(SYS_connect, t, bad, 16) < 0 ? strerrorname_np(errno) : "ok");
	printf("sendto %s\n", sendto(u, "x", 1, 0, bad, 16) < 0 ? strerrorname_np(errno) : "sent");
	printf("sendmsg %s\n", sendmsg(u, bad, 0) < 0 ? strerrorname_np(errno) : "sent");
	printf("sendmsg-name %s\n", sendmsg(u, &m, 0) < 0 ? strerrorname_np(errno) : "sent");
	printf("sendmmsg %s\n", sendmmsg(u, bad, 1, 0) < 0 ? strerrorname_np(errno) : "sent");
	return 0;
}

static int
say_errno(void)
{
	const char *name = strerrorname_np(errno);

	printf("%s\n", name != NULL ? name : "?");
	return 0;
}

static int
check_connect6(int port, socklen_t len, int type)
{
	struct sockaddr_in6 sin6;
	int fd = socket(AF_INET6, type, 0);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)port);
	sin6.sin6_addr = in6addr_loopback;
	if (type == SOCK_DGRAM) {
		if (sendto(fd, "\0\0", 2, 0, (struct sockaddr *)&sin6, len) < 0)
			return say_errno();
		printf("sent\n");
	} else {
		if (connect(fd, (struct sockaddr *)&sin6, len) < 0)
			return say_errno();
		printf("ok\n");
	}
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned char ans[ANSWER_MAX], q[ANSWER_MAX];
	const char *op = argc > 1 ? argv[1] : "";
	int n;

	if (argc < 3) {
		fprintf(stderr, "usage: netcheck OP ARG...\n");
		return 2;
	}
	if (strcmp(op, "efault") == 0)
		return check_efault(strtoul(argv[2], NULL, 0));
	if (strcmp(op, "connect6") == 0 && argc == 4)
		return check_connect6(atoi(argv[2]), (socklen_t)atoi(argv[3]), SOCK_STREAM);
	if (strcmp(op, "udp53v6") == 0)
		return check_connect6(53, (socklen_t)atoi(argv[2]), SOCK_DGRAM);
	if (strcmp(op, "res_query") == 0 || strcmp(op, "res_search") == 0 ||
	    strcmp(op, "res_send") == 0) {
		if (op[4] == 'q')
			n = res_query(argv[2], ns_c_in, ns_t_a, ans, sizeof(ans));
		else if (op[4] == 's' && op[5] == 'e' && op[6] == 'a')
			n = res_search(argv[2], ns_c_in, ns_t_a, ans, sizeof(ans));
		else {
			n = res_mkquery(ns_o_query, argv[2], ns_c_in, ns_t_a, NULL, 0,
			    NULL, q, sizeof(q));
			if (n > 0)
				n = res_send(q, n, ans, sizeof(ans));
		}
		printf(n < 0 ? "failed\n" : "answer\n");
		return 0;
	}
	if (strcmp(op, "gethostbyaddr") == 0) {
		struct in_addr a;
		struct hostent *h;

		if (inet_pton(AF_INET, argv[2], &a) != 1)
			return 2;
		h = gethostbyaddr(&a, sizeof(a), AF_INET);
		printf("%s\n", h != NULL ? h->h_name : "failed");
		return 0;
	}
	if (strcmp(op, "getaddrinfo_a") == 0) {
		struct gaicb cb, *list[1] = { &cb };
		char text[INET6_ADDRSTRLEN];
		struct addrinfo *ai;

		memset(&cb, 0, sizeof(cb));
		cb.ar_name = argv[2];
		n = getaddrinfo_a(GAI_WAIT, list, 1, NULL);
		if (n == 0)
			n = gai_error(&cb);
		if (n != 0) {
			printf("failed: %s\n", gai_strerror(n));
			return 0;
		}
		for (ai = cb.ar_result; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
				    text, sizeof(text));
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
				    text, sizeof(text));
			printf("%s\n", text);
		}
		freeaddrinfo(cb.ar_result);
		return 0;
	}
	fprintf(stderr, "netcheck: unknown operation %s\n", op);
	return 2;
}
