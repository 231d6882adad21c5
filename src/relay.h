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

#include "mux/mux.h"

struct daemon;
struct evbuffer;
struct relay;
struct service;

/*
 * Called while relay ${r} has no socket and nothing pending, with the first
 * bytes of its stream ${s} in ${data}; it may consume a prefix (the service
 * header), then set something pending or reset the relay.
 */
typedef void relay_prelude_cb(struct relay *r, struct mux_stream *s,
    struct daemon *d, struct evbuffer *data);

/*
 * A relay for stream ${s} of service ${svc} in ${d}.  With ${fd} >= 0 it
 * relays at once; with ${fd} == -1 the stream's data goes to ${prelude}
 * until relay_attach.  Returns NULL on failure (${fd} is then closed).
 */
struct relay *relay_new(struct daemon *d, struct mux_stream *s, int fd,
    struct service *svc, relay_prelude_cb *prelude);

/* Give ${r} its socket ${fd} and service ${svc}. */
void relay_attach(struct relay *r, int fd, struct service *svc);

/* Abort ${r}: the stream and the socket are reset. */
void relay_reset(struct relay *r);

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
