/*
 * mux: the yamux session engine.  See mux.h for the contract and
 * docs/PROTOCOL.md for the wire format.
 *
 * State lives in struct mux (the session) and struct mux_stream.  Input is
 * parsed frame by frame; a Data frame's payload is moved to its stream as it
 * arrives, so a frame as large as the window never needs to be buffered
 * whole.  Output has two queues: control frames (one evbuffer of ready
 * encoded headers, always sent first) and the ready list, the streams that
 * have data and window, served round robin one frame each.
 *
 * Streams leave the id map the moment they end, but their memory is freed
 * only when the outermost engine call returns (enter/leave), so that a
 * callback may end any stream, even the one it was called for.
 *
 * Resumption (the mxd extension, docs/PROTOCOL.md section 11) adds a third
 * output queue, hctrl: pings, Go Away and extension frames, which go out
 * first and even while the engine is gated, that is, while a connection is
 * being set up and only they may flow.  With a peer that offered the
 * extension, every byte sent stays in its stream's unacked buffer (shared
 * with the output by reference, not copied) until the peer's Window
 * Updates say it was consumed, or its FIN_ACK that all arrived; on a new
 * connection each side sends its state (per stream: bytes received, window
 * left, FIN seen) and each re-sends exactly what the other lacks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "frame.h"
#include "idmap.h"
#include "mux.h"

/* How many of the peer's most recent stream ids are remembered, to tell a
 * reordered SYN (hashicorp/yamux may send them out of order) from reuse. */
#define PEER_ID_WINDOW	1024

/* Stream flags. */
#define S_OUTBOUND	0x0001	/* this side opened it */
#define S_SYN_WAIT	0x0002	/* our SYN waits for an open slot */
#define S_INFLIGHT	0x0004	/* our SYN is out, not yet answered */
#define S_FIN_QUEUED	0x0008	/* FIN goes out after the queued data */
#define S_FIN_SENT	0x0010
#define S_FIN_RCVD	0x0020
#define S_DETACHED	0x0040	/* released by the application */
#define S_DEAD		0x0080	/* out of the session; memory freed soon */
#define S_WANT_WRITE	0x0100	/* mux_stream_write reported "full" */
#define S_READY		0x0200	/* on the ready list */
#define S_PULL		0x0400	/* pull mode: see mux_stream_set_pull */
#define S_PULLING	0x0800	/* inside on_stream_pull */
#define S_FIN_ACKED	0x1000	/* the peer received all of it and FIN */
#define S_LISTED	0x2000	/* named in the peer's state (resuming) */
#define S_RESET		0x4000	/* reset while gated: RST when resumed */
#define S_ACK_DUE	0x8000	/* on the list of streams to acknowledge */

/* Engine-level extension messages, and the size of one state entry: id,
 * flags, bytes received, bytes consumed and credited, window left. */
#define EXT_STATE	MUX_EXT_ENGINE
#define EXT_STATE_END	(MUX_EXT_ENGINE + 1)
#define EXT_ACK		(MUX_EXT_ENGINE + 2)
#define STATE_ENTRY	28
#define ACK_ENTRY	12		/* id, bytes received */
#define STATE_FIN	0x1		/* entry flag: the stream's FIN arrived */

struct mux_stream {
	uint32_t	id;		/* first: the idmap key */
	uint16_t	flags;
	uint16_t	pulled;		/* the mux_output pass of its last pull */
	uint32_t	send_window;	/* bytes we may still send */
	uint32_t	recv_window;	/* our window's current size */
	uint32_t	recv_avail;	/* bytes the peer may still send */
	uint32_t	recv_read;	/* read, not yet granted back */
	uint64_t	grant_time;	/* when window was last granted */
	uint64_t	received;	/* payload bytes received */
	uint64_t	granted;	/* of them, consumed and credited (ext) */
	uint64_t	sent;		/* payload bytes sent */
	uint64_t	acked;		/* of them, consumed by the peer (ext) */
	struct mux	*m;
	void		*arg;
	struct evbuffer	*sendq;		/* allocated while non-empty */
	struct evbuffer	*recvq;		/* allocated while non-empty */
	struct evbuffer	*unacked;	/* the last bytes sent, kept for the
					 * peer (ext); allocated while non-empty */
	/* On the ready list, the open wait list or the free list. */
	struct mux_stream *next, *prev;
	struct mux_stream *anext, *aprev;	/* every live stream */
};

/* A doubly linked queue of streams. */
struct squeue {
	struct mux_stream *head, *tail;
};

struct mux {
	struct mux_config cfg;
	struct mux_callbacks cb;
	void		*arg;

	struct idmap	streams;	/* live streams by id */
	struct mux_stream *all;		/* ... and in a list */
	uint64_t	next_id;	/* our next stream id */
	uint32_t	inflight;	/* our SYNs awaiting an answer */
	uint32_t	backlog;	/* peer SYNs acked since last output */
	uint64_t	window_used;	/* receive window beyond cfg.window */
	size_t		queued;		/* bytes in every sendq, recvq and
					 * unacked */
	size_t		unacked;	/* bytes in every unacked */
	size_t		unsent;		/* bytes in every sendq */
	struct squeue	waiting;	/* opens waiting for an inflight slot */
	struct squeue	ready;		/* streams with a frame to send */
	struct mux_stream *zombies;	/* freed on leave() */
	struct evbuffer	*ctrl;		/* encoded stream control frames */
	struct evbuffer	*hctrl;		/* pings, Go Away, extension frames */
	struct evbuffer	*state_out;	/* our state, while resuming */
	struct evbuffer	*tmp;		/* payload on its way to out, unacked */
	int		depth;		/* engine calls on the stack */
	uint16_t	pass;		/* mux_output calls (wraps) */

	/* The Data frame whose payload is arriving. */
	uint32_t	rx_left;	/* payload bytes still to come */
	uint32_t	rx_id;
	uint16_t	rx_flags;
	struct mux_stream *rx_stream;	/* NULL: discard the payload */

	/* The extension message whose payload is arriving. */
	struct evbuffer	*rx_ext;
	uint32_t	rx_ext_left;
	uint16_t	rx_ext_kind;

	/* The peer's stream ids: highest index seen, and a bitmap of the
	 * PEER_ID_WINDOW indexes up to it (index = (id + 1) / 2). */
	uint32_t	peer_hi;
	uint64_t	peer_seen[PEER_ID_WINDOW / 64];
	uint32_t	peer_max_id;	/* the highest of them */

	/* Resumption: entries of the peer's state applied so far, our next
	 * id when our state was written, bytes queued to be sent again. */
	uint32_t	resume_entries;
	uint64_t	resume_next_id;
	uint64_t	resent;

	/* Streams that received payload since the last ACK message. */
	uint32_t	*ack_ids;
	uint32_t	nack, ack_cap;
	int		ack_force;	/* send it even with nothing else */

	uint64_t	now;
	uint64_t	srtt;
	uint64_t	ping_sent;
	uint32_t	ping_id;
	uint32_t	goaway_code;	/* ours, once sent */
	unsigned	ping_out:1, goaway_sent:1, goaway_rcvd:1, dead:1;
	unsigned	ext:1;		/* both offered the extension */
	unsigned	gated:1;	/* only hctrl and state_out flow */
	unsigned	hello_wait:1;	/* the peer's first frame is to come */
	unsigned	offer_pending:1; /* the next ping is the offer */
	unsigned	resuming:1;	/* our state is out; the peer's comes */
	unsigned	input_stop:1;	/* on_ext asked mux_input to return */
};

static void stream_drop(struct mux_stream *, int, enum mux_close_reason);
static void input_ext(struct mux *);
static int resume_state(struct mux *, const uint8_t *, size_t);
static int resume_state_end(struct mux *, const uint8_t *, size_t);
static int acks_apply(struct mux *, const uint8_t *, size_t);
static int acks_emit(struct mux *, struct evbuffer *);
static void acks_clear(struct mux *);

/* Fill ${cfg} with defaults for the side that ${dialer} says. */
void
mux_config_default(struct mux_config *cfg, int dialer)
{

	cfg->dialer = dialer;
	cfg->window = MUX_INITIAL_WINDOW;
	cfg->window_max = 16u << 20;
	cfg->window_budget = 64u << 20;
	cfg->frame_max = 256u << 10;
	cfg->max_streams = 65536;
	cfg->max_inflight_opens = 256;
	cfg->max_backlog = 1024;
	/* Well above a socket read (64 KiB), so that a bulk sender does not
	 * pause and resume its socket on every read. */
	cfg->send_hiwat = 256u << 10;
	cfg->ctrl_hiwat = 64u << 10;
	cfg->resumable = 0;
}

