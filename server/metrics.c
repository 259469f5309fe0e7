/*
 * metrics.c: socksifyd's counters, and their text in Prometheus' exposition
 * format (version 0.0.4), which --metrics ADDR:PORT serves at /metrics
 * (metrics_http.c).
 *
 * Counting costs a worker a relaxed atomic add on memory only it writes
 * (struct metrics in its struct server): no lock, no cache line shared with
 * another worker, nothing to wait for. The main thread, whose event loop
 * relays nothing (signals, reloads, systemd), serves the scrapes: it reads
 * every worker's counters, sums them and answers. A worker never takes part
 * in a scrape, so a scraper that is slow, stalls or never reads cannot hold
 * up a relayed byte; on the main thread every scrape socket is non-blocking,
 * a scrape has SERVER_METRICS_TIMEOUT_MS from accept() to its last byte,
 * and at most SERVER_METRICS_CONNS are served at once (more are closed at
 * accept()).
 *
 * The request: one HTTP/1.x head of at most SERVER_METRICS_REQUEST_MAX
 * bytes; "GET /metrics" (a query string ignored) gets 200 and the text,
 * another path 404, another method 405, anything else 400; the answer
 * closes the connection. No authentication: off loopback the address needs
 * --no-auth (main.c), as a SOCKS listener without --users does. The values
 * are counts only, never a client address, user or target.
 *
 * What is counted (names start with socksifyd_): sessions open and ended by
 * command and outcome (the session log's outcome words), bytes relayed each
 * way (TCP as they move; a UDP association's when it ends), SOCKS5 replies
 * sent by code, failed logins, the handshake's latency from accept() to a
 * success reply as a histogram, UDP associations open and begun, and the
 * descriptors in use against the limit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "server.h"

#define RELAXED	memory_order_relaxed

/* Upper bounds of the histogram's buckets, µs; +Inf last. */
static const uint64_t metrics_le_us[METRICS_BUCKETS - 1] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000,
};

void
metrics_session(struct metrics *m, int delta)
{
	atomic_fetch_add_explicit(&m->active, delta, RELAXED);
}

void
metrics_session_end(struct metrics *m, const char *cmd, const char *outcome)
{
	uint32_t i, n = atomic_load_explicit(&m->noutcomes, RELAXED);
	struct metrics_outcome *o;

	for (i = 0; i < n; i++) {
		o = &m->outcome[i];
		if (strncmp(o->cmd, cmd, sizeof(o->cmd) - 1) == 0 &&
		    strncmp(o->outcome, outcome, sizeof(o->outcome) - 1) == 0) {
			atomic_fetch_add_explicit(&o->n, 1, RELAXED);
			return;
		}
	}
	if (n == SERVER_METRICS_OUTCOMES) {
		/* Full: the last entry ("other") takes the rest. */
		atomic_fetch_add_explicit(&m->outcome[n - 1].n, 1, RELAXED);
		return;
	}
	o = &m->outcome[n];
	snprintf(o->cmd, sizeof(o->cmd), "%s", n + 1 == SERVER_METRICS_OUTCOMES ? "any" : cmd);
	snprintf(o->outcome, sizeof(o->outcome), "%s",
	    n + 1 == SERVER_METRICS_OUTCOMES ? "other" : outcome);
	atomic_store_explicit(&o->n, 1, RELAXED);
	/* The reader sees the names whole once it sees the count. */
	atomic_store_explicit(&m->noutcomes, n + 1, memory_order_release);
}

void
metrics_bytes(struct metrics *m, uint64_t c2t, uint64_t t2c)
{
	if (c2t > 0)
		atomic_fetch_add_explicit(&m->c2t, c2t, RELAXED);
	if (t2c > 0)
		atomic_fetch_add_explicit(&m->t2c, t2c, RELAXED);
}

void
metrics_reply(struct metrics *m, uint8_t rep)
{
	atomic_fetch_add_explicit(&m->replies[rep <= 8 ? rep : 9], 1, RELAXED);
}

void
metrics_auth_failed(struct metrics *m)
{
	atomic_fetch_add_explicit(&m->auth_failures, 1, RELAXED);
}

