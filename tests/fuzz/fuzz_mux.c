/*
 * libFuzzer target for the yamux engine (src/mux).
 *
 * The input plays the peer and drives the application:
 *
 *   byte 0       configuration: bit 0 dialer; bits 1-3 shrink some limits
 *                (0: mux_config_default unchanged), see make_config()
 *   bytes 1-8    decision bytes: the callbacks' choices (accept or refuse,
 *                how much to read, echo, shut down, reset, release) come
 *                from decide(), which mixes these with the stream id and a
 *                call counter
 *   the rest     operations, one opcode byte each, see run_ops():
 *                0x00-0x7f  feed the next op+1 bytes to mux_input
 *                0x80-0x8f  feed the next ((op&15)<<8 | next byte)+1 bytes
 *                0x90-0x97  mux_output with a budget from budgets[]
 *                0x98-0x9f  mux_stream_open, write sizes[op&7] bytes
 *                0xa0-0xa7  write sizes[op&7] bytes to held stream [next]
 *                0xa8-0xac  shutdown, reset, release, read all, read some
 *                           of held stream [next]
 *                0xad       feed big[next&3] zero bytes (a large payload)
 *                0xaf       mux_set_frame_max(frame_sizes[next % 5])
 *                0xae       feed a Data frame of big[next2&3] zero bytes on
 *                           held stream [next]
 *                0xb0 ping, 0xb1 goaway(next), 0xb2-0xb7 advance the clock
 *                0xb8-0xbe  pump: output everything, input again
 *                0xbf       pull mode on or off (next&1) for held stream
 *                           [next>>1]; on_stream_pull writes, shuts down,
 *                           resets, releases or gives nothing (decide())
 *                0xc0-0xff  feed the next 12 bytes (one frame header)
 *
 * Everything mux_output produces goes to one "wire" buffer and is parsed
 * and checked (check_wire): whole 12-byte headers, version 0, known types
 * and flags, Data no longer than frame_max, payloads exactly as declared,
 * stream id rules, FIN/RST finality, never more Data than the peer's
 * window, ping replies only for the peer's pings, at most
 * max_inflight_opens unanswered SYNs.  The peer's bytes that mux_input
 * consumed are parsed by a shadow parser (shadow_update) so the checks
 * know the windows and SYNs the peer sent.  API contracts are checked in
 * the callbacks; an application reset must put RST on the wire once the
 * peer knows the stream; Go Away must follow a protocol error.  Any
 * violation abort()s.  FUZZ_MUX_TRACE=1 in the environment prints a trace.
 *
 * want_output only notes the call (mux.h: "schedule one mux_output, don't
 * call it from here"); output happens at the operations that ask for it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mux/frame.h"
#include "mux/mux.h"

#define DLEN		8		/* decision bytes */
#define MAXHELD		64		/* streams the application holds */
#define WRITE_CAP	(1u << 20)	/* bytes the application writes */
#define SYNTH_CAP	(2u << 20)	/* zero bytes fed by 0xad, 0xae */
#define PULL_MORE	16384		/* pulls at least this big stay on */

/*
 * The reproducers of three engine bugs the fuzzer found (all fixed, each
 * with a unit test) stay in the corpus as tests/corpus/mux/known-*: Data
 * sent ahead of its stream's SYN, frames taken for our own stream whose
 * SYN still waited for a slot, SYNs of waiting opens sent after Go Away.
 */
#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_mux: check failed: %s (%s:%d)\n",	\
		    #c, __FILE__, __LINE__);				\
		abort();						\
	}								\
} while (0)

/* A stream the application holds. */
struct held {
	int		used;
	struct mux_stream *s;
	uint32_t	id;
	int		outbound;
	int		shut;		/* we called mux_stream_shutdown */
	int		pull;		/* in pull mode (mux_stream_set_pull) */
};

/* What the checks know about one stream id. */
struct idst {
	uint32_t	id;
	uint8_t		used;
	uint8_t		our_syn, our_ack, our_fin, our_rst;
	uint8_t		peer_syn, peer_fin, done;
	uint8_t		app_reset;	/* the application reset it */
	uint64_t	credit;		/* window updates the peer sent */
	uint64_t	sent;		/* data payload we sent */
};

/* Incremental frame parser state. */
struct fparse {
	uint8_t		hdr[FRAME_HDR_LEN];
	size_t		have;		/* header bytes collected */
	uint64_t	skip;		/* payload bytes still to skip */
};

