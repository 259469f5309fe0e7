/*
 * socks5.h: the SOCKS5 protocol of socksify, sans I/O.
 *
 * Everything the server and the preload library say to each other on the wire
 * is parsed and encoded here, once: RFC 1928 (method negotiation, requests,
 * replies, the UDP request header) and RFC 1929 (username/password). Nothing
 * in shared/ reads a socket, sleeps, allocates, locks or logs; functions take
 * bytes and return bytes or parsed structs.
 *
 * Conventions
 *   Parsers are incremental: given the bytes received so far they return
 *     0             complete; *used holds the length of the message,
 *     S5_NEED_MORE  the bytes so far are a valid prefix; read more,
 *     < 0           malformed; the value is -(RFC 1928 reply code that fits),
 *                   e.g. -S5_REP_CMD_NOT_SUPPORTED. s5_err_rep() undoes it.
 *   A parser never reads past n, never consumes bytes of the next message,
 *   and never fails on a half-received message.
 *   Encoders write into the caller's buffer and return the length written,
 *   or -1 when cap is too small (nothing useful is left in the buffer then).
 *   Ports are in host byte order everywhere in the structs.
 */
#ifndef SOCKSIFY_SOCKS5_H
#define SOCKSIFY_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>		/* struct sockaddr_* types only */

enum {
	S5_VERSION = 0x05,		/* RFC 1928 VER */
	S5_AUTH_VERSION = 0x01,		/* RFC 1929 sub-negotiation VER */
};

enum s5_method {
	S5_METHOD_NONE = 0x00,
	S5_METHOD_GSSAPI = 0x01,
	S5_METHOD_USERPASS = 0x02,
	/*
	 * Private methods (RFC 1928 §3: X'80' to X'FE'), ours: NONE and
	 * USERPASS as they are, and the server reads the client's stream,
	 * not one recv() per message, so a client may send its next
	 * messages without waiting for each answer (SOCKSIFY_PIPELINE=auto).
	 * Offered only beside the plain method they stand for; a server
	 * that does not know them picks that one.
	 */
	S5_METHOD_NONE_STREAM = 0xE0,
	S5_METHOD_USERPASS_STREAM = 0xE2,
	S5_METHOD_UNACCEPTABLE = 0xFF,
};

/* The plain method a chosen one stands for (NONE for NONE_STREAM...). */
static inline uint8_t
s5_method_base(uint8_t m)
{
	return m == S5_METHOD_NONE_STREAM ? S5_METHOD_NONE :
	    m == S5_METHOD_USERPASS_STREAM ? S5_METHOD_USERPASS : m;
}

enum s5_cmd {
	S5_CMD_CONNECT = 0x01,
	S5_CMD_BIND = 0x02,
	S5_CMD_UDP_ASSOCIATE = 0x03,
};

enum s5_atyp {
	S5_ATYP_IPV4 = 0x01,
	S5_ATYP_DOMAIN = 0x03,
	S5_ATYP_IPV6 = 0x04,
};

enum s5_rep {
	S5_REP_SUCCEEDED = 0x00,
	S5_REP_GENERAL_FAILURE = 0x01,
	S5_REP_NOT_ALLOWED = 0x02,
	S5_REP_NET_UNREACHABLE = 0x03,
	S5_REP_HOST_UNREACHABLE = 0x04,
	S5_REP_CONN_REFUSED = 0x05,
	S5_REP_TTL_EXPIRED = 0x06,
	S5_REP_CMD_NOT_SUPPORTED = 0x07,
	S5_REP_ATYP_NOT_SUPPORTED = 0x08,
};

enum {
	S5_AUTH_SUCCESS = 0x00,
	S5_AUTH_FAILURE = 0x01,		/* any non-zero STATUS is a failure */
};

#define S5_NEED_MORE		1
#define S5_DOMAIN_MAX		255	/* RFC 1928: one length octet */
#define S5_CRED_MAX		255	/* RFC 1929: ULEN and PLEN are 1..255 */
#define S5_MSG_MAX		(4 + 1 + S5_DOMAIN_MAX + 2)	/* largest request or reply */
#define S5_GREETING_MAX		(2 + 255)
#define S5_AUTH_MAX		(3 + 2 * S5_CRED_MAX)
#define S5_UDP_HEADER_MAX	(4 + 1 + S5_DOMAIN_MAX + 2)
#define S5_ADDR_TEXT_MAX	(S5_DOMAIN_MAX + 9)	/* "[" v6 "]:" port, or name ":" port, + NUL */

