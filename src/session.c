/*
 * session: see session.h.
 */
#include <netinet/in.h>
#include <linux/tcp.h>	/* struct tcp_info with tcpi_delivery_rate */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "mux/frame.h"
#include "ms.h"
#include "resume.h"
#include "session.h"

/*
 * Output is pulled from the engine while fewer than 'queue' bytes wait in
 * the link's buffer, 'queue' bytes at a time, and the kernel is asked to
 * wake us when fewer than 'queue' bytes are unsent (TCP_NOTSENT_LOWAT).
 * What waits there waits ahead of every frame the fair scheduler picks
 * next, so 'queue' follows the link's delivery rate: the larger of
 * QUEUE_US and an eighth of the round trip worth of it, within
 * [QUEUE_MIN, QUEUE_MAX].  On loopback that is the maximum (big writev
 * batches); on a LAN at 100 Mbit/s about 3 KiB, so a small frame behind
 * bulk data waits a fraction of a millisecond, not tens of them.  Across
 * a WAN the round trip's share keeps the unsent data from running dry
 * between two wake-ups: with less, the connection is application-limited
 * whenever it does, and BBR, which ignores such rounds when it looks for
 * the end of its start-up, stays in start-up pacing at almost 3x the
 * bottleneck (40 % of the packets dropped at 50 ms / 100 Mbit/s with 3
 * KiB; docs/PERFORMANCE.md, WAN).  An eighth of the round trip costs the
 * small frame at most that much on top of the round trip it pays anyway.
 * Data frames are cut at half the queue (at least FRAME_MIN, at most the
 * engine's frame_max): a 16 KiB frame alone is 1.3 ms at 100 Mbit/s, and
 * the smaller bursts also overflow a shallow bottleneck queue far less
 * often.
 */
#define QUEUE_US	250
#define QUEUE_RTT_PART	8
#define QUEUE_MIN	(2 * 1024)
#define QUEUE_MAX	(512 * 1024)
#define FRAME_MIN	1024
/* How often the delivery rate is read (TCP_INFO). */
#define TUNE_US		100000
/* Stop reading the link while this much is unprocessed (input paused). */
#define IN_HIWAT	(1024 * 1024)
/* How long an acknowledgement of bytes received waits for other output
 * to ride on before it goes alone (PROTOCOL.md section 11.6): the peer
 * keeps those bytes meanwhile. */
#define ACK_DELAY_MS	20
/* A session that failed gets this long to send its Go Away. */
#define LINGER_MS	1000

/* How a session's end, deferred to the event loop (down_ev), goes on. */
enum session_end {
	END_DOWN,		/* on_down: it is over */
	END_LOSE,		/* hold it, or on_down if it cannot be */
	END_REFUSED		/* on_refused: the peer would not resume it */
};

/* Where a resumption of this session on its connection stands. */
enum resume_state {
	RS_NONE,		/* none under way */
	RS_ASKED,		/* dialer: RESUME sent; listener: CHALLENGE
				 * sent for the session rsid */
	RS_PROVEN		/* both proved; the state exchange runs */
};

struct session {
	struct mux	*mux;
	struct conn	*conn;		/* NULL while held */
	struct event	*flush_ev;	/* deferred output pull */
	struct event	*tick_ev;	/* keepalive and timeout */
	struct event	*down_ev;	/* deferred end; linger deadline */
	struct event	*answer_ev;	/* the first ping's answer deadline */
	struct event	*hold_ev;	/* resume_timeout, while held */
	struct event	*ack_ev;	/* an acknowledgement is due */
	struct session_handlers h;
	void		*arg;
	uint64_t	keepalive_us, timeout_us, answer_ms, resume_ms;
	uint64_t	last_rx, last_ping;
	const char	*why;		/* set once it is going down */
	enum session_end end;		/* ... and how it goes on */
	const char	*fail_why;	/* protocol error being lingered on */
	size_t		queue;		/* link bytes queued below the mux */
	uint32_t	frame_max;	/* the engine's configured frame_max */
	uint64_t	tuned;		/* when queue was last set */
	int		dialer;		/* this side dialed the link */
	int		lingering;	/* flushing a final Go Away */
	int		answered;	/* the peer answered a ping */
	int		up;		/* ... and on_answered was called */

