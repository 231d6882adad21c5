/*
 * peer: see peer.h.  (Moved here from test_limits.c, so that the hostile
 * peer tests can use it too.)
 */
#include <sys/socket.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "itest.h"
#include "peer.h"

/* mux: mxd opened a stream; the test peer takes none. */
static int
tp_on_open(struct mux *m, struct mux_stream *s, void *arg)
{

	(void)m;
	(void)s;
	(void)arg;
	return (-1);
}

/* mux: data or FIN for stream ${arg}. */
static void
tp_on_readable(struct mux_stream *s, void *arg)
{
	struct tp_stream *ts = arg;

	ck_assert(mux_stream_read(s, ts->rx, SIZE_MAX) >= 0);
	if (mux_stream_eof(s))
		ts->eof = 1;
}

/* mux: stream ${arg} was reset (or the session ended). */
static void
tp_on_close(struct mux_stream *s, void *arg, enum mux_close_reason why)
{
	struct tp_stream *ts = arg;

	(void)s;
	ts->closed = why;
	ts->s = NULL;
	if (why == MUX_CLOSE_RESET)
		ts->tp->resets++;
}

/* mux: mxd broke the protocol. */
static void
tp_on_error(struct mux *m, const char *why, void *arg)
{
	struct tp *tp = arg;

	(void)m;
	tp->error = why;
}

struct tp *
tp_connect_cfg(int port, const struct mux_config *cfg)
{
	static const struct mux_callbacks cb = {
		.on_stream_open = tp_on_open,
		.on_stream_readable = tp_on_readable,
		.on_stream_close = tp_on_close,
		.on_protocol_error = tp_on_error,
	};
	struct tp *tp = it_calloc(1, sizeof(*tp));

	tp->fd = it_connect(port);
	ck_assert_msg(tp->fd >= 0, "connect: %s", strerror(errno));
	ck_assert(fcntl(tp->fd, F_SETFL, O_NONBLOCK) == 0);
	ck_assert((tp->m = mux_new(cfg, &cb, tp)) != NULL);
	ck_assert((tp->in = evbuffer_new()) != NULL);
	ck_assert((tp->out = evbuffer_new()) != NULL);
	return (tp);
}

struct tp *
tp_connect(int port)
{
	struct mux_config cfg;

	mux_config_default(&cfg, 1);
	return (tp_connect_cfg(port, &cfg));
}

void
tp_free(struct tp *tp)
{
	int i;

	mux_free(tp->m);
	for (i = 0; i < tp->nst; i++) {
		evbuffer_free(tp->st[i]->rx);
		free(tp->st[i]);
	}
	free(tp->st);
	evbuffer_free(tp->in);
	evbuffer_free(tp->out);
	it_close(tp->fd);
}

/* One round: output, then wait at most ${ms} for input and feed it.
 * Returns -1 if mxd closed the link, else 0. */
static int
tp_round(struct tp *tp, int ms)
{
	struct pollfd pfd;
	int n;

	mux_set_time(tp->m, (uint64_t)it_now_ms() * 1000);
	if (evbuffer_get_length(tp->in) > 0)
		(void)mux_input(tp->m, tp->in);
	ck_assert(mux_output(tp->m, tp->out, 1 << 20) >= 0);
	while (evbuffer_get_length(tp->out) > 0 &&
	    evbuffer_write(tp->out, tp->fd) > 0)
		continue;
	ck_assert_msg(tp->error == NULL, "mxd broke the protocol: %s",
	    tp->error);
	if (tp->link_closed)
		return (-1);
	pfd.fd = tp->fd;
	pfd.events = POLLIN |
	    (evbuffer_get_length(tp->out) > 0 ? POLLOUT : 0);
	if (poll(&pfd, 1, ms) <= 0)
		return (0);
	n = evbuffer_read(tp->in, tp->fd, 256 * 1024);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		tp->link_closed = 1;
		return (-1);
	}
	mux_set_time(tp->m, (uint64_t)it_now_ms() * 1000);
	(void)mux_input(tp->m, tp->in);
	ck_assert_msg(tp->error == NULL, "mxd broke the protocol: %s",
	    tp->error);
	return (0);
}

int
tp_pump(struct tp *tp, int ms, int (*done)(struct tp *, void *), void *arg)
{
	int64_t deadline = it_now_ms() + ms;

	for (;;) {
		if (tp_round(tp, 0) < 0)
			return (-1);
		if (done != NULL && done(tp, arg))
			return (1);
		if (it_now_ms() >= deadline)
			return (0);
		if (tp_round(tp, 5) < 0)
			return (-1);
	}
}

/* tp_pump: mxd ${arg} has logged the link up. */
static int
tp_logged_up(struct tp *tp, void *arg)
{

	(void)tp;
	return (it_mxd_log_has(arg, "up (accepted"));
}

void
tp_wait_up(struct tp *tp, struct it_mxd *m)
{

	ck_assert_msg(tp_pump(tp, IT_WAIT_MS, tp_logged_up, m) == 1,
	    "mxd did not log the test peer's link up");
}

