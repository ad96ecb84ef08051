# tcache — see README.md.  `make run` starts the daemon, `make check` runs
# every test.  Both install missing Debian packages first when run as root.

VERSION   = 0.1.0
SOVERSION = 0
CC       ?= cc
BUILD    ?= build
# Debian's interpreter, which has python3-pytest, ahead of any other on PATH.
PYTHON   ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
PREFIX   ?= /usr/local

# python3-dev: Python.h, for the pytest plugin's C tracer (built at run time).
# cmake: contrib/examples/ctest, run through `tcache run` by test_examples.py.
# systemd (systemd-analyze, systemd-socket-activate) and python3-yaml:
# test_units.py checks and runs contrib/systemd and contrib/ci.
# mandoc and zsh: test_docs.py lints man/ and checks the zsh completion.
DEBS = gcc make pkg-config libsqlite3-dev libsodium-dev libevent-dev \
       libcmocka-dev python3 python3-dev python3-pytest python3-pytest-xdist \
       cmake systemd python3-yaml mandoc zsh

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
# Lazily expanded: pkg-config runs after the deps step has installed it.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DTC_VERSION='"$(VERSION)"' $(WARN) \
             $(CFLAGS) $(EXTRA_CFLAGS) -I.
PKG      = $(shell pkg-config --libs $(1))

PROTO_SRC  = proto/codec.c proto/parse.c proto/structs.c proto/paths.c
LIB_SRC    = client/client.c client/hash.c client/collect.c client/memo.c
DAEMON_SRC = daemon/main.c daemon/config.c daemon/server.c daemon/conn.c daemon/log.c \
             daemon/store.c
CLI_SRC    = client/tcache.c client/cli.c client/cli_cache.c client/cli_info.c \
             client/cli_run.c client/cli_explain.c client/json.c
UNIT_TESTS = test_codec test_parse test_hash test_store test_client test_memo

