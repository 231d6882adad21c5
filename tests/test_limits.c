/*
 * Integration tests of what bounds a daemon: the limits on new channels
 * (max_channels, max_pending_connects, max_buffered, rate_limit), that a
 * channel can only reach a configured service, the PROXY protocol header
 * toward targets, and [daemon] user.  Real mxd processes ($MXD_BIN) on
 * 127.0.0.1 (see itest.h).
 *
 * A limit refuses a new channel (its client is reset), counts it in
 * mxd_limit_refused_total{limit="<key>"} and logs one line when it starts
 * refusing; channels already open carry on.
 *
 * The crafted service headers come from a test peer in this process: the
 * yamux engine (src/mux) on a plain socket to a listening mxd (peer.h).
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "itest.h"
#include "peer.h"

#define RESET_MS	3000	/* a refused client is reset within this */

/* ------------------------------------------------------------ configs */

/*
 * Write configuration ${file}: metrics on ${metrics} (0: none) and
 * ${daemon} lines in [daemon]; [link] ${mode} ("listen" or "connect") on
 * ${port} with fast test settings and ${link} lines; then ${services}.
 */
static const char *
conf(const char *file, int metrics, const char *daemon, const char *mode,
    int port, const char *link, const char *services)
{

	return (it_write_file(file, it_fmt("[daemon]\nlog_level = debug\n%s%s"
	    "\n[link]\n%s = %s:%d\nreconnect_min = 100ms\nreconnect_max = 1s\n"
	    "connect_timeout = 30s\ndrain_timeout = 10s\n%s\n%s",
	    metrics ? it_fmt("metrics = %s:%d\n", IT_HOST, metrics) : "",
	    daemon, mode, IT_HOST, port, link, services)));
}

/* Start B on ${bconf} (it listens), then A on ${aconf}; wait for the link. */
static void
pair(struct it_mxd **a, struct it_mxd **b, const char *aconf,
    const char *bconf)
{

	*b = it_mxd_start(bconf);
	it_mxd_wait_log(*b, "link: waiting for the peer", IT_WAIT_MS);
	*a = it_mxd_start(aconf);
	it_mxd_wait_log(*a, "up (connected", IT_WAIT_MS);
	it_mxd_wait_log(*b, "up (accepted", IT_WAIT_MS);
}

/* Lines of ${m}'s whole log that hold ${needle}. */
static int
log_count(struct it_mxd *m, const char *needle)
{
	char line[2048];
	int n = 0;
	FILE *f;

	ck_assert_msg((f = fopen(m->log, "r")) != NULL, "%s: %s", m->log,
	    strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return (n);
}

/* ------------------------------------------------------------ metrics */

#define REFUSED(key)	"mxd_limit_refused_total{limit=\"" key "\"}"

/* ------------------------------------------------------------ clients */

/* A client of ${port} whose channel echoed once. */
static int
open_echo(int port)
{
	int fd = it_connect(port);

	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_echo(fd, "hi");
	return (fd);
}

/* Close client ${fd} with a reset. */
static void
reset_close(int fd)
{
	struct linger lg = { 1, 0 };

	ck_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	it_close(fd);
}

/* Returns 1 if a new client of ${port} that sends a byte is reset within
 * RESET_MS, 0 if its byte is echoed. */
static int
try_channel(int port)
{
	int fd = it_connect(port);
	uint64_t n;
	char c;
	long r;

	/* The reset can beat connect() back to the client. */
	if (fd < 0 && errno == ECONNRESET)
		return (1);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
		ck_assert_msg(errno == ECONNRESET || errno == EPIPE,
		    "send: %s", strerror(errno));
		it_close(fd);
		return (1);
	}
	r = it_recv_wait(fd, &c, 1, RESET_MS);
	if (r == 1) {
		it_finish_client(fd, "echo client");
		return (0);
	}
	ck_assert_msg(r == -ECONNRESET || (r == 0 &&
	    it_drain_wait(fd, RESET_MS, &n) == -ECONNRESET),
	    "expected a reset, got %ld", r);
	it_close(fd);
	return (1);
}

/* A new client of ${port} is reset. */
static void
expect_refused(int port, const char *what)
{

	ck_assert_msg(try_channel(port) == 1, "%s: not refused", what);
}

/* ------------------------------------------------------------ no open proxy */

#define BYTES(s)	s, sizeof(s) - 1

/* Service headers (and any payload) sent by the test peer: only those that
 * name a configured service with a target here get through. */
static const struct crafted {
	const char	*what;
	const char	*bytes;
	size_t		len;
	int		fin;		/* FIN right after the bytes */
	int		works;		/* else it is reset */
} crafted[] = {
	{ "empty name", BYTES("\x00\x00\x00ping"), 0, 0 },
	{ "name with /", BYTES("\x09" "echo/../x" "\x00\x00ping"), 0, 0 },
	{ "name with :", BYTES("\x0b" "127.0.0.1:7" "\x00\x00ping"), 0, 0 },
	{ "name with NUL", BYTES("\x05" "ec\x00ho" "\x00\x00ping"), 0, 0 },
	{ "name with space", BYTES("\x05" "echo " "\x00\x00ping"), 0, 0 },
	{ "name ..", BYTES("\x02" ".." "\x00\x00ping"), 0, 0 },
	{ "unknown service", BYTES("\x04" "nope" "\x00\x00ping"), 0, 0 },
	{ "accept-only service", BYTES("\x03" "acc" "\x00\x00ping"), 0, 0 },
	{ "record past its end", BYTES("\x04" "echo" "\x00\x03" "\x09\x05"
	    "a" "ping"), 0, 0 },
	{ "bad client address", BYTES("\x04" "echo" "\x00\x07" "\x01\x05"
	    "\x04\x7f\x00\x00\x01" "ping"), 0, 0 },
	{ "header cut by FIN", BYTES("\x04" "echo" "\x00\x09" "\x01\x07"), 1,
	    0 },
	{ "name cut by FIN", BYTES("\xff" "echo"), 1, 0 },
	{ "nothing but FIN", "", 0, 1, 0 },
	{ "unknown record (an address)", BYTES("\x04" "echo" "\x00\x0d"
	    "\x09\x0b" "10.0.0.1:22" "ping"), 0, 1 },
	{ "plain", BYTES("\x04" "echo" "\x00\x00" "ping"), 0, 1 },
	{ "client address", BYTES("\x04" "echo" "\x00\x09" "\x01\x07"
	    "\x04\x7f\x00\x00\x01\x9c\x40" "ping"), 0, 1 },
};

