/*
 * service: the services of the configuration in force, and the side of a
 * channel that the peer opened: read the service header, connect to the
 * service's target, relay.
 */
#ifndef MXD_SERVICE_H
#define MXD_SERVICE_H

#include <stdint.h>

#include "config.h"	/* enum proxy_version */
#include "log.h"	/* struct log_limit */

struct daemon;
struct listener;
struct mux_stream;

struct service_stats {
	uint64_t	opened;		/* channels opened, both directions */
	uint64_t	open;		/* channels open now */
	uint64_t	refused;	/* refused: link down, limit, target */
	uint64_t	reset;		/* ended by a reset */
	uint64_t	bytes_in;	/* from the peer to local sockets */
	uint64_t	bytes_out;	/* from local sockets to the peer */
	uint64_t	stalls;		/* socket reads paused: no window */
	uint64_t	refused_by_peer; /* ours, reset before a byte came */
};

struct service {
	char		*name;
	char		*accept_host, *accept_port;	/* NULL: none */
	char		*connect_host, *connect_port;	/* NULL: none */
	struct listener	*listener;			/* for accept */
	enum proxy_version proxy;	/* PROXY header sent to the target */
	uint32_t	rate_limit;	/* new connections/s; 0: no limit */
	uint64_t	rate_tat;	/* when the rate bucket is full again */
	int		rate_hit;	/* rate_limit refusing, logged */
	struct daemon	*d;
	struct service_stats st;
	struct log_limit refused_log;	/* refused by the peer */
	unsigned	refs;		/* the table's, and one per channel */
	struct service	*next;
};

/*
 * Make ${d}'s service table match ${cfg}: unchanged services (and their
 * channels and listeners) stay, new ones start listening, removed ones stop
 * (their open channels finish).  Returns 0, or -1 if a listener could not
 * be bound (logged; the services that did start are kept).
 */
int service_table_apply(struct daemon *d, const struct config *cfg);

/* Drop every service of ${d} (at exit). */
void service_table_free(struct daemon *d);

/* Stop accepting new connections on every service of ${d}. */
void service_stop_listening(struct daemon *d);

/* Take and drop a reference to ${svc}. */
void service_ref(struct service *svc);
void service_unref(struct service *svc);

/*
 * The peer opened stream ${s} on ${d}: route it by its service header.
 * Returns 0 if taken, -1 to refuse it.
 */
int service_stream_open(struct daemon *d, struct mux_stream *s);

#endif
