/*
 * service: the services of the configuration in force, and the side of a
 * channel that the peer opened: read the service header, connect to the
 * service's target, relay.
 */
#ifndef MXD_SERVICE_H
#define MXD_SERVICE_H

#include <stdint.h>

#include "config.h"	/* enum proxy_version */

struct daemon;
struct listener;
struct mux_stream;

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
	struct channel_stats *st;	/* shared with its channels */
	unsigned	refs;		/* the table's, one per target dial */
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

/*
 * The peer opened stream ${s} on ${d}: route it by its service header.
 * Returns 0 if taken, -1 to refuse it.
 */
int service_stream_open(struct daemon *d, struct mux_stream *s);

#endif
