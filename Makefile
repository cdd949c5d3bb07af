# riven: plain GNU Makefile (STYLE.md rule 27).
#   make                  build build/riven
#   make run              install missing packages, build, run with conf/riven.yml
#   make test             install missing packages, build, run unit + integration tests
#   make test SANITIZER=address|undefined|thread
#   make install / uninstall   (PREFIX, DESTDIR, SYSCONFDIR, UNITDIR, MANDIR, DATADIR)

CC        ?= cc
PREFIX    ?= /usr/local
SANITIZER ?=
VERSION   := 0.1.0

ifeq ($(SANITIZER),)
BUILD     := build
else
BUILD     := build/$(SANITIZER)
endif

PKGS      := libmemcached yaml-0.1 libsystemd libmicrohttpd openssl
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wformat=2 -Wvla -Wimplicit-fallthrough
ifneq ($(CI),)
WARN      += -Werror
endif
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Iinclude \
             -DRIVEN_VERSION='"$(VERSION)"' \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

ifeq ($(SANITIZER),address)
CFLAGS    += -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
else ifeq ($(SANITIZER),undefined)
CFLAGS    += -fsanitize=undefined -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=undefined
else ifeq ($(SANITIZER),thread)
CFLAGS    += -fsanitize=thread
LDFLAGS   += -fsanitize=thread
endif

