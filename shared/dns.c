/*
 * dns.c: DNS queries read and replies built on byte buffers (RFC 1035 §4).
 *
 * The query comes from a program we run and could be anything, so every
 * length is checked against what is left before a byte is read, and a name
 * is read with no compression at all: a question is the first thing in the
 * message and has nothing to point back to.
 */
#include <string.h>

#include "dns.h"

#define DNS_QDCOUNT_OFF		4
#define DNS_ANCOUNT_OFF		6
#define DNS_NSCOUNT_OFF		8
#define DNS_ARCOUNT_OFF		10
#define DNS_QUESTION_FIXED	4	/* QTYPE QCLASS */
#define DNS_QUESTION_MIN	(1 + DNS_QUESTION_FIXED)	/* the root's */
#define DNS_RR_FIXED		10	/* TYPE CLASS TTL RDLENGTH */
/* RFC 1035 §4.1.4: a pointer to offset 12, where the question name starts. */
#define DNS_OWNER_PTR		0xC00C
#define DNS_OWNER_PTR_LEN	2
#define DNS_IP4_LEN		4
#define DNS_IP6_LEN		16
#define DNS_IP6_NIBBLES		(2 * DNS_IP6_LEN)
#define DNS_SUFFIX_V4		"in-addr.arpa"
#define DNS_SUFFIX_V6		"ip6.arpa"

static uint16_t
dns_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint8_t *
dns_put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
dns_put32(uint8_t *p, uint32_t v)
{
	p = dns_put16(p, v >> 16);
	return dns_put16(p, v & 0xFFFF);
}

static char
dns_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* See dns.h: what a label may hold, the same both ways. */
static bool
dns_label_byte_ok(uint8_t ch)
{
	return ch >= '!' && ch <= '~' && ch != '.';
}

/*
 * The question name at msg[*off], into name (DNS_NAME_MAX + 1 bytes). A
 * length octet over 63 is either a pointer (top bits 11) or one of the
 * extended label types RFC 6891 §5 retired (01, 10): none belongs here.
 */
static int
dns_read_name(const uint8_t *msg, size_t len, size_t *off, char *name,
    size_t *name_len)
{
	size_t o = *off, n = 0, i;
	uint8_t ll;

	for (;;) {
		if (o >= len)
			return -1;
		if ((ll = msg[o++]) == 0)
			break;
		if (ll > DNS_LABEL_MAX || len - o < ll)
			return -1;
		if (n + (n > 0) + ll > DNS_NAME_MAX)
			return -1;
		if (n > 0)
			name[n++] = '.';
		for (i = 0; i < ll; i++) {
			if (!dns_label_byte_ok(msg[o + i]))
				return -1;
			name[n++] = dns_lower((char)msg[o + i]);
		}
		o += ll;
	}
	name[n] = '\0';
	*name_len = n;
	*off = o;
	return 0;
}

int
dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q)
{
	size_t off = DNS_HEADER_LEN;

	memset(q, 0, sizeof(*q));
	if (msg == NULL || len < DNS_HEADER_LEN)
		return -1;
	q->id = dns_get16(msg);
	q->flags = dns_get16(msg + 2);
	if (q->flags & DNS_FLAG_QR)
		return -1;
	if ((q->flags & DNS_OPCODE_MASK) >> DNS_OPCODE_SHIFT != DNS_OPCODE_QUERY)
		return DNS_RCODE_NOTIMP;
	/* RFC 1035 §4.1.2 allows more questions; no server answers them. */
	if (dns_get16(msg + DNS_QDCOUNT_OFF) != 1 ||
	    dns_get16(msg + DNS_ANCOUNT_OFF) != 0 ||
	    dns_get16(msg + DNS_NSCOUNT_OFF) != 0)
		return DNS_RCODE_FORMERR;
	if (dns_read_name(msg, len, &off, q->name, &q->name_len) < 0 ||
	    len - off < DNS_QUESTION_FIXED) {
		q->name[0] = '\0';
		q->name_len = 0;
		return DNS_RCODE_FORMERR;
	}
	q->qtype = dns_get16(msg + off);
	q->qclass = dns_get16(msg + off + 2);
	q->question_end = off + DNS_QUESTION_FIXED;
	return 0;
}

