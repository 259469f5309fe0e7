/*
 * socksify: run a command with its TCP connections tunnelled through SOCKS5.
 *
 * The launcher only prepares the environment and starts the right front end
 * (ARCHITECTURE.md): it finds libsocksify.so, picks the mode (--mode), refuses
 * programs nothing can reach (set-id ones; static and Go ones without the
 * supervisor), sets LD_PRELOAD and SOCKSIFY_*, and runs COMMAND. Under the
 * supervisor (auto, seccomp) COMMAND is a child that installs the seccomp
 * filter before exec, and the launcher serves its notifications
 * (preload/supervisor.c) until COMMAND exits. With --mode preload and an
 * upstream proxy it execs COMMAND in place, so exit status and signals are
 * COMMAND's own. Without an upstream proxy it starts the bundled socksifyd on
 * a loopback ephemeral port, runs COMMAND as a child, forwards signals to it,
 * and stops the server when it is done.
 * Exit status follows env(1): 125 our failure, 126 cannot execute, 127 not
 * found (CONTRACT.md).
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "defaults.h"
#include "socks5.h"
#include "../preload/preload.h"
#include "../preload/supervisor.h"
#include "check.h"

enum {
	EXIT_SELF = 125,		/* socksify itself failed */
	EXIT_CANNOT_EXEC = 126,
	EXIT_NOT_FOUND = 127,
	SHEBANG_MAX = 256,		/* the kernel's BINPRM_BUF_SIZE */
	ELF_PHDRS_MAX = 65536,		/* bytes of program headers binfmt_elf takes */
	LAUNCHER_NOFILE = 20000,	/* soft descriptor limit the supervisor asks for */
};

#define READY_PREFIX	"socksifyd: listening on "
#define DEFAULT_PATH	"/bin:/usr/bin"	/* what execvp(3) uses without PATH */
#define STR_(x)		#x
#define STR(x)		STR_(x)		/* a number macro as text, for usage() */

/* Signals a user may send to socksify that belong to COMMAND. */
static const int fwd_signals[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT,
	SIGCHLD, SIGPIPE,	/* these two only wake the loop */
};
#define NSIGNALS	(sizeof(fwd_signals) / sizeof(fwd_signals[0]))

struct options {
	const char *proxy[PRELOAD_MAX_PROXIES];
	size_t nproxy;
	const char *exclude[2 * PRELOAD_MAX_EXCLUDES];
	size_t nexclude;
	bool exclude_none, trace, quiet, force, check;
	const char *log_file;
	const char *check_target;	/* --check-target HOST:PORT */
	const char *pick;		/* --pick order|spread */
	const char *mode;		/* --mode, else SOCKSIFY_MODE, else "auto" */
};

/* How COMMAND's tree is reached (CONTRACT.md: --mode, SOCKSIFY_MODE). */
enum run_mode { MODE_AUTO, MODE_PRELOAD, MODE_SECCOMP };
static const char *const mode_names[] = { "auto", "preload", "seccomp" };

/* A signal as the handler saw it: the loop decides what to do with it. */
struct sig_note {
	int sig;
	int from_user;		/* sent by kill(2) and friends, not the kernel */
};

static pid_t server_pid = -1;
static int server_err = -1;		/* read end of the server's stderr */
static int sig_pipe[2] = { -1, -1 };
static struct sigaction saved_act[NSIGNALS];

static void server_stop(void);

/* One line on stderr; a trailing ':' in fmt appends strerror(errno). */
static void
vmsg(const char *fmt, va_list ap)
{
	char line[PATH_MAX + 256];
	int saved = errno;
	size_t len;

	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	if (len > 0 && line[len - 1] == ':')
		snprintf(line + len, sizeof(line) - len, " %s", strerror(saved));
	fprintf(stderr, "socksify: %s\n", line);
}

static void __attribute__((format(printf, 2, 3), noreturn))
die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	server_stop();
	exit(code);
}

static void __attribute__((format(printf, 1, 2)))
warn_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		die(EXIT_SELF, "out of memory");
	return p;
}

/* a + b + c, freshly allocated. */
static char *
str_cat3(const char *a, const char *b, const char *c)
{
	char *p;

	if (asprintf(&p, "%s%s%s", a, b, c) < 0)
		die(EXIT_SELF, "out of memory");
	return p;
}

