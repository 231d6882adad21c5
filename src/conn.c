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

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn.h"
#include "tls.h"

/* Bytes read (plain) or decrypted (TLS) per readable event. */
#define READ_MAX	(256 * 1024)
/* The first byte of a TLS handshake record; a yamux frame starts with 0. */
#define TLS_HANDSHAKE	0x16

struct conn {
	struct conn_handlers h;
	void		*arg;
	size_t		lowat;
	int		fd;
	struct event	*rd_ev, *wr_ev;
	struct evbuffer	*in, *out;
	int		got;		/* read something already (plain) */
	SSL		*ssl;		/* TLS: NULL on a plain connection */
	BIO		*wbio;		/* TLS: the record buffer */
	size_t		wpend;		/* TLS: an SSL_write to retry */
	char		why[160];	/* a TLS error, for failed */
};

/* Stop ${c}'s events and report its end, ${why}, to the handlers. */
static void
conn_fail(struct conn *c, const char *why)
{

	event_del(c->rd_ev);
	event_del(c->wr_ev);
	c->h.failed(c, why, c->arg);
}

/* A write of ${c} finished with nothing left for the socket to take:
 * stop waiting for it if all is out, and pull more below the low mark. */
static void
conn_written(struct conn *c)
{

	if (evbuffer_get_length(c->out) == 0)
		event_del(c->wr_ev);
	if (evbuffer_get_length(c->out) <= c->lowat)
		c->h.drained(c, c->arg);
}

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
		conn_fail(c, "out of memory");
		return;
	}
	if ((n = readv(fd, (struct iovec *)v, nv)) <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_fail(c, n == 0 ? "peer closed the link" : strerror(errno));
		return;
	}
	/* A TLS peer on a plain link: say so, rather than "bad version". */
	if (!c->got && *(unsigned char *)v[0].iov_base == TLS_HANDSHAKE) {
		conn_fail(c, "the peer sent a TLS handshake, but tls = off "
		    "here");
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
		conn_fail(c, strerror(errno));
		return;
	}
	conn_written(c);
}

/* Free the events and buffers of ${c}, and ${c}; not the socket. */
static void
conn_free_events(struct conn *c)
{

	event_free(c->rd_ev);
	event_free(c->wr_ev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c);
}

/* A connection on ${fd} in ${base} whose events call ${rd} and ${wr}. */
static struct conn *
conn_alloc(struct event_base *base, int fd, event_callback_fn rd,
    event_callback_fn wr)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto err0;
	c->fd = fd;
	if ((c->in = evbuffer_new()) == NULL)
		goto err1;
	if ((c->out = evbuffer_new()) == NULL)
		goto err2;
	if ((c->rd_ev = event_new(base, fd, EV_READ | EV_PERSIST, rd,
	    c)) == NULL)
		goto err3;
	if ((c->wr_ev = event_new(base, fd, EV_WRITE | EV_PERSIST, wr,
	    c)) == NULL)
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

/* A plain connection on ${fd}. */
struct conn *
conn_new_plain(struct event_base *base, int fd)
{

	return (conn_alloc(base, fd, plain_read_cb, plain_write_cb));
}

/*
 * TLS on our own events.  The handshake runs in a bufferevent_openssl (see
 * link.c); the data then flows here, because that bufferevent writes every
 * evbuffer chain as its own TLS record and its own write (a 12-byte frame
 * header included) and reads each record's header and body apart.  Here
 * records are cut at TLS_RECORD bytes, collected in a TLS_WBUF buffer BIO
 * and written with one write; the read side reads ahead as much ciphertext
 * as the read buffer holds (256 KiB, set in tls.c before the handshake).
 */
#define TLS_RECORD	16384
#define TLS_WBUF	(256 * 1024)

/* Fail ${c} on the OpenSSL error of ${ret}, or on EOF. */
static void
tls_fail(struct conn *c, int ret)
{
	unsigned long e;
	int err = SSL_get_error(c->ssl, ret);
	char why[sizeof(c->why) - 5];

	if (err == SSL_ERROR_SSL && (e = ERR_get_error()) != 0) {
		tls_error(e, why, sizeof(why));
		ERR_clear_error();
		snprintf(c->why, sizeof(c->why), "TLS: %s", why);
		conn_fail(c, c->why);
	} else if (err == SSL_ERROR_SYSCALL && errno != 0 && ret < 0) {
		conn_fail(c, strerror(errno));
	} else {
		/* close_notify, or a bare EOF: the peer has merely closed. */
		conn_fail(c, "peer closed the link");
	}
}

/* Hand the buffered records of ${c} to the socket.  Returns 1 if some are
 * left (the socket is full), 0 if none, -1 on error (${c} failed). */
static int
tls_push(struct conn *c)
{

	if (BIO_wpending(c->wbio) == 0)
		return (0);
	errno = 0;
	if (BIO_flush(c->wbio) > 0)
		return (0);
	if (BIO_should_retry(c->wbio))
		return (1);
	conn_fail(c, errno ? strerror(errno) : "write failed");
	return (-1);
}