START_TEST(no_open_proxy)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), works = 0;
	char name[256], hdr[300];
	struct tp_stream *ts;
	struct it_mxd *b;
	struct tp *tp;
	size_t i;

	memset(name, 'n', 255);
	name[255] = '\0';
	b = it_mxd_start(conf("b.conf", 0, "", "listen", link, "", it_fmt(
	    "%s%s[%s]\nconnect = %s:%d\n", it_svc_connect("echo",
	    t->port[IT_ECHO]), it_svc_accept("acc", it_free_port()), name,
	    IT_HOST, t->port[IT_ECHO])));
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	tp = tp_connect(link);
	tp_wait_up(tp, b);

	for (i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
		ts = tp_open(tp, crafted[i].bytes, crafted[i].len,
		    crafted[i].fin);
		if (crafted[i].works) {
			tp_expect_reply(tp, ts, "ping", crafted[i].what);
			works++;
		} else {
			tp_expect_reset(tp, ts, crafted[i].what);
		}
	}
	/* 255 bytes: a configured name works, any other is reset. */
	hdr[0] = (char)255;
	memcpy(hdr + 1, name, 255);
	memcpy(hdr + 256, "\x00\x00ping", 6);
	ts = tp_open(tp, hdr, 262, 0);
	tp_expect_reply(tp, ts, "ping", "255-byte configured name");
	works++;
	hdr[255] = 'x';
	ts = tp_open(tp, hdr, 262, 0);
	tp_expect_reset(tp, ts, "255-byte unknown name");

	/* Only the channels that worked reached a target. */
	ck_assert_msg(atomic_load(&t->st->accepted) == (unsigned)works,
	    "the target saw %llu connections, not %d",
	    atomic_load(&t->st->accepted), works);
	it_mxd_wait_log(b, "malformed service header", IT_WAIT_MS);
	it_mxd_wait_log(b, "peer asked for service \"nope\"", IT_WAIT_MS);
	tp_free(tp);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ PROXY */

/* A PROXY protocol header as a target reads it. */
struct pp {
	int		version;	/* 1 or 2 */
	int		family;		/* AF_INET, AF_INET6, or 0: unknown */
	char		src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	unsigned	sport, dport;
};

/*
 * Read and parse the PROXY protocol header at the start of ${fd} (blocking)
 * into ${pp}: version 2 if it starts with its signature, else version 1.
 * Nothing after the header is read.
 */
static void
read_proxy(int fd, struct pp *pp)
{
	static const uint8_t sig[12] = "\r\n\r\n\0\r\nQUIT\n";
	uint8_t b[256], fam2;
	char fam, line[108];
	size_t n = 0, alen;
	int af;

	memset(pp, 0, sizeof(*pp));
	ck_assert(it_recv_full(fd, b, 1) == 1);
	if (b[0] != sig[0]) {
		/* Version 1: one text line, at most 107 bytes with CRLF. */
		pp->version = 1;
		line[n++] = (char)b[0];
		while (n < sizeof(line) - 1 && (n < 2 || line[n - 2] != '\r' ||
		    line[n - 1] != '\n'))
			ck_assert(it_recv_full(fd, line + n++, 1) == 1);
		line[n] = '\0';
		ck_assert_msg(n >= 2 && strcmp(line + n - 2, "\r\n") == 0,
		    "no CRLF in \"%s\"", line);
		if (strcmp(line, "PROXY UNKNOWN\r\n") == 0)
			return;
		ck_assert_msg(sscanf(line, "PROXY TCP%c %45s %45s %u %u\r\n",
		    &fam, pp->src, pp->dst, &pp->sport, &pp->dport) == 5 &&
		    (fam == '4' || fam == '6'), "bad v1 line \"%s\"", line);
		pp->family = fam == '4' ? AF_INET : AF_INET6;
		ck_assert(inet_pton(pp->family, pp->src, b) == 1);
		ck_assert(inet_pton(pp->family, pp->dst, b) == 1);
		return;
	}
	/* Version 2: signature, version and command, family, length. */
	pp->version = 2;
	ck_assert(it_recv_full(fd, b + 1, 15) == 15);
	ck_assert_msg(memcmp(b, sig, sizeof(sig)) == 0, "bad v2 signature");
	ck_assert_msg(b[12] == 0x21, "v2 version/command %#x", b[12]);
	fam2 = b[13];
	n = (size_t)b[14] << 8 | b[15];
	ck_assert(n <= sizeof(b) && it_recv_full(fd, b, n) == (ssize_t)n);
	if (fam2 == 0x00)
		return;
	ck_assert_msg(fam2 == 0x11 || fam2 == 0x21, "v2 family %#x", fam2);
	af = fam2 == 0x11 ? AF_INET : AF_INET6;
	alen = af == AF_INET ? 4 : 16;
	ck_assert_msg(n == 2 * alen + 4, "v2 length %zu", n);
	pp->family = af;
	inet_ntop(af, b, pp->src, sizeof(pp->src));
	inet_ntop(af, b + alen, pp->dst, sizeof(pp->dst));
	pp->sport = (unsigned)b[2 * alen] << 8 | b[2 * alen + 1];
	pp->dport = (unsigned)b[2 * alen + 2] << 8 | b[2 * alen + 3];
}

/* The target's side of a channel on ${lfd}: the header must be ${family}
 * ${src}:${sport} to ${dst}:${dport} (family 0: unknown), then "hello"
 * arrives and "world" goes back. */
static void
serve_proxied(int lfd, int version, int family, const char *src,
    unsigned sport, const char *dst, unsigned dport)
{
	int fd = it_accept(lfd);
	struct pp pp;
	char buf[5];

	read_proxy(fd, &pp);
	ck_assert_int_eq(pp.version, version);
	ck_assert_int_eq(pp.family, family);
	if (family != 0) {
		ck_assert_str_eq(pp.src, src);
		ck_assert_str_eq(pp.dst, dst);
		ck_assert_uint_eq(pp.sport, sport);
		ck_assert_uint_eq(pp.dport, dport);
	}
	ck_assert(it_recv_full(fd, buf, 5) == 5 &&
	    memcmp(buf, "hello", 5) == 0);
	ck_assert(it_send_all(fd, "world", 5) == 0);
	it_close(fd);
}

