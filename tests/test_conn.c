/*
 * Unit tests of conn, the link's byte stream, on a socket pair in one
 * process: two TLS conns (the handshake run by bufferevent_openssl, as
 * handshake.c runs it) moving bytes both ways with small socket buffers,
 * so that each side's writes wait for the socket while it reads.
 */
#include <sys/socket.h>
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "itest.h"
#include "conn.h"
#include "tls.h"

/* One end: its conn, the bytes it has received, and how it ended. */
struct end {
	struct bufferevent *bev;	/* during the handshake */
	SSL		*ssl;
	struct conn	*c;
	int		connected;
	size_t		got;		/* bytes received */
	size_t		sent;		/* bytes queued */
	int		corrupt;	/* a received byte was not pattern's */
	int		failed;
	char		why[160];
};

/* The byte at offset ${i} of a stream. */
static unsigned char
pattern(size_t i)
{

	return ((unsigned char)(i ^ (i >> 8) ^ (i >> 16)));
}

static void
end_readable(struct conn *c, void *arg)
{
	struct end *e = arg;
	struct evbuffer *in = conn_input(c);
	unsigned char buf[16384];
	size_t n, i;

	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0 &&
	    n != (size_t)-1) {
		for (i = 0; i < n; i++)
			if (buf[i] != pattern(e->got + i))
				e->corrupt = 1;
		e->got += n;
	}
}

static void
end_drained(struct conn *c, void *arg)
{

	(void)c;
	(void)arg;
}

static void
end_failed(struct conn *c, const char *why, void *arg)
{
	struct end *e = arg;

	(void)c;
	e->failed = 1;
	snprintf(e->why, sizeof(e->why), "%s", why);
}

static const struct conn_handlers end_handlers = {
	end_readable, end_drained, end_failed
};

static void
end_event(struct bufferevent *bev, short what, void *arg)
{
	struct end *e = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		e->connected = 1;
	else
		e->failed = 1;
}

/* A context with a fresh self-signed P-256 certificate; no verification
 * (conn has nothing to do with trust). */
