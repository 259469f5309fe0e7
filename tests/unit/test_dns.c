/* test_dns.c: DNS queries parsed and replies built (RFC 1035 §4), reverse names. */
#include <stdio.h>

#include "dns.h"
#include "unit.h"

/*
 * "dig example.com A" as BIND 9.18 sends it: RD and AD set, one question,
 * and an EDNS OPT record (RFC 6891) of UDP size 1232 with an 8-byte client
 * COOKIE option (RFC 7873) in the additional section.
 */
static const uint8_t dig_a[] = {
	0x8a, 0x3f,			/* ID */
	0x01, 0x20,			/* QR=0 OPCODE=0 RD=1 AD=1 */
	0x00, 0x01, 0x00, 0x00,		/* QDCOUNT 1, ANCOUNT 0 */
	0x00, 0x00, 0x00, 0x01,		/* NSCOUNT 0, ARCOUNT 1 */
	0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x03, 'c', 'o', 'm', 0x00,
	0x00, 0x01, 0x00, 0x01,		/* QTYPE A, QCLASS IN */
	0x00, 0x00, 0x29, 0x04, 0xd0,	/* root, OPT, UDP payload 1232 */
	0x00, 0x00, 0x00, 0x00,		/* EXTENDED-RCODE, VERSION, DO=0 */
	0x00, 0x0c,			/* RDLENGTH */
	0x00, 0x0a, 0x00, 0x08,		/* COOKIE, 8 bytes */
	0x3a, 0x5c, 0x1e, 0x94, 0x62, 0x0b, 0xd4, 0x71,
};
#define DIG_A_QEND	(12 + 13 + 4)

/* glibc's AAAA query: RD only, no EDNS. */
static const uint8_t glibc_aaaa[] = {
	0x51, 0xc7, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x03, 'w', 'w', 'w', 0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
	0x03, 'o', 'r', 'g', 0x00, 0x00, 0x1c, 0x00, 0x01,
};

/* PTR 1.0.18.198.in-addr.arpa, the first placeholder address's name. */
static const uint8_t ptr_v4[] = {
	0x0b, 0xad, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x01, '1', 0x01, '0', 0x02, '1', '8', 0x03, '1', '9', '8',
	0x07, 'i', 'n', '-', 'a', 'd', 'd', 'r', 0x04, 'a', 'r', 'p', 'a', 0x00,
	0x00, 0x0c, 0x00, 0x01,
};

/* A query for name, RD set, into buf; its length. */
static size_t
dns_test_query(uint8_t *buf, size_t cap, const char *name, uint16_t qtype)
{
	static const uint8_t head[] = { 0x43, 0x21, 0x01, 0x00, 0x00, 0x01,
	    0, 0, 0, 0, 0, 0 };
	size_t n;

	memcpy(buf, head, sizeof(head));
	n = dns_name_encode(name, buf + sizeof(head), cap - sizeof(head) - 4);
	if (n == 0)
		return 0;
	n += sizeof(head);
	buf[n++] = (uint8_t)(qtype >> 8);
	buf[n++] = (uint8_t)qtype;
	buf[n++] = 0x00;
	buf[n++] = DNS_CLASS_IN;
	return n;
}

/* A question name of labels of the given lengths (0-terminated list), any
 * length accepted, after the header of buf; the message length. */
static size_t
dns_test_labels(uint8_t *buf, const size_t *lens)
{
	static const uint8_t head[] = { 0x00, 0x07, 0x00, 0x00, 0x00, 0x01,
	    0, 0, 0, 0, 0, 0 };
	size_t n = sizeof(head);

	memcpy(buf, head, sizeof(head));
	for (; *lens != 0; lens++) {
		buf[n++] = (uint8_t)*lens;
		memset(buf + n, 'x', *lens);
		n += *lens;
	}
	buf[n++] = 0;
	memcpy(buf + n, "\x00\x01\x00\x01", 4);
	return n + 4;
}

