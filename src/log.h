/*
 * log: one line per event on stderr, which the journal keeps under systemd.
 */
#ifndef MXD_LOG_H
#define MXD_LOG_H

#include <stdint.h>

#include "config.h"	/* enum log_level */

/* Show messages of ${level} and above. */
void log_set_level(enum log_level level);

/* Nonzero if messages of ${level} are shown (to skip building them). */
int log_enabled(enum log_level level);

/* Send libevent's own messages here too (it would write them to stderr
 * unformatted), as "libevent: ..." lines. */
void log_libevent(void);

/* Log printf-style ${fmt} at ${level}. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Address ${host}:${port} as log lines write it: an IPv6 host in brackets
 * ([::1]:7000), so that the port cannot be read as part of it.  Use the
 * returned struct's s within the same full expression (a log call).
 */
struct log_addr {
	char	s[256 + sizeof("[]:65535")];
};
struct log_addr log_addr(const char *host, const char *port);

/* Socket address ${sa} (IPv4 or IPv6) written the same way; "?" for any
 * other family. */
struct sockaddr;
struct log_addr log_sockaddr(const struct sockaddr *sa);

/*
 * ${ms} milliseconds as the configuration writes a duration: in the largest
 * unit it is a whole number of ("1500ms", "30s", "2m", "1h").  Use the
 * returned struct's s within the same full expression, as with log_addr.
 */
struct log_duration {
	char	s[24];
};
struct log_duration fmt_duration(uint64_t ms);

/* ${s} seconds of age for a person, in a whole unit: "42s", "17m" (from 2
 * minutes), "5h" (from 2 hours), "3d" (from 2 days). */
struct log_duration fmt_age(double s);

/*
 * A rate limit for log lines of one kind that a remote party can trigger
 * as often as it likes (a refused handshake, a malformed stream, a target
 * that is down), so that the journal stays readable and the disk is not an
 * attack surface.  The first line of a kind opens a window of
 * LOG_LIMIT_MS: in it, the first ${burst} lines of each reason are
 * written (of up to LOG_LIMIT_REASONS reasons: a flood of one reason does
 * not hide another), the others only counted, and once the window is over
 * one summary says how many there were,
 *
 *	link: TLS refused ... and 4,335 more like it in the last 10 s
 *
 * or, for a limit with a ${tally} (what a line stands for), how many there
 * were in all,
 *
 *	service web: 12 channels refused by the peer in the last 10 s
 *
 * The summary is written by log_flush_limits, called every few seconds,
 * or by the next line of the kind, whichever comes first.  A limit is
 * static per call site (LOG_LIMIT), or part of an object that ends it with
 * log_limit_end.
 */
#define LOG_LIMIT_MS		10000
#define LOG_LIMIT_BURST		5
#define LOG_LIMIT_REASONS	4

struct log_limit {
	char		label[80];	/* names the kind in the summary */
	const char	*tally;		/* NULL, or what one line counts */
	unsigned	burst;		/* lines per reason and window, >= 1 */
	unsigned	passed;		/* written in this window; 0: none */
	uint64_t	dropped;	/* only counted in this window */
	uint64_t	since_ms;	/* when this window opened */
	uint32_t	reason[LOG_LIMIT_REASONS];	/* hashes of reasons */
	unsigned	lines[LOG_LIMIT_REASONS];	/* ... written each */
	unsigned	nreasons;	/* ... seen in this window */
	enum log_level	level;		/* of the lines, for the summary */
	int		listed;		/* on log_flush_limits' list */
	struct log_limit *next;
};

/* A static limit for lines of kind ${kind} ("link: TLS refused"). */
#define LOG_LIMIT(kind)	{ .label = kind, .burst = LOG_LIMIT_BURST }

/* Set ${lim} up for lines of kind ${label} that each count one ${tally},
 * ${burst} of them written per window. */
void log_limit_init(struct log_limit *lim, const char *label,
    const char *tally, unsigned burst);

/* Log printf-style ${fmt} at ${level}, within limit ${lim}; ${why} is the
 * reason the line gives, or NULL if its kind has only one. */
void log_limited(struct log_limit *lim, const char *why,
    enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write the summary of every limit whose window is over. */
void log_flush_limits(void);

/* Write ${lim}'s summary now if it has one, and forget ${lim} (its object
 * is going away). */
void log_limit_end(struct log_limit *lim);

#define log_debug(...)	do { if (log_enabled(LOG_DEBUG))		\
	log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

#endif