LIB_SRCS  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libriven.a
BIN       := $(BUILD)/riven

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRCS:= $(wildcard tests/integ/integ_*.c)
INTEG_BINS:= $(INTEG_SRCS:tests/integ/%.c=$(BUILD)/tests/%)
TLIB_SRCS := $(wildcard tests/lib/*.c)
TLIB_OBJS := $(TLIB_SRCS:tests/lib/%.c=$(BUILD)/tobj/%.o)
# tests/lib/tls_client.c: OpenSSL, for the tests' TLS clients
TLIB_CFLAGS := $(shell pkg-config --cflags openssl 2>/dev/null)
TLIB_LIBS := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
BENCH_SRCS:= $(wildcard tests/bench/*.c)
BENCH_BINS:= $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

# Debian packages the build, the tests and `make run` need.
DEB_PKGS  := build-essential pkg-config libmemcached-dev libyaml-dev \
             libmicrohttpd-dev libsystemd-dev libcmocka-dev memcached \
             libmemcached-tools strace systemd prometheus libssl-dev openssl

.PHONY: all run test deps tests unit integ install uninstall clean check bench

all: $(BIN)

DEPFLAGS  := -MMD -MP

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tobj/%.o: tests/lib/%.c | $(BUILD)/tobj
	$(CC) $(CFLAGS) $(TLIB_CFLAGS) $(DEPFLAGS) -Itests/lib -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $< $(LIB) \
	    $(shell pkg-config --libs cmocka) $(LDLIBS)

$(BUILD)/tests/integ_%: tests/integ/integ_%.c $(TLIB_OBJS) $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TLIB_CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $< $(TLIB_OBJS) $(LIB) \
	    $(shell pkg-config --libs cmocka) $(TLIB_LIBS) $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(TLIB_OBJS) | $(BUILD)/tools
	$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $< $(TLIB_OBJS) \
	    $(shell pkg-config --libs cmocka) $(TLIB_LIBS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(LIB) | $(BUILD)/bench
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tobj $(BUILD)/tests $(BUILD)/tools $(BUILD)/bench:
	mkdir -p $@

# riven with allocation faults on request (tests/fault/riven_fault.c)
FAULT_BIN := $(BUILD)/tests/riven-fault
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=server_run

$(FAULT_BIN): tests/fault/riven_fault.c $(BUILD)/obj/main.o $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) $(FAULT_WRAP) -o $@ $< $(BUILD)/obj/main.o \
	    $(LIB) $(LDLIBS)

tests: $(BIN) $(UNIT_BINS) $(INTEG_BINS) $(TOOL_BINS) $(FAULT_BIN)

deps:
	@missing=""; for p in $(DEB_PKGS) $(EXTRA_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "riven: missing Debian packages:$$missing"; \
	    echo "riven: run 'sudo make deps' or: sudo apt-get install$$missing"; \
	    exit 1; \
	fi; \
	echo "riven: installing$$missing"; \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing

run: deps
	@$(MAKE) --no-print-directory $(BIN)
	@exec tests/run-local.sh $(BIN) conf/riven.yml

test: deps
	@$(MAKE) --no-print-directory tests
	@RIVEN_BIN=$(BIN) TEST_DIR=$(BUILD)/tests SANITIZER=$(SANITIZER) \
	    tests/run-tests.sh

bench:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="nutcracker gnuplot-nox valgrind"
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BINS)
	@tests/bench/run.sh $(BIN) $(BUILD)/bench

SYSCONFDIR ?= /etc
UNITDIR    ?= /etc/systemd/system
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/riven

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/riven \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DATADIR)
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/riven
	install -m 0644 src/riven.8 $(DESTDIR)$(MANDIR)/man8/riven.8
	install -m 0644 src/riven.yml.5 $(DESTDIR)$(MANDIR)/man5/riven.yml.5
	install -m 0644 conf/grafana/riven.json $(DESTDIR)$(DATADIR)/riven.json
	install -m 0644 conf/prometheus/riven-rules.yml \
	    $(DESTDIR)$(DATADIR)/riven-rules.yml
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/riven/riven.yml ]; then \
	    echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/riven/riven.yml"; \
	else \
	    install -m 0644 conf/riven.yml $(DESTDIR)$(SYSCONFDIR)/riven/riven.yml; \
	fi
	sed 's|/usr/local/bin/riven|$(PREFIX)/bin/riven|g; s|/etc/riven/|$(SYSCONFDIR)/riven/|g' \
	    conf/riven.service > $(DESTDIR)$(UNITDIR)/riven.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/riven.service
	install -m 0644 conf/riven.socket $(DESTDIR)$(UNITDIR)/riven.socket

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/riven $(DESTDIR)$(UNITDIR)/riven.service \
	    $(DESTDIR)$(UNITDIR)/riven.socket $(DESTDIR)$(MANDIR)/man8/riven.8 \
	    $(DESTDIR)$(MANDIR)/man5/riven.yml.5 $(DESTDIR)$(DATADIR)/riven.json \
	    $(DESTDIR)$(DATADIR)/riven-rules.yml
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/riven/riven.yml"

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/main.d $(TLIB_OBJS:.o=.d)

# ---- fuzzing (issue 9) ----
#   make fuzz [FUZZ_SECONDS=60]   build the libFuzzer targets (clang, ASan +
#                                 UBSan) under build/fuzz/ and run each one
#                                 for FUZZ_SECONDS on tests/fuzz/corpus/<t>.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_PKGS    := clang libclang-rt-dev
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -pthread -Wall -Iinclude \
                -DRIVEN_VERSION='"$(VERSION)"' $(FUZZ_SAN) \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJS    := $(LIB_SRCS:src/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB     := $(FUZZ_BUILD)/libriven.a

.PHONY: fuzz
fuzz:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(FUZZ_PKGS)"
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_BINS)

$(FUZZ_OBJS): $(FUZZ_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_BINS): $(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(DEPFLAGS) \
	    -MF $(FUZZ_BUILD)/obj/$*.d -o $@ \
	    $< $(FUZZ_LIB) $(LDLIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/obj/%.d)

# ---- static checks (issue 9) ----
#   make check   clang-format, clang-tidy (.clang-tidy), cppcheck, header
#                self-containment, the DESIGN.md layer rule and the manual
#                pages' lint (mandoc, groff); every step
#                runs, each prints its result, and any failure fails make.
CHECK_PKGS   := clang clang-format clang-tidy cppcheck pkg-config mandoc \
                groff-base

check:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(CHECK_PKGS)"
	@CC="$(CC)" RIVEN_PKGS="$(PKGS)" RIVEN_VERSION="$(VERSION)" \
	    tests/check/run.sh
