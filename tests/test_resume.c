/*
 * Unit tests of session resumption in the mux engine (docs/PROTOCOL.md
 * section 11): two engines back to back whose "connection" (the bytes in
 * flight between them) is cut at any byte, then resumed on a new one.
 * Every byte an application writes is a known stream (it_gen) and every
 * byte read is checked against it: nothing may be lost, duplicated or
 * reordered, half-closes keep their meaning, and a reset stays a reset.
 *
 * The engine's source is included so tests can reach its state.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "itest.h"
#include "mux/mux.c"
#include "resume.h"

#define MAXCH	4096

/* One stream as an application at one end sees it. */
struct chan {
	struct mux_stream *s;		/* NULL once released or ended */
	uint32_t	id;
	uint64_t	tx, rx;		/* bytes written, bytes read */
	int		shut, eof, reset, released;
};

/* One end: its engine, the bytes arriving from the other, its channels. */
struct end {
	struct mux	*m;
	struct evbuffer	*in;
	int		resume;		/* on_hello: resume (1) or open (0) */
	int		hello, ext_seen, resumed, errors;
	int		reading;	/* read what arrives */
	uint64_t	resent;
	char		why[128];
	struct chan	ch[MAXCH];
	int		nch;
};

static struct end A, B;

/* The seed of the bytes stream ${id} carries from ${e}. */
static uint64_t
seed_of(const struct end *e, uint32_t id)
{

	return ((uint64_t)id * 2 + (e == &A));
}

/* The other end of ${e}. */
static struct end *
other(struct end *e)
{

	return (e == &A ? &B : &A);
}

/* The channel of ${e} for stream id ${id}, created if ${make}. */
static struct chan *
chan_of(struct end *e, uint32_t id, int make)
{
	int i;

	for (i = 0; i < e->nch; i++)
		if (e->ch[i].id == id)
			return (&e->ch[i]);
	if (!make)
		return (NULL);
	ck_assert_int_lt(e->nch, MAXCH);
	e->ch[e->nch].id = id;
	return (&e->ch[e->nch++]);
}

/* Read what ${c} of ${e} has and check it against the sender's stream. */
static void
chan_read(struct end *e, struct chan *c)
{
	struct evbuffer *b = evbuffer_new();
	unsigned char *p;
	size_t n;
	long bad;

	while (c->s != NULL && mux_stream_readable(c->s) > 0) {
		ck_assert_int_ge(mux_stream_read(c->s, b, 1 << 20), 0);
		n = evbuffer_get_length(b);
		p = evbuffer_pullup(b, -1);
		bad = it_verify(seed_of(other(e), c->id), c->rx, p, n);
		ck_assert_msg(bad < 0, "stream %u: byte %ju differs",
		    c->id, (uintmax_t)(c->rx + (uint64_t)bad));
		c->rx += n;
		evbuffer_drain(b, n);
	}
	if (c->s != NULL && mux_stream_eof(c->s))
		c->eof = 1;
	evbuffer_free(b);
}

static int
cb_open(struct mux *m, struct mux_stream *s, void *arg)
{
	struct end *e = arg;
	struct chan *c = chan_of(e, mux_stream_id(s), 1);

	(void)m;
	ck_assert_ptr_null(c->s);
	ck_assert_uint_eq(c->rx + c->tx, 0);
	c->s = s;
	mux_stream_set_arg(s, c);
	return (0);
}

/* The end a channel belongs to. */
static struct end *
end_of(struct chan *c)
{

	return (c >= A.ch && c < A.ch + MAXCH ? &A : &B);
}

static void
cb_readable(struct mux_stream *s, void *sarg)
{
	struct chan *c = sarg;

	(void)s;
	if (end_of(c)->reading)
		chan_read(end_of(c), c);
}

static void
cb_close(struct mux_stream *s, void *sarg, enum mux_close_reason why)
{
	struct chan *c = sarg;

	(void)s;
	if (why == MUX_CLOSE_RESET)
		c->reset = 1;
	c->s = NULL;
}

static void
cb_error(struct mux *m, const char *why, void *arg)
{
	struct end *e = arg;

	(void)m;
	e->errors++;
	snprintf(e->why, sizeof(e->why), "%s", why);
}

static void
cb_hello(struct mux *m, int ext, void *arg)
{
	struct end *e = arg;

	e->hello++;
	e->ext_seen = ext;
	if (e->resume && ext)
		ck_assert_int_eq(mux_resume_start(m), 0);
	else
		mux_open_gate(m);
}