static struct {
	struct mux	*m;
	struct mux_config cfg;
	const uint8_t	*d;		/* decision bytes */
	uint32_t	dctr;
	struct held	held[MAXHELD];
	struct evbuffer	*in, *wire, *scratch;
	size_t		written;	/* bytes the application wrote */
	uint64_t	now;
	uint64_t	ping_time;
	int		ping_out;
	int		proto_err, goaways, freeing;
	unsigned	want_calls;		/* want_output calls */
	int		goaway_after_err;	/* Go Away seen after the error */
	int		goaway_sent;		/* we sent Go Away */

	/* The peer's bytes fed so far and how far the shadow parsed. */
	uint8_t		*fed;
	size_t		nfed, fed_cap, synth, shadow_pos;
	struct fparse	shadow;
	int		shadow_stop;
	uint32_t	*pings;		/* SYN ping values from the peer */
	size_t		npings, ping_cap, pings_answered;

	struct fparse	wp;		/* wire parser */
	uint64_t	our_last_syn;
	uint32_t	unanswered;	/* our SYNs on the wire, not answered */

	struct idst	*ids;
	uint32_t	ids_mask, ids_count;
} F;

static void check_wire(void);

/* FUZZ_MUX_TRACE=1 in the environment: print what happens (debugging). */
static int trace = -1;
#define TRACE(...) do {							\
	if (trace < 0)							\
		trace = getenv("FUZZ_MUX_TRACE") != NULL;		\
	if (trace)							\
		fprintf(stderr, __VA_ARGS__);				\
} while (0)

/* The id table: open addressing, grows at half full. */
static struct idst *
idst_get(uint32_t id)
{
	uint32_t i, j, cap;
	struct idst *old;

	if ((F.ids_count + 1) * 2 > F.ids_mask + 1) {
		old = F.ids;
		cap = (F.ids_mask + 1) * 2;
		F.ids = calloc(cap, sizeof(*F.ids));
		CHECK(F.ids != NULL);
		for (j = 0; j <= F.ids_mask; j++) {
			if (!old[j].used)
				continue;
			for (i = (old[j].id * 2654435761u) & (cap - 1);
			    F.ids[i].used; i = (i + 1) & (cap - 1))
				;
			F.ids[i] = old[j];
		}
		F.ids_mask = cap - 1;
		free(old);
	}
	for (i = (id * 2654435761u) & F.ids_mask; F.ids[i].used;
	    i = (i + 1) & F.ids_mask)
		if (F.ids[i].id == id)
			return (&F.ids[i]);
	F.ids[i].used = 1;
	F.ids[i].id = id;
	F.ids[i].credit = MUX_INITIAL_WINDOW;
	F.ids_count++;
	return (&F.ids[i]);
}

/* ${id} has our parity. */
static int
ours(uint32_t id)
{

	return ((id & 1) == (F.cfg.dialer ? 1u : 0u));
}

/* Stream ${st} is answered or ended: it no longer holds an open slot. */
static void
idst_done(struct idst *st)
{

	if (st->done)
		return;
	st->done = 1;
	if (st->our_syn) {
		CHECK(F.unanswered > 0);
		F.unanswered--;
	}
}

/* A deterministic decision for stream ${id}. */
static uint8_t
decide(uint32_t id)
{
	uint32_t c = F.dctr++;

	return ((uint8_t)(F.d[c % DLEN] ^ (uint8_t)(id * 0x9d)));
}

/* The slot holding ${s}, or NULL. */
static struct held *
held_find(const struct mux_stream *s)
{
	int i;

	for (i = 0; i < MAXHELD; i++)
		if (F.held[i].used && F.held[i].s == s)
			return (&F.held[i]);
	return (NULL);
}

static struct held *
held_add(struct mux_stream *s, int outbound)
{
	int i;

	CHECK(held_find(s) == NULL);
	for (i = 0; i < MAXHELD; i++) {
		if (!F.held[i].used) {
			F.held[i].used = 1;
			F.held[i].s = s;
			F.held[i].id = mux_stream_id(s);
			F.held[i].outbound = outbound;
			F.held[i].shut = 0;
			mux_stream_set_arg(s, &F.held[i]);
			return (&F.held[i]);
		}
	}
	return (NULL);
}

static int
held_count(void)
{
	int i, n = 0;

	for (i = 0; i < MAXHELD; i++)
		n += F.held[i].used;
	return (n);
}

/* The ${k}-th held stream (modulo their number), or NULL. */
static struct held *
held_nth(unsigned k)
{
	int i, n = held_count();

	if (n == 0)
		return (NULL);
	k %= (unsigned)n;
	for (i = 0; i < MAXHELD; i++)
		if (F.held[i].used && k-- == 0)
			return (&F.held[i]);
	return (NULL);
}

