/*
 * metrics_http.c: --metrics ADDR:PORT, the scrapes, on the main thread's
 * loop (see metrics.c for why there and what is counted).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

static struct server *metrics_workers;
static unsigned metrics_nworkers;

struct metrics_conn {
	int fd;
	struct metrics_conn *next;
	struct loop_timer timer;
	char in[SERVER_METRICS_REQUEST_MAX];
	size_t in_len;
	char *out;			/* the answer, once the request is in */
	size_t out_len, out_off;
	bool unread;			/* answered before the whole head was read */
	bool draining;			/* answer sent, FIN sent: reading to EOF */
};

static struct loop *metrics_loop;
static struct listener metrics_lst = { .fd = -1 };
static struct metrics_conn *metrics_conns;
static unsigned metrics_nconns;

static void
metrics_conn_close(struct metrics_conn *c)
{
	struct metrics_conn **pp;

	for (pp = &metrics_conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	loop_timer_stop(metrics_loop, &c->timer);
	loop_del(metrics_loop, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
	metrics_nconns--;
}

static void
metrics_on_timer(struct loop *l, void *arg)
{
	(void)l;
	metrics_conn_close(arg);
}

/* The answer to the request head in c->in: status and body into c->out;
 * status given: that one (a head we cannot read). HEAD: no body, the
 * length the body would have. */
static void
metrics_answer(struct metrics_conn *c, const char *status)
{
	struct metrics_text body = { 0 }, all = { 0 };
	bool head;

	c->in[c->in_len < sizeof(c->in) ? c->in_len : sizeof(c->in) - 1] = '\0';
	head = strncmp(c->in, "HEAD ", 5) == 0;
	if (status == NULL)
		status = metrics_request(c->in);
	if (strcmp(status, "200 OK") == 0) {
		if (metrics_render(&body, metrics_workers, metrics_nworkers) < 0)
			status = "500 Internal Server Error";
	} else {
		mt_printf(&body, "%s\n", status);
	}
	if (strncmp(status, "500", 3) == 0) {
		body.len = 0;
		body.failed = false;
		mt_printf(&body, "%s\n", status);
	}
	mt_printf(&all, "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; "
	    "charset=utf-8\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n%.*s",
	    status, body.len, strncmp(status, "405", 3) == 0 ? "Allow: GET, HEAD\r\n" : "",
	    head ? 0 : (int)body.len, body.buf != NULL ? body.buf : "");
	free(body.buf);
	c->out = all.buf;
	c->out_len = all.failed ? 0 : all.len;
	c->out_off = 0;
}

static void
metrics_on_conn(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct metrics_conn *c = arg;
	ssize_t n;

	(void)events;
	if (c->draining) {
		/* The client's last bytes, then its FIN (or the deadline). */
		while ((n = recv(fd, c->in, sizeof(c->in), 0)) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			metrics_conn_close(c);
		return;
	}
	if (c->out == NULL) {
		n = recv(fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			metrics_conn_close(c);
			return;
		}
		if (n < 0)
			return;
		c->in_len += (size_t)n;
		c->in[c->in_len] = '\0';
		if (memchr(c->in, '\0', c->in_len) != NULL) {
			metrics_answer(c, "400 Bad Request");	/* no HTTP has a NUL */
			c->unread = true;
		} else if (strstr(c->in, "\r\n\r\n") == NULL && strstr(c->in, "\n\n") == NULL) {
			if (c->in_len < sizeof(c->in) - 1)
				return;
			metrics_answer(c, "431 Request Header Fields Too Large");
			c->unread = true;
		} else {
			metrics_answer(c, NULL);
		}
		if (c->out_len == 0) {
			metrics_conn_close(c);
			return;
		}
	}
	while (c->out_off < c->out_len) {
		n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* The scraper reads slowly: the loop tells us when it has. */
			(void)loop_set(l, fd, EPOLLOUT);
			return;
		}
		if (n < 0) {
			metrics_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/* Answered before the head was all read (431, 400): a close with
	 * bytes unread is a reset, which can lose the answer on the way. Send
	 * the FIN and read to the client's, within the scrape's deadline. */
	if (c->unread && shutdown(fd, SHUT_WR) == 0 && loop_set(l, fd, EPOLLIN) == 0) {
		c->draining = true;
		return;
	}
	metrics_conn_close(c);
}

static struct loop_timer metrics_pause;

static void
metrics_on_resume(struct loop *l, void *arg)
{
	(void)arg;
	(void)loop_set(l, metrics_lst.fd, EPOLLIN);
}

static void
metrics_on_accept(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct metrics_conn *c;
	int cfd;

	(void)events;
	(void)arg;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 ||
	    errno == EINTR || errno == ECONNABORTED) {
		if (cfd < 0)
			continue;
		if (metrics_nconns == SERVER_METRICS_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(cfd);
			continue;
		}
		c->fd = cfd;
		if (loop_add(l, cfd, EPOLLIN, metrics_on_conn, c) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		if (loop_timer_start(l, &c->timer, SERVER_METRICS_TIMEOUT_MS, metrics_on_timer, c) < 0) {
			loop_del(l, cfd);
			close(cfd);
			free(c);
			continue;
		}
		c->next = metrics_conns;
		metrics_conns = c;
		metrics_nconns++;
	}
	/* No descriptor (EMFILE, ENFILE) or memory: the connection stays
	 * queued and epoll, level-triggered, would wake us at once, forever.
	 * The listener rests a while instead, as the SOCKS ones do. */
	if (errno != EAGAIN && errno != EWOULDBLOCK &&
	    loop_timer_start(l, &metrics_pause, SERVER_METRICS_PAUSE_MS, metrics_on_resume, NULL) == 0)
		(void)loop_set(l, fd, 0);
}

bool
metrics_listen(const struct config_listen *cl, struct loop *l, struct server *workers,
    unsigned n)
{
	int r;

	metrics_workers = workers;
	metrics_nworkers = n;
	metrics_loop = l;
	metrics_lst.what = "--metrics: ";
	listener_bind(&metrics_lst, cl, 1, false);
	if ((r = loop_add(l, metrics_lst.fd, EPOLLIN, metrics_on_accept, NULL)) < 0)
		log_fatal(EXIT_FAILURE, "--metrics: event loop: %s", strerror(-r));
	return listener_on_loopback(&metrics_lst);
}

const char *
metrics_name(void)
{
	return metrics_lst.name;
}

void
metrics_close(void)
{
	if (metrics_loop == NULL)
		return;		/* no --metrics */
	loop_timer_stop(metrics_loop, &metrics_pause);
	while (metrics_conns != NULL)
		metrics_conn_close(metrics_conns);
	if (metrics_lst.fd >= 0) {
		loop_del(metrics_loop, metrics_lst.fd);
		close(metrics_lst.fd);
		metrics_lst.fd = -1;
	}
}