static void
cb_resumed(struct mux *m, uint64_t resent, void *arg)
{
	struct end *e = arg;

	(void)m;
	e->resumed++;
	e->resent += resent;
}

static const struct mux_callbacks cbs = {
	.on_stream_open = cb_open,
	.on_stream_readable = cb_readable,
	.on_stream_close = cb_close,
	.on_protocol_error = cb_error,
	.on_hello = cb_hello,
	.on_resumed = cb_resumed,
};

/* Make ends A (dialer) and B, resumable as ${ra} and ${rb} say. */
static void
ends_init(int ra, int rb)
{
	struct mux_config ca, cb;

	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	mux_config_default(&ca, 1);
	mux_config_default(&cb, 0);
	ca.resumable = ra;
	cb.resumable = rb;
	ck_assert_ptr_nonnull(A.m = mux_new(&ca, &cbs, &A));
	ck_assert_ptr_nonnull(B.m = mux_new(&cb, &cbs, &B));
	A.in = evbuffer_new();
	B.in = evbuffer_new();
	A.reading = B.reading = 1;
	/* Each side's first frame: its (offer) ping. */
	mux_ping(A.m);
	mux_ping(B.m);
}

static void
ends_free(void)
{

	mux_free(A.m);
	mux_free(B.m);
	evbuffer_free(A.in);
	evbuffer_free(B.in);
}

/* Move up to ${budget} bytes of ${from}'s output to ${to} and process
 * them; with ${cut} >= 0, only the first ${cut} bytes arrive and the rest
 * is lost.  Returns the bytes produced. */
static size_t
deliver(struct end *from, struct end *to, size_t budget, long cut)
{
	struct evbuffer *wire = evbuffer_new();
	size_t n;

	ck_assert_int_ge(mux_output(from->m, wire, budget), 0);
	n = evbuffer_get_length(wire);
	if (cut >= 0 && (size_t)cut < n)
		evbuffer_remove_buffer(wire, to->in, (size_t)cut);
	else
		evbuffer_add_buffer(to->in, wire);
	evbuffer_free(wire);
	mux_input(to->m, to->in);
	return (n);
}

/* Decode the frames in ${buf} (without consuming) into ${h}, at most ${max};
 * returns the number of frames. */
static int
frames_of(struct evbuffer *buf, struct frame_hdr *h, int max)
{
	size_t off = 0, len = evbuffer_get_length(buf);
	unsigned char *p = evbuffer_pullup(buf, -1);
	int n = 0;

	while (n < max && off + FRAME_HDR_LEN <= len) {
		frame_decode(p + off, &h[n]);
		off += FRAME_HDR_LEN;
		if (h[n].type == FRAME_DATA || h[n].type == FRAME_EXT)
			off += h[n].length;
		n++;
	}
	return (n);
}

/* Exchange frames until neither end has anything to say. */
static void
pump(void)
{
	int i;

	for (i = 0; i < 100000; i++)
		if (deliver(&A, &B, 1 << 20, -1) +
		    deliver(&B, &A, 1 << 20, -1) == 0 &&
		    evbuffer_get_length(A.in) == 0 &&
		    evbuffer_get_length(B.in) == 0)
			return;
	ck_abort_msg("pump did not settle");
}

/* The connection is lost: what is in flight and unparsed is gone. */
static void
cut(void)
{

	evbuffer_drain(A.in, evbuffer_get_length(A.in));
	evbuffer_drain(B.in, evbuffer_get_length(B.in));
	mux_detach(A.m);
	mux_detach(B.m);
}

/* A new connection: both say hello and resume. */
static void
reconnect(void)
{

	A.resume = B.resume = 1;
	mux_attach(A.m, 1);
	mux_attach(B.m, 1);
	mux_ping(A.m);
	mux_ping(B.m);
}

/* Write ${n} more bytes of ${c}'s stream from end ${e}. */
static int
chan_write(struct end *e, struct chan *c, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	unsigned char *p = malloc(n);
	int rc;

	it_gen(seed_of(e, c->id), c->tx, p, n);
	evbuffer_add(b, p, n);
	rc = mux_stream_write(c->s, b);
	ck_assert_int_ge(rc, 0);
	c->tx += n;
	free(p);
	evbuffer_free(b);
	return (rc);
}

