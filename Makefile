# socksify: one Makefile, no autotools.
#   make            build/libsocksify.so build/socksifyd build/socksify
#   make test       every check: unit + end-to-end tests plain, under ASan+UBSan
#                   and (server) valgrind, short fuzz and soak runs
#                   (installs missing Debian packages); make check: plain only
#   make demo       a tunnelled fetch through the embedded server
#   make fuzz       every libFuzzer target (or FUZZ_TARGETS) for FUZZ_SECONDS each (clang)
#   make soak       the server under load and faults (SOAK_SCALE=full or ci)
#   make bench      socksifyd beside direct, microsocks, dante and ssh -D, the
#                   preload library beside proxychains and tsocks, and event
#                   loops through a distant proxy (scripts/bench_evloop.sh)
#                   (BENCH_REPS=3, BENCH_QUICK=1; build/bench/results.md)
#   make fresh      make demo && make test from a clone of HEAD in a throwaway
#                   Debian 12 chroot with only what the README assumes (root)
#   make install    PREFIX=/usr/local DESTDIR= (make uninstall: the same files go)
#   WERROR=1        warnings are errors;  SAN=1  ASan + UBSan;  V=1  loud
.SUFFIXES:

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 10

WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
CSTD    = -std=c11 -D_GNU_SOURCE
OPT     = -O2 -g
ALL_CFLAGS = $(CSTD) $(OPT) $(WARN) -fPIC -Ishared $(CFLAGS)
ALL_LDFLAGS = $(LDFLAGS)

ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_CFLAGS += $(SANFLAGS)
ALL_LDFLAGS += $(SANFLAGS)
endif

BUILD ?= build

ifeq ($(V),1)
Q =
else
Q = @
endif