static void
dns_put_header(uint8_t *out, uint16_t id, unsigned flags, unsigned qdcount,
    unsigned ancount)
{
	uint8_t *p = dns_put16(out, id);

	p = dns_put16(p, flags);
	p = dns_put16(p, qdcount);
	p = dns_put16(p, ancount);
	p = dns_put16(p, 0);		/* NSCOUNT */
	dns_put16(p, 0);		/* ARCOUNT */
}

static bool
dns_rr_ok(const struct dns_rr *rr)
{
	if (rr->len > 0 && rr->data == NULL)
		return false;
	if (rr->type == DNS_TYPE_A)
		return rr->len == DNS_IP4_LEN;
	if (rr->type == DNS_TYPE_AAAA)
		return rr->len == DNS_IP6_LEN;
	return true;
}

size_t
dns_reply(const uint8_t *query, size_t query_len, const struct dns_query *q,
    int rcode, const struct dns_rr *rr, size_t n, uint8_t *out, size_t cap)
{
	size_t qend, room, need = 0, one, i;
	unsigned flags;
	bool fits = true;
	uint8_t *p;

	if (query == NULL || q == NULL || out == NULL)
		return 0;
	qend = q->question_end;
	if (qend < DNS_HEADER_LEN + DNS_QUESTION_MIN || qend > query_len ||
	    cap < qend || rcode < 0 || rcode > DNS_RCODE_MASK ||
	    n > UINT16_MAX || (n > 0 && rr == NULL))
		return 0;
	room = cap - qend;
	for (i = 0; i < n; i++) {
		if (!dns_rr_ok(&rr[i]))
			return 0;
		one = DNS_OWNER_PTR_LEN + DNS_RR_FIXED + rr[i].len;
		if (fits && one <= room - need)
			need += one;
		else
			fits = false;
	}

	flags = DNS_FLAG_QR | (q->flags & (DNS_FLAG_RD | DNS_FLAG_CD)) |
	    DNS_FLAG_RA | (unsigned)rcode | (fits ? 0 : DNS_FLAG_TC);
	/* The question first: out may be query, whose header we overwrite. */
	memmove(out + DNS_HEADER_LEN, query + DNS_HEADER_LEN,
	    qend - DNS_HEADER_LEN);
	dns_put_header(out, q->id, flags, 1, fits ? (unsigned)n : 0);
	if (!fits)
		return qend;
	p = out + qend;
	for (i = 0; i < n; i++) {
		p = dns_put16(p, DNS_OWNER_PTR);
		p = dns_put16(p, rr[i].type);
		p = dns_put16(p, DNS_CLASS_IN);
		p = dns_put32(p, rr[i].ttl);
		p = dns_put16(p, rr[i].len);
		if (rr[i].len > 0)
			memcpy(p, rr[i].data, rr[i].len);
		p += rr[i].len;
	}
	return (size_t)(p - out);
}

size_t
dns_reply_header(const uint8_t *query, size_t query_len, int rcode,
    uint8_t *out, size_t cap)
{
	unsigned qflags;
	uint16_t id;

	if (query == NULL || out == NULL || query_len < 2 ||
	    cap < DNS_HEADER_LEN || rcode < 0 || rcode > DNS_RCODE_MASK)
		return 0;
	id = dns_get16(query);
	qflags = query_len >= 4 ? dns_get16(query + 2) : 0;
	dns_put_header(out, id, DNS_FLAG_QR | DNS_FLAG_RA | (unsigned)rcode |
	    (qflags & (DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD)), 0, 0);
	return DNS_HEADER_LEN;
}

/* --- Reverse names (RFC 1035 §3.5, RFC 3596 §2.5) ---------------------- */