/* The reply code a negative parser result names. */
static inline int s5_err_rep(int r) { return r < 0 ? -r : S5_REP_SUCCEEDED; }

/* An address as SOCKS5 carries it: IPv4, IPv6 or a domain name, plus a port. */
struct s5_addr {
	uint8_t atyp;				/* enum s5_atyp */
	uint16_t port;				/* host byte order */
	union {
		uint8_t ip4[4];
		uint8_t ip6[16];
		struct {
			uint8_t len;		/* 1..255 */
			char name[S5_DOMAIN_MAX + 1];	/* NUL-terminated, no NUL inside */
		} domain;
	} u;
};

/* Username and password with explicit lengths (RFC 1929 allows any octet). */
struct s5_cred {
	uint8_t ulen, plen;
	char user[S5_CRED_MAX + 1];		/* NUL-terminated for convenience */
	char pass[S5_CRED_MAX + 1];
};

struct s5_greeting {
	uint8_t nmethods;
	uint8_t methods[255];
};

struct s5_request {
	uint8_t cmd;				/* enum s5_cmd */
	struct s5_addr dst;
};

struct s5_reply {
	uint8_t rep;				/* enum s5_rep */
	struct s5_addr bnd;
};

struct s5_udp_header {
	uint8_t frag;				/* RFC 1928 §7: 0 = standalone datagram */
	struct s5_addr addr;
};

/* --- Method negotiation (RFC 1928 §3) ---------------------------------- */

/* Client -> server: VER NMETHODS METHODS. A wrong VER or NMETHODS = 0 is malformed. */
int s5_parse_greeting(const uint8_t *p, size_t n, struct s5_greeting *out, size_t *used);
int s5_encode_greeting(uint8_t *buf, size_t cap, const uint8_t *methods, size_t nmethods);

/* The server's choice: USERPASS when required and offered, NONE when allowed
 * and offered, else S5_METHOD_UNACCEPTABLE; the _STREAM twin of the one
 * chosen when that is offered too (the server reads a stream). */
uint8_t s5_choose_method(const struct s5_greeting *g, bool require_userpass);

/* Server -> client: VER METHOD. */
int s5_parse_method_reply(const uint8_t *p, size_t n, uint8_t *method, size_t *used);
int s5_encode_method_reply(uint8_t *buf, size_t cap, uint8_t method);

/* --- Username/password (RFC 1929) -------------------------------------- */

/* Client -> server: VER ULEN UNAME PLEN PASSWD. ULEN or PLEN of 0 parses (the
 * lengths still frame the message) and must then fail authentication. */
int s5_parse_auth(const uint8_t *p, size_t n, struct s5_cred *out, size_t *used);
int s5_encode_auth(uint8_t *buf, size_t cap, const struct s5_cred *cred);

/* Server -> client: VER STATUS. VER 0x01 is the RFC's; 0x05 is accepted too,
 * since real servers send it. */
int s5_parse_auth_reply(const uint8_t *p, size_t n, uint8_t *status, size_t *used);
int s5_encode_auth_reply(uint8_t *buf, size_t cap, uint8_t status);

/* Constant-time equality of two credentials of possibly different lengths. */
bool s5_cred_equal(const char *a, size_t alen, const char *b, size_t blen);

/* --- Requests and replies (RFC 1928 §4, §6) ---------------------------- */

/* Client -> server: VER CMD RSV ATYP DST.ADDR DST.PORT. Unknown CMD gives
 * -S5_REP_CMD_NOT_SUPPORTED, unknown ATYP -S5_REP_ATYP_NOT_SUPPORTED; a
 * wrong VER or a malformed domain (empty, or with a NUL in it)
 * -S5_REP_GENERAL_FAILURE, as CONTRACT.md reserves 08 for unknown types.
 * RSV is ignored. */
int s5_parse_request(const uint8_t *p, size_t n, struct s5_request *out, size_t *used);
int s5_encode_request(uint8_t *buf, size_t cap, const struct s5_request *req);

/* Server -> client: VER REP RSV ATYP BND.ADDR BND.PORT. */
int s5_parse_reply(const uint8_t *p, size_t n, struct s5_reply *out, size_t *used);
int s5_encode_reply(uint8_t *buf, size_t cap, const struct s5_reply *rep);

