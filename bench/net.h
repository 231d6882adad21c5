/*
 * net: what the benchmark's programs (mxload, floor) share about sockets.
 */
#ifndef MXD_BENCH_NET_H
#define MXD_BENCH_NET_H

#include <netinet/in.h>

/* Parse IPv4 "HOST:PORT" ${s} into ${sin}, or exit 2 with a message that
 * names ${prog}. */
void parse_addr(const char *prog, const char *s, struct sockaddr_in *sin);

/* Turn Nagle off on socket ${fd}. */
void net_nodelay(int fd);

/*
 * A socket (created with ${flags}: SOCK_NONBLOCK, SOCK_CLOEXEC) listening
 * on ${sin} with ${backlog}, SO_REUSEADDR set; the port bound is written
 * back to ${sin}.  Returns -1 with errno on failure.
 */
int net_listen(struct sockaddr_in *sin, int flags, int backlog);

#endif
