/*
 * Soak: a pair of real mxd ($MXD_BIN, see itest.h) carrying 10,000
 * concurrent channels of random traffic for a while, every byte verified.
 *
 * The driver (this process, one epoll loop) keeps MXD_SOAK_CONNS (10,000)
 * clients of A's echo service open at all times.  Each sends bursts of 1 to
 * 8 KiB of its own pseudo-random stream at random intervals (0.5 to 3.5 s;
 * four times slower under sanitizers), reads the echo back and compares it
 * byte for byte; once it has sent its lifetime's worth (16 to 160 KiB) and
 * got all of it back, it half-closes, expects EOF, and a new client takes
 * its place.  A reset, a wrong byte, an early EOF, or a channel with data
 * outstanding and no progress for 30 s fails the test.
 *
 * After MXD_SOAK_SECS (30; `make soak` runs 600) new bursts stop, every
 * client finishes, and the test checks: nothing lost, the link never went
 * down, both mxd are back to the descriptors they had before, and VmRSS
 * was flat after warm-up (the first third of the run, at least 10 s): the
 * largest sample after it is within 10 % + 4 MiB of the largest before
 * (not checked under sanitizers, whose allocator keeps freed memory).
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define KIB		1024
#define BURST_MAX	(8 * KIB)
#define LIFE_MIN	(16 * KIB)
#define LIFE_MAX	(160 * KIB)
#define OUTSTANDING	(64 * KIB)	/* no new burst beyond this unechoed */
#define STALL_MS	30000
#define DRAIN_MS	60000
#define CONNECTING_MAX	500

enum cstate { C_FREE, C_CONNECTING, C_OPEN, C_SHUT };

struct sconn {
	int		fd;
	enum cstate	st;
	uint64_t	seed;
	uint64_t	tx, rx, life;
	uint32_t	burst;		/* bytes of the current burst to send */
	int64_t		next_ms;	/* next burst */
	int64_t		progress_ms;	/* last byte moved */
	uint32_t	ev;		/* epoll interest */
};

static struct {
	struct sconn	*c;
	size_t		n;
	int		ep;
	struct sockaddr_in sin;
	uint64_t	rnd;
	uint64_t	next_seed;
	int		slow;		/* interval multiplier */
	int		stopping;
	/* Counts. */
	uint64_t	started, finished, bytes, bursts;
	size_t		open, connecting;
	char		err[512];
} S;

static uint64_t
rnd(void)
{

	S.rnd ^= S.rnd << 13;
	S.rnd ^= S.rnd >> 7;
	S.rnd ^= S.rnd << 17;
	return (S.rnd);
}

/* Uniform in [lo, hi]. */
static uint64_t
between(uint64_t lo, uint64_t hi)
{

	return (lo + rnd() % (hi - lo + 1));
}

static void
sfail(struct sconn *c, const char *what, int e)
{

	if (S.err[0] == '\0')
		snprintf(S.err, sizeof(S.err), "client seed %ju: %s%s%s (sent "
		    "%ju, verified %ju of %ju)", (uintmax_t)c->seed, what,
		    e ? ": " : "", e ? strerror(e) : "", (uintmax_t)c->tx,
		    (uintmax_t)c->rx, (uintmax_t)c->life);
}

static void
set_events(struct sconn *c, uint32_t ev)
{
	struct epoll_event e;

	if (ev == c->ev)
		return;
	e.events = ev;
	e.data.u64 = (uint64_t)(c - S.c);
	ck_assert(epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e) == 0);
	c->ev = ev;
}

/* Start client ${c}: connect. */
static void
sconn_start(struct sconn *c, int64_t now)
{
	struct epoll_event e;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_msg(c->fd >= 0, "socket: %s", strerror(errno));
	it_track(c->fd);
	c->seed = S.next_seed++;
	c->life = between(LIFE_MIN, LIFE_MAX);
	c->progress_ms = now;
	c->next_ms = now + (int64_t)between(0, 1000);
	if (connect(c->fd, (struct sockaddr *)&S.sin, sizeof(S.sin)) == -1 &&
	    errno != EINPROGRESS) {
		sfail(c, "connect", errno);
		return;
	}
	c->st = C_CONNECTING;
	c->ev = EPOLLOUT;
	e.events = c->ev;
	e.data.u64 = (uint64_t)(c - S.c);
	ck_assert(epoll_ctl(S.ep, EPOLL_CTL_ADD, c->fd, &e) == 0);
	S.started++;
	S.connecting++;
}

/* ${c} finished cleanly. */
static void
sconn_done(struct sconn *c)
{

	it_close(c->fd);	/* also leaves the epoll set */
	c->fd = -1;
	c->st = C_FREE;
	S.open--;
	S.finished++;
}

/* Send what ${c}'s burst still has, as the socket takes it. */
static void
sconn_send(struct sconn *c, int64_t now)
{
	static unsigned char buf[BURST_MAX];
	ssize_t n;

	while (c->burst > 0) {
		it_gen(c->seed, c->tx, buf, c->burst);
		n = send(c->fd, buf, c->burst, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sfail(c, "send", errno);
			break;
		}
		c->tx += (uint64_t)n;
		c->burst -= (uint32_t)n;
		c->progress_ms = now;
	}
}