/* Queue operations on ${q} for stream ${s}. */
static void
squeue_push(struct squeue *q, struct mux_stream *s)
{

	s->next = NULL;
	s->prev = q->tail;
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
}

static void
squeue_remove(struct squeue *q, struct mux_stream *s)
{

	if (s->prev)
		s->prev->next = s->next;
	else
		q->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		q->tail = s->prev;
	s->next = s->prev = NULL;
}

/* Enter an engine call on ${m}. */
static void
enter(struct mux *m)
{

	m->depth++;
}

/* Leave an engine call on ${m}; the outermost one frees ended streams. */
static void
leave(struct mux *m)
{
	struct mux_stream *s;

	if (--m->depth > 0)
		return;
	while ((s = m->zombies) != NULL) {
		m->zombies = s->next;
		free(s);
	}
}

/*
 * Tell the application that ${m} has output.  Every time: a flag meaning
 * "already told" went stale whenever the output vanished before the
 * application pulled it (a stream reset off the ready list), and the link
 * went silent.  The application's handler only has to be idempotent.
 */
static void
signal_output(struct mux *m)
{

	if (m->cb.want_output != NULL)
		m->cb.want_output(m, m->arg);
}

/* Queue ${m}'s Go Away in ${q}.  Returns 0 or -1. */
static int
queue_goaway(struct mux *m, struct evbuffer *q)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h = { FRAME_VERSION, FRAME_GO_AWAY, 0, 0,
	    m->goaway_code };

	frame_encode(buf, &h);
	if (evbuffer_add(q, buf, sizeof(buf)))
		return (-1);
	signal_output(m);
	return (0);
}

/* Mark ${m} dead with Go Away ${code}; tell the application ${why}. */
static void
session_fail(struct mux *m, uint32_t code, const char *why)
{

	if (m->dead)
		return;
	m->dead = 1;
	m->goaway_sent = 1;
	m->goaway_code = code;
	m->rx_left = m->rx_ext_left = 0;
	/* Last, after what was queued; if this fails too, the owner closes
	 * the link all the same. */
	(void)queue_goaway(m, m->gated ? m->hctrl : m->ctrl);
	if (m->cb.on_protocol_error)
		m->cb.on_protocol_error(m, why, m->arg);
}

/*
 * Queue a control frame of ${type}, ${flags}, stream ${id} and ${length} on
 * ${m}: a stream's in ctrl, a session's (ping, Go Away, extension) in
 * hctrl, followed by the ${plen} bytes at ${payload}.  Returns 0, or -1
 * (the session failed) if out of memory.
 */
static int
queue_frame(struct mux *m, uint8_t type, uint16_t flags, uint32_t id,
    uint32_t length, const void *payload, size_t plen)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h = { FRAME_VERSION, type, flags, id, length };
	struct evbuffer *q = (type == FRAME_DATA ||
	    type == FRAME_WINDOW_UPDATE) ? m->ctrl : m->hctrl;

	frame_encode(buf, &h);
	if (evbuffer_add(q, buf, sizeof(buf)) ||
	    (plen > 0 && evbuffer_add(q, payload, plen))) {
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
		return (-1);
	}
	signal_output(m);
	return (0);
}

/* Queue a control frame without payload: see queue_frame. */
static int
queue_ctrl(struct mux *m, uint8_t type, uint16_t flags, uint32_t id,
    uint32_t length)
{

	return (queue_frame(m, type, flags, id, length, NULL, 0));
}

/* Bytes ${s} holds: queued to send, kept for the peer, received unread. */
static size_t
stream_held(const struct mux_stream *s)
{

	return ((s->sendq ? evbuffer_get_length(s->sendq) : 0) +
	    (s->unacked ? evbuffer_get_length(s->unacked) : 0) +
	    (s->recvq ? evbuffer_get_length(s->recvq) : 0));
}

/* Forget the first ${n} bytes ${s} kept for the peer (it has them). */
static void
stream_forget(struct mux_stream *s, size_t n)
{

	if (n == 0)
		return;
	evbuffer_drain(s->unacked, n);
	s->m->queued -= n;
	s->m->unacked -= n;
	if (evbuffer_get_length(s->unacked) == 0) {
		evbuffer_free(s->unacked);
		s->unacked = NULL;
	}
}

/* The stream offset of the first byte ${s} keeps for the peer. */
static uint64_t
stream_kept_from(const struct mux_stream *s)
{

	return (s->sent - (s->unacked ? evbuffer_get_length(s->unacked) : 0));
}

/* Nonzero if ${s}, released by the application, has nothing left to do:
 * FIN sent and received, and (ext) the peer has everything we sent. */
static int
stream_finished(const struct mux_stream *s)
{

	return ((s->flags & (S_FIN_SENT | S_FIN_RCVD)) ==
	    (S_FIN_SENT | S_FIN_RCVD) &&
	    (!s->m->ext || (s->flags & S_FIN_ACKED)));
}

/* Nonzero if ${s} is in pull mode with nothing queued: its next bytes
 * come from on_stream_pull. */
static int
stream_pullable(const struct mux_stream *s)
{

	return (s->sendq == NULL && (s->flags & (S_PULL | S_FIN_QUEUED)) ==
	    S_PULL);
}

/* Nonzero if ${s} has a frame it may send now. */
static int
stream_sendable(const struct mux_stream *s)
{

	if (s->flags & (S_SYN_WAIT | S_DEAD | S_FIN_SENT | S_RESET))
		return (0);
	if (s->send_window > 0 && (s->sendq != NULL || stream_pullable(s)))
		return (1);
	return ((s->flags & S_FIN_QUEUED) && s->sendq == NULL);
}

/* Put ${s} on the ready list if it has something to send (not while it
 * is being pulled: mux_output deals with it after the pull). */
static void
stream_schedule(struct mux_stream *s)
{

	if ((s->flags & (S_READY | S_PULLING)) || !stream_sendable(s))
		return;
	s->flags |= S_READY;
	squeue_push(&s->m->ready, s);
	signal_output(s->m);
}

/* Send ${s}'s SYN: a Window Update carrying the window beyond 256 KiB. */
static void
stream_send_syn(struct mux_stream *s)
{
	struct mux *m = s->m;

	if (queue_ctrl(m, FRAME_WINDOW_UPDATE, FRAME_SYN, s->id,
	    s->recv_window - MUX_INITIAL_WINDOW))
		return;
	s->flags = (s->flags & ~S_SYN_WAIT) | S_INFLIGHT;
	m->inflight++;
	stream_schedule(s);
}

/* Our SYN for ${s} was answered or abandoned: free its slot for a waiter. */
static void
stream_answered(struct mux_stream *s)
{
	struct mux *m = s->m;
	struct mux_stream *w;

	s->flags &= ~S_INFLIGHT;
	m->inflight--;
	/* After Go Away, a protocol error or during mux_free, no new SYN. */
	while (!mux_is_closing(m) &&
	    m->inflight < m->cfg.max_inflight_opens &&
	    (w = m->waiting.head) != NULL) {
		squeue_remove(&m->waiting, w);
		stream_send_syn(w);
	}
}

/* Drop every byte ${s} holds, and its buffers. */
static void
stream_free_queues(struct mux_stream *s)
{
	struct mux *m = s->m;

	m->queued -= stream_held(s);
	m->unacked -= s->unacked ? evbuffer_get_length(s->unacked) : 0;
	m->unsent -= mux_stream_queued(s);
	if (s->sendq != NULL)		/* evbuffer_free(NULL) crashes */
		evbuffer_free(s->sendq);
	if (s->recvq != NULL)
		evbuffer_free(s->recvq);
	if (s->unacked != NULL)
		evbuffer_free(s->unacked);
	s->sendq = s->recvq = s->unacked = NULL;
}

/*
 * End stream ${s}: take it out of the session, send RST if ${rst} (and the
 * peer knows the stream), and unless the application released it, tell it
 * ${reason} if ${reason} is nonzero.  Memory is freed on leave().
 */
