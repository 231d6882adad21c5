/*
 * libFuzzer target for the service header (src/svchdr.c), which every
 * stream from the peer starts with.
 *
 * The input is the peer's bytes, given to svchdr_parse as they may arrive:
 * in up to three chains of one evbuffer, split where bytes 0 and 1 of the
 * input say (so pullup has to join them).  Checked:
 *   - svchdr_parse consumes nothing, and says "need more" (0) for every
 *     prefix of a header it accepts;
 *   - an accepted header is exactly u8 N, a valid service name of N
 *     bytes, u16 M, M bytes of records, with the client address, if any,
 *     an IPv4 or IPv6 one;
 *   - written back with svchdr_write, it parses to the same name and
 *     client, and is as long as the shortest header for them;
 *   - a header that svchdr_write makes from the input (its name, and a
 *     client address the input gives) parses back to the same, or is
 *     refused exactly when the name is not a valid service name.
 * Any violation abort()s.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "svchdr.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_svchdr: check failed: %s (%s:%d)\n", \
		    #c, __FILE__, __LINE__);				\
		abort();						\
	}								\
} while (0)

/* A new evbuffer holding the ${len} bytes at ${data}, split into chains at
 * ${cut1} and ${cut2} (clamped to the data). */
static struct evbuffer *
chained(const uint8_t *data, size_t len, size_t cut1, size_t cut2)
{
	struct evbuffer *b, *part;
	size_t cuts[3], from = 0, i;

	cuts[0] = cut1 < len ? cut1 : len;
	cuts[1] = cut2 < len ? cut2 : len;
	if (cuts[1] < cuts[0])
		cuts[1] = cuts[0];
	cuts[2] = len;
	CHECK((b = evbuffer_new()) != NULL);
	for (i = 0; i < 3; i++) {
		CHECK((part = evbuffer_new()) != NULL);
		CHECK(evbuffer_add(part, data + from, cuts[i] - from) == 0);
		CHECK(evbuffer_add_buffer(b, part) == 0);
		evbuffer_free(part);
		from = cuts[i];
	}
	CHECK(evbuffer_get_length(b) == len);
	return (b);
}

/* svchdr_parse on the ${len} bytes at ${data}, in one chain. */
static long
parse_bytes(const uint8_t *data, size_t len, struct svchdr *h)
{
	struct evbuffer *b = chained(data, len, len, len);
	long n = svchdr_parse(b, h);

	CHECK(evbuffer_get_length(b) == len);
	evbuffer_free(b);
	return (n);
}

/* 1 if ${a} and ${b} give the same client address (or none). */
static int
same_client(const struct svchdr *a, const struct svchdr *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->client;
	const struct sockaddr_in *b4 = (const void *)&b->client;
	const struct sockaddr_in6 *a6 = (const void *)&a->client;
	const struct sockaddr_in6 *b6 = (const void *)&b->client;

	if (a->client.ss_family != b->client.ss_family)
		return (0);
	switch (a->client.ss_family) {
	case 0:
		return (1);
	case AF_INET:
		return (a4->sin_port == b4->sin_port &&
		    memcmp(&a4->sin_addr, &b4->sin_addr, 4) == 0);
	default:
		return (a6->sin6_port == b6->sin6_port &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0);
	}
}

/*
 * Write the header for ${h}'s name and client with svchdr_write and parse
 * it back: the same, and ${expect} bytes long (0: do not check).
 */
static void
round_trip(const struct svchdr *h, size_t expect)
{
	struct evbuffer *out;
	struct svchdr back;
	size_t len;
	long n;

	CHECK((out = evbuffer_new()) != NULL);
	CHECK(svchdr_write(out, h->name, h->client.ss_family != 0 ?
	    (const struct sockaddr *)&h->client : NULL) == 0);
	len = evbuffer_get_length(out);
	CHECK(expect == 0 || len == expect);
	n = svchdr_parse(out, &back);
	CHECK(n > 0 && (size_t)n == len && evbuffer_get_length(out) == len);
	CHECK(back.namelen == h->namelen &&
	    strcmp(back.name, h->name) == 0);
	CHECK(same_client(h, &back));
	evbuffer_free(out);
}

/* Check what svchdr_parse made of the ${len} bytes at ${data}: ${n}, and
 * header ${h} if ${n} > 0. */
