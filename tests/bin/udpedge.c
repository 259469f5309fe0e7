/*
 * udpedge: the edges of UDP through the relay (preload/udp.c), each a way a
 * program could break it or slip around it. Run under libsocksify.so with
 * nothing excluded but 127.0.0.2; the target is a UDP echo on 127.0.0.1.
 *
 *	udpedge sigwrite PORT        2,000 round trips while a SIGALRM handler
 *	                             write()s to a pipe every 200 µs
 *	udpedge vfork PORT           connect()ed round trip, a vfork()ed child
 *	                             closes every descriptor and exec()s, then
 *	                             another round trip
 *	udpedge unspec PORT          sendto() and sendmsg() to an AF_UNSPEC
 *	                             address on an IPv4 socket (the kernel reads
 *	                             it as AF_INET); prints "local PORT" too
 *	udpedge namelen0 PORT        connect(), then sendmsg() with a name of
 *	                             length 0 (the kernel: no address)
 *	udpedge framing PORT         MSG_MORE, a UDP_SEGMENT control message, and
 *	                             UDP_CORK on: each refused; UDP_GRO or
 *	                             UDP_SEGMENT turned on once relayed, and
 *	                             sendfile() to it: refused
 *	udpedge exclconnect PORT P2  connect() through the relay, then to the
 *	                             excluded 127.0.0.2:P2: send() and
 *	                             sendfile() go there
 *	udpedge mmsg PORT            sendmmsg() of 4 datagrams, recvmmsg() of
 *	                             their echoes: lengths, bytes and sources
 *	udpedge dontwait PORT        a blocking socket's first sendto() with
 *	                             MSG_DONTWAIT (its association is made in
 *	                             the background), then a blocking recvfrom()
 *	                             that began before the relay was known
 *
 * One line per check: "NAME ok" or "NAME bad: why" (or an errno name).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "testbin.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT	103
#endif

#define ROUNDS		2000
#define WAIT_MS		3000

static int pipefd[2];
static volatile sig_atomic_t signals;

_Noreturn static void
usage(void)
{
	fprintf(stderr, "usage: udpedge sigwrite|vfork|unspec|namelen0|framing|mmsg|dontwait PORT\n"
	    "       udpedge exclconnect PORT PORT2\n");
	exit(2);
}

static struct sockaddr_in
addr(const char *ip, long port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

/* The next datagram, waited for: its length, or -1 (errno; ETIMEDOUT). */
static ssize_t
reply(int s, void *buf, size_t n)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	if (r <= 0)
		return -1;
	return recv(s, buf, n, MSG_DONTWAIT);
}

/* send() on a connected socket, then its echo: "NAME ok" or why not. */
static bool
roundtrip(int s, const char *name, const char *msg)
{
	char buf[256];
	ssize_t n;

	if (send(s, msg, strlen(msg), 0) < 0) {
		printf("%s %s\n", name, strerrorname_np(errno));
		return false;
	}
	n = reply(s, buf, sizeof(buf));
	if (n < 0 || (size_t)n != strlen(msg) || memcmp(buf, msg, (size_t)n) != 0) {
		printf("%s bad: %s\n", name, n < 0 ? strerrorname_np(errno) : "other bytes");
		return false;
	}
	printf("%s ok\n", name);
	return true;
}

static void
on_alarm(int sig)
{
	(void)sig;
	signals++;
	(void)!write(pipefd[1], "x", 1);
}

