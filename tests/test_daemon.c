/*
 * Integration tests of the daemon: pairs of real mxd processes ($MXD_BIN)
 * on 127.0.0.1, with targets in a child process and clients in this one
 * (see itest.h).  Side A dials the link, side B listens for it; unless a
 * test says otherwise clients connect to A and targets sit behind B.
 *
 * Every test ends with both mxd stopped by SIGTERM: each must exit 0 with
 * no channel left over and no sanitizer report in its log.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define MIB		(1024 * 1024)
#define FLOW_MS		60000	/* deadline of a batch of echo flows */
#define RESET_MS	3000	/* "promptly", well under any mxd timeout */

static char msg[512];

/* Concatenate services' ini text. */
static char *
svcs(const char *a, const char *b, const char *c, const char *d)
{

	return (it_fmt("%s%s%s%s", a ? a : "", b ? b : "", c ? c : "",
	    d ? d : ""));
}

/* Send ${len} bytes of stream ${seed} on blocking ${fd} and expect them
 * echoed back. */
static void
roundtrip(int fd, uint64_t seed, size_t len, const char *what)
{
	char *out = malloc(len), *in = malloc(len);
	ssize_t n;
	long bad;

	ck_assert(out != NULL && in != NULL);
	it_gen(seed, 0, out, len);
	if (it_send_all(fd, out, len) != 0) {
		free(out);
		free(in);
		ck_abort_msg("%s: send: %s", what, strerror(errno));
	}
	n = it_recv_full(fd, in, len);
	bad = n == (ssize_t)len ? it_verify(seed, 0, in, len) : -2;
	free(out);
	free(in);
	ck_assert_msg(n == (ssize_t)len, "%s: got %zd of %zu bytes back (%s)",
	    what, n, len, n >= 0 ? "early EOF" : errno == EAGAIN ?
	    "no reply within " IT_WAIT_STR : strerror(errno));
	ck_assert_msg(bad == -1, "%s: echoed byte %ld differs", what, bad);
}

/* Expect ${fd} (a client of a channel that cannot work) to be reset
 * within RESET_MS; returns how long it took. */
static int64_t
expect_reset(int fd, const char *what)
{
	int64_t t0 = it_now_ms();
	uint64_t n;
	long r = it_drain_wait(fd, RESET_MS, &n);

	ck_assert_msg(r != IT_TIMEOUT, "%s: no reset within %d ms", what,
	    RESET_MS);
	ck_assert_msg(r == -ECONNRESET, "%s: expected a reset (ECONNRESET), "
	    "got %s after %ju bytes", what, r == 0 ? "EOF" : strerror((int)-r),
	    (uintmax_t)n);
	it_close(fd);
	return (it_now_ms() - t0);
}

/*
 * Send small pieces on ${fd} every ${gap_ns}, for at most ${ms},
 * until the channel is reset, so that client data keeps arriving while
 * mxd handles the reset.  Then expect the reset: returns how long it took
 * from the start.
 */
static int64_t
spray_until_reset(int fd, int ms, long gap_ns, const char *what)
{
	int64_t t0 = it_now_ms();
	struct timespec ts = { 0, gap_ns };
	char piece[16];
	int e;

	memset(piece, 'x', sizeof(piece));
	while (it_now_ms() - t0 < ms) {
		if (send(fd, piece, sizeof(piece), MSG_NOSIGNAL |
		    MSG_DONTWAIT) < 0 && errno != EAGAIN) {
			e = errno;
			ck_assert_msg(e == ECONNRESET, "%s: send: %s (not a "
			    "reset)", what, strerror(e));
			it_close(fd);
			return (it_now_ms() - t0);
		}
		nanosleep(&ts, NULL);
	}
	return (expect_reset(fd, what) + ms);
}

/* Run ${n} flows and fail the test unless all of them finish cleanly. */
static void
run_flows(struct it_flow *f, size_t n)
{
	size_t bad = it_flows_run(f, n, FLOW_MS, msg, sizeof(msg));

	ck_assert_msg(bad == 0, "%zu of %zu echo flows failed; first: %s",
	    bad, n, msg);
}

/* Wait at most ${ms} for the counter ${c} to reach ${want}. */
static unsigned long long
wait_count(atomic_ullong *c, unsigned long long want, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	unsigned long long v;

	while ((v = atomic_load(c)) < want && it_now_ms() < deadline)
		usleep(5000);
	return (v);
}

/*
 * Count the connected TCP sockets of process ${pid} in ${conns}, and those
 * with TCP_NODELAY in ${nodelay}, with copies of its descriptors
 * (pidfd_getfd).  Returns 0, or -1 if the process's descriptors cannot be
 * had (not root, or an old kernel).
 */
static int
tcp_nodelay_count(pid_t pid, int *conns, int *nodelay)
{
	struct dirent *de;
	struct sockaddr_storage ss;
	socklen_t len;
	int pidfd, fd, v, rc = 0;
	DIR *d;

	*conns = *nodelay = 0;
	if ((pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1)
		return (-1);
	ck_assert((d = opendir(it_fmt("/proc/%d/fd", (int)pid))) != NULL);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((fd = (int)syscall(SYS_pidfd_getfd, pidfd,
		    atoi(de->d_name), 0)) == -1) {
			rc = errno == EBADF ? 0 : -1;	/* EBADF: closed */
			continue;
		}
		len = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 &&
		    v == 0 && (len = sizeof(ss), getpeername(fd,
		    (struct sockaddr *)&ss, &len) == 0) &&
		    ss.ss_family == AF_INET) {
			len = sizeof(v);
			ck_assert(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v,
			    &len) == 0);
			(*conns)++;
			*nodelay += v != 0;
		}
		close(fd);
	}
	closedir(d);
	close(pidfd);
	return (rc);
}

/* Every TCP connection of ${m} (at least ${min} of them) has Nagle off. */
static void
assert_nodelay(struct it_mxd *m, int min, const char *who)
{
	int conns, nodelay;

	if (tcp_nodelay_count(m->pid, &conns, &nodelay) != 0) {
		printf("%s: SKIP the TCP_NODELAY check: cannot copy its "
		    "descriptors: %s\n", who, strerror(errno));
		return;
	}
	ck_assert_msg(conns >= min, "%s: %d TCP connections, expected at "
	    "least %d", who, conns, min);
	ck_assert_msg(nodelay == conns, "%s: %d of its %d TCP connections "
	    "have TCP_NODELAY", who, nodelay, conns);
}

/* ------------------------------------------------------------ 1. echo */

START_TEST(echo_small_and_large)
{
	static const char hello[] = "hello, mxd\n";
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), fd;
	struct it_pair p;
	struct it_flow f;
	char buf[sizeof(hello)];
	ssize_t n;

	it_pair_start(&p, it_svc_accept("echo", port),
	    it_svc_connect("echo", t->port[IT_ECHO]));

	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	ck_assert(it_send_all(fd, hello, sizeof(hello) - 1) == 0);
	n = it_recv_full(fd, buf, sizeof(hello) - 1);
	ck_assert_msg(n == (ssize_t)sizeof(hello) - 1, "got %zd bytes", n);
	ck_assert(memcmp(buf, hello, sizeof(hello) - 1) == 0);
	/* The link, and the channel's socket: accepted at A, dialed at B. */
	assert_nodelay(p.a, 2, "A");
	assert_nodelay(p.b, 2, "B");
	it_finish_client(fd, "small echo");

	memset(&f, 0, sizeof(f));
	f.port = port;
	f.size = 8 * MIB;
	f.seed = 1;
	run_flows(&f, 1);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 2. many */

