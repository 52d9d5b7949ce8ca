/* SPDX-License-Identifier: MIT */
/*
 * watch.c - inotify: a watch on the root and on every directory under it
 * that a request could name a file in, and what their events mean.
 *
 * Events are hints, never facts (docs/DESIGN.md, "inotify is a hint"):
 * each one makes a file pending (pending.c: being written, or removed) or
 * asks for a look at it (scan.c), which stats, copies, compares and
 * validates it.  So an event that comes twice, early (CREATE before the
 * write) or for an unchanged file (touch) costs a look, not a reload; a
 * lost event (queue overflow) or a removed directory brings a rescan.
 *
 * Where inotify cannot see (hm_open() chose stat mode, a remote file
 * system, inotify_init1 failed) there is no watcher: requests stat their
 * files (request.c).
 *
 * The watcher's lock protects only its own table of directories; looks run
 * without it, because init is a hook and no lock is held while a hook runs.
 */
#include "loader.h"
#include "elfcheck.h"
#include "pending.h"
#include "watch.h"

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
	uint64_t rescans;
};

/* What one run of the watcher does once its lock is dropped. */
struct hm__batch {
	struct hm__looks looks; /* files to look at, each once */
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
 * logged, the rest still works.  False, with errno set, when it cannot. */
static bool hm__watch_add(hm_loader *l, const char *dir)
{
	struct hm__watch *w = l->watch;
	char path[sizeof "/proc/self/fd//" + 12 + HM__DIR_MAX];
	int wd;

	if ((size_t)snprintf(path, sizeof path, "/proc/self/fd/%d/%s", l->rootfd, dir) >=
	    sizeof path) { /* cannot be: dir holds at most HM__DIR_MAX bytes */
		errno = ENAMETOOLONG;
		return false;
	}
	wd = inotify_add_watch(w->fd, path, HM__WATCH_MASK);
	if (wd < 0) {
		int err = errno;
		hm__log(l, HM_LOG_WARN, "%s: cannot watch %s: %s%s", l->root,
			*dir ? dir : "the root", strerror(err),
			err == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
		errno = err; /* the log callback may have changed it */
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
	} else if (HM__GROW(w->dirs, w->capdirs, w->ndirs)) {
		w->dirs[w->ndirs++] = (struct hm__wdir){.wd = wd, .dir = copy};
	} else {
		free(copy);
		inotify_rm_watch(w->fd, wd);
		oom = true;
	}
	pthread_mutex_unlock(&w->lock);
	if (oom) { /* logged with no lock held, like every log line */
		hm__log(l, HM_LOG_ERROR, "%s: out of memory watching %s", l->root, dir);
		errno = ENOMEM;
	}
	return !oom;
}

void hm__watch_scan(hm_loader *l, bool preload)
{
	hm__scan(l, preload, l->watch ? hm__watch_add : NULL);
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
static void hm__check_quiet(hm_loader *l, const struct hm__look *k, bool preload)
{
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
	mine = hm__pending_quiet(l, k, incomplete);
	if (!mine)
		return;
	if (incomplete)
		hm__log(l, HM_LOG_DEBUG, "%s: still being written (%s): looked at when "
					 "its writer closes it", k->key, hm__msg());
	else
		hm__look_at(l, k->key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE, preload);
}

/* ---- events ---------------------------------------------------------------------- */

static void hm__batch_free(struct hm__batch *b)
{
	for (size_t i = 0; i < b->looks.n; i++)
		free(b->looks.v[i].key);
	for (size_t i = 0; i < b->nnames; i++) {
		free(b->names[i].dir);
		free(b->names[i].name);
	}
	free(b->looks.v);
	free(b->names);
}

static void hm__batch_key(struct hm__batch *b, const char *key, int flags)
{
	struct hm__looks *k = &b->looks;

	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return;
	char *copy = strdup(key);
	if (!copy || !HM__GROW(k->v, k->cap, k->n)) {
		free(copy);
		b->rescan = true; /* lost it: look at everything */
		return;
	}
	k->v[k->n++] = (struct hm__look){.key = copy, .flags = flags};
}

/* A name in the watched dir, checked (and scanned or logged) after the lock. */
static void hm__batch_name(struct hm__batch *b, const char *dir, const char *name,
	bool is_dir)
{
	char *dcopy = strdup(dir), *ncopy = strdup(name);

	if (!dcopy || !ncopy ||
	    !HM__GROW(b->names, b->capnames, b->nnames)) {
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
		hm__pending_clear(l, key);
	if (!ok)
		b->rescan = true;
	hm__batch_key(b, key, HM__R_NOW | HM__R_GRACE | HM__R_SETTLE);
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

static int hm__watch_run(hm_loader *l)
{
	struct hm__watch *w = l->watch;
	struct hm__batch b = {0};
	bool preload = l->flags & HM_OPEN_PRELOAD;
	int handled;

	pthread_mutex_lock(&w->lock);
	hm__read_events(l, &b);
	pthread_mutex_unlock(&w->lock);
	/* Files being written, or just removed, wait for their pending look. */
	hm__pending_drop_busy(l, &b.looks);
	if (!hm__pending_due(l, &b.looks))
		b.rescan = true;
	if (b.rescan) {
		pthread_mutex_lock(&w->lock);
		w->rescans++;
		pthread_mutex_unlock(&w->lock);
	}

	/* No watcher lock from here: loads run hooks, logs call the embedder. */
	if (b.root_removed)
		hm__log(l, HM_LOG_ERROR, "%s: the root directory was removed", l->root);
	if (b.read_errno)
		hm__log(l, HM_LOG_ERROR, "%s: inotify read: %s", l->root, strerror(b.read_errno));
	if (b.rescan) {
		hm__log(l, HM_LOG_INFO, "%s: rescanning everything (events were lost "
					"or a directory went away)", l->root);
		hm__watch_scan(l, preload);
	} else {
		for (size_t i = 0; i < b.nnames; i++) {
			struct hm__batch_name *bn = &b.names[i];
			char key[HM__KEY_MAX + 1];
			int kind;
			if (bn->is_dir)
				hm__scan_sub(l, bn->dir, bn->name, preload, hm__watch_add);
			else
				hm__skip_log(l, bn->dir, bn->name, false,
					hm__file_key(key, sizeof key, bn->dir, strlen(bn->dir),
						bn->name, l->global_name, &kind));
		}
		for (size_t i = 0; i < b.looks.n; i++) {
			if (b.looks.v[i].check)
				hm__check_quiet(l, &b.looks.v[i], preload);
			else
				hm__look_at(l, b.looks.v[i].key, b.looks.v[i].flags, preload);
		}
	}
	handled = (int)(b.looks.n + b.nnames) + b.rescan;
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
	int rc;

	if ((rc = hm__api_check(l, l, l, "hm_watch_fd", false)) != 0)
		return rc;
	return l->watch ? l->watch->fd : -1;
}

int hm_watch_timeout(hm_loader *l)
{
	struct hm__watch *w = l ? l->watch : NULL;
	int64_t next;

	if (!w || hm__forked(l)) /* a child must not take the parent's lock */
		return -1;
	if ((next = hm__pending_next(l)) < 0)
		return -1;
	int64_t ms = (next - hm__now() + 999999) / 1000000;
	return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

int hm_watch_process(hm_loader *l)
{
	int rc;

	if ((rc = hm__api_check(l, l, l, "hm_watch_process", true)) != 0)
		return rc;
	return l->watch ? hm__watch_run(l) : 0;
}

int hm_rescan(hm_loader *l)
{
	int rc;

	if ((rc = hm__api_check(l, l, l, "hm_rescan", true)) != 0)
		return rc;
	if (l->watch) {
		pthread_mutex_lock(&l->watch->lock);
		l->watch->rescans++;
		pthread_mutex_unlock(&l->watch->lock);
	}
	hm__watch_scan(l, l->flags & HM_OPEN_PRELOAD);
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
	int rc;

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
			return hm__fail_errno(err, HM_ESYS, "%s: inotify_init1", l->root);
		hm__log(l, HM_LOG_WARN, "%s: inotify_init1: %s: checking files by stat",
			l->root, strerror(err));
		return 0;
	}
	l->watch = w;
	if ((rc = hm__pending_init(l)) < 0) {
		hm__watch_stop(l);
		return rc;
	}
	if (!hm__watch_add(l, "")) {
		int err = errno;
		hm__watch_stop(l);
		hm__pending_free(l); /* stat mode: no pending list */
		if (mode == HM_WATCH_INOTIFY)
			return hm__fail_errno(err, HM_ESYS, "%s: cannot watch the root", l->root);
		hm__log(l, HM_LOG_WARN, "%s: checking files by stat instead", l->root);
		return 0;
	}
	int64_t check_ns = l->check_ns;
	l->check_ns = -1; /* events, not stats, on the request path */
	if (!(l->flags & HM_OPEN_NO_THREAD)) {
		sigset_t all, old;

		if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
			w->wake[0] = w->wake[1] = -1;
			l->check_ns = check_ns;
			return hm__fail_errno(errno, HM_ESYS, "%s: pipe", l->root);
		}
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&w->thread, NULL, hm__watch_thread, l);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0) {
			l->check_ns = check_ns;
			return hm__fail_errno(rc, HM_ESYS, "%s: watcher thread", l->root);
		}
		w->has_thread = true;
		pthread_setname_np(w->thread, "hotmod-watch");
	}
	/* Watch every directory now; hm_open() preloads after, if asked. */
	if (!(l->flags & HM_OPEN_PRELOAD))
		hm__scan_dir(l, "", false, hm__watch_add);
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
	free(w->dirs);
	pthread_mutex_destroy(&w->lock);
	free(w);
	l->watch = NULL;
}