/* Appends item to a malloc'd comma-separated list, which may be NULL. */
static char *
list_add(char *list, const char *item)
{
	char *p = str_cat3(list != NULL ? list : "", list != NULL ? "," : "", item);

	free(list);
	return p;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
usage(void)
{
	printf("usage: socksify [OPTIONS] [--] COMMAND [ARGS...]\n"
	    "       socksify --check [-x URL]... [--check-target HOST:PORT]\n"
	    "Run COMMAND with its TCP connections tunnelled through SOCKS5 (or HTTP\n"
	    "CONNECT, SOCKS4) proxies.\n\n"
	    "  -x, --proxy URL     upstream proxy, socks5[h]://[USER:PASS@]HOST[:PORT]\n"
	    "                      or HOST:PORT, http://[USER[:PASS]@]HOST[:PORT] (HTTP\n"
	    "                      CONNECT), socks4[a]://[USER@]HOST[:PORT]; repeat it\n"
	    "                      to chain proxies, in order; 'URL|URL|...' lists\n"
	    "                      alternatives for one hop (same scheme)\n"
	    "      --pick HOW      which alternative a connection uses: order (the\n"
	    "                      first alive, default) or spread (round robin); one\n"
	    "                      that fails is skipped for a back-off of 1 s\n"
	    "                      doubling to 60 s, shared by the process tree\n"
	    "  -e, --exclude CIDR  connect directly to CIDR, or to a host NAME or a\n"
	    "                      .SUFFIX resolved locally (repeatable, or a comma\n"
	    "                      list); added to the\n"
	    "                      defaults (" LAUNCHER_UPSTREAM_EXCLUDE " with -x, none with\n"
	    "                      the bundled server); `-e none' clears them\n"
	    "  -t, --trace         one line per connection COMMAND makes, to stderr\n"
	    "      --log FILE      library and trace messages to FILE, not stderr\n"
	    "  -q, --quiet         only errors, no line for a failing proxy (-t still wins)\n"
	    "  -m, --mode MODE     auto (default): the library, and a seccomp supervisor\n"
	    "                      for what it cannot reach (static, Go, raw system\n"
	    "                      calls); preload: the library only; seccomp: the\n"
	    "                      supervisor only\n"
	    "      --check         run no COMMAND: walk the proxy chain step by step\n"
	    "                      (TCP, handshake, authentication, CONNECT, remote\n"
	    "                      names, UDP) and print each step; exit 0 if it works,\n"
	    "                      1 if not, 125 for a usage error\n"
	    "      --check-target HOST:PORT\n"
	    "                      what --check asks the last hop for (default: a name\n"
	    "                      it resolves under remote resolution, else itself;\n"
	    "                      a policy refusal of that default still passes;\n"
	    "                      nothing at its localhost: its own address next)\n"
	    "  -f, --force         run COMMAND even when it cannot be reached\n"
	    "                      (setuid, setcap; static, Go and 32-bit without\n"
	    "                      the supervisor), unproxied\n"
	    "  -h, --help          this help\n"
	    "  -V, --version       version\n\n"
	    "Without -x or SOCKSIFY_PROXY, a bundled socksifyd runs on a loopback port\n"
	    "for the life of COMMAND. Environment, defaults in brackets: SOCKSIFY_PROXY,\n"
	    "SOCKSIFY_EXCLUDE [" LAUNCHER_UPSTREAM_EXCLUDE "; a value replaces it, one\n"
	    "starting with + adds to it], SOCKSIFY_LOG [warn], SOCKSIFY_LOG_FILE,\n"
	    "SOCKSIFY_TIMEOUT [" STR(PRELOAD_TIMEOUT_S) " s], SOCKSIFY_PICK [order], SOCKSIFY_MODE [auto],\n"
	    "SOCKSIFY_PIPELINE [auto: on for the bundled server, SOCKSIFY_PIPELINE_PROXY,\n"
	    "and for a server that said it reads a stream], SOCKSIFY_UDP [proxy:\n"
	    "UDP through the proxy; block; pass], SOCKSIFY_DNS (a resolver, through the\n"
	    "proxy, for DNS queries placeholders cannot answer), SOCKSIFY_IOURING [deny],\n"
	    "SOCKSIFY_LIBRARY, SOCKSIFY_SERVER. Exit status: COMMAND's,\n"
	    "or 125 (socksify failed), 126 (COMMAND cannot be executed), 127 (COMMAND not\n"
	    "found).\n");
}

/*
 * Validates one hop (a URL, or alternatives "URL|URL"); the library parses
 * it again with the same code.
 * The message leaves out USER:PASS, which must not end up in a log.
 */
static void
proxy_check(const char *url, const char *what)
{
	struct s5_proxy alts[PRELOAD_MAX_ALTS];
	const char *why = "invalid", *at = strrchr(url, '@');
	const char *shown = at != NULL ? at + 1 : url, *hidden = at != NULL ? "...@" : "";
	size_t n, bad;

	if (strchr(url, ',') != NULL)
		die(EXIT_SELF, "%s %s%s: one proxy a -x: a chain is one -x per hop, "
		    "in order (a ',' inside a URL is written %%2C)", what, hidden, shown);
	if (s5_hop_parse(url, strlen(url), alts, PRELOAD_MAX_ALTS, &n, &bad, &why) < 0) {
		if (bad > 0 && strchr(url, '|') != NULL)
			die(EXIT_SELF, "%s %s%s: alternative %zu: %s", what, hidden, shown,
			    bad, why);
		die(EXIT_SELF, "%s %s%s: %s", what, hidden, shown, why);
	}
}

/* -e, or an item of SOCKSIFY_EXCLUDE (what): a CIDR, a host NAME or a .SUFFIX,
 * as the library reads them (config_add_exclude). */
static void
exclude_check(const char *item, const char *what)
{
	struct s5_cidr cidr;
	char name[S5_DOMAIN_MAX + 1];
	const char *why = "invalid";

	if (s5_cidr_parse(item, &cidr, &why) < 0 &&
	    !s5_name_normalize(item, name, sizeof(name)))
		die(EXIT_SELF, "%s %s: %s, and not a host name or .suffix", what, item, why);
}

/* The list the library will read: at most PRELOAD_MAX_EXCLUDES ranges and
 * as many names and suffixes (config.c, which would ignore the rest, and
 * tunnel what the user meant to exclude). */
static void
exclude_count(const char *list)
{
	const char *rest = list, *item;
	struct s5_cidr cidr;
	const char *why;
	size_t len, ranges = 0, names = 0;
	char *s;

	while (list != NULL && s5_list_next(&rest, &item, &len)) {
		if ((s = strndup(item, len)) == NULL)
			die(EXIT_SELF, "out of memory");
		if (s5_cidr_parse(s, &cidr, &why) == 0)
			ranges++;
		else
			names++;
		free(s);
	}
	if (ranges > PRELOAD_MAX_EXCLUDES || names > PRELOAD_MAX_EXCLUDES)
		die(EXIT_SELF, "more than %d %s to exclude (%zu, the defaults "
		    "among them)", PRELOAD_MAX_EXCLUDES, ranges > PRELOAD_MAX_EXCLUDES ?
		    "ranges" : "names and suffixes", ranges > PRELOAD_MAX_EXCLUDES ?
		    ranges : names);
}

/* SOCKSIFY_EXCLUDE, when no -e replaces it: every item is checked as -e's
 * are (the library would warn and ignore a bad one, tunnelling what the
 * user meant to exclude). Split as the library splits it. */
static void
exclude_env_check(const char *env, bool upstream)
{
	const char *rest, *item;
	size_t len;
	char *s;

	if (env == NULL)
		return;
	for (rest = env[0] == '+' ? env + 1 : env; s5_list_next(&rest, &item, &len); free(s)) {
		if ((s = strndup(item, len)) == NULL)
			die(EXIT_SELF, "out of memory");
		if (strcasecmp(s, "none") != 0)
			exclude_check(s, "SOCKSIFY_EXCLUDE");
	}
	/* "+..." adds to the defaults, which an upstream proxy has. */
	if (env[0] == '+' && upstream) {
		s = list_add(xstrdup(LAUNCHER_UPSTREAM_EXCLUDE), env + 1);
		exclude_count(s);
		free(s);
	} else {
		exclude_count(env[0] == '+' ? env + 1 : env);
	}
}

/* -e ITEM[,ITEM...]: each item (split as SOCKSIFY_EXCLUDE is, at commas:
 * proxychains' users write lists) checked and kept; "none" drops the
 * defaults. */
static void
exclude_add(struct options *o, const char *arg)
{
	const char *rest = arg, *item;
	size_t len, n = 0;
	char *s;

	while (s5_list_next(&rest, &item, &len) && ++n > 0) {
		s = strndup(item, len);
		if (s == NULL)
			die(EXIT_SELF, "out of memory");
		if (strcasecmp(s, "none") == 0) {
			o->exclude_none = true;
			free(s);
			continue;
		}
		exclude_check(s, "exclude");
		if (o->nexclude == 2 * PRELOAD_MAX_EXCLUDES)
			die(EXIT_SELF, "more than %d exclusions", 2 * PRELOAD_MAX_EXCLUDES);
		o->exclude[o->nexclude++] = s;
	}
	if (n == 0)
		die(EXIT_SELF, "exclude '%s': empty (a CIDR, a host name or a .suffix)", arg);
}

/* --pick or SOCKSIFY_PICK: order or spread (NULL and empty: the default). */
static void
pick_check(const char *pick, const char *what)
{
	if (pick != NULL && *pick != '\0' && strcasecmp(pick, "order") != 0 &&
	    strcasecmp(pick, "spread") != 0)
		die(EXIT_SELF, "%s %s: not order or spread", what, pick);
}

static void
options_parse(int argc, char **argv, struct options *o)
{
	enum { OPT_LOG = 256, OPT_CHECK, OPT_CHECK_TARGET, OPT_PICK };
	static const struct option longopts[] = {
		{ "proxy", required_argument, NULL, 'x' },
		{ "exclude", required_argument, NULL, 'e' },
		{ "trace", no_argument, NULL, 't' },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "quiet", no_argument, NULL, 'q' },
		{ "force", no_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "check-target", required_argument, NULL, OPT_CHECK_TARGET },
		{ "pick", required_argument, NULL, OPT_PICK },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;	/* our own one-line messages, and exit 125 */
	/* '+': options end at COMMAND, whose own options are its business. */
	while ((c = getopt_long(argc, argv, "+:x:e:tqfm:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'x':
			proxy_check(optarg, "proxy");
			if (o->nproxy == PRELOAD_MAX_PROXIES)
				die(EXIT_SELF, "more than %d proxies in the chain",
				    PRELOAD_MAX_PROXIES);
			o->proxy[o->nproxy++] = xstrdup(optarg);
			/* /proc/PID/cmdline is anyone's to read, and this
			 * process stays (the supervisor, the embedded server's
			 * parent): credentials leave it, as curl's -U does. */
			if (strchr(optarg, '@') != NULL)
				memset(optarg, '*', strlen(optarg));
			break;
		case 'e':
			exclude_add(o, optarg);
			break;
		case 't':
			o->trace = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'f':
			o->force = true;
			break;
		case 'm':
			o->mode = optarg;
			break;
		case OPT_LOG:
			o->log_file = optarg;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_CHECK_TARGET:
			o->check_target = optarg;
			break;
		case OPT_PICK:
			o->pick = optarg;
			break;
		case 'h':
			usage();
			exit(0);
		case 'V':
			printf("socksify %s\n", SOCKSIFY_VERSION);
			exit(0);
		case ':':
			die(EXIT_SELF, "option %s needs an argument", argv[optind - 1]);
		default:
			if (strncmp(argv[optind - 1], "--", 2) == 0 && optopt != 0)
				die(EXIT_SELF, "option %s takes no argument", argv[optind - 1]);
			if (optopt != 0)
				die(EXIT_SELF, "unknown option -%c (try --help)", optopt);
			die(EXIT_SELF, "unknown option %s (try --help)", argv[optind - 1]);
		}
	}
	if (o->check_target != NULL && !o->check)
		die(EXIT_SELF, "--check-target needs --check");
	pick_check(o->pick, "--pick");
	if (o->check && optind < argc)
		die(EXIT_SELF, "--check runs no command: %s", argv[optind]);
	if (!o->check && optind >= argc)
		die(EXIT_SELF, "missing COMMAND (try --help)");
}

/*
 * Where the launcher lives: build/ holds all three artefacts, an installed
 * tree has PREFIX/bin/socksify, PREFIX/sbin/socksifyd and
 * PREFIX/lib/socksify/libsocksify.so (make install).
 */
static char *
self_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;

	if (n < 0)
		die(EXIT_SELF, "cannot find myself: /proc/self/exe:");
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	return xstrdup(buf);
}

/* What the launcher reads of an ELF header, either class. */
struct elf_head {
	bool is64;
	unsigned type, machine, phentsize, phnum, shentsize, shnum, shstrndx;
	uint64_t phoff, shoff;
};

/* h (n bytes read from the start of a file) as an ELF header of this
 * machine's byte order whose program headers exec would take; false for
 * anything else (exec, or ld.so, decides). */
static bool
elf_head_read(const unsigned char *h, size_t n, struct elf_head *e)
{
	if (n < EI_NIDENT || memcmp(h, ELFMAG, SELFMAG) != 0)
		return false;
	e->is64 = h[EI_CLASS] == ELFCLASS64;
	if ((h[EI_CLASS] != ELFCLASS32 && !e->is64) ||
	    h[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
		return false;
	if (e->is64 && n >= sizeof(Elf64_Ehdr)) {
		Elf64_Ehdr x;
		memcpy(&x, h, sizeof(x));	/* h need not be aligned */
		e->type = x.e_type, e->phoff = x.e_phoff, e->phentsize = x.e_phentsize;
		e->phnum = x.e_phnum, e->shoff = x.e_shoff, e->shentsize = x.e_shentsize;
		e->shnum = x.e_shnum, e->shstrndx = x.e_shstrndx, e->machine = x.e_machine;
	} else if (!e->is64 && n >= sizeof(Elf32_Ehdr)) {
		Elf32_Ehdr x;
		memcpy(&x, h, sizeof(x));
		e->type = x.e_type, e->phoff = x.e_phoff, e->phentsize = x.e_phentsize;
		e->phnum = x.e_phnum, e->shoff = x.e_shoff, e->shentsize = x.e_shentsize;
		e->shnum = x.e_shnum, e->shstrndx = x.e_shstrndx, e->machine = x.e_machine;
	} else {
		return false;
	}
	if (e->type != ET_EXEC && e->type != ET_DYN)
		return false;	/* an object file or a core: exec refuses it */
	/* As the kernel's binfmt_elf: headers of the class's own size, at
	 * most 64 KiB of them (so no PN_XNUM count from section 0), or exec
	 * refuses the file (ENOEXEC), and walking 2^32 of them here took 20
	 * minutes before it did. */
	return e->phentsize == (e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) &&
	    e->phnum != 0 && (uint64_t)e->phnum * e->phentsize <= ELF_PHDRS_MAX;
}

/* 1 when the file has a PT_INTERP (a dynamic loader), 0 without, -1
 * truncated. */
static int
elf_has_interp(int fd, const struct elf_head *e)
{
	uint32_t type;
	unsigned i;

	/* p_type is the first word of a program header in both classes. */
	for (i = 0; i < e->phnum; i++) {
		if (pread(fd, &type, sizeof(type), (off_t)(e->phoff +
		    (uint64_t)i * e->phentsize)) != sizeof(type))
			return -1;
		if (type == PT_INTERP)
			return 1;
	}
	return 0;
}

/* Whether e is of the launcher's own class and machine, as ld.so needs a
 * library to be for a program like it (/proc/self/exe read once). */
static bool
elf_is_ours(const struct elf_head *e)
{
	static int machine = -1;
	unsigned char h[sizeof(Elf64_Ehdr)];
	struct elf_head me;
	ssize_t n;
	int fd;

	if (machine < 0) {
		machine = 0;
		if ((fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)) >= 0) {
			n = pread(fd, h, sizeof(h), 0);
			if (n > 0 && elf_head_read(h, (size_t)n, &me))
				machine = (int)me.machine;
			close(fd);
		}
	}
	/* Unknown (no /proc): the class alone. */
	return e->is64 == (sizeof(void *) == 8) &&
	    (machine == 0 || e->machine == (unsigned)machine);
}

/*
 * Why the file at path is not a libsocksify.so ld.so would load here, or
 * NULL. ld.so ignores a preloaded file that is no shared object of this
 * class, or loads another library that does nothing: either way the
 * program would run unproxied under --mode preload.
 */
static const char *
library_why_not(const char *path)
{
	static const char mark[] = PRELOAD_LIBRARY_MARK;
	unsigned char h[sizeof(Elf64_Ehdr)];
	char buf[LAUNCHER_LIBRARY_CHUNK + sizeof(mark)];
	const char *why = NULL;
	struct elf_head e;
	struct stat st;
	size_t keep = 0;
	off_t off = 0;
	ssize_t n;
	int fd, interp;

	/* O_NONBLOCK: a FIFO named there must not hold open(). */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0 || fstat(fd, &st) < 0) {
		why = strerror(errno);
		if (fd >= 0)
			close(fd);
		return why;
	}
	n = S_ISREG(st.st_mode) ? pread(fd, h, sizeof(h), 0) : -1;
	if (n < 0 || !elf_head_read(h, (size_t)n, &e) ||
	    (interp = elf_has_interp(fd, &e)) < 0)
		why = "not an ELF file of this machine";
	else if (e.type != ET_DYN || interp)
		why = "a program, not a shared library";
	else if (!elf_is_ours(&e))
		why = e.is64 != (sizeof(void *) == 8) ? (e.is64 ?
		    "a 64-bit library (this is a 32-bit socksify)" :
		    "a 32-bit library (this is a 64-bit socksify)") :
		    "a library for another machine";
	if (why != NULL) {
		close(fd);
		return why;
	}
	/* The mark, read in chunks (a file that shrinks meanwhile only
	 * ends the search), each after the last's tail. */
	why = "not libsocksify.so (another library)";
	while ((uint64_t)off < PRELOAD_LIBRARY_FILE_MAX &&
	    (n = pread(fd, buf + keep, LAUNCHER_LIBRARY_CHUNK, off)) > 0) {
		size_t have = keep + (size_t)n;

		if (memmem(buf, have, mark, sizeof(mark)) != NULL) {
			why = NULL;
			break;
		}
		off += n;
		keep = have < sizeof(mark) - 1 ? have : sizeof(mark) - 1;
		memmove(buf, buf + have - keep, keep);
	}
	close(fd);
	return why;
}

/* The library beside the launcher or installed; NULL when there is none
 * and it is not required (--mode seccomp runs no library anywhere). A
 * library SOCKSIFY_LIBRARY names is checked (library_why_not()). */
static char *
library_find(const char *dir, bool required)
{
	const char *env = getenv("SOCKSIFY_LIBRARY");
	char *cand[2] = { NULL, NULL }, *lib = NULL, real[PATH_MAX];
	size_t i;

	if (env != NULL && *env != '\0') {
		const char *why;

		if (realpath(env, real) == NULL || access(real, R_OK) < 0)
			die(EXIT_SELF, "SOCKSIFY_LIBRARY %s:", env);
		if ((why = library_why_not(real)) != NULL)
			die(EXIT_SELF, "SOCKSIFY_LIBRARY %s: %s", env, why);
		lib = xstrdup(real);
	} else {
		cand[0] = str_cat3(dir, "/", "libsocksify.so");
		cand[1] = str_cat3(dir, "/../lib/socksify/", "libsocksify.so");
		for (i = 0; i < 2 && lib == NULL; i++)
			if (realpath(cand[i], real) != NULL && access(real, R_OK) == 0)
				lib = xstrdup(real);
		if (lib == NULL && required)
			die(EXIT_SELF, "library not found: neither %s nor %s exists "
			    "(set SOCKSIFY_LIBRARY)", cand[0], cand[1]);
		free(cand[0]);
		free(cand[1]);
		if (lib == NULL)
			return NULL;
	}
	/* ld.so splits LD_PRELOAD at both ':' and ' ' (ld.so(8)). */
	if (strpbrk(lib, ": ") != NULL)
		die(EXIT_SELF, "library path %s has a ':' or space, which LD_PRELOAD "
		    "cannot carry", lib);
	return lib;
}

/*
 * The embedded server of the launcher's own tree: beside it in build/ (the
 * library is there too), else PREFIX/sbin/socksifyd, where make install puts
 * a daemon; a socksifyd an older make install left in PREFIX/bin is then not
 * the one taken. A tree put together by hand may have it beside the launcher.
 */
static char *
server_find(const char *dir)
{
	const char *env = getenv("SOCKSIFY_SERVER");
	char *beside = str_cat3(dir, "/", "libsocksify.so"), *cand[2], *server = NULL;
	char real[PATH_MAX];
	size_t i, n = 0;

	if (env != NULL && *env != '\0') {
		if (access(env, X_OK) < 0)
			die(EXIT_SELF, "embedded server %s:", env);
		free(beside);
		return xstrdup(env);
	}
	if (access(beside, F_OK) < 0)
		cand[n++] = str_cat3(dir, "/../sbin/", "socksifyd");
	cand[n++] = str_cat3(dir, "/", "socksifyd");
	for (i = 0; i < n && server == NULL; i++)
		if (access(cand[i], X_OK) == 0)
			server = xstrdup(realpath(cand[i], real) != NULL ? real : cand[i]);
	if (server == NULL && n == 1)
		die(EXIT_SELF, "embedded server %s:", cand[0]);
	if (server == NULL)
		die(EXIT_SELF, "embedded server not found: neither %s nor %s can be "
		    "run (set SOCKSIFY_SERVER)", cand[0], cand[1]);
	for (i = 0; i < n; i++)
		free(cand[i]);
	free(beside);
	return server;
}

/* 0 when path is a file we may execute, else -errno as execve would see it. */
static int
exec_check(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	if (access(path, X_OK) < 0)
		return -errno;
	return 0;
}

/*
 * COMMAND as execvp(3) finds it: a name with a '/' is used as is, others are
 * searched in PATH (an empty entry is the current directory). A match that is
 * not executable is remembered while the search goes on. Returns NULL with
 * *err = errno when there is nothing to run.
 */
static char *
command_find(const char *name, int *err)
{
	const char *path = getenv("PATH"), *p, *end;
	char *cand, *dir;
	int r, first = 0;

	if (*name == '\0') {
		*err = ENOENT;
		return NULL;
	}
	if (strchr(name, '/') != NULL) {
		r = exec_check(name);
		*err = -r;
		return r == 0 ? xstrdup(name) : NULL;
	}
	if (path == NULL)
		path = DEFAULT_PATH;
	for (p = path;; p = end + 1) {
		end = strchrnul(p, ':');
		dir = end == p ? xstrdup(".") : strndup(p, (size_t)(end - p));
		if (dir == NULL)
			die(EXIT_SELF, "out of memory");
		cand = str_cat3(dir, "/", name);
		free(dir);
		r = exec_check(cand);
		if (r == 0)
			return cand;
		free(cand);
		if (r != -ENOENT && r != -ENOTDIR && first == 0)
			first = -r;
		if (*end == '\0')
			break;
	}
	*err = first != 0 ? first : ENOENT;
	return NULL;
}

/*
 * Why an ELF file is out of the library's reach, or NULL. Without PT_INTERP
 * there is no dynamic loader to honour LD_PRELOAD (static and static-pie).
 * ld.so loads no library of the other class or machine (a 32-bit
 * program and our 64-bit library, an emulated one): it says so and runs
 * the program without it. A Go
 * program makes its own system calls even when dynamically linked, so
 * connect() never passes through libc; its section names give it away.
 */
static const char *
elf_why(int fd, const unsigned char *h, size_t n)
{
	static const char go_section[] = ".go.buildinfo";
	uint64_t stroff, strsize;
	struct elf_head e;
	bool go = false;
	char *strtab;
	int interp;

	if (!elf_head_read(h, n, &e) || (interp = elf_has_interp(fd, &e)) < 0)
		return NULL;	/* truncated: exec decides */
	if (interp == 0)
		return "statically linked";
	if (e.is64 != (sizeof(void *) == 8))
		return e.is64 ? "a 64-bit program (the library is 32-bit)" :
		    "a 32-bit program (the library is 64-bit)";
	if (!elf_is_ours(&e))
		return "a program for another machine (the library is for this one)";
	if (e.shoff == 0 || e.shstrndx == SHN_UNDEF || e.shstrndx >= e.shnum)
		return NULL;
	if (e.is64) {
		Elf64_Shdr x;
		if (pread(fd, &x, sizeof(x), (off_t)(e.shoff + (uint64_t)e.shstrndx *
		    e.shentsize)) != sizeof(x))
			return NULL;
		stroff = x.sh_offset, strsize = x.sh_size;
	} else {
		Elf32_Shdr x;
		if (pread(fd, &x, sizeof(x), (off_t)(e.shoff + (uint64_t)e.shstrndx *
		    e.shentsize)) != sizeof(x))
			return NULL;
		stroff = x.sh_offset, strsize = x.sh_size;
	}
	if (strsize == 0 || strsize > LAUNCHER_ELF_STRTAB_MAX ||
	    (strtab = malloc(strsize)) == NULL)
		return NULL;
	if (pread(fd, strtab, strsize, (off_t)stroff) == (ssize_t)strsize)
		go = memmem(strtab, strsize, go_section, sizeof(go_section)) != NULL;
	free(strtab);
	return go ? "Go program (its runtime bypasses libc)" : NULL;
}

/*
 * The interpreter of a "#!" script, as the kernel reads the line: one path
 * and at most one argument. For "#!/usr/bin/env NAME" it is NAME in PATH.
 */
static char *
script_interp(const unsigned char *h, size_t n)
{
	char line[SHEBANG_MAX + 1], *interp, *arg, *slash;
	int err;

	memcpy(line, h + 2, n - 2);
	line[n - 2] = '\0';
	line[strcspn(line, "\n")] = '\0';
	interp = line + strspn(line, " \t");
	arg = interp + strcspn(interp, " \t");
	if (*arg != '\0')
		*arg++ = '\0';
	arg += strspn(arg, " \t");
	if (*interp == '\0')
		return NULL;
	slash = strrchr(interp, '/');
	if (strcmp(slash != NULL ? slash + 1 : interp, "env") != 0)
		return xstrdup(interp);
	/* env -S splits the rest into words; other env options we cannot follow. */
	if (strncmp(arg, "-S", 2) == 0)
		arg += 2 + strspn(arg + 2, " \t");
	arg[strcspn(arg, " \t")] = '\0';
	if (*arg == '\0' || *arg == '-' || strchr(arg, '=') != NULL)
		return NULL;
	return command_find(arg, &err);
}

/*
 * Why the library cannot reach the program at path, or NULL. ld.so ignores
 * LD_PRELOAD in secure-execution mode (setuid, setgid, file capabilities;
 * ld.so(8)), and a static program has no ld.so at all. The kernel ignores
 * set-id bits on scripts, so a script is judged by its interpreter. *setid:
 * the reason is a set-id bit or a capability, which supervision cannot
 * keep either (no_new_privs).
 */
static const char *
reach_why(const char *path, bool follow_script, bool *setid)
{
	static char why[PATH_MAX + 64];
	unsigned char h[SHEBANG_MAX];
	const char *r = NULL;
	struct stat st;
	ssize_t n;
	char *interp;
	int fd;

	*setid = false;
	if (stat(path, &st) < 0)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? 0 : pread(fd, h, sizeof(h), 0);
	if (n >= 2 && h[0] == '#' && h[1] == '!') {
		close(fd);
		if (!follow_script || (interp = script_interp(h, (size_t)n)) == NULL)
			return NULL;
		if ((r = reach_why(interp, false, setid)) != NULL) {
			snprintf(why, sizeof(why), "interpreter %s: %s", interp, r);
			r = why;
		}
		free(interp);
		return r;
	}
	if (st.st_mode & S_ISUID)
		r = "setuid";
	else if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP))
		r = "setgid";	/* without group x it means mandatory locking */
	else if (getxattr(path, "security.capability", NULL, 0) > 0)
		r = "file capabilities (setcap)";
	*setid = r != NULL;
	if (r == NULL && n > 0)
		r = elf_why(fd, h, (size_t)n);
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * LD_PRELOAD with lib first (when add) and no other copy of it: an entry is
 * the same library when it names the same file. NULL when nothing is left.
 */
