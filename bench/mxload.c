/*
 * mxload: a lean load generator and the targets for mxd's demo and
 * benchmarks.  One thread, epoll, non-blocking sockets, large reads and
 * writes from one static pattern; nothing is hashed on the hot path: data
 * is counted, and checked by a running Fletcher sum of 64-bit words (two
 * additions per 8 bytes) compared at the end.
 *
 * Targets:
 *   mxload serve [-b ADDR] [SINK ECHO SOURCE]
 *	one process serving three targets on ADDR (default 127.0.0.1) and the
 *	given ports (default 0: any free port).  Prints one line
 *	"sink=P echo=P source=P" on stdout, then serves until killed.
 *	  sink:   reads an 8-byte big-endian length N, then N bytes; answers
 *	          24 bytes: N and the two halves of the sum (big-endian).
 *	  echo:   echoes every byte; half-closes after the client's EOF.
 *	  source: reads an 8-byte big-endian length N, sends N pattern bytes,
 *	          half-closes.
 *   mxload echo PORT
 *	only the echo target, on 127.0.0.1:PORT.
 *
 * Clients (each prints one line of key=value pairs; exit 0 if all went well,
 * 1 if some data was lost or wrong, 2 on a usage or system error):
 *   mxload bulk HOST:PORT CONNS BYTES
 *	CONNS connections at once to a sink, BYTES each: MB/s overall.
 *   mxload rate HOST:PORT COUNT INFLIGHT
 *	COUNT connections to an echo target, at most INFLIGHT at once; each
 *	sends "hello", reads it back and closes: conns/s, p50/p99 latency.
 *   mxload hol ECHO_HOST:PORT SOURCE_HOST:PORT|- SECS [INTERVAL_US [WARM_MS]]
 *	64-byte echo round trips on one connection, one every INTERVAL_US
 *	(default 1000), for SECS after WARM_MS (default 300) of warm-up; with
 *	a source address, another connection downloads from the source at
 *	full speed meanwhile: p50/p99/max round trip, bulk MB/s.
 *   mxload idle HOST:PORT COUNT [INFLIGHT]
 *	opens COUNT connections to an echo target (one "hello" round trip
 *	each), prints "ready ...", holds them until SIGTERM/SIGINT, then
 *	closes them and prints how many were dropped meanwhile.
 *   mxload conns HOST:PORT COUNT INFLIGHT SIZE
 *	COUNT connections to an echo target, at most INFLIGHT at once; each
 *	sends SIZE bytes, half-closes, reads the echo back to EOF, checks it.
 *   mxload freeport [N]
 *	prints N (default 1) TCP ports free right now on every address,
 *	outside the ephemeral port range.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define MAXEV		256
#define RDBUF		(256 * 1024)	/* one read */
#define PAT		(1024 * 1024)	/* pattern period; also one write */
#define PINGSZ		64
#define SRC_CHUNK	(256 * 1024)	/* one send of the source */
#define STALL_MS	30000		/* no progress for this long: fail */

/* Every epoll registration starts with one of these. */
struct handler {
	void	(*fn)(struct handler *, uint32_t);
};

static int ep;
static unsigned char *pat;		/* 2 * PAT: the pattern, twice */
static unsigned char rdbuf[RDBUF];
static volatile sig_atomic_t stop;

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

static void __attribute__((noreturn))
die(const char *what)
{

	fprintf(stderr, "mxload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void __attribute__((noreturn))
usage(void)
{

	fprintf(stderr,
	    "usage: mxload serve [-b ADDR] [SINK ECHO SOURCE]\n"
	    "       mxload echo PORT\n"
	    "       mxload bulk HOST:PORT CONNS BYTES\n"
	    "       mxload rate HOST:PORT COUNT INFLIGHT\n"
	    "       mxload hol ECHO_ADDR SOURCE_ADDR|- SECS [INTERVAL_US "
	    "[WARM_MS]]\n"
	    "       mxload idle HOST:PORT COUNT [INFLIGHT]\n"
	    "       mxload conns HOST:PORT COUNT INFLIGHT SIZE\n"
	    "       mxload freeport [N]\n");
	exit(2);
}

static void
nofile_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static double
cpu_secs(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
}

static long
num(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < 0)
		usage();
	return (v);
}

static void
ep_add(int fd, uint32_t events, struct handler *h)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = h;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl");
}

static void
ep_mod(int fd, uint32_t events, struct handler *h)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = h;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == -1)
		die("epoll_ctl");
}

