/*
 * itest: see itest.h.
 */
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "itest.h"

#define IT_MAX_MXD	16
#define IT_MAX_PORTS	256
#define IT_MAX_FD	65536
#define IT_CHUNK	(64 * 1024)
#define IT_LOG_TAIL	4000
#define IT_POLL_MS	5

/* Everything a test holds, released by it_cleanup. */
static struct {
	int		inited;
	int		finished;	/* it_finish passed */
	char		dir[64];
	struct it_mxd	*mxd[IT_MAX_MXD];
	int		nmxd;
	struct it_targets *targets;
	struct it_relay	*relays[4];
	int		nrelays;
	int		ports[IT_MAX_PORTS];
	int		nports;
	void		**allocs;
	size_t		nallocs, allocs_cap;
	unsigned char	fds[IT_MAX_FD / 8];
} H;

/* What must never be in mxd's log: a sanitizer's report, or a message of
 * libevent's own (a warning there means mxd misused it). */
static const char *const bad_marks[] = {
	"ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
	"libevent: ", NULL
};

/* ------------------------------------------------------------ registries */

/* Remember ${p} (from malloc) until it_cleanup; returns it. */
static void *
keep(void *p)
{

	ck_assert_msg(p != NULL, "out of memory");
	if (H.nallocs == H.allocs_cap) {
		size_t cap = H.allocs_cap ? 2 * H.allocs_cap : 64;
		void **a = realloc(H.allocs, cap * sizeof(*a));

		ck_assert_msg(a != NULL, "out of memory");
		H.allocs = a;
		H.allocs_cap = cap;
	}
	H.allocs[H.nallocs++] = p;
	return (p);
}

/* Free ${p} early (it was kept). */
static void
unkeep(void *p)
{
	size_t i;

	for (i = H.nallocs; i-- > 0;) {
		if (H.allocs[i] == p) {
			H.allocs[i] = H.allocs[--H.nallocs];
			free(p);
			return;
		}
	}
}

void *
it_calloc(size_t n, size_t size)
{

	return (keep(calloc(n ? n : 1, size ? size : 1)));
}

void
it_track(int fd)
{

	if (fd >= 0 && fd < IT_MAX_FD)
		H.fds[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

void
it_close(int fd)
{

	if (fd < 0)
		return;
	if (fd < IT_MAX_FD)
		H.fds[fd / 8] &= (unsigned char)~(1u << (fd % 8));
	close(fd);
}

/* ------------------------------------------------------------ basics */

int64_t
it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		continue;
}

int
it_san(void)
{
	const char *e = getenv("MXD_SAN");

	return (IT_SAN || (e != NULL && strcmp(e, "1") == 0));
}

char *
it_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_msg(n >= 0, "out of memory");
	return (keep(s));
}

const char *
it_path(const char *name)
{

	ck_assert_msg(H.inited, "it_init was not called");
	return (it_fmt("%s/%s", H.dir, name));
}

