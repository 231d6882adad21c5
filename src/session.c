/*
 * session: see session.h.
 */
#include <netinet/in.h>
#include <linux/tcp.h>	/* struct tcp_info with tcpi_delivery_rate */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conn.h"
#include "mux/frame.h"
#include "ms.h"
#include "session.h"

/*
 * Output is pulled from the engine while fewer than 'queue' bytes wait in
 * the link's buffer, 'queue' bytes at a time, and the kernel is asked to
 * wake us when fewer than 'queue' bytes are unsent (TCP_NOTSENT_LOWAT).
 * What waits there waits ahead of every frame the fair scheduler picks
 * next, so 'queue' follows the link's delivery rate: about QUEUE_US worth
 * of it, within [QUEUE_MIN, QUEUE_MAX].  On loopback that is the maximum
 * (big writev batches); at 100 Mbit/s about 3 KiB, so a small frame behind
 * bulk data waits a fraction of a millisecond, not tens of them.  Data
 * frames are cut at half the queue (at least FRAME_MIN, at most the
 * engine's frame_max): a 16 KiB frame alone is 1.3 ms at 100 Mbit/s, and
 * the smaller bursts also overflow a shallow bottleneck queue far less
 * often (docs/PERFORMANCE.md).
 */
#define QUEUE_US	250
#define QUEUE_MIN	(2 * 1024)
#define QUEUE_MAX	(512 * 1024)
#define FRAME_MIN	1024
/* How often the delivery rate is read (TCP_INFO). */
#define TUNE_US		100000
/* Stop reading the link while this much is unprocessed (input paused). */
#define IN_HIWAT	(1024 * 1024)
/* A session that failed gets this long to send its Go Away. */
#define LINGER_MS	1000

struct session {
	struct mux	*mux;
	struct conn	*conn;
	struct event	*flush_ev;	/* deferred output pull */
	struct event	*tick_ev;	/* keepalive and timeout */
	struct event	*down_ev;	/* deferred on_down; linger deadline */
	struct event	*answer_ev;	/* the first ping's answer deadline */
	struct session_handlers h;
	void		*arg;
	uint64_t	keepalive_us, timeout_us;
	uint64_t	last_rx, last_ping;
	const char	*why;		/* set once it is going down */
	const char	*fail_why;	/* protocol error being lingered on */
	size_t		queue;		/* link bytes queued below the mux */
	uint32_t	frame_max;	/* the engine's configured frame_max */
	uint64_t	tuned;		/* when queue was last set */
	int		lingering;	/* flushing a final Go Away */
	int		answered;	/* the peer answered a ping */
};

uint64_t
session_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

/* End ${sess} because of ${why}: on_down follows from the event loop. */
static void
session_down(struct session *sess, const char *why)
{

	if (sess->why != NULL)
		return;
	sess->why = why;
	conn_read(sess->conn, 0);
	event_active(sess->down_ev, EV_TIMEOUT, 0);
}

/*
 * Size ${sess}'s output queue to its link's delivery rate (see QUEUE_MS),
 * at most every TUNE_US; failures only cost speed.
 */
static void
session_tune(struct session *sess)
{
	uint64_t now = session_now_us(), q;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fd = conn_fd(sess->conn), lowat;

	if (sess->queue != 0 && now - sess->tuned < TUNE_US)
		return;
	sess->tuned = now;
	q = QUEUE_MAX;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_delivery_rate) +
	    sizeof(ti.tcpi_delivery_rate) && ti.tcpi_delivery_rate > 0)
		q = ti.tcpi_delivery_rate * QUEUE_US / 1000000;
	q = q < QUEUE_MIN ? QUEUE_MIN : q > QUEUE_MAX ? QUEUE_MAX : q;
	if (q == sess->queue)
		return;
	sess->queue = (size_t)q;
	lowat = (int)q;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat,
	    sizeof(lowat));
	conn_set_lowat(sess->conn, sess->queue / 2);
	mux_set_frame_max(sess->mux, q / 2 < FRAME_MIN ? FRAME_MIN :
	    q / 2 > sess->frame_max ? sess->frame_max : (uint32_t)(q / 2));
}

/* Pull output from the engine into the link while its buffer is short. */
static void
session_flush(struct session *sess)
{
	struct evbuffer *out = conn_output(sess->conn);
	struct evbuffer *in = conn_input(sess->conn);

	if (sess->lingering) {
		mux_output(sess->mux, out, 0);	/* only the Go Away is left */
		if (evbuffer_get_length(out) == 0)
			session_down(sess, sess->fail_why);
		conn_flush(sess->conn);
		return;
	}
	session_tune(sess);
	while (evbuffer_get_length(out) < sess->queue &&
	    mux_output_pending(sess->mux)) {
		if (mux_output(sess->mux, out, sess->queue) < 0) {
			session_down(sess, "out of memory");
			return;
		}
		/* Input waits while replies pile up; they just left. */
		if (evbuffer_get_length(in) > 0 && sess->why == NULL &&
		    mux_input(sess->mux, in) < 0)
			break;
	}
	conn_flush(sess->conn);
	if (sess->why == NULL && !sess->lingering &&
	    evbuffer_get_length(in) < IN_HIWAT)
		conn_read(sess->conn, 1);
}

