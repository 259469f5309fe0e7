/*
 * treecheck: names looked up in one process of a tree and connected to in
 * another, for tests/preload_tree.bats. Each mode fetches /hello.txt over
 * HTTP from NAME:PORT and prints the body, or prints the errno name of what
 * failed, one line.
 *
 *	treecheck fetch NAME PORT               resolve and connect here
 *	treecheck child-resolves NAME PORT      a forked child resolves, the
 *	                                        parent connects
 *	treecheck parent-resolves NAME PORT     the parent resolves, a forked
 *	                                        child connects
 *	treecheck grandchild-resolves NAME PORT a grandchild resolves, the top
 *	                                        process connects
 *	treecheck exec-connects NAME PORT [closefds]
 *	                                        the parent resolves; a child
 *	                                        exec()s "treecheck connect", after
 *	                                        closing every descriptor above 2
 *	                                        with closefds
 *	treecheck exec-resolves NAME PORT       a child exec()s "treecheck
 *	                                        resolve", the parent connects
 *	treecheck resolve NAME                  print NAME's first IPv4 address
 *	treecheck connect ADDR PORT             connect to a numeric IPv4 ADDR
 *
 * Every child is waited for; every read and wait is bounded by the alarm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


#define TREECHECK_DEADLINE_S	30
#define TREECHECK_BUF_BYTES	4096

static const char *self;

static void
fail(const char *what, int err)
{
	printf("%s\n", err == 0 ? what : strerrorname_np(err));
	fflush(stdout);
	exit(1);
}

/* NAME's first IPv4 address as text, through getaddrinfo(). */
static void
resolve(const char *name, char *text, size_t cap)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	int r;

	r = getaddrinfo(name, NULL, &hints, &res);
	if (r != 0)
		fail(gai_strerror(r), 0);
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text,
	    (socklen_t)cap);
	freeaddrinfo(res);
}

/* GET /hello.txt from ADDR:PORT; prints the body. */
static void
fetch_addr(const char *addr, const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char buf[TREECHECK_BUF_BYTES], *body;
	size_t got = 0;
	ssize_t n;
	int fd;
	static const char req[] = "GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n";

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		fail("bad address", 0);
	sin.sin_port = htons((uint16_t)atoi(port));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		fail("socket", errno);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		fail("connect", errno);
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
		fail("write", errno);
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	body = strstr(buf, "\r\n\r\n");
	fputs(body != NULL ? body + 4 : "no HTTP body\n", stdout);
	fflush(stdout);
}

/* Resolves name in a child (in a grandchild when deep) and returns the
 * address it found, as text. */
static void
resolve_in_child(const char *name, char *text, size_t cap, int deep)
{
	int p[2], st;
	pid_t pid;
	ssize_t n;

	if (pipe(p) != 0)
		fail("pipe", errno);
	pid = fork();
	if (pid < 0)
		fail("fork", errno);
	if (pid == 0) {
		close(p[0]);
		if (deep) {
			pid = fork();
			if (pid < 0)
				_exit(1);
			if (pid > 0)
				_exit(waitpid(pid, &st, 0) == pid && st == 0 ? 0 : 1);
		}
		resolve(name, text, cap);
		n = write(p[1], text, strlen(text));
		_exit(n > 0 ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], text, cap - 1);
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid || st != 0 || n <= 0)
		fail("child failed", 0);
	text[n] = '\0';
}

/* exec()s "treecheck ARGS..." in a child and waits; with out, returns the
 * child's stdout. */
static void
run_self(char *const argv[], char *out, size_t cap, int closefds)
{
	int p[2], st, fd;
	pid_t pid;
	ssize_t n = 0;

	if (out != NULL && pipe(p) != 0)
		fail("pipe", errno);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork", errno);
	if (pid == 0) {
		if (out != NULL) {
			dup2(p[1], STDOUT_FILENO);
			close(p[0]);
			close(p[1]);
		}
		if (closefds)
			for (fd = 3; fd < 4096; fd++)
				close(fd);
		execv(self, argv);
		_exit(127);
	}
	if (out != NULL) {
		close(p[1]);
		n = read(p[0], out, cap - 1);
		close(p[0]);
		if (n <= 0)
			fail("child said nothing", 0);
		while (n > 0 && out[n - 1] == '\n')
			n--;
		out[n] = '\0';
	}
	if (waitpid(pid, &st, 0) != pid || st != 0)
		fail("child failed", 0);
}

int
main(int argc, char **argv)
{
	char addr[INET6_ADDRSTRLEN];
	const char *mode = argc > 1 ? argv[1] : "";
	int st;
	pid_t pid;

	self = argv[0];
	alarm(TREECHECK_DEADLINE_S);
	if (strcmp(mode, "resolve") == 0 && argc == 3) {
		resolve(argv[2], addr, sizeof(addr));
		printf("%s\n", addr);
	} else if (strcmp(mode, "connect") == 0 && argc == 4) {
		fetch_addr(argv[2], argv[3]);
	} else if (strcmp(mode, "fetch") == 0 && argc == 4) {
		resolve(argv[2], addr, sizeof(addr));
		fetch_addr(addr, argv[3]);
	} else if ((strcmp(mode, "child-resolves") == 0 ||
	    strcmp(mode, "grandchild-resolves") == 0) && argc == 4) {
		resolve_in_child(argv[2], addr, sizeof(addr), mode[0] == 'g');
		fetch_addr(addr, argv[3]);
	} else if (strcmp(mode, "parent-resolves") == 0 && argc == 4) {
		resolve(argv[2], addr, sizeof(addr));
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			fetch_addr(addr, argv[3]);
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0)
			fail("child failed", 0);
	} else if (strcmp(mode, "exec-connects") == 0 && (argc == 4 || argc == 5)) {
		char *args[] = { argv[0], (char *)"connect", addr, argv[3], NULL };

		resolve(argv[2], addr, sizeof(addr));
		run_self(args, NULL, 0, argc == 5 && strcmp(argv[4], "closefds") == 0);
	} else if (strcmp(mode, "exec-resolves") == 0 && argc == 4) {
		char *args[] = { argv[0], (char *)"resolve", argv[2], NULL };

		run_self(args, addr, sizeof(addr), 0);
		fetch_addr(addr, argv[3]);
	} else {
		fprintf(stderr, "usage: see the top of tests/bin/treecheck.c\n");
		return 2;
	}
	return 0;
}
