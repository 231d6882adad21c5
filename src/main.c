/*
 * mxd: carry many TCP connections as channels over one link to a peer mxd.
 *
 * Exit codes: 0 clean exit (including after SIGTERM and -t with a good
 * configuration), 1 bad configuration or failure to start, 2 bad usage.
 */
#include <sys/resource.h>
#include <sys/types.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "keygen.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "ms.h"
#include "notify.h"
#include "relay.h"
#include "service.h"
#include "status.h"
#include "tls.h"

#define DEFAULT_CONFIG	"/etc/mxd/mxd.conf"
/* How often a draining daemon checks for open channels. */
#define DRAIN_CHECK_MS	100
/* ... and, once none is left, how often whether the Go Away is out. */
#define FLUSH_CHECK_MS	5
/* How often systemd's STATUS= line is refreshed. */
#define STATUS_MS	2000

static void
usage(FILE *f)
{

	fprintf(f,
	    "usage: mxd [-c FILE] [-t] [-v] [-V] [-h]\n"
	    "       mxd status [-c FILE] [--json]\n"
	    "       mxd keygen [-f] DIR\n"
	    "  -c, --config FILE  configuration file (default "
	    DEFAULT_CONFIG ")\n"
	    "  -t, --test         check the configuration and exit (0 good, "
	    "1 bad)\n"
	    "  -v, --verbose      more logging (debug)\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         this help\n"
	    "  status             the link and the services of the mxd "
	    "running with FILE\n"
	    "  keygen             a TLS key and certificate in DIR; prints "
	    "the key's pin\n");
}

/* Raise the soft descriptor limit to the hard one: each channel needs one. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("cannot raise the descriptor limit: %s",
			    strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("descriptor limit %ju (at most about that many "
		    "channels)", (uintmax_t)rl.rlim_cur);
}

/*
 * Keep freed buffer memory for reuse rather than give it back to the kernel
 * at once.  Link reads fill 512 KiB evbuffer chains; by default glibc maps
 * each chain on its own or trims the heap beneath it as soon as it is free,
 * and a busy link then spends a quarter of its CPU faulting the same pages
 * back in (docs/PERFORMANCE.md).  At most M_TRIM_THRESHOLD is kept unused,
 * and status_cb gives back what is free every STATUS_MS; the heap grows
 * M_TOP_PAD at a time (fewer brk calls per connection).
 */
static void
tune_malloc(void)
{

	if (mallopt(M_MMAP_THRESHOLD, 1024 * 1024) != 1 ||
	    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024) != 1 ||
	    mallopt(M_TOP_PAD, 1024 * 1024) != 1)
		log_warn("mallopt failed: default allocator settings");
}

/*
 * The account [daemon] user of ${cfg} names, or NULL with a message in
 * ${err} (size ${errlen}) if there is none, or it is root.
 */
static struct passwd *
lookup_user(const struct config *cfg, char *err, size_t errlen)
{
	struct passwd *pw;

	if ((pw = getpwnam(cfg->user)) == NULL)
		snprintf(err, errlen, "%s: [daemon] user: no such user \"%s\"",
		    cfg->path, cfg->user);
	else if (pw->pw_uid == 0)
		snprintf(err, errlen, "%s: [daemon] user: \"%s\" is root",
		    cfg->path, cfg->user);
	return (pw == NULL || pw->pw_uid == 0 ? NULL : pw);
}

/* config_check_names: print warning ${msg} (${arg} unused). */
static void
warn_name(void *arg, const char *msg)
{

	(void)arg;
	fprintf(stderr, "mxd: warning: %s\n", msg);
}

/*
 * Check, for -t, what ${cfg} names outside itself: host names (a name that
 * does not resolve is only warned about: DNS may come later), the user,
 * and the TLS files (loaded as at start).  Returns 0, or -1 with a message
 * in ${err} (size ${errlen}).
 */
static int
check_outside(const struct config *cfg, char *err, size_t errlen)
{
	char why[400];
	SSL_CTX *ctx;

	(void)config_check_names(cfg, warn_name, NULL);
	if (cfg->user != NULL && lookup_user(cfg, err, errlen) == NULL)
		return (-1);
	if (!cfg->tls)
		return (0);
	if ((ctx = tls_ctx_new(cfg, why, sizeof(why))) == NULL) {
		/* why begins with the key: tls_cert, tls_key, ... */
		snprintf(err, errlen, "%s:%d: [link] %s", cfg->path,
		    config_key_line(cfg, why), why);
		return (-1);
	}
	SSL_CTX_free(ctx);
	return (0);
}

/*
 * If started as root with [daemon] user in ${cfg}, become that user for
 * good, now that every listener is bound: its groups, then its group and
 * user ids; then make sure root cannot be regained.  Returns 0, or -1
 * (logged).
 */
