/* SPDX-License-Identifier: MIT */
/*
 * file.c - the checks every file passes on its way in: the walk from the
 * root to it one name at a time (O_PATH, no link followed that the trust
 * does not allow), its owner and mode, its identity; and its copy into a
 * sealed memfd once it is at rest (rest.c).
 *
 * Why copy: the watched file may be rewritten in place (cp, rsync --inplace)
 * while it is mapped, which changes code under running threads.  The copy is
 * sealed, so the bytes checked are the bytes that run.
 */
#include "loader.h"
#include "elfcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

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

/* ---- the walk from the root to a file ------------------------------------ */

/*
 * Every open goes one name at a time, each relative to the descriptor of
 * the directory before it, which was checked when it was opened: so the
 * directory that was checked is the directory the next name is looked up
 * in, whatever is renamed meanwhile (a path walked twice, once to check and
 * once to open, could meet another directory the second time).  Nothing is
 * ever followed by the kernel: each name is opened O_PATH | O_NOFOLLOW, a
 * symbolic link is read and its target walked the same way, and ".." goes
 * back to the descriptor the walk came from, never above the root.
 *
 * HM__WALK_LINKS is the kernel's own limit (MAXSYMLINKS); more links than
 * that on one walk is a loop.
 */
#define HM__WALK_DEPTH 64
#define HM__WALK_LINKS 40

struct hm__walk {
	const hm_loader *l;
	const char *key; /* what is being opened, for messages */
	bool check;      /* a load: check the root, directories and links */
	int links;       /* symbolic links followed so far */
	int depth;       /* dirs[0..depth): open below the root, each checked */
	int dirs[HM__WALK_DEPTH];
	size_t plen[HM__WALK_DEPTH + 1]; /* path[0..plen[d]) names depth d */
	char path[PATH_MAX];             /* where the walk is, for messages */
};

/* The directory the walk is in. */
static int hm__walk_fd(const struct hm__walk *w)
{
	return w->depth ? w->dirs[w->depth - 1] : w->l->rootfd;
}

/*
 * Put name after the walk's path, for messages only.  Names met through a
 * link target are anybody's bytes: nothing but printable ASCII goes into
 * a message.
 */