/* Close ${fd} with RST (as a failed or aborted connection). */
static void
close_rst(int fd)
{
	struct linger lg = { 1, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Run the loop once; returns the number of events handled. */
static int
loop_once(int timeout_ms)
{
	struct epoll_event evs[MAXEV];
	struct handler *h;
	int i, n;

	if ((n = epoll_wait(ep, evs, MAXEV, timeout_ms)) < 0) {
		if (errno == EINTR)
			return (0);
		die("epoll_wait");
	}
	for (i = 0; i < n; i++) {
		h = evs[i].data.ptr;
		h->fn(h, evs[i].events);
	}
	return (n);
}

/* A non-blocking connection to ${sin} in progress. */
static int
connect_to(const struct sockaddr_in *sin)
{
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		die("socket");
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) &&
	    errno != EINPROGRESS)
		die("connect");
	return (fd);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* Percentile ${p} (0..100) of sorted ${v}[${n}]. */
static uint64_t
pct(const uint64_t *v, size_t n, unsigned p)
{
	size_t i;

	if (n == 0)
		return (0);
	i = (size_t)((n * (uint64_t)p + 99) / 100);
	return (v[i == 0 ? 0 : i - 1]);
}

/* A growing array of latency samples. */
struct samples {
	uint64_t	*v;
	size_t		n, cap;
};

static void
sample(struct samples *s, uint64_t x)
{

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		if ((s->v = realloc(s->v, s->cap * sizeof(*s->v))) == NULL)
			die("realloc");
	}
	s->v[s->n++] = x;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (v);
}

/* ---- pattern and sum ---- */

/* The data every stream carries: pattern byte (offset % PAT). */
static void
pattern_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	if ((pat = malloc(2 * PAT)) == NULL)
		die("malloc");
	for (i = 0; i < PAT; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pat[i] = (unsigned char)(x >> 24);
	}
	memcpy(pat + PAT, pat, PAT);
}

/* Fletcher-style sum of the 64-bit words at stream offsets 0, 8, 16... */
struct csum {
	uint64_t	a, b;
	uint64_t	pw;		/* partial word */
	unsigned	pn;		/* its bytes */
};

static void
csum_add(struct csum *c, const unsigned char *p, size_t n)
{
	uint64_t a = c->a, b = c->b, w;

	while (c->pn > 0 && n > 0) {
		c->pw |= (uint64_t)*p++ << (8 * c->pn);
		n--;
		if (++c->pn == 8) {
			a += c->pw;
			b += a;
			c->pw = 0;
			c->pn = 0;
		}
	}
	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		a += w;
		b += a;
	}
	if (n > 0 && c->pn == 0) {
		c->pw = 0;
		while (n-- > 0)
			c->pw |= (uint64_t)*p++ << (8 * c->pn++);
	}
	c->a = a;
	c->b = b;
}

/* The partial word, zero-padded, counts too. */
static void
csum_final(struct csum *c)
{

	if (c->pn > 0) {
		c->a += c->pw;
		c->b += c->a;
		c->pw = 0;
		c->pn = 0;
	}
}

/* The sum of the first ${len} bytes of the pattern stream. */
static void
csum_expect(uint64_t len, struct csum *out)
{
	static struct csum one;
	static int have;
	uint64_t k;

	if (!have) {
		csum_add(&one, pat, PAT);
		have = 1;
	}
	memset(out, 0, sizeof(*out));
	for (k = len / PAT; k > 0; k--) {
		out->b += (PAT / 8) * out->a + one.b;
		out->a += one.a;
	}
	csum_add(out, pat, (size_t)(len % PAT));
	csum_final(out);
}

/* ---- targets ---- */

struct listener {
	struct handler	h;
	int		fd;
	void		(*accepted)(int);
};

struct sink {
	struct handler	h;
	int		fd;
	unsigned char	hdr[24];	/* length in; the answer out */
	unsigned	hn;
	int		answered;
	uint64_t	want, got;
	struct csum	cs;
};

struct echo {
	struct handler	h;
	int		fd;
	int		rd_eof;
	unsigned char	*pend;		/* unwritten echo; reading waits */
	size_t		plen, poff;
};

struct source {
	struct handler	h;
	int		fd;
	unsigned char	hdr[8];
	unsigned	hn;
	int		done;		/* all sent, half-closed */
	uint64_t	want, sent;
};

static void
sink_free(struct sink *c, int rst)
{

	if (rst)
		close_rst(c->fd);
	else
		close(c->fd);
	free(c);
}

static void
sink_cb(struct handler *h, uint32_t events)
{
	struct sink *c = (struct sink *)h;
	unsigned char *p;
	uint64_t take;
	ssize_t n;
	size_t k;
	int i;

	(void)events;
	for (i = 0; i < 8; i++) {
		if ((n = recv(c->fd, rdbuf, RDBUF, 0)) < 0) {
			if (errno == EAGAIN)
				return;
			sink_free(c, 1);
			return;
		}
		if (n == 0) {
			sink_free(c, !c->answered);
			return;
		}
		p = rdbuf;
		k = (size_t)n;
		if (c->answered)
			continue;		/* anything after: ignored */
		if (c->hn < 8) {
			while (c->hn < 8 && k > 0) {
				c->hdr[c->hn++] = *p++;
				k--;
			}
			if (c->hn == 8)
				c->want = get_be64(c->hdr);
		}
		take = c->want - c->got;
		if (k > take) {
			fprintf(stderr, "mxload: sink: %ju bytes past the "
			    "announced %ju\n", (uintmax_t)(k - take),
			    (uintmax_t)c->want);
			sink_free(c, 1);
			return;
		}
		csum_add(&c->cs, p, k);
		c->got += k;
		if (c->hn == 8 && c->got == c->want) {
			csum_final(&c->cs);
			put_be64(c->hdr, c->got);
			put_be64(c->hdr + 8, c->cs.a);
			put_be64(c->hdr + 16, c->cs.b);
			/* 24 bytes into an empty send buffer. */
			if (send(c->fd, c->hdr, 24, MSG_NOSIGNAL) != 24) {
				sink_free(c, 1);
				return;
			}
			c->answered = 1;
		}
	}
}