/* Open a channel from ${e} and write ${n} bytes on it. */
static struct chan *
chan_open(struct end *e, size_t n)
{
	struct mux_stream *s = mux_stream_open(e->m, NULL);
	struct chan *c;

	ck_assert_ptr_nonnull(s);
	c = chan_of(e, mux_stream_id(s), 1);
	c->s = s;
	mux_stream_set_arg(s, c);
	if (n > 0)
		chan_write(e, c, n);
	return (c);
}

/* Shut down ${c}'s sending side. */
static void
chan_shut(struct chan *c)
{

	if (c->s != NULL && !c->shut) {
		mux_stream_shutdown(c->s);
		c->shut = 1;
	}
}

/* Release ${c} once it read EOF and shut down. */
static void
chan_release(struct chan *c)
{

	if (c->s != NULL && c->shut && c->eof) {
		mux_stream_release(c->s);
		c->s = NULL;
		c->released = 1;
	}
}

/* End everything gracefully and check that every stream not reset here
 * ended with EOF after every byte, and that both engines are empty. */
static void
finish_all(void)
{
	struct end *e;
	int i, round;

	A.reading = B.reading = 1;
	for (round = 0; round < 4; round++) {
		for (e = &A; e != NULL; e = e == &A ? &B : NULL)
			for (i = 0; i < e->nch; i++) {
				chan_read(e, &e->ch[i]);
				chan_shut(&e->ch[i]);
				chan_release(&e->ch[i]);
			}
		pump();
	}
	for (e = &A; e != NULL; e = e == &A ? &B : NULL)
		for (i = 0; i < e->nch; i++) {
			struct chan *c = &e->ch[i], *p;

			if (c->reset)
				continue;
			ck_assert_msg(c->released, "stream %u not ended", c->id);
			/* It read EOF: all the peer wrote came before its FIN
			 * (even if the peer reset the stream later). */
			p = chan_of(other(e), c->id, 0);
			ck_assert_ptr_nonnull(p);
			ck_assert_msg(c->rx == p->tx, "stream %u: read %ju of "
			    "%ju", c->id, (uintmax_t)c->rx, (uintmax_t)p->tx);
		}
	ck_assert_uint_eq(mux_stream_count(A.m), 0);
	ck_assert_uint_eq(mux_stream_count(B.m), 0);
	ck_assert_uint_eq(mux_queued(A.m), 0);
	ck_assert_uint_eq(mux_queued(B.m), 0);
	ck_assert_uint_eq(mux_unacked(A.m), 0);
	ck_assert_uint_eq(mux_unsent(A.m), 0);
	ck_assert_uint_eq(mux_unsent(B.m), 0);
	ck_assert_int_eq(A.errors + B.errors, 0);
}

/* Both resumable: the offer is seen, and nothing else changes. */
START_TEST(offer_negotiated)
{
	struct chan *c;

	ends_init(1, 1);
	pump();
	ck_assert_int_eq(A.hello, 1);
	ck_assert_int_eq(B.hello, 1);
	ck_assert(mux_ext(A.m) && mux_ext(B.m));
	c = chan_open(&A, 100000);
	pump();
	ck_assert_uint_eq(chan_of(&B, c->id, 0)->rx, 100000);
	/* What arrived is acknowledged with the next output (here the
	 * answer to the open)... */
	ck_assert_uint_eq(mux_unacked(A.m), 0);
	/* ... or alone when the owner flushes: an idle stream keeps
	 * nothing. */
	chan_write(&A, c, 1000);
	pump();
	ck_assert_uint_eq(mux_unacked(A.m), 1000);
	ck_assert(mux_ack_pending(B.m));
	mux_ack_flush(B.m);
	pump();
	ck_assert_uint_eq(mux_unacked(A.m), 0);
	ck_assert(!mux_ack_pending(B.m));
	finish_all();
	ends_free();
}
END_TEST

/* One side plain: no extension either way, no frame of type 4. */
START_TEST(plain_peer_not_offered)
{
	struct evbuffer *out = evbuffer_new();
	struct frame_hdr h[64];
	int i, n, side;

	for (side = 0; side < 2; side++) {
		ends_init(side == 0, side == 1);
		chan_open(&A, 1000);
		chan_open(&B, 1000);
		pump();
		ck_assert(!mux_ext(A.m) && !mux_ext(B.m));
		/* What the resumable one sends after hello is plain yamux. */
		chan_open(side == 0 ? &A : &B, 10);
		mux_output(side == 0 ? A.m : B.m, out, 1 << 20);
		n = frames_of(out, h, 64);
		ck_assert_int_gt(n, 0);
		for (i = 0; i < n; i++)
			ck_assert_int_le(h[i].type, FRAME_GO_AWAY);
		evbuffer_drain(out, evbuffer_get_length(out));
		ends_free();
	}
	evbuffer_free(out);
}
END_TEST