/* proxy_protocol = v1 and v2: the target learns the real client. */
START_TEST(proxy_protocol)
{
	int version = _i + 1, link = it_free_port(), port = it_free_port();
	int tport, lfd = it_listen(16, 0, &tport), fd;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct tp_stream *ts;
	struct it_mxd *a, *b;
	struct tp *tp;
	char buf[5];

	pair(&a, &b, conf("a.conf", 0, "", "connect", link, "",
	    it_svc_accept("px", port)), conf("b.conf", 0, "", "listen", link,
	    "", it_fmt("[px]\nconnect = %s:%d\nproxy_protocol = v%d\n",
	    IT_HOST, tport, version)));

	/* A real client through A: its address as A saw it. */
	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	ck_assert(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
	ck_assert(it_send_all(fd, "hello", 5) == 0);
	serve_proxied(lfd, version, AF_INET, IT_HOST, ntohs(sin.sin_port),
	    IT_HOST, (unsigned)tport);
	ck_assert(it_recv_full(fd, buf, 5) == 5 &&
	    memcmp(buf, "world", 5) == 0);
	it_close(fd);
	it_mxd_stop(a, IT_WAIT_MS);

	/* Headers from the test peer: no client address, then IPv6. */
	tp = tp_connect(link);
	ts = tp_open(tp, BYTES("\x02" "px" "\x00\x00" "hello"), 0);
	tp_run(tp, 100, NULL, 0);
	serve_proxied(lfd, version, 0, NULL, 0, NULL, 0);
	tp_expect_reply(tp, ts, "world", "no client address");
	ts = tp_open(tp, BYTES("\x02" "px" "\x00\x15" "\x01\x13" "\x06"
	    "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	    "\x10\x92" "hello"), 0);
	tp_run(tp, 100, NULL, 0);
	serve_proxied(lfd, version, AF_INET6, "2001:db8::1", 4242,
	    "::ffff:127.0.0.1", (unsigned)tport);
	tp_expect_reply(tp, ts, "world", "IPv6 client");
	tp_free(tp);
	it_close(lfd);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ limits */

/* max_channels = 3 on B (_i 0: the peer's opens are refused) or on A (_i 1:
 * accepted clients are refused). */
START_TEST(limit_max_channels)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), mp = it_free_port();
	const char *limit = "max_channels = 3\n";
	struct it_mxd *a, *b, *lim;
	int fd[3], i;

	pair(&a, &b, conf("a.conf", _i == 1 ? mp : 0, "", "connect", link,
	    _i == 1 ? limit : "", it_svc_accept("echo", port)),
	    conf("b.conf", _i == 0 ? mp : 0, "", "listen", link,
	    _i == 0 ? limit : "", it_svc_connect("echo", t->port[IT_ECHO])));
	lim = _i == 0 ? b : a;
	for (i = 0; i < 3; i++)
		fd[i] = open_echo(port);
	for (i = 0; i < 3; i++)
		expect_refused(port, it_fmt("channel %d", 4 + i));
	ck_assert_int_eq(it_metric(mp, REFUSED("max_channels")), 3);
	ck_assert_int_eq(log_count(lim, "link: max_channels (3) reached: "
	    "refusing new channels"), 1);
	for (i = 0; i < 3; i++)
		it_echo(fd[i], "still open");
	it_finish_client(fd[0], "echo client");
	ck_assert_int_eq(it_metric_wait(mp, "mxd_link_channels", 2, IT_WAIT_MS),
	    2);
	fd[0] = open_echo(port);
	for (i = 0; i < 3; i++)
		it_finish_client(fd[i], "echo client");
	it_finish();
}
END_TEST

/* max_pending_connects = 2 on B: with two channels waiting for a target
 * that does not answer, new channels are refused, old ones carry on. */
START_TEST(limit_max_pending_connects)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), pe = it_free_port(), ps = it_free_port();
	int mp = it_free_port(), hport, hung, filler, e, slow[2], i;
	struct it_mxd *a, *b;

	/* A target whose accept queue is full: SYNs to it go unanswered. */
	hung = it_listen(0, 0, &hport);
	filler = it_connect(hport);
	ck_assert(filler >= 0);
	pair(&a, &b, conf("a.conf", 0, "", "connect", link, "",
	    it_fmt("%s%s", it_svc_accept("echo", pe), it_svc_accept("slow",
	    ps))), conf("b.conf", mp, "", "listen", link,
	    "max_pending_connects = 2\n", it_fmt("%s%s", it_svc_connect("echo",
	    t->port[IT_ECHO]), it_svc_connect("slow", hport))));
	e = open_echo(pe);
	for (i = 0; i < 2; i++) {
		slow[i] = it_connect(ps);
		ck_assert(slow[i] >= 0 && it_send_all(slow[i], "x", 1) == 0);
	}
	ck_assert_int_eq(it_metric_wait(mp, "mxd_link_pending_connects", 2,
	    IT_WAIT_MS), 2);
	expect_refused(ps, "third slow channel");
	expect_refused(pe, "an echo channel, while two connects hang");
	ck_assert_int_eq(it_metric(mp, REFUSED("max_pending_connects")), 2);
	ck_assert_int_eq(log_count(b, "link: max_pending_connects (2) "
	    "reached: refusing new channels"), 1);
	it_echo(e, "untouched");
	for (i = 0; i < 2; i++)
		reset_close(slow[i]);
	ck_assert_int_eq(it_metric_wait(mp, "mxd_link_pending_connects", 0,
	    IT_WAIT_MS), 0);
	it_finish_client(open_echo(pe), "echo client");
	it_finish_client(e, "echo client");
	it_close(filler);
	it_close(hung);
	it_finish();
}
END_TEST

/* max_buffered = 128k on B: while a channel's target does not read and B
 * holds more than that for it, new channels are refused; the stalled
 * channel loses nothing. */
START_TEST(limit_max_buffered)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), pe = it_free_port(), pst = it_free_port();
	int mp = it_free_port(), sport, stall, k, e, fd;
	size_t chunk = 64 * 1024, sent = 0, got = 0;
	char *buf = it_calloc(1, chunk);
	struct it_mxd *a, *b;
	struct pollfd pfd;
	int64_t deadline;
	ssize_t n;

	stall = it_listen(4, 4096, &sport);
	pair(&a, &b, conf("a.conf", 0, "", "connect", link, "",
	    it_fmt("%s%s", it_svc_accept("echo", pe), it_svc_accept("stall",
	    pst))), conf("b.conf", mp, "", "listen", link,
	    "max_buffered = 128k\n", it_fmt("%s%s", it_svc_connect("echo",
	    t->port[IT_ECHO]), it_svc_connect("stall", sport))));
	e = open_echo(pe);

	/*
	 * Push until B holds half as much again as max_buffered for the
	 * stalled channel: what B holds can shrink by what the target's
	 * kernel still takes, and must not fall below the limit before the
	 * new channels ask.
	 */
	k = it_connect(pst);
	ck_assert(k >= 0 && fcntl(k, F_SETFL, O_NONBLOCK) == 0);
	deadline = it_now_ms() + 30000;
	while (it_metric(mp, "mxd_link_buffered_bytes") < 192 * 1024) {
		ck_assert_msg(it_now_ms() < deadline, "B holds %lld bytes",
		    it_metric(mp, "mxd_link_buffered_bytes"));
		it_gen(77, sent, buf, chunk);
		if ((n = send(k, buf, chunk, MSG_NOSIGNAL)) > 0)
			sent += (size_t)n;
		else
			usleep(10000);
	}
	expect_refused(pe, "a channel while B is full");
	expect_refused(pst, "another");
	ck_assert_int_eq(it_metric(mp, REFUSED("max_buffered")), 2);
	ck_assert_int_eq(log_count(b, "link: max_buffered (131072) reached: "
	    "refusing new channels"), 1);
	it_echo(e, "untouched");

	/* The target reads at last: every byte arrives, in order. */
	ck_assert(fcntl(k, F_SETFL, 0) == 0);
	ck_assert(shutdown(k, SHUT_WR) == 0);
	fd = it_accept(stall);
	while ((n = recv(fd, buf, chunk, 0)) > 0) {
		ck_assert_msg(it_verify(77, got, buf, (size_t)n) == -1,
		    "byte %zu differs", got);
		got += (size_t)n;
	}
	ck_assert_msg(n == 0 && got == sent, "got %zu of %zu bytes (%s)", got,
	    sent, n < 0 ? strerror(errno) : "EOF");
	it_close(fd);
	pfd.fd = k;
	pfd.events = POLLIN;
	ck_assert(poll(&pfd, 1, IT_WAIT_MS) == 1 && recv(k, buf, 1, 0) == 0);
	it_close(k);
	ck_assert_int_eq(it_metric_wait(mp, "mxd_link_buffered_bytes", 0,
	    IT_WAIT_MS), 0);
	it_finish_client(open_echo(pe), "echo client");
	it_finish_client(e, "echo client");
	it_close(stall);
	it_finish();
}
END_TEST

