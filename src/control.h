/*
 * control: the Unix socket `mxd status` asks (config_control_path: by
 * default /run/mxd/STEM/control.sock, the units' RuntimeDirectory=).  A
 * client sends one line, "text" or "json", and gets the status report
 * (status.h) in that form; then the socket is closed.  The socket is mode
 * 0600 (root and the service's user: control_chown after privileges are
 * dropped), at most CONTROL_CLIENTS are served at once, and a client has
 * CONTROL_TIMEOUT_MS to send its line and take the answer.
 */
#ifndef MXD_CONTROL_H
#define MXD_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

struct control;
struct daemon;

/*
 * Listen on the control socket of ${d}'s configuration.  A stale socket of
 * an mxd that is gone is replaced; one that answers belongs to another mxd
 * with this configuration.  Returns the control socket, or NULL: with
 * control = off, or when the default path cannot be used (logged: mxd
 * status then will not answer, and mxd runs on), with ${err}[0] == '\0';
 * or when a path the file sets cannot be used, with a message in ${err}
 * (size ${errlen}), which should stop the start.
 */
struct control *control_new(struct daemon *d, char *err, size_t errlen);

/* Give the socket of ${c} to user ${uid} and group ${gid} (the account
 * mxd runs as from now on).  Returns 0, or -1 (logged).  NULL is ok. */
int control_chown(struct control *c, uid_t uid, gid_t gid);

/* Close ${c}, its clients and its socket file.  NULL is ok. */
void control_free(struct control *c);

#endif