/* A cut with data in flight both ways, opens, half-closes and a reset on
 * either side of it: after resuming everything arrives exactly once. */
START_TEST(cut_and_resume)
{
	struct chan *c1, *c2, *c3, *c4, *c5;

	ends_init(1, 1);
	pump();
	c1 = chan_open(&A, 300000);		/* bigger than a window */
	c2 = chan_open(&B, 50000);
	c3 = chan_open(&A, 1000);
	pump();
	chan_write(&B, chan_of(&B, c1->id, 0), 200000);
	chan_write(&A, c2 = chan_of(&A, c2->id, 0), 70000);
	chan_shut(c3);
	/* A part of it arrives, the rest is lost. */
	deliver(&A, &B, 1 << 20, 70001);
	deliver(&B, &A, 1 << 20, 12345);
	cut();
	/* While no connection is up. */
	chan_write(&A, c1, 5000);
	chan_shut(c1);
	c4 = chan_open(&A, 4000);		/* opened during the outage */
	c5 = chan_open(&B, 3000);
	chan_shut(c5);
	reconnect();
	pump();
	ck_assert_int_eq(A.resumed, 1);
	ck_assert_int_eq(B.resumed, 1);
	ck_assert_uint_gt(A.resent + B.resent, 0);
	ck_assert_uint_eq(chan_of(&B, c4->id, 0)->rx, 4000);
	ck_assert_uint_eq(chan_of(&A, c5->id, 0)->rx, 3000);
	ck_assert(chan_of(&A, c5->id, 0)->eof);
	ck_assert(chan_of(&B, c1->id, 0)->eof);
	finish_all();
	ends_free();
}
END_TEST

/* A SYN lost in the cut: the stream is opened again with all its data. */
START_TEST(lost_open_sent_again)
{
	struct chan *c;

	ends_init(1, 1);
	pump();
	c = chan_open(&A, 20000);
	deliver(&A, &B, 1 << 20, 0);		/* nothing arrives */
	cut();
	reconnect();
	pump();
	ck_assert_uint_eq(chan_of(&B, c->id, 0)->rx, 20000);
	finish_all();
	ends_free();
}
END_TEST

/* A reset whose RST is lost is still a reset after resuming. */
START_TEST(lost_reset_still_resets)
{
	struct chan *c, *p;

	ends_init(1, 1);
	pump();
	c = chan_open(&A, 1000);
	pump();
	p = chan_of(&B, c->id, 0);
	mux_stream_reset(p->s);
	p->s = NULL;
	p->reset = 1;
	deliver(&B, &A, 1 << 20, 0);		/* the RST is lost */
	cut();
	reconnect();
	pump();
	ck_assert(c->reset);
	finish_all();
	ends_free();
}
END_TEST

/* A released stream whose last acknowledgement was lost goes away. */
START_TEST(lost_fin_ack)
{
	struct chan *c, *p;

	ends_init(1, 1);
	pump();
	c = chan_open(&A, 1000);
	pump();
	p = chan_of(&B, c->id, 0);
	chan_shut(c);
	chan_shut(p);
	pump();
	chan_read(&B, p);
	chan_release(p);
	chan_release(c);
	/* B's FIN_ACK for A's FIN, or A's for B's, may be lost. */
	deliver(&A, &B, 1 << 20, 0);
	deliver(&B, &A, 1 << 20, 0);
	cut();
	reconnect();
	pump();
	finish_all();
	ends_free();
}
END_TEST

/* What a sender keeps is bounded by the window: with the receiver not
 * reading, about one window per stream, never more. */
START_TEST(kept_within_window)
{
	struct chan *c[8];
	int i, k;

	ends_init(1, 1);
	pump();
	B.reading = 0;
	for (i = 0; i < 8; i++)
		c[i] = chan_open(&A, 0);
	for (k = 0; k < 20; k++) {
		for (i = 0; i < 8; i++)
			if (mux_stream_queued(c[i]->s) < (1u << 20))
				chan_write(&A, c[i], 100000);
		pump();
		ck_assert_uint_le(mux_unacked(A.m), 8 * MUX_INITIAL_WINDOW);
	}
	/* Once the receiver acknowledged what it holds, the sender keeps
	 * nothing, read or not. */
	mux_ack_flush(B.m);
	pump();
	ck_assert_uint_eq(mux_unacked(A.m), 0);
	finish_all();
	ends_free();
}
END_TEST