/*
 * When name ends in "." suffix (any case), the length before that dot;
 * otherwise 0, which no reverse name has either.
 */
static size_t
dns_stem_len(const char *name, size_t len, const char *suffix)
{
	size_t slen = strlen(suffix), i;

	if (len < slen + 2 || name[len - slen - 1] != '.')
		return 0;
	for (i = 0; i < slen; i++)
		if (dns_lower(name[len - slen + i]) != suffix[i])
			return 0;
	return len - slen - 1;
}

/* Four decimal labels, least significant byte first. */
static bool
dns_reverse_v4(const char *s, size_t n, uint8_t ip[DNS_IP4_LEN])
{
	size_t i = 0, start, b;
	unsigned v;

	for (b = 0; b < DNS_IP4_LEN; b++) {
		if (b > 0 && (i >= n || s[i++] != '.'))
			return false;
		for (start = i, v = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			v = v * 10 + (unsigned)(s[i] - '0');
			if (v > UINT8_MAX)
				return false;
		}
		/* "01" is not the canonical form of 1; "0" is that of 0. */
		if (i == start || (s[start] == '0' && i - start > 1))
			return false;
		ip[DNS_IP4_LEN - 1 - b] = (uint8_t)v;
	}
	return i == n;
}

static int
dns_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = dns_lower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* 32 one-nibble labels, the low nibble of the last byte first. */
static bool
dns_reverse_v6(const char *s, size_t n, uint8_t ip[DNS_IP6_LEN])
{
	size_t i;
	int h;

	if (n != 2 * DNS_IP6_NIBBLES - 1)
		return false;
	memset(ip, 0, DNS_IP6_LEN);
	for (i = 0; i < DNS_IP6_NIBBLES; i++) {
		if ((h = dns_hex(s[2 * i])) < 0)
			return false;
		if (i + 1 < DNS_IP6_NIBBLES && s[2 * i + 1] != '.')
			return false;
		ip[DNS_IP6_LEN - 1 - i / 2] |= (uint8_t)(i % 2 ? h << 4 : h);
	}
	return true;
}

int
dns_reverse_name(const char *name, uint8_t ip[16])
{
	uint8_t tmp[DNS_IP6_LEN];
	size_t len, stem;

	if (name == NULL)
		return 0;
	len = strlen(name);
	if ((stem = dns_stem_len(name, len, DNS_SUFFIX_V4)) > 0) {
		if (!dns_reverse_v4(name, stem, tmp))
			return 0;
		memcpy(ip, tmp, DNS_IP4_LEN);
		return DNS_IP4_LEN;
	}
	if ((stem = dns_stem_len(name, len, DNS_SUFFIX_V6)) > 0) {
		if (!dns_reverse_v6(name, stem, tmp))
			return 0;
		memcpy(ip, tmp, DNS_IP6_LEN);
		return DNS_IP6_LEN;
	}
	return 0;
}

size_t
dns_name_encode(const char *name, uint8_t *out, size_t cap)
{
	size_t o = 0, ll;
	const char *s = name;

	if (name == NULL || out == NULL)
		return 0;
	while (*s != '\0') {
		for (ll = 0; s[ll] != '\0' && s[ll] != '.'; ll++)
			if (!dns_label_byte_ok((uint8_t)s[ll]) || ll >= DNS_LABEL_MAX)
				return 0;
		/* An empty label: a leading, doubled or trailing dot. */
		if (ll == 0 || (s[ll] == '.' && s[ll + 1] == '\0'))
			return 0;
		if (o + 1 + ll + 1 > DNS_NAME_WIRE_MAX || o + 1 + ll + 1 > cap)
			return 0;
		out[o++] = (uint8_t)ll;
		memcpy(out + o, s, ll);
		o += ll;
		s += ll + (s[ll] == '.');
	}
	if (o + 1 > cap)
		return 0;
	out[o++] = 0;
	return o;
}