	/* Resumption (docs/PROTOCOL.md section 11). */
	int		secret_ok;	/* HELLO went both ways */
	struct resume_secret sec;
	struct resume_hello hello;	/* ours, the peer's to come */
	int		has_pin;	/* TLS: the peer's key is pin */
	uint8_t		pin[32];
	enum resume_state rstate;
	uint8_t		nd[RESUME_NONCE_LEN], nl[RESUME_NONCE_LEN];
	uint8_t		rsid[RESUME_ID_LEN];	/* listener: named by peer */
	struct session	*handover;	/* listener: proven to resume it */
	uint64_t	held_since;	/* 0 unless held (or resuming) */
	uint64_t	attached_at;	/* when conn became this session's */
	char		lost_why[160];
};

static const struct conn_handlers conn_cbs;

uint64_t
session_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

/*
 * End ${sess} because of ${why}, going on as ${end} says, from the event
 * loop (a callback of the connection or the engine may be running).
 */
static void
session_end(struct session *sess, enum session_end end, const char *why)
{

	if (sess->why != NULL)
		return;
	sess->why = why;
	sess->end = end;
	if (sess->conn != NULL)
		conn_read(sess->conn, 0);
	event_active(sess->down_ev, EV_TIMEOUT, 0);
}

/* ${sess} is over because of ${why}. */
static void
session_down(struct session *sess, const char *why)
{

	session_end(sess, END_DOWN, why);
}

/* The connection of ${sess} is lost (${why}): hold the session if it can
 * be resumed, else it is over. */
static void
session_lose(struct session *sess, const char *why)
{

	session_end(sess, END_LOSE, why);
}

/*
 * Flush what ${sess} queued (a final Go Away or REFUSE), for at most
 * LINGER_MS, then go down because of ${why}; read nothing more meanwhile.
 */
