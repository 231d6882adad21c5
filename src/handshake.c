/*
 * handshake: see handshake.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "handshake.h"
#include "log.h"
#include "ms.h"
#include "tls.h"

struct handshake {
	struct bufferevent *bev;	/* NULL once conn_new_tls took it */
	struct event	*deadline;	/* connect_timeout; then the end */
	int		hello;		/* the deadline is the ClientHello's */
	const struct daemon *d;		/* its cfg when the check comes */
	char		why[256];	/* set: refused, end on deadline */
	char		peer[64];
	handshake_done_fn *done;
	void		*arg;
};

/* Free handshake bufferevent ${bev} with its SSL and socket, which it does
 * not own (conn_new_tls takes them over from it). */
static void
bev_free(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	int fd = bufferevent_getfd(bev);

	bufferevent_free(bev);
	SSL_free(ssl);
	close(fd);
}

uint64_t
handshake_heard(const struct handshake *h)
{

	return (BIO_number_read(SSL_get_rbio(bufferevent_openssl_get_ssl(
	    h->bev))));
}

int
handshake_hello(const struct handshake *h)
{
	SSL *ssl = bufferevent_openssl_get_ssl(h->bev);

	/* What it wrote answers a ClientHello (or is an alert, and the
	 * handshake ends on this loop pass). */
	return (BIO_number_written(SSL_get_wbio(ssl)) > 0);
}

void
handshake_free(struct handshake *h)
{

	event_free(h->deadline);
	if (h->bev != NULL)
		bev_free(h->bev);
	free(h);
}

/* Report ${conn} (or, if NULL, h->why) with TLS version ${version} for
 * ${h}, then free it. */
static void
handshake_end(struct handshake *h, struct conn *conn, const char *version)
{
	struct handshake_result r = { conn, h->peer, version, h->why };

	h->done(h, &r, h->arg);
	handshake_free(h);
}

/*
 * Refuse the peer of ${h} because of ${why}.  The end comes on the next
 * loop pass, from the deadline event: inside the bufferevent's own
 * callback libevent still holds the bufferevent, and would stop watching
 * the socket only after bev_free had closed it.
 */
static void
refuse(struct handshake *h, const char *why)
{

	snprintf(h->why, sizeof(h->why), "%s", why);
	bufferevent_setcb(h->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(h->bev, EV_READ | EV_WRITE);
	event_active(h->deadline, EV_TIMEOUT, 0);
}

/* bufferevent: the handshake ${arg} finished (${what} has CONNECTED) or
 * failed. */
static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct handshake *h = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	char why[sizeof(h->why)];
	struct conn *conn;

	if (!(what & BEV_EVENT_CONNECTED)) {
		tls_why(ssl, tls_bev_error(bev), why, sizeof(why));
		refuse(h, why);
	} else if (tls_check(ssl, h->d->cfg, why, sizeof(why))) {
		refuse(h, why);
	} else {
		/* The handshake read a record at a time, so its small buffer
		 * is empty: the next read takes one of TLS_READ_BUF. */
		SSL_set_default_read_buffer_len(ssl, TLS_READ_BUF);
		if (SSL_free_buffers(ssl) != 1)
			log_debug("link %s: the TLS buffers stay as they are",
			    h->peer);
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		if ((conn = conn_new_tls(bev)) == NULL) {
			refuse(h, "out of memory");
			return;
		}
		h->bev = NULL;		/* conn_new_tls freed it */
		handshake_end(h, conn, SSL_get_version(ssl));
	}
}

/* deadline: the peer of handshake ${arg} had HANDSHAKE_HELLO_MS for its
 * ClientHello (then it has the rest of connect_timeout), or it took longer
 * than connect_timeout, or it was refused. */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct handshake *h = arg;
	uint64_t ms = h->d->cfg->connect_timeout_ms;	/* a reload may cut it */
	struct timeval tv;

	(void)fd;
	(void)what;
	if (h->why[0] == '\0' && h->hello) {
		h->hello = 0;
		if (!handshake_hello(h)) {
			snprintf(h->why, sizeof(h->why), "no TLS ClientHello "
			    "within %s", fmt_duration(HANDSHAKE_HELLO_MS).s);
		} else if (ms > HANDSHAKE_HELLO_MS) {
			tv = ms_timeval(ms - HANDSHAKE_HELLO_MS);
			evtimer_add(h->deadline, &tv);
			return;
		}
	}
	if (h->why[0] == '\0')
		snprintf(h->why, sizeof(h->why), "handshake timed out");
	handshake_end(h, NULL, NULL);
}

struct handshake *
handshake_start(const struct daemon *d, SSL_CTX *ctx, int fd,
    int accepting, const char *peer, handshake_done_fn *done, void *arg)
{
	struct handshake *h;
	struct timeval tv;
	SSL *ssl;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		goto err0;
	h->d = d;
	h->done = done;
	h->arg = arg;
	snprintf(h->peer, sizeof(h->peer), "%s", peer);
	if ((h->deadline = evtimer_new(d->base, deadline_cb, h)) == NULL)
		goto err1;
	if ((ssl = SSL_new(ctx)) == NULL)
		goto err2;
	/* Without BEV_OPT_CLOSE_ON_FREE: ssl and fd stay ours, to be taken
	 * over by conn_new_tls or freed by bev_free. */
	if ((h->bev = bufferevent_openssl_socket_new(d->base, fd, ssl,
	    accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    0)) == NULL)
		goto err3;
	/* A peer that closes without close_notify has merely closed. */
	bufferevent_openssl_set_allow_dirty_shutdown(h->bev, 1);
	bufferevent_setcb(h->bev, NULL, NULL, event_cb, h);
	h->hello = accepting &&
	    d->cfg->connect_timeout_ms > HANDSHAKE_HELLO_MS;
	tv = ms_timeval(h->hello ? HANDSHAKE_HELLO_MS :
	    d->cfg->connect_timeout_ms);
	evtimer_add(h->deadline, &tv);
	return (h);

err3:
	SSL_free(ssl);
err2:
	event_free(h->deadline);
err1:
	free(h);
err0:
	close(fd);
	return (NULL);
}
