/*
 * forward: see forward.h.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "daemon.h"
#include "dial.h"
#include "forward.h"
#include "link.h"
#include "log.h"
#include "relay.h"
#include "service.h"
#include "session.h"
#include "svchdr.h"

/*
 * Take a token from ${svc}'s bucket of rate_limit tokens, refilled at
 * rate_limit a second.  Returns 0, or -1 if it is empty.  (The generic cell
 * rate algorithm: rate_tat is when the bucket will be full again.)
 */
static int
rate_take(struct service *svc)
{
	uint64_t now = session_now_us(), tat, t;

	if (svc->rate_limit == 0)
		return (0);
	t = 1000000 / svc->rate_limit;
	tat = svc->rate_tat > now ? svc->rate_tat : now;
	if (tat - now > 1000000 - t)
		return (-1);
	svc->rate_tat = tat + t;
	svc->rate_hit = 0;
	return (0);
}

/* Refuse client ${fd}: close it with RST, as a refused connection looks. */
static void
refuse(int fd)
{
	struct linger lg = { 1, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* evconnlistener: client ${fd} from ${sa} connected to service ${arg}. */
static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	/* Clients can have one as often as they connect. */
	static struct log_limit lim = LOG_LIMIT("service: cannot open a "
	    "channel");
	struct service *svc = arg;
	struct daemon *d = svc->d;
	struct session *sess;
	struct mux_stream *s;
	struct evbuffer *hdr;

	(void)l;
	(void)salen;
	if ((sess = link_session(d->link)) == NULL) {
		log_debug("service %s: link down: client refused", svc->name);
		goto refused;
	}
	if (rate_take(svc)) {
		link_limit_refused(d->link, LIMIT_RATE, &svc->rate_hit,
		    svc->name, svc->rate_limit);
		goto refused;
	}
	if (link_admit(d->link, 0))
		goto refused;
	if ((s = mux_stream_open(session_mux(sess), NULL)) == NULL) {
		log_limited(&lim, strerror(errno), LOG_WARN, "service %s: "
		    "cannot open a channel: %s", svc->name, strerror(errno));
		goto refused;
	}
	if ((hdr = evbuffer_new()) == NULL)
		goto fail;
	if (svchdr_write(hdr, svc->name, sa) || mux_stream_write(s, hdr) < 0) {
		evbuffer_free(hdr);
		goto fail;
	}
	evbuffer_free(hdr);
	listener_accepted(svc->listener);
	/* The listener made fd non-blocking. */
	if (relay_new(d, s, fd, svc->st, NULL) == NULL) {
		mux_stream_reset(s);
		return;
	}
	log_debug("service %s: channel %u: client %s connected", svc->name,
	    mux_stream_id(s), log_sockaddr(sa).s);
	return;

fail:
	mux_stream_reset(s);
refused:
	svc->st->refused++;
	refuse(fd);
}

/* The label of ${svc}'s listener in log lines, in ${buf} of ${len}. */
static const char *
label(const struct service *svc, char *buf, size_t len)
{

	snprintf(buf, len, "service %s", svc->name);
	return (buf);
}

/* Bind ${svc}'s accept address and start accepting. */
int
forward_listen(struct service *svc)
{
	char err[128], lbl[sizeof(svc->listener->label)];

	if ((svc->listener = listener_new(svc->d->base, svc->accept_host,
	    svc->accept_port, 1024, accept_cb, svc, label(svc, lbl,
	    sizeof(lbl)), err, sizeof(err))) == NULL) {
		log_error("service %s: accept %s: %s", svc->name,
		    log_addr(svc->accept_host, svc->accept_port).s, err);
		return (-1);
	}
	log_info("service %s: accepting on %s", svc->name,
	    log_addr(svc->accept_host, svc->accept_port).s);
	return (0);
}

/* ${svc} took over its predecessor's listener, pause and all. */
void
forward_retarget(struct service *svc)
{
	char lbl[sizeof(svc->listener->label)];

	listener_retarget(svc->listener, accept_cb, svc, label(svc, lbl,
	    sizeof(lbl)));
}

/* Stop ${svc}'s listener. */
void
forward_close(struct service *svc)
{

	listener_free(svc->listener);
	svc->listener = NULL;
}