static void
echo_free(struct echo *c)
{

	close(c->fd);
	free(c->pend);
	free(c);
}

static void
echo_cb(struct handler *h, uint32_t events)
{
	struct echo *c = (struct echo *)h;
	ssize_t n, w;
	int i;

	(void)events;
	if (c->pend != NULL) {
		w = send(c->fd, c->pend + c->poff, c->plen - c->poff,
		    MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) {
			echo_free(c);
			return;
		}
		c->poff += (size_t)w;
		if (c->poff < c->plen)
			return;
		free(c->pend);
		c->pend = NULL;
		if (c->rd_eof) {
			echo_free(c);
			return;
		}
		ep_mod(c->fd, EPOLLIN, &c->h);
	}
	for (i = 0; i < 8; i++) {
		if ((n = recv(c->fd, rdbuf, RDBUF, 0)) < 0) {
			if (errno == EAGAIN)
				return;
			echo_free(c);
			return;
		}
		if (n == 0) {
			shutdown(c->fd, SHUT_WR);
			echo_free(c);
			return;
		}
		w = send(c->fd, rdbuf, (size_t)n, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			w = 0;
		if (w < 0) {
			echo_free(c);
			return;
		}
		if (w < n) {
			c->plen = (size_t)(n - w);
			c->poff = 0;
			if ((c->pend = malloc(c->plen)) == NULL)
				die("malloc");
			memcpy(c->pend, rdbuf + w, c->plen);
			ep_mod(c->fd, EPOLLOUT, &c->h);
			return;
		}
	}
}

static void
source_cb(struct handler *h, uint32_t events)
{
	struct source *c = (struct source *)h;
	uint64_t left;
	ssize_t n;

	(void)events;
	if (c->hn < 8 || c->done) {
		if ((n = recv(c->fd, c->done ? rdbuf : c->hdr + c->hn,
		    c->done ? RDBUF : 8 - c->hn, 0)) < 0) {
			if (errno == EAGAIN)
				return;
			close_rst(c->fd);
			free(c);
			return;
		}
		if (n == 0) {
			if (c->done)
				close(c->fd);
			else
				close_rst(c->fd);
			free(c);
			return;
		}
		if (c->done)
			return;
		if ((c->hn += (unsigned)n) < 8)
			return;
		c->want = get_be64(c->hdr);
		ep_mod(c->fd, EPOLLOUT, &c->h);
	}
	/* One send per event: the echo target in this process must not
	 * wait long behind the source. */
	if (c->sent < c->want) {
		left = c->want - c->sent;
		n = send(c->fd, pat + c->sent % PAT,
		    left < SRC_CHUNK ? (size_t)left : SRC_CHUNK, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			close_rst(c->fd);
			free(c);
			return;
		}
		c->sent += (uint64_t)n;
	}
	if (c->sent == c->want) {
		shutdown(c->fd, SHUT_WR);
		c->done = 1;
		ep_mod(c->fd, EPOLLIN, &c->h);
	}
}

static void
sink_new(int fd)
{
	struct sink *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	c->h.fn = sink_cb;
	c->fd = fd;
	ep_add(fd, EPOLLIN, &c->h);
}

static void
echo_new(int fd)
{
	struct echo *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	net_nodelay(fd);
	c->h.fn = echo_cb;
	c->fd = fd;
	ep_add(fd, EPOLLIN, &c->h);
}

static void
source_new(int fd)
{
	struct source *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	c->h.fn = source_cb;
	c->fd = fd;
	ep_add(fd, EPOLLIN, &c->h);
}

static void
listener_cb(struct handler *h, uint32_t events)
{
	struct listener *l = (struct listener *)h;
	int fd, i;

	(void)events;
	for (i = 0; i < 64; i++) {
		if ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK)) < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "mxload: accept: %s\n",
				    strerror(errno));
			return;
		}
		l->accepted(fd);
	}
}

/* Listen on ${addr}:${port}; returns the port bound. */
static int
listen_on(const char *addr, int port, void (*accepted)(int))
{
	struct sockaddr_in sin;
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		die("calloc");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "mxload: bad address %s\n", addr);
		exit(2);
	}
	if ((l->fd = net_listen(&sin, SOCK_NONBLOCK, 4096)) == -1)
		die("listen");
	l->h.fn = listener_cb;
	l->accepted = accepted;
	ep_add(l->fd, EPOLLIN, &l->h);
	return (ntohs(sin.sin_port));
}

