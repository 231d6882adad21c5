/*
 * link: see link.h.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "dial.h"
#include "link.h"
#include "log.h"
#include "relay.h"
#include "service.h"
#include "session.h"

/* How often sessions on their way out are checked for open channels. */
#define REAP_MS	200

/* One session of the link: the current one, or one finishing. */
struct lsess {
	struct session	*sess;
	struct link	*l;
	uint64_t	up_since;	/* session_now_us() when it came up */
	char		peer[64];	/* address, for logs */
	int		draining;	/* Go Away seen or sent */
	struct lsess	*next;
};

struct link {
	struct daemon	*d;
	struct lsess	*cur;		/* where new channels go */
	struct lsess	*all;		/* cur and the draining ones */
	struct evconnlistener *listener;
	struct dial	*dial;
	struct event	*redial_ev;
	struct event	*reap_ev;
	uint64_t	backoff_ms;
	int		failing;	/* dial failures logged once */
	struct link_stats st;
	int		draining;	/* the daemon is shutting down */
};

static void link_redial(struct link *);

/* Write the peer address of ${fd} into ${buf} (size ${len}). */
static void
peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (void *)&ss;

			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (void *)&ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, host,
			    sizeof(host));
			port = ntohs(sin6->sin6_port);
		}
	}
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
	    host, port);
}

/* Free lsess ${ls}: its session and every channel still on it. */
static void
lsess_free(struct lsess *ls)
{
	struct link *l = ls->l;
	struct lsess **pp;

	for (pp = &l->all; *pp != ls; pp = &(*pp)->next)
		continue;
	*pp = ls->next;
	if (l->cur == ls)
		l->cur = NULL;
	session_free(ls->sess);
	free(ls);
}

/* Move ${ls} out of the current slot: it keeps its channels until done. */
static void
lsess_retire(struct lsess *ls)
{
	struct timeval tv = { 0, REAP_MS * 1000 };
	struct link *l = ls->l;

	ls->draining = 1;
	if (l->cur == ls)
		l->cur = NULL;
	if (!event_pending(l->reap_ev, EV_TIMEOUT, NULL))
		event_add(l->reap_ev, &tv);
}

/* reap_ev: close the sessions on their way out that have no channels. */
static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	struct lsess *ls, *next;
	int left = 0;

	(void)fd;
	(void)what;
	for (ls = l->all; ls != NULL; ls = next) {
		next = ls->next;
		if (!ls->draining)
			continue;
		if (mux_stream_count(session_mux(ls->sess)) == 0) {
			log_info("link %s: finished draining, closed", ls->peer);
			lsess_free(ls);
		} else {
			left = 1;
		}
	}
	if (left) {
		struct timeval tv = { 0, REAP_MS * 1000 };

		event_add(l->reap_ev, &tv);
	}
}

/* session: the peer opened a stream. */
static int
on_stream_open(struct session *sess, struct mux_stream *s, void *arg)
{
	struct lsess *ls = arg;

	(void)sess;
	return (service_stream_open(ls->l->d, s));
}

/* session: the peer sent Go Away ${code}. */
static void
on_goaway(struct session *sess, uint32_t code, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;
	int was_cur = l->cur == ls;

	(void)sess;
	log_info("link %s: peer sent Go Away (%u); open channels finish, new "
	    "ones take a fresh link", ls->peer, code);
	lsess_retire(ls);
	if (was_cur && !l->d->cfg->link_listen && !l->draining) {
		l->backoff_ms = l->d->cfg->reconnect_min_ms;
		link_redial(l);
	}
}

/* session: the link is gone (${why}). */
static void
on_down(struct session *sess, const char *why, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;
	int was_cur = l->cur == ls;
	uint32_t n = mux_stream_count(session_mux(sess));

	if (was_cur || n > 0)
		log_warn("link %s: down: %s (%u channels reset)", ls->peer,
		    why, n);
	else
		log_info("link %s: closed: %s", ls->peer, why);
	lsess_free(ls);
	if (was_cur && !l->d->cfg->link_listen && !l->draining)
		link_redial(l);
}

static const struct session_handlers handlers = {
	.on_stream_open = on_stream_open,
	.on_stream_readable = relay_on_readable,
	.on_stream_writable = relay_on_writable,
	.on_stream_close = relay_on_close,
	.on_goaway = on_goaway,
	.on_down = on_down,
};