/* Check that callback argument ${sarg} for ${s} is the slot holding it. */
static struct held *
held_check(struct mux_stream *s, void *sarg)
{
	struct held *h = sarg;

	CHECK(h != NULL && h >= F.held && h < F.held + MAXHELD);
	CHECK(h->used && h->s == s);
	CHECK(mux_stream_id(s) == h->id);
	CHECK(mux_stream_session(s) == F.m);
	return (h);
}

/* The application ends ${h}'s stream with mux_stream_reset. */
static void
app_reset(struct held *h)
{
	struct mux_stream *s = h->s;
	uint32_t before = mux_stream_count(F.m);

	TRACE("app reset %u\n", h->id);
	idst_get(h->id)->app_reset = 1;
	h->used = 0;
	mux_stream_reset(s);
	if (!F.freeing)
		CHECK(mux_stream_count(F.m) == before - 1);
}

/* The application ends ${h}'s stream with mux_stream_release. */
static void
app_release(struct held *h)
{
	struct mux_stream *s = h->s;

	h->used = 0;
	mux_stream_release(s);
}

/* Queue ${n} generated bytes on ${h}'s stream (capped per input). */
static void
app_write(struct held *h, size_t n)
{
	static const char chunk[4096];
	struct evbuffer *b;
	size_t k;
	int rc;

	if (n > WRITE_CAP - F.written)
		n = WRITE_CAP - F.written;
	F.written += n;
	CHECK((b = evbuffer_new()) != NULL);
	while (n > 0) {
		k = n < sizeof(chunk) ? n : sizeof(chunk);
		CHECK(evbuffer_add(b, chunk, k) == 0);
		n -= k;
	}
	rc = mux_stream_write(h->s, b);
	CHECK(rc >= -1 && rc <= 1);
	if (rc >= 0)
		CHECK(evbuffer_get_length(b) == 0);
	if (h->shut)
		CHECK(rc == -1);
	evbuffer_free(b);
}

/* Read up to ${max} bytes of ${h}'s stream; returns the bytes now in
 * F.scratch. */
static size_t
app_read(struct held *h, size_t max)
{
	size_t avail = mux_stream_readable(h->s);
	size_t before = evbuffer_get_length(F.scratch);
	int n;

	n = mux_stream_read(h->s, F.scratch, max);
	CHECK(n >= 0);
	CHECK((size_t)n == (avail < max ? avail : max));
	CHECK(evbuffer_get_length(F.scratch) == before + (size_t)n);
	CHECK(mux_stream_readable(h->s) == avail - (size_t)n);
	return (evbuffer_get_length(F.scratch));
}

static void
app_shutdown(struct held *h)
{

	mux_stream_shutdown(h->s);
	h->shut = 1;
}

/* mux_output into the wire with ${budget}; returns the bytes added. */
static size_t
do_output(size_t budget)
{
	size_t before = evbuffer_get_length(F.wire);
	int n;

	n = mux_output(F.m, F.wire, budget);
	CHECK(n >= 0);
	CHECK((size_t)n == evbuffer_get_length(F.wire) - before);
	return ((size_t)n);
}

/* Callbacks. */

static int
cb_open(struct mux *m, struct mux_stream *s, void *arg)
{
	uint32_t id = mux_stream_id(s);
	struct held *h;
	uint8_t d;

	CHECK(m == F.m && arg == &F);
	CHECK(!F.freeing && !F.proto_err);
	CHECK(id != 0 && !ours(id));
	CHECK(mux_stream_session(s) == m);
	CHECK(held_find(s) == NULL);
	d = decide(id);
	TRACE("open %u: decision %02x\n", id, d);
	if ((d & 7) == 0)
		return (-1);
	if ((h = held_add(s, 0)) == NULL)
		return (-1);
	if (d & 0x10)
		app_write(h, (d & 0x20) ? 300 : 5);
	if (d & 0x40)
		app_shutdown(h);
	switch (d & 7) {
	case 1:
		app_reset(h);		/* reset from inside the callback */
		return (0);
	case 2:
		h->used = 0;		/* write, then refuse */
		return (-1);
	case 3:
		app_release(h);		/* not at EOF: a reset */
		return ((d & 8) ? -1 : 0);
	default:
		return (0);
	}
}