/* Read and verify what ${c} has. */
static void
sconn_recv(struct sconn *c, int64_t now)
{
	static unsigned char buf[64 * KIB];
	ssize_t n;
	long off;

	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sfail(c, "recv", errno);
			return;
		}
		if (n == 0) {
			if (c->st == C_SHUT && c->rx == c->tx)
				sconn_done(c);
			else
				sfail(c, "early EOF", 0);
			return;
		}
		if (c->rx + (uint64_t)n > c->tx) {
			sfail(c, "more bytes back than sent", 0);
			return;
		}
		if ((off = it_verify(c->seed, c->rx, buf, (size_t)n)) >= 0) {
			c->rx += (uint64_t)off;
			sfail(c, "a byte differs", 0);
			return;
		}
		c->rx += (uint64_t)n;
		S.bytes += (uint64_t)n;
		c->progress_ms = now;
	}
}

/* Timers of ${c}: a new burst, the end of its life, a stall. */
static void
sconn_tick(struct sconn *c, int64_t now)
{

	if (c->st != C_OPEN)
		goto stall;
	if (c->burst == 0 && c->tx < c->life && !S.stopping &&
	    now >= c->next_ms && c->tx - c->rx < OUTSTANDING) {
		c->burst = (uint32_t)between(1, BURST_MAX);
		if (c->burst > c->life - c->tx)
			c->burst = (uint32_t)(c->life - c->tx);
		c->next_ms = now + (int64_t)between(500, 3500) * S.slow;
		S.bursts++;
		sconn_send(c, now);
	}
	/* Done sending (its life, or the run, is over) and all back. */
	if (c->burst == 0 && c->rx == c->tx && (c->tx >= c->life ||
	    S.stopping)) {
		if (shutdown(c->fd, SHUT_WR) == -1) {
			sfail(c, "shutdown", errno);
			return;
		}
		c->st = C_SHUT;
		c->progress_ms = now;
	}
	set_events(c, EPOLLIN | (c->burst > 0 ? EPOLLOUT : 0));
stall:
	if ((c->st == C_CONNECTING || c->rx < c->tx || c->st == C_SHUT) &&
	    now - c->progress_ms > STALL_MS)
		sfail(c, c->st == C_CONNECTING ? "connect stalled" :
		    c->st == C_SHUT ? "no EOF" : "echo stalled", 0);
}

static void
sconn_event(struct sconn *c, uint32_t ev, int64_t now)
{
	socklen_t sl;
	int e;

	if (c->st == C_CONNECTING) {
		sl = sizeof(e);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &sl) == -1)
			e = errno;
		if (e != 0) {
			sfail(c, "connect", e);
			return;
		}
		c->st = C_OPEN;
		S.connecting--;
		S.open++;
		c->progress_ms = now;
		set_events(c, EPOLLIN);
		return;
	}
	if (ev & EPOLLOUT)
		sconn_send(c, now);
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		sconn_recv(c, now);
}

/* RSS samples of one mxd, one a second. */
struct rss {
	long	*kb;
	size_t	n, cap;
};

static void
rss_add(struct rss *r, long kb)
{

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 1024;
		r->kb = realloc(r->kb, r->cap * sizeof(*r->kb));
		ck_assert(r->kb != NULL);
	}
	r->kb[r->n++] = kb;
}

/* The largest sample in [from, to). */
static long
rss_max(const struct rss *r, size_t from, size_t to)
{
	long m = 0;
	size_t i;

	for (i = from; i < to && i < r->n; i++)
		if (r->kb[i] > m)
			m = r->kb[i];
	return (m);
}

static long
env_long(const char *name, long dflt)
{
	const char *e = getenv(name);

	return (e != NULL && atol(e) > 0 ? atol(e) : dflt);
}

