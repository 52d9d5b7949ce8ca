/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libhotmod internals.  Never installed.
 *
 * Internal names use the hm__ prefix.  See docs/DESIGN.md for the picture;
 * this file says what each lock protects and why each atomic is ordered as
 * it is.
 */
#ifndef HOTMOD_INTERNAL_H
#define HOTMOD_INTERNAL_H

#include "config.h"

#define HM_BUILDING_LIBRARY 1
#include "hotmod.h"
#include "hotmod_module.h"
#include "names.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define HM__HIDDEN __attribute__((visibility("hidden")))
#define HM__PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Limits on request paths and keys: names.h. */
#define HM__MSG_MAX 512

/* ---- errors and logging (error.c) ---------------------------------------- */

/* Set this thread's hm_errmsg() text and return code. */
HM__HIDDEN int hm__fail(int code, const char *fmt, ...) HM__PRINTF(2, 3);
HM__HIDDEN void hm__log(const hm_loader *l, int level, const char *fmt, ...)
	HM__PRINTF(3, 4);
/* Copy of this thread's message, for storing with an entry. */
HM__HIDDEN const char *hm__msg(void);

/* ---- names: request paths, keys (path.c) ----------------------------------- */

/*
 * Check that p[0..len) is a plain module path: segments of [A-Za-z0-9._-]
 * not starting with '.', separated by single '/', no leading or trailing
 * '/', within the limits of names.h, and that its file is not the
 * directory's global module.
 */
HM__HIDDEN int hm__path_check(const char *p, size_t len, const char *global_name);
/* One segment a request could name, checked silently (no message). */
HM__HIDDEN bool hm__segment_ok(const char *name);
/* options.global_name: 1 to HM__NAME_MAX bytes of [A-Za-z0-9._-], no '.' first. */
HM__HIDDEN bool hm__global_name_ok(const char *name);
/* dir[0..len) is "" or "a/b/": a directory a request could name a file in. */
HM__HIDDEN bool hm__dir_ok(const char *dir, size_t len);

/*
 * What a name or key is (>= 0), or why the loader does not serve it (< 0,
 * said in words by hm__name_why() for the log).  HM__NAME_NOTMOD: neither
 * a module nor the global (not ".so"): ignored without a word.
 */
#define HM__KEY_MODULE 1
#define HM__KEY_GLOBAL 2
#define HM__NAME_NOTMOD (-1)
#define HM__NAME_BYTE (-2)   /* a byte outside the rule, a '.' first */
#define HM__NAME_LONG (-3)   /* a segment over HM__SEGMENT_MAX */
#define HM__NAME_PATH (-4)   /* a path over HM__PATH_MAX */
#define HM__NAME_DEEP (-5)   /* more than HM__SEGMENTS_MAX segments */
#define HM__NAME_DIR (-6)    /* the directory part breaks the rule */
#define HM__NAME_NOROOM (-7) /* the caller's buffer is too small */
HM__HIDDEN const char *hm__name_why(int why);
/* The kind of key[0..len) ("a/b.so", "a/_global.so"). */
HM__HIDDEN int hm__key_kind(const char *key, size_t len, const char *global_name);

/*
 * The builders of keys and paths.  Each checks what it is given against the
 * rule, writes a NUL-terminated result of at most size - 1 bytes into out
 * and returns its length, or returns a reason (< 0) and writes nothing.
 * The directory given (dir[0..dir_len), "" or "a/b/") must pass hm__dir_ok.
 */
/* "a/b/" + name + "/": a subdirectory to watch and scan. */
HM__HIDDEN int hm__subdir_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name);
/* "a/b/" + name: a module's or the global's key (*kind), else a reason. */
HM__HIDDEN int hm__file_key(char *out, size_t size, const char *dir, size_t dir_len,
	const char *name, const char *global_name, int *kind);
/* The key of the global module of key[0..len)'s directory. */
HM__HIDDEN int hm__global_key(char *out, size_t size, const char *key, size_t len,
	const char *global_name);
/* A request path's key: path[0..len) + ".so" (path checked already). */
HM__HIDDEN int hm__path_key(char *out, size_t size, const char *path, size_t len);

/* ---- ELF validation (elf.c) ---------------------------------------------- */