static void
dns_query_vectors(void)
{
	uint8_t msg[64];
	struct dns_query q;
	size_t i;

	CHECK_INT(dns_parse_query(dig_a, sizeof(dig_a), &q), 0);
	CHECK_INT(q.id, 0x8a3f);
	CHECK_INT(q.flags, 0x0120);
	CHECK_INT(q.qtype, DNS_TYPE_A);
	CHECK_INT(q.qclass, DNS_CLASS_IN);
	CHECK_STR(q.name, "example.com");
	CHECK_INT(q.name_len, 11);
	CHECK_INT(q.question_end, DIG_A_QEND);
	/* The OPT record is not read: without it, or cut short, same answer. */
	CHECK_INT(dns_parse_query(dig_a, DIG_A_QEND, &q), 0);
	CHECK_INT(dns_parse_query(dig_a, DIG_A_QEND + 3, &q), 0);
	CHECK_INT(q.question_end, DIG_A_QEND);

	CHECK_INT(dns_parse_query(glibc_aaaa, sizeof(glibc_aaaa), &q), 0);
	CHECK_INT(q.id, 0x51c7);
	CHECK_INT(q.qtype, DNS_TYPE_AAAA);
	CHECK_STR(q.name, "www.example.org");
	CHECK_INT(q.question_end, sizeof(glibc_aaaa));

	CHECK_INT(dns_parse_query(ptr_v4, sizeof(ptr_v4), &q), 0);
	CHECK_INT(q.qtype, DNS_TYPE_PTR);
	CHECK_STR(q.name, "1.0.18.198.in-addr.arpa");
	CHECK_INT(q.name_len, 23);

	/* Upper case is lowered in q.name (the wire keeps it; see the reply). */
	memcpy(msg, glibc_aaaa, sizeof(glibc_aaaa));
	memcpy(msg + 13, "WwW", 3);
	memcpy(msg + 25, "ORG", 3);
	CHECK_INT(dns_parse_query(msg, sizeof(glibc_aaaa), &q), 0);
	CHECK_STR(q.name, "www.example.org");

	/* The root: "dig . NS" asks it; the name is "". */
	memcpy(msg, "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
	    "\x00\x00\x02\x00\x01", 17);
	CHECK_INT(dns_parse_query(msg, 17, &q), 0);
	CHECK_STR(q.name, "");
	CHECK_INT(q.name_len, 0);
	CHECK_INT(q.qtype, 2);
	CHECK_INT(q.question_end, 17);

	/* Every byte a label may hold, '_' and '*' included. */
	CHECK_INT(dns_test_query(msg, sizeof(msg), "_srv.*.a-b!~", DNS_TYPE_A),
	    12 + 14 + 4);
	CHECK_INT(dns_parse_query(msg, 30, &q), 0);
	CHECK_STR(q.name, "_srv.*.a-b!~");

	/* A truncated question is FORMERR at every length; the header alone
	 * and anything shorter get no reply. */
	for (i = 0; i < DNS_HEADER_LEN; i++)
		CHECK_INT(dns_parse_query(dig_a, i, &q), -1);
	for (i = DNS_HEADER_LEN; i < DIG_A_QEND; i++) {
		CHECK_INT(dns_parse_query(dig_a, i, &q), DNS_RCODE_FORMERR);
		CHECK_INT(q.id, 0x8a3f);
		CHECK_STR(q.name, "");
	}
	CHECK_INT(dns_parse_query(NULL, 0, &q), -1);
}

