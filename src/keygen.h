/*
 * keygen: "mxd keygen [-f] DIR", the first step of pairing two hosts over
 * TLS without a CA.  Makes DIR (and its parents) if needed and writes a new
 * Ed25519 private key, DIR/mxd.key (mode 0600), and a self-signed
 * certificate for it, DIR/mxd.crt (mode 0644; CN and DNS name the host
 * name, valid for 100 years: with pin-only trust nobody checks the dates).
 * An existing file is never overwritten without -f.  The only line on
 * stdout is the key's pin, "sha256:<base64>", the tls_pin line the peer
 * needs; errors go to stderr and name the file.
 */
#ifndef MXD_KEYGEN_H
#define MXD_KEYGEN_H

/* Run "mxd keygen" with the ${argc} arguments ${argv} (${argv}[0] is
 * "keygen").  Returns the exit status: 0, 1 on failure, 2 on bad usage. */
int keygen_main(int argc, char *argv[]);

#endif
