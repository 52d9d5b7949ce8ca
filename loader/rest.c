/* SPDX-License-Identifier: MIT */
/*
 * rest.c - the rule for a file at rest, which file.c applies to every copy.
 *
 * Copying a file that is being written would load bytes of no build, half
 * old and half new: write() stamps mtime and ctime when it starts, so a copy
 * taken while one long write still fills pages has the same identity before
 * and after.  A copy is loaded only when all of these hold:
 *
 * 1. Settled: the file's ctime lies at least hm__settle_ns() before the
 *    first fstat.  Timestamps come from the kernel's coarse clock (one tick)
 *    and may be cut to the file system's granularity, so a write in the same
 *    tick as the last change could leave the identity as it was; a write
 *    after a settled fstat cannot.  A younger file is waited for (each wait
 *    shorter than that), a few times, then HM_ECHANGED: it keeps changing.
 * 2. Same identity (dev, ino, size, mtime, ctime) before and after the copy.
 * 3. Nobody has it open for writing once the copy is taken (hm__writer()):
 *    a writer that stalled in the middle of a write (a slow linker, a
 *    page fault served from far away) leaves the file still, but torn.
 * 4. Read again after that, it holds the bytes copied, and its identity is
 *    still the one of 1: a writer that finished while the copy was taken
 *    left other bytes where the copy had read too early.
 *
 * Where 3 cannot tell (the file is neither ours nor root's and we may not
 * take leases, or leases are off), a writer stalled through 1 to 4 is not
 * seen: docs/SECURITY.md, "Known gaps".
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

#define HM__SETTLE_ROUNDS 4


static int64_t hm__ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* How long a file must have been left alone for its stamps to tell. */
static int64_t hm__settle_ns(const struct stat *st)
{
	struct timespec res = {0, 10000000};
	int64_t ns;

	(void)clock_getres(CLOCK_REALTIME_COARSE, &res);
	ns = 2 * hm__ts_ns(&res) + 2000000;
	/* Whole seconds (FAT keeps two): the stamps are that coarse. */
	if (st->st_ctim.tv_nsec == 0 && st->st_mtim.tv_nsec == 0)
		ns += 2000000000;
	return ns;
}

/* Step 1: st is fd's fstat once the file has settled. */
int hm__settle(const char *key, int fd, struct stat *st)
{
	for (int round = 0;; round++) {
		struct timespec now;
		if (clock_gettime(CLOCK_REALTIME, &now) != 0) /* before the fstat: see above */
			return hm__fail_errno(errno, HM_ESYS, "%s: clock_gettime", key);
		if (fstat(fd, st) < 0)
			return hm__fail_errno(errno, HM_ESYS, "%s: fstat", key);
		int64_t need = hm__settle_ns(st);
		int64_t age = hm__ts_ns(&now) - hm__ts_ns(&st->st_ctim);
		/* A ctime ahead of the clock: the clock was set back, or the
		 * file system's server has another; the stamps tell nothing. */
		if (age >= need || age < -need)
			return 0;
		if (round == HM__SETTLE_ROUNDS - 1)
			return hm__fail(HM_ECHANGED, "%s: still being written (changed %lld ms "
						     "ago)", key, (long long)(age / 1000000));
		int64_t wait = need - (age > 0 ? age : 0);
		struct timespec ts = {wait / 1000000000, wait % 1000000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

struct hm__lease {
	int fd;
	int err;
};

/*
 * glibc's other name for clone(), exported since 2.2.5 with it.  Called by
 * that name because ThreadSanitizer intercepts clone() as a fork: in the
 * child it resets its own state, which CLONE_VM shares with us.
 */
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);

/*
 * In a process of its own: a read lease can be taken exactly when nobody
 * has the file open for writing.  It runs on the caller's memory
 * (CLONE_VM) while the caller waits (CLONE_VFORK), so raw system calls
 * only: no sanitizer or fault-injection wrapper (the parentheses), and it
 * returns rather than calling _exit(), which sanitizers intercept to run
 * their exit work; clone()'s own code then makes the exit system call.
 */
__attribute__((no_sanitize("address", "thread", "undefined")))
static int hm__lease_child(void *arg)
{
	struct hm__lease *a = arg;

	if ((syscall)(SYS_fcntl, a->fd, F_SETLEASE, F_RDLCK) == 0) {
		a->err = 0;
		(void)(syscall)(SYS_fcntl, a->fd, F_SETLEASE, F_UNLCK);
	} else {
		a->err = errno;
	}
	return 0;
}

/*
 * Step 3: is fd's file open for writing anywhere?  1 yes, 0 no, -1 cannot
 * tell.  Asked with F_SETLEASE, which needs the file to be ours or
 * CAP_LEASE; but a writer's open breaks a lease, and the kernel then sends
 * its holder SIGIO, whose default action ends the process.  So the lease is
 * taken (and let go at once) by a child sharing our memory, with every
 * signal blocked: a SIGIO would be its, pending until it exits.  Its copy
 * of the descriptor refers to the same open file, which is what a lease
 * belongs to.  exit signal 0: nobody else's waitpid() can reap it, and no
 * SIGCHLD reaches the embedder.  Exactly CLONE_VM | CLONE_VFORK: valgrind
 * runs that as a fork (and then this cannot tell, which is allowed) but
 * stops the process at any other flags.
 */
int hm__writer(int fd)
{
	enum { STACK = 64 * 1024 };
	struct hm__lease a = {.fd = fd, .err = -1};
	sigset_t all, old;
	char *stack = malloc(STACK);
	int pid, status;

	if (!stack)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = __clone(hm__lease_child, stack + STACK, CLONE_VM | CLONE_VFORK, &a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid > 0)
		while (waitpid(pid, &status, __WCLONE) < 0 && errno == EINTR)
			;
	free(stack);
	return pid <= 0 || a.err < 0 ? -1 : a.err == 0 ? 0 : a.err == EAGAIN ? 1 : -1;
}

/* Step 4: does fd still hold the size bytes copied into mfd?  1, 0, or an
 * error code. */
int hm__still_copied(int fd, int mfd, off_t size, const char *key)
{
	enum { CHUNK = 64 * 1024 };
	char *buf = malloc(2 * CHUNK);
	int same = 1;

	if (!buf)
		return hm__fail(HM_ENOMEM, "%s: out of memory", key);
	for (off_t off = 0; same == 1 && off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		ssize_t a = pread(fd, buf, n, off), b = pread(mfd, buf + CHUNK, n, off);
		if (a < 0 || b < 0)
			same = hm__fail_errno(errno, HM_ESYS, "%s: read", key);
		else
			same = a == (ssize_t)n && b == (ssize_t)n && memcmp(buf, buf + CHUNK, n) == 0;
	}
	free(buf);
	return same;
}