static char *
preload_compose(const char *lib, const char *old, bool add)
{
	struct stat ls, es;
	char *copy, *tok, *save = NULL, *out = add && lib != NULL ? xstrdup(lib) : NULL, *p;
	bool have = lib != NULL && stat(lib, &ls) == 0;
	const char *base;

	if (old == NULL)
		return out;
	copy = xstrdup(old);
	for (tok = strtok_r(copy, ": ", &save); tok != NULL;
	    tok = strtok_r(NULL, ": ", &save)) {
		/* Ours, by path or file; with none found (--mode seccomp), any
		 * libsocksify.so an outer run left there. */
		base = strrchr(tok, '/') != NULL ? strrchr(tok, '/') + 1 : tok;
		if ((lib != NULL && strcmp(tok, lib) == 0) || (have && stat(tok, &es) == 0 &&
		    es.st_dev == ls.st_dev && es.st_ino == ls.st_ino) ||
		    (lib == NULL && strcmp(base, "libsocksify.so") == 0))
			continue;
		p = str_cat3(out != NULL ? out : "", out != NULL ? ":" : "", tok);
		free(out);
		out = p;
	}
	free(copy);
	return out;
}

static void
copy_server_output(void)
{
	char buf[LAUNCHER_COPY_BUF_BYTES];
	ssize_t n = read(server_err, buf, sizeof(buf));

	if (n > 0) {
		if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
			/* Nowhere to report it; keep draining so the server never blocks. */
		}
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(server_err);
		server_err = -1;
	}
}