/* Check that fd holds a complete ELF shared object for this machine. */
HM__HIDDEN int hm__elf_check(int fd, uint64_t size, const char *what);
/*
 * The value of the defined, global, default-visibility data symbol name in
 * the object fd holds (checked by hm__elf_check), found by reading every
 * entry of its dynamic symbol table, bounds-checked against the file: no
 * hash table believed, nothing read outside the file.  0, HM_ENODESC (no
 * such symbol, or no readable table), HM_ENOMEM or HM_ESYS; no message.
 */
HM__HIDDEN int hm__elf_symbol(int fd, const char *name, uint64_t *value);
/*
 * After hm__elf_check() failed with HM_ENOTELF: could the size bytes fd
 * holds be an ELF file still being written?  Shorter than a header and a
 * prefix of one, zeros where the magic goes, or a header whose program
 * headers or segments end past size.  No message.
 */
HM__HIDDEN bool hm__elf_partial(int fd, uint64_t size);

/* ---- files (file_linux.c) ------------------------------------------------ */

/* What identifies one content of one file, as seen by fstat. */
struct hm__fileid {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

HM__HIDDEN void hm__fileid_of(struct hm__fileid *id, const struct stat *st);
HM__HIDDEN bool hm__fileid_eq(const struct hm__fileid *a, const struct hm__fileid *b);
/* Check a directory or file's owner and mode against the loader's trust. */
HM__HIDDEN int hm__check_perms(const hm_loader *l, const struct stat *st,
	const char *what);
/*
 * Open key ("a/b.so") beneath the root, check the root, every directory and
 * link on the way and the file, copy it into a sealed memfd once it is at
 * rest (file_linux.c says when).  Returns the memfd and the identity of
 * the file that was copied.  For a module, HM__GLOBAL_MOVED when the
 * directory it was found in does not hold global now (NULL: no global
 * module), with no message and no memfd.
 */
#define HM__GLOBAL_MOVED 4
HM__HIDDEN int hm__copy_module(hm_loader *l, const char *key, bool module,
	const struct hm__fileid *global, int *memfd, struct hm__fileid *id);
/* Open key for reading with the checks hm__copy_module() makes, without
 * copying it: the descriptor, and its stat in *st. */
HM__HIDDEN int hm__open_key(hm_loader *l, const char *key, struct stat *st);
/* Identity of key now, without opening it; HM_ENOENT, with no message,
 * when it is gone.  hm__no_file() sets the message and returns HM_ENOENT. */
HM__HIDDEN int hm__no_file(const hm_loader *l, const char *key);
HM__HIDDEN int hm__stat_key(const hm_loader *l, const char *key,
	struct hm__fileid *id);

/* ---- the probe (probe_linux.c) ------------------------------------------- */

/*
 * HM_OPEN_PROBE: can this process run the dynamic linker in a probe?  Sets
 * the message and returns HM_EINVAL when it cannot (no PT_INTERP).
 */
HM__HIDDEN int hm__probe_check(void);
/*
 * Have the dynamic linker map and relocate memfd's object, then look its
 * descriptor up, in processes of its own and without running its code:
 * HM_EPROBE when one of them crashed.
 */
HM__HIDDEN int hm__probe(hm_loader *l, int memfd, const char *key);

/* ---- versions (version.c) ------------------------------------------------ */

/* The hooks copied out of a module's descriptor. */
struct hm__hooks {
	int (*init)(hm_ctx *);
	void (*fini)(hm_ctx *);
	int (*prepare)(hm_ctx *);
	int (*handle)(hm_ctx *);
	int (*commit)(hm_ctx *);
	void (*rollback)(hm_ctx *);
	void (*release)(hm_ctx *);
};

struct hm__entry;

/*
 * One loaded version of one file; what hm_get() hands out.
 *
 * Memory is type-stable: a version's slot is recycled through the loader's
 * free list and only freed by hm_close(), so a thread that read an entry's
 * current pointer may always touch refs, even if the version died since:
 * see hm__version_tryget().
 */
struct hm_module {
	/*
	 * References: the entry's (while current), each hm_get()'s, and each
	 * module version bound to this global version.  0 means dead or free:
	 * never incremented from 0 (get-unless-zero).
	 */
	atomic_ulong refs;
	/* Set before the version is published, constant while refs > 0. */
	struct hm__entry *entry;
	struct hm_module *global; /* global version bound at init; holds a ref */
	struct hm__hooks hooks;
	/* No global and no hook but handle: hm_call() runs just the handler. */
	bool plain;
	/* Found in a hazard slot when its references were gone: the request
	 * clearing the slot wakes the reaper (hazard_linux.c). */
	atomic_bool deferred;
	/* Without membarrier: which threads must pass the scheduler before
	 * the slots are known (hazard_linux.c); reaper only, NULL else. */
	struct hm__quiesce *quiesce;
	unsigned quiesce_tries; /* HM__HZ_WAIT answers so far; reaper only */
	void *state; /* from init */
	void *dl;
	int memfd; /* kept open while loaded: it names the object for glibc */
	uint64_t gen;
	struct hm__fileid id;
	uint64_t copy_ns, dlopen_ns, init_ns; /* how long loading it took */
	/*
	 * Hand-over: the next version adopted this one's state (written by
	 * the thread loading it, read by this version's fini), and holds a
	 * reference on that heir so the heir's fini cannot run first.
	 */
	bool adopted;
	struct hm_module *heir;
	/* Protected by the loader's ver_lock. */
	struct hm_module *live_prev, *live_next; /* live list */
	struct hm_module *queue_next;             /* free list, reap queue */
};

/*
 * Load entry's file as a new version bound to global (may be NULL; gid: the
 * identity of the file it holds the bytes of), with prev (may be NULL,
 * referenced by the caller) offered for hand-over.  Returns HM__SAME, and
 * no version, when the file's content is prev's and prev is bound to the
 * same global; HM__GLOBAL_MOVED (see hm__copy_module) and no version when
 * global is not the file's directory's global module now.
 */
#define HM__SAME 1
HM__HIDDEN int hm__version_load(struct hm__entry *e, struct hm_module *global,
	const struct hm__fileid *gid, struct hm_module *prev, struct hm_module **out);
/* Take a reference if v still has one; see the slot comment above. */
static inline bool hm__version_tryget(struct hm_module *v)
{
	unsigned long n = atomic_load_explicit(&v->refs, memory_order_relaxed);
	do {
		if (n == 0)
			return false;
		/* acquire: pairs with the release in hm_put() of a dying version,
		 * so a failed check is never stale.  The caller still validates v
		 * against the entry (see hm_get() in loader.c). */
	} while (!atomic_compare_exchange_weak_explicit(&v->refs, &n, n + 1,
		memory_order_acquire, memory_order_relaxed));
	return true;
}
/* Drop a reference; true when it was the last: then retire it. */
static inline bool hm__unref(struct hm_module *v)
{
	/*
	 * acq_rel: the release half orders this thread's use of v before the
	 * finalisation; the acquire half makes the last putter see every other
	 * thread's use.  (A release decrement plus an acquire fence would do,
	 * but ThreadSanitizer does not model fences.)
	 */
	return atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1;
}
/* hm_put() after the last reference went: finalise it (not in a child). */
HM__HIDDEN void hm__put_last(struct hm_module *v);
static inline void hm__put(struct hm_module *v)
{
	if (hm__unref(v))
		hm__put_last(v);
}
/* The last reference is gone: finalise now or on the reaper thread. */
HM__HIDDEN void hm__version_retire(struct hm_module *v);
HM__HIDDEN void hm__reaper_stop(hm_loader *l);
/* hm_close() without a reaper thread: ask again about waiting versions
 * (ver_lock held, dropped meanwhile); false when none waits. */
HM__HIDDEN bool hm__reap_here(hm_loader *l);
/* Is finalisation under way or due (no reference holds it up)?  ver_lock
 * held. */
HM__HIDDEN bool hm__reaping(const hm_loader *l);
HM__HIDDEN void hm__versions_free(hm_loader *l);
/* Close the memfds of pinned objects that glibc unloaded since; forget:
 * l closes, and its pins that stay are no longer counted in it. */
HM__HIDDEN void hm__pins_sweep(hm_loader *l, bool forget);

/* ---- the cache: table (table.c) and entries (entry.c) -------------------- */

/* ---- hazard slots (hazard_linux.c) --------------------------------------- */

/* Nesting levels of hm_dispatch() protected by a slot; deeper ones take
 * references. */
#define HM__HAZARDS 8
/* One thread's slots: slot[d] is the version its dispatch at depth d runs. */
struct hm__hazards {
	/*
	 * The lookup window (see hm__window_open): HM__WINDOW_OPEN while this
	 * thread may use pointers into the table, or to entries found in it
	 * that it does not hold; 0 when closed.  Stored by its thread; the
	 * sweeper marks an open one HM__WINDOW_WATCHED (a compare-and-swap)
	 * and waits until its thread closes it.  First: depth 0's slot is on
	 * the same cache line.
	 */
	atomic_ulong window;
	_Atomic(struct hm_module *) slot[HM__HAZARDS];
	struct hm__hazards *next; /* the process's list; constant once linked */
	atomic_bool used;         /* owned by a live thread */
	atomic_int tid;           /* that thread's, written when it takes it */
} __attribute__((aligned(64)));
#define HM__WINDOW_OPEN 1ul
#define HM__WINDOW_WATCHED 3ul

/* The thread-local state of a thread that uses a loader. */
struct hm__thread {
	struct hm__entry *waiting_for; /* protected by loader->graph_lock */
	hm_ctx *current;               /* innermost call running on this thread */
	int depth;                     /* nesting of calls */
	struct hm__hazards *hz;        /* this thread's slots, once attached */
	bool hz_failed;                /* no slots: hm_dispatch() takes references */
};

/* Give this thread slots; NULL (and hz_failed set) if it cannot have any. */
HM__HIDDEN struct hm__hazards *hm__hazards_attach(struct hm__thread *self);
/* Before finalising v, whose references are gone: is it still in a slot?
 * Then (HM__HZ_HELD) it is marked deferred, and a request clearing its
 * slot calls hm__hazard_wake().  HM__HZ_WAIT: not known yet (membarrier
 * failed; some thread has not passed the scheduler since): ask again. */
#define HM__HZ_FREE 0
#define HM__HZ_HELD 1
#define HM__HZ_WAIT 2
/* After this many HM__HZ_WAIT answers (2 ms apart on the reaper) the scan
 * alone decides: the last resort when neither membarrier nor /proc can be
 * had (hazard_linux.c). */
#define HM__HZ_TRIES 500
HM__HIDDEN int hm__hazard_held(struct hm_module *v);
/* membarrier failed when last tried: deferred versions are asked again
 * on a timer, as a request clearing a slot may not see deferred set. */
HM__HIDDEN bool hm__hazard_polled(void);
/* Slots holding v now (for hm_status_get(); a snapshot). */
HM__HIDDEN unsigned long hm__hazard_count(const struct hm_module *v);
/* A request cleared its slot of a deferred version (version.c). */
HM__HIDDEN void hm__hazard_wake(hm_loader *l);
/*
 * Wait until every lookup window open now has closed (the grace period
 * after unlinking entries, table.c).  0, or why not: HM__GRACE_NONE (no
 * membarrier in this process: never), HM__GRACE_UNMARKED (a thread looks
 * up without a window: never), HM__GRACE_LATER (membarrier failed, or a
 * window stayed open for seconds: try again later).  stop, when set, ends
 * the wait early (HM__GRACE_LATER).
 */
#define HM__GRACE_NONE 1
#define HM__GRACE_UNMARKED 2
#define HM__GRACE_LATER 3
HM__HIDDEN int hm__hazard_grace(const atomic_bool *stop);
/*
 * initial-exec: reached with one %fs-relative access instead of a call to
 * __tls_get_addr on every request.  It costs 24 bytes of the static TLS
 * that glibc reserves for libraries loaded with dlopen (docs/DESIGN.md).
 */
extern HM__HIDDEN __thread struct hm__thread hm__tls
	__attribute__((tls_model("initial-exec")));
static inline struct hm__thread *hm__self(void)
{
	return &hm__tls;
}

/*
 * The lookup window: from before a request loads the table until it no
 * longer uses the entry it found (it holds a version then, or the entry
 * itself).  Opening and closing are one store each to the thread's own
 * record; the other half is in hm__hazard_grace(): after publishing a
 * table without some entries, the sweeper runs membarrier(), which orders
 * every thread's store before the sweeper's reads, and waits for each
 * open window to close.  A request that opened its window before the
 * barrier is waited for; one that opens it after loads the new table.
 * Windows do not nest: nothing inside one runs a hook or a request (a
 * version put there might be the last reference: it is put after the
 * window closed).  A thread without a record (no membarrier in the
 * process, or out of memory: see hm__hazards_attach) has no window; then
 * nothing is ever freed.
 */
static inline struct hm__hazards *hm__window_open(struct hm__thread *self)
{
	struct hm__hazards *hz = self->hz;

	if (!hz && (self->hz_failed || !(hz = hm__hazards_attach(self))))
		return NULL;
	/* release: a sweeper that reads any later value of the window sees
	 * everything this thread did before (ThreadSanitizer's view; the
	 * order that matters, this store before the table load that
	 * follows, is membarrier's part). */
	atomic_store_explicit(&hz->window, HM__WINDOW_OPEN, memory_order_release);
	atomic_signal_fence(memory_order_seq_cst);
	return hz;
}
static inline void hm__window_close(struct hm__hazards *hz)
{
	/* release: every use of what the window found comes before it */
	if (hz)
		atomic_store_explicit(&hz->window, 0, memory_order_release);
}

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
	uint64_t next_gen;
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
	struct hm__entry *limbo_next; /* the sweeper's lists (table.c) */