static void hm__walk_name(struct hm__walk *w, const char *name, size_t len)
{
	size_t n = w->plen[w->depth];

	if (n && n < sizeof w->path - 1)
		w->path[n++] = '/';
	for (size_t i = 0; i < len && n < sizeof w->path - 1; i++) {
		unsigned char c = (unsigned char)name[i];
		w->path[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	w->path[n] = '\0';
}

static void hm__walk_end(struct hm__walk *w)
{
	while (w->depth > 0)
		close(w->dirs[--w->depth]);
}

/*
 * Start at the root.  For a load, the root is checked like every directory
 * below it, at every load: its owner or mode may have changed since
 * hm_open() (chmod 777 ROOT would let anyone put a link in it).
 */
static int hm__walk_start(struct hm__walk *w, const hm_loader *l, const char *key, bool check,
	struct stat *root)
{
	w->l = l;
	w->key = key;
	w->check = check;
	w->links = 0;
	w->depth = 0;
	w->plen[0] = 0;
	w->path[0] = '\0';
	if (!check && !root)
		return 0;
	struct stat st;
	if (!root)
		root = &st;
	if (fstat(l->rootfd, root) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: fstat", l->root);
	return check ? hm__check_perms(l, root, l->root) : 0;
}

/* A symbolic link is followed only if it is owned by root or by us, as the
 * kernel's protected_symlinks rule has it for sticky directories: a link is
 * a file that someone wrote, and where it leads is what they chose. */
static int hm__walk_link_owner(struct hm__walk *w, const struct stat *st)
{
	if (!w->check || (w->l->trust & HM_TRUST_ANY_OWNER) || st->st_uid == 0 ||
	    st->st_uid == w->l->euid)
		return 0;
	return hm__fail(HM_EUNSAFE, "%s: symbolic link %s: owned by uid %u, neither "
				    "root nor us", w->key, w->path, (unsigned)st->st_uid);
}

/*
 * Walk rel from where w is.  Directories on the way are opened, checked
 * (for a load) and kept in w; the object rel names in the end is not
 * followed if it is a link (its target is walked instead) and is returned
 * as an O_PATH descriptor, with its fstat in st.  A rel that ends in '/'
 * names a directory, returned the same way.  HM_ENOENT, with no message,
 * when something on the way does not exist or is not a directory.
 */
static int hm__walk(struct hm__walk *w, const char *rel, struct stat *st)
{
	char todo[PATH_MAX], target[PATH_MAX];
	size_t n = strlen(rel);
	char *p = todo;
	int fd, rc;

	if (n >= sizeof todo)
		return hm__fail(HM_EBADPATH, "%s: path too long", w->key);
	memcpy(todo, rel, n + 1);
	for (;;) {
		while (*p == '/')
			p++;
		char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		bool last = *end == '\0';

		if (len == 0) { /* the directory the walk is in */
			if ((fd = fcntl(hm__walk_fd(w), F_DUPFD_CLOEXEC, 0)) < 0)
				return hm__fail_errno(errno, HM_ESYS, "%s: dup", w->key);
			break;
		}
		if (len == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			/* Only a link's target can say ".."; it must not climb out. */
			if (w->depth == 0)
				return hm__fail(HM_EESCAPE, "%s: a symbolic link leads outside %s",
					w->key, w->l->root);
			close(w->dirs[--w->depth]);
			w->path[w->plen[w->depth]] = '\0';
			p = end;
			continue;
		}
		char save = *end;
		*end = '\0';
		fd = openat(hm__walk_fd(w), p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		*end = save;
		if (fd < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				return HM_ENOENT;
			return hm__fail_errno(errno, HM_ESYS, "%s: open %s", w->key, w->path);
		}
		if (fstat(fd, st) < 0) {
			rc = hm__fail_errno(errno, HM_ESYS, "%s: fstat", w->key);
			close(fd);
			return rc;
		}
		hm__walk_name(w, p, len);
		if (S_ISLNK(st->st_mode)) {
			ssize_t tn = 0;

			if (++w->links > HM__WALK_LINKS)
				rc = hm__fail(HM_ENOTREG, "%s: a loop of symbolic links at %s "
							  "(more than %d followed)",
					w->key, w->path, HM__WALK_LINKS);
			else if ((rc = hm__walk_link_owner(w, st)) == 0 &&
				 (tn = readlinkat(fd, "", target, sizeof target)) < 0)
				rc = hm__fail_errno(errno, HM_ESYS, "%s: readlink %s", w->key,
					w->path);
			close(fd);
			if (rc < 0)
				return rc;
			if (tn == 0)
				return HM_ENOENT; /* as the kernel has it */
			/* An absolute target is refused wherever it points, as
			 * RESOLVE_BENEATH does: the root is not "/". */
			if ((size_t)tn >= sizeof target || target[0] == '/')
				return hm__fail(HM_EESCAPE, "%s: a symbolic link leads outside %s",
					w->key, w->l->root);
			size_t rest = strlen(end);
			if ((size_t)tn + rest >= sizeof todo)
				return hm__fail(HM_EBADPATH, "%s: path too long through the "
							     "symbolic link %s", w->key, w->path);
			w->path[w->plen[w->depth]] = '\0';
			memmove(todo + tn, end, rest + 1);
			memcpy(todo, target, (size_t)tn);
			p = todo;
			continue;
		}
		if (last)
			return fd;
		if (!S_ISDIR(st->st_mode)) {
			close(fd);
			return HM_ENOENT;
		}
		if (w->depth == HM__WALK_DEPTH) {
			close(fd);
			return hm__fail(HM_EBADPATH, "%s: leads more than %d directories deep",
				w->key, HM__WALK_DEPTH);
		}
		if (w->check) {
			char what[PATH_MAX + 64];
			snprintf(what, sizeof what, "%s: directory %s", w->key, w->path);
			if ((rc = hm__check_perms(w->l, st, what)) < 0) {
				close(fd);
				return rc;
			}
		}
		w->dirs[w->depth++] = fd;
		w->plen[w->depth] = strlen(w->path);
		p = end;
	}
	if (fstat(fd, st) < 0) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: fstat", w->key);
		close(fd);
		return rc;
	}
	return fd;
}

/* A directory's identity: the walks of a module and of its global module
 * must have reached the same one. */
struct hm__dirid {
	dev_t dev;
	ino_t ino;
};

/*
 * Walk key: its directories, then its file from the directory they lead to
 * (*dir: which one that was).  Returns an O_PATH descriptor of what the key
 * names, links followed, and its fstat.
 */
static int hm__walk_key(struct hm__walk *w, const char *key, struct stat *st,
	struct hm__dirid *dir, const struct stat *root)
{
	const char *base = strrchr(key, '/');
	int fd;

	if (!base) {
		if (dir)
			*dir = (struct hm__dirid){root->st_dev, root->st_ino};
		return hm__walk(w, key, st);
	}
	char dirs[PATH_MAX];
	size_t n = (size_t)(base - key) + 1;
	if (n >= sizeof dirs)
		return hm__fail(HM_EBADPATH, "%s: path too long", key);
	memcpy(dirs, key, n);
	dirs[n] = '\0';
	if ((fd = hm__walk(w, dirs, st)) < 0)
		return fd;
	close(fd);
	if (dir)
		*dir = (struct hm__dirid){st->st_dev, st->st_ino};
	return hm__walk(w, base + 1, st);
}
/* ---- opening and copying -------------------------------------------------- */

/*
 * Open key for reading without ever opening something that is not a regular
 * file: a FIFO would block and a device open can have side effects.  So
 * walk to it O_PATH, check, then reopen the very same inode through /proc.
 * *st: its fstat once settled; *dir: the directory the walk found it in.
 */
static int hm__open_module(hm_loader *l, const char *key, struct stat *st,
	struct hm__dirid *dir)
{
	struct hm__walk w;
	struct stat root, st2;
	char proc[64];
	int pfd, fd, rc;

	if ((rc = hm__walk_start(&w, l, key, true, &root)) < 0)
		return rc;
	pfd = hm__walk_key(&w, key, st, dir, &root);
	hm__walk_end(&w);
	if (pfd < 0)
		return pfd == HM_ENOENT ? hm__no_file(l, key) : pfd;
	if ((rc = hm__settle(key, pfd, st)) < 0)
		goto out;
	if (!S_ISREG(st->st_mode)) {
		rc = hm__fail(HM_ENOTREG, "%s: not a regular file (%s)", key,
			S_ISDIR(st->st_mode) ? "a directory" :
			S_ISFIFO(st->st_mode) ? "a FIFO" : "a device or socket");
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
		rc = hm__fail_errno(errno, HM_ESYS, "%s: reopen", key);
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
			return hm__fail_errno(errno, HM_ESYS, "%s: copy", key);
		if (n == 0)
			return hm__fail(HM_ECHANGED, "%s: shrank while being copied", key);
	}
	return 0;
}

/* Has fd's file still the identity id? */
static int hm__same_id(int fd, const struct hm__fileid *id, const char *key)
{
	struct hm__fileid now;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: fstat", key);
	hm__fileid_of(&now, &st);
	if (!hm__fileid_eq(id, &now))
		return hm__fail(HM_ECHANGED, "%s: modified while being copied", key);
	return 0;
}

/*
 * Is global (NULL: none) the global module of dir, the directory key's
 * file was just found in (gkey: the key of that directory's global)?  The way to that directory may be a link that a
 * deploy switches (app -> .releases/N): a module and its global come from
 * the same directory as it is now, or HM__GLOBAL_MOVED.  Only identities
 * are compared here; the global's own load checks its file.
 */
static int hm__global_same(hm_loader *l, const char *key, const char *gkey,
	const struct hm__dirid *dir, const struct hm__fileid *global)
{
	struct hm__walk w;
	struct hm__dirid there;
	struct hm__fileid id;
	struct stat root, st;
	bool same = false;
	int fd;

	there = (struct hm__dirid){0, 0};
	if (hm__walk_start(&w, l, key, false, &root) < 0)
		return HM__GLOBAL_MOVED;
	fd = hm__walk_key(&w, gkey, &st, &there, &root);
	if (there.dev != dir->dev || there.ino != dir->ino) {
		same = false; /* another directory: walked too late or too early */
	} else if (fd == HM_ENOENT) {
		same = !global;
	} else if (fd >= 0) {
		hm__fileid_of(&id, &st);
		same = global && hm__fileid_eq(&id, global);
	}
	if (fd >= 0)
		close(fd);
	hm__walk_end(&w);
	return same ? 0 : HM__GLOBAL_MOVED;
}

/* Seal the copy of size bytes in memfd, then check it is a loadable ELF
 * object: what every copy goes through before it is loaded. */
static int hm__seal_checked(int memfd, uint64_t size, const char *key)
{
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: seal", key);
	return hm__elf_check(memfd, size, key);
}

int hm__copy_module(hm_loader *l, const char *key, const char *gkey,
	const struct hm__fileid *global, int *memfd, struct hm__fileid *id)
{
	struct hm__dirid dir;
	struct stat before;
	int fd, mfd, rc;

	fd = hm__open_module(l, key, &before, &dir);
	if (fd < 0)
		return fd;
	hm__fileid_of(id, &before);
	mfd = memfd_create("hotmod", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0) {
		rc = hm__fail_errno(errno, HM_ESYS, "%s: memfd_create", key);
		goto out;
	}
	if ((rc = hm__copy(mfd, fd, before.st_size, key)) < 0 ||
	    (rc = hm__same_id(fd, id, key)) < 0)
		goto fail;
	if (hm__writer(fd) == 1) {
		rc = hm__fail(HM_ECHANGED, "%s: open for writing: it loads once its writer "
					   "closes it", key);
		goto fail;
	}
	if ((rc = hm__still_copied(fd, mfd, before.st_size, key)) < 0)
		goto fail;
	if (rc == 0) {
		rc = hm__fail(HM_ECHANGED, "%s: modified while being copied", key);
		goto fail;
	}
	if ((rc = hm__same_id(fd, id, key)) < 0)
		goto fail;
	if (gkey && (rc = hm__global_same(l, key, gkey, &dir, global)) != 0)
		goto fail;
	if ((rc = hm__seal_checked(mfd, (uint64_t)before.st_size, key)) < 0)
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

int hm__copy_fd(hm_loader *l, int fd, const char *key, int *memfd, uint64_t *size)
{
	struct stat st;
	int mfd, rc;

	if (fstat(fd, &st) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: the embedder's substitute: fstat", key);
	if (!S_ISREG(st.st_mode))
		return hm__fail(HM_EINVAL, "%s: the embedder's substitute is not a regular file",
			key);
	if ((uint64_t)st.st_size > l->max_size)
		return hm__fail(HM_ETOOBIG, "%s: the embedder's substitute has %llu bytes, "
					   "more than the limit (%zu)", key,
			(unsigned long long)st.st_size, l->max_size);
	if ((mfd = memfd_create("hotmod", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		return hm__fail_errno(errno, HM_ESYS, "%s: memfd_create", key);
	/* sendfile() reads from an offset of its own: fd's is left alone. */
	if ((rc = hm__copy(mfd, fd, st.st_size, key)) < 0 ||
	    (rc = hm__seal_checked(mfd, (uint64_t)st.st_size, key)) < 0)
		goto fail;
	*memfd = mfd;
	*size = (uint64_t)st.st_size;
	return 0;
fail:
	close(mfd);
	return rc;
}

int hm__open_key(hm_loader *l, const char *key, struct stat *st)
{
	struct hm__dirid dir;

	return hm__open_module(l, key, st, &dir);
}

int hm__no_file(const hm_loader *l, const char *key)
{
	return hm__fail(HM_ENOENT, "%s: no such file under %s", key, l->root);
}

int hm__stat_key(const hm_loader *l, const char *key, struct hm__fileid *id)
{
	struct hm__walk w;
	struct stat st;
	int fd;

	/* Beneath the root like every open: a link out of it is an escape, not
	 * a file that exists (that would tell what lies outside).  A final
	 * symlink inside the root is followed: ln -sf deploys must be seen.
	 * ENOENT sets no message: for a global module it is no error.  Nothing
	 * is checked here: that is the load's work. */
	(void)hm__walk_start(&w, l, key, false, NULL);
	fd = hm__walk_key(&w, key, &st, NULL, NULL);
	hm__walk_end(&w);
	if (fd < 0)
		return fd;
	close(fd);
	hm__fileid_of(id, &st);
	return 0;
}
