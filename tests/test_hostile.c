/*
 * A hostile peer: a listening mxd ($MXD_BIN, see itest.h; a dialing one in
 * dialer_faces_malformed_frames) faced with a peer in this process that
 * speaks broken yamux.  Two kinds of peer:
 *
 *   raw    a plain socket: frames written by hand, one field at a time
 *          wrong; what mxd answers is parsed frame by frame
 *   tp     the mux engine (peer.h), for floods of well-formed frames and a
 *          well-behaved stream beside the misbehaving ones
 *
 * Every malformed frame class of docs/PROTOCOL.md section 9 must get Go
 * Away (protocol error), the link closed and a log line saying why; the
 * channel the peer had open is closed with it (mxd's descriptors drop
 * back).  Floods that are legal but abusive (SYNs beyond the backlog, pings
 * never read, a huge Data length on a finished stream) get RSTs or are
 * discarded, with bounded memory, while a good stream beside them keeps
 * working.  A peer that drips its frames a byte a second is declared dead
 * after timeout.  mxd never crashes: at the end a good peer gets service
 * and mxd's descriptors and VmRSS are checked.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "itest.h"
#include "peer.h"

#define KIB		1024
#define MIB		(1024 * 1024)
#define TIMEOUT_MS	2000
#define KEEPALIVE_MS	500
#define END_MS		3000	/* Go Away and EOF within this */
#define HEADER_MS	5000	/* connect_timeout: a service header's deadline */
#define ANSWER_MS	1000	/* connect_timeout of a dialing mxd */

#define T_DATA	0
#define T_WU	1
#define T_PING	2
#define T_GOAWAY 3
#define F_SYN	1
#define F_ACK	2
#define F_FIN	4
#define F_RST	8

/* The service header of a channel to the echo target. */
#define ECHO_HDR	"\x04" "echo" "\x00\x00"

/* ------------------------------------------------------------ the mxd */

struct hb {
	struct it_targets *t;
	struct it_mxd	*b;
	int		lfd;		/* if mxd dials: the test's listener */
	int		link, metrics;
	int		fds_idle;	/* descriptors with no link */
	long		rss0;
};

/* Write the configuration of ${h}'s mxd (see hb_start), with keepalive
 * ${keepalive_ms}; returns its path. */
static const char *
hb_write_conf(struct hb *h, int keepalive_ms)
{
	int dial = h->lfd >= 0;

	return (it_write_file("b.conf", it_fmt("[daemon]\nmetrics = %s:%d\n\n"
	    "[link]\n%s = %s:%d\n%skeepalive = %dms\ntimeout = %dms\n"
	    "connect_timeout = %dms\ndrain_timeout = 5s\n\n%s", IT_HOST,
	    h->metrics, dial ? "connect" : "listen", IT_HOST, h->link,
	    dial ? "reconnect_min = 100ms\nreconnect_max = 500ms\n" : "",
	    keepalive_ms, TIMEOUT_MS, dial ? ANSWER_MS : HEADER_MS,
	    it_svc_connect("echo", h->t->port[IT_ECHO]))));
}

/*
 * Start an mxd with an echo service, keepalive 500 ms and timeout 2 s,
 * listening on h->link (connect_timeout HEADER_MS); or, if ${dial}, dialing
 * h->lfd, a socket the test listens on (connect_timeout ANSWER_MS,
 * reconnect_min 100 ms, reconnect_max 500 ms).  Note its idle descriptors
 * and VmRSS.
 */
static void
hb_start(struct hb *h, int dial)
{

	memset(h, 0, sizeof(*h));
	h->t = it_targets_start();
	if (dial)
		h->lfd = it_listen(8, 0, &h->link);
	else {
		h->lfd = -1;
		h->link = it_free_port();
	}
	h->metrics = it_free_port();
	h->b = it_mxd_start(hb_write_conf(h, KEEPALIVE_MS));
	if (!dial)
		it_mxd_wait_log(h->b, "link: waiting for the peer", IT_WAIT_MS);
	it_mxd_wait_log(h->b, "metrics: serving on", IT_WAIT_MS);
	h->fds_idle = it_fd_settled(h->b);
	h->rss0 = it_rss_kb(h->b->pid);
}

/* The value of metric ${series} of ${h}, -1 if missing. */
static long long
metric(struct hb *h, const char *series)
{
	char *buf = it_http_get(h->metrics, "/metrics"), *p;
	char *want = it_fmt("\n%s ", series);

	if ((p = strstr(buf, want)) == NULL)
		return (-1);
	return (strtoll(p + strlen(want), NULL, 10));
}

/* mxd must be alive, back to its idle descriptors (every channel and the
 * link closed) within ${ms}. */
static void
hb_idle(struct hb *h, int ms, const char *what)
{
	int n;

	ck_assert_msg(kill(h->b->pid, 0) == 0, "%s: mxd is gone", what);
	n = it_fd_wait(h->b->pid, h->fds_idle, ms);
	ck_assert_msg(n == h->fds_idle, "%s: mxd has %d descriptors, %d when "
	    "idle", what, n, h->fds_idle);
}

/* ------------------------------------------------------------ raw peer */

/* A peer on a plain socket; what mxd sends is parsed as it comes. */
struct raw {
	int		fd;
	uint8_t		hdr[12];
	size_t		hlen;
	uint32_t	skip, skip_id;	/* Data payload still to come */
	long		goaway;		/* its code, -1: none yet */
	int		eof;		/* EOF or reset: the link is closed */
	int		err;		/* the errno, 0 for EOF */
	uint64_t	frames, pings, rsts;
	uint32_t	ping_opaque;	/* of mxd's last ping */
	uint64_t	answered;	/* pings answered by done_answer */
	size_t		got1;		/* payload bytes on stream 1 */
	char		data1[256];	/* ... the first of them */
};

/* A raw peer on connected socket ${fd}. */
static struct raw *
raw_new(int fd)
{
	struct raw *r = it_calloc(1, sizeof(*r));

	r->fd = fd;
	r->goaway = -1;
	return (r);
}

