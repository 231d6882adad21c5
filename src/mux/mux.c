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

struct mux_stream {
	uint32_t	id;		/* first: the idmap key */
	uint16_t	flags;
	uint16_t	pulled;		/* the mux_output pass of its last pull */
	uint32_t	send_window;	/* bytes we may still send */
	uint32_t	recv_window;	/* our window's current size */
	uint32_t	recv_avail;	/* bytes the peer may still send */
	uint32_t	recv_read;	/* read, not yet granted back */
	uint64_t	grant_time;	/* when window was last granted */
	struct mux	*m;
	void		*arg;
	struct evbuffer	*sendq;		/* allocated while non-empty */
	struct evbuffer	*recvq;		/* allocated while non-empty */
	/* On the ready list, the open wait list or the free list. */
	struct mux_stream *next, *prev;
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
	uint64_t	next_id;	/* our next stream id */
	uint32_t	inflight;	/* our SYNs awaiting an answer */
	uint32_t	backlog;	/* peer SYNs acked since last output */
	uint64_t	window_used;	/* receive window beyond cfg.window */
	size_t		queued;		/* bytes in every sendq and recvq */
	struct squeue	waiting;	/* opens waiting for an inflight slot */
	struct squeue	ready;		/* streams with a frame to send */
	struct mux_stream *zombies;	/* freed on leave() */
	struct evbuffer	*ctrl;		/* encoded control frames */
	int		depth;		/* engine calls on the stack */
	uint16_t	pass;		/* mux_output calls (wraps) */

	/* The Data frame whose payload is arriving. */
	uint32_t	rx_left;	/* payload bytes still to come */
	uint32_t	rx_id;
	uint16_t	rx_flags;
	struct mux_stream *rx_stream;	/* NULL: discard the payload */

	/* The peer's stream ids: highest index seen, and a bitmap of the
	 * PEER_ID_WINDOW indexes up to it (index = (id + 1) / 2). */
	uint32_t	peer_hi;
	uint64_t	peer_seen[PEER_ID_WINDOW / 64];

	uint64_t	now;
	uint64_t	srtt;
	uint64_t	ping_sent;
	uint32_t	ping_id;
	unsigned	ping_out:1, goaway_sent:1, goaway_rcvd:1, dead:1;
};

static void stream_drop(struct mux_stream *, int, enum mux_close_reason);

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

/* Mark ${m} dead with Go Away ${code}; tell the application ${why}. */
static void
session_fail(struct mux *m, uint32_t code, const char *why)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h = { FRAME_VERSION, FRAME_GO_AWAY, 0, 0, code };

	if (m->dead)
		return;
	m->dead = 1;
	m->goaway_sent = 1;
	m->rx_left = 0;
	frame_encode(buf, &h);
	if (evbuffer_add(m->ctrl, buf, sizeof(buf)) == 0)
		signal_output(m);
	if (m->cb.on_protocol_error)
		m->cb.on_protocol_error(m, why, m->arg);
}

/*
 * Queue a control frame of ${type}, ${flags}, stream ${id} and ${length} on
 * ${m}.  Returns 0, or -1 (the session failed) if out of memory.
 */
static int
queue_ctrl(struct mux *m, uint8_t type, uint16_t flags, uint32_t id,
    uint32_t length)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h = { FRAME_VERSION, type, flags, id, length };

	frame_encode(buf, &h);
	if (evbuffer_add(m->ctrl, buf, sizeof(buf))) {
		session_fail(m, MUX_GOAWAY_INTERNAL, "out of memory");
		return (-1);
	}
	signal_output(m);
	return (0);
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

	if (s->flags & (S_SYN_WAIT | S_DEAD | S_FIN_SENT))
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
	m->queued -= mux_stream_queued(s) + mux_stream_readable(s);
	if (s->sendq != NULL)		/* evbuffer_free(NULL) crashes */
		evbuffer_free(s->sendq);
	if (s->recvq != NULL)
		evbuffer_free(s->recvq);
	s->sendq = s->recvq = NULL;
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

/* Handle a Data or Window Update header ${h} for a stream on ${m}. */
static void
input_stream_frame(struct mux *m, const struct frame_hdr *h)
{
	struct mux_stream *s;

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
		if (s != NULL && stream_add_send_window(s, h->length))
			return;
		stream_end_flags(s, h->flags);
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
	default:
		session_fail(m, MUX_GOAWAY_PROTOCOL, "unknown frame type");
	}
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
	while (!m->dead) {
		if (m->rx_left > 0) {
			if (input_payload(m, in) == 0)
				break;
			continue;
		}
		/* Replies wait in ctrl: stop reading until they are sent. */
		if (evbuffer_get_length(m->ctrl) >= m->cfg.ctrl_hiwat)
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
	if (evbuffer_add(out, buf, sizeof(buf)) ||
	    (n && evbuffer_remove_buffer(s->sendq, out, n) != (int)n))
		return (-1);
	m->queued -= n;
	s->send_window -= n;
	if (queued == n && s->sendq != NULL) {
		evbuffer_free(s->sendq);
		s->sendq = NULL;
	}
	if (h.flags & FRAME_FIN) {
		s->flags = (s->flags & ~S_FIN_QUEUED) | S_FIN_SENT;
		if ((s->flags & (S_DETACHED | S_FIN_RCVD)) ==
		    (S_DETACHED | S_FIN_RCVD)) {
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
	if (evbuffer_add_buffer(out, m->ctrl))
		rc = -1;
	while (rc == 0 && !m->dead && (s = m->ready.head) != NULL &&
	    evbuffer_get_length(out) - start < budget) {
		/* A callback may have queued control frames (a SYN for a
		 * stream now ready): they go first, as always. */
		if (evbuffer_get_length(m->ctrl) > 0 &&
		    evbuffer_add_buffer(out, m->ctrl)) {
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
	if (rc == 0 && evbuffer_add_buffer(out, m->ctrl))
		rc = -1;
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

	return (evbuffer_get_length(m->ctrl) > 0 ||
	    (!m->dead && m->ready.head != NULL));
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
	return (m);

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
	m->ping_id++;
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
	rc = queue_ctrl(m, FRAME_GO_AWAY, 0, 0, code);
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
	if (queue_ctrl(m, FRAME_WINDOW_UPDATE, 0, s->id, delta))
		return;
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
	stream_drop(s, 1, 0);
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
	if (s->flags & S_FIN_SENT)
		stream_drop(s, 0, 0);
	else
		mux_stream_shutdown(s);
	leave(m);
}
