/*
 * conn: the link's byte stream, plain TCP or TLS, seen as an input and an
 * output evbuffer.
 *
 * Both kinds do their own reads and writes on the socket: libevent 2.1's
 * socket bufferevents read at most 4 KiB per call, and its OpenSSL ones
 * write a TLS record per buffer chain and read each record in two calls, a
 * tax on a link that carries every channel.  A TLS connection is taken
 * over from the bufferevent_openssl that ran its handshake.
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

/* A TLS connection taken over from ${bev}, a bufferevent_openssl whose
 * handshake has finished; ${bev} is freed.  NULL on failure (${bev} is then
 * still the caller's). */
struct conn *conn_new_tls(struct bufferevent *bev);

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

/* Bytes not yet handed to the socket: conn_output's, and TLS records
 * waiting for the socket. */
size_t conn_unsent(const struct conn *c);

/* Stop (${on} == 0) or resume reading. */
void conn_read(struct conn *c, int on);

/* Call drained when the output falls to ${lowat} bytes. */
void conn_set_lowat(struct conn *c, size_t lowat);

/* The pin of the TLS peer's public key, as tls_peer_pin gives it: into
 * ${md} (32 bytes) and, unless NULL, as text into ${text} (TLS_PIN_TEXT
 * bytes).  Returns 0, or -1 on a plain connection. */
int conn_peer_pin(const struct conn *c, unsigned char md[32], char *text);

/* The socket of ${c}. */
int conn_fd(const struct conn *c);

#endif
