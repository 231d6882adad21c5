/*
 * svchdr: the service header that begins every stream's data (see
 * docs/PROTOCOL.md): u8 N, N bytes of service name, u16 M, M bytes of TLV
 * records.  Record type 1 is the original client's address.
 */
#ifndef MXD_SVCHDR_H
#define MXD_SVCHDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct evbuffer;

#define SVCHDR_TLV_CLIENT_ADDR	1

struct svchdr {
	char	name[256];		/* NUL-terminated */
	size_t	namelen;
	struct sockaddr_storage client;	/* ss_family 0 if not sent */
};

/*
 * Append the header for service ${name} with client address ${client}
 * (NULL or not AF_INET/AF_INET6: none) to ${out}.  Returns 0 or -1.
 */
int svchdr_write(struct evbuffer *out, const char *name,
    const struct sockaddr *client);

/*
 * Try to parse a header at the start of ${in}.  Returns the header's length
 * (and fills ${h}) once it is complete, 0 if more bytes are needed, or -1 if
 * it is malformed (bad name, bad client address record).  Consumes nothing.
 */
long svchdr_parse(struct evbuffer *in, struct svchdr *h);

#endif
