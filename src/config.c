/*
 * config: see config.h.
 *
 * inih does the ini syntax (comments, "key = value", inline "; comments").
 * We hand it the lines through our own reader (ini_parse_stream) because
 * Debian's libinih is built without INI_HANDLER_LINENO, so the reader is
 * what knows the current line number.  The reader also notes each [section]
 * header itself: inih never calls the handler for a section without keys,
 * and it truncates section names to 50 bytes while a service name may have
 * 255.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"

/* Longest line accepted, without its line ending ("\r\n"). */
#define LINE_MAX_LEN	1021

/* The kinds of section. */
enum section { SEC_NONE, SEC_DAEMON, SEC_LINK, SEC_SERVICE };

/* A number suffix and what it multiplies by. */
struct unit {
	const char	*suffix;
	uint64_t	scale;
};

static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	{ NULL, 0 }
};
static const struct unit size_units[] = {
	{ "", 1 }, { "k", 1024 }, { "m", 1048576 }, { NULL, 0 }
};
static const struct unit plain_units[] = { { "", 1 }, { NULL, 0 } };

static int parse_uint(const char *, uint64_t *);

/* A kind of numeric value: its parser, name and syntax for messages. */
struct number {
	int		(*parse)(const char *, uint64_t *);
	const char	*what;
	const char	*hint;
	int		wide;	/* stored as uint64_t, else as uint32_t */
};

static const struct number duration = {
	config_parse_duration, "duration", "use ms, s, m or h", 1
};
static const struct number size = {
	config_parse_size, "size", "use a number with optional k or m", 0
};
static const struct number integer = {
	parse_uint, "number", "use decimal digits", 0
};

/* A keyword value: its words (NULL-terminated; the value stored is the
 * word's index), and for messages what it is and the words to use. */
struct words {
	const char	*const *names;
	const char	*what;
	const char	*hint;
};

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warn",
	[LOG_ERROR] = "error", NULL
};
static const char *const on_off_names[] = { "off", "on", NULL };
static const char *const proxy_names[] = {
	[PROXY_OFF] = "off", [PROXY_V1] = "v1", [PROXY_V2] = "v2", NULL
};
static const char *const tls_version_names[] = {
	[TLS_V12] = "1.2", [TLS_V13] = "1.3", NULL
};

static const struct words level = {
	level_names, "log level", "debug, info, warn or error"
};
static const struct words on_off = { on_off_names, "value", "on or off" };
static const struct words proxy = {
	proxy_names, "PROXY protocol version", "off, v1 or v2"
};
static const struct words tls_version = {
	tls_version_names, "TLS version", "1.2 or 1.3"
};

/* The keys; an index into keys[]. */
enum key_id {
	K_LOG_LEVEL, K_METRICS, K_USER, K_CONTROL,
	K_LINK_CONNECT, K_LINK_LISTEN, K_KEEPALIVE, K_TIMEOUT, K_RECONNECT_MIN,
	K_RECONNECT_MAX, K_WINDOW, K_WINDOW_MAX, K_MAX_CHANNELS, K_DRAIN_TIMEOUT,
	K_CONNECT_TIMEOUT, K_MAX_PENDING_CONNECTS, K_MAX_BUFFERED,
	K_RESUME_TIMEOUT,
	K_TLS, K_TLS_CERT, K_TLS_KEY, K_TLS_CA, K_TLS_PEER_NAME, K_TLS_PIN,
	K_TLS_MIN_VERSION,
	K_ACCEPT, K_CONNECT, K_PROXY_PROTOCOL, K_RATE_LIMIT,
	NKEYS
};

/* How a key's value is parsed. */
enum type { T_WORD, T_ADDR, T_LINK_ADDR, T_NUMBER, T_STRING, T_PIN };

#define CFG(f)	offsetof(struct config, f)
#define SVC(f)	offsetof(struct config_service, f)
#define NUMBER(n, min, max, range)					\
	T_NUMBER, &(n), (min), (max), (range), NULL
