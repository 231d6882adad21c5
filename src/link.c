/*
 * link: see link.h.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
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
#include "handshake.h"
#include "link.h"
#include "log.h"
#include "ms.h"
#include "session.h"
#include "tls.h"

/* How often sessions on their way out are checked for open channels. */
#define REAP_MS	200
/*
 * Connections a listener holds before they have shown who they are (TLS
 * handshakes under way; sessions on probation, whose peer has not yet
 * answered a ping), in all and from one address.  Beyond either, one of them makes
 * room for the newcomer (pending_make_room): nobody without credentials can
 * keep the peer out, nor take every place from one address.
 */
#define HANDSHAKES_MAX		64
#define HANDSHAKES_PER_HOST	8
/* Connections to the link port the kernel queues for accept: a flood of
 * them must not fill the queue, or the peer's SYN is dropped, and sent
 * again only after 1 s, then 3 s, 7 s...  Taken ACCEPT_BATCH a loop pass
 * at most: in between, those accepted have their first read (a peer that
 * speaks at once shows it before more can crowd it out). */
#define LINK_BACKLOG		1024
#define ACCEPT_BATCH		16
/* How long accepting the peer pauses after accept failed (out of
 * descriptors): the listener stays readable, and would spin the loop. */
#define ACCEPT_PAUSE_MS	100
/* How long a healthy current link has to answer a probe before a second
 * peer of unknown identity may take over (at least; 4 round trips). */
#define PROBE_MS	500
/* A link up this long was a working one: after it, redial at once. */
#define STABLE_MS	10000

const char *const link_limit_keys[NLIMITS] = {
	[LIMIT_CHANNELS] = "max_channels",
	[LIMIT_PENDING] = "max_pending_connects",
	[LIMIT_BUFFERED] = "max_buffered",
	[LIMIT_RATE] = "rate_limit",
	[LIMIT_BACKLOG] = "max_backlog",
};

/*
 * One session of the link: the current one, one finishing, or one on
 * probation.  A new connection while a link is up (accepted, or dialed
 * after a reload moved the link) replaces it only once it has answered a
 * ping (within connect_timeout): a bare TCP connection to the listen port
 * must not cut a working link, nor a wrong new address.  The replaced one
 * gets Go Away and keeps its open channels until they finish.
 */
struct lsess {
	struct session	*sess;
	struct link	*l;
	uint64_t	up_since;	/* session_now_us() when it came up */
	char		peer[64];	/* address, for logs */
	const char	*tls;		/* TLS version, NULL if plain */
	char		pin[TLS_PIN_TEXT];	/* the peer's key; "": none */
	int		dialed;		/* we connected, not accepted */
	int		draining;	/* Go Away seen or sent */
	int		probation;	/* not current until answered */
	int		held;		/* lost, not yet resumed */
	uint64_t	heard;		/* probation: session_now_us() when it
					 * came, or last sent a frame */
	int		spoke;		/* ... it has sent one */
	int		fd;		/* ... its socket */
	struct event	*probe_ev;	/* probation: is the current one alive? */
	uint64_t	probe_t;	/* ... asked then */
	struct lsess	*next;
};

/* A TLS handshake under way, whom with, and how it has been going, for
 * pending_make_room. */
struct link_hs {
	struct handshake *h;
	int		fd;		/* its socket */
	char		peer[64];
	uint64_t	heard;		/* its handshake_heard when last looked */
	uint64_t	last;		/* session_now_us() when it started, or
					 * when that last grew */
};

struct link {
	struct daemon	*d;
	const struct link_upcalls *up;	/* the channels' side */
	struct session_handlers handlers;	/* link_handlers + up's */
	int		listening;	/* [link] listen, not connect */
	struct lsess	*cur;		/* where new channels go */
	struct lsess	*all;		/* cur and the draining ones */
	struct evconnlistener *listener;
	struct event	*accept_pause;	/* resumes accepting after an error,
					 * or after ACCEPT_BATCH */
	int		accept_failing;	/* accept errors logged once */
	unsigned	accepted;	/* since accepting last paused */
	struct dial	*dial;
	int		moving;		/* dial a replacement for cur */
	struct event	*redial_ev;
	struct event	*reap_ev;
	uint64_t	backoff_ms;
	int		failing;	/* failed attempts: back off */
	uint64_t	dial_logged_us;	/* a failed dial last logged; 0: none
					 * since the link was up */
	uint64_t	dial_logged_backoff;	/* ... with this backoff */
	unsigned	dial_unlogged;	/* failed dials since, not logged */
	SSL_CTX		*tls;		/* NULL: a plain link */
	struct tls_basis basis;		/* what tls rests on: a reload that
					 * changes it re-establishes */
	struct link_hs	hs[HANDSHAKES_MAX];	/* TLS handshakes under way */
	unsigned	nhs;
	uint32_t	pending;	/* peer's channels dialing targets */
	int		hit[NLIMITS];	/* refusing since last logged */
	struct link_stats st;
	uint64_t	since;		/* session_now_us() of the last change
					 * of link_get_info's state */
	int		draining;	/* the daemon is shutting down */
};

static uint64_t link_redial(struct link *);
static void link_lost(struct link *, const struct lsess *, const char *);

/* ${ms} until the next attempt, for a person: "1.4s", "42s", "17m". */
static struct log_duration
fmt_next(uint64_t ms)
{
	struct log_duration d;

	if (ms >= 10000)
		return (fmt_age((double)ms / 1000));
	snprintf(d.s, sizeof(d.s), "%.1fs", (double)ms / 1000);
	return (d);
}

/*
 * Unless ${l} listens, count a failed attempt (printf-style ${fmt} says
 * what failed) and dial again after the backoff.  The operator learns when
 * the next attempt goes at each step of the backoff, then once a
 * RETRY_LOG_MS while it stays where it is (at reconnect_max, or at
 * reconnect_min for a host that refuses), with how many attempts failed
 * meanwhile; the others are debug lines.
 */
#define RETRY_LOG_MS	60000

static void
link_retry(struct link *l, const char *fmt, ...)
{
	uint64_t backoff = l->backoff_ms, now = session_now_us(), ms;
	char what[512];
	va_list ap;

	if (l->listening || l->draining)
		return;
	l->failing++;
	ms = link_redial(l);
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (l->dial_logged_us == 0)		/* the first since up */
		l->dial_unlogged = 0;
	if (l->dial_logged_us != 0 && backoff == l->dial_logged_backoff &&
	    now - l->dial_logged_us < (uint64_t)RETRY_LOG_MS * 1000) {
		l->dial_unlogged++;
		log_debug("link: %s; next attempt in %s", what,
		    fmt_next(ms).s);
		return;
	}
	if (l->dial_unlogged > 0)
		log_warn("link: %s (%u more attempts failed in %s); next "
		    "attempt in %s", what, l->dial_unlogged, fmt_age((double)(now -
		    l->dial_logged_us) / 1e6).s, fmt_next(ms).s);
	else
		log_warn("link: %s; next attempt in %s", what, fmt_next(ms).s);
	l->dial_logged_us = now;
	l->dial_logged_backoff = backoff;
	l->dial_unlogged = 0;
}

