/* SPDX-License-Identifier: MIT */
/*
 * probe.c - HM_OPEN_PROBE: before a new file's content is dlopen()ed
 * in this process, the system's dynamic linker loads it in short-lived
 * processes of its own.  A file that kills the dynamic linker there is
 * refused (HM_EPROBE), and the version that serves stays.
 *
 * Why: glibc's ld.so trusts a complete ELF file entirely.  Corrupt tables
 * reached through a well-placed dynamic section (relocations, symbol,
 * string and hash tables, needed-library names, versions) make dlopen()
 * or dlsym() die of SIGSEGV, or of an assertion that ends the process with
 * exit status 127, and the embedding server with it (docs/SECURITY.md,
 * "Known gaps").
 *
 * How: INTERP is this program's own PT_INTERP, and the sealed memfd is on
 * descriptor 3 of the probe.  Two runs, the second only if the first
 * passed, as the loader itself does dlopen() and then dlsym():
 *
 *  1. LD_TRACE_LOADED_OBJECTS=1 LD_BIND_NOW=1 LD_WARN=1 INTERP /proc/self/fd/3
 *     The trace mode of "ldd -r": ld.so maps the object and its
 *     dependencies, reads their dynamic sections, sets up their hash
 *     tables, checks symbol versions and processes every relocation
 *     (LD_WARN and LD_BIND_NOW: the PLT's too), then exits.  Undefined
 *     symbols are only warnings there, which is what we want: modules use
 *     libhotmod's functions, which the probe may not find.
 *  2. INTERP --list /proc/self/fd/3 hotmod_module
 *     List mode: the same mapping, no relocation, and then a lookup of
 *     each name after the file, the lookup that hm__read_desc()'s dlsym()
 *     makes.  Relocations reach only the names they refer to; a corrupt
 *     symbol or string table entry of the descriptor itself crashed
 *     dlsym() in fuzzing after both dlopen() and run 1 had passed.
 *     ("--list" alone would not do for run 1: glibc 2.36 relocates
 *     nothing in list mode.)
 *
 * Neither runs any of the module's code: no constructor, no init function
 * and (glibc passes __RTLD_NOIFUNC in trace mode) no IFUNC resolver.
 *
 * What counts: death by a signal, an ld.so assertion (exit status 127 and
 * "Inconsistency detected by ld.so" as the last line: in dlopen() too such
 * an assertion ends the whole process), or no end within
 * HM__PROBE_TIMEOUT_S for both runs together.  Anything else, refusals
 * included, is left to the real dlopen() and dlsym(), which report them
 * properly.
 *
 * The process: posix_spawn (glibc uses CLONE_VFORK: cheap in a big
 * threaded server, and no fork handler runs), stdin closed, stdout and
 * stderr into a pipe that is read while waiting (ld.so's output must not
 * fill it and stall), descriptors above 3 closed, an empty signal mask,
 * its own process group (a terminal's ^C is the server's, not the probe's)
 * and an environment of only the variables above, plus LD_LIBRARY_PATH as
 * this process had it.  It is waited for by its pid only, never
 * waitpid(-1); nothing global (signal dispositions, SIGCHLD) is touched.
 */
#include "loader.h"
#include "probe.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/* Where the object is in the probe process: /proc/self/fd/3. */
#define HM__PROBE_FD 3
#define HM__PROBE_NAME "/proc/self/fd/3"
#define HM__PROBE_TIMEOUT_S 10
/* Bytes of ld.so's output kept: the end, where a fatal message is. */
#define HM__PROBE_TAIL 2048
/* glibc's prefix for an assertion that failed inside ld.so. */
#define HM__LDSO_ASSERT "Inconsistency detected by ld.so: "

#ifdef __GLIBC__
#if __GLIBC_PREREQ(2, 34)
#define HM__CLOSEFROM 1 /* posix_spawn_file_actions_addclosefrom_np */
#endif
#endif

