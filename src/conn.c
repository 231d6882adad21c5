/*
 * conn: see conn.h.
 */
#include <sys/uio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "conn.h"
#include "tls.h"

/* Bytes read from a plain socket per readable event. */
#define READ_MAX	(256 * 1024)
/* The first byte of a TLS handshake record; a yamux frame starts with 0. */
#define TLS_HANDSHAKE	0x16

struct conn {
	struct conn_handlers h;
	void		*arg;
	size_t		lowat;
	/* Plain: our own events and buffers.  TLS: bev. */
	int		fd;
	struct event	*rd_ev, *wr_ev;
	struct evbuffer	*in, *out;
	int		got;		/* read something already */
	struct bufferevent *bev;
	char		why[160];	/* a TLS error, for failed */
};

/* rd_ev: read what the socket has, up to READ_MAX, into c->in. */
static void
plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer_iovec v[2];
	ssize_t n;
	int nv;

	(void)what;
	if ((nv = evbuffer_reserve_space(c->in, READ_MAX, v, 2)) < 0) {
		c->h.failed(c, "out of memory", c->arg);
		return;
	}
	if ((n = readv(fd, (struct iovec *)v, nv)) <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		event_del(c->rd_ev);
		c->h.failed(c, n == 0 ? "peer closed the link" : strerror(errno),
		    c->arg);
		return;
	}
	/* A TLS peer on a plain link: say so, rather than "bad version". */
	if (!c->got && *(unsigned char *)v[0].iov_base == TLS_HANDSHAKE) {
		event_del(c->rd_ev);
		c->h.failed(c, "the peer sent a TLS handshake, but tls = off "
		    "here", c->arg);
		return;
	}
	c->got = 1;
	if ((size_t)n <= v[0].iov_len) {
		v[0].iov_len = (size_t)n;
		nv = 1;
	} else {
		v[1].iov_len = (size_t)n - v[0].iov_len;
	}
	evbuffer_commit_space(c->in, v, nv);
	c->h.readable(c, c->arg);
}

/* wr_ev: write what c->out holds. */
static void
plain_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN &&
	    errno != EINTR) {
		event_del(c->wr_ev);
		c->h.failed(c, strerror(errno), c->arg);
		return;
	}
	if (evbuffer_get_length(c->out) == 0)
		event_del(c->wr_ev);
	if (evbuffer_get_length(c->out) <= c->lowat)
		c->h.drained(c, c->arg);
}

/* A plain connection on ${fd}. */
struct conn *
conn_new_plain(struct event_base *base, int fd)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto err0;
	c->fd = fd;
	if ((c->in = evbuffer_new()) == NULL)
		goto err1;
	if ((c->out = evbuffer_new()) == NULL)
		goto err2;
	if ((c->rd_ev = event_new(base, fd, EV_READ | EV_PERSIST,
	    plain_read_cb, c)) == NULL)
		goto err3;
	if ((c->wr_ev = event_new(base, fd, EV_WRITE | EV_PERSIST,
	    plain_write_cb, c)) == NULL)
		goto err4;
	return (c);

err4:
	event_free(c->rd_ev);
err3:
	evbuffer_free(c->out);
err2:
	evbuffer_free(c->in);
err1:
	free(c);
err0:
	return (NULL);
}

/* bufferevent: readable. */
static void
bev_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->h.readable(c, c->arg);
}

/* bufferevent: output at or below the low mark. */
static void
bev_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->h.drained(c, c->arg);
}

/* bufferevent: EOF or error, the TLS one if there is one. */
static void
bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	unsigned long first;
	char why[sizeof(c->why) - 5];

	if (what & BEV_EVENT_EOF) {
		c->h.failed(c, "peer closed the link", c->arg);
	} else if (what & BEV_EVENT_ERROR) {
		if ((first = tls_bev_error(bev)) == 0) {
			c->h.failed(c, evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()), c->arg);
			return;
		}
		tls_error(first, why, sizeof(why));
		snprintf(c->why, sizeof(c->why), "TLS: %s", why);
		c->h.failed(c, c->why, c->arg);
	}
}

/* A connection on bufferevent ${bev}. */
struct conn *
conn_new_bufferevent(struct bufferevent *bev)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->bev = bev;
	c->fd = bufferevent_getfd(bev);
	return (c);
}

/* Report to ${h} with ${arg}; start reading. */
void
conn_set_handlers(struct conn *c, const struct conn_handlers *h, void *arg)
{

	c->h = *h;
	c->arg = arg;
	if (c->bev != NULL) {
		bufferevent_setcb(c->bev, bev_read_cb, bev_write_cb,
		    bev_event_cb, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	} else {
		event_add(c->rd_ev, NULL);
	}
}

/* Close and free ${c}. */
void
conn_free(struct conn *c)
{

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
	} else {
		event_free(c->rd_ev);
		event_free(c->wr_ev);
		evbuffer_free(c->in);
		evbuffer_free(c->out);
		close(c->fd);
	}
	free(c);
}

struct evbuffer *
conn_input(struct conn *c)
{

	return (c->bev ? bufferevent_get_input(c->bev) : c->in);
}

struct evbuffer *
conn_output(struct conn *c)
{

	return (c->bev ? bufferevent_get_output(c->bev) : c->out);
}

/* Arm the write of conn_output (a bufferevent arms itself). */
void
conn_flush(struct conn *c)
{

	if (c->bev == NULL && evbuffer_get_length(c->out) > 0 &&
	    !event_pending(c->wr_ev, EV_WRITE, NULL))
		event_add(c->wr_ev, NULL);
}

/* Stop or resume reading ${c}. */
void
conn_read(struct conn *c, int on)
{

	if (c->bev != NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on) {
		if (!event_pending(c->rd_ev, EV_READ, NULL))
			event_add(c->rd_ev, NULL);
	} else {
		event_del(c->rd_ev);
	}
}

/* Call drained when the output falls to ${lowat}. */
void
conn_set_lowat(struct conn *c, size_t lowat)
{

	c->lowat = lowat;
	if (c->bev != NULL)
		bufferevent_setwatermark(c->bev, EV_WRITE, lowat, 0);
}

int
conn_fd(const struct conn *c)
{

	return (c->fd);
}
