/*
 * unit.h: the unit-test harness. Each test_<area>.c defines one entry point
 * listed here and in main.c's registry; checks print one line per failure
 * and the runner ends with "N passed, N failed", counting test cases
 * (UNIT_RUN); a case fails when any of its checks fails.
 */
#ifndef SOCKSIFY_UNIT_H
#define SOCKSIFY_UNIT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "socks5.h"

bool unit_check(bool ok, const char *expr, const char *file, int line);
bool unit_check_int(long long got, long long want, const char *expr,
    const char *file, int line);
bool unit_check_str(const char *got, const char *want, const char *expr,
    const char *file, int line);
bool unit_check_mem(const void *got, const void *want, size_t n,
    const char *expr, const char *file, int line);

#define CHECK(e)		unit_check((e), #e, __FILE__, __LINE__)
#define CHECK_INT(got, want)	unit_check_int((long long)(got), \
				    (long long)(want), #got " == " #want, \
				    __FILE__, __LINE__)
#define CHECK_STR(got, want)	unit_check_str((got), (want), \
				    #got " == " #want, __FILE__, __LINE__)
#define CHECK_MEM(got, want, n)	unit_check_mem((got), (want), (n), \
				    #got " == " #want, __FILE__, __LINE__)

/*
 * The framing contract of every parser in socks5.h, for one well-formed
 * message: each proper prefix (including the empty one) is S5_NEED_MORE, the
 * whole message parses with *used == its length, and the message followed by
 * the start of another still stops at its own end.
 */
#define CHECK_FRAMING(parse, msg, len, outp) do {			\
	uint8_t cf_buf_[(len) + 8];					\
	size_t cf_i_, cf_used_;						\
	for (cf_i_ = 0; cf_i_ < (len); cf_i_++) {			\
		cf_used_ = 0xdead;					\
		CHECK_INT(parse((msg), cf_i_, (outp), &cf_used_),	\
		    S5_NEED_MORE);					\
		CHECK_INT(cf_used_, 0xdead);				\
	}								\
	memcpy(cf_buf_, (msg), (len));					\
	memcpy(cf_buf_ + (len), "\x05\x01\x00\x01\x05\x01\x00\x01", 8);	\
	cf_used_ = 0;							\
	CHECK_INT(parse(cf_buf_, (len) + 8, (outp), &cf_used_), 0);	\
	CHECK_INT(cf_used_, (len));					\
	cf_used_ = 0;							\
	CHECK_INT(parse((msg), (len), (outp), &cf_used_), 0);		\
	CHECK_INT(cf_used_, (len));					\
} while (0)

/*
 * A malformed message whose byte at index bad proves it wrong: shorter
 * prefixes are S5_NEED_MORE, every longer one fails with exactly -code.
 */
#define CHECK_MALFORMED(parse, msg, len, bad, code, outp) do {		\
	size_t cm_i_, cm_used_;						\
	for (cm_i_ = 0; cm_i_ <= (len); cm_i_++)			\
		CHECK_INT(parse((msg), cm_i_, (outp), &cm_used_),	\
		    cm_i_ <= (bad) ? S5_NEED_MORE : -(code));		\
} while (0)

/* Runs one named test case: it passes when none of its checks failed. */
void unit_run(const char *name, void (*fn)(void));
#define UNIT_RUN(fn)	unit_run(#fn, fn)

void test_greeting(void);
void test_auth(void);
void test_request(void);
void test_reply(void);
void test_udp(void);
void test_addr(void);
void test_cidr(void);
void test_url(void);
void test_relay(void);
void test_client(void);
void test_errno(void);
void test_dns(void);
void test_proxyproto(void);

#endif
