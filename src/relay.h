/*
 * relay: a channel, one TCP socket joined to one stream.
 *
 * Bytes flow both ways with backpressure: the socket is read only while the
 * stream's send queue has room, and the stream is read (granting the peer
 * window) only while the socket's output buffer has room.  EOF on the socket
 * becomes FIN on the stream; FIN from the peer becomes shutdown(SHUT_WR)
 * once every byte before it was written.  A reset either way becomes a reset
 * on the other side (the socket closes with RST).  When both directions
 * have ended the relay closes the socket and releases the stream.
 */
#ifndef MXD_RELAY_H
#define MXD_RELAY_H

#include <stdint.h>

#include "log.h"	/* struct log_limit */
#include "mux/mux.h"

struct daemon;
struct evbuffer;
struct relay;

/*
 * What the channels of one service share: the service's name for their log
 * lines, its counters, and the summary of channels the peer refused.  The
 * service holds a reference and each of its relays one, so that a service a
 * reload replaces hands the same counters to its successor of that name,
 * and one it removes keeps them until its last channel has ended.
 */
struct channel_stats {
	char		*name;
	uint64_t	opened;		/* channels opened, both directions */
	uint64_t	open;		/* channels open now */
	uint64_t	refused;	/* refused: link down, limit, target */
	uint64_t	reset;		/* ended by a reset */
	uint64_t	bytes_in;	/* from the peer to local sockets */
	uint64_t	bytes_out;	/* from local sockets to the peer */
	uint64_t	stalls;		/* socket reads paused: no window */
	uint64_t	refused_by_peer; /* ours, reset before a byte came */
	struct log_limit refused_log;	/* of refused_by_peer */
	unsigned	refs;
};

/* New counters, with one reference, for service ${name}; NULL on ENOMEM. */
struct channel_stats *channel_stats_new(const char *name);

/* Take a reference to ${st}. */
void channel_stats_hold(struct channel_stats *st);

/* Drop a reference to ${st}; the last one frees it. */
void channel_stats_drop(struct channel_stats *st);

/*
 * Called while relay ${r} has no socket and nothing pending, with the first
 * bytes of its stream ${s} in ${data}; it may consume a prefix (the service
 * header), then set something pending or reset the relay.
 */
typedef void relay_prelude_cb(struct relay *r, struct mux_stream *s,
    struct daemon *d, struct evbuffer *data);

/*
 * A relay for stream ${s} in ${d}.  With ${fd} >= 0 (a client of the
 * service counted in ${st}, whose stream this side opened) it relays at
 * once; with ${fd} == -1 (a stream the peer opened) the stream's data goes
 * to ${prelude} until relay_attach.  Returns NULL on failure (${fd} is then
 * closed).
 */
struct relay *relay_new(struct daemon *d, struct mux_stream *s, int fd,
    struct channel_stats *st, relay_prelude_cb *prelude);

/* Give ${r} its socket ${fd} (a target's) and the counters ${st} of its
 * service. */
void relay_attach(struct relay *r, int fd, struct channel_stats *st);

/* Abort ${r} because of ${why} (for its close line): the stream and the
 * socket are reset. */
void relay_reset(struct relay *r, const char *why);

/* Attach ${ptr} (a dial under way, owned by the prelude) to ${r}, freed
 * with ${cancel} if the relay ends first. */
void relay_set_pending(struct relay *r, void *ptr, void (*cancel)(void *));

/* Bytes waiting in the relays' buffers for their sockets, all relays. */
size_t relay_buffered(void);

/* The stream callbacks for the session (the argument is the relay). */
void relay_on_readable(struct mux_stream *s, void *r);
void relay_on_writable(struct mux_stream *s, void *r);
void relay_on_pull(struct mux_stream *s, void *r);
void relay_on_close(struct mux_stream *s, void *r,
    enum mux_close_reason reason);

#endif
