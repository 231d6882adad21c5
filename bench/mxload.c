/*
 * mxload: a lean load generator and echo target for mxd's demo and
 * benchmarks.  epoll, non-blocking sockets, no allocation per byte; data is
 * a counter pattern checked by a running sum, not hashed.
 *
 *   mxload echo PORT
 *	echo every byte back on 127.0.0.1:PORT until killed.
 *   mxload conns HOST:PORT COUNT INFLIGHT SIZE
 *	COUNT connections, at most INFLIGHT at once; each sends SIZE bytes,
 *	half-closes, reads the echo back to EOF, checks it, closes.  Prints
 *	one line: conns, ok, failed, bytes, seconds, conns/s, p50/p99 us.
 *	Exit 0 if every connection was carried intact.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXEV	256
#define BUFSZ	65536

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

static void
die(const char *what)
{

	fprintf(stderr, "mxload: %s: %s\n", what, strerror(errno));
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

static void
nonblock(int fd)
{

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		die("fcntl");
}

/* Parse "HOST:PORT" ${s} into ${sin}. */
static void
parse_addr(const char *s, struct sockaddr_in *sin)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
		fprintf(stderr, "mxload: bad address %s\n", s);
		exit(2);
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		fprintf(stderr, "mxload: bad address %s\n", s);
		exit(2);
	}
}

/* Echo server: a buffer per connection, written back before reading on. */
struct econn {
	int	fd;
	size_t	len, off;
	int	rd_eof;
	char	buf[BUFSZ];
};

static void
echo_close(int ep, struct econn *c)
{

	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Serve connection ${c}: write what is buffered, then read more. */
static void
echo_serve(int ep, struct econn *c)
{
	struct epoll_event ev;
	ssize_t n;

	for (;;) {
		while (c->off < c->len) {
			n = write(c->fd, c->buf + c->off, c->len - c->off);
			if (n < 0 && errno == EAGAIN)
				goto wait_write;
			if (n < 0) {
				echo_close(ep, c);
				return;
			}
			c->off += (size_t)n;
		}
		c->off = c->len = 0;
		if (c->rd_eof) {
			shutdown(c->fd, SHUT_WR);
			echo_close(ep, c);
			return;
		}
		n = read(c->fd, c->buf, sizeof(c->buf));
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			echo_close(ep, c);
			return;
		}
		if (n == 0)
			c->rd_eof = 1;
		c->len = (size_t)n;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	return;
wait_write:
	ev.events = EPOLLOUT;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void __attribute__((noreturn))
run_echo(int port)
{
	struct sockaddr_in sin;
	struct epoll_event ev, evs[MAXEV];
	struct econn *c;
	int lfd, ep, one = 1, i, n, fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 4096))
		die("bind");
	nonblock(lfd);
	if ((ep = epoll_create1(0)) == -1)
		die("epoll");
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		if ((n = epoll_wait(ep, evs, MAXEV, -1)) < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr != NULL) {
				echo_serve(ep, evs[i].data.ptr);
				continue;
			}
			while ((fd = accept(lfd, NULL, NULL)) >= 0) {
				nonblock(fd);
				if ((c = calloc(1, sizeof(*c))) == NULL)
					die("calloc");
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
	}
}

/* Client connection of the conns run. */
struct cconn {
	int		fd;
	size_t		sent, got;
	uint64_t	start;
	int		shut;
};

static size_t conn_size;
static uint64_t *lat;
static size_t nlat;

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* The byte at offset ${i} of every connection's data. */
static inline unsigned char
pattern(size_t i)
{

	return ((unsigned char)(i * 7 + (i >> 8)));
}

/* Start a connection to ${sin}. */
static struct cconn *
cconn_start(int ep, const struct sockaddr_in *sin)
{
	struct epoll_event ev;
	struct cconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	nonblock(c->fd);
	c->start = now_us();
	if (connect(c->fd, (const struct sockaddr *)sin, sizeof(*sin)) &&
	    errno != EINPROGRESS)
		die("connect");
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	return (c);
}

/* Make progress on ${c}.  Returns 1 when done (ok), -1 failed, 0 not yet. */
static int
cconn_step(int ep, struct cconn *c)
{
	static unsigned char buf[BUFSZ];
	struct epoll_event ev;
	size_t k, i;
	ssize_t n;

	while (c->sent < conn_size) {
		k = conn_size - c->sent < BUFSZ ? conn_size - c->sent : BUFSZ;
		for (i = 0; i < k; i++)
			buf[i] = pattern(c->sent + i);
		if ((n = write(c->fd, buf, k)) < 0) {
			if (errno == EAGAIN)
				break;
			return (-1);
		}
		c->sent += (size_t)n;
	}
	if (c->sent == conn_size && !c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = 1;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	for (;;) {
		if ((n = read(c->fd, buf, sizeof(buf))) < 0)
			return (errno == EAGAIN ? 0 : -1);
		if (n == 0)
			return (c->got == conn_size ? 1 : -1);
		for (i = 0; i < (size_t)n; i++)
			if (buf[i] != pattern(c->got + i))
				return (-1);
		c->got += (size_t)n;
	}
}

static int
run_conns(const char *addr, long count, long inflight, long size)
{
	struct sockaddr_in sin;
	struct epoll_event evs[MAXEV];
	long started = 0, done = 0, ok = 0, failed = 0, live = 0;
	uint64_t t0, secs_us;
	struct cconn *c;
	int ep, i, n, rc;

	parse_addr(addr, &sin);
	conn_size = (size_t)size;
	if ((lat = calloc((size_t)count, sizeof(*lat))) == NULL)
		die("calloc");
	if ((ep = epoll_create1(0)) == -1)
		die("epoll");
	t0 = now_us();
	while (done < count) {
		while (live < inflight && started < count) {
			cconn_start(ep, &sin);
			started++;
			live++;
		}
		if ((n = epoll_wait(ep, evs, MAXEV, 10000)) <= 0) {
			fprintf(stderr, "mxload: stalled with %ld open\n", live);
			break;
		}
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			if ((rc = cconn_step(ep, c)) == 0)
				continue;
			if (rc > 0) {
				ok++;
				lat[nlat++] = now_us() - c->start;
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
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("conns=%ld ok=%ld failed=%ld bytes=%ld secs=%.3f "
	    "conns_per_s=%.0f p50_us=%ju p99_us=%ju\n", count, ok, failed + (count - done),
	    ok * size * 2, secs_us / 1e6, done * 1e6 / (double)secs_us,
	    (uintmax_t)(nlat ? lat[nlat / 2] : 0),
	    (uintmax_t)(nlat ? lat[nlat * 99 / 100] : 0));
	free(lat);
	return (ok == count ? 0 : 1);
}

int
main(int argc, char *argv[])
{

	signal(SIGPIPE, SIG_IGN);
	nofile_max();
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		run_echo(atoi(argv[2]));
	if (argc == 6 && strcmp(argv[1], "conns") == 0)
		return (run_conns(argv[2], atol(argv[3]), atol(argv[4]),
		    atol(argv[5])));
	fprintf(stderr, "usage: mxload echo PORT\n"
	    "       mxload conns HOST:PORT COUNT INFLIGHT SIZE\n");
	return (2);
}
