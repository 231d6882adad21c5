/*
 * mxd status, the control socket, and what metrics and /healthz say of
 * the link (its peer, TLS, resumption), with two real mxd and a relay
 * between them that the tests cut.
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

struct st {
	struct it_targets *t;
	struct it_relay	*r;
	struct it_mxd	*a, *b;
	const char	*a_conf, *b_conf;
	int		pe;		/* A's echo service */
	int		ma;		/* A's metrics port */
};

/* Start ${p}: B, the relay, A (over TLS), A with a control socket and
 * metrics; wait until the link is up. */
static void
st_start(struct st *p)
{
	const char *timing = "keepalive = 500ms\ntimeout = 2s\n"
	    "connect_timeout = 1s\ndrain_timeout = 1s\n";
	int link = it_free_port();

	memset(p, 0, sizeof(*p));
	p->t = it_targets_start();
	p->pe = it_free_port();
	p->ma = it_free_port();
	it_make_certs();
	p->r = it_relay_start(link);
	p->b_conf = it_write_file("b.conf", it_fmt("[daemon]\ncontrol = %s\n"
	    "[link]\nlisten = %s:%d\n%s%s\n%s", it_path("b.sock"), IT_HOST,
	    link, timing, it_tls_link("b"), it_svc_connect("echo",
	    p->t->port[IT_ECHO])));
	p->a_conf = it_write_file("a.conf", it_fmt("[daemon]\ncontrol = %s\n"
	    "metrics = %s:%d\n[link]\nconnect = %s:%d\nreconnect_min = 10ms\n"
	    "reconnect_max = 100ms\n%s%s\n%s", it_path("a.sock"), IT_HOST,
	    p->ma, IT_HOST, p->r->port, timing, it_tls_link("a"),
	    it_svc_accept("echo", p->pe)));
	p->b = it_mxd_start(p->b_conf);
	it_mxd_wait_log(p->b, "link: waiting for the peer", IT_WAIT_MS);
	p->a = it_mxd_start(p->a_conf);
	it_mxd_wait_log(p->a, "up (connected", IT_WAIT_MS);
	it_mxd_wait_log(p->b, "up (accepted", IT_WAIT_MS);
}

/* mxd status -c ${conf} (with --json if ${json}): its stdout; the exit
 * code must be ${rc}, and stderr goes to *${err} unless NULL. */
static char *
status(const char *conf, int json, int rc, char **err)
{
	const char *args[] = { "status", "-c", conf, json ? "--json" : NULL,
	    NULL };
	char *out, *e;
	int st;

	st = it_run_mxd(args, &out, &e, IT_WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == rc, "status %d: "
	    "%s%s", st, out, e);
	if (err != NULL)
		*err = e;
	return (out);
}

/* The numbers of service ${name}'s row in the text ${out}, into ${v}
 * (open, opened, refused, by peer). */
static void
service_row(const char *out, const char *name, unsigned long v[4])
{
	const char *row = strstr(out, it_fmt("\n%s ", name));

	ck_assert_msg(row != NULL, "no row for %s in:\n%s", name, out);
	ck_assert_int_eq(sscanf(row + strlen(name) + 1, "%lu %lu %lu %lu",
	    &v[0], &v[1], &v[2], &v[3]), 4);
}

/* Write ${name}: a listening mxd with [daemon] control = ${control} and
 * a service that nobody uses; returns its path. */
static const char *
lone_conf(const char *name, const char *control)
{

	return (it_write_file(name, it_fmt("[daemon]\ncontrol = %s\n[link]\n"
	    "listen = %s:%d\n[s]\nconnect = %s:1\n", control, IT_HOST,
	    it_free_port(), IT_HOST)));
}

/* Assert that ${hay} has ${needle}. */
#define HAS(hay, needle)						\
	ck_assert_msg(strstr((hay), (needle)) != NULL,			\
	    "no \"%s\" in:\n%s", (needle), (hay))

/* Poll A's /metrics of ${p} until it has ${line}, within IT_WAIT_MS. */
static void
wait_metric(struct st *p, const char *line)
{
	int64_t deadline = it_now_ms() + IT_WAIT_MS;
	char *m;

	while (strstr((m = it_http_get(p->ma, "/metrics")), line) == NULL)
		ck_assert_msg(it_now_ms() < deadline, "no \"%s\" in:\n%s",
		    line, m);
}

/*
 * A TLS pair with a channel open: mxd status shows the link up, the peer's
 * TLS version and key, and the channel; as JSON too; metrics name the peer
 * in mxd_link_info.  The relay cut: status says resuming with the channel
 * held, /healthz stays 200, mxd_link_resuming is 1; back: one resumption.
 */