	/* What a request reads, together with the key's first bytes. */
	/*
	 * The current version; the entry holds one reference on it.  Written
	 * with e->lock held; read without lock by hm_get() (acquire: pairs with
	 * the release exchange that published it, so the version's fields are
	 * visible).
	 */
	_Atomic(struct hm_module *) current;
	/* Next time (CLOCK_MONOTONIC_COARSE ns) a request stats the file. */
	atomic_llong next_check;
	/* Constant from the entry's insertion to hm_close(). */
	hm_loader *loader;
	bool is_global;
	size_t dir_len; /* key[0..dir_len) is the directory, with its '/' */
	size_t key_len;
	char key[];     /* "a/b.so": file path under the root */
};

/*
 * Keys are hashed without their ".so", so that a request path ("a/b") is
 * hashed as it comes, with no copy.  Word at a time: a request's lookup is
 * a fifth of its instructions otherwise.
 *
 * Every input bit reaches every output bit (full avalanche): names that
 * differ only in their last characters (m00001, m00002 ...) spread over
 * the whole table instead of filling one run of slots.  The mix is a
 * 64x64->128-bit multiply whose two halves are folded together (the
 * "folded multiply" of wyhash and komihash), written here from that idea:
 * 16 bytes per multiply, then one more to spread the last one.  Both
 * operands of every multiply carry a secret per-loader seed (getrandom()
 * at hm_open(), table.c), so neither natural name sets nor someone who can
 * create files and knows this code can choose names that pile up: which
 * names collide differs in every loader.
 */