START_TEST(thousand_concurrent_channels)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port();
	size_t n = 1000, i, max = 256 * 1024;
	uint64_t x = 12345, total = 0;
	struct it_pair p;
	struct it_flow *f;
	int64_t t0;

	it_pair_start(&p, it_svc_accept("echo", port),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	f = it_calloc(n, sizeof(*f));
	for (i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		f[i].port = port;
		f[i].size = (size_t)((x >> 33) % (max + 1));
		if (i == 0)
			f[i].size = 0;
		if (i == 1)
			f[i].size = max;
		f[i].seed = 1000 + i;
		total += f[i].size;
	}
	t0 = it_now_ms();
	run_flows(f, n);
	printf("thousand_concurrent_channels: %zu channels, %ju bytes each "
	    "way, %jd ms\n", n, (uintmax_t)total, (intmax_t)(it_now_ms() - t0));
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 3. half-close */

START_TEST(half_close_client_first)
{
	struct it_targets *t = it_targets_start();
	int pl = it_free_port(), ps = it_free_port(), fd;
	size_t len = MIB, sink_len = 100000;
	char *buf, reply[32], want[32];
	struct it_pair p;
	ssize_t n;
	long bad, r;

	it_pair_start(&p,
	    svcs(it_svc_accept("late", pl), it_svc_accept("sink", ps), 0, 0),
	    svcs(it_svc_connect("late", t->port[IT_LATE]),
	    it_svc_connect("sink", t->port[IT_SINK]), 0, 0));

	/* The target replies only after the client's EOF came through. */
	buf = it_calloc(1, len);
	fd = it_connect(pl);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_gen(77, 0, buf, len);
	ck_assert(it_send_all(fd, buf, len) == 0);
	ck_assert(shutdown(fd, SHUT_WR) == 0);
	memset(buf, 0, len);
	n = it_recv_full(fd, buf, len);
	ck_assert_msg(n == (ssize_t)len, "late echo: got %zd of %zu (%s)", n,
	    len, n < 0 ? strerror(errno) : "EOF");
	bad = it_verify(77, 0, buf, len);
	ck_assert_msg(bad == -1, "late echo: byte %ld differs", bad);
	r = it_recv_wait(fd, reply, 1, IT_WAIT_MS);
	ck_assert_msg(r == 0, "late echo: expected EOF after the reply, got "
	    "%ld", r);
	it_close(fd);

	/* The same with a short reply: the count of bytes received. */
	fd = it_connect(ps);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_gen(78, 0, buf, sink_len);
	ck_assert(it_send_all(fd, buf, sink_len) == 0);
	ck_assert(shutdown(fd, SHUT_WR) == 0);
	memset(reply, 0, sizeof(reply));
	n = it_recv_full(fd, reply, sizeof(reply) - 1);
	snprintf(want, sizeof(want), "%zu\n", sink_len);
	ck_assert_msg(n == (ssize_t)strlen(want) && strcmp(reply, want) == 0,
	    "sink replied \"%s\" (%zd bytes then EOF), wanted \"%s\"", reply,
	    n, want);
	it_close(fd);
	it_finish();
}
END_TEST

START_TEST(half_close_target_first)
{
	struct it_targets *t = it_targets_start();
	int pb = it_free_port(), fd;
	size_t blen = strlen(IT_BANNER_TEXT), len = 200000;
	char banner[128], *buf;
	struct it_pair p;
	unsigned long long done;
	ssize_t n;
	long r;

	it_pair_start(&p, it_svc_accept("banner", pb),
	    it_svc_connect("banner", t->port[IT_BANNER]));
	fd = it_connect(pb);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	memset(banner, 0, sizeof(banner));
	n = it_recv_full(fd, banner, sizeof(banner) - 1);
	ck_assert_msg(n == (ssize_t)blen && strcmp(banner, IT_BANNER_TEXT) == 0,
	    "banner: got %zd bytes \"%s\" then EOF", n, banner);
	/* The target's side has ended; ours must still carry data. */
	buf = it_calloc(1, len);
	it_gen(99, 0, buf, len);
	ck_assert_msg(it_send_all(fd, buf, len) == 0,
	    "send after the target's EOF: %s", strerror(errno));
	ck_assert(shutdown(fd, SHUT_WR) == 0);
	r = it_recv_wait(fd, banner, 1, IT_WAIT_MS);
	ck_assert_msg(r == 0, "expected EOF again at the end, got %ld", r);
	it_close(fd);
	done = wait_count(&t->st->banner_done, 1, IT_WAIT_MS);
	ck_assert_msg(done == 1, "the target did not see the client's EOF");
	ck_assert_msg(atomic_load(&t->st->banner_len) == len,
	    "the target received %llu of %zu bytes",
	    atomic_load(&t->st->banner_len), len);
	ck_assert_msg(atomic_load(&t->st->banner_hash) ==
	    it_hash(IT_HASH_INIT, buf, len), "the target received other bytes");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 4, 5. resets */

/*
 * Each of these runs a few rounds: a reset with client data in flight has
 * left the link unable to send (a stale output signal), which only the
 * next channel shows, and only sometimes.
 */
#define RESET_ROUNDS	24

/*
 * ${RESET_ROUNDS} times: a client of ${port} (a channel that cannot work:
 * ${what}) is reset within 2 s, with data in flight or without, and then
 * a channel to ${echo} still echoes on the same link.
 */
static void
reset_rounds(int port, int echo, const char *what)
{
	int64_t ms;
	int fd, i;

	for (i = 0; i < RESET_ROUNDS; i++) {
		fd = it_connect(port);
		ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
		if (i % 4 != 3)
			ms = spray_until_reset(fd, 1000, 5000 * (i % 8),
			    it_fmt("%s, round %d", what, i));
		else
			ms = expect_reset(fd, it_fmt("%s, round %d", what, i));
		/* connect_timeout is 10 s: far longer than this. */
		ck_assert_msg(ms < 2000, "%s: reset took %jd ms", what,
		    (intmax_t)ms);
		fd = it_connect(echo);
		ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
		roundtrip(fd, 7, 100, it_fmt("echo after reset %d", i));
		it_finish_client(fd, "echo after a reset");
	}
}

/*
 * A target that refuses: each client is reset, B says why, and A, whose
 * clients they are, says that the peer refused them: the first channel in
 * a line, the rest in a summary at the end of the 10 s window (issue
 * 16.4), and in metrics.  A channel that worked has a close line with its
 * bytes each way (issue 16.6).
 */
START_TEST(target_refused_resets_client)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), pe = it_free_port(), pm = it_free_port();
	struct it_pair p;

	it_pair_start(&p,
	    svcs(it_svc_accept("nobody", port), it_svc_accept("echo", pe),
	    it_fmt("[daemon]\nmetrics = %s:%d\n", IT_HOST, pm), 0),
	    svcs(it_svc_connect("nobody", t->refused),
	    it_svc_connect("echo", t->port[IT_ECHO]), 0, 0));
	reset_rounds(port, pe, "refused target");
	it_mxd_wait_log(p.b, it_fmt("target %s:%d:", IT_HOST, t->refused),
	    IT_WAIT_MS);
	ck_assert_int_eq(it_metric_wait(pm, "mxd_channels_refused_by_peer_total"
	    "{service=\"nobody\"}", RESET_ROUNDS, IT_WAIT_MS), RESET_ROUNDS);
	ck_assert_int_eq(it_metric(pm, "mxd_channels_refused_by_peer_total"
	    "{service=\"echo\"}"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.a, "refused by the peer (reset "
	    "before a byte came back: its log says why)"), 1);
	it_mxd_wait_log(p.a, it_fmt("service nobody: %d channels refused by "
	    "the peer in the last 10 s", RESET_ROUNDS), 15000);
	it_mxd_wait_log(p.a, "service echo: channel ", IT_WAIT_MS);
	it_mxd_wait_log(p.a, ": closed after ", IT_WAIT_MS);
	ck_assert_msg(it_mxd_log_count(p.a, " 100 bytes in, 100 out: closed "
	    "both ways") == RESET_ROUNDS, "A's close lines of the echo "
	    "channels: %d", it_mxd_log_count(p.a, " 100 bytes in, 100 out: "
	    "closed both ways"));
	it_finish();
}
END_TEST