static SSL_CTX *
test_ctx(void)
{
	EVP_PKEY *key;
	X509 *x;
	SSL_CTX *ctx;

	ck_assert_ptr_nonnull(key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256"));
	ck_assert_ptr_nonnull(x = X509_new());
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	ck_assert_ptr_nonnull(ctx = SSL_CTX_new(TLS_method()));
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	ck_assert_int_eq(SSL_CTX_use_certificate(ctx, x), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return (ctx);
}

/* Two ends in one event loop. */
struct pair {
	struct event_base *base;
	SSL_CTX		*ctx;
	struct end	a, b;
};

/* Run pair ${p}'s loop until ${cond} holds, an end fails, or 10 s have
 * passed. */
#define RUN_UNTIL(p, cond) do {						\
	struct timespec t0_, t_;					\
	clock_gettime(CLOCK_MONOTONIC, &t0_);				\
	while (!(cond) && !(p)->a.failed && !(p)->b.failed) {		\
		event_base_loop((p)->base, EVLOOP_ONCE | EVLOOP_NONBLOCK); \
		clock_gettime(CLOCK_MONOTONIC, &t_);			\
		if (t_.tv_sec - t0_.tv_sec > 10)			\
			break;						\
	}								\
} while (0)

/* Fail the test if an end of ${p} failed. */
#define ASSERT_UP(p)							\
	ck_assert_msg(!(p)->a.failed && !(p)->b.failed, "failed: %s%s",	\
	    (p)->a.why, (p)->b.why)

/* Run ${p}'s loop until ${c} writes no more: its unsent bytes stay the
 * same over 100 passes of the loop (a socket pair is writable at once). */
static void
run_until_full(struct pair *p, struct conn *c)
{
	size_t last = 0;
	int same = 0;

	while (same < 100) {
		event_base_loop(p->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		same = conn_unsent(c) == last ? same + 1 : 0;
		last = conn_unsent(c);
	}
}

/* SSL message callback: count the key updates ${arg} (an int[2]) received
 * ([0]) and sent ([1]). */
static void
count_key_updates(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	int *n = arg;

	(void)version;
	(void)ssl;
	if (content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    *(const unsigned char *)buf == SSL3_MT_KEY_UPDATE)
		n[write_p != 0]++;
}

/*
 * Open ${p}: a TLS pair over a Unix socket pair whose buffers hold
 * ${sockbuf} bytes, or (${sockbuf} 0) over TCP on loopback with the
 * system's buffers; end a accepts if ${a_accepts}.  The sockets become the
 * conns' (conn_free closes them): these tests run without it_cleanup.
 */
static void
pair_open(struct pair *p, int sockbuf, int a_accepts)
{
	int sv[2], i, l, port;
	struct end *e[2] = { &p->a, &p->b };

	memset(p, 0, sizeof(*p));
	ck_assert_ptr_nonnull(p->base = event_base_new());
	p->ctx = test_ctx();
	if (sockbuf == 0) {
		l = it_listen(1, 0, &port);
		sv[1] = it_connect(port);
		ck_assert_int_ge(sv[1], 0);
		sv[0] = it_accept(l);
		it_close(l);
	} else {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	}
	for (i = 0; i < 2; i++) {
		ck_assert(sockbuf == 0 || setsockopt(sv[i], SOL_SOCKET,
		    SO_SNDBUF, &sockbuf, sizeof(sockbuf)) == 0);
		ck_assert_int_eq(evutil_make_socket_nonblocking(sv[i]), 0);
		ck_assert_ptr_nonnull(e[i]->ssl = SSL_new(p->ctx));
		ck_assert_ptr_nonnull(e[i]->bev =
		    bufferevent_openssl_socket_new(p->base, sv[i], e[i]->ssl,
		    (i == 0) == a_accepts ? BUFFEREVENT_SSL_ACCEPTING :
		    BUFFEREVENT_SSL_CONNECTING, 0));
		bufferevent_setcb(e[i]->bev, NULL, NULL, end_event, e[i]);
		bufferevent_enable(e[i]->bev, EV_READ | EV_WRITE);
	}
	RUN_UNTIL(p, p->a.connected && p->b.connected);
	ck_assert_msg(p->a.connected && p->b.connected, "no TLS handshake");
	for (i = 0; i < 2; i++) {
		SSL_set_default_read_buffer_len(e[i]->ssl, TLS_READ_BUF);
		bufferevent_setcb(e[i]->bev, NULL, NULL, NULL, NULL);
		ck_assert_ptr_nonnull(e[i]->c = conn_new_tls(e[i]->bev));
		e[i]->bev = NULL;
		conn_set_handlers(e[i]->c, &end_handlers, e[i]);
	}
}

/* Close and free ${p}. */
static void
pair_close(struct pair *p)
{

	conn_free(p->a.c);
	conn_free(p->b.c);
	SSL_CTX_free(p->ctx);
	event_base_free(p->base);
}

/* Append the next ${n} bytes of ${e}'s stream to its output, in pieces
 * of uneven sizes (records and chains do not line up), and write them. */
static void
send_bytes(struct end *e, size_t n)
{
	unsigned char buf[70001];
	size_t k, i;

	while (n > 0) {
		k = 1 + (e->sent * 2654435761u) % sizeof(buf);
		if (k > n)
			k = n;
		for (i = 0; i < k; i++)
			buf[i] = pattern(e->sent + i);
		ck_assert_int_eq(evbuffer_add(conn_output(e->c), buf, k), 0);
		e->sent += k;
		n -= k;
	}
	conn_flush(e->c);
}

/*
 * A TLS 1.3 key update that asks for one back, arriving while the side that
 * must answer cannot write (its socket is full because the other side is
 * not reading), with the data behind it read ahead in the same read.  Once
 * the answer is out, that data must still be delivered: the socket has
 * nothing more to say, so nothing but conn itself can go back to it.
 */
START_TEST(tls_key_update_while_full)
{
	struct pair p;
	const size_t down = 4 << 20, up = 64 << 10;
	int ku[2] = { 0, 0 };

	pair_open(&p, 16384, _i);

	/* a fills the socket to b, which is not reading. */
	conn_read(p.b.c, 0);
	send_bytes(&p.a, down);
	run_until_full(&p, p.a.c);
	ASSERT_UP(&p);
	ck_assert_uint_gt(conn_unsent(p.a.c), 0);

	/* b asks for a key update, and sends data behind it that a's read
	 * ahead takes at once. */
	ck_assert_int_eq(SSL_key_update(p.b.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
	SSL_set_msg_callback(p.a.ssl, count_key_updates);
	SSL_set_msg_callback_arg(p.a.ssl, ku);
	send_bytes(&p.b, up);
	RUN_UNTIL(&p, conn_unsent(p.b.c) == 0);
	ASSERT_UP(&p);

	/* b reads again: a's records, its key update's among them, go out,
	 * and a must deliver what it read ahead. */
	conn_read(p.b.c, 1);
	RUN_UNTIL(&p, p.b.got == down && p.a.got == up);
	ASSERT_UP(&p);
	ck_assert_uint_eq(p.b.got, down);
	ck_assert_msg(p.a.got == up, "a received %zu of %zu bytes", p.a.got,
	    up);
	ck_assert(!p.a.corrupt && !p.b.corrupt);
	ck_assert_int_eq(ku[0], 1);
	ck_assert_int_eq(ku[1], 1);	/* a answered with its own */
	pair_close(&p);
}
END_TEST

/*
 * Both ends write 16 MiB at once, every byte arrives, in order: through
 * 16 KiB socket buffers (_i 0), where writes keep stopping half-way while
 * reads go on, and over TCP with the system's buffers (_i 1), where reads
 * reach their limit.
 */
START_TEST(tls_both_ways)
{
	struct pair p;
	const size_t n = 16 << 20;

	pair_open(&p, _i == 0 ? 16384 : 0, 1);
	send_bytes(&p.a, n);
	send_bytes(&p.b, n);
	RUN_UNTIL(&p, p.a.got == n && p.b.got == n);
	ASSERT_UP(&p);
	ck_assert_uint_eq(p.a.got, n);
	ck_assert_uint_eq(p.b.got, n);
	ck_assert(!p.a.corrupt && !p.b.corrupt);
	pair_close(&p);
}
END_TEST

/*
 * A little more than one read's limit (READ_MAX, 256 KiB) waits, all of it
 * already in the socket, when the reader starts: the read stops at the
 * limit with the last record in OpenSSL's read-ahead buffer and the socket
 * empty, so no readable event will come for it.  It must arrive all the
 * same.
 */
START_TEST(tls_read_limit_with_records_ahead)
{
	struct pair p;
	/* 16 full records and a short one: its 222 bytes of ciphertext
	 * still fit in the read-ahead buffer (TLS_READ_BUF and OpenSSL's
	 * headroom) with the 16th, so the socket is left empty; with 1,000
	 * they do not, and the socket would wake the reader again. */
	const size_t n = 256 * 1024 + 200;

	/* A Unix socket queues what is written at the reader at once (TCP
	 * would hold some back in the writer's queue until the window
	 * opened); 1 MiB asks for what the system allows, 416 KiB here. */
	pair_open(&p, 1 << 20, 1);
	conn_read(p.b.c, 0);
	send_bytes(&p.a, n);
	RUN_UNTIL(&p, conn_unsent(p.a.c) == 0);
	ASSERT_UP(&p);
	ck_assert_msg(conn_unsent(p.a.c) == 0, "%zu bytes not written",
	    conn_unsent(p.a.c));
	conn_read(p.b.c, 1);
	RUN_UNTIL(&p, p.b.got == n);
	ASSERT_UP(&p);
	ck_assert_msg(p.b.got == n, "b received %zu of %zu bytes", p.b.got, n);
	ck_assert(!p.b.corrupt);
	pair_close(&p);
}
END_TEST

static Suite *
conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *t = tcase_create("tls");

	tcase_set_timeout(t, 60);
	tcase_add_loop_test(t, tls_key_update_while_full, 0, 2);
	tcase_add_loop_test(t, tls_both_ways, 0, 2);
	tcase_add_test(t, tls_read_limit_with_records_ahead);
	suite_add_tcase(s, t);
	return (s);
}

int
main(void)
{

	return (it_main(conn_suite()));
}