/*
 * ${ls}, the current session of ${l}, has ended (Go Away, or down:
 * ${why}).  Unless
 * ${l} listens, dial again: at once after a link that worked for STABLE_MS
 * (a peer restarting, a path lost), otherwise after a backoff, as after a
 * failed dial.  A peer that never answers, or drops the link as soon as it
 * is up, or a second mxd dialing the same peer and taking the link in turns
 * with us must not have us redialing as fast as the loop runs.
 */
static void
link_lost(struct link *l, const struct lsess *ls, const char *why)
{

	if (!session_answered(ls->sess) || session_now_us() - ls->up_since <
	    (uint64_t)STABLE_MS * 1000) {
		link_retry(l, "%s: %s", ls->peer, why);
		return;
	}
	l->failing = 0;
	l->backoff_ms = l->d->cfg->reconnect_min_ms;
	if (!l->listening && !l->draining)
		link_redial(l);
}

/* Write the peer address of ${fd} into ${buf} (size ${len}). */
static void
peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
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
	if (l->cur == ls) {
		l->cur = NULL;
		l->since = session_now_us();
	}
	if (ls->probe_ev != NULL)
		event_free(ls->probe_ev);
	session_free(ls->sess);
	free(ls);
}

/* Run reap_cb on ${l} in REAP_MS, unless it is due already. */
static void
link_reap_soon(struct link *l)
{
	struct timeval tv = { 0, REAP_MS * 1000 };

	if (!event_pending(l->reap_ev, EV_TIMEOUT, NULL))
		event_add(l->reap_ev, &tv);
}

/* Move ${ls} out of the current slot: it keeps its channels until done. */
static void
lsess_retire(struct lsess *ls)
{
	struct link *l = ls->l;

	ls->draining = 1;
	ls->probation = 0;
	if (l->cur == ls) {
		l->cur = NULL;
		l->since = session_now_us();
	}
	link_reap_soon(l);
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
		if (ls->draining &&
		    mux_stream_count(session_mux(ls->sess)) == 0) {
			log_info("link %s: finished draining, closed", ls->peer);
			lsess_free(ls);
		} else if (ls->draining) {
			left = 1;
		}
	}
	if (left)
		link_reap_soon(l);
}

/* session: the peer opened a stream. */
static int
on_stream_open(struct session *sess, struct mux_stream *s, void *arg)
{
	struct lsess *ls = arg;

	(void)sess;
	if (link_admit(ls->l, 1))
		return (-1);
	ls->l->hit[LIMIT_BACKLOG] = 0;
	return (ls->l->up->stream_open(ls->l->d, s));
}

/* session: the engine refused a peer's open (its backlog of unanswered
 * opens is full, say: a SYN flood). */
static void
on_stream_refused(struct session *sess, void *arg)
{
	struct lsess *ls = arg;
	struct mux_config mc;

	(void)sess;
	if (ls->draining)	/* after our Go Away: no limit involved */
		return;
	mux_config_default(&mc, 0);	/* the backlog the link runs with */
	link_limit_refused(ls->l, LIMIT_BACKLOG, &ls->l->hit[LIMIT_BACKLOG],
	    NULL, mc.max_backlog);
}

/* session: the peer sent Go Away ${code}. */
static void
on_goaway(struct session *sess, uint32_t code, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;
	int was_cur = l->cur == ls;

	static const char *const says[] = {
		[MUX_GOAWAY_NORMAL] = "the peer is shutting down",
		[MUX_GOAWAY_PROTOCOL] = "the peer reports a protocol error",
		[MUX_GOAWAY_INTERNAL] = "the peer reports an internal error",
	};

	(void)sess;
	if (code < sizeof(says) / sizeof(says[0]))
		log_info("link %s: %s (Go Away); open channels finish, new "
		    "ones take a fresh link", ls->peer, says[code]);
	else
		log_info("link %s: the peer sent Go Away (code %u); open "
		    "channels finish, new ones take a fresh link", ls->peer,
		    code);
	lsess_retire(ls);
	if (was_cur)
		link_lost(l, ls, "the peer sent Go Away");
}

/*
 * session: the link is gone (${why}).  The current one: see link_lost.  A
 * replacement dialed after a reload moved the link counts as a failed
 * attempt (the current link stays meanwhile).
 */
static void
on_down(struct session *sess, const char *why, void *arg)
{
	/* A stranger can have these as often as it connects. */
	static struct log_limit lim_early = LOG_LIMIT("link: closed before "
	    "the peer answered a ping"), lim_closed = LOG_LIMIT("link: closed");
	struct lsess *ls = arg;
	struct link *l = ls->l;
	int was_cur = l->cur == ls;
	int answered = session_answered(sess);
	int ls_dialed_probation = ls->dialed && ls->probation;
	uint32_t n = mux_stream_count(session_mux(sess));

	if ((was_cur || ls_dialed_probation) && !answered)
		log_limited(&lim_early, why, LOG_WARN, "link %s: closed before "
		    "the peer answered a ping: %s (%u channels reset)",
		    ls->peer, why, n);
	else if (was_cur || n > 0)
		log_warn("link %s: down: %s (%u channels reset)", ls->peer,
		    why, n);
	else
		log_limited(&lim_closed, why, LOG_INFO, "link %s: closed: %s",
		    ls->peer, why);
	if (was_cur) {
		l->moving = 0;
		link_lost(l, ls, why);
	} else if (ls_dialed_probation) {	/* a move's new address failed */
		link_retry(l, "%s: %s", ls->peer, why);
	}
	lsess_free(ls);
}

/* The sessions of ${l} on probation. */
static unsigned
link_probations(const struct link *l)
{
	const struct lsess *ls;
	unsigned n = 0;

	for (ls = l->all; ls != NULL; ls = ls->next)
		n += ls->probation != 0;
	return (n);
}

/* The length of the host in ${peer}, "host:port" or "[v6]:port". */
static size_t
host_len(const char *peer)
{
	const char *colon = strrchr(peer, ':');

	return (colon != NULL ? (size_t)(colon - peer) : strlen(peer));
}

/* Nonzero if peers ${a} and ${b} are at one address. */
static int
same_host(const char *a, const char *b)
{
	size_t n = host_len(a);

	return (n == host_len(b) && memcmp(a, b, n) == 0);
}

