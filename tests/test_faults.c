/*
 * Fault tests: real mxd pairs ($MXD_BIN, see itest.h) whose link is cut in
 * the middle of transfers, again and again, and whose network goes bad.
 *
 *   kill_listener_cycles   SIGKILL of the listening mxd (B), then restart;
 *                          on a plain link, then on a TLS one
 *   kill_dialer_cycles     SIGKILL of the dialing mxd (A), then restart;
 *                          plain, then TLS
 *   ss_kill_cycles         the link's TCP connection killed (ss -K), on
 *                          either side (root)
 *   target_restart         the target process killed and restarted
 *   netns_lossy_bulk       10 Mbit/s (tbf) with 2 % random loss each way
 *                          between two network namespaces (root), on a
 *                          plain link, then on a TLS one
 *   netns_uploads_wait_in_sockets  64 uploads across 100 Mbit/s: A holds
 *                          about a read per channel, not a queue (root)
 *   wan_lossy_flows        across the WAN emulator: 50 ms round trip,
 *                          20 Mbit/s, 0.5 % loss (root); plain and TLS
 *   wan_blackhole_resumes  the WAN silent, then back: the session resumes
 *   netns_blackhole        every packet of the link dropped, then not
 *                          (root)
 *   fd_limit_accept_side   a low RLIMIT_NOFILE on the accepting mxd
 *   fd_limit_target_side   ... on the connecting mxd, and its link listener
 *   max_channels_recovers  max_channels reached, then free again
 *
 * Each cycle checks what the issue asks: the channels on the dead link end
 * promptly (reset or EOF within RESET_MS, none hangs; what they delivered
 * before is verified byte for byte), the survivor keeps running, the
 * dialing side redials within reconnect_max, and new channels carry data
 * intact.  After the cycles the surviving mxd has exactly the descriptors
 * it had after warming up, and (without sanitizers) its VmRSS has not
 * grown beyond a small allowance.
 *
 * MXD_FAULT_CYCLES=N sets the number of cycles (default 100).  Tests that
 * need root print "SKIP: <reason>" and pass without it.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "netns.h"

#define KIB		1024
#define MIB		(1024 * 1024)
#define RESET_MS	3000	/* channels of a dead link end within this */
#define KEEPALIVE_MS	500
#define TIMEOUT_MS	2000
#define WARM_CYCLES	10	/* descriptors and RSS are taken after these */
#define RSS_SLACK_KB	2048	/* allowed VmRSS growth over the cycles */

/* Beyond reconnect_max, how long a redial may take to bring the link up:
 * a connect, a TLS handshake, a ping's round trip; under valgrind or the
 * sanitizers a TLS handshake alone can take a second. */
#define UP_SLACK_MS	(it_san() ? 3000 : 900)

static char msg[512];

/* Cycles to run: MXD_FAULT_CYCLES, or ${dflt}. */
static int
cycles(int dflt)
{
	const char *e = getenv("MXD_FAULT_CYCLES");

	return (e != NULL && atoi(e) > 0 ? atoi(e) : dflt);
}

/* What a test's lines add to its name for the TLS variant (${tls}). */
static const char *
tls_tag(int tls)
{

	return (tls ? " (TLS)" : "");
}

/* Print a SKIP line for test ${name} and pass it. */
static void
skip(const char *name, const char *why)
{

	printf("%s: SKIP: %s\n", name, why);
	it_finish();
}

/* ------------------------------------------------------------ the pair */

/*
 * A pair for fault tests: A dials B's link, clients connect to A's echo and
 * blast services, the targets sit behind B.  On loopback, or with A and B
 * in the two namespaces of ${n}.
 */
struct fp {
	const struct nt	*n;		/* NULL: loopback */
	int		link, pe, pb, ma;	/* ports; ma: A's metrics */
	const char	*a_conf, *b_conf;
	struct it_mxd	*a, *b;
	struct it_targets *t;
	int		reconnect_max_ms;
};

/* Enter A's side (to make clients there), and leave it. */
static void
in_a(struct fp *p)
{

	if (p->n != NULL)
		nt_enter(p->n, 0);
}

static void
out_a(struct fp *p)
{

	if (p->n != NULL)
		nt_leave();
}

/*
 * Write both configurations (A's [link] with ${a_link}, reconnecting
 * between ${rmin} and ${rmax} ms, and ${a_daemon} in [daemon]; a TLS link
 * if ${tls}, with certificates a and b of it_make_certs), start the
 * targets, B and A (with ${ao}, ${bo}), and wait for the link.
 */
static void
fp_start(struct fp *p, const struct nt *n, int rmin, int rmax,
    const char *a_link, const char *a_daemon, const struct it_mxd_opts *ao,
    const struct it_mxd_opts *bo, int tls)
{
	const char *bhost = n != NULL ? n->addr[1] : IT_HOST;
	const char *timing = it_fmt("keepalive = %dms\ntimeout = %dms\n"
	    "connect_timeout = 1s\ndrain_timeout = 10s\n", KEEPALIVE_MS,
	    TIMEOUT_MS);
	const char *tls_a = "", *tls_b = "";
	struct it_mxd_opts ao2 = { NULL, 0 }, bo2 = { NULL, 0 };

	memset(p, 0, sizeof(*p));
	p->n = n;
	p->link = it_free_port();
	p->pe = it_free_port();
	p->pb = it_free_port();
	p->ma = it_free_port();
	p->reconnect_max_ms = rmax;
	if (ao != NULL)
		ao2 = *ao;
	if (bo != NULL)
		bo2 = *bo;
	if (n != NULL) {
		ao2.netns = n->ns[0];
		bo2.netns = n->ns[1];
		nt_enter(n, 1);
	}
	p->t = it_targets_start();
	if (n != NULL)
		nt_leave();
	if (tls) {
		it_make_certs();
		tls_a = it_tls_link("a");
		tls_b = it_tls_link("b");
	}
	p->a_conf = it_write_file("a.conf", it_fmt(
	    "[daemon]\nmetrics = %s:%d\n%s\n"
	    "[link]\nconnect = %s:%d\nreconnect_min = %dms\n"
	    "reconnect_max = %dms\n%s%s%s\n%s%s", IT_HOST, p->ma,
	    a_daemon ? a_daemon : "", bhost, p->link, rmin, rmax, timing,
	    tls_a, a_link ? a_link : "", it_svc_accept("echo", p->pe),
	    it_svc_accept("blast", p->pb)));
	p->b_conf = it_write_file("b.conf", it_fmt(
	    "[link]\nlisten = %s:%d\n%s%s\n%s%s", bhost, p->link, timing,
	    tls_b, it_svc_connect("echo", p->t->port[IT_ECHO]),
	    it_svc_connect("blast", p->t->port[IT_BLAST])));
	p->b = it_mxd_start_opts(p->b_conf, &bo2);
	it_mxd_wait_log(p->b, "link: waiting for the peer", IT_WAIT_MS);
	p->a = it_mxd_start_opts(p->a_conf, &ao2);
	it_mxd_wait_log(p->a, tls ? "up (connected, TLS" : "up (connected)",
	    IT_WAIT_MS);
	it_mxd_wait_log(p->b, tls ? "up (accepted, TLS" : "up (accepted)",
	    IT_WAIT_MS);
}