/* A duration of ${min} ms (0 or 1) to 24 h. */
#define DURATION(min)							\
	NUMBER(duration, (min), CONFIG_DURATION_MAX_MS, #min "ms..24h")
#define WORD(w)		T_WORD, NULL, 0, 0, NULL, &(w)
#define PLAIN(t)	(t), NULL, 0, 0, NULL, NULL

static const struct key {
	enum section	sec;
	const char	*name;
	size_t		off;	/* in config; config_service for SEC_SERVICE */
	enum type	type;
	const struct number *num;	/* T_NUMBER: syntax and range */
	uint64_t	min, max;
	const char	*range;		/* min..max, for messages */
	const struct words *words;	/* T_WORD */
} keys[NKEYS] = {
	[K_LOG_LEVEL] = { SEC_DAEMON, "log_level", CFG(log_level),
	    WORD(level) },
	[K_METRICS] = { SEC_DAEMON, "metrics", CFG(metrics), PLAIN(T_ADDR) },
	[K_USER] = { SEC_DAEMON, "user", CFG(user), PLAIN(T_STRING) },
	[K_CONTROL] = { SEC_DAEMON, "control", CFG(control), PLAIN(T_STRING) },
	[K_LINK_CONNECT] = { SEC_LINK, "connect", CFG(link_addr),
	    PLAIN(T_LINK_ADDR) },
	[K_LINK_LISTEN] = { SEC_LINK, "listen", CFG(link_addr),
	    PLAIN(T_LINK_ADDR) },
	[K_KEEPALIVE] = { SEC_LINK, "keepalive", CFG(keepalive_ms),
	    DURATION(1) },
	[K_TIMEOUT] = { SEC_LINK, "timeout", CFG(timeout_ms),
	    DURATION(1) },
	[K_RECONNECT_MIN] = { SEC_LINK, "reconnect_min", CFG(reconnect_min_ms),
	    DURATION(1) },
	[K_RECONNECT_MAX] = { SEC_LINK, "reconnect_max", CFG(reconnect_max_ms),
	    DURATION(1) },
	[K_WINDOW] = { SEC_LINK, "window", CFG(window),
	    NUMBER(size, 262144, 16777216, "256k..16m") },
	[K_WINDOW_MAX] = { SEC_LINK, "window_max", CFG(window_max),
	    NUMBER(size, 262144, 16777216, "256k..16m") },
	[K_MAX_CHANNELS] = { SEC_LINK, "max_channels", CFG(max_channels),
	    NUMBER(integer, 1, CONFIG_MAX_CHANNELS, "1..1048576") },
	[K_DRAIN_TIMEOUT] = { SEC_LINK, "drain_timeout", CFG(drain_timeout_ms),
	    DURATION(0) },
	[K_CONNECT_TIMEOUT] = { SEC_LINK, "connect_timeout",
	    CFG(connect_timeout_ms), DURATION(1) },
	[K_MAX_PENDING_CONNECTS] = { SEC_LINK, "max_pending_connects",
	    CFG(max_pending_connects), NUMBER(integer, 1, 1048576,
	    "1..1048576") },
	[K_MAX_BUFFERED] = { SEC_LINK, "max_buffered", CFG(max_buffered),
	    NUMBER(size, 65536, 4293918720u, "64k..4095m") },
	[K_RESUME_TIMEOUT] = { SEC_LINK, "resume_timeout",
	    CFG(resume_timeout_ms), DURATION(0) },
	[K_TLS] = { SEC_LINK, "tls", CFG(tls), WORD(on_off) },
	[K_TLS_CERT] = { SEC_LINK, "tls_cert", CFG(tls_cert),
	    PLAIN(T_STRING) },
	[K_TLS_KEY] = { SEC_LINK, "tls_key", CFG(tls_key), PLAIN(T_STRING) },
	[K_TLS_CA] = { SEC_LINK, "tls_ca", CFG(tls_ca), PLAIN(T_STRING) },
	[K_TLS_PEER_NAME] = { SEC_LINK, "tls_peer_name", CFG(tls_peer_name),
	    PLAIN(T_STRING) },
	[K_TLS_PIN] = { SEC_LINK, "tls_pin", CFG(tls_pin), PLAIN(T_PIN) },
	[K_TLS_MIN_VERSION] = { SEC_LINK, "tls_min_version",
	    CFG(tls_min_version), WORD(tls_version) },
	[K_ACCEPT] = { SEC_SERVICE, "accept", SVC(accept), PLAIN(T_ADDR) },
	[K_CONNECT] = { SEC_SERVICE, "connect", SVC(connect), PLAIN(T_ADDR) },
	[K_PROXY_PROTOCOL] = { SEC_SERVICE, "proxy_protocol",
	    SVC(proxy_protocol), WORD(proxy) },
	[K_RATE_LIMIT] = { SEC_SERVICE, "rate_limit", SVC(rate_limit),
	    NUMBER(integer, 1, 1000000, "1..1000000") },
};

/* The [link] keys that only mean something with tls = on; the first three
 * are required then (tls_ca only without tls_pin: see check_tls). */
static const enum key_id tls_keys[] = {
	K_TLS_CERT, K_TLS_KEY, K_TLS_CA, K_TLS_PEER_NAME, K_TLS_PIN,
	K_TLS_MIN_VERSION
};
#define TLS_REQUIRED	3

_Static_assert(NKEYS <= CONFIG_KEYS_MAX, "config.h: raise CONFIG_KEYS_MAX");

/* State while loading one file. */
struct parser {
	const char	*path;
	FILE		*f;
	struct config	*c;
	int		lineno;		/* of the line last read */
	char		*section;	/* current section, NULL before any */
	enum section	sec;
	int		section_line;
	struct config_service *svc;	/* current section's, if SEC_SERVICE */
	struct config_service **tail;	/* where the next service goes */
	int		keyline[NKEYS];	/* line of each key in this section */
	int		daemon_line, link_line;	/* 0 until seen */
	int		read_errno;
	int		failed;
	int		fail_line;	/* line of the error recorded */
	char		*err;
	size_t		errlen;
};

/*
 * Record in ${p} the error ${fmt} about line ${line} (0: the whole file),
 * section ${section} (NULL: none) and key ${key} (NULL: the section itself),
 * unless an error is already recorded.  Returns -1.
 */
static int
fail(struct parser *p, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	va_list ap;
	int len;

	if (p->failed)
		return (-1);
	p->failed = 1;
	p->fail_line = line;
	if (line == 0)
		len = snprintf(p->err, p->errlen, "%s: ", p->path);
	else if (section == NULL)
		len = snprintf(p->err, p->errlen, "%s:%d: ", p->path, line);
	else if (key == NULL)
		len = snprintf(p->err, p->errlen, "%s:%d: [%s]: ", p->path,
		    line, section);
	else
		len = snprintf(p->err, p->errlen, "%s:%d: [%s] %s: ", p->path,
		    line, section, key);
	if (len < 0 || (size_t)len >= p->errlen)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(p->err + len, p->errlen - (size_t)len, fmt, ap);
	va_end(ap);
	return (-1);
}

/*
 * Parse ${s}: decimal digits followed by exactly one of the suffixes in
 * ${units}.  Store the number times that suffix's scale in *${out}.
 */
static int
parse_scaled(const char *s, const struct unit *units, uint64_t *out)
{
	const struct unit *u;
	const char *p;
	uint64_t n = 0, d;
	int overflow = 0;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		d = (uint64_t)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			overflow = 1;
		else
			n = n * 10 + d;
	}
	if (p == s)
		goto einval;
	for (u = units; u->suffix != NULL; u++) {
		if (strcmp(p, u->suffix) == 0)
			break;
	}
	if (u->suffix == NULL)
		goto einval;
	if (overflow || n > UINT64_MAX / u->scale) {
		errno = ERANGE;
		return (-1);
	}
	*out = n * u->scale;
	return (0);

einval:
	errno = EINVAL;
	return (-1);
}