static void
cb_readable(struct mux_stream *s, void *sarg)
{
	struct held *h = held_check(s, sarg), *o;
	size_t avail = mux_stream_readable(s), max;
	uint8_t d = decide(h->id);

	CHECK(!F.freeing);
	TRACE("readable %u: %zu bytes%s, decision %02x\n", h->id, avail,
	    mux_stream_eof(s) ? ", eof" : "", d);
	CHECK(avail > 0 || mux_stream_eof(s));
	switch (d & 3) {
	case 0:
		max = 0;
		break;
	case 1:
		max = 1 + (size_t)((d >> 2) & 15) * 97;
		break;
	case 2:
		max = avail / 2 + 1;
		break;
	default:
		max = SIZE_MAX;
	}
	if (app_read(h, max) > 0 && ((d >> 2) & 3) != 0 && !h->shut &&
	    F.written + evbuffer_get_length(F.scratch) <= WRITE_CAP) {
		F.written += evbuffer_get_length(F.scratch);
		CHECK(mux_stream_write(s, F.scratch) >= -1);
		if (((d >> 2) & 3) == 2)
			app_shutdown(h);
	}
	evbuffer_drain(F.scratch, evbuffer_get_length(F.scratch));

	switch (d >> 4) {
	case 0xf:
		app_reset(h);
		return;
	case 0xe:
		if ((o = held_nth(decide(0))) != NULL && o != h) {
			app_reset(o);	/* another stream */
			return;
		}
		break;
	}
	if (!mux_stream_eof(s))
		return;
	switch ((d >> 4) & 3) {
	case 1:
		app_shutdown(h);
		app_release(h);
		break;
	case 2:
		app_release(h);
		break;
	case 3:
		app_shutdown(h);
		break;
	}
}

/*
 * Callback ${what} on stream ${s} (held ${sarg}, returned in ${hp}): make
 * the decision, and carry out the two choices every such callback has (0
 * reset, 1 shut down).  Returns the decision if it is another, else -1.
 */
static int
app_decide(struct mux_stream *s, void *sarg, const char *what,
    struct held **hp)
{
	struct held *h = held_check(s, sarg);
	uint8_t d = decide(h->id);

	CHECK(!F.freeing);
	TRACE("%s %u: decision %02x\n", what, h->id, d);
	*hp = h;
	if ((d & 7) == 0)
		app_reset(h);
	else if ((d & 7) == 1)
		app_shutdown(h);
	else
		return (d);
	return (-1);
}

static void
cb_writable(struct mux_stream *s, void *sarg)
{
	struct held *h, *o;
	int d;

	if ((d = app_decide(s, sarg, "writable", &h)) < 0)
		return;
	switch (d & 7) {
	case 2:
	case 3:
		app_write(h, 40000);
		break;
	case 4:
		if ((o = held_nth(decide(0))) != NULL && o != h)
			app_reset(o);
		break;
	default:
		break;
	}
}

static void
cb_close(struct mux_stream *s, void *sarg, enum mux_close_reason reason)
{
	struct held *h = held_check(s, sarg);

	TRACE("close %u: reason %d\n", h->id, (int)reason);
	CHECK(reason == (F.freeing ? MUX_CLOSE_SESSION : MUX_CLOSE_RESET));
	/* The stream is gone: these must be harmless no-ops. */
	CHECK(mux_stream_readable(s) == 0);
	CHECK(mux_stream_queued(s) == 0);
	h->used = 0;
}

static void
cb_pong(struct mux *m, uint64_t rtt, void *arg)
{

	CHECK(m == F.m && arg == &F);
	TRACE("pong %llu\n", (unsigned long long)rtt);
	CHECK(F.ping_out);
	CHECK(rtt == F.now - F.ping_time);
	F.ping_out = 0;
	CHECK(mux_rtt(m) > 0 || rtt == 0);
}

static void
cb_goaway(struct mux *m, uint32_t code, void *arg)
{

	CHECK(m == F.m && arg == &F);
	TRACE("goaway %u\n", code);
	CHECK(F.goaways++ == 0);
	CHECK(mux_is_closing(m));
}

static void
cb_proto(struct mux *m, const char *why, void *arg)
{

	CHECK(m == F.m && arg == &F);
	CHECK(why != NULL && why[0] != '\0');
	TRACE("protocol error: %s\n", why);
	CHECK(!F.proto_err);
	F.proto_err = 1;
	CHECK(mux_is_closing(m));
}

static void
cb_want_output(struct mux *m, void *arg)
{

	CHECK(m == F.m && arg == &F);
	/* "The engine queued bytes for mux_output" (a dead session may still
	 * schedule a stream whose data will never go out). */
	CHECK(mux_output_pending(m) || F.proto_err);
	F.want_calls++;
}

/* Write sizes of the operations and of pulls. */
static const size_t sizes[8] = {
	0, 1, 100, 1000, 16385, 65536, 262145, 300000
};