/* Run ${n} echo flows of sizes up to ${max} (seeds from ${seed}) through
 * A's echo service; all must finish intact within ${ms}. */
static void
flows(struct fp *p, size_t n, size_t max, uint64_t seed, int ms,
    const char *what)
{
	struct it_flow *f = it_calloc(n, sizeof(*f));
	size_t i, bad;

	for (i = 0; i < n; i++) {
		f[i].port = p->pe;
		f[i].size = i == 0 ? max : (size_t)((seed * 7919 + i * 104729) %
		    (max + 1));
		f[i].seed = seed + i;
	}
	in_a(p);
	bad = it_flows_run(f, n, ms, msg, sizeof(msg));
	out_a(p);
	ck_assert_msg(bad == 0, "%s: %zu of %zu echo flows failed; first: %s",
	    what, bad, n, msg);
}

/* ------------------------------------------------------------ transfers */

/*
 * Three channels in the middle of transfers: an idle echo channel (one
 * round trip done), an echo channel with data in flight, and a download
 * from the blast target under way.
 */
struct xfer {
	int		fd[3];
	uint64_t	seed;
	uint64_t	got;		/* blast bytes read and verified */
};

/* A connected client of A's ${port}; fails the test otherwise. */
static int
client(struct fp *p, int port)
{
	int fd;

	in_a(p);
	fd = it_connect(port);
	out_a(p);
	ck_assert_msg(fd >= 0, "connect to A: %s", strerror(errno));
	return (fd);
}

/* Send ${len} bytes of ${seed} on ${fd} and expect them back. */
static void
roundtrip(int fd, uint64_t seed, size_t len, const char *what)
{
	char *buf = it_calloc(1, len);
	ssize_t n;

	it_gen(seed, 0, buf, len);
	ck_assert_msg(it_send_all(fd, buf, len) == 0, "%s: send: %s", what,
	    strerror(errno));
	n = it_recv_full(fd, buf, len);
	ck_assert_msg(n == (ssize_t)len, "%s: got %zd of %zu bytes back (%s)",
	    what, n, len, n < 0 ? strerror(errno) : "EOF");
	ck_assert_msg(it_verify(seed, 0, buf, len) == -1, "%s: bytes differ",
	    what);
}

/* Read from blast client ${x}->fd[2] until ${want} bytes in all, verifying
 * them.  Returns 0 on EOF or error (the end), 1 if ${want} was reached. */
static int
blast_read(struct xfer *x, uint64_t want, int ms, long *end)
{
	static char buf[64 * KIB];
	long r;

	while (x->got < want) {
		r = it_recv_wait(x->fd[2], buf, sizeof(buf), ms);
		if (r <= 0) {
			*end = r;
			return (0);
		}
		ck_assert_msg(it_verify(x->seed, x->got, buf, (size_t)r) == -1,
		    "blast: a byte after offset %ju differs",
		    (uintmax_t)x->got);
		x->got += (uint64_t)r;
	}
	return (1);
}

/* Start the three transfers of ${x}. */
static void
xfer_start(struct fp *p, struct xfer *x, uint64_t seed)
{
	char *big = it_calloc(1, 256 * KIB), *req;
	long end = 0;
	ssize_t n;

	memset(x, 0, sizeof(*x));
	x->seed = seed;
	x->fd[0] = client(p, p->pe);
	roundtrip(x->fd[0], seed, 1000, "idle echo channel");
	x->fd[1] = client(p, p->pe);
	roundtrip(x->fd[1], seed + 1, 1000, "busy echo channel");
	/* Data in flight: sent, not read back. */
	it_gen(seed + 2, 0, big, 256 * KIB);
	(void)fcntl(x->fd[1], F_SETFL, O_NONBLOCK);
	n = send(x->fd[1], big, 256 * KIB, MSG_NOSIGNAL);
	ck_assert_msg(n > 0, "busy echo channel: send: %s", strerror(errno));
	x->fd[2] = client(p, p->pb);
	req = it_fmt("%ju %ju\n", (uintmax_t)(1024 * (uint64_t)MIB),
	    (uintmax_t)seed);
	ck_assert(it_send_all(x->fd[2], req, strlen(req)) == 0);
	ck_assert_msg(blast_read(x, 64 * KIB, IT_WAIT_MS, &end) == 1,
	    "blast: ended (%ld) after %ju bytes", end, (uintmax_t)x->got);
}

/*
 * The link died: every transfer of ${x} must end (EOF or reset, no hang)
 * within RESET_MS of ${t0}; what the download delivered is verified.
 * Returns the milliseconds the last one took.
 */
static int64_t
xfer_expect_end(struct xfer *x, int64_t t0, const char *what)
{
	uint64_t n;
	long r, end = 0;
	int i, left;

	for (i = 0; i < 2; i++) {
		left = (int)(t0 + RESET_MS - it_now_ms());
		r = it_drain_wait(x->fd[i], left > 0 ? left : 0, &n);
		ck_assert_msg(r != IT_TIMEOUT, "%s: echo channel %d did not end "
		    "within %d ms", what, i, RESET_MS);
		ck_assert_msg(r <= 0, "%s: echo channel %d: %ld", what, i, r);
		it_close(x->fd[i]);
	}
	left = (int)(t0 + RESET_MS - it_now_ms());
	ck_assert_msg(blast_read(x, UINT64_MAX, left > 0 ? left : 0, &end) == 0,
	    "blast did not end");
	ck_assert_msg(end != IT_TIMEOUT, "%s: the download did not end within "
	    "%d ms (%ju bytes)", what, RESET_MS, (uintmax_t)x->got);
	it_close(x->fd[2]);
	return (it_now_ms() - t0);
}