/*
 * A fresh password for the embedded server, as hex: any local user can reach
 * a loopback port, and must not borrow the command's proxy (and its
 * network identity). 0, or -1 when no randomness could be had.
 */
static int
server_secret(char *hex, size_t cap)
{
	unsigned char raw[LAUNCHER_SECRET_BYTES];
	size_t i;

	if (cap < 2 * sizeof(raw) + 1 || getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return -1;
	for (i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/*
 * Starts socksifyd on 127.0.0.1:0 and returns
 * "socks5h://socksify:SECRET@127.0.0.1:PORT", from its ready line. The
 * server takes its one user from a pipe (--users /dev/fd/N), so the secret
 * is in no argv and no file; the command gets it in SOCKSIFY_PROXY. The
 * server has a process group of its own: a ^C on the terminal reaches
 * COMMAND, not the server that COMMAND still needs.
 */
static char *
server_start(const char *server, const char *lib)
{
	char line[PATH_MAX], held[PATH_MAX] = "", *nl, *addr, *pre, *url;
	char secret[2 * LAUNCHER_SECRET_BYTES + 1], users[sizeof(secret) + 16];
	char users_path[sizeof("/dev/fd/") + 12];
	int cred[2], ufd;
	size_t len = 0;
	struct s5_addr a;
	struct timespec t0;
	struct pollfd pf;
	const char *why;
	pid_t parent = getpid();
	int fds[2], r;
	ssize_t n;
	long left;

	if (server_secret(secret, sizeof(secret)) < 0)
		die(EXIT_SELF, "getrandom:");
	/* Written before the fork: the line is far below a pipe's capacity. */
	r = snprintf(users, sizeof(users), "%s:%s\n", LAUNCHER_SERVER_USER, secret);
	if (pipe2(cred, O_CLOEXEC) < 0 || write(cred[1], users, (size_t)r) != r)
		die(EXIT_SELF, "pipe:");
	close(cred[1]);
	explicit_bzero(users, sizeof(users));
	if (pipe2(fds, O_CLOEXEC) < 0)
		die(EXIT_SELF, "pipe:");
	server_pid = fork();
	if (server_pid < 0)
		die(EXIT_SELF, "fork:");
	if (server_pid == 0) {
		/* Dies with us; the getppid() check closes the race with our exit. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(EXIT_SELF);
		setpgid(0, 0);
		dup2(fds[1], STDERR_FILENO);
		r = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (r >= 0 && r != STDIN_FILENO)
			dup2(r, STDIN_FILENO);	/* the copy on 0 is not close-on-exec */
		/* A nested socksify must not tunnel the server through itself. */
		pre = preload_compose(lib, getenv("LD_PRELOAD"), false);
		if (pre != NULL)
			setenv("LD_PRELOAD", pre, 1);
		else
			unsetenv("LD_PRELOAD");
		/* F_DUPFD leaves close-on-exec off: this copy is the server's. */
		if ((ufd = fcntl(cred[0], F_DUPFD, 3)) < 0)
			_exit(EXIT_SELF);
		snprintf(users_path, sizeof(users_path), "/dev/fd/%d", ufd);
		/* A placeholder that slipped out of a process that could not
		 * map it back is no host of anyone's: reply 02, never a
		 * connection to an address nobody chose. */
		execl(server, server, "--listen", "127.0.0.1:0", "--users", users_path,
		    "--deny", "to " PRELOAD_FAKE_V4_CIDR,
		    "--deny", "to " PRELOAD_FAKE_V6_CIDR, "-q", (char *)NULL);
		fprintf(stderr, "socksifyd: %s: %s\n", server, strerror(errno));
		_exit(EXIT_CANNOT_EXEC);
	}
	close(fds[1]);
	close(cred[0]);
	server_err = fds[0];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	line[0] = '\0';
	/*
	 * A line before the ready line is held: passed on as a warning when more
	 * follows, made part of our one-line reason when the server gives up.
	 */
	for (;;) {
		left = LAUNCHER_SERVER_READY_MS - ms_since(&t0);
		if (left <= 0)
			die(EXIT_SELF, "embedded server %s not ready after %d ms%s%s", server,
			    LAUNCHER_SERVER_READY_MS, *held != '\0' ? ": " : "", held);
		pf = (struct pollfd){ .fd = server_err, .events = POLLIN };
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		n = read(server_err, line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(EXIT_SELF, "embedded server failed to start: %s", len > 0 ?
			    line : *held != '\0' ? held : "it exited without a word");
		len += (size_t)n;
		line[len] = '\0';
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = '\0';
			if (strncmp(line, READY_PREFIX, strlen(READY_PREFIX)) == 0)
				goto ready;
			if (*held != '\0')
				fprintf(stderr, "%s\n", held);
			snprintf(held, sizeof(held), "%s", line);
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (len == sizeof(line) - 1)
			die(EXIT_SELF, "embedded server said something unreadable");
	}
ready:
	if (*held != '\0')
		fprintf(stderr, "%s\n", held);
	addr = line + strlen(READY_PREFIX);
	why = "not an address";
	if (s5_addr_parse(addr, &a, 0, &why) < 0 || a.atyp != S5_ATYP_IPV4 || a.port == 0)
		die(EXIT_SELF, "embedded server: unexpected ready line \"%s\": %s", line, why);
	/* Whatever followed the ready line is the server's, for our stderr. */
	fputs(nl + 1, stderr);
	fcntl(server_err, F_SETFL, O_NONBLOCK);
	snprintf(users, sizeof(users), "%s:%s@", LAUNCHER_SERVER_USER, secret);
	url = str_cat3("socks5h://", users, addr);
	explicit_bzero(users, sizeof(users));
	explicit_bzero(secret, sizeof(secret));
	return url;
}

/* SIGTERM, a bounded wait while still draining its output, then SIGKILL. */
static void
server_stop(void)
{
	struct timespec t0;
	struct pollfd pf;
	int status;

	if (server_pid <= 0)
		return;
	kill(server_pid, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (waitpid(server_pid, &status, WNOHANG) == 0) {
		if (ms_since(&t0) >= LAUNCHER_SERVER_STOP_MS) {
			kill(server_pid, SIGKILL);
			waitpid(server_pid, &status, 0);
			break;
		}
		pf = (struct pollfd){ .fd = server_err, .events = POLLIN };
		if (poll(&pf, server_err >= 0 ? 1 : 0, LAUNCHER_POLL_MS) > 0)
			copy_server_output();
	}
	server_pid = -1;
	if (server_err >= 0)
		close(server_err);
	server_err = -1;
}

static void
on_signal(int sig, siginfo_t *si, void *uc)
{
	struct sig_note note = { sig, si->si_code == SI_USER ||
	    si->si_code == SI_QUEUE || si->si_code == SI_TKILL };
	int saved = errno;
	ssize_t r;

	(void)uc;
	r = write(sig_pipe[1], &note, sizeof(note));
	(void)r;	/* a full pipe already holds a wake-up */
	errno = saved;
}

/*
 * A signal the user's shell left ignored stays ignored (the child inherits
 * that across exec); the others are caught and handed to the loop.
 */
static void
signals_catch(void)
{
	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
	size_t i;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		die(EXIT_SELF, "pipe:");
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < NSIGNALS; i++) {
		sigaction(fwd_signals[i], NULL, &saved_act[i]);
		if (saved_act[i].sa_handler != SIG_IGN)
			sigaction(fwd_signals[i], &sa, NULL);
	}
}

/* execv, and like execvp(3) a file without "#!" that the kernel rejects runs under sh. */
static void __attribute__((noreturn))
command_exec(const char *path, char **argv)
{
	char **sh_argv;
	size_t n;
	int err;

	execv(path, argv);
	if (errno == ENOEXEC) {
		for (n = 0; argv[n] != NULL; n++)
			;
		sh_argv = calloc(n + 2, sizeof(*sh_argv));
		if (sh_argv != NULL) {
			sh_argv[0] = (char *)"sh";
			sh_argv[1] = (char *)path;
			memcpy(sh_argv + 2, argv + 1, n * sizeof(*argv));
			execv("/bin/sh", sh_argv);
			errno = ENOEXEC;
		}
	}
	err = errno;
	/* The file is there: what is missing is what would run it (env(1)'s
	 * status, 127, but not its riddle). */
	fprintf(stderr, "socksify: %s: %s%s\n", argv[0], strerror(err),
	    err == ENOENT && access(path, F_OK) == 0 ? " (the interpreter its #! line "
	    "names, or its ELF loader, is missing)" : "");
	_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

/* Ends socksify the way COMMAND ended. */
static void __attribute__((noreturn))
exit_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	int sig;
	sigset_t set;

	if (WIFEXITED(status))
		exit(WEXITSTATUS(status));
	sig = WTERMSIG(status);
	/* COMMAND already dumped core if it was going to; we must not. */
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	exit(128 + sig);
}

/*
 * The name table every process of COMMAND's tree shares (the library's
 * fakedns.c): an empty memfd that the first process to map it fills in.
 * We make it when we wait for COMMAND, and hold it, close-on-exec, so that
 * it outlives every process of the tree; when we exec() into COMMAND, the
 * library makes it there. Without a memfd the library makes its own.
 */
static void
names_table_make(void)
{
	char env[sizeof("PID:FD:DEV:INO") + 4 * 20];
	struct stat st;
	int fd, hi;

	fd = memfd_create("socksify-names", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return;
	if (ftruncate(fd, PRELOAD_FAKE_TABLE_BYTES) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0 ||
	    (hi = fcntl(fd, F_DUPFD_CLOEXEC, PRELOAD_FAKE_FD_MIN)) < 0) {
		close(fd);
		return;
	}
	close(fd);
	if (fstat(hi, &st) != 0) {
		close(hi);
		return;
	}
	snprintf(env, sizeof(env), "%ld:%d:%ju:%ju", (long)getpid(), hi,
	    (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	setenv("SOCKSIFY_NAMES", env, 1);
}

/*
 * COMMAND as our child, when we must outlive its start: the embedded server
 * runs beside it, or the supervisor serves its seccomp filter (installed by
 * the child, sup_install(), just before exec). We wait, forward signals,
 * answer the supervisor's notifications, and clean up. library_reaches:
 * under an outer supervisor (EBUSY) COMMAND may run with the library alone.
 */
static void __attribute__((noreturn))
command_supervise(const char *path, char **argv, bool supervise, bool iouring_allow,
    bool library_reaches, bool quiet)
{
	struct pollfd pf[3];
	struct sig_note note;
	pid_t cmd, pid;
	int status, cmd_status = 0, sv[2] = { -1, -1 }, r, nfds, sfd;
	size_t i;

	signals_catch();
	if (supervise && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		die(EXIT_SELF, "socketpair:");
	cmd = fork();
	if (cmd < 0)
		die(EXIT_SELF, "fork:");
	if (cmd == 0) {
		for (i = 0; i < NSIGNALS; i++)
			sigaction(fwd_signals[i], &saved_act[i], NULL);
		if (supervise) {
			close(sv[0]);
			r = sup_install(sv[1], iouring_allow);
			close(sv[1]);
			/* EBUSY: a filter of this tree has a listener already (an
			 * outer socksify); the kernel allows one. It sees what the
			 * library cannot reach, through its own proxy. */
			if (r == -EBUSY && library_reaches)
				command_exec(path, argv);
			if (r == -EBUSY)
				fprintf(stderr, "socksify: cannot supervise %s: another seccomp "
				    "supervisor (an outer socksify?) already watches this "
				    "process tree\n", argv[0]);
			else if (r < 0)
				fprintf(stderr, "socksify: cannot supervise %s: seccomp: %s\n",
				    argv[0], strerror(-r));
			if (r < 0)
				_exit(EXIT_SELF);
		}
		command_exec(path, argv);
	}
	if (supervise) {
		struct rlimit nofile;

		/* Each connect under way holds a descriptor of ours (the
		 * program's socket, pidfd_getfd()): up to the supervisor's
		 * 16,384, not the 1,024 a shell's soft limit gives. Ours only:
		 * the child was forked with the limit it had. */
		if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < LAUNCHER_NOFILE) {
			nofile.rlim_cur = nofile.rlim_max < LAUNCHER_NOFILE ? nofile.rlim_max :
			    LAUNCHER_NOFILE;
			(void)setrlimit(RLIMIT_NOFILE, &nofile);
		}
		close(sv[1]);
		r = sup_start(sv[0]);
		close(sv[0]);
		if (r == -EBUSY && library_reaches && !quiet)
			warn_msg("warning: an outer supervisor watches this tree: what the "
			    "library cannot reach goes through its proxy, not this one");
		if (r < 0)
			supervise = false;	/* else the child said why and exits 125 */
	}
	for (;;) {
		nfds = 0;
		pf[nfds++] = (struct pollfd){ .fd = sig_pipe[0], .events = POLLIN };
		if (server_err >= 0)
			pf[nfds++] = (struct pollfd){ .fd = server_err, .events = POLLIN };
		sfd = nfds;
		if (supervise)
			pf[nfds++] = (struct pollfd){ .fd = sup_pollfd(), .events = POLLIN };
		if (poll(pf, (nfds_t)nfds, supervise ? sup_timeout_ms() : -1) < 0 &&
		    errno != EINTR)
			die(EXIT_SELF, "poll:");
		if (supervise)
			sup_service();
		if (server_err >= 0 && sfd > 1 && pf[1].revents != 0)
			copy_server_output();
		/* Signals (SIGCHLD too) write to the pipe: with nothing there,
		 * no child changed and nothing is to be forwarded. */
		if (pf[0].revents == 0)
			continue;
		while (read(sig_pipe[0], &note, sizeof(note)) == sizeof(note)) {
			/* A terminal's signals already reached COMMAND's process group. */
			if (note.from_user && note.sig != SIGCHLD && note.sig != SIGPIPE)
				kill(cmd, note.sig);
		}
		if (server_pid > 0 && waitpid(server_pid, &status, WNOHANG) == server_pid) {
			server_pid = -1;
			warn_msg("embedded server exited (%s %d); COMMAND's new connections "
			    "will fail", WIFSIGNALED(status) ? "signal" : "status",
			    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		}
		pid = waitpid(cmd, &cmd_status, WNOHANG);
		if (pid == cmd)
			break;
		if (pid < 0 && errno != EINTR)
			die(EXIT_SELF, "waitpid:");
	}
	server_stop();
	exit_like(cmd_status);
}

/*
 * The launcher never runs with the library in itself: the supervisor's own
 * connects and sends would go through its hooks (a shell set up by hand with
 * LD_PRELOAD=libsocksify.so, or socksify run by a program under it). Then it
 * runs itself again without it; COMMAND gets the library from main() as
 * always.
 */
static void
launcher_unpreload(char **argv)
{
	void *fn = dlsym(RTLD_DEFAULT, "connect");
	char *rest;
	Dl_info di;

	if (fn == NULL || dladdr(fn, &di) == 0 || di.dli_fname == NULL ||
	    strstr(di.dli_fname, "libsocksify") == NULL)
		return;
	rest = preload_compose(di.dli_fname, getenv("LD_PRELOAD"), false);
	if (rest != NULL)
		setenv("LD_PRELOAD", rest, 1);
	else
		unsetenv("LD_PRELOAD");
	execv("/proc/self/exe", argv);
	die(EXIT_SELF, "cannot run myself without %s:", di.dli_fname);
}

/* The mode named by --mode or SOCKSIFY_MODE (what), default auto. */
static enum run_mode
mode_parse(const char *text, const char *what)
{
	size_t i;

	if (text == NULL || *text == '\0')
		return MODE_AUTO;
	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcasecmp(text, mode_names[i]) == 0)
			return (enum run_mode)i;
	die(EXIT_SELF, "%s %s: not auto, preload or seccomp", what, text);
}

/*
 * What main() works out, kept at file scope rather than in its frame: it
 * lives until exec or exit, and LeakSanitizer (SAN=1) then sees it as held,
 * not leaked, so a sanitizer build exits with COMMAND's status too.
 */
static struct {
	char *dir, *lib, *server, *path, *proxy, *exclude, *log_file, *preload;
} run;

int
main(int argc, char **argv)
{
	struct options o = { .nproxy = 0 };
	const char *env_proxy = getenv("SOCKSIFY_PROXY"), *why, *rest, *item, *lacks, *what;
	char cwd[PATH_MAX], *s;
	bool embedded, setid, unproxied = false, supervise;
	enum run_mode mode;
	size_t i, len;
	int err, fd;

	launcher_unpreload(argv);
	options_parse(argc, argv, &o);
	argv += optind;
	if (o.nproxy == 0 && env_proxy != NULL && *env_proxy != '\0') {
		/* Split exactly as the library will (s5_list_next). */
		for (i = 0, rest = env_proxy; s5_list_next(&rest, &item, &len); free(s), i++) {
			s = strndup(item, len);
			if (s == NULL)
				die(EXIT_SELF, "out of memory");
			proxy_check(s, "SOCKSIFY_PROXY");
		}
		/* Blanks and commas only: the library would fail every
		 * connection of the command; unset it for the embedded one. */
		if (i == 0)
			die(EXIT_SELF, "SOCKSIFY_PROXY: no proxy in '%s' (unset it for "
			    "the embedded server)", env_proxy);
		run.proxy = xstrdup(env_proxy);
	}
	for (i = 0; i < o.nproxy; i++)
		run.proxy = list_add(run.proxy, o.proxy[i]);
	embedded = run.proxy == NULL;
	if (o.nexclude == 0 && !o.exclude_none)
		exclude_env_check(getenv("SOCKSIFY_EXCLUDE"), !embedded);
	if (o.pick != NULL)
		setenv("SOCKSIFY_PICK", o.pick, 1);
	else
		pick_check(getenv("SOCKSIFY_PICK"), "SOCKSIFY_PICK");
	/* Found set, checked here once: the library would warn in every
	 * process of the tree, the supervisor among them, and go on. */
	if ((what = getenv("SOCKSIFY_TIMEOUT")) != NULL && what[0] != '\0' &&
	    preload_parse_seconds(what) < 0)
		die(EXIT_SELF, "SOCKSIFY_TIMEOUT %s: not a number of seconds from 0.001 "
		    "to %d (2.5 will do)", what, PRELOAD_TIMEOUT_MAX_S);
	if ((what = getenv("SOCKSIFY_PIPELINE")) != NULL && what[0] != '\0' &&
	    strcasecmp(what, "auto") != 0 && strcasecmp(what, "on") != 0 &&
	    strcasecmp(what, "off") != 0)
		die(EXIT_SELF, "SOCKSIFY_PIPELINE %s: not auto, on or off", what);
	/* The library takes the stricter meaning of a value it does not know
	 * (a typo in SOCKSIFY_UDP blocked UDP without a word here). */
	if ((what = getenv("SOCKSIFY_UDP")) != NULL && what[0] != '\0' &&
	    preload_parse_udp(what) < 0)
		die(EXIT_SELF, "SOCKSIFY_UDP %s: not proxy, block or pass", what);
	if ((what = getenv("SOCKSIFY_IOURING")) != NULL && what[0] != '\0' &&
	    preload_parse_iouring(what) < 0)
		die(EXIT_SELF, "SOCKSIFY_IOURING %s: not deny or allow", what);
	if (!o.trace && !o.quiet && (what = getenv("SOCKSIFY_LOG")) != NULL &&
	    what[0] != '\0' && preload_parse_level(what) < 0)
		die(EXIT_SELF, "SOCKSIFY_LOG %s: not error, warn, info, trace or debug", what);
	if ((what = getenv("SOCKSIFY_DNS")) != NULL && what[0] != '\0') {
		struct s5_addr a;

		if (preload_parse_dns(what, &a, &why) < 0)
			die(EXIT_SELF, "SOCKSIFY_DNS %s: not IP[:PORT]%s%s", what,
			    why != NULL ? ": " : "", why != NULL ? why : "");
	}
	run.dir = self_dir();
	run.lib = library_find(run.dir, false);
	if (o.check) {
		/* With no proxy given, the embedded server is the one checked. */
		if (embedded)
			run.proxy = server_start(server_find(run.dir), run.lib);
		setenv("SOCKSIFY_PROXY", run.proxy, 1);
		exit(check_run(o.check_target));
	}

	/* Nothing starts before we know COMMAND can run and be reached. */
	run.path = command_find(argv[0], &err);
	if (run.path == NULL && err == ENOENT)
		die(EXIT_NOT_FOUND, "%s: %s", argv[0], strchr(argv[0], '/') != NULL ?
		    strerror(err) : "command not found");
	if (run.path == NULL)
		die(EXIT_CANNOT_EXEC, "%s: %s", argv[0], strerror(err));
	mode = mode_parse(o.mode != NULL ? o.mode : getenv("SOCKSIFY_MODE"),
	    o.mode != NULL ? "--mode" : "SOCKSIFY_MODE");
	if (run.lib == NULL && mode != MODE_SECCOMP)
		run.lib = library_find(run.dir, true);	/* says why, exit 125 */
	why = reach_why(run.path, true, &setid);
	lacks = mode != MODE_PRELOAD && !setid ? sup_kernel_lacks() : NULL;
	if (setid || (why != NULL && mode == MODE_PRELOAD)) {
		/* Out of the library's reach, and supervision would run it
		 * without its privileges, or was not asked for. */
		if (!o.force)
			die(EXIT_SELF, "%s: %s: %s (--force runs it unproxied)", run.path, why,
			    setid && mode != MODE_PRELOAD ? "its privileges need what "
			    "supervision takes away (no_new_privs)" :
			    "the library cannot reach it");
		unproxied = true;
	} else if (lacks != NULL && (why != NULL || mode == MODE_SECCOMP)) {
		if (!o.force)
			die(EXIT_SELF, "%s: %s: this kernel cannot supervise it: no %s "
			    "(--force runs it unproxied)", run.path,
			    why != NULL ? why : "--mode seccomp", lacks);
		unproxied = true;
	} else if (lacks != NULL) {
		/* auto on a kernel without supervision: the library alone. */
		if (!o.quiet)
			warn_msg("warning: no %s: what COMMAND runs that the library "
			    "cannot reach (static, Go) will not be proxied", lacks);
		mode = MODE_PRELOAD;
	}
	if (unproxied && !o.quiet)
		warn_msg("warning: %s: %s: running it unproxied", run.path,
		    why != NULL ? why : lacks);
	supervise = !unproxied && mode != MODE_PRELOAD;

	/* --log, or SOCKSIFY_LOG_FILE found set: checked alike, so a file the
	 * library could not open is not left to fall back to stderr unsaid. */
	what = o.log_file != NULL ? "--log" : "SOCKSIFY_LOG_FILE";
	if (o.log_file == NULL && (o.log_file = getenv("SOCKSIFY_LOG_FILE")) != NULL &&
	    *o.log_file == '\0')
		o.log_file = NULL;
	if (o.log_file != NULL) {
		/* COMMAND may chdir before a child reads it: make it absolute. */
		if (*o.log_file != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
			run.log_file = str_cat3(cwd, "/", o.log_file);
		else
			run.log_file = xstrdup(o.log_file);
		fd = open(run.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			die(EXIT_SELF, "%s %s:", what, o.log_file);
		close(fd);
		setenv("SOCKSIFY_LOG_FILE", run.log_file, 1);
	}
	/* -e adds to the defaults of CONTRACT.md, "-e none" drops them. */
	if (o.nexclude > 0 || o.exclude_none) {
		if (!embedded && !o.exclude_none)
			run.exclude = xstrdup(LAUNCHER_UPSTREAM_EXCLUDE);
		for (i = 0; i < o.nexclude; i++)
			run.exclude = list_add(run.exclude, o.exclude[i]);
		exclude_count(run.exclude);
		setenv("SOCKSIFY_EXCLUDE", run.exclude != NULL ? run.exclude : "none", 1);
	} else if (embedded && getenv("SOCKSIFY_EXCLUDE") == NULL) {
		/* The embedded server is this host: loopback is the same everywhere. */
		setenv("SOCKSIFY_EXCLUDE", "none", 1);
	} else if (embedded && getenv("SOCKSIFY_EXCLUDE")[0] == '+') {
		/* Added to the embedded server's default, which is none. */
		run.exclude = xstrdup(getenv("SOCKSIFY_EXCLUDE") + 1);
		setenv("SOCKSIFY_EXCLUDE", *run.exclude != '\0' ? run.exclude : "none", 1);
	}
	if (o.trace)
		setenv("SOCKSIFY_LOG", "trace", 1);
	else if (o.quiet)
		setenv("SOCKSIFY_LOG", "error", 1);

	if (embedded) {
		run.server = server_find(run.dir);
		run.proxy = server_start(run.server, run.lib);
		/* Our own server reads the handshake as a stream: under
		 * SOCKSIFY_PIPELINE=auto the library pipelines to it, and to
		 * no proxy a descendant picks itself (preload/config.c). */
		setenv("SOCKSIFY_PIPELINE_PROXY", run.proxy, 1);
	} else {
		unsetenv("SOCKSIFY_PIPELINE_PROXY");	/* an outer socksify's */
	}
	setenv("SOCKSIFY_PROXY", run.proxy, 1);
	/* The library reads the mode too: under a supervisor it marks its own
	 * calls (preload/syscall.c). */
	setenv("SOCKSIFY_MODE", mode_names[mode], 1);
	run.preload = preload_compose(run.lib, getenv("LD_PRELOAD"), mode != MODE_SECCOMP);
	if (run.preload != NULL)
		setenv("LD_PRELOAD", run.preload, 1);
	else
		unsetenv("LD_PRELOAD");
	/* Always a new table: one named in our own environment may be
	 * another user's (su, sudo -E). */
	unsetenv("SOCKSIFY_NAMES");
	if ((embedded || supervise) && !unproxied)	/* else no one would map it */
		names_table_make();
	if (!embedded && !supervise)
		command_exec(run.path, argv);
	s = getenv("SOCKSIFY_IOURING");
	command_supervise(run.path, argv, supervise,
	    s != NULL && strcasecmp(s, "allow") == 0, why == NULL && mode == MODE_AUTO,
	    o.quiet);
}