/* A connection that has not yet shown who it is, as pending_make_room
 * weighs it. */
struct pending {
	const char	*peer;		/* address:port */
	uint64_t	*last;		/* session_now_us() when it came, or
					 * last sent something */
	int		spoke;		/* it said what it is: a whole
					 * ClientHello, a frame */
	int		fd;		/* its socket */
	int		unread;		/* bytes wait there (looked at only
					 * when it was about to be taken) */
};

/* Of the ${n} connections ${p} (or, if ${host}, of those from the address
 * of ${peer}), the one pending_make_room takes, or -1. */
static int
pending_pick(const struct pending *p, unsigned n, const char *peer,
    int host)
{
	unsigned i;
	int v = -1;

	for (i = 0; i < n; i++) {
		if ((host && !same_host(p[i].peer, peer)) || p[i].unread)
			continue;
		if (v < 0 || p[i].spoke < p[v].spoke ||
		    (p[i].spoke == p[v].spoke && *p[i].last < *p[v].last))
			v = (int)i;
	}
	return (v);
}

/*
 * A connection from ${peer} comes while the ${n} connections ${p}, ${what}
 * ("TLS handshakes under way"), have not yet shown who they are.  Below
 * HANDSHAKES_PER_HOST of them from its address and HANDSHAKES_MAX in all
 * there is room: returns ${n}.  Else one of those from its address (or, if
 * that is not full, of all) makes room: the one silent longest, since it
 * came or last sent something, among those that have not yet spoken, else
 * among those that have (a peer waiting for our answer is silent too).
 * One with bytes waiting on its socket, not yet read, is not taken.  So a
 * peer that speaks as it connects, as mxd does, keeps its place, however
 * many come after it that do not.  Returns the index, or -1 if each has
 * bytes waiting (they all came in one batch): then the newcomer is
 * refused, and may try again.  Either is logged; remote parties cause
 * them at will: rate-limited.
 */
static int
pending_make_room(struct pending *p, unsigned n, const char *peer,
    const char *what)
{
	static struct log_limit made = LOG_LIMIT("link: closed to make room");
	static struct log_limit none = LOG_LIMIT("link: closed, no room");
	uint64_t now = session_now_us();
	unsigned i, same = 0;
	int host, v;

	for (i = 0; i < n; i++)
		same += same_host(p[i].peer, peer);
	if (!(host = same >= HANDSHAKES_PER_HOST) && n < HANDSHAKES_MAX)
		return ((int)n);
	/* A socket looked at only when it would be taken: under a flood
	 * this runs for each new connection. */
	while ((v = pending_pick(p, n, peer, host)) >= 0 &&
	    sock_unread(p[v].fd) > 0) {
		*p[v].last = now;
		p[v].unread = 1;
	}
	if (v >= 0)
		log_limited(&made, NULL, LOG_WARN, "link %s: closed to make "
		    "room for %s: %u %s%s, and it was silent longest (%ju ms)",
		    p[v].peer, peer, host ? same : n, what, host ?
		    " from its address" : "", (uintmax_t)(now - *p[v].last) /
		    1000);
	else
		log_limited(&none, NULL, LOG_WARN, "link %s: closed: %u "
		    "%s%s, each with bytes to read", peer, host ? same : n, what,
		    host ? " from its address" : "");
	return (v);
}

/* Make room among the sessions on probation that ${l} accepted for one
 * from ${peer} (pending_make_room).  Returns 0, or -1 to refuse it. */
static int
probation_make_room(struct link *l, const char *peer)
{
	struct pending p[HANDSHAKES_MAX];
	struct lsess *ls, *of[HANDSHAKES_MAX];
	uint64_t now = session_now_us();
	unsigned n = 0;
	int v;

	for (ls = l->all; ls != NULL && n < HANDSHAKES_MAX; ls = ls->next) {
		if (!ls->probation || ls->dialed)
			continue;
		if (session_heard_since(ls->sess, ls->heard)) {
			ls->heard = now;
			ls->spoke = 1;
		}
		of[n] = ls;
		p[n].peer = ls->peer;
		p[n].last = &ls->heard;
		p[n].spoke = ls->spoke;
		p[n].fd = ls->fd;
		p[n].unread = 0;
		n++;
	}
	if ((v = pending_make_room(p, n, peer, "connections waiting to "
	    "replace the link")) == (int)n)
		return (0);
	if (v < 0)
		return (-1);
	lsess_free(of[v]);
	return (0);
}

/*
 * ${ls}, the current session, is up: its peer answered our first ping.
 * Not before: a dying peer's kernel still completes the TCP handshake, and
 * an "up" (and mxd_link_ups_total) for that would be a false one.
 */
static void
lsess_up(struct lsess *ls)
{
	struct link *l = ls->l;

	char id[2 * 16 + 1];

	ls->up_since = l->since = session_now_us();
	l->st.ups++;
	l->dial_logged_us = 0;
	session_id_hex(ls->sess, id, sizeof(id));
	log_debug("link %s: session %s", ls->peer, id);
	log_info("link %s: up (%s%s%s)", ls->peer,
	    ls->dialed ? "connected" : "accepted", ls->tls ? ", " : "",
	    ls->tls ? ls->tls : "");
}

/*
 * Make ${ls} the current session of its link: new channels go there at
 * once (they need no round trip), and it is up once its peer has answered.
 * The session it replaces gets Go Away and finishes its open channels: a
 * peer that moved still has them; one that restarted has closed them, or
 * the old session dies of timeout.
 */
static void
lsess_make_current(struct lsess *ls)
{
	struct link *l = ls->l;
	struct lsess *old = l->cur;

	ls->probation = 0;
	l->cur = ls;
	if (old != NULL && session_held(old->sess)) {
		/* The peer came back with a new session: it lost the old
		 * (or a reload moved the link to another peer). */
		log_warn("link %s: %s: %u held channels reset", old->peer,
		    l->moving ? "the link moved" : "the peer started a new "
		    "session", mux_stream_count(session_mux(old->sess)));
		l->st.resume_failures++;
		lsess_free(old);
	} else if (old != NULL) {
		/* Expected after a reload moved the link; not otherwise. */
		log_msg(l->moving ? LOG_INFO : LOG_WARN, "link %s: replaced by "
		    "a new link %s %s; its %u open channels finish on it",
		    old->peer, ls->dialed ? "to" : "from", ls->peer,
		    mux_stream_count(session_mux(old->sess)));
		session_goaway(old->sess, MUX_GOAWAY_NORMAL);
		lsess_retire(old);
	}
	l->moving = 0;
	if (session_answered(ls->sess))
		lsess_up(ls);
	else
		log_debug("link %s: %s; up once the peer answers a ping",
		    ls->peer, ls->dialed ? "connected" : "accepted");
}