/*
 * The link was lost and resumed: every transfer of ${x} goes on where it
 * was, byte for byte.  The idle channel echoes again, the busy one gets
 * all it had in flight back, the download goes on for another MiB; then
 * all three close.
 */
static void
xfer_expect_continue(struct xfer *x, const char *what)
{
	char *big = it_calloc(1, 256 * KIB);
	long end = 0;
	ssize_t n;

	roundtrip(x->fd[0], x->seed + 3, 1000, it_fmt("%s: idle echo "
	    "channel", what));
	(void)fcntl(x->fd[1], F_SETFL, 0);
	n = it_recv_full(x->fd[1], big, 256 * KIB);
	ck_assert_msg(n == 256 * KIB, "%s: busy echo channel: %zd of %d bytes "
	    "back (%s)", what, n, 256 * KIB, n < 0 ? strerror(errno) : "EOF");
	ck_assert_msg(it_verify(x->seed + 2, 0, big, 256 * KIB) == -1,
	    "%s: busy echo channel: bytes differ", what);
	ck_assert_msg(blast_read(x, x->got + MIB, IT_WAIT_MS, &end) == 1,
	    "%s: the download ended (%ld) after %ju bytes", what, end,
	    (uintmax_t)x->got);
	it_finish_client(x->fd[0], what);
	it_close(x->fd[1]);
	it_close(x->fd[2]);
}

/* ------------------------------------------------------------ resources */

/* Descriptors and VmRSS of a surviving mxd after warm-up and at the end. */
struct res {
	int	fd0, fd1;
	long	rss0, rss1;
};

/* Before cycle ${i} of ${n}: once warmed up (WARM_CYCLES, or at the start
 * of a short run), note ${m}'s descriptors and VmRSS in ${r}. */
static void
res_warm(struct res *r, struct it_mxd *m, int i, int n)
{

	if (i == WARM_CYCLES || (n <= WARM_CYCLES && i == 0)) {
		r->fd0 = it_fd_settled(m);
		r->rss0 = it_rss_kb(m->pid);
	}
}

/* The checks at the end: descriptors exactly as after warm-up (waiting for
 * them to close), RSS within the allowance unless sanitized. */
static void
res_check(struct res *r, struct it_mxd *m, const char *who, int ncycles,
    const char *what)
{

	int64_t deadline;

	r->fd1 = it_fd_wait(m->pid, r->fd0, IT_WAIT_MS);
	/* mxd gives free memory back every 2 s (main.c status_cb). */
	deadline = it_now_ms() + IT_WAIT_MS;
	while ((r->rss1 = it_rss_kb(m->pid)) > r->rss0 + RSS_SLACK_KB &&
	    it_now_ms() < deadline)
		usleep(100000);
	printf("%s: %d cycles: %s descriptors %d -> %d, VmRSS %ld -> %ld KiB"
	    "%s\n", what, ncycles, who, r->fd0, r->fd1, r->rss0, r->rss1,
	    it_san() ? " [sanitizers: RSS not checked]" : "");
	ck_assert_msg(r->fd1 == r->fd0, "%s: %s has %d descriptors, %d after "
	    "warm-up", what, who, r->fd1, r->fd0);
	if (!it_san())
		ck_assert_msg(r->rss1 <= r->rss0 + RSS_SLACK_KB, "%s: %s grew "
		    "from %ld to %ld KiB", what, who, r->rss0, r->rss1);
}

/* ------------------------------------------------------------ 1. kills */

/*
 * SIGKILL of B with three transfers under way; B restarted.  A keeps
 * running and holds the session (resumption); when it reaches the new B,
 * which knows nothing of it, the held channels are reset at once, and a
 * new session is up within reconnect_max of B's return; new channels work.
 */
START_TEST(kill_listener_cycles)
{
	int i, n = cycles(100), ups, dying;
	int64_t t0, ms, end_max = 0, redial_max = 0;
	struct xfer x;
	struct res r;
	struct fp p;

	fp_start(&p, NULL, 10, 100, "", "", NULL, NULL, _i);
	for (i = 0; i < n; i++) {
		res_warm(&r, p.a, i, n);
		xfer_start(&p, &x, 1000 + (uint64_t)i * 10);
		it_mxd_mark(p.a);
		it_mxd_kill(p.b);
		it_mxd_wait_log(p.a, ": lost: ", IT_WAIT_MS);
		it_mxd_restart(p.b);
		it_mxd_wait_log(p.b, "link: waiting for the peer", IT_WAIT_MS);
		t0 = it_now_ms();
		ms = xfer_expect_end(&x, t0, it_fmt("cycle %d", i));
		if (ms > end_max)
			end_max = ms;
		it_mxd_wait_log(p.a, "resumption refused by the peer",
		    IT_WAIT_MS);
		it_mxd_wait_log(p.a, "up (connected", IT_WAIT_MS);
		ms = it_now_ms() - t0;
		if (ms > redial_max)
			redial_max = ms;
		ck_assert_msg(ms <= p.reconnect_max_ms + UP_SLACK_MS, "cycle "
		    "%d: A was up %jd ms after B was back (reconnect_max %d "
		    "ms)", i, (intmax_t)ms, p.reconnect_max_ms);
		it_mxd_wait_log(p.b, "up (accepted", IT_WAIT_MS);
		flows(&p, 3, 64 * KIB, 50000 + (uint64_t)i * 10, 30000,
		    it_fmt("cycle %d", i));
	}
	/* A may connect more often than B came back: a dial the moment the
	 * link drops can reach a dying B's listen queue, whose kernel
	 * completes the handshake and then resets it.  Such a connection is
	 * not up: B never answered A's ping. */
	ups = it_mxd_log_count(p.a, "up (connected");
	dying = it_mxd_log_count(p.a, "closed before the peer answered");
	printf("kill_listener_cycles%s: %d SIGKILLs of B: held channels reset "
	    "within %jd ms of B's return, A up again within %jd ms; up %d "
	    "times, %d connects into a dying B not taken as up\n",
	    tls_tag(_i), n, (intmax_t)end_max, (intmax_t)redial_max, ups,
	    dying);
	res_check(&r, p.a, "A", n, it_fmt("kill_listener_cycles%s",
	    tls_tag(_i)));
	ck_assert_int_eq(ups, n + 1);
	ck_assert_int_eq(it_mxd_log_count(p.a, "resumption refused by the "
	    "peer"), n);
	it_finish();
}
END_TEST