static int __attribute__((noreturn))
run_serve(int argc, char *argv[])
{
	const char *addr = "127.0.0.1";
	int ports[3] = { 0, 0, 0 }, i;

	if (argc >= 2 && strcmp(argv[0], "-b") == 0) {
		addr = argv[1];
		argc -= 2;
		argv += 2;
	}
	if (argc != 0 && argc != 3)
		usage();
	for (i = 0; i < argc; i++)
		ports[i] = (int)num(argv[i]);
	ports[0] = listen_on(addr, ports[0], sink_new);
	ports[1] = listen_on(addr, ports[1], echo_new);
	ports[2] = listen_on(addr, ports[2], source_new);
	printf("sink=%d echo=%d source=%d\n", ports[0], ports[1], ports[2]);
	fflush(stdout);
	for (;;)
		loop_once(-1);
}

static int __attribute__((noreturn))
run_echo(int port)
{

	listen_on("127.0.0.1", port, echo_new);
	for (;;)
		loop_once(-1);
}

/* ---- bulk: CONNS connections into a sink ---- */

struct bconn {
	struct handler	h;
	int		fd;
	int		hdr_sent, sent_all, done;
	uint64_t	sent;
	unsigned char	ack[24];
	unsigned	an;
};

static uint64_t bulk_bytes;
static long bulk_live, bulk_ok, bulk_failed;

static void
bconn_end(struct bconn *c, int ok)
{

	if (ok) {
		close(c->fd);
		bulk_ok++;
	} else {
		close_rst(c->fd);
		bulk_failed++;
	}
	c->done = 1;
	bulk_live--;
}

static void
bconn_cb(struct handler *h, uint32_t events)
{
	struct bconn *c = (struct bconn *)h;
	struct csum want;
	unsigned char hdr[8];
	uint64_t left;
	ssize_t n;
	int i;

	if (!c->sent_all) {
		if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLOUT)) {
			bconn_end(c, 0);
			return;
		}
		if (!c->hdr_sent) {
			put_be64(hdr, bulk_bytes);
			if (send(c->fd, hdr, 8, MSG_NOSIGNAL | MSG_MORE) != 8) {
				if (errno == EAGAIN)
					return;
				fprintf(stderr, "mxload: bulk: send: %s\n",
				    strerror(errno));
				bconn_end(c, 0);
				return;
			}
			c->hdr_sent = 1;
		}
		for (i = 0; i < 4 && c->sent < bulk_bytes; i++) {
			left = bulk_bytes - c->sent;
			n = send(c->fd, pat + c->sent % PAT,
			    left < PAT ? (size_t)left : PAT, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				fprintf(stderr, "mxload: bulk: send: %s\n",
				    strerror(errno));
				bconn_end(c, 0);
				return;
			}
			c->sent += (uint64_t)n;
		}
		if (c->sent < bulk_bytes)
			return;
		c->sent_all = 1;
		ep_mod(c->fd, EPOLLIN, &c->h);
		return;
	}
	if ((n = recv(c->fd, c->ack + c->an, sizeof(c->ack) - c->an, 0)) < 0) {
		if (errno == EAGAIN)
			return;
		fprintf(stderr, "mxload: bulk: recv: %s\n", strerror(errno));
		bconn_end(c, 0);
		return;
	}
	if (n == 0) {
		fprintf(stderr, "mxload: bulk: EOF before the sink's answer\n");
		bconn_end(c, 0);
		return;
	}
	if ((c->an += (unsigned)n) < sizeof(c->ack))
		return;
	csum_expect(bulk_bytes, &want);
	if (get_be64(c->ack) != bulk_bytes || get_be64(c->ack + 8) != want.a ||
	    get_be64(c->ack + 16) != want.b) {
		fprintf(stderr, "mxload: bulk: the sink got %ju bytes%s\n",
		    (uintmax_t)get_be64(c->ack),
		    get_be64(c->ack) == bulk_bytes ? " with a wrong sum" : "");
		bconn_end(c, 0);
		return;
	}
	bconn_end(c, 1);
}

static int
run_bulk(const char *addr, long conns, long bytes)
{
	struct sockaddr_in sin;
	struct bconn *cs;
	uint64_t t0, t1, last;
	double cpu0;
	long i;

	parse_addr("mxload", addr, &sin);
	bulk_bytes = (uint64_t)bytes;
	if (conns < 1 || (cs = calloc((size_t)conns, sizeof(*cs))) == NULL)
		usage();
	cpu0 = cpu_secs();
	last = t0 = now_us();
	for (i = 0; i < conns; i++) {
		cs[i].h.fn = bconn_cb;
		cs[i].fd = connect_to(&sin);
		ep_add(cs[i].fd, EPOLLOUT, &cs[i].h);
		bulk_live++;
	}
	while (bulk_live > 0) {
		if (loop_once(1000) > 0) {
			last = now_us();
		} else if (now_us() - last > STALL_MS * 1000ULL) {
			fprintf(stderr, "mxload: bulk: stalled with %ld "
			    "connections open\n", bulk_live);
			bulk_failed += bulk_live;
			break;
		}
	}
	t1 = now_us();
	printf("conns=%ld ok=%ld failed=%ld bytes=%ju secs=%.3f mbps=%.1f "
	    "cpu=%.3f\n", conns, bulk_ok, bulk_failed,
	    (uintmax_t)(bulk_ok * bulk_bytes), (t1 - t0) / 1e6,
	    (double)(bulk_ok * bulk_bytes) / (double)(t1 - t0),
	    cpu_secs() - cpu0);
	free(cs);
	return (bulk_ok == conns ? 0 : 1);
}

