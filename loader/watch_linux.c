/* SPDX-License-Identifier: MIT */
/*
 * watch_linux.c - noticing changed files: inotify on the root and every
 * directory under it, or stat checks where inotify cannot see.  Linux only.
 *
 * Events are hints, never facts (docs/DESIGN.md, "inotify is a hint"):
 * every event just asks hm__entry_refresh() to look at the file, which
 * stats, copies, compares and validates it.  So an event that comes twice, early (CREATE before the
 * write) or for an unchanged file (touch) costs a look, not a reload; a lost
 * event (queue overflow) or a removed directory triggers a full rescan.
 *
 * The watcher's lock protects only its own tables; loads run without it,
 * because init is a hook and no lock is held while a hook runs.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "fault.h" /* last: see fault.h */

#define HM__WATCH_MASK                                                         \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |   \
	 IN_MODIFY |                                                              \
	 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK | IN_ONLYDIR | \
	 IN_DONT_FOLLOW)

struct hm__wdir {
	int wd;
	char *dir; /* "" for the root, else "a/b/" */
};

/*
 * A file to look at later: one that went missing (look again when its
 * removal grace ends), or one being written (created or modified, not yet
 * closed or renamed in: look when its writer is done).  A writer may also
 * stay quiet without closing: a slow linker on a busy machine, one writing
 * through a mapping (no event until it closes), a hard link (CREATE only).
 * Once quiet for the removal delay, the file is checked: complete, it is
 * looked at; incomplete, it is still being written (stalled), and is
 * judged when its writer closes it, or once quiet for HM__QUIET_MAX_NS.
 */
struct hm__pending {
	char *key;
	int64_t due; /* hm__now() */
	bool writing;
	bool stalled;  /* writing: quiet for the delay, and incomplete */
	int64_t wrote; /* writing: the last CREATE or MODIFY, hm__now() */
	int flags; /* for the look when it is due */
};

/* An incomplete file whose writer has not closed it is judged after this
 * long without an event (or twice the removal delay, if longer). */
#define HM__QUIET_MAX_NS ((int64_t)60 * 1000000000)

static int64_t hm__quiet_max(const hm_loader *l)
{
	return l->removal_delay_ns > HM__QUIET_MAX_NS / 2 ? 2 * l->removal_delay_ns :
							     HM__QUIET_MAX_NS;
}

struct hm__watch {
	int fd;   /* inotify */
	/*
	 * A pipe that tells the thread to stop: hm__watch_stop() closes its
	 * write end, and poll() sees the read end hang up.  Closing cannot
	 * fail to happen, where a write (to an eventfd, before) could fail,
	 * and the thread then never ended.
	 */
	int wake[2];
	pthread_t thread;
	bool has_thread;
	atomic_bool stop; /* set before wake[1] is closed */
	pthread_mutex_t lock; /* protects everything below */
	struct hm__wdir *dirs;
	size_t ndirs, capdirs;
	struct hm__pending *pend; /* files to look at later */
	size_t npend, cappend;
	uint64_t rescans;
};

/* A growing array of keys to look at once each, after reading events. */
struct hm__batch {
	struct hm__batch_key {
		char *key;
		int flags;
		bool check;    /* a quiet writer's file: complete yet? */
		int64_t wrote; /* check: the pending entry's wrote */
	} *keys;
	size_t n, cap;
	/* Names that came in and need work with no lock held: new directories
	 * to check, watch and scan; files refused by the name rule, to log. */
	struct hm__batch_name {
		char *dir; /* a watched directory: "" or "a/b/" */
		char *name;
		bool is_dir;
	} *names;
	size_t nnames, capnames;
	bool rescan;
	/* Logged after the watcher lock is dropped. */
	bool root_removed;
	int read_errno;
};

/* Remote and FUSE file systems: changes made elsewhere give no event. */
static bool hm__remote_fs(unsigned long type)
{
	switch (type) {
	case NFS_SUPER_MAGIC:
	case SMB_SUPER_MAGIC:
	case 0xFF534D42ul: /* CIFS */
	case 0xFE534D42ul: /* SMB2 */
	case 0x65735546ul: /* FUSE */
	case 0x00C36400ul: /* Ceph */
	case V9FS_MAGIC:
	case AFS_SUPER_MAGIC:
	case CODA_SUPER_MAGIC:
	case 0x01161970ul: /* GFS2 */
	case 0x7461636Ful: /* OCFS2 */
	case 0x0BD00BD0ul: /* Lustre */
		return true;
	default:
		return false;
	}
}

