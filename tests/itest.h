/*
 * itest: a harness for integration tests that run real mxd processes.
 *
 * Linked into every test binary; everything here is named it_ or IT_.
 *
 * Per test: it_init() (a Check setup fixture) makes a temporary directory
 * and raises the descriptor limit; it_cleanup() (the teardown) kills every
 * process still running, closes every socket the harness opened and frees
 * what it allocated.  Every test ends with it_finish(): each mxd still
 * running is stopped with SIGTERM and must exit 0 with no channel left
 * open, and no mxd log may hold a sanitizer report.  The directory, with
 * the configurations and mxd logs, is removed after a test that finished
 * and kept (its path printed) after one that failed, or with MXD_KEEP=1;
 * a test that fails in a forked Check process leaves it behind too.
 *
 * MXD_TEST=NAME,NAME runs only those tests (test_daemon.c).
 *
 * Helpers that cannot go on fail the test (ck_assert) with a message, which
 * for an mxd includes the end of its log.  Under CK_FORK=no such a failure
 * longjmps out of the helper; the registries below let it_cleanup release
 * what the helper held.
 *
 * Targets run in a forked child (a libevent server, one listening port per
 * kind) and count what they saw in shared memory the test reads directly.
 * Clients are plain sockets in the test process.
 */
#ifndef MXD_ITEST_H
#define MXD_ITEST_H

#include <sys/types.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

/* Built with AddressSanitizer (mxd is then slower; the tests fit anyway). */
#if defined(__SANITIZE_ADDRESS__)
#define IT_SAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IT_SAN	1
#endif
#endif
#ifndef IT_SAN
#define IT_SAN	0
#endif

#define IT_HOST		"127.0.0.1"
#define IT_WAIT_MS	10000	/* default deadline for log lines, exits */
#define IT_WAIT_STR	"10 s"

/* ------------------------------------------------------------ lifecycle */

void	it_init(void);
void	it_cleanup(void);
void	it_finish(void);

/* Nonzero under sanitizers (IT_SAN, or MXD_SAN=1 in the environment). */
int	it_san(void);

/* Milliseconds on the monotonic clock. */
int64_t	it_now_ms(void);

/* A string from printf-style ${fmt}, freed by it_cleanup. */
char	*it_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Zeroed memory, freed by it_cleanup. */
void	*it_calloc(size_t n, size_t size);

/* Path of ${name} in the test's temporary directory (freed by cleanup). */
const char *it_path(const char *name);

/* Write ${text} to ${name} in the temporary directory; returns its path. */
const char *it_write_file(const char *name, const char *text);

/*
 * Make certificates in the temporary directory with the openssl command
 * (NAME.pem, NAME.key): CAs ca and ca2; a (a.mxd.test), b (b.mxd.test) and
 * c (c.mxd.test), signed by ca; a2 (a.mxd.test, another key), old
 * (a.mxd.test, expired) and evil (a.mxd.test, signed by ca2); a.pin and
 * b.pin, the SHA-256 of a's and b's public keys (base64, hex).
 */
void	it_make_certs(void);

/* [link] lines for TLS with certificate ${cert} (it_make_certs), checking
 * the peer against ca. */
const char *it_tls_link(const char *cert);

/* A free port on 127.0.0.1 (bound, read, closed: a small race is fine);
 * never the same twice in one test. */
int	it_free_port(void);

/* VmRSS of ${pid} in KiB, or -1. */
long	it_rss_kb(pid_t pid);

/* Run $MXD_BIN ${args} (NULL-terminated) to its end, at most ${ms}; its
 * stdout and stderr go to *${out} and *${err} (freed by cleanup).  Returns
 * the wait status. */
int	it_run_mxd(const char *const *args, char **out, char **err, int ms);

/* ------------------------------------------------------------ mxd */

struct it_mxd {
	pid_t	pid;		/* -1 once reaped */
	int	status;		/* wait status once reaped */
	char	*conf;
	char	*log;		/* its stdout and stderr */
	off_t	mark;		/* it_mxd_wait_log looks after this offset */
	/* How it_mxd_start_opts started it, for it_mxd_restart. */
	const char *netns;
	long	nofile;
};