static int
drop_privileges(const struct config *cfg, struct control *control)
{
	struct passwd *pw;
	char err[512];
	uid_t uid;
	gid_t gid;

	if (cfg->user == NULL)
		return (0);
	if ((pw = lookup_user(cfg, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		return (-1);
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (geteuid() == 0 && control_chown(control, uid, gid))
		return (-1);
	if (geteuid() != 0) {
		if (geteuid() != uid)
			log_warn("[daemon] user %s: not started as root, so "
			    "running on as uid %u", cfg->user,
			    (unsigned)geteuid());
		return (0);
	}
	if (initgroups(cfg->user, gid) != 0 || setgid(gid) != 0 ||
	    setuid(uid) != 0) {
		log_error("[daemon] user %s: %s", cfg->user, strerror(errno));
		return (-1);
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1 ||
	    getuid() == 0 || geteuid() == 0 || getgid() == 0 ||
	    getegid() == 0) {
		log_error("[daemon] user %s: root privileges could be "
		    "regained", cfg->user);
		return (-1);
	}
	log_info("running as user %s (uid %u, gid %u)", cfg->user,
	    (unsigned)uid, (unsigned)gid);
	return (0);
}

/* State of the running process, for the signal handlers. */
struct mxd {
	struct daemon	d;
	const char	*path;
	int		verbose;
	struct event	*drain_ev;
	struct event	*status_ev;
	struct metrics	*metrics;
	struct control	*control;
	uint64_t	drain_deadline_ms;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* status_ev: refresh the one-line status systemctl status shows, write
 * the summaries of rate-limited log lines, and give free memory back to
 * the kernel. */
static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mxd *x = arg;
	char buf[200];

	(void)fd;
	(void)what;
	link_status(x->d.link, buf, sizeof(buf));
	notify_status("%s%s", x->d.draining ? "draining: " : "", buf);
	log_flush_limits();
	/* Free memory goes back to the kernel now and then, not at every
	 * free (tune_malloc): a burst's buffers do not stay resident. */
	(void)malloc_trim(0);
}

/*
 * SIGUSR2, only with MXD_TEST_HOOKS=1 in the environment: hang the event
 * loop, so that tests can watch the systemd watchdog restart mxd.
 */
static void
hang_cb(evutil_socket_t sig, short what, void *arg)
{

	(void)sig;
	(void)what;
	(void)arg;
	log_warn("SIGUSR2 with MXD_TEST_HOOKS: hanging the event loop");
	for (;;)
		pause();
}

/* SIGHUP: load the file again; a bad one leaves the running one in force. */
static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct mxd *x = arg;
	struct config *cfg;
	char err[512];

	(void)sig;
	(void)what;
	if (x->d.draining)
		return;
	notify_state("RELOADING=1");
	if (config_load(x->path, &cfg, err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: "
		    "%s", err);
		notify_state("READY=1");
		return;
	}
	if ((cfg->control == NULL) != (x->d.cfg->control == NULL) ||
	    (cfg->control != NULL && strcmp(cfg->control,
	    x->d.cfg->control) != 0))
		log_warn("reload: [daemon] control changes at the next "
		    "start");
	if (link_reload(x->d.link, cfg, err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: "
		    "%s: [link] %s", x->path, err);
		config_free(cfg);
		notify_state("READY=1");
		return;
	}
	if (service_table_apply(&x->d, cfg))
		log_error("reload: some services could not start (see above)");
	config_free(x->d.cfg);
	x->d.cfg = cfg;
	if (!x->verbose)
		log_set_level(cfg->log_level);
	log_info("reloaded %s", x->path);
	notify_state("READY=1");
}

/* drain_ev: exit once no channel is left, or drain_timeout has passed. */
static void
drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mxd *x = arg;
	uint32_t left = link_channels(x->d.link);
	struct timeval tv;

	(void)fd;
	(void)what;
	if (left == 0 && link_flushed(x->d.link)) {
		log_info("drained: exiting");
		event_base_loopexit(x->d.base, NULL);
	} else if (now_ms() >= x->drain_deadline_ms) {
		log_warn("drain_timeout: exiting with %u channels open", left);
		event_base_loopexit(x->d.base, NULL);
	} else if (left == 0) {
		/* Only the Go Away is still on its way out (a loop pass or
		 * two): look again soon, so that the peer learns we left on
		 * purpose rather than finding the link closed. */
		tv = ms_timeval(FLUSH_CHECK_MS);
		event_add(x->drain_ev, &tv);
	}
}

/* SIGTERM, SIGINT: stop accepting, Go Away, let channels finish. */
static void
terminate_cb(evutil_socket_t sig, short what, void *arg)
{
	struct mxd *x = arg;
	struct timeval tv = { 0, DRAIN_CHECK_MS * 1000 };

	(void)what;
	if (x->d.draining) {
		log_warn("signal %d again: exiting now", (int)sig);
		event_base_loopexit(x->d.base, NULL);
		return;
	}
	x->d.draining = 1;
	notify_state("STOPPING=1");
	/* Listeners close before the line says so: whoever reads it can
	 * count on new connections being refused. */
	service_stop_listening(&x->d);
	log_info("SIG%s: draining %u channels (drain_timeout %s)",
	    sigabbrev_np(sig), link_channels(x->d.link),
	    fmt_duration(x->d.cfg->drain_timeout_ms).s);
	x->drain_deadline_ms = now_ms() + x->d.cfg->drain_timeout_ms;
	link_drain(x->d.link);
	event_add(x->drain_ev, &tv);
	drain_check_cb(-1, 0, x);
}

/* The link's channels: services route the peer's streams, relays carry
 * them (the link knows neither). */
static const struct link_upcalls channels = {
	.stream_open = service_stream_open,
	.on_stream_readable = relay_on_readable,
	.on_stream_writable = relay_on_writable,
	.on_stream_pull = relay_on_pull,
	.on_stream_close = relay_on_close,
	.buffered = relay_buffered,
};

int
main(int argc, char *argv[])
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR2 };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct event *sigev[4] = { NULL, NULL, NULL, NULL };
	struct timeval status_tv = { STATUS_MS / 1000, 0 };
	struct mxd x;
	int ch, test = 0, rc = 1;
	char err[512];
	size_t i;

	/* Subcommands come first, with options of their own. */
	if (argc > 1 && strcmp(argv[1], "keygen") == 0)
		return (keygen_main(argc - 1, argv + 1));
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return (status_main(argc - 1, argv + 1, DEFAULT_CONFIG));
	memset(&x, 0, sizeof(x));
	x.path = DEFAULT_CONFIG;
	while ((ch = getopt_long(argc, argv, "c:tvVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			x.path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			x.verbose = 1;
			break;
		case 'V':
			printf("mxd %s\n", MXD_VERSION);
			return (0);
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (2);
	}

	if (config_load(x.path, &x.d.cfg, err, sizeof(err))) {
		fprintf(stderr, "mxd: %s\n", err);
		return (1);
	}
	if (test) {
		rc = check_outside(x.d.cfg, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "mxd: %s\n", err);
		else
			printf("mxd: %s: configuration OK\n", x.path);
		config_free(x.d.cfg);
		return (rc != 0);
	}
	log_set_level(x.verbose ? LOG_DEBUG : x.d.cfg->log_level);
	log_libevent();
	log_info("mxd %s starting with %s", MXD_VERSION, x.path);
	x.d.started = time(NULL);
	raise_nofile();
	tune_malloc();
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(time(NULL) ^ getpid()));

	if ((x.d.base = event_base_new()) == NULL)
		goto err0;
	/* No resolv.conf is no reason not to run: literal addresses work. */
	if ((x.d.dns = evdns_base_new(x.d.base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL &&
	    (x.d.dns = evdns_base_new(x.d.base, 0)) == NULL)
		goto err1;
	for (i = 0; i < 4; i++) {
		if (sigs[i] == SIGUSR2 && getenv("MXD_TEST_HOOKS") == NULL)
			continue;
		sigev[i] = evsignal_new(x.d.base, sigs[i],
		    sigs[i] == SIGHUP ? reload_cb : sigs[i] == SIGUSR2 ?
		    hang_cb : terminate_cb, &x);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL))
			goto err2;
	}
	if ((x.drain_ev = event_new(x.d.base, -1, EV_PERSIST, drain_check_cb,
	    &x)) == NULL)
		goto err2;
	if ((x.status_ev = event_new(x.d.base, -1, EV_PERSIST, status_cb,
	    &x)) == NULL || event_add(x.status_ev, &status_tv) ||
	    notify_start(x.d.base))
		goto err3;
	if (service_table_apply(&x.d, x.d.cfg))
		goto err3;
	if ((x.d.link = link_new(&x.d, &channels)) == NULL)
		goto err3;
	if (x.d.cfg->metrics.host != NULL &&
	    (x.metrics = metrics_new(&x.d)) == NULL)
		goto err4;
	if ((x.control = control_new(&x.d, err, sizeof(err))) == NULL &&
	    err[0] != '\0') {
		log_error("%s", err);
		goto err5;
	}
	if (drop_privileges(x.d.cfg, x.control))
		goto err5;
	notify_state("READY=1");
	status_cb(-1, 0, &x);

	event_base_dispatch(x.d.base);
	rc = 0;

err5:
	control_free(x.control);
	metrics_free(x.metrics);
err4:
	link_free(x.d.link);
err3:
	service_table_free(&x.d);
	notify_stop();
	if (x.status_ev != NULL)
		event_free(x.status_ev);
	event_free(x.drain_ev);
err2:
	for (i = 0; i < 4; i++)
		if (sigev[i] != NULL)
			event_free(sigev[i]);
	evdns_base_free(x.d.dns, 0);
err1:
	event_base_free(x.d.base);
err0:
	if (rc != 0)
		log_error("cannot start: exiting");
	config_free(x.d.cfg);
	return (rc);
}