static bool hm__grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, ncap * size);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* ---- the directory table ------------------------------------------------ */

static struct hm__wdir *hm__wdir_find(struct hm__watch *w, int wd)
{
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static void hm__wdir_remove(struct hm__watch *w, struct hm__wdir *d)
{
	free(d->dir);
	*d = w->dirs[--w->ndirs];
}

/* Watch dir ("" or "a/b/", checked by hm__subdir_key); failures are
 * logged, the rest still works. */
static bool hm__watch_add(hm_loader *l, const char *dir)
{
	struct hm__watch *w = l->watch;
	char path[sizeof "/proc/self/fd//" + 12 + HM__DIR_MAX];
	int wd;

	if ((size_t)snprintf(path, sizeof path, "/proc/self/fd/%d/%s", l->rootfd, dir) >=
	    sizeof path)
		return false; /* cannot be: dir holds at most HM__DIR_MAX bytes */
	wd = inotify_add_watch(w->fd, path, HM__WATCH_MASK);
	if (wd < 0) {
		hm__log(l, HM_LOG_WARN, "%s: cannot watch %s: %s%s", l->root,
			*dir ? dir : "the root", strerror(errno),
			errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
		return false;
	}
	bool oom = false;
	pthread_mutex_lock(&w->lock);
	struct hm__wdir *d = hm__wdir_find(w, wd);
	char *copy = strdup(dir);
	if (!copy) {
		oom = true;
	} else if (d) { /* the same directory, or one renamed: keep the new name */
		free(d->dir);
		d->dir = copy;
	} else if (hm__grow((void **)&w->dirs, &w->capdirs, w->ndirs, sizeof *w->dirs)) {
		w->dirs[w->ndirs++] = (struct hm__wdir){.wd = wd, .dir = copy};
	} else {
		free(copy);
		inotify_rm_watch(w->fd, wd);
		oom = true;
	}
	pthread_mutex_unlock(&w->lock);
	if (oom) /* logged with no lock held, like every log line */
		hm__log(l, HM_LOG_ERROR, "%s: out of memory watching %s", l->root, dir);
	return !oom;
}

/* ---- looking at files ------------------------------------------------------ */

static struct hm__pending *hm__pending_find(struct hm__watch *w, const char *key)
{
	for (size_t i = 0; i < w->npend; i++)
		if (strcmp(w->pend[i].key, key) == 0)
			return &w->pend[i];
	return NULL;
}

/* What a file's last event says to do about it. */
enum hm__wait {
	HM__WAIT_MISSING, /* its grace runs: look when it ends */
	HM__WAIT_DELETED, /* removed: look when the delay ends, grace served */
	HM__WAIT_WRITING, /* being written: look when done, or still */
};

/* Look at key after the removal delay; w->lock held.  false: no memory. */
static bool hm__pending_set(hm_loader *l, const char *key, enum hm__wait why)
{
	struct hm__watch *w = l->watch;
	int64_t now = hm__now(), due = now + l->removal_delay_ns + 1000000;
	struct hm__pending *p = hm__pending_find(w, key);
	/* A deletion waited out the delay already: then a missing file goes. */
	int flags = why == HM__WAIT_DELETED ? HM__R_NOW : HM__R_NOW | HM__R_GRACE;
	char *copy;

	if (p) {
		if (why != HM__WAIT_MISSING) { /* a new write or removal: from now */
			p->writing = why == HM__WAIT_WRITING;
			p->stalled = false;
			p->wrote = now;
			p->flags = flags;
			p->due = due;
		}
		return true;
	}
	if (!(copy = strdup(key)) ||
	    !hm__grow((void **)&w->pend, &w->cappend, w->npend, sizeof *w->pend)) {
		free(copy);
		return false;
	}
	w->pend[w->npend++] = (struct hm__pending){.key = copy, .due = due,
		.writing = why == HM__WAIT_WRITING, .wrote = now, .flags = flags};
	return true;
}

/* A complete file is in place (closed, renamed in): look now; w->lock held. */
static void hm__pending_clear(struct hm__watch *w, const char *key)
{
	struct hm__pending *p = hm__pending_find(w, key);

	if (p) {
		free(p->key);
		*p = w->pend[--w->npend];
	}
}

bool hm__watch_busy(hm_loader *l, const char *key)
{
	struct hm__watch *w = l->watch;
	bool busy;

	if (!w)
		return false;
	pthread_mutex_lock(&w->lock);
	struct hm__pending *p = hm__pending_find(w, key);
	busy = p && (p->writing || p->flags == HM__R_NOW);
	pthread_mutex_unlock(&w->lock);
	return busy;
}

/* Look at key again (with flags) when the delay ends. */
static void hm__pending_add(hm_loader *l, const char *key, int flags)
{
	struct hm__watch *w = l->watch;
	bool ok;

	if (!w)
		return; /* stat mode: the next check on the request path looks */
	pthread_mutex_lock(&w->lock);
	ok = hm__pending_set(l, key, HM__WAIT_MISSING);
	struct hm__pending *p = hm__pending_find(w, key);
	if (p && !p->writing)
		p->flags = flags;
	pthread_mutex_unlock(&w->lock);
	if (!ok)
		hm__log(l, HM_LOG_ERROR, "%s: out of memory: a removal may be missed", key);
}

/*
 * A name in dir that the rule refuses (a byte a request cannot hold, too
 * long, too deep): skipped, and said in the log - at most HM__SKIP_BURST
 * lines a minute, since anyone who can write into a served directory can
 * make up names.  The name is escaped like every logged byte.
 */
#define HM__SKIP_BURST 8
#define HM__SKIP_WINDOW_NS (60 * (int64_t)1000000000)
static void hm__skip_log(hm_loader *l, const char *dir, const char *name, bool is_dir,
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

static void hm__rebind_dir(hm_loader *l, const char *dir, size_t dir_len);

/* hm__entry_refresh(), and what the watcher does after it; its result. */
static int hm__refresh_entry(hm_loader *l, struct hm__entry *e, int flags)
{
	int rc = hm__entry_refresh(e, flags);

	/* A new global (a rescan, a look at every entry): its modules
	 * follow, whichever order the table lists them in. */
	if (rc == 1 && e->is_global)
		hm__rebind_dir(l, e->key, e->dir_len);
	/* Missing within its grace, or maybe still being written: look again
	 * when the delay ends (then a broken file is reported).  A module that
	 * could not follow its global because a file changed under the load
	 * (its global's, which brings this module no event of its own) is
	 * looked at again too, until it follows. */
	if (rc == HM__MISSING)
		hm__pending_add(l, e->key, HM__R_NOW | HM__R_GRACE);
	else if (rc == HM__UNSETTLED)
		hm__pending_add(l, e->key, HM__R_NOW);
	else if (rc == HM_ECHANGED && !e->is_global && hm__binding_stale(e))
		hm__pending_add(l, e->key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
	return rc;
}

struct hm__rebind {
	const char *dir;
	size_t dir_len;
};

/* hm__table_each callback: modules of a directory whose global changed. */
static void hm__rebind_one(struct hm__entry *e, void *arg)
{
	const struct hm__rebind *r = arg;

	/* A module being written is rebound by the look its writer's end
	 * brings: looking now would see half a file. */
	if (!e->is_global && e->dir_len == r->dir_len &&
	    memcmp(e->key, r->dir, r->dir_len) == 0 &&
	    atomic_load_explicit(&e->current, memory_order_acquire) &&
	    !hm__watch_busy(e->loader, e->key))
		hm__refresh_entry(e->loader, e, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

static void hm__rebind_dir(hm_loader *l, const char *dir, size_t dir_len)
{
	struct hm__rebind r = {.dir = dir, .dir_len = dir_len};

	hm__table_each(l, hm__rebind_one, &r);
}

void hm__watch_global_loaded(hm_loader *l, const char *key)
{
	hm__pending_add(l, key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

/*
 * Something happened to the file key.  Known entries are looked at now;
 * unknown modules are loaded on their first request, or now if preloading.
 */
static void hm__look_at(hm_loader *l, const char *key, int flags, bool preload)
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
	if (hm__refresh_entry(l, e, flags) != 1 && global)
		hm__rebind_dir(l, key, e->dir_len);
	hm__entry_release(e);
}

/*
 * The writer of k has been quiet for the removal delay without closing the
 * file.  Complete, or broken in a way no write in progress explains (a hard
 * link to a text file), the file is looked at now.  Incomplete - shorter
 * than an ELF header, headers or segments past its end, zeros where the
 * header goes (a linker writing through a mapping) - it is still being
 * written: no look, no error; it stays pending until its writer closes it,
 * writes again, or stays quiet for hm__quiet_max().  No watcher lock held.
 */
static void hm__check_quiet(hm_loader *l, const struct hm__batch_key *k, bool preload)
{
	struct hm__watch *w = l->watch;
	struct stat st;
	bool incomplete = false, mine;
	int fd = hm__open_key(l, k->key, &st);

	if (fd >= 0) {
		incomplete = hm__elf_check(fd, (uint64_t)st.st_size, k->key) == HM_ENOTELF &&
			     hm__elf_partial(fd, (uint64_t)st.st_size);
		close(fd);
	} else {
		incomplete = fd == HM_ECHANGED; /* replaced as we opened it */
	}
	pthread_mutex_lock(&w->lock);
	struct hm__pending *p = hm__pending_find(w, k->key);
	/* An event since (a write, the close, a removal) decides instead. */
	mine = p && p->writing && p->stalled && p->wrote == k->wrote;
	if (mine && !incomplete)
		hm__pending_clear(w, k->key);
	pthread_mutex_unlock(&w->lock);
	if (!mine)
		return;
	if (incomplete)
		hm__log(l, HM_LOG_DEBUG, "%s: still being written (%s): looked at when "
					 "its writer closes it", k->key, hm__msg());
	else
		hm__look_at(l, k->key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE, preload);
}

/* ---- scanning ---------------------------------------------------------------- */

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

static void hm__scan_dir(hm_loader *l, const char *dir, bool preload);

/* The subdirectory name of dir (found by a scan or an event): only one a
 * request could name a file in is watched and scanned. */
static void hm__scan_sub(hm_loader *l, const char *dir, const char *name, bool preload)
{
	char sub[HM__DIR_MAX + 1];
	int n = hm__subdir_key(sub, sizeof sub, dir, strlen(dir), name);

	if (n < 0)
		hm__skip_log(l, dir, name, true, n);
	else
		hm__scan_dir(l, sub, preload);
}

/*
 * Watch dir ("" or "a/b/", checked), then list it (in that order: a file
 * created in between is seen by one or the other), look at each module
 * file, globals first, and descend.  Symbolic links to directories are not
 * followed.  Every key comes from hm__file_key: what the rule refuses is
 * skipped, and said.
 */
static void hm__scan_dir(hm_loader *l, const char *dir, bool preload)
{
	char key[HM__KEY_MAX + 1];
	size_t dir_len = strlen(dir);
	struct dirent *de;
	DIR *d;
	int fd, kind, n;

	if (l->watch)
		hm__watch_add(l, dir);
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
			hm__scan_sub(l, dir, de->d_name, preload);
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
	hm__refresh_entry(e->loader, e, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

void hm__scan(hm_loader *l, bool preload)
{
	hm__scan_dir(l, "", preload);
	/* Files under directories that went away are not in the scan. */
	hm__table_each(l, hm__refresh_each, NULL);
}

/* ---- events ---------------------------------------------------------------------- */

static void hm__batch_free(struct hm__batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->keys[i].key);
	for (size_t i = 0; i < b->nnames; i++) {
		free(b->names[i].dir);
		free(b->names[i].name);
	}
	free(b->keys);
	free(b->names);
}

static void hm__batch_key(struct hm__batch *b, const char *key, int flags)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->keys[i].key, key) == 0)
			return;
	char *copy = strdup(key);
	if (!copy || !hm__grow((void **)&b->keys, &b->cap, b->n, sizeof *b->keys)) {
		free(copy);
		b->rescan = true; /* lost it: look at everything */
		return;
	}
	b->keys[b->n++] = (struct hm__batch_key){.key = copy, .flags = flags};
}

/* A name in the watched dir, checked (and scanned or logged) after the lock. */
static void hm__batch_name(struct hm__batch *b, const char *dir, const char *name,
	bool is_dir)
{
	char *dcopy = strdup(dir), *ncopy = strdup(name);

	if (!dcopy || !ncopy ||
	    !hm__grow((void **)&b->names, &b->capnames, b->nnames, sizeof *b->names)) {
		free(dcopy);
		free(ncopy);
		b->rescan = true;
		return;
	}
	b->names[b->nnames++] =
		(struct hm__batch_name){.dir = dcopy, .name = ncopy, .is_dir = is_dir};
}

/* Sort one event into the batch; w->lock held. */
static void hm__event(hm_loader *l, const struct inotify_event *ev, struct hm__batch *b)
{
	struct hm__watch *w = l->watch;
	struct hm__wdir *d;

	if (ev->mask & IN_Q_OVERFLOW) {
		b->rescan = true;
		return;
	}
	if ((d = hm__wdir_find(w, ev->wd)) == NULL)
		return;
	if (ev->mask & IN_IGNORED) { /* the directory is gone */
		if (!*d->dir)
			b->root_removed = true;
		hm__wdir_remove(w, d);
		b->rescan = true;
		return;
	}
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
		b->rescan = true;
		return;
	}
	if (!ev->len || ev->name[0] == '.')
		return;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & (IN_CREATE | IN_MOVED_TO))
			hm__batch_name(b, d->dir, ev->name, true);
		else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
			b->rescan = true; /* removed or moved away: its files too */
		return; /* ATTRIB of a directory changes no module */
	}
	/* Only a module or a global, by the rule; another ".so" is said once
	 * it is complete (a name, not a write, is what is wrong). */
	char key[HM__KEY_MAX + 1];
	int kind, n = hm__file_key(key, sizeof key, d->dir, strlen(d->dir), ev->name,
		l->global_name, &kind);
	if (n < 0) {
		if (n != HM__NAME_NOTMOD && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)))
			hm__batch_name(b, d->dir, ev->name, false);
		return;
	}
	/*
	 * Events come in order; a file's last one says what to do.  A file
	 * being written (CREATE, MODIFY) is looked at when its writer is done
	 * (CLOSE_WRITE, or a complete file renamed in: MOVED_TO).  A removed
	 * one (DELETE, MOVED_FROM) is not looked at at once either: install(1)
	 * may already be writing its successor, whose CREATE is not read yet.
	 */
	bool ok = true;
	if (ev->mask & (IN_CREATE | IN_MODIFY))
		ok = hm__pending_set(l, key, HM__WAIT_WRITING);
	else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
		ok = hm__pending_set(l, key, HM__WAIT_DELETED);
	else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
		hm__pending_clear(w, key);
	if (!ok)
		b->rescan = true;
	hm__batch_key(b, key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
}

/* Drop the keys that wait (written, removed): their pending look comes. */
static void hm__batch_drop_writing(struct hm__watch *w, struct hm__batch *b)
{
	for (size_t i = 0; i < b->n;) {
		struct hm__pending *p = hm__pending_find(w, b->keys[i].key);
		if (p && (p->writing || p->flags == HM__R_NOW)) {
			free(b->keys[i].key);
			b->keys[i] = b->keys[--b->n];
		} else {
			i++;
		}
	}
}

/* Read every event queued now into b; w->lock held. */
static void hm__read_events(hm_loader *l, struct hm__batch *b)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct hm__watch *w = l->watch;

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				b->read_errno = errno;
			return;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			hm__event(l, ev, b);
			p += sizeof *ev + ev->len;
		}
	}
}

