/*
 * rules.h: who may use socksifyd, for which command, and to where.
 *
 * Rules come from --allow/--deny (and the same lines in --config), are
 * matched in the order given, first match wins, and a request that no rule
 * matches is allowed -- except for the built-in protection of the host's
 * own loopback and link-local ranges, which applies whenever any listener
 * is not on loopback (CONTRACT.md: no open relay), unless a rule allows
 * them explicitly. Destinations are checked after name resolution, per
 * address actually connected to (or per UDP datagram), so a name cannot
 * smuggle a denied address; rules naming a destination name ("to .corp")
 * are checked before resolution too.
 *
 * The event loop owns the current rule set; SIGHUP builds a new one and
 * swaps it in with rules_set_current() only if it parsed completely.
 */
#ifndef SOCKSIFYD_RULES_H
#define SOCKSIFYD_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct rules;

/* The rule set in force (never NULL after start-up). */
const struct rules *rules_current(void);
void rules_set_current(struct rules *r);	/* takes ownership, frees the old */
/* This thread's rules from now on, owned elsewhere (a worker's view). */
void rules_use(const struct rules *r);

/* Who asks, as far as it is known at a check. */
struct rules_who {
	const struct sockaddr *client;	/* its address (a PROXY header's) */
	const char *user;		/* the login, NULL: none (yet) */
	const char *name;		/* the destination name asked for, NULL: an address */
};

/* May this client use the server at all? Checked at accept. */
bool rules_client_ok(const struct rules *r, const struct sockaddr *client);

/* Is this command (S5_CMD_*) enabled, and allowed for this client? */
bool rules_command_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd);

/* May this client ask for the name w->name, port port, before it is
 * resolved? False only when every resolution would surely be refused. */
bool rules_name_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd,
    uint16_t port);

/* May this client, with this command, reach this resolved address (asked
 * for as w->name)? For CONNECT the target, for UDP ASSOCIATE each
 * datagram's destination (a reply's sender: by address alone), for BIND
 * the address the client expects to connect back (when not zero). */
bool rules_dest_ok(const struct rules *r, const struct rules_who *w, uint8_t cmd,
    const struct sockaddr *dst);

#endif