static void
dns_query_malformed(void)
{
	uint8_t msg[DNS_NAME_WIRE_MAX + 64];
	struct dns_query q;
	static const size_t l64[] = { 64, 3, 0 };
	static const size_t l63[] = { 63, 3, 0 };
	static const size_t n253[] = { 63, 63, 63, 61, 0 };
	static const size_t n254[] = { 63, 63, 63, 62, 0 };
	static const uint8_t bad[] = { ' ', '.', 0x00, 0x1f, 0x7f, 0x80, 0xff };
	size_t i, n;

	/* A response (QR=1) is never answered. */
	memcpy(msg, dig_a, sizeof(dig_a));
	msg[2] |= 0x80;
	CHECK_INT(dns_parse_query(msg, sizeof(dig_a), &q), -1);

	/* QDCOUNT 0, and 2 with two questions there. */
	memcpy(msg, dig_a, DIG_A_QEND);
	msg[5] = 0;
	CHECK_INT(dns_parse_query(msg, DIG_A_QEND, &q), DNS_RCODE_FORMERR);
	memcpy(msg + DIG_A_QEND, dig_a + 12, DIG_A_QEND - 12);
	msg[5] = 2;
	CHECK_INT(dns_parse_query(msg, 2 * DIG_A_QEND - 12, &q),
	    DNS_RCODE_FORMERR);
	/* An answer or an authority record in a query. */
	msg[5] = 1;
	msg[7] = 1;
	CHECK_INT(dns_parse_query(msg, DIG_A_QEND, &q), DNS_RCODE_FORMERR);
	msg[7] = 0;
	msg[8] = 1;
	CHECK_INT(dns_parse_query(msg, DIG_A_QEND, &q), DNS_RCODE_FORMERR);
	msg[8] = 0;
	/* ARCOUNT is not checked against what follows. */
	msg[10] = msg[11] = 0xff;
	CHECK_INT(dns_parse_query(msg, DIG_A_QEND, &q), 0);

	/* Compression pointers: the whole name, or after a label. */
	memcpy(msg, "\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
	    "\xc0\x0c\x00\x01\x00\x01", 18);
	CHECK_INT(dns_parse_query(msg, 18, &q), DNS_RCODE_FORMERR);
	memcpy(msg + 12, "\x01" "a" "\xc0\x0c\x00\x01\x00\x01", 8);
	CHECK_INT(dns_parse_query(msg, 20, &q), DNS_RCODE_FORMERR);
	/* RFC 6891 §5's retired extended label types (01 and 10). */
	memcpy(msg + 12, "\x41\x00\x00\x01\x00\x01", 6);
	CHECK_INT(dns_parse_query(msg, 18, &q), DNS_RCODE_FORMERR);
	msg[12] = 0x80;
	CHECK_INT(dns_parse_query(msg, 18, &q), DNS_RCODE_FORMERR);

	/* Labels of 63 bytes are fine, 64 are not. */
	n = dns_test_labels(msg, l63);
	CHECK_INT(dns_parse_query(msg, n, &q), 0);
	CHECK_INT(q.name_len, 67);
	n = dns_test_labels(msg, l64);
	CHECK_INT(dns_parse_query(msg, n, &q), DNS_RCODE_FORMERR);
	/* 253 characters are the most a name has (255 bytes on the wire). */
	n = dns_test_labels(msg, n253);
	CHECK_INT(n, 12 + DNS_NAME_WIRE_MAX + 4);
	CHECK_INT(dns_parse_query(msg, n, &q), 0);
	CHECK_INT(q.name_len, DNS_NAME_MAX);
	CHECK_INT(strlen(q.name), DNS_NAME_MAX);
	n = dns_test_labels(msg, n254);
	CHECK_INT(dns_parse_query(msg, n, &q), DNS_RCODE_FORMERR);
	CHECK_STR(q.name, "");

	/* Bytes a label may not hold. */
	for (i = 0; i < sizeof(bad); i++) {
		memcpy(msg, glibc_aaaa, sizeof(glibc_aaaa));
		msg[18] = bad[i];
		CHECK_INT(dns_parse_query(msg, sizeof(glibc_aaaa), &q),
		    DNS_RCODE_FORMERR);
	}
	/* An empty label cannot be written: its 0 ends the name. The bytes
	 * after it are then QTYPE and QCLASS, and the rest is ignored. */
	memcpy(msg, glibc_aaaa, sizeof(glibc_aaaa));
	msg[16] = 0;
	CHECK_INT(dns_parse_query(msg, sizeof(glibc_aaaa), &q), 0);
	CHECK_STR(q.name, "www");
}

