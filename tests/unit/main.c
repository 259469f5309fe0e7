/*
 * main.c: the unit-test runner. "unit-tests [AREA...]" runs the named areas
 * (all by default); the last line is always "N passed, N failed" and the exit
 * status is 0 only when nothing failed.
 */
#include <stdio.h>

#include "unit.h"

static const struct {
	const char *name;
	void (*fn)(void);
} unit_areas[] = {
	{ "greeting", test_greeting },
	{ "auth", test_auth },
	{ "request", test_request },
	{ "reply", test_reply },
	{ "udp", test_udp },
	{ "addr", test_addr },
	{ "cidr", test_cidr },
	{ "url", test_url },
	{ "client", test_client },
	{ "errno", test_errno },
	{ "dns", test_dns },
	{ "proxyproto", test_proxyproto },
	{ "relay", test_relay },
};

static unsigned long unit_passed, unit_failed;	/* checks */
static unsigned long cases_passed, cases_failed;

void
unit_run(const char *name, void (*fn)(void))
{
	unsigned long before = unit_failed;

	fn();
	if (unit_failed == before) {
		cases_passed++;
	} else {
		cases_failed++;
		printf("FAIL: %s (%lu failed checks)\n", name, unit_failed - before);
	}
}

bool
unit_check(bool ok, const char *expr, const char *file, int line)
{
	if (ok) {
		unit_passed++;
		return true;
	}
	unit_failed++;
	printf("%s:%d: FAIL: %s\n", file, line, expr);
	return false;
}

bool
unit_check_int(long long got, long long want, const char *expr,
    const char *file, int line)
{
	if (got == want) {
		unit_passed++;
		return true;
	}
	unit_failed++;
	printf("%s:%d: FAIL: %s (got %lld, want %lld)\n", file, line, expr,
	    got, want);
	return false;
}

bool
unit_check_str(const char *got, const char *want, const char *expr,
    const char *file, int line)
{
	if (got != NULL && want != NULL && strcmp(got, want) == 0) {
		unit_passed++;
		return true;
	}
	unit_failed++;
	printf("%s:%d: FAIL: %s (got \"%s\", want \"%s\")\n", file, line, expr,
	    got != NULL ? got : "(null)", want != NULL ? want : "(null)");
	return false;
}

bool
unit_check_mem(const void *got, const void *want, size_t n, const char *expr,
    const char *file, int line)
{
	if (memcmp(got, want, n) == 0) {
		unit_passed++;
		return true;
	}
	unit_failed++;
	printf("%s:%d: FAIL: %s (%zu bytes differ)\n", file, line, expr, n);
	return false;
}

int
main(int argc, char **argv)
{
	size_t i;
	int j;
	bool run;

	for (i = 0; i < sizeof(unit_areas) / sizeof(unit_areas[0]); i++) {
		run = argc < 2;
		for (j = 1; j < argc; j++)
			if (strcmp(argv[j], unit_areas[i].name) == 0)
				run = true;
		if (run)
			unit_areas[i].fn();
	}
	printf("%lu checks: %lu passed, %lu failed\n", unit_passed + unit_failed,
	    unit_passed, unit_failed);
	printf("%lu passed, %lu failed\n", cases_passed, cases_failed);
	return unit_failed == 0 && cases_failed == 0 ? 0 : 1;
}