/* Parse plain decimal ${s} into *${n}. */
static int
parse_uint(const char *s, uint64_t *n)
{

	return (parse_scaled(s, plain_units, n));
}

/* Parse duration ${s} into milliseconds *${ms}. */
int
config_parse_duration(const char *s, uint64_t *ms)
{

	/* Zero needs no unit ("resume_timeout = 0": off). */
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return (0);
	}
	return (parse_scaled(s, duration_units, ms));
}

/* Parse size ${s} into bytes *${bytes}. */
int
config_parse_size(const char *s, uint64_t *bytes)
{

	return (parse_scaled(s, size_units, bytes));
}

/* 1 if ${host} (length ${len}) is a non-empty run of printable characters
 * without brackets, and also without colons unless ${bracketed}. */
static int
valid_host(const char *host, size_t len, int bracketed)
{
	size_t i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++) {
		if (host[i] <= ' ' || host[i] == 0x7f || host[i] == '[' ||
		    host[i] == ']' || (host[i] == ':' && !bracketed))
			return (0);
	}
	return (1);
}

/*
 * The address family of host ${host} as config_parse_addr stores it:
 * AF_INET for an IPv4 address (or an IPv4-mapped IPv6 one), AF_INET6 for
 * an IPv6 address (with or without a %zone), whose bytes go to ${ip}
 * (16 bytes; 4 for AF_INET); AF_UNSPEC for a name; -1 for a host that is
 * no name (digits and dots, or colons) but no valid address either.
 */
static int
host_family(const char *host, uint8_t ip[16])
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	char buf[INET6_ADDRSTRLEN];
	const char *zone;
	size_t len;

	if (strchr(host, ':') == NULL) {
		if (host[strspn(host, "0123456789.")] != '\0')
			return (AF_UNSPEC);
		return (inet_pton(AF_INET, host, ip) == 1 ? AF_INET : -1);
	}
	zone = strchr(host, '%');
	len = (zone != NULL) ? (size_t)(zone - host) : strlen(host);
	if (len >= sizeof(buf) || (zone != NULL && zone[1] == '\0'))
		return (-1);
	memcpy(buf, host, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, ip) != 1)
		return (-1);
	if (memcmp(ip, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(ip, ip + 12, 4);
		return (AF_INET);
	}
	return (AF_INET6);
}

/* What is wrong with an address, for messages. */
static const char hint_syntax[] = "use host:port or [ipv6]:port";
static const char hint_v4[] = "not a valid IPv4 address";
static const char hint_v6[] = "not a valid IPv6 address";

/*
 * Parse "host:port" or "[ipv6]:port" ${s} into ${out}; on EINVAL, point
 * *${hint} at what is wrong.  A host of digits and dots must be an IPv4
 * address, one in brackets an IPv6 address.
 */
static int
parse_addr(const char *s, struct config_addr *out, const char **hint)
{
	const char *host, *end, *port;
	char buf[sizeof("65535")];
	char *h, *p;
	size_t hostlen;
	uint64_t n;
	uint8_t ip[16];
	int bracketed = (s[0] == '[');

	*hint = hint_syntax;
	if (bracketed) {
		host = s + 1;
		if ((end = strchr(host, ']')) == NULL || end[1] != ':')
			goto einval;
		port = end + 2;
	} else {
		host = s;
		if ((end = strrchr(s, ':')) == NULL)
			goto einval;
		port = end + 1;
	}
	hostlen = (size_t)(end - host);
	if (!valid_host(host, hostlen, bracketed) || parse_uint(port, &n) ||
	    n < 1 || n > 65535)
		goto einval;
	snprintf(buf, sizeof(buf), "%u", (unsigned)n);

	if ((h = strndup(host, hostlen)) == NULL)
		return (-1);
	if ((bracketed && strchr(h, ':') == NULL) || host_family(h, ip) < 0) {
		*hint = bracketed ? hint_v6 : hint_v4;
		free(h);
		goto einval;
	}
	if ((p = strdup(buf)) == NULL) {
		free(h);
		return (-1);
	}
	out->host = h;
	out->port = p;
	out->line = 0;
	return (0);

einval:
	errno = EINVAL;
	return (-1);
}

/* Parse "host:port" or "[ipv6]:port" ${s} into ${out}. */
int
config_parse_addr(const char *s, struct config_addr *out)
{
	const char *hint;

	return (parse_addr(s, out, &hint));
}

/* Free ${a}'s strings and set them to NULL. */
void
config_addr_free(struct config_addr *a)
{

	free(a->host);
	free(a->port);
	a->host = a->port = NULL;
}

/* 1 if ${c} may appear in a service name. */
static int
service_char(char c)
{

	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
}

/* 1 if ${s} (length ${len}) is a valid service name. */
int
config_valid_service_name(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > 255)
		return (0);
	for (i = 0; i < len; i++) {
		if (!service_char(s[i]))
			return (0);
	}
	return (1);
}

/*
 * The service named ${name} (length ${len}) in ${c}, or NULL.  A linear
 * scan: configs have few services, and a channel open is far costlier.
 */
const struct config_service *
config_service_find(const struct config *c, const char *name, size_t len)
{
	const struct config_service *s;

	for (s = c->services; s != NULL; s = s->next) {
		if (strlen(s->name) == len && memcmp(s->name, name, len) == 0)
			return (s);
	}
	return (NULL);
}

/* Nonzero if addresses ${a} and ${b} are equal (or both unset). */
static int
addr_equal(const struct config_addr *a, const struct config_addr *b)
{

	if (a->host == NULL || b->host == NULL)
		return (a->host == b->host);
	return (strcmp(a->host, b->host) == 0 && strcmp(a->port, b->port) == 0);
}

