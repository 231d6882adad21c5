/*
 * libFuzzer target for resumption in the yamux engine (docs/PROTOCOL.md
 * section 11): an engine resuming a session against a peer whose bytes the
 * input chooses, mixed with what a real peer engine would send.
 *
 *   byte 0       bit 0: the engine under test (E) dialed; bit 1: it takes
 *                over a connection (mux_attach(0), as the listener does)
 *                rather than saying hello itself
 *   byte 1       streams opened before the cut (& 7), each side
 *   bytes 2-9    how much each writes (x 997 bytes)
 *   bytes 10-11  how many bytes of the last exchange arrive before the cut
 *   the rest     operations, one opcode byte each:
 *                0x00-0x7f  feed the next op+1 input bytes to E
 *                0x80-0x9f  feed the next (op&31)*64+1 bytes of what the
 *                           real peer (P) says, resuming (its offer, its
 *                           state, its replay)
 *                0xa0-0xa7  E: write 1000 bytes on stream [next]
 *                0xa8-0xab  E: shutdown, reset, release, read all of [next]
 *                0xac-0xaf  E: open a stream
 *                0xb0-0xbf  E: mux_output into a sink; P's view of it is
 *                           fed to P (so P's replies follow)
 *                0xc0-0xff  feed the next 12 bytes (one frame header) to E
 *
 * After every operation the engine's books must add up: bytes queued are
 * those its streams hold, bytes unacknowledged those they keep, every kept
 * range ends where sending stopped.  Any violation abort()s; so does any
 * sanitizer report.  A protocol error is fine (the input is hostile): E
 * then takes no more input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mux/mux.c"

#define CHECK(x)	do { if (!(x)) { fprintf(stderr, "check failed: %s " \
	"(%s:%d)\n", #x, __FILE__, __LINE__); abort(); } } while (0)
#define MAXS		32

struct end {
	struct mux	*m;
	struct evbuffer	*in;
	struct mux_stream *s[MAXS];
	int		ns;
	int		resume;		/* on_hello: resume, else open */
};

static struct end E, P;

static int
cb_open(struct mux *m, struct mux_stream *s, void *arg)
{
	struct end *e = arg;

	(void)m;
	if (e->ns < MAXS)
		e->s[e->ns++] = s;
	mux_stream_set_arg(s, e);
	return (0);
}

/* Forget stream ${s} of ${e} (it ended). */
static void
forget(struct end *e, struct mux_stream *s)
{
	int i;

	for (i = 0; i < e->ns; i++)
		if (e->s[i] == s)
			e->s[i] = e->s[--e->ns];
}

static void
cb_close(struct mux_stream *s, void *sarg, enum mux_close_reason why)
{

	(void)why;
	forget(sarg, s);
}

static void
cb_hello(struct mux *m, int ext, void *arg)
{
	struct end *e = arg;

	if (e->resume && ext)
		(void)mux_resume_start(m);
	else
		mux_open_gate(m);
}

static const struct mux_callbacks cbs = {
	.on_stream_open = cb_open,
	.on_stream_close = cb_close,
	.on_hello = cb_hello,
};

/* The books of ${m} add up (see the top). */
static void
check_books(struct mux *m)
{
	struct mux_stream *s;
	size_t queued = 0, unacked = 0, unsent = 0;

	for (s = m->all; s != NULL; s = s->anext) {
		queued += stream_held(s);
		unacked += s->unacked ? evbuffer_get_length(s->unacked) : 0;
		unsent += mux_stream_queued(s);
		CHECK(stream_kept_from(s) <= s->sent);
		CHECK(s->acked <= s->sent);
		CHECK(!(s->flags & S_DEAD));
	}
	CHECK(queued == m->queued);
	CHECK(unacked == m->unacked);
	CHECK(unsent == m->unsent);
}

/* Move ${from}'s output to ${to}; ${cut} >= 0: only that much arrives. */
static void
deliver(struct end *from, struct end *to, long cut)
{
	struct evbuffer *w = evbuffer_new();
	size_t n;

	CHECK(w != NULL);
	(void)mux_output(from->m, w, 1 << 20);
	n = evbuffer_get_length(w);
	if (cut >= 0 && (size_t)cut < n)
		evbuffer_remove_buffer(w, to->in, (size_t)cut);
	else
		evbuffer_add_buffer(to->in, w);
	evbuffer_free(w);
	(void)mux_input(to->m, to->in);
}