/* Random operations and cuts at random bytes, many times over. */
START_TEST(random_cuts)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(_i + 1);
	struct end *e;
	struct chan *c;
	int step, cuts = 0;

#define RND(n)	((rng = rng * 6364136223846793005ull + 1442695040888963407ull), \
	(uint32_t)((rng >> 33) % (n)))
	ends_init(1, 1);
	pump();
	for (step = 0; step < 5000; step++) {
		e = RND(2) ? &A : &B;
		switch (RND(10)) {
		case 0:
			if (e->nch < MAXCH - 4 && !mux_is_closing(e->m))
				chan_open(e, RND(20000));
			break;
		case 1: case 2: case 3:
			if (e->nch == 0)
				break;
			c = &e->ch[RND((uint32_t)e->nch)];
			if (c->s != NULL && !c->shut &&
			    mux_stream_queued(c->s) < (512u << 10))
				chan_write(e, c, 1 + RND(100000));
			break;
		case 4:
			if (e->nch > 0 && RND(3) == 0)
				chan_shut(&e->ch[RND((uint32_t)e->nch)]);
			break;
		case 5:
			if (e->nch > 0 && RND(20) == 0) {
				c = &e->ch[RND((uint32_t)e->nch)];
				if (c->s != NULL) {
					mux_stream_reset(c->s);
					c->s = NULL;
					c->reset = 1;
				}
			}
			break;
		case 6:
			e->reading = !e->reading;
			if (e->reading && e->nch > 0)
				chan_read(e, &e->ch[RND((uint32_t)e->nch)]);
			break;
		case 7:
			if (e->nch > 0) {
				c = &e->ch[RND((uint32_t)e->nch)];
				chan_read(e, c);
				chan_release(c);
			}
			break;
		default:
			if (RND(12) == 0) {
				deliver(&A, &B, 1 << 20, RND(300000));
				deliver(&B, &A, 1 << 20, RND(300000));
				cut();
				cuts++;
				if (RND(2))	/* work while down */
					continue;
				reconnect();
			} else {
				deliver(&A, &B, RND(400000), -1);
				deliver(&B, &A, RND(400000), -1);
			}
		}
		ck_assert_msg(A.errors + B.errors == 0, "step %d: %s%s", step,
		    A.why, B.why);
	}
	if (A.m->gated)
		reconnect();
	finish_all();
	ck_assert_int_gt(cuts, 10);
	ends_free();
#undef RND
}
END_TEST

/* A state that claims more than was sent is a protocol error. */
START_TEST(state_beyond_sent)
{
	uint8_t e[STATE_ENTRY];
	struct chan *c;

	ends_init(1, 1);
	pump();
	c = chan_open(&A, 1000);
	pump();
	cut();
	A.resume = 1;
	mux_attach(A.m, 1);
	mux_ping(A.m);
	/* B's hello, then a state entry saying it received 2000 bytes. */
	{
		uint8_t buf[FRAME_HDR_LEN];
		struct frame_hdr h = { 0, FRAME_PING, FRAME_SYN, 0,
		    MUX_PING_OFFER };

		frame_encode(buf, &h);
		evbuffer_add(A.in, buf, sizeof(buf));
		h = (struct frame_hdr){ 0, FRAME_EXT, EXT_STATE, 0,
		    STATE_ENTRY };
		frame_encode(buf, &h);
		evbuffer_add(A.in, buf, sizeof(buf));
		put_be(e, c->id, 4);
		put_be(e + 4, 0, 4);
		put_be(e + 8, 2000, 8);
		put_be(e + 16, 0, 8);
		put_be(e + 24, 1000, 4);
		evbuffer_add(A.in, e, sizeof(e));
	}
	ck_assert_int_eq(mux_input(A.m, A.in), -1);
	ck_assert_str_eq(A.why, "malformed extension message");
	A.errors = 0;
	ends_free();
}
END_TEST

/* Stream frames before the session is set up, and extension frames from
 * a peer that offered nothing, are protocol errors. */