static void
dns_query_opcode(void)
{
	/* Opcode 2 (STATUS, RFC 1035 §4.1.1) with RD and CD set. */
	static const uint8_t status[] = { 0xbe, 0xef, 0x11, 0x10,
	    0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1 };
	static const uint8_t want[] = { 0xbe, 0xef, 0x91, 0x94,
	    0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t formerr[] = { 0x8a, 0x3f, 0x81, 0x81,
	    0, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t out[DNS_HEADER_LEN + 4];
	struct dns_query q;
	uint8_t msg[sizeof(status)];

	CHECK_INT(dns_parse_query(status, sizeof(status), &q), DNS_RCODE_NOTIMP);
	CHECK_INT(q.id, 0xbeef);
	/* The opcode decides before the counts do. */
	CHECK_INT(dns_parse_query(status, DNS_HEADER_LEN, &q), DNS_RCODE_NOTIMP);
	CHECK_INT(dns_reply_header(status, sizeof(status), DNS_RCODE_NOTIMP,
	    out, sizeof(out)), DNS_HEADER_LEN);
	CHECK_MEM(out, want, sizeof(want));

	/* FORMERR for the dig query: RD kept, AD not. */
	CHECK_INT(dns_reply_header(dig_a, sizeof(dig_a), DNS_RCODE_FORMERR,
	    out, DNS_HEADER_LEN), DNS_HEADER_LEN);
	CHECK_MEM(out, formerr, sizeof(formerr));

	/* Two bytes carry an id, and that is all a reply needs. */
	CHECK_INT(dns_reply_header(status, 2, DNS_RCODE_FORMERR, out,
	    sizeof(out)), DNS_HEADER_LEN);
	CHECK_MEM(out, "\xbe\xef\x80\x81\0\0\0\0\0\0\0\0", DNS_HEADER_LEN);
	CHECK_INT(dns_reply_header(status, 1, DNS_RCODE_FORMERR, out,
	    sizeof(out)), 0);
	CHECK_INT(dns_reply_header(status, sizeof(status), DNS_RCODE_FORMERR,
	    out, DNS_HEADER_LEN - 1), 0);
	CHECK_INT(dns_reply_header(status, sizeof(status), 16, out,
	    sizeof(out)), 0);
	CHECK_INT(dns_reply_header(status, sizeof(status), -1, out,
	    sizeof(out)), 0);

	/* In place. */
	memcpy(msg, status, sizeof(status));
	CHECK_INT(dns_reply_header(msg, sizeof(msg), DNS_RCODE_NOTIMP, msg,
	    sizeof(msg)), DNS_HEADER_LEN);
	CHECK_MEM(msg, want, sizeof(want));
}

static void
dns_reply_a(void)
{
	static const uint8_t ip[4] = { 198, 18, 0, 5 };
	static const uint8_t want[] = {
		0x8a, 0x3f, 0x81, 0x80,	/* QR RD RA, NOERROR; AD dropped */
		0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x03, 'c', 'o', 'm',
		0x00, 0x00, 0x01, 0x00, 0x01,
		0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01,	/* owner, A, IN */
		0x00, 0x00, 0x00, 0x3c, 0x00, 0x04,	/* TTL 60, RDLENGTH */
		198, 18, 0, 5,
	};
	struct dns_rr rr = { DNS_TYPE_A, 60, ip, sizeof(ip) };
	uint8_t out[DNS_UDP_MAX], msg[sizeof(dig_a)];
	struct dns_query q;
	size_t i;

	CHECK_INT(dns_parse_query(dig_a, sizeof(dig_a), &q), 0);
	CHECK_INT(dns_reply(dig_a, sizeof(dig_a), &q, DNS_RCODE_NOERROR, &rr, 1,
	    out, sizeof(out)), sizeof(want));
	CHECK_MEM(out, want, sizeof(want));
	/* The reply is a response: never parsed as a query again. */
	CHECK_INT(dns_parse_query(out, sizeof(want), &q), -1);

	/* Exactly enough room, then one byte short: TC=1 and no answer. */
	CHECK_INT(dns_parse_query(dig_a, sizeof(dig_a), &q), 0);
	CHECK_INT(dns_reply(dig_a, sizeof(dig_a), &q, DNS_RCODE_NOERROR, &rr, 1,
	    out, sizeof(want)), sizeof(want));
	for (i = DIG_A_QEND; i < sizeof(want); i++) {
		memset(out, 0xee, sizeof(out));
		CHECK_INT(dns_reply(dig_a, sizeof(dig_a), &q, DNS_RCODE_NOERROR,
		    &rr, 1, out, i), DIG_A_QEND);
		CHECK_MEM(out, "\x8a\x3f\x83\x80\x00\x01\x00\x00\x00\x00\x00\x00",
		    DNS_HEADER_LEN);
		CHECK_MEM(out + 12, want + 12, DIG_A_QEND - 12);
		CHECK_INT(out[DIG_A_QEND], 0xee);
	}
	/* Not even the question fits. */
	for (i = 0; i < DIG_A_QEND; i++)
		CHECK_INT(dns_reply(dig_a, sizeof(dig_a), &q, DNS_RCODE_NOERROR,
		    &rr, 1, out, i), 0);

	/* Built in the query's own buffer (the OPT bytes are overwritten). */
	memcpy(msg, dig_a, sizeof(dig_a));
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, DNS_RCODE_NOERROR, &rr, 1,
	    msg, sizeof(msg)), sizeof(want));
	CHECK_MEM(msg, want, sizeof(want));

	/* NXDOMAIN, no answers, CD copied. */
	memcpy(msg, dig_a, sizeof(dig_a));
	msg[3] |= 0x10;
	CHECK_INT(dns_parse_query(msg, sizeof(msg), &q), 0);
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, DNS_RCODE_NXDOMAIN, NULL, 0,
	    out, sizeof(out)), DIG_A_QEND);
	CHECK_MEM(out, "\x8a\x3f\x81\x93\x00\x01\x00\x00\x00\x00\x00\x00",
	    DNS_HEADER_LEN);
}

