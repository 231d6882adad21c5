/*
 * Outage tests: the link between two real mxd ($MXD_BIN) runs through a
 * relay process (itest.h, it_relay_*) that the test cuts, freezes and
 * restarts while channels stream checksummed data both ways.  With
 * resumption (docs/PROTOCOL.md section 11) losing the link costs the
 * applications a pause, never a reset: every byte arrives once, in order.
 *
 *   outage_channels_survive   a cut of 1 s under 140 flows both ways, some
 *                             half-closed in flight, 20 opened during it;
 *                             plain and TLS
 *   outage_blackhole          nothing passes until keepalive's timeout
 *                             declares the link dead, then all does
 *   outage_listener_unaware   only the dialer's side is reset: the
 *                             listener's end still looks up when the
 *                             dialer resumes; plain and TLS
 *   outage_repeated_cuts      50 cuts, one every 200 ms, under load: no
 *                             loss, no leak (descriptors), no stuck channel
 *   outage_bounded_memory     clients writing all through a long outage:
 *                             what mxd holds stays within the windows
 *   outage_beyond_timeout     longer than resume_timeout: every held
 *                             channel reset, one line, nothing leaked
 *   outage_forged_resume      a third party that knows the session id but
 *                             not the key (with TLS: another certificate)
 *                             is refused and logged; the peer resumes after
 *   outage_peer_restarted     the peer restarted: held channels reset at
 *                             once, new ones work; both directions
 */
#include <sys/socket.h>
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

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "itest.h"
#include "mux/frame.h"

#define KIB		1024
#define MIB		(1024 * 1024)
#define OUTAGE_MS	1000	/* a cut lasts this long */

static char msg[512];

/* A pair whose link runs through a relay: A dials the relay, which
 * connects to B.  Clients of A's echo service and of B's back service go
 * to the echo target; A's blast service to the blast target. */
struct op {
	struct it_targets *t;
	struct it_relay	*r;
	int		link, pe, pk;	/* B's link port; A's, B's services */
	const char	*a_conf, *b_conf;
	struct it_mxd	*a, *b;
	int		fd_a, fd_b;	/* their descriptors when idle, up */
};

/*
 * Start ${p}: targets, B, the relay, A, over TLS if ${tls}, with ${extra}
 * in both [link] sections; wait until the link is up.
 */
static void
op_start(struct op *p, int tls, const char *extra)
{
	const char *timing = "keepalive = 500ms\ntimeout = 2s\n"
	    "connect_timeout = 1s\ndrain_timeout = 10s\n";
	const char *ta = "", *tb = "";

	memset(p, 0, sizeof(*p));
	p->t = it_targets_start();
	p->link = it_free_port();
	p->pe = it_free_port();
	p->pk = it_free_port();
	if (tls) {
		it_make_certs();
		ta = it_tls_link("a");
		tb = it_tls_link("b");
	}
	p->r = it_relay_start(p->link);
	p->b_conf = it_write_file("b.conf", it_fmt(
	    "[link]\nlisten = %s:%d\n%s%s%s\n%s[back]\naccept = %s:%d\n",
	    IT_HOST, p->link, timing, tb, extra, it_svc_connect("echo",
	    p->t->port[IT_ECHO]), IT_HOST, p->pk));
	p->a_conf = it_write_file("a.conf", it_fmt(
	    "[link]\nconnect = %s:%d\nreconnect_min = 10ms\n"
	    "reconnect_max = 100ms\n%s%s%s\n%s%s%s", IT_HOST, p->r->port,
	    timing, ta, extra, it_svc_accept("echo", p->pe),
	    it_svc_accept("blast", it_free_port()), it_fmt(
	    "[back]\nconnect = %s:%d\n\n[blastb]\nconnect = %s:%d\n", IT_HOST,
	    p->t->port[IT_ECHO], IT_HOST, p->t->port[IT_BLAST])));
	p->b = it_mxd_start(p->b_conf);
	it_mxd_wait_log(p->b, "link: waiting for the peer", IT_WAIT_MS);
	p->a = it_mxd_start(p->a_conf);
	it_mxd_wait_log(p->a, "up (connected", IT_WAIT_MS);
	it_mxd_wait_log(p->b, "up (accepted", IT_WAIT_MS);
	p->fd_a = it_fd_settled(p->a);
	p->fd_b = it_fd_settled(p->b);
}

