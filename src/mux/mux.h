/*
 * mux: a yamux (version 0) session engine with no I/O.
 *
 * The caller owns the transport.  It feeds bytes read from the link to
 * mux_input(), pulls bytes to write with mux_output(), and is told what
 * happened through callbacks.  The engine owns no sockets, timers or events;
 * it never blocks and never allocates by a length read from the wire.
 * Payload moves between evbuffers by reference, never copied per byte.
 *
 * Streams are flow controlled per stream (the receiver grants window as the
 * application reads, not as data arrives), data frames are scheduled round
 * robin between streams in frames of at most frame_max bytes, and control
 * frames go ahead of queued data.  See docs/PROTOCOL.md.
 *
 * Callbacks run from inside mux_input(), mux_output() and the stream calls;
 * they may call any mux function, including resetting the stream they were
 * called for.  A stream is never freed while the engine's own stack uses it.
 */
#ifndef MXD_MUX_H
#define MXD_MUX_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct mux;
struct mux_stream;

/* Go Away codes (yamux spec). */
#define MUX_GOAWAY_NORMAL	0
#define MUX_GOAWAY_PROTOCOL	1
#define MUX_GOAWAY_INTERNAL	2

/*
 * The mxd extension (docs/PROTOCOL.md section 11): an engine configured
 * resumable offers it with its first ping's opaque value, and speaks it
 * only with a peer whose first frame was the same offer.  It adds
 * acknowledgements, so that a sender keeps what the peer may not have
 * received, and the exchange of per-stream state that resumes the session
 * on a new connection.  Extension messages travel in frames of type 4 with
 * a payload of at most MUX_EXT_MAX bytes; kinds below MUX_EXT_ENGINE are
 * the application's (on_ext, mux_ext_send), the others the engine's.
 */
#define MUX_PING_OFFER	0x6d787231u	/* "mxr1" */
#define MUX_EXT_MAX	65536
#define MUX_EXT_ENGINE	16

/* The window every yamux stream starts with, in each direction. */
#define MUX_INITIAL_WINDOW	(256u * 1024)

/* Why a stream ended, as passed to on_stream_close. */
enum mux_close_reason {
	MUX_CLOSE_RESET = 1,	/* the peer sent RST */
	MUX_CLOSE_SESSION	/* the session ended (mux_free) */
};

struct mux_callbacks {
	/*
	 * The peer opened stream ${s}.  Return 0 to accept it (an ACK goes out
	 * at once; set per-stream state with mux_stream_set_arg), or -1 to
	 * refuse it (RST; the stream is gone when this returns).
	 */
	int (*on_stream_open)(struct mux *, struct mux_stream *s, void *arg);

	/* Stream ${s} has new data to mux_stream_read, or its peer sent FIN. */
	void (*on_stream_readable)(struct mux_stream *s, void *sarg);

	/* Stream ${s}'s send queue drained below its low mark after
	 * mux_stream_write reported it full. */
	void (*on_stream_writable)(struct mux_stream *s, void *sarg);

	/*
	 * Stream ${s} was ended by the peer or the session and is freed when
	 * this returns; ${reason} says why.  Not called for a stream that the
	 * application ended itself (mux_stream_reset, mux_stream_release).
	 */
	void (*on_stream_close)(struct mux_stream *s, void *sarg,
	    enum mux_close_reason reason);

	/* A ping we sent was answered after ${rtt_us} microseconds. */
	void (*on_pong)(struct mux *, uint64_t rtt_us, void *arg);

	/* The peer sent Go Away with ${code}: no new streams on this session. */
	void (*on_goaway)(struct mux *, uint32_t code, void *arg);

	/*
	 * The peer broke the protocol (${why} says how).  A Go Away(1) has been
	 * queued; the session accepts no more input.  Flush and close the link.
	 */
	void (*on_protocol_error)(struct mux *, const char *why, void *arg);

	/* The engine queued bytes for mux_output.  Called for every queued
	 * frame: schedule one mux_output (idempotently), don't call it from
	 * here. */
	void (*want_output)(struct mux *, void *arg);

	/* A SYN from the peer (stream ${id}) was refused with RST by a limit
	 * of the engine (max_streams, max_backlog) or after Go Away. */
	void (*on_stream_refused)(struct mux *, uint32_t id, void *arg);

	/*
	 * Stream ${s} is in pull mode (mux_stream_set_pull), its turn to send
	 * has come and its send queue is empty: mux_stream_write its source's
	 * next bytes now, and they leave in the same mux_output.  Any stream
	 * call on ${s} is allowed here.  Queueing nothing ends pull mode.
	 */
	void (*on_stream_pull)(struct mux_stream *s, void *sarg);