/* rate_limit = 2 on A's service: a burst gets two channels, the rest are
 * refused; a second later there are tokens again. */
START_TEST(limit_rate)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), mp = it_free_port();
	int ok = 0, refused = 0, i, lines, e;
	struct it_mxd *a, *b;
	int64_t t0, ms;

	pair(&a, &b, conf("a.conf", mp, "", "connect", link, "",
	    it_fmt("[echo]\naccept = %s:%d\nrate_limit = 2\n", IT_HOST, port)),
	    conf("b.conf", 0, "", "listen", link, "",
	    it_svc_connect("echo", t->port[IT_ECHO])));
	e = open_echo(port);		/* the first of two tokens */
	t0 = it_now_ms();
	for (i = 0; i < 12; i++) {
		if (try_channel(port))
			refused++;
		else
			ok++;
	}
	ms = it_now_ms() - t0;
	/* One token left, and one more each 500 ms. */
	ck_assert_msg(ok >= 1 && ok <= 1 + ms / 500 + 1, "%d of 12 worked "
	    "in %jd ms", ok, (intmax_t)ms);
	ck_assert_int_eq(it_metric(mp, REFUSED("rate_limit")), refused);
	lines = log_count(a, "service echo: rate_limit (2) reached: refusing "
	    "new channels");
	ck_assert_msg(lines >= 1 && lines <= ok, "%d log lines", lines);
	it_echo(e, "untouched");
	usleep(1100000);
	it_finish_client(open_echo(port), "echo client");
	it_finish_client(e, "echo client");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ metrics port */

/* What src/metrics.c allows a client: connections at once, and how long
 * one may be idle. */
#define METRICS_CONNS	32
#define METRICS_IDLE_MS	5000

/* Microseconds one byte takes to come back on echo channel ${fd}. */
static long
rtt_us(int fd)
{
	int64_t t0;
	struct timespec ts;
	char c = 'r';

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	ck_assert(it_send_all(fd, &c, 1) == 0);
	ck_assert_msg(it_recv_wait(fd, &c, 1, IT_WAIT_MS) == 1 && c == 'r',
	    "no echo within %d ms", IT_WAIT_MS);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long)((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 -
	    t0));
}

/* The median of the ${n} values at ${v} (sorted in place). */
static long
median(long *v, int n)
{
	long t;
	int i, j;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
			t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return (v[n / 2]);
}

/* A pair whose A serves metrics on ${mp} and accepts echo channels on
 * ${port}. */
static void
metrics_pair(struct it_mxd **a, struct it_mxd **b, int mp, int port)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port();

	pair(a, b, conf("a.conf", mp, "", "connect", link, "",
	    it_svc_accept("echo", port)), conf("b.conf", 0, "", "listen",
	    link, "", it_svc_connect("echo", t->port[IT_ECHO])));
}

/*
 * A client of the metrics port that sends one endless header line, as fast
 * as mxd takes it, reconnecting whenever mxd closes it, for FLOOD_MS.
 * Meanwhile A's memory stays bounded and its channels answer about as fast
 * as before.  (Before: no limit on the header, so A buffered all of it and
 * scanned it all again for the line's end at every read: VmRSS grew by
 * tens of MB and round trips went from a fraction of a millisecond to
 * hundreds.)
 */
#define FLOOD_MS	4000
#define FLOOD_RSS_KB	(8 * 1024)	/* VmRSS growth allowed */