PROTO_OBJ  = $(PROTO_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ    = $(LIB_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    = $(CLI_SRC:%.c=$(BUILD)/%.o)

STAMP = $(BUILD)/.deps-ok

.PHONY: all deps run check unit integration acceptance sanitize clean \
        bench bench-bin bench-precision install uninstall valgrind clang plugin \
        fuzz fuzz-replay fuzz-seeds fuzz-merge
all: $(BUILD)/tcached $(BUILD)/tcache $(BUILD)/libtcache.a \
     $(BUILD)/libtcache.so

deps: $(STAMP)
$(STAMP): scripts/deps.sh Makefile
	@sh scripts/deps.sh $(DEBS)
	@mkdir -p $(@D) && touch $@

# Objects are position independent: the same ones go into both libraries.
$(BUILD)/%.o: %.c | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c $< -o $@

# schema.sql is the one definition of the database: compiled in as a string.
$(BUILD)/schema.h: schema.sql
	@mkdir -p $(@D)
	{ echo 'static const char store_schema_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/daemon/store.o: $(BUILD)/schema.h
$(BUILD)/daemon/store.o: override EXTRA_CFLAGS += -I$(BUILD)

$(BUILD)/libtcache.a: $(PROTO_OBJ) $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# Installed as libtcache.so.$(VERSION), found at run time by its soname.
$(BUILD)/libtcache.so: $(PROTO_OBJ) $(LIB_OBJ) client/libtcache.map
	$(CC) -shared -Wl,-soname,libtcache.so.$(SOVERSION) \
	  -Wl,--version-script=client/libtcache.map $(LDFLAGS) \
	  $(EXTRA_CFLAGS) -o $@ $(PROTO_OBJ) $(LIB_OBJ) $(call PKG,libsodium)

$(BUILD)/tcached: $(DAEMON_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) $(EXTRA_CFLAGS) -o $@ $^ $(call PKG,libevent sqlite3)

$(BUILD)/tcache: $(CLI_OBJ) $(BUILD)/libtcache.a
	$(CC) $(LDFLAGS) $(EXTRA_CFLAGS) -o $@ $^ $(call PKG,libsodium)

# --- tests ---
TEST_BIN = $(UNIT_TESTS:%=$(BUILD)/tests/%)
$(BUILD)/tests/test_codec: $(BUILD)/tests/test_codec.o $(PROTO_OBJ)
$(BUILD)/tests/test_parse: $(BUILD)/tests/test_parse.o $(PROTO_OBJ)
$(BUILD)/tests/test_hash: $(BUILD)/tests/test_hash.o $(BUILD)/libtcache.a
$(BUILD)/tests/test_store: $(BUILD)/tests/test_store.o \
                           $(BUILD)/daemon/store.o $(PROTO_OBJ)
$(BUILD)/tests/test_client: $(BUILD)/tests/test_client.o $(BUILD)/libtcache.a
$(BUILD)/tests/test_memo: $(BUILD)/tests/test_memo.o $(BUILD)/libtcache.a
$(TEST_BIN):
	$(CC) $(LDFLAGS) $(EXTRA_CFLAGS) -o $@ $^ \
	  $(call PKG,cmocka libsodium sqlite3)

unit: all $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do \
	  echo "== $$t"; TCACHE_BUILD=$(abspath $(BUILD)) \
	  TCACHE_VECTORS=$(abspath proto/vectors/vectors.txt) $$t; done

integration: all
	TCACHE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# Crash consistency at length: tcached SIGKILLed 50 times (CRASH_KILLS) under
# 16 writers, every acknowledged record checked after each restart (make
# check runs 5).  The figures go to $(BUILD)/crashtest.json.
.PHONY: crashtest
CRASH_KILLS ?= 50
crashtest: all
	TCACHE_CRASH_KILLS=$(CRASH_KILLS) \
	TCACHE_CRASH_REPORT=$(abspath $(BUILD))/crashtest.json \
	TCACHE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -s -p no:cacheprovider \
	  tests/integration/test_crash.py -k sigkill
	@cat $(BUILD)/crashtest.json

# The pytest plugin against a real tcached (contrib/pytest/tests).
plugin: all
	TCACHE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n 2 -p no:cacheprovider contrib/pytest/tests

# The shared acceptance script of the core contract, when it is present.
acceptance: all
	@if [ -f ../shared/acceptance/core.sh ]; then \
	  bash ../shared/acceptance/core.sh; \
	else echo "acceptance: ../shared/acceptance/core.sh not present, skipped"; fi

# sanitize is part of it: ~1.5 min more for the unit and integration tests
# under ASan and UBSan.  valgrind (~8 min) stays a target of its own.
check: unit integration plugin acceptance clang sanitize fuzz-replay
	@echo "make check: all tests passed"

run: all
	exec ./$(BUILD)/tcached

# --- install (README, "Install") ---
# DESTDIR is prepended to every path written and never recorded in a file.
# tcached goes to bin, not sbin, although its page is in section 8: each
# user runs a daemon of their own (by hand, as a user service, or started
# by tcache, which looks for tcached beside itself first).
BINDIR     = $(PREFIX)/bin
LIBDIR     = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
DATADIR    = $(PREFIX)/share
MANDIR     = $(DATADIR)/man
BASHCOMPDIR = $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  = $(DATADIR)/zsh/site-functions
USERUNITDIR = $(PREFIX)/lib/systemd/user
DOCDIR      = $(DATADIR)/doc/tcache
# Optional parts, installed when present: man/NAME.SECTION;
# contrib/completions/NAME.bash (as NAME) and _NAME or NAME.zsh (as _NAME);
# contrib/systemd/*.service and *.socket (@BINDIR@ in them becomes BINDIR).
MAN_PAGES  = $(wildcard man/*.[1-8])
BASH_COMPS = $(wildcard contrib/completions/*.bash)
ZSH_COMPS  = $(sort $(wildcard contrib/completions/_* contrib/completions/*.zsh))
USER_UNITS = $(wildcard contrib/systemd/*.service contrib/systemd/*.socket)
SONAME     = libtcache.so.$(SOVERSION)
# Every file install writes, relative to DESTDIR: uninstall removes these.
INSTALLED  = $(BINDIR)/tcached $(BINDIR)/tcache $(INCLUDEDIR)/tcache.h \
  $(LIBDIR)/libtcache.a $(LIBDIR)/libtcache.so.$(VERSION) \
  $(LIBDIR)/$(SONAME) $(LIBDIR)/libtcache.so $(LIBDIR)/pkgconfig/tcache.pc \
  $(foreach f,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $f))/$(notdir $f)) \
  $(foreach f,$(BASH_COMPS),$(BASHCOMPDIR)/$(basename $(notdir $f))) \
  $(foreach f,$(ZSH_COMPS),$(ZSHCOMPDIR)/_$(patsubst _%,%,$(basename $(notdir $f)))) \
  $(foreach f,$(USER_UNITS),$(USERUNITDIR)/$(notdir $f)) \
  $(DOCDIR)/tcached.conf.example
# Relative to ${prefix} when under it, so that the .pc can be moved.
PC_DIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# Each file goes to the name INSTALLED gives it, so that uninstall removes
# exactly what install wrote.  Generated files pass through a temporary one
# named by the shell's pid: two installs from one build do not share it.
# ldconfig only for a real install as root: a DESTDIR is a staging tree,
# not the system whose cache ldconfig writes.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(BUILD)/tcached $(BUILD)/tcache $(DESTDIR)$(BINDIR)/
	install -m 644 client/tcache.h $(DESTDIR)$(INCLUDEDIR)/tcache.h
	install -D -m 644 contrib/tcached.conf.example \
	  $(DESTDIR)$(DOCDIR)/tcached.conf.example
	install -m 644 $(BUILD)/libtcache.a $(DESTDIR)$(LIBDIR)/libtcache.a
	install -m 755 $(BUILD)/libtcache.so \
	  $(DESTDIR)$(LIBDIR)/libtcache.so.$(VERSION)
	ln -sf libtcache.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtcache.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@LIBDIR@|$(call PC_DIR,$(LIBDIR))|' \
	  -e 's|@INCLUDEDIR@|$(call PC_DIR,$(INCLUDEDIR))|' \
	  contrib/tcache.pc.in > $(BUILD)/tcache.pc.$$$$ && \
	install -m 644 $(BUILD)/tcache.pc.$$$$ \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/tcache.pc && rm -f $(BUILD)/tcache.pc.$$$$
	$(if $(MAN_PAGES),$(foreach f,$(MAN_PAGES),install -D -m 644 $f \
	  $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $f))/$(notdir $f) &&) true)
	$(if $(BASH_COMPS),$(foreach f,$(BASH_COMPS),install -D -m 644 $f \
	  $(DESTDIR)$(BASHCOMPDIR)/$(basename $(notdir $f)) &&) true)
	$(if $(ZSH_COMPS),$(foreach f,$(ZSH_COMPS),install -D -m 644 $f \
	  $(DESTDIR)$(ZSHCOMPDIR)/_$(patsubst _%,%,$(basename $(notdir $f))) &&) true)
	$(if $(USER_UNITS),$(foreach f,$(USER_UNITS),install -d $(DESTDIR)$(USERUNITDIR) && \
	  sed 's|@BINDIR@|$(BINDIR)|g' $f > $(BUILD)/unit.$$$$ && \
	  install -m 644 $(BUILD)/unit.$$$$ $(DESTDIR)$(USERUNITDIR)/$(notdir $f) && \
	  rm -f $(BUILD)/unit.$$$$ &&) true)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    command -v ldconfig >/dev/null; then ldconfig; fi

# Directories are left: each is a shared one of the hierarchy, none ours.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    command -v ldconfig >/dev/null; then ldconfig; fi

# ASan and UBSan over the unit and integration tests, in a build of its own.
sanitize:
	$(MAKE) BUILD=build/san CC=$(CC) \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  CFLAGS="-O1 -g" unit integration

# The integration tests with tcached under valgrind memcheck (slow: ~8 min).
# The log directory is open to all: some tests run tcached as nobody.
VG = $(BUILD)/valgrind
valgrind: all
	rm -rf $(VG) && mkdir -p $(VG)/logs && chmod 1777 $(VG)/logs
	cp tests/valgrind-daemon.sh $(VG)/tcached
	ln -s $(abspath $(BUILD))/tcache $(VG)/tcache
	VG_TCACHED_LOGS=$(abspath $(VG))/logs \
	VG_TCACHED=$(abspath $(BUILD))/tcached \
	TCACHE_BUILD=$(abspath $(VG)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration
	@if find $(VG)/logs -type f -size +0 | grep -q .; then \
	  cat $(VG)/logs/*; echo "valgrind: errors above"; exit 1; fi
	@echo "valgrind: no errors, no leaks"

# --- fuzzing (tests/fuzz) ---
# `make fuzz` runs the libFuzzer harness of the codec and the parsers for
# FUZZ_SECONDS on one core (clang and its runtime, installed here only);
# new inputs go to $(FUZZ_DIR)/corpus, crashes to $(FUZZ_DIR)/crashes.
# `make fuzz-merge` then adds the inputs that reach new code to the seed
# corpus.  `make fuzz-replay` (in make check) replays tests/fuzz/corpus
# through the same harness built by $(CC), with ASan and UBSan when $(CC)
# links them: no clang needed.  `make fuzz-seeds` rewrites the seeds.
FUZZ_DEBS    = clang libclang-rt-dev
FUZZ_SECONDS ?= 600
FUZZ_ARGS    ?=
FUZZ_DIR     = $(BUILD)/fuzz
FUZZ_CODEC   = proto/codec.c proto/parse.c proto/structs.c
FUZZ_HDRS    = proto/proto.h proto/limits.h client/tcache.h tests/fuzz/fuzz.h
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -I.
# Lazily expanded, so only the replay's recipe probes $(CC).
FUZZ_REPLAY_SAN = $(shell echo 'int main(void){return 0;}' | \
  $(CC) $(FUZZ_SAN) -x c -o /dev/null - 2>/dev/null && echo '$(FUZZ_SAN)')

$(FUZZ_DIR)/fuzz_proto: tests/fuzz/fuzz_proto.c $(FUZZ_CODEC) $(FUZZ_HDRS)
	@sh scripts/deps.sh $(FUZZ_DEBS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ \
	  tests/fuzz/fuzz_proto.c $(FUZZ_CODEC)

$(FUZZ_DIR)/replay: tests/fuzz/replay.c tests/fuzz/fuzz_proto.c $(FUZZ_CODEC) \
                    $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(FUZZ_REPLAY_SAN) -o $@ tests/fuzz/replay.c \
	  tests/fuzz/fuzz_proto.c $(FUZZ_CODEC)

$(FUZZ_DIR)/seeds: tests/fuzz/seeds.c $(FUZZ_CODEC) $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/seeds.c $(FUZZ_CODEC)

fuzz: $(FUZZ_DIR)/fuzz_proto
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	$(FUZZ_DIR)/fuzz_proto -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/ \
	  $(FUZZ_ARGS) $(FUZZ_DIR)/corpus tests/fuzz/corpus

fuzz-merge: $(FUZZ_DIR)/fuzz_proto
	$(FUZZ_DIR)/fuzz_proto -merge=1 tests/fuzz/corpus $(FUZZ_DIR)/corpus

fuzz-replay: $(FUZZ_DIR)/replay
	$(FUZZ_DIR)/replay tests/fuzz/corpus

fuzz-seeds: $(FUZZ_DIR)/seeds
	mkdir -p tests/fuzz/corpus && $(FUZZ_DIR)/seeds tests/fuzz/corpus

# Every source compiled by clang too: no warning under either compiler.
clang:
	@if command -v clang >/dev/null; then \
	  $(MAKE) --no-print-directory BUILD=build/clang CC=clang all $(TEST_BIN:$(BUILD)/%=build/clang/%); \
	else echo "clang: not installed, skipped"; fi

# Benchmarks (not in make check).  The pytest plugin on networkx's own
# suite, as Debian ships it: plain, cold, warm, after edits, side by side.
# bench-precision: --tcache-precision=executed next to pytest-testmon (run
# from its source in a git mirror, see bench/testmon_compare.py) on the same
# edits, with coverage's per-test count as a second reference (~15 min).
# make bench: bench/run.py runs every part (bench/*.py) side by side and
# writes bench/results/latest.json (the run before it: previous.json).
BENCH_DEBS = python3-networkx python3-coverage git redis-server
# C programs of the benchmarks, one source each in bench/, linked with
# libtcache and what the daemon links (for in-process SQLite references).
BENCH_PROGS = lat_echo lat_client tput hashtree scale_db scale_client
BENCH_BIN = $(BENCH_PROGS:%=$(BUILD)/bench/%)
$(BUILD)/bench/scale_db $(BUILD)/bench/scale_client: bench/scale.h
$(BUILD)/bench/%: bench/%.c $(BUILD)/libtcache.a | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtcache.a \
	  $(call PKG,libsodium libevent sqlite3) -lpthread
bench-bin: all $(BENCH_BIN)
bench: bench-bin
	@sh scripts/deps.sh $(BENCH_DEBS)
	$(PYTHON) bench/run.py $(BENCH_ARGS)

bench-precision: all
	@sh scripts/deps.sh $(BENCH_DEBS)
	$(PYTHON) bench/testmon_compare.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