	/*
	 * Resumable engines only.  The peer's first frame on this connection
	 * arrived (before it is processed): ${ext} is 1 if it offered the
	 * extension.  Output and input stay gated (only pings, Go Away and
	 * extension frames) until mux_open_gate or a resumption opens them.
	 */
	void (*on_hello)(struct mux *, int ext, void *arg);

	/*
	 * Extension message ${kind} (< MUX_EXT_ENGINE) with ${len} bytes at
	 * ${p}.  Return 0 to go on, 1 to stop mux_input right after it (the
	 * rest stays in its buffer, for another engine, say), -1 if it is
	 * malformed (Go Away(1), as for any protocol error).
	 */
	int (*on_ext)(struct mux *, unsigned kind, const uint8_t *p,
	    size_t len, void *arg);

	/* The peer's state arrived and was applied: the session runs again
	 * on this connection; ${resent} bytes are queued to be sent again. */
	void (*on_resumed)(struct mux *, uint64_t resent, void *arg);
};

struct mux_config {
	int		dialer;		/* 1: this side dialed (odd ids) */
	uint32_t	window;		/* initial receive window, >= 256 KiB */
	uint32_t	window_max;	/* auto-tuning ceiling per stream */
	uint64_t	window_budget;	/* receive bytes granted beyond the
					 * initial windows, whole session */
	uint32_t	frame_max;	/* largest data frame we send */
	uint32_t	max_streams;	/* concurrent streams */
	uint32_t	max_inflight_opens; /* our SYNs awaiting ACK; more
					 * opens wait for a slot */
	uint32_t	max_backlog;	/* peer SYNs whose ACK is not yet
					 * handed to mux_output */
	uint32_t	send_hiwat;	/* per-stream send queue "full" mark */
	uint32_t	ctrl_hiwat;	/* queued control bytes before input
					 * processing pauses */
	int		resumable;	/* offer the extension; keep sent
					 * bytes until acknowledged */
};

/* Fill ${cfg} with the defaults (documented in docs/PROTOCOL.md). */
void mux_config_default(struct mux_config *cfg, int dialer);

/*
 * Create a session with configuration ${cfg}, callbacks ${cb} (copied) and
 * callback argument ${arg}.  Returns NULL on allocation failure.
 */
struct mux *mux_new(const struct mux_config *cfg,
    const struct mux_callbacks *cb, void *arg);

/*
 * End session ${m}: every stream still open gets on_stream_close with
 * MUX_CLOSE_SESSION, then all memory is freed.  ${m} may be NULL.
 */
void mux_free(struct mux *m);

/*
 * Process bytes the peer sent, consuming them from ${in}.  Stops early, with
 * bytes left in ${in}, while too many control frames wait for mux_output
 * (call again once output drained).  Returns 0, or -1 once the session is
 * dead because of a protocol error (see on_protocol_error).
 */
int mux_input(struct mux *m, struct evbuffer *in);

/*
 * Append frames for the peer to ${out}: all queued control frames, then
 * data frames round robin until about ${budget} bytes were added.  Returns
 * the number of bytes appended, or -1 if out of memory.
 */
int mux_output(struct mux *m, struct evbuffer *out, size_t budget);

/* Nonzero if mux_output has something to send. */
int mux_output_pending(const struct mux *m);

/* Cut data frames of at most ${n} bytes from now on (0 counts as 1): the
 * host shrinks them on a slow link, where one frame is what a small message
 * on another stream may have to wait behind. */
void mux_set_frame_max(struct mux *m, uint32_t n);

/* Tell ${m} the time, in microseconds on a monotonic clock.  Used for the
 * ping round trip and window auto-tuning; call it once per event batch. */
void mux_set_time(struct mux *m, uint64_t now_us);

/* Send a ping (the pong comes back as on_pong).  Returns 0 or -1. */
int mux_ping(struct mux *m);

/* Queue Go Away with ${code}; after it no new streams open either way. */
int mux_goaway(struct mux *m, uint32_t code);

/* The callback argument ${m} was created with. */
void *mux_callback_arg(const struct mux *m);

/* Nonzero once either side sent Go Away or the session died. */
int mux_is_closing(const struct mux *m);

/* The smoothed ping round trip in microseconds, 0 if none measured. */
uint64_t mux_rtt(const struct mux *m);

/*
 * Resumption (resumable engines; see the top).  A new engine starts in
 * hello mode: its first mux_ping is the offer, and on_hello reports what
 * the peer said.  mux_open_gate starts normal operation (a plain peer, or
 * a new session).  When the connection is lost, mux_detach forgets what was
 * on its way and keeps every stream; streams may be written, read, opened
 * and closed meanwhile, with nothing sent.  On a new connection,
 * mux_attach(${hello} 1) starts hello mode again (the dialer), or with 0
 * gates the engine for a peer that offered already (the listener taking
 * over a connection another engine said hello on).  mux_resume_start then
 * sends this side's state; once the peer's has arrived, each side re-sends
 * exactly what the other lacks, on_resumed is called and the gate opens.
 * mux_resume_start returns 0, or -1 if out of memory (the session failed).
 */