/*
 * SIGKILL of A with transfers under way; A restarted.  B keeps running and
 * holds the session; the new A starts a new one at once, and B resets the
 * held channels then (its descriptors drop back to those of an idle B with
 * a link); new channels work.
 */
START_TEST(kill_dialer_cycles)
{
	int i, n = cycles(100), fd, up_fds;
	int64_t t0, ms, end_max = 0, up_max = 0;
	struct xfer x;
	struct res r;
	struct fp p;

	fp_start(&p, NULL, 10, 100, "", "", NULL, NULL, _i);
	up_fds = it_fd_settled(p.b);
	for (i = 0; i < n; i++) {
		res_warm(&r, p.b, i, n);
		xfer_start(&p, &x, 7000 + (uint64_t)i * 10);
		it_mxd_mark(p.b);
		t0 = it_now_ms();
		it_mxd_kill(p.a);
		/* A's clients die with it. */
		(void)xfer_expect_end(&x, t0, it_fmt("cycle %d", i));
		it_mxd_wait_log(p.b, ": lost: ", RESET_MS);
		it_mxd_restart(p.a);
		t0 = it_now_ms();
		it_mxd_wait_log(p.b, "the peer started a new session", IT_WAIT_MS);
		fd = it_fd_wait(p.b->pid, up_fds, RESET_MS);
		ms = it_now_ms() - t0;
		ck_assert_msg(fd == up_fds, "cycle %d: B has %d descriptors %d "
		    "ms after A came back, not %d", i, fd, RESET_MS, up_fds);
		if (ms > end_max)
			end_max = ms;
		it_mxd_wait_log(p.b, "up (accepted", IT_WAIT_MS);
		it_mxd_wait_log(p.a, "up (connected", IT_WAIT_MS);
		ms = it_now_ms() - t0;
		if (ms > up_max)
			up_max = ms;
		flows(&p, 3, 64 * KIB, 90000 + (uint64_t)i * 10, 30000,
		    it_fmt("cycle %d", i));
	}
	printf("kill_dialer_cycles%s: %d SIGKILLs of A: B reset the held "
	    "channels within %jd ms of A's return; a restarted A was up "
	    "within %jd ms\n", tls_tag(_i), n, (intmax_t)end_max,
	    (intmax_t)up_max);
	res_check(&r, p.b, "B", n, it_fmt("kill_dialer_cycles%s",
	    tls_tag(_i)));
	ck_assert_int_eq(it_mxd_log_count(p.b, "up (accepted"), n + 1);
	it_finish();
}
END_TEST

/* Kill the established TCP connections matching ss filter ${filter}. */
static void
ss_kill(const char *filter)
{
	char *cmd = it_fmt("PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH; "
	    "ss -K -t -n state established '%s' >/dev/null 2>&1", filter);
	int st = system(cmd);

	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "%s: status %#x", cmd, st);
}

/*
 * The link's TCP connection killed with ss -K, on A's side or on B's in
 * turn: both keep running and hold the session, A dials again at once,
 * the session resumes and every transfer goes on intact; nothing leaks on
 * either side.
 */
START_TEST(ss_kill_cycles)
{
	int i, n = cycles(100);
	int64_t t0, ms, resume_max = 0;
	struct res ra, rb;
	struct xfer x;
	struct fp p;

	if (geteuid() != 0) {
		skip("ss_kill_cycles", "not root (ss -K needs CAP_NET_ADMIN)");
		return;
	}
	fp_start(&p, NULL, 10, 100, "", "", NULL, NULL, _i);
	for (i = 0; i < n; i++) {
		res_warm(&ra, p.a, i, n);
		res_warm(&rb, p.b, i, n);
		xfer_start(&p, &x, 20000 + (uint64_t)i * 10);
		it_mxd_mark(p.a);
		it_mxd_mark(p.b);
		t0 = it_now_ms();
		if (i % 2 == 0)
			ss_kill(it_fmt("( dst %s and dport = :%d )", IT_HOST,
			    p.link));
		else
			ss_kill(it_fmt("( src %s and sport = :%d )", IT_HOST,
			    p.link));
		it_mxd_wait_log(p.a, ": lost: ", IT_WAIT_MS);
		it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
		ms = it_now_ms() - t0;
		if (ms > resume_max)
			resume_max = ms;
		ck_assert_msg(ms <= p.reconnect_max_ms + UP_SLACK_MS, "cycle "
		    "%d: resumed after %jd ms", i, (intmax_t)ms);
		it_mxd_wait_log(p.b, "resumed after", IT_WAIT_MS);
		xfer_expect_continue(&x, it_fmt("cycle %d", i));
		flows(&p, 3, 64 * KIB, 30000 + (uint64_t)i * 10, 30000,
		    it_fmt("cycle %d", i));
	}
	printf("ss_kill_cycles%s: %d connections killed (half on each side): "
	    "every transfer went on intact, resumed within %jd ms\n",
	    tls_tag(_i), n, (intmax_t)resume_max);
	res_check(&ra, p.a, "A", n, it_fmt("ss_kill_cycles%s", tls_tag(_i)));
	res_check(&rb, p.b, "B", n, it_fmt("ss_kill_cycles%s", tls_tag(_i)));
	ck_assert_int_eq(it_mxd_log_count(p.a, "resumed after"), n);
	ck_assert_int_eq(it_mxd_log_count(p.a, "channels reset"), 0);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 2. target */

/*
 * The target process dies with transfers under way and comes back: the
 * channels end (EOF or reset, as the target's kernel closed them), new
 * channels are reset at once while it is down, and work once it is back;
 * the link stays up all along.
 */
START_TEST(target_restart)
{
	int i, n = 5, fd;
	int64_t t0, ms, end_max = 0;
	struct xfer x;
	struct fp p;
	uint64_t nb;
	long r;

	fp_start(&p, NULL, 10, 100, "", "", NULL, NULL, 0);
	it_mxd_mark(p.a);
	it_mxd_mark(p.b);
	for (i = 0; i < n; i++) {
		xfer_start(&p, &x, 40000 + (uint64_t)i * 10);
		t0 = it_now_ms();
		it_targets_kill(p.t);
		ms = xfer_expect_end(&x, t0, it_fmt("round %d", i));
		if (ms > end_max)
			end_max = ms;
		/* A new channel while the target is down: reset at once. */
		fd = client(&p, p.pe);
		/* The reset may come before the byte goes: send reports it
		 * then, and a read after that sees only EOF. */
		if (send(fd, "x", 1, MSG_NOSIGNAL) == 1)
			r = it_drain_wait(fd, RESET_MS, &nb);
		else
			r = -errno;
		ck_assert_msg(r == -ECONNRESET, "round %d: a channel to the "
		    "dead target: %ld, not a reset", i, r);
		it_close(fd);
		it_targets_restart(p.t);
		flows(&p, 4, 128 * KIB, 60000 + (uint64_t)i * 10, 30000,
		    it_fmt("round %d", i));
	}
	ck_assert_msg(!it_mxd_log_has(p.a, ": down: ") &&
	    !it_mxd_log_has(p.b, ": down: "), "the link went down");
	it_mxd_wait_log(p.b, "Connection refused", IT_WAIT_MS);
	printf("target_restart: %d target deaths: channels ended within %jd "
	    "ms, link up throughout\n", n, (intmax_t)end_max);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 3. netns */

/*
 * A sampler of A's metrics in a child process (in A's namespace): the
 * largest mxd_link_rtt_seconds and mxd_link_buffered_bytes, and the last
 * mxd_link_ups_total it saw.
 */
struct sampler {
	pid_t		pid;
	struct samples {
		volatile double	rtt_max;
		volatile long	buffered_max;
		volatile long	ups;
		volatile long	n;
	} *s;
};

/* One GET /metrics from 127.0.0.1:${port}; the values into ${s}. */
static void
sample_once(int port, struct samples *s)
{
	struct sockaddr_in sin;
	char buf[16384], *p;
	size_t have = 0;
	ssize_t r;
	double v;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25) == 25) {
		while (have < sizeof(buf) - 1 && (r = read(fd, buf + have,
		    sizeof(buf) - 1 - have)) > 0)
			have += (size_t)r;
		buf[have] = '\0';
		if ((p = strstr(buf, "\nmxd_link_rtt_seconds ")) != NULL) {
			v = strtod(p + 22, NULL);
			if (v > s->rtt_max)
				s->rtt_max = v;
		}
		if ((p = strstr(buf, "\nmxd_link_ups_total ")) != NULL)
			s->ups = strtol(p + 20, NULL, 10);
		if ((p = strstr(buf, "\nmxd_link_buffered_bytes ")) != NULL &&
		    (v = strtod(p + 25, NULL)) > s->buffered_max)
			s->buffered_max = (long)v;
		s->n++;
	}
	close(fd);
}

