# vmaback: build, test, install.  `make check` and `make demo` install what
# is missing on Debian 12 first (scripts/deps.sh), then build and run.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man/man1
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libzstd libcrypto libarchive json-c zlib libnbd
# Variant builds (the sanitizer build) go to their own directory.
B ?= build
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-unused-parameter -I. $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS += $(PKG_LIBS) -lpthread

LIB_SRCS = $(wildcard vma/*.c) $(wildcard bitmap/*.c) $(wildcard core/*.c)
CLI_SRCS = $(wildcard cli/*.c)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
TOOL_SRCS = $(wildcard tests/tools/*.c)

LIB_OBJS = $(LIB_SRCS:%.c=$(B)/%.o)
CLI_OBJS = $(filter-out $(B)/cli/main.o,$(CLI_SRCS:%.c=$(B)/%.o))
# Everything but main(): the binary, the unit tests and the fuzz targets link it.
LIBS_A = $(B)/libvmaback_cli.a $(B)/libvmaback.a
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOL_BINS = $(TOOL_SRCS:tests/tools/%.c=$(B)/tools/%)
HEADERS = $(wildcard */*.h) $(wildcard tests/unit/*.h)

.PHONY: man all deps check check-fast check-san check-valgrind unit integration demo bench \
	fuzz stress install uninstall clean tools

all: $(B)/vmaback

deps:
	@sh scripts/deps.sh

$(B)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libvmaback.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libvmaback_cli.a: $(CLI_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/vmaback: $(B)/cli/main.o $(LIBS_A)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(B)/cli/main.o $(LIBS_A) $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(LIBS_A) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS_A) $(LDLIBS) $(CMOCKA_LIBS)

$(B)/tools/%: tests/tools/%.c $(LIBS_A) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS_A) $(LDLIBS)

tools: $(TOOL_BINS)

# Unit tests, then integration tests, against the build in $(B).
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(B)/vmaback $(TOOL_BINS)
	@VMABACK=$(CURDIR)/$(B)/vmaback TOOLS=$(CURDIR)/$(B)/tools sh tests/integration/run.sh

check-fast: unit integration

# The whole suite, plain and under ASan+UBSan (the kill loop runs fewer
# times there: KILL_RUNS, default 15).
check-san:
	@KILL_RUNS=$${KILL_RUNS:-15} $(MAKE) --no-print-directory B=build-san \
		EXTRA_CFLAGS="$(SAN_FLAGS) -O1" EXTRA_LDFLAGS="$(SAN_FLAGS)" check-fast

# valgrind memcheck over the unit tests and a smaller integration suite
# (VALGRIND_TESTS; `make check` runs the unit tests only), vmaback wrapped so
# that any error or definite leak exits 99 and prints on stderr (which the
# tests' one-message checks see).
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
VALGRIND_TESTS ?= t_roundtrip t_bad_archives t_list_config_verify
check-valgrind: $(B)/vmaback $(UNIT_BINS) $(TOOL_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; $(VALGRIND) $$t >/dev/null; done
	@[ -n "$(VALGRIND_TESTS)" ] || exit 0; mkdir -p $(B)/valgrind; printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(VALGRIND)" "$(CURDIR)/$(B)/vmaback" >$(B)/valgrind/vmaback
	@[ -n "$(VALGRIND_TESTS)" ] || exit 0; chmod +x $(B)/valgrind/vmaback; VMABACK=$(CURDIR)/$(B)/valgrind/vmaback TOOLS=$(CURDIR)/$(B)/tools VB_TIMEOUT=600 \
		sh tests/integration/run.sh $(VALGRIND_TESTS)

# The last line printed is the sanitizer run's "N passed, N failed".
check: deps
	@$(MAKE) --no-print-directory check-fast
	@$(MAKE) --no-print-directory check-valgrind VALGRIND_TESTS=
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(MAKE) --no-print-directory check-san

# The kill loop's long mode: STRESS_RUNS backups SIGKILLed at random points
# (seed STRESS_SEED), every committed checkpoint restored after each kill.
STRESS_RUNS ?= 400
STRESS_SEED ?= 6
stress: all
	python3 tests/stress/kill_loop.py --vmaback $(B)/vmaback --runs $(STRESS_RUNS) \
		--seed $(STRESS_SEED) --full-restore

demo: deps
	$(MAKE) all
	@VMABACK=$(CURDIR)/$(B)/vmaback sh scripts/demo.sh

bench: deps
	$(MAKE) all
	@VMABACK=$(CURDIR)/$(B)/vmaback sh tests/bench/bench.sh

# libFuzzer targets, each run for FUZZ_SECONDS on its corpus in the repo.
FUZZ_SECONDS ?= 30
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g -O1
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
fuzz: deps
	$(MAKE) B=build-fuzz CC=clang EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
		build-fuzz/libvmaback.a build-fuzz/libvmaback_cli.a
	@set -e; mkdir -p build-fuzz/bin; for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); \
		clang $(CFLAGS) $(FUZZ_FLAGS) -o build-fuzz/bin/$$n $$f build-fuzz/libvmaback_cli.a \
			build-fuzz/libvmaback.a $(LDLIBS); \
		mkdir -p tests/fuzz/corpus/$$n build-fuzz/corpus/$$n; \
		echo "== $$n for $(FUZZ_SECONDS)s"; \
		build-fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			-artifact_prefix=build-fuzz/$$n- build-fuzz/corpus/$$n \
			tests/fuzz/corpus/$$n; \
	done

install: $(B)/vmaback
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(B)/vmaback $(DESTDIR)$(BINDIR)/vmaback
	install -m 0644 doc/vmaback.1 $(DESTDIR)$(MANDIR)/vmaback.1
	install -m 0644 completions/vmaback.bash $(DESTDIR)$(BASHCOMPDIR)/vmaback
	install -m 0644 completions/_vmaback $(DESTDIR)$(ZSHCOMPDIR)/_vmaback
	install -m 0644 completions/vmaback.fish $(DESTDIR)$(FISHCOMPDIR)/vmaback.fish

# The man page carries every command's --help: regenerate after changing one
# (tests/integration/t_man.sh fails when it is out of date).
man: $(B)/vmaback
	sh scripts/gen-man.sh $(B)/vmaback doc/vmaback.1.in >doc/vmaback.1.tmp
	mv doc/vmaback.1.tmp doc/vmaback.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vmaback $(DESTDIR)$(MANDIR)/vmaback.1 \
		$(DESTDIR)$(BASHCOMPDIR)/vmaback $(DESTDIR)$(ZSHCOMPDIR)/_vmaback \
		$(DESTDIR)$(FISHCOMPDIR)/vmaback.fish

clean:
	rm -rf build build-san build-fuzz
