/* SPDX-License-Identifier: MIT */
/*
 * entry.h - the second level of the cache: one entry per file, its
 * lock and its current version (entry.c); a directory's global module and
 * the binding of modules to it (global.c).
 */
#ifndef HOTMOD_ENTRY_H
#define HOTMOD_ENTRY_H

#include "common.h"
#include "file.h"
#include "hazard.h"
#include "version.h"

/*
 * One entry per file: its current version, and what the cache knows of the
 * file.  The table (table.c) finds it by its key.
 */
struct hm__entry {
	pthread_mutex_t lock; /* protects the members up to "Constant" below */
	pthread_cond_t cond;  /* a load of this entry ended */
	/* The thread loading this entry, or NULL.  Also read under the
	 * loader's graph_lock (deadlock detection), so written under both. */
	struct hm__thread *loading_by;
	struct hm__fileid id;     /* the file current was loaded from */
	bool has_id;
	struct hm__fileid bad_id; /* a file that failed: not retried until it changes */
	bool has_bad;
	bool stat_failed; /* the last look could not even stat it (logged once) */
	int64_t missing_since;    /* hm__now() when the file was first missed; 0 */
	uint64_t next_number;
	/* For hm_status_get(). */
	uint64_t loads, failures, pinned;
	uint64_t load_copy_ns, load_dlopen_ns, load_init_ns, load_total_ns;
	int64_t load_started;
	int last_code; /* of the last failure */
	int64_t last_time;
	char last_msg[HM__MSG_MAX];
	/* Versions of this file loaded and not yet finalised: they point to
	 * the entry (v->entry), so it stays.  Counted by hm__load_locked(),
	 * uncounted by hm__entry_version_gone(). */
	unsigned long versions;
	/* Unlinked from the table by the sweeper: nothing loads into it any
	 * more; whoever still holds it looks the name up again. */
	bool dead;

	/* Holders (see hm__entry_hold); the sweeper unlinks only at 0. */
	atomic_ulong users;
	struct hm__entry *limbo_next; /* the sweeper's lists (sweeper.c) */
	/* Constant from the entry's insertion: a module's directory's global
	 * module's key (in this entry's allocation, after key), global_len
	 * bytes; < 0 when it cannot be had (the reason, for hm__name_why: its
	 * loads fail saying so).  A global's: NULL. */
	const char *global_key;
	int global_len;

	/* What a request reads, together with the key's first bytes. */
	/*
	 * The current version; the entry holds one reference on it.  Written
	 * with e->lock held; read without lock by hm_get() (acquire: pairs with
	 * the release exchange that published it, so the version's fields are
	 * visible).
	 */
	_Atomic(struct hm__version *) current;
	/* Next time (CLOCK_MONOTONIC_COARSE ns) a request stats the file. */
	atomic_llong next_check;
	/* Constant from the entry's insertion to hm_close(). */
	hm_loader *loader;
	bool is_global;
	size_t dir_len; /* key[0..dir_len) is the directory, with its '/' */
	size_t key_len;
	char key[];     /* "a/b.so": file path under the root */
};

static inline void hm__entry_hold(struct hm__entry *e)
{
	/* relaxed: the holder found e by a lookup that keeps it alive until
	 * this is done (a window, table_lock, or another hold). */
	atomic_fetch_add_explicit(&e->users, 1, memory_order_relaxed);
}


/* Take a reference to e's current version, loading it when there is none;
 * force retries a file whose earlier load failed. */
HM__HIDDEN int hm__entry_get(struct hm__entry *e, struct hm__version **out, bool force);
/* hm__entry_refresh() flags */
#define HM__R_NOW 0x1    /* look now: ignore the interval, wait for the lock */
#define HM__R_GRACE 0x2  /* a missing file is removed only after removal_delay */
#define HM__R_RETRY 0x4  /* load even a file whose failure is remembered */
#define HM__R_SETTLE 0x8 /* an incomplete ELF file may be mid-write: not yet */
#define HM__R_READMIT 0x10 /* hm_readmit(): ask admit again, even if nothing
			    * changed; a refusal drops the current version */
/* Look at the file; HM__LOADED when a new version became current, 0 if
 * nothing did, or HM__MISSING, HM__UNSETTLED or an error. */
HM__HIDDEN int hm__entry_refresh(struct hm__entry *e, int flags);
/*
 * hm__entry_refresh(), then what its result asks for: a global that loaded
 * rebinds its directory's modules; a file missing within its grace, maybe
 * still being written, or a module that could not follow its global
 * (a file changed under the load) gets a pending look (pending.c).  The
 * way scan.c looks at a file it knows.
 */
HM__HIDDEN int hm__entry_look(struct hm__entry *e, int flags);
/* A version of e was finalised (version.c): e may be unlinked now. */
HM__HIDDEN void hm__entry_version_gone(struct hm__entry *e);
/* Drop the current version (close; a hm__table_each callback). */
HM__HIDDEN void hm__entry_drop_each(struct hm__entry *e, void *arg);

/* ---- a directory's global module (global.c) ---------------------------------- */

/* The directory's global entry, created when its file exists; NULL if none. */
HM__HIDDEN int hm__global_entry(struct hm__entry *e, struct hm__entry **out);
/* A reference to the current version of e's directory's global, or NULL;
 * retry: even after a remembered failure.  *gid: the file it holds the
 * bytes of. */
HM__HIDDEN int hm__global_get(struct hm__entry *e, struct hm__version **g,
	struct hm__fileid *gid, bool retry);
/* e's load found another global in its directory (HM__GLOBAL_MOVED): look
 * at it now, and at its modules later. */
HM__HIDDEN void hm__global_moved(struct hm__entry *e, int flags);
/* Is e's current version bound to a global module that is no longer its
 * directory's current one? */
HM__HIDDEN bool hm__binding_stale(struct hm__entry *e);
/* After e published a version: load again while its binding is stale. */
HM__HIDDEN void hm__rebind_if_stale(struct hm__entry *e);
/* Look again at every loaded module of directory dir[0..dir_len) (not
 * those being written): its global changed. */
HM__HIDDEN void hm__rebind_dir(hm_loader *l, const char *dir, size_t dir_len);

#endif /* HOTMOD_ENTRY_H */
