/*
 * handshake: the TLS handshake of a new link connection.  It runs in a
 * bufferevent_openssl within connect_timeout; then the peer's certificate
 * is checked (tls_check), and the connection is handed over as a conn
 * (conn_new_tls), or refused with the reason.
 */
#ifndef MXD_HANDSHAKE_H
#define MXD_HANDSHAKE_H

#include <openssl/ssl.h>

struct conn;
struct daemon;
struct handshake;

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
 * over), as the side that accepted it if ${accepting}, in ${d}'s event
 * loop, within its connect_timeout and with the checks of the configuration
 * in force when it completes (a reload may come in between); ${peer} names
 * the peer for the result.  ${done}(${arg}) is called once, from the event
 * loop.  Returns NULL if out of memory (${fd} is then closed).
 */
struct handshake *handshake_start(const struct daemon *d, SSL_CTX *ctx,
    int fd, int accepting, const char *peer, handshake_done_fn *done,
    void *arg);

/* Abandon ${h}: free it and close its socket, without calling back. */
void handshake_free(struct handshake *h);

#endif