struct hm__seed {
	uint64_t k[2]; /* k[1] odd */
};
static inline uint64_t hm__load64(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof w);
	return w;
}
static inline uint64_t hm__load32(const char *p)
{
	uint32_t w;
	memcpy(&w, p, sizeof w);
	return w;
}
/* The folded multiply: the low and high halves of a * b, xored. */
static inline uint64_t hm__fold(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}
static inline uint64_t hm__hash(const struct hm__seed *s, const char *p, size_t len)
{
	uint64_t acc = s->k[1] ^ len, a, b;

	if (len <= 16) {
		/* 0 to 16 bytes as two words, overlapping when shorter:
		 * the length in acc tells "abcd" from "abcdabcd". */
		if (len >= 8) {
			a = hm__load64(p);
			b = hm__load64(p + len - 8);
		} else if (len >= 4) {
			a = hm__load32(p);
			b = hm__load32(p + len - 4);
		} else if (len > 0) {
			a = (uint64_t)(unsigned char)p[0] << 16 |
			    (uint64_t)(unsigned char)p[len / 2] << 8 | (unsigned char)p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		/* 16 bytes a step, then the last 16 (overlapping the step before). */
		size_t n = len;
		do {
			acc = hm__fold(hm__load64(p) ^ s->k[0], hm__load64(p + 8) ^ acc);
			p += 16;
			n -= 16;
		} while (n > 16);
		a = hm__load64(p + n - 16);
		b = hm__load64(p + n - 8);
	}
	/* The second multiply (by an odd secret) spreads the first one's
	 * result over all bits, the low ones (the slot) included. */
	return hm__fold(hm__fold(a ^ s->k[0], b ^ acc), s->k[1]);
}
static inline void hm__entry_hold(struct hm__entry *e)
{
	/* relaxed: the holder found e by a lookup that keeps it alive until
	 * this is done (a window, table_lock, or another hold). */
	atomic_fetch_add_explicit(&e->users, 1, memory_order_relaxed);
}

/* a[0..n) == b[0..n), inline: keys are short. */
static inline bool hm__bytes_eq(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8)
			if (hm__load64(a + i) != hm__load64(b + i))
				return false;
		return hm__load64(a + n - 8) == hm__load64(b + n - 8);
	}
	if (n >= 4)
		return hm__load32(a) == hm__load32(b) &&
		       hm__load32(a + n - 4) == hm__load32(b + n - 4);
	return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
}
/* The length of key without a trailing ".so": what is hashed. */
static inline size_t hm__stem_len(const char *key, size_t len)
{
	return len >= 3 && memcmp(key + len - 3, ".so", 3) == 0 ? len - 3 : len;
}

