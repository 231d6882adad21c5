/*
 * proxy: see proxy.h.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

/* Version 2: the signature, then version 2 with the PROXY command. */
static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
#define V2_PROXY	0x21
#define V2_UNSPEC	0x00
#define V2_TCP4		0x11
#define V2_TCP6		0x21

/* One end of the connection, as the header gives it. */
struct end {
	int		family;		/* AF_INET, AF_INET6, or 0: unknown */
	uint8_t		addr[16];	/* 4 or 16 bytes, network order */
	uint16_t	port;
};

/* Fill ${e} from ${sa}. */
static void
end_set(struct end *e, const struct sockaddr *sa)
{

	memset(e, 0, sizeof(*e));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		e->family = AF_INET;
		memcpy(e->addr, &sin->sin_addr, 4);
		e->port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		e->family = AF_INET6;
		memcpy(e->addr, &sin6->sin6_addr, 16);
		e->port = ntohs(sin6->sin6_port);
	}
}

/* Make IPv4 ${e} the IPv4-mapped IPv6 address ::ffff:a.b.c.d. */
static void
end_map6(struct end *e)
{

	if (e->family != AF_INET)
		return;
	memmove(e->addr + 12, e->addr, 4);
	memset(e->addr, 0, 10);
	e->addr[10] = e->addr[11] = 0xff;
	e->family = AF_INET6;
}

/* Encode the header of ${version} from ${src} to ${dst} into ${buf}. */
size_t
proxy_encode(enum proxy_version version, const struct sockaddr *src,
    const struct sockaddr *dst, uint8_t *buf)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	struct end a, b;
	size_t alen, n;

	end_set(&a, src);
	end_set(&b, dst);
	if (a.family == 0 || b.family == 0) {
		a.family = b.family = 0;
	} else if (a.family != b.family) {
		end_map6(&a);
		end_map6(&b);
	}
	alen = a.family == AF_INET ? 4 : 16;
	if (version == PROXY_V1) {
		if (a.family == 0)
			return ((size_t)snprintf((char *)buf, PROXY_MAX,
			    "PROXY UNKNOWN\r\n"));
		inet_ntop(a.family, a.addr, s, sizeof(s));
		inet_ntop(b.family, b.addr, d, sizeof(d));
		return ((size_t)snprintf((char *)buf, PROXY_MAX,
		    "PROXY TCP%c %s %s %u %u\r\n",
		    a.family == AF_INET ? '4' : '6', s, d, a.port, b.port));
	}
	memcpy(buf, v2_sig, sizeof(v2_sig));
	n = sizeof(v2_sig);
	buf[n++] = V2_PROXY;
	if (a.family == 0) {
		buf[n++] = V2_UNSPEC;
		buf[n++] = 0;
		buf[n++] = 0;
		return (n);
	}
	buf[n++] = a.family == AF_INET ? V2_TCP4 : V2_TCP6;
	buf[n++] = 0;
	buf[n++] = (uint8_t)(2 * alen + 4);	/* addresses and ports */
	memcpy(buf + n, a.addr, alen);
	memcpy(buf + n + alen, b.addr, alen);
	n += 2 * alen;
	buf[n++] = (uint8_t)(a.port >> 8);
	buf[n++] = (uint8_t)a.port;
	buf[n++] = (uint8_t)(b.port >> 8);
	buf[n++] = (uint8_t)b.port;
	return (n);
}

/* Send the header of ${version} for client ${src} on ${fd}. */
int
proxy_send(int fd, enum proxy_version version, const struct sockaddr *src)
{
	struct sockaddr_storage dst;
	socklen_t sl = sizeof(dst);
	uint8_t buf[PROXY_MAX];
	size_t len;
	ssize_t n;

	if (getpeername(fd, (struct sockaddr *)&dst, &sl) == -1)
		return (-1);
	len = proxy_encode(version, src, (struct sockaddr *)&dst, buf);
	if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == (ssize_t)len)
		return (0);
	if (n >= 0)
		errno = EAGAIN;
	return (-1);
}
