# bench/bench.mk: mxd's benchmark (docs/PERFORMANCE.md); included at the end
# of the Makefile, whose B, CC, CFLAGS and LDFLAGS it uses.
#
#   make bench        full run (a few minutes): prints the table, writes
#                     bench/results/latest.json and the table in
#                     docs/PERFORMANCE.md (with SAN=1: $(B)/bench.json only)
#   make bench-smoke  every scenario at small sizes (about 20 s); fails only
#                     if something is broken, never because of a figure
#   make bench-outage the link cut for 1 s under 100 streaming channels,
#                     with resumption and without (bench/outage.sh); also
#                     part of make bench, and of bench-smoke at small sizes
#
# Both need root for the shaped-link variant (network namespaces, tc); it
# is skipped with a message otherwise.

# Whatever the default goal was, this file does not change it.
bench_default_goal := $(.DEFAULT_GOAL)

.PHONY: bench bench-smoke bench-outage

# The yamux relay pair the benchmark compares against (Debian's Go and
# hashicorp/yamux, GOPATH mode, no network).
$(B)/yamux_relay: bench/yamux_relay.go scripts/build-go.sh
	scripts/build-go.sh $< $@

BENCH_DEPS := $(B)/mxd $(B)/mxload $(B)/yamux_relay $(B)/floor

# Sanitized binaries are slow: their figures go to $(B) only.
bench: $(BENCH_DEPS)
	bench/run.sh --build $(B) $(if $(filter 1,$(SAN)),--out $(B)/bench.json,\
	    --out bench/results/latest.json --doc docs/PERFORMANCE.md)
	bench/outage.sh --build $(B) --out $(B)/bench-outage.json

bench-smoke: $(BENCH_DEPS)
	bench/run.sh --smoke --build $(B) --out $(B)/bench-smoke.json
	bench/outage.sh --smoke --build $(B) --out $(B)/bench-outage-smoke.json

bench-outage: $(BENCH_DEPS)
	bench/outage.sh --build $(B) --out $(B)/bench-outage.json

.DEFAULT_GOAL := $(bench_default_goal)
