/*
 * relay: see relay.h.
 *
 * A relay is small on purpose (one struct with an embedded event; the
 * output buffer exists only while it holds bytes): an idle channel costs a
 * few hundred bytes.  Sockets are read straight into evbuffer chains and
 * the chains are handed to the stream, so payload is not copied here.
 *
 * Lifecycle:
 *   prelude   stream only: its first bytes go to the prelude callback,
 *             which must hand the relay to a dial or a socket within
 *             connect_timeout (the relay's event, unused without a
 *             socket, is the deadline), or the stream is reset
 *   open      both ways; either direction may end first (half-close)
 *   closed    socket EOF sent as FIN and the peer's FIN delivered as
 *             shutdown(SHUT_WR): release the stream, close the socket
 *   reset     the peer reset the stream, the session died, or the socket
 *             failed: reset the other side and free everything
 *
 * Reading, while open: a readable socket is read at once, unless its last
 * read is still queued and the link's streams hold more than PULL_QUEUED
 * in all: then bytes read now would wait for their turn behind that much,
 * and be out of the CPU's cache by the time they are framed and written.
 * The relay stops watching the socket instead and puts the stream in pull
 * mode (mux_stream_set_pull): the socket is read when the stream's turn on
 * the link comes, and the bytes go out in the same pass.  A read that
 * comes back short (the socket drained) ends pull mode.  One bulk channel
 * never gets there; it keeps reading ahead of the link, which is faster
 * for it alone.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "ms.h"
#include "relay.h"

/*
 * A socket is read into a chain of 1 << rdshift bytes, which moves as it is
 * to the stream and on to the link.  The size starts small and doubles each
 * time a read fills it, up to READ_MAX_SHIFT: a bulk channel reads in big
 * gulps (fewer system calls, whole chains per frame), while a channel
 * carrying small messages never parks a big, mostly empty chain in a queue.
 */
#define READ_MIN_SHIFT	14	/* 16 KiB */
#define READ_MAX_SHIFT	17	/* 128 KiB */
/* Room left for libevent's chain header, so a chain is exactly a power of
 * two (libevent rounds every allocation up to one). */
#define CHAIN_SLACK	128
/* Stream bytes buffered for a socket before the stream is left unread. */
#define OUT_HIWAT	(256 * 1024)
/* Bytes queued on all streams beyond which a relay whose last read is
 * still queued reads on its turn (see the top): about a core's L2 cache. */
#define PULL_QUEUED	(1024 * 1024)

#define R_RD_EOF	0x01	/* socket gave EOF; FIN queued */
#define R_WR_EOF	0x02	/* peer's FIN delivered: SHUT_WR done */
#define R_RD_FULL	0x04	/* stream queue full: socket not read */
#define R_FLUSH_SOON	0x08	/* ev activated: stream data to write */
#define R_PULL		0x10	/* pull mode: the stream's turn reads */
#define R_DEADLINE	0x20	/* ev is the prelude's deadline */
#define R_OURS		0x40	/* this side opened the stream */

struct relay {
	struct event	ev;		/* the socket; interest in 'events' */
	int		fd;		/* -1 during the prelude */
	short		events;
	uint8_t		flags;
	uint8_t		rdshift;	/* reads take 1 << rdshift bytes */
	uint32_t	since_ms;	/* opened: relay_clock_ms() */
	uint16_t	hdr;		/* the service header's bytes: sent
					 * (R_OURS) or received on the stream */
	struct mux_stream *s;
	struct evbuffer	*out;		/* to the socket; NULL when empty */
	struct daemon	*d;
	struct channel_stats *st;	/* referenced; NULL in the prelude */
	relay_prelude_cb *prelude;
	void		*pending;	/* the prelude's dial */
	void		(*pending_cancel)(void *);
};

/* Chains for socket reads, handed on to streams and so always empty. */
static struct evbuffer *readbuf;

/* Bytes in every relay's output buffer (one link per process). */
static size_t out_bytes;

static void relay_io_cb(evutil_socket_t, short, void *);
static void relay_pull(struct relay *, int);

/* Stop ${r}'s prelude deadline, if it runs. */
static void
relay_deadline_stop(struct relay *r)
{

	if (r->flags & R_DEADLINE) {
		event_del(&r->ev);
		r->flags &= ~R_DEADLINE;
	}
}

