/*
 * Tests for config: loading files written to a temporary directory, every
 * error message, the shipped conf files, the seed corpus and the helpers.
 * Run from the top of the source tree (conf/ and tests/corpus/ are read).
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CORPUS	"tests/corpus/config"

/* The temporary directory, made by main(). */
static char tmpdir[64];

/* The path of the test config file. */
static char conf_path[128];

/* Write the ${len} bytes at ${text} to the test config file; return its
 * path. */
static const char *
write_conf_len(const char *text, size_t len)
{
	FILE *f;

	snprintf(conf_path, sizeof(conf_path), "%s/mxd.conf", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(conf_path, "w"));
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return (conf_path);
}

/* Write ${text} to the test config file; return its path. */
static const char *
write_conf(const char *text)
{

	return (write_conf_len(text, strlen(text)));
}

/* Load ${path}, which must succeed. */
static struct config *
load_path(const char *path)
{
	struct config *c = NULL;
	char err[512] = "";

	ck_assert_msg(config_load(path, &c, err, sizeof(err)) == 0,
	    "%s: %s", path, err);
	ck_assert_ptr_nonnull(c);
	return (c);
}

/* Load ${text}, which must succeed. */
static struct config *
load(const char *text)
{

	return (load_path(write_conf(text)));
}

/* Load ${text}, which must fail with the message ${path}${want}. */
static void
load_fail(const char *text, const char *want)
{
	struct config *c = NULL;
	char err[512], full[512];
	const char *path = write_conf(text);

	snprintf(full, sizeof(full), "%s%s", path, want);
	ck_assert_msg(config_load(path, &c, err, sizeof(err)) == -1,
	    "loaded:\n%s", text);
	ck_assert_ptr_null(c);
	ck_assert_msg(strcmp(err, full) == 0,
	    "got  \"%s\"\nwant \"%s\"\nfor:\n%s", err, full, text);
}

/* Assert that ${a} is ${host}:${port}, or unset if ${host} is NULL. */
static void
assert_addr(const struct config_addr *a, const char *host, const char *port)
{

	if (host == NULL) {
		ck_assert_ptr_null(a->host);
		ck_assert_ptr_null(a->port);
		return;
	}
	ck_assert_str_eq(a->host, host);
	ck_assert_str_eq(a->port, port);
}

/* Two lines: the smallest valid [link]. */
#define LINK	"[link]\nconnect = peer:7000\n"

#define BAD_ADDR(a)							\
	{ "[link]\nconnect = " a "\n",					\
	  ":2: [link] connect: bad address \"" a "\" "			\
	  "(use host:port or [ipv6]:port)" }
#define BAD_DURATION(v)							\
	{ LINK "keepalive = " v "\n",					\
	  ":3: [link] keepalive: bad duration \"" v "\" (use ms, s, m or h)" }
#define BAD_SIZE(v)							\
	{ LINK "window = " v "\n",					\
	  ":3: [link] window: bad size \"" v "\" "			\
	  "(use a number with optional k or m)" }
#define RANGE(key, v, range)						\
	{ LINK key " = " v "\n",					\
	  ":3: [link] " key ": \"" v "\" out of range (must be " range ")" }
#define BAD_PIN(v)							\
	{ LINK "tls_pin = " v "\n",					\
	  ":3: [link] tls_pin: bad pin \"" v "\" "			\
	  "(use sha256: and 64 hex digits or 44 base64 characters)" }
#define BAD_WORD(key, v, what, hint)					\
	{ LINK key " = " v "\n",					\
	  ":3: [link] " key ": bad " what " \"" v "\" (use " hint ")" }
/* SHA-256 of nothing, in hex and in base64. */
#define PIN_HEX	"e3b0c44298fc1c149afbf4c8996fb924"			\
		"27ae41e4649b934ca495991b7852b855"
#define PIN_B64	"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
/* A [link] with tls = on and all it needs, on lines 2 to 6. */
#define TLS_LINK LINK "tls = on\ntls_cert = c.pem\ntls_key = k.pem\n"	\
		"tls_ca = ca.pem\n"
#define BAD_LITERAL(a, hint)						\
	{ LINK "[s]\naccept = " a "\n",					\
	  ":4: [s] accept: bad address \"" a "\" (not a valid " hint ")" }
/* Services [a] on line 3 and [b] on line 5 accepting on ${x} and ${y}. */
#define CLASH(x, y, how, shown)						\
	{ LINK "[a]\naccept = " x "\n[b]\naccept = " y "\n",		\
	  ":6: [b] accept: " shown " " how " [a] accept (" x ", line 4)" }
#define EXAMPLE(key, a, whose)						\
	{ "[link]\nconnect = 127.0.0.1:7000\n[s]\n" key " = " a "\n",	\
	  ":4: [s] " key ": replace the example address " a " with " whose }
#define BAD_NAME(n)							\
	{ LINK "[" n "]\naccept = 127.0.0.1:1\n",			\
	  ":3: [" n "]: bad service name "				\
	  "(use 1 to 255 of A-Z a-z 0-9 . _ -)" }

