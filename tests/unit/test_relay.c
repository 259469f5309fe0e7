/*
 * test_relay.c: socksifyd's splice relay (server/relay.c) on real loopback
 * TCP sockets: a stream in flow moves through a grown kernel pipe, more
 * than the default 64 KiB a splice, every byte intact; the budget of grown
 * pipes holds, and a freed pipe gives its place back.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
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
relay_stream(struct relay_pipe *p, size_t *most)
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

		/* The writer fills what the socket takes. */
		while (sent < STREAM_BYTES) {
			size_t len = STREAM_BYTES - sent < sizeof buf ? STREAM_BYTES - sent : sizeof buf;

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
	CHECK(relay_stream(&p, &most));
	CHECK(most > SERVER_SPLICE_BYTES);
	CHECK(most <= SERVER_SPLICE_BIG_BYTES);
	relay_pipe_free(&p);
	CHECK_INT(relay_big_pipes(), 0);
}

/* No pipe may be had (the budget is 0): the same stream, by copy. */
static void
relay_copied_without_pipes(void)
{
	struct relay_pipe p = { .kpipe = { -1, -1 } };
	size_t most;

	relay_set_pipes_max(0);
	CHECK(relay_stream(&p, &most));
	CHECK(most <= SERVER_RELAY_BUF_BYTES);
	CHECK_INT(relay_big_pipes(), 0);
	relay_pipe_free(&p);
}

/*
 * At most SERVER_SPLICE_BIG_PIPES pipes are grown at once: the next stays
 * at its default size until one is freed; a pipe whose last read was not
 * in flow is never grown.
 */
static void
relay_big_budget(void)
{
	static struct relay_pipe ps[SERVER_SPLICE_BIG_PIPES + 1];
	struct relay_pipe quiet = { .kpipe = { -1, -1 } };
	int in[2], i;

	relay_set_pipes_max(SERVER_SPLICE_BIG_PIPES + 2);
	if (!CHECK(tcp_pair(in) == 0))
		return;
	for (i = 0; i <= SERVER_SPLICE_BIG_PIPES; i++) {
		ps[i] = (struct relay_pipe){ .kpipe = { -1, -1 }, .bulk = true };
		CHECK_INT(send(in[0], "x", 1, 0), 1);
		CHECK_INT(relay_pipe_fill(&ps[i], in[1], true), 1);
		CHECK(ps[i].spliced);
		CHECK(ps[i].big == (i < SERVER_SPLICE_BIG_PIPES));
	}
	CHECK_INT(relay_big_pipes(), SERVER_SPLICE_BIG_PIPES);
	CHECK_INT(fcntl(ps[0].kpipe[0], F_GETPIPE_SZ), SERVER_SPLICE_BIG_BYTES);
	CHECK_INT(fcntl(ps[SERVER_SPLICE_BIG_PIPES].kpipe[0], F_GETPIPE_SZ), SERVER_SPLICE_BYTES);

	relay_pipe_free(&ps[0]);
	CHECK_INT(relay_big_pipes(), SERVER_SPLICE_BIG_PIPES - 1);
	CHECK_INT(send(in[0], "y", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&quiet, in[1], true), 1);
	CHECK(quiet.spliced && !quiet.big);
	relay_pipe_free(&quiet);
	ps[0] = (struct relay_pipe){ .kpipe = { -1, -1 }, .bulk = true };
	CHECK_INT(send(in[0], "z", 1, 0), 1);
	CHECK_INT(relay_pipe_fill(&ps[0], in[1], true), 1);
	CHECK(ps[0].big);

	for (i = 0; i <= SERVER_SPLICE_BIG_PIPES; i++)
		relay_pipe_free(&ps[i]);
	CHECK_INT(relay_big_pipes(), 0);
	close(in[0]);
	close(in[1]);
}

void
test_relay(void)
{
	UNIT_RUN(relay_grown_pipe);
	UNIT_RUN(relay_copied_without_pipes);
	UNIT_RUN(relay_big_budget);
}