struct channel_stats *
channel_stats_new(const char *name)
{
	struct channel_stats *st;
	char label[sizeof(st->refused_log.label)];

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return (NULL);
	if ((st->name = strdup(name)) == NULL) {
		free(st);
		return (NULL);
	}
	snprintf(label, sizeof(label), "service %s", name);
	log_limit_init(&st->refused_log, label, "channels refused by the peer",
	    1);
	st->refs = 1;
	return (st);
}

void
channel_stats_hold(struct channel_stats *st)
{

	st->refs++;
}

void
channel_stats_drop(struct channel_stats *st)
{

	if (--st->refs > 0)
		return;
	log_limit_end(&st->refused_log);
	free(st->name);
	free(st);
}

/*
 * Milliseconds on ${r}'s loop's clock (cached: no system call), modulo
 * 2^32: a relay keeps 4 bytes of it, so the age of a channel open for more
 * than 49 days is told modulo that.
 */
static uint32_t
relay_clock_ms(const struct relay *r)
{
	struct timeval tv;

	(void)event_base_gettimeofday_cached(r->d->base, &tv);
	return ((uint32_t)((uint64_t)tv.tv_sec * 1000 +
	    (uint64_t)tv.tv_usec / 1000));
}

/* The bytes of ${r}'s stream from the peer (*${in}) and to it (*${out}),
 * the service header left out. */
static void
relay_bytes(const struct relay *r, uint64_t *in, uint64_t *out)
{

	mux_stream_bytes(r->s, in, out);
	if (r->flags & R_OURS)
		*out -= *out >= r->hdr ? r->hdr : *out;
	else
		*in -= *in >= r->hdr ? r->hdr : *in;
}

/* ${r} ends because of ${why}, its stream still there: its close line,
 * with bytes each way and how long it was open. */
static void
relay_log_end(struct relay *r, const char *why)
{
	uint64_t in, out;

	if (!log_enabled(LOG_DEBUG))
		return;
	relay_bytes(r, &in, &out);
	log_msg(LOG_DEBUG, "%s%s%schannel %u: closed after %s, %ju bytes in, "
	    "%ju out: %s", r->st != NULL ? "service " : "", r->st != NULL ?
	    r->st->name : "", r->st != NULL ? ": " : "", mux_stream_id(r->s),
	    fmt_duration((uint32_t)(relay_clock_ms(r) - r->since_ms)).s,
	    (uintmax_t)in, (uintmax_t)out, why);
}

/* Free ${r}; the stream (its close line logged) and socket must already be
 * dealt with. */
static void
relay_free(struct relay *r)
{

	if (r->pending != NULL)
		r->pending_cancel(r->pending);
	relay_deadline_stop(r);
	if (r->fd >= 0) {
		event_del(&r->ev);
		close(r->fd);
	}
	if (r->out != NULL) {
		out_bytes -= evbuffer_get_length(r->out);
		evbuffer_free(r->out);
	}
	if (r->st != NULL) {
		r->st->open--;
		channel_stats_drop(r->st);
	}
	r->d->relays--;
	free(r);
}

