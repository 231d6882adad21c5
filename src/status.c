/*
 * status: see status.h.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "link.h"
#include "log.h"
#include "relay.h"
#include "service.h"
#include "status.h"

/* How long mxd status waits for the answer. */
#define STATUS_WAIT_MS	5000

static const char *const state_names[] = {
	[LINK_DOWN] = "down", [LINK_UP] = "up", [LINK_RESUMING] = "resuming"
};

/* ${n} bytes for a person: "512 B", "1.2 MB" (powers of 1000). */
static struct log_duration
fmt_bytes(uint64_t n)
{
	static const char *const units[] = { "kB", "MB", "GB", "TB", "PB" };
	struct log_duration d;
	double v = (double)n;
	size_t i;

	if (n < 1000) {
		snprintf(d.s, sizeof(d.s), "%ju B", (uintmax_t)n);
		return (d);
	}
	for (i = 0, v /= 1000; v >= 1000 && i < 4; i++)
		v /= 1000;
	snprintf(d.s, sizeof(d.s), "%.1f %s", v, units[i]);
	return (d);
}

/* Append ${s} to ${out} as a JSON string (NULL: null). */
static void
json_str(struct evbuffer *out, const char *s)
{

	if (s == NULL) {
		evbuffer_add_printf(out, "null");
		return;
	}
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add_printf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			evbuffer_add_printf(out, "\\u%04x", (unsigned char)*s);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* The link part of the report of ${d}, for a person, into ${out}. */
static void
report_link_text(const struct daemon *d, const struct link_info *in,
    const struct link_stats *st, struct evbuffer *out)
{
	const struct config *cfg = d->cfg;

	evbuffer_add_printf(out, "link:        %s for %s (%s %s)\n",
	    state_names[in->state], fmt_age(in->since_s).s, in->listening ?
	    "listens on" : "dials", log_addr(cfg->link_addr.host,
	    cfg->link_addr.port).s);
	if (in->peer[0] != '\0')
		evbuffer_add_printf(out, "peer:        %s, %s%s%s\n", in->peer,
		    in->tls != NULL ? in->tls : "plain (not encrypted)",
		    in->pin[0] != '\0' ? ", key " : "", in->pin);
	if (in->state == LINK_UP && st->rtt_us > 0)
		evbuffer_add_printf(out, "round trip:  %.2f ms\n",
		    st->rtt_us / 1e3);
	if (cfg->resume_timeout_ms == 0)
		evbuffer_add_printf(out, "resumption:  off\n");
	else
		evbuffer_add_printf(out, "resumption:  %s%u channels held; "
		    "%ju resumed, %ju failed, %s re-sent (resume_timeout %s)\n",
		    in->state == LINK_RESUMING ? "RESUMING, " : "", in->held,
		    (uintmax_t)st->resumptions, (uintmax_t)st->resume_failures,
		    fmt_bytes(st->resent).s,
		    fmt_duration(cfg->resume_timeout_ms).s);
	evbuffer_add_printf(out, "channels:    %u open, %u connecting to "
	    "targets, %s buffered\n", st->channels, st->pending,
	    fmt_bytes(st->buffered).s);
}

/* The services part of the report of ${d}, for a person, into ${out}. */
static void
report_services_text(const struct daemon *d, struct evbuffer *out)
{
	const struct service *svc;
	int w = 7;

	for (svc = d->services; svc != NULL; svc = svc->next)
		if ((int)strlen(svc->name) > w)
			w = (int)strlen(svc->name);
	evbuffer_add_printf(out, "\n%-*s %6s %9s %8s %8s %10s %10s\n", w,
	    "service", "open", "opened", "refused", "by peer", "received",
	    "sent");
	for (svc = d->services; svc != NULL; svc = svc->next)
		evbuffer_add_printf(out, "%-*s %6ju %9ju %8ju %8ju %10s %10s\n",
		    w, svc->name, (uintmax_t)svc->st->open,
		    (uintmax_t)svc->st->opened, (uintmax_t)svc->st->refused,
		    (uintmax_t)svc->st->refused_by_peer,
		    fmt_bytes(svc->st->bytes_in).s,
		    fmt_bytes(svc->st->bytes_out).s);
}

/* The report of ${d} as JSON into ${out}. */
static void
report_json(const struct daemon *d, const struct link_info *in,
    const struct link_stats *st, struct evbuffer *out)
{
	const struct config *cfg = d->cfg;
	const struct service *svc;

	evbuffer_add_printf(out, "{\"version\":");
	json_str(out, MXD_VERSION);
	evbuffer_add_printf(out, ",\"pid\":%ld,\"config\":", (long)getpid());
	json_str(out, cfg->path);
	evbuffer_add_printf(out, ",\"running_seconds\":%.0f,\"link\":{"
	    "\"state\":\"%s\",\"since_seconds\":%.3f,\"role\":\"%s\","
	    "\"address\":", difftime(time(NULL), d->started),
	    state_names[in->state], in->since_s, in->listening ? "listen" :
	    "connect");
	json_str(out, log_addr(cfg->link_addr.host, cfg->link_addr.port).s);
	evbuffer_add_printf(out, ",\"peer\":");
	json_str(out, in->peer[0] != '\0' ? in->peer : NULL);
	evbuffer_add_printf(out, ",\"tls\":");
	json_str(out, in->tls);
	evbuffer_add_printf(out, ",\"peer_pin\":");
	json_str(out, in->pin[0] != '\0' ? in->pin : NULL);
	evbuffer_add_printf(out, ",\"rtt_ms\":%.3f,\"channels\":%u,"
	    "\"pending\":%u,\"buffered_bytes\":%ju,\"resumption\":{"
	    "\"timeout_ms\":%ju,\"held\":%u,\"resumed\":%ju,\"failed\":%ju,"
	    "\"resent_bytes\":%ju}},\"services\":[", st->rtt_us / 1e3,
	    st->channels, st->pending, (uintmax_t)st->buffered,
	    (uintmax_t)cfg->resume_timeout_ms, in->held,
	    (uintmax_t)st->resumptions, (uintmax_t)st->resume_failures,
	    (uintmax_t)st->resent);
	for (svc = d->services; svc != NULL; svc = svc->next) {
		evbuffer_add_printf(out, "%s{\"name\":", svc == d->services ?
		    "" : ",");
		json_str(out, svc->name);
		evbuffer_add_printf(out, ",\"open\":%ju,\"opened\":%ju,"
		    "\"refused\":%ju,\"refused_by_peer\":%ju,"
		    "\"received_bytes\":%ju,\"sent_bytes\":%ju}",
		    (uintmax_t)svc->st->open, (uintmax_t)svc->st->opened,
		    (uintmax_t)svc->st->refused,
		    (uintmax_t)svc->st->refused_by_peer,
		    (uintmax_t)svc->st->bytes_in, (uintmax_t)svc->st->bytes_out);
	}
	evbuffer_add_printf(out, "]}\n");
}

void
status_report(const struct daemon *d, int json, struct evbuffer *out)
{
	struct link_info in;
	struct link_stats st;

	link_get_info(d->link, &in);
	link_get_stats(d->link, &st);
	if (json) {
		report_json(d, &in, &st, out);
		return;
	}
	evbuffer_add_printf(out, "mxd %s (pid %ld), %s, running %s%s\n",
	    MXD_VERSION, (long)getpid(), d->cfg->path,
	    fmt_age(difftime(time(NULL), d->started)).s, d->draining ?
	    ", draining" : "");
	report_link_text(d, &in, &st, out);
	report_services_text(d, out);
}

/*
 * Ask the mxd on control socket ${path} (of configuration ${conf}) for its
 * report (${json}) and copy it to stdout.  Returns 0, or 1 (said why).
 */
static int
status_ask(const char *conf, const char *path, int json)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	char buf[4096];
	const char *req = json ? "json\n" : "text\n";
	ssize_t n;
	int fd, got = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "mxd: status: no mxd is running with "
			    "%s (%s: %s)\n", conf, path, strerror(errno));
		else
			fprintf(stderr, "mxd: status: %s: %s%s\n", path,
			    strerror(errno), errno == EACCES ? " (run it as "
			    "root or as the service's user)" : "");
		goto fail;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto fail_io;
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, STATUS_WAIT_MS) != 1) {
			fprintf(stderr, "mxd: status: %s: no answer within "
			    "%d ms\n", path, STATUS_WAIT_MS);
			goto fail;
		}
		if ((n = read(fd, buf, sizeof(buf))) < 0)
			goto fail_io;
		if (n == 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		got = 1;
	}
	close(fd);
	if (!got)
		fprintf(stderr, "mxd: status: %s: closed without an answer\n",
		    path);
	return (got ? 0 : 1);

fail_io:
	fprintf(stderr, "mxd: status: %s: %s\n", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	return (1);
}

/* The usage line of mxd status, on ${f}. */
static void
usage(FILE *f)
{

	fprintf(f, "usage: mxd status [-c FILE] [--json]\n");
}

int
status_main(int argc, char *argv[], const char *default_config)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *conf = default_config;
	char path[CONFIG_CONTROL_MAX], err[512];
	struct config *cfg;
	int ch, json = 0;

	while ((ch = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
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
	if (config_load(conf, &cfg, err, sizeof(err))) {
		fprintf(stderr, "mxd: status: %s\n", err);
		return (1);
	}
	if (config_control_path(cfg, path, sizeof(path))) {
		fprintf(stderr, "mxd: status: %s: [daemon] control = off\n",
		    conf);
		config_free(cfg);
		return (1);
	}
	config_free(cfg);
	return (status_ask(conf, path, json));
}