/* Write ${n} bytes on ${s}. */
static void
write_n(struct mux_stream *s, size_t n)
{
	static unsigned char buf[8000];
	struct evbuffer *b = evbuffer_new();

	CHECK(b != NULL && n <= sizeof(buf));
	evbuffer_add(b, buf, n);
	(void)mux_stream_write(s, b);
	evbuffer_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mux_config ce, cp;
	struct evbuffer *peer_out, *sink, *tmp;
	size_t i, n, k;
	int e_dials, takeover, j;
	uint8_t op;

	if (size < 12)
		return (0);
	memset(&E, 0, sizeof(E));
	memset(&P, 0, sizeof(P));
	e_dials = data[0] & 1;
	takeover = (data[0] >> 1) & 1;
	mux_config_default(&ce, e_dials);
	mux_config_default(&cp, !e_dials);
	ce.resumable = cp.resumable = 1;
	CHECK((E.m = mux_new(&ce, &cbs, &E)) != NULL);
	CHECK((P.m = mux_new(&cp, &cbs, &P)) != NULL);
	CHECK((E.in = evbuffer_new()) != NULL && (P.in = evbuffer_new()) !=
	    NULL);
	CHECK((peer_out = evbuffer_new()) != NULL &&
	    (sink = evbuffer_new()) != NULL && (tmp = evbuffer_new()) != NULL);

	/* A session with streams both ways, some bytes in flight. */
	mux_ping(E.m);
	mux_ping(P.m);
	for (j = 0; j < 4; j++) {
		deliver(&E, &P, -1);
		deliver(&P, &E, -1);
	}
	for (j = 0; j < (data[1] & 7); j++) {
		struct mux_stream *s;

		if ((s = mux_stream_open(E.m, &E)) != NULL && E.ns < MAXS) {
			E.s[E.ns++] = s;
			write_n(s, (size_t)data[2 + j] * 31);
		}
		if ((s = mux_stream_open(P.m, &P)) != NULL && P.ns < MAXS) {
			P.s[P.ns++] = s;
			write_n(s, (size_t)data[9 - j] * 31);
		}
	}
	deliver(&E, &P, -1);
	deliver(&P, &E, (long)data[10] << 4);
	deliver(&E, &P, (long)data[11] << 4);
	evbuffer_drain(E.in, evbuffer_get_length(E.in));
	evbuffer_drain(P.in, evbuffer_get_length(P.in));
	mux_detach(E.m);
	mux_detach(P.m);
	check_books(E.m);

	/* A new connection.  P says hello and resumes like a real peer; its
	 * output is what ops 0x80-0x9f may feed to E. */
	E.resume = P.resume = 1;
	if (takeover) {
		mux_attach(E.m, 0);
		(void)mux_resume_start(E.m);
	} else {
		mux_attach(E.m, 1);
		mux_ping(E.m);
	}
	mux_attach(P.m, 1);
	mux_ping(P.m);
	(void)mux_output(P.m, peer_out, 1 << 20);

	for (i = 12; i < size && !E.m->dead; i++) {
		op = data[i];
		if (op < 0x80) {
			n = op + 1u;
			if (n > size - i - 1)
				n = size - i - 1;
			evbuffer_add(E.in, data + i + 1, n);
			i += n;
			(void)mux_input(E.m, E.in);
		} else if (op < 0xa0) {
			n = (size_t)(op & 31) * 64 + 1;
			(void)mux_output(P.m, peer_out, 1 << 20);
			evbuffer_remove_buffer(peer_out, E.in, n);
			(void)mux_input(E.m, E.in);
		} else if (op < 0xac && i + 1 < size) {
			k = data[++i];
			if (E.ns == 0)
				continue;
			k %= (size_t)E.ns;
			switch (op) {
			case 0xa8:
				mux_stream_shutdown(E.s[k]);
				break;
			case 0xa9:
				mux_stream_reset(E.s[k]);
				forget(&E, E.s[k]);
				break;
			case 0xaa:
				mux_stream_release(E.s[k]);
				forget(&E, E.s[k]);
				break;
			case 0xab:
				(void)mux_stream_read(E.s[k], sink, 1 << 20);
				break;
			default:
				write_n(E.s[k], 1000);
			}
		} else if (op < 0xb0) {
			struct mux_stream *s;

			if (E.ns < MAXS && (s = mux_stream_open(E.m, &E)) !=
			    NULL)
				E.s[E.ns++] = s;
		} else if (op < 0xc0) {
			/* What E says reaches P, whose answers may follow. */
			(void)mux_output(E.m, tmp, 1 << 20);
			evbuffer_add_buffer(P.in, tmp);
			(void)mux_input(P.m, P.in);
		} else {
			n = size - i - 1 < FRAME_HDR_LEN ? size - i - 1 :
			    FRAME_HDR_LEN;
			evbuffer_add(E.in, data + i + 1, n);
			i += n;
			(void)mux_input(E.m, E.in);
		}
		evbuffer_drain(sink, evbuffer_get_length(sink));
		check_books(E.m);
	}
	(void)mux_output(E.m, sink, 1 << 20);
	check_books(E.m);
	mux_free(E.m);
	mux_free(P.m);
	evbuffer_free(E.in);
	evbuffer_free(P.in);
	evbuffer_free(peer_out);
	evbuffer_free(sink);
	evbuffer_free(tmp);
	return (0);
}
