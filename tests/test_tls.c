/*
 * Integration tests of TLS on the link: real mxd processes ($MXD_BIN) on
 * 127.0.0.1 (see itest.h), with certificates made for each test by the
 * openssl command: a CA and a second, unrelated one; a.mxd.test (side A),
 * b.mxd.test (side B), c.mxd.test (a name nobody expects), a2 (a.mxd.test
 * again with another key), old (a.mxd.test, expired) and evil (a.mxd.test
 * signed by the other CA).
 *
 * The good pair works; every bad peer is refused, with a log line giving
 * its address and the reason, while the daemon keeps serving its good peer.
 * "mxd keygen" makes a key and a self-signed certificate, and a pair of such
 * keys trusts each other by pin alone (no CA).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "itest.h"

/* The tls_pin line for the key of certificate ${name} (a.pin: base64,
 * b.pin: hex). */
static char *
pin_line(const char *name)
{
	char buf[128];
	FILE *f;
	size_t n;

	f = fopen(it_path(it_fmt("%s.pin", name)), "r");
	ck_assert_msg(f != NULL, "%s.pin: %s", name, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	ck_assert_msg(n == 44 || n == 64, "%s.pin: \"%s\"", name, buf);
	return (it_fmt("tls_pin = sha256:%s\n", buf));
}

/*
 * Write configuration ${file}: [link] ${mode} ("listen" or "connect") on
 * ${port} with the TLS lines ${tls}, then ${services}.  Returns its path.
 */
static const char *
write_conf_tls(const char *file, const char *mode, int port, const char *tls,
    const char *services)
{

	return (it_write_file(file, it_fmt("[daemon]\nlog_level = debug\n\n"
	    "[link]\n%s = %s:%d\nreconnect_min = 100ms\nreconnect_max = 500ms\n"
	    "connect_timeout = 2s\ndrain_timeout = 5s\n%s\n%s", mode, IT_HOST,
	    port, tls, services)));
}

/*
 * The same with certificate ${cert} (NULL: tls = off) checked against
 * ca.pem and ${extra} [link] lines.
 */
static const char *
write_conf(const char *file, const char *mode, int port, const char *cert,
    const char *extra, const char *services)
{
	const char *tls = cert != NULL ? it_tls_link(cert) : "tls = off\n";

	return (write_conf_tls(file, mode, port, it_fmt("%s%s", tls,
	    extra != NULL ? extra : ""), services));
}

/*
 * Run "mxd keygen" (with -f if ${force}) into ${dir} of the test's
 * directory; its stdout and stderr in *${out} and *${err}.  Returns the wait
 * status.
 */
static int
keygen(const char *dir, int force, char **out, char **err)
{
	const char *args[4] = { "keygen", NULL, NULL, NULL };

	args[1] = force ? "-f" : it_path(dir);
	args[2] = force ? it_path(dir) : NULL;
	return (it_run_mxd(args, out, err, IT_WAIT_MS));
}

/* The pin of the public key in certificate file ${path}, as tls_pin takes
 * it. */
static const char *
cert_pin(const char *path)
{
	unsigned char md[SHA256_DIGEST_LENGTH], *der = NULL;
	char b64[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];
	X509 *x;
	FILE *f;
	int n;

	ck_assert_msg((f = fopen(path, "r")) != NULL, "%s: %s", path,
	    strerror(errno));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_msg(x != NULL, "%s: not a PEM certificate", path);
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	ck_assert_int_gt(n, 0);
	SHA256(der, (size_t)n, md);
	OPENSSL_free(der);
	X509_free(x);
	EVP_EncodeBlock((unsigned char *)b64, md, sizeof(md));
	return (it_fmt("sha256:%s", b64));
}

/* "mxd keygen" into ${dir}, which must work: the pin it printed (its only
 * line, without the newline). */
static const char *
keygen_pin(const char *dir)
{
	char *out, *err;
	int st;

	st = keygen(dir, 0, &out, &err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mxd keygen %s: "
	    "status %#x, stderr %s", dir, st, err);
	ck_assert_msg(strlen(out) == 52 && strncmp(out, "sha256:", 7) == 0 &&
	    out[51] == '\n', "mxd keygen printed \"%s\"", out);
	out[51] = '\0';
	return (out);
}

/* [link] lines for pin-only TLS: the certificate and key mxd keygen wrote
 * into ${dir}, and the peer's pin ${pin}. */
static const char *
pin_link(const char *dir, const char *pin)
{

	return (it_fmt("tls = on\ntls_cert = %s/mxd.crt\n"
	    "tls_key = %s/mxd.key\ntls_pin = %s\n", it_path(dir),
	    it_path(dir), pin));
}

/* Start mxd on ${conf}, listening for the link. */
static struct it_mxd *
start_listener(const char *conf)
{
	struct it_mxd *m = it_mxd_start(conf);

	it_mxd_wait_log(m, "link: waiting for the peer", IT_WAIT_MS);
	return (m);
}

/* Fail unless one line of ${m}'s log (after its mark) holds both ${a} and
 * ${b}. */
static void
assert_line(struct it_mxd *m, const char *a, const char *b)
{
	char line[1024];
	int found = 0;
	FILE *f;

	ck_assert_msg((f = fopen(m->log, "r")) != NULL, "%s: %s", m->log,
	    strerror(errno));
	if (fseeko(f, m->mark, SEEK_SET) == 0)
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = strstr(line, a) != NULL &&
			    strstr(line, b) != NULL;
	fclose(f);
	if (!found)
		it_mxd_show_log(m);
	ck_assert_msg(found, "%s: no line with \"%s\" and \"%s\"", m->log, a,
	    b);
}

/* A new channel to ${port} echoes. */
static void
echo_new(int port, const char *msg)
{
	int fd = it_connect(port);

	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_echo(fd, msg);
	it_close(fd);
}

/* The good pair of one test: A dials B, both pinning and naming each
 * other; an echo service from A's ${port} to B's target (good_b_conf
 * writes B's configuration). */
struct pair {
	struct it_targets *t;
	int	link, port;
	struct it_mxd *a, *b;
};

static const char *
good_b_conf(struct pair *p)
{

	return (write_conf("b.conf", "listen", p->link, "b",
	    it_fmt("tls_peer_name = a.mxd.test\n%s", pin_line("a")),
	    it_svc_connect("echo", p->t->port[IT_ECHO])));
}

static void
good_pair(struct pair *p)
{

	it_make_certs();
	p->t = it_targets_start();
	p->link = it_free_port();
	p->port = it_free_port();
	p->b = start_listener(good_b_conf(p));
	p->a = it_mxd_start(write_conf("a.conf", "connect", p->link, "a",
	    it_fmt("tls_peer_name = b.mxd.test\n%s", pin_line("b")),
	    it_svc_accept("echo", p->port)));
	it_mxd_wait_log(p->a, "up (connected, TLSv1.3)", IT_WAIT_MS);
	it_mxd_wait_log(p->b, "up (accepted, TLSv1.3)", IT_WAIT_MS);
}

/*
 * Run ${n} echo flows through ${port} at once, the i-th of (i + 1) * ${unit}
 * bytes, the last of ${last} bytes instead if that is nonzero, from seeds
 * ${seed} on; all must come back intact within ${ms}.
 */
static void
flows(int port, int n, size_t unit, size_t last, uint64_t seed, int ms)
{
	struct it_flow f[65];
	char msg[256];
	int i;

	ck_assert_int_le(n, 65);
	memset(f, 0, sizeof(f));
	for (i = 0; i < n; i++) {
		f[i].port = port;
		f[i].size = (size_t)(i + 1) * unit;
		f[i].seed = seed + (uint64_t)i;
	}
	if (last != 0)
		f[n - 1].size = last;
	ck_assert_msg(it_flows_run(f, (size_t)n, ms, msg, sizeof(msg)) == 0,
	    "flows: %s", msg);
}

/* The good pair carries channels, small and large. */
START_TEST(tls_good_pair)
{
	struct pair p;

	good_pair(&p);
	echo_new(p.port, "hello over TLS");
	flows(p.port, 4, 1024 * 1024, 0, 40, 60000);
	it_finish();
}
END_TEST

/* Many channels at once push the TLS link's writes past what the socket
 * takes (records wait in the buffer, the rest in the queue), both ways. */
START_TEST(tls_many_flows)
{
	struct pair p;

	good_pair(&p);
	flows(p.port, 65, 16 * 1024, 16u << 20, 100, 120000);
	it_finish();
}
END_TEST

/* The TLS link dies with its peer and comes back with it, five times,
 * without a descriptor left behind; channels work after each return. */
START_TEST(tls_peer_restart)
{
	struct pair p;
	int round, fds;

	good_pair(&p);
	echo_new(p.port, "before");
	/* Settled: the first echo's descriptor may still be closing (this
	 * test failed 1 run in 12, 13 against a baseline of 12). */
	fds = it_fd_settled(p.a);
	for (round = 0; round < 5; round++) {
		it_mxd_mark(p.a);
		it_mxd_kill(p.b);
		it_mxd_wait_log(p.a, ": lost: ", IT_WAIT_MS);
		it_mxd_restart(p.b);
		it_mxd_wait_log(p.a, "up (connected, TLSv1.3)", IT_WAIT_MS);
		echo_new(p.port, "after a restart");
	}
	ck_assert_int_eq(it_fd_wait(p.a->pid, fds, IT_WAIT_MS), fds);
	it_finish();
}
END_TEST

/* Peers that B, the listener, must refuse. */
static const struct bad_peer {
	const char	*cert;		/* the peer's; NULL: tls = off */
	const char	*refusal;	/* in B's log */
} bad_peers[] = {
	{ "evil", "TLS refused: certificate verify failed: unable to get "
	    "local issuer certificate" },
	{ "old", "TLS refused: certificate verify failed: certificate has "
	    "expired" },
	{ "c", "TLS refused: certificate /CN=c.mxd.test is not for a.mxd.test "
	    "(tls_peer_name)" },
	{ "a2", "TLS refused: public key of certificate /CN=a.mxd.test does "
	    "not match tls_pin" },
	{ NULL, "TLS refused: not a TLS handshake (is the peer's tls off?)" },
};

/*
 * Make certificate ${name}.pem and its key, for /CN=b.mxd.test and IP
 * address ${ip} (its only subjectAltName), signed by ca (it_make_certs).
 */
static void
make_ip_cert(const char *name, const char *ip)
{
	int st;

	st = system(it_fmt("(cd '%s' && openssl ecparam -name prime256v1 "
	    "-genkey -noout -out %s.key && openssl req -new -key %s.key "
	    "-subj /CN=b.mxd.test -out %s.csr && printf "
	    "'subjectAltName=IP:%s\\n' >%s.ext && openssl x509 -req -in %s.csr "
	    "-CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile %s.ext "
	    "-out %s.pem) >>'%s' 2>&1", it_path(""), name, name, name, ip,
	    name, name, name, name, it_path("certs.log")));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making %s.pem "
	    "failed (status %#x): see %s", name, st, it_path("certs.log"));
}