static void
session_linger(struct session *sess, const char *why)
{
	struct timeval tv = ms_timeval(LINGER_MS);

	sess->lingering = 1;
	sess->fail_why = why;
	conn_read(sess->conn, 0);
	conn_set_lowat(sess->conn, 0);
	event_add(sess->down_ev, &tv);		/* the deadline */
	event_active(sess->flush_ev, EV_WRITE, 0);
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
		q = ti.tcpi_delivery_rate * (ti.tcpi_rtt / QUEUE_RTT_PART >
		    QUEUE_US ? ti.tcpi_rtt / QUEUE_RTT_PART : QUEUE_US) /
		    1000000;
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

static void session_hand_over(struct session *);

/* Pull output from the engine into the link while its buffer is short. */
static void
session_flush(struct session *sess)
{
	struct evbuffer *out, *in;

	if (sess->conn == NULL)		/* held: nothing goes */
		return;
	out = conn_output(sess->conn);
	in = conn_input(sess->conn);
	if (sess->lingering) {
		mux_output(sess->mux, out, 0);	/* only the last frames */
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
		if (sess->handover != NULL) {
			session_hand_over(sess);	/* sess is gone */
			return;
		}
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
	if (sess->handover != NULL) {
		session_hand_over(sess);	/* sess is gone */
		return;
	}
	left = evbuffer_get_length(in);
	if (left < before || left >= FRAME_HDR_LEN)
		sess->last_rx = now;
	if (mux_ack_pending(sess->mux) &&
	    !event_pending(sess->ack_ev, EV_TIMEOUT, NULL)) {
		struct timeval tv = ms_timeval(ACK_DELAY_MS);

		event_add(sess->ack_ev, &tv);
	}
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
	session_lose(arg, why);
}

static const struct conn_handlers conn_cbs = {
	conn_readable, conn_drained, conn_failed
};

/*
 * mux: the peer broke the protocol (${why}).  Stop reading, let the queued
 * Go Away reach the peer (for at most LINGER_MS), then go down.
 */
static void
protocol_error(struct mux *m, const char *why, void *arg)
{

	(void)m;
	session_linger(arg, why);
}

/* Tell the owner of ${sess} that it is up, once its peer answered a ping
 * and, when both offered resumption, HELLO went both ways: until then an
 * accepted peer may yet resume another session. */
static void
session_check_up(struct session *sess)
{

	if (sess->up || !sess->answered ||
	    (mux_ext(sess->mux) && !sess->secret_ok))
		return;
	sess->up = 1;
	event_del(sess->answer_ev);
	if (sess->h.on_answered)
		sess->h.on_answered(sess, sess->arg);
}

/* mux: a ping of ours was answered; the first answer shows the peer speaks
 * yamux, which an open TCP connection alone does not. */
static void
pong(struct mux *m, uint64_t rtt_us, void *arg)
{
	struct session *sess = arg;

	(void)m;
	(void)rtt_us;
	sess->answered = 1;
	session_check_up(sess);
}

int
session_answered(const struct session *sess)
{

	return (sess->up);
}

int
session_flushed(const struct session *sess)
{

	return (sess->why != NULL || sess->conn == NULL ||
	    (!mux_output_pending(sess->mux) && conn_unsent(sess->conn) == 0));
}

int
session_held(const struct session *sess)
{

	return (sess->conn == NULL);
}

int
session_resuming(const struct session *sess)
{

	return (sess->conn != NULL && sess->held_since != 0);
}

int
session_resumable(const struct session *sess)
{

	return (sess->secret_ok && sess->resume_ms > 0 &&
	    !mux_is_closing(sess->mux));
}

int
session_is(const struct session *sess, const uint8_t *id)
{

	return (session_resumable(sess) &&
	    memcmp(sess->sec.id, id, RESUME_ID_LEN) == 0);
}

void
session_id_hex(const struct session *sess, char *buf, size_t len)
{
	size_t i;

	snprintf(buf, len, "-");
	for (i = 0; session_resumable(sess) && i < RESUME_ID_LEN &&
	    2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, len - 2 * i, "%02x", sess->sec.id[i]);
}

int
session_same_peer(const struct session *a, const struct session *b)
{

	if (!a->has_pin || !b->has_pin)
		return (-1);
	return (memcmp(a->pin, b->pin, sizeof(a->pin)) == 0);
}

void
session_probe(struct session *sess)
{

	mux_set_time(sess->mux, session_now_us());
	mux_ping(sess->mux);
}

int
session_heard_since(const struct session *sess, uint64_t t)
{

	return (sess->conn != NULL && sess->last_rx > t);
}

uint32_t
session_held_channels(const struct session *sess)
{

	return (sess->held_since != 0 ? mux_stream_count(sess->mux) : 0);
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
		session_lose(sess, "timed out: no frame from the peer");
		return;
	}
	if (sess->keepalive_us && now - sess->last_ping >= sess->keepalive_us) {
		sess->last_ping = now;
		mux_ping(sess->mux);
	}
}

/* answer_ev: the peer has not answered our first ping in time (whatever
 * accepted the connection, or dialed it, does not speak yamux, or is
 * dying), or a resumption did not finish in time. */
static void
answer_late_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;

	(void)fd;
	(void)what;
	if (sess->held_since != 0)
		session_lose(sess, "resumption did not finish within "
		    "connect_timeout");
	else
		session_down(sess, "no answer to our first ping within "
		    "connect_timeout");
}

/* ack_ev: no output came to carry the acknowledgement: send it alone. */
static void
ack_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;

	(void)fd;
	(void)what;
	mux_ack_flush(sess->mux);
}

/* hold_ev: ${arg} was held for resume_timeout: it is over. */
static void
hold_cb(evutil_socket_t fd, short what, void *arg)
{

	(void)fd;
	(void)what;
	session_down(arg, "not resumed within resume_timeout");
}