/* Take the pending files that are due; w->lock held. */
static void hm__take_due(hm_loader *l, struct hm__batch *b)
{
	struct hm__watch *w = l->watch;
	int64_t now = hm__now();

	for (size_t i = 0; i < w->npend;) {
		struct hm__pending *p = &w->pend[i];
		char *copy;

		if (p->due > now) {
			i++;
			continue;
		}
		if (p->writing && !p->stalled && (copy = strdup(p->key)) != NULL) {
			/* Quiet, not closed: checked (hm__check_quiet) while it
			 * stays pending, so that no request loads it meanwhile. */
			if (!hm__grow((void **)&b->keys, &b->cap, b->n, sizeof *b->keys)) {
				free(copy);
				b->rescan = true;
				i++;
				continue;
			}
			b->keys[b->n++] = (struct hm__batch_key){
				.key = copy, .check = true, .wrote = p->wrote};
			p->stalled = true;
			p->due = p->wrote + hm__quiet_max(l);
			i++;
			continue;
		}
		if (hm__grow((void **)&b->keys, &b->cap, b->n, sizeof *b->keys)) {
			b->keys[b->n++] = (struct hm__batch_key){
				.key = w->pend[i].key, .flags = w->pend[i].flags};
		} else {
			free(w->pend[i].key);
			b->rescan = true;
		}
		w->pend[i] = w->pend[--w->npend];
	}
}