/* Found once, then constant: the interpreter and the environment. */
static pthread_once_t hm__probe_once = PTHREAD_ONCE_INIT;
static char hm__interp[PATH_MAX];
static char *hm__env_path; /* "LD_LIBRARY_PATH=...", or NULL */
static const char *hm__interp_error; /* why there is none, or NULL */

/* dl_iterate_phdr() visits the program first: its PT_INTERP, if any. */
static int hm__program_interp(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_INTERP || ph->p_filesz == 0)
			continue;
		const char *s = (const char *)(info->dlpi_addr + ph->p_vaddr);
		size_t n = strnlen(s, ph->p_filesz);
		if (n > 0 && n < ph->p_filesz && n < PATH_MAX)
			memcpy(arg, s, n + 1);
	}
	return 1; /* the program only */
}

static void hm__probe_setup(void)
{
	const char *lib_path = getenv("LD_LIBRARY_PATH");

	dl_iterate_phdr(hm__program_interp, hm__interp);
	if (hm__interp[0] != '/')
		hm__interp_error = "this program has no dynamic linker (no PT_INTERP: "
				   "it is statically linked)";
	else if (access(hm__interp, X_OK) < 0)
		hm__interp_error = "the program's dynamic linker cannot be run";
	/* The dynamic linker of a set-user-ID program ignores it: so do we. */
	if (lib_path && !getauxval(AT_SECURE) &&
	    asprintf(&hm__env_path, "LD_LIBRARY_PATH=%s", lib_path) < 0)
		hm__env_path = NULL;
}

int hm__probe_check(void)
{
	pthread_once(&hm__probe_once, hm__probe_setup);
	if (hm__interp_error)
		return hm__fail(HM_EINVAL, "hm_open: HM_OPEN_PROBE: %s%s%s", hm__interp_error,
			hm__interp[0] ? ": " : "", hm__interp);
	return 0;
}

/* The last HM__PROBE_TAIL bytes of the probe's output. */
struct hm__tail {
	char buf[HM__PROBE_TAIL + 1];
	size_t len;
};

/* Read what is there (poll said so): 1, 0 at end of file, -1 on error. */
static int hm__read_some(int fd, struct hm__tail *t)
{
	char chunk[HM__PROBE_TAIL];
	ssize_t got;

	do
		got = read(fd, chunk, sizeof chunk);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return got < 0 ? -1 : 0;
	size_t n = (size_t)got;
	size_t keep = t->len + n > HM__PROBE_TAIL ? HM__PROBE_TAIL - n : t->len;
	memmove(t->buf, t->buf + t->len - keep, keep);
	memcpy(t->buf + keep, chunk, n);
	t->len = keep + n;
	return 1;
}

/*
 * ld.so prints a failed assertion as its last line, then exits with 127:
 * that line, after the prefix, printable, into out.  Only the last line
 * counts, so that a name printed earlier (a needed library's, which the
 * file chooses) cannot pass for one.
 */
static bool hm__ldso_assertion(const struct hm__tail *t, char *out, size_t size)
{
	size_t end = t->len, start, n = 0;
	size_t plen = strlen(HM__LDSO_ASSERT);

	while (end > 0 && t->buf[end - 1] == '\n')
		end--;
	for (start = end; start > 0 && t->buf[start - 1] != '\n'; start--)
		;
	if (end - start < plen || memcmp(t->buf + start, HM__LDSO_ASSERT, plen) != 0)
		return false;
	for (size_t i = start + plen; i < end && n + 1 < size; i++)
		out[n++] = t->buf[i] >= 0x20 && t->buf[i] < 0x7f ? t->buf[i] : '?';
	out[n] = '\0';
	return true;
}

/*
 * Wait for pid, reading its output, at most until deadline (hm__now()).
 * 0 with *status; HM__PROBE_TIMED_OUT when it ran out of time, or
 * HM__PROBE_UNREAD (errno set) when its output could not be read: then it
 * is killed and reaped; HM__PROBE_UNKILLED (errno set) when it could not be
 * killed.  -1 with errno if waitpid fails (ECHILD: someone else reaped it).
 */