START_TEST(metrics_endless_header)
{
	int mp = it_free_port(), port = it_free_port(), e, fl = -1, i, n = 0;
	int reconnects = 0, rounds = 0;
	long before[50], during[4000], rss0, rss = 0, r, m0, m1, p90;
	char *junk = it_calloc(1, 65536);
	struct it_mxd *a, *b;
	int64_t deadline;

	metrics_pair(&a, &b, mp, port);
	e = open_echo(port);
	for (i = 0; i < 50; i++)
		before[i] = rtt_us(e);
	m0 = median(before, 50);
	rss0 = it_rss_kb(a->pid);
	memset(junk, 'a', 65536);
	deadline = it_now_ms() + FLOOD_MS;
	while (it_now_ms() < deadline) {
		if (fl < 0) {
			fl = it_connect(mp);
			ck_assert_msg(fl >= 0, "connect: %s", strerror(errno));
			ck_assert(fcntl(fl, F_SETFL, O_NONBLOCK) == 0);
			ck_assert(send(fl, "GET /", 5, MSG_NOSIGNAL) == 5);
		}
		if (send(fl, junk, 65536, MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN) {
			it_close(fl);
			fl = -1;
			reconnects++;
		}
		if (rounds++ % 4 == 0 && n < 4000)
			during[n++] = rtt_us(e);
		if ((r = it_rss_kb(a->pid)) > rss)
			rss = r;
	}
	if (fl >= 0)
		it_close(fl);
	m1 = median(during, n);		/* and sorted */
	p90 = during[n * 9 / 10];
	printf("metrics_endless_header: round trip %ld us before, %ld us "
	    "during (medians; 90th percentile %ld us, %d samples); VmRSS "
	    "%ld -> at most %ld KiB%s; mxd closed the client %d times\n", m0,
	    m1, p90, n, rss0, rss, it_san() ? " [sanitizers: RSS not "
	    "checked]" : "", reconnects);
	/* ASan keeps freed memory in quarantine (up to 256 MiB). */
	if (!it_san())
		ck_assert_msg(rss - rss0 <= FLOOD_RSS_KB, "VmRSS grew from "
		    "%ld to %ld KiB", rss0, rss);
	ck_assert_msg(p90 <= 10 * m0 + 2000, "round trips took up to %ld us "
	    "(90th percentile) during the flood, %ld us before", p90, m0);
	ck_assert_msg(reconnects > 0, "mxd never closed the endless header");
	it_finish_client(e, "echo client");
	it_finish();
}
END_TEST

/* Nonzero if ${fd} (nonblocking) has seen EOF or a reset. */
static int
closed_by_peer(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

	return (n == 0 || (n < 0 && errno != EAGAIN));
}

/* Clients of ${fd} (${n} of them) closed by the other side. */
static int
count_closed(const int *fd, int n)
{
	int i, k = 0;

	for (i = 0; i < n; i++)
		k += closed_by_peer(fd[i]);
	return (k);
}

/*
 * 500 idle connections to the metrics port: mxd holds at most
 * METRICS_CONNS of them (the oldest make room for the newest), a scrape
 * still works meanwhile, and every one is closed once idle for
 * METRICS_IDLE_MS.  (Before: all 500 held, with a descriptor each, for as
 * long as the client liked.)
 */
#define IDLE_CLIENTS	500

START_TEST(metrics_idle_connections)
{
	int mp = it_free_port(), port = it_free_port(), i, base, k = 0;
	int *fd = it_calloc(IDLE_CLIENTS, sizeof(int));
	struct it_mxd *a, *b;
	int64_t deadline;
	char *body;

	metrics_pair(&a, &b, mp, port);
	body = it_http_get(mp, "/healthz");
	base = it_fd_settled(a);
	for (i = 0; i < IDLE_CLIENTS; i++) {
		fd[i] = it_connect(mp);
		ck_assert_msg(fd[i] >= 0, "client %d: connect: %s", i,
		    strerror(errno));
	}
	/* All accepted once all but METRICS_CONNS were closed. */
	deadline = it_now_ms() + IT_WAIT_MS;
	while ((k = count_closed(fd, IDLE_CLIENTS)) < IDLE_CLIENTS -
	    METRICS_CONNS && it_now_ms() < deadline)
		usleep(20000);
	ck_assert_msg(k == IDLE_CLIENTS - METRICS_CONNS, "%d of %d idle "
	    "clients closed, expected %d", k, IDLE_CLIENTS,
	    IDLE_CLIENTS - METRICS_CONNS);
	ck_assert_int_eq(it_fd_wait(a->pid, base + METRICS_CONNS, IT_WAIT_MS),
	    base + METRICS_CONNS);
	body = it_http_get(mp, "/healthz");
	ck_assert_msg(strstr(body, " 200 ") != NULL && strstr(body,
	    "Content-Type: text/plain") != NULL, "/healthz beside %d idle "
	    "clients: %s", METRICS_CONNS, body);
	/* The rest go once idle for METRICS_IDLE_MS. */
	ck_assert_int_eq(it_fd_wait(a->pid, base, METRICS_IDLE_MS + 3000),
	    base);
	ck_assert_int_eq(count_closed(fd, IDLE_CLIENTS), IDLE_CLIENTS);
	printf("metrics_idle_connections: %d clients: %d closed at once, "
	    "%d held (%d descriptors), all closed within %d ms idle\n",
	    IDLE_CLIENTS, k, METRICS_CONNS, base + METRICS_CONNS,
	    METRICS_IDLE_MS + 3000);
	for (i = 0; i < IDLE_CLIENTS; i++)
		it_close(fd[i]);
	it_finish();
}
END_TEST

/* metrics = an address in use: mxd says why it cannot listen. */
START_TEST(metrics_cannot_listen)
{
	int mp, lfd = it_listen(1, 0, &mp);
	const char *path = conf("m.conf", mp, "", "listen", it_free_port(), "",
	    "");
	struct it_mxd *m = it_mxd_start(path);

	it_mxd_wait_log(m, it_fmt("metrics: cannot listen on %s:%d: Address "
	    "already in use", IT_HOST, mp), IT_WAIT_MS);
	ck_assert_msg(it_mxd_wait_exit(m, IT_WAIT_MS) != -1, "mxd did not "
	    "exit");
	it_close(lfd);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ log floods */

/*
 * What a remote party can have logged as often as it likes is rate limited
 * (src/log.h): per kind and reason a few lines per 10 s window, then one
 * summary for the rest, "KIND ... and N more like it in the last 10 s".
 */
#define LIMIT_WINDOW_MS	10000
#define LINK_FLOOD_MS	3000

/* The number at ${s}, thousands separators and all; *${end} after it. */
static uint64_t
parse_count(const char *s, const char **end)
{
	uint64_t n = 0;

	for (; (*s >= '0' && *s <= '9') || *s == ','; s++)
		if (*s != ',')
			n = n * 10 + (uint64_t)(*s - '0');
	*end = s;
	return (n);
}

/*
 * Lines of a rate-limited kind in ${m}'s log: each line holding ${line}
 * (and not ${unless}, unless NULL) counts one, each summary starting with
 * ${label} the number it gives.  The summaries' count goes to
 * *${summaries}.
 */
static uint64_t
limited_count(struct it_mxd *m, const char *line, const char *unless,
    const char *label, int *summaries)
{
	const char *want = it_fmt("%s ... and ", label), *end;
	char buf[2048], *p;
	uint64_t n = 0;
	FILE *f;

	*summaries = 0;
	ck_assert_msg((f = fopen(m->log, "r")) != NULL, "%s: %s", m->log,
	    strerror(errno));
	while (fgets(buf, sizeof(buf), f) != NULL) {
		if ((p = strstr(buf, want)) != NULL) {
			n += parse_count(p + strlen(want), &end);
			ck_assert_msg(strncmp(end, " more like it in the last "
			    "10 s\n", 31) == 0, "%s: a summary reads: %s",
			    m->log, buf);
			(*summaries)++;
		} else if (strstr(buf, line) != NULL && (unless == NULL ||
		    strstr(buf, unless) == NULL)) {
			n++;
		}
	}
	fclose(f);
	return (n);
}

/* Lines an operator sees in ${m}'s whole log: info and above. */
static int
shown_lines(struct it_mxd *m)
{

	return (log_count(m, " mxd info: ") + log_count(m, " mxd warn: ") +
	    log_count(m, " mxd error: "));
}

/*
 * Connect to ${port} and close, again and again for ${ms}, with every
 * other connection sending an HTTP request first.  FLOOD_FDS connections
 * are under way at a time, each until mxd has closed its end: a client
 * that did not wait would soon have the listen queue (16) full and its
 * connects dropped.  Returns how many were made; once the time is up,
 * those under way are finished.
 */
#define FLOOD_FDS	8

static int
connect_flood(int port, int ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int64_t stop = it_now_ms() + ms, deadline = stop + IT_WAIT_MS;
	struct pollfd pfd[FLOOD_FDS];
	int n = 0, busy = 0, i, err;
	socklen_t len = sizeof(err);
	char buf[512];

	sin.sin_port = htons((uint16_t)port);
	ck_assert(inet_pton(AF_INET, IT_HOST, &sin.sin_addr) == 1);
	for (i = 0; i < FLOOD_FDS; i++)
		pfd[i].fd = -1;
	while ((it_now_ms() < stop || busy > 0) && it_now_ms() < deadline) {
		for (i = 0; i < FLOOD_FDS && it_now_ms() < stop; i++) {
			if (pfd[i].fd >= 0)
				continue;
			pfd[i].fd = socket(AF_INET, SOCK_STREAM |
			    SOCK_NONBLOCK, 0);
			ck_assert_msg(pfd[i].fd >= 0, "socket: %s",
			    strerror(errno));
			ck_assert_msg(connect(pfd[i].fd, (struct sockaddr *)&sin,
			    sizeof(sin)) == 0 || errno == EINPROGRESS,
			    "connect: %s", strerror(errno));
			pfd[i].events = POLLOUT;
			busy++;
		}
		ck_assert(poll(pfd, FLOOD_FDS, 100) >= 0);
		for (i = 0; i < FLOOD_FDS; i++) {
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			if (pfd[i].events == POLLOUT) {
				/* Connected: the request, then our end. */
				ck_assert(getsockopt(pfd[i].fd, SOL_SOCKET,
				    SO_ERROR, &err, &len) == 0);
				ck_assert_msg(err == 0, "connect: %s",
				    strerror(err));
				if (n++ % 2 == 1)
					(void)send(pfd[i].fd, BYTES("GET / "
					    "HTTP/1.1\r\n\r\n"), MSG_NOSIGNAL);
				(void)shutdown(pfd[i].fd, SHUT_WR);
				pfd[i].events = POLLIN;
			} else if (recv(pfd[i].fd, buf, sizeof(buf), 0) <= 0) {
				close(pfd[i].fd);	/* mxd closed its end */
				pfd[i].fd = -1;
				busy--;
			}
		}
	}
	ck_assert_msg(busy == 0, "%d connections still open", busy);
	return (n);
}

/*
 * A client loops connect/close (and an HTTP request every other time) on
 * B's link port beside a working link, plain (_i 0) and TLS (_i 1): B
 * writes a bounded number of lines, and summaries account for every
 * connection: over TLS each one is refused once (as counted in
 * mxd_link_tls_refused_total); plain, each waits to replace the link (or
 * is closed at once: 16 wait already) and is closed.  The link works
 * throughout.  (Before: a line or two per connection.)
 */
START_TEST(link_port_flood)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), mp = it_free_port();
	int n, e, s1, s2, s3, lines0, lines, done = 0;
	const char *tls_a = "", *tls_b = "";
	uint64_t waited = 0, full = 0, closed = 0;
	struct it_mxd *a, *b;
	int64_t deadline;

	if (_i) {
		it_make_certs();
		tls_a = it_tls_link("a");
		tls_b = it_tls_link("b");
	}
	pair(&a, &b, conf("a.conf", 0, "", "connect", link, tls_a,
	    it_svc_accept("echo", port)), conf("b.conf", mp, "", "listen",
	    link, tls_b, it_svc_connect("echo", t->port[IT_ECHO])));
	e = open_echo(port);
	lines0 = shown_lines(b);
	n = connect_flood(link, LINK_FLOOD_MS);
	it_echo(e, "after the flood");
	/* Complete once the window's summaries are out. */
	deadline = it_now_ms() + LIMIT_WINDOW_MS + 5000;
	while (!done && it_now_ms() < deadline) {
		if (_i) {
			waited = limited_count(b, "TLS refused: ", NULL,
			    "link: TLS refused", &s1);
			done = waited == (uint64_t)n;
		} else {
			waited = limited_count(b, "replaces it once it answers "
			    "a ping", NULL, "link: a new link replaces it once "
			    "it answers a ping", &s1);
			full = limited_count(b, "connections already wait to "
			    "replace the link", NULL, "link: closed: connections "
			    "already wait to replace the link", &s2);
			closed = limited_count(b, ": closed: ",
			    "connections already wait", "link: closed", &s3);
			done = waited + full == (uint64_t)n && closed == waited;
		}
		if (!done)
			usleep(100000);
	}
	lines = shown_lines(b) - lines0;
	printf("link_port_flood%s: %d connections in %d ms: B wrote %d lines "
	    "(%ju %s, %ju closed at once, %ju closed)\n", _i ? " (TLS)" : "",
	    n, LINK_FLOOD_MS, lines, (uintmax_t)waited, _i ? "refused" :
	    "waited to replace the link", (uintmax_t)full, (uintmax_t)closed);
	ck_assert_msg(n >= 100, "only %d connections in %d ms", n,
	    LINK_FLOOD_MS);
	ck_assert_msg(lines <= 40, "B wrote %d lines for %d connections",
	    lines, n);
	ck_assert_msg(done, "B's lines and summaries account for %ju + %ju "
	    "connections of %d, %ju closed", (uintmax_t)waited,
	    (uintmax_t)full, n, (uintmax_t)closed);
	if (_i)
		ck_assert_int_eq(it_metric(mp, "mxd_link_tls_refused_total"), n);
	it_echo(e, "at the end");
	it_finish_client(e, "echo client");
	it_finish();
}
END_TEST