/* Total bytes the flows ${f} (${n}) got back so far. */
static uint64_t
flows_rx(const struct it_flow *f, size_t n)
{
	uint64_t rx = 0;
	size_t i;

	for (i = 0; i < n; i++)
		rx += f[i].rx;
	return (rx);
}

/*
 * ${n} echo flows in ${f}: through A's echo service, and every fifth
 * through B's back service (channels opened by the listening side); every
 * third small, so that it half-closes long before the others; the last
 * ${late} not started (port 0) until the test says.
 */
static void
flows_init(struct op *p, struct it_flow *f, size_t n, size_t late,
    size_t big, uint64_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		f[i].port = i % 5 == 4 ? p->pk : p->pe;
		f[i].size = i % 3 == 0 ? 1 + (i * 4099) % (8 * KIB) :
		    big / 2 + (i * 104729) % (big / 2);
		f[i].seed = seed + i;
	}
	for (i = n - late; i < n; i++)
		f[i].port = 0;
}

/* Start the late flows of ${f} (${n}, the last ${late}). */
static void
flows_start_late(struct op *p, struct it_flow *f, size_t n, size_t late)
{
	size_t i;

	for (i = n - late; i < n; i++)
		f[i].port = i % 5 == 4 ? p->pk : p->pe;
}

/* What a cut of the link does, step by step, from a tick. */
struct cut {
	struct op	*p;
	struct it_flow	*f;
	size_t		n, late;
	uint64_t	when_rx;	/* cut once this much came back */
	int		freeze;		/* a black hole rather than a cut */
	int		drop;		/* only the dialer's side is reset */
	int		outage_ms;	/* a cut lasts this long */
	int		phase;		/* 0 before, 1 during, 2 after */
	int64_t		t_cut;
	long		rss_max;	/* A's VmRSS during the outage, KiB */
	uint64_t	tx_out;		/* bytes clients had sent by its end */
};

/* it_flows_run_tick: cut (or freeze) the relay once data flows, start
 * the late flows, and restore the path after outage_ms (a black hole:
 * once both sides declared the link dead). */
static int
cut_tick(void *arg)
{
	struct cut *c = arg;
	size_t i;
	long rss;

	if (c->phase == 1 && (rss = it_rss_kb(c->p->a->pid)) > c->rss_max)
		c->rss_max = rss;
	if (c->phase == 0 && flows_rx(c->f, c->n) >= c->when_rx) {
		if (c->freeze)
			it_relay_freeze(c->p->r);
		else if (c->drop)
			it_relay_drop_dialers(c->p->r);
		else
			it_relay_cut(c->p->r);
		c->t_cut = it_now_ms();
		c->phase = c->drop ? 2 : 1;	/* a drop needs no repair */
		flows_start_late(c->p, c->f, c->n, c->late);
	} else if (c->phase == 1 && (c->freeze ?
	    it_mxd_log_has(c->p->a, "lost: timed out") &&
	    it_mxd_log_has(c->p->b, "lost: timed out") :
	    it_now_ms() - c->t_cut >= c->outage_ms)) {
		for (i = 0; i < c->n; i++)
			c->tx_out += c->f[i].tx;
		if (c->freeze)
			it_relay_thaw(c->p->r);
		else
			it_relay_restart(c->p->r);
		c->phase = 2;
	}
	return (0);
}

/*
 * Start ${p} (TLS if ${tls}) and set ${c} up for it: ${n} flows as
 * flows_init makes them (${late} of them late, bulk ones up to ${big}
 * bytes, seeds from ${seed}); the caller says when and how to cut.
 */
static void
cut_start(struct cut *c, struct op *p, int tls, size_t n, size_t late,
    size_t big, uint64_t seed)
{

	op_start(p, tls, "");
	*c = (struct cut){ .p = p, .f = it_calloc(n, sizeof(*c->f)), .n = n,
	    .late = late };
	flows_init(p, c->f, n, late, big, seed);
}