/*
 * session: the connection of ${sess} is gone (${why}) and the session is
 * held.  Only the current one is worth it (one finishing, or on probation,
 * ends here); the dialer dials again at once.
 */
static void
on_lost(struct session *sess, const char *why, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;

	if (l->cur != ls || l->draining) {
		on_down(sess, why, arg);
		return;
	}
	/* An attempt to resume that failed: try again, backing off. */
	if (ls->held) {
		link_retry(l, "%s: resuming failed: %s", ls->peer, why);
		return;
	}
	ls->held = 1;
	l->since = session_now_us();
	log_warn("link %s: lost: %s (%u channels held, resuming for up to "
	    "%s)", ls->peer, why, mux_stream_count(session_mux(sess)),
	    fmt_duration(l->d->cfg->resume_timeout_ms).s);
	if (!l->listening) {
		l->failing = 0;
		l->backoff_ms = l->d->cfg->reconnect_min_ms;
		link_redial(l);
	}
}

/* session: ${sess} runs again after ${held_us}; ${resent} bytes again. */
static void
on_resumed(struct session *sess, uint64_t held_us, uint64_t setup_us,
    uint64_t resent, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;

	ls->held = 0;
	l->since = session_now_us();
	l->st.resumptions++;
	l->st.resent += resent;
	l->st.resume_us += held_us;
	l->failing = 0;
	l->dial_logged_us = 0;
	log_info("link %s: resumed after %.1f s (%u channels, %ju bytes "
	    "re-sent, %.2f ms after the new connection)", ls->peer,
	    (double)held_us / 1e6, mux_stream_count(session_mux(sess)),
	    (uintmax_t)resent, (double)setup_us / 1e3);
}

/* session: the peer would not resume ${sess} (${why}): its channels are
 * reset now, and a new session starts on a new connection. */
static void
on_refused(struct session *sess, const char *why, void *arg)
{
	struct lsess *ls = arg;
	struct link *l = ls->l;

	log_warn("link %s: resumption refused by the peer: %s (%u channels "
	    "reset)", ls->peer, why, mux_stream_count(session_mux(sess)));
	l->st.resume_failures++;
	lsess_free(ls);
	l->failing = 0;
	link_redial(l);
}

/* session: the session of ${l} (${arg}) with id ${id}, or NULL. */
static struct session *
find_session(const uint8_t *id, void *arg)
{
	struct lsess *ls;

	for (ls = ((struct lsess *)arg)->l->all; ls != NULL; ls = ls->next)
		if (session_is(ls->sess, id))
			return (ls->sess);
	return (NULL);
}

/* session: the peer of ${sess} (${arg}, accepted) resumes ${held}, which
 * took its connection: ${held} now has that peer's address. */
static void
on_handover(struct session *sess, struct session *held, void *arg)
{
	struct lsess *ls = arg, *h;

	(void)sess;
	for (h = ls->l->all; h != NULL && h->sess != held; h = h->next)
		continue;
	if (h != NULL) {
		memcpy(h->peer, ls->peer, sizeof(h->peer));
		h->tls = ls->tls;
	}
	lsess_free(ls);
}

/* A second peer, ${ls}, is refused: the current link is healthy and pairs
 * another.  It gets Go Away; what it opened already finishes. */
static void
lsess_refuse_second(struct lsess *ls)
{

	log_warn("link: second peer %s refused: this link is paired with %s",
	    ls->peer, ls->l->cur->peer);
	session_goaway(ls->sess, MUX_GOAWAY_NORMAL);
	lsess_retire(ls);
}

/* probe_ev: the current link had its chance to show it is alive; if it
 * did not, the newcomer ${arg} takes over (the old peer is gone, its
 * connection half open), else it is refused. */
static void
probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lsess *ls = arg, *cur = ls->l->cur;

	(void)fd;
	(void)what;
	if (!ls->probation)
		return;
	if (cur != NULL && !cur->draining &&
	    session_heard_since(cur->sess, ls->probe_t))
		lsess_refuse_second(ls);
	else
		lsess_make_current(ls);
}

/*
 * ${ls}, a new link on probation, is ready.  It replaces the current one
 * when that is gone or held, moving (the dialer after a reload), or the
 * same peer (TLS key) come back.  A listener keeps a healthy current link
 * against a different peer, and against one it cannot tell apart (a plain
 * link) for as long as the current one still answers a ping: two dialers
 * of one port must not take the link from each other in turns.
 */
static void
lsess_admit(struct lsess *ls)
{
	struct link *l = ls->l;
	struct lsess *cur = l->cur;
	uint64_t ms;
	struct timeval tv;

	if (!l->listening || cur == NULL || cur->draining ||
	    session_held(cur->sess) || !session_answered(cur->sess)) {
		lsess_make_current(ls);
		return;
	}
	switch (session_same_peer(ls->sess, cur->sess)) {
	case 1:
		lsess_make_current(ls);
		return;
	case 0:
		lsess_refuse_second(ls);
		return;
	}
	ms = 4 * mux_rtt(session_mux(cur->sess)) / 1000;
	tv = ms_timeval(ms > PROBE_MS ? ms : PROBE_MS);
	ls->probe_t = session_now_us();
	session_probe(cur->sess);
	if (ls->probe_ev == NULL && (ls->probe_ev = evtimer_new(l->d->base,
	    probe_cb, ls)) == NULL) {
		lsess_make_current(ls);
		return;
	}
	evtimer_add(ls->probe_ev, &tv);
}

/* session: the peer of ${arg} answered our first ping. */
static void
on_answered(struct session *sess, void *arg)
{
	struct lsess *ls = arg;

	(void)sess;
	if (ls->probation)
		lsess_admit(ls);
	else if (ls->l->cur == ls)
		lsess_up(ls);
}

/* A session's handlers, but for the per-stream ones (link_new adds the
 * channel's, which the link passes along untouched). */
static const struct session_handlers link_handlers = {
	.on_stream_open = on_stream_open,
	.on_goaway = on_goaway,
	.on_down = on_down,
	.on_stream_refused = on_stream_refused,
	.on_answered = on_answered,
	.on_lost = on_lost,
	.on_resumed = on_resumed,
	.on_refused = on_refused,
	.find = find_session,
	.on_handover = on_handover,
};

/* Name the peer of ${ls}: address ${peer}, TLS version ${tls} (NULL:
 * plain) and key pin ${pin} ("": none). */
static void
lsess_name(struct lsess *ls, const char *peer, const char *tls,
    const char *pin)
{

	snprintf(ls->peer, sizeof(ls->peer), "%s", peer);
	snprintf(ls->pin, sizeof(ls->pin), "%s", pin);
	ls->tls = tls;
}