/* ---- rate and idle: "hello" round trips ---- */

struct hconn {
	struct handler	h;
	int		fd;
	int		state;		/* 0 connecting, 1 reading, 2 open */
	unsigned	got;
	uint64_t	start;
	long		idx;
};

static const char hello[5] = "hello";
static struct sockaddr_in hello_sin;
static long h_started, h_live, h_ok, h_failed, h_count, h_inflight;
static int h_keep;			/* idle: keep connections open */
static struct samples h_lat;
static struct hconn **h_conns;		/* idle: the open ones */
static long h_dropped;

static void
hconn_done(struct hconn *c, int ok)
{

	if (ok) {
		h_ok++;
		sample(&h_lat, now_us() - c->start);
	} else {
		h_failed++;
	}
	h_live--;
	if (ok && h_keep) {
		c->state = 2;
		h_conns[c->idx] = c;
		return;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (ok)
		close(c->fd);
	else
		close_rst(c->fd);
	free(c);
}

static void
hconn_cb(struct handler *h, uint32_t events)
{
	struct hconn *c = (struct hconn *)h;
	char buf[16];
	ssize_t n;

	if (c->state == 2) {
		/* Idle and held: anything at all means it was dropped. */
		h_dropped++;
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		h_conns[c->idx] = NULL;
		close(c->fd);
		free(c);
		return;
	}
	if (c->state == 0) {
		if ((events & (EPOLLERR | EPOLLHUP)) ||
		    send(c->fd, hello, sizeof(hello), MSG_NOSIGNAL) !=
		    sizeof(hello)) {
			hconn_done(c, 0);
			return;
		}
		c->state = 1;
		ep_mod(c->fd, EPOLLIN, &c->h);
		return;
	}
	if ((n = recv(c->fd, buf, sizeof(hello) - c->got, 0)) < 0) {
		if (errno != EAGAIN)
			hconn_done(c, 0);
		return;
	}
	if (n == 0 || memcmp(buf, hello + c->got, (size_t)n) != 0) {
		hconn_done(c, 0);
		return;
	}
	if ((c->got += (unsigned)n) == sizeof(hello))
		hconn_done(c, 1);
}

static void
hconn_start(void)
{
	struct hconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	c->h.fn = hconn_cb;
	c->idx = h_started++;
	c->start = now_us();
	c->fd = connect_to(&hello_sin);
	ep_add(c->fd, EPOLLOUT, &c->h);
	h_live++;
}

/* Run hello round trips until all have ended.  Returns the seconds. */
static double
hello_run(void)
{
	uint64_t t0, last;

	last = t0 = now_us();
	while (h_ok + h_failed < h_count) {
		while (h_live < h_inflight && h_started < h_count)
			hconn_start();
		if (loop_once(1000) > 0) {
			last = now_us();
		} else if (now_us() - last > STALL_MS * 1000ULL) {
			fprintf(stderr, "mxload: stalled with %ld "
			    "connections in flight\n", h_live);
			h_failed += h_count - h_ok - h_failed;
			break;
		}
	}
	return ((now_us() - t0) / 1e6);
}

static int
run_rate(const char *addr, long count, long inflight)
{
	double secs, cpu0;

	parse_addr("mxload", addr, &hello_sin);
	h_count = count;
	h_inflight = inflight > 0 ? inflight : 1;
	cpu0 = cpu_secs();
	secs = hello_run();
	qsort(h_lat.v, h_lat.n, sizeof(*h_lat.v), cmp_u64);
	printf("conns=%ld ok=%ld failed=%ld secs=%.3f conns_per_s=%.0f "
	    "p50_us=%ju p99_us=%ju max_us=%ju cpu=%.3f\n", count, h_ok,
	    h_failed, secs, h_ok / secs, (uintmax_t)pct(h_lat.v, h_lat.n, 50),
	    (uintmax_t)pct(h_lat.v, h_lat.n, 99),
	    (uintmax_t)(h_lat.n ? h_lat.v[h_lat.n - 1] : 0),
	    cpu_secs() - cpu0);
	free(h_lat.v);
	return (h_ok == count ? 0 : 1);
}

static void
on_stop(int sig)
{

	(void)sig;
	stop = 1;
}

static int
run_idle(const char *addr, long count, long inflight)
{
	struct sigaction sa;
	double secs;
	long i, held = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	parse_addr("mxload", addr, &hello_sin);
	h_count = count;
	h_inflight = inflight > 0 ? inflight : 1;
	h_keep = 1;
	if ((h_conns = calloc((size_t)count + 1, sizeof(*h_conns))) == NULL)
		die("calloc");
	secs = hello_run();
	printf("ready conns=%ld ok=%ld failed=%ld secs=%.3f\n", count, h_ok,
	    h_failed, secs);
	fflush(stdout);
	while (!stop)
		loop_once(100);
	for (i = 0; i < count; i++) {
		if (h_conns[i] == NULL)
			continue;
		held++;
		close(h_conns[i]->fd);
		free(h_conns[i]);
	}
	printf("held conns=%ld ok=%ld failed=%ld dropped=%ld\n", count, held,
	    h_failed, h_dropped);
	free(h_conns);
	free(h_lat.v);
	return (held == count ? 0 : 1);
}

/* ---- hol: echo round trips beside a bulk download ---- */

struct hol {
	struct handler	h;
	int		fd;
	int		connected;
};

static struct hol hping, hbulk, htimer;
static uint64_t ping_t, ping_seq, bulk_rx, hol_interval;
static unsigned ping_got;
static int ping_out;			/* a ping is on its way */
static unsigned char ping_buf[PINGSZ], ping_in[PINGSZ];
static int hol_failed;

static void
ping_send(void)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	timerfd_settime(htimer.fd, 0, &its, NULL);
	memcpy(ping_buf, pat + ping_seq % 4096, PINGSZ);
	put_be64(ping_buf, ping_seq++);
	ping_t = now_us();
	if (send(hping.fd, ping_buf, PINGSZ, MSG_NOSIGNAL) != PINGSZ) {
		fprintf(stderr, "mxload: hol: ping send: %s\n", strerror(errno));
		hol_failed = 1;
		return;
	}
	ping_out = 1;
	ping_got = 0;
}

