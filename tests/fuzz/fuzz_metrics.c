/*
 * fuzz_metrics.c: the head of a scrape's request (server/metrics.c's
 * metrics_request()), the bytes anyone who reaches --metrics sends.
 *
 * Checked: the answer is one of the four status lines; 200 only for a
 * head that starts "GET /metrics" followed by a blank or a query, a path
 * and "HTTP/1."; and the counters' text, rendered for two idle workers,
 * is the same whatever came before (the request never reaches it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "metrics.h"
#include "server.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct server workers[2];
	struct metrics_text t = { 0 };
	char head[SERVER_METRICS_REQUEST_MAX];
	const char *st;
	size_t n = size < sizeof(head) - 1 ? size : sizeof(head) - 1;

	memcpy(head, data, n);
	head[n] = '\0';
	st = metrics_request(head);
	FUZZ_CHECK(strcmp(st, "200 OK") == 0 || strcmp(st, "400 Bad Request") == 0 ||
	    strcmp(st, "404 Not Found") == 0 || strcmp(st, "405 Method Not Allowed") == 0);
	if (strcmp(st, "200 OK") == 0)
		FUZZ_CHECK(strncmp(head, "GET /metrics", 12) == 0 &&
		    (head[12] == ' ' || head[12] == '?') && strstr(head, " HTTP/1.") != NULL);
	metrics_session_end(&workers[n % 2].metrics, "connect", head);
	FUZZ_CHECK(metrics_render(&t, workers, 2) == 0);
	FUZZ_CHECK(t.len > 0 && strstr(t.buf, "socksifyd_sessions_active 0\n") != NULL);
	free(t.buf);
	return 0;
}