/* Pull mode: called only in it, on a stream with nothing queued. */
static void
cb_pull(struct mux_stream *s, void *sarg)
{
	struct held *h = held_check(s, sarg);
	int d;

	CHECK(h->pull && !h->shut);
	CHECK(mux_stream_queued(s) == 0);
	if ((d = app_decide(s, sarg, "pull", &h)) < 0)
		return;
	switch (d & 7) {
	case 2:
		app_release(h);
		break;
	case 3:
		h->pull = 0;		/* nothing: pull mode ends */
		break;
	default:
		app_write(h, sizes[d >> 5]);
		if (mux_stream_queued(s) == 0)
			h->pull = 0;	/* the write cap: nothing, as above */
		else if (sizes[d >> 5] < PULL_MORE) {
			/* As a relay whose read came back short. */
			mux_stream_set_pull(s, 0);
			h->pull = 0;
		}
		break;
	}
}

static const struct mux_callbacks callbacks = {
	cb_open, cb_readable, cb_writable, cb_close, cb_pong, cb_goaway,
	cb_proto, cb_want_output, NULL, cb_pull, NULL, NULL, NULL
};

/*
 * The shadow parser: follow the peer's frames that mux_input consumed.
 * It runs on until the first frame the engine must reject outright; after a
 * protocol error the engine discards the rest, which the shadow may still
 * parse: that only makes the checks more lenient (more window, more SYNs),
 * and nothing is sent for streams after the session died.
 */
static void
shadow_frame(const struct frame_hdr *h)
{
	struct idst *st;

	TRACE("  in:  ver %u type %u flags %x id %u len %u\n", h->version,
	    h->type, h->flags, h->stream_id, h->length);
	if (h->version != FRAME_VERSION || h->type > FRAME_GO_AWAY) {
		F.shadow_stop = 1;
		return;
	}
	if (h->type == FRAME_PING) {
		if (h->stream_id == 0 && (h->flags & FRAME_SYN)) {
			if (F.npings == F.ping_cap) {
				F.ping_cap = F.ping_cap ? F.ping_cap * 2 : 64;
				F.pings = realloc(F.pings,
				    F.ping_cap * sizeof(*F.pings));
				CHECK(F.pings != NULL);
			}
			F.pings[F.npings++] = h->length;
		}
		return;
	}
	if (h->type == FRAME_GO_AWAY || h->stream_id == 0)
		return;
	st = idst_get(h->stream_id);
	if (h->flags & FRAME_SYN)
		st->peer_syn = 1;
	if (h->flags & FRAME_FIN)
		st->peer_fin = 1;
	if (h->flags & (FRAME_ACK | FRAME_RST))
		idst_done(st);
	if (st->peer_fin && st->our_fin)
		idst_done(st);
	if (h->type == FRAME_WINDOW_UPDATE)
		st->credit += h->length;
}

static void
shadow_update(void)
{
	size_t end = F.nfed - evbuffer_get_length(F.in), n;
	struct fparse *p = &F.shadow;
	struct frame_hdr h;

	CHECK(end >= F.shadow_pos);
	while (F.shadow_pos < end && !F.shadow_stop) {
		if (p->skip > 0) {
			n = end - F.shadow_pos;
			if (n > p->skip)
				n = (size_t)p->skip;
			p->skip -= n;
			F.shadow_pos += n;
			continue;
		}
		p->hdr[p->have++] = F.fed[F.shadow_pos++];
		if (p->have < FRAME_HDR_LEN)
			continue;
		p->have = 0;
		frame_decode(p->hdr, &h);
		shadow_frame(&h);
		if (h.type == FRAME_DATA)
			p->skip = h.length;
	}
}