/* Make ${fd}, connected to the peer, the current session of ${l}. */
static void
link_adopt(struct link *l, int fd)
{
	const struct config *cfg = l->d->cfg;
	struct session_params sp;
	struct conn *conn;
	struct lsess *ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL)
		goto err0;
	ls->l = l;
	ls->up_since = session_now_us();
	peer_name(fd, ls->peer, sizeof(ls->peer));
	mux_config_default(&sp.mux, !cfg->link_listen);
	sp.mux.window = cfg->window;
	sp.mux.max_streams = cfg->max_channels;
	sp.keepalive_ms = cfg->keepalive_ms;
	sp.timeout_ms = cfg->timeout_ms;
	if (sock_nonblock(fd) || (conn = conn_new_plain(l->d->base, fd)) == NULL)
		goto err1;
	if ((ls->sess = session_new(l->d->base, conn, &sp, &handlers,
	    ls)) == NULL)
		goto err2;
	if (l->cur != NULL) {
		log_warn("link %s: replaced by a new link from %s",
		    l->cur->peer, ls->peer);
		lsess_free(l->cur);
	}
	ls->next = l->all;
	l->all = ls;
	l->cur = ls;
	l->st.ups++;
	log_info("link %s: up (%s)", ls->peer,
	    cfg->link_listen ? "accepted" : "connected");
	return;

err2:
	conn_free(conn);
	fd = -1;
err1:
	free(ls);
err0:
	if (fd >= 0)
		close(fd);
	log_error("link: cannot start a session: out of memory");
}

/* dial: the connection to the peer is up (${fd}) or failed. */
static void
dialed_cb(int fd, int err, const char *why, void *arg)
{
	struct link *l = arg;
	const struct config *cfg = l->d->cfg;

	(void)err;
	l->dial = NULL;
	if (fd >= 0) {
		l->failing = 0;
		l->backoff_ms = cfg->reconnect_min_ms;
		link_adopt(l, fd);
		return;
	}
	if (!l->failing++)
		log_warn("link: cannot connect to %s:%s: %s; retrying every "
		    "%ju to %ju ms", cfg->link_addr.host, cfg->link_addr.port,
		    why, (uintmax_t)cfg->reconnect_min_ms,
		    (uintmax_t)cfg->reconnect_max_ms);
	else
		log_debug("link: cannot connect to %s:%s: %s",
		    cfg->link_addr.host, cfg->link_addr.port, why);
	link_redial(l);
}

/* redial_ev: time to dial the peer. */
static void
dial_now_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	const struct config *cfg = l->d->cfg;

	(void)fd;
	(void)what;
	if (l->dial != NULL || l->cur != NULL || l->draining)
		return;
	l->st.dials++;
	l->dial = dial_start(l->d->base, l->d->dns, cfg->link_addr.host,
	    cfg->link_addr.port, cfg->connect_timeout_ms, dialed_cb, l);
	if (l->dial == NULL)
		link_redial(l);
}

/*
 * Schedule the next dial of ${l}: after a random delay in [backoff/2,
 * backoff] (so a fleet of restarted peers does not redial in step), with
 * the backoff doubling up to reconnect_max.  The first dial after a link
 * was up goes at once.
 */
