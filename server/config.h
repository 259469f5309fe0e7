/*
 * config.h: socksifyd's options, from the command line and --config files,
 * and the calls that build a rule set (rules.c) from them.
 *
 * The command line is read once into an ordered list of items; building a
 * configuration applies them in that order, reading each --config file in
 * place of its item. SIGHUP builds a new configuration from the same items,
 * so an edited config file takes effect and the flags still apply.
 */
#ifndef SOCKSIFYD_CONFIG_H
#define SOCKSIFYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "defaults.h"
#include "server.h"

struct rules;

struct config_item {
	int opt;			/* CONFIG_OPT_* (config.c) */
	const char *arg;		/* into argv; NULL for a switch */
};

struct config_args {
	struct config_item *items;
	size_t n;
};

/* One listening socket: a --listen value, checked, a name not yet resolved. */
struct config_listen {
	struct s5_addr addr;
	bool twin;			/* ":PORT"'s [::] half: the port of the 0.0.0.0 half before it */
};

struct config {
	struct config_listen listen[SERVER_MAX_LISTENERS];	/* default added */
	size_t nlisten;
	bool listen_given;		/* by --listen, not the default */
	char *users_path;		/* NULL: no authentication */
	bool no_auth;			/* --no-auth: no users on purpose */
	int log_level;			/* -1 when neither -v nor -q */
	char *log_path;			/* --log FILE; NULL: stderr or syslog */
	bool syslog;			/* --syslog */
	unsigned workers;		/* --workers; 0: one per CPU */
	bool accept_shared;		/* --accept shared */
	bool has_metrics;		/* --metrics ADDR:PORT */
	struct config_listen metrics;
	struct server_limits lim;
	struct rules *rules;		/* owned until handed on */
};

enum config_parse_result {
	CONFIG_RUN,
	CONFIG_HELP,
	CONFIG_VERSION,
};

/* Reads argv into args. CONFIG_*, or -EINVAL with a one-line reason. */
int config_parse_args(int argc, char **argv, struct config_args *args,
    char *why, size_t whylen);
void config_args_free(struct config_args *args);
void config_usage(FILE *f);

/* Builds a configuration from args; 0, or -1 with a one-line reason in
 * why ("FILE:LINE: reason" for a bad config line). */
int config_build(const struct config_args *args, struct config *c,
    char *why, size_t whylen);
void config_free(struct config *c);

/* --- building a rule set (rules.c; rules.h has the checks) ------------- */

int rules_new(struct rules **out);
void rules_free(struct rules *r);
/* text: the clauses after "allow"/"deny"; 0, -EINVAL or -ENOMEM with why. */
int rules_add(struct rules *r, bool allow, const char *text, const char **why);
/* "connect", "bind", "udp" to S5_CMD_*; 0 or -EINVAL. */
int rules_command_parse(const char *name, uint8_t *cmd);
/* --no-bind, --no-udp: rules_command_ok() refuses it for everyone. */
void rules_disable_command(struct rules *r, uint8_t cmd);
/* Switched on? Tells 07 (switched off) from 02 (denied by a rule). */
bool rules_command_enabled(const struct rules *r, uint8_t cmd);
/* Deny SERVER_PROTECTED_NETS unless a rule names them; 0 or -EINVAL. */
int rules_protect_host(struct rules *r);
/* Re-reads the host's interface addresses into r's protected list (when it
 * has one): how many are protected now, or -1 (r unchanged). */
int rules_refresh_host(struct rules *r);
/* A copy of r to change while r is in use; NULL when out of memory. */
struct rules *rules_clone(const struct rules *r);
bool rules_addr_is_loopback(const struct sockaddr *sa);
/* A comma-separated list of CIDRs into out (at most max): count, or -EINVAL. */
int rules_parse_list(const char *list, struct s5_cidr *out, size_t max);

#endif