/* Check one frame ${h} that we sent. */
static void
wire_frame(const struct frame_hdr *h)
{
	struct idst *st;

	TRACE("  out: type %u flags %x id %u len %u\n", h->type, h->flags,
	    h->stream_id, h->length);
	CHECK(h->version == FRAME_VERSION);
	CHECK(h->type <= FRAME_GO_AWAY);
	CHECK((h->flags & ~(FRAME_SYN | FRAME_ACK | FRAME_FIN | FRAME_RST)) ==
	    0);
	if (F.proto_err && h->type == FRAME_GO_AWAY &&
	    (h->length == MUX_GOAWAY_PROTOCOL ||
	    h->length == MUX_GOAWAY_INTERNAL))
		F.goaway_after_err = 1;

	switch (h->type) {
	case FRAME_PING:
		CHECK(h->stream_id == 0);
		CHECK(h->flags == FRAME_SYN || h->flags == FRAME_ACK);
		if (h->flags == FRAME_ACK) {
			/* Never an unsolicited ACK ping; replies in order. */
			CHECK(F.pings_answered < F.npings);
			CHECK(F.pings[F.pings_answered++] == h->length);
		}
		return;
	case FRAME_GO_AWAY:
		CHECK(h->stream_id == 0 && h->flags == 0);
		CHECK(h->length <= MUX_GOAWAY_INTERNAL);
		F.goaway_sent = 1;
		return;
	}

	CHECK(h->stream_id != 0);
	st = idst_get(h->stream_id);
	CHECK(!st->our_rst);		/* nothing after our RST */
	if (ours(h->stream_id)) {
		CHECK(!(h->flags & FRAME_ACK));
		if (h->flags & FRAME_SYN) {
			CHECK(h->type == FRAME_WINDOW_UPDATE);
			CHECK(!st->our_syn);
			/* "After Go Away, sent or received, no new streams
			 * are opened in either direction" (PROTOCOL.md 7),
			 * not even opens that waited for a slot. */
			CHECK(!F.goaway_sent);
			CHECK(h->stream_id > F.our_last_syn ||
			    F.our_last_syn == 0);
			F.our_last_syn = h->stream_id;
			st->our_syn = 1;
			if (!st->done) {
				F.unanswered++;
				CHECK(F.unanswered <= F.cfg.max_inflight_opens);
			}
		}
		/* SYN before anything else: no Data ahead of a SYN that a
		 * callback queued, no Window Update for our stream whose
		 * SYN still waits for a slot. */
		CHECK(st->our_syn);
	} else {
		CHECK(!(h->flags & FRAME_SYN));
		CHECK(st->peer_syn);	/* only streams the peer opened */
		if (h->flags & FRAME_ACK) {
			CHECK(h->type == FRAME_WINDOW_UPDATE);
			CHECK(!st->our_ack);
			st->our_ack = 1;
		}
	}
	if (h->flags & FRAME_RST) {
		CHECK(h->type == FRAME_WINDOW_UPDATE && h->length == 0);
		st->our_rst = 1;
		idst_done(st);
	}
	if (h->type == FRAME_WINDOW_UPDATE) {
		CHECK(!(h->flags & FRAME_FIN));
		/* A plain update grants something. */
		if (h->flags == 0)
			CHECK(h->length > 0);
		return;
	}

	/* Data. */
	CHECK(!(h->flags & (FRAME_SYN | FRAME_ACK | FRAME_RST)));
	CHECK(h->length <= F.cfg.frame_max);
	CHECK(!st->our_fin);		/* no Data after FIN */
	CHECK(h->length > 0 || (h->flags & FRAME_FIN));
	st->sent += h->length;
	CHECK(st->sent <= st->credit);	/* within the peer's window */
	if (h->flags & FRAME_FIN) {
		st->our_fin = 1;
		if (st->peer_fin)
			idst_done(st);
	}
}

/* Parse and check everything on the wire, then drain it. */
static void
check_wire(void)
{
	struct fparse *p = &F.wp;
	struct frame_hdr h;
	size_t len, n;

	shadow_update();
	while ((len = evbuffer_get_length(F.wire)) > 0) {
		if (p->skip > 0) {
			n = len < p->skip ? len : (size_t)p->skip;
			evbuffer_drain(F.wire, n);
			p->skip -= n;
			continue;
		}
		n = FRAME_HDR_LEN - p->have;
		if (n > len)
			n = len;
		CHECK(evbuffer_remove(F.wire, p->hdr + p->have, n) == (int)n);
		p->have += n;
		if (p->have < FRAME_HDR_LEN)
			continue;
		p->have = 0;
		frame_decode(p->hdr, &h);
		wire_frame(&h);
		if (h.type == FRAME_DATA)
			p->skip = h.length;
	}
	/* mux_output appends whole frames only. */
	CHECK(p->have == 0 && p->skip == 0);
}

/* Append ${n} bytes at ${p} to the peer's input and run mux_input. */
static void
feed(const uint8_t *p, size_t n)
{
	int rc;

	if (F.nfed + n > F.fed_cap) {
		F.fed_cap = (F.nfed + n) * 2;
		CHECK((F.fed = realloc(F.fed, F.fed_cap)) != NULL);
	}
	memcpy(F.fed + F.nfed, p, n);
	F.nfed += n;
	CHECK(evbuffer_add(F.in, p, n) == 0);
	rc = mux_input(F.m, F.in);
	CHECK(rc == (F.proto_err ? -1 : 0));
	if (F.proto_err)
		CHECK(evbuffer_get_length(F.in) == 0);
	check_wire();
}

/* Output everything, then let the engine read what it had paused on;
 * repeat while that makes progress. */