/* Keep ${sess}'s timers for a connection running: the first ping's (or a
 * resumption's) deadline if ${answer}, keepalive and timeout. */
static int
session_arm(struct session *sess, int answer)
{
	struct timeval tv = ms_timeval(sess->answer_ms);

	sess->last_rx = sess->last_ping = session_now_us();
	if (answer && sess->answer_ms > 0 && event_add(sess->answer_ev, &tv))
		return (-1);
	return (session_set_liveness(sess, sess->keepalive_us / 1000,
	    sess->timeout_us / 1000, sess->resume_ms));
}

/*
 * Hold ${sess} after its connection was lost (${why}), if it can be
 * resumed: the engine forgets what was in flight, the connection goes, and
 * resume_timeout runs from the first loss.  Returns 0, or -1 if it cannot
 * be held.
 */
static int
session_hold(struct session *sess, const char *why)
{
	uint64_t now = session_now_us(), held_us, left_us;
	struct timeval tv;

	if (!session_resumable(sess) || sess->lingering)
		return (-1);
	mux_detach(sess->mux);
	conn_free(sess->conn);
	sess->conn = NULL;
	sess->queue = 0;
	sess->rstate = RS_NONE;
	event_del(sess->tick_ev);
	event_del(sess->answer_ev);
	event_del(sess->ack_ev);
	if (sess->held_since == 0)
		sess->held_since = now;
	held_us = now - sess->held_since;
	left_us = sess->resume_ms * 1000 > held_us ?
	    sess->resume_ms * 1000 - held_us : 0;
	tv = ms_timeval(left_us / 1000);
	event_add(sess->hold_ev, &tv);
	snprintf(sess->lost_why, sizeof(sess->lost_why), "%s", why);
	sess->why = NULL;
	sess->h.on_lost(sess, sess->lost_why, sess->arg);
	return (0);
}

/* down_ev: tell the owner, from the event loop, how the session ended. */
static void
down_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *sess = arg;
	const char *why = sess->why ? sess->why : sess->fail_why;

	(void)fd;
	(void)what;
	if (sess->end == END_LOSE && session_hold(sess, why) == 0)
		return;
	if (sess->end == END_REFUSED)
		sess->h.on_refused(sess, why, sess->arg);
	else
		sess->h.on_down(sess, why, sess->arg);
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

/* Send our HELLO on ${sess}.  Returns 0 or -1. */
static int
hello_send(struct session *sess)
{

	if (resume_hello_new(&sess->hello))
		return (-1);
	return (mux_ext_send(sess->mux, RESUME_HELLO, sess->hello.msg,
	    sizeof(sess->hello.msg)));
}

/*
 * mux: the peer's first frame says whether it offers resumption (${ext}).
 * A new session on a dialed link says HELLO and runs; a held one asks to
 * resume.  An accepted one waits for the peer's HELLO or RESUME.
 */
static void
hello(struct mux *m, int ext, void *arg)
{
	struct session *sess = arg;
	uint8_t msg[RESUME_RESUME_LEN];

	if (!ext && sess->held_since != 0) {
		session_end(sess, END_REFUSED, "the peer no longer offers "
		    "resumption");
	} else if (!ext) {
		mux_open_gate(m);
	} else if (sess->held_since != 0) {
		memcpy(msg, sess->sec.id, RESUME_ID_LEN);
		if (resume_nonce(sess->nd) == 0) {
			memcpy(msg + RESUME_ID_LEN, sess->nd, RESUME_NONCE_LEN);
			if (mux_ext_send(m, RESUME_RESUME, msg, sizeof(msg)) == 0)
				sess->rstate = RS_ASKED;
		}
	} else if (sess->dialer) {
		if (hello_send(sess) == 0)
			mux_open_gate(m);
	}
}