/*
 * Start a session of ${l} on ${conn} (taken over), connected to the peer
 * at ${peer}; ${tls} names its TLS version, NULL if plain.  It becomes the
 * current session at once, or, while another is current, once it answers
 * a ping (see struct lsess).
 */
static void
link_adopt(struct link *l, struct conn *conn, const char *peer,
    const char *tls)
{
	/* A stranger can have these as often as it connects. */
	static struct log_limit lim_new = LOG_LIMIT("link: a new link "
	    "replaces it once it answers a ping");
	const struct config *cfg = l->d->cfg;
	struct session_params sp;
	struct lsess *ls;
	unsigned char pin[32];
	char pin_text[TLS_PIN_TEXT];
	int has_pin = conn_peer_pin(conn, pin, pin_text) == 0;

	/* A dialer holding the session resumes it on the new connection. */
	if (!l->listening && !l->moving && l->cur != NULL &&
	    session_held(l->cur->sess)) {
		ls = l->cur;
		if (session_attach(ls->sess, conn, has_pin ? pin : NULL) == 0) {
			lsess_name(ls, peer, tls, has_pin ? pin_text : "");
			log_debug("link %s: connected; resuming", peer);
			return;
		}
		log_warn("link %s: the peer's TLS identity is not the held "
		    "session's: %u channels reset", peer, mux_stream_count(
		    session_mux(ls->sess)));
		l->st.resume_failures++;
		lsess_free(ls);
	}
	if (l->cur != NULL && l->listening && probation_make_room(l, peer)) {
		conn_free(conn);
		return;
	}
	if ((ls = calloc(1, sizeof(*ls))) == NULL)
		goto err0;
	ls->l = l;
	ls->dialed = !l->listening;
	lsess_name(ls, peer, tls, has_pin ? pin_text : "");
	mux_config_default(&sp.mux, !l->listening);
	sp.mux.window = cfg->window;
	sp.mux.window_max = cfg->window_max;
	/* link_admit enforces max_channels, which a reload may raise; the
	 * engine's own limit (silent RST) stays above it. */
	sp.mux.max_streams = CONFIG_MAX_CHANNELS + 1;
	sp.keepalive_ms = cfg->keepalive_ms;
	sp.timeout_ms = cfg->timeout_ms;
	sp.answer_ms = cfg->connect_timeout_ms;
	sp.resume_ms = cfg->resume_timeout_ms;
	sp.peer_pin = has_pin ? pin : NULL;
	ls->fd = conn_fd(conn);
	if ((ls->sess = session_new(l->d->base, conn, &sp, &l->handlers,
	    ls)) == NULL)
		goto err1;
	ls->heard = session_now_us();	/* after session_new's first clock */
	ls->next = l->all;
	l->all = ls;
	if (l->cur == NULL) {
		lsess_make_current(ls);
		return;
	}
	ls->probation = 1;
	log_limited(&lim_new, NULL, LOG_INFO, "link %s: a new link %s %s "
	    "replaces it once it answers a ping", l->cur->peer, ls->dialed ?
	    "to" : "from", ls->peer);
	return;

err1:
	free(ls);
err0:
	conn_free(conn);
	log_error("link %s: cannot start a session: out of memory", peer);
	link_retry(l, "%s: out of memory", peer);
}

/* handshake: ${h} of ${arg} ended with ${r}. */
static void
hs_done(struct handshake *h, const struct handshake_result *r, void *arg)
{
	/* A stranger can have one as often as it connects. */
	static struct log_limit lim_tls = LOG_LIMIT("link: TLS refused");
	struct link *l = arg;
	unsigned i;

	for (i = 0; l->hs[i].h != h; i++)
		continue;
	l->hs[i] = l->hs[--l->nhs];
	if (r->conn == NULL) {
		l->st.tls_refused++;
		log_limited(&lim_tls, r->why, LOG_WARN, "link %s: TLS "
		    "refused: %s", r->peer, r->why);
		link_retry(l, "%s: TLS refused", r->peer);
		return;
	}
	link_adopt(l, r->conn, r->peer, r->version);
}

/* Make room among the TLS handshakes of ${l} for one with ${peer}
 * (pending_make_room).  Returns 0, or -1 to refuse it. */
static int
hs_make_room(struct link *l, const char *peer)
{
	struct pending p[HANDSHAKES_MAX];
	uint64_t now = session_now_us(), heard;
	struct link_hs *hs;
	unsigned i;
	int v;

	for (i = 0; i < l->nhs; i++) {
		hs = &l->hs[i];
		if ((heard = handshake_heard(hs->h)) != hs->heard) {
			hs->heard = heard;
			hs->last = now;
		}
		p[i].peer = hs->peer;
		p[i].last = &hs->last;
		p[i].spoke = handshake_hello(hs->h);
		p[i].fd = hs->fd;
		p[i].unread = 0;
	}
	if ((v = pending_make_room(p, l->nhs, peer, "TLS handshakes under "
	    "way")) == (int)l->nhs)
		return (0);
	l->st.tls_refused++;
	if (v < 0)
		return (-1);
	handshake_free(l->hs[v].h);
	l->hs[v] = l->hs[--l->nhs];
	return (0);
}

/* Start the TLS handshake of ${l} on ${fd}, connected to ${peer}. */
static void
hs_start(struct link *l, int fd, const char *peer)
{
	struct link_hs *hs;

	if (hs_make_room(l, peer)) {
		close(fd);
		return;
	}
	hs = &l->hs[l->nhs];
	if ((hs->h = handshake_start(l->d, l->tls, fd, l->listening, peer,
	    hs_done, l)) == NULL) {
		log_error("link %s: cannot start TLS: out of memory", peer);
		link_retry(l, "%s: out of memory", peer);
		return;
	}
	snprintf(hs->peer, sizeof(hs->peer), "%s", peer);
	hs->fd = fd;
	hs->heard = 0;
	hs->last = session_now_us();
	l->nhs++;
}

/* Abandon every TLS handshake of ${l} under way. */
static void
hs_free_all(struct link *l)
{

	while (l->nhs > 0)
		handshake_free(l->hs[--l->nhs].h);
}

/* A connection ${fd} to or from the peer is up (accepted from ${sa}, or
 * NULL): start TLS, or a plain session on it. */
static void
link_connected(struct link *l, int fd, const struct sockaddr *sa)
{
	char peer[64];
	struct conn *conn;

	/* What accept said: a connection reset since has no peer name. */
	if (sa != NULL)
		snprintf(peer, sizeof(peer), "%.63s", log_sockaddr(sa).s);
	else
		peer_name(fd, peer, sizeof(peer));
	if (sock_nonblock(fd)) {
		log_error("link %s: %s", peer, strerror(errno));
		close(fd);
		link_retry(l, "%s: %s", peer, strerror(errno));
	} else if (l->tls != NULL) {
		hs_start(l, fd, peer);
	} else if ((conn = conn_new_plain(l->d->base, fd)) == NULL) {
		close(fd);
		log_error("link %s: cannot start a session: out of memory",
		    peer);
		link_retry(l, "%s: out of memory", peer);
	} else {
		link_adopt(l, conn, peer, NULL);
	}
}