/* Parse ${n} bytes at ${p} that mxd sent. */
static void
raw_feed(struct raw *r, const uint8_t *p, size_t n)
{
	uint32_t id, len, k;

	while (n > 0) {
		if (r->skip > 0) {
			k = n < r->skip ? (uint32_t)n : r->skip;
			if (r->skip_id == 1) {
				size_t c = k;

				if (r->got1 + c > sizeof(r->data1))
					c = r->got1 < sizeof(r->data1) ?
					    sizeof(r->data1) - r->got1 : 0;
				memcpy(r->data1 + r->got1, p, c);
				r->got1 += k;
			}
			r->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		k = (uint32_t)(12 - r->hlen);
		if (k > n)
			k = (uint32_t)n;
		memcpy(r->hdr + r->hlen, p, k);
		r->hlen += k;
		p += k;
		n -= k;
		if (r->hlen < 12)
			break;
		r->hlen = 0;
		r->frames++;
		id = (uint32_t)r->hdr[4] << 24 | (uint32_t)r->hdr[5] << 16 |
		    (uint32_t)r->hdr[6] << 8 | r->hdr[7];
		len = (uint32_t)r->hdr[8] << 24 | (uint32_t)r->hdr[9] << 16 |
		    (uint32_t)r->hdr[10] << 8 | r->hdr[11];
		switch (r->hdr[1]) {
		case T_DATA:
			r->skip = len;
			r->skip_id = id;
			break;
		case T_PING:
			r->pings++;
			if (r->hdr[3] & F_SYN)
				r->ping_opaque = len;
			break;
		case T_GOAWAY:
			r->goaway = (long)len;
			break;
		default:
			break;
		}
		if (r->hdr[3] & F_RST)
			r->rsts++;
	}
}

/* Read and parse what mxd sends for at most ${ms}, or until ${done}(r) (or
 * EOF).  Returns 1 if ${done} said so, 0 otherwise. */
static int
raw_wait(struct raw *r, int ms, int (*done)(struct raw *))
{
	int64_t deadline = it_now_ms() + ms;
	uint8_t buf[64 * KIB];
	long n;
	int left;

	for (;;) {
		if (done != NULL && done(r))
			return (1);
		if (r->eof)
			return (0);
		left = (int)(deadline - it_now_ms());
		if (left <= 0)
			return (0);
		n = it_recv_wait(r->fd, buf, sizeof(buf), left);
		if (n == IT_TIMEOUT)
			return (done != NULL && done(r));
		if (n <= 0) {
			r->eof = 1;
			r->err = (int)-n;
			continue;
		}
		raw_feed(r, buf, (size_t)n);
	}
}

static int
done_echo1(struct raw *r)
{

	return (r->got1 >= 4);
}

/* Send frame header ${type}, ${flags}, ${id}, ${len} (and no payload). */
static void
raw_frame(struct raw *r, int type, int flags, uint32_t id, uint32_t len)
{
	uint8_t b[12] = { 0, (uint8_t)type, (uint8_t)(flags >> 8),
	    (uint8_t)flags, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
	    (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 24),
	    (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };

	ck_assert_msg(it_send_all(r->fd, b, sizeof(b)) == 0, "send: %s",
	    strerror(errno));
}

static void
raw_bytes(struct raw *r, const void *p, size_t n)
{

	ck_assert_msg(it_send_all(r->fd, p, n) == 0, "send: %s",
	    strerror(errno));
}

static int
done_ping1(struct raw *r)
{

	return (r->pings >= 1);
}

/*
 * A raw peer of ${h}'s mxd, once mxd's first ping has come: connected to
 * its link port, or, if it dials, the connection it made.  If ${answer}, it
 * answers the ping, as any yamux peer does, and mxd logs the link up; what
 * it sends after that is the test's.
 */
static struct raw *
raw_peer(struct hb *h, int answer)
{
	struct raw *r;
	int fd;

	for (;;) {
		fd = h->lfd >= 0 ? it_accept(h->lfd) : it_connect(h->link);
		ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
		r = raw_new(fd);
		ck_assert_msg(raw_wait(r, IT_WAIT_MS, done_ping1),
		    "no ping from mxd");
		(void)raw_wait(r, 1, NULL);
		if (!r->eof)
			break;
		/* A dial accepted late: mxd gave up on it (connect_timeout)
		 * and dials again. */
		it_close(fd);
	}
	if (answer) {
		raw_frame(r, T_PING, F_ACK, 0, r->ping_opaque);
		it_mxd_wait_log(h->b, h->lfd >= 0 ? "up (connected)" :
		    "up (accepted)", IT_WAIT_MS);
	}
	return (r);
}

/* Open stream 1 to the echo service and see "ping" come back. */
static void
raw_open_echo(struct raw *r)
{
	static const char d[] = ECHO_HDR "ping";

	raw_frame(r, T_WU, F_SYN, 1, 0);
	raw_frame(r, T_DATA, 0, 1, sizeof(d) - 1);
	raw_bytes(r, d, sizeof(d) - 1);
	ck_assert_msg(raw_wait(r, IT_WAIT_MS, done_echo1) &&
	    memcmp(r->data1, "ping", 4) == 0, "stream 1: no echo");
}

/* ------------------------------------------------------------ malformed */

struct fr {
	uint8_t		ver, type;
	uint16_t	flags;
	uint32_t	id, len;
};

/* A malformed frame class: what the peer sends, what mxd must say. */
static const struct bad {
	const char	*what;
	const char	*why;		/* in mxd's log, after "down: " */
	int		goaway;		/* Go Away(1) comes before EOF */
	int		open;		/* stream 1 (echo) open first */
	int		nf;
	struct fr	f[3];
	const char	*raw;		/* or bytes, and then shut down */
	size_t		rawlen;
	int		shut;
} bad[] = {
	{ "version 1", "unknown protocol version", 1, 1, 1,
	    { { 1, T_WU, 0, 1, 0 } }, NULL, 0, 0 },
	{ "frame type 4", "unknown frame type", 1, 1, 1,
	    { { 0, 4, 0, 1, 0 } }, NULL, 0, 0 },
	{ "frame type 255", "unknown frame type", 1, 0, 1,
	    { { 0, 255, 0xffff, 0xffffffff, 0xffffffff } }, NULL, 0, 0 },
	{ "Data on stream 0", "stream frame on stream 0", 1, 1, 1,
	    { { 0, T_DATA, 0, 0, 0 } }, NULL, 0, 0 },
	{ "Window Update on stream 0", "stream frame on stream 0", 1, 1, 1,
	    { { 0, T_WU, 0, 0, 4096 } }, NULL, 0, 0 },
	{ "Ping on a stream", "session frame on a stream", 1, 1, 1,
	    { { 0, T_PING, F_SYN, 1, 7 } }, NULL, 0, 0 },
	{ "Go Away on a stream", "session frame on a stream", 1, 1, 1,
	    { { 0, T_GOAWAY, 0, 1, 0 } }, NULL, 0, 0 },
	{ "SYN with mxd's id parity", "SYN with our id parity", 1, 1, 1,
	    { { 0, T_WU, F_SYN, 2, 0 } }, NULL, 0, 0 },
	{ "SYN for a live stream", "SYN for a live stream", 1, 1, 1,
	    { { 0, T_DATA, F_SYN, 1, 0 } }, NULL, 0, 0 },
	{ "stream id reused", "SYN for a used stream id", 1, 1, 3,
	    { { 0, T_WU, F_SYN, 3, 0 }, { 0, T_WU, F_RST, 3, 0 },
	    { 0, T_WU, F_SYN, 3, 0 } }, NULL, 0, 0 },
	{ "id too far below the highest", "SYN for a used stream id", 1, 1,
	    2, { { 0, T_WU, F_SYN, 4001, 0 }, { 0, T_WU, F_SYN, 5, 0 } }, NULL,
	    0, 0 },
	{ "Data for a stream never opened", "frame for a stream never opened",
	    1, 1, 1, { { 0, T_DATA, 0, 101, 0 } }, NULL, 0, 0 },
	{ "Window Update for a stream never opened",
	    "frame for a stream never opened", 1, 1, 1,
	    { { 0, T_WU, F_ACK, 101, 1 } }, NULL, 0, 0 },
	{ "Data beyond the window", "data beyond the granted window", 1, 1, 1,
	    { { 0, T_DATA, 0, 1, 256 * KIB + 1 } }, NULL, 0, 0 },
	{ "huge Data length", "data beyond the granted window", 1, 1, 1,
	    { { 0, T_DATA, 0, 1, 0xffffffff } }, NULL, 0, 0 },
	{ "window overflow", "window update overflows 32 bits", 1, 1, 1,
	    { { 0, T_WU, 0, 1, 0xffffffff } }, NULL, 0, 0 },
	{ "window overflow in two steps", "window update overflows 32 bits",
	    1, 1, 2, { { 0, T_WU, 0, 1, 0x7fffffff },
	    { 0, T_WU, 0, 1, 0x7fffffff } }, NULL, 0, 0 },
	{ "Data after FIN", "data after FIN", 1, 1, 2,
	    { { 0, T_DATA, F_FIN, 1, 0 }, { 0, T_DATA, 0, 1, 0 } }, NULL, 0,
	    0 },
	{ "an HTTP request", "unknown protocol version", 1, 0, 0, { { 0 } },
	    "GET / HTTP/1.1\r\nHost: mxd\r\n\r\n", 29, 0 },
	{ "a TLS ClientHello", "the peer sent a TLS handshake", 0, 0, 0,
	    { { 0 } }, "\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03", 11,
	    0 },
	{ "EOF inside a frame header", "peer closed the link", 0, 1, 0,
	    { { 0 } }, "\x00\x01\x00", 3, 1 },
};

#define NBAD	(sizeof(bad) / sizeof(bad[0]))

/* Send class ${c} on ${r}, in one write (so that mxd reads it whole). */
static void
send_bad(struct raw *r, const struct bad *c)
{
	uint8_t b[3 * 12 + 64], *p = b;
	int i;

	for (i = 0; i < c->nf; i++, p += 12) {
		const struct fr *f = &c->f[i];

		p[0] = f->ver;
		p[1] = f->type;
		p[2] = (uint8_t)(f->flags >> 8);
		p[3] = (uint8_t)f->flags;
		p[4] = (uint8_t)(f->id >> 24);
		p[5] = (uint8_t)(f->id >> 16);
		p[6] = (uint8_t)(f->id >> 8);
		p[7] = (uint8_t)f->id;
		p[8] = (uint8_t)(f->len >> 24);
		p[9] = (uint8_t)(f->len >> 16);
		p[10] = (uint8_t)(f->len >> 8);
		p[11] = (uint8_t)f->len;
	}
	ck_assert(c->rawlen <= 64);
	if (c->raw != NULL) {
		memcpy(p, c->raw, c->rawlen);
		p += c->rawlen;
	}
	raw_bytes(r, b, (size_t)(p - b));
	if (c->shut)
		ck_assert(shutdown(r->fd, SHUT_WR) == 0);
}

/*
 * Every class on its own connection: Go Away(1) (where the class is a
 * protocol error), then EOF, within END_MS; the reason in mxd's log; the
 * stream that was open closed with the link.  Then a good peer is served.
 */
START_TEST(malformed_frames)
{
	int64_t t0, ms, worst = 0;
	struct tp_stream *ts;
	struct raw *r;
	struct tp *tp;
	struct hb h;
	size_t i;
	long rss;

	hb_start(&h, 0);
	for (i = 0; i < NBAD; i++) {
		const struct bad *c = &bad[i];

		it_mxd_mark(h.b);
		/* Bytes that are no yamux at all come first, as from a
		 * stray client; bad frames from a peer that answered. */
		r = raw_peer(&h, c->raw == NULL);
		if (c->open)
			raw_open_echo(r);
		t0 = it_now_ms();
		send_bad(r, c);
		(void)raw_wait(r, END_MS, NULL);
		ms = it_now_ms() - t0;
		if (ms > worst)
			worst = ms;
		ck_assert_msg(r->eof, "%s: the link is still open after %d ms",
		    c->what, END_MS);
		if (c->goaway)
			ck_assert_msg(r->goaway == 1, "%s: Go Away %ld, not 1 "
			    "(protocol error)", c->what, r->goaway);
		it_mxd_wait_log(h.b, it_fmt(c->raw == NULL ? ": down: %s" :
		    ": closed before the peer answered a ping: %s", c->why),
		    IT_WAIT_MS);
		it_close(r->fd);
		hb_idle(&h, IT_WAIT_MS, c->what);
		printf("malformed_frames: %-40s -> %s%s (%jd ms)\n", c->what,
		    c->goaway ? "Go Away(1), " : "", c->why, (intmax_t)ms);
	}
	/* A good peer: served. */
	tp = tp_connect(h.link);
	ts = tp_open(tp, ECHO_HDR "still here", 17, 0);
	tp_expect_reply(tp, ts, "still here", "a good peer afterwards");
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the good peer");
	rss = it_rss_kb(h.b->pid);
	printf("malformed_frames: %zu classes, each ended within %jd ms; "
	    "VmRSS %ld -> %ld KiB\n", NBAD, (intmax_t)worst, h.rss0, rss);
	if (!it_san())
		ck_assert_msg(rss < h.rss0 + 8 * 1024, "VmRSS grew from %ld to "
		    "%ld KiB", h.rss0, rss);
	it_finish();
}
END_TEST

/* 1 once mxd's first ping has come. */
/* The classes of bad[] that do not need a stream open at mxd, which the
 * dialing side (no services) cannot have. */
static const char *const dialer_bad[] = {
	"version 1", "frame type 255", "Data on stream 0",
	"Window Update on stream 0", "an HTTP request", "a TLS ClientHello",
};

/*
 * The same engine parses both ends, but the link's handling differs: here
 * mxd dials, and the hostile peer is the listener it reaches.  For each
 * class: Go Away(1) where it is a protocol error, EOF, the reason in mxd's
 * log, and mxd dials again, backing off since the peer never answered a
 * ping: reconnect_min 100 ms doubles up to reconnect_max 500 ms, each
 * delay drawn from the upper half, so from the fourth redial on mxd waits
 * at least 250 ms (a lower bound, which load can only lengthen).
 */
START_TEST(dialer_faces_malformed_frames)
{
	struct raw *r;
	struct hb h;
	size_t i, k;
	int64_t t_eof = 0, gap, gap_min = INT64_MAX;

	hb_start(&h, 1);
	for (k = 0; k < sizeof(dialer_bad) / sizeof(dialer_bad[0]); k++) {
		const struct bad *c = NULL;

		for (i = 0; i < NBAD && c == NULL; i++)
			if (strcmp(bad[i].what, dialer_bad[k]) == 0)
				c = &bad[i];
		ck_assert_msg(c != NULL, "no class \"%s\"", dialer_bad[k]);
		r = raw_peer(&h, 0);	/* mxd dialed */
		gap = it_now_ms() - t_eof;
		if (k >= 4 && gap < gap_min)
			gap_min = gap;
		it_mxd_mark(h.b);
		send_bad(r, c);
		(void)raw_wait(r, END_MS, NULL);
		t_eof = it_now_ms();
		ck_assert_msg(r->eof, "%s: the link is still open after %d ms",
		    c->what, END_MS);
		if (c->goaway)
			ck_assert_msg(r->goaway == 1, "%s: Go Away %ld, not 1 "
			    "(protocol error)", c->what, r->goaway);
		it_mxd_wait_log(h.b, it_fmt(": closed before the peer answered "
		    "a ping: %s", c->why), IT_WAIT_MS);
		it_close(r->fd);
		printf("dialer_faces_malformed_frames: %-28s -> %s%s\n",
		    c->what, c->goaway ? "Go Away(1), " : "", c->why);
	}
	ck_assert_msg(gap_min >= 200, "mxd redialed %jd ms after a peer that "
	    "never answered dropped it: no backoff", (intmax_t)gap_min);
	printf("dialer_faces_malformed_frames: from the fourth redial on, mxd "
	    "waited at least %jd ms\n", (intmax_t)gap_min);
	it_close(h.lfd);
	it_finish();
}
END_TEST

/*
 * mxd dials a listener that accepts and says nothing (another program on
 * the port, a hung peer): it closes the connection once its first ping has
 * gone unanswered for connect_timeout (1 s; before, only timeout, 2 s,
 * ended it), says so, is never up, and dials again.
 */
START_TEST(dialer_faces_silent_listener)
{
	struct raw *r;
	struct hb h;
	int64_t t0, ms, worst = 0;
	int i;

	hb_start(&h, 1);
	it_mxd_mark(h.b);
	for (i = 0; i < 3; i++) {
		r = raw_peer(&h, 0);
		t0 = it_now_ms();
		(void)raw_wait(r, ANSWER_MS + 1000, NULL);
		ms = it_now_ms() - t0;
		ck_assert_msg(r->eof, "the silent connection is still open "
		    "after %jd ms (connect_timeout %d ms)", (intmax_t)ms,
		    ANSWER_MS);
		if (ms > worst)
			worst = ms;
		it_close(r->fd);
	}
	ck_assert_int_ge(it_mxd_log_count(h.b, "closed before the peer "
	    "answered a ping: no answer to our first ping within "
	    "connect_timeout"), 3);
	ck_assert_msg(!it_mxd_log_has(h.b, "up (connected"), "up with a "
	    "silent listener");
	printf("dialer_faces_silent_listener: 3 silent connections, each "
	    "closed within %jd ms of its accept (connect_timeout %d ms)\n",
	    (intmax_t)worst, ANSWER_MS);
	it_close(h.lfd);
	it_finish();
}
END_TEST

/* raw_wait: answer every ping of mxd's (never done). */
static int
done_answer(struct raw *r)
{

	if (r->pings > r->answered) {
		raw_frame(r, T_PING, F_ACK, 0, r->ping_opaque);
		r->answered = r->pings;
	}
	return (0);
}

/*
 * A reload that lowers keepalive applies to the link up: mxd's pings come
 * that much more often at once, the link never down.  (A firewall's idle
 * timeout found too short is mended without cutting the link.)
 */
START_TEST(keepalive_reload)
{
	struct raw *r;
	struct hb h;
	uint64_t before, after;

	hb_start(&h, 0);
	r = raw_peer(&h, 1);
	r->answered = r->pings;
	(void)raw_wait(r, 2000, done_answer);
	before = r->pings;
	hb_write_conf(&h, 100);
	it_mxd_mark(h.b);
	it_mxd_signal(h.b, SIGHUP);
	it_mxd_wait_log(h.b, "reloaded", IT_WAIT_MS);
	(void)raw_wait(r, 2000, done_answer);
	after = r->pings - before;
	printf("keepalive_reload: %ju pings in 2 s with keepalive %d ms, %ju "
	    "after a reload to 100 ms\n", (uintmax_t)before, KEEPALIVE_MS,
	    (uintmax_t)after);
	ck_assert_msg(!r->eof, "the link was closed");
	ck_assert_msg(after >= 12 && after >= 3 * before, "%ju pings in 2 s "
	    "after the reload to keepalive 100 ms (%ju before, at %d ms)",
	    (uintmax_t)after, (uintmax_t)before, KEEPALIVE_MS);
	ck_assert_msg(!it_mxd_log_has(h.b, ": down: "), "the link went down");
	it_close(r->fd);
	hb_idle(&h, IT_WAIT_MS, "after the reload");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ floods */

/* tp_pump: every flood stream answered (refused, or a channel at mxd). */
struct flood {
	struct hb	*h;
	int		n;
	long long	channels;
};

static int
flood_answered(struct tp *tp, void *arg)
{
	struct flood *f = arg;

	f->channels = metric(f->h, "mxd_link_channels");
	return ((long long)tp->resets + f->channels - 1 >= f->n);
}

/*
 * 20,000 SYNs at once, far beyond the backlog of 1,024 unanswered: mxd
 * refuses what is beyond it with RST, takes the rest as channels, keeps
 * its memory bounded, and a good stream beside the flood keeps echoing.
 */
START_TEST(syn_flood)
{
	const int n = 20000;
	struct tp_stream *g, **fl;
	struct mux_config cfg;
	struct flood f;
	struct tp *tp;
	struct hb h;
	long rss, ms, worst = 0;
	char data[1000];
	int i, r;

	hb_start(&h, 0);
	mux_config_default(&cfg, 1);
	cfg.max_inflight_opens = 2 * n;	/* every SYN at once */
	cfg.max_streams = 2 * n;
	tp = tp_connect_cfg(h.link, &cfg);
	g = tp_open(tp, ECHO_HDR, sizeof(ECHO_HDR) - 1, 0);
	it_gen(1, 0, data, sizeof(data));
	ck_assert_msg(tp_echo(tp, g, data, sizeof(data), IT_WAIT_MS) >= 0,
	    "the good stream does not echo");

	fl = it_calloc((size_t)n, sizeof(*fl));
	for (i = 0; i < n; i++)
		fl[i] = tp_open(tp, NULL, 0, 0);
	f.h = &h;
	f.n = n;
	f.channels = 0;
	for (i = 0; i < 200; i++) {
		r = tp_pump(tp, 50, flood_answered, &f);
		ck_assert_msg(r >= 0, "mxd closed the link");
		/* The good stream, in the middle of it. */
		it_gen(2 + (uint64_t)i, 0, data, sizeof(data));
		ms = tp_echo(tp, g, data, sizeof(data), IT_WAIT_MS);
		ck_assert_msg(ms >= 0, "the good stream stalled in the flood");
		if (ms > worst)
			worst = ms;
		if (r == 1)
			break;
	}
	rss = it_rss_kb(h.b->pid);
	printf("syn_flood: %d SYNs: %ju refused with RST, %lld taken as "
	    "channels; good stream round trip at most %ld ms; VmRSS %ld -> "
	    "%ld KiB\n", n, (uintmax_t)tp->resets, f.channels - 1, worst,
	    h.rss0, rss);
	ck_assert_msg(r == 1, "not every SYN was answered: %ju RST, %lld "
	    "channels", (uintmax_t)tp->resets, f.channels);
	ck_assert_msg(tp->resets > 0, "nothing refused beyond the backlog");
	/* Refused opens are counted and logged (a line per run of them). */
	ck_assert_msg(metric(&h, "mxd_limit_refused_total{limit=\"max_backlog\"}")
	    > 0, "refusals beyond the backlog not counted");
	ck_assert_msg(it_mxd_log_has(h.b, "max_backlog (1024) reached"),
	    "refusals beyond the backlog not logged");
	if (!it_san())
		ck_assert_msg(rss < h.rss0 + 48 * 1024, "VmRSS grew from %ld to "
		    "%ld KiB", h.rss0, rss);
	/* The flood ends: mxd lets go of every channel it took. */
	for (i = 0; i < n; i++)
		tp_reset(fl[i]);
	for (i = 0; i < 200 && metric(&h, "mxd_link_channels") != 1; i++)
		ck_assert(tp_pump(tp, 50, NULL, NULL) >= 0);
	ck_assert_int_eq(metric(&h, "mxd_link_channels"), 1);
	ck_assert_msg(tp_echo(tp, g, "after", 5, IT_WAIT_MS) >= 0,
	    "the good stream after the flood");
	tp_close(tp, g, "the good stream");
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the flood");
	it_finish();
}
END_TEST

/*
 * Pings, as fast as the socket takes them, from a peer that never reads:
 * mxd stops reading once its replies back up (its memory stays bounded),
 * and, the peer making no progress, declares the link dead after timeout.
 * Against the listening mxd (_i 0), then the dialing one (_i 1), which
 * then dials again.
 */
START_TEST(ping_flood_unread)
{
	uint8_t *buf;
	const size_t len = 1 * MIB;
	struct hb h;
	struct raw *r;
	size_t i, off = 0;
	uint64_t sent = 0;
	int64_t blocked = 0, t0, deadline;
	long rss, rss_max = 0;
	ssize_t n;

	hb_start(&h, _i);
	buf = it_calloc(1, len);
	for (i = 0; i + 12 <= len; i += 12) {
		buf[i + 1] = T_PING;
		buf[i + 3] = F_SYN;
		buf[i + 11] = (uint8_t)i;
	}
	it_mxd_mark(h.b);	/* before the connect: mxd may log at once */
	r = raw_peer(&h, 1);
	ck_assert(fcntl(r->fd, F_SETFL, O_NONBLOCK) == 0);
	t0 = it_now_ms();
	deadline = t0 + 30000;
	/* Write until the socket has taken nothing for 300 ms. */
	while (it_now_ms() < deadline) {
		n = send(r->fd, buf + off, len - off - (len % 12), MSG_NOSIGNAL);
		if (n > 0) {
			sent += (uint64_t)n;
			off = (off + (size_t)n) % (len - len % 12);
			blocked = 0;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (blocked == 0)
				blocked = it_now_ms();
			else if (it_now_ms() - blocked > 300)
				break;
			usleep(5000);
		} else {
			break;		/* mxd closed it already */
		}
		if ((rss = it_rss_kb(h.b->pid)) > rss_max)
			rss_max = rss;
	}
	/* mxd has stopped reading: dead after timeout. */
	it_mxd_wait_log(h.b, ": down: timed out", TIMEOUT_MS + 2000);
	printf("ping_flood_unread%s: %ju bytes of pings (%ju pings) taken "
	    "before mxd stopped reading; link dead after %jd ms; VmRSS %ld -> "
	    "at most %ld KiB\n", _i ? " (dialing mxd)" : "", (uintmax_t)sent,
	    (uintmax_t)(sent / 12), (intmax_t)(it_now_ms() - t0), h.rss0,
	    rss_max);
	if (!it_san())
		ck_assert_msg(rss_max < h.rss0 + 16 * 1024, "VmRSS grew from %ld "
		    "to %ld KiB", h.rss0, rss_max);
	it_close(r->fd);
	if (h.lfd < 0) {
		hb_idle(&h, IT_WAIT_MS, "after the ping flood");
	} else {
		it_mxd_mark(h.b);
		r = raw_peer(&h, 1);	/* up again */
		it_close(r->fd);
		it_close(h.lfd);
	}
	it_finish();
}
END_TEST

static int
done_pong(struct raw *r)
{

	return (r->pings >= 2);
}

/*
 * A Data frame of 64 MiB for a stream that has ended (legal: discarded):
 * mxd skips the payload as it comes, without holding it, then reads the
 * next frame (a ping, answered).  The open stream beside it still echoes.
 */
START_TEST(huge_length_discarded)
{
	const uint32_t big = 64 * MIB;
	char *junk = it_calloc(1, MIB);
	struct raw *r;
	struct hb h;
	long rss, rss_max = 0;
	uint32_t i;

	hb_start(&h, 0);
	r = raw_peer(&h, 1);
	raw_open_echo(r);
	/* Stream 3: opened and reset by the peer, so ended at mxd. */
	raw_frame(r, T_WU, F_SYN, 3, 0);
	raw_frame(r, T_WU, F_RST, 3, 0);
	raw_frame(r, T_DATA, 0, 3, big);
	for (i = 0; i < big / MIB; i++) {
		raw_bytes(r, junk, MIB);
		if ((rss = it_rss_kb(h.b->pid)) > rss_max)
			rss_max = rss;
		(void)raw_wait(r, 0, NULL);
	}
	raw_frame(r, T_PING, F_SYN, 0, 77);
	/* mxd's first ping (at the start) and the answer to ours. */
	ck_assert_msg(raw_wait(r, IT_WAIT_MS, done_pong), "no pong after the "
	    "discarded payload (%ju pings seen, eof %d)", (uintmax_t)r->pings,
	    r->eof);
	/* Stream 1 still echoes. */
	raw_frame(r, T_DATA, 0, 1, 4);
	raw_bytes(r, "pong", 4);
	r->got1 = 0;
	ck_assert_msg(raw_wait(r, IT_WAIT_MS, done_echo1) &&
	    memcmp(r->data1, "pong", 4) == 0, "stream 1 stopped echoing");
	printf("huge_length_discarded: %u MiB of payload for an ended stream "
	    "skipped; VmRSS %ld -> at most %ld KiB\n", big / MIB, h.rss0,
	    rss_max);
	if (!it_san())
		ck_assert_msg(rss_max < h.rss0 + 8 * 1024, "VmRSS grew from %ld "
		    "to %ld KiB", h.rss0, rss_max);
	it_close(r->fd);
	hb_idle(&h, IT_WAIT_MS, "after the huge frame");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ slow drip */

/*
 * A peer that sends its next frame header one byte a second: no frame in
 * timeout (2 s), so mxd declares the link dead (with a log line), and the
 * stream it had open is closed with it.
 */
START_TEST(slow_drip_frames)
{
	static const uint8_t hdr[12] = { 0, T_WU, 0, 0, 0, 0, 0, 1, 0, 0, 1,
	    0 };
	struct raw *r;
	struct hb h;
	int64_t t0, ms = 0;
	size_t i;

	hb_start(&h, 0);
	it_mxd_mark(h.b);
	r = raw_peer(&h, 1);
	raw_open_echo(r);
	t0 = it_now_ms();
	for (i = 0; i < sizeof(hdr) && !r->eof; i++) {
		if (send(r->fd, hdr + i, 1, MSG_NOSIGNAL) != 1)
			break;
		(void)raw_wait(r, 1000, NULL);
	}
	ms = it_now_ms() - t0;
	ck_assert_msg(r->eof, "mxd still holds a link that sent %zu bytes in "
	    "%jd ms", i, (intmax_t)ms);
	it_mxd_wait_log(h.b, ": down: timed out: no frame from the peer",
	    IT_WAIT_MS);
	ck_assert_msg(ms <= TIMEOUT_MS + KEEPALIVE_MS + 1000, "declared dead "
	    "after %jd ms (timeout %d ms)", (intmax_t)ms, TIMEOUT_MS);
	printf("slow_drip_frames: a byte a second: link declared dead after "
	    "%jd ms, %zu bytes into a frame header\n", (intmax_t)ms, i);
	it_close(r->fd);
	hb_idle(&h, IT_WAIT_MS, "after the drip");
	it_finish();
}
END_TEST

/*
 * A stream whose service header arrives a byte a second, beside a good
 * stream that echoes all along: the good one never waits, the slow one is
 * routed once its header is whole, and nothing else is disturbed.
 */
START_TEST(slow_drip_header)
{
	struct tp_stream *g, *d;
	struct tp *tp;
	struct hb h;
	long ms, worst = 0;
	int64_t next;
	char data[256];
	int i, k = 0;

	hb_start(&h, 0);
	tp = tp_connect(h.link);
	g = tp_open(tp, ECHO_HDR, sizeof(ECHO_HDR) - 1, 0);
	d = tp_open(tp, ECHO_HDR, 1, 0);
	next = it_now_ms() + 1000;
	for (i = 0; k < 3; i++) {
		if (it_now_ms() >= next) {
			tp_write(d, ECHO_HDR + 1 + k, 1);
			k++;
			next += 1000;
		}
		it_gen((uint64_t)i, 0, data, sizeof(data));
		ms = tp_echo(tp, g, data, sizeof(data), IT_WAIT_MS);
		ck_assert_msg(ms >= 0, "the good stream stalled");
		if (ms > worst)
			worst = ms;
		ck_assert_msg(!d->closed, "the slow stream was reset");
		usleep(20000);
	}
	/* Half a header so far: the rest now, and the stream works. */
	tp_write(d, ECHO_HDR + 4, 3);
	ck_assert_msg(tp_echo(tp, d, "slow", 4, IT_WAIT_MS) >= 0,
	    "the slow stream does not work once its header is whole");
	printf("slow_drip_header: half a service header over 3 s beside %d good "
	    "round trips (at most %ld ms each)\n", i, worst);
	tp_close(tp, d, "the slow stream");
	tp_close(tp, g, "the good stream");
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the drip");
	it_finish();
}
END_TEST

/* Open a stream to the echo service on ${tp}, which must echo on it. */
static struct tp_stream *
echo_stream(struct tp *tp)
{
	struct tp_stream *ts;

	ts = tp_open(tp, ECHO_HDR, sizeof(ECHO_HDR) - 1, 0);
	ck_assert_msg(tp_echo(tp, ts, "first", 5, IT_WAIT_MS) >= 0,
	    "a stream to the echo service does not echo");
	return (ts);
}

/* tp_pump: both streams of ${arg} were ended by mxd. */
static int
both_ended(struct tp *tp, void *arg)
{
	struct tp_stream **ts = arg;

	(void)tp;
	return (ts[0]->closed != 0 && ts[1]->closed != 0);
}

/*
 * A stream whose service header never completes (half of it sent) and one
 * that sends nothing at all are reset once connect_timeout has passed
 * since they opened, with a log line; a good stream beside them echoes
 * all along.
 */
START_TEST(header_deadline)
{
	struct tp_stream *g, *ts[2];
	struct tp *tp;
	struct hb h;
	int64_t t0, ms;
	int i;

	hb_start(&h, 0);
	tp = tp_connect(h.link);
	g = echo_stream(tp);
	t0 = it_now_ms();
	ts[0] = tp_open(tp, ECHO_HDR, 3, 0);
	ts[1] = tp_open(tp, NULL, 0, 0);
	for (i = 0; !both_ended(tp, ts) &&
	    it_now_ms() < t0 + HEADER_MS + 3000; i++) {
		ck_assert_msg(tp_echo(tp, g, "beside", 6, IT_WAIT_MS) >= 0,
		    "the good stream stalled");
		tp_pump(tp, 100, both_ended, ts);
	}
	ms = it_now_ms() - t0;
	ck_assert_msg(both_ended(tp, ts), "the headerless streams were not "
	    "reset within %d ms", HEADER_MS + 3000);
	ck_assert_msg(ts[0]->closed == MUX_CLOSE_RESET &&
	    ts[1]->closed == MUX_CLOSE_RESET, "ended, but not reset");
	ck_assert_msg(ms >= HEADER_MS - 100, "reset after %jd ms, before the "
	    "deadline (%d ms)", (intmax_t)ms, HEADER_MS);
	it_mxd_wait_log(h.b, it_fmt("no service header within %ds: reset",
	    HEADER_MS / 1000), IT_WAIT_MS);
	printf("header_deadline: half a header and none reset after %jd ms "
	    "(connect_timeout %d ms), beside %d good round trips\n",
	    (intmax_t)ms, HEADER_MS, i);
	tp_close(tp, g, "the good stream");
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the deadline");
	it_finish();
}
END_TEST

/* tp_pump: mxd ${arg} has logged that a new link replaced its link. */
static int
replaced(struct tp *tp, void *arg)
{

	(void)tp;
	return (it_mxd_log_has(arg, "replaced by a new link from"));
}

/*
 * A bare TCP connection to the listen port while a link is up does not cut
 * the link: it carries on, and mxd closes the intruder once it has not
 * answered mxd's ping within connect_timeout, or sent no frame within
 * timeout (here the sooner).  A peer that answers replaces the link, as a
 * restarted peer must; the old link finishes its open stream, then is
 * closed.
 */
START_TEST(intruder_keeps_link)
{
	struct tp_stream *g, *g2;
	struct tp *tp, *tp2;
	struct hb h;
	uint64_t got;
	int64_t t0, ms;
	long r = IT_TIMEOUT;
	int fd, i;

	hb_start(&h, 0);
	tp = tp_connect(h.link);
	g = echo_stream(tp);
	fd = it_connect(h.link);		/* says nothing */
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	t0 = it_now_ms();
	for (i = 0; r == IT_TIMEOUT && it_now_ms() < t0 + TIMEOUT_MS + 3000;
	    i++) {
		ck_assert_msg(tp_echo(tp, g, "beside", 6, IT_WAIT_MS) >= 0,
		    "the link stalled beside the intruder");
		r = it_drain_wait(fd, 100, &got);
	}
	ms = it_now_ms() - t0;
	ck_assert_msg(r != IT_TIMEOUT, "the intruder was not closed within "
	    "%d ms", TIMEOUT_MS + 3000);
	ck_assert_msg(ms >= TIMEOUT_MS - 200, "the intruder was closed after "
	    "%jd ms, before timeout (%d ms)", (intmax_t)ms, TIMEOUT_MS);
	ck_assert_msg(!it_mxd_log_has(h.b, "replaced by"), "the intruder "
	    "replaced the link");
	it_mxd_wait_log(h.b, "replaces it once it answers a ping",
	    IT_WAIT_MS);
	it_mxd_wait_log(h.b, "closed: timed out: no frame from the peer",
	    IT_WAIT_MS);
	it_close(fd);
	ck_assert_msg(tp_echo(tp, g, "after", 5, IT_WAIT_MS) >= 0,
	    "the link does not echo after the intruder");

	/* A peer that answers takes over. */
	tp2 = tp_connect(h.link);
	g2 = echo_stream(tp2);
	/* Its answer to mxd's ping may still wait in tp2: keep it moving. */
	ck_assert_msg(tp_pump(tp2, IT_WAIT_MS, replaced, h.b) == 1,
	    "a peer that answers did not replace the link");
	ck_assert_msg(tp_echo(tp, g, "finishing", 9, IT_WAIT_MS) >= 0,
	    "the replaced link's open stream stopped echoing");
	tp_close(tp, g, "the replaced link's stream");
	ck_assert_msg(tp_pump(tp, IT_WAIT_MS, NULL, NULL) == -1,
	    "the replaced link was not closed once its stream had ended");
	printf("intruder_keeps_link: a silent connection closed after %jd ms "
	    "(timeout %d ms), %d round trips on the link meanwhile; a peer "
	    "that answered replaced it\n", (intmax_t)ms, TIMEOUT_MS, i);
	tp_close(tp2, g2, "the new link's stream");
	tp_free(tp2);
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the replacement");
	it_finish();
}
END_TEST

/*
 * At most 8 connections from one address wait to replace a working link
 * (each holds a descriptor and a session): from the 9th on, each one from
 * there closes the one of them that has been silent longest, with a log
 * line, and the link carries on.  A peer that speaks, coming after 8 that
 * do not, gets in, and replaces the link.
 */
START_TEST(intruders_capped)
{
	struct tp_stream *g, *g2;
	struct tp *tp, *tp2;
	struct hb h;
	uint64_t got;
	int fd[12], base, i;
	long r;

	hb_start(&h, 0);
	tp = tp_connect(h.link);
	g = echo_stream(tp);
	base = it_fd_settled(h.b);
	for (i = 0; i < 12; i++) {
		fd[i] = it_connect(h.link);
		ck_assert_msg(fd[i] >= 0, "connect: %s", strerror(errno));
		ck_assert_int_eq(it_fd_wait(h.b->pid, base + (i < 8 ? i : 7) +
		    1, IT_WAIT_MS), base + (i < 8 ? i : 7) + 1);
		if (i < 8)
			continue;
		/* The oldest is closed, the 8 after it still wait. */
		r = it_drain_wait(fd[i - 8], IT_WAIT_MS, &got);
		ck_assert_msg(r == 0 || r == -ECONNRESET, "connection %d: %ld "
		    "(not closed to make room for %d)", i - 8, r, i);
		ck_assert_msg(it_drain_wait(fd[i - 7], 0, &got) == IT_TIMEOUT,
		    "connection %d was closed too", i - 7);
		ck_assert_msg(tp_echo(tp, g, "still", 5, IT_WAIT_MS) >= 0,
		    "the link does not echo beside the waiting connections");
	}
	it_mxd_wait_log(h.b, "8 connections waiting to replace the link from "
	    "its address, and it was silent longest", IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(h.b, "replaced by"), "the link was "
	    "replaced");

	/* A peer that speaks: the oldest silent one makes room for it. */
	tp2 = tp_connect(h.link);
	g2 = echo_stream(tp2);
	r = it_drain_wait(fd[4], IT_WAIT_MS, &got);
	ck_assert_msg(r == 0 || r == -ECONNRESET, "connection 4: %ld (not "
	    "closed to make room for the peer)", r);
	ck_assert_msg(tp_pump(tp2, IT_WAIT_MS, replaced, h.b) == 1,
	    "a peer that answers did not replace the link");
	printf("intruders_capped: 8 silent connections from one address "
	    "waiting to replace the link, each further one closing the oldest; "
	    "the link echoed throughout; a peer that answered got in and "
	    "replaced it\n");
	for (i = 0; i < 12; i++)
		it_close(fd[i]);
	tp_close(tp, g, "the replaced link's stream");
	tp_close(tp2, g2, "the new link's stream");
	tp_free(tp2);
	tp_free(tp);
	hb_idle(&h, IT_WAIT_MS, "after the intruders");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ handshake flood */

#define SWARM_IDLE	200	/* idle connections held open at once */
#define SWARM_REOPEN	20	/* ... of them reopened per pass at most */
#define SWARM_CHURN	10	/* connections made and reset per pass */
#define SWARM_PASS_MS	5
#define SWARM_RUN_MS	2500	/* the swarm runs before the peer tries */
#define SWARM_TURN	1000	/* ... and mxd has closed this many */
#define SWARM_UP_MS	5000	/* the real peer's deadline */
#define SWARM_LINES	100	/* log lines the daemon may write meanwhile */

/* What the swarm's process did, in memory shared with the test. */
struct swarm {
	pid_t		pid;
	pid_t		target;		/* the mxd: the swarm ends with it */
	atomic_ullong	opened;		/* idle connections opened */
	atomic_ullong	closed;		/* ... that mxd closed */
	atomic_ullong	churned;	/* connections made and reset */
	atomic_int	ready;		/* the first SWARM_IDLE are made */
	long		rss0, rss;	/* VmRSS of the mxd, KiB: at the start,
					 * the most seen (by the test) */
};

/* A non-blocking connection to 127.0.0.1:${port} from address ${src}; -1
 * if it cannot be made now (the test's port range is not its concern). */
static int
swarm_connect(int port, uint32_t src)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		return (-1);
	sin.sin_addr.s_addr = htonl(src);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ||
		    errno == EINPROGRESS)
			return (fd);
	}
	close(fd);
	return (-1);
}

/* Watch the connections ${pfd} of swarm ${f} for ${ms}: send byte
 * ${first} on those waiting to send it, and forget those mxd closed. */
static void
swarm_poll(struct swarm *f, struct pollfd *pfd, char first, int ms)
{
	int64_t end = it_now_ms() + ms, left;
	char buf[4096];
	ssize_t n;
	int i;

	while ((left = end - it_now_ms()) > 0) {
		if (poll(pfd, SWARM_IDLE, (int)left) <= 0)
			continue;
		for (i = 0; i < SWARM_IDLE; i++) {
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			if (pfd[i].revents & POLLOUT) {
				(void)send(pfd[i].fd, &first, 1, MSG_NOSIGNAL);
				pfd[i].events = POLLIN;
			}
			if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if ((n = recv(pfd[i].fd, buf, sizeof(buf), 0)) > 0 ||
			    (n < 0 && errno == EAGAIN))
				continue;
			close(pfd[i].fd);	/* mxd closed it */
			pfd[i].fd = -1;
			f->closed++;
		}
	}
}

/*
 * The swarm's process (it never returns): against 127.0.0.1:${port}, from
 * 127.0.0.2 alone, or (${many}) from 250 addresses 127.0.1.x, open
 * SWARM_IDLE connections at once, then reopen each that mxd closes (at most
 * SWARM_REOPEN every SWARM_PASS_MS); every other one, once connected, sends
 * byte ${first} (a ClientHello or a frame begun, never finished), the rest
 * say nothing; and every SWARM_PASS_MS it connects and resets SWARM_CHURN
 * more.
 */
static void
swarm_main(struct swarm *f, int port, int many, char first)
{
	struct pollfd pfd[SWARM_IDLE];
	struct linger lg = { 1, 0 };
	uint32_t k = 0;
	int i, n, fd;

	(void)close_range(3, ~0U, 0);	/* the test's sockets stay its own */
	for (i = 0; i < SWARM_IDLE; i++)
		pfd[i].fd = -1;
	for (;;) {
		for (i = 0, n = 0; i < SWARM_IDLE; i++) {
			if (pfd[i].fd < 0 && (n < SWARM_REOPEN || !f->ready)) {
				pfd[i].fd = swarm_connect(port, many ?
				    0x7f000101 + k++ % 250 : 0x7f000002);
				pfd[i].events = POLLIN | (i % 2 ? POLLOUT : 0);
				n++;
				if (pfd[i].fd >= 0)
					f->opened++;
			}
		}
		f->ready = 1;
		for (i = 0; i < SWARM_CHURN; i++) {
			if ((fd = swarm_connect(port, many ?
			    0x7f000101 + k++ % 250 : 0x7f000002)) < 0)
				continue;
			(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
			close(fd);
			f->churned++;
		}
		swarm_poll(f, pfd, first, SWARM_PASS_MS);
		if (kill(f->target, 0) == -1)	/* a test that failed */
			_exit(0);
	}
}

/* Start the swarm of swarm_main against mxd ${m}'s ${port}; its first
 * SWARM_IDLE connections are made on return.  Its process ends with the
 * test's, or once ${m} is gone (it_cleanup kills it, even under
 * CK_FORK=no). */
static struct swarm *
swarm_start(struct it_mxd *m, int port, int many, char first)
{
	struct swarm *f;
	int64_t deadline = it_now_ms() + IT_WAIT_MS;
	pid_t pid, ppid = getpid();

	f = mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	ck_assert_msg(f != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(f, 0, sizeof(*f));
	f->target = m->pid;
	f->rss0 = f->rss = it_rss_kb(m->pid);
	fflush(NULL);
	ck_assert_msg((pid = fork()) >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != ppid)
			_exit(127);
		swarm_main(f, port, many, first);
	}
	f->pid = pid;		/* shared: not before the child runs */
	while (!f->ready) {
		ck_assert_msg(it_now_ms() < deadline, "the swarm did not "
		    "start");
		usleep(10000);
	}
	return (f);
}

/* Let swarm ${f} run for SWARM_RUN_MS (every deadline of the daemon's
 * passes meanwhile), and until mxd has closed SWARM_TURN more of its
 * connections: it has taken every place there is, many times over. */
static void
swarm_run(struct swarm *f)
{
	int64_t t0 = it_now_ms(), deadline = t0 + SWARM_RUN_MS + IT_WAIT_MS;
	uint64_t want = f->closed + SWARM_TURN;

	long rss;

	while (f->closed < want || it_now_ms() < t0 + SWARM_RUN_MS) {
		ck_assert_msg(it_now_ms() < deadline, "mxd closed %ju of %u "
		    "connections in %jd ms", (uintmax_t)(f->closed +
		    SWARM_TURN - want), SWARM_TURN, (intmax_t)(it_now_ms() -
		    t0));
		if ((rss = it_rss_kb(f->target)) > f->rss)
			f->rss = rss;
		usleep(10000);
	}
}

/* End swarm ${f}. */
static void
swarm_stop(struct swarm *f)
{

	kill(f->pid, SIGKILL);
	(void)waitpid(f->pid, NULL, 0);
}

/* Log lines of ${m} that an operator sees (all but debug). */
static int
log_lines(struct it_mxd *m)
{

	return (it_mxd_log_count(m, " mxd info: ") +
	    it_mxd_log_count(m, " mxd warn: ") +
	    it_mxd_log_count(m, " mxd error: "));
}

/* Assert that ${m} has written at most SWARM_LINES lines since it had
 * ${lines0} (log_lines), ${when}; returns how many. */
static int
swarm_lines(struct it_mxd *m, int lines0, const char *when)
{
	int n = log_lines(m) - lines0;

	ck_assert_msg(n <= SWARM_LINES, "%d log lines %s (at most %d)", n,
	    when, SWARM_LINES);
	return (n);
}

/*
 * A flood of connections to a listening mxd's link port (TLS: _i 1 and 3)
 * that never show who they are: SWARM_IDLE held open at once, half of them
 * silent, half with one byte of a handshake (or frame) that never goes on,
 * each reopened as mxd closes it, and connections made and reset all along,
 * from one address (_i 0, 1) or from 250 (_i 2, 3).  Meanwhile the real
 * peer, A (through a relay), must get in: restarted, with a new session,
 * and after a cut, resuming its session with the channel it held; each
 * within SWARM_UP_MS (what is measured here).  And mxd's log stays
 * readable: at most SWARM_LINES lines while thousands of connections come
 * and go.  (On b5b7e90 16 of them filled every place for connect_timeout
 * and A was refused, with a log line each.)
 */
START_TEST(hostile_handshake_flood)
{
	int tls = _i & 1, many = _i >> 1, link = it_free_port();
	int pe = it_free_port(), fd, lines;
	int64_t t0, t_swarm, ms_new, ms_resumed;
	long cpu;
	const char *timing = "keepalive = 1s\ntimeout = 3s\n"
	    "connect_timeout = 5s\ndrain_timeout = 1s\n";
	struct it_targets *t = it_targets_start();
	struct it_mxd *a, *b;
	struct it_relay *r;
	struct swarm *f;

	if (tls)
		it_make_certs();
	r = it_relay_start(link);
	b = it_mxd_start(it_write_file("b.conf", it_fmt("[link]\nlisten = "
	    "%s:%d\n%s%s\n%s", IT_HOST, link, timing, tls ? it_tls_link("b") :
	    "", it_svc_connect("echo", t->port[IT_ECHO]))));
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	a = it_mxd_start(it_write_file("a.conf", it_fmt("[link]\nconnect = "
	    "%s:%d\nreconnect_min = 100ms\nreconnect_max = 500ms\n%s%s\n%s",
	    IT_HOST, r->port, timing, tls ? it_tls_link("a") : "",
	    it_svc_accept("echo", pe))));
	it_mxd_wait_log(a, "up (connected", IT_WAIT_MS);
	it_mxd_wait_log(b, "up (accepted", IT_WAIT_MS);

	f = swarm_start(b, link, many, tls ? 0x16 : 0x00);
	lines = log_lines(b);
	cpu = it_cpu_ms(b->pid);
	t_swarm = it_now_ms();
	swarm_run(f);
	/* A restarts: its new session must get in. */
	t0 = it_now_ms();
	it_mxd_restart(a);
	it_mxd_wait_log(a, "up (connected", SWARM_UP_MS);
	ms_new = it_now_ms() - t0;
	(void)swarm_lines(b, lines, "while the peer restarted");
	fd = it_connect(pe);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_echo(fd, "after the restart");
	swarm_run(f);
	/* The link is cut: the session resumes, the channel with it. */
	it_mxd_mark(a);
	it_relay_cut(r);
	it_mxd_wait_log(a, ": lost: ", IT_WAIT_MS);
	t0 = it_now_ms();
	it_relay_restart(r);
	it_mxd_wait_log(a, "resumed after", SWARM_UP_MS);
	ms_resumed = it_now_ms() - t0;
	it_echo(fd, "resumed");
	swarm_stop(f);
	t_swarm = it_now_ms() - t_swarm;
	cpu = it_cpu_ms(b->pid) - cpu;
	lines = swarm_lines(b, lines, "during the flood");
	printf("hostile_handshake_flood (%s, from %s): in %jd ms, %ju idle "
	    "connections opened (%ju closed by mxd), %ju made and reset; mxd "
	    "used %ld ms of CPU, VmRSS %ld -> at most %ld KiB; the restarted "
	    "peer up after %jd ms, the cut link resumed after %jd ms; %d log "
	    "lines meanwhile\n", tls ? "TLS" : "plain", many ? "250 addresses" :
	    "one address", (intmax_t)t_swarm, (uintmax_t)f->opened,
	    (uintmax_t)f->closed, (uintmax_t)f->churned, cpu, f->rss0, f->rss,
	    (intmax_t)ms_new, (intmax_t)ms_resumed, lines);
	/* Not close: the restarted relay (a fork) has a copy of fd. */
	it_finish_client(fd, "echo");
	munmap(f, sizeof(*f));
	it_finish();
}
END_TEST

static Suite *
hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *t = tcase_create("hostile");

	tcase_set_timeout(t, 120);
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	IT_ADD(t, malformed_frames);
	IT_ADD(t, dialer_faces_malformed_frames);
	IT_ADD(t, dialer_faces_silent_listener);
	IT_ADD(t, keepalive_reload);
	IT_ADD(t, syn_flood);
	IT_ADD_LOOP(t, ping_flood_unread, 2);
	IT_ADD(t, huge_length_discarded);
	IT_ADD(t, slow_drip_frames);
	IT_ADD(t, slow_drip_header);
	IT_ADD(t, header_deadline);
	IT_ADD(t, intruder_keeps_link);
	IT_ADD(t, intruders_capped);
	IT_ADD_LOOP(t, hostile_handshake_flood, 4);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{

	return (it_main(hostile_suite()));
}
