/*
 * fuzz_config.c: socksifyd config files (server/config.c), through the
 * daemon's own path: "--config FILE" read by config_parse_args() and
 * applied by config_build(), with FILE a memfd holding the input.
 *
 * Checked: a refused file gives one line "FILE:LINE: reason" naming a line
 * the file has, and the lines before it build; a file that builds gives
 * limits inside the bounds the options promise.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "config.h"
#include "log.h"

#define FUZZ_WHY_MAX	2048

static char fuzz_path[64];
static struct config_args fuzz_args;

/* "--config /proc/self/fd/N", parsed once; each input rewrites the memfd. */
static int
fuzz_setup(void)
{
	static char *argv[] = { "socksifyd", "--config", fuzz_path, NULL };
	static int fd = -1;
	char why[FUZZ_WHY_MAX];

	if (fd >= 0)
		return fd;
	if ((fd = memfd_create("socksifyd.conf", MFD_CLOEXEC)) < 0)
		abort();
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fd);
	if (config_parse_args(3, argv, &fuzz_args, why, sizeof(why)) != CONFIG_RUN)
		abort();
	return fd;
}

static int
fuzz_build(int fd, const uint8_t *data, size_t size, char *why)
{
	struct config c;
	int r;

	if (ftruncate(fd, 0) < 0 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	why[0] = '\0';
	r = config_build(&fuzz_args, &c, why, FUZZ_WHY_MAX);
	FUZZ_CHECK(r == 0 || r == -1);
	if (r < 0)
		return r;
	FUZZ_CHECK(c.rules != NULL);
	FUZZ_CHECK(c.nlisten <= SERVER_MAX_LISTENERS);
	FUZZ_CHECK(c.log_level == -1 || c.log_level == LOG_LEVEL_ERROR ||
	    c.log_level == LOG_LEVEL_VERBOSE);
	FUZZ_CHECK(c.lim.handshake_ms >= 1 && c.lim.handshake_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.connect_ms >= 1 && c.lim.connect_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.idle_ms >= 1 && c.lim.idle_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.drain_ms >= 1 && c.lim.drain_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.bind_ms >= 1 && c.lim.bind_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.udp_idle_ms >= 1 && c.lim.udp_idle_ms <= SERVER_TIMEOUT_MAX_MS);
	FUZZ_CHECK(c.lim.max_sessions >= 1 && c.lim.max_sessions <= SERVER_MAX_SESSIONS_MAX);
	FUZZ_CHECK(c.lim.fd_reserve >= 1 && c.lim.fd_reserve <= SERVER_FD_RESERVE_MAX);
	config_free(&c);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[FUZZ_WHY_MAX], why2[FUZZ_WHY_MAX];
	const uint8_t *p = data, *nl;
	size_t plen, bad, i;
	char *end;
	int fd = fuzz_setup();

	plen = strlen(fuzz_path);
	if (fuzz_build(fd, data, size, why) == 0)
		return 0;
	/* Every refusal is a line's: "FILE:LINE: reason", one line. */
	FUZZ_CHECK(strncmp(why, fuzz_path, plen) == 0 && why[plen] == ':');
	bad = strtoul(why + plen + 1, &end, 10);
	FUZZ_CHECK(bad >= 1 && end[0] == ':' && end[1] == ' ' && end[2] != '\0');
	FUZZ_CHECK(strchr(why, '\n') == NULL);
	for (i = 1; i < bad; i++) {
		nl = memchr(p, '\n', size - (size_t)(p - data));
		FUZZ_CHECK(nl != NULL);
		p = nl + 1;
	}
	FUZZ_CHECK(p < data + size);
	/* Lines apply in order and stop at the first bad one. */
	FUZZ_CHECK(fuzz_build(fd, data, (size_t)(p - data), why2) == 0);
	return 0;
}