/* tp_pump: done once mxd has reset ${arg} (a uint64_t) streams of ${tp}. */
static int
resets_reached(struct tp *tp, void *arg)
{

	return (tp->resets >= *(uint64_t *)arg);
}

/* Malformed streams, each reset by B, of the kinds of flood_kinds[]. */
static const struct flood_kind {
	const char	*bytes;
	size_t		len;
	int		fin;
	const char	*line, *label;	/* in B's log */
} flood_kinds[] = {
	{ BYTES("\x00\x00\x00ping"), 0, "malformed service header: reset",
	    "channel: malformed service header" },
	{ BYTES("\x04" "nope" "\x00\x00ping"), 0, "which has no connect "
	    "here: reset", "channel: the peer asked for a service which has "
	    "no connect here" },
	{ BYTES("\xff" "echo"), 1, "stream ended inside its service header: "
	    "reset", "channel: stream ended inside its service header" },
};
#define NFLOOD_KINDS	(sizeof(flood_kinds) / sizeof(flood_kinds[0]))
#define FLOOD_STREAMS	1500	/* of each kind */

/*
 * A hostile peer opens malformed streams, FLOOD_STREAMS of each kind in
 * flood_kinds[]: B resets each, writes a bounded number of lines, and the
 * summaries account for every stream.  (Before: a line per stream.)
 */