START_TEST(unknown_service_resets_client)
{
	struct it_targets *t = it_targets_start();
	int pg = it_free_port(), pe = it_free_port();
	struct it_pair p;

	it_pair_start(&p,
	    svcs(it_svc_accept("ghost", pg), it_svc_accept("echo", pe), 0, 0),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	reset_rounds(pg, pe, "unknown service");
	it_mxd_wait_log(p.b, "service \"ghost\"", IT_WAIT_MS);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ IPv6 */

/* Can this machine bind [::1]? */
static int
have_ipv6_loopback(void)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	int fd, ok;

	sin6.sin6_addr = in6addr_loopback;
	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (0);
	ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	close(fd);
	return (ok);
}

/*
 * A pair on IPv6 loopback: the link on [::1], the service accepting on
 * [::1], its target (IPv4) dialed as [::ffff:127.0.0.1].  Both ends name
 * the peer as [::1]:port in their logs.
 */
START_TEST(ipv6_link_and_service)
{
	struct it_targets *t;
	struct it_mxd *a, *b;
	int link = it_free_port(), port = it_free_port(), fd;

	if (!have_ipv6_loopback()) {
		printf("ipv6_link_and_service: SKIP: cannot bind [::1]\n");
		it_finish();
		return;
	}
	t = it_targets_start();
	b = it_mxd_start(it_write_file("b.conf", it_fmt("[link]\n"
	    "listen = [::1]:%d\n\n[echo]\nconnect = [::ffff:127.0.0.1]:%d\n",
	    link, t->port[IT_ECHO])));
	it_mxd_wait_log(b, "link: waiting for the peer on [::1]", IT_WAIT_MS);
	a = it_mxd_start(it_write_file("a.conf", it_fmt("[link]\n"
	    "connect = [::1]:%d\n\n[echo]\naccept = [::1]:%d\n", link,
	    port)));
	it_mxd_wait_log(a, it_fmt("link [::1]:%d: up (connected)", link),
	    IT_WAIT_MS);
	it_mxd_wait_log(b, "link [::1]:", IT_WAIT_MS);
	it_mxd_wait_log(a, "service echo: accepting on [::1]", IT_WAIT_MS);
	ck_assert_msg(it_connect(port) == -1 && errno == ECONNREFUSED,
	    "the service accepts on 127.0.0.1 too");
	fd = it_connect6(port);
	ck_assert_msg(fd >= 0, "connect [::1]:%d: %s", port, strerror(errno));
	roundtrip(fd, 6, 1 * MIB, "over IPv6");
	it_finish_client(fd, "IPv6 client");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 6. both ways */

START_TEST(services_both_directions)
{
	struct it_targets *t = it_targets_start();
	int pa = it_free_port(), pb = it_free_port();
	struct it_flow f[40];
	struct it_pair p;
	size_t i;

	it_pair_start(&p,
	    svcs(it_svc_accept("a2b", pa), it_svc_connect("b2a",
	    t->port[IT_ECHO]), 0, 0),
	    svcs(it_svc_connect("a2b", t->port[IT_ECHO]),
	    it_svc_accept("b2a", pb), 0, 0));
	memset(f, 0, sizeof(f));
	for (i = 0; i < 40; i++) {
		f[i].port = i % 2 ? pb : pa;
		f[i].size = (i * 37813) % (512 * 1024);
		f[i].seed = 500 + i;
	}
	run_flows(f, 40);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 7. peer killed */

START_TEST(peer_killed_resets_then_redials)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), fd[3], i;
	struct it_flow f[4];
	struct it_pair p;
	uint64_t n;
	int64_t t0, ms;
	long r;

	/* Resumption off: the session ends with its connection, as with a
	 * plain yamux peer (test_outage.c has the resuming cases). */
	it_pair_start_extra(&p, "resume_timeout = 0\n",
	    it_svc_accept("echo", port), it_svc_connect("echo",
	    t->port[IT_ECHO]));
	for (i = 0; i < 3; i++) {
		fd[i] = it_connect(port);
		ck_assert_msg(fd[i] >= 0, "connect: %s", strerror(errno));
		roundtrip(fd[i], 10 + (uint64_t)i, 4096, "before the kill");
	}

	it_mxd_mark(p.a);
	it_mxd_kill(p.b);
	t0 = it_now_ms();
	for (i = 0; i < 3; i++) {
		r = it_drain_wait(fd[i], RESET_MS, &n);
		ck_assert_msg(r != IT_TIMEOUT, "open channel %d: no reset or "
		    "EOF within %d ms of the peer's death", i, RESET_MS);
		ck_assert_msg(r <= 0 && n == 0, "open channel %d: got %ju "
		    "bytes", i, (uintmax_t)n);
		it_close(fd[i]);
	}
	ms = it_now_ms() - t0;
	ck_assert_msg(ms < RESET_MS, "open channels ended after %jd ms",
	    (intmax_t)ms);

	/* With the link down a new client is turned away at once. */
	it_mxd_wait_log(p.a, "down", IT_WAIT_MS);
	t0 = it_now_ms();
	fd[0] = it_connect(port);
	if (fd[0] >= 0) {
		char c;

		r = it_recv_wait(fd[0], &c, 1, RESET_MS);
		ck_assert_msg(r != IT_TIMEOUT && r <= 0, "client while the "
		    "link is down: not turned away within %d ms (%ld)",
		    RESET_MS, r);
		it_close(fd[0]);
	} else {
		ck_assert_msg(errno == ECONNREFUSED, "connect: %s",
		    strerror(errno));
	}
	ck_assert_msg(it_now_ms() - t0 < RESET_MS, "turned away too slowly");

	/* The peer comes back: A redials (reconnect_max 1s) on its own. */
	p.b = it_mxd_start(p.b_conf);
	it_mxd_wait_log(p.a, "up (connected)", IT_WAIT_MS);
	it_mxd_wait_log(p.b, "up (accepted)", IT_WAIT_MS);
	memset(f, 0, sizeof(f));
	for (i = 0; i < 4; i++) {
		f[i].port = port;
		f[i].size = 100000 * (size_t)i;
		f[i].seed = 40 + (uint64_t)i;
	}
	run_flows(f, 4);
	it_finish();
}
END_TEST

/* A new client of ${port} must get 1000 bytes of stream ${seed} echoed. */
static void
new_channel_echoes(int port, uint64_t seed, const char *what)
{
	int fd = it_connect(port);

	ck_assert_msg(fd >= 0, "%s: connect: %s", what, strerror(errno));
	roundtrip(fd, seed, 1000, what);
	it_finish_client(fd, what);
}

/* Lines of ${m}'s whole log that hold both ${a} and ${b}. */
static int
log_lines_with(struct it_mxd *m, const char *a, const char *b)
{
	char buf[4096];
	FILE *f;
	int n = 0;

	ck_assert_msg((f = fopen(m->log, "r")) != NULL, "%s: %s", m->log,
	    strerror(errno));
	while (fgets(buf, sizeof(buf), f) != NULL)
		n += strstr(buf, a) != NULL && strstr(buf, b) != NULL;
	fclose(f);
	return (n);
}

/* Write ${name}: side A of a pair dialing ${link} with the link's defaults
 * and ${extra}, its service echo accepting on ${port}. */
static const char *
default_a_conf(const char *name, int link, int port, const char *extra)
{

	return (it_write_file(name, it_fmt("[link]\nconnect = %s:%d\n%s%s",
	    IT_HOST, link, extra, it_svc_accept("echo", port))));
}

/*
 * Recovery in seconds with the defaults (issue 16.3).  B is down: A's dials
 * are refused (B's host answers), so A keeps them reconnect_min apart, says
 * once when the next one goes and counts the rest at debug, and is up again
 * soon after B listens: within 2 s (the time is what is tested here).
 * Then A waits an hour between attempts (reconnect_min = reconnect_max =
 * 1h) and B comes back: a reload of A dials at once.
 */
START_TEST(recovery_after_peer_restart)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), fd, n;
	const char *b_conf;
	struct it_mxd *a, *b;
	int64_t t0, ms, deadline;

	b_conf = it_write_file("b.conf", it_fmt("[link]\nlisten = %s:%d\n%s",
	    IT_HOST, link, it_svc_connect("echo", t->port[IT_ECHO])));
	b = it_mxd_start(b_conf);
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	a = it_mxd_start(default_a_conf("a.conf", link, port, ""));
	it_mxd_wait_log(a, "up (connected", IT_WAIT_MS);
	new_channel_echoes(port, 1, "before B stops");

	it_mxd_mark(a);
	it_mxd_kill(b);
	it_mxd_wait_log(a, it_fmt("link: cannot connect to %s:%d: Connection "
	    "refused; next attempt in 0.", IT_HOST, link), IT_WAIT_MS);
	/* Six refused attempts: a second or so at reconnect_min (250ms),
	 * and one line for the operator. */
	deadline = it_now_ms() + IT_WAIT_MS;
	while ((n = it_mxd_log_count(a, "Connection refused; next attempt "
	    "in 0.")) < 6 && it_now_ms() < deadline)
		usleep(20000);
	ck_assert_msg(n >= 6, "A made %d attempts in %d ms", n, IT_WAIT_MS);
	ck_assert_int_eq(log_lines_with(a, " mxd warn: ", "; next attempt in "),
	    1);
	it_mxd_mark(a);
	b = it_mxd_start(b_conf);
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	t0 = it_now_ms();
	it_mxd_wait_log(a, "up (connected", IT_WAIT_MS);
	ms = it_now_ms() - t0;
	printf("recovery_after_peer_restart: up %jd ms after B listened "
	    "again\n", (intmax_t)ms);
	ck_assert_msg(ms <= 2000, "A was up %jd ms after B listened again",
	    (intmax_t)ms);
	new_channel_echoes(port, 2, "after B is back");

	/* An hour between attempts; a reload dials now. */
	it_mxd_mark(a);
	default_a_conf("a.conf", link, port, "reconnect_min = 1h\n"
	    "reconnect_max = 1h\n");
	it_mxd_signal(a, SIGHUP);
	it_mxd_wait_log(a, "reloaded", IT_WAIT_MS);
	it_mxd_kill(b);
	it_mxd_wait_log(a, "; next attempt in ", IT_WAIT_MS);
	b = it_mxd_start(b_conf);
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	it_mxd_mark(a);
	it_mxd_signal(a, SIGHUP);
	it_mxd_wait_log(a, it_fmt("link: reloaded while down: connecting to "
	    "%s:%d now", IT_HOST, link), IT_WAIT_MS);
	it_mxd_wait_log(a, "up (connected", IT_WAIT_MS);
	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_close(fd);
	new_channel_echoes(port, 3, "after the reload");
	it_finish();
}
END_TEST

