/*
 * dial: see dial.h.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "dial.h"
#include "log.h"
#include "ms.h"

struct dial {
	struct event_base *base;
	struct evdns_base *dns;
	char		host[256];
	char		port[8];
	struct evdns_getaddrinfo_request *req;	/* name lookup under way */
	struct evutil_addrinfo *addrs;		/* resolved, being tried */
	struct evutil_addrinfo *next;		/* the next one to try */
	struct event	*start_ev;	/* starts the dial from the loop */
	struct event	*conn_ev;	/* current socket writable */
	struct event	*timer;		/* the whole dial's deadline */
	int		fd;		/* current attempt, or -1 */
	int		err;		/* last attempt's error */
	dial_cb		*cb;
	void		*arg;
};

/*
 * Turn Nagle off on ${fd}: bytes go on as they come, as if there were no
 * tunnel (an application's own socket decides about Nagle at its end), and
 * the link's writes are batched by mxd itself.  A listening socket passes
 * it on to the sockets it accepts, which saves a system call per channel.
 */
static void
sock_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Make ${fd} non-blocking and close-on-exec. */
int
sock_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return (-1);
	return (0);
}

/* Bytes that arrived on ${fd} and are not yet read. */
int
sock_unread(int fd)
{
	int n;

	return (ioctl(fd, FIONREAD, &n) == 0 ? n : 0);
}

/* Free ${d} and whatever it holds, without calling back. */
void
dial_cancel(struct dial *d)
{

	if (d->req != NULL)
		evdns_getaddrinfo_cancel(d->req);	/* calls back: see below */
	if (d->conn_ev != NULL)
		event_free(d->conn_ev);
	if (d->fd >= 0)
		close(d->fd);
	if (d->addrs != NULL)
		evutil_freeaddrinfo(d->addrs);
	event_free(d->start_ev);
	event_free(d->timer);
	free(d);
}

/* End ${d}: hand ${fd} (or the error ${err}, ${why}) to its callback. */
static void
dial_done(struct dial *d, int fd, int err, const char *why)
{
	dial_cb *cb = d->cb;
	void *arg = d->arg;

	if (fd >= 0)
		d->fd = -1;		/* the callee's now */
	dial_cancel(d);
	cb(fd, err, why, arg);
}

static void try_next(struct dial *);

/* conn_ev: the attempt on d->fd finished, one way or the other. */
static void
connected_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dial *d = arg;
	socklen_t len = sizeof(d->err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &d->err, &len) == -1)
		d->err = errno;
	if (d->err == 0) {
		dial_done(d, d->fd, 0, NULL);
		return;
	}
	if (d->conn_ev != NULL)
		event_free(d->conn_ev);
	d->conn_ev = NULL;
	close(d->fd);
	d->fd = -1;
	try_next(d);
}

/* Start connecting ${d} to its next address; report when none is left. */
static void
try_next(struct dial *d)
{
	struct evutil_addrinfo *ai;

	while ((ai = d->next) != NULL) {
		d->next = ai->ai_next;
		if ((d->fd = socket(ai->ai_family, SOCK_STREAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
			d->err = errno;
			goto fail;
		}
		sock_nodelay(d->fd);
		/* A local target has often answered by the time connect()
		 * returns EINPROGRESS (loopback runs the handshake inside
		 * it), and asking again reports the outcome: 0, the error,
		 * or EALREADY while it is under way.  That saves two
		 * epoll_ctl and a pass through the event loop per dial. */
		if (connect(d->fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS &&
		    connect(d->fd, ai->ai_addr, ai->ai_addrlen) == 0)) {
			dial_done(d, d->fd, 0, NULL);
			return;
		}
		if (errno == EALREADY || errno == EINPROGRESS) {
			d->conn_ev = event_new(d->base, d->fd, EV_WRITE,
			    connected_cb, d);
			if (d->conn_ev == NULL || event_add(d->conn_ev, NULL)) {
				d->err = ENOMEM;
				goto fail;
			}
			return;
		}
		d->err = errno;
fail:
		if (d->fd >= 0)
			close(d->fd);
		d->fd = -1;
	}
	dial_done(d, -1, d->err ? d->err : EHOSTUNREACH,
	    strerror(d->err ? d->err : EHOSTUNREACH));
}

/* evdns: the name lookup of ${d} finished with ${result} and ${res}. */
static void
resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dial *d = arg;

	if (result == EVUTIL_EAI_CANCEL)	/* from dial_cancel: d is gone */
		return;
	d->req = NULL;
	if (result != 0) {
		dial_done(d, -1, EHOSTUNREACH, evutil_gai_strerror(result));
		return;
	}
	d->addrs = d->next = res;
	try_next(d);
}

/* timer: the whole dial ran out of time. */
static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{

	(void)fd;
	(void)what;
	dial_done(arg, -1, ETIMEDOUT, "connection timed out");
}

/*
 * start_ev: resolve and start the first attempt.  Runs from the event loop
 * so that the callback never runs inside dial_start.
 */
static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dial *d = arg;
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;

	(void)fd;
	(void)what;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;

	/* Literal addresses need no lookup. */
	if (evutil_getaddrinfo(d->host, d->port, &hints, &d->addrs) == 0) {
		d->next = d->addrs;
		try_next(d);
		return;
	}
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG | EVUTIL_AI_NUMERICSERV;
	/* A lookup answered at once calls back and returns NULL; d may be
	 * gone then. */
	req = evdns_getaddrinfo(d->dns, d->host, d->port, &hints, resolved_cb,
	    d);
	if (req != NULL)
		d->req = req;
}

