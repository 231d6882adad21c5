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

/* Log printf-style ${fmt} at ${level}. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...)	do { if (log_enabled(LOG_DEBUG))		\
	log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

#endif