/* A client of ${port} that sends "x": 1 if it came back within ${ms}. */
static int
echoes(int port, int ms)
{
	int fd = it_connect(port);
	long r = 0;
	char c;

	if (fd < 0)
		return (0);
	if (send(fd, "x", 1, MSG_NOSIGNAL) == 1)
		r = it_recv_wait(fd, &c, 1, ms);
	it_close(fd);
	return (r == 1 && c == 'x');
}

/*
 * Two dialers wired to one listen port (two mxd@NAME pairs sharing a port
 * by mistake): the listener keeps the peer it has while that link answers,
 * refuses the second with one clear line each time, and the first keeps
 * working; once the first stops, the second gets the link.
 */
START_TEST(two_dialers_back_off)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), port2 = it_free_port();
	struct it_mxd *a2;
	struct it_pair p;
	int64_t deadline;

	it_pair_start(&p, it_svc_accept("echo", port),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	it_mxd_mark(p.b);
	it_pair_write_a(&p, it_svc_accept("echo", port2));
	a2 = it_mxd_start(p.a_conf);
	it_mxd_wait_log(p.b, "link: second peer 127.0.0.1:", IT_WAIT_MS);
	it_mxd_wait_log(p.b, " refused: this link is paired with 127.0.0.1:",
	    IT_WAIT_MS);
	new_channel_echoes(port, 1, "the first dialer, the second refused");
	/* The second comes again (backing off) and is refused again. */
	it_mxd_mark(p.b);
	it_mxd_wait_log(p.b, "link: second peer", IT_WAIT_MS);
	new_channel_echoes(port, 2, "the first dialer still");
	ck_assert_int_eq(it_mxd_log_count(p.b, "replaced by a new link"), 0);
	it_mxd_stop(p.a, IT_WAIT_MS);
	deadline = it_now_ms() + IT_WAIT_MS;
	while (!echoes(port2, 1000) && it_now_ms() < deadline)
		continue;
	ck_assert_msg(echoes(port2, 1000), "the second dialer has no working "
	    "link once the first stopped");
	it_mxd_stop(a2, IT_WAIT_MS);
	it_finish();
}
END_TEST

/*
 * Over TLS the listener tells dialers apart by their keys: a second dialer
 * with another certificate is refused at once, whether the first answers
 * or not; the first's own key coming back (a restart whose old connection
 * the listener still thinks alive) takes the link over.
 */