/* Nonzero if services ${a} and ${b} are configured identically. */
int
config_service_equal(const struct config_service *a,
    const struct config_service *b)
{

	return (strcmp(a->name, b->name) == 0 &&
	    addr_equal(&a->accept, &b->accept) &&
	    addr_equal(&a->connect, &b->connect) &&
	    a->proxy_protocol == b->proxy_protocol &&
	    a->rate_limit == b->rate_limit);
}

/* The line that sets the key ${key} names (or begins with) in ${c}. */
int
config_key_line(const struct config *c, const char *key)
{
	size_t len = strcspn(key, " :");
	enum key_id id;

	for (id = 0; id < NKEYS; id++) {
		if (keys[id].sec != SEC_SERVICE &&
		    strlen(keys[id].name) == len &&
		    memcmp(keys[id].name, key, len) == 0)
			return (c->key_line[id]);
	}
	return (0);
}

/* Free ${c}; NULL is ok. */
void
config_free(struct config *c)
{
	struct config_service *s;

	if (c == NULL)
		return;
	while ((s = c->services) != NULL) {
		c->services = s->next;
		free(s->name);
		config_addr_free(&s->accept);
		config_addr_free(&s->connect);
		free(s);
	}
	config_addr_free(&c->metrics);
	config_addr_free(&c->link_addr);
	free(c->user);
	free(c->control);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c->tls_peer_name);
	free(c->path);
	free(c);
}

/* A new config for ${path} holding the defaults, or NULL. */
static struct config *
config_new(const char *path)
{
	struct config *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	if ((c->path = strdup(path)) == NULL) {
		free(c);
		return (NULL);
	}
	c->log_level = LOG_INFO;
	c->keepalive_ms = 30000;
	c->timeout_ms = 90000;
	c->reconnect_min_ms = 250;
	c->reconnect_max_ms = 2000;
	c->window = 262144;
	c->window_max = 16777216;
	c->max_channels = 65536;
	c->max_pending_connects = 4096;
	c->max_buffered = 256 * 1048576;
	c->tls_min_version = TLS_V13;
	c->drain_timeout_ms = 30000;
	c->connect_timeout_ms = 10000;
	c->resume_timeout_ms = 30000;
	return (c);
}

/*
 * Unless ${ok}, fail on [link] key ${hi} if it is set, else on ${lo}: ${lo}
 * must be less than ${hi} (or equal, unless ${strict}).
 */
static int
check_order(struct parser *p, int ok, enum key_id lo, enum key_id hi,
    int strict)
{

	if (ok)
		return (0);
	if (p->keyline[hi] != 0)
		return (fail(p, p->keyline[hi], "link", keys[hi].name,
		    "must be %s %s", strict ? ">" : ">=", keys[lo].name));
	return (fail(p, p->keyline[lo], "link", keys[lo].name, "must be %s %s",
	    strict ? "<" : "<=", keys[hi].name));
}

/*
 * With tls = on in the [link] section of ${p}, the certificate and key are
 * required, and a CA or a pin to trust the peer by (tls_ca, tls_pin or
 * both: a pin alone is trust like an SSH host key's); with it off, no other
 * tls_ key may be set (a certificate configured on a plain link is a
 * mistake, not a choice).
 */
static int
check_tls(struct parser *p)
{
	enum key_id k;
	size_t i;

	for (i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
		k = tls_keys[i];
		if (p->c->tls && i < TLS_REQUIRED && p->keyline[k] == 0 &&
		    (k != K_TLS_CA || p->keyline[K_TLS_PIN] == 0))
			return (fail(p, p->keyline[K_TLS], "link", "tls",
			    "needs %s", k == K_TLS_CA ? "tls_ca or tls_pin" :
			    keys[k].name));
		if (!p->c->tls && p->keyline[k] != 0)
			return (fail(p, p->keyline[k], "link", keys[k].name,
			    "needs tls = on"));
	}
	return (0);
}

/* Unless ${ok}, fail on service key ${k} of ${p}: it needs ${other}. */
static int
check_needs(struct parser *p, int ok, enum key_id k, const char *other)
{

	if (ok || p->keyline[k] == 0)
		return (0);
	return (fail(p, p->keyline[k], p->section, keys[k].name, "needs %s",
	    other));
}

/* Check the section of ${p} that has just ended. */
static int
section_end(struct parser *p)
{
	struct config *c = p->c;

	switch (p->sec) {
	case SEC_LINK:
		if (c->link_addr.host == NULL)
			return (fail(p, p->section_line, p->section, NULL,
			    "needs connect or listen"));
		if (check_order(p, c->reconnect_min_ms <= c->reconnect_max_ms,
		    K_RECONNECT_MIN, K_RECONNECT_MAX, 0))
			return (-1);
		if (check_order(p, c->keepalive_ms < c->timeout_ms,
		    K_KEEPALIVE, K_TIMEOUT, 1))
			return (-1);
		if (check_order(p, c->window <= c->window_max, K_WINDOW,
		    K_WINDOW_MAX, 0))
			return (-1);
		return (check_tls(p));
	case SEC_SERVICE:
		if (p->svc->accept.host == NULL && p->svc->connect.host == NULL)
			return (fail(p, p->section_line, p->section, NULL,
			    "needs accept or connect"));
		if (check_needs(p, p->svc->connect.host != NULL ||
		    p->svc->proxy_protocol == PROXY_OFF, K_PROXY_PROTOCOL,
		    "connect"))
			return (-1);
		return (check_needs(p, p->svc->accept.host != NULL,
		    K_RATE_LIMIT, "accept"));
	default:
		return (0);
	}
}

/* Note in *${first} that the current section of ${p} starts on this line,
 * unless a section of that name came before. */