static void
dns_reply_aaaa(void)
{
	/* Two placeholders in 100::/64 (RFC 6666), upper case kept in the echo. */
	static const uint8_t ip1[16] = { 0x01, 0x00, [15] = 0x01 };
	static const uint8_t ip2[16] = { 0x01, 0x00, [14] = 0x12, [15] = 0x34 };
	struct dns_rr rr[2] = {
		{ DNS_TYPE_AAAA, 1, ip1, 16 },
		{ DNS_TYPE_AAAA, 0x7fffffff, ip2, 16 },
	};
	uint8_t msg[sizeof(glibc_aaaa)], out[DNS_UDP_MAX];
	struct dns_query q;
	size_t qend = sizeof(glibc_aaaa), ans;

	memcpy(msg, glibc_aaaa, sizeof(msg));
	memcpy(msg + 13, "WWW", 3);
	CHECK_INT(dns_parse_query(msg, sizeof(msg), &q), 0);
	CHECK_STR(q.name, "www.example.org");
	ans = dns_reply(msg, sizeof(msg), &q, DNS_RCODE_NOERROR, rr, 2, out,
	    sizeof(out));
	CHECK_INT(ans, qend + 2 * (12 + 16));
	CHECK_MEM(out, "\x51\xc7\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00",
	    DNS_HEADER_LEN);
	CHECK_MEM(out + 12, msg + 12, qend - 12);
	CHECK_MEM(out + 13, "WWW", 3);
	CHECK_MEM(out + qend, "\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x01\x00\x10",
	    12);
	CHECK_MEM(out + qend + 12, ip1, 16);
	CHECK_MEM(out + qend + 28, "\xc0\x0c\x00\x1c\x00\x01\x7f\xff\xff\xff\x00\x10",
	    12);
	CHECK_MEM(out + qend + 40, ip2, 16);
	/* Room for one answer of two: none goes, TC=1. */
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, DNS_RCODE_NOERROR, rr, 2, out,
	    qend + 28), qend);
	CHECK_INT(out[2], 0x83);
	CHECK_INT(out[7], 0);

	/* Arguments that do not make a reply. */
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 16, rr, 2, out, sizeof(out)), 0);
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, -1, rr, 2, out, sizeof(out)), 0);
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, NULL, 1, out, sizeof(out)), 0);
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, rr, 70000, out,
	    sizeof(out)), 0);
	CHECK_INT(dns_reply(msg, qend - 1, &q, 0, rr, 2, out, sizeof(out)), 0);
	rr[1].len = 4;
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, rr, 2, out, sizeof(out)), 0);
	rr[1].type = DNS_TYPE_A;
	rr[1].len = 16;
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, rr, 2, out, sizeof(out)), 0);
	rr[1].type = DNS_TYPE_PTR;
	rr[1].data = NULL;
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, rr, 2, out, sizeof(out)), 0);
	q.question_end = 16;
	CHECK_INT(dns_reply(msg, sizeof(msg), &q, 0, NULL, 0, out, sizeof(out)), 0);
}

