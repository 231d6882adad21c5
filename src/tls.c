/*
 * tls: see tls.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "tls.h"

_Static_assert(CONFIG_PIN_LEN == SHA256_DIGEST_LENGTH, "tls_pin is SHA-256");

/*
 * Fail tls_ctx_new on key ${key} (file ${path}): free ${ctx} and write into
 * ${err} (size ${errlen}) the first error OpenSSL queued.
 */
static SSL_CTX *
ctx_fail(SSL_CTX *ctx, const char *key, const char *path, char *err,
    size_t errlen)
{
	unsigned long e = ERR_peek_error();
	char why[256] = "unknown error";

	if (e != 0)
		tls_error(e, why, sizeof(why));
	snprintf(err, errlen, "%s %s: %s", key, path, why);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return (NULL);
}

/*
 * OpenSSL's verification of the peer's chain without tls_ca: any will do,
 * and tls_check's pin, mandatory then, decides (pin-only trust, like an SSH
 * host key).  ${ok} and ${store} are OpenSSL's verdict and state.
 */
static int
verify_any(int ok, X509_STORE_CTX *store)
{

	(void)ok;
	(void)store;
	return (1);
}

/* A context for the link of ${cfg}. */
SSL_CTX *
tls_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) *cas;
	SSL_CTX *ctx;
	X509 *cert;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return (NULL);
	}
	(void)SSL_CTX_set_min_proto_version(ctx,
	    cfg->tls_min_version == TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	/* Both sides must show a certificate; no session resumption, which
	 * would skip the checks of tls_check. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, cfg->tls_ca == NULL ? verify_any :
	    NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* A peer that closes without close_notify has merely closed (the
	 * link ends with it either way).  No TLS 1.2 renegotiation: the
	 * link's writes never wait for a read (conn.c). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* Loading the key checks that it matches the certificate. */
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
		return (ctx_fail(ctx, "tls_cert", cfg->tls_cert, err, errlen));
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1)
		return (ctx_fail(ctx, "tls_key", cfg->tls_key, err, errlen));
	if (cfg->tls_ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1)
			return (ctx_fail(ctx, "tls_ca", cfg->tls_ca, err,
			    errlen));
		/* The listening side names the CAs it accepts. */
		if ((cas = SSL_load_client_CA_file(cfg->tls_ca)) == NULL)
			return (ctx_fail(ctx, "tls_ca", cfg->tls_ca, err,
			    errlen));
		SSL_CTX_set_client_CA_list(ctx, cas);
	}

	cert = SSL_CTX_get0_certificate(ctx);
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
		log_warn("link: tls_cert %s has expired: the peer will refuse "
		    "it", cfg->tls_cert);
	return (ctx);
}

/* Nonzero if ${s} is an IPv4 or IPv6 address literal. */
static int
is_ip_literal(const char *s)
{
	unsigned char a[16];

	return (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1);
}

/*
 * Check ${cert}, named ${name}, against tls_peer_name ${want}: a DNS name,
 * or an IP address, which X509_check_host never matches (it would look for
 * a DNS name "10.0.0.2").  Returns 0, or -1 with the reason in ${why} (size
 * ${len}).
 */
static int
check_name(X509 *cert, const char *name, const char *want, char *why,
    size_t len)
{

	if (is_ip_literal(want)) {
		if (X509_check_ip_asc(cert, want, 0) == 1)
			return (0);
		snprintf(why, len, "certificate %s is not for IP address %s "
		    "(tls_peer_name: not among its subjectAltName IP "
		    "addresses)", name, want);
		return (-1);
	}
	if (X509_check_host(cert, want, 0,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
		return (0);
	snprintf(why, len, "certificate %s is not for %s (tls_peer_name)", name,
	    want);
	return (-1);
}

/* Check the peer of ${ssl} against ${cfg}. */
int
tls_check(SSL *ssl, const struct config *cfg, char *why, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char name[256], pin[TLS_PIN_TEXT];
	X509 *cert;

	if ((cert = SSL_get0_peer_certificate(ssl)) == NULL) {
		snprintf(why, len, "no certificate");
		return (-1);
	}
	X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
	if (cfg->tls_peer_name != NULL &&
	    check_name(cert, name, cfg->tls_peer_name, why, len))
		return (-1);
	/* Without tls_ca in the context the handshake ran with, nothing has
	 * checked the certificate yet: then the pin must (config.c asks for
	 * one, and a reload may have changed ${cfg} since). */
	if (!cfg->tls_pin.set) {
		if (SSL_get_verify_callback(ssl) != verify_any)
			return (0);
		snprintf(why, len, "certificate %s: no tls_ca checked it, and "
		    "no tls_pin is set", name);
		return (-1);
	}
	if (tls_pin(cert, md, pin)) {
		snprintf(why, len, "cannot encode the public key");
		return (-1);
	}
	if (CRYPTO_memcmp(md, cfg->tls_pin.sha256, sizeof(md)) != 0) {
		snprintf(why, len, "public key of certificate %s does not "
		    "match tls_pin (it is %s)", name, pin);
		return (-1);
	}
	return (0);
}

/* The pin of ${cert}. */
int
tls_pin(X509 *cert, unsigned char *md, char *text)
{
	unsigned char d[SHA256_DIGEST_LENGTH], *der = NULL;
	int n;

	if ((n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der)) < 0)
		return (-1);
	SHA256(der, (size_t)n, d);
	OPENSSL_free(der);
	if (md != NULL)
		memcpy(md, d, sizeof(d));
	if (text != NULL) {
		memcpy(text, "sha256:", 7);
		EVP_EncodeBlock((unsigned char *)text + 7, d, sizeof(d));
	}
	return (0);
}

/* The pin of the peer of ${ssl}. */
int
tls_peer_pin(SSL *ssl, unsigned char *md, char *text)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	return (cert != NULL ? tls_pin(cert, md, text) : -1);
}