static int
section_once(struct parser *p, int *first)
{

	if (*first != 0)
		return (fail(p, p->lineno, p->section, NULL,
		    "duplicate section (first on line %d)", *first));
	*first = p->lineno;
	return (0);
}

/* Add the current section of ${p} as a new service. */
static int
service_begin(struct parser *p)
{
	const struct config_service *prev;
	struct config_service *s;
	size_t len = strlen(p->section);

	if (!config_valid_service_name(p->section, len))
		return (fail(p, p->lineno, p->section, NULL,
		    "bad service name (use 1 to 255 of A-Z a-z 0-9 . _ -)"));
	if ((prev = config_service_find(p->c, p->section, len)) != NULL)
		return (fail(p, p->lineno, p->section, NULL,
		    "duplicate section (first on line %d)", prev->line));
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto enomem;
	if ((s->name = strdup(p->section)) == NULL) {
		free(s);
		goto enomem;
	}
	s->line = p->lineno;
	*p->tail = s;
	p->tail = &s->next;
	p->c->nservices++;
	p->svc = s;
	return (0);

enomem:
	return (fail(p, 0, NULL, NULL, "out of memory"));
}

/* End the current section of ${p} and start section ${name} (length
 * ${len}) on the current line. */
static int
section_begin(struct parser *p, const char *name, size_t len)
{

	if (section_end(p))
		return (-1);
	free(p->section);
	if ((p->section = strndup(name, len)) == NULL)
		return (fail(p, 0, NULL, NULL, "out of memory"));
	p->section_line = p->lineno;
	p->svc = NULL;
	memset(p->keyline, 0, sizeof(p->keyline));
	if (strcmp(p->section, "daemon") == 0) {
		p->sec = SEC_DAEMON;
		return (section_once(p, &p->daemon_line));
	}
	if (strcmp(p->section, "link") == 0) {
		p->sec = SEC_LINK;
		return (section_once(p, &p->link_line));
	}
	p->sec = SEC_SERVICE;
	return (service_begin(p));
}

/*
 * If ${line} of ${p} is a [section] header, start that section.  A line
 * with '[' but no ']' is left to inih, which reports it.
 */
static int
section_header(struct parser *p, const char *line)
{
	const char *end, *rest;

	if (line[0] != '[' || (end = strchr(line, ']')) == NULL)
		return (0);
	rest = end + 1 + strspn(end + 1, " \t\r\n\v\f");
	if (*rest != '\0' && *rest != ';')
		return (fail(p, p->lineno, NULL, NULL, "syntax error"));
	return (section_begin(p, line + 1, (size_t)(end - line) - 1));
}

/*
 * Read from ${f} into ${buf} (size ${size}, at least 2) up to and including
 * the next newline, at most ${size} - 1 bytes, and NUL-terminate them.
 * Returns how many bytes were read (0 at the end of the file): unlike
 * fgets, this tells a NUL byte in the line from its end.
 */
static size_t
get_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int c;

	while (n < size - 1 && (c = getc(f)) != EOF) {
		buf[n++] = (char)c;
		if (c == '\n')
			break;
	}
	buf[n] = '\0';
	return (n);
}

/*
 * ini_reader: read the next line of ${cookie} (a parser) into ${buf} (size
 * ${size}).  Leading white space is removed, which turns off inih's
 * continuation lines (so keys may be indented); [section] headers are noted.
 * Returns NULL at the end of the file or after an error.
 */
static char *
read_line(char *buf, int size, void *cookie)
{
	struct parser *p = cookie;
	const char *nul;
	size_t len, skip;

	if (p->failed)
		return (NULL);
	len = get_line(p->f, buf, (size_t)size);
	if (ferror(p->f)) {
		p->read_errno = (errno != 0) ? errno : EIO;
		return (NULL);
	}
	if (len == 0)
		return (NULL);
	p->lineno++;
	/* inih would take the NUL for the line's end and drop the rest. */
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		fail(p, p->lineno, NULL, NULL, "NUL byte at column %zu",
		    (size_t)(nul - buf) + 1);
		return (NULL);
	}
	if (strcspn(buf, "\r\n") > (size_t)size - 3 ||
	    (len == (size_t)size - 1 && buf[len - 1] != '\n' &&
	    getc(p->f) != EOF)) {
		fail(p, p->lineno, NULL, NULL,
		    "line too long (max %d characters)", size - 3);
		return (NULL);
	}
	skip = (p->lineno == 1 && strncmp(buf, "\xef\xbb\xbf", 3) == 0) ? 3 : 0;
	skip += strspn(buf + skip, " \t\r\n\v\f");
	memmove(buf, buf + skip, len - skip + 1);
	if (section_header(p, buf))
		return (NULL);
	return (buf);
}

/* Set keyword key ${k} of ${p} to ${value} at ${dst} (an enum or int). */
static int
set_word(struct parser *p, const struct key *k, const char *value,
    void *dst)
{
	const struct words *w = k->words;
	int i;

	for (i = 0; w->names[i] != NULL; i++) {
		if (strcmp(value, w->names[i]) == 0) {
			*(int *)dst = i;
			return (0);
		}
	}
	return (fail(p, p->lineno, p->section, k->name,
	    "bad %s \"%s\" (use %s)", w->what, value, w->hint));
}

/* Set string key ${k} of ${p} to a copy of ${value} at ${dst}. */
static int
set_string(struct parser *p, const struct key *k, const char *value,
    void *dst)
{

	if (k == &keys[K_CONTROL] && strcmp(value, "off") != 0 &&
	    (value[0] != '/' || strlen(value) >= CONFIG_CONTROL_MAX))
		return (fail(p, p->lineno, p->section, k->name, "must be off "
		    "or an absolute path of at most %d bytes",
		    CONFIG_CONTROL_MAX - 1));
	if ((*(char **)dst = strdup(value)) == NULL)
		return (fail(p, 0, NULL, NULL, "out of memory"));
	return (0);
}

