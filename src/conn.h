/*
 * conn: the link's byte stream, plain TCP or TLS, seen as an input and an
 * output evbuffer.
 *
 * Plain connections do their own readv/writev on the socket: libevent 2.1's
 * socket bufferevents read at most 4 KiB per call, a tax on a link that
 * carries every channel.  TLS connections are a bufferevent_openssl, which
 * conn hides behind the same calls.
 */
#ifndef MXD_CONN_H
#define MXD_CONN_H

#include <stddef.h>

struct bufferevent;
struct conn;
struct event_base;
struct evbuffer;

struct conn_handlers {
	/* Bytes were appended to conn_input. */
	void (*readable)(struct conn *, void *arg);
	/* conn_output fell to the low mark (after a write). */
	void (*drained)(struct conn *, void *arg);
	/* The connection ended: EOF or an error, ${why} (for a TLS error,
	 * OpenSSL's reason; on a plain connection whose peer starts a TLS
	 * handshake, a message that says so). */
	void (*failed)(struct conn *, const char *why, void *arg);
};

/* A connection on plain socket ${fd} in ${base}.  NULL on failure (${fd}
 * is then still the caller's). */
struct conn *conn_new_plain(struct event_base *base, int fd);

/* A connection on bufferevent ${bev} (a connected TLS bufferevent; taken
 * over).  NULL on failure (${bev} is then still the caller's). */
struct conn *conn_new_bufferevent(struct bufferevent *bev);

/* Report to ${h} with ${arg} from now on, and start reading. */
void conn_set_handlers(struct conn *c, const struct conn_handlers *h,
    void *arg);

/* Close and free ${c}. */
void conn_free(struct conn *c);

/* The bytes read and not yet consumed, and the bytes to write. */
struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);

/* Write what conn_output holds as the socket allows (call after adding). */
void conn_flush(struct conn *c);

/* Stop (${on} == 0) or resume reading. */
void conn_read(struct conn *c, int on);

/* Call drained when the output falls to ${lowat} bytes. */
void conn_set_lowat(struct conn *c, size_t lowat);

/* The socket of ${c}. */
int conn_fd(const struct conn *c);

#endif