/* flush_ev: pull output. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;

	(void)fd;
	(void)what;
	mux_set_time(sess->mux, session_now_us());
	session_flush(sess);
}

/* mux: output is waiting; pull it once this loop iteration is done. */
static void
want_output(struct mux *m, void *arg)
{
	struct session *sess = arg;

	(void)m;
	event_active(sess->flush_ev, EV_WRITE, 0);
}

/*
 * conn: bytes arrived; feed the engine.  The peer is alive (timeout) when
 * the engine consumed some: a frame header complete, or payload.  So are
 * bytes left over that make a header at least, which only wait for our own
 * replies to go out.  A few bytes short of a header are not: a peer that
 * drips its frames a byte at a time is dead after timeout all the same.
 */
static void
conn_readable(struct conn *c, void *arg)
{
	struct session *sess = arg;
	struct evbuffer *in = conn_input(c);
	uint64_t now = session_now_us();
	size_t before = evbuffer_get_length(in), left;

	mux_set_time(sess->mux, now);
	if (mux_input(sess->mux, in) < 0)
		return;
	left = evbuffer_get_length(in);
	if (left < before || left >= FRAME_HDR_LEN)
		sess->last_rx = now;
	if (left >= IN_HIWAT)
		conn_read(c, 0);
}

/* conn: the output drained below the low mark: pull more, or finish
 * lingering. */
static void
conn_drained(struct conn *c, void *arg)
{
	struct session *sess = arg;

	if (sess->lingering) {
		if (evbuffer_get_length(conn_output(c)) == 0)
			session_down(sess, sess->fail_why);
		return;
	}
	mux_set_time(sess->mux, session_now_us());
	session_flush(sess);
}

/* conn: EOF or error. */
static void
conn_failed(struct conn *c, const char *why, void *arg)
{

	(void)c;
	session_down(arg, why);
}

/*
 * mux: the peer broke the protocol (${why}).  Stop reading, let the queued
 * Go Away reach the peer (for at most LINGER_MS), then go down.
 */
static void
protocol_error(struct mux *m, const char *why, void *arg)
{
	struct session *sess = arg;
	struct timeval tv = ms_timeval(LINGER_MS);

	(void)m;
	sess->lingering = 1;
	sess->fail_why = why;
	conn_read(sess->conn, 0);
	conn_set_lowat(sess->conn, 0);
	event_add(sess->down_ev, &tv);		/* the deadline */
	event_active(sess->flush_ev, EV_WRITE, 0);
}

/* mux: a ping of ours was answered; the first answer shows the peer speaks
 * yamux, which an open TCP connection alone does not. */
static void
pong(struct mux *m, uint64_t rtt_us, void *arg)
{
	struct session *sess = arg;

	(void)m;
	(void)rtt_us;
	if (sess->answered)
		return;
	sess->answered = 1;
	event_del(sess->answer_ev);
	if (sess->h.on_answered)
		sess->h.on_answered(sess, sess->arg);
}

int
session_answered(const struct session *sess)
{

	return (sess->answered);
}

int
session_flushed(const struct session *sess)
{

	return (sess->why != NULL || (!mux_output_pending(sess->mux) &&
	    conn_unsent(sess->conn) == 0));
}

/* tick_ev: ping every keepalive; a link silent for timeout is dead. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;
	uint64_t now = session_now_us();

	(void)fd;
	(void)what;
	mux_set_time(sess->mux, now);
	if (sess->timeout_us && now - sess->last_rx >= sess->timeout_us) {
		session_down(sess, "timed out: no frame from the peer");
		return;
	}
	if (sess->keepalive_us && now - sess->last_ping >= sess->keepalive_us) {
		sess->last_ping = now;
		mux_ping(sess->mux);
	}
}

/* answer_ev: the peer has not answered our first ping in time: whatever
 * accepted the connection, or dialed it, does not speak yamux (or is
 * dying). */
static void
answer_late_cb(evutil_socket_t fd, short what, void *arg)
{

	(void)fd;
	(void)what;
	session_down(arg, "no answer to our first ping within connect_timeout");
}

/* down_ev: tell the owner, from the event loop, that the session ended. */
static void
down_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;

	(void)fd;
	(void)what;
	sess->h.on_down(sess, sess->why ? sess->why : sess->fail_why,
	    sess->arg);
}

