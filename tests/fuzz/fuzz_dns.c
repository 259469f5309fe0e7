/*
 * fuzz_dns.c: DNS messages (shared/dns.c). The input is parsed as a query;
 * a query gets replies with A, AAAA and PTR answers in buffers of many sizes,
 * tiny ones included, each checked field by field and built in place too; a
 * refused one gets a header-only reply. The same bytes, as a C string, go
 * through dns_reverse_name and dns_name_encode, both checked against a model.
 */
#include <ctype.h>
#include <strings.h>

#include "dns.h"
#include "fuzz.h"

static uint16_t
fuzz_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool
fuzz_label_byte_ok(int ch)
{
	return ch >= '!' && ch <= '~' && ch != '.';
}

/* The model of dns_name_encode's answer when cap is no limit. */
static bool
fuzz_name_ok(const char *s)
{
	size_t len = strlen(s), i, label = 0;

	if (len == 0)
		return true;
	if (len > DNS_NAME_MAX)
		return false;
	for (i = 0; i <= len; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (label == 0 || label > DNS_LABEL_MAX)
				return false;
			label = 0;
		} else if (!fuzz_label_byte_ok((unsigned char)s[i])) {
			return false;
		} else {
			label++;
		}
	}
	return true;
}

/* A query for name (in wire form, wlen bytes) into buf; its length. */
static size_t
fuzz_make_query(uint8_t *buf, const uint8_t *wire, size_t wlen, uint16_t qtype)
{
	static const uint8_t head[] = { 0x12, 0x34, 0x01, 0x00, 0x00, 0x01,
	    0, 0, 0, 0, 0, 0 };

	memcpy(buf, head, sizeof(head));
	memcpy(buf + sizeof(head), wire, wlen);
	buf[sizeof(head) + wlen] = (uint8_t)(qtype >> 8);
	buf[sizeof(head) + wlen + 1] = (uint8_t)qtype;
	buf[sizeof(head) + wlen + 2] = 0;
	buf[sizeof(head) + wlen + 3] = DNS_CLASS_IN;
	return sizeof(head) + wlen + 4;
}

/* A parsed query is what the bytes say. */
static void
fuzz_query_sane(const uint8_t *msg, size_t size, const struct dns_query *q)
{
	uint8_t wire[DNS_NAME_WIRE_MAX];
	size_t i, wlen;

	FUZZ_CHECK(q->name_len == strlen(q->name));
	FUZZ_CHECK(q->name_len <= DNS_NAME_MAX);
	FUZZ_CHECK(q->question_end >= DNS_HEADER_LEN + 1 + 4);
	FUZZ_CHECK(q->question_end <= size);
	FUZZ_CHECK(q->id == fuzz_get16(msg) && q->flags == fuzz_get16(msg + 2));
	FUZZ_CHECK(q->qtype == fuzz_get16(msg + q->question_end - 4));
	FUZZ_CHECK(q->qclass == fuzz_get16(msg + q->question_end - 2));
	for (i = 0; i < q->name_len; i++)
		FUZZ_CHECK(q->name[i] == '.' || (fuzz_label_byte_ok(q->name[i]) &&
		    !(q->name[i] >= 'A' && q->name[i] <= 'Z')));
	/* The name encodes back to the question's bytes, but for case. */
	wlen = dns_name_encode(q->name, wire, sizeof(wire));
	FUZZ_CHECK(wlen == q->question_end - DNS_HEADER_LEN - 4);
	for (i = 0; i < wlen; i++)
		FUZZ_CHECK(wire[i] == tolower(msg[DNS_HEADER_LEN + i]));
}

/* The header-only reply to a query refused with rcode. */
static void
fuzz_reply_header(const uint8_t *msg, size_t size, int rcode)
{
	uint8_t out[DNS_HEADER_LEN];
	unsigned flags, qflags;
	size_t len;

	FUZZ_CHECK(dns_reply_header(msg, size, rcode, out,
	    DNS_HEADER_LEN - 1) == 0);
	len = dns_reply_header(msg, size, rcode, out, sizeof(out));
	if (size < 2) {
		FUZZ_CHECK(len == 0);
		return;
	}
	FUZZ_CHECK(len == DNS_HEADER_LEN);
	FUZZ_CHECK(memcmp(out, msg, 2) == 0);
	qflags = size >= 4 ? fuzz_get16(msg + 2) : 0;
	flags = fuzz_get16(out + 2);
	FUZZ_CHECK(flags == (DNS_FLAG_QR | DNS_FLAG_RA | (unsigned)rcode |
	    (qflags & (DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD))));
	for (len = 4; len < DNS_HEADER_LEN; len++)
		FUZZ_CHECK(out[len] == 0);
}