/* Nonzero if ${sess}'s peer has TLS key ${pin} (NULL: a plain link). */
static int
pin_is(const struct session *sess, const uint8_t *pin)
{

	return (pin == NULL ? !sess->has_pin :
	    sess->has_pin && memcmp(sess->pin, pin, sizeof(sess->pin)) == 0);
}

/* Refuse the resumption the peer of ${sess} asked for, with ${reason},
 * because of ${why}, then close. */
static void
refuse(struct session *sess, enum resume_refusal reason, const char *why)
{
	uint8_t r = (uint8_t)reason;

	(void)mux_ext_send(sess->mux, RESUME_REFUSE, &r, 1);
	session_linger(sess, why);
}

/*
 * The peer of ${sess} (accepted) asks to resume the session ${p} names,
 * with its nonce: challenge it, proving that we hold that session too, or
 * refuse.  Returns 0, or -1 if malformed.
 */
static int
resume_asked(struct session *sess, const uint8_t *p, size_t len)
{
	uint8_t msg[RESUME_CHALLENGE_LEN];
	struct session *held;

	if (sess->dialer || sess->secret_ok || sess->rstate != RS_NONE ||
	    len != RESUME_RESUME_LEN || sess->h.find == NULL)
		return (-1);
	held = sess->h.find(p, sess->arg);
	if (held == NULL || held == sess) {
		refuse(sess, REFUSE_UNKNOWN, "resumption refused: no such "
		    "session here");
	} else if (!session_resumable(held)) {
		refuse(sess, REFUSE_OFF, "resumption refused: the session is "
		    "ending");
	} else if (!pin_is(held, sess->has_pin ? sess->pin : NULL)) {
		refuse(sess, REFUSE_IDENTITY, "resumption refused: the peer's "
		    "TLS identity is not the session's");
	} else if (resume_nonce(sess->nl) == 0) {
		memcpy(sess->rsid, p, RESUME_ID_LEN);
		memcpy(sess->nd, p + RESUME_ID_LEN, RESUME_NONCE_LEN);
		memcpy(msg, sess->nl, RESUME_NONCE_LEN);
		resume_proof(&held->sec, 0, sess->nd, sess->nl,
		    msg + RESUME_NONCE_LEN);
		if (mux_ext_send(sess->mux, RESUME_CHALLENGE, msg,
		    sizeof(msg)) == 0)
			sess->rstate = RS_ASKED;
	}
	return (0);
}

/*
 * The peer of held ${sess} (we dialed) answers our RESUME with the
 * challenge ${p}: if its proof is right, prove ourselves and exchange
 * state.  A wrong proof means someone else answered: try again later.
 * Returns 0, or -1 if malformed.
 */
static int
resume_challenged(struct session *sess, const uint8_t *p, size_t len)
{
	uint8_t proof[RESUME_PROOF_LEN];

	if (!sess->dialer || sess->rstate != RS_ASKED ||
	    len != RESUME_CHALLENGE_LEN)
		return (-1);
	memcpy(sess->nl, p, RESUME_NONCE_LEN);
	if (!resume_proof_ok(&sess->sec, 0, sess->nd, sess->nl,
	    p + RESUME_NONCE_LEN)) {
		session_lose(sess, "the peer could not prove that it holds "
		    "the session");
		return (0);
	}
	resume_proof(&sess->sec, 1, sess->nd, sess->nl, proof);
	if (mux_ext_send(sess->mux, RESUME_PROOF, proof, sizeof(proof)) ||
	    mux_resume_start(sess->mux))
		return (0);	/* the session failed */
	sess->rstate = RS_PROVEN;
	return (0);
}

/*
 * The peer of ${sess} (accepted) proves with ${p} that it resumes the
 * session it named: hand the connection over to that session (once
 * mux_input returns: return 1 stops it here).  A wrong proof closes this
 * connection; the held session waits on for the real peer.
 */
