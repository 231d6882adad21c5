/*
 * session: one yamux session on one connection (conn.h).
 *
 * Drives the mux engine from the event loop: bytes read go to mux_input,
 * output is pulled from mux_output only while the link's output buffer is
 * short (so the engine's fair scheduler, not a deep buffer, orders frames),
 * pings go out every keepalive, and a link silent for timeout is declared
 * dead.  Every way the session ends (EOF, error, timeout, protocol error)
 * arrives once, as on_down, from the event loop; the owner then calls
 * session_free.
 */
#ifndef MXD_SESSION_H
#define MXD_SESSION_H

#include <stdint.h>

#include "mux/mux.h"

struct conn;
struct event_base;
struct session;

struct session_handlers {
	/* The peer opened ${s}: 0 accepts, -1 refuses (see mux.h). */
	int (*on_stream_open)(struct session *, struct mux_stream *s,
	    void *arg);
	/* Per-stream events, called with the stream's own argument. */
	void (*on_stream_readable)(struct mux_stream *, void *sarg);
	void (*on_stream_writable)(struct mux_stream *, void *sarg);
	void (*on_stream_close)(struct mux_stream *, void *sarg,
	    enum mux_close_reason);
	/* The peer sent Go Away ${code}. */
	void (*on_goaway)(struct session *, uint32_t code, void *arg);
	/* The session is over (${why} says why); call session_free. */
	void (*on_down)(struct session *, const char *why, void *arg);
	/* A peer's open was refused by a limit of the engine (NULL: none). */
	void (*on_stream_refused)(struct session *, void *arg);
	/* Pull mode's per-stream event (see mux.h; NULL: no pull mode). */
	void (*on_stream_pull)(struct mux_stream *, void *sarg);
	/* The peer answered our first ping: it speaks yamux (NULL: none). */
	void (*on_answered)(struct session *, void *arg);
};

struct session_params {
	struct mux_config mux;
	uint64_t	keepalive_ms;	/* ping interval; 0: none */
	uint64_t	timeout_ms;	/* silence that kills; 0: never */
	uint64_t	answer_ms;	/* our first ping unanswered this long
					 * kills (connect_timeout); 0: never */
};

/*
 * Start a session on connection ${conn} (taken over; freed by session_free)
 * in ${base} with ${params}, reporting to ${h} with ${arg}.  Returns NULL on
 * failure (${conn} is then still the caller's).
 */
struct session *session_new(struct event_base *base, struct conn *conn,
    const struct session_params *params, const struct session_handlers *h,
    void *arg);

/* Free ${sess}: every open stream gets on_stream_close(MUX_CLOSE_SESSION),
 * then the connection is closed.  NULL is ok. */
void session_free(struct session *sess);

/* The engine of ${sess}, for opening streams and stream calls. */
struct mux *session_mux(struct session *sess);

/* The session a stream ${s} belongs to. */
struct session *session_of(struct mux_stream *s);

/* From now on, ping the peer of ${sess} every ${keepalive_ms} and end the
 * session after ${timeout_ms} without a frame from it (0: never).  Returns
 * 0, or -1 if the timer cannot be set. */
int session_set_liveness(struct session *sess, uint64_t keepalive_ms,
    uint64_t timeout_ms);

/* Nonzero once the peer of ${sess} has answered one of our pings. */
int session_answered(const struct session *sess);

/* Nonzero if all ${sess} has queued for the peer is in the socket (or the
 * session is down, and nothing more will go). */
int session_flushed(const struct session *sess);

/* Send Go Away ${code} on ${sess}: no new streams either way. */
void session_goaway(struct session *sess, uint32_t code);

/* Microseconds on the monotonic clock. */
uint64_t session_now_us(void);

#endif