/* Run the flows of cut ${c} for at most ${ms}, cutting as it says;
 * returns the number that failed (the first in msg). */
static size_t
cut_run(struct cut *c, int ms)
{

	return (it_flows_run_tick(c->f, c->n, ms, msg, sizeof(msg), cut_tick,
	    c));
}

/* The lines of a resumption of ${p}: lost and resumed, once each side;
 * nothing reset. */
static void
expect_one_resumption(struct op *p)
{

	it_mxd_wait_log(p->a, "resumed after", IT_WAIT_MS);
	it_mxd_wait_log(p->b, "resumed after", IT_WAIT_MS);
	ck_assert_int_eq(it_mxd_log_count(p->a, ": lost: "), 1);
	ck_assert_int_eq(it_mxd_log_count(p->b, ": lost: "), 1);
	ck_assert_int_eq(it_mxd_log_count(p->a, "resumed after"), 1);
	ck_assert_int_eq(it_mxd_log_count(p->b, "resumed after"), 1);
	ck_assert_int_eq(it_mxd_log_count(p->a, "channels reset"), 0);
	ck_assert_int_eq(it_mxd_log_count(p->b, "channels reset"), 0);
}

/*
 * 140 echo flows (28 from B's side), 47 of them small enough to have
 * half-closed before the cut, 20 opened during it; the relay is cut once
 * 16 MiB came back and restarted a second later: every flow completes,
 * byte for byte, and nobody sees a reset.
 */
START_TEST(outage_channels_survive)
{
	size_t n = 140, bad;
	struct cut c;
	struct op p;

	cut_start(&c, &p, _i, n, 20, (it_san() ? 1 : 4) * MIB, 1000);
	c.when_rx = (it_san() ? 4 : 16) * MIB;
	c.outage_ms = OUTAGE_MS;
	bad = cut_run(&c, 120000);
	ck_assert_msg(c.phase == 2, "the cut never came (%ju bytes back)",
	    (uintmax_t)flows_rx(c.f, n));
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad, n,
	    msg);
	expect_one_resumption(&p);
	printf("outage_channels_survive%s: %zu flows, %ju MiB echoed, a %d ms "
	    "cut resumed\n", _i ? " (TLS)" : "", n,
	    (uintmax_t)(flows_rx(c.f, n) / MIB), OUTAGE_MS);
	it_finish();
}
END_TEST

/* A black hole: the relay stops forwarding (SIGSTOP) until both sides'
 * keepalive timeout declared the link dead; then everything resumes. */
START_TEST(outage_blackhole)
{
	size_t n = 60, bad;
	struct cut c;
	struct op p;

	cut_start(&c, &p, 0, n, 10, (it_san() ? 1 : 2) * MIB, 2000);
	c.when_rx = 4 * MIB;
	c.freeze = 1;
	bad = cut_run(&c, 120000);
	ck_assert_msg(c.phase == 2, "the black hole never ended");
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad, n,
	    msg);
	expect_one_resumption(&p);
	it_finish();
}
END_TEST

/*
 * Only the dialer learns that the link is gone: the relay resets A's side
 * and leaves B's established and silent (a NAT that forgot its mapping).
 * A redials at once and resumes; B, whose own end of the old connection
 * still looks up, recognises its session in the resuming dialer and moves
 * it to the new connection, long before its keepalive timeout would have
 * noticed anything: no "lost" on B's side, no second peer refused, no
 * flapping, every flow intact, and the old connection closed (B's
 * descriptors as before).  Plain and TLS.
 */
START_TEST(outage_listener_unaware)
{
	size_t n = 60, bad;
	struct cut c;
	struct op p;

	cut_start(&c, &p, _i, n, 10, (it_san() ? 1 : 2) * MIB, 4000);
	c.when_rx = 4 * MIB;
	c.drop = 1;
	bad = cut_run(&c, 120000);
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad, n,
	    msg);
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	it_mxd_wait_log(p.b, "resumed after", IT_WAIT_MS);
	ck_assert_int_eq(it_mxd_log_count(p.a, ": lost: "), 1);
	ck_assert_int_eq(it_mxd_log_count(p.a, "resumed after"), 1);
	ck_assert_int_eq(it_mxd_log_count(p.b, "resumed after"), 1);
	ck_assert_int_eq(it_mxd_log_count(p.b, "second peer"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.b, "timed out"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.a, "channels reset"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.b, "channels reset"), 0);
	ck_assert_int_eq(it_fd_wait(p.b->pid, p.fd_b, IT_WAIT_MS), p.fd_b);
	printf("outage_listener_unaware%s: %zu flows intact; B moved the "
	    "session to the resuming dialer, its old connection closed\n",
	    _i ? " (TLS)" : "", n);
	it_finish();
}
END_TEST