START_TEST(soak)
{
	const long secs = env_long("MXD_SOAK_SECS", 30);
	const size_t n = (size_t)env_long("MXD_SOAK_CONNS", 10000);
	struct it_targets *t = it_targets_start();
	int port = it_free_port(), fda, fdb, k, nev, i;
	struct epoll_event *evs;
	struct rss ra = { 0 }, rb = { 0 };
	struct it_pair p;
	int64_t t0, now, end, next_sample, last_tick = 0, drain_end;
	size_t warm, j, active;
	long peak_warm_a, peak_warm_b, peak_a, peak_b;

	it_pair_start(&p, it_svc_accept("echo", port),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	fda = it_fd_settled(p.a);
	fdb = it_fd_settled(p.b);
	memset(&S, 0, sizeof(S));
	S.n = n;
	S.c = it_calloc(n, sizeof(*S.c));
	S.rnd = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	S.next_seed = 1;
	S.slow = it_san() ? 4 : 1;
	S.sin.sin_family = AF_INET;
	S.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	S.sin.sin_port = htons((uint16_t)port);
	S.ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert(S.ep >= 0);
	it_track(S.ep);
	evs = it_calloc(1024, sizeof(*evs));
	for (j = 0; j < n; j++)
		S.c[j].fd = -1;

	t0 = it_now_ms();
	end = t0 + secs * 1000;
	drain_end = 0;
	next_sample = t0;
	warm = (size_t)(secs / 3 < 10 ? 10 : secs / 3);
	printf("soak: %zu channels for %ld s%s\n", n, secs,
	    it_san() ? " [sanitizers: 4x slower traffic]" : "");
	for (;;) {
		now = it_now_ms();
		if (!S.stopping && now >= end) {
			S.stopping = 1;
			drain_end = now + DRAIN_MS;
		}
		/* Keep n clients: start new ones, a few hundred at a time. */
		for (j = 0; !S.stopping && j < n &&
		    S.connecting < CONNECTING_MAX; j++)
			if (S.c[j].st == C_FREE && S.c[j].fd == -1)
				sconn_start(&S.c[j], now);
		if (now >= next_sample) {
			rss_add(&ra, it_rss_kb(p.a->pid));
			rss_add(&rb, it_rss_kb(p.b->pid));
			next_sample += 1000;
			if (ra.n % 60 == 0)
				printf("soak: %zu s: %zu open, %ju finished, "
				    "%ju MiB verified, VmRSS A %ld B %ld KiB\n",
				    ra.n, S.open, (uintmax_t)S.finished,
				    (uintmax_t)(S.bytes >> 20),
				    ra.kb[ra.n - 1], rb.kb[rb.n - 1]);
		}
		nev = epoll_wait(S.ep, evs, 1024, 10);
		ck_assert_msg(nev >= 0 || errno == EINTR, "epoll_wait: %s",
		    strerror(errno));
		now = it_now_ms();
		for (k = 0; k < nev; k++)
			sconn_event(&S.c[evs[k].data.u64], evs[k].events, now);
		if (now - last_tick >= 10) {
			last_tick = now;
			for (j = 0, active = 0; j < n; j++) {
				if (S.c[j].st == C_FREE)
					continue;
				active++;
				sconn_tick(&S.c[j], now);
			}
			if (S.stopping && active == 0)
				break;
		}
		if (S.err[0] != '\0')
			break;
		if (S.stopping && now > drain_end) {
			snprintf(S.err, sizeof(S.err), "%zu clients did not "
			    "finish within %d ms of the end", S.open +
			    S.connecting, DRAIN_MS);
			break;
		}
	}
	/* Clients still holding sockets after a failure: close them. */
	for (j = 0; j < n; j++)
		if (S.c[j].fd >= 0)
			it_close(S.c[j].fd);
	ck_assert_msg(S.err[0] == '\0', "soak: %s", S.err);

	peak_warm_a = rss_max(&ra, 0, warm);
	peak_warm_b = rss_max(&rb, 0, warm);
	peak_a = rss_max(&ra, warm, ra.n);
	peak_b = rss_max(&rb, warm, rb.n);
	i = it_fd_wait(p.a->pid, fda, IT_WAIT_MS);
	k = it_fd_wait(p.b->pid, fdb, IT_WAIT_MS);
	printf("soak: %ld s, %zu concurrent channels: %ju channels in all, "
	    "%ju bursts, %ju MiB echoed and verified, none lost; VmRSS peak "
	    "A %ld KiB (warm-up %ld), B %ld KiB (warm-up %ld); descriptors A "
	    "%d -> %d, B %d -> %d\n", secs, n, (uintmax_t)S.finished,
	    (uintmax_t)S.bursts, (uintmax_t)(S.bytes >> 20), peak_a,
	    peak_warm_a, peak_b, peak_warm_b, fda, i, fdb, k);
	free(ra.kb);
	free(rb.kb);
	ck_assert_msg(S.finished == S.started, "%ju of %ju finished",
	    (uintmax_t)S.finished, (uintmax_t)S.started);
	ck_assert_msg(i == fda && k == fdb, "descriptors: A %d (was %d), B %d "
	    "(was %d)", i, fda, k, fdb);
	ck_assert_msg(!it_mxd_log_has(p.a, ": down: ") &&
	    !it_mxd_log_has(p.b, ": down: "), "the link went down");
	if (!it_san() && (size_t)secs > warm) {
		ck_assert_msg(peak_a <= peak_warm_a + peak_warm_a / 10 + 4096,
		    "A's VmRSS grew after warm-up: %ld -> %ld KiB",
		    peak_warm_a, peak_a);
		ck_assert_msg(peak_b <= peak_warm_b + peak_warm_b / 10 + 4096,
		    "B's VmRSS grew after warm-up: %ld -> %ld KiB",
		    peak_warm_b, peak_b);
	}
	it_finish();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("soak");
	TCase *t = tcase_create("soak");

	tcase_set_timeout(t, (double)env_long("MXD_SOAK_SECS", 30) + 240);
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	tcase_add_test(t, soak);
	suite_add_tcase(s, t);
	return (it_main(s));
}