/* mux: the peer opened a stream; ask the owner. */
static int
stream_open(struct mux *m, struct mux_stream *s, void *arg)
{
	struct session *sess = arg;

	(void)m;
	return (sess->h.on_stream_open(sess, s, sess->arg));
}

/* mux: a peer's open was refused by a limit; tell the owner. */
static void
stream_refused(struct mux *m, uint32_t id, void *arg)
{
	struct session *sess = arg;

	(void)m;
	(void)id;
	if (sess->h.on_stream_refused != NULL)
		sess->h.on_stream_refused(sess, sess->arg);
}

/* mux: the peer sent Go Away. */
static void
goaway(struct mux *m, uint32_t code, void *arg)
{
	struct session *sess = arg;

	(void)m;
	if (sess->h.on_goaway)
		sess->h.on_goaway(sess, code, sess->arg);
}

/* Start a session on ${conn}. */
struct session *
session_new(struct event_base *base, struct conn *conn,
    const struct session_params *params, const struct session_handlers *h,
    void *arg)
{
	static const struct conn_handlers ch = {
		conn_readable, conn_drained, conn_failed
	};
	struct session *sess;
	struct mux_callbacks cb = {
		.on_stream_open = stream_open,
		.on_stream_readable = h->on_stream_readable,
		.on_stream_writable = h->on_stream_writable,
		.on_stream_pull = h->on_stream_pull,
		.on_stream_close = h->on_stream_close,
		.on_pong = pong,
		.on_goaway = goaway,
		.on_protocol_error = protocol_error,
		.want_output = want_output,
		.on_stream_refused = stream_refused,
	};
	struct timeval tv;

	if ((sess = calloc(1, sizeof(*sess))) == NULL)
		goto err0;
	sess->conn = conn;
	sess->h = *h;
	sess->arg = arg;
	sess->last_rx = sess->last_ping = session_now_us();
	sess->frame_max = params->mux.frame_max;
	if ((sess->mux = mux_new(&params->mux, &cb, sess)) == NULL)
		goto err1;
	mux_set_time(sess->mux, sess->last_rx);
	if ((sess->flush_ev = event_new(base, -1, 0, flush_cb, sess)) == NULL)
		goto err2;
	if ((sess->down_ev = event_new(base, -1, 0, down_cb, sess)) == NULL)
		goto err3;
	if ((sess->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb,
	    sess)) == NULL)
		goto err4;
	if ((sess->answer_ev = evtimer_new(base, answer_late_cb, sess)) == NULL)
		goto err5;
	if (params->answer_ms > 0) {
		tv = ms_timeval(params->answer_ms);
		if (event_add(sess->answer_ev, &tv))
			goto err6;
	}

	if (session_set_liveness(sess, params->keepalive_ms,
	    params->timeout_ms))
		goto err6;

	/* A first ping at once: the round trip is known before bulk data
	 * needs it for window auto-tuning, and the peer shows it speaks
	 * yamux by answering. */
	if (mux_ping(sess->mux))
		goto err6;
	session_tune(sess);
	conn_set_handlers(conn, &ch, sess);
	return (sess);

err6:
	event_free(sess->answer_ev);
err5:
	event_free(sess->tick_ev);
err4:
	event_free(sess->down_ev);
err3:
	event_free(sess->flush_ev);
err2:
	mux_free(sess->mux);
err1:
	free(sess);
err0:
	return (NULL);
}

int
session_set_liveness(struct session *sess, uint64_t keepalive_ms,
    uint64_t timeout_ms)
{
	uint64_t tick_ms = keepalive_ms;
	struct timeval tv;

	sess->keepalive_us = keepalive_ms * 1000;
	sess->timeout_us = timeout_ms * 1000;
	/* Tick often enough to notice a timeout within a quarter of it. */
	if (timeout_ms && (tick_ms == 0 || tick_ms > timeout_ms / 4))
		tick_ms = timeout_ms / 4;
	if (tick_ms == 0)
		return (event_del(sess->tick_ev));
	tv = ms_timeval(tick_ms);
	return (event_add(sess->tick_ev, &tv));
}

/* Free ${sess} and close its connection. */
void
session_free(struct session *sess)
{

	if (sess == NULL)
		return;
	/* Streams learn of the end first, while the session is whole. */
	mux_free(sess->mux);
	event_free(sess->answer_ev);
	event_free(sess->tick_ev);
	event_free(sess->down_ev);
	event_free(sess->flush_ev);
	conn_free(sess->conn);
	free(sess);
}

struct mux *
session_mux(struct session *sess)
{

	return (sess->mux);
}

struct session *
session_of(struct mux_stream *s)
{

	return (mux_callback_arg(mux_stream_session(s)));
}

/* Send Go Away ${code} on ${sess}. */
void
session_goaway(struct session *sess, uint32_t code)
{

	mux_goaway(sess->mux, code);
}