/* One reply to q with answers rr[0..n), into exactly cap bytes. */
static void
fuzz_reply(const uint8_t *msg, size_t size, const struct dns_query *q,
    int rcode, const struct dns_rr *rr, size_t n, size_t cap)
{
	size_t qend = q->question_end, need = 0, len, i, off;
	uint8_t *out = malloc(cap > 0 ? cap : 1), *in;
	struct dns_query back;
	unsigned flags;
	bool fits;

	if (out == NULL)
		abort();
	for (i = 0; i < n; i++)
		need += 2 + 10 + rr[i].len;
	len = dns_reply(msg, size, q, rcode, rr, n, out, cap);
	FUZZ_CHECK(len <= cap);
	if (cap < qend) {
		FUZZ_CHECK(len == 0);
		free(out);
		return;
	}
	fits = need <= cap - qend;
	FUZZ_CHECK(len == qend + (fits ? need : 0));

	FUZZ_CHECK(memcmp(out, msg, 2) == 0);
	flags = fuzz_get16(out + 2);
	FUZZ_CHECK(flags == (DNS_FLAG_QR | DNS_FLAG_RA | (unsigned)rcode |
	    (fits ? 0 : DNS_FLAG_TC) |
	    (q->flags & (DNS_FLAG_RD | DNS_FLAG_CD))));
	FUZZ_CHECK(fuzz_get16(out + 4) == 1);
	FUZZ_CHECK(fuzz_get16(out + 6) == (fits ? n : 0));
	FUZZ_CHECK(fuzz_get16(out + 8) == 0 && fuzz_get16(out + 10) == 0);
	FUZZ_CHECK(memcmp(out + DNS_HEADER_LEN, msg + DNS_HEADER_LEN,
	    qend - DNS_HEADER_LEN) == 0);
	for (i = 0, off = qend; fits && i < n; i++) {
		FUZZ_CHECK(fuzz_get16(out + off) == 0xC00C);
		FUZZ_CHECK(fuzz_get16(out + off + 2) == rr[i].type);
		FUZZ_CHECK(fuzz_get16(out + off + 4) == DNS_CLASS_IN);
		FUZZ_CHECK(((uint32_t)fuzz_get16(out + off + 6) << 16 |
		    fuzz_get16(out + off + 8)) == rr[i].ttl);
		FUZZ_CHECK(fuzz_get16(out + off + 10) == rr[i].len);
		FUZZ_CHECK(rr[i].len == 0 ||
		    memcmp(out + off + 12, rr[i].data, rr[i].len) == 0);
		off += 12 + rr[i].len;
	}

	/* A reply is never answered; as a query again it is the same one. */
	FUZZ_CHECK(dns_parse_query(out, len, &back) == -1);
	FUZZ_CHECK(back.id == q->id);
	out[2] &= (uint8_t)~(DNS_FLAG_QR >> 8);
	if (fits && n > 0) {
		FUZZ_CHECK(dns_parse_query(out, len, &back) == DNS_RCODE_FORMERR);
	} else {
		FUZZ_CHECK(dns_parse_query(out, len, &back) == 0);
		FUZZ_CHECK(back.question_end == qend && back.qtype == q->qtype);
		FUZZ_CHECK(strcmp(back.name, q->name) == 0);
	}

	/* In the query's own buffer, the same bytes. */
	out[2] |= DNS_FLAG_QR >> 8;
	if ((in = malloc(size > cap ? size : cap)) == NULL)
		abort();
	memcpy(in, msg, size);
	FUZZ_CHECK(dns_reply(in, size, q, rcode, rr, n, in, cap) == len);
	FUZZ_CHECK(memcmp(in, out, len) == 0);
	free(in);
	free(out);
}

static void
fuzz_replies(const uint8_t *msg, size_t size, const struct dns_query *q)
{
	static const uint8_t ip4[4] = { 198, 18, 0, 1 };
	static const uint8_t ip6[16] = { 0x01, 0x00, [15] = 0x01 };
	uint8_t ptr[DNS_NAME_WIRE_MAX];
	struct dns_rr rr[4];
	size_t qend = q->question_end, ptr_len, c, k;
	const size_t fixed[] = { 0, 1, 2, 11, 12, 17, 29, 64, DNS_UDP_MAX,
	    DNS_TCP_MAX };
	int rcode = msg[3] & DNS_RCODE_MASK;

	/* PTR data: the question's own name, as a placeholder's name is. */
	ptr_len = dns_name_encode(q->name, ptr, sizeof(ptr));
	FUZZ_CHECK(ptr_len > 0);
	rr[0] = (struct dns_rr){ DNS_TYPE_A, 1, ip4, sizeof(ip4) };
	rr[1] = (struct dns_rr){ DNS_TYPE_AAAA, 0xFFFFFFFF, ip6, sizeof(ip6) };
	rr[2] = (struct dns_rr){ DNS_TYPE_PTR, 60, ptr, (uint16_t)ptr_len };
	rr[3] = (struct dns_rr){ DNS_TYPE_PTR, 0, NULL, 0 };

	for (k = 0; k <= 4; k++) {
		size_t need = 0, i;

		for (i = 0; i < k; i++)
			need += 12 + rr[i].len;
		for (c = 0; c < sizeof(fixed) / sizeof(fixed[0]); c++)
			fuzz_reply(msg, size, q, rcode, rr, k, fixed[c]);
		fuzz_reply(msg, size, q, rcode, rr, k, qend - 1);
		fuzz_reply(msg, size, q, rcode, rr, k, qend);
		fuzz_reply(msg, size, q, rcode, rr, k, qend + need - 1);
		fuzz_reply(msg, size, q, rcode, rr, k, qend + need);
	}
	/* What dns_reply refuses. */
	{
		uint8_t out[DNS_UDP_MAX];
		struct dns_rr bad = { DNS_TYPE_A, 0, ip6, sizeof(ip6) };

		FUZZ_CHECK(dns_reply(msg, size, q, 16, rr, 1, out,
		    sizeof(out)) == 0);
		FUZZ_CHECK(dns_reply(msg, size, q, 0, &bad, 1, out,
		    sizeof(out)) == 0);
		FUZZ_CHECK(dns_reply(msg, qend - 1, q, 0, rr, 1, out,
		    sizeof(out)) == 0);
	}
}