static int
check_sigwrite(int s, const struct sockaddr_in *echo)
{
	struct itimerval it = { .it_interval = { 0, 200 }, .it_value = { 0, 200 } };
	struct sigaction sa;
	char buf[64], drain[4096];
	int i;

	if (pipe2(pipefd, O_NONBLOCK) != 0)
		fatal("pipe:");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	for (i = 0; i < ROUNDS; i++) {
		if (sendto(s, "ping", 4, 0, (const struct sockaddr *)echo, sizeof(*echo)) != 4 &&
		    errno != EINTR) {
			printf("sigwrite %s\n", strerrorname_np(errno));
			return 1;
		}
		if (reply(s, buf, sizeof(buf)) != 4) {
			printf("sigwrite bad: round %d: %s\n", i, strerrorname_np(errno));
			return 1;
		}
		while (read(pipefd[0], drain, sizeof(drain)) > 0)
			;
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	printf("sigwrite ok (%d rounds, %d signals)\n", ROUNDS, (int)signals);
	return 0;
}

static int
check_vfork(int s)
{
	pid_t pid;
	int st;

	if (!roundtrip(s, "before", "one"))
		return 1;
	pid = vfork();
	if (pid == 0) {
		close_range(3, ~0U, 0);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return roundtrip(s, "after-vfork", "two") ? 0 : 1;
}

/* A message of one iovec to name (namelen bytes of it). */
static void
msg1(struct msghdr *m, struct sockaddr_in *name, socklen_t namelen, struct iovec *v)
{
	memset(m, 0, sizeof(*m));
	m->msg_name = name;
	m->msg_namelen = namelen;
	m->msg_iov = v;
	m->msg_iovlen = 1;
}

static int
check_unspec(int s, struct sockaddr_in echo)
{
	struct iovec v = { .iov_base = "via-msg", .iov_len = 7 };
	struct msghdr m;
	char buf[64];
	ssize_t n;
	struct sockaddr_in me;
	socklen_t len = sizeof(me);

	echo.sin_family = AF_UNSPEC;
	n = sendto(s, "via-to", 6, 0, (struct sockaddr *)&echo, sizeof(echo));
	if (getsockname(s, (struct sockaddr *)&me, &len) == 0)
		printf("local %d\n", ntohs(me.sin_port));
	printf("unspec-sendto %s\n", n == 6 && reply(s, buf, sizeof(buf)) == 6 ? "ok" :
	    strerrorname_np(errno));
	msg1(&m, &echo, sizeof(echo), &v);
	n = sendmsg(s, &m, 0);
	printf("unspec-sendmsg %s\n", n == 7 && reply(s, buf, sizeof(buf)) == 7 ? "ok" :
	    strerrorname_np(errno));
	return 0;
}

static int
check_namelen0(int s, struct sockaddr_in echo)
{
	struct iovec v = { .iov_base = "no-name", .iov_len = 7 };
	struct msghdr m;
	char buf[64];
	ssize_t n;

	if (connect(s, (struct sockaddr *)&echo, sizeof(echo)) != 0)
		fatal("connect:");
	msg1(&m, &echo, 0, &v);
	n = sendmsg(s, &m, 0);
	if (n == 7)
		n = reply(s, buf, sizeof(buf));
	printf("namelen0 %s\n", n == 7 && memcmp(buf, "no-name", 7) == 0 ? "ok" :
	    strerrorname_np(errno));
	return 0;
}

static void
say_refused(const char *name, ssize_t n)
{
	printf("%s %s\n", name, n < 0 ? strerrorname_np(errno) : "sent");
}

/* sendfile() of 4 bytes ("file") to s: "NAME sent" or the errno. */
static void
say_sendfile(int s, const char *name)
{
	off_t off = 0;
	int f;

	if ((f = memfd_create("udpedge", MFD_CLOEXEC)) < 0 || write(f, "file", 4) != 4)
		fatal("memfd:");
	say_refused(name, sendfile(s, f, &off, 4));
	close(f);
}

static int
check_framing(struct sockaddr_in echo)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec v = { .iov_base = "gso", .iov_len = 3 };
	struct cmsghdr *c;
	struct msghdr m;
	uint16_t seg = 1;
	int s, on = 1;

	s = socket(AF_INET, SOCK_DGRAM, 0);
	say_refused("more", sendto(s, "more", 4, MSG_MORE, (struct sockaddr *)&echo, sizeof(echo)));
	memset(&ctl, 0, sizeof(ctl));
	msg1(&m, &echo, sizeof(echo), &v);
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = IPPROTO_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	say_refused("gso", sendmsg(s, &m, 0));
	close(s);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(s, IPPROTO_UDP, UDP_CORK, &on, sizeof(on));
	say_refused("cork", sendto(s, "cork", 4, 0, (struct sockaddr *)&echo, sizeof(echo)));
	close(s);
	/* Relayed first, then UDP_GRO (or GSO) turned on: the relay's runs
	 * would arrive as one datagram, so the option is refused. */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(s, (struct sockaddr *)&echo, sizeof(echo)) != 0)
		fatal("connect:");
	if (!roundtrip(s, "relayed", "before-gro"))
		return 1;
	say_refused("gro-after", setsockopt(s, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)));
	say_refused("gso-after", setsockopt(s, IPPROTO_UDP, UDP_SEGMENT, &on, sizeof(on)));
	on = 0;
	say_refused("gro-off", setsockopt(s, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)));
	/* sendfile() would put the bytes on the relay with no header. */
	say_sendfile(s, "sendfile");
	close(s);
	return 0;
}

