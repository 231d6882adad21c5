/*
 * floor: the least a relay pair multiplexing its channels over one TCP link
 * must do, as a reference for the benchmark (bench/run.sh --tunnels
 * ...,floor).  It is not a tunnel: no flow control (a receiver that stops
 * reading blocks every channel, and two saturated directions can deadlock),
 * no liveness, no limits, and an error ends the channel or the process.
 *
 * It makes the copies and system calls every such pair makes and nothing
 * else: read a client socket, queue a frame (a 12-byte header and the
 * payload, in place), write all queued frames to the link in one writev per
 * event loop pass; read the link, write each payload to its channel's
 * socket.  The ends are one process each, like mxd's, on one epoll loop.
 * What mxd costs beyond this is what its protocol and its safety cost.
 *
 *   floor a HOST:PORT ADDR...   dial the link; service i accepts on ADDR i
 *   floor b HOST:PORT ADDR...   accept the link; service i dials ADDR i
 *
 * Addresses are IPv4 HOST:PORT.  Both ends run on one machine, so headers
 * are in host byte order.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

#define F_OPEN		1	/* first frame of channel id, for service svc */
#define F_FIN		2	/* the sender's socket gave EOF */
#define F_RST		4	/* the channel failed: close it */
#define NCH		(1u << 20)	/* channel table; ids index it */
#define NSVC		8
#define CHUNK		(256 * 1024)	/* one read of a channel socket */
#define ARENA		(8u << 20)	/* payload queued for one writev */
#define NIOV		1024
#define INBUF		(4u << 20)	/* link read buffer (> a frame) */
#define EV_LINK		UINT64_MAX
#define EV_LISTEN	(1ull << 32)	/* | service index */

struct hdr {
	uint32_t	id;
	uint32_t	len;
	uint8_t		flags;
	uint8_t		svc;
	uint16_t	pad;
};

struct chan {
	int		fd;		/* 0: the slot is free */
	uint8_t		rd_eof;		/* FIN sent */
	uint8_t		wr_eof;		/* FIN received, SHUT_WR done */
};

static struct chan *chans;
static struct sockaddr_in svc_addr[NSVC];
static int svc_lfd[NSVC];	/* side a: the services' listeners */
static int nsvc, link_fd, ep;
static uint32_t next_id;

/* Frames queued for the link: headers, and iovecs pointing at them and at
 * payload read into the arena. */
static struct hdr hdrs[NIOV];
static struct iovec iov[NIOV];
static int nhdr, niov;
static char *arena;
static size_t arena_used;

/* ${what} failed: say so with errno, and exit. */
static void
die(const char *what)
{

	perror(what);
	exit(1);
}

/* A socket listening on ${sa}, Nagle off (as mxd has it on all its
 * sockets; accepted ones inherit it). */
static int
listen_at(const struct sockaddr_in *sa)
{
	struct sockaddr_in sin = *sa;
	int fd;

	if ((fd = net_listen(&sin, SOCK_CLOEXEC, 1024)) == -1)
		die("bind/listen");
	net_nodelay(fd);
	return (fd);
}

/* Write all queued frames to the (blocking) link. */
static void
flush(void)
{
	struct iovec *v = iov;
	int n = niov;
	ssize_t w;

	while (n > 0) {
		if ((w = writev(link_fd, v, n > IOV_MAX ? IOV_MAX : n)) < 0) {
			if (errno == EINTR)
				continue;
			die("link writev");
		}
		while (n > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	nhdr = niov = 0;
	arena_used = 0;
}

/* Queue a frame for channel ${id}: ${flags}, service ${svc}, ${len} bytes
 * at ${p} (in the arena, left there until the flush). */
static void
queue_frame(uint32_t id, uint8_t flags, uint8_t svc, const void *p,
    uint32_t len)
{
	struct hdr *h;

	if (niov + 2 > NIOV)
		flush();
	h = &hdrs[nhdr++];
	h->id = id;
	h->len = len;
	h->flags = flags;
	h->svc = svc;
	h->pad = 0;
	iov[niov].iov_base = h;
	iov[niov++].iov_len = sizeof(*h);
	if (len > 0) {
		iov[niov].iov_base = (void *)p;
		iov[niov++].iov_len = len;
	}
}

/* Write ${len} bytes at ${p} to non-blocking ${fd}, waiting as needed. */
static int
write_all(int fd, const char *p, size_t len)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	ssize_t w;

	while (len > 0) {
		if ((w = write(fd, p, len)) > 0) {
			p += w;
			len -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			(void)poll(&pfd, 1, -1);
		} else if (w < 0 && errno != EINTR) {
			return (-1);
		}
	}
	return (0);
}

/* Close channel ${id}'s socket and free its slot. */
static void
chan_close(uint32_t id)
{

	close(chans[id].fd);
	memset(&chans[id], 0, sizeof(chans[id]));
}

/* Channel ${id} is over once both directions have ended. */
static void
chan_maybe_close(uint32_t id)
{

	if (chans[id].rd_eof && chans[id].wr_eof)
		chan_close(id);
}

/* Channel ${id} failed here: tell the peer, and close it. */
static void
chan_fail(uint32_t id)
{

	queue_frame(id, F_RST, 0, NULL, 0);
	chan_close(id);
}

/* Channel ${id} has socket ${fd}: watch it for reading. */
static void
chan_add(uint32_t id, int fd)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = id };

	chans[id].fd = fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
		die("epoll_ctl");
}

