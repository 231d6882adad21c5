/*
 * Interoperability tests: mxd's session (the mux engine on a libevent
 * connection) against tests/interop/yamux_peer, an independent yamux peer
 * built on hashicorp/yamux, over real TCP on 127.0.0.1.
 *
 * Each test runs one event_base and one peer process (path in $YAMUX_PEER),
 * whose stdout and stderr are captured through pipes: stdout carries its
 * "LISTEN <port>" line and its final DRIVE or ECHO line, stderr its log,
 * shown when a test fails.  The loop runs until a condition holds or the
 * test's deadline fires; callbacks never assert, they record the first
 * failure and break the loop, and the test body asserts.
 *
 * The peer dies with the test: it gets SIGKILL when its parent exits
 * (PR_SET_PDEATHSIG), Check kills a forked test's process group, and the
 * teardown kills and reaps it.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "itest.h"
#include "conn.h"
#include "dial.h"
#include "session.h"

#define NSTREAMS	128		/* concurrent streams of a bulk run */
#define STREAM_BYTES	(512 * 1024)	/* bytes each way per bulk stream */
#define SEED		7u		/* generator seed, both sides */
#define SEED_STR	"7"
#define CHUNK		(16 * 1024)	/* generated or verified at a time */
#define ECHO_CHUNK	(64 * 1024)	/* read, then written back, at a time */
#define RST_BYTES	(64 * 1024)	/* echoed before the stream is reset */
#define SMALL_BYTES	100		/* sent and shut down before any echo */
#define NAFTER		16		/* bulk streams after the reset */
#define MAX_FLOWS	(NSTREAMS + 2)
#define DEADLINE_S	60		/* per test */
#define PEER_TIMEOUT	"90s"		/* the peer's own global timeout */
#define LOG_TAIL	3000		/* peer log bytes shown on failure */

/* Output of the peer process read from one pipe. */
struct capture {
	int		fd;		/* -1 when closed */
	struct event	*ev;
	char		buf[32768];	/* NUL-terminated; the latest output */
	size_t		len;
	int		eof;
};

/* One stream the C side drives against the echo peer. */
struct flow {
	struct mux_stream *s;		/* NULL once released or reset */
	uint32_t	idx, id;
	uint32_t	tx_gen, rx_gen;	/* generator states, each way */
	size_t		want;		/* bytes to send and to get back */
	size_t		tx, rx;
	size_t		rx_at_shut;	/* rx when we shut down (FIN) */
	size_t		bad;		/* echoed bytes that differ */
	int		reset;		/* reset, not FIN, once all came back */
	int		shut, eof, done;
};

/* A stream of the C echo server. */
struct echo {
	uint32_t	gen;		/* generator state of the driver's data */
	uint64_t	bytes;
	uint64_t	bad;		/* bytes that differ from the generator */
	int		blocked;	/* write said full: wait for writable */
};

/* Everything one test uses; the teardown frees what is left. */
static struct harness {
	struct event_base *base;
	struct event	*deadline;
	int		timed_out;
	char		err[512];	/* first failure seen in a callback */

	pid_t		pid;		/* the peer; 0 once reaped */
	struct capture	out, log;	/* its stdout and stderr */
	int		status;		/* its wait status */
	int		port;		/* from its LISTEN line */

	const struct session_handlers *handlers;
	struct evconnlistener *lis;
	struct conn	*conn;		/* the link; the session's once set */
	struct session	*sess;
	int		expect_down, down;
	struct evbuffer	*scratch;

	/* C echo server. */
	int		echo_open, echo_done, echo_closed;
	int		echo_bad;	/* streams with unexpected data */
	uint64_t	echo_bytes;

	/* C driver. */
	struct flow	flows[MAX_FLOWS];
	int		nflows, flows_done;
} H;