START_TEST(malformed_streams_flood)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), lines0, lines, s, done = 0;
	uint64_t opened = 0, n[NFLOOD_KINDS];
	struct it_mxd *b;
	struct tp *tp;
	int64_t deadline;
	size_t i, k;

	b = it_mxd_start(conf("b.conf", 0, "", "listen", link, "",
	    it_svc_connect("echo", t->port[IT_ECHO])));
	it_mxd_wait_log(b, "link: waiting for the peer", IT_WAIT_MS);
	tp = tp_connect(link);
	tp_wait_up(tp, b);
	lines0 = shown_lines(b);
	/* A hundred at a time: within the engine's backlog of opens. */
	for (i = 0; i < FLOOD_STREAMS * NFLOOD_KINDS; i += 100) {
		for (k = 0; k < 100; k++) {
			const struct flood_kind *fk = &flood_kinds[(i + k) %
			    NFLOOD_KINDS];

			(void)tp_open(tp, fk->bytes, fk->len, fk->fin);
		}
		opened += 100;
		ck_assert_msg(tp_pump(tp, IT_WAIT_MS, resets_reached,
		    &opened) == 1, "%ju of %ju streams reset",
		    (uintmax_t)tp->resets, (uintmax_t)opened);
	}
	deadline = it_now_ms() + LIMIT_WINDOW_MS + 5000;
	while (!done && it_now_ms() < deadline) {
		for (k = 0, done = 1; k < NFLOOD_KINDS; k++) {
			n[k] = limited_count(b, flood_kinds[k].line, NULL,
			    flood_kinds[k].label, &s);
			done &= n[k] == FLOOD_STREAMS;
		}
		if (!done)
			usleep(100000);
	}
	lines = shown_lines(b) - lines0;
	printf("malformed_streams_flood: %ju streams reset; B wrote %d lines "
	    "(%ju, %ju, %ju of each kind accounted for)\n", (uintmax_t)opened,
	    lines, (uintmax_t)n[0], (uintmax_t)n[1], (uintmax_t)n[2]);
	ck_assert_msg(lines <= 30, "B wrote %d lines for %ju streams", lines,
	    (uintmax_t)opened);
	ck_assert_msg(done, "B's lines and summaries account for %ju, %ju, "
	    "%ju streams of %d of each kind", (uintmax_t)n[0],
	    (uintmax_t)n[1], (uintmax_t)n[2], FLOOD_STREAMS);
	tp_free(tp);
	it_finish();
}
END_TEST

/* Clients of ${port}, ${n} of them, 200 at a time: each must be reset (or
 * see EOF) without a byte. */
static void
refused_clients(int port, int n)
{
	int fd[200], i, k, done;
	char c;
	long r;

	for (done = 0; done < n; done += k) {
		k = n - done < 200 ? n - done : 200;
		for (i = 0; i < k; i++) {
			fd[i] = it_connect(port);
			/* The reset can beat connect() back. */
			ck_assert_msg(fd[i] >= 0 || errno == ECONNRESET,
			    "connect: %s", strerror(errno));
		}
		for (i = 0; i < k; i++) {
			if (fd[i] < 0)
				continue;
			r = it_recv_wait(fd[i], &c, 1, RESET_MS);
			ck_assert_msg(r == 0 || r == -ECONNRESET, "client %d: "
			    "expected a reset, got %ld", done + i, r);
			it_close(fd[i]);
		}
	}
}

#define DOWN_CHANNELS	10000

/*
 * DOWN_CHANNELS channels to a target that is down: B, which cannot connect
 * them, writes a bounded number of lines, and the summaries account for
 * every channel.  (Before: a line per channel.)
 */
START_TEST(target_down_flood)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), lines0, lines, s;
	struct it_mxd *a, *b;
	int64_t deadline, t0, ms;
	uint64_t n = 0;

	pair(&a, &b, conf("a.conf", 0, "", "connect", link, "",
	    it_svc_accept("echo", port)), conf("b.conf", 0, "", "listen",
	    link, "", it_svc_connect("echo", t->refused)));
	lines0 = shown_lines(b);
	t0 = it_now_ms();
	refused_clients(port, DOWN_CHANNELS);
	ms = it_now_ms() - t0;
	deadline = it_now_ms() + LIMIT_WINDOW_MS + 5000;
	while ((n = limited_count(b, it_fmt("target %s:%d: Connection refused",
	    IT_HOST, t->refused), NULL, "service: cannot connect to the target",
	    &s)) != DOWN_CHANNELS && it_now_ms() < deadline)
		usleep(100000);
	lines = shown_lines(b) - lines0;
	printf("target_down_flood: %d channels refused in %jd ms: B wrote %d "
	    "lines (%ju channels accounted for in %d summaries)\n",
	    DOWN_CHANNELS, (intmax_t)ms, lines, (uintmax_t)n, s);
	ck_assert_msg(lines <= 20, "B wrote %d lines for %d channels", lines,
	    DOWN_CHANNELS);
	ck_assert_msg(n == DOWN_CHANNELS, "B's lines and summaries account "
	    "for %ju channels of %d", (uintmax_t)n, DOWN_CHANNELS);
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ descriptors */

/* The lowest descriptor number ${pid} does not use. */
static int
lowest_free_fd(pid_t pid)
{
	char used[4096] = { 0 };
	struct dirent *de;
	DIR *d;
	int fd;

	ck_assert((d = opendir(it_fmt("/proc/%d/fd", (int)pid))) != NULL);
	while ((de = readdir(d)) != NULL)
		if ((fd = atoi(de->d_name)) >= 0 && fd < (int)sizeof(used) &&
		    de->d_name[0] != '.')
			used[fd] = 1;
	closedir(d);
	for (fd = 0; fd < (int)sizeof(used) && used[fd]; fd++)
		continue;
	ck_assert_msg(fd < (int)sizeof(used), "pid %d: no free descriptor "
	    "below %zu", (int)pid, sizeof(used));
	return (fd);
}

/* Set the soft descriptor limit of ${pid} to ${n}. */
static void
set_nofile(pid_t pid, rlim_t n)
{
	struct rlimit rl;

	ck_assert(prlimit(pid, RLIMIT_NOFILE, NULL, &rl) == 0);
	rl.rlim_cur = n;
	ck_assert_msg(prlimit(pid, RLIMIT_NOFILE, &rl, NULL) == 0,
	    "prlimit: %s", strerror(errno));
}

