# vmaback: build, test, install.  `make check` and `make demo` install what
# is missing on Debian 12 first (scripts/deps.sh), then build and run.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
PLUGINDIR = $(PREFIX)/lib/vmaback
MANDIR = $(PREFIX)/share/man/man1
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libzstd libcrypto libarchive json-c zlib libnbd
# Headers only: core/source/libvirt_dl.c opens them with dlopen.
PKGS_DL = libvirt libxml-2.0
# Variant builds (the sanitizer build) go to their own directory.
B ?= build
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) $(PKGS_DL) 2>/dev/null)
# LIBVIRT_LINK=1 links them all the same (the sanitizer build: ASan's xdr
# interceptors look up libtirpc's functions at start, before a dlopen).
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) $(if $(LIBVIRT_LINK),$(PKGS_DL)) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-unused-parameter -I. $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS += $(PKG_LIBS) -lpthread -ldl

# The modules, from the bottom up, and what each may use (design.md §2):
# each builds into its own static library; a module's unit test links only
# it and the libraries below it, so a wrong dependency fails to link, and
# its private header (*_int.h) refuses to be included from outside it.
EMPTY :=
SPACE := $(EMPTY) $(EMPTY)
MODULES = vma bitmap base io source store archive backup restore catalog cli
DEPS_vma =
DEPS_bitmap =
DEPS_base =
DEPS_io = base
DEPS_source = io base bitmap
DEPS_store = io base bitmap vma
DEPS_archive = io base vma
DEPS_backup = source archive store io base vma bitmap
DEPS_restore = archive source store io base bitmap vma
DEPS_catalog = archive store io base bitmap vma
DEPS_cli = catalog restore backup archive store source io base bitmap vma
DIR_vma = vma
DIR_bitmap = bitmap
DIR_cli = cli
$(foreach m,base io source store archive backup restore catalog,$(eval DIR_$(m) = core/$(m)))