/* Record the first failure (format ${fmt}) and stop the loop. */
static void
cb_fail(const char *fmt, ...)
{
	va_list ap;

	if (H.err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(H.err, sizeof(H.err), fmt, ap);
	va_end(ap);
	event_base_loopbreak(H.base);
}

/* The last LOG_TAIL bytes of the peer's log. */
static const char *
peer_log(void)
{

	return (H.log.len > LOG_TAIL ? H.log.buf + H.log.len - LOG_TAIL :
	    H.log.buf);
}

/* deadline: the test took too long. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{

	(void)fd;
	(void)what;
	(void)arg;
	H.timed_out = 1;
	event_base_loopbreak(H.base);
}

/*
 * Run the loop until ${done}() holds; fail the test, naming ${what}, if a
 * callback failed or the deadline passed first.
 */
static void
run_until(int (*done)(void), const char *what)
{

	while (H.err[0] == '\0' && !H.timed_out && !done())
		event_base_loop(H.base, EVLOOP_ONCE);
	ck_assert_msg(H.err[0] == '\0', "%s (waiting for %s)\npeer log:\n%s",
	    H.err, what, peer_log());
	ck_assert_msg(!H.timed_out, "timed out waiting for %s\npeer log:\n%s",
	    what, peer_log());
}

/* ---------------------------------------------------------------- peer */

/* Pipe ${arg} (a struct capture) is readable: append what it has, keeping
 * the latest output when the buffer is full. */
static void
capture_cb(evutil_socket_t fd, short what, void *arg)
{
	const size_t half = sizeof(((struct capture *)0)->buf) / 2;
	struct capture *c = arg;
	ssize_t n;

	(void)what;
	for (;;) {
		if (c->len == sizeof(c->buf) - 1) {
			memmove(c->buf, c->buf + half, c->len - half);
			c->len -= half;
		}
		n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EOF or error: the peer is exiting. */
		c->eof = 1;
		event_free(c->ev);
		c->ev = NULL;
		close(c->fd);
		c->fd = -1;
		return;
	}
}

/* Capture pipe end ${fd} into ${c}. */
static void
capture_start(struct capture *c, int fd)
{

	c->fd = fd;
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	c->ev = event_new(H.base, fd, EV_READ | EV_PERSIST, capture_cb, c);
	ck_assert_ptr_nonnull(c->ev);
	ck_assert_int_eq(event_add(c->ev, NULL), 0);
}

/*
 * Start the peer with ${how} ("-listen" or "-dial") ${addr}, yamux role
 * ${role} and mode ${mode}; in drive mode it runs NSTREAMS streams of
 * STREAM_BYTES.
 */
static void
peer_start(const char *how, const char *addr, const char *role,
    const char *mode)
{
	const char *path = getenv("YAMUX_PEER");
	char streams[16], bytes[24];
	const char *argv[] = {
		path, how, addr, "-role", role, "-mode", mode,
		"-streams", streams, "-bytes", bytes, "-seed", SEED_STR,
		"-timeout", PEER_TIMEOUT, "-goaway-linger", "0", NULL
	};
	pid_t parent = getpid();
	int out[2], logp[2];

	ck_assert_msg(path != NULL && access(path, X_OK) == 0,
	    "YAMUX_PEER must name the built peer (make build/yamux_peer)");
	snprintf(streams, sizeof(streams), "%d", NSTREAMS);
	snprintf(bytes, sizeof(bytes), "%d", STREAM_BYTES);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(logp, O_CLOEXEC), 0);
	H.pid = fork();
	ck_assert_int_ge(H.pid, 0);
	if (H.pid == 0) {
		/* Die with the test, even if it dies before the teardown. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(out[1], STDOUT_FILENO) < 0 ||
		    dup2(logp[1], STDERR_FILENO) < 0)
			_exit(127);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(logp[1]);
	capture_start(&H.out, out[0]);
	capture_start(&H.log, logp[0]);
}

/* Conditions for run_until. */
static int
have_port(void)
{

	return (H.out.eof || (strchr(H.out.buf, '\n') != NULL &&
	    sscanf(H.out.buf, "LISTEN %d", &H.port) == 1));
}

static int
have_link(void)
{

	return (H.sess != NULL || H.out.eof);
}

static int
peer_gone(void)
{

	return (H.down && H.out.eof && H.log.eof);
}

/*
 * Wait for the session to end and the peer to exit, free the session and
 * reap the peer.  Returns the peer's output line starting with ${prefix};
 * the test fails if there is none or the peer did not exit with 0.
 */
static const char *
peer_finish(const char *prefix)
{
	const char *line;
	pid_t pid;

	H.expect_down = 1;
	run_until(peer_gone, "the end of the session and of the peer");
	ck_assert_uint_eq(mux_stream_count(session_mux(H.sess)), 0);
	session_free(H.sess);
	H.sess = NULL;
	H.conn = NULL;
	pid = waitpid(H.pid, &H.status, 0);
	ck_assert_int_eq(pid, H.pid);
	H.pid = 0;
	line = H.out.buf;
	while (line != NULL && strncmp(line, prefix, strlen(prefix)) != 0)
		if ((line = strchr(line, '\n')) != NULL)
			line++;
	ck_assert_msg(line != NULL && WIFEXITED(H.status) &&
	    WEXITSTATUS(H.status) == 0,
	    "peer: status 0x%x, output:\n%s\nlog:\n%s", H.status, H.out.buf,
	    peer_log());
	return (line);
}

/* ------------------------------------------------------------- session */

static void
on_goaway(struct session *sess, uint32_t code, void *arg)
{

	(void)sess;
	(void)arg;
	cb_fail("unexpected Go Away %u from the peer", code);
}

static void
on_down(struct session *sess, const char *why, void *arg)
{

	(void)sess;
	(void)arg;
	H.down = 1;
	if (!H.expect_down)
		cb_fail("session down early: %s", why);
}

/* Start the session on H.conn as the ${dialer} side. */
static void
session_start(int dialer)
{
	struct session_params p = { .keepalive_ms = 30000,	/* mxd's */
	    .timeout_ms = 90000, .answer_ms = 10000, .resume_ms = 30000 };

	/* Resumption offered as mxd does: a plain yamux peer must not see
	 * the difference (PROTOCOL.md section 11). */
	mux_config_default(&p.mux, dialer);
	H.sess = session_new(H.base, H.conn, &p, H.handlers, &H);
}

/* The peer dialed in on ${fd}: run the session on it. */
static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{

	(void)sa;
	(void)salen;
	(void)arg;
	evconnlistener_disable(lis);
	if (H.conn != NULL) {
		close(fd);
		cb_fail("a second connection");
		return;
	}
	if ((H.conn = conn_new_plain(H.base, fd)) == NULL) {
		close(fd);
		cb_fail("conn_new_plain");
		return;
	}
	session_start(0);
	if (H.sess == NULL)
		cb_fail("session_new");
}

/*
 * Connect to the peer in ${mode} over TCP, the C side dialing if ${c_dials}
 * (peer: yamux server), else accepting (peer: yamux client), and run a
 * session with ${h} on the link.
 */
static void
link_up(int c_dials, const char *mode, const struct session_handlers *h)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char addr[32];
	int fd;

	H.handlers = h;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (c_dials) {
		peer_start("-listen", "127.0.0.1:0", "server", mode);
		run_until(have_port, "the peer's LISTEN line");
		ck_assert_msg(H.port > 0, "no LISTEN line\npeer log:\n%s",
		    peer_log());
		sin.sin_port = htons((uint16_t)H.port);
		/* Loopback: a blocking connect is immediate. */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_msg(connect(fd, (struct sockaddr *)&sin,
		    sizeof(sin)) == 0, "connect: %s\npeer log:\n%s",
		    strerror(errno), peer_log());
		ck_assert_int_eq(sock_nonblock(fd), 0);
		ck_assert_ptr_nonnull(H.conn = conn_new_plain(H.base, fd));
		session_start(1);
	} else {
		H.lis = evconnlistener_new_bind(H.base, accept_cb, NULL,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_REUSEABLE, 1, (struct sockaddr *)&sin, sizeof(sin));
		ck_assert_ptr_nonnull(H.lis);
		ck_assert_int_eq(getsockname(evconnlistener_get_fd(H.lis),
		    (struct sockaddr *)&sin, &len), 0);
		snprintf(addr, sizeof(addr), "127.0.0.1:%u",
		    ntohs(sin.sin_port));
		peer_start("-dial", addr, "client", mode);
		run_until(have_link, "the peer's connection");
	}
	ck_assert_msg(H.sess != NULL, "no session\npeer log:\n%s", peer_log());
}

/* ------------------------------------------------------------ generator */

/* The peer's byte generator for stream index ${idx}, and its next byte. */
static uint32_t
gen_init(uint32_t idx)
{

	return (SEED * 1000003u + idx);
}

static uint8_t
gen_next(uint32_t *state)
{

	*state = *state * 1103515245u + 12345u;
	return ((uint8_t)(*state >> 16));
}

/* -------------------------------------------------------- C echo server */

/* The peer opened ${s}: echo it. */
static int
echo_open(struct session *sess, struct mux_stream *s, void *arg)
{
	struct echo *e;

	(void)sess;
	(void)arg;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return (-1);
	/* The driver's stream index i has id 1+2i (client) or 2+2i. */
	e->gen = gen_init((mux_stream_id(s) - 1) / 2);
	mux_stream_set_arg(s, e);
	H.echo_open++;
	return (0);
}

/* Compare the bytes in ${b} with ${e}'s generator (checking ours against
 * the peer's). */
static void
echo_verify(struct echo *e, struct evbuffer *b)
{
	struct evbuffer_ptr pos;
	uint8_t buf[CHUNK];
	ev_ssize_t i, n;

	evbuffer_ptr_set(b, &pos, 0, EVBUFFER_PTR_SET);
	while ((n = evbuffer_copyout_from(b, &pos, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++)
			if (buf[i] != gen_next(&e->gen))
				e->bad++;
		if (evbuffer_ptr_set(b, &pos, (size_t)n, EVBUFFER_PTR_ADD) < 0)
			break;
	}
}

/*
 * Stream ${s} (echo state ${sarg}) is readable: write back what arrived,
 * stopping while its send queue is full (the unread rest holds back the
 * peer's window).  On EOF (the peer shut down first) shut down too, after
 * the last byte, and release the stream.
 */
static void
echo_readable(struct mux_stream *s, void *sarg)
{
	struct echo *e = sarg;
	int n, rc;

	if (e->blocked)
		return;
	while ((n = mux_stream_read(s, H.scratch, ECHO_CHUNK)) > 0) {
		e->bytes += (uint64_t)n;
		H.echo_bytes += (uint64_t)n;
		echo_verify(e, H.scratch);
		if ((rc = mux_stream_write(s, H.scratch)) < 0) {
			cb_fail("echo %u: write failed", mux_stream_id(s));
			return;
		}
		if (rc == 1) {
			e->blocked = 1;
			return;
		}
	}
	if (n < 0) {
		cb_fail("echo %u: read failed", mux_stream_id(s));
		return;
	}
	if (mux_stream_eof(s)) {
		mux_stream_shutdown(s);
		mux_stream_release(s);
		H.echo_done++;
		H.echo_bad += e->bad > 0;
		free(e);
	}
}

/* Stream ${s}'s send queue drained: echo what waits. */
static void
echo_writable(struct mux_stream *s, void *sarg)
{
	struct echo *e = sarg;

	e->blocked = 0;
	echo_readable(s, e);
}

/* Stream ${s} was reset or the session ended (${why}). */
static void
echo_close(struct mux_stream *s, void *sarg, enum mux_close_reason why)
{

	(void)s;
	free(sarg);
	H.echo_closed++;
	if (why == MUX_CLOSE_RESET)
		cb_fail("echo: the peer reset a stream");
}

static const struct session_handlers echo_handlers = {
	.on_stream_open = echo_open,
	.on_stream_readable = echo_readable,
	.on_stream_writable = echo_writable,
	.on_stream_close = echo_close,
	.on_goaway = on_goaway,
	.on_down = on_down,
	.on_lost = on_down,
};

/* ------------------------------------------------------------- C driver */

/* Stream ${f} is finished: released or reset. */
static void
flow_done(struct flow *f)
{

	f->s = NULL;
	f->done = 1;
	H.flows_done++;
}

/* Write generated data on ${f} until all is queued or the queue is full;
 * once all is queued, shut down (FIN) unless ${f} ends by reset. */
static void
flow_send(struct flow *f)
{
	uint8_t buf[CHUNK];
	size_t i, n;
	int rc = 0;

	if (f->s == NULL)
		return;
	while (rc == 0 && f->tx < f->want) {
		n = f->want - f->tx < CHUNK ? f->want - f->tx : CHUNK;
		for (i = 0; i < n; i++)
			buf[i] = gen_next(&f->tx_gen);
		if (evbuffer_add(H.scratch, buf, n) != 0 ||
		    (rc = mux_stream_write(f->s, H.scratch)) < 0) {
			cb_fail("stream %u: write failed", f->id);
			return;
		}
		f->tx += n;
	}
	if (f->tx == f->want && !f->shut && !f->reset) {
		mux_stream_shutdown(f->s);
		f->shut = 1;
		f->rx_at_shut = f->rx;
	}
}

/* Verify what ${f} received; end it on EOF, or reset it once all of it
 * came back if it ends by reset. */
static void
flow_recv(struct flow *f)
{
	uint8_t buf[CHUNK];
	size_t i, n;
	int got;

	while ((got = mux_stream_read(f->s, H.scratch, CHUNK)) > 0) {
		n = (size_t)evbuffer_remove(H.scratch, buf, (size_t)got);
		for (i = 0; i < n; i++)
			if (buf[i] != gen_next(&f->rx_gen))
				f->bad++;
		f->rx += n;
	}
	if (got < 0) {
		cb_fail("stream %u: read failed", f->id);
		return;
	}
	if (f->reset && f->rx >= f->want) {
		mux_stream_reset(f->s);
		flow_done(f);
	} else if (mux_stream_eof(f->s)) {
		f->eof = 1;
		if (!f->shut)
			cb_fail("stream %u: EOF before ours", f->id);
		mux_stream_release(f->s);
		flow_done(f);
	}
}

static void
flow_readable(struct mux_stream *s, void *sarg)
{

	(void)s;
	flow_recv(sarg);
}

static void
flow_writable(struct mux_stream *s, void *sarg)
{

	(void)s;
	flow_send(sarg);
}

static void
flow_close(struct mux_stream *s, void *sarg, enum mux_close_reason why)
{
	struct flow *f = sarg;

	(void)s;
	f->s = NULL;
	cb_fail("stream %u: %s", f->id, why == MUX_CLOSE_RESET ?
	    "reset by the peer" : "ended with the session");
}

/* The echo peer never opens streams. */
static int
refuse_open(struct session *sess, struct mux_stream *s, void *arg)
{

	(void)sess;
	(void)arg;
	cb_fail("the echo peer opened stream %u", mux_stream_id(s));
	return (-1);
}

static const struct session_handlers drive_handlers = {
	.on_stream_open = refuse_open,
	.on_stream_readable = flow_readable,
	.on_stream_writable = flow_writable,
	.on_stream_close = flow_close,
	.on_goaway = on_goaway,
	.on_down = on_down,
	.on_lost = on_down,
};

/* Open ${n} more streams, each sending ${want} bytes; ${reset}: see flow. */
static void
flows_open(int n, size_t want, int reset)
{
	struct flow *f;

	ck_assert_int_le(H.nflows + n, MAX_FLOWS);
	for (; n > 0; n--) {
		f = &H.flows[H.nflows];
		f->idx = (uint32_t)H.nflows++;
		f->tx_gen = f->rx_gen = gen_init(f->idx);
		f->want = want;
		f->reset = reset;
		f->s = mux_stream_open(session_mux(H.sess), f);
		ck_assert_msg(f->s != NULL, "open: %s", strerror(errno));
		f->id = mux_stream_id(f->s);
		flow_send(f);
	}
}

/* Condition: every stream finished and our ping was answered. */
static int
flows_finished(void)
{

	return (H.flows_done == H.nflows && mux_rtt(session_mux(H.sess)) > 0);
}

/*
 * Check streams ${first} up to H.nflows, one assertion each: every byte
 * came back intact; a stream ended by FIN also received after its FIN (the
 * bytes sent last can only come back after it), then EOF.
 *
 * A stream that comes back exactly one frame short, with EOF, is what an
 * engine sending FIN on the Data frame of its last bytes gets from this
 * peer: hashicorp/yamux df201c7's Stream.readData applies FIN (waking the
 * reader, which then sees EOF) before it buffers the frame's payload.
 */
static void
flows_check(int first)
{
	struct flow *f;
	int i;

	for (i = first; i < H.nflows; i++) {
		f = &H.flows[i];
		ck_assert_msg(f->done && f->tx == f->want &&
		    f->rx == f->want && f->bad == 0 &&
		    (f->reset || (f->shut && f->eof && f->rx_at_shut < f->rx)),
		    "stream %u: done %d sent %zu got %zu of %zu, %zu bad, "
		    "shut %d eof %d, %zu got before our FIN", f->id, f->done,
		    f->tx, f->rx, f->want, f->bad, f->shut, f->eof,
		    f->rx_at_shut);
	}
}

/* Condition: the Go Away and all before it left for the kernel. */
static int
flushed(void)
{

	return (!mux_output_pending(session_mux(H.sess)) &&
	    evbuffer_get_length(conn_output(H.conn)) == 0);
}

/*
 * Send Go Away, check that no stream opens after it, and once it is sent
 * close our half of the link (the session has no call for that); the echo
 * peer then ends the session.
 */
static void
goaway_and_close(void)
{
	struct mux_stream *s;

	session_goaway(H.sess, MUX_GOAWAY_NORMAL);
	errno = 0;
	s = mux_stream_open(session_mux(H.sess), NULL);
	ck_assert_msg(s == NULL && errno == EPIPE,
	    "open after Go Away: %p, %s", (void *)s, strerror(errno));
	run_until(flushed, "the Go Away to be sent");
	H.expect_down = 1;
	ck_assert_int_eq(shutdown(conn_fd(H.conn), SHUT_WR), 0);
}

/* Check the echo peer's ECHO ${line}: ${streams}, ${bytes} echoed,
 * ${resets}, its ping answered, our Go Away seen. */
static void
echo_line_check(const char *line, long long streams, long long bytes,
    long long resets)
{
	long long n, b, r;
	char ping[8];
	int ga;

	ck_assert_msg(sscanf(line, "ECHO streams=%lld bytes=%lld resets=%lld "
	    "ping=%7s goaway=%d", &n, &b, &r, ping, &ga) == 5 &&
	    n == streams && b == bytes && r == resets &&
	    strcmp(ping, "ok") == 0 && ga == 1,
	    "got \"%.200s\", want streams=%lld bytes=%lld resets=%lld "
	    "ping=ok goaway=1\npeer log:\n%s", line, streams, bytes, resets,
	    peer_log());
}

/* ------------------------------------------------------------- fixtures */

static void
setup(void)
{
	struct timeval tv = { DEADLINE_S, 0 };

	memset(&H, 0, sizeof(H));
	H.out.fd = H.log.fd = -1;
	signal(SIGPIPE, SIG_IGN);
	ck_assert_ptr_nonnull(H.base = event_base_new());
	ck_assert_ptr_nonnull(H.scratch = evbuffer_new());
	H.deadline = evtimer_new(H.base, deadline_cb, NULL);
	ck_assert_ptr_nonnull(H.deadline);
	ck_assert_int_eq(evtimer_add(H.deadline, &tv), 0);
}

static void
teardown(void)
{
	struct capture *c;
	int i;

	if (H.pid > 0) {
		kill(H.pid, SIGKILL);
		waitpid(H.pid, NULL, 0);
		H.pid = 0;
	}
	if (H.sess != NULL)
		session_free(H.sess);
	else if (H.conn != NULL)
		conn_free(H.conn);
	if (H.lis != NULL)
		evconnlistener_free(H.lis);
	for (i = 0; i < 2; i++) {
		c = i ? &H.log : &H.out;
		if (c->ev != NULL)
			event_free(c->ev);
		if (c->fd >= 0)
			close(c->fd);
	}
	event_free(H.deadline);
	evbuffer_free(H.scratch);
	event_base_free(H.base);
	memset(&H, 0, sizeof(H));
}

/* ---------------------------------------------------------------- tests */

/*
 * The peer drives NSTREAMS streams of STREAM_BYTES each way and the C side
 * echoes; the C side dials if ${c_dials}.  Every stream half-closes peer
 * first: the C side reads EOF with its own direction still open, then
 * sends its FIN, which the driver waits for (else it counts an error).
 */
static void
echo_for_driver(int c_dials)
{
	const long long total = (long long)NSTREAMS * STREAM_BYTES;
	long long n, sent, verified, mism, errs;
	const char *line;

	link_up(c_dials, "drive", &echo_handlers);
	line = peer_finish("DRIVE ");
	ck_assert_msg(sscanf(line, "DRIVE streams=%lld bytes_sent=%lld "
	    "bytes_verified=%lld mismatches=%lld errors=%lld", &n, &sent,
	    &verified, &mism, &errs) == 5 && n == NSTREAMS && sent == total &&
	    verified == total && mism == 0 && errs == 0,
	    "got \"%.200s\", want %lld verified\npeer log:\n%s", line, total,
	    peer_log());
	ck_assert_int_eq(H.echo_open, NSTREAMS);
	ck_assert_int_eq(H.echo_done, NSTREAMS);	/* EOF, then our FIN */
	ck_assert_int_eq(H.echo_closed, 0);
	ck_assert_int_eq(H.echo_bad, 0);	/* our generator is the peer's */
	ck_assert_uint_eq(H.echo_bytes, (uint64_t)total);
}

START_TEST(c_dials_go_drives)
{

	echo_for_driver(1);
}
END_TEST

START_TEST(go_dials_go_drives)
{

	echo_for_driver(0);
}
END_TEST

/*
 * The C side drives NSTREAMS streams of STREAM_BYTES each way (and one
 * ping) against the echo peer, then sends Go Away and closes; it dials if
 * ${c_dials}.  Every stream shuts down (FIN) first and keeps receiving.
 */
static void
drive_echo_peer(int c_dials)
{

	link_up(c_dials, "echo", &drive_handlers);
	ck_assert_int_eq(mux_ping(session_mux(H.sess)), 0);
	flows_open(NSTREAMS, STREAM_BYTES, 0);
	run_until(flows_finished, "all echoes and the pong");
	flows_check(0);
	goaway_and_close();
	echo_line_check(peer_finish("ECHO "), NSTREAMS,
	    (long long)NSTREAMS * STREAM_BYTES, 0);
}

START_TEST(c_dials_c_drives)
{

	drive_echo_peer(1);
}
END_TEST

START_TEST(go_dials_c_drives)
{

	drive_echo_peer(0);
}
END_TEST

/*
 * Ping, RST and half-close on one session (C dials the echo peer):
 * 1. a ping is answered (seen as a measured round trip; the session has no
 *    pong callback), and a stream is reset once its RST_BYTES came back:
 *    the peer must count exactly one reset;
 * 2. afterwards new streams on the same session work: NAFTER bulk streams
 *    and one of SMALL_BYTES, written and shut down before the loop runs, so
 *    that all of its echo arrives after our FIN.
 */
START_TEST(ping_reset_half_close)
{

	link_up(1, "echo", &drive_handlers);
	ck_assert_int_eq(mux_ping(session_mux(H.sess)), 0);
	flows_open(1, RST_BYTES, 1);
	run_until(flows_finished, "the reset stream's echo and the pong");
	ck_assert_uint_gt(mux_rtt(session_mux(H.sess)), 0);

	flows_open(NAFTER, STREAM_BYTES, 0);
	flows_open(1, SMALL_BYTES, 0);
	run_until(flows_finished, "the streams after the reset");
	flows_check(0);
	ck_assert_uint_eq(H.flows[H.nflows - 1].rx_at_shut, 0);

	goaway_and_close();
	echo_line_check(peer_finish("ECHO "), NAFTER + 2,
	    RST_BYTES + (long long)NAFTER * STREAM_BYTES + SMALL_BYTES, 1);
}
END_TEST

static Suite *
interop_suite(void)
{
	Suite *s = suite_create("interop");
	TCase *t = tcase_create("yamux_peer");

	tcase_set_timeout(t, 2 * DEADLINE_S);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, c_dials_go_drives);
	tcase_add_test(t, go_dials_go_drives);
	tcase_add_test(t, c_dials_c_drives);
	tcase_add_test(t, go_dials_c_drives);
	tcase_add_test(t, ping_reset_half_close);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{
	int rc = it_main(interop_suite());

	libevent_global_shutdown();
	return (rc);
}