/* --- UDP request header (RFC 1928 §7) ---------------------------------- */

/* RSV(2) FRAG ATYP DST.ADDR DST.PORT, then DATA. For a datagram S5_NEED_MORE
 * means "truncated": the caller treats it as malformed. */
int s5_parse_udp_header(const uint8_t *p, size_t n, struct s5_udp_header *out, size_t *used);
int s5_encode_udp_header(uint8_t *buf, size_t cap, const struct s5_udp_header *h);

/* --- Reply codes and errno --------------------------------------------- */

/* The one table both halves use (server-anchors.md §2.5). */
uint8_t s5_rep_from_errno(int err);
/* What a program would have seen connecting directly (CONTRACT.md). */
int s5_rep_to_errno(uint8_t rep);
/* "connection refused", "succeeded", ...; never NULL. */
const char *s5_rep_str(uint8_t rep);

/* --- Addresses ---------------------------------------------------------- */

/* Encoded size of an address on the wire (ATYP excluded, port included). */
size_t s5_addr_wire_len(const struct s5_addr *a);

/* Same type, port and address; names compare without regard to case. */
bool s5_addr_equal(const struct s5_addr *a, const struct s5_addr *b);

void s5_addr_set_ip4(struct s5_addr *a, const uint8_t ip[4], uint16_t port);
void s5_addr_set_ip6(struct s5_addr *a, const uint8_t ip[16], uint16_t port);
/* -1 when name is empty, longer than 255 bytes, or not a C string of len bytes. */
int s5_addr_set_domain(struct s5_addr *a, const char *name, size_t len, uint16_t port);

/* sockaddr conversions. An IPv4-mapped IPv6 sockaddr becomes IPv4. An
 * AF_INET6 sockaddr of 24 bytes (RFC 2133's, without sin6_scope_id) is
 * accepted, as the kernel accepts it. */
int s5_addr_from_sockaddr(struct s5_addr *a, const struct sockaddr *sa, size_t salen);
/* -1 for a domain address. Returns the sockaddr length on success. */
int s5_addr_to_sockaddr(const struct s5_addr *a, struct sockaddr_storage *ss);
/* The same, as a socket of family says it: an IPv4 address v4-mapped for
 * AF_INET6; -1 when family cannot name a (an IPv6 address for AF_INET, a
 * domain). Another family takes a's own. */
int s5_addr_to_family_sockaddr(const struct s5_addr *a, int family, struct sockaddr_storage *ss);

/* Text: "1.2.3.4:80", "[::1]:80", "example.com:80". Returns the length, or -1
 * when cap is too small. */
int s5_addr_format(const struct s5_addr *a, char *buf, size_t cap);
int s5_sockaddr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* Parses "host:port", "[v6]:port", "host", "[v6]" and a bare IPv6 literal
 * (which takes no port). A literal becomes IPv4/IPv6, anything else a domain.
 * A missing port is default_port. Returns 0, or -1 with *why set. */
int s5_addr_parse(const char *text, struct s5_addr *a, uint16_t default_port, const char **why);

/* CIDR ranges: "10.0.0.0/8", "::1/128", "127.0.0.1" (a host). */
struct s5_cidr {
	uint8_t v6;				/* 0: IPv4, 1: IPv6 */
	uint8_t bits;				/* prefix length */
	uint8_t net[16];			/* masked network, 4 or 16 bytes used */
};
int s5_cidr_parse(const char *text, struct s5_cidr *c, const char **why);
/* An IPv4-mapped IPv6 address matches IPv4 ranges. */
bool s5_cidr_match(const struct s5_cidr *c, const struct sockaddr *sa);
bool s5_cidr_match_addr(const struct s5_cidr *c, const struct s5_addr *a);

/* --- Lists -------------------------------------------------------------- */

/* The next item of a comma-separated list (SOCKSIFY_PROXY, SOCKSIFY_EXCLUDE),
 * blanks around it trimmed and empty items skipped: *item and *len name it
 * inside the string and *s moves past it. False at the end of the list. */
bool s5_list_next(const char **s, const char **item, size_t *len);