static int hm__watch_run(hm_loader *l)
{
	struct hm__watch *w = l->watch;
	struct hm__batch b = {0};
	bool preload = l->flags & HM_OPEN_PRELOAD;
	int handled;

	pthread_mutex_lock(&w->lock);
	hm__read_events(l, &b);
	hm__batch_drop_writing(w, &b);
	hm__take_due(l, &b);
	if (b.rescan)
		w->rescans++;
	pthread_mutex_unlock(&w->lock);

	/* No watcher lock from here: loads run hooks, logs call the embedder. */
	if (b.root_removed)
		hm__log(l, HM_LOG_ERROR, "%s: the root directory was removed", l->root);
	if (b.read_errno)
		hm__log(l, HM_LOG_ERROR, "%s: inotify read: %s", l->root, strerror(b.read_errno));
	if (b.rescan) {
		hm__log(l, HM_LOG_INFO, "%s: rescanning everything (events were lost "
					"or a directory went away)", l->root);
		hm__scan(l, preload);
	} else {
		for (size_t i = 0; i < b.nnames; i++) {
			struct hm__batch_name *bn = &b.names[i];
			char key[HM__KEY_MAX + 1];
			int kind;
			if (bn->is_dir)
				hm__scan_sub(l, bn->dir, bn->name, preload);
			else
				hm__skip_log(l, bn->dir, bn->name, false,
					hm__file_key(key, sizeof key, bn->dir, strlen(bn->dir),
						bn->name, l->global_name, &kind));
		}
		for (size_t i = 0; i < b.n; i++) {
			if (b.keys[i].check)
				hm__check_quiet(l, &b.keys[i], preload);
			else
				hm__look_at(l, b.keys[i].key, b.keys[i].flags, preload);
		}
	}
	handled = (int)(b.n + b.nnames) + b.rescan;
	hm__batch_free(&b);
	return handled;
}

