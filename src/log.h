/*
 * log: one line per event on stderr, which the journal keeps under systemd.
 */
#ifndef MXD_LOG_H
#define MXD_LOG_H

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

#define log_debug(...)	do { if (log_enabled(LOG_DEBUG))		\
	log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

#endif
