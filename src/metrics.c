/*
 * metrics: see metrics.h.  Names follow Prometheus conventions: the mxd_
 * prefix, _total for counters, units in the name.
 */
#include <sys/socket.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "dial.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "ms.h"
#include "relay.h"
#include "service.h"

/*
 * What one client of the endpoint may take.  A request is a line and a
 * few headers, without a body: a longer one is answered 413 and closed,
 * rather than buffered (an endless header line grew memory without bound,
 * and each read scanned it all again for the line's end, stalling the
 * loop).  A connection idle for CONN_TIMEOUT_MS is closed.  At most
 * CONNS_MAX are open; a new one beyond closes the oldest: a scrape, which
 * sends its request at once and is answered in the same loop pass, still
 * gets through while someone holds connections open.  (Disabling the
 * listener at the cap would keep descriptors bounded too, but leave the
 * scrape waiting in the listen queue behind them.)
 */
#define HEADERS_MAX	8192
#define BODY_MAX	1024
#define CONN_TIMEOUT_MS	5000
#define CONNS_MAX	32

/*
 * A client connection.  evhttp has no hook for one ending, nor a cap: each
 * gets a pass-through bufferevent_filter over its socket bufferevent
 * (evhttp_set_bevcb; bufferevent_setfd on the filter sets the socket's
 * descriptor), and the filter's free_context tells us when it is gone.
 *
 * The filter's own output path does not fit evhttp in libevent 2.1: it
 * calls the write callback ("all written") as soon as it has moved the
 * bytes to the socket bufferevent, and evhttp then closes the socket with
 * the end of the response unwritten; and bytes added while writing is
 * disabled wait until more are added, which evhttp does not do (a second
 * request on a kept-alive connection got no answer).  So the output
 * filter never moves anything (mconn_out), the bytes go to the socket's
 * output as they are added (mconn_moved), and the write callback runs
 * once that has drained (mconn_drained), as with a plain socket
 * bufferevent.
 */
struct mconn {
	struct metrics	*m;
	struct bufferevent *bev;	/* the filter evhttp uses */
	struct evbuffer	*out;		/* the socket bufferevent's output */
	struct evbuffer_cb_entry *drain;	/* mconn_drained on out */
	struct evbuffer_cb_entry *move;	/* mconn_moved on bev's output */
	struct mconn	*prev, *next;	/* open ones, oldest first */
};

struct metrics {
	struct evhttp	*http;
	struct daemon	*d;
	struct listener	*lst;
	struct mconn	*head, *tail;	/* open, not being closed */
	unsigned	nopen;		/* ... how many */
	unsigned	nconns;		/* connections not yet freed */
	int		freed;		/* metrics_free: the last one frees m */
};

/* One per-service series: its name, type, help, and where its value is. */
static const struct {
	const char	*name, *type, *help;
	size_t		off;
} svc_series[] = {
	{ "mxd_channels_open", "gauge", "Channels open now.",
	    offsetof(struct channel_stats, open) },
	{ "mxd_channels_opened_total", "counter", "Channels opened.",
	    offsetof(struct channel_stats, opened) },
	{ "mxd_channels_refused_total", "counter",
	    "Connections refused: link down, limit, target refused.",
	    offsetof(struct channel_stats, refused) },
	{ "mxd_channels_reset_total", "counter", "Channels ended by a reset.",
	    offsetof(struct channel_stats, reset) },
	{ "mxd_received_bytes_total", "counter",
	    "Bytes from the peer written to local sockets.",
	    offsetof(struct channel_stats, bytes_in) },
	{ "mxd_sent_bytes_total", "counter",
	    "Bytes read from local sockets sent to the peer.",
	    offsetof(struct channel_stats, bytes_out) },
	{ "mxd_flow_control_stalls_total", "counter",
	    "Times a socket was left unread because its channel had no room.",
	    offsetof(struct channel_stats, stalls) },
	{ "mxd_channels_refused_by_peer_total", "counter",
	    "Channels the peer reset before sending a byte (no such service, "
	    "target down, a limit there: the peer's log says which).",
	    offsetof(struct channel_stats, refused_by_peer) },
};