/* The keys of a basis, in its order. */
static const char *const basis_keys[TLS_BASIS_KEYS] = {
	"tls", "tls_min_version", "tls_cert", "tls_key", "tls_ca",
	"tls_peer_name", "tls_pin"
};

/*
 * Digest into ${md} (32 bytes) value ${v} of ${n} bytes (NULL: not set)
 * and, if ${path} is not NULL, the content of that file, [link] ${key}.
 * Returns 0, or -1 with a message in ${err} (size ${errlen}).
 */
static int
basis_key(unsigned char *md, const void *v, size_t n, const char *key,
    const char *path, char *err, size_t errlen)
{
	unsigned char set = v != NULL, buf[4096];
	EVP_MD_CTX *c;
	FILE *f = NULL;
	size_t got;
	int rc = -1;

	if ((c = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "tls: out of memory");
		goto err0;
	}
	EVP_DigestUpdate(c, &set, 1);
	if (v != NULL)
		EVP_DigestUpdate(c, v, n);
	if (path != NULL) {
		if ((f = fopen(path, "re")) == NULL) {
			snprintf(err, errlen, "%s %s: %s", key, path,
			    strerror(errno));
			goto err0;
		}
		while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
			EVP_DigestUpdate(c, buf, got);
		OPENSSL_cleanse(buf, sizeof(buf));	/* it may be the key */
		if (ferror(f)) {
			snprintf(err, errlen, "%s %s: cannot read it", key,
			    path);
			goto err0;
		}
	}
	EVP_DigestFinal_ex(c, md, NULL);
	rc = 0;
err0:
	if (f != NULL)
		fclose(f);
	EVP_MD_CTX_free(c);
	return (rc);
}

/* The length of ${s}, 0 if NULL. */
static size_t
len0(const char *s)
{

	return (s != NULL ? strlen(s) : 0);
}

/* Take the basis of ${cfg}. */
int
tls_basis(const struct config *cfg, struct tls_basis *b, char *err,
    size_t errlen)
{
	const struct {
		const void	*v;	/* the value; NULL: not set */
		size_t		n;
		const char	*path;	/* a file: its content too */
	} k[TLS_BASIS_KEYS] = {
		{ &cfg->tls, sizeof(cfg->tls), NULL },
		{ &cfg->tls_min_version, sizeof(cfg->tls_min_version), NULL },
		{ cfg->tls_cert, len0(cfg->tls_cert), cfg->tls_cert },
		{ cfg->tls_key, len0(cfg->tls_key), cfg->tls_key },
		{ cfg->tls_ca, len0(cfg->tls_ca), cfg->tls_ca },
		{ cfg->tls_peer_name, len0(cfg->tls_peer_name), NULL },
		{ cfg->tls_pin.set ? cfg->tls_pin.sha256 : NULL,
		    sizeof(cfg->tls_pin.sha256), NULL },
	};
	unsigned i;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < (cfg->tls ? TLS_BASIS_KEYS : 1); i++)
		if (basis_key(b->md[i], k[i].v, k[i].n, basis_keys[i],
		    k[i].path, err, errlen))
			return (-1);
	return (0);
}

/* The keys in which ${a} and ${b} differ. */
int
tls_basis_diff(const struct tls_basis *a, const struct tls_basis *b,
    char *what, size_t len)
{
	size_t off = 0;
	unsigned i, keys = TLS_BASIS_KEYS;
	int n = 0;

	/* tls on or off: the rest does not matter. */
	if (memcmp(a->md[0], b->md[0], sizeof(a->md[0])) != 0)
		keys = 1;
	what[0] = '\0';
	for (i = 0; i < keys; i++) {
		if (memcmp(a->md[i], b->md[i], sizeof(a->md[i])) == 0)
			continue;
		if (off < len)
			off += (size_t)snprintf(what + off, len - off, "%s%s",
			    n > 0 ? ", " : "", basis_keys[i]);
		n++;
	}
	return (n);
}

/*
 * The first error ${bev} queued.  libevent hands them out newest first, and
 * among them SSL_get_error's code (SSL_ERROR_SSL, ...), which has no
 * library: skip that one.
 */
unsigned long
tls_bev_error(struct bufferevent *bev)
{
	unsigned long e, first = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (ERR_GET_LIB(e) != 0 || ERR_SYSTEM_ERROR(e))
			first = e;
	return (first);
}

/* Describe OpenSSL error ${err}. */
void
tls_error(unsigned long err, char *buf, size_t len)
{
	const char *reason = ERR_reason_error_string(err);

	if (ERR_SYSTEM_ERROR(err))
		snprintf(buf, len, "%s", strerror(ERR_GET_REASON(err)));
	else if (reason != NULL)
		snprintf(buf, len, "%s", reason);
	else
		ERR_error_string_n(err, buf, len);
}

/* Why the handshake of ${ssl} failed with ${err}. */
void
tls_why(SSL *ssl, unsigned long err, char *why, size_t len)
{
	long v = SSL_get_verify_result(ssl);

	if (err == 0)
		snprintf(why, len, "the peer closed the connection during the "
		    "handshake (is its tls off?)");
	else if (ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    v != X509_V_OK)
		snprintf(why, len, "certificate verify failed: %s",
		    X509_verify_cert_error_string(v));
	else if (ERR_GET_REASON(err) == SSL_R_WRONG_VERSION_NUMBER)
		snprintf(why, len, "not a TLS handshake (is the peer's tls "
		    "off?)");
	else
		tls_error(err, why, len);
}