static void
pump(void)
{
	size_t left, out;
	int stall = 0, n = 0;

	for (;;) {
		out = do_output(SIZE_MAX);
		check_wire();
		if ((left = evbuffer_get_length(F.in)) == 0) {
			/* Callbacks during the output (on_stream_writable)
			 * may have queued more: output until nothing is
			 * pending.  Bounded: writes are capped. */
			if (!mux_output_pending(F.m))
				break;
			CHECK(++n < 100000);
			continue;
		}
		CHECK(mux_input(F.m, F.in) == (F.proto_err ? -1 : 0));
		check_wire();
		if (evbuffer_get_length(F.in) < left) {
			stall = 0;
			continue;
		}
		if (!mux_output_pending(F.m)) {
			/* Nothing owed to the peer: only a partial header
			 * may be left unread. */
			CHECK(left < FRAME_HDR_LEN);
			break;
		}
		/* Each full output empties the control queue that paused
		 * the input: it must move on soon, unless streams in pull
		 * mode still give output (a pass pulls each once; writes
		 * are capped). */
		if (out == 0)
			CHECK(++stall < 64);
	}
}

/* Feed a Data header for stream ${id} with length ${len}. */
static void
synth_hdr(uint32_t id, size_t len)
{
	struct frame_hdr fh = { FRAME_VERSION, FRAME_DATA, 0, id,
	    (uint32_t)len };
	uint8_t b[FRAME_HDR_LEN];

	frame_encode(b, &fh);
	feed(b, sizeof(b));
}

/* Feed ${len} zero bytes in 4 KiB pieces. */
static void
synth_feed(size_t len)
{
	static const uint8_t zero[4096];
	size_t k;

	while (len > 0) {
		k = len < sizeof(zero) ? len : sizeof(zero);
		feed(zero, k);
		len -= k;
	}
}

static void
make_config(uint8_t c)
{

	mux_config_default(&F.cfg, c & 1);
	if (c & 2) {
		F.cfg.frame_max = 100;
		F.cfg.send_hiwat = 1000;
	}
	if (c & 4) {
		F.cfg.max_inflight_opens = 2;
		F.cfg.max_streams = 6;
		F.cfg.max_backlog = 3;
	}
	if (c & 8) {
		F.cfg.ctrl_hiwat = 48;
		F.cfg.window = MUX_INITIAL_WINDOW + 4096;
		F.cfg.window_max = 1u << 20;
		F.cfg.window_budget = 300000;
	}
}

static const size_t budgets[8] = {
	0, 1, 13, 100, 1024, 16384, 65536, SIZE_MAX
};
static const size_t big[4] = { 4096, 65536, 131072, 262144 };
static const uint64_t ticks[6] = { 1, 10, 1000, 100000, 1000000, 60000000 };
static const uint32_t frame_sizes[5] = { 100, 2048, 3000, 65536, 262144 };

