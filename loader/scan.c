/* SPDX-License-Identifier: MIT */
/*
 * scan.c - walking the tree under the root, and looking at one file.
 *
 * Shared by every way a change is noticed: hm_open()'s preload, the
 * watcher's first scan, its rescans and the names its events bring
 * (watch.c), and hm_rescan() in stat mode.  A look asks the cache
 * (hm__entry_look) to look at a file it knows; a module it does not know
 * yet is loaded on its first request, or now when preloading.
 */
#include "loader.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

/*
 * A name in dir that the rule refuses (a byte a request cannot hold, too
 * long, too deep): skipped, and said in the log - at most HM__SKIP_BURST
 * lines a minute, since anyone who can write into a served directory can
 * make up names.  The name is escaped like every logged byte.
 */
#define HM__SKIP_BURST 8
#define HM__SKIP_WINDOW_NS (60 * (int64_t)1000000000)
void hm__skip_log(hm_loader *l, const char *dir, const char *name, bool is_dir,
	int why)
{
	int64_t now = hm__now();
	long long start = atomic_load_explicit(&l->skip_window, memory_order_relaxed);

	/* relaxed: a count, not a guard; a race costs a line more or less */
	if (now - start >= HM__SKIP_WINDOW_NS &&
	    atomic_compare_exchange_strong_explicit(&l->skip_window, &start, now,
		    memory_order_relaxed, memory_order_relaxed))
		atomic_store_explicit(&l->skip_logged, 0, memory_order_relaxed);
	unsigned n = atomic_fetch_add_explicit(&l->skip_logged, 1, memory_order_relaxed);
	if (n < HM__SKIP_BURST)
		/* The reason first: a long name may be cut off the line. */
		hm__log(l, HM_LOG_WARN, "%s: skipped %s (%s): \"%s%s%s\"", l->root,
			is_dir ? "directory" : "file", hm__name_why(why), dir, name,
			is_dir ? "/" : "");
	else if (n == HM__SKIP_BURST)
		hm__log(l, HM_LOG_WARN, "%s: more names are skipped; not logged for a "
					"minute", l->root);
}

/*
 * Something happened to the file key.  Known entries are looked at now;
 * unknown modules are loaded on their first request, or now if preloading.
 */
void hm__look_at(hm_loader *l, const char *key, int flags, bool preload)
{
	size_t len = strlen(key);
	/* Built by hm__file_key already: checked again, as a second defence. */
	int kind = hm__key_kind(key, len, l->global_name);
	bool global = kind == HM__KEY_GLOBAL;
	struct hm__entry *e;
	struct hm__fileid id;
	hm_module *v;

	if (kind < 0)
		return;
	e = hm__table_get_key(l, key, len); /* held */
	if (!e && global && !preload) {
		/* Not loaded: modules of its directory that are loaded find
		 * and load it when they are rebound; others will on their load. */
		const char *slash = strrchr(key, '/');
		hm__rebind_dir(l, key, slash ? (size_t)(slash - key) + 1 : 0);
		return;
	}
	if (!e) {
		if (!preload)
			return;
		/* A file of the tree that is refused (a link out of the root) gets
		 * an entry too, so that the status shows why: the tree is bounded,
		 * unlike the names requests may make up. */
		if (hm__stat_key(l, key, &id) == HM_ENOENT ||
		    hm__table_insert(l, key, len, global, &e) < 0)
			return;
		if (!global) {
			if (hm__entry_get(e, &v, false) == 0)
				hm_put(v);
			hm__entry_release(e);
			return;
		}
	}
	/* Modules follow their global: re-initialised against it, also when
	 * another way loaded it already. */
	if (hm__entry_look(e, flags) != HM__LOADED && global)
		hm__rebind_dir(l, key, e->dir_len);
	hm__entry_release(e);
}

static int hm__opendir_beneath(const hm_loader *l, const char *dir)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS};
	char path[HM__DIR_MAX + 1];
	size_t n = strlen(dir);

	if (n > HM__DIR_MAX) { /* cannot be: checked by hm__subdir_key */
		errno = ENAMETOOLONG;
		return -1;
	}
	if (n == 0) {
		snprintf(path, sizeof path, ".");
	} else { /* without the trailing '/' */
		snprintf(path, sizeof path, "%.*s", (int)(n - 1), dir);
	}
	return (int)syscall(SYS_openat2, l->rootfd, path, &how, sizeof how);
}

/* The subdirectory name of dir (found by a scan or an event): only one a
 * request could name a file in is watched and scanned. */
void hm__scan_sub(hm_loader *l, const char *dir, const char *name, bool preload,
	hm__dir_fn *on_dir)
{
	char sub[HM__DIR_MAX + 1];
	int n = hm__subdir_key(sub, sizeof sub, dir, strlen(dir), name);

	if (n < 0)
		hm__skip_log(l, dir, name, true, n);
	else
		hm__scan_dir(l, sub, preload, on_dir);
}

/*
 * Hand dir ("" or "a/b/", checked) to on_dir (the watcher watches it),
 * then list it (in that order: a file created in between is seen by one or
 * the other), look at each module
 * file, globals first, and descend.  Symbolic links to directories are not
 * followed.  Every key comes from hm__file_key: what the rule refuses is
 * skipped, and said.
 */
void hm__scan_dir(hm_loader *l, const char *dir, bool preload, hm__dir_fn *on_dir)
{
	char key[HM__KEY_MAX + 1];
	size_t dir_len = strlen(dir);
	struct dirent *de;
	DIR *d;
	int fd, kind, n;

	if (on_dir)
		on_dir(l, dir);
	if ((fd = hm__opendir_beneath(l, dir)) < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		if (errno != ENOENT)
			hm__log(l, HM_LOG_WARN, "%s: cannot list %s: %s", l->root,
				*dir ? dir : "the root", strerror(errno));
		return;
	}
	if (hm__file_key(key, sizeof key, dir, dir_len, l->global_name, l->global_name,
		    &kind) >= 0)
		hm__look_at(l, key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE, preload);
	/* errno tells a failed readdir from the end of the list */
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, l->global_name) == 0)
			continue;
		bool is_dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) { /* file systems without d_type */
			struct stat st;
			is_dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				 S_ISDIR(st.st_mode);
		}
		if (is_dir) {
			hm__scan_sub(l, dir, de->d_name, preload, on_dir);
			continue;
		}
		n = hm__file_key(key, sizeof key, dir, dir_len, de->d_name, l->global_name,
			&kind);
		if (n >= 0)
			hm__look_at(l, key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE, preload);
		else if (n != HM__NAME_NOTMOD)
			hm__skip_log(l, dir, de->d_name, false, n);
	}
	if (errno != 0)
		hm__log(l, HM_LOG_WARN, "%s: cannot list all of %s: %s", l->root,
			*dir ? dir : "the root", strerror(errno));
	closedir(d);
}

/* hm__table_each callback: look at every known file again. */
static void hm__refresh_each(struct hm__entry *e, void *arg)
{
	(void)arg;
	hm__entry_look(e, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

void hm__scan(hm_loader *l, bool preload, hm__dir_fn *on_dir)
{
	hm__scan_dir(l, "", preload, on_dir);
	/* Files under directories that went away are not in the scan. */
	hm__table_each(l, hm__refresh_each, NULL);
}

