# libFuzzer targets; included from the top Makefile, run from the repo root.
#
#   make fuzz-build   build build-fuzz/fuzz_mux, fuzz_resume, fuzz_config and fuzz_svchdr
#   make fuzz-smoke   run each FUZZ_SMOKE_SECONDS (15) on a scratch copy of
#                     its seed corpus (tests/corpus/NAME is never written)
#   make fuzz         run each FUZZ_SECONDS (600), keeping the grown corpus
#                     in build-fuzz/corpus-NAME (seeded from tests/corpus/NAME)
#
# A crash, leak, timeout or failed check fails the target; the reproducer is
# left in build-fuzz/artifacts-NAME/.  Reproduce with
#   build-fuzz/fuzz_NAME build-fuzz/artifacts-NAME/crash-...
# (FUZZ_MUX_TRACE=1 in the environment makes fuzz_mux print what happens.)
#
# FUZZ_EXTRA adds compiler flags (make -B build-fuzz/fuzz_mux FUZZ_EXTRA=...).

# Keep the top Makefile's default goal even if this is included early.
ifeq ($(.DEFAULT_GOAL),)
FUZZ_RESET_GOAL := 1
endif

FUZZ_B		:= build-fuzz
FUZZ_CC		?= clang
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_SECONDS	?= 600
FUZZ_PKGS	:= libevent inih
FUZZ_CFLAGS	:= -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		   -fno-omit-frame-pointer -g -O1 \
		   -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc \
		   $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_CFLAGS	+= $(FUZZ_EXTRA)
FUZZ_LDLIBS	:= $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null)
FUZZ_NAMES	:= mux resume config svchdr
FUZZ_MUX_SRC	:= $(wildcard src/mux/*.c)
FUZZ_CONFIG_SRC	:= src/config.c
FUZZ_SVCHDR_SRC	:= src/svchdr.c src/config.c

.PHONY: fuzz-build fuzz-smoke fuzz

fuzz-build: $(addprefix $(FUZZ_B)/fuzz_,$(FUZZ_NAMES))

$(FUZZ_B)/fuzz_mux: tests/fuzz/fuzz_mux.c $(FUZZ_MUX_SRC) $(wildcard src/mux/*.h)
	@mkdir -p $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_mux.c $(FUZZ_MUX_SRC) \
	    $(FUZZ_LDLIBS)

# The resumption target includes the engine's source (to check its books).
$(FUZZ_B)/fuzz_resume: tests/fuzz/fuzz_resume.c $(FUZZ_MUX_SRC) $(wildcard src/mux/*.h)
	@mkdir -p $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_resume.c src/mux/idmap.c \
	    $(FUZZ_LDLIBS)

$(FUZZ_B)/fuzz_config: tests/fuzz/fuzz_config.c $(FUZZ_CONFIG_SRC) src/config.h
	@mkdir -p $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_config.c \
	    $(FUZZ_CONFIG_SRC) $(FUZZ_LDLIBS)

$(FUZZ_B)/fuzz_svchdr: tests/fuzz/fuzz_svchdr.c $(FUZZ_SVCHDR_SRC) src/svchdr.h \
    src/config.h
	@mkdir -p $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_svchdr.c \
	    $(FUZZ_SVCHDR_SRC) $(FUZZ_LDLIBS)

# Short runs on throwaway copies of the seed corpora.
fuzz-smoke: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	    rm -rf $(FUZZ_B)/smoke-$$n; \
	    tests/fuzz/run.sh $$n $(FUZZ_SMOKE_SECONDS) $(FUZZ_B)/smoke-$$n; \
	done

# The long run; the corpus grows across runs in build-fuzz/corpus-NAME.
fuzz: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	    tests/fuzz/run.sh $$n $(FUZZ_SECONDS) $(FUZZ_B)/corpus-$$n; \
	done

ifdef FUZZ_RESET_GOAL
.DEFAULT_GOAL :=
endif