static void
dns_reply_ptr(void)
{
	static const uint8_t want_rdata[] = { 0x07, 'e', 'x', 'a', 'm', 'p', 'l',
	    'e', 0x03, 'c', 'o', 'm', 0x00 };
	/* RFC 3596 §2.5's example, 4321:0:1:2:3:4:567:89ab, suffix in capitals. */
	static const char rfc_v6[] = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0."
	    "1.0.0.0.0.0.0.0.1.2.3.4.IP6.ARPA";
	static const uint8_t rfc_ip[16] = { 0x43, 0x21, 0x00, 0x00, 0x00, 0x01,
	    0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x05, 0x67, 0x89, 0xab };
	uint8_t rdata[DNS_NAME_WIRE_MAX], out[DNS_UDP_MAX], msg[DNS_UDP_MAX];
	uint8_t ip[16];
	struct dns_query q;
	struct dns_rr rr = { DNS_TYPE_PTR, 5, rdata, 0 };
	size_t qend = sizeof(ptr_v4), n;

	CHECK_INT(dns_parse_query(ptr_v4, sizeof(ptr_v4), &q), 0);
	CHECK_INT(dns_reverse_name(q.name, ip), 4);
	CHECK_MEM(ip, "\xc6\x12\x00\x01", 4);
	rr.len = (uint16_t)dns_name_encode("example.com", rdata, sizeof(rdata));
	CHECK_INT(rr.len, sizeof(want_rdata));
	CHECK_MEM(rdata, want_rdata, sizeof(want_rdata));
	CHECK_INT(dns_reply(ptr_v4, sizeof(ptr_v4), &q, 0, &rr, 1, out,
	    sizeof(out)), qend + 12 + sizeof(want_rdata));
	CHECK_MEM(out, "\x0b\xad\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
	    DNS_HEADER_LEN);
	CHECK_MEM(out + 12, ptr_v4 + 12, qend - 12);
	CHECK_MEM(out + qend, "\xc0\x0c\x00\x0c\x00\x01\x00\x00\x00\x05\x00\x0d",
	    12);
	CHECK_MEM(out + qend + 12, want_rdata, sizeof(want_rdata));

	/* An ip6.arpa question, through the parser. */
	n = dns_test_query(msg, sizeof(msg), rfc_v6, DNS_TYPE_PTR);
	CHECK_INT(n, 12 + 64 + 10 + 4);
	CHECK_INT(dns_parse_query(msg, n, &q), 0);
	CHECK_INT(q.name_len, strlen(rfc_v6));
	CHECK_MEM(q.name + 64, "ip6.arpa", 9);
	CHECK_INT(dns_reverse_name(q.name, ip), 16);
	CHECK_MEM(ip, rfc_ip, 16);
	CHECK_INT(dns_reverse_name(rfc_v6, ip), 16);
	CHECK_MEM(ip, rfc_ip, 16);
	CHECK_INT(dns_reverse_name("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.ip6.arpa", ip), 16);
	CHECK_MEM(ip, "\x01\x00\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
}

static void
dns_reverse(void)
{
	static const char *const bad[] = {
		"1.2.3.in-addr.arpa", "256.1.1.1.in-addr.arpa",
		"01.1.1.1.in-addr.arpa", "1.2.3.4.5.in-addr.arpa",
		"00.1.1.1.in-addr.arpa", "1000.1.1.1.in-addr.arpa",
		"1..2.3.in-addr.arpa", ".1.2.3.in-addr.arpa", "1.2.3.4.in-addr.arpa.",
		"1.2.3.4.in-addr.arpax", "1.2.3.4xin-addr.arpa", "in-addr.arpa",
		".in-addr.arpa", "a.2.3.4.in-addr.arpa", "-1.2.3.4.in-addr.arpa",
		"+1.2.3.4.in-addr.arpa", "1.2.3.4.in-addr", "4.3.2.1", "", "arpa",
		"1.2.3.4.ip6.arpa",
		/* 31 nibbles, 33, a two-digit label, a non-hex one. */
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.ip6.arpa",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.ip6.arpa",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.10.ip6.arpa",
		"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.ip6.arpa",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.in-addr.arpa",
		"1.2.3.4.in-addr.arpa.ip6.arpa",
	};
	uint8_t ip[16];
	size_t i;

	CHECK_INT(dns_reverse_name("4.3.2.1.in-addr.arpa", ip), 4);
	CHECK_MEM(ip, "\x01\x02\x03\x04", 4);
	CHECK_INT(dns_reverse_name("0.0.0.0.In-Addr.ARPA", ip), 4);
	CHECK_MEM(ip, "\0\0\0\0", 4);
	CHECK_INT(dns_reverse_name("255.10.100.0.in-addr.arpa", ip), 4);
	CHECK_MEM(ip, "\x00\x64\x0a\xff", 4);
	CHECK_INT(dns_reverse_name("F.e.D.c.B.a.9.8.7.6.5.4.3.2.1.0."
	    "f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.0.ip6.arpa", ip), 16);
	CHECK_MEM(ip, "\x01\x23\x45\x67\x89\xab\xcd\xef"
	    "\x01\x23\x45\x67\x89\xab\xcd\xef", 16);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(ip, 0x5a, sizeof(ip));
		if (!CHECK_INT(dns_reverse_name(bad[i], ip), 0))
			printf("  name: %s\n", bad[i]);
		CHECK_MEM(ip, "ZZZZZZZZZZZZZZZZ", 16);
	}
	CHECK_INT(dns_reverse_name(NULL, ip), 0);
}

