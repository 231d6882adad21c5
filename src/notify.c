/*
 * notify: see notify.h.  Uses libsystemd's sd_notify, which speaks the
 * protocol on $NOTIFY_SOCKET.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "notify.h"

static struct event *watchdog_ev;

/* watchdog_ev: the loop is alive. */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{

	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

/* Start watchdog pings in ${base} if WATCHDOG_USEC asks for them. */
int
notify_start(struct event_base *base)
{
	uint64_t usec;
	struct timeval tv;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return (0);
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	if ((watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb,
	    NULL)) == NULL || event_add(watchdog_ev, &tv))
		return (-1);
	return (0);
}

void
notify_stop(void)
{

	if (watchdog_ev != NULL)
		event_free(watchdog_ev);
	watchdog_ev = NULL;
}

void
notify_state(const char *state)
{

	sd_notify(0, state);
}

/* Send STATUS=${fmt}. */
void
notify_status(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	sd_notify(0, buf);
}