/* Each bad config and its message after the file name. */
static const struct bad {
	const char	*text;
	const char	*want;
} bad[] = {
	/* Unknown, misplaced, duplicate keys and sections. */
	{ LINK "foo = 1\n", ":3: [link] foo: unknown key" },
	/* The control socket: off or an absolute path that fits. */
	{ "[daemon]\ncontrol = run/x.sock\n" LINK,
	  ":2: [daemon] control: must be off or an absolute path of at most "
	  "107 bytes" },
	{ "[daemon]\ncontrol = /" "0123456789012345678901234567890123456789"
	  "01234567890123456789012345678901234567890123456789012345678901234"
	  "567\n" LINK, ":2: [daemon] control: must be off or an absolute "
	  "path of at most 107 bytes" },
	{ "[daemon]\nloglevel = info\n" LINK,
	  ":2: [daemon] loglevel: unknown key; did you mean log_level?" },
	/* The nearest key of the section, within two edits. */
	{ "[link]\nconect = peer:7000\n",
	  ":2: [link] conect: unknown key; did you mean connect?" },
	{ LINK "[svc]\nconect = h:1\n",
	  ":4: [svc] conect: unknown key; did you mean connect?" },
	{ LINK "[svc]\nacept = h:1\n",
	  ":4: [svc] acept: unknown key; did you mean accept?" },
	{ LINK "kepalive = 1s\n",
	  ":3: [link] kepalive: unknown key; did you mean keepalive?" },
	{ LINK "keepaliev = 1s\n",
	  ":3: [link] keepaliev: unknown key; did you mean keepalive?" },
	{ LINK "Timeout = 1s\n",
	  ":3: [link] Timeout: unknown key; did you mean timeout?" },
	{ LINK "tls_pins = x\n",
	  ":3: [link] tls_pins: unknown key; did you mean tls_pin?" },
	{ LINK "max_pending_conects = 1\n", ":3: [link] max_pending_conects: "
	  "unknown key; did you mean max_pending_connects?" },
	{ LINK "[svc]\nconnect = h:1\nproxyprotocl = v1\n",
	  ":5: [svc] proxyprotocl: unknown key; did you mean proxy_protocol?" },
	{ "[daemon]\nusr = mxd\n" LINK,
	  ":2: [daemon] usr: unknown key; did you mean user?" },
	{ LINK "cnnct = h:1\n",
	  ":3: [link] cnnct: unknown key; did you mean connect?" },
	{ LINK "xconnectx1 = h:1\n", ":3: [link] xconnectx1: unknown key" },
	{ LINK "[svc]\nlisten = h:1\n", ":4: [svc] listen: unknown key" },
	{ LINK "[svc]\naccept = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
	  ":5: [svc] listen: unknown key" },
	{ LINK "[svc]\naccept = 127.0.0.1:1\nkeepalive = 1s\n",
	  ":5: [svc] keepalive: unknown key" },
	{ "log_level = info\n" LINK,
	  ":1: [] log_level: key outside any section" },
	{ LINK "keepalive = 10s\nkeepalive = 20s\n",
	  ":4: [link] keepalive: duplicate key (first on line 3)" },
	{ LINK "[svc]\naccept = 127.0.0.1:1\naccept = 127.0.0.1:2\n",
	  ":5: [svc] accept: duplicate key (first on line 4)" },
	{ LINK "[svc]\naccept = 127.0.0.1:1\n[other]\nconnect = h:2\n"
	  "[svc]\nconnect = h:1\n",
	  ":7: [svc]: duplicate section (first on line 3)" },
	{ LINK "[link]\nkeepalive = 1s\n",
	  ":3: [link]: duplicate section (first on line 1)" },
	{ "[daemon]\n[daemon]\n" LINK,
	  ":2: [daemon]: duplicate section (first on line 1)" },

	/* [link]: exactly one of connect and listen. */
	{ LINK "listen = 0.0.0.0:7000\n",
	  ":3: [link] listen: connect and listen are mutually exclusive" },
	{ "[link]\nlisten = 0.0.0.0:7000\nconnect = peer:7000\n",
	  ":3: [link] connect: connect and listen are mutually exclusive" },
	{ "[daemon]\nlog_level = info\n\n[link]\nkeepalive = 10s\n"
	  "[svc]\naccept = 127.0.0.1:1\n",
	  ":4: [link]: needs connect or listen" },
	{ "[svc]\naccept = 127.0.0.1:1\n[link]\n",
	  ":3: [link]: needs connect or listen" },
	{ "[svc]\naccept = 127.0.0.1:1\n", ": missing [link] section" },
	{ "", ": missing [link] section" },

	/* Addresses. */
	BAD_ADDR("host"),
	BAD_ADDR("host:"),
	BAD_ADDR(":80"),
	BAD_ADDR("host:0"),
	BAD_ADDR("host:65536"),
	BAD_ADDR("host:99999999999999999999999"),
	BAD_ADDR("host:8o"),
	BAD_ADDR("host:+80"),
	BAD_ADDR("host:-80"),
	BAD_ADDR("ho st:80"),
	BAD_ADDR("::1:80"),
	BAD_ADDR("::1"),
	BAD_ADDR("[::1]80"),
	BAD_ADDR("[::1"),
	BAD_ADDR("[::1]:"),
	BAD_ADDR("[]:80"),
	BAD_ADDR("[a]b]:80"),
	BAD_ADDR("[[::1]]:80"),
	{ LINK "[svc]\naccept = 127.0.0.1\n",
	  ":4: [svc] accept: bad address \"127.0.0.1\" "
	  "(use host:port or [ipv6]:port)" },
	{ LINK "[svc]\nconnect = 10.0.0.5:\n",
	  ":4: [svc] connect: bad address \"10.0.0.5:\" "
	  "(use host:port or [ipv6]:port)" },
	{ "[daemon]\nmetrics = 9108\n" LINK,
	  ":2: [daemon] metrics: bad address \"9108\" "
	  "(use host:port or [ipv6]:port)" },

	/* Literals that are not addresses (they passed -t, and then failed
	 * to start). */
	BAD_LITERAL("300.1.1.1:5432", "IPv4 address"),
	BAD_LITERAL("1.2.3:80", "IPv4 address"),
	BAD_LITERAL("1.2.3.4.5:80", "IPv4 address"),
	BAD_LITERAL("01.2.3.4:80", "IPv4 address"),
	BAD_LITERAL("1.2.3.4.:80", "IPv4 address"),
	BAD_LITERAL("8080:80", "IPv4 address"),
	BAD_LITERAL("[1.2.3.4]:80", "IPv6 address"),
	BAD_LITERAL("[db]:80", "IPv6 address"),
	BAD_LITERAL("[::g]:80", "IPv6 address"),
	BAD_LITERAL("[1:2:3:4:5:6:7:8:9]:80", "IPv6 address"),
	BAD_LITERAL("[fe80::1%]:80", "IPv6 address"),
	{ "[link]\nlisten = 127.0.0.256:7000\n",
	  ":2: [link] listen: bad address \"127.0.0.256:7000\" "
	  "(not a valid IPv4 address)" },

	/* Two listeners on one address, or on overlapping ones. */
	CLASH("127.0.0.1:5432", "127.0.0.1:5432", "is taken by",
	    "127.0.0.1:5432"),
	CLASH("0.0.0.0:5432", "127.0.0.1:5432", "overlaps", "127.0.0.1:5432"),
	CLASH("10.1.2.3:5432", "0.0.0.0:5432", "overlaps", "0.0.0.0:5432"),
	CLASH("[::]:5432", "127.0.0.1:5432", "overlaps", "127.0.0.1:5432"),
	CLASH("[::1]:5432", "[::]:5432", "overlaps", "[::]:5432"),
	CLASH("[::]:5432", "db.local:5432", "overlaps", "db.local:5432"),
	CLASH("[::]:5432", "[::]:5432", "is taken by", "[::]:5432"),
	CLASH("[::1]:5432", "[0:0::1]:5432", "overlaps", "[0:0::1]:5432"),
	CLASH("127.0.0.1:5432", "[::ffff:127.0.0.1]:5432", "overlaps",
	    "[::ffff:127.0.0.1]:5432"),
	CLASH("localhost:5432", "LocalHost:05432", "overlaps",
	    "LocalHost:5432"),
	CLASH("[fe80::1%eth0]:22", "[fe80::1%eth0]:22", "is taken by",
	    "[fe80::1%eth0]:22"),
	{ "[link]\nlisten = 0.0.0.0:7000\n[a]\naccept = 127.0.0.1:7000\n",
	  ":4: [a] accept: 127.0.0.1:7000 overlaps [link] listen "
	  "(0.0.0.0:7000, line 2)" },
	{ "[a]\naccept = 127.0.0.1:7000\n[link]\nlisten = 127.0.0.1:7000\n",
	  ":4: [link] listen: 127.0.0.1:7000 is taken by [a] accept "
	  "(127.0.0.1:7000, line 2)" },
	{ "[daemon]\nmetrics = 127.0.0.1:9108\n" LINK
	  "[a]\nconnect = h:1\n[b]\naccept = 127.0.0.1:9108\n",
	  ":8: [b] accept: 127.0.0.1:9108 is taken by [daemon] metrics "
	  "(127.0.0.1:9108, line 2)" },
	{ "[link]\nlisten = [::]:7000\n[daemon]\nmetrics = 127.0.0.1:7000\n",
	  ":4: [daemon] metrics: 127.0.0.1:7000 overlaps [link] listen "
	  "([::]:7000, line 2)" },

	/* The shipped file's example names are placeholders. */
	{ "[link]\nconnect = peer.example.net:7000\n",
	  ":2: [link] connect: replace the example address "
	  "peer.example.net:7000 with your peer's" },
	EXAMPLE("connect", "db.EXAMPLE.com.:5432", "your target's"),
	EXAMPLE("accept", "example.org:80", "one of yours"),
	EXAMPLE("accept", "a.b.example:80", "one of yours"),
	{ "[daemon]\nmetrics = www.example.com:9108\n" LINK,
	  ":2: [daemon] metrics: replace the example address "
	  "www.example.com:9108 with one of yours" },

	/* Durations. */
	BAD_DURATION("30"),
	BAD_DURATION("30x"),
	BAD_DURATION("s"),
	BAD_DURATION("30 sec"),
	BAD_DURATION("30sec"),
	BAD_DURATION("30S"),
	BAD_DURATION("1.5s"),
	BAD_DURATION("-1s"),
	BAD_DURATION("+1s"),
	BAD_DURATION("30s;x"),		/* ";" needs white space before it */
	BAD_DURATION("30s # x"),	/* "#" starts no inline comment */
	RANGE("keepalive", "0s", "1ms..24h"),
	RANGE("timeout", "0ms", "1ms..24h"),
	RANGE("reconnect_min", "0h", "1ms..24h"),
	RANGE("reconnect_max", "0m", "1ms..24h"),
	RANGE("connect_timeout", "0s", "1ms..24h"),
	/* At most 24 h: beyond, in microseconds, they wrapped (issue 18.6:
	 * this timeout became 384 us and the link dropped every second). */
	RANGE("timeout", "18446744073709552ms", "1ms..24h"),
	RANGE("timeout", "86400001ms", "1ms..24h"),
	RANGE("keepalive", "25h", "1ms..24h"),
	RANGE("reconnect_min", "86401s", "1ms..24h"),
	RANGE("reconnect_max", "1441m", "1ms..24h"),
	RANGE("connect_timeout", "5124095576031h", "1ms..24h"),
	RANGE("drain_timeout", "25h", "0ms..24h"),
	RANGE("drain_timeout", "86400001ms", "0ms..24h"),
	/* Beyond 64 bits. */
	RANGE("reconnect_max", "99999999999999999999ms", "1ms..24h"),
	RANGE("reconnect_max", "5124095576031h", "1ms..24h"),

	/* Sizes and numbers. */
	BAD_SIZE("256q"),
	BAD_SIZE("k"),
	BAD_SIZE("256kk"),
	BAD_SIZE("256K"),
	BAD_SIZE("256kb"),
	RANGE("window", "99999999999999999999m", "256k..16m"),
	RANGE("window", "128k", "256k..16m"),
	RANGE("window", "262143", "256k..16m"),
	RANGE("window", "17m", "256k..16m"),
	RANGE("window", "16777217", "256k..16m"),
	RANGE("window_max", "128k", "256k..16m"),
	RANGE("window_max", "17m", "256k..16m"),
	RANGE("max_channels", "0", "1..1048576"),
	RANGE("max_channels", "1048577", "1..1048576"),
	{ LINK "max_channels = 1k\n",
	  ":3: [link] max_channels: bad number \"1k\" (use decimal digits)" },
	{ LINK "max_channels = -1\n",
	  ":3: [link] max_channels: bad number \"-1\" (use decimal digits)" },

	/* Services. */
	BAD_NAME("a/b"),
	BAD_NAME(""),
	BAD_NAME(" svc"),
	BAD_NAME("svc ;x"),
	BAD_NAME("caf\xc3\xa9"),
	{ LINK "[svc]\n[other]\naccept = 127.0.0.1:1\n",
	  ":3: [svc]: needs accept or connect" },
	{ LINK "[svc]\n; accept = 127.0.0.1:1\n",
	  ":3: [svc]: needs accept or connect" },

	/* TLS: on or off, and what on needs. */
	BAD_WORD("tls", "yes", "value", "on or off"),
	BAD_WORD("tls", "ON", "value", "on or off"),
	BAD_WORD("tls_min_version", "1.1", "TLS version", "1.2 or 1.3"),
	BAD_WORD("tls_min_version", "13", "TLS version", "1.2 or 1.3"),
	{ LINK "tls = on\n", ":3: [link] tls: needs tls_cert" },
	{ LINK "tls = on\ntls_cert = c.pem\n",
	  ":3: [link] tls: needs tls_key" },
	{ LINK "tls = on\ntls_cert = c.pem\ntls_key = k.pem\n",
	  ":3: [link] tls: needs tls_ca or tls_pin" },
	{ LINK "tls_key = k.pem\ntls_cert = c.pem\n"
	  "tls = on\n[svc]\naccept = 127.0.0.1:1\n",
	  ":5: [link] tls: needs tls_ca or tls_pin" },
	{ LINK "tls_cert = c.pem\n", ":3: [link] tls_cert: needs tls = on" },
	{ LINK "tls = off\ntls_key = k.pem\n",
	  ":4: [link] tls_key: needs tls = on" },
	{ LINK "tls_peer_name = peer\n",
	  ":3: [link] tls_peer_name: needs tls = on" },
	{ LINK "tls_pin = sha256:" PIN_B64 "\n",
	  ":3: [link] tls_pin: needs tls = on" },
	{ LINK "tls_min_version = 1.2\n",
	  ":3: [link] tls_min_version: needs tls = on" },
	{ TLS_LINK "tls_cert = d.pem\n",
	  ":7: [link] tls_cert: duplicate key (first on line 4)" },
	{ TLS_LINK "tls_peer_name =\n",
	  ":7: [link] tls_peer_name: empty value" },
	BAD_PIN("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
	BAD_PIN("sha256:"),
	BAD_PIN("sha256"),
	BAD_PIN("sha1:" PIN_B64),
	BAD_PIN("SHA256:" PIN_B64),
	BAD_PIN("sha256: " PIN_B64),
	BAD_PIN("sha256:" PIN_B64 "x"),
	BAD_PIN("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"),
	BAD_PIN("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=="),
	BAD_PIN("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV="),
	BAD_PIN("sha256:47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
	BAD_PIN("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4959"
	    "91b7852b85"),
	BAD_PIN("sha256:" PIN_HEX "5"),
	BAD_PIN("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4959"
	    "91b7852b85g"),
	BAD_PIN("sha256:e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:27:ae"
	    ":41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55"),

	/* Limits. */
	RANGE("max_pending_connects", "0", "1..1048576"),
	RANGE("max_pending_connects", "1048577", "1..1048576"),
	RANGE("max_buffered", "63k", "64k..4095m"),
	RANGE("max_buffered", "4096m", "64k..4095m"),
	{ LINK "max_buffered = 1g\n", ":3: [link] max_buffered: bad size "
	  "\"1g\" (use a number with optional k or m)" },
	{ LINK "max_pending_connects = 1k\n", ":3: [link] "
	  "max_pending_connects: bad number \"1k\" (use decimal digits)" },

	/* Service keys, and what they need. */
	{ LINK "[s]\naccept = h:1\nrate_limit = 0\n",
	  ":5: [s] rate_limit: \"0\" out of range (must be 1..1000000)" },
	{ LINK "[s]\naccept = h:1\nrate_limit = 1000001\n",
	  ":5: [s] rate_limit: \"1000001\" out of range (must be 1..1000000)" },
	{ LINK "[s]\nconnect = h:1\nrate_limit = 5\n",
	  ":5: [s] rate_limit: needs accept" },
	{ LINK "[s]\nrate_limit = 5\nconnect = h:1\n[t]\naccept = h:2\n",
	  ":4: [s] rate_limit: needs accept" },
	{ LINK "[s]\naccept = h:1\nproxy_protocol = v1\n",
	  ":5: [s] proxy_protocol: needs connect" },
	{ LINK "[s]\nconnect = h:1\nproxy_protocol = v3\n",
	  ":5: [s] proxy_protocol: bad PROXY protocol version \"v3\" "
	  "(use off, v1 or v2)" },
	{ LINK "[s]\nconnect = h:1\nproxy_protocol = 1\n",
	  ":5: [s] proxy_protocol: bad PROXY protocol version \"1\" "
	  "(use off, v1 or v2)" },
	{ LINK "[s]\nconnect = h:1\ntls = on\n", ":5: [s] tls: unknown key" },
	{ LINK "user = nobody\n", ":3: [link] user: unknown key" },
	{ "[daemon]\nuser =\n" LINK, ":2: [daemon] user: empty value" },
	{ "[daemon]\nuser = a\nuser = b\n" LINK,
	  ":3: [daemon] user: duplicate key (first on line 2)" },

	/* Relations between [link] keys. */
	{ LINK "reconnect_min = 10s\nreconnect_max = 5s\n",
	  ":4: [link] reconnect_max: must be >= reconnect_min" },
	{ LINK "reconnect_max = 5s\nreconnect_min = 10s\n",
	  ":3: [link] reconnect_max: must be >= reconnect_min" },
	{ LINK "reconnect_min = 2m\n",
	  ":3: [link] reconnect_min: must be <= reconnect_max" },
	{ LINK "keepalive = 90s\n", ":3: [link] keepalive: must be < timeout" },
	{ LINK "window = 1m\nwindow_max = 512k\n",
	  ":4: [link] window_max: must be >= window" },
	{ LINK "window_max = 512k\nwindow = 1m\n",
	  ":3: [link] window_max: must be >= window" },
	{ LINK "keepalive = 90s\n[svc]\naccept = 127.0.0.1:1\n",
	  ":3: [link] keepalive: must be < timeout" },
	{ LINK "keepalive = 10s\ntimeout = 10s\n",
	  ":4: [link] timeout: must be > keepalive" },
	{ LINK "timeout = 20s\n", ":3: [link] timeout: must be > keepalive" },

	/* Empty values and other values. */
	{ LINK "keepalive =\n", ":3: [link] keepalive: empty value" },
	{ LINK "keepalive = ; none\n", ":3: [link] keepalive: empty value" },
	{ "[link]\nconnect =\n", ":2: [link] connect: empty value" },
	{ "[daemon]\nlog_level = verbose\n" LINK,
	  ":2: [daemon] log_level: bad log level \"verbose\" "
	  "(use debug, info, warn or error)" },
	{ "[daemon]\nlog_level = INFO\n" LINK,
	  ":2: [daemon] log_level: bad log level \"INFO\" "
	  "(use debug, info, warn or error)" },

	/* Syntax; the error on the earliest line wins. */
	{ LINK "this is not ini\n", ":3: syntax error" },
	{ LINK "[svc] accept = 127.0.0.1:1\n", ":3: syntax error" },
	{ LINK "[svc] # x\naccept = 127.0.0.1:1\n", ":3: syntax error" },
	{ LINK "keepalive\n", ":3: syntax error" },
	{ "[link\nconnect = peer:7000\n", ":1: syntax error" },
	{ LINK "oops\nfoo = 1\n", ":3: syntax error" },
	{ LINK "foo = 1\noops\n", ":3: [link] foo: unknown key" },
	{ "[link]\nkeepalive = 10s\noops\n[svc]\naccept = 127.0.0.1:1\n",
	  ":1: [link]: needs connect or listen" },
};

START_TEST(test_errors)
{

	load_fail(bad[_i].text, bad[_i].want);
}
END_TEST

START_TEST(test_full)
{
	struct config *c;
	const struct config_service *s;

	c = load(
	    "; every key\n"
	    "[daemon]\n"
	    "log_level = debug\n"
	    "metrics = 127.0.0.1:9108\n"
	    "user = mxd\n"
	    "\n"
	    "[link]\n"
	    "connect = peer.mxd.test:7000\n"
	    "keepalive = 500ms\n"
	    "timeout = 2m\n"
	    "reconnect_min = 100ms\n"
	    "reconnect_max = 1h\n"
	    "window = 1m\n"
	    "window_max = 4m\n"
	    "max_channels = 1024\n"
	    "max_pending_connects = 10\n"
	    "max_buffered = 64m\n"
	    "drain_timeout = 45s\n"
	    "connect_timeout = 5s\n"
	    "tls = on\n"
	    "tls_cert = /etc/mxd/cert.pem\n"
	    "tls_key = /etc/mxd/key.pem\n"
	    "tls_ca = /etc/mxd/ca.pem\n"
	    "tls_peer_name = peer.example.net\n"
	    "tls_pin = sha256:" PIN_HEX "\n"
	    "tls_min_version = 1.2\n"
	    "\n"
	    "[postgres]\n"
	    "accept = 127.0.0.1:5432\n"
	    "connect = 10.0.0.5:5432\n"
	    "proxy_protocol = v2\n"
	    "rate_limit = 100\n"
	    "[web.front-1_A]\n"
	    "connect = [2001:db8::1]:443\n"
	    "proxy_protocol = v1\n"
	    "[in]\n"
	    "accept = [::]:8080\n"
	    "proxy_protocol = off\n");
	ck_assert_str_eq(c->path, conf_path);
	ck_assert_int_eq(c->log_level, LOG_DEBUG);
	assert_addr(&c->metrics, "127.0.0.1", "9108");
	ck_assert_str_eq(c->user, "mxd");
	ck_assert_int_eq(c->link_listen, 0);
	assert_addr(&c->link_addr, "peer.mxd.test", "7000");
	ck_assert_int_eq(c->link_addr.line, 8);
	ck_assert_int_eq(c->metrics.line, 4);
	ck_assert_uint_eq(c->keepalive_ms, 500);
	ck_assert_uint_eq(c->timeout_ms, 120000);
	ck_assert_uint_eq(c->reconnect_min_ms, 100);
	ck_assert_uint_eq(c->reconnect_max_ms, 3600000);
	ck_assert_uint_eq(c->window, 1048576);
	ck_assert_uint_eq(c->window_max, 4194304);
	ck_assert_uint_eq(c->max_channels, 1024);
	ck_assert_uint_eq(c->max_pending_connects, 10);
	ck_assert_uint_eq(c->max_buffered, 64 * 1048576);
	ck_assert_uint_eq(c->drain_timeout_ms, 45000);
	ck_assert_uint_eq(c->connect_timeout_ms, 5000);
	ck_assert_int_eq(c->tls, 1);
	ck_assert_str_eq(c->tls_cert, "/etc/mxd/cert.pem");
	ck_assert_str_eq(c->tls_key, "/etc/mxd/key.pem");
	ck_assert_str_eq(c->tls_ca, "/etc/mxd/ca.pem");
	ck_assert_str_eq(c->tls_peer_name, "peer.example.net");
	ck_assert_int_eq(c->tls_pin.set, 1);
	ck_assert_mem_eq(c->tls_pin.sha256, "\xe3\xb0\xc4\x42\x98\xfc\x1c\x14"
	    "\x9a\xfb\xf4\xc8\x99\x6f\xb9\x24\x27\xae\x41\xe4\x64\x9b\x93\x4c"
	    "\xa4\x95\x99\x1b\x78\x52\xb8\x55", CONFIG_PIN_LEN);
	ck_assert_int_eq(c->tls_min_version, TLS_V12);
	ck_assert_uint_eq(c->nservices, 3);

	s = c->services;
	ck_assert_str_eq(s->name, "postgres");
	assert_addr(&s->accept, "127.0.0.1", "5432");
	assert_addr(&s->connect, "10.0.0.5", "5432");
	ck_assert_int_eq(s->accept.line, 29);
	ck_assert_int_eq(s->connect.line, 30);
	ck_assert_int_eq(s->proxy_protocol, PROXY_V2);
	ck_assert_uint_eq(s->rate_limit, 100);
	ck_assert_int_eq(s->line, 28);
	s = s->next;
	ck_assert_str_eq(s->name, "web.front-1_A");
	assert_addr(&s->accept, NULL, NULL);
	assert_addr(&s->connect, "2001:db8::1", "443");
	ck_assert_int_eq(s->proxy_protocol, PROXY_V1);
	ck_assert_uint_eq(s->rate_limit, 0);
	ck_assert_int_eq(s->line, 33);
	s = s->next;
	ck_assert_str_eq(s->name, "in");
	assert_addr(&s->accept, "::", "8080");
	assert_addr(&s->connect, NULL, NULL);
	ck_assert_int_eq(s->proxy_protocol, PROXY_OFF);
	ck_assert_int_eq(s->line, 36);
	ck_assert_ptr_null(s->next);
	config_free(c);
}
END_TEST

/* The default control socket of a file named ${base}. */
static const char *
default_control(const char *base)
{
	static char buf[CONFIG_CONTROL_MAX];
	size_t n = strlen(base);

	if (n > 5 && strcmp(base + n - 5, ".conf") == 0)
		n -= 5;
	snprintf(buf, sizeof(buf), "/run/mxd/%.*s/control.sock", (int)n,
	    base);
	return (buf);
}

START_TEST(test_defaults)
{
	char path[CONFIG_CONTROL_MAX];
	const char *stem;
	struct config *c;

	c = load("[link]\nlisten = [::1]:7000\n");
	ck_assert_int_eq(c->log_level, LOG_INFO);
	assert_addr(&c->metrics, NULL, NULL);
	ck_assert_int_eq(c->link_listen, 1);
	assert_addr(&c->link_addr, "::1", "7000");
	ck_assert_uint_eq(c->keepalive_ms, 30000);
	ck_assert_uint_eq(c->timeout_ms, 90000);
	ck_assert_uint_eq(c->reconnect_min_ms, 250);
	ck_assert_uint_eq(c->reconnect_max_ms, 2000);
	ck_assert_uint_eq(c->window, 262144);
	ck_assert_uint_eq(c->window_max, 16777216);
	ck_assert_uint_eq(c->max_channels, 65536);
	ck_assert_uint_eq(c->max_pending_connects, 4096);
	ck_assert_uint_eq(c->max_buffered, 256 * 1048576);
	ck_assert_uint_eq(c->drain_timeout_ms, 30000);
	ck_assert_uint_eq(c->connect_timeout_ms, 10000);
	ck_assert_ptr_null(c->user);
	ck_assert_int_eq(c->tls, 0);
	ck_assert_ptr_null(c->tls_cert);
	ck_assert_ptr_null(c->tls_key);
	ck_assert_ptr_null(c->tls_ca);
	ck_assert_ptr_null(c->tls_peer_name);
	ck_assert_int_eq(c->tls_pin.set, 0);
	ck_assert_int_eq(c->tls_min_version, TLS_V13);
	ck_assert_ptr_null(c->services);
	ck_assert_uint_eq(c->nservices, 0);
	ck_assert_ptr_null(c->control);
	ck_assert_int_eq(config_control_path(c, path, sizeof(path)), 0);
	stem = strrchr(c->path, '/') + 1;
	ck_assert_str_eq(path, default_control(stem));
	config_free(c);
	c = load("[daemon]\ncontrol = off\n" LINK);
	ck_assert_int_eq(config_control_path(c, path, sizeof(path)), -1);
	config_free(c);
}
END_TEST

/* The edges of every range are accepted. */
START_TEST(test_limits)
{
	struct config *c;

	c = load(LINK
	    "window = 256k\nwindow_max = 256k\nmax_channels = 1\n"
	    "drain_timeout = 0s\n"
	    "reconnect_min = 5s\nreconnect_max = 5000ms\n"
	    "keepalive = 1ms\ntimeout = 2ms\n"
	    "[a]\naccept = h:1\n[b]\nconnect = h:65535\n"
	    "[c]\naccept = h:0080\n");
	ck_assert_uint_eq(c->window, 262144);
	ck_assert_uint_eq(c->window_max, 262144);
	ck_assert_uint_eq(c->max_channels, 1);
	ck_assert_uint_eq(c->drain_timeout_ms, 0);
	ck_assert_uint_eq(c->reconnect_min_ms, 5000);
	ck_assert_uint_eq(c->reconnect_max_ms, 5000);
	ck_assert_uint_eq(c->keepalive_ms, 1);
	ck_assert_uint_eq(c->timeout_ms, 2);
	assert_addr(&c->services->accept, "h", "1");
	assert_addr(&c->services->next->connect, "h", "65535");
	assert_addr(&c->services->next->next->accept, "h", "80");
	config_free(c);

	c = load(LINK "window = 16m\nmax_channels = 1048576\n"
	    "timeout = 24h\nkeepalive = 86399999ms\nreconnect_min = 86400s\n"
	    "reconnect_max = 1440m\ndrain_timeout = 24h\n"
	    "connect_timeout = 86400000ms\n");
	ck_assert_uint_eq(c->window, 16777216);
	ck_assert_uint_eq(c->max_channels, 1048576);
	ck_assert_uint_eq(c->timeout_ms, CONFIG_DURATION_MAX_MS);
	ck_assert_uint_eq(c->keepalive_ms, CONFIG_DURATION_MAX_MS - 1);
	ck_assert_uint_eq(c->reconnect_min_ms, CONFIG_DURATION_MAX_MS);
	ck_assert_uint_eq(c->reconnect_max_ms, CONFIG_DURATION_MAX_MS);
	ck_assert_uint_eq(c->drain_timeout_ms, CONFIG_DURATION_MAX_MS);
	ck_assert_uint_eq(c->connect_timeout_ms, CONFIG_DURATION_MAX_MS);
	config_free(c);

	c = load(LINK "max_pending_connects = 1\nmax_buffered = 64k\n"
	    "[s]\naccept = h:1\nrate_limit = 1\n");
	ck_assert_uint_eq(c->max_pending_connects, 1);
	ck_assert_uint_eq(c->max_buffered, 65536);
	ck_assert_uint_eq(c->services->rate_limit, 1);
	config_free(c);

	c = load(LINK "max_pending_connects = 1048576\nmax_buffered = 4095m\n"
	    "[s]\naccept = h:1\nrate_limit = 1000000\n");
	ck_assert_uint_eq(c->max_pending_connects, 1048576);
	ck_assert_uint_eq(c->max_buffered, 4095u * 1048576);
	ck_assert_uint_eq(c->services->rate_limit, 1000000);
	config_free(c);
}
END_TEST

/* A pin in hex (either case) and in base64 is the same key; tls = off with
 * nothing else is a plain link. */
START_TEST(test_tls_pin)
{
	struct config *c, *d;
	char upper[sizeof(PIN_HEX)], text[256];
	size_t i;

	c = load(TLS_LINK "tls_pin = sha256:" PIN_B64 "\n");
	d = load(TLS_LINK "tls_pin = sha256:" PIN_HEX "\n");
	ck_assert_int_eq(c->tls_pin.set, 1);
	ck_assert_mem_eq(c->tls_pin.sha256, d->tls_pin.sha256, CONFIG_PIN_LEN);
	config_free(d);
	for (i = 0; i < sizeof(PIN_HEX); i++)
		upper[i] = (char)toupper((unsigned char)PIN_HEX[i]);
	snprintf(text, sizeof(text), TLS_LINK "tls_pin = sha256:%s\n", upper);
	d = load(text);
	ck_assert_mem_eq(c->tls_pin.sha256, d->tls_pin.sha256, CONFIG_PIN_LEN);
	config_free(d);
	config_free(c);

	c = load(LINK "tls = off\n");
	ck_assert_int_eq(c->tls, 0);
	config_free(c);
}
END_TEST

/* inih (as Debian builds it) strips " ; comments" after values. */
START_TEST(test_comments)
{
	struct config *c;

	c = load(
	    "; a comment\n"
	    "# another\n"
	    "[daemon] ; the daemon\n"
	    "log_level = warn ; quieter\n"
	    "[link]\n"
	    "connect = peer:7000\t; the peer\n"
	    "keepalive = 10s ;ten seconds\n"
	    "[svc]  ; a service\n"
	    "accept = [::1]:22 ; ssh\n");
	ck_assert_int_eq(c->log_level, LOG_WARN);
	assert_addr(&c->link_addr, "peer", "7000");
	ck_assert_uint_eq(c->keepalive_ms, 10000);
	ck_assert_str_eq(c->services->name, "svc");
	assert_addr(&c->services->accept, "::1", "22");
	config_free(c);
}
END_TEST

/* Indented keys are keys (not inih continuation lines); a UTF-8 BOM, CRLF
 * line ends, "key: value" and a missing final newline are accepted. */
START_TEST(test_layout)
{
	struct config *c;

	c = load("\xef\xbb\xbf[link]\r\n"
	    "  connect = peer:7000\r\n"
	    "\tkeepalive = 10s\r\n"
	    "    timeout: 20s\r\n"
	    "  [svc]\r\n"
	    "  connect = 10.0.0.1:22");
	assert_addr(&c->link_addr, "peer", "7000");
	ck_assert_uint_eq(c->keepalive_ms, 10000);
	ck_assert_uint_eq(c->timeout_ms, 20000);
	ck_assert_str_eq(c->services->name, "svc");
	ck_assert_int_eq(c->services->line, 5);
	assert_addr(&c->services->connect, "10.0.0.1", "22");
	config_free(c);
}
END_TEST

/* Service names of 255 bytes work (inih itself keeps only 50); longer lines
 * than the parser handles are an error, not silently split. */
START_TEST(test_long_lines)
{
	struct config *c;
	char name[257], text[1200], want[400];

	memset(name, 'n', 255);
	name[255] = '\0';
	snprintf(text, sizeof(text), LINK "[%s]\naccept = 127.0.0.1:1\n"
	    "[%.50s]\naccept = 127.0.0.1:2\n", name, name);
	c = load(text);
	ck_assert_str_eq(c->services->name, name);
	ck_assert_str_eq(c->services->next->name, name + 205);
	config_free(c);

	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(text, sizeof(text), LINK "[%s]\naccept = 127.0.0.1:1\n", name);
	snprintf(want, sizeof(want), ":3: [%s]: bad service name "
	    "(use 1 to 255 of A-Z a-z 0-9 . _ -)", name);
	load_fail(text, want);

	/* Exactly the longest line, then one more. */
	snprintf(text, sizeof(text), LINK ";%1020s\n", "x");
	config_free(load(text));
	snprintf(text, sizeof(text), LINK ";%1020s\r\n", "x");
	config_free(load(text));
	snprintf(text, sizeof(text), LINK ";%1021s\n", "x");
	load_fail(text, ":3: line too long (max 1021 characters)");
}
END_TEST

/* A NUL byte anywhere in a line is an error (fgets, and inih, took it for
 * the line's end: the rest of the line vanished). */
START_TEST(test_nul)
{
	static const struct {
		const char *text;
		size_t len;
		const char *want;
	} cases[] = {
#define NUL_CASE(t, w)	{ t, sizeof(t) - 1, w }
		NUL_CASE("[link]\nconnect = peer:7000\0:8000\n",
		    ":2: NUL byte at column 20"),
		NUL_CASE(LINK "keepalive = 10s\0\n", ":3: NUL byte at column 16"),
		NUL_CASE("\0" LINK, ":1: NUL byte at column 1"),
		NUL_CASE(LINK "; a comment\0\n", ":3: NUL byte at column 12"),
		NUL_CASE(LINK "  timeout = 20s\0", ":3: NUL byte at column 16"),
#undef NUL_CASE
	};
	struct config *c = NULL;
	char err[512], want[512];
	const char *path;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		path = write_conf_len(cases[i].text, cases[i].len);
		snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
		ck_assert_msg(config_load(path, &c, err, sizeof(err)) == -1,
		    "case %zu loaded", i);
		ck_assert_ptr_null(c);
		ck_assert_str_eq(err, want);
	}
}
END_TEST

START_TEST(test_file_errors)
{
	struct config *c = NULL;
	char path[256], want[300], err[512];

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	snprintf(want, sizeof(want), "%s: cannot open: %s", path,
	    strerror(ENOENT));
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(c);

	snprintf(want, sizeof(want), "%s: read error: %s", tmpdir,
	    strerror(EISDIR));
	ck_assert_int_eq(config_load(tmpdir, &c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(c);
}
END_TEST

/* A short buffer gets a truncated message; none at all is fine. */
START_TEST(test_short_err)
{
	struct config *c = NULL;
	char err[8];
	const char *path = write_conf(LINK "foo = 1\n");

	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_int_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(strncmp(err, path, sizeof(err) - 1), 0);
	ck_assert_int_eq(config_load(path, &c, NULL, 0), -1);
	ck_assert_ptr_null(c);
}
END_TEST

/* The contents of ${path} with each "peer.example.net" replaced by
 * ${peer}, in a buffer of ${size} at ${buf}. */
static void
read_shipped(const char *path, const char *peer, char *buf, size_t size)
{
	static const char example[] = "peer.example.net";
	char text[8192], *at, *from;
	size_t len;
	FILE *f;

	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	len = fread(text, 1, sizeof(text) - 1, f);
	ck_assert_int_eq(feof(f), 1);
	fclose(f);
	text[len] = '\0';
	buf[0] = '\0';
	for (from = text; (at = strstr(from, example)) != NULL;
	    from = at + sizeof(example) - 1) {
		ck_assert_uint_lt(strlen(buf) + (size_t)(at - from) +
		    strlen(peer), size);
		strncat(buf, from, (size_t)(at - from));
		strcat(buf, peer);
	}
	ck_assert_uint_lt(strlen(buf) + strlen(from), size);
	strcat(buf, from);
}

/* The shipped file says what to edit first (its [link] connect names an
 * example host); once that is done, it loads. */
START_TEST(test_shipped)
{
	struct config *c = NULL;
	char err[512], text[8192];
	int line = 0;

	ck_assert_int_eq(config_load("conf/mxd.conf", &c, err, sizeof(err)),
	    -1);
	ck_assert_ptr_null(c);
	ck_assert_msg(sscanf(err, "conf/mxd.conf:%d:", &line) == 1 &&
	    line > 0, "%s", err);
	ck_assert_str_eq(strchr(err, ' '), " [link] connect: replace the "
	    "example address peer.example.net:7000 with your peer's");
	read_shipped("conf/mxd.conf", "peer.mxd.test", text, sizeof(text));
	c = load(text);
	ck_assert_int_eq(c->link_listen, 0);
	assert_addr(&c->link_addr, "peer.mxd.test", "7000");
	ck_assert_int_eq(c->link_addr.line, line);
	ck_assert_str_eq(c->services->name, "postgres");
	assert_addr(&c->services->accept, "127.0.0.1", "5432");
	config_free(c);

	c = load_path("conf/examples/clients.conf");
	ck_assert_int_eq(c->link_listen, 0);
	assert_addr(&c->link_addr, "127.0.0.1", "7000");
	ck_assert_uint_eq(c->nservices, 1);
	ck_assert_str_eq(c->services->name, "echo");
	assert_addr(&c->services->accept, "127.0.0.1", "7001");
	assert_addr(&c->services->connect, NULL, NULL);
	config_free(c);

	c = load_path("conf/examples/targets.conf");
	ck_assert_int_eq(c->link_listen, 1);
	assert_addr(&c->link_addr, "127.0.0.1", "7000");
	ck_assert_uint_eq(c->nservices, 1);
	ck_assert_str_eq(c->services->name, "echo");
	assert_addr(&c->services->accept, NULL, NULL);
	assert_addr(&c->services->connect, "127.0.0.1", "7002");
	config_free(c);
}
END_TEST

/* The lines of [daemon] and [link] keys, by name or by a message that
 * begins with the name (as tls_ctx_new's do). */
START_TEST(test_key_line)
{
	struct config *c;

	c = load("[daemon]\nlog_level = info\n" TLS_LINK
	    "[svc]\naccept = h:1\n");
	ck_assert_int_eq(config_key_line(c, "log_level"), 2);
	ck_assert_int_eq(config_key_line(c, "connect"), 4);
	ck_assert_int_eq(config_key_line(c, "tls"), 5);
	ck_assert_int_eq(config_key_line(c, "tls_cert"), 6);
	ck_assert_int_eq(config_key_line(c, "tls_key"), 7);
	ck_assert_int_eq(config_key_line(c, "tls_ca"), 8);
	ck_assert_int_eq(config_key_line(c, "tls_key /etc/k.pem: "
	    "No such file or directory"), 7);
	ck_assert_int_eq(config_key_line(c, "tls: out of memory"), 5);
	ck_assert_int_eq(config_key_line(c, "tls_"), 0);
	ck_assert_int_eq(config_key_line(c, "window"), 0);
	ck_assert_int_eq(config_key_line(c, "accept"), 0);
	ck_assert_int_eq(config_key_line(c, "nonsense"), 0);
	ck_assert_int_eq(config_key_line(c, ""), 0);
	config_free(c);
}
END_TEST

/* Listeners that can be bound side by side load; so do addresses that
 * are only dialed, whatever they share with a listener. */
START_TEST(test_listeners_apart)
{
	struct config *c;

	c = load("[daemon]\nmetrics = 127.0.0.1:9108\n"
	    "[link]\nlisten = 127.0.0.1:7000\n"
	    "[a]\naccept = 127.0.0.1:5432\n"
	    "[b]\naccept = 127.0.0.1:5433\n"
	    "[c]\naccept = 127.0.0.2:5432\n"
	    "[d]\naccept = [::1]:5432\n"
	    "[e]\naccept = 0.0.0.0:6000\n"
	    "[f]\naccept = [::1]:6000\n"
	    "[g]\naccept = localhost:6001\n"
	    "[h]\naccept = 0.0.0.0:6001\n"
	    "[i]\naccept = [fe80::1%eth0]:22\n"
	    "[j]\naccept = [fe80::1%eth1]:22\n"
	    "[k]\naccept = [fe80::1]:22\n"
	    "[l]\nconnect = 127.0.0.1:5432\n"
	    "[m]\nconnect = 127.0.0.1:7000\n"
	    "[n]\naccept = 0.0.0.0:9109\nconnect = 127.0.0.1:9109\n"
	    "[o]\naccept = [::ffff:10.0.0.1]:80\n"
	    "[p]\naccept = 10.0.0.2:80\n");
	ck_assert_uint_eq(c->nservices, 16);
	config_free(c);
	c = load("[link]\nconnect = 127.0.0.1:7000\n"
	    "[a]\naccept = 127.0.0.1:7000\n");
	config_free(c);
}
END_TEST

/* Collects what config_check_names warns about. */
struct warnings {
	unsigned	n;
	char		first[512];
};

/* config_check_names: note warning ${msg} in ${arg}. */
static void
note_warning(void *arg, const char *msg)
{
	struct warnings *w = arg;

	if (w->n++ == 0)
		snprintf(w->first, sizeof(w->first), "%s", msg);
}

/* Names that do not resolve are warned about, with file:line and key;
 * literals and names that resolve are not. */
START_TEST(test_check_names)
{
	struct warnings w = { 0, "" };
	struct config *c;
	char want[512];

	c = load("[daemon]\nmetrics = localhost:9108\n"
	    "[link]\nconnect = 10.0.0.1:7000\n"
	    "[a]\naccept = [::1]:1\nconnect = 192.0.2.1:1\n"
	    "[b]\naccept = localhost:2\n"
	    "[c]\nconnect = no-such-host.invalid:3\n"
	    "[d]\naccept = also-not.invalid:4\n");
	ck_assert_uint_eq(config_check_names(c, note_warning, &w), 2);
	ck_assert_uint_eq(w.n, 2);
	snprintf(want, sizeof(want), "%s:11: [c] connect: cannot resolve "
	    "\"no-such-host.invalid\": ", conf_path);
	ck_assert_msg(strncmp(w.first, want, strlen(want)) == 0 &&
	    strlen(w.first) > strlen(want), "warned \"%s\"", w.first);
	config_free(c);

	w.n = 0;
	c = load("[link]\nlisten = [::]:7000\n[a]\nconnect = 127.0.0.1:1\n");
	ck_assert_uint_eq(config_check_names(c, note_warning, &w), 0);
	ck_assert_uint_eq(w.n, 0);
	config_free(c);
}
END_TEST

/* The fuzzer's seeds: valid-*.conf load, invalid-*.conf do not. */
START_TEST(test_corpus)
{
	struct config *c;
	struct dirent *de;
	DIR *d;
	char path[512], err[512];
	int valid, n = 0;

	ck_assert_ptr_nonnull(d = opendir(CORPUS));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		valid = (strncmp(de->d_name, "valid-", 6) == 0);
		ck_assert_msg(valid || strncmp(de->d_name, "invalid-", 8) == 0,
		    "%s: name it valid-* or invalid-*", de->d_name);
		snprintf(path, sizeof(path), CORPUS "/%s", de->d_name);
		c = NULL;
		ck_assert_msg((config_load(path, &c, err, sizeof(err)) == 0) ==
		    valid, "%s: %s", path, valid ? err : "loaded");
		config_free(c);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 4);
}
END_TEST

START_TEST(test_parse_addr)
{
	static const struct {
		const char *s, *host, *port;
	} good[] = {
		{ "localhost:80", "localhost", "80" },
		{ "10.0.0.5:5432", "10.0.0.5", "5432" },
		{ "[::1]:80", "::1", "80" },
		{ "[fe80::1%eth0]:22", "fe80::1%eth0", "22" },
		{ "h:00065535", "h", "65535" },
	};
	static const char *const bad_addr[] = {
		"", "h", "h:", ":1", "h:0", "h:65536", "::1:80", "[::1]80",
		"[::1", "[]:1", "h:1 ", " h:1", "h:0x10"
	};
	struct config_addr a;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_int_eq(config_parse_addr(good[i].s, &a), 0);
		assert_addr(&a, good[i].host, good[i].port);
		config_addr_free(&a);
		assert_addr(&a, NULL, NULL);
	}
	for (i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		a.host = a.port = NULL;
		errno = 0;
		ck_assert_msg(config_parse_addr(bad_addr[i], &a) == -1, "%s",
		    bad_addr[i]);
		ck_assert_int_eq(errno, EINVAL);
		assert_addr(&a, NULL, NULL);
	}
}
END_TEST

START_TEST(test_parse_numbers)
{
	uint64_t n;

	ck_assert_int_eq(config_parse_duration("0ms", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(config_parse_duration("500ms", &n), 0);
	ck_assert_uint_eq(n, 500);
	ck_assert_int_eq(config_parse_duration("30s", &n), 0);
	ck_assert_uint_eq(n, 30000);
	ck_assert_int_eq(config_parse_duration("5m", &n), 0);
	ck_assert_uint_eq(n, 300000);
	ck_assert_int_eq(config_parse_duration("1h", &n), 0);
	ck_assert_uint_eq(n, 3600000);
	ck_assert_int_eq(config_parse_duration("18446744073709551615ms", &n),
	    0);
	ck_assert_uint_eq(n, UINT64_MAX);
	errno = 0;
	ck_assert_int_eq(config_parse_duration("18446744073709551616ms", &n),
	    -1);
	ck_assert_int_eq(errno, ERANGE);
	errno = 0;
	ck_assert_int_eq(config_parse_duration("18446744073709552s", &n), -1);
	ck_assert_int_eq(errno, ERANGE);
	errno = 0;
	ck_assert_int_eq(config_parse_duration("30", &n), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(config_parse_duration("", &n), -1);
	ck_assert_int_eq(errno, EINVAL);

	ck_assert_int_eq(config_parse_size("300", &n), 0);
	ck_assert_uint_eq(n, 300);
	ck_assert_int_eq(config_parse_size("256k", &n), 0);
	ck_assert_uint_eq(n, 262144);
	ck_assert_int_eq(config_parse_size("16m", &n), 0);
	ck_assert_uint_eq(n, 16777216);
	errno = 0;
	ck_assert_int_eq(config_parse_size("16g", &n), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(config_parse_size("17592186044416m", &n), -1);
	ck_assert_int_eq(errno, ERANGE);
}
END_TEST

START_TEST(test_service_name)
{
	char name[256];

	memset(name, 'a', sizeof(name));
	ck_assert_int_eq(config_valid_service_name("postgres", 8), 1);
	ck_assert_int_eq(config_valid_service_name("A-z_0.9", 7), 1);
	ck_assert_int_eq(config_valid_service_name(name, 255), 1);
	ck_assert_int_eq(config_valid_service_name(name, 256), 0);
	ck_assert_int_eq(config_valid_service_name("", 0), 0);
	ck_assert_int_eq(config_valid_service_name("a/b", 3), 0);
	ck_assert_int_eq(config_valid_service_name("a b", 3), 0);
	ck_assert_int_eq(config_valid_service_name("a\0b", 3), 0);
	ck_assert_int_eq(config_valid_service_name("ok/", 2), 1);
}
END_TEST

START_TEST(test_service_find)
{
	struct config *c;
	const struct config_service *s;

	c = load(LINK "[postgres]\naccept = 127.0.0.1:5432\n"
	    "[post]\nconnect = 10.0.0.1:1\n[postgres2]\nconnect = h:2\n");
	ck_assert_ptr_nonnull(s = config_service_find(c, "postgresXYZ", 8));
	ck_assert_str_eq(s->name, "postgres");
	ck_assert_ptr_nonnull(s = config_service_find(c, "post", 4));
	ck_assert_str_eq(s->name, "post");
	ck_assert_ptr_nonnull(s = config_service_find(c, "postgres2", 9));
	ck_assert_str_eq(s->name, "postgres2");
	ck_assert_ptr_null(config_service_find(c, "pos", 3));
	ck_assert_ptr_null(config_service_find(c, "postgres\0", 9));
	ck_assert_ptr_null(config_service_find(c, "link", 4));
	ck_assert_ptr_null(config_service_find(c, "", 0));
	config_free(c);
}
END_TEST

/* config_service_equal on the services named ${name} in ${a} and ${b}. */
static int
same(const struct config *a, const struct config *b, const char *name)
{
	size_t len = strlen(name);

	return (config_service_equal(config_service_find(a, name, len),
	    config_service_find(b, name, len)));
}

/* Compare services across two loads, as a reload does. */
START_TEST(test_service_equal)
{
	struct config *a, *b;

	a = load(LINK "[x]\naccept = 127.0.0.1:1\n[y]\nconnect = h:2\n"
	    "[z]\naccept = [::1]:3\nconnect = h:3\n");
	b = load("[link]\nlisten = 0.0.0.0:9\n"
	    "[z]\naccept = [::1]:3 ; moved\nconnect = h:03\n"
	    "[x]\naccept = 127.0.0.1:1\nconnect = h:1\n"
	    "[y]\naccept = h:2\n");
	ck_assert_int_ne(same(a, b, "z"), 0);
	ck_assert_int_ne(same(a, a, "z"), 0);
	ck_assert_int_eq(same(a, b, "x"), 0);
	ck_assert_int_eq(same(a, b, "y"), 0);
	ck_assert_int_eq(config_service_equal(config_service_find(a, "x", 1),
	    config_service_find(a, "y", 1)), 0);
	config_free(a);
	config_free(b);
	config_free(NULL);

	/* The PROXY protocol and the rate limit count too. */
	a = load(LINK "[p]\nconnect = h:1\n[r]\naccept = h:2\n");
	b = load(LINK "[p]\nconnect = h:1\nproxy_protocol = v1\n"
	    "[r]\naccept = h:2\nrate_limit = 5\n");
	ck_assert_int_eq(same(a, b, "p"), 0);
	ck_assert_int_eq(same(a, b, "r"), 0);
	config_free(a);
	config_free(b);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_loop_test(tc, test_errors, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_tls_pin);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_short_err);
	tcase_add_test(tc, test_shipped);
	tcase_add_test(tc, test_key_line);
	tcase_add_test(tc, test_listeners_apart);
	tcase_add_test(tc, test_check_names);
	tcase_add_test(tc, test_corpus);
	tcase_add_test(tc, test_parse_addr);
	tcase_add_test(tc, test_parse_numbers);
	tcase_add_test(tc, test_service_name);
	tcase_add_test(tc, test_service_find);
	tcase_add_test(tc, test_service_equal);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr;
	const char *t = getenv("TMPDIR");
	char path[128];
	int failed;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
	    (t != NULL && strlen(t) < 32) ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	snprintf(path, sizeof(path), "%s/mxd.conf", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return (failed != 0);
}
