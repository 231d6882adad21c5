/*
 * proxy: the PROXY protocol header (haproxy's proxy-protocol.txt, versions
 * 1 and 2) that tells a target such as nginx or haproxy the address of the
 * client a channel carries, sent before the channel's first byte.
 */
#ifndef MXD_PROXY_H
#define MXD_PROXY_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"	/* enum proxy_version */

/* The longest header: version 1 with two IPv6 addresses is 104 bytes. */
#define PROXY_MAX	108

/*
 * Write into ${buf} (PROXY_MAX bytes) the header of ${version} for a
 * connection from ${src} to ${dst}, and return its length.  If either
 * address is not AF_INET or AF_INET6 the header says the addresses are
 * unknown; if the families differ, the IPv4 one is given as IPv4-mapped
 * IPv6.
 */
size_t proxy_encode(enum proxy_version version, const struct sockaddr *src,
    const struct sockaddr *dst, uint8_t *buf);

/*
 * Send the header of ${version} on ${fd}, a new connection to a target, for
 * a client at ${src}; the destination is the target's address.  Returns 0,
 * or -1 with errno set (EAGAIN if the socket did not take it at once).
 */
int proxy_send(int fd, enum proxy_version version,
    const struct sockaddr *src);

#endif /* !MXD_PROXY_H */
