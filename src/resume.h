/*
 * resume: the identity and proofs of a resumable session
 * (docs/PROTOCOL.md section 11), with no I/O.
 *
 * A new session starts with HELLO both ways: 16 random bytes and an
 * ephemeral X25519 public key each.  From the two, each side derives the
 * session id (which crosses the wire when resuming) and a 32-byte key
 * (which never does: it comes from the X25519 secret).  Resuming, the
 * dialer names the session and a fresh nonce (RESUME), the listener
 * answers with its own nonce and its proof (CHALLENGE), the dialer with
 * its proof (PROOF): HMAC-SHA256 under the key over the session id and
 * both nonces, labelled by side so that neither proof can be reflected.
 */
#ifndef MXD_RESUME_H
#define MXD_RESUME_H

#include <stddef.h>
#include <stdint.h>

/* The extension messages of the daemon (kinds below MUX_EXT_ENGINE). */
enum resume_kind {
	RESUME_HELLO = 1,	/* random[16] x25519[32] */
	RESUME_RESUME = 2,	/* sid[16] nonce_d[16] */
	RESUME_CHALLENGE = 3,	/* nonce_l[16] proof_l[32] */
	RESUME_PROOF = 4,	/* proof_d[32] */
	RESUME_REFUSE = 5	/* reason: u8 (enum resume_refusal) */
};

/* Why a resumption was refused (the payload of REFUSE). */
enum resume_refusal {
	REFUSE_UNKNOWN = 1,	/* no such session here (a restart) */
	REFUSE_IDENTITY = 2,	/* TLS identity differs from the session's */
	REFUSE_OFF = 3		/* resumption is off or the peer is leaving */
};

#define RESUME_ID_LEN		16
#define RESUME_NONCE_LEN	16
#define RESUME_PROOF_LEN	32
#define RESUME_HELLO_LEN	48
#define RESUME_RESUME_LEN	(RESUME_ID_LEN + RESUME_NONCE_LEN)
#define RESUME_CHALLENGE_LEN	(RESUME_NONCE_LEN + RESUME_PROOF_LEN)

/* What both sides of a session know once HELLO went both ways. */
struct resume_secret {
	uint8_t		id[RESUME_ID_LEN];
	uint8_t		key[32];
};

/* One side's HELLO while the peer's is awaited. */
struct resume_hello {
	uint8_t		msg[RESUME_HELLO_LEN];	/* what it sends */
	void		*priv;			/* its X25519 key */
};

/* Make this side's HELLO in ${h}.  Returns 0, or -1 (out of memory, or no
 * randomness). */
int resume_hello_new(struct resume_hello *h);

/*
 * Derive into ${out} the secret of the session whose HELLOs were ${h}
 * (ours, as the dialer if ${dialer}) and the peer's ${peer} (${len}
 * bytes).  Returns 0, or -1 if ${peer} is malformed.  ${h} is cleared
 * either way.
 */
int resume_hello_finish(struct resume_hello *h, int dialer,
    const uint8_t *peer, size_t len, struct resume_secret *out);

/* Forget ${h} (its private key).  Safe on a cleared or zeroed one. */
void resume_hello_clear(struct resume_hello *h);

/* Fill ${n} with a fresh nonce.  Returns 0 or -1. */
int resume_nonce(uint8_t n[RESUME_NONCE_LEN]);

/* The proof of the dialer (${dialer}) or the listener, under ${sec}, over
 * the dialer's nonce ${nd} and the listener's ${nl}, into ${out}. */
void resume_proof(const struct resume_secret *sec, int dialer,
    const uint8_t nd[RESUME_NONCE_LEN], const uint8_t nl[RESUME_NONCE_LEN],
    uint8_t out[RESUME_PROOF_LEN]);

/* Nonzero if ${proof} is the right one (resume_proof), in constant time. */
int resume_proof_ok(const struct resume_secret *sec, int dialer,
    const uint8_t nd[RESUME_NONCE_LEN], const uint8_t nl[RESUME_NONCE_LEN],
    const uint8_t *proof);

#endif