START_TEST(two_dialers_tls_identity)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), pa = it_free_port(), pc = it_free_port();
	struct it_mxd *a, *b, *c;
	const char *dial = it_fmt("[link]\nconnect = %s:%d\nreconnect_min = "
	    "100ms\nreconnect_max = 1s\n", IT_HOST, link);

	it_make_certs();
	b = it_mxd_start(it_write_file("b.conf", it_fmt("[link]\nlisten = "
	    "%s:%d\n%s\n%s", IT_HOST, link, it_tls_link("b"),
	    it_svc_connect("echo", t->port[IT_ECHO]))));
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	a = it_mxd_start(it_write_file("a.conf", it_fmt("%s%s\n%s", dial,
	    it_tls_link("a"), it_svc_accept("echo", pa))));
	it_mxd_wait_log(b, "up (accepted", IT_WAIT_MS);
	it_mxd_mark(b);
	c = it_mxd_start(it_write_file("c.conf", it_fmt("%s%s\n%s", dial,
	    it_tls_link("c"), it_svc_accept("echo", pc))));
	it_mxd_wait_log(b, "link: second peer", IT_WAIT_MS);
	new_channel_echoes(pa, 3, "the first dialer, the second refused");
	it_mxd_stop(c, IT_WAIT_MS);
	/* A again, as if restarted: its key, so it replaces the link. */
	it_mxd_mark(b);
	it_mxd_kill(a);
	it_mxd_restart(a);
	it_mxd_wait_log(a, "up (connected", IT_WAIT_MS);
	new_channel_echoes(pa, 4, "the restarted first dialer");
	ck_assert_msg(!it_mxd_log_has(b, "link: second peer"), "the "
	    "restarted first dialer was refused");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 8. reload */

START_TEST(sighup_adds_and_removes_services)
{
	struct it_targets *t = it_targets_start();
	int pk = it_free_port(), pg = it_free_port(), pn = it_free_port();
	int keep, gone, fresh, e;
	struct it_pair p;
	int echo = t->port[IT_ECHO];

	it_pair_start(&p,
	    svcs(it_svc_accept("keep", pk), it_svc_accept("gone", pg), 0, 0),
	    svcs(it_svc_connect("keep", echo), it_svc_connect("gone", echo),
	    it_svc_connect("svc2", echo), 0));
	keep = it_connect(pk);
	ck_assert_msg(keep >= 0, "connect keep: %s", strerror(errno));
	roundtrip(keep, 1, 10000, "keep before the reload");
	gone = it_connect(pg);
	ck_assert_msg(gone >= 0, "connect gone: %s", strerror(errno));
	roundtrip(gone, 2, 10000, "gone before the reload");
	/* Nothing listens on svc2's address yet. */
	fresh = it_connect(pn);
	e = errno;
	ck_assert_msg(fresh < 0 && e == ECONNREFUSED,
	    "svc2 accepted before it was configured");

	it_pair_write_a(&p, svcs(it_svc_accept("keep", pk),
	    it_svc_accept("svc2", pn), 0, 0));
	it_mxd_mark(p.a);
	it_mxd_signal(p.a, SIGHUP);
	it_mxd_wait_log(p.a, "reloaded", IT_WAIT_MS);

	/* Added: works. */
	fresh = it_connect(pn);
	ck_assert_msg(fresh >= 0, "connect svc2 after the reload: %s",
	    strerror(errno));
	roundtrip(fresh, 3, 10000, "svc2 after the reload");
	it_finish_client(fresh, "svc2");
	/* Removed: refused. */
	fresh = it_connect(pg);
	e = errno;
	ck_assert_msg(fresh < 0 && e == ECONNREFUSED, "removed service still "
	    "accepts (%s)", fresh < 0 ? strerror(e) : "connected");
	/* The open channel of the unchanged service goes on. */
	roundtrip(keep, 4, 10000, "keep after the reload");
	it_finish_client(keep, "keep");
	/* So does the removed service's open channel ("open channels
	 * finish", service.h). */
	roundtrip(gone, 5, 10000, "removed service's open channel");
	it_finish_client(gone, "gone");
	it_finish();
}
END_TEST

/*
 * A reload that renames a service keeps its accept address: the address
 * must go on accepting, now for the new name.
 */
START_TEST(sighup_renames_service_same_address)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), fd, e;
	int echo = t->port[IT_ECHO];
	struct it_pair p;

	it_pair_start(&p, it_svc_accept("old", port),
	    svcs(it_svc_connect("old", echo), it_svc_connect("new", echo), 0,
	    0));
	new_channel_echoes(port, 1, "old");

	it_pair_write_a(&p, it_svc_accept("new", port));
	it_mxd_mark(p.a);
	it_mxd_mark(p.b);
	it_mxd_signal(p.a, SIGHUP);
	it_mxd_wait_log(p.a, "reloaded", IT_WAIT_MS);
	fd = it_connect(port);
	e = errno;
	if (fd < 0)
		it_mxd_show_log(p.a);
	ck_assert_msg(fd >= 0, "after renaming [old] to [new] on the same "
	    "address, connect: %s", strerror(e));
	roundtrip(fd, 2, 1000, "new");
	it_finish_client(fd, "new");
	it_mxd_wait_log(p.b, "service new: channel", IT_WAIT_MS);
	it_finish();
}
END_TEST

/*
 * A reload moves the link.  A's new connect address is wrong at first: the
 * link stays, A keeps trying.  Then a B2 listens there: A's new link
 * replaces the old once it answers, A's open channel finishes on the old
 * link, new channels take the new one.  Then B2's listen address moves: its
 * link stays, the old port refuses.  A listen address in use fails the
 * reload and changes nothing.
 */