/* Close ${r}'s socket with RST, as a refused or reset connection would. */
static void
relay_socket_rst(struct relay *r)
{
	struct linger lg = { 1, 0 };

	if (r->fd >= 0)
		(void)setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Abort ${r} because of ${why}: reset the stream and the socket. */
void
relay_reset(struct relay *r, const char *why)
{

	if (r->st != NULL)
		r->st->reset++;
	relay_log_end(r, why);
	mux_stream_reset(r->s);
	relay_socket_rst(r);
	relay_free(r);
}

/* Register interest in the socket events ${r} needs now. */
static void
relay_arm(struct relay *r)
{
	short want = 0;

	if (r->fd < 0)
		return;
	if (!(r->flags & (R_RD_EOF | R_RD_FULL | R_PULL)))
		want |= EV_READ;
	if (r->out != NULL)
		want |= EV_WRITE;
	if (want == r->events)
		return;
	/* Changing interest means assigning ev anew, which an activation
	 * must not be pending on: take it off, and put it back after. */
	if (r->events || (r->flags & R_FLUSH_SOON))
		event_del(&r->ev);
	r->events = want;
	event_assign(&r->ev, event_get_base(&r->ev), r->fd, want | EV_PERSIST,
	    relay_io_cb, r);
	if (want)
		event_add(&r->ev, NULL);
	if (r->flags & R_FLUSH_SOON)
		event_active(&r->ev, EV_WRITE, 0);
}

/* If both directions of ${r} have ended, close it.  Returns 1 if freed. */
static int
relay_maybe_done(struct relay *r)
{

	if ((r->flags & (R_RD_EOF | R_WR_EOF)) != (R_RD_EOF | R_WR_EOF))
		return (0);
	relay_log_end(r, "closed both ways");
	mux_stream_release(r->s);
	r->s = NULL;
	relay_free(r);
	return (1);
}

/* out_cb: bytes were added to or drained from an output buffer. */
static void
out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{

	(void)b;
	(void)arg;
	out_bytes += info->n_added;
	out_bytes -= info->n_deleted;
}

/* Give ${r} an (empty) output buffer.  Returns 0 or -1. */
static int
relay_out_new(struct relay *r)
{

	if ((r->out = evbuffer_new()) == NULL)
		return (-1);
	if (evbuffer_add_cb(r->out, out_cb, NULL) == NULL) {
		evbuffer_free(r->out);
		r->out = NULL;
		return (-1);
	}
	return (0);
}

/* Bytes waiting in relays' buffers for their sockets. */
size_t
relay_buffered(void)
{

	return (out_bytes);
}

/*
 * Move what the stream has for ${r}'s socket into its output buffer (up to
 * OUT_HIWAT), write what the socket takes, and deliver the peer's FIN once
 * everything before it is written.  Returns -1 if ${r} was freed.
 */
static int
relay_pump_in(struct relay *r)
{
	const char *why = "out of memory";
	char err[96];
	size_t have;
	int n;

	do {
		have = r->out ? evbuffer_get_length(r->out) : 0;
		if (have < OUT_HIWAT && mux_stream_readable(r->s) > 0) {
			if (r->out == NULL && relay_out_new(r))
				goto fail;
			n = mux_stream_read(r->s, r->out, OUT_HIWAT - have);
			if (n < 0)
				goto fail;
			if (r->st != NULL)
				r->st->bytes_in += (uint64_t)n;
		}
		if (r->fd < 0) {
			if (r->pending != NULL)
				return (0);
			if (r->out == NULL && relay_out_new(r))
				goto fail;
			r->prelude(r, r->s, r->d, r->out);
			return (0);	/* the prelude may have freed r */
		}
		if (r->out == NULL)
			break;
		/* evbuffer_write fails (-1, errno untouched) on nothing. */
		if (evbuffer_get_length(r->out) > 0 &&
		    evbuffer_write(r->out, r->fd) < 0 && errno != EAGAIN &&
		    errno != EINTR) {
			snprintf(err, sizeof(err), "write: %s",
			    strerror(errno));
			why = err;
			goto fail;
		}
		if (evbuffer_get_length(r->out) > 0)
			break;		/* the socket is full: EV_WRITE */
		evbuffer_free(r->out);
		r->out = NULL;
		/* All written: more may wait in the stream, with no new
		 * readable event to come until we read it. */
	} while (mux_stream_readable(r->s) > 0);

	if (r->out == NULL && mux_stream_eof(r->s) && !(r->flags & R_WR_EOF)) {
		r->flags |= R_WR_EOF;
		/* With reading over too, the close that follows sends the
		 * FIN (nothing is left unread to turn it into a reset). */
		if (!(r->flags & R_RD_EOF))
			(void)shutdown(r->fd, SHUT_WR);
		if (relay_maybe_done(r))
			return (-1);
	}
	relay_arm(r);
	return (0);

fail:
	relay_reset(r, why);
	return (-1);
}

/*
 * Read from ${r}'s socket into its stream.  Returns 1 if the read filled
 * its buffer (more may be waiting), 0 if not, -1 if ${r} was freed.
 */
static int
relay_pump_out(struct relay *r)
{
	size_t want = ((size_t)1 << r->rdshift) - CHAIN_SLACK;
	const char *why = "out of memory";
	char err[96];
	struct evbuffer_iovec v;
	ssize_t n;
	int rc, full;

	/* The space may be a bigger chain a read left empty (EOF): the read
	 * still takes only what this relay wants. */
	if (evbuffer_reserve_space(readbuf, want, &v, 1) != 1)
		goto fail;
	if (v.iov_len > want)
		v.iov_len = want;
	if ((n = read(r->fd, v.iov_base, v.iov_len)) < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return (0);
		snprintf(err, sizeof(err), "read: %s", strerror(errno));
		why = err;
		goto fail;
	}
	if (n == 0) {
		r->flags |= R_RD_EOF;
		mux_stream_shutdown(r->s);
		if (relay_maybe_done(r))
			return (-1);
		relay_arm(r);
		return (0);
	}
	if ((full = (size_t)n == v.iov_len) && r->rdshift < READ_MAX_SHIFT)
		r->rdshift++;
	v.iov_len = (size_t)n;
	if (evbuffer_commit_space(readbuf, &v, 1))
		goto fail;
	if (r->st != NULL)
		r->st->bytes_out += (uint64_t)n;
	if ((rc = mux_stream_write(r->s, readbuf)) < 0)
		goto fail;
	if (rc == 1) {
		r->flags |= R_RD_FULL;
		if (r->st != NULL)
			r->st->stalls++;
		relay_arm(r);
	}
	return (full);

fail:
	evbuffer_drain(readbuf, evbuffer_get_length(readbuf));
	relay_reset(r, why);
	return (-1);
}

/* The socket of ${arg} is readable or writable (${what}). */
static void
relay_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	if (what & EV_WRITE)
		r->flags &= ~R_FLUSH_SOON;
	if ((what & EV_WRITE) && relay_pump_in(r))
		return;
	if ((what & EV_READ) && !(r->flags & (R_RD_EOF | R_RD_FULL))) {
		if (mux_stream_queued(r->s) > 0 &&
		    mux_unsent(mux_stream_session(r->s)) >= PULL_QUEUED)
			relay_pull(r, 1);
		else
			relay_pump_out(r);
	}
}