/* The value of hex digit ${c}, or -1. */
static int
hex_digit(int c)
{

	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* The value of base64 digit ${c}, or -1. */
static int
base64_digit(int c)
{

	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	return (c == '+' ? 62 : c == '/' ? 63 : -1);
}

/*
 * Decode the ${n} digits at ${s}, of ${width} bits each as ${digit} maps
 * them, into exactly CONFIG_PIN_LEN bytes at ${out}; the bits left over
 * must be zero.  Returns 0 or -1.
 */
static int
decode_digits(const char *s, size_t n, int width, int (*digit)(int),
    uint8_t *out)
{
	uint32_t acc = 0;
	size_t i, len = 0;
	int v, bits = 0;

	for (i = 0; i < n; i++) {
		if ((v = digit((unsigned char)s[i])) < 0)
			return (-1);
		acc = (acc << width | (uint32_t)v) & 0xffff;
		if ((bits += width) >= 8) {
			bits -= 8;
			if (len == CONFIG_PIN_LEN)
				return (-1);
			out[len++] = (uint8_t)(acc >> bits);
		}
	}
	return (len == CONFIG_PIN_LEN && (acc & ((1u << bits) - 1)) == 0 ?
	    0 : -1);
}

/* Set pin key ${k} of ${p} to ${value}, "sha256:" and 64 hex digits or 44
 * base64 characters, at ${dst}. */
static int
set_pin(struct parser *p, const struct key *k, const char *value, void *dst)
{
	static const char prefix[] = "sha256:";
	struct config_pin *pin = dst;
	const char *d;
	size_t len;

	if (strncmp(value, prefix, sizeof(prefix) - 1) != 0)
		goto bad;
	d = value + sizeof(prefix) - 1;
	len = strlen(d);
	if ((len == 2 * CONFIG_PIN_LEN &&
	    decode_digits(d, len, 4, hex_digit, pin->sha256) == 0) ||
	    (len == 44 && d[43] == '=' &&
	    decode_digits(d, 43, 6, base64_digit, pin->sha256) == 0)) {
		pin->set = 1;
		return (0);
	}
bad:
	return (fail(p, p->lineno, p->section, k->name, "bad pin \"%s\" "
	    "(use sha256: and 64 hex digits or 44 base64 characters)", value));
}

/*
 * 1 if ${host} is one of the names reserved for examples (RFC 2606:
 * example, example.com, .net, .org and the names under them), such as
 * the shipped mxd.conf holds until it is edited.
 */
static int
example_host(const char *host)
{
	static const char *const names[] = {
		"example", "example.com", "example.net", "example.org"
	};
	size_t i, len = strlen(host), nlen;

	if (len > 0 && host[len - 1] == '.')
		len--;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		nlen = strlen(names[i]);
		if (len >= nlen && strncasecmp(host + len - nlen, names[i],
		    nlen) == 0 && (len == nlen || host[len - nlen - 1] == '.'))
			return (1);
	}
	return (0);
}

/* Set address key ${k} of ${p} to ${value} at ${dst}. */
static int
set_addr(struct parser *p, const struct key *k, const char *value, void *dst)
{
	struct config_addr *a = dst;
	const char *hint;

	if (parse_addr(value, a, &hint) != 0) {
		if (errno == ENOMEM)
			return (fail(p, 0, NULL, NULL, "out of memory"));
		return (fail(p, p->lineno, p->section, k->name,
		    "bad address \"%s\" (%s)", value, hint));
	}
	a->line = p->lineno;
	if (example_host(a->host))
		return (fail(p, p->lineno, p->section, k->name,
		    "replace the example address %s with %s", value,
		    k == &keys[K_LINK_CONNECT] ? "your peer's" :
		    k == &keys[K_CONNECT] ? "your target's" : "one of yours"));
	return (0);
}

/* Set numeric key ${k} of ${p} to ${value} at ${dst}. */
static int
set_number(struct parser *p, const struct key *k, const char *value,
    void *dst)
{
	const struct number *num = k->num;
	uint64_t n;
	int rc;

	if ((rc = num->parse(value, &n)) != 0 && errno != ERANGE)
		return (fail(p, p->lineno, p->section, k->name,
		    "bad %s \"%s\" (%s)", num->what, value, num->hint));
	/* Too large for 64 bits (ERANGE) is out of range too. */
	if (rc != 0 || n < k->min || n > k->max)
		return (fail(p, p->lineno, p->section, k->name,
		    "\"%s\" out of range (must be %s)", value, k->range));
	if (num->wide)
		*(uint64_t *)dst = n;
	else
		*(uint32_t *)dst = (uint32_t)n;
	return (0);
}

/* The longest key name, and the most edits a misspelling may be from it
 * for a suggestion. */
#define KEY_NAME_MAX	24
#define SUGGEST_MAX	2