/* Start $MXD_BIN -c ${conf} -v. */
struct it_mxd *it_mxd_start(const char *conf);

/* Later waits see only log lines written after now. */
void	it_mxd_mark(struct it_mxd *m);

/* Wait (at most ${ms}) for ${needle} in the log after the mark; fails the
 * test, showing the log, on timeout or if mxd exits first. */
void	it_mxd_wait_log(struct it_mxd *m, const char *needle, int ms);

/* Nonzero if ${needle} is in the log after the mark (no waiting). */
int	it_mxd_log_has(struct it_mxd *m, const char *needle);

/* Send ${sig}. */
void	it_mxd_signal(struct it_mxd *m, int sig);

/* Wait at most ${ms} for mxd to exit (SIGKILL after).  Returns the wait
 * status, or -1 if it had to be killed. */
int	it_mxd_wait_exit(struct it_mxd *m, int ms);

/* SIGKILL and reap. */
void	it_mxd_kill(struct it_mxd *m);

/* SIGTERM; assert that it exits 0 within ${ms} and has a clean log. */
void	it_mxd_stop(struct it_mxd *m, int ms);

/* Print the end of the log to stderr (to go with a failure). */
void	it_mxd_show_log(const struct it_mxd *m);

/* Fail the test if the log holds a sanitizer report or a message of
 * libevent's. */
void	it_mxd_check_log(struct it_mxd *m);

/* ------------------------------------------------------------ suites */

/* Nonzero if test ${name} is to run: MXD_TEST=NAME[,NAME...] runs only
 * those, unset runs all. */
int	it_wanted(const char *name);

