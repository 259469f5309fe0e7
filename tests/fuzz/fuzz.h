/*
 * fuzz.h: checks shared by the libFuzzer targets. Each target is one file
 * built with every shared .c file (see "make fuzz"); a broken invariant aborts,
 * which libFuzzer reports as a crash with the input that caused it.
 */
#ifndef SOCKSIFY_FUZZ_H
#define SOCKSIFY_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(e) do {						\
	if (!(e)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

/*
 * The framing contract of socks5.h for a parser and its input: a result is
 * 0, S5_NEED_MORE or a reply code 1..8 negated; a complete message used
 * 1..n bytes, parses the same on exactly those bytes, and its last proper
 * prefix is S5_NEED_MORE. Evaluates to the parser's result.
 */
#define FUZZ_PARSE(parse, p, n, outp, usedp) __extension__ ({		\
	size_t fp_u2_ = 0;						\
	int fp_r_ = parse((p), (n), (outp), (usedp));			\
	FUZZ_CHECK(fp_r_ == 0 || fp_r_ == S5_NEED_MORE ||		\
	    (fp_r_ <= -S5_REP_GENERAL_FAILURE &&			\
	    fp_r_ >= -S5_REP_ATYP_NOT_SUPPORTED));			\
	if (fp_r_ == 0) {						\
		FUZZ_CHECK(*(usedp) >= 1 && *(usedp) <= (n));		\
		FUZZ_CHECK(parse((p), *(usedp), (outp), &fp_u2_) == 0);	\
		FUZZ_CHECK(fp_u2_ == *(usedp));				\
		FUZZ_CHECK(parse((p), *(usedp) - 1, (outp), &fp_u2_) ==	\
		    S5_NEED_MORE);					\
		parse((p), (n), (outp), (usedp));			\
	}								\
	fp_r_;								\
})

/* Field-wise, since union bytes past a short value are not compared. */
static inline int
fuzz_addr_equal(const struct s5_addr *a, const struct s5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return 0;
	switch (a->atyp) {
	case S5_ATYP_IPV4:
		return memcmp(a->u.ip4, b->u.ip4, 4) == 0;
	case S5_ATYP_IPV6:
		return memcmp(a->u.ip6, b->u.ip6, 16) == 0;
	default:
		return a->u.domain.len == b->u.domain.len &&
		    memcmp(a->u.domain.name, b->u.domain.name,
		    a->u.domain.len) == 0 &&
		    a->u.domain.name[a->u.domain.len] == '\0';
	}
}

/* A parsed address is one the encoders accept again. */
static inline void
fuzz_addr_sane(const struct s5_addr *a)
{
	FUZZ_CHECK(s5_addr_wire_len(a) > 0);
	if (a->atyp == S5_ATYP_DOMAIN) {
		FUZZ_CHECK(a->u.domain.len >= 1);
		FUZZ_CHECK(strlen(a->u.domain.name) == a->u.domain.len);
	}
}

/* A NUL-terminated copy of fuzz input, for the C-string parsers. */
static inline char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
