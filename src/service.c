/*
 * service: see service.h.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "dial.h"
#include "forward.h"
#include "link.h"
#include "log.h"
#include "proxy.h"
#include "relay.h"
#include "service.h"
#include "svchdr.h"

/* Duplicate ${s}, NULL staying NULL.  Returns 0, or -1 on ENOMEM. */
static int
strdup_opt(char **dst, const char *s)
{

	*dst = NULL;
	return (s != NULL && (*dst = strdup(s)) == NULL ? -1 : 0);
}

/* Nonzero if ${a} and ${b} are both NULL or equal strings. */
static int
streq_opt(const char *a, const char *b)
{

	return (a == b || (a != NULL && b != NULL && strcmp(a, b) == 0));
}

/* Drop a reference to ${svc}; the last one frees it. */
static void
service_unref(struct service *svc)
{

	if (--svc->refs > 0)
		return;
	forward_close(svc);
	if (svc->st != NULL)
		channel_stats_drop(svc->st);
	free(svc->name);
	free(svc->accept_host);
	free(svc->accept_port);
	free(svc->connect_host);
	free(svc->connect_port);
	free(svc);
}

/* A new service for ${cs} in ${d}, without its listener, counting in ${st}
 * (its predecessor's) or in new counters if NULL.  NULL on ENOMEM. */
static struct service *
service_new(struct daemon *d, const struct config_service *cs,
    struct channel_stats *st)
{
	struct service *svc;

	if ((svc = calloc(1, sizeof(*svc))) == NULL)
		return (NULL);
	if (st != NULL)
		channel_stats_hold(st);
	else if ((st = channel_stats_new(cs->name)) == NULL) {
		free(svc);
		return (NULL);
	}
	svc->st = st;
	svc->d = d;
	svc->refs = 1;
	svc->proxy = cs->proxy_protocol;
	svc->rate_limit = cs->rate_limit;
	if ((svc->name = strdup(cs->name)) == NULL ||
	    strdup_opt(&svc->accept_host, cs->accept.host) ||
	    strdup_opt(&svc->accept_port, cs->accept.port) ||
	    strdup_opt(&svc->connect_host, cs->connect.host) ||
	    strdup_opt(&svc->connect_port, cs->connect.port)) {
		service_unref(svc);
		return (NULL);
	}
	return (svc);
}

/* The service in ${list} named ${name}, or NULL. */
static struct service *
service_find(struct service *list, const char *name)
{

	for (; list != NULL; list = list->next)
		if (strcmp(list->name, name) == 0)
			return (list);
	return (NULL);
}

/* The service in ${list} with a listener on ${svc}'s accept address. */
static struct service *
service_listening_on(struct service *list, const struct service *svc)
{

	for (; svc->accept_host != NULL && list != NULL; list = list->next)
		if (list->listener != NULL &&
		    streq_opt(list->accept_host, svc->accept_host) &&
		    streq_opt(list->accept_port, svc->accept_port))
			return (list);
	return (NULL);
}

/* Make ${d}'s service table match ${cfg}. */
int
service_table_apply(struct daemon *d, const struct config *cfg)
{
	const struct config_service *cs;
	struct service *head = NULL, **tail = &head, *old, *lsvc, *svc, *next;
	int rc = 0;

	for (cs = cfg->services; cs != NULL; cs = cs->next) {
		old = service_find(d->services, cs->name);
		/* Counters carry over; channels keep counting in them. */
		if ((svc = service_new(d, cs, old != NULL ? old->st : NULL)) ==
		    NULL) {
			log_error("service %s: out of memory", cs->name);
			rc = -1;
			continue;
		}
		/* Keep a listener whose address stays, whichever service had
		 * it (a service renamed, two addresses swapped): binding anew
		 * would fail while the old one holds it. */
		if ((lsvc = service_listening_on(d->services, svc)) != NULL) {
			svc->listener = lsvc->listener;
			lsvc->listener = NULL;
			forward_retarget(svc);
		} else if (svc->accept_host != NULL && forward_listen(svc)) {
			rc = -1;
		}
		if (old != NULL) {
			svc->rate_tat = old->rate_tat;
			if (!streq_opt(old->connect_host, svc->connect_host) ||
			    !streq_opt(old->connect_port, svc->connect_port) ||
			    !streq_opt(old->accept_host, svc->accept_host) ||
			    !streq_opt(old->accept_port, svc->accept_port) ||
			    old->proxy != svc->proxy ||
			    old->rate_limit != svc->rate_limit)
				log_info("service %s: changed", svc->name);
		} else if (d->link != NULL) {	/* a reload */
			log_info("service %s: added", svc->name);
		}
		*tail = svc;
		tail = &svc->next;
	}
	for (old = d->services; old != NULL; old = next) {
		next = old->next;
		if (service_find(head, old->name) == NULL)
			log_info("service %s: removed (%ju open channels "
			    "finish)", old->name, (uintmax_t)old->st->open);
		forward_close(old);
		service_unref(old);
	}
	d->services = head;
	return (rc);
}

