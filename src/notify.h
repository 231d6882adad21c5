/*
 * notify: tell systemd (Type=notify) how the daemon is doing: READY=1,
 * RELOADING=1, STOPPING=1, a STATUS= line, and WATCHDOG=1 pings sent from
 * the event loop itself, so that a stuck loop is restarted.  Without
 * NOTIFY_SOCKET every call does nothing.
 */
#ifndef MXD_NOTIFY_H
#define MXD_NOTIFY_H

struct event_base;

/* Start watchdog pings in ${base} if systemd asked for them (WATCHDOG_USEC:
 * every half of it).  Returns 0, or -1 on failure. */
int notify_start(struct event_base *base);

/* Stop the watchdog pings. */
void notify_stop(void);

/* Send ${state} ("READY=1", "RELOADING=1", "STOPPING=1"). */
void notify_state(const char *state);

/* Send STATUS= with printf-style ${fmt}. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
