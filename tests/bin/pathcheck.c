/*
 * pathcheck: the less travelled paths to the network, so that
 * tests/preload_paths.bats can check each under libsocksify.so. Prints "ok",
 * "sent", a number, or the errno name, one line.
 *
 *	pathcheck syscall-connect PORT   syscall(SYS_connect) to 127.0.0.1:PORT
 *	pathcheck syscall-other          syscall() numbers no hook knows
 *	pathcheck iouring                syscall(SYS_io_uring_setup)
 *	pathcheck udp HOW HOST PORT      one datagram; HOW is sendto, sendmsg,
 *	                                 sendmmsg, connect or syscall
 *	pathcheck tcp HOW PORT           GET /hello.txt from 127.0.0.1:PORT, the
 *	                                 connection made by HOW: fastopen-sendmmsg
 *	                                 (sendmmsg with MSG_FASTOPEN), __connect,
 *	                                 or syscall-sendmmsg; prints the body
 *	pathcheck peer-small PORT        connect an IPv6 socket to
 *	                                 [::ffff:127.0.0.1]:PORT, then
 *	                                 getpeername() into a 16-byte sockaddr
 *	                                 (with a canary after it) and into NULL
 *	                                 with length 0
 *	pathcheck icmp HOST              one ICMP echo request to an IPv4 HOST,
 *	                                 by an ICMP datagram socket where the
 *	                                 system allows it, else a raw socket
 *	pathcheck peer NAME PORT [PORT2] connect to NAME:PORT (getaddrinfo, IPv4),
 *	                                 print getpeername(); with PORT2, close,
 *	                                 reopen the same fd number, connect it to
 *	                                 127.0.0.1:PORT2 and print that too
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/tcp.h>
#include <unistd.h>

#define IOURING_PARAMS_BYTES	120	/* struct io_uring_params, zeroed */
#define NO_SUCH_SYSCALL		100000	/* far above any number in use */

static int
say_errno(void)
{
	const char *name = strerrorname_np(errno);

	printf("%s\n", name != NULL ? name : "?");
	return 0;
}

/* HOST:PORT as a sockaddr; returns its length, 0 when HOST is no address. */
static socklen_t
make_addr(const char *host, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)atoi(port));
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)atoi(port));
		return sizeof(*s6);
	}
	return 0;
}

static int
check_syscall_connect(const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr("127.0.0.1", port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || syscall(SYS_connect, fd, (struct sockaddr *)&ss, len) != 0)
		return say_errno();
	printf("ok\n");
	close(fd);
	return 0;
}

extern int __connect(int fd, const struct sockaddr *sa, socklen_t len);

static int
check_tcp(const char *how, const char *port)
{
	static char req[] = "GET /hello.txt HTTP/1.0\r\n\r\n";
	struct sockaddr_storage ss;
	socklen_t len = make_addr("127.0.0.1", port, &ss);
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(req) - 1 };
	struct mmsghdr mm = { .msg_hdr = { .msg_name = &ss, .msg_namelen = len,
	    .msg_iov = &iov, .msg_iovlen = 1 } };
	char buf[4096], *body;
	size_t got = 0;
	ssize_t n;
	long r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return say_errno();
	if (strcmp(how, "fastopen-sendmmsg") == 0)
		r = sendmmsg(fd, &mm, 1, MSG_FASTOPEN);
	else if (strcmp(how, "syscall-sendmmsg") == 0)
		r = syscall(SYS_sendmmsg, fd, &mm, 1L, (long)MSG_FASTOPEN);
	else if (strcmp(how, "__connect") == 0)
		r = __connect(fd, (struct sockaddr *)&ss, len) == 0 ?
		    send(fd, req, sizeof(req) - 1, 0) : -1;
	else {
		printf("unknown tcp call %s\n", how);
		return 2;
	}
	if (r < 0)
		return say_errno();
	while (got < sizeof(buf) - 1 &&
	    (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	body = strstr(buf, "\r\n\r\n");
	printf("%s\n", body != NULL ? body + 4 : "no body");
	close(fd);
	return 0;
}

static int
check_peer_small(const char *port)
{
	struct { struct sockaddr sa; unsigned char canary[16]; } b;
	struct sockaddr_storage ss;
	socklen_t len = make_addr("::ffff:127.0.0.1", port, &ss), zero = 0;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	size_t i, bad = 0;

	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0)
		return say_errno();
	memset(b.canary, 0xAA, sizeof(b.canary));
	len = sizeof(b.sa);
	if (getpeername(fd, &b.sa, &len) != 0)
		return say_errno();
	for (i = 0; i < sizeof(b.canary); i++)
		bad += b.canary[i] != 0xAA;
	printf("len=%u family=%d overwritten=%zu\n", (unsigned)len, b.sa.sa_family, bad);
	if (getpeername(fd, NULL, &zero) != 0)
		return say_errno();
	printf("null len=%u\n", (unsigned)zero);
	close(fd);
	return 0;
}

