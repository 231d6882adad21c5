/*
 * session: one yamux session (the engine and its streams) and the
 * connection (conn.h) it runs on, if any.
 *
 * Drives the mux engine from the event loop: bytes read go to mux_input,
 * output is pulled from mux_output only while the link's output buffer is
 * short (so the engine's fair scheduler, not a deep buffer, orders frames),
 * pings go out every keepalive, and a link silent for timeout is declared
 * dead.
 *
 * With resume_ms > 0 the session offers resumption (docs/PROTOCOL.md
 * section 11).  When its connection is lost after the peer agreed, it is
 * held: its streams stay open, with nothing sent, for up to resume_ms, and
 * it resumes on a new connection (session_attach on the dialing side; on
 * the listening side a new session to which the peer proves it is resuming
 * hands its connection over), or ends.  A peer that does not know the
 * session (it restarted) refuses at once.
 *
 * Every way a session ends arrives once, as on_down, from the event loop;
 * the owner then calls session_free.
 */
#ifndef MXD_SESSION_H
#define MXD_SESSION_H

#include <stddef.h>
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

	/* Resumable sessions only (resume_ms > 0). */
	/* The connection is gone (${why}): the session is held (see the
	 * top).  The owner dials again, or waits for the peer to. */
	void (*on_lost)(struct session *, const char *why, void *arg);
	/* It runs again on a new connection, after ${held_us} without one
	 * and ${setup_us} after that connection came (or was handed over);
	 * ${resent} bytes are being sent again. */
	void (*on_resumed)(struct session *, uint64_t held_us,
	    uint64_t setup_us, uint64_t resent, void *arg);
	/* The peer refused to resume it (${why}): call session_free, which
	 * resets its streams, and start a new session. */
	void (*on_refused)(struct session *, const char *why, void *arg);
	/* The accepted peer names session ${id} (RESUME_ID_LEN bytes): the
	 * owner's session of that id, held or running, or NULL. */
	struct session *(*find)(const uint8_t *id, void *arg);
	/* The peer of ${sess} proved that it resumes ${held}, which has taken
	 * over the connection: call session_free(${sess}). */
	void (*on_handover)(struct session *sess, struct session *held,
	    void *arg);
};

struct session_params {
	struct mux_config mux;
	uint64_t	keepalive_ms;	/* ping interval; 0: none */
	uint64_t	timeout_ms;	/* silence that kills; 0: never */
	uint64_t	answer_ms;	/* the peer must answer our first ping
					 * (and finish resuming) this soon
					 * (connect_timeout); 0: never */
	uint64_t	resume_ms;	/* hold a lost session this long; 0:
					 * resumption off */
	const uint8_t	*peer_pin;	/* the TLS peer's key (SHA-256, 32
					 * bytes); NULL on a plain link */
};

/*
 * Start a session on connection ${conn} (taken over; freed by session_free)
 * in ${base} with ${params}, reporting to ${h} with ${arg}.  Returns NULL on
 * failure (${conn} is then still the caller's).
 */
struct session *session_new(struct event_base *base, struct conn *conn,
    const struct session_params *params, const struct session_handlers *h,
    void *arg);

/*
 * Resume held session ${sess} (the dialing side) on connection ${conn}
 * (taken over) to a peer whose TLS key is ${pin} (NULL: plain).  The result
 * comes as on_resumed, on_refused, or on_lost again.  Returns 0, or -1 if
 * ${conn} cannot be used for it (its identity is not the session's; it is
 * still the caller's then).
 */
int session_attach(struct session *sess, struct conn *conn,
    const uint8_t *pin);

/* Nonzero while ${sess} is held: no connection, waiting to resume. */
int session_held(const struct session *sess);

/* Nonzero while ${sess} has a connection that is resuming it. */
int session_resuming(const struct session *sess);

/* Nonzero once ${sess} agreed with its peer on resumption (HELLO), as
 * long as it may be resumed. */
int session_resumable(const struct session *sess);

/* The id of resumable ${sess} in hex, into ${buf} of ${len} (at least 33);
 * "-" if it is not resumable. */
void session_id_hex(const struct session *sess, char *buf, size_t len);

/* 1 if the peers of ${a} and ${b} have the same TLS key, 0 if not, -1 if
 * either link is plain (no identity to compare). */
int session_same_peer(const struct session *a, const struct session *b);

/* Ping the peer of ${sess} now, to see whether it is still there:
 * session_heard_since(${sess}, ${t}) is nonzero once a frame arrived from
 * it after ${t} (session_now_us). */
void session_probe(struct session *sess);
int session_heard_since(const struct session *sess, uint64_t t);

/* Nonzero if ${sess} is the resumable session of id ${id}. */
int session_is(const struct session *sess, const uint8_t *id);

/* Channels of ${sess} held while it has no connection (0 if it has). */
uint32_t session_held_channels(const struct session *sess);

/* Free ${sess}: every open stream gets on_stream_close(MUX_CLOSE_SESSION),
 * then the connection is closed.  NULL is ok. */
void session_free(struct session *sess);

/* The engine of ${sess}, for opening streams and stream calls. */
struct mux *session_mux(struct session *sess);

/* The session a stream ${s} belongs to. */
struct session *session_of(struct mux_stream *s);

/* From now on, ping the peer of ${sess} every ${keepalive_ms}, end the
 * session after ${timeout_ms} without a frame from it (0: never), and hold
 * it for ${resume_ms} once lost (0: no more).  Returns 0, or -1 if the
 * timer cannot be set. */
int session_set_liveness(struct session *sess, uint64_t keepalive_ms,
    uint64_t timeout_ms, uint64_t resume_ms);

/* Nonzero once the peer of ${sess} has answered one of our pings. */
int session_answered(const struct session *sess);

/* Nonzero if all ${sess} has queued for the peer is in the socket (or the
 * session has no connection, and nothing more will go). */
int session_flushed(const struct session *sess);

/* Send Go Away ${code} on ${sess}: no new streams either way. */
void session_goaway(struct session *sess, uint32_t code);

/* Microseconds on the monotonic clock. */
uint64_t session_now_us(void);

#endif