/*
 * tls_peer_name may be an IP address, checked against the certificate's IP
 * addresses: B's certificate is for 127.0.0.1, which A asks for (_i 0: the
 * link comes up), or A asks for 127.0.0.2 (_i 1: refused, saying so).
 */
START_TEST(tls_peer_name_ip)
{
	int link = it_free_port();
	struct it_mxd *a;
	const char *want = "TLS refused: certificate /CN=b.mxd.test is not "
	    "for IP address 127.0.0.2 (tls_peer_name";

	it_make_certs();
	make_ip_cert("bip", "127.0.0.1");
	start_listener(write_conf("b.conf", "listen", link, "bip", NULL, ""));
	a = it_mxd_start(write_conf("a.conf", "connect", link, "a",
	    _i == 0 ? "tls_peer_name = 127.0.0.1\n" :
	    "tls_peer_name = 127.0.0.2\n", ""));
	if (_i == 0) {
		it_mxd_wait_log(a, "up (connected, TLSv1.3)", IT_WAIT_MS);
	} else {
		it_mxd_wait_log(a, want, IT_WAIT_MS);
		ck_assert_msg(it_mxd_log_count(a, "up (") == 0, "A took it");
	}
	it_finish();
}
END_TEST

/* A bad peer C dials B: refused before any frame, while B keeps A. */
START_TEST(tls_listener_refuses)
{
	const struct bad_peer *bp = &bad_peers[_i];
	struct it_mxd *c;
	struct pair p;
	int fd;

	good_pair(&p);
	fd = it_connect(p.port);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_echo(fd, "before");
	it_mxd_mark(p.b);
	c = it_mxd_start(write_conf("c.conf", "connect", p.link, bp->cert,
	    NULL, ""));
	it_mxd_wait_log(p.b, bp->refusal, IT_WAIT_MS);
	assert_line(p.b, "link 127.0.0.1:", bp->refusal);
	/* Refused again on redial; never a session, A untouched. */
	it_mxd_mark(p.b);
	it_mxd_wait_log(p.b, bp->refusal, IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(p.b, "up (accepted") &&
	    !it_mxd_log_has(p.b, "replaced"), "B took the bad peer");
	it_echo(fd, "during");
	echo_new(p.port, "a new channel");
	it_mxd_stop(c, IT_WAIT_MS);
	it_echo(fd, "after");
	it_close(fd);
	it_finish();
}
END_TEST