/* Drop every service of ${d}. */
void
service_table_free(struct daemon *d)
{
	struct service *svc, *next;

	service_stop_listening(d);
	for (svc = d->services; svc != NULL; svc = next) {
		next = svc->next;
		service_unref(svc);
	}
	d->services = NULL;
}

/* Stop accepting on every service of ${d}. */
void
service_stop_listening(struct daemon *d)
{
	struct service *svc;

	for (svc = d->services; svc != NULL; svc = svc->next)
		forward_close(svc);
}

/*
 * What an inbound channel waits on while its target connects; counted by
 * link_pending_begin.
 */
struct pending {
	struct relay	*r;
	struct service	*svc;
	struct dial	*dial;
	uint32_t	id;
	struct sockaddr_storage client;	/* from the header; for PROXY */
};

/* Free ${p}, a connect that ended. */
static void
pending_free(struct pending *p)
{

	link_pending_end(p->svc->d->link);
	service_unref(p->svc);
	free(p);
}

/* relay: the relay ended before the target answered; cancel the dial. */
static void
pending_cancel(void *arg)
{
	struct pending *p = arg;

	dial_cancel(p->dial);
	pending_free(p);
}

/* dial: the target of ${arg} answered with socket ${fd}, or failed. */
static void
target_dialed(int fd, int err, const char *why, void *arg)
{
	/* Every channel of the peer's to a target that is down has one. */
	static struct log_limit lim = LOG_LIMIT("service: cannot connect to "
	    "the target");
	struct pending *p = arg;
	struct relay *r = p->r;
	struct service *svc = p->svc;

	(void)err;
	relay_set_pending(r, NULL, NULL);
	if (fd >= 0 && svc->proxy != PROXY_OFF &&
	    proxy_send(fd, svc->proxy, (struct sockaddr *)&p->client)) {
		why = strerror(errno);
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		log_limited(&lim, why, LOG_WARN, "service %s: channel %u: "
		    "target %s: %s", svc->name, p->id,
		    log_addr(svc->connect_host, svc->connect_port).s, why);
		svc->st->refused++;
		relay_reset(r, "the target refused it");
	} else {
		log_debug("service %s: channel %u: connected to target",
		    svc->name, p->id);
		relay_attach(r, fd, svc->st);
	}
	pending_free(p);
}

/*
 * relay prelude: ${data} holds the first bytes of stream ${s} of relay ${r}
 * in ${d}: once the service header is complete, consume it and connect to
 * the service's target.  An unknown or malformed service is reset.
 */
static void
route_stream(struct relay *r, struct mux_stream *s, struct daemon *d,
    struct evbuffer *data)
{
	/* The peer can have these as often as it opens a stream. */
	static struct log_limit lim_cut = LOG_LIMIT("channel: stream ended "
	    "inside its service header"), lim_bad = LOG_LIMIT("channel: "
	    "malformed service header"), lim_none = LOG_LIMIT("channel: the "
	    "peer asked for a service which has no connect here");
	struct svchdr h;
	struct service *svc;
	struct pending *p;
	long n;

	if ((n = svchdr_parse(data, &h)) == 0 && !mux_stream_eof(s))
		return;			/* more to come */
	if (n == 0) {
		log_limited(&lim_cut, NULL, LOG_WARN, "channel %u: stream "
		    "ended inside its service header: reset", mux_stream_id(s));
		relay_reset(r, "no service header");
		return;
	}
	if (n < 0) {
		log_limited(&lim_bad, NULL, LOG_WARN, "channel %u: malformed "
		    "service header: reset", mux_stream_id(s));
		relay_reset(r, "a malformed service header");
		return;
	}
	evbuffer_drain(data, (size_t)n);
	svc = service_find(d->services, h.name);
	if (svc == NULL || svc->connect_host == NULL) {
		log_limited(&lim_none, h.name, LOG_WARN, "channel %u: peer "
		    "asked for service \"%s\", which has no connect here: "
		    "reset", mux_stream_id(s), h.name);
		relay_reset(r, "an unknown service");
		return;
	}
	if (link_pending_begin(d->link)) {
		svc->st->refused++;
		relay_reset(r, "max_pending_connects");
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		link_pending_end(d->link);
		goto fail;
	}
	p->r = r;
	p->svc = svc;
	p->id = mux_stream_id(s);
	p->client = h.client;
	svc->refs++;
	p->dial = dial_start(d->base, d->dns, svc->connect_host,
	    svc->connect_port, d->cfg->connect_timeout_ms, target_dialed, p);
	if (p->dial == NULL) {
		pending_free(p);
		goto fail;
	}
	relay_set_pending(r, p, pending_cancel);
	return;

fail:
	log_error("service %s: channel %u: out of memory", h.name,
	    mux_stream_id(s));
	relay_reset(r, "out of memory");
}

/* The peer opened ${s}: its data goes to route_stream until routed. */
int
service_stream_open(struct daemon *d, struct mux_stream *s)
{

	if (d->draining)
		return (-1);
	return (relay_new(d, s, -1, NULL, route_stream) != NULL ? 0 : -1);
}