static void
run_ops(const uint8_t *p, size_t n)
{
	struct mux_stream *s;
	struct held *h;
	size_t i = 0, len;
	uint8_t op, a;
	uint32_t cnt;
	unsigned calls = 0;
	int pending = 0;

#define ARG()	(i < n ? p[i++] : 0)
	while (i < n) {
		/* An operation that gives the engine output to send where it
		 * had none must call want_output (or the link goes silent). */
		if (i > 0 && !pending && mux_output_pending(F.m))
			CHECK(F.want_calls != calls);
		pending = mux_output_pending(F.m);
		calls = F.want_calls;
		op = p[i++];
		if (op < 0x90 || op >= 0xc0) {
			if (op < 0x80)
				len = (size_t)op + 1;
			else if (op >= 0xc0)
				len = FRAME_HDR_LEN;
			else
				len = ((size_t)(op & 15) << 8 | ARG()) + 1;
			if (len > n - i)
				len = n - i;
			feed(p + i, len);
			i += len;
			continue;
		}
		switch (op) {
		case 0x90: case 0x91: case 0x92: case 0x93:
		case 0x94: case 0x95: case 0x96: case 0x97:
			do_output(budgets[op & 7]);
			check_wire();
			break;
		case 0x98: case 0x99: case 0x9a: case 0x9b:
		case 0x9c: case 0x9d: case 0x9e: case 0x9f:
			if (held_count() == MAXHELD)
				break;
			cnt = mux_stream_count(F.m);
			errno = 0;
			if ((s = mux_stream_open(F.m, NULL)) == NULL) {
				CHECK(errno == EPIPE || errno == EMFILE ||
				    errno == ENOSPC);
				CHECK((errno == EPIPE) == mux_is_closing(F.m));
				CHECK(errno != EMFILE ||
				    cnt >= F.cfg.max_streams);
			} else {
				CHECK(!mux_is_closing(F.m));
				CHECK(ours(mux_stream_id(s)));
				CHECK(mux_stream_count(F.m) == cnt + 1);
				CHECK((h = held_add(s, 1)) != NULL);
				app_write(h, sizes[op & 7]);
			}
			check_wire();
			break;
		case 0xa0: case 0xa1: case 0xa2: case 0xa3:
		case 0xa4: case 0xa5: case 0xa6: case 0xa7:
			if ((h = held_nth(ARG())) != NULL)
				app_write(h, sizes[op & 7]);
			check_wire();
			break;
		case 0xa8: case 0xa9: case 0xaa: case 0xab: case 0xac:
			a = ARG();
			if ((h = held_nth(a)) == NULL)
				break;
			if (op == 0xa8)
				app_shutdown(h);
			else if (op == 0xa9)
				app_reset(h);
			else if (op == 0xaa)
				app_release(h);
			else if (op == 0xab || op == 0xac)
				app_read(h, op == 0xab ? SIZE_MAX :
				    (size_t)ARG() * 64);
			evbuffer_drain(F.scratch,
			    evbuffer_get_length(F.scratch));
			check_wire();
			break;
		case 0xad:
		case 0xae:
			a = ARG();
			len = big[(op == 0xad ? a : ARG()) & 3];
			if (len > SYNTH_CAP - F.synth)
				break;
			F.synth += len;
			if (op == 0xae) {
				if ((h = held_nth(a)) == NULL)
					break;
				synth_hdr(h->id, len);
			}
			synth_feed(len);
			break;
		case 0xaf:
			/* New frames follow the new size from here on. */
			check_wire();
			F.cfg.frame_max = frame_sizes[ARG() % 5];
			mux_set_frame_max(F.m, F.cfg.frame_max);
			break;
		case 0xb0:
			if (mux_ping(F.m) == 0) {
				F.ping_out = 1;
				F.ping_time = F.now;
			} else {
				CHECK(F.proto_err);
			}
			check_wire();
			break;
		case 0xb1:
			CHECK(mux_goaway(F.m, ARG() % 3) == 0 || F.proto_err);
			CHECK(mux_is_closing(F.m));
			check_wire();
			break;
		case 0xb2: case 0xb3: case 0xb4: case 0xb5:
		case 0xb6: case 0xb7:
			F.now += ticks[op - 0xb2];
			mux_set_time(F.m, F.now);
			break;
		case 0xbf:
			a = ARG();
			if ((h = held_nth(a >> 1)) == NULL)
				break;
			h->pull = a & 1;
			mux_stream_set_pull(h->s, h->pull);
			check_wire();
			break;
		default:	/* 0xb8-0xbe */
			pump();
			break;
		}
	}
	if (n > 0 && !pending && mux_output_pending(F.m))
		CHECK(F.want_calls != calls);
#undef ARG
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zeros[DLEN];
	uint8_t dec[DLEN];
	size_t ops = 1 + DLEN;
	int i;

	memset(&F, 0, sizeof(F));
	memcpy(dec, zeros, sizeof(dec));
	if (size > 1)
		memcpy(dec, data + 1, size - 1 < DLEN ? size - 1 : DLEN);
	F.d = dec;
	make_config(size > 0 ? data[0] : 0);
	F.ids_mask = 63;
	CHECK((F.ids = calloc(F.ids_mask + 1, sizeof(*F.ids))) != NULL);
	F.fed_cap = size + 1;
	CHECK((F.fed = malloc(F.fed_cap)) != NULL);
	CHECK((F.in = evbuffer_new()) != NULL);
	CHECK((F.wire = evbuffer_new()) != NULL);
	CHECK((F.scratch = evbuffer_new()) != NULL);
	CHECK((F.m = mux_new(&F.cfg, &callbacks, &F)) != NULL);
	CHECK(mux_callback_arg(F.m) == &F);
	CHECK(mux_stream_count(F.m) == 0 && !mux_is_closing(F.m));

	if (size > ops)
		run_ops(data + ops, size - ops);

	/* Flush: everything queued must come out as well-formed frames. */
	pump();
	CHECK((uint32_t)held_count() <= mux_stream_count(F.m));
	if (F.proto_err)
		CHECK(F.goaway_after_err);
	/* A stream the application reset gets RST once the peer knows it
	 * (our SYN went out, or the peer opened it). */
	for (i = 0; i <= (int)F.ids_mask; i++) {
		if (F.ids[i].used && F.ids[i].app_reset &&
		    (F.ids[i].our_syn || !ours(F.ids[i].id)))
			CHECK(F.ids[i].our_rst);
	}

	F.freeing = 1;
	mux_free(F.m);
	for (i = 0; i < MAXHELD; i++)
		CHECK(!F.held[i].used);	/* all got on_stream_close */

	evbuffer_free(F.in);
	evbuffer_free(F.wire);
	evbuffer_free(F.scratch);
	free(F.fed);
	free(F.pings);
	free(F.ids);
	return (0);
}