/* Start dialing ${host}:${port}. */
struct dial *
dial_start(struct event_base *base, struct evdns_base *dns, const char *host,
    const char *port, uint64_t timeout_ms, dial_cb *cb, void *arg)
{
	struct timeval tv;
	struct dial *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		goto err0;
	d->base = base;
	d->dns = dns;
	d->fd = -1;
	d->cb = cb;
	d->arg = arg;
	snprintf(d->host, sizeof(d->host), "%s", host);
	snprintf(d->port, sizeof(d->port), "%s", port);
	if ((d->timer = evtimer_new(base, timeout_cb, d)) == NULL)
		goto err1;
	if ((d->start_ev = event_new(base, -1, 0, start_cb, d)) == NULL)
		goto err2;
	tv = ms_timeval(timeout_ms);
	if (evtimer_add(d->timer, &tv))
		goto err3;
	event_active(d->start_ev, EV_TIMEOUT, 0);
	return (d);

err3:
	event_free(d->start_ev);
err2:
	event_free(d->timer);
err1:
	free(d);
err0:
	return (NULL);
}

/* Listen on ${host}:${port}. */
struct evconnlistener *
listen_on(struct event_base *base, const char *host, const char *port,
    int backlog, evconnlistener_cb cb, void *arg, char *err, size_t errlen)
{
	struct evutil_addrinfo hints, *ai = NULL;
	struct evconnlistener *l;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV;
	if ((rc = evutil_getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s", evutil_gai_strerror(rc));
		return (NULL);
	}
	l = evconnlistener_new_bind(base, cb, arg, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, backlog, ai->ai_addr,
	    (int)ai->ai_addrlen);
	if (l == NULL)
		snprintf(err, errlen, "%s", strerror(errno));
	else
		sock_nodelay(evconnlistener_get_fd(l));
	evutil_freeaddrinfo(ai);
	return (l);
}

/* Every listener, so that the error callback, which libevent gives the
 * accept callback's argument, can find its own. */
static struct listener *listeners;

/* pause: try accepting on ${arg} again. */
static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *ls = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(ls->evl);
}

/* evconnlistener: accept on ${evl} failed; pause it (see dial.h). */
static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct timeval tv = ms_timeval(LISTENER_PAUSE_MS);
	int err = EVUTIL_SOCKET_ERROR();
	struct listener *ls;

	(void)arg;
	for (ls = listeners; ls != NULL && ls->evl != evl; ls = ls->next)
		continue;
	if (ls == NULL)
		return;
	if (!ls->failing++)
		log_warn("%s: accept: %s: pausing accepts until %s", ls->label,
		    evutil_socket_error_to_string(err), err == EMFILE ||
		    err == ENFILE ? "descriptors free up" : "it works again");
	evconnlistener_disable(evl);
	evtimer_add(ls->pause, &tv);
}

/* Listen on ${host}:${port} for ${label}. */
struct listener *
listener_new(struct event_base *base, const char *host, const char *port,
    int backlog, evconnlistener_cb cb, void *arg, const char *label,
    char *err, size_t errlen)
{
	struct evconnlistener *evl;
	struct listener *ls;

	if ((evl = listen_on(base, host, port, backlog, cb, arg, err,
	    errlen)) == NULL)
		return (NULL);
	if ((ls = listener_adopt(base, evl, label)) == NULL) {
		snprintf(err, errlen, "out of memory");
		evconnlistener_free(evl);
	}
	return (ls);
}

/* Make ${evl} of ${base} a listener logged as ${label}. */
struct listener *
listener_adopt(struct event_base *base, struct evconnlistener *evl,
    const char *label)
{
	struct listener *ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL)
		return (NULL);
	if ((ls->pause = evtimer_new(base, listener_resume_cb, ls)) == NULL) {
		free(ls);
		return (NULL);
	}
	ls->evl = evl;
	ls->owned = 1;
	snprintf(ls->label, sizeof(ls->label), "%s", label);
	evconnlistener_set_error_cb(ls->evl, listener_error_cb);
	ls->next = listeners;
	listeners = ls;
	return (ls);
}

/* Hand ${ls} to a new owner. */
void
listener_retarget(struct listener *ls, evconnlistener_cb cb, void *arg,
    const char *label)
{

	snprintf(ls->label, sizeof(ls->label), "%s", label);
	evconnlistener_set_cb(ls->evl, cb, arg);
}

void
listener_accepted(struct listener *ls)
{

	ls->failing = 0;
}

void
listener_disown(struct listener *ls)
{

	ls->owned = 0;
}

/* Free ${ls}. */
void
listener_free(struct listener *ls)
{
	struct listener **pp;

	if (ls == NULL)
		return;
	for (pp = &listeners; *pp != ls; pp = &(*pp)->next)
		continue;
	*pp = ls->next;
	event_free(ls->pause);
	if (ls->owned)
		evconnlistener_free(ls->evl);
	free(ls);
}