START_TEST(sighup_moves_link)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), link1, link2, fd, fd2, e;
	int64_t deadline;
	const char *a_svc = it_svc_accept("echo", port);
	const char *b_svc = it_svc_connect("echo", t->port[IT_ECHO]);
	struct it_mxd *b1, *b2;
	struct it_pair p;

	it_pair_start(&p, a_svc, b_svc);
	b1 = p.b;
	link1 = p.link_port;
	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	roundtrip(fd, 1, 10000, "before the move");

	/* 1. Nobody listens at the new address yet. */
	link2 = p.link_port = it_free_port();
	it_pair_write_a(&p, a_svc);
	it_mxd_mark(p.a);
	it_mxd_signal(p.a, SIGHUP);
	it_mxd_wait_log(p.a, "reloaded", IT_WAIT_MS);
	it_mxd_wait_log(p.a, it_fmt("cannot connect to %s:%d", IT_HOST,
	    link2), IT_WAIT_MS);
	roundtrip(fd, 2, 10000, "the old link, the new address refusing");
	new_channel_echoes(port, 3, "a new channel, the new address refusing");

	/* 2. B2 there: A moves to it. */
	it_pair_write_b(&p, b_svc);
	it_mxd_mark(b1);
	b2 = it_mxd_start(p.b_conf);
	it_mxd_wait_log(b2, "up (accepted)", IT_WAIT_MS);
	it_mxd_wait_log(p.a, it_fmt("link %s:%d: replaced by a new link to "
	    "%s:%d; its 1 open channels finish on it", IT_HOST, link1, IT_HOST,
	    link2), IT_WAIT_MS);
	it_mxd_wait_log(b1, "(Go Away)", IT_WAIT_MS);
	roundtrip(fd, 4, 10000, "the old link's channel, after the move");
	it_mxd_mark(b2);
	new_channel_echoes(port, 5, "a new channel, after the move");
	it_mxd_wait_log(b2, "service echo: channel", IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(b1, "service echo: channel"), "a new "
	    "channel went to the old link");
	it_finish_client(fd, "the old link's channel");
	/* Its last channel done, the old link closes: from our side or
	 * from B1's, whichever looks first. */
	deadline = it_now_ms() + IT_WAIT_MS;
	while (!it_mxd_log_has(p.a, it_fmt("link %s:%d: finished draining, "
	    "closed", IT_HOST, link1)) && !it_mxd_log_has(p.a, it_fmt("link "
	    "%s:%d: closed: peer closed the link", IT_HOST, link1)) &&
	    it_now_ms() < deadline)
		usleep(10000);
	ck_assert_msg(it_now_ms() < deadline, "the old link was not closed "
	    "once its channel had ended");

	/* 3. B2 listens elsewhere: its link stays. */
	p.link_port = it_free_port();
	it_pair_write_b(&p, b_svc);
	it_mxd_mark(b2);
	it_mxd_signal(b2, SIGHUP);
	it_mxd_wait_log(b2, "reloaded", IT_WAIT_MS);
	it_mxd_wait_log(b2, it_fmt("waiting for the peer on %s:%d", IT_HOST,
	    p.link_port), IT_WAIT_MS);
	fd2 = it_connect(link2);
	e = errno;
	ck_assert_msg(fd2 < 0 && e == ECONNREFUSED, "the old listen address "
	    "still accepts (%s)", fd2 < 0 ? strerror(e) : "connected");
	new_channel_echoes(port, 6, "a new channel, after B2 moved");

	/* 4. A listen address in use: refused, nothing changes. */
	link2 = p.link_port;
	p.link_port = port;
	it_pair_write_b(&p, b_svc);
	it_mxd_mark(b2);
	it_mxd_signal(b2, SIGHUP);
	it_mxd_wait_log(b2, "reload failed, keeping the running configuration",
	    IT_WAIT_MS);
	fd2 = it_connect(link2);
	ck_assert_msg(fd2 >= 0, "B2 stopped listening after a failed reload: "
	    "%s", strerror(errno));
	it_close(fd2);
	ck_assert_msg(!it_mxd_log_has(p.a, ": down: ") &&
	    !it_mxd_log_has(b2, ": down: "), "the link went down");
	new_channel_echoes(port, 7, "a new channel, after the failed reload");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 9. drain */

/*
 * A side stopped with no channel open still says Go Away before it closes
 * the link: its peer logs that, not a link gone down.  Both ways.
 */
START_TEST(sigterm_says_go_away)
{
	struct it_targets *t = it_targets_start();
	struct it_pair p;

	it_pair_start(&p, it_svc_accept("echo", it_free_port()),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	it_mxd_mark(p.a);
	it_mxd_stop(p.b, IT_WAIT_MS);
	it_mxd_wait_log(p.a, "the peer is shutting down (Go Away)", IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(p.a, ": down: "), "A took B's exit for "
	    "a lost link");
	p.b = it_mxd_start(p.b_conf);
	it_mxd_wait_log(p.b, "up (accepted)", IT_WAIT_MS);
	it_mxd_mark(p.b);
	it_mxd_stop(p.a, IT_WAIT_MS);
	it_mxd_wait_log(p.b, "the peer is shutting down (Go Away)", IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(p.b, ": down: "), "B took A's exit for "
	    "a lost link");
	it_finish();
}
END_TEST

START_TEST(sigterm_lets_transfer_finish)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), fd, fd2, e, st;
	uint64_t size = 32 * (uint64_t)MIB, got = 0;
	const char *req = it_fmt("%ju 4242\n", (uintmax_t)size);
	static char buf[64 * 1024];
	struct it_pair p;
	long r, bad = -1;

	it_pair_start(&p, it_svc_accept("blast", port),
	    it_svc_connect("blast", t->port[IT_BLAST]));
	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	ck_assert(it_send_all(fd, req, strlen(req)) == 0);

	for (;;) {
		if (got == MIB) {
			/* Under way: stop A, which carries the transfer. */
			it_mxd_mark(p.a);
			it_mxd_signal(p.a, SIGTERM);
			it_mxd_wait_log(p.a, "draining", IT_WAIT_MS);
			fd2 = it_connect(port);
			e = errno;
			ck_assert_msg(fd2 < 0 && e == ECONNREFUSED,
			    "a new client was accepted after SIGTERM (%s)",
			    fd2 < 0 ? strerror(e) : "connected");
		}
		r = it_recv_wait(fd, buf, got < MIB && MIB - got < sizeof(buf) ?
		    MIB - got : sizeof(buf), IT_WAIT_MS);
		if (r <= 0)
			break;
		if (bad < 0 && (bad = it_verify(4242, got, buf, (size_t)r)) >=
		    0)
			bad += (long)got;
		got += (uint64_t)r;
		if (got > MIB)
			usleep(1000);	/* a slow-ish reader */
	}
	ck_assert_msg(r == 0, "transfer ended with %s after %ju of %ju bytes",
	    r == IT_TIMEOUT ? "a stall" : strerror((int)-r), (uintmax_t)got,
	    (uintmax_t)size);
	ck_assert_msg(got == size, "got %ju of %ju bytes", (uintmax_t)got,
	    (uintmax_t)size);
	ck_assert_msg(bad == -1, "byte %ld differs", bad);
	it_close(fd);

	st = it_mxd_wait_exit(p.a, IT_WAIT_MS);
	ck_assert_msg(st != -1, "A did not exit after the drain");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "A ended with status %#x", st);
	ck_assert_msg(it_mxd_log_has(p.a, "drained: exiting"),
	    "A did not log its drain");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 10. config */

static const struct bad_conf {
	const char	*text;
	int		line;
	const char	*where;		/* "[section] key" or "[section]" */
	const char	*what;
} bad_confs[] = {
	{ "[link]\nconnect = 127.0.0.1:7000\nbogus = 1\n",
	    3, "[link] bogus", "unknown key" },
	{ "[link]\nconnect = 127.0.0.1:7000\nkeepalive = 10 parsecs\n",
	    3, "[link] keepalive", "bad duration" },
	{ "[link]\nconnect = 127.0.0.1:7000\n\n[web]\naccept = 127.0.0.1\n",
	    5, "[web] accept", "bad address" },
	{ "[daemon]\nlog_level = info\n\n[link]\nkeepalive = 5s\n\n"
	    "[web]\naccept = 127.0.0.1:8080\n",
	    4, "[link]", "needs connect or listen" },
	{ "[link]\nlisten = 127.0.0.1:7000\n\n[web]\nconnect = 10.0.0.1:80\n"
	    "connect = 10.0.0.2:80\n",
	    6, "[web] connect", "duplicate key" },
	{ "[link]\nconnect = 127.0.0.1:7000\n\n[web server]\n"
	    "accept = 127.0.0.1:8080\n",
	    4, "[web server]", "bad service name" },
	{ "[link]\nconnect = 127.0.0.1:7000\n\n[web]\n; nothing\n\n"
	    "[db]\nconnect = 127.0.0.1:5432\n",
	    4, "[web]", "needs accept or connect" },
};

