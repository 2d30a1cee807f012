/*
 * attestor-launcher confines and starts one check plugin for the
 * runtime-attestor daemon, which installs it beside its own executable and
 * starts it (never a user) for every plugin process. The daemon decided
 * everything before it forked: this program only applies it, in a few
 * system calls and with no language runtime to start, between the fork and
 * the plugin's first instruction.
 *
 * Its contract is package core/pluginhost/launch/launcher's, which does
 * the same in Go for a host that uses its own executable as the launcher:
 *
 *   RUNTIME_ATTESTOR_LAUNCH="v1,3,5,6,<flags>", or "v1,3,-,6,0" where
 *   the kernel has no Landlock; the variable is removed from the plugin's
 *   environment. v1 is the contract's version: any other is refused.
 *   fd 3  the plugin file the daemon verified; executed by descriptor,
 *         it stays open (read-only) in the plugin.
 *   fd 4  the plugin's sealed grant; left open for the plugin.
 *   fd 5  the Landlock ruleset the daemon built for the plugin's rules;
 *         closed once applied.
 *   fd 6  a sealed memory file holding the seccomp program the daemon
 *         assembled (struct sock_filter, host byte order); closed before
 *         the plugin runs.
 *   Every other descriptor from 5 on is closed at execveat.
 *
 * In order: nice 19 (the plugin's own filter does not allow it later),
 * no_new_privs, landlock_restrict_self(5, flags), the seccomp filter on
 * this (only) thread, refused calls logged, then execveat(3, "", argv,
 * env, AT_EMPTY_PATH): the bytes the daemon hashed run, from no path
 * anyone could rename over, already inside the domain and the filter.
 *
 * Any failure prints one line starting with the launcher's failure prefix
 * on stderr and exits 125, which the daemon reports as a launch failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The seccomp ABI (linux/seccomp.h, linux/filter.h), stated here: musl,
 * which the launcher is built with, ships no kernel headers. These are
 * the kernel's stable user ABI. */
#define SECCOMP_SET_MODE_STRICT 0
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_LOG (1UL << 1)
#define BPF_MAXINSNS 4096
struct sock_filter {
	uint16_t code;
	uint8_t jt;
	uint8_t jf;
	uint32_t k;
};
struct sock_fprog {
	unsigned short len;
	struct sock_filter *filter;
};
_Static_assert(sizeof(struct sock_filter) == 8, "struct sock_filter is 8 bytes");
_Static_assert(offsetof(struct sock_fprog, filter) == sizeof(void *), "sock_fprog.filter follows len, pointer-aligned");

#define ENV_NAME "RUNTIME_ATTESTOR_LAUNCH"
#define VERSION "v1" /* launcher.Version */
#define FAILED "runtime-attestor launcher: cannot confine and start the plugin: "
#define EXIT_FAILED 125
#define BINARY_FD 3
#define RULESET_FD 5
#define SECCOMP_FD 6
#define PLUGIN_NICE 19

extern char **environ;

/* fail reports what failed, with errno's text when err is not 0, and
 * exits. */
