/*
 * file_linux.c - opening module files beneath the root and copying them into
 * sealed memfds.  Linux only: openat2(2), memfd_create(2), file seals.
 *
 * Why copy: the watched file may be rewritten in place (cp, rsync --inplace)
 * while it is mapped, which changes code under running threads.  The copy is
 * sealed, so the bytes checked are the bytes that run.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

#define HM__RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

void hm__fileid_of(struct hm__fileid *id, const struct stat *st)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

bool hm__fileid_eq(const struct hm__fileid *a, const struct hm__fileid *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

int hm__check_perms(const hm_loader *l, const struct stat *st, const char *what)
{
	if (!(l->trust & HM_TRUST_ANY_OWNER) && st->st_uid != 0 && st->st_uid != l->euid)
		return hm__fail(HM_EUNSAFE, "%s: owned by uid %u, neither root nor us",
			what, (unsigned)st->st_uid);
	if (!(l->trust & HM_TRUST_GROUP_WRITABLE) && (st->st_mode & S_IWGRP))
		return hm__fail(HM_EUNSAFE, "%s: group-writable (mode %04o)", what,
			(unsigned)(st->st_mode & 07777));
	if (!(l->trust & HM_TRUST_WORLD_WRITABLE) && (st->st_mode & S_IWOTH))
		return hm__fail(HM_EUNSAFE, "%s: world-writable (mode %04o)", what,
			(unsigned)(st->st_mode & 07777));
	return 0;
}

static int hm__openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = {.flags = (uint64_t)flags, .resolve = HM__RESOLVE | resolve};
	long fd;

	/* EAGAIN: a rename raced with RESOLVE_BENEATH's check; try again. */
	for (int tries = 0; tries < 8; tries++) {
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
		if (fd >= 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	return (int)fd;
}

static int hm__open_error(const hm_loader *l, const char *key, int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return hm__no_file(l, key);
	case EXDEV:
	case ELOOP:
		return hm__fail(HM_EESCAPE, "%s: a symbolic link leads outside %s",
			key, l->root);
	case ENOSYS:
		return hm__fail(HM_ESYS, "%s: openat2: not supported by this kernel "
					 "(Linux 5.6 or later is required)", key);
	default:
		return hm__fail(HM_ESYS, "%s: open: %s", key, strerror(err));
	}
}

/*
 * Check each directory between the root and the file rel names.  resolve
 * adds to the usual rules (RESOLVE_NO_SYMLINKS for a path that is already
 * resolved, so that nothing can be swapped in between).
 */
static int hm__check_dirs(hm_loader *l, const char *key, const char *rel, uint64_t resolve)
{
	char dir[PATH_MAX], what[PATH_MAX + 64];
	const char *slash = rel;

	while ((slash = strchr(slash, '/')) != NULL) {
		struct stat st;
		size_t n = (size_t)(slash - rel);
		int fd, rc;

		if (n >= sizeof dir)
			return hm__fail(HM_EBADPATH, "%s: path too long", rel);
		memcpy(dir, rel, n);
		dir[n] = '\0';
		fd = hm__openat2(l->rootfd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, resolve);
		if (fd < 0)
			return hm__open_error(l, dir, errno);
		rc = fstat(fd, &st);
		close(fd);
		if (rc < 0)
			return hm__fail(HM_ESYS, "%s: fstat: %s", dir, strerror(errno));
		snprintf(what, sizeof what, "%s: directory %s", key, dir);
		if ((rc = hm__check_perms(l, &st, what)) < 0)
			return rc;
		slash++;
	}
	return 0;
}

/*
 * Where a symbolic link took the open, check the directories of the file it
 * reached too: a link must not lead around the rules to a file in a
 * directory anyone may write.  Both paths come from the kernel (/proc), so
 * they are canonical; RESOLVE_NO_SYMLINKS keeps them so while we check.
 */
static int hm__check_resolved(hm_loader *l, const char *key, int pfd)
{
	char proc[64], root[PATH_MAX], file[PATH_MAX];
	ssize_t rn, fn;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", l->rootfd);
	rn = readlink(proc, root, sizeof root - 1);
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	fn = readlink(proc, file, sizeof file - 1);
	if (rn <= 0 || fn <= 0)
		return hm__fail(HM_ESYS, "%s: readlink /proc/self/fd: %s", key,
			strerror(errno));
	root[rn] = file[fn] = '\0';
	if (strcmp(root, "/") == 0)
		rn = 0;
	if (strncmp(file, root, (size_t)rn) != 0 || file[rn] != '/')
		return hm__fail(HM_EESCAPE, "%s: resolves to %s, outside %s", key, file,
			root);
	if (strcmp(file + rn + 1, key) == 0) /* no link on the way */
		return 0;
	return hm__check_dirs(l, key, file + rn + 1, RESOLVE_NO_SYMLINKS);
}