/*
 * Entries live while they are in the table, and after it as long as
 * someone holds them.  The request path's lookup window protects what it
 * finds until the window closes (below); everyone else holds the entries
 * they use: hm__table_get(), hm__table_insert() and hm__global_entry()
 * return them held, hm__entry_hold() holds one found in a window, and
 * hm__entry_release() lets it go.  hm__table_each() holds them all while
 * it walks.  The sweeper (table.c) unlinks only entries nobody holds, of
 * files that are gone, with no version alive: see docs/DESIGN.md.
 */
/* The entry for key p[0..len) (followed by ".so" when so), held; NULL if none. */
HM__HIDDEN struct hm__entry *hm__table_get(hm_loader *l, const char *p, size_t len, bool so);
/* The same for a whole key ("a/b.so", "a/_global.so"). */
HM__HIDDEN struct hm__entry *hm__table_get_key(hm_loader *l, const char *key, size_t len);
/* Find or create it (the brief table lock), held. */
HM__HIDDEN int hm__table_insert(hm_loader *l, const char *key, size_t key_len,
	bool is_global, struct hm__entry **out);
static inline void hm__entry_hold(struct hm__entry *e);
HM__HIDDEN void hm__entry_release(struct hm__entry *e);
HM__HIDDEN int hm__table_init(hm_loader *l);
/* Call fn on every entry in the table, no lock held; nothing is unlinked
 * meanwhile.  Entries inserted meanwhile may be missed. */