/* wr_ev: encrypt what c->out holds and write it. */
static void
tls_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	unsigned char stage[TLS_RECORD], *p;
	struct evbuffer_iovec v;
	size_t n;
	int r, left;

	(void)fd;
	(void)what;
	/* Records wait for the socket, not in our buffer as well: what the
	 * scheduler has not yet handed over stays its to reorder. */
	if ((left = tls_push(c)) < 0)
		return;
	while (!left && evbuffer_get_length(c->out) > 0) {
		/* An SSL_write that could not finish is retried with the
		 * same bytes; they are still at the head of c->out. */
		if ((n = c->wpend) == 0)
			n = evbuffer_get_length(c->out);
		if (n > TLS_RECORD)
			n = TLS_RECORD;
		if (evbuffer_peek(c->out, (ev_ssize_t)n, NULL, &v, 1) == 1) {
			p = v.iov_base;		/* a whole record in one chain */
		} else {
			evbuffer_copyout(c->out, stage, n);
			p = stage;
		}
		ERR_clear_error();
		if ((r = SSL_write(c->ssl, p, (int)n)) <= 0) {
			if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_WRITE) {
				tls_fail(c, r);
				return;
			}
			c->wpend = n;
			left = 1;
			break;
		}
		c->wpend = 0;
		evbuffer_drain(c->out, (size_t)r);
		if (BIO_wpending(c->wbio) >= TLS_WBUF - TLS_RECORD - 256 &&
		    (left = tls_push(c)) < 0)
			return;
	}
	if (!left && (left = tls_push(c)) < 0)
		return;
	if (!left)		/* else wr_ev stays armed */
		conn_written(c);
}

/* rd_ev: decrypt what the socket has, up to READ_MAX, into c->in. */
static void
tls_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer_iovec v;
	size_t got = 0;
	int r, e;

	(void)fd;
	(void)what;
	while (got < READ_MAX) {
		if (evbuffer_reserve_space(c->in, TLS_RECORD, &v, 1) != 1) {
			conn_fail(c, "out of memory");
			return;
		}
		ERR_clear_error();
		errno = 0;
		if ((r = SSL_read(c->ssl, v.iov_base, (int)v.iov_len)) <= 0) {
			/* WANT_WRITE: an answer (key update) waits for the
			 * socket, which wr_ev is armed for below. */
			if ((e = SSL_get_error(c->ssl, r)) ==
			    SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			tls_fail(c, r);
			return;
		}
		v.iov_len = (size_t)r;
		evbuffer_commit_space(c->in, &v, 1);
		got += (size_t)r;
	}
	/* Reading can write (a TLS 1.3 key update is answered). */
	if (tls_push(c) < 0)
		return;
	if (BIO_wpending(c->wbio) > 0)
		event_add(c->wr_ev, NULL);
	/* Records OpenSSL read ahead will not wake the socket again. */
	if (got >= READ_MAX && SSL_has_pending(c->ssl))
		event_active(c->rd_ev, EV_READ, 0);
	if (got > 0)
		c->h.readable(c, c->arg);
}

/* A TLS connection taken over from ${bev}. */
struct conn *
conn_new_tls(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	int fd = bufferevent_getfd(bev);
	BIO *rbio, *wbio, *sock;
	struct conn *c;

	if ((c = conn_alloc(bufferevent_get_base(bev), fd, tls_read_cb,
	    tls_write_cb)) == NULL)
		goto err0;
	if ((rbio = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL)
		goto err1;
	if ((sock = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL)
		goto err2;
	if ((wbio = BIO_new(BIO_f_buffer())) == NULL)
		goto err3;
	if (BIO_set_write_buffer_size(wbio, TLS_WBUF) != 1)
		goto err4;
	/* bev owns neither ssl nor fd (link.c): it can go at once. */
	bufferevent_free(bev);
	BIO_push(wbio, sock);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_read_ahead(ssl, 1);
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	c->ssl = ssl;
	c->wbio = wbio;
	return (c);

err4:
	BIO_free(wbio);
err3:
	BIO_free(sock);
err2:
	BIO_free(rbio);
err1:
	conn_free_events(c);
err0:
	return (NULL);
}

/* Report to ${h} with ${arg}; start reading. */
void
conn_set_handlers(struct conn *c, const struct conn_handlers *h, void *arg)
{

	c->h = *h;
	c->arg = arg;
	conn_read(c, 1);
}

/* Close and free ${c}. */
void
conn_free(struct conn *c)
{
	int fd = c->fd;

	if (c->ssl != NULL)
		SSL_free(c->ssl);
	/* The events before the descriptor: with both armed, deleting one
	 * changes epoll's interest in it, which fails once it is closed. */
	conn_free_events(c);
	close(fd);
}

struct evbuffer *
conn_input(struct conn *c)
{

	return (c->in);
}

struct evbuffer *
conn_output(struct conn *c)
{

	return (c->out);
}

size_t
conn_unsent(const struct conn *c)
{

	return (evbuffer_get_length(c->out) +
	    (c->wbio != NULL ? (size_t)BIO_wpending(c->wbio) : 0));
}

/* Arm the write of conn_output. */
void
conn_flush(struct conn *c)
{

	if (evbuffer_get_length(c->out) > 0 &&
	    !event_pending(c->wr_ev, EV_WRITE, NULL))
		event_add(c->wr_ev, NULL);
}

/* Stop or resume reading ${c}. */
void
conn_read(struct conn *c, int on)
{

	if (!on) {
		event_del(c->rd_ev);
	} else if (!event_pending(c->rd_ev, EV_READ, NULL)) {
		event_add(c->rd_ev, NULL);
		/* Records read ahead while paused wake nothing else. */
		if (c->ssl != NULL && SSL_has_pending(c->ssl))
			event_active(c->rd_ev, EV_READ, 0);
	}
}

/* Call drained when the output falls to ${lowat}. */
void
conn_set_lowat(struct conn *c, size_t lowat)
{

	c->lowat = lowat;
}

int
conn_peer_pin(const struct conn *c, unsigned char md[32], char *text)
{

	return (c->ssl != NULL ? tls_peer_pin(c->ssl, md, text) : -1);
}

int
conn_fd(const struct conn *c)
{

	return (c->fd);
}