/* A host name or ".suffix" as an exclusion names it: RFC 1123 §2.1 labels
 * (letters, digits, hyphens, and '_', which DNS carries), an optional leading
 * '.' and trailing '.', and a last label that is not all digits (that is a
 * mistyped address). Writes it lower-cased, without the trailing dot, to out;
 * false when text is not such a name or does not fit in cap. ASCII only, so
 * the answer does not depend on the locale. */
bool s5_name_normalize(const char *text, char *out, size_t cap);
/* name (len bytes, a trailing dot not counted) against a normalized
 * pattern: ".corp" matches "corp" and every name ending in ".corp", any
 * other pattern that name alone; case does not count. */
bool s5_name_match(const char *pattern, const char *name, size_t len);

/* --- Proxy URLs (CONTRACT.md) ------------------------------------------ */

/* socks5://[USER[:PASS]@]HOST[:PORT] resolves names locally, socks5h:// asks
 * the proxy to; a bare HOST[:PORT] means socks5h. Port 1080 by default;
 * USER and PASS are percent-decoded. Also socks4:// (USER is the user ID,
 * a password is refused), socks4a:// and http:// (port 8080 by default). */
enum s5_proto {
	S5_PROTO_SOCKS5 = 0,
	S5_PROTO_SOCKS4,		/* socks4://: IPv4 destinations, resolved here */
	S5_PROTO_SOCKS4A,		/* socks4a://: the proxy resolves names */
	S5_PROTO_HTTP,			/* http://: HTTP CONNECT, Basic credentials */
};

struct s5_proxy {
	struct s5_addr addr;			/* the proxy itself */
	bool remote_dns;			/* socks5h, socks4a, http: the proxy resolves */
	bool has_cred;
	uint8_t proto;				/* enum s5_proto */
	struct s5_cred cred;
};
int s5_proxy_parse(const char *url, size_t len, struct s5_proxy *p, const char **why);
/*
 * One hop of a chain: "URL" or alternatives "URL|URL|..." (at most cap),
 * which must share a scheme (a hop's alternatives stand in for each other:
 * same protocol, same side of name resolution). *n gets their count. 0, or
 * -1 with *why and *bad (the 1-based alternative at fault, 0 for the hop).
 * In a hop with credentials ('@') a '|' separates only where a scheme
 * follows it, so a raw '|' in a password stays the password's.
 */
int s5_hop_parse(const char *text, size_t len, struct s5_proxy *alts, size_t cap,
    size_t *n, size_t *bad, const char **why);
/* The URL without its password ("socks5h://user@host:port"), for logs. */
int s5_proxy_format(const struct s5_proxy *p, char *buf, size_t cap);

/* --- Client handshake state machine ------------------------------------ */

/*
 * Drives one hop: greeting -> (username/password) -> request -> reply.
 * The caller owns the I/O:
 *
 *	s5_client_init(&c, S5_CMD_CONNECT, &dst, cred_or_NULL);
 *	for (;;) {
 *		r = s5_client_step(&c, in, n, &used);
 *		S5C_WANT_WRITE: send c.out[0..c.out_len) in full, then step with n = 0
 *		S5C_WANT_READ:  read at most s5_client_want(&c) bytes, step with them
 *		S5C_DONE:       c.reply holds the reply; input past *used is the
 *		                application's (the target's first bytes)
 *		< 0:            failed; see enum s5c_err (and c.reply.rep)
 *	}
 *
 * BIND (RFC 1928 §6): S5C_DONE comes with the first reply (the proxy's
 * listening address); s5_client_await_peer() then makes the machine read
 * the second reply (the connecting peer) and say S5C_DONE again.
 *
 * Reading s5_client_want() bytes at a time never consumes a byte past the
 * server's current message. For a chain, run one machine per hop on the same
 * connection, each asking for the next hop.
 */
enum s5c_status {
	S5C_DONE = 0,
	S5C_WANT_READ = 1,
	S5C_WANT_WRITE = 2,
};

enum s5c_err {
	S5C_E_PROTO = -1,		/* the server spoke something that is not SOCKS5 */
	S5C_E_NO_METHOD = -2,		/* the server accepted none of our methods */
	S5C_E_AUTH = -3,		/* username/password rejected */
	S5C_E_NEED_AUTH = -4,		/* the server wants username/password; we have none */
	S5C_E_REPLY = -5,		/* the request was refused: c.reply.rep says why */
	S5C_E_STATE = -6,		/* stepped after DONE or failure, or bad input */
	S5C_E_ADDR = -7,		/* the hop cannot be asked for this destination
					 * (IPv6 or a name to SOCKS4; a name HTTP cannot carry) */
};