/* Start sampling A's metrics every 100 ms (the caller is in A's
 * namespace, which the child keeps). */
static void
sampler_start(struct sampler *sm, int port)
{

	sm->s = mmap(NULL, sizeof(*sm->s), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(sm->s != MAP_FAILED);
	memset((void *)sm->s, 0, sizeof(*sm->s));
	fflush(NULL);
	sm->pid = fork();
	ck_assert(sm->pid >= 0);
	if (sm->pid == 0) {
		for (;;) {
			if (getppid() == 1)
				_exit(0);
			sample_once(port, sm->s);
			usleep(100000);
		}
	}
}

static void
sampler_stop(struct sampler *sm)
{

	kill(sm->pid, SIGKILL);
	(void)waitpid(sm->pid, NULL, 0);
}

/*
 * Two namespaces joined by veth at 10 Mbit/s (tbf, each way) dropping 2 %
 * of packets at random each way: one bulk echo flow and many small ones,
 * all at once, come back byte for byte; the link, with keepalive 500 ms
 * and timeout 2 s, never goes down, and the ping round trip stays well
 * below the timeout (pings go ahead of the bulk data).  _i 1: the same
 * over TLS, whose records a lost segment holds up whole.
 */
/*
 * ${n} + 1 echo flows through A's echo service: one of ${bulk} bytes and
 * ${n} of up to ${small}, seeds from ${seed}; their total size goes to
 * *${total}.
 */
static struct it_flow *
bulk_and_small(struct fp *p, size_t bulk, size_t n, size_t small,
    uint64_t seed, size_t *total)
{
	struct it_flow *f = it_calloc(n + 1, sizeof(*f));
	size_t i;

	*total = 0;
	for (i = 0; i <= n; i++) {
		f[i].port = p->pe;
		f[i].size = i == 0 ? bulk : (i * 7919) % small;
		f[i].seed = seed + i;
		*total += f[i].size;
	}
	return (f);
}

START_TEST(netns_lossy_bulk)
{
	const size_t bulk = 3 * MIB, nsmall = 150, small = 32 * KIB;
	struct it_flow *f;
	struct sampler sm;
	struct fp p;
	struct nt n;
	char why[64];
	size_t bad, total;
	int64_t t0, ms;

	if (!nt_available(why, sizeof(why))) {
		skip("netns_lossy_bulk", why);
		return;
	}
	nt_setup(&n);
	nt_shape(&n, "rate 10mbit burst 16kb latency 50ms");
	nt_drop(&n, 2);
	fp_start(&p, &n, 100, 1000, "", "", NULL, NULL, _i);
	f = bulk_and_small(&p, bulk, nsmall, small, 777, &total);
	in_a(&p);
	sampler_start(&sm, p.ma);
	t0 = it_now_ms();
	bad = it_flows_run(f, nsmall + 1, 120000, msg, sizeof(msg));
	ms = it_now_ms() - t0;
	sampler_stop(&sm);
	out_a(&p);
	printf("netns_lossy_bulk%s: 10 Mbit/s, 2%% loss each way: %zu channels "
	    "(one of %zu KiB), %zu KiB each way echoed intact in %jd ms "
	    "(%.1f Mbit/s); ping round trip at most %.0f ms (%ld samples); "
	    "link ups %ld; %ld packets dropped\n", tls_tag(_i),
	    nsmall + 1, bulk / KIB,
	    total / KIB, (intmax_t)ms, total * 8.0 / 1000.0 /
	    (double)(ms ? ms : 1), sm.s->rtt_max * 1000, sm.s->n, sm.s->ups,
	    nt_dropped(&n));
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad,
	    nsmall + 1, msg);
	ck_assert_msg(!it_mxd_log_has(p.a, ": down: ") &&
	    !it_mxd_log_has(p.b, ": down: "), "the slow link was declared dead");
	ck_assert_msg(sm.s->n > 0 && sm.s->ups == 1, "link ups: %ld",
	    sm.s->ups);
	ck_assert_msg(sm.s->rtt_max < TIMEOUT_MS / 2 / 1000.0,
	    "the ping round trip reached %.0f ms", sm.s->rtt_max * 1000);
	it_finish();
	nt_teardown();
}
END_TEST