/*
 * The edit distance from ${a} to key name ${b} (insertions, deletions,
 * substitutions and swaps of neighbours, one each), if it is at most
 * SUGGEST_MAX; else more than SUGGEST_MAX.
 */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t d[KEY_NAME_MAX + SUGGEST_MAX + 1][KEY_NAME_MAX + 1];
	size_t la = strlen(a), lb = strlen(b), i, j, best;

	if (lb > KEY_NAME_MAX || la > lb + SUGGEST_MAX ||
	    lb > la + SUGGEST_MAX)
		return (SUGGEST_MAX + 1);
	for (i = 0; i <= la; i++) {
		for (j = 0; j <= lb; j++) {
			if (i == 0 || j == 0) {
				d[i][j] = i + j;
				continue;
			}
			best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return (d[la][lb]);
}

/* The key of section kind ${sec} nearest to unknown key ${name}, within
 * SUGGEST_MAX edits (the first in keys[] on a tie); NULL if none is. */
static const char *
nearest_key(enum section sec, const char *name)
{
	const char *found = NULL;
	size_t dist, best = SUGGEST_MAX + 1;
	enum key_id id;

	for (id = 0; id < NKEYS; id++) {
		if (keys[id].sec == sec &&
		    (dist = edit_distance(name, keys[id].name)) < best) {
			best = dist;
			found = keys[id].name;
		}
	}
	return (found);
}

/* Set key ${name} of the current section of ${p} to ${value}. */
static int
set_key(struct parser *p, const char *name, const char *value)
{
	const struct key *k;
	const char *near;
	enum key_id id;
	char *base;

	if (p->sec == SEC_NONE)
		return (fail(p, p->lineno, "", name,
		    "key outside any section"));
	for (id = 0; id < NKEYS; id++) {
		if (keys[id].sec == p->sec && strcmp(keys[id].name, name) == 0)
			break;
	}
	if (id == NKEYS && (near = nearest_key(p->sec, name)) != NULL)
		return (fail(p, p->lineno, p->section, name,
		    "unknown key; did you mean %s?", near));
	if (id == NKEYS)
		return (fail(p, p->lineno, p->section, name, "unknown key"));
	k = &keys[id];
	if (p->keyline[id] != 0)
		return (fail(p, p->lineno, p->section, name,
		    "duplicate key (first on line %d)", p->keyline[id]));
	p->keyline[id] = p->lineno;
	if (k->sec != SEC_SERVICE)
		p->c->key_line[id] = p->lineno;
	if (value[0] == '\0')
		return (fail(p, p->lineno, p->section, name, "empty value"));
	base = (k->sec == SEC_SERVICE) ? (char *)p->svc : (char *)p->c;

	switch (k->type) {
	case T_WORD:
		return (set_word(p, k, value, base + k->off));
	case T_STRING:
		return (set_string(p, k, value, base + k->off));
	case T_PIN:
		return (set_pin(p, k, value, base + k->off));
	case T_LINK_ADDR:
		if (p->c->link_addr.host != NULL)
			return (fail(p, p->lineno, p->section, name,
			    "connect and listen are mutually exclusive"));
		p->c->link_listen = (id == K_LINK_LISTEN);
		/* FALLTHROUGH */
	case T_ADDR:
		return (set_addr(p, k, value, base + k->off));
	default:	/* T_NUMBER */
		return (set_number(p, k, value, base + k->off));
	}
}

/* ini_handler: set ${name} to ${value} for ${cookie} (a parser).  inih's
 * ${section} is unused: it may be truncated; the reader tracks sections. */
static int
handle(void *cookie, const char *section, const char *name,
    const char *value)
{

	(void)section;
	return (set_key(cookie, name, value) == 0);
}

/* An address of a config, where it is set and what it is for. */
struct place {
	const char	*section;
	const char	*key;
	const struct config_addr *addr;
	int		listens;	/* bound here; else dialed */
	int		family;		/* host_family */
	uint8_t		ip[16];
};

/* qsort: ${a} and ${b} (places) in the order of their lines. */
static int
place_cmp(const void *a, const void *b)
{
	const struct place *x = a, *y = b;

	return ((x->addr->line > y->addr->line) -
	    (x->addr->line < y->addr->line));
}

/* Add address ${a} (if set) of [${section}] ${key} to ${pl} at *${n}. */
static void
place_add(struct place *pl, size_t *n, const char *section, const char *key,
    const struct config_addr *a, int listens)
{
	struct place *e = &pl[*n];

	if (a->host == NULL)
		return;
	e->section = section;
	e->key = key;
	e->addr = a;
	e->listens = listens;
	e->family = host_family(a->host, e->ip);
	(*n)++;
}

/*
 * The addresses of ${c} in file order, *${n} of them, in a new array; NULL
 * if out of memory.
 */
static struct place *
places(const struct config *c, size_t *n)
{
	const struct config_service *s;
	struct place *pl;

	*n = 0;
	if ((pl = calloc(2 + 2 * (size_t)c->nservices, sizeof(*pl))) == NULL)
		return (NULL);
	place_add(pl, n, "daemon", "metrics", &c->metrics, 1);
	place_add(pl, n, "link", c->link_listen ? "listen" : "connect",
	    &c->link_addr, c->link_listen);
	for (s = c->services; s != NULL; s = s->next) {
		place_add(pl, n, s->name, "accept", &s->accept, 1);
		place_add(pl, n, s->name, "connect", &s->connect, 0);
	}
	qsort(pl, *n, sizeof(*pl), place_cmp);
	return (pl);
}

/* 1 if ${a} is the unspecified address of its family (0.0.0.0, ::). */
static int
any_addr(const struct place *a)
{
	static const uint8_t zero[16];

	return (memcmp(a->ip, zero, a->family == AF_INET ? 4 : 16) == 0);
}

/*
 * 1 if listeners ${a} and ${b} cannot both be bound: the same port, and
 * hosts that overlap.  [::] takes the port for IPv4 too (Linux's default,
 * bindv6only = 0), so it overlaps anything; 0.0.0.0 overlaps every IPv4
 * address.  A name overlaps the same name only: what it resolves to is
 * not known here.
 */
static int
overlap(const struct place *a, const struct place *b)
{
	const char *za, *zb;

	if (strcmp(a->addr->port, b->addr->port) != 0)
		return (0);
	if ((a->family == AF_INET6 && any_addr(a)) ||
	    (b->family == AF_INET6 && any_addr(b)))
		return (1);
	if (a->family != b->family)
		return (0);
	switch (a->family) {
	case AF_INET:
		return (any_addr(a) || any_addr(b) ||
		    memcmp(a->ip, b->ip, 4) == 0);
	case AF_INET6:
		za = strchr(a->addr->host, '%');
		zb = strchr(b->addr->host, '%');
		return (memcmp(a->ip, b->ip, 16) == 0 && (za == zb ||
		    (za != NULL && zb != NULL && strcmp(za, zb) == 0)));
	default:
		return (strcasecmp(a->addr->host, b->addr->host) == 0);
	}
}

/* "host:port" of ${a}, for messages: brackets around an IPv6 host. */
#define ADDR_FMT	"%s%s%s:%s"
#define ADDR_ARGS(a)	(strchr((a)->host, ':') ? "[" : ""), (a)->host,	\
			(strchr((a)->host, ':') ? "]" : ""), (a)->port

/*
 * Fail ${p} on the first address its config listens on that an earlier
 * one of the file takes already: mxd could not start with it.
 */
static int
check_listeners(struct parser *p)
{
	const struct place *a, *b;
	struct place *pl;
	size_t i, j, n;
	int rc = 0;

	if ((pl = places(p->c, &n)) == NULL)
		return (fail(p, 0, NULL, NULL, "out of memory"));
	for (i = 0; i < n && rc == 0; i++) {
		a = &pl[i];
		for (j = 0; a->listens && j < i && rc == 0; j++) {
			b = &pl[j];
			if (b->listens && overlap(a, b))
				rc = fail(p, a->addr->line, a->section, a->key,
				    ADDR_FMT " %s [%s] %s (" ADDR_FMT
				    ", line %d)", ADDR_ARGS(a->addr),
				    strcmp(a->addr->host, b->addr->host) == 0 ?
				    "is taken by" : "overlaps", b->section,
				    b->key, ADDR_ARGS(b->addr), b->addr->line);
		}
	}
	free(pl);
	return (rc);
}

/*
 * The control socket of ${c} into ${buf} (size ${len}): [daemon] control,
 * or by default /run/mxd/STEM/control.sock for a file STEM.conf (the
 * RuntimeDirectory= of the units: mxd.service has /run/mxd/mxd, and
 * mxd@NAME.service, for /etc/mxd/NAME.conf, /run/mxd/NAME).
 */
int
config_control_path(const struct config *c, char *buf, size_t len)
{
	const char *base = strrchr(c->path, '/');
	size_t n;
	int w;

	if (c->control != NULL) {
		if (strcmp(c->control, "off") == 0)
			return (-1);
		snprintf(buf, len, "%s", c->control);
		return (0);
	}
	base = base != NULL ? base + 1 : c->path;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".conf") == 0)
		n -= 5;
	w = snprintf(buf, len, "/run/mxd/%.*s/control.sock", (int)n, base);
	return (w < 0 || (size_t)w >= len || w >= CONFIG_CONTROL_MAX ? -1 : 0);
}