static void
hol_timer_cb(struct handler *h, uint32_t events)
{
	uint64_t x;

	(void)h;
	(void)events;
	if (read(htimer.fd, &x, sizeof(x)) < 0)
		return;
	if (!ping_out && hping.connected)
		ping_send();
}

static uint64_t hol_measure_from, hol_measure_to;
static struct samples hol_lat;

static void
hol_ping_cb(struct handler *h, uint32_t events)
{
	struct itimerspec its;
	uint64_t t, next;
	ssize_t n;

	(void)h;
	if (!hping.connected) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			fprintf(stderr, "mxload: hol: echo connection failed\n");
			hol_failed = 1;
			return;
		}
		hping.connected = 1;
		net_nodelay(hping.fd);
		ep_mod(hping.fd, EPOLLIN, &hping.h);
		ping_send();
		return;
	}
	if ((n = recv(hping.fd, ping_in + ping_got, PINGSZ - ping_got, 0)) <
	    0) {
		if (errno == EAGAIN)
			return;
		fprintf(stderr, "mxload: hol: ping recv: %s\n", strerror(errno));
		hol_failed = 1;
		return;
	}
	if (n == 0) {
		fprintf(stderr, "mxload: hol: echo connection closed\n");
		hol_failed = 1;
		return;
	}
	if ((ping_got += (unsigned)n) < PINGSZ)
		return;
	t = now_us();
	if (memcmp(ping_in, ping_buf, PINGSZ) != 0) {
		fprintf(stderr, "mxload: hol: echo differs\n");
		hol_failed = 1;
		return;
	}
	ping_out = 0;
	if (ping_t >= hol_measure_from && t <= hol_measure_to)
		sample(&hol_lat, t - ping_t);
	next = ping_t + hol_interval;
	if (next <= t + 20) {
		ping_send();
		return;
	}
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)((next - t) / 1000000);
	its.it_value.tv_nsec = (long)((next - t) % 1000000) * 1000;
	timerfd_settime(htimer.fd, 0, &its, NULL);
}

static uint64_t bulk_rx_from;		/* bulk_rx when measuring began */

static void
hol_bulk_cb(struct handler *h, uint32_t events)
{
	unsigned char hdr[8];
	ssize_t n;

	(void)h;
	if (!hbulk.connected) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			fprintf(stderr, "mxload: hol: bulk connection failed\n");
			hol_failed = 1;
			return;
		}
		put_be64(hdr, UINT64_MAX / 2);
		if (send(hbulk.fd, hdr, 8, MSG_NOSIGNAL) != 8) {
			fprintf(stderr, "mxload: hol: bulk send: %s\n",
			    strerror(errno));
			hol_failed = 1;
			return;
		}
		hbulk.connected = 1;
		ep_mod(hbulk.fd, EPOLLIN, &hbulk.h);
		return;
	}
	/* MSG_TRUNC: TCP discards the data without copying it. */
	n = recv(hbulk.fd, rdbuf, RDBUF, MSG_TRUNC);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		fprintf(stderr, "mxload: hol: bulk connection ended\n");
		hol_failed = 1;
		return;
	}
	bulk_rx += (uint64_t)n;
}