/*
 * dial: the connection to the peer is up (${fd}) or failed (${err},
 * ${why}).  A refusal means the peer's host is up and its mxd not (yet)
 * listening, as while it restarts: the next attempt goes after
 * reconnect_min, not a grown backoff, so that the link is back as soon as
 * it listens.
 */
static void
dialed_cb(int fd, int err, const char *why, void *arg)
{
	struct link *l = arg;
	const struct config *cfg = l->d->cfg;

	l->dial = NULL;
	if (fd >= 0) {
		link_connected(l, fd, NULL);
		return;
	}
	if (err == ECONNREFUSED)
		l->backoff_ms = cfg->reconnect_min_ms;
	link_retry(l, "cannot connect to %s: %s", log_addr(cfg->link_addr.host,
	    cfg->link_addr.port).s, why);
}

/* redial_ev: time to dial the peer. */
static void
dial_now_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	const struct config *cfg = l->d->cfg;

	(void)fd;
	(void)what;
	if (l->dial != NULL || (l->cur != NULL && !l->moving &&
	    !session_held(l->cur->sess)) || link_probations(l) > 0 ||
	    l->nhs > 0 || l->draining)
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
 * was up goes at once.  Returns the delay in ms.
 */
static uint64_t
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
	tv = ms_timeval(ms);
	event_add(l->redial_ev, &tv);
	return (ms);
}

/* evconnlistener: the peer connected (${fd}). */
static void
peer_accept_cb(struct evconnlistener *lst, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct link *l = arg;
	struct timeval now = { 0, 0 };

	(void)salen;
	l->accept_failing = 0;
	if (l->draining) {
		close(fd);
		return;
	}
	link_connected(l, fd, sa);
	if (++l->accepted >= ACCEPT_BATCH) {
		evconnlistener_disable(lst);
		evtimer_add(l->accept_pause, &now);
	}
}

/* accept_pause: try accepting the peer again. */
static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;

	(void)fd;
	(void)what;
	l->accepted = 0;
	if (l->listener != NULL)
		evconnlistener_enable(l->listener);
}

/*
 * evconnlistener error on the link listener ${lst} (out of descriptors,
 * say): log it once, and pause accepting for a while, or the listener,
 * readable all along, spins the loop.
 */
static void
peer_accept_error_cb(struct evconnlistener *lst, void *arg)
{
	struct link *l = arg;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	if (!l->accept_failing++)
		log_warn("link: accept: %s: pausing accepts until it works "
		    "again", evutil_socket_error_to_string(err));
	evconnlistener_disable(lst);
	evtimer_add(l->accept_pause, &tv);
}

/*
 * Bind the listen address of ${cfg} for ${l}.  Returns the listener (not
 * yet ${l}'s: see link_listening), or NULL with the reason in ${err} (size
 * ${errlen}).
 */
static struct evconnlistener *
link_bind(struct link *l, const struct config *cfg, char *err, size_t errlen)
{
	struct evconnlistener *lst;
	char why[128];

	if ((lst = listen_on(l->d->base, cfg->link_addr.host,
	    cfg->link_addr.port, LINK_BACKLOG, peer_accept_cb, l, why,
	    sizeof(why))) == NULL) {
		snprintf(err, errlen, "listen %s: %s",
		    log_addr(cfg->link_addr.host, cfg->link_addr.port).s, why);
		return (NULL);
	}
	evconnlistener_set_error_cb(lst, peer_accept_error_cb);
	return (lst);
}

/*
 * With TLS, the listener of ${l} takes a connection only once its first
 * bytes (the ClientHello) have come, or HANDSHAKE_HELLO_MS has passed: the
 * kernel holds the ones that say nothing, which then cost no handshake.
 * A plain link's peer need not speak first (mxd pings it).
 */
static void
link_defer_accept(struct link *l)
{
	int s = l->tls != NULL ? HANDSHAKE_HELLO_MS / 1000 : 0;

	if (l->listener != NULL && setsockopt(evconnlistener_get_fd(
	    l->listener), IPPROTO_TCP, TCP_DEFER_ACCEPT, &s, sizeof(s)) == -1)
		log_debug("link: TCP_DEFER_ACCEPT: %s", strerror(errno));
}

/* ${l} waits for the peer on ${lst}, bound to the listen address of
 * ${cfg}. */
static void
link_listening(struct link *l, struct evconnlistener *lst,
    const struct config *cfg)
{

	l->listener = lst;
	link_defer_accept(l);
	log_info("link: waiting for the peer on %s%s",
	    log_addr(cfg->link_addr.host, cfg->link_addr.port).s,
	    l->tls != NULL ? " (TLS)" : "");
}

/* Nonzero if ${sa} is a loopback address (IPv4, IPv6 or IPv4-mapped). */
static int
is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in *sin = (const void *)sa;
	const struct sockaddr_in6 *sin6 = (const void *)sa;

	if (sa->sa_family == AF_INET)
		return ((ntohl(sin->sin_addr.s_addr) >> 24) == 127);
	if (sa->sa_family == AF_INET6)
		return (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127));
	return (0);
}

/* Warn if ${l} listens, without TLS, where other hosts can reach it, on
 * the listen address of ${cfg}; or, with TLS, if a plain link made before
 * tls = on is still up there, finishing its channels. */
static void
warn_plain(struct link *l, const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct lsess *ls;

	if (l->listener == NULL || getsockname(evconnlistener_get_fd(
	    l->listener), (struct sockaddr *)&ss, &sl) == -1 ||
	    is_loopback((struct sockaddr *)&ss))
		return;
	if (l->tls == NULL) {
		log_warn("link: plain link (tls = off) listening on %s, which "
		    "is not a loopback address: whoever reaches it can open "
		    "channels to every service here; set tls = on",
		    log_addr(cfg->link_addr.host, cfg->link_addr.port).s);
		return;
	}
	for (ls = l->all; ls != NULL; ls = ls->next)
		if (ls->tls == NULL && !session_held(ls->sess))
			log_warn("link %s: still a plain link (it came before "
			    "tls = on): its %u open channels finish on it, "
			    "unencrypted", ls->peer,
			    mux_stream_count(session_mux(ls->sess)));
}

/* Abandon the connections ${l} is making: no dial or TLS handshake under
 * way. */
static void
link_abandon(struct link *l)
{

	hs_free_all(l);
	if (l->dial != NULL) {
		dial_cancel(l->dial);
		l->dial = NULL;
	}
}

