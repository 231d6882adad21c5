/*
 * addr: the benchmark programs' addresses (mxload, floor).
 */
#ifndef MXD_BENCH_ADDR_H
#define MXD_BENCH_ADDR_H

#include <netinet/in.h>

/* Parse IPv4 "HOST:PORT" ${s} into ${sin}, or exit 2 with a message that
 * names ${prog}. */
void parse_addr(const char *prog, const char *s, struct sockaddr_in *sin);

#endif