/* Cut after cut: the relay killed and restarted every 200 ms. */
struct cuts {
	struct op	*p;
	int		left;
	int64_t		next;
};

/* it_flows_run_tick: the next cut, when due. */
static int
cuts_tick(void *arg)
{
	struct cuts *c = arg;

	if (c->left > 0 && it_now_ms() >= c->next) {
		it_relay_restart(c->p->r);
		c->left--;
		c->next = it_now_ms() + 200;
	}
	return (0);
}

/*
 * 50 cuts, one every 200 ms, while 100 flows run (and then 100 more): all
 * complete intact, and afterwards both mxd have the descriptors they had
 * before (no channel stuck, no socket leaked).
 */
START_TEST(outage_repeated_cuts)
{
	size_t n = 100, bad;
	struct it_flow *f = it_calloc(n, sizeof(*f));
	struct cuts c = { NULL, 50, 0 };
	struct op p;
	int lost;

	op_start(&p, 0, "");
	c.p = &p;
	c.next = it_now_ms() + 100;
	while (c.left > 0) {
		flows_init(&p, f, n, 0, (it_san() ? 1 : 2) * MIB,
		    3000 + (uint64_t)c.left * 1000);
		bad = it_flows_run_tick(f, n, 120000, msg, sizeof(msg),
		    cuts_tick, &c);
		ck_assert_msg(bad == 0, "%zu of %zu flows failed (%d cuts "
		    "left); first: %s", bad, n, c.left, msg);
	}
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	lost = it_mxd_log_count(p.a, ": lost: ");
	ck_assert_int_eq(it_mxd_log_count(p.a, "channels reset"), 0);
	ck_assert_int_eq(it_mxd_log_count(p.b, "channels reset"), 0);
	/* Cuts while the link was already down are not losses. */
	ck_assert_int_ge(lost, 25);
	ck_assert_int_eq(it_fd_wait(p.a->pid, p.fd_a, IT_WAIT_MS), p.fd_a);
	ck_assert_int_eq(it_fd_wait(p.b->pid, p.fd_b, IT_WAIT_MS), p.fd_b);
	printf("outage_repeated_cuts: 50 cuts, %d losses, every one resumed; "
	    "descriptors A %d, B %d as before\n", lost, p.fd_a, p.fd_b);
	it_finish();
}
END_TEST

/*
 * 32 clients of A write 8 MiB each into a link cut for 3 s: A reads each
 * socket until its channel's window and send queue are full, then leaves
 * the rest in the socket, so its VmRSS grows by at most that much (plus
 * an allowance) however long the outage lasts.  Then the link comes back
 * and every byte arrives.
 */
START_TEST(outage_bounded_memory)
{
	size_t n = 32, bad;
	struct it_flow *f = it_calloc(n, sizeof(*f));
	long rss0, bound;
	struct cut c;
	struct op p;
	int i;

	op_start(&p, 0, "");
	rss0 = it_rss_kb(p.a->pid);
	for (i = 0; i < (int)n; i++) {
		f[i].port = p.pe;
		f[i].size = 8 * MIB;
		f[i].seed = 4000 + (uint64_t)i;
	}
	c = (struct cut){ .p = &p, .f = f, .n = n, .outage_ms = 3000 };
	bad = cut_run(&c, 120000);
	ck_assert_msg(bad == 0, "%zu of %zu flows failed; first: %s", bad, n,
	    msg);
	/* Per channel: a window kept for the peer, a full send queue (256
	 * KiB each) and a socket read (128 KiB); 4 MiB for the rest. */
	bound = (long)n * (256 + 256 + 128) + 4096;
	printf("outage_bounded_memory: A's VmRSS %ld KiB, at most %ld KiB "
	    "during a 3 s outage while %zu clients had written %ju KiB into "
	    "it (bound +%ld KiB)%s\n", rss0, c.rss_max, n,
	    (uintmax_t)(c.tx_out / KIB), bound, it_san() ?
	    " [sanitizers: not checked]" : "");
	if (!it_san())
		ck_assert_msg(c.rss_max - rss0 <= bound, "A grew by %ld KiB",
		    c.rss_max - rss0);
	/* The rest waits in the clients' sockets, not in A. */
	ck_assert_msg(c.tx_out / KIB > (uint64_t)bound, "the clients wrote "
	    "only %ju KiB", (uintmax_t)(c.tx_out / KIB));
	expect_one_resumption(&p);
	it_finish();
}
END_TEST