/*
 * A reload while a service's accepts are paused (out of descriptors) keeps
 * the pause's timer with the listener: once descriptors are free the
 * service accepts again.  (Before, the new service object got the paused
 * listener and the old one took the timer that would resume it along when
 * it went: the service never accepted again.)
 */
START_TEST(reload_during_accept_pause)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), port = it_free_port(), e, q, low;
	const char *aconf;
	struct rlimit rl;
	struct it_mxd *a, *b;
	char c;

	aconf = conf("a.conf", 0, "", "connect", link, "",
	    it_svc_accept("echo", port));
	pair(&a, &b, aconf, conf("b.conf", 0, "", "listen", link, "",
	    it_svc_connect("echo", t->port[IT_ECHO])));
	e = open_echo(port);
	ck_assert(prlimit(a->pid, RLIMIT_NOFILE, NULL, &rl) == 0);

	/* No descriptor left below the limit: the next client waits in the
	 * listen queue while accepts pause. */
	low = lowest_free_fd(a->pid);
	set_nofile(a->pid, (rlim_t)low);
	q = it_connect(port);
	ck_assert_msg(q >= 0, "connect: %s", strerror(errno));
	ck_assert(it_send_all(q, "x", 1) == 0);
	it_mxd_wait_log(a, "service echo: accept: Too many open files: "
	    "pausing accepts until descriptors free up", IT_WAIT_MS);

	/* Room to read the file, and a reload within the pause of 100 ms
	 * (the test acts as soon as the line is there; should the pause end
	 * first, the reload merely comes too late to matter). */
	set_nofile(a->pid, (rlim_t)low + 2);
	it_mxd_signal(a, SIGHUP);
	it_mxd_wait_log(a, "reloaded", IT_WAIT_MS);
	ck_assert_msg(it_recv_wait(q, &c, 1, IT_WAIT_MS) == 1 && c == 'x',
	    "the waiting client was not served after the reload: the "
	    "service's accepts stayed paused");
	it_finish_client(q, "waiting client");
	set_nofile(a->pid, rl.rlim_cur);
	it_finish_client(open_echo(port), "echo client");
	it_echo(e, "untouched");
	it_finish_client(e, "echo client");
	it_finish();
}
END_TEST

/* ------------------------------------------------------------ user */

/* The value of line ${key} ("Uid:", ...) of /proc/${pid}/status. */
static char *
proc_status(pid_t pid, const char *key)
{
	char line[512];
	char *v = NULL;
	FILE *f;

	f = fopen(it_fmt("/proc/%d/status", (int)pid), "r");
	ck_assert(f != NULL);
	while (v == NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0)
			v = it_fmt("%s", line + strlen(key));
	fclose(f);
	ck_assert_msg(v != NULL, "no %s in /proc/%d/status", key, (int)pid);
	return (v);
}

/* Started as root with user = nobody, mxd ends up nobody for good, once
 * its listeners are bound, and still works. */
START_TEST(drop_privileges)
{
	struct passwd *pw = getpwnam("nobody");
	int link = it_free_port(), port = it_free_port(), ng = 64, i, nin = 0;
	struct it_targets *t;
	struct it_mxd *a, *b;
	gid_t groups[64];
	char *want, *tok;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0 || pw == NULL) {
		printf("drop_privileges: skipped (not root, or no user "
		    "nobody)\n");
		it_finish();
		return;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	ck_assert(getgrouplist("nobody", gid, groups, &ng) >= 0);
	t = it_targets_start();
	pair(&a, &b, conf("a.conf", 0, "", "connect", link, "",
	    it_svc_accept("echo", port)), conf("b.conf", 0, "user = nobody\n",
	    "listen", link, "", it_svc_connect("echo", t->port[IT_ECHO])));
	it_mxd_wait_log(b, it_fmt("running as user nobody (uid %u, gid %u)",
	    (unsigned)uid, (unsigned)gid), IT_WAIT_MS);
	want = it_fmt("\t%u\t%u\t%u\t%u\n", (unsigned)uid, (unsigned)uid,
	    (unsigned)uid, (unsigned)uid);
	ck_assert_str_eq(proc_status(b->pid, "Uid:"), want);
	want = it_fmt("\t%u\t%u\t%u\t%u\n", (unsigned)gid, (unsigned)gid,
	    (unsigned)gid, (unsigned)gid);
	ck_assert_str_eq(proc_status(b->pid, "Gid:"), want);
	/* Exactly nobody's groups. */
	want = proc_status(b->pid, "Groups:");
	for (tok = strtok(want, " \t\n"); tok != NULL;
	    tok = strtok(NULL, " \t\n")) {
		for (i = 0; i < ng && groups[i] != (gid_t)atol(tok); i++)
			continue;
		ck_assert_msg(i < ng, "in group %s", tok);
		nin++;
	}
	ck_assert_int_eq(nin, ng);
	ck_assert_str_eq(proc_status(b->pid, "CapEff:"),
	    "\t0000000000000000\n");
	it_finish_client(open_echo(port), "echo client");
	it_finish();
}
END_TEST

/* mxd -t knows when [daemon] user names nobody at all. */
START_TEST(unknown_user)
{
	const char *path = conf("u.conf", 0, "user = no-such-user-mxd\n",
	    "listen", 1, "", "");
	const char *args[] = { "-t", "-c", path, NULL };
	char *out, *err, *want;
	int st;

	st = it_run_mxd(args, &out, &err, IT_WAIT_MS);
	want = it_fmt("mxd: %s: [daemon] user: no such user "
	    "\"no-such-user-mxd\"\n", path);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
	    strcmp(err, want) == 0, "status %#x, stderr \"%s\"", st, err);
	it_finish();
}
END_TEST

static Suite *
limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *t = tcase_create("limits");

	tcase_set_timeout(t, 120);
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	IT_ADD(t, no_open_proxy);
	IT_ADD_LOOP(t, proxy_protocol, 2);
	IT_ADD_LOOP(t, limit_max_channels, 2);
	IT_ADD(t, limit_max_pending_connects);
	IT_ADD(t, limit_max_buffered);
	IT_ADD(t, limit_rate);
	IT_ADD(t, reload_during_accept_pause);
	IT_ADD(t, metrics_endless_header);
	IT_ADD(t, metrics_idle_connections);
	IT_ADD(t, metrics_cannot_listen);
	IT_ADD_LOOP(t, link_port_flood, 2);
	IT_ADD(t, malformed_streams_flood);
	IT_ADD(t, target_down_flood);
	IT_ADD(t, drop_privileges);
	IT_ADD(t, unknown_user);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{

	return (it_main(limits_suite()));
}