/* Pull mode on (${on} nonzero) or off for ${r}: see the top of the file. */
static void
relay_pull(struct relay *r, int on)
{

	if (on)
		r->flags |= R_PULL;
	else
		r->flags &= ~R_PULL;
	mux_stream_set_pull(r->s, on);
	relay_arm(r);
}

/* mux: the turn of relay ${arg}'s stream ${s} (pull mode) has come. */
void
relay_on_pull(struct mux_stream *s, void *arg)
{
	struct relay *r = arg;
	int rc;

	(void)s;
	/* A full read (no EOF then) may leave more: stay, unless the
	 * stream's queue is full. */
	if ((rc = relay_pump_out(r)) == 1 && !(r->flags & R_RD_FULL))
		return;
	if (rc >= 0)
		relay_pull(r, 0);
}

/* mux: stream data (or FIN) arrived for relay ${arg}. */
void
relay_on_readable(struct mux_stream *s, void *arg)
{
	struct relay *r = arg;

	(void)s;
	if (r->fd < 0) {
		relay_pump_in(r);
		return;
	}
	/*
	 * Write once the whole link read is parsed, not once per frame: a
	 * read of the link holds many frames for the same socket, and one
	 * writev beats a dozen.  An activation needs no epoll_ctl.
	 */
	if (!(r->flags & R_FLUSH_SOON)) {
		r->flags |= R_FLUSH_SOON;
		event_active(&r->ev, EV_WRITE, 0);
	}
}

/* mux: the stream of relay ${arg} has room again. */
void
relay_on_writable(struct mux_stream *s, void *arg)
{
	struct relay *r = arg;

	(void)s;
	r->flags &= ~R_RD_FULL;
	relay_arm(r);
}