/* Stop ${l} making or taking new connections: no redial, no dial or TLS
 * handshake under way, no listener. */
static void
link_stop(struct link *l)
{

	event_del(l->redial_ev);
	link_abandon(l);
	if (l->listener != NULL) {
		evconnlistener_free(l->listener);
		l->listener = NULL;
	}
}

/*
 * The TLS settings of ${l} changed (the keys ${what}): no connection made
 * under the old ones may carry new channels.  The sessions on them get Go
 * Away and finish their open channels there (a peer told so dials again);
 * the handshakes under way go; the dialer dials at once.  A new connection
 * is made and checked under the new settings.  A held session has no
 * connection: it resumes only over such a new one, and only if the peer
 * shows the key it had (session_attach; the listener: the peer proves the
 * session's secret over a connection that passed the new checks).
 */
static void
link_rekey(struct link *l, const char *what)
{
	struct lsess *ls;
	uint32_t n = 0;

	for (ls = l->all; ls != NULL; ls = ls->next)
		if (!ls->draining && !session_held(ls->sess))
			n += mux_stream_count(session_mux(ls->sess));
	log_info("link%s%s: TLS settings changed (%s): re-establishing the "
	    "link (%u open channels finish on the old one)", l->cur != NULL ?
	    " " : "", l->cur != NULL ? l->cur->peer : "", what, n);
	link_abandon(l);
	for (ls = l->all; ls != NULL; ls = ls->next)
		if (!ls->draining && !session_held(ls->sess)) {
			session_goaway(ls->sess, MUX_GOAWAY_NORMAL);
			lsess_retire(ls);
		}
}

/*
 * Move ${l} to the connect or listen address of ${cfg} (being reloaded),
 * listening on ${lst} (bound already) if it says listen.  The current
 * session stays current until a new one at the new place has answered a
 * ping, and then finishes its open channels (lsess_make_current): a wrong
 * new address costs log lines, not the link.  A listener that only moves
 * keeps its sessions; the peer needs the new address when it next dials.
 */
static void
link_move(struct link *l, const struct config *cfg,
    struct evconnlistener *lst)
{
	const struct config *old = l->d->cfg;
	struct lsess *ls;

	log_info("link: now %s %s (was %s %s)", cfg->link_listen ?
	    "listening on" : "connecting to", log_addr(cfg->link_addr.host,
	    cfg->link_addr.port).s, old->link_listen ? "listening on" :
	    "connecting to", log_addr(old->link_addr.host,
	    old->link_addr.port).s);
	if (l->listening && lst != NULL) {
		evconnlistener_free(l->listener);
		link_listening(l, lst, cfg);
		return;
	}
	link_stop(l);
	/* A replacement on its way to the old new place is not wanted. */
	for (ls = l->all; ls != NULL; ls = ls->next)
		if (ls->probation) {
			session_goaway(ls->sess, MUX_GOAWAY_NORMAL);
			lsess_retire(ls);
		}
	l->listening = cfg->link_listen;
	l->failing = 0;
	l->dial_logged_us = 0;
	l->backoff_ms = cfg->reconnect_min_ms;
	if (lst != NULL) {
		link_listening(l, lst, cfg);
	} else {
		l->moving = l->cur != NULL;
		link_redial(l);
	}
}

/* Use the [link] settings of ${cfg} from now on. */
int
link_reload(struct link *l, const struct config *cfg, char *err,
    size_t errlen)
{
	const struct config *old = l->d->cfg;
	struct evconnlistener *lst = NULL;
	struct tls_basis basis;
	struct lsess *ls;
	SSL_CTX *ctx = NULL;
	char what[128];
	int rekeyed;
	int moved = cfg->link_listen != old->link_listen ||
	    strcmp(cfg->link_addr.host, old->link_addr.host) != 0 ||
	    strcmp(cfg->link_addr.port, old->link_addr.port) != 0;

	/* What can fail comes first: on failure nothing has changed. */
	if (tls_basis(cfg, &basis, err, errlen))
		return (-1);
	if (cfg->tls && (ctx = tls_ctx_new(cfg, err, errlen)) == NULL)
		return (-1);
	if (moved && cfg->link_listen &&
	    (lst = link_bind(l, cfg, err, errlen)) == NULL) {
		SSL_CTX_free(ctx);
		return (-1);
	}
	/* Handshakes and sessions under way hold their own references. */
	SSL_CTX_free(l->tls);
	l->tls = ctx;
	link_defer_accept(l);
	if ((rekeyed = tls_basis_diff(&l->basis, &basis, what,
	    sizeof(what)) > 0)) {
		l->basis = basis;
		link_rekey(l, what);
	}
	/* A new keepalive or timeout applies to the link up (a firewall's
	 * idle timeout found too short must not cost the link). */
	for (ls = l->all; ls != NULL; ls = ls->next)
		if (session_set_liveness(ls->sess, cfg->keepalive_ms,
		    cfg->timeout_ms, cfg->resume_timeout_ms))
			log_error("link %s: cannot set keepalive and timeout: "
			    "%s", ls->peer, strerror(errno));
	if (moved) {
		link_move(l, cfg, lst);
	} else if (!l->listening && (rekeyed || (l->dial == NULL &&
	    event_pending(l->redial_ev, EV_TIMEOUT, NULL)))) {
		/* A new key dials now; so does a reload while down and
		 * backing off: whoever reloads wants it tried now. */
		if (!rekeyed)
			log_info("link: reloaded while down: connecting to %s "
			    "now", log_addr(cfg->link_addr.host,
			    cfg->link_addr.port).s);
		event_del(l->redial_ev);
		l->failing = 0;
		l->dial_logged_us = 0;
		l->backoff_ms = cfg->reconnect_min_ms;
		link_redial(l);
	}
	warn_plain(l, cfg);
	return (0);
}