static void
stream_drop(struct mux_stream *s, int rst, enum mux_close_reason reason)
{
	struct mux *m = s->m;

	if (s->flags & S_DEAD)
		return;
	s->flags |= S_DEAD;
	idmap_del(&m->streams, s->id);
	if (s->flags & S_READY)
		squeue_remove(&m->ready, s);
	if (s->flags & S_SYN_WAIT)
		squeue_remove(&m->waiting, s);
	else if (rst)
		queue_ctrl(m, FRAME_WINDOW_UPDATE, FRAME_RST, s->id, 0);
	if (s->flags & S_INFLIGHT)
		stream_answered(s);
	if (m->rx_stream == s)
		m->rx_stream = NULL;
	m->window_used -= s->recv_window - m->cfg.window;
	stream_free_queues(s);
	if (s->aprev != NULL)
		s->aprev->anext = s->anext;
	else
		m->all = s->anext;
	if (s->anext != NULL)
		s->anext->aprev = s->aprev;
	if (reason && !(s->flags & S_DETACHED) && m->cb.on_stream_close)
		m->cb.on_stream_close(s, s->arg, reason);
	s->next = m->zombies;
	m->zombies = s;
}

/* Allocate a stream with id ${id} on ${m} and add it to the id map. */
static struct mux_stream *
stream_new(struct mux *m, uint32_t id, uint16_t flags)
{
	struct mux_stream *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	s->id = id;
	s->flags = flags;
	s->m = m;
	s->send_window = MUX_INITIAL_WINDOW;
	s->recv_window = s->recv_avail = m->cfg.window;
	s->grant_time = m->now;
	if (idmap_put(&m->streams, s)) {
		free(s);
		return (NULL);
	}
	if ((s->anext = m->all) != NULL)
		m->all->aprev = s;
	m->all = s;
	return (s);
}

/*
 * Record peer stream id ${id} as used.  Returns 0 if it is new, -1 if it was
 * used before (or is too old to tell).
 */
static int
peer_id_claim(struct mux *m, uint32_t id)
{
	uint32_t k = (uint32_t)(((uint64_t)id + 1) / 2), j;
	uint64_t *bits = m->peer_seen;

	if (k > m->peer_hi) {
		if (k - m->peer_hi >= PEER_ID_WINDOW)
			memset(bits, 0, sizeof(m->peer_seen));
		else
			for (j = m->peer_hi + 1; j != k; j++)
				bits[j % PEER_ID_WINDOW / 64] &=
				    ~(1ull << (j % 64));
		m->peer_hi = k;
	} else if (m->peer_hi - k >= PEER_ID_WINDOW ||
	    (bits[k % PEER_ID_WINDOW / 64] & (1ull << (k % 64)))) {
		return (-1);
	}
	bits[k % PEER_ID_WINDOW / 64] |= 1ull << (k % 64);
	if (id > m->peer_max_id)
		m->peer_max_id = id;
	return (0);
}

/* Nonzero if stream id ${id} was ever opened on ${m}, by either side. */
static int
id_was_used(const struct mux *m, uint32_t id)
{

	if ((id & 1) == (m->cfg.dialer ? 1u : 0u))
		return (id < m->next_id);
	return ((((uint64_t)id + 1) / 2) <= m->peer_hi);
}

/*
 * The peer sent SYN for ${id}.  Returns the new stream, or NULL if the
 * stream was refused (RST queued) or the session failed.
 */
static struct mux_stream *
stream_accept(struct mux *m, uint32_t id)
{
	struct mux_stream *s;

	if ((id & 1) == (m->cfg.dialer ? 1u : 0u)) {
		session_fail(m, MUX_GOAWAY_PROTOCOL, "SYN with our id parity");
		return (NULL);
	}
	if (peer_id_claim(m, id)) {
		session_fail(m, MUX_GOAWAY_PROTOCOL, "SYN for a used stream id");
		return (NULL);
	}
	/* After Go Away, sent or received, no new streams (PROTOCOL.md 7). */
	if (m->goaway_sent || m->goaway_rcvd ||
	    m->streams.count >= m->cfg.max_streams ||
	    m->backlog >= m->cfg.max_backlog ||
	    (s = stream_new(m, id, 0)) == NULL) {
		queue_ctrl(m, FRAME_WINDOW_UPDATE, FRAME_RST, id, 0);
		if (m->cb.on_stream_refused != NULL)
			m->cb.on_stream_refused(m, id, m->arg);
		return (NULL);
	}
	if (m->cb.on_stream_open == NULL ||
	    m->cb.on_stream_open(m, s, m->arg) != 0) {
		stream_drop(s, 1, 0);
		return (NULL);
	}
	if (s->flags & S_DEAD)		/* reset from inside the callback */
		return (NULL);
	m->backlog++;
	if (queue_ctrl(m, FRAME_WINDOW_UPDATE, FRAME_ACK, id,
	    s->recv_window - MUX_INITIAL_WINDOW))
		return (NULL);
	return (s);
}

/* Tell the application that ${s} has data or EOF to read. */
static void
stream_notify_readable(struct mux_stream *s)
{

	if (!(s->flags & (S_DETACHED | S_DEAD)) && s->m->cb.on_stream_readable)
		s->m->cb.on_stream_readable(s, s->arg);
}

/* Apply the end-of-frame flags ${flags} (FIN, RST) to stream ${s}. */
static void
stream_end_flags(struct mux_stream *s, uint16_t flags)
{

	if (s == NULL || (s->flags & S_DEAD))
		return;
	if (flags & FRAME_RST) {
		stream_drop(s, 0, MUX_CLOSE_RESET);
		return;
	}
	if ((flags & FRAME_FIN) && !(s->flags & S_FIN_RCVD)) {
		s->flags |= S_FIN_RCVD;
		/* Everything arrived: the sender may forget it. */
		if (s->m->ext && queue_ctrl(s->m, FRAME_WINDOW_UPDATE,
		    FRAME_FIN_ACK, s->id, 0))
			return;
		stream_notify_readable(s);
	}
}

/* Add window ${delta} to ${s}'s send window.  Returns 0, or -1 if the
 * session failed because the window overflowed. */
static int
stream_add_send_window(struct mux_stream *s, uint32_t delta)
{

	if (delta > UINT32_MAX - s->send_window) {
		session_fail(s->m, MUX_GOAWAY_PROTOCOL,
		    "window update overflows 32 bits");
		return (-1);
	}
	s->send_window += delta;
	stream_schedule(s);
	return (0);
}

/*
 * Apply what Window Update ${h} for ${s} acknowledges (ext): its delta is
 * bytes consumed, unless it answers an open or is flagged GROW; FIN_ACK
 * says everything arrived.  The bytes kept for the peer up to there go.
 * Returns 0, or -1 if the session failed: the peer acknowledged bytes
 * never sent.
 */
static int
stream_acknowledge(struct mux_stream *s, const struct frame_hdr *h)
{
	uint64_t from = stream_kept_from(s);

	if (h->flags & FRAME_FIN_ACK) {
		if (!(s->flags & S_FIN_SENT))
			goto bad;
		s->flags |= S_FIN_ACKED;
		s->acked = s->sent;
	} else if (!(h->flags & (FRAME_SYN | FRAME_ACK | FRAME_GROW))) {
		if (h->length > s->sent - s->acked)
			goto bad;
		s->acked += h->length;
	}
	if (s->acked > from)
		stream_forget(s, (size_t)(s->acked - from));
	return (0);

bad:
	session_fail(s->m, MUX_GOAWAY_PROTOCOL,
	    "window update acknowledges data never sent");
	return (-1);
}

