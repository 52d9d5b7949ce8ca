/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection, for tests only (configure
 * --enable-fault-injection): the Nth fallible call the library makes fails,
 * as the system would fail it - that one only, or that one and every one
 * after it (hm__fault_arm_from(): a second failure, such as a fallback that
 * fails too).  tests/check_faults.c walks N upward through each operation
 * and checks that every failure is an error or a handled fallback, not a
 * crash, a hang or a leak, and that the working version keeps serving.
 *
 * Every loader source includes this last, after the system headers, so the
 * macros below rename only the library's own calls.  In a normal build it
 * defines nothing.
 */
#ifndef HOTMOD_FAULT_H
#define HOTMOD_FAULT_H

#ifdef HM_FAULT_INJECTION
#include <errno.h>
#include <sys/mman.h>

/* True when this call is the one to fail (and says so in errno). */
HM__HIDDEN int hm__fault(int err);

#define malloc(n) (hm__fault(ENOMEM) ? NULL : malloc(n))
#define calloc(n, s) (hm__fault(ENOMEM) ? NULL : calloc(n, s))
#define realloc(p, n) (hm__fault(ENOMEM) ? NULL : realloc(p, n))
#define strdup(s) (hm__fault(ENOMEM) ? NULL : strdup(s))
#define open(...) (hm__fault(EMFILE) ? -1 : open(__VA_ARGS__))
#define syscall(...) (hm__fault(EMFILE) ? -1L : syscall(__VA_ARGS__)) /* openat2 */
#define memfd_create(n, f) (hm__fault(EMFILE) ? -1 : memfd_create(n, f))
#define sendfile(o, i, off, n) (hm__fault(EIO) ? (ssize_t)-1 : sendfile(o, i, off, n))
#define pread(f, b, n, off) (hm__fault(EIO) ? (ssize_t)-1 : pread(f, b, n, off))
#define read(f, b, n) (hm__fault(EIO) ? (ssize_t)-1 : read(f, b, n))
#define dlopen(f, m) (hm__fault(ENOMEM) ? NULL : dlopen(f, m))
#define pthread_create(t, a, f, arg) (hm__fault(EAGAIN) ? EAGAIN : pthread_create(t, a, f, arg))
#define inotify_init1(f) (hm__fault(EMFILE) ? -1 : inotify_init1(f))
#define inotify_add_watch(f, p, m) (hm__fault(ENOSPC) ? -1 : inotify_add_watch(f, p, m))
#define mmap(a, l, p, f, fd, o) (hm__fault(ENOMEM) ? MAP_FAILED : mmap(a, l, p, f, fd, o))
#define pipe2(p, f) (hm__fault(EMFILE) ? -1 : pipe2(p, f)) /* the probe, the watcher */
#define posix_spawn(...) (hm__fault(EAGAIN) ? EAGAIN : posix_spawn(__VA_ARGS__))
#define posix_spawn_file_actions_init(fa)                                     \
	(hm__fault(ENOMEM) ? ENOMEM : posix_spawn_file_actions_init(fa))
#define posix_spawn_file_actions_adddup2(fa, f, t)                            \
	(hm__fault(ENOMEM) ? ENOMEM : posix_spawn_file_actions_adddup2(fa, f, t))
#define posix_spawn_file_actions_addclose(fa, f)                              \
	(hm__fault(ENOMEM) ? ENOMEM : posix_spawn_file_actions_addclose(fa, f))
#define posix_spawn_file_actions_addclosefrom_np(fa, f)                       \
	(hm__fault(ENOMEM) ? ENOMEM : posix_spawn_file_actions_addclosefrom_np(fa, f))
#define posix_spawnattr_init(a) (hm__fault(ENOMEM) ? ENOMEM : posix_spawnattr_init(a))
#define posix_spawnattr_setflags(a, f)                                        \
	(hm__fault(EINVAL) ? EINVAL : posix_spawnattr_setflags(a, f))
#define posix_spawnattr_setsigmask(a, s)                                      \
	(hm__fault(EINVAL) ? EINVAL : posix_spawnattr_setsigmask(a, s))
#define posix_spawnattr_setpgroup(a, g)                                       \
	(hm__fault(EINVAL) ? EINVAL : posix_spawnattr_setpgroup(a, g))
#define waitpid(p, s, o) (hm__fault(ECHILD) ? (pid_t)-1 : waitpid(p, s, o))
#define poll(f, n, t) (hm__fault(ENOMEM) ? -1 : poll(f, n, t))
#define kill(p, s) (hm__fault(EPERM) ? -1 : kill(p, s))
#define fstat(f, st) (hm__fault(EIO) ? -1 : fstat(f, st))
#define fstatat(d, p, st, fl) (hm__fault(ENOMEM) ? -1 : fstatat(d, p, st, fl))
#define fstatfs(f, b) (hm__fault(EIO) ? -1 : fstatfs(f, b))
#define readlink(p, b, n) (hm__fault(ENOMEM) ? (ssize_t)-1 : readlink(p, b, n))
#define fdopendir(f) (hm__fault(ENOMEM) ? NULL : fdopendir(f))
#define readdir(d) (hm__fault(EIO) ? NULL : readdir(d))
/* F_ADD_SEALS and F_DUPFD_CLOEXEC, each failing as it can. */
#define fcntl(f, cmd, ...)                                                    \
	(hm__fault((cmd) == F_ADD_SEALS ? EBUSY : EMFILE) ? -1 : fcntl(f, cmd, __VA_ARGS__))
#define asprintf(...) (hm__fault(ENOMEM) ? -1 : asprintf(__VA_ARGS__))
#define aligned_alloc(a, n) (hm__fault(ENOMEM) ? NULL : aligned_alloc(a, n))
#define dlinfo(h, r, i) (hm__fault(ENOMEM) ? -1 : dlinfo(h, r, i))
#define pthread_key_create(k, d) (hm__fault(EAGAIN) ? EAGAIN : pthread_key_create(k, d))
#define pthread_setspecific(k, v) (hm__fault(ENOMEM) ? ENOMEM : pthread_setspecific(k, v))
#define pthread_condattr_setclock(a, c)                                       \
	(hm__fault(EINVAL) ? EINVAL : pthread_condattr_setclock(a, c))
#define pthread_cond_timedwait(c, m, t)                                       \
	(hm__fault(EINVAL) ? EINVAL : pthread_cond_timedwait(c, m, t))
#define clock_gettime(c, ts) (hm__fault(EINVAL) ? -1 : clock_gettime(c, ts))
#endif

#endif