/* Add test ${fn} to tcase ${tc} if it_wanted. */
#define IT_ADD(tc, fn)	do {						\
	if (it_wanted(#fn))						\
		tcase_add_test(tc, fn);					\
} while (0)

/* The same for loop test ${fn}, run with _i from 0 to ${n} - 1. */
#define IT_ADD_LOOP(tc, fn, n)	do {					\
	if (it_wanted(#fn))						\
		tcase_add_loop_test(tc, fn, 0, n);			\
} while (0)

/* Run ${s} (CK_NORMAL; stdout line-buffered); the exit status for main. */
int	it_main(Suite *s);

/* End client ${fd} gracefully (${what} for messages): shut down its
 * sending side, expect EOF back, close it. */
void	it_finish_client(int fd, const char *what);

/* Send ${msg} on ${fd} and expect it echoed back. */
void	it_echo(int fd, const char *msg);

/* GET ${path} from the HTTP server at IT_HOST:${port}: the whole response
 * (freed by it_cleanup). */
char	*it_http_get(int port, const char *path);

/* The value of ${series} (a name with its labels) served at metrics port
 * ${port}; -1 if it is missing. */
long long it_metric(int port, const char *series);

/* Wait at most ${ms} for ${series} at ${port} to be ${want}; returns the
 * last value. */
long long it_metric_wait(int port, const char *series, long long want,
    int ms);

/* ------------------------------------------------------------ a pair */

/*
 * Side A dials the link and side B listens for it.  Each side's [link]
 * section gets a few test settings (fast redial, short drains) and ${extra}
 * lines; the services are given as ini text.
 */
struct it_pair {
	int	link_port;
	const char *extra;	/* more [link] lines, both sides */
	const char *a_conf, *b_conf;
	struct it_mxd *a, *b;
};

/* Write both configurations and start B, then A; wait until the link is up
 * on both sides. */
void	it_pair_start(struct it_pair *p, const char *a_services,
	    const char *b_services);

/* The same with ${extra} lines in both [link] sections. */
void	it_pair_start_extra(struct it_pair *p, const char *extra,
	    const char *a_services, const char *b_services);

/* Rewrite A's or B's configuration file with other services. */
void	it_pair_write_a(struct it_pair *p, const char *services);
void	it_pair_write_b(struct it_pair *p, const char *services);

/* The text of a service section. */
char	*it_svc_accept(const char *name, int port);
char	*it_svc_connect(const char *name, int port);

/* ------------------------------------------------------------ targets */

enum it_kind {
	IT_ECHO,	/* echo everything; close after EOF */
	IT_LATE,	/* read to EOF, then echo it all at once and close */
	IT_SINK,	/* read to EOF, reply "<bytes>\n", close */
	IT_HELLO,	/* read to EOF, count exactly "hello", close */
	IT_BANNER,	/* send IT_BANNER_TEXT, shutdown(SHUT_WR); read to EOF */
	IT_BLAST,	/* read "<bytes> <seed>\n", send it_gen data, close */
	IT_NKINDS
};

#define IT_BANNER_TEXT	"220 mxd banner: the target speaks first\r\n"

/* What the targets saw; shared with the target process. */
struct it_stats {
	atomic_ullong	accepted;	/* connections, all kinds */
	atomic_ullong	hello;		/* IT_HELLO: exactly "hello" */
	atomic_ullong	hello_bad;	/* IT_HELLO: anything else */
	atomic_ullong	sink_done;	/* IT_SINK: replies sent */
	atomic_ullong	banner_done;	/* IT_BANNER: EOF after data */
	atomic_ullong	banner_len;	/* ... bytes of the last one */
	atomic_ullong	banner_hash;	/* ... and their it_hash */
	atomic_ullong	blast_sent;	/* IT_BLAST: bytes written, last */
	atomic_ullong	blast_done;	/* IT_BLAST: finished */
};

struct it_targets {
	pid_t	pid;
	int	port[IT_NKINDS];
	int	refused;		/* nothing listens here */
	struct it_stats *st;
};

/* Start the target process; its listening sockets are ready on return. */
struct it_targets *it_targets_start(void);

/* ------------------------------------------------------------ data */

/* Fill ${buf} with ${len} bytes of stream ${seed} from offset ${off}. */
void	it_gen(uint64_t seed, uint64_t off, void *buf, size_t len);

/* Offset in ${buf} of the first byte that differs from stream ${seed} at
 * ${off}, or -1 if all ${len} match. */
long	it_verify(uint64_t seed, uint64_t off, const void *buf, size_t len);

/* FNV-1a 64 of ${len} bytes at ${buf}, continuing from ${h} (start with
 * IT_HASH_INIT). */
#define IT_HASH_INIT	0xcbf29ce484222325ull
uint64_t it_hash(uint64_t h, const void *buf, size_t len);

/* ------------------------------------------------------------ clients */

/* A blocking connection to 127.0.0.1:${port} with receive and send
 * timeouts of IT_WAIT_MS; -1 with errno on failure. */
int	it_connect(int port);

/* The same to [::1]:${port}. */
int	it_connect6(int port);

/* A socket listening on 127.0.0.1 with ${backlog} and receive buffer
 * ${rcvbuf} (0: the default); its port in *${port}. */
int	it_listen(int backlog, int rcvbuf, int *port);

/* Accept on ${lfd} within IT_WAIT_MS (or fail the test): a blocking
 * socket with it_connect's timeouts. */
int	it_accept(int lfd);

/* Have it_cleanup close ${fd} unless it_close closes it first. */
void	it_track(int fd);

/* Close ${fd} (one the harness opened or tracks). */
void	it_close(int fd);

/* Send all of ${buf}; 0 or -1 with errno. */
int	it_send_all(int fd, const void *buf, size_t len);

/* Receive until ${len} bytes or EOF; returns the count, or -1 with errno
 * (EAGAIN: the receive timeout passed). */
ssize_t	it_recv_full(int fd, void *buf, size_t len);

/*
 * Wait at most ${ms} for ${fd} to become readable and receive once (up to
 * ${len} bytes into ${buf}).  Returns the byte count (0: EOF), -errno on
 * error (-ECONNRESET for a reset), or IT_TIMEOUT.
 */
#define IT_TIMEOUT	(-100000)
long	it_recv_wait(int fd, void *buf, size_t len, int ms);

/* Read and discard until EOF or error within ${ms}: the same returns as
 * it_recv_wait, with bytes discarded in *${n}. */
long	it_drain_wait(int fd, int ms, uint64_t *n);

/* One echo flow: send ${size} bytes of stream ${seed} to ${port}, shut
 * down, expect the same bytes back, then EOF. */
struct it_flow {
	int	port;
	size_t	size;
	uint64_t seed;
	/* Results. */
	size_t	tx, rx;
	int	done;		/* EOF after exactly size bytes back */
	int	err;		/* errno, or -1 for a mismatch */
	int	fd, shut, connected, started;
};

/*
 * Run ${n} flows at once with poll(), all sockets nonblocking, for at most
 * ${ms}.  Returns the number that did not finish cleanly; ${msg} (size
 * ${msglen}) describes the first of them.
 */
size_t	it_flows_run(struct it_flow *f, size_t n, int ms, char *msg,
	    size_t msglen);

/* ------------------------------------------------------------ additions
 * (faults, hostile peers, exhaustion, soak: test_faults.c, test_hostile.c,
 * test_soak.c)
 */

/* How it_mxd_start_opts starts an mxd. */
struct it_mxd_opts {
	const char *netns;	/* run inside /run/netns/NAME; NULL: here */
	long	nofile;		/* RLIMIT_NOFILE soft and hard; 0: as is */
};

/* it_mxd_start with ${o} (NULL: as it_mxd_start). */
struct it_mxd *it_mxd_start_opts(const char *conf, const struct it_mxd_opts *o);

/* Start ${m} again (after it died or was killed; SIGKILL first if it
 * runs) as it was started, its log continued; the mark moves to the end. */
void	it_mxd_restart(struct it_mxd *m);

/* Open descriptors of ${pid} (entries of /proc/PID/fd), or -1. */
int	it_fd_count(pid_t pid);

/* Wait at most ${ms} for ${pid} to have ${want} open descriptors; returns
 * the last count. */
int	it_fd_wait(pid_t pid, int want, int ms);

/* The descriptors of ${m} once stable: the same count twice, 50 ms apart
 * (a channel that just ended closes its socket in the next loop pass);
 * after IT_WAIT_MS, whatever the count is then. */
int	it_fd_settled(struct it_mxd *m);

/* CPU time (user + system) ${pid} has used, in milliseconds, or -1. */
long	it_cpu_ms(pid_t pid);

/* Lines of ${m}'s whole log (ignoring the mark) that hold ${needle}. */
int	it_mxd_log_count(struct it_mxd *m, const char *needle);

/* Wait at most ${ms} for ${needle} after the mark; returns 1 if it came,
 * 0 if not (no failure, unlike it_mxd_wait_log). */
int	it_mxd_poll_log(struct it_mxd *m, const char *needle, int ms);

/*
 * A relay: a process between two mxd that copies bytes both ways between
 * each connection it accepts and one it makes to 127.0.0.1:${to}.  Cutting
 * it (SIGKILL) ends every connection through it, as a NAT rebinding or a
 * middlebox would; restarting it listens again on the same port.
 * Freezing it (SIGSTOP) is a black hole: connections stay up, nothing
 * passes, new connects complete in the kernel and go nowhere; thawing it
 * lets everything through again.  it_cleanup kills it.
 */
struct it_relay {
	pid_t	pid;
	int	port;		/* where it listens */
	int	to;		/* where it connects */
};

struct it_relay *it_relay_start(int to);
void	it_relay_cut(struct it_relay *r);
void	it_relay_restart(struct it_relay *r);
void	it_relay_freeze(struct it_relay *r);
void	it_relay_thaw(struct it_relay *r);

/* Reset the dialers' side of every connection through ${r} and leave the
 * listener's side open and silent (a NAT that forgot its mapping): the
 * dialer sees its link reset, the listener nothing.  New connections pass
 * as before. */
void	it_relay_drop_dialers(struct it_relay *r);

/*
 * it_flows_run, calling ${tick}(${arg}) at least every 20 ms while flows
 * run; a flow whose port is 0 starts once a tick has set its port (flows
 * opened in the middle of something).  A tick may return nonzero to end
 * the run at once (its own failure).
 */
size_t	it_flows_run_tick(struct it_flow *f, size_t n, int ms, char *msg,
	    size_t msglen, int (*tick)(void *), void *arg);

/* SIGKILL the target process of ${t} (its connections die with it). */
void	it_targets_kill(struct it_targets *t);

/* Start the target process of ${t} again on the same ports (after
 * it_targets_kill); the counters carry on. */
void	it_targets_restart(struct it_targets *t);

#endif /* !MXD_ITEST_H */