/* The largest HTTP CONNECT request: request line and Host with the
 * address's text twice, Proxy-Authorization with "user:pass" in base64. */
#define S5_HTTP_REQUEST_MAX	(64 + 2 * S5_ADDR_TEXT_MAX + 4 * ((2 * S5_CRED_MAX + 3) / 3))
/* A pipelined SOCKS5 handshake: greeting (one method), credentials, request. */
#define S5_PIPELINE_MAX		(3 + S5_AUTH_MAX + S5_MSG_MAX)
#define S5_CLIENT_OUT_MAX	(S5_HTTP_REQUEST_MAX > S5_PIPELINE_MAX ? S5_HTTP_REQUEST_MAX : \
				 S5_PIPELINE_MAX)

struct s5_client {
	int state;			/* private */
	uint8_t proto;			/* enum s5_proto: SOCKS5 unless set */
	uint8_t cmd;
	struct s5_addr dst;
	const struct s5_cred *cred;	/* NULL: offer no authentication */
	uint8_t in[S5_MSG_MAX];		/* private: the server message so far */
	size_t in_len;
	uint8_t out[S5_CLIENT_OUT_MAX];	/* the next message to send */
	size_t out_len;
	uint8_t method;			/* the method the server chose (its plain one) */
	struct s5_reply reply;		/* valid after S5C_DONE or S5C_E_REPLY */
	int status;			/* HTTP status or SOCKS4 CD of a refusal */
	size_t seen;			/* private (HTTP): octets of the answer so far */
	uint8_t crlf;			/* private (HTTP): octets of "\r\n\r\n" matched */
	bool line_done;			/* private (HTTP): the status line is in */
	/* Set before the first step (SOCKS5): greeting, credentials and
	 * request in one write, the replies read in order; the greeting
	 * offers only the method that will be used (RFC 1929 with a
	 * credential, else none). */
	bool pipeline;
	/* Set before the first step (SOCKS5, not pipelined): the greeting
	 * also offers the _STREAM twin of each method, for the server to
	 * say whether it reads a stream; streams then says it did. */
	bool learn;
	bool streams;
	bool sent_all;			/* private: the request is out with the greeting */
};

void s5_client_init(struct s5_client *c, uint8_t cmd, const struct s5_addr *dst,
    const struct s5_cred *cred);
/* The same for a hop of protocol proto (enum s5_proto). CONNECT only for
 * other protocols than SOCKS5; a SOCKS4 user ID is cred's user. */
void s5_client_init_proto(struct s5_client *c, uint8_t proto, uint8_t cmd,
    const struct s5_addr *dst, const struct s5_cred *cred);
int s5_client_step(struct s5_client *c, const uint8_t *in, size_t n, size_t *used);
size_t s5_client_want(const struct s5_client *c);
/* Part of a server message is in and the rest is not (a stall or a
 * hang-up now is that server's own failure). */
bool s5_client_midway(const struct s5_client *c);
/* SOCKS5: greeting (and login) answered, the request's reply awaited and
 * none of it in: the server is connecting where the request said. SOCKS4
 * and 4a: the request sent, none of the reply in (no greeting tells that
 * the server speaks SOCKS4). */
bool s5_client_awaiting_reply(const struct s5_client *c);
/* After the first S5C_DONE of a BIND: S5C_WANT_READ, the second reply
 * next; S5C_E_STATE for any other command or state. */
int s5_client_await_peer(struct s5_client *c);
/* The errno a program should see for a failed handshake (CONTRACT.md). */
int s5_client_errno(const struct s5_client *c, int err);
/* "authentication rejected", ...; never NULL. */
const char *s5_client_strerror(int err);

/* upstream.c: the machines of the other protocols, behind the calls above. */
int s5_up_step(struct s5_client *c, const uint8_t *in, size_t n, size_t *used);
/* SOCKS4 and 4a: the request sent, none of the reply in. */
bool s5_up_awaiting_reply(const struct s5_client *c);
size_t s5_up_want(const struct s5_client *c);
/* The URL scheme of a protocol ("socks5h" for SOCKS5 with remote_dns). */
const char *s5_proto_scheme(uint8_t proto, bool remote_dns);

#endif
