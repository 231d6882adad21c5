/*
 * tls: the link's TLS, through OpenSSL.  The context comes from the [link]
 * tls_ keys: TLS 1.3 only unless tls_min_version says 1.2, and both sides
 * present a certificate.  The peer's is checked against tls_ca, if set, by
 * OpenSSL's verification; without tls_ca (pin-only trust, like an SSH host
 * key) any certificate passes that step and tls_pin decides.  Once a
 * handshake has finished, tls_check makes the checks OpenSSL's verification
 * does not: tls_peer_name and tls_pin.
 */
#ifndef MXD_TLS_H
#define MXD_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;
struct config;

/* The ciphertext the link reads ahead per read once the handshake is over
 * (conn.c).  OpenSSL sizes the buffer when it first reads: handshake.c
 * makes it that big only once the peer has passed (a flood of handshakes
 * must not cost that much each). */
#define TLS_READ_BUF	(256 * 1024)

/* A public key's pin as tls_pin takes it, "sha256:" and 44 base64
 * characters, with its NUL. */
#define TLS_PIN_TEXT	52

/*
 * A context for the link of ${cfg} (tls = on), with its certificate and key
 * loaded.  NULL on failure, with a message naming the key and the file in
 * ${err} (size ${errlen}).
 */
SSL_CTX *tls_ctx_new(const struct config *cfg, char *err, size_t errlen);

/*
 * Check the peer of ${ssl}, whose handshake has finished, against the
 * tls_peer_name and tls_pin of ${cfg} (without tls_ca the pin is all there
 * is, and must match).  Returns 0, or -1 with the reason in ${why} (size
 * ${len}).
 */
int tls_check(SSL *ssl, const struct config *cfg, char *why, size_t len);

/*
 * The pin of ${cert}'s public key: the SHA-256 of its DER
 * SubjectPublicKeyInfo into ${md} (32 bytes, unless NULL) and as tls_pin
 * writes it into ${text} (TLS_PIN_TEXT bytes, unless NULL).  Returns 0, or
 * -1 if the key cannot be encoded.
 */
int tls_pin(X509 *cert, unsigned char *md, char *text);

/* The same for the certificate the peer of ${ssl} showed; -1 without one. */
int tls_peer_pin(SSL *ssl, unsigned char *md, char *text);

/* The keys of a basis, in its order: tls, tls_min_version, tls_cert,
 * tls_key, tls_ca, tls_peer_name, tls_pin. */
#define TLS_BASIS_KEYS	7

/*
 * What the TLS of a link rests on, to tell whether a reload changes it:
 * for each of the TLS_BASIS_KEYS, a SHA-256 of its value and, for a file,
 * of its content (a certificate renewed in place, or a CA that no longer
 * signs the peer, is a change).  With tls = off, only tls counts.
 */
struct tls_basis {
	unsigned char	md[TLS_BASIS_KEYS][32];
};

/*
 * Take the basis of the TLS settings of ${cfg} into ${b}, reading the files
 * they name.  Returns 0, or -1 with a message naming the key and the file
 * in ${err} (size ${errlen}).
 */
int tls_basis(const struct config *cfg, struct tls_basis *b, char *err,
    size_t errlen);

/*
 * Write the keys in which ${a} and ${b} differ ("tls_cert, tls_pin"; only
 * "tls" when that differs) into ${what} (size ${len}).  Returns how many
 * differ.
 */
int tls_basis_diff(const struct tls_basis *a, const struct tls_basis *b,
    char *what, size_t len);

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