/* Listeners that A, the dialer, must refuse. */
static const struct bad_listener {
	const char	*cert;		/* the listener's; NULL: tls = off */
	const char	*a_extra;	/* A's [link] lines; "PIN": b's pin */
	const char	*a_log, *b_log;	/* in their logs */
} bad_listeners[] = {
	{ "evil", "", "TLS refused: certificate verify failed: unable to get "
	    "local issuer certificate", NULL },
	{ "old", "", "TLS refused: certificate verify failed: certificate has "
	    "expired", "tls_cert" },
	{ "c", "tls_peer_name = b.mxd.test\n", "TLS refused: certificate "
	    "/CN=c.mxd.test is not for b.mxd.test (tls_peer_name)", NULL },
	{ "c", "PIN", "TLS refused: public key of certificate /CN=c.mxd.test "
	    "does not match tls_pin (it is sha256:", NULL },
	{ NULL, "", "TLS refused: not a TLS handshake (is the peer's tls "
	    "off?)", "the peer sent a TLS handshake, but tls = off here" },
};

/* A dials a bad listener: refused, logged, retried; never up. */
START_TEST(tls_dialer_refuses)
{
	const struct bad_listener *bl = &bad_listeners[_i];
	int link = it_free_port();
	struct it_mxd *a, *b;

	it_make_certs();
	b = start_listener(write_conf("b.conf", "listen", link, bl->cert, NULL,
	    ""));
	a = it_mxd_start(write_conf("a.conf", "connect", link, "a",
	    strcmp(bl->a_extra, "PIN") == 0 ? pin_line("b") : bl->a_extra,
	    ""));
	it_mxd_wait_log(a, bl->a_log, IT_WAIT_MS);
	assert_line(a, "link 127.0.0.1:", bl->a_log);
	if (bl->b_log != NULL)
		it_mxd_wait_log(b, bl->b_log, IT_WAIT_MS);
	it_mxd_mark(a);
	it_mxd_wait_log(a, bl->a_log, IT_WAIT_MS);	/* it retries */
	ck_assert_msg(!it_mxd_log_has(a, "up (connected"), "A took it");
	it_finish();
}
END_TEST