/* Handle a Data or Window Update header ${h} for a stream on ${m}. */
static void
input_stream_frame(struct mux *m, const struct frame_hdr *h)
{
	struct mux_stream *s;

	if (m->gated) {
		session_fail(m, MUX_GOAWAY_PROTOCOL,
		    "stream frame before the session was set up");
		return;
	}
	if (h->stream_id == 0) {
		session_fail(m, MUX_GOAWAY_PROTOCOL, "stream frame on stream 0");
		return;
	}
	s = idmap_get(&m->streams, h->stream_id);
	if (h->flags & FRAME_SYN) {
		if (s != NULL) {
			session_fail(m, MUX_GOAWAY_PROTOCOL,
			    "SYN for a live stream");
			return;
		}
		s = stream_accept(m, h->stream_id);
	} else if ((s == NULL && !id_was_used(m, h->stream_id)) ||
	    (s != NULL && (s->flags & S_SYN_WAIT))) {
		/* (A stream whose SYN still waits is unknown to the peer.) */
		session_fail(m, MUX_GOAWAY_PROTOCOL,
		    "frame for a stream never opened");
		return;
	}
	if (m->dead)
		return;

	/* s == NULL: a stream already ended here; skip what comes for it. */
	if (s != NULL && (h->flags & FRAME_ACK) && (s->flags & S_INFLIGHT))
		stream_answered(s);

	if (h->type == FRAME_WINDOW_UPDATE) {
		if (s != NULL && ((m->ext && stream_acknowledge(s, h)) ||
		    stream_add_send_window(s, h->length)))
			return;
		stream_end_flags(s, h->flags);
		/* A stream released after its FIN waited for this. */
		if (s != NULL && (s->flags & S_DETACHED) && stream_finished(s))
			stream_drop(s, 0, 0);
		return;
	}

	/* Data: the payload follows; FIN and RST apply after it. */
	if (s != NULL) {
		if (s->flags & S_FIN_RCVD) {
			session_fail(m, MUX_GOAWAY_PROTOCOL, "data after FIN");
			return;
		}
		if (h->length > s->recv_avail) {
			session_fail(m, MUX_GOAWAY_PROTOCOL,
			    "data beyond the granted window");
			return;
		}
		s->recv_avail -= h->length;
	}
	m->rx_stream = s;
	m->rx_id = h->stream_id;
	m->rx_flags = h->flags;
	m->rx_left = h->length;
	if (h->length == 0)
		stream_end_flags(s, h->flags);
}

/* Handle a Ping header ${h} on ${m}. */
static void
input_ping(struct mux *m, const struct frame_hdr *h)
{
	uint64_t rtt;

	if (h->flags & FRAME_SYN) {
		queue_ctrl(m, FRAME_PING, FRAME_ACK, 0, h->length);
	} else if ((h->flags & FRAME_ACK) && m->ping_out &&
	    h->length == m->ping_id) {
		m->ping_out = 0;
		rtt = m->now - m->ping_sent;
		m->srtt = m->srtt ? (m->srtt * 7 + rtt) / 8 : rtt;
		if (m->cb.on_pong)
			m->cb.on_pong(m, rtt, m->arg);
	}
}

/* Handle the frame header ${h} on ${m}. */
static void
input_frame(struct mux *m, const struct frame_hdr *h)
{

	/* The peer's first frame says whether it offers the extension. */
	if (m->hello_wait) {
		m->hello_wait = 0;
		m->ext = h->type == FRAME_PING && h->flags == FRAME_SYN &&
		    h->stream_id == 0 && h->length == MUX_PING_OFFER;
		if (m->cb.on_hello != NULL)
			m->cb.on_hello(m, m->ext, m->arg);
		if (m->dead)
			return;
	}
	if (h->version != FRAME_VERSION) {
		session_fail(m, MUX_GOAWAY_PROTOCOL, "unknown protocol version");
		return;
	}
	switch (h->type) {
	case FRAME_DATA:
	case FRAME_WINDOW_UPDATE:
		input_stream_frame(m, h);
		break;
	case FRAME_PING:
	case FRAME_GO_AWAY:
		if (h->stream_id != 0) {
			session_fail(m, MUX_GOAWAY_PROTOCOL,
			    "session frame on a stream");
			break;
		}
		if (h->type == FRAME_PING) {
			input_ping(m, h);
		} else if (!m->goaway_rcvd) {
			m->goaway_rcvd = 1;
			if (m->cb.on_goaway)
				m->cb.on_goaway(m, h->length, m->arg);
		}
		break;
	case FRAME_EXT:
		/* A plain peer never sees one; from it, one is unknown. */
		if (!m->ext) {
			session_fail(m, MUX_GOAWAY_PROTOCOL,
			    "unknown frame type");
		} else if (h->stream_id != 0 || h->length > MUX_EXT_MAX) {
			session_fail(m, MUX_GOAWAY_PROTOCOL,
			    "malformed extension frame");
		} else {
			m->rx_ext_kind = h->flags;
			m->rx_ext_left = h->length;
			if (h->length == 0)
				input_ext(m);
		}
		break;
	default:
		session_fail(m, MUX_GOAWAY_PROTOCOL, "unknown frame type");
	}
}

/*
 * The extension message in m->rx_ext is complete: the engine's own state
 * messages are applied here, the rest go to on_ext.
 */
static void
input_ext(struct mux *m)
{
	size_t len = evbuffer_get_length(m->rx_ext);
	const uint8_t *p = len ? evbuffer_pullup(m->rx_ext, -1) : NULL;
	unsigned kind = m->rx_ext_kind;
	int rc;

	if (len && p == NULL) {
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
		return;
	}
	if (kind == EXT_STATE)
		rc = resume_state(m, p, len);
	else if (kind == EXT_STATE_END)
		rc = resume_state_end(m, p, len);
	else if (kind == EXT_ACK)
		rc = acks_apply(m, p, len);
	else if (kind >= MUX_EXT_ENGINE || m->cb.on_ext == NULL)
		rc = -1;
	else if ((rc = m->cb.on_ext(m, kind, p, len, m->arg)) == 1)
		m->input_stop = 1;
	evbuffer_drain(m->rx_ext, len);
	if (rc < 0)
		session_fail(m, MUX_GOAWAY_PROTOCOL,
		    "malformed extension message");
}

/* Move up to the rest of the current extension payload from ${in} to
 * m->rx_ext.  Returns the number of bytes consumed. */
static size_t
input_ext_payload(struct mux *m, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);

	if (n > m->rx_ext_left)
		n = m->rx_ext_left;
	if (n == 0)
		return (0);
	if (evbuffer_remove_buffer(in, m->rx_ext, n) != (int)n) {
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
		return (0);
	}
	m->rx_ext_left -= (uint32_t)n;
	if (m->rx_ext_left == 0)
		input_ext(m);
	return (n);
}

/* Put ${s} on the list of streams whose bytes received the next ACK
 * message reports (on failure to grow it, a later one will). */
static void
ack_due(struct mux_stream *s)
{
	struct mux *m = s->m;
	uint32_t *p, cap;

	if (m->nack == m->ack_cap) {
		cap = m->ack_cap ? m->ack_cap * 2 : 64;
		if ((p = realloc(m->ack_ids, cap * sizeof(*p))) == NULL)
			return;
		m->ack_ids = p;
		m->ack_cap = cap;
	}
	m->ack_ids[m->nack++] = s->id;
	s->flags |= S_ACK_DUE;
}

/* Move up to the rest of the current Data payload from ${in} to its stream
 * on ${m}.  Returns the number of bytes consumed. */
static size_t
input_payload(struct mux *m, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);
	struct mux_stream *s = m->rx_stream;

	if (n > m->rx_left)
		n = m->rx_left;
	if (n == 0)
		return (0);
	if (s == NULL) {
		evbuffer_drain(in, n);
	} else {
		if ((s->recvq == NULL && (s->recvq = evbuffer_new()) == NULL) ||
		    evbuffer_remove_buffer(in, s->recvq, n) != (int)n) {
			session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
			return (0);
		}
		m->queued += n;
		s->received += n;
		if (m->ext && !(s->flags & S_ACK_DUE))
			ack_due(s);
	}
	m->rx_left -= (uint32_t)n;
	if (s != NULL)
		stream_notify_readable(s);
	if (m->rx_left == 0 && !m->dead)
		stream_end_flags(m->rx_stream, m->rx_flags);
	return (n);
}

/* Process the bytes in ${in} on ${m}. */
int
mux_input(struct mux *m, struct evbuffer *in)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h;

	enter(m);
	m->input_stop = 0;
	while (!m->dead && !m->input_stop) {
		if (m->rx_left > 0) {
			if (input_payload(m, in) == 0)
				break;
			continue;
		}
		if (m->rx_ext_left > 0) {
			if (input_ext_payload(m, in) == 0)
				break;
			continue;
		}
		/* Replies wait in ctrl: stop reading until they are sent. */
		if (evbuffer_get_length(m->ctrl) +
		    evbuffer_get_length(m->hctrl) >= m->cfg.ctrl_hiwat)
			break;
		if (evbuffer_get_length(in) < sizeof(buf) ||
		    evbuffer_remove(in, buf, sizeof(buf)) != sizeof(buf))
			break;
		frame_decode(buf, &h);
		input_frame(m, &h);
	}
	if (m->dead)
		evbuffer_drain(in, evbuffer_get_length(in));
	leave(m);
	return (m->dead ? -1 : 0);
}

