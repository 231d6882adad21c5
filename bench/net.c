/*
 * net: see net.h.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

void
parse_addr(const char *prog, const char *s, struct sockaddr_in *sin)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		goto bad;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1)
		return;
bad:
	fprintf(stderr, "%s: bad address %s\n", prog, s);
	exit(2);
}

void
net_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
net_listen(struct sockaddr_in *sin, int flags, int backlog)
{
	socklen_t len = sizeof(*sin);
	int fd, one = 1, e;

	if ((fd = socket(AF_INET, SOCK_STREAM | flags, 0)) == -1)
		return (-1);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) ||
	    listen(fd, backlog) ||
	    getsockname(fd, (struct sockaddr *)sin, &len)) {
		e = errno;
		close(fd);
		errno = e;
		return (-1);
	}
	return (fd);
}