/* ---- the thread, or the embedder's loop ------------------------------------- */

/*
 * The thread waits in poll() for events, a pending look's time, or the
 * hang-up of the wake pipe.  A failing poll() (ENOMEM) is retried a moment
 * later; the events wait in the queue meanwhile.
 */
static void *hm__watch_thread(void *arg)
{
	hm_loader *l = arg;
	struct hm__watch *w = l->watch;
	bool poll_failed = false;

	while (!atomic_load(&w->stop)) {
		struct pollfd fds[2] = {{.fd = w->fd, .events = POLLIN},
			{.fd = w->wake[0], .events = POLLIN}};
		int rc = poll(fds, 2, hm_watch_timeout(l));
		if (rc < 0 && errno != EINTR) {
			struct timespec pause = {0, 50 * 1000000};
			if (!poll_failed) /* once, not every 50 ms */
				hm__log(l, HM_LOG_ERROR, "%s: watcher poll: %s: retrying",
					l->root, strerror(errno));
			poll_failed = true;
			nanosleep(&pause, NULL);
			continue;
		}
		poll_failed = false;
		if (rc > 0 && fds[1].revents)
			break;
		hm__watch_run(l);
	}
	return NULL;
}

int hm_watch_fd(hm_loader *l)
{
	if (!l)
		return hm__fail(HM_EINVAL, "hm_watch_fd: NULL loader");
	if (hm__forked(l))
		return hm__fork_error(l);
	return l->watch ? l->watch->fd : -1;
}

