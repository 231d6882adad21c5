/*
 * daemon: the state one mxd process runs on, shared by its modules.
 */
#ifndef MXD_DAEMON_H
#define MXD_DAEMON_H

#include <stdint.h>
#include <time.h>

struct config;
struct event_base;
struct evdns_base;
struct link;
struct service;

struct daemon {
	struct event_base *base;
	struct evdns_base *dns;
	struct config	*cfg;		/* the configuration in force */
	struct service	*services;	/* the services in force */
	struct link	*link;
	uint64_t	relays;		/* channels alive, all services */
	int		draining;	/* SIGTERM: finishing, then exit */
	time_t		started;	/* when, for mxd status */
};

#endif