/*
 * Across the WAN emulator (netns.h, nt_setup_wan): 25 ms each way, 20
 * Mbit/s with a one-BDP drop-tail queue, 0.5 % of the packets lost at
 * random each way.  Sets ${n} up, or says why the test skips (0).
 */
#define WAN_DELAY_MS	25
#define WAN_MBIT	20
#define WAN_LOSS	0.5

static int
wan_setup(struct nt *n, const char *test)
{
	char why[96];

	if (!nt_available(why, sizeof(why)) || nt_setup_wan(n, WAN_DELAY_MS,
	    WAN_MBIT, WAN_LOSS, why, sizeof(why)) != 0) {
		skip(test, why);
		return (0);
	}
	return (1);
}

/*
 * A WAN (50 ms round trip, 20 Mbit/s, 0.5 % loss each way): 61 channels at
 * once, one of 2 MiB and 60 of up to 64 KiB, every byte echoed intact;
 * the delay and the losses never get the link declared dead (keepalive
 * 500 ms, timeout 2 s); plain, then TLS.  Correctness only: speed across a
 * WAN is bench/run.sh --scenarios wan.
 */
START_TEST(wan_lossy_flows)
{
	const size_t bulk = 2 * MIB, nsmall = 60, small = 64 * KIB;
	struct it_flow *f;
	struct fp p;
	struct nt n;
	size_t bad, total;
	int64_t t0, ms;

	if (!wan_setup(&n, "wan_lossy_flows"))
		return;
	fp_start(&p, &n, 100, 1000, "", "", NULL, NULL, _i);
	f = bulk_and_small(&p, bulk, nsmall, small, 5150, &total);
	in_a(&p);
	t0 = it_now_ms();
	bad = it_flows_run(f, nsmall + 1, 120000, msg, sizeof(msg));
	ms = it_now_ms() - t0;
	out_a(&p);
	printf("wan_lossy_flows%s: %d ms round trip, %d Mbit/s, %.1f %% loss "
	    "each way: %zu channels, %zu KiB each way echoed intact in %jd ms "
	    "(%.1f Mbit/s)\n", tls_tag(_i), 2 * WAN_DELAY_MS, WAN_MBIT,
	    WAN_LOSS, nsmall + 1, total / KIB, (intmax_t)ms, total * 8.0 /
	    1000.0 / (double)(ms ? ms : 1));
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad,
	    nsmall + 1, msg);
	ck_assert_msg(!it_mxd_log_has(p.a, ": lost: ") &&
	    !it_mxd_log_has(p.b, ": lost: "), "the WAN was declared dead");
	it_finish();
	nt_teardown();
}
END_TEST

/*
 * The WAN goes silent (the emulator stopped) with transfers under way:
 * both sides declare the link dead within timeout and hold the session;
 * once the WAN forwards again the session resumes across it and the
 * transfers go on intact.
 */
START_TEST(wan_blackhole_resumes)
{
	struct xfer x;
	struct fp p;
	struct nt n;

	if (!wan_setup(&n, "wan_blackhole_resumes"))
		return;
	fp_start(&p, &n, 100, 1000, "", "", NULL, NULL, 0);
	flows(&p, 8, 128 * KIB, 300, 30000, "before");
	xfer_start(&p, &x, 4343);
	it_mxd_mark(p.a);
	it_mxd_mark(p.b);
	nt_wan_freeze(1);
	it_mxd_wait_log(p.a, ": lost: timed out", TIMEOUT_MS + 2000);
	it_mxd_wait_log(p.b, ": lost: timed out", TIMEOUT_MS + 2000);
	nt_wan_freeze(0);
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	it_mxd_wait_log(p.b, "resumed after", IT_WAIT_MS);
	xfer_expect_continue(&x, "WAN black hole");
	flows(&p, 8, 128 * KIB, 400, 30000, "after");
	ck_assert_int_eq(it_mxd_log_count(p.a, "channels reset"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.b, "channels reset"), 0);
	printf("wan_blackhole_resumes: the WAN silent until both sides "
	    "declared the link dead; the session resumed across it, transfers "
	    "intact\n");
	it_finish();
	nt_teardown();
}
END_TEST

/*
 * 64 uploads at once (echoed back) across a 100 Mbit/s link: the link is
 * far behind, so A reads each client's socket only on its stream's turn
 * (pull mode) and holds about one read per channel, the rest waiting in
 * the sockets; reading each up to its send queue's mark (256 KiB) would
 * hold 16 MiB or more.
 */
START_TEST(netns_uploads_wait_in_sockets)
{
	const size_t nflows = 64, size = 512 * KIB, limit = 12 * MIB;
	struct it_flow *f;
	struct sampler sm;
	struct fp p;
	struct nt n;
	char why[64];
	size_t i, bad;
	int64_t ms;

	if (!nt_available(why, sizeof(why))) {
		skip("netns_uploads_wait_in_sockets", why);
		return;
	}
	nt_setup(&n);
	nt_shape(&n, "rate 100mbit burst 16kb limit 32kb");
	fp_start(&p, &n, 100, 1000, "", "", NULL, NULL, 0);
	f = it_calloc(nflows, sizeof(*f));
	for (i = 0; i < nflows; i++) {
		f[i].port = p.pe;
		f[i].size = size;
		f[i].seed = 4100 + i;
	}
	in_a(&p);
	sampler_start(&sm, p.ma);
	ms = it_now_ms();
	bad = it_flows_run(f, nflows, 60000, msg, sizeof(msg));
	ms = it_now_ms() - ms;
	sampler_stop(&sm);
	out_a(&p);
	printf("netns_uploads_wait_in_sockets: %zu uploads of %zu KiB echoed "
	    "intact in %jd ms; A held at most %ld KiB (%ld samples)\n", nflows,
	    size / KIB, (intmax_t)ms, sm.s->buffered_max / 1024, sm.s->n);
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad,
	    nflows, msg);
	ck_assert_msg(sm.s->n >= 5, "only %ld samples", sm.s->n);
	ck_assert_msg((size_t)sm.s->buffered_max <= limit, "A held %ld KiB "
	    "for %zu uploads (limit %zu KiB)", sm.s->buffered_max / 1024,
	    nflows, limit / KIB);
	it_finish();
	nt_teardown();
}
END_TEST

/*
 * The link goes silent (every packet dropped, both ways): both sides
 * declare it dead within timeout (+ one tick), its channels end, new
 * clients are turned away at once; A keeps redialing; once the packets
 * flow again the link is back within connect_timeout + reconnect_max and
 * carries new channels.
 */