int hm_watch_timeout(hm_loader *l)
{
	struct hm__watch *w = l ? l->watch : NULL;
	int64_t next = -1;

	if (!w || hm__forked(l)) /* a child must not take the parent's lock */
		return -1;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->npend; i++)
		if (next < 0 || w->pend[i].due < next)
			next = w->pend[i].due;
	pthread_mutex_unlock(&w->lock);
	if (next < 0)
		return -1;
	int64_t ms = (next - hm__now() + 999999) / 1000000;
	return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

int hm_watch_process(hm_loader *l)
{
	if (!l)
		return hm__fail(HM_EINVAL, "hm_watch_process: NULL loader");
	if (hm__forked(l))
		return hm__fork_error(l);
	if (atomic_load_explicit(&l->closing, memory_order_relaxed))
		return hm__fail(HM_ECLOSED, "%s: loader is closing", l->root);
	return l->watch ? hm__watch_run(l) : 0;
}

int hm_rescan(hm_loader *l)
{
	if (!l)
		return hm__fail(HM_EINVAL, "hm_rescan: NULL loader");
	if (hm__forked(l))
		return hm__fork_error(l);
	if (atomic_load_explicit(&l->closing, memory_order_relaxed))
		return hm__fail(HM_ECLOSED, "%s: loader is closing", l->root);
	if (l->watch) {
		pthread_mutex_lock(&l->watch->lock);
		l->watch->rescans++;
		pthread_mutex_unlock(&l->watch->lock);
	}
	hm__scan(l, l->flags & HM_OPEN_PRELOAD);
	return 0;
}