static void
check_parsed(const uint8_t *data, size_t len, long n, const struct svchdr *h)
{
	struct svchdr p;
	size_t namelen, m, shortest, cuts[3], i;

	CHECK(n >= -1 && (n <= 0 || (size_t)n <= len));
	if (n <= 0)
		return;
	namelen = data[0];
	CHECK(len >= 3 + namelen);
	m = (size_t)data[1 + namelen] << 8 | data[2 + namelen];
	CHECK((size_t)n == 3 + namelen + m);
	CHECK(h->namelen == namelen && h->name[namelen] == '\0' &&
	    memcmp(h->name, data + 1, namelen) == 0);
	CHECK(config_valid_service_name(h->name, h->namelen));
	CHECK(h->client.ss_family == 0 || h->client.ss_family == AF_INET ||
	    h->client.ss_family == AF_INET6);

	/* Every prefix wants more (a few: all would be quadratic). */
	cuts[0] = 0;
	cuts[1] = 3 + namelen - 1;
	cuts[2] = (size_t)n - 1;
	for (i = 0; i < 3; i++)
		CHECK(parse_bytes(data, cuts[i], &p) == 0);

	/* What svchdr_write makes of it is the shortest form: no records
	 * but the client address. */
	shortest = 3 + namelen + (h->client.ss_family == AF_INET ? 9 :
	    h->client.ss_family == AF_INET6 ? 21 : 0);
	CHECK((size_t)n >= shortest);
	round_trip(h, shortest);
}

/*
 * svchdr_write from the input: a name of up to 255 bytes from ${data}
 * (${len} bytes; byte 0 gives its length, byte 1 the client's family and
 * the next 18 bytes its address and port).
 */
static void
check_written(const uint8_t *data, size_t len)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (void *)&ss;
	struct sockaddr_in6 *sin6 = (void *)&ss;
	struct svchdr h, back;
	struct evbuffer *out;
	size_t namelen;
	char name[300];
	long n;
	int rc;

	if (len < 20)
		return;
	memset(&ss, 0, sizeof(ss));
	switch (data[1] % 3) {
	case 1:
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, data + 2, 4);
		memcpy(&sin->sin_port, data + 18, 2);
		break;
	case 2:
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, data + 2, 16);
		memcpy(&sin6->sin6_port, data + 18, 2);
		break;
	}
	namelen = data[0] + (size_t)(data[1] >= 128 ? 1 : 0);
	if (namelen > len - 20)
		namelen = len - 20;
	memcpy(name, data + 20, namelen);
	name[namelen] = '\0';
	namelen = strlen(name);

	CHECK((out = evbuffer_new()) != NULL);
	rc = svchdr_write(out, name, ss.ss_family ? (void *)&ss : NULL);
	CHECK(rc == (namelen >= 1 && namelen <= 255 ? 0 : -1));
	if (rc == 0) {
		n = svchdr_parse(out, &back);
		if (!config_valid_service_name(name, namelen)) {
			CHECK(n == -1);
		} else {
			memset(&h, 0, sizeof(h));
			memcpy(h.name, name, namelen + 1);
			h.namelen = namelen;
			h.client = ss;
			CHECK(n > 0 &&
			    (size_t)n == evbuffer_get_length(out));
			CHECK(strcmp(back.name, name) == 0 &&
			    same_client(&h, &back));
		}
	}
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in;
	struct svchdr h, one;
	size_t cut1, cut2;
	long n;

	/* The parser's view: the bytes in chains cut where bytes 0 and 1
	 * say, and in one chain; the same answer either way. */
	cut1 = size > 0 ? data[0] % (size + 1) : 0;
	cut2 = size > 1 ? cut1 + data[1] % (size + 1) : 0;
	in = chained(data, size, cut1, cut2);
	n = svchdr_parse(in, &h);
	CHECK(evbuffer_get_length(in) == size);
	evbuffer_free(in);
	CHECK(parse_bytes(data, size, &one) == n);
	CHECK(n <= 0 || (strcmp(one.name, h.name) == 0 &&
	    one.namelen == h.namelen && same_client(&one, &h)));
	check_parsed(data, size, n, &h);

	check_written(data, size);
	return (0);
}