HM__HIDDEN void hm__table_each(hm_loader *l, void (*fn)(struct hm__entry *, void *),
	void *arg);
HM__HIDDEN void hm__table_free(hm_loader *l);
/* A file may be gone (a missing look, a dropped version, a grown table):
 * wake the sweeper.  Any lock but table_lock may be held. */
HM__HIDDEN void hm__table_hint(hm_loader *l);
/* A version of e was finalised (version.c): e may be unlinked now. */
HM__HIDDEN void hm__entry_version_gone(struct hm__entry *e);
/* For tests (tests/check_table.c): the table's shape. */
struct hm__table_stats {
	size_t slots, entries, held_back; /* held_back: unlinked, not freed yet */
	size_t longest_probe;  /* slots a lookup of an entry reads, at most */
	size_t probes;         /* ... summed over all entries */
	size_t longest_run;    /* filled slots in a row: a miss reads one more */
	struct hm__seed seed;
	size_t passes;         /* passes of the sweeper */
	size_t sweeps;         /* ... that unlinked something */
};
HM__HIDDEN void hm__table_stats(hm_loader *l, struct hm__table_stats *st);

/* Take a reference to e's current version, loading it when there is none;
 * force retries a file whose earlier load failed. */
HM__HIDDEN int hm__entry_get(struct hm__entry *e, struct hm_module **out, bool force);
/* hm__entry_refresh() flags */
#define HM__R_NOW 0x1   /* look now: ignore the interval, wait for the lock */
#define HM__R_RETRY 0x8 /* load even a file whose failure is remembered */
#define HM__R_SETTLE 0x10 /* an incomplete ELF file may be mid-write: not yet */
#define HM__R_GRACE 0x2 /* a missing file is removed only after removal_delay */
/* Returned while a missing file is within its grace: look again later. */
#define HM__MISSING 2
/* Returned (with HM__R_SETTLE) for a file that may still be written. */
#define HM__UNSETTLED 3
/* Returned by hm__entry_get() for an entry unlinked from the table since it
 * was found: look the name up again. */
#define HM__DEAD 4
/* Look at the file; 1 when a new version became current, 0 if nothing did. */
HM__HIDDEN int hm__entry_refresh(struct hm__entry *e, int flags);
/* Drop the current version (close; a hm__table_each callback). */
HM__HIDDEN void hm__entry_drop_each(struct hm__entry *e, void *arg);
/* The directory's global entry, created when its file exists; NULL if none. */
HM__HIDDEN int hm__global_entry(struct hm__entry *e, struct hm__entry **out);