/* Append the Prometheus text of ${d} to ${out}. */
static void
metrics_render(struct daemon *d, struct evbuffer *out)
{
	struct link_stats ls;
	struct link_info in;
	struct service *svc;
	double up = link_uptime(d->link);
	size_t i;

	link_get_stats(d->link, &ls);
	link_get_info(d->link, &in);
	evbuffer_add_printf(out,
	    "# HELP mxd_link_up 1 while the link to the peer is up.\n"
	    "# TYPE mxd_link_up gauge\nmxd_link_up %d\n"
	    "# HELP mxd_link_uptime_seconds How long the link has been up.\n"
	    "# TYPE mxd_link_uptime_seconds gauge\n"
	    "mxd_link_uptime_seconds %.3f\n"
	    "# HELP mxd_link_dials_total Connection attempts to the peer.\n"
	    "# TYPE mxd_link_dials_total counter\nmxd_link_dials_total %ju\n"
	    "# HELP mxd_link_ups_total Times the link came up.\n"
	    "# TYPE mxd_link_ups_total counter\nmxd_link_ups_total %ju\n"
	    "# HELP mxd_link_rtt_seconds Smoothed ping round trip.\n"
	    "# TYPE mxd_link_rtt_seconds gauge\nmxd_link_rtt_seconds %.6f\n"
	    "# HELP mxd_link_channels Channels open on the link.\n"
	    "# TYPE mxd_link_channels gauge\nmxd_link_channels %u\n"
	    "# HELP mxd_link_pending_connects Channels from the peer whose "
	    "target connect is under way.\n"
	    "# TYPE mxd_link_pending_connects gauge\n"
	    "mxd_link_pending_connects %u\n"
	    "# HELP mxd_link_buffered_bytes Bytes held for the link's "
	    "channels.\n"
	    "# TYPE mxd_link_buffered_bytes gauge\n"
	    "mxd_link_buffered_bytes %ju\n"
	    "# HELP mxd_link_tls_refused_total Peer connections refused by "
	    "TLS.\n"
	    "# TYPE mxd_link_tls_refused_total counter\n"
	    "mxd_link_tls_refused_total %ju\n"
	    "# HELP mxd_limit_refused_total New channels refused by a limit.\n"
	    "# TYPE mxd_limit_refused_total counter\n",
	    up >= 0, up >= 0 ? up : 0, (uintmax_t)ls.dials, (uintmax_t)ls.ups,
	    ls.rtt_us / 1e6, ls.channels, ls.pending, (uintmax_t)ls.buffered,
	    (uintmax_t)ls.tls_refused);
	for (i = 0; i < NLIMITS; i++)
		evbuffer_add_printf(out,
		    "mxd_limit_refused_total{limit=\"%s\"} %ju\n",
		    link_limit_keys[i], (uintmax_t)ls.refused[i]);
	evbuffer_add_printf(out,
	    "# HELP mxd_link_resuming 1 while the link's connection is lost "
	    "and its session held.\n"
	    "# TYPE mxd_link_resuming gauge\nmxd_link_resuming %d\n"
	    "# HELP mxd_link_channels_held Channels held while resuming.\n"
	    "# TYPE mxd_link_channels_held gauge\n"
	    "mxd_link_channels_held %u\n"
	    "# HELP mxd_link_resumptions_total Sessions resumed on a new "
	    "connection.\n"
	    "# TYPE mxd_link_resumptions_total counter\n"
	    "mxd_link_resumptions_total %ju\n"
	    "# HELP mxd_link_resume_failures_total Held sessions that ended "
	    "(timeout, refused by the peer, another peer).\n"
	    "# TYPE mxd_link_resume_failures_total counter\n"
	    "mxd_link_resume_failures_total %ju\n"
	    "# HELP mxd_link_resent_bytes_total Bytes sent again on "
	    "resuming.\n"
	    "# TYPE mxd_link_resent_bytes_total counter\n"
	    "mxd_link_resent_bytes_total %ju\n"
	    "# HELP mxd_link_resume_seconds_total Time sessions were held "
	    "before they resumed.\n"
	    "# TYPE mxd_link_resume_seconds_total counter\n"
	    "mxd_link_resume_seconds_total %.3f\n",
	    in.state == LINK_RESUMING, in.held, (uintmax_t)ls.resumptions,
	    (uintmax_t)ls.resume_failures, (uintmax_t)ls.resent,
	    ls.resume_us / 1e6);
	/* The peer as labels of a constant series, Prometheus style. */
	evbuffer_add_printf(out,
	    "# HELP mxd_link_info The current session's peer: address, TLS "
	    "version (plain: none) and key pin.\n"
	    "# TYPE mxd_link_info gauge\n");
	if (in.peer[0] != '\0')
		evbuffer_add_printf(out, "mxd_link_info{peer=\"%s\",tls=\"%s\","
		    "peer_pin=\"%s\"} 1\n", in.peer, in.tls != NULL ? in.tls :
		    "none", in.pin);
	for (i = 0; i < sizeof(svc_series) / sizeof(svc_series[0]); i++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    svc_series[i].name, svc_series[i].help,
		    svc_series[i].name, svc_series[i].type);
		for (svc = d->services; svc != NULL; svc = svc->next) {
			uint64_t v;

			memcpy(&v, (const char *)svc->st + svc_series[i].off,
			    sizeof(v));
			evbuffer_add_printf(out, "%s{service=\"%s\"} %ju\n",
			    svc_series[i].name, svc->name, (uintmax_t)v);
		}
	}
}