START_TEST(config_errors)
{
	const struct bad_conf *b = &bad_confs[_i];
	const char *path = it_write_file("bad.conf", b->text);
	const char *args[] = { "-t", "-c", path, NULL };
	char *out, *err, *want;
	int st;

	st = it_run_mxd(args, &out, &err, IT_WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1,
	    "case %d: status %#x, wanted exit 1 (stderr: %s)", _i, st, err);
	want = it_fmt("mxd: %s:%d: %s: ", path, b->line, b->where);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	    "case %d: stderr \"%s\" does not start \"%s\"", _i, err, want);
	ck_assert_msg(strstr(err, b->what) != NULL,
	    "case %d: stderr \"%s\" does not say \"%s\"", _i, err, b->what);
	ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1,
	    "case %d: stderr is not one line: \"%s\"", _i, err);
	ck_assert_msg(strstr(err, "Sanitizer") == NULL &&
	    strstr(err, "runtime error:") == NULL, "sanitizer: %s", err);
	it_finish();
}
END_TEST

START_TEST(config_good)
{
	const char *path = it_write_file("good.conf",
	    "; every key\n[daemon]\nlog_level = warn\n"
	    "metrics = 127.0.0.1:9108\n\n"
	    "[link]\nconnect = 192.0.2.1:7000\nkeepalive = 10s\n"
	    "timeout = 30s\nreconnect_min = 500ms\nreconnect_max = 1m\n"
	    "connect_timeout = 5s\nwindow = 1m\nwindow_max = 4m\n"
	    "max_channels = 1000\n"
	    "drain_timeout = 0s\n\n"
	    "[postgres]\naccept = 127.0.0.1:5432\n\n"
	    "[web.v2_x-y]\nconnect = [::1]:8080\naccept = 127.0.0.1:8080\n");
	const char *args[] = { "-t", "-c", path, NULL };
	char *out, *err;
	int st;

	st = it_run_mxd(args, &out, &err, IT_WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "status %#x (stderr: %s)", st, err);
	ck_assert_msg(strstr(out, "configuration OK") != NULL, "stdout: %s",
	    out);
	ck_assert_msg(err[0] == '\0', "stderr: %s", err);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 11. slow reader */

START_TEST(slow_reader_bounded_memory)
{
	struct it_targets *t = it_targets_start();
	int pb = it_free_port(), pe = it_free_port(), fd, fe, trips = 0;
	uint64_t size = 1024 * (uint64_t)MIB, got = 0;
	uint64_t sent, limit_kb = 64 * 1024;
	const char *req = it_fmt("%ju 1111\n", (uintmax_t)size);
	long rss_a = 0, rss_b = 0, v, r, bad = -1;
	char *buf = it_calloc(1, 1024 * 1024);
	struct it_pair p;
	int64_t t0, end;

	it_pair_start(&p,
	    svcs(it_svc_accept("blast", pb), it_svc_accept("echo", pe), 0, 0),
	    svcs(it_svc_connect("blast", t->port[IT_BLAST]),
	    it_svc_connect("echo", t->port[IT_ECHO]), 0, 0));
	fd = it_connect(pb);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	fe = it_connect(pe);
	ck_assert_msg(fe >= 0, "connect: %s", strerror(errno));
	ck_assert(it_send_all(fd, req, strlen(req)) == 0);
	ck_assert_msg(wait_count(&t->st->blast_sent, 4 * MIB, IT_WAIT_MS) >=
	    4 * MIB, "the blast did not start");

	/* The client reads nothing for 2 s: both mxd must hold little. */
	t0 = it_now_ms();
	end = t0 + 2000;
	while (it_now_ms() < end) {
		if ((v = it_rss_kb(p.a->pid)) > rss_a)
			rss_a = v;
		if ((v = it_rss_kb(p.b->pid)) > rss_b)
			rss_b = v;
		roundtrip(fe, 300 + (uint64_t)trips, 1000 + 97 * (size_t)trips,
		    "echo beside the stalled channel");
		trips++;
		usleep(20000);
	}
	sent = atomic_load(&t->st->blast_sent);
	printf("slow_reader_bounded_memory: peak VmRSS A %ld KiB, B %ld KiB; "
	    "%d echo round trips; target blocked after %ju MiB of %ju\n",
	    rss_a, rss_b, trips, (uintmax_t)(sent / MIB),
	    (uintmax_t)(size / MIB));
	ck_assert_msg(rss_a > 0 && rss_b > 0, "no RSS figures");
	ck_assert_msg((uint64_t)rss_a < limit_kb && (uint64_t)rss_b < limit_kb,
	    "RSS too large: A %ld KiB, B %ld KiB (limit %ju KiB)", rss_a,
	    rss_b, (uintmax_t)limit_kb);
	ck_assert_msg(atomic_load(&t->st->blast_done) == 0 && sent < size / 4,
	    "the target was not held back: %ju bytes sent", (uintmax_t)sent);
	ck_assert_msg(trips >= 10, "only %d echo round trips in 2 s", trips);

	/* Now read it all. */
	for (;;) {
		r = it_recv_wait(fd, buf, 1024 * 1024, IT_WAIT_MS);
		if (r <= 0)
			break;
		if (bad < 0 && (bad = it_verify(1111, got, buf, (size_t)r)) >=
		    0)
			bad += (long)got;
		got += (uint64_t)r;
	}
	ck_assert_msg(r == 0, "transfer ended with %s after %ju of %ju bytes",
	    r == IT_TIMEOUT ? "a stall" : strerror((int)-r), (uintmax_t)got,
	    (uintmax_t)size);
	ck_assert_msg(got == size, "got %ju of %ju bytes", (uintmax_t)got,
	    (uintmax_t)size);
	ck_assert_msg(bad == -1, "byte %ld differs", bad);
	it_close(fd);
	roundtrip(fe, 9999, 50000, "echo after the transfer");
	it_finish_client(fe, "echo");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ 12. hellos */

START_TEST(ten_thousand_hellos)
{
	struct it_targets *t = it_targets_start();
	int port = it_free_port();
	const unsigned total = 10000, window = 500;
	struct it_pair p;
	struct pollfd *pfd;
	unsigned started = 0, failed = 0, open = 0, i, j;
	unsigned long long delivered;
	struct sockaddr_in sin;
	int64_t t0, deadline, ms;
	socklen_t sl;
	int fd, e;

	it_pair_start(&p, it_svc_accept("hello", port),
	    it_svc_connect("hello", t->port[IT_HELLO]));
	pfd = it_calloc(window, sizeof(*pfd));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	sin.sin_port = htons((uint16_t)port);

	t0 = it_now_ms();
	deadline = t0 + 90000;
	for (;;) {
		delivered = atomic_load(&t->st->hello) +
		    atomic_load(&t->st->hello_bad);
		if (delivered + failed >= total || it_now_ms() > deadline)
			break;
		/* Start channels while fewer than window are in flight
		 * (started, not yet seen by the target). */
		while (started < total && open < window &&
		    started - failed - delivered < window) {
			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, 0);
			ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
			it_track(fd);
			started++;
			if (connect(fd, (struct sockaddr *)&sin,
			    sizeof(sin)) == -1 && errno != EINPROGRESS) {
				it_close(fd);
				failed++;
				continue;
			}
			pfd[open].fd = fd;
			pfd[open].events = POLLOUT;
			pfd[open].revents = 0;
			open++;
		}
		if (open == 0) {
			usleep(1000);
			continue;
		}
		if (poll(pfd, open, 5) < 0)
			continue;
		for (i = j = 0; i < open; i++) {
			if (pfd[i].revents == 0) {
				pfd[j++] = pfd[i];
				continue;
			}
			sl = sizeof(e);
			if (getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &e,
			    &sl) == -1 || e != 0 ||
			    send(pfd[i].fd, "hello", 5, MSG_NOSIGNAL) != 5)
				failed++;
			it_close(pfd[i].fd);
		}
		open = j;
	}
	ms = it_now_ms() - t0;
	for (i = 0; i < open; i++)
		it_close(pfd[i].fd);
	delivered = atomic_load(&t->st->hello);
	printf("ten_thousand_hellos: %llu of %u channels delivered \"hello\" "
	    "in %jd ms (%u in flight at most)%s\n", delivered, total,
	    (intmax_t)ms, window, it_san() ? " [sanitizers]" : "");
	ck_assert_msg(failed == 0, "%u clients failed to connect or send",
	    failed);
	ck_assert_msg(atomic_load(&t->st->hello_bad) == 0, "%llu channels "
	    "delivered something other than \"hello\"",
	    atomic_load(&t->st->hello_bad));
	ck_assert_msg(delivered == total, "%llu of %u delivered", delivered,
	    total);
	it_finish();
}
END_TEST

