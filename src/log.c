/*
 * log: see log.h.  Under systemd (JOURNAL_STREAM set) the journal adds the
 * time and reads the level from a "<N>" prefix; elsewhere each line starts
 * with a timestamp.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"

static enum log_level threshold = LOG_INFO;
static int journal = -1;	/* -1: not yet known */

void
log_set_level(enum log_level level)
{

	threshold = level;
}

int
log_enabled(enum log_level level)
{

	return (level >= threshold);
}

/* Log ${fmt} at ${level}: one write of one line. */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	static const int syslog_prio[] = { 7, 6, 4, 3 };
	char line[1024], stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level < threshold)
		return;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	if (journal) {
		n = snprintf(line, sizeof(line), "<%d>%s: ",
		    syslog_prio[level], names[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ld mxd %s: ", stamp,
		    ts.tv_nsec / 1000000, names[level]);
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

struct log_addr
log_addr(const char *host, const char *port)
{
	struct log_addr a;

	snprintf(a.s, sizeof(a.s), strchr(host, ':') != NULL ? "[%s]:%s" :
	    "%s:%s", host, port);
	return (a);
}

/* libevent: message ${msg} of ${severity} (EVENT_LOG_*). */
static void
libevent_log_cb(int severity, const char *msg)
{
	enum log_level level = severity == EVENT_LOG_DEBUG ? LOG_DEBUG :
	    severity == EVENT_LOG_MSG ? LOG_INFO :
	    severity == EVENT_LOG_WARN ? LOG_WARN : LOG_ERROR;

	log_msg(level, "libevent: %s", msg);
}

void
log_libevent(void)
{

	event_set_log_callback(libevent_log_cb);
}