static int
resume_proven(struct session *sess, const uint8_t *p, size_t len)
{
	struct session *held;

	if (sess->dialer || sess->rstate != RS_ASKED ||
	    len != RESUME_PROOF_LEN)
		return (-1);
	held = sess->h.find(sess->rsid, sess->arg);
	if (held == NULL || !session_resumable(held)) {
		refuse(sess, REFUSE_UNKNOWN, "resumption refused: the session "
		    "ended meanwhile");
		return (0);
	}
	if (!resume_proof_ok(&held->sec, 1, sess->nd, sess->nl, p)) {
		session_down(sess, "resumption refused: wrong proof (the peer "
		    "knows the session's id, not its key)");
		return (0);
	}
	sess->handover = held;
	return (1);
}

/* mux: extension message ${kind} of ${len} bytes at ${p} from the peer. */
static int
ext_message(struct mux *m, unsigned kind, const uint8_t *p, size_t len,
    void *arg)
{
	struct session *sess = arg;
	static const char *const refusals[] = {
		[REFUSE_UNKNOWN] = "the peer does not know the session (it "
		    "restarted?)",
		[REFUSE_IDENTITY] = "the peer says our TLS identity is not "
		    "the session's",
		[REFUSE_OFF] = "the peer has resumption off or is leaving",
	};

	switch (kind) {
	case RESUME_HELLO:
		if (sess->secret_ok || sess->rstate != RS_NONE ||
		    sess->held_since != 0 ||
		    (!sess->dialer && hello_send(sess)) ||
		    resume_hello_finish(&sess->hello, sess->dialer, p, len,
		    &sess->sec))
			return (-1);
		sess->secret_ok = 1;
		mux_open_gate(m);
		session_check_up(sess);
		return (0);
	case RESUME_RESUME:
		return (resume_asked(sess, p, len));
	case RESUME_CHALLENGE:
		return (resume_challenged(sess, p, len));
	case RESUME_PROOF:
		return (resume_proven(sess, p, len));
	case RESUME_REFUSE:
		if (!sess->dialer || sess->rstate != RS_ASKED || len != 1)
			return (-1);
		session_end(sess, END_REFUSED, p[0] < sizeof(refusals) /
		    sizeof(refusals[0]) && refusals[p[0]] != NULL ?
		    refusals[p[0]] : "the peer refused");
		return (1);
	default:
		return (-1);
	}
}

/* mux: the state exchange is over; ${sess} runs on its new connection. */
static void
resumed(struct mux *m, uint64_t resent, void *arg)
{
	struct session *sess = arg;
	uint64_t now = session_now_us(), held_us;

	sess->rstate = RS_NONE;
	event_del(sess->hold_ev);
	event_del(sess->answer_ev);
	mux_ping(m);		/* the round trip of the new path */
	held_us = now - sess->held_since;
	sess->held_since = 0;
	sess->h.on_resumed(sess, held_us, now - sess->attached_at, resent,
	    sess->arg);
}

/* Run ${sess} on ${conn} from now on: handlers, timers, the queue size. */
static int
session_use(struct session *sess, struct conn *conn)
{

	sess->conn = conn;
	sess->queue = 0;
	sess->attached_at = session_now_us();
	conn_set_handlers(conn, &conn_cbs, sess);
	if (session_arm(sess, 1))
		return (-1);
	session_tune(sess);
	return (0);
}

/*
 * ${sess} (accepted) was proven to resume sess->handover: that session
 * takes the connection over, stale one or not (the peer's new connection
 * replaces it), and ${sess} is freed by its owner.  The bytes after the
 * proof (the peer's state) are the taker's.  ${sess} is gone on return.
 */
static void
session_hand_over(struct session *sess)
{
	struct session *held = sess->handover;
	struct conn *conn = sess->conn;

	sess->conn = NULL;
	sess->handover = NULL;
	if (held->conn != NULL) {
		mux_detach(held->mux);
		conn_free(held->conn);
		if (held->held_since == 0)
			held->held_since = session_now_us();
	}
	mux_attach(held->mux, 0);
	held->rstate = RS_PROVEN;
	/* The loss of the old connection, if it was just noticed, is
	 * moot now. */
	held->why = NULL;
	event_del(held->down_ev);
	/* The owner first (it frees ${sess}), so that what follows is
	 * logged with the new peer's address. */
	sess->h.on_handover(sess, held, sess->arg);
	if (session_use(held, conn) || mux_resume_start(held->mux))
		session_lose(held, "out of memory");
	else
		conn_readable(conn, held);
}