START_TEST(gated_and_unoffered)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h;

	ends_init(1, 1);
	/* B's first frame is a SYN, not the offer: plain peer; but A is told
	 * to hold the gate (as a resuming dialer would): */
	A.resume = 1;
	h = (struct frame_hdr){ 0, FRAME_PING, FRAME_SYN, 0, MUX_PING_OFFER };
	frame_encode(buf, &h);
	evbuffer_add(A.in, buf, sizeof(buf));
	h = (struct frame_hdr){ 0, FRAME_WINDOW_UPDATE, FRAME_SYN, 2, 0 };
	frame_encode(buf, &h);
	evbuffer_add(A.in, buf, sizeof(buf));
	ck_assert_int_eq(mux_input(A.m, A.in), -1);
	ck_assert_str_eq(A.why, "stream frame before the session was set up");
	ends_free();

	ends_init(0, 1);
	h = (struct frame_hdr){ 0, FRAME_EXT, 1, 0, 0 };
	frame_encode(buf, &h);
	evbuffer_add(A.in, buf, sizeof(buf));
	ck_assert_int_eq(mux_input(A.m, A.in), -1);
	ck_assert_str_eq(A.why, "unknown frame type");
	ends_free();
}
END_TEST

/* Both sides derive the same id and key; another pair derives others;
 * the proofs differ by side and fail under a wrong key or nonce. */
START_TEST(secret_and_proofs)
{
	struct resume_hello d, l, x;
	struct resume_secret sd, sl, sx;
	uint8_t nd[RESUME_NONCE_LEN], nl[RESUME_NONCE_LEN];
	uint8_t pd[RESUME_PROOF_LEN], pl[RESUME_PROOF_LEN];

	ck_assert_int_eq(resume_hello_new(&d), 0);
	ck_assert_int_eq(resume_hello_new(&l), 0);
	ck_assert_int_eq(resume_hello_new(&x), 0);
	ck_assert_int_eq(resume_hello_finish(&d, 1, l.msg, sizeof(l.msg), &sd),
	    0);
	ck_assert_int_eq(resume_hello_finish(&l, 0, d.msg, sizeof(d.msg), &sl),
	    0);
	ck_assert_mem_eq(sd.id, sl.id, sizeof(sd.id));
	ck_assert_mem_eq(sd.key, sl.key, sizeof(sd.key));
	/* A third party that saw both HELLOs but holds neither private key
	 * (here: its own key with l's HELLO) gets another key. */
	ck_assert_int_eq(resume_hello_finish(&x, 1, l.msg, sizeof(l.msg), &sx),
	    0);
	ck_assert(memcmp(sx.key, sd.key, sizeof(sx.key)) != 0);
	ck_assert_int_eq(resume_nonce(nd), 0);
	ck_assert_int_eq(resume_nonce(nl), 0);
	resume_proof(&sd, 1, nd, nl, pd);
	resume_proof(&sl, 0, nd, nl, pl);
	ck_assert(memcmp(pd, pl, sizeof(pd)) != 0);
	ck_assert(resume_proof_ok(&sl, 1, nd, nl, pd));
	ck_assert(resume_proof_ok(&sd, 0, nd, nl, pl));
	ck_assert(!resume_proof_ok(&sl, 0, nd, nl, pd));	/* reflected */
	ck_assert(!resume_proof_ok(&sx, 1, nd, nl, pd));	/* other key */
	nl[0] ^= 1;
	ck_assert(!resume_proof_ok(&sl, 1, nd, nl, pd));	/* replayed */
	/* Malformed HELLOs are refused. */
	ck_assert_int_eq(resume_hello_new(&x), 0);
	ck_assert_int_eq(resume_hello_finish(&x, 1, l.msg, 47, &sx), -1);
	ck_assert_ptr_null(x.priv);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("resume");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	IT_ADD(tc, offer_negotiated);
	IT_ADD(tc, plain_peer_not_offered);
	IT_ADD(tc, cut_and_resume);
	IT_ADD(tc, lost_open_sent_again);
	IT_ADD(tc, lost_reset_still_resets);
	IT_ADD(tc, lost_fin_ack);
	IT_ADD(tc, kept_within_window);
	IT_ADD_LOOP(tc, random_cuts, 50);
	IT_ADD(tc, state_beyond_sent);
	IT_ADD(tc, gated_and_unoffered);
	IT_ADD(tc, secret_and_proofs);
	suite_add_tcase(s, tc);
	return (it_main(s));
}
