/*
 * relay.h: moving bytes between the client and the target, both ways.
 *
 * Each direction is a pipe with one buffer of SERVER_RELAY_BUF_BYTES that
 * exists only while it holds bytes: memory of ours (read() and send()), or
 * with --relay splice a kernel pipe that splice(2) fills from one socket
 * and drains into the other, so the bytes never come up to us. Both paths
 * sit behind the same calls; a pipe that cannot be had (EMFILE) falls back
 * to a copy. A side is read only while its pipe is
 * empty, so a peer that does not drain stops us reading the other side
 * (back-pressure). An EOF is passed on as shutdown(SHUT_WR) once the pipe
 * is drained, each direction on its own (half-close).
 */
#ifndef SOCKSIFYD_RELAY_H
#define SOCKSIFYD_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_pipe {
	uint8_t *buf;			/* NULL while empty */
	size_t off, len;		/* pending bytes are buf[off..len), or
					 * len - off bytes in the kernel pipe */
	bool spliced;			/* kpipe is open (--relay splice) */
	bool grow_tried;		/* growing kpipe was tried (relay.c) */
	int kpipe[2];			/* read, write end; only while spliced */
	size_t kcap;			/* bytes a splice into kpipe may move:
					 * above SERVER_SPLICE_BYTES once grown */
	bool eof;			/* the source sent FIN */
	bool shut;			/* FIN passed on: this direction is done */
	bool first;			/* ... before the other direction's EOF */
	bool bulk;			/* the last read was of a stream in flow */
	bool full;			/* ... and filled the pipe (all but an
					 * eighth) or our whole buffer */
	bool small_pipes;		/* kernel pipes come small: auto copies */
	uint64_t bytes;			/* written to the sink so far */
};

struct relay {
	int cfd, tfd;			/* client, target; -1 when not open */
	bool splice;			/* move bytes with splice(2), not copies */
	bool splice_bulk;		/* ... only in a direction whose last read
					 * filled its buffer (--relay auto) */
	struct relay_pipe up;		/* client -> target */
	struct relay_pipe down;		/* target -> client */
};

/* Bytes waiting in p. */
static inline size_t relay_pending(const struct relay_pipe *p) { return p->len - p->off; }

/* How many kernel pipes --relay splice may hold open at once, in all;
 * beyond, a direction copies. 0 until set. */
void relay_set_pipes_max(long n);
/* How many of them are grown for a stream in flow now, kept ones
 * included (tests). */
long relay_big_pipes(void);
/* Is p's kernel pipe one of those? */
bool relay_pipe_grown(const struct relay_pipe *p);
/* Closes the empty kernel pipes this thread keeps for its next streams
 * (relay.c): when its worker has no session left. */
void relay_cache_close(void);
/* How many this thread keeps now (tests). */
int relay_cache_count(void);
/* Makes sure p has its buffer; 0 or -ENOMEM. */
int relay_pipe_alloc(struct relay_pipe *p);
/* Appends n bytes to p (allocating it); 0, or -ENOBUFS when they do not fit. */
int relay_pipe_put(struct relay_pipe *p, const void *data, size_t n);
/* Reads from fd into the free room of p, through a kernel pipe with splice
 * when asked and one can be had (grown, when p's last read was of a stream
 * in flow and the budget allows): bytes read, 0 on EOF, -errno (-EAGAIN
 * when nothing is there). An empty p holds nothing afterwards. */
long relay_pipe_fill(struct relay_pipe *p, int fd, bool splice);
/* Writes p's pending bytes to fd and frees the buffer once empty: 0 when
 * drained, -EAGAIN when bytes remain, other -errno on failure. */
int relay_pipe_flush(struct relay_pipe *p, int fd);
void relay_pipe_free(struct relay_pipe *p);

/* Which sockets epoll said are readable (or hung up): only those are read. */
enum {
	RELAY_READ_CLIENT = 1,
	RELAY_READ_TARGET = 2,
	RELAY_READ_BOTH = RELAY_READ_CLIENT | RELAY_READ_TARGET,
};

/*
 * Does what readiness allows in both directions: pending bytes are
 * flushed either way, and the sides in `readable` are read. 0 while
 * relaying, 1 when both directions are done, -errno on an error or reset.
 * *moved tells whether any byte moved (for the idle timer).
 */
int relay_step(struct relay *r, int readable, bool *moved);
/*
 * A relay that failed (relay_step() < 0: a reset, a timeout, a write that
 * cannot be made): both sockets are closed with a reset, never a FIN, so
 * the side still there learns its stream was cut, as it would have from
 * the other end directly, and a cut stream never looks complete.
 */
void relay_abort(struct relay *r);
/*
 * Closes the target socket of a relay that is done, without leaving it in
 * TIME_WAIT when that is safe: we sent the first FIN (the client closed
 * first), the target's FIN came back, and every byte of ours has been
 * acknowledged. Otherwise a plain close().
 */
void relay_close_target(struct relay *r);
/* The epoll interest of each socket in the current relay state. */
void relay_masks(const struct relay *r, uint32_t *cmask, uint32_t *tmask);

#endif