/* Start a session on ${conn}. */
struct session *
session_new(struct event_base *base, struct conn *conn,
    const struct session_params *params, const struct session_handlers *h,
    void *arg)
{
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
		.on_hello = hello,
		.on_ext = ext_message,
		.on_resumed = resumed,
	};
	struct mux_config mc = params->mux;

	if ((sess = calloc(1, sizeof(*sess))) == NULL)
		goto err0;
	sess->h = *h;
	sess->arg = arg;
	sess->dialer = mc.dialer;
	sess->frame_max = mc.frame_max;
	sess->keepalive_us = params->keepalive_ms * 1000;
	sess->timeout_us = params->timeout_ms * 1000;
	sess->answer_ms = params->answer_ms;
	sess->resume_ms = params->resume_ms;
	if ((sess->has_pin = params->peer_pin != NULL))
		memcpy(sess->pin, params->peer_pin, sizeof(sess->pin));
	mc.resumable = params->resume_ms > 0 && h->on_lost != NULL;
	if ((sess->mux = mux_new(&mc, &cb, sess)) == NULL)
		goto err1;
	mux_set_time(sess->mux, session_now_us());
	if ((sess->flush_ev = event_new(base, -1, 0, flush_cb, sess)) == NULL)
		goto err2;
	if ((sess->down_ev = event_new(base, -1, 0, down_cb, sess)) == NULL)
		goto err3;
	if ((sess->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb,
	    sess)) == NULL)
		goto err4;
	if ((sess->answer_ev = evtimer_new(base, answer_late_cb, sess)) == NULL)
		goto err5;
	if ((sess->hold_ev = evtimer_new(base, hold_cb, sess)) == NULL)
		goto err6;
	if ((sess->ack_ev = evtimer_new(base, ack_cb, sess)) == NULL)
		goto err7;
	/* A first ping at once (the offer, if resumable): the round trip is
	 * known before bulk data needs it for window auto-tuning, and the
	 * peer shows it speaks yamux by answering. */
	if (mux_ping(sess->mux) || session_use(sess, conn))
		goto err8;
	return (sess);

err8:
	event_free(sess->ack_ev);
err7:
	event_free(sess->hold_ev);
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

/* Resume held ${sess} on ${conn}. */
int
session_attach(struct session *sess, struct conn *conn, const uint8_t *pin)
{

	if (sess->conn != NULL || !pin_is(sess, pin))
		return (-1);
	mux_attach(sess->mux, 1);
	mux_ping(sess->mux);		/* the offer */
	if (session_use(sess, conn)) {
		sess->conn = NULL;
		return (-1);
	}
	return (0);
}

int
session_set_liveness(struct session *sess, uint64_t keepalive_ms,
    uint64_t timeout_ms, uint64_t resume_ms)
{
	uint64_t tick_ms = keepalive_ms;
	struct timeval tv;

	sess->keepalive_us = keepalive_ms * 1000;
	sess->timeout_us = timeout_ms * 1000;
	sess->resume_ms = resume_ms;
	if (sess->conn == NULL)		/* held: no ticks */
		return (0);
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
	resume_hello_clear(&sess->hello);
	event_free(sess->ack_ev);
	event_free(sess->hold_ev);
	event_free(sess->answer_ev);
	event_free(sess->tick_ev);
	event_free(sess->down_ev);
	event_free(sess->flush_ev);
	if (sess->conn != NULL)
		conn_free(sess->conn);
	OPENSSL_cleanse(&sess->sec, sizeof(sess->sec));
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
