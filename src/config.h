/*
 * config: load and check mxd's configuration file (ini format, see
 * conf/mxd.conf for every key).  Host names are kept as written; they are
 * resolved later, when used.
 */
#ifndef MXD_CONFIG_H
#define MXD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* An address; both strings are malloc'd, host has no brackets. */
struct config_addr {
	char	*host;
	char	*port;
};

/* A service: one [section] other than [daemon] and [link]. */
struct config_service {
	char	*name;
	struct config_addr accept;	/* host == NULL if not set */
	struct config_addr connect;	/* host == NULL if not set */
	int	line;			/* line of the [section] header */
	struct config_service *next;	/* in file order */
};

struct config {
	char	*path;
	enum log_level log_level;
	struct config_addr metrics;	/* host == NULL if off */
	int	link_listen;		/* 1: [link] listen, 0: connect */
	struct config_addr link_addr;
	uint64_t keepalive_ms, timeout_ms, reconnect_min_ms, reconnect_max_ms,
	    drain_timeout_ms, connect_timeout_ms;
	uint32_t window;
	uint32_t max_channels;
	struct config_service *services;
	unsigned nservices;
};

/*
 * Load ${path}.  On success returns 0 and stores a new config in *${out}.
 * On failure returns -1 and writes a one-line message "FILE:LINE: ..." (the
 * first error in the file) into ${err} (size ${errlen}).
 */
int config_load(const char *path, struct config **out, char *err,
    size_t errlen);

/* Find the service named ${name} (length ${len}, not NUL-terminated) in
 * ${c}, or NULL. */
const struct config_service *config_service_find(const struct config *c,
    const char *name, size_t len);

/* Nonzero if services ${a} and ${b} are configured identically (same name,
 * accept and connect). */
int config_service_equal(const struct config_service *a,
    const struct config_service *b);

/* Free ${c}; NULL is ok. */
void config_free(struct config *c);

/*
 * Helpers shared with the rest of the daemon.  The parsers return 0, or -1
 * with errno set to ERANGE if the number overflows and EINVAL otherwise.
 */

/* Parse "host:port" or "[ipv6]:port" ${s} into ${out} (new strings). */
int config_parse_addr(const char *s, struct config_addr *out);

/* Free ${a}'s strings and set them to NULL. */
void config_addr_free(struct config_addr *a);

/* Parse duration ${s} (integer + ms, s, m or h) into milliseconds *${ms}. */
int config_parse_duration(const char *s, uint64_t *ms);

/* Parse size ${s} (integer + optional k or m) into bytes *${bytes}. */
int config_parse_size(const char *s, uint64_t *bytes);

/* 1 if ${s} (length ${len}) is a valid service name [A-Za-z0-9._-]{1,255}. */
int config_valid_service_name(const char *s, size_t len);

#endif /* !MXD_CONFIG_H */