START_TEST(status_shows_link_and_services)
{
	struct st p;
	unsigned long v[4];
	struct stat sb;
	int64_t deadline;
	char *out, *h;
	int fd;

	st_start(&p);
	fd = it_connect(p.pe);
	ck_assert_int_ge(fd, 0);
	it_echo(fd, "hello");

	out = status(p.a_conf, 0, 0, NULL);
	HAS(out, "link:        up for ");
	HAS(out, it_fmt("(dials %s:%d)", IT_HOST, p.r->port));
	HAS(out, "TLSv1.3, key sha256:");
	HAS(out, "resumption:  0 channels held");
	service_row(out, "echo", v);
	ck_assert_uint_eq(v[0], 1);
	ck_assert_uint_eq(v[1], 1);
	ck_assert_uint_eq(v[2], 0);
	out = status(p.b_conf, 1, 0, NULL);
	HAS(out, "\"state\":\"up\"");
	HAS(out, "\"role\":\"listen\"");
	HAS(out, "\"tls\":\"TLSv1.3\"");
	HAS(out, "\"peer_pin\":\"sha256:");
	HAS(out, "{\"name\":\"echo\",\"open\":1,\"opened\":1,");
	ck_assert_msg(out[strlen(out) - 1] == '\n' && out[0] == '{', "%s",
	    out);
	/* Root and the service's user only. */
	ck_assert_int_eq(stat(it_path("a.sock"), &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	wait_metric(&p, "mxd_link_info{peer=\"");
	HAS(it_http_get(p.ma, "/metrics"), ",tls=\"TLSv1.3\",peer_pin="
	    "\"sha256:");

	it_relay_cut(p.r);
	it_mxd_wait_log(p.a, "lost:", IT_WAIT_MS);
	out = status(p.a_conf, 0, 0, NULL);
	HAS(out, "link:        resuming for ");
	HAS(out, "RESUMING, 1 channels held");
	h = it_http_get(p.ma, "/healthz");
	HAS(h, " 200 OK");
	HAS(h, "link resuming");
	wait_metric(&p, "\nmxd_link_resuming 1\n");
	wait_metric(&p, "\nmxd_link_channels_held 1\n");

	it_relay_restart(p.r);
	it_mxd_wait_log(p.a, "resumed after", IT_WAIT_MS);
	it_echo(fd, "again");
	wait_metric(&p, "\nmxd_link_resumptions_total 1\n");
	wait_metric(&p, "\nmxd_link_resuming 0\n");
	HAS(status(p.a_conf, 1, 0, NULL), "\"resumed\":1,\"failed\":0");
	/* Not close: the restarted relay (a fork) has a copy of fd. */
	it_finish_client(fd, "echo");
	deadline = it_now_ms() + IT_WAIT_MS;
	while (strstr((out = status(p.b_conf, 1, 0, NULL)),
	    "\"name\":\"echo\",\"open\":0,") == NULL)
		ck_assert_msg(it_now_ms() < deadline, "B: %s", out);
	it_finish();
}
END_TEST

/* No mxd on the socket: exit 1 and a line that says so; control = off
 * says that instead; a daemon's socket goes away when it exits. */
START_TEST(status_without_daemon)
{
	const char *conf = lone_conf("x.conf", it_path("x.sock"));
	const char *off = lone_conf("off.conf", "off");
	struct it_mxd *m;
	struct stat sb;
	char *err;

	(void)status(conf, 0, 1, &err);
	HAS(err, it_fmt("no mxd is running with %s", conf));
	(void)status(off, 0, 1, &err);
	HAS(err, "[daemon] control = off");
	m = it_mxd_start(conf);
	it_mxd_wait_log(m, "waiting for the peer", IT_WAIT_MS);
	HAS(status(conf, 0, 0, NULL), "link:        down for ");
	it_mxd_stop(m, IT_WAIT_MS);
	ck_assert_int_ne(stat(it_path("x.sock"), &sb), 0);
	(void)status(conf, 0, 1, &err);
	HAS(err, "no mxd is running");
	it_finish();
}
END_TEST

/* A second mxd with the same control socket refuses to start; a socket
 * left by a killed one is taken over. */
START_TEST(status_socket_in_use)
{
	const char *conf = lone_conf("y.conf", it_path("y.sock"));
	const char *conf2 = lone_conf("z.conf", it_path("y.sock"));
	struct it_mxd *m, *m2;

	m = it_mxd_start(conf);
	it_mxd_wait_log(m, "waiting for the peer", IT_WAIT_MS);
	m2 = it_mxd_start(conf2);
	ck_assert_int_eq(WEXITSTATUS(it_mxd_wait_exit(m2, IT_WAIT_MS)), 1);
	it_mxd_wait_log(m2, "another mxd with this configuration answers",
	    IT_WAIT_MS);
	it_mxd_kill(m);
	m2 = it_mxd_start(conf2);
	it_mxd_wait_log(m2, "waiting for the peer", IT_WAIT_MS);
	HAS(status(conf2, 0, 0, NULL), "link:        down");
	it_finish();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, it_init, it_cleanup);
	IT_ADD(tc, status_shows_link_and_services);
	IT_ADD(tc, status_without_daemon);
	IT_ADD(tc, status_socket_in_use);
	suite_add_tcase(s, tc);
	return (it_main(s));
}
