/*
 * dial: connect a non-blocking TCP socket to host:port, asynchronously.
 *
 * Names are resolved with evdns when the dial starts (numeric addresses
 * without a lookup); each resolved address is tried in turn until one
 * accepts, all refuse, or the whole dial runs out of time.
 *
 * Every socket from here, dialed or accepted by a listen_on listener, has
 * TCP_NODELAY set (the accepted ones take it from the listening socket).
 */
#ifndef MXD_DIAL_H
#define MXD_DIAL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/listener.h>

struct event_base;
struct evdns_base;
struct dial;

/*
 * Called once: ${fd} is the connected socket (now the callee's), or -1 with
 * ${err} an errno value (ETIMEDOUT, ECONNREFUSED, ...) and ${why} a message.
 */
typedef void dial_cb(int fd, int err, const char *why, void *arg);

/*
 * Start connecting to ${host}:${port} within ${timeout_ms} in ${base}, using
 * ${dns} for names.  Returns the dial (cancel it with dial_cancel until ${cb}
 * has run; it is freed after ${cb} returns), or NULL on failure to start.
 */
struct dial *dial_start(struct event_base *base, struct evdns_base *dns,
    const char *host, const char *port, uint64_t timeout_ms, dial_cb *cb,
    void *arg);

/* Abandon dial ${d} without calling its callback. */
void dial_cancel(struct dial *d);

/* Make ${fd} non-blocking and close-on-exec.  Returns 0 or -1. */
int sock_nonblock(int fd);

/* The bytes that arrived on socket ${fd} and wait to be read (0 on error):
 * has a peer sent anything yet? */
int sock_unread(int fd);

/*
 * Listen on ${host}:${port} (resolved now) in ${base} with ${backlog},
 * accepting to ${cb} (NULL: set later) with ${arg}.  Returns the listener, or NULL with a
 * message in ${err} (size ${errlen}).
 */
struct evconnlistener *listen_on(struct event_base *base, const char *host,
    const char *port, int backlog, evconnlistener_cb cb, void *arg,
    char *err, size_t errlen);

/*
 * A listen_on listener that survives failing accepts.  When accept fails
 * for a reason libevent does not retry (out of descriptors, most often),
 * the listening socket stays readable and would spin the loop: instead the
 * failure is logged once ("${label}: accept: REASON: pausing accepts until
 * descriptors free up") and accepting stops for LISTENER_PAUSE_MS at a
 * time, until an accept works again (listener_accepted).  The pause and
 * its timer belong to the listener, so that a listener handed from one
 * owner to the next (a reload) keeps them: it can never be left paused
 * with nobody to resume it.
 */
#define LISTENER_PAUSE_MS	100

struct listener {
	struct evconnlistener *evl;
	struct event	*pause;		/* resumes accepting */
	int		failing;	/* accept failed; logged */
	int		owned;		/* evl is freed with the listener */
	char		label[264];	/* "service NAME", for the log */
	struct listener	*next;		/* all listeners, for the error cb */
};

/*
 * Listen on ${host}:${port} with ${backlog} in ${base}, accepting to ${cb}
 * (NULL: set later) with ${arg}; failures are logged as ${label}'s.
 * Returns the listener, or NULL with a message in ${err} (size ${errlen}).
 */
struct listener *listener_new(struct event_base *base, const char *host,
    const char *port, int backlog, evconnlistener_cb cb, void *arg,
    const char *label, char *err, size_t errlen);

/* The same for an evconnlistener ${evl} of ${base} made elsewhere (a Unix
 * socket's): it is the listener's from now on, freed with it unless it
 * fails (NULL: out of memory). */
struct listener *listener_adopt(struct event_base *base,
    struct evconnlistener *evl, const char *label);

/* ${ls} has a new owner: accept to ${cb} with ${arg}, log as ${label}. */
void listener_retarget(struct listener *ls, evconnlistener_cb cb,
    void *arg, const char *label);

/* An accept on ${ls} worked: a failure after it is logged again. */
void listener_accepted(struct listener *ls);

/* ${ls}'s evconnlistener now belongs to another (evhttp_bind_listener):
 * listener_free leaves it alone, and must come before it is freed. */
void listener_disown(struct listener *ls);

/* Stop and free ${ls}.  NULL is ok. */
void listener_free(struct listener *ls);

#endif
