/*
 * metrics: see metrics.h.  Names follow Prometheus conventions: the mxd_
 * prefix, _total for counters, units in the name.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

struct metrics {
	struct evhttp	*http;
	struct daemon	*d;
};

/* One per-service series: its name, type, help, and where its value is. */
static const struct {
	const char	*name, *type, *help;
	size_t		off;
} svc_series[] = {
	{ "mxd_channels_open", "gauge", "Channels open now.",
	    offsetof(struct service_stats, open) },
	{ "mxd_channels_opened_total", "counter", "Channels opened.",
	    offsetof(struct service_stats, opened) },
	{ "mxd_channels_refused_total", "counter",
	    "Connections refused: link down, limit, target refused.",
	    offsetof(struct service_stats, refused) },
	{ "mxd_channels_reset_total", "counter", "Channels ended by a reset.",
	    offsetof(struct service_stats, reset) },
	{ "mxd_received_bytes_total", "counter",
	    "Bytes from the peer written to local sockets.",
	    offsetof(struct service_stats, bytes_in) },
	{ "mxd_sent_bytes_total", "counter",
	    "Bytes read from local sockets sent to the peer.",
	    offsetof(struct service_stats, bytes_out) },
	{ "mxd_flow_control_stalls_total", "counter",
	    "Times a socket was left unread because its channel had no room.",
	    offsetof(struct service_stats, stalls) },
};

/* Append the Prometheus text of ${d} to ${out}. */
static void
metrics_render(struct daemon *d, struct evbuffer *out)
{
	struct link_stats ls;
	struct service *svc;
	double up = link_uptime(d->link);
	size_t i;

	link_get_stats(d->link, &ls);
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
	for (i = 0; i < sizeof(svc_series) / sizeof(svc_series[0]); i++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    svc_series[i].name, svc_series[i].help,
		    svc_series[i].name, svc_series[i].type);
		for (svc = d->services; svc != NULL; svc = svc->next) {
			uint64_t v;

			memcpy(&v, (const char *)&svc->st + svc_series[i].off,
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
	struct metrics *m = arg;
	int up = link_uptime(m->d->link) >= 0;

	evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%s\n",
	    up ? "link up" : "link down");
	evhttp_send_reply(req, up ? HTTP_OK : 503,
	    up ? "OK" : "Service Unavailable", NULL);
}

/* Serve metrics for ${d}. */
struct metrics *
metrics_new(struct daemon *d)
{
	const struct config_addr *a = &d->cfg->metrics;
	struct metrics *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto err0;
	m->d = d;
	if ((m->http = evhttp_new(d->base)) == NULL)
		goto err1;
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	if (evhttp_set_cb(m->http, "/metrics", metrics_cb, m) ||
	    evhttp_set_cb(m->http, "/healthz", healthz_cb, m))
		goto err2;
	if (evhttp_bind_socket(m->http, a->host, (uint16_t)atoi(a->port))) {
		log_error("metrics: cannot listen on %s",
		    log_addr(a->host, a->port).s);
		goto err2;
	}
	log_info("metrics: serving on http://%s/metrics",
	    log_addr(a->host, a->port).s);
	return (m);

err2:
	evhttp_free(m->http);
err1:
	free(m);
err0:
	return (NULL);
}

void
metrics_free(struct metrics *m)
{

	if (m == NULL)
		return;
	evhttp_free(m->http);
	free(m);
}
