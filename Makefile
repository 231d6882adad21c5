# mxd: many TCP connections over one link.
#
#   make            build build/mxd
#   make check      install missing packages, build and run every test, a
#                   15 s fuzz smoke run per target, then the same suite under
#                   AddressSanitizer + UBSan
#   make demo       run a pair of mxd on loopback and push traffic through
#   make fuzz       long libFuzzer runs: frame engine, config, service header
#   make soak       10 minutes of 10,000 channels; make valgrind: the
#                   integration suites with mxd under valgrind
#   make bench      the benchmark against direct TCP, socat and yamux
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX	?= /usr/local
DESTDIR	?=
VERSION	:= 0.1.0

# Which build: default, or SAN=1 for ASan+UBSan in build-asan/.
ifeq ($(SAN),1)
B	:= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT	:= -O1 -g
else
B	:= build
SANFLAGS :=
OPT	:= -O2 -g
endif

PKGS	:= libevent libevent_openssl libevent_pthreads inih libssl libcrypto libsystemd
CC	?= cc
CFLAGS	?= $(OPT)
CFLAGS	+= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc $(SANFLAGS) \
	   -DMXD_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
LDFLAGS	+= $(SANFLAGS)
TEST_LDLIBS := $(shell pkg-config --libs check 2>/dev/null)

# Every source but main.c goes into a library that tests link against.
LIB_SRC	:= $(filter-out src/main.c,$(wildcard src/*.c src/mux/*.c))
LIB_OBJ	:= $(LIB_SRC:%.c=$(B)/%.o)
TESTS	:= $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))
TEST_SUPPORT := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
SCRIPT_TESTS := $(wildcard tests/test_*.sh)

.PHONY: all check check-run deps clean install uninstall demo fuzz soak valgrind
all: $(B)/mxd $(B)/mxload

# Objects depend on every header (few and small: simpler than generated
# dependency files); test support objects on the test headers as well.
$(B)/src/%.o: src/%.c $(wildcard src/*.h src/mux/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/%.o: tests/%.c $(wildcard src/*.h src/mux/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c -o $@ $<

# Keep objects that only chained rules make.
.SECONDARY:

$(B)/libmxd.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/mxd: $(B)/src/main.o $(B)/libmxd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The benchmark's load generator, and the floor it measures mxd against.
$(B)/mxload $(B)/floor: $(B)/%: bench/%.c bench/net.c bench/net.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^)

$(B)/tests/%: tests/%.c $(TEST_SUPPORT:%.c=$(B)/%.o) $(B)/libmxd.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(TEST_SUPPORT:%.c=$(B)/%.o) $(B)/libmxd.a $(TEST_LDLIBS) $(LDLIBS)

# The independent yamux implementation the interop tests talk to.
$(B)/yamux_peer: tests/interop/yamux_peer.go scripts/build-go.sh
	scripts/build-go.sh $< $@

# The WAN emulator the WAN tests run across (../shared/tools/wanem, with
# its own flags: it is not ours); without it they skip.
WANEM_SRC := $(wildcard ../shared/tools/wanem/wanem.c)
$(B)/wanem: $(WANEM_SRC)
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -o $@ $<

deps:
	@scripts/deps.sh

# The README's test command.  Runs the suite twice: plain, then sanitized.
check: deps
	$(MAKE) check-run
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke
	$(MAKE) SAN=1 check-run

# Sanitized tests run unforked so that LeakSanitizer sees every test's end.
check-run: $(B)/mxd $(B)/mxload $(B)/yamux_peer $(TESTS) \
    $(if $(WANEM_SRC),$(B)/wanem)
	@MXD_BIN=$(CURDIR)/$(B)/mxd YAMUX_PEER=$(CURDIR)/$(B)/yamux_peer \
	    MXLOAD=$(CURDIR)/$(B)/mxload \
	    $(if $(WANEM_SRC),WANEM=$(CURDIR)/$(B)/wanem) \
	    $(if $(filter 1,$(SAN)),CK_FORK=no) tests/run.sh $(TESTS) $(SCRIPT_TESTS)

# The long soak: 10,000 concurrent channels for 10 minutes (MXD_SOAK_SECS).
soak: deps $(B)/mxd $(B)/tests/test_soak
	MXD_BIN=$(CURDIR)/$(B)/mxd MXD_SOAK_SECS=$${MXD_SOAK_SECS:-600} \
	    $(B)/tests/test_soak

# The integration suites with every mxd under valgrind memcheck.
valgrind: deps $(B)/mxd $(B)/tests/test_daemon $(B)/tests/test_hostile \
	    $(B)/tests/test_faults
	MXD_BIN=$(CURDIR)/$(B)/mxd tests/valgrind.sh $(B)

# The README's first command: a pair on loopback carrying 1,000 connections.
demo:
	@scripts/deps.sh demo
	$(MAKE) $(B)/mxd $(B)/mxload
	scripts/demo.sh $(B)

clean:
	rm -rf build build-asan build-fuzz

# install, uninstall
include mk/install.mk
-include tests/fuzz/fuzz.mk
-include bench/bench.mk
