/*
 * keygen: see keygen.h.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "keygen.h"
#include "tls.h"

#define KEY_FILE	"mxd.key"
#define CERT_FILE	"mxd.crt"
#define CERT_DAYS	(100 * 365)
/* The longest common name X.520 allows. */
#define CN_MAX		64

/* Print how to run "mxd keygen" to ${f}. */
static void
usage(FILE *f)
{

	fprintf(f, "usage: mxd keygen [-f] DIR\n"
	    "  writes DIR/" KEY_FILE " and DIR/" CERT_FILE " and prints the "
	    "key's pin (for the peer's tls_pin)\n"
	    "  -f  replace existing files\n");
}

/* Print "mxd: keygen: ${what}: " and the first error OpenSSL queued. */
static void
ssl_fail(const char *what)
{
	unsigned long e = ERR_peek_error();
	char why[256] = "unknown error";

	if (e != 0)
		tls_error(e, why, sizeof(why));
	fprintf(stderr, "mxd: keygen: %s: %s\n", what, why);
	ERR_clear_error();
}

/* Make directory ${dir} and its missing parents (mode 0755: the
 * certificate is public, and the key has a mode of its own).  Returns 0, or
 * -1 (reported). */
static int
make_dir(const char *dir)
{
	size_t i, n = strlen(dir);
	char path[PATH_MAX];
	struct stat st;

	if (n >= sizeof(path)) {
		fprintf(stderr, "mxd: keygen: %s: path too long\n", dir);
		return (-1);
	}
	memcpy(path, dir, n + 1);
	/* Each prefix that ends before a '/', then the whole. */
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) == 0)
			(void)chmod(path, 0755);	/* whatever the umask */
		else if (errno != EEXIST) {
			fprintf(stderr, "mxd: keygen: %s: %s\n", path,
			    strerror(errno));
			return (-1);
		}
		path[i] = dir[i];
	}
	errno = 0;
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mxd: keygen: %s: %s\n", dir,
		    strerror(errno == 0 ? ENOTDIR : errno));
		return (-1);
	}
	return (0);
}

/*
 * Open ${dir}/${name} for writing into ${path} (size ${len}), created with
 * ${mode}; an existing file only if ${force}, and then with ${mode} too.
 * Returns the stream, or NULL (reported).
 */
static FILE *
open_new(const char *dir, const char *name, mode_t mode, int force,
    char *path, size_t len)
{
	FILE *f;
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    (force ? O_TRUNC : O_EXCL), mode)) == -1) {
		if (errno == EEXIST)
			fprintf(stderr, "mxd: keygen: %s exists: not "
			    "overwritten (-f replaces it)\n", path);
		else
			fprintf(stderr, "mxd: keygen: %s: %s\n", path,
			    strerror(errno));
		return (NULL);
	}
	if (fchmod(fd, mode) == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "mxd: keygen: %s: %s\n", path, strerror(errno));
		close(fd);
		return (NULL);
	}
	return (f);
}

/* Add extension ${nid} = ${value} to certificate ${x}, issued by itself.
 * Returns 0, or -1. */
static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int r;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return (-1);
	r = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return (r == 1 ? 0 : -1);
}

/* Nonzero if ${s} can be a DNS name in a certificate. */
static int
dns_name(const char *s)
{

	return (s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(s));
}

/* A self-signed certificate for ${key}, for host ${host}; NULL on failure
 * (OpenSSL's error queued). */
static X509 *
make_cert(EVP_PKEY *key, const char *host)
{
	unsigned char serial[16];
	char san[CN_MAX + 8];
	X509_NAME *name;
	BIGNUM *bn = NULL;
	X509 *x;

	if ((x = X509_new()) == NULL)
		goto err0;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto err1;
	serial[0] &= 0x7f;		/* positive */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto err1;
	name = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)host, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0,
	    NULL) == NULL || X509_set_pubkey(x, key) != 1)
		goto err1;
	snprintf(san, sizeof(san), "DNS:%s", host);
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    (dns_name(host) && add_ext(x, NID_subject_alt_name, san)))
		goto err1;
	/* Ed25519 signs without a separate digest. */
	if (X509_sign(x, key, NULL) == 0)
		goto err1;
	BN_free(bn);
	return (x);

err1:
	BN_free(bn);
	X509_free(x);
err0:
	return (NULL);
}

/* Write ${key} and ${cert} into ${dir} (see keygen.h), replacing files if
 * ${force}.  Returns 0, or -1 (reported; nothing is left half written). */
static int
write_files(const char *dir, EVP_PKEY *key, X509 *cert, int force)
{
	char kpath[PATH_MAX], cpath[PATH_MAX];
	FILE *kf, *cf;
	int bad;

	if ((kf = open_new(dir, KEY_FILE, 0600, force, kpath,
	    sizeof(kpath))) == NULL)
		goto err0;
	if ((cf = open_new(dir, CERT_FILE, 0644, force, cpath,
	    sizeof(cpath))) == NULL)
		goto err1;
	bad = PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) != 1;
	bad |= fclose(kf) != 0;
	if (bad) {
		fprintf(stderr, "mxd: keygen: %s: cannot write it\n", kpath);
		fclose(cf);
		goto err2;
	}
	bad = PEM_write_X509(cf, cert) != 1;
	if ((fclose(cf) != 0) | bad) {
		fprintf(stderr, "mxd: keygen: %s: cannot write it\n", cpath);
		goto err2;
	}
	return (0);

err2:
	(void)unlink(cpath);
	(void)unlink(kpath);
	return (-1);
err1:
	fclose(kf);
	(void)unlink(kpath);	/* new, or emptied by -f */
err0:
	return (-1);
}

int
keygen_main(int argc, char *argv[])
{
	char host[HOST_NAME_MAX + 1], pin[TLS_PIN_TEXT];
	int ch, force = 0, rc = 1;
	EVP_PKEY *key;
	X509 *cert;

	optind = 1;
	while ((ch = getopt(argc, argv, "fh")) != -1) {
		switch (ch) {
		case 'f':
			force = 1;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return (2);
	}
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "mxd");
	host[CN_MAX] = '\0';
	if (make_dir(argv[optind]))
		goto err0;
	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		ssl_fail("cannot make a key");
		goto err0;
	}
	if ((cert = make_cert(key, host)) == NULL) {
		ssl_fail("cannot make a certificate");
		goto err1;
	}
	if (tls_pin(cert, NULL, pin)) {
		ssl_fail("cannot encode the public key");
		goto err2;
	}
	if (write_files(argv[optind], key, cert, force))
		goto err2;
	printf("%s\n", pin);
	rc = fflush(stdout) != 0;

err2:
	X509_free(cert);
err1:
	EVP_PKEY_free(key);
err0:
	return (rc);
}
