/*
 * metrics: an HTTP endpoint (libevent's evhttp) for Prometheus at /metrics,
 * in the text exposition format, and /healthz: 200 while the link is up
 * or resuming (its channels are open, only stalled),
 * 503 otherwise.
 */
#ifndef MXD_METRICS_H
#define MXD_METRICS_H

struct daemon;
struct metrics;

/* Serve ${d}'s metrics on the configured [daemon] metrics address.
 * Returns NULL (logged) if it cannot bind. */
struct metrics *metrics_new(struct daemon *d);

/* Stop serving.  NULL is ok. */
void metrics_free(struct metrics *m);

#endif
