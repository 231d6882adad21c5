/*
 * resume: see resume.h.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "resume.h"

#define RANDOM_LEN	16
#define X25519_LEN	32

int
resume_hello_new(struct resume_hello *h)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;
	size_t len = X25519_LEN;

	memset(h, 0, sizeof(*h));
	if (RAND_bytes(h->msg, RANDOM_LEN) != 1)
		goto err0;
	if ((ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL)) == NULL)
		goto err0;
	if (EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pk) != 1)
		goto err1;
	if (EVP_PKEY_get_raw_public_key(pk, h->msg + RANDOM_LEN, &len) != 1 ||
	    len != X25519_LEN)
		goto err2;
	EVP_PKEY_CTX_free(ctx);
	h->priv = pk;
	return (0);

err2:
	EVP_PKEY_free(pk);
err1:
	EVP_PKEY_CTX_free(ctx);
err0:
	return (-1);
}

void
resume_hello_clear(struct resume_hello *h)
{

	EVP_PKEY_free(h->priv);
	h->priv = NULL;
}

/* The X25519 secret of our key ${priv} and the peer's public ${pub}, into
 * ${out}.  Returns 0 or -1. */
static int
x25519(EVP_PKEY *priv, const uint8_t *pub, uint8_t out[X25519_LEN])
{
	EVP_PKEY *peer;
	EVP_PKEY_CTX *ctx;
	size_t len = X25519_LEN;
	int rc = -1;

	if ((peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub,
	    X25519_LEN)) == NULL)
		return (-1);
	if ((ctx = EVP_PKEY_CTX_new(priv, NULL)) != NULL &&
	    EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, out, &len) == 1 && len == X25519_LEN)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return (rc);
}

/* HMAC-SHA256 under the ${klen} bytes at ${key} of ${label} and the ${n}
 * pieces ${p}[i] of ${len}[i] bytes, into ${out}. */
static void
mac(const uint8_t *key, size_t klen, const char *label,
    const uint8_t *const *p, const size_t *len, int n, uint8_t out[32])
{
	uint8_t buf[sizeof("mxd resume listener") + 2 * RESUME_HELLO_LEN];
	size_t off = strlen(label);
	unsigned outlen = 32;
	int i;

	memcpy(buf, label, off);
	for (i = 0; i < n; i++) {
		memcpy(buf + off, p[i], len[i]);
		off += len[i];
	}
	HMAC(EVP_sha256(), key, (int)klen, buf, off, out, &outlen);
	OPENSSL_cleanse(buf, sizeof(buf));
}

int
resume_hello_finish(struct resume_hello *h, int dialer, const uint8_t *peer,
    size_t len, struct resume_secret *out)
{
	const uint8_t *p[2];
	size_t l[2] = { RESUME_HELLO_LEN, RESUME_HELLO_LEN };
	uint8_t shared[X25519_LEN], id[32];
	int rc = -1;

	if (len != RESUME_HELLO_LEN || h->priv == NULL ||
	    x25519(h->priv, peer + RANDOM_LEN, shared))
		goto done;
	/* Both HELLOs in the dialer's order, so both sides agree. */
	p[0] = dialer ? h->msg : peer;
	p[1] = dialer ? peer : h->msg;
	mac(shared, sizeof(shared), "mxd resume key", p, l, 2, out->key);
	mac(out->key, sizeof(out->key), "mxd resume id", p, l, 2, id);
	memcpy(out->id, id, RESUME_ID_LEN);
	OPENSSL_cleanse(shared, sizeof(shared));
	rc = 0;
done:
	resume_hello_clear(h);
	return (rc);
}

int
resume_nonce(uint8_t n[RESUME_NONCE_LEN])
{

	return (RAND_bytes(n, RESUME_NONCE_LEN) == 1 ? 0 : -1);
}

void
resume_proof(const struct resume_secret *sec, int dialer,
    const uint8_t nd[RESUME_NONCE_LEN], const uint8_t nl[RESUME_NONCE_LEN],
    uint8_t out[RESUME_PROOF_LEN])
{
	const uint8_t *p[3] = { sec->id, nd, nl };
	size_t l[3] = { RESUME_ID_LEN, RESUME_NONCE_LEN, RESUME_NONCE_LEN };

	mac(sec->key, sizeof(sec->key), dialer ? "mxd resume dialer" :
	    "mxd resume listener", p, l, 3, out);
}

int
resume_proof_ok(const struct resume_secret *sec, int dialer,
    const uint8_t nd[RESUME_NONCE_LEN], const uint8_t nl[RESUME_NONCE_LEN],
    const uint8_t *proof)
{
	uint8_t want[RESUME_PROOF_LEN];

	resume_proof(sec, dialer, nd, nl, want);
	return (CRYPTO_memcmp(want, proof, sizeof(want)) == 0);
}