enum hm__probe_end {
	HM__PROBE_TIMED_OUT = 1,
	HM__PROBE_UNREAD,
	HM__PROBE_UNKILLED,
};
static int hm__probe_wait(pid_t pid, int rd, int64_t deadline, int *status,
	struct hm__tail *out)
{
	int open = 1, read_errno = 0; /* open: what hm__read_some said last */

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		int64_t left = deadline - hm__now();
		if (left <= 0 || open < 0) {
			/* Still ours (not reaped: it did not exit), so pid is its.
			 * Unread, it could block on a full pipe: it ends now. */
			if (kill(pid, SIGKILL) < 0)
				return HM__PROBE_UNKILLED; /* waiting could be for ever */
			while (waitpid(pid, status, 0) < 0)
				if (errno != EINTR)
					return -1;
			errno = read_errno;
			return open < 0 ? HM__PROBE_UNREAD : HM__PROBE_TIMED_OUT;
		}
		if (open > 0) {
			/* Its exit closes the pipe: poll wakes then.  The bound is
			 * for a copy of the pipe that another fork of this process
			 * may hold. */
			struct pollfd p = {.fd = rd, .events = POLLIN};
			int ms = left > 50000000 ? 50 : (int)(left / 1000000) + 1;
			if (poll(&p, 1, ms) > 0 && (open = hm__read_some(rd, out)) < 0)
				read_errno = errno;
		} else {
			/* Closed, not yet reaped: a moment. */
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
		}
	}
	/* What it wrote before it ended, without waiting for other copies. */
	for (struct pollfd p = {.fd = rd, .events = POLLIN};
	     open > 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);)
		open = hm__read_some(rd, out);
	return open < 0 ? HM__PROBE_UNREAD : 0;
}

