/*
 * link: the one connection to the peer mxd, kept up for as long as the
 * daemon runs.  The dialing side connects and, whenever the link drops,
 * redials with exponential backoff and jitter; the listening side accepts
 * its peer, a new connection replacing the old.  A session the peer sent
 * Go Away on keeps its open channels until they finish, while new channels
 * use a fresh link.
 *
 * With tls = on, a new connection becomes a session only after its TLS
 * handshake (within connect_timeout) and the checks of tls_check; a peer
 * that fails is logged with its address and the reason, and dropped before
 * any frame is read.  The link also keeps the per-link limits on new
 * channels, with a count and one log line each time one is hit.
 */
#ifndef MXD_LINK_H
#define MXD_LINK_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct daemon;
struct link;
struct session;

/* The limits on new channels, each a configuration key. */
enum link_limit {
	LIMIT_CHANNELS,		/* [link] max_channels */
	LIMIT_PENDING,		/* [link] max_pending_connects */
	LIMIT_BUFFERED,		/* [link] max_buffered */
	LIMIT_RATE,		/* [service] rate_limit */
	LIMIT_BACKLOG,		/* the engine's backlog of unanswered opens */
	NLIMITS
};

/* The key of each limit, for logs and metrics. */
extern const char *const link_limit_keys[NLIMITS];

struct link_stats {
	uint64_t	dials;		/* connection attempts to the peer */
	uint64_t	ups;		/* sessions that came up */
	uint64_t	tls_refused;	/* peers refused by TLS checks */
	uint64_t	refused[NLIMITS];	/* new channels refused */
	uint64_t	rtt_us;		/* smoothed ping round trip, 0: none */
	uint64_t	buffered;	/* bytes held for the channels */
	uint32_t	channels;	/* open on all sessions */
	uint32_t	pending;	/* the peer's, connecting to targets */
	uint32_t	held;		/* channels held while resuming */
	uint64_t	resumptions;	/* sessions resumed */
	uint64_t	resume_failures; /* held sessions that ended */
	uint64_t	resent;		/* bytes sent again on resuming */
	uint64_t	resume_us;	/* time held, all resumptions */
};

/*
 * The channels' side of the link, which the link calls without knowing it
 * (main.c joins them): the peer opened stream ${s} on ${d} (0: taken, -1:
 * refuse it); each stream's events (see session.h); and how many bytes
 * the channels hold outside the engine.
 */
enum mux_close_reason;
struct mux_stream;
struct link_upcalls {
	int (*stream_open)(struct daemon *d, struct mux_stream *s);
	void (*on_stream_readable)(struct mux_stream *, void *sarg);
	void (*on_stream_writable)(struct mux_stream *, void *sarg);
	void (*on_stream_pull)(struct mux_stream *, void *sarg);
	void (*on_stream_close)(struct mux_stream *, void *sarg,
	    enum mux_close_reason);
	size_t (*buffered)(void);
};

/* Start ${d}'s link as its configuration says, its channels' events going
 * to ${up} (kept).  NULL on failure (logged). */
struct link *link_new(struct daemon *d, const struct link_upcalls *up);

/* Close the link and every session on it at once.  NULL is ok. */
void link_free(struct link *l);

/* The session new channels go on, or NULL while the link is down. */
struct session *link_session(struct link *l);

/* Begin draining: Go Away on every session, no dialing or accepting. */
void link_drain(struct link *l);

/* Channels still open on all sessions of ${l}. */
uint32_t link_channels(const struct link *l);

/* Nonzero if every session of ${l} has written all it queued (its Go Away,
 * when draining): exiting then loses nothing the peer should see. */
int link_flushed(const struct link *l);

/* A one-line summary ("link up 3h to 10.0.0.2:7000, 1532 channels") of
 * ${l} in ${buf} of size ${len}. */
void link_status(const struct link *l, char *buf, size_t len);

/* Seconds the current session of ${l} has been up, -1 while down. */
double link_uptime(const struct link *l);

/* What link_get_info says of a link. */
enum link_state {
	LINK_DOWN,		/* no session, or one not yet answered */
	LINK_UP,		/* a session whose peer has answered */
	LINK_RESUMING		/* its connection lost, the session held */
};

struct link_info {
	enum link_state	state;
	double		since_s;	/* seconds in this state */
	int		listening;	/* [link] listen, not connect */
	char		peer[64];	/* the current session's; "": none */
	const char	*tls;		/* its TLS version; NULL: plain */
	char		pin[52];	/* the peer's key pin; "": none */
	uint32_t	held;		/* channels held while resuming */
};

/* Fill ${info} with the state of ${l} and its current session's peer. */
void link_get_info(const struct link *l, struct link_info *info);

/* Fill ${st} with the counters of ${l}. */
void link_get_stats(const struct link *l, struct link_stats *st);

/*
 * Use the [link] settings of ${cfg} (a configuration being reloaded, not
 * yet the daemon's): TLS for the connections ${l} makes or accepts from now
 * on (TLS settings that changed re-establish the link: the sessions up get
 * Go Away and finish their open channels), and a new connect or listen
 * address.  A new listen address is bound
 * at once, and the sessions already accepted stay.  A new connect address
 * (or a switch between connect and listen) is dialed (or listened on) at
 * once, while the current session stays until a new one there answers a
 * ping, then finishes its open channels.  Returns 0, or -1 with a message
 * in ${err} (size ${errlen}) if the TLS files cannot be loaded or the new
 * address cannot be bound; nothing has changed then.
 */
int link_reload(struct link *l, const struct config *cfg, char *err,
    size_t errlen);

/*
 * May a new channel open on ${l}: are max_channels and max_buffered
 * respected?  ${self} is 1 if the new channel is already counted (the peer
 * opened it).  Returns 0, or -1 after link_limit_refused.
 */
int link_admit(struct link *l, unsigned self);

/*
 * A channel from the peer starts connecting to its target: returns 0, or
 * -1 (after link_limit_refused) if max_pending_connects are under way.
 * Each 0 is matched by a link_pending_end when the connect ends.
 */
int link_pending_begin(struct link *l);
void link_pending_end(struct link *l);

/*
 * Count a new channel refused on ${l} by limit ${lim}, configured as
 * ${value}, for service ${svc} (NULL: the whole link).  Unless *${hit} is
 * set it is logged, once, and *${hit} set; the next channel admitted past
 * that limit clears *${hit}.
 */
void link_limit_refused(struct link *l, enum link_limit lim, int *hit,
    const char *svc, uint64_t value);

#endif
