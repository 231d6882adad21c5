/*
 * netns: see netns.h.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "netns.h"

#define NT_PATH	"PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH; "
#define NT_PFX	"mxf"

static struct nt *cur;		/* the pair made, if any */
static struct nt made;
static int home = -1;		/* our own namespace, while in a side */
static pid_t registered;
static pid_t wanem = -1;	/* the emulator of nt_setup_wan, if running */

/* Run ${cmd}; returns its exit status, or -1. */
static int
run(const char *cmd)
{
	char *full;
	int st;

	if (asprintf(&full, NT_PATH "%s", cmd) < 0)
		return (-1);
	fflush(NULL);
	st = system(full);
	free(full);
	return (st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st));
}

void
nt_sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd, *quiet;
	int st;

	va_start(ap, fmt);
	ck_assert(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	ck_assert(asprintf(&quiet, "( %s ) >/dev/null 2>&1", cmd) >= 0);
	st = run(quiet);
	free(quiet);
	if (st != 0) {
		/* Again, to show what it said. */
		(void)run(cmd);
		ck_abort_msg("netns: \"%s\" exited %d", cmd, st);
	}
	free(cmd);
}

int
nt_available(char *why, size_t len)
{
	char *cmd;
	int probe;

	if (geteuid() != 0) {
		snprintf(why, len, "not root");
		return (0);
	}
	if (run("{ command -v ip && command -v tc && command -v nft; } >/dev/null "
	    "2>&1") != 0) {
		snprintf(why, len, "ip, tc or nft missing");
		return (0);
	}
	probe = asprintf(&cmd, "ip netns add " NT_PFX "%dprobe && ip netns del "
	    NT_PFX "%dprobe", (int)getpid(), (int)getpid()) < 0 ? -1 :
	    run(cmd);
	if (probe >= 0)
		free(cmd);
	if (probe != 0) {
		snprintf(why, len, "cannot make network namespaces here");
		return (0);
	}
	return (1);
}

/* Delete namespaces that tests no longer running left behind. */
static void
reap_stale(void)
{
	struct dirent *de;
	char *cmd;
	DIR *d;
	long pid;

	if ((d = opendir("/run/netns")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, NT_PFX, strlen(NT_PFX)) != 0)
			continue;
		pid = strtol(de->d_name + strlen(NT_PFX), NULL, 10);
		if (pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH)) {
			if (asprintf(&cmd, "ip netns del %s >/dev/null 2>&1",
			    de->d_name) >= 0) {
				(void)run(cmd);
				free(cmd);
			}
		}
	}
	closedir(d);
}

static void
teardown_atexit(void)
{

	nt_teardown();
}

void
nt_teardown(void)
{
	char *cmd;
	int i;

	nt_leave();
	if (wanem > 0) {
		kill(wanem, SIGKILL);
		(void)waitpid(wanem, NULL, 0);
		wanem = -1;
	}
	if (cur == NULL)
		return;
	for (i = 0; i < 2; i++) {
		if (asprintf(&cmd, "ip netns del %s >/dev/null 2>&1",
		    cur->ns[i]) >= 0) {
			(void)run(cmd);
			free(cmd);
		}
	}
	cur = NULL;
}

/* Name the namespaces and devices of ${n} (devices ${dev}, or the
 * namespaces' names if NULL) and make the namespaces. */
static void
make_namespaces(struct nt *n, const char *dev)
{
	int i, pid = (int)getpid();

	ck_assert_msg(cur == NULL, "netns: a pair is already set up");
	if (registered != getpid()) {
		registered = getpid();
		atexit(teardown_atexit);
	}
	reap_stale();
	memset(n, 0, sizeof(*n));
	for (i = 0; i < 2; i++) {
		snprintf(n->ns[i], sizeof(n->ns[i]), NT_PFX "%d%c", pid,
		    "ab"[i]);
		if (dev != NULL)
			snprintf(n->dev[i], sizeof(n->dev[i]), "%s", dev);
		else
			snprintf(n->dev[i], sizeof(n->dev[i]), NT_PFX "%d%c",
			    pid, "ab"[i]);
	}
	n->addr[0] = "10.231.200.1";
	n->addr[1] = "10.231.200.2";
	made = *n;
	cur = &made;
	nt_sh("ip netns add %s && ip netns add %s", n->ns[0], n->ns[1]);
}

/* Address ${n}'s devices (prefix /${bits}) and bring them and loopback
 * up. */
static void
address(const struct nt *n, int bits)
{
	int i;

	for (i = 0; i < 2; i++)
		nt_sh("ip -n %s addr add %s/%d dev %s && "
		    "ip -n %s link set lo up && ip -n %s link set %s up",
		    n->ns[i], n->addr[i], bits, n->dev[i], n->ns[i], n->ns[i],
		    n->dev[i]);
}