void
tp_run(struct tp *tp, int ms, struct tp_stream *ts, size_t want)
{
	int64_t deadline = it_now_ms() + ms;

	for (;;) {
		ck_assert_msg(tp_round(tp, 0) == 0, "mxd closed the link");
		if (ts != NULL && (ts->closed || (want > 0 && ts->eof &&
		    evbuffer_get_length(ts->rx) >= want)))
			return;
		if (it_now_ms() >= deadline)
			return;
		ck_assert_msg(tp_round(tp, 5) == 0, "mxd closed the link");
	}
}

struct tp_stream *
tp_open(struct tp *tp, const void *data, size_t len, int fin)
{
	struct tp_stream *ts, **nst;

	if (tp->nst == tp->cap) {
		tp->cap = tp->cap ? 2 * tp->cap : 64;
		nst = realloc(tp->st, (size_t)tp->cap * sizeof(*nst));
		ck_assert_msg(nst != NULL, "out of memory");
		tp->st = nst;
	}
	ck_assert((ts = calloc(1, sizeof(*ts))) != NULL);
	tp->st[tp->nst++] = ts;
	ts->tp = tp;
	ck_assert((ts->rx = evbuffer_new()) != NULL);
	ck_assert_msg((ts->s = mux_stream_open(tp->m, ts)) != NULL,
	    "mux_stream_open: %s", strerror(errno));
	if (len > 0)
		tp_write(ts, data, len);
	if (fin)
		mux_stream_shutdown(ts->s);
	return (ts);
}

void
tp_write(struct tp_stream *ts, const void *data, size_t len)
{
	struct evbuffer *b;

	ck_assert(ts->s != NULL);
	ck_assert((b = evbuffer_new()) != NULL);
	evbuffer_add(b, data, len);
	ck_assert(mux_stream_write(ts->s, b) >= 0);
	evbuffer_free(b);
}

void
tp_expect_reset(struct tp *tp, struct tp_stream *ts, const char *what)
{

	tp_run(tp, TP_RESET_MS, ts, 0);
	ck_assert_msg(ts->closed == MUX_CLOSE_RESET, "%s: not reset%s", what,
	    evbuffer_get_length(ts->rx) > 0 ? " (and got data)" : "");
}

void
tp_expect_reply(struct tp *tp, struct tp_stream *ts, const char *reply,
    const char *what)
{
	size_t len = strlen(reply);

	if (ts->s != NULL)
		mux_stream_shutdown(ts->s);
	tp_run(tp, IT_WAIT_MS, ts, len);
	ck_assert_msg(!ts->closed, "%s: reset", what);
	ck_assert_msg(ts->eof && evbuffer_get_length(ts->rx) == len &&
	    memcmp(evbuffer_pullup(ts->rx, -1), reply, len) == 0,
	    "%s: got %zu bytes%s", what, evbuffer_get_length(ts->rx),
	    ts->eof ? "" : " and no EOF");
	mux_stream_release(ts->s);
	ts->s = NULL;
	tp_run(tp, 50, NULL, 0);	/* the FIN goes out */
}

static int
eof_or_closed(struct tp *tp, void *arg)
{
	struct tp_stream *ts = arg;

	(void)tp;
	return (ts->eof || ts->closed);
}

void
tp_close(struct tp *tp, struct tp_stream *ts, const char *what)
{

	ck_assert_msg(ts->s != NULL, "%s: already ended", what);
	mux_stream_shutdown(ts->s);
	ck_assert_msg(tp_pump(tp, IT_WAIT_MS, eof_or_closed, ts) == 1,
	    "%s: no EOF", what);
	ck_assert_msg(!ts->closed, "%s: reset", what);
	evbuffer_drain(ts->rx, evbuffer_get_length(ts->rx));
	mux_stream_release(ts->s);
	ts->s = NULL;
	(void)tp_pump(tp, 20, NULL, NULL);	/* the FIN goes out */
}

/* tp_pump: the echo of ${arg} is complete (or the stream ended). */
struct echo_wait {
	struct tp_stream *ts;
	size_t		want;
};

static int
echo_done(struct tp *tp, void *arg)
{
	struct echo_wait *w = arg;

	(void)tp;
	return (w->ts->closed || evbuffer_get_length(w->ts->rx) >= w->want);
}

long
tp_echo(struct tp *tp, struct tp_stream *ts, const void *data, size_t len,
    int ms)
{
	struct echo_wait w = { ts, len };
	int64_t t0 = it_now_ms();
	int r;

	evbuffer_drain(ts->rx, evbuffer_get_length(ts->rx));
	tp_write(ts, data, len);
	r = tp_pump(tp, ms, echo_done, &w);
	if (r != 1 || ts->closed || evbuffer_get_length(ts->rx) != len ||
	    memcmp(evbuffer_pullup(ts->rx, -1), data, len) != 0)
		return (-1);
	evbuffer_drain(ts->rx, len);
	return ((long)(it_now_ms() - t0));
}

void
tp_reset(struct tp_stream *ts)
{

	if (ts->s != NULL) {
		mux_stream_reset(ts->s);
		ts->s = NULL;
		ts->closed = MUX_CLOSE_RESET;
	}
}

size_t
tp_svchdr(char *buf, const char *name)
{
	size_t n = strlen(name);

	buf[0] = (char)n;
	memcpy(buf + 1, name, n);
	buf[n + 1] = 0;
	buf[n + 2] = 0;
	return (n + 3);
}
