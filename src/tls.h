/*
 * tls: the link's TLS, through OpenSSL.  The context comes from the [link]
 * tls_ keys: TLS 1.3 only unless tls_min_version says 1.2, and both sides
 * present a certificate that the other checks against its tls_ca (mutual
 * authentication).  Once a handshake has finished, tls_check makes the
 * checks OpenSSL's verification does not: tls_peer_name and tls_pin.
 */
#ifndef MXD_TLS_H
#define MXD_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;
struct config;

/*
 * A context for the link of ${cfg} (tls = on), with its certificate and key
 * loaded.  NULL on failure, with a message naming the key and the file in
 * ${err} (size ${errlen}).
 */
SSL_CTX *tls_ctx_new(const struct config *cfg, char *err, size_t errlen);

/*
 * Check the peer of ${ssl}, whose handshake has finished, against the
 * tls_peer_name and tls_pin of ${cfg}.  Returns 0, or -1 with the reason in
 * ${why} (size ${len}).
 */
int tls_check(SSL *ssl, const struct config *cfg, char *why, size_t len);

/*
 * The OpenSSL error that ended TLS bufferevent ${bev}, or 0 if none did
 * (the connection closed); the first one queued, being the most specific.
 * Takes every error ${bev} holds.
 */
unsigned long tls_bev_error(struct bufferevent *bev);

/* Describe the OpenSSL error ${err} (nonzero) in ${buf} (size ${len}). */
void tls_error(unsigned long err, char *buf, size_t len);

/*
 * Write into ${why} (size ${len}) why the handshake of ${ssl} failed with
 * the OpenSSL error ${err}, or without one if ${err} is 0 (the connection
 * closed).
 */
void tls_why(SSL *ssl, unsigned long err, char *why, size_t len);

#endif /* !MXD_TLS_H */