SHARED_SRC  = $(sort $(wildcard shared/*.c))
SERVER_SRC  = $(sort $(wildcard server/*.c))
# The supervisor (preload/supervisor*.c) is the launcher's, with the engine's
# modules it shares with the library; the library gets everything else.
SUP_SRC     = $(sort $(wildcard preload/supervisor*.c))
ENGINE_SRC  = preload/config.c preload/dnsanswer.c preload/failover.c preload/fakedns.c preload/log.c preload/policy.c preload/tunnel.c
PRELOAD_SRC = $(filter-out $(SUP_SRC),$(sort $(wildcard preload/*.c)))
UNIT_SRC    = $(sort $(wildcard tests/unit/*.c))
FUZZ_SRC    = $(sort $(wildcard tests/fuzz/fuzz_*.c))

SHARED_OBJ  = $(SHARED_SRC:%.c=$(BUILD)/obj/%.o)
SERVER_OBJ  = $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
PRELOAD_OBJ = $(PRELOAD_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ    = $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)
LAUNCH_OBJ  = $(BUILD)/obj/scripts/socksify.o $(BUILD)/obj/scripts/check.o \
              $(SUP_SRC:%.c=$(BUILD)/obj/%.o) \
              $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
TESTBIN_SRC = $(sort $(wildcard tests/bin/*.c))
TESTBIN     = $(TESTBIN_SRC:tests/bin/%.c=$(BUILD)/tests/%)
LOAD_SRC    = $(sort $(wildcard tests/load/*.c))
LOADBIN     = $(LOAD_SRC:tests/load/%.c=$(BUILD)/tests/%)
BENCH_SRC   = $(sort $(wildcard tests/bench/*.c))
BENCHBIN    = $(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/%)
SOAK_SCALE ?= full

ALL_OBJ = $(SHARED_OBJ) $(SERVER_OBJ) $(PRELOAD_OBJ) $(UNIT_OBJ) $(LAUNCH_OBJ)

all: $(BUILD)/libsocksify.so $(BUILD)/socksifyd $(BUILD)/socksify

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsocksify.so: $(PRELOAD_OBJ) $(SHARED_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,defs -Wl,--version-script=preload/exports.map $(ALL_LDFLAGS) \
		-o $@ $(PRELOAD_OBJ) $(SHARED_OBJ) -ldl -lpthread

$(BUILD)/socksifyd: $(SERVER_OBJ) $(SHARED_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(SERVER_OBJ) $(SHARED_OBJ) -lpthread -lcrypt

$(BUILD)/socksify: $(LAUNCH_OBJ) $(SHARED_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(LAUNCH_OBJ) $(SHARED_OBJ) -ldl -lpthread

# The unit tests: shared/, and the one server module they drive on real
# loopback sockets (tests/unit/test_relay.c).
UNIT_SERVER_OBJ = $(BUILD)/obj/server/relay.o
$(BUILD)/unit-tests: $(UNIT_OBJ) $(UNIT_SERVER_OBJ) $(SHARED_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(UNIT_OBJ) $(UNIT_SERVER_OBJ) $(SHARED_OBJ)

# Small helper programs the end-to-end tests drive (echo server, probes).
$(BUILD)/tests/%: tests/bin/%.c tests/bin/testbin.h $(SHARED_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(SHARED_OBJ) -lpthread

# Load generators (s5load): one file each, built like the helpers above
# (s5load's stream mode writes from a thread per CPU).
$(BUILD)/tests/%: tests/load/%.c $(SHARED_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(SHARED_OBJ) -lpthread

# Benchmark helpers (connbench, udpbench): the same, with what they share in
# tests/bench/bench.h; exitnow stays a bare program, so that its start-up is
# only the loader's and libc's.
$(BUILD)/tests/%: tests/bench/%.c tests/bench/bench.h $(SHARED_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(SHARED_OBJ) -lpthread

$(BUILD)/tests/exitnow: tests/bench/exitnow.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

# The end-to-end suite needs everything built; scripts/test.sh installs what
# is missing, runs its stages (see there) and prints the one closing
# "N passed, N failed" line.
testbin: $(TESTBIN)

test: all $(BUILD)/unit-tests $(TESTBIN)
	@BUILD=$(BUILD) MAKE="$(MAKE)" sh scripts/test.sh

check: all $(BUILD)/unit-tests $(TESTBIN)
	@BUILD=$(BUILD) TEST_STAGES=plain sh scripts/test.sh

# The server under thousands of connections and injected faults; prints
# one line per scenario and "N passed, N failed".
soak: $(BUILD)/socksifyd $(LOADBIN)
	@BUILD=$(BUILD) SOAK_SCALE=$(SOAK_SCALE) sh scripts/soak.sh

# socksifyd and its peers side by side, then the preload libraries and the
# event loops; prints
# a Markdown table and writes build/bench/ (results.md, raw.csv, ratios.png).
bench: all $(LOADBIN) $(BENCHBIN) $(BUILD)/tests/delayfwd
	@sh scripts/deps.sh bench
	@BUILD=$(BUILD) bash scripts/bench.sh

demo: all
	@sh scripts/demo.sh $(BUILD)

# libFuzzer needs clang; the fuzz build lives apart from the normal one.
# FUZZ_TARGETS picks some: "make fuzz FUZZ_TARGETS='session rules'".
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
             $(CSTD) -Ishared -Iserver
FUZZ_TARGETS ?= $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_RUN = $(addprefix fuzz_,$(patsubst fuzz_%,%,$(FUZZ_TARGETS)))
# What a target is built from besides its file and shared/: FUZZ_SRC_<target>,
# FUZZ_FLAGS_<target>. fuzz_session runs the server's sessions in memory:
# every server file but start-up, the listeners and the real loop and resolver, with the
# socket calls renamed to tests/fuzz/netshim.c's by a forced include.
FUZZ_SRC_fuzz_rules = server/rules.c server/log.c
FUZZ_SRC_fuzz_users = server/users.c
FUZZ_SRC_fuzz_config = server/config.c server/rules.c server/log.c server/outgoing.c
FUZZ_SRC_fuzz_metrics = server/metrics.c
FUZZ_SRC_fuzz_session = $(filter-out server/main.c server/metrics_http.c server/listener.c server/loop.c server/resolver.c server/sd.c,$(SERVER_SRC)) \
                        tests/fuzz/fake_loop.c tests/fuzz/fake_resolver.c tests/fuzz/netshim.c
FUZZ_FLAGS_fuzz_session = -include tests/fuzz/netshim.h -U_FORTIFY_SOURCE
# fuzz_supervisor: the supervisor's resolver and the connect policy, with
# the engine's modules they use (and a real name table).
FUZZ_SRC_fuzz_supervisor = preload/supervisor_dns.c $(ENGINE_SRC)
fuzz:
	@sh scripts/deps.sh fuzz
	@mkdir -p $(BUILD)/fuzz
	@set -e; $(foreach t,$(FUZZ_RUN), \
		echo "  FUZZ    $(t) ($(FUZZ_SECONDS)s)"; \
		$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_FLAGS_$(t)) -o $(BUILD)/fuzz/$(t) \
			tests/fuzz/$(t).c $(SHARED_SRC) $(FUZZ_SRC_$(t)) -lcrypt; \
		mkdir -p $(BUILD)/fuzz/corpus-$(t); \
		$(BUILD)/fuzz/$(t) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(BUILD)/fuzz/corpus-$(t) tests/fuzz/seeds/$(t) 2>$(BUILD)/fuzz/$(t).log \
			|| { tail -n 40 $(BUILD)/fuzz/$(t).log; exit 1; }; \
		grep -E 'stat::number_of_executed_units' $(BUILD)/fuzz/$(t).log | sed "s/^/        /";)

# Does the README work on a fresh machine? Committed files only; the chroot's
# base is built once (debootstrap) and kept in /var/cache/socksify-fresh.
fresh:
	@bash scripts/fresh.sh

# The launcher finds the library and the embedded server from where it runs
# (scripts/socksify.c: ../lib/socksify/, ../sbin/), so this layout under
# PREFIX is fixed. socksifyd is a daemon (section 8): sbin, as Debian has it.
BINDIR     = $(DESTDIR)$(PREFIX)/bin
SBINDIR    = $(DESTDIR)$(PREFIX)/sbin
PKGLIBDIR  = $(DESTDIR)$(PREFIX)/lib/socksify
MAN1DIR    = $(DESTDIR)$(PREFIX)/share/man/man1
MAN8DIR    = $(DESTDIR)$(PREFIX)/share/man/man8
DOCDIR     = $(DESTDIR)$(PREFIX)/share/doc/socksify
EXAMPLES   = socksifyd.conf socksifyd.users
COMPDIR    = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
UNITDIR    = $(DESTDIR)$(PREFIX)/lib/systemd/system

install: all
	install -d $(BINDIR) $(SBINDIR) $(PKGLIBDIR) $(MAN1DIR) $(MAN8DIR) $(DOCDIR)/examples \
		$(COMPDIR) $(UNITDIR)
	install -m 755 $(BUILD)/socksify $(BINDIR)/socksify
	install -m 755 $(BUILD)/socksifyd $(SBINDIR)/socksifyd
	install -m 644 $(BUILD)/libsocksify.so $(PKGLIBDIR)/libsocksify.so
	install -m 644 man/socksify.1 $(MAN1DIR)/socksify.1
	install -m 644 man/socksifyd.8 $(MAN8DIR)/socksifyd.8
	install -m 644 $(EXAMPLES:%=man/examples/%) $(DOCDIR)/examples/
	install -m 644 scripts/completion/socksify $(COMPDIR)/socksify
	install -m 644 scripts/completion/socksify $(COMPDIR)/socksifyd
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' scripts/systemd/socksifyd.service.in >$(UNITDIR)/socksifyd.service
	chmod 644 $(UNITDIR)/socksifyd.service
	install -m 644 scripts/systemd/socksifyd.socket $(UNITDIR)/socksifyd.socket

# What install put there and nothing else; of the directories, only ours,
# and only when empty (a file someone added keeps its directory).
uninstall:
	rm -f $(BINDIR)/socksify $(SBINDIR)/socksifyd $(PKGLIBDIR)/libsocksify.so \
		$(MAN1DIR)/socksify.1 $(MAN8DIR)/socksifyd.8 $(EXAMPLES:%=$(DOCDIR)/examples/%) \
		$(COMPDIR)/socksify $(COMPDIR)/socksifyd \
		$(UNITDIR)/socksifyd.service $(UNITDIR)/socksifyd.socket
	for d in $(PKGLIBDIR) $(DOCDIR)/examples $(DOCDIR); do \
		[ ! -d $$d ] || rmdir --ignore-fail-on-non-empty $$d || exit 1; done

clean:
	rm -rf $(BUILD)

.PHONY: all test check testbin unit demo soak bench fuzz fresh install uninstall clean

-include $(ALL_OBJ:.o=.d)