START_TEST(netns_blackhole)
{
	struct xfer x;
	struct fp p;
	struct nt n;
	char why[64], c;
	int64_t t0, ms_a, ms_b, ms_up;
	int fd;
	long r;

	if (!nt_available(why, sizeof(why))) {
		skip("netns_blackhole", why);
		return;
	}
	nt_setup(&n);
	fp_start(&p, &n, 100, 1000, "", "", NULL, NULL, _i);
	flows(&p, 8, 256 * KIB, 100, 30000, "before");
	xfer_start(&p, &x, 4242);
	it_mxd_mark(p.a);
	it_mxd_mark(p.b);
	nt_drop(&n, 100);
	t0 = it_now_ms();
	it_mxd_wait_log(p.a, ": lost: timed out", TIMEOUT_MS + 2000);
	ms_a = it_now_ms() - t0;
	it_mxd_wait_log(p.b, ": lost: timed out", TIMEOUT_MS + 2000);
	ms_b = it_now_ms() - t0;
	ck_assert_msg(ms_a <= TIMEOUT_MS + KEEPALIVE_MS + 500 &&
	    ms_b <= TIMEOUT_MS + KEEPALIVE_MS + 500, "declared dead after "
	    "%jd (A) and %jd (B) ms; timeout is %d ms", (intmax_t)ms_a,
	    (intmax_t)ms_b, TIMEOUT_MS);
	/* Held: a new client is taken, and waits with the others. */
	fd = client(&p, p.pe);
	ck_assert(send(fd, "x", 1, MSG_NOSIGNAL) == 1);
	/* A keeps trying: its dials time out meanwhile. */
	it_mxd_wait_log(p.a, "cannot connect", IT_WAIT_MS);
	it_mxd_mark(p.a);
	nt_drop(&n, 0);
	t0 = it_now_ms();
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	ms_up = it_now_ms() - t0;
	ck_assert_msg(ms_up <= 1000 + p.reconnect_max_ms + 500, "the session "
	    "resumed %jd ms after the path came back", (intmax_t)ms_up);
	r = it_recv_wait(fd, &c, 1, IT_WAIT_MS);
	ck_assert_msg(r == 1 && c == 'x', "the client of the outage: %ld", r);
	it_finish_client(fd, "the client of the outage");
	xfer_expect_continue(&x, "black hole");
	flows(&p, 8, 256 * KIB, 200, 30000, "after");
	printf("netns_blackhole%s: timeout %d ms: declared dead after %jd ms "
	    "(A), %jd ms (B); every channel held; resumed %jd ms after the "
	    "path, transfers intact\n", tls_tag(_i), TIMEOUT_MS,
	    (intmax_t)ms_a, (intmax_t)ms_b, (intmax_t)ms_up);
	it_finish();
	nt_teardown();
}
END_TEST

/* ------------------------------------------------------------ 4. limits */

/* A client of ${port} that sent "x": 1 if it was echoed within ${ms},
 * else what it_recv_wait said (IT_TIMEOUT: still waiting).  A reset can
 * come before connect() or send() returns: they report it then (-errno;
 * *${fdp} is -1 if there is no socket). */
static long
try_echo(struct fp *p, int port, int *fdp, int ms)
{
	char c;

	in_a(p);
	*fdp = it_connect(port);
	out_a(p);
	if (*fdp < 0 && errno == ECONNRESET)
		return (-ECONNRESET);
	ck_assert_msg(*fdp >= 0, "connect to A: %s", strerror(errno));
	if (send(*fdp, "x", 1, MSG_NOSIGNAL) != 1)
		return (-errno);
	return (it_recv_wait(*fdp, &c, 1, ms));
}

#define NOFILE	48

/*
 * A runs with RLIMIT_NOFILE 48: clients beyond what its descriptors allow
 * wait in the listen queue (A pauses accepting and says so once, without
 * spinning) and are served, in order, as soon as channels close; A is
 * back to its idle descriptors at the end.
 */
START_TEST(fd_limit_accept_side)
{
	struct it_mxd_opts ao = { NULL, NOFILE };
	int fd[NOFILE + 8], served = 0, waiting, i, base;
	long cpu0, cpu1, r = 0;
	struct fp p;
	char c;

	fp_start(&p, NULL, 10, 100, "", "", &ao, NULL, 0);
	base = it_fd_settled(p.a);
	for (i = 0; i < NOFILE + 8; i++) {
		if ((r = try_echo(&p, p.pe, &fd[i], 500)) != 1)
			break;
		served++;
	}
	ck_assert_msg(r == IT_TIMEOUT, "the client beyond the limit: %ld", r);
	ck_assert_msg(served < NOFILE && served >= NOFILE - base - 2,
	    "%d channels served with %d of %d descriptors in use", served,
	    base, NOFILE);
	it_mxd_wait_log(p.a, "Too many open files: pausing accepts",
	    IT_WAIT_MS);
	/* Four more wait with the first: none is served, none is lost. */
	waiting = 1;
	for (i = served + 1; i < served + 5; i++, waiting++)
		ck_assert_msg(try_echo(&p, p.pe, &fd[i], 100) == IT_TIMEOUT,
		    "served or reset beyond the limit");
	cpu0 = it_cpu_ms(p.a->pid);
	usleep(500000);
	cpu1 = it_cpu_ms(p.a->pid);
	ck_assert_msg(cpu1 - cpu0 < 150, "A used %ld ms of CPU in 500 ms "
	    "while out of descriptors", cpu1 - cpu0);
	ck_assert_int_eq(it_mxd_log_count(p.a, "pausing accepts"), 1);
	/* Free five: the waiting five are served. */
	for (i = 0; i < 5; i++)
		it_finish_client(fd[i], "echo client");
	for (i = served; i < served + waiting; i++) {
		ck_assert_msg(it_recv_wait(fd[i], &c, 1, IT_WAIT_MS) == 1,
		    "waiting client %d was not served once descriptors "
		    "were free", i - served);
		it_finish_client(fd[i], "echo client");
	}
	for (i = 5; i < served; i++)
		it_finish_client(fd[i], "echo client");
	ck_assert_int_eq(it_fd_wait(p.a->pid, base, IT_WAIT_MS), base);
	flows(&p, 20, 64 * KIB, 300, 30000, "after");
	printf("fd_limit_accept_side: RLIMIT_NOFILE %d: %d channels served, "
	    "%d waited and were served once 5 closed; %ld ms CPU in 500 ms "
	    "while out of descriptors\n", NOFILE, served, waiting,
	    cpu1 - cpu0);
	it_finish();
}
END_TEST

