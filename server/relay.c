/*
 * relay.c: a plain read()/send() copy relay with back-pressure and
 * half-close. Every socket is non-blocking; epoll is level triggered, so one
 * read per wakeup is enough and a short write just waits for EPOLLOUT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "defaults.h"
#include "relay.h"

int
relay_pipe_alloc(struct relay_pipe *p)
{
	if (p->buf == NULL && (p->buf = malloc(SERVER_RELAY_BUF_BYTES)) == NULL)
		return -ENOMEM;
	return 0;
}

void
relay_pipe_free(struct relay_pipe *p)
{
	free(p->buf);
	p->buf = NULL;
	p->off = p->len = 0;
}

int
relay_pipe_put(struct relay_pipe *p, const void *data, size_t n)
{
	int r;

	if ((r = relay_pipe_alloc(p)) < 0)
		return r;
	if (n > SERVER_RELAY_BUF_BYTES - p->len)
		return -ENOBUFS;
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	return 0;
}

long
relay_pipe_fill(struct relay_pipe *p, int fd)
{
	ssize_t n;
	int r;

	if ((r = relay_pipe_alloc(p)) < 0)
		return r;
	if (p->len == SERVER_RELAY_BUF_BYTES)
		return -ENOBUFS;
	do {
		n = read(fd, p->buf + p->len, SERVER_RELAY_BUF_BYTES - p->len);
	} while (n == -1 && errno == EINTR);
	if (n == -1) {
		r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		/* Do not hold a buffer for a side that had nothing to say. */
		if (p->len == 0)
			relay_pipe_free(p);
		return r;
	}
	if (n == 0 && p->len == 0)
		relay_pipe_free(p);
	p->len += (size_t)n;
	return (long)n;
}

int
relay_pipe_flush(struct relay_pipe *p, int fd)
{
	while (relay_pending(p) > 0) {
		/* MSG_NOSIGNAL: a peer gone away is EPIPE here, not SIGPIPE. */
		ssize_t n = send(fd, p->buf + p->off, relay_pending(p), MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		p->off += (size_t)n;
		p->bytes += (uint64_t)n;
	}
	relay_pipe_free(p);
	return 0;
}

/* One direction: flush what is pending, read more when empty, pass on FIN. */
static int
relay_direction(struct relay_pipe *p, int src, int dst, bool *moved)
{
	int r;

	if (relay_pending(p) > 0) {
		uint64_t before = p->bytes;

		r = relay_pipe_flush(p, dst);
		*moved |= p->bytes != before;
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
	}
	if (!p->eof) {
		long n = relay_pipe_fill(p, src);

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0) {
			p->eof = true;
		} else {
			*moved = true;
			r = relay_pipe_flush(p, dst);
			if (r < 0 && r != -EAGAIN)
				return r;
		}
	}
	if (p->eof && relay_pending(p) == 0 && !p->shut) {
		/*
		 * Half-close: the source will send no more, so tell the sink,
		 * and keep relaying the other way. ENOTCONN only means the
		 * sink is gone already; its own direction will report that.
		 */
		(void)shutdown(dst, SHUT_WR);
		p->shut = true;
	}
	return 0;
}

int
relay_step(struct relay *r, bool *moved)
{
	int e;

	*moved = false;
	if ((e = relay_direction(&r->up, r->cfd, r->tfd, moved)) < 0)
		return e;
	if ((e = relay_direction(&r->down, r->tfd, r->cfd, moved)) < 0)
		return e;
	return r->up.shut && r->down.shut ? 1 : 0;
}

void
relay_masks(const struct relay *r, uint32_t *cmask, uint32_t *tmask)
{
	*cmask = *tmask = 0;
	if (!r->up.eof && relay_pending(&r->up) == 0)
		*cmask |= EPOLLIN;
	if (relay_pending(&r->down) > 0)
		*cmask |= EPOLLOUT;
	if (!r->down.eof && relay_pending(&r->down) == 0)
		*tmask |= EPOLLIN;
	if (relay_pending(&r->up) > 0)
		*tmask |= EPOLLOUT;
}
