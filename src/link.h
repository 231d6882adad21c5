/*
 * link: the one connection to the peer mxd, kept up for as long as the
 * daemon runs.  The dialing side connects and, whenever the link drops,
 * redials with exponential backoff and jitter; the listening side accepts
 * its peer, a new connection replacing the old.  A session the peer sent
 * Go Away on keeps its open channels until they finish, while new channels
 * use a fresh link.
 */
#ifndef MXD_LINK_H
#define MXD_LINK_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct link;
struct session;

struct link_stats {
	uint64_t	dials;		/* connection attempts to the peer */
	uint64_t	ups;		/* sessions that came up */
	uint64_t	rtt_us;		/* smoothed ping round trip, 0: none */
	uint32_t	channels;	/* open on all sessions */
};

/* Start ${d}'s link as its configuration says.  NULL on failure (logged). */
struct link *link_new(struct daemon *d);

/* Close the link and every session on it at once.  NULL is ok. */
void link_free(struct link *l);

/* The session new channels go on, or NULL while the link is down. */
struct session *link_session(struct link *l);

/* Begin draining: Go Away on every session, no dialing or accepting. */
void link_drain(struct link *l);

/* Channels still open on all sessions of ${l}. */
uint32_t link_channels(const struct link *l);

/* A one-line summary ("link up 3h to 10.0.0.2:7000, 1532 channels") of
 * ${l} in ${buf} of size ${len}. */
void link_status(const struct link *l, char *buf, size_t len);

/* Seconds the current session of ${l} has been up, -1 while down. */
double link_uptime(const struct link *l);

/* Fill ${st} with the counters of ${l}. */
void link_get_stats(const struct link *l, struct link_stats *st);

#endif