/* Monotonic coarse clock, ns: cheap enough for every request. */
HM__HIDDEN int64_t hm__now_coarse(void);
HM__HIDDEN int64_t hm__now(void);

/* ---- calls and hooks (dispatch.c) --------------------------------------- */

enum hm__phase { HM__PHASE_INIT, HM__PHASE_CALL, HM__PHASE_FINI };

/* The context every hook gets; lives on the stack of the call. */
struct hm_ctx {
	hm_loader *loader;
	void *request;
	struct hm_module *mod;  /* NULL in a global module's init and fini */
	struct hm_module *glob; /* the global version in use, or NULL */
	enum hm_layer layer;    /* whose hook runs now */
	enum hm__phase phase;
	void *slot[2];
	hm_ctx *outer;
	struct hm_module *prev; /* init: the version being replaced, or NULL */
};

/* Make ctx this thread's innermost call for the duration of a hook. */
static inline void hm__enter(hm_ctx *ctx, struct hm__thread *self)
{
	ctx->outer = self->current;
	self->current = ctx;
	self->depth++;
}
static inline void hm__leave(hm_ctx *ctx, struct hm__thread *self)
{
	self->current = ctx->outer;
	self->depth--;
}
/* The whole hook chain of a call (hotmod_module(3)); and the error for a
 * hook that returned rc < 0. */
HM__HIDDEN int hm__chain(hm_ctx *ctx);
HM__HIDDEN int hm__hook_failed(const hm_ctx *ctx, const char *hook, int rc)
	__attribute__((cold));

/* Run init or fini with ctx as this thread's innermost call. */
HM__HIDDEN int hm__run_init(hm_ctx *ctx, int (*init)(hm_ctx *));
HM__HIDDEN void hm__run_fini(hm_ctx *ctx, void (*fini)(hm_ctx *));

/* ---- the loader (loader.c) ----------------------------------------------- */

/*
 * The hash table: open addressing, linear probing, at most half full, so a
 * probe always ends at an empty slot.  A slot is filled once (hash, then
 * the entry with release) and never changed or emptied; readers probe
 * without a lock, inside their lookup window (hm__window_open).  Growth,
 * and the sweeper removing entries of files that are gone, build a new
 * table, publish it and retire the old one, which is freed only once
 * every lookup window open at the time has closed (table.c).
 */
struct hm__slot {
	_Atomic(struct hm__entry *) entry; /* NULL: empty */
	uint64_t hash;                     /* written before entry */
};
struct hm__table {
	size_t mask;  /* slots - 1 */
	struct hm__seed seed; /* the loader's: the same in every table */
	size_t count; /* entries; written under table_lock */
	struct hm__table *retired_next;
	struct hm__slot slots[];
};

/*
 * The entry whose key is p[0..len), followed by ".so" when so is set, in
 * t (loaded with acquire by the caller), probing from hash h; NULL if none.
 * Inline: with so constant, each caller gets its own compare.
 */
__attribute__((always_inline)) static inline struct hm__entry *hm__table_probe(
	const struct hm__table *t, uint64_t h, const char *p, size_t len, bool so)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		/* acquire: pairs with the release store that filled the slot */
		struct hm__entry *e = atomic_load_explicit(&t->slots[i].entry,
			memory_order_acquire);
		if (!e)
			return NULL;
		if (t->slots[i].hash == h && e->key_len == len + (so ? 3 : 0) &&
		    hm__bytes_eq(e->key, p, len) && (!so || memcmp(e->key + len, ".so", 3) == 0))
			return e;
	}
}

struct hm_loader {
	/* Constant from hm_open() to hm_close(). */
	int rootfd;
	char *root;
	char *global_name;
	hm_log_fn log;
	void *log_arg;
	void *app;
	int64_t check_ns; /* < 0: never */
	unsigned trust;
	size_t max_size;
	int max_depth;
	uid_t euid;
	unsigned flags;
	int64_t removal_delay_ns;
	unsigned fork_gen; /* hm__forks when opened: a child sees another */
	struct hm__watch *watch; /* NULL in stat mode */
	/* Names the rule refused, logged a few a minute (watch_linux.c). */
	atomic_llong skip_window; /* hm__now() when the minute began */
	atomic_uint skip_logged;  /* lines in this minute */

