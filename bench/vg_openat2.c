/* SPDX-License-Identifier: MIT */
/*
 * vg_openat2.c - preloaded only for the callgrind count (bench/run.sh).
 *
 * valgrind 3.19 (Debian 12) does not know openat2 (syscall 437): it fails
 * it with ENOSYS, and the loader cannot open a module.  This replaces
 * libc's syscall() for that one number with the openat() it reduces to in
 * the benchmark's own private tree (the RESOLVE_* confinement is dropped);
 * every other number goes to libc.  Files are opened only while modules
 * load, before the counted loop: the figure is not affected.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long number, ...)
{
	static long (*real)(long, ...);
	va_list ap;
	long a[6];

	/* As glibc's own syscall(): six register-sized arguments, used or not. */
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_openat2) {
		const struct open_how *how = (const struct open_how *)a[2];
		return openat((int)a[0], (const char *)a[1], (int)how->flags,
			(mode_t)how->mode);
	}
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