SRCS_OF = $(filter-out cli/main.c,$(wildcard $(DIR_$(1))/*.c))
LIB_OF = $(B)/lib/libvb_$(1).a
# A module's library followed by those it may use, in link order.
LIBS_FOR = $(call LIB_OF,$(1)) $(foreach d,$(DEPS_$(1)),$(call LIB_OF,$(d)))
ALL_LIBS = $(call LIBS_FOR,cli)

UNIT_SRCS = $(wildcard tests/unit/test_*.c)
TOOL_SRCS = $(wildcard tests/tools/*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOL_BINS = $(TOOL_SRCS:tests/tools/%.c=$(B)/tools/%)
# LD_PRELOAD shims of the tests (fault injection into the real binary).
SHIM_SRCS = $(wildcard tests/tools/preload/*.c)
SHIM_BINS = $(SHIM_SRCS:tests/tools/preload/%.c=$(B)/tools/%.so)
HEADERS = $(wildcard */*.h) $(wildcard core/*/*.h) $(wildcard tests/unit/*.h)

.PHONY: man all deps check check-fast check-san check-valgrind check-tsan check-layers unit integration \
	demo bench fuzz stress install uninstall clean tools deb

all: $(B)/vmaback $(B)/nbdkit-vmaback-plugin.so

deps:
	@sh scripts/deps.sh

# A unit test's libc faults, through the linker (test_io.c's __wrap_*).
TEST_LDFLAGS_io = -Wl,--wrap=flock -Wl,--wrap=rename -Wl,--wrap=renameat2 -Wl,--wrap=fsync

# Objects of module M are built with -DVB_MODULE_M: the key to its private header.
define MODULE_RULES
$(B)/$(DIR_$(1))/%.o: $(DIR_$(1))/%.c $$(HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -DVB_MODULE_$(1) -c -o $$@ $$<

$(call LIB_OF,$(1)): $(patsubst %.c,$(B)/%.o,$(call SRCS_OF,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	$$(AR) rcs $$@ $$^

# test_M.c is module M's unit test: inside the module, linked with M and below.
$(B)/tests/test_$(1): tests/unit/test_$(1).c $(call LIBS_FOR,$(1)) $$(HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -DVB_MODULE_$(1) $$(LDFLAGS) -o $$@ $$< $(call LIBS_FOR,$(1)) \
		$$(LDLIBS) $$(CMOCKA_LIBS) $$(TEST_LDFLAGS_$(1))
endef
$(foreach m,$(MODULES),$(eval $(call MODULE_RULES,$(m))))
# test_crypt.c: a second unit test of io (its encryption layers).
$(B)/tests/test_crypt: tests/unit/test_crypt.c $(call LIBS_FOR,io) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DVB_MODULE_io $(LDFLAGS) -o $@ $< $(call LIBS_FOR,io) $(LDLIBS) $(CMOCKA_LIBS)
# test_store injects faults into the state's publishing (fsync, rename, write).
TEST_LDFLAGS_store = -Wl,--wrap=fsync -Wl,--wrap=rename -Wl,--wrap=write

$(B)/cli/main.o: cli/main.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DVB_MODULE_cli -c -o $@ $<

$(B)/vmaback: $(B)/cli/main.o $(ALL_LIBS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(B)/cli/main.o $(ALL_LIBS) $(LDLIBS)

$(B)/tools/%: tests/tools/%.c $(ALL_LIBS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

# Without the sanitizers: a shim is preloaded into any build.
$(B)/tools/%.so: tests/tools/preload/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

# The nbdkit plugin of `vmaback serve`: a shared object, so it links a
# position-independent build of the modules it uses ($(B)/pic), never the
# sanitizers' (nbdkit cannot load those). It is looked for beside the
# binary, then in ../lib/vmaback/.
PLUGIN_MODULES = archive io base vma
PLUGIN_LIBS = $(foreach m,$(PLUGIN_MODULES),$(B)/pic/lib/libvb_$(m).a)
PLUGIN_FLAGS = -O2 -g -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-unused-parameter -I. $(PKG_CFLAGS) -fPIC -shared
$(B)/nbdkit-vmaback-plugin.so: nbdkit/vmaback_plugin.c $(HEADERS) \
		$(foreach m,$(PLUGIN_MODULES),$(call SRCS_OF,$(m)))
	@$(MAKE) --no-print-directory B=$(B)/pic EXTRA_CFLAGS=-fPIC \
		EXTRA_LDFLAGS= $(PLUGIN_LIBS)
	$(CC) $(PLUGIN_FLAGS) -o $@ $< $(PLUGIN_LIBS) -Wl,--as-needed -Wl,--exclude-libs,ALL -Wl,-z,relro,-z,now \
		$(PKG_LIBS) -lpthread

# Every #include of a module names only itself and the modules it may use.
check-layers:
	@sh scripts/check-layers.sh $(foreach m,$(MODULES),$(m):$(DIR_$(m)):$(subst $(SPACE),+,$(DEPS_$(m))))

tools: $(TOOL_BINS) $(SHIM_BINS)

# Unit tests, then integration tests, against the build in $(B).
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(B)/vmaback $(B)/nbdkit-vmaback-plugin.so $(TOOL_BINS) $(SHIM_BINS)
	@VMABACK=$(CURDIR)/$(B)/vmaback TOOLS=$(CURDIR)/$(B)/tools sh tests/integration/run.sh

check-fast: check-layers unit integration

# The whole suite, plain and under ASan+UBSan (the kill loops and the
# random chains run shorter there; packaging, completions, the man page and
# QEMU restarts, which exercise no new memory of vmaback's, are left out).
SAN_SKIP ?= t_package t_completions t_man t_qmp_restart
check-san:
	@KILL_RUNS=$${KILL_RUNS:-15} QMP_KILL_RUNS=$${QMP_KILL_RUNS:-3} \
		SKIP_SCRIPTS="$(SAN_SKIP)" $(MAKE) --no-print-directory B=build-san LIBVIRT_LINK=1 \
		EXTRA_CFLAGS="$(SAN_FLAGS) -O1" EXTRA_LDFLAGS="$(SAN_FLAGS)" check-fast

# ThreadSanitizer over the unit tests that run helper threads (the
# encryption, zstd, read-ahead and SHA-256 helpers, the backup's cluster
# hashing), built in build-tsan; the first race fails the run. Not part of
# `make check`.
TSAN_TESTS ?= test_crypt test_io test_backup test_restore
check-tsan:
	@$(MAKE) --no-print-directory B=build-tsan EXTRA_CFLAGS="-fsanitize=thread -O1 -g" \
		EXTRA_LDFLAGS=-fsanitize=thread $(TSAN_TESTS:%=build-tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS); do echo "== tsan $$t"; \
		TSAN_OPTIONS="halt_on_error=1 $${TSAN_OPTIONS:-}" build-tsan/tests/$$t; done

# valgrind memcheck over the unit tests and a smaller integration suite
# (VALGRIND_TESTS; `make check` runs the unit tests only), vmaback wrapped so
# that any error or definite leak exits 99 and prints on stderr (which the
# tests' one-message checks see).
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
VALGRIND_TESTS ?= t_roundtrip t_bad_archives t_list_config_verify
check-valgrind: $(B)/vmaback $(UNIT_BINS) $(TOOL_BINS) $(SHIM_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; $(VALGRIND) $$t >/dev/null; done
	@[ -n "$(VALGRIND_TESTS)" ] || exit 0; mkdir -p $(B)/valgrind; printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(VALGRIND)" "$(CURDIR)/$(B)/vmaback" >$(B)/valgrind/vmaback
	@[ -n "$(VALGRIND_TESTS)" ] || exit 0; chmod +x $(B)/valgrind/vmaback; VMABACK=$(CURDIR)/$(B)/valgrind/vmaback TOOLS=$(CURDIR)/$(B)/tools VB_TIMEOUT=600 \
		sh tests/integration/run.sh $(VALGRIND_TESTS)

# The last line printed is the sanitizer run's "N passed, N failed".
check: deps
	@$(MAKE) --no-print-directory check-fast
	@$(MAKE) --no-print-directory check-valgrind VALGRIND_TESTS=
	@$(MAKE) --no-print-directory check-tsan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(MAKE) --no-print-directory check-san

# The kill loop's long mode: STRESS_RUNS backups SIGKILLed at random points
# (seed STRESS_SEED), every committed checkpoint restored after each kill.
STRESS_RUNS ?= 400
STRESS_SEED ?= 6
# Then the --qmp kill loop on a running VM (t_qmp_kill), QMP_STRESS_RUNS runs.
QMP_STRESS_RUNS ?= 60
stress: all
	python3 tests/stress/kill_loop.py --vmaback $(B)/vmaback --runs $(STRESS_RUNS) \
		--seed $(STRESS_SEED) --full-restore
	QMP_KILL_RUNS=$(QMP_STRESS_RUNS) QMP_KILL_SEED=$(STRESS_SEED) T_TIMEOUT=3600 \
		VMABACK=$(CURDIR)/$(B)/vmaback sh tests/integration/run.sh t_qmp_kill

demo: deps
	$(MAKE) all
	@VMABACK=$(CURDIR)/$(B)/vmaback sh scripts/demo.sh

bench: deps
	$(MAKE) all
	@VMABACK=$(CURDIR)/$(B)/vmaback sh tests/bench/bench.sh
	@VMABACK=$(CURDIR)/$(B)/vmaback bash tests/bench/qmp_bench.sh
	@VMABACK=$(CURDIR)/$(B)/vmaback bash tests/bench/libvirt_bench.sh

# libFuzzer targets, each run for FUZZ_SECONDS on its corpus in the repo.
FUZZ_SECONDS ?= 30
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g -O1
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
# A fuzz target reaching into a module's private interface names it here.
FUZZ_MODULE_fuzz_state_loader = store
FUZZ_MODULE_fuzz_adigests = store
FUZZ_MODULE_fuzz_meta = vma
FUZZ_MODULE_fuzz_decrypt = io
fuzz: deps
	$(MAKE) B=build-fuzz CC=clang EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
		$(subst $(B)/,build-fuzz/,$(ALL_LIBS))
	@set -e; mkdir -p build-fuzz/bin; for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); \
		mod=$$(sed -n "s/^FUZZ_MODULE_$$n = //p" Makefile); \
		clang $(CFLAGS) $${mod:+-DVB_MODULE_$$mod} $(FUZZ_FLAGS) -o build-fuzz/bin/$$n $$f \
			$(subst $(B)/,build-fuzz/,$(ALL_LIBS)) $(LDLIBS); \
		mkdir -p tests/fuzz/corpus/$$n build-fuzz/corpus/$$n; \
		echo "== $$n for $(FUZZ_SECONDS)s"; \
		build-fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			-artifact_prefix=build-fuzz/$$n- build-fuzz/corpus/$$n \
			tests/fuzz/corpus/$$n; \
	done

install: $(B)/vmaback $(B)/nbdkit-vmaback-plugin.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(B)/vmaback $(DESTDIR)$(BINDIR)/vmaback
	install -d $(DESTDIR)$(PLUGINDIR)
	install -m 0644 $(B)/nbdkit-vmaback-plugin.so $(DESTDIR)$(PLUGINDIR)/nbdkit-vmaback-plugin.so
	install -m 0644 doc/vmaback.1 $(DESTDIR)$(MANDIR)/vmaback.1
	install -m 0644 completions/vmaback.bash $(DESTDIR)$(BASHCOMPDIR)/vmaback
	install -m 0644 completions/_vmaback $(DESTDIR)$(ZSHCOMPDIR)/_vmaback
	install -m 0644 completions/vmaback.fish $(DESTDIR)$(FISHCOMPDIR)/vmaback.fish
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/vmaback@.service.in >$(DESTDIR)$(SYSTEMDUNITDIR)/vmaback@.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/vmaback@.service
	install -m 0644 systemd/vmaback@.timer $(DESTDIR)$(SYSTEMDUNITDIR)/vmaback@.timer

# The man page carries every command's --help: regenerate after changing one
# (tests/integration/t_man.sh fails when it is out of date).
man: $(B)/vmaback
	sh scripts/gen-man.sh $(B)/vmaback doc/vmaback.1.in >doc/vmaback.1.tmp
	mv doc/vmaback.1.tmp doc/vmaback.1

# The Debian package, built from a copy of the tree: build/deb/vmaback_*.deb.
deb:
	sh scripts/make-deb.sh build/deb

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vmaback $(DESTDIR)$(MANDIR)/vmaback.1 \
		$(DESTDIR)$(PLUGINDIR)/nbdkit-vmaback-plugin.so \
		$(DESTDIR)$(BASHCOMPDIR)/vmaback $(DESTDIR)$(ZSHCOMPDIR)/_vmaback \
		$(DESTDIR)$(FISHCOMPDIR)/vmaback.fish \
		$(DESTDIR)$(SYSTEMDUNITDIR)/vmaback@.service $(DESTDIR)$(SYSTEMDUNITDIR)/vmaback@.timer

clean:
	rm -rf build build-san build-tsan build-fuzz