static void __attribute__((noreturn)) fail(const char *what, int err)
{
	char line[512];
	int n;

	if (err != 0)
		n = snprintf(line, sizeof line, "%s%s: %s\n", FAILED, what, strerror(err));
	else
		n = snprintf(line, sizeof line, "%s%s\n", FAILED, what);
	if (n > 0)
		(void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	_exit(EXIT_FAILED);
}

/* parse reads the variable's value: exactly "v1,3,5,6,<flags>" or
 * "v1,3,-,6,0". It returns whether a ruleset was passed. */
static int parse(const char *v, unsigned int *flags)
{
	const char *rest;
	char *end;
	unsigned long n;
	int ruleset;

	if (strncmp(v, VERSION ",", sizeof VERSION) != 0) {
		if (v[0] == 'v')
			fail(ENV_NAME ": another contract version, this launcher speaks " VERSION
			     " only: install the attestor-launcher built with this daemon", 0);
		fail(ENV_NAME ": want \"" VERSION ",3,5,6,<flags>\" or \"" VERSION ",3,-,6,0\"", 0);
	}
	v += sizeof VERSION;
	if (strncmp(v, "3,5,6,", 6) == 0) {
		ruleset = 1;
		rest = v + 6;
	} else if (strncmp(v, "3,-,6,", 6) == 0) {
		ruleset = 0;
		rest = v + 6;
	} else {
		fail(ENV_NAME ": want \"" VERSION ",3,5,6,<flags>\" or \"" VERSION ",3,-,6,0\"", 0);
	}
	if (*rest < '0' || *rest > '9')
		fail(ENV_NAME ": the restrict flags are not a number", 0);
	errno = 0;
	n = strtoul(rest, &end, 10);
	if (errno != 0 || *end != '\0' || n > 0xffffffffUL || (!ruleset && n != 0))
		fail(ENV_NAME ": bad restrict flags", 0);
	*flags = (unsigned int)n;
	return ruleset;
}

/* plugin_env is the environment without the launcher's variable; it sets
 * *value to that variable's value (NULL when absent). */
static char **plugin_env(const char **value)
{
	size_t n = 0, i, j = 0;
	char **env;
	const size_t len = sizeof ENV_NAME; /* with the '=' in place of NUL */

	*value = NULL;
	while (environ[n] != NULL)
		n++;
	env = calloc(n + 1, sizeof *env);
	if (env == NULL)
		fail("the plugin's environment", ENOMEM);
	for (i = 0; i < n; i++) {
		if (strncmp(environ[i], ENV_NAME "=", len) == 0) {
			if (*value == NULL)
				*value = environ[i] + len;
			continue;
		}
		env[j++] = environ[i];
	}
	return env;
}

/* status_has_seccomp reports whether /proc/self/status has a "Seccomp:"
 * line, which a kernel with seccomp always shows and no filter can change.
 * A status that cannot be read stops the start: that could be a filter
 * hiding it. */
static int status_has_seccomp(void)
{
	static char buf[16384];
	size_t off = 0;
	ssize_t got;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("seccomp(2) answers ENOSYS, and /proc/self/status (which tells a kernel without seccomp from a filter hiding it) cannot be opened", errno);
	while (off < sizeof buf - 1) {
		got = read(fd, buf + off, sizeof buf - 1 - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			fail("seccomp(2) answers ENOSYS, and /proc/self/status cannot be read", errno);
		if (got == 0)
			break;
		off += (size_t)got;
	}
	close(fd);
	buf[off] = '\0';
	return strncmp(buf, "Seccomp:", 8) == 0 || strstr(buf, "\nSeccomp:") != NULL;
}

/* seccomp_available mirrors sandbox.launchSeccomp:
 * SECCOMP_SET_MODE_STRICT with flags, which are invalid for it, fails with
 * EINVAL where seccomp exists and ENOSYS where it does not; anything else
 * is a filter that refuses seccomp(2). An ENOSYS counts as a kernel
 * without seccomp only when PR_GET_SECCOMP fails too and /proc/self/status
 * has no Seccomp line: either answer means a filter around this process
 * hides seccomp(2). Called before Landlock, which would hide the status. */
static int seccomp_available(void)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 1, NULL) == 0 || errno == EINVAL)
		return 1;
	if (errno == ENOSYS) {
		if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0)
			fail("seccomp(2) answers ENOSYS on a kernel that has seccomp (prctl PR_GET_SECCOMP works): a filter around this process hides it, so no seccomp filter can be installed", 0);
		if (status_has_seccomp())
			fail("seccomp(2) answers ENOSYS on a kernel that has seccomp (/proc/self/status shows it): a filter around this process hides it, so no seccomp filter can be installed", 0);
		return 0;
	}
	fail("seccomp(2) is refused: a filter around this process denies it, so no seccomp filter can be installed", errno);
	return 0;
}

/* load_seccomp reads the program from SECCOMP_FD and, when on, installs
 * it on this thread, refused calls logged; the kernel checks the program
 * itself. */
static void load_seccomp(int on)
{
	static struct sock_filter insns[BPF_MAXINSNS];
	struct sock_fprog prog;
	struct stat st;
	ssize_t got;
	size_t off = 0;

	if (fstat(SECCOMP_FD, &st) != 0)
		fail("the seccomp program (fd 6)", errno);
	if (st.st_size <= 0 || st.st_size > (off_t)sizeof insns || st.st_size % sizeof insns[0] != 0)
		fail("the seccomp program (fd 6): want 1 to 4096 instructions of 8 bytes", 0);
	while (off < (size_t)st.st_size) {
		got = pread(SECCOMP_FD, (char *)insns + off, (size_t)st.st_size - off, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			fail("read the seccomp program (fd 6)", got < 0 ? errno : EIO);
		off += (size_t)got;
	}
	close(SECCOMP_FD);
	if (!on)
		return;
	prog.len = (unsigned short)(st.st_size / sizeof insns[0]);
	prog.filter = insns;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog) != 0)
		fail("seccomp", errno);
}

/* cloexec_from marks every descriptor from first on close-on-exec: the
 * plugin gets 0 to 4 only, whatever else the launcher inherited. */
static void cloexec_from(int first)
{
	long max, fd;

	if (syscall(SYS_close_range, (unsigned int)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Before Linux 5.11: one descriptor at a time. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (fd = first; fd < max; fd++)
		(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

int main(int argc, char **argv)
{
	const char *value;
	char **env = plugin_env(&value);
	unsigned int flags = 0;
	int ruleset, seccomp_on;

	if (value == NULL) {
		static const char msg[] = "attestor-launcher: started without " ENV_NAME
			"; the runtime-attestor daemon starts this program for each plugin, it is not run by hand\n";
		(void)!write(2, msg, sizeof msg - 1);
		return 2;
	}
	if (argc < 1 || argv[0] == NULL)
		fail("empty argv", 0);
	ruleset = parse(value, &flags);

	cloexec_from(RULESET_FD);
	seccomp_on = seccomp_available();
	/* Lowering one's own priority needs no privilege; a failure leaves
	 * it as it was (the plugin still runs). */
	(void)setpriority(PRIO_PROCESS, 0, PLUGIN_NICE);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail("prctl(PR_SET_NO_NEW_PRIVS)", errno);
	if (ruleset) {
		if (syscall(SYS_landlock_restrict_self, RULESET_FD, flags) != 0)
			fail("landlock restrict", errno);
		close(RULESET_FD);
	}
	load_seccomp(seccomp_on);
	syscall(SYS_execveat, BINARY_FD, "", argv, env, AT_EMPTY_PATH);
	fail("execveat(3)", errno);
	return EXIT_FAILED;
}
