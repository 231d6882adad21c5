/*
 * peer: a yamux test peer in the test process, for tests that talk to a
 * listening mxd directly (no second mxd): the mux engine (src/mux) on a
 * plain socket, driven by hand.  Linked into every test binary; everything
 * is named tp_ or TP_.
 *
 * Streams the peer opens carry whatever bytes the test gives them (a
 * service header, crafted or not, then payload); what mxd sends back
 * collects in each stream's rx buffer.  Memory is released by tp_free (the
 * structures themselves by it_cleanup).
 */
#ifndef MXD_TEST_PEER_H
#define MXD_TEST_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "mux/mux.h"

struct evbuffer;
struct it_mxd;

#define TP_RESET_MS	3000	/* a refused stream is reset within this */

/* A stream the test peer opened. */
struct tp_stream {
	struct mux_stream *s;		/* NULL once ended */
	enum mux_close_reason closed;	/* 0 while open */
	struct evbuffer	*rx;
	int		eof;
	struct tp	*tp;
};

/* A yamux peer of a listening mxd on a plain socket, on the mux engine. */
struct tp {
	int		fd;
	struct mux	*m;
	struct evbuffer	*in, *out;
	const char	*error;		/* the protocol error mxd made */
	struct tp_stream **st;
	int		nst, cap;
	uint64_t	resets;		/* streams mxd reset */
	int		link_closed;	/* mxd closed the link (tp_pump) */
};

/* A test peer connected to the mxd listening on 127.0.0.1:${port}, with
 * the engine's defaults for a dialer. */
struct tp *tp_connect(int port);

/* The same with engine configuration ${cfg} (dialer must be 1). */
struct tp *tp_connect_cfg(int port, const struct mux_config *cfg);

/* Close ${tp} and free what it holds. */
void	tp_free(struct tp *tp);

/* Move bytes both ways until mxd ${m} logs the link up (once ${tp}'s engine
 * has answered its first ping), at most IT_WAIT_MS. */
void	tp_wait_up(struct tp *tp, struct it_mxd *m);

/* Move bytes both ways for at most ${ms}, or until ${ts} has ended, or has
 * ${want} bytes (0: only its end) and EOF.  Fails the test if mxd closes
 * the link or breaks the protocol. */
void	tp_run(struct tp *tp, int ms, struct tp_stream *ts, size_t want);

/*
 * Move bytes both ways for at most ${ms}, or until ${done}(${arg}) returns
 * nonzero (checked after each round; NULL: never).  Returns 1 if ${done}
 * said so, 0 at the deadline, -1 if mxd closed the link (tp->link_closed).
 * Fails the test only if mxd breaks the protocol.
 */
int	tp_pump(struct tp *tp, int ms, int (*done)(struct tp *, void *),
	    void *arg);

/* Open a stream that sends the ${len} bytes at ${data}, then FIN if
 * ${fin}. */
struct tp_stream *tp_open(struct tp *tp, const void *data, size_t len,
	    int fin);

/* Queue ${len} more bytes on ${ts}. */
void	tp_write(struct tp_stream *ts, const void *data, size_t len);

/* ${ts} must be reset by mxd within TP_RESET_MS. */
void	tp_expect_reset(struct tp *tp, struct tp_stream *ts, const char *what);

/* ${ts} must get back exactly ${reply} and EOF once it sends FIN; then it
 * is released. */
void	tp_expect_reply(struct tp *tp, struct tp_stream *ts, const char *reply,
	    const char *what);

/* End ${ts} gracefully: FIN, then wait for mxd's FIN (all its data read
 * and dropped), then release it. */
void	tp_close(struct tp *tp, struct tp_stream *ts, const char *what);

/* Send ${len} bytes on ${ts} and wait at most ${ms} for the same bytes to
 * come back (an echo service); returns the milliseconds it took, or -1. */
long	tp_echo(struct tp *tp, struct tp_stream *ts, const void *data,
	    size_t len, int ms);

/* Reset ${ts} (RST to mxd). */
void	tp_reset(struct tp_stream *ts);

/* A service header for service ${name} with no records, in ${buf} (at
 * least 3 + strlen(name) bytes); returns its length. */
size_t	tp_svchdr(char *buf, const char *name);

#endif