/*
 * How much of ${q} a frame of at most ${n} bytes should take: a partial
 * chain is copied (evbuffer_remove_buffer moves whole chains only), so the
 * frame ends at a chain boundary if one lies in its second half.
 */
static uint32_t
frame_cut(struct evbuffer *q, uint32_t n)
{
	struct evbuffer_iovec v[8];
	size_t whole = 0;
	int i, nv;

	nv = evbuffer_peek(q, n, NULL, v, 8);
	for (i = 0; i < nv && i < 8 && whole + v[i].iov_len <= n; i++)
		whole += v[i].iov_len;
	return (whole > 0 && whole >= n / 2 ? (uint32_t)whole : n);
}

/*
 * Append one Data frame of ready stream ${s} to ${out}: as much as window,
 * queue and frame_max allow, with FIN if it empties a shut down stream.
 * Returns 0, or -1 if out of memory.
 */
static int
stream_emit(struct mux_stream *s, struct evbuffer *out)
{
	struct mux *m = s->m;
	size_t queued = s->sendq ? evbuffer_get_length(s->sendq) : 0;
	uint32_t n = m->cfg.frame_max;
	struct frame_hdr h = { FRAME_VERSION, FRAME_DATA, 0, s->id, 0 };
	uint8_t buf[FRAME_HDR_LEN];

	if (n > s->send_window)
		n = s->send_window;
	if (n >= queued)
		n = (uint32_t)queued;
	else
		n = frame_cut(s->sendq, n);
	/* FIN goes alone, after the last data: hashicorp/yamux (2019) applies
	 * FIN before the payload of its frame and may drop that payload. */
	if (queued == 0 && (s->flags & S_FIN_QUEUED))
		h.flags = FRAME_FIN;
	h.length = n;
	frame_encode(buf, &h);
	if (evbuffer_add(out, buf, sizeof(buf)))
		return (-1);
	if (n && m->ext) {
		/* The payload goes out by reference and stays in unacked
		 * until the peer acknowledges it. */
		if (evbuffer_remove_buffer(s->sendq, m->tmp, n) != (int)n ||
		    evbuffer_add_buffer_reference(out, m->tmp) ||
		    (s->unacked == NULL &&
		    (s->unacked = evbuffer_new()) == NULL) ||
		    evbuffer_add_buffer(s->unacked, m->tmp)) {
			evbuffer_drain(m->tmp, evbuffer_get_length(m->tmp));
			return (-1);
		}
		s->sent += n;
		m->unacked += n;
	} else if (n) {
		if (evbuffer_remove_buffer(s->sendq, out, n) != (int)n)
			return (-1);
		s->sent += n;
		m->queued -= n;
	}
	m->unsent -= n;
	s->send_window -= n;
	if (queued == n && s->sendq != NULL) {
		evbuffer_free(s->sendq);
		s->sendq = NULL;
	}
	if (h.flags & FRAME_FIN) {
		s->flags = (s->flags & ~S_FIN_QUEUED) | S_FIN_SENT;
		if ((s->flags & S_DETACHED) && stream_finished(s)) {
			stream_drop(s, 0, 0);
			return (0);
		}
	}
	if ((s->flags & S_WANT_WRITE) &&
	    queued - n <= m->cfg.send_hiwat / 2) {
		s->flags &= ~S_WANT_WRITE;
		if (!(s->flags & S_DETACHED) && m->cb.on_stream_writable)
			m->cb.on_stream_writable(s, s->arg);
	}
	return (0);
}

/*
 * Ask the application for ${s}'s next bytes (pull mode, queue empty): they
 * go out in this very pass.  Returns 1 if ${s} now has a frame to send.
 */
static int
stream_pull(struct mux_stream *s)
{

	s->flags |= S_PULLING;
	s->m->cb.on_stream_pull(s, s->arg);
	s->flags &= ~S_PULLING;
	if (s->flags & S_DEAD)
		return (0);
	/* A pull that gave nothing ends pull mode: the stream would
	 * otherwise come round again and again with nothing. */
	if (stream_pullable(s))
		s->flags &= ~S_PULL;
	return (stream_sendable(s));
}

/* Append control frames, then round-robin data frames, to ${out}. */
int
mux_output(struct mux *m, struct evbuffer *out, size_t budget)
{
	size_t start = evbuffer_get_length(out);
	struct mux_stream *s;
	int rc = 0, pull;

	enter(m);
	m->backlog = 0;
	m->pass++;
	if (evbuffer_add_buffer(out, m->hctrl) ||
	    evbuffer_add_buffer(out, m->state_out))
		rc = -1;
	if (m->gated)
		goto done;
	if (evbuffer_add_buffer(out, m->ctrl))
		rc = -1;
	while (rc == 0 && !m->dead && (s = m->ready.head) != NULL &&
	    evbuffer_get_length(out) - start < budget) {
		/* A callback may have queued control frames (a SYN for a
		 * stream now ready): they go first, as always. */
		if ((evbuffer_get_length(m->hctrl) > 0 &&
		    evbuffer_add_buffer(out, m->hctrl)) ||
		    (evbuffer_get_length(m->ctrl) > 0 &&
		    evbuffer_add_buffer(out, m->ctrl))) {
			rc = -1;
			break;
		}
		pull = stream_pullable(s);
		/* One pull per stream and call: a source that always has
		 * more must not keep the call going (the budget may be
		 * unlimited).  Back at the head, every stream had its turn. */
		if (pull && s->pulled == m->pass)
			break;
		squeue_remove(&m->ready, s);
		s->flags &= ~S_READY;
		if (pull) {
			s->pulled = m->pass;
			if (!stream_pull(s))
				continue;
		}
		if (stream_emit(s, out))
			rc = -1;
		else
			stream_schedule(s);
	}
	/* ... and those queued by the last callback, a pull's RST say. */
	if (rc == 0 && (evbuffer_add_buffer(out, m->hctrl) ||
	    evbuffer_add_buffer(out, m->ctrl)))
		rc = -1;
	/* Acknowledgements ride along with other output, or go alone when
	 * the owner says they have waited long enough (mux_ack_flush). */
	if (rc == 0 && m->nack > 0 && !m->dead &&
	    (evbuffer_get_length(out) > start || m->ack_force) &&
	    acks_emit(m, out))
		rc = -1;
done:
	leave(m);
	return (rc ? -1 : (int)(evbuffer_get_length(out) - start));
}

/* Cut data frames of at most ${n} bytes. */
void
mux_set_frame_max(struct mux *m, uint32_t n)
{

	m->cfg.frame_max = n > 0 ? n : 1;
}

/* Nonzero if ${m} has frames to send. */
int
mux_output_pending(const struct mux *m)
{

	if (evbuffer_get_length(m->hctrl) > 0 ||
	    evbuffer_get_length(m->state_out) > 0)
		return (1);
	return (!m->gated && (evbuffer_get_length(m->ctrl) > 0 ||
	    (!m->dead && m->ready.head != NULL) ||
	    (m->ack_force && m->nack > 0)));
}

/* Create a session. */
struct mux *
mux_new(const struct mux_config *cfg, const struct mux_callbacks *cb,
    void *arg)
{
	struct mux *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto err0;
	m->cfg = *cfg;
	if (m->cfg.window < MUX_INITIAL_WINDOW)
		m->cfg.window = MUX_INITIAL_WINDOW;
	if (m->cfg.window_max < m->cfg.window)
		m->cfg.window_max = m->cfg.window;
	if (m->cfg.frame_max == 0)
		m->cfg.frame_max = 1;
	m->cb = *cb;
	m->arg = arg;
	m->next_id = cfg->dialer ? 1 : 2;
	idmap_init(&m->streams);
	if ((m->ctrl = evbuffer_new()) == NULL)
		goto err1;
	if ((m->hctrl = evbuffer_new()) == NULL)
		goto err2;
	if ((m->state_out = evbuffer_new()) == NULL)
		goto err3;
	if ((m->tmp = evbuffer_new()) == NULL)
		goto err4;
	if ((m->rx_ext = evbuffer_new()) == NULL)
		goto err5;
	if (m->cfg.resumable)
		mux_attach(m, 1);
	return (m);

err5:
	evbuffer_free(m->tmp);
err4:
	evbuffer_free(m->state_out);
err3:
	evbuffer_free(m->hctrl);
err2:
	evbuffer_free(m->ctrl);
err1:
	free(m);
err0:
	return (NULL);
}

