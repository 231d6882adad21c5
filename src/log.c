/*
 * log: see log.h.  Under systemd (JOURNAL_STREAM set) the journal adds the
 * time and reads the level from a "<N>" prefix; elsewhere each line starts
 * with a timestamp.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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

/* Log ${fmt} with ${ap} at ${level}: one write of one line. */
static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	static const int syslog_prio[] = { 7, 6, 4, 3 };
	char line[1024], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

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
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

/* Log ${fmt} at ${level}. */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < threshold)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Milliseconds on the monotonic clock. */
static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* Write ${n} into ${buf} (size ${len}) with thousands separators: 4,335. */
static void
fmt_count(uint64_t n, char *buf, size_t len)
{
	char digits[24];
	size_t nd, i, o = 0;

	nd = (size_t)snprintf(digits, sizeof(digits), "%ju", (uintmax_t)n);
	for (i = 0; i < nd && o + 2 < len; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/* Limits on log_flush_limits' list. */
static struct log_limit *limits;

/* Close the window of ${lim}, writing its summary if lines were only
 * counted. */
static void
limit_close(struct log_limit *lim)
{
	char n[32];

	if (lim->dropped > 0 && lim->level >= threshold) {
		if (lim->tally != NULL) {
			fmt_count(lim->passed + lim->dropped, n, sizeof(n));
			log_msg(lim->level, "%s: %s %s in the last %u s",
			    lim->label, n, lim->tally, LOG_LIMIT_MS / 1000);
		} else {
			fmt_count(lim->dropped, n, sizeof(n));
			log_msg(lim->level, "%s ... and %s more like it in "
			    "the last %u s", lim->label, n,
			    LOG_LIMIT_MS / 1000);
		}
	}
	lim->passed = 0;
	lim->dropped = 0;
	lim->nreasons = 0;
}

/*
 * The lines ${lim} wrote in this window for reason ${why} (NULL: the one
 * reason), or NULL if LOG_LIMIT_REASONS others have it full.  A reason is
 * known by a hash: two that collide share their lines.
 */
static unsigned *
limit_lines(struct log_limit *lim, const char *why)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	unsigned i;

	for (; why != NULL && *why != '\0'; why++)
		h = (h ^ (unsigned char)*why) * 16777619u;
	for (i = 0; i < lim->nreasons; i++)
		if (lim->reason[i] == h)
			return (&lim->lines[i]);
	if (lim->nreasons == LOG_LIMIT_REASONS)
		return (NULL);
	lim->reason[i] = h;
	lim->lines[i] = 0;
	lim->nreasons++;
	return (&lim->lines[i]);
}

void
log_limit_init(struct log_limit *lim, const char *label, const char *tally,
    unsigned burst)
{

	memset(lim, 0, sizeof(*lim));
	snprintf(lim->label, sizeof(lim->label), "%s", label);
	lim->tally = tally;
	lim->burst = burst > 0 ? burst : 1;
}

/* Log ${fmt} at ${level} within ${lim}, for reason ${why}. */
void
log_limited(struct log_limit *lim, const char *why, enum log_level level,
    const char *fmt, ...)
{
	uint64_t now = mono_ms();
	unsigned *lines;
	va_list ap;

	if (level < threshold)
		return;
	if (!lim->listed) {
		lim->listed = 1;
		lim->next = limits;
		limits = lim;
	}
	if (lim->passed > 0 && now - lim->since_ms >= LOG_LIMIT_MS)
		limit_close(lim);
	if (lim->passed == 0)
		lim->since_ms = now;
	lim->level = level;
	if ((lines = limit_lines(lim, why)) == NULL || *lines >= lim->burst) {
		lim->dropped++;
		return;
	}
	(*lines)++;
	lim->passed++;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Write the summaries whose window is over. */
void
log_flush_limits(void)
{
	uint64_t now = mono_ms();
	struct log_limit *lim;

	for (lim = limits; lim != NULL; lim = lim->next)
		if (lim->passed > 0 && now - lim->since_ms >= LOG_LIMIT_MS)
			limit_close(lim);
}

/* Summarise ${lim} and take it off the list. */
void
log_limit_end(struct log_limit *lim)
{
	struct log_limit **pp;

	if (!lim->listed)
		return;
	limit_close(lim);
	for (pp = &limits; *pp != lim; pp = &(*pp)->next)
		continue;
	*pp = lim->next;
	lim->listed = 0;
}

/* ${ms} as the configuration would write it. */
struct log_duration
fmt_duration(uint64_t ms)
{
	static const struct {
		const char	*suffix;
		uint64_t	scale;
	} units[] = { { "h", 3600000 }, { "m", 60000 }, { "s", 1000 } };
	struct log_duration d;
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms > 0 && ms % units[i].scale == 0)
			break;
	if (i < sizeof(units) / sizeof(units[0]))
		snprintf(d.s, sizeof(d.s), "%ju%s",
		    (uintmax_t)(ms / units[i].scale), units[i].suffix);
	else
		snprintf(d.s, sizeof(d.s), "%jums", (uintmax_t)ms);
	return (d);
}

struct log_duration
fmt_age(double s)
{
	struct log_duration d;
	uint64_t n = s > 0 ? (uint64_t)s : 0;

	if (n < 120)
		snprintf(d.s, sizeof(d.s), "%jus", (uintmax_t)n);
	else if (n < 7200)
		snprintf(d.s, sizeof(d.s), "%jum", (uintmax_t)(n / 60));
	else if (n < 172800)
		snprintf(d.s, sizeof(d.s), "%juh", (uintmax_t)(n / 3600));
	else
		snprintf(d.s, sizeof(d.s), "%jud", (uintmax_t)(n / 86400));
	return (d);
}

struct log_addr
log_addr(const char *host, const char *port)
{
	struct log_addr a;

	snprintf(a.s, sizeof(a.s), strchr(host, ':') != NULL ? "[%s]:%s" :
	    "%s:%s", host, port);
	return (a);
}

struct log_addr
log_sockaddr(const struct sockaddr *sa)
{
	const struct sockaddr_in *sin = (const void *)sa;
	const struct sockaddr_in6 *sin6 = (const void *)sa;
	char host[INET6_ADDRSTRLEN], port[8];

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(port, sizeof(port), "%u", ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(port, sizeof(port), "%u", ntohs(sin6->sin6_port));
	} else {
		return (log_addr("?", "?"));
	}
	return (log_addr(host, port));
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
