/*
 * dns.h: DNS messages (RFC 1035 §4), sans I/O, for answering a program's own
 * queries with placeholder addresses.
 *
 * Only what that needs: a standard query with one question is parsed, and a
 * reply that echoes the question and carries answers the caller chose is
 * built. Like socks5.h, nothing here reads a socket, allocates or logs; the
 * input is a program's datagram and is trusted for nothing. Over TCP each
 * message has a two-byte length in front (RFC 1035 §4.2.2); the caller adds
 * and strips it.
 */
#ifndef SOCKSIFY_DNS_H
#define SOCKSIFY_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "socks5.h"		/* S5_DOMAIN_MAX */

#define DNS_HEADER_LEN		12
#define DNS_UDP_MAX		512	/* reply size limit without EDNS, bytes (RFC 1035 §4.2.1) */
#define DNS_TCP_MAX		65535	/* the two-byte length prefix, bytes */
#define DNS_LABEL_MAX		63	/* bytes of one label (RFC 1035 §2.3.4) */
#define DNS_NAME_WIRE_MAX	255	/* bytes of a name in wire form, root label included */
#define DNS_NAME_MAX		253	/* the same name in presentation form, no trailing dot */

enum { DNS_TYPE_A = 1, DNS_TYPE_PTR = 12, DNS_TYPE_AAAA = 28, DNS_CLASS_IN = 1 };

enum {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
};

/* The header's flags word (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD). */
enum {
	DNS_FLAG_QR = 0x8000,
	DNS_OPCODE_MASK = 0x7800,
	DNS_OPCODE_SHIFT = 11,
	DNS_FLAG_AA = 0x0400,
	DNS_FLAG_TC = 0x0200,
	DNS_FLAG_RD = 0x0100,
	DNS_FLAG_RA = 0x0080,
	DNS_FLAG_AD = 0x0020,
	DNS_FLAG_CD = 0x0010,
	DNS_RCODE_MASK = 0x000F,
};

enum { DNS_OPCODE_QUERY = 0 };

struct dns_query {
	uint16_t id;
	uint16_t flags;			/* the query's header flags word as received */
	uint16_t qtype, qclass;
	char name[S5_DOMAIN_MAX + 1];	/* presentation form, no trailing dot, lower-cased; "" for the root */
	size_t name_len;
	size_t question_end;		/* offset just past the (first) question in the message */
};

/*
 * Parses a query. Returns
 *   0                 a standard query (QR=0, OPCODE=0) with QDCOUNT 1,
 *                     ANCOUNT 0, NSCOUNT 0 and a readable question; q is
 *                     filled in. QTYPE and QCLASS are reported as they are:
 *                     refusing a class or a meta type is the caller's call.
 *   DNS_RCODE_NOTIMP  another opcode;
 *   DNS_RCODE_FORMERR anything else wrong: QDCOUNT != 1, an answer or
 *                     authority record, or a malformed question;
 *                     for both, reply with dns_reply_header();
 *   -1                no reply: shorter than the header, or QR=1 (a
 *                     response is never answered, so two of us cannot loop).
 * q->id and q->flags are set whenever the header was there; q->name is ""
 * unless the result is 0.
 * The additional section is not read: ARCOUNT may count an EDNS OPT record
 * (RFC 6891), which is ignored, and the reply carries none. Bytes after the
 * question are not looked at.
 * A name is 1..63-byte labels and at most DNS_NAME_MAX characters in
 * presentation form; compression pointers (and the retired extended label
 * types) are FORMERR in a question. A label byte must be printable ASCII
 * (0x21..0x7E) other than '.': the name later goes to a SOCKS proxy and to
 * logs as text, where a '.', space, control or non-ASCII byte inside a label
 * would change or hide what it names.
 */
int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q);

/* One answer record's data. */
struct dns_rr {
	uint16_t type;
	uint32_t ttl;			/* seconds, written as given */
	const uint8_t *data;
	uint16_t len;
};

/*
 * Builds the reply to q, parsed from query/query_len, into out (cap bytes):
 * the header with q's id, QR=1, opcode 0, AA=0, RD and CD copied from the
 * query (CD: RFC 4035 §3.2.2), RA=1 and rcode; the question, echoed byte for
 * byte (case included, which DNS 0x20 resolvers check); then the n answer
 * records, class IN, whose owner is a compression pointer to the question
 * name (0xC00C). When the answers do not fit in cap, TC=1 is set and no
 * answer is included (RFC 2181 §9: the client retries over TCP); for UDP
 * pass cap <= DNS_UDP_MAX, since the reply has no OPT (RFC 6891 §7).
 * out may be query itself. Returns the reply length, or 0 when even the
 * header and question do not fit, or the arguments are not consistent
 * (question_end past query_len, rcode outside 0..15, n > 65535, a record
 * with len > 0 and no data, an A record not 4 bytes or an AAAA not 16).
 */
size_t dns_reply(const uint8_t *query, size_t query_len, const struct dns_query *q,
    int rcode, const struct dns_rr *rr, size_t n, uint8_t *out, size_t cap);

/*
 * A header-only reply, for FORMERR and NOTIMP from dns_parse_query: the id
 * of the query's first two bytes, QR=1, its opcode, RD and CD (when the
 * query has its flags word), RA=1, rcode, and all counts 0. Returns
 * DNS_HEADER_LEN, or 0 when query_len < 2, cap < DNS_HEADER_LEN or rcode is
 * outside 0..15. out may be query itself.
 */
size_t dns_reply_header(const uint8_t *query, size_t query_len, int rcode,
    uint8_t *out, size_t cap);

/*
 * The address a reverse name stands for: "4.3.2.1.in-addr.arpa" is 1.2.3.4
 * and the 32-nibble ip6.arpa form (RFC 3596 §2.5) an IPv6 address. Returns 4
 * or 16 with ip filled in, or 0 (ip untouched) when name is not a complete
 * reverse name: the suffix is case-insensitive; in-addr.arpa takes exactly
 * four decimal labels 0..255 with no leading zero ("0" itself is fine),
 * ip6.arpa exactly 32 labels of one hex digit. No trailing dot.
 */
int dns_reverse_name(const char *name, uint8_t ip[16]);

/*
 * name ("a.example", no trailing dot, "" for the root) in wire form into out,
 * case kept. Returns the length, or 0 when it does not fit in cap or is not a
 * name dns_parse_query would read: an empty label, a label over 63 bytes, a
 * byte it refuses, or over DNS_NAME_WIRE_MAX bytes. For PTR data.
 */
size_t dns_name_encode(const char *name, uint8_t *out, size_t cap);

#endif