void mux_detach(struct mux *m);
void mux_attach(struct mux *m, int hello);
void mux_open_gate(struct mux *m);
int mux_resume_start(struct mux *m);

/* Nonzero once the peer offered the extension (and ${m} did). */
int mux_ext(const struct mux *m);

/* Send extension message ${kind} (< MUX_EXT_ENGINE) of ${len} <=
 * MUX_EXT_MAX bytes at ${p}; even while gated.  Returns 0 or -1. */
int mux_ext_send(struct mux *m, unsigned kind, const void *p, size_t len);

/* Bytes sent and kept on all streams until the peer acknowledges them. */
size_t mux_unacked(const struct mux *m);

/* Bytes written on all streams and not yet handed to mux_output. */
size_t mux_unsent(const struct mux *m);

/* Nonzero if ${m} owes the peer an acknowledgement of bytes received.  It
 * goes out with the next other output; if none comes soon, the owner calls
 * mux_ack_flush to send it alone (so that the peer need not keep bytes
 * for an idle stream). */
int mux_ack_pending(const struct mux *m);
void mux_ack_flush(struct mux *m);

/* Number of open streams. */
uint32_t mux_stream_count(const struct mux *m);

/* Bytes held in all streams: received and not yet read, plus written and
 * not yet handed to mux_output, plus sent and kept until acknowledged. */
size_t mux_queued(const struct mux *m);

/*
 * Open a stream with callback argument ${sarg}.  Data written before the
 * peer's ACK travels right behind the SYN (0-RTT).  Returns NULL, with errno
 * EPIPE after Go Away, EMFILE at max_streams, ENOSPC when the stream ids are
 * used up, or ENOMEM.
 */
struct mux_stream *mux_stream_open(struct mux *m, void *sarg);

/* Set ${s}'s callback argument to ${sarg}. */
void mux_stream_set_arg(struct mux_stream *s, void *sarg);

/* The stream's id on the wire and its session. */
uint32_t mux_stream_id(const struct mux_stream *s);

/* Payload bytes ${s} has received from the peer (*${in}) and sent to it
 * (*${out}) so far. */
void mux_stream_bytes(const struct mux_stream *s, uint64_t *in,
    uint64_t *out);
struct mux *mux_stream_session(const struct mux_stream *s);

/*
 * Queue all bytes of ${src} for sending on ${s} (moved, not copied;
 * only writes under 4 KiB are copied, so that they share chains).
 * Returns 1 if the send queue is now full: stop producing until
 * on_stream_writable.  Returns 0 otherwise, -1 if the stream can no longer
 * send (after mux_stream_shutdown) or on ENOMEM.
 */
int mux_stream_write(struct mux_stream *s, struct evbuffer *src);

/*
 * Pull mode on (${on} nonzero) or off for ${s}.  In pull mode the stream
 * takes its turns in the round robin with an empty queue, and on its turn
 * on_stream_pull asks for its bytes: an application reading a socket reads
 * it only when the bytes can leave at once, so they are still in the CPU's
 * cache when they are framed and written, and wait in the socket rather
 * than in the send queue.  A stream is pulled at most once per mux_output.
 * Without on_stream_pull this does nothing.
 */
void mux_stream_set_pull(struct mux_stream *s, int on);

/* Bytes queued on ${s} and not yet handed to mux_output. */
size_t mux_stream_queued(const struct mux_stream *s);

/* Send FIN after the queued data: this side will write no more. */
void mux_stream_shutdown(struct mux_stream *s);

/*
 * Move up to ${max} received bytes of ${s} to ${dst}, granting the peer
 * window for them.  Returns the number of bytes moved (0 if none are
 * buffered), or -1 on ENOMEM.  After the peer's FIN and once all data was
 * read, mux_stream_eof(s) is true.
 */
int mux_stream_read(struct mux_stream *s, struct evbuffer *dst, size_t max);

/* Received bytes buffered on ${s}. */
size_t mux_stream_readable(const struct mux_stream *s);

/* Nonzero when the peer sent FIN and every byte before it was read. */
int mux_stream_eof(const struct mux_stream *s);

/*
 * Abort ${s}: queued data is dropped and RST is sent.  The stream is gone
 * when this returns and no callback follows for it.
 */
void mux_stream_reset(struct mux_stream *s);

/*
 * Release ${s} after a graceful end: the application has read EOF and called
 * mux_stream_shutdown.  The stream lives on inside the engine until its FIN
 * is sent; no callback follows for it.  If the peer has not sent FIN, or
 * data is left unread, this is mux_stream_reset.
 */
void mux_stream_release(struct mux_stream *s);

#endif