/*
 * B runs with RLIMIT_NOFILE 48: channels beyond what its descriptors allow
 * are reset at once (their target cannot be connected) and logged; closing
 * some makes room for new ones.  Then a connection to B's link port while
 * B is out of descriptors: B logs it once and pauses accepting, without
 * spinning, and once descriptors are free it accepts it (the stray
 * connection replaces the link, which A restores by itself).
 */
START_TEST(fd_limit_target_side)
{
	struct it_mxd_opts bo = { NULL, NOFILE };
	int fd[NOFILE + 8], served = 0, i, base, stray;
	long cpu0, cpu1, r = 0;
	struct fp p;

	fp_start(&p, NULL, 10, 100, "", "", NULL, &bo, 0);
	base = it_fd_settled(p.b);
	for (i = 0; i < NOFILE + 8; i++) {
		if ((r = try_echo(&p, p.pe, &fd[i], 1000)) != 1)
			break;
		served++;
	}
	ck_assert_msg(served < NOFILE && served >= NOFILE - base - 2,
	    "%d channels served with %d of %d descriptors in use", served,
	    base, NOFILE);
	/* The one that failed was reset at once, not left hanging. */
	ck_assert_msg(r == -ECONNRESET, "channel beyond the limit: %ld", r);
	it_close(fd[served]);
	it_mxd_wait_log(p.b, "Too many open files", IT_WAIT_MS);
	for (i = 0; i < 3; i++) {
		r = try_echo(&p, p.pe, &fd[served], RESET_MS);
		ck_assert_msg(r == -ECONNRESET, "channel beyond the limit: "
		    "%ld", r);
		it_close(fd[served]);
	}
	/* Room for exactly as many as closed. */
	for (i = 0; i < 3; i++)
		it_finish_client(fd[i], "echo client");
	for (i = 0; i < 3; i++)
		ck_assert_msg(try_echo(&p, p.pe, &fd[i], IT_WAIT_MS) == 1,
		    "no room after channels closed");

	/* A stray connection to the link port: B is out of descriptors. */
	stray = it_connect(p.link);
	ck_assert(stray >= 0);
	it_mxd_wait_log(p.b, "link: accept: Too many open files",
	    IT_WAIT_MS);
	cpu0 = it_cpu_ms(p.b->pid);
	usleep(500000);
	cpu1 = it_cpu_ms(p.b->pid);
	ck_assert_msg(cpu1 - cpu0 < 150, "B used %ld ms of CPU in 500 ms "
	    "while it could not accept", cpu1 - cpu0);
	ck_assert_int_eq(it_mxd_log_count(p.b, "link: accept:"), 1);
	it_close(stray);
	/* Free the descriptors: B takes the stray, which waits to replace
	 * the link until it answers a ping, and ends at once (closed); the
	 * link stays up throughout. */
	it_mxd_mark(p.b);
	for (i = 0; i < served; i++)
		it_close(fd[i]);
	it_mxd_wait_log(p.b, "replaces it once it answers a ping",
	    IT_WAIT_MS);
	it_mxd_wait_log(p.b, "closed: ", IT_WAIT_MS);
	ck_assert_int_eq(it_fd_wait(p.b->pid, base, IT_WAIT_MS), base);
	ck_assert_msg(it_mxd_log_count(p.a, "up (connected)") == 1 &&
	    !it_mxd_log_has(p.b, "replaced by"), "the stray replaced the link");
	flows(&p, 20, 64 * KIB, 400, 30000, "after");
	printf("fd_limit_target_side: RLIMIT_NOFILE %d: %d channels served, "
	    "the rest reset at once; link listener paused with %ld ms CPU in "
	    "500 ms, one log line\n", NOFILE, served, cpu1 - cpu0);
	it_finish();
}
END_TEST

/*
 * max_channels = 20 on A: 20 channels work, five more are reset at once
 * (one log line); with all closed, 20 new ones work again.
 */
START_TEST(max_channels_recovers)
{
	int fd[25], i;
	struct fp p;
	uint64_t nb;
	long r;

	fp_start(&p, NULL, 10, 100, "max_channels = 20\n", "", NULL, NULL, 0);
	for (i = 0; i < 20; i++)
		ck_assert_msg(try_echo(&p, p.pe, &fd[i], IT_WAIT_MS) == 1,
		    "channel %d", i);
	for (i = 20; i < 25; i++) {
		fd[i] = client(&p, p.pe);
		r = it_drain_wait(fd[i], RESET_MS, &nb);
		ck_assert_msg(r == -ECONNRESET, "channel %d beyond "
		    "max_channels: %ld", i, r);
		it_close(fd[i]);
	}
	ck_assert_int_eq(it_mxd_log_count(p.a, "max_channels (20) reached"),
	    1);
	for (i = 0; i < 20; i++)
		it_finish_client(fd[i], "echo client");
	for (i = 0; i < 20; i++)
		ck_assert_msg(try_echo(&p, p.pe, &fd[i], IT_WAIT_MS) == 1,
		    "channel %d after recovery", i);
	for (i = 0; i < 20; i++)
		it_finish_client(fd[i], "echo client");
	it_finish();
}
END_TEST

static void
nothing(void)
{
}

static Suite *
faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *t = tcase_create("faults");

	tcase_set_timeout(t, 60 + 3 * cycles(100));
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	tcase_add_checked_fixture(t, nothing, nt_teardown);
	/* The kills, the lossy link, the black hole: plain, then TLS (_i 1). */
	IT_ADD_LOOP(t, kill_listener_cycles, 2);
	IT_ADD_LOOP(t, kill_dialer_cycles, 2);
	IT_ADD_LOOP(t, ss_kill_cycles, 2);
	IT_ADD(t, target_restart);
	IT_ADD_LOOP(t, netns_lossy_bulk, 2);
	IT_ADD(t, netns_uploads_wait_in_sockets);
	IT_ADD_LOOP(t, netns_blackhole, 2);
	IT_ADD_LOOP(t, wan_lossy_flows, 2);
	IT_ADD(t, wan_blackhole_resumes);
	IT_ADD(t, fd_limit_accept_side);
	IT_ADD(t, fd_limit_target_side);
	IT_ADD(t, max_channels_recovers);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{

	return (it_main(faults_suite()));
}