static int
check_exclconnect(int s, struct sockaddr_in echo, long port2)
{
	struct sockaddr_in other = addr("127.0.0.2", port2);

	if (connect(s, (struct sockaddr *)&echo, sizeof(echo)) != 0)
		fatal("connect:");
	if (!roundtrip(s, "relayed", "first"))
		return 1;
	if (connect(s, (struct sockaddr *)&other, sizeof(other)) != 0)
		fatal("connect 127.0.0.2:");
	if (!roundtrip(s, "excluded", "second"))
		return 1;
	/* The kernel's peer now: sendfile() is the kernel's too. */
	say_sendfile(s, "excluded-sendfile");
	return 0;
}

static int
check_dontwait(int s, struct sockaddr_in echo)
{
	struct sockaddr_in from;
	socklen_t len = sizeof(from);
	char buf[64];
	ssize_t n;

	if (sendto(s, "dontwait", 8, MSG_DONTWAIT, (struct sockaddr *)&echo, sizeof(echo)) != 8) {
		printf("dontwait %s\n", strerrorname_np(errno));
		return 1;
	}
	alarm(5);
	n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
	printf("dontwait %s\n", n == 8 && memcmp(buf, "dontwait", 8) == 0 &&
	    from.sin_port == echo.sin_port ? "ok" : n < 0 ? strerrorname_np(errno) : "bad");
	return 0;
}

static int
check_mmsg(int s, struct sockaddr_in echo)
{
	struct mmsghdr out[4], in[4];
	struct iovec ov[4], iv[4];
	struct sockaddr_in from[4];
	char data[4][32], got[4][64];
	struct pollfd p = { .fd = s, .events = POLLIN };
	int i, n, have = 0, ok = 1;

	memset(out, 0, sizeof(out));
	for (i = 0; i < 4; i++) {
		snprintf(data[i], sizeof(data[i]), "datagram %d of 4", i);
		ov[i].iov_base = data[i];
		ov[i].iov_len = strlen(data[i]);
		msg1(&out[i].msg_hdr, &echo, sizeof(echo), &ov[i]);
	}
	n = sendmmsg(s, out, 4, 0);
	if (n != 4) {
		printf("sendmmsg %s\n", n < 0 ? strerrorname_np(errno) : "short");
		return 1;
	}
	/* The four may come back in more than one batch. */
	while (have < 4 && poll(&p, 1, WAIT_MS) > 0) {
		memset(in, 0, sizeof(in));
		for (i = 0; i < 4 - have; i++) {
			iv[i].iov_base = got[have + i];
			iv[i].iov_len = sizeof(got[0]);
			msg1(&in[i].msg_hdr, &from[have + i], sizeof(from[0]), &iv[i]);
		}
		n = recvmmsg(s, in, (unsigned)(4 - have), MSG_DONTWAIT, NULL);
		if (n < 0) {
			printf("recvmmsg %s\n", strerrorname_np(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (in[i].msg_len != strlen(data[have + i]) ||
			    memcmp(got[have + i], data[have + i], in[i].msg_len) != 0 ||
			    from[have + i].sin_port != echo.sin_port)
				ok = 0;
		}
		have += n;
	}
	printf("mmsg %s (%d of 4)\n", ok && have == 4 ? "ok" : "bad", have);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in echo;
	int s;

	if (argc < 3)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	echo = addr("127.0.0.1", num_arg(argv[2], 1, 65535));
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		fatal("socket:");
	if (strcmp(argv[1], "sigwrite") == 0)
		return check_sigwrite(s, &echo);
	if (strcmp(argv[1], "vfork") == 0) {
		if (connect(s, (struct sockaddr *)&echo, sizeof(echo)) != 0)
			fatal("connect:");
		return check_vfork(s);
	}
	if (strcmp(argv[1], "unspec") == 0)
		return check_unspec(s, echo);
	if (strcmp(argv[1], "namelen0") == 0)
		return check_namelen0(s, echo);
	if (strcmp(argv[1], "framing") == 0)
		return check_framing(echo);
	if (strcmp(argv[1], "dontwait") == 0)
		return check_dontwait(s, echo);
	if (strcmp(argv[1], "mmsg") == 0)
		return check_mmsg(s, echo);
	if (strcmp(argv[1], "exclconnect") == 0 && argc == 4)
		return check_exclconnect(s, echo, num_arg(argv[3], 1, 65535));
	usage();
}