/* Start ${d}'s link. */
struct link *
link_new(struct daemon *d, const struct link_upcalls *up)
{
	const struct config *cfg = d->cfg;
	struct evconnlistener *lst;
	struct link *l;
	char err[512];

	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto err0;
	l->d = d;
	l->up = up;
	l->handlers = link_handlers;
	l->handlers.on_stream_readable = up->on_stream_readable;
	l->handlers.on_stream_writable = up->on_stream_writable;
	l->handlers.on_stream_pull = up->on_stream_pull;
	l->handlers.on_stream_close = up->on_stream_close;
	l->since = session_now_us();
	l->listening = cfg->link_listen;
	l->backoff_ms = cfg->reconnect_min_ms;
	if ((cfg->tls && (l->tls = tls_ctx_new(cfg, err, sizeof(err))) ==
	    NULL) || tls_basis(cfg, &l->basis, err, sizeof(err))) {
		log_error("link: %s", err);
		goto err1;
	}
	if ((l->redial_ev = evtimer_new(d->base, dial_now_cb, l)) == NULL)
		goto err1;
	if ((l->reap_ev = evtimer_new(d->base, reap_cb, l)) == NULL)
		goto err2;
	if ((l->accept_pause = evtimer_new(d->base, accept_resume_cb,
	    l)) == NULL)
		goto err3;
	if (l->listening) {
		if ((lst = link_bind(l, cfg, err, sizeof(err))) == NULL) {
			log_error("link: %s", err);
			goto err4;
		}
		link_listening(l, lst, cfg);
		warn_plain(l, cfg);
	} else {
		log_info("link: connecting to %s", log_addr(cfg->link_addr.host,
		    cfg->link_addr.port).s);
		link_redial(l);
	}
	return (l);

err4:
	event_free(l->accept_pause);
err3:
	event_free(l->reap_ev);
err2:
	event_free(l->redial_ev);
err1:
	SSL_CTX_free(l->tls);
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
	hs_free_all(l);
	if (l->dial != NULL)
		dial_cancel(l->dial);
	if (l->listener != NULL)
		evconnlistener_free(l->listener);
	event_free(l->accept_pause);
	event_free(l->reap_ev);
	event_free(l->redial_ev);
	SSL_CTX_free(l->tls);
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
	struct lsess *ls, *next;

	l->draining = 1;
	link_stop(l);
	for (ls = l->all; ls != NULL; ls = next) {
		next = ls->next;
		/* Held channels cannot finish without the peer. */
		if (session_held(ls->sess)) {
			log_warn("link %s: stopping: %u held channels reset",
			    ls->peer, mux_stream_count(session_mux(ls->sess)));
			lsess_free(ls);
			continue;
		}
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

int
link_flushed(const struct link *l)
{
	const struct lsess *ls;

	for (ls = l->all; ls != NULL; ls = ls->next)
		if (!session_flushed(ls->sess))
			return (0);
	return (1);
}

/* Write a one-line summary of ${l} into ${buf} of ${len}. */
void
link_status(const struct link *l, char *buf, size_t len)
{
	struct link_info in;
	struct log_duration age;

	link_get_info(l, &in);
	age = fmt_age(in.since_s);
	switch (in.state) {
	case LINK_RESUMING:
		snprintf(buf, len, "link resuming (%u channels held) for %s",
		    in.held, age.s);
		break;
	case LINK_DOWN:
		snprintf(buf, len, "link down, %u channels", link_channels(l));
		break;
	default:
		/* The peer's identity is its key's pin (mxd status has all). */
		snprintf(buf, len, "link up %s to %s (%s%s%s), %u channels",
		    age.s, in.peer, in.tls != NULL ? in.tls : "plain",
		    in.pin[0] != '\0' ? ", key " : "", in.pin, link_channels(l));
	}
}

_Static_assert(sizeof(((struct link_info *)0)->pin) >= TLS_PIN_TEXT,
    "link.h: struct link_info's pin is too short");

/* The state of ${l} into ${info}. */
void
link_get_info(const struct link *l, struct link_info *info)
{
	const struct lsess *ls = l->cur;

	memset(info, 0, sizeof(*info));
	info->listening = l->listening;
	info->since_s = (double)(session_now_us() - l->since) / 1e6;
	if (ls == NULL)
		return;
	if (session_held(ls->sess) || session_resuming(ls->sess)) {
		info->state = LINK_RESUMING;
		info->held = session_held_channels(ls->sess);
	} else if (session_answered(ls->sess)) {
		info->state = LINK_UP;
	}
	snprintf(info->peer, sizeof(info->peer), "%s", ls->peer);
	snprintf(info->pin, sizeof(info->pin), "%s", ls->pin);
	info->tls = ls->tls;
}

/* Seconds ${l}'s current session has been up, or -1 if it is down. */
double
link_uptime(const struct link *l)
{

	if (l->cur == NULL || !session_answered(l->cur->sess))
		return (-1);
	return ((double)(session_now_us() - l->cur->up_since) / 1e6);
}

/* Bytes held for the channels of ${l}: in the relays and the streams. */
static uint64_t
link_buffered(const struct link *l)
{
	const struct lsess *ls;
	uint64_t n = l->up->buffered();

	for (ls = l->all; ls != NULL; ls = ls->next)
		n += mux_queued(session_mux(ls->sess));
	return (n);
}

/* Counters of ${l}, with the current round trip, for metrics. */
void
link_get_stats(const struct link *l, struct link_stats *st)
{

	*st = l->st;
	st->rtt_us = l->cur != NULL ? mux_rtt(session_mux(l->cur->sess)) : 0;
	st->held = l->cur != NULL ? session_held_channels(l->cur->sess) : 0;
	st->channels = link_channels(l);
	st->buffered = link_buffered(l);
	st->pending = l->pending;
}

/* Count a channel refused by ${lim} (${value}) for ${svc}; log once. */
void
link_limit_refused(struct link *l, enum link_limit lim, int *hit,
    const char *svc, uint64_t value)
{

	l->st.refused[lim]++;
	if (*hit)
		return;
	*hit = 1;
	log_warn("%s%s: %s (%ju) reached: refusing new channels",
	    svc != NULL ? "service " : "link", svc != NULL ? svc : "",
	    link_limit_keys[lim], (uintmax_t)value);
}

/* Check max_channels and max_buffered before a new channel on ${l}. */
int
link_admit(struct link *l, unsigned self)
{
	const struct config *cfg = l->d->cfg;

	if (link_channels(l) - self >= cfg->max_channels) {
		link_limit_refused(l, LIMIT_CHANNELS, &l->hit[LIMIT_CHANNELS],
		    NULL, cfg->max_channels);
		return (-1);
	}
	if (link_buffered(l) >= cfg->max_buffered) {
		link_limit_refused(l, LIMIT_BUFFERED, &l->hit[LIMIT_BUFFERED],
		    NULL, cfg->max_buffered);
		return (-1);
	}
	l->hit[LIMIT_CHANNELS] = l->hit[LIMIT_BUFFERED] = 0;
	return (0);
}

/* A channel from the peer starts connecting to its target. */
int
link_pending_begin(struct link *l)
{
	uint32_t max = l->d->cfg->max_pending_connects;

	if (l->pending >= max) {
		link_limit_refused(l, LIMIT_PENDING, &l->hit[LIMIT_PENDING],
		    NULL, max);
		return (-1);
	}
	l->pending++;
	l->hit[LIMIT_PENDING] = 0;
	return (0);
}

/* A connect counted by link_pending_begin ended. */
void
link_pending_end(struct link *l)
{

	l->pending--;
}
