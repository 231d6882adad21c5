/*
 * svchdr: see svchdr.h.
 */
#include <netinet/in.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "svchdr.h"

/* Append the header for ${name} and ${client} to ${out}. */
int
svchdr_write(struct evbuffer *out, const char *name,
    const struct sockaddr *client)
{
	uint8_t buf[1 + 255 + 2 + 2 + 1 + 16 + 2], *p = buf;
	size_t n = strlen(name), alen = 0;
	const uint8_t *addr = NULL;
	uint16_t port = 0;

	if (n == 0 || n > 255)
		return (-1);
	if (client != NULL && client->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)client;

		addr = (const uint8_t *)&sin->sin_addr;
		alen = 4;
		port = ntohs(sin->sin_port);
	} else if (client != NULL && client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)client;

		addr = sin6->sin6_addr.s6_addr;
		alen = 16;
		port = ntohs(sin6->sin6_port);
	}
	*p++ = (uint8_t)n;
	memcpy(p, name, n);
	p += n;
	if (addr == NULL) {
		*p++ = 0;
		*p++ = 0;
	} else {
		*p++ = 0;
		*p++ = (uint8_t)(2 + 1 + alen + 2);	/* M: one record */
		*p++ = SVCHDR_TLV_CLIENT_ADDR;
		*p++ = (uint8_t)(1 + alen + 2);
		*p++ = alen == 4 ? 4 : 6;
		memcpy(p, addr, alen);
		p += alen;
		*p++ = (uint8_t)(port >> 8);
		*p++ = (uint8_t)port;
	}
	return (evbuffer_add(out, buf, (size_t)(p - buf)));
}

/* Parse client address record value ${v} of length ${len} into ${h}. */
static int
parse_client(const uint8_t *v, size_t len, struct svchdr *h)
{
	struct sockaddr_in *sin = (void *)&h->client;
	struct sockaddr_in6 *sin6 = (void *)&h->client;

	if (len == 7 && v[0] == 4) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, v + 1, 4);
		sin->sin_port = htons((uint16_t)(v[5] << 8 | v[6]));
		return (0);
	}
	if (len == 19 && v[0] == 6) {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, v + 1, 16);
		sin6->sin6_port = htons((uint16_t)(v[17] << 8 | v[18]));
		return (0);
	}
	return (-1);
}

/* Parse a header at the start of ${in} into ${h}. */
long
svchdr_parse(struct evbuffer *in, struct svchdr *h)
{
	size_t have = evbuffer_get_length(in), n, m, off;
	const uint8_t *p;

	memset(h, 0, sizeof(*h));
	if (have < 1)
		return (0);
	p = evbuffer_pullup(in, 1);
	n = p[0];
	if (have < 1 + n + 2)
		return (0);
	p = evbuffer_pullup(in, (ssize_t)(1 + n + 2));
	if (!config_valid_service_name((const char *)p + 1, n))
		return (-1);
	m = (size_t)p[1 + n] << 8 | p[2 + n];
	if (have < 3 + n + m)
		return (0);
	if ((p = evbuffer_pullup(in, (ssize_t)(3 + n + m))) == NULL)
		return (-1);
	memcpy(h->name, p + 1, n);
	h->name[n] = '\0';
	h->namelen = n;

	/* TLV records: unknown types are skipped. */
	for (off = 3 + n; off < 3 + n + m; off += 2 + (size_t)p[off + 1]) {
		if (off + 2 > 3 + n + m || off + 2 + p[off + 1] > 3 + n + m)
			return (-1);
		if (p[off] == SVCHDR_TLV_CLIENT_ADDR &&
		    parse_client(p + off + 2, p[off + 1], h))
			return (-1);
	}
	return ((long)(3 + n + m));
}