static void
link_redial(struct link *l)
{
	const struct config *cfg = l->d->cfg;
	uint64_t ms = 0;
	struct timeval tv;

	if (l->failing) {
		ms = l->backoff_ms / 2 + (uint64_t)random() %
		    (l->backoff_ms / 2 + 1);
		l->backoff_ms *= 2;
		if (l->backoff_ms > cfg->reconnect_max_ms)
			l->backoff_ms = cfg->reconnect_max_ms;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	event_add(l->redial_ev, &tv);
}

/* evconnlistener: the peer connected (${fd}). */
static void
peer_accept_cb(struct evconnlistener *lst, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct link *l = arg;

	(void)lst;
	(void)sa;
	(void)salen;
	if (l->draining) {
		close(fd);
		return;
	}
	link_adopt(l, fd);
}

/* evconnlistener error on the link listener ${lst}. */
static void
peer_accept_error_cb(struct evconnlistener *lst, void *arg)
{

	(void)lst;
	(void)arg;
	log_warn("link: accept: %s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* Bind the link's listen address for ${l}.  Returns 0 or -1 (logged). */
static int
link_listen(struct link *l)
{
	const struct config *cfg = l->d->cfg;
	char err[128];

	if ((l->listener = listen_on(l->d->base, cfg->link_addr.host,
	    cfg->link_addr.port, 16, peer_accept_cb, l, err,
	    sizeof(err))) == NULL) {
		log_error("link: listen %s:%s: %s", cfg->link_addr.host,
		    cfg->link_addr.port, err);
		return (-1);
	}
	evconnlistener_set_error_cb(l->listener, peer_accept_error_cb);
	log_info("link: waiting for the peer on %s:%s", cfg->link_addr.host,
	    cfg->link_addr.port);
	return (0);
}

/* Start ${d}'s link. */
struct link *
link_new(struct daemon *d)
{
	struct link *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto err0;
	l->d = d;
	l->backoff_ms = d->cfg->reconnect_min_ms;
	if ((l->redial_ev = evtimer_new(d->base, dial_now_cb, l)) == NULL)
		goto err1;
	if ((l->reap_ev = evtimer_new(d->base, reap_cb, l)) == NULL)
		goto err2;
	if (d->cfg->link_listen) {
		if (link_listen(l))
			goto err3;
	} else {
		log_info("link: connecting to %s:%s", d->cfg->link_addr.host,
		    d->cfg->link_addr.port);
		link_redial(l);
	}
	return (l);

err3:
	event_free(l->reap_ev);
err2:
	event_free(l->redial_ev);
err1:
	free(l);
err0:
	return (NULL);
}

/* Close ${l} and all its sessions. */
void
link_free(struct link *l)
{

	if (l == NULL)
		return;
	while (l->all != NULL)
		lsess_free(l->all);
	if (l->dial != NULL)
		dial_cancel(l->dial);
	if (l->listener != NULL)
		evconnlistener_free(l->listener);
	event_free(l->reap_ev);
	event_free(l->redial_ev);
	free(l);
}

struct session *
link_session(struct link *l)
{

	return (l->cur != NULL ? l->cur->sess : NULL);
}

/* Start draining ${l}. */
void
link_drain(struct link *l)
{
	struct lsess *ls;

	l->draining = 1;
	event_del(l->redial_ev);
	if (l->dial != NULL) {
		dial_cancel(l->dial);
		l->dial = NULL;
	}
	if (l->listener != NULL) {
		evconnlistener_free(l->listener);
		l->listener = NULL;
	}
	for (ls = l->all; ls != NULL; ls = ls->next) {
		session_goaway(ls->sess, MUX_GOAWAY_NORMAL);
		lsess_retire(ls);
	}
}

/* Channels open on every session of ${l}. */
uint32_t
link_channels(const struct link *l)
{
	const struct lsess *ls;
	uint32_t n = 0;

	for (ls = l->all; ls != NULL; ls = ls->next)
		n += mux_stream_count(session_mux(ls->sess));
	return (n);
}

/* Write "<value><unit>" for ${us} microseconds into ${buf} of ${len}. */
static void
fmt_age(char *buf, size_t len, uint64_t us)
{
	uint64_t s = us / 1000000;

	if (s < 120)
		snprintf(buf, len, "%jus", (uintmax_t)s);
	else if (s < 7200)
		snprintf(buf, len, "%jum", (uintmax_t)(s / 60));
	else if (s < 172800)
		snprintf(buf, len, "%juh", (uintmax_t)(s / 3600));
	else
		snprintf(buf, len, "%jud", (uintmax_t)(s / 86400));
}

/* Write a one-line summary of ${l} into ${buf} of ${len}. */
void
link_status(const struct link *l, char *buf, size_t len)
{
	char age[32];

	if (l->cur == NULL) {
		snprintf(buf, len, "link down, %u channels draining",
		    link_channels(l));
		return;
	}
	fmt_age(age, sizeof(age), session_now_us() - l->cur->up_since);
	snprintf(buf, len, "link up %s to %s, %u channels", age, l->cur->peer,
	    link_channels(l));
}

/* Seconds ${l}'s current session has been up, or -1 if it is down. */
double
link_uptime(const struct link *l)
{

	return (l->cur == NULL ? -1 :
	    (double)(session_now_us() - l->cur->up_since) / 1e6);
}

/* Counters of ${l}, with the current round trip, for metrics. */
void
link_get_stats(const struct link *l, struct link_stats *st)
{

	*st = l->st;
	st->rtt_us = l->cur != NULL ? mux_rtt(session_mux(l->cur->sess)) : 0;
	st->channels = link_channels(l);
}