/* idmap_drain callback: end stream ${elem} with the session. */
static void
drop_for_session(void *elem, void *arg)
{

	(void)arg;
	stream_drop(elem, 0, MUX_CLOSE_SESSION);
}

/* End session ${m}. */
void
mux_free(struct mux *m)
{

	if (m == NULL)
		return;
	enter(m);
	m->dead = 1;
	idmap_drain(&m->streams, drop_for_session, NULL);
	leave(m);
	free(m->ack_ids);
	evbuffer_free(m->rx_ext);
	evbuffer_free(m->tmp);
	evbuffer_free(m->state_out);
	evbuffer_free(m->hctrl);
	evbuffer_free(m->ctrl);
	free(m);
}

/* Set ${m}'s clock to ${now_us}. */
void
mux_set_time(struct mux *m, uint64_t now_us)
{

	m->now = now_us;
}

/* Send a ping on ${m}; a newer ping supersedes an unanswered one. */
int
mux_ping(struct mux *m)
{

	if (m->dead)
		return (-1);
	/* The first ping of a resumable engine's connection is the offer. */
	m->ping_id = m->offer_pending ? MUX_PING_OFFER : m->ping_id + 1;
	m->offer_pending = 0;
	if (queue_ctrl(m, FRAME_PING, FRAME_SYN, 0, m->ping_id))
		return (-1);
	m->ping_out = 1;
	m->ping_sent = m->now;
	return (0);
}

/* Queue Go Away ${code} on ${m}. */
int
mux_goaway(struct mux *m, uint32_t code)
{
	struct mux_stream *w;
	int rc;

	if (m->goaway_sent)
		return (0);
	m->goaway_sent = 1;
	m->goaway_code = code;
	/* Behind the stream frames queued before it; while gated, where
	 * it can go out (and again once the gate opens). */
	rc = queue_goaway(m, m->gated ? m->hctrl : m->ctrl);
	/* Opens still waiting for a slot would be new streams after it. */
	enter(m);
	while ((w = m->waiting.head) != NULL)
		stream_drop(w, 0, MUX_CLOSE_RESET);
	leave(m);
	return (rc);
}

void *
mux_callback_arg(const struct mux *m)
{

	return (m->arg);
}

int
mux_is_closing(const struct mux *m)
{

	return (m->goaway_sent || m->goaway_rcvd || m->dead);
}

uint64_t
mux_rtt(const struct mux *m)
{

	return (m->srtt);
}

uint32_t
mux_stream_count(const struct mux *m)
{

	return (m->streams.count);
}

size_t
mux_queued(const struct mux *m)
{

	return (m->queued);
}

/* Open a stream on ${m} with argument ${sarg}. */
struct mux_stream *
mux_stream_open(struct mux *m, void *sarg)
{
	struct mux_stream *s;

	if (mux_is_closing(m)) {
		errno = EPIPE;
		return (NULL);
	}
	if (m->streams.count >= m->cfg.max_streams) {
		errno = EMFILE;
		return (NULL);
	}
	if (m->next_id > UINT32_MAX) {
		errno = ENOSPC;
		return (NULL);
	}
	if ((s = stream_new(m, (uint32_t)m->next_id, S_OUTBOUND)) == NULL) {
		errno = ENOMEM;
		return (NULL);
	}
	m->next_id += 2;
	s->arg = sarg;
	if (m->inflight < m->cfg.max_inflight_opens) {
		stream_send_syn(s);
	} else {
		s->flags |= S_SYN_WAIT;
		squeue_push(&m->waiting, s);
	}
	return (s);
}

void
mux_stream_set_arg(struct mux_stream *s, void *sarg)
{

	s->arg = sarg;
}

uint32_t
mux_stream_id(const struct mux_stream *s)
{

	return (s->id);
}

void
mux_stream_bytes(const struct mux_stream *s, uint64_t *in, uint64_t *out)
{

	*in = s->received;
	*out = s->sent;
}

struct mux *
mux_stream_session(const struct mux_stream *s)
{

	return (s->m);
}

/*
 * Writes shorter than this are copied into the end of the send queue rather
 * than moved: a moved chain can be far bigger than the bytes in it, and a
 * stream queueing many short writes would keep every one of them alive.
 */
#define WRITE_COPY_MAX	4096

/* Queue the bytes of ${src} on ${s}. */
int
mux_stream_write(struct mux_stream *s, struct evbuffer *src)
{
	size_t len = evbuffer_get_length(src);
	unsigned char *p;

	if ((s->flags & (S_DEAD | S_FIN_QUEUED | S_FIN_SENT)) || s->m->dead)
		return (-1);
	if (len == 0)
		return (0);
	if (s->sendq == NULL && (s->sendq = evbuffer_new()) == NULL)
		return (-1);
	if (len < WRITE_COPY_MAX) {
		if ((p = evbuffer_pullup(src, -1)) == NULL ||
		    evbuffer_add(s->sendq, p, len))
			return (-1);
		evbuffer_drain(src, len);
	} else if (evbuffer_add_buffer(s->sendq, src))
		return (-1);
	s->m->queued += len;
	s->m->unsent += len;
	stream_schedule(s);
	if (evbuffer_get_length(s->sendq) >= s->m->cfg.send_hiwat) {
		s->flags |= S_WANT_WRITE;
		return (1);
	}
	return (0);
}

/* Pull mode on (${on} nonzero) or off for ${s}. */
void
mux_stream_set_pull(struct mux_stream *s, int on)
{

	if (on && s->m->cb.on_stream_pull != NULL &&
	    !(s->flags & (S_DETACHED | S_DEAD)))
		s->flags |= S_PULL;
	else
		s->flags &= ~S_PULL;
	/* The ready list holds only streams with a frame to send. */
	if ((s->flags & S_READY) && !stream_sendable(s)) {
		squeue_remove(&s->m->ready, s);
		s->flags &= ~S_READY;
	}
	stream_schedule(s);
}

size_t
mux_stream_queued(const struct mux_stream *s)
{

	return (s->sendq ? evbuffer_get_length(s->sendq) : 0);
}

/* Queue FIN on ${s} after its data. */
void
mux_stream_shutdown(struct mux_stream *s)
{

	if (s->flags & (S_DEAD | S_FIN_QUEUED | S_FIN_SENT))
		return;
	s->flags |= S_FIN_QUEUED;
	stream_schedule(s);
}

/*
 * ${n} bytes of ${s} were read: grant them back once half the window is
 * read, doubling the window if that took at most two round trips.
 */
static void
stream_grant(struct mux_stream *s, uint32_t n)
{
	struct mux *m = s->m;
	uint32_t delta, grow = 0;

	s->recv_read += n;
	if ((s->flags & S_FIN_RCVD) || s->recv_read < s->recv_window / 2)
		return;
	if (m->srtt > 0 && m->now - s->grant_time <= 2 * m->srtt &&
	    s->recv_window < m->cfg.window_max) {
		grow = s->recv_window;
		if (grow > m->cfg.window_max - s->recv_window)
			grow = m->cfg.window_max - s->recv_window;
		if (grow > m->cfg.window_budget - m->window_used)
			grow = (uint32_t)(m->cfg.window_budget -
			    m->window_used);
	}
	delta = s->recv_read + grow;
	/* With the extension, a delta acknowledges what was consumed, and
	 * growth goes in a frame of its own. */
	if (m->ext ? (queue_ctrl(m, FRAME_WINDOW_UPDATE, 0, s->id,
	    s->recv_read) || (grow > 0 && queue_ctrl(m, FRAME_WINDOW_UPDATE,
	    FRAME_GROW, s->id, grow))) :
	    queue_ctrl(m, FRAME_WINDOW_UPDATE, 0, s->id, delta))
		return;
	s->granted += s->recv_read;
	s->recv_window += grow;
	m->window_used += grow;
	s->recv_avail += delta;
	s->recv_read = 0;
	s->grant_time = m->now;
}

/* Move up to ${max} received bytes of ${s} to ${dst}. */
int
mux_stream_read(struct mux_stream *s, struct evbuffer *dst, size_t max)
{
	size_t n = s->recvq ? evbuffer_get_length(s->recvq) : 0;

	if (n > max)
		n = max;
	if (n == 0)
		return (0);
	if (evbuffer_remove_buffer(s->recvq, dst, n) != (int)n)
		return (-1);
	s->m->queued -= n;
	if (evbuffer_get_length(s->recvq) == 0) {
		evbuffer_free(s->recvq);
		s->recvq = NULL;
	}
	stream_grant(s, (uint32_t)n);
	return ((int)n);
}