static void
dns_encode(void)
{
	char name[DNS_NAME_MAX + 2];
	uint8_t out[DNS_NAME_WIRE_MAX + 8];
	static const char *const bad[] = { "a..b", ".a", "a.", ".", "..",
	    "a b", "a\tb", "a.\x7f", "\xc3\xa9t\xc3\xa9" };
	size_t i;

	CHECK_INT(dns_name_encode("", out, sizeof(out)), 1);
	CHECK_INT(out[0], 0);
	CHECK_INT(dns_name_encode("", out, 0), 0);
	CHECK_INT(dns_name_encode("A.Example", out, sizeof(out)), 11);
	CHECK_MEM(out, "\x01" "A" "\x07" "Example" "\x00", 11);
	CHECK_INT(dns_name_encode("A.Example", out, 11), 11);
	CHECK_INT(dns_name_encode("A.Example", out, 10), 0);
	CHECK_INT(dns_name_encode("A.Example", out, 2), 0);

	/* 63-byte labels, and names of 253 and 254 characters. */
	memset(name, 'a', sizeof(name));
	name[63] = '\0';
	CHECK_INT(dns_name_encode(name, out, sizeof(out)), 65);
	name[63] = 'a';
	name[64] = '\0';
	CHECK_INT(dns_name_encode(name, out, sizeof(out)), 0);
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[DNS_NAME_MAX] = '\0';
	CHECK_INT(dns_name_encode(name, out, sizeof(out)), DNS_NAME_WIRE_MAX);
	CHECK_INT(dns_name_encode(name, out, DNS_NAME_WIRE_MAX - 1), 0);
	name[DNS_NAME_MAX] = 'a';
	name[DNS_NAME_MAX + 1] = '\0';
	CHECK_INT(dns_name_encode(name, out, sizeof(out)), 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!CHECK_INT(dns_name_encode(bad[i], out, sizeof(out)), 0))
			printf("  name: %s\n", bad[i]);
	CHECK_INT(dns_name_encode(NULL, out, sizeof(out)), 0);
}

void
test_dns(void)
{
	UNIT_RUN(dns_query_vectors);
	UNIT_RUN(dns_query_malformed);
	UNIT_RUN(dns_query_opcode);
	UNIT_RUN(dns_reply_a);
	UNIT_RUN(dns_reply_aaaa);
	UNIT_RUN(dns_reply_ptr);
	UNIT_RUN(dns_reverse);
	UNIT_RUN(dns_encode);
}
