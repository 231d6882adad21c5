/*
 * status: what `mxd status` shows of a running mxd: the link (state and
 * since when, the peer, TLS version and key or plain, round trip,
 * resumption) and per service the channels open, opened and refused and
 * the bytes each way.  The daemon writes the report (status_report, asked
 * over the control socket, control.h); the command asks for it and prints
 * it (status_main).
 */
#ifndef MXD_STATUS_H
#define MXD_STATUS_H

struct daemon;
struct evbuffer;

/* Append the status of ${d} to ${out}: for a person, or as one JSON
 * object if ${json}. */
void status_report(const struct daemon *d, int json, struct evbuffer *out);

/* mxd status [-c FILE] [--json]: ${argc} and ${argv} from "status" on.
 * Returns the exit code: 0, 1 if no mxd answered, 2 on bad usage. */
int status_main(int argc, char *argv[], const char *default_config);

#endif