size_t
mux_stream_readable(const struct mux_stream *s)
{

	return (s->recvq ? evbuffer_get_length(s->recvq) : 0);
}

int
mux_stream_eof(const struct mux_stream *s)
{

	return ((s->flags & S_FIN_RCVD) && s->recvq == NULL);
}

/* Abort ${s} with RST. */
void
mux_stream_reset(struct mux_stream *s)
{
	struct mux *m = s->m;

	enter(m);
	s->flags |= S_DETACHED;
	if (m->ext && m->gated && !(s->flags & S_SYN_WAIT)) {
		/* No connection to say it on, and whether the peer knows
		 * the stream is learnt only when resuming: it stays, dead,
		 * until then (resume_entry, resume_absent). */
		s->flags |= S_RESET;
		if (s->flags & S_READY) {
			squeue_remove(&m->ready, s);
			s->flags &= ~S_READY;
		}
		stream_free_queues(s);
	} else {
		stream_drop(s, 1, 0);
	}
	leave(m);
}

/* Release ${s} after a graceful end. */
void
mux_stream_release(struct mux_stream *s)
{
	struct mux *m = s->m;

	if (!mux_stream_eof(s)) {
		mux_stream_reset(s);
		return;
	}
	enter(m);
	s->flags |= S_DETACHED;
	s->arg = NULL;
	if (stream_finished(s))
		stream_drop(s, 0, 0);
	else
		mux_stream_shutdown(s);	/* if not yet */
	leave(m);
}

/* Write ${v} big-endian into the ${n} bytes at ${p}. */
static void
put_be(uint8_t *p, uint64_t v, int n)
{

	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

/* Read ${n} bytes big-endian at ${p}. */
static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return (v);
}

/* Forget the frames queued for a connection of ${m} that is gone or new,
 * and what was arriving from it; gate the engine. */
static void
conn_reset(struct mux *m)
{

	evbuffer_drain(m->hctrl, evbuffer_get_length(m->hctrl));
	evbuffer_drain(m->ctrl, evbuffer_get_length(m->ctrl));
	evbuffer_drain(m->state_out, evbuffer_get_length(m->state_out));
	evbuffer_drain(m->rx_ext, evbuffer_get_length(m->rx_ext));
	/* The rest of a frame cut short will not come: its window is the
	 * peer's again (the window was taken at the frame's header). */
	if (m->rx_stream != NULL)
		m->rx_stream->recv_avail += m->rx_left;
	m->rx_left = m->rx_ext_left = 0;
	m->rx_stream = NULL;
	m->backlog = 0;
	m->ping_out = m->resuming = m->hello_wait = m->offer_pending = 0;
	m->resume_entries = 0;
	m->gated = 1;
	acks_clear(m);		/* the state exchange says all they would */
}

/* The connection of ${m} is gone. */
void
mux_detach(struct mux *m)
{

	conn_reset(m);
}

/* ${m} is on a new connection; say hello if ${hello}. */
void
mux_attach(struct mux *m, int hello)
{

	conn_reset(m);
	if (hello)
		m->hello_wait = m->offer_pending = 1;
}

/* Let ${m}'s streams flow. */
void
mux_open_gate(struct mux *m)
{

	m->gated = 0;
	if (mux_output_pending(m))
		signal_output(m);
}

int
mux_ext(const struct mux *m)
{

	return (m->ext);
}

size_t
mux_unacked(const struct mux *m)
{

	return (m->unacked);
}

size_t
mux_unsent(const struct mux *m)
{

	return (m->unsent);
}

/* Send extension message ${kind} with ${len} bytes at ${p} on ${m}. */
int
mux_ext_send(struct mux *m, unsigned kind, const void *p, size_t len)
{

	if (!m->ext || m->dead || kind >= MUX_EXT_ENGINE || len > MUX_EXT_MAX)
		return (-1);
	return (queue_frame(m, FRAME_EXT, (uint16_t)kind, 0, (uint32_t)len,
	    p, len));
}

/* Append the state entry of ${s} to ${buf}: what it received, what it
 * credited, the window left, and whether FIN arrived. */
static int
state_entry(struct mux_stream *s, struct evbuffer *buf)
{
	uint8_t e[STATE_ENTRY];

	put_be(e, s->id, 4);
	put_be(e + 4, (s->flags & S_FIN_RCVD) ? STATE_FIN : 0, 4);
	put_be(e + 8, s->received, 8);
	put_be(e + 16, s->granted, 8);
	put_be(e + 24, s->recv_avail, 4);
	return (evbuffer_add(buf, e, sizeof(e)));
}

/*
 * Send the state of ${m} (gated, on a new connection): an entry for every
 * stream the peer may know, in state frames of at most MUX_EXT_MAX bytes,
 * then the end, which names the highest stream id the peer opened that we
 * saw and the number of entries.  Frames queued while no connection was
 * up are dropped: the state says all they said.
 */
int
mux_resume_start(struct mux *m)
{
	uint8_t hdr[FRAME_HDR_LEN], end[12];
	struct frame_hdr h = { FRAME_VERSION, FRAME_EXT, EXT_STATE, 0, 0 };
	struct evbuffer *chunk;
	struct mux_stream *s;
	uint32_t n = 0;
	int rc = -1;

	if (!m->ext || m->dead || (chunk = evbuffer_new()) == NULL)
		goto fail;
	evbuffer_drain(m->ctrl, evbuffer_get_length(m->ctrl));
	for (s = m->all; s != NULL || evbuffer_get_length(chunk) > 0;
	    s = s != NULL ? s->anext : NULL) {
		/* A full frame, or the last one. */
		if (s == NULL ||
		    evbuffer_get_length(chunk) + STATE_ENTRY > MUX_EXT_MAX) {
			h.length = (uint32_t)evbuffer_get_length(chunk);
			frame_encode(hdr, &h);
			if (evbuffer_add(m->state_out, hdr, sizeof(hdr)) ||
			    evbuffer_add_buffer(m->state_out, chunk))
				goto done;
			if (s == NULL)
				break;
		}
		/* Unknown to the peer, or to be absent from its view (it
		 * resets streams we do not name). */
		if (s->flags & (S_SYN_WAIT | S_RESET))
			continue;
		if (state_entry(s, chunk))
			goto done;
		n++;
	}
	h.flags = EXT_STATE_END;
	h.length = sizeof(end);
	frame_encode(hdr, &h);
	put_be(end, m->peer_max_id, 4);
	put_be(end + 4, n, 4);
	put_be(end + 8, 0, 4);
	if (evbuffer_add(m->state_out, hdr, sizeof(hdr)) ||
	    evbuffer_add(m->state_out, end, sizeof(end)))
		goto done;
	m->resuming = 1;
	m->resume_next_id = m->next_id;
	m->resent = 0;
	signal_output(m);
	rc = 0;
done:
	evbuffer_free(chunk);
fail:
	if (rc != 0)
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
	return (rc);
}

/*
 * Send again what ${s} sent from stream offset ${from} on (the peer has
 * the bytes before it): they go back to the head of its send queue.
 */
static void
stream_rewind(struct mux_stream *s, uint64_t from)
{
	struct mux *m = s->m;
	size_t left;

	stream_forget(s, (size_t)(from - stream_kept_from(s)));
	if (s->unacked != NULL) {
		left = evbuffer_get_length(s->unacked);
		if (s->sendq == NULL) {
			s->sendq = s->unacked;
		} else {
			evbuffer_prepend_buffer(s->sendq, s->unacked);
			evbuffer_free(s->unacked);
		}
		s->unacked = NULL;
		m->unacked -= left;
		m->unsent += left;
		m->resent += left;
	}
	s->sent = from;
	/* A FIN the peer did not get goes again, after the data. */
	if ((s->flags & (S_FIN_SENT | S_FIN_ACKED)) == S_FIN_SENT)
		s->flags = (s->flags & ~S_FIN_SENT) | S_FIN_QUEUED;
}

/* The peer has everything ${s} sent, and its FIN. */
static void
stream_all_acked(struct mux_stream *s)
{

	s->flags |= S_FIN_ACKED;
	s->acked = s->sent;
	if (s->unacked != NULL)
		stream_forget(s, evbuffer_get_length(s->unacked));
	if ((s->flags & S_DETACHED) && stream_finished(s))
		stream_drop(s, 0, 0);
}

