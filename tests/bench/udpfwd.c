/*
 * udpfwd: the least a UDP relay can do, as a yardstick for the UDP figure
 * of make bench (scripts/bench_udp.sh). No SOCKS, no header, no check:
 *
 *	udpfwd -t HOST:PORT [-T SECONDS]
 *
 * binds a UDP socket on the same loopback host, port 0, and prints
 * "udpfwd: on HOST:PORT". What arrives there goes to -t from a second
 * socket, connected to it; what comes back on that one goes to whoever
 * sent last. Two threads, each a blocking recv and a send a datagram: two
 * system calls a hop and a wakeup, where a relay that multiplexes many
 * associations pays a readiness wait too. udpbench --direct pointed at it
 * measures what a process in the middle costs by itself, so a relay's
 * ratio to direct can be read against this one's.
 *
 * Ends by SIGTERM, or -T SECONDS (default 60) at the latest (SIGALRM).
 * Loopback only.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#define BENCH_NAME "udpfwd"
#define BENCH_USAGE "udpfwd -t HOST:PORT [-T SECONDS]"
#include "bench.h"

enum {
	DGRAM_BUF = 65536,
	SECONDS_MAX = 86400,
};

static int client_side, target_side;
/* The last sender, packed (port << 32 | IPv4 address, both network order)
 * so the other thread reads it whole; 0: nobody yet. IPv4 only. */
static _Atomic uint64_t last_sender;

static void *
upstream(void *arg)
{
	static char buf[DGRAM_BUF];
	struct sockaddr_in from;
	socklen_t len;
	ssize_t n;

	(void)arg;
	for (;;) {
		len = sizeof(from);
		n = recvfrom(client_side, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
		if (n < 0 || len != sizeof(from))
			continue;
		atomic_store_explicit(&last_sender, (uint64_t)from.sin_port << 32 |
		    from.sin_addr.s_addr, memory_order_relaxed);
		(void)send(target_side, buf, (size_t)n, 0);
	}
	return NULL;
}

static void *
downstream(void *arg)
{
	static char buf[DGRAM_BUF];
	struct sockaddr_in to = { .sin_family = AF_INET };
	uint64_t who;
	ssize_t n;

	(void)arg;
	for (;;) {
		n = recv(target_side, buf, sizeof(buf), 0);
		who = atomic_load_explicit(&last_sender, memory_order_relaxed);
		if (n < 0 || who == 0)
			continue;
		to.sin_port = (in_port_t)(who >> 32);
		to.sin_addr.s_addr = (in_addr_t)who;
		(void)sendto(client_side, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to));
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "target", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_storage target, me;
	struct sockaddr_in *sin = (struct sockaddr_in *)&me;
	struct s5_addr a;
	char text[S5_ADDR_TEXT_MAX];
	unsigned long deadline = 60;
	socklen_t tlen = 0, mlen;
	pthread_t t;
	int c, err;

	while ((c = getopt_long(argc, argv, "t:T:", longopts, NULL)) != -1) {
		switch (c) {
		case 't': tlen = loopback_addr(optarg, &target, &a); break;
		case 'T': deadline = count_arg(optarg, 1, SECONDS_MAX, "-T"); break;
		default: usage("unknown option");
		}
	}
	if (tlen == 0 || optind != argc)
		usage("-t HOST:PORT is required");
	if (target.ss_family != AF_INET)
		usage("IPv4 only");
	memcpy(&me, &target, sizeof(me));
	sin->sin_port = 0;
	if ((client_side = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    (target_side = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		fail("socket", errno);
	if (bind(client_side, (struct sockaddr *)&me, sizeof(*sin)) != 0)
		fail("bind", errno);
	if (connect(target_side, (struct sockaddr *)&target, tlen) != 0)
		fail("connect", errno);
	mlen = sizeof(me);
	if (getsockname(client_side, (struct sockaddr *)&me, &mlen) != 0 ||
	    s5_addr_from_sockaddr(&a, (struct sockaddr *)&me, mlen) != 0 ||
	    s5_addr_format(&a, text, sizeof(text)) < 0)
		fail("getsockname", errno);
	alarm((unsigned)deadline);
	if ((err = pthread_create(&t, NULL, upstream, NULL)) != 0 ||
	    (err = pthread_create(&t, NULL, downstream, NULL)) != 0)
		fail("pthread_create", err);
	printf("udpfwd: on %s\n", text);
	fflush(stdout);
	/* SIGTERM's default action (or -T's SIGALRM) is the way out. */
	for (;;)
		pause();
}