/* A cut longer than resume_timeout (1 s here): each side resets its held
 * channels with one line saying how many and why, and gives back every
 * descriptor; the link comes back and new channels work. */
START_TEST(outage_beyond_timeout)
{
	size_t n = 20, bad, i;
	struct it_flow *f = it_calloc(n, sizeof(*f));
	struct cut c;
	struct op p;

	op_start(&p, 0, "resume_timeout = 1s\n");
	for (i = 0; i < n; i++) {
		f[i].port = p.pe;
		f[i].size = 64 * MIB;	/* still running at the cut */
		f[i].seed = 5000 + i;
	}
	/* The path does not come back within this test. */
	c = (struct cut){ .p = &p, .f = f, .n = n, .when_rx = MIB,
	    .outage_ms = 600000 };
	bad = cut_run(&c, 20000);
	ck_assert_uint_eq(bad, n);
	for (i = 0; i < n; i++)
		ck_assert_msg(f[i].err == ECONNRESET || f[i].err == -2,
		    "flow %zu: %s (%d)", i, f[i].done ? "done" : "error",
		    f[i].err);
	it_mxd_wait_log(p.a, "not resumed within resume_timeout (20 channels "
	    "reset)", IT_WAIT_MS);
	it_mxd_wait_log(p.b, "not resumed within resume_timeout (20 channels "
	    "reset)", IT_WAIT_MS);
	it_relay_restart(p.r);
	it_mxd_wait_log(p.a, "up (connected", IT_WAIT_MS);
	ck_assert_int_eq(it_fd_wait(p.a->pid, p.fd_a, IT_WAIT_MS), p.fd_a);
	ck_assert_int_eq(it_fd_wait(p.b->pid, p.fd_b, IT_WAIT_MS), p.fd_b);
	flows_init(&p, f, 10, 0, 256 * KIB, 6000);
	bad = it_flows_run(f, 10, 30000, msg, sizeof(msg));
	ck_assert_msg(bad == 0, "after: %s", msg);
	it_finish();
}
END_TEST

/* Read whole frames from ${ssl} (or ${fd}) until one of type ${type} with
 * flags ${flags} arrives; its payload goes to ${buf} (${len}).  Returns
 * its length, or -1 on EOF or error. */
static long
frame_until(SSL *ssl, int fd, uint8_t type, uint16_t flags, uint8_t *buf,
    size_t len)
{
	uint8_t hb[FRAME_HDR_LEN], junk[4096];
	struct frame_hdr h;
	size_t got, want;
	ssize_t r;

	for (;;) {
		for (got = 0; got < sizeof(hb); got += (size_t)r)
			if ((r = ssl ? SSL_read(ssl, hb + got,
			    (int)(sizeof(hb) - got)) : recv(fd, hb + got,
			    sizeof(hb) - got, 0)) <= 0)
				return (-1);
		frame_decode(hb, &h);
		want = h.type == FRAME_DATA || h.type == FRAME_EXT ?
		    h.length : 0;
		for (got = 0; got < want; got += (size_t)r) {
			uint8_t *p = h.type == type && h.flags == flags &&
			    want <= len ? buf + got : junk;
			size_t room = p == junk ? sizeof(junk) : want - got;

			if (room > want - got)
				room = want - got;
			if ((r = ssl ? SSL_read(ssl, p, (int)room) : recv(fd, p,
			    room, 0)) <= 0)
				return (-1);
		}
		if (h.type == type && h.flags == flags)
			return ((long)want);
	}
}