/* evhttp: GET /metrics. */
static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	metrics_render(m->d, out);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

/* evhttp: GET /healthz. */
static void
healthz_cb(struct evhttp_request *req, void *arg)
{
	static const char *const says[] = {
		[LINK_DOWN] = "link down", [LINK_UP] = "link up",
		[LINK_RESUMING] = "link resuming"
	};
	struct metrics *m = arg;
	struct link_info in;
	int up;

	/* Resuming is not down: the channels are open, only stalled. */
	link_get_info(m->d->link, &in);
	up = in.state != LINK_DOWN;
	evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%s\n",
	    says[in.state]);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, up ? HTTP_OK : 503,
	    up ? "OK" : "Service Unavailable", NULL);
}

/* Take ${c} off the list of open connections of its metrics. */
static void
mconn_unlink(struct mconn *c)
{
	struct metrics *m = c->m;

	*(c->prev != NULL ? &c->prev->next : &m->head) = c->next;
	*(c->next != NULL ? &c->next->prev : &m->tail) = c->prev;
	c->prev = c->next = NULL;
	m->nopen--;
}

/*
 * Close the oldest open connection of ${m}: shut its socket down, so that
 * evhttp reads EOF and frees it its own way (it owns the connection).
 */
static void
mconn_close_oldest(struct metrics *m)
{
	static struct log_limit lim = LOG_LIMIT("metrics: too many clients");
	struct mconn *c = m->head;
	int fd = bufferevent_getfd(c->bev);

	mconn_unlink(c);
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
	log_limited(&lim, NULL, LOG_WARN, "metrics: %u clients connected: "
	    "closing the oldest", CONNS_MAX);
}

/* bufferevent_filter output: mconn_moved does it (see struct mconn). */
static enum bufferevent_filter_result
mconn_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{

	(void)src;
	(void)dst;
	(void)lim;
	(void)mode;
	(void)arg;
	return (BEV_NEED_MORE);
}

/* evbuffer: evhttp added to ${b}, the output of connection ${arg}: on to
 * the socket's output. */
static void
mconn_moved(struct evbuffer *b, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct mconn *c = arg;

	if (info->n_added > 0)
		(void)evbuffer_add_buffer(c->out, b);
}

/* evbuffer: bytes were added to or written from the socket output ${b}
 * of connection ${arg}; once all is written, the response is out. */