/* Side a: accept the clients waiting on service ${svc}'s listener. */
static void
accept_clients(uint8_t svc)
{
	int fd;

	while ((fd = accept4(svc_lfd[svc], NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		do
			next_id = (next_id + 1) & (NCH - 1);
		while (next_id == 0 || chans[next_id].fd != 0);
		chan_add(next_id, fd);
		queue_frame(next_id, F_OPEN, svc, NULL, 0);
	}
}

/* Side b: the peer opened channel ${id} to service ${svc}. */
static void
dial_target(uint32_t id, uint8_t svc)
{
	int fd;

	if (svc >= nsvc || chans[id].fd != 0 ||
	    (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		queue_frame(id, F_RST, 0, NULL, 0);
		return;
	}
	net_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&svc_addr[svc],
	    sizeof(svc_addr[svc])) != 0) {
		close(fd);
		queue_frame(id, F_RST, 0, NULL, 0);
		return;
	}
	(void)fcntl(fd, F_SETFL, O_NONBLOCK);
	chan_add(id, fd);
}

/* A channel's socket is readable: queue what it holds as one frame. */
static void
chan_read(uint32_t id)
{
	ssize_t n;

	if (arena_used + CHUNK > ARENA)
		flush();
	n = read(chans[id].fd, arena + arena_used, CHUNK);
	if (n > 0) {
		queue_frame(id, 0, 0, arena + arena_used, (uint32_t)n);
		arena_used += (size_t)n;
	} else if (n == 0) {
		queue_frame(id, F_FIN, 0, NULL, 0);
		chans[id].rd_eof = 1;
		(void)epoll_ctl(ep, EPOLL_CTL_DEL, chans[id].fd, NULL);
		chan_maybe_close(id);
	} else if (errno != EAGAIN && errno != EINTR) {
		chan_fail(id);
	}
}

/* One frame from the link: header ${h}, payload ${p}. */
static void
link_frame(const struct hdr *h, const char *p)
{
	uint32_t id = h->id & (NCH - 1);

	if (h->flags & F_OPEN)
		dial_target(id, h->svc);
	if (chans[id].fd == 0)
		return;			/* ended here: drop the rest */
	if (h->flags & F_RST) {
		chan_close(id);
		return;
	}
	if (h->len > 0 && write_all(chans[id].fd, p, h->len) != 0) {
		chan_fail(id);
		return;
	}
	if (h->flags & F_FIN) {
		(void)shutdown(chans[id].fd, SHUT_WR);
		chans[id].wr_eof = 1;
		chan_maybe_close(id);
	}
}

/* The link is readable: act on every whole frame read. */
static void
link_read(void)
{
	static char *in;
	static size_t have;
	struct hdr h;
	size_t off = 0;
	ssize_t n;

	if (in == NULL && (in = malloc(INBUF)) == NULL)
		die("malloc");
	if ((n = read(link_fd, in + have, INBUF - have)) <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		fprintf(stderr, "floor: link closed\n");
		exit(0);
	}
	have += (size_t)n;
	while (have - off >= sizeof(h)) {
		memcpy(&h, in + off, sizeof(h));
		if (h.len > CHUNK) {
			fprintf(stderr, "floor: bad frame\n");
			exit(1);
		}
		if (have - off < sizeof(h) + h.len)
			break;
		link_frame(&h, in + off + sizeof(h));
		off += sizeof(h) + h.len;
	}
	memmove(in, in + off, have - off);
	have -= off;
}

int
main(int argc, char **argv)
{
	struct epoll_event e, evs[256];
	struct sockaddr_in link_addr;
	int side_a, lfd, i, n;

	if (argc < 4 || argc - 3 > NSVC ||
	    (strcmp(argv[1], "a") != 0 && strcmp(argv[1], "b") != 0)) {
		fprintf(stderr, "usage: floor a|b HOST:PORT ADDR...\n");
		return (2);
	}
	side_a = argv[1][0] == 'a';
	parse_addr("floor", argv[2], &link_addr);
	nsvc = argc - 3;
	for (i = 0; i < nsvc; i++)
		parse_addr("floor", argv[3 + i], &svc_addr[i]);
	if ((chans = calloc(NCH, sizeof(*chans))) == NULL ||
	    (arena = malloc(ARENA)) == NULL)
		die("malloc");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	if (side_a) {
		for (i = 0; i < nsvc; i++) {
			svc_lfd[i] = lfd = listen_at(&svc_addr[i]);
			(void)fcntl(lfd, F_SETFL, O_NONBLOCK);
			e.events = EPOLLIN;
			e.data.u64 = EV_LISTEN | (uint64_t)i;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e))
				die("epoll_ctl");
		}
		if ((link_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
		    0)) == -1 || connect(link_fd, (struct sockaddr *)&link_addr,
		    sizeof(link_addr)))
			die("link connect");
		net_nodelay(link_fd);
		printf("floor: up (connected)\n");
	} else {
		lfd = listen_at(&link_addr);
		printf("floor: listening\n");
		fflush(stdout);
		if ((link_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			die("accept");
		close(lfd);
		printf("floor: up (accepted)\n");
	}
	fflush(stdout);
	e.events = EPOLLIN;
	e.data.u64 = EV_LINK;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, link_fd, &e))
		die("epoll_ctl");
	for (;;) {
		if ((n = epoll_wait(ep, evs, 256, -1)) < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;

			if (d == EV_LINK)
				link_read();
			else if (d & EV_LISTEN)
				accept_clients((uint8_t)(d & 0xff));
			else if (chans[d].fd != 0)
				chan_read((uint32_t)d);
		}
		if (niov > 0)
			flush();
	}
}
