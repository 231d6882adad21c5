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

/* [service] proxy_protocol: the PROXY protocol header sent to targets. */
enum proxy_version { PROXY_OFF, PROXY_V1, PROXY_V2 };

/* [link] tls_min_version. */
enum tls_version { TLS_V12, TLS_V13 };

/* The largest [link] max_channels. */
#define CONFIG_MAX_CHANNELS	1048576

/* The SHA-256 length, for [link] tls_pin. */
#define CONFIG_PIN_LEN	32

/* The size of a Unix socket's path (sun_path), for [daemon] control. */
#define CONFIG_CONTROL_MAX	108

/* Room for the line of each key (config_key_line). */
#define CONFIG_KEYS_MAX	32

/* The longest duration any key takes, 24 h: in microseconds (session.c)
 * it is far from wrapping 64 bits, and a struct timeval holds it. */
#define CONFIG_DURATION_MAX_MS	(24 * 3600000ULL)

/* An address; both strings are malloc'd, host has no brackets. */
struct config_addr {
	char	*host;
	char	*port;
	int	line;			/* where the file sets it; 0 if not */
};

/* A service: one [section] other than [daemon] and [link]. */
struct config_service {
	char	*name;
	struct config_addr accept;	/* host == NULL if not set */
	struct config_addr connect;	/* host == NULL if not set */
	enum proxy_version proxy_protocol;	/* header sent to the target */
	uint32_t rate_limit;		/* new connections/s; 0: no limit */
	int	line;			/* line of the [section] header */
	struct config_service *next;	/* in file order */
};

/* [link] tls_pin: the SHA-256 of the peer's public key (its DER
 * SubjectPublicKeyInfo). */
struct config_pin {
	int	set;
	uint8_t	sha256[CONFIG_PIN_LEN];
};

struct config {
	char	*path;
	enum log_level log_level;
	struct config_addr metrics;	/* host == NULL if off */
	char	*user;			/* run as this user; NULL: as started */
	char	*control;		/* socket path, "off"; NULL: default */
	int	link_listen;		/* 1: [link] listen, 0: connect */
	struct config_addr link_addr;
	uint64_t keepalive_ms, timeout_ms, reconnect_min_ms, reconnect_max_ms,
	    drain_timeout_ms, connect_timeout_ms, resume_timeout_ms;
	uint32_t window;		/* each channel's first receive window */
	uint32_t window_max;		/* ... and how far it may grow */
	uint32_t max_channels;
	uint32_t max_pending_connects;	/* peer's channels awaiting targets */
	uint32_t max_buffered;		/* bytes held for the link's channels */
	int	tls;			/* 1: [link] tls = on */
	enum tls_version tls_min_version;
	char	*tls_cert, *tls_key, *tls_ca;	/* paths; NULL if not set */
	char	*tls_peer_name;		/* NULL: any name the CA signed */
	struct config_pin tls_pin;
	struct config_service *services;
	unsigned nservices;
	int	key_line[CONFIG_KEYS_MAX];	/* see config_key_line */
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

/* Nonzero if services ${a} and ${b} are configured identically (every key
 * the same). */
int config_service_equal(const struct config_service *a,
    const struct config_service *b);

/*
 * The line of ${c}'s file that sets [daemon] or [link] key ${key}, or 0 if
 * none does.  ${key} may also be a message that begins with the key's name
 * and a space or a colon, such as tls_ctx_new's "tls_key PATH: why": so
 * that the message can be given as "FILE:LINE: [link] tls_key PATH: why".
 */
int config_key_line(const struct config *c, const char *key);

/*
 * Resolve the host names of ${c}'s addresses (literal addresses need no
 * lookup) as they will be when used; for each that does not resolve, call
 * ${warn}(${arg}, message), the message one line "FILE:LINE: [section]
 * key: cannot resolve ...".  Returns how many did not.  For mxd -t only:
 * it may wait for DNS, so config_load never does it.
 */
unsigned config_check_names(const struct config *c,
    void (*warn)(void *, const char *), void *arg);

/*
 * The path of the control socket (mxd status) of ${c} in ${buf} of size
 * ${len} (CONFIG_CONTROL_MAX will do): [daemon] control, or else
 * /run/mxd/STEM/control.sock for a file STEM.conf.  Returns 0, or -1 if
 * control = off (or the default would not fit a socket address).
 */
int config_control_path(const struct config *c, char *buf, size_t len);

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