/* mux: the stream of relay ${arg} was reset or its session ended. */
void
relay_on_close(struct mux_stream *s, void *arg, enum mux_close_reason reason)
{
	struct relay *r = arg;
	uint64_t in, out;

	(void)s;
	if (r->st != NULL)
		r->st->reset++;
	/*
	 * A stream of ours the peer reset before a byte came back was
	 * refused by the peer (an unknown service, a target down, a limit:
	 * see the peer's log): the service counts it and says so, a line at
	 * a time within its limit.
	 */
	relay_bytes(r, &in, &out);
	if (reason == MUX_CLOSE_RESET && r->st != NULL &&
	    (r->flags & R_OURS) && in == 0) {
		r->st->refused_by_peer++;
		log_limited(&r->st->refused_log, NULL, LOG_WARN, "service %s: "
		    "channel %u refused by the peer (reset before a byte came "
		    "back: its log says why)", r->st->name, mux_stream_id(s));
	}
	relay_log_end(r, reason == MUX_CLOSE_RESET ? "reset by the peer" :
	    "the session ended");
	r->s = NULL;
	relay_socket_rst(r);
	relay_free(r);
}

/* Give ${r} socket ${fd} (from dial or listen_on: TCP_NODELAY set) and
 * its service's counters ${st}, and start relaying. */
void
relay_attach(struct relay *r, int fd, struct channel_stats *st)
{
	uint64_t in, out;

	relay_deadline_stop(r);
	r->fd = fd;
	if (!(r->flags & R_OURS)) {
		/* What came and is not still waiting was the header. */
		mux_stream_bytes(r->s, &in, &out);
		in -= mux_stream_readable(r->s) + (r->out != NULL ?
		    evbuffer_get_length(r->out) : 0);
		r->hdr = in > UINT16_MAX ? UINT16_MAX : (uint16_t)in;
	}
	if (st != NULL && r->st == NULL) {
		channel_stats_hold(st);
		r->st = st;
		st->opened++;
		st->open++;
	}
	event_assign(&r->ev, r->d->base, fd, 0, relay_io_cb, r);
	r->events = 0;
	relay_pump_in(r);	/* bytes that came with the open */
}

/* deadline: the prelude of relay ${arg} did not end in time. */
static void
relay_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	/* The peer can have one as often as it opens a stream. */
	static struct log_limit lim = LOG_LIMIT("channel: no service header "
	    "within connect_timeout");
	struct relay *r = arg;

	(void)fd;
	(void)what;
	r->flags &= ~R_DEADLINE;
	log_limited(&lim, NULL, LOG_WARN, "channel %u: no service header "
	    "within %s: reset", mux_stream_id(r->s),
	    fmt_duration(r->d->cfg->connect_timeout_ms).s);
	relay_reset(r, "no service header");
}

/* Give ${r}'s prelude connect_timeout to end. */
static void
relay_deadline_start(struct relay *r)
{
	struct timeval tv = ms_timeval(r->d->cfg->connect_timeout_ms);

	evtimer_assign(&r->ev, r->d->base, relay_deadline_cb, r);
	if (evtimer_add(&r->ev, &tv) == 0)
		r->flags |= R_DEADLINE;
}

/* Create a relay for ${s}. */
struct relay *
relay_new(struct daemon *d, struct mux_stream *s, int fd,
    struct channel_stats *st, relay_prelude_cb *prelude)
{
	struct relay *r;

	if (readbuf == NULL && (readbuf = evbuffer_new()) == NULL)
		goto err0;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto err0;
	r->fd = -1;
	r->rdshift = READ_MIN_SHIFT;
	r->s = s;
	r->d = d;
	r->prelude = prelude;
	r->since_ms = relay_clock_ms(r);
	d->relays++;
	mux_stream_set_arg(s, r);
	if (fd >= 0) {
		/* The caller wrote the service header: all the stream has. */
		r->flags |= R_OURS;
		r->hdr = (uint16_t)mux_stream_queued(s);
		relay_attach(r, fd, st);
	} else {
		relay_deadline_start(r);
	}
	return (r);

err0:
	if (fd >= 0)
		close(fd);
	return (NULL);
}

/* Attach pending work ${ptr} with canceller ${cancel} to ${r}. */
void
relay_set_pending(struct relay *r, void *ptr, void (*cancel)(void *))
{

	/* A dial has a deadline of its own. */
	if (ptr != NULL)
		relay_deadline_stop(r);
	r->pending = ptr;
	r->pending_cancel = cancel;
}