/* ------------------------------------------------- 13. operations */

/*
 * A reload with a bad file leaves the running configuration in force, says
 * why, and touches no channel.
 */
START_TEST(sighup_bad_file_keeps_running)
{
	struct it_targets *t = it_targets_start();
	int pk = it_free_port(), fd;
	struct it_pair p;

	it_pair_start(&p, svcs(it_svc_accept("keep", pk), 0, 0, 0),
	    svcs(it_svc_connect("keep", t->port[IT_ECHO]), 0, 0, 0));
	fd = it_connect(pk);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	roundtrip(fd, 1, 10000, "before the reload");
	it_write_file("a.conf", "[link]\nconnect = 127.0.0.1:1\n"
	    "keepalive = 30 seconds\n");
	it_mxd_mark(p.a);
	it_mxd_signal(p.a, SIGHUP);
	it_mxd_wait_log(p.a, "reload failed, keeping the running "
	    "configuration", IT_WAIT_MS);
	ck_assert(it_mxd_log_has(p.a, "a.conf:3: [link] keepalive"));
	roundtrip(fd, 2, 10000, "the open channel after the bad reload");
	it_finish_client(fd, "keep");
	fd = it_connect(pk);
	ck_assert_msg(fd >= 0, "the service stopped accepting: %s",
	    strerror(errno));
	roundtrip(fd, 3, 10000, "a new channel after the bad reload");
	it_finish_client(fd, "keep (new)");
	it_finish();
}
END_TEST

/*
 * The metrics endpoint: Prometheus text with the link and per-service
 * series, counting what went through; /healthz follows the link.
 */
START_TEST(metrics_and_healthz)
{
	struct it_targets *t = it_targets_start();
	int pe = it_free_port(), pm = it_free_port(), fd, i;
	struct it_pair p;
	char *a_svcs, *body;

	a_svcs = svcs(it_svc_accept("echo", pe),
	    it_fmt("[daemon]\nmetrics = 127.0.0.1:%d\n", pm), 0, 0);
	it_pair_start_extra(&p, "resume_timeout = 1s\n", a_svcs,
	    svcs(it_svc_connect("echo", t->port[IT_ECHO]), 0, 0, 0));
	for (i = 0; i < 3; i++) {
		fd = it_connect(pe);
		ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
		roundtrip(fd, (uint64_t)i, 1000, "echo");
		it_finish_client(fd, "echo");
	}
	body = it_http_get(pm, "/metrics");
	ck_assert_msg(strstr(body, "HTTP/1.0 200") || strstr(body,
	    "HTTP/1.1 200"), "/metrics: %s", body);
	ck_assert_msg(strstr(body, "\nmxd_link_up 1\n") != NULL, "%s", body);
	ck_assert_msg(strstr(body, "# TYPE mxd_channels_opened_total counter")
	    != NULL, "%s", body);
	ck_assert_msg(strstr(body, "mxd_channels_opened_total{service=\"echo\"}"
	    " 3\n") != NULL, "%s", body);
	ck_assert_msg(strstr(body, "mxd_sent_bytes_total{service=\"echo\"}"
	    " 3000\n") != NULL, "%s", body);
	ck_assert_msg(strstr(body, "mxd_received_bytes_total{service=\"echo\"}"
	    " 3000\n") != NULL, "%s", body);
	body = it_http_get(pm, "/healthz");
	ck_assert_msg(strstr(body, " 200 ") != NULL, "/healthz up: %s", body);

	/* The peer gone: resuming, /healthz stays 200 (the channels are
	 * held); once resume_timeout passed, the link is down, and /healthz
	 * says so. */
	it_mxd_mark(p.a);
	it_mxd_kill(p.b);
	it_mxd_wait_log(p.a, ": lost: ", IT_WAIT_MS);
	body = it_http_get(pm, "/healthz");
	ck_assert_msg(strstr(body, " 200 ") != NULL, "/healthz while "
	    "resuming: %s", body);
	it_mxd_wait_log(p.a, "not resumed within resume_timeout", IT_WAIT_MS);
	body = it_http_get(pm, "/healthz");
	ck_assert_msg(strstr(body, " 503 ") != NULL, "/healthz down: %s",
	    body);
	body = it_http_get(pm, "/metrics");
	ck_assert_msg(strstr(body, "\nmxd_link_up 0\n") != NULL, "%s", body);
	it_finish();
}
END_TEST

static Suite *
daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *t = tcase_create("pair");
	TCase *c = tcase_create("config");

	tcase_set_timeout(t, 240);
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	IT_ADD(t, echo_small_and_large);
	IT_ADD(t, thousand_concurrent_channels);
	IT_ADD(t, half_close_client_first);
	IT_ADD(t, half_close_target_first);
	IT_ADD(t, target_refused_resets_client);
	IT_ADD(t, unknown_service_resets_client);
	IT_ADD(t, services_both_directions);
	IT_ADD(t, ipv6_link_and_service);
	IT_ADD(t, peer_killed_resets_then_redials);
	IT_ADD(t, recovery_after_peer_restart);
	IT_ADD(t, two_dialers_back_off);
	IT_ADD(t, two_dialers_tls_identity);
	IT_ADD(t, sighup_adds_and_removes_services);
	IT_ADD(t, sighup_renames_service_same_address);
	IT_ADD(t, sighup_moves_link);
	IT_ADD(t, sigterm_says_go_away);
	IT_ADD(t, sigterm_lets_transfer_finish);
	IT_ADD(t, slow_reader_bounded_memory);
	IT_ADD(t, ten_thousand_hellos);
	IT_ADD(t, sighup_bad_file_keeps_running);
	IT_ADD(t, metrics_and_healthz);
	suite_add_tcase(s, t);

	tcase_set_timeout(c, 30);
	tcase_add_checked_fixture(c, it_init, it_cleanup);
	IT_ADD_LOOP(c, config_errors,
	    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	IT_ADD(c, config_good);
	suite_add_tcase(s, c);
	return (s);
}

int
main(void)
{

	return (it_main(daemon_suite()));
}