void
metrics_handshake(struct metrics *m, uint64_t us)
{
	size_t b = 0;

	while (b < METRICS_BUCKETS - 1 && us > metrics_le_us[b])
		b++;
	atomic_fetch_add_explicit(&m->hs_bucket[b], 1, RELAXED);
	atomic_fetch_add_explicit(&m->hs_sum_us, us, RELAXED);
}

void
metrics_udp(struct metrics *m, int delta)
{
	atomic_fetch_add_explicit(&m->udp_active, delta, RELAXED);
	if (delta > 0)
		atomic_fetch_add_explicit(&m->udp_total, 1, RELAXED);
}

/* --- the request --------------------------------------------------------- */

const char *
metrics_request(const char *head)
{
	const char *sp = strchr(head, ' '), *path, *end;

	if (sp == NULL)
		return "400 Bad Request";
	path = sp + 1;
	end = strpbrk(path, " \r\n");
	if (path[0] != '/' || end == NULL || *end != ' ' || strncmp(end + 1, "HTTP/1.", 7) != 0)
		return "400 Bad Request";
	/* RFC 9110 §9.1: a server that has GET has HEAD. */
	if (!(sp - head == 3 && strncmp(head, "GET", 3) == 0) &&
	    !(sp - head == 4 && strncmp(head, "HEAD", 4) == 0))
		return "405 Method Not Allowed";
	if (strncmp(path, "/metrics", 8) != 0 || (path[8] != ' ' && path[8] != '?'))
		return "404 Not Found";
	return "200 OK";
}

/* --- the text ------------------------------------------------------------ */

void
mt_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	size_t want;
	char *nb;
	int n;

	if (t->buf == NULL && !t->failed) {
		if ((t->buf = malloc(4096)) == NULL) {
			t->failed = true;
			return;
		}
		t->cap = 4096;
		t->len = 0;
	}
	for (;;) {
		if (t->failed)
			return;
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		want = t->cap * 2 + (size_t)n;
		if ((nb = realloc(t->buf, want)) == NULL) {
			t->failed = true;
			return;
		}
		t->buf = nb;
		t->cap = want;
	}
}

/* A label value as the format wants it: \\, \" and \n escaped. */
static void
mt_label(struct metrics_text *t, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			mt_printf(t, "\\%c", *v);
		else if (*v == '\n')
			mt_printf(t, "\\n");
		else
			mt_printf(t, "%c", *v);
	}
}

static void
mt_head(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	mt_printf(t, "# HELP socksifyd_%s %s\n# TYPE socksifyd_%s %s\n", name, help, name, type);
}

/* Descriptors the process holds now (one of them, /proc's, not counted). */
static long
metrics_fds(void)
{
	struct dirent *e;
	long n = 0;
	DIR *d = opendir("/proc/self/fd");

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

#define SUM(field) ({ \
	uint64_t s_ = 0; \
	for (k = 0; k < metrics_nworkers; k++) \
		s_ += (uint64_t)atomic_load_explicit(&metrics_workers[k].metrics.field, RELAXED); \
	s_; })