static void
mconn_drained(struct evbuffer *b, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct mconn *c = arg;

	if (info->n_deleted > 0 && evbuffer_get_length(b) == 0)
		bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

/* bufferevent_filter free_context: connection ${arg} is gone. */
static void
mconn_gone(void *arg)
{
	struct mconn *c = arg;
	struct metrics *m = c->m;

	if (c->prev != NULL || m->head == c)
		mconn_unlink(c);
	/* The socket bufferevent outlives its filter by a little. */
	evbuffer_remove_cb_entry(c->out, c->drain);
	if (c->move != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		    c->move);
	free(c);
	if (--m->nconns == 0 && m->freed)
		free(m);
}

/* evhttp: a client of ${arg} connected; its bufferevent, in ${base}. */
static struct bufferevent *
mconn_new(struct event_base *base, void *arg)
{
	struct metrics *m = arg;
	struct bufferevent *sock;
	struct mconn *c;

	listener_accepted(m->lst);
	if (m->nopen >= CONNS_MAX)
		mconn_close_oldest(m);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto err0;
	if ((sock = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto err1;
	c->out = bufferevent_get_output(sock);
	if ((c->drain = evbuffer_add_cb(c->out, mconn_drained, c)) == NULL)
		goto err2;
	if ((c->bev = bufferevent_filter_new(sock, NULL, mconn_out,
	    BEV_OPT_CLOSE_ON_FREE, mconn_gone, c)) == NULL)
		goto err3;
	/* From here on mconn_gone frees c, with the filter. */
	c->m = m;
	c->prev = m->tail;
	*(m->tail != NULL ? &m->tail->next : &m->head) = c;
	m->tail = c;
	m->nopen++;
	m->nconns++;
	if ((c->move = evbuffer_add_cb(bufferevent_get_output(c->bev),
	    mconn_moved, c)) == NULL) {
		bufferevent_free(c->bev);
		goto err0;
	}
	return (c->bev);

err3:
	evbuffer_remove_cb_entry(c->out, c->drain);
err2:
	bufferevent_free(sock);
err1:
	free(c);
err0:
	/* evhttp makes a plain bufferevent then: one uncounted client. */
	log_error("metrics: out of memory");
	return (NULL);
}

/* Serve metrics for ${d}. */
struct metrics *
metrics_new(struct daemon *d)
{
	const struct config_addr *a = &d->cfg->metrics;
	struct timeval tv = ms_timeval(CONN_TIMEOUT_MS);
	struct metrics *m;
	char err[128];

	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto err0;
	m->d = d;
	if ((m->http = evhttp_new(d->base)) == NULL)
		goto err1;
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(m->http, HEADERS_MAX);
	evhttp_set_max_body_size(m->http, BODY_MAX);
	evhttp_set_timeout_tv(m->http, &tv);
	evhttp_set_bevcb(m->http, mconn_new, m);
	if (evhttp_set_cb(m->http, "/metrics", metrics_cb, m) ||
	    evhttp_set_cb(m->http, "/healthz", healthz_cb, m))
		goto err2;
	if ((m->lst = listener_new(d->base, a->host, a->port, CONNS_MAX, NULL,
	    NULL, "metrics", err, sizeof(err))) == NULL) {
		log_error("metrics: cannot listen on %s: %s",
		    log_addr(a->host, a->port).s, err);
		goto err2;
	}
	if (evhttp_bind_listener(m->http, m->lst->evl) == NULL) {
		log_error("metrics: cannot listen on %s: out of memory",
		    log_addr(a->host, a->port).s);
		goto err3;
	}
	listener_disown(m->lst);
	log_info("metrics: serving on http://%s/metrics",
	    log_addr(a->host, a->port).s);
	return (m);

err3:
	listener_free(m->lst);
err2:
	evhttp_free(m->http);
err1:
	free(m);
err0:
	return (NULL);
}

/* Stop serving ${m}; it is freed once its last connection is. */
void
metrics_free(struct metrics *m)
{

	if (m == NULL)
		return;
	listener_free(m->lst);		/* its pause, before evhttp frees it */
	evhttp_free(m->http);
	/* The connections' filters go once libevent finalizes them. */
	if (m->nconns == 0)
		free(m);
	else
		m->freed = 1;
}