uint64_t hm__watch_rescans(const hm_loader *l)
{
	uint64_t n = 0;

	if (l->watch) {
		pthread_mutex_lock(&l->watch->lock);
		n = l->watch->rescans;
		pthread_mutex_unlock(&l->watch->lock);
	}
	return n;
}

int hm__watch_start(hm_loader *l, int mode)
{
	struct hm__watch *w;
	struct statfs sf;

	if (mode == HM_WATCH_STAT)
		return 0;
	if (mode == HM_WATCH_AUTO && fstatfs(l->rootfd, &sf) == 0 &&
	    hm__remote_fs((unsigned long)sf.f_type)) {
		hm__log(l, HM_LOG_INFO, "%s: file system type 0x%lx gives no events for "
					"changes made elsewhere: checking files by stat",
			l->root, (unsigned long)sf.f_type);
		return 0;
	}
	if (!(w = calloc(1, sizeof *w)))
		return hm__fail(HM_ENOMEM, "hm_open: out of memory");
	pthread_mutex_init(&w->lock, NULL);
	w->wake[0] = w->wake[1] = -1;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int err = errno;
		pthread_mutex_destroy(&w->lock);
		free(w);
		if (mode == HM_WATCH_INOTIFY)
			return hm__fail(HM_ESYS, "%s: inotify_init1: %s", l->root, strerror(err));
		hm__log(l, HM_LOG_WARN, "%s: inotify_init1: %s: checking files by stat",
			l->root, strerror(err));
		return 0;
	}
	l->watch = w;
	if (!hm__watch_add(l, "")) {
		hm__watch_stop(l);
		if (mode == HM_WATCH_INOTIFY)
			return hm__fail(HM_ESYS, "%s: cannot watch the root", l->root);
		hm__log(l, HM_LOG_WARN, "%s: checking files by stat instead", l->root);
		return 0;
	}
	int64_t check_ns = l->check_ns;
	l->check_ns = -1; /* events, not stats, on the request path */
	if (!(l->flags & HM_OPEN_NO_THREAD)) {
		sigset_t all, old;
		int rc;

		if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
			w->wake[0] = w->wake[1] = -1;
			l->check_ns = check_ns;
			return hm__fail(HM_ESYS, "%s: pipe: %s", l->root, strerror(errno));
		}
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&w->thread, NULL, hm__watch_thread, l);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0) {
			l->check_ns = check_ns;
			return hm__fail(HM_ESYS, "%s: watcher thread: %s", l->root, strerror(rc));
		}
		w->has_thread = true;
		pthread_setname_np(w->thread, "hotmod-watch");
	}
	/* Watch every directory now; hm_open() preloads after, if asked. */
	if (!(l->flags & HM_OPEN_PRELOAD))
		hm__scan_dir(l, "", false);
	return 0;
}

void hm__watch_stop(hm_loader *l)
{
	struct hm__watch *w = l->watch;

	if (!w)
		return;
	if (w->has_thread) {
		atomic_store(&w->stop, true);
		close(w->wake[1]);
		w->wake[1] = -1;
		pthread_join(w->thread, NULL);
	}
	for (int i = 0; i < 2; i++)
		if (w->wake[i] >= 0)
			close(w->wake[i]);
	close(w->fd);
	for (size_t i = 0; i < w->ndirs; i++)
		free(w->dirs[i].dir);
	for (size_t i = 0; i < w->npend; i++)
		free(w->pend[i].key);
	free(w->dirs);
	free(w->pend);
	pthread_mutex_destroy(&w->lock);
	free(w);
	l->watch = NULL;
}