static int
run_hol(const char *echo_addr, const char *src_addr, double secs,
    long interval_us, long warm_ms)
{
	struct sockaddr_in sin;
	uint64_t t0, last_seq = 0, last_progress;
	double cpu0, bsecs;
	int bulk = strcmp(src_addr, "-") != 0;

	hol_interval = (uint64_t)interval_us;
	cpu0 = cpu_secs();
	if ((htimer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) < 0)
		die("timerfd_create");
	htimer.h.fn = hol_timer_cb;
	ep_add(htimer.fd, EPOLLIN, &htimer.h);
	t0 = now_us();
	if (bulk) {
		parse_addr("mxload", src_addr, &sin);
		hbulk.h.fn = hol_bulk_cb;
		hbulk.fd = connect_to(&sin);
		ep_add(hbulk.fd, EPOLLOUT, &hbulk.h);
	}
	parse_addr("mxload", echo_addr, &sin);
	hping.h.fn = hol_ping_cb;
	hping.fd = connect_to(&sin);
	ep_add(hping.fd, EPOLLOUT, &hping.h);
	hol_measure_from = t0 + (uint64_t)warm_ms * 1000;
	hol_measure_to = hol_measure_from + (uint64_t)(secs * 1e6);
	last_progress = t0;
	while (!hol_failed && now_us() < hol_measure_to) {
		if (bulk_rx_from == 0 && now_us() >= hol_measure_from)
			bulk_rx_from = bulk_rx + 1;
		loop_once(100);
		if (ping_seq != last_seq) {
			last_seq = ping_seq;
			last_progress = now_us();
		} else if (now_us() - last_progress > STALL_MS * 1000ULL) {
			fprintf(stderr, "mxload: hol: no echo for %d s\n",
			    STALL_MS / 1000);
			hol_failed = 1;
		}
	}
	bsecs = (now_us() - hol_measure_from) / 1e6;
	if (bulk_rx_from == 0)
		bulk_rx_from = 1;
	if (bulk && bulk_rx == 0 && !hol_failed) {
		fprintf(stderr, "mxload: hol: the bulk download moved nothing\n");
		hol_failed = 1;
	}
	if (hol_lat.n == 0 && !hol_failed) {
		fprintf(stderr, "mxload: hol: no round trip completed\n");
		hol_failed = 1;
	}
	qsort(hol_lat.v, hol_lat.n, sizeof(*hol_lat.v), cmp_u64);
	printf("ok=%d samples=%zu p50_us=%ju p99_us=%ju max_us=%ju "
	    "bulk_bytes=%ju bulk_mbps=%.2f secs=%.3f cpu=%.3f\n", !hol_failed,
	    hol_lat.n, (uintmax_t)pct(hol_lat.v, hol_lat.n, 50),
	    (uintmax_t)pct(hol_lat.v, hol_lat.n, 99),
	    (uintmax_t)(hol_lat.n ? hol_lat.v[hol_lat.n - 1] : 0),
	    (uintmax_t)(bulk_rx - (bulk_rx_from - 1)),
	    bulk ? (double)(bulk_rx - (bulk_rx_from - 1)) / 1e6 / bsecs : 0.0,
	    bsecs, cpu_secs() - cpu0);
	if (bulk)
		close_rst(hbulk.fd);
	close(hping.fd);
	close(htimer.fd);
	free(hol_lat.v);
	return (hol_failed ? 1 : 0);
}

/* ---- conns: the demo's echo check ---- */

struct cconn {
	struct handler	h;
	int		fd;
	size_t		sent, got;
	uint64_t	start;
	int		shut, rc;	/* rc: 0 running, 1 ok, -1 failed */
};

static size_t conn_size;

/* The byte at offset ${i} of every connection's data. */
static inline unsigned char
cpattern(size_t i)
{

	return ((unsigned char)(i * 7 + (i >> 8)));
}

static void
cconn_cb(struct handler *h, uint32_t events)
{
	struct cconn *c = (struct cconn *)h;
	size_t k, i;
	ssize_t n;

	(void)events;
	while (c->sent < conn_size) {
		k = conn_size - c->sent < RDBUF ? conn_size - c->sent : RDBUF;
		for (i = 0; i < k; i++)
			rdbuf[i] = cpattern(c->sent + i);
		if ((n = send(c->fd, rdbuf, k, MSG_NOSIGNAL)) < 0) {
			if (errno == EAGAIN)
				break;
			c->rc = -1;
			return;
		}
		c->sent += (size_t)n;
	}
	if (c->sent == conn_size && !c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = 1;
		ep_mod(c->fd, EPOLLIN, &c->h);
	}
	for (;;) {
		if ((n = recv(c->fd, rdbuf, RDBUF, 0)) < 0) {
			if (errno != EAGAIN)
				c->rc = -1;
			return;
		}
		if (n == 0) {
			c->rc = c->got == conn_size ? 1 : -1;
			return;
		}
		for (i = 0; i < (size_t)n; i++)
			if (rdbuf[i] != cpattern(c->got + i)) {
				c->rc = -1;
				return;
			}
		c->got += (size_t)n;
	}
}

