/*
 * control: see control.h.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "dial.h"
#include "log.h"
#include "ms.h"
#include "status.h"

/* What one client may take: see control.h. */
#define CONTROL_CLIENTS		8
#define CONTROL_TIMEOUT_MS	2000
#define CONTROL_LINE_MAX	64

struct client {
	struct control	*c;
	struct bufferevent *bev;
	struct client	*prev, *next;
};

struct control {
	struct daemon	*d;
	struct listener	*ls;
	char		path[CONFIG_CONTROL_MAX];
	int		is_default;	/* not set by [daemon] control */
	dev_t		dev;		/* the socket file we bound, so that */
	ino_t		ino;		/* we remove no one else's */
	struct client	*clients;
	unsigned	nclients;
};

/* Close client ${cl}. */
static void
client_free(struct client *cl)
{
	struct control *c = cl->c;

	*(cl->prev != NULL ? &cl->prev->next : &c->clients) = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	c->nclients--;
	bufferevent_free(cl->bev);
	free(cl);
}

/* bufferevent: the answer to ${arg} is written: done. */
static void
client_written_cb(struct bufferevent *bev, void *arg)
{

	(void)bev;
	client_free(arg);
}

/* bufferevent: EOF, an error or the deadline on client ${arg}. */
static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{

	(void)bev;
	(void)what;
	client_free(arg);
}

/* bufferevent: client ${arg} sent something: answer its line. */
static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t n;
	char *line;

	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			client_free(cl);
		return;
	}
	if (strcmp(line, "text") == 0 || strcmp(line, "json") == 0)
		status_report(cl->c->d, line[0] == 'j', out);
	else
		evbuffer_add_printf(out, "unknown request (text or json)\n");
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, client_written_cb, client_event_cb, cl);
}

/* evconnlistener: a client of ${arg} connected on ${fd}. */
static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *c = arg;
	struct timeval tv = ms_timeval(CONTROL_TIMEOUT_MS);
	struct client *cl;

	(void)evl;
	(void)sa;
	(void)salen;
	listener_accepted(c->ls);
	if (c->nclients >= CONTROL_CLIENTS) {
		log_debug("control: %u clients already: closing a new one",
		    c->nclients);
		goto err0;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		goto err0;
	if ((cl->bev = bufferevent_socket_new(c->d->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto err1;
	cl->c = c;
	bufferevent_setcb(cl->bev, client_read_cb, NULL, client_event_cb, cl);
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CONTROL_LINE_MAX + 1);
	bufferevent_set_timeouts(cl->bev, &tv, &tv);
	if (bufferevent_enable(cl->bev, EV_READ))
		goto err2;
	cl->next = c->clients;
	if (cl->next != NULL)
		cl->next->prev = cl;
	c->clients = cl;
	c->nclients++;
	return;

err2:
	bufferevent_free(cl->bev);
	free(cl);
	return;
err1:
	free(cl);
err0:
	close(fd);
}

/* 1 if something answers on Unix socket ${sun}: an mxd that runs. */
static int
control_answers(const struct sockaddr_un *sun)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return (0);
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return (rc == 0);
}

/*
 * Bind a Unix socket at ${c}'s path, mode 0600, replacing a stale one.
 * Returns the socket, or -1 with a message in ${err} (size ${errlen}).
 */
static int
control_bind(struct control *c, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t mask;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		goto fail;
	mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (rc != 0 && errno == EADDRINUSE) {
		if (control_answers(&sun)) {
			umask(mask);
			snprintf(err, errlen, "another mxd with this "
			    "configuration answers on it");
			close(fd);
			return (-1);
		}
		/* Left by an mxd that was killed. */
		(void)unlink(c->path);
		rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	}
	umask(mask);
	if (rc != 0 || stat(c->path, &st) != 0)
		goto fail;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return (fd);

fail:
	snprintf(err, errlen, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return (-1);
}

/* Make the directory of the default path ${path}: /run/mxd, then its own,
 * mode 0700 (systemd has made them when it runs mxd). */
static void
control_mkdir(const char *path)
{
	char dir[CONFIG_CONTROL_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		return;
	*slash = '\0';
	(void)mkdir("/run/mxd", 0755);
	(void)mkdir(dir, 0700);
}

struct control *
control_new(struct daemon *d, char *err, size_t errlen)
{
	struct evconnlistener *evl;
	struct control *c;
	char why[256];
	int fd;

	err[0] = '\0';
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "control: out of memory");
		goto err0;
	}
	c->d = d;
	if (config_control_path(d->cfg, c->path, sizeof(c->path)))
		goto err1;
	c->is_default = d->cfg->control == NULL;
	if (c->is_default)
		control_mkdir(c->path);
	if ((fd = control_bind(c, why, sizeof(why))) < 0)
		goto fail;
	if ((evl = evconnlistener_new(d->base, accept_cb, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, CONTROL_CLIENTS,
	    fd)) == NULL) {
		close(fd);
		snprintf(why, sizeof(why), "%s", strerror(errno));
		goto fail_bound;
	}
	if ((c->ls = listener_adopt(d->base, evl, "control")) == NULL) {
		evconnlistener_free(evl);
		snprintf(why, sizeof(why), "out of memory");
		goto fail_bound;
	}
	log_debug("control: listening on %s", c->path);
	return (c);

fail_bound:
	(void)unlink(c->path);
fail:
	if (c->is_default)
		log_warn("control: cannot listen on %s: %s (mxd status will "
		    "not answer; [daemon] control sets another path)",
		    c->path, why);
	else
		snprintf(err, errlen, "control: cannot listen on %s: %s",
		    c->path, why);
err1:
	free(c);
err0:
	return (NULL);
}

int
control_chown(struct control *c, uid_t uid, gid_t gid)
{
	char dir[CONFIG_CONTROL_MAX];
	char *slash;

	if (c == NULL)
		return (0);
	if (chown(c->path, uid, gid) != 0) {
		log_error("control: %s: %s", c->path, strerror(errno));
		return (-1);
	}
	/* The default directory is mxd's own: its user must reach into it. */
	snprintf(dir, sizeof(dir), "%s", c->path);
	if (c->is_default && (slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (chown(dir, uid, gid) != 0) {
			log_error("control: %s: %s", dir, strerror(errno));
			return (-1);
		}
	}
	return (0);
}

void
control_free(struct control *c)
{
	struct stat st;

	if (c == NULL)
		return;
	while (c->clients != NULL)
		client_free(c->clients);
	listener_free(c->ls);
	/* Unless another mxd has taken the path since. */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		(void)unlink(c->path);
	free(c);
}
