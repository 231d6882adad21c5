/*
 * forward: a service's accept side.  Each connection to its listener
 * becomes a channel to the peer's service of the same name, opened at once
 * (0-RTT: the first bytes travel right behind the SYN).
 */
#ifndef MXD_FORWARD_H
#define MXD_FORWARD_H

struct service;

/* Bind ${svc}'s accept address and start accepting.  Returns 0, or -1
 * (logged) if the address cannot be bound. */
int forward_listen(struct service *svc);

/* ${svc} took over a listener from its previous version: point it there. */
void forward_retarget(struct service *svc);

/* Stop accepting for ${svc} and free its listener. */
void forward_close(struct service *svc);

#endif