	/* Set once by hm_close(); checked on slow paths only. */
	atomic_bool closing;
	/* Calls in a slow path (loading, checking): hm_close() waits for 0. */
	atomic_uint busy;

	/*
	 * The table.  Readers load it with acquire (pairs with the release
	 * store that published a new one) and probe it without a lock, in
	 * their lookup window.  A replaced table is retired, and freed with
	 * the entries unlinked with it after a grace period (table.c).
	 */
	_Atomic(struct hm__table *) table;
	pthread_mutex_t table_lock; /* protects: inserts, growth, unlinking,
				       retired, walkers */
	struct hm__table *retired;
	unsigned walkers;              /* hm__table_each() calls running */
	struct hm__sweeper *sweeper;   /* table.c */

	/* Deadlock detection between loads: entry->loading_by and
	 * hm__thread.waiting_for.  Taken after an entry lock, never before. */
	pthread_mutex_t graph_lock;

	pthread_mutex_t ver_lock; /* protects everything below */
	pthread_cond_t ver_cond;  /* reaper work, and live == 0 for close */
	struct hm_module *live;   /* every version not yet finalised */
	size_t nlive;
	struct hm_module *free_slots;
	struct hm_module *reap_head, *reap_tail;
	struct hm_module *deferred; /* found in a hazard slot: scanned again */
	bool deferred_wake;         /* a slot holding one was cleared */
	unsigned quiescing;         /* deferred ones waiting for HM__HZ_WAIT to end */
	unsigned finalising;        /* versions the reaper has taken and not ended */
	bool reaper_started, reaper_stop;
	pthread_t reaper;
	uint64_t pinned; /* objects still mapped after dlclose (version.c) */
};

/* ---- the request path's slow parts (loader.c) --------------------------- */

/* Stat the file of e, as a request in stat mode does when its time came. */
HM__HIDDEN void hm__check_on_request(struct hm__entry *e);
/*
 * Get path[0..len) when the fast path could not: e is its entry, held by
 * the caller and released here, or NULL; check: its stat check is due.
 */
HM__HIDDEN int hm__get_miss(hm_loader *l, const char *path, size_t len,
	struct hm__entry *e, bool check, struct hm_module **out);
/*
 * The entry for a request path (without its leading '/'), whose key is the
 * path with ".so"; NULL if there is none yet.  No lock: only inside a
 * lookup window.
 */
__attribute__((always_inline)) static inline struct hm__entry *
hm__find_request(hm_loader *l, const char *path, size_t len)
{
	/* acquire: pairs with the release store of a new table */
	const struct hm__table *t = atomic_load_explicit(&l->table, memory_order_acquire);

	return hm__table_probe(t, hm__hash(&t->seed, path, len), path, len, true);
}

/* ---- fork (loader.c) -------------------------------------------------------- */

/* Incremented in every child after fork(); see hm__forked(). */
extern HM__HIDDEN atomic_uint hm__forks;
static inline bool hm__forked(const hm_loader *l)
{
	return atomic_load_explicit(&hm__forks, memory_order_relaxed) != l->fork_gen;
}
HM__HIDDEN int hm__fork_error(const hm_loader *l);

/* ---- watching (watch_linux.c) ------------------------------------------------ */

/* Start watching per the options; sets l->watch or leaves stat mode. */
HM__HIDDEN int hm__watch_start(hm_loader *l, int mode);
HM__HIDDEN void hm__watch_stop(hm_loader *l);
/* Walk the tree under the root: refresh what is known, load all if preload. */
HM__HIDDEN void hm__scan(hm_loader *l, bool preload);
HM__HIDDEN uint64_t hm__watch_rescans(const hm_loader *l);
/* Is key being written or just removed (the watcher will look later)? */
HM__HIDDEN bool hm__watch_busy(hm_loader *l, const char *key);
/* Is e's current version bound to a global module that is no longer its
 * directory's current one? (entry.c) */
HM__HIDDEN bool hm__binding_stale(struct hm__entry *e);
/* The global module key got a new version outside the watcher's look at it
 * (a module's load found it moved): the watcher looks at it again, which
 * rebinds the modules of its directory. */
HM__HIDDEN void hm__watch_global_loaded(hm_loader *l, const char *key);

#endif /* HOTMOD_INTERNAL_H */