/*
 * Open key for reading without ever opening something that is not a regular
 * file: a FIFO would block and a device open can have side effects.  So
 * open O_PATH, check, then reopen the very same inode through /proc.
 */
static int hm__open_module(hm_loader *l, const char *key, struct stat *st)
{
	char proc[64];
	struct stat st2;
	int pfd, fd, rc;

	if ((rc = hm__check_dirs(l, key, key, 0)) < 0)
		return rc;
	pfd = hm__openat2(l->rootfd, key, O_PATH | O_CLOEXEC, 0);
	if (pfd < 0)
		return hm__open_error(l, key, errno);
	if ((rc = hm__check_resolved(l, key, pfd)) < 0)
		goto out;
	if (fstat(pfd, st) < 0) {
		rc = hm__fail(HM_ESYS, "%s: fstat: %s", key, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = hm__fail(HM_ENOTREG, "%s: not a regular file (%s)", key,
			S_ISDIR(st->st_mode) ? "a directory" :
			S_ISFIFO(st->st_mode) ? "a FIFO" :
			S_ISLNK(st->st_mode) ? "a symbolic link" : "a device or socket");
		goto out;
	}
	if ((rc = hm__check_perms(l, st, key)) < 0)
		goto out;
	if ((uint64_t)st->st_size > l->max_size) {
		rc = hm__fail(HM_ETOOBIG, "%s: %lld bytes, the limit is %zu", key,
			(long long)st->st_size, l->max_size);
		goto out;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = hm__fail(HM_ESYS, "%s: reopen: %s", key, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st2) < 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
		close(fd);
		rc = hm__fail(HM_ECHANGED, "%s: replaced while being opened", key);
		goto out;
	}
	rc = fd;
out:
	close(pfd);
	return rc;
}

/* Copy size bytes from fd into memfd; fewer means the file shrank. */
static int hm__copy(int memfd, int fd, off_t size, const char *key)
{
	off_t off = 0;

	while (off < size) {
		ssize_t n = sendfile(memfd, fd, &off, (size_t)(size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hm__fail(HM_ESYS, "%s: copy: %s", key, strerror(errno));
		if (n == 0)
			return hm__fail(HM_ECHANGED, "%s: shrank while being copied", key);
	}
	return 0;
}

int hm__copy_module(hm_loader *l, const char *key, int *memfd, struct hm__fileid *id)
{
	struct stat before, after;
	int fd, mfd, rc;

	fd = hm__open_module(l, key, &before);
	if (fd < 0)
		return fd;
	mfd = memfd_create("hotmod", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0) {
		rc = hm__fail(HM_ESYS, "%s: memfd_create: %s", key, strerror(errno));
		goto out;
	}
	if ((rc = hm__copy(mfd, fd, before.st_size, key)) < 0)
		goto fail;
	/* Same identity after the copy: nobody wrote while we read. */
	if (fstat(fd, &after) < 0) {
		rc = hm__fail(HM_ESYS, "%s: fstat: %s", key, strerror(errno));
		goto fail;
	}
	hm__fileid_of(id, &before);
	struct hm__fileid id2;
	hm__fileid_of(&id2, &after);
	if (!hm__fileid_eq(id, &id2)) {
		rc = hm__fail(HM_ECHANGED, "%s: modified while being copied", key);
		goto fail;
	}
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		rc = hm__fail(HM_ESYS, "%s: seal: %s", key, strerror(errno));
		goto fail;
	}
	if ((rc = hm__elf_check(mfd, (uint64_t)before.st_size, key)) < 0)
		goto fail;
	*memfd = mfd;
	rc = 0;
	goto out;
fail:
	close(mfd);
out:
	close(fd);
	return rc;
}

int hm__open_key(hm_loader *l, const char *key, struct stat *st)
{
	return hm__open_module(l, key, st);
}

int hm__no_file(const hm_loader *l, const char *key)
{
	return hm__fail(HM_ENOENT, "%s: no such file under %s", key, l->root);
}

int hm__stat_key(const hm_loader *l, const char *key, struct hm__fileid *id)
{
	struct stat st;
	int fd, rc;

	/* Beneath the root like every open: a link out of it is an escape, not
	 * a file that exists (that would tell what lies outside).  A final
	 * symlink inside the root is followed: ln -sf deploys must be seen.
	 * ENOENT sets no message: for a global module it is no error. */
	fd = hm__openat2(l->rootfd, key, O_PATH | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return HM_ENOENT;
		return hm__open_error(l, key, errno);
	}
	rc = fstat(fd, &st);
	close(fd);
	if (rc < 0)
		return hm__fail(HM_ESYS, "%s: fstat: %s", key, strerror(errno));
	hm__fileid_of(id, &st);
	return 0;
}