/* Nonzero if stream id ${id} is of ${m}'s own parity. */
static int
id_ours(const struct mux *m, uint32_t id)
{

	return ((id & 1) == (m->cfg.dialer ? 1u : 0u));
}

/*
 * Apply the peer's state entry at ${e} to ${m}: re-send from what it
 * received, with the window it has left, and FIN if it did not get it.
 * Returns 0, or -1 if the entry cannot be true.
 */
static int
resume_entry(struct mux *m, const uint8_t *e)
{
	uint32_t id = (uint32_t)get_be(e, 4), fl = (uint32_t)get_be(e + 4, 4);
	uint64_t rcvd = get_be(e + 8, 8), granted = get_be(e + 16, 8);
	struct mux_stream *s = idmap_get(&m->streams, id);

	if (s == NULL)		/* ended here, or the peer will open it */
		return (id_ours(m, id) && id >= m->next_id ? -1 : 0);
	if (s->flags & S_RESET) {	/* reset during the outage */
		stream_drop(s, 1, 0);
		return (0);
	}
	if ((s->flags & (S_SYN_WAIT | S_LISTED)) || rcvd > s->sent ||
	    rcvd < stream_kept_from(s) || granted > rcvd)
		return (-1);
	s->flags |= S_LISTED;
	if (s->flags & S_INFLIGHT)	/* it knows the stream */
		stream_answered(s);
	if ((fl & STATE_FIN) && (!(s->flags & S_FIN_SENT) || rcvd != s->sent))
		return (-1);
	if (fl & STATE_FIN)
		s->flags |= S_FIN_ACKED;
	stream_rewind(s, rcvd);
	s->acked = granted;
	s->send_window = (uint32_t)get_be(e + 24, 4);
	if (s->flags & S_FIN_ACKED)
		stream_all_acked(s);
	stream_schedule(s);
	return (0);
}

/* The peer's state frame at ${p} (${len} bytes) for ${m}. */
static int
resume_state(struct mux *m, const uint8_t *p, size_t len)
{
	size_t i;

	if (!m->resuming || len % STATE_ENTRY != 0)
		return (-1);
	enter(m);
	for (i = 0; i < len && !m->dead; i += STATE_ENTRY) {
		if (resume_entry(m, p + i)) {
			leave(m);
			return (-1);
		}
		m->resume_entries++;
	}
	leave(m);
	return (0);
}

/*
 * Stream ${s} of ${m} is not in the peer's state.  If the peer never saw
 * it (one of ours above ${seen}, the highest of our ids it saw), open it
 * again and send everything.  Otherwise the peer ended it: gracefully if
 * both FINs went each way (the peer frees a stream only once it has both),
 * else by a reset whose RST was lost.
 */
static void
resume_absent(struct mux_stream *s, uint32_t seen)
{
	struct mux *m = s->m;

	if (s->flags & S_RESET) {	/* reset during the outage */
		stream_drop(s, 0, 0);
	} else if (id_ours(m, s->id) && s->id > seen &&
	    stream_kept_from(s) == 0) {
		stream_rewind(s, 0);
		s->acked = 0;
		s->send_window = MUX_INITIAL_WINDOW;
		if (queue_ctrl(m, FRAME_WINDOW_UPDATE, FRAME_SYN, s->id,
		    s->recv_window - MUX_INITIAL_WINDOW) == 0)
			stream_schedule(s);
	} else if ((s->flags & (S_FIN_SENT | S_FIN_RCVD)) ==
	    (S_FIN_SENT | S_FIN_RCVD)) {
		stream_all_acked(s);
	} else {
		stream_drop(s, 0, MUX_CLOSE_RESET);
	}
}

/*
 * The end of the peer's state at ${p} (${len} bytes) for ${m}: deal with
 * the streams it did not name (resume_absent), then let them all flow.
 */
static int
resume_state_end(struct mux *m, const uint8_t *p, size_t len)
{
	struct mux_stream *s, **absent;
	uint32_t seen, i, n = 0;

	if (!m->resuming || len != 12 ||
	    get_be(p + 4, 4) != m->resume_entries)
		return (-1);
	seen = (uint32_t)get_be(p, 4);
	if (seen != 0 && (!id_ours(m, seen) || seen >= m->next_id))
		return (-1);
	/* Collected first: a reset's callback may end other streams. */
	for (s = m->all; s != NULL; s = s->anext)
		n++;
	if ((absent = calloc(n + 1, sizeof(*absent))) == NULL) {
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
		return (0);
	}
	n = 0;
	for (s = m->all; s != NULL; s = s->anext) {
		if (s->flags & S_LISTED)
			s->flags &= ~S_LISTED;
		else if (!(s->flags & S_SYN_WAIT) &&
		    (!id_ours(m, s->id) || s->id < m->resume_next_id))
			absent[n++] = s;
	}
	enter(m);
	for (i = 0; i < n && !m->dead; i++)
		if (!(absent[i]->flags & S_DEAD))
			resume_absent(absent[i], seen);
	free(absent);
	m->resuming = 0;
	m->gated = 0;
	/* Our Go Away again, after the streams opened again, not before:
	 * the peer refuses new streams after it. */
	if (m->goaway_sent && !m->dead)
		queue_goaway(m, m->ctrl);
	if (!m->dead && m->cb.on_resumed != NULL)
		m->cb.on_resumed(m, m->resent, m->arg);
	leave(m);
	return (0);
}

/* Forget the streams due an acknowledgement on ${m}. */
static void
acks_clear(struct mux *m)
{
	struct mux_stream *s;
	uint32_t i;

	for (i = 0; i < m->nack; i++)
		if ((s = idmap_get(&m->streams, m->ack_ids[i])) != NULL)
			s->flags &= ~S_ACK_DUE;
	m->nack = 0;
	m->ack_force = 0;
}

/*
 * Append to ${out} ACK messages for the streams of ${m} that received
 * payload since the last: per stream its id and the bytes received, which
 * the sender need not keep any more.  Returns 0 or -1.
 */
static int
acks_emit(struct mux *m, struct evbuffer *out)
{
	uint8_t hdr[FRAME_HDR_LEN], e[ACK_ENTRY];
	struct frame_hdr h = { FRAME_VERSION, FRAME_EXT, EXT_ACK, 0, 0 };
	struct mux_stream *s;
	uint32_t i, j, n;

	for (i = 0; i < m->nack; i = j) {
		for (j = i, n = 0; j < m->nack && (n + 1) * ACK_ENTRY <=
		    MUX_EXT_MAX; j++)
			if (idmap_get(&m->streams, m->ack_ids[j]) != NULL)
				n++;
		if (n == 0)
			continue;
		h.length = n * ACK_ENTRY;
		frame_encode(hdr, &h);
		if (evbuffer_add(out, hdr, sizeof(hdr)))
			return (-1);
		for (; i < j; i++) {
			if ((s = idmap_get(&m->streams, m->ack_ids[i])) == NULL)
				continue;
			put_be(e, s->id, 4);
			put_be(e + 4, s->received, 8);
			if (evbuffer_add(out, e, sizeof(e)))
				return (-1);
		}
	}
	acks_clear(m);
	return (0);
}

/* The peer's ACK message at ${p} (${len} bytes) for ${m}: forget what it
 * has received.  Returns 0, or -1 if it claims bytes never sent. */
static int
acks_apply(struct mux *m, const uint8_t *p, size_t len)
{
	struct mux_stream *s;
	uint64_t rcvd, from;
	size_t i;

	if (len % ACK_ENTRY != 0 || m->gated)
		return (-1);
	for (i = 0; i < len; i += ACK_ENTRY) {
		if ((s = idmap_get(&m->streams, (uint32_t)get_be(p + i,
		    4))) == NULL)
			continue;
		if ((rcvd = get_be(p + i + 4, 8)) > s->sent)
			return (-1);
		if (rcvd > (from = stream_kept_from(s)))
			stream_forget(s, (size_t)(rcvd - from));
	}
	return (0);
}

int
mux_ack_pending(const struct mux *m)
{

	return (m->nack > 0);
}

void
mux_ack_flush(struct mux *m)
{

	if (m->nack == 0)
		return;
	m->ack_force = 1;
	signal_output(m);
}