static int
run_conns(const char *addr, long count, long inflight, long size)
{
	struct sockaddr_in sin;
	struct epoll_event evs[MAXEV];
	long started = 0, done = 0, ok = 0, failed = 0, live = 0;
	struct samples lat = { NULL, 0, 0 };
	uint64_t t0, secs_us;
	struct cconn *c;
	int i, n;

	parse_addr("mxload", addr, &sin);
	conn_size = (size_t)size;
	t0 = now_us();
	while (done < count) {
		while (live < inflight && started < count) {
			if ((c = calloc(1, sizeof(*c))) == NULL)
				die("calloc");
			c->h.fn = cconn_cb;
			c->start = now_us();
			c->fd = connect_to(&sin);
			ep_add(c->fd, EPOLLIN | EPOLLOUT, &c->h);
			started++;
			live++;
		}
		if ((n = epoll_wait(ep, evs, MAXEV, 10000)) <= 0) {
			fprintf(stderr, "mxload: stalled with %ld open\n", live);
			break;
		}
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			cconn_cb(&c->h, evs[i].events);
			if (c->rc == 0)
				continue;
			if (c->rc > 0) {
				ok++;
				sample(&lat, now_us() - c->start);
			} else {
				failed++;
			}
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			free(c);
			live--;
			done++;
		}
	}
	secs_us = now_us() - t0;
	qsort(lat.v, lat.n, sizeof(*lat.v), cmp_u64);
	printf("conns=%ld ok=%ld failed=%ld bytes=%ld secs=%.3f "
	    "conns_per_s=%.0f p50_us=%ju p99_us=%ju\n", count, ok,
	    failed + (count - done), ok * size * 2, secs_us / 1e6,
	    done * 1e6 / (double)secs_us, (uintmax_t)pct(lat.v, lat.n, 50),
	    (uintmax_t)pct(lat.v, lat.n, 99));
	free(lat.v);
	return (ok == count ? 0 : 1);
}

/* ---- freeport ---- */

/*
 * Ports that can be bound now, picked at random outside the kernel's
 * ephemeral range: a port from inside it may become some outgoing
 * connection's local port before its listener binds it.
 */
static int
run_freeport(long n)
{
	struct sockaddr_in sin;
	unsigned lo = 32768, hi = 60999, from, to, port;
	int *fds, fd, one = 1, rc;
	unsigned *ports;
	long found = 0, tries, i;
	FILE *f;

	if (n < 1 || n > 1000 || (fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		usage();
	if ((f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) != NULL) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 32768, hi = 60999;
		fclose(f);
	}
	if (lo > 12000) {
		from = 10000;
		to = lo - 1;
	} else {
		from = hi + 1;
		to = 65535;
	}
	srandom((unsigned)(now_us() ^ (uint64_t)getpid() << 16));
	if ((ports = calloc((size_t)n, sizeof(*ports))) == NULL)
		die("calloc");
	for (tries = 0; found < n && tries < 100000; tries++) {
		port = from + (unsigned)random() % (to - from + 1);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
			die("socket");
		/* Held open until all are chosen: no duplicates. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    listen(fd, 1) == 0) {
			fds[found] = fd;
			ports[found++] = port;
		} else {
			close(fd);
		}
	}
	/* Closed before they are printed: free once the caller reads them. */
	rc = found == n ? 0 : 1;
	for (i = 0; i < found; i++) {
		close(fds[i]);
		printf("%s%u", i ? " " : "", ports[i]);
	}
	printf("\n");
	fflush(stdout);
	free(fds);
	free(ports);
	return (rc);
}

int
main(int argc, char *argv[])
{

	signal(SIGPIPE, SIG_IGN);
	nofile_max();
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "freeport") == 0 && argc <= 3)
		return (run_freeport(argc == 3 ? num(argv[2]) : 1));
	if ((ep = epoll_create1(0)) == -1)
		die("epoll");
	pattern_init();
	if (strcmp(argv[1], "serve") == 0)
		run_serve(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		run_echo((int)num(argv[2]));
	if (argc == 5 && strcmp(argv[1], "bulk") == 0)
		return (run_bulk(argv[2], num(argv[3]), num(argv[4])));
	if (argc == 5 && strcmp(argv[1], "rate") == 0)
		return (run_rate(argv[2], num(argv[3]), num(argv[4])));
	if (argc >= 5 && argc <= 7 && strcmp(argv[1], "hol") == 0)
		return (run_hol(argv[2], argv[3], atof(argv[4]),
		    argc > 5 ? num(argv[5]) : 1000,
		    argc > 6 ? num(argv[6]) : 300));
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "idle") == 0)
		return (run_idle(argv[2], num(argv[3]),
		    argc == 5 ? num(argv[4]) : 200));
	if (argc == 6 && strcmp(argv[1], "conns") == 0)
		return (run_conns(argv[2], num(argv[3]), num(argv[4]),
		    num(argv[5])));
	usage();
}
