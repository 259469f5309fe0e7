/*
 * test_relay.c: socksifyd's splice relay (server/relay.c) on real loopback
 * TCP sockets: a stream in flow moves through a grown kernel pipe, more
 * than the default 64 KiB a splice, every byte intact; a paced stream's
 * pipe is never grown; the budget of grown pipes holds, and a freed pipe
 * gives its place back. Where this kernel or user cannot grow a pipe (big
 * pages, past fs.pipe-user-pages-soft), the growth checks say so and
 * only check that nothing grew. A pipe freed empty is kept for the next
 * fill, one with a byte in it never.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../server/relay.h"
#include "defaults.h"
#include "unit.h"

enum { STREAM_BYTES = 4 << 20, ROUNDS_MAX = 100000 };

/* A connected pair of loopback TCP sockets, both non-blocking: 0 or -1. */
static int
tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fds[0] = fds[1] = -1;
	if (l == -1)
		return -1;
	if (bind(l, (struct sockaddr *)&a, sizeof a) == -1 || listen(l, 1) == -1 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) == -1 ||
	    (fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fds[0], (struct sockaddr *)&a, sizeof a) == -1 ||
	    (fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) == -1) {
		close(l);
		return -1;
	}
	close(l);
	return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

/*
 * Can a pipe be grown here at all? Not with pages of 16 KiB or more (the
 * default pipe is that big already) nor when the kernel refuses.
 */
static bool
relay_can_grow(void)
{
	long page = sysconf(_SC_PAGESIZE);
	int fds[2];
	bool yes;

	char text[32] = "";
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");

	/* The relay grows no further than pipe-max-size, which root may pass. */
	if (f != NULL) {
		if (fgets(text, sizeof text, f) != NULL && strtol(text, NULL, 10) <= 16 * page) {
			fclose(f);
			printf("relay: pipe-max-size %s leaves no room to grow a pipe: growth not checked\n",
			    text);
			return false;
		}
		fclose(f);
	}
	if (page <= 0 || 16 * page >= SERVER_SPLICE_BIG_BYTES || pipe2(fds, O_CLOEXEC) == -1)
		return false;
	yes = fcntl(fds[0], F_SETPIPE_SZ, SERVER_SPLICE_BIG_BYTES) >= SERVER_SPLICE_BIG_BYTES;
	close(fds[0]);
	close(fds[1]);
	if (!yes)
		printf("relay: this kernel or user cannot grow a pipe to %d bytes: growth not checked\n",
		    SERVER_SPLICE_BIG_BYTES);
	return yes;
}

