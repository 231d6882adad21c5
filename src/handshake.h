/*
 * handshake: the TLS handshake of a new link connection.  It runs in a
 * bufferevent_openssl within connect_timeout; then the peer's certificate
 * is checked (tls_check), and the connection is handed over as a conn
 * (conn_new_tls), or refused with the reason.  A peer that connected to us
 * must have sent its ClientHello within HANDSHAKE_HELLO_MS: a connection
 * that says nothing, or a byte now and then, costs its maker nothing, and
 * is let go that soon.
 */
#ifndef MXD_HANDSHAKE_H
#define MXD_HANDSHAKE_H

#include <stdint.h>

#include <openssl/ssl.h>

struct conn;
struct daemon;
struct handshake;

/* An accepted peer's ClientHello must come this soon (a real one sends it
 * as it connects; a lost packet is sent again within it). */
#define HANDSHAKE_HELLO_MS	1000

/* How a handshake ended. */
struct handshake_result {
	struct conn	*conn;		/* the connection; NULL: refused */
	const char	*peer;		/* as given to handshake_start */
	const char	*version;	/* the TLS version, with conn */
	const char	*why;		/* the reason, without conn */
};

/* ${h} ended with ${r}; ${r}->conn, if any, is the callee's now, and ${h}
 * is freed once this returns. */
typedef void handshake_done_fn(struct handshake *h,
    const struct handshake_result *r, void *arg);

/*
 * Start the TLS handshake with ${ctx} on connected socket ${fd} (taken
 * over), as the side that accepted it if ${accepting} (then with the
 * ClientHello within HANDSHAKE_HELLO_MS), in ${d}'s event loop, within its
 * connect_timeout and with the checks of the configuration
 * in force when it completes (a reload may come in between); ${peer} names
 * the peer for the result.  ${done}(${arg}) is called once, from the event
 * loop.  Returns NULL if out of memory (${fd} is then closed).
 */
struct handshake *handshake_start(const struct daemon *d, SSL_CTX *ctx,
    int fd, int accepting, const char *peer, handshake_done_fn *done,
    void *arg);

/* The bytes of the peer of ${h} the handshake has read so far: it is
 * making progress while they grow. */
uint64_t handshake_heard(const struct handshake *h);

/* Nonzero once ${h}, accepting, has answered a whole ClientHello. */
int handshake_hello(const struct handshake *h);

/* Abandon ${h}: free it and close its socket, without calling back. */
void handshake_free(struct handshake *h);

#endif
