/*
 * libFuzzer target for the configuration loader (src/config.c).
 *
 * Each input is written to a file (one path per process, under /tmp) and
 * loaded with config_load.  On failure the message must be one non-empty
 * line starting with "PATH:"; on success the config must satisfy what
 * config.h and conf/mxd.conf promise (a link address, services with a valid
 * unique name and accept or connect, ranges and orderings of the values,
 * valid literal addresses, no two services accepting on one address).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_config: check failed: %s (%s:%d)\n", \
		    #c, __FILE__, __LINE__);				\
		abort();						\
	}								\
} while (0)

static char path[64];

static void
cleanup(void)
{

	if (path[0] != '\0')
		unlink(path);
}

/* A host:port pair as config_parse_addr stores it. */
static void
check_addr(const struct config_addr *a)
{
	struct config_addr b;
	char *s, *end, buf[INET6_ADDRSTRLEN];
	unsigned char ip[16];
	unsigned long port;
	size_t len;

	CHECK(a->host != NULL && a->port != NULL);
	CHECK(a->host[0] != '\0');
	CHECK(strchr(a->host, '[') == NULL && strchr(a->host, ']') == NULL);
	port = strtoul(a->port, &end, 10);
	CHECK(*end == '\0' && port >= 1 && port <= 65535);
	CHECK(a->port[0] != '0');		/* canonical */
	CHECK(a->line > 0);
	/* A literal is a valid address. */
	if (strchr(a->host, ':') != NULL) {
		len = strcspn(a->host, "%");
		CHECK(len < sizeof(buf));
		memcpy(buf, a->host, len);
		buf[len] = '\0';
		CHECK(inet_pton(AF_INET6, buf, ip) == 1);
	} else if (a->host[strspn(a->host, "0123456789.")] == '\0')
		CHECK(inet_pton(AF_INET, a->host, ip) == 1);

	/* Written back out, it parses to the same. */
	len = strlen(a->host) + strlen(a->port) + 4;
	CHECK((s = malloc(len)) != NULL);
	snprintf(s, len, strchr(a->host, ':') ? "[%s]:%s" : "%s:%s", a->host,
	    a->port);
	CHECK(config_parse_addr(s, &b) == 0);
	CHECK(strcmp(a->host, b.host) == 0 && strcmp(a->port, b.port) == 0);
	config_addr_free(&b);
	CHECK(b.host == NULL && b.port == NULL);
	free(s);
}

static void
check_config(const struct config *c)
{
	const struct config_service *s, *t;
	unsigned n = 0;

	CHECK(c->path != NULL && strcmp(c->path, path) == 0);
	CHECK(c->log_level >= LOG_DEBUG && c->log_level <= LOG_ERROR);
	if (c->metrics.host != NULL)
		check_addr(&c->metrics);
	else
		CHECK(c->metrics.port == NULL);
	check_addr(&c->link_addr);
	CHECK(c->link_listen == 0 || c->link_listen == 1);
	CHECK(c->keepalive_ms > 0 && c->keepalive_ms < c->timeout_ms);
	CHECK(c->reconnect_min_ms > 0 &&
	    c->reconnect_min_ms <= c->reconnect_max_ms);
	CHECK(c->connect_timeout_ms > 0);
	/* Every duration fits in microseconds and a struct timeval. */
	CHECK(c->timeout_ms <= CONFIG_DURATION_MAX_MS &&
	    c->reconnect_max_ms <= CONFIG_DURATION_MAX_MS &&
	    c->drain_timeout_ms <= CONFIG_DURATION_MAX_MS &&
	    c->connect_timeout_ms <= CONFIG_DURATION_MAX_MS);
	/* Loose bounds: the exact ranges are conf/mxd.conf's business. */
	CHECK(c->window >= 65536);
	CHECK(c->max_channels >= 1 && c->max_channels <= 1048576);
	for (s = c->services; s != NULL; s = s->next) {
		n++;
		CHECK(s->name != NULL);
		CHECK(config_valid_service_name(s->name, strlen(s->name)));
		CHECK(s->accept.host != NULL || s->connect.host != NULL);
		if (s->accept.host != NULL)
			check_addr(&s->accept);
		if (s->connect.host != NULL)
			check_addr(&s->connect);
		CHECK(s->line > 0);
		CHECK(config_service_find(c, s->name, strlen(s->name)) == s);
		CHECK(config_service_equal(s, s));
		for (t = s->next; t != NULL; t = t->next) {
			CHECK(strcmp(s->name, t->name) != 0 && t->line > s->line);
			/* Two listeners on one address are refused. */
			CHECK(s->accept.host == NULL || t->accept.host == NULL ||
			    strcmp(s->accept.host, t->accept.host) != 0 ||
			    strcmp(s->accept.port, t->accept.port) != 0);
		}
	}
	CHECK(n == c->nservices);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{

	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "/tmp/fuzz_config.%ld.conf",
	    (long)getpid());
	atexit(cleanup);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char err[512];
	size_t plen = strlen(path);
	FILE *f;
	int rc;

	CHECK((f = fopen(path, "w")) != NULL);
	CHECK(fwrite(data, 1, size, f) == size);
	CHECK(fclose(f) == 0);

	memset(err, 0, sizeof(err));
	rc = config_load(path, &c, err, sizeof(err));
	if (rc == 0) {
		CHECK(c != NULL);
		check_config(c);
		config_free(c);
	} else {
		CHECK(rc == -1);
		CHECK(c == NULL);
		CHECK(err[0] != '\0');
		CHECK(strncmp(err, path, plen) == 0 && err[plen] == ':');
		CHECK(strchr(err, '\n') == NULL);	/* one line */
	}
	return (0);
}