/* The reverse name of ip (4 or 16 bytes) into buf. */
static void
fuzz_reverse_format(const uint8_t *ip, int len, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i;

	if (len == 4) {
		snprintf(buf, cap, "%u.%u.%u.%u.in-addr.arpa", ip[3], ip[2],
		    ip[1], ip[0]);
		return;
	}
	for (i = 15; i >= 0; i--) {
		buf[o++] = hex[ip[i] & 0xF];
		buf[o++] = '.';
		buf[o++] = hex[ip[i] >> 4];
		buf[o++] = '.';
	}
	snprintf(buf + o, cap - o, "ip6.arpa");
}

static void
fuzz_names(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstring(data, size), text[DNS_NAME_MAX + 1];
	uint8_t ip[16], pad[16] = { 0 }, wire[DNS_NAME_WIRE_MAX + 8];
	uint8_t msg[DNS_HEADER_LEN + DNS_NAME_WIRE_MAX + 4];
	struct dns_query q;
	size_t wlen, mlen, i;
	int r, fam;

	/* Reverse names are canonical: one spelling per address, but for case. */
	r = dns_reverse_name(s, ip);
	FUZZ_CHECK(r == 0 || r == 4 || r == 16);
	if (r != 0) {
		fuzz_reverse_format(ip, r, text, sizeof(text));
		FUZZ_CHECK(strcasecmp(text, s) == 0);
	}
	memcpy(pad, data, size < sizeof(pad) ? size : sizeof(pad));
	for (fam = 4; fam <= 16; fam += 12) {
		fuzz_reverse_format(pad, fam, text, sizeof(text));
		FUZZ_CHECK(dns_reverse_name(text, ip) == fam);
		FUZZ_CHECK(memcmp(ip, pad, (size_t)fam) == 0);
	}

	/* Encoding agrees with the model and with the parser. */
	wlen = dns_name_encode(s, wire, sizeof(wire));
	FUZZ_CHECK((wlen > 0) == fuzz_name_ok(s));
	if (wlen > 0) {
		FUZZ_CHECK(wlen <= DNS_NAME_WIRE_MAX);
		FUZZ_CHECK(wlen == (s[0] == '\0' ? 1 : strlen(s) + 2));
		FUZZ_CHECK(dns_name_encode(s, wire, wlen - 1) == 0);
		FUZZ_CHECK(dns_name_encode(s, wire, wlen) == wlen);
		mlen = fuzz_make_query(msg, wire, wlen, DNS_TYPE_PTR);
		FUZZ_CHECK(dns_parse_query(msg, mlen, &q) == 0);
		FUZZ_CHECK(q.question_end == mlen);
		FUZZ_CHECK(q.name_len == strlen(s));
		for (i = 0; i < q.name_len; i++)
			FUZZ_CHECK(q.name[i] == tolower((unsigned char)s[i]));
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query q;
	int r;

	r = dns_parse_query(data, size, &q);
	FUZZ_CHECK(r == 0 || r == -1 || r == DNS_RCODE_FORMERR ||
	    r == DNS_RCODE_NOTIMP);
	FUZZ_CHECK((r == -1) == (size < DNS_HEADER_LEN ||
	    (data[2] & (DNS_FLAG_QR >> 8)) != 0));
	if (r == 0) {
		fuzz_query_sane(data, size, &q);
		fuzz_replies(data, size, &q);
	} else {
		FUZZ_CHECK(q.name[0] == '\0' && q.name_len == 0);
		fuzz_reply_header(data, size, r > 0 ? r : DNS_RCODE_FORMERR);
	}
	fuzz_names(data, size);
	return 0;
}