void
nt_setup(struct nt *n)
{
	int i;

	make_namespaces(n, NULL);
	nt_sh("ip link add %s netns %s type veth peer name %s netns %s",
	    n->dev[0], n->ns[0], n->dev[1], n->ns[1]);
	/* No segmentation offload: every packet the drop rules and the
	 * shaper see is one MTU-sized segment, as on a real wire. */
	for (i = 0; i < 2; i++)
		nt_sh("ip -n %s link set %s gso_max_segs 1 gso_max_size 1500",
		    n->ns[i], n->dev[i]);
	address(n, 30);
}

int
nt_setup_wan(struct nt *n, double delay_ms, int rate_mbit, double loss,
    char *why, size_t len)
{
	const char *bin = getenv("WANEM");
	char d[32], r[32], l[32];
	const char *ready;
	int64_t deadline;
	struct stat sb;
	int i;

	if (bin == NULL || access(bin, X_OK) != 0) {
		snprintf(why, len, "no WAN emulator (WANEM=%s)", bin != NULL ?
		    bin : "");
		return (-1);
	}
	make_namespaces(n, "wan0");
	ready = it_path("wanem.ready");
	(void)unlink(ready);
	snprintf(d, sizeof(d), "%g", delay_ms);
	snprintf(r, sizeof(r), "%d", rate_mbit);
	snprintf(l, sizeof(l), "%g", loss);
	fflush(NULL);
	ck_assert_msg((wanem = fork()) >= 0, "fork: %s", strerror(errno));
	if (wanem == 0) {
		int fd = open(it_path("wanem.log"), O_WRONLY | O_CREAT |
		    O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "wanem", "-a", n->ns[0], "-b", n->ns[1], "-i",
		    "wan0", "-d", d, "-r", r, "-l", l, "-R", ready,
		    (char *)NULL);
		_exit(127);
	}
	/* It writes the file once both TUN devices exist. */
	deadline = it_now_ms() + IT_WAIT_MS;
	while ((stat(ready, &sb) != 0 || sb.st_size == 0) &&
	    it_now_ms() < deadline)
		usleep(10000);
	ck_assert_msg(stat(ready, &sb) == 0 && sb.st_size > 0, "%s did not "
	    "start within %d ms", bin, IT_WAIT_MS);
	for (i = 0; i < 2; i++) {
		nt_sh("ip -n %s link set wan0 mtu 1500 txqueuelen 10000",
		    n->ns[i]);
		/* One connection can fill a BDP (the 4 MiB default caps it). */
		nt_sh("ip netns exec %s sysctl -q -w net.ipv4.tcp_wmem='4096 "
		    "16384 33554432' net.ipv4.tcp_rmem='4096 131072 33554432'",
		    n->ns[i]);
	}
	address(n, 30);
	return (0);
}

void
nt_wan_freeze(int on)
{

	ck_assert_msg(wanem > 0, "netns: no WAN emulator running");
	ck_assert(kill(wanem, on ? SIGSTOP : SIGCONT) == 0);
}

void
nt_enter(const struct nt *n, int side)
{
	char path[64];
	int fd;

	if (home == -1) {
		home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		ck_assert_msg(home >= 0, "open /proc/self/ns/net: %s",
		    strerror(errno));
	}
	snprintf(path, sizeof(path), "/run/netns/%s", n->ns[side]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_msg(setns(fd, CLONE_NEWNET) == 0, "setns %s: %s", path,
	    strerror(errno));
	close(fd);
}

void
nt_leave(void)
{

	if (home == -1)
		return;
	(void)setns(home, CLONE_NEWNET);
	close(home);
	home = -1;
}

void
nt_shape(const struct nt *n, const char *tbf)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (tbf != NULL)
			nt_sh("tc -n %s qdisc replace dev %s root tbf %s",
			    n->ns[i], n->dev[i], tbf);
		else
			nt_sh("tc -n %s qdisc del dev %s root || true",
			    n->ns[i], n->dev[i]);
	}
}

void
nt_drop(const struct nt *n, int pct)
{
	char rule[96];
	int i;

	if (pct >= 100)
		snprintf(rule, sizeof(rule), "counter drop");
	else
		snprintf(rule, sizeof(rule), "numgen random mod 100 < %d "
		    "counter drop", pct);
	for (i = 0; i < 2; i++) {
		nt_sh("ip netns exec %s nft 'add table inet mxf; "
		    "add chain inet mxf in { type filter hook input priority 0; "
		    "policy accept; }; flush chain inet mxf in'", n->ns[i]);
		if (pct > 0)
			nt_sh("ip netns exec %s nft 'add rule inet mxf in "
			    "iifname \"%s\" %s'", n->ns[i], n->dev[i], rule);
	}
}

long
nt_dropped(const struct nt *n)
{
	char cmd[256], line[512], *p;
	long total = 0;
	FILE *f;
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd), NT_PATH "ip netns exec %s nft list "
		    "chain inet mxf in 2>/dev/null", n->ns[i]);
		fflush(NULL);
		if ((f = popen(cmd, "r")) == NULL)
			return (-1);
		while (fgets(line, sizeof(line), f) != NULL)
			if ((p = strstr(line, "counter packets ")) != NULL)
				total += strtol(p + 16, NULL, 10);
		pclose(f);
	}
	return (total);
}