const char *
it_write_file(const char *name, const char *text)
{
	const char *path = name[0] == '/' ? name : it_path(name);
	char tmp[PATH_MAX];
	FILE *f;

	/* Write then rename, so a reloading mxd never reads half a file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	ck_assert_msg(f != NULL, "%s: %s", tmp, strerror(errno));
	fputs(text, f);
	ck_assert_msg(fclose(f) == 0, "%s: %s", tmp, strerror(errno));
	ck_assert_msg(rename(tmp, path) == 0, "%s: %s", path, strerror(errno));
	return (path);
}

void
it_make_certs(void)
{
	const char *script = it_fmt(
	    "set -e; cd '%s'\n"
	    "key() { openssl ecparam -name prime256v1 -genkey -noout "
	    "-out $1.key; }\n"
	    "ca() { key $1; openssl req -x509 -new -key $1.key -subj /CN=$1 "
	    "-days 30 -out $1.pem; }\n"
	    "leaf() {\n"
	    "  key $1\n"
	    "  openssl req -new -key $1.key -subj /CN=$2 -out $1.csr\n"
	    "  printf 'subjectAltName=DNS:%%s\\n' $2 > $1.ext\n"
	    "  openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key "
	    "-CAcreateserial -days $4 -extfile $1.ext -out $1.pem\n"
	    "}\n"
	    "pin() { openssl x509 -in $1.pem -pubkey -noout | "
	    "openssl pkey -pubin -outform der | "
	    "openssl dgst -sha256 -binary; }\n"
	    "ca ca; ca ca2\n"
	    "leaf a a.mxd.test ca 30; leaf b b.mxd.test ca 30\n"
	    "leaf c c.mxd.test ca 30; leaf a2 a.mxd.test ca 30\n"
	    "leaf old a.mxd.test ca -1; leaf evil a.mxd.test ca2 30\n"
	    "pin a | base64 | tr -d '\\n' > a.pin\n"
	    "pin b | od -An -tx1 | tr -d ' \\n' > b.pin\n",
	    it_path(""));
	int st;

	st = system(it_fmt("(%s) >'%s' 2>&1", script, it_path("certs.log")));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "making certificates failed (status %#x): see %s", st,
	    it_path("certs.log"));
}

const char *
it_tls_link(const char *cert)
{

	return (it_fmt("tls = on\ntls_cert = %s\ntls_key = %s\ntls_ca = %s\n",
	    it_path(it_fmt("%s.pem", cert)), it_path(it_fmt("%s.key", cert)),
	    it_path("ca.pem")));
}

/* Read ${path} from ${off} to its end; NUL-terminated, malloc'd (not
 * kept), NULL if it cannot be read. */
static char *
slurp(const char *path, off_t off, size_t *lenp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (NULL);
	if (off > 0 && lseek(fd, off, SEEK_SET) == -1) {
		close(fd);
		return (NULL);
	}
	for (;;) {
		if (cap - len < 65536 + 1) {
			cap = cap ? 2 * cap : 131072;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				close(fd);
				return (NULL);
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return (buf);
}

/*
 * Ports below the ephemeral range, so that the many outgoing connections of
 * a test never take one between its choice and its bind: [lo, hi), or
 * lo == 0 to let bind pick.
 */
static void
port_range(int *lo, int *hi)
{
	int elo = 0, ehi = 0;
	FILE *f;

	*lo = *hi = 0;
	if ((f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) == NULL)
		return;
	if (fscanf(f, "%d %d", &elo, &ehi) == 2 && elo > 12000) {
		*lo = 10000;
		*hi = elo;
	}
	fclose(f);
}

int
it_free_port(void)
{
	static unsigned seed;
	struct sockaddr_in sin;
	socklen_t sl;
	int fd, port, i, tries, lo, hi, ok;

	if (seed == 0)
		seed = (unsigned)getpid() ^ (unsigned)it_now_ms();
	port_range(&lo, &hi);
	for (tries = 0; tries < 1000; tries++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (lo > 0 && tries < 900)
			sin.sin_port = htons((uint16_t)(lo + (int)(rand_r(&seed)
			    % (unsigned)(hi - lo))));
		/* No SO_REUSEADDR: even a connection in TIME_WAIT on the
		 * port makes it unfit. */
		ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		sl = sizeof(sin);
		ok = ok && getsockname(fd, (struct sockaddr *)&sin, &sl) == 0;
		close(fd);
		if (!ok)
			continue;
		port = ntohs(sin.sin_port);
		for (i = 0; i < H.nports; i++)
			if (H.ports[i] == port)
				break;
		if (i == H.nports) {
			ck_assert_msg(H.nports < IT_MAX_PORTS, "too many ports");
			H.ports[H.nports++] = port;
			return (port);
		}
	}
	ck_abort_msg("no free port");
	return (-1);
}

long
it_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return (kb);
}

/* ------------------------------------------------------------ lifecycle */

/* A test that fails in a forked Check process exits without its teardown:
 * clean up on the way out. */
static void
cleanup_atexit(void)
{

	it_cleanup();
}

void
it_init(void)
{
	static pid_t registered;
	struct rlimit rl;
	const char *bin = getenv("MXD_BIN");

	memset(&H, 0, sizeof(H));
	if (registered != getpid()) {
		registered = getpid();
		atexit(cleanup_atexit);
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	ck_assert_msg(bin != NULL && access(bin, X_OK) == 0,
	    "set MXD_BIN to the mxd binary under test (now %s)",
	    bin ? bin : "unset");
	snprintf(H.dir, sizeof(H.dir), "/tmp/mxd-itest-XXXXXX");
	ck_assert_msg(mkdtemp(H.dir) != NULL, "mkdtemp: %s", strerror(errno));
	H.inited = 1;
}

/* Remove the temporary directory (flat) unless MXD_KEEP=1. */
static void
remove_dir(void)
{
	const char *keepdir = getenv("MXD_KEEP");
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;

	if (!H.finished || (keepdir != NULL && strcmp(keepdir, "1") == 0)) {
		fprintf(stderr, "itest: %s: kept %s%s\n", tcase_name(), H.dir,
		    H.finished ? "" : " (the test did not finish)");
		return;
	}
	if ((d = opendir(H.dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", H.dir, de->d_name);
		(void)unlink(path);
	}
	closedir(d);
	(void)rmdir(H.dir);
}

void
it_cleanup(void)
{
	size_t i;
	int fd, n;

	if (!H.inited)
		return;
	for (n = H.nmxd; n-- > 0;) {
		struct it_mxd *m = H.mxd[n];

		if (m->pid > 0) {
			kill(m->pid, SIGKILL);
			(void)waitpid(m->pid, &m->status, 0);
			m->pid = -1;
		}
		free(m);
	}
	for (n = H.nrelays; n-- > 0;) {
		if (H.relays[n]->pid > 0) {
			kill(H.relays[n]->pid, SIGKILL);
			(void)waitpid(H.relays[n]->pid, NULL, 0);
		}
		free(H.relays[n]);
	}
	if (H.targets != NULL) {
		if (H.targets->pid > 0) {
			kill(H.targets->pid, SIGKILL);
			(void)waitpid(H.targets->pid, NULL, 0);
		}
		munmap(H.targets->st, sizeof(*H.targets->st));
		free(H.targets);
	}
	for (fd = 0; fd < IT_MAX_FD; fd++)
		if (H.fds[fd / 8] & (1u << (fd % 8)))
			close(fd);
	remove_dir();
	for (i = 0; i < H.nallocs; i++)
		free(H.allocs[i]);
	free(H.allocs);
	memset(&H, 0, sizeof(H));
}

void
it_finish(void)
{
	int n;

	for (n = H.nmxd; n-- > 0;) {
		struct it_mxd *m = H.mxd[n];

		if (m->pid <= 0)
			continue;
		it_mxd_mark(m);
		it_mxd_stop(m, 30000);
		/* Every channel of a finished test has ended: none may be
		 * left for the drain to time out on. */
		if (it_mxd_log_has(m, "drain_timeout: exiting")) {
			it_mxd_show_log(m);
			ck_abort_msg("%s: channels were still open at the end",
			    m->log);
		}
	}
	for (n = 0; n < H.nmxd; n++)
		it_mxd_check_log(H.mxd[n]);
	H.finished = 1;
}

/* fork(), with the child killed when we die (and gone at once if we
 * already have).  Returns the child's pid, or 0 in the child. */
static pid_t
fork_tied(void)
{
	pid_t pid, ppid = getpid();

	fflush(NULL);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != ppid)
			_exit(127);
	}
	return (pid);
}

int
it_run_mxd(const char *const *args, char **out, char **err, int ms)
{
	const char *bin = getenv("MXD_BIN");
	const char *argv[16];
	const char *opath, *epath;
	int64_t deadline = it_now_ms() + ms;
	pid_t pid, r;
	int i, fd, st = -1;

	opath = it_fmt("%s/run.out", H.dir);
	epath = it_fmt("%s/run.err", H.dir);
	argv[0] = "mxd";
	for (i = 0; args[i] != NULL && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if ((pid = fork_tied()) == 0) {
		if ((fd = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
			_exit(127);
		dup2(fd, 1);
		close(fd);
		if ((fd = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
			_exit(127);
		dup2(fd, 2);
		close(fd);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (it_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &st, 0);
			ck_abort_msg("mxd %s did not exit within %d ms", args[0],
			    ms);
		}
		sleep_ms(IT_POLL_MS);
	}
	*out = slurp(opath, 0, NULL);
	*err = slurp(epath, 0, NULL);
	ck_assert_msg(*out != NULL && *err != NULL, "cannot read mxd output");
	keep(*out);
	keep(*err);
	return (st);
}

/* ------------------------------------------------------------ mxd */

void
it_mxd_show_log(const struct it_mxd *m)
{
	size_t len;
	char *s = slurp(m->log, 0, &len);

	if (s == NULL)
		return;
	fprintf(stderr, "---- %s (pid %d, %s) last %d bytes:\n%s\n----\n",
	    m->log, (int)m->pid, m->conf, IT_LOG_TAIL,
	    len > IT_LOG_TAIL ? s + len - IT_LOG_TAIL : s);
	free(s);
}

struct it_mxd *
it_mxd_start(const char *conf)
{

	return (it_mxd_start_opts(conf, NULL));
}

void
it_mxd_mark(struct it_mxd *m)
{
	struct stat sb;

	m->mark = stat(m->log, &sb) == 0 ? sb.st_size : 0;
}

int
it_mxd_log_has(struct it_mxd *m, const char *needle)
{
	char *s = slurp(m->log, m->mark, NULL);
	int found = s != NULL && strstr(s, needle) != NULL;

	free(s);
	return (found);
}

/* If ${m} has exited, reap it.  Returns 1 if it is gone. */
static int
reap(struct it_mxd *m)
{
	pid_t r;

	if (m->pid <= 0)
		return (1);
	r = waitpid(m->pid, &m->status, WNOHANG);
	if (r == m->pid) {
		m->pid = -1;
		return (1);
	}
	return (0);
}

void
it_mxd_wait_log(struct it_mxd *m, const char *needle, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	int gone;

	for (;;) {
		if (it_mxd_log_has(m, needle))
			return;
		gone = reap(m);
		if (gone && it_mxd_log_has(m, needle))
			return;
		if (gone || it_now_ms() >= deadline)
			break;
		sleep_ms(IT_POLL_MS);
	}
	it_mxd_show_log(m);
	ck_abort_msg("%s: no \"%s\" in the log %s %d ms (status %#x)",
	    m->log, needle, gone ? "before mxd exited, within" : "within", ms,
	    gone ? m->status : 0);
}

void
it_mxd_signal(struct it_mxd *m, int sig)
{

	ck_assert_msg(m->pid > 0, "%s: mxd not running", m->log);
	ck_assert_msg(kill(m->pid, sig) == 0, "kill: %s", strerror(errno));
}

int
it_mxd_wait_exit(struct it_mxd *m, int ms)
{
	int64_t deadline = it_now_ms() + ms;

	while (!reap(m)) {
		if (it_now_ms() >= deadline) {
			kill(m->pid, SIGKILL);
			(void)waitpid(m->pid, &m->status, 0);
			m->pid = -1;
			return (-1);
		}
		sleep_ms(IT_POLL_MS);
	}
	return (m->status);
}

void
it_mxd_kill(struct it_mxd *m)
{

	if (m->pid <= 0)
		return;
	kill(m->pid, SIGKILL);
	(void)waitpid(m->pid, &m->status, 0);
	m->pid = -1;
}

void
it_mxd_check_log(struct it_mxd *m)
{
	char *s = slurp(m->log, 0, NULL);
	const char *hit = NULL;
	int i;

	if (s == NULL)
		return;
	for (i = 0; bad_marks[i] != NULL && hit == NULL; i++)
		hit = strstr(s, bad_marks[i]);
	if (hit != NULL) {
		fprintf(stderr, "---- %s: report:\n%.*s\n----\n", m->log,
		    6000, hit);
		free(s);
		ck_abort_msg("%s: mxd's log has a sanitizer report or a "
		    "libevent message", m->log);
	}
	free(s);
}

void
it_mxd_stop(struct it_mxd *m, int ms)
{
	int st;

	if (m->pid > 0)
		it_mxd_signal(m, SIGTERM);
	st = it_mxd_wait_exit(m, ms);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		it_mxd_show_log(m);
		it_mxd_check_log(m);
		if (st == -1)
			ck_abort_msg("%s: mxd did not exit within %d ms of "
			    "SIGTERM", m->log, ms);
		ck_abort_msg("%s: mxd ended with %s %d, not exit 0", m->log,
		    WIFEXITED(st) ? "exit" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	it_mxd_check_log(m);
}

/* ------------------------------------------------------------ a pair */

#define A_LINK	"reconnect_min = 100ms\nreconnect_max = 1s\n" \
		"connect_timeout = 10s\ndrain_timeout = 20s\n"
#define B_LINK	"drain_timeout = 20s\n"

void
it_pair_write_a(struct it_pair *p, const char *services)
{

	p->a_conf = it_write_file("a.conf", it_fmt(
	    "; side A: dials the link (mxd runs with -v: debug)\n"
	    "[link]\nconnect = %s:%d\n%s%s\n%s", IT_HOST, p->link_port, A_LINK,
	    p->extra ? p->extra : "", services));
}

void
it_pair_write_b(struct it_pair *p, const char *services)
{

	p->b_conf = it_write_file("b.conf", it_fmt(
	    "; side B: listens for the link (mxd runs with -v: debug)\n"
	    "[link]\nlisten = %s:%d\n%s%s\n%s", IT_HOST, p->link_port, B_LINK,
	    p->extra ? p->extra : "", services));
}

void
it_pair_start(struct it_pair *p, const char *a_services,
    const char *b_services)
{

	it_pair_start_extra(p, NULL, a_services, b_services);
}

void
it_pair_start_extra(struct it_pair *p, const char *extra,
    const char *a_services, const char *b_services)
{

	memset(p, 0, sizeof(*p));
	p->extra = extra;
	p->link_port = it_free_port();
	it_pair_write_a(p, a_services);
	it_pair_write_b(p, b_services);
	p->b = it_mxd_start(p->b_conf);
	it_mxd_wait_log(p->b, "link: waiting for the peer", IT_WAIT_MS);
	p->a = it_mxd_start(p->a_conf);
	it_mxd_wait_log(p->a, "up (connected)", IT_WAIT_MS);
	it_mxd_wait_log(p->b, "up (accepted)", IT_WAIT_MS);
}

char *
it_svc_accept(const char *name, int port)
{

	return (it_fmt("[%s]\naccept = %s:%d\n\n", name, IT_HOST, port));
}

char *
it_svc_connect(const char *name, int port)
{

	return (it_fmt("[%s]\nconnect = %s:%d\n\n", name, IT_HOST, port));
}

/* ------------------------------------------------------------ data */

static inline uint64_t
mix64(uint64_t x)
{

	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (x ^ (x >> 31));
}

/* Word ${i} of stream ${seed}. */
static inline uint64_t
gen_word(uint64_t seed, uint64_t i)
{

	return (mix64(seed * 0xd6e8feb86659fd93ull + i));
}

void
it_gen(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t w, i = off / 8;
	size_t k = (size_t)(off % 8);

	while (len > 0 && (k != 0 || len < 8)) {
		w = gen_word(seed, i);
		for (; k < 8 && len > 0; k++, len--)
			*p++ = (unsigned char)(w >> (8 * k));
		if (k == 8) {
			k = 0;
			i++;
		}
	}
	while (len >= 8) {
		w = gen_word(seed, i++);
		/* Little-endian byte order, as the slow path above. */
		p[0] = (unsigned char)w;
		p[1] = (unsigned char)(w >> 8);
		p[2] = (unsigned char)(w >> 16);
		p[3] = (unsigned char)(w >> 24);
		p[4] = (unsigned char)(w >> 32);
		p[5] = (unsigned char)(w >> 40);
		p[6] = (unsigned char)(w >> 48);
		p[7] = (unsigned char)(w >> 56);
		p += 8;
		len -= 8;
	}
	if (len > 0) {
		w = gen_word(seed, i);
		for (k = 0; k < len; k++)
			*p++ = (unsigned char)(w >> (8 * k));
	}
}

long
it_verify(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
	unsigned char want[4096];
	const unsigned char *p = buf;
	size_t done = 0, n, i;

	while (done < len) {
		n = len - done < sizeof(want) ? len - done : sizeof(want);
		it_gen(seed, off + done, want, n);
		if (memcmp(want, p + done, n) != 0) {
			for (i = 0; want[i] == p[done + i]; i++)
				continue;
			return ((long)(done + i));
		}
		done += n;
	}
	return (-1);
}

uint64_t
it_hash(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len-- > 0) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return (h);
}

/* ------------------------------------------------------------ targets */

#define T_ECHO_HIWAT	(1024 * 1024)
#define T_BLAST_LOWAT	(256 * 1024)
#define T_BLAST_HIWAT	(1024 * 1024)

/* One connection of the target process. */
struct tconn {
	enum it_kind	kind;
	struct bufferevent *bev;
	struct it_stats	*st;
	struct evbuffer	*acc;		/* IT_LATE: everything read */
	uint64_t	n, hash;	/* bytes read, their hash */
	uint64_t	size, seed, added;	/* IT_BLAST */
	char		first[8];	/* IT_HELLO: the first bytes */
	char		line[64];	/* IT_BLAST: the request */
	size_t		linelen;
	int		eof, shut, started;
};

struct tlisten {
	enum it_kind	kind;
	struct it_stats	*st;
};

static void
tconn_free(struct tconn *c)
{

	bufferevent_free(c->bev);
	if (c->acc != NULL)
		evbuffer_free(c->acc);
	free(c);
}

/* IT_BLAST: keep the output topped up; end once all is written. */
static void
blast_fill(struct tconn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	size_t n;

	while (c->added < c->size && evbuffer_get_length(out) < T_BLAST_HIWAT) {
		n = c->size - c->added < IT_CHUNK ? (size_t)(c->size - c->added)
		    : IT_CHUNK;
		if (evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) < 1)
			break;
		it_gen(c->seed, c->added, v.iov_base, n);
		v.iov_len = n;
		evbuffer_commit_space(out, &v, 1);
		c->added += n;
	}
	atomic_store(&c->st->blast_sent, c->added - evbuffer_get_length(out));
	if (c->added == c->size && evbuffer_get_length(out) == 0) {
		atomic_fetch_add(&c->st->blast_done, 1);
		tconn_free(c);
	}
}

static void
t_read_cb(struct bufferevent *bev, void *arg)
{
	struct tconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t len = evbuffer_get_length(in), n;
	unsigned char buf[IT_CHUNK];
	char *nl;

	switch (c->kind) {
	case IT_ECHO:
		evbuffer_add_buffer(out, in);
		if (evbuffer_get_length(out) >= T_ECHO_HIWAT)
			bufferevent_disable(bev, EV_READ);
		break;
	case IT_LATE:
		evbuffer_add_buffer(c->acc, in);
		break;
	case IT_SINK:
		c->n += len;
		evbuffer_drain(in, len);
		break;
	case IT_HELLO:
		if (c->n < sizeof(c->first))
			evbuffer_copyout(in, c->first + c->n,
			    sizeof(c->first) - (size_t)c->n);
		c->n += len;
		evbuffer_drain(in, len);
		break;
	case IT_BANNER:
		while ((n = (size_t)evbuffer_remove(in, buf, sizeof(buf))) > 0
		    && n != (size_t)-1) {
			c->hash = it_hash(c->hash, buf, n);
			c->n += n;
		}
		break;
	case IT_BLAST:
		if (c->started) {
			evbuffer_drain(in, len);
			break;
		}
		n = sizeof(c->line) - 1 - c->linelen;
		n = (size_t)evbuffer_remove(in, c->line + c->linelen,
		    len < n ? len : n);
		c->linelen += n;
		c->line[c->linelen] = '\0';
		if ((nl = strchr(c->line, '\n')) == NULL) {
			if (c->linelen == sizeof(c->line) - 1)
				tconn_free(c);	/* garbage */
			break;
		}
		c->started = 1;
		c->size = strtoull(c->line, &nl, 10);
		c->seed = strtoull(nl, NULL, 10);
		bufferevent_setwatermark(bev, EV_WRITE, T_BLAST_LOWAT, 0);
		blast_fill(c);
		break;
	default:
		break;
	}
}

static void
t_write_cb(struct bufferevent *bev, void *arg)
{
	struct tconn *c = arg;

	switch (c->kind) {
	case IT_ECHO:
		if (c->eof)
			tconn_free(c);
		else
			bufferevent_enable(bev, EV_READ);
		break;
	case IT_LATE:
	case IT_SINK:
		if (c->eof)
			tconn_free(c);
		break;
	case IT_BANNER:
		if (!c->shut) {
			c->shut = 1;
			(void)shutdown(bufferevent_getfd(bev), SHUT_WR);
		}
		break;
	case IT_BLAST:
		if (c->started)
			blast_fill(c);
		break;
	default:
		break;
	}
}

static void
t_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tconn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);

	if (!(what & BEV_EVENT_EOF) || (what & BEV_EVENT_ERROR)) {
		tconn_free(c);
		return;
	}
	c->eof = 1;
	switch (c->kind) {
	case IT_ECHO:
		if (evbuffer_get_length(out) == 0)
			tconn_free(c);
		break;
	case IT_LATE:
		evbuffer_add_buffer(out, c->acc);
		if (evbuffer_get_length(out) == 0)
			tconn_free(c);
		break;
	case IT_SINK:
		evbuffer_add_printf(out, "%llu\n", (unsigned long long)c->n);
		atomic_fetch_add(&c->st->sink_done, 1);
		break;
	case IT_HELLO:
		if (c->n == 5 && memcmp(c->first, "hello", 5) == 0)
			atomic_fetch_add(&c->st->hello, 1);
		else
			atomic_fetch_add(&c->st->hello_bad, 1);
		tconn_free(c);
		break;
	case IT_BANNER:
		atomic_store(&c->st->banner_len, c->n);
		atomic_store(&c->st->banner_hash, c->hash);
		atomic_fetch_add(&c->st->banner_done, 1);
		tconn_free(c);
		break;
	default:	/* IT_BLAST: the client shut down; keep sending */
		if (!c->started)
			tconn_free(c);
		break;
	}
}

static void
t_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct tlisten *tl = arg;
	struct tconn *c;

	(void)sa;
	(void)salen;
	atomic_fetch_add(&tl->st->accepted, 1);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->kind = tl->kind;
	c->st = tl->st;
	c->hash = IT_HASH_INIT;
	c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL || (c->kind == IT_LATE &&
	    (c->acc = evbuffer_new()) == NULL)) {
		if (c->bev == NULL)
			close(fd);
		else
			bufferevent_free(c->bev);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, t_read_cb, t_write_cb, t_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (c->kind == IT_BANNER)
		bufferevent_write(c->bev, IT_BANNER_TEXT,
		    strlen(IT_BANNER_TEXT));
}

/* The target process: serve ${fds} until killed. */
static void
target_main(const int *fds, struct it_stats *st)
{
	struct tlisten tl[IT_NKINDS];
	struct event_base *base;
	int k;

	if ((base = event_base_new()) == NULL)
		_exit(1);
	for (k = 0; k < IT_NKINDS; k++) {
		tl[k].kind = (enum it_kind)k;
		tl[k].st = st;
		evutil_make_socket_nonblocking(fds[k]);
		if (evconnlistener_new(base, t_accept_cb, &tl[k],
		    LEV_OPT_CLOSE_ON_FREE, 0, fds[k]) == NULL)
			_exit(1);
	}
	event_base_dispatch(base);
	_exit(0);
}

/* Run the targets of ${t} on listening sockets ${fds} in a child process
 * (it dies with us); the sockets are the child's alone afterwards. */
static void
targets_fork(struct it_targets *t, int *fds)
{
	int k;

	if ((t->pid = fork_tied()) == 0)
		target_main(fds, t->st);
	for (k = 0; k < IT_NKINDS; k++)
		it_close(fds[k]);
}

struct it_targets *
it_targets_start(void)
{
	struct it_targets *t;
	struct sockaddr_in sin;
	socklen_t sl;
	int fds[IT_NKINDS], k, one = 1;

	ck_assert_msg(H.targets == NULL, "targets already started");
	ck_assert_msg((t = calloc(1, sizeof(*t))) != NULL, "out of memory");
	t->pid = -1;
	t->st = mmap(NULL, sizeof(*t->st), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t->st == MAP_FAILED) {
		free(t);
		ck_abort_msg("mmap: %s", strerror(errno));
	}
	H.targets = t;
	for (k = 0; k < IT_NKINDS; k++) {
		fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_msg(fds[k] >= 0, "socket: %s", strerror(errno));
		it_track(fds[k]);
		(void)setsockopt(fds[k], SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_msg(bind(fds[k], (struct sockaddr *)&sin,
		    sizeof(sin)) == 0 && listen(fds[k], 4096) == 0,
		    "bind/listen: %s", strerror(errno));
		sl = sizeof(sin);
		ck_assert_msg(getsockname(fds[k], (struct sockaddr *)&sin,
		    &sl) == 0, "getsockname: %s", strerror(errno));
		t->port[k] = ntohs(sin.sin_port);
		if (H.nports < IT_MAX_PORTS)
			H.ports[H.nports++] = t->port[k];
	}
	t->refused = it_free_port();
	targets_fork(t, fds);
	return (t);
}

/* ------------------------------------------------------------ a relay */

static void loopback(struct sockaddr_in *, int);

#define RELAY_PAIRS	64
#define RELAY_BUF	(64 * 1024)

/* One direction of a relayed connection: bytes read from one socket, not
 * yet written to the other. */
struct rdir {
	char	buf[RELAY_BUF];
	size_t	off, len;
	int	eof;		/* the reading side ended */
	int	shut;		/* ... and that was passed on */
};

struct rpair {
	int		fd[2];		/* accepted, connected; -1: free */
	struct rdir	d[2];		/* d[k]: from fd[k] to fd[1 - k] */
};

/* Close both sockets of ${p}, with RST if ${rst}. */
static void
rpair_close(struct rpair *p, int rst)
{
	struct linger lg = { 1, 0 };
	int k;

	for (k = 0; k < 2; k++) {
		if (rst)
			(void)setsockopt(p->fd[k], SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
		close(p->fd[k]);
		p->fd[k] = -1;
	}
}

/* Move what can move in direction ${k} of ${p}.  Returns -1 on an error
 * (the pair is to be reset), 0 otherwise. */
static int
rpair_pump(struct rpair *p, int k)
{
	struct rdir *d = &p->d[k];
	ssize_t n;

	if (d->len == 0 && !d->eof) {
		d->off = 0;
		n = read(p->fd[k], d->buf, sizeof(d->buf));
		if (n < 0)
			return (errno == EAGAIN || errno == EINTR ? 0 : -1);
		if (n == 0)
			d->eof = 1;
		d->len = (size_t)n;
	}
	while (d->len > 0) {
		n = write(p->fd[1 - k], d->buf + d->off, d->len);
		if (n < 0)
			return (errno == EAGAIN || errno == EINTR ? 0 : -1);
		d->off += (size_t)n;
		d->len -= (size_t)n;
	}
	if (d->eof && !d->shut) {
		(void)shutdown(p->fd[1 - k], SHUT_WR);
		d->shut = 1;
	}
	return (0);
}

/* SIGUSR1 in the relay: it_relay_drop_dialers. */
static volatile sig_atomic_t relay_drop;

static void
relay_drop_handler(int sig)
{

	(void)sig;
	relay_drop = 1;
}

/*
 * it_relay_drop_dialers, in the relay: reset the connections of ${pairs}
 * on the dialer's side, and leave those to the listener open and unread
 * (their descriptors stay with the relay until it exits), as a NAT that
 * forgot a mapping does: the listener hears nothing.
 */
static void
relay_drop_dialers(struct rpair *pairs)
{
	struct linger lg = { 1, 0 };
	int i;

	for (i = 0; i < RELAY_PAIRS; i++)
		if (pairs[i].fd[0] >= 0) {
			(void)setsockopt(pairs[i].fd[0], SOL_SOCKET, SO_LINGER,
			    &lg, sizeof(lg));
			close(pairs[i].fd[0]);
			pairs[i].fd[0] = pairs[i].fd[1] = -1;
		}
}

/* The relay process: accept on ${lfd}, relay each to 127.0.0.1:${to}. */
static void
relay_main(int lfd, int to)
{
	static struct rpair pairs[RELAY_PAIRS];
	struct pollfd pfd[1 + 2 * RELAY_PAIRS];
	struct sigaction sa;
	struct sockaddr_in sin;
	sigset_t usr1;
	int i, k, n, fd, c;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = relay_drop_handler;	/* no SA_RESTART: poll ends */
	(void)sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	(void)sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	for (i = 0; i < RELAY_PAIRS; i++)
		pairs[i].fd[0] = pairs[i].fd[1] = -1;
	for (;;) {
		if (relay_drop) {
			relay_drop = 0;
			relay_drop_dialers(pairs);
		}
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0, n = 1; i < RELAY_PAIRS; i++)
			for (k = 0; k < 2; k++) {
				pfd[n].fd = pairs[i].fd[k];
				pfd[n].events = 0;
				if (pairs[i].fd[k] >= 0 && pairs[i].d[k].len ==
				    0 && !pairs[i].d[k].eof)
					pfd[n].events |= POLLIN;
				if (pairs[i].fd[k] >= 0 &&
				    pairs[i].d[1 - k].len > 0)
					pfd[n].events |= POLLOUT;
				n++;
			}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno != EINTR)
				_exit(1);
			continue;
		}
		if ((pfd[0].revents & POLLIN) &&
		    (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
			for (i = 0; i < RELAY_PAIRS && pairs[i].fd[0] >= 0; i++)
				continue;
			loopback(&sin, to);
			/* A blocking connect: to loopback it is immediate. */
			if (i == RELAY_PAIRS ||
			    (c = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
				close(fd);
			} else if (connect(c, (struct sockaddr *)&sin,
			    sizeof(sin)) != 0) {
				close(c);
				close(fd);
			} else {
				(void)fcntl(c, F_SETFL, O_NONBLOCK);
				memset(&pairs[i], 0, sizeof(pairs[i]));
				pairs[i].fd[0] = fd;
				pairs[i].fd[1] = c;
				continue;	/* pfd no longer matches */
			}
		}
		for (i = 0, n = 1; i < RELAY_PAIRS; i++, n += 2) {
			if (pairs[i].fd[0] < 0)
				continue;
			if (pfd[n].revents == 0 && pfd[n + 1].revents == 0)
				continue;
			if (rpair_pump(&pairs[i], 0) || rpair_pump(&pairs[i], 1))
				rpair_close(&pairs[i], 1);
			else if (pairs[i].d[0].shut && pairs[i].d[1].shut)
				rpair_close(&pairs[i], 0);
		}
	}
}

/* Listen on ${port} (0: any) for relay ${r} and run it in a child. */
static void
relay_fork(struct it_relay *r, int port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	sigset_t usr1, old;
	int lfd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(lfd >= 0, "socket: %s", strerror(errno));
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	loopback(&sin, port);
	ck_assert_msg(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    listen(lfd, 64) == 0, "relay: bind/listen %d: %s", port,
	    strerror(errno));
	ck_assert(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);
	r->port = ntohs(sin.sin_port);
	/* SIGUSR1 waits until the child handles it (relay_main). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	(void)sigprocmask(SIG_BLOCK, &usr1, &old);
	if ((r->pid = fork_tied()) == 0)
		relay_main(lfd, r->to);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	close(lfd);
}

struct it_relay *
it_relay_start(int to)
{
	struct it_relay *r;

	ck_assert_msg(H.nrelays < 4, "too many relays");
	ck_assert_msg((r = calloc(1, sizeof(*r))) != NULL, "out of memory");
	r->pid = -1;
	r->to = to;
	H.relays[H.nrelays++] = r;
	relay_fork(r, 0);
	if (H.nports < IT_MAX_PORTS)
		H.ports[H.nports++] = r->port;
	return (r);
}

void
it_relay_cut(struct it_relay *r)
{

	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		(void)waitpid(r->pid, NULL, 0);
		r->pid = -1;
	}
}

void
it_relay_restart(struct it_relay *r)
{

	it_relay_cut(r);
	relay_fork(r, r->port);
}

void
it_relay_freeze(struct it_relay *r)
{

	ck_assert(r->pid > 0 && kill(r->pid, SIGSTOP) == 0);
}

void
it_relay_thaw(struct it_relay *r)
{

	ck_assert(r->pid > 0 && kill(r->pid, SIGCONT) == 0);
}

void
it_relay_drop_dialers(struct it_relay *r)
{

	ck_assert(r->pid > 0 && kill(r->pid, SIGUSR1) == 0);
}

/* ------------------------------------------------------------ clients */

/* Set receive and send timeouts of ${ms} on ${fd}. */
static void
set_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void
loopback(struct sockaddr_in *sin, int port)
{

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons((uint16_t)port);
}

/* A blocking connection to ${sa} (size ${len}) with the tests' timeouts,
 * or -1 with errno set. */
static int
connect_to(const struct sockaddr *sa, socklen_t len)
{
	int fd, e;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	it_track(fd);
	set_timeouts(fd, IT_WAIT_MS);
	if (connect(fd, sa, len) == -1) {
		e = errno;
		it_close(fd);
		errno = e;
		return (-1);
	}
	return (fd);
}

int
it_connect(int port)
{
	struct sockaddr_in sin;

	loopback(&sin, port);
	return (connect_to((struct sockaddr *)&sin, sizeof(sin)));
}

int
it_connect6(int port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	sin6.sin6_port = htons((uint16_t)port);
	return (connect_to((struct sockaddr *)&sin6, sizeof(sin6)));
}

int
it_listen(int backlog, int rcvbuf, int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	it_track(fd);
	if (rcvbuf > 0)
		ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)) == 0);
	loopback(&sin, it_free_port());
	ck_assert_msg(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "bind: %s", strerror(errno));
	ck_assert(listen(fd, backlog) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
	*port = ntohs(sin.sin_port);
	return (fd);
}

int
it_accept(int lfd)
{
	struct pollfd pfd = { lfd, POLLIN, 0 };
	int fd;

	ck_assert_msg(poll(&pfd, 1, IT_WAIT_MS) == 1, "nothing to accept "
	    "within %d ms", IT_WAIT_MS);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_msg(fd >= 0, "accept: %s", strerror(errno));
	it_track(fd);
	set_timeouts(fd, IT_WAIT_MS);
	return (fd);
}

int
it_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

ssize_t
it_recv_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, p + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return (-1);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return ((ssize_t)got);
}

long
it_recv_wait(int fd, void *buf, size_t len, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	struct pollfd pfd;
	ssize_t n;
	int left, r;

	for (;;) {
		left = (int)(deadline - it_now_ms());
		if (left < 0)
			left = 0;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return (-errno);
		if (r == 0)
			return (IT_TIMEOUT);
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return ((long)n);
		if (errno != EAGAIN && errno != EINTR)
			return (-errno);
		if (it_now_ms() >= deadline)
			return (IT_TIMEOUT);
	}
}

long
it_drain_wait(int fd, int ms, uint64_t *total)
{
	int64_t deadline = it_now_ms() + ms;
	char buf[16384];
	long n;
	int left;

	*total = 0;
	for (;;) {
		left = (int)(deadline - it_now_ms());
		n = it_recv_wait(fd, buf, sizeof(buf), left > 0 ? left : 0);
		if (n <= 0)
			return (n);
		*total += (uint64_t)n;
	}
}

/* Fail flow ${f} with ${err} (errno, or -1 for a mismatch, -2 for an early
 * EOF), noting the first failure in ${msg}. */
static void
flow_fail(struct it_flow *f, size_t i, int err, const char *what, char *msg,
    size_t msglen)
{

	f->err = err;
	if (msg[0] == '\0')
		snprintf(msg, msglen, "flow %zu (port %d, %zu bytes): %s: %s "
		    "(sent %zu, got back %zu)", i, f->port, f->size, what,
		    err == -1 ? "data differs" : err == -2 ? "early EOF" :
		    err == -3 ? "too much data" : strerror(err), f->tx, f->rx);
	if (f->fd >= 0) {
		it_close(f->fd);
		f->fd = -1;
	}
}

/* Start flow ${i} of ${f} (a non-blocking connect to its port). */
static void
flow_start(struct it_flow *f, size_t i, char *msg, size_t msglen)
{
	struct sockaddr_in sin;

	f->started = 1;
	f->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0) {
		flow_fail(f, i, errno, "socket", msg, msglen);
		return;
	}
	it_track(f->fd);
	loopback(&sin, f->port);
	if (connect(f->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		f->connected = 1;
	else if (errno != EINPROGRESS)
		flow_fail(f, i, errno, "connect", msg, msglen);
}

size_t
it_flows_run(struct it_flow *f, size_t n, int ms, char *msg, size_t msglen)
{

	return (it_flows_run_tick(f, n, ms, msg, msglen, NULL, NULL));
}

size_t
it_flows_run_tick(struct it_flow *f, size_t n, int ms, char *msg,
    size_t msglen, int (*tick)(void *), void *arg)
{
	int64_t deadline = it_now_ms() + ms;
	struct pollfd *pfd;
	size_t *idx, i, k, active, waiting, bad = 0;
	unsigned char *buf;
	socklen_t sl;
	ssize_t r;
	long off;
	int e, left;

	msg[0] = '\0';
	pfd = keep(calloc(n ? n : 1, sizeof(*pfd)));
	idx = keep(calloc(n ? n : 1, sizeof(*idx)));
	buf = keep(malloc(IT_CHUNK));
	for (i = 0; i < n; i++) {
		f[i].tx = f[i].rx = 0;
		f[i].done = f[i].err = f[i].shut = f[i].connected = 0;
		f[i].started = 0;
		f[i].fd = -1;
	}
	for (;;) {
		if (tick != NULL && tick(arg)) {
			snprintf(msg, msglen, "the test's tick failed");
			break;
		}
		for (i = 0, active = waiting = 0; i < n; i++) {
			if (!f[i].started && f[i].port != 0)
				flow_start(&f[i], i, msg, msglen);
			waiting += !f[i].started;
			if (f[i].fd < 0)
				continue;
			pfd[active].fd = f[i].fd;
			pfd[active].events = POLLIN;
			if (!f[i].connected || !f[i].shut)
				pfd[active].events |= POLLOUT;
			pfd[active].revents = 0;
			idx[active++] = i;
		}
		if (active == 0 && waiting == 0)
			break;
		left = (int)(deadline - it_now_ms());
		if (left <= 0) {
			for (k = 0; k < active; k++)
				flow_fail(&f[idx[k]], idx[k], ETIMEDOUT,
				    "deadline", msg, msglen);
			break;
		}
		if (poll(pfd, active, left < 20 ? left : 20) < 0) {
			ck_assert_msg(errno == EINTR, "poll: %s",
			    strerror(errno));
			continue;
		}
		for (k = 0; k < active; k++) {
			struct it_flow *fl = &f[idx[k]];
			short re = pfd[k].revents;

			if (re == 0)
				continue;
			i = idx[k];
			if (!fl->connected) {
				sl = sizeof(e);
				if (getsockopt(fl->fd, SOL_SOCKET, SO_ERROR, &e,
				    &sl) == -1)
					e = errno;
				if (e != 0) {
					flow_fail(fl, i, e, "connect", msg,
					    msglen);
					continue;
				}
				fl->connected = 1;
			}
			while ((re & POLLOUT) && fl->tx < fl->size) {
				size_t want = fl->size - fl->tx;

				if (want > IT_CHUNK)
					want = IT_CHUNK;
				it_gen(fl->seed, fl->tx, buf, want);
				r = send(fl->fd, buf, want, MSG_NOSIGNAL);
				if (r < 0) {
					if (errno != EAGAIN && errno != EINTR)
						flow_fail(fl, i, errno, "send",
						    msg, msglen);
					break;
				}
				fl->tx += (size_t)r;
			}
			if (fl->fd < 0)
				continue;
			if (fl->tx == fl->size && !fl->shut) {
				if (shutdown(fl->fd, SHUT_WR) == -1) {
					flow_fail(fl, i, errno, "shutdown",
					    msg, msglen);
					continue;
				}
				fl->shut = 1;
			}
			if (!(re & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (;;) {
				r = recv(fl->fd, buf, IT_CHUNK, 0);
				if (r < 0) {
					if (errno != EAGAIN && errno != EINTR)
						flow_fail(fl, i, errno, "recv",
						    msg, msglen);
					break;
				}
				if (r == 0) {
					if (fl->rx == fl->size && fl->shut) {
						fl->done = 1;
						it_close(fl->fd);
						fl->fd = -1;
					} else {
						flow_fail(fl, i, -2, "recv",
						    msg, msglen);
					}
					break;
				}
				if (fl->rx + (size_t)r > fl->size) {
					flow_fail(fl, i, -3, "recv", msg,
					    msglen);
					break;
				}
				if ((off = it_verify(fl->seed, fl->rx, buf,
				    (size_t)r)) >= 0) {
					fl->rx += (size_t)off;
					flow_fail(fl, i, -1, "recv", msg,
					    msglen);
					break;
				}
				fl->rx += (size_t)r;
			}
		}
	}
	for (i = 0; i < n; i++)
		if (!f[i].done)
			bad++;
	unkeep(buf);
	unkeep(idx);
	unkeep(pfd);
	return (bad);
}

/* ------------------------------------------------------------ suites */

int
it_wanted(const char *name)
{
	const char *only = getenv("MXD_TEST"), *p;
	size_t len = strlen(name);

	if (only == NULL || only[0] == '\0')
		return (1);
	for (p = only; (p = strstr(p, name)) != NULL; p += len)
		if ((p == only || p[-1] == ',') &&
		    (p[len] == '\0' || p[len] == ','))
			return (1);
	return (0);
}

int
it_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

void
it_finish_client(int fd, const char *what)
{
	char c;
	long r;

	ck_assert_msg(shutdown(fd, SHUT_WR) == 0, "%s: shutdown: %s", what,
	    strerror(errno));
	r = it_recv_wait(fd, &c, 1, IT_WAIT_MS);
	ck_assert_msg(r == 0, "%s: expected EOF, got %ld (%s)", what, r,
	    r < 0 && r != IT_TIMEOUT ? strerror((int)-r) : "");
	it_close(fd);
}

void
it_echo(int fd, const char *msg)
{
	size_t len = strlen(msg);
	char buf[256];

	ck_assert(len < sizeof(buf));
	ck_assert_msg(it_send_all(fd, msg, len) == 0, "send: %s",
	    strerror(errno));
	ck_assert_msg(it_recv_full(fd, buf, len) == (ssize_t)len,
	    "\"%s\": no echo: %s", msg, strerror(errno));
	ck_assert(memcmp(buf, msg, len) == 0);
}

char *
it_http_get(int port, const char *path)
{
	char *req = it_fmt("GET %s HTTP/1.0\r\n\r\n", path);
	char *buf = it_calloc(1, 65536);
	size_t have = 0;
	long n;
	int fd;

	fd = it_connect(port);
	ck_assert_msg(fd >= 0, "connect to HTTP port %d: %s", port,
	    strerror(errno));
	ck_assert(it_send_all(fd, req, strlen(req)) == 0);
	while (have < 65535 && (n = it_recv_wait(fd, buf + have,
	    65535 - have, IT_WAIT_MS)) > 0)
		have += (size_t)n;
	it_close(fd);
	return (buf);
}

long long
it_metric(int port, const char *series)
{
	char *buf = it_http_get(port, "/metrics"), *p, *want;

	want = it_fmt("\n%s ", series);
	if ((p = strstr(buf, want)) == NULL)
		return (-1);
	return (strtoll(p + strlen(want), NULL, 10));
}

long long
it_metric_wait(int port, const char *series, long long want, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	long long v;

	while ((v = it_metric(port, series)) != want && it_now_ms() < deadline)
		sleep_ms(20);		/* each look is an HTTP request */
	return (v);
}

/* ------------------------------------------------------------ additions */

/*
 * Give the calling process (a child about to exec mxd) its own empty
 * /run/mxd.  The default control socket is /run/mxd/STEM/control.sock, and
 * suites run side by side with configurations of the same names (a.conf):
 * without this one test's mxd would find another's socket, connect to it
 * to see whether it answers, and so take a descriptor of a daemon under
 * test.  Without the privilege for it (not root) nothing changes, and
 * /run/mxd is then not writable for the daemon either.
 */
static void
private_run_mxd(void)
{

	if (mkdir("/run/mxd", 0755) == -1 && errno != EEXIST)
		return;
	if (unshare(CLONE_NEWNS) == -1)
		return;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount("tmpfs", "/run/mxd", "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=1m,mode=0755") == -1) {
		dprintf(2, "itest: a private /run/mxd: %s\n", strerror(errno));
		_exit(127);
	}
}

/* Fork and exec ${m} as its fields say; truncate its log if ${trunc}. */
static void
spawn(struct it_mxd *m, int trunc)
{
	const char *bin = getenv("MXD_BIN");
	const char *nspath = NULL;
	struct rlimit rl;
	int fd;

	if (m->netns != NULL)
		nspath = it_fmt("/run/netns/%s", m->netns);
	if ((m->pid = fork_tied()) != 0)
		return;
	signal(SIGPIPE, SIG_DFL);
	if ((fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND |
	    (trunc ? O_TRUNC : 0), 0644)) == -1)
		_exit(127);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	if ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	if (nspath != NULL) {
		if ((fd = open(nspath, O_RDONLY | O_CLOEXEC)) == -1 ||
		    setns(fd, CLONE_NEWNET) == -1) {
			dprintf(2, "itest: setns %s: %s\n", nspath,
			    strerror(errno));
			_exit(127);
		}
		close(fd);
	}
	private_run_mxd();
	if (m->nofile > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)m->nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			dprintf(2, "itest: setrlimit: %s\n", strerror(errno));
			_exit(127);
		}
	}
	execl(bin, "mxd", "-c", m->conf, "-v", (char *)NULL);
	dprintf(2, "itest: exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

struct it_mxd *
it_mxd_start_opts(const char *conf, const struct it_mxd_opts *o)
{
	struct it_mxd *m;

	ck_assert_msg(H.nmxd < IT_MAX_MXD, "too many mxd");
	ck_assert_msg((m = calloc(1, sizeof(*m))) != NULL, "out of memory");
	H.mxd[H.nmxd++] = m;
	m->pid = -1;
	m->conf = it_fmt("%s", conf);
	m->log = it_fmt("%s/mxd-%d.log", H.dir, H.nmxd);
	if (o != NULL) {
		m->netns = o->netns != NULL ? it_fmt("%s", o->netns) : NULL;
		m->nofile = o->nofile;
	}
	spawn(m, 1);
	return (m);
}

void
it_mxd_restart(struct it_mxd *m)
{

	it_mxd_kill(m);
	it_mxd_mark(m);
	spawn(m, 0);
}

int
it_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return (n);
}

int
it_fd_settled(struct it_mxd *m)
{
	int64_t deadline = it_now_ms() + IT_WAIT_MS;
	int a, b;

	for (;;) {
		a = it_fd_count(m->pid);
		sleep_ms(50);
		b = it_fd_count(m->pid);
		if (a == b || it_now_ms() > deadline)
			return (b);
	}
}

int
it_fd_wait(pid_t pid, int want, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	int n;

	while ((n = it_fd_count(pid)) != want && it_now_ms() < deadline)
		sleep_ms(IT_POLL_MS);
	return (n);
}

long
it_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	/* After "(comm)": state, then fields 4..; utime and stime are the
	 * 14th and 15th fields of the line. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return (-1);
	return ((long)((ut + st) * 1000 / (unsigned long)(hz > 0 ? hz : 100)));
}

int
it_mxd_log_count(struct it_mxd *m, const char *needle)
{
	char line[4096];
	int n = 0;
	FILE *f;

	if ((f = fopen(m->log, "re")) == NULL)
		return (0);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return (n);
}

int
it_mxd_poll_log(struct it_mxd *m, const char *needle, int ms)
{
	int64_t deadline = it_now_ms() + ms;

	for (;;) {
		if (it_mxd_log_has(m, needle))
			return (1);
		if (it_now_ms() >= deadline)
			return (0);
		sleep_ms(IT_POLL_MS);
	}
}

void
it_targets_kill(struct it_targets *t)
{

	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		(void)waitpid(t->pid, NULL, 0);
		t->pid = -1;
	}
}

void
it_targets_restart(struct it_targets *t)
{
	struct sockaddr_in sin;
	int fds[IT_NKINDS], k, one = 1;

	it_targets_kill(t);
	for (k = 0; k < IT_NKINDS; k++) {
		fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_msg(fds[k] >= 0, "socket: %s", strerror(errno));
		it_track(fds[k]);
		(void)setsockopt(fds[k], SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		loopback(&sin, t->port[k]);
		ck_assert_msg(bind(fds[k], (struct sockaddr *)&sin,
		    sizeof(sin)) == 0 && listen(fds[k], 4096) == 0,
		    "bind/listen port %d again: %s", t->port[k],
		    strerror(errno));
	}
	targets_fork(t, fds);
}
