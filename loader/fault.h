/*
 * fault.h - fault injection, for tests only (configure
 * --enable-fault-injection): the Nth fallible call the library makes fails,
 * as the system would fail it.  tests/check_faults.c walks N upward through
 * each operation and checks that every failure is an error, not a crash, a
 * hang or a leak, and that the working version keeps serving.
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
#define eventfd(v, f) (hm__fault(EMFILE) ? -1 : eventfd(v, f))
#define mmap(a, l, p, f, fd, o) (hm__fault(ENOMEM) ? MAP_FAILED : mmap(a, l, p, f, fd, o))
#define pipe2(p, f) (hm__fault(EMFILE) ? -1 : pipe2(p, f))                 /* the probe */
#define posix_spawn(...) (hm__fault(EAGAIN) ? EAGAIN : posix_spawn(__VA_ARGS__))
#endif

#endif