/* TLS 1.3 only by default: a TLS 1.2 client (openssl s_client) is refused;
 * with tls_min_version = 1.2 (_i 1) its handshake passes. */
START_TEST(tls_version)
{
	int link = it_free_port(), st;
	struct it_mxd *b;

	it_make_certs();
	b = start_listener(write_conf("b.conf", "listen", link, "b",
	    _i == 1 ? "tls_min_version = 1.2\n" : NULL, ""));
	st = system(it_fmt("cd '%s' && timeout 10 openssl s_client -tls1_2 "
	    "-cert a.pem -key a.key -CAfile ca.pem -connect %s:%d "
	    "</dev/null >s_client.log 2>&1", it_path(""), IT_HOST, link));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 124,
	    "s_client: status %#x", st);
	if (_i == 0)
		it_mxd_wait_log(b, "TLS refused: unsupported protocol",
		    IT_WAIT_MS);
	else	/* the handshake passed, then s_client spoke no yamux */
		it_mxd_wait_log(b, "closed before the peer answered a ping",
		    IT_WAIT_MS);
	ck_assert_msg(_i == 0 || !it_mxd_log_has(b, "TLS refused"),
	    "a TLS 1.2 client refused with tls_min_version = 1.2");
	it_finish();
}
END_TEST

/* A TLS client of the CA's certificate ${cert}, not yet connected. */
static SSL *
client_new(const char *cert)
{
	SSL_CTX *ctx;
	SSL *ssl;

	ck_assert((ctx = SSL_CTX_new(TLS_client_method())) != NULL);
	ck_assert(SSL_CTX_use_certificate_chain_file(ctx, it_path(it_fmt(
	    "%s.pem", cert))) == 1 && SSL_CTX_use_PrivateKey_file(ctx,
	    it_path(it_fmt("%s.key", cert)), SSL_FILETYPE_PEM) == 1 &&
	    SSL_CTX_load_verify_locations(ctx, it_path("ca.pem"), NULL) == 1);
	ck_assert((ssl = SSL_new(ctx)) != NULL);
	SSL_CTX_free(ctx);		/* ssl holds it */
	return (ssl);
}

/* Send the ClientHello of ${ssl} on ${fd} (connected), and no more; then
 * ${ssl} goes on on ${fd} (SSL_connect again finishes the handshake). */
static void
client_hello(SSL *ssl, int fd)
{
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	char *p;
	long n;

	ck_assert(rb != NULL && wb != NULL);
	SSL_set_bio(ssl, rb, wb);
	ck_assert_msg(SSL_connect(ssl) == -1 && SSL_get_error(ssl, -1) ==
	    SSL_ERROR_WANT_READ, "SSL_connect did not wait for the server");
	n = BIO_get_mem_data(wb, &p);
	ck_assert_msg(n > 0 && it_send_all(fd, p, (size_t)n) == 0,
	    "sending the ClientHello: %s", strerror(errno));
	ck_assert(SSL_set_fd(ssl, fd) == 1);	/* frees rb and wb */
}

/*
 * Connections that never finish their handshake: one that says nothing
 * (_i 0) and one that sends one byte of a ClientHello (_i 1) are dropped
 * once HANDSHAKE_HELLO_MS (1 s) has passed without a whole ClientHello,
 * however long connect_timeout is (2 s here); one that sends its
 * ClientHello and no more (_i 2) after connect_timeout.
 */