int
metrics_render(struct metrics_text *t, struct server *metrics_workers, unsigned metrics_nworkers)
{
	static const char *const codes[10] = {
		"00", "01", "02", "03", "04", "05", "06", "07", "08", "other",
	};
	struct { const char *cmd, *outcome; uint64_t n; } seen[SERVER_METRICS_OUTCOMES * 4];
	size_t nseen = 0, i, b;
	struct rlimit rl;
	uint64_t cum;
	uint32_t j, n;
	unsigned k;
	long fds;

	mt_head(t, "sessions_active", "gauge", "Sessions open now.");
	mt_printf(t, "socksifyd_sessions_active %lld\n", (long long)(int64_t)SUM(active));
	mt_head(t, "sessions_total", "counter",
	    "Sessions ended, by command and outcome (the log's words).");
	for (k = 0; k < metrics_nworkers; k++) {
		struct metrics *m = &metrics_workers[k].metrics;

		n = atomic_load_explicit(&m->noutcomes, memory_order_acquire);
		for (j = 0; j < n && j < SERVER_METRICS_OUTCOMES; j++) {
			const char *o = m->outcome[j].outcome;
			uint64_t c = atomic_load_explicit(&m->outcome[j].n, RELAXED);

			for (i = 0; i < nseen; i++)
				if (strcmp(seen[i].cmd, m->outcome[j].cmd) == 0 &&
				    strcmp(seen[i].outcome, o) == 0)
					break;
			if (i == nseen) {
				if (nseen == sizeof(seen) / sizeof(seen[0]))
					continue;
				seen[nseen].cmd = m->outcome[j].cmd;
				seen[nseen].outcome = o;
				seen[nseen++].n = 0;
			}
			seen[i].n += c;
		}
	}
	for (i = 0; i < nseen; i++) {
		mt_printf(t, "socksifyd_sessions_total{cmd=\"");
		mt_label(t, strcmp(seen[i].cmd, "-") == 0 ? "none" : seen[i].cmd);
		mt_printf(t, "\",outcome=\"");
		mt_label(t, seen[i].outcome);
		mt_printf(t, "\"} %llu\n", (unsigned long long)seen[i].n);
	}
	mt_head(t, "bytes_total", "counter",
	    "Bytes relayed, by direction (UDP: counted when the association ends).");
	mt_printf(t, "socksifyd_bytes_total{direction=\"client_to_target\"} %llu\n",
	    (unsigned long long)SUM(c2t));
	mt_printf(t, "socksifyd_bytes_total{direction=\"target_to_client\"} %llu\n",
	    (unsigned long long)SUM(t2c));
	mt_head(t, "replies_total", "counter", "SOCKS5 replies sent, by code.");
	for (i = 0; i < 10; i++)
		mt_printf(t, "socksifyd_replies_total{code=\"%s\"} %llu\n", codes[i],
		    (unsigned long long)SUM(replies[i]));
	mt_head(t, "auth_failures_total", "counter", "Logins refused (RFC 1929).");
	mt_printf(t, "socksifyd_auth_failures_total %llu\n",
	    (unsigned long long)SUM(auth_failures));
	mt_head(t, "handshake_seconds", "histogram",
	    "From accept() to the success reply (CONNECT, BIND's first, UDP ASSOCIATE).");
	for (b = 0, cum = 0; b < METRICS_BUCKETS; b++) {
		cum += SUM(hs_bucket[b]);
		if (b < METRICS_BUCKETS - 1)
			mt_printf(t, "socksifyd_handshake_seconds_bucket{le=\"%g\"} %llu\n",
			    (double)metrics_le_us[b] / 1e6, (unsigned long long)cum);
		else
			mt_printf(t, "socksifyd_handshake_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	mt_printf(t, "socksifyd_handshake_seconds_sum %.6f\n", (double)SUM(hs_sum_us) / 1e6);
	/* The buckets' sum, so that a scrape amid an update stays whole. */
	mt_printf(t, "socksifyd_handshake_seconds_count %llu\n", (unsigned long long)cum);
	mt_head(t, "udp_associations_active", "gauge", "UDP associations open now.");
	mt_printf(t, "socksifyd_udp_associations_active %lld\n",
	    (long long)(int64_t)SUM(udp_active));
	mt_head(t, "udp_associations_total", "counter", "UDP associations begun.");
	mt_printf(t, "socksifyd_udp_associations_total %llu\n",
	    (unsigned long long)SUM(udp_total));
	if ((fds = metrics_fds()) >= 0) {
		mt_head(t, "open_fds", "gauge", "Descriptors in use.");
		mt_printf(t, "socksifyd_open_fds %ld\n", fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		mt_head(t, "max_fds", "gauge", "Descriptors allowed (RLIMIT_NOFILE).");
		mt_printf(t, "socksifyd_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	mt_head(t, "workers", "gauge", "Event loops relaying.");
	mt_printf(t, "socksifyd_workers %u\n", metrics_nworkers);
	return t->failed ? -ENOMEM : 0;
}

