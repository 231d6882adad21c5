/*
 * netns: two network namespaces joined by a veth pair, for tests that put
 * a real network between two mxd: shaped with tc tbf, lossy or cut off
 * with nftables.  Linked into every test binary; named nt_.
 *
 *   side 0 "a": namespace mxf<pid>a, veth mxf<pid>a, 10.231.200.1/30
 *   side 1 "b": namespace mxf<pid>b, veth mxf<pid>b, 10.231.200.2/30
 *
 * Only these private addresses, on veths inside namespaces made here, carry
 * traffic; each namespace has its own loopback for the services, targets
 * and clients of its side.  The test process enters a side (nt_enter) to
 * make sockets there (clients, targets, metrics requests), and leaves it
 * again; mxd is started inside one with it_mxd_start_opts.
 *
 * Needs root (nt_available says why not).  nt_teardown, a Check fixture,
 * deletes the namespaces; so does an exit handler, and nt_setup deletes
 * any that a crashed test left behind.
 */
#ifndef MXD_TEST_NETNS_H
#define MXD_TEST_NETNS_H

#include <stddef.h>

struct nt {
	char		ns[2][32];	/* names under /run/netns */
	char		dev[2][16];	/* the veth end in each */
	const char	*addr[2];	/* its address (no prefix) */
};

/* Nonzero if namespaces can be made here; if not, the reason in ${why}. */
int	nt_available(char *why, size_t len);

/* Make the pair, up and addressed (fails the test on error). */
void	nt_setup(struct nt *n);

/*
 * Make the pair joined not by a veth pair but by the WAN emulator (the
 * program $WANEM: ../shared/tools/wanem, built as build/wanem; its README
 * says how it works and how it was verified), through a TUN device in each
 * namespace: ${delay_ms} each way, a bottleneck of ${rate_mbit} with a
 * drop-tail queue of one BDP, ${loss} percent of the packets lost at
 * random each way; 32 MiB socket buffers allowed.  Returns 0, or -1 with
 * the reason in ${why} if there is no emulator (the test then skips).
 * nt_drop, nt_dropped and nt_teardown work as with a veth pair; nt_shape
 * does not apply; nt_wan_freeze stops (and thaws) the emulator: a black
 * hole.
 */
int	nt_setup_wan(struct nt *n, double delay_ms, int rate_mbit, double loss,
	    char *why, size_t len);
void	nt_wan_freeze(int on);

/* Delete the pair, if any (leaves a side first).  A Check teardown. */
void	nt_teardown(void);

/* Make sockets in ${side} (0 or 1) from now on; nt_leave goes back. */
void	nt_enter(const struct nt *n, int side);
void	nt_leave(void);

/* Egress of both veth ends through "tbf ${tbf}" (NULL: no shaping). */
void	nt_shape(const struct nt *n, const char *tbf);

/* Drop ${pct} percent (0..100; 100: all) of the packets each side
 * receives on its veth, at random; 0 removes the rule. */
void	nt_drop(const struct nt *n, int pct);

/* Packets the nt_drop rules dropped so far, both sides; -1 on error. */
long	nt_dropped(const struct nt *n);

/* Run shell command ${fmt} (root's tools on PATH); fails the test if it
 * does not exit 0. */
void	nt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