START_TEST(tls_handshake_deadline)
{
	static const char *const want[] = {
		"TLS refused: no TLS ClientHello within 1s",
		"TLS refused: no TLS ClientHello within 1s",
		"TLS refused: handshake timed out",
	};
	int link = it_free_port(), fd;
	struct it_mxd *b;
	int64_t t0, ms;
	SSL *ssl = NULL;
	char c;
	long r;

	it_make_certs();
	b = start_listener(write_conf("b.conf", "listen", link, "b", NULL,
	    ""));
	t0 = it_now_ms();
	fd = it_connect(link);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	if (_i == 1)
		ck_assert(send(fd, "\x16", 1, 0) == 1);
	if (_i == 2)
		client_hello((ssl = client_new("a")), fd);
	it_mxd_wait_log(b, want[_i], IT_WAIT_MS);
	do
		r = it_recv_wait(fd, &c, 1, IT_WAIT_MS);
	while (r == 1 && _i == 2);	/* the server's flight, then EOF */
	ms = it_now_ms() - t0;
	ck_assert_msg(r == 0 || r == -ECONNRESET, "got %ld", r);
	ck_assert_msg(ms >= (_i == 2 ? 1900 : 900), "dropped after %jd ms",
	    (intmax_t)ms);
	printf("tls_handshake_deadline: %s: dropped after %jd ms\n",
	    _i == 0 ? "nothing sent" : _i == 1 ? "one byte" : "a ClientHello",
	    (intmax_t)ms);
	SSL_free(ssl);
	it_close(fd);
	it_finish();
}
END_TEST

/* mxd -t loads the TLS files as the daemon would: each error names the
 * file, the key and what is wrong. */
START_TEST(tls_check_files)
{
	static const struct {
		const char *cert, *key;	/* a name, or "missing" */
		const char *bad, *file;	/* the key and file named */
		int line;		/* the key's */
		const char *why;
	} cases[] = {
		{ "missing", "a", "tls_cert", "missing.pem", 4,
		    "No such file or directory" },
		{ "a", "missing", "tls_key", "missing.key", 5,
		    "No such file or directory" },
		{ "a", "b", "tls_key", "b.key", 5, "key values mismatch" },
	};
	const char *path, *args[4] = { "-t", "-c", NULL, NULL };
	char *out, *err, *want;
	size_t i;
	int st;

	it_make_certs();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		path = it_write_file("t.conf", it_fmt("[link]\nlisten = %s:1\n"
		    "tls = on\ntls_cert = %s\ntls_key = %s\ntls_ca = %s\n",
		    IT_HOST, it_path(it_fmt("%s.pem", cases[i].cert)),
		    it_path(it_fmt("%s.key", cases[i].key)),
		    it_path("ca.pem")));
		args[2] = path;
		want = it_fmt("mxd: %s:%d: [link] %s %s: %s\n", path,
		    cases[i].line, cases[i].bad, it_path(cases[i].file),
		    cases[i].why);
		st = it_run_mxd(args, &out, &err, IT_WAIT_MS);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1,
		    "case %zu: status %#x, stderr %s", i, st, err);
		ck_assert_msg(strcmp(err, want) == 0,
		    "case %zu: stderr \"%s\", wanted \"%s\"", i, err, want);
	}
	it_finish();
}
END_TEST

/*
 * mxd keygen makes its directory, a key only its owner may read and a
 * certificate for it, and prints the key's pin as tls_pin takes it (its
 * only line); it never overwrites a file without -f (the error names the
 * file, and nothing is left behind), and -f makes a new key.
 */