/* Send ${len} bytes at ${buf} on ${ssl}, or ${fd} if NULL. */
static void
send_raw(SSL *ssl, int fd, const void *buf, size_t len)
{

	if (ssl)
		ck_assert(SSL_write(ssl, buf, (int)len) == (int)len);
	else
		ck_assert(it_send_all(fd, buf, len) == 0);
}

/* Send the frame header (${type}, ${flags}, stream 0, ${length}). */
static void
frame_send_hdr(SSL *ssl, int fd, uint8_t type, uint16_t flags,
    uint32_t length)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame_hdr h = { 0, type, flags, 0, length };

	frame_encode(buf, &h);
	send_raw(ssl, fd, buf, sizeof(buf));
}

/* Send the frame (${type}, ${flags}, stream 0) with ${len} bytes at ${p}. */
static void
frame_send(SSL *ssl, int fd, uint8_t type, uint16_t flags, const void *p,
    size_t len)
{

	frame_send_hdr(ssl, fd, type, flags, (uint32_t)len);
	send_raw(ssl, fd, p, len);
}

/* The session id A logged (its debug line "session <hex>"), into ${id}. */
static void
session_id_of(struct it_mxd *m, uint8_t id[16])
{
	FILE *fp = fopen(m->log, "r");
	char line[1024], *s;
	unsigned v;
	int i, found = 0;

	ck_assert_ptr_nonnull(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if ((s = strstr(line, ": session ")) != NULL &&
		    strlen(s) >= 10 + 32) {
			for (i = 0; i < 16; i++) {
				ck_assert(sscanf(s + 10 + 2 * i, "%2x", &v) ==
				    1);
				id[i] = (uint8_t)v;
			}
			found = 1;
		}
	fclose(fp);
	ck_assert_msg(found, "no session id in %s", m->log);
}

/*
 * With the link cut and B holding the session, a third party connects to
 * B's link port itself and asks to resume it with the right session id.
 * Plain: it cannot answer the challenge, and is refused and logged.  TLS:
 * it shows certificate c (signed by the same CA), not a's, and is refused
 * at once.  Then the relay returns and A resumes the session.
 */
START_TEST(outage_forged_resume)
{
	uint8_t id[16], req[32], buf[64], proof[32];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct op p;
	struct it_flow f[6];
	long n;
	int fd;

	op_start(&p, _i, "");
	session_id_of(p.a, id);
	flows_init(&p, f, 6, 0, 128 * KIB, 7000);
	it_relay_cut(p.r);
	it_mxd_wait_log(p.b, ": lost: ", IT_WAIT_MS);
	it_mxd_mark(p.b);
	fd = it_connect(p.link);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	if (_i) {
		ck_assert((ctx = SSL_CTX_new(TLS_client_method())) != NULL);
		ck_assert(SSL_CTX_use_certificate_chain_file(ctx,
		    it_path("c.pem")) == 1 && SSL_CTX_use_PrivateKey_file(ctx,
		    it_path("c.key"), SSL_FILETYPE_PEM) == 1 &&
		    SSL_CTX_load_verify_locations(ctx, it_path("ca.pem"),
		    NULL) == 1);
		ck_assert((ssl = SSL_new(ctx)) != NULL &&
		    SSL_set_fd(ssl, fd) == 1);
		ck_assert_msg(SSL_connect(ssl) == 1, "the handshake failed");
	}
	/* The offer (a ping whose opaque value is the length field), then
	 * RESUME with the session id and a nonce. */
	frame_send_hdr(ssl, fd, FRAME_PING, FRAME_SYN, 0x6d787231);
	memcpy(req, id, 16);
	ck_assert(RAND_bytes(req + 16, 16) == 1);
	frame_send(ssl, fd, FRAME_EXT, 2, req, sizeof(req));
	if (_i) {
		n = frame_until(ssl, fd, FRAME_EXT, 5, buf, sizeof(buf));
		ck_assert_msg(n == 1 && buf[0] == 2, "no REFUSE(identity): "
		    "%ld", n);
		it_mxd_wait_log(p.b, "resumption refused: the peer's TLS "
		    "identity is not the session's", IT_WAIT_MS);
	} else {
		n = frame_until(NULL, fd, FRAME_EXT, 3, buf, sizeof(buf));
		ck_assert_msg(n == 48, "no CHALLENGE: %ld", n);
		ck_assert(RAND_bytes(proof, sizeof(proof)) == 1);
		frame_send(NULL, fd, FRAME_EXT, 4, proof, sizeof(proof));
		it_mxd_wait_log(p.b, "resumption refused: wrong proof",
		    IT_WAIT_MS);
		n = frame_until(NULL, fd, 0xff, 0, buf, sizeof(buf));
		ck_assert_msg(n == -1, "B did not close the connection");
	}
	if (ssl != NULL) {
		SSL_free(ssl);
		SSL_CTX_free(ctx);
	}
	it_close(fd);
	/* The real peer still resumes, channels intact. */
	it_relay_restart(p.r);
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	it_mxd_wait_log(p.b, "resumed after", IT_WAIT_MS);
	ck_assert_msg(it_flows_run(f, 6, 30000, msg, sizeof(msg)) == 0,
	    "after: %s", msg);
	it_finish();
}
END_TEST

/*
 * The peer restarted while the link was down (B, then A): the side that
 * held the session resets its channels at once when the new peer is
 * reached, not after resume_timeout, and new channels work.
 */
START_TEST(outage_peer_restarted)
{
	struct it_flow f[4];
	struct op p;
	int64_t t0;
	long r;
	char c;
	int fd;

	op_start(&p, 0, "");
	fd = it_connect(p.pe);
	it_echo(fd, "before");
	if (_i == 0) {
		it_mxd_kill(p.b);
		it_mxd_wait_log(p.a, ": lost: ", IT_WAIT_MS);
		it_mxd_restart(p.b);
		t0 = it_now_ms();
		it_mxd_wait_log(p.a, "resumption refused by the peer: the "
		    "peer does not know the session (it restarted?) (1 "
		    "channels reset)", IT_WAIT_MS);
	} else {
		it_mxd_kill(p.a);
		it_close(fd);
		it_mxd_wait_log(p.b, ": lost: ", IT_WAIT_MS);
		it_mxd_restart(p.a);
		t0 = it_now_ms();
		it_mxd_wait_log(p.b, "the peer started a new session: 1 held "
		    "channels reset", IT_WAIT_MS);
		fd = -1;
	}
	ck_assert_msg(it_now_ms() - t0 < 3000, "held channels reset after %jd "
	    "ms", (intmax_t)(it_now_ms() - t0));
	if (fd >= 0) {
		r = it_recv_wait(fd, &c, 1, 3000);
		ck_assert_msg(r != IT_TIMEOUT && r <= 0, "the held client was "
		    "not reset (%ld)", r);
		it_close(fd);
	}
	it_mxd_wait_log(p.a, "up (connected", IT_WAIT_MS);
	flows_init(&p, f, 4, 0, 256 * KIB, 8000);
	ck_assert_msg(it_flows_run(f, 4, 30000, msg, sizeof(msg)) == 0,
	    "after: %s", msg);
	ck_assert_int_eq(it_fd_wait(p.b->pid, p.fd_b, IT_WAIT_MS), p.fd_b);
	it_finish();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("outage");
	TCase *tc = tcase_create("outage");

	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, it_init, it_cleanup);
	IT_ADD_LOOP(tc, outage_channels_survive, 2);
	IT_ADD(tc, outage_blackhole);
	IT_ADD_LOOP(tc, outage_listener_unaware, 2);
	IT_ADD(tc, outage_repeated_cuts);
	IT_ADD(tc, outage_bounded_memory);
	IT_ADD(tc, outage_beyond_timeout);
	IT_ADD_LOOP(tc, outage_forged_resume, 2);
	IT_ADD_LOOP(tc, outage_peer_restarted, 2);
	suite_add_tcase(s, tc);
	return (it_main(s));
}