/* Resolve the names in ${c}'s addresses; warn through ${warn}(${arg}). */
unsigned
config_check_names(const struct config *c,
    void (*warn)(void *, const char *), void *arg)
{
	struct addrinfo hints, *ai;
	struct place *pl;
	char msg[2048];
	size_t i, n;
	unsigned bad = 0;
	int rc;

	if ((pl = places(c, &n)) == NULL) {
		warn(arg, "out of memory: names not checked");
		return (1);
	}
	for (i = 0; i < n; i++) {
		if (pl[i].family != AF_UNSPEC)
			continue;
		/* As dial.c and listen_on resolve them. */
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV |
		    (pl[i].listens ? AI_PASSIVE : AI_ADDRCONFIG);
		if ((rc = getaddrinfo(pl[i].addr->host, pl[i].addr->port,
		    &hints, &ai)) == 0) {
			freeaddrinfo(ai);
			continue;
		}
		snprintf(msg, sizeof(msg), "%s:%d: [%s] %s: cannot resolve "
		    "\"%s\": %s", c->path, pl[i].addr->line, pl[i].section,
		    pl[i].key, pl[i].addr->host, rc == EAI_SYSTEM ?
		    strerror(errno) : gai_strerror(rc));
		warn(arg, msg);
		bad++;
	}
	free(pl);
	return (bad);
}

/* Finish loading ${p}, given ${line} from ini_parse_stream. */
static int
parse_finish(struct parser *p, int line)
{

	if (line == -2)
		return (fail(p, 0, NULL, NULL, "out of memory"));
	if (line > 0 && (!p->failed || line < p->fail_line)) {
		/* inih found bad syntax on an earlier line than our error's. */
		p->failed = 0;
		return (fail(p, line, NULL, NULL, "syntax error"));
	}
	if (p->failed)
		return (-1);
	if (p->read_errno != 0)
		return (fail(p, 0, NULL, NULL, "read error: %s",
		    strerror(p->read_errno)));
	if (section_end(p))
		return (-1);
	if (p->link_line == 0)
		return (fail(p, 0, NULL, NULL, "missing [link] section"));
	return (check_listeners(p));
}

/* Load ${path} into a new config *${out}, or fail with a message in ${err}
 * (size ${errlen}). */
int
config_load(const char *path, struct config **out, char *err,
    size_t errlen)
{
	struct parser p;

	memset(&p, 0, sizeof(p));
	p.path = path;
	p.err = err;
	p.errlen = errlen;
	if ((p.c = config_new(path)) == NULL) {
		fail(&p, 0, NULL, NULL, "out of memory");
		goto err;
	}
	p.tail = &p.c->services;
	if ((p.f = fopen(path, "re")) == NULL) {
		fail(&p, 0, NULL, NULL, "cannot open: %s", strerror(errno));
		goto err;
	}

	/* Debian's libinih (only) sizes its line buffer at run time. */
	ini_max_line = LINE_MAX_LEN + 3;
	if (parse_finish(&p, ini_parse_stream(read_line, &p, handle, &p)))
		goto err;

	fclose(p.f);
	free(p.section);
	*out = p.c;
	return (0);

err:
	if (p.f != NULL)
		fclose(p.f);
	free(p.section);
	config_free(p.c);
	return (-1);
}