/* Numbers outside any list of ours reach the kernel and get its answers. */
static int
check_syscall_other(void)
{
	long r;

	if (syscall(SYS_getpid) != getpid()) {
		printf("getpid differs\n");
		return 1;
	}
	r = syscall(SYS_getppid);
	if (r != getppid()) {
		printf("getppid differs\n");
		return 1;
	}
	if (syscall(NO_SUCH_SYSCALL, 1L, 2L, 3L, 4L, 5L, 6L) != -1 || errno != ENOSYS) {
		printf("unknown number not ENOSYS\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int
check_iouring(void)
{
	unsigned char params[IOURING_PARAMS_BYTES];
	long fd;

	memset(params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1L, params);
	if (fd < 0)
		return say_errno();
	printf("fd\n");
	close((int)fd);
	return 0;
}

static int
check_udp(const char *how, const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(host, port, &ss);
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct mmsghdr mm;
	struct msghdr *m = &mm.msg_hdr;
	long r;
	int fd;

	if (len == 0) {
		printf("bad address\n");
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		return say_errno();
	memset(&mm, 0, sizeof(mm));
	m->msg_name = &ss;
	m->msg_namelen = len;
	m->msg_iov = &iov;
	m->msg_iovlen = 1;
	if (strcmp(how, "sendto") == 0)
		r = sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len);
	else if (strcmp(how, "sendmsg") == 0)
		r = sendmsg(fd, m, 0);
	else if (strcmp(how, "sendmmsg") == 0)
		r = sendmmsg(fd, &mm, 1, 0);
	else if (strcmp(how, "connect") == 0)
		r = connect(fd, (struct sockaddr *)&ss, len);
	else if (strcmp(how, "syscall") == 0)
		r = syscall(SYS_sendto, fd, "x", 1L, 0L, (struct sockaddr *)&ss,
		    (long)len);
	else {
		printf("unknown udp call %s\n", how);
		return 2;
	}
	if (r < 0)
		return say_errno();
	printf("sent\n");
	close(fd);
	return 0;
}

static int
check_icmp(const char *host)
{
	/* type 8 (echo request), code 0, checksum of these 8 bytes, id 1, seq 1 */
	static const unsigned char echo[8] = { 8, 0, 0xf7, 0xfd, 0, 1, 0, 1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		printf("bad address\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (fd < 0)
		fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (fd < 0)
		return say_errno();
	if (sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&sin,
	    sizeof(sin)) < 0)
		return say_errno();
	printf("sent\n");
	close(fd);
	return 0;
}

/* Prints the peer of fd as "HOST PORT", numeric. */
static int
say_peer(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return say_errno();
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		printf("getnameinfo failed\n");
		return 1;
	}
	printf("%s %s\n", host, serv);
	return 0;
}

static int
check_peer(const char *name, const char *port, const char *port2)
{
	struct addrinfo hints, *res;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, fd2, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(name, port, &hints, &res)) != 0) {
		printf("%s\n", gai_strerror(r));
		return 1;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
		return say_errno();
	freeaddrinfo(res);
	if ((r = say_peer(fd)) != 0 || port2 == NULL)
		return r;
	/* The number comes back for a new socket, which the library never saw
	 * tunnelled: the old entry must not speak for it. */
	close(fd);
	fd2 = socket(AF_INET, SOCK_STREAM, 0);
	if (fd2 != fd) {
		printf("fd %d reopened as %d\n", fd, fd2);
		return 1;
	}
	len = make_addr("127.0.0.1", port2, &ss);
	if (connect(fd2, (struct sockaddr *)&ss, len) != 0)
		return say_errno();
	return say_peer(fd2);
}

int
main(int argc, char **argv)
{
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "peer") == 0)
		return check_peer(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	if (argc == 3 && strcmp(argv[1], "syscall-connect") == 0)
		return check_syscall_connect(argv[2]);
	if (argc == 2 && strcmp(argv[1], "syscall-other") == 0)
		return check_syscall_other();
	if (argc == 2 && strcmp(argv[1], "iouring") == 0)
		return check_iouring();
	if (argc == 4 && strcmp(argv[1], "tcp") == 0)
		return check_tcp(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "peer-small") == 0)
		return check_peer_small(argv[2]);
	if (argc == 3 && strcmp(argv[1], "icmp") == 0)
		return check_icmp(argv[2]);
	if (argc == 5 && strcmp(argv[1], "udp") == 0)
		return check_udp(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: pathcheck syscall-connect PORT | syscall-other | "
	    "iouring | udp HOW HOST PORT | tcp HOW PORT | peer-small PORT | icmp HOST | peer NAME PORT [PORT2]\n");
	return 2;
}