/* posix_spawn the interpreter on memfd for a run; its pid, or the error. */
static int hm__probe_spawn(int memfd, int wr, bool lookup, pid_t *pid)
{
	char *load_argv[] = {hm__interp, (char *)HM__PROBE_NAME, NULL};
	char *load_envp[] = {(char *)"LD_TRACE_LOADED_OBJECTS=1", (char *)"LD_BIND_NOW=1",
		(char *)"LD_WARN=1", hm__env_path, NULL};
	char *lookup_argv[] = {hm__interp, (char *)"--list", (char *)HM__PROBE_NAME,
		(char *)HM_MODULE_SYMBOL, NULL};
	char *lookup_envp[] = {hm__env_path, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	int err;

	/* The caller made memfd >= 3 and wr > 3: no action below overwrites
	 * a descriptor that a later one copies.  dup2 onto itself (memfd 3)
	 * clears close-on-exec, as POSIX asks. */
	if ((err = posix_spawn_file_actions_init(&fa)) != 0)
		return err;
	if ((err = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return err;
	}
	sigemptyset(&none);
	if ((err = posix_spawn_file_actions_adddup2(&fa, memfd, HM__PROBE_FD)) != 0 ||
	    (err = posix_spawn_file_actions_adddup2(&fa, wr, STDOUT_FILENO)) != 0 ||
	    (err = posix_spawn_file_actions_adddup2(&fa, wr, STDERR_FILENO)) != 0 ||
	    (err = posix_spawn_file_actions_addclose(&fa, STDIN_FILENO)) != 0 ||
#ifdef HM__CLOSEFROM
	    (err = posix_spawn_file_actions_addclosefrom_np(&fa, HM__PROBE_FD + 1)) != 0 ||
#endif
	    (err = posix_spawnattr_setflags(&attr,
		     POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP)) != 0 ||
	    (err = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (err = posix_spawnattr_setpgroup(&attr, 0)) != 0)
		goto out;
	err = posix_spawn(pid, hm__interp, &fa, &attr, lookup ? lookup_argv : load_argv,
		lookup ? lookup_envp : load_envp);
out:
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return err;
}

/* fd, or a close-on-exec copy of it at min or above (then *copy is it). */
static int hm__fd_at_least(int fd, int min, int *copy)
{
	if (fd >= min)
		return fd;
	return *copy = fcntl(fd, F_DUPFD_CLOEXEC, min);
}

/* One run (see the top); 0 when it found nothing that counts. */
static int hm__probe_run(hm_loader *l, int memfd, const char *key, bool lookup,
	int64_t deadline)
{
	const char *doing = lookup ? "looking up its descriptor" : "loading it";
	struct hm__tail out = {.len = 0};
	char why[256];
	int p[2], src, wr, src_copy = -1, wr_copy = -1, status = 0, rc, err;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: probe: pipe", key);
	src = hm__fd_at_least(memfd, HM__PROBE_FD, &src_copy);
	wr = hm__fd_at_least(p[1], HM__PROBE_FD + 1, &wr_copy);
	if (src < 0 || wr < 0) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: probe: fcntl", key);
		goto out;
	}
	err = hm__probe_spawn(src, wr, lookup, &pid);
	/* The child has its copies: ours must go, or the pipe never ends. */
	close(p[1]);
	p[1] = -1;
	if (wr_copy >= 0)
		close(wr_copy);
	wr_copy = -1;
	if (err != 0) {
		rc = hm__fail_errno(err, HM_ESYS, "%s: probe: cannot run %s", key, hm__interp);
		goto out;
	}
	rc = hm__probe_wait(pid, p[0], deadline, &status, &out);
	if (rc < 0) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: probe: waitpid %d (does the program "
						   "reap every child, with waitpid(-1) or "
						   "SIGCHLD ignored?)",
			key, (int)pid);
	} else if (rc == HM__PROBE_UNKILLED) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: probe: kill %d", key, (int)pid);
	} else if (rc == HM__PROBE_UNREAD) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: probe: read", key);
	} else if (rc == HM__PROBE_TIMED_OUT) {
		rc = hm__fail(HM_EPROBE, "%s: the dynamic linker did not finish %s in a probe "
					   "process within %d s (killed): the file is corrupt, "
					   "or the system far too busy",
			key, doing, HM__PROBE_TIMEOUT_S);
	} else if (WIFSIGNALED(status)) {
		rc = hm__fail(HM_EPROBE, "%s: the dynamic linker crashed %s in a probe "
					   "process (signal %d, %s): the file is corrupt",
			key, doing, WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 &&
		   hm__ldso_assertion(&out, why, sizeof why)) {
		rc = hm__fail(HM_EPROBE, "%s: the dynamic linker failed an assertion %s in a "
					   "probe process (%s): the file is corrupt",
			key, doing, why);
	} else {
		/* Passed, or refused: dlopen() or dlsym() says why. */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			hm__log(l, HM_LOG_DEBUG, "%s: probe: the dynamic linker exited with "
						 "status %d %s; dlopen() decides",
				key, WIFEXITED(status) ? WEXITSTATUS(status) : -1, doing);
		rc = 0;
	}
out:
	close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (src_copy >= 0)
		close(src_copy);
	if (wr_copy >= 0)
		close(wr_copy);
	return rc;
}

int hm__probe(hm_loader *l, int memfd, const char *key)
{
	int64_t deadline = hm__now() + (int64_t)HM__PROBE_TIMEOUT_S * 1000000000;
	int rc;

	pthread_once(&hm__probe_once, hm__probe_setup);
	if (hm__interp_error) /* hm_open() refused the flag: cannot happen */
		return hm__fail(HM_ESYS, "%s: probe: %s", key, hm__interp_error);
	if ((rc = hm__probe_run(l, memfd, key, false, deadline)) < 0)
		return rc;
	return hm__probe_run(l, memfd, key, true, deadline);
}