/* The byte at offset i of the test stream. */
static uint8_t
stream_byte(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

/*
 * STREAM_BYTES from a writer, through p by splice, to a reader, checked byte
 * for byte; the most one fill moved goes to *most. True when every byte
 * arrived intact.
 */
static bool
relay_stream(struct relay_pipe *p, size_t chunk, size_t *most)
{
	int in[2], out[2];
	uint8_t buf[65536];
	size_t sent = 0, got = 0, rounds;
	bool intact = true;
	int r;

	*most = 0;
	if (!CHECK(tcp_pair(in) == 0 && tcp_pair(out) == 0))
		return false;
	for (rounds = 0; got < STREAM_BYTES && rounds < ROUNDS_MAX; rounds++) {
		ssize_t n;
		long moved;
		size_t i;

		/* The writer fills what the socket takes, or one chunk a round
		 * once the reader has all before it. */
		while (sent < STREAM_BYTES && (chunk == 0 || sent == got)) {
			size_t len = STREAM_BYTES - sent < sizeof buf ? STREAM_BYTES - sent : sizeof buf;

			if (chunk != 0 && len > chunk)
				len = chunk;
			for (i = 0; i < len; i++)
				buf[i] = stream_byte(sent + i);
			if ((n = send(in[0], buf, len, MSG_NOSIGNAL)) <= 0)
				break;
			sent += (size_t)n;
		}
		if (relay_pending(p) == 0) {
			moved = relay_pipe_fill(p, in[1], true);
			if (moved > 0 && (size_t)moved > *most)
				*most = (size_t)moved;
			if (moved < 0 && moved != -EAGAIN)
				break;
		}
		if (relay_pending(p) > 0 && (r = relay_pipe_flush(p, out[0])) < 0 && r != -EAGAIN)
			break;
		while ((n = recv(out[1], buf, sizeof buf, 0)) > 0) {
			for (i = 0; i < (size_t)n; i++)
				intact &= buf[i] == stream_byte(got + i);
			got += (size_t)n;
		}
	}
	CHECK_INT(got, STREAM_BYTES);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
	return intact && got == STREAM_BYTES;
}

/* A stream in flow gets a grown pipe: one splice moves more than 64 KiB. */
static void
relay_grown_pipe(void)
{
	struct relay_pipe p = { .kpipe = { -1, -1 } };
	size_t most;

	relay_set_pipes_max(8);
	CHECK(relay_stream(&p, 0, &most));
	if (relay_can_grow())
		CHECK(most > SERVER_SPLICE_BYTES);
	CHECK(most <= SERVER_SPLICE_BIG_BYTES);
	relay_pipe_free(&p);
	/* Kept for the next stream, at its size, until the worker ends. */
	CHECK_INT(relay_cache_count(), 1);
	CHECK_INT(relay_big_pipes(), relay_can_grow() ? 1 : 0);
	relay_cache_close();
	CHECK_INT(relay_cache_count(), 0);
	CHECK_INT(relay_big_pipes(), 0);
}

/* A stream paced below a pipe's worth a read never pays for a bigger one. */
static void
relay_paced_not_grown(void)
{
	struct relay_pipe p = { .kpipe = { -1, -1 } };
	size_t most;

	relay_set_pipes_max(8);
	CHECK(relay_stream(&p, 48 << 10, &most));
	CHECK_INT(most, 48 << 10);
	CHECK(!relay_pipe_grown(&p));
	CHECK_INT(relay_big_pipes(), 0);
	relay_pipe_free(&p);
	relay_cache_close();
}

/* No pipe may be had (the budget is 0): the same stream, by copy. */
static void
relay_copied_without_pipes(void)
{
	struct relay_pipe p = { .kpipe = { -1, -1 } };
	size_t most;

	relay_set_pipes_max(0);
	CHECK(relay_stream(&p, 0, &most));
	CHECK(most <= SERVER_RELAY_BUF_BYTES);
	CHECK_INT(relay_big_pipes(), 0);
	CHECK_INT(relay_cache_count(), 0);
	relay_pipe_free(&p);
}

/*
 * A pipe freed empty is kept and taken by the next fill, its descriptors
 * and size with it: no pipe2(). One that holds a byte, whatever the
 * counts say, is closed; none is kept past half the budget, a pipe freed
 * past it gives back the kept ones, and a budget that shrank below them
 * closes them rather than use them.
 */
static void
relay_kept_pipes(void)
{
	struct relay_pipe a = { .kpipe = { -1, -1 } }, b = { .kpipe = { -1, -1 } };
	struct relay_pipe c3 = { .kpipe = { -1, -1 } };
	int in[2], kept[2], sink[2], i;
	char c;

	relay_set_pipes_max(8);
	if (!CHECK(tcp_pair(in) == 0))
		return;
	CHECK_INT(send(in[0], "a", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&a, in[1], true), 1);
	CHECK(a.spliced);
	kept[0] = a.kpipe[0];
	kept[1] = a.kpipe[1];
	if (CHECK(tcp_pair(sink) == 0)) {
		CHECK_INT(relay_pipe_flush(&a, sink[0]), 0);
		CHECK_INT(recv(sink[1], &c, 1, 0), 1);
		CHECK_INT(c, 'a');
		close(sink[0]);
		close(sink[1]);
	}
	CHECK(!a.spliced);	/* not a stream in flow: freed once drained */
	CHECK_INT(relay_cache_count(), 1);
	CHECK_INT(send(in[0], "b", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&b, in[1], true), 1);
	CHECK(b.spliced && b.kpipe[0] == kept[0] && b.kpipe[1] == kept[1]);
	CHECK_INT(relay_cache_count(), 0);

	/* A byte the counts do not know of: never handed on. */
	CHECK_INT(write(b.kpipe[1], "x", 1), 1);
	b.off = b.len;
	relay_pipe_free(&b);
	CHECK_INT(relay_cache_count(), 0);
	CHECK(fcntl(kept[0], F_GETFD) == -1 && errno == EBADF);

	/* Budget 4, three open: the first freed leaves 3 open (more than
	 * half) and is closed, the second leaves 2 and is kept. */
	relay_set_pipes_max(4);
	for (i = 0; i < 3; i++) {
		struct relay_pipe *p = i == 0 ? &a : i == 1 ? &b : &c3;
		char buf[4];

		CHECK_INT(send(in[0], "cd", 2, 0), 2);
		CHECK_INT(relay_pipe_fill(p, in[1], true), 2);
		CHECK(p->spliced);
		CHECK(read(p->kpipe[0], buf, sizeof buf) == 2);	/* emptied */
		p->off = p->len;	/* ... as a flush would count it */
	}
	relay_pipe_free(&a);
	CHECK_INT(relay_cache_count(), 0);
	relay_pipe_free(&b);
	CHECK_INT(relay_cache_count(), 1);
	/* A reload shrinks the budget to 2: the next pipe freed finds 2 open,
	 * more than half, and the kept one goes back with it. */
	relay_set_pipes_max(2);
	relay_pipe_free(&c3);
	CHECK_INT(relay_cache_count(), 0);
	relay_set_pipes_max(2);
	CHECK_INT(send(in[0], "e", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&b, in[1], true), 1);
	CHECK(b.spliced);
	b.off = b.len;
	CHECK_INT(read(b.kpipe[0], &c, 1), 1);
	relay_pipe_free(&b);
	CHECK_INT(relay_cache_count(), 1);

	/* No budget now: the kept pipe is closed, the fill copies. */
	relay_set_pipes_max(0);
	CHECK_INT(send(in[0], "f", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&a, in[1], true), 1);
	CHECK(!a.spliced);
	CHECK_INT(relay_cache_count(), 0);
	relay_pipe_free(&a);
	close(in[0]);
	close(in[1]);
}

/*
 * At most SERVER_SPLICE_BIG_PIPES pipes are grown at once: the next stays
 * at its default size until one is freed; a pipe whose last read did not
 * fill it is never grown. Each pipe here is told its last read filled it.
 */
static void
relay_big_budget(void)
{
	static struct relay_pipe ps[SERVER_SPLICE_BIG_PIPES + 1];
	struct relay_pipe quiet = { .kpipe = { -1, -1 } };
	int in[2], i;

	if (!relay_can_grow())
		return;
	relay_set_pipes_max(SERVER_SPLICE_BIG_PIPES + 2);
	if (!CHECK(tcp_pair(in) == 0))
		return;
	for (i = 0; i <= SERVER_SPLICE_BIG_PIPES; i++) {
		ps[i] = (struct relay_pipe){ .kpipe = { -1, -1 }, .full = true };
		CHECK_INT(send(in[0], "x", 1, 0), 1);
		CHECK_INT(relay_pipe_fill(&ps[i], in[1], true), 1);
		CHECK(ps[i].spliced);
		CHECK(relay_pipe_grown(&ps[i]) == (i < SERVER_SPLICE_BIG_PIPES));
	}
	CHECK_INT(relay_big_pipes(), SERVER_SPLICE_BIG_PIPES);
	CHECK(ps[0].kcap > SERVER_SPLICE_BYTES && ps[0].kcap <= SERVER_SPLICE_BIG_BYTES);
	CHECK_INT(fcntl(ps[0].kpipe[0], F_GETPIPE_SZ), (long)ps[0].kcap);
	CHECK_INT(fcntl(ps[SERVER_SPLICE_BIG_PIPES].kpipe[0], F_GETPIPE_SZ), 16 * sysconf(_SC_PAGESIZE));

	relay_pipe_free(&ps[0]);	/* not kept: past half the grown budget */
	CHECK_INT(relay_cache_count(), 0);
	CHECK_INT(relay_big_pipes(), SERVER_SPLICE_BIG_PIPES - 1);
	CHECK_INT(send(in[0], "y", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&quiet, in[1], true), 1);
	CHECK(quiet.spliced && !relay_pipe_grown(&quiet));
	relay_pipe_free(&quiet);
	relay_cache_close();
	ps[0] = (struct relay_pipe){ .kpipe = { -1, -1 }, .full = true };
	CHECK_INT(send(in[0], "z", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&ps[0], in[1], true), 1);
	CHECK(relay_pipe_grown(&ps[0]));

	for (i = 0; i <= SERVER_SPLICE_BIG_PIPES; i++)
		relay_pipe_free(&ps[i]);
	relay_cache_close();
	CHECK_INT(relay_big_pipes(), 0);
	close(in[0]);
	close(in[1]);
}

void
test_relay(void)
{
	UNIT_RUN(relay_grown_pipe);
	UNIT_RUN(relay_paced_not_grown);
	UNIT_RUN(relay_copied_without_pipes);
	UNIT_RUN(relay_kept_pipes);
	UNIT_RUN(relay_big_budget);
}