START_TEST(tls_keygen)
{
	const char *key, *crt, *pin, *pin2;
	char *out, *err;
	struct stat sb;
	SSL_CTX *ctx;
	int st;

	pin = keygen_pin("keys/a");
	key = it_path("keys/a/mxd.key");
	crt = it_path("keys/a/mxd.crt");
	ck_assert_msg(stat(key, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (sb.st_mode & 07777) == 0600, "%s: mode %o", key,
	    (unsigned)sb.st_mode);
	ck_assert_msg(stat(crt, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (sb.st_mode & 07777) == 0644, "%s: mode %o", crt,
	    (unsigned)sb.st_mode);
	ck_assert_str_eq(pin, cert_pin(crt));
	/* The key is the certificate's (loading it checks). */
	ck_assert((ctx = SSL_CTX_new(TLS_method())) != NULL);
	ck_assert_msg(SSL_CTX_use_certificate_chain_file(ctx, crt) == 1 &&
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1,
	    "the key and the certificate do not go together");
	SSL_CTX_free(ctx);

	st = keygen("keys/a", 0, &out, &err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "again without "
	    "-f: status %#x", st);
	ck_assert_str_eq(err, it_fmt("mxd: keygen: %s exists: not overwritten "
	    "(-f replaces it)\n", key));
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(cert_pin(crt), pin);
	/* A certificate alone is not overwritten either, and the new key
	 * made beside it is gone again. */
	ck_assert(unlink(key) == 0);
	st = keygen("keys/a", 0, &out, &err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "with only the "
	    "certificate: status %#x", st);
	ck_assert_str_eq(err, it_fmt("mxd: keygen: %s exists: not overwritten "
	    "(-f replaces it)\n", crt));
	ck_assert_msg(stat(key, &sb) == -1 && errno == ENOENT, "%s left "
	    "behind", key);

	st = keygen("keys/a", 1, &out, &err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "-f: status %#x, "
	    "stderr %s", st, err);
	pin2 = it_fmt("%.*s", (int)strcspn(out, "\n"), out);
	ck_assert_str_ne(pin2, pin);
	ck_assert_str_eq(pin2, cert_pin(crt));
	ck_assert_msg(stat(key, &sb) == 0 && (sb.st_mode & 07777) == 0600,
	    "%s: mode %o after -f", key, (unsigned)sb.st_mode);
	it_finish();
}
END_TEST

/*
 * Pairing without a CA: on each side the key of mxd keygen and the peer's
 * pin.  mxd -t passes, the link comes up over TLS 1.3 and carries channels.
 */
START_TEST(tls_pin_only_pair)
{
	const char *args[4] = { "-t", "-c", NULL, NULL }, *conf[2];
	int link = it_free_port(), port = it_free_port(), i, st;
	struct it_targets *t = it_targets_start();
	const char *pa = keygen_pin("a"), *pb = keygen_pin("b");
	struct it_mxd *a, *b;
	char *out, *err;

	conf[0] = write_conf_tls("b.conf", "listen", link, pin_link("b", pa),
	    it_svc_connect("echo", t->port[IT_ECHO]));
	conf[1] = write_conf_tls("a.conf", "connect", link, pin_link("a", pb),
	    it_svc_accept("echo", port));
	for (i = 0; i < 2; i++) {
		args[2] = conf[i];
		st = it_run_mxd(args, &out, &err, IT_WAIT_MS);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "mxd -t %s: status %#x, stderr %s", conf[i], st, err);
	}
	b = start_listener(conf[0]);
	a = it_mxd_start(conf[1]);
	it_mxd_wait_log(a, "up (connected, TLSv1.3)", IT_WAIT_MS);
	it_mxd_wait_log(b, "up (accepted, TLSv1.3)", IT_WAIT_MS);
	echo_new(port, "pinned, no CA");
	it_finish();
}
END_TEST

/*
 * Without a CA the pin is all there is: a peer whose key is not the pinned
 * one is refused, by the listener (_i 0) or the dialer (_i 1), with a line
 * giving the key it has; the link never comes up.
 */
START_TEST(tls_pin_only_refuses)
{
	int link = it_free_port();
	const char *pa = keygen_pin("a"), *pb = keygen_pin("b");
	const char *pc = keygen_pin("c"), *want;
	struct it_mxd *a, *b, *m;

	b = start_listener(write_conf_tls("b.conf", "listen", link,
	    pin_link("b", _i == 0 ? pc : pa), ""));
	a = it_mxd_start(write_conf_tls("a.conf", "connect", link,
	    pin_link("a", _i == 1 ? pc : pb), ""));
	m = _i == 0 ? b : a;
	want = it_fmt("does not match tls_pin (it is %s)", _i == 0 ? pa : pb);
	it_mxd_wait_log(m, want, IT_WAIT_MS);
	assert_line(m, "TLS refused: public key of certificate /CN=", want);
	it_mxd_mark(m);
	it_mxd_wait_log(m, want, IT_WAIT_MS);	/* again on the redial */
	ck_assert_msg(it_mxd_log_count(a, "up (") == 0 &&
	    it_mxd_log_count(b, "up (") == 0, "the link came up");
	it_finish();
}
END_TEST

/*
 * A reload while a TLS handshake is under way (the ClientHello answered,
 * the client's certificate not yet sent): the handshake completes and is
 * checked with the configuration in force then (the one it started with
 * is freed by the reload; under ASan a use of it fails the test).
 */
START_TEST(tls_reload_mid_handshake)
{
	int link = it_free_port(), fd, idle;
	struct it_mxd *b;
	SSL *ssl;

	it_make_certs();
	ssl = client_new("a");
	b = start_listener(write_conf("b.conf", "listen", link, "b",
	    "tls_peer_name = a.mxd.test\n", ""));
	idle = it_fd_settled(b);
	fd = it_connect(link);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	client_hello(ssl, fd);
	ck_assert_int_eq(it_fd_wait(b->pid, idle + 1, IT_WAIT_MS), idle + 1);
	it_mxd_mark(b);
	it_mxd_signal(b, SIGHUP);
	it_mxd_wait_log(b, "reloaded", IT_WAIT_MS);
	ck_assert_msg(SSL_connect(ssl) == 1, "the handshake failed");
	it_mxd_wait_log(b, "accepted; up once the peer answers a ping",
	    IT_WAIT_MS);
	ck_assert_msg(!it_mxd_log_has(b, "TLS refused"), "B refused the peer");
	SSL_free(ssl);
	it_close(fd);
	it_finish();
}
END_TEST

/* A reload with TLS files that cannot be loaded changes nothing; a good
 * one is taken, and with the same TLS settings it leaves the link up. */
START_TEST(tls_reload)
{
	struct pair p;

	good_pair(&p);
	it_mxd_mark(p.b);
	write_conf("b.conf", "listen", p.link, "missing", NULL,
	    it_svc_connect("echo", p.t->port[IT_ECHO]));
	it_mxd_signal(p.b, SIGHUP);
	it_mxd_wait_log(p.b, "reload failed, keeping the running "
	    "configuration", IT_WAIT_MS);
	echo_new(p.port, "still here");
	good_b_conf(&p);
	it_mxd_signal(p.b, SIGHUP);
	it_mxd_wait_log(p.b, "reloaded", IT_WAIT_MS);
	echo_new(p.port, "and after");
	ck_assert_msg(!it_mxd_log_has(p.b, "TLS settings changed") &&
	    !it_mxd_log_has(p.a, "lost:") && !it_mxd_log_has(p.a, "Go Away"),
	    "a reload that changed nothing re-established the link");
	it_finish();
}
END_TEST

/* The configuration ${file} of tls_reload_rekeys: B (${port} 0) listens on
 * 0.0.0.0:${link}, or A dials it with metrics on ${port}; [link] lines
 * ${tls}; then ${services}.  Returns its path. */
static const char *
rekey_conf(const char *file, int port, int link, const char *tls,
    const char *services)
{

	return (it_write_file(file, it_fmt("[daemon]\n%s\n[link]\n"
	    "%s:%d\nreconnect_min = 100ms\nreconnect_max = 500ms\n"
	    "connect_timeout = 2s\ndrain_timeout = 5s\n%s\n%s", port ?
	    it_fmt("metrics = %s:%d", IT_HOST, port) : "", port ?
	    it_fmt("connect = %s", IT_HOST) : "listen = 0.0.0.0", link, tls,
	    services)));
}

/* Wait until ${m}, whose metrics are on ${port}, has ${line} in them. */
static void
wait_metric(int port, const char *line)
{
	int64_t deadline = it_now_ms() + IT_WAIT_MS;
	char *got;

	while (strstr((got = it_http_get(port, "/metrics")), line) == NULL)
		ck_assert_msg(it_now_ms() < deadline, "no \"%s\" in:\n%s",
		    line, got);
}

/*
 * A reload that changes the link's security re-establishes it under the
 * new settings.  A plain pair with a channel open; B reloaded to tls = on
 * says so, gives the plain link Go Away (the channel finishes on it) and,
 * that link being up beyond loopback, warns about it; A, still plain, is
 * refused.  A reloaded to tls = on: the link is up over TLS 1.3 (so say
 * the metrics), new channels echo, and the old channel still does.  Then A
 * reloaded with a tls_pin that B's key does not match: the TLS link gets
 * Go Away, and the link does not come back: each attempt is refused, and
 * so are new channels.
 */
START_TEST(tls_reload_rekeys)
{
	struct it_targets *t = it_targets_start();
	int link = it_free_port(), pe = it_free_port(), ma = it_free_port();
	const char *b_svc = it_svc_connect("echo", t->port[IT_ECHO]);
	const char *a_svc = it_svc_accept("echo", pe), *a_tls;
	const char *refused = "TLS refused: public key of certificate "
	    "/CN=b.mxd.test does not match tls_pin";
	struct it_mxd *a, *b;
	char c;
	int fd;

	it_make_certs();
	b = start_listener(rekey_conf("b.conf", 0, link, "tls = off\n",
	    b_svc));
	it_mxd_wait_log(b, "plain link (tls = off) listening on 0.0.0.0:",
	    IT_WAIT_MS);
	a = it_mxd_start(rekey_conf("a.conf", ma, link, "tls = off\n", a_svc));
	it_mxd_wait_log(a, "up (connected)", IT_WAIT_MS);
	fd = it_connect(pe);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	it_echo(fd, "plain");

	rekey_conf("b.conf", 0, link, it_fmt("%stls_peer_name = a.mxd.test\n",
	    it_tls_link("b")), b_svc);
	it_mxd_mark(b);
	it_mxd_signal(b, SIGHUP);
	it_mxd_wait_log(b, "TLS settings changed (tls): re-establishing the "
	    "link (1 open channels finish on the old one)", IT_WAIT_MS);
	it_mxd_wait_log(b, "still a plain link (it came before tls = on): its "
	    "1 open channels finish on it", IT_WAIT_MS);
	it_mxd_wait_log(b, "TLS refused: not a TLS handshake", IT_WAIT_MS);

	a_tls = it_fmt("%stls_peer_name = b.mxd.test\n", it_tls_link("a"));
	rekey_conf("a.conf", ma, link, a_tls, a_svc);
	it_mxd_mark(a);
	it_mxd_signal(a, SIGHUP);
	it_mxd_wait_log(a, "TLS settings changed (tls): re-establishing the "
	    "link", IT_WAIT_MS);
	it_mxd_wait_log(a, "up (connected, TLSv1.3)", IT_WAIT_MS);
	it_mxd_wait_log(b, "up (accepted, TLSv1.3)", IT_WAIT_MS);
	wait_metric(ma, it_fmt("mxd_link_info{peer=\"%s:%d\",tls=\"TLSv1.3\","
	    "peer_pin=\"sha256:", IT_HOST, link));
	echo_new(pe, "over TLS");
	it_echo(fd, "still on the plain link");
	it_finish_client(fd, "the plain link's channel");
	it_mxd_wait_log(b, "finished draining, closed", IT_WAIT_MS);

	rekey_conf("a.conf", ma, link, it_fmt("%s%s", a_tls, pin_line("a")),
	    a_svc);
	it_mxd_mark(a);
	it_mxd_signal(a, SIGHUP);
	it_mxd_wait_log(a, "TLS settings changed (tls_pin): re-establishing "
	    "the link (0 open channels", IT_WAIT_MS);
	it_mxd_wait_log(a, refused, IT_WAIT_MS);
	it_mxd_mark(a);
	it_mxd_wait_log(a, refused, IT_WAIT_MS);	/* tried again */
	ck_assert_msg(!it_mxd_log_has(a, "up (connected"), "the link came "
	    "back");
	wait_metric(ma, "\nmxd_link_up 0\n");
	ck_assert_msg(strstr(it_http_get(ma, "/metrics"), "mxd_link_info{") ==
	    NULL, "metrics name a peer");
	fd = it_connect(pe);
	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	ck_assert_msg(it_recv_wait(fd, &c, 1, IT_WAIT_MS) <= 0, "a channel "
	    "was opened");
	it_close(fd);
	it_finish();
}
END_TEST

/* A plain link listening beyond loopback is warned about; on loopback it
 * is not. */
START_TEST(plain_link_warning)
{
	int p1 = it_free_port(), p2 = it_free_port();
	struct it_mxd *m1, *m2;

	m1 = start_listener(it_write_file("wide.conf", it_fmt(
	    "[link]\nlisten = 0.0.0.0:%d\n", p1)));
	it_mxd_wait_log(m1, "plain link (tls = off) listening on 0.0.0.0:",
	    IT_WAIT_MS);
	m2 = start_listener(it_write_file("local.conf", it_fmt(
	    "[link]\nlisten = %s:%d\ntls = off\n", IT_HOST, p2)));
	ck_assert_msg(!it_mxd_log_has(m2, "plain link"), "warned on loopback");
	it_finish();
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *t = tcase_create("tls");

	tcase_set_timeout(t, 120);
	tcase_add_checked_fixture(t, it_init, it_cleanup);
	IT_ADD(t, tls_good_pair);
	IT_ADD(t, tls_many_flows);
	IT_ADD(t, tls_peer_restart);
	IT_ADD_LOOP(t, tls_listener_refuses,
	    (int)(sizeof(bad_peers) / sizeof(bad_peers[0])));
	IT_ADD_LOOP(t, tls_dialer_refuses,
	    (int)(sizeof(bad_listeners) / sizeof(bad_listeners[0])));
	IT_ADD_LOOP(t, tls_version, 2);
	IT_ADD_LOOP(t, tls_handshake_deadline, 3);
	IT_ADD(t, tls_check_files);
	IT_ADD_LOOP(t, tls_peer_name_ip, 2);
	IT_ADD(t, tls_keygen);
	IT_ADD(t, tls_pin_only_pair);
	IT_ADD_LOOP(t, tls_pin_only_refuses, 2);
	IT_ADD(t, tls_reload);
	IT_ADD(t, tls_reload_mid_handshake);
	IT_ADD(t, tls_reload_rekeys);
	IT_ADD(t, plain_link_warning);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{

	return (it_main(tls_suite()));
}
